//! Descriptor tables (GDT, TSS, IDT), CPU features and control registers.
//!
//! The boot CPU starts on a static GDT and TSS ([`init_descriptor_tables`])
//! so that every exception is reported from the first instruction on. Once
//! memory is up, every CPU (the boot CPU too) moves to its own GDT and TSS
//! in its per-CPU area ([`load_cpu_tables`]): its own IST stacks and
//! guest-entry stack, and a TSS descriptor whose busy bit is its alone.
//! The IDT is one, shared and read-only.

use raw_cpuid::CpuId;
use spin::Once;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::{lgdt, load_tss};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};
use x86_64::structures::DescriptorTablePointer;
use x86_64::structures::gdt::{Descriptor, SegmentSelector};
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;
use x86_64::{PrivilegeLevel, VirtAddr};

use hv_core::layout::percpu::{GDT_OWN_PAGE, Stack};

use super::{boot, entry, percpu};

/// IST slots (1-based in the IDT, 0-based in the TSS).
const IST_NMI: u16 = 0;
const IST_DOUBLE_FAULT: u16 = 1;
const IST_MACHINE_CHECK: u16 = 2;

/// The GDT follows Xen's layout so PV guests see the selectors Xen's ABI
/// names: entries below 0xe000 would be the guest's own GDT frames (hv-core
/// does not offer `set_gdt` yet, so they stay null), and the reserved area
/// from selector 0xe000 holds the hypervisor's and the flat ring-3 segments.
const FIRST_RESERVED: usize = 0xe000 / 8;
const GDT_ENTRIES: usize = FIRST_RESERVED + 10;
// hv-core's descriptors are in the GDT window's own page.
const _: () = assert!(FIRST_RESERVED as u64 * 8 == GDT_OWN_PAGE);

/// hv-core's ring-0 code and data selectors (Xen's `__HYPERVISOR_CS/DS`).
pub const HV_CS: u16 = 0xe008;
pub const HV_DS: u16 = 0xe010;
/// The flat ring-3 selectors of Xen's PV64 ABI.
pub const GUEST_CS32: u16 = abi::xen::FLAT_RING3_CS32;
pub const GUEST_DS: u16 = abi::xen::FLAT_RING3_DS32;
pub const GUEST_CS64: u16 = abi::xen::FLAT_RING3_CS64;
const TSS_SELECTOR: u16 = 0xe040;

/// 64-bit ring-0 code, ring-0 data, 32-bit ring-3 code, ring-3 data,
/// 64-bit ring-3 code (access byte and flags per the SDM).
const KERNEL_CODE64: u64 = 0x00af_9b00_0000_ffff;
const KERNEL_DATA: u64 = 0x00cf_9300_0000_ffff;
const USER_CODE32: u64 = 0x00cf_fb00_0000_ffff;
const USER_DATA: u64 = 0x00cf_f300_0000_ffff;
const USER_CODE64: u64 = 0x00af_fb00_0000_ffff;

#[repr(C, align(4096))]
struct Gdt(core::cell::UnsafeCell<[u64; GDT_ENTRIES]>);

// SAFETY: written once, on the boot CPU, before it is loaded; read only by
// the CPU afterwards.
unsafe impl Sync for Gdt {}

/// The boot CPU's first GDT, until its per-CPU one is loaded. All zeros in
/// the image (`.bss`: 60 KiB, nearly all of it the null guest area);
/// [`init_descriptor_tables`] writes the few descriptors.
static GDT: Gdt = Gdt(core::cell::UnsafeCell::new([0; GDT_ENTRIES]));

static TSS: Once<TaskStateSegment> = Once::new();
static IDT: Once<InterruptDescriptorTable> = Once::new();

/// Loads the first GDT, TSS and IDT on the boot CPU. After this every
/// exception is reported.
pub fn init_descriptor_tables() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        let [nmi, df, mc] = boot::ist_tops();
        tss.interrupt_stack_table[IST_NMI as usize] = VirtAddr::new(nmi);
        tss.interrupt_stack_table[IST_DOUBLE_FAULT as usize] = VirtAddr::new(df);
        tss.interrupt_stack_table[IST_MACHINE_CHECK as usize] = VirtAddr::new(mc);
        // No guest runs before `load_cpu_tables` gives the CPU its
        // guest-entry stack.
        tss
    });
    // SAFETY: only the boot CPU runs here, before the GDT is loaded, so
    // nothing else reads or writes the table.
    let reserved = unsafe { &mut (&mut *GDT.0.get())[FIRST_RESERVED..] };
    write_descriptors(reserved, tss);
    // SAFETY: the table is 'static and now holds hv-core's descriptors.
    unsafe { load_gdt(GDT.0.get() as u64) };
    idt().load();
}

/// Writes hv-core's descriptors into `reserved`, the GDT from selector
/// 0xe000 on, with `tss`'s descriptor.
fn write_descriptors(reserved: &mut [u64], tss: &'static TaskStateSegment) {
    let Descriptor::SystemSegment(low, high) = Descriptor::tss_segment(tss) else {
        unreachable!("a TSS descriptor is a system segment")
    };
    let at = |selector: u16| selector as usize / 8 - FIRST_RESERVED;
    reserved[at(HV_CS)] = KERNEL_CODE64;
    reserved[at(HV_DS)] = KERNEL_DATA;
    reserved[at(GUEST_CS32)] = USER_CODE32;
    reserved[at(GUEST_DS)] = USER_DATA;
    reserved[at(GUEST_CS64)] = USER_CODE64;
    reserved[at(TSS_SELECTOR)] = low;
    reserved[at(TSS_SELECTOR) + 1] = high;
}

/// Loads the GDT at `base` (Xen's layout, [`GDT_ENTRIES`] long), hv-core's
/// segments and its TSS, and a null LDT.
///
/// # Safety
///
/// `base` must be a GDT that stays mapped and unchanged (but for the
/// CPU's own accessed and busy bits) for as long as this CPU uses it, with
/// [`write_descriptors`]'s descriptors at their selectors and a TSS
/// descriptor for a TSS with the same lifetime, not loaded on any other
/// CPU.
unsafe fn load_gdt(base: u64) {
    let pointer = DescriptorTablePointer {
        limit: (GDT_ENTRIES * 8 - 1) as u16,
        base: VirtAddr::new(base),
    };
    // SAFETY: the caller's contract: valid descriptors at every selector
    // loaded below (64-bit ring-0 code, ring-0 data, an available TSS).
    unsafe {
        lgdt(&pointer);
        CS::set_reg(SegmentSelector(HV_CS));
        DS::set_reg(SegmentSelector(HV_DS));
        ES::set_reg(SegmentSelector(HV_DS));
        SS::set_reg(SegmentSelector(HV_DS));
        load_tss(SegmentSelector(TSS_SELECTOR));
    }
    load_null_ldt();
}

/// Moves this CPU, number `cpu`, onto the GDT and TSS of its per-CPU area
/// (mapped by `percpu::map_area`): its IST stacks, its guest-entry stack as
/// rsp0. The shared IDT is loaded too (a starting CPU has none yet).
pub fn load_cpu_tables(cpu: usize) {
    let mut tss = TaskStateSegment::new();
    let ist = |stack| VirtAddr::new(percpu::stack_top(cpu, stack));
    tss.interrupt_stack_table[IST_NMI as usize] = ist(Stack::Nmi);
    tss.interrupt_stack_table[IST_DOUBLE_FAULT as usize] = ist(Stack::DoubleFault);
    tss.interrupt_stack_table[IST_MACHINE_CHECK as usize] = ist(Stack::MachineCheck);
    tss.privilege_stack_table[0] = ist(Stack::GuestEntry);
    let tss_ptr = percpu::tss_address(cpu) as *mut TaskStateSegment;
    let own_page = (percpu::gdt_base(cpu) + GDT_OWN_PAGE) as *mut u64;
    // SAFETY: `map_area` mapped this CPU's own GDT page writable (zeroed,
    // and used by no one else: each CPU loads only its own); the TSS lies
    // in it past the descriptors, aligned, and lives as long as hv-core.
    let (tss, reserved) = unsafe {
        tss_ptr.write(tss);
        (
            &*tss_ptr,
            core::slice::from_raw_parts_mut(own_page, GDT_ENTRIES - FIRST_RESERVED),
        )
    };
    write_descriptors(reserved, tss);
    // SAFETY: the window maps the shared zero frame (null descriptors)
    // below selector 0xe000 and this CPU's own page from there, with the
    // descriptors just written; the area is never unmapped.
    unsafe { load_gdt(percpu::gdt_base(cpu)) };
    idt().load();
}

/// The IDT every CPU loads, built once.
fn idt() -> &'static InterruptDescriptorTable {
    IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        // SAFETY (all three blocks below): every stub address comes from
        // `entry::stub_address`, a valid entry point that saves state and
        // returns with iretq; IST indices name stacks the TSS provides.
        for vector in 32..=255u8 {
            let addr = VirtAddr::new(entry::stub_address(vector));
            // SAFETY: see above.
            unsafe {
                idt[vector].set_handler_addr(addr);
            }
        }
        let stub = |v: u8| VirtAddr::new(entry::stub_address(v));
        // SAFETY: see above.
        unsafe {
            idt.divide_error.set_handler_addr(stub(0));
            idt.debug.set_handler_addr(stub(1));
            idt.non_maskable_interrupt
                .set_handler_addr(stub(2))
                .set_stack_index(IST_NMI);
            // int3 and into are for guests too (Xen gives them DPL 3), so a
            // guest's int3 arrives as #BP rather than #GP.
            idt.breakpoint
                .set_handler_addr(stub(3))
                .set_privilege_level(PrivilegeLevel::Ring3);
            idt.overflow
                .set_handler_addr(stub(4))
                .set_privilege_level(PrivilegeLevel::Ring3);
            idt.bound_range_exceeded.set_handler_addr(stub(5));
            idt.invalid_opcode.set_handler_addr(stub(6));
            idt.device_not_available.set_handler_addr(stub(7));
            idt.double_fault
                .set_handler_addr(stub(8))
                .set_stack_index(IST_DOUBLE_FAULT);
            idt.invalid_tss.set_handler_addr(stub(10));
            idt.segment_not_present.set_handler_addr(stub(11));
            idt.stack_segment_fault.set_handler_addr(stub(12));
            idt.general_protection_fault.set_handler_addr(stub(13));
            idt.page_fault.set_handler_addr(stub(14));
            idt.x87_floating_point.set_handler_addr(stub(16));
            idt.alignment_check.set_handler_addr(stub(17));
            idt.machine_check
                .set_handler_addr(stub(18))
                .set_stack_index(IST_MACHINE_CHECK);
            idt.simd_floating_point.set_handler_addr(stub(19));
            idt.virtualization.set_handler_addr(stub(20));
            idt.cp_protection_exception.set_handler_addr(stub(21));
            idt.hv_injection_exception.set_handler_addr(stub(28));
            idt.vmm_communication_exception.set_handler_addr(stub(29));
            idt.security_exception.set_handler_addr(stub(30));
        }
        idt
    })
}

/// Makes the LDT empty. Firmware leaves LDTR as it was at reset (base 0,
/// limit 0xffff), and linear 0 is the guest's page: left so, a guest
/// could write a call gate to hv-core's code segment there and reach
/// ring 0 through it. With a null LDTR every selector with TI set is
/// refused (#GP) before any descriptor is read. No guest can change it:
/// `MMUEXT_SET_LDT` is not offered, so a switch between vCPUs has nothing
/// to load; the day it is, the LDT becomes per-vCPU state the switch
/// loads like CR3.
pub fn load_null_ldt() {
    // SAFETY: `lldt` with the null selector marks the LDT unusable; it
    // touches no memory and hv-core uses no LDT selector.
    unsafe {
        core::arch::asm!("lldt {0:x}", in(reg) 0u16, options(nostack, preserves_flags));
    }
}

/// The CPU features hv-core reports and uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    pub vendor: [u8; 12],
    pub nx: bool,
    pub smep: bool,
    pub smap: bool,
    pub xsave: bool,
    pub pdpe1gb: bool,
    pub svm: bool,
    pub npt: bool,
    pub vmx: bool,
    pub x2apic: bool,
    pub tsc_deadline: bool,
    pub invariant_tsc: bool,
    pub pge: bool,
    pub hypervisor: bool,
    /// IA32_ARCH_CAPABILITIES, where CPUID says the MSR exists.
    pub arch_capabilities: Option<u64>,
}

static FEATURES: Once<Features> = Once::new();

pub fn features() -> &'static Features {
    FEATURES.call_once(|| {
        let cpuid = CpuId::new();
        let mut f = Features::default();
        if let Some(v) = cpuid.get_vendor_info() {
            f.vendor.copy_from_slice(v.as_str().as_bytes());
        }
        if let Some(info) = cpuid.get_feature_info() {
            f.xsave = info.has_xsave();
            f.x2apic = info.has_x2apic();
            f.tsc_deadline = info.has_tsc_deadline();
            f.pge = info.has_pge();
            f.hypervisor = info.has_hypervisor();
            f.vmx = info.has_vmx();
        }
        if let Some(ext) = cpuid.get_extended_feature_info() {
            f.smep = ext.has_smep();
            f.smap = ext.has_smap();
        }
        // CPUID.(7,0):EDX[29] says IA32_ARCH_CAPABILITIES exists.
        if core::arch::x86_64::__cpuid_count(0, 0).eax >= 7
            && core::arch::x86_64::__cpuid_count(7, 0).edx & (1 << 29) != 0
        {
            // SAFETY: CPUID says the MSR exists; reading it has no effect.
            f.arch_capabilities =
                Some(unsafe { x86_64::registers::model_specific::Msr::new(0x10a).read() });
        }
        if let Some(ext) = cpuid.get_extended_processor_and_feature_identifiers() {
            f.nx = ext.has_execute_disable();
            f.pdpe1gb = ext.has_1gib_pages();
            f.svm = ext.has_svm();
        }
        if let Some(apm) = cpuid.get_advanced_power_mgmt_info() {
            f.invariant_tsc = apm.has_invariant_tsc();
        }
        if f.svm {
            f.npt = cpuid
                .get_svm_info()
                .is_some_and(|svm| svm.has_nested_paging());
        }
        f
    })
}

/// Switches on the protections the CPU offers: NX (already on from boot),
/// write protection in ring 0 (and native x87 error reporting), SMEP and SMAP, global pages.
/// Which of them is the CPU's word ([`features`]), not a caller's: a bit
/// the CPU lacks would fault.
pub fn enable_protections() {
    let f = features();
    // SAFETY: these bits only add protection or enable features the CPU
    // reported; hv-core has no user pages and no code that relies on
    // writing read-only pages, so nothing that runs afterwards breaks.
    unsafe {
        Cr0::update(|cr0| {
            cr0.insert(
                Cr0Flags::WRITE_PROTECT | Cr0Flags::NUMERIC_ERROR | Cr0Flags::MONITOR_COPROCESSOR,
            );
            cr0.remove(Cr0Flags::EMULATE_COPROCESSOR);
        });
        if f.nx {
            Efer::update(|efer| efer.insert(EferFlags::NO_EXECUTE_ENABLE));
        }
        Cr4::update(|cr4| {
            if f.smep {
                cr4.insert(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION);
            }
            if f.smap {
                cr4.insert(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION);
            }
            if f.pge {
                cr4.insert(Cr4Flags::PAGE_GLOBAL);
            }
        });
    }
}

/// The running CPU's initial APIC id (CPUID leaf 1).
pub fn apic_id() -> u32 {
    CpuId::new()
        .get_feature_info()
        .map_or(0, |f| f.initial_local_apic_id() as u32)
}

/// The CPU's brand string, when it has one.
pub fn brand(buf: &mut [u8; 48]) -> &str {
    let Some(brand) = CpuId::new().get_processor_brand_string() else {
        return "";
    };
    let s = brand.as_str().trim();
    let n = s.len().min(48);
    buf[..n].copy_from_slice(&s.as_bytes()[..n]);
    core::str::from_utf8(&buf[..n]).unwrap_or("")
}
