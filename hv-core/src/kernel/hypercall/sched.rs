//! Scheduling and timers: `sched_op`, `set_timer_op`, `vcpu_op`.
//!
//! Yield, block and poll only record what the vCPU waits for and ask the
//! scheduler for a decision, which it takes on the way out (`scheduler`):
//! the hypercall's result is already in the saved registers when another
//! vCPU runs.

use abi::Errno;
use abi::ops::{
    SCHEDOP_BLOCK, SCHEDOP_POLL, SCHEDOP_SHUTDOWN, SCHEDOP_YIELD, SchedPoll, SchedShutdown,
    VCPUOP_DOWN, VCPUOP_GET_RUNSTATE_INFO, VCPUOP_INITIALISE, VCPUOP_IS_UP,
    VCPUOP_REGISTER_VCPU_INFO, VCPUOP_SET_PERIODIC_TIMER, VCPUOP_SET_SINGLESHOT_TIMER,
    VCPUOP_STOP_PERIODIC_TIMER, VCPUOP_STOP_SINGLESHOT_TIMER, VCPUOP_UP, VcpuRegisterVcpuInfo,
    VcpuRunstateInfo, VcpuSetSingleshotTimer,
};
use abi::xen::DomId;

use crate::domain::{self, MAX_POLL_PORTS, Wait};
use crate::{event_delivery, guest, scheduler, vtime};

/// The shortest periodic timer Xen accepts (1 ms).
const MIN_PERIOD_NS: u64 = 1_000_000;
/// The longest (Xen's `STIME_DELTA_MAX`, 2^62 - 1 ns): system time plus
/// a period then cannot overflow for the next 146 years of uptime.
const MAX_PERIOD_NS: u64 = u64::MAX >> 2;
/// `set_timer_op` deadlines further ahead than this (about 13 days) are
/// treated as Xen treats them (see [`set_timer_op`]).
const TIMER_OP_HORIZON_NS: u64 = 1 << 50;
/// Where such a deadline goes instead: 100 ms from now.
const TIMER_OP_FALLBACK_NS: u64 = 100_000_000;

super::op_family! {
    /// A `sched_op` request.
    SchedOp(DomId) {
        SCHEDOP_YIELD => Yield(()), none => yield_cpu;
        SCHEDOP_BLOCK => Block(()), none => block;
        SCHEDOP_SHUTDOWN => Shutdown(SchedShutdown), in => shutdown;
        SCHEDOP_POLL => Poll(SchedPoll), in => poll;
    }
}

fn yield_cpu(_: &mut (), _caller: DomId) -> Result<i64, Errno> {
    scheduler::request();
    Ok(0)
}

fn block(_: &mut (), _caller: DomId) -> Result<i64, Errno> {
    // Xen's order: unmask, then block only if nothing is pending, so an
    // event that raced in is not slept through.
    let vcpu = domain::current_vcpu_index();
    event_delivery::enable_delivery(vcpu);
    if !event_delivery::upcall_pending(vcpu) {
        domain::with_current_vcpu(|v| v.wait = Wait::Block);
        scheduler::request();
    }
    Ok(0)
}

fn shutdown(request: &mut SchedShutdown, _caller: DomId) -> Result<i64, Errno> {
    guest::shutdown_current(request.reason)
}

fn poll(request: &mut SchedPoll, _caller: DomId) -> Result<i64, Errno> {
    if request.nr_ports as usize > MAX_POLL_PORTS {
        return Err(Errno::Inval);
    }
    let count = request.nr_ports as usize;
    let mut ports = [0u32; MAX_POLL_PORTS];
    let list = guest::GuestArray::<u32>::new(request.ports, count as u64);
    for (i, port) in ports[..count].iter_mut().enumerate() {
        *port = list.at(i as u64)?.read()?;
        if !event_delivery::is_bound(*port) {
            return Err(Errno::Inval);
        }
    }
    let deadline = (request.timeout != 0).then_some(request.timeout);
    if ports[..count]
        .iter()
        .any(|&p| event_delivery::is_pending(p))
        || deadline.is_some_and(|t| vtime::now_ns() >= t)
    {
        return Ok(0);
    }
    domain::with_current_vcpu(|v| {
        v.wait = Wait::Poll {
            ports,
            count,
            deadline,
        }
    });
    // The timer code arms the LAPIC for the deadline.
    vtime::check_timers();
    scheduler::request();
    Ok(0)
}

/// `set_timer_op(timeout)`: a one-shot VIRQ_TIMER at system time
/// `timeout` (ns); 0 cancels.
///
/// As on Xen, the deadline is signed system time: a negative one, or one
/// more than 2^50 ns ahead (old Linux wraps its jiffies so), fires in
/// 100 ms rather than never or at once.
pub fn set_timer_op(timeout: u64) -> Result<i64, Errno> {
    let now = vtime::now_ns();
    let deadline = match timeout {
        0 => None,
        t if (t as i64) < 0 || t.saturating_sub(now) >= TIMER_OP_HORIZON_NS => {
            Some(now + TIMER_OP_FALLBACK_NS)
        }
        t => Some(t),
    };
    vtime::set_timer(domain::current_vcpu_index(), deadline);
    Ok(0)
}

/// The vCPU a `vcpu_op` names: one of the caller's, checked before the
/// op is looked at (Xen answers `-ENOENT` for a vCPU out of range whatever
/// the op).
#[derive(Clone, Copy, Debug)]
pub struct Vcpu(usize);

impl Vcpu {
    pub fn of_caller(index: u32) -> Result<Self, Errno> {
        let index = index as usize;
        if index >= domain::with_current(|d| d.max_vcpus) {
            return Err(Errno::NoEnt);
        }
        Ok(Self(index))
    }
}

/// `vcpu_op(cmd, vcpu, arg)`. `VCPUOP_initialise` is taken apart: its
/// context is 5 KiB, too large to ride in every op's request.
pub fn vcpu_op(cmd: u32, vcpu: u32, arg: u64) -> Result<i64, Errno> {
    let vcpu = Vcpu::of_caller(vcpu)?;
    if cmd == VCPUOP_INITIALISE {
        let context: abi::domctl::VcpuGuestContext = guest::read(arg)?;
        super::domctl::set_vcpu_context(
            domain::current_id(),
            vcpu.0,
            &context,
            super::domctl::ContextFrom::Guest,
        )?;
        return Ok(0);
    }
    VcpuOp::handle(cmd, arg, vcpu)
}

super::op_family! {
    /// A `vcpu_op` request.
    VcpuOp(Vcpu) {
        VCPUOP_SET_SINGLESHOT_TIMER => SetSingleshotTimer(VcpuSetSingleshotTimer), in => set_singleshot_timer;
        VCPUOP_STOP_SINGLESHOT_TIMER => StopSingleshotTimer(()), none => stop_singleshot_timer;
        VCPUOP_SET_PERIODIC_TIMER => SetPeriodicTimer(u64), in => set_periodic_timer;
        VCPUOP_STOP_PERIODIC_TIMER => StopPeriodicTimer(()), none => stop_periodic_timer;
        VCPUOP_UP => Up(()), none => up;
        VCPUOP_DOWN => Down(()), none => down;
        VCPUOP_IS_UP => IsUp(()), none => is_up;
        VCPUOP_GET_RUNSTATE_INFO => GetRunstateInfo(VcpuRunstateInfo), out => runstate_info;
        VCPUOP_REGISTER_VCPU_INFO => RegisterVcpuInfo(VcpuRegisterVcpuInfo), in => register_vcpu_info;
    }
}

fn set_singleshot_timer(timer: &mut VcpuSetSingleshotTimer, vcpu: Vcpu) -> Result<i64, Errno> {
    // Xen 4.17 no longer honours VCPU_SSHOTTMR_future: a past deadline
    // simply fires at once. Signed system time, as on Xen: a deadline of
    // 2^63 or more is in the past and fires at once.
    let deadline = match timer.timeout_abs_ns {
        t if (t as i64) < 0 => 0,
        t => t,
    };
    vtime::set_timer(vcpu.0, Some(deadline));
    Ok(0)
}

fn stop_singleshot_timer(_: &mut (), vcpu: Vcpu) -> Result<i64, Errno> {
    vtime::set_timer(vcpu.0, None);
    Ok(0)
}

/// `period_ns` within Xen's bounds, else `-EINVAL`.
fn set_periodic_timer(period_ns: &mut u64, vcpu: Vcpu) -> Result<i64, Errno> {
    if !(MIN_PERIOD_NS..=MAX_PERIOD_NS).contains(period_ns) {
        return Err(Errno::Inval);
    }
    vtime::set_periodic(vcpu.0, Some(*period_ns));
    Ok(0)
}

fn stop_periodic_timer(_: &mut (), vcpu: Vcpu) -> Result<i64, Errno> {
    vtime::set_periodic(vcpu.0, None);
    Ok(0)
}

/// `VCPUOP_up`: a vCPU with a context (`-EINVAL` without) becomes
/// runnable; one that is up already stays so.
fn up(_: &mut (), vcpu: Vcpu) -> Result<i64, Errno> {
    domain::with_current(|d| {
        let v = &mut d.vcpus[vcpu.0];
        if !v.initialised {
            return Err(Errno::Inval);
        }
        if !v.online {
            v.online = true;
            v.wait = Wait::None;
            scheduler::catch_up(v);
            let state = scheduler::resting_state(d, vcpu.0);
            d.vcpus[vcpu.0].runstate.enter(state, vtime::now_ns());
            scheduler::notify(d, vcpu.0);
        }
        Ok(0)
    })
}

/// `VCPUOP_down`: the vCPU stops (at once if it is the caller, at its
/// CPU's next exit if another CPU runs it). As on Xen, taking down the
/// last vCPU that is up shuts the domain down (`SHUTDOWN_poweroff`).
fn down(_: &mut (), vcpu: Vcpu) -> Result<i64, Errno> {
    let last = domain::with_current(|d| {
        let others_up = (0..d.max_vcpus).any(|i| i != vcpu.0 && d.vcpus[i].online);
        if !others_up {
            return true;
        }
        let v = &mut d.vcpus[vcpu.0];
        if v.online {
            v.online = false;
            v.wait = Wait::None;
            if v.on_cpu.is_none() {
                v.runstate
                    .enter(abi::ops::RUNSTATE_OFFLINE, vtime::now_ns());
            }
            scheduler::notify(d, vcpu.0);
        }
        false
    });
    if last {
        guest::shutdown_current(abi::ops::SHUTDOWN_POWEROFF);
    }
    if vcpu.0 == domain::current_vcpu_index() {
        scheduler::request();
    }
    Ok(0)
}

fn is_up(_: &mut (), vcpu: Vcpu) -> Result<i64, Errno> {
    Ok(domain::with_current(|d| d.vcpus[vcpu.0].online) as i64)
}

fn runstate_info(info: &mut VcpuRunstateInfo, vcpu: Vcpu) -> Result<i64, Errno> {
    let now = vtime::now_ns();
    let (state, entry, time) = domain::with_current(|d| {
        let r = &d.vcpus[vcpu.0].runstate;
        (r.state, r.entry, r.totals(now))
    });
    *info = VcpuRunstateInfo {
        state: state as i32,
        _pad: 0,
        state_entry_time: entry,
        time,
    };
    Ok(0)
}

/// `VCPUOP_register_vcpu_info`: the vCPU's vcpu_info moves from its slot in
/// shared_info to a frame of the guest's own, with Xen 4.17's checks: the
/// vcpu_info must fit in the page and be 8-aligned (`-ENXIO`); then, each
/// `-EINVAL`: only once per vCPU, for the caller itself or a vCPU that is
/// down, in a frame the domain owns (not hv-core's shared_info page,
/// which Xen would take: `docs/abi.md`) that can take a writable type
/// (never a page table; held so until the domain is destroyed). The current contents are
/// copied over, and then, as on Xen, every selector bit and the upcall
/// flag are set so that no event raised meanwhile is missed.
fn register_vcpu_info(request: &mut VcpuRegisterVcpuInfo, vcpu: Vcpu) -> Result<i64, Errno> {
    use core::sync::atomic::Ordering::SeqCst;

    use crate::arch::shared::{VCPU_INFO_BYTES, VcpuInfoFrame};
    let offset = request.offset as usize;
    if offset > 4096 - VCPU_INFO_BYTES || !offset.is_multiple_of(8) {
        return Err(Errno::NxIo);
    }
    let me = domain::current_vcpu_index();
    domain::with_current(|d| {
        let v = &d.vcpus[vcpu.0];
        if v.vcpu_info_frame.is_some() || (vcpu.0 != me && v.online) {
            return Err(Errno::Inval);
        }
        let frame = crate::memory::with_frame_table(|ft| {
            VcpuInfoFrame::take(ft, request.mfn, offset, d.id)
        })
        .map_err(|e| {
            log::debug!("d{}: VCPUOP_register_vcpu_info refused: {e}", d.id);
            Errno::Inval
        })?;
        let old = d.vcpu_info(vcpu.0);
        for word in (0..VCPU_INFO_BYTES).step_by(8) {
            frame.u64(word).store(old.u64(word).load(SeqCst), SeqCst);
        }
        d.vcpus[vcpu.0].vcpu_info_frame = Some(frame);
        let new = d.vcpu_info(vcpu.0);
        new.u64(guest::PENDING_SEL).store(u64::MAX, SeqCst);
        new.u8(guest::UPCALL_PENDING).store(1, SeqCst);
        if vcpu.0 == me {
            // The exit path reads the upcall flags through this CPU's block.
            crate::arch::percpu::current().set_guest(
                d.vcpus[me].kernel_mode,
                new.maddr(),
                d.vcpus[me].callbacks.event,
            );
        }
        scheduler::notify(d, vcpu.0);
        Ok(0)
    })
}
