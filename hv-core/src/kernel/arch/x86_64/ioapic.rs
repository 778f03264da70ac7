//! The IOAPIC: just enough to route one legacy interrupt (COM1's) to the
//! boot CPU.

use super::paging;

const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
const REDIRECTION_TABLE: u32 = 0x10;
const LEVEL_TRIGGERED: u64 = 1 << 15;
const ACTIVE_LOW: u64 = 1 << 13;

/// An IOAPIC as the firmware's MADT describes it: its register window and
/// its first GSI. Only `acpi::discover` makes one, so the address is the
/// firmware's, not a caller's.
#[derive(Clone, Copy, Debug)]
pub struct IoApic {
    phys: u64,
    gsi_base: u32,
}

impl IoApic {
    pub(super) fn from_madt(phys: u64, gsi_base: u32) -> Self {
        Self { phys, gsi_base }
    }
}

/// Routes `gsi` (on `ioapic`) to `vector` on the CPU with APIC id
/// `apic_id`, unmasked.
pub fn route(ioapic: &IoApic, gsi: u32, vector: u8, apic_id: u32, level: bool, active_low: bool) {
    let mmio = paging::map_mmio(ioapic.phys, 0x20);
    let pin = gsi - ioapic.gsi_base;
    let mut entry = vector as u64 | (apic_id as u64) << 56;
    if level {
        entry |= LEVEL_TRIGGERED;
    }
    if active_low {
        entry |= ACTIVE_LOW;
    }
    let write = |reg: u32, value: u32| {
        // SAFETY: `mmio` maps this IOAPIC's register window (uncached), at
        // the address the firmware's MADT gives;
        // selecting a register and writing its window is the IOAPIC's
        // protocol, and hv-core is the only user of the IOAPIC.
        unsafe {
            core::ptr::write_volatile((mmio + IOREGSEL) as *mut u32, reg);
            core::ptr::write_volatile((mmio + IOWIN) as *mut u32, value);
        }
    };
    write(REDIRECTION_TABLE + pin * 2 + 1, (entry >> 32) as u32);
    write(REDIRECTION_TABLE + pin * 2, entry as u32);
}
