//! COM1: hv-core's console. Everything the hypervisor logs goes here, at
//! 115200 8N1.

use uart_16550::backend::PioBackend;
use uart_16550::{Config, Uart16550};

use super::sync::IrqMutex;

const COM1: u16 = 0x3f8;

static PORT: IrqMutex<Option<Uart16550<PioBackend>>> = IrqMutex::new(None);

pub fn init() {
    PORT.with(|port| {
        // SAFETY: COM1's eight I/O ports belong to hv-core alone; nothing
        // else in the system drives them.
        let Ok(mut uart) = (unsafe { Uart16550::new_port(COM1) }) else {
            return;
        };
        if uart.init(Config::default()).is_ok() {
            *port = Some(uart);
        }
    });
}

fn send(uart: &mut Uart16550<PioBackend>, bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            uart.send_bytes_exact(b"\r");
        }
        uart.send_bytes_exact(&[b]);
    }
}

pub fn write(bytes: &[u8]) {
    PORT.with(|port| {
        if let Some(uart) = port {
            send(uart, bytes);
        }
    });
}

/// Writes even if the lock is held by code the fatal error interrupted.
pub fn write_forced(bytes: &[u8]) {
    PORT.with_forced(|port| {
        if let Some(uart) = port {
            send(uart, bytes);
        }
    });
}

const IER: u16 = COM1 + 1;
const MCR: u16 = COM1 + 4;
const LSR: u16 = COM1 + 5;

/// Asks COM1 to interrupt when a byte arrives (IER receive-data, and OUT2,
/// which gates the UART's interrupt line on PCs).
pub fn enable_receive_interrupt() {
    PORT.with(|_| {
        // SAFETY: COM1's ports are hv-core's; the lock serialises access.
        unsafe {
            x86_64::instructions::port::Port::<u8>::new(IER).write(0x01);
            let mut mcr = x86_64::instructions::port::Port::<u8>::new(MCR);
            let value = mcr.read();
            mcr.write(value | 0x08);
        }
    });
}

/// Takes every byte waiting in COM1's receiver.
pub fn drain_input(mut each: impl FnMut(u8)) {
    PORT.with(|_| {
        // SAFETY: COM1's ports are hv-core's; reading LSR and RBR only
        // consumes received bytes.
        unsafe {
            let mut lsr = x86_64::instructions::port::Port::<u8>::new(LSR);
            let mut rbr = x86_64::instructions::port::Port::<u8>::new(COM1);
            while lsr.read() & 1 != 0 {
                each(rbr.read());
            }
        }
    });
}
