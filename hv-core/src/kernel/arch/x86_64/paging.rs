//! hv-core's own page tables.
//!
//! `init` replaces the boot tables with the final layout (see
//! `hv_core::layout`): a direct map of all RAM (read-write, never
//! executable), hv-core's image with per-section permissions (text RX,
//! rodata R, data and bss RW, all but text NX), and no identity map at all,
//! so a stray low pointer faults. Stack guard pages stay unmapped.
//! Device memory is mapped on demand into the MMIO window, uncached.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hv_core::frame_alloc::{FRAME_SIZE, UsableRanges};
use hv_core::layout::{DIRECT_MAP_BASE, IMAGE_OFFSET, M2P_BASE, MMIO_BASE, MMIO_SIZE};
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageSize, PageTable, PageTableFlags as F,
    PhysFrame, Size2MiB, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

use super::boot;
use super::sync::IrqMutex;

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __data_end: u8;
}

static KERNEL_TABLES: IrqMutex<Option<OffsetPageTable<'static>>> = IrqMutex::new(None);
/// The physical address of hv-core's own L4 (the one it boots and idles on).
static ROOT: AtomicU64 = AtomicU64::new(0);
static MMIO_NEXT: AtomicU64 = AtomicU64::new(MMIO_BASE);
static NX: AtomicBool = AtomicBool::new(false);

/// RAM that the direct map covers (the tables are built once, at boot).
static RAM: IrqMutex<Option<UsableRanges>> = IrqMutex::new(None);

/// The direct-map address of a physical address.
#[inline(always)]
pub fn phys_to_virt(phys: u64) -> u64 {
    DIRECT_MAP_BASE + phys
}

/// The physical address behind a direct-map address.
pub fn virt_to_phys(virt: u64) -> u64 {
    virt - DIRECT_MAP_BASE
}

struct Frames;

// SAFETY: frames come from the global frame allocator, which hands each out
// once, and are unused memory until the page-table code zeroes them.
unsafe impl FrameAllocator<Size4KiB> for Frames {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        let phys = crate::memory::alloc_frame()?;
        Some(PhysFrame::containing_address(PhysAddr::new(phys)))
    }
}

fn nx() -> F {
    if NX.load(Ordering::Relaxed) {
        F::NO_EXECUTE
    } else {
        F::empty()
    }
}

fn map_4k(tables: &mut OffsetPageTable<'static>, virt: u64, phys: u64, flags: F) {
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
    let frame = PhysFrame::containing_address(PhysAddr::new(phys));
    // SAFETY: the callers map each virtual page once, to memory of the kind
    // the flags describe (RAM, hv-core's own image, or device registers).
    match unsafe { tables.map_to(page, frame, flags, &mut Frames) } {
        Ok(flush) => flush.flush(),
        Err(e) => panic!("cannot map {virt:#x} -> {phys:#x}: {e:?}"),
    }
}

fn map_2m(tables: &mut OffsetPageTable<'static>, virt: u64, phys: u64, flags: F) {
    let page = Page::<Size2MiB>::containing_address(VirtAddr::new(virt));
    let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(phys));
    // SAFETY: as in `map_4k`; the direct map maps each RAM page once.
    match unsafe { tables.map_to(page, frame, flags, &mut Frames) } {
        Ok(flush) => flush.ignore(),
        Err(e) => panic!("cannot map {virt:#x} -> {phys:#x}: {e:?}"),
    }
}

/// Maps `[phys, phys + len)` at `DIRECT_MAP_BASE + phys`, with 2 MiB pages
/// wherever alignment allows.
fn map_direct(tables: &mut OffsetPageTable<'static>, start: u64, end: u64) {
    let flags = F::PRESENT | F::WRITABLE | F::GLOBAL | nx();
    let mut phys = start;
    while phys < end {
        if phys.is_multiple_of(Size2MiB::SIZE) && end - phys >= Size2MiB::SIZE {
            map_2m(tables, phys_to_virt(phys), phys, flags | F::HUGE_PAGE);
            phys += Size2MiB::SIZE;
        } else {
            map_4k(tables, phys_to_virt(phys), phys, flags);
            phys += FRAME_SIZE;
        }
    }
}

fn map_image_section(tables: &mut OffsetPageTable<'static>, start: u64, end: u64, flags: F) {
    let guards = boot::guard_pages();
    let mut virt = start;
    while virt < end {
        if !guards.contains(&virt) {
            map_4k(tables, virt, virt - IMAGE_OFFSET, flags | F::GLOBAL);
        }
        virt += FRAME_SIZE;
    }
}

/// Builds the final page tables and switches to them. `ram` must list every
/// RAM range (usable or not) that hv-core may need to reach. NX is used
/// where the CPU has it (a reserved bit otherwise).
pub fn init(ram: &UsableRanges) {
    NX.store(super::cpu::features().nx, Ordering::Relaxed);
    let root = crate::memory::alloc_frame().expect("no memory for the page-table root");
    assert!(
        root < 1 << 32,
        "page-table root above the 4 GiB the boot tables map"
    );
    let root_virt = phys_to_virt(root) as *mut PageTable;
    // SAFETY: the frame was just allocated (nobody else uses it) and the boot
    // tables map it at its direct-map address; zeroing makes it a valid,
    // empty page table that lives as long as the hypervisor.
    let root_table = unsafe {
        root_virt.write(PageTable::new());
        &mut *root_virt
    };
    // SAFETY: all RAM is reachable at DIRECT_MAP_BASE + phys, first through
    // the boot tables (page-table frames come from below 4 GiB) and then
    // through the direct map these tables contain.
    let mut tables = unsafe { OffsetPageTable::new(root_table, VirtAddr::new(DIRECT_MAP_BASE)) };

    for range in ram.as_slice() {
        map_direct(&mut tables, range.start, range.end);
    }
    let addr = |s: &u8| s as *const u8 as u64;
    // SAFETY: the linker script defines these symbols; only their addresses
    // are used.
    let (text, rodata, data) = unsafe {
        (
            (addr(&__text_start), addr(&__text_end)),
            (addr(&__rodata_start), addr(&__rodata_end)),
            (addr(&__data_start), addr(&__data_end)),
        )
    };
    map_image_section(&mut tables, text.0, text.1, F::PRESENT);
    map_image_section(&mut tables, rodata.0, rodata.1, F::PRESENT | nx());
    map_image_section(&mut tables, data.0, data.1, F::PRESENT | F::WRITABLE | nx());

    // SAFETY: the new tables map everything hv-core uses from here on: its
    // image (including the running code and the current stack) and RAM
    // (including the boot information and the frame bitmap).
    unsafe {
        Cr3::write(
            PhysFrame::containing_address(PhysAddr::new(root)),
            Cr3Flags::empty(),
        );
    }
    RAM.with(|r| *r = Some(ram.clone()));
    KERNEL_TABLES.with(|t| *t = Some(tables));
    ROOT.store(root, Ordering::Relaxed);
}

/// Maps the M2P table (`memory::m2p_range`) read-only and user-readable at
/// `M2P_BASE`, for guests. Called before any guest exists, so slot 256 is
/// present in hv-core's L4 when guest L4s copy the hypervisor slots.
pub fn map_m2p() {
    let (phys, len) = crate::memory::m2p_range();
    KERNEL_TABLES.with(|tables| {
        let tables = tables.as_mut().expect("paging not initialised");
        for offset in (0..len).step_by(FRAME_SIZE as usize) {
            let flags = F::PRESENT | F::USER_ACCESSIBLE | F::GLOBAL | nx();
            map_4k(tables, M2P_BASE + offset, phys + offset, flags);
        }
    });
}

/// hv-core's entries for L4 slots 256-271, which every guest L4 carries.
pub fn hypervisor_l4_entries() -> [u64; 16] {
    let root = phys_to_virt(ROOT.load(Ordering::Relaxed)) as *const u64;
    let mut entries = [0u64; 16];
    for (i, entry) in entries.iter_mut().enumerate() {
        // SAFETY: the root is hv-core's L4, a live page-table frame reached
        // through the direct map; reading its entries has no side effects.
        *entry = unsafe { root.add(256 + i).read_volatile() };
    }
    entries
}

/// Maps device registers `[phys, phys + len)` uncached into the MMIO window
/// and returns the virtual address of `phys`.
pub fn map_mmio(phys: u64, len: u64) -> u64 {
    map_window(phys, len, F::NO_CACHE | F::WRITE_THROUGH)
}

/// The virtual address of firmware tables at `[phys, phys + len)`: the
/// direct map when they lie in RAM, otherwise a cached window mapping.
pub fn map_firmware(phys: u64, len: u64) -> u64 {
    let in_ram = RAM.with(|ram| {
        ram.as_ref().is_some_and(|ram| {
            ram.as_slice()
                .iter()
                .any(|r| r.start <= phys && phys + len <= r.end)
        })
    });
    if in_ram {
        phys_to_virt(phys)
    } else {
        map_window(phys, len, F::empty())
    }
}

fn map_window(phys: u64, len: u64, cache: F) -> u64 {
    let first = phys / FRAME_SIZE * FRAME_SIZE;
    let pages = (phys + len.max(1)).div_ceil(FRAME_SIZE) - first / FRAME_SIZE;
    let virt = MMIO_NEXT.fetch_add(pages * FRAME_SIZE, Ordering::Relaxed);
    assert!(
        virt + pages * FRAME_SIZE <= MMIO_BASE + MMIO_SIZE,
        "MMIO window exhausted"
    );
    KERNEL_TABLES.with(|tables| {
        let tables = tables.as_mut().expect("paging not initialised");
        for i in 0..pages {
            let flags = F::PRESENT | F::WRITABLE | F::GLOBAL | nx() | cache;
            map_4k(tables, virt + i * FRAME_SIZE, first + i * FRAME_SIZE, flags);
        }
    });
    virt + (phys - first)
}

/// Maps one page of RAM at `virt` (outside the direct map: a per-CPU
/// area), never executable, writable or not. `virt` must be a page no one
/// has mapped.
pub fn map_data_page(virt: u64, phys: u64, writable: bool) {
    let write = if writable { F::WRITABLE } else { F::empty() };
    KERNEL_TABLES.with(|tables| {
        let tables = tables.as_mut().expect("paging not initialised");
        map_4k(tables, virt, phys, F::PRESENT | F::GLOBAL | nx() | write);
    });
}

/// Maps the page at physical `phys` (below 1 MiB) at the same virtual
/// address, executable, in hv-core's own tables: the secondary CPUs'
/// start-up code turns paging on there. [`unmap_identity`] removes it.
pub fn map_identity(phys: u64) {
    KERNEL_TABLES.with(|tables| {
        let tables = tables.as_mut().expect("paging not initialised");
        map_4k(tables, phys, phys, F::PRESENT | F::WRITABLE);
    });
}

/// Removes [`map_identity`]'s mapping (its intermediate tables stay,
/// empty, in the guest half of hv-core's own L4, which no guest uses).
pub fn unmap_identity(phys: u64) {
    KERNEL_TABLES.with(|tables| {
        let tables = tables.as_mut().expect("paging not initialised");
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(phys));
        match tables.unmap(page) {
            Ok((_, flush)) => flush.flush(),
            Err(e) => log::warn!("identity page {phys:#x} was not mapped: {e:?}"),
        }
    });
}

/// The physical address of hv-core's own L4 (what a starting CPU loads).
pub fn root() -> u64 {
    ROOT.load(Ordering::Relaxed)
}
