//! Pages hv-core shares with a guest (shared_info), seen as atomics.
//!
//! The guest changes these words at any time, so hv-core reads and writes
//! them only with atomic operations, through the direct map (which lives as
//! long as hv-core, hence the `'static` references).

use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64};

use super::paging;

/// A 4 KiB page shared with a guest.
#[derive(Clone, Copy)]
pub struct SharedPage {
    virt: u64,
}

impl SharedPage {
    /// The page at machine frame `mfn`; the caller guarantees hv-core owns
    /// it (allocated it and keeps it until the domain is destroyed).
    pub fn new(mfn: u64) -> Self {
        Self {
            virt: paging::phys_to_virt(mfn << 12),
        }
    }

    pub fn u8(&self, offset: usize) -> &'static AtomicU8 {
        assert!(offset < 4096);
        // SAFETY: the offset is inside the page, which the direct map keeps
        // mapped while the domain exists; any bit pattern is a valid atomic.
        unsafe { AtomicU8::from_ptr((self.virt + offset as u64) as *mut u8) }
    }

    pub fn u32(&self, offset: usize) -> &'static AtomicU32 {
        assert!(offset <= 4092 && offset.is_multiple_of(4));
        // SAFETY: as for `u8`; the offset is 4-byte aligned.
        unsafe { AtomicU32::from_ptr((self.virt + offset as u64) as *mut u32) }
    }

    pub fn u64(&self, offset: usize) -> &'static AtomicU64 {
        assert!(offset <= 4088 && offset.is_multiple_of(8));
        // SAFETY: as for `u8`; the offset is 8-byte aligned.
        unsafe { AtomicU64::from_ptr((self.virt + offset as u64) as *mut u64) }
    }

    /// Copies `bytes` into the page at `offset` (the dom0 builder uses it
    /// to fill frames it has just allocated).
    pub fn write_bytes(&self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= 4096);
        // SAFETY: the range is inside the page; nobody else writes a frame
        // the builder is still filling.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (self.virt + offset as u64) as *mut u8,
                bytes.len(),
            )
        }
    }
}

/// Copies `len` bytes between two machine frames (a grant copy); the
/// ranges must lie inside their pages. Overlap (the same frame) is allowed.
pub fn copy_between_frames(src: u64, src_offset: usize, dst: u64, dst_offset: usize, len: usize) {
    assert!(src_offset + len <= 4096 && dst_offset + len <= 4096);
    let from = paging::phys_to_virt(src << 12) + src_offset as u64;
    let to = paging::phys_to_virt(dst << 12) + dst_offset as u64;
    // SAFETY: both ranges are inside frames of the direct map; the caller
    // checked the frames belong to the domains the copy is for.
    unsafe { core::ptr::copy(from as *const u8, to as *mut u8, len) }
}
