//! `console_io`: the hypervisor console on COM1. Output is prefixed per
//! line with the domain (`(d0) `) so it is told apart from hv-core's
//! `(hv) ` lines. Any domain may write (a domU's real console is its ring
//! page, served by dom0; this is the debug path Xen also keeps); only dom0
//! reads the input typed on COM1 (see `crate::events`).

use abi::Errno;
use abi::xen::{CONSOLEIO_READ, CONSOLEIO_WRITE};

use crate::arch::serial;
use crate::{domain, events, guest};

/// Bytes copied from the guest per step.
const CHUNK: usize = 128;

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
                let mut done = 0usize;
                let mut chunk = [0u8; CHUNK];
                while done < self.count as usize {
                    if !super::spend() {
                        let rest = self.count as u64 - done as u64;
                        let at = self.buffer + done as u64;
                        super::continue_with([self.cmd as u64, rest, at, 0, 0, 0]);
                        return Ok(0);
                    }
                    let n = (self.count as usize - done).min(CHUNK);
                    guest::read_bytes(&mut chunk[..n], self.buffer + done as u64)?;
                    write_prefixed(id, &chunk[..n]);
                    done += n;
                }
                Ok(0)
            }
            CONSOLEIO_READ if !privileged => Err(Errno::Perm),
            CONSOLEIO_READ => {
                // Bytes may sit in the UART if its interrupt is unavailable.
                events::poll_console_input();
                let mut chunk = [0u8; CHUNK];
                let n = events::take_console_input(&mut chunk[..(self.count as usize).min(CHUNK)]);
                guest::write_bytes(self.buffer, &chunk[..n])?;
                Ok(n as i64)
            }
            _ => Err(Errno::NoSys),
        }
    }
}

fn write_prefixed(id: u16, bytes: &[u8]) {
    let mut at_start = domain::with_current(|d| d.console_at_line_start);
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if at_start {
            let mut prefix = [0u8; 10];
            let prefix = format_prefix(id, &mut prefix);
            serial::write(prefix);
        }
        serial::write(line);
        at_start = line.ends_with(b"\n");
    }
    domain::with_current(|d| d.console_at_line_start = at_start);
}

fn format_prefix(id: u16, buf: &mut [u8; 10]) -> &[u8] {
    use core::fmt::Write;
    struct Cursor<'a>(&'a mut [u8], usize);
    impl Write for Cursor<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.1 + s.len();
            self.0
                .get_mut(self.1..end)
                .ok_or(core::fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.1 = end;
            Ok(())
        }
    }
    let mut cursor = Cursor(buf, 0);
    let _ = write!(cursor, "(d{id}) ");
    let n = cursor.1;
    &buf[..n]
}
