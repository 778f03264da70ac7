//! Finding 6 of the security review (L1TF, Xen's XSA-273): a not-present
//! page-table entry the guest writes must not carry the address of memory
//! the L1 data cache may hold, or an L1TF-affected Intel CPU reads that
//! memory speculatively through it.
//!
//! hv-core's rule (docs/abi.md): a not-present L1-L4 entry is accepted only
//! if its address bits are zero or lie in the top quarter of the CPU's
//! physical address space (where Linux's inverted swap and PROT_NONE
//! entries land), and, above L1, only without PSE. Anything else is
//! refused with `-EINVAL` and not written. Checked on every path that
//! stores a guest's entry: `update_va_mapping`, `mmu_update` into an L1
//! and into pinned L2, L3 and L4 tables, and the entries of a table being
//! pinned.
//!
//! TCG cannot show the speculative read itself: this guest checks hv-core's
//! refusal, and that safe not-present entries (zero, flag bits only, a
//! Linux-style inverted swap entry) are still stored as written.
//!
//! hv-core only: Xen 4.17 applies its check only on L1TF-affected CPUs
//! (never under TCG) and then crashes the domain or switches it to shadow
//! paging rather than refusing the write.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use alloc::format;

    use abi::xen::{
        DOMID_SELF, MMU_NORMAL_PT_UPDATE, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE,
        MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE, MMUEXT_UNPIN_TABLE, MmuUpdate, MmuextOp,
        UVMF_INVLPG,
    };
    use pv_guest_sdk::mm::{self, Frame, pte};
    use pv_guest_sdk::{StartInfo, println};
    use test_guests::Checks;
    use test_guests::hc;
    use test_guests::scratch::Window;

    const NAME: &str = "sec-l1tf-pte";

    /// Address bits all set but for a small swap offset, inverted, with a
    /// swap type in the top bits: what Linux's L1TF mitigation stores.
    const LINUX_SWAP_ENTRY: u64 = (!(5u64 << 12) & pte::ADDRESS_MASK) | (3 << 59);
    /// Flag bits only: no address at all.
    const FLAGS_ONLY: u64 = pte::WRITABLE | pte::ACCESSED | pte::DIRTY;

    pub fn main(_start: &'static StartInfo) -> ! {
        let mut c = Checks::new(NAME);
        let w = match Window::new() {
            Ok(w) => w,
            Err(e) => {
                c.check(false, &format!("setting up the scratch window ({e})"));
                c.finish()
            }
        };
        let Ok(own) = mm::alloc_frame() else {
            c.check(false, "allocating a frame");
            c.finish()
        };
        // Addresses of real memory: a frame of ours, low RAM, and the
        // hypervisor frame behind L4 slot 256 (the M2P).
        let m2p = mm::read_table_entry(mm::kernel_l4(), 256).map_or(0x1000, pte::mfn);
        let unsafe_entries = [
            ("our own frame", own.maddr()),
            ("1 MiB", 0x10_0000 | FLAGS_ONLY),
            ("the M2P's frame", m2p << 12),
        ];
        let safe_entries = [
            ("zero", 0),
            ("flag bits only", FLAGS_ONLY),
            ("an inverted swap entry", LINUX_SWAP_ENTRY),
        ];

        level1(&mut c, &w, &unsafe_entries, &safe_entries);
        for (level, pin) in [
            (2, MMUEXT_PIN_L2_TABLE),
            (3, MMUEXT_PIN_L3_TABLE),
            (4, MMUEXT_PIN_L4_TABLE),
        ] {
            upper_level(&mut c, level, pin, &unsafe_entries);
        }
        pinned_tables(&mut c, &unsafe_entries, &safe_entries);
        println!("{NAME}: every not-present entry with an unsafe address checked");
        c.finish()
    }

    fn record(c: &mut Checks, ok: bool, what: &str, got: i64) {
        c.check(ok, &format!("{what} (got {got})"));
        println!(
            "{NAME}: {what}: {got} {}",
            if ok { "(ok)" } else { "WRONG" }
        );
    }

    fn write(table: u64, index: u64, val: u64) -> (i64, u32) {
        hc::mmu_update(
            &[MmuUpdate {
                ptr: (table << 12) | (index * 8) | MMU_NORMAL_PT_UPDATE,
                val,
            }],
            DOMID_SELF,
        )
    }

    fn level1(c: &mut Checks, w: &Window, bad: &[(&str, u64)], good: &[(&str, u64)]) {
        for &(name, entry) in bad {
            let ret = hc::update_va_mapping(w.va(30), entry, UVMF_INVLPG);
            record(
                c,
                ret < 0,
                &format!(
                    "update_va_mapping of a not-present L1 entry at {name} ({entry:#x}) is refused"
                ),
                ret,
            );
            let (ret, done) = write(w.l1, 31, entry);
            record(
                c,
                ret < 0 && done == 0,
                &format!("mmu_update of a not-present L1 entry at {name} is refused, none done"),
                ret,
            );
            for page in [30, 31] {
                let stored = w.entry(page).unwrap_or(u64::MAX);
                c.check(
                    stored == 0,
                    &format!("the refused L1 entry is not stored (page {page} holds {stored:#x})"),
                );
            }
        }
        for &(name, entry) in good {
            let ret = hc::update_va_mapping(w.va(32), entry, UVMF_INVLPG);
            let stored = w.entry(32).unwrap_or(u64::MAX);
            record(
                c,
                ret == 0 && stored == entry,
                &format!(
                    "update_va_mapping of a not-present L1 entry, {name}, is stored as written"
                ),
                ret,
            );
            let (ret, done) = write(w.l1, 33, entry);
            let stored = w.entry(33).unwrap_or(u64::MAX);
            record(
                c,
                ret == 0 && done == 1 && stored == entry,
                &format!("mmu_update of a not-present L1 entry, {name}, is stored as written"),
                ret,
            );
        }
        let _ = hc::update_va_mapping(w.va(32), 0, UVMF_INVLPG);
        let _ = write(w.l1, 33, 0);
    }

    fn pin(cmd: u32, table: &Frame) -> i64 {
        hc::mmuext_op(&[MmuextOp {
            cmd,
            _pad: 0,
            arg1: table.mfn,
            arg2: 0,
        }])
        .0
    }

    fn unpin(table: &Frame) -> i64 {
        pin(MMUEXT_UNPIN_TABLE, table)
    }

    /// An empty table of `level`, pinned: entries written into it by
    /// `mmu_update` are checked as they would be in a live tree.
    fn upper_level(c: &mut Checks, level: u32, pin_cmd: u32, bad: &[(&str, u64)]) {
        let Ok(table) = mm::new_table(&[]) else {
            c.check(false, &format!("making an L{level} table"));
            return;
        };
        let ret = pin(pin_cmd, &table);
        if !c.check(ret == 0, &format!("pinning an empty L{level} (got {ret})")) {
            return;
        }
        let superpage = ("PSE with address zero", pte::HUGE);
        for &(name, entry) in bad.iter().chain([&superpage]) {
            let (ret, done) = write(table.mfn, 3, entry);
            record(
                c,
                ret < 0 && done == 0,
                &format!("mmu_update of a not-present L{level} entry, {name}, is refused"),
                ret,
            );
        }
        let (ret, _) = write(table.mfn, 3, LINUX_SWAP_ENTRY);
        record(
            c,
            ret == 0,
            &format!("mmu_update of an inverted swap entry into an L{level} is accepted"),
            ret,
        );
        let _ = write(table.mfn, 3, 0);
        let ret = unpin(&table);
        c.check(ret == 0, &format!("unpinning the L{level} (got {ret})"));
    }

    /// Tables that already hold not-present entries when they are pinned.
    fn pinned_tables(c: &mut Checks, bad: &[(&str, u64)], good: &[(&str, u64)]) {
        for &(name, entry) in bad {
            let Ok(table) = mm::new_table(&[0, 0, entry]) else {
                c.check(false, "making an L1 table");
                return;
            };
            let ret = pin(MMUEXT_PIN_L1_TABLE, &table);
            record(
                c,
                ret < 0,
                &format!("pinning an L1 holding a not-present entry at {name} is refused"),
                ret,
            );
            if ret == 0 {
                let _ = unpin(&table);
            }
        }
        let entries: alloc::vec::Vec<u64> = good.iter().map(|&(_, e)| e).collect();
        let Ok(table) = mm::new_table(&entries) else {
            c.check(false, "making an L1 table");
            return;
        };
        let ret = pin(MMUEXT_PIN_L1_TABLE, &table);
        record(
            c,
            ret == 0,
            "pinning an L1 holding only safe not-present entries is accepted",
            ret,
        );
        let kept =
            (0..entries.len()).all(|i| mm::read_table_entry(table.mfn, i).ok() == Some(entries[i]));
        c.check(
            kept,
            "the pinned L1's safe not-present entries are kept as written",
        );
        if ret == 0 {
            let ret = unpin(&table);
            c.check(ret == 0, &format!("unpinning the L1 (got {ret})"));
        }
    }
}
