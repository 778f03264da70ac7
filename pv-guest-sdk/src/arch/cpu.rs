//! The few unprivileged instructions the SDK uses directly.

use core::arch::asm;

/// Reads the time-stamp counter. Allowed in ring 3 unless the hypervisor
/// sets CR4.TSD, in which case it emulates the instruction.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc only reads the counter into EDX:EAX.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (hi as u64) << 32 | lo as u64
}

/// The CS selector the guest runs with; its low two bits are the CPL.
pub fn read_cs() -> u16 {
    let cs: u16;
    // SAFETY: reading a segment register has no side effects.
    unsafe { asm!("mov {0:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags)) };
    cs
}
