//! x86-64: everything that touches the CPU, its tables and the platform's
//! devices. The only place in hv-core with `unsafe`.

pub mod acpi;
mod boot;
pub mod cpu;
mod entry;
pub mod extable;
pub mod ioapic;
pub mod lapic;
pub mod paging;
pub mod power;
pub mod pv;
pub mod rtc;
pub mod serial;
pub mod shared;
pub mod sync;
pub mod time;
mod traps;

pub use entry::TrapFrame;
pub use traps::{LAST_TIMER_TSC, TIMER_INTERRUPTS, exception_name};

use hv_core::frames::PhysRange;
use multiboot2::{BootInformation, BootInformationHeader, LoadError};

#[unsafe(no_mangle)]
extern "C" fn hv_main(magic: u32, boot_info_phys: u64) -> ! {
    crate::boot::start(magic, boot_info_phys)
}

/// Reads the multiboot2 boot information at `phys` through the direct map.
/// Only valid once the entry code checked the multiboot2 magic.
pub fn load_boot_info(phys: u64) -> Result<BootInformation<'static>, LoadError> {
    let header = paging::phys_to_virt(phys) as *const BootInformationHeader;
    // SAFETY: a multiboot2 loader (the caller checked the magic) put a boot
    // information structure here; the direct map covers it for good and the
    // frame allocator never hands its frames out, so it is never changed.
    unsafe { BootInformation::load(header) }
}

unsafe extern "C" {
    static __image_phys_start: u8;
    static __image_phys_end: u8;
}

/// Where hv-core's image was loaded.
pub fn image_phys_range() -> PhysRange {
    PhysRange::new(
        core::ptr::addr_of!(__image_phys_start) as u64,
        core::ptr::addr_of!(__image_phys_end) as u64,
    )
}

/// Faults on purpose, for the deliberate-fault test scenario.
pub fn crash(kind: hv_core::cmdline::Crash) -> ! {
    use hv_core::cmdline::Crash;
    match kind {
        Crash::PageFault => {
            // An address in the hole that nothing maps.
            let wild = (hv_core::layout::M2P_BASE + 0x1234_5000) as *const u64;
            // SAFETY: deliberately unsound: the read faults, which is the
            // point; the fault handler reports it and stops the machine.
            let value = unsafe { core::ptr::read_volatile(wild) };
            panic!("read of an unmapped address returned {value:#x}");
        }
        Crash::InvalidOpcode => {
            // SAFETY: ud2 raises #UD, which stops the machine with a report.
            unsafe { core::arch::asm!("ud2", options(noreturn)) }
        }
        Crash::DivideError => {
            // SAFETY: div by zero raises #DE, which stops the machine.
            unsafe {
                core::arch::asm!("xor ecx, ecx", "div ecx", options(noreturn));
            }
        }
        Crash::StackOverflow => {
            // SAFETY: moves the stack pointer into the guard page below the
            // boot stack and pushes: the #PF cannot be delivered on that
            // stack, so the CPU raises #DF on its own IST stack.
            unsafe {
                core::arch::asm!(
                    "mov rsp, {guard}",
                    "add rsp, 64",
                    "push rax",
                    guard = in(reg) boot::guard_pages()[0],
                    options(noreturn)
                );
            }
        }
    }
}

/// The frame bitmap's storage: `words` u64s at `virt`.
pub fn frame_bitmap(virt: u64, words: usize) -> &'static mut [u64] {
    // SAFETY: `memory::init` carved these frames out of usable memory (no
    // one else gets them) and the direct map covers them for the life of
    // the hypervisor; `virt` is page-aligned, so u64-aligned.
    unsafe { core::slice::from_raw_parts_mut(virt as *mut u64, words) }
}

/// Zeroes the 4 KiB frame mapped at `virt`.
pub fn zero_frame(virt: u64) {
    // SAFETY: the caller just allocated the frame (so owns it) and `virt` is
    // its direct-map address.
    unsafe { core::ptr::write_bytes(virt as *mut u8, 0, 4096) }
}

/// The frame table's storage: `count` entries at `virt`, each initialised
/// to a free frame.
pub fn frame_info_storage(
    virt: u64,
    count: usize,
) -> &'static mut [hv_core::frame_table::FrameInfo] {
    use hv_core::frame_table::FrameInfo;
    let base = virt as *mut FrameInfo;
    assert!(base.is_aligned(), "frame table storage misaligned");
    for i in 0..count {
        // SAFETY: `memory::init` carved `count` entries' worth of frames at
        // `virt` for the frame table alone; each write stays inside them.
        unsafe { base.add(i).write(FrameInfo::FREE) };
    }
    // SAFETY: every element was just initialised, and the memory is owned
    // by the frame table for the life of the hypervisor.
    unsafe { core::slice::from_raw_parts_mut(base, count) }
}

/// The vector COM1's receive interrupt arrives on.
pub const SERIAL_VECTOR: u8 = 0x24;

/// A multiboot2 module's bytes, through the direct map.
pub fn module_bytes(phys: u64, len: u64) -> &'static [u8] {
    // SAFETY: the boot loader placed the module at `phys`; the frame
    // allocator never hands those frames out (memory::init reserved every
    // module) and the direct map covers them for the life of hv-core.
    unsafe { core::slice::from_raw_parts(paging::phys_to_virt(phys) as *const u8, len as usize) }
}
