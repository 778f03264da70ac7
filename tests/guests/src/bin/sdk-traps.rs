//! Exceptions bounced by the hypervisor reach the SDK's handlers with the
//! PV64 frame (RIP, CS with RPL 0 for kernel mode and the saved upcall mask,
//! RFLAGS.IF mirroring that mask, RSP, error code, CR2 for page faults),
//! events are masked inside the handler, and HYPERVISOR_iret resumes where
//! the handler says with the mask restored.
#![cfg_attr(target_os = "none", no_std, no_main)]

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
#[allow(unsafe_code)] // the faults themselves are inline assembly
mod kernel {
    use core::arch::asm;
    use core::sync::atomic::{AtomicU64, Ordering};

    use pv_guest_sdk::traps::{self, Exception, TrapFrame};
    use pv_guest_sdk::{StartInfo, events, println};
    use test_guests::Checks;

    static LAST_VECTOR: AtomicU64 = AtomicU64::new(u64::MAX);
    static LAST_ERROR: AtomicU64 = AtomicU64::new(0);
    static LAST_CR2: AtomicU64 = AtomicU64::new(0);
    static LAST_CS: AtomicU64 = AtomicU64::new(0);
    static LAST_RFLAGS: AtomicU64 = AtomicU64::new(0);
    static LAST_RSP: AtomicU64 = AtomicU64::new(0);
    static MASKED_INSIDE: AtomicU64 = AtomicU64::new(0);

    /// Records the exception and resumes at the address in R12 (the test
    /// code puts its recovery label there before faulting).
    fn record(e: &Exception, frame: &mut TrapFrame) -> bool {
        LAST_VECTOR.store(e.vector as u64, Ordering::SeqCst);
        LAST_ERROR.store(e.error_code, Ordering::SeqCst);
        LAST_CR2.store(e.cr2.unwrap_or(0), Ordering::SeqCst);
        LAST_CS.store(frame.cs, Ordering::SeqCst);
        LAST_RFLAGS.store(frame.rflags, Ordering::SeqCst);
        LAST_RSP.store(frame.rsp, Ordering::SeqCst);
        MASKED_INSIDE.store(!events::enabled() as u64, Ordering::SeqCst);
        if e.vector == traps::BREAKPOINT {
            // int3 is a trap: RIP is already past it.
            return true;
        }
        frame.rip = frame.r12;
        true
    }

    /// Runs `$insn` with R12 = the label after it; returns RSP at the fault.
    /// `{arg}` in the instruction is a register holding `arg`.
    macro_rules! fault {
        ($insn:literal) => {
            fault!($insn, 0u64)
        };
        ($insn:literal, $arg:expr) => {{
            let rsp: u64;
            // SAFETY: the instruction faults and the handler resumes at the
            // label in R12; nothing else changes.
            unsafe {
                asm!(
                    "lea r12, [rip + 2f]",
                    "/* {arg} */",
                    "mov {rsp}, rsp",
                    $insn,
                    "2:",
                    rsp = out(reg) rsp,
                    arg = in(reg) $arg,
                    out("r12") _,
                    out("rax") _,
                    out("rdx") _,
                );
            }
            rsp
        }};
    }

    fn last() -> u64 {
        LAST_VECTOR.swap(u64::MAX, Ordering::SeqCst)
    }

    pub fn main(_start: &'static StartInfo) -> ! {
        let mut c = Checks::new("sdk-traps");
        for v in [0, 3, 6, 13, 14] {
            traps::set_handler(v, record);
        }

        let rsp = fault!("int3");
        c.check(last() == 3, "int3 reaches the #BP handler");
        c.check(
            LAST_CS.load(Ordering::SeqCst) as u16 == 0xe030,
            "kernel-mode frame CS is 0xe030 (RPL 0)",
        );
        c.check(
            LAST_CS.load(Ordering::SeqCst) >> 32 & 0xff == 0,
            "saved upcall mask in CS bits 32-39 is 0",
        );
        c.check(
            LAST_RFLAGS.load(Ordering::SeqCst) & 0x200 != 0,
            "frame RFLAGS.IF set while events were enabled",
        );
        c.check(
            LAST_RSP.load(Ordering::SeqCst) == rsp,
            "frame RSP is the interrupted RSP",
        );
        c.check(
            MASKED_INSIDE.load(Ordering::SeqCst) == 1,
            "events masked inside the handler",
        );
        c.check(events::enabled(), "events unmasked again after iret");

        fault!("ud2");
        c.check(last() == 6, "ud2 raises #UD");

        fault!("xor edx, edx\n xor eax, eax\n div {arg}", 0u64);
        c.check(last() == 0, "div by zero raises #DE");

        let was = events::disable();
        fault!("ud2");
        c.check(
            LAST_CS.load(Ordering::SeqCst) >> 32 & 0xff == 1,
            "saved upcall mask is 1 when masked",
        );
        c.check(
            LAST_RFLAGS.load(Ordering::SeqCst) & 0x200 == 0,
            "frame RFLAGS.IF clear when masked",
        );
        c.check(
            !events::enabled(),
            "events stay masked after iret from a masked context",
        );
        events::restore(was);

        fault!("mov rax, [{arg}]", 0x10u64);
        c.check(last() == 14, "reading an unmapped page raises #PF");
        c.check(
            LAST_CR2.load(Ordering::SeqCst) == 0x10,
            "CR2 from vcpu_info is the faulting address",
        );
        c.check(
            LAST_ERROR.load(Ordering::SeqCst) & 0b11 == 0,
            "error code: not present, read",
        );

        fault!("mov byte ptr [{arg}], 0", 0xffff_8000_0000_0000u64);
        c.check(last() == 14, "writing the M2P (read-only) raises #PF");
        c.check(
            LAST_ERROR.load(Ordering::SeqCst) & 0b11 == 0b11,
            "error code: protection, write",
        );

        fault!("int 0x81");
        c.check(last() == 13, "int to an unregistered vector raises #GP");

        println!("traps: #BP #UD #DE #PF #GP delivered and resumed");
        c.finish()
    }
}
