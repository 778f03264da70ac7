//! Interrupt and exception entry.
//!
//! Every vector has a 16-byte stub at `trap_stubs + vector * 16` that pushes
//! a dummy error code where the CPU pushes none, then the vector number, and
//! jumps to `trap_common`, which swaps GS to the CPU's block if the CPU
//! came from ring 3 (`percpu`), saves every general register into a
//! [`TrapFrame`] and calls [`super::traps::dispatch`]; `trap_exit` swaps
//! GS back on the way out to ring 3. One frame layout for
//! all vectors keeps the report and, later, guest context switching simple.

core::arch::global_asm!(
    r#"
    .section .text.trap_entry, "ax"
    .balign 16
    .global trap_stubs
trap_stubs:
    .set vector, 0
    .rept 256
    .balign 16
    .if (vector == 8) || (vector == 10) || (vector == 11) || (vector == 12) || (vector == 13) || (vector == 14) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
    .else
    pushq $0
    .endif
    pushq $vector
    jmp trap_common
    .set vector, vector + 1
    .endr

    /* From ring 3, GS becomes this CPU's block (`percpu`); the syscall
       entries have swapped already and come in below. */
    .macro push_registers
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
    .endm

    .global trap_common, trap_common_swapped, syscall_common
trap_common:
    testb $3, 24(%rsp)              /* the interrupted CS */
    jz trap_common_swapped
    swapgs
trap_common_swapped:
    push_registers
    /* A guest may have left AC set (which would switch SMAP off in
       hv-core) or DF; the gate has cleared IF, TF, NT and RF. So: cld,
       and clac where SMAP is on (without SMAP the instruction does not
       exist, and AC means nothing in ring 0). Narrower than a popf of
       clean flags, which is an emulator helper under TCG. */
    cld
    testb $1, {smap}(%rip)
    jz 1f
    clac
    jmp 1f
    /* The syscall entries (GS swapped): SFMASK has cleared IF, DF, TF,
       AC and NT already, so no popf. */
syscall_common:
    push_registers
    mov %rsp, %rdi
    call syscall_dispatch
    jmp trap_exit
1:  mov %rsp, %rdi
    call trap_dispatch
    .global trap_exit
trap_exit:
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
    /* Left: rax, vector, error code, then the iretq frame (rip 24, cs 32,
       rflags 40, rsp 48, ss 56). To hv-core: iretq. */
    testb $3, 32(%rsp)
    jz 2f
    /* To a guest: `sysretq` when it restores exactly what `iretq` would:
       RCX is the frame's RIP and R11 its RFLAGS (as `syscall` left them:
       a plain hypercall return), 64-bit CS and flat SS (STAR's), RF and
       VM clear (sysret clears them), RIP canonical (Intel's sysret
       faults in ring 0 on a non-canonical RCX, with the guest's RSP).
       Anything else (a bounce, a restarted hypercall, an interrupted
       guest) takes iretq. */
    cmp 24(%rsp), %rcx
    jne 3f
    cmp 40(%rsp), %r11
    jne 3f
    cmpq ${cs64}, 32(%rsp)
    jne 3f
    cmpq ${ds}, 56(%rsp)
    jne 3f
    test $0x30000, %r11
    jnz 3f
    mov %rcx, %rax
    shl $16, %rax
    sar $16, %rax
    cmp %rax, %rcx
    jne 3f
    /* An entry by interrupt from ring 3 leaves SS null, and AMD's sysret
       then keeps SS's hidden attributes unusable (a later far jump to
       32-bit code would fault on the stack): load a real one first. */
    mov %ss, %eax
    test %eax, %eax
    jnz 4f
    mov ${hv_ds}, %eax
    mov %eax, %ss
4:  pop %rax
    swapgs                          /* back to the guest's GS base */
    /* NMI and #MC use their IST stacks and never GS, so the guest RSP
       and GS base from here on are safe for them. */
    mov 40(%rsp), %rsp
    sysretq
3:  pop %rax
    add $16, %rsp                   /* vector and error code */
    swapgs                          /* back to the guest's GS base */
    iretq
2:  pop %rax
    add $16, %rsp
    iretq
    "#,
    cs64 = const super::cpu::GUEST_CS64,
    ds = const super::cpu::GUEST_DS,
    hv_ds = const super::cpu::HV_DS,
    smap = sym super::pv::SMAP,
    options(att_syntax)
);

/// The stack as `trap_common` leaves it: saved registers, then what the stub
/// and the CPU pushed. Guest `syscall`s build the same frame (see `pv`),
/// with [`SYSCALL_VECTOR`] as the vector.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    pub const ZERO: Self = Self {
        r15: 0,
        r14: 0,
        r13: 0,
        r12: 0,
        r11: 0,
        r10: 0,
        r9: 0,
        r8: 0,
        rbp: 0,
        rdi: 0,
        rsi: 0,
        rdx: 0,
        rcx: 0,
        rbx: 0,
        rax: 0,
        vector: 0,
        error_code: 0,
        rip: 0,
        cs: 0,
        rflags: 0,
        rsp: 0,
        ss: 0,
    };
}

/// The PV64 hypercall convention on a `syscall` frame: the number in RAX,
/// arguments in RDI, RSI, RDX, R10, R8, R9, the result in RAX. The only
/// place outside the entry code that names those registers.
impl TrapFrame {
    /// The hypercall number.
    pub fn hypercall_number(&self) -> u64 {
        self.rax
    }

    /// The six argument registers, in ABI order.
    pub fn hypercall_args(&self) -> [u64; 6] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9]
    }

    /// Returns `value` to the guest.
    pub fn set_hypercall_result(&mut self, value: u64) {
        self.rax = value;
    }

    /// Makes the guest issue hypercall `nr` again with `args` when it
    /// next runs: back over the 2-byte `syscall`, as Xen's continuations.
    pub fn reissue_hypercall(&mut self, nr: u64, args: [u64; 6]) {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9] = args;
        self.rax = nr;
        self.rip -= 2;
    }
}

/// The `vector` of a frame built by the syscall entry.
pub const SYSCALL_VECTOR: u64 = 0x100;
/// The `vector` of a frame built by the compat-mode syscall entry (CSTAR).
pub const SYSCALL32_VECTOR: u64 = 0x101;
/// The `vector` of a frame built by the sysenter entry.
pub const SYSENTER_VECTOR: u64 = 0x102;

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 22 * 8);

unsafe extern "C" {
    static trap_stubs: u8;
}

/// The address of the entry stub for `vector`.
pub fn stub_address(vector: u8) -> u64 {
    core::ptr::addr_of!(trap_stubs) as u64 + vector as u64 * 16
}

#[unsafe(no_mangle)]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    super::traps::dispatch(frame);
}

/// The `syscall` entries' way in: a 64-bit `syscall` (a hypercall, or a
/// system call to bounce) goes straight to its handler and the exit,
/// without the vector match every other entry takes; the compat-mode one
/// takes that match.
#[unsafe(no_mangle)]
extern "C" fn syscall_dispatch(frame: &mut TrapFrame) {
    if frame.vector == SYSCALL_VECTOR {
        crate::guest::syscall(frame);
        crate::guest::exit_to_guest(frame);
    } else {
        super::traps::dispatch(frame);
    }
}
