//! Stopping the machine: QEMU's isa-debug-exit device, and halting.

use x86_64::instructions::{hlt, interrupts, port::Port};

/// The I/O port of QEMU's isa-debug-exit device as `cargo xtask` configures
/// it (`-device isa-debug-exit,iobase=0xf4,iosize=4`).
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Asks QEMU to exit with status `(code << 1) | 1`. Returns if no such
/// device is present.
pub fn debug_exit(code: u32) {
    // SAFETY: only called when the command line says the device is there
    // (`debug-exit`); on QEMU the write ends the process.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(code) }
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    interrupts::disable();
    loop {
        hlt();
    }
}

/// Waits for one interrupt with interrupts enabled, then disables them again.
pub fn wait_for_interrupt() {
    interrupts::enable_and_hlt();
    interrupts::disable();
}
