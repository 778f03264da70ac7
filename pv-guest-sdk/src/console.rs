//! The hypervisor console: `print!`/`println!`, a `log` backend, and line
//! input for the initial domain.
//!
//! Output goes through `console_io(CONSOLEIO_write)`. Each `print!` formats
//! into a small stack buffer and writes it with as few hypercalls as the
//! text needs; there is no lock, so a print from an event handler can never
//! deadlock against the code it interrupted (lines may interleave instead).

use core::fmt::{self, Write};

use crate::hypercall;

/// A `fmt::Write` sink that batches output into hypercall-sized chunks.
pub struct Console {
    buf: [u8; 256],
    len: usize,
}

impl Console {
    pub const fn new() -> Self {
        Self {
            buf: [0; 256],
            len: 0,
        }
    }

    pub fn flush(&mut self) {
        if self.len > 0 {
            // Nothing useful to do if the console refuses output.
            let _ = hypercall::console_write(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &byte in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = byte;
            self.len += 1;
        }
        Ok(())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.flush();
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let mut console = Console::new();
    let _ = console.write_fmt(args);
}

/// Prints to the hypervisor console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::console::_print(format_args!($($arg)*)));
}

/// Prints to the hypervisor console, with a newline.
#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::console::_print(format_args!("{}\n", format_args!($($arg)*))));
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            _print(format_args!("[{:5}] {}\n", record.level(), record.args()));
        }
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Installs the console as the `log` backend at `level` (start of day does
/// this with `loglevel=` from the command line, default `info`).
pub fn init_log(level: log::LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Console input for the initial domain: bytes come from
/// `console_io(CONSOLEIO_read)`, and `VIRQ_CONSOLE` says when there are new
/// ones, so reading blocks the vCPU instead of polling.
pub mod input {
    use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use abi::event_channel::{Port, VIRQ_CONSOLE};

    use crate::line_editor::{Feed, LineEditor};
    use crate::{events, hypercall};

    static PORT: AtomicU32 = AtomicU32::new(u32::MAX);
    static ARRIVED: AtomicBool = AtomicBool::new(false);

    fn on_input(_: Port) {
        ARRIVED.store(true, Ordering::SeqCst);
    }

    fn bind() -> crate::Result<()> {
        if PORT.load(Ordering::SeqCst) == u32::MAX {
            let port = events::bind_virq(VIRQ_CONSOLE, on_input)?;
            PORT.store(port, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Reads whatever input is pending, blocking until there is some.
    pub fn read(buf: &mut [u8]) -> crate::Result<usize> {
        bind()?;
        loop {
            // Clear before reading: input arriving after the read raises
            // the flag again and the wait below returns at once.
            ARRIVED.store(false, Ordering::SeqCst);
            let n = hypercall::console_read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            events::wait_until(|| ARRIVED.load(Ordering::SeqCst));
        }
    }

    /// A line reader that echoes what it takes.
    pub struct LineReader<const N: usize> {
        editor: LineEditor<N>,
        pending: [u8; 64],
        start: usize,
        end: usize,
    }

    impl<const N: usize> LineReader<N> {
        pub const fn new() -> Self {
            Self {
                editor: LineEditor::new(),
                pending: [0; 64],
                start: 0,
                end: 0,
            }
        }

        /// Blocks until a whole line has been typed; returns it (without
        /// the line end). Bytes after the line end stay for the next call.
        pub fn read_line(&mut self) -> crate::Result<&str> {
            self.editor.clear();
            loop {
                if self.start == self.end {
                    self.end = read(&mut self.pending)?;
                    self.start = 0;
                }
                while self.start < self.end {
                    let byte = self.pending[self.start];
                    self.start += 1;
                    match self.editor.feed(byte) {
                        Feed::Echo(b) => {
                            let _ = hypercall::console_write(&[b]);
                        }
                        Feed::Erase => {
                            let _ = hypercall::console_write(b"\x08 \x08");
                        }
                        Feed::Line => {
                            let _ = hypercall::console_write(b"\n");
                            return Ok(self.editor.line());
                        }
                        Feed::Nothing => {}
                    }
                }
            }
        }
    }

    impl<const N: usize> Default for LineReader<N> {
        fn default() -> Self {
            Self::new()
        }
    }
}
