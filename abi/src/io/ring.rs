//! `io/ring.h`: the header every shared I/O ring page starts with.
//!
//! `DEFINE_RING_TYPES` lays a page out as this header, then `ring[]`, the
//! slots, each a union of one request and one response, as many as fit in
//! the rest of the page rounded down to a power of two (`__RING_SIZE`).
//! Indices (`RING_IDX`) are free-running and wrap; a slot is
//! `index & (size - 1)`. The SDK's `ring` module implements both ends.

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `RING_IDX`.
pub type RingIdx = u32;

/// The fixed part of `struct name##_sring`: four indices and padding; the
/// slots begin at [`RING_SLOTS_OFFSET`].
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SharedRingHeader {
    /// Written by the front end: requests produced.
    pub req_prod: RingIdx,
    /// Written by the back end: notify me when `req_prod` passes this.
    pub req_event: RingIdx,
    /// Written by the back end: responses produced.
    pub rsp_prod: RingIdx,
    /// Written by the front end: notify me when `rsp_prod` passes this.
    pub rsp_event: RingIdx,
    /// `__pad` (ring.h once kept netfront's smartpoll fields here).
    pub _pad: [u8; 48],
}

/// Where `ring[]` starts in the page.
pub const RING_SLOTS_OFFSET: usize = size_of::<SharedRingHeader>();

const _: () = {
    assert!(size_of::<SharedRingHeader>() == 64);
    assert!(offset_of!(SharedRingHeader, req_prod) == 0);
    assert!(offset_of!(SharedRingHeader, req_event) == 4);
    assert!(offset_of!(SharedRingHeader, rsp_prod) == 8);
    assert!(offset_of!(SharedRingHeader, rsp_event) == 12);
};
