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
pub mod window;

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

/// Why a mapping operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// No free frame for a page table (or for the caller).
    OutOfFrames,
    /// The address is already mapped (`map` never replaces a mapping).
    AlreadyMapped(u64),
    /// The address is not mapped.
    NotMapped(u64),
    /// A 2 MiB or 1 GiB mapping is in the way.
    HugePage(u64),
    /// A table entry names a frame that is not this domain's.
    ForeignTable(p2m::Mfn),
    /// In the hypervisor's hole, or not canonical.
    BadAddress(u64),
    /// The hypervisor refused the update.
    Refused(crate::error::Refusal),
    /// Every page of the map window is in use.
    WindowFull,
    /// The frame is not one of the start-of-day pages a guest shares (a
    /// foreign frame, or one holding the image or the builder's tables).
    NotShareable(p2m::Mfn),
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MapError::OutOfFrames => write!(f, "out of frames"),
            MapError::AlreadyMapped(va) => write!(f, "{va:#x} is already mapped"),
            MapError::NotMapped(va) => write!(f, "{va:#x} is not mapped"),
            MapError::HugePage(va) => write!(f, "{va:#x} is inside a huge page"),
            MapError::ForeignTable(mfn) => write!(f, "page table frame {mfn:#x} is not ours"),
            MapError::BadAddress(va) => write!(f, "{va:#x} cannot be mapped by a guest"),
            MapError::Refused(e) => write!(f, "refused: {e}"),
            MapError::WindowFull => write!(f, "the map window is full"),
            MapError::NotShareable(mfn) => {
                write!(f, "frame {mfn:#x} is not a start-of-day page to share")
            }
        }
    }
}
