//! Hypercalls: the dispatcher generated from the hypercall table
//! (`hv_core::hypercall_table!`) turns the guest's registers into a typed
//! request, and one handler acts on it.
//!
//! PV64 convention: the number and six arguments in registers, the result
//! (or `-errno`) back in one (`TrapFrame::hypercall_args` and its siblings
//! in `arch`, the only code that names them). A number without a row in
//! the table returns `-ENOSYS`. Handlers reach guest memory only through
//! `guest::read`/`write` and `GuestPtr`/`GuestArray`; a bad pointer is
//! `-EFAULT`.

mod console;
mod domctl;
mod event_channel_op;
mod grant;
mod memory;
mod mm;
mod sched;
mod traps;
mod version;

use core::sync::atomic::Ordering::Relaxed;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};

use abi::{Errno, Hypercall};

use hv_core::frame_table::Budget;

use crate::arch::TrapFrame;
use crate::{domain, guest};

/// The six argument registers, in ABI order.
#[derive(Clone, Copy, Debug)]
pub struct Args(pub [u64; 6]);

/// A register argument as the type a hypercall's row gives it (Xen's
/// handlers take `unsigned int` and `domid_t` arguments truncated so).
trait FromReg {
    fn from_reg(reg: u64) -> Self;
}

impl FromReg for u64 {
    fn from_reg(reg: u64) -> Self {
        reg
    }
}

impl FromReg for u32 {
    fn from_reg(reg: u64) -> Self {
        reg as u32
    }
}

impl FromReg for u16 {
    fn from_reg(reg: u64) -> Self {
        reg as u16
    }
}

/// Generates [`decode_and_handle`] from the hypercall table
/// (`hv_core::hypercall_table!`): each row's arguments are taken from the
/// registers in order and its handler expression is evaluated with them.
macro_rules! dispatcher {
    ($(
        $variant:ident($($arg:ident: $ty:ty),*) => $handler:expr
        $(, ops [$($op:literal: $status:ident),* $(,)?])?;
    )*) => {
        /// Decodes and runs hypercall `nr`; a number the table does not
        /// list is `-ENOSYS`.
        fn decode_and_handle(nr: u64, args: Args) -> Result<i64, Errno> {
            match Hypercall::from_number(nr) {
                $(Some(Hypercall::$variant) => {
                    #[allow(unused_mut, unused_variables)]
                    let mut regs = args.0.into_iter();
                    $(let $arg = <$ty as FromReg>::from_reg(regs.next().unwrap_or(0));)*
                    $handler
                })*
                _ => Err(Errno::NoSys),
            }
        }
    };
}

hv_core::hypercall_table!(dispatcher);

/// Defines an op family (`event_channel_op`, `sched_op`, `vcpu_op`, ...):
/// an enum with one typed request per op, copied in from the guest once
/// ([`guest::read`] of the op's struct), handed to its handler
/// `fn(&mut Request, caller: Caller) -> Result<i64, Errno>`, and written
/// back once after the handler succeeded (as Xen copies back only on
/// success). `Caller` is the family's own: the calling domain for most,
/// the checked target vCPU for `vcpu_op`, the raw registers a
/// continuation re-issues for `memory_op`.
///
/// Each op names its direction: `inout` (read, handled, written back),
/// `in` (read only), `out` (the handler fills a zeroed request, which is
/// written back: nothing of hv-core's stack reaches the guest beyond the
/// fields), `none` (no argument struct; the request is `()`). An op the
/// family does not list is `-ENOSYS`. Handlers never touch guest memory
/// for the request itself.
macro_rules! op_family {
    (
        $(#[$doc:meta])*
        $family:ident($caller:ty) {
            $($cmd:path => $variant:ident($request:ty), $dir:ident => $handler:path;)*
        }
    ) => {
        $(#[$doc])*
        // A request lives on the stack for one call; boxing the large
        // ones (`xen_version`'s build strings) would only add an
        // allocation.
        #[allow(clippy::large_enum_variant)]
        #[derive(Clone, Copy)]
        pub enum $family {
            $($variant($request),)*
        }

        impl $family {
            /// Copies op `cmd`'s request in from `arg`.
            pub fn read(cmd: u32, arg: u64) -> Result<Self, Errno> {
                Ok(match cmd {
                    $($cmd => Self::$variant($crate::hypercall::op_family!(@in $dir, arg, $request)),)*
                    _ => return Err(Errno::NoSys),
                })
            }

            /// Runs the request for `caller`; an op's OUT fields go back
            /// to `arg`.
            pub fn run(self, arg: u64, caller: $caller) -> Result<i64, Errno> {
                match self {
                    $(Self::$variant(mut request) => {
                        let result = $handler(&mut request, caller)?;
                        $crate::hypercall::op_family!(@out $dir, arg, request);
                        Ok(result)
                    })*
                }
            }

            /// Reads, runs and writes back op `cmd` in one step.
            pub fn handle(cmd: u32, arg: u64, caller: $caller) -> Result<i64, Errno> {
                Self::read(cmd, arg)?.run(arg, caller)
            }
        }
    };
    (@in none, $arg:ident, $request:ty) => {
        ()
    };
    (@in out, $arg:ident, $request:ty) => {
        <$request as zerocopy::FromZeros>::new_zeroed()
    };
    (@in $dir:ident, $arg:ident, $request:ty) => {
        $crate::guest::read($arg)?
    };
    (@out inout, $arg:ident, $request:ident) => {
        $crate::guest::write($arg, &$request)?;
    };
    (@out out, $arg:ident, $request:ident) => {
        $crate::guest::write($arg, &$request)?;
    };
    (@out $dir:ident, $arg:ident, $request:ident) => {
        let _ = (&$request, $arg);
    };
}
pub(crate) use op_family;

/// `iret` is taken before the table (it replaces the caller's frame), so
/// its row is reached only from a batch, which may not hold it.
fn iret_in_batch() -> Result<i64, Errno> {
    Err(Errno::Inval)
}

/// One hypercall by number, as from registers or from a multicall entry.
pub fn call(nr: u64, args: Args) -> i64 {
    let result = match decode_and_handle(nr, args) {
        Ok(value) => value,
        Err(errno) => errno.to_ret(),
    };
    let restart = &this_call().restart;
    if restart.load(Relaxed) {
        restart.store(false, Relaxed);
        continue_with(args.0);
    }
    result
}

/// Ops (batch entries, copy chunks, page-table entries visited) one
/// hypercall may do before it lets the CPU go: interrupts are off in
/// hv-core, so unbounded work would stall every domain.
const BUDGET: u32 = 1024;

/// The running hypercall's state, in the CPU's block: a hypercall runs to
/// its end on the CPU it entered on (interrupts are off in hv-core), and
/// two CPUs run two hypercalls at once, so none of this may be shared
/// (security finding 12: one machine-wide continuation let one vCPU's
/// preempted call be resumed by another vCPU, of any domain, with the
/// first one's arguments).
pub struct CallState {
    /// Ops done by the running hypercall (its budget is [`BUDGET`]).
    work: AtomicU32,
    /// [`continue_with`] was called: `continuation` holds the arguments to
    /// resume with, so the common case reads one flag.
    preempted: AtomicBool,
    continuation: [AtomicU64; 6],
    /// Set by [`restart`]; turned into a continuation by [`call`].
    restart: AtomicBool,
}

impl CallState {
    pub const fn new() -> Self {
        Self {
            work: AtomicU32::new(0),
            preempted: AtomicBool::new(false),
            continuation: [const { AtomicU64::new(0) }; 6],
            restart: AtomicBool::new(false),
        }
    }
}

/// This CPU's hypercall state. Only this CPU touches it, with interrupts
/// off: plain loads and stores (relaxed atomics) suffice.
#[inline(always)]
fn this_call() -> &'static CallState {
    &crate::arch::percpu::current().call
}

/// The continuation the last call asked for, if any.
#[inline(always)]
fn take_continuation() -> Option<[u64; 6]> {
    let state = this_call();
    if !state.preempted.load(Relaxed) {
        return None;
    }
    state.preempted.store(false, Relaxed);
    Some(state.continuation.each_ref().map(|a| a.load(Relaxed)))
}

/// Counts one op of the running hypercall; false once its budget is
/// spent, when the handler must stop and [`continue_with`] the rest.
pub(super) fn spend() -> bool {
    // This CPU's own count, interrupts off: a plain load and store (no
    // locked instruction on this hot path) cannot be torn.
    let work = &this_call().work;
    let spent = work.load(Relaxed);
    work.store(spent + 1, Relaxed);
    spent < BUDGET
}

/// Runs `f` with what is left of the running hypercall's budget, counted
/// in page-table entries, and charges what it used: a (de)validation
/// shares the budget with the batch it is part of.
pub(crate) fn with_budget<R>(f: impl FnOnce(&mut Budget) -> R) -> R {
    let work = &this_call().work;
    let spent = work.load(Relaxed);
    let mut budget = Budget::new(u64::from(BUDGET.saturating_sub(spent)));
    let before = budget.left();
    let result = f(&mut budget);
    let used = u32::try_from(before - budget.left()).unwrap_or(BUDGET);
    work.store(spent.saturating_add(used), Relaxed);
    result
}

pub(super) use hv_core::batch::{Ended, Step};

/// The one batch loop (`hv_core::batch::run`, host-tested) over a guest
/// array: `each` gets element `i`'s guest pointer, one op of the
/// hypercall's budget each; when the batch is preempted at element `i`,
/// the hypercall continues with `resume(i, element i)` as its arguments.
pub(super) fn batch<T>(
    array: guest::GuestArray<T>,
    start: u64,
    mut each: impl FnMut(u64, guest::GuestPtr<T>) -> Result<Step, Errno>,
    resume: impl FnOnce(u64, guest::GuestPtr<T>) -> [u64; 6],
) -> Result<Ended, Errno> {
    steps(
        array.len(),
        start,
        |i| each(i, array.at(i)?),
        |at| Ok(resume(at, array.at(at)?)),
    )
}

/// The same loop over steps `start..len` that are not elements of one
/// guest array (`console_io`'s chunks of a byte buffer): preempted at
/// step `i`, the hypercall continues with `resume(i)`.
pub(super) fn steps(
    len: u64,
    start: u64,
    each: impl FnMut(u64) -> Result<Step, Errno>,
    resume: impl FnOnce(u64) -> Result<[u64; 6], Errno>,
) -> Result<Ended, Errno> {
    let ended = hv_core::batch::run(start, len, spend, each)?;
    if let Ended::Preempted { at } = ended {
        continue_with(resume(at)?);
    }
    Ok(ended)
}

/// Asks for the running hypercall to be issued again with the arguments
/// it came with, once the guest is back on the CPU: for a handler whose
/// work was cut short but whose request itself says where to go on (a
/// pin's partial validation is kept in the frame table, a teardown's in
/// the dying domain), as Xen's `-ERESTART`.
pub(crate) fn restart() {
    this_call().restart.store(true, Relaxed);
}

/// Ends the running hypercall early: the guest re-issues it (same number)
/// with `args` as soon as it is back on the CPU, as Xen's
/// `hypercall_create_continuation` does.
pub(super) fn continue_with(args: [u64; 6]) {
    let state = this_call();
    for (slot, arg) in state.continuation.iter().zip(args) {
        slot.store(arg, Relaxed);
    }
    state.preempted.store(true, Relaxed);
}

/// A hypercall from guest kernel mode (inlined into the syscall entry).
#[inline(always)]
pub fn dispatch(frame: &mut TrapFrame) {
    let nr = frame.hypercall_number();
    if nr == Hypercall::Iret as u64 {
        guest::iret(frame);
        return;
    }
    let args = Args(frame.hypercall_args());
    this_call().work.store(0, Relaxed);
    let result = call(nr, args);
    match take_continuation() {
        Some(rest) => frame.reissue_hypercall(nr, rest),
        None => frame.set_hypercall_result(result as u64),
    }
}

/// `multicall(entries, count)`: each entry's result is written back into
/// it; the call itself succeeds unless an entry cannot be read or written.
fn multicall(entries: u64, count: u32) -> Result<i64, Errno> {
    let list = guest::GuestArray::<abi::xen::MulticallEntry>::new(entries, count.into());
    let each = |_, at: guest::GuestPtr<abi::xen::MulticallEntry>| {
        let mut entry = at.read()?;
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
                at.write(&entry)?;
                return Err(Errno::Restart);
            }
            entry.result = result;
        }
        at.write(&entry)?;
        Ok(Step::Next)
    };
    let resume = |i, at: guest::GuestPtr<_>| [at.va(), u64::from(count) - i, 0, 0, 0, 0];
    batch(list, 0, each, resume)?;
    Ok(0)
}
