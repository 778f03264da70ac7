//! A domain with two vCPUs (booted with `dom0_max_vcpus=2`), Xen's ABI:
//! - vCPU 1 exists and is down (`VCPUOP_is_up` 0), vCPU 2 does not
//!   (`-ENOENT` for every op on it);
//! - `VCPUOP_up` before a context is `-EINVAL`; `VCPUOP_initialise` gives
//!   vCPU 1 our page tables, an entry and a stack, a second one is
//!   `-EEXIST`, and the vCPU stays down until `VCPUOP_up`;
//! - vCPU 1 runs its entry on its own stack and sees itself running;
//! - IPIs both ways (`EVTCHNOP_bind_ipi` for each vCPU, `SCHEDOP_poll`
//!   on each side): 100 round trips;
//! - TLB shootdown: vCPU 1 writes through a mapping, vCPU 0 moves the
//!   mapping to another frame and asks for `MMUEXT_TLB_FLUSH_ALL`; vCPU
//!   1's next write lands in the new frame (on two CPUs a flush of vCPU
//!   0's CPU alone leaves vCPU 1 writing the old one);
//! - vCPU 1's own timer: VIRQ_TIMER bound on vCPU 1 and its singleshot
//!   timer wake its poll, not before the deadline;
//! - `EVTCHNOP_bind_vcpu`: an unbound port moves to vCPU 1 (status says
//!   so), an IPI port is `-EINVAL`, vCPU 2 `-ENOENT`;
//! - `VCPUOP_down` of vCPU 1: `is_up` 0 and its runstate offline;
//! - and the guest powers off by taking down vCPU 0, its last vCPU up
//!   (which shuts the domain down with `SHUTDOWN_poweroff`, as on Xen):
//!   were that not so, it would not power off and the run would fail.
//!
//! vCPU 1 touches only atomics and hypercalls (the SDK's console and event
//! layer are vCPU 0's).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::SeqCst};

    use abi::Errno;
    use abi::event_channel::{Port, VIRQ_TIMER};
    use abi::ops::{
        RUNSTATE_OFFLINE, RUNSTATE_RUNNING, VCPUOP_DOWN, VCPUOP_IS_UP, VCPUOP_STOP_PERIODIC_TIMER,
        VCPUOP_UP,
    };
    use abi::xen::{DOMID_SELF, MMU_NORMAL_PT_UPDATE, MMUEXT_TLB_FLUSH_ALL, MmuUpdate, MmuextOp};
    use pv_guest_sdk::events::{is_pending, mask};
    use pv_guest_sdk::mm::pte;
    use pv_guest_sdk::shared::shared_info;
    use pv_guest_sdk::time::now_ns;
    use pv_guest_sdk::{StartInfo, hypercall, mm, println, smp};
    use test_guests::frame;
    use test_guests::scratch::Window;
    use test_guests::verdict::{Outcome, finish, result_line};
    use test_guests::{ensure, ensure_eq, fail, hc};

    const NAME: &str = "abi-vcpus";
    const ROUNDS: u32 = 100;
    const MS: u64 = 1_000_000;
    /// How long vCPU 0 waits for vCPU 1 to reach a step (TCG is slow and
    /// the host may be busy).
    const STEP_LIMIT_NS: u64 = 10_000 * MS;

    const ENOENT: i64 = -(Errno::NoEnt as i64);
    const EINVAL: i64 = -(Errno::Inval as i64);
    const EEXIST: i64 = -(Errno::Exist as i64);

    /// vCPU 1's stack.
    #[repr(C, align(16))]
    struct Stack([u8; 16 * 1024]);
    static STACK: Stack = Stack([0; 16 * 1024]);

    /// The IPI ports: vCPU 0's and vCPU 1's.
    static PORT0: AtomicU32 = AtomicU32::new(0);
    static PORT1: AtomicU32 = AtomicU32::new(0);
    /// What vCPU 1 reports, step by step.
    static STARTED: AtomicU32 = AtomicU32::new(0);
    static OWN_STATE: AtomicU32 = AtomicU32::new(u32::MAX);
    static PONGS: AtomicU32 = AtomicU32::new(0);
    static TIMER_RESULT: AtomicI64 = AtomicI64::new(i64::MIN);
    static TIMER_LATE_NS: AtomicU64 = AtomicU64::new(0);
    static FINISHED: AtomicU32 = AtomicU32::new(0);
    /// The TLB step: the address vCPU 1 writes through, and where the two
    /// vCPUs are (1: write and keep the mapping cached, 2: cached, 3:
    /// remapped and flushed, 4: written after the flush).
    static TLB_VA: AtomicU64 = AtomicU64::new(0);
    static TLB_STEP: AtomicU32 = AtomicU32::new(0);
    /// What vCPU 1 writes before and after the remap.
    const BEFORE: u64 = 0x1111;
    const AFTER: u64 = 0x2222;

    pub fn main(_start: &'static StartInfo) -> ! {
        let outcome = run();
        if outcome.is_err() {
            finish(NAME, outcome)
        }
        println!("{}", result_line(NAME, &outcome));
        let ret = hc::vcpu_op_null(VCPUOP_DOWN, 0);
        // A second result line fails the run.
        println!(
            "FAIL {NAME}: VCPUOP_down of the last vCPU up returned {ret} instead of shutting down"
        );
        pv_guest_sdk::sched::crash()
    }

    fn clear_pending(port: Port) {
        shared_info().evtchn_pending[port as usize / 64].fetch_and(!(1 << (port % 64)), SeqCst);
    }

    /// Waits (yielding) until `done()` holds, at most [`STEP_LIMIT_NS`].
    fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Outcome {
        let start = now_ns();
        while !done() {
            if now_ns() - start > STEP_LIMIT_NS {
                fail!("vCPU 1 did not get to: {what}");
            }
            let _ = hypercall::sched_yield();
        }
        Ok(())
    }

    fn run() -> Outcome {
        // vCPU 1 exists and is down; vCPU 2 does not exist.
        ensure_eq!(hc::vcpu_op_null(VCPUOP_IS_UP, 0), 1, "VCPUOP_is_up(0)");
        ensure_eq!(
            hc::vcpu_op_null(VCPUOP_IS_UP, 1),
            0,
            "VCPUOP_is_up(1) at start"
        );
        ensure_eq!(hc::vcpu_op_null(VCPUOP_IS_UP, 2), ENOENT, "VCPUOP_is_up(2)");
        ensure_eq!(hc::vcpu_op_null(VCPUOP_UP, 2), ENOENT, "VCPUOP_up(2)");
        ensure_eq!(
            hc::vcpu_op_null(VCPUOP_UP, 1),
            EINVAL,
            "VCPUOP_up(1) before a context"
        );

        let port0 = match hc::bind_ipi(0) {
            Ok(p) => p,
            Err(e) => fail!("EVTCHNOP_bind_ipi(vcpu 0): {e}"),
        };
        let port1 = match hc::bind_ipi(1) {
            Ok(p) => p,
            Err(e) => fail!("EVTCHNOP_bind_ipi(vcpu 1): {e}"),
        };
        ensure_eq!(hc::bind_ipi(2), Err(ENOENT), "EVTCHNOP_bind_ipi(vcpu 2)");
        // Masked: the ports only wake polls, never raise an upcall.
        for port in [port0, port1] {
            mask(port);
        }
        PORT0.store(port0, SeqCst);
        PORT1.store(port1, SeqCst);

        // vCPU 1 starts at `vcpu1_entry` on `STACK`, with events masked
        // and no trap table.
        let top = STACK.0.as_ptr() as u64 + STACK.0.len() as u64;
        let context = smp::context(vcpu1_entry, top);
        ensure_eq!(
            hc::vcpu_initialise(2, &context),
            ENOENT,
            "VCPUOP_initialise(2)"
        );
        ensure_eq!(hc::vcpu_initialise(1, &context), 0, "VCPUOP_initialise(1)");
        ensure_eq!(
            hc::vcpu_initialise(1, &context),
            EEXIST,
            "VCPUOP_initialise(1) again"
        );
        ensure_eq!(
            hc::vcpu_op_null(VCPUOP_IS_UP, 1),
            0,
            "VCPUOP_is_up(1) after initialise, before up"
        );
        ensure_eq!(STARTED.load(SeqCst), 0, "vCPU 1 ran before VCPUOP_up");
        ensure_eq!(hc::vcpu_op_null(VCPUOP_UP, 1), 0, "VCPUOP_up(1)");
        ensure_eq!(
            hc::vcpu_op_null(VCPUOP_IS_UP, 1),
            1,
            "VCPUOP_is_up(1) after up"
        );
        ensure_eq!(hc::vcpu_op_null(VCPUOP_UP, 1), 0, "VCPUOP_up(1) again");
        wait_for("its entry", || STARTED.load(SeqCst) == 1)?;
        ensure_eq!(
            OWN_STATE.load(SeqCst),
            RUNSTATE_RUNNING as u32,
            "vCPU 1's own runstate, read on vCPU 1"
        );

        // IPIs: vCPU 0 sends on vCPU 1's port, vCPU 1 answers on ours.
        for round in 0..ROUNDS {
            ensure_eq!(hc::evtchn_send(port1), 0, "EVTCHNOP_send to vCPU 1");
            let start = now_ns();
            while !is_pending(port0) {
                if now_ns() - start > STEP_LIMIT_NS {
                    fail!("no answer from vCPU 1 in round {round}");
                }
                let _ = hc::poll(&[port0], now_ns() + STEP_LIMIT_NS);
            }
            clear_pending(port0);
        }
        wait_for("the last pong", || PONGS.load(SeqCst) == ROUNDS)?;
        println!("{NAME}: {ROUNDS} IPI round trips between vCPU 0 and vCPU 1");

        tlb_shootdown()?;

        // vCPU 1's own timer.
        wait_for("its timer", || TIMER_RESULT.load(SeqCst) != i64::MIN)?;
        ensure_eq!(TIMER_RESULT.load(SeqCst), 0, "vCPU 1's timer test");
        println!(
            "{NAME}: vCPU 1's singleshot timer woke its poll {} us after the deadline",
            TIMER_LATE_NS.load(SeqCst) / 1000
        );

        // EVTCHNOP_bind_vcpu.
        let unbound = match hypercall::evtchn_alloc_unbound(DOMID_SELF) {
            Ok(p) => p,
            Err(e) => fail!("EVTCHNOP_alloc_unbound: {e}"),
        };
        ensure_eq!(
            hc::bind_vcpu(unbound, 1),
            0,
            "EVTCHNOP_bind_vcpu(unbound, 1)"
        );
        match hc::evtchn_status(unbound) {
            Ok(status) => ensure_eq!(status.vcpu, 1, "EVTCHNOP_status vcpu after bind_vcpu"),
            Err(e) => fail!("EVTCHNOP_status: {e}"),
        }
        ensure_eq!(
            hc::bind_vcpu(port0, 1),
            EINVAL,
            "EVTCHNOP_bind_vcpu(ipi, 1)"
        );
        ensure_eq!(
            hc::bind_vcpu(unbound, 2),
            ENOENT,
            "EVTCHNOP_bind_vcpu(unbound, 2)"
        );

        // Down: vCPU 1 sits in its last poll.
        wait_for("its last poll", || FINISHED.load(SeqCst) == 1)?;
        ensure_eq!(hc::vcpu_op_null(VCPUOP_DOWN, 1), 0, "VCPUOP_down(1)");
        ensure_eq!(
            hc::vcpu_op_null(VCPUOP_IS_UP, 1),
            0,
            "VCPUOP_is_up(1) after down"
        );
        wait_for("the offline state", || {
            hypercall::vcpu_runstate_info(1).is_ok_and(|r| r.state == RUNSTATE_OFFLINE as i32)
        })?;
        let before = hypercall::vcpu_runstate_info(1).map_or(0, |r| r.time[RUNSTATE_OFFLINE]);
        let start = now_ns();
        while now_ns() - start < 20 * MS {
            let _ = hypercall::sched_yield();
        }
        let after = hypercall::vcpu_runstate_info(1).map_or(0, |r| r.time[RUNSTATE_OFFLINE]);
        ensure!(
            after > before,
            "vCPU 1's offline time grows while it is down ({before} then {after} ns)"
        );
        Ok(())
    }

    /// vCPU 0's side of the TLB step.
    fn tlb_shootdown() -> Outcome {
        let (w, old, new) = match (Window::new(), mm::alloc_frame(), mm::alloc_frame()) {
            (Ok(w), Ok(a), Ok(b)) => (w, a, b),
            _ => fail!("setting up the TLB step's window and frames"),
        };
        let map = |frame: &mm::Frame| MmuUpdate {
            ptr: w.entry_maddr(0) | MMU_NORMAL_PT_UPDATE,
            val: pte::entry(frame.mfn, pte::KERNEL_RW),
        };
        ensure_eq!(
            hc::mmu_update(&[map(&old)], DOMID_SELF),
            (0, 1),
            "mapping the old frame"
        );
        TLB_VA.store(w.va(0), SeqCst);
        TLB_STEP.store(1, SeqCst);
        wait_for("writing through the mapping", || TLB_STEP.load(SeqCst) == 2)?;
        ensure_eq!(
            hc::mmu_update(&[map(&new)], DOMID_SELF),
            (0, 1),
            "remapping to the new frame"
        );
        let flush = MmuextOp {
            cmd: MMUEXT_TLB_FLUSH_ALL,
            _pad: 0,
            arg1: 0,
            arg2: 0,
        };
        ensure_eq!(hc::mmuext_op(&[flush]), (0, 1), "MMUEXT_TLB_FLUSH_ALL");
        TLB_STEP.store(3, SeqCst);
        wait_for("writing after the flush", || TLB_STEP.load(SeqCst) == 4)?;
        let (in_old, in_new) = (frame::read_word(&old, 0), frame::read_word(&new, 0));
        ensure!(
            in_old == BEFORE && in_new == AFTER,
            "after the remap and MMUEXT_TLB_FLUSH_ALL, vCPU 1's write went to the old frame \
             (old frame {in_old:#x}, new frame {in_new:#x}): a stale TLB entry on its CPU"
        );
        let unmap = MmuUpdate {
            ptr: w.entry_maddr(0) | MMU_NORMAL_PT_UPDATE,
            val: 0,
        };
        ensure_eq!(
            hc::mmu_update(&[unmap], DOMID_SELF),
            (0, 1),
            "unmapping the window page"
        );
        println!("{NAME}: a remap flushed with MMUEXT_TLB_FLUSH_ALL reached vCPU 1");
        Ok(())
    }

    /// vCPU 1's side of the TLB step: write, keep the translation cached
    /// (reading it, no hypercall) until the remap, write again.
    fn vcpu1_tlb() {
        while TLB_STEP.load(SeqCst) != 1 {
            core::hint::spin_loop();
        }
        let va = TLB_VA.load(SeqCst);
        for _ in 0..100 {
            #[allow(unsafe_code)]
            // SAFETY: vCPU 0 mapped a frame of ours writable at `va`, in
            // the scratch window no Rust object occupies.
            unsafe {
                test_guests::arch::write_volatile_u64(va, BEFORE)
            };
        }
        TLB_STEP.store(2, SeqCst);
        while TLB_STEP.load(SeqCst) != 3 {
            #[allow(unsafe_code)]
            // SAFETY: as above; the page stays mapped (to one frame or
            // the other) until step 4.
            let _ = unsafe { test_guests::arch::read_volatile_u64(va) };
        }
        #[allow(unsafe_code)]
        // SAFETY: as above.
        unsafe {
            test_guests::arch::write_volatile_u64(va, AFTER)
        };
        TLB_STEP.store(4, SeqCst);
    }

    extern "C" fn vcpu1_entry() -> ! {
        let result = vcpu1();
        TIMER_RESULT
            .compare_exchange(i64::MIN, result, SeqCst, SeqCst)
            .ok();
        FINISHED.store(1, SeqCst);
        // Wait to be taken down: a poll that nothing ends.
        let port1 = PORT1.load(SeqCst);
        loop {
            let _ = hc::poll(&[port1], 0);
        }
    }

    /// vCPU 1's part; its timer test's result (0, or the step that failed).
    fn vcpu1() -> i64 {
        let own = hypercall::vcpu_runstate_info(1).map_or(u32::MAX - 1, |r| r.state as u32);
        OWN_STATE.store(own, SeqCst);
        STARTED.store(1, SeqCst);
        let (port0, port1) = (PORT0.load(SeqCst), PORT1.load(SeqCst));
        for _ in 0..ROUNDS {
            while !is_pending(port1) {
                let _ = hc::poll(&[port1], 0);
            }
            clear_pending(port1);
            PONGS.fetch_add(1, SeqCst);
            let _ = hc::evtchn_send(port0);
        }
        vcpu1_tlb();
        // Its own VIRQ_TIMER, its own singleshot timer.
        if hc::vcpu_op_null(VCPUOP_STOP_PERIODIC_TIMER, 1) != 0 {
            return 1;
        }
        let Ok(timer) = hc::bind_virq(VIRQ_TIMER, 1) else {
            return 2;
        };
        mask(timer);
        clear_pending(timer);
        let deadline = now_ns() + 5 * MS;
        if hypercall::vcpu_set_singleshot_timer(1, deadline, 0).is_err() {
            return 3;
        }
        let give_up = now_ns() + STEP_LIMIT_NS;
        while !is_pending(timer) {
            if now_ns() > give_up {
                return 4;
            }
            let _ = hc::poll(&[timer], give_up);
        }
        let woke = now_ns();
        if woke < deadline {
            return 5;
        }
        TIMER_LATE_NS.store(woke - deadline, SeqCst);
        0
    }
}
