//! The benchmark guest: the cost of the PV64 mechanisms a guest kernel
//! leans on, each timed over many runs. One line per row,
//! `BENCH <row> min_ns=.. median_ns=.. min_cycles=.. median_cycles=..`,
//! then `PASS bench`; `cargo xtask bench` boots it on hv-core and on Xen
//! and tabulates the rows.
//!
//! Every run is timed with the TSC (`lfence; rdtsc` on both sides) and
//! converted to nanoseconds with the vCPU's pvclock scale, so ns and
//! cycles describe the same measurement. Rows:
//! - `null-hypercall`: `xen_version(XENVER_version)`, a round trip that
//!   does no work;
//! - `syscall-bounce`: `syscall` in guest user mode, bounced to the guest
//!   kernel's callback, back with `HYPERVISOR_iret` + `VGCF_in_syscall`
//!   (timed in user mode);
//! - `pagefault-bounce`: a read of an unmapped page, bounced to the
//!   kernel's #PF handler, which skips the load and irets;
//! - `mmu-update-1`, `mmu-update-512`: `mmu_update` of one L1 entry, and
//!   of 512 entries in one call (per entry);
//! - `update-va-mapping-invlpg`: `update_va_mapping` with `UVMF_INVLPG`;
//! - `event-self-upcall`: `EVTCHNOP_send` on an IPI port bound to the
//!   guest's own vCPU; the upcall handler runs before the send returns.
//!
//! With `contended` on its command line (two vCPUs, two CPUs) it times
//! instead what a hypercall costs while another vCPU of the same domain,
//! on the other CPU, is in the hypervisor too: `null-hypercall` and
//! `mmu-update-1` (on one entry of the scratch window's L1) with vCPU 1
//! spinning in the guest (`/other-spinning`), then with vCPU 1 issuing the
//! same hypercall in a loop (`/other-same-call`; for `mmu_update`, on
//! another entry of the same L1 table).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU64, Ordering};

    use abi::event_channel::Port;
    use abi::ops::XENVER_VERSION;
    use abi::xen::{DOMID_SELF, MMU_NORMAL_PT_UPDATE, MmuUpdate, UVMF_INVLPG};
    use pv_guest_sdk::mm::{self, Frame, pte};
    use pv_guest_sdk::time::scale_delta;
    use pv_guest_sdk::traps::TrapFrame;
    use pv_guest_sdk::{StartInfo, events, println, shared};
    use test_guests::arch::{self, USER_DATA, rdtsc, sys};
    use test_guests::frame;
    use test_guests::probe;
    use test_guests::scratch::{self, Window};
    use test_guests::stats::{bench_line, min_median};
    use test_guests::usermode::{Action, UserSpace};
    use test_guests::verdict::{Outcome, Stop, finish};
    use test_guests::{ensure, ensure_eq, fail, hc};

    const NAME: &str = "bench";
    const RUNS: usize = 1000;
    const WARMUP: usize = 50;
    /// Runs of the 512-entry update (each is 512 validations).
    const BATCH_RUNS: usize = 100;
    const USER_CODE: u64 = 0x40_0000;
    const USER_STACK_PAGE: u64 = 0x7f_f000;
    const USER_STACK_TOP: u64 = 0x80_0000;

    /// TSC cycles to ns with this vCPU's pvclock scale.
    struct Scale {
        mul: u32,
        shift: i8,
    }

    impl Scale {
        fn now() -> Self {
            let info = shared::vcpu().time.snapshot();
            Self {
                mul: info.tsc_to_system_mul,
                shift: info.tsc_shift,
            }
        }

        fn ns(&self, cycles: u64) -> u64 {
            scale_delta(cycles, self.mul, self.shift)
        }
    }

    /// Prints the row for `cycles` (per operation) and returns it.
    fn report(row: &str, mut cycles: Vec<u64>) -> Outcome {
        let scale = Scale::now();
        let Some((min, median)) = min_median(&mut cycles) else {
            fail!("{row}: no samples");
        };
        println!(
            "{}",
            bench_line(row, (scale.ns(min), scale.ns(median)), (min, median))
        );
        Ok(())
    }

    /// Times `op` `RUNS` times after a warm-up; `op` returns false to
    /// stop the benchmark (the row failed).
    fn time_each(row: &str, mut op: impl FnMut(usize) -> bool) -> Outcome {
        for i in 0..WARMUP {
            ensure!(op(i), "{row}: the operation failed during warm-up");
        }
        let mut cycles = Vec::with_capacity(RUNS);
        for i in 0..RUNS {
            let start = rdtsc();
            let ok = op(i);
            let end = rdtsc();
            ensure!(ok, "{row}: the operation failed in run {i}");
            cycles.push(end - start);
        }
        report(row, cycles)
    }

    pub fn main(start: &'static StartInfo) -> ! {
        probe::install();
        if start.cmdline().split_whitespace().any(|w| w == "contended") {
            finish(NAME, contended::run())
        } else {
            finish(NAME, run())
        }
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
        println!(
            "{NAME}: {RUNS} runs per row after {WARMUP} warm-up runs ({BATCH_RUNS} for mmu-update-512)"
        );
        null_hypercall()?;
        syscall_bounce()?;
        pagefault_bounce(&w)?;
        let (a, b) = (alloc()?, alloc()?);
        mmu_update_1(&w, &a, &b)?;
        mmu_update_512(&w, &a, &b)?;
        update_va_mapping(&w, &a, &b)?;
        event_self_upcall()?;
        Ok(())
    }

    fn null_hypercall() -> Outcome {
        let version = hc::xen_version_null(XENVER_VERSION);
        ensure!(
            version > 0,
            "xen_version(XENVER_version) returned {version}"
        );
        time_each("null-hypercall", |_| {
            hc::xen_version_null(XENVER_VERSION) == version
        })
    }

    fn bench_syscall(frame: &mut TrapFrame) -> Action {
        match frame.rax {
            sys::NULL => {
                frame.rax = 0;
                Action::Resume
            }
            sys::EXIT => Action::Exit(frame.rdi),
            _ => Action::Exit(u64::MAX),
        }
    }

    /// The user program times each round itself and leaves the cycle
    /// counts in its data pages (word 0: the round count).
    fn syscall_bounce() -> Outcome {
        const ROUNDS: usize = RUNS + WARMUP;
        let user = match UserSpace::new() {
            Ok(u) => u,
            Err(e) => fail!("building the user page tables: {e}"),
        };
        let pages = (ROUNDS + 1).div_ceil(512);
        let mut data = Vec::new();
        for i in 0..pages {
            let f = alloc()?;
            if let Err(e) = user.map(USER_DATA + i as u64 * 4096, f.mfn, true) {
                fail!("mapping the user data pages: {e}");
            }
            data.push(f);
        }
        let stack = alloc()?;
        let mapped = user
            .load_program(USER_CODE, arch::bench())
            .and_then(|()| user.map(USER_STACK_PAGE, stack.mfn, true));
        if let Err(e) = mapped {
            fail!("mapping the user program: {e}");
        }
        if frame::write_word(&data[0], 0, ROUNDS as u64).is_err() {
            fail!("writing the round count faulted");
        }
        let rounds = match user.run(USER_CODE, USER_STACK_TOP, bench_syscall) {
            Ok(r) => r,
            Err(e) => fail!("entering user mode: {e}"),
        };
        ensure_eq!(rounds, ROUNDS as u64, "rounds the user program reports");
        let word = |i: usize| frame::read_word(&data[i / 512], i % 512);
        let cycles: Vec<u64> = (1 + WARMUP..=ROUNDS).map(word).collect();
        report("syscall-bounce", cycles)
    }

    fn pagefault_bounce(w: &Window) -> Outcome {
        let unmapped = w.va(0);
        time_each("pagefault-bounce", |_| {
            probe::read(unmapped).is_err_and(|t| t.vector == 14)
        })
    }

    fn mapping(frame: &Frame) -> u64 {
        pte::entry(frame.mfn, pte::KERNEL_RO)
    }

    fn mmu_update_1(w: &Window, a: &Frame, b: &Frame) -> Outcome {
        let ptr = w.entry_maddr(1) | MMU_NORMAL_PT_UPDATE;
        time_each("mmu-update-1", |i| {
            let val = mapping(if i.is_multiple_of(2) { a } else { b });
            hc::mmu_update(&[MmuUpdate { ptr, val }], DOMID_SELF) == (0, 1)
        })?;
        clear(w, 1, 1)
    }

    fn mmu_update_512(w: &Window, a: &Frame, b: &Frame) -> Outcome {
        let mut batch = [MmuUpdate::default(); scratch::PAGES as usize];
        let mut fill = |i: usize| {
            for (page, req) in batch.iter_mut().enumerate() {
                req.ptr = w.entry_maddr(page as u64) | MMU_NORMAL_PT_UPDATE;
                req.val = mapping(if i.is_multiple_of(2) { a } else { b });
            }
            hc::mmu_update(&batch, DOMID_SELF) == (0, 512)
        };
        for i in 0..WARMUP / 10 {
            ensure!(fill(i), "mmu-update-512: the update failed during warm-up");
        }
        let mut cycles = Vec::with_capacity(BATCH_RUNS);
        for i in 0..BATCH_RUNS {
            let start = rdtsc();
            let ok = fill(i);
            let end = rdtsc();
            ensure!(ok, "mmu-update-512: the update failed in run {i}");
            cycles.push((end - start) / 512);
        }
        clear(w, 0, 512)?;
        report("mmu-update-512", cycles)
    }

    /// Unmaps scratch pages `first..first + count` and flushes the TLB.
    fn clear(w: &Window, first: u64, count: u64) -> Outcome {
        for page in first..first + count {
            let (ret, _) = hc::mmu_update(
                &[MmuUpdate {
                    ptr: w.entry_maddr(page),
                    val: 0,
                }],
                DOMID_SELF,
            );
            ensure_eq!(ret, 0, "clearing scratch page {page}");
        }
        let flush = abi::xen::MmuextOp {
            cmd: abi::xen::MMUEXT_TLB_FLUSH_LOCAL,
            _pad: 0,
            arg1: 0,
            arg2: 0,
        };
        ensure_eq!(hc::mmuext_op(&[flush]), (0, 1), "MMUEXT_TLB_FLUSH_LOCAL");
        Ok(())
    }

    fn update_va_mapping(w: &Window, a: &Frame, b: &Frame) -> Outcome {
        let va = w.va(2);
        time_each("update-va-mapping-invlpg", |i| {
            hc::update_va_mapping(
                va,
                mapping(if i.is_multiple_of(2) { a } else { b }),
                UVMF_INVLPG,
            ) == 0
        })?;
        ensure_eq!(
            hc::update_va_mapping(va, 0, UVMF_INVLPG),
            0,
            "unmapping scratch page 2"
        );
        Ok(())
    }

    static UPCALLS: AtomicU64 = AtomicU64::new(0);

    fn on_ipi(_: Port) {
        UPCALLS.fetch_add(1, Ordering::SeqCst);
    }

    fn event_self_upcall() -> Outcome {
        let port = match hc::bind_ipi(0) {
            Ok(p) => p,
            Err(e) => fail!("EVTCHNOP_bind_ipi: {e}"),
        };
        events::set_handler(port, on_ipi);
        if let Err(e) = events::unmask(port) {
            fail!("EVTCHNOP_unmask: {e}");
        }
        ensure!(events::enabled(), "events are masked");
        time_each("event-self-upcall", |_| {
            let before = UPCALLS.load(Ordering::SeqCst);
            hc::evtchn_send(port) == 0 && UPCALLS.load(Ordering::SeqCst) == before + 1
        })
    }

    /// The `contended` rows: vCPU 1 on the other CPU, spinning in the
    /// guest or issuing the same hypercall, while vCPU 0 times it.
    mod contended {
        use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

        use abi::ops::XENVER_VERSION;
        use abi::xen::{DOMID_SELF, MMU_NORMAL_PT_UPDATE, MmuUpdate};
        use pv_guest_sdk::smp;
        use test_guests::scratch::Window;
        use test_guests::verdict::Outcome;
        use test_guests::{ensure, ensure_eq, fail, hc};

        use super::{alloc, clear, mapping, time_each};

        /// What vCPU 1 does: spin in the guest, or loop on a hypercall.
        const SPIN: u32 = 0;
        const NULL_CALLS: u32 = 1;
        const MMU_CALLS: u32 = 2;
        static MODE: AtomicU32 = AtomicU32::new(SPIN);
        /// The mode vCPU 1 last took up (stored between two calls).
        static ACK: AtomicU32 = AtomicU32::new(u32::MAX);
        /// vCPU 1's hypercalls so far (it is really in them), and its
        /// failures (which fail the run).
        static CALLS: AtomicU64 = AtomicU64::new(0);
        static FAILED: AtomicU64 = AtomicU64::new(0);
        /// vCPU 1's `mmu_update`: the entry's machine address and the two
        /// values it alternates between.
        static ENTRY: AtomicU64 = AtomicU64::new(0);
        static VALUES: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

        extern "C" fn other_vcpu() -> ! {
            let mut i = 0usize;
            loop {
                // Between calls: what it does from here on is `mode`.
                let mode = MODE.load(SeqCst);
                ACK.store(mode, SeqCst);
                let ok = match mode {
                    NULL_CALLS => hc::xen_version_null(XENVER_VERSION) > 0,
                    MMU_CALLS => {
                        let req = MmuUpdate {
                            ptr: ENTRY.load(SeqCst),
                            val: VALUES[i % 2].load(SeqCst),
                        };
                        hc::mmu_update(&[req], DOMID_SELF) == (0, 1)
                    }
                    _ => {
                        core::hint::spin_loop();
                        continue;
                    }
                };
                if !ok {
                    FAILED.fetch_add(1, SeqCst);
                }
                CALLS.fetch_add(1, SeqCst);
                i += 1;
            }
        }

        /// Puts vCPU 1 in `mode` and waits until it is in it (for a
        /// hypercall loop: until it has made a few calls in that mode).
        fn set_mode(mode: u32) -> Outcome {
            MODE.store(mode, SeqCst);
            let mut spins = 0u64;
            let mut wait = |done: &dyn Fn() -> bool| {
                while !done() {
                    spins += 1;
                    if spins > 1 << 32 {
                        return false;
                    }
                    core::hint::spin_loop();
                }
                true
            };
            ensure!(
                wait(&|| ACK.load(SeqCst) == mode),
                "vCPU 1 did not take up mode {mode}"
            );
            let before = CALLS.load(SeqCst);
            ensure!(
                mode == SPIN || wait(&|| CALLS.load(SeqCst) >= before + 10),
                "vCPU 1 made no hypercalls in mode {mode}"
            );
            Ok(())
        }

        pub fn run() -> Outcome {
            ensure!(
                smp::vcpu_count() >= 2,
                "contended: the domain has one vCPU (dom0_max_vcpus=2 on the host's command line)"
            );
            let w = match Window::new() {
                Ok(w) => w,
                Err(e) => fail!("setting up the scratch window: {e}"),
            };
            let (a, b) = (alloc()?, alloc()?);
            ENTRY.store(w.entry_maddr(3) | MMU_NORMAL_PT_UPDATE, SeqCst);
            VALUES[0].store(mapping(&a), SeqCst);
            VALUES[1].store(mapping(&b), SeqCst);
            let stack = alloc::vec![0u8; 16 * 1024].leak();
            if let Err(e) = smp::start_vcpu(1, other_vcpu, stack) {
                fail!("starting vCPU 1: {e}");
            }
            let version = hc::xen_version_null(XENVER_VERSION);
            let null = || hc::xen_version_null(XENVER_VERSION) == version;
            let ptr = w.entry_maddr(1) | MMU_NORMAL_PT_UPDATE;
            let mmu = |i: usize| {
                let val = mapping(if i.is_multiple_of(2) { &a } else { &b });
                hc::mmu_update(&[MmuUpdate { ptr, val }], DOMID_SELF) == (0, 1)
            };
            set_mode(SPIN)?;
            time_each("null-hypercall/other-spinning", |_| null())?;
            time_each("mmu-update-1/other-spinning", mmu)?;
            set_mode(NULL_CALLS)?;
            time_each("null-hypercall/other-same-call", |_| null())?;
            set_mode(MMU_CALLS)?;
            time_each("mmu-update-1/other-same-call", mmu)?;
            set_mode(SPIN)?;
            ensure_eq!(FAILED.load(SeqCst), 0, "vCPU 1's failed hypercalls");
            clear(&w, 1, 1)?;
            clear(&w, 3, 1)
        }
    }
}
