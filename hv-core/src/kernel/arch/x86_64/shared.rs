//! Machine frames hv-core reaches by number, through the direct map, and
//! the two ways it may:
//! - a page it shares with a guest (shared_info, a grant-table frame) is an
//!   owned [`SharedPage`]: allocated for the domain, freed only when the
//!   handle is dropped, and read and written only as atomics (the guest
//!   changes it at any time); a reference into it lives no longer than a
//!   borrow of the handle;
//! - a domain's own frame is touched one access at a time
//!   ([`write_domain_frame`], [`read_domain_frame`], [`copy_between_frames`]),
//!   each checked against the frame table with its lock held, so the frame
//!   cannot change hands between the check and the access.
//!
//! Either way the frame is one hv-core never holds an ordinary Rust
//! reference into (its own tables and page tables are never a domain's, nor
//! shared), so these accesses cannot alias hv-core's own data, whatever
//! number a caller passes.

use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};

use hv_core::frame_table::{DomId, FrameInfo, FrameTable, FrameType, Mfn, Owner, PageError};

use super::paging;

const PAGE: usize = 4096;

/// The direct-map address of byte `offset` of frame `mfn`.
#[inline(always)]
fn byte_of(mfn: Mfn, offset: usize) -> *mut u8 {
    (paging::phys_to_virt(mfn << 12) + offset as u64) as *mut u8
}

/// A 4 KiB page hv-core shares with a guest: a frame from the allocator,
/// owned `SharedWith` the domain in the frame table (the domain may map it,
/// never as a page table).
///
/// The handle owns the frame: only [`SharedPage::alloc`] makes one, and the
/// frame goes back to the allocator only when the handle is dropped (no
/// one frees it by number: `memory::free_frame` is used on frames released
/// from a domain's ownership, which this is not). That is the safety
/// argument for every accessor, which is why they return references bounded
/// by `&self`.
#[derive(Debug)]
pub struct SharedPage {
    mfn: Mfn,
}

/// The direct-map address of bytes `field..field + len` of the vcpu_info
/// of the vCPU this CPU holds, or `None` when it holds none: for the
/// held vCPU's paths that need nothing else of its domain, so take no
/// lock. What it points at: the vcpu_info of the vCPU this CPU holds (the
/// scheduler sets the address when it loads the vCPU, the registration
/// when the vCPU moves it, and clears it when it gives the vCPU back), a
/// slot of the domain's shared_info page or a registered frame
/// ([`VcpuInfoFrame`]). Both live until the domain is destroyed, and
/// destroying waits until no CPU holds its vCPUs
/// (`scheduler::take_off_cpus`) before either goes; the direct map covers
/// them, and hv-core reaches them only through atomics.
#[inline(always)]
fn held_vcpu_info_field(field: usize, len: usize) -> Option<*mut u8> {
    let maddr = super::percpu::current().guest_vcpu_info();
    if maddr == 0 {
        return None;
    }
    assert!(field.is_multiple_of(len) && field + len <= VCPU_INFO_BYTES);
    Some(byte_of(maddr >> 12, (maddr & 0xfff) as usize + field))
}

/// The two bytes at `field` and `field + 1` (one aligned 16-bit load: a
/// vCPU's upcall-pending and upcall-mask flags) of the vcpu_info of the
/// vCPU this CPU holds, or `None` when it holds none. For the exit path's
/// look at the upcall flags without the domain's lock.
#[inline(always)]
pub fn held_vcpu_info_pair(field: usize) -> Option<[u8; 2]> {
    let at = held_vcpu_info_field(field, 2)?;
    // SAFETY: the held vCPU's vcpu_info, live while this CPU holds the
    // vCPU and reached only as atomics (`held_vcpu_info_field`); the two
    // bytes are inside the 8-aligned vcpu_info, 2-aligned.
    let pair = unsafe { AtomicU16::from_ptr(at.cast()) };
    Some(
        pair.load(core::sync::atomic::Ordering::SeqCst)
            .to_le_bytes(),
    )
}

/// Stores `value` (sequentially consistent) in the byte at `field` of the
/// vcpu_info of the vCPU this CPU holds; false when it holds none (an
/// iret within guest kernel mode restoring the upcall mask, an upcall
/// raising it).
#[inline(always)]
pub fn store_held_vcpu_info_u8(field: usize, value: u8) -> bool {
    let Some(at) = held_vcpu_info_field(field, 1) else {
        return false;
    };
    // SAFETY: the held vCPU's vcpu_info, live while this CPU holds the
    // vCPU and reached only as atomics (`held_vcpu_info_field`); the
    // byte is inside it, and no reference outlives this store.
    unsafe { AtomicU8::from_ptr(at) }.store(value, core::sync::atomic::Ordering::SeqCst);
    true
}

/// The size of a vcpu_info (Xen's `struct vcpu_info`).
pub const VCPU_INFO_BYTES: usize = size_of::<abi::xen::VcpuInfo>();

/// A vcpu_info a guest placed in a frame of its own
/// (`VCPUOP_register_vcpu_info`): the frame, the offset, and the plain and
/// writable-type references this handle owns. Only [`VcpuInfoFrame::take`]
/// makes one (taking both references under the frame-table lock) and only
/// [`VcpuInfoFrame::into_reference`] ends one (its caller then puts
/// them); it is neither `Clone` nor `Copy`. While it exists the frame
/// stays the domain's plain memory: it cannot be freed, given back or
/// become a page table.
#[derive(Debug)]
pub struct VcpuInfoFrame {
    /// Never 0 (frame 0 is never a domain's): `Option<VcpuInfoFrame>`
    /// is then all zeros when `None`, as a vacant vCPU must be.
    maddr: core::num::NonZeroU64,
}

impl VcpuInfoFrame {
    /// Takes the references on `mfn`, which `dom` must own, for a
    /// vcpu_info at `offset`: 8-aligned and inside the page.
    pub fn take(
        ft: &mut FrameTable<'_>,
        mfn: Mfn,
        offset: usize,
        dom: DomId,
    ) -> Result<Self, PageError> {
        assert!(offset.is_multiple_of(8) && offset + VCPU_INFO_BYTES <= PAGE);
        if !matches!(ft.info(mfn), Some(f) if f.owner == Owner::Domain(dom)) {
            return Err(PageError::NotOwner {
                mfn,
                owner: ft.info(mfn).map_or(Owner::Free, |f| f.owner),
            });
        }
        let maddr =
            core::num::NonZeroU64::new(mfn << 12 | offset as u64).ok_or(PageError::NotOwner {
                mfn,
                owner: Owner::Hypervisor,
            })?;
        ft.get_page(mfn, dom)?;
        if let Err(e) = ft.get_page_type(
            &mut super::pv::MachinePageTables,
            mfn,
            dom,
            FrameType::Writable,
        ) {
            ft.put_page(mfn);
            return Err(e);
        }
        Ok(Self { maddr })
    }

    /// The vcpu_info's machine address.
    pub fn maddr(&self) -> u64 {
        self.maddr.get()
    }

    /// Ends the handle: the caller owns its references on the returned
    /// frame now and must put the writable type and then the page.
    pub fn into_reference(self) -> Mfn {
        self.maddr() >> 12
    }

    fn at(&self, field: usize, align: usize) -> *mut u8 {
        assert!(field.is_multiple_of(align) && field + align <= VCPU_INFO_BYTES);
        let maddr = self.maddr();
        byte_of(maddr >> 12, (maddr & 0xfff) as usize + field)
    }

    #[inline(always)]
    pub fn u8(&self, field: usize) -> &AtomicU8 {
        // SAFETY: while the handle lives its references keep the frame
        // the domain's plain memory (see the type); hv-core reaches it
        // only through atomics and the direct map covers it; the field is
        // inside the vcpu_info, itself inside the page.
        unsafe { AtomicU8::from_ptr(self.at(field, 1)) }
    }

    #[inline(always)]
    pub fn u32(&self, field: usize) -> &AtomicU32 {
        // SAFETY: as for `u8`; the vcpu_info is 8-aligned, the field 4.
        unsafe { AtomicU32::from_ptr(self.at(field, 4).cast()) }
    }

    #[inline(always)]
    pub fn u64(&self, field: usize) -> &AtomicU64 {
        // SAFETY: as for `u8`; the vcpu_info is 8-aligned, the field 8.
        unsafe { AtomicU64::from_ptr(self.at(field, 8).cast()) }
    }
}

/// One vCPU's vcpu_info, wherever it is: its slot in the domain's
/// shared_info page, or the frame it registered.
#[derive(Clone, Copy)]
pub enum VcpuInfo<'a> {
    Slot(&'a SharedPage, usize),
    Frame(&'a VcpuInfoFrame),
}

impl VcpuInfo<'_> {
    #[inline(always)]
    pub fn u8(&self, field: usize) -> &AtomicU8 {
        match self {
            Self::Slot(page, base) => page.u8(base + field),
            Self::Frame(frame) => frame.u8(field),
        }
    }

    #[inline(always)]
    pub fn u32(&self, field: usize) -> &AtomicU32 {
        match self {
            Self::Slot(page, base) => page.u32(base + field),
            Self::Frame(frame) => frame.u32(field),
        }
    }

    #[inline(always)]
    pub fn u64(&self, field: usize) -> &AtomicU64 {
        match self {
            Self::Slot(page, base) => page.u64(base + field),
            Self::Frame(frame) => frame.u64(field),
        }
    }

    /// Its machine address (what the CPU's block keeps for the exit path).
    pub fn maddr(&self) -> u64 {
        match self {
            Self::Slot(page, base) => page.mfn() << 12 | *base as u64,
            Self::Frame(frame) => frame.maddr(),
        }
    }
}

impl SharedPage {
    /// A zeroed page shared with domain `dom`, or `None` when memory is
    /// exhausted.
    pub fn alloc(dom: DomId) -> Option<Self> {
        let mfn = crate::memory::alloc_frame()? >> 12;
        crate::memory::with_frame_table(|ft| ft.assign(mfn, Owner::SharedWith(dom)))
            .expect("a fresh frame has no references");
        Some(Self { mfn })
    }

    /// The page's machine frame number (what the guest maps).
    pub fn mfn(&self) -> Mfn {
        self.mfn
    }

    #[inline(always)]
    pub fn u8(&self, offset: usize) -> &AtomicU8 {
        assert!(offset < PAGE);
        // SAFETY: the frame is this handle's until it is dropped, which
        // cannot happen while `&self` is borrowed; hv-core reaches it only
        // through these atomics, and the direct map covers it. The offset is
        // inside the page, and any bit pattern is a valid atomic.
        unsafe { AtomicU8::from_ptr(byte_of(self.mfn, offset)) }
    }

    #[inline(always)]
    pub fn u32(&self, offset: usize) -> &AtomicU32 {
        assert!(offset <= PAGE - 4 && offset.is_multiple_of(4));
        // SAFETY: as for `u8`; the offset is 4-byte aligned.
        unsafe { AtomicU32::from_ptr(byte_of(self.mfn, offset).cast()) }
    }

    #[inline(always)]
    pub fn u64(&self, offset: usize) -> &AtomicU64 {
        assert!(offset <= PAGE - 8 && offset.is_multiple_of(8));
        // SAFETY: as for `u8`; the offset is 8-byte aligned.
        unsafe { AtomicU64::from_ptr(byte_of(self.mfn, offset).cast()) }
    }
}

impl Drop for SharedPage {
    /// Gives the frame back. The domain must no longer map it: the frame
    /// table refuses to release a referenced frame, and hv-core stops
    /// rather than free one a guest can still reach.
    fn drop(&mut self) {
        crate::memory::with_frame_table(|ft| ft.release(self.mfn))
            .expect("the frame is unreferenced");
        crate::memory::free_frame(self.mfn);
    }
}

/// A frame hv-core refused to touch: not a domain's own memory, or (to be
/// written) one in use as a page table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotDomainMemory(pub Mfn);

/// Whether `[offset, offset + len)` lies inside one page.
fn in_page(offset: usize, len: usize) -> bool {
    offset.checked_add(len).is_some_and(|end| end <= PAGE)
}

/// A frame a domain owns: guest memory, which hv-core only ever reaches
/// with raw accesses like the ones below.
fn readable(frame: Option<&FrameInfo>) -> bool {
    frame.is_some_and(|f| matches!(f.owner, Owner::Domain(_)))
}

/// A domain's frame that is not a page table (nor on its way to or from
/// being one): writing it cannot bypass validation.
fn writable(frame: Option<&FrameInfo>) -> bool {
    readable(frame) && frame.is_some_and(FrameInfo::may_be_written)
}

/// Copies `bytes` into a domain's frame `mfn` at `offset` (the dom0 builder
/// filling frames before dom0 runs). The range must lie inside the page.
pub fn write_domain_frame(mfn: Mfn, offset: usize, bytes: &[u8]) -> Result<(), NotDomainMemory> {
    assert!(in_page(offset, bytes.len()), "write beyond a page");
    crate::memory::with_frame_table(|ft| {
        if !writable(ft.info(mfn)) {
            return Err(NotDomainMemory(mfn));
        }
        // SAFETY: the frame table says (and, locked, keeps saying until
        // this returns) that the frame is a domain's plain memory: RAM the
        // direct map covers that no Rust reference points into. The range
        // is inside it; one CPU, so the guest does not run meanwhile.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), byte_of(mfn, offset), bytes.len())
        };
        Ok(())
    })
}

/// Copies bytes from a domain's frame `mfn` at `offset` into `buf`. The
/// range must lie inside the page.
pub fn read_domain_frame(mfn: Mfn, offset: usize, buf: &mut [u8]) -> Result<(), NotDomainMemory> {
    assert!(in_page(offset, buf.len()), "read beyond a page");
    crate::memory::with_frame_table(|ft| {
        if !readable(ft.info(mfn)) {
            return Err(NotDomainMemory(mfn));
        }
        // SAFETY: as in `write_domain_frame`; `buf` is ours and cannot
        // overlap guest memory.
        unsafe {
            core::ptr::copy_nonoverlapping(byte_of(mfn, offset), buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    })
}

/// Copies `len` bytes between two domains' machine frames (a grant copy):
/// `src` a frame `src_owner` owns, `dst` one `dst_owner` owns that is not
/// a page table, both checked and copied in one frame-table critical
/// section. Both ranges must lie inside their pages; overlap (the same
/// frame) is allowed. Whether the caller may use these frames (a grant,
/// dom0's privilege) is the caller's check.
pub fn copy_between_frames(
    (src, src_owner, src_offset): (Mfn, DomId, usize),
    (dst, dst_owner, dst_offset): (Mfn, DomId, usize),
    len: usize,
) -> Result<(), NotDomainMemory> {
    assert!(
        in_page(src_offset, len) && in_page(dst_offset, len),
        "copy beyond a page"
    );
    let owned_by = |frame: Option<&FrameInfo>, dom: DomId| {
        frame.is_some_and(|f| f.owner == Owner::Domain(dom))
    };
    crate::memory::with_frame_table(|ft| {
        if !owned_by(ft.info(src), src_owner) {
            return Err(NotDomainMemory(src));
        }
        let dst_info = ft.info(dst);
        if !owned_by(dst_info, dst_owner) || !writable(dst_info) {
            return Err(NotDomainMemory(dst));
        }
        // SAFETY: as in `write_domain_frame`, for both frames; `copy`
        // allows the two ranges to overlap.
        unsafe { core::ptr::copy(byte_of(src, src_offset), byte_of(dst, dst_offset), len) };
        Ok(())
    })
}
