//! Page tables: `mmu_update`, `mmuext_op`, `update_va_mapping`.
//!
//! Every write to a guest page table goes through the frame table, which
//! decides whether the new entry is allowed (see `hv_core::frame_table`).
//!
//! TLB safety: a frame must never stay writable through a stale TLB entry
//! once it has become a page table. Like Xen, hv-core leaves flushing after
//! an ordinary update to the guest (it asks with `UVMF_*` or `MMUEXT_*`),
//! but remembers that some present L1 entry changed (`STALE`) and flushes
//! before anything that can give a frame a page-table type: pinning, a new
//! base pointer, or an update of an L2-L4 entry. The reverse (a table
//! devalidated, so it may become writable) only happens when an L2-L4
//! entry changes, a table is unpinned or a base pointer replaced, and each
//! of those flushes at once. (A release the budget cuts short goes on in
//! later operations, but the tables it releases were unlinked, and the
//! translations through them flushed, when it began.)
//!
//! Preemption: pins, upper-level updates and base-pointer changes validate
//! (and releases devalidate) whole subtrees, so they spend the hypercall's
//! budget per entry visited (`super::with_budget`). When it runs out the
//! frame table keeps the partial work and answers `Preempted`, which
//! becomes `Errno::Restart` here, never seen by the guest: a batch
//! continues from the same request (`MMU_UPDATE_PREEMPTED`, `done` counting
//! only completed requests), a single call is re-issued as it was.

use core::sync::atomic::{AtomicBool, Ordering};

use abi::Errno;
use abi::xen::{
    MMU_MACHPHYS_UPDATE, MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_PRESERVE_AD, MMUEXT_INVLPG_ALL,
    MMUEXT_INVLPG_LOCAL, MMUEXT_INVLPG_MULTI, MMUEXT_NEW_BASEPTR, MMUEXT_NEW_USER_BASEPTR,
    MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE,
    MMUEXT_SET_LDT, MMUEXT_TLB_FLUSH_ALL, MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_TLB_FLUSH_MULTI,
    MMUEXT_UNPIN_TABLE, UVMF_FLUSHTYPE_MASK, UVMF_INVLPG, UVMF_TLB_FLUSH,
};
use hv_core::frame_table::{FrameType, Mfn, Owner, PageError, PageTableMemory, Progress};
use hv_core::layout::{HOLE_END, HOLE_START};

use zerocopy::{FromBytes, IntoBytes};

use crate::arch::pv::{self, MachinePageTables};
use crate::{domain, guest, memory};

const PRESENT: u64 = 1;
const PAGE_SIZE_BIT: u64 = 1 << 7;

/// Xen's `MMU_UPDATE_PREEMPTED`: set in `count` of a resumed batch.
const PREEMPTED: u32 = 1 << 31;

/// Some present entry changed since the last flush.
static STALE: AtomicBool = AtomicBool::new(false);

/// Flushes if a changed entry may still be cached, before a frame can
/// become a page table.
pub(super) fn flush_if_stale() {
    if STALE.swap(false, Ordering::SeqCst) {
        pv::flush_tlb_local();
    }
}

fn refused(e: PageError) -> Errno {
    if let PageError::Preempted(_) = e {
        return Errno::Restart;
    }
    log::debug!("d{}: page-table request refused: {e}", domain::current_id());
    Errno::Inval
}

/// Finishes devalidation work `dom`'s earlier requests left (see
/// `FrameTable::finish_deferred`) before a request that may need the frames
/// it holds; `Errno::Restart` when the budget runs out first.
fn finish_deferred(dom: u16) -> Result<(), Errno> {
    let mut mem = MachinePageTables;
    memory::with_frame_table(|ft| super::with_budget(|b| ft.finish_deferred(&mut mem, dom, b)))
        .map_err(refused)
}

fn write_entry(table: Mfn, index: usize, value: u64, dom: u16) -> Result<bool, Errno> {
    write_entry_for(table, index, value, dom, dom)
}

/// Writes `value` into entry `index` of `table`: through the frame table
/// when `table` is a page table, as plain memory when it is an ordinary
/// page of the domain (Xen allows both). An L1 entry may map a frame of
/// `pg_owner` (foreign mappings, grants); `dom` owns the table. Returns
/// whether a present entry changed (so its translation must be flushed).
/// An L2-L4 entry may end in `Errno::Restart` (its subtree's validation
/// ran out of budget): the caller repeats the request.
pub(super) fn write_entry_for(
    table: Mfn,
    index: usize,
    value: u64,
    dom: u16,
    pg_owner: u16,
) -> Result<bool, Errno> {
    let mut mem = MachinePageTables;
    memory::with_frame_table(|ft| {
        let info = *ft.info(table).ok_or(Errno::Inval)?;
        if info.owner != Owner::Domain(dom) {
            return Err(refused(PageError::NotOwner {
                mfn: table,
                owner: info.owner,
            }));
        }
        let old = mem.read_entry(table, index);
        let is_table = matches!(
            info.ty,
            FrameType::L1 | FrameType::L2 | FrameType::L3 | FrameType::L4
        ) && info.type_count > 0;
        if is_table && info.ty != FrameType::L1 {
            // The new entry may validate (type) further tables.
            flush_if_stale();
        }
        if is_table {
            super::with_budget(|b| {
                ft.update_entry_within(&mut mem, table, index, value, dom, pg_owner, b)
            })
            .map_err(refused)?;
        } else if pg_owner != dom {
            // Only a page table can hold a foreign mapping safely.
            return Err(Errno::Inval);
        } else {
            mem.write_entry(table, index, value);
        }
        let changed = is_table && old & PRESENT != 0;
        if changed && info.ty != FrameType::L1 {
            // Dropping an upper-level entry may have devalidated tables
            // below it, which the guest may now map writable: no cached
            // walk through them may survive.
            STALE.store(false, Ordering::SeqCst);
            pv::flush_tlb_local();
        } else if changed {
            STALE.store(true, Ordering::SeqCst);
        }
        Ok(changed)
    })
}

/// The arguments `mmu_update` and `mmuext_op` share: an array of
/// requests, its length, where to write how many were done, and the domain
/// they act on.
#[derive(Clone, Copy, Debug)]
pub struct Batch {
    base: u64,
    count: u32,
    done: u64,
    foreigndom: u16,
}

impl Batch {
    pub fn decode(base: u64, count: u64, done: u64, foreigndom: u64) -> Self {
        Self {
            base,
            count: count as u32,
            done,
            foreigndom: foreigndom as u16,
        }
    }

    /// Applies `each` to the requests in order, stopping at the first
    /// error, and reports how many succeeded (if the guest asked).
    fn run<T: FromBytes + IntoBytes>(
        self,
        mut each: impl FnMut(T, u16) -> Result<(), Errno>,
    ) -> Result<i64, Errno> {
        // Xen's `pg_owner`: whose frames the requests map or pin.
        let pg_owner = domain::resolve(self.foreigndom)?;
        let size = core::mem::size_of::<T>() as u64;
        // A batch resumed after preemption carries Xen's flag in `count`
        // and adds to the `done` the earlier part wrote.
        let resumed = self.count & PREEMPTED != 0;
        let count = self.count & !PREEMPTED;
        let mut done = if resumed && self.done != 0 {
            guest::read::<u32>(self.done)?
        } else {
            0
        };
        let mut result = Ok(0);
        for i in 0..count as u64 {
            if !super::spend() {
                if self.done != 0 {
                    guest::write(self.done, &done)?;
                }
                let rest = (count as u64 - i) | PREEMPTED as u64;
                let next = self.base.wrapping_add(i * size);
                super::continue_with([next, rest, self.done, self.foreigndom as u64, 0, 0]);
                return Ok(0);
            }
            let step = guest::read::<T>(self.base.wrapping_add(i * size))
                .map_err(Errno::from)
                .and_then(|req| each(req, pg_owner));
            if step == Err(Errno::Restart) {
                // The request ran out of budget part-way: it is not done,
                // and the batch resumes with it.
                if self.done != 0 {
                    guest::write(self.done, &done)?;
                }
                let rest = (count as u64 - i) | PREEMPTED as u64;
                let next = self.base.wrapping_add(i * size);
                super::continue_with([next, rest, self.done, self.foreigndom as u64, 0, 0]);
                return Ok(0);
            }
            if let Err(e) = step {
                result = Err(e);
                break;
            }
            done += 1;
        }
        if self.done != 0 {
            guest::write(self.done, &done)?;
        }
        result
    }

    /// `mmu_update(reqs, count, done, foreigndom)`.
    pub fn mmu_update(self) -> Result<i64, Errno> {
        let caller = domain::current_id();
        let result = self.run(|req, pg_owner| mmu_update_one(req, caller, pg_owner));
        // dom0 unmapping its window may release a dying domain (one load
        // when none is dying).
        crate::lifecycle::reap_all();
        result
    }

    /// `mmuext_op(ops, count, done, foreigndom)`.
    pub fn mmuext_op(self) -> Result<i64, Errno> {
        self.run(one_ext)
    }
}

/// One `mmu_update` request; page tables are the caller's, mapped frames
/// and M2P entries `pg_owner`'s.
fn mmu_update_one(req: abi::xen::MmuUpdate, caller: u16, pg_owner: u16) -> Result<(), Errno> {
    let dom = pg_owner;
    match req.ptr & 3 {
        MMU_NORMAL_PT_UPDATE | MMU_PT_UPDATE_PRESERVE_AD => {
            let table = req.ptr >> 12;
            let index = ((req.ptr & 0xfff) >> 3) as usize;
            // Tables an earlier request is still releasing may be what
            // this one maps.
            finish_deferred(caller)?;
            write_entry_for(table, index, req.val, caller, pg_owner).map(drop)
        }
        MMU_MACHPHYS_UPDATE => {
            let mfn = req.ptr >> 12;
            let owned = memory::with_frame_table(|ft| {
                ft.info(mfn).is_some_and(|f| f.owner == Owner::Domain(dom))
            });
            if !owned || !memory::set_m2p(mfn, req.val) {
                return Err(Errno::Inval);
            }
            Ok(())
        }
        _ => Err(Errno::NoSys),
    }
}

#[derive(Clone, Copy, Debug)]
pub struct UpdateVaMapping {
    pub va: u64,
    pub pte: u64,
    pub flags: u64,
}

/// Whether `mfn` is an L1 page table of `owner` in use (typed), the only
/// kind of table a single mapping may be written into.
pub(super) fn is_live_l1(mfn: Mfn, owner: u16) -> bool {
    memory::with_frame_table(|ft| {
        ft.info(mfn).is_some_and(|f| {
            f.owner == Owner::Domain(owner)
                && f.ty == FrameType::L1
                && f.type_count > 0
                && f.progress == Progress::Complete
        })
    })
}

/// The L1 table and index that map `va` in the tree rooted at `root`.
pub(super) fn l1_slot(root: Mfn, va: u64) -> Result<(Mfn, usize), Errno> {
    let mem = MachinePageTables;
    let mut table = root;
    for level in (2..=4).rev() {
        let index = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
        let entry = mem.read_entry(table, index);
        if entry & PRESENT == 0 || entry & PAGE_SIZE_BIT != 0 {
            return Err(Errno::Inval);
        }
        table = hv_core::frame_table::entry_mfn(entry);
    }
    Ok((table, ((va >> 12) & 511) as usize))
}

impl UpdateVaMapping {
    pub fn handle(self) -> Result<i64, Errno> {
        if !pv::is_canonical(self.va) || (HOLE_START..HOLE_END).contains(&self.va) {
            return Err(Errno::Inval);
        }
        let dom = domain::current_id();
        match finish_deferred(dom) {
            Err(Errno::Restart) => {
                super::restart();
                return Ok(0);
            }
            other => other?,
        }
        let root = domain::with_current(|d| d.vcpus[0].current_root());
        let (l1, index) = l1_slot(root, self.va)?;
        if !is_live_l1(l1, dom) {
            return Err(Errno::Inval);
        }
        write_entry(l1, index, self.pte, dom)?;
        match self.flags & UVMF_FLUSHTYPE_MASK {
            UVMF_TLB_FLUSH => {
                STALE.store(false, Ordering::SeqCst);
                pv::flush_tlb_local();
            }
            UVMF_INVLPG => pv::invlpg(self.va),
            _ => {}
        }
        Ok(0)
    }
}

fn one_ext(op: abi::xen::MmuextOp, dom: u16) -> Result<(), Errno> {
    let mut mem = MachinePageTables;
    let mut pin = |ty| {
        flush_if_stale();
        memory::with_frame_table(|ft| {
            super::with_budget(|b| ft.pin_within(&mut mem, op.arg1, dom, ty, b))
        })
        .map_err(refused)
    };
    match op.cmd {
        MMUEXT_PIN_L1_TABLE => pin(FrameType::L1),
        MMUEXT_PIN_L2_TABLE => pin(FrameType::L2),
        MMUEXT_PIN_L3_TABLE => pin(FrameType::L3),
        MMUEXT_PIN_L4_TABLE => pin(FrameType::L4),
        MMUEXT_UNPIN_TABLE => {
            memory::with_frame_table(|ft| {
                super::with_budget(|b| ft.unpin_within(&mut mem, op.arg1, dom, b))
            })
            .map_err(refused)?;
            // The tree may have been live: drop translations through it.
            pv::flush_tlb_local();
            Ok(())
        }
        MMUEXT_NEW_BASEPTR | MMUEXT_NEW_USER_BASEPTR if dom != domain::current_id() => {
            Err(Errno::Inval)
        }
        MMUEXT_NEW_BASEPTR => new_baseptr(op.arg1, dom, false),
        MMUEXT_NEW_USER_BASEPTR => new_baseptr(op.arg1, dom, true),
        MMUEXT_TLB_FLUSH_LOCAL | MMUEXT_TLB_FLUSH_MULTI | MMUEXT_TLB_FLUSH_ALL => {
            STALE.store(false, Ordering::SeqCst);
            pv::flush_tlb_local();
            Ok(())
        }
        MMUEXT_INVLPG_LOCAL | MMUEXT_INVLPG_MULTI | MMUEXT_INVLPG_ALL => {
            pv::invlpg(op.arg1);
            Ok(())
        }
        // nr_ents is a 32-bit field in Xen's union.
        MMUEXT_SET_LDT => set_ldt(op.arg1, op.arg2 & 0xffff_ffff, dom),
        _ => Err(Errno::NoSys),
    }
}

/// The most LDT entries Xen accepts (a full 64 KiB table).
const MAX_LDT_ENTRIES: u64 = 8192;

/// `MMUEXT_SET_LDT(linear_addr, nr_ents)`, Xen's argument checks. Only the
/// null LDT (no entries) is offered: every CPU runs with it from boot and
/// no vCPU can have another, so a switch has no LDT to load. Linux sets
/// the null LDT on every switch to a task without one, so this must be
/// accepted; a real LDT (which needs its frames typed as descriptor pages
/// and each descriptor checked, as Xen does) is refused by name.
fn set_ldt(linear_addr: u64, entries: u64, dom: u16) -> Result<(), Errno> {
    if dom != domain::current_id() {
        return Err(Errno::Perm);
    }
    let base = if entries == 0 { 0 } else { linear_addr };
    if base % 4096 != 0 || !pv::guest_range_ok(base, 4096) || entries > MAX_LDT_ENTRIES {
        return Err(Errno::Inval);
    }
    if entries == 0 {
        Ok(())
    } else {
        Err(Errno::OpNotSupp)
    }
}

/// Makes `mfn` the vCPU's kernel (or user) page-table root, holding an L4
/// type reference on it for as long as it is the root.
fn new_baseptr(mfn: Mfn, dom: u16, user: bool) -> Result<(), Errno> {
    let mut mem = MachinePageTables;
    flush_if_stale();
    if !(user && mfn == 0) {
        memory::with_frame_table(|ft| {
            super::with_budget(|b| ft.get_page_type_within(&mut mem, mfn, dom, FrameType::L4, b))
        })
        .map_err(refused)?;
    }
    let (old, load) = domain::with_current(|d| {
        let vcpu = &mut d.vcpus[0];
        if user {
            let old = vcpu.user_root.take();
            vcpu.user_root = (mfn != 0).then_some(mfn);
            (old, !vcpu.kernel_mode)
        } else {
            let old = core::mem::replace(&mut vcpu.kernel_root, mfn);
            ((old != 0).then_some(old), vcpu.kernel_mode)
        }
    });
    if load {
        pv::load_page_table_root(domain::with_current(|d| d.vcpus[0].current_root()));
    }
    if let Some(old) = old {
        memory::with_frame_table(|ft| {
            super::with_budget(|b| ft.put_page_type_within(&mut mem, old, b))
        });
        // The old tree may have been devalidated (see `write_entry`).
        pv::flush_tlb_local();
    }
    Ok(())
}
