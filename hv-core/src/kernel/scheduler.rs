//! The scheduler: which vCPU the one CPU runs, and switching to it.
//!
//! Every exit to a guest passes through [`schedule`]. Nothing happens there
//! unless a reschedule was requested: by a vCPU that blocked, polled,
//! yielded or shut down, by the timer at the end of a 10 ms slice, or by an
//! event that woke a waiting vCPU of another domain. The choice is then:
//! 1. a vCPU just woken from a wait (it is usually an event handler that
//!    runs briefly: dom0 answering the console, one side of a ping-pong),
//!    unless it has run more than a slice ahead of the others;
//! 2. else the runnable vCPU with the least virtual runtime, so CPU-bound
//!    vCPUs share the CPU evenly. Virtual runtime is CPU time, raised on
//!    wake-up to the least among runnable vCPUs so a sleeper earns no burst.
//!
//! With nothing runnable the CPU halts (interrupts on) until an interrupt
//! makes something runnable; idle time is charged to nobody.
//!
//! Switching saves the outgoing vCPU's registers into its `Vcpu::frame`,
//! its floating-point state into `Vcpu::fpu` and its data segment
//! selectors into `Vcpu::selectors`, loads the incoming one's, and
//! switches page tables and segment bases.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use abi::ops::{RUNSTATE_BLOCKED, RUNSTATE_OFFLINE, RUNSTATE_RUNNABLE, RUNSTATE_RUNNING};
use abi::xen::DomId;
use hv_core::sched_policy::{self, Candidate};

use crate::arch::TrapFrame;
use crate::arch::pv;
use crate::domain::{self, Domain, State, Wait};
use crate::{event_delivery, vtime};

/// One timeslice.
pub const SLICE_NS: u64 = 10_000_000;

static NEED_RESCHED: AtomicBool = AtomicBool::new(false);
/// When the running vCPU's slice ends (system time, ns).
static SLICE_END: AtomicU64 = AtomicU64::new(u64::MAX);
/// The least virtual runtime among runnable vCPUs at the last decision.
static MIN_VRUNTIME: AtomicU64 = AtomicU64::new(0);

/// Asks for a scheduling decision on the next exit to a guest.
pub fn request() {
    NEED_RESCHED.store(true, Relaxed);
}

/// When the running slice ends, for the timer code to arm the LAPIC.
pub fn slice_end() -> u64 {
    SLICE_END.load(Relaxed)
}

/// Called by the timer code: the slice is over.
pub fn tick(now: u64) {
    if now >= SLICE_END.load(Relaxed) {
        request();
    }
}

/// Starts the clock for the first vCPU the boot code enters.
pub fn start(now: u64) {
    domain::with_current(|d| d.vcpus[0].runstate.enter(RUNSTATE_RUNNING, now));
    SLICE_END.store(now + SLICE_NS, Relaxed);
}

/// Brings a vCPU that starts running (a domain unpaused, a context set)
/// up to the least virtual runtime, so a newcomer shares the CPU instead
/// of running until it has caught up with everything before it.
pub fn catch_up(vcpu: &mut crate::domain::Vcpu) {
    vcpu.vruntime = vcpu.vruntime.max(MIN_VRUNTIME.load(Relaxed));
}

/// Whether vCPU `v` of `d` may run at all: up, in a live domain, not
/// paused (waits aside).
fn may_run(d: &Domain, v: usize) -> bool {
    d.state == State::Running && !d.paused && d.vcpus[v].online
}

/// Whether vCPU `v` of `d` can run now. A satisfied wait ends here: the
/// vCPU is marked woken and its virtual runtime caught up.
fn runnable(d: &mut Domain, v: usize, now: u64) -> bool {
    if !may_run(d, v) {
        return false;
    }
    let done = match &d.vcpus[v].wait {
        Wait::None => return true,
        Wait::Block => event_delivery::upcall_pending_in(d, v),
        Wait::Poll {
            ports,
            count,
            deadline,
        } => {
            deadline.is_some_and(|t| now >= t)
                || ports[..*count]
                    .iter()
                    .any(|&p| event_delivery::is_pending_in(d, p))
        }
    };
    if done {
        let vcpu = &mut d.vcpus[v];
        vcpu.wait = Wait::None;
        vcpu.runstate.enter(RUNSTATE_RUNNABLE, now);
        vcpu.woken = true;
        catch_up(vcpu);
    }
    done
}

/// The vCPU to run next, if any is runnable (the choice itself is
/// `hv_core::sched_policy`, host-tested).
fn pick(now: u64) -> Option<DomId> {
    let mut candidates: heapless::Vec<Candidate, { domain::MAX_DOMAINS }> = heapless::Vec::new();
    domain::for_each(|d| {
        if runnable(d, 0, now) {
            let vcpu = &d.vcpus[0];
            // The table holds at most MAX_DOMAINS domains.
            let _ = candidates.push(Candidate {
                id: d.id,
                woken: vcpu.woken,
                vruntime: vcpu.vruntime,
            });
        }
    });
    let mut floor = MIN_VRUNTIME.load(Relaxed);
    if let Some(least) = candidates.iter().map(|c| c.vruntime).min() {
        floor = floor.max(least);
        MIN_VRUNTIME.store(floor, Relaxed);
    }
    sched_policy::choose(candidates.iter().copied(), floor, SLICE_NS)
}

/// The CPU time vCPU 0 of `d` has used, up to now.
pub fn running_cpu_time(d: &Domain) -> u64 {
    d.vcpus[0].runstate.totals(vtime::now_ns())[RUNSTATE_RUNNING]
}

/// The state a vCPU that is not on the CPU is in.
pub fn resting_state(d: &Domain, v: usize) -> usize {
    if !may_run(d, v) {
        RUNSTATE_OFFLINE
    } else if matches!(d.vcpus[v].wait, Wait::None) {
        RUNSTATE_RUNNABLE
    } else {
        RUNSTATE_BLOCKED
    }
}

/// On the way out to a guest: switches vCPUs if a decision is due.
pub fn schedule(frame: &mut TrapFrame) {
    // Every exit passes here: a plain load, not a locked exchange.
    if !NEED_RESCHED.load(Relaxed) {
        return;
    }
    NEED_RESCHED.store(false, Relaxed);
    let mut now = vtime::now_ns();
    let current = domain::current_id();
    // The running vCPU leaves the CPU for the decision (and comes straight
    // back if it is chosen again); the stretch it ran since entering the
    // running state is charged to its virtual runtime.
    domain::with(current, |d| {
        let state = resting_state(d, 0);
        let vcpu = &mut d.vcpus[0];
        if vcpu.runstate.state == RUNSTATE_RUNNING {
            vcpu.vruntime += now.saturating_sub(vcpu.runstate.entry);
        }
        vcpu.runstate.enter(state, now);
    });
    let next = loop {
        if let Some(next) = pick(now) {
            break next;
        }
        idle();
        now = vtime::now_ns();
    };
    if next != current {
        switch(frame, current, next);
    }
    domain::with(next, |d| {
        d.vcpus[0].woken = false;
        d.vcpus[0].runstate.enter(RUNSTATE_RUNNING, now);
    });
    SLICE_END.store(now + SLICE_NS, Relaxed);
    vtime::check_timers();
}

/// Leaves a vCPU that will never run again (its domain crashed or shut
/// down) for the next runnable one. Never returns.
pub fn abandon_current() -> ! {
    request();
    // Only where the incoming vCPU's registers are loaded: `switch` keeps
    // nothing of a vCPU that cannot run again.
    let mut frame = TrapFrame::ZERO;
    let dead = domain::current_id();
    schedule(&mut frame);
    if domain::current_id() == dead {
        unreachable!("a domain that is not running was chosen to run");
    }
    crate::guest::exit_to_guest(&mut frame);
    pv::enter_guest(&frame)
}

fn switch(frame: &mut TrapFrame, from: DomId, to: DomId) {
    domain::with(from, |d| {
        // A dead vCPU's last registers stay as they were (the kill report
        // has printed those at the crash).
        if d.state == State::Running {
            d.vcpus[0].frame = *frame;
            d.vcpus[0].fpu.save();
            d.vcpus[0].selectors = pv::DataSelectors::read();
        }
    });
    domain::with(to, |d| {
        let vcpu = &d.vcpus[0];
        vcpu.fpu.restore();
        *frame = vcpu.frame;
        vcpu.load_root();
        // Selectors first: loading FS and GS resets their bases.
        vcpu.selectors.load();
        pv::load_segment_bases(&vcpu.segment_bases());
    })
    .expect("the chosen domain exists");
    domain::set_current(to);
}

/// Halts until an interrupt arrives (the timer, console input): the only
/// place hv-core runs with interrupts enabled.
fn idle() {
    SLICE_END.store(u64::MAX, Relaxed);
    vtime::check_timers();
    // A timer that just fired may have woken someone: look again first.
    if NEED_RESCHED.swap(false, Relaxed) {
        return;
    }
    crate::arch::power::wait_for_interrupt();
}
