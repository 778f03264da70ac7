//! `pingpong`: two domUs talking through the two primitives every split
//! driver is made of, an interdomain event channel and a granted page.
//!
//! Start two, each naming the other: `cmdline="peer=<domid> [rounds=N]"`
//! (default 100000 rounds). The one with the lower domain id is the
//! server: it grants one page to its peer (its first grant, so ref 8),
//! allocates an unbound port for the peer and writes the port number into
//! the page. The client maps the server's ref 8 (retrying until it has
//! been granted), reads the port and binds to it. Then, each round, the
//! client writes a payload derived from the round number and notifies; the
//! server checks it, writes a transformed reply and notifies; the client
//! checks the reply (`guests::pingpong` has the page layout). Each side
//! prints `pingpong: <N> round trips, all payloads checked`, or names the
//! first mismatch; the client also prints the mean round-trip time.
//!
//! Afterwards the client grant-copies the whole shared page into a page of
//! its own and compares it byte for byte with its mapping, then times
//! `GNTTABOP_copy` against a plain memcpy (`pingpong: grant copy <x> MB/s,
//! memcpy <y> MB/s`). Finally the revocation check: with the page still
//! mapped by the client, the server's `end_access` must be refused; once
//! the client has unmapped it (and said so over the channel) it must
//! succeed. Both then power off.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    extern crate alloc;

    use alloc::vec;
    use core::sync::atomic::Ordering;

    use abi::event_channel::Port;
    use abi::xen::DomId;
    use guests::pingpong::{
        DEFAULT_ROUNDS, DONE_MAPPED, FILL_OFFSET, MAGIC, MAGIC_OFFSET, PAGE, PAYLOAD, PLEASE_UNMAP,
        PORT_OFFSET, REQ_OFFSET, REQ_SEQ_OFFSET, RSP_OFFSET, RSP_SEQ_OFFSET, SERVER_REF,
        STATE_OFFSET, fill_byte, first_difference, is_server, payload, reply,
    };
    use pv_guest_sdk::grant::{self, CopyOp, CopySide, GrantError, GrantTable};
    use pv_guest_sdk::shmem::SharedPage;
    use pv_guest_sdk::{StartInfo, events, evtchn, mm, println, sched, time};

    /// How long the client keeps trying to map the server's grant.
    const CONNECT_NS: u64 = 120_000_000_000;
    /// How long either side waits for the other at the end.
    const END_NS: u64 = 60_000_000_000;

    pub fn main(start: &'static StartInfo) -> ! {
        let peer = match start.cmdline_option("peer").map(str::parse::<DomId>) {
            Some(Ok(peer)) => peer,
            _ => stop(format_args!("usage: peer=<domid> [rounds=N]")),
        };
        let rounds = match start.cmdline_option("rounds").map(str::parse::<u64>) {
            None => DEFAULT_ROUNDS,
            Some(Ok(n)) if n > 0 => n,
            Some(_) => stop(format_args!("rounds= needs a positive number")),
        };
        let own = match evtchn::own_domid() {
            Ok(own) => own,
            Err(e) => stop(format_args!("cannot learn our domain id: {e}")),
        };
        if own == peer {
            stop(format_args!("peer={peer} is this domain"));
        }
        if is_server(own, peer) {
            println!("pingpong: domain {own} serves domain {peer}, {rounds} rounds");
            server(peer, rounds)
        } else {
            println!("pingpong: domain {own} is the client of domain {peer}, {rounds} rounds");
            client(peer, rounds)
        }
    }

    /// Prints why the guest cannot go on, and powers off.
    fn stop(why: core::fmt::Arguments) -> ! {
        println!("pingpong: {why}");
        sched::poweroff()
    }

    fn read_payload(page: &SharedPage, offset: usize) -> [u8; PAYLOAD] {
        let mut out = [0; PAYLOAD];
        page.read_bytes(offset, &mut out);
        out
    }

    /// Waits until `ready()`, or `timeout_ns` passes; the timer wakes the
    /// vCPU when no event does.
    fn wait_for(timeout_ns: u64, mut ready: impl FnMut() -> bool) -> bool {
        let deadline = time::now_ns().saturating_add(timeout_ns);
        while !ready() {
            if time::now_ns() >= deadline {
                return false;
            }
            let _ = time::sleep_ns(1_000_000);
        }
        true
    }

    fn server(peer: DomId, rounds: u64) -> ! {
        let mut table = GrantTable::init()
            .unwrap_or_else(|e| stop(format_args!("grant table set-up failed: {e}")));
        let shared =
            mm::alloc_shared().unwrap_or_else(|e| stop(format_args!("no frame to share: {e}")));
        let page = shared.page();
        for offset in FILL_OFFSET..PAGE {
            page.u8(offset).store(fill_byte(offset), Ordering::Relaxed);
        }
        let port = evtchn::alloc_unbound(peer)
            .unwrap_or_else(|e| stop(format_args!("alloc_unbound for {peer} failed: {e}")));
        page.u32(PORT_OFFSET).store(port, Ordering::Relaxed);
        page.u32(MAGIC_OFFSET).store(MAGIC, Ordering::Release);
        // Granted last: a client that can map the page finds it complete.
        let gref = table
            .grant_access(peer, shared.mfn(), false)
            .unwrap_or_else(|e| stop(format_args!("grant to {peer} failed: {e}")));
        if gref != SERVER_REF {
            stop(format_args!(
                "first grant is ref {gref}, the protocol expects {SERVER_REF}"
            ));
        }

        let mut mismatch = None;
        for seq in 1..=rounds {
            events::wait_until(|| page.u64(REQ_SEQ_OFFSET).load(Ordering::Acquire) != seq - 1);
            let got = page.u64(REQ_SEQ_OFFSET).load(Ordering::Acquire);
            let request = read_payload(page, REQ_OFFSET);
            if mismatch.is_none() {
                if got != seq {
                    mismatch = Some((seq, "sequence", got as usize));
                } else if let Some(at) = first_difference(&request, &payload(seq)) {
                    mismatch = Some((seq, "request byte", at));
                }
            }
            page.write_bytes(RSP_OFFSET, &reply(&request));
            page.u64(RSP_SEQ_OFFSET).store(seq, Ordering::Release);
            let _ = evtchn::notify(port);
        }
        report(rounds, mismatch);

        // Revocation: refused while the client has the page mapped ...
        if !wait_for(END_NS, || {
            page.u32(STATE_OFFSET).load(Ordering::Acquire) == DONE_MAPPED
        }) {
            stop(format_args!("the client never reported its rounds done"));
        }
        match table.end_access(gref) {
            Err(GrantError::InUse(_)) => {
                println!("pingpong: end_access refused while the peer has the page mapped")
            }
            Ok(()) => stop(format_args!(
                "end_access NOT refused while the peer has the page mapped"
            )),
            Err(e) => stop(format_args!("end_access failed oddly while mapped: {e}")),
        }
        // ... and allowed once it says it has unmapped it.
        evtchn::take_fired(port);
        page.u32(STATE_OFFSET)
            .store(PLEASE_UNMAP, Ordering::Release);
        let _ = evtchn::notify(port);
        let deadline = time::now_ns() + END_NS;
        loop {
            let fired = evtchn::wait_timeout(port, 100_000_000).unwrap_or(false);
            match table.end_access(gref) {
                Ok(()) => {
                    println!("pingpong: end_access succeeded after the peer unmapped");
                    break;
                }
                Err(GrantError::InUse(_)) if time::now_ns() < deadline => {
                    // An older event, or the unmap is still on its way.
                    let _ = fired;
                }
                Err(e) => stop(format_args!(
                    "end_access after the peer unmapped still refused: {e}"
                )),
            }
        }
        let _ = evtchn::close(port);
        sched::poweroff()
    }

    fn report(rounds: u64, mismatch: Option<(u64, &str, usize)>) {
        match mismatch {
            None => println!("pingpong: {rounds} round trips, all payloads checked"),
            Some((seq, what, at)) => {
                println!("pingpong: mismatch in round {seq} of {rounds}: {what} {at}")
            }
        }
    }

    /// Maps the server's ref 8, retrying while it is not granted yet (the
    /// server may not even exist yet).
    fn connect(peer: DomId) -> grant::Mapping {
        let deadline = time::now_ns() + CONNECT_NS;
        let mut last = None;
        loop {
            match grant::map(peer, SERVER_REF, false) {
                Ok(mapping)
                    if mapping.page().u32(MAGIC_OFFSET).load(Ordering::Acquire) == MAGIC =>
                {
                    return mapping;
                }
                Ok(mapping) => drop(mapping), // granted but not filled in
                Err(e) => last = Some(e),
            }
            if time::now_ns() >= deadline {
                match last {
                    Some(e) => stop(format_args!("no grant {SERVER_REF} from {peer}: {e}")),
                    None => stop(format_args!("grant {SERVER_REF} of {peer} has no header")),
                }
            }
            let _ = time::sleep_ns(1_000_000);
        }
    }

    fn client(peer: DomId, rounds: u64) -> ! {
        let mapping = connect(peer);
        let page = mapping.page();
        let remote: Port = page.u32(PORT_OFFSET).load(Ordering::Acquire);
        let port = evtchn::bind_interdomain(peer, remote)
            .unwrap_or_else(|e| stop(format_args!("bind to port {remote} of {peer} failed: {e}")));

        let mut mismatch = None;
        let t0 = time::now_ns();
        for seq in 1..=rounds {
            page.write_bytes(REQ_OFFSET, &payload(seq));
            page.u64(REQ_SEQ_OFFSET).store(seq, Ordering::Release);
            let _ = evtchn::notify(port);
            events::wait_until(|| page.u64(RSP_SEQ_OFFSET).load(Ordering::Acquire) == seq);
            if mismatch.is_none() {
                let got = read_payload(page, RSP_OFFSET);
                if let Some(at) = first_difference(&got, &reply(&payload(seq))) {
                    mismatch = Some((seq, "reply byte", at));
                }
            }
        }
        let elapsed = time::now_ns() - t0;
        report(rounds, mismatch);
        println!("pingpong: mean round trip {} ns", elapsed / rounds);

        copy_check(peer, page);

        // Revocation: the server tries while we still have the page
        // mapped, then asks us to unmap it.
        page.u32(STATE_OFFSET).store(DONE_MAPPED, Ordering::Release);
        let _ = evtchn::notify(port);
        let asked = wait_for(END_NS, || {
            page.u32(STATE_OFFSET).load(Ordering::Acquire) == PLEASE_UNMAP
        });
        if let Err(e) = grant::unmap(mapping) {
            stop(format_args!("unmapping the server's page failed: {e}"));
        }
        let _ = evtchn::notify(port);
        if !asked {
            stop(format_args!("the server never asked us to unmap"));
        }
        // Give the server a moment to revoke before our port goes away.
        let _ = time::sleep_ns(10_000_000);
        let _ = evtchn::close(port);
        sched::poweroff()
    }

    /// Grant-copies the server's page into one of ours and compares it with
    /// the mapping byte for byte, then times grant copy against memcpy.
    fn copy_check(peer: DomId, mapped: &SharedPage) {
        let local = match mm::alloc_shared() {
            Ok(frame) => frame,
            Err(e) => return println!("pingpong: grant copy skipped, no frame: {e}"),
        };
        let source = CopySide::Grant {
            dom: peer,
            gref: SERVER_REF,
            offset: 0,
        };
        let dest = CopySide::Local {
            page: local.page(),
            offset: 0,
        };
        let copied = CopyOp::new(source, dest, PAGE as u16).and_then(|op| grant::copy(&mut [op]));
        if let Err(e) = copied {
            return println!("pingpong: grant copy mismatch: the copy failed: {e}");
        }
        let (mut want, mut got) = (vec![0u8; PAGE], vec![0u8; PAGE]);
        mapped.read_bytes(0, &mut want);
        local.page().read_bytes(0, &mut got);
        let fill_ok = (FILL_OFFSET..PAGE).all(|i| got[i] == fill_byte(i));
        match first_difference(&got, &want) {
            None if fill_ok => println!("pingpong: grant copy of the shared page: right bytes"),
            None => println!("pingpong: grant copy mismatch: the fill pattern is wrong"),
            Some(at) => println!("pingpong: grant copy mismatch at byte {at}"),
        }

        // Throughput: batches of 8 page copies, against memcpy of as much.
        const BATCH: usize = 8;
        const BATCHES: usize = 128; // 4 MiB
        let mut pages = vec![local];
        while pages.len() < BATCH {
            match mm::alloc_shared() {
                Ok(frame) => pages.push(frame),
                Err(_) => break,
            }
        }
        let t0 = time::now_ns();
        for _ in 0..BATCHES {
            let mut ops: alloc::vec::Vec<CopyOp> = pages
                .iter()
                .filter_map(|p| {
                    CopyOp::new(
                        source,
                        CopySide::Local {
                            page: p.page(),
                            offset: 0,
                        },
                        PAGE as u16,
                    )
                    .ok()
                })
                .collect();
            if let Err(e) = grant::copy(&mut ops) {
                return println!("pingpong: grant copy mismatch: timed copy failed: {e}");
            }
        }
        let grant_ns = (time::now_ns() - t0).max(1);
        let grant_bytes = (BATCHES * pages.len() * PAGE) as u64;

        let src = vec![0x5au8; PAGE];
        let mut dst = vec![vec![0u8; PAGE]; pages.len()];
        let t0 = time::now_ns();
        for round in 0..BATCHES {
            for d in dst.iter_mut() {
                d.copy_from_slice(core::hint::black_box(&src));
            }
            core::hint::black_box(&dst[round % dst.len()]);
        }
        let memcpy_ns = (time::now_ns() - t0).max(1);
        // Bytes per microsecond is MB/s (10^6 bytes per second).
        println!(
            "pingpong: grant copy {} MB/s, memcpy {} MB/s",
            grant_bytes * 1000 / grant_ns,
            grant_bytes * 1000 / memcpy_ns
        );
    }
}
