//! Typed hypercalls: one function per operation the SDK uses, taking Rust
//! values and returning [`Result`] with the hypervisor's error by name.
//!
//! Operations that can break memory safety (changing page tables, trap
//! entry points, the kernel stack) are `unsafe fn` with their contract in a
//! `# Safety` section; the SDK's safe layers (`mm`, `traps`, `events`,
//! `user`) are the intended callers. Everything else is safe: the pointers
//! passed are to Rust references that outlive the call.

use abi::Hypercall;
use abi::event_channel::{
    self as evtchn, AllocUnbound, BindInterdomain, BindVirq, Port, PortOp, Status,
};
use abi::grant_table::{
    self as gnttab, Copy as GntCopy, MapGrantRef, QuerySize, SetupTable, UnmapGrantRef,
};
use abi::ops::{
    self, CALLBACKOP_REGISTER, CallbackRegister, FeatureInfo, SCHEDOP_BLOCK, SCHEDOP_SHUTDOWN,
    SCHEDOP_YIELD, SchedShutdown, VcpuSetSingleshotTimer,
};
use abi::xen::{CONSOLEIO_READ, CONSOLEIO_WRITE, DomId, MmuUpdate, MmuextOp, TrapInfo};

use crate::arch::hypercall::hypercall5;
pub use crate::error::{Error, Result};

fn call(nr: Hypercall, args: [u64; 5]) -> i64 {
    // SAFETY: only reached from the safe wrappers below, each of which
    // passes arguments valid for its operation (pointers to live Rust
    // references, plain numbers otherwise) and none of which changes
    // memory that Rust code relies on.
    unsafe { hypercall5(nr as u32, args[0], args[1], args[2], args[3], args[4]) }
}

/// # Safety
/// As [`hypercall5`]: the arguments must suit the operation.
unsafe fn call_unchecked(nr: Hypercall, args: [u64; 5]) -> i64 {
    // SAFETY: forwarded from the caller's contract.
    unsafe { hypercall5(nr as u32, args[0], args[1], args[2], args[3], args[4]) }
}

/// Issues hypercall `nr` (any number, known to `abi` or not) with five
/// arguments through the hypercall page and returns RAX as it came back.
/// The one raw hypercall for code outside the SDK: dom0's `privcmd` and the
/// test guests call this rather than carrying their own `asm!`.
///
/// Panics if the page has no stub slot for `nr` (128 and above).
///
/// # Safety
/// The arguments must be what hypercall `nr` expects: pointers must point
/// to memory valid for the access the hypercall makes, and the call must
/// not change mappings or state that Rust code relies on (unmapping live
/// memory, replacing the running page tables, ...).
pub unsafe fn raw(nr: u32, args: [u64; 5]) -> i64 {
    assert!(
        (nr as usize + 1) * abi::hypercall::STUB_SIZE <= 4096,
        "no stub for hypercall {nr}"
    );
    // SAFETY: `nr` has a stub slot in the page (checked above); the caller
    // vouches for the arguments.
    unsafe { hypercall5(nr, args[0], args[1], args[2], args[3], args[4]) }
}

fn ptr<T>(value: &T) -> u64 {
    value as *const T as u64
}

fn ptr_mut<T>(value: &mut T) -> u64 {
    value as *mut T as u64
}

// --- console -------------------------------------------------------------

/// Writes bytes to the hypervisor's console (`CONSOLEIO_write`). Xen accepts
/// this from the initial domain (and from others only in debug builds).
pub fn console_write(bytes: &[u8]) -> Result<()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let ret = call(
            Hypercall::ConsoleIo,
            [
                CONSOLEIO_WRITE as u64,
                rest.len() as u64,
                rest.as_ptr() as u64,
                0,
                0,
            ],
        );
        // Xen returns 0 once everything is written; treat a positive count
        // as partial progress in case an implementation reports one.
        let written = Error::check(ret)? as usize;
        if written == 0 || written >= rest.len() {
            break;
        }
        rest = &rest[written..];
    }
    Ok(())
}

/// Reads pending console input (`CONSOLEIO_read`) into `buf`; returns the
/// number of bytes read, 0 when there is none. Input arrival is signalled
/// by `VIRQ_CONSOLE`.
pub fn console_read(buf: &mut [u8]) -> Result<usize> {
    let ret = call(
        Hypercall::ConsoleIo,
        [
            CONSOLEIO_READ as u64,
            buf.len() as u64,
            buf.as_mut_ptr() as u64,
            0,
            0,
        ],
    );
    Error::check(ret).map(|n| n as usize)
}

// --- scheduling ----------------------------------------------------------

/// Gives up the CPU; the vCPU stays runnable.
pub fn sched_yield() -> Result<()> {
    Error::check(call(Hypercall::SchedOp, [SCHEDOP_YIELD as u64, 0, 0, 0, 0])).map(drop)
}

/// Blocks the vCPU until an event is pending. The hypervisor clears the
/// vCPU's upcall mask as part of blocking (so pending upcalls are delivered
/// when the call returns): use [`crate::events::wait_until`] rather than this.
pub fn sched_block() -> Result<()> {
    Error::check(call(Hypercall::SchedOp, [SCHEDOP_BLOCK as u64, 0, 0, 0, 0])).map(drop)
}

/// Asks for the domain to be shut down with `reason` (`SHUTDOWN_*`). Returns
/// only if the hypervisor refuses.
pub fn sched_shutdown(reason: u32) -> Result<()> {
    let arg = SchedShutdown { reason };
    Error::check(call(
        Hypercall::SchedOp,
        [SCHEDOP_SHUTDOWN as u64, ptr(&arg), 0, 0, 0],
    ))
    .map(drop)
}

/// Arms the vCPU's one-shot timer for absolute system time `deadline_ns`
/// (0 cancels it); expiry raises `VIRQ_TIMER`.
pub fn set_timer_op(deadline_ns: u64) -> Result<()> {
    Error::check(call(Hypercall::SetTimerOp, [deadline_ns, 0, 0, 0, 0])).map(drop)
}

/// `VCPUOP_set_singleshot_timer` for `vcpu`: like [`set_timer_op`], but with
/// `VCPU_SSHOTTMR_future` the call fails with `ETIME` for a past deadline.
pub fn vcpu_set_singleshot_timer(vcpu: u32, deadline_ns: u64, flags: u32) -> Result<()> {
    let arg = VcpuSetSingleshotTimer {
        timeout_abs_ns: deadline_ns,
        flags,
        _pad: 0,
    };
    let ret = call(
        Hypercall::VcpuOp,
        [
            ops::VCPUOP_SET_SINGLESHOT_TIMER as u64,
            vcpu as u64,
            ptr(&arg),
            0,
            0,
        ],
    );
    Error::check(ret).map(drop)
}

/// `VCPUOP_stop_periodic_timer` for `vcpu`: no more VIRQ_TIMER ticks
/// every 10 ms (each PV vCPU starts with them, as on Xen); the one-shot
/// timer stays.
pub fn vcpu_stop_periodic_timer(vcpu: u32) -> Result<()> {
    let ret = call(
        Hypercall::VcpuOp,
        [ops::VCPUOP_STOP_PERIODIC_TIMER as u64, vcpu as u64, 0, 0, 0],
    );
    Error::check(ret).map(drop)
}

/// `VCPUOP_initialise`: vCPU `vcpu` (down, never initialised) gets
/// `context` (`Err(Exist)` if it has one, `Err(NoEnt)` if the domain has
/// no such vCPU).
pub fn vcpu_initialise(vcpu: u32, context: &abi::domctl::VcpuGuestContext) -> Result<()> {
    let ret = call(
        Hypercall::VcpuOp,
        [
            ops::VCPUOP_INITIALISE as u64,
            vcpu as u64,
            ptr(context),
            0,
            0,
        ],
    );
    Error::check(ret).map(drop)
}

/// `VCPUOP_up`: starts vCPU `vcpu`, which must have a context.
pub fn vcpu_up(vcpu: u32) -> Result<()> {
    let ret = call(
        Hypercall::VcpuOp,
        [ops::VCPUOP_UP as u64, vcpu as u64, 0, 0, 0],
    );
    Error::check(ret).map(drop)
}

/// `VCPUOP_is_up`: whether vCPU `vcpu` exists and is up (`Err(NoEnt)`
/// when the domain has no such vCPU).
pub fn vcpu_is_up(vcpu: u32) -> Result<bool> {
    let ret = call(
        Hypercall::VcpuOp,
        [ops::VCPUOP_IS_UP as u64, vcpu as u64, 0, 0, 0],
    );
    Error::check(ret).map(|up| up != 0)
}

/// `VCPUOP_get_runstate_info`: the time vCPU `vcpu` has spent running,
/// runnable, blocked and offline (`time[abi::ops::RUNSTATE_*]`, ns).
pub fn vcpu_runstate_info(vcpu: u32) -> Result<abi::ops::VcpuRunstateInfo> {
    let mut info = abi::ops::VcpuRunstateInfo::default();
    let ret = call(
        Hypercall::VcpuOp,
        [
            ops::VCPUOP_GET_RUNSTATE_INFO as u64,
            vcpu as u64,
            ptr_mut(&mut info),
            0,
            0,
        ],
    );
    Error::check(ret).map(|_| info)
}

// --- version -------------------------------------------------------------

/// `XENVER_version`: the hypervisor's interface version, `major << 16 | minor`.
pub fn xen_version() -> u32 {
    call(
        Hypercall::XenVersion,
        [ops::XENVER_VERSION as u64, 0, 0, 0, 0],
    ) as u32
}

/// `XENVER_extraversion`: the release suffix (".7-pre", ...), NUL padded.
pub fn xen_extraversion() -> Result<[u8; ops::XEN_EXTRAVERSION_LEN]> {
    let mut buf = [0u8; ops::XEN_EXTRAVERSION_LEN];
    let ret = call(
        Hypercall::XenVersion,
        [ops::XENVER_EXTRAVERSION as u64, ptr_mut(&mut buf), 0, 0, 0],
    );
    Error::check(ret).map(|_| buf)
}

/// `XENVER_get_features` submap `index` (32 `XENFEAT_*` bits).
pub fn xen_features(index: u32) -> Result<u32> {
    let mut info = FeatureInfo {
        submap_idx: index,
        submap: 0,
    };
    let ret = call(
        Hypercall::XenVersion,
        [ops::XENVER_GET_FEATURES as u64, ptr_mut(&mut info), 0, 0, 0],
    );
    Error::check(ret).map(|_| info.submap)
}

// --- event channels ------------------------------------------------------

fn evtchn_op<T>(cmd: u32, arg: &mut T) -> Result<()> {
    Error::check(call(
        Hypercall::EventChannelOp,
        [cmd as u64, ptr_mut(arg), 0, 0, 0],
    ))
    .map(drop)
}

/// Binds virtual IRQ `virq` (`VIRQ_*`) on `vcpu` to a new port.
pub fn evtchn_bind_virq(virq: u32, vcpu: u32) -> Result<Port> {
    let mut arg = BindVirq {
        virq,
        vcpu,
        port: 0,
    };
    evtchn_op(evtchn::EVTCHNOP_BIND_VIRQ, &mut arg)?;
    Ok(arg.port)
}

/// Allocates a port that `remote` may bind to.
pub fn evtchn_alloc_unbound(remote: DomId) -> Result<Port> {
    let mut arg = AllocUnbound {
        dom: abi::xen::DOMID_SELF,
        remote_dom: remote,
        port: 0,
    };
    evtchn_op(evtchn::EVTCHNOP_ALLOC_UNBOUND, &mut arg)?;
    Ok(arg.port)
}

/// Connects a new local port to `remote_port` of domain `remote`.
pub fn evtchn_bind_interdomain(remote: DomId, remote_port: Port) -> Result<Port> {
    let mut arg = BindInterdomain {
        remote_dom: remote,
        _pad: 0,
        remote_port,
        local_port: 0,
    };
    evtchn_op(evtchn::EVTCHNOP_BIND_INTERDOMAIN, &mut arg)?;
    Ok(arg.local_port)
}

/// Signals the other end of `port`.
pub fn evtchn_send(port: Port) -> Result<()> {
    evtchn_op(evtchn::EVTCHNOP_SEND, &mut PortOp { port })
}

/// Clears `port`'s mask bit and re-raises the upcall if it is pending.
pub fn evtchn_unmask(port: Port) -> Result<()> {
    evtchn_op(evtchn::EVTCHNOP_UNMASK, &mut PortOp { port })
}

/// `EVTCHNOP_close`: closes `port` (and unbinds a VIRQ or IPI on it; an
/// interdomain peer's end becomes unbound).
pub fn evtchn_close(port: Port) -> Result<()> {
    evtchn_op(evtchn::EVTCHNOP_CLOSE, &mut PortOp { port })
}

/// What port `port` of domain `dom` (`DOMID_SELF` for this one) is bound to.
pub fn evtchn_status(dom: DomId, port: Port) -> Result<Status> {
    let mut arg = Status {
        dom,
        port,
        ..Default::default()
    };
    evtchn_op(evtchn::EVTCHNOP_STATUS, &mut arg)?;
    Ok(arg)
}

// --- grant tables --------------------------------------------------------
//
// `grant_table_op(cmd, ops, count)` returns an error only when the call as
// a whole fails (a bad pointer or command); each op's own result is in its
// `status` field (`GNTST_*`), which the `grant` module names.

/// # Safety
/// `ops` must hold `count` operations of the kind `cmd` expects, and the
/// operations must not change memory Rust code relies on.
unsafe fn grant_table_op<T>(cmd: u32, ops: *mut T, count: usize) -> Result<()> {
    // SAFETY: forwarded from the caller.
    let ret = unsafe {
        call_unchecked(
            Hypercall::GrantTableOp,
            [cmd as u64, ops as u64, count as u64, 0, 0],
        )
    };
    Error::check(ret).map(drop)
}

/// `GNTTABOP_query_size` for this domain: frames in use and the most it
/// may have.
pub fn gnttab_query_size() -> Result<QuerySize> {
    let mut op = QuerySize {
        dom: abi::xen::DOMID_SELF,
        ..Default::default()
    };
    // SAFETY: one live `QuerySize`; the op only writes it.
    unsafe { grant_table_op(gnttab::GNTTABOP_QUERY_SIZE, &mut op, 1)? };
    Ok(op)
}

/// `GNTTABOP_setup_table` for this domain: grows the table to
/// `frames.len()` frames and writes their machine frame numbers there.
pub fn gnttab_setup_table(frames: &mut [u64]) -> Result<SetupTable> {
    let mut op = SetupTable {
        dom: abi::xen::DOMID_SELF,
        nr_frames: frames.len() as u32,
        frame_list: frames.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: `op` and the `frames` buffer it names are live and large
    // enough for `nr_frames` entries; the op writes only those.
    unsafe { grant_table_op(gnttab::GNTTABOP_SETUP_TABLE, &mut op, 1)? };
    Ok(op)
}

/// `GNTTABOP_map_grant_ref`: maps each op's grant at its `host_addr`.
///
/// # Safety
/// Each `host_addr` must be an unused page whose L1 table exists, holding
/// no Rust object.
pub unsafe fn gnttab_map(ops: &mut [MapGrantRef]) -> Result<()> {
    // SAFETY: the slice is live; the caller vouches for the addresses.
    unsafe { grant_table_op(gnttab::GNTTABOP_MAP_GRANT_REF, ops.as_mut_ptr(), ops.len()) }
}

/// `GNTTABOP_unmap_grant_ref`: removes grant mappings.
///
/// # Safety
/// Nothing may still use the pages at the ops' `host_addr`s.
pub unsafe fn gnttab_unmap(ops: &mut [UnmapGrantRef]) -> Result<()> {
    // SAFETY: the slice is live; the caller vouches for the addresses.
    unsafe {
        grant_table_op(
            gnttab::GNTTABOP_UNMAP_GRANT_REF,
            ops.as_mut_ptr(),
            ops.len(),
        )
    }
}

/// `GNTTABOP_copy`: the hypervisor copies between granted pages and this
/// domain's own frames.
///
/// # Safety
/// Every destination that is a frame of this domain must hold no Rust
/// object (only memory reached through `shmem::SharedPage`).
pub unsafe fn gnttab_copy(ops: &mut [GntCopy]) -> Result<()> {
    // SAFETY: the slice is live; the caller vouches for the destinations.
    unsafe { grant_table_op(gnttab::GNTTABOP_COPY, ops.as_mut_ptr(), ops.len()) }
}

// --- memory --------------------------------------------------------------

/// `XENMEM_current_reservation` for `domid`: pages the domain holds.
pub fn memory_current_reservation(domid: DomId) -> Result<u64> {
    let ret = call(
        Hypercall::MemoryOp,
        [ops::XENMEM_CURRENT_RESERVATION as u64, ptr(&domid), 0, 0, 0],
    );
    Error::check(ret)
}

/// `XENMEM_maximum_reservation` for `domid`: the most pages it may hold.
pub fn memory_maximum_reservation(domid: DomId) -> Result<u64> {
    let ret = call(
        Hypercall::MemoryOp,
        [ops::XENMEM_MAXIMUM_RESERVATION as u64, ptr(&domid), 0, 0, 0],
    );
    Error::check(ret)
}

/// Replaces the L1 entry that maps `va` in the current page tables with
/// `pte` (a machine frame and flags), then flushes as `flags` (`UVMF_*`) say.
///
/// # Safety
/// Nothing Rust still uses may be unmapped or changed behind its back:
/// `va` must not hold live Rust objects other than those the caller
/// manages through this mapping.
pub unsafe fn update_va_mapping(va: u64, pte: u64, flags: u64) -> Result<()> {
    // SAFETY: the caller vouches for the mapping change.
    let ret = unsafe { call_unchecked(Hypercall::UpdateVaMapping, [va, pte, flags, 0, 0]) };
    Error::check(ret).map(drop)
}

/// Applies page-table writes (`ptr` = machine address of the entry | MMU_*
/// command). Returns how many were done; on error, the ones before the
/// failing request have been applied.
///
/// # Safety
/// As for [`update_va_mapping`], for every entry written.
pub unsafe fn mmu_update(requests: &[MmuUpdate], foreign: DomId) -> Result<usize> {
    let mut done: u32 = 0;
    // SAFETY: `requests` and `done` are live for the call; the caller
    // vouches for the mapping changes.
    let ret = unsafe {
        call_unchecked(
            Hypercall::MmuUpdate,
            [
                requests.as_ptr() as u64,
                requests.len() as u64,
                ptr_mut(&mut done),
                foreign as u64,
                0,
            ],
        )
    };
    Error::check(ret).map(|_| done as usize)
}

/// Extended MMU operations (pin/unpin, new base pointers, flushes).
///
/// # Safety
/// Each operation must leave every mapping Rust code relies on in place
/// (for example a new base pointer must map the running kernel).
pub unsafe fn mmuext_op(ops: &[MmuextOp], foreign: DomId) -> Result<usize> {
    let mut done: u32 = 0;
    // SAFETY: `ops` and `done` are live for the call; the caller vouches
    // for the operations.
    let ret = unsafe {
        call_unchecked(
            Hypercall::MmuextOp,
            [
                ops.as_ptr() as u64,
                ops.len() as u64,
                ptr_mut(&mut done),
                foreign as u64,
                0,
            ],
        )
    };
    Error::check(ret).map(|_| done as usize)
}

// --- traps, callbacks, stacks --------------------------------------------

/// Installs trap handlers. `table` must end with an entry whose `address`
/// is 0.
///
/// # Safety
/// Every address must be an entry stub that handles Xen's bounce frame for
/// its vector.
pub unsafe fn set_trap_table(table: &[TrapInfo]) -> Result<()> {
    assert!(
        table.last().is_some_and(|t| t.address == 0),
        "trap table must end with a zero entry"
    );
    // SAFETY: the table is live for the call; the caller vouches for the
    // handler addresses.
    let ret =
        unsafe { call_unchecked(Hypercall::SetTrapTable, [table.as_ptr() as u64, 0, 0, 0, 0]) };
    Error::check(ret).map(drop)
}

/// Registers a callback (`CALLBACKTYPE_*`) at `address`; `mask_events`
/// makes the hypervisor mask event upcalls when it enters the callback.
///
/// # Safety
/// `address` must be an entry stub that handles the callback's frame.
pub unsafe fn callback_register(kind: u16, address: u64, mask_events: bool) -> Result<()> {
    let arg = CallbackRegister {
        type_: kind,
        flags: if mask_events {
            ops::CALLBACKF_MASK_EVENTS
        } else {
            0
        },
        _pad: 0,
        address,
    };
    // SAFETY: `arg` is live for the call; the caller vouches for `address`.
    let ret = unsafe {
        call_unchecked(
            Hypercall::CallbackOp,
            [CALLBACKOP_REGISTER as u64, ptr(&arg), 0, 0, 0],
        )
    };
    Error::check(ret).map(drop)
}

/// Sets the stack the hypervisor switches to when it bounces an exception,
/// event or system call from guest user mode into the guest kernel (the PV
/// counterpart of the TSS's RSP0).
///
/// # Safety
/// `rsp` must be the top of a stack reserved for that purpose.
pub unsafe fn stack_switch(ss: u16, rsp: u64) -> Result<()> {
    // SAFETY: the caller vouches for the stack.
    let ret = unsafe { call_unchecked(Hypercall::StackSwitch, [ss as u64, rsp, 0, 0, 0]) };
    Error::check(ret).map(drop)
}

/// Sets the FS base, or the user or kernel GS base (`SEGBASE_*`).
pub fn set_segment_base(which: u32, base: u64) -> Result<()> {
    Error::check(call(
        Hypercall::SetSegmentBase,
        [which as u64, base, 0, 0, 0],
    ))
    .map(drop)
}
