//! A memory reservation change is preempted like every other batch.
//!
//! `XENMEM_decrease_reservation` and `increase_reservation` take any
//! number of extents; done in one pass with interrupts off, a big one
//! (thousands of frames, or a hostile 2^40) keeps the CPU from every other
//! domain. As on Xen, the work goes in passes: after the budget, the call
//! is continued with the extent to resume from in the command's high bits
//! (`cmd | start << 6`), and its result counts every pass.
//!
//! The guest gives back as many of its frames as it can spare in one
//! `decrease_reservation`, then takes as many back in one
//! `increase_reservation`, each with a one-shot timer armed 1 ms ahead and
//! events unmasked (see `test_guests::preempt`). PASS iff, for each, the
//! timer's upcall found the guest at the call's `syscall` (the call was
//! under way) and the call returned the full count. (A hostile count such
//! as 2^40 goes the same way on hv-core, a pass at a time until the
//! domain's limit; Xen 4.17 answers it with 0 extents.)
//!
//! On hv-core before the reservation budget, each call was one pass.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use alloc::vec::Vec;

    use abi::Hypercall;
    use abi::ops::{MemoryReservation, XENMEM_DECREASE_RESERVATION, XENMEM_INCREASE_RESERVATION};
    use abi::xen::{DOMID_SELF, MMUEXT_TLB_FLUSH_LOCAL, MmuextOp};
    use pv_guest_sdk::time::now_ns;
    use pv_guest_sdk::{StartInfo, events, mm, println};
    use test_guests::preempt;
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure, ensure_eq, fail, hc};

    const NAME: &str = "sec-reservation-preempt";
    const MS: u64 = 1_000_000;
    /// Frames kept for everything else the guest does.
    const SPARE_FRAMES: u64 = 256;
    /// At least this many frames go back, or the test cannot tell.
    const MIN_FRAMES: usize = 4096;

    pub fn main(_start: &'static StartInfo) -> ! {
        finish(NAME, run())
    }

    /// One reservation call of `count` extents through `preempt::call`,
    /// with the timer armed 1 ms ahead; returns its result.
    fn reservation(cmd: u32, extents: u64, count: u64) -> Result<i64, &'static str> {
        let reservation = MemoryReservation {
            extent_start: extents,
            nr_extents: count,
            extent_order: 0,
            mem_flags: 0,
            domid: DOMID_SELF,
            _pad: [0; 3],
        };
        preempt::arm(now_ns() + MS)?;
        #[allow(unsafe_code)]
        // SAFETY: the op reads the reservation and the frame numbers we
        // point at (or writes none: `extents` 0); the frames given back
        // hold no Rust object and are mapped nowhere.
        let ret = unsafe {
            preempt::call(
                Hypercall::MemoryOp,
                [
                    cmd as u64,
                    &reservation as *const MemoryReservation as u64,
                    0,
                    0,
                    0,
                ],
            )
        };
        let returned_at = now_ns();
        events::wait_until(|| preempt::upcall().is_some() || now_ns() > returned_at + 2_000 * MS);
        Ok(ret)
    }

    fn preempted(what: &str) -> Outcome {
        match preempt::upcall() {
            Some(upcall) if upcall.during_call() => {
                println!(
                    "{NAME}: {what}: the upcall came between passes (resuming at extent {})",
                    upcall.rdi >> 6
                );
                Ok(())
            }
            Some(upcall) if upcall.when() == preempt::When::BeforeCall => fail!(
                "{what}: the timer's upcall (armed 1 ms ahead) came before the call began \
                 (at RIP {:#x}): the host stalled the guest, the try tells nothing",
                upcall.rip
            ),
            Some(upcall) => fail!(
                "{what}: the timer's upcall (armed 1 ms ahead) came only after the call \
                 returned (at RIP {:#x}): one pass did it all",
                upcall.rip
            ),
            None => fail!("{what}: the timer's upcall never came"),
        }
    }

    fn run() -> Outcome {
        if let Err(what) = preempt::install() {
            fail!("{what} failed");
        }
        // Frames of ours with nothing in them, unmapped from the physmap.
        let spare = mm::free_frames().saturating_sub(SPARE_FRAMES);
        let mut mfns = Vec::new();
        for _ in 0..spare {
            let Ok(frame) = mm::alloc_frame() else { break };
            #[allow(unsafe_code)]
            // SAFETY: the frame was just allocated and holds no Rust
            // object; nothing uses its physmap address again (it is
            // given away).
            let ret = unsafe {
                test_guests::arch::hypercall(
                    Hypercall::UpdateVaMapping as u32,
                    [frame.va(), 0, 0, 0, 0],
                )
            };
            ensure_eq!(ret, 0, "unmapping a frame from the physmap");
            mfns.push(frame.mfn);
        }
        let flush = MmuextOp {
            cmd: MMUEXT_TLB_FLUSH_LOCAL,
            _pad: 0,
            arg1: 0,
            arg2: 0,
        };
        ensure_eq!(hc::mmuext_op(&[flush]).0, 0, "MMUEXT_TLB_FLUSH_LOCAL");
        ensure!(
            mfns.len() >= MIN_FRAMES,
            "only {} frames to spare, want {MIN_FRAMES}",
            mfns.len()
        );
        let count = mfns.len() as u64;

        let given = match reservation(XENMEM_DECREASE_RESERVATION, mfns.as_ptr() as u64, count) {
            Ok(ret) => ret,
            Err(what) => fail!("{what} failed"),
        };
        ensure_eq!(
            given,
            count as i64,
            "decrease_reservation of {count} frames"
        );
        preempted("decrease_reservation")?;

        // No array: the frames themselves are not needed back.
        let taken = match reservation(XENMEM_INCREASE_RESERVATION, 0, count) {
            Ok(ret) => ret,
            Err(what) => fail!("{what} failed"),
        };
        ensure_eq!(
            taken,
            count as i64,
            "increase_reservation of {count} extents"
        );
        preempted("increase_reservation")?;
        println!("{NAME}: {count} frames given back and taken again, each call in passes");
        Ok(())
    }
}
