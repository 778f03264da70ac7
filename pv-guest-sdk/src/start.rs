//! Start of day, in Rust: everything between `_start` and the guest's
//! `main`.

use spin::Once;

use crate::start_info::{ConsoleInfo, StartInfo};
use crate::{console, events, mm, println, shared, traps};

static START_INFO: Once<StartInfo<'static>> = Once::new();

/// This domain's start_info (set before the guest's `main` runs).
pub fn start_info() -> &'static StartInfo<'static> {
    START_INFO.get().expect("start_info is set at start of day")
}

/// Checks start_info, maps shared info, installs traps and callbacks, sets
/// up memory and the heap and unmasks events; the guest's `main` is next.
pub(crate) fn start_of_day(raw: &'static abi::xen::StartInfo) -> &'static StartInfo<'static> {
    // The console needs only the hypercall page, which the builder filled.
    let mfn_list = crate::arch::start::builder_mfn_list(raw);
    let start = match StartInfo::new(raw, mfn_list) {
        Ok(start) => START_INFO.call_once(|| start),
        Err(e) => {
            println!("pv-guest-sdk: refusing start_info: {e}");
            crate::sched::crash()
        }
    };
    let level = match start.cmdline_option("loglevel") {
        Some("error") => log::LevelFilter::Error,
        Some("warn") => log::LevelFilter::Warn,
        Some("debug") => log::LevelFilter::Debug,
        Some("trace") => log::LevelFilter::Trace,
        _ => log::LevelFilter::Info,
    };
    console::init_log(level);
    log::debug!("{start:?}");
    step(
        "mapping shared info",
        shared::map(start.shared_info_maddr()),
    );
    step("installing the trap table", traps::init());
    step("registering callbacks", events::init());
    step(
        "setting up memory",
        mm::init(start, crate::arch::start::image_end()),
    );
    attach_console(start);
    // A quarter of what is free, at most 64 MiB, for the heap.
    let heap_pages = (mm::free_frames() / 4).min(64 << 20 >> 12);
    let heap = mm::init_heap(heap_pages);
    log::debug!(
        "heap: {} KiB, {} frames left",
        heap >> 10,
        mm::free_frames()
    );
    events::enable();
    start
}

/// A domain other than the initial one talks through the console page the
/// builder placed after start_info (and its event channel) from here on.
fn attach_console(start: &'static StartInfo<'static>) {
    if let ConsoleInfo::DomU { mfn, evtchn } = start.console()
        && mfn != 0
    {
        match mm::start_of_day_page(start, crate::arch::start::image_end(), mfn) {
            Ok(page) => console::attach_ring(page, evtchn),
            Err(e) => println!("pv-guest-sdk: keeping console_io, console page refused: {e}"),
        }
    }
}

fn step<E: core::fmt::Display>(what: &str, result: Result<(), E>) {
    if let Err(e) = result {
        println!("pv-guest-sdk: start of day failed {what}: {e}");
        crate::sched::crash();
    }
}
