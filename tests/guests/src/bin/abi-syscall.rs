//! Guest user mode and `syscall`:
//! - the kernel gives user mode its own root (`MMUEXT_NEW_USER_BASEPTR`,
//!   sharing only L4 slot 0) and enters it with `HYPERVISOR_iret` to a
//!   CS with RPL 3;
//! - each `syscall` in user mode reaches the kernel's CALLBACKTYPE_SYSCALL
//!   entry on the `stack_switch` stack, with events masked, the user's
//!   RIP (after the `syscall`), RSP, RPL-3 CS and its arguments;
//! - the kernel answers with `HYPERVISOR_iret` + `VGCF_in_syscall`: user
//!   mode continues after its `syscall` with the answer in RAX, RSP and
//!   every register but RCX and R11 (which Xen's ABI says are discarded)
//!   unchanged; sixteen round trips, a different value each way each time;
//! - an exit call ends the session and the kernel carries on;
//! - user mode cannot read kernel memory: the load faults with a #PF
//!   bounced from user mode (error code U, not present) and resumes.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use core::sync::atomic::{AtomicU64, Ordering};

    use pv_guest_sdk::traps::{PageFaultCode, TrapFrame};
    use pv_guest_sdk::{StartInfo, events, mm, println};
    use test_guests::arch::{self, PINGPONG_ROUNDS, USER_TRAP_STACK, sys};
    use test_guests::probe;
    use test_guests::usermode::{Action, UserSpace};
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure, ensure_eq, fail};

    const NAME: &str = "abi-syscall";
    const PINGPONG_AT: u64 = 0x40_0000;
    const PEEK_AT: u64 = 0x40_1000;
    const STACK_PAGE: u64 = 0x7f_f000;
    const STACK_TOP: u64 = 0x80_0000;

    /// What the kernel side of the ping-pong found wrong (0: nothing), as
    /// text index into `PROBLEMS`, and the value involved.
    static PROBLEM: AtomicU64 = AtomicU64::new(0);
    static PROBLEM_VALUE: AtomicU64 = AtomicU64::new(0);
    static ROUND: AtomicU64 = AtomicU64::new(0);
    /// The user-mode check that failed (FAIL call): which, RAX, round.
    static USER_FAIL: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

    const PROBLEMS: [&str; 8] = [
        "",
        "syscall frame RIP is not the instruction after the user's syscall",
        "syscall frame CS does not have RPL 3",
        "syscall frame RSP is not the user's stack pointer",
        "syscall argument RDI is not the value user mode sent",
        "events were not masked in the syscall callback",
        "the syscall callback did not run on the stack_switch stack",
        "unknown system call number",
    ];

    const USER_CHECKS: [&str; 12] = [
        "",
        "RSP",
        "RDI",
        "RAX (the answer)",
        "RBX",
        "RBP",
        "RDX",
        "RSI",
        "R8",
        "R9",
        "R10",
        "R15",
    ];

    fn problem(which: u64, value: u64) -> Action {
        PROBLEM.store(which, Ordering::SeqCst);
        PROBLEM_VALUE.store(value, Ordering::SeqCst);
        Action::Exit(u64::MAX)
    }

    fn on_stack(var: &u64) -> bool {
        let here = var as *const u64 as u64;
        let base = USER_TRAP_STACK.0.get() as u64;
        (base..base + 16384).contains(&here)
    }

    fn pingpong_syscall(frame: &mut TrapFrame) -> Action {
        let marker = 0u64;
        match frame.rax {
            sys::PING => {
                let round = ROUND.load(Ordering::SeqCst);
                let after = arch::pingpong().relocate(arch::pingpong_after_syscall(), PINGPONG_AT);
                if frame.rip != after {
                    return problem(1, frame.rip);
                }
                if frame.cs & 3 != 3 {
                    return problem(2, frame.cs);
                }
                if frame.rsp != STACK_TOP {
                    return problem(3, frame.rsp);
                }
                if frame.rdi != 0x1000 + 3 * round {
                    return problem(4, frame.rdi);
                }
                if events::enabled() {
                    return problem(5, 0);
                }
                if !on_stack(core::hint::black_box(&marker)) {
                    return problem(6, &marker as *const u64 as u64);
                }
                frame.rax = 2 * frame.rdi + 7;
                // Xen discards RCX and R11 on a VGCF_in_syscall return:
                // what the kernel leaves there must not matter.
                frame.rcx = 0xdead_0000_0000_0001;
                frame.r11 = 0xdead_0000_0000_0002;
                ROUND.store(round + 1, Ordering::SeqCst);
                Action::Resume
            }
            sys::EXIT => Action::Exit(frame.rdi),
            sys::FAIL => {
                for (slot, value) in USER_FAIL.iter().zip([frame.rdi, frame.rsi, frame.rdx]) {
                    slot.store(value, Ordering::SeqCst);
                }
                Action::Exit(u64::MAX - 1)
            }
            other => problem(7, other),
        }
    }

    fn exit_only(frame: &mut TrapFrame) -> Action {
        match frame.rax {
            sys::EXIT => Action::Exit(frame.rdi),
            other => problem(7, other),
        }
    }

    pub fn main(_start: &'static StartInfo) -> ! {
        probe::install();
        finish(NAME, run())
    }

    fn run() -> Outcome {
        let user = match UserSpace::new() {
            Ok(u) => u,
            Err(e) => fail!("building the user page tables: {e}"),
        };
        let stack = match mm::alloc_frame() {
            Ok(f) => f,
            Err(e) => fail!("allocating the user stack: {e}"),
        };
        let loaded = user
            .load_program(PINGPONG_AT, arch::pingpong())
            .and_then(|()| user.load_program(PEEK_AT, arch::peek()))
            .and_then(|()| user.map(STACK_PAGE, stack.mfn, true));
        if let Err(e) = loaded {
            fail!("mapping the user programs and stack: {e}");
        }

        pingpong(&user)?;
        peek(&user)?;
        // And once more: a second session works like the first.
        pingpong(&user)?;
        println!("{NAME}: {PINGPONG_ROUNDS} syscall round trips twice, user/kernel separation");
        Ok(())
    }

    fn pingpong(user: &UserSpace) -> Outcome {
        ROUND.store(0, Ordering::SeqCst);
        ensure!(events::enabled(), "events masked before entering user mode");
        let value = match user.run(PINGPONG_AT, STACK_TOP, pingpong_syscall) {
            Ok(v) => v,
            Err(e) => fail!("entering user mode: {e}"),
        };
        let which = PROBLEM.load(Ordering::SeqCst) as usize;
        if which != 0 {
            fail!(
                "{} ({:#x}), round {}",
                PROBLEMS[which.min(PROBLEMS.len() - 1)],
                PROBLEM_VALUE.load(Ordering::SeqCst),
                ROUND.load(Ordering::SeqCst)
            );
        }
        if value == u64::MAX - 1 {
            let [which, rax, round] = core::array::from_fn(|i| USER_FAIL[i].load(Ordering::SeqCst));
            fail!(
                "after syscall round {round}, user mode found {} wrong (RAX {rax:#x})",
                USER_CHECKS.get(which as usize).copied().unwrap_or("?")
            );
        }
        ensure_eq!(value, PINGPONG_ROUNDS, "rounds user mode reports at exit");
        ensure_eq!(
            ROUND.load(Ordering::SeqCst),
            PINGPONG_ROUNDS,
            "PING calls the kernel answered"
        );
        ensure!(
            events::enabled(),
            "events still masked after leaving user mode"
        );
        Ok(())
    }

    fn peek(user: &UserSpace) -> Outcome {
        let program = arch::peek();
        let (fault, resume) = arch::peek_labels();
        let (fault, resume) = (
            program.relocate(fault, PEEK_AT),
            program.relocate(resume, PEEK_AT),
        );
        probe::arm(resume, false);
        let value = user.run(PEEK_AT, STACK_TOP, exit_only);
        let trapped = probe::take();
        let value = match value {
            Ok(v) => v,
            Err(e) => fail!("entering user mode: {e}"),
        };
        let Some(t) = trapped else {
            fail!(
                "user mode read kernel address {:#x} without a fault (read {value:#x})",
                arch::PEEK_TARGET
            );
        };
        ensure_eq!(t.vector, 14, "user read of kernel memory: vector");
        ensure!(
            t.from_user(),
            "user read of kernel memory: frame CS {:#x} is not RPL 3",
            t.cs as u16
        );
        ensure_eq!(t.rip, fault, "user read of kernel memory: frame RIP");
        ensure_eq!(
            t.cr2,
            Some(arch::PEEK_TARGET),
            "user read of kernel memory: CR2"
        );
        ensure_eq!(
            t.error_code,
            4,
            "user read of kernel memory: error code ({})",
            PageFaultCode(t.error_code)
        );
        ensure_eq!(t.rsp, STACK_TOP, "user read of kernel memory: frame RSP");
        Ok(())
    }
}
