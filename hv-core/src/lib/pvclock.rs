//! Xen's pvclock arithmetic: how a guest turns a TSC reading into system
//! time (nanoseconds since boot) without a hypercall.
//!
//! The guest computes `system_time + ((tsc - tsc_timestamp) shifted by
//! tsc_shift) * tsc_to_system_mul >> 32`, where a positive shift shifts
//! left and a negative one right. hv-core picks `mul`/`shift` once from the
//! calibrated TSC frequency so that `mul` keeps the most precision while
//! fitting in 32 bits.

/// The scale a guest applies to a TSC delta.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscScale {
    pub mul: u32,
    pub shift: i8,
}

impl TscScale {
    /// The scale for a TSC running at `tsc_hz` (Xen's `set_time_scale`).
    pub fn for_hz(tsc_hz: u64) -> Self {
        assert!(tsc_hz > 0, "TSC frequency must be known");
        const NS_PER_S: u64 = 1_000_000_000;
        let mut shift: i8 = 0;
        let mut hz = tsc_hz;
        // Bring the frequency into [NS_PER_S/2, NS_PER_S) so that the
        // 32.32 fraction NS_PER_S / hz lies in (1, 2] ... and fits.
        while hz > NS_PER_S * 2 {
            hz >>= 1;
            shift -= 1;
        }
        while hz <= NS_PER_S {
            hz <<= 1;
            shift += 1;
        }
        // Now hz in (1e9, 2e9]: ns per shifted tick is below 1, so the
        // fraction fits in 32 bits.
        let mul = ((NS_PER_S as u128) << 32) / hz as u128;
        Self {
            mul: mul as u32,
            shift,
        }
    }

    /// Nanoseconds for a TSC delta, exactly as a guest computes them.
    pub fn ticks_to_ns(self, delta: u64) -> u64 {
        let shifted = if self.shift >= 0 {
            delta << self.shift
        } else {
            delta >> -self.shift
        };
        ((shifted as u128 * self.mul as u128) >> 32) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: u64, b: u64, tolerance: u64) -> bool {
        a.abs_diff(b) <= tolerance
    }

    #[test]
    fn one_second_of_ticks_is_one_second() {
        for hz in [
            1_000_000u64,
            32_768_000,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            2_394_451_000,
            3_000_000_000,
            5_000_000_000,
            12_000_000_000,
        ] {
            let scale = TscScale::for_hz(hz);
            let ns = scale.ticks_to_ns(hz);
            assert!(
                close(ns, 1_000_000_000, 2),
                "{hz} Hz: one second of ticks gave {ns} ns ({scale:?})"
            );
        }
    }

    #[test]
    fn mul_keeps_precision() {
        for hz in [1_000_000u64, 2_394_451_000, 12_000_000_000] {
            let scale = TscScale::for_hz(hz);
            assert!(
                scale.mul >= 1 << 31,
                "{hz} Hz: mul {:#x} wastes bits",
                scale.mul
            );
        }
    }

    #[test]
    fn time_is_monotonic_in_ticks() {
        let scale = TscScale::for_hz(2_394_451_000);
        let mut last = 0;
        for delta in (0..10_000_000u64).step_by(997) {
            let ns = scale.ticks_to_ns(delta);
            assert!(ns >= last);
            last = ns;
        }
    }
}
