//! `console_io`: the hypervisor console on COM1. Any domain may write (a
//! domU's real console is its ring page, served by dom0; this is the
//! debug path Xen also keeps); only dom0 reads the input typed on COM1
//! (see `crate::event_delivery`).
//!
//! A write never holds the CPU for long: each pass copies at most
//! [`PASS_BYTES`] into COM1's transmit ring (drained by the UART's
//! interrupt, `arch::serial`) and continues the rest by re-issuing the
//! hypercall. When the ring is full (for a domU: half full, so dom0 keeps
//! room) the vCPU waits until the UART has drained it and other domains
//! run meanwhile; nothing is dropped. What reaches the UART is tagged
//! `(dN) ` per console line and sanitised (`hv_core::console`).

use abi::Errno;
use abi::xen::{CONSOLEIO_READ, CONSOLEIO_WRITE};

use crate::arch::serial::{self, Share};
use crate::{domain, event_delivery, guest};

/// Bytes copied from the guest per step.
const CHUNK: usize = 128;

/// Bytes one pass of a write may take before it lets the CPU go.
const PASS_BYTES: usize = 1024;

#[derive(Clone, Copy, Debug)]
pub struct ConsoleIo {
    pub cmd: u32,
    pub count: u32,
    pub buffer: u64,
}

impl ConsoleIo {
    pub fn handle(self) -> Result<i64, Errno> {
        let (id, privileged) = domain::with_current(|d| (d.id, d.privileged));
        match self.cmd {
            CONSOLEIO_WRITE => {
                let share = if privileged {
                    Share::Whole
                } else {
                    Share::Half
                };
                let count = self.count as usize;
                let mut done = 0usize;
                let mut chunk = [0u8; CHUNK];
                while done < count {
                    if done >= PASS_BYTES || !super::spend() {
                        self.continue_after(done);
                        return Ok(0);
                    }
                    let n = (count - done).min(CHUNK);
                    guest::read_bytes(&mut chunk[..n], self.buffer + done as u64)?;
                    let taken = serial::write_domain(id, &chunk[..n], share);
                    done += taken;
                    if taken < n {
                        event_delivery::wait_for_console_room();
                        self.continue_after(done);
                        return Ok(0);
                    }
                }
                Ok(0)
            }
            CONSOLEIO_READ if !privileged => Err(Errno::Perm),
            CONSOLEIO_READ => {
                // Bytes may sit in the UART if its interrupt is unavailable.
                event_delivery::poll_console_input();
                let mut chunk = [0u8; CHUNK];
                let n = event_delivery::take_console_input(
                    &mut chunk[..(self.count as usize).min(CHUNK)],
                );
                guest::write_bytes(self.buffer, &chunk[..n])?;
                Ok(n as i64)
            }
            _ => Err(Errno::NoSys),
        }
    }

    /// Re-issues the write for what is left after `done` bytes.
    fn continue_after(self, done: usize) {
        let rest = self.count as u64 - done as u64;
        let at = self.buffer + done as u64;
        super::continue_with([self.cmd as u64, rest, at, 0, 0, 0]);
    }
}
