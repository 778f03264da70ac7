//! Machine memory: the global frame allocator, the frame table and the
//! machine-to-phys (M2P) table.
//!
//! Built once at boot from the multiboot2 memory map minus everything that
//! is taken (the first MiB, hv-core's image, the boot information, every
//! module). The allocator's bitmap, the frame table and the M2P are carved
//! from usable memory below 4 GiB, contiguous, so the boot page tables reach
//! them and each is reached by index through the direct map. The M2P is
//! also mapped read-only for guests at `layout::M2P_BASE`.

use hv_core::flush_clock::FlushClock;
use hv_core::frame_alloc::{FRAME_SIZE, FrameAllocator, UsableRanges};
use hv_core::frame_table::{FrameInfo, FrameTable, Mfn, NotPresentRule};

use crate::arch::paging;
use crate::arch::sync::IrqMutex;

static ALLOCATOR: IrqMutex<Option<FrameAllocator<'static>>> = IrqMutex::new(None);
static FRAMES: IrqMutex<Option<FrameTable<'static>>> = IrqMutex::new(None);
static M2P: IrqMutex<Option<&'static mut [u64]>> = IrqMutex::new(None);

/// An M2P entry for a frame no domain owns (Xen's `INVALID_M2P_ENTRY`).
pub const INVALID_M2P_ENTRY: u64 = u64::MAX;

/// Frames [`init`] took out of usable memory for one of hv-core's own
/// tables (the allocator's bitmap, the frame table, the M2P), which
/// `arch::boot_table` turns into that table.
///
/// Only `init` makes one, each from its own `UsableRanges::take` before the
/// allocator is built over what is left, and only once (a second `init` is
/// refused): so nobody else ever gets these frames. That is the whole of
/// `arch::boot_table`'s safety argument, and why this has no public
/// constructor.
pub struct CarvedFrames {
    phys: u64,
    bytes: u64,
}

impl CarvedFrames {
    pub fn phys(&self) -> u64 {
        self.phys
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// `bytes` (rounded up to frames) of usable memory below 4 GiB, for good.
fn carve(
    usable: &mut UsableRanges,
    bytes: u64,
    what: &'static str,
) -> Result<CarvedFrames, &'static str> {
    let bytes = bytes.next_multiple_of(FRAME_SIZE);
    let phys = usable.take(bytes, 1 << 32).ok_or(what)?;
    Ok(CarvedFrames { phys, bytes })
}

/// Sets up the allocator, the frame table and the M2P for machine frames
/// `0..max_mfn`. `usable` is the boot loader's free RAM minus everything in
/// use (`boot::init_memory`): every frame hv-core ever owns comes out of it,
/// here or later through the allocator.
pub fn init(mut usable: UsableRanges, max_mfn: u64) -> Result<(), &'static str> {
    if ALLOCATOR.with(|a| a.is_some()) {
        return Err("memory::init ran twice");
    }
    let words = FrameAllocator::bitmap_words(&usable);
    let at = carve(
        &mut usable,
        (words * 8) as u64,
        "no room below 4 GiB for the frame bitmap",
    )?;
    let bitmap = crate::arch::boot_table(at, words, 0u64);

    let frames = max_mfn as usize;
    let table_bytes = (frames * core::mem::size_of::<FrameInfo>()) as u64;
    let at = carve(
        &mut usable,
        table_bytes,
        "no room below 4 GiB for the frame table",
    )?;
    let storage = crate::arch::boot_table(at, frames, FrameInfo::FREE);

    let at = carve(
        &mut usable,
        frames as u64 * 8,
        "no room below 4 GiB for the M2P table",
    )?;
    let m2p = crate::arch::boot_table(at, frames, INVALID_M2P_ENTRY);

    ALLOCATOR.with(|a| *a = Some(FrameAllocator::new(bitmap, &usable)));
    let mut table = FrameTable::new(storage);
    table.set_not_present_rule(NotPresentRule::for_address_bits(physical_address_bits()));
    FRAMES.with(|t| *t = Some(table));
    MAX_MFN.store(m2p.len() as u64, core::sync::atomic::Ordering::Relaxed);
    M2P.with(|m| *m = Some(m2p));
    Ok(())
}

/// Where the M2P lives: physical start and length in bytes (whole frames).
pub fn m2p_range() -> (u64, u64) {
    M2P.with(|m| {
        let m = m.as_ref().expect("memory::init ran");
        let bytes = (m.len() as u64 * 8).next_multiple_of(FRAME_SIZE);
        (paging::virt_to_phys(m.as_ptr() as u64), bytes)
    })
}

/// Frames freed, against the last completed flush: after a free some vCPU
/// may still hold a translation to the frame (a guest may unmap a page
/// without flushing, as on Xen, and give the frame back at once).
static FREES: FlushClock = FlushClock::new();

/// A frame the allocator has just handed out, on its way to its first
/// owner: nothing refers to it yet. Only [`alloc_frame`] makes one (it has
/// no public constructor), which is what lets `arch::zero_frame` write it.
pub struct FreshFrame {
    phys: u64,
}

impl FreshFrame {
    pub fn phys(&self) -> u64 {
        self.phys
    }
}

/// A zeroed frame, or `None` when memory is exhausted.
///
/// A frame changes hands only here (every new owner gets it from the
/// allocator), so this is where a stale translation to a freed frame is
/// flushed: before the frame is zeroed and given to anyone, as Xen's TLB
/// flush clock does on allocation. One flush covers every frame freed
/// before it; a burst of frees (a teardown) costs one flush, not one each.
/// On several CPUs every CPU's TLB is flushed (a shootdown that waits for
/// each), outside the allocator's lock; callers may hold other locks,
/// since a CPU waiting for a lock still answers (`sync::IrqMutex`).
pub fn alloc_frame() -> Option<u64> {
    let phys = ALLOCATOR.with(|a| a.as_mut()?.alloc())?;
    // Counted before the frame went back to the allocator, so this sees
    // its free; a flush still in flight on another CPU does not count.
    FREES.flush_if_owed(|| {
        crate::arch::pv::flush_tlb_local();
        crate::arch::percpu::flush_other_cpus();
    });
    let frame = FreshFrame { phys };
    crate::arch::zero_frame(&frame);
    Some(frame.phys)
}

/// Returns machine frame `mfn` (already released in the frame table) to
/// the allocator; its M2P entry becomes invalid. A translation the last
/// owner may still cache is flushed before the frame is handed out again
/// (see [`alloc_frame`]).
///
/// By number, so it is used only on frames the frame table has just
/// released from a domain's ownership (`Owner::Domain`): a frame hv-core
/// holds a handle to (`arch::shared::SharedPage`) is freed by dropping the
/// handle, never here.
pub fn free_frame(mfn: Mfn) {
    FREES.mark();
    set_m2p(mfn, INVALID_M2P_ENTRY);
    ALLOCATOR.with(|a| {
        if let Some(a) = a.as_mut()
            && let Err(e) = a.free(mfn << 12)
        {
            log::error!("freeing frame {mfn:#x}: {e}");
        }
    });
}

/// The CPU's physical address width (CPUID 0x80000008), which decides
/// which not-present entries are L1TF-safe; 36 bits if it does not say.
fn physical_address_bits() -> u32 {
    raw_cpuid::CpuId::new()
        .get_processor_capacity_feature_info()
        .map_or(36, |info| u32::from(info.physical_address_bits()))
}

/// Frames the allocator manages (free or not).
pub fn total_frames() -> u64 {
    ALLOCATOR.with(|a| a.as_ref().map_or(0, |a| a.managed_frames()))
}

pub fn free_frames() -> u64 {
    ALLOCATOR.with(|a| a.as_ref().map_or(0, |a| a.free_frames()))
}

pub const fn frames_to_mib(frames: u64) -> u64 {
    (frames * FRAME_SIZE) >> 20
}

/// Runs `f` with the frame table locked.
pub fn with_frame_table<R>(f: impl FnOnce(&mut FrameTable<'static>) -> R) -> R {
    FRAMES.with(|t| f(t.as_mut().expect("frame table not initialised")))
}

/// Records that machine frame `mfn` backs pseudo-physical frame `pfn`.
pub fn set_m2p(mfn: Mfn, pfn: u64) -> bool {
    M2P.with(|m| {
        let Some(entry) = m.as_mut().and_then(|m| m.get_mut(mfn as usize)) else {
            return false;
        };
        *entry = pfn;
        true
    })
}

/// The M2P's length, set once by [`init`]: every page-table entry access
/// asks for it, so it is read without the M2P's lock.
static MAX_MFN: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The highest machine frame number plus one (0 before [`init`]).
pub fn max_mfn() -> u64 {
    MAX_MFN.load(core::sync::atomic::Ordering::Relaxed)
}
