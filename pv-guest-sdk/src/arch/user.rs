//! Entering guest user mode and coming back.
//!
//! `pv_user_enter(rip, rsp, ctx)` saves the kernel's callee-saved registers
//! and stack pointer in `ctx`, builds an iret frame whose CS has RPL 3
//! (which makes the hypervisor switch to the user page tables) and jumps
//! to the iret stub. The kernel gets control back through bounces onto the
//! `stack_switch` stack; `pv_user_resume(ctx, value)` abandons that bounce
//! frame, restores the saved registers and returns `value` from
//! `pv_user_enter`.

use core::arch::global_asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::xen::{FLAT_USER_CS64, FLAT_USER_SS64};

global_asm!(
    r#"
    .pushsection .text.pv_user_entry, "ax", @progbits
    .globl pv_user_enter
pv_user_enter:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, (%rdx)
    pushq ${ss}
    push %rsi                # user RSP
    pushq $0x202             # RFLAGS: IF, so upcalls are unmasked in user mode
    pushq ${cs}
    push %rdi                # user RIP
    pushq $0                 # iret flags
    xor %eax, %eax
    xor %ebx, %ebx
    xor %ecx, %ecx
    xor %edx, %edx
    xor %esi, %esi
    xor %edi, %edi
    xor %ebp, %ebp
    xor %r8d, %r8d
    xor %r9d, %r9d
    xor %r10d, %r10d
    xor %r11d, %r11d
    xor %r12d, %r12d
    xor %r13d, %r13d
    xor %r14d, %r14d
    xor %r15d, %r15d
    jmp hypercall_page + {iret_offset}

    .globl pv_user_resume
pv_user_resume:
    mov %rdi, %rsp
    mov %rsi, %rax
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret
    .popsection
    "#,
    ss = const FLAT_USER_SS64 as u64 | 3,
    cs = const FLAT_USER_CS64 as u64 | 3,
    iret_offset = const abi::Hypercall::Iret as usize * abi::hypercall::STUB_SIZE,
    options(att_syntax)
);

unsafe extern "C" {
    fn pv_user_enter(rip: u64, rsp: u64, ctx: *mut u64) -> u64;
    fn pv_user_resume(ctx: u64, value: u64) -> !;
}

/// The kernel stack the hypervisor switches to (`stack_switch`) when user
/// mode traps, takes an event or makes a system call.
#[repr(C, align(16))]
struct TrapStack(UnsafeCell<[u8; 16 * 1024]>);

// SAFETY: Rust code never accesses the stack's bytes; only the hypervisor
// (bounce frames) and the code running on it do.
unsafe impl Sync for TrapStack {}

static TRAP_STACK: TrapStack = TrapStack(UnsafeCell::new([0; 16 * 1024]));

pub fn trap_stack_top() -> u64 {
    TRAP_STACK.0.get() as u64 + 16 * 1024
}

/// The kernel stack pointer `enter` parked while user code runs (0: none).
static KERNEL_RSP: AtomicU64 = AtomicU64::new(0);

static REGISTERED: AtomicBool = AtomicBool::new(false);

/// Points the hypervisor at the trap stack and the system-call stub (once).
fn register() -> crate::Result<()> {
    use abi::ops::CALLBACKTYPE_SYSCALL;
    use abi::xen::FLAT_KERNEL_SS64;
    if REGISTERED.load(Ordering::SeqCst) {
        return Ok(());
    }
    // SAFETY: the trap stack is reserved for bounces from user mode, and
    // the syscall stub handles the callback's frame.
    unsafe {
        crate::hypercall::stack_switch(FLAT_KERNEL_SS64, trap_stack_top())?;
        crate::hypercall::callback_register(
            CALLBACKTYPE_SYSCALL,
            super::entry::syscall_entry(),
            true,
        )?;
    }
    REGISTERED.store(true, Ordering::SeqCst);
    Ok(())
}

/// Runs user code at `rip` with stack `rsp` (through the user page tables,
/// which must be installed) until [`exit_session`] is called; returns the
/// value passed to it. Not reentrant. Whatever user code does, the kernel
/// gets control back through its trap, event and system-call entries.
pub fn run(rip: u64, rsp: u64) -> crate::Result<u64> {
    register()?;
    assert_eq!(
        KERNEL_RSP.load(Ordering::SeqCst),
        0,
        "user mode entered twice"
    );
    // SAFETY: the trap stack and syscall callback are registered, so every
    // way out of user mode lands in the kernel's entry stubs; the kernel's
    // callee-saved registers come back through `exit_session`, which
    // returns here on the stack saved in KERNEL_RSP.
    let value = unsafe { pv_user_enter(rip, rsp, KERNEL_RSP.as_ptr()) };
    KERNEL_RSP.store(0, Ordering::SeqCst);
    Ok(value)
}

/// Whether user code is running (a `run` has not returned).
pub fn in_user_session() -> bool {
    KERNEL_RSP.load(Ordering::SeqCst) != 0
}

/// Returns `value` from the pending [`UserSpace::run`](crate::user::UserSpace::run), abandoning the current stack.
/// Meant for handlers of bounces from user mode (they run on the trap
/// stack); frames abandoned this way never finish, so their destructors do
/// not run and any lock they hold stays held.
pub fn exit_session(value: u64) -> ! {
    let rsp = KERNEL_RSP.load(Ordering::SeqCst);
    assert_ne!(rsp, 0, "no user session to leave");
    // SAFETY: `rsp` is the stack of a `run` that has not returned, so it
    // still holds pv_user_enter's saved registers and return address.
    unsafe { pv_user_resume(rsp, value) }
}

/// Copies from user memory whose pages `user::copy_from_user` has checked
/// to be present user mappings.
pub fn copy_from_user_checked(va: u64, out: &mut [u8]) {
    // SAFETY: the caller checked every page of the range is mapped; user
    // pages hold no Rust objects of the kernel.
    unsafe { super::mem::copy_from(va, out) }
}
