//! Memory: frames (pseudo-physical and machine), the page tables, and the
//! heap.
//!
//! Layout: the image and the builder's bootstrap region start at
//! `layout::VIRT_BASE`; the SDK maps every frame of the domain at
//! `VIRT_BASE + pfn * 4096` (the physmap), so any frame it hands out is
//! already addressable. Frames after the bootstrap region are free and
//! handed out by [`alloc_frame`]; part of them backs the global heap.

pub mod frames;
pub mod p2m;
pub mod pte;

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
mod heap;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
mod paging;

#[cfg(target_os = "none")]
pub use paging::*;

#[cfg(target_os = "none")]
pub(crate) use heap::init as init_heap;
