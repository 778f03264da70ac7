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

/// The domctl interface version this crate speaks (Xen 4.17).
pub const XEN_DOMCTL_INTERFACE_VERSION: u32 = 0x15;
/// The sysctl interface version this crate speaks (Xen 4.17).
pub const XEN_SYSCTL_INTERFACE_VERSION: u32 = 0x15;

/// domctl: create a domain (`CreateDomain`).
pub const XEN_DOMCTL_CREATEDOMAIN: u32 = 1;
/// domctl: destroy a domain.
pub const XEN_DOMCTL_DESTROYDOMAIN: u32 = 2;
/// domctl: pause a domain's vCPUs.
pub const XEN_DOMCTL_PAUSEDOMAIN: u32 = 3;
/// domctl: unpause a domain's vCPUs.
pub const XEN_DOMCTL_UNPAUSEDOMAIN: u32 = 4;
/// domctl: get a domain's state and usage (`DomainInfo`).
pub const XEN_DOMCTL_GETDOMAININFO: u32 = 5;
/// domctl: set a domain's memory limit (`MaxMem`).
pub const XEN_DOMCTL_MAX_MEM: u32 = 11;
/// domctl: set a vCPU's context (`VcpuContext`).
pub const XEN_DOMCTL_SETVCPUCONTEXT: u32 = 12;
/// domctl: get a vCPU's context (`VcpuContext`).
pub const XEN_DOMCTL_GETVCPUCONTEXT: u32 = 13;
/// domctl: get a vCPU's state and usage (`VcpuInfoCtl`).
pub const XEN_DOMCTL_GETVCPUINFO: u32 = 14;
/// domctl: set a domain's number of vCPUs (`MaxVcpus`).
pub const XEN_DOMCTL_MAX_VCPUS: u32 = 15;
/// domctl: set the physical CPUs a vCPU may run on (`VcpuAffinity`).
pub const XEN_DOMCTL_SETVCPUAFFINITY: u32 = 9;
/// domctl: get the physical CPUs a vCPU may run on (`VcpuAffinity`).
pub const XEN_DOMCTL_GETVCPUAFFINITY: u32 = 25;

/// `VcpuAffinity::flags`: the hard affinity (the CPUs the vCPU may run on).
pub const XEN_VCPUAFFINITY_HARD: u32 = 1 << 0;
/// `VcpuAffinity::flags`: the soft affinity (the CPUs it prefers).
pub const XEN_VCPUAFFINITY_SOFT: u32 = 1 << 1;
/// `VcpuAffinity::flags`: undo a guest's `SCHEDOP_pin_override`.
pub const XEN_VCPUAFFINITY_FORCE: u32 = 1 << 2;

/// sysctl: the host's CPUs, memory and capabilities (`PhysInfo`).
pub const XEN_SYSCTL_PHYSINFO: u32 = 3;
/// sysctl: info on a range of domains (`GetDomainInfoList`).
pub const XEN_SYSCTL_GETDOMAININFOLIST: u32 = 6;

/// `xen_domctl`: one domain-control request.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Domctl {
    /// IN: `XEN_DOMCTL_*`.
    pub cmd: u32,
    /// Must be [`XEN_DOMCTL_INTERFACE_VERSION`] (else `-EACCES`).
    pub interface_version: u32,
    /// The domain operated on. For `createdomain`: IN the wanted id (0:
    /// the hypervisor picks one), OUT the new domain's id.
    pub domain: DomId,
    /// Padding.
    pub _pad: [u16; 3],
    /// IN/OUT: the operation's payload (read with [`Domctl::payload`]).
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

    /// Replaces the payload with `payload`, zeroing the rest of the union.
    pub fn set_payload<T: IntoBytes + Immutable>(&mut self, payload: &T) {
        write_union(&mut self.u, payload);
    }
}

/// `xen_sysctl`: one system-control request.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Sysctl {
    /// IN: `XEN_SYSCTL_*`.
    pub cmd: u32,
    /// IN: must be [`XEN_SYSCTL_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// IN/OUT: the operation's payload (read with [`Sysctl::payload`]).
    pub u: [u8; 128],
}

const _: () = {
    assert!(size_of::<Sysctl>() == 136);
};

impl Sysctl {
    /// A request for `cmd` with `payload`.
    pub fn new<T: IntoBytes + Immutable>(cmd: u32, payload: &T) -> Self {
        let mut s = Self {
            cmd,
            interface_version: XEN_SYSCTL_INTERFACE_VERSION,
            u: [0; 128],
        };
        s.set_payload(payload);
        s
    }

    /// The payload read as `T` (zero-extended from the union).
    pub fn payload<T: FromBytes + IntoBytes>(&self) -> T {
        read_union(&self.u)
    }

    /// Replaces the payload with `payload`, zeroing the rest of the union.
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
    /// IN: the XSM security label.
    pub ssidref: u32,
    /// The toolstack's handle for the domain (a UUID in Xen).
    pub handle: [u8; 16],
    /// `XEN_DOMCTL_CDF_*`; hv-core builds PV domains only and refuses the
    /// HVM flag with `-EINVAL`.
    pub flags: u32,
    /// IN: `XEN_DOMCTL_IOMMU_*` options.
    pub iommu_opts: u32,
    /// IN: the maximum number of vCPUs.
    pub max_vcpus: u32,
    /// IN: the highest event-channel port the domain may use.
    pub max_evtchn_port: u32,
    /// IN: the grant-table frame limit (-1: Xen's default).
    pub max_grant_frames: i32,
    /// IN: the maptrack frame limit (-1: Xen's default).
    pub max_maptrack_frames: i32,
    /// IN: `XEN_DOMCTL_GRANT_*`: the maximum grant-table version, and options.
    pub grant_opts: u32,
    /// IN: bytes of processor-trace buffer per vCPU (0: none).
    pub vmtrace_size: u32,
    /// IN: the CPU pool to create the domain in.
    pub cpupool_id: u32,
    /// IN: x86: `XEN_X86_EMU_*`, the devices Xen emulates for the domain.
    pub emulation_flags: u32,
    /// IN: x86: `XEN_X86_*` miscellaneous options (e.g. relaxed MSR handling).
    pub misc_flags: u32,
}

const _: () = {
    assert!(size_of::<CreateDomain>() == 64);
    assert!(offset_of!(CreateDomain, flags) == 20);
    assert!(offset_of!(CreateDomain, max_vcpus) == 28);
    assert!(offset_of!(CreateDomain, max_grant_frames) == 36);
    assert!(offset_of!(CreateDomain, cpupool_id) == 52);
};

/// `CreateDomain.flags`: an HVM guest (else PV).
pub const XEN_DOMCTL_CDF_HVM_GUEST: u32 = 1 << 0;
/// `CreateDomain.flags`: use hardware-assisted paging (HVM only).
pub const XEN_DOMCTL_CDF_HAP: u32 = 1 << 1;

/// `xen_domctl_getdomaininfo`, also the element of
/// `XEN_SYSCTL_getdomaininfolist`'s buffer.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct DomainInfo {
    /// OUT: the domain's id.
    pub domain: DomId,
    /// Padding.
    pub _pad0: u16,
    /// `XEN_DOMINF_*`, with the shutdown reason in bits 16-23.
    pub flags: u32,
    /// OUT: pages the domain has.
    pub tot_pages: u64,
    /// OUT: the domain's page limit.
    pub max_pages: u64,
    /// OUT: pages claimed but not yet allocated.
    pub outstanding_pages: u64,
    /// OUT: pages shared with other domains (memory sharing).
    pub shr_pages: u64,
    /// OUT: pages paged out.
    pub paged_pages: u64,
    /// The shared_info page's MFN.
    pub shared_info_frame: u64,
    /// CPU time the domain's vCPUs have run, in ns.
    pub cpu_time: u64,
    /// OUT: the number of online vCPUs.
    pub nr_online_vcpus: u32,
    /// OUT: the highest vCPU id.
    pub max_vcpu_id: u32,
    /// OUT: the XSM security label.
    pub ssidref: u32,
    /// OUT: the toolstack's handle for the domain (a UUID in Xen).
    pub handle: [u8; 16],
    /// OUT: the domain's CPU pool.
    pub cpupool: u32,
    /// OUT: the width of guest physical addresses, in bits.
    pub gpaddr_bits: u8,
    /// Padding.
    pub _pad1: [u8; 7],
    /// OUT: x86: `XEN_X86_EMU_*`, as at creation.
    pub emulation_flags: u32,
    /// OUT: x86: `XEN_X86_*` miscellaneous options, as at creation.
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

/// `DomainInfo.flags`: the domain is being destroyed.
pub const XEN_DOMINF_DYING: u32 = 1 << 0;
/// `DomainInfo.flags`: the domain is an HVM guest.
pub const XEN_DOMINF_HVM_GUEST: u32 = 1 << 1;
/// `DomainInfo.flags`: the domain has shut down (reason in the shutdown bits).
pub const XEN_DOMINF_SHUTDOWN: u32 = 1 << 2;
/// `DomainInfo.flags`: the domain is paused by the control tools.
pub const XEN_DOMINF_PAUSED: u32 = 1 << 3;
/// `DomainInfo.flags`: every vCPU is blocked or down.
pub const XEN_DOMINF_BLOCKED: u32 = 1 << 4;
/// `DomainInfo.flags`: a vCPU is running.
pub const XEN_DOMINF_RUNNING: u32 = 1 << 5;
/// `DomainInfo.flags`: the domain is being debugged.
pub const XEN_DOMINF_DEBUGGED: u32 = 1 << 6;
/// `DomainInfo.flags`: the domain is the xenstore domain.
pub const XEN_DOMINF_XS_DOMAIN: u32 = 1 << 7;
/// `DomainInfo.flags`: the domain uses hardware-assisted paging.
pub const XEN_DOMINF_HAP: u32 = 1 << 8;
/// Shift of the `SHUTDOWN_*` reason in `DomainInfo.flags`.
pub const XEN_DOMINF_SHUTDOWNSHIFT: u32 = 16;
/// Mask of the `SHUTDOWN_*` reason, after shifting.
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
    /// IN: the memory limit, in KiB.
    pub max_memkb: u64,
}

const _: () = {
    assert!(size_of::<MaxMem>() == 8);
};

/// `xen_domctl_max_vcpus`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct MaxVcpus {
    /// IN: the number of vCPUs.
    pub max: u32,
}

const _: () = {
    assert!(size_of::<MaxVcpus>() == 4);
};

/// `xen_domctl_vcpucontext`: `ctxt` points at a [`VcpuGuestContext`].
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuContext {
    /// IN: the vCPU.
    pub vcpu: u32,
    /// Padding.
    pub _pad: u32,
    /// IN (set) / OUT (get): guest pointer to the [`VcpuGuestContext`].
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
    /// IN: the vCPU.
    pub vcpu: u32,
    /// OUT: non-zero if the vCPU is up.
    pub online: u8,
    /// OUT: non-zero if the vCPU is blocked.
    pub blocked: u8,
    /// OUT: non-zero if the vCPU is running now.
    pub running: u8,
    /// Padding.
    pub _pad: u8,
    /// ns this vCPU has run.
    pub cpu_time: u64,
    /// OUT: the physical CPU the vCPU is on or last ran on.
    pub cpu: u32,
    /// Padding.
    pub _pad1: u32,
}

/// `xenctl_bitmap`: a bitmap in the caller's memory, bit n of byte n / 8
/// for CPU n.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct XenctlBitmap {
    /// The bitmap's first byte (a guest virtual address).
    pub bitmap: u64,
    /// Its length in bits.
    pub nr_bits: u32,
    /// Padding.
    pub _pad: u32,
}

/// `xen_domctl_vcpuaffinity`: for `setvcpuaffinity`, IN the maps `flags`
/// names and OUT the affinity now in effect (the map ANDed with the CPUs
/// that are up); for `getvcpuaffinity`, OUT the maps `flags` names.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuAffinity {
    /// IN: the vCPU.
    pub vcpu: u32,
    /// IN: `XEN_VCPUAFFINITY_*`.
    pub flags: u32,
    /// The hard affinity: the CPUs the vCPU may run on.
    pub cpumap_hard: XenctlBitmap,
    /// The soft affinity: the CPUs it prefers.
    pub cpumap_soft: XenctlBitmap,
}

const _: () = {
    assert!(size_of::<XenctlBitmap>() == 16);
    assert!(size_of::<VcpuAffinity>() == 40);
    assert!(offset_of!(VcpuAffinity, cpumap_hard) == 8);
    assert!(offset_of!(VcpuAffinity, cpumap_soft) == 24);
};

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
    /// R15.
    pub r15: u64,
    /// R14.
    pub r14: u64,
    /// R13.
    pub r13: u64,
    /// R12.
    pub r12: u64,
    /// RBP.
    pub rbp: u64,
    /// RBX.
    pub rbx: u64,
    /// R11.
    pub r11: u64,
    /// R10.
    pub r10: u64,
    /// R9.
    pub r9: u64,
    /// R8.
    pub r8: u64,
    /// RAX.
    pub rax: u64,
    /// RCX.
    pub rcx: u64,
    /// RDX.
    pub rdx: u64,
    /// RSI.
    pub rsi: u64,
    /// RDI.
    pub rdi: u64,
    /// Xen-private: the exception's error code.
    pub error_code: u32,
    /// Xen-private: the vector of the exception or interrupt being handled.
    pub entry_vector: u32,
    /// RIP.
    pub rip: u64,
    /// CS.
    pub cs: u16,
    /// Padding.
    pub _pad0: u16,
    /// Xen-private: the upcall mask saved on entry (restored by `iret`).
    pub saved_upcall_mask: u8,
    /// Padding.
    pub _pad1: [u8; 3],
    /// RFLAGS.
    pub rflags: u64,
    /// RSP.
    pub rsp: u64,
    /// SS.
    pub ss: u16,
    /// Padding.
    pub _pad2: [u16; 3],
    /// ES.
    pub es: u16,
    /// Padding.
    pub _pad3: [u16; 3],
    /// DS.
    pub ds: u16,
    /// Padding.
    pub _pad4: [u16; 3],
    /// FS.
    pub fs: u16,
    /// Padding.
    pub _pad5: [u16; 3],
    /// GS.
    pub gs: u16,
    /// Padding.
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
    /// The FPU/SSE state, in `FXSAVE` format (valid with `VGCF_I387_VALID`).
    pub fpu_ctxt: [u8; 512],
    /// `VGCF_*`.
    pub flags: u64,
    /// The general registers, instruction pointer, flags and selectors.
    pub user_regs: CpuUserRegs,
    /// The virtual IDT (as set by `set_trap_table`).
    pub trap_ctxt: [TrapInfo; 256],
    /// Linear address of the LDT.
    pub ldt_base: u64,
    /// Entries in the LDT.
    pub ldt_ents: u64,
    /// Machine frames of the GDT.
    pub gdt_frames: [u64; 16],
    /// Entries in the GDT.
    pub gdt_ents: u64,
    /// The kernel stack selector (as set by `stack_switch`).
    pub kernel_ss: u64,
    /// The kernel stack pointer (as set by `stack_switch`).
    pub kernel_sp: u64,
    /// `ctrlreg[3]` is the kernel L4 as `mfn << 12`; hv-core requires it
    /// and validates the tree as Xen does.
    pub ctrlreg: [u64; 8],
    /// DR0-DR7.
    pub debugreg: [u64; 8],
    /// The event upcall callback's address.
    pub event_callback_eip: u64,
    /// The failsafe callback's address.
    pub failsafe_callback_eip: u64,
    /// The syscall callback's address.
    pub syscall_callback_eip: u64,
    /// `VMASST_TYPE_*` assists enabled, one bit each.
    pub vm_assist: u64,
    /// The FS base.
    pub fs_base: u64,
    /// The kernel GS base.
    pub gs_base_kernel: u64,
    /// The user GS base.
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
/// The vCPU starts in guest kernel mode.
pub const VGCF_IN_KERNEL: u64 = 1 << 2;
/// Mask events on entry to the failsafe callback.
pub const VGCF_FAILSAFE_DISABLES_EVENTS: u64 = 1 << 3;
/// Mask events on entry to the syscall callback.
pub const VGCF_SYSCALL_DISABLES_EVENTS: u64 = 1 << 4;
/// The vCPU is up.
pub const VGCF_ONLINE: u64 = 1 << 5;

/// `xen_sysctl_physinfo`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct PhysInfo {
    /// OUT: hardware threads per core.
    pub threads_per_core: u32,
    /// OUT: cores per socket.
    pub cores_per_socket: u32,
    /// OUT: online physical CPUs.
    pub nr_cpus: u32,
    /// OUT: the highest physical CPU id.
    pub max_cpu_id: u32,
    /// OUT: NUMA nodes with memory or CPUs.
    pub nr_nodes: u32,
    /// OUT: the highest NUMA node id.
    pub max_node_id: u32,
    /// OUT: the CPU clock, in kHz.
    pub cpu_khz: u32,
    /// OUT: `XEN_SYSCTL_PHYSCAP_*`: what the host supports (HVM, PV, HAP, ...).
    pub capabilities: u32,
    /// OUT: `XEN_SYSCTL_PHYSCAP_X86_*`: architecture-specific capabilities.
    pub arch_capabilities: u32,
    /// Padding.
    pub _pad: u32,
    /// OUT: pages of host memory.
    pub total_pages: u64,
    /// OUT: free pages.
    pub free_pages: u64,
    /// OUT: free pages waiting to be scrubbed.
    pub scrub_pages: u64,
    /// OUT: pages claimed by domains but not yet allocated.
    pub outstanding_pages: u64,
    /// OUT: the highest machine frame number.
    pub max_mfn: u64,
    /// OUT: the boot CPU's CPUID feature words.
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
    /// IN: the lowest domain id to report.
    pub first_domain: DomId,
    /// Padding.
    pub _pad0: u16,
    /// IN: capacity of `buffer`, in entries.
    pub max_domains: u32,
    /// IN: guest pointer to the [`DomainInfo`] array.
    pub buffer: u64,
    /// OUT: entries written.
    pub num_domains: u32,
    /// Padding.
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
