//! The scheduler: which vCPU each CPU runs, and switching to it.
//!
//! Every exit to a guest passes through [`schedule`]. Nothing happens there
//! unless a reschedule was requested on this CPU: by a vCPU that blocked,
//! polled, yielded or shut down, by the timer at the end of a 10 ms slice,
//! or by another CPU (an event that woke a vCPU queued here, a pause).
//!
//! Every vCPU belongs to one CPU's run queue (`Vcpu::queue`: the CPU it
//! last ran on, or where it was placed when it woke). A CPU chooses among
//! the runnable vCPUs of its own queue, and pulls one from another queue
//! when its own has none or when one waiting elsewhere lags its choice by
//! more than a slice (`hv_core::sched_policy`, host-tested):
//! 1. a vCPU just woken from a wait (it is usually an event handler that
//!    runs briefly: dom0 answering the console, one side of a ping-pong),
//!    unless it has run more than a slice ahead of the others;
//! 2. else the runnable vCPU with the least virtual runtime, so CPU-bound
//!    vCPUs share the CPU evenly. Virtual runtime is CPU time, raised on
//!    wake-up to the least among runnable vCPUs so a sleeper earns no
//!    burst; it is one clock for every queue, which is what makes pulling
//!    by it fair across CPUs.
//!
//! A vCPU that wakes waits on its own CPU unless that CPU is busy and
//! another it may use is idle, which is then woken to run it
//! ([`notify`]); a vCPU preempted while others are idle moves to one of
//! them ([`release`]). The queues are the vCPUs' `queue` fields, read in
//! one walk over the domains (no list to keep in step; at hv-core's 16
//! domains of 8 vCPUs the walk is short).
//!
//! A CPU holds the vCPU it runs (`Vcpu::on_cpu`) from the moment it
//! chooses it until it gives it back: only then are the registers in the
//! vCPU (saved into `Vcpu::frame`, `Vcpu::fpu` and `Vcpu::selectors`, in
//! the same critical section that gives it back), so no other CPU can
//! load a vCPU whose registers are still on a CPU. With nothing runnable a
//! CPU gives its vCPU back, switches to hv-core's own page tables (a
//! domain's may be freed while the CPU sleeps) and halts with interrupts
//! on; idle time is charged to nobody. One that pauses or destroys a
//! domain waits until no CPU holds its vCPU ([`take_off_cpus`]).

use core::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64,
    Ordering::{Relaxed, SeqCst},
};

use abi::ops::{RUNSTATE_BLOCKED, RUNSTATE_OFFLINE, RUNSTATE_RUNNABLE, RUNSTATE_RUNNING};
use abi::xen::DomId;
use hv_core::sched_policy::{self, Candidate};

use crate::arch::TrapFrame;
use crate::arch::percpu;
use crate::arch::pv;
use crate::domain::{self, Domain, State, Wait};
use crate::{event_delivery, vtime};

/// One timeslice.
pub const SLICE_NS: u64 = 10_000_000;

/// The least virtual runtime among runnable vCPUs at the last decision
/// (on any CPU: virtual runtime is one clock for every run queue).
static MIN_VRUNTIME: AtomicU64 = AtomicU64::new(0);

/// No vCPU: the CPU holds none.
const NONE: u32 = u32::MAX;

/// One vCPU: its domain and its index there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuRef {
    pub dom: DomId,
    pub vcpu: usize,
}

impl VcpuRef {
    /// Domain in the high bits, so ordering packed values orders by
    /// domain first (the chooser's tie-break).
    const fn pack(self) -> u32 {
        (self.dom as u32) << 8 | self.vcpu as u32
    }

    const fn unpack(packed: u32) -> Self {
        Self {
            dom: (packed >> 8) as DomId,
            vcpu: (packed & 0xff) as usize,
        }
    }
}

const _: () = assert!(domain::MAX_VCPUS <= 256);

/// One CPU's scheduling state (in its `percpu` block).
pub struct CpuState {
    need_resched: AtomicBool,
    /// When the running vCPU's slice ends (system time, ns).
    slice_end: AtomicU64,
    /// The vCPU this CPU holds ([`VcpuRef::pack`]), or [`NONE`].
    current: AtomicU32,
    /// Halted (or about to halt) for want of work.
    idle: AtomicBool,
}

impl CpuState {
    pub const fn new() -> Self {
        Self {
            need_resched: AtomicBool::new(false),
            slice_end: AtomicU64::new(u64::MAX),
            current: AtomicU32::new(NONE),
            idle: AtomicBool::new(false),
        }
    }

    /// The vCPU this CPU holds.
    #[inline(always)]
    pub fn held(&self) -> Option<VcpuRef> {
        match self.current.load(Relaxed) {
            NONE => None,
            packed => Some(VcpuRef::unpack(packed)),
        }
    }

    /// The domain whose vCPU this CPU holds.
    #[inline(always)]
    pub fn current(&self) -> Option<DomId> {
        self.held().map(|v| v.dom)
    }

    /// The index of the vCPU this CPU holds (0 for none).
    #[inline(always)]
    pub fn current_vcpu(&self) -> usize {
        self.held().map_or(0, |v| v.vcpu)
    }

    fn set_current(&self, held: Option<VcpuRef>) {
        self.current
            .store(held.map_or(NONE, VcpuRef::pack), Relaxed);
    }
}

fn this_cpu() -> &'static CpuState {
    &percpu::current().sched
}

/// Asks for a scheduling decision on this CPU's next exit to a guest.
pub fn request() {
    this_cpu().need_resched.store(true, Relaxed);
}

/// Asks CPU `cpu` for a scheduling decision and interrupts it, so that it
/// makes it now (or, in a guest, delivers a new event on the way back).
fn request_on(cpu: usize) {
    let target = percpu::cpu(cpu);
    target.sched.need_resched.store(true, SeqCst);
    percpu::kick(target);
}

/// The CPUs halted for want of work.
fn idle_cpus() -> hv_core::cpus::CpuMask {
    percpu::online_cpus()
        .filter(|cpu| cpu.sched.idle.load(SeqCst))
        .fold(0, |mask, cpu| mask | 1 << cpu.index())
}

/// The CPUs vCPU `vcpu` may run on now.
fn allowed(vcpu: &crate::domain::Vcpu) -> hv_core::cpus::CpuMask {
    vcpu.hard_affinity & percpu::online_mask()
}

/// Whether vCPU `vcpu` may run on CPU `cpu` now.
fn may_use(vcpu: &crate::domain::Vcpu, cpu: usize) -> bool {
    allowed(vcpu) & 1 << cpu != 0
}

/// Queues runnable vCPU `vcpu`, which no CPU holds, where it should wait
/// (`sched_policy::place`: its own CPU unless another it may use is idle,
/// one of its soft affinity first) and asks that CPU to choose again;
/// returns the CPU.
fn place_and_ask(vcpu: &crate::domain::Vcpu) -> usize {
    let home = vcpu.queue.load(Relaxed) as usize;
    let target = sched_policy::place(home, allowed(vcpu), vcpu.soft_affinity, idle_cpus());
    vcpu.queue.store(target as u32, Relaxed);
    if target == percpu::current().index() {
        request();
    } else {
        request_on(target);
    }
    target
}

/// Something happened to vCPU `v` of `d` that may change what runs: an
/// event for it, the end of its wait, a context or an unpause. The CPU
/// that holds it is asked (interrupted, if it is another: a running vCPU
/// gets its upcall at once); one that waits (or has just become able to
/// run) is queued by [`place_and_ask`]; one that is runnable and queued
/// already is left for its queue's CPU, unless that CPU is idle.
pub fn notify(d: &Domain, v: usize) {
    let me = percpu::current().index();
    let vcpu = &d.vcpus[v];
    match vcpu.on_cpu {
        Some(cpu) if cpu != me => request_on(cpu),
        Some(_) => {
            if !matches!(vcpu.wait, Wait::None) {
                request();
            }
        }
        None if !may_run(d, v) => {}
        None => {
            let queue = vcpu.queue.load(Relaxed) as usize;
            let queue_idle = percpu::is_online(queue) && percpu::cpu(queue).sched.idle.load(SeqCst);
            if !matches!(vcpu.wait, Wait::None) || queue_idle || !may_use(vcpu, queue) {
                place_and_ask(vcpu);
            }
        }
    }
}

/// When this CPU's slice ends, for the timer code to arm the LAPIC.
pub fn slice_end() -> u64 {
    this_cpu().slice_end.load(Relaxed)
}

/// Called by the timer code: the slice is over.
pub fn tick(now: u64) {
    if now >= slice_end() {
        request();
    }
}

/// Starts the clock for dom0's vCPU, which the boot CPU holds (since
/// `dom0::build`) and enters first.
pub fn start(now: u64) {
    domain::with(0, |d| {
        d.vcpus[0].runstate.enter(RUNSTATE_RUNNING, now);
        percpu::current().set_guest(
            d.vcpus[0].kernel_mode,
            d.vcpu_info(0).maddr(),
            d.vcpus[0].callbacks.event,
        );
        // dom0's builder loaded its tables (`dom0::build`).
        percpu::current().set_root_domain(Some(0));
    });
    this_cpu().set_current(Some(VcpuRef { dom: 0, vcpu: 0 }));
    this_cpu().slice_end.store(now + SLICE_NS, Relaxed);
}

/// Brings a vCPU that starts running (a domain unpaused, a context set)
/// up to the least virtual runtime, so a newcomer shares the CPU instead
/// of running until it has caught up with everything before it.
pub fn catch_up(vcpu: &mut crate::domain::Vcpu) {
    vcpu.vruntime = vcpu.vruntime.max(MIN_VRUNTIME.load(Relaxed));
}

/// Whether vCPU `v` of `d` may run at all: up, in a live domain, not
/// paused nor being destroyed (waits aside).
fn may_run(d: &Domain, v: usize) -> bool {
    d.state == State::Running && !d.paused && !d.destroying && d.vcpus[v].online
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

/// The vCPU CPU `cpu` should run next, among the runnable ones no other
/// CPU holds: from its own queue, or pulled from another (the choice
/// itself is `hv_core::sched_policy`, host-tested). A vCPU whose queue's
/// CPU it may no longer use (its affinity changed) is in every allowed
/// CPU's queue.
fn pick(now: u64, cpu: usize) -> Option<VcpuRef> {
    const MAX: usize = domain::MAX_DOMAINS * domain::MAX_VCPUS;
    let mut local: heapless::Vec<Candidate, MAX> = heapless::Vec::new();
    let mut remote: heapless::Vec<Candidate, MAX> = heapless::Vec::new();
    domain::for_each(|d| {
        for v in 0..d.max_vcpus {
            if free_for(&d.vcpus[v], cpu) && runnable(d, v, now) {
                let vcpu = &d.vcpus[v];
                let queue = vcpu.queue.load(Relaxed) as usize;
                let candidate = Candidate {
                    id: VcpuRef { dom: d.id, vcpu: v }.pack(),
                    woken: vcpu.woken,
                    vruntime: vcpu.vruntime,
                };
                // At most MAX_DOMAINS * MAX_VCPUS of either.
                let _ = if queue == cpu || !may_use(vcpu, queue) {
                    local.push(candidate)
                } else {
                    remote.push(candidate)
                };
            }
        }
    });
    let mut floor = MIN_VRUNTIME.load(Relaxed);
    if let Some(least) = local.iter().chain(&remote).map(|c| c.vruntime).min() {
        floor = floor.max(least);
        MIN_VRUNTIME.fetch_max(floor, Relaxed);
    }
    sched_policy::choose_across(&local, &remote, floor, SLICE_NS)
        .map(|(id, _pulled)| VcpuRef::unpack(id))
}

/// Whether CPU `cpu` may take `vcpu`: its hard affinity allows `cpu`, and
/// no CPU holds it, or `cpu` does.
fn free_for(vcpu: &crate::domain::Vcpu, cpu: usize) -> bool {
    vcpu.hard_affinity & 1 << cpu != 0 && vcpu.on_cpu.is_none_or(|c| c == cpu)
}

/// [`pick`], and the chosen vCPU held for `cpu` (another CPU may have
/// taken it between the choice and the claim: then choose again).
fn claim(now: u64, cpu: usize) -> Option<VcpuRef> {
    loop {
        let next = pick(now, cpu)?;
        // Checked again under the domain's lock: since `pick` looked, the
        // domain may have been paused or its vCPU taken down (and the CPU
        // that did so, finding no holder, gone on to free its tables).
        let taken = domain::with(next.dom, |d| {
            let runnable = resting_state(d, next.vcpu) == RUNSTATE_RUNNABLE;
            let vcpu = &mut d.vcpus[next.vcpu];
            if runnable && free_for(vcpu, cpu) {
                vcpu.on_cpu = Some(cpu);
                // Its queue is this CPU's now (it may have been pulled).
                vcpu.queue.store(cpu as u32, Relaxed);
                true
            } else {
                false
            }
        });
        if taken == Some(true) {
            return Some(next);
        }
    }
}

/// Whether vCPU `v` of `d` is on a CPU now (held by one, and not halted
/// for want of work: a CPU gives back the vCPU before it halts).
pub fn is_running(d: &Domain, v: usize) -> bool {
    d.vcpus[v].on_cpu.is_some() && d.vcpus[v].runstate.state == RUNSTATE_RUNNING
}

/// The CPU time vCPU `v` of `d` has used, up to now.
pub fn vcpu_cpu_time(d: &Domain, v: usize) -> u64 {
    d.vcpus[v].runstate.totals(vtime::now_ns())[RUNSTATE_RUNNING]
}

/// The CPU time all of `d`'s vCPUs have used, up to now.
pub fn running_cpu_time(d: &Domain) -> u64 {
    (0..d.max_vcpus).map(|v| vcpu_cpu_time(d, v)).sum()
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
/// Every exit passes here, so the test is inlined (a plain load, not a
/// locked exchange) and the decision is a call only when one is due.
#[inline(always)]
pub fn schedule(frame: &mut TrapFrame) {
    if percpu::current().sched.need_resched.load(Relaxed) {
        reschedule(frame);
    }
}

#[cold]
#[inline(never)]
fn reschedule(frame: &mut TrapFrame) {
    let me = percpu::current();
    let state = &me.sched;
    state.need_resched.store(false, Relaxed);
    let cpu = me.index();
    let mut now = vtime::now_ns();
    let mut held = state.held();
    // The held vCPU leaves the CPU for the decision (and comes straight
    // back if it is chosen again); the stretch it ran since entering the
    // running state is charged to its virtual runtime.
    if let Some(current) = held {
        domain::with(current.dom, |d| {
            let resting = resting_state(d, current.vcpu);
            let vcpu = &mut d.vcpus[current.vcpu];
            if vcpu.runstate.state == RUNSTATE_RUNNING {
                vcpu.vruntime += now.saturating_sub(vcpu.runstate.entry);
            }
            vcpu.runstate.enter(resting, now);
        });
    }
    let next = loop {
        if let Some(next) = claim(now, cpu) {
            break next;
        }
        // Nothing to run: the held vCPU goes back, so another CPU may
        // take it when it can run again, and this CPU halts.
        if let Some(current) = held.take() {
            release(frame, current, cpu);
            state.set_current(None);
        }
        // Idle first, then look once more: a CPU that makes a vCPU
        // runnable after that look sees this CPU idle and kicks it.
        state.idle.store(true, SeqCst);
        if let Some(next) = claim(now, cpu) {
            state.idle.store(false, SeqCst);
            break next;
        }
        idle(state);
        now = vtime::now_ns();
    };
    if held != Some(next) {
        if let Some(current) = held {
            release(frame, current, cpu);
        }
        load(frame, next);
        state.set_current(Some(next));
        log::trace!("cpu {cpu}: d{}v{} in", next.dom, next.vcpu);
    }
    domain::with(next.dom, |d| {
        d.vcpus[next.vcpu].woken = false;
        d.vcpus[next.vcpu].runstate.enter(RUNSTATE_RUNNING, now);
    });
    state.slice_end.store(now + SLICE_NS, Relaxed);
    vtime::check_timers();
}

/// Leaves a vCPU that will never run again (its domain crashed or shut
/// down) for the next runnable one. Never returns.
pub fn abandon_current() -> ! {
    request();
    // Only where the incoming vCPU's registers are loaded: `release` keeps
    // nothing of a vCPU that cannot run again.
    let mut frame = TrapFrame::ZERO;
    let dead = this_cpu().held();
    schedule(&mut frame);
    if this_cpu().held() == dead {
        unreachable!("a domain that is not running was chosen to run");
    }
    crate::guest::exit_to_guest(&mut frame);
    pv::enter_guest(&frame)
}

/// A secondary CPU, up: it runs whatever the scheduler gives it (halting
/// until there is something). Never returns.
pub fn run_secondary() -> ! {
    request();
    let mut frame = TrapFrame::ZERO;
    schedule(&mut frame);
    crate::guest::exit_to_guest(&mut frame);
    pv::enter_guest(&frame)
}

/// Gives back the vCPU of `from` this CPU holds: its registers (still the
/// CPU's, `frame` the guest's) go into the vCPU in the same critical
/// section that lets other CPUs take it.
fn release(frame: &TrapFrame, from: VcpuRef, cpu: usize) {
    domain::with(from.dom, |d| {
        let vcpu = &mut d.vcpus[from.vcpu];
        // A dead vCPU's last registers stay as they were (the kill report
        // has printed those at the crash).
        if d.state == State::Running {
            vcpu.frame = *frame;
            vcpu.fpu.save();
            vcpu.selectors = pv::DataSelectors::read();
        }
        vcpu.on_cpu = None;
        vcpu.last_cpu = cpu;
        percpu::current().set_guest(false, 0, 0);
        // Work for an idle CPU: a preempted vCPU, or one this CPU may no
        // longer run (its affinity changed), moves to one.
        if resting_state(d, from.vcpu) == RUNSTATE_RUNNABLE {
            let vcpu = &d.vcpus[from.vcpu];
            if idle_cpus() & allowed(vcpu) != 0 || !may_use(vcpu, cpu) {
                place_and_ask(vcpu);
            }
        }
    });
}

/// The hard affinity of vCPU `v` of `d` changed: a CPU that holds it and
/// is no longer allowed to gives it up at once.
pub fn affinity_changed(d: &Domain, v: usize) {
    if let Some(cpu) = d.vcpus[v].on_cpu
        && d.vcpus[v].hard_affinity & 1 << cpu == 0
    {
        if cpu == percpu::current().index() {
            request();
        } else {
            request_on(cpu);
        }
    }
}

/// Loads the vCPU of `to` (held by this CPU) onto the CPU.
fn load(frame: &mut TrapFrame, to: VcpuRef) {
    domain::with(to.dom, |d| {
        let vcpu = &d.vcpus[to.vcpu];
        vcpu.fpu.restore();
        *frame = vcpu.frame;
        percpu::current().set_root_domain(Some(to.dom));
        vcpu.load_root();
        // Selectors first: loading FS and GS resets their bases.
        vcpu.selectors.load();
        pv::load_segment_bases(&vcpu.segment_bases());
        percpu::current().set_guest(
            vcpu.kernel_mode,
            d.vcpu_info(to.vcpu).maddr(),
            vcpu.callbacks.event,
        );
    })
    .expect("the chosen domain exists");
}

/// Waits until no CPU but this one holds a vCPU of domain `id`, which must
/// no longer be allowed to run (paused, down, or dead): each holder is
/// asked to reschedule, and gives it back. Afterwards no CPU runs the
/// domain's code or uses its page tables.
pub fn take_off_cpus(id: DomId) {
    let me = percpu::current().index();
    loop {
        let elsewhere = domain::with(id, |d| {
            d.vcpus()
                .iter()
                .find_map(|v| v.on_cpu.filter(|&cpu| cpu != me))
        })
        .flatten();
        match elsewhere {
            Some(cpu) => {
                request_on(cpu);
                for _ in 0..1000 {
                    percpu::serve_flush();
                    core::hint::spin_loop();
                }
            }
            _ => return,
        }
    }
}

/// Halts until an interrupt arrives (the timer, console input, another
/// CPU's kick): the only place hv-core runs with interrupts enabled.
fn idle(state: &CpuState) {
    state.slice_end.store(u64::MAX, Relaxed);
    // No domain's page tables while halted: they may be freed meanwhile.
    pv::load_hypervisor_root();
    percpu::current().set_root_domain(None);
    vtime::check_timers();
    // A timer that just fired may have woken someone: look again first.
    if !state.need_resched.swap(false, SeqCst) {
        crate::arch::power::wait_for_interrupt();
    }
    state.idle.store(false, SeqCst);
}
