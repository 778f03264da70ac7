use std::collections::HashMap;

use abi::grant_table::GTF_INVALID;

use super::*;
use crate::frame_table::{FrameInfo, FrameTable, FrameType, Owner, PageTableMemory};

const GRANTER: DomId = 1;
const MAPPER: DomId = 2;
/// The granter's grant frame (hypervisor memory shared with it).
const GRANT_FRAME: Mfn = 60;

/// Grant frames as plain memory.
#[derive(Default)]
struct Entries {
    headers: HashMap<(Mfn, usize), AtomicU32>,
    frames: HashMap<(Mfn, usize), u32>,
}

impl Entries {
    fn with_frame(frame: Mfn) -> Self {
        let mut e = Self::default();
        for index in 0..ENTRIES_PER_FRAME {
            e.headers.insert((frame, index), AtomicU32::new(0));
        }
        e
    }

    /// The granter writes entry `gref` (as `gnttab_grant_foreign_access`).
    fn grant(&mut self, gref: u32, to: DomId, frame: Mfn, readonly: bool) {
        let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        self.frames
            .insert((GRANT_FRAME, gref as usize), frame as u32);
        self.header(GRANT_FRAME, gref as usize)
            .store(u32::from(to) << 16 | u32::from(flags), SeqCst);
    }

    /// The granter ends access as `gnttab_end_foreign_access_ref` does:
    /// refused while the entry is in use.
    fn revoke(&self, gref: u32) -> bool {
        let header = self.header(GRANT_FRAME, gref as usize);
        let old = header.load(SeqCst);
        if old as u16 & (GTF_READING | GTF_WRITING) != 0 {
            return false;
        }
        header
            .compare_exchange(old, u32::from(GTF_INVALID), SeqCst, SeqCst)
            .is_ok()
    }

    fn flags(&self, gref: u32) -> u16 {
        self.header(GRANT_FRAME, gref as usize).load(SeqCst) as u16
    }
}

impl GrantEntries for Entries {
    fn header(&self, frame: Mfn, index: usize) -> &AtomicU32 {
        &self.headers[&(frame, index)]
    }
    fn frame(&self, frame: Mfn, index: usize) -> u32 {
        self.frames.get(&(frame, index)).copied().unwrap_or(0)
    }
}

fn table() -> GrantTable {
    let mut t = GrantTable::new();
    t.add_frame(GRANT_FRAME);
    t
}

#[test]
fn a_map_marks_the_entry_in_use_until_released() {
    let mut entries = Entries::with_frame(GRANT_FRAME);
    let mut t = table();
    entries.grant(3, MAPPER, 42, false);
    let granted = t.acquire(&entries, 3, MAPPER, false).unwrap();
    assert_eq!(granted.frame, 42);
    assert_eq!(
        entries.flags(3) & (GTF_READING | GTF_WRITING),
        GTF_READING | GTF_WRITING
    );
    assert!(!entries.revoke(3), "revoked while mapped");
    t.release(&entries, 3, false);
    assert_eq!(entries.flags(3) & (GTF_READING | GTF_WRITING), 0);
    assert!(!t.has_pins());
    assert!(entries.revoke(3));
}

#[test]
fn writing_clears_with_the_last_writable_use_and_reading_with_the_last_use() {
    let mut entries = Entries::with_frame(GRANT_FRAME);
    let mut t = table();
    entries.grant(5, MAPPER, 42, false);
    t.acquire(&entries, 5, MAPPER, true).unwrap();
    t.acquire(&entries, 5, MAPPER, false).unwrap();
    t.release(&entries, 5, false);
    assert_eq!(entries.flags(5) & (GTF_READING | GTF_WRITING), GTF_READING);
    assert_eq!(
        t.pins(5),
        Pins {
            readonly: 1,
            writable: 0
        }
    );
    t.release(&entries, 5, true);
    assert_eq!(entries.flags(5) & GTF_READING, 0);
}

#[test]
fn only_the_grantee_and_only_as_granted() {
    let mut entries = Entries::with_frame(GRANT_FRAME);
    let mut t = table();
    entries.grant(1, MAPPER, 42, true);
    assert_eq!(t.acquire(&entries, 1, 7, true), Err(GrantError::Denied));
    assert_eq!(
        t.acquire(&entries, 1, MAPPER, false),
        Err(GrantError::Denied)
    );
    assert_eq!(
        t.acquire(&entries, 2, MAPPER, true),
        Err(GrantError::Denied)
    );
    let beyond = ENTRIES_PER_FRAME as u32;
    assert_eq!(
        t.acquire(&entries, beyond, MAPPER, true),
        Err(GrantError::BadRef)
    );
    // The refusals left nothing in use.
    assert!(!t.has_pins());
    assert_eq!(entries.flags(1) & (GTF_READING | GTF_WRITING), 0);
    assert!(t.acquire(&entries, 1, MAPPER, true).is_ok());
}

#[test]
fn releasing_what_was_never_acquired_changes_nothing() {
    let mut entries = Entries::with_frame(GRANT_FRAME);
    let mut t = table();
    entries.grant(4, MAPPER, 42, false);
    t.acquire(&entries, 4, MAPPER, true).unwrap();
    t.release(&entries, 4, false);
    assert_eq!(
        t.pins(4),
        Pins {
            readonly: 1,
            writable: 0
        }
    );
    assert_eq!(entries.flags(4) & GTF_READING, GTF_READING);
    t.release(&entries, MAX_ENTRIES as u32, true);
}

#[test]
fn maps_are_tracked_by_handle_until_untracked() {
    let mut t = table();
    let mapping = |gref| Mapping {
        granter: GRANTER,
        gref,
        host_addr: 0x1000,
        slot: L1Slot { table: 9, index: 1 },
        mfn: 42,
        readonly: true,
    };
    let a = t.track(mapping(1)).unwrap();
    let b = t.track(mapping(2)).unwrap();
    assert_ne!(a, b);
    assert_eq!(t.mapping(b).unwrap().gref, 2);
    assert_eq!(t.untrack(a).unwrap().gref, 1);
    assert!(t.mapping(a).is_none());
    assert_eq!(t.track(mapping(3)), Some(a));
    assert_eq!(t.drain_maps().count(), 2);
    assert!(t.mapping(b).is_none());
}

// --- the property test: grants and the frame table together -----------

/// Page-table frames as plain memory.
#[derive(Default)]
struct Tables(HashMap<(Mfn, usize), u64>);

impl PageTableMemory for Tables {
    fn read_entry(&self, mfn: Mfn, index: usize) -> u64 {
        self.0.get(&(mfn, index)).copied().unwrap_or(0)
    }
    fn write_entry(&mut self, mfn: Mfn, index: usize, value: u64) {
        self.0.insert((mfn, index), value);
    }
    fn install_hypervisor_slots(&mut self, _l4: Mfn) {}
}

/// The mapper's L1 table, pinned; the granter's data frames.
const L1: Mfn = 1;
const DATA: core::ops::Range<Mfn> = 40..48;
const REFS: u32 = 8;
const SLOTS: usize = 12;

/// One of the mapper's live grant mappings, as the model remembers it.
#[derive(Clone, Copy, Debug)]
struct Live {
    gref: u32,
    frame: Mfn,
    readonly: bool,
    index: usize,
}

struct World<'a> {
    entries: Entries,
    grants: GrantTable,
    frames: FrameTable<'a>,
    tables: Tables,
    /// What each ref was last granted as: (frame, readonly), or revoked.
    granted: [Option<(Mfn, bool)>; REFS as usize],
    live: Vec<Live>,
}

impl<'a> World<'a> {
    fn new(storage: &'a mut Vec<FrameInfo>) -> Self {
        storage.resize(64, FrameInfo::FREE);
        let mut frames = FrameTable::new(storage);
        frames.assign(L1, Owner::Domain(MAPPER)).unwrap();
        for mfn in DATA {
            frames.assign(mfn, Owner::Domain(GRANTER)).unwrap();
        }
        frames
            .assign(GRANT_FRAME, Owner::SharedWith(GRANTER))
            .unwrap();
        let mut tables = Tables::default();
        frames.pin(&mut tables, L1, MAPPER, FrameType::L1).unwrap();
        Self {
            entries: Entries::with_frame(GRANT_FRAME),
            grants: table(),
            frames,
            tables,
            granted: [None; REFS as usize],
            live: Vec::new(),
        }
    }

    fn grant(&mut self, gref: u32, frame: Mfn, readonly: bool) {
        let in_use = self.entries.flags(gref) & (GTF_READING | GTF_WRITING) != 0;
        if in_use {
            // A granter rewriting an entry in use is its own bug; the
            // model keeps to well-behaved granters for the flags.
            return;
        }
        self.entries.grant(gref, MAPPER, frame, readonly);
        self.granted[gref as usize] = Some((frame, readonly));
    }

    fn revoke(&mut self, gref: u32) {
        let in_use = self.live.iter().any(|l| l.gref == gref);
        let revoked = self.entries.revoke(gref);
        assert_eq!(
            revoked, !in_use,
            "revoke of ref {gref} with maps {:?}",
            self.live
        );
        if revoked {
            self.granted[gref as usize] = None;
        }
    }

    /// The map path: acquire the grant, then install the PTE with the
    /// granter as page owner; undo the acquire if the install fails.
    fn map(&mut self, gref: u32, readonly: bool, index: usize) {
        let allowed = self.granted[gref as usize].filter(|&(_, ro)| !ro || readonly);
        let acquired = self.grants.acquire(&self.entries, gref, MAPPER, readonly);
        assert_eq!(acquired.is_ok(), allowed.is_some(), "acquire of ref {gref}");
        let Ok(granted) = acquired else { return };
        assert_eq!(Some(granted.frame), allowed.map(|(f, _)| f));
        let slot_free = self.tables.read_entry(L1, index) == 0;
        let pte = granted.frame << 12 | 1 | 4 | if readonly { 0 } else { 2 };
        let installed = slot_free
            && self
                .frames
                .update_entry_for(&mut self.tables, L1, index, pte, MAPPER, GRANTER)
                .is_ok();
        if installed {
            self.live.push(Live {
                gref,
                frame: granted.frame,
                readonly,
                index,
            });
        } else {
            self.grants.release(&self.entries, gref, readonly);
        }
    }

    fn unmap(&mut self, which: usize) {
        let l = self.live.swap_remove(which);
        self.frames
            .update_entry_for(&mut self.tables, L1, l.index, 0, MAPPER, GRANTER)
            .unwrap();
        self.grants.release(&self.entries, l.gref, l.readonly);
    }

    /// A copy holds its use for the whole copy, then drops it.
    fn copy(&mut self, gref: u32, write: bool) {
        let allowed = self.granted[gref as usize].is_some_and(|(_, ro)| !(write && ro));
        let acquired = self.grants.acquire(&self.entries, gref, MAPPER, !write);
        assert_eq!(acquired.is_ok(), allowed, "copy acquire of ref {gref}");
        if acquired.is_ok() {
            let busy = if write { GTF_WRITING } else { GTF_READING };
            assert_eq!(
                self.entries.flags(gref) & busy,
                busy,
                "not in use during the copy"
            );
            assert!(!self.entries.revoke(gref), "revoked during a copy");
            self.grants.release(&self.entries, gref, !write);
        }
    }

    /// Pins, flags and frame references agree with the live mappings.
    fn check(&self) {
        for gref in 0..REFS {
            let maps = self.live.iter().filter(|l| l.gref == gref);
            let ro = maps.clone().filter(|l| l.readonly).count() as u16;
            let rw = maps.filter(|l| !l.readonly).count() as u16;
            let pins = Pins {
                readonly: ro,
                writable: rw,
            };
            assert_eq!(self.grants.pins(gref), pins, "pins of ref {gref}");
            let flags = self.entries.flags(gref);
            assert_eq!(
                flags & GTF_READING != 0,
                ro + rw > 0,
                "GTF_reading of ref {gref}"
            );
            assert_eq!(
                flags & GTF_WRITING != 0,
                rw > 0,
                "GTF_writing of ref {gref}"
            );
        }
        for mfn in DATA {
            let maps = self.live.iter().filter(|l| l.frame == mfn);
            let writable = maps.clone().filter(|l| !l.readonly).count() as u32;
            let f = self.frames.info(mfn).unwrap();
            assert_eq!(
                f.ref_count,
                maps.count() as u32,
                "references to frame {mfn}"
            );
            assert_eq!(f.type_count, writable, "writable references to frame {mfn}");
        }
        assert_eq!(self.grants.has_pins(), !self.live.is_empty());
    }
}

#[test]
fn random_map_unmap_revoke_copy_sequences_keep_pins_and_references_right() {
    let mut next = crate::test_support::xorshift(0x9e37_79b9_7f4a_7c15u64);
    for _round in 0..30 {
        let mut storage = Vec::new();
        let mut w = World::new(&mut storage);
        for _ in 0..500 {
            let gref = next(u64::from(REFS)) as u32;
            match next(6) {
                0 => {
                    let frame = DATA.start + next(DATA.end - DATA.start);
                    w.grant(gref, frame, next(2) == 0);
                }
                1 => w.revoke(gref),
                2 | 3 => w.map(gref, next(2) == 0, next(SLOTS as u64) as usize),
                4 if !w.live.is_empty() => w.unmap(next(w.live.len() as u64) as usize),
                _ => w.copy(gref, next(2) == 0),
            }
            w.check();
        }
        while !w.live.is_empty() {
            w.unmap(0);
            w.check();
        }
        w.frames.unpin(&mut w.tables, L1, MAPPER).unwrap();
        for mfn in DATA {
            assert_eq!(w.frames.info(mfn).unwrap().ref_count, 0);
        }
    }
}
