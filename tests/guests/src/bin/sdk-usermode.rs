//! Guest user mode through the SDK: a user root sharing the kernel's L4
//! slot 0, `HYPERVISOR_iret` to ring 3 with RPL 3, `syscall` from user mode
//! arriving at the CALLBACKTYPE_SYSCALL callback on the `stack_switch`
//! stack, results returned to user mode, and user mode unable to read the
//! kernel (its root does not map it).
#![cfg_attr(target_os = "none", no_std, no_main)]

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
#[allow(unsafe_code)] // reading the user programs' bytes out of the image
mod kernel {
    use core::sync::atomic::{AtomicU64, Ordering};

    use pv_guest_sdk::traps::{self, Exception, TrapFrame};
    use pv_guest_sdk::user::{self, SyscallAction, UserSpace};
    use pv_guest_sdk::{StartInfo, events, println};
    use test_guests::Checks;

    // Two position-independent user programs, copied to USER_CODE.
    // `greet`: write(msg), add(40, 2), exit(1000 * written + sum).
    // `peek`: reads the kernel image's first byte (must fault).
    core::arch::global_asm!(
        r#"
        .pushsection .rodata.sdk_user_programs, "a"
        .balign 16
    sdk_user_greet:
        lea rdi, [rip + 10f]
        mov esi, 26                 # the message's length
        mov eax, 1
        syscall
        mov r12, rax
        mov edi, 40
        mov esi, 2
        mov eax, 2
        syscall
        imul rdi, r12, 1000
        add rdi, rax
        mov eax, 60
        syscall
        ud2
    10: .ascii "hello from guest user mode"
    sdk_user_greet_end:
        .balign 16
    sdk_user_peek:
        movabs rax, 0xffffffff80000000
        mov rax, [rax]
        mov edi, 1
        mov eax, 60
        syscall
        ud2
    sdk_user_peek_end:
        .popsection
        "#
    );

    unsafe extern "C" {
        static sdk_user_greet: u8;
        static sdk_user_greet_end: u8;
        static sdk_user_peek: u8;
        static sdk_user_peek_end: u8;
    }

    fn program(start: *const u8, end: *const u8) -> &'static [u8] {
        // SAFETY: both labels delimit bytes of .rodata in this image.
        unsafe { core::slice::from_raw_parts(start, end as usize - start as usize) }
    }

    const USER_CODE: u64 = 0x40_0000;
    const USER_STACK_TOP: u64 = 0x80_0000;

    static WRITE_OK: AtomicU64 = AtomicU64::new(0);
    static FRAME_OK: AtomicU64 = AtomicU64::new(0);
    static CALLS: AtomicU64 = AtomicU64::new(0);

    fn syscall(frame: &mut TrapFrame) -> SyscallAction {
        CALLS.fetch_add(1, Ordering::SeqCst);
        // The bounce: from user mode, RCX/R11 are the return RIP/RFLAGS.
        let frame_ok = frame.from_user()
            && frame.cs as u16 == 0xe033
            && frame.rcx == frame.rip
            && frame.rip >= USER_CODE
            && frame.rip < USER_CODE + 4096
            && frame.rsp <= USER_STACK_TOP
            && frame.rsp > USER_STACK_TOP - 4096
            && !events::enabled();
        if frame_ok {
            FRAME_OK.fetch_add(1, Ordering::SeqCst);
        }
        match frame.rax {
            1 => {
                let mut buf = [0u8; 64];
                let len = (frame.rsi as usize).min(buf.len());
                frame.rax = match user::copy_from_user(frame.rdi, &mut buf[..len]) {
                    Ok(()) => {
                        let text = core::str::from_utf8(&buf[..len]).unwrap_or("?");
                        println!("user: {text}");
                        if text == "hello from guest user mode" {
                            WRITE_OK.store(1, Ordering::SeqCst);
                        }
                        len as u64
                    }
                    Err(_) => abi::Errno::Fault.to_ret() as u64,
                };
                SyscallAction::Resume
            }
            2 => {
                frame.rax = frame.rdi + frame.rsi;
                SyscallAction::Resume
            }
            60 => SyscallAction::Exit(frame.rdi),
            _ => {
                frame.rax = abi::Errno::NoSys.to_ret() as u64;
                SyscallAction::Resume
            }
        }
    }

    static USER_FAULT: AtomicU64 = AtomicU64::new(0);

    fn user_fault(e: &Exception, frame: &mut TrapFrame) -> bool {
        if !frame.from_user() {
            return false;
        }
        USER_FAULT.store(e.cr2.unwrap_or(1), Ordering::SeqCst);
        user::exit_session(0xdead)
    }

    pub fn main(_start: &'static StartInfo) -> ! {
        let mut c = Checks::new("sdk-usermode");
        user::set_syscall_handler(syscall);
        traps::set_handler(traps::PAGE_FAULT, user_fault);

        let mut space = match UserSpace::new() {
            Ok(space) => space,
            Err(e) => {
                c.check(false, "a user root is built");
                println!("sdk-usermode: {e}");
                c.finish()
            }
        };
        // SAFETY (of the labels): see `program`.
        let greet = program(&raw const sdk_user_greet, &raw const sdk_user_greet_end);
        let peek = program(&raw const sdk_user_peek, &raw const sdk_user_peek_end);
        c.check(
            space.load(USER_CODE, greet, false).is_ok(),
            "the user program is mapped",
        );
        c.check(
            space.load(USER_STACK_TOP - 4096, &[], true).is_ok(),
            "the user stack is mapped",
        );

        let exit = space.run(USER_CODE, USER_STACK_TOP);
        println!(
            "sdk-usermode: greet exited with {exit:?} after {} system calls",
            CALLS.load(Ordering::SeqCst)
        );
        c.check(
            exit == Ok(26 * 1000 + 42),
            "user code gets results and exits with them",
        );
        c.check(
            WRITE_OK.load(Ordering::SeqCst) == 1,
            "the kernel reads user memory",
        );
        c.check(CALLS.load(Ordering::SeqCst) == 3, "three system calls");
        c.check(
            FRAME_OK.load(Ordering::SeqCst) == 3,
            "syscall frames: RPL 3, RCX = RIP, user RSP, events masked",
        );
        c.check(events::enabled(), "events enabled again after the session");

        // Replace the code page: unmap through the kernel view, load `peek`.
        // SAFETY: nothing of the kernel lives at the user code address.
        let _ = unsafe { pv_guest_sdk::mm::unmap(USER_CODE) };
        c.check(
            space.load(USER_CODE, peek, false).is_ok(),
            "the second program is mapped",
        );
        let exit = space.run(USER_CODE, USER_STACK_TOP);
        println!(
            "sdk-usermode: peek ended with {exit:x?}, fault at {:#x}",
            USER_FAULT.load(Ordering::SeqCst)
        );
        c.check(
            exit == Ok(0xdead),
            "reading the kernel from user mode faults",
        );
        c.check(
            USER_FAULT.load(Ordering::SeqCst) == 0xffff_ffff_8000_0000,
            "CR2 is the kernel address",
        );

        c.finish()
    }
}
