//! `grant_table_op`, version 1: setup_table, query_size, map_grant_ref,
//! unmap_grant_ref, copy. Each op of a batch gets its own `GNTST_*` status;
//! the call itself fails only when the batch cannot be read or written.
//!
//! A host mapping goes into the caller's current page tables at
//! `host_addr`, whose L1 table must exist; it takes the frame references an
//! ordinary mapping of the granter's frame would (so page-table rules hold:
//! a granted page table can only be mapped read-only), and it pins the
//! grant (`GTF_reading`/`GTF_writing`) until unmapped.

use abi::Errno;
use abi::grant_table::{
    Copy, GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GNTMAP_CONTAINS_PTE, GNTMAP_HOST_MAP,
    GNTMAP_READONLY, GNTST_BAD_DOMAIN, GNTST_BAD_GNTREF, GNTST_BAD_HANDLE, GNTST_BAD_PAGE,
    GNTST_BAD_VIRT_ADDR, GNTST_GENERAL_ERROR, GNTST_NO_SPACE, GNTST_OKAY, GNTST_PERMISSION_DENIED,
    GNTTABOP_COPY, GNTTABOP_MAP_GRANT_REF, GNTTABOP_QUERY_SIZE, GNTTABOP_SETUP_TABLE,
    GNTTABOP_UNMAP_GRANT_REF, MapGrantRef, QuerySize, SetupTable, UnmapGrantRef,
};
use abi::xen::DomId;
use hv_core::frame_table::{L1Slot, Mfn, Owner};
use hv_core::layout::{HOLE_END, HOLE_START};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::arch::pv;
use crate::arch::shared::{self, SharedPage};
use crate::domain::{self, State};
use crate::grant::{GrantError, Granted, MAX_GRANT_FRAMES, Mapping};
use crate::{guest, memory, page_tables};

use abi::pte::{NO_EXECUTE as NX, PRESENT, USER, WRITABLE};

/// Each op is read, handled and written back in turn; past the
/// hypercall's budget the rest is left for a continuation.
fn each<T: FromBytes + IntoBytes + Immutable>(
    cmd: u32,
    uop: u64,
    count: u32,
    mut f: impl FnMut(&mut T) -> Result<(), Errno>,
) -> Result<i64, Errno> {
    let ops = guest::GuestArray::<T>::new(uop, count.into());
    super::batch(
        ops,
        0,
        |_, at| {
            let mut op = at.read()?;
            f(&mut op)?;
            at.write(&op)?;
            Ok(super::Step::Next)
        },
        |i, at| [cmd.into(), at.va(), u64::from(count) - i, 0, 0, 0],
    )?;
    Ok(0)
}

pub fn grant_table_op(cmd: u32, uop: u64, count: u32) -> Result<i64, Errno> {
    match cmd {
        GNTTABOP_SETUP_TABLE => each(cmd, uop, count, |op: &mut SetupTable| {
            op.status = setup_table(op)?;
            Ok(())
        }),
        GNTTABOP_QUERY_SIZE => each(cmd, uop, count, |q: &mut QuerySize| {
            let frames = table_owner(q.dom)
                .and_then(|d| domain::with(d, |d| d.grants.nr_frames()).ok_or(GNTST_BAD_DOMAIN));
            match frames {
                Ok(n) => {
                    q.nr_frames = n as u32;
                    q.max_nr_frames = MAX_GRANT_FRAMES as u32;
                    q.status = GNTST_OKAY;
                }
                Err(status) => q.status = status,
            }
            Ok(())
        }),
        GNTTABOP_MAP_GRANT_REF => each(cmd, uop, count, |op: &mut MapGrantRef| {
            match map(op) {
                Ok((handle, mfn)) => {
                    op.handle = handle;
                    op.dev_bus_addr = mfn << 12;
                    op.status = GNTST_OKAY;
                }
                Err(status) => op.status = status,
            }
            Ok(())
        }),
        GNTTABOP_UNMAP_GRANT_REF => each(cmd, uop, count, |op: &mut UnmapGrantRef| {
            op.status = match unmap(op.handle, op.host_addr) {
                Ok(()) => GNTST_OKAY,
                Err(status) => status,
            };
            Ok(())
        }),
        GNTTABOP_COPY => each(cmd, uop, count, |op: &mut Copy| {
            op.status = match copy(op) {
                Ok(()) => GNTST_OKAY,
                Err(status) => status,
            };
            Ok(())
        }),
        _ => Err(Errno::NoSys),
    }
}

/// The domain whose own table an op names: the caller, or any domain for
/// dom0 (the toolstack seeds tables).
fn table_owner(dom: DomId) -> Result<DomId, i16> {
    if domain::is_self(dom) {
        Ok(domain::current_id())
    } else if domain::current_is_privileged() {
        Ok(dom)
    } else {
        Err(GNTST_PERMISSION_DENIED)
    }
}

/// Grows the table to `nr_frames` and returns its frames' MFNs.
fn setup_table(op: &SetupTable) -> Result<i16, Errno> {
    let dom = match table_owner(op.dom) {
        Ok(d) => d,
        Err(status) => return Ok(status),
    };
    let wanted = op.nr_frames as usize;
    if wanted > MAX_GRANT_FRAMES {
        return Ok(GNTST_GENERAL_ERROR);
    }
    // One frame at a time, the size re-read under the lock each time:
    // another vCPU of the domain (or dom0) may grow the table meanwhile.
    loop {
        let Some(have) = domain::with(dom, |d| d.grants.nr_frames()) else {
            return Ok(GNTST_BAD_DOMAIN);
        };
        if have >= wanted {
            break;
        }
        let Some(page) = SharedPage::alloc(dom) else {
            return Ok(GNTST_NO_SPACE);
        };
        // Spare if the table grew since the look above: dropped, so freed.
        let _spare = domain::with(dom, |d| {
            if d.grants.nr_frames() < wanted {
                d.grants.add_frame(page.mfn());
                d.grant_frames.push(page);
                None
            } else {
                Some(page)
            }
        });
    }
    let mut frames = [0u64; MAX_GRANT_FRAMES];
    domain::with(dom, |d| {
        let f = d.grants.frames();
        frames[..f.len()].copy_from_slice(f)
    });
    let list = guest::GuestArray::<u64>::new(op.frame_list, wanted as u64);
    for (i, mfn) in frames[..wanted].iter().enumerate() {
        list.at(i as u64)?.write(mfn)?;
    }
    Ok(GNTST_OKAY)
}

/// The domain a map or copy reads grants from: an existing, live domain
/// other than the caller.
fn granter(dom: DomId) -> Result<DomId, i16> {
    if domain::is_self(dom) {
        return Err(GNTST_BAD_DOMAIN);
    }
    match domain::with(dom, |d| d.state) {
        Some(State::Running) | Some(State::Shutdown(_)) => Ok(dom),
        _ => Err(GNTST_BAD_DOMAIN),
    }
}

fn grant_status(e: GrantError) -> i16 {
    match e {
        GrantError::BadRef => GNTST_BAD_GNTREF,
        GrantError::Denied => GNTST_PERMISSION_DENIED,
    }
}

/// `GNTTABOP_map_grant_ref` with `GNTMAP_host_map`.
fn map(op: &MapGrantRef) -> Result<(u32, Mfn), i16> {
    if op.flags & GNTMAP_HOST_MAP == 0 || op.flags & GNTMAP_CONTAINS_PTE != 0 {
        // Device (IOMMU) mappings and PTE-address mappings are not offered.
        return Err(GNTST_GENERAL_ERROR);
    }
    let readonly = op.flags & GNTMAP_READONLY != 0;
    let me = domain::current_id();
    let from = granter(op.dom)?;
    let slot = host_slot(op.host_addr, me)?;
    let granted = acquire(from, op.ref_, me, readonly)?;
    let give_back = || release(from, op.ref_, readonly);
    let pte = granted.frame << 12 | PRESENT | USER | NX | if readonly { 0 } else { WRITABLE };
    let owned_by_granter = memory::with_frame_table(|ft| {
        ft.info(granted.frame)
            .is_some_and(|f| f.owner == Owner::Domain(from))
    });
    if !owned_by_granter {
        give_back();
        return Err(GNTST_BAD_PAGE);
    }
    let mapping = Mapping {
        granter: from,
        gref: op.ref_,
        host_addr: op.host_addr,
        slot,
        mfn: granted.frame,
        readonly,
    };
    let Some(handle) = domain::with_current(|d| d.grants.track(mapping)) else {
        give_back();
        return Err(GNTST_NO_SPACE);
    };
    if page_tables::install_l1(me, slot, pte, from).is_err() {
        domain::with_current(|d| d.grants.untrack(handle));
        give_back();
        return Err(GNTST_GENERAL_ERROR);
    }
    pv::invlpg(op.host_addr);
    Ok((handle, granted.frame))
}

/// The entry of `me`'s live L1 table that maps `host_addr`, a page-aligned
/// guest address outside the hypervisor hole.
fn host_slot(host_addr: u64, me: DomId) -> Result<L1Slot, i16> {
    if !pv::is_canonical(host_addr)
        || !host_addr.is_multiple_of(4096)
        || (HOLE_START..HOLE_END).contains(&host_addr)
    {
        return Err(GNTST_BAD_VIRT_ADDR);
    }
    let root = domain::with_current_vcpu(|v| v.current_root_mfn());
    page_tables::l1_slot(root, host_addr, me).map_err(|_| GNTST_BAD_VIRT_ADDR)
}

/// `GNTTABOP_unmap_grant_ref`: clears the mapping's entry if it still
/// holds the grant, then drops the pin. The entry is found where the map
/// wrote it, not by walking the current tables at `host_addr` (which the
/// guest may have rearranged): if its table is still a live L1 holding
/// the frame, the entry is cleared; otherwise the reference it held is
/// already gone (entry overwritten, or table devalidated) and so may be
/// the pin.
fn unmap(handle: u32, host_addr: u64) -> Result<(), i16> {
    let me = domain::current_id();
    let mapping = domain::with_current(|d| d.grants.mapping(handle)).ok_or(GNTST_BAD_HANDLE)?;
    if host_addr != 0 && host_addr != mapping.host_addr {
        return Err(GNTST_GENERAL_ERROR);
    }
    page_tables::clear_l1(me, mapping.slot, mapping.mfn, mapping.granter)
        .map_err(|_| GNTST_GENERAL_ERROR)?;
    domain::with_current(|d| d.grants.untrack(handle));
    let granter_dying = domain::with(mapping.granter, |d| {
        d.grants
            .release(&d.grant_frames, mapping.gref, mapping.readonly);
        d.state == State::Dying
    });
    if granter_dying == Some(true) {
        // This may have been the last reference keeping it.
        crate::lifecycle::reap(mapping.granter);
    }
    Ok(())
}

/// Takes a use of `from`'s grant `gref` for `me` (see
/// `GrantTable::acquire`).
fn acquire(from: DomId, gref: u32, me: DomId, readonly: bool) -> Result<Granted, i16> {
    domain::with(from, |d| {
        d.grants.acquire(&d.grant_frames, gref, me, readonly)
    })
    .ok_or(GNTST_BAD_DOMAIN)?
    .map_err(grant_status)
}

/// Drops a use [`acquire`] took.
fn release(from: DomId, gref: u32, readonly: bool) {
    domain::with(from, |d| d.grants.release(&d.grant_frames, gref, readonly));
}

/// One side of a copy, resolved to a frame the caller may use; a side
/// named by grant holds a use of it (its in-use flag set) until
/// [`CopySide::finish`], as Xen's `acquire_grant_for_copy` does.
struct CopySide {
    mfn: Mfn,
    /// Whose frame it must be (checked with the copy).
    owner: DomId,
    grant: Option<(DomId, u32)>,
    write: bool,
}

impl CopySide {
    fn resolve(gref_or_mfn: u64, dom: DomId, by_ref: bool, write: bool) -> Result<Self, i16> {
        let me = domain::current_id();
        if by_ref {
            let from = granter(dom)?;
            let gref = u32::try_from(gref_or_mfn).map_err(|_| GNTST_BAD_GNTREF)?;
            let granted = acquire(from, gref, me, !write)?;
            Ok(Self {
                mfn: granted.frame,
                owner: from,
                grant: Some((from, gref)),
                write,
            })
        } else if domain::is_self(dom) {
            // A frame of the caller's own (dom0 may name any domain's).
            Ok(Self::frame(gref_or_mfn, me, write))
        } else if domain::current_is_privileged() && domain::with(dom, |_| ()).is_some() {
            Ok(Self::frame(gref_or_mfn, dom, write))
        } else {
            Err(GNTST_PERMISSION_DENIED)
        }
    }

    /// Whether the frame is its owner's (the copy checks it again, with
    /// the destination's, under one lock; this is only for the order of
    /// errors when the destination fails first).
    fn is_owners(&self) -> bool {
        memory::with_frame_table(|ft| {
            ft.info(self.mfn)
                .is_some_and(|f| f.owner == Owner::Domain(self.owner))
        })
    }

    fn frame(mfn: Mfn, owner: DomId, write: bool) -> Self {
        Self {
            mfn,
            owner,
            grant: None,
            write,
        }
    }

    /// Drops the grant use, if any (Xen's `release_grant_for_copy`).
    fn finish(self) {
        if let Some((from, gref)) = self.grant {
            release(from, gref, !self.write);
        }
    }
}

/// `GNTTABOP_copy`: bytes between two frames, either given by grant ref or
/// owned by the caller; a page table is never a destination. The grants
/// stay in use (`GTF_reading`, `GTF_writing`) until the bytes are copied.
fn copy(op: &Copy) -> Result<(), i16> {
    let len = op.len as usize;
    if op.source.offset as usize + len > 4096 || op.dest.offset as usize + len > 4096 {
        return Err(abi::grant_table::GNTST_BAD_COPY_ARG);
    }
    let src = CopySide::resolve(
        op.source.u,
        op.source.domid,
        op.flags & GNTCOPY_SOURCE_GREF != 0,
        false,
    )?;
    let dst = match CopySide::resolve(
        op.dest.u,
        op.dest.domid,
        op.flags & GNTCOPY_DEST_GREF != 0,
        true,
    ) {
        Ok(dst) => dst,
        Err(status) => {
            // As Xen (and hv-core before the check moved into the copy): a
            // source frame that is not its owner's is reported first.
            let status = if src.is_owners() {
                status
            } else {
                GNTST_BAD_PAGE
            };
            src.finish();
            return Err(status);
        }
    };
    // The copy checks that each frame is its owner's (the destination
    // not a page table) with the frame table locked for the copy.
    let copied = shared::copy_between_frames(
        (src.mfn, src.owner, op.source.offset as usize),
        (dst.mfn, dst.owner, op.dest.offset as usize),
        len,
    );
    dst.finish();
    src.finish();
    copied.map_err(|_| GNTST_BAD_PAGE)
}
