//! Page tables: `mmu_update`, `mmuext_op`, `update_va_mapping`.
//!
//! Every entry write goes through the page-table service
//! (`crate::page_tables`), which owns the frame-table checks and the TLB
//! staleness tracking.
//!
//! Preemption: pins, upper-level updates and base-pointer changes validate
//! (and releases devalidate) whole subtrees, so they spend the hypercall's
//! budget per entry visited (`super::with_budget`). When it runs out the
//! frame table keeps the partial work and answers `Preempted`, which
//! becomes `Errno::Restart` here, never seen by the guest: a batch
//! continues from the same request (`MMU_UPDATE_PREEMPTED`, `done` counting
//! only completed requests), a single call is re-issued as it was.

use abi::Errno;
use abi::xen::{
    MMU_MACHPHYS_UPDATE, MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_PRESERVE_AD, MMUEXT_INVLPG_ALL,
    MMUEXT_INVLPG_LOCAL, MMUEXT_INVLPG_MULTI, MMUEXT_NEW_BASEPTR, MMUEXT_NEW_USER_BASEPTR,
    MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE,
    MMUEXT_SET_LDT, MMUEXT_TLB_FLUSH_ALL, MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_TLB_FLUSH_MULTI,
    MMUEXT_UNPIN_TABLE, MmuUpdate, UVMF_FLUSHTYPE_MASK, UVMF_INVLPG, UVMF_TLB_FLUSH,
};
use hv_core::frame_table::{FrameTable, FrameType, Mfn, Owner};
use hv_core::layout::{HOLE_END, HOLE_START};

use zerocopy::{FromBytes, IntoBytes};

use crate::arch::pv::{self, MachinePageTables};
use crate::page_tables::{self, flush_if_stale, refused};
use crate::{domain, guest, memory};

/// Xen's `MMU_UPDATE_PREEMPTED`: set in `count` of a resumed batch.
const PREEMPTED: u32 = 1 << 31;

/// `mmu_update` requests copied in before one frame-table critical
/// section applies them.
const CHUNK: u64 = 16;

/// Finishes devalidation work `dom`'s earlier requests left (see
/// `FrameTable::finish_deferred`) before a request that may need the frames
/// it holds; `Errno::Restart` when the budget runs out first.
fn finish_deferred(dom: u16) -> Result<(), Errno> {
    let mut mem = MachinePageTables;
    memory::with_frame_table(|ft| super::with_budget(|b| ft.finish_deferred(&mut mem, dom, b)))
        .map_err(refused)
}

/// The arguments `mmu_update` and `mmuext_op` share: an array of
/// requests, its length, where to write how many were done, and the domain
/// they act on.
#[derive(Clone, Copy, Debug)]
pub struct Batch {
    pub base: u64,
    pub count: u32,
    pub done: u64,
    pub foreigndom: u16,
}

impl Batch {
    /// The requests this pass covers and the `done` count so far: a batch
    /// resumed after preemption carries Xen's flag in `count` and adds to
    /// the `done` the earlier part wrote.
    fn resume(self) -> Result<(u64, u32), Errno> {
        let resumed = self.count & PREEMPTED != 0;
        let done = if resumed && self.done != 0 {
            guest::read::<u32>(self.done)?
        } else {
            0
        };
        Ok((u64::from(self.count & !PREEMPTED), done))
    }

    /// The continuation's arguments: the rest of the `count` requests
    /// from request `i`, which is at `va`.
    fn rest(self, count: u64, i: u64, va: u64) -> [u64; 6] {
        let rest = (count - i) | u64::from(PREEMPTED);
        [va, rest, self.done, self.foreigndom.into(), 0, 0]
    }

    /// Writes how many requests succeeded, if the guest asked.
    fn report(self, done: u32) -> Result<(), Errno> {
        if self.done != 0 {
            guest::write(self.done, &done)?;
        }
        Ok(())
    }

    /// Applies `each` to the requests in order, stopping at the first
    /// error, and reports how many succeeded (if the guest asked).
    fn run<T: FromBytes + IntoBytes>(
        self,
        mut each: impl FnMut(T, u16) -> Result<(), Errno>,
    ) -> Result<i64, Errno> {
        // Xen's `pg_owner`: whose frames the requests map or pin.
        let pg_owner = domain::resolve(self.foreigndom)?;
        let (count, mut done) = self.resume()?;
        let requests = guest::GuestArray::<T>::new(self.base, count);
        let result = super::batch(
            requests,
            0,
            |_, at| {
                each(at.read()?, pg_owner)?;
                done += 1;
                Ok(super::Step::Next)
            },
            // The rest of the batch, from the request not done.
            |i, at| self.rest(count, i, at.va()),
        );
        self.report(done)?;
        result.map(|_| 0)
    }

    /// `mmu_update(reqs, count, done, foreigndom)`.
    ///
    /// The requests are copied in [`CHUNK`] at a time, outside the frame
    /// table's lock, and each chunk is applied in one critical section:
    /// the lock taken once per chunk rather than per entry, and never
    /// held across a guest copy (another CPU's page-table update waits at
    /// most one chunk). Results and continuations are the generic
    /// batch's (`hv_core::batch::run`): a request that cannot be read
    /// ends the batch with `-EFAULT` after the ones before it are done.
    pub fn mmu_update(self) -> Result<i64, Errno> {
        let caller = domain::current_id();
        // Resolved before the frame table's lock (domain locks first).
        let pg_owner = domain::resolve(self.foreigndom)?;
        let (count, mut done) = self.resume()?;
        let requests = guest::GuestArray::<MmuUpdate>::new(self.base, count);
        let mut result = Ok(0);
        let mut start = 0;
        while start < count {
            let end = (start + CHUNK).min(count);
            let (chunk, fault) = read_chunk(requests, start, end);
            let read = chunk.len() as u64;
            let ended = memory::with_frame_table(|ft| {
                hv_core::batch::run(start, start + read, super::spend, |i| {
                    mmu_update_one(ft, chunk[(i - start) as usize], caller, pg_owner)?;
                    done += 1;
                    Ok(super::Step::Next)
                })
            });
            match ended {
                Ok(super::Ended::Complete { .. }) if !fault => start = end,
                Ok(super::Ended::Complete { .. }) => {
                    result = Err(Errno::Fault);
                    break;
                }
                Ok(super::Ended::Preempted { at }) => {
                    // The rest of the batch, from the request not done.
                    super::continue_with(self.rest(count, at, requests.at(at)?.va()));
                    break;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.report(done)?;
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

/// Requests `start..end` of `requests`, copied in with one guest copy;
/// if that faults, one at a time up to the first that cannot be read
/// (`true`: the batch ends there with `-EFAULT`, after those before it).
fn read_chunk(
    requests: guest::GuestArray<MmuUpdate>,
    start: u64,
    end: u64,
) -> (heapless::Vec<MmuUpdate, { CHUNK as usize }>, bool) {
    let mut chunk = heapless::Vec::new();
    // Zeroes only the requests of this chunk (one, for a single update).
    let _ = chunk.resize_default((end - start) as usize);
    let whole = requests
        .at(start)
        .and_then(|first| requests.at(end - 1).map(|_| first))
        .and_then(|first| guest::read_bytes(chunk.as_mut_bytes(), first.va()));
    if whole.is_ok() {
        return (chunk, false);
    }
    chunk.clear();
    for i in start..end {
        match requests.at(i).and_then(|at| at.read()) {
            Ok(req) => {
                let _ = chunk.push(req);
            }
            Err(_) => return (chunk, true),
        }
    }
    (chunk, false)
}

/// One `mmu_update` request; page tables are the caller's, mapped frames
/// and M2P entries `pg_owner`'s. Inside the chunk's frame-table critical
/// section (`ft`).
#[inline(always)]
fn mmu_update_one(
    ft: &mut FrameTable,
    req: abi::xen::MmuUpdate,
    caller: u16,
    pg_owner: u16,
) -> Result<(), Errno> {
    let dom = pg_owner;
    match req.ptr & 3 {
        MMU_NORMAL_PT_UPDATE | MMU_PT_UPDATE_PRESERVE_AD => {
            let table = req.ptr >> 12;
            let index = ((req.ptr & 0xfff) >> 3) as usize;
            // (Finishes what earlier requests left to release first.)
            page_tables::write_entry_in(ft, table, index, req.val, caller, pg_owner).map(drop)
        }
        MMU_MACHPHYS_UPDATE => {
            let mfn = req.ptr >> 12;
            let owned = ft.info(mfn).is_some_and(|f| f.owner == Owner::Domain(dom));
            // (The M2P's lock inside the frame table's.)
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
        let root = domain::with_current_vcpu(|v| v.current_root_mfn());
        let slot = page_tables::l1_slot(root, self.va, dom)?;
        page_tables::install_l1(dom, slot, self.pte, dom)?;
        // UVMF_ALL, or a vCPU mask (UVMF_MULTI), reaches the other CPUs
        // that have this domain's tables loaded (they may run its other
        // vCPUs).
        let everywhere = self.flags & !UVMF_FLUSHTYPE_MASK != 0;
        match (self.flags & UVMF_FLUSHTYPE_MASK, everywhere) {
            (UVMF_TLB_FLUSH, true) => page_tables::flush_domain(dom),
            (UVMF_TLB_FLUSH, false) => pv::flush_tlb_local(),
            (UVMF_INVLPG, true) => page_tables::invlpg_all(self.va, dom),
            (UVMF_INVLPG, false) => pv::invlpg(self.va),
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
            page_tables::flush_all();
            Ok(())
        }
        MMUEXT_NEW_BASEPTR | MMUEXT_NEW_USER_BASEPTR if dom != domain::current_id() => {
            Err(Errno::Inval)
        }
        MMUEXT_NEW_BASEPTR => new_baseptr(op.arg1, dom, false),
        MMUEXT_NEW_USER_BASEPTR => new_baseptr(op.arg1, dom, true),
        MMUEXT_TLB_FLUSH_LOCAL => {
            pv::flush_tlb_local();
            Ok(())
        }
        MMUEXT_TLB_FLUSH_MULTI | MMUEXT_TLB_FLUSH_ALL => {
            page_tables::flush_domain(dom);
            Ok(())
        }
        MMUEXT_INVLPG_LOCAL => {
            pv::invlpg(op.arg1);
            Ok(())
        }
        MMUEXT_INVLPG_MULTI | MMUEXT_INVLPG_ALL => {
            page_tables::invlpg_all(op.arg1, dom);
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
    let new = if user && mfn == 0 {
        None
    } else {
        let root =
            memory::with_frame_table(|ft| super::with_budget(|b| pv::Root::take(ft, mfn, dom, b)))
                .map_err(refused)?;
        Some(root)
    };
    let old = domain::with_current_vcpu(|vcpu| {
        let (slot, load) = if user {
            (&mut vcpu.user_root, !vcpu.kernel_mode)
        } else {
            (&mut vcpu.kernel_root, vcpu.kernel_mode)
        };
        let old = core::mem::replace(slot, new);
        if load {
            vcpu.load_root();
        }
        old
    });
    if let Some(old) = old {
        let old = old.into_reference();
        memory::with_frame_table(|ft| {
            super::with_budget(|b| ft.put_page_type_within(&mut mem, old, b))
        });
        // The old tree may have been devalidated (see `page_tables`).
        page_tables::flush_all();
    }
    Ok(())
}
