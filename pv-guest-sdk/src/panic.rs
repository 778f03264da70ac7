//! The panic handler every guest gets: report on the console, then end the
//! domain as crashed.

use core::sync::atomic::{AtomicBool, Ordering};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    crate::events::disable();
    if !PANICKING.swap(true, Ordering::SeqCst) {
        crate::println!("guest panic: {info}");
    }
    crate::sched::crash()
}
