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
