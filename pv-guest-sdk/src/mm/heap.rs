//! The global heap: `talc` over a contiguous run of the guest's frames,
//! which the physmap makes contiguous in virtual memory too.

use spin::Mutex;
use talc::{ErrOnOom, Span, Talc, Talck};

use super::paging::MEMORY;
use crate::layout::{PAGE_SIZE, pfn_to_virt};

#[global_allocator]
static HEAP: Talck<Mutex<()>, ErrOnOom> = Talc::new(ErrOnOom).lock();

/// Gives the heap `pages` contiguous free frames (fewer if memory is short:
/// halves the request until a run fits). Returns the bytes claimed.
pub(crate) fn init(pages: u64) -> u64 {
    let mut memory = MEMORY.lock();
    let mut want = pages;
    let start = loop {
        if want == 0 {
            return 0;
        }
        if let Some(pfn) = memory.frames.alloc_contiguous(want) {
            break pfn;
        }
        want /= 2;
    };
    let base = pfn_to_virt(start) as *mut u8;
    let size = (want * PAGE_SIZE) as usize;
    // SAFETY: the frames were just taken from the allocator for good: they
    // are mapped writable and contiguous in the physmap, and nothing else
    // will use them.
    match unsafe { HEAP.lock().claim(Span::from_base_size(base, size)) } {
        Ok(_) => size as u64,
        Err(()) => 0,
    }
}
