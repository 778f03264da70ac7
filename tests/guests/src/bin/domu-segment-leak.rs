//! Security finding 9: data segment selectors leaked between domains.
//!
//! hv-core's vCPU switch swapped registers, FPU state, CR3 and the FS/GS
//! bases but not the DS, ES, FS and GS selectors, so a domain read the
//! selectors another had loaded. Two copies of this guest run side by
//! side (a dom0 session creates both): each loads its own pair into DS
//! and ES (from `seed=<n>`: 1 loads the flat data and the 64-bit code
//! selectors, 2 the null and the 32-bit code selectors, all of them
//! loadable in ring 3), then for half a second and at least 2000 times
//! yields the CPU to the other and checks after every yield that DS and
//! ES are still its own. (FS and GS are left alone: loading them resets
//! their bases, which the SDK sets.)
//!
//! Prints `PASS domu-segment-leak` or `FAIL domu-segment-leak: <the first
//! selector found changed>`, then powers off. On hv-core at 0cd41cd the
//! first yield showed the other guest's selectors.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use abi::xen::{FLAT_RING3_CS32, FLAT_RING3_CS64, FLAT_RING3_DS32};
    use pv_guest_sdk::{StartInfo, hypercall, time};
    use test_guests::fail;
    use test_guests::verdict::{Outcome, finish};

    const NAME: &str = "domu-segment-leak";
    const YIELDS: u32 = 2000;
    /// Long enough that a second copy created right after overlaps.
    const RUN_NS: u64 = 500_000_000;

    fn load(ds: u16, es: u16) {
        #[allow(unsafe_code)]
        // SAFETY: both selectors name ring-3 segments of the GDT the
        // hypervisor provides (or are null); in 64-bit mode DS and ES take
        // part in no address this code forms.
        unsafe {
            core::arch::asm!(
                "mov ds, {0:x}",
                "mov es, {1:x}",
                in(reg) ds,
                in(reg) es,
                options(nostack, preserves_flags)
            );
        }
    }

    fn read() -> (u16, u16) {
        let (ds, es): (u16, u16);
        #[allow(unsafe_code)]
        // SAFETY: reading segment registers has no side effect.
        unsafe {
            core::arch::asm!(
                "mov {0:x}, ds",
                "mov {1:x}, es",
                out(reg) ds,
                out(reg) es,
                options(nomem, nostack, preserves_flags)
            );
        }
        (ds, es)
    }

    pub fn main(start: &'static StartInfo) -> ! {
        let seed = start
            .cmdline()
            .split_whitespace()
            .find_map(|w| w.strip_prefix("seed="))
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(1);
        finish(NAME, run(seed))
    }

    fn run(seed: u32) -> Outcome {
        let mine = if seed == 1 {
            (FLAT_RING3_DS32, FLAT_RING3_CS64)
        } else {
            (0, FLAT_RING3_CS32)
        };
        load(mine.0, mine.1);
        let end = time::now_ns() + RUN_NS;
        let mut i = 0u32;
        while i < YIELDS || time::now_ns() < end {
            i += 1;
            let _ = hypercall::sched_yield();
            let now = read();
            if now != mine {
                fail!(
                    "after {i} yields DS:ES is {:#x}:{:#x}, expected our own {:#x}:{:#x}",
                    now.0,
                    now.1,
                    mine.0,
                    mine.1
                );
            }
        }
        pv_guest_sdk::println!("{NAME}: DS and ES kept across {i} yields");
        Ok(())
    }
}
