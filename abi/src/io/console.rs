//! `io/console.h`: the console page a domU shares with its console back-end.
//!
//! Two byte rings in one page. The guest produces `out` and consumes `in`;
//! the back-end the reverse. Indices are free-running `u32`s (`XENCONS_IDX`)
//! masked with `size - 1` (`MASK_XENCONS_IDX`); each side publishes data
//! before the index and reads data only after seeing the index, then kicks
//! the console event channel (`start_info.console.domU.evtchn`). The init
//! domain has no page: it writes through `console_io` instead.

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bytes in the back-end-to-guest ring (`sizeof(intf->in)`).
pub const CONSOLE_IN_SIZE: u32 = 1024;
/// Bytes in the guest-to-back-end ring (`sizeof(intf->out)`).
pub const CONSOLE_OUT_SIZE: u32 = 2048;

/// `struct xencons_interface`.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ConsoleInterface {
    /// `in`: written by the back-end (keyboard input), read by the guest.
    pub input: [u8; CONSOLE_IN_SIZE as usize],
    /// `out`: written by the guest (console output), read by the back-end.
    pub output: [u8; CONSOLE_OUT_SIZE as usize],
    /// IN (to the back-end): how far the guest has consumed `input`.
    pub in_cons: u32,
    /// OUT (from the back-end): how far the back-end has produced `input`.
    pub in_prod: u32,
    /// OUT (from the back-end): how far the back-end has consumed `output`.
    pub out_cons: u32,
    /// IN (to the back-end): how far the guest has produced `output`.
    pub out_prod: u32,
}

const _: () = {
    assert!(size_of::<ConsoleInterface>() == 3088);
    assert!(offset_of!(ConsoleInterface, input) == 0);
    assert!(offset_of!(ConsoleInterface, output) == 1024);
    assert!(offset_of!(ConsoleInterface, in_cons) == 3072);
    assert!(offset_of!(ConsoleInterface, in_prod) == 3076);
    assert!(offset_of!(ConsoleInterface, out_cons) == 3080);
    assert!(offset_of!(ConsoleInterface, out_prod) == 3084);
    // MASK_XENCONS_IDX needs powers of two.
    assert!(CONSOLE_IN_SIZE.is_power_of_two() && CONSOLE_OUT_SIZE.is_power_of_two());
};
