//! The shared-info page as the guest sees it: memory the hypervisor writes
//! at any time, so every field is an atomic. The layouts mirror
//! `abi::xen::{SharedInfo, VcpuInfo, VcpuTimeInfo}` (checked by the tests).
//!
//! On the target, [`crate::shared`] maps the real page and hands out
//! `&'static SharedInfoPage`; host tests build one in ordinary memory.

use core::sync::atomic::{AtomicI8, AtomicU8, AtomicU32, AtomicU64, Ordering};

use abi::xen::{NR_EVENT_CHANNELS, VcpuTimeInfo, XEN_LEGACY_MAX_VCPUS};

#[derive(zerocopy::FromZeros)]
#[repr(C)]
pub struct VcpuTimeInfoCell {
    pub version: AtomicU32,
    _pad0: u32,
    pub tsc_timestamp: AtomicU64,
    pub system_time: AtomicU64,
    pub tsc_to_system_mul: AtomicU32,
    pub tsc_shift: AtomicI8,
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
    pub time: VcpuTimeInfoCell,
}

/// Bitmap words of the 2-level event-channel ABI.
pub const EVENT_WORDS: usize = NR_EVENT_CHANNELS / 64;

#[derive(zerocopy::FromZeros)]
#[repr(C)]
pub struct SharedInfoPage {
    pub vcpu_info: [VcpuInfoCell; XEN_LEGACY_MAX_VCPUS],
    pub evtchn_pending: [AtomicU64; EVENT_WORDS],
    pub evtchn_mask: [AtomicU64; EVENT_WORDS],
    pub wc_version: AtomicU32,
    pub wc_sec: AtomicU32,
    pub wc_nsec: AtomicU32,
    pub wc_sec_hi: AtomicU32,
    pub max_pfn: AtomicU64,
    pub pfn_to_mfn_frame_list_list: AtomicU64,
    pub nmi_reason: AtomicU64,
    pub p2m_cr3: AtomicU64,
    pub p2m_vaddr: AtomicU64,
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

#[cfg(test)]
mod tests {
    use core::mem::{offset_of, size_of};

    use abi::xen::{SharedInfo, VcpuInfo};

    use super::*;

    #[test]
    fn layouts_match_the_abi() {
        assert_eq!(size_of::<VcpuTimeInfoCell>(), size_of::<VcpuTimeInfo>());
        assert_eq!(
            offset_of!(VcpuTimeInfoCell, tsc_to_system_mul),
            offset_of!(VcpuTimeInfo, tsc_to_system_mul)
        );
        assert_eq!(
            offset_of!(VcpuTimeInfoCell, tsc_shift),
            offset_of!(VcpuTimeInfo, tsc_shift)
        );
        assert_eq!(size_of::<VcpuInfoCell>(), size_of::<VcpuInfo>());
        assert_eq!(
            offset_of!(VcpuInfoCell, upcall_mask),
            offset_of!(VcpuInfo, evtchn_upcall_mask)
        );
        assert_eq!(
            offset_of!(VcpuInfoCell, pending_sel),
            offset_of!(VcpuInfo, evtchn_pending_sel)
        );
        assert_eq!(offset_of!(VcpuInfoCell, cr2), offset_of!(VcpuInfo, arch));
        assert_eq!(offset_of!(VcpuInfoCell, time), offset_of!(VcpuInfo, time));
        assert_eq!(size_of::<SharedInfoPage>(), size_of::<SharedInfo>());
        assert_eq!(
            offset_of!(SharedInfoPage, evtchn_pending),
            offset_of!(SharedInfo, evtchn_pending)
        );
        assert_eq!(
            offset_of!(SharedInfoPage, evtchn_mask),
            offset_of!(SharedInfo, evtchn_mask)
        );
        assert_eq!(
            offset_of!(SharedInfoPage, wc_version),
            offset_of!(SharedInfo, wc_version)
        );
        assert_eq!(
            offset_of!(SharedInfoPage, wc_sec_hi),
            offset_of!(SharedInfo, wc_sec_hi)
        );
        assert_eq!(
            offset_of!(SharedInfoPage, max_pfn),
            offset_of!(SharedInfo, arch)
        );
    }
}
