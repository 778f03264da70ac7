//! Grant map and grant copy between two domUs, in raw grant-table
//! operations so the hypervisor is tested and not the SDK. dom0 creates
//! the pair: `create domu-grant name=granter cmdline="granter peer=2"`,
//! then `create domu-grant name=mapper cmdline="mapper peer=1"`.
//!
//! The granter sets up its grant table, fills three pages with known
//! patterns and grants them to its peer: ref 8 read-only (its first words
//! carry a magic and the event-channel port it allocated for the peer),
//! ref 9 and ref 10 writable. The mapper, stepping through the protocol
//! with event-channel notifications:
//!
//! 1. maps ref 8 read-only (retrying until it is granted): the pattern is
//!    there and a write through the mapping faults; a writable map of the
//!    read-only grant is refused, and so are maps and copies of a ref the
//!    peer never granted (`GNTST_permission_denied`) and of one beyond its
//!    table (`GNTST_bad_gntref`);
//! 2. maps ref 9 writable, finds its pattern and writes a new one;
//! 3. copies ref 10 into a page of its own (`GNTTABOP_copy`, source gref),
//!    and 500 bytes of its own at offset 100 into ref 10 (dest gref); a
//!    copy into the read-only ref 8 is refused;
//!    -> notifies. The granter checks the bytes: page 9 holds the new
//!    pattern, page 10 the copied 500 bytes at 100..600 and its own
//!    pattern around them, page 8 is unchanged; the hypervisor has marked
//!    ref 8 `GTF_reading`, ref 9 `GTF_reading|GTF_writing`; revoking ref 9
//!    (Xen's end-access compare-exchange) is refused while it is mapped;
//!    <- notifies.
//! 4. unmaps both; the pages no longer read -> notifies. The granter finds
//!    the flags cleared and revokes every grant <- notifies.
//! 5. a map of the revoked ref 9 is refused -> notifies.
//!
//! Each side prints one line per step and its result line
//! (`PASS domu-grant`), then powers off.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use alloc::format;
    use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};

    use abi::Hypercall;
    use abi::event_channel::{self as evtchn, AllocUnbound, BindInterdomain, Port};
    use abi::grant_table::{self as gnttab, GrantRef};
    use abi::xen::{DOMID_SELF, UVMF_INVLPG};
    use pv_guest_sdk::events;
    use pv_guest_sdk::mm::{self, Frame, pte};
    use pv_guest_sdk::{StartInfo, println};
    use test_guests::Checks;
    use test_guests::arch::hypercall;
    use test_guests::scratch::Window;
    use test_guests::{frame, hc, host, probe};

    const NAME: &str = "domu-grant";
    const MAGIC: u64 = 0x6772_616e_745f_7631;
    const REF_RO: GrantRef = 8;
    const REF_RW: GrantRef = 9;
    const REF_COPY: GrantRef = 10;
    const SEED_RO: u64 = 1;
    const SEED_RW: u64 = 2;
    const SEED_RW_NEW: u64 = 3;
    const SEED_COPY: u64 = 4;
    const SEED_MINE: u64 = 5;
    /// The bytes of page 10 the mapper overwrites by grant copy.
    const COPY_AT: usize = 100;
    const COPY_LEN: usize = 500;

    /// Scratch window pages.
    const PAGE_TABLE: u64 = 0;
    const PAGE_RO: u64 = 1;
    const PAGE_RW: u64 = 2;

    /// Notifications received on the interdomain channel.
    static RECEIVED: AtomicU32 = AtomicU32::new(0);

    fn on_event(_port: Port) {
        RECEIVED.fetch_add(1, Ordering::SeqCst);
    }

    pub fn main(start: &'static StartInfo) -> ! {
        probe::install();
        let mut c = Checks::new(NAME);
        let peer = start
            .cmdline_option("peer")
            .and_then(|p| p.parse::<u16>().ok());
        let role = start.cmdline().split_whitespace().next().unwrap_or("");
        let window = Window::new();
        match (role, peer, window) {
            ("granter", Some(peer), Ok(w)) => granter(&mut c, &w, peer),
            ("mapper", Some(peer), Ok(w)) => mapper(&mut c, &w, peer),
            (_, _, Err(e)) => {
                c.check(false, &format!("setting up the scratch window ({e})"));
            }
            _ => {
                c.check(
                    false,
                    &format!(
                        "command line `{}` names a role (granter|mapper) and peer=<id>",
                        start.cmdline()
                    ),
                );
            }
        }
        c.finish()
    }

    /// The word at index `i` of the page filled with `seed`.
    fn pattern(seed: u64, i: u64) -> u64 {
        (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i + 1).wrapping_mul(0xff51_afd7_ed55_8ccd))
            .rotate_left((i % 63) as u32)
    }

    fn pattern_byte(seed: u64, offset: usize) -> u8 {
        pattern(seed, offset as u64 / 8).to_le_bytes()[offset % 8]
    }

    fn fill(f: &Frame, seed: u64) -> bool {
        (0..512).all(|i| frame::write_word(f, i, pattern(seed, i as u64)).is_ok())
    }

    /// The first word index from `from` whose value `read` gives is not
    /// `want(i)`.
    fn first_mismatch(
        from: usize,
        read: impl Fn(usize) -> Option<u64>,
        want: impl Fn(usize) -> u64,
    ) -> Option<(usize, Option<u64>, u64)> {
        (from..512)
            .map(|i| (i, read(i), want(i)))
            .find(|(_, got, want)| *got != Some(*want))
    }

    fn describe(mismatch: Option<(usize, Option<u64>, u64)>) -> alloc::string::String {
        match mismatch {
            None => "all 512 words right".into(),
            Some((i, Some(got), want)) => format!("word {i} is {got:#x}, want {want:#x}"),
            Some((i, None, _)) => format!("word {i} faulted"),
        }
    }

    fn call(nr: Hypercall, args: [u64; 5]) -> i64 {
        #[allow(unsafe_code)]
        // SAFETY: callers pass pointers to live plain-data buffers of
        // their own and host addresses in the scratch window, which holds
        // no Rust object.
        unsafe {
            hypercall(nr as u32, args)
        }
    }

    fn grant_op<T>(cmd: u32, ops: &mut [T]) -> i64 {
        call(
            Hypercall::GrantTableOp,
            [cmd as u64, ops.as_mut_ptr() as u64, ops.len() as u64, 0, 0],
        )
    }

    fn evtchn_op<T>(cmd: u32, arg: &mut T) -> i64 {
        call(
            Hypercall::EventChannelOp,
            [cmd as u64, arg as *mut T as u64, 0, 0, 0],
        )
    }

    /// Waits until `count` notifications have come in.
    fn wait_for(count: u32) {
        events::wait_until(|| RECEIVED.load(Ordering::SeqCst) >= count);
    }

    fn notify(c: &mut Checks, port: Port, what: &str) {
        let ret = hc::evtchn_send(port);
        c.check(ret == 0, &format!("notifying the peer ({what}): {ret}"));
    }

    /// The flags word of grant entry `ref_` in the table mapped at
    /// `table_va`, shared with the hypervisor.
    fn flags(table_va: u64, ref_: GrantRef) -> &'static AtomicU16 {
        #[allow(unsafe_code)]
        // SAFETY: the entry lies in our grant-table frame, mapped writable
        // in the scratch window for the rest of the run; the hypervisor
        // changes the word only with atomic operations, as Xen does.
        unsafe {
            &*((table_va + ref_ as u64 * 8) as *const AtomicU16)
        }
    }

    /// Grants `frame` to `peer` in entry `ref_`: frame and domain first,
    /// then the flags that make it valid.
    fn grant(table_va: u64, ref_: GrantRef, peer: u16, mfn: u64, readonly: bool) {
        let entry = table_va + ref_ as u64 * 8;
        #[allow(unsafe_code)]
        // SAFETY: the entry lies in our grant-table frame, mapped writable
        // in the scratch window; nothing else holds a reference to it.
        unsafe {
            core::ptr::write_volatile((entry + 2) as *mut u16, peer);
            core::ptr::write_volatile((entry + 4) as *mut u32, mfn as u32);
        }
        core::sync::atomic::fence(Ordering::SeqCst);
        let flags_value =
            gnttab::GTF_PERMIT_ACCESS | if readonly { gnttab::GTF_READONLY } else { 0 };
        flags(table_va, ref_).store(flags_value, Ordering::SeqCst);
    }

    /// Xen's `gnttab_end_foreign_access_ref` (v1): clears the entry unless
    /// the peer has it mapped (`GTF_reading`/`GTF_writing`); whether it
    /// did.
    fn end_access(table_va: u64, ref_: GrantRef) -> bool {
        let word = flags(table_va, ref_);
        let mut current = word.load(Ordering::SeqCst);
        loop {
            if current & (gnttab::GTF_READING | gnttab::GTF_WRITING) != 0 {
                return false;
            }
            match word.compare_exchange(current, 0, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
    }

    fn granter(c: &mut Checks, w: &Window, peer: u16) {
        let mut frames = [0u64; 1];
        let mut setup = [gnttab::SetupTable {
            dom: DOMID_SELF,
            nr_frames: 1,
            frame_list: frames.as_mut_ptr() as u64,
            ..Default::default()
        }];
        let ret = grant_op(gnttab::GNTTABOP_SETUP_TABLE, &mut setup);
        if !c.check(
            ret == 0 && setup[0].status == gnttab::GNTST_OKAY && frames[0] != 0,
            &format!("setup_table ({ret}, status {})", setup[0].status),
        ) {
            return;
        }
        let table_va = w.va(PAGE_TABLE);
        let ret =
            hc::update_va_mapping(table_va, pte::entry(frames[0], pte::KERNEL_RW), UVMF_INVLPG);
        if !c.check(ret == 0, &format!("mapping the grant table frame ({ret})")) {
            return;
        }
        let (Ok(ro), Ok(rw), Ok(copy)) = (mm::alloc_frame(), mm::alloc_frame(), mm::alloc_frame())
        else {
            c.check(false, "allocating three pages to grant");
            return;
        };
        let mut alloc = AllocUnbound {
            dom: DOMID_SELF,
            remote_dom: peer,
            port: 0,
        };
        let ret = evtchn_op(evtchn::EVTCHNOP_ALLOC_UNBOUND, &mut alloc);
        if !c.check(
            ret == 0,
            &format!("alloc_unbound for domain {peer} ({ret})"),
        ) {
            return;
        }
        let port = alloc.port;
        events::set_handler(port, on_event);
        let _ = events::unmask(port);
        events::enable();

        let filled = fill(&ro, SEED_RO) && fill(&rw, SEED_RW) && fill(&copy, SEED_COPY);
        let header = frame::write_word(&ro, 0, MAGIC).is_ok()
            && frame::write_word(&ro, 1, port as u64).is_ok();
        if !c.check(filled && header, "filling the pages") {
            return;
        }
        grant(table_va, REF_RO, peer, ro.mfn, true);
        grant(table_va, REF_RW, peer, rw.mfn, false);
        grant(table_va, REF_COPY, peer, copy.mfn, false);
        println!(
            "{NAME}: granted refs {REF_RO} (read-only), {REF_RW}, {REF_COPY} to domain {peer}; port {port}"
        );

        wait_for(1);
        let mismatch = first_mismatch(
            2,
            |i| Some(frame::read_word(&ro, i)),
            |i| pattern(SEED_RO, i as u64),
        );
        c.check(
            mismatch.is_none(),
            &format!(
                "page {REF_RO} (read-only) unchanged: {}",
                describe(mismatch)
            ),
        );
        let mismatch = first_mismatch(
            0,
            |i| Some(frame::read_word(&rw, i)),
            |i| pattern(SEED_RW_NEW, i as u64),
        );
        let ok = c.check(
            mismatch.is_none(),
            &format!(
                "page {REF_RW} holds what the peer wrote through its mapping: {}",
                describe(mismatch)
            ),
        );
        println!(
            "{NAME}: page {REF_RW} written through the peer's mapping: {}",
            if ok { "right bytes" } else { "WRONG" }
        );
        let expected_copy = |i: usize| {
            let bytes: [u8; 8] = core::array::from_fn(|b| {
                let offset = i * 8 + b;
                if (COPY_AT..COPY_AT + COPY_LEN).contains(&offset) {
                    pattern_byte(SEED_MINE, offset - COPY_AT)
                } else {
                    pattern_byte(SEED_COPY, offset)
                }
            });
            u64::from_le_bytes(bytes)
        };
        let mismatch = first_mismatch(0, |i| Some(frame::read_word(&copy, i)), expected_copy);
        let ok = c.check(
            mismatch.is_none(),
            &format!(
                "page {REF_COPY} holds the peer's {COPY_LEN} copied bytes at {COPY_AT} and its own around them: {}",
                describe(mismatch)
            ),
        );
        println!(
            "{NAME}: page {REF_COPY} after the peer's grant copy into it: {}",
            if ok { "right bytes" } else { "WRONG" }
        );
        let f_ro = flags(table_va, REF_RO).load(Ordering::SeqCst);
        let f_rw = flags(table_va, REF_RW).load(Ordering::SeqCst);
        let f_copy = flags(table_va, REF_COPY).load(Ordering::SeqCst);
        println!(
            "{NAME}: flags while mapped: ref 8 {f_ro:#x}, ref 9 {f_rw:#x}, ref 10 {f_copy:#x}"
        );
        c.check(
            f_ro & gnttab::GTF_READING != 0 && f_ro & gnttab::GTF_WRITING == 0,
            &format!("ref {REF_RO} mapped read-only is GTF_reading only ({f_ro:#x})"),
        );
        c.check(
            f_rw & (gnttab::GTF_READING | gnttab::GTF_WRITING)
                == gnttab::GTF_READING | gnttab::GTF_WRITING,
            &format!("ref {REF_RW} mapped writable is GTF_reading|GTF_writing ({f_rw:#x})"),
        );
        c.check(
            f_copy & (gnttab::GTF_READING | gnttab::GTF_WRITING) == 0,
            &format!("ref {REF_COPY}, only copied, is not marked in use ({f_copy:#x})"),
        );
        let revoked = end_access(table_va, REF_RW);
        c.check(
            !revoked,
            "revoking ref 9 while the peer has it mapped is refused",
        );
        println!(
            "{NAME}: revoking ref {REF_RW} while mapped: {}",
            if revoked { "ACCEPTED" } else { "refused" }
        );
        notify(c, port, "checked; unmap now");

        wait_for(2);
        let f_ro = flags(table_va, REF_RO).load(Ordering::SeqCst);
        let f_rw = flags(table_va, REF_RW).load(Ordering::SeqCst);
        c.check(
            (f_ro | f_rw) & (gnttab::GTF_READING | gnttab::GTF_WRITING) == 0,
            &format!("unmapping clears GTF_reading/GTF_writing (ref 8 {f_ro:#x}, ref 9 {f_rw:#x})"),
        );
        let all = [REF_RO, REF_RW, REF_COPY]
            .iter()
            .all(|&r| end_access(table_va, r));
        c.check(all, "every grant revokes once unmapped");
        println!(
            "{NAME}: revoking refs 8, 9, 10 after the unmap: {}",
            if all { "done" } else { "REFUSED" }
        );
        notify(c, port, "revoked");
        wait_for(3);
        let _ = hc::update_va_mapping(table_va, 0, UVMF_INVLPG);
    }

    fn map(dom: u16, ref_: GrantRef, va: u64, readonly: bool) -> Result<u32, i16> {
        let mut op = [gnttab::MapGrantRef {
            host_addr: va,
            flags: gnttab::GNTMAP_HOST_MAP | if readonly { gnttab::GNTMAP_READONLY } else { 0 },
            ref_,
            dom,
            ..Default::default()
        }];
        let ret = grant_op(gnttab::GNTTABOP_MAP_GRANT_REF, &mut op);
        match (ret, op[0].status) {
            (0, gnttab::GNTST_OKAY) => Ok(op[0].handle),
            (0, status) => Err(status),
            (ret, _) => Err(ret as i16),
        }
    }

    fn unmap(va: u64, handle: u32) -> (i64, i16) {
        let mut op = [gnttab::UnmapGrantRef {
            host_addr: va,
            handle,
            ..Default::default()
        }];
        let ret = grant_op(gnttab::GNTTABOP_UNMAP_GRANT_REF, &mut op);
        (ret, op[0].status)
    }

    fn copy(op: gnttab::Copy) -> (i64, i16) {
        let mut ops = [op];
        let ret = grant_op(gnttab::GNTTABOP_COPY, &mut ops);
        (ret, ops[0].status)
    }

    fn mapper(c: &mut Checks, w: &Window, peer: u16) {
        let ro_va = w.va(PAGE_RO);
        let rw_va = w.va(PAGE_RW);
        // The granter is created first but may not have granted yet.
        let mut tries = 0;
        let ro_handle = loop {
            match map(peer, REF_RO, ro_va, true) {
                Ok(handle) => break handle,
                Err(_) if tries < 5000 => {
                    tries += 1;
                    let _ = pv_guest_sdk::hypercall::sched_yield();
                }
                Err(status) => {
                    c.check(
                        false,
                        &format!(
                            "mapping domain {peer}'s ref {REF_RO} read-only (last status {status})"
                        ),
                    );
                    return;
                }
            }
        };
        println!("{NAME}: mapped domain {peer}'s ref {REF_RO} read-only after {tries} refusals");
        let header = (probe::read(ro_va).ok(), probe::read(ro_va + 8).ok());
        let Some(port) = (match header {
            (Some(MAGIC), Some(port)) => Some(port as Port),
            _ => None,
        }) else {
            c.check(
                false,
                &format!("ref {REF_RO} starts with the magic and a port ({header:x?})"),
            );
            return;
        };
        let mismatch = first_mismatch(
            2,
            |i| probe::read(ro_va + i as u64 * 8).ok(),
            |i| pattern(SEED_RO, i as u64),
        );
        let ok = c.check(
            mismatch.is_none(),
            &format!(
                "the read-only mapping shows the granted page: {}",
                describe(mismatch)
            ),
        );
        println!(
            "{NAME}: read-only mapping of ref {REF_RO}: {}",
            if ok { "right bytes" } else { "WRONG" }
        );
        let write = probe::write(ro_va + 16, 0xbad);
        c.check(
            write.is_err(),
            "a write through the read-only mapping faults",
        );
        match map(peer, REF_RO, rw_va, false) {
            Ok(handle) => {
                c.check(false, "a writable map of a read-only grant is refused");
                let _ = unmap(rw_va, handle);
            }
            Err(status) => println!(
                "{NAME}: writable map of read-only ref {REF_RO}: refused (status {status})"
            ),
        }

        // Refs the peer never granted, in and out of its one-frame table
        // (copies go into a page of ours, so only the source is wrong).
        let Ok(sink) = mm::alloc_frame() else {
            c.check(false, "allocating a page to copy into");
            return;
        };
        for (ref_, want, why) in [
            (REF_COPY + 1, host::not_granted_status(), "never granted"),
            (600, gnttab::GNTST_BAD_GNTREF, "beyond the peer's table"),
        ] {
            for readonly in [true, false] {
                let got = map(peer, ref_, rw_va, readonly);
                let ok = c.check(
                    got == Err(want),
                    &format!("a map of ref {ref_} ({why}) gives status {want} (got {got:?})"),
                );
                println!(
                    "{NAME}: map of ref {ref_} ({why}): {got:?} {}",
                    if ok { "(refused)" } else { "WRONG" }
                );
            }
            let got = copy(gnttab::Copy {
                source: gnttab::CopyPtr {
                    u: ref_ as u64,
                    domid: peer,
                    offset: 0,
                    _pad: 0,
                },
                dest: gnttab::CopyPtr {
                    u: sink.mfn,
                    domid: DOMID_SELF,
                    offset: 0,
                    _pad: 0,
                },
                len: 8,
                flags: gnttab::GNTCOPY_SOURCE_GREF,
                ..Default::default()
            });
            c.check(
                got.0 == 0 && got.1 == want,
                &format!("a copy from ref {ref_} ({why}) gives status {want} (got {got:?})"),
            );
        }

        let rw_handle = match map(peer, REF_RW, rw_va, false) {
            Ok(handle) => handle,
            Err(status) => {
                c.check(
                    false,
                    &format!("mapping ref {REF_RW} writable (status {status})"),
                );
                return;
            }
        };
        let mismatch = first_mismatch(
            0,
            |i| probe::read(rw_va + i as u64 * 8).ok(),
            |i| pattern(SEED_RW, i as u64),
        );
        let ok = c.check(
            mismatch.is_none(),
            &format!(
                "the writable mapping shows the granted page: {}",
                describe(mismatch)
            ),
        );
        println!(
            "{NAME}: writable mapping of ref {REF_RW}: {}",
            if ok { "right bytes" } else { "WRONG" }
        );
        let wrote = (0..512).all(|i| probe::write(rw_va + i * 8, pattern(SEED_RW_NEW, i)).is_ok());
        c.check(wrote, "writing through the writable mapping");

        // Grant copy, both ways, into and out of pages of our own.
        let (Ok(mine), Ok(dest)) = (mm::alloc_frame(), mm::alloc_frame()) else {
            c.check(false, "allocating two pages for the copies");
            return;
        };
        if !c.check(fill(&mine, SEED_MINE), "filling our copy source") {
            return;
        }
        let local = |f: &Frame, offset: u16| gnttab::CopyPtr {
            u: f.mfn,
            domid: DOMID_SELF,
            offset,
            _pad: 0,
        };
        let remote = |ref_: GrantRef, offset: u16| gnttab::CopyPtr {
            u: ref_ as u64,
            domid: peer,
            offset,
            _pad: 0,
        };
        let got = copy(gnttab::Copy {
            source: remote(REF_COPY, 0),
            dest: local(&dest, 0),
            len: 4096,
            flags: gnttab::GNTCOPY_SOURCE_GREF,
            ..Default::default()
        });
        c.check(
            got == (0, gnttab::GNTST_OKAY),
            &format!("grant copy out of ref {REF_COPY}: {got:?}"),
        );
        let mismatch = first_mismatch(
            0,
            |i| Some(frame::read_word(&dest, i)),
            |i| pattern(SEED_COPY, i as u64),
        );
        let ok = c.check(
            mismatch.is_none(),
            &format!(
                "the page copied out of ref {REF_COPY}: {}",
                describe(mismatch)
            ),
        );
        println!(
            "{NAME}: grant copy of ref {REF_COPY} into our page: {}",
            if ok { "right bytes" } else { "WRONG" }
        );
        let got = copy(gnttab::Copy {
            source: local(&mine, 0),
            dest: remote(REF_COPY, COPY_AT as u16),
            len: COPY_LEN as u16,
            flags: gnttab::GNTCOPY_DEST_GREF,
            ..Default::default()
        });
        c.check(
            got == (0, gnttab::GNTST_OKAY),
            &format!("grant copy of {COPY_LEN} bytes into ref {REF_COPY} at {COPY_AT}: {got:?}"),
        );
        let got = copy(gnttab::Copy {
            source: local(&mine, 0),
            dest: remote(REF_RO, 0),
            len: 64,
            flags: gnttab::GNTCOPY_DEST_GREF,
            ..Default::default()
        });
        c.check(
            got.0 == 0 && got.1 < 0,
            &format!("grant copy into read-only ref {REF_RO} is refused: {got:?}"),
        );
        println!(
            "{NAME}: grant copy into read-only ref {REF_RO}: status {}",
            got.1
        );

        let mut bind = BindInterdomain {
            remote_dom: peer,
            remote_port: port,
            ..Default::default()
        };
        let ret = evtchn_op(evtchn::EVTCHNOP_BIND_INTERDOMAIN, &mut bind);
        if !c.check(
            ret == 0,
            &format!("bind_interdomain to domain {peer}'s port {port} ({ret})"),
        ) {
            return;
        }
        let local_port = bind.local_port;
        events::set_handler(local_port, on_event);
        let _ = events::unmask(local_port);
        events::enable();
        notify(c, local_port, "mapped and copied");

        wait_for(1);
        let ro = unmap(ro_va, ro_handle);
        let rw = unmap(rw_va, rw_handle);
        c.check(
            ro == (0, gnttab::GNTST_OKAY) && rw == (0, gnttab::GNTST_OKAY),
            &format!("unmapping both grants: {ro:?}, {rw:?}"),
        );
        // No invlpg of ours: unmap_grant_ref flushes, as on Xen, or the
        // peer's page would stay readable through a stale TLB entry.
        c.check(
            probe::read(ro_va).is_err() && probe::read(rw_va).is_err(),
            "an unmapped grant no longer reads",
        );
        let again = unmap(rw_va, rw_handle);
        c.check(
            again.0 == 0 && again.1 < 0,
            &format!("unmapping the same handle twice is refused: {again:?}"),
        );
        notify(c, local_port, "unmapped");

        wait_for(2);
        match map(peer, REF_RW, rw_va, false) {
            Ok(handle) => {
                c.check(false, "a map of a revoked grant is refused");
                let _ = unmap(rw_va, handle);
            }
            Err(status) => {
                c.check(
                    status == host::not_granted_status(),
                    &format!("a map of a revoked grant gives the not-granted status ({status})"),
                );
                println!("{NAME}: map of revoked ref {REF_RW}: refused (status {status})");
            }
        }
        notify(c, local_port, "done");
    }
}
