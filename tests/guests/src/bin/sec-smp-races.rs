//! Finding 14 of the security review: two vCPUs of one domain racing on
//! the same hypercall, each started together from a spin barrier (booted
//! with `dom0_max_vcpus=8`, two CPUs). A check made under one lock and
//! acted on under a later one lets both pass:
//! - `GNTTABOP_setup_table` to the table's limit from two vCPUs at once:
//!   both must succeed and see the same frames (were the table's size
//!   read once, both would add frames past the limit: hv-core stops);
//! - `VCPUOP_initialise` of the same down vCPU from two vCPUs at once,
//!   six times (vCPUs 2-7): exactly one call succeeds each time, the other
//!   is `-EEXIST` (both succeeding would let the loser replace, and
//!   devalidate, the page tables of a vCPU already running).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use alloc::vec;
    use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::SeqCst};

    use abi::Errno;
    use abi::grant_table::GNTST_OKAY;
    use pv_guest_sdk::time::now_ns;
    use pv_guest_sdk::{StartInfo, hypercall, println, smp};
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure, ensure_eq, fail, hc};

    const NAME: &str = "sec-smp-races";
    const FRAMES: usize = 4;
    const VCPUS: u32 = 8;
    const MS: u64 = 1_000_000;
    const LIMIT_NS: u64 = 30_000 * MS;
    const EEXIST: i64 = -(Errno::Exist as i64);

    /// The race in progress (vCPU 0 sets it; vCPU 1 answers with the
    /// same number in `READY` and waits for `GO`).
    static RACE: AtomicU32 = AtomicU32::new(0);
    static READY: AtomicU32 = AtomicU32::new(0);
    static GO: AtomicU32 = AtomicU32::new(0);
    /// vCPU 1's results: its race, the status or return value, and the
    /// frames of the setup race.
    static DONE: AtomicU32 = AtomicU32::new(0);
    static RESULT: AtomicI64 = AtomicI64::new(0);
    static FRAMES1: [AtomicU64; FRAMES] = [const { AtomicU64::new(0) }; FRAMES];

    /// The stack the initialised vCPUs would run on (they never do).
    static TOP: AtomicU64 = AtomicU64::new(0);

    /// One side's result: the status or return value, and the setup
    /// race's frames.
    type Side = (i64, [u64; FRAMES]);

    const SETUP: u32 = 1;
    /// Races 2..=7: `VCPUOP_initialise` of that vCPU.
    const STOP: u32 = u32::MAX;

    pub fn main(_start: &'static StartInfo) -> ! {
        finish(NAME, run())
    }

    extern "C" fn never_runs() -> ! {
        loop {
            let _ = hypercall::sched_yield();
        }
    }

    /// One side of race `race`: the status or return value.
    fn contend(race: u32, frames: &mut [u64; FRAMES]) -> i64 {
        if race == SETUP {
            match hypercall::gnttab_setup_table(frames) {
                Ok(op) => op.status.into(),
                Err(_) => i64::MIN,
            }
        } else {
            let context = smp::context(never_runs, TOP.load(SeqCst));
            hc::vcpu_initialise(race, &context)
        }
    }

    extern "C" fn vcpu1_entry() -> ! {
        let mut seen = 0;
        loop {
            let race = RACE.load(SeqCst);
            if race == seen {
                core::hint::spin_loop();
                continue;
            }
            if race == STOP {
                break;
            }
            seen = race;
            READY.store(race, SeqCst);
            while GO.load(SeqCst) != race {
                core::hint::spin_loop();
            }
            let mut frames = [0; FRAMES];
            let result = contend(race, &mut frames);
            for (slot, f) in FRAMES1.iter().zip(frames) {
                slot.store(f, SeqCst);
            }
            RESULT.store(result, SeqCst);
            DONE.store(race, SeqCst);
        }
        loop {
            let _ = hypercall::sched_yield();
        }
    }

    /// Runs race `race` on both vCPUs at once: vCPU 0's result and frames,
    /// then vCPU 1's.
    fn race(race: u32) -> Result<(Side, Side), test_guests::verdict::Stop> {
        RACE.store(race, SeqCst);
        let start = now_ns();
        while READY.load(SeqCst) != race {
            if now_ns() - start > LIMIT_NS {
                fail!("vCPU 1 did not get to race {race}");
            }
            core::hint::spin_loop();
        }
        GO.store(race, SeqCst);
        let mut frames = [0; FRAMES];
        let mine = contend(race, &mut frames);
        while DONE.load(SeqCst) != race {
            if now_ns() - start > LIMIT_NS {
                fail!("vCPU 1 did not finish race {race}");
            }
            core::hint::spin_loop();
        }
        let theirs = (
            RESULT.load(SeqCst),
            core::array::from_fn(|i| FRAMES1[i].load(SeqCst)),
        );
        Ok(((mine, frames), theirs))
    }

    fn run() -> Outcome {
        ensure_eq!(smp::vcpu_count(), VCPUS, "vCPUs in the domain");
        let stack = vec![0u8; 16 * 1024].leak();
        TOP.store(stack.as_ptr() as u64 + stack.len() as u64, SeqCst);
        let stack1 = vec![0u8; 16 * 1024].leak();
        if let Err(e) = smp::start_vcpu(1, vcpu1_entry, stack1) {
            fail!("starting vCPU 1: {e}");
        }

        let ((a, frames_a), (b, frames_b)) = race(SETUP)?;
        ensure_eq!(
            (a, b),
            (i64::from(GNTST_OKAY), i64::from(GNTST_OKAY)),
            "GNTTABOP_setup_table to {FRAMES} frames from two vCPUs at once"
        );
        ensure_eq!(
            frames_a,
            frames_b,
            "the table's frames as each vCPU saw them"
        );

        for vcpu in 2..VCPUS {
            let ((a, _), (b, _)) = race(vcpu)?;
            ensure!(
                (a == 0 && b == EEXIST) || (a == EEXIST && b == 0),
                "VCPUOP_initialise({vcpu}) from two vCPUs at once returned {a} and {b}: \
                 exactly one must succeed, the other -EEXIST"
            );
        }
        RACE.store(STOP, SeqCst);
        println!(
            "{NAME}: setup_table and {} initialise races, one winner each",
            VCPUS - 2
        );
        Ok(())
    }
}
