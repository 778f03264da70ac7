//! The core PV64 structures (`xen.h`, `arch-x86/xen.h`,
//! `arch-x86/xen-x86_64.h`): start of day, shared info, page-table updates,
//! traps, multicalls, and the fixed addresses and selectors of PV64.
//!
//! Padding that C leaves implicit is an explicit `_pad` field here, so every
//! type converts to and from bytes without hidden holes.

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A domain id (`domid_t`).
pub type DomId = u16;

pub const DOMID_FIRST_RESERVED: DomId = 0x7ff0;
pub const DOMID_SELF: DomId = 0x7ff0;
pub const DOMID_IO: DomId = 0x7ff1;
pub const DOMID_XEN: DomId = 0x7ff2;
pub const DOMID_COW: DomId = 0x7ff3;
pub const DOMID_INVALID: DomId = 0x7ff4;
pub const DOMID_IDLE: DomId = 0x7fff;

/// The PV64 hypervisor hole: guests may not map anything here.
pub const HYPERVISOR_VIRT_START: u64 = 0xffff_8000_0000_0000;
pub const HYPERVISOR_VIRT_END: u64 = 0xffff_8800_0000_0000;
/// The end of the lower canonical half: guest addresses lie below it or at
/// or above [`HYPERVISOR_VIRT_END`]. The hole starts the upper half.
pub const LOWER_HALF_END: u64 = 0x0000_8000_0000_0000;
const _: () = assert!(HYPERVISOR_VIRT_START == LOWER_HALF_END.wrapping_neg());

/// The read-only machine-to-phys table, at the start of the hole.
pub const MACH2PHYS_VIRT_START: u64 = 0xffff_8000_0000_0000;
pub const MACH2PHYS_VIRT_END: u64 = 0xffff_8040_0000_0000;

/// Flat selectors a PV64 guest runs with (it sits in ring 3).
pub const FLAT_RING3_CS32: u16 = 0xe023;
pub const FLAT_RING3_CS64: u16 = 0xe033;
pub const FLAT_RING3_DS32: u16 = 0xe02b;
pub const FLAT_RING3_DS64: u16 = 0x0000;
pub const FLAT_RING3_SS32: u16 = 0xe02b;
pub const FLAT_RING3_SS64: u16 = 0xe02b;
pub const FLAT_KERNEL_CS64: u16 = FLAT_RING3_CS64;
pub const FLAT_KERNEL_DS64: u16 = FLAT_RING3_DS64;
pub const FLAT_KERNEL_SS64: u16 = FLAT_RING3_SS64;
pub const FLAT_USER_CS64: u16 = FLAT_RING3_CS64;
pub const FLAT_USER_DS64: u16 = FLAT_RING3_DS64;
pub const FLAT_USER_SS64: u16 = FLAT_RING3_SS64;

/// The magic at the start of `start_info`.
pub const START_INFO_MAGIC: &[u8] = b"xen-3.0-x86_64";
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// `start_info.flags`.
pub const SIF_PRIVILEGED: u32 = 1 << 0;
pub const SIF_INITDOMAIN: u32 = 1 << 1;
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;

/// What the domain builder hands a PV guest (pointer in RSI at entry).
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct StartInfo {
    pub magic: [u8; 32],
    /// Total pages allocated to the guest.
    pub nr_pages: u64,
    /// Machine address of the shared-info page.
    pub shared_info: u64,
    pub flags: u32,
    pub _pad0: u32,
    /// Machine frame of the store's shared page, and its event channel.
    pub store_mfn: u64,
    pub store_evtchn: u32,
    pub _pad1: u32,
    /// domU: `mfn` then `evtchn` (u32) of the console ring;
    /// dom0: `info_off`, `info_size` (u32 each). See [`StartInfo::console_domu`].
    pub console: [u64; 2],
    /// Virtual address of the bootstrap page tables (the initial CR3).
    pub pt_base: u64,
    pub nr_pt_frames: u64,
    /// Virtual address of the page-frame list (p2m).
    pub mfn_list: u64,
    /// Virtual address and length of the module (initrd), if any.
    pub mod_start: u64,
    pub mod_len: u64,
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    pub first_p2m_pfn: u64,
    pub nr_p2m_frames: u64,
}

const _: () = {
    assert!(offset_of!(StartInfo, nr_pages) == 32);
    assert!(offset_of!(StartInfo, shared_info) == 40);
    assert!(offset_of!(StartInfo, flags) == 48);
    assert!(offset_of!(StartInfo, store_mfn) == 56);
    assert!(offset_of!(StartInfo, store_evtchn) == 64);
    assert!(offset_of!(StartInfo, console) == 72);
    assert!(offset_of!(StartInfo, pt_base) == 88);
    assert!(offset_of!(StartInfo, nr_pt_frames) == 96);
    assert!(offset_of!(StartInfo, mfn_list) == 104);
    assert!(offset_of!(StartInfo, mod_start) == 112);
    assert!(offset_of!(StartInfo, mod_len) == 120);
    assert!(offset_of!(StartInfo, cmd_line) == 128);
    assert!(offset_of!(StartInfo, first_p2m_pfn) == 1152);
    assert!(offset_of!(StartInfo, nr_p2m_frames) == 1160);
    assert!(size_of::<StartInfo>() == 1168);
};

impl StartInfo {
    /// The console ring's machine frame and event channel (domU layout).
    pub fn console_domu(&self) -> (u64, u32) {
        (self.console[0], self.console[1] as u32)
    }

    pub fn set_console_domu(&mut self, mfn: u64, evtchn: u32) {
        self.console = [mfn, evtchn as u64];
    }

    /// The command line up to its first NUL.
    pub fn cmdline(&self) -> &[u8] {
        let end = self
            .cmd_line
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(MAX_GUEST_CMDLINE);
        &self.cmd_line[..end]
    }
}

/// pvclock-style time for one vCPU: `system_time` (ns) at `tsc_timestamp`;
/// ns since then are `((tsc - tsc_timestamp) << tsc_shift) * mul >> 32`
/// (a right shift for negative `tsc_shift`). `version` is odd while the
/// hypervisor updates the record.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuTimeInfo {
    pub version: u32,
    pub _pad0: u32,
    pub tsc_timestamp: u64,
    pub system_time: u64,
    pub tsc_to_system_mul: u32,
    pub tsc_shift: i8,
    pub flags: u8,
    pub _pad1: [u8; 2],
}

const _: () = {
    assert!(size_of::<VcpuTimeInfo>() == 32);
    assert!(offset_of!(VcpuTimeInfo, tsc_timestamp) == 8);
    assert!(offset_of!(VcpuTimeInfo, system_time) == 16);
    assert!(offset_of!(VcpuTimeInfo, tsc_to_system_mul) == 24);
    assert!(offset_of!(VcpuTimeInfo, tsc_shift) == 28);
    assert!(offset_of!(VcpuTimeInfo, flags) == 29);
};

/// `vcpu_time_info.flags`: the TSC is synchronised across vCPUs.
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;

#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ArchVcpuInfo {
    pub cr2: u64,
    pub _pad: u64,
}

const _: () = {
    assert!(size_of::<ArchVcpuInfo>() == 16);
};

/// Per-vCPU part of the shared-info page.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuInfo {
    pub evtchn_upcall_pending: u8,
    /// Non-zero: no event upcalls (the PV `cli`).
    pub evtchn_upcall_mask: u8,
    pub _pad0: [u8; 6],
    pub evtchn_pending_sel: u64,
    pub arch: ArchVcpuInfo,
    pub time: VcpuTimeInfo,
}

const _: () = {
    assert!(size_of::<VcpuInfo>() == 64);
    assert!(offset_of!(VcpuInfo, evtchn_upcall_mask) == 1);
    assert!(offset_of!(VcpuInfo, evtchn_pending_sel) == 8);
    assert!(offset_of!(VcpuInfo, arch) == 16);
    assert!(offset_of!(VcpuInfo, time) == 32);
};

pub const XEN_LEGACY_MAX_VCPUS: usize = 32;
/// Ports in the 2-level event-channel ABI: 64 words of 64 bits.
pub const NR_EVENT_CHANNELS: usize = 64 * 64;

#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ArchSharedInfo {
    pub max_pfn: u64,
    pub pfn_to_mfn_frame_list_list: u64,
    pub nmi_reason: u64,
    pub p2m_cr3: u64,
    pub p2m_vaddr: u64,
    pub p2m_generation: u64,
}

const _: () = {
    assert!(size_of::<ArchSharedInfo>() == 48);
    assert!(offset_of!(ArchSharedInfo, p2m_generation) == 40);
};

/// The page every domain shares with the hypervisor.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SharedInfo {
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    pub evtchn_pending: [u64; 64],
    pub evtchn_mask: [u64; 64],
    /// Wallclock at system time 0; `wc_version` is odd while it changes.
    pub wc_version: u32,
    pub wc_sec: u32,
    pub wc_nsec: u32,
    pub wc_sec_hi: u32,
    pub arch: ArchSharedInfo,
}

const _: () = {
    assert!(offset_of!(SharedInfo, evtchn_pending) == 2048);
    assert!(offset_of!(SharedInfo, evtchn_mask) == 2560);
    assert!(offset_of!(SharedInfo, wc_version) == 3072);
    assert!(offset_of!(SharedInfo, wc_sec) == 3076);
    assert!(offset_of!(SharedInfo, wc_nsec) == 3080);
    assert!(offset_of!(SharedInfo, wc_sec_hi) == 3084);
    assert!(offset_of!(SharedInfo, arch) == 3088);
    assert!(size_of::<SharedInfo>() == 3136);
    assert!(size_of::<SharedInfo>() <= 4096);
};

/// One page-table write requested through `mmu_update`. The low two bits of
/// `ptr` select the command (`MMU_*`).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct MmuUpdate {
    pub ptr: u64,
    pub val: u64,
}

const _: () = {
    assert!(size_of::<MmuUpdate>() == 16);
};

pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
pub const MMU_MACHPHYS_UPDATE: u64 = 1;
pub const MMU_PT_UPDATE_PRESERVE_AD: u64 = 2;
pub const MMU_PT_UPDATE_NO_TRANSLATE: u64 = 3;

/// An extended MMU operation (`mmuext_op`). `arg1` is an MFN or a linear
/// address, `arg2` a count, a vCPU mask pointer or a source MFN, by command.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct MmuextOp {
    pub cmd: u32,
    pub _pad: u32,
    pub arg1: u64,
    pub arg2: u64,
}

const _: () = {
    assert!(size_of::<MmuextOp>() == 24);
    assert!(offset_of!(MmuextOp, arg1) == 8);
    assert!(offset_of!(MmuextOp, arg2) == 16);
};

pub const MMUEXT_PIN_L1_TABLE: u32 = 0;
pub const MMUEXT_PIN_L2_TABLE: u32 = 1;
pub const MMUEXT_PIN_L3_TABLE: u32 = 2;
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
pub const MMUEXT_UNPIN_TABLE: u32 = 4;
pub const MMUEXT_NEW_BASEPTR: u32 = 5;
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
pub const MMUEXT_INVLPG_LOCAL: u32 = 7;
pub const MMUEXT_TLB_FLUSH_MULTI: u32 = 8;
pub const MMUEXT_INVLPG_MULTI: u32 = 9;
pub const MMUEXT_TLB_FLUSH_ALL: u32 = 10;
pub const MMUEXT_INVLPG_ALL: u32 = 11;
pub const MMUEXT_FLUSH_CACHE: u32 = 12;
pub const MMUEXT_SET_LDT: u32 = 13;
pub const MMUEXT_NEW_USER_BASEPTR: u32 = 15;
pub const MMUEXT_CLEAR_PAGE: u32 = 16;
pub const MMUEXT_COPY_PAGE: u32 = 17;
pub const MMUEXT_FLUSH_CACHE_GLOBAL: u32 = 18;
pub const MMUEXT_MARK_SUPER: u32 = 19;
pub const MMUEXT_UNMARK_SUPER: u32 = 20;

/// `update_va_mapping` flags.
pub const UVMF_NONE: u64 = 0;
pub const UVMF_TLB_FLUSH: u64 = 1;
pub const UVMF_INVLPG: u64 = 2;
pub const UVMF_FLUSHTYPE_MASK: u64 = 3;
pub const UVMF_MULTI: u64 = 0;
pub const UVMF_LOCAL: u64 = 0;
pub const UVMF_ALL: u64 = 1 << 2;

/// One entry of the guest's trap table (`set_trap_table`); the table ends
/// with an entry whose `address` is 0.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct TrapInfo {
    pub vector: u8,
    /// Bits 0-1: the lowest privilege level allowed to `int` to this vector;
    /// bit 2: mask events on entry.
    pub flags: u8,
    pub cs: u16,
    pub _pad: u32,
    pub address: u64,
}

const _: () = {
    assert!(size_of::<TrapInfo>() == 16);
    assert!(offset_of!(TrapInfo, cs) == 2);
    assert!(offset_of!(TrapInfo, address) == 8);
};

pub const TI_DPL_MASK: u8 = 0b11;
pub const TI_MASK_EVENTS: u8 = 1 << 2;

/// What `HYPERVISOR_iret` pops from the guest stack, lowest address first.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct IretContext {
    pub rax: u64,
    pub r11: u64,
    pub rcx: u64,
    /// `VGCF_in_syscall`: return as from a syscall (RCX/R11 not restored).
    pub flags: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const _: () = {
    assert!(size_of::<IretContext>() == 72);
};

pub const VGCF_IN_SYSCALL: u64 = 1 << 8;

/// One call in a `multicall` batch.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct MulticallEntry {
    pub op: u64,
    pub result: i64,
    pub args: [u64; 6],
}

const _: () = {
    assert!(size_of::<MulticallEntry>() == 64);
};

/// `set_segment_base` selectors.
pub const SEGBASE_FS: u32 = 0;
pub const SEGBASE_GS_USER: u32 = 1;
pub const SEGBASE_GS_KERNEL: u32 = 2;
pub const SEGBASE_GS_USER_SEL: u32 = 3;

/// `console_io` commands.
pub const CONSOLEIO_WRITE: u32 = 0;
pub const CONSOLEIO_READ: u32 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_info_console_and_cmdline_helpers() {
        let mut si = <StartInfo as zerocopy::FromZeros>::new_zeroed();
        si.set_console_domu(0x1234, 7);
        assert_eq!(si.console_domu(), (0x1234, 7));
        si.cmd_line[..5].copy_from_slice(b"hello");
        assert_eq!(si.cmdline(), b"hello");
    }
}
