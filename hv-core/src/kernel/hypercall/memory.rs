//! `memory_op`: what a guest needs to learn its memory, and the
//! reservation changes a domain makes to itself or dom0 makes to the
//! domain it builds (populate, increase, decrease).

use abi::Errno;
use abi::ops::{
    E820_RAM, E820Entry, MemoryMap, MemoryReservation, XENMEM_CURRENT_RESERVATION,
    XENMEM_DECREASE_RESERVATION, XENMEM_INCREASE_RESERVATION, XENMEM_MAXIMUM_RAM_PAGE,
    XENMEM_MAXIMUM_RESERVATION, XENMEM_MEMORY_MAP, XENMEM_POPULATE_PHYSMAP,
};
use abi::xen::DomId;
use hv_core::frame_table::Owner;

use super::{Ended, Step, batch};
use crate::{domain, guest, memory};

/// Which reservation change.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Frames given; their MFNs written back.
    Increase,
    /// Frames given for the gpfns listed; the M2P records them.
    Populate,
    /// The listed frames handed back.
    Decrease,
}

/// Applies a reservation change extent by extent; returns how many
/// extents were done (Xen's convention: a short count, not an error, when
/// the domain's limit or free memory runs out).
///
/// Preemptible as every batch: after the budget, the call continues as
/// Xen's does, with the extent to start from in the command's bits above
/// [`MEMOP_CMD_MASK`]; the final result counts every pass's extents.
fn reservation(r: &MemoryReservation, call: MemoryCall, change: Change) -> Result<i64, Errno> {
    let MemoryCall { cmd, arg } = call;
    let start = cmd >> MEMOP_EXTENT_SHIFT;
    if r.extent_order != 0 {
        // Only single frames: PV guests see machine frames, and hv-core
        // keeps no contiguous pools.
        return Err(Errno::Inval);
    }
    if start >= r.nr_extents || r.nr_extents > u64::MAX >> MEMOP_EXTENT_SHIFT {
        // Xen answers so too: nothing (more) to do.
        return Ok(start as i64);
    }
    let dom = domain::resolve(r.domid)?;
    let extents = guest::GuestArray::<u64>::new(r.extent_start, r.nr_extents);
    let each = |_, slot: guest::GuestPtr<u64>| {
        match change {
            Change::Increase | Change::Populate => {
                let gpfn = if change == Change::Populate {
                    slot.read()?
                } else {
                    0
                };
                // The page is counted in the same step that finds room for
                // it: two vCPUs increasing at once cannot both take the
                // last one.
                let room = domain::with(dom, |d| {
                    let room = d.nr_pages < d.max_pages;
                    d.nr_pages += u64::from(room);
                    room
                })
                .unwrap_or(false);
                if !room {
                    return Ok(Step::Stop);
                }
                let Some(phys) = memory::alloc_frame() else {
                    domain::with(dom, |d| d.nr_pages -= 1);
                    return Ok(Step::Stop);
                };
                let mfn = phys >> 12;
                memory::with_frame_table(|ft| ft.assign(mfn, Owner::Domain(dom)))
                    .expect("a fresh frame has no references");
                if change == Change::Populate {
                    memory::set_m2p(mfn, gpfn);
                }
                if r.extent_start != 0 {
                    slot.write(&mfn)?;
                }
            }
            Change::Decrease => {
                let mfn = slot.read()?;
                let released = memory::with_frame_table(|ft| {
                    let owned = ft
                        .info(mfn)
                        .is_some_and(|f| f.owner == Owner::Domain(dom) && f.ref_count == 0);
                    owned && ft.release(mfn).is_ok()
                });
                if !released {
                    return Ok(Step::Stop);
                }
                memory::free_frame(mfn);
                domain::with(dom, |d| d.nr_pages = d.nr_pages.saturating_sub(1));
            }
        }
        Ok(Step::Next)
    };
    let resume = |i: u64, _| {
        [
            (cmd & MEMOP_CMD_MASK) | i << MEMOP_EXTENT_SHIFT,
            arg,
            0,
            0,
            0,
            0,
        ]
    };
    match batch(extents, start, each, resume)? {
        Ended::Complete { done } => Ok(done as i64),
        Ended::Preempted { .. } => Ok(0),
    }
}

/// The command is in the low bits; Xen keeps continuation state above.
const MEMOP_CMD_MASK: u64 = 0x3f;
const MEMOP_EXTENT_SHIFT: u32 = 6;

/// What a `memory_op` handler gets besides its request: the call's two
/// registers as the guest passed them, which a preempted reservation
/// re-issues with its progress in the command's upper bits.
#[derive(Clone, Copy, Debug)]
pub struct MemoryCall {
    cmd: u64,
    arg: u64,
}

/// `memory_op(cmd, arg)`: the op is the command's low bits.
pub fn memory_op(cmd: u64, arg: u64) -> Result<i64, Errno> {
    MemoryOp::handle((cmd & MEMOP_CMD_MASK) as u32, arg, MemoryCall { cmd, arg })
}

super::op_family! {
    /// A `memory_op` request.
    MemoryOp(MemoryCall) {
        XENMEM_MEMORY_MAP => MemoryMap(MemoryMap), inout => memory_map;
        XENMEM_MAXIMUM_RAM_PAGE => MaximumRamPage(()), none => maximum_ram_page;
        XENMEM_CURRENT_RESERVATION => CurrentReservation(DomId), in => current_reservation;
        XENMEM_MAXIMUM_RESERVATION => MaximumReservation(DomId), in => maximum_reservation;
        XENMEM_INCREASE_RESERVATION => IncreaseReservation(MemoryReservation), in => increase_reservation;
        XENMEM_POPULATE_PHYSMAP => PopulatePhysmap(MemoryReservation), in => populate_physmap;
        XENMEM_DECREASE_RESERVATION => DecreaseReservation(MemoryReservation), in => decrease_reservation;
    }
}

/// One RAM entry covering the domain's pages.
fn memory_map(map: &mut MemoryMap, _call: MemoryCall) -> Result<i64, Errno> {
    if map.nr_entries < 1 {
        return Err(Errno::Inval);
    }
    let pages = domain::with_current(|d| d.nr_pages);
    let ram = E820Entry {
        addr: 0,
        size: pages << 12,
        type_: E820_RAM,
    };
    guest::write(map.buffer, &ram)?;
    map.nr_entries = 1;
    Ok(0)
}

fn maximum_ram_page(_: &mut (), _call: MemoryCall) -> Result<i64, Errno> {
    Ok(memory::max_mfn() as i64)
}

fn current_reservation(id: &mut DomId, _call: MemoryCall) -> Result<i64, Errno> {
    let dom = domain::resolve(*id)?;
    domain::with(dom, |d| d.nr_pages as i64).ok_or(Errno::Srch)
}

fn maximum_reservation(id: &mut DomId, _call: MemoryCall) -> Result<i64, Errno> {
    let dom = domain::resolve(*id)?;
    domain::with(dom, |d| d.max_pages as i64).ok_or(Errno::Srch)
}

fn increase_reservation(r: &mut MemoryReservation, call: MemoryCall) -> Result<i64, Errno> {
    reservation(r, call, Change::Increase)
}

fn populate_physmap(r: &mut MemoryReservation, call: MemoryCall) -> Result<i64, Errno> {
    reservation(r, call, Change::Populate)
}

fn decrease_reservation(r: &mut MemoryReservation, call: MemoryCall) -> Result<i64, Errno> {
    reservation(r, call, Change::Decrease)
}
