//! Grant tables, version 1: what each domain grants and what it has mapped,
//! and the state machine of a grant entry's flags.
//!
//! A domain's grant table is up to [`MAX_GRANT_FRAMES`] hypervisor frames
//! the domain maps and writes (`SharedWith`): entry `ref` is
//! `{flags: u16, domid: u16, frame: u32}` (`abi::grant_table::GrantEntryV1`).
//! hv-core reads an entry when a peer maps or copies it and keeps two
//! things per domain:
//! - `pins`: for each of its refs, how many read-only and writable uses
//!   other domains hold (maps, and copies while they run). While any exist
//!   the entry carries `GTF_reading` (and `GTF_writing` while a writable one
//!   does), which is how the granter knows it may not revoke
//!   (`gnttab_end_foreign_access` refuses while they are set).
//! - `maps` (Xen's maptrack): the grants this domain has mapped, by
//!   handle, so unmap and teardown find them.
//!
//! Invariant: after every [`GrantTable::acquire`] and [`GrantTable::release`]
//! an entry's `GTF_reading` is set exactly when it has a pin, and
//! `GTF_writing` exactly when it has a writable pin.
//!
//! The entry's flags word is shared with a running guest, so every change
//! to it is an atomic operation on the first 32 bits (flags and domid), as
//! in Xen: the check and the update cannot be split by the granter. The
//! entries are reached through [`GrantEntries`], so host tests run the
//! state machine over ordinary memory.

use crate::slot::Slot;
use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::SeqCst;

use abi::grant_table::{GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_TYPE_MASK, GTF_WRITING};

use crate::frame_table::{DomId, L1Slot, Mfn};

pub const MAX_GRANT_FRAMES: usize = 4;
pub const ENTRIES_PER_FRAME: usize = 4096 / 8;
pub const MAX_ENTRIES: usize = MAX_GRANT_FRAMES * ENTRIES_PER_FRAME;
/// Grants one domain may have mapped at once.
pub const MAX_MAPS: usize = 128;

/// Where the grant entries live: the table's frames, as the guest sees
/// them (the direct map in hv-core, plain memory in host tests).
pub trait GrantEntries {
    /// The first word of entry `index` of grant frame `frame`: flags in
    /// the low 16 bits, the grantee's domid in the high 16.
    fn header(&self, frame: Mfn, index: usize) -> &AtomicU32;
    /// The entry's `frame` field.
    fn frame(&self, frame: Mfn, index: usize) -> u32;
}

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

/// Per ref: the uses other domains hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pins {
    pub readonly: u16,
    pub writable: u16,
}

pub struct GrantTable {
    frames: [Mfn; MAX_GRANT_FRAMES],
    nr_frames: usize,
    pins: [Pins; MAX_ENTRIES],
    /// Slots, not `Option`s: an empty table is zeros (a vacant domain's
    /// table sits in `.bss`).
    maps: [Slot<Mapping>; MAX_MAPS],
}

/// A grant entry as read, after the checks a mapper or copier needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granted {
    pub frame: Mfn,
}

/// Why a grant entry cannot be used; maps onto `GNTST_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    BadRef,
    Denied,
}

impl Default for GrantTable {
    fn default() -> Self {
        Self::new()
    }
}

impl GrantTable {
    pub const fn new() -> Self {
        Self {
            frames: [0; MAX_GRANT_FRAMES],
            nr_frames: 0,
            pins: [Pins {
                readonly: 0,
                writable: 0,
            }; MAX_ENTRIES],
            maps: [const { Slot::Empty }; MAX_MAPS],
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

    /// The grant frame and index within it of `gref`, if the table has it.
    fn locate(&self, gref: u32) -> Option<(Mfn, usize)> {
        let gref = gref as usize;
        if gref >= self.nr_frames * ENTRIES_PER_FRAME {
            return None;
        }
        Some((
            self.frames[gref / ENTRIES_PER_FRAME],
            gref % ENTRIES_PER_FRAME,
        ))
    }

    /// Checks that `gref` grants `to` access (writable unless `readonly`)
    /// and marks it in use (`GTF_reading`/`GTF_writing`) in one atomic
    /// step; the use is counted until [`Self::release`].
    pub fn acquire(
        &mut self,
        entries: &impl GrantEntries,
        gref: u32,
        to: DomId,
        readonly: bool,
    ) -> Result<Granted, GrantError> {
        let (frame, index) = self.locate(gref).ok_or(GrantError::BadRef)?;
        mark_in_use(entries.header(frame, index), to, readonly)?;
        let pins = &mut self.pins[gref as usize];
        if readonly {
            pins.readonly += 1;
        } else {
            pins.writable += 1;
        }
        Ok(Granted {
            frame: Mfn::from(entries.frame(frame, index)),
        })
    }

    /// Drops one use taken by [`Self::acquire`]; the in-use flags clear
    /// with the last.
    pub fn release(&mut self, entries: &impl GrantEntries, gref: u32, readonly: bool) {
        let Some(pins) = self.pins.get_mut(gref as usize) else {
            return;
        };
        if readonly {
            pins.readonly = pins.readonly.saturating_sub(1);
        } else {
            pins.writable = pins.writable.saturating_sub(1);
        }
        self.settle(entries, gref);
    }

    /// Makes the entry's in-use flags match the pins.
    fn settle(&self, entries: &impl GrantEntries, gref: u32) {
        let Some((frame, index)) = self.locate(gref) else {
            return;
        };
        let pins = self.pins[gref as usize];
        let mut clear = 0u32;
        if pins.writable == 0 {
            clear |= u32::from(GTF_WRITING);
        }
        if pins.readonly == 0 && pins.writable == 0 {
            clear |= u32::from(GTF_READING);
        }
        entries.header(frame, index).fetch_and(!clear, SeqCst);
    }

    /// The uses held on `gref` (zero for refs beyond the table).
    pub fn pins(&self, gref: u32) -> Pins {
        self.pins.get(gref as usize).copied().unwrap_or_default()
    }

    /// Whether any other domain has one of this table's grants in use.
    pub fn has_pins(&self) -> bool {
        self.pins.iter().any(|p| *p != Pins::default())
    }

    /// Records a mapping and returns its handle.
    pub fn track(&mut self, mapping: Mapping) -> Option<u32> {
        let (handle, slot) = self
            .maps
            .iter_mut()
            .enumerate()
            .find(|(_, s)| s.is_empty())?;
        *slot = Slot::Full(mapping);
        Some(handle as u32)
    }

    pub fn mapping(&self, handle: u32) -> Option<Mapping> {
        self.maps.get(handle as usize)?.as_ref().copied()
    }

    pub fn untrack(&mut self, handle: u32) -> Option<Mapping> {
        self.maps.get_mut(handle as usize)?.take()
    }

    /// Every mapping this domain holds, forgotten (teardown).
    pub fn drain_maps(&mut self) -> impl Iterator<Item = Mapping> + '_ {
        self.maps.iter_mut().filter_map(Slot::take)
    }
}

/// The compare-exchange loop of Xen's `_set_status_v1`: the entry must
/// permit access to `to` (and writing unless `readonly`) at the moment the
/// in-use flags go in.
fn mark_in_use(header: &AtomicU32, to: DomId, readonly: bool) -> Result<(), GrantError> {
    let use_bits = u32::from(if readonly {
        GTF_READING
    } else {
        GTF_READING | GTF_WRITING
    });
    let mut old = header.load(SeqCst);
    loop {
        let flags = old as u16;
        let domid = (old >> 16) as u16;
        if flags & GTF_TYPE_MASK != GTF_PERMIT_ACCESS || domid != to {
            return Err(GrantError::Denied);
        }
        if !readonly && flags & GTF_READONLY != 0 {
            return Err(GrantError::Denied);
        }
        match header.compare_exchange(old, old | use_bits, SeqCst, SeqCst) {
            Ok(_) => return Ok(()),
            Err(now) => old = now,
        }
    }
}

#[cfg(test)]
mod tests;
