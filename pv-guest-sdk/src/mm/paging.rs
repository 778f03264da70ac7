//! The guest's page tables, changed only through the hypervisor.
//!
//! PV page tables hold machine frames and are never writable by the guest:
//! every frame that is a table is mapped read-only (in the physmap, which
//! is how the SDK reads them), and entries change through `mmu_update`
//! (batched) or `update_va_mapping`. A new table is written while it is
//! still an ordinary writable page, remapped read-only, and only then
//! linked into its parent, at which point the hypervisor validates it.

use abi::xen::{
    DOMID_SELF, MMU_NORMAL_PT_UPDATE, MMUEXT_INVLPG_LOCAL, MmuUpdate, MmuextOp, UVMF_INVLPG,
};
use spin::Mutex;

use super::MapError;
use super::frames::{FrameAllocator, Pfn};
use super::p2m::{Mfn, P2m};
use super::pte;
use super::window::{self, WindowSlots};
use crate::arch::mem;
use crate::hypercall;
use crate::layout::{MAP_WINDOW_VA, MAX_PHYSMAP_PAGES, PAGE_SIZE, VIRT_BASE, pfn_to_virt};
use crate::shmem::SharedPage;

/// A frame the guest owns: its pseudo-physical and machine numbers and
/// its physmap address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Its pseudo-physical frame number.
    pub pfn: Pfn,
    /// Its machine frame number (what page tables and hypercalls take).
    pub mfn: Mfn,
}

impl Frame {
    /// Its address in the physmap.
    pub fn va(&self) -> u64 {
        pfn_to_virt(self.pfn)
    }

    /// Its machine address.
    pub fn maddr(&self) -> u64 {
        self.mfn * PAGE_SIZE
    }
}

pub(crate) struct Memory {
    pub frames: FrameAllocator,
    /// `None` until start of day (so the static is all zeroes and lives in
    /// .bss rather than adding its 64 KiB bitmap to the image).
    p2m: Option<P2m<'static>>,
    /// Machine frame of the kernel's L4 (the builder's bootstrap L4).
    kernel_l4: Mfn,
    nr_pages: u64,
}

pub(crate) static MEMORY: Mutex<Memory> = Mutex::new(Memory {
    frames: FrameAllocator::new(),
    p2m: None,
    kernel_l4: 0,
    nr_pages: 0,
});

impl Memory {
    pub fn p2m(&self) -> P2m<'static> {
        self.p2m.unwrap_or(P2m::new(&[]))
    }

    pub fn kernel_l4(&self) -> Mfn {
        self.kernel_l4
    }

    fn frame(&self, pfn: Pfn) -> Option<Frame> {
        Some(Frame {
            pfn,
            mfn: self.p2m().pfn_to_mfn(pfn)?,
        })
    }

    pub fn alloc_frame(&mut self) -> Result<Frame, MapError> {
        let pfn = self.frames.alloc().ok_or(MapError::OutOfFrames)?;
        self.frame(pfn).ok_or(MapError::OutOfFrames)
    }

    /// The physmap address of page-table frame `mfn` (mapped read-only).
    fn table_va(&self, mfn: Mfn) -> Result<u64, MapError> {
        let pfn = self
            .p2m()
            .check_m2p(mfn, mem::m2p(mfn))
            .ok_or(MapError::ForeignTable(mfn))?;
        // Tables are always physmap frames: the builder's lie in the
        // bootstrap region, the SDK's come from below the allocator's limit.
        if pfn >= self.nr_pages.min(MAX_PHYSMAP_PAGES) {
            return Err(MapError::ForeignTable(mfn));
        }
        Ok(pfn_to_virt(pfn))
    }

    fn read(&self, table: Mfn, index: usize) -> Result<u64, MapError> {
        let va = self.table_va(table)?;
        // SAFETY: `va` is the physmap address of a page-table frame of this
        // domain (checked through the M2P and p2m above).
        Ok(unsafe { mem::read_entry(va, index) })
    }

    /// Turns a fresh frame into a page table holding `entries`: written
    /// while writable, then remapped read-only. The caller links it.
    fn make_table(&mut self, entries: &[u64]) -> Result<Frame, MapError> {
        let frame = self.alloc_frame()?;
        // SAFETY: a frame just taken from the allocator: mapped writable in
        // the physmap and used by nothing else.
        unsafe { mem::fill_page(frame.va(), entries) };
        // SAFETY: only the new frame's own physmap mapping changes, to
        // read-only; nothing has a reference into it.
        unsafe {
            hypercall::update_va_mapping(
                frame.va(),
                pte::entry(frame.mfn, pte::KERNEL_RO),
                UVMF_INVLPG,
            )?
        };
        Ok(frame)
    }

    fn write_entry(&self, table: Mfn, index: usize, value: u64) -> Result<(), MapError> {
        let request = MmuUpdate {
            ptr: (table * PAGE_SIZE + index as u64 * 8) | MMU_NORMAL_PT_UPDATE,
            val: value,
        };
        // SAFETY: callers only write entries of addresses that hold no Rust
        // objects (new mappings, or ones they own and unmap on purpose).
        unsafe { hypercall::mmu_update(&[request], DOMID_SELF)? };
        Ok(())
    }

    /// The L1 table and index for `va` under `l4`, creating missing
    /// intermediate tables when `create` is set.
    fn walk(&mut self, l4: Mfn, va: u64, create: bool) -> Result<(Mfn, usize), MapError> {
        check_guest_address(va)?;
        let idx = pte::indices(va);
        let mut table = l4;
        for (level, &index) in idx[..3].iter().enumerate() {
            let mut entry = self.read(table, index)?;
            if !pte::is_present(entry) {
                if !create {
                    return Err(MapError::NotMapped(va));
                }
                let new = self.make_table(&[])?;
                entry = pte::entry(new.mfn, pte::TABLE);
                self.write_entry(table, index, entry)?;
            } else if level > 0 && entry & pte::HUGE != 0 {
                return Err(MapError::HugePage(va));
            }
            table = pte::mfn(entry);
        }
        Ok((table, idx[3]))
    }

    /// The L1 entry that maps `va` in the kernel's address space.
    pub fn lookup(&mut self, va: u64) -> Result<u64, MapError> {
        let (l1, index) = self.walk(self.kernel_l4, va, false)?;
        let entry = self.read(l1, index)?;
        if pte::is_present(entry) {
            Ok(entry)
        } else {
            Err(MapError::NotMapped(va))
        }
    }

    /// Maps machine frame `mfn` at `va` with `flags`; never replaces an
    /// existing mapping.
    pub fn map(&mut self, va: u64, mfn: Mfn, flags: u64) -> Result<(), MapError> {
        let (l1, index) = self.walk(self.kernel_l4, va, true)?;
        if pte::is_present(self.read(l1, index)?) {
            return Err(MapError::AlreadyMapped(va));
        }
        self.write_entry(l1, index, pte::entry(mfn, flags))
    }

    /// Maps `mfns` at consecutive pages from `va`, one `mmu_update` batch
    /// per L1 table.
    pub fn map_range(&mut self, va: u64, mfns: &[Mfn], flags: u64) -> Result<(), MapError> {
        const BATCH: usize = 64;
        let mut done = 0;
        while done < mfns.len() {
            let page_va = va + done as u64 * PAGE_SIZE;
            let (l1, first) = self.walk(self.kernel_l4, page_va, true)?;
            let count = (512 - first).min(mfns.len() - done).min(BATCH);
            let mut batch = [MmuUpdate::default(); BATCH];
            for i in 0..count {
                if pte::is_present(self.read(l1, first + i)?) {
                    return Err(MapError::AlreadyMapped(page_va + i as u64 * PAGE_SIZE));
                }
                batch[i] = MmuUpdate {
                    ptr: (l1 * PAGE_SIZE + (first + i) as u64 * 8) | MMU_NORMAL_PT_UPDATE,
                    val: pte::entry(mfns[done + i], flags),
                };
            }
            // SAFETY: every entry was checked to be empty: no Rust object
            // lives at these addresses.
            unsafe { hypercall::mmu_update(&batch[..count], DOMID_SELF)? };
            done += count;
        }
        Ok(())
    }

    /// Removes the mapping at `va` and flushes it from the TLB; returns the
    /// machine frame it mapped.
    ///
    /// # Safety
    /// Nothing may still use memory at `va`.
    pub unsafe fn unmap(&mut self, va: u64) -> Result<Mfn, MapError> {
        let entry = self.lookup(va)?;
        // SAFETY: the caller promises `va` is unused.
        unsafe { hypercall::update_va_mapping(va, 0, UVMF_INVLPG)? };
        Ok(pte::mfn(entry))
    }

    /// Changes the flags of the mapping at `va`.
    ///
    /// # Safety
    /// Rust code must not rely on the permissions being removed (for
    /// example, no `&mut` into a page that becomes read-only).
    pub unsafe fn protect(&mut self, va: u64, flags: u64) -> Result<(), MapError> {
        let entry = self.lookup(va)?;
        // SAFETY: the caller vouches for the new permissions.
        unsafe {
            hypercall::update_va_mapping(va, pte::entry(pte::mfn(entry), flags), UVMF_INVLPG)?
        };
        Ok(())
    }

    /// Extends the physmap from the allocator's limit to every frame of the
    /// domain (up to [`MAX_PHYSMAP_PAGES`]), one L1 table at a time: each
    /// new table is filled while writable, remapped read-only, then linked.
    /// Its frame comes from below the limit, and each table maps 512 more.
    fn extend_physmap(&mut self) -> Result<(), MapError> {
        let end = self.nr_pages.min(MAX_PHYSMAP_PAGES);
        let mut next = self.frames.limit();
        while next < end {
            let va = pfn_to_virt(next);
            let idx = pte::indices(va);
            let chunk_end = ((next / 512) + 1) * 512;
            let count = (chunk_end.min(end) - next) as usize;
            // The L2 for `va`, creating the L3/L2 levels if needed.
            let mut table = self.kernel_l4;
            for &index in &idx[..2] {
                let mut entry = self.read(table, index)?;
                if !pte::is_present(entry) {
                    let new = self.make_table(&[])?;
                    entry = pte::entry(new.mfn, pte::TABLE);
                    self.write_entry(table, index, entry)?;
                }
                table = pte::mfn(entry);
            }
            let l2 = table;
            let existing = self.read(l2, idx[2])?;
            if pte::is_present(existing) {
                // Part of this 2 MiB is mapped already (the bootstrap
                // region's last table): fill in the rest entry by entry.
                let mut mfns = [0; 512];
                for (slot, pfn) in mfns.iter_mut().zip(next..next + count as u64) {
                    *slot = self.p2m().pfn_to_mfn(pfn).ok_or(MapError::OutOfFrames)?;
                }
                self.map_range(va, &mfns[..count], pte::KERNEL_RW)?;
            } else {
                let mut entries = [0u64; 512];
                for (i, pfn) in (next..next + count as u64).enumerate() {
                    let mfn = self.p2m().pfn_to_mfn(pfn).ok_or(MapError::OutOfFrames)?;
                    entries[idx[3] + i] = pte::entry(mfn, pte::KERNEL_RW);
                }
                let l1 = self.make_table(&entries)?;
                self.write_entry(l2, idx[2], pte::entry(l1.mfn, pte::TABLE))?;
            }
            next += count as u64;
            self.frames.set_limit(next);
        }
        Ok(())
    }
}

/// Refuses the hypervisor's hole and non-canonical addresses.
fn check_guest_address(va: u64) -> Result<(), MapError> {
    let canonical = (va as i64) << 16 >> 16 == va as i64;
    let in_hole = (abi::xen::HYPERVISOR_VIRT_START..abi::xen::HYPERVISOR_VIRT_END).contains(&va);
    if canonical && !in_hole {
        Ok(())
    } else {
        Err(MapError::BadAddress(va))
    }
}

/// Sets up memory management at start of day: the allocator over the
/// frames after the bootstrap region, the physmap over all of them.
pub(crate) fn init(start: &crate::StartInfo<'static>, image_end: u64) -> Result<(), MapError> {
    let mut memory = MEMORY.lock();
    let first_free = start.first_free_pfn(image_end);
    memory.p2m = Some(P2m::new(start.mfn_list()));
    memory.nr_pages = start.nr_pages();
    let l4_pfn =
        crate::layout::virt_to_pfn(start.pt_base()).ok_or(MapError::BadAddress(start.pt_base()))?;
    memory.kernel_l4 = memory
        .p2m()
        .pfn_to_mfn(l4_pfn)
        .ok_or(MapError::OutOfFrames)?;
    memory.frames.add_range(first_free, start.nr_pages());
    // Frames the builder mapped: the bootstrap region runs from VIRT_BASE
    // to a 4 MiB boundary. Probe rather than assume its size.
    let mut mapped = first_free;
    while mapped < start.nr_pages() && memory.lookup(pfn_to_virt(mapped)).is_ok() {
        mapped += 1;
    }
    memory.frames.set_limit(mapped);
    memory.extend_physmap()
}

/// One free frame, mapped writable at its physmap address.
pub fn alloc_frame() -> Result<Frame, MapError> {
    MEMORY.lock().alloc_frame()
}

/// One free frame holding `bytes` (the rest zeroed), mapped writable at
/// its physmap address.
pub fn alloc_frame_filled(bytes: &[u8]) -> Result<Frame, MapError> {
    let frame = alloc_frame()?;
    // SAFETY: a frame just taken from the allocator: writable in the
    // physmap and used by nothing else.
    unsafe { mem::copy_to_page(frame.va(), bytes) };
    Ok(frame)
}

/// Returns a frame to the allocator. It must be mapped writable in the
/// physmap again (not a page table) and no longer used.
pub fn free_frame(frame: Frame) {
    MEMORY.lock().frames.free(frame.pfn);
}

/// Free frames left.
pub fn free_frames() -> u64 {
    MEMORY.lock().frames.free_count()
}

/// The machine frame behind pseudo-physical frame `pfn`.
pub fn pfn_to_mfn(pfn: Pfn) -> Option<Mfn> {
    MEMORY.lock().p2m().pfn_to_mfn(pfn)
}

/// The pseudo-physical frame behind machine frame `mfn`, if it is ours.
pub fn mfn_to_pfn(mfn: Mfn) -> Option<Pfn> {
    MEMORY.lock().p2m().check_m2p(mfn, mem::m2p(mfn))
}

/// The machine address `va` maps to in the kernel's address space.
pub fn translate(va: u64) -> Option<u64> {
    let entry = MEMORY.lock().lookup(va & !(PAGE_SIZE - 1)).ok()?;
    Some(pte::mfn(entry) * PAGE_SIZE + (va & (PAGE_SIZE - 1)))
}

/// Maps machine frame `mfn` at `va` (which must be unmapped).
pub fn map(va: u64, mfn: Mfn, flags: u64) -> Result<(), MapError> {
    MEMORY.lock().map(va, mfn, flags)
}

/// Maps `mfns` at consecutive pages from `va` (all unmapped), batched.
pub fn map_range(va: u64, mfns: &[Mfn], flags: u64) -> Result<(), MapError> {
    MEMORY.lock().map_range(va, mfns, flags)
}

/// Unmaps `va`; returns the machine frame it mapped.
///
/// # Safety
/// Nothing may still use memory at `va`.
pub unsafe fn unmap(va: u64) -> Result<Mfn, MapError> {
    // SAFETY: forwarded from the caller.
    unsafe { MEMORY.lock().unmap(va) }
}

/// Changes the flags of the mapping at `va`.
///
/// # Safety
/// Rust code must not rely on permissions that are removed.
pub unsafe fn protect(va: u64, flags: u64) -> Result<(), MapError> {
    // SAFETY: forwarded from the caller.
    unsafe { MEMORY.lock().protect(va, flags) }
}

/// The L1 entry mapping `va`, if any.
pub fn lookup(va: u64) -> Result<u64, MapError> {
    MEMORY.lock().lookup(va)
}

/// The kernel's L4 entry `slot`, first giving it an empty L3 if it has
/// none (so that a user root can share it).
pub fn ensure_kernel_l4_slot(slot: usize) -> Result<u64, MapError> {
    let mut memory = MEMORY.lock();
    let l4 = memory.kernel_l4;
    let entry = memory.read(l4, slot)?;
    if pte::is_present(entry) {
        return Ok(entry);
    }
    let l3 = memory.make_table(&[])?;
    let entry = pte::entry(l3.mfn, pte::TABLE);
    memory.write_entry(l4, slot, entry)?;
    Ok(entry)
}

/// Installs `root` (a table made by [`new_table`]) as the vCPU's user page
/// tables (`MMUEXT_NEW_USER_BASEPTR`).
pub fn set_user_root(root: &Frame) -> crate::Result<()> {
    use abi::xen::MMUEXT_NEW_USER_BASEPTR;
    let op = MmuextOp {
        cmd: MMUEXT_NEW_USER_BASEPTR,
        _pad: 0,
        arg1: root.mfn,
        arg2: 0,
    };
    // SAFETY: the user root is only used in user mode: no kernel mapping
    // changes.
    unsafe { hypercall::mmuext_op(&[op], DOMID_SELF) }.map(drop)
}

/// Flushes `va` from this vCPU's TLB (after changing an entry through
/// `mmu_update`, which does not flush).
pub fn invlpg(va: u64) -> crate::Result<()> {
    let op = MmuextOp {
        cmd: MMUEXT_INVLPG_LOCAL,
        _pad: 0,
        arg1: va,
        arg2: 0,
    };
    // SAFETY: a TLB flush changes no mapping.
    unsafe { hypercall::mmuext_op(&[op], DOMID_SELF) }.map(drop)
}

/// The machine frame of the kernel's root page table.
pub fn kernel_l4() -> Mfn {
    MEMORY.lock().kernel_l4()
}

/// Reads entry `index` of page table `table` (a machine frame of ours).
pub fn read_table_entry(table: Mfn, index: usize) -> Result<u64, MapError> {
    MEMORY.lock().read(table, index)
}

/// Allocates a frame, fills it with `entries` (the rest zero) and remaps
/// it read-only, ready to be linked or used as a root. The frame is the
/// caller's from then on.
pub fn new_table(entries: &[u64]) -> Result<Frame, MapError> {
    MEMORY.lock().make_table(entries)
}

// --- memory shared with other domains ------------------------------------

/// A frame of this domain set aside for sharing: granted to another
/// domain, or named as a grant-copy destination. It is reached only as a
/// [`SharedPage`] and never returned to the allocator (the other side may
/// keep using it), so the view lives for ever.
#[derive(Clone, Copy)]
pub struct SharedFrame {
    frame: Frame,
    page: &'static SharedPage,
}

impl SharedFrame {
    /// Its machine frame number (what a grant names).
    pub fn mfn(&self) -> Mfn {
        self.frame.mfn
    }

    /// Its pseudo-physical frame number.
    pub fn pfn(&self) -> Pfn {
        self.frame.pfn
    }

    /// The page, for reads and writes shared with the other side.
    pub fn page(&self) -> &'static SharedPage {
        self.page
    }
}

/// A zeroed frame for sharing.
pub fn alloc_shared() -> Result<SharedFrame, MapError> {
    let frame = alloc_frame()?;
    // SAFETY: a frame just taken from the allocator is mapped writable at
    // its physmap address and used by nothing else; it is never freed
    // (`SharedFrame` does not give the `Frame` out), so the mapping lasts
    // for ever and is reached only through this view.
    let page = unsafe { SharedPage::from_va(frame.va()) };
    page.fill(0, PAGE_SIZE as usize, 0);
    Ok(SharedFrame { frame, page })
}

/// The start-of-day page in machine frame `mfn` (the domU console or store
/// page the builder placed after `start_info`) as a [`SharedPage`].
/// Refused unless the frame is this domain's, lies in the bootstrap region
/// but outside the image, the p2m list and `start_info`, and is mapped
/// writable (so it is not a page table).
pub fn start_of_day_page(
    start: &crate::StartInfo<'static>,
    image_end: u64,
    mfn: Mfn,
) -> Result<&'static SharedPage, MapError> {
    let mut memory = MEMORY.lock();
    let pfn = memory
        .p2m()
        .check_m2p(mfn, mem::m2p(mfn))
        .ok_or(MapError::NotShareable(mfn))?;
    let page_of = |va: u64| (va.max(VIRT_BASE) - VIRT_BASE) / PAGE_SIZE;
    let raw = start.raw();
    let image = 0..page_of(image_end.next_multiple_of(PAGE_SIZE));
    let p2m = page_of(raw.mfn_list)..=page_of(raw.mfn_list + start.nr_pages() * 8 - 1);
    let start_info = page_of(raw as *const abi::xen::StartInfo as u64);
    let bootstrap = start.first_free_pfn(image_end);
    if image.contains(&pfn) || p2m.contains(&pfn) || pfn == start_info || pfn >= bootstrap {
        return Err(MapError::NotShareable(mfn));
    }
    let va = pfn_to_virt(pfn);
    if memory.lookup(va)? & pte::WRITABLE == 0 {
        return Err(MapError::NotShareable(mfn));
    }
    // SAFETY: the frame is ours and mapped writable at `va` in the physmap,
    // which is never unmapped; it is none of the bootstrap structures Rust
    // code reads (image, p2m, start_info), not a page table (writable), and
    // below the first free frame, so the allocator never hands it out.
    Ok(unsafe { SharedPage::from_va(va) })
}

// --- the map window ------------------------------------------------------

struct Window {
    slots: WindowSlots,
    /// The window's L1 table exists.
    ready: bool,
}

static WINDOW: Mutex<Window> = Mutex::new(Window {
    slots: WindowSlots::new(),
    ready: false,
});

/// A page of the map window, reserved for its holder until dropped: the
/// place to map a frame that is not this domain's (a granted page). The
/// holder must remove its mapping before dropping the slot.
pub struct WindowSlot {
    index: usize,
}

impl WindowSlot {
    /// The slot's virtual address.
    pub fn va(&self) -> u64 {
        window::slot_va(self.index)
    }
}

impl Drop for WindowSlot {
    fn drop(&mut self) {
        WINDOW.lock().slots.release(self.index);
    }
}

/// Reserves a free page of the map window, creating the window's L1 table
/// on first use.
pub fn reserve_window_slot() -> Result<WindowSlot, MapError> {
    let mut window = WINDOW.lock();
    if !window.ready {
        let mut memory = MEMORY.lock();
        let l4 = memory.kernel_l4;
        memory.walk(l4, MAP_WINDOW_VA, true)?;
        window.ready = true;
    }
    let index = window.slots.take().ok_or(MapError::WindowFull)?;
    Ok(WindowSlot { index })
}
