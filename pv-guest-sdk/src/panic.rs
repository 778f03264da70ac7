//! The panic handler every guest gets: report on the console, then end the
//! domain as crashed.

use core::sync::atomic::{AtomicBool, Ordering};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    crate::events::disable();
    if !PANICKING.swap(true, Ordering::SeqCst) {
        // Never waits on a console ring (the back-end may be what is
        // stuck); what the ring cannot take goes to console_io.
        use core::fmt::Write;
        let mut console = crate::console::Console::nonblocking();
        let _ = writeln!(console, "guest panic: {info}");
    }
    crate::sched::crash()
}
