//! Floating-point isolation between domains: loads a value of its own
//! (from `seed=<n>` on the command line) into the x87 register stack, then
//! for half a second (and at least 5000 times) yields the CPU while
//! another copy of itself, with another seed, does the same, and checks
//! after every yield that its `st(0)` still holds its value. hv-core must give each vCPU its own
//! floating-point state; a shared one shows up as the other seed.
//!
//! Prints `domu-fpu: x87 state kept across <n> yields` or the first
//! mismatch, then powers off.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use pv_guest_sdk::{StartInfo, hypercall, println, sched, time};

    const NAME: &str = "domu-fpu";
    const YIELDS: u32 = 5000;
    /// Long enough that a second copy created right after overlaps.
    const RUN_NS: u64 = 500_000_000;

    /// Pushes `value` onto the x87 stack.
    fn load(value: i32) {
        #[allow(unsafe_code)]
        // SAFETY: `fild` reads the 4-byte integer we point at and pushes
        // it; the x87 stack is this guest's alone (nothing else uses it).
        unsafe {
            core::arch::asm!("fninit", "fild dword ptr [{}]", in(reg) &value, options(nostack));
        }
    }

    /// `st(0)` as an integer, without popping it.
    fn top() -> i32 {
        let mut out = 0i32;
        #[allow(unsafe_code)]
        // SAFETY: `fist` stores st(0) into the 4-byte integer we point at.
        unsafe {
            core::arch::asm!("fist dword ptr [{}]", in(reg) &mut out, options(nostack));
        }
        out
    }

    pub fn main(start: &'static StartInfo) -> ! {
        let seed = start
            .cmdline()
            .split_whitespace()
            .find_map(|w| w.strip_prefix("seed="))
            .and_then(|s| s.parse::<i32>().ok())
            .unwrap_or(1);
        load(seed);
        let end = time::now_ns() + RUN_NS;
        let mut i = 0u32;
        while i < YIELDS || time::now_ns() < end {
            i += 1;
            let _ = hypercall::sched_yield();
            let got = top();
            if got != seed {
                println!("{NAME}: x87 st(0) is {got} after {i} yields, expected {seed}");
                sched::poweroff();
            }
        }
        println!("{NAME}: x87 state kept across at least {YIELDS} yields");
        sched::poweroff()
    }
}
