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

/// The first of the domain ids reserved for special meanings; real domains lie below it.
pub const DOMID_FIRST_RESERVED: DomId = 0x7ff0;
/// The calling domain itself.
pub const DOMID_SELF: DomId = 0x7ff0;
/// Pseudo-domain owning I/O memory (frames with no RAM behind them).
pub const DOMID_IO: DomId = 0x7ff1;
/// Pseudo-domain owning the hypervisor's own pages.
pub const DOMID_XEN: DomId = 0x7ff2;
/// Pseudo-domain owning copy-on-write shared pages.
pub const DOMID_COW: DomId = 0x7ff3;
/// No domain ("none").
pub const DOMID_INVALID: DomId = 0x7ff4;
/// The idle domain (the hypervisor's idle vCPUs).
pub const DOMID_IDLE: DomId = 0x7fff;

/// The PV64 hypervisor hole: guests may not map anything here.
pub const HYPERVISOR_VIRT_START: u64 = 0xffff_8000_0000_0000;
/// End of the PV64 hypervisor hole (exclusive).
pub const HYPERVISOR_VIRT_END: u64 = 0xffff_8800_0000_0000;
/// The end of the lower canonical half: guest addresses lie below it or at
/// or above [`HYPERVISOR_VIRT_END`]. The hole starts the upper half.
pub const LOWER_HALF_END: u64 = 0x0000_8000_0000_0000;
const _: () = assert!(HYPERVISOR_VIRT_START == LOWER_HALF_END.wrapping_neg());

/// The read-only machine-to-phys table, at the start of the hole.
pub const MACH2PHYS_VIRT_START: u64 = 0xffff_8000_0000_0000;
/// End of the machine-to-phys table (exclusive).
pub const MACH2PHYS_VIRT_END: u64 = 0xffff_8040_0000_0000;

/// Flat selectors a PV64 guest runs with (it sits in ring 3).
pub const FLAT_RING3_CS32: u16 = 0xe023;
/// 64-bit code selector for ring 3.
pub const FLAT_RING3_CS64: u16 = 0xe033;
/// 32-bit data selector for ring 3.
pub const FLAT_RING3_DS32: u16 = 0xe02b;
/// 64-bit data selector (null; flat in long mode).
pub const FLAT_RING3_DS64: u16 = 0x0000;
/// 32-bit stack selector for ring 3.
pub const FLAT_RING3_SS32: u16 = 0xe02b;
/// 64-bit stack selector for ring 3.
pub const FLAT_RING3_SS64: u16 = 0xe02b;
/// The guest kernel's 64-bit code selector.
pub const FLAT_KERNEL_CS64: u16 = FLAT_RING3_CS64;
/// The guest kernel's 64-bit data selector.
pub const FLAT_KERNEL_DS64: u16 = FLAT_RING3_DS64;
/// The guest kernel's 64-bit stack selector.
pub const FLAT_KERNEL_SS64: u16 = FLAT_RING3_SS64;
/// Guest user space's 64-bit code selector.
pub const FLAT_USER_CS64: u16 = FLAT_RING3_CS64;
/// Guest user space's 64-bit data selector.
pub const FLAT_USER_DS64: u16 = FLAT_RING3_DS64;
/// Guest user space's 64-bit stack selector.
pub const FLAT_USER_SS64: u16 = FLAT_RING3_SS64;

/// The magic at the start of `start_info`.
pub const START_INFO_MAGIC: &[u8] = b"xen-3.0-x86_64";
/// Bytes of `start_info.cmd_line`, including the NUL.
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// `start_info.flags`.
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// The domain is the initial domain (dom0).
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `mod_start` is a list of multiboot modules, not a single initrd.
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// `mod_start` and `mod_len` are in pages (a PFN and a count), not bytes.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// The tools can use a virtually mapped P2M list (`arch.p2m_vaddr`).
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;

/// What the domain builder hands a PV guest (pointer in RSI at entry).
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct StartInfo {
    /// `"xen-<version>-<platform>"`, NUL-terminated ([`START_INFO_MAGIC`]).
    pub magic: [u8; 32],
    /// Total pages allocated to the guest.
    pub nr_pages: u64,
    /// Machine address of the shared-info page.
    pub shared_info: u64,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Padding.
    pub _pad0: u32,
    /// Machine frame of the store's shared page, and its event channel.
    pub store_mfn: u64,
    /// Event channel of the store's shared page.
    pub store_evtchn: u32,
    /// Padding.
    pub _pad1: u32,
    /// domU: `mfn` then `evtchn` (u32) of the console ring;
    /// dom0: `info_off`, `info_size` (u32 each). See [`StartInfo::console_domu`].
    pub console: [u64; 2],
    /// Virtual address of the bootstrap page tables (the initial CR3).
    pub pt_base: u64,
    /// Number of frames of bootstrap page tables at `pt_base`.
    pub nr_pt_frames: u64,
    /// Virtual address of the page-frame list (p2m).
    pub mfn_list: u64,
    /// Virtual address and length of the module (initrd), if any.
    pub mod_start: u64,
    /// Length of the module at `mod_start`.
    pub mod_len: u64,
    /// The guest command line, NUL-terminated.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First PFN of the initial P2M table, when mapped as `XEN_ELFNOTE_INIT_P2M` asks.
    pub first_p2m_pfn: u64,
    /// Number of PFNs of that initial P2M table.
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

    /// Sets the console ring's machine frame and event channel (domU layout).
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
    /// Odd while the hypervisor updates the record; bumped on every update.
    pub version: u32,
    /// Padding.
    pub _pad0: u32,
    /// TSC at the last update.
    pub tsc_timestamp: u64,
    /// Nanoseconds since boot at `tsc_timestamp`.
    pub system_time: u64,
    /// Multiplier (32.32 fixed point) from shifted TSC ticks to nanoseconds.
    pub tsc_to_system_mul: u32,
    /// Power-of-two shift applied to a TSC delta before `tsc_to_system_mul`.
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: u8,
    /// Padding.
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
/// x86 part of `vcpu_info`.
pub struct ArchVcpuInfo {
    /// CR2 of the last page fault bounced to this vCPU.
    pub cr2: u64,
    /// Padding (unused on PV64).
    pub _pad: u64,
}

const _: () = {
    assert!(size_of::<ArchVcpuInfo>() == 16);
};

/// Per-vCPU part of the shared-info page.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuInfo {
    /// Set by the hypervisor when a port becomes pending; cleared by the guest before scanning.
    pub evtchn_upcall_pending: u8,
    /// Non-zero: no event upcalls (the PV `cli`).
    pub evtchn_upcall_mask: u8,
    /// Padding.
    pub _pad0: [u8; 6],
    /// One bit per word of `evtchn_pending` that may hold pending ports.
    pub evtchn_pending_sel: u64,
    /// The x86 part.
    pub arch: ArchVcpuInfo,
    /// The vCPU's clock.
    pub time: VcpuTimeInfo,
}

const _: () = {
    assert!(size_of::<VcpuInfo>() == 64);
    assert!(offset_of!(VcpuInfo, evtchn_upcall_mask) == 1);
    assert!(offset_of!(VcpuInfo, evtchn_pending_sel) == 8);
    assert!(offset_of!(VcpuInfo, arch) == 16);
    assert!(offset_of!(VcpuInfo, time) == 32);
};

/// vCPUs with a slot in `shared_info` (later ones register a `vcpu_info` elsewhere).
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;
/// Ports in the 2-level event-channel ABI: 64 words of 64 bits.
pub const NR_EVENT_CHANNELS: usize = 64 * 64;

#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
/// x86 part of `shared_info`: the P2M tables the guest publishes, and NMI state.
pub struct ArchSharedInfo {
    /// Guest-written: the size of the P2M table, in pages.
    pub max_pfn: u64,
    /// Guest-written: frame of the list of frames of the P2M frame lists.
    pub pfn_to_mfn_frame_list_list: u64,
    /// `XEN_NMIREASON_*` bits: why the last NMI was sent.
    pub nmi_reason: u64,
    /// Guest-written: CR3 of the linear P2M table's page tables (0: none).
    pub p2m_cr3: u64,
    /// Guest-written: virtual address of the linear P2M table.
    pub p2m_vaddr: u64,
    /// Guest-written: bumped around every P2M table change (odd while changing).
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
    /// Per-vCPU slots for the first `XEN_LEGACY_MAX_VCPUS` vCPUs.
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// One bit per port: an event is pending (set by the hypervisor, cleared by the guest).
    pub evtchn_pending: [u64; 64],
    /// One bit per port: the port is masked (no upcall while set).
    pub evtchn_mask: [u64; 64],
    /// Wallclock at system time 0; `wc_version` is odd while it changes.
    pub wc_version: u32,
    /// Wallclock seconds since the epoch (low 32 bits).
    pub wc_sec: u32,
    /// Wallclock nanoseconds.
    pub wc_nsec: u32,
    /// Upper 32 bits of the wallclock seconds.
    pub wc_sec_hi: u32,
    /// The x86 part.
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
    /// Machine address of the entry to write, with the `MMU_*` command in the low two bits.
    pub ptr: u64,
    /// The new contents (a PTE, or a PFN for `MMU_MACHPHYS_UPDATE`).
    pub val: u64,
}

const _: () = {
    assert!(size_of::<MmuUpdate>() == 16);
};

/// `ptr` is a page-table entry to write; `val` is the new entry, checked.
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// `ptr` is a machine address whose M2P entry becomes `val` (a PFN).
pub const MMU_MACHPHYS_UPDATE: u64 = 1;
/// As a normal update, but keep the entry's accessed and dirty bits.
pub const MMU_PT_UPDATE_PRESERVE_AD: u64 = 2;
/// As a normal update, but `val` is written as given, without GFN-to-MFN translation.
pub const MMU_PT_UPDATE_NO_TRANSLATE: u64 = 3;

/// An extended MMU operation (`mmuext_op`). `arg1` is an MFN or a linear
/// address, `arg2` a count, a vCPU mask pointer or a source MFN, by command.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct MmuextOp {
    /// IN: `MMUEXT_*`.
    pub cmd: u32,
    /// Padding.
    pub _pad: u32,
    /// IN: an MFN or a linear address, by command.
    pub arg1: u64,
    /// IN: a count, a vCPU mask pointer or a source MFN, by command.
    pub arg2: u64,
}

const _: () = {
    assert!(size_of::<MmuextOp>() == 24);
    assert!(offset_of!(MmuextOp, arg1) == 8);
    assert!(offset_of!(MmuextOp, arg2) == 16);
};

/// Pin the L1 table at MFN `arg1` (validate it and keep it typed).
pub const MMUEXT_PIN_L1_TABLE: u32 = 0;
/// Pin the L2 table at MFN `arg1`.
pub const MMUEXT_PIN_L2_TABLE: u32 = 1;
/// Pin the L3 table at MFN `arg1`.
pub const MMUEXT_PIN_L3_TABLE: u32 = 2;
/// Pin the L4 table at MFN `arg1`.
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
/// Unpin the table at MFN `arg1`.
pub const MMUEXT_UNPIN_TABLE: u32 = 4;
/// Switch the kernel page tables to the L4 at MFN `arg1` (a new CR3).
pub const MMUEXT_NEW_BASEPTR: u32 = 5;
/// Flush this vCPU's TLB.
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
/// Invalidate linear address `arg1` in this vCPU's TLB.
pub const MMUEXT_INVLPG_LOCAL: u32 = 7;
/// Flush the TLBs of the vCPUs in the mask at `arg2`.
pub const MMUEXT_TLB_FLUSH_MULTI: u32 = 8;
/// Invalidate linear address `arg1` on the vCPUs in the mask at `arg2`.
pub const MMUEXT_INVLPG_MULTI: u32 = 9;
/// Flush the TLBs of all the domain's vCPUs.
pub const MMUEXT_TLB_FLUSH_ALL: u32 = 10;
/// Invalidate linear address `arg1` on all the domain's vCPUs.
pub const MMUEXT_INVLPG_ALL: u32 = 11;
/// Write back and invalidate this CPU's caches (privileged).
pub const MMUEXT_FLUSH_CACHE: u32 = 12;
/// Install an LDT at linear address `arg1` of `arg2` entries.
pub const MMUEXT_SET_LDT: u32 = 13;
/// Switch the user page tables to the L4 at MFN `arg1` (PV64).
pub const MMUEXT_NEW_USER_BASEPTR: u32 = 15;
/// Zero the page at MFN `arg1`.
pub const MMUEXT_CLEAR_PAGE: u32 = 16;
/// Copy the page at MFN `arg2` to the page at MFN `arg1`.
pub const MMUEXT_COPY_PAGE: u32 = 17;
/// Write back and invalidate all CPUs' caches (privileged).
pub const MMUEXT_FLUSH_CACHE_GLOBAL: u32 = 18;
/// Mark MFN `arg1` as the start of a superpage (removed from Xen).
pub const MMUEXT_MARK_SUPER: u32 = 19;
/// Unmark MFN `arg1` as the start of a superpage (removed from Xen).
pub const MMUEXT_UNMARK_SUPER: u32 = 20;

/// `update_va_mapping` flags.
pub const UVMF_NONE: u64 = 0;
/// Flush the whole TLB after the update.
pub const UVMF_TLB_FLUSH: u64 = 1;
/// Invalidate only the updated address after the update.
pub const UVMF_INVLPG: u64 = 2;
/// Mask of the flush-type bits.
pub const UVMF_FLUSHTYPE_MASK: u64 = 3;
/// The flush targets a vCPU mask, whose pointer is in the flags' upper bits.
pub const UVMF_MULTI: u64 = 0;
/// The flush targets only the local vCPU.
pub const UVMF_LOCAL: u64 = 0;
/// The flush targets all the domain's vCPUs.
pub const UVMF_ALL: u64 = 1 << 2;

/// One entry of the guest's trap table (`set_trap_table`); the table ends
/// with an entry whose `address` is 0.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct TrapInfo {
    /// The exception vector.
    pub vector: u8,
    /// Bits 0-1: the lowest privilege level allowed to `int` to this vector;
    /// bit 2: mask events on entry.
    pub flags: u8,
    /// The code selector of the handler.
    pub cs: u16,
    /// Padding.
    pub _pad: u32,
    /// The handler's address (0 ends the table).
    pub address: u64,
}

const _: () = {
    assert!(size_of::<TrapInfo>() == 16);
    assert!(offset_of!(TrapInfo, cs) == 2);
    assert!(offset_of!(TrapInfo, address) == 8);
};

/// `TrapInfo.flags`: the lowest privilege level allowed to `int` to the vector.
pub const TI_DPL_MASK: u8 = 0b11;
/// `TrapInfo.flags`: mask events on entry to the handler.
pub const TI_MASK_EVENTS: u8 = 1 << 2;

/// What `HYPERVISOR_iret` pops from the guest stack, lowest address first.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct IretContext {
    /// The guest's RAX, restored.
    pub rax: u64,
    /// The guest's R11, restored unless `VGCF_IN_SYSCALL`.
    pub r11: u64,
    /// The guest's RCX, restored unless `VGCF_IN_SYSCALL`.
    pub rcx: u64,
    /// `VGCF_in_syscall`: return as from a syscall (RCX/R11 not restored).
    pub flags: u64,
    /// The return RIP.
    pub rip: u64,
    /// The return CS.
    pub cs: u64,
    /// The return RFLAGS.
    pub rflags: u64,
    /// The return RSP.
    pub rsp: u64,
    /// The return SS.
    pub ss: u64,
}

const _: () = {
    assert!(size_of::<IretContext>() == 72);
};

/// `IretContext.flags`: return as from a syscall (`VGCF_in_syscall`).
pub const VGCF_IN_SYSCALL: u64 = 1 << 8;

/// One call in a `multicall` batch.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct MulticallEntry {
    /// IN: the hypercall number.
    pub op: u64,
    /// OUT: the hypercall's return value.
    pub result: i64,
    /// IN: the hypercall's arguments.
    pub args: [u64; 6],
}

const _: () = {
    assert!(size_of::<MulticallEntry>() == 64);
};

/// `set_segment_base` selectors.
pub const SEGBASE_FS: u32 = 0;
/// Set the user GS base (the one swapped in by `swapgs`).
pub const SEGBASE_GS_USER: u32 = 1;
/// Set the kernel GS base.
pub const SEGBASE_GS_KERNEL: u32 = 2;
/// Load the user GS selector (swapping GS around the load).
pub const SEGBASE_GS_USER_SEL: u32 = 3;

/// `console_io` commands.
pub const CONSOLEIO_WRITE: u32 = 0;
/// Read from Xen's console into a buffer (control domain).
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
