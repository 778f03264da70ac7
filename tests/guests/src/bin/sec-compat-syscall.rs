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
    use abi::Hypercall;
    use abi::ops::{CALLBACKOP_UNREGISTER, CALLBACKTYPE_SYSCALL32};
    use abi::xen::{FLAT_RING3_CS32, FLAT_RING3_SS32};
    use pv_guest_sdk::{StartInfo, println};
    use test_guests::compat::{self, Came, STACK_TOP, Trapped};
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure_eq, fail};

    const NAME: &str = "sec-compat-syscall";
    /// The 32-bit code page: `syscall` at CODE_AT, `sysenter` at
    /// SYSENTER_AT, `ud2` after each.
    const CODE_AT: u64 = 0x10_0000;
    const SYSENTER_AT: u64 = CODE_AT + 0x10;
    /// The selector bits of a CS or SS, whatever its RPL.
    const SELECTOR: u64 = 0xfffc;

    pub fn main(_start: &'static StartInfo) -> ! {
        compat::install();
        finish(NAME, run())
    }

    fn map_low_pages() -> Outcome {
        let mut code = [0x0f, 0x0b].repeat(2048);
        code[..4].copy_from_slice(&[0x0f, 0x05, 0x0f, 0x0b]); // syscall; ud2
        let at = (SYSENTER_AT - CODE_AT) as usize;
        code[at..at + 4].copy_from_slice(&[0x0f, 0x34, 0x0f, 0x0b]); // sysenter; ud2
        if let Err(e) = compat::map_code(CODE_AT, &code) {
            fail!("mapping the 32-bit code page: {e}");
        }
        if let Err(e) = compat::map_stack() {
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
        // SAFETY: `address` is 0 (no callback) or the compat landing stub,
        // which handles the syscall callback's frame.
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
        match compat::jump(CODE_AT) {
            Came::Trap(Trapped {
                vector: 6, rip, cs, ..
            }) => {
                ensure_eq!(rip, CODE_AT, "#UD RIP {when} (the syscall instruction)");
                ensure_eq!(
                    cs & SELECTOR,
                    FLAT_RING3_CS32 as u64 & SELECTOR,
                    "#UD frame CS {when}"
                );
                Ok(())
            }
            other => fail!("compat syscall {when} came back through {other}; expected #UD"),
        }
    }

    fn run() -> Outcome {
        map_low_pages()?;

        // 1. No syscall32 callback yet (the SDK registered only the 64-bit
        // one): #UD at the instruction.
        expect_ud("before any syscall32 callback")?;

        // 2. To the syscall32 callback.
        register_syscall32(compat::landing())?;
        let [rcx, _r11, rip, cs, _rflags, rsp, ss] = match compat::jump(CODE_AT) {
            Came::Callback(frame) => frame,
            other => fail!("compat syscall with a syscall32 callback came back through {other}"),
        };
        ensure_eq!(rip, CODE_AT + 2, "bounce frame RIP");
        ensure_eq!(rcx, CODE_AT + 2, "bounce frame RCX");
        ensure_eq!(
            cs & SELECTOR,
            FLAT_RING3_CS32 as u64 & SELECTOR,
            "bounce frame CS"
        );
        ensure_eq!(rsp, STACK_TOP, "bounce frame RSP");
        ensure_eq!(
            ss & SELECTOR,
            FLAT_RING3_SS32 as u64 & SELECTOR,
            "bounce frame SS"
        );

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
            match compat::jump(SYSENTER_AT) {
                Came::Trap(Trapped { vector: 6, rip, .. }) if rip == SYSENTER_AT => "#UD",
                Came::Trap(Trapped {
                    vector: 13,
                    error_code: 0,
                    rip,
                    ..
                }) if rip == SYSENTER_AT => "#GP(0)",
                other => fail!(
                    "compat sysenter came back through {other}; expected #UD or #GP(0) \
                     at {SYSENTER_AT:#x}"
                ),
            }
        };
        println!("{NAME}: syscall32 callback and #UD as Xen; sysenter refused with {what}");
        Ok(())
    }
}
