//! Security finding 4: one `console_io(CONSOLEIO_write)` stalls the machine.
//!
//! hv-core runs with interrupts off; a console write that pushes every
//! byte to the UART before it returns keeps them off for as long as the
//! UART takes (a 128 KiB write is about 11 s at 115200 baud), and no other
//! domain runs meanwhile. A hypervisor that does not stall lets the CPU go
//! while such a write is still under way: it copies a bounded part per
//! pass and continues the rest (Xen's continuations), and the UART drains
//! off the hypercall path.
//!
//! This guest arms a one-shot timer 1 ms ahead, events unmasked, then
//! issues one 128 KiB write (lines of dots, so the console stays readable
//! and every byte is printable). The event callback notes where the guest
//! was when the upcall came. PASS iff the timer's upcall arrived at the
//! `syscall` of the write, which a continuation rewinds the guest to (so:
//! while the write was in progress), and the write then returned 0. A try
//! whose upcall came before the write began (a loaded host) is made
//! again with the timer further ahead.
//!
//! On hv-core at 0cd41cd the whole write was one pass: the upcall came
//! only after it returned.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use abi::Hypercall;
    use abi::xen::CONSOLEIO_WRITE;
    use pv_guest_sdk::time::now_ns;
    use pv_guest_sdk::{StartInfo, events, println};
    use test_guests::preempt::{self, When};
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure, ensure_eq, fail};

    const NAME: &str = "sec-console-stall";
    const SIZE: usize = 128 * 1024;
    /// Each line: 63 dots and a newline.
    const LINE: usize = 64;
    const MS: u64 = 1_000_000;
    /// The furthest ahead a retry arms the timer (1, 4, 16, 64 ms): the
    /// write takes seconds at the UART's rate.
    const MAX_DELAY: u64 = 64 * MS;
    /// How long to wait for the upcall if the write returned first.
    const GIVE_UP: u64 = 2_000 * MS;

    pub fn main(_start: &'static StartInfo) -> ! {
        finish(NAME, run())
    }

    fn run() -> Outcome {
        if let Err(what) = preempt::install() {
            fail!("{what} failed");
        }
        let mut filler = alloc::vec![b'.'; SIZE];
        for line in filler.chunks_mut(LINE) {
            line[LINE - 1] = b'\n';
        }
        ensure!(events::enabled(), "events are masked at start of day");

        // A try whose upcall beat the call (the host stalled the guest
        // past the timer) tells nothing; it is made again, the timer
        // further ahead each time.
        let mut delay = MS;
        let upcall = loop {
            if let Err(what) = preempt::arm(now_ns() + delay) {
                fail!("{what}(now + {} ms) failed", delay / MS);
            }
            #[allow(unsafe_code)]
            // SAFETY: `filler` is live and SIZE bytes long; the
            // hypervisor only reads it.
            let ret = unsafe {
                preempt::call(
                    Hypercall::ConsoleIo,
                    [
                        CONSOLEIO_WRITE as u64,
                        SIZE as u64,
                        filler.as_ptr() as u64,
                        0,
                        0,
                    ],
                )
            };
            let returned_at = now_ns();
            events::wait_until(|| preempt::upcall().is_some() || now_ns() > returned_at + GIVE_UP);
            ensure_eq!(ret, 0, "console_io(CONSOLEIO_write, 128 KiB)");
            let Some(upcall) = preempt::upcall() else {
                fail!(
                    "no VIRQ_TIMER upcall within {} ms after the write returned",
                    GIVE_UP / MS
                );
            };
            if upcall.when() != When::BeforeCall {
                break upcall;
            }
            ensure!(
                delay < MAX_DELAY,
                "the timer's upcall came before the write began in every try, up to {} ms \
                 ahead: the host is too loaded to tell",
                delay / MS
            );
            println!(
                "{NAME}: the upcall came before the write began ({} ms ahead); again",
                delay / MS
            );
            delay *= 4;
        };
        ensure!(
            upcall.during_call(),
            "the timer's upcall (armed {} ms ahead) came only after the 128 KiB console_io \
             write had returned (at RIP {:#x}; the write's syscall is at {:#x}): the write kept \
             the CPU for the whole 128 KiB",
            delay / MS,
            upcall.rip,
            preempt::syscall_address()
        );
        println!(
            "{NAME}: the timer's upcall arrived with {} of {SIZE} bytes still to write",
            upcall.rsi
        );
        Ok(())
    }
}
