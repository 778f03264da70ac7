//! Raw reads and writes of frames through the physmap and of the M2P.
//! Everything else in `mm` works on frame numbers and entries.

use abi::xen::{MACH2PHYS_VIRT_END, MACH2PHYS_VIRT_START};

use crate::layout::PAGE_SIZE;

/// The M2P entry for `mfn`, or `None` outside the table's range.
pub fn m2p(mfn: u64) -> Option<u64> {
    if mfn >= (MACH2PHYS_VIRT_END - MACH2PHYS_VIRT_START) / 8 {
        return None;
    }
    let va = MACH2PHYS_VIRT_START + mfn * 8;
    // SAFETY: the hypervisor maps the M2P read-only for every PV64 guest
    // over the machine frames it manages; callers only ask about frames
    // that appear in this domain's page tables or p2m, which it manages.
    let pfn = unsafe { core::ptr::read_volatile(va as *const u64) };
    // Entries of frames no domain owns hold INVALID_M2P_ENTRY (~0).
    (pfn != u64::MAX).then_some(pfn)
}

/// Reads entry `index` of the page table mapped (read-only) at `table_va`.
///
/// # Safety
/// `table_va` must be the physmap address of a page-table frame.
pub unsafe fn read_entry(table_va: u64, index: usize) -> u64 {
    debug_assert!(index < 512 && table_va.is_multiple_of(PAGE_SIZE));
    // SAFETY: the caller guarantees a mapped page; index < 512 keeps the
    // read inside it. Volatile: the hypervisor may change it (A/D bits).
    unsafe { core::ptr::read_volatile((table_va as *const u64).add(index)) }
}

/// Fills the page at `va` with `entries` followed by zeroes.
///
/// # Safety
/// `va` must be a writable physmap page that nothing else uses.
pub unsafe fn fill_page(va: u64, entries: &[u64]) {
    assert!(entries.len() <= 512);
    let page = va as *mut u64;
    for i in 0..512 {
        let value = entries.get(i).copied().unwrap_or(0);
        // SAFETY: in bounds of the caller's page.
        unsafe { page.add(i).write_volatile(value) };
    }
}

/// Copies `bytes` to the start of the page at `va` and zeroes the rest.
///
/// # Safety
/// `va` must be a writable physmap page that nothing else uses.
pub unsafe fn copy_to_page(va: u64, bytes: &[u8]) {
    assert!(bytes.len() as u64 <= PAGE_SIZE);
    // SAFETY: in bounds of the caller's page, which does not overlap
    // `bytes` (the caller owns it exclusively).
    unsafe {
        core::ptr::write_bytes(va as *mut u8, 0, PAGE_SIZE as usize);
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), va as *mut u8, bytes.len());
    }
}

/// Copies `out.len()` bytes of guest memory at `va` into `out`.
///
/// # Safety
/// `[va, va + out.len())` must be mapped and readable, and hold no Rust
/// object that is being mutated.
pub unsafe fn copy_from(va: u64, out: &mut [u8]) {
    // SAFETY: the caller guarantees the source range.
    unsafe { core::ptr::copy_nonoverlapping(va as *const u8, out.as_mut_ptr(), out.len()) };
}
