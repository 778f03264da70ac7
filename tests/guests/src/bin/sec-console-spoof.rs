//! Security finding 8: console spoofing through `console_io`.
//!
//! Every console line must begin with exactly one source tag, `(hv) ` for
//! hv-core's own lines and `(dN) ` for domain N's text, and a domain's
//! bytes must never drive the operator's terminal. A hypervisor that
//! keeps "at line start" per domain lets a domain that left a line open
//! write its next text without a tag once another source has ended the
//! line on the UART, and one that passes control bytes through lets it
//! erase its own tag with an escape sequence.
//!
//! This guest (run with `loglevel=debug`, so hv-core logs a refused
//! page-table request) writes, each with one `console_io` call:
//! 1. a line without its newline;
//! 2. a refused `mmu_update`, which hv-core logs;
//! 3. `(hv) FORGED ...` and a newline: on hv-core at 0cd41cd this line
//!    reached COM1 without the `(d0) ` tag;
//! 4. a line with `ESC [2K`, a carriage return and `(hv) FORGED2`, which
//!    a terminal shows as a bare `(hv)` line;
//! 5. its result line, then a line left open at power-off (hv-core's
//!    power-off line must still start a line of its own).
//!
//! The guest cannot see the console: the scenario `sec-console-spoof`
//! judges it (`tests/src/lib.rs`, `spoof_check`). The guest's own result
//! line only says that each call was accepted.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use abi::xen::{DOMID_SELF, MmuUpdate};
    use pv_guest_sdk::{StartInfo, hypercall, println, sched};
    use test_guests::verdict::{Outcome, result_line};
    use test_guests::{ensure, fail, hc};

    const NAME: &str = "sec-console-spoof";

    pub fn main(_start: &'static StartInfo) -> ! {
        let outcome = run();
        println!("{}", result_line(NAME, &outcome));
        // Left open: hv-core's power-off line comes next.
        let _ = hypercall::console_write(b"sec-console-spoof: a line left open at power-off");
        sched::poweroff()
    }

    fn write(what: &str, bytes: &[u8]) -> Outcome {
        if let Err(e) = hypercall::console_write(bytes) {
            fail!("console_io(CONSOLEIO_write) of {what}: {e}");
        }
        Ok(())
    }

    fn run() -> Outcome {
        write(
            "a line without its newline",
            b"sec-console-spoof: a line left open",
        )?;
        // Machine frame 0 is not ours: refused, and logged at debug level.
        let (ret, _) = hc::mmu_update(&[MmuUpdate { ptr: 0, val: 0 }], DOMID_SELF);
        ensure!(
            ret < 0,
            "mmu_update of an entry in machine frame 0 was accepted ({ret})"
        );
        write(
            "a forged hv-core line",
            b"(hv) FORGED after hv-core's line\n",
        )?;
        write(
            "an escape sequence",
            b"sec-console-spoof: \x1b[2K\r(hv) FORGED2 over an erased line\n",
        )?;
        write(
            "a fresh line starting with a newline",
            b"\n(hv) FORGED3 after a newline of its own\n",
        )?;
        write(
            "control bytes",
            b"sec-console-spoof: bell\x07 backspace\x08 del\x7f osc\x1b]0;title\x07 end\n",
        )?;
        Ok(())
    }
}
