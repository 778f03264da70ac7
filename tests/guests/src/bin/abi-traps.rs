//! Exceptions bounced into the guest kernel through its trap table, each
//! checked in the handler and resumed past the faulting instruction
//! (the handler moves RIP in the bounce frame; the SDK returns with
//! `HYPERVISOR_iret`):
//! - #PF with CR2 (from `vcpu_info.arch.cr2`) and the error code for a
//!   read of an unmapped page (0), a write to a read-only page (P|W) and an
//!   instruction fetch from a no-execute page (P|I/D), all in kernel mode;
//! - #UD (`ud2`), #DE (`div` by zero), #BP (`int3`, a trap: RIP already
//!   past it);
//! - #GP(0) for privileged instructions the hypervisor does not emulate
//!   for a PV kernel: `cli`, `hlt`, `out` to port 0x80 and a `mov` to CR3
//!   of a frame that is not a page table;
//! - the frame: kernel-mode CS (RPL 0), the saved upcall mask in CS bits
//!   32-39 and RFLAGS.IF mirroring it, events masked in the handler
//!   (`TI_MASK_EVENTS`) and unmasked again after the iret.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use pv_guest_sdk::mm::{self, pte};
    use pv_guest_sdk::traps::{self, PageFaultCode};
    use pv_guest_sdk::{StartInfo, events, println};
    use test_guests::probe::{self, Probe, Trapped};
    use test_guests::scratch::Window;
    use test_guests::verdict::{Outcome, Stop, finish};
    use test_guests::{ensure, ensure_eq, fail};

    const NAME: &str = "abi-traps";

    /// Page-fault error code bits.
    const PF_PRESENT: u64 = 1;
    const PF_WRITE: u64 = 2;
    const PF_FETCH: u64 = 0x10;

    pub fn main(_start: &'static StartInfo) -> ! {
        probe::install();
        finish(NAME, run())
    }

    fn run() -> Outcome {
        let window = match Window::new() {
            Ok(w) => w,
            Err(e) => fail!("setting up the scratch window: {e}"),
        };
        page_faults(&window)?;
        simple_exceptions()?;
        privileged_instructions()?;
        frame_and_masking()?;
        println!("{NAME}: #PF #UD #DE #BP #GP delivered with their frames and resumed");
        Ok(())
    }

    /// Runs `probe` and checks it trapped with `vector` at the probe's
    /// faulting instruction (or after it, for a trap), in kernel mode.
    fn expect(what: &str, probe: Probe, arg0: u64, arg1: u64, vector: u8) -> Result<Trapped, Stop> {
        let trapped = match probe::run(probe, arg0, arg1) {
            Ok(_) => fail!("{what}: no exception (vector {vector} expected)"),
            Err(t) => t,
        };
        if trapped.vector != vector {
            fail!(
                "{what}: {} (vector {}, error code {:#x}), not {}",
                traps::exception_name(trapped.vector),
                trapped.vector,
                trapped.error_code,
                traps::exception_name(vector)
            );
        }
        let want_rip = if vector == traps::BREAKPOINT {
            probe.resume_address()
        } else {
            probe.fault_address()
        };
        if probe != Probe::Exec {
            ensure_eq!(trapped.rip, want_rip, "{what}: frame RIP");
        }
        ensure!(
            !trapped.from_user(),
            "{what}: frame CS {:#x} says user mode",
            trapped.cs as u16
        );
        Ok(trapped)
    }

    fn page_faults(window: &Window) -> Outcome {
        // Read of a page nothing maps.
        let unmapped = window.va(0);
        let t = expect(
            "read of an unmapped page",
            Probe::Read,
            unmapped,
            0,
            traps::PAGE_FAULT,
        )?;
        ensure_eq!(t.cr2, Some(unmapped), "read of an unmapped page: CR2");
        ensure_eq!(
            t.error_code,
            0,
            "read of an unmapped page: error code ({})",
            PageFaultCode(t.error_code)
        );

        // The same with DF set: the bounce frame arrives whole (a copy
        // run backwards would put it below the stack pointer), and its
        // RFLAGS keeps the guest's DF, as on Xen.
        let t = expect(
            "read of an unmapped page with DF set",
            Probe::ReadDf,
            unmapped,
            0,
            traps::PAGE_FAULT,
        )?;
        ensure_eq!(t.cr2, Some(unmapped), "read with DF set: CR2");
        ensure_eq!(t.error_code, 0, "read with DF set: error code");
        ensure!(
            t.rflags & (1 << 10) != 0,
            "read with DF set: the frame's RFLAGS {:#x} lost DF",
            t.rflags
        );

        // Write to a read-only mapping of an ordinary frame.
        let frame = alloc_frame()?;
        let ro = window.va(1);
        if let Err(e) = mm::map(ro, frame.mfn, pte::KERNEL_RO) {
            fail!("mapping a frame read-only: {e}");
        }
        ensure!(
            probe::read(ro).is_ok(),
            "reading the read-only page faulted"
        );
        let t = expect(
            "write to a read-only page",
            Probe::Write,
            ro,
            1,
            traps::PAGE_FAULT,
        )?;
        ensure_eq!(t.cr2, Some(ro), "write to a read-only page: CR2");
        ensure_eq!(
            t.error_code,
            PF_PRESENT | PF_WRITE,
            "write to a read-only page: error code ({})",
            PageFaultCode(t.error_code)
        );

        // Instruction fetch from a no-execute page holding a `ret`.
        let code = match mm::alloc_frame_filled(&[0xc3]) {
            Ok(f) => f,
            Err(e) => fail!("allocating a frame: {e}"),
        };
        let nx = window.va(2);
        if let Err(e) = mm::map(nx, code.mfn, pte::KERNEL_RO | pte::NO_EXECUTE) {
            fail!("mapping a frame no-execute: {e}");
        }
        let t = expect(
            "fetch from a no-execute page",
            Probe::Exec,
            nx,
            0,
            traps::PAGE_FAULT,
        )?;
        ensure_eq!(t.rip, nx, "fetch from a no-execute page: frame RIP");
        ensure_eq!(t.cr2, Some(nx), "fetch from a no-execute page: CR2");
        ensure_eq!(
            t.error_code,
            PF_PRESENT | PF_FETCH,
            "fetch from a no-execute page: error code ({})",
            PageFaultCode(t.error_code)
        );
        // The same frame mapped executable runs.
        let x = window.va(3);
        if let Err(e) = mm::map(x, code.mfn, pte::KERNEL_RO) {
            fail!("mapping a frame executable: {e}");
        }
        if let Err(t) = probe::run(Probe::Exec, x, 0) {
            fail!(
                "calling a `ret` on an executable page raised vector {} at {:#x}",
                t.vector,
                t.rip
            );
        }
        Ok(())
    }

    fn alloc_frame() -> Result<mm::Frame, Stop> {
        match mm::alloc_frame() {
            Ok(f) => Ok(f),
            Err(e) => fail!("allocating a frame: {e}"),
        }
    }

    fn simple_exceptions() -> Outcome {
        let t = expect("ud2", Probe::Ud2, 0, 0, traps::INVALID_OPCODE)?;
        ensure_eq!(t.error_code, 0, "ud2: error code");
        expect("div by zero", Probe::Div0, 0, 0, traps::DIVIDE_ERROR)?;
        expect("int3", Probe::Int3, 0, 0, traps::BREAKPOINT)?;
        Ok(())
    }

    /// A PV kernel runs in ring 3: these raise #GP(0), which the
    /// hypervisor bounces unchanged. (Xen emulates a `mov` to CR3 of a
    /// valid L4 as a base-pointer switch; a frame that is not a page
    /// table is refused.)
    fn privileged_instructions() -> Outcome {
        let data = alloc_frame()?;
        for (what, probe, arg) in [
            ("cli", Probe::Cli, 0),
            ("hlt", Probe::Hlt, 0),
            ("out to port 0x80", Probe::Out80, 0),
            ("mov to CR3 of a data frame", Probe::MovCr3, data.maddr()),
        ] {
            let t = expect(what, probe, arg, 0, traps::GENERAL_PROTECTION)?;
            ensure_eq!(t.error_code, 0, "{what}: #GP error code");
        }
        // The data frame is still an ordinary writable page (the failed
        // CR3 load took no reference that would stop that).
        ensure!(
            probe::write(data.va(), 7).is_ok(),
            "the data frame is no longer writable"
        );
        Ok(())
    }

    /// The saved upcall mask travels in the frame both ways.
    fn frame_and_masking() -> Outcome {
        ensure!(events::enabled(), "events are masked before the test");
        let t = expect(
            "ud2 with events enabled",
            Probe::Ud2,
            0,
            0,
            traps::INVALID_OPCODE,
        )?;
        ensure!(
            t.masked_in_handler,
            "events were not masked in the handler (TI_MASK_EVENTS)"
        );
        ensure_eq!(
            (t.cs >> 32) as u8,
            0,
            "saved upcall mask in CS bits 32-39, events enabled"
        );
        ensure!(
            t.rflags & 0x200 != 0,
            "frame RFLAGS.IF clear while events were enabled"
        );
        ensure!(events::enabled(), "events still masked after the iret");

        let was_enabled = events::disable();
        let t = expect(
            "ud2 with events masked",
            Probe::Ud2,
            0,
            0,
            traps::INVALID_OPCODE,
        );
        let still_masked = !events::enabled();
        events::restore(was_enabled);
        let t = t?;
        ensure_eq!(
            (t.cs >> 32) as u8,
            1,
            "saved upcall mask in CS bits 32-39, events masked"
        );
        ensure!(
            t.rflags & 0x200 == 0,
            "frame RFLAGS.IF set while events were masked"
        );
        ensure!(
            still_masked,
            "the iret unmasked events that were masked before the exception"
        );
        Ok(())
    }
}
