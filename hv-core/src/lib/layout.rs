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
//! | 261     | `ffff82d0_40000000..ffff82d0_44000000`   | per-CPU areas, 1 MiB each ([`percpu`]) |
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

/// Each CPU's area (its GDT, TSS and stacks, see [`percpu`]) lies at
/// `PERCPU_BASE + cpu * PERCPU_STRIDE`.
pub const PERCPU_BASE: u64 = IMAGE_OFFSET + (1 << 30);
pub const PERCPU_STRIDE: u64 = 1 << 20;
/// CPUs hv-core can run on (the per-CPU areas' room).
pub const MAX_CPUS: usize = 64;

/// The inside of one CPU's area: the GDT window, then each stack above an
/// unmapped guard page, so an overflow faults instead of writing the next.
pub mod percpu {
    /// The GDT spans the guest's 14 pages of descriptors (selectors below
    /// 0xe000, which hv-core keeps null: every CPU maps one shared zero
    /// frame there, read-only) and a 15th, the CPU's own, which holds
    /// hv-core's descriptors from selector 0xe000 and, past the GDT's
    /// limit, the CPU's TSS.
    pub const GDT_PAGES: u64 = 15;
    /// The own page's offset within the area.
    pub const GDT_OWN_PAGE: u64 = (GDT_PAGES - 1) * 4096;
    /// Where the TSS sits in the own page (past the descriptors).
    pub const TSS_OFFSET_IN_PAGE: u64 = 0x100;

    /// The stacks of a CPU.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Stack {
        /// Where every entry from a guest lands (TSS rsp0, the syscall
        /// entry's switch, SYSENTER_ESP).
        GuestEntry,
        Nmi,
        DoubleFault,
        MachineCheck,
        /// What a secondary CPU starts on and idles on before it has run
        /// a guest.
        Start,
    }

    /// Each stack's size in pages, in the order they lie in the area.
    pub const STACKS: [(Stack, u64); 5] = [
        (Stack::GuestEntry, 16),
        (Stack::Nmi, 4),
        (Stack::DoubleFault, 4),
        (Stack::MachineCheck, 4),
        (Stack::Start, 8),
    ];

    /// The offset of `stack`'s lowest page within the area: past the GDT
    /// window, each stack one guard page above the one before.
    pub const fn stack_bottom(stack: Stack) -> u64 {
        let mut offset = GDT_PAGES * 4096;
        let mut i = 0;
        while i < STACKS.len() {
            offset += 4096; // the guard page
            if STACKS[i].0 as u8 == stack as u8 {
                return offset;
            }
            offset += STACKS[i].1 * 4096;
            i += 1;
        }
        panic!("every stack is listed")
    }

    /// One past the top of `stack` (what RSP starts at).
    pub const fn stack_top(stack: Stack) -> u64 {
        let mut i = 0;
        while STACKS[i].0 as u8 != stack as u8 {
            i += 1;
        }
        stack_bottom(stack) + STACKS[i].1 * 4096
    }

    /// Where CPU `cpu`'s area starts.
    pub const fn area(cpu: usize) -> u64 {
        super::PERCPU_BASE + cpu as u64 * super::PERCPU_STRIDE
    }
}

/// All RAM is mapped here: `virt = DIRECT_MAP_BASE + phys`.
pub const DIRECT_MAP_BASE: u64 = 0xffff_8300_0000_0000;
pub const DIRECT_MAP_SIZE: u64 = HOLE_END - DIRECT_MAP_BASE;

/// The L4 slot an address falls in.
pub const fn l4_slot(addr: u64) -> usize {
    ((addr >> 39) & 511) as usize
}

// The regions do not overlap: checked when the crate builds.
const _: () = assert!(MMIO_BASE + MMIO_SIZE <= IMAGE_OFFSET);
const _: () = assert!(IMAGE_OFFSET + (1 << 30) <= PERCPU_BASE);
const _: () = assert!(PERCPU_BASE + MAX_CPUS as u64 * PERCPU_STRIDE <= DIRECT_MAP_BASE);
const _: () = assert!(percpu::stack_top(percpu::Stack::Start) <= PERCPU_STRIDE);
// The TSS (104 bytes) fits in the GDT's own page past hv-core's
// descriptors (selectors 0xe000 to 0xe050).
const _: () =
    assert!(percpu::TSS_OFFSET_IN_PAGE >= 0x50 && percpu::TSS_OFFSET_IN_PAGE + 104 <= 4096);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_lies_inside_the_hole() {
        for (start, len) in [
            (M2P_BASE, 1u64 << 39),
            (MMIO_BASE, MMIO_SIZE),
            (IMAGE_OFFSET, 1 << 30),
            (PERCPU_BASE, MAX_CPUS as u64 * PERCPU_STRIDE),
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

    #[test]
    fn per_cpu_stacks_have_guards_and_do_not_overlap() {
        use percpu::*;
        let mut below = GDT_PAGES * 4096;
        for (stack, pages) in STACKS {
            let bottom = stack_bottom(stack);
            assert_eq!(bottom, below + 4096, "{stack:?}: one guard page below");
            assert_eq!(stack_top(stack), bottom + pages * 4096);
            below = stack_top(stack);
        }
        assert!(below <= PERCPU_STRIDE);
        assert_eq!(area(1) - area(0), PERCPU_STRIDE);
        assert_eq!(l4_slot(area(MAX_CPUS - 1)), 261);
    }
}
