//! Security finding 5: guest-supplied times that overflow.
//!
//! `VCPUOP_set_periodic_timer` with a period near 2^64 made hv-core
//! compute `now + period`, which wrapped into the past: the timer fired
//! at once, re-armed the LAPIC for 1 ns, and did so forever, an interrupt
//! storm that slowed every other domain even while the attacker slept.
//! Xen 4.17 takes periods from 1 ms to `STIME_DELTA_MAX` (2^62 - 1 ns)
//! and refuses others with -EINVAL.
//!
//! Checks:
//! - periods above 2^62 - 1 (2^62, 2^63, u64::MAX - 1 ms, u64::MAX) are
//!   refused with -EINVAL;
//! - the largest accepted period, 2^62 - 1 ns, and far one-shot
//!   deadlines (2^61 ns ahead by the singleshot op, 2^49 ns ahead by
//!   `set_timer_op`) are accepted and do not fire within 30 ms (a wrapped
//!   deadline would fire at once).
//!
//! On hv-core at 0cd41cd the first period was accepted.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use core::sync::atomic::{AtomicU32, Ordering};

    use abi::Hypercall;
    use abi::event_channel::{Port, VIRQ_TIMER};
    use abi::ops::{VCPUOP_SET_PERIODIC_TIMER, VCPUOP_STOP_PERIODIC_TIMER};
    use pv_guest_sdk::time::now_ns;
    use pv_guest_sdk::{StartInfo, events, hypercall, println};
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure_eq, fail, hc};

    const NAME: &str = "sec-timer-overflow";
    const MS: u64 = 1_000_000;
    /// Xen's `STIME_DELTA_MAX`: the longest period it accepts.
    const LONGEST_PERIOD: u64 = u64::MAX >> 2;
    const EINVAL: i64 = -22;

    static FIRED: AtomicU32 = AtomicU32::new(0);

    fn on_timer(_: Port) {
        FIRED.fetch_add(1, Ordering::SeqCst);
    }

    /// Upcalls during a busy wait of `ns` with events enabled.
    fn count_during(ns: u64) -> u32 {
        let before = FIRED.load(Ordering::SeqCst);
        let end = now_ns() + ns;
        while now_ns() < end {
            core::hint::spin_loop();
        }
        FIRED.load(Ordering::SeqCst) - before
    }

    fn set_periodic(period_ns: u64) -> i64 {
        #[allow(unsafe_code)]
        // SAFETY: the op reads the one u64 we point at.
        unsafe {
            test_guests::arch::hypercall(
                Hypercall::VcpuOp as u32,
                [
                    VCPUOP_SET_PERIODIC_TIMER as u64,
                    0,
                    &period_ns as *const u64 as u64,
                    0,
                    0,
                ],
            )
        }
    }

    pub fn main(_start: &'static StartInfo) -> ! {
        finish(NAME, run())
    }

    fn run() -> Outcome {
        if let Err(e) = events::bind_virq(VIRQ_TIMER, on_timer) {
            fail!("binding VIRQ_TIMER: {e}");
        }
        ensure_eq!(
            hc::vcpu_op_null(VCPUOP_STOP_PERIODIC_TIMER, 0),
            0,
            "VCPUOP_stop_periodic_timer"
        );
        for period in [LONGEST_PERIOD + 1, 1 << 63, u64::MAX - MS, u64::MAX] {
            let ret = set_periodic(period);
            if ret == 0 {
                let storm = count_during(30 * MS);
                let _ = hc::vcpu_op_null(VCPUOP_STOP_PERIODIC_TIMER, 0);
                fail!(
                    "a periodic timer of {period:#x} ns was accepted \
                     ({storm} VIRQ_TIMER upcalls followed in 30 ms)"
                );
            }
            ensure_eq!(ret, EINVAL, "VCPUOP_set_periodic_timer({period:#x} ns)");
        }

        ensure_eq!(
            set_periodic(LONGEST_PERIOD),
            0,
            "VCPUOP_set_periodic_timer(2^62 - 1 ns)"
        );
        ensure_eq!(
            count_during(30 * MS),
            0,
            "VIRQ_TIMER upcalls in 30 ms with a 2^62 - 1 ns period"
        );
        ensure_eq!(
            hc::vcpu_op_null(VCPUOP_STOP_PERIODIC_TIMER, 0),
            0,
            "VCPUOP_stop_periodic_timer"
        );

        // Far, but representable: nothing fires.
        let far = now_ns() + (1 << 61);
        if let Err(e) = hypercall::vcpu_set_singleshot_timer(0, far, 0) {
            fail!("VCPUOP_set_singleshot_timer(now + 2^61 ns): {e}");
        }
        ensure_eq!(
            count_during(30 * MS),
            0,
            "VIRQ_TIMER upcalls in 30 ms after a singleshot deadline 2^61 ns ahead"
        );
        let far = now_ns() + (1 << 49);
        if let Err(e) = hypercall::set_timer_op(far) {
            fail!("set_timer_op(now + 2^49 ns): {e}");
        }
        ensure_eq!(
            count_during(30 * MS),
            0,
            "VIRQ_TIMER upcalls in 30 ms after set_timer_op(now + 2^49 ns)"
        );
        if let Err(e) = hypercall::set_timer_op(0) {
            fail!("set_timer_op(0): {e}");
        }
        println!("{NAME}: periods beyond 2^62 - 1 ns refused; far deadlines stay far");
        Ok(())
    }
}
