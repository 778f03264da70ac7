//! Entry stubs for everything the hypervisor bounces into the guest kernel:
//! exceptions (the trap table), the event upcall, the failsafe callback and
//! system calls from guest user mode; and the way back, `HYPERVISOR_iret`.
//!
//! PV64 bounce frame, written by the hypervisor on the guest kernel stack
//! (the current RSP rounded down to 16 bytes when the guest was in kernel
//! mode, the `stack_switch` stack when it was in user mode), lowest address
//! first:
//!
//! ```text
//!   rcx, r11, [error code], rip, cs, rflags, rsp, ss
//! ```
//!
//! `cs` carries the vCPU's upcall mask from before the bounce in bits
//! 32-39, and its RPL is 0 when the guest was in kernel mode, 3 when it was
//! in user mode. `rflags.IF` is the inverse of that saved mask. The failsafe
//! callback's frame has `ds, es, fs, gs` between `r11` and `rip`.
//!
//! Each stub restores RCX and R11, pushes an error code (0 where the CPU
//! has none) and a vector number, and joins `pv_trap_common`, which saves
//! the general registers as a [`TrapFrame`](crate::traps::TrapFrame) and
//! calls the Rust dispatcher. The return path pops the registers, drops
//! vector and error code, pushes the iret `flags` word (0: a full iret that
//! restores RCX and R11) and jumps to the hypercall page's iret stub, which
//! pushes RCX, R11 and RAX to complete the `iret_context`
//! (`rax, r11, rcx, flags, rip, cs, rflags, rsp, ss`). The hypervisor then
//! restores the upcall mask from `rflags.IF` and switches to the user page
//! tables if `cs` has RPL 3.

use core::arch::global_asm;

use crate::traps::{VECTOR_EVENT, VECTOR_FAILSAFE, VECTOR_SYSCALL};

/// One stub per vector; `error_code` marks the vectors whose exceptions
/// carry one (10-14 and 17 among those the SDK installs).
macro_rules! trap_stub {
    ($name:literal, $vector:expr, error_code) => {
        global_asm!(
            concat!(".pushsection .text.pv_traps, \"ax\", @progbits\n",
                    ".globl ", $name, "\n", $name, ":\n",
                    "  pop %rcx\n  pop %r11\n  pushq ${v}\n  jmp pv_trap_common\n",
                    ".popsection"),
            v = const $vector,
            options(att_syntax)
        );
    };
    ($name:literal, $vector:expr) => {
        global_asm!(
            concat!(".pushsection .text.pv_traps, \"ax\", @progbits\n",
                    ".globl ", $name, "\n", $name, ":\n",
                    "  pop %rcx\n  pop %r11\n  pushq $0\n  pushq ${v}\n  jmp pv_trap_common\n",
                    ".popsection"),
            v = const $vector,
            options(att_syntax)
        );
    };
}

trap_stub!("pv_trap_0", 0);
trap_stub!("pv_trap_1", 1);
trap_stub!("pv_trap_3", 3);
trap_stub!("pv_trap_4", 4);
trap_stub!("pv_trap_5", 5);
trap_stub!("pv_trap_6", 6);
trap_stub!("pv_trap_7", 7);
trap_stub!("pv_trap_10", 10, error_code);
trap_stub!("pv_trap_11", 11, error_code);
trap_stub!("pv_trap_12", 12, error_code);
trap_stub!("pv_trap_13", 13, error_code);
trap_stub!("pv_trap_14", 14, error_code);
trap_stub!("pv_trap_16", 16);
trap_stub!("pv_trap_17", 17, error_code);
trap_stub!("pv_trap_18", 18);
trap_stub!("pv_trap_19", 19);
trap_stub!("pv_event_entry", VECTOR_EVENT);
trap_stub!("pv_syscall_entry", VECTOR_SYSCALL);

global_asm!(
    r#"
    .pushsection .text.pv_traps, "ax", @progbits
    .globl pv_failsafe_entry
pv_failsafe_entry:
    pop %rcx
    pop %r11
    add $32, %rsp            # ds, es, fs, gs: the SDK runs with null selectors
    pushq $0
    pushq ${failsafe}
    jmp pv_trap_common

pv_trap_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    cld
    mov %rsp, %rdi
    call {dispatch}
    .globl pv_trap_return
pv_trap_return:
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp            # vector, error code
    pushq $0                 # iret flags: full iret, RCX and R11 restored
    jmp hypercall_page + {iret_offset}
    .popsection
    "#,
    failsafe = const VECTOR_FAILSAFE,
    dispatch = sym crate::traps::dispatch,
    iret_offset = const abi::Hypercall::Iret as usize * abi::hypercall::STUB_SIZE,
    options(att_syntax)
);

unsafe extern "C" {
    fn pv_trap_0();
    fn pv_trap_1();
    fn pv_trap_3();
    fn pv_trap_4();
    fn pv_trap_5();
    fn pv_trap_6();
    fn pv_trap_7();
    fn pv_trap_10();
    fn pv_trap_11();
    fn pv_trap_12();
    fn pv_trap_13();
    fn pv_trap_14();
    fn pv_trap_16();
    fn pv_trap_17();
    fn pv_trap_18();
    fn pv_trap_19();
    fn pv_event_entry();
    fn pv_failsafe_entry();
    fn pv_syscall_entry();
}

/// Installs the trap table: every exception vector a PV64 guest can
/// receive, with events masked on entry. #BP and #OF may be raised by the
/// guest itself (`int3`, `into`), so their DPL is 3.
pub fn install_trap_table() -> crate::Result<()> {
    use abi::xen::{FLAT_KERNEL_CS64, TI_MASK_EVENTS, TrapInfo};

    use crate::traps::{BREAKPOINT, OVERFLOW};

    let mut table = [TrapInfo::default(); 17];
    for (slot, (vector, address)) in table.iter_mut().zip(exception_stubs()) {
        let dpl = if vector == BREAKPOINT || vector == OVERFLOW {
            3
        } else {
            0
        };
        *slot = TrapInfo {
            vector,
            flags: dpl | TI_MASK_EVENTS,
            cs: FLAT_KERNEL_CS64,
            _pad: 0,
            address,
        };
    }
    // SAFETY: every address is a stub above, built for the hypervisor's
    // bounce frame of its vector; the table ends with a zero entry.
    unsafe { crate::hypercall::set_trap_table(&table) }
}

/// Registers the event and failsafe callbacks (events masked on entry).
pub fn register_callbacks() -> crate::Result<()> {
    use abi::ops::{CALLBACKTYPE_EVENT, CALLBACKTYPE_FAILSAFE};
    // SAFETY: both addresses are stubs above, built for the hypervisor's
    // frames of these callbacks.
    unsafe {
        crate::hypercall::callback_register(CALLBACKTYPE_EVENT, event_entry(), true)?;
        crate::hypercall::callback_register(CALLBACKTYPE_FAILSAFE, failsafe_entry(), true)
    }
}

/// The vectors the SDK installs, with their stubs. NMI (2) arrives through
/// its own callback, #DF (8) is never bounced to a PV guest, 9 and 15 are
/// reserved.
pub fn exception_stubs() -> [(u8, u64); 16] {
    [
        (0, pv_trap_0 as *const () as u64),
        (1, pv_trap_1 as *const () as u64),
        (3, pv_trap_3 as *const () as u64),
        (4, pv_trap_4 as *const () as u64),
        (5, pv_trap_5 as *const () as u64),
        (6, pv_trap_6 as *const () as u64),
        (7, pv_trap_7 as *const () as u64),
        (10, pv_trap_10 as *const () as u64),
        (11, pv_trap_11 as *const () as u64),
        (12, pv_trap_12 as *const () as u64),
        (13, pv_trap_13 as *const () as u64),
        (14, pv_trap_14 as *const () as u64),
        (16, pv_trap_16 as *const () as u64),
        (17, pv_trap_17 as *const () as u64),
        (18, pv_trap_18 as *const () as u64),
        (19, pv_trap_19 as *const () as u64),
    ]
}

pub fn event_entry() -> u64 {
    pv_event_entry as *const () as u64
}

pub fn failsafe_entry() -> u64 {
    pv_failsafe_entry as *const () as u64
}

pub fn syscall_entry() -> u64 {
    pv_syscall_entry as *const () as u64
}
