//! The time stamp counter, calibrated against the legacy PIT.
//!
//! PIT channel 2 counts down at a fixed 1.193182 MHz whatever the CPU's
//! speed; gating it for a known count and reading the TSC on both sides gives
//! the TSC frequency. The result is taken as the median of a few short runs
//! so that one preempted run (an emulator, an SMI) does not skew it.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;

const PIT_HZ: u64 = 1_193_182;
const CALIBRATION_MS: u64 = 10;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);

pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc reads a counter; it has no side effects and hv-core runs
    // in ring 0, where it is always allowed.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// TSC ticks per second (0 before calibration).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

pub fn ticks_to_ns(ticks: u64) -> u64 {
    match tsc_hz() {
        0 => 0,
        hz => (ticks as u128 * 1_000_000_000 / hz as u128) as u64,
    }
}

/// Saturates rather than wraps: a far deadline must stay far.
pub fn ns_to_ticks(ns: u64) -> u64 {
    (ns as u128 * tsc_hz() as u128 / 1_000_000_000).min(u64::MAX as u128) as u64
}

/// Busy-waits `ns` nanoseconds (after calibration).
pub fn spin_ns(ns: u64) {
    let end = rdtsc() + ns_to_ticks(ns);
    while rdtsc() < end {
        core::hint::spin_loop();
    }
}

/// Measures the TSC frequency against PIT channel 2 and records it.
pub fn calibrate_tsc() -> u64 {
    let mut runs = [0u64; 5];
    for run in runs.iter_mut() {
        *run = pit_measure(CALIBRATION_MS) * 1000 / CALIBRATION_MS;
    }
    runs.sort_unstable();
    let hz = runs[runs.len() / 2];
    TSC_HZ.store(hz, Ordering::Relaxed);
    hz
}

/// TSC ticks elapsed while PIT channel 2 counts down `ms` milliseconds.
fn pit_measure(ms: u64) -> u64 {
    let count = (PIT_HZ * ms / 1000) as u16;
    let mut gate: Port<u8> = Port::new(0x61);
    let mut command: Port<u8> = Port::new(0x43);
    let mut channel2: Port<u8> = Port::new(0x42);
    // SAFETY: ports 0x42, 0x43 and 0x61 are the PIT's channel 2 and the
    // speaker gate, which only hv-core uses; the speaker output stays off.
    unsafe {
        let g = gate.read();
        gate.write((g & !0x02) | 0x01); // gate on, speaker off
        command.write(0b1011_0000); // channel 2, lobyte/hibyte, mode 0
        channel2.write(count as u8);
        channel2.write((count >> 8) as u8);
        // Restart the count: mode 0 starts when the gate rises.
        let g = gate.read();
        gate.write(g & !0x01);
        gate.write(g | 0x01);
        let start = rdtsc();
        while gate.read() & 0x20 == 0 {
            core::hint::spin_loop();
        }
        rdtsc() - start
    }
}
