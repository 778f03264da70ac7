//! x86-64 page-table entry bits as a PV64 guest writes them and Xen checks
//! them (Xen's `_PAGE_*`, `xen/arch/x86/include/asm/x86_64/page.h`): the
//! guest fills entries with machine frame numbers in bits 12-51 and hands
//! them to `mmu_update`/`update_va_mapping`, or has the domain builder
//! write its bootstrap tables. One module for hv-core, the SDK, dom0 and
//! the test guests.

/// `_PAGE_PRESENT`.
pub const PRESENT: u64 = 1 << 0;
/// `_PAGE_RW`.
pub const WRITABLE: u64 = 1 << 1;
/// `_PAGE_USER`: guest user mode may access the page. PV64 guest kernels
/// run in ring 3, so the hypervisor adds this bit to kernel mappings itself
/// (and keeps user mode out through the separate user page tables).
pub const USER: u64 = 1 << 2;
/// `_PAGE_PWT`.
pub const WRITE_THROUGH: u64 = 1 << 3;
/// `_PAGE_PCD`.
pub const NO_CACHE: u64 = 1 << 4;
/// `_PAGE_ACCESSED`.
pub const ACCESSED: u64 = 1 << 5;
/// `_PAGE_DIRTY`.
pub const DIRTY: u64 = 1 << 6;
/// `_PAGE_PSE` above L1 (a superpage), `_PAGE_PAT` in an L1 entry.
pub const HUGE: u64 = 1 << 7;
/// `_PAGE_GLOBAL`.
pub const GLOBAL: u64 = 1 << 8;
/// `_PAGE_NX`.
pub const NO_EXECUTE: u64 = 1 << 63;
/// The frame-address bits (`PADDR_MASK & PAGE_MASK`, 52-bit physical).
pub const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Entries in one table at any level (`L1_PAGETABLE_ENTRIES`).
pub const ENTRIES: usize = 512;

/// An entry mapping machine frame `mfn` with `flags`.
pub const fn entry(mfn: u64, flags: u64) -> u64 {
    (mfn << 12) & ADDRESS_MASK | flags
}

/// The machine frame an entry maps.
pub const fn mfn(entry: u64) -> u64 {
    (entry & ADDRESS_MASK) >> 12
}

/// Whether an entry has its present bit (`_PAGE_PRESENT`) set.
pub const fn is_present(entry: u64) -> bool {
    entry & PRESENT != 0
}

/// Table indices (L4, L3, L2, L1) of a virtual address.
pub const fn indices(va: u64) -> [usize; 4] {
    [
        ((va >> 39) & 511) as usize,
        ((va >> 30) & 511) as usize,
        ((va >> 21) & 511) as usize,
        ((va >> 12) & 511) as usize,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let e = entry(0x12345, PRESENT | WRITABLE | NO_EXECUTE);
        assert_eq!(mfn(e), 0x12345);
        assert!(is_present(e));
        assert_eq!(e & !ADDRESS_MASK, PRESENT | WRITABLE | NO_EXECUTE);
    }

    #[test]
    fn indices_of_the_image_base() {
        assert_eq!(indices(0xffff_ffff_8000_0000), [511, 510, 0, 0]);
        assert_eq!(indices(0xffff_ffff_8020_3000), [511, 510, 1, 3]);
        assert_eq!(indices(0x40_0000), [0, 0, 2, 0]);
    }
}
