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
//! while the write was in progress), and the write then returned 0.
//!
//! On hv-core at 0cd41cd the whole write was one pass: the upcall came
//! only after it returned.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use core::sync::atomic::{AtomicU64, Ordering};

    use abi::event_channel::{Port, VIRQ_TIMER};
    use abi::ops::{CALLBACKTYPE_EVENT, VCPUOP_STOP_PERIODIC_TIMER};
    use pv_guest_sdk::time::now_ns;
    use pv_guest_sdk::{StartInfo, events, hypercall, println};
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure, ensure_eq, fail, hc};

    const NAME: &str = "sec-console-stall";
    const SIZE: usize = 128 * 1024;
    /// Each line: 63 dots and a newline.
    const LINE: usize = 64;
    const MS: u64 = 1_000_000;
    /// How long to wait for the upcall if the write returned first.
    const GIVE_UP: u64 = 2_000 * MS;

    // The write's `syscall` at a known address, and an event callback
    // that notes where the guest was interrupted before the SDK's entry
    // handles the event.
    #[allow(unsafe_code)]
    mod stubs {
        core::arch::global_asm!(
            r#"
        .section .text.sec_console_stall, "ax"
        /* stall_write(buffer, count) -> console_io(CONSOLEIO_write, count,
           buffer), issued here so that a continuation rewinds the guest
           to `stall_syscall`. */
        .global stall_write
stall_write:
        mov %rdi, %rdx
        mov $0, %edi
        mov ${nr}, %eax
        .global stall_syscall
stall_syscall:
        syscall
        ret

        /* The event callback. Bounce frame at RSP: rcx, r11, rip, cs,
           rflags, rsp, ss; RSI is still the interrupted code's (the
           write's remaining count, after a continuation). */
        .global stall_event_entry
stall_event_entry:
        push %rax
        mov 24(%rsp), %rax
        mov %rax, stall_upcall_rip(%rip)
        mov %rsi, stall_upcall_rsi(%rip)
        pop %rax
        jmp pv_event_entry

        .section .data.sec_console_stall, "aw"
        .balign 8
        .global stall_upcall_rip
stall_upcall_rip:
        .quad 0
        .global stall_upcall_rsi
stall_upcall_rsi:
        .quad 0
        "#,
            nr = const abi::Hypercall::ConsoleIo as u32,
            options(att_syntax)
        );
    }

    #[allow(unsafe_code)]
    unsafe extern "C" {
        fn stall_write(buffer: u64, count: u64) -> i64;
        fn stall_syscall();
        fn stall_event_entry();
        static stall_upcall_rip: u64;
        static stall_upcall_rsi: u64;
    }

    /// Where the timer's upcall found the guest (0: not yet), and RSI then.
    static FIRED_RIP: AtomicU64 = AtomicU64::new(0);
    static FIRED_RSI: AtomicU64 = AtomicU64::new(0);

    fn on_timer(_: Port) {
        #[allow(unsafe_code)]
        // SAFETY: plain statics the callback stub wrote before this upcall
        // (upcalls do not nest: events are masked in the callback).
        let (rip, rsi) = unsafe {
            (
                core::ptr::read_volatile(&raw const stall_upcall_rip),
                core::ptr::read_volatile(&raw const stall_upcall_rsi),
            )
        };
        if FIRED_RIP.load(Ordering::SeqCst) == 0 {
            FIRED_RSI.store(rsi, Ordering::SeqCst);
            FIRED_RIP.store(rip, Ordering::SeqCst);
        }
    }

    pub fn main(_start: &'static StartInfo) -> ! {
        finish(NAME, run())
    }

    fn run() -> Outcome {
        if let Err(e) = events::bind_virq(VIRQ_TIMER, on_timer) {
            fail!("binding VIRQ_TIMER: {e}");
        }
        // Only the one-shot below may raise VIRQ_TIMER.
        ensure_eq!(
            hc::vcpu_op_null(VCPUOP_STOP_PERIODIC_TIMER, 0),
            0,
            "VCPUOP_stop_periodic_timer(vcpu 0)"
        );
        #[allow(unsafe_code)]
        // SAFETY: the stub saves nothing it does not restore and then
        // enters the SDK's event entry with the frame untouched.
        let registered = unsafe {
            hypercall::callback_register(
                CALLBACKTYPE_EVENT,
                stall_event_entry as *const () as u64,
                true,
            )
        };
        if let Err(e) = registered {
            fail!("registering the event callback: {e}");
        }
        let mut filler = alloc::vec![b'.'; SIZE];
        for line in filler.chunks_mut(LINE) {
            line[LINE - 1] = b'\n';
        }
        ensure!(events::enabled(), "events are masked at start of day");

        if let Err(e) = hypercall::set_timer_op(now_ns() + MS) {
            fail!("set_timer_op(now + 1 ms): {e}");
        }
        #[allow(unsafe_code)]
        // SAFETY: `filler` is live and SIZE bytes long; the hypervisor
        // only reads it.
        let ret = unsafe { stall_write(filler.as_ptr() as u64, SIZE as u64) };
        let returned_at = now_ns();
        events::wait_until(|| {
            FIRED_RIP.load(Ordering::SeqCst) != 0 || now_ns() > returned_at + GIVE_UP
        });
        ensure_eq!(ret, 0, "console_io(CONSOLEIO_write, 128 KiB)");

        let rip = FIRED_RIP.load(Ordering::SeqCst);
        let syscall = stall_syscall as *const () as u64;
        ensure!(
            rip != 0,
            "no VIRQ_TIMER upcall within {} ms after the write returned",
            GIVE_UP / MS
        );
        ensure!(
            rip == syscall,
            "the timer's upcall (armed 1 ms ahead) came only after the 128 KiB console_io write \
             had returned (at RIP {rip:#x}; the write's syscall is at {syscall:#x}): the write \
             kept the CPU for the whole 128 KiB"
        );
        println!(
            "{NAME}: the timer's upcall arrived with {} of {SIZE} bytes still to write",
            FIRED_RSI.load(Ordering::SeqCst)
        );
        Ok(())
    }
}
