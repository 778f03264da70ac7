//! Other domains' frames mapped into dom0: the toolstack's window.
//!
//! A PV domain maps a frame it does not own with `mmu_update` naming the
//! owner as the foreign domain (Xen's `privcmd` mappings). dom0 keeps one
//! window for that: [`WINDOW_PAGES`] page slots at [`WINDOW_BASE`], an L4
//! slot of its own with the L3, L2 and L1 tables made once at start, so a
//! mapping is a single entry write and never allocates.
//!
//! Mappings are writable: a writable mapping gives the frame the writable
//! type in the hypervisor, so every mapping of a frame that is to become a
//! page table must be gone before that table is pinned. [`ForeignPage`]s
//! are handles that unmap only through [`Window::unmap`]; a page is reached
//! through `SharedPage`, never as Rust memory, because the other domain may
//! write it at any time.

use abi::xen::{
    DOMID_SELF, DomId, MMU_NORMAL_PT_UPDATE, MMUEXT_TLB_FLUSH_LOCAL, MmuUpdate, MmuextOp,
};
use pv_guest_sdk::mm::{self, MapError, pte};
use pv_guest_sdk::shmem::SharedPage;

/// L4 slot of the window: inside the guest's half, clear of the SDK's
/// physmap (slot 511) and of user mode (slot 0).
const WINDOW_L4_SLOT: usize = 448;
/// The window's first address (slot 448, sign-extended).
pub const WINDOW_BASE: u64 = 0xffff_0000_0000_0000 | (WINDOW_L4_SLOT as u64) << 39;
const L1_TABLES: usize = 4;
/// Frames that can be mapped at once: 8 MiB.
pub const WINDOW_PAGES: usize = L1_TABLES * 512;

/// Why a mapping failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForeignError {
    /// Every slot of the window is in use.
    WindowFull,
    /// The hypervisor refused the mapping (not the domain's frame, ...).
    Refused {
        mfn: u64,
        error: pv_guest_sdk::Error,
    },
    /// Setting the window up failed.
    Setup(MapError),
}

impl core::fmt::Display for ForeignError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::WindowFull => write!(f, "all {WINDOW_PAGES} foreign-mapping slots are in use"),
            Self::Refused { mfn, error } => write!(f, "mapping frame {mfn:#x} refused: {error}"),
            Self::Setup(e) => write!(f, "cannot set up the foreign-mapping window: {e}"),
        }
    }
}

/// A frame of another domain, mapped writable in the window.
pub struct ForeignPage {
    slot: usize,
}

impl ForeignPage {
    pub fn va(&self) -> u64 {
        WINDOW_BASE + self.slot as u64 * 4096
    }

    /// The page's contents.
    pub fn page(&self) -> &SharedPage {
        // SAFETY: the slot maps a frame (writable) for as long as this
        // handle exists: only `Window::unmap`, which consumes the handle,
        // clears it. The frame belongs to another domain, which may write
        // it; `SharedPage` is the way to reach such memory, and nothing
        // else in dom0 makes Rust references into the window.
        unsafe { SharedPage::from_va(self.va()) }
    }
}

/// The window and which of its slots are taken.
pub struct Window {
    /// Machine frames of the window's L1 tables.
    l1: [u64; L1_TABLES],
    used: [u64; WINDOW_PAGES / 64],
}

impl Window {
    /// Makes the window's page tables (once, at start of day).
    pub fn new() -> Result<Self, ForeignError> {
        let setup = ForeignError::Setup;
        let l3 = pte::mfn(mm::ensure_kernel_l4_slot(WINDOW_L4_SLOT).map_err(setup)?);
        let [_, l3_index, l2_index, _] = pte::indices(WINDOW_BASE);
        let l2 = mm::new_table(&[]).map_err(setup)?;
        link(l3, l3_index, l2.mfn).map_err(setup)?;
        let mut l1 = [0; L1_TABLES];
        for (i, mfn) in l1.iter_mut().enumerate() {
            let table = mm::new_table(&[]).map_err(setup)?;
            link(l2.mfn, l2_index + i, table.mfn).map_err(setup)?;
            *mfn = table.mfn;
        }
        Ok(Self {
            l1,
            used: [0; WINDOW_PAGES / 64],
        })
    }

    fn entry_maddr(&self, slot: usize) -> u64 {
        self.l1[slot / 512] * 4096 + (slot % 512) as u64 * 8
    }

    /// Maps machine frame `mfn` of domain `owner`.
    pub fn map(&mut self, owner: DomId, mfn: u64) -> Result<ForeignPage, ForeignError> {
        let (word, bit) = self
            .used
            .iter()
            .enumerate()
            .find_map(|(i, w)| (*w != u64::MAX).then(|| (i, w.trailing_ones() as usize)))
            .ok_or(ForeignError::WindowFull)?;
        let slot = word * 64 + bit;
        let request = MmuUpdate {
            ptr: self.entry_maddr(slot) | MMU_NORMAL_PT_UPDATE,
            val: pte::entry(mfn, pte::KERNEL_RW | pte::NO_EXECUTE),
        };
        // SAFETY: the entry is a window slot that maps nothing (its bit is
        // clear), so no Rust object is affected; a slot is flushed from the
        // TLB when it is unmapped, so no stale translation survives.
        unsafe { pv_guest_sdk::hypercall::mmu_update(&[request], owner) }
            .map_err(|error| ForeignError::Refused { mfn, error })?;
        self.used[word] |= 1 << bit;
        Ok(ForeignPage { slot })
    }

    /// Unmaps `pages`, in one batch with one TLB flush.
    pub fn unmap(&mut self, pages: impl IntoIterator<Item = ForeignPage>) {
        const BATCH: usize = 64;
        let mut batch = [MmuUpdate::default(); BATCH];
        let mut n = 0;
        let mut any = false;
        for page in pages {
            batch[n] = MmuUpdate {
                ptr: self.entry_maddr(page.slot) | MMU_NORMAL_PT_UPDATE,
                val: 0,
            };
            self.used[page.slot / 64] &= !(1 << (page.slot % 64));
            n += 1;
            if n == BATCH {
                clear(&batch[..n]);
                n = 0;
            }
            any = true;
        }
        clear(&batch[..n]);
        if any {
            let flush = MmuextOp {
                cmd: MMUEXT_TLB_FLUSH_LOCAL,
                _pad: 0,
                arg1: 0,
                arg2: 0,
            };
            // SAFETY: a TLB flush changes no mapping.
            let _ = unsafe { pv_guest_sdk::hypercall::mmuext_op(&[flush], DOMID_SELF) };
        }
    }
}

/// Clears window entries whose handles are gone.
fn clear(requests: &[MmuUpdate]) {
    if requests.is_empty() {
        return;
    }
    // SAFETY: each entry is a window slot whose `ForeignPage` was consumed
    // by `Window::unmap`, so nothing reaches the page any more. Clearing an
    // entry cannot be refused for a slot the window itself filled.
    let _ = unsafe { pv_guest_sdk::hypercall::mmu_update(requests, DOMID_SELF) };
}

/// Links table `child` into entry `index` of table `parent` (dom0's own).
fn link(parent: u64, index: usize, child: u64) -> Result<(), MapError> {
    let request = MmuUpdate {
        ptr: (parent * 4096 + index as u64 * 8) | MMU_NORMAL_PT_UPDATE,
        val: pte::entry(child, pte::TABLE),
    };
    // SAFETY: the entry is in the window's own tables, which map nothing
    // Rust uses.
    unsafe { pv_guest_sdk::hypercall::mmu_update(&[request], DOMID_SELF) }
        .map(drop)
        .map_err(MapError::from)
}
