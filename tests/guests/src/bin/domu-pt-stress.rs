//! Page-table stress from every vCPU at once: dom0 creates it with four
//! vCPUs (`create domu-pt-stress vcpus=4`, on several CPUs) and each
//! vCPU, for a few seconds, hammers the same four L1 tables with raw
//! hypercalls: `mmu_update` of random entries (a data frame writable, the
//! same read-only, or cleared) and pins and unpins of the tables, so that
//! one vCPU's update meets another's validation or release. Every call
//! must answer 0 or Xen's refusal for a state another vCPU just made
//! (`-EINVAL`: a table pinned twice, unpinned when not pinned); anything
//! else, or a crash, fails. Then vCPU 0 unpins and clears everything and
//! checks that every data frame lost its writable mappings (it can be
//! made read-only again, and then an L1 table, which a frame with a
//! writable mapping left behind could not).
//!
//! The scenario (`smp-pt-stress`) checks, after destroying the domain, that
//! the hypervisor's free memory is back where it was: counts that a race
//! left unbalanced would keep frames referenced for ever.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use alloc::vec;
    use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::SeqCst};

    use abi::Errno;
    use abi::xen::{
        DOMID_SELF, MMU_NORMAL_PT_UPDATE, MMUEXT_PIN_L1_TABLE, MMUEXT_UNPIN_TABLE, MmuUpdate,
        MmuextOp,
    };
    use pv_guest_sdk::mm::{self, pte};
    use pv_guest_sdk::time::now_ns;
    use pv_guest_sdk::{StartInfo, println, smp};
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure, ensure_eq, fail, frame, hc};

    const NAME: &str = "domu-pt-stress";
    const TABLES: usize = 4;
    const FRAMES: usize = 8;
    /// Entries of each table the vCPUs use.
    const SLOTS: u64 = 16;
    const MS: u64 = 1_000_000;
    /// How long every vCPU hammers.
    const RUN_NS: u64 = 4_000 * MS;
    const LIMIT_NS: u64 = 60_000 * MS;
    const EINVAL: i64 = -(Errno::Inval as i64);

    /// The tables' and data frames' machine frame numbers.
    static TABLE_MFNS: [AtomicU64; TABLES] = [const { AtomicU64::new(0) }; TABLES];
    static FRAME_MFNS: [AtomicU64; FRAMES] = [const { AtomicU64::new(0) }; FRAMES];
    /// When the vCPUs stop (system time).
    static STOP_AT: AtomicU64 = AtomicU64::new(0);
    /// Per vCPU: operations done, and done (1).
    static OPS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
    static DONE: [AtomicU32; 4] = [const { AtomicU32::new(0) }; 4];
    /// The first unexpected answer: the value, then the op packed.
    static BAD: AtomicI64 = AtomicI64::new(0);
    static BAD_OP: AtomicU64 = AtomicU64::new(0);
    static STARTED: AtomicU32 = AtomicU32::new(0);

    pub fn main(_start: &'static StartInfo) -> ! {
        finish(NAME, run())
    }

    fn ext(cmd: u32, mfn: u64) -> MmuextOp {
        MmuextOp {
            cmd,
            _pad: 0,
            arg1: mfn,
            arg2: 0,
        }
    }

    fn entry_update(table: u64, slot: u64, val: u64) -> MmuUpdate {
        MmuUpdate {
            ptr: (table << 12) | (slot * 8) | MMU_NORMAL_PT_UPDATE,
            val,
        }
    }

    /// One vCPU's hammering until [`STOP_AT`].
    fn hammer(vcpu: usize) {
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ ((vcpu as u64 + 1) * 0x1234_5678_9abc_def1);
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let stop = STOP_AT.load(SeqCst);
        let mut ops = 0u64;
        while now_ns() < stop {
            for _ in 0..64 {
                let r = next();
                let table = TABLE_MFNS[(r % TABLES as u64) as usize].load(SeqCst);
                let frame = FRAME_MFNS[((r >> 8) % FRAMES as u64) as usize].load(SeqCst);
                let slot = (r >> 16) % SLOTS;
                let (what, ret) = match (r >> 24) % 8 {
                    0..=2 => (
                        1,
                        hc::mmu_update(
                            &[entry_update(table, slot, pte::entry(frame, pte::KERNEL_RW))],
                            DOMID_SELF,
                        )
                        .0,
                    ),
                    3 | 4 => (
                        2,
                        hc::mmu_update(
                            &[entry_update(table, slot, pte::entry(frame, pte::KERNEL_RO))],
                            DOMID_SELF,
                        )
                        .0,
                    ),
                    5 => (
                        3,
                        hc::mmu_update(&[entry_update(table, slot, 0)], DOMID_SELF).0,
                    ),
                    6 => (4, hc::mmuext_op(&[ext(MMUEXT_PIN_L1_TABLE, table)]).0),
                    _ => (5, hc::mmuext_op(&[ext(MMUEXT_UNPIN_TABLE, table)]).0),
                };
                // Pins and unpins may meet a state another vCPU just made.
                let refused_ok = matches!(what, 4 | 5) && ret == EINVAL;
                if ret != 0 && !refused_ok && BAD.compare_exchange(0, ret, SeqCst, SeqCst).is_ok() {
                    BAD_OP.store((vcpu as u64) << 32 | what, SeqCst);
                }
                ops += 1;
            }
        }
        OPS[vcpu].store(ops, SeqCst);
        DONE[vcpu].store(1, SeqCst);
    }

    extern "C" fn secondary() -> ! {
        let me = STARTED.fetch_add(1, SeqCst) as usize + 1;
        hammer(me);
        loop {
            let _ = hc::poll(&[], 0);
        }
    }

    fn run() -> Outcome {
        let vcpus = smp::vcpu_count() as usize;
        ensure_eq!(vcpus, 4, "vCPUs (create it with vcpus=4)");
        for slot in &TABLE_MFNS {
            match mm::new_table(&[]) {
                Ok(t) => slot.store(t.mfn, SeqCst),
                Err(e) => fail!("a table: {e:?}"),
            }
        }
        let mut frames = vec![];
        for slot in &FRAME_MFNS {
            // Zeroed: it must validate as an empty L1 table at the end.
            match mm::alloc_frame_filled(&[]) {
                Ok(f) => {
                    slot.store(f.mfn, SeqCst);
                    frames.push(f);
                }
                Err(e) => fail!("a data frame: {e:?}"),
            }
        }
        STOP_AT.store(now_ns() + RUN_NS, SeqCst);
        for v in 1..vcpus {
            let stack = vec![0u8; 16 * 1024].leak();
            if let Err(e) = smp::start_vcpu(v as u32, secondary, stack) {
                fail!("starting vCPU {v}: {e}");
            }
        }
        hammer(0);
        let start = now_ns();
        while DONE.iter().any(|d| d.load(SeqCst) == 0) {
            if now_ns() - start > LIMIT_NS {
                fail!("not every vCPU finished");
            }
            core::hint::spin_loop();
        }
        let bad = BAD.load(SeqCst);
        if bad != 0 {
            let op = BAD_OP.load(SeqCst);
            fail!(
                "vCPU {} got {bad} from op {} (1 map rw, 2 map ro, 3 clear, 4 pin, 5 unpin)",
                op >> 32,
                op & 0xff
            );
        }
        let ops: [u64; 4] = core::array::from_fn(|v| OPS[v].load(SeqCst));
        ensure!(
            ops.iter().all(|&n| n > 0),
            "every vCPU did some work: {ops:?}"
        );

        // Undo it all: unpin (refused if not pinned), clear every entry.
        for slot in &TABLE_MFNS {
            let table = slot.load(SeqCst);
            let _ = hc::mmuext_op(&[ext(MMUEXT_UNPIN_TABLE, table)]);
            for s in 0..SLOTS {
                ensure_eq!(
                    hc::mmu_update(&[entry_update(table, s, 0)], DOMID_SELF).0,
                    0,
                    "clearing an entry"
                );
            }
        }
        // No writable mapping of a data frame is left but its own
        // physmap one: made read-only, it can become an L1 table.
        for f in &frames {
            if let Err(e) = frame::protect(f, pte::KERNEL_RO) {
                fail!("making a data frame's own mapping read-only: {e:?}");
            }
            ensure_eq!(
                hc::mmuext_op(&[ext(MMUEXT_PIN_L1_TABLE, f.mfn)]).0,
                0,
                "pinning a data frame as an L1 table after the stress (a writable mapping was left)"
            );
            ensure_eq!(
                hc::mmuext_op(&[ext(MMUEXT_UNPIN_TABLE, f.mfn)]).0,
                0,
                "unpinning it"
            );
        }
        println!(
            "{NAME}: {} operations by 4 vCPUs ({ops:?})",
            ops.iter().sum::<u64>()
        );
        Ok(())
    }
}
