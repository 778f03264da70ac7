//! Finding 3 of the security review: validating a page-table subtree must
//! be preemptible. One op that pins an L3 over thousands of L1s (or one
//! `mmu_update` that links such an L3 into an L4) visits millions of
//! entries; done in one go with interrupts off it stalls every domain.
//! As on Xen (partial validation, `-ERESTART`, a hypercall continuation),
//! the work must be cut into bounded passes with interrupts and events
//! delivered in between.
//!
//! The guest builds an L3 over as many empty L1s as its memory allows, arms
//! a one-shot timer about 1 ms ahead with events unmasked, and issues
//! - one `mmuext_op` that pins and unpins the L3 several times, and
//! - one `mmu_update` that links the L3 into a pinned L4 and unlinks it,
//!   several times.
//!
//! PASS iff, for each, the timer's upcall runs while the hypercall is still
//! in progress (the `done` count the hypervisor writes at each pass is
//! short of the whole batch when the upcall reads it) and the hypercall
//! still ends with 0 and every request done. The only timing fact used is
//! that ordering; a call that ends before the timer is due is retried with
//! a bigger batch.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU32, Ordering};

    use abi::Hypercall;
    use abi::event_channel::{Port, VIRQ_TIMER};
    use abi::ops::VCPUOP_STOP_PERIODIC_TIMER;
    use abi::xen::{
        DOMID_SELF, MMU_NORMAL_PT_UPDATE, MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE,
        MMUEXT_UNPIN_TABLE, MmuUpdate, MmuextOp,
    };
    use pv_guest_sdk::mm::{self, Frame, pte};
    use pv_guest_sdk::time::now_ns;
    use pv_guest_sdk::{StartInfo, events, hypercall, println};
    use test_guests::arch;
    use test_guests::verdict::{Outcome, Stop, finish};
    use test_guests::{ensure, ensure_eq, fail, hc};

    const NAME: &str = "sec-pt-preempt";
    const MS: u64 = 1_000_000;
    /// The most L1 tables the subtree gets (2048: one million entries).
    const MAX_L1S: usize = 2048;
    /// Frames left for everything else.
    const SPARE_FRAMES: u64 = 512;
    /// `done` before the hypervisor first writes it.
    const UNWRITTEN: u32 = u32::MAX;

    /// The `done` word of the big hypercall, written by the hypervisor at
    /// the end of each pass.
    static DONE: AtomicU32 = AtomicU32::new(UNWRITTEN);
    /// What `DONE` held when the timer's upcall ran (`UNWRITTEN` + 1: no
    /// upcall yet).
    static DONE_AT_UPCALL: AtomicU32 = AtomicU32::new(NO_UPCALL);
    const NO_UPCALL: u32 = UNWRITTEN - 1;

    fn on_timer(_: Port) {
        DONE_AT_UPCALL.store(DONE.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    pub fn main(_start: &'static StartInfo) -> ! {
        finish(NAME, run())
    }

    fn made<T, E: core::fmt::Display>(what: &str, r: Result<T, E>) -> Result<T, Stop> {
        match r {
            Ok(v) => Ok(v),
            Err(e) => fail!("{what}: {e}"),
        }
    }

    fn run() -> Outcome {
        made(
            "binding VIRQ_TIMER",
            events::bind_virq(VIRQ_TIMER, on_timer),
        )?;
        ensure_eq!(
            hc::vcpu_op_null(VCPUOP_STOP_PERIODIC_TIMER, 0),
            0,
            "VCPUOP_stop_periodic_timer(vcpu 0)"
        );
        let l3 = subtree()?;
        let l4 = made("making an L4", mm::new_table(&[]))?;
        let (ret, _) = hc::mmuext_op(&[op(MMUEXT_PIN_L4_TABLE, &l4)]);
        ensure_eq!(ret, 0, "pinning an empty L4");

        preempted("mmuext_op pinning and unpinning the L3", |rounds| {
            let ops: Vec<MmuextOp> = (0..rounds)
                .flat_map(|_| [op(MMUEXT_PIN_L3_TABLE, &l3), op(MMUEXT_UNPIN_TABLE, &l3)])
                .collect();
            (
                big_call(Hypercall::MmuextOp, addr(&ops), ops.len()),
                ops.len(),
            )
        })?;
        preempted("mmu_update linking the L3 into an L4 and out", |rounds| {
            let link = |val| MmuUpdate {
                ptr: l4.maddr() | MMU_NORMAL_PT_UPDATE,
                val,
            };
            let reqs: Vec<MmuUpdate> = (0..rounds)
                .flat_map(|_| [link(pte::entry(l3.mfn, pte::TABLE)), link(0)])
                .collect();
            (
                big_call(Hypercall::MmuUpdate, addr(&reqs), reqs.len()),
                reqs.len(),
            )
        })?;
        println!("{NAME}: both big validations were preempted and completed");
        Ok(())
    }

    fn op(cmd: u32, table: &Frame) -> MmuextOp {
        MmuextOp {
            cmd,
            _pad: 0,
            arg1: table.mfn,
            arg2: 0,
        }
    }

    fn addr<T>(items: &[T]) -> u64 {
        items.as_ptr() as u64
    }

    /// An L3 over L2s over as many empty L1s as memory allows.
    fn subtree() -> Result<Frame, Stop> {
        let l1s = (mm::free_frames().saturating_sub(SPARE_FRAMES) as usize).min(MAX_L1S);
        ensure!(l1s >= 512, "only {l1s} frames to spare for L1 tables");
        let mut l2_entries = Vec::new();
        let mut l1_entries = Vec::new();
        for i in 0..l1s {
            let l1 = made("making an L1", mm::new_table(&[]))?;
            l1_entries.push(pte::entry(l1.mfn, pte::TABLE));
            if l1_entries.len() == 512 || i + 1 == l1s {
                let l2 = made("making an L2", mm::new_table(&l1_entries))?;
                l2_entries.push(pte::entry(l2.mfn, pte::TABLE));
                l1_entries.clear();
            }
        }
        println!(
            "{NAME}: an L3 over {} L2s over {l1s} L1s ({} entries to validate)",
            l2_entries.len(),
            512 * (1 + l2_entries.len() + l1s)
        );
        made("making the L3", mm::new_table(&l2_entries))
    }

    /// `mmu_update` or `mmuext_op` of `count` requests at `at`, with the
    /// `done` word the upcall watches.
    fn big_call(nr: Hypercall, at: u64, count: usize) -> i64 {
        DONE.store(UNWRITTEN, Ordering::SeqCst);
        #[allow(unsafe_code)]
        // SAFETY: the requests are live and only pin, unpin, link and
        // unlink tables no Rust object lives under; `DONE` is a plain word.
        unsafe {
            arch::hypercall(
                nr as u32,
                [at, count as u64, DONE.as_ptr() as u64, DOMID_SELF as u64, 0],
            )
        }
    }

    /// Runs `call(rounds)` with the timer due 1 ms later; checks that the
    /// upcall came while the call was in progress and that the call did
    /// everything. A call over before the timer was due says nothing: it
    /// is retried with twice the rounds.
    fn preempted(what: &str, call: impl Fn(usize) -> (i64, usize)) -> Outcome {
        let mut rounds = 4;
        for _ in 0..4 {
            DONE_AT_UPCALL.store(NO_UPCALL, Ordering::SeqCst);
            let deadline = now_ns() + MS;
            made("set_timer_op", hypercall::set_timer_op(deadline))?;
            let (ret, count) = call(rounds);
            let ended = now_ns();
            let done = DONE.load(Ordering::SeqCst);
            ensure_eq!(
                (ret, done),
                (0, count as u32),
                "{what}, {count} requests: (result, done)"
            );
            let give_up = now_ns() + 2_000 * MS;
            events::wait_until(|| {
                DONE_AT_UPCALL.load(Ordering::SeqCst) != NO_UPCALL || now_ns() > give_up
            });
            let seen = DONE_AT_UPCALL.load(Ordering::SeqCst);
            ensure!(seen != NO_UPCALL, "{what}: the timer's upcall never came");
            if seen == UNWRITTEN || ended < deadline {
                // Before the call got going, or the call beat the timer.
                rounds *= 2;
                continue;
            }
            ensure!(
                seen != count as u32,
                "{what}: the timer's upcall came only after the hypercall returned \
                 (done {seen} of {count} when it ran)"
            );
            println!("{NAME}: {what}: upcall during the call, at done {seen} of {count}");
            return Ok(());
        }
        fail!("{what}: every call ended before its timer was due, even with {rounds} rounds")
    }
}
