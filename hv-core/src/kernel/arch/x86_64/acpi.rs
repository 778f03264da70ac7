//! ACPI: the tables hv-core reads at boot (MADT for CPUs and IOAPICs, FADT
//! and DSDT for soft-off), through the `acpi` crate.

use core::ptr::NonNull;

use acpi::fadt::Fadt;
use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use hv_core::acpi_sleep::{self, SleepType};
use hv_core::layout::MAX_CPUS;
use x86_64::instructions::port::Port;

use super::ioapic::IoApic;
use super::{BootInfo, paging};

#[derive(Clone, Copy)]
struct Handler;

impl AcpiHandler for Handler {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        let virt = paging::map_firmware(phys as u64, size as u64);
        // SAFETY: `map_firmware` returns a valid mapping of `size` bytes at
        // `phys`; the caller guarantees a `T` lives there. Mappings are never
        // torn down (they are few and made at boot), so dropping is a no-op.
        unsafe {
            PhysicalMapping::new(
                phys,
                NonNull::new(virt as *mut T).expect("null mapping"),
                size,
                size,
                *self,
            )
        }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// What hv-core learned from ACPI.
#[derive(Clone, Copy, Debug)]
pub struct Platform {
    pub revision: u8,
    /// Enabled local APICs: the CPUs present.
    pub cpus: u32,
    /// Their APIC ids, in table order (the first [`MAX_CPUS`] of them).
    apic_ids: [u32; MAX_CPUS],
    pub ioapics: u32,
    pub power: Option<SoftOff>,
    /// The first IOAPIC.
    pub ioapic: Option<IoApic>,
    /// Where the legacy COM1 interrupt (ISA IRQ 4) arrives: GSI and
    /// whether it is level-triggered / active-low (MADT overrides).
    pub com1_gsi: (u32, bool, bool),
}

impl Default for Platform {
    fn default() -> Self {
        Self {
            revision: 0,
            cpus: 0,
            apic_ids: [0; MAX_CPUS],
            ioapics: 0,
            power: None,
            ioapic: None,
            com1_gsi: (4, false, false),
        }
    }
}

impl Platform {
    fn add_cpu(&mut self, apic_id: u32) {
        if let Some(slot) = self.apic_ids.get_mut(self.cpus as usize) {
            *slot = apic_id;
        }
        self.cpus += 1;
    }

    /// The enabled CPUs' APIC ids, in table order (at most [`MAX_CPUS`]).
    pub fn apic_ids(&self) -> &[u32] {
        &self.apic_ids[..(self.cpus as usize).min(MAX_CPUS)]
    }
}

/// How to power the machine off (ACPI S5).
#[derive(Clone, Copy, Debug)]
pub struct SoftOff {
    pm1a_control: u16,
    pm1b_control: Option<u16>,
    sleep_type: SleepType,
    smi_command: u16,
    acpi_enable: u8,
}

#[derive(Debug)]
pub enum AcpiError {
    /// The boot information has no RSDP tag.
    NoRsdp,
    Tables(acpi::AcpiError),
    NoMadt,
}

impl core::fmt::Display for AcpiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoRsdp => write!(f, "the boot loader passed no ACPI RSDP"),
            Self::Tables(e) => write!(f, "cannot read the ACPI tables: {e:?}"),
            Self::NoMadt => write!(f, "the ACPI tables have no MADT"),
        }
    }
}

/// The physical address of the boot loader's copy of the RSDP: in the
/// boot information's RSDP tag, after the 8-byte tag header (the `acpi`
/// crate wants a physical address).
fn rsdp_phys(info: &BootInfo) -> Option<u64> {
    let tag = match info.rsdp_v2_tag() {
        Some(tag) => tag as *const _ as *const u8,
        None => info.rsdp_v1_tag()? as *const _ as *const u8,
    };
    let offset = tag as u64 - info.start_address() as u64;
    Some(paging::virt_to_phys(info.start_address() as u64) + offset + 8)
}

/// Reads the ACPI tables from the RSDP the boot loader passed.
pub fn discover(info: &BootInfo) -> Result<Platform, AcpiError> {
    let rsdp = rsdp_phys(info).ok_or(AcpiError::NoRsdp)?;
    // SAFETY: `rsdp` is the boot loader's copy of the RSDP, inside the boot
    // information (which stays reserved and unchanged); the crate checks
    // its signature and checksum before following it.
    let tables =
        unsafe { AcpiTables::from_rsdp(Handler, rsdp as usize) }.map_err(AcpiError::Tables)?;
    let mut platform = Platform {
        revision: tables.revision(),
        com1_gsi: (4, false, false),
        ..Platform::default()
    };
    let madt = tables.find_table::<Madt>().map_err(|_| AcpiError::NoMadt)?;
    for entry in madt.get().entries() {
        match entry {
            // Bit 0: enabled. A CPU that is only online-capable (bit 1)
            // is not there yet: hv-core has no CPU hot-plug.
            MadtEntry::LocalApic(lapic) if lapic.flags & 1 != 0 => {
                platform.add_cpu(lapic.apic_id as u32)
            }
            MadtEntry::LocalX2Apic(x2) if x2.flags & 1 != 0 => platform.add_cpu(x2.x2apic_id),
            MadtEntry::IoApic(io) => {
                platform.ioapics += 1;
                if platform.ioapic.is_none() {
                    platform.ioapic = Some(IoApic::from_madt(
                        io.io_apic_address as u64,
                        io.global_system_interrupt_base,
                    ));
                }
            }
            MadtEntry::InterruptSourceOverride(iso) if iso.irq == 4 => {
                // MPS INTI flags: polarity bits 0-1 (3 = active low),
                // trigger bits 2-3 (3 = level).
                let flags = iso.flags;
                platform.com1_gsi = (
                    iso.global_system_interrupt,
                    (flags >> 2) & 3 == 3,
                    flags & 3 == 3,
                );
            }
            _ => {}
        }
    }
    platform.power = soft_off(&tables);
    Ok(platform)
}

fn soft_off(tables: &AcpiTables<Handler>) -> Option<SoftOff> {
    let fadt = tables.find_table::<Fadt>().ok()?;
    let io_port = |ga: acpi::address::GenericAddress| {
        (ga.address_space == acpi::address::AddressSpace::SystemIo).then_some(ga.address as u16)
    };
    let pm1a_control = io_port(fadt.pm1a_control_block().ok()?)?;
    let pm1b_control = fadt.pm1b_control_block().ok().flatten().and_then(io_port);
    let dsdt = tables.dsdt().ok()?;
    let virt = paging::map_firmware(dsdt.address as u64, dsdt.length as u64);
    // SAFETY: the DSDT's AML stream, `length` bytes at `address`, is mapped
    // at `virt` for the life of the hypervisor and never written.
    let aml = unsafe { core::slice::from_raw_parts(virt as *const u8, dsdt.length as usize) };
    let sleep_type = acpi_sleep::find_s5(aml)?;
    let smi_command = fadt.smi_cmd_port as u16;
    let acpi_enable = fadt.acpi_enable;
    Some(SoftOff {
        pm1a_control,
        pm1b_control,
        sleep_type,
        smi_command,
        acpi_enable,
    })
}

const SCI_EN: u16 = 1 << 0;
const SLP_EN: u16 = 1 << 13;

/// Enters S5. Returns only if the machine is still running afterwards.
pub fn power_off(off: &SoftOff) {
    let mut pm1a: Port<u16> = Port::new(off.pm1a_control);
    // SAFETY: the FADT names these ports as the PM1 control registers; the
    // SMI command port and value come from the same table. Writing SLP_TYP
    // with SLP_EN is the architectural way to enter a sleep state.
    unsafe {
        if pm1a.read() & SCI_EN == 0 && off.smi_command != 0 && off.acpi_enable != 0 {
            Port::<u8>::new(off.smi_command).write(off.acpi_enable);
            for _ in 0..1_000_000 {
                if pm1a.read() & SCI_EN != 0 {
                    break;
                }
                core::hint::spin_loop();
            }
        }
        let a = (pm1a.read() & !(0b111 << 10)) | (off.sleep_type.a as u16) << 10 | SLP_EN;
        if let Some(port) = off.pm1b_control {
            let mut pm1b: Port<u16> = Port::new(port);
            let b = (pm1b.read() & !(0b111 << 10)) | (off.sleep_type.b as u16) << 10 | SLP_EN;
            pm1b.write(b);
        }
        pm1a.write(a);
    }
}
