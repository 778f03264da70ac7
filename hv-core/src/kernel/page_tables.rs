//! The page-table service: the mechanism every handler that writes a guest
//! page-table entry shares (`mmu_update`, `update_va_mapping`, grant map and
//! unmap, `setvcpucontext`, teardown). Handlers call it, never each other.
//!
//! Every write goes through the frame table, which decides whether the new
//! entry is allowed (see `hv_core::frame_table`). Each check and the write
//! it guards happen in one frame-table critical section, so nothing can
//! change the table between them.
//!
//! TLB safety: a frame must never stay writable through a stale TLB entry
//! once it has become a page table. Like Xen, hv-core leaves flushing after
//! an ordinary update to the guest (it asks with `UVMF_*` or `MMUEXT_*`),
//! but remembers that some present L1 entry changed ([`STALE`]) and
//! flushes ([`flush_if_stale`]) before anything that can give a frame a
//! page-table type: pinning, a new base pointer, a vCPU context, or an
//! update of an L2-L4 entry. The reverse (a table devalidated, so it may
//! become writable) only happens when an L2-L4 entry changes, a table is
//! unpinned or a base pointer replaced, and each of those flushes at once
//! ([`flush_all`]). (A release the budget cuts short goes on in later
//! operations, but the tables it releases were unlinked, and the
//! translations through them flushed, when it began.)
//!
//! On several CPUs both flushes are shootdowns: every CPU's TLB, waited
//! for (`percpu::flush_other_cpus`). A stale entry may sit on any CPU (a
//! vCPU of the same domain elsewhere, or dom0 having mapped the frame),
//! and `STALE` is one clock for all of them (`hv_core::flush_clock`): a
//! completed flush that started after a change promises that no CPU holds
//! an entry from before it. The guest's own flush requests concern its own
//! translations, which only CPUs with its tables loaded may cache (guest
//! entries are never global, and loading another root flushes them):
//! `*_LOCAL` flushes this CPU, `*_ALL`/`*_MULTI` those CPUs too
//! (`percpu::flush_cpus_of`), and neither touches `STALE`.

use abi::Errno;
use abi::xen::DomId;
use hv_core::flush_clock::FlushClock;
use hv_core::frame_table::{
    Budget, FrameTable, FrameType, L1Slot, Mfn, Owner, PageError, PageTableMemory, entry_mfn,
};

use crate::arch::pv::{self, MachinePageTables};
use crate::{domain, memory};

use abi::pte::{HUGE, PRESENT};

/// Present entries changed, against the last completed flush.
static STALE: FlushClock = FlushClock::new();

/// Flushes if a changed entry may still be cached, before a frame can
/// become a page table.
pub fn flush_if_stale() {
    STALE.flush_if_owed(flush_every_cpu);
}

/// Flushes every non-global translation on every CPU: nothing cached
/// anywhere is stale after it.
pub fn flush_all() {
    STALE.flush_now(flush_every_cpu);
}

/// The guest's `MMUEXT_INVLPG_MULTI/ALL`, `UVMF_INVLPG | UVMF_ALL` on the
/// tables of `dom`: `va` here, and a whole flush on the other CPUs that
/// have `dom`'s (or the caller's) tables loaded (they may run its other
/// vCPUs).
pub fn invlpg_all(va: u64, dom: DomId) {
    pv::invlpg(va);
    flush_cpus_of_both(dom);
}

/// The guest's `MMUEXT_TLB_FLUSH_MULTI/ALL`, `UVMF_TLB_FLUSH | UVMF_ALL`
/// on the tables of `dom`: this CPU and the others that have `dom`'s (or
/// the caller's) tables loaded. Those translations only: the stale-entry
/// clock (which may concern other domains' CPUs, through foreign
/// mappings) is left as it is.
pub fn flush_domain(dom: DomId) {
    pv::flush_tlb_local();
    flush_cpus_of_both(dom);
}

fn flush_cpus_of_both(dom: DomId) {
    let caller = domain::current_id();
    crate::arch::percpu::flush_cpus_of(dom);
    if caller != dom {
        crate::arch::percpu::flush_cpus_of(caller);
    }
}

fn flush_every_cpu() {
    pv::flush_tlb_local();
    crate::arch::percpu::flush_other_cpus();
}

/// What a refused frame-table request becomes for the guest: budget
/// exhaustion is `Errno::Restart` (never seen by the guest, the request is
/// repeated), anything else `Errno::Inval`.
pub fn refused(e: PageError) -> Errno {
    if let PageError::Preempted(_) = e {
        return Errno::Restart;
    }
    log::debug!("d{}: page-table request refused: {e}", domain::current_id());
    Errno::Inval
}

/// The L1 entry that maps `va` in the tree rooted at `root`, which must be
/// a live L1 table of `dom`.
pub fn l1_slot(root: Mfn, va: u64, dom: u16) -> Result<L1Slot, Errno> {
    let mem = MachinePageTables;
    memory::with_frame_table(|ft| {
        let mut table = root;
        for level in (2..=4).rev() {
            let index = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
            let entry = mem.read_entry(table, index);
            if entry & PRESENT == 0 || entry & HUGE != 0 {
                return Err(Errno::Inval);
            }
            table = entry_mfn(entry);
        }
        if !ft.is_live_table(table, FrameType::L1, dom) {
            return Err(Errno::Inval);
        }
        Ok(L1Slot {
            table,
            index: ((va >> 12) & 511) as usize,
        })
    })
}

/// Writes `pte` into `slot` of `dom`'s L1 table, mapping a frame of
/// `pg_owner`, if the table is still a live L1 of `dom`.
pub fn install_l1(dom: u16, slot: L1Slot, pte: u64, pg_owner: u16) -> Result<(), Errno> {
    memory::with_frame_table(|ft| {
        if !ft.is_live_table(slot.table, FrameType::L1, dom) {
            return Err(Errno::Inval);
        }
        write_entry_locked(ft, slot.table, slot.index, pte, dom, pg_owner).map(drop)
    })
}

/// Clears `slot` of `dom`'s L1 table if that table is still a live L1 and
/// the entry still maps `expected` (a frame of `pg_owner`); flushes then,
/// since the table may be linked at several addresses. Returns whether
/// the entry was cleared: if not, the reference it held is already gone
/// (entry overwritten, or table devalidated).
pub fn clear_l1(dom: u16, slot: L1Slot, expected: Mfn, pg_owner: u16) -> Result<bool, Errno> {
    let cleared = memory::with_frame_table(|ft| {
        if !ft.is_live_table(slot.table, FrameType::L1, dom) {
            return Ok(false);
        }
        let entry = MachinePageTables.read_entry(slot.table, slot.index);
        if entry & PRESENT == 0 || entry_mfn(entry) != expected {
            return Ok(false);
        }
        write_entry_locked(ft, slot.table, slot.index, 0, dom, pg_owner).map(|_| true)
    })?;
    if cleared {
        flush_all();
    }
    Ok(cleared)
}

/// Writes `value` into entry `index` of `table`: through the frame table
/// when `table` is a page table, as plain memory when it is an ordinary
/// page of the domain (Xen allows both). An L1 entry may map a frame of
/// `pg_owner` (foreign mappings, grants); `dom` owns the table. Returns
/// whether a present entry changed (so its translation must be flushed).
/// Devalidation work `dom`'s earlier requests left (see
/// `FrameTable::finish_deferred`) is finished first, in the same
/// critical section, since the tables it releases may be what this entry
/// maps. That work or an L2-L4 entry may end in `Errno::Restart` (the
/// budget ran out): the caller repeats the request. Inside the caller's
/// frame-table critical section (`mmu_update` holds it for a chunk of
/// requests).
#[inline(always)]
pub fn write_entry_in(
    ft: &mut FrameTable,
    table: Mfn,
    index: usize,
    value: u64,
    dom: u16,
    pg_owner: u16,
) -> Result<bool, Errno> {
    if ft.has_deferred_work() {
        crate::hypercall::with_budget(|b| ft.finish_deferred(&mut MachinePageTables, dom, b))
            .map_err(refused)?;
    }
    write_entry_locked(ft, table, index, value, dom, pg_owner)
}

/// [`write_entry_in`] without the deferred work.
fn write_entry_locked(
    ft: &mut FrameTable,
    table: Mfn,
    index: usize,
    value: u64,
    dom: u16,
    pg_owner: u16,
) -> Result<bool, Errno> {
    let mut mem = MachinePageTables;
    let info = *ft.info(table).ok_or(Errno::Inval)?;
    if info.owner != Owner::Domain(dom) {
        // Checked here too because an ordinary page is written below
        // without the frame table.
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
    if is_table && info.ty == FrameType::L1 {
        // An L1 entry validates nothing (it maps a data frame), so it
        // spends no budget: none to account for.
        ft.update_entry_within(
            &mut mem,
            table,
            index,
            value,
            dom,
            pg_owner,
            &mut Budget::unlimited(),
        )
        .map_err(refused)?;
    } else if is_table {
        crate::hypercall::with_budget(|b| {
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
        flush_all();
    } else if changed {
        STALE.mark();
    }
    Ok(changed)
}
