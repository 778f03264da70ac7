//! `VCPUOP_register_vcpu_info` (booted with `dom0_max_vcpus=2`), Xen's
//! answers:
//! - `-ENXIO` for a vcpu_info that would cross the page end or is not
//!   8-aligned; `-EINVAL` for a frame that is one of our page tables (it
//!   cannot take a writable type) and for a frame that does not exist;
//!   `-ENOENT` for vCPU 2; on hv-core, `-EINVAL` for the shared_info
//!   frame (Xen 4.17 accepts it: `docs/abi.md`);
//! - vCPU 1, down, may have its vcpu_info moved by vCPU 0;
//! - vCPU 0's moves to a frame of ours: the new place holds the old
//!   contents (the upcall mask, the time record) with every selector bit
//!   and the upcall flag set; a second registration is `-EINVAL`;
//! - afterwards an event for vCPU 0 sets its selector bit and upcall flag
//!   in the new place, not in the old slot.
//!
//! Upcalls stay masked throughout (the mask moves with the vcpu_info):
//! the SDK's event layer reads the old slot and takes no part.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use core::sync::atomic::Ordering::SeqCst;

    use abi::Errno;
    use pv_guest_sdk::shared::shared_info;
    use pv_guest_sdk::{StartInfo, mm, println};
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure, ensure_eq, fail, hc};

    const NAME: &str = "abi-vcpu-info";
    const EINVAL: i64 = -(Errno::Inval as i64);
    const ENXIO: i64 = -(Errno::NxIo as i64);
    const ENOENT: i64 = -(Errno::NoEnt as i64);
    /// Where in our frame vCPU 0's vcpu_info goes, and vCPU 1's.
    const AT0: usize = 0x100;
    const AT1: usize = 0x800;
    /// `struct vcpu_info` field offsets.
    const PENDING: usize = 0;
    const MASK: usize = 1;
    const SEL: usize = 8;
    const TIME: usize = 32;
    const TIME_MUL: usize = TIME + 24;

    pub fn main(_start: &'static StartInfo) -> ! {
        finish(NAME, run())
    }

    fn run() -> Outcome {
        let old = &shared_info().vcpu_info[0];
        // No upcalls: the mask is copied to the new place.
        old.upcall_mask.store(1, SeqCst);
        let frame = match mm::alloc_shared() {
            Ok(f) => f,
            Err(e) => fail!("allocating a frame: {e:?}"),
        };
        let page = frame.page();

        // The refusals.
        ensure_eq!(
            hc::register_vcpu_info(0, frame.mfn(), 4096 - 32),
            ENXIO,
            "a vcpu_info crossing the page end"
        );
        ensure_eq!(
            hc::register_vcpu_info(0, frame.mfn(), 4),
            ENXIO,
            "a vcpu_info at an offset that is not 8-aligned"
        );
        ensure_eq!(
            hc::register_vcpu_info(0, mm::kernel_l4(), 0),
            EINVAL,
            "a vcpu_info in our L4 page table"
        );
        ensure_eq!(
            hc::register_vcpu_info(0, 0x7f_ffff_ffff, 0),
            EINVAL,
            "a vcpu_info in a frame that does not exist"
        );
        ensure_eq!(
            hc::register_vcpu_info(2, frame.mfn(), 0),
            ENOENT,
            "the vcpu_info of vCPU 2"
        );

        if test_guests::host::is_hv_core() {
            let shared = pv_guest_sdk::start_info().shared_info_maddr() >> 12;
            ensure_eq!(
                hc::register_vcpu_info(1, shared, 0),
                EINVAL,
                "a vcpu_info in the shared_info frame (hv-core's own page)"
            );
        }

        // vCPU 1 is down: ours to move.
        ensure_eq!(
            hc::register_vcpu_info(1, frame.mfn(), AT1 as u32),
            0,
            "moving vCPU 1's vcpu_info (it is down)"
        );

        // Ours.
        let old_mul = old.time.tsc_to_system_mul.load(SeqCst);
        ensure!(old_mul != 0, "the old slot has a time record");
        ensure_eq!(
            hc::register_vcpu_info(0, frame.mfn(), AT0 as u32),
            0,
            "moving vCPU 0's vcpu_info"
        );
        let at = |field| AT0 + field;
        ensure_eq!(page.u8(at(MASK)).load(SeqCst), 1, "the mask, moved");
        ensure_eq!(
            page.u8(at(PENDING)).load(SeqCst),
            1,
            "the upcall flag after the move"
        );
        ensure_eq!(
            page.u64(at(SEL)).load(SeqCst),
            u64::MAX,
            "the selector after the move"
        );
        // Xen may recalibrate the scale a little meanwhile.
        let new_mul = page.u32(at(TIME_MUL)).load(SeqCst);
        ensure!(
            new_mul.abs_diff(old_mul) <= old_mul / 100,
            "the time record, moved: tsc_to_system_mul {new_mul:#x}, was {old_mul:#x}"
        );
        ensure_eq!(
            page.u32(at(TIME)).load(SeqCst) % 2,
            0,
            "the time record's version (even: not mid-update)"
        );
        ensure_eq!(
            hc::register_vcpu_info(0, frame.mfn(), 0),
            EINVAL,
            "moving vCPU 0's vcpu_info a second time"
        );

        // An event for vCPU 0 lands in the new place.
        let port = match hc::bind_ipi(0) {
            Ok(p) => p,
            Err(e) => fail!("EVTCHNOP_bind_ipi(0): {e}"),
        };
        let word = port as usize / 64;
        shared_info().evtchn_mask[word].fetch_and(!(1 << (port % 64)), SeqCst);
        shared_info().evtchn_pending[word].fetch_and(!(1 << (port % 64)), SeqCst);
        page.u64(at(SEL)).store(0, SeqCst);
        page.u8(at(PENDING)).store(0, SeqCst);
        old.pending_sel.store(0, SeqCst);
        old.upcall_pending.store(0, SeqCst);
        ensure_eq!(hc::evtchn_send(port), 0, "EVTCHNOP_send to ourselves");
        ensure_eq!(
            page.u64(at(SEL)).load(SeqCst),
            1 << word,
            "the selector in the new place after the send"
        );
        ensure_eq!(
            page.u8(at(PENDING)).load(SeqCst),
            1,
            "the upcall flag in the new place after the send"
        );
        ensure_eq!(
            (
                old.pending_sel.load(SeqCst),
                old.upcall_pending.load(SeqCst)
            ),
            (0, 0),
            "the old slot after the send"
        );
        println!(
            "{NAME}: vcpu_info moved to frame {:#x}+{AT0:#x}",
            frame.mfn()
        );
        Ok(())
    }
}
