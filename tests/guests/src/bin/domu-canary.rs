//! The hypercall fuzzer's canary: an ordinary domU that runs beside
//! `domu-fuzz` and notices if anything the fuzzer made the hypervisor do
//! reached memory that is not the fuzzer's.
//!
//! It takes most of its free frames (up to 8 MiB) and fills them with a
//! pattern derived from `seed=<n>` on its command line (each word a hash
//! of the seed and the word's index, so a word copied from elsewhere or
//! left over from another seed shows up), snapshots every entry of its
//! own page tables, and then loops: re-check the whole pattern and every
//! table entry, sleep 100 ms (the CPU goes to the others), and every 2 s
//! print `domu-canary: intact after <n> checks`. A mismatch prints one
//! `domu-canary: FAIL: ...` line naming the word or the table entry (at
//! most 8 such lines in a run), after which the canary re-fills or
//! re-snapshots and keeps checking, so later damage is caught too.
//!
//! Invariants: the canary never changes its own mappings after the
//! snapshot (nothing it calls maps or unmaps: sleeping and printing use
//! only what start of day set up), so any change is someone else's. The
//! accessed and dirty bits are masked out of table entries (the CPU sets
//! them), and L4 slots 256-271 are not compared (hv-core's own entries,
//! which hv-core writes). The pattern frames hold no Rust object: they
//! are reached only by volatile reads and writes at their physmap address.
//! It never exits; the session powers the machine off around it.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use alloc::vec::Vec;

    use pv_guest_sdk::mm::p2m::Mfn;
    use pv_guest_sdk::mm::{self, Frame, pte};
    use pv_guest_sdk::{StartInfo, println, time};

    const NAME: &str = "domu-canary";
    /// At most this many pattern frames (8 MiB).
    const MAX_FRAMES: u64 = 2048;
    /// Frames left to the allocator for anything the SDK still needs.
    const RESERVE: u64 = 64;
    const WORDS_PER_FRAME: u64 = 512;
    const PAUSE_NS: u64 = 100_000_000;
    const HEARTBEAT_NS: u64 = 2_000_000_000;
    const MAX_FAIL_LINES: u32 = 8;
    /// hv-core's L4 slots (the M2P and its own mappings).
    const HYPERVISOR_SLOTS: core::ops::Range<usize> = 256..272;
    /// Bits the CPU sets in entries as it walks: accessed, dirty.
    const AD_BITS: u64 = pte::ACCESSED | pte::DIRTY;

    /// splitmix64's finaliser: the pattern word for `index` under `seed`.
    fn pattern(seed: u64, index: u64) -> u64 {
        let mut z = seed
            .wrapping_add(index.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn write_word(frame: &Frame, index: u64, value: u64) {
        #[allow(unsafe_code)]
        // SAFETY: the frame was taken from the allocator for the pattern
        // alone: mapped writable at its physmap address, 8-byte aligned,
        // holding no Rust object.
        unsafe {
            test_guests::arch::write_volatile_u64(frame.va() + index * 8, value)
        }
    }

    fn read_word(frame: &Frame, index: u64) -> u64 {
        #[allow(unsafe_code)]
        // SAFETY: as `write_word`; a volatile read, since what is being
        // checked is whether anyone else wrote the frame.
        unsafe {
            test_guests::arch::read_volatile_u64(frame.va() + index * 8)
        }
    }

    struct Pattern {
        seed: u64,
        frames: Vec<Frame>,
    }

    impl Pattern {
        fn fill(&self) {
            for (f, frame) in self.frames.iter().enumerate() {
                for i in 0..WORDS_PER_FRAME {
                    write_word(frame, i, pattern(self.seed, f as u64 * WORDS_PER_FRAME + i));
                }
            }
        }

        /// The first word that is not the pattern: (frame, index, found,
        /// expected).
        fn first_mismatch(&self) -> Option<(&Frame, u64, u64, u64)> {
            for (f, frame) in self.frames.iter().enumerate() {
                for i in 0..WORDS_PER_FRAME {
                    let want = pattern(self.seed, f as u64 * WORDS_PER_FRAME + i);
                    let got = read_word(frame, i);
                    if got != want {
                        return Some((frame, i, got, want));
                    }
                }
            }
            None
        }
    }

    /// Every page table reachable from the kernel L4, with its entries
    /// (A/D masked), L4 first.
    fn snapshot_tables() -> Vec<(Mfn, Vec<u64>)> {
        let mut tables = Vec::new();
        walk(mm::kernel_l4(), 4, &mut tables);
        tables
    }

    fn walk(table: Mfn, level: u8, out: &mut Vec<(Mfn, Vec<u64>)>) {
        let entries: Vec<u64> = (0..512)
            .map(|i| mm::read_table_entry(table, i).unwrap_or(u64::MAX) & !AD_BITS)
            .collect();
        out.push((table, entries.clone()));
        if level == 1 {
            return;
        }
        for (i, &entry) in entries.iter().enumerate() {
            let skip = level == 4 && HYPERVISOR_SLOTS.contains(&i);
            if skip || !pte::is_present(entry) || entry & pte::HUGE != 0 {
                continue;
            }
            walk(pte::mfn(entry), level - 1, out);
        }
    }

    /// The first table entry that differs from the snapshot.
    fn first_table_change(snapshot: &[(Mfn, Vec<u64>)]) -> Option<(Mfn, usize, u64, u64)> {
        let l4 = mm::kernel_l4();
        for (table, entries) in snapshot {
            for (i, &want) in entries.iter().enumerate() {
                if *table == l4 && HYPERVISOR_SLOTS.contains(&i) {
                    continue;
                }
                let got = mm::read_table_entry(*table, i).unwrap_or(u64::MAX) & !AD_BITS;
                if got != want {
                    return Some((*table, i, got, want));
                }
            }
        }
        None
    }

    pub fn main(start: &'static StartInfo) -> ! {
        let seed = start
            .cmdline_option("seed")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(1);
        let count = mm::free_frames().saturating_sub(RESERVE).min(MAX_FRAMES);
        let frames: Vec<Frame> = (0..count).filter_map(|_| mm::alloc_frame().ok()).collect();
        let pattern = Pattern { seed, frames };
        pattern.fill();
        // Everything that maps anything (the timer port, the console) is
        // set up before the snapshot.
        let _ = time::sleep_ns(1_000_000);
        println!(
            "{NAME}: {} KiB filled from seed {seed}; checking",
            pattern.frames.len() * 4
        );
        let mut tables = snapshot_tables();
        let mut checks = 0u64;
        let mut fails = 0u32;
        let mut next_beat = time::now_ns() + HEARTBEAT_NS;
        loop {
            if let Some((frame, index, got, want)) = pattern.first_mismatch() {
                if fails < MAX_FAIL_LINES {
                    println!(
                        "{NAME}: FAIL: pattern word {index} of frame {:#x} (pfn {:#x}) is {got:#018x}, expected {want:#018x}, after {checks} checks",
                        frame.mfn, frame.pfn
                    );
                }
                fails += 1;
                pattern.fill();
            }
            if let Some((table, index, got, want)) = first_table_change(&tables) {
                if fails < MAX_FAIL_LINES {
                    println!(
                        "{NAME}: FAIL: page table {table:#x} entry {index} is {got:#018x}, expected {want:#018x}, after {checks} checks"
                    );
                }
                fails += 1;
                tables = snapshot_tables();
            }
            checks += 1;
            if time::now_ns() >= next_beat {
                next_beat += HEARTBEAT_NS;
                if fails == 0 {
                    println!("{NAME}: intact after {checks} checks");
                } else {
                    println!("{NAME}: {fails} corruptions found in {checks} checks");
                }
            }
            let _ = time::sleep_ns(PAUSE_NS);
        }
    }
}
