//! Page-table updates as the hypervisor validates them (direct paging).
//!
//! Refused:
//! - mapping a frame the domain does not own (a free or hypervisor frame
//!   found below the domain's lowest machine frame, checked against the
//!   M2P and p2m), by `update_va_mapping` and by `mmu_update`;
//! - mapping a hypervisor frame (the one behind the guest L4's slot 256,
//!   the read-only M2P), even read-only;
//! - a writable mapping of one of the domain's own page tables (its L4,
//!   an L1 in use) or of a table it pinned; pinning a frame that is still
//!   mapped writable;
//! - `update_va_mapping` of an address in the hypervisor's hole;
//! - an unknown `mmuext_op` command (-ENOSYS, with `done` counting the ops
//!   before it);
//! - a pointer argument into hypervisor memory, a non-canonical one, or an
//!   unmapped one (-EFAULT);
//!
//! Accepted:
//! - a fresh frame of its own mapped writable at a free address (both
//!   ways), written and read through that mapping and the physmap, then
//!   unmapped (the next access faults);
//! - a batch with a good request and a bad one: the good one applied,
//!   `done` = 1; the same when the second request cannot be read (it lies
//!   in an unmapped page): -EFAULT after the first;
//! - read-only mappings of its own page tables;
//! - an L1 built by the guest, pinned, and unpinned (after which a
//!   writable mapping is fine again).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use abi::Hypercall;
    use abi::event_channel::EVTCHNOP_SEND;
    use abi::ops::XENVER_EXTRAVERSION;
    use abi::xen::{
        DOMID_SELF, MMU_NORMAL_PT_UPDATE, MMUEXT_PIN_L1_TABLE, MMUEXT_TLB_FLUSH_LOCAL,
        MMUEXT_UNPIN_TABLE, MmuUpdate, MmuextOp, UVMF_INVLPG,
    };
    use pv_guest_sdk::mm::{self, Frame, pte};
    use pv_guest_sdk::{StartInfo, println};
    use test_guests::frame;
    use test_guests::probe;
    use test_guests::scratch::Window;
    use test_guests::verdict::{Outcome, Stop, finish};
    use test_guests::{ensure, ensure_eq, fail, hc};

    const NAME: &str = "abi-pagetable";
    const ENOSYS: i64 = -38;
    const EFAULT: i64 = -14;
    /// In the hypervisor's direct map of RAM (Xen's and hv-core's).
    const HYPERVISOR_POINTER: u64 = 0xffff_8300_0000_0000;
    const NON_CANONICAL: u64 = 0x8000_0000_0000_0000;

    pub fn main(_start: &'static StartInfo) -> ! {
        probe::install();
        finish(NAME, run())
    }

    fn alloc() -> Result<Frame, Stop> {
        match mm::alloc_frame() {
            Ok(f) => Ok(f),
            Err(e) => fail!("allocating a frame: {e}"),
        }
    }

    fn run() -> Outcome {
        let w = match Window::new() {
            Ok(w) => w,
            Err(e) => fail!("setting up the scratch window: {e}"),
        };
        own_frames(&w)?;
        let foreign = foreign_frames(&w)?;
        batch(&w, foreign)?;
        own_tables(&w)?;
        pinning(&w)?;
        hole()?;
        unknown_mmuext()?;
        bad_pointers(&w)?;
        println!(
            "{NAME}: foreign, hypervisor and page-table frames refused; own frames and pins work"
        );
        Ok(())
    }

    /// A fresh frame mapped writable at a free address, by
    /// update_va_mapping and by mmu_update: what is written through one
    /// mapping is read through the physmap; unmapped, the page faults.
    fn own_frames(w: &Window) -> Outcome {
        let f = alloc()?;
        let va = w.va(10);
        ensure_eq!(
            hc::update_va_mapping(va, pte::entry(f.mfn, pte::KERNEL_RW), UVMF_INVLPG),
            0,
            "update_va_mapping of a fresh frame of ours, writable"
        );
        ensure!(
            probe::write(va, 0x1234_5678_9abc_def0).is_ok(),
            "writing through the new mapping faulted"
        );
        ensure_eq!(
            frame::read_word(&f, 0),
            0x1234_5678_9abc_def0,
            "the word read through the physmap"
        );
        ensure_eq!(
            hc::update_va_mapping(va, 0, UVMF_INVLPG),
            0,
            "update_va_mapping to unmap"
        );
        ensure!(
            probe::read(va).is_err(),
            "reading an unmapped page did not fault"
        );

        let va = w.va(11);
        let (ret, done) = hc::mmu_update(
            &[MmuUpdate {
                ptr: w.entry_maddr(11) | MMU_NORMAL_PT_UPDATE,
                val: pte::entry(f.mfn, pte::KERNEL_RW),
            }],
            DOMID_SELF,
        );
        ensure_eq!(
            (ret, done),
            (0, 1),
            "mmu_update mapping a frame of ours: (result, done)"
        );
        ensure_eq!(
            probe::read(va).ok(),
            Some(0x1234_5678_9abc_def0),
            "the word read through the mmu_update mapping"
        );
        ensure_eq!(
            w.entry(11).map(pte::mfn).ok(),
            Some(f.mfn),
            "the L1 entry mmu_update wrote"
        );
        let (ret, _) = hc::mmu_update(
            &[MmuUpdate {
                ptr: w.entry_maddr(11),
                val: 0,
            }],
            DOMID_SELF,
        );
        ensure_eq!(ret, 0, "mmu_update clearing the entry");
        if let Err(e) = mm::invlpg(va) {
            fail!("MMUEXT_INVLPG_LOCAL: {e}");
        }
        ensure!(
            probe::read(va).is_err(),
            "reading a page unmapped by mmu_update did not fault"
        );
        mm::free_frame(f);
        Ok(())
    }

    /// A frame this domain does not own: the M2P (shared by all domains)
    /// does not lead back to it through our p2m. Searched just below our
    /// lowest machine frame, where RAM belongs to the hypervisor, free
    /// memory or other modules.
    fn find_foreign() -> Option<u64> {
        let list = pv_guest_sdk::start_info().mfn_list();
        let lowest = list.iter().copied().min()?;
        (lowest.saturating_sub(64)..lowest)
            .rev()
            .find(|&mfn| mfn >= 0x100 && mm::mfn_to_pfn(mfn).is_none())
    }

    /// The hypervisor frame behind the kernel L4's slot 256 (the M2P).
    fn hypervisor_frame() -> Result<u64, Stop> {
        let entry = match mm::read_table_entry(mm::kernel_l4(), 256) {
            Ok(e) => e,
            Err(e) => fail!("reading L4 slot 256: {e}"),
        };
        ensure!(
            pte::is_present(entry),
            "L4 slot 256 (the M2P) is not present: {entry:#x}"
        );
        Ok(pte::mfn(entry))
    }

    fn refused(what: &str, ret: i64) -> Outcome {
        ensure!(ret < 0, "{what} was accepted ({ret})");
        println!("{NAME}: {what}: refused, {ret}");
        Ok(())
    }

    fn foreign_frames(w: &Window) -> Result<u64, Stop> {
        let Some(foreign) = find_foreign() else {
            fail!("no frame below the domain's lowest machine frame to try");
        };
        let va = w.va(20);
        for (how, flags) in [("writable", pte::KERNEL_RW), ("read-only", pte::KERNEL_RO)] {
            let ret = hc::update_va_mapping(va, pte::entry(foreign, flags), UVMF_INVLPG);
            refused(
                &alloc::format!("update_va_mapping of frame {foreign:#x} (not ours), {how}"),
                ret,
            )?;
        }
        let (ret, done) = hc::mmu_update(
            &[MmuUpdate {
                ptr: w.entry_maddr(20),
                val: pte::entry(foreign, pte::KERNEL_RO),
            }],
            DOMID_SELF,
        );
        refused(
            &alloc::format!("mmu_update mapping frame {foreign:#x} (not ours)"),
            ret,
        )?;
        ensure_eq!(
            done,
            0,
            "mmu_update done count after its only request failed"
        );
        ensure!(probe::read(va).is_err(), "the refused mapping is readable");

        let hv = hypervisor_frame()?;
        ensure!(
            mm::mfn_to_pfn(hv).is_none(),
            "the M2P says hypervisor frame {hv:#x} is ours"
        );
        for (how, flags) in [("writable", pte::KERNEL_RW), ("read-only", pte::KERNEL_RO)] {
            let ret = hc::update_va_mapping(va, pte::entry(hv, flags), UVMF_INVLPG);
            refused(
                &alloc::format!(
                    "update_va_mapping of hypervisor frame {hv:#x} (L4 slot 256), {how}"
                ),
                ret,
            )?;
        }
        ensure!(
            probe::read(va).is_err(),
            "the refused hypervisor mapping is readable"
        );
        Ok(foreign)
    }

    /// [good, bad]: the call fails, `done` is 1, the good entry is in.
    fn batch(w: &Window, foreign: u64) -> Outcome {
        let f = alloc()?;
        if frame::write_word(&f, 0, 0xfeed).is_err() {
            fail!("writing a fresh frame through the physmap faulted");
        }
        let (ret, done) = hc::mmu_update(
            &[
                MmuUpdate {
                    ptr: w.entry_maddr(30),
                    val: pte::entry(f.mfn, pte::KERNEL_RO),
                },
                MmuUpdate {
                    ptr: w.entry_maddr(31),
                    val: pte::entry(foreign, pte::KERNEL_RO),
                },
            ],
            DOMID_SELF,
        );
        ensure!(ret < 0, "mmu_update [good, foreign frame] returned {ret}");
        ensure_eq!(done, 1, "mmu_update [good, foreign frame]: done");
        ensure_eq!(
            probe::read(w.va(30)).ok(),
            Some(0xfeed),
            "the good request's mapping"
        );
        ensure!(
            probe::read(w.va(31)).is_err(),
            "the bad request's page is readable"
        );
        ensure_eq!(
            hc::update_va_mapping(w.va(30), 0, UVMF_INVLPG),
            0,
            "unmapping the good request's page"
        );
        mm::free_frame(f);
        unreadable_request(w)
    }

    /// A batch whose first request is the last 16 bytes of a mapped page
    /// and whose second lies in the unmapped page after it: the first is
    /// applied, then -EFAULT with `done` = 1 (Xen copies each request in
    /// on its own; hv-core copies a chunk at once and, when that faults,
    /// one at a time to find where).
    fn unreadable_request(w: &Window) -> Outcome {
        let (requests, data) = (alloc()?, alloc()?);
        if frame::write_word(&data, 0, 0xbeef).is_err() {
            fail!("writing a fresh frame through the physmap faulted");
        }
        // (Not page 21: Xen reads each request after applying the one
        // before, so mapping 21 would make the second readable there.)
        let first = [w.entry_maddr(22), pte::entry(data.mfn, pte::KERNEL_RO)];
        for (i, word) in first.into_iter().enumerate() {
            if frame::write_word(&requests, 510 + i, word).is_err() {
                fail!("writing the request frame through the physmap faulted");
            }
        }
        ensure_eq!(
            hc::update_va_mapping(
                w.va(20),
                pte::entry(requests.mfn, pte::KERNEL_RO),
                UVMF_INVLPG
            ),
            0,
            "mapping the request page"
        );
        ensure!(
            probe::read(w.va(21)).is_err(),
            "the page after the requests is mapped"
        );
        let (ret, done) = hc::mmu_update_at(w.va(20) + 4096 - 16, 2);
        ensure_eq!(ret, EFAULT, "mmu_update [good, unreadable]");
        ensure_eq!(done, 1, "mmu_update [good, unreadable]: done");
        ensure_eq!(
            probe::read(w.va(22)).ok(),
            Some(0xbeef),
            "the good request's mapping"
        );
        for page in [22, 20] {
            ensure_eq!(
                hc::update_va_mapping(w.va(page), 0, UVMF_INVLPG),
                0,
                "unmapping scratch page {page}"
            );
        }
        mm::free_frame(requests);
        mm::free_frame(data);
        Ok(())
    }

    /// Our own tables may be mapped read-only, never writable.
    fn own_tables(w: &Window) -> Outcome {
        let va = w.va(40);
        for (name, mfn) in [
            ("the kernel L4", mm::kernel_l4()),
            ("the scratch window's L1", w.l1),
        ] {
            let ret = hc::update_va_mapping(va, pte::entry(mfn, pte::KERNEL_RW), UVMF_INVLPG);
            refused(
                &alloc::format!("a writable mapping of {name} ({mfn:#x})"),
                ret,
            )?;
            ensure_eq!(
                hc::update_va_mapping(va, pte::entry(mfn, pte::KERNEL_RO), UVMF_INVLPG),
                0,
                "a read-only mapping of {name}"
            );
            ensure!(
                probe::read(va).is_ok(),
                "reading {name} through its read-only mapping faulted"
            );
            ensure_eq!(
                hc::update_va_mapping(va, 0, UVMF_INVLPG),
                0,
                "unmapping {name}"
            );
        }
        // A write through the read-only mapping faults for the L4. (Not
        // checked for an L1: Xen emulates such writes as validated updates,
        // the writable-pagetables assist, which 4.17 applies whether or
        // not the guest asked for it with vm_assist.)
        let l4 = mm::kernel_l4();
        ensure_eq!(
            hc::update_va_mapping(va, pte::entry(l4, pte::KERNEL_RO), UVMF_INVLPG),
            0,
            "mapping the L4 read-only"
        );
        let write = probe::write(va, 0);
        ensure_eq!(
            hc::update_va_mapping(va, 0, UVMF_INVLPG),
            0,
            "unmapping the L4"
        );
        match write {
            Ok(()) => fail!("writing the kernel L4 through a read-only mapping did not fault"),
            Err(t) => ensure_eq!(
                (t.vector, t.error_code),
                (14, 3),
                "writing the L4 read-only: (vector, error code)"
            ),
        }
        Ok(())
    }

    fn pin(mfn: u64, cmd: u32) -> i64 {
        hc::mmuext_op(&[MmuextOp {
            cmd,
            _pad: 0,
            arg1: mfn,
            arg2: 0,
        }])
        .0
    }

    /// An L1 of our own making: refused for pinning while writable,
    /// pinned once read-only, then never mappable writable until unpinned.
    fn pinning(w: &Window) -> Outcome {
        let table = alloc()?;
        let data = alloc()?;
        for i in 0..512 {
            let value = if i == 7 {
                pte::entry(data.mfn, pte::KERNEL_RW)
            } else {
                0
            };
            if frame::write_word(&table, i, value).is_err() {
                fail!("filling the new L1 through the physmap faulted");
            }
        }
        refused(
            "pinning an L1 that is still mapped writable",
            pin(table.mfn, MMUEXT_PIN_L1_TABLE),
        )?;
        if let Err(e) = frame::protect(&table, pte::KERNEL_RO) {
            fail!("remapping the new L1 read-only: {e}");
        }
        ensure_eq!(
            pin(table.mfn, MMUEXT_PIN_L1_TABLE),
            0,
            "MMUEXT_PIN_L1_TABLE of our L1"
        );
        let va = w.va(50);
        let ret = hc::update_va_mapping(va, pte::entry(table.mfn, pte::KERNEL_RW), UVMF_INVLPG);
        refused("a writable mapping of a pinned L1", ret)?;
        ensure!(
            frame::protect(&table, pte::KERNEL_RW).is_err(),
            "the pinned L1's physmap mapping became writable"
        );
        ensure_eq!(
            hc::update_va_mapping(va, pte::entry(table.mfn, pte::KERNEL_RO), UVMF_INVLPG),
            0,
            "a read-only mapping of the pinned L1"
        );
        ensure_eq!(
            probe::read(va + 7 * 8).map(pte::mfn).ok(),
            Some(data.mfn),
            "entry 7 of the pinned L1, read through its mapping"
        );
        ensure_eq!(
            hc::update_va_mapping(va, 0, UVMF_INVLPG),
            0,
            "unmapping the pinned L1"
        );
        ensure_eq!(pin(table.mfn, MMUEXT_UNPIN_TABLE), 0, "MMUEXT_UNPIN_TABLE");
        if let Err(e) = frame::protect(&table, pte::KERNEL_RW) {
            fail!("a writable mapping of the L1 once unpinned: {e}");
        }
        ensure!(
            frame::write_word(&table, 7, 0).is_ok(),
            "writing the unpinned L1 faulted"
        );
        mm::free_frame(table);
        mm::free_frame(data);
        Ok(())
    }

    /// update_va_mapping of an address in the hypervisor's hole.
    fn hole() -> Outcome {
        let f = alloc()?;
        let ret =
            hc::update_va_mapping_in_hole(HYPERVISOR_POINTER, pte::entry(f.mfn, pte::KERNEL_RO));
        refused(
            &alloc::format!("update_va_mapping of {HYPERVISOR_POINTER:#x} (hypervisor hole)"),
            ret,
        )?;
        mm::free_frame(f);
        Ok(())
    }

    /// Xen answers -ENOSYS for a command it does not know, after doing
    /// the ones before it.
    fn unknown_mmuext() -> Outcome {
        for cmd in [14u32, 21, 1000] {
            let flush = MmuextOp {
                cmd: MMUEXT_TLB_FLUSH_LOCAL,
                _pad: 0,
                arg1: 0,
                arg2: 0,
            };
            let unknown = MmuextOp {
                cmd,
                _pad: 0,
                arg1: 0,
                arg2: 0,
            };
            let (ret, done) = hc::mmuext_op(&[flush, unknown]);
            ensure_eq!(
                (ret, done),
                (ENOSYS, 1),
                "mmuext_op [flush, command {cmd} (none)]: (result, done)"
            );
        }
        Ok(())
    }

    /// Pointers the hypervisor must not follow on the guest's behalf.
    fn bad_pointers(w: &Window) -> Outcome {
        let unmapped = w.va(60);
        ensure!(probe::read(unmapped).is_err(), "scratch page 60 is mapped");
        let self_ = DOMID_SELF as u64;
        for bad in [HYPERVISOR_POINTER, NON_CANONICAL, unmapped] {
            let cases: [(&str, Hypercall, [u64; 5], usize); 5] = [
                (
                    "xen_version(extraversion)",
                    Hypercall::XenVersion,
                    [XENVER_EXTRAVERSION as u64, bad, 0, 0, 0],
                    1,
                ),
                (
                    "event_channel_op(send)",
                    Hypercall::EventChannelOp,
                    [EVTCHNOP_SEND as u64, bad, 0, 0, 0],
                    1,
                ),
                (
                    "mmu_update(1 request)",
                    Hypercall::MmuUpdate,
                    [bad, 1, 0, self_, 0],
                    0,
                ),
                (
                    "mmuext_op(1 op)",
                    Hypercall::MmuextOp,
                    [bad, 1, 0, self_, 0],
                    0,
                ),
                (
                    "multicall(1 entry)",
                    Hypercall::Multicall,
                    [bad, 1, 0, 0, 0],
                    0,
                ),
            ];
            for (what, nr, args, pointer) in cases {
                ensure_eq!(
                    hc::with_bad_pointer(nr, args, pointer),
                    EFAULT,
                    "{what} with pointer {bad:#x}"
                );
            }
        }
        Ok(())
    }
}
