//! The one-shot timer and VIRQ_TIMER:
//! - the default periodic timer (Xen gives each PV vCPU one) stops with
//!   `VCPUOP_stop_periodic_timer`;
//! - `set_timer_op(deadline)` then `SCHEDOP_block`: the VIRQ arrives, and
//!   never before the deadline (pvclock time read in the upcall);
//! - the same through `VCPUOP_set_singleshot_timer`;
//! - a deadline already past fires at once, also through the singleshot
//!   op with `VCPU_SSHOTTMR_future` (which Xen 4.17.7 ignores);
//! - `set_timer_op(0)` and `VCPUOP_stop_singleshot_timer` cancel.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    use abi::event_channel::{Port, VIRQ_TIMER};
    use abi::ops::{
        VCPU_SSHOTTMR_FUTURE, VCPUOP_STOP_PERIODIC_TIMER, VCPUOP_STOP_SINGLESHOT_TIMER,
    };
    use pv_guest_sdk::time::now_ns;
    use pv_guest_sdk::{StartInfo, events, hypercall, println};
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure, ensure_eq, fail, hc};

    const NAME: &str = "abi-timer";
    const MS: u64 = 1_000_000;
    /// How late a timer may be before the test calls it lost (TCG is slow,
    /// and the host may be busy).
    const LATE_LIMIT: u64 = 2_000 * MS;

    static FIRED: AtomicU32 = AtomicU32::new(0);
    static FIRED_AT: AtomicU64 = AtomicU64::new(0);

    fn on_timer(_: Port) {
        FIRED_AT.store(now_ns(), Ordering::SeqCst);
        FIRED.fetch_add(1, Ordering::SeqCst);
    }

    fn fired() -> u32 {
        FIRED.load(Ordering::SeqCst)
    }

    pub fn main(_start: &'static StartInfo) -> ! {
        finish(NAME, run())
    }

    fn run() -> Outcome {
        if let Err(e) = events::bind_virq(VIRQ_TIMER, on_timer) {
            fail!("binding VIRQ_TIMER: {e}");
        }
        // Ticks of the periodic timer, if the hypervisor started one.
        let ticks = count_during(50 * MS);
        println!("{NAME}: {ticks} VIRQ_TIMER upcalls in 50 ms before stopping the periodic timer");
        ensure_eq!(
            hc::vcpu_op_null(VCPUOP_STOP_PERIODIC_TIMER, 0),
            0,
            "VCPUOP_stop_periodic_timer(vcpu 0)"
        );
        ensure_eq!(
            count_during(30 * MS),
            0,
            "VIRQ_TIMER upcalls in 30 ms with no timer armed"
        );

        for delay in [20 * MS, 5 * MS, MS] {
            let deadline = now_ns() + delay;
            if let Err(e) = hypercall::set_timer_op(deadline) {
                fail!("set_timer_op(now + {} ms): {e}", delay / MS);
            }
            wait_for("set_timer_op", deadline)?;
        }

        let deadline = now_ns() + 10 * MS;
        if let Err(e) = hypercall::vcpu_set_singleshot_timer(0, deadline, 0) {
            fail!("VCPUOP_set_singleshot_timer(now + 10 ms): {e}");
        }
        wait_for("VCPUOP_set_singleshot_timer", deadline)?;

        past_deadlines()?;
        cancelling()?;
        println!("{NAME}: set_timer_op and singleshot deadlines kept, cancels hold");
        Ok(())
    }

    /// Upcalls during a busy wait of `ns` with events enabled.
    fn count_during(ns: u64) -> u32 {
        let before = fired();
        let end = now_ns() + ns;
        while now_ns() < end {
            core::hint::spin_loop();
        }
        fired() - before
    }

    /// Blocks until the timer fires; checks it fired no earlier than
    /// `deadline` and exactly once.
    fn wait_for(what: &str, deadline: u64) -> Outcome {
        let before = fired();
        let give_up = deadline + LATE_LIMIT;
        events::wait_until(|| fired() != before || now_ns() > give_up);
        ensure!(
            fired() != before,
            "{what}: no VIRQ_TIMER within {} ms of the deadline",
            LATE_LIMIT / MS
        );
        let at = FIRED_AT.load(Ordering::SeqCst);
        ensure!(
            at >= deadline,
            "{what}: VIRQ_TIMER at {at} ns, {} ns before the deadline {deadline}",
            deadline - at
        );
        ensure_eq!(
            count_during(5 * MS),
            0,
            "{what}: further upcalls after the one-shot fired"
        );
        println!(
            "{NAME}: {what}: fired {} us after the deadline",
            (at - deadline) / 1000
        );
        Ok(())
    }

    fn past_deadlines() -> Outcome {
        let before = fired();
        if let Err(e) = hypercall::set_timer_op(now_ns() - MS) {
            fail!("set_timer_op(a past deadline): {e}");
        }
        let give_up = now_ns() + LATE_LIMIT;
        events::wait_until(|| fired() != before || now_ns() > give_up);
        ensure_eq!(
            fired(),
            before + 1,
            "upcalls after set_timer_op(a past deadline)"
        );

        // Xen 4.17.7 no longer honours VCPU_SSHOTTMR_future (old Linux
        // misused it and its stable releases dropped it): a past deadline
        // is accepted and fires at once like any other.
        let before = fired();
        let past = now_ns() - MS;
        if let Err(e) = hypercall::vcpu_set_singleshot_timer(0, past, VCPU_SSHOTTMR_FUTURE) {
            fail!("VCPUOP_set_singleshot_timer(a past deadline, VCPU_SSHOTTMR_future): {e}");
        }
        let give_up = now_ns() + LATE_LIMIT;
        events::wait_until(|| fired() != before || now_ns() > give_up);
        ensure_eq!(
            fired(),
            before + 1,
            "upcalls after a singleshot timer with a past deadline"
        );
        Ok(())
    }

    fn cancelling() -> Outcome {
        if let Err(e) = hypercall::set_timer_op(now_ns() + 10 * MS) {
            fail!("set_timer_op(now + 10 ms): {e}");
        }
        if let Err(e) = hypercall::set_timer_op(0) {
            fail!("set_timer_op(0): {e}");
        }
        ensure_eq!(
            count_during(30 * MS),
            0,
            "upcalls after set_timer_op(0) cancelled a timer 10 ms ahead"
        );

        if let Err(e) = hypercall::vcpu_set_singleshot_timer(0, now_ns() + 10 * MS, 0) {
            fail!("VCPUOP_set_singleshot_timer(now + 10 ms): {e}");
        }
        ensure_eq!(
            hc::vcpu_op_null(VCPUOP_STOP_SINGLESHOT_TIMER, 0),
            0,
            "VCPUOP_stop_singleshot_timer"
        );
        ensure_eq!(
            count_during(30 * MS),
            0,
            "upcalls after VCPUOP_stop_singleshot_timer"
        );
        Ok(())
    }
}
