//! `console_io`: the hypervisor console on COM1. Any domain may write (a
//! domU's real console is its ring page, served by dom0; this is the
//! debug path Xen also keeps); only dom0 reads the input typed on COM1
//! (see `crate::event_delivery`).
//!
//! A write never holds the CPU for long: each pass copies at most
//! [`PASS_CHUNKS`] chunks into COM1's transmit ring (drained by the UART's
//! interrupt, `arch::serial`) and continues the rest by re-issuing the
//! hypercall. When the ring is full (for a domU: half full, so dom0 keeps
//! room) the vCPU waits until the UART has drained it and other domains
//! run meanwhile; nothing is dropped. What reaches the UART is tagged
//! `(dN) ` per console line and sanitised (`hv_core::console`).

use abi::Errno;
use abi::xen::{CONSOLEIO_READ, CONSOLEIO_WRITE};

use super::Step;
use crate::arch::serial::{self, Share};
use crate::{domain, event_delivery, guest};

/// Bytes copied from the guest per step (one op of the budget).
const CHUNK: usize = 128;

/// Steps one pass of a write may take before it lets the CPU go (1 KiB).
const PASS_CHUNKS: u64 = 8;

/// `console_io(cmd, count, buffer)`.
pub fn console_io(cmd: u32, count: u32, buffer: u64) -> Result<i64, Errno> {
    let bytes = guest::GuestArray::<u8>::new(buffer, count.into());
    match cmd {
        CONSOLEIO_WRITE => write(bytes),
        CONSOLEIO_READ if !domain::current_is_privileged() => Err(Errno::Perm),
        CONSOLEIO_READ => read(bytes),
        _ => Err(Errno::NoSys),
    }
}

/// Copies `bytes` to COM1's ring chunk by chunk, as a batch: preempted by
/// the budget, after [`PASS_CHUNKS`], or when the ring is full (the vCPU
/// then waits for room), it continues with what is left, as Xen's
/// `guest_handle_add_offset` continuation does.
fn write(bytes: guest::GuestArray<u8>) -> Result<i64, Errno> {
    let (id, privileged) = domain::with_current(|d| (d.id, d.privileged));
    let share = if privileged {
        Share::Whole
    } else {
        Share::Half
    };
    let chunks = bytes.len().div_ceil(CHUNK as u64);
    // Bytes of the chunk the ring took before it filled.
    let partial = core::cell::Cell::new(0u64);
    let each = |i: u64| {
        if i >= PASS_CHUNKS {
            return Err(Errno::Restart);
        }
        let from = i * CHUNK as u64;
        let n = (bytes.len() - from).min(CHUNK as u64) as usize;
        let mut chunk = [0u8; CHUNK];
        bytes.read_into(from, &mut chunk[..n])?;
        let taken = serial::write_domain(id, &chunk[..n], share);
        if taken < n {
            partial.set(taken as u64);
            event_delivery::wait_for_console_room();
            return Err(Errno::Restart);
        }
        Ok(Step::Next)
    };
    let resume = |i: u64| {
        let rest = bytes.rest(i * CHUNK as u64 + partial.get())?;
        Ok([CONSOLEIO_WRITE.into(), rest.len(), rest.base(), 0, 0, 0])
    };
    super::steps(chunks, 0, each, resume)?;
    Ok(0)
}

/// What was typed on COM1, at most `bytes.len()` (and one chunk).
fn read(bytes: guest::GuestArray<u8>) -> Result<i64, Errno> {
    // Bytes may sit in the UART if its interrupt is unavailable.
    event_delivery::poll_console_input();
    let mut chunk = [0u8; CHUNK];
    let wanted = bytes.len().min(CHUNK as u64) as usize;
    let n = event_delivery::take_console_input(&mut chunk[..wanted]);
    guest::write_bytes(bytes.base(), &chunk[..n])?;
    Ok(n as i64)
}
