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
pub mod percpu;
pub mod power;
pub mod pv;
pub mod rtc;
pub mod serial;
pub mod shared;
pub mod smp;
pub mod sync;
pub mod time;
mod traps;

pub use entry::TrapFrame;
pub use traps::{LAST_TIMER_TSC, TIMER_INTERRUPTS, exception_name};

use hv_core::frame_alloc::PhysRange;
use multiboot2::{BootInformation, BootInformationHeader, LoadError};

#[unsafe(no_mangle)]
extern "C" fn hv_main(magic: u32, boot_info_phys: u64) -> ! {
    crate::boot::start(BootHandoff {
        magic,
        info_phys: boot_info_phys,
    })
}

/// The multiboot2 loader's magic in EAX at entry.
const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;

/// What the boot loader handed over, as the entry code received it (EAX and
/// EBX at `start32`). Only `hv_main` makes one, so the address in it is the
/// boot loader's, not a caller's.
pub struct BootHandoff {
    magic: u32,
    info_phys: u64,
}

/// Why the hand-off gives no boot information.
#[derive(Debug)]
pub enum BootInfoError {
    /// Not started by a multiboot2 loader: this magic instead.
    NotMultiboot2(u32),
    /// The structure the loader pointed at does not parse.
    Unreadable(LoadError),
}

impl BootHandoff {
    /// The boot information's physical address (it must stay reserved).
    pub fn info_phys(&self) -> u64 {
        self.info_phys
    }

    /// The multiboot2 boot information, read through the direct map, once
    /// the magic says a multiboot2 loader started hv-core.
    pub fn boot_info(&self) -> Result<BootInfo, BootInfoError> {
        if self.magic != MULTIBOOT2_MAGIC {
            return Err(BootInfoError::NotMultiboot2(self.magic));
        }
        let header = paging::phys_to_virt(self.info_phys) as *const BootInformationHeader;
        // SAFETY: the magic says a multiboot2 loader put a boot information
        // structure at this address (the entry code's EBX, which only
        // `hv_main` wraps); the direct map covers it for good and the frame
        // allocator never hands its frames out (`boot::init_memory`
        // reserves them), so it is never changed.
        let info = unsafe { BootInformation::load(header) }.map_err(BootInfoError::Unreadable)?;
        Ok(BootInfo(info))
    }
}

/// The boot loader's multiboot2 information (only [`BootHandoff`] makes
/// one), with the modules it loaded.
pub struct BootInfo(BootInformation<'static>);

impl core::ops::Deref for BootInfo {
    type Target = BootInformation<'static>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl BootInfo {
    /// The bytes of module `index`, through the direct map.
    pub fn module_bytes(&self, index: usize) -> Option<&'static [u8]> {
        let module = self.0.module_tags().nth(index)?;
        let phys = module.start_address() as u64;
        let len = module.module_size() as usize;
        // SAFETY: the tag is in the boot loader's own structure, so it names
        // the module the loader placed there; the frame allocator never
        // hands those frames out (`boot::init_memory` reserves every module)
        // and the direct map covers them for the life of hv-core, so they
        // are never written.
        Some(unsafe { core::slice::from_raw_parts(paging::phys_to_virt(phys) as *const u8, len) })
    }
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

/// One of hv-core's own tables (the allocator's bitmap, the frame table,
/// the M2P) in the frames `memory::init` carved for it: `count` `T`s, each
/// set to `fill`. The frames become the table for good.
pub fn boot_table<T: Copy>(
    frames: crate::memory::CarvedFrames,
    count: usize,
    fill: T,
) -> &'static mut [T] {
    let (phys, bytes) = (frames.phys(), frames.bytes());
    let needed = count.checked_mul(core::mem::size_of::<T>());
    assert!(
        needed.is_some_and(|n| n as u64 <= bytes),
        "{count} table entries do not fit the {bytes} bytes carved for them"
    );
    // `memory::init` runs before `paging::init`: the boot tables map only
    // the first 4 GiB at the direct-map base.
    assert!(
        phys.checked_add(bytes).is_some_and(|end| end <= 1 << 32),
        "boot table beyond the boot page tables"
    );
    let base = paging::phys_to_virt(phys) as *mut T;
    assert!(base.is_aligned(), "boot table misaligned");
    for i in 0..count {
        // SAFETY: a `CarvedFrames` is made only by `memory::init`, from
        // usable RAM it took out of the allocator's ranges, once per table
        // (and this consumes it): nobody else reaches these frames. The
        // boot tables map them at their direct-map address; the entry is
        // inside them (checked above) and aligned.
        unsafe { base.add(i).write(fill) };
    }
    // SAFETY: every element was just initialised; as above, the memory is
    // this table's alone for the life of hv-core.
    unsafe { core::slice::from_raw_parts_mut(base, count) }
}

/// Zeroes a frame the allocator has just handed out.
pub fn zero_frame(frame: &crate::memory::FreshFrame) {
    let virt = paging::phys_to_virt(frame.phys());
    // SAFETY: a `FreshFrame` is made only by `memory::alloc_frame`, for a
    // frame the allocator has just taken out of its free set: nothing
    // refers to it yet. The direct map covers all RAM.
    unsafe { core::ptr::write_bytes(virt as *mut u8, 0, 4096) }
}

/// The vector COM1's receive interrupt arrives on.
pub const SERIAL_VECTOR: u8 = 0x24;
