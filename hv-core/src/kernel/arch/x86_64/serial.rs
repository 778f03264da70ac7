//! COM1: hv-core's console, 115200 8N1, shared by hv-core's log and every
//! domain's `console_io` text.
//!
//! Output goes through a transmit ring that COM1's transmit-holding-
//! register-empty (THRE) interrupt drains, so no writer waits for the
//! UART with interrupts off: hv-core runs with them off, and a UART at
//! 115200 baud takes 87 us a byte. What goes into the ring is decided by
//! `hv_core::console` (a source tag at each line start, a line ended when
//! another source comes, domains' bytes sanitised), one ring for all, so
//! lines keep the order they were written in.
//!
//! - Until the interrupt is routed (`enable_interrupts`, late in boot)
//!   every write is drained at once by polling, as before.
//! - hv-core's log never loses a line: when the ring is full it drains
//!   the ring by polling until the line fits.
//! - A domain's write takes what fits under its share of the ring and
//!   says how much; the caller makes the vCPU wait for room
//!   (`transmit_interrupt` reports when there is).
//! - Fatal reports and power-off drain the ring first and then write
//!   synchronously (`flush`, `report_then`), so nothing queued is lost
//!   when the machine stops.

use hv_core::console::{Console, Sink, Source};
use hv_core::slot::Slot;
use uart_16550::backend::PioBackend;
use uart_16550::spec::registers::{IER, LSR};
use uart_16550::{BaudRate, Config, Uart16550};

use super::sync::IrqMutex;

const COM1: u16 = 0x3f8;

/// The transmit ring: 1.4 s of output at 115200 baud.
pub const RING_SIZE: usize = 16 * 1024;

/// Bytes one THRE interrupt may send: a FIFO's worth on real hardware
/// (THRE is set again only when the FIFO is empty); QEMU's UART is ready
/// again at once, so this bounds the time spent in one interrupt there.
const BURST_LIMIT: usize = 256;

/// How much of the ring a writer may fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Share {
    /// All of it (hv-core, dom0: its console back-end forwards every
    /// domU's output).
    Whole,
    /// Half, so a domU writing flat out leaves dom0 room.
    Half,
}

impl Share {
    fn limit(self) -> usize {
        match self {
            Self::Whole => RING_SIZE,
            Self::Half => RING_SIZE / 2,
        }
    }
}

/// Writers waiting for room are woken once the ring has drained to this.
const LOW_WATER: usize = RING_SIZE / 4;

struct Com1 {
    /// A `Slot` (zeros when empty) so that `PORT` stays out of `.data`.
    uart: Slot<Uart16550<PioBackend>>,
    ring: heapless::Deque<u8, RING_SIZE>,
    console: Console,
    /// COM1's interrupt is routed: the THRE interrupt drains the ring.
    interrupts: bool,
    /// The THRE interrupt is enabled in IER.
    thre_enabled: bool,
}

static PORT: IrqMutex<Com1> = IrqMutex::new(Com1 {
    uart: Slot::Empty,
    ring: heapless::Deque::new(),
    console: Console::new(),
    interrupts: false,
    thre_enabled: false,
});

/// The ring as a console sink, up to `limit` bytes queued.
struct Ring<'a> {
    ring: &'a mut heapless::Deque<u8, RING_SIZE>,
    limit: usize,
}

impl Sink for Ring<'_> {
    fn room(&self) -> usize {
        self.limit.saturating_sub(self.ring.len())
    }

    fn put(&mut self, bytes: &[u8]) {
        for &b in bytes {
            // `room` said there is space (hv_core::console checks).
            let _ = self.ring.push_back(b);
        }
    }
}

impl Com1 {
    /// Writes what fits of `bytes` under `limit`; returns how much.
    fn queue(&mut self, source: Source, bytes: &[u8], limit: usize) -> usize {
        let mut ring = Ring {
            ring: &mut self.ring,
            limit,
        };
        self.console.write(source, bytes, &mut ring)
    }

    /// Hands the UART what it can take now, up to `limit` bytes; returns
    /// how many went.
    fn send_ready(&mut self, limit: usize) -> usize {
        let Some(uart) = self.uart.as_mut() else {
            // No UART: output has nowhere to go.
            self.ring.clear();
            return 0;
        };
        let mut sent = 0;
        while sent < limit && !self.ring.is_empty() {
            let (front, _) = self.ring.as_slices();
            let n = uart.send_bytes(&front[..front.len().min(limit - sent)]);
            if n == 0 {
                break;
            }
            for _ in 0..n {
                self.ring.pop_front();
            }
            sent += n;
        }
        sent
    }

    /// Waits for the UART to take the next bytes of the ring (a FIFO's
    /// worth at most).
    fn send_polled(&mut self) {
        while !self.ring.is_empty() && !self.uart.is_empty() {
            if self.send_ready(BURST_LIMIT) > 0 {
                return;
            }
            core::hint::spin_loop();
        }
    }

    /// Drains the ring by polling the UART (interrupts off, or about to
    /// stop), then waits until the last byte has left the transmitter.
    fn drain_polled(&mut self) {
        while !self.ring.is_empty() && !self.uart.is_empty() {
            if self.send_ready(usize::MAX) == 0 {
                core::hint::spin_loop();
            }
        }
        if let Some(uart) = self.uart.as_mut() {
            while !uart.lsr().contains(LSR::TRANSMITTER_EMPTY) {
                core::hint::spin_loop();
            }
        }
    }

    /// Gets queued output moving: drained at once before the interrupt is
    /// routed, else the UART's FIFO filled now and THRE asked for.
    fn start(&mut self) {
        if !self.interrupts {
            self.drain_polled();
            return;
        }
        if self.thre_enabled {
            return;
        }
        self.send_ready(BURST_LIMIT);
        if !self.ring.is_empty() {
            self.set_thre(true);
        }
    }

    fn set_thre(&mut self, on: bool) {
        if let Some(uart) = self.uart.as_mut() {
            if on {
                uart.enable_interrupts(IER::THR_EMPTY);
            } else {
                uart.disable_interrupts(IER::THR_EMPTY);
            }
            self.thre_enabled = on;
        }
    }

    /// Takes every byte waiting in the receiver.
    fn receive(&mut self, each: &mut impl FnMut(u8)) {
        if let Some(uart) = self.uart.as_mut() {
            while let Ok(byte) = uart.try_receive_byte() {
                each(byte);
            }
        }
    }
}

pub fn init() {
    PORT.with(|com1| {
        // SAFETY: COM1's eight I/O ports belong to hv-core alone; nothing
        // else in the system drives them.
        let Ok(mut uart) = (unsafe { Uart16550::new_port(COM1) }) else {
            return;
        };
        let config = Config {
            baud_rate: BaudRate::Baud115200,
            ..Config::default()
        };
        if uart.init(config).is_ok() {
            com1.uart = Slot::Full(uart);
        }
    });
}

/// hv-core's log text (tagged `(hv) `). Never dropped: when the ring is
/// full, the UART is polled until the text fits (as long as the UART
/// takes to send the text itself, not the whole ring).
pub fn write(bytes: &[u8]) {
    PORT.with(|com1| {
        let mut rest = bytes;
        loop {
            let taken = com1.queue(Source::Hypervisor, rest, RING_SIZE);
            rest = &rest[taken..];
            if rest.is_empty() {
                break;
            }
            com1.send_polled();
        }
        com1.start();
    });
}

/// Domain `id`'s `console_io` text: queues what fits under `share` of the
/// ring and returns how many bytes of `bytes` it took. Never waits for
/// the UART once its interrupt is routed.
pub fn write_domain(id: u16, bytes: &[u8], share: Share) -> usize {
    PORT.with(|com1| {
        let taken = com1.queue(Source::Domain(id), bytes, share.limit());
        com1.start();
        taken
    })
}

/// Drains every queued byte to the UART by polling: before the machine
/// powers off, so the last lines are not lost.
pub fn flush() {
    PORT.with(Com1::drain_polled);
}

/// The console for a fatal report: writes go out after everything queued,
/// synchronously, even if COM1's lock is held by the code the fatal error
/// interrupted. Only [`report_then`] hands one out.
pub struct FatalConsole(());

impl FatalConsole {
    /// Writes `bytes` (which carry their own `(hv)` tags).
    pub fn write(&mut self, bytes: &[u8]) {
        // SAFETY: a `FatalConsole` exists only inside `report_then`'s
        // report, after which the machine stops (`then` never returns), so
        // no code this CPU interrupted runs again.
        unsafe {
            PORT.with_forced(|com1| {
                com1.drain_polled();
                let mut rest = bytes;
                while !rest.is_empty() {
                    let taken = com1.queue(Source::Report, rest, RING_SIZE);
                    rest = &rest[taken..];
                    com1.drain_polled();
                }
            })
        }
    }
}

impl core::fmt::Write for FatalConsole {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write(s.as_bytes());
        Ok(())
    }
}

/// The fatal path: runs `report` with the forced console, then `then`,
/// which stops the machine. The console may break COM1's lock only
/// because nothing after it returns to the code that held the lock.
pub fn report_then(report: impl FnOnce(&mut FatalConsole), then: fn() -> !) -> ! {
    report(&mut FatalConsole(()));
    then()
}

/// COM1's interrupt is routed: receive interrupts on, and from now on the
/// THRE interrupt drains the transmit ring.
pub fn enable_interrupts() {
    PORT.with(|com1| {
        let Some(uart) = com1.uart.as_mut() else {
            return;
        };
        uart.enable_interrupts(IER::DATA_READY);
        com1.interrupts = true;
        com1.start();
    });
}

/// COM1's interrupt: passes each received byte to `each`, sends what the
/// transmitter can take, and returns whether the ring has drained enough
/// for waiting writers to go on.
///
/// The ISA line is edge-triggered, and it stays high while any source is
/// pending, so the handler leaves no source pending unseen: THRE is
/// switched off while the ring is served and the receiver emptied, then
/// back on if bytes remain, which raises the line afresh (or the
/// transmitter, still busy, raises it when its FIFO empties).
pub fn transmit_interrupt(mut each: impl FnMut(u8)) -> bool {
    PORT.with(|com1| {
        if !com1.interrupts {
            com1.receive(&mut each);
            return true;
        }
        com1.set_thre(false);
        com1.send_ready(BURST_LIMIT);
        com1.receive(&mut each);
        if !com1.ring.is_empty() {
            com1.set_thre(true);
        }
        com1.ring.len() <= LOW_WATER
    })
}

/// Whether the ring has drained enough for waiting writers to go on (the
/// test [`transmit_interrupt`] makes), for a writer that has just listed
/// itself as waiting: the interrupt may have come before it did.
pub fn writers_may_go_on() -> bool {
    PORT.with(|com1| com1.ring.len() <= LOW_WATER)
}

/// Takes every byte waiting in COM1's receiver.
pub fn drain_input(mut each: impl FnMut(u8)) {
    PORT.with(|com1| com1.receive(&mut each));
}
