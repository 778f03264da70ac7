//! Hypercalls: one decoder per hypercall turns the guest's registers into a
//! typed request, and one handler acts on it.
//!
//! PV64 convention: number in RAX, arguments in RDI, RSI, RDX, R10, R8, R9,
//! result (or `-errno`) in RAX. Anything not listed in `decode` returns
//! `-ENOSYS`. Handlers reach guest memory only through `guest::read` and
//! `guest::write`; a bad pointer is `-EFAULT`.

mod console;
mod domctl;
mod events;
mod grant;
mod memory;
mod mm;
mod sched;
mod traps;
mod version;

use core::sync::atomic::Ordering::Relaxed;
use core::sync::atomic::{AtomicBool, AtomicU32};

use abi::{Errno, Hypercall};

use hv_core::frame_table::Budget;

use crate::arch::TrapFrame;
use crate::arch::sync::IrqMutex;
use crate::guest;

/// The six argument registers, in ABI order.
#[derive(Clone, Copy, Debug)]
pub struct Args(pub [u64; 6]);

/// A decoded hypercall.
#[derive(Clone, Copy, Debug)]
enum Request {
    SetTrapTable(traps::SetTrapTable),
    MmuUpdate(mm::Batch),
    StackSwitch(traps::StackSwitch),
    SetCallbacks(traps::SetCallbacks),
    MemoryOp(memory::MemoryOp),
    Multicall { entries: u64, count: u32 },
    UpdateVaMapping(mm::UpdateVaMapping),
    SetTimerOp { timeout: u64 },
    XenVersion(version::XenVersion),
    ConsoleIo(console::ConsoleIo),
    GrantTableOp { cmd: u32, uop: u64, count: u32 },
    VcpuOp(sched::VcpuOp),
    SetSegmentBase(traps::SetSegmentBase),
    MmuextOp(mm::Batch),
    SchedOp(sched::SchedOp),
    CallbackOp(traps::CallbackOp),
    EventChannelOp(events::EventChannelOp),
    Domctl { arg: u64 },
    Sysctl { arg: u64 },
}

fn decode(nr: u64, a: Args) -> Result<Request, Errno> {
    let [a1, a2, a3, a4, ..] = a.0;
    use Hypercall as H;
    let hypercall = Hypercall::from_number(nr).ok_or(Errno::NoSys)?;
    if hv_core::hypercalls::status(hypercall) != hv_core::hypercalls::Status::Implemented {
        return Err(Errno::NoSys);
    }
    Ok(match hypercall {
        H::SetTrapTable => Request::SetTrapTable(traps::SetTrapTable { table: a1 }),
        H::MmuUpdate => Request::MmuUpdate(mm::Batch::decode(a1, a2, a3, a4)),
        H::StackSwitch => Request::StackSwitch(traps::StackSwitch { _ss: a1, sp: a2 }),
        H::SetCallbacks => Request::SetCallbacks(traps::SetCallbacks {
            event: a1,
            failsafe: a2,
            syscall: a3,
        }),
        H::MemoryOp => Request::MemoryOp(memory::MemoryOp { cmd: a1, arg: a2 }),
        H::Multicall => Request::Multicall {
            entries: a1,
            count: a2 as u32,
        },
        H::UpdateVaMapping => Request::UpdateVaMapping(mm::UpdateVaMapping {
            va: a1,
            pte: a2,
            flags: a3,
        }),
        H::SetTimerOp => Request::SetTimerOp { timeout: a1 },
        H::XenVersion => Request::XenVersion(version::XenVersion {
            cmd: a1 as u32,
            arg: a2,
        }),
        H::ConsoleIo => Request::ConsoleIo(console::ConsoleIo {
            cmd: a1 as u32,
            count: a2 as u32,
            buffer: a3,
        }),
        H::GrantTableOp => Request::GrantTableOp {
            cmd: a1 as u32,
            uop: a2,
            count: a3 as u32,
        },
        H::VcpuOp => Request::VcpuOp(sched::VcpuOp {
            cmd: a1 as u32,
            vcpu: a2 as u32,
            arg: a3,
        }),
        H::SetSegmentBase => Request::SetSegmentBase(traps::SetSegmentBase {
            which: a1 as u32,
            base: a2,
        }),
        H::MmuextOp => Request::MmuextOp(mm::Batch::decode(a1, a2, a3, a4)),
        H::SchedOp => Request::SchedOp(sched::SchedOp {
            cmd: a1 as u32,
            arg: a2,
        }),
        H::CallbackOp => Request::CallbackOp(traps::CallbackOp {
            cmd: a1 as u32,
            arg: a2,
        }),
        H::EventChannelOp => Request::EventChannelOp(events::EventChannelOp {
            cmd: a1 as u32,
            arg: a2,
        }),
        H::Domctl => Request::Domctl { arg: a1 },
        H::Sysctl => Request::Sysctl { arg: a1 },
        _ => return Err(Errno::NoSys),
    })
}

fn handle(request: Request) -> Result<i64, Errno> {
    match request {
        Request::SetTrapTable(r) => r.handle(),
        Request::MmuUpdate(r) => r.mmu_update(),
        Request::StackSwitch(r) => r.handle(),
        Request::SetCallbacks(r) => r.handle(),
        Request::MemoryOp(r) => r.handle(),
        Request::Multicall { entries, count } => multicall(entries, count),
        Request::UpdateVaMapping(r) => r.handle(),
        Request::SetTimerOp { timeout } => sched::set_timer_op(timeout),
        Request::XenVersion(r) => r.handle(),
        Request::ConsoleIo(r) => r.handle(),
        Request::GrantTableOp { cmd, uop, count } => grant::grant_table_op(cmd, uop, count),
        Request::VcpuOp(r) => r.handle(),
        Request::SetSegmentBase(r) => r.handle(),
        Request::MmuextOp(r) => r.mmuext_op(),
        Request::SchedOp(r) => r.handle(),
        Request::CallbackOp(r) => r.handle(),
        Request::EventChannelOp(r) => r.handle(),
        Request::Domctl { arg } => domctl::domctl(arg),
        Request::Sysctl { arg } => domctl::sysctl(arg),
    }
}

/// One hypercall by number, as from registers or from a multicall entry.
pub fn call(nr: u64, args: Args) -> i64 {
    let result = match decode(nr, args).and_then(handle) {
        Ok(value) => value,
        Err(errno) => errno.to_ret(),
    };
    if RESTART.load(Relaxed) {
        RESTART.store(false, Relaxed);
        continue_with(args.0);
    }
    result
}

/// Ops (batch entries, copy chunks, page-table entries visited) one
/// hypercall may do before it lets the CPU go: interrupts are off in
/// hv-core, so unbounded work would stall every domain.
const BUDGET: u32 = 1024;

static WORK: AtomicU32 = AtomicU32::new(0);
/// Arguments to resume a preempted hypercall with; `PREEMPTED` says they
/// are set, so the common case reads one flag and takes no lock.
static CONTINUATION: IrqMutex<Option<[u64; 6]>> = IrqMutex::new(None);
static PREEMPTED: AtomicBool = AtomicBool::new(false);
/// Set by [`restart`]; turned into a continuation by [`call`].
static RESTART: AtomicBool = AtomicBool::new(false);

/// The continuation the last call asked for, if any.
fn take_continuation() -> Option<[u64; 6]> {
    if !PREEMPTED.load(Relaxed) {
        return None;
    }
    PREEMPTED.store(false, Relaxed);
    CONTINUATION.with(Option::take)
}

/// Counts one op of the running hypercall; false once its budget is
/// spent, when the handler must stop and [`continue_with`] the rest.
pub(super) fn spend() -> bool {
    // One CPU with interrupts off: a plain load and store (no locked
    // instruction on this hot path) cannot be torn.
    let spent = WORK.load(Relaxed);
    WORK.store(spent + 1, Relaxed);
    spent < BUDGET
}

/// Runs `f` with what is left of the running hypercall's budget, counted
/// in page-table entries, and charges what it used: a (de)validation
/// shares the budget with the batch it is part of.
pub(crate) fn with_budget<R>(f: impl FnOnce(&mut Budget) -> R) -> R {
    let spent = WORK.load(Relaxed);
    let mut budget = Budget::new(u64::from(BUDGET.saturating_sub(spent)));
    let before = budget.left();
    let result = f(&mut budget);
    let used = u32::try_from(before - budget.left()).unwrap_or(BUDGET);
    WORK.store(spent.saturating_add(used), Relaxed);
    result
}

/// Asks for the running hypercall to be issued again with the arguments
/// it came with, once the guest is back on the CPU: for a handler whose
/// work was cut short but whose request itself says where to go on (a
/// pin's partial validation is kept in the frame table, a teardown's in
/// the dying domain), as Xen's `-ERESTART`.
pub(crate) fn restart() {
    RESTART.store(true, Relaxed);
}

/// Ends the running hypercall early: the guest re-issues it (same number)
/// with `args` as soon as it is back on the CPU, as Xen's
/// `hypercall_create_continuation` does.
pub(super) fn continue_with(args: [u64; 6]) {
    CONTINUATION.with(|c| *c = Some(args));
    PREEMPTED.store(true, Relaxed);
}

/// A hypercall from guest kernel mode.
pub fn dispatch(frame: &mut TrapFrame) {
    if frame.rax == Hypercall::Iret as u64 {
        guest::iret(frame);
        return;
    }
    let nr = frame.rax;
    let args = Args([
        frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
    ]);
    WORK.store(0, Relaxed);
    let result = call(nr, args);
    match take_continuation() {
        Some(a) => {
            // Back to the `syscall` instruction (2 bytes), to run again.
            [
                frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
            ] = a;
            frame.rax = nr;
            frame.rip -= 2;
        }
        None => frame.rax = result as u64,
    }
}

/// `multicall(entries, count)`: each entry's result is written back into
/// it; the call itself succeeds unless an entry cannot be read or written.
fn multicall(entries: u64, count: u32) -> Result<i64, Errno> {
    let size = core::mem::size_of::<abi::xen::MulticallEntry>() as u64;
    for i in 0..count as u64 {
        let at = entries.checked_add(i * size).ok_or(Errno::Fault)?;
        if !spend() {
            continue_with([at, count as u64 - i, 0, 0, 0, 0]);
            return Ok(0);
        }
        let mut entry: abi::xen::MulticallEntry = guest::read(at)?;
        if entry.op == Hypercall::Iret as u64 || entry.op == Hypercall::Multicall as u64 {
            // Neither can be batched: iret replaces the caller's frame and
            // multicalls do not nest.
            entry.result = Errno::Inval.to_ret();
        } else {
            let result = call(entry.op, Args(entry.args));
            if let Some(rest) = take_continuation() {
                // The entry ran out of budget: it resumes with what is
                // left, and so does the multicall, from this entry.
                entry.args = rest;
                guest::write(at, &entry)?;
                continue_with([at, count as u64 - i, 0, 0, 0, 0]);
                return Ok(0);
            }
            entry.result = result;
        }
        guest::write(at, &entry)?;
    }
    Ok(0)
}
