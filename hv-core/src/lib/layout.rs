//! The hypervisor's virtual address map.
//!
//! hv-core lives entirely inside the PV64 hypervisor hole, L4 slots 256-271
//! (`0xffff_8000_0000_0000..0xffff_8800_0000_0000`), as Xen does, so that PV
//! guests own every other slot, the top 2 GiB included. Every PV L4 will carry
//! slots 256-271 unchanged.
//!
//! | L4 slot | range                                    | what                     |
//! |---------|------------------------------------------|--------------------------|
//! | 256     | `ffff8000_00000000..ffff8080_00000000`   | read-only M2P for guests (reserved) |
//! | 257-260 | `ffff8080_00000000..ffff8280_00000000`   | reserved                 |
//! | 261     | `ffff82c0_00000000..ffff82d0_00000000`   | MMIO window (uncached device mappings) |
//! | 261     | `ffff82d0_00000000..ffff82d0_40000000`   | hv-core image (phys + offset) |
//! | 262-271 | `ffff8300_00000000..ffff8800_00000000`   | direct map of RAM (5 TiB) |

use abi::xen::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START, MACH2PHYS_VIRT_START};

/// First address of the hypervisor hole (`HYPERVISOR_VIRT_START`).
pub const HOLE_START: u64 = HYPERVISOR_VIRT_START;
/// One past the last address of the hypervisor hole (`HYPERVISOR_VIRT_END`).
pub const HOLE_END: u64 = HYPERVISOR_VIRT_END;

/// Reserved for the read-only machine-to-phys table guests map
/// (`MACH2PHYS_VIRT_START`).
pub const M2P_BASE: u64 = MACH2PHYS_VIRT_START;

/// Device mappings made at boot (LAPIC, IOAPIC, ACPI tables outside RAM).
pub const MMIO_BASE: u64 = 0xffff_82c0_0000_0000;
pub const MMIO_SIZE: u64 = 0x10_0000_0000;

/// hv-core's image is linked at physical address + this offset
/// (must match `IMAGE_VIRT_OFFSET` in `hv-core/link.ld`).
pub const IMAGE_OFFSET: u64 = 0xffff_82d0_0000_0000;

/// All RAM is mapped here: `virt = DIRECT_MAP_BASE + phys`.
pub const DIRECT_MAP_BASE: u64 = 0xffff_8300_0000_0000;
pub const DIRECT_MAP_SIZE: u64 = HOLE_END - DIRECT_MAP_BASE;

/// The L4 slot an address falls in.
pub const fn l4_slot(addr: u64) -> usize {
    ((addr >> 39) & 511) as usize
}

// The regions do not overlap: checked when the crate builds.
const _: () = assert!(MMIO_BASE + MMIO_SIZE <= IMAGE_OFFSET);
const _: () = assert!(IMAGE_OFFSET + (1 << 30) <= DIRECT_MAP_BASE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_lies_inside_the_hole() {
        for (start, len) in [
            (M2P_BASE, 1u64 << 39),
            (MMIO_BASE, MMIO_SIZE),
            (IMAGE_OFFSET, 1 << 30),
            (DIRECT_MAP_BASE, DIRECT_MAP_SIZE),
        ] {
            assert!(start >= HOLE_START, "{start:#x} below the hole");
            assert!(start + len <= HOLE_END, "{start:#x}+{len:#x} past the hole");
        }
    }

    #[test]
    fn hole_is_slots_256_to_271() {
        assert_eq!(l4_slot(HOLE_START), 256);
        assert_eq!(l4_slot(HOLE_END - 1), 271);
        assert_eq!(l4_slot(DIRECT_MAP_BASE), 262);
        assert_eq!(l4_slot(IMAGE_OFFSET), 261);
        assert_eq!(l4_slot(MMIO_BASE), 261);
    }
}
