//! Finding 12 of the security review: a preempted hypercall's
//! continuation belongs to the vCPU that made the call. Two vCPUs on two
//! CPUs (booted with `dom0_max_vcpus=2`, two CPUs) each issue multicalls
//! long enough to be preempted (more entries than one pass may do), at
//! the same time. Every entry is `xen_version(XENVER_version)` with a
//! marker in its unused arguments.
//!
//! PASS iff, on both vCPUs and in every round, the multicall returns 0,
//! every entry's result is the version and every entry's arguments are
//! the ones written. Were the continuation (or the pass's budget) one for
//! the whole machine, one vCPU's multicall would end early with entries
//! never run, and the other's would resume an entry with the first one's
//! arguments (its entry array's address among them) written into it.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use alloc::vec;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

    use abi::Hypercall;
    use abi::xen::MulticallEntry;
    use pv_guest_sdk::time::now_ns;
    use pv_guest_sdk::{StartInfo, hypercall, println, smp};
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure_eq, fail, hc};

    const NAME: &str = "sec-smp-continuation";
    /// Entries per multicall: past one pass's budget (1024 on hv-core),
    /// so each call is preempted at least twice.
    const ENTRIES: usize = 2600;
    /// Multicalls each vCPU makes.
    const ROUNDS: u32 = 40;
    const MS: u64 = 1_000_000;
    /// How long vCPU 0 waits for vCPU 1 (TCG is slow and the host busy).
    const LIMIT_NS: u64 = 60_000 * MS;
    /// A result no hypercall gives: the entry was not run.
    const NOT_RUN: i64 = 0x5a5a_5a5a;
    const XENVER_VERSION: u64 = 0;

    /// The version `xen_version(XENVER_version)` answers.
    static VERSION: AtomicU64 = AtomicU64::new(0);
    /// vCPU 1: the rounds it finished, and its first failure (0: none).
    static DONE1: AtomicU32 = AtomicU32::new(0);
    static FAULT1: AtomicU64 = AtomicU64::new(0);
    /// vCPU 1's entry array, handed over before it starts.
    static ENTRIES1: spin::Mutex<Vec<MulticallEntry>> = spin::Mutex::new(Vec::new());

    pub fn main(_start: &'static StartInfo) -> ! {
        finish(NAME, run())
    }

    /// Entry `i` of vCPU `vcpu`'s array, before the call.
    fn entry(vcpu: u64, i: usize) -> MulticallEntry {
        MulticallEntry {
            op: Hypercall::XenVersion as u64,
            result: NOT_RUN,
            args: [
                XENVER_VERSION,
                0,
                0xc0de_0000 | vcpu,
                i as u64,
                !(i as u64),
                0,
            ],
        }
    }

    /// One round: fills `entries`, issues the multicall and checks it.
    /// The failure, packed for vCPU 1 to hand over in one word: the round
    /// in bits 48.., the entry + 1 in bits 16..48 (0: the call itself),
    /// what was wrong in bits 0..16 (1 result, 2 arguments, 3 return).
    fn round(vcpu: u64, round: u32, entries: &mut [MulticallEntry]) -> Result<(), u64> {
        for (i, e) in entries.iter_mut().enumerate() {
            *e = entry(vcpu, i);
        }
        let ret = hc::multicall(entries);
        let at = |i: u64, what: u64| u64::from(round) << 48 | i << 16 | what;
        if ret != 0 {
            return Err(at(0, 3));
        }
        let version = VERSION.load(SeqCst) as i64;
        for (i, e) in entries.iter().enumerate() {
            if e.result != version {
                return Err(at(i as u64 + 1, 1));
            }
            if e.args != entry(vcpu, i).args {
                return Err(at(i as u64 + 1, 2));
            }
        }
        Ok(())
    }

    fn explain(vcpu: u64, fault: u64, entries: &[MulticallEntry]) -> alloc::string::String {
        let (round, at, what) = (fault >> 48, (fault >> 16) & 0xffff_ffff, fault & 0xffff);
        let shown = |i: u64| {
            let e = &entries[i as usize - 1];
            alloc::format!("entry {} result {:#x}, args {:x?}", i - 1, e.result, e.args)
        };
        match what {
            3 => alloc::format!("vCPU {vcpu}, round {round}: the multicall did not return 0"),
            1 => alloc::format!(
                "vCPU {vcpu}, round {round}: {} (expected {:#x}): an entry was never run",
                shown(at),
                VERSION.load(SeqCst)
            ),
            _ => alloc::format!(
                "vCPU {vcpu}, round {round}: {}: its arguments were rewritten \
                 (another vCPU's continuation)",
                shown(at)
            ),
        }
    }

    extern "C" fn vcpu1_entry() -> ! {
        let mut entries = ENTRIES1.lock();
        for r in 0..ROUNDS {
            if let Err(fault) = round(1, r, &mut entries) {
                FAULT1.store(fault, SeqCst);
                break;
            }
            DONE1.store(r + 1, SeqCst);
        }
        drop(entries);
        DONE1.store(u32::MAX, SeqCst);
        loop {
            let _ = hypercall::sched_yield();
        }
    }

    fn run() -> Outcome {
        let version = hc::xen_version_null(XENVER_VERSION as u32);
        if version <= 0 {
            fail!("xen_version(XENVER_version) = {version}");
        }
        VERSION.store(version as u64, SeqCst);
        *ENTRIES1.lock() = vec![entry(1, 0); ENTRIES];
        let mut entries = vec![entry(0, 0); ENTRIES];
        let stack = vec![0u8; 16 * 1024].leak();
        if let Err(e) = smp::start_vcpu(1, vcpu1_entry, stack) {
            fail!("starting vCPU 1: {e}");
        }
        // Wait until vCPU 1 is in its rounds, then run ours beside them.
        let start = now_ns();
        while DONE1.load(SeqCst) == 0 && ENTRIES1.try_lock().is_some() {
            if now_ns() - start > LIMIT_NS {
                fail!("vCPU 1 did not start");
            }
            core::hint::spin_loop();
        }
        let mut rounds0 = 0;
        while rounds0 < ROUNDS || DONE1.load(SeqCst) != u32::MAX {
            if let Err(fault) = round(0, rounds0, &mut entries) {
                fail!("{}", explain(0, fault, &entries));
            }
            rounds0 += 1;
            if now_ns() - start > LIMIT_NS {
                fail!("vCPU 1 did not finish: {} rounds done", DONE1.load(SeqCst));
            }
        }
        let fault = FAULT1.load(SeqCst);
        if fault != 0 {
            fail!("{}", explain(1, fault, &ENTRIES1.lock()));
        }
        ensure_eq!(
            hc::vcpu_op_null(abi::ops::VCPUOP_DOWN, 1),
            0,
            "VCPUOP_down(1)"
        );
        println!(
            "{NAME}: {rounds0} multicalls of {ENTRIES} entries on vCPU 0 beside {ROUNDS} on vCPU 1"
        );
        Ok(())
    }
}
