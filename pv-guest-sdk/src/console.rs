//! The console: `print!`/`println!`, a `log` backend, and line input.
//!
//! Where output goes depends on the domain. The initial domain (and any
//! domain before start of day has found its console page) writes through
//! `console_io(CONSOLEIO_write)`. Other domains write to the console ring
//! page the domain builder gave them (`start_info.console.domU`, see
//! [`crate::console_ring`]) and signal its event channel; dom0's console
//! back-end prints what arrives. When that ring is full the writer waits
//! for the back-end to make room; if the back-end's indices are impossible
//! or it makes no room for [`STALL_NS`], the text goes to `console_io`
//! instead, so output is never lost silently.
//!
//! Each `print!` formats into a small stack buffer and writes it with as
//! few operations as the text needs; there is no lock, so a print from an
//! event handler can never deadlock against the code it interrupted (lines
//! may interleave instead; a ring write itself runs with events masked).

use core::fmt::{self, Write};

use abi::event_channel::Port;
use spin::Once;

use crate::console_ring::ConsoleRing;
use crate::shmem::SharedPage;
use crate::{events, evtchn, hypercall, time};

/// How long a writer waits for a full ring to drain before it gives up on
/// the ring for that text and uses `console_io`.
pub const STALL_NS: u64 = 5_000_000_000;

/// The domU console: the ring page and its event channel.
struct RingConsole {
    ring: ConsoleRing<'static>,
    port: Port,
}

static RING: Once<RingConsole> = Once::new();

/// Switches output and input to the console page `page` and event channel
/// `port` (start of day does this for every domain that is not the
/// initial one and was given a console page).
pub(crate) fn attach_ring(page: &'static SharedPage, port: Port) {
    RING.call_once(|| RingConsole {
        ring: ConsoleRing::new(page),
        port,
    });
    // The back-end signals the port when it has consumed output or typed
    // input; the upcall marks it fired for the waits below.
    let _ = events::unmask(port);
}

/// Whether output goes to a console ring (rather than `console_io`).
pub fn uses_ring() -> bool {
    RING.get().is_some()
}

/// Writes `bytes` to the console: the ring if there is one, else
/// `console_io`.
pub fn write_bytes(bytes: &[u8]) {
    let rest = match RING.get() {
        Some(console) => ring_write(console, bytes, true),
        None => bytes,
    };
    if !rest.is_empty() {
        // Nothing useful to do if the console refuses output.
        let _ = hypercall::console_write(rest);
    }
}

/// Writes `bytes` without ever blocking (for the panic handler): what the
/// ring cannot take at once goes to `console_io`.
pub(crate) fn write_bytes_nonblocking(bytes: &[u8]) {
    let rest = match RING.get() {
        Some(console) => ring_write(console, bytes, false),
        None => bytes,
    };
    if !rest.is_empty() {
        let _ = hypercall::console_write(rest);
    }
}

/// Puts `bytes` on the ring, waiting for room if `wait`; returns what it
/// could not deliver.
fn ring_write<'b>(console: &RingConsole, mut bytes: &'b [u8], wait: bool) -> &'b [u8] {
    let mut stalled_since = None;
    while !bytes.is_empty() {
        // Masked, so an event handler's print cannot interleave inside the
        // index update.
        let Ok(n) = events::without_events(|| console.ring.put(bytes)) else {
            return bytes; // the back-end's indices are impossible
        };
        bytes = &bytes[n..];
        let _ = evtchn::notify(console.port);
        if bytes.is_empty() || !wait {
            break;
        }
        if n > 0 {
            stalled_since = None;
        }
        let since = *stalled_since.get_or_insert_with(time::now_ns);
        if time::now_ns().saturating_sub(since) > STALL_NS {
            break;
        }
        // Full: the back-end signals the port once it has made room.
        let port = console.port;
        let _ = evtchn::wait_timeout(port, 10_000_000);
    }
    bytes
}

/// A `fmt::Write` sink that batches output into hypercall-sized chunks.
pub struct Console {
    buf: [u8; 256],
    len: usize,
    /// Whether a full ring may be waited for (not while panicking).
    blocking: bool,
}

impl Console {
    /// An empty line buffer that waits for room in the console ring when
    /// it is full (`print!` uses one per call).
    pub const fn new() -> Self {
        Self {
            buf: [0; 256],
            len: 0,
            blocking: true,
        }
    }

    /// A sink that never waits for the console ring to drain.
    pub(crate) const fn nonblocking() -> Self {
        Self {
            buf: [0; 256],
            len: 0,
            blocking: false,
        }
    }

    /// Sends what is buffered to the console now.
    pub fn flush(&mut self) {
        if self.len > 0 {
            if self.blocking {
                write_bytes(&self.buf[..self.len]);
            } else {
                write_bytes_nonblocking(&self.buf[..self.len]);
            }
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

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::console::_print(format_args!($($arg)*)));
}

/// Prints to the console, with a newline.
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

/// Console input: the initial domain reads `console_io(CONSOLEIO_read)`
/// and learns of new bytes from `VIRQ_CONSOLE`; other domains read their
/// console ring's input half and learn of new bytes from its event
/// channel. Either way reading blocks the vCPU instead of polling.
pub mod input {
    use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use abi::event_channel::{Port, VIRQ_CONSOLE};

    use super::{RING, write_bytes};
    use crate::line_editor::{Feed, LineEditor};
    use crate::{Error, events, evtchn, hypercall};

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
        if let Some(console) = RING.get() {
            return loop {
                // Clear before reading: input arriving after the read
                // marks the port again and the wait returns at once.
                evtchn::take_fired(console.port);
                let n = events::without_events(|| console.ring.get(buf))
                    .map_err(|_| Error::Hypervisor(abi::Errno::Io))?;
                if n > 0 {
                    // Tell the back-end there is room again.
                    let _ = evtchn::notify(console.port);
                    break Ok(n);
                }
                evtchn::wait(console.port);
            };
        }
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
        /// A reader with nothing typed yet.
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
                        Feed::Echo(b) => write_bytes(&[b]),
                        Feed::Erase => write_bytes(b"\x08 \x08"),
                        Feed::Line => {
                            write_bytes(b"\n");
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
