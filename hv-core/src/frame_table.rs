//! The frame table: who owns each machine frame, what it is used as, and how
//! many references hold it there. This is what keeps PV direct paging safe.
//!
//! Rules (Xen's, for 4-level PV64 paging):
//! - Every frame has at most one owner. A guest may only reference frames
//!   it owns (or, later, frames granted to it).
//! - A frame's *type* (L1-L4 page table, or writable) changes only when its
//!   type count is zero. A page-table frame therefore can never also be
//!   mapped writable: the writable mapping would need the `Writable` type.
//! - Taking a page-table type validates the frame: every present entry must
//!   reference a frame the owner may use, with the type one level down (an
//!   L1 entry references a data frame, writable if the entry is). This
//!   recursion is how pinning an L4 validates a whole tree.
//! - Dropping the last type reference of a page-table frame releases every
//!   reference its entries hold (devalidation).
//! - L4 slots 256-271 (the hypervisor hole) belong to the hypervisor: they
//!   are neither validated nor writable by the guest; validating an L4
//!   (re)writes them with the hypervisor's own entries.
//! - Entries the guest supplies are adjusted as Xen does for PV64: the
//!   guest kernel runs in ring 3, so every entry gets the user bit, and no
//!   entry may be global (kernel mappings would survive the switch to the
//!   guest's user page tables).
//!
//! The logic is pure: page-table contents are read through
//! [`PageTableMemory`], so host tests run it over a map of fake frames.

use core::fmt;

/// A machine frame number.
pub type Mfn = u64;
/// A domain id (`abi::xen::DomId`).
pub type DomId = u16;

pub const ENTRIES: usize = 512;
/// L4 slots reserved for the hypervisor (the PV64 hole).
pub const HYPERVISOR_L4_SLOTS: core::ops::Range<usize> = 256..272;

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const PAGE_SIZE_BIT: u64 = 1 << 7;
const GLOBAL: u64 = 1 << 8;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// What a frame is currently used as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameType {
    /// No type reference held.
    None,
    L1,
    L2,
    L3,
    L4,
    /// Mapped writable somewhere.
    Writable,
}

impl FrameType {
    /// The page-table level, for page-table types.
    const fn level(self) -> Option<u8> {
        match self {
            Self::L1 => Some(1),
            Self::L2 => Some(2),
            Self::L3 => Some(3),
            Self::L4 => Some(4),
            _ => None,
        }
    }

    const fn table(level: u8) -> Self {
        match level {
            1 => Self::L1,
            2 => Self::L2,
            3 => Self::L3,
            _ => Self::L4,
        }
    }
}

/// Who owns a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Free,
    Hypervisor,
    Domain(DomId),
    /// A hypervisor page the domain may map (its shared_info): readable
    /// and writable, but never a page table, because hv-core writes it.
    SharedWith(DomId),
}

#[derive(Clone, Copy, Debug)]
pub struct FrameInfo {
    pub owner: Owner,
    pub ty: FrameType,
    /// References to the frame's current type.
    pub type_count: u32,
    /// All references (each type reference also holds one of these).
    pub ref_count: u32,
    pub pinned: bool,
}

impl FrameInfo {
    pub const FREE: Self = Self {
        owner: Owner::Free,
        ty: FrameType::None,
        type_count: 0,
        ref_count: 0,
        pinned: false,
    };
}

/// Why a page-table operation was refused. Each names the frame involved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageError {
    /// Beyond the end of machine memory.
    NoSuchFrame(Mfn),
    /// The frame belongs to someone else (another domain, the hypervisor,
    /// or nobody).
    NotOwner { mfn: Mfn, owner: Owner },
    /// The frame has another type with references outstanding.
    TypeConflict {
        mfn: Mfn,
        have: FrameType,
        want: FrameType,
    },
    /// A superpage (PSE) entry; PV64 guests map 4 KiB pages only.
    Superpage(Mfn),
    /// An entry in the hypervisor's L4 slots.
    HypervisorSlot { mfn: Mfn, slot: usize },
    /// Already pinned, or not pinned when unpinning.
    PinState(Mfn),
    /// A reference count would overflow.
    Overflow(Mfn),
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoSuchFrame(m) => write!(f, "frame {m:#x} does not exist"),
            Self::NotOwner { mfn, owner } => write!(f, "frame {mfn:#x} is owned by {owner:?}"),
            Self::TypeConflict { mfn, have, want } => {
                write!(
                    f,
                    "frame {mfn:#x} is in use as {have:?}, cannot become {want:?}"
                )
            }
            Self::Superpage(m) => write!(f, "superpage entry in frame {m:#x}"),
            Self::HypervisorSlot { mfn, slot } => {
                write!(f, "L4 frame {mfn:#x} slot {slot} belongs to the hypervisor")
            }
            Self::PinState(m) => write!(f, "frame {m:#x} pin state does not allow this"),
            Self::Overflow(m) => write!(f, "reference count of frame {m:#x} overflows"),
        }
    }
}

/// Access to page-table frames' contents.
pub trait PageTableMemory {
    fn read_entry(&self, mfn: Mfn, index: usize) -> u64;
    fn write_entry(&mut self, mfn: Mfn, index: usize, value: u64);
    /// Writes the hypervisor's entries into slots 256-271 of an L4 that
    /// has just been validated.
    fn install_hypervisor_slots(&mut self, l4: Mfn);
}

/// A guest-supplied entry as it is stored: user-accessible, never global.
pub const fn adjust_entry(entry: u64) -> u64 {
    if entry & PRESENT == 0 {
        entry
    } else {
        (entry | USER) & !GLOBAL
    }
}

/// The frame table over frames `0..len`, stored in caller-provided memory.
pub struct FrameTable<'a> {
    frames: &'a mut [FrameInfo],
}

pub const fn entry_mfn(entry: u64) -> Mfn {
    (entry & ADDR_MASK) >> 12
}

impl<'a> FrameTable<'a> {
    /// A table with every frame free.
    pub fn new(storage: &'a mut [FrameInfo]) -> Self {
        storage.fill(FrameInfo::FREE);
        Self { frames: storage }
    }

    pub fn info(&self, mfn: Mfn) -> Option<&FrameInfo> {
        self.frames.get(mfn as usize)
    }

    fn frame(&mut self, mfn: Mfn) -> Result<&mut FrameInfo, PageError> {
        self.frames
            .get_mut(mfn as usize)
            .ok_or(PageError::NoSuchFrame(mfn))
    }

    /// The frame, if `dom` owns it.
    fn owned_frame(&mut self, mfn: Mfn, dom: DomId) -> Result<&mut FrameInfo, PageError> {
        let frame = self.frame(mfn)?;
        if frame.owner != Owner::Domain(dom) {
            return Err(PageError::NotOwner {
                mfn,
                owner: frame.owner,
            });
        }
        Ok(frame)
    }

    /// Gives a free (or hypervisor-owned) frame to `owner`.
    pub fn assign(&mut self, mfn: Mfn, owner: Owner) -> Result<(), PageError> {
        let frame = self.frame(mfn)?;
        if frame.ref_count != 0 {
            return Err(PageError::TypeConflict {
                mfn,
                have: frame.ty,
                want: FrameType::None,
            });
        }
        frame.owner = owner;
        frame.ty = FrameType::None;
        frame.pinned = false;
        Ok(())
    }

    /// Takes a plain reference on a frame `dom` owns or shares.
    pub fn get_page(&mut self, mfn: Mfn, dom: DomId) -> Result<(), PageError> {
        let frame = self.frame(mfn)?;
        if frame.owner != Owner::Domain(dom) && frame.owner != Owner::SharedWith(dom) {
            return Err(PageError::NotOwner {
                mfn,
                owner: frame.owner,
            });
        }
        frame.ref_count = frame
            .ref_count
            .checked_add(1)
            .ok_or(PageError::Overflow(mfn))?;
        Ok(())
    }

    pub fn put_page(&mut self, mfn: Mfn) {
        if let Ok(frame) = self.frame(mfn) {
            debug_assert!(
                frame.ref_count > 0,
                "put_page on unreferenced frame {mfn:#x}"
            );
            frame.ref_count = frame.ref_count.saturating_sub(1);
        }
    }

    /// Takes a reference on `mfn` as type `want` for `dom`, validating it
    /// (recursively) if it becomes a page table now.
    pub fn get_page_type(
        &mut self,
        mem: &mut impl PageTableMemory,
        mfn: Mfn,
        dom: DomId,
        want: FrameType,
    ) -> Result<(), PageError> {
        self.get_page(mfn, dom)?;
        let frame = self.frame(mfn)?;
        if want.level().is_some() && frame.owner != Owner::Domain(dom) {
            let owner = frame.owner;
            self.put_page(mfn);
            return Err(PageError::NotOwner { mfn, owner });
        }
        if frame.type_count > 0 {
            if frame.ty != want {
                let have = frame.ty;
                self.put_page(mfn);
                return Err(PageError::TypeConflict { mfn, have, want });
            }
            frame.type_count += 1;
            return Ok(());
        }
        if let Some(level) = want.level() {
            if let Err(e) = self.validate(mem, mfn, dom, level) {
                self.put_page(mfn);
                return Err(e);
            }
            // The tree may reference this very frame (say an L4 entry that
            // points back at the L4): validation then typed it already.
            let have = self.frame(mfn)?.ty;
            if have != FrameType::None {
                self.devalidate(mem, mfn, level);
                self.put_page(mfn);
                return Err(PageError::TypeConflict { mfn, have, want });
            }
        }
        let frame = self.frame(mfn)?;
        frame.ty = want;
        frame.type_count = 1;
        Ok(())
    }

    /// Drops a type reference (and its plain reference); the last one of a
    /// page table releases what its entries hold.
    pub fn put_page_type(&mut self, mem: &mut impl PageTableMemory, mfn: Mfn) {
        let Ok(frame) = self.frame(mfn) else { return };
        debug_assert!(
            frame.type_count > 0,
            "put_page_type on untyped frame {mfn:#x}"
        );
        frame.type_count = frame.type_count.saturating_sub(1);
        if frame.type_count == 0 {
            let ty = frame.ty;
            frame.ty = FrameType::None;
            if let Some(level) = ty.level() {
                self.devalidate(mem, mfn, level);
            }
        }
        self.put_page(mfn);
    }

    /// Releases every reference the entries of a level table hold.
    fn devalidate(&mut self, mem: &mut impl PageTableMemory, mfn: Mfn, level: u8) {
        for index in Self::guest_slots(level) {
            self.put_entry(mem, mem.read_entry(mfn, index), level);
        }
    }

    fn guest_slots(level: u8) -> impl Iterator<Item = usize> {
        (0..ENTRIES).filter(move |i| level != 4 || !HYPERVISOR_L4_SLOTS.contains(i))
    }

    /// Takes the references one entry of a level-`level` table needs.
    fn get_entry(
        &mut self,
        mem: &mut impl PageTableMemory,
        table: Mfn,
        entry: u64,
        dom: DomId,
        level: u8,
    ) -> Result<(), PageError> {
        if entry & PRESENT == 0 {
            return Ok(());
        }
        if level > 1 && entry & PAGE_SIZE_BIT != 0 {
            return Err(PageError::Superpage(table));
        }
        let target = entry_mfn(entry);
        match level {
            1 if entry & WRITABLE != 0 => self.get_page_type(mem, target, dom, FrameType::Writable),
            1 => self.get_page(target, dom),
            _ => self.get_page_type(mem, target, dom, FrameType::table(level - 1)),
        }
    }

    fn put_entry(&mut self, mem: &mut impl PageTableMemory, entry: u64, level: u8) {
        if entry & PRESENT == 0 {
            return;
        }
        let target = entry_mfn(entry);
        if level == 1 && entry & WRITABLE == 0 {
            self.put_page(target);
        } else {
            self.put_page_type(mem, target);
        }
    }

    fn validate(
        &mut self,
        mem: &mut impl PageTableMemory,
        mfn: Mfn,
        dom: DomId,
        level: u8,
    ) -> Result<(), PageError> {
        for index in Self::guest_slots(level) {
            let entry = mem.read_entry(mfn, index);
            if let Err(e) = self.get_entry(mem, mfn, entry, dom, level) {
                // Undo the entries already taken.
                for undo in Self::guest_slots(level).take_while(|&i| i < index) {
                    self.put_entry(mem, mem.read_entry(mfn, undo), level);
                }
                return Err(e);
            }
            if adjust_entry(entry) != entry {
                mem.write_entry(mfn, index, adjust_entry(entry));
            }
        }
        if level == 4 {
            mem.install_hypervisor_slots(mfn);
        }
        Ok(())
    }

    /// `MMUEXT_PIN_Ln_TABLE`: validate and hold `mfn` as a level table.
    pub fn pin(
        &mut self,
        mem: &mut impl PageTableMemory,
        mfn: Mfn,
        dom: DomId,
        ty: FrameType,
    ) -> Result<(), PageError> {
        let frame = self.owned_frame(mfn, dom)?;
        if frame.pinned {
            return Err(PageError::PinState(mfn));
        }
        self.get_page_type(mem, mfn, dom, ty)?;
        self.frame(mfn)?.pinned = true;
        Ok(())
    }

    /// `MMUEXT_UNPIN_TABLE`.
    pub fn unpin(
        &mut self,
        mem: &mut impl PageTableMemory,
        mfn: Mfn,
        dom: DomId,
    ) -> Result<(), PageError> {
        let frame = self.owned_frame(mfn, dom)?;
        if !frame.pinned {
            return Err(PageError::PinState(mfn));
        }
        frame.pinned = false;
        self.put_page_type(mem, mfn);
        Ok(())
    }

    /// `MMU_NORMAL_PT_UPDATE`: writes `value` into entry `index` of the
    /// page table `table` (which `dom` owns and which is typed as a table),
    /// taking the new entry's references before dropping the old one's.
    pub fn update_entry(
        &mut self,
        mem: &mut impl PageTableMemory,
        table: Mfn,
        index: usize,
        value: u64,
        dom: DomId,
    ) -> Result<(), PageError> {
        self.update_entry_for(mem, table, index, value, dom, dom)
    }

    /// [`Self::update_entry`] where an L1 entry maps a frame of `pg_owner`
    /// (Xen's foreign mapping: dom0 building a domain, or a granted frame);
    /// `dom` still owns the table.
    pub fn update_entry_for(
        &mut self,
        mem: &mut impl PageTableMemory,
        table: Mfn,
        index: usize,
        value: u64,
        dom: DomId,
        pg_owner: DomId,
    ) -> Result<(), PageError> {
        let frame = *self.owned_frame(table, dom)?;
        let Some(level) = frame.ty.level().filter(|_| frame.type_count > 0) else {
            return Err(PageError::TypeConflict {
                mfn: table,
                have: frame.ty,
                want: FrameType::L1,
            });
        };
        if level == 4 && HYPERVISOR_L4_SLOTS.contains(&index) {
            return Err(PageError::HypervisorSlot {
                mfn: table,
                slot: index,
            });
        }
        let old = mem.read_entry(table, index);
        let target_owner = if level == 1 { pg_owner } else { dom };
        self.get_entry(mem, table, value, target_owner, level)?;
        mem.write_entry(table, index, adjust_entry(value));
        self.put_entry(mem, old, level);
        Ok(())
    }

    /// The first frame at or above `from` that `owner` holds.
    pub fn next_of(&self, owner: Owner, from: Mfn) -> Option<Mfn> {
        let start = usize::try_from(from).ok()?.min(self.frames.len());
        self.frames[start..]
            .iter()
            .position(|f| f.owner == owner)
            .map(|i| (start + i) as Mfn)
    }

    /// Takes a frame back from its owner once nothing references it.
    pub fn release(&mut self, mfn: Mfn) -> Result<(), PageError> {
        let frame = self.frame(mfn)?;
        if frame.ref_count != 0 {
            return Err(PageError::TypeConflict {
                mfn,
                have: frame.ty,
                want: FrameType::None,
            });
        }
        *frame = FrameInfo::FREE;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const DOM: DomId = 1;
    const OTHER: DomId = 2;

    #[derive(Default)]
    struct Memory(HashMap<(Mfn, usize), u64>);

    impl PageTableMemory for Memory {
        fn read_entry(&self, mfn: Mfn, index: usize) -> u64 {
            self.0.get(&(mfn, index)).copied().unwrap_or(0)
        }
        fn write_entry(&mut self, mfn: Mfn, index: usize, value: u64) {
            self.0.insert((mfn, index), value);
        }
        fn install_hypervisor_slots(&mut self, l4: Mfn) {
            for slot in HYPERVISOR_L4_SLOTS {
                self.0.insert((l4, slot), HV_ENTRY);
            }
        }
    }

    /// What the test memory writes into the hypervisor slots.
    const HV_ENTRY: u64 = 0x5_5000 | PRESENT;

    fn pte(mfn: Mfn, writable: bool) -> u64 {
        mfn << 12 | PRESENT | if writable { WRITABLE } else { 0 }
    }

    /// 64 frames: 0-39 owned by DOM, 40-49 by OTHER, 50-59 hypervisor.
    fn setup(storage: &mut Vec<FrameInfo>) -> FrameTable<'_> {
        storage.resize(64, FrameInfo::FREE);
        let mut table = FrameTable::new(storage);
        for mfn in 0..40 {
            table.assign(mfn, Owner::Domain(DOM)).unwrap();
        }
        for mfn in 40..50 {
            table.assign(mfn, Owner::Domain(OTHER)).unwrap();
        }
        for mfn in 50..60 {
            table.assign(mfn, Owner::Hypervisor).unwrap();
        }
        table
    }

    /// L4 (1) -> L3 (2) -> L2 (3) -> L1 (4) -> data 10 (rw), 11 (ro).
    fn tree(mem: &mut Memory) {
        mem.write_entry(1, 0, pte(2, true));
        mem.write_entry(2, 0, pte(3, true));
        mem.write_entry(3, 0, pte(4, true));
        mem.write_entry(4, 0, pte(10, true));
        mem.write_entry(4, 1, pte(11, false));
    }

    fn all_released(table: &FrameTable) -> bool {
        (0..64).all(|m| {
            let f = table.info(m).unwrap();
            f.ref_count == 0 && f.type_count == 0 && f.ty == FrameType::None
        })
    }

    #[test]
    fn pinning_an_l4_validates_the_whole_tree_and_unpinning_releases_it() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        tree(&mut mem);
        table.pin(&mut mem, 1, DOM, FrameType::L4).unwrap();
        assert_eq!(table.info(1).unwrap().ty, FrameType::L4);
        assert_eq!(table.info(2).unwrap().ty, FrameType::L3);
        assert_eq!(table.info(3).unwrap().ty, FrameType::L2);
        assert_eq!(table.info(4).unwrap().ty, FrameType::L1);
        assert_eq!(table.info(10).unwrap().ty, FrameType::Writable);
        assert_eq!(table.info(11).unwrap().ty, FrameType::None);
        assert_eq!(table.info(11).unwrap().ref_count, 1);
        table.unpin(&mut mem, 1, DOM).unwrap();
        assert!(all_released(&table));
    }

    #[test]
    fn a_page_table_can_never_be_mapped_writable() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        tree(&mut mem);
        table.pin(&mut mem, 1, DOM, FrameType::L4).unwrap();
        // Map the L1 table itself writable through its own L1.
        let err = table
            .update_entry(&mut mem, 4, 2, pte(4, true), DOM)
            .unwrap_err();
        assert_eq!(
            err,
            PageError::TypeConflict {
                mfn: 4,
                have: FrameType::L1,
                want: FrameType::Writable
            }
        );
        // Read-only is fine (Xen allows guests to read their tables).
        table
            .update_entry(&mut mem, 4, 2, pte(4, false), DOM)
            .unwrap();
        assert_eq!(mem.read_entry(4, 2), adjust_entry(pte(4, false)));
    }

    #[test]
    fn a_writable_frame_cannot_become_a_page_table() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        tree(&mut mem);
        table.pin(&mut mem, 1, DOM, FrameType::L4).unwrap();
        let err = table.pin(&mut mem, 10, DOM, FrameType::L1).unwrap_err();
        assert!(matches!(err, PageError::TypeConflict { mfn: 10, .. }));
        assert!(!table.info(10).unwrap().pinned);
    }

    #[test]
    fn frames_of_others_and_of_the_hypervisor_are_refused() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        tree(&mut mem);
        table.pin(&mut mem, 1, DOM, FrameType::L4).unwrap();
        let before: Vec<_> = (0..64).map(|m| table.info(m).unwrap().ref_count).collect();
        for (target, owner) in [
            (41, Owner::Domain(OTHER)),
            (55, Owner::Hypervisor),
            (63, Owner::Free),
        ] {
            for writable in [false, true] {
                let err = table
                    .update_entry(&mut mem, 4, 5, pte(target, writable), DOM)
                    .unwrap_err();
                assert_eq!(err, PageError::NotOwner { mfn: target, owner });
            }
        }
        let err = table
            .update_entry(&mut mem, 4, 5, pte(1000, false), DOM)
            .unwrap_err();
        assert_eq!(err, PageError::NoSuchFrame(1000));
        let after: Vec<_> = (0..64).map(|m| table.info(m).unwrap().ref_count).collect();
        assert_eq!(before, after);
        assert_eq!(mem.read_entry(4, 5), 0);
    }

    #[test]
    fn a_foreign_mapping_holds_the_frame_until_unmapped() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        tree(&mut mem);
        table.pin(&mut mem, 1, DOM, FrameType::L4).unwrap();
        // DOM maps OTHER's frame 41 writable on OTHER's behalf; only L1
        // targets may be foreign.
        table
            .update_entry_for(&mut mem, 4, 5, pte(41, true), DOM, OTHER)
            .unwrap();
        assert_eq!(table.info(41).unwrap().ty, FrameType::Writable);
        assert!(table.release(41).is_err());
        // Writable elsewhere: OTHER cannot make it a page table.
        assert!(matches!(
            table.pin(&mut mem, 41, OTHER, FrameType::L1),
            Err(PageError::TypeConflict { .. })
        ));
        table
            .update_entry_for(&mut mem, 4, 5, 0, DOM, OTHER)
            .unwrap();
        table.pin(&mut mem, 41, OTHER, FrameType::L1).unwrap();
        table.unpin(&mut mem, 41, OTHER).unwrap();
        table.release(41).unwrap();
        assert_eq!(table.info(41).unwrap().owner, Owner::Free);
        assert_eq!(table.next_of(Owner::Domain(OTHER), 41), Some(42));
        assert_eq!(table.next_of(Owner::Domain(OTHER), 50), None);
        // A foreign upper-level entry is still refused.
        assert!(matches!(
            table.update_entry_for(&mut mem, 3, 7, pte(42, true), DOM, OTHER),
            Err(PageError::NotOwner { mfn: 42, .. })
        ));
    }

    #[test]
    fn another_domain_cannot_touch_the_tables() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        tree(&mut mem);
        table.pin(&mut mem, 1, DOM, FrameType::L4).unwrap();
        assert!(matches!(
            table.update_entry(&mut mem, 4, 3, pte(41, true), OTHER),
            Err(PageError::NotOwner { mfn: 4, .. })
        ));
        assert!(matches!(
            table.unpin(&mut mem, 1, OTHER),
            Err(PageError::NotOwner { .. })
        ));
        assert!(matches!(
            table.pin(&mut mem, 1, OTHER, FrameType::L4),
            Err(PageError::NotOwner { .. })
        ));
    }

    #[test]
    fn hypervisor_slots_are_the_hypervisors() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        tree(&mut mem);
        // Whatever the guest left in a hypervisor slot is neither validated
        // (frame 5 gains no reference) nor kept.
        mem.write_entry(1, 256, pte(5, true));
        table.pin(&mut mem, 1, DOM, FrameType::L4).unwrap();
        assert_eq!(table.info(5).unwrap().ref_count, 0);
        for slot in HYPERVISOR_L4_SLOTS {
            assert_eq!(mem.read_entry(1, slot), HV_ENTRY);
        }
        assert_eq!(
            table.update_entry(&mut mem, 1, 271, pte(6, false), DOM),
            Err(PageError::HypervisorSlot { mfn: 1, slot: 271 })
        );
    }

    #[test]
    fn a_shared_page_maps_writable_but_never_becomes_a_page_table() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        table.assign(12, Owner::SharedWith(DOM)).unwrap();
        let mut mem = Memory::default();
        tree(&mut mem);
        table.pin(&mut mem, 1, DOM, FrameType::L4).unwrap();
        table
            .update_entry(&mut mem, 4, 3, pte(12, true), DOM)
            .unwrap();
        assert_eq!(
            table.update_entry(&mut mem, 3, 1, pte(12, false), DOM),
            Err(PageError::NotOwner {
                mfn: 12,
                owner: Owner::SharedWith(DOM)
            })
        );
        assert_eq!(
            table.pin(&mut mem, 12, DOM, FrameType::L1),
            Err(PageError::NotOwner {
                mfn: 12,
                owner: Owner::SharedWith(DOM)
            })
        );
        // Another domain cannot map it at all.
        assert!(table.get_page(12, OTHER).is_err());
    }

    #[test]
    fn guest_entries_are_stored_user_and_not_global() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        tree(&mut mem);
        mem.write_entry(4, 5, pte(12, false) | GLOBAL);
        table.pin(&mut mem, 1, DOM, FrameType::L4).unwrap();
        assert_eq!(mem.read_entry(4, 5), pte(12, false) | USER);
        assert_eq!(mem.read_entry(1, 0), pte(2, true) | USER);
        table
            .update_entry(&mut mem, 4, 6, pte(13, true) | GLOBAL, DOM)
            .unwrap();
        assert_eq!(mem.read_entry(4, 6), pte(13, true) | USER);
        // Not-present entries are stored as given.
        table
            .update_entry(&mut mem, 4, 7, 0x1234_0000, DOM)
            .unwrap();
        assert_eq!(mem.read_entry(4, 7), 0x1234_0000);
    }

    #[test]
    fn a_failed_validation_takes_no_references() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        tree(&mut mem);
        mem.write_entry(4, 7, pte(12, true));
        mem.write_entry(4, 9, pte(45, false)); // OTHER's frame, after good entries
        assert!(matches!(
            table.pin(&mut mem, 1, DOM, FrameType::L4),
            Err(PageError::NotOwner { mfn: 45, .. })
        ));
        assert!(all_released(&table));
    }

    #[test]
    fn a_table_that_references_itself_is_refused() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        mem.write_entry(1, 0, pte(1, false));
        assert!(matches!(
            table.pin(&mut mem, 1, DOM, FrameType::L4),
            Err(PageError::TypeConflict { mfn: 1, .. })
        ));
        assert!(all_released(&table));
    }

    #[test]
    fn superpages_are_refused() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        mem.write_entry(3, 0, pte(4, true) | PAGE_SIZE_BIT);
        assert_eq!(
            table.pin(&mut mem, 3, DOM, FrameType::L2),
            Err(PageError::Superpage(3))
        );
        assert!(all_released(&table));
    }

    #[test]
    fn pins_are_not_doubled_and_unpin_needs_a_pin() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        table.pin(&mut mem, 4, DOM, FrameType::L1).unwrap();
        assert_eq!(
            table.pin(&mut mem, 4, DOM, FrameType::L1),
            Err(PageError::PinState(4))
        );
        table.unpin(&mut mem, 4, DOM).unwrap();
        assert_eq!(table.unpin(&mut mem, 4, DOM), Err(PageError::PinState(4)));
        assert!(all_released(&table));
    }

    /// Random updates, pins and unpins by a guest that tries everything:
    /// the table never lets a frame be a page table and writable at once,
    /// counts stay consistent, and tearing down releases every reference.
    #[test]
    fn random_sequences_keep_the_invariants() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _round in 0..40 {
            let mut storage = Vec::new();
            let mut table = setup(&mut storage);
            let mut mem = Memory::default();
            let mut pinned = Vec::new();
            for _ in 0..400 {
                let mfn = next(64);
                match next(4) {
                    0 => {
                        let ty = FrameType::table(next(4) as u8 + 1);
                        if table.pin(&mut mem, mfn, DOM, ty).is_ok() {
                            pinned.push(mfn);
                        }
                    }
                    1 if !pinned.is_empty() => {
                        let at = next(pinned.len() as u64) as usize;
                        table.unpin(&mut mem, pinned.swap_remove(at), DOM).unwrap();
                    }
                    _ => {
                        let index =
                            next(ENTRIES as u64) as usize % 8 + if next(8) == 0 { 256 } else { 0 };
                        let value = if next(5) == 0 {
                            0
                        } else {
                            pte(next(64), next(2) == 0)
                        };
                        let _ = table.update_entry(&mut mem, mfn, index, value, DOM);
                    }
                }
                for m in 0..64 {
                    let f = table.info(m).unwrap();
                    assert!(
                        f.ref_count >= f.type_count,
                        "frame {m}: refs {} < type refs {}",
                        f.ref_count,
                        f.type_count
                    );
                    assert_eq!(
                        f.type_count == 0,
                        f.ty == FrameType::None,
                        "frame {m}: {f:?}"
                    );
                    if f.owner != Owner::Domain(DOM) {
                        assert_eq!(f.ref_count, 0, "foreign frame {m} referenced");
                    }
                }
            }
            for mfn in pinned.drain(..) {
                table.unpin(&mut mem, mfn, DOM).unwrap();
            }
            assert!(all_released(&table), "references leaked after teardown");
        }
    }
}
