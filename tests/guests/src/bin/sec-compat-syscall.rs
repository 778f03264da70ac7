//! Security finding 1: `syscall` from a 32-bit code segment.
//!
//! A PV guest may far-jump to the flat 32-bit ring-3 code segment
//! (0xe023) and execute `syscall` there. On AMD CPUs (and QEMU) the CPU
//! then enters ring 0 at IA32_CSTAR with the guest's stack; a hypervisor
//! that leaves CSTAR unset jumps to address 0 at CPL 0. Xen 4.17 points
//! CSTAR at an entry stub and, for a 64-bit PV guest in either guest
//! mode, bounces the call to the CALLBACKTYPE_syscall32 callback, or
//! raises #UD at the `syscall` when there is none (it does not fall back
//! to the 64-bit syscall callback).
//!
//! This guest, in guest kernel mode, checks:
//! - with a syscall32 callback registered, a compat-mode `syscall` lands
//!   there with Xen's frame: RCX and RIP the address after the `syscall`,
//!   the 32-bit CS (RPL 0: from guest kernel mode), the compat stack;
//! - with none (the SDK's 64-bit syscall callback still registered), the
//!   same `syscall` raises #UD at the instruction, in the 32-bit segment;
//! - where long mode has no SYSENTER (AMD; QEMU's TCG runs it anyway),
//!   `sysenter` from compat mode faults at the instruction (#GP(0) or
//!   #UD) instead of entering ring 0.
//!
//! On hv-core at 0cd41cd the first `syscall` stopped the machine (ring 0
//! at RIP 0): no result line.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use core::sync::atomic::{AtomicU64, Ordering};

    use abi::Hypercall;
    use abi::ops::{CALLBACKOP_UNREGISTER, CALLBACKTYPE_SYSCALL32};
    use abi::xen::{FLAT_RING3_CS32, FLAT_RING3_SS32};
    use pv_guest_sdk::mm::{self, pte};
    use pv_guest_sdk::traps::{self, Exception, TrapFrame};
    use pv_guest_sdk::{StartInfo, println};
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure, ensure_eq, fail};

    const NAME: &str = "sec-compat-syscall";
    /// The 32-bit code page and the compat stack, below 4 GiB.
    const CODE_AT: u64 = 0x10_0000;
    const STACK_AT: u64 = 0x10_1000;
    const STACK_TOP: u64 = 0x10_2000;
    /// `syscall` at CODE_AT, `sysenter` at SYSENTER_AT; `ud2` after each.
    const SYSENTER_AT: u64 = CODE_AT + 0x10;

    // The probe's own stubs: the rest of the guest stays safe Rust.
    #[allow(unsafe_code)]
    mod stubs {
        core::arch::global_asm!(
            r#"
        .section .text.sec_compat, "ax"
        /* compat_probe(target32, stack_top) -> 1 (syscall32 callback) or
           2 (resumed by a trap handler): far-jumps into the 32-bit
           segment at `target32` on the given stack. */
        .global compat_probe
compat_probe:
        push %rbx
        push %rbp
        push %r12
        push %r13
        push %r14
        push %r15
        mov %rsp, compat_saved_rsp(%rip)
        mov %rsi, %rsp
        mov %edi, compat_target(%rip)
        ljmpl *compat_target(%rip)

        /* The syscall32 callback: 64-bit guest kernel mode, Xen's bounce
           frame (rcx, r11, rip, cs, rflags, rsp, ss) at RSP. */
        .global compat_landing
compat_landing:
        lea compat_frame(%rip), %rax
        .set i, 0
        .rept 7
        mov i*8(%rsp), %rcx
        mov %rcx, i*8(%rax)
        .set i, i + 1
        .endr
        mov compat_saved_rsp(%rip), %rsp
        mov $1, %eax
        jmp compat_return

        .global compat_trap_resume
compat_trap_resume:
        mov compat_saved_rsp(%rip), %rsp
        mov $2, %eax
compat_return:
        pop %r15
        pop %r14
        pop %r13
        pop %r12
        pop %rbp
        pop %rbx
        ret

        .section .data.sec_compat, "aw"
        .balign 8
compat_saved_rsp:
        .quad 0
        /* A far jump rather than a far return: QEMU's TCG pops a far
           return's frame as a supervisor access, which SMAP refuses. The
           pointer is m16:32, the form AMD and Intel both take. */
compat_target:
        .long 0
        .word {cs32}
        .global compat_frame
compat_frame:
        .zero 56
        "#,
            cs32 = const super::FLAT_RING3_CS32,
            options(att_syntax)
        );
    }

    #[allow(unsafe_code)]
    unsafe extern "C" {
        fn compat_probe(target: u64, stack_top: u64) -> u64;
        fn compat_landing();
        fn compat_trap_resume();
        static compat_frame: [u64; 7];
    }

    /// What the trap handler saw: vector, error code, RIP, CS (0: none).
    static TRAPPED: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

    static CR2: AtomicU64 = AtomicU64::new(0);

    fn on_trap(exception: &Exception, frame: &mut TrapFrame) -> bool {
        CR2.store(exception.cr2.unwrap_or(0), Ordering::SeqCst);
        for (slot, value) in TRAPPED.iter().zip([
            exception.vector as u64 + 1,
            exception.error_code,
            frame.rip,
            frame.cs & 0xffff,
        ]) {
            slot.store(value, Ordering::SeqCst);
        }
        // Back to 64-bit guest kernel mode (RPL 0 in an iret frame means
        // kernel mode), at the resume label; it reloads its own stack.
        frame.rip = compat_trap_resume as *const () as u64;
        frame.cs = (frame.cs & !0xffff) | (abi::xen::FLAT_KERNEL_CS64 as u64 & !3);
        frame.ss = abi::xen::FLAT_KERNEL_SS64 as u64;
        true
    }

    fn take_trap() -> Option<(u8, u64, u64, u64)> {
        let v: [u64; 4] = core::array::from_fn(|i| TRAPPED[i].swap(0, Ordering::SeqCst));
        (v[0] != 0).then(|| ((v[0] - 1) as u8, v[1], v[2], v[3]))
    }

    fn probe(target: u64) -> u64 {
        #[allow(unsafe_code)]
        // SAFETY: `target` is 32-bit code of ours that ends in a bounce to
        // `compat_landing` or a trap whose handler resumes at
        // `compat_trap_resume`; both restore the callee-saved registers and
        // the stack `compat_probe` saved.
        unsafe {
            compat_probe(target, STACK_TOP)
        }
    }

    fn landed_frame() -> [u64; 7] {
        #[allow(unsafe_code)]
        // SAFETY: a plain static the landing stub fills before returning.
        unsafe {
            core::ptr::read_volatile(&raw const compat_frame)
        }
    }

    pub fn main(_start: &'static StartInfo) -> ! {
        for vector in [
            traps::INVALID_OPCODE,
            traps::GENERAL_PROTECTION,
            traps::PAGE_FAULT,
        ] {
            traps::set_handler(vector, on_trap);
        }
        finish(NAME, run())
    }

    fn map_low_pages() -> Outcome {
        let mut code = [0x0f, 0x0b].repeat(2048);
        code[..4].copy_from_slice(&[0x0f, 0x05, 0x0f, 0x0b]); // syscall; ud2
        let at = (SYSENTER_AT - CODE_AT) as usize;
        code[at..at + 4].copy_from_slice(&[0x0f, 0x34, 0x0f, 0x0b]); // sysenter; ud2
        let frame = match mm::alloc_frame_filled(&code) {
            Ok(f) => f,
            Err(e) => fail!("allocating the code page: {e}"),
        };
        if let Err(e) = mm::map(CODE_AT, frame.mfn, pte::PRESENT | pte::USER) {
            fail!("mapping the 32-bit code page: {e}");
        }
        let stack = match mm::alloc_frame() {
            Ok(f) => f,
            Err(e) => fail!("allocating the compat stack: {e}"),
        };
        if let Err(e) = mm::map(
            STACK_AT,
            stack.mfn,
            pte::PRESENT | pte::WRITABLE | pte::USER | pte::NO_EXECUTE,
        ) {
            fail!("mapping the compat stack: {e}");
        }
        Ok(())
    }

    fn is_intel() -> bool {
        let id = core::arch::x86_64::__cpuid(0);
        (id.ebx, id.edx, id.ecx) == (0x756e_6547, 0x4965_6e69, 0x6c65_746e)
    }

    fn register_syscall32(address: u64) -> Outcome {
        #[allow(unsafe_code)]
        // SAFETY: `address` is 0 (no callback) or compat_landing, which
        // handles the syscall callback's frame.
        let registered = unsafe {
            pv_guest_sdk::hypercall::callback_register(CALLBACKTYPE_SYSCALL32, address, true)
        };
        if let Err(e) = registered {
            fail!("registering syscall32 callback {address:#x}: {e}");
        }
        Ok(())
    }

    /// A compat-mode `syscall` must raise #UD at the instruction.
    fn expect_ud(when: &str) -> Outcome {
        let how = probe(CODE_AT);
        pv_guest_sdk::events::enable();
        match take_trap() {
            Some((6, _, rip, cs)) => {
                ensure_eq!(rip, CODE_AT, "#UD RIP {when} (the syscall instruction)");
                ensure_eq!(
                    cs & 0xfffc,
                    FLAT_RING3_CS32 as u64 & !3,
                    "#UD frame CS {when}"
                );
                Ok(())
            }
            Some((vector, code, rip, cs)) => fail!(
                "compat syscall {when} raised vector {vector} (error {code:#x}, cr2 {:#x}) at {rip:#x}, \
                 CS {cs:#x}; expected #UD",
                CR2.load(Ordering::SeqCst)
            ),
            None => fail!(
                "compat syscall {when} came back without #UD (how {how}: 1 means a callback ran)"
            ),
        }
    }

    fn run() -> Outcome {
        map_low_pages()?;

        // 1. No syscall32 callback yet (the SDK registered only the 64-bit
        // one): #UD at the instruction.
        expect_ud("before any syscall32 callback")?;

        // 2. To the syscall32 callback.
        register_syscall32(compat_landing as *const () as u64)?;
        let how = probe(CODE_AT);
        if let Some((vector, code, rip, cs)) = take_trap() {
            fail!(
                "compat syscall with a syscall32 callback raised vector {vector} \
                 (error {code:#x}) at {rip:#x}, CS {cs:#x}"
            );
        }
        ensure_eq!(
            how,
            1,
            "how the compat syscall came back (1: syscall32 callback)"
        );
        pv_guest_sdk::events::enable();
        let [rcx, _r11, rip, cs, _rflags, rsp, ss] = landed_frame();
        ensure_eq!(rip, CODE_AT + 2, "bounce frame RIP");
        ensure_eq!(rcx, CODE_AT + 2, "bounce frame RCX");
        ensure_eq!(cs & 0xfffc, FLAT_RING3_CS32 as u64 & !3, "bounce frame CS");
        ensure_eq!(rsp, STACK_TOP, "bounce frame RSP");
        ensure_eq!(ss & 0xfffc, FLAT_RING3_SS32 as u64 & !3, "bounce frame SS");

        // 3. The callback cleared again (Xen refuses CALLBACKOP_unregister
        // for it, -EINVAL; registering address 0 clears it).
        let kind = CALLBACKTYPE_SYSCALL32;
        #[allow(unsafe_code)]
        // SAFETY: unregistering only reads the callback type we point at.
        let ret = unsafe {
            test_guests::arch::hypercall(
                Hypercall::CallbackOp as u32,
                [
                    CALLBACKOP_UNREGISTER as u64,
                    &kind as *const u16 as u64,
                    0,
                    0,
                    0,
                ],
            )
        };
        ensure_eq!(ret, -22, "CALLBACKOP_unregister of the syscall32 callback");
        register_syscall32(0)?;
        expect_ud("after the syscall32 callback was cleared")?;

        // 4. sysenter from compat mode, where the CPU has no SYSENTER in
        // long mode (AMD; QEMU's TCG runs it anyway): the hypervisor must
        // not have pointed it into ring 0, so it faults at the instruction.
        // (On Intel it enters the hypervisor, which wants a sysenter
        // callback and a guest stack: a guest-kernel `sysenter` has
        // neither, so it is not tried there.)
        let what = if is_intel() {
            "not tried (Intel)"
        } else {
            let how = probe(SYSENTER_AT);
            pv_guest_sdk::events::enable();
            let what = match take_trap() {
                Some((6, _, rip, _)) if rip == SYSENTER_AT => "#UD",
                Some((13, 0, rip, _)) if rip == SYSENTER_AT => "#GP(0)",
                Some((vector, code, rip, cs)) => fail!(
                    "compat sysenter raised vector {vector} (error {code:#x}) at {rip:#x}, \
                     CS {cs:#x}; expected #UD or #GP(0) at {SYSENTER_AT:#x}"
                ),
                None => fail!("compat sysenter came back without a trap (how {how})"),
            };
            ensure!(
                how == 2,
                "compat sysenter came back {how}, expected through the trap handler"
            );
            what
        };
        println!("{NAME}: syscall32 callback and #UD as Xen; sysenter refused with {what}");
        Ok(())
    }
}
