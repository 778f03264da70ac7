//! Guest time without hypercalls: the per-vCPU `vcpu_time_info` (pvclock)
//! and the wallclock in shared_info.
//! - the time info is sane (even version, a multiplier, a running clock);
//! - pvclock time never goes backwards over many reads spanning the
//!   hypervisor's updates of the time info, nor across a block and wakeup
//!   (which also takes at least as long as asked);
//! - it advances at one steady rate against the TSC: the TSC frequency it
//!   implies is plausible, and a busy loop of a fixed number of TSC cycles
//!   takes the time that rate predicts;
//! - the wallclock (`wc_sec`/`wc_nsec`/`wc_sec_hi` plus system time) is a
//!   plausible date: 2024 or later, before 2100.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use core::sync::atomic::Ordering;

    use pv_guest_sdk::time::{now_ns, sleep_ns, wallclock_now};
    use pv_guest_sdk::{StartInfo, println, shared};
    use test_guests::arch::rdtsc;
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure, fail};

    const NAME: &str = "abi-pvclock";
    const MS: u64 = 1_000_000;
    /// 2024-01-01 and 2100-01-01, 00:00 UTC.
    const YEAR_2024: u64 = 1_704_067_200;
    const YEAR_2100: u64 = 4_102_444_800;

    pub fn main(_start: &'static StartInfo) -> ! {
        finish(NAME, run())
    }

    fn run() -> Outcome {
        time_info()?;
        monotonic(1500 * MS)?;
        across_block()?;
        rate()?;
        wallclock()?;
        Ok(())
    }

    fn time_info() -> Outcome {
        let info = shared::vcpu().time.snapshot();
        ensure!(
            info.version.is_multiple_of(2),
            "snapshot with odd version {}",
            info.version
        );
        ensure!(info.tsc_to_system_mul != 0, "tsc_to_system_mul is 0");
        ensure!(
            (-32..32).contains(&info.tsc_shift),
            "tsc_shift {} is out of range",
            info.tsc_shift
        );
        let t0 = now_ns();
        let mut t1 = t0;
        for _ in 0..1_000_000 {
            t1 = now_ns();
            if t1 != t0 {
                break;
            }
        }
        ensure!(t1 > t0, "pvclock time does not move ({t0} ns)");
        println!(
            "{NAME}: mul {:#x} shift {} system_time {} ns flags {:#x}",
            info.tsc_to_system_mul, info.tsc_shift, info.system_time, info.flags
        );
        Ok(())
    }

    /// Reads the clock back to back for `span` ns; no read may be below
    /// the one before. Also watches the time info's own `system_time`,
    /// which the hypervisor republishes as time goes on.
    fn monotonic(span: u64) -> Outcome {
        let vcpu = shared::vcpu();
        let start = now_ns();
        let mut last = start;
        let mut reads = 0u64;
        let mut updates = 0u64;
        let mut last_version = vcpu.time.version.load(Ordering::Acquire);
        let mut last_published = vcpu.time.snapshot().system_time;
        while last - start < span {
            let now = now_ns();
            reads += 1;
            if now < last {
                fail!(
                    "pvclock went back {} ns after {reads} reads ({last} -> {now})",
                    last - now
                );
            }
            last = now;
            let version = vcpu.time.version.load(Ordering::Acquire);
            if version != last_version {
                last_version = version;
                let published = vcpu.time.snapshot().system_time;
                if published < last_published {
                    fail!(
                        "the time info's system_time went back ({last_published} -> {published})"
                    );
                }
                last_published = published;
                updates += 1;
            }
        }
        println!(
            "{NAME}: {reads} reads over {} ms, monotonic; {updates} time info updates seen",
            span / MS
        );
        Ok(())
    }

    fn across_block() -> Outcome {
        for ms in [10, 1, 30] {
            let before = now_ns();
            if let Err(e) = sleep_ns(ms * MS) {
                fail!("sleeping {ms} ms (set_timer_op and block): {e}");
            }
            let after = now_ns();
            ensure!(
                after >= before,
                "pvclock went back across a block: {before} -> {after}"
            );
            ensure!(
                after - before >= ms * MS,
                "a {ms} ms sleep took {} ns by pvclock",
                after - before
            );
            ensure!(
                after - before < ms * MS + 2_000 * MS,
                "a {ms} ms sleep took {} ms",
                (after - before) / MS
            );
            let next = now_ns();
            ensure!(
                next >= after,
                "pvclock went back after a wakeup: {after} -> {next}"
            );
        }
        Ok(())
    }

    /// A TSC reading and the pvclock time at that moment: both read
    /// back to back, the pair kept only if no stall (the host descheduling
    /// QEMU, an interrupt) came between them, so a loaded machine cannot
    /// make the pair disagree by milliseconds.
    fn paired() -> (u64, u64) {
        let mut best = (u64::MAX, 0, 0);
        for _ in 0..1000 {
            let before = rdtsc();
            let ns = now_ns();
            let after = rdtsc();
            let gap = after.wrapping_sub(before);
            if gap < best.0 {
                best = (gap, before + gap / 2, ns);
            }
            // A few thousand cycles is two reads and the pvclock formula.
            if gap < 20_000 {
                break;
            }
        }
        (best.1, best.2)
    }

    /// The TSC rate pvclock implies over 100 ms, then a busy loop of a
    /// fixed number of TSC cycles must take the time that rate predicts.
    fn rate() -> Outcome {
        let (tsc0, ns0) = paired();
        while now_ns() - ns0 < 100 * MS {
            core::hint::spin_loop();
        }
        let (tsc1, ns1) = paired();
        let khz = (tsc1 - tsc0) as u128 * 1_000_000 / (ns1 - ns0) as u128;
        println!("{NAME}: pvclock implies a {} MHz TSC", khz / 1000);
        ensure!(
            (100_000..=100_000_000).contains(&khz),
            "pvclock implies a TSC of {khz} kHz, outside 100 MHz - 100 GHz"
        );

        let cycles = (khz * 50) as u64; // 50 ms worth
        let (start, start_ns) = paired();
        while rdtsc() - start < cycles {
            core::hint::spin_loop();
        }
        // The loop ends at the first TSC reading past `cycles`, which on
        // a loaded host can come milliseconds late: what pvclock must
        // agree with is the TSC's own count to the end.
        let (end, end_ns) = paired();
        let ran = end - start;
        let elapsed = end_ns - start_ns;
        let want = (ran as u128 * 1_000_000 / khz) as u64;
        ensure!(
            elapsed.abs_diff(want) <= want / 50,
            "a busy loop of {ran} TSC cycles ({want} ns at that rate, {cycles} asked) took {elapsed} ns by pvclock"
        );
        Ok(())
    }

    fn wallclock() -> Outcome {
        let si = shared::shared_info();
        let version = si.wc_version.load(Ordering::Acquire);
        let nsec = si.wc_nsec.load(Ordering::Relaxed);
        ensure!(nsec < 1_000_000_000, "wc_nsec is {nsec}");
        let (sec, ns) = wallclock_now();
        let days = sec / 86_400;
        let (y, m, d) = civil_from_days(days as i64);
        println!(
            "{NAME}: wallclock {y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03} UTC (wc_version {version})",
            sec % 86_400 / 3600,
            sec % 3600 / 60,
            sec % 60,
            ns / 1_000_000
        );
        ensure!(
            (YEAR_2024..YEAR_2100).contains(&sec),
            "wallclock {sec} s since the epoch is not between 2024 and 2100"
        );
        Ok(())
    }

    /// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's
    /// days-to-civil algorithm).
    fn civil_from_days(z: i64) -> (i64, u32, u32) {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        (yoe + era * 400 + (m <= 2) as i64, m, d)
    }
}
