//! Page-table entry bits as PV64 guests write them (machine frame numbers
//! in bits 12-51).

pub const PRESENT: u64 = 1 << 0;
pub const WRITABLE: u64 = 1 << 1;
/// Guest user mode may access the page. PV64 guest kernels run in ring 3,
/// so the hypervisor adds this bit to kernel mappings itself (and keeps
/// user mode out through the separate user page tables).
pub const USER: u64 = 1 << 2;
pub const WRITE_THROUGH: u64 = 1 << 3;
pub const NO_CACHE: u64 = 1 << 4;
pub const ACCESSED: u64 = 1 << 5;
pub const DIRTY: u64 = 1 << 6;
pub const HUGE: u64 = 1 << 7;
pub const GLOBAL: u64 = 1 << 8;
pub const NO_EXECUTE: u64 = 1 << 63;
pub const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// A kernel data mapping (accessed and dirty set up front, which saves the
/// hypervisor emulating the hardware's first-touch updates).
pub const KERNEL_RW: u64 = PRESENT | WRITABLE | ACCESSED | DIRTY;
pub const KERNEL_RO: u64 = PRESENT | ACCESSED;
/// What intermediate tables (L4-L2 entries) get: permissions are decided
/// at the leaves.
pub const TABLE: u64 = PRESENT | WRITABLE | USER | ACCESSED | DIRTY;

/// An entry mapping machine frame `mfn` with `flags`.
pub const fn entry(mfn: u64, flags: u64) -> u64 {
    (mfn << 12) & ADDRESS_MASK | flags
}

/// The machine frame an entry maps.
pub const fn mfn(entry: u64) -> u64 {
    (entry & ADDRESS_MASK) >> 12
}

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
        let e = entry(0x12345, KERNEL_RW | NO_EXECUTE);
        assert_eq!(mfn(e), 0x12345);
        assert!(is_present(e));
        assert_eq!(e & !ADDRESS_MASK, KERNEL_RW | NO_EXECUTE);
    }

    #[test]
    fn indices_of_the_image_base() {
        assert_eq!(indices(0xffff_ffff_8000_0000), [511, 510, 0, 0]);
        assert_eq!(indices(0xffff_ffff_8020_3000), [511, 510, 1, 3]);
        assert_eq!(indices(0x40_0000), [0, 0, 2, 0]);
    }
}
