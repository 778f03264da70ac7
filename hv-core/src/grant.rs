//! Grant tables, version 1: what each domain grants and what it has mapped.
//!
//! A domain's grant table is up to [`MAX_GRANT_FRAMES`] hypervisor frames
//! the domain maps and writes (`SharedWith`): entry `ref` is
//! `{flags: u16, domid: u16, frame: u32}`. hv-core reads an entry when a
//! peer maps or copies it and keeps two things per domain:
//! - `pins`: for each of its refs, how many read-only and writable maps
//!   other domains hold. While any exist the entry carries `GTF_reading`
//!   (and `GTF_writing`), which is how the granter knows it may not revoke
//!   (`gnttab_end_foreign_access` refuses while they are set).
//! - `maps` (Xen's maptrack): the grants this domain has mapped, by
//!   handle, so unmap and teardown find them.
//!
//! The entry's flags word is shared with a running guest, so every change
//! to it is a compare-exchange of the first 32 bits (flags and domid), as
//! in Xen: the check and the update cannot be split by the granter.

use core::sync::atomic::Ordering::SeqCst;

use abi::grant_table::{GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_TYPE_MASK, GTF_WRITING};
use abi::xen::DomId;
use hv_core::frame_table::Mfn;

use crate::arch::shared::SharedPage;
use crate::page_tables::L1Slot;

pub const MAX_GRANT_FRAMES: usize = 4;
pub const ENTRIES_PER_FRAME: usize = 4096 / 8;
pub const MAX_ENTRIES: usize = MAX_GRANT_FRAMES * ENTRIES_PER_FRAME;
/// Grants one domain may have mapped at once.
pub const MAX_MAPS: usize = 128;

/// One grant this domain has mapped.
#[derive(Clone, Copy, Debug)]
pub struct Mapping {
    pub granter: DomId,
    pub gref: u32,
    pub host_addr: u64,
    /// The L1 entry the mapping was written to: the only entry that can
    /// hold it (a grant PTE cannot be copied elsewhere, because the frame
    /// is not the mapper's).
    pub slot: L1Slot,
    pub mfn: Mfn,
    pub readonly: bool,
}

pub struct GrantTable {
    frames: [Mfn; MAX_GRANT_FRAMES],
    nr_frames: usize,
    /// Per ref: (read-only maps, writable maps) held by others.
    pins: [(u16, u16); MAX_ENTRIES],
    maps: [Option<Mapping>; MAX_MAPS],
}

/// A grant entry as read, after the checks a mapper or copier needs.
#[derive(Clone, Copy, Debug)]
pub struct Granted {
    pub frame: Mfn,
}

/// Why a grant entry cannot be used; maps onto `GNTST_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    BadRef,
    Denied,
}

impl GrantTable {
    pub const fn new() -> Self {
        Self {
            frames: [0; MAX_GRANT_FRAMES],
            nr_frames: 0,
            pins: [(0, 0); MAX_ENTRIES],
            maps: [None; MAX_MAPS],
        }
    }

    pub fn nr_frames(&self) -> usize {
        self.nr_frames
    }

    pub fn frames(&self) -> &[Mfn] {
        &self.frames[..self.nr_frames]
    }

    /// Adds a frame (a zeroed, hypervisor-owned page shared with the
    /// domain) to the table.
    pub fn add_frame(&mut self, mfn: Mfn) {
        self.frames[self.nr_frames] = mfn;
        self.nr_frames += 1;
    }

    /// Gives back frames taken with [`Self::take_frames`] (teardown found
    /// them still mapped).
    pub fn put_back_frames(&mut self, frames: [Mfn; MAX_GRANT_FRAMES], n: usize) {
        self.frames = frames;
        self.nr_frames = n;
    }

    /// Forgets the table's frames (teardown; the caller frees them).
    pub fn take_frames(&mut self) -> ([Mfn; MAX_GRANT_FRAMES], usize) {
        let n = core::mem::take(&mut self.nr_frames);
        (self.frames, n)
    }

    fn entry_word(&self, gref: u32) -> Option<&'static core::sync::atomic::AtomicU32> {
        let gref = gref as usize;
        if gref >= self.nr_frames * ENTRIES_PER_FRAME {
            return None;
        }
        let page = SharedPage::new(self.frames[gref / ENTRIES_PER_FRAME]);
        Some(page.u32((gref % ENTRIES_PER_FRAME) * 8))
    }

    /// Checks that `gref` grants `to` access (writable unless `readonly`)
    /// and marks it in use (`GTF_reading`/`GTF_writing`) in one atomic
    /// step. With `pin`, the use is counted until [`Self::unpin`].
    pub fn acquire(
        &mut self,
        gref: u32,
        to: DomId,
        readonly: bool,
        pin: bool,
    ) -> Result<Granted, GrantError> {
        let word = self.entry_word(gref).ok_or(GrantError::BadRef)?;
        let use_bits = if readonly {
            GTF_READING
        } else {
            GTF_READING | GTF_WRITING
        } as u32;
        let mut old = word.load(SeqCst);
        loop {
            let flags = old as u16;
            let domid = (old >> 16) as u16;
            if flags & GTF_TYPE_MASK != GTF_PERMIT_ACCESS || domid != to {
                return Err(GrantError::Denied);
            }
            if !readonly && flags & GTF_READONLY != 0 {
                return Err(GrantError::Denied);
            }
            match word.compare_exchange(old, old | use_bits, SeqCst, SeqCst) {
                Ok(_) => break,
                Err(now) => old = now,
            }
        }
        let frame_at = (gref as usize % ENTRIES_PER_FRAME) * 8 + 4;
        let frame = SharedPage::new(self.frames[gref as usize / ENTRIES_PER_FRAME])
            .u32(frame_at)
            .load(SeqCst) as Mfn;
        if pin {
            let pins = &mut self.pins[gref as usize];
            if readonly {
                pins.0 += 1;
            } else {
                pins.1 += 1;
            }
        } else {
            self.settle(gref);
        }
        Ok(Granted { frame })
    }

    /// Drops one use taken by [`Self::acquire`] with `pin`.
    pub fn unpin(&mut self, gref: u32, readonly: bool) {
        let Some(pins) = self.pins.get_mut(gref as usize) else {
            return;
        };
        if readonly {
            pins.0 = pins.0.saturating_sub(1);
        } else {
            pins.1 = pins.1.saturating_sub(1);
        }
        self.settle(gref);
    }

    /// Makes the entry's in-use flags match the pins.
    fn settle(&self, gref: u32) {
        let Some(word) = self.entry_word(gref) else {
            return;
        };
        let (ro, rw) = self.pins[gref as usize];
        let mut clear = 0u32;
        if rw == 0 {
            clear |= GTF_WRITING as u32;
        }
        if ro == 0 && rw == 0 {
            clear |= GTF_READING as u32;
        }
        word.fetch_and(!clear, SeqCst);
    }

    /// Whether any other domain has one of this table's grants mapped.
    pub fn has_pins(&self) -> bool {
        self.pins.iter().any(|&(ro, rw)| ro != 0 || rw != 0)
    }

    /// Records a mapping and returns its handle.
    pub fn track(&mut self, mapping: Mapping) -> Option<u32> {
        let (handle, slot) = self
            .maps
            .iter_mut()
            .enumerate()
            .find(|(_, s)| s.is_none())?;
        *slot = Some(mapping);
        Some(handle as u32)
    }

    pub fn mapping(&self, handle: u32) -> Option<Mapping> {
        *self.maps.get(handle as usize)?
    }

    pub fn untrack(&mut self, handle: u32) -> Option<Mapping> {
        self.maps.get_mut(handle as usize)?.take()
    }

    /// Every mapping this domain holds, forgotten (teardown).
    pub fn drain_maps(&mut self) -> impl Iterator<Item = Mapping> + '_ {
        self.maps.iter_mut().filter_map(Option::take)
    }
}
