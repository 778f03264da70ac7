//! Ending the domain: power-off, reboot and crash.

use abi::ops::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT};

use crate::hypercall;

/// Asks the hypervisor to end the domain with `reason`; if it refuses, the
/// vCPU blocks forever.
pub fn shutdown(reason: u32) -> ! {
    let _ = hypercall::sched_shutdown(reason);
    // Refused (or an implementation that returns): nothing left to run.
    crate::events::disable();
    loop {
        let _ = hypercall::sched_block();
    }
}

/// Powers the domain off. For Xen's initial domain this halts the machine.
pub fn poweroff() -> ! {
    shutdown(SHUTDOWN_POWEROFF)
}

/// Reboots the domain (`SHUTDOWN_reboot`).
pub fn reboot() -> ! {
    shutdown(SHUTDOWN_REBOOT)
}

/// Ends the domain as crashed (what the panic handler does).
pub fn crash() -> ! {
    shutdown(SHUTDOWN_CRASH)
}
