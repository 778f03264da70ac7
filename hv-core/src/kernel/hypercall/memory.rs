//! `memory_op`: what a guest needs to learn its memory, and the
//! reservation changes a domain makes to itself or dom0 makes to the
//! domain it builds (populate, increase, decrease).

use abi::Errno;
use abi::ops::{
    E820_RAM, E820Entry, MemoryMap, MemoryReservation, XENMEM_CURRENT_RESERVATION,
    XENMEM_DECREASE_RESERVATION, XENMEM_INCREASE_RESERVATION, XENMEM_MAXIMUM_RAM_PAGE,
    XENMEM_MAXIMUM_RESERVATION, XENMEM_MEMORY_MAP, XENMEM_POPULATE_PHYSMAP,
};
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
fn reservation(cmd: u64, arg: u64, change: Change) -> Result<i64, Errno> {
    let start = cmd >> MEMOP_EXTENT_SHIFT;
    let r: MemoryReservation = guest::read(arg)?;
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
                let room = domain::with(dom, |d| d.nr_pages < d.max_pages).unwrap_or(false);
                if !room {
                    return Ok(Step::Stop);
                }
                let Some(phys) = memory::alloc_frame() else {
                    return Ok(Step::Stop);
                };
                let mfn = phys >> 12;
                memory::with_frame_table(|ft| ft.assign(mfn, Owner::Domain(dom)))
                    .expect("a fresh frame has no references");
                domain::with(dom, |d| d.nr_pages += 1);
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

#[derive(Clone, Copy, Debug)]
pub struct MemoryOp {
    pub cmd: u64,
    pub arg: u64,
}

impl MemoryOp {
    pub fn handle(self) -> Result<i64, Errno> {
        match (self.cmd & MEMOP_CMD_MASK) as u32 {
            XENMEM_MEMORY_MAP => {
                let mut map: MemoryMap = guest::read(self.arg)?;
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
                guest::write(self.arg, &map)?;
                Ok(0)
            }
            XENMEM_MAXIMUM_RAM_PAGE => Ok(memory::max_mfn() as i64),
            XENMEM_CURRENT_RESERVATION | XENMEM_MAXIMUM_RESERVATION => {
                let dom = domain::resolve(guest::read(self.arg)?)?;
                let maximum = self.cmd & MEMOP_CMD_MASK == XENMEM_MAXIMUM_RESERVATION as u64;
                let pages = domain::with(dom, |d| if maximum { d.max_pages } else { d.nr_pages })
                    .ok_or(Errno::Srch)?;
                Ok(pages as i64)
            }
            XENMEM_INCREASE_RESERVATION => reservation(self.cmd, self.arg, Change::Increase),
            XENMEM_POPULATE_PHYSMAP => reservation(self.cmd, self.arg, Change::Populate),
            XENMEM_DECREASE_RESERVATION => reservation(self.cmd, self.arg, Change::Decrease),
            _ => Err(Errno::NoSys),
        }
    }
}
