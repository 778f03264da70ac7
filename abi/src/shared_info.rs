//! Atomic views of the pages a domain shares with the hypervisor
//! (`xen.h`'s `shared_info`, `vcpu_info`, `vcpu_time_info`, and
//! `grant_table.h`'s `grant_entry_v1`): the same layouts as the plain
//! [`crate::xen`] and [`crate::grant_table`] types, but every field an
//! atomic, because the other side writes them at any time. A guest maps the
//! page and reads it through these; const asserts below keep each view's
//! layout equal to its plain type's.

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicI8, AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};

use crate::grant_table::GrantEntryV1;
use crate::xen::{NR_EVENT_CHANNELS, SharedInfo, VcpuInfo, VcpuTimeInfo, XEN_LEGACY_MAX_VCPUS};

#[derive(zerocopy::FromZeros)]
#[repr(C)]
/// Atomic view of `vcpu_time_info`: the vCPU's clock, written by the hypervisor under `version`.
pub struct VcpuTimeInfoCell {
    /// Odd while the hypervisor updates the fields; bumped on every update.
    pub version: AtomicU32,
    _pad0: u32,
    /// TSC at the last update (`system_time` was taken then).
    pub tsc_timestamp: AtomicU64,
    /// Nanoseconds since boot at `tsc_timestamp`.
    pub system_time: AtomicU64,
    /// Multiplier (32.32 fixed point) converting shifted TSC ticks to nanoseconds.
    pub tsc_to_system_mul: AtomicU32,
    /// Power-of-two shift applied to a TSC delta before `tsc_to_system_mul`.
    pub tsc_shift: AtomicI8,
    /// `XEN_PVCLOCK_*` flags (e.g. the TSC is stable).
    pub flags: AtomicU8,
    _pad1: [u8; 2],
}

impl VcpuTimeInfoCell {
    /// A consistent copy: retried while the hypervisor is mid-update
    /// (`version` odd, or changed during the read).
    pub fn snapshot(&self) -> VcpuTimeInfo {
        loop {
            let version = self.version.load(Ordering::Acquire);
            if version & 1 != 0 {
                core::hint::spin_loop();
                continue;
            }
            let copy = VcpuTimeInfo {
                version,
                _pad0: 0,
                tsc_timestamp: self.tsc_timestamp.load(Ordering::Relaxed),
                system_time: self.system_time.load(Ordering::Relaxed),
                tsc_to_system_mul: self.tsc_to_system_mul.load(Ordering::Relaxed),
                tsc_shift: self.tsc_shift.load(Ordering::Relaxed),
                flags: self.flags.load(Ordering::Relaxed),
                _pad1: [0; 2],
            };
            core::sync::atomic::fence(Ordering::Acquire);
            if self.version.load(Ordering::Relaxed) == version {
                return copy;
            }
        }
    }
}

/// One vCPU's slot: event upcall state, the fault address of the last page
/// fault bounced to the guest, and its clock.
#[derive(zerocopy::FromZeros)]
#[repr(C)]
pub struct VcpuInfoCell {
    /// Set by the hypervisor when it marks a port pending; cleared by the
    /// guest before it scans.
    pub upcall_pending: AtomicU8,
    /// Non-zero: no upcalls (the PV counterpart of RFLAGS.IF = 0).
    pub upcall_mask: AtomicU8,
    _pad0: [u8; 6],
    /// One bit per word of `evtchn_pending` that may hold pending ports.
    pub pending_sel: AtomicU64,
    /// CR2 of the last page fault bounced to this vCPU.
    pub cr2: AtomicU64,
    _arch_pad: u64,
    /// The vCPU's clock.
    pub time: VcpuTimeInfoCell,
}

/// Bitmap words of the 2-level event-channel ABI.
pub const EVENT_WORDS: usize = NR_EVENT_CHANNELS / 64;

#[derive(zerocopy::FromZeros)]
#[repr(C)]
/// Atomic view of `shared_info`: the page the hypervisor shares with a domain.
pub struct SharedInfoPage {
    /// Per-vCPU slots for the first `XEN_LEGACY_MAX_VCPUS` vCPUs.
    pub vcpu_info: [VcpuInfoCell; XEN_LEGACY_MAX_VCPUS],
    /// One bit per port: an event is pending (set by the hypervisor, cleared by the guest).
    pub evtchn_pending: [AtomicU64; EVENT_WORDS],
    /// One bit per port: the port is masked (no upcall while set).
    pub evtchn_mask: [AtomicU64; EVENT_WORDS],
    /// Odd while the hypervisor updates the wallclock; bumped on every update.
    pub wc_version: AtomicU32,
    /// Wallclock at system time 0: seconds since the epoch (low 32 bits).
    pub wc_sec: AtomicU32,
    /// Wallclock at system time 0: nanoseconds.
    pub wc_nsec: AtomicU32,
    /// Wallclock at system time 0: upper 32 bits of the seconds.
    pub wc_sec_hi: AtomicU32,
    /// Guest-written: the size of the P2M table, in pages.
    pub max_pfn: AtomicU64,
    /// Guest-written: frame of the list of frames of the P2M frame lists.
    pub pfn_to_mfn_frame_list_list: AtomicU64,
    /// `XEN_NMIREASON_*` bits: why the last NMI was sent.
    pub nmi_reason: AtomicU64,
    /// Guest-written: CR3 of the linear P2M table's page tables (0: none).
    pub p2m_cr3: AtomicU64,
    /// Guest-written: virtual address of the linear P2M table.
    pub p2m_vaddr: AtomicU64,
    /// Guest-written: bumped around every P2M table change (odd while changing).
    pub p2m_generation: AtomicU64,
}

impl SharedInfoPage {
    /// The wallclock at system time 0, as (seconds, nanoseconds) since the
    /// epoch; retried while `wc_version` is odd or changes.
    pub fn wallclock_base(&self) -> (u64, u32) {
        loop {
            let version = self.wc_version.load(Ordering::Acquire);
            if version & 1 != 0 {
                core::hint::spin_loop();
                continue;
            }
            let sec = (self.wc_sec_hi.load(Ordering::Relaxed) as u64) << 32
                | self.wc_sec.load(Ordering::Relaxed) as u64;
            let nsec = self.wc_nsec.load(Ordering::Relaxed);
            core::sync::atomic::fence(Ordering::Acquire);
            if self.wc_version.load(Ordering::Relaxed) == version {
                return (sec, nsec);
            }
        }
    }
}

const _: () = {
    assert!(size_of::<VcpuTimeInfoCell>() == size_of::<VcpuTimeInfo>());
    assert!(offset_of!(VcpuTimeInfoCell, tsc_timestamp) == offset_of!(VcpuTimeInfo, tsc_timestamp));
    assert!(offset_of!(VcpuTimeInfoCell, system_time) == offset_of!(VcpuTimeInfo, system_time));
    assert!(
        offset_of!(VcpuTimeInfoCell, tsc_to_system_mul)
            == offset_of!(VcpuTimeInfo, tsc_to_system_mul)
    );
    assert!(offset_of!(VcpuTimeInfoCell, tsc_shift) == offset_of!(VcpuTimeInfo, tsc_shift));
    assert!(offset_of!(VcpuTimeInfoCell, flags) == offset_of!(VcpuTimeInfo, flags));
    assert!(size_of::<VcpuInfoCell>() == size_of::<VcpuInfo>());
    assert!(
        offset_of!(VcpuInfoCell, upcall_pending) == offset_of!(VcpuInfo, evtchn_upcall_pending)
    );
    assert!(offset_of!(VcpuInfoCell, upcall_mask) == offset_of!(VcpuInfo, evtchn_upcall_mask));
    assert!(offset_of!(VcpuInfoCell, pending_sel) == offset_of!(VcpuInfo, evtchn_pending_sel));
    assert!(offset_of!(VcpuInfoCell, cr2) == offset_of!(VcpuInfo, arch.cr2));
    assert!(offset_of!(VcpuInfoCell, time) == offset_of!(VcpuInfo, time));
    assert!(size_of::<SharedInfoPage>() == size_of::<SharedInfo>());
    assert!(offset_of!(SharedInfoPage, evtchn_pending) == offset_of!(SharedInfo, evtchn_pending));
    assert!(offset_of!(SharedInfoPage, evtchn_mask) == offset_of!(SharedInfo, evtchn_mask));
    assert!(offset_of!(SharedInfoPage, wc_version) == offset_of!(SharedInfo, wc_version));
    assert!(offset_of!(SharedInfoPage, wc_sec) == offset_of!(SharedInfo, wc_sec));
    assert!(offset_of!(SharedInfoPage, wc_nsec) == offset_of!(SharedInfo, wc_nsec));
    assert!(offset_of!(SharedInfoPage, wc_sec_hi) == offset_of!(SharedInfo, wc_sec_hi));
    assert!(offset_of!(SharedInfoPage, max_pfn) == offset_of!(SharedInfo, arch.max_pfn));
    assert!(
        offset_of!(SharedInfoPage, p2m_generation) == offset_of!(SharedInfo, arch.p2m_generation)
    );
};

/// `grant_entry_v1` as the granting domain and the hypervisor share it: the
/// granter writes `domid` and `frame`, then `flags` (`GTF_permit_access`);
/// the hypervisor sets and clears `GTF_reading`/`GTF_writing` in `flags`
/// with a compare-exchange while a mapping or copy holds the grant.
#[derive(zerocopy::FromZeros)]
#[repr(C)]
pub struct GrantEntryV1Cell {
    /// `GTF_*`: IN from the granter (type, readonly), OUT from the
    /// hypervisor (reading, writing).
    pub flags: AtomicU16,
    /// IN: the domain being granted access.
    pub domid: AtomicU16,
    /// IN: the frame granted (for `GTF_permit_access`).
    pub frame: AtomicU32,
}

const _: () = {
    assert!(size_of::<GrantEntryV1Cell>() == size_of::<GrantEntryV1>());
    assert!(offset_of!(GrantEntryV1Cell, flags) == offset_of!(GrantEntryV1, flags));
    assert!(offset_of!(GrantEntryV1Cell, domid) == offset_of!(GrantEntryV1, domid));
    assert!(offset_of!(GrantEntryV1Cell, frame) == offset_of!(GrantEntryV1, frame));
};
