//! Ending a run: power-off, and the fatal-error stop.
//!
//! What each does depends on `debug-exit` (see `hv_core::cmdline`): test
//! runs end through QEMU's isa-debug-exit device with a status that tells
//! success from failure; otherwise power-off is ACPI S5 and a fatal error
//! halts with its report on the console.

use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use hv_core::cmdline::DebugExit;

use crate::arch::{self, acpi::SoftOff, power};

/// isa-debug-exit codes; QEMU exits with `(code << 1) | 1`, so 33 and 35.
pub const EXIT_SUCCESS: u32 = 0x10;
pub const EXIT_FAILURE: u32 = 0x11;

static MODE: AtomicU8 = AtomicU8::new(0);
/// A fatal stop is under way: the NMI every other CPU gets then halts it.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Whether the machine is stopping after a fatal error (an NMI then
/// halts the CPU that takes it).
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}
static SOFT_OFF: spin::Once<Option<SoftOff>> = spin::Once::new();

fn mode() -> DebugExit {
    match MODE.load(Ordering::Relaxed) {
        1 => DebugExit::Fatal,
        2 => DebugExit::All,
        _ => DebugExit::Off,
    }
}

pub fn set_debug_exit(mode: DebugExit) {
    let raw = match mode {
        DebugExit::Off => 0,
        DebugExit::Fatal => 1,
        DebugExit::All => 2,
    };
    MODE.store(raw, Ordering::Relaxed);
}

pub fn set_soft_off(off: Option<SoftOff>) {
    SOFT_OFF.call_once(|| off);
}

/// Powers the machine off. On QEMU test runs, exits with the success code.
/// Queued console output goes out first (the last lines say why).
pub fn power_off() -> ! {
    arch::serial::flush();
    if mode() == DebugExit::All {
        power::debug_exit(EXIT_SUCCESS);
    }
    match SOFT_OFF.get().copied().flatten() {
        Some(off) => {
            arch::acpi::power_off(&off);
            arch::time::spin_ns(500_000_000);
            log::error!("ACPI S5 did not power the machine off; halting");
        }
        None => log::error!("no ACPI soft-off available; halting"),
    }
    fatal("power-off failed")
}

/// Stops the machine after a fatal error, whose report is already printed
/// (the forced console drains queued output before it writes).
pub fn fatal(reason: &str) -> ! {
    // Every other CPU halts first: left running it would go on with
    // guests and wait for ever on this one (a TLB shootdown it never
    // answers). Only the first CPU to get here sends.
    if !STOPPING.swap(true, Ordering::SeqCst) && arch::percpu::online_count() > 1 {
        arch::lapic::send_nmi_to_others();
    }
    arch::serial::report_then(
        |out| {
            out.write(b"(hv) hv-core stopped: ");
            out.write(reason.as_bytes());
            out.write(b"\n");
        },
        || {
            if mode() != DebugExit::Off {
                power::debug_exit(EXIT_FAILURE);
            }
            power::halt_forever()
        },
    )
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    use core::fmt::Write;
    arch::serial::report_then(
        |out| {
            let _ = writeln!(out, "(hv) FATAL: panic: {}", info.message());
            if let Some(location) = info.location() {
                let _ = writeln!(out, "(hv)   at {location}");
            }
        },
        || fatal("panic"),
    )
}
