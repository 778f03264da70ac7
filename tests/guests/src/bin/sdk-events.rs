//! Event channels and time: VIRQ_TIMER bound to a handler, sleeping on the
//! one-shot timer, the pvclock advancing across it, the wallclock, and the
//! PV cli/sti: an event that arrives while upcalls are masked waits, and
//! runs as soon as they are unmasked.
#![cfg_attr(target_os = "none", no_std, no_main)]

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use core::sync::atomic::{AtomicU32, Ordering};

    use abi::event_channel::Port;
    use pv_guest_sdk::{StartInfo, events, hypercall, println, time};
    use test_guests::Checks;

    static FIRED: AtomicU32 = AtomicU32::new(0);

    fn count(_: Port) {
        FIRED.fetch_add(1, Ordering::SeqCst);
    }

    pub fn main(_start: &'static StartInfo) -> ! {
        let mut c = Checks::new("sdk-events");

        let t0 = time::now_ns();
        let t1 = time::now_ns();
        c.check(t0 > 0 && t1 >= t0, "system time is monotonic");

        let port = time::timer_port();
        c.check(port.is_ok(), "VIRQ_TIMER binds");
        let before = time::now_ns();
        c.check(time::sleep_ns(20_000_000).is_ok(), "sleep returns");
        let slept = time::now_ns() - before;
        println!("events: slept {} us for 20000 us", slept / 1000);
        c.check(slept >= 20_000_000, "sleep lasts at least its time");
        c.check(slept < 2_000_000_000, "sleep does not hang");

        let (sec, _) = time::wallclock_now();
        println!("events: wallclock {sec} s since the epoch");
        c.check(sec > 1_600_000_000, "wallclock is after 2020");

        // Take over the timer port with a counting handler. The periodic
        // tick goes, so that every count below is of one-shot timers only
        // (a tick landing next to one made a count of 2).
        c.check(
            hypercall::vcpu_stop_periodic_timer(0).is_ok(),
            "VCPUOP_stop_periodic_timer",
        );
        let port = port.unwrap_or(0);
        events::set_handler(port, count);

        // Masked: the timer fires into the pending bitmap, no upcall.
        let was = events::disable();
        FIRED.store(0, Ordering::SeqCst);
        let deadline = time::now_ns() + 5_000_000;
        c.check(
            hypercall::set_timer_op(deadline).is_ok(),
            "set_timer_op accepts a deadline",
        );
        while time::now_ns() < deadline + 20_000_000 && !events::is_pending(port) {
            core::hint::spin_loop();
        }
        c.check(events::is_pending(port), "timer event pending while masked");
        c.check(FIRED.load(Ordering::SeqCst) == 0, "no upcall while masked");
        events::restore(was);
        c.check(
            FIRED.load(Ordering::SeqCst) == 1,
            "unmasking delivers the held-back event",
        );
        c.check(
            !events::is_pending(port),
            "the upcall cleared the pending bit",
        );

        // Port mask: a masked port stays pending until unmasked.
        events::mask(port);
        FIRED.store(0, Ordering::SeqCst);
        let deadline = time::now_ns() + 5_000_000;
        let _ = hypercall::set_timer_op(deadline);
        while time::now_ns() < deadline + 20_000_000 && !events::is_pending(port) {
            core::hint::spin_loop();
        }
        c.check(
            FIRED.load(Ordering::SeqCst) == 0,
            "a masked port raises no upcall",
        );
        c.check(events::unmask(port).is_ok(), "EVTCHNOP_unmask");
        c.check(
            FIRED.load(Ordering::SeqCst) == 1,
            "unmasking the port delivers it",
        );

        // Block until the next timer event.
        FIRED.store(0, Ordering::SeqCst);
        let _ = hypercall::set_timer_op(time::now_ns() + 2_000_000);
        events::wait_until(|| FIRED.load(Ordering::SeqCst) > 0);
        c.check(
            FIRED.load(Ordering::SeqCst) == 1,
            "SCHEDOP_block wakes on the event",
        );
        c.check(events::enabled(), "upcalls enabled after waiting");

        c.finish()
    }
}
