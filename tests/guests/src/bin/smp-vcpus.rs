//! Every vCPU of a domain at work at once (booted with
//! `dom0_max_vcpus=4`, on several CPUs):
//! - every vCPU comes up on its own entry and stack;
//! - each adds 1 to a shared counter 20000 times with `lock xadd`: the
//!   total is exact;
//! - IPIs: in each of 20 rounds every vCPU sends to every other (a port
//!   per sender and receiver) and waits, blocked in `SCHEDOP_poll`, until
//!   each of the others has sent to it;
//! - TLB shootdown, 1000 iterations of a race between vCPU 0 and vCPU 1
//!   over one page: vCPU 1 writes it (or reads it) in a loop; vCPU 0
//!   makes the page read-only (or unmaps it) with `UVMF_INVLPG |
//!   UVMF_ALL`. Once that returns no write of vCPU 1 may land (the frame
//!   keeps its value) and vCPU 1's next access must fault: a stale
//!   translation on its CPU would let it go on.
//!
//! The secondary vCPUs use atomics, hypercalls and the test library's
//! probes (with the SDK's trap table, which vCPU 1 installs for itself).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use alloc::vec;
    use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

    use abi::event_channel::Port;
    use abi::xen::{UVMF_ALL, UVMF_INVLPG};
    use pv_guest_sdk::events::mask;
    use pv_guest_sdk::mm::pte;
    use pv_guest_sdk::shared::shared_info;
    use pv_guest_sdk::time::now_ns;
    use pv_guest_sdk::{StartInfo, mm, println, smp};
    use test_guests::scratch::Window;
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure, ensure_eq, fail, frame, hc, probe};

    const NAME: &str = "smp-vcpus";
    const VCPUS: usize = 4;
    const ADDS: u64 = 20_000;
    const IPI_ROUNDS: u32 = 20;
    const TLB_ROUNDS: u32 = 1000;
    const MS: u64 = 1_000_000;
    /// How long a vCPU waits for the others at one step.
    const LIMIT_NS: u64 = 30_000 * MS;

    /// Where the vCPUs are: each vCPU's last finished step.
    static STEP: [AtomicU32; VCPUS] = [const { AtomicU32::new(0) }; VCPUS];
    /// The first failure on a secondary vCPU (0: none): what, packed.
    static FAULT: AtomicU64 = AtomicU64::new(0);
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    /// `SENT[to][from]`: the IPIs `from` has sent `to`.
    static SENT: [[AtomicU32; VCPUS]; VCPUS] =
        [const { [const { AtomicU32::new(0) }; VCPUS] }; VCPUS];
    /// `PORTS[to][from]`: an IPI port bound to vCPU `to`, sent by `from`.
    static PORTS: [[AtomicU32; VCPUS]; VCPUS] =
        [const { [const { AtomicU32::new(0) }; VCPUS] }; VCPUS];
    /// The TLB race: the page's address, the round, and vCPU 1's state in
    /// it (1: accessing, 2: faulted).
    static TLB_VA: AtomicU64 = AtomicU64::new(0);
    static TLB_ROUND: AtomicU32 = AtomicU32::new(0);
    static TLB_STATE: AtomicU32 = AtomicU32::new(0);
    /// The unexpected trap of vCPU 1: vector, error code, accesses before.
    static TRAPPED: AtomicU64 = AtomicU64::new(0);

    pub fn main(_start: &'static StartInfo) -> ! {
        finish(NAME, run())
    }

    /// Steps every vCPU passes in order.
    const UP: u32 = 1;
    const ADDED: u32 = 2;
    const IPIS: u32 = 3;

    fn wait_all(step: u32, what: &str) -> Outcome {
        let start = now_ns();
        while STEP.iter().any(|s| s.load(SeqCst) < step) {
            let fault = FAULT.load(SeqCst);
            if fault != 0 {
                fail!("a secondary vCPU failed: {}", explain(fault));
            }
            if now_ns() - start > LIMIT_NS {
                fail!(
                    "not every vCPU got to {what}: steps {:?}",
                    STEP.each_ref().map(|s| s.load(SeqCst))
                );
            }
            core::hint::spin_loop();
        }
        Ok(())
    }

    /// A failure on vCPU `vcpu`: `what` (1 IPI send, 2 TLB access that
    /// should have faulted, 3 TLB access that faulted too soon, 4
    /// installing the trap table), in round `round`.
    fn fault(vcpu: usize, what: u64, round: u32) {
        let _ = FAULT.compare_exchange(
            0,
            (vcpu as u64) << 48 | what << 32 | u64::from(round),
            SeqCst,
            SeqCst,
        );
    }

    fn explain(fault: u64) -> alloc::string::String {
        let (vcpu, what, round) = (fault >> 48, (fault >> 32) & 0xffff, fault as u32);
        let what = match what {
            1 => "EVTCHNOP_send failed",
            2 => "an access went on after the page was made read-only or unmapped and flushed",
            3 => "an access faulted while the page was mapped",
            _ => "installing the trap table failed",
        };
        let trapped = TRAPPED.load(SeqCst);
        alloc::format!(
            "vCPU {vcpu}, round {round}: {what} (vector {}, error code {:#x}, after {} accesses)",
            trapped >> 56,
            (trapped >> 40) & 0xffff,
            trapped & 0xff_ffff_ffff
        )
    }

    extern "C" fn secondary_entry() -> ! {
        let me = (0..VCPUS)
            .find(|&v| STEP[v].load(SeqCst) == u32::MAX)
            .unwrap_or(0);
        secondary(me);
        loop {
            let _ = hc::poll(&[], 0);
        }
    }

    /// Every vCPU's share of the counter and IPI steps.
    fn together(me: usize) -> Result<(), u32> {
        STEP[me].store(UP, SeqCst);
        while STEP.iter().any(|s| s.load(SeqCst) < UP) {
            core::hint::spin_loop();
        }
        for _ in 0..ADDS {
            COUNTER.fetch_add(1, SeqCst);
        }
        STEP[me].store(ADDED, SeqCst);
        let mine: [Port; VCPUS] = core::array::from_fn(|from| PORTS[me][from].load(SeqCst));
        let others: [Port; VCPUS - 1] =
            core::array::from_fn(|i| mine[if i < me { i } else { i + 1 }]);
        for round in 1..=IPI_ROUNDS {
            for to in (0..VCPUS).filter(|&to| to != me) {
                // Counted first: events coalesce (a second send before the
                // first is seen is one pending bit), counts do not.
                SENT[to][me].fetch_add(1, SeqCst);
                if hc::evtchn_send(PORTS[to][me].load(SeqCst)) != 0 {
                    return Err(round);
                }
            }
            // Blocked until each of the others has sent this round.
            loop {
                for &port in &others {
                    take_pending(port);
                }
                let mut waiting = [0; VCPUS - 1];
                let mut n = 0;
                for (from, &port) in mine.iter().enumerate() {
                    if from != me && SENT[me][from].load(SeqCst) < round {
                        waiting[n] = port;
                        n += 1;
                    }
                }
                if n == 0 {
                    break;
                }
                // A send after the count above leaves its port pending,
                // and the poll returns at once.
                let _ = hc::poll(&waiting[..n], 0);
            }
        }
        STEP[me].store(IPIS, SeqCst);
        Ok(())
    }

    /// Clears `port`'s pending bit; whether it was set.
    fn take_pending(port: Port) -> bool {
        let bit = 1u64 << (port % 64);
        shared_info().evtchn_pending[port as usize / 64].fetch_and(!bit, SeqCst) & bit != 0
    }

    fn secondary(me: usize) {
        if let Err(round) = together(me) {
            fault(me, 1, round);
            return;
        }
        if me == 1 {
            if smp::install_trap_table().is_err() {
                fault(me, 4, 0);
                return;
            }
            tlb_vcpu1();
        }
    }

    fn run() -> Outcome {
        let count = smp::vcpu_count() as usize;
        ensure_eq!(count, VCPUS, "vCPUs in the domain");
        for (to, ports) in PORTS.iter().enumerate() {
            for slot in ports {
                let port = match hc::bind_ipi(to as u32) {
                    Ok(p) => p,
                    Err(e) => fail!("EVTCHNOP_bind_ipi({to}): {e}"),
                };
                // Masked: they wake polls, never raise an upcall.
                mask(port);
                slot.store(port, SeqCst);
            }
        }
        probe::install();
        for (v, step) in STEP.iter().enumerate().skip(1) {
            // The entry finds its index by this mark.
            step.store(u32::MAX, SeqCst);
            let stack = vec![0u8; 16 * 1024].leak();
            if let Err(e) = smp::start_vcpu(v as u32, secondary_entry, stack) {
                fail!("starting vCPU {v}: {e}");
            }
            let start = now_ns();
            while step.load(SeqCst) == u32::MAX {
                if now_ns() - start > LIMIT_NS {
                    fail!("vCPU {v} did not start");
                }
                core::hint::spin_loop();
            }
        }
        if let Err(round) = together(0) {
            fail!("vCPU 0, round {round}: EVTCHNOP_send failed");
        }
        wait_all(ADDED, "the counter")?;
        ensure_eq!(
            COUNTER.load(SeqCst),
            ADDS * VCPUS as u64,
            "the shared counter after every vCPU's lock xadd"
        );
        wait_all(IPIS, "the IPI rounds")?;
        println!("{NAME}: {VCPUS} vCPUs up, counter exact, {IPI_ROUNDS} rounds of IPIs all to all");
        tlb_vcpu0()?;
        println!("{NAME}: {TLB_ROUNDS} TLB shootdown races won by the flush");
        Ok(())
    }

    /// Even rounds: vCPU 1 writes, the page becomes read-only. Odd rounds:
    /// vCPU 1 reads, the page is unmapped.
    fn writes_in(round: u32) -> bool {
        round.is_multiple_of(2)
    }

    fn tlb_vcpu0() -> Outcome {
        let (w, page) = match (Window::new(), mm::alloc_frame()) {
            (Ok(w), Ok(f)) => (w, f),
            _ => fail!("setting up the TLB race's window and frame"),
        };
        let va = w.va(0);
        TLB_VA.store(va, SeqCst);
        for round in 0..TLB_ROUNDS {
            ensure_eq!(
                hc::update_va_mapping(
                    va,
                    pte::entry(page.mfn, pte::KERNEL_RW),
                    UVMF_INVLPG | UVMF_ALL
                ),
                0,
                "mapping the page writable"
            );
            TLB_STATE.store(0, SeqCst);
            TLB_ROUND.store(round + 1, SeqCst);
            let start = now_ns();
            while TLB_STATE.load(SeqCst) != 1 {
                check_secondary(start, "to access the page")?;
            }
            let end = if writes_in(round) {
                pte::entry(page.mfn, pte::KERNEL_RO)
            } else {
                0
            };
            ensure_eq!(
                hc::update_va_mapping(va, end, UVMF_INVLPG | UVMF_ALL),
                0,
                "remapping the page read-only or unmapping it"
            );
            let after = frame::read_word(&page, 0);
            for _ in 0..2000 {
                core::hint::spin_loop();
            }
            let later = frame::read_word(&page, 0);
            ensure!(
                after == later,
                "round {round}: vCPU 1 wrote {later:#x} after the page was made read-only and \
                 flushed (it held {after:#x}): a stale writable translation on its CPU"
            );
            while TLB_STATE.load(SeqCst) != 2 {
                check_secondary(start, "to fault on the page")?;
            }
        }
        TLB_ROUND.store(u32::MAX, SeqCst);
        ensure_eq!(
            hc::update_va_mapping(va, 0, UVMF_INVLPG | UVMF_ALL),
            0,
            "unmapping the page"
        );
        Ok(())
    }

    fn check_secondary(start: u64, what: &str) -> Outcome {
        let fault = FAULT.load(SeqCst);
        if fault != 0 {
            fail!("{}", explain(fault));
        }
        if now_ns() - start > LIMIT_NS {
            fail!(
                "vCPU 1 did not get {what} in round {}",
                TLB_ROUND.load(SeqCst) - 1
            );
        }
        core::hint::spin_loop();
        Ok(())
    }

    /// vCPU 1's side: in each round, access the page until it faults.
    fn tlb_vcpu1() {
        let mut seen = 0;
        loop {
            let round = loop {
                let r = TLB_ROUND.load(SeqCst);
                if r != seen {
                    break r;
                }
                core::hint::spin_loop();
            };
            if round == u32::MAX {
                return;
            }
            seen = round;
            let round = round - 1;
            // Set before the first round is.
            let va = TLB_VA.load(SeqCst);
            let mut accesses = 0u64;
            loop {
                let access = if writes_in(round) {
                    probe::write(va, u64::from(round) << 32 | accesses)
                } else {
                    probe::read(va).map(drop)
                };
                match access {
                    Ok(()) => {
                        accesses += 1;
                        if accesses == 1 {
                            TLB_STATE.store(1, SeqCst);
                        }
                    }
                    Err(trapped) if trapped.vector == 14 && accesses > 0 => break,
                    Err(trapped) => {
                        TRAPPED.store(
                            u64::from(trapped.vector) << 56 | trapped.error_code << 40 | accesses,
                            SeqCst,
                        );
                        fault(1, 3, round);
                        return;
                    }
                }
                if accesses > 200_000_000 {
                    fault(1, 2, round);
                    return;
                }
            }
            TLB_STATE.store(2, SeqCst);
        }
    }
}
