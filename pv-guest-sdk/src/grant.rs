//! Grant tables, version 1: sharing this domain's pages with others, and
//! mapping or copying the pages others share with it.
//!
//! **Granting.** A domain owns a table of `grant_entry_v1 {flags, domid,
//! frame}` that the hypervisor reads: entry `ref` says "domain `domid` may
//! access machine frame `frame`". [`GrantTable::init`] sizes the table
//! (`GNTTABOP_setup_table`) and maps its frames at
//! [`crate::layout::GRANT_TABLE_VA`]. [`GrantTable::grant_access`] fills a
//! free entry as Linux does: `domid` and `frame` first, a write barrier,
//! then `flags = GTF_permit_access [| GTF_readonly]`, so the hypervisor
//! never sees a valid flag word over a stale frame.
//!
//! Refs are handed out **from 8 upward, lowest free first**: 0-7 are Xen's
//! reserved refs (`GNTTAB_NR_RESERVED_ENTRIES`, used by the toolstack for
//! the console and store pages), so the first grant a fresh table makes is
//! ref 8, the next ref 9, and a ref given back is the next one reused.
//! Protocols may rely on this order (the `pingpong` example guest does).
//!
//! **Revoking.** While another domain has a grant mapped, the hypervisor
//! keeps `GTF_reading` (and `GTF_writing` for a writable mapping) set in
//! the entry. [`GrantTable::end_access`] clears the entry with one
//! compare-exchange of the flag word from a value without those bits to 0
//! (as Linux's `gnttab_end_foreign_access_ref`), so it either revokes the
//! grant before any new mapping can start, or refuses with
//! [`GrantError::InUse`] and leaves the grant as it was.
//!
//! **Mapping and copying.** [`map`] asks the hypervisor to map another
//! domain's grant at a free page of the map window (whose L1 table exists,
//! as `GNTMAP_host_map` requires) and returns a [`Mapping`] guard;
//! [`copy`] runs a batch of `GNTTABOP_copy` operations between grants and
//! this domain's shared frames. Per-operation results (`GNTST_*`) come
//! back as [`GrantStatus`] names.

use alloc::vec;
use alloc::vec::Vec;
use core::mem::offset_of;
use core::sync::atomic::{Ordering, compiler_fence};

use abi::grant_table::{
    GNTST_ADDRESS_TOO_BIG, GNTST_BAD_COPY_ARG, GNTST_BAD_DEV_ADDR, GNTST_BAD_DOMAIN,
    GNTST_BAD_GNTREF, GNTST_BAD_HANDLE, GNTST_BAD_PAGE, GNTST_BAD_VIRT_ADDR, GNTST_EAGAIN,
    GNTST_GENERAL_ERROR, GNTST_NO_DEVICE_SPACE, GNTST_NO_SPACE, GNTST_OKAY,
    GNTST_PERMISSION_DENIED, GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_WRITING,
    GrantEntryV1, GrantRef,
};
use abi::xen::DomId;

use crate::mm::MapError;
use crate::mm::p2m::Mfn;
use crate::shmem::{PAGE_BYTES, SharedPage};

/// Refs below this are reserved (Xen's `GNTTAB_NR_RESERVED_ENTRIES`).
pub const FIRST_FREE_REF: GrantRef = 8;
/// Grant entries per table frame (8 bytes each).
pub const ENTRIES_PER_FRAME: u32 = (PAGE_BYTES / size_of::<GrantEntryV1>()) as u32;

/// A grant operation's own result (`GNTST_*`), by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantStatus {
    /// `GNTST_general_error`: the operation failed for an unnamed reason.
    GeneralError,
    /// `GNTST_bad_domain`: no such domain.
    BadDomain,
    /// `GNTST_bad_gntref`: the grant ref is out of range or not granted to this domain.
    BadGntref,
    /// `GNTST_bad_handle`: no mapping with this grant handle.
    BadHandle,
    /// `GNTST_bad_virt_addr`: the virtual address cannot take the mapping.
    BadVirtAddr,
    /// `GNTST_bad_dev_addr`: bad device address.
    BadDevAddr,
    /// `GNTST_no_device_space`: no room left to map it for a device.
    NoDeviceSpace,
    /// `GNTST_permission_denied`: the grant does not allow this (e.g. writing a read-only grant).
    PermissionDenied,
    /// `GNTST_bad_page`: the frame is not valid for the operation.
    BadPage,
    /// `GNTST_bad_copy_arg`: a grant copy's offset or length crosses the page.
    BadCopyArg,
    /// `GNTST_address_too_big`: the address is beyond what the hypervisor supports.
    AddressTooBig,
    /// `GNTST_eagain`: the operation could not complete now; try again.
    Eagain,
    /// `GNTST_no_space`: out of space (e.g. the maptrack table is full).
    NoSpace,
    /// A `GNTST_*` value the ABI does not name.
    Unknown(i16),
}

impl GrantStatus {
    /// `Ok` for `GNTST_okay`, the named failure otherwise.
    pub fn check(status: i16) -> Result<(), GrantStatus> {
        Err(match status {
            GNTST_OKAY => return Ok(()),
            GNTST_GENERAL_ERROR => GrantStatus::GeneralError,
            GNTST_BAD_DOMAIN => GrantStatus::BadDomain,
            GNTST_BAD_GNTREF => GrantStatus::BadGntref,
            GNTST_BAD_HANDLE => GrantStatus::BadHandle,
            GNTST_BAD_VIRT_ADDR => GrantStatus::BadVirtAddr,
            GNTST_BAD_DEV_ADDR => GrantStatus::BadDevAddr,
            GNTST_NO_DEVICE_SPACE => GrantStatus::NoDeviceSpace,
            GNTST_PERMISSION_DENIED => GrantStatus::PermissionDenied,
            GNTST_BAD_PAGE => GrantStatus::BadPage,
            GNTST_BAD_COPY_ARG => GrantStatus::BadCopyArg,
            GNTST_ADDRESS_TOO_BIG => GrantStatus::AddressTooBig,
            GNTST_EAGAIN => GrantStatus::Eagain,
            GNTST_NO_SPACE => GrantStatus::NoSpace,
            other => GrantStatus::Unknown(other),
        })
    }
}

impl core::fmt::Display for GrantStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match self {
            GrantStatus::GeneralError => "general error",
            GrantStatus::BadDomain => "bad domain",
            GrantStatus::BadGntref => "bad grant reference",
            GrantStatus::BadHandle => "bad handle",
            GrantStatus::BadVirtAddr => "bad virtual address",
            GrantStatus::BadDevAddr => "bad device address",
            GrantStatus::NoDeviceSpace => "no device space",
            GrantStatus::PermissionDenied => "permission denied",
            GrantStatus::BadPage => "bad page",
            GrantStatus::BadCopyArg => "bad copy argument",
            GrantStatus::AddressTooBig => "address too big",
            GrantStatus::Eagain => "try again",
            GrantStatus::NoSpace => "no space",
            GrantStatus::Unknown(raw) => return write!(f, "GNTST {raw}"),
        };
        f.write_str(name)
    }
}

/// Why a grant operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// The hypercall as a whole failed (bad argument pointer, unknown op).
    Hypercall(crate::Error),
    /// The hypervisor refused this operation.
    Status(GrantStatus),
    /// `end_access` refused: the grantee still has the page mapped.
    InUse(GrantRef),
    /// The ref is reserved, out of the table, or not granted by this table.
    BadRef(GrantRef),
    /// Every ref of the table is in use.
    TableFull,
    /// A v1 entry holds a 32-bit frame number.
    FrameTooLarge(Mfn),
    /// The grant table is set up once per domain.
    AlreadyInitialised,
    /// Mapping the table or a granted page failed.
    Map(MapError),
}

impl core::fmt::Display for GrantError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GrantError::Hypercall(e) => write!(f, "grant_table_op failed: {e}"),
            GrantError::Status(s) => write!(f, "{s}"),
            GrantError::InUse(r) => write!(f, "grant {r} is mapped by its grantee"),
            GrantError::BadRef(r) => write!(f, "grant {r} is not an active grant of ours"),
            GrantError::TableFull => write!(f, "grant table full"),
            GrantError::FrameTooLarge(mfn) => write!(f, "frame {mfn:#x} does not fit a v1 grant"),
            GrantError::AlreadyInitialised => write!(f, "grant table already set up"),
            GrantError::Map(e) => write!(f, "{e}"),
        }
    }
}

impl From<crate::Error> for GrantError {
    fn from(e: crate::Error) -> Self {
        GrantError::Hypercall(e)
    }
}

impl From<GrantStatus> for GrantError {
    fn from(s: GrantStatus) -> Self {
        GrantError::Status(s)
    }
}

impl From<MapError> for GrantError {
    fn from(e: MapError) -> Self {
        GrantError::Map(e)
    }
}

/// Which refs of a table are handed out: one bit each, the reserved refs
/// never free, the lowest free ref first.
pub struct RefAllocator {
    used: Vec<u64>,
    capacity: u32,
}

impl RefAllocator {
    /// Refs `0..capacity`, of which `FIRST_FREE_REF..capacity` are free.
    pub fn new(capacity: u32) -> Self {
        let mut used = vec![0u64; (capacity as usize).div_ceil(64)];
        for r in 0..FIRST_FREE_REF.min(capacity) {
            used[r as usize / 64] |= 1 << (r % 64);
        }
        Self { used, capacity }
    }

    /// How many refs the table has (reserved ones included).
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The lowest free ref, now taken.
    pub fn alloc(&mut self) -> Option<GrantRef> {
        for (w, word) in self.used.iter_mut().enumerate() {
            if *word != u64::MAX {
                let bit = (!*word).trailing_zeros();
                let r = w as u32 * 64 + bit;
                if r >= self.capacity {
                    return None;
                }
                *word |= 1 << bit;
                return Some(r);
            }
        }
        None
    }

    /// Whether `r` is handed out (reserved refs never are).
    pub fn is_allocated(&self, r: GrantRef) -> bool {
        r >= FIRST_FREE_REF && r < self.capacity && self.used[r as usize / 64] & 1 << (r % 64) != 0
    }

    /// Gives `r` back; `false` if it was not handed out.
    pub fn free(&mut self, r: GrantRef) -> bool {
        if !self.is_allocated(r) {
            return false;
        }
        self.used[r as usize / 64] &= !(1 << (r % 64));
        true
    }
}

/// The grant entries in the table's frames, written as the hypervisor
/// expects: the flag word last when granting, by compare-exchange when
/// revoking.
pub struct GrantEntries<'a> {
    pages: &'a [SharedPage],
}

impl<'a> GrantEntries<'a> {
    /// The entries in `pages`, the grant table's frames as mapped.
    pub fn new(pages: &'a [SharedPage]) -> Self {
        Self { pages }
    }

    /// How many entries the frames hold.
    pub fn len(&self) -> u32 {
        self.pages.len() as u32 * ENTRIES_PER_FRAME
    }

    /// Whether there are no frames (and so no entries).
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    fn locate(&self, r: GrantRef) -> (&'a SharedPage, usize) {
        let page = &self.pages[(r / ENTRIES_PER_FRAME) as usize];
        let offset = (r % ENTRIES_PER_FRAME) as usize * size_of::<GrantEntryV1>();
        (page, offset)
    }

    /// A copy of entry `r` (which must be in the table).
    pub fn read(&self, r: GrantRef) -> GrantEntryV1 {
        let (page, offset) = self.locate(r);
        page.read(offset)
    }

    /// Lets `domid` access `frame` through entry `r`.
    pub fn grant(&self, r: GrantRef, domid: DomId, frame: u32, readonly: bool) {
        let (page, offset) = self.locate(r);
        page.u16(offset + offset_of!(GrantEntryV1, domid))
            .store(domid, Ordering::Relaxed);
        page.u32(offset + offset_of!(GrantEntryV1, frame))
            .store(frame, Ordering::Relaxed);
        // wmb: the hypervisor must see domid and frame before the flags
        // that make the entry valid.
        compiler_fence(Ordering::Release);
        let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        page.u16(offset + offset_of!(GrantEntryV1, flags))
            .store(flags, Ordering::Release);
    }

    /// Revokes entry `r` unless its grantee has it mapped: one
    /// compare-exchange of the flag word from a value without
    /// `GTF_reading`/`GTF_writing` to 0, retried only if the word changed
    /// under us. On refusal the entry is untouched.
    pub fn end_access(&self, r: GrantRef) -> Result<(), GrantError> {
        let (page, offset) = self.locate(r);
        let word = page.u16(offset + offset_of!(GrantEntryV1, flags));
        let mut flags = word.load(Ordering::SeqCst);
        loop {
            if flags & (GTF_READING | GTF_WRITING) != 0 {
                return Err(GrantError::InUse(r));
            }
            match word.compare_exchange(flags, 0, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Ok(()),
                Err(now) => flags = now,
            }
        }
    }
}

/// A grant table: its entries and which refs are in use.
pub struct GrantTable<'a> {
    entries: GrantEntries<'a>,
    refs: RefAllocator,
}

impl<'a> GrantTable<'a> {
    /// A table over frames already mapped at `pages` (the target's
    /// [`GrantTable::init`] does the mapping; host tests use plain pages).
    pub fn over(pages: &'a [SharedPage]) -> Self {
        let entries = GrantEntries::new(pages);
        let refs = RefAllocator::new(entries.len());
        Self { entries, refs }
    }

    /// Refs in the table (including the 8 reserved ones).
    pub fn capacity(&self) -> u32 {
        self.refs.capacity()
    }

    /// Lets domain `domid` access machine frame `frame` (read-only if
    /// `readonly`); returns the ref to hand to it. Refs come from 8 upward,
    /// lowest free first.
    pub fn grant_access(
        &mut self,
        domid: DomId,
        frame: Mfn,
        readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        let frame32 = u32::try_from(frame).map_err(|_| GrantError::FrameTooLarge(frame))?;
        let r = self.refs.alloc().ok_or(GrantError::TableFull)?;
        self.entries.grant(r, domid, frame32, readonly);
        Ok(r)
    }

    /// Revokes grant `r` and frees the ref, or refuses with
    /// [`GrantError::InUse`] (keeping the grant) while the grantee has it
    /// mapped.
    pub fn end_access(&mut self, r: GrantRef) -> Result<(), GrantError> {
        if !self.refs.is_allocated(r) {
            return Err(GrantError::BadRef(r));
        }
        self.entries.end_access(r)?;
        self.refs.free(r);
        Ok(())
    }

    /// A copy of the entry behind ref `r`, if it is in the table.
    pub fn entry(&self, r: GrantRef) -> Option<GrantEntryV1> {
        (r < self.entries.len()).then(|| self.entries.read(r))
    }
}

#[cfg(target_os = "none")]
pub use self::target::*;

/// Everything that talks to the hypervisor, and the one place this module
/// turns addresses into [`SharedPage`]s (the grant table's frames once
/// mapped, and a window page while a grant is mapped there).
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
mod target {
    use alloc::vec;
    use core::marker::PhantomData;
    use core::sync::atomic::{AtomicBool, Ordering};

    use abi::grant_table::{
        Copy as RawCopy, CopyPtr, GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GNTMAP_HOST_MAP,
        GNTMAP_READONLY, GrantHandle, GrantRef, MapGrantRef, UnmapGrantRef,
    };
    use abi::xen::{DOMID_SELF, DomId};

    use super::{GrantError, GrantStatus, GrantTable};
    use crate::hypercall;
    use crate::layout::{GRANT_TABLE_MAX_FRAMES, GRANT_TABLE_VA, PAGE_SIZE};
    use crate::mm::{self, WindowSlot, pte};
    use crate::shmem::SharedPage;

    static INITIALISED: AtomicBool = AtomicBool::new(false);

    impl GrantTable<'static> {
        /// Sets up this domain's grant table with as many frames as the
        /// hypervisor allows (`GNTTABOP_query_size`, at most
        /// [`GRANT_TABLE_MAX_FRAMES`]).
        pub fn init() -> Result<Self, GrantError> {
            let size = hypercall::gnttab_query_size()?;
            GrantStatus::check(size.status)?;
            let frames = (size.max_nr_frames as usize).clamp(1, GRANT_TABLE_MAX_FRAMES);
            Self::init_with(frames as u32)
        }

        /// Sets up this domain's grant table with `nr_frames` frames
        /// (`GNTTABOP_setup_table`) and maps them writable at
        /// [`GRANT_TABLE_VA`]. Once per domain.
        pub fn init_with(nr_frames: u32) -> Result<Self, GrantError> {
            let count = (nr_frames as usize).clamp(1, GRANT_TABLE_MAX_FRAMES);
            if INITIALISED.swap(true, Ordering::SeqCst) {
                return Err(GrantError::AlreadyInitialised);
            }
            let mut mfns = vec![0u64; count];
            let op = hypercall::gnttab_setup_table(&mut mfns)?;
            GrantStatus::check(op.status)?;
            mm::map_range(GRANT_TABLE_VA, &mfns, pte::KERNEL_RW)?;
            // SAFETY: the table's frames were just mapped writable at
            // GRANT_TABLE_VA, a range only this code maps (once, guarded by
            // INITIALISED) and never unmaps; the hypervisor writes them
            // concurrently, which `SharedPage` allows.
            let pages = unsafe { SharedPage::slice_from_va(GRANT_TABLE_VA, count) };
            Ok(GrantTable::over(pages))
        }
    }

    /// Another domain's granted page, mapped in this domain's map window
    /// until [`unmap`] (or drop, which unmaps and ignores a failure).
    pub struct Mapping {
        slot: Option<WindowSlot>,
        handle: GrantHandle,
        dom: DomId,
        gref: GrantRef,
        readonly: bool,
    }

    impl Mapping {
        /// The mapped page. Through a read-only mapping only reads are
        /// allowed: a write faults like any write to a read-only page.
        pub fn page(&self) -> &SharedPage {
            let va = self.va();
            // SAFETY: the grant stays mapped at the slot (reserved for this
            // mapping alone) until `self` unmaps it, and the returned
            // reference cannot outlive `self`. The granter may write the
            // page concurrently, which `SharedPage` allows.
            unsafe { SharedPage::from_va(va) }
        }

        /// Where the granted page is mapped in this domain.
        pub fn va(&self) -> u64 {
            self.slot.as_ref().map_or(0, WindowSlot::va)
        }

        /// The hypervisor's handle for the mapping.
        pub fn handle(&self) -> GrantHandle {
            self.handle
        }

        /// The domain that granted the page.
        pub fn domain(&self) -> DomId {
            self.dom
        }

        /// The grant ref the mapping came from.
        pub fn gref(&self) -> GrantRef {
            self.gref
        }

        /// Whether the mapping is read-only (`GNTMAP_readonly`).
        pub fn is_readonly(&self) -> bool {
            self.readonly
        }

        fn unmap_now(&mut self) -> Result<(), GrantError> {
            let Some(slot) = self.slot.take() else {
                return Ok(());
            };
            let mut op = UnmapGrantRef {
                host_addr: slot.va(),
                handle: self.handle,
                ..Default::default()
            };
            // SAFETY: `self` is consumed or being dropped, so no reference
            // from `page()` is alive.
            let result = unsafe { hypercall::gnttab_unmap(core::slice::from_mut(&mut op)) }
                .map_err(GrantError::from)
                .and_then(|()| GrantStatus::check(op.status).map_err(GrantError::from));
            if result.is_err() {
                // Still mapped: keep the slot out of use for good.
                core::mem::forget(slot);
            }
            result
        }
    }

    impl Drop for Mapping {
        fn drop(&mut self) {
            let _ = self.unmap_now();
        }
    }

    /// Maps grant `gref` of domain `dom` (`GNTMAP_host_map`, plus
    /// `GNTMAP_readonly` if `readonly`) at a free page of the map window.
    pub fn map(dom: DomId, gref: GrantRef, readonly: bool) -> Result<Mapping, GrantError> {
        let slot = mm::reserve_window_slot()?;
        let mut op = MapGrantRef {
            host_addr: slot.va(),
            flags: GNTMAP_HOST_MAP | if readonly { GNTMAP_READONLY } else { 0 },
            ref_: gref,
            dom,
            ..Default::default()
        };
        // SAFETY: the slot is a reserved, unmapped window page whose L1
        // exists; no Rust object lives there.
        unsafe { hypercall::gnttab_map(core::slice::from_mut(&mut op))? };
        GrantStatus::check(op.status)?;
        Ok(Mapping {
            slot: Some(slot),
            handle: op.handle,
            dom,
            gref,
            readonly,
        })
    }

    /// Unmaps `mapping` (`GNTTABOP_unmap_grant_ref`); after this the
    /// granter may revoke the grant.
    pub fn unmap(mut mapping: Mapping) -> Result<(), GrantError> {
        mapping.unmap_now()
    }

    /// One side of a grant copy.
    #[derive(Clone, Copy)]
    pub enum CopySide<'a> {
        /// Grant `gref` of domain `dom`, from byte `offset`.
        Grant {
            /// The granting domain.
            dom: DomId,
            /// Its grant ref.
            gref: GrantRef,
            /// The byte within the granted page.
            offset: u16,
        },
        /// A page of this domain's own, from byte `offset`. Only memory
        /// reached as a [`SharedPage`] may be a destination, so the
        /// hypervisor never writes under a Rust object.
        Local {
            /// The page.
            page: &'a SharedPage,
            /// The byte within it.
            offset: u16,
        },
    }

    /// One `GNTTABOP_copy` operation, laid out as the hypervisor reads it.
    #[repr(transparent)]
    pub struct CopyOp<'a> {
        raw: RawCopy,
        _pages: PhantomData<&'a SharedPage>,
    }

    impl<'a> CopyOp<'a> {
        /// Copies `len` bytes from `source` to `dest`. A local page must be
        /// one of this domain's frames mapped in its address space.
        pub fn new(source: CopySide<'a>, dest: CopySide<'a>, len: u16) -> Result<Self, GrantError> {
            let (source, source_gref) = side(source)?;
            let (dest, dest_gref) = side(dest)?;
            let flags = if source_gref { GNTCOPY_SOURCE_GREF } else { 0 }
                | if dest_gref { GNTCOPY_DEST_GREF } else { 0 };
            Ok(Self {
                raw: RawCopy {
                    source,
                    dest,
                    len,
                    flags,
                    ..Default::default()
                },
                _pages: PhantomData,
            })
        }

        /// This operation's result once [`copy`] has run it.
        pub fn result(&self) -> Result<(), GrantStatus> {
            GrantStatus::check(self.raw.status)
        }
    }

    fn side(side: CopySide<'_>) -> Result<(CopyPtr, bool), GrantError> {
        Ok(match side {
            CopySide::Grant { dom, gref, offset } => (
                CopyPtr {
                    u: gref as u64,
                    domid: dom,
                    offset,
                    _pad: 0,
                },
                true,
            ),
            CopySide::Local { page, offset } => {
                let maddr = mm::translate(page.va())
                    .ok_or(GrantError::Map(mm::MapError::NotMapped(page.va())))?;
                (
                    CopyPtr {
                        u: maddr / PAGE_SIZE,
                        domid: DOMID_SELF,
                        offset,
                        _pad: 0,
                    },
                    false,
                )
            }
        })
    }

    /// Runs a batch of grant copies in one hypercall. `Ok` when every
    /// operation succeeded; otherwise the first failure (each op's own
    /// result stays readable through [`CopyOp::result`]).
    pub fn copy(ops: &mut [CopyOp<'_>]) -> Result<(), GrantError> {
        // SAFETY: `CopyOp` is a transparent wrapper of the ABI struct, and
        // every local destination is a `SharedPage`, which holds no Rust
        // object (see `CopySide::Local`).
        unsafe {
            hypercall::gnttab_copy(core::slice::from_raw_parts_mut(
                ops.as_mut_ptr().cast::<RawCopy>(),
                ops.len(),
            ))?
        };
        for op in ops.iter() {
            op.result()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;

    use super::*;

    /// The boxed pages as one contiguous slice, as the target maps them.
    fn contiguous(n: usize) -> &'static [SharedPage] {
        let v: Vec<SharedPage> = (0..n).map(|_| SharedPage::zeroed()).collect();
        Box::leak(v.into_boxed_slice())
    }

    #[test]
    fn refs_start_at_8_and_the_lowest_free_comes_first() {
        let mut refs = RefAllocator::new(2 * ENTRIES_PER_FRAME);
        assert_eq!(refs.alloc(), Some(8));
        assert_eq!(refs.alloc(), Some(9));
        assert_eq!(refs.alloc(), Some(10));
        assert!(refs.free(9));
        assert_eq!(refs.alloc(), Some(9), "a freed ref is reused first");
        assert!(!refs.free(3), "reserved refs are never handed out");
        assert!(!refs.free(600), "nor refs never allocated");
        assert!(!refs.free(5000), "nor refs outside the table");
        // Fill to the end: the last ref is capacity - 1, then none.
        let mut last = 0;
        while let Some(r) = refs.alloc() {
            last = r;
        }
        assert_eq!(last, 2 * ENTRIES_PER_FRAME - 1);
        assert_eq!(refs.alloc(), None);
    }

    #[test]
    fn a_tiny_table_has_only_reserved_refs() {
        let mut refs = RefAllocator::new(8);
        assert_eq!(refs.alloc(), None);
        let mut refs = RefAllocator::new(9);
        assert_eq!(refs.alloc(), Some(8));
        assert_eq!(refs.alloc(), None);
    }

    #[test]
    fn granting_writes_domid_and_frame_then_flags() {
        let table_pages = contiguous(1);
        let mut table = GrantTable::over(table_pages);
        assert_eq!(table.capacity(), 512);
        let r = table.grant_access(3, 0x1234_5678, false).unwrap();
        assert_eq!(r, 8);
        let e = table.entry(8).unwrap();
        assert_eq!(
            (e.flags, e.domid, e.frame),
            (GTF_PERMIT_ACCESS, 3, 0x1234_5678)
        );
        // Byte layout as grant_entry_v1: flags at 64, domid at 66, frame at 68.
        assert_eq!(
            table_pages[0].u16(64).load(Ordering::SeqCst),
            GTF_PERMIT_ACCESS
        );
        assert_eq!(table_pages[0].u16(66).load(Ordering::SeqCst), 3);
        let ro = table.grant_access(4, 7, true).unwrap();
        assert_eq!(ro, 9);
        assert_eq!(
            table.entry(9).unwrap().flags,
            GTF_PERMIT_ACCESS | GTF_READONLY
        );
    }

    #[test]
    fn refs_cross_into_the_second_frame() {
        let table_pages = contiguous(2);
        let mut table = GrantTable::over(table_pages);
        let mut last = 0;
        for _ in 8..513 {
            last = table.grant_access(1, 42, false).unwrap();
        }
        assert_eq!(last, 512);
        assert_eq!(table_pages[1].u32(4).load(Ordering::SeqCst), 42);
    }

    #[test]
    fn a_frame_beyond_32_bits_cannot_be_granted() {
        let mut table = GrantTable::over(contiguous(1));
        assert_eq!(
            table.grant_access(1, 1 << 32, false),
            Err(GrantError::FrameTooLarge(1 << 32))
        );
        // No ref was used up by the refusal.
        assert_eq!(table.grant_access(1, 5, false), Ok(8));
    }

    #[test]
    fn end_access_is_refused_while_mapped_and_keeps_the_grant() {
        let table_pages = contiguous(1);
        let mut table = GrantTable::over(table_pages);
        let r = table.grant_access(2, 99, false).unwrap();
        let flags = table_pages[0].u16(r as usize * 8);
        for busy in [GTF_READING, GTF_WRITING, GTF_READING | GTF_WRITING] {
            // The hypervisor marks the entry while the grantee maps it.
            flags.fetch_or(busy, Ordering::SeqCst);
            assert_eq!(table.end_access(r), Err(GrantError::InUse(r)));
            let e = table.entry(r).unwrap();
            assert_eq!(e.flags, GTF_PERMIT_ACCESS | busy, "entry untouched");
            assert_eq!((e.domid, e.frame), (2, 99));
            // ... and clears the bits when it is unmapped.
            flags.fetch_and(!busy, Ordering::SeqCst);
        }
        assert_eq!(table.end_access(r), Ok(()));
        assert_eq!(table.entry(r).unwrap().flags, 0);
        // The ref is free again, and ending it twice is refused.
        assert_eq!(table.end_access(r), Err(GrantError::BadRef(r)));
        assert_eq!(table.grant_access(5, 1, true), Ok(r));
    }

    #[test]
    fn end_access_refuses_reserved_and_unknown_refs() {
        let mut table = GrantTable::over(contiguous(1));
        assert_eq!(table.end_access(0), Err(GrantError::BadRef(0)));
        assert_eq!(table.end_access(8), Err(GrantError::BadRef(8)));
        assert_eq!(table.end_access(100_000), Err(GrantError::BadRef(100_000)));
        assert!(table.entry(100_000).is_none());
    }

    #[test]
    fn statuses_have_names() {
        assert_eq!(GrantStatus::check(0), Ok(()));
        assert_eq!(GrantStatus::check(-3), Err(GrantStatus::BadGntref));
        assert_eq!(GrantStatus::check(-8), Err(GrantStatus::PermissionDenied));
        assert_eq!(GrantStatus::check(-2), Err(GrantStatus::BadDomain));
        assert_eq!(GrantStatus::check(-13), Err(GrantStatus::NoSpace));
        assert_eq!(GrantStatus::check(-99), Err(GrantStatus::Unknown(-99)));
    }
}
