//! Domain and system control (`domctl.h`, `sysctl.h`) and the vCPU context
//! a domain builder hands to the hypervisor (`arch-x86/xen.h`,
//! `vcpu_guest_context`): the toolstack's half of the ABI, dom0 only.
//!
//! Numbers and layouts are Xen 4.17's (domctl and sysctl interface version
//! 0x15). Only the operations hv-core implements have payload types here;
//! every other command is refused with `-ENOSYS`, and any call from a domain
//! other than dom0 with `-EPERM`.
//!
//! A call passes one [`Domctl`] (or [`Sysctl`]) by guest pointer; the
//! operation's payload sits in the 128-byte union at the end and is read
//! and written with [`Domctl::payload`] / [`Domctl::set_payload`].

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::xen::{DomId, TrapInfo};

pub const XEN_DOMCTL_INTERFACE_VERSION: u32 = 0x15;
pub const XEN_SYSCTL_INTERFACE_VERSION: u32 = 0x15;

pub const XEN_DOMCTL_CREATEDOMAIN: u32 = 1;
pub const XEN_DOMCTL_DESTROYDOMAIN: u32 = 2;
pub const XEN_DOMCTL_PAUSEDOMAIN: u32 = 3;
pub const XEN_DOMCTL_UNPAUSEDOMAIN: u32 = 4;
pub const XEN_DOMCTL_GETDOMAININFO: u32 = 5;
pub const XEN_DOMCTL_MAX_MEM: u32 = 11;
pub const XEN_DOMCTL_SETVCPUCONTEXT: u32 = 12;
pub const XEN_DOMCTL_GETVCPUCONTEXT: u32 = 13;
pub const XEN_DOMCTL_GETVCPUINFO: u32 = 14;
pub const XEN_DOMCTL_MAX_VCPUS: u32 = 15;

pub const XEN_SYSCTL_PHYSINFO: u32 = 3;
pub const XEN_SYSCTL_GETDOMAININFOLIST: u32 = 6;

/// `xen_domctl`: one domain-control request.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Domctl {
    pub cmd: u32,
    /// Must be [`XEN_DOMCTL_INTERFACE_VERSION`] (else `-EACCES`).
    pub interface_version: u32,
    /// The domain operated on. For `createdomain`: IN the wanted id (0:
    /// the hypervisor picks one), OUT the new domain's id.
    pub domain: DomId,
    pub _pad: [u16; 3],
    pub u: [u8; 128],
}

const _: () = {
    assert!(size_of::<Domctl>() == 144);
    assert!(offset_of!(Domctl, domain) == 8);
    assert!(offset_of!(Domctl, u) == 16);
};

impl Domctl {
    /// A request for `cmd` on `domain` with `payload`.
    pub fn new<T: IntoBytes + Immutable>(cmd: u32, domain: DomId, payload: &T) -> Self {
        let mut d = Self {
            cmd,
            interface_version: XEN_DOMCTL_INTERFACE_VERSION,
            domain,
            _pad: [0; 3],
            u: [0; 128],
        };
        d.set_payload(payload);
        d
    }

    /// The payload read as `T` (zero-extended from the union).
    pub fn payload<T: FromBytes + IntoBytes>(&self) -> T {
        read_union(&self.u)
    }

    pub fn set_payload<T: IntoBytes + Immutable>(&mut self, payload: &T) {
        write_union(&mut self.u, payload);
    }
}

/// `xen_sysctl`: one system-control request.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Sysctl {
    pub cmd: u32,
    pub interface_version: u32,
    pub u: [u8; 128],
}

const _: () = {
    assert!(size_of::<Sysctl>() == 136);
};

impl Sysctl {
    pub fn new<T: IntoBytes + Immutable>(cmd: u32, payload: &T) -> Self {
        let mut s = Self {
            cmd,
            interface_version: XEN_SYSCTL_INTERFACE_VERSION,
            u: [0; 128],
        };
        s.set_payload(payload);
        s
    }

    pub fn payload<T: FromBytes + IntoBytes>(&self) -> T {
        read_union(&self.u)
    }

    pub fn set_payload<T: IntoBytes + Immutable>(&mut self, payload: &T) {
        write_union(&mut self.u, payload);
    }
}

fn read_union<T: FromBytes + IntoBytes>(u: &[u8; 128]) -> T {
    let mut value = T::new_zeroed();
    let bytes = value.as_mut_bytes();
    let n = bytes.len().min(u.len());
    bytes[..n].copy_from_slice(&u[..n]);
    value
}

fn write_union<T: IntoBytes + Immutable>(u: &mut [u8; 128], payload: &T) {
    let bytes = payload.as_bytes();
    assert!(bytes.len() <= u.len(), "a domctl payload fits the union");
    u.fill(0);
    u[..bytes.len()].copy_from_slice(bytes);
}

/// `xen_domctl_createdomain` (interface 0x15).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CreateDomain {
    pub ssidref: u32,
    /// The toolstack's handle for the domain (a UUID in Xen).
    pub handle: [u8; 16],
    /// `XEN_DOMCTL_CDF_*`; hv-core builds PV domains only and refuses the
    /// HVM flag with `-EINVAL`.
    pub flags: u32,
    pub iommu_opts: u32,
    pub max_vcpus: u32,
    pub max_evtchn_port: u32,
    pub max_grant_frames: i32,
    pub max_maptrack_frames: i32,
    pub grant_opts: u32,
    pub vmtrace_size: u32,
    pub cpupool_id: u32,
    pub emulation_flags: u32,
    pub misc_flags: u32,
}

const _: () = {
    assert!(size_of::<CreateDomain>() == 64);
    assert!(offset_of!(CreateDomain, flags) == 20);
    assert!(offset_of!(CreateDomain, max_vcpus) == 28);
    assert!(offset_of!(CreateDomain, max_grant_frames) == 36);
    assert!(offset_of!(CreateDomain, cpupool_id) == 52);
};

pub const XEN_DOMCTL_CDF_HVM_GUEST: u32 = 1 << 0;
pub const XEN_DOMCTL_CDF_HAP: u32 = 1 << 1;

/// `xen_domctl_getdomaininfo`, also the element of
/// `XEN_SYSCTL_getdomaininfolist`'s buffer.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct DomainInfo {
    pub domain: DomId,
    pub _pad0: u16,
    /// `XEN_DOMINF_*`, with the shutdown reason in bits 16-23.
    pub flags: u32,
    pub tot_pages: u64,
    pub max_pages: u64,
    pub outstanding_pages: u64,
    pub shr_pages: u64,
    pub paged_pages: u64,
    /// The shared_info page's MFN.
    pub shared_info_frame: u64,
    /// CPU time the domain's vCPUs have run, in ns.
    pub cpu_time: u64,
    pub nr_online_vcpus: u32,
    pub max_vcpu_id: u32,
    pub ssidref: u32,
    pub handle: [u8; 16],
    pub cpupool: u32,
    pub gpaddr_bits: u8,
    pub _pad1: [u8; 7],
    pub emulation_flags: u32,
    pub misc_flags: u32,
}

const _: () = {
    assert!(size_of::<DomainInfo>() == 112);
    assert!(offset_of!(DomainInfo, flags) == 4);
    assert!(offset_of!(DomainInfo, tot_pages) == 8);
    assert!(offset_of!(DomainInfo, shared_info_frame) == 48);
    assert!(offset_of!(DomainInfo, cpu_time) == 56);
    assert!(offset_of!(DomainInfo, nr_online_vcpus) == 64);
    assert!(offset_of!(DomainInfo, handle) == 76);
    assert!(offset_of!(DomainInfo, cpupool) == 92);
    assert!(offset_of!(DomainInfo, gpaddr_bits) == 96);
};

pub const XEN_DOMINF_DYING: u32 = 1 << 0;
pub const XEN_DOMINF_HVM_GUEST: u32 = 1 << 1;
pub const XEN_DOMINF_SHUTDOWN: u32 = 1 << 2;
pub const XEN_DOMINF_PAUSED: u32 = 1 << 3;
pub const XEN_DOMINF_BLOCKED: u32 = 1 << 4;
pub const XEN_DOMINF_RUNNING: u32 = 1 << 5;
pub const XEN_DOMINF_DEBUGGED: u32 = 1 << 6;
pub const XEN_DOMINF_XS_DOMAIN: u32 = 1 << 7;
pub const XEN_DOMINF_HAP: u32 = 1 << 8;
pub const XEN_DOMINF_SHUTDOWNSHIFT: u32 = 16;
pub const XEN_DOMINF_SHUTDOWNMASK: u32 = 0xff;

impl DomainInfo {
    /// The `SHUTDOWN_*` reason, when the domain has shut down.
    pub fn shutdown_reason(&self) -> Option<u32> {
        (self.flags & XEN_DOMINF_SHUTDOWN != 0)
            .then_some((self.flags >> XEN_DOMINF_SHUTDOWNSHIFT) & XEN_DOMINF_SHUTDOWNMASK)
    }
}

/// `xen_domctl_max_mem`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct MaxMem {
    pub max_memkb: u64,
}

const _: () = {
    assert!(size_of::<MaxMem>() == 8);
};

/// `xen_domctl_max_vcpus`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct MaxVcpus {
    pub max: u32,
}

const _: () = {
    assert!(size_of::<MaxVcpus>() == 4);
};

/// `xen_domctl_vcpucontext`: `ctxt` points at a [`VcpuGuestContext`].
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuContext {
    pub vcpu: u32,
    pub _pad: u32,
    pub ctxt: u64,
}

const _: () = {
    assert!(size_of::<VcpuContext>() == 16);
    assert!(offset_of!(VcpuContext, ctxt) == 8);
};

/// `xen_domctl_getvcpuinfo`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuInfoCtl {
    pub vcpu: u32,
    pub online: u8,
    pub blocked: u8,
    pub running: u8,
    pub _pad: u8,
    /// ns this vCPU has run.
    pub cpu_time: u64,
    pub cpu: u32,
    pub _pad1: u32,
}

const _: () = {
    assert!(size_of::<VcpuInfoCtl>() == 24);
    assert!(offset_of!(VcpuInfoCtl, online) == 4);
    assert!(offset_of!(VcpuInfoCtl, running) == 6);
    assert!(offset_of!(VcpuInfoCtl, cpu_time) == 8);
    assert!(offset_of!(VcpuInfoCtl, cpu) == 16);
};

/// `cpu_user_regs` (x86_64): the register half of a vCPU context.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CpuUserRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub error_code: u32,
    pub entry_vector: u32,
    pub rip: u64,
    pub cs: u16,
    pub _pad0: u16,
    pub saved_upcall_mask: u8,
    pub _pad1: [u8; 3],
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u16,
    pub _pad2: [u16; 3],
    pub es: u16,
    pub _pad3: [u16; 3],
    pub ds: u16,
    pub _pad4: [u16; 3],
    pub fs: u16,
    pub _pad5: [u16; 3],
    pub gs: u16,
    pub _pad6: [u16; 3],
}

const _: () = {
    assert!(size_of::<CpuUserRegs>() == 200);
    assert!(offset_of!(CpuUserRegs, rip) == 128);
    assert!(offset_of!(CpuUserRegs, cs) == 136);
    assert!(offset_of!(CpuUserRegs, saved_upcall_mask) == 140);
    assert!(offset_of!(CpuUserRegs, rflags) == 144);
    assert!(offset_of!(CpuUserRegs, rsp) == 152);
    assert!(offset_of!(CpuUserRegs, ss) == 160);
};

/// `vcpu_guest_context` (x86_64): a vCPU's whole PV state, as the domain
/// builder sets it before the first unpause.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuGuestContext {
    pub fpu_ctxt: [u8; 512],
    /// `VGCF_*`.
    pub flags: u64,
    pub user_regs: CpuUserRegs,
    pub trap_ctxt: [TrapInfo; 256],
    pub ldt_base: u64,
    pub ldt_ents: u64,
    pub gdt_frames: [u64; 16],
    pub gdt_ents: u64,
    pub kernel_ss: u64,
    pub kernel_sp: u64,
    /// `ctrlreg[3]` is the kernel L4 as `mfn << 12`; hv-core requires it
    /// and validates the tree as Xen does.
    pub ctrlreg: [u64; 8],
    pub debugreg: [u64; 8],
    pub event_callback_eip: u64,
    pub failsafe_callback_eip: u64,
    pub syscall_callback_eip: u64,
    pub vm_assist: u64,
    pub fs_base: u64,
    pub gs_base_kernel: u64,
    pub gs_base_user: u64,
}

const _: () = {
    assert!(offset_of!(VcpuGuestContext, flags) == 512);
    assert!(offset_of!(VcpuGuestContext, user_regs) == 520);
    assert!(offset_of!(VcpuGuestContext, trap_ctxt) == 720);
    assert!(offset_of!(VcpuGuestContext, ldt_base) == 720 + 4096);
    assert!(offset_of!(VcpuGuestContext, kernel_sp) == 4816 + 8 * 20);
    assert!(offset_of!(VcpuGuestContext, ctrlreg) == 4816 + 8 * 21);
    assert!(size_of::<VcpuGuestContext>() == 4816 + 8 * 44);
};

impl Default for VcpuGuestContext {
    fn default() -> Self {
        Self::new_zeroed()
    }
}

/// `VGCF_*` flags of [`VcpuGuestContext::flags`].
pub const VGCF_I387_VALID: u64 = 1 << 0;
pub const VGCF_IN_KERNEL: u64 = 1 << 2;
pub const VGCF_FAILSAFE_DISABLES_EVENTS: u64 = 1 << 3;
pub const VGCF_SYSCALL_DISABLES_EVENTS: u64 = 1 << 4;
pub const VGCF_ONLINE: u64 = 1 << 5;

/// `xen_sysctl_physinfo`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct PhysInfo {
    pub threads_per_core: u32,
    pub cores_per_socket: u32,
    pub nr_cpus: u32,
    pub max_cpu_id: u32,
    pub nr_nodes: u32,
    pub max_node_id: u32,
    pub cpu_khz: u32,
    pub capabilities: u32,
    pub arch_capabilities: u32,
    pub _pad: u32,
    pub total_pages: u64,
    pub free_pages: u64,
    pub scrub_pages: u64,
    pub outstanding_pages: u64,
    pub max_mfn: u64,
    pub hw_cap: [u32; 8],
}

const _: () = {
    assert!(size_of::<PhysInfo>() == 112);
    assert!(offset_of!(PhysInfo, free_pages) == 48);
};

/// `xen_sysctl_getdomaininfolist`: IN the first id and the buffer's
/// capacity; OUT how many [`DomainInfo`]s were written (ids ascending).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GetDomainInfoList {
    pub first_domain: DomId,
    pub _pad0: u16,
    pub max_domains: u32,
    pub buffer: u64,
    pub num_domains: u32,
    pub _pad1: u32,
}

const _: () = {
    assert!(size_of::<GetDomainInfoList>() == 24);
    assert!(offset_of!(GetDomainInfoList, buffer) == 8);
    assert!(offset_of!(GetDomainInfoList, num_domains) == 16);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_through_the_union() {
        let info = DomainInfo {
            domain: 7,
            cpu_time: 123,
            ..Default::default()
        };
        let d = Domctl::new(XEN_DOMCTL_GETDOMAININFO, 7, &info);
        assert_eq!(d.interface_version, XEN_DOMCTL_INTERFACE_VERSION);
        let back: DomainInfo = d.payload();
        assert_eq!(back.cpu_time, 123);
        assert_eq!(back.domain, 7);
    }
}
