//! Creating and destroying domains, and the accounting the toolstack sees.
//!
//! Destruction (Xen's `domain_kill` and `domain_relinquish_resources`):
//! 1. close every event channel (peers' ends become unbound);
//! 2. forget the grants this domain mapped (the granters' in-use flags
//!    drop; the frame references go with the page tables in step 3);
//! 3. drop the vCPU's page-table roots and every pin, which devalidates
//!    the domain's page tables and so drops every reference they held;
//! 4. free every frame of the domain that nothing references any more.
//!
//! Step 3 can be long (a hostile domain may hold millions of validated
//! entries), so it spends the budget of the `destroydomain` that runs it
//! and, when that runs out, asks for the hypercall to be issued again; the
//! domain is `Dying` from the first pass on and its frames are freed once
//! the release is complete.
//!
//! A frame still referenced after step 3 is mapped by another domain (dom0
//! not yet done with it, or a peer with a grant mapped). The domain then
//! stays `Dying`, listed, until [`reap`] finds its last frame free; its
//! shared_info and grant-table frames go last, because peers' unmaps still
//! update its grant entries. When a domain is gone, dom0 gets VIRQ_DOM_EXC.

use core::sync::atomic::AtomicUsize;
use core::sync::atomic::Ordering::Relaxed;

use abi::xen::DomId;
use hv_core::frame_table::{Mfn, Owner};

use crate::arch::pv::{self, MachinePageTables};
use crate::arch::shared::SharedPage;
use crate::domain::{self, State, Wait};
use crate::guest::UPCALL_MASK;
use crate::{event_delivery, memory};

/// Why a domain could not be created.
#[derive(Clone, Copy, Debug)]
pub enum CreateError {
    /// The table is full.
    NoRoom,
    /// The wanted id is taken or reserved.
    IdTaken,
    NoMemory,
}

/// Creates a paused, unprivileged domain with no memory and no vCPU
/// context yet; returns its id.
pub fn create(wanted: DomId, max_vcpus: usize, handle: [u8; 16]) -> Result<DomId, CreateError> {
    let id = if wanted == 0 {
        domain::next_free_id().ok_or(CreateError::NoRoom)?
    } else if wanted >= abi::xen::DOMID_FIRST_RESERVED || domain::with(wanted, |_| ()).is_some() {
        return Err(CreateError::IdTaken);
    } else {
        wanted
    };
    let shared_info = alloc_shared_info(id).ok_or(CreateError::NoMemory)?;
    // A refused create drops (frees) the page.
    if domain::create(id, false, max_vcpus, shared_info).is_err() {
        return Err(CreateError::NoRoom);
    }
    domain::with(id, |d| {
        d.paused = true;
        d.handle = handle;
        let now = crate::vtime::now_ns();
        for v in d.vcpus_mut() {
            v.runstate = hv_core::runstate::Runstate::new(now);
        }
    });
    log::info!("d{id} created");
    Ok(id)
}

/// A zeroed shared_info page for domain `id` (dom0's builder and
/// `createdomain` alike): shared with the domain, every vCPU's events
/// masked as on Xen.
pub fn alloc_shared_info(id: DomId) -> Option<SharedPage> {
    let page = SharedPage::alloc(id)?;
    for v in 0..domain::MAX_VCPUS {
        page.u8(v * crate::arch::shared::VCPU_INFO_BYTES + UPCALL_MASK)
            .store(1, core::sync::atomic::Ordering::SeqCst);
    }
    Some(page)
}

/// Destroys domain `id` (steps 1-3 above, then [`reap`]), from the
/// `destroydomain` hypercall: when the budget does not cover releasing its
/// page tables, the hypercall is restarted to go on. Returns whether it is
/// gone; if not, it is `Dying` until its tables are released and others
/// release its frames.
pub fn destroy(id: DomId) -> bool {
    let Some(state) = domain::with(id, |d| d.state) else {
        return true;
    };
    // The first pass, once: a second `destroydomain` meanwhile (another
    // vCPU of dom0) goes straight to waiting for the release.
    let first = state != State::Dying
        && domain::with(id, |d| !core::mem::replace(&mut d.destroying, true)) == Some(true);
    if !first && state != State::Dying {
        // Another CPU is in the first pass: come back when it is done.
        crate::hypercall::restart();
        return false;
    }
    if first {
        // Off every CPU first: its page tables go below. `destroying`
        // keeps it off: neither the guest (`VCPUOP_up` on a vCPU still
        // running) nor an unpause can make it runnable again.
        domain::with(id, |d| d.vcpus.iter_mut().for_each(|v| v.online = false));
        crate::scheduler::take_off_cpus(id);
        close_channels(id);
        release_mapped_grants(id);
        drop_roots(id);
        DYING.fetch_add(1, Relaxed);
        domain::with(id, |d| {
            d.state = State::Dying;
            for v in d.vcpus.iter_mut() {
                v.wait = Wait::None;
                v.online = false;
            }
        });
        log::info!("d{id} destroyed");
    }
    if !release_page_tables(id) {
        crate::hypercall::restart();
        return false;
    }
    reap(id)
}

fn close_channels(id: DomId) {
    domain::for_each(|d| {
        if d.id == id {
            for port in 1..hv_core::event_channel::NR_PORTS as u32 {
                let _ = d.events.close(port);
            }
        } else {
            d.events.disconnect_domain(id);
        }
    });
}

fn release_mapped_grants(id: DomId) {
    let mut maps: heapless::Vec<crate::grant::Mapping, { crate::grant::MAX_MAPS }> =
        heapless::Vec::new();
    domain::with(id, |d| {
        for m in d.grants.drain_maps() {
            let _ = maps.push(m);
        }
    });
    for m in maps {
        domain::with(m.granter, |g| {
            g.grants.release(&g.grant_frames, m.gref, m.readonly)
        });
    }
}

/// Drops the vCPUs' page-table roots (what their release does not cover
/// is left to [`release_page_tables`]) and the references their
/// registered vcpu_info frames hold.
fn drop_roots(id: DomId) {
    let mut roots: heapless::Vec<pv::Root, { 2 * domain::MAX_VCPUS }> = heapless::Vec::new();
    let mut infos: heapless::Vec<crate::arch::shared::VcpuInfoFrame, { domain::MAX_VCPUS }> =
        heapless::Vec::new();
    let Some(()) = domain::with(id, |d| {
        for v in d.vcpus.iter_mut() {
            if let Some(info) = v.vcpu_info_frame.take()
                && infos.push(info).is_err()
            {
                unreachable!("one vcpu_info per vCPU");
            }
            for root in [v.kernel_root.take(), v.user_root.take()]
                .into_iter()
                .flatten()
            {
                if roots.push(root).is_err() {
                    unreachable!("two roots per vCPU at most");
                }
            }
        }
    }) else {
        return;
    };
    let mut mem = MachinePageTables;
    memory::with_frame_table(|ft| {
        crate::hypercall::with_budget(|b| {
            for root in roots {
                ft.put_page_type_within(&mut mem, root.into_reference(), b);
            }
            for info in infos {
                let mfn = info.into_reference();
                ft.put_page_type_within(&mut mem, mfn, b);
                ft.put_page(mfn);
            }
        });
    });
    crate::page_tables::flush_all();
}

/// Drops every pin and every page-table reference still held for the
/// domain, within the running hypercall's budget; whether that is done.
fn release_page_tables(id: DomId) -> bool {
    let mut mem = MachinePageTables;
    let done = memory::with_frame_table(|ft| {
        crate::hypercall::with_budget(|b| ft.release_tables(&mut mem, id, b))
    })
    .is_ok();
    crate::page_tables::flush_all();
    done
}

/// Frees what domain `id` no longer has referenced; removes it when
/// nothing is left. Returns whether it is gone.
pub fn reap(id: DomId) -> bool {
    if domain::with(id, |d| d.state) != Some(State::Dying) {
        return domain::with(id, |_| ()).is_none();
    }
    let mut remaining = 0u64;
    let mut batch: heapless::Vec<Mfn, 256> = heapless::Vec::new();
    let mut next = 0;
    loop {
        batch.clear();
        memory::with_frame_table(|ft| {
            while let Some(mfn) = ft.next_of(Owner::Domain(id), next) {
                next = mfn + 1;
                if ft.info(mfn).is_some_and(|f| f.ref_count == 0) {
                    let _ = ft.release(mfn);
                    // The batch has room: it is emptied before each pass
                    // and the pass ends when it is full.
                    let _ = batch.push(mfn);
                    if batch.is_full() {
                        break;
                    }
                } else {
                    remaining += 1;
                }
            }
        });
        for &mfn in &batch {
            memory::free_frame(mfn);
        }
        domain::with(id, |d| {
            d.nr_pages = d.nr_pages.saturating_sub(batch.len() as u64)
        });
        if !batch.is_full() {
            break;
        }
    }
    let pinned_by_peers = domain::with(id, |d| d.grants.has_pins()).unwrap_or(false);
    if remaining > 0 || pinned_by_peers {
        return false;
    }
    // Last: shared_info and the grant table (peers' unmaps used it).
    let Some(shared_frames) = domain::with(id, |d| {
        let mut frames: heapless::Vec<Mfn, { 1 + crate::grant::MAX_GRANT_FRAMES }> =
            heapless::Vec::new();
        // Room for shared_info and every grant frame.
        let _ = frames.push(d.shared_page().mfn());
        for mfn in d.grant_frames.mfns() {
            let _ = frames.push(mfn);
        }
        frames
    }) else {
        return true;
    };
    let still_mapped = memory::with_frame_table(|ft| {
        shared_frames
            .iter()
            .any(|&mfn| ft.info(mfn).is_some_and(|f| f.ref_count != 0))
    });
    if still_mapped {
        // dom0 still maps its shared_info or grant table: wait for it.
        return false;
    }
    // Frees shared_info and the grant frames with the domain.
    domain::remove(id);
    DYING.fetch_sub(1, Relaxed);
    log::info!("d{id} released");
    event_delivery::notify_dom_exc();
    true
}

/// Domains left dying, so the common case of none costs one load.
static DYING: AtomicUsize = AtomicUsize::new(0);

/// Frees what dying domains no longer have referenced (the toolstack
/// calls in after unmapping what it held).
pub fn reap_all() {
    if DYING.load(Relaxed) == 0 {
        return;
    }
    let mut dying: heapless::Vec<DomId, { domain::MAX_DOMAINS }> = heapless::Vec::new();
    domain::for_each(|d| {
        if d.state == State::Dying {
            let _ = dying.push(d.id);
        }
    });
    for id in dying {
        reap(id);
    }
}
