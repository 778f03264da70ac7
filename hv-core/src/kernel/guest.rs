//! Running a PV guest: what happens on every entry from ring 3 and on the
//! way back out.
//!
//! Entries: a `syscall` from guest kernel mode is a hypercall; from guest
//! user mode it is bounced to the guest kernel's syscall callback. An
//! exception is bounced to the guest's trap table (with Xen's frame layout
//! and CR2 in vcpu_info for #PF), except the forced-emulation CPUID prefix,
//! which is emulated. On the way out, a pending event upcall is bounced to
//! the event callback when the upcall mask allows.
//!
//! A guest that cannot be bounced to (no handler, a bad stack, a bad return
//! frame) is killed alone with a report naming domain, vCPU, RIP and why.

use core::mem::offset_of;

use abi::xen::{
    FLAT_KERNEL_CS64, FLAT_KERNEL_SS64, FLAT_RING3_CS32, FLAT_RING3_CS64, FLAT_RING3_SS64,
    TI_DPL_MASK, TI_MASK_EVENTS,
};
use abi::xen::{SharedInfo, VcpuInfo};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::arch::TrapFrame;
use crate::arch::pv::{self, is_canonical};
use crate::domain::{self, Domain, State};
use crate::{hypercall, stop};

const RFLAGS_TF: u64 = 1 << 8;
const RFLAGS_IF: u64 = 1 << 9;
const RFLAGS_IOPL: u64 = 3 << 12;
const RFLAGS_NT: u64 = 1 << 14;
const RFLAGS_RF: u64 = 1 << 16;
const RFLAGS_VM: u64 = 1 << 17;
const RFLAGS_AC: u64 = 1 << 18;

/// The #PF error-code bit for a user-mode access.
const PFEC_USER: u64 = 1 << 2;

/// vcpu_info field offsets, from `abi`'s [`VcpuInfo`] (reached through
/// `Domain::vcpu_info`: a slot of [`SharedInfo`], or a registered frame).
pub const UPCALL_PENDING: usize = offset_of!(VcpuInfo, evtchn_upcall_pending);
pub const UPCALL_MASK: usize = offset_of!(VcpuInfo, evtchn_upcall_mask);
// The exit path reads both flags in one 16-bit load.
const _: () = assert!(UPCALL_MASK == UPCALL_PENDING + 1 && UPCALL_PENDING.is_multiple_of(2));
pub const PENDING_SEL: usize = offset_of!(VcpuInfo, evtchn_pending_sel);
pub const ARCH_CR2: usize = offset_of!(VcpuInfo, arch.cr2);
const _: () = assert!(offset_of!(SharedInfo, vcpu_info) == 0);

/// A guest pointer hv-core could not use.
pub struct Fault;

impl From<Fault> for abi::Errno {
    fn from(_: Fault) -> Self {
        abi::Errno::Fault
    }
}

/// Reads a `T` from guest memory (current address space).
#[inline(always)]
pub fn read<T: FromBytes + IntoBytes>(va: u64) -> Result<T, Fault> {
    let mut value = T::new_zeroed();
    pv::copy_from_guest(value.as_mut_bytes(), va).map_err(|_| Fault)?;
    Ok(value)
}

/// Writes a `T` to guest memory (current address space).
pub fn write<T: IntoBytes + Immutable>(va: u64, value: &T) -> Result<(), Fault> {
    pv::copy_to_guest(va, value.as_bytes()).map_err(|_| Fault)
}

/// A guest virtual address of a `T` (current address space). Only
/// [`GuestArray::at`] does arithmetic on guest addresses, checked, so a
/// guest's offset cannot wrap into another address.
pub struct GuestPtr<T> {
    va: u64,
    _of: core::marker::PhantomData<fn() -> T>,
}

impl<T> Clone for GuestPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for GuestPtr<T> {}

impl<T> GuestPtr<T> {
    pub const fn new(va: u64) -> Self {
        Self {
            va,
            _of: core::marker::PhantomData,
        }
    }

    pub const fn va(self) -> u64 {
        self.va
    }
}

impl<T: FromBytes + IntoBytes> GuestPtr<T> {
    pub fn read(self) -> Result<T, Fault> {
        read(self.va)
    }
}

impl<T: IntoBytes + Immutable> GuestPtr<T> {
    pub fn write(self, value: &T) -> Result<(), Fault> {
        write(self.va, value)
    }
}

/// `len` consecutive `T`s from `base` in guest memory, as a batch
/// hypercall names its requests.
pub struct GuestArray<T> {
    base: u64,
    len: u64,
    _of: core::marker::PhantomData<fn() -> T>,
}

impl<T> Clone for GuestArray<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for GuestArray<T> {}

impl<T> GuestArray<T> {
    pub const fn new(base: u64, len: u64) -> Self {
        Self {
            base,
            len,
            _of: core::marker::PhantomData,
        }
    }

    pub const fn len(self) -> u64 {
        self.len
    }

    /// Element `i`: `-EFAULT` (as Xen's `copy_from_guest_offset`) if it
    /// is past the end or its address would overflow.
    pub fn at(self, i: u64) -> Result<GuestPtr<T>, Fault> {
        if i >= self.len {
            return Err(Fault);
        }
        i.checked_mul(size_of::<T>() as u64)
            .and_then(|offset| self.base.checked_add(offset))
            .map(GuestPtr::new)
            .ok_or(Fault)
    }
}

impl GuestArray<u8> {
    /// Copies bytes `from..from + dst.len()` into `dst`: `-EFAULT` if
    /// any is past the end or an address would overflow.
    pub fn read_into(self, from: u64, dst: &mut [u8]) -> Result<(), Fault> {
        let end = from.checked_add(dst.len() as u64).ok_or(Fault)?;
        if end > self.len {
            return Err(Fault);
        }
        read_bytes(dst, self.base.checked_add(from).ok_or(Fault)?)
    }

    /// The bytes from `from` on (how a continuation names what is left).
    pub fn rest(self, from: u64) -> Result<Self, Fault> {
        if from > self.len {
            return Err(Fault);
        }
        let base = self.base.checked_add(from).ok_or(Fault)?;
        Ok(Self::new(base, self.len - from))
    }

    pub const fn base(self) -> u64 {
        self.base
    }
}

/// Copies guest bytes at `va` into `dst`.
pub fn read_bytes(dst: &mut [u8], va: u64) -> Result<(), Fault> {
    pv::copy_from_guest(dst, va).map_err(|_| Fault)
}

/// Copies `src` to guest memory at `va`.
pub fn write_bytes(va: u64, src: &[u8]) -> Result<(), Fault> {
    pv::copy_to_guest(va, src).map_err(|_| Fault)
}

/// What a bounce delivers.
#[derive(Clone, Copy, Debug)]
struct Bounce {
    target: u64,
    error_code: Option<u64>,
    mask_events: bool,
    /// The failsafe frame also carries DS, ES, FS, GS.
    failsafe: bool,
}

/// Switches the vCPU between guest kernel and user mode: page-table root
/// and GS bases (Xen's `toggle_guest_mode`).
fn toggle_guest_mode(d: &mut Domain, v: usize) {
    let vcpu = &mut d.vcpus[v];
    vcpu.kernel_mode = !vcpu.kernel_mode;
    crate::arch::percpu::current().set_guest_kernel_mode(vcpu.kernel_mode);
    vcpu.load_root();
    pv::load_gs_base(vcpu.segment_bases().gs);
}

/// Writes a bounce frame on the guest kernel stack and points `frame` at
/// the handler (Xen's `create_bounce_frame`). From the top of the new
/// stack: RCX, R11, [error code,] [DS, ES, FS, GS,] RIP, CS (saved upcall
/// mask in bits 32-39), RFLAGS (IF = events were unmasked), RSP, SS.
fn create_bounce_frame(
    d: &mut Domain,
    v: usize,
    frame: &mut TrapFrame,
    bounce: Bounce,
) -> Result<(), &'static str> {
    if bounce.target == 0 {
        return Err("no handler registered");
    }
    let mut cs = frame.cs;
    let sp = if d.vcpus[v].kernel_mode {
        // Already in guest kernel mode: push below the interrupted stack,
        // and tell the guest so by clearing RPL in the saved CS.
        cs &= !3;
        frame.rsp
    } else {
        toggle_guest_mode(d, v);
        d.vcpus[v].kernel_sp
    };
    let info = d.vcpu_info(v);
    // Plain loads and stores (as Xen's): the guest reads these on this
    // CPU after the bounce, and a sender elsewhere sets the pending flag
    // and kicks this CPU whatever the mask says, so no fence is needed.
    let saved_mask = info
        .u8(UPCALL_MASK)
        .load(core::sync::atomic::Ordering::Relaxed);
    if bounce.mask_events {
        info.u8(UPCALL_MASK)
            .store(1, core::sync::atomic::Ordering::Relaxed);
    }
    write_bounce_frame(frame, sp, cs, saved_mask, bounce)
}

/// The frame-writing half of [`create_bounce_frame`]: the frame on the
/// guest kernel stack below `sp`, with `cs` as the saved CS and
/// `saved_mask` the upcall mask before the bounce.
#[inline(always)]
fn write_bounce_frame(
    frame: &mut TrapFrame,
    sp: u64,
    cs: u64,
    saved_mask: u8,
    bounce: Bounce,
) -> Result<(), &'static str> {
    let sp = sp & !0xf;
    let mut rflags = frame.rflags & !(RFLAGS_IF | RFLAGS_IOPL);
    if saved_mask == 0 {
        rflags |= RFLAGS_IF;
    }

    let mut words = [0u64; 12];
    let mut n = 0;
    let mut push = |w: u64| {
        words[n] = w;
        n += 1;
    };
    push(frame.rcx);
    push(frame.r11);
    if let Some(code) = bounce.error_code {
        push(code);
    }
    if bounce.failsafe {
        // hv-core does not track guest data selectors; the guest sees the
        // flat ones it is expected to have loaded.
        for _ in 0..4 {
            push(FLAT_RING3_SS64 as u64);
        }
    }
    push(frame.rip);
    push(cs | (saved_mask as u64) << 32);
    push(rflags);
    push(frame.rsp);
    push(frame.ss);
    let size = (n * 8) as u64;
    let new_sp = sp.wrapping_sub(size);
    if !pv::guest_range_ok(new_sp, n * 8) || new_sp > sp {
        return Err("guest kernel stack is outside guest memory");
    }
    if pv::copy_to_guest(new_sp, words[..n].as_bytes()).is_err() {
        return Err("cannot write the bounce frame on the guest kernel stack");
    }
    frame.rflags &= !(RFLAGS_AC | RFLAGS_VM | RFLAGS_RF | RFLAGS_NT | RFLAGS_TF);
    frame.ss = FLAT_KERNEL_SS64 as u64;
    frame.rsp = new_sp;
    frame.cs = FLAT_KERNEL_CS64 as u64;
    frame.rip = bounce.target;
    Ok(())
}

/// Vectors whose exceptions carry an error code.
#[inline(always)]
const fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// An exception raised by guest code.
pub fn exception(frame: &mut TrapFrame, cr2: u64) {
    let vector = frame.vector as u8;
    let v = domain::current_vcpu_index();
    let result = domain::with_current(|d| {
        match vector {
            6 if emulate_forced_cpuid(d, frame) => return Ok(()),
            13 if bounce_software_interrupt(d, v, frame)? => return Ok(()),
            14 => {
                // Read by the guest on this CPU once bounced: no fence.
                d.vcpu_info(v)
                    .u64(ARCH_CR2)
                    .store(cr2, core::sync::atomic::Ordering::Relaxed);
            }
            2 | 18 => return Err("machine check or NMI while the guest ran"),
            _ => {}
        }
        // The guest kernel runs in ring 3, but to it a fault in kernel mode
        // is a supervisor fault: clear the user bit of a #PF error code,
        // as Xen does.
        let mut error_code = frame.error_code;
        if vector == 14 && d.vcpus[v].kernel_mode {
            error_code &= !PFEC_USER;
        }
        let entry = d.vcpus[v].traps[vector as usize];
        let bounce = Bounce {
            target: entry.address,
            error_code: has_error_code(vector).then_some(error_code),
            mask_events: entry.flags & TI_MASK_EVENTS != 0,
            failsafe: false,
        };
        create_bounce_frame(d, v, frame, bounce)
    });
    if let Err(reason) = result {
        let (mnemonic, name) = crate::arch::exception_name(vector);
        let address = FaultAddress((vector == 14).then_some(cr2));
        kill_current(
            frame,
            format_args!(
                "{name} ({mnemonic}){address}, error code {:#x}, could not be bounced: {reason}",
                frame.error_code
            ),
        );
    }
}

/// ` at <address>` for a page fault, nothing for other exceptions.
struct FaultAddress(Option<u64>);

impl core::fmt::Display for FaultAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(address) => write!(f, " at {address:#x}"),
            None => Ok(()),
        }
    }
}

/// A guest `int $n` that failed the IDT gate's privilege check arrives as
/// #GP; bounce it to the guest's handler for `n` if the guest allowed
/// software interrupts there. The vector comes from decoding the
/// instruction, not from the error code (QEMU's TCG reports a wrong one).
fn bounce_software_interrupt(
    d: &mut Domain,
    v: usize,
    frame: &mut TrapFrame,
) -> Result<bool, &'static str> {
    if frame.error_code & 3 != 2 {
        return Ok(false);
    }
    let Ok(insn) = read::<[u8; 2]>(frame.rip) else {
        return Ok(false);
    };
    if insn[0] != 0xcd {
        return Ok(false);
    }
    let entry = d.vcpus[v].traps[insn[1] as usize];
    let needed = if d.vcpus[v].kernel_mode { 1 } else { 3 };
    if entry.address == 0 || entry.flags & TI_DPL_MASK < needed {
        return Ok(false);
    }
    frame.rip = advance_rip(frame, TWO_BYTE_INSN);
    create_bounce_frame(
        d,
        v,
        frame,
        Bounce {
            target: entry.address,
            error_code: None,
            mask_events: entry.flags & TI_MASK_EVENTS != 0,
            failsafe: false,
        },
    )?;
    Ok(true)
}

/// `ud2; .ascii "xen"; cpuid`: Xen's forced-emulation prefix, how a PV
/// guest asks for the hypervisor's view of CPUID.
fn emulate_forced_cpuid(d: &mut Domain, frame: &mut TrapFrame) -> bool {
    const PREFIX: [u8; 7] = [0x0f, 0x0b, b'x', b'e', b'n', 0x0f, 0xa2];
    match read::<[u8; 7]>(frame.rip) {
        Ok(bytes) if bytes == PREFIX => {}
        _ => return false,
    }
    let [a, b, c, dx] = crate::cpuid::guest_leaf(d, frame.rax as u32, frame.rcx as u32);
    frame.rax = a as u64;
    frame.rbx = b as u64;
    frame.rcx = c as u64;
    frame.rdx = dx as u64;
    frame.rip = advance_rip(frame, PREFIX.len() as u64);
    true
}

/// Bounces exception `vector` (with `error_code` where it has one) to the
/// guest's trap table, as if the instruction at `frame.rip` had raised it.
fn inject_exception(
    d: &mut Domain,
    v: usize,
    frame: &mut TrapFrame,
    vector: u8,
    error_code: u64,
) -> Result<(), &'static str> {
    let entry = d.vcpus[v].traps[vector as usize];
    let bounce = Bounce {
        target: entry.address,
        error_code: has_error_code(vector).then_some(error_code),
        mask_events: entry.flags & TI_MASK_EVENTS != 0,
        failsafe: false,
    };
    create_bounce_frame(d, v, frame, bounce)
}

/// The length of `syscall`, `sysenter` and `int $n`.
const TWO_BYTE_INSN: u64 = 2;

/// A `syscall` from the guest.
#[inline(always)]
pub fn syscall(frame: &mut TrapFrame) {
    // The scheduler keeps the held vCPU's mode in this CPU's block: a
    // hypercall takes no lock to learn it.
    let from_kernel = crate::arch::percpu::current().guest_kernel_mode();
    if from_kernel {
        hypercall::dispatch(frame);
    } else {
        syscall_from_user(frame);
    }
}

/// A `syscall` from guest user mode: to the guest kernel's callback.
#[inline(never)]
fn syscall_from_user(frame: &mut TrapFrame) {
    let v = domain::current_vcpu_index();
    let result = domain::with_current(|d| {
        let callbacks = d.vcpus[v].callbacks;
        bounce_system_call(
            d,
            v,
            frame,
            callbacks.syscall,
            callbacks.syscall_masks_events,
        )
    });
    if let Err(reason) = result {
        kill_current(
            frame,
            format_args!("syscall from guest user mode: {reason}"),
        );
    }
}

/// A `syscall` from the 32-bit code segment (through CSTAR). As on Xen,
/// for a 64-bit PV guest it is never a hypercall: in either guest mode it
/// goes to the syscall32 callback.
pub fn syscall32(frame: &mut TrapFrame) {
    let v = domain::current_vcpu_index();
    let result = domain::with_current(|d| {
        let callbacks = d.vcpus[v].callbacks;
        bounce_system_call(
            d,
            v,
            frame,
            callbacks.syscall32,
            callbacks.syscall32_masks_events,
        )
    });
    if let Err(reason) = result {
        kill_current(frame, format_args!("compat-mode syscall: {reason}"));
    }
}

/// Sends a system call to its callback, or, without one, raises #UD at
/// the instruction as Xen does (a CPU without the instruction would).
fn bounce_system_call(
    d: &mut Domain,
    v: usize,
    frame: &mut TrapFrame,
    target: u64,
    mask_events: bool,
) -> Result<(), &'static str> {
    if target == 0 {
        frame.rip = advance_rip(frame, TWO_BYTE_INSN.wrapping_neg());
        return inject_exception(d, v, frame, 6, 0);
    }
    let bounce = Bounce {
        target,
        error_code: None,
        mask_events,
        failsafe: false,
    };
    create_bounce_frame(d, v, frame, bounce)
}

/// A `sysenter` (Intel CPUs; AMD's raise #UD in long mode). The CPU keeps
/// neither RIP nor RSP, so the frame holds zeros and a null ring-3 CS, as
/// on Xen; it goes to the sysenter callback, or raises #GP(0) without one.
pub fn sysenter(frame: &mut TrapFrame) {
    let v = domain::current_vcpu_index();
    let result = domain::with_current(|d| {
        let callbacks = d.vcpus[v].callbacks;
        if callbacks.sysenter == 0 {
            return inject_exception(d, v, frame, 13, 0);
        }
        let bounce = Bounce {
            target: callbacks.sysenter,
            error_code: None,
            mask_events: callbacks.sysenter_masks_events,
            failsafe: false,
        };
        create_bounce_frame(d, v, frame, bounce)
    });
    if let Err(reason) = result {
        kill_current(frame, format_args!("sysenter: {reason}"));
    }
}

/// `frame.rip` moved by `delta` bytes, wrapping at 4 GiB in a 32-bit code
/// segment as the CPU's EIP does.
fn advance_rip(frame: &TrapFrame, delta: u64) -> u64 {
    let rip = frame.rip.wrapping_add(delta);
    if frame.cs as u16 == FLAT_RING3_CS32 {
        rip & 0xffff_ffff
    } else {
        rip
    }
}

/// `HYPERVISOR_iret`: return from a bounce, to guest kernel or user mode.
pub fn iret(frame: &mut TrapFrame) {
    let v = domain::current_vcpu_index();
    let context: abi::xen::IretContext = match read(frame.rsp) {
        Ok(c) => c,
        Err(_) => kill_current(
            frame,
            format_args!("iret: the return frame is not readable"),
        ),
    };
    let to_user = context.cs & 3 == 3;
    if !to_user {
        // Within guest kernel mode (a return from an exception or event
        // handler): nothing of the domain's but this vCPU's upcall mask,
        // reached through this CPU's block, so no lock.
        let mask = restore_iret_frame(frame, &context);
        if crate::arch::shared::store_held_vcpu_info_u8(UPCALL_MASK, mask) {
            return;
        }
    }
    let result = domain::with_current(|d| {
        if to_user {
            if d.vcpus[v].user_root.is_none() {
                return Err("iret to user mode without user page tables");
            }
            if d.vcpus[v].kernel_mode {
                toggle_guest_mode(d, v);
            }
        }
        let mask = restore_iret_frame(frame, &context);
        // Ordered before the exit's look at the pending flag (a sender
        // elsewhere sets that flag, then reads the mask).
        d.vcpu_info(v)
            .u8(UPCALL_MASK)
            .store(mask, core::sync::atomic::Ordering::SeqCst);
        Ok(())
    });
    if let Err(reason) = result {
        kill_current(frame, format_args!("{reason}"));
    }
}

/// Loads the registers `HYPERVISOR_iret` returns with into `frame`;
/// returns the upcall mask its RFLAGS.IF restores (the caller stores it,
/// sequentially consistent: before the exit's look at the pending flag,
/// which a sender elsewhere sets before it reads the mask).
#[inline(always)]
fn restore_iret_frame(frame: &mut TrapFrame, context: &abi::xen::IretContext) -> u8 {
    frame.rip = context.rip;
    frame.cs = context.cs | 3;
    frame.rflags = (context.rflags & !(RFLAGS_IOPL | RFLAGS_VM)) | RFLAGS_IF;
    frame.rsp = context.rsp;
    frame.ss = context.ss | 3;
    if context.flags & abi::xen::VGCF_IN_SYSCALL == 0 {
        frame.r11 = context.r11;
        frame.rcx = context.rcx;
    } else {
        // Xen returns with sysret here: the guest sees RCX and R11 as
        // a `syscall` leaves them.
        frame.rcx = frame.rip;
        frame.r11 = frame.rflags;
    }
    frame.rax = context.rax;
    u8::from(context.rflags & RFLAGS_IF == 0)
}

/// The last step before `iretq` to a guest: deliver a pending upcall, and
/// make sure the frame can be returned to (else the failsafe callback).
/// The common case is inlined into every entry path and takes no lock:
/// no switch due, Xen's selectors, a return address the CPU takes, and no
/// upcall to deliver (the flags are in the vCPU's vcpu_info, found
/// through this CPU's block). Anything else is [`exit_slow`]'s.
#[inline(always)]
pub fn exit_to_guest(frame: &mut TrapFrame) {
    crate::scheduler::schedule(frame);
    let plain_frame = selectors_ok(frame)
        && !(frame.cs as u16 == FLAT_RING3_CS32 && frame.rip > u32::MAX as u64)
        && is_canonical(frame.rip)
        && is_canonical(frame.rsp);
    let upcall = crate::arch::shared::held_vcpu_info_pair(UPCALL_PENDING);
    if plain_frame && matches!(upcall, Some([pending, mask]) if pending == 0 || mask != 0) {
        return;
    }
    exit_slow(frame, plain_frame, upcall);
}

/// The commonest upcall, without the domain's lock: to a vCPU in guest
/// kernel mode (no switch of page tables or stacks) on a frame
/// [`exit_to_guest`] found plain, 64-bit, with events unmasked (`upcall`:
/// its look at the pending and mask flags) and a callback registered.
/// Everything it needs is in this CPU's block: the mode, the vcpu_info's
/// address and the event callback (`percpu::set_guest`, kept by the
/// scheduler and by the callback registrations of the held vCPU itself).
/// False: the slow path decides (and kills the guest if its stack cannot
/// take the frame).
#[inline(always)]
fn upcall_in_kernel_mode(frame: &mut TrapFrame, upcall: Option<[u8; 2]>) -> bool {
    let me = crate::arch::percpu::current();
    let target = me.guest_event_callback();
    if frame.cs as u16 != FLAT_RING3_CS64 || target == 0 || !me.guest_kernel_mode() {
        return false;
    }
    if !matches!(upcall, Some([pending, 0]) if pending != 0) {
        return false;
    }
    // The mask goes up before the frame is written, as in
    // `create_bounce_frame`; should the write fail, it goes down again
    // and the slow path decides (with the lock, as for any frame).
    let _ = crate::arch::shared::store_held_vcpu_info_u8(UPCALL_MASK, 1);
    let bounce = Bounce {
        target,
        error_code: None,
        mask_events: true,
        failsafe: false,
    };
    let cs = frame.cs & !3;
    let sp = frame.rsp;
    if write_bounce_frame(frame, sp, cs, 0, bounce).is_ok() {
        return true;
    }
    let _ = crate::arch::shared::store_held_vcpu_info_u8(UPCALL_MASK, 0);
    false
}

/// [`exit_to_guest`] when the frame needs fixing or an upcall is due;
/// `plain_frame` and `upcall` are what it found.
#[inline(never)]
fn exit_slow(frame: &mut TrapFrame, plain_frame: bool, upcall: Option<[u8; 2]>) {
    if plain_frame && upcall_in_kernel_mode(frame, upcall) {
        return;
    }
    let v = domain::current_vcpu_index();
    let result = domain::with_current(|d| {
        if !selectors_ok(frame) {
            let callbacks = d.vcpus[v].callbacks;
            frame.cs = FLAT_RING3_CS64 as u64;
            frame.ss = FLAT_RING3_SS64 as u64;
            create_bounce_frame(
                d,
                v,
                frame,
                Bounce {
                    target: callbacks.failsafe,
                    error_code: None,
                    mask_events: callbacks.failsafe_masks_events,
                    failsafe: true,
                },
            )
            .map_err(|_| "bad segment selectors and no usable failsafe callback")?;
        }
        if frame.cs as u16 == FLAT_RING3_CS32 && frame.rip > u32::MAX as u64 {
            // iretq would raise #GP in hv-core (QEMU truncates instead).
            // Xen's iretq fault turns into a #GP(0) for the guest at that
            // frame: so here, before the instruction.
            inject_exception(d, v, frame, 13, 0)
                .map_err(|_| "32-bit code segment with RIP above 4 GiB, and no #GP handler")?;
        }
        if !is_canonical(frame.rip) || !is_canonical(frame.rsp) {
            return Err("return address or stack pointer is not canonical");
        }
        let info = d.vcpu_info(v);
        use core::sync::atomic::Ordering::SeqCst;
        if info.u8(UPCALL_PENDING).load(SeqCst) != 0 && info.u8(UPCALL_MASK).load(SeqCst) == 0 {
            let callbacks = d.vcpus[v].callbacks;
            if callbacks.event != 0 {
                create_bounce_frame(
                    d,
                    v,
                    frame,
                    Bounce {
                        target: callbacks.event,
                        error_code: None,
                        mask_events: true,
                        failsafe: false,
                    },
                )?;
            }
        }
        Ok(())
    });
    if let Err(reason) = result {
        kill_current(frame, format_args!("{reason}"));
    }
}

#[inline(always)]
fn selectors_ok(frame: &TrapFrame) -> bool {
    let cs = frame.cs as u16;
    let ss = frame.ss as u16;
    (cs == FLAT_RING3_CS64 || cs == FLAT_RING3_CS32) && ss == FLAT_RING3_SS64
}

/// Kills the running domain: prints the report and, for dom0, stops the
/// machine with the failure status; a domU is left crashed for the
/// toolstack while the other domains run on. Never returns to the guest.
pub fn kill_current(frame: &TrapFrame, reason: core::fmt::Arguments) -> ! {
    let id = domain::current_id();
    let v = domain::current_vcpu_index();
    log::error!(
        "d{id}v{v} killed: {reason}; RIP {:#x} RSP {:#x} CS {:#x} RFLAGS {:#x}",
        frame.rip,
        frame.rsp,
        frame.cs,
        frame.rflags
    );
    shutdown_current(abi::ops::SHUTDOWN_CRASH)
}

/// The running domain has shut down. dom0's shutdown ends the run: power
/// off for a clean shutdown, the failure stop for a crash. A domU's waits
/// for the toolstack, which hears of it through VIRQ_DOM_EXC.
pub fn shutdown_current(reason: u32) -> ! {
    let id = domain::current_id();
    domain::with(id, |d| {
        d.state = State::Shutdown(reason);
        // Its other vCPUs leave their CPUs at their next exit.
        (0..d.max_vcpus).for_each(|v| crate::scheduler::notify(d, v));
    });
    if id != 0 {
        let what = match reason {
            abi::ops::SHUTDOWN_POWEROFF => "poweroff",
            abi::ops::SHUTDOWN_REBOOT => "reboot",
            abi::ops::SHUTDOWN_SUSPEND => "suspend",
            abi::ops::SHUTDOWN_CRASH => "crash",
            _ => "other",
        };
        log::info!("d{id} shut down ({what}, reason {reason})");
        crate::event_delivery::notify_dom_exc();
        crate::scheduler::abandon_current()
    }
    match reason {
        abi::ops::SHUTDOWN_POWEROFF => {
            log::info!("d{id} shut down (poweroff): powering off");
            stop::power_off()
        }
        abi::ops::SHUTDOWN_REBOOT => {
            log::info!("d{id} shut down (reboot): hv-core does not reboot; powering off");
            stop::power_off()
        }
        abi::ops::SHUTDOWN_CRASH => {
            log::error!("d{id} crashed");
            stop::fatal("dom0 crashed")
        }
        other => {
            log::info!("d{id} shut down (reason {other}): powering off");
            stop::power_off()
        }
    }
}
