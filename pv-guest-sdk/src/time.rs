//! Time from the hypervisor's per-vCPU clock (pvclock), the wallclock, and
//! sleeping on the one-shot timer.
//!
//! `vcpu_time_info` says: at TSC value `tsc_timestamp` the system time (ns
//! since the hypervisor booted) was `system_time`; the TSC advances
//! `tsc_to_system_mul / 2^32` ns per tick after a shift by `tsc_shift`. The
//! guest reads the TSC itself, so reading the clock needs no hypercall.

use abi::xen::VcpuTimeInfo;

/// Nanoseconds for `delta` TSC ticks: `((delta << shift) * mul) >> 32`,
/// shifting right for a negative `shift`, in 128-bit arithmetic.
pub fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let shifted = if shift >= 0 {
        delta << (shift as u32).min(63)
    } else {
        delta >> (shift.unsigned_abs() as u32).min(63)
    };
    ((shifted as u128 * mul as u128) >> 32) as u64
}

/// System time in ns at TSC value `tsc`, from a consistent snapshot.
///
/// The difference from the snapshot's TSC is the signed, wrapping one
/// (TSC values are modulo 2^64):
/// - a hypervisor may stamp `tsc_timestamp` a little ahead of what the
///   guest's TSC reads (Xen 4.17 does, for a domU), and the time is then
///   that much before `system_time`; clamping such a reading to the
///   snapshot stops the clock until the next update (about once a second
///   on Xen);
/// - Xen 4.17 starts a domU's TSC near 0 and may stamp its first time
///   info at a TSC from just before, near 2^64; an unsigned comparison
///   takes that for a stamp 2^64 ticks ahead and the clock reads 0 until
///   the next update.
pub fn system_time(info: &VcpuTimeInfo, tsc: u64) -> u64 {
    let (mul, shift) = (info.tsc_to_system_mul, info.tsc_shift);
    let delta = tsc.wrapping_sub(info.tsc_timestamp) as i64;
    if delta >= 0 {
        info.system_time
            .wrapping_add(scale_delta(delta as u64, mul, shift))
    } else {
        info.system_time
            .saturating_sub(scale_delta(delta.unsigned_abs(), mul, shift))
    }
}

/// Wallclock (seconds, nanoseconds since the epoch) given the wallclock
/// at system time 0 and the current system time.
pub fn wallclock(base: (u64, u32), system_ns: u64) -> (u64, u32) {
    let total = base.1 as u64 + system_ns % 1_000_000_000;
    (
        base.0 + system_ns / 1_000_000_000 + total / 1_000_000_000,
        (total % 1_000_000_000) as u32,
    )
}

#[cfg(target_os = "none")]
pub use self::target::*;

#[cfg(target_os = "none")]
mod target {
    use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use abi::event_channel::{Port, VIRQ_TIMER};

    use crate::shared::{shared_info, vcpu};
    use crate::{Result, events, hypercall};

    /// Nanoseconds since the hypervisor booted.
    pub fn now_ns() -> u64 {
        let info = vcpu().time.snapshot();
        super::system_time(&info, crate::arch::cpu::rdtsc())
    }

    /// Seconds and nanoseconds since the Unix epoch.
    pub fn wallclock_now() -> (u64, u32) {
        super::wallclock(shared_info().wallclock_base(), now_ns())
    }

    static TIMER_PORT: AtomicU32 = AtomicU32::new(u32::MAX);
    static TIMER_FIRED: AtomicBool = AtomicBool::new(false);

    fn on_timer(_: Port) {
        TIMER_FIRED.store(true, Ordering::SeqCst);
    }

    /// Binds `VIRQ_TIMER` (once) and returns its port.
    pub fn timer_port() -> Result<Port> {
        let port = TIMER_PORT.load(Ordering::SeqCst);
        if port != u32::MAX {
            return Ok(port);
        }
        let port = events::bind_virq(VIRQ_TIMER, on_timer)?;
        TIMER_PORT.store(port, Ordering::SeqCst);
        Ok(port)
    }

    /// Blocks until system time `deadline_ns` (handlers keep running).
    pub fn sleep_until(deadline_ns: u64) -> Result<()> {
        timer_port()?;
        while now_ns() < deadline_ns {
            TIMER_FIRED.store(false, Ordering::SeqCst);
            hypercall::set_timer_op(deadline_ns)?;
            events::wait_until(|| TIMER_FIRED.load(Ordering::SeqCst) || now_ns() >= deadline_ns);
        }
        Ok(())
    }

    /// Blocks for `ns` nanoseconds.
    pub fn sleep_ns(ns: u64) -> Result<()> {
        sleep_until(now_ns().saturating_add(ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(tsc: u64, system: u64, mul: u32, shift: i8) -> VcpuTimeInfo {
        VcpuTimeInfo {
            tsc_timestamp: tsc,
            system_time: system,
            tsc_to_system_mul: mul,
            tsc_shift: shift,
            ..Default::default()
        }
    }

    #[test]
    fn a_1ghz_tsc_counts_nanoseconds() {
        // mul = 2^31 with shift 1: one tick is one ns.
        let i = info(1000, 5_000, 1 << 31, 1);
        assert_eq!(system_time(&i, 1000), 5_000);
        assert_eq!(system_time(&i, 2500), 6_500);
    }

    #[test]
    fn negative_shift_divides_before_scaling() {
        // 4 GHz TSC: shift -2 then mul 2^32-1 (~1.0): 4 ticks per ns.
        assert_eq!(scale_delta(4_000_000, u32::MAX, -2), 999_999);
        assert_eq!(scale_delta(8, 1 << 31, -1), 2);
    }

    #[test]
    fn scaling_does_not_overflow_for_large_deltas() {
        // An hour at 3 GHz: 1/3 ns per tick = (2/3 * 2^32) / 2^32 >> 1.
        let delta = 3_000_000_000u64 * 3600;
        let ns = scale_delta(delta, 0xaaaa_aaaa, -1);
        assert!(ns.abs_diff(3_600_000_000_000) < 1_000, "{ns}");
        // The largest delta with the largest multiplier still fits.
        assert_eq!(
            scale_delta(u64::MAX, u32::MAX, 0),
            ((u64::MAX as u128 * u32::MAX as u128) >> 32) as u64
        );
    }

    #[test]
    fn tsc_before_the_snapshot_counts_back() {
        // One ns a tick: 990 ticks before the stamp is 990 ns earlier,
        // and the clock keeps moving between two such readings.
        let i = info(1000, 77_000, 1 << 31, 1);
        assert_eq!(system_time(&i, 10), 76_010);
        assert_eq!(system_time(&i, 500), 76_500);
        // Never below zero.
        assert_eq!(system_time(&info(1000, 5, 1 << 31, 1), 0), 0);
    }

    #[test]
    fn a_stamp_before_the_tsc_wrapped_counts_forward() {
        // Xen 4.17 starts a domU's TSC near 0 and may stamp its first time
        // info at a TSC from just before that (0xffff...f0885a3e seen):
        // the difference wraps, and is small and positive.
        let i = info(0u64.wrapping_sub(2_000), 77_000, 1 << 31, 1);
        assert_eq!(system_time(&i, 500), 79_500);
        assert_eq!(system_time(&i, 0), 79_000);
        // A stamp just after a TSC near the top is just ahead of it.
        let i = info(5, 77_000, 1 << 31, 1);
        assert_eq!(system_time(&i, u64::MAX), 76_994);
    }

    #[test]
    fn wallclock_carries_nanoseconds() {
        assert_eq!(
            wallclock((100, 900_000_000), 1_200_000_000),
            (102, 100_000_000)
        );
        assert_eq!(wallclock((0, 0), 0), (0, 0));
    }
}
