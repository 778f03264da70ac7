//! The SDK's clock in a domU (dom0 creates it, `create domu-clock`), where
//! Xen 4.17 publishes time info whose `tsc_timestamp` can be ahead of the
//! TSC the guest reads: the clock must still advance between two reads a
//! millisecond apart, and a 100 ms sleep must last 100-150 ms. Both are
//! measured against the raw TSC too (scaled by the time info's own
//! multiplier), so a clock that stands still cannot vouch for itself.
//! Four rounds, one result line.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use pv_guest_sdk::time::{now_ns, scale_delta, sleep_ns};
    use pv_guest_sdk::{StartInfo, println, shared};
    use test_guests::arch::rdtsc;
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure, fail};

    const NAME: &str = "domu-clock";
    const MS: u64 = 1_000_000;
    const ROUNDS: u32 = 4;
    /// The sleep, and how long it may last.
    const SLEEP: u64 = 100 * MS;
    const SLEEP_MAX: u64 = 150 * MS;

    pub fn main(_start: &'static StartInfo) -> ! {
        finish(NAME, run())
    }

    /// Nanoseconds the TSC advanced by `cycles`, at the rate the
    /// hypervisor publishes.
    fn tsc_ns(cycles: u64) -> u64 {
        let info = shared::vcpu().time.snapshot();
        scale_delta(cycles, info.tsc_to_system_mul, info.tsc_shift)
    }

    fn run() -> Outcome {
        let info = shared::vcpu().time.snapshot();
        println!(
            "{NAME}: time info version {} system_time {} ns at TSC {:#x}, mul {:#x} shift {}; \
             the TSC reads {:#x}",
            info.version,
            info.system_time,
            info.tsc_timestamp,
            info.tsc_to_system_mul,
            info.tsc_shift,
            rdtsc()
        );
        for round in 1..=ROUNDS {
            let advanced = two_reads()?;
            let (by_tsc, by_clock) = one_sleep()?;
            println!(
                "{NAME}: round {round}: two reads 1 ms apart by the TSC differ by {} us; \
                 a 100 ms sleep took {} ms by the TSC, {} ms by the clock",
                advanced / 1000,
                by_tsc / MS,
                by_clock / MS
            );
        }
        Ok(())
    }

    /// Two clock reads with a millisecond of TSC between them; their
    /// difference.
    fn two_reads() -> Result<u64, test_guests::verdict::Stop> {
        let first = now_ns();
        let start = rdtsc();
        while tsc_ns(rdtsc().wrapping_sub(start)) < MS {
            core::hint::spin_loop();
        }
        let second = now_ns();
        ensure!(
            second > first,
            "two reads 1 ms apart by the TSC gave {first} ns and {second} ns: the clock stands still"
        );
        ensure!(
            second - first >= MS / 2,
            "two reads 1 ms apart by the TSC are only {} ns apart by the clock",
            second - first
        );
        Ok(second - first)
    }

    /// A 100 ms sleep, timed by the TSC and by the clock.
    fn one_sleep() -> Result<(u64, u64), test_guests::verdict::Stop> {
        let (tsc0, clock0) = (rdtsc(), now_ns());
        if let Err(e) = sleep_ns(SLEEP) {
            fail!("sleeping 100 ms: {e}");
        }
        let (tsc1, clock1) = (rdtsc(), now_ns());
        let by_tsc = tsc_ns(tsc1.wrapping_sub(tsc0));
        let by_clock = clock1.saturating_sub(clock0);
        ensure!(
            (SLEEP..=SLEEP_MAX).contains(&by_tsc),
            "a 100 ms sleep took {} ms by the TSC (want 100-150)",
            by_tsc / MS
        );
        ensure!(
            by_clock >= SLEEP,
            "a 100 ms sleep took {} ms by the clock",
            by_clock / MS
        );
        Ok((by_tsc, by_clock))
    }
}
