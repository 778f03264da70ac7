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
//! - A not-present entry may only hold an address no L1TF-affected CPU
//!   could find in its L1 data cache ([`NotPresentRule`], Xen's XSA-273
//!   rule), and, above L1, no PSE bit.
//!
//! (De)validation is preemptible, as Xen's partial validation is: every
//! entry visited costs one unit of a [`Budget`], and when it runs out the
//! frame keeps its place ([`Progress`]) and the caller gets
//! [`PageError::Preempted`] to resume later (a hypercall continuation).
//! Invariants of the partial states:
//! - A `Validating` frame already has its type, with one type reference
//!   and one plain reference that belong to the validation (whoever finishes
//!   it inherits them); entries before `next` hold their references, and
//!   with `child` entry `next` holds the partial reference of a child that
//!   is itself `Validating`. A validation no parent waits on (`nested`
//!   clear) may be continued by any request for the same type; a nested one
//!   only by its parent. Nothing else may use the frame meanwhile: no
//!   writable mapping (type conflict), no update of its entries, no other
//!   type, and it is a root or pinned only once complete.
//! - A `Devalidating` frame likewise keeps one type and one plain reference
//!   until entries before `next` (and, with `child`, the child at `next`)
//!   are released; then it has no type.
//! - A devalidation nothing above waits on (an unpin's, or the rollback of a
//!   refused validation) is *deferred*: recorded for its owner and finished,
//!   within budget, by [`FrameTable::finish_deferred`] before the owner's
//!   next page-table operation (Xen's `old_guest_table`).
//!
//! The logic is pure: page-table contents are read through
//! [`PageTableMemory`], so host tests run it over a map of fake frames.

use core::fmt;

use abi::pte::{ADDRESS_MASK, GLOBAL, HUGE, PRESENT, USER, WRITABLE};

/// A machine frame number.
pub type Mfn = u64;
pub use abi::xen::DomId;

pub use abi::pte::ENTRIES;

/// One entry of an L1 page table: where a single mapping lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L1Slot {
    pub table: Mfn,
    pub index: usize,
}

/// L4 slots reserved for the hypervisor (the PV64 hole, 256..272).
pub const HYPERVISOR_L4_SLOTS: core::ops::Range<usize> =
    crate::layout::l4_slot(crate::layout::HOLE_START)
        ..crate::layout::l4_slot(crate::layout::HOLE_END);
const _: () = assert!(HYPERVISOR_L4_SLOTS.start == 256 && HYPERVISOR_L4_SLOTS.end == 272);

/// Deferred devalidations the table can hold: one per domain at most in
/// practice (each operation finishes its owner's first), so this is
/// several times the domains hv-core runs.
const DEFERRED_SLOTS: usize = 64;

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

/// Where the (de)validation of a page-table frame stands (see the module
/// documentation for what each state holds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Not a page table, or one whose every entry is validated.
    Complete,
    /// Validation stopped before entry `next`.
    Validating {
        next: u16,
        child: bool,
        nested: bool,
    },
    /// Devalidation has entries before `next` left to release.
    Devalidating { next: u16, child: bool },
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
    pub progress: Progress,
}

impl FrameInfo {
    pub const FREE: Self = Self {
        owner: Owner::Free,
        ty: FrameType::None,
        type_count: 0,
        ref_count: 0,
        pinned: false,
        progress: Progress::Complete,
    };

    /// Whether hv-core may write the frame for a guest (a grant copy, the
    /// domain builder): it is not a page table, nor on its way to or from
    /// being one, so the write cannot bypass validation.
    pub fn may_be_written(&self) -> bool {
        self.type_count == 0 || self.ty == FrameType::Writable
    }
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
    /// A not-present entry whose address (or PSE bit) an L1TF-affected CPU
    /// would follow speculatively.
    UnsafeNotPresent { table: Mfn, entry: u64 },
    /// The frame is partially validated or being released, and cannot be
    /// used until that work is done.
    InProgress(Mfn),
    /// Not a refusal: the budget ran out in the (de)validation of this
    /// frame, which resumes when the operation is repeated.
    Preempted(Mfn),
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
            Self::UnsafeNotPresent { table, entry } => write!(
                f,
                "not-present entry {entry:#x} in frame {table:#x} holds an L1TF-unsafe address"
            ),
            Self::InProgress(m) => {
                write!(f, "frame {m:#x} is being validated or released")
            }
            Self::Preempted(m) => write!(f, "work on frame {m:#x} preempted, to be resumed"),
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

/// How many page-table entries a (de)validation may still visit before it
/// must stop and let the CPU go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    left: u64,
}

impl Budget {
    pub const fn new(entries: u64) -> Self {
        Self { left: entries }
    }

    /// No limit: for work done before any domain runs (building dom0) or
    /// for dom0's trusted requests that have no continuation.
    pub const fn unlimited() -> Self {
        Self { left: u64::MAX }
    }

    pub const fn left(&self) -> u64 {
        self.left
    }

    fn take(&mut self) -> bool {
        let ok = self.left > 0;
        self.left = self.left.saturating_sub(1);
        ok
    }
}

/// Which not-present entries a guest may store (L1TF, Xen's
/// `is_l1tf_safe_maddr`): an L1TF-affected CPU looks up the address of a
/// not-present entry in its L1 data cache, so the address must be zero
/// (frame 0 holds nothing secret) or above any cacheable memory. As Xen
/// does when the cache's address width is that of CPUID, the safe limit is
/// the top quarter of the physical address space, and the address is
/// taken within that width. Linux's L1TF mitigation inverts the address
/// bits of its swap and PROT_NONE entries, which puts them there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotPresentRule {
    mask: u64,
    limit: u64,
}

impl NotPresentRule {
    /// The rule for a CPU with `bits` physical address bits (CPUID
    /// 0x80000008), clamped to what x86-64 allows.
    pub const fn for_address_bits(bits: u32) -> Self {
        let bits = if bits < 32 {
            32
        } else if bits > 52 {
            52
        } else {
            bits
        };
        Self {
            mask: ((1u64 << bits) - 1) & !0xfff,
            limit: 3u64 << (bits - 2),
        }
    }

    /// Whether a not-present entry at `level` may hold `entry`. PSE counts
    /// even in a not-present entry (the CPU may treat it as a superpage),
    /// at every level above 1.
    pub const fn allows(self, level: u8, entry: u64) -> bool {
        if level > 1 && entry & HUGE != 0 {
            return false;
        }
        let address = entry & self.mask;
        address == 0 || address >= self.limit
    }
}

/// A guest-supplied entry as it is stored: user-accessible, never global.
pub const fn adjust_entry(entry: u64) -> u64 {
    if entry & PRESENT == 0 {
        entry
    } else {
        (entry | USER) & !GLOBAL
    }
}

pub const fn entry_mfn(entry: u64) -> Mfn {
    (entry & ADDRESS_MASK) >> 12
}

/// How a step of (de)validation ended when it did not succeed.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// The budget ran out; the frame named resumes from where it stopped,
    /// and the entry that asked for it holds its partial reference.
    Preempted(Mfn),
    /// Refused; nothing is held for the entry.
    Refused(PageError),
    /// Refused inside the table the entry was validating: the entry's
    /// reference now belongs to that table's devalidation.
    Aborted(PageError),
}

/// The frame table over frames `0..len`, stored in caller-provided memory.
pub struct FrameTable<'a> {
    frames: &'a mut [FrameInfo],
    not_present: NotPresentRule,
    /// Devalidations left for their owner's next operation.
    deferred: [Option<(DomId, Mfn)>; DEFERRED_SLOTS],
    /// The occupied slots of `deferred`: every budgeted operation asks
    /// whether its domain has work waiting, and the answer is nearly
    /// always no, which this says without a walk over the slots.
    deferred_count: usize,
}

impl<'a> FrameTable<'a> {
    /// A table with every frame free, allowing only not-present entries
    /// safe on any CPU until [`Self::set_not_present_rule`].
    pub fn new(storage: &'a mut [FrameInfo]) -> Self {
        storage.fill(FrameInfo::FREE);
        Self {
            frames: storage,
            not_present: NotPresentRule::for_address_bits(52),
            deferred: [None; DEFERRED_SLOTS],
            deferred_count: 0,
        }
    }

    /// The rule for not-present entries, for this machine's CPU.
    pub fn set_not_present_rule(&mut self, rule: NotPresentRule) {
        self.not_present = rule;
    }

    pub fn info(&self, mfn: Mfn) -> Option<&FrameInfo> {
        self.frames.get(mfn as usize)
    }

    /// Whether `mfn` is a page table of type `ty` that `owner` has in use:
    /// typed, referenced and fully validated (what CR3 may hold, for an
    /// L4, and what a single mapping may be written into, for an L1).
    pub fn is_live_table(&self, mfn: Mfn, ty: FrameType, owner: DomId) -> bool {
        self.info(mfn).is_some_and(|f| {
            f.owner == Owner::Domain(owner)
                && f.ty == ty
                && f.type_count > 0
                && f.progress == Progress::Complete
        })
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

    fn set_progress(&mut self, mfn: Mfn, progress: Progress) {
        if let Ok(frame) = self.frame(mfn) {
            frame.progress = progress;
        }
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
        frame.progress = Progress::Complete;
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

    /// [`Self::get_page_type_within`] with no budget limit.
    pub fn get_page_type(
        &mut self,
        mem: &mut impl PageTableMemory,
        mfn: Mfn,
        dom: DomId,
        want: FrameType,
    ) -> Result<(), PageError> {
        self.get_page_type_within(mem, mfn, dom, want, &mut Budget::unlimited())
    }

    /// Takes a reference on `mfn` as type `want` for `dom`, validating it
    /// (recursively) if it becomes a page table now, or finishing its
    /// unfinished validation. `Preempted` leaves the work where it stopped
    /// for a repeat of the request; a refusal leaves the rollback of what
    /// was validated deferred.
    pub fn get_page_type_within(
        &mut self,
        mem: &mut impl PageTableMemory,
        mfn: Mfn,
        dom: DomId,
        want: FrameType,
        budget: &mut Budget,
    ) -> Result<(), PageError> {
        if want.level().is_some() {
            self.finish_deferred(mem, dom, budget)?;
        }
        self.take_type(mem, mfn, dom, want, false, budget)
            .map_err(|stop| self.top_level_stop(mem, dom, mfn, stop, budget))
    }

    /// What a request that is not part of a validation reports for `stop`
    /// on `mfn`: an aborted validation of `mfn` is deferred.
    fn top_level_stop(
        &mut self,
        mem: &mut impl PageTableMemory,
        dom: DomId,
        mfn: Mfn,
        stop: Stop,
        budget: &mut Budget,
    ) -> PageError {
        match stop {
            Stop::Preempted(at) => PageError::Preempted(at),
            Stop::Refused(e) => e,
            Stop::Aborted(e) => {
                self.defer(mem, dom, mfn, budget);
                e
            }
        }
    }

    /// Takes a type reference (and a plain one); `nested` when a table
    /// being validated asks for it.
    fn take_type(
        &mut self,
        mem: &mut impl PageTableMemory,
        mfn: Mfn,
        dom: DomId,
        want: FrameType,
        nested: bool,
        budget: &mut Budget,
    ) -> Result<(), Stop> {
        self.get_page(mfn, dom).map_err(Stop::Refused)?;
        let frame = self.frame(mfn).map_err(Stop::Refused)?;
        let refuse = |table: &mut Self, e| {
            table.put_page(mfn);
            Err(Stop::Refused(e))
        };
        if want.level().is_some() && frame.owner != Owner::Domain(dom) {
            let owner = frame.owner;
            return refuse(self, PageError::NotOwner { mfn, owner });
        }
        if frame.type_count == 0 {
            frame.ty = want;
            frame.type_count = 1;
            if want.level().is_none() {
                return Ok(());
            }
            frame.progress = Progress::Validating {
                next: 0,
                child: false,
                nested,
            };
            return self.validate(mem, mfn, dom, nested, budget);
        }
        if frame.ty != want {
            let have = frame.ty;
            return refuse(self, PageError::TypeConflict { mfn, have, want });
        }
        match frame.progress {
            Progress::Complete => match frame.type_count.checked_add(1) {
                Some(count) => {
                    frame.type_count = count;
                    Ok(())
                }
                None => refuse(self, PageError::Overflow(mfn)),
            },
            Progress::Validating { nested: false, .. } => {
                // Take over the unfinished validation and the references
                // it holds: the one just taken is not needed.
                self.put_page(mfn);
                self.validate(mem, mfn, dom, nested, budget)
            }
            _ => refuse(self, PageError::InProgress(mfn)),
        }
    }

    fn guest_slot(level: u8, index: usize) -> bool {
        level != 4 || !HYPERVISOR_L4_SLOTS.contains(&index)
    }

    /// Continues the validation of `mfn` (which is `Validating`). On a
    /// refusal the frame turns `Devalidating` and `Aborted` is returned:
    /// the caller holds it through its entry, or defers it.
    fn validate(
        &mut self,
        mem: &mut impl PageTableMemory,
        mfn: Mfn,
        dom: DomId,
        nested: bool,
        budget: &mut Budget,
    ) -> Result<(), Stop> {
        let info = self.frames[mfn as usize];
        let Some(level) = info.ty.level() else {
            return Ok(());
        };
        let Progress::Validating {
            mut next,
            mut child,
            ..
        } = info.progress
        else {
            return Ok(());
        };
        loop {
            let index = usize::from(next);
            if child {
                let target = entry_mfn(mem.read_entry(mfn, index));
                match self.validate(mem, target, dom, true, budget) {
                    Ok(()) => child = false,
                    Err(Stop::Preempted(at)) => {
                        self.set_progress(
                            mfn,
                            Progress::Validating {
                                next,
                                child,
                                nested,
                            },
                        );
                        return Err(Stop::Preempted(at));
                    }
                    Err(Stop::Refused(e) | Stop::Aborted(e)) => {
                        self.set_progress(mfn, Progress::Devalidating { next, child });
                        return Err(Stop::Aborted(e));
                    }
                }
            } else if index >= ENTRIES {
                break;
            } else if Self::guest_slot(level, index) {
                if !budget.take() {
                    self.set_progress(
                        mfn,
                        Progress::Validating {
                            next,
                            child,
                            nested,
                        },
                    );
                    return Err(Stop::Preempted(mfn));
                }
                let entry = mem.read_entry(mfn, index);
                match self.get_entry(mem, mfn, entry, dom, level, true, budget) {
                    Ok(()) => {}
                    Err(Stop::Preempted(at)) => {
                        self.set_progress(
                            mfn,
                            Progress::Validating {
                                next,
                                child: true,
                                nested,
                            },
                        );
                        return Err(Stop::Preempted(at));
                    }
                    Err(stop @ (Stop::Refused(e) | Stop::Aborted(e))) => {
                        let child = matches!(stop, Stop::Aborted(_));
                        self.set_progress(mfn, Progress::Devalidating { next, child });
                        return Err(Stop::Aborted(e));
                    }
                }
            } else {
                next += 1;
                continue;
            }
            let entry = mem.read_entry(mfn, index);
            if adjust_entry(entry) != entry {
                mem.write_entry(mfn, index, adjust_entry(entry));
            }
            next += 1;
        }
        if level == 4 {
            mem.install_hypervisor_slots(mfn);
        }
        self.set_progress(mfn, Progress::Complete);
        Ok(())
    }

    /// Takes the references one entry of a level-`level` table needs;
    /// `nested` when the entry is part of a validation.
    #[allow(clippy::too_many_arguments)]
    fn get_entry(
        &mut self,
        mem: &mut impl PageTableMemory,
        table: Mfn,
        entry: u64,
        dom: DomId,
        level: u8,
        nested: bool,
        budget: &mut Budget,
    ) -> Result<(), Stop> {
        if entry & PRESENT == 0 {
            if self.not_present.allows(level, entry) {
                return Ok(());
            }
            return Err(Stop::Refused(PageError::UnsafeNotPresent { table, entry }));
        }
        if level > 1 && entry & HUGE != 0 {
            return Err(Stop::Refused(PageError::Superpage(table)));
        }
        let target = entry_mfn(entry);
        match level {
            1 if entry & WRITABLE != 0 => {
                self.take_type(mem, target, dom, FrameType::Writable, nested, budget)
            }
            1 => self.get_page(target, dom).map_err(Stop::Refused),
            _ => self.take_type(
                mem,
                target,
                dom,
                FrameType::table(level - 1),
                nested,
                budget,
            ),
        }
    }

    /// Drops a type reference and its plain reference, except the last of
    /// a page table: that one turns the frame `Devalidating` (keeping both
    /// references until it is done) and `true` says the caller must drive
    /// that.
    fn drop_type(&mut self, mfn: Mfn) -> bool {
        let Ok(frame) = self.frame(mfn) else {
            return false;
        };
        debug_assert!(
            frame.type_count > 0,
            "type reference dropped on untyped frame {mfn:#x}"
        );
        if frame.type_count == 1 && frame.ty.level().is_some() {
            debug_assert_eq!(frame.progress, Progress::Complete);
            frame.progress = Progress::Devalidating {
                next: ENTRIES as u16,
                child: false,
            };
            return true;
        }
        frame.type_count = frame.type_count.saturating_sub(1);
        if frame.type_count == 0 {
            frame.ty = FrameType::None;
        }
        self.put_page(mfn);
        false
    }

    /// Releases what one entry of a level-`level` table holds; `true` if
    /// that started the devalidation of the table it references.
    fn put_entry(&mut self, entry: u64, level: u8) -> bool {
        if entry & PRESENT == 0 {
            return false;
        }
        let target = entry_mfn(entry);
        if level == 1 && entry & WRITABLE == 0 {
            self.put_page(target);
            false
        } else {
            self.drop_type(target)
        }
    }

    /// Continues the devalidation of `mfn` (which is `Devalidating`, or
    /// `Validating` and abandoned); when done the frame has no type and its
    /// last references are gone. Stops only with `Preempted`.
    fn devalidate(
        &mut self,
        mem: &mut impl PageTableMemory,
        mfn: Mfn,
        budget: &mut Budget,
    ) -> Result<(), Stop> {
        let info = self.frames[mfn as usize];
        let Some(level) = info.ty.level() else {
            return Ok(());
        };
        let (mut next, mut child) = match info.progress {
            Progress::Devalidating { next, child } | Progress::Validating { next, child, .. } => {
                (next, child)
            }
            Progress::Complete => return Ok(()),
        };
        loop {
            if child {
                let target = entry_mfn(mem.read_entry(mfn, usize::from(next)));
                if let Err(stop) = self.devalidate(mem, target, budget) {
                    self.set_progress(mfn, Progress::Devalidating { next, child });
                    return Err(stop);
                }
                child = false;
            }
            if next == 0 {
                break;
            }
            if !budget.take() {
                self.set_progress(mfn, Progress::Devalidating { next, child });
                return Err(Stop::Preempted(mfn));
            }
            next -= 1;
            if Self::guest_slot(level, usize::from(next)) {
                child = self.put_entry(mem.read_entry(mfn, usize::from(next)), level);
            }
        }
        let frame = &mut self.frames[mfn as usize];
        frame.progress = Progress::Complete;
        frame.ty = FrameType::None;
        frame.type_count = 0;
        self.put_page(mfn);
        Ok(())
    }

    /// Records the devalidation of `mfn` (owned by `dom`) for `dom`'s next
    /// operation, and goes on with it as far as `budget` allows.
    fn defer(&mut self, mem: &mut impl PageTableMemory, dom: DomId, mfn: Mfn, budget: &mut Budget) {
        match self.deferred.iter().position(Option::is_none) {
            Some(slot) => {
                self.deferred[slot] = Some((dom, mfn));
                self.deferred_count += 1;
                let _ = self.finish_deferred(mem, dom, budget);
            }
            // More domains with work left than slots: cannot happen with
            // hv-core's domain limit, and if it did, finishing at once is
            // correct, only not bounded.
            None => {
                let _ = self.devalidate(mem, mfn, &mut Budget::unlimited());
            }
        }
    }

    /// Whether any domain's devalidation work is waiting (one load: the
    /// answer on nearly every call is no).
    #[inline(always)]
    pub fn has_deferred_work(&self) -> bool {
        self.deferred_count != 0
    }

    /// Whether devalidation work of `dom`'s is waiting.
    pub fn has_deferred(&self, dom: DomId) -> bool {
        self.deferred_count != 0 && self.deferred.iter().flatten().any(|&(d, _)| d == dom)
    }

    /// Finishes the devalidations left for `dom` (an unpin or a dropped
    /// entry that ran out of budget, the rollback of a refused
    /// validation), within `budget`. Every budgeted operation on `dom`'s
    /// page tables calls this first; `Preempted` means it must be repeated.
    pub fn finish_deferred(
        &mut self,
        mem: &mut impl PageTableMemory,
        dom: DomId,
        budget: &mut Budget,
    ) -> Result<(), PageError> {
        if self.deferred_count == 0 {
            return Ok(());
        }
        while let Some(slot) = self
            .deferred
            .iter()
            .position(|d| matches!(d, Some((owner, _)) if *owner == dom))
        {
            let Some((_, mfn)) = self.deferred[slot] else {
                break;
            };
            if let Err(Stop::Preempted(at)) = self.devalidate(mem, mfn, budget) {
                return Err(PageError::Preempted(at));
            }
            self.deferred[slot] = None;
            self.deferred_count -= 1;
        }
        Ok(())
    }

    /// [`Self::put_page_type_within`] with no budget limit.
    pub fn put_page_type(&mut self, mem: &mut impl PageTableMemory, mfn: Mfn) {
        self.put_page_type_within(mem, mfn, &mut Budget::unlimited());
    }

    /// Drops a type reference (and its plain reference); the last one of a
    /// page table releases what its entries hold, as far as `budget` goes,
    /// and leaves the rest deferred to the owner's next operation.
    pub fn put_page_type_within(
        &mut self,
        mem: &mut impl PageTableMemory,
        mfn: Mfn,
        budget: &mut Budget,
    ) {
        let owner = match self.info(mfn).map(|f| f.owner) {
            Some(Owner::Domain(dom)) => Some(dom),
            _ => None,
        };
        if self.drop_type(mfn) {
            match owner {
                Some(dom) => self.defer(mem, dom, mfn, budget),
                None => {
                    let _ = self.devalidate(mem, mfn, &mut Budget::unlimited());
                }
            }
        }
    }

    /// [`Self::pin_within`] with no budget limit.
    pub fn pin(
        &mut self,
        mem: &mut impl PageTableMemory,
        mfn: Mfn,
        dom: DomId,
        ty: FrameType,
    ) -> Result<(), PageError> {
        self.pin_within(mem, mfn, dom, ty, &mut Budget::unlimited())
    }

    /// `MMUEXT_PIN_Ln_TABLE`: validate and hold `mfn` as a level table.
    /// The pin holds only once validation is complete.
    pub fn pin_within(
        &mut self,
        mem: &mut impl PageTableMemory,
        mfn: Mfn,
        dom: DomId,
        ty: FrameType,
        budget: &mut Budget,
    ) -> Result<(), PageError> {
        self.finish_deferred(mem, dom, budget)?;
        let frame = self.owned_frame(mfn, dom)?;
        if frame.pinned {
            return Err(PageError::PinState(mfn));
        }
        self.get_page_type_within(mem, mfn, dom, ty, budget)?;
        self.frame(mfn)?.pinned = true;
        Ok(())
    }

    /// [`Self::unpin_within`] with no budget limit.
    pub fn unpin(
        &mut self,
        mem: &mut impl PageTableMemory,
        mfn: Mfn,
        dom: DomId,
    ) -> Result<(), PageError> {
        self.unpin_within(mem, mfn, dom, &mut Budget::unlimited())
    }

    /// `MMUEXT_UNPIN_TABLE`. Done once the pin is dropped: a devalidation
    /// the budget does not cover is deferred (as Xen's `old_guest_table`).
    pub fn unpin_within(
        &mut self,
        mem: &mut impl PageTableMemory,
        mfn: Mfn,
        dom: DomId,
        budget: &mut Budget,
    ) -> Result<(), PageError> {
        self.finish_deferred(mem, dom, budget)?;
        let frame = self.owned_frame(mfn, dom)?;
        if !frame.pinned {
            return Err(PageError::PinState(mfn));
        }
        frame.pinned = false;
        self.put_page_type_within(mem, mfn, budget);
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

    /// [`Self::update_entry_within`] with no budget limit.
    pub fn update_entry_for(
        &mut self,
        mem: &mut impl PageTableMemory,
        table: Mfn,
        index: usize,
        value: u64,
        dom: DomId,
        pg_owner: DomId,
    ) -> Result<(), PageError> {
        let mut budget = Budget::unlimited();
        self.update_entry_within(mem, table, index, value, dom, pg_owner, &mut budget)
    }

    /// [`Self::update_entry`] where an L1 entry maps a frame of `pg_owner`
    /// (Xen's foreign mapping: dom0 building a domain, or a granted frame);
    /// `dom` still owns the table. The table must be completely validated.
    /// An L2-L4 entry validates the subtree it links within `budget`
    /// (`Preempted`: repeat the update to go on) and may leave the
    /// release of the one it unlinks deferred.
    #[allow(clippy::too_many_arguments)]
    pub fn update_entry_within(
        &mut self,
        mem: &mut impl PageTableMemory,
        table: Mfn,
        index: usize,
        value: u64,
        dom: DomId,
        pg_owner: DomId,
        budget: &mut Budget,
    ) -> Result<(), PageError> {
        let frame = *self.owned_frame(table, dom)?;
        let Some(level) = frame.ty.level().filter(|_| frame.type_count > 0) else {
            return Err(PageError::TypeConflict {
                mfn: table,
                have: frame.ty,
                want: FrameType::L1,
            });
        };
        if frame.progress != Progress::Complete {
            return Err(PageError::InProgress(table));
        }
        if level == 4 && HYPERVISOR_L4_SLOTS.contains(&index) {
            return Err(PageError::HypervisorSlot {
                mfn: table,
                slot: index,
            });
        }
        if level > 1 {
            self.finish_deferred(mem, dom, budget)?;
        }
        let old = mem.read_entry(table, index);
        let target_owner = if level == 1 { pg_owner } else { dom };
        if let Err(stop) = self.get_entry(mem, table, value, target_owner, level, false, budget) {
            return Err(self.top_level_stop(mem, dom, entry_mfn(value), stop, budget));
        }
        mem.write_entry(table, index, adjust_entry(value));
        if self.put_entry(old, level) {
            self.defer(mem, dom, entry_mfn(old), budget);
        }
        Ok(())
    }

    /// Drops every page-table reference `dom`'s own state holds (its pins,
    /// validations nobody finished, deferred work), within `budget`; the
    /// caller drops the vCPU roots first. `Preempted`: call again. Frames
    /// another domain still maps keep their plain references.
    pub fn release_tables(
        &mut self,
        mem: &mut impl PageTableMemory,
        dom: DomId,
        budget: &mut Budget,
    ) -> Result<(), PageError> {
        self.finish_deferred(mem, dom, budget)?;
        let mut next = 0;
        while let Some(mfn) = self.next_of(Owner::Domain(dom), next) {
            next = mfn + 1;
            let info = self.frames[mfn as usize];
            if info.pinned {
                self.frames[mfn as usize].pinned = false;
                self.put_page_type_within(mem, mfn, budget);
            } else if let Progress::Validating { nested: false, .. } = info.progress {
                // Its partial reference belongs to no one now.
                self.defer(mem, dom, mfn, budget);
            }
            self.finish_deferred(mem, dom, budget)?;
        }
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

    #[test]
    fn only_a_frame_with_no_page_table_type_may_be_written() {
        let with = |ty, type_count| FrameInfo {
            ty,
            type_count,
            ..FrameInfo::FREE
        };
        assert!(with(FrameType::None, 0).may_be_written());
        assert!(with(FrameType::Writable, 3).may_be_written());
        // A page table in use may not be; once its last type reference
        // is gone, it is plain memory again.
        assert!(!with(FrameType::L1, 1).may_be_written());
        assert!(with(FrameType::L4, 0).may_be_written());
    }

    const DOM: DomId = 1;
    const OTHER: DomId = 2;

    /// Fake page-table frames; counts the entries read, the measure of
    /// the work a (de)validation pass does.
    #[derive(Default)]
    struct Memory {
        entries: HashMap<(Mfn, usize), u64>,
        reads: core::cell::Cell<u64>,
    }

    impl PageTableMemory for Memory {
        fn read_entry(&self, mfn: Mfn, index: usize) -> u64 {
            self.reads.set(self.reads.get() + 1);
            self.entries.get(&(mfn, index)).copied().unwrap_or(0)
        }
        fn write_entry(&mut self, mfn: Mfn, index: usize, value: u64) {
            self.entries.insert((mfn, index), value);
        }
        fn install_hypervisor_slots(&mut self, l4: Mfn) {
            for slot in HYPERVISOR_L4_SLOTS {
                self.entries.insert((l4, slot), HV_ENTRY);
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
    fn a_live_table_is_typed_referenced_validated_and_the_owners() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        tree(&mut mem);
        assert!(
            !table.is_live_table(1, FrameType::L4, DOM),
            "not yet pinned"
        );
        table.pin(&mut mem, 1, DOM, FrameType::L4).unwrap();
        assert!(table.is_live_table(1, FrameType::L4, DOM));
        assert!(table.is_live_table(4, FrameType::L1, DOM));
        assert!(!table.is_live_table(1, FrameType::L1, DOM), "another type");
        assert!(
            !table.is_live_table(1, FrameType::L4, OTHER),
            "another owner"
        );
        assert!(!table.is_live_table(10, FrameType::L1, DOM), "plain memory");
        assert!(
            !table.is_live_table(999, FrameType::L4, DOM),
            "no such frame"
        );
        table.unpin(&mut mem, 1, DOM).unwrap();
        assert!(!table.is_live_table(1, FrameType::L4, DOM), "unpinned");
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
        // Safe not-present entries are stored as given, global bit and all
        // (Linux's PROT_NONE entries use it).
        let swap = (!0x5000 & ADDRESS_MASK) | GLOBAL;
        table.update_entry(&mut mem, 4, 7, swap, DOM).unwrap();
        assert_eq!(mem.read_entry(4, 7), swap);
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
        mem.write_entry(3, 0, pte(4, true) | HUGE);
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
        let mut next = crate::test_support::xorshift(0x2545_f491_4f6c_dd1du64);
        let mut foreign_maps = 0;
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
                        // One update in four maps a frame of OTHER's on
                        // its behalf (Xen's foreign pg_owner, as for grants).
                        let pg_owner = if next(4) == 0 { OTHER } else { DOM };
                        let value = if pg_owner == OTHER && value != 0 {
                            pte(40 + next(10), next(2) == 0)
                        } else {
                            value
                        };
                        let done =
                            table.update_entry_for(&mut mem, mfn, index, value, DOM, pg_owner);
                        if done.is_ok() && pg_owner == OTHER && value != 0 {
                            foreign_maps += 1;
                        }
                    }
                }
                for m in 40..64 {
                    assert_eq!(
                        table.info(m).unwrap().ref_count,
                        l1_references(&table, &mem, m),
                        "frame {m}: references other than from DOM's L1 entries"
                    );
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
                        assert!(
                            matches!(f.ty, FrameType::None | FrameType::Writable),
                            "foreign frame {m} typed {:?} by DOM",
                            f.ty
                        );
                    }
                }
            }
            for mfn in pinned.drain(..) {
                table.unpin(&mut mem, mfn, DOM).unwrap();
            }
            assert!(all_released(&table), "references leaked after teardown");
        }
        assert!(foreign_maps > 0, "no foreign mapping was ever made");
    }

    /// How many present entries of live (typed) L1 tables map `target`.
    fn l1_references(table: &FrameTable, mem: &Memory, target: Mfn) -> u32 {
        let live_l1 = |t: Mfn| {
            table
                .info(t)
                .is_some_and(|f| f.ty == FrameType::L1 && f.type_count > 0)
        };
        mem.entries
            .iter()
            .filter(|&(&(t, _), &v)| live_l1(t) && v & PRESENT != 0 && entry_mfn(v) == target)
            .count() as u32
    }

    // --- preemptible (de)validation ----------------------------------

    /// L3 (1) -> L2s (2, 3) -> 8 L1s each (4-11, 12-19); every L1 maps
    /// data frame 20 + its number mod 8, writable in even L1s, plus one
    /// read-only entry of frame 39. 9,216 entries to visit.
    fn big_tree(mem: &mut Memory) {
        mem.write_entry(1, 0, pte(2, true));
        mem.write_entry(1, 1, pte(3, true));
        for l1 in 4..20 {
            let l2 = if l1 < 12 { 2 } else { 3 };
            mem.write_entry(l2, (l1 as usize - 4) % 8 * 3, pte(l1, true));
            mem.write_entry(l1, 5, pte(20 + l1 % 8, l1 % 2 == 0));
            mem.write_entry(l1, 511, pte(39, false));
        }
    }

    /// Entries per pass in these tests.
    const PASS: u64 = 100;

    /// Repeats `op` with a fresh budget of `PASS` entries while it is
    /// preempted; checks that each pass reads a bounded number of entries
    /// and returns the final result and the number of passes.
    fn in_passes(
        mem: &mut Memory,
        mut op: impl FnMut(&mut Memory, &mut Budget) -> Result<(), PageError>,
    ) -> (Result<(), PageError>, u32) {
        for passes in 1..100_000 {
            let before = mem.reads.get();
            let result = op(mem, &mut Budget::new(PASS));
            let read = mem.reads.get() - before;
            // Each entry counted is read once, plus a re-read to adjust it
            // and one per level to find a child being resumed.
            assert!(read <= 2 * PASS + 8, "a pass read {read} entries");
            if !matches!(result, Err(PageError::Preempted(_))) {
                return (result, passes);
            }
        }
        panic!("never finished");
    }

    fn types(table: &FrameTable) -> Vec<(FrameType, u32, u32)> {
        (0..64)
            .map(|m| {
                let f = table.info(m).unwrap();
                (f.ty, f.type_count, f.ref_count)
            })
            .collect()
    }

    #[test]
    fn a_big_validation_runs_in_bounded_passes_and_ends_as_one_would() {
        let mut mem = Memory::default();
        big_tree(&mut mem);
        let mut storage = Vec::new();
        let mut whole = setup(&mut storage);
        whole.pin(&mut mem, 1, DOM, FrameType::L3).unwrap();
        let expected = types(&whole);

        let mut mem = Memory::default();
        big_tree(&mut mem);
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let (result, passes) = in_passes(&mut mem, |mem, budget| {
            table.pin_within(mem, 1, DOM, FrameType::L3, budget)
        });
        result.unwrap();
        assert!(passes > 80, "only {passes} passes for 9,216 entries");
        assert_eq!(types(&table), expected);
        assert!(table.info(1).unwrap().pinned);
        assert!((0..64).all(|m| table.info(m).unwrap().progress == Progress::Complete));

        // Unpinning is done at once; the release is deferred and finished
        // in bounded passes too.
        table
            .unpin_within(&mut mem, 1, DOM, &mut Budget::new(PASS))
            .unwrap();
        assert!(table.has_deferred(DOM));
        let (result, passes) = in_passes(&mut mem, |mem, budget| {
            table.finish_deferred(mem, DOM, budget)
        });
        result.unwrap();
        assert!(passes > 80, "only {passes} passes to release 9,216 entries");
        assert!(!table.has_deferred(DOM));
        assert!(all_released(&table));
    }

    #[test]
    fn a_bad_entry_found_midway_refuses_the_pin_and_rolls_everything_back() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        big_tree(&mut mem);
        mem.write_entry(19, 300, pte(45, false)); // OTHER's, in the last L1
        let (result, passes) = in_passes(&mut mem, |mem, budget| {
            table.pin_within(mem, 1, DOM, FrameType::L3, budget)
        });
        assert!(passes > 80);
        assert_eq!(
            result,
            Err(PageError::NotOwner {
                mfn: 45,
                owner: Owner::Domain(OTHER)
            })
        );
        assert!(!table.info(1).unwrap().pinned);
        // What was validated before the bad entry is released by the
        // domain's next operations, a pass at a time.
        assert!(table.has_deferred(DOM));
        let (result, passes) = in_passes(&mut mem, |mem, budget| {
            table.finish_deferred(mem, DOM, budget)
        });
        result.unwrap();
        assert!(passes > 80);
        assert!(all_released(&table));
        // Fixed, the same tree pins.
        mem.write_entry(19, 300, 0);
        table.pin(&mut mem, 1, DOM, FrameType::L3).unwrap();
    }

    #[test]
    fn the_next_operation_finishes_deferred_work_first() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        big_tree(&mut mem);
        table.pin(&mut mem, 1, DOM, FrameType::L3).unwrap();
        table.pin(&mut mem, 30, DOM, FrameType::L1).unwrap();
        table
            .unpin_within(&mut mem, 1, DOM, &mut Budget::new(PASS))
            .unwrap();
        // Until the release is done the L1s are still tables.
        assert_eq!(
            table.update_entry(&mut mem, 30, 0, pte(4, true), DOM),
            Err(PageError::TypeConflict {
                mfn: 4,
                have: FrameType::L1,
                want: FrameType::Writable
            })
        );
        // A pin, with a pass's budget, first works on the release.
        let (result, passes) = in_passes(&mut mem, |mem, budget| {
            table.pin_within(mem, 31, DOM, FrameType::L2, budget)
        });
        result.unwrap();
        assert!(passes > 80);
        assert!(!table.has_deferred(DOM));
        table
            .update_entry(&mut mem, 30, 0, pte(4, true), DOM)
            .unwrap();
    }

    #[test]
    fn a_partially_validated_tree_cannot_be_used_meanwhile() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        big_tree(&mut mem);
        table.pin(&mut mem, 30, DOM, FrameType::L1).unwrap();
        // 1,000 entries: L1 4 done, L1 5 half done, under L2 2.
        assert_eq!(
            table.pin_within(&mut mem, 1, DOM, FrameType::L3, &mut Budget::new(1000)),
            Err(PageError::Preempted(5))
        );
        let progress = |t: &FrameTable, m| t.info(m).unwrap().progress;
        assert!(matches!(
            progress(&table, 1),
            Progress::Validating {
                next: 0,
                child: true,
                nested: false
            }
        ));
        assert!(matches!(
            progress(&table, 2),
            Progress::Validating {
                child: true,
                nested: true,
                ..
            }
        ));
        assert_eq!(progress(&table, 4), Progress::Complete);

        // Not writable: neither the partial tables nor a finished L1.
        for mfn in [1, 2, 4, 5] {
            assert!(matches!(
                table.update_entry(&mut mem, 30, 9, pte(mfn, true), DOM),
                Err(PageError::TypeConflict {
                    want: FrameType::Writable,
                    ..
                })
            ));
        }
        // No other type, so never a root (an L4).
        assert!(matches!(
            table.get_page_type(&mut mem, 1, DOM, FrameType::L4),
            Err(PageError::TypeConflict { mfn: 1, .. })
        ));
        // No updates of its entries.
        assert_eq!(
            table.update_entry(&mut mem, 1, 7, 0, DOM),
            Err(PageError::InProgress(1))
        );
        assert_eq!(
            table.update_entry(&mut mem, 2, 7, 0, DOM),
            Err(PageError::InProgress(2))
        );
        // A table its parent is validating is not anyone else's to go on
        // with.
        assert_eq!(
            table.pin(&mut mem, 2, DOM, FrameType::L2),
            Err(PageError::InProgress(2))
        );
        assert_eq!(
            table.pin(&mut mem, 5, DOM, FrameType::L1),
            Err(PageError::InProgress(5))
        );
        // Not the owner's: another domain cannot even try.
        assert!(matches!(
            table.pin(&mut mem, 1, OTHER, FrameType::L3),
            Err(PageError::NotOwner { .. })
        ));

        // An L4 linking the L3 takes over its validation and finishes it;
        // the interrupted pin, repeated, then holds an ordinary reference.
        mem.write_entry(31, 0, pte(1, true));
        table.pin(&mut mem, 31, DOM, FrameType::L4).unwrap();
        assert_eq!(progress(&table, 1), Progress::Complete);
        assert_eq!(table.info(1).unwrap().type_count, 1);
        table.pin(&mut mem, 1, DOM, FrameType::L3).unwrap();
        assert_eq!(table.info(1).unwrap().type_count, 2);
        for mfn in [1, 31, 30] {
            table.unpin(&mut mem, mfn, DOM).unwrap();
        }
        assert!(all_released(&table));
    }

    #[test]
    fn a_second_pin_of_a_partially_validated_table_finishes_it() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        big_tree(&mut mem);
        assert!(matches!(
            table.pin_within(&mut mem, 1, DOM, FrameType::L3, &mut Budget::new(1000)),
            Err(PageError::Preempted(_))
        ));
        // Pinned from elsewhere (say the guest's event handler) meanwhile.
        table.pin(&mut mem, 1, DOM, FrameType::L3).unwrap();
        // The first pin, resumed, finds it pinned, as on Xen.
        assert_eq!(
            table.pin(&mut mem, 1, DOM, FrameType::L3),
            Err(PageError::PinState(1))
        );
        assert_eq!(table.info(1).unwrap().type_count, 1);
        table.unpin(&mut mem, 1, DOM).unwrap();
        assert!(all_released(&table));
    }

    #[test]
    fn an_upper_level_update_validates_and_releases_in_passes() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        big_tree(&mut mem);
        table.pin(&mut mem, 31, DOM, FrameType::L4).unwrap();
        let (result, passes) = in_passes(&mut mem, |mem, budget| {
            table.update_entry_within(mem, 31, 3, pte(1, true), DOM, DOM, budget)
        });
        result.unwrap();
        assert!(passes > 80);
        assert_eq!(table.info(1).unwrap().ty, FrameType::L3);
        assert_eq!(mem.read_entry(31, 3), adjust_entry(pte(1, true)));
        // Unlinking is done at once, the release deferred.
        table
            .update_entry_within(&mut mem, 31, 3, 0, DOM, DOM, &mut Budget::new(PASS))
            .unwrap();
        assert_eq!(mem.read_entry(31, 3), 0);
        let (result, _) = in_passes(&mut mem, |mem, budget| {
            table.finish_deferred(mem, DOM, budget)
        });
        result.unwrap();
        table.unpin(&mut mem, 31, DOM).unwrap();
        assert!(all_released(&table));
    }

    #[test]
    fn teardown_releases_partial_validations_and_deferred_work_in_passes() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        let mut mem = Memory::default();
        big_tree(&mut mem);
        // An abandoned pin of the L3, nested under an abandoned L4
        // validation, beside a complete pinned L1 and a deferred unpin.
        mem.write_entry(31, 0, pte(1, true));
        assert!(matches!(
            table.pin_within(&mut mem, 31, DOM, FrameType::L4, &mut Budget::new(3000)),
            Err(PageError::Preempted(_))
        ));
        table.pin(&mut mem, 32, DOM, FrameType::L1).unwrap();
        mem.write_entry(33, 0, pte(34, true));
        table.pin(&mut mem, 33, DOM, FrameType::L2).unwrap();
        table
            .unpin_within(&mut mem, 33, DOM, &mut Budget::new(1))
            .unwrap();
        let (result, passes) = in_passes(&mut mem, |mem, budget| {
            table.release_tables(mem, DOM, budget)
        });
        result.unwrap();
        assert!(passes > 20, "only {passes} passes");
        assert!(all_released(&table));
        assert!(!table.has_deferred(DOM));
        assert!(
            (0..64).all(|m| table.info(m).unwrap().progress == Progress::Complete
                && !table.info(m).unwrap().pinned)
        );
    }

    /// Random requests as in `random_sequences_keep_the_invariants`, each
    /// with a small random budget: a preempted one is repeated or, as a
    /// hostile guest may, abandoned. Counts stay consistent and teardown
    /// releases everything.
    #[test]
    fn random_preempted_sequences_keep_the_invariants() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut preempted = 0;
        for _round in 0..40 {
            let mut storage = Vec::new();
            let mut table = setup(&mut storage);
            let mut mem = Memory::default();
            big_tree(&mut mem);
            for _ in 0..300 {
                let mfn = next(40);
                let mut budget = Budget::new(next(700));
                let result = match next(4) {
                    0 => {
                        let ty = FrameType::table(next(4) as u8 + 1);
                        table.pin_within(&mut mem, mfn, DOM, ty, &mut budget)
                    }
                    1 => table.unpin_within(&mut mem, mfn, DOM, &mut budget),
                    _ => {
                        let index = next(8) as usize;
                        let value = match next(6) {
                            0 => 0,
                            1 => 0x1234_5000, // unsafe, not present
                            _ => pte(next(40), next(2) == 0),
                        };
                        table.update_entry_within(
                            &mut mem,
                            mfn,
                            index,
                            value,
                            DOM,
                            DOM,
                            &mut budget,
                        )
                    }
                };
                preempted += u32::from(matches!(result, Err(PageError::Preempted(_))));
                for m in 0..64 {
                    let f = table.info(m).unwrap();
                    assert!(f.ref_count >= f.type_count, "frame {m}: {f:?}");
                    assert_eq!(
                        f.type_count == 0,
                        f.ty == FrameType::None,
                        "frame {m}: {f:?}"
                    );
                    if f.progress != Progress::Complete {
                        assert_eq!(f.type_count, 1, "frame {m}: {f:?}");
                    }
                    if f.owner != Owner::Domain(DOM) {
                        assert_eq!(f.ref_count, 0, "foreign frame {m} referenced");
                    }
                }
            }
            let (result, _) = in_passes(&mut mem, |mem, budget| {
                table.release_tables(mem, DOM, budget)
            });
            result.unwrap();
            assert!(all_released(&table), "references leaked after teardown");
        }
        assert!(preempted > 100, "only {preempted} requests were preempted");
    }

    // --- not-present entries (L1TF) ------------------------------------

    #[test]
    fn the_not_present_rule_is_xens_for_the_cpus_address_width() {
        let rule = NotPresentRule::for_address_bits(40);
        // Zero, flag bits only, the top quarter, Linux's inverted entries.
        for entry in [0, 0x62, 3 << 38, (1 << 40) - 0x1000, !0x5000 & ADDRESS_MASK] {
            assert!(rule.allows(1, entry), "{entry:#x}");
        }
        // Memory below the top quarter, however high or low.
        for entry in [0x1000, 0x1234_5000, (3 << 38) - 0x1000, 1 << 39] {
            assert!(!rule.allows(1, entry), "{entry:#x}");
        }
        // Beyond the width only bits within it count (Xen's mask).
        assert!(rule.allows(1, 1 << 45));
        assert!(!rule.allows(1, 1 << 45 | 0x1000));
        // PSE is refused above L1 even with address zero; at L1 it is PAT.
        assert!(rule.allows(1, HUGE));
        for level in 2..=4 {
            assert!(!rule.allows(level, HUGE), "L{level}");
            assert!(!rule.allows(level, HUGE | !0x5000 & ADDRESS_MASK));
        }
    }

    #[test]
    fn unsafe_not_present_entries_are_refused_on_update_and_on_validation() {
        let mut storage = Vec::new();
        let mut table = setup(&mut storage);
        table.set_not_present_rule(NotPresentRule::for_address_bits(40));
        let mut mem = Memory::default();
        tree(&mut mem);
        table.pin(&mut mem, 1, DOM, FrameType::L4).unwrap();
        for (t, level) in [(4, 1), (3, 2), (2, 3), (1, 4)] {
            for entry in [10 << 12, 0x1234_5000 | WRITABLE, 55 << 12] {
                assert_eq!(
                    table.update_entry(&mut mem, t, 9, entry, DOM),
                    Err(PageError::UnsafeNotPresent { table: t, entry }),
                    "L{level}"
                );
                assert_eq!(mem.read_entry(t, 9), 0, "the refused entry is not stored");
            }
            let swap = !0x5000 & ADDRESS_MASK;
            table.update_entry(&mut mem, t, 9, swap, DOM).unwrap();
            assert_eq!(mem.read_entry(t, 9), swap);
            table.update_entry(&mut mem, t, 9, 0, DOM).unwrap();
        }
        assert_eq!(
            table.update_entry(&mut mem, 3, 9, HUGE, DOM),
            Err(PageError::UnsafeNotPresent {
                table: 3,
                entry: HUGE
            })
        );
        table.unpin(&mut mem, 1, DOM).unwrap();

        // A table that already holds one is not validated.
        mem.write_entry(4, 200, 11 << 12);
        assert_eq!(
            table.pin(&mut mem, 1, DOM, FrameType::L4),
            Err(PageError::UnsafeNotPresent {
                table: 4,
                entry: 11 << 12
            })
        );
        assert!(all_released(&table));
        mem.write_entry(4, 200, !0x5000 & ADDRESS_MASK);
        table.pin(&mut mem, 1, DOM, FrameType::L4).unwrap();
    }
}
