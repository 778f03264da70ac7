//! The `log` backend: every record goes to COM1, one line each, tagged
//! `(hv) ` (by `hv_core::console`, which also starts it on a line of its
//! own when a domain left one unfinished) so that hypervisor lines can be
//! told apart from guests' output.

use core::fmt::{self, Write};

use hv_core::cmdline::LogLevel;
use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::arch::serial;

struct SerialLog;

static LOGGER: SerialLog = SerialLog;

/// Formats into a fixed line buffer so each record reaches the console in
/// one locked write (a longer one in several, each continuing the line).
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                serial::write(&self.buf);
                self.len = 0;
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

impl Log for SerialLog {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = Line {
            buf: [0; 256],
            len: 0,
        };
        let _ = match record.level() {
            Level::Error => writeln!(line, "ERROR: {}", record.args()),
            Level::Warn => writeln!(line, "WARNING: {}", record.args()),
            _ => writeln!(line, "{}", record.args()),
        };
        serial::write(&line.buf[..line.len]);
    }

    fn flush(&self) {}
}

pub fn init() {
    serial::init();
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Info);
}

pub fn set_level(level: LogLevel) {
    log::set_max_level(match level {
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Trace => LevelFilter::Trace,
    });
}
