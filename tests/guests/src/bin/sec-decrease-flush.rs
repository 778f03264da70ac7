//! Security finding 10: a frame given back while a translation to it was
//! still cached.
//!
//! A PV guest may clear a PTE without flushing (flushing is its own
//! business, as on Xen) and at once give the frame back with
//! `XENMEM_decrease_reservation`. hv-core freed the frame and handed it
//! out again with the stale translation alive: seen, it became the same
//! domain's grant frame and stayed readable and writable through the old
//! address. A frame must not change hands until no TLB can reach it
//! (Xen flushes on allocation by its TLB-flush clock).
//!
//! This guest maps a frame of its own only in its scratch window, reads
//! it (so the translation is cached), clears the PTE without a flush,
//! gives the frame back, takes a frame again (increase_reservation; the
//! allocator hands out the one just freed), and reads the old address:
//! it must fault (not present), not read the frame's new contents.
//!
//! On hv-core at 0cd41cd the read succeeded. (It relies on QEMU's TLB
//! keeping the stale entry, which it does until a flush; hardware may
//! evict it sooner, which could only make the old code pass.)
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use abi::Hypercall;
    use abi::ops::{MemoryReservation, XENMEM_DECREASE_RESERVATION, XENMEM_INCREASE_RESERVATION};
    use abi::xen::DOMID_SELF;
    use pv_guest_sdk::mm::pte;
    use pv_guest_sdk::{StartInfo, println};
    use test_guests::scratch::Window;
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure_eq, fail, hc, probe};

    const NAME: &str = "sec-decrease-flush";
    const MARKER: u64 = 0x5ec0_0000_f1a5_0001;

    pub fn main(_start: &'static StartInfo) -> ! {
        probe::install();
        finish(NAME, run())
    }

    /// One extent of `cmd` for ourselves; returns how many were done.
    fn reservation(cmd: u32, mfn: &mut u64) -> i64 {
        let reservation = MemoryReservation {
            extent_start: mfn as *mut u64 as u64,
            nr_extents: 1,
            extent_order: 0,
            mem_flags: 0,
            domid: DOMID_SELF,
            _pad: [0; 3],
        };
        #[allow(unsafe_code)]
        // SAFETY: the op reads the reservation and reads or writes the one
        // frame number we point at; the frames involved hold no Rust
        // object (a fresh one, mapped only in the scratch window).
        unsafe {
            test_guests::arch::hypercall(
                Hypercall::MemoryOp as u32,
                [
                    cmd as u64,
                    &reservation as *const MemoryReservation as u64,
                    0,
                    0,
                    0,
                ],
            )
        }
    }

    fn run() -> Outcome {
        let window = match Window::new() {
            Ok(w) => w,
            Err(e) => fail!("setting up the scratch window: {e}"),
        };
        let va = window.va(7);
        // A frame of ours with no Rust object in it, mapped only in the
        // scratch window (its physmap mapping goes first, flushed).
        let frame = match pv_guest_sdk::mm::alloc_frame() {
            Ok(f) => f,
            Err(e) => fail!("allocating a frame: {e}"),
        };
        let mut first = frame.mfn;
        let pte = (first << 12) | pte::PRESENT | pte::WRITABLE | pte::USER | pte::NO_EXECUTE;
        ensure_eq!(
            hc::update_va_mapping(va, pte, abi::xen::UVMF_INVLPG),
            0,
            "mapping the frame in the scratch window"
        );
        #[allow(unsafe_code)]
        // SAFETY: the frame was just allocated and holds no Rust object;
        // nothing uses its physmap address again (the frame is given away).
        let ret = unsafe {
            test_guests::arch::hypercall(
                Hypercall::UpdateVaMapping as u32,
                [frame.va(), 0, abi::xen::UVMF_INVLPG, 0, 0],
            )
        };
        ensure_eq!(ret, 0, "unmapping the frame from the physmap");
        if let Err(t) = probe::write(va, MARKER) {
            fail!("writing the frame: vector {}", t.vector);
        }
        match probe::read(va) {
            Ok(MARKER) => {}
            other => fail!("reading the frame back: {other:?}"),
        }
        // Clear the PTE without a flush: the translation stays cached.
        ensure_eq!(hc::update_va_mapping(va, 0, 0), 0, "clearing the PTE");
        ensure_eq!(
            reservation(XENMEM_DECREASE_RESERVATION, &mut first),
            1,
            "decrease_reservation of the frame"
        );
        let mut second = 0u64;
        ensure_eq!(
            reservation(XENMEM_INCREASE_RESERVATION, &mut second),
            1,
            "increase_reservation after it"
        );
        let reused = if second == first {
            "the same frame"
        } else {
            "another frame"
        };
        match probe::read(va) {
            Err(t) if t.vector == 14 && t.error_code & 1 == 0 => {}
            Err(t) => fail!(
                "reading the old address raised vector {} (error {:#x}); expected a \
                 not-present #PF",
                t.vector,
                t.error_code
            ),
            Ok(value) => fail!(
                "the old address still reads {value:#x} after the frame was given back and \
                 {reused} handed out again: a stale translation survived"
            ),
        }
        println!("{NAME}: no stale translation survives a frame's return ({reused} reused)");
        Ok(())
    }
}
