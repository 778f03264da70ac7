//! Shared helpers for the test guests: each binary under `src/bin/` is one
//! PV guest kernel that prints a single result line and shuts down.
//!
//! - [`verdict`]: the result line (`PASS`/`FAIL`/`SKIP` + the guest's
//!   name) and the `ensure!` family that turns a failed check into it;
//! - [`stats`]: min and median of timing samples, and the `BENCH` line;
//! - [`probe`]: run one instruction that is expected to fault and report
//!   what the hypervisor bounced (vector, error code, CR2, frame);
//! - [`hc`]: hypercalls the SDK has no wrapper for, and the register
//!   probe for the hypercall calling convention;
//! - [`scratch`]: a window of guest virtual addresses that holds no Rust
//!   object, whose page-table entries the tests may change freely;
//! - [`frame`]: word access and permission changes for frames a test
//!   allocated for probing;
//! - [`usermode`]: guest user mode with its own system-call entry, which
//!   returns to user mode with `HYPERVISOR_iret` + `VGCF_in_syscall`;
//! - [`compat`]: the guest's own 32-bit code, entered by far jump or
//!   `HYPERVISOR_iret`, and the ways back from it;
//! - [`preempt`]: whether one long hypercall lets the CPU go between
//!   passes (an upcall finds the guest at its `syscall`).
//!
//! The instruction-level code (`unsafe`) is in [`arch`]; the rest is safe.
//! `verdict` and `stats` are pure and tested on the host.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod verdict {
    //! What a test guest concludes, and the one line it prints about it.

    use alloc::string::String;

    /// Why a test stopped before the end.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Stop {
        Fail(String),
        Skip(String),
    }

    /// What a test body returns: `Ok` means every check held.
    pub type Outcome = Result<(), Stop>;

    /// The result line for guest `name`: exactly one line, whatever the
    /// message holds.
    pub fn result_line(name: &str, outcome: &Outcome) -> String {
        let one_line = |text: &str| text.trim().replace(['\n', '\r'], "; ");
        match outcome {
            Ok(()) => alloc::format!("PASS {name}"),
            Err(Stop::Fail(why)) => alloc::format!("FAIL {name}: {}", one_line(why)),
            Err(Stop::Skip(why)) => alloc::format!("SKIP {name}: {}", one_line(why)),
        }
    }

    /// Fails the test with a formatted message.
    #[macro_export]
    macro_rules! fail {
        ($($arg:tt)*) => {
            return Err($crate::verdict::Stop::Fail(alloc::format!($($arg)*)))
        };
    }

    /// Skips the test with a formatted reason.
    #[macro_export]
    macro_rules! skip {
        ($($arg:tt)*) => {
            return Err($crate::verdict::Stop::Skip(alloc::format!($($arg)*)))
        };
    }

    /// Fails the test unless `cond` holds.
    #[macro_export]
    macro_rules! ensure {
        ($cond:expr, $($arg:tt)*) => {
            if !$cond {
                $crate::fail!($($arg)*);
            }
        };
    }

    /// Fails the test unless `got == want`, naming both.
    #[macro_export]
    macro_rules! ensure_eq {
        ($got:expr, $want:expr, $($arg:tt)*) => {
            match (&$got, &$want) {
                (got, want) => {
                    if got != want {
                        $crate::fail!("{}: got {:?}, want {:?}", alloc::format!($($arg)*), got, want);
                    }
                }
            }
        };
    }

    /// Checks that all run to the end: each failed one is remembered by
    /// what it states, and the result line lists them.
    #[derive(Debug)]
    pub struct Checks {
        name: &'static str,
        failed: alloc::vec::Vec<String>,
    }

    impl Checks {
        pub fn new(name: &'static str) -> Self {
            Self {
                name,
                failed: alloc::vec::Vec::new(),
            }
        }

        /// Records `what` (the behaviour the check states) as failed unless
        /// `ok`; returns `ok`.
        pub fn check(&mut self, ok: bool, what: &str) -> bool {
            if !ok {
                self.failed.push(String::from(what));
            }
            ok
        }

        pub fn outcome(&self) -> Outcome {
            if self.failed.is_empty() {
                Ok(())
            } else {
                Err(Stop::Fail(alloc::format!(
                    "not true: {}",
                    self.failed.join("; ")
                )))
            }
        }

        pub fn result_line(&self) -> String {
            result_line(self.name, &self.outcome())
        }

        /// Prints the result line and powers the domain off.
        #[cfg(target_os = "none")]
        pub fn finish(self) -> ! {
            finish(self.name, self.outcome())
        }
    }

    /// Prints the result line and powers the domain off.
    #[cfg(target_os = "none")]
    pub fn finish(name: &str, outcome: Outcome) -> ! {
        pv_guest_sdk::println!("{}", result_line(name, &outcome));
        pv_guest_sdk::sched::poweroff()
    }
}

pub use verdict::Checks;

pub mod stats {
    //! Timing samples: min and median, and the benchmark's output line.

    use alloc::string::String;

    /// Min and median of `samples` (sorted in place); `None` when empty.
    /// An even count takes the lower of the two middle samples, so the
    /// median is always a measured value.
    pub fn min_median(samples: &mut [u64]) -> Option<(u64, u64)> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        Some((samples[0], samples[(samples.len() - 1) / 2]))
    }

    /// One benchmark row, as `cargo xtask bench` parses it.
    pub fn bench_line(row: &str, ns: (u64, u64), cycles: (u64, u64)) -> String {
        alloc::format!(
            "BENCH {row} min_ns={} median_ns={} min_cycles={} median_cycles={}",
            ns.0,
            ns.1,
            cycles.0,
            cycles.1
        )
    }
}

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod arch {
    //! Instructions the tests run on purpose: raw hypercalls, the register
    //! probe around one, faulting and privileged instructions with known
    //! resume points, the TSC, and the user-mode entry and syscall stub.
    //!
    //! Every probe is a tiny function in `.text.tg_probes` with two global
    //! labels, `<name>_fault` (the instruction expected to fault) and
    //! `<name>_resume` (where a handler continues); they clobber only RAX
    //! and the flags, so a handler that moves RIP to the resume label
    //! returns cleanly to Rust.

    use core::arch::{asm, global_asm};

    use abi::Hypercall;
    use abi::hypercall::STUB_SIZE;

    /// Issues hypercall `nr` (any number, even one with no stub meaning)
    /// through the hypercall page: the SDK's one raw hypercall.
    ///
    /// # Safety
    /// Pointer arguments must suit the operation and must not let the
    /// hypervisor change memory or mappings Rust code relies on.
    pub use pv_guest_sdk::hypercall::raw as hypercall;

    /// Issues hypercall `nr` with the `syscall` instruction itself, not
    /// through the hypercall page (which only exists for numbers below
    /// 128): RCX and R11 are lost.
    ///
    /// # Safety
    /// As [`hypercall`].
    pub unsafe fn hypercall_direct(nr: u64, a1: u64) -> i64 {
        let ret: i64;
        // SAFETY: from guest kernel mode `syscall` enters the hypervisor's
        // hypercall path, which returns to the next instruction with RCX
        // and R11 clobbered (declared). The caller vouches for the
        // arguments.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") nr => ret,
                inlateout("rdi") a1 => _,
                lateout("rsi") _,
                lateout("rdx") _,
                lateout("r10") _,
                lateout("r8") _,
                lateout("r9") _,
                out("rcx") _,
                out("r11") _,
            );
        }
        ret
    }

    /// Registers after [`hypercall_observed`], which loaded each with
    /// [`sentinel`] of its index before the call.
    #[derive(Clone, Copy, Debug, Default)]
    #[repr(C)]
    pub struct Observed {
        pub rbx: u64,
        pub rcx: u64,
        pub rdx: u64,
        pub rbp: u64,
        pub r8: u64,
        pub r9: u64,
        pub r10: u64,
        pub r11: u64,
        pub r12: u64,
        pub r13: u64,
        pub r14: u64,
        pub r15: u64,
    }

    impl Observed {
        pub const NAMES: [&'static str; 12] = [
            "rbx", "rcx", "rdx", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
        ];

        pub fn values(&self) -> [u64; 12] {
            [
                self.rbx, self.rcx, self.rdx, self.rbp, self.r8, self.r9, self.r10, self.r11,
                self.r12, self.r13, self.r14, self.r15,
            ]
        }
    }

    /// The value register `index` of [`Observed`] holds going in.
    pub const fn sentinel(index: usize) -> u64 {
        0x5e47_1e10_0000_0000 | ((index as u64 + 1) * 0x0101)
    }

    global_asm!(
        r#"
        .pushsection .text.tg_probes, "ax", @progbits

        # i64 tg_hypercall_observed(u64 nr, u64 a1, u64 a2, Observed *out)
        # Calls the stub for `nr` with two arguments and every other
        # general register (bar RAX, RSP, RDI, RSI) set to a sentinel, then
        # stores those registers into *out.
        .globl tg_hypercall_observed
    tg_hypercall_observed:
        push %rbx
        push %rbp
        push %r12
        push %r13
        push %r14
        push %r15
        push %rcx                       # out
        mov %rdi, %rax
        shl $5, %rdi
        lea hypercall_page(%rip), %r11
        add %r11, %rdi
        push %rdi                       # the stub's address
        mov %rsi, %rdi
        mov %rdx, %rsi
        movabs ${s0}, %rbx
        movabs ${s1}, %rcx
        movabs ${s2}, %rdx
        movabs ${s3}, %rbp
        movabs ${s4}, %r8
        movabs ${s5}, %r9
        movabs ${s6}, %r10
        movabs ${s7}, %r11
        movabs ${s8}, %r12
        movabs ${s9}, %r13
        movabs ${s10}, %r14
        movabs ${s11}, %r15
        call *(%rsp)
        add $8, %rsp
        xchg %rdi, (%rsp)               # RDI is a parameter register: free
        mov %rbx, 0(%rdi)
        mov %rcx, 8(%rdi)
        mov %rdx, 16(%rdi)
        mov %rbp, 24(%rdi)
        mov %r8, 32(%rdi)
        mov %r9, 40(%rdi)
        mov %r10, 48(%rdi)
        mov %r11, 56(%rdi)
        mov %r12, 64(%rdi)
        mov %r13, 72(%rdi)
        mov %r14, 80(%rdi)
        mov %r15, 88(%rdi)
        add $8, %rsp
        pop %r15
        pop %r14
        pop %r13
        pop %r12
        pop %rbp
        pop %rbx
        ret

        .macro tg_probe name
        .globl \name, \name\()_fault, \name\()_resume
        .endm

        tg_probe tg_probe_read
    tg_probe_read:
    tg_probe_read_fault:
        mov (%rdi), %rax
    tg_probe_read_resume:
        ret

        # The read with the direction flag set (cleared again on the way
        # out): the hypervisor must not take the guest's DF into its own
        # copies of the bounce frame.
        tg_probe tg_probe_read_df
    tg_probe_read_df:
        std
    tg_probe_read_df_fault:
        mov (%rdi), %rax
    tg_probe_read_df_resume:
        cld
        ret

        tg_probe tg_probe_write
    tg_probe_write:
        xor %eax, %eax
    tg_probe_write_fault:
        mov %rsi, (%rdi)
    tg_probe_write_resume:
        ret

        # Calls the code at RDI; a fault there resumes after the call once
        # the handler has popped the return address.
        tg_probe tg_probe_exec
    tg_probe_exec:
        xor %eax, %eax
        call *%rdi
    tg_probe_exec_resume:
        ret
    tg_probe_exec_fault:
        ud2                             # never reached: the label is a marker

        tg_probe tg_probe_ud2
    tg_probe_ud2:
        xor %eax, %eax
    tg_probe_ud2_fault:
        ud2
    tg_probe_ud2_resume:
        ret

        tg_probe tg_probe_cli
    tg_probe_cli:
        xor %eax, %eax
    tg_probe_cli_fault:
        cli
    tg_probe_cli_resume:
        ret

        tg_probe tg_probe_hlt
    tg_probe_hlt:
        xor %eax, %eax
    tg_probe_hlt_fault:
        hlt
    tg_probe_hlt_resume:
        ret

        tg_probe tg_probe_out80
    tg_probe_out80:
        xor %eax, %eax
    tg_probe_out80_fault:
        outb %al, $0x80
    tg_probe_out80_resume:
        ret

        tg_probe tg_probe_mov_cr3
    tg_probe_mov_cr3:
        xor %eax, %eax
    tg_probe_mov_cr3_fault:
        mov %rdi, %cr3
    tg_probe_mov_cr3_resume:
        ret

        # int3 is a trap: the bounce frame's RIP is already the resume label.
        tg_probe tg_probe_int3
    tg_probe_int3:
        xor %eax, %eax
    tg_probe_int3_fault:
        int3
    tg_probe_int3_resume:
        ret

        tg_probe tg_probe_div0
    tg_probe_div0:
        push %rdx
        push %rcx
        xor %edx, %edx
        mov $1, %eax
        xor %ecx, %ecx
    tg_probe_div0_fault:
        div %rcx
    tg_probe_div0_resume:
        pop %rcx
        pop %rdx
        ret

        .popsection
        "#,
        s0 = const sentinel(0),
        s1 = const sentinel(1),
        s2 = const sentinel(2),
        s3 = const sentinel(3),
        s4 = const sentinel(4),
        s5 = const sentinel(5),
        s6 = const sentinel(6),
        s7 = const sentinel(7),
        s8 = const sentinel(8),
        s9 = const sentinel(9),
        s10 = const sentinel(10),
        s11 = const sentinel(11),
        options(att_syntax)
    );

    unsafe extern "C" {
        fn tg_hypercall_observed(nr: u64, a1: u64, a2: u64, out: *mut Observed) -> i64;
    }

    /// Calls hypercall `nr` with two arguments and returns its result with
    /// the registers as the call left them.
    ///
    /// # Safety
    /// As [`hypercall`].
    pub unsafe fn hypercall_observed(nr: Hypercall, a1: u64, a2: u64) -> (i64, Observed) {
        let mut out = Observed::default();
        // SAFETY: the stub preserves what the System V ABI needs (the
        // assembly saves the callee-saved registers it fills); `out` is
        // live. The caller vouches for the arguments.
        let ret = unsafe { tg_hypercall_observed(nr as u64, a1, a2, &mut out) };
        (ret, out)
    }

    macro_rules! probes {
        ($($name:ident => $sym:ident, $fault:ident, $resume:ident;)*) => {
            unsafe extern "C" {
                $(
                    fn $sym(arg0: u64, arg1: u64) -> u64;
                    static $fault: u8;
                    static $resume: u8;
                )*
            }

            /// The instructions [`run_probe`] can execute.
            #[derive(Clone, Copy, Debug, PartialEq, Eq)]
            pub enum Probe { $($name,)* }

            impl Probe {
                /// Address of the instruction expected to fault.
                pub fn fault_address(self) -> u64 {
                    match self { $(Probe::$name => (&raw const $fault) as u64,)* }
                }

                /// Where a handler resumes execution.
                pub fn resume_address(self) -> u64 {
                    match self { $(Probe::$name => (&raw const $resume) as u64,)* }
                }

                fn entry(self) -> unsafe extern "C" fn(u64, u64) -> u64 {
                    match self { $(Probe::$name => $sym,)* }
                }
            }
        };
    }

    probes! {
        Read => tg_probe_read, tg_probe_read_fault, tg_probe_read_resume;
        ReadDf => tg_probe_read_df, tg_probe_read_df_fault, tg_probe_read_df_resume;
        Write => tg_probe_write, tg_probe_write_fault, tg_probe_write_resume;
        Exec => tg_probe_exec, tg_probe_exec_fault, tg_probe_exec_resume;
        Ud2 => tg_probe_ud2, tg_probe_ud2_fault, tg_probe_ud2_resume;
        Cli => tg_probe_cli, tg_probe_cli_fault, tg_probe_cli_resume;
        Hlt => tg_probe_hlt, tg_probe_hlt_fault, tg_probe_hlt_resume;
        Out80 => tg_probe_out80, tg_probe_out80_fault, tg_probe_out80_resume;
        MovCr3 => tg_probe_mov_cr3, tg_probe_mov_cr3_fault, tg_probe_mov_cr3_resume;
        Int3 => tg_probe_int3, tg_probe_int3_fault, tg_probe_int3_resume;
        Div0 => tg_probe_div0, tg_probe_div0_fault, tg_probe_div0_resume;
    }

    /// Executes `probe` with its arguments; returns RAX.
    ///
    /// # Safety
    /// A handler for whatever the probe raises must be installed, and the
    /// probe's effect must be harmless: `Write` stores to `arg0`, `Exec`
    /// calls `arg0`, `MovCr3` loads `arg0` into CR3 if the hypervisor
    /// allows it.
    pub unsafe fn run_probe(probe: Probe, arg0: u64, arg1: u64) -> u64 {
        // SAFETY: the probes clobber only RAX and flags and return; the
        // caller vouches for the effect and for the fault handling.
        unsafe { (probe.entry())(arg0, arg1) }
    }

    /// Reads the time-stamp counter, ordered after earlier loads (lfence)
    /// so a measurement does not start early.
    #[inline(always)]
    pub fn rdtsc() -> u64 {
        let (lo, hi): (u32, u32);
        // SAFETY: lfence and rdtsc only order execution and read the TSC.
        unsafe { asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
        (hi as u64) << 32 | lo as u64
    }

    /// Reads (volatile) a `u64` the hypervisor may change (the M2P, a page
    /// table mapped read-only).
    ///
    /// # Safety
    /// `va` must be mapped and readable, and 8-byte aligned.
    pub unsafe fn read_volatile_u64(va: u64) -> u64 {
        // SAFETY: the caller guarantees a readable mapping.
        unsafe { core::ptr::read_volatile(va as *const u64) }
    }

    /// Writes (volatile) a `u64`.
    ///
    /// # Safety
    /// `va` must be mapped writable, aligned and hold no Rust object.
    pub unsafe fn write_volatile_u64(va: u64, value: u64) {
        // SAFETY: the caller guarantees a writable, unused mapping.
        unsafe { core::ptr::write_volatile(va as *mut u64, value) }
    }

    // --- user mode ------------------------------------------------------

    /// The iret `flags` word of a return from a system call: Xen's
    /// `VGCF_in_syscall` (return through SYSRET; RCX and R11 are not
    /// restored from the frame).
    pub const IRET_IN_SYSCALL: u64 = abi::xen::VGCF_IN_SYSCALL;

    global_asm!(
        r#"
        .pushsection .text.tg_user, "ax", @progbits

        # u64 tg_user_enter(u64 rip, u64 rsp, u64 *saved_rsp)
        # Saves the kernel's callee-saved registers and stack pointer, then
        # irets to user mode (CS with RPL 3: the hypervisor switches to the
        # user page tables).
        .globl tg_user_enter
    tg_user_enter:
        push %rbx
        push %rbp
        push %r12
        push %r13
        push %r14
        push %r15
        mov %rsp, (%rdx)
        pushq ${user_ss}
        push %rsi
        pushq $0x202                    # IF: upcalls on in user mode
        pushq ${user_cs}
        push %rdi
        pushq $0                        # flags: a full iret
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
        jmp hypercall_page + {iret}

        # ! tg_user_leave(u64 saved_rsp, u64 value): back into tg_user_enter's
        # caller, which sees `value` returned.
        .globl tg_user_leave
    tg_user_leave:
        mov %rdi, %rsp
        mov %rsi, %rax
        pop %r15
        pop %r14
        pop %r13
        pop %r12
        pop %rbp
        pop %rbx
        ret

        # The CALLBACKTYPE_SYSCALL entry. Frame on the stack_switch stack:
        # rcx, r11, rip, cs, rflags, rsp, ss. Saves the registers as the
        # SDK's TrapFrame (vector 0x102, error code 0), calls the Rust
        # dispatcher, and returns to user mode with VGCF_in_syscall.
        .globl tg_syscall_entry
    tg_syscall_entry:
        pop %rcx
        pop %r11
        pushq $0
        pushq $0x102
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
        add $16, %rsp
        pushq ${in_syscall}
        jmp hypercall_page + {iret}

        .popsection
        "#,
        user_ss = const abi::xen::FLAT_USER_SS64 as u64 | 3,
        user_cs = const abi::xen::FLAT_USER_CS64 as u64 | 3,
        iret = const Hypercall::Iret as usize * STUB_SIZE,
        in_syscall = const IRET_IN_SYSCALL,
        dispatch = sym crate::usermode::dispatch,
        options(att_syntax)
    );

    unsafe extern "C" {
        fn tg_user_enter(rip: u64, rsp: u64, saved_rsp: *mut u64) -> u64;
        fn tg_user_leave(saved_rsp: u64, value: u64) -> !;
        fn tg_syscall_entry();
    }

    pub fn syscall_entry() -> u64 {
        tg_syscall_entry as *const () as u64
    }

    /// Enters user mode at `rip` with stack `rsp`; returns the value a
    /// handler passes to [`user_leave`].
    ///
    /// # Safety
    /// The user page tables, the kernel stack for bounces from user mode
    /// (`stack_switch`) and the syscall callback must be set up, so that
    /// every way out of user mode reaches the kernel; `saved_rsp` must stay
    /// valid until `user_leave` is called with its value.
    pub unsafe fn user_enter(rip: u64, rsp: u64, saved_rsp: *mut u64) -> u64 {
        // SAFETY: forwarded from the caller.
        unsafe { tg_user_enter(rip, rsp, saved_rsp) }
    }

    /// Returns `value` from the pending [`user_enter`] whose saved stack
    /// pointer is `saved_rsp`, abandoning the current stack.
    ///
    /// # Safety
    /// `saved_rsp` must be what a `user_enter` that has not returned yet
    /// stored, and the current stack must not be that one.
    pub unsafe fn user_leave(saved_rsp: u64, value: u64) -> ! {
        // SAFETY: forwarded from the caller.
        unsafe { tg_user_leave(saved_rsp, value) }
    }

    /// A 16 KiB stack for bounces from user mode, page aligned.
    #[repr(C, align(4096))]
    pub struct KernelStack(pub core::cell::UnsafeCell<[u8; 16384]>);

    // SAFETY: Rust code never reads or writes the bytes; only the
    // hypervisor's bounce frames and the code running on the stack do.
    unsafe impl Sync for KernelStack {}

    pub static USER_TRAP_STACK: KernelStack = KernelStack(core::cell::UnsafeCell::new([0; 16384]));

    /// Registers the user-mode trap stack and the syscall entry.
    pub fn register_user_entry() -> pv_guest_sdk::Result<()> {
        let top = USER_TRAP_STACK.0.get() as u64 + 16384;
        // SAFETY: the stack is reserved for bounces from user mode, and
        // tg_syscall_entry handles the syscall callback's frame.
        unsafe {
            pv_guest_sdk::hypercall::stack_switch(abi::xen::FLAT_KERNEL_SS64, top)?;
            pv_guest_sdk::hypercall::callback_register(
                abi::ops::CALLBACKTYPE_SYSCALL,
                syscall_entry(),
                true,
            )
        }
    }

    /// A function pointer in an atomic word (0: none), readable from the
    /// syscall entry without a lock.
    pub struct HandlerCell(core::sync::atomic::AtomicUsize);

    impl Default for HandlerCell {
        fn default() -> Self {
            Self::new()
        }
    }

    impl HandlerCell {
        pub const fn new() -> Self {
            Self(core::sync::atomic::AtomicUsize::new(0))
        }

        pub fn set(&self, handler: crate::usermode::Handler) {
            self.0
                .store(handler as usize, core::sync::atomic::Ordering::SeqCst);
        }

        pub fn get(&self) -> Option<crate::usermode::Handler> {
            let raw = self.0.load(core::sync::atomic::Ordering::SeqCst);
            // SAFETY: every non-zero value stored came from a `Handler` in
            // `set`; function pointers are address-sized and never null.
            (raw != 0)
                .then(|| unsafe { core::mem::transmute::<usize, crate::usermode::Handler>(raw) })
        }
    }

    /// A position-independent piece of user code in the image's `.text`,
    /// copied into a user page to run.
    #[derive(Clone, Copy, Debug)]
    pub struct UserProgram {
        start: u64,
        end: u64,
    }

    impl UserProgram {
        pub fn bytes(&self) -> &'static [u8] {
            assert!(self.end > self.start && self.end - self.start <= 4096);
            // SAFETY: start..end is a range of the image's text (two labels
            // of one global_asm block, below), mapped and never written.
            unsafe {
                core::slice::from_raw_parts(
                    self.start as *const u8,
                    (self.end - self.start) as usize,
                )
            }
        }

        /// The user address of `label` (an address inside this program)
        /// once the program is loaded at `base`.
        pub fn relocate(&self, label: u64, base: u64) -> u64 {
            assert!((self.start..self.end).contains(&label));
            base + (label - self.start)
        }
    }

    /// The system calls the user programs make (RAX), with RDI and RSI as
    /// arguments.
    pub mod sys {
        /// Nothing: return at once.
        pub const NULL: u64 = 0;
        /// RDI = a value; the kernel answers 2 * RDI + 7.
        pub const PING: u64 = 1;
        /// End the session with RDI.
        pub const EXIT: u64 = 2;
        /// A check in user mode failed: RDI = which, RSI = RAX then, RDX =
        /// the round.
        pub const FAIL: u64 = 3;
    }

    /// Rounds the ping-pong program plays.
    pub const PINGPONG_ROUNDS: u64 = 16;
    /// What the ping-pong program loads into the registers the kernel must
    /// leave alone across `syscall` (RBX, RBP, RDX, RSI, R8, R9, R10, R15).
    pub const fn user_sentinel(index: u64) -> u64 {
        0x005e_0000_0000_0000 | index << 8 | 0x33
    }

    /// Where the bench program finds its round count (word 0) and writes
    /// one TSC delta per round (words 1..).
    pub const USER_DATA: u64 = 0x60_0000;
    /// The kernel address the peek program reads from user mode.
    pub const PEEK_TARGET: u64 = pv_guest_sdk::layout::VIRT_BASE;

    global_asm!(
        r#"
        .pushsection .text.tg_user_programs, "ax", @progbits

        # Ping-pong: PINGPONG_ROUNDS rounds of `syscall` PING with a value,
        # checking after each that the answer is right and that RSP and
        # every register but RAX, RCX and R11 came back unchanged; then
        # EXIT with the number of rounds. A failed check makes a FAIL call
        # naming it (1 RSP, 2 RDI, 3 the answer, 4.. the sentinels).
        .globl tg_user_pingpong, tg_user_pingpong_after_syscall, tg_user_pingpong_end
    tg_user_pingpong:
        xor %r12d, %r12d
    1:  lea 0x1000(%r12,%r12,2), %rdi
        mov %rdi, %r13
        mov %rsp, %r14
        movabs ${u0}, %rbx
        movabs ${u1}, %rbp
        movabs ${u2}, %rdx
        movabs ${u3}, %rsi
        movabs ${u4}, %r8
        movabs ${u5}, %r9
        movabs ${u6}, %r10
        movabs ${u7}, %r15
        mov ${ping}, %eax
        syscall
    tg_user_pingpong_after_syscall:
        mov $1, %ecx
        cmp %r14, %rsp
        jne 9f
        mov $2, %ecx
        cmp %r13, %rdi
        jne 9f
        mov $3, %ecx
        lea 7(%r13,%r13,1), %r11
        cmp %r11, %rax
        jne 9f
        mov $4, %ecx
        movabs ${u0}, %r11
        cmp %r11, %rbx
        jne 9f
        mov $5, %ecx
        movabs ${u1}, %r11
        cmp %r11, %rbp
        jne 9f
        mov $6, %ecx
        movabs ${u2}, %r11
        cmp %r11, %rdx
        jne 9f
        mov $7, %ecx
        movabs ${u3}, %r11
        cmp %r11, %rsi
        jne 9f
        mov $8, %ecx
        movabs ${u4}, %r11
        cmp %r11, %r8
        jne 9f
        mov $9, %ecx
        movabs ${u5}, %r11
        cmp %r11, %r9
        jne 9f
        mov $10, %ecx
        movabs ${u6}, %r11
        cmp %r11, %r10
        jne 9f
        mov $11, %ecx
        movabs ${u7}, %r11
        cmp %r11, %r15
        jne 9f
        inc %r12
        cmp ${rounds}, %r12
        jb 1b
        mov %r12, %rdi
        mov ${exit}, %eax
        syscall
        ud2
    9:  mov %rcx, %rdi
        mov %rax, %rsi
        mov %r12, %rdx
        mov ${fail}, %eax
        syscall
        ud2
    tg_user_pingpong_end:

        # Peek: reads a kernel address (which the user page tables do not
        # map), then EXITs with what it read (the kernel's fault handler
        # resumes at the label and leaves a marker in RAX).
        .globl tg_user_peek, tg_user_peek_fault, tg_user_peek_resume, tg_user_peek_end
    tg_user_peek:
        movabs ${peek}, %rdi
    tg_user_peek_fault:
        mov (%rdi), %rax
    tg_user_peek_resume:
        mov %rax, %rdi
        mov ${exit}, %eax
        syscall
        ud2
    tg_user_peek_end:

        # Bench: word 0 of USER_DATA rounds of an empty `syscall`, each
        # timed with the TSC into words 1.., then EXIT.
        .globl tg_user_bench, tg_user_bench_end
    tg_user_bench:
        movabs ${data}, %rbx
        mov (%rbx), %r12
        xor %r14d, %r14d
    1:  lfence
        rdtsc
        shl $32, %rdx
        or %rdx, %rax
        mov %rax, %r15
        mov ${null}, %eax
        syscall
        lfence
        rdtsc
        shl $32, %rdx
        or %rdx, %rax
        sub %r15, %rax
        mov %rax, 8(%rbx,%r14,8)
        inc %r14
        cmp %r12, %r14
        jb 1b
        mov %r14, %rdi
        mov ${exit}, %eax
        syscall
        ud2
    tg_user_bench_end:

        .popsection
        "#,
        u0 = const user_sentinel(0),
        u1 = const user_sentinel(1),
        u2 = const user_sentinel(2),
        u3 = const user_sentinel(3),
        u4 = const user_sentinel(4),
        u5 = const user_sentinel(5),
        u6 = const user_sentinel(6),
        u7 = const user_sentinel(7),
        ping = const sys::PING,
        exit = const sys::EXIT,
        fail = const sys::FAIL,
        null = const sys::NULL,
        rounds = const PINGPONG_ROUNDS,
        peek = const PEEK_TARGET,
        data = const USER_DATA,
        options(att_syntax)
    );

    unsafe extern "C" {
        static tg_user_pingpong: u8;
        static tg_user_pingpong_after_syscall: u8;
        static tg_user_pingpong_end: u8;
        static tg_user_peek: u8;
        static tg_user_peek_fault: u8;
        static tg_user_peek_resume: u8;
        static tg_user_peek_end: u8;
        static tg_user_bench: u8;
        static tg_user_bench_end: u8;
    }

    pub fn pingpong() -> UserProgram {
        UserProgram {
            start: (&raw const tg_user_pingpong) as u64,
            end: (&raw const tg_user_pingpong_end) as u64,
        }
    }

    /// The instruction after the ping-pong program's `syscall`.
    pub fn pingpong_after_syscall() -> u64 {
        (&raw const tg_user_pingpong_after_syscall) as u64
    }

    pub fn peek() -> UserProgram {
        UserProgram {
            start: (&raw const tg_user_peek) as u64,
            end: (&raw const tg_user_peek_end) as u64,
        }
    }

    /// The peek program's faulting load and the instruction after it.
    pub fn peek_labels() -> (u64, u64) {
        (
            (&raw const tg_user_peek_fault) as u64,
            (&raw const tg_user_peek_resume) as u64,
        )
    }

    pub fn bench() -> UserProgram {
        UserProgram {
            start: (&raw const tg_user_bench) as u64,
            end: (&raw const tg_user_bench_end) as u64,
        }
    }

    /// Unmaps `va`, which must be in the scratch window.
    pub fn unmap_scratch(va: u64) -> Result<u64, pv_guest_sdk::mm::MapError> {
        assert!(
            crate::scratch::contains(va),
            "{va:#x} is outside the scratch window"
        );
        // SAFETY: no Rust object lives in the scratch window.
        unsafe { pv_guest_sdk::mm::unmap(va) }
    }
}

#[cfg(target_os = "none")]
pub mod probe {
    //! Runs one instruction that is expected to trap, and reports what the
    //! hypervisor bounced to the guest kernel.

    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use pv_guest_sdk::traps::{self, Exception, TrapFrame};

    pub use crate::arch::Probe;

    /// What the exception handler saw.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Trapped {
        pub vector: u8,
        pub error_code: u64,
        /// `vcpu_info.arch.cr2`, for page faults.
        pub cr2: Option<u64>,
        /// The bounce frame's RIP, CS (with the saved upcall mask in bits
        /// 32-39), RFLAGS and RSP.
        pub rip: u64,
        pub cs: u64,
        pub rflags: u64,
        pub rsp: u64,
        /// Whether upcalls were masked while the handler ran (the trap
        /// table asks for it).
        pub masked_in_handler: bool,
    }

    impl Trapped {
        pub fn from_user(&self) -> bool {
            self.cs & 3 == 3
        }
    }

    /// Where the armed probe resumes (0: no probe armed).
    static RESUME: AtomicU64 = AtomicU64::new(0);
    /// Pop the return address too (`Exec`: the fault is in the callee).
    static POP_RETURN: AtomicBool = AtomicBool::new(false);
    static CAUGHT: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
    static HAS_CAUGHT: AtomicBool = AtomicBool::new(false);

    /// Exceptions a probe may raise: all but #DB, NMI, #DF and #MC.
    const VECTORS: [u8; 13] = [0, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 16, 17];

    fn catch(exception: &Exception, frame: &mut TrapFrame) -> bool {
        let resume = RESUME.swap(0, Ordering::SeqCst);
        if resume == 0 {
            return false;
        }
        let values = [
            exception.vector as u64,
            exception.error_code,
            exception.cr2.map_or(u64::MAX, |c| c),
            frame.rip,
            frame.cs,
            frame.rflags,
            frame.rsp,
            !pv_guest_sdk::events::enabled() as u64,
        ];
        for (slot, value) in CAUGHT.iter().zip(values) {
            slot.store(value, Ordering::SeqCst);
        }
        HAS_CAUGHT.store(true, Ordering::SeqCst);
        if POP_RETURN.load(Ordering::SeqCst) {
            frame.rsp += 8;
        }
        frame.rip = resume;
        true
    }

    /// Installs the probe handler for every vector a probe may raise.
    pub fn install() {
        for vector in VECTORS {
            traps::set_handler(vector, catch);
        }
    }

    /// Makes the next exception resume at `resume` (popping a return
    /// address first with `pop_return`) and be recorded for [`take`].
    /// Needs [`install`] first.
    pub fn arm(resume: u64, pop_return: bool) {
        HAS_CAUGHT.store(false, Ordering::SeqCst);
        POP_RETURN.store(pop_return, Ordering::SeqCst);
        RESUME.store(resume, Ordering::SeqCst);
    }

    /// What the armed handler caught, if anything; disarms.
    pub fn take() -> Option<Trapped> {
        RESUME.store(0, Ordering::SeqCst);
        if !HAS_CAUGHT.swap(false, Ordering::SeqCst) {
            return None;
        }
        let v: [u64; 8] = core::array::from_fn(|i| CAUGHT[i].load(Ordering::SeqCst));
        Some(Trapped {
            vector: v[0] as u8,
            error_code: v[1],
            cr2: (v[2] != u64::MAX).then_some(v[2]),
            rip: v[3],
            cs: v[4],
            rflags: v[5],
            rsp: v[6],
            masked_in_handler: v[7] != 0,
        })
    }

    /// Runs `probe`: `Ok(rax)` if nothing trapped, else what trapped.
    /// Needs [`install`] first.
    ///
    /// `Read` reads `arg0`, `Write` stores `arg1` at `arg0`, `Exec` calls
    /// `arg0`, `MovCr3` loads `arg0` into CR3: the caller picks addresses
    /// and values for which success would be harmless too (a page the
    /// test owns, the scratch window, a CR3 value the hypervisor must
    /// refuse).
    pub fn run(probe: Probe, arg0: u64, arg1: u64) -> Result<u64, Trapped> {
        arm(probe.resume_address(), probe == Probe::Exec);
        #[allow(unsafe_code)]
        // SAFETY: `catch` handles every vector the probe can raise and
        // resumes at its label; the caller picked harmless arguments (see
        // above).
        let rax = unsafe { crate::arch::run_probe(probe, arg0, arg1) };
        match take() {
            None => Ok(rax),
            Some(trapped) => Err(trapped),
        }
    }

    /// Reads `va`, catching the fault.
    pub fn read(va: u64) -> Result<u64, Trapped> {
        run(Probe::Read, va, 0)
    }

    /// Writes `value` at `va` (which must hold no Rust object), catching
    /// the fault.
    pub fn write(va: u64, value: u64) -> Result<(), Trapped> {
        run(Probe::Write, va, value).map(drop)
    }
}

#[cfg(target_os = "none")]
pub mod hc {
    //! Hypercalls the SDK does not wrap (or wraps with types that cannot
    //! express a wrong call), returning the raw RAX.

    use abi::Hypercall;
    use abi::event_channel::{self as evtchn, BindIpi, Port, Status};
    use abi::xen::{DOMID_SELF, MmuUpdate, MmuextOp, MulticallEntry};

    use crate::arch::hypercall;

    fn addr<T>(value: &T) -> u64 {
        value as *const T as u64
    }

    fn addr_mut<T>(value: &mut T) -> u64 {
        value as *mut T as u64
    }

    /// `HYPERVISOR_xen_version(cmd, buf)` into a buffer of ours.
    pub fn xen_version(cmd: u32, buf: &mut [u8]) -> i64 {
        #[allow(unsafe_code)]
        // SAFETY: `buf` is live; the hypervisor writes at most the size of
        // the command's structure, which the caller sized `buf` for.
        unsafe {
            hypercall(
                Hypercall::XenVersion as u32,
                [cmd as u64, buf.as_mut_ptr() as u64, 0, 0, 0],
            )
        }
    }

    /// `HYPERVISOR_xen_version(cmd, NULL)`: for commands without a buffer,
    /// or unknown ones.
    pub fn xen_version_null(cmd: u32) -> i64 {
        #[allow(unsafe_code)]
        // SAFETY: no buffer; a hypervisor that wrote through NULL would
        // fault in its own copy routine.
        unsafe {
            hypercall(Hypercall::XenVersion as u32, [cmd as u64, 0, 0, 0, 0])
        }
    }

    /// A hypercall whose only pointer argument, `args[pointer]`, is an
    /// address the guest does not own (the hypervisor's hole, a
    /// non-canonical address, or an unmapped page).
    pub fn with_bad_pointer(nr: Hypercall, args: [u64; 5], pointer: usize) -> i64 {
        let bad = args[pointer];
        let in_hole =
            (abi::xen::HYPERVISOR_VIRT_START..abi::xen::HYPERVISOR_VIRT_END).contains(&bad);
        let canonical = ((bad as i64) << 16 >> 16) == bad as i64;
        let unmapped = pv_guest_sdk::mm::translate(bad).is_none();
        assert!(
            in_hole || !canonical || unmapped,
            "{bad:#x} is guest memory"
        );
        #[allow(unsafe_code)]
        // SAFETY: the pointer names no memory of ours (checked above), so
        // no Rust object can change; the other arguments are numbers.
        unsafe {
            hypercall(nr as u32, args)
        }
    }

    /// `mmu_update` of `count` requests at `va`, an address in the
    /// scratch window (`crate::scratch`), where the requests may run into
    /// an unmapped page.
    pub fn mmu_update_at(va: u64, count: u32) -> (i64, u32) {
        assert!(
            crate::scratch::contains(va),
            "{va:#x} is not in the scratch window"
        );
        let mut done = u32::MAX;
        #[allow(unsafe_code)]
        // SAFETY: the requests lie in the scratch window, which no Rust
        // object occupies; `done` is live. The tests' requests target the
        // scratch window's L1.
        let ret = unsafe {
            hypercall(
                Hypercall::MmuUpdate as u32,
                [va, count.into(), addr_mut(&mut done), DOMID_SELF as u64, 0],
            )
        };
        (ret, done)
    }

    /// `update_va_mapping` of an address in the hypervisor's hole, which
    /// the guest does not own (the hypervisor must refuse).
    pub fn update_va_mapping_in_hole(va: u64, pte: u64) -> i64 {
        assert!((abi::xen::HYPERVISOR_VIRT_START..abi::xen::HYPERVISOR_VIRT_END).contains(&va));
        #[allow(unsafe_code)]
        // SAFETY: no Rust object lives in the hypervisor's hole.
        unsafe {
            hypercall(
                Hypercall::UpdateVaMapping as u32,
                [va, pte, abi::xen::UVMF_INVLPG, 0, 0],
            )
        }
    }

    /// A hypercall number past the hypercall page (all arguments 0),
    /// issued with `syscall` directly.
    pub fn numbered_direct(nr: u64) -> i64 {
        #[allow(unsafe_code)]
        // SAFETY: only numbers the hypervisor does not implement are
        // passed, and no pointers.
        unsafe {
            crate::arch::hypercall_direct(nr, 0)
        }
    }

    /// `HYPERVISOR_hypercall(cmd, NULL)` with an unknown `cmd`: the
    /// hypervisor must answer without reading memory.
    pub fn unknown_op(nr: Hypercall, cmd: u64) -> i64 {
        #[allow(unsafe_code)]
        // SAFETY: no pointer argument.
        unsafe {
            hypercall(nr as u32, [cmd, 0, 0, 0, 0])
        }
    }

    /// A hypercall number with nothing behind it (all arguments 0).
    pub fn numbered(nr: u32) -> i64 {
        #[allow(unsafe_code)]
        // SAFETY: only numbers the hypervisor does not implement are
        // passed, and no pointers.
        unsafe {
            hypercall(nr, [0; 5])
        }
    }

    /// `HYPERVISOR_multicall(entries, n)`.
    pub fn multicall(entries: &mut [MulticallEntry]) -> i64 {
        #[allow(unsafe_code)]
        // SAFETY: the entries are live; the callers build entries whose
        // own pointers (if any) are to live buffers.
        unsafe {
            hypercall(
                Hypercall::Multicall as u32,
                [entries.as_mut_ptr() as u64, entries.len() as u64, 0, 0, 0],
            )
        }
    }

    /// `HYPERVISOR_mmu_update` on requests the caller built; returns the
    /// result and the `done` count.
    ///
    /// Safe to call because every request the tests make targets the
    /// scratch window's L1 or a frame the hypervisor must refuse.
    pub fn mmu_update(requests: &[MmuUpdate], foreign: u16) -> (i64, u32) {
        let mut done = u32::MAX;
        #[allow(unsafe_code)]
        // SAFETY: see above; `done` and the requests are live.
        let ret = unsafe {
            hypercall(
                Hypercall::MmuUpdate as u32,
                [
                    addr(&requests[0]),
                    requests.len() as u64,
                    addr_mut(&mut done),
                    foreign as u64,
                    0,
                ],
            )
        };
        (ret, done)
    }

    /// `HYPERVISOR_mmuext_op`; returns the result and the `done` count.
    /// Callers pass operations that change no mapping Rust uses (pins,
    /// unpins, flushes, unknown commands).
    pub fn mmuext_op(ops: &[MmuextOp]) -> (i64, u32) {
        mmuext_op_foreign(ops, DOMID_SELF)
    }

    /// [`mmuext_op`] naming domain `foreign` as the pages' owner.
    pub fn mmuext_op_foreign(ops: &[MmuextOp], foreign: u16) -> (i64, u32) {
        let mut done = u32::MAX;
        #[allow(unsafe_code)]
        // SAFETY: see above; `done` and the ops are live.
        let ret = unsafe {
            hypercall(
                Hypercall::MmuextOp as u32,
                [
                    addr(&ops[0]),
                    ops.len() as u64,
                    addr_mut(&mut done),
                    foreign as u64,
                    0,
                ],
            )
        };
        (ret, done)
    }

    /// `HYPERVISOR_update_va_mapping` for an address in the scratch window.
    pub fn update_va_mapping(va: u64, pte: u64, flags: u64) -> i64 {
        assert!(
            crate::scratch::contains(va),
            "{va:#x} is outside the scratch window"
        );
        #[allow(unsafe_code)]
        // SAFETY: no Rust object lives in the scratch window.
        unsafe {
            hypercall(Hypercall::UpdateVaMapping as u32, [va, pte, flags, 0, 0])
        }
    }

    /// `HYPERVISOR_event_channel_op(cmd, arg)` on a plain-data structure
    /// of ours.
    fn evtchn_op(cmd: u32, arg: u64) -> i64 {
        #[allow(unsafe_code)]
        // SAFETY: the callers pass a live event-channel structure, plain
        // data that any bytes the hypervisor writes leave valid.
        unsafe {
            hypercall(Hypercall::EventChannelOp as u32, [cmd as u64, arg, 0, 0, 0])
        }
    }

    /// `EVTCHNOP_bind_ipi` for `vcpu`: the new port, or the raw error.
    pub fn bind_ipi(vcpu: u32) -> Result<Port, i64> {
        let mut arg = BindIpi { vcpu, port: 0 };
        match evtchn_op(evtchn::EVTCHNOP_BIND_IPI, addr_mut(&mut arg)) {
            0 => Ok(arg.port),
            err => Err(err),
        }
    }

    /// `EVTCHNOP_status` of one of our ports.
    pub fn evtchn_status(port: Port) -> Result<Status, i64> {
        let mut arg = Status {
            dom: DOMID_SELF,
            port,
            ..Default::default()
        };
        match evtchn_op(evtchn::EVTCHNOP_STATUS, addr_mut(&mut arg)) {
            0 => Ok(arg),
            err => Err(err),
        }
    }

    /// `EVTCHNOP_send`, raw.
    pub fn evtchn_send(port: Port) -> i64 {
        evtchn_op(evtchn::EVTCHNOP_SEND, addr(&evtchn::PortOp { port }))
    }

    /// `HYPERVISOR_vcpu_op(cmd, vcpu, NULL)`.
    pub fn vcpu_op_null(cmd: u32, vcpu: u32) -> i64 {
        #[allow(unsafe_code)]
        // SAFETY: no pointer.
        unsafe {
            hypercall(Hypercall::VcpuOp as u32, [cmd as u64, vcpu as u64, 0, 0, 0])
        }
    }

    /// `VCPUOP_initialise` of `vcpu` with `context`.
    pub fn vcpu_initialise(vcpu: u32, context: &abi::domctl::VcpuGuestContext) -> i64 {
        #[allow(unsafe_code)]
        // SAFETY: the context is live plain data the hypervisor only reads.
        unsafe {
            hypercall(
                Hypercall::VcpuOp as u32,
                [
                    abi::ops::VCPUOP_INITIALISE as u64,
                    vcpu as u64,
                    addr(context),
                    0,
                    0,
                ],
            )
        }
    }

    /// `VCPUOP_register_vcpu_info`: `vcpu`'s vcpu_info to byte `offset`
    /// of frame `mfn`.
    pub fn register_vcpu_info(vcpu: u32, mfn: u64, offset: u32) -> i64 {
        let arg = abi::ops::VcpuRegisterVcpuInfo {
            mfn,
            offset,
            rsvd: 0,
        };
        #[allow(unsafe_code)]
        // SAFETY: the argument is live plain data the hypervisor only
        // reads; the frame it names is checked by the hypervisor.
        unsafe {
            hypercall(
                Hypercall::VcpuOp as u32,
                [
                    abi::ops::VCPUOP_REGISTER_VCPU_INFO as u64,
                    vcpu as u64,
                    addr(&arg),
                    0,
                    0,
                ],
            )
        }
    }

    /// `EVTCHNOP_bind_vcpu` of our `port` to `vcpu`.
    pub fn bind_vcpu(port: Port, vcpu: u32) -> i64 {
        evtchn_op(
            evtchn::EVTCHNOP_BIND_VCPU,
            addr(&evtchn::BindVcpu { port, vcpu }),
        )
    }

    /// `EVTCHNOP_bind_virq` of `virq` on `vcpu`: the new port, or the raw
    /// error.
    pub fn bind_virq(virq: u32, vcpu: u32) -> Result<Port, i64> {
        let mut arg = evtchn::BindVirq {
            virq,
            vcpu,
            port: 0,
        };
        match evtchn_op(evtchn::EVTCHNOP_BIND_VIRQ, addr_mut(&mut arg)) {
            0 => Ok(arg.port),
            err => Err(err),
        }
    }

    /// `SCHEDOP_poll` on `ports` until one is pending or system time
    /// `timeout` (0: no timeout).
    pub fn poll(ports: &[Port], timeout: u64) -> i64 {
        let arg = abi::ops::SchedPoll {
            ports: ports.as_ptr() as u64,
            nr_ports: ports.len() as u32,
            _pad: 0,
            timeout,
        };
        #[allow(unsafe_code)]
        // SAFETY: the port list and the request are live plain data the
        // hypervisor only reads.
        unsafe {
            hypercall(
                Hypercall::SchedOp as u32,
                [abi::ops::SCHEDOP_POLL as u64, addr(&arg), 0, 0, 0],
            )
        }
    }

    /// `HYPERVISOR_sched_op(cmd, NULL)` for a command without argument or
    /// an unknown one.
    pub fn sched_op_null(cmd: u32) -> i64 {
        #[allow(unsafe_code)]
        // SAFETY: no pointer; only commands that do not block or shut down
        // are passed.
        unsafe {
            hypercall(Hypercall::SchedOp as u32, [cmd as u64, 0, 0, 0, 0])
        }
    }
}

#[cfg(target_os = "none")]
pub mod host {
    //! Which hypervisor a test guest runs on, for the few answers where
    //! hv-core follows the project's contract rather than Xen 4.17's exact
    //! code, so each host is held to its own answer.

    /// Whether the hypervisor is hv-core (`XENVER_extraversion` names it).
    pub fn is_hv_core() -> bool {
        pv_guest_sdk::hypercall::xen_extraversion()
            .is_ok_and(|extra| extra.windows(7).any(|w| w == b"hv-core"))
    }

    /// The grant status for a ref that exists but is not granted to the
    /// caller (never granted, revoked, or for another domain): the
    /// contract's `GNTST_permission_denied` on hv-core; Xen 4.17 answers
    /// `GNTST_general_error` ("Bad flags or dom" in `_set_status`).
    pub fn not_granted_status() -> i16 {
        if is_hv_core() {
            abi::grant_table::GNTST_PERMISSION_DENIED
        } else {
            abi::grant_table::GNTST_GENERAL_ERROR
        }
    }
}

#[cfg(target_os = "none")]
pub mod scratch {
    //! A window of guest virtual addresses that no Rust object ever
    //! occupies (L4 slot 2, outside both the user slot 0 and the SDK's
    //! physmap at the top), backed by one L1 table of the guest's own, so
    //! tests can map, remap and unmap its pages at will.

    use pv_guest_sdk::mm::p2m::Mfn;
    use pv_guest_sdk::mm::{self, MapError, pte};

    /// Start of the window: 512 pages, one L1 table.
    pub const BASE: u64 = 0x0000_0100_0000_0000;
    pub const PAGES: u64 = 512;

    pub fn contains(va: u64) -> bool {
        (BASE..BASE + PAGES * 4096).contains(&va)
    }

    /// The window's L1 table.
    #[derive(Clone, Copy, Debug)]
    pub struct Window {
        pub l1: Mfn,
    }

    impl Window {
        /// Creates the tables down to the window's L1 (by mapping a page
        /// there once) and finds the L1.
        pub fn new() -> Result<Self, MapError> {
            let frame = mm::alloc_frame()?;
            mm::map(BASE, frame.mfn, pte::KERNEL_RW)?;
            crate::arch::unmap_scratch(BASE)?;
            mm::free_frame(frame);
            let idx = pte::indices(BASE);
            let mut table = mm::kernel_l4();
            for index in &idx[..3] {
                table = pte::mfn(mm::read_table_entry(table, *index)?);
            }
            Ok(Self { l1: table })
        }

        pub fn va(&self, page: u64) -> u64 {
            assert!(page < PAGES);
            BASE + page * 4096
        }

        /// The machine address of page `page`'s L1 entry (an `mmu_update`
        /// pointer).
        pub fn entry_maddr(&self, page: u64) -> u64 {
            assert!(page < PAGES);
            self.l1 * 4096 + page * 8
        }

        /// The L1 entry of page `page`.
        pub fn entry(&self, page: u64) -> Result<u64, MapError> {
            mm::read_table_entry(self.l1, page as usize)
        }
    }
}

#[cfg(target_os = "none")]
pub mod frame {
    //! Frames a test allocated for its own probing (never holding a Rust
    //! object): word access through the physmap, and permission changes.

    use pv_guest_sdk::mm::{self, Frame, MapError};

    /// Reads word `index` of `frame` through its physmap address.
    pub fn read_word(frame: &Frame, index: usize) -> u64 {
        assert!(index < 512);
        #[allow(unsafe_code)]
        // SAFETY: the physmap maps every frame of the domain, at least
        // read-only.
        unsafe {
            crate::arch::read_volatile_u64(frame.va() + index as u64 * 8)
        }
    }

    /// Writes word `index` of `frame`, which must be mapped writable in the
    /// physmap (checked by a probe: a fault is reported, not taken).
    pub fn write_word(
        frame: &Frame,
        index: usize,
        value: u64,
    ) -> Result<(), crate::probe::Trapped> {
        assert!(index < 512);
        crate::probe::write(frame.va() + index as u64 * 8, value)
    }

    /// Changes the flags of `frame`'s physmap mapping (read-only before
    /// it becomes a page table, writable again after).
    pub fn protect(frame: &Frame, flags: u64) -> Result<(), MapError> {
        #[allow(unsafe_code)]
        // SAFETY: the frame holds no Rust object: nothing relies on its
        // permissions.
        unsafe {
            mm::protect(frame.va(), flags)
        }
    }
}

#[cfg(target_os = "none")]
pub mod usermode {
    //! Guest user mode for the tests: a user root sharing the kernel's L4
    //! slot 0, user code copied from the image into user pages, and a
    //! system-call entry of the tests' own that returns to user mode the
    //! way a PV kernel's fast path does, `HYPERVISOR_iret` with
    //! `VGCF_in_syscall`.
    //!
    //! Exceptions and events from user mode still go to the SDK's entry
    //! stubs (their handlers return to user mode with a full iret).

    use core::sync::atomic::{AtomicU64, Ordering};

    use pv_guest_sdk::mm::{self, Frame, MapError, pte};
    use pv_guest_sdk::traps::TrapFrame;

    use crate::arch;

    pub use crate::arch::UserProgram;

    /// The top of the user half the tests use (L4 slot 0).
    pub const USER_END: u64 = 1 << 39;

    /// What the system-call handler wants done.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Action {
        /// Back to user mode with `frame.rax` as the result.
        Resume,
        /// End the session: [`UserSpace::run`] returns this value.
        Exit(u64),
    }

    pub type Handler = fn(&mut TrapFrame) -> Action;

    static HANDLER: arch::HandlerCell = arch::HandlerCell::new();
    static SAVED_RSP: AtomicU64 = AtomicU64::new(0);

    /// Called by the syscall stub with the user's registers, on the user
    /// trap stack, events masked.
    pub(crate) extern "C" fn dispatch(frame: &mut TrapFrame) {
        let action = match HANDLER.get() {
            Some(handler) => handler(frame),
            None => Action::Exit(u64::MAX),
        };
        if let Action::Exit(value) = action {
            let rsp = SAVED_RSP.swap(0, Ordering::SeqCst);
            assert_ne!(rsp, 0, "system call outside a user session");
            #[allow(unsafe_code)]
            // SAFETY: `rsp` is the kernel stack of the `run` still waiting
            // in user_enter; this handler runs on the user trap stack.
            unsafe {
                arch::user_leave(rsp, value)
            }
        }
    }

    /// A user address space: a root table whose only entry is the
    /// kernel's slot 0, so the kernel sees user pages at the same
    /// addresses.
    pub struct UserSpace {
        root: Frame,
    }

    impl UserSpace {
        pub fn new() -> Result<Self, MapError> {
            let slot0 = mm::ensure_kernel_l4_slot(0)?;
            Ok(Self {
                root: mm::new_table(&[slot0])?,
            })
        }

        /// Maps machine frame `mfn` at user address `va`.
        pub fn map(&self, va: u64, mfn: u64, writable: bool) -> Result<(), MapError> {
            if va >= USER_END {
                return Err(MapError::BadAddress(va));
            }
            let flags = pte::PRESENT
                | pte::USER
                | pte::ACCESSED
                | if writable {
                    pte::WRITABLE | pte::DIRTY
                } else {
                    0
                };
            mm::map(va, mfn, flags)
        }

        /// A fresh frame holding `bytes`, mapped at `va`.
        pub fn load(&self, va: u64, bytes: &[u8], writable: bool) -> Result<Frame, MapError> {
            let frame = mm::alloc_frame_filled(bytes)?;
            self.map(va, frame.mfn, writable)?;
            Ok(frame)
        }

        /// Loads `program` at `va` (read-only, executable).
        pub fn load_program(&self, va: u64, program: UserProgram) -> Result<(), MapError> {
            self.load(va, program.bytes(), false).map(drop)
        }

        /// Runs user code at `rip` with stack `rsp`; `handler` gets every
        /// `syscall` until it answers [`Action::Exit`], whose value this
        /// returns. Upcalls are on in user mode and restored afterwards.
        pub fn run(&self, rip: u64, rsp: u64, handler: Handler) -> pv_guest_sdk::Result<u64> {
            arch::register_user_entry()?;
            mm::set_user_root(&self.root)?;
            HANDLER.set(handler);
            let was_enabled = pv_guest_sdk::events::disable();
            assert_eq!(
                SAVED_RSP.load(Ordering::SeqCst),
                0,
                "user mode entered twice"
            );
            #[allow(unsafe_code)]
            // SAFETY: the user root, the trap stack and the syscall entry
            // are registered, so every way out of user mode reaches the
            // kernel; SAVED_RSP lives forever and `dispatch` leaves through
            // it.
            let value = unsafe { arch::user_enter(rip, rsp, SAVED_RSP.as_ptr()) };
            pv_guest_sdk::events::restore(was_enabled);
            Ok(value)
        }
    }
}

#[cfg(target_os = "none")]
pub mod compat {
    //! The guest's own 32-bit code: pages below 4 GiB, a far jump into the
    //! flat 32-bit ring-3 code segment (0xe023), and the ways back to 64-bit
    //! guest kernel mode (a syscall32 callback, or an exception whose
    //! handler resumes in 64-bit code). For the security tests of what a
    //! guest can do from compat mode.
    //!
    //! The 32-bit code runs on a stack below 4 GiB ([`STACK_TOP`]), so
    //! that the hypervisor's bounce frames land in memory the guest has.

    use core::sync::atomic::{AtomicU64, Ordering};

    use abi::xen::{FLAT_KERNEL_CS64, FLAT_KERNEL_SS64, FLAT_RING3_CS32, IretContext};
    use pv_guest_sdk::mm::{self, MapError, pte};
    use pv_guest_sdk::traps::{self, Exception, TrapFrame};

    /// The compat stack: one page below 4 GiB.
    pub const STACK_AT: u64 = 0x10_1000;
    pub const STACK_TOP: u64 = 0x10_2000;

    #[allow(unsafe_code)]
    mod stubs {
        core::arch::global_asm!(
            r#"
        .section .text.tg_compat, "ax"
        /* tg_compat_jump(target32, stack_top) -> 1 (syscall32 callback) or
           2 (resumed by a trap handler): far-jumps into the 32-bit segment
           at `target32` on the given stack. A far jump rather than a far
           return: QEMU's TCG pops a far return's frame as a supervisor
           access, which SMAP refuses. The pointer is m16:32, the form AMD
           and Intel both take. */
        .global tg_compat_jump
tg_compat_jump:
        call tg_compat_save
        mov %rsi, %rsp
        mov %edi, tg_compat_target(%rip)
        ljmpl *tg_compat_target(%rip)

        /* tg_compat_iret(context) -> 2: HYPERVISOR_iret with RSP at the
           iret context; comes back through a trap handler. */
        .global tg_compat_iret
tg_compat_iret:
        call tg_compat_save
        mov %rdi, %rsp
        mov ${iret}, %eax
        syscall
        ud2

tg_compat_save:
        pop %rax
        push %rbx
        push %rbp
        push %r12
        push %r13
        push %r14
        push %r15
        mov %rsp, tg_compat_saved_rsp(%rip)
        jmp *%rax

        /* A syscall32 callback: 64-bit guest kernel mode, Xen's bounce
           frame (rcx, r11, rip, cs, rflags, rsp, ss) at RSP. */
        .global tg_compat_landing
tg_compat_landing:
        lea tg_compat_frame(%rip), %rax
        .set i, 0
        .rept 7
        mov i*8(%rsp), %rcx
        mov %rcx, i*8(%rax)
        .set i, i + 1
        .endr
        mov tg_compat_saved_rsp(%rip), %rsp
        mov $1, %eax
        jmp tg_compat_return

        .global tg_compat_trap_resume
tg_compat_trap_resume:
        mov tg_compat_saved_rsp(%rip), %rsp
        mov $2, %eax
tg_compat_return:
        pop %r15
        pop %r14
        pop %r13
        pop %r12
        pop %rbp
        pop %rbx
        ret

        .section .data.tg_compat, "aw"
        .balign 8
tg_compat_saved_rsp:
        .quad 0
tg_compat_target:
        .long 0
        .word {cs32}
        .balign 8
        .global tg_compat_frame
tg_compat_frame:
        .zero 56
        "#,
            cs32 = const super::FLAT_RING3_CS32,
            iret = const abi::Hypercall::Iret as u32,
            options(att_syntax)
        );
    }

    #[allow(unsafe_code)]
    unsafe extern "C" {
        fn tg_compat_jump(target: u64, stack_top: u64) -> u64;
        fn tg_compat_iret(context: *const IretContext) -> u64;
        fn tg_compat_landing();
        fn tg_compat_trap_resume();
        static tg_compat_frame: [u64; 7];
    }

    /// How the 32-bit code came back.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Came {
        /// Through the syscall32 callback at [`landing`], with this bounce
        /// frame: rcx, r11, rip, cs, rflags, rsp, ss.
        Callback([u64; 7]),
        /// Through an exception.
        Trap(Trapped),
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Trapped {
        pub vector: u8,
        pub error_code: u64,
        pub rip: u64,
        /// The selector, without the saved upcall mask.
        pub cs: u64,
        pub cr2: u64,
    }

    impl core::fmt::Display for Came {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self {
                Came::Callback(frame) => write!(f, "the syscall32 callback (RIP {:#x})", frame[2]),
                Came::Trap(t) => write!(
                    f,
                    "vector {} (error {:#x}) at {:#x}, CS {:#x}, CR2 {:#x}",
                    t.vector, t.error_code, t.rip, t.cs, t.cr2
                ),
            }
        }
    }

    static TRAPPED: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

    fn on_trap(exception: &Exception, frame: &mut TrapFrame) -> bool {
        for (slot, value) in TRAPPED.iter().zip([
            exception.vector as u64 + 1,
            exception.error_code,
            frame.rip,
            frame.cs & 0xffff,
            exception.cr2.unwrap_or(0),
        ]) {
            slot.store(value, Ordering::SeqCst);
        }
        // Back to 64-bit guest kernel mode (RPL 0 in an iret frame means
        // kernel mode) at the resume label, which reloads its own stack.
        frame.rip = tg_compat_trap_resume as *const () as u64;
        frame.cs = (frame.cs & !0xffff) | (FLAT_KERNEL_CS64 as u64 & !3);
        frame.ss = FLAT_KERNEL_SS64 as u64;
        true
    }

    /// Catches #UD, #NP, #GP and #PF for [`jump`] and [`iret`].
    pub fn install() {
        for vector in [
            traps::INVALID_OPCODE,
            traps::SEGMENT_NOT_PRESENT,
            traps::GENERAL_PROTECTION,
            traps::PAGE_FAULT,
        ] {
            traps::set_handler(vector, on_trap);
        }
    }

    /// The address a syscall32 callback must be registered at for
    /// [`Came::Callback`].
    pub fn landing() -> u64 {
        tg_compat_landing as *const () as u64
    }

    fn came(how: u64) -> Came {
        pv_guest_sdk::events::enable();
        let v: [u64; 5] = core::array::from_fn(|i| TRAPPED[i].swap(0, Ordering::SeqCst));
        if how == 1 && v[0] == 0 {
            #[allow(unsafe_code)]
            // SAFETY: a plain static the landing stub filled.
            let frame = unsafe { core::ptr::read_volatile(&raw const tg_compat_frame) };
            return Came::Callback(frame);
        }
        Came::Trap(Trapped {
            vector: v[0].saturating_sub(1) as u8,
            error_code: v[1],
            rip: v[2],
            cs: v[3],
            cr2: v[4],
        })
    }

    /// Far-jumps to 32-bit code at `target` (mapped by [`map_code`]) on
    /// the compat stack; needs [`install`] and [`map_stack`].
    pub fn jump(target: u64) -> Came {
        #[allow(unsafe_code)]
        // SAFETY: the target is the caller's 32-bit code, which ends in a
        // bounce to the landing stub or a trap whose handler resumes at
        // the resume label; both restore the stack and callee-saved
        // registers tg_compat_jump saved.
        let how = unsafe { tg_compat_jump(target, STACK_TOP) };
        came(how)
    }

    /// `HYPERVISOR_iret` to `cs:rip` in guest kernel mode (the frame's CS
    /// has RPL 0; RPL 3 would mean user mode) on the compat stack, which
    /// the test expects to trap; needs [`install`] and [`map_stack`].
    pub fn iret(cs: u16, rip: u64) -> Came {
        let context = IretContext {
            rip,
            cs: (cs & !3) as u64,
            rflags: 0x202,
            rsp: STACK_TOP,
            ss: abi::xen::FLAT_RING3_SS32 as u64,
            ..IretContext::default()
        };
        #[allow(unsafe_code)]
        // SAFETY: as for `jump`: the return lands in a trap whose handler
        // resumes at the resume label.
        let how = unsafe { tg_compat_iret(&context) };
        came(how)
    }

    /// Maps a fresh page holding `bytes` at `va` (below 4 GiB),
    /// executable and read-only.
    pub fn map_code(va: u64, bytes: &[u8]) -> Result<(), MapError> {
        let frame = mm::alloc_frame_filled(bytes)?;
        mm::map(va, frame.mfn, pte::PRESENT | pte::USER)
    }

    /// Maps the compat stack.
    pub fn map_stack() -> Result<(), MapError> {
        let stack = mm::alloc_frame()?;
        mm::map(
            STACK_AT,
            stack.mfn,
            pte::PRESENT | pte::WRITABLE | pte::USER | pte::NO_EXECUTE,
        )
    }
}

#[cfg(target_os = "none")]
pub mod preempt {
    //! Whether the hypervisor lets the CPU go in the middle of one long
    //! hypercall. A hypercall continued in passes (Xen's continuations)
    //! rewinds the guest to its `syscall` between passes, with the
    //! argument registers saying how far it got; an event upcall that
    //! arrives then finds the guest at that `syscall`. So: arm a one-shot
    //! timer, issue the call through [`call`], and [`upcall`] says where
    //! the timer's upcall found the guest and with which RDI and RSI, and
    //! [`Upcall::when`] whether that was before the call, during it or
    //! after it returned (a loaded host can stall the guest past the
    //! timer before the call even starts: then the try says nothing and
    //! is made again). The only timing fact used is that order.

    use core::sync::atomic::{AtomicU64, Ordering};

    use abi::event_channel::{Port, VIRQ_TIMER};
    use abi::ops::{CALLBACKTYPE_EVENT, VCPUOP_STOP_PERIODIC_TIMER};
    use pv_guest_sdk::{events, hypercall};

    #[allow(unsafe_code)]
    mod stubs {
        core::arch::global_asm!(
            r#"
        .section .text.tg_preempt, "ax"
        /* tg_preempt_call(nr, a1, a2, a3, a4, a5): the hypercall, issued
           from here so that a continuation rewinds the guest to
           `tg_preempt_syscall`. */
        .global tg_preempt_call
tg_preempt_call:
        movq $1, tg_preempt_phase(%rip)
        mov %rdi, %rax
        mov %rsi, %rdi
        mov %rdx, %rsi
        mov %rcx, %rdx
        mov %r8, %r10
        mov %r9, %r8
        .global tg_preempt_syscall
tg_preempt_syscall:
        syscall
        .global tg_preempt_returned
tg_preempt_returned:
        movq $2, tg_preempt_phase(%rip)
        ret

        /* The event callback. Bounce frame at RSP: rcx, r11, rip, cs,
           rflags, rsp, ss; RDI and RSI are still the interrupted code's. */
        .global tg_preempt_event_entry
tg_preempt_event_entry:
        push %rax
        mov 24(%rsp), %rax
        mov %rax, tg_preempt_rip(%rip)
        mov %rdi, tg_preempt_rdi(%rip)
        mov %rsi, tg_preempt_rsi(%rip)
        pop %rax
        jmp pv_event_entry

        .section .data.tg_preempt, "aw"
        .balign 8
        .global tg_preempt_rip, tg_preempt_rdi, tg_preempt_rsi, tg_preempt_phase
/* 0: armed, the stub not entered; 1: in the stub; 2: the call returned. */
tg_preempt_phase:
        .quad 0
tg_preempt_rip:
        .quad 0
tg_preempt_rdi:
        .quad 0
tg_preempt_rsi:
        .quad 0
        "#,
            options(att_syntax)
        );
    }

    #[allow(unsafe_code)]
    unsafe extern "C" {
        fn tg_preempt_call(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64;
        fn tg_preempt_syscall();
        fn tg_preempt_returned();
        fn tg_preempt_event_entry();
        static mut tg_preempt_phase: u64;
        static tg_preempt_rip: u64;
        static tg_preempt_rdi: u64;
        static tg_preempt_rsi: u64;
    }

    /// Where the timer's upcall found the guest.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Upcall {
        pub rip: u64,
        pub rdi: u64,
        pub rsi: u64,
        /// The stub's phase then (0 armed, 1 in the stub, 2 returned).
        pub phase: u64,
    }

    /// When the upcall came, relative to the hypercall.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum When {
        /// Before its `syscall`: the try tells nothing.
        BeforeCall,
        /// At its `syscall` with the call under way, between two passes.
        DuringCall,
        /// Once it had returned.
        AfterCall,
    }

    impl Upcall {
        pub fn when(&self) -> When {
            let returned = tg_preempt_returned as *const () as u64;
            match self.phase {
                0 => When::BeforeCall,
                1 if self.rip == syscall_address() => When::DuringCall,
                1 if self.rip != returned => When::BeforeCall,
                _ => When::AfterCall,
            }
        }

        /// Whether the guest was at [`call`]'s `syscall`: the hypercall
        /// was under way, between two passes.
        pub fn during_call(&self) -> bool {
            self.when() == When::DuringCall
        }
    }

    static FIRED: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

    fn phase() -> u64 {
        #[allow(unsafe_code)]
        // SAFETY: a plain static only the stub and [`arm`] write, read
        // whole.
        unsafe {
            core::ptr::read_volatile(&raw const tg_preempt_phase)
        }
    }

    fn on_timer(_: Port) {
        #[allow(unsafe_code)]
        // SAFETY: plain statics the callback stub wrote before this upcall
        // (upcalls do not nest: events are masked in the callback).
        let seen = unsafe {
            [
                core::ptr::read_volatile(&raw const tg_preempt_rip),
                core::ptr::read_volatile(&raw const tg_preempt_rdi),
                core::ptr::read_volatile(&raw const tg_preempt_rsi),
            ]
        };
        if FIRED[0].load(Ordering::SeqCst) == 0 {
            FIRED[3].store(phase(), Ordering::SeqCst);
            FIRED[1].store(seen[1], Ordering::SeqCst);
            FIRED[2].store(seen[2], Ordering::SeqCst);
            FIRED[0].store(seen[0], Ordering::SeqCst);
        }
    }

    /// Binds VIRQ_TIMER, stops the periodic timer (only the one-shot may
    /// raise it) and registers the callback stub in front of the SDK's
    /// event entry.
    pub fn install() -> Result<(), &'static str> {
        events::bind_virq(VIRQ_TIMER, on_timer).map_err(|_| "binding VIRQ_TIMER")?;
        if crate::hc::vcpu_op_null(VCPUOP_STOP_PERIODIC_TIMER, 0) != 0 {
            return Err("VCPUOP_stop_periodic_timer");
        }
        #[allow(unsafe_code)]
        // SAFETY: the stub saves nothing it does not restore and then
        // enters the SDK's event entry with the frame untouched.
        let registered = unsafe {
            hypercall::callback_register(
                CALLBACKTYPE_EVENT,
                tg_preempt_event_entry as *const () as u64,
                true,
            )
        };
        registered.map_err(|_| "registering the event callback")
    }

    /// Arms the one-shot timer at `deadline` (system time) and forgets
    /// any earlier upcall.
    pub fn arm(deadline: u64) -> Result<(), &'static str> {
        for slot in &FIRED {
            slot.store(0, Ordering::SeqCst);
        }
        #[allow(unsafe_code)]
        // SAFETY: as in [`phase`]; no call is under way.
        unsafe {
            core::ptr::write_volatile(&raw mut tg_preempt_phase, 0)
        };
        hypercall::set_timer_op(deadline).map_err(|_| "set_timer_op")
    }

    /// The first upcall since [`arm`], if it came.
    pub fn upcall() -> Option<Upcall> {
        let rip = FIRED[0].load(Ordering::SeqCst);
        (rip != 0).then(|| Upcall {
            rip,
            rdi: FIRED[1].load(Ordering::SeqCst),
            rsi: FIRED[2].load(Ordering::SeqCst),
            phase: FIRED[3].load(Ordering::SeqCst),
        })
    }

    /// The address of [`call`]'s `syscall`.
    pub fn syscall_address() -> u64 {
        tg_preempt_syscall as *const () as u64
    }

    /// Hypercall `nr` from the known `syscall`.
    ///
    /// # Safety
    /// As [`crate::arch::hypercall`]: pointer arguments must suit the
    /// operation and must not let the hypervisor change memory or
    /// mappings Rust code relies on.
    #[allow(unsafe_code)]
    pub unsafe fn call(nr: abi::Hypercall, args: [u64; 5]) -> i64 {
        // SAFETY: the stub is an ordinary hypercall; the caller vouches
        // for the arguments.
        unsafe { tg_preempt_call(nr as u64, args[0], args[1], args[2], args[3], args[4]) }
    }
}

#[cfg(test)]
mod tests {
    use super::stats::{bench_line, min_median};
    use super::verdict::{Checks, Stop, result_line};

    #[test]
    fn result_lines_are_one_line_and_name_the_guest() {
        assert_eq!(result_line("abi-traps", &Ok(())), "PASS abi-traps");
        assert_eq!(
            result_line(
                "abi-traps",
                &Err(Stop::Fail("#GP: got vector 14\nwant 13\n".into()))
            ),
            "FAIL abi-traps: #GP: got vector 14; want 13"
        );
        assert_eq!(
            result_line("abi-timer", &Err(Stop::Skip("no timer".into()))),
            "SKIP abi-timer: no timer"
        );
    }

    #[test]
    fn checks_list_every_failed_statement() {
        let mut c = Checks::new("traps");
        assert!(c.check(true, "int3 raises #BP"));
        assert!(!c.check(false, "ud2 raises #UD"));
        c.check(false, "div by zero raises #DE");
        assert_eq!(
            c.result_line(),
            "FAIL traps: not true: ud2 raises #UD; div by zero raises #DE"
        );
        assert_eq!(Checks::new("x").result_line(), "PASS x");
    }

    #[test]
    fn median_is_a_measured_sample() {
        assert_eq!(min_median(&mut []), None);
        assert_eq!(min_median(&mut [5]), Some((5, 5)));
        assert_eq!(min_median(&mut [9, 1, 5]), Some((1, 5)));
        // Even count: the lower middle sample.
        assert_eq!(min_median(&mut [40, 10, 30, 20]), Some((10, 20)));
    }

    #[test]
    fn bench_lines_have_the_parsed_shape() {
        assert_eq!(
            bench_line("null-hypercall", (120, 150), (300, 380)),
            "BENCH null-hypercall min_ns=120 median_ns=150 min_cycles=300 median_cycles=380"
        );
    }
}
