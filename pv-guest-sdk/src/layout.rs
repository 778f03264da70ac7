//! Where a guest built with the SDK lives in its address space.
//!
//! `link.ld` places the image at [`VIRT_BASE`]; the domain builder maps the
//! bootstrap region there onto pseudo-physical frame 0 onwards, and the SDK
//! extends that window over all its frames, so pseudo-physical frame `pfn`
//! is always at `VIRT_BASE + pfn * PAGE_SIZE` (the "physmap"). The window
//! ends at the top of the address space: at most [`MAX_PHYSMAP_PAGES`]
//! frames (2 GiB) are reachable through it.

/// The image's base: `XEN_ELFNOTE_VIRT_BASE` and `XEN_ELFNOTE_PADDR_OFFSET`.
pub const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
/// The size of a page (and of a frame).
pub const PAGE_SIZE: u64 = 4096;
/// `log2(PAGE_SIZE)`: page number = address >> `PAGE_SHIFT`.
pub const PAGE_SHIFT: u32 = 12;
/// Frames the physmap can hold before it reaches the top of the address space.
pub const MAX_PHYSMAP_PAGES: u64 = (0u64.wrapping_sub(VIRT_BASE)) / PAGE_SIZE;
/// Where `grant::GrantTable` maps this domain's grant-table frames: L4
/// slot 510, just below the image's slot, which nothing else uses.
pub const GRANT_TABLE_VA: u64 = 0xffff_ff00_0000_0000;
/// The most grant-table frames the SDK maps (2 MiB of address space).
pub const GRANT_TABLE_MAX_FRAMES: usize = 512;
/// The map window: [`MAP_WINDOW_PAGES`] pages for mappings of other
/// domains' frames (grant maps), right after the grant table's space. Its
/// one L1 table is created before the first slot is handed out, because
/// `GNTTABOP_map_grant_ref` only fills an entry of an existing L1.
pub const MAP_WINDOW_VA: u64 = GRANT_TABLE_VA + GRANT_TABLE_MAX_FRAMES as u64 * PAGE_SIZE;
/// How many pages the map window has (one L1 table).
pub const MAP_WINDOW_PAGES: usize = 512;
/// The kernel stack of the first vCPU, in `.bss`.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

/// The physmap address of pseudo-physical frame `pfn`.
pub const fn pfn_to_virt(pfn: u64) -> u64 {
    VIRT_BASE + pfn * PAGE_SIZE
}

/// The pseudo-physical frame behind a physmap address, if it is one.
pub const fn virt_to_pfn(va: u64) -> Option<u64> {
    if va >= VIRT_BASE {
        Some((va - VIRT_BASE) / PAGE_SIZE)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physmap_covers_the_top_two_gib() {
        assert_eq!(MAX_PHYSMAP_PAGES, 512 * 1024);
        assert_eq!(pfn_to_virt(MAX_PHYSMAP_PAGES - 1), 0xffff_ffff_ffff_f000);
        assert_eq!(virt_to_pfn(pfn_to_virt(1234)), Some(1234));
        assert_eq!(virt_to_pfn(0xffff_ffff_7fff_ffff), None);
    }

    #[test]
    fn grant_table_and_map_window_share_one_l1_aligned_slot_below_the_image() {
        let window_end = MAP_WINDOW_VA + MAP_WINDOW_PAGES as u64 * PAGE_SIZE;
        assert!(window_end <= VIRT_BASE);
        assert_eq!(GRANT_TABLE_VA >> 39 & 511, 510);
        assert_eq!((window_end - 1) >> 39 & 511, 510);
        // The window is exactly one L1 table's reach.
        assert_eq!(MAP_WINDOW_VA % (2 << 20), 0);
        assert_eq!(MAP_WINDOW_PAGES, 512);
    }
}
