//! The global frame allocator.
//!
//! Built once at boot from the multiboot2 memory map minus everything that
//! is taken (the first MiB, hv-core's image, the boot information, every
//! module); its bitmap lives in frames carved from usable memory below 4 GiB
//! so the boot page tables reach it.

use hv_core::frames::{FRAME_SIZE, FrameAllocator, UsableRanges};

use crate::arch::paging;
use crate::arch::sync::IrqMutex;

static ALLOCATOR: IrqMutex<Option<FrameAllocator<'static>>> = IrqMutex::new(None);

pub fn init(mut usable: UsableRanges) -> Result<(), &'static str> {
    let words = FrameAllocator::bitmap_words(&usable);
    let bytes = (words * 8) as u64;
    let at = usable
        .take(bytes, 1 << 32)
        .ok_or("no room below 4 GiB for the frame bitmap")?;
    let bitmap = crate::arch::frame_bitmap(paging::phys_to_virt(at), words);
    ALLOCATOR.with(|a| *a = Some(FrameAllocator::new(bitmap, &usable)));
    Ok(())
}

/// A zeroed frame, or `None` when memory is exhausted.
pub fn alloc_frame() -> Option<u64> {
    let phys = ALLOCATOR.with(|a| a.as_mut()?.alloc())?;
    crate::arch::zero_frame(paging::phys_to_virt(phys));
    Some(phys)
}

pub fn free_frames() -> u64 {
    ALLOCATOR.with(|a| a.as_ref().map_or(0, |a| a.free_frames()))
}

pub const fn frames_to_mib(frames: u64) -> u64 {
    (frames * FRAME_SIZE) >> 20
}
