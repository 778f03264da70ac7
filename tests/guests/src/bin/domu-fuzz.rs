//! The hypercall fuzzer: an unprivileged domU (dom0 creates it, `create
//! domu-fuzz cmdline="seed=<n> secs=<n> peer=<id>"`) that makes random
//! hypercalls for its time budget, and tries to stay alive doing it.
//!
//! **What it calls.** Nine calls in ten go to the hypercalls hv-core
//! implements, each through a generator that knows the argument layout
//! (ops, cmds, structures) and fills every field from biased pools; the
//! tenth is a random number below 64 with random arguments. The pools:
//! - pointers: 0, the hypervisor's hole (0xffff8000_00000000..
//!   0xffff8800_00000000), non-canonical addresses, unmapped pages, the
//!   top of the canonical half, read-only pages (its own page tables in
//!   the physmap, a read-only scratch page), unaligned and page-straddling
//!   structures (the buffer pages are followed by an unmapped guard page);
//! - frames: its own page tables (as PTE values, read-only or writable),
//!   "sacrificial" frames of its own, frames of other domains found
//!   through the M2P (the canary's lie just below its own), the M2P's
//!   frame, frame 0, frames past the end of RAM;
//! - PTE values with random flag combinations (RW, user, PS, NX, reserved
//!   bits), counts (0, 1, 5000, u32::MAX, ...), event-channel ports,
//!   grant refs, and domain ids (0, itself, DOMID_SELF, the peer given as
//!   `peer=`, the reserved ids, random).
//!
//! **Staying alive.** The fuzzer must not destroy its own ability to run
//! (a fuzzer that dies in a second finds nothing), so some calls are
//! excluded or get safe arguments:
//! - never made: `iret` (23; it pops a frame off our own stack),
//!   `SCHEDOP_shutdown`, `SCHEDOP_shutdown_code` (Xen makes a later
//!   power-off report that code), `SCHEDOP_watchdog`, `VCPUOP_down`,
//!   `VCPUOP_send_nmi` and `VCPUOP_register_vcpu_info` for vCPU 0 (with
//!   readable arguments), `EVTCHNOP_init_control` (the FIFO ABI would
//!   replace the 2-level one the SDK uses), `EVTCHNOP_reset` and
//!   `SCHEDOP_remote_shutdown` of itself, `EVTCHNOP_close`/`bind_vcpu` of
//!   its console and timer ports;
//! - safe arguments: `SCHEDOP_block` only after arming a 200 us timer
//!   with events masked (the block unmasks them), and after checking that
//!   the timer port is still VIRQ_TIMER's;
//!   `SCHEDOP_poll` always with a timeout at most 1 ms away; console_io
//!   writes only of 0 bytes or from unreadable buffers (they go straight
//!   to the serial line); multicall entries come from the same generators
//!   (so the same exclusions hold) and hold no `sched_op` but yield;
//! - undone at once: `set_trap_table` and `set_callbacks`/`callback_op`
//!   (with events masked from before the call until the SDK's table and
//!   callbacks are registered again), `set_segment_base` (back to 0);
//! - page-table changes only where nothing of ours lives: the scratch
//!   window's fuzz pages, empty kernel L4 slots 3-15, sacrificial frames'
//!   physmap mappings, and live entries rewritten with their own value
//!   (accessed/dirty bits flipped); `MMUEXT_NEW_BASEPTR` only with our own
//!   L4 or frames that must be refused; reservation decreases, grant
//!   copies into our memory, grant maps and transfers only name
//!   sacrificial frames, scratch fuzz pages or things we do not own.
//!
//! **Oracles.** A few calls must fail whatever else happens; if one
//! succeeds the fuzzer prints `domu-fuzz: BUG: ...` and its ring:
//! mapping a frame of another domain (mmu_update, update_va_mapping),
//! mapping one of its own page tables writable, a grant copy into another
//! domain's frame or into its own page table, a reservation decrease of
//! another domain's frame.
//!
//! **Output** (kept small: the serial line is slow under TCG):
//! `domu-fuzz: <n> hypercalls` every 2 s, `domu-fuzz: done: <n>
//! hypercalls in <s> s (seed <n>)` at the end of the budget (`secs=` or
//! `minutes=`, default 60 s), then power-off. The last 32 calls (number,
//! arguments, result) are kept in a ring, printed with `console_io`
//! (straight to the serial line, so it survives whatever follows) on a
//! BUG and when the fuzzer itself takes an exception. With `trace=<n>`
//! every call from the n-th on is printed the same way before it is
//! made: `cargo xtask fuzz --seed S --trace-from N` replays a run (the
//! choices depend only on the seed, never on results or time) and shows
//! the very call that stopped the machine.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use alloc::format;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

    use abi::Hypercall;
    use abi::event_channel::{self as evtchn, Port};
    use abi::grant_table as gnttab;
    use abi::ops;
    use abi::xen::{self, DOMID_SELF, DomId, TrapInfo};
    use pv_guest_sdk::mm::p2m::Mfn;
    use pv_guest_sdk::mm::{self, Frame, pte};
    use pv_guest_sdk::start_info::ConsoleInfo;
    use pv_guest_sdk::traps::{self, Exception, TrapFrame};
    use pv_guest_sdk::{StartInfo, events, hypercall, layout, println, time};
    use test_guests::probe;
    use test_guests::scratch::Window;

    const NAME: &str = "domu-fuzz";
    const PROGRESS_NS: u64 = 2_000_000_000;
    /// The clock is read once per this many calls.
    const CLOCK_EVERY: u64 = 256;

    // --- the scratch window's layout -------------------------------------

    /// Pages 0-7: argument buffers (contiguous, mapped writable).
    const BUF_PAGES: u64 = 8;
    /// Page 8: never mapped, so overruns of the buffers fault.
    const GUARD_PAGE: u64 = 8;
    /// Page 9: a frame of ours mapped read-only.
    const RO_PAGE: u64 = 9;
    /// Pages 10-11: multicall entry arrays (whose entries' own arguments
    /// go in pages 0-7), followed by page 12, never mapped either.
    const MC_PAGES: core::ops::Range<u64> = 10..12;
    /// Pages 16-511: free for the fuzzer's mappings.
    const FUZZ_FIRST: u64 = 16;
    const HOLE_START: u64 = xen::HYPERVISOR_VIRT_START;
    const HOLE_LEN: u64 = xen::HYPERVISOR_VIRT_END - xen::HYPERVISOR_VIRT_START;
    /// Empty kernel L4 slots the fuzzer may fill (slot 0 is user mode, 2
    /// the scratch window, 256-271 the hypervisor's, 510-511 the SDK's).
    const FREE_L4_SLOTS: core::ops::Range<u64> = 3..16;
    const SACRIFICIAL_FRAMES: usize = 32;
    /// The most any call writes through an [`out_ptr`] of unknown length
    /// (`XENVER_capabilities`/`commandline`; console reads, memory maps
    /// and grant frame lists are shorter). Calls that write longer
    /// arrays (a reservation's extent list) use [`out_array`].
    const OUT_MAX: u64 = 1024;

    // --- the ring of recent calls ----------------------------------------

    const RING: usize = 32;
    /// Per slot: call index, number, five arguments, result.
    static RING_SLOTS: [[AtomicU64; 8]; RING] = [const { [const { AtomicU64::new(0) }; 8] }; RING];
    static COUNT: AtomicU64 = AtomicU64::new(0);
    static SEED: AtomicU64 = AtomicU64::new(0);
    /// The shared_info frame start_info names (for the trace's checks).
    static SHARED_MFN: AtomicU64 = AtomicU64::new(0);

    fn record(nr: u32, args: &[u64; 5], ret: i64) {
        let index = COUNT.fetch_add(1, Relaxed);
        let slot = &RING_SLOTS[index as usize % RING];
        slot[0].store(index, Relaxed);
        slot[1].store(nr as u64, Relaxed);
        for (cell, value) in slot[2..7].iter().zip(args) {
            cell.store(*value, Relaxed);
        }
        slot[7].store(ret as u64, Relaxed);
    }

    /// A line straight to the serial line (`console_io`), bypassing the
    /// console ring and dom0: it is there even if the machine stops next.
    fn direct(line: &str) {
        let _ = hypercall::console_write(line.as_bytes());
        let _ = hypercall::console_write(b"\n");
    }

    fn describe(index: u64, nr: u64, args: &[u64]) -> alloc::string::String {
        let name = Hypercall::from_number(nr).map_or(format!("{nr}"), |h| format!("{h:?}({nr})"));
        format!(
            "#{index} {name} {:#x} {:#x} {:#x} {:#x} {:#x}",
            args[0], args[1], args[2], args[3], args[4]
        )
    }

    fn dump_ring(why: &str) {
        let count = COUNT.load(Relaxed);
        direct(&format!(
            "{NAME}: {why}; seed {}, the last {} of {count} hypercalls:",
            SEED.load(Relaxed),
            count.min(RING as u64)
        ));
        for k in count.saturating_sub(RING as u64)..count {
            let slot = &RING_SLOTS[k as usize % RING];
            let v: [u64; 8] = core::array::from_fn(|i| slot[i].load(Relaxed));
            direct(&format!(
                "{NAME}: ring {} -> {}",
                describe(v[0], v[1], &v[2..7]),
                v[7] as i64
            ));
        }
    }

    /// Every exception the fuzzer takes is a failure (its own code never
    /// faults on purpose): the ring goes out before the SDK's report and
    /// the crash.
    fn on_exception(exception: &Exception, frame: &mut TrapFrame) -> bool {
        dump_ring(&format!(
            "took {} at RIP {:#x}",
            traps::exception_name(exception.vector),
            frame.rip
        ));
        false
    }

    // --- the PRNG ----------------------------------------------------------

    /// splitmix64: small, and every seed gives a full-period stream.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }

        /// True one time in `n`.
        fn one_in(&mut self, n: u64) -> bool {
            self.below(n) == 0
        }

        fn pick<T: Copy>(&mut self, from: &[T]) -> T {
            from[self.below(from.len() as u64) as usize]
        }
    }

    // --- the world the pools are drawn from ------------------------------

    struct World {
        self_id: DomId,
        peer: DomId,
        window: Window,
        /// The kernel L4 and every table below it.
        l4: Mfn,
        tables: Vec<Mfn>,
        /// (table, index) of each present entry, for same-value rewrites.
        live_entries: Vec<(Mfn, usize)>,
        /// Frames of ours holding nothing: fair game for anything.
        sacrificial: Vec<Frame>,
        /// Frames the M2P says another domain has.
        foreign: Vec<Mfn>,
        /// Every frame of ours (sorted), so random frame numbers can be
        /// kept off the ones Rust and the SDK use.
        own: Vec<Mfn>,
        m2p_frame: Mfn,
        max_mfn: u64,
        /// The console and timer ports, which the SDK needs.
        protected: [Port; 2],
        /// Pages of ours that Rust uses (code, stack, heap), for
        /// same-value update_va_mapping.
        live_vas: [u64; 3],
    }

    fn m2p(mfn: u64) -> Option<u64> {
        probe::read(xen::MACH2PHYS_VIRT_START + mfn * 8).ok()
    }

    impl World {
        fn new(start: &'static StartInfo, rng_seed: u64) -> Result<Self, &'static str> {
            let self_id = pv_guest_sdk::evtchn::own_domid().map_err(|_| "no own domid")?;
            let peer = start
                .cmdline_option("peer")
                .and_then(|p| p.parse().ok())
                .unwrap_or(self_id.wrapping_sub(1));
            let window = Window::new().map_err(|_| "no scratch window")?;
            for page in (0..BUF_PAGES).chain(MC_PAGES) {
                let frame = mm::alloc_frame().map_err(|_| "no buffer frame")?;
                mm::map(window.va(page), frame.mfn, pte::KERNEL_RW)
                    .map_err(|_| "cannot map a buffer page")?;
            }
            let ro = mm::alloc_frame().map_err(|_| "no read-only frame")?;
            mm::map(window.va(RO_PAGE), ro.mfn, pte::KERNEL_RO).map_err(|_| "cannot map RO")?;
            let sacrificial = (0..SACRIFICIAL_FRAMES)
                .filter_map(|_| mm::alloc_frame().ok())
                .collect();

            let l4 = mm::kernel_l4();
            let mut tables = Vec::new();
            let mut live_entries = Vec::new();
            walk(l4, 4, &mut tables, &mut live_entries);

            let max_mfn = hypercall_raw(
                Hypercall::MemoryOp,
                [ops::XENMEM_MAXIMUM_RAM_PAGE as u64, 0, 0, 0, 0],
            )
            .max(0) as u64;
            let foreign = foreign_frames(start, max_mfn, rng_seed);
            let mut own = start.mfn_list().to_vec();
            // shared_info is not in the p2m but is ours to map: a fuzz
            // page mapping it writable would let output pointers scribble
            // over our event masks and vcpu_info. It is as live as any
            // frame Rust uses.
            own.push(start.shared_info_maddr() >> 12);
            own.sort_unstable();
            let m2p_frame = mm::read_table_entry(l4, 256).map(pte::mfn).unwrap_or(0);
            let console = match start.console() {
                ConsoleInfo::DomU { evtchn, .. } => evtchn,
                _ => u32::MAX,
            };
            let timer = time::timer_port().map_err(|_| "no timer port")?;
            let stack_probe = 0u64;
            let live_vas = [
                main as *const () as u64 & !0xfff,
                &stack_probe as *const u64 as u64 & !0xfff,
                tables.as_ptr() as u64 & !0xfff,
            ];
            Ok(Self {
                self_id,
                peer,
                window,
                l4,
                tables,
                live_entries,
                sacrificial,
                foreign,
                own,
                m2p_frame,
                max_mfn,
                protected: [console, timer],
                live_vas,
            })
        }

        fn buf_start(&self) -> u64 {
            self.window.va(0)
        }

        fn buf_end(&self) -> u64 {
            self.window.va(GUARD_PAGE)
        }

        /// Whether `va..va + len` lies in one of the argument buffers.
        fn in_buffers(&self, va: u64, len: u64) -> bool {
            let end = va.saturating_add(len);
            let mc = self.window.va(MC_PAGES.start)..=self.window.va(MC_PAGES.end);
            (va >= self.buf_start() && end <= self.buf_end())
                || (mc.contains(&va) && mc.contains(&end))
        }

        /// Whether `mfn` is a frame of ours that something of ours uses
        /// (not a sacrificial frame, not a page table).
        fn is_live(&self, mfn: Mfn) -> bool {
            self.own.binary_search(&mfn).is_ok()
                && !self.tables.contains(&mfn)
                && !self.sacrificial.iter().any(|f| f.mfn == mfn)
        }

        fn is_foreign(&self, mfn: Mfn) -> bool {
            self.foreign.contains(&mfn)
        }
    }

    fn walk(table: Mfn, level: u8, tables: &mut Vec<Mfn>, live: &mut Vec<(Mfn, usize)>) {
        tables.push(table);
        for i in 0..512 {
            if level == 4 && (256..272).contains(&i) {
                continue;
            }
            let Ok(entry) = mm::read_table_entry(table, i) else {
                continue;
            };
            if !pte::is_present(entry) {
                continue;
            }
            live.push((table, i));
            if level > 1 && entry & pte::HUGE == 0 {
                walk(pte::mfn(entry), level - 1, tables, live);
            }
        }
    }

    /// Frames the M2P gives to a domain that is not us: the canary's,
    /// just below our own frames (hv-core hands frames out upward, and dom0
    /// creates the canary first), and a spread of dom0's below them.
    fn foreign_frames(start: &StartInfo, max_mfn: u64, seed: u64) -> Vec<Mfn> {
        let list = start.mfn_list();
        let lowest = list.iter().copied().min().unwrap_or(0);
        let foreign = |mfn: u64| {
            m2p(mfn).is_some_and(|pfn| pfn < (1 << 20) && mm::pfn_to_mfn(pfn) != Some(mfn))
        };
        let mut found: Vec<Mfn> = (0x100..lowest)
            .rev()
            .filter(|&m| foreign(m))
            .take(48)
            .collect();
        let mut rng = Rng(seed ^ 0xf0f0);
        for _ in 0..256 {
            if found.len() >= 64 {
                break;
            }
            let mfn = 0x100 + rng.below(max_mfn.max(0x101) - 0x100);
            if foreign(mfn) && !found.contains(&mfn) {
                found.push(mfn);
            }
        }
        found
    }

    /// One raw hypercall, for the fuzzer's own bookkeeping.
    fn hypercall_raw(nr: Hypercall, args: [u64; 5]) -> i64 {
        #[allow(unsafe_code)]
        // SAFETY: only harmless calls (no pointer, or a pointer into the
        // argument buffers) are made through this.
        unsafe {
            test_guests::arch::hypercall(nr as u32, args)
        }
    }

    // --- what a generated call needs afterwards -------------------------

    /// A check on a call that must be refused.
    #[derive(Clone, Copy)]
    enum Oracle {
        None,
        /// `ret` must be non-zero (or `done` below 1 at `done_va`).
        MustFail {
            what: &'static str,
            undo: Undo,
        },
        /// A single grant copy: the status at `status_va` must not be 0.
        CopyMustFail {
            what: &'static str,
            status_va: u64,
        },
    }

    #[derive(Clone, Copy)]
    enum Undo {
        Nothing,
        /// Clear this scratch fuzz page's entry.
        ClearScratch(u64),
        /// Map `va` back read-only to `mfn`.
        ReadOnly {
            va: u64,
            mfn: Mfn,
        },
    }

    #[derive(Clone, Copy, Default)]
    struct After {
        restore_traps: bool,
        restore_callbacks: bool,
        /// `set_segment_base(which, 0)`.
        segment_base: Option<u32>,
    }

    impl After {
        fn merge(&mut self, other: After) {
            self.restore_traps |= other.restore_traps;
            self.restore_callbacks |= other.restore_callbacks;
            self.segment_base = self.segment_base.or(other.segment_base);
        }
    }

    struct Call {
        nr: u32,
        args: [u64; 5],
        after: After,
        oracle: Oracle,
    }

    impl Call {
        fn new(nr: Hypercall, args: [u64; 5]) -> Self {
            Self {
                nr: nr as u32,
                args,
                after: After::default(),
                oracle: Oracle::None,
            }
        }
    }

    // --- the fuzzer --------------------------------------------------------

    struct Fuzzer {
        rng: Rng,
        w: World,
        /// Next free byte in the argument buffers (reset per call).
        arena: u64,
        /// Building a multicall entry: no nested sched_op, no oracles.
        in_multicall: bool,
        /// `only=<nr>[.<nr>...]`: every call is one of these implemented
        /// hypercalls (for reducing a failure to a few generators).
        only: Vec<Hypercall>,
        /// `watch=<page>`: after every call, check that this buffer page
        /// of the scratch window is still mapped (for finding the call
        /// that unmapped it).
        watch: Option<u64>,
    }

    const IMPLEMENTED: &[(Hypercall, u64)] = &[
        (Hypercall::MmuUpdate, 14),
        (Hypercall::UpdateVaMapping, 12),
        (Hypercall::MmuextOp, 9),
        (Hypercall::MemoryOp, 8),
        (Hypercall::GrantTableOp, 9),
        (Hypercall::EventChannelOp, 10),
        (Hypercall::Multicall, 5),
        (Hypercall::VcpuOp, 5),
        (Hypercall::SchedOp, 3),
        (Hypercall::XenVersion, 5),
        (Hypercall::ConsoleIo, 2),
        (Hypercall::SetTrapTable, 2),
        (Hypercall::SetCallbacks, 2),
        (Hypercall::CallbackOp, 2),
        (Hypercall::StackSwitch, 1),
        (Hypercall::SetSegmentBase, 2),
        (Hypercall::SetTimerOp, 2),
        (Hypercall::Domctl, 3),
        (Hypercall::Sysctl, 2),
    ];

    impl Fuzzer {
        // --- the pools ---

        fn domid(&mut self) -> DomId {
            match self.rng.below(10) {
                0 | 1 => DOMID_SELF,
                2 | 3 => 0,
                4 => self.w.self_id,
                5 | 6 => self.w.peer,
                7 => self
                    .rng
                    .pick(&[0x7ff1, 0x7ff2, 0x7ff3, 0x7ff4, 0x7fff, 0xffff]),
                8 => self.w.self_id.wrapping_add(1 + self.rng.below(3) as u16),
                _ => self.rng.next() as u16,
            }
        }

        /// A domain that is not this one, by any name.
        fn other_domid(&mut self) -> DomId {
            loop {
                let d = self.domid();
                if d != DOMID_SELF && d != self.w.self_id {
                    return d;
                }
            }
        }

        fn port(&mut self) -> Port {
            match self.rng.below(8) {
                0 => self.rng.below(8) as u32,
                1 => self.rng.pick(&self.w.protected),
                2 => self
                    .rng
                    .pick(&[1023, 1024, 4095, 4096, u32::MAX, 0x8000_0000]),
                3 => self.rng.next() as u32,
                _ => self.rng.below(64) as u32,
            }
        }

        /// A port that is not one the SDK needs.
        fn unprotected_port(&mut self) -> Port {
            loop {
                let p = self.port();
                if !self.w.protected.contains(&p) {
                    return p;
                }
            }
        }

        fn count(&mut self) -> u64 {
            match self.rng.below(12) {
                0 => 0,
                1..=5 => 1,
                6 | 7 => 2 + self.rng.below(15),
                8 => 5000,
                9 => u32::MAX as u64,
                10 => self.rng.pick(&[1023, 1024, 1025, 4096, 0x8000_0000]),
                _ => self.rng.next() as u32 as u64,
            }
        }

        /// A frame number: ours, others', tables, nonsense; never a frame
        /// Rust or the SDK uses (mapped writable in a fuzz page, one would
        /// let the hypervisor's writes through an output pointer reach it).
        fn mfn(&mut self) -> Mfn {
            let mfn = self.any_mfn();
            if self.w.is_live(mfn) {
                self.sacrificial().mfn
            } else {
                mfn
            }
        }

        fn any_mfn(&mut self) -> Mfn {
            match self.rng.below(12) {
                0 | 1 => self.sacrificial().mfn,
                2 | 3 => self.rng.pick(&self.w.tables),
                4..=6 if !self.w.foreign.is_empty() => self.rng.pick(&self.w.foreign),
                7 => self.w.m2p_frame,
                8 => 0,
                9 => self.w.max_mfn + self.rng.below(4),
                10 => self.rng.next() & 0xf_ffff_ffff,
                _ => self.rng.below(self.w.max_mfn.max(1)),
            }
        }

        /// A frame that may be handed away, overwritten or retyped:
        /// anything but the frames Rust or the SDK use.
        fn disposable_mfn(&mut self) -> Mfn {
            let mfn = self.any_disposable_mfn();
            if self.w.is_live(mfn) || self.w.tables.contains(&mfn) {
                self.sacrificial().mfn
            } else {
                mfn
            }
        }

        fn any_disposable_mfn(&mut self) -> Mfn {
            match self.rng.below(6) {
                0 | 1 => self.sacrificial().mfn,
                2 | 3 if !self.w.foreign.is_empty() => self.rng.pick(&self.w.foreign),
                4 => self
                    .rng
                    .pick(&[0, self.w.m2p_frame, self.w.max_mfn, u64::MAX]),
                _ => self.rng.next() & 0xff_ffff,
            }
        }

        fn sacrificial(&mut self) -> Frame {
            self.rng.pick(&self.w.sacrificial)
        }

        fn pte_flags(&mut self) -> u64 {
            let mut flags = match self.rng.below(6) {
                0 => pte::KERNEL_RW,
                1 => pte::KERNEL_RO,
                2 => pte::TABLE,
                3 => pte::PRESENT | pte::WRITABLE | pte::USER,
                4 => self.rng.next() & 0x1ff,
                _ => pte::PRESENT,
            };
            if self.rng.one_in(4) {
                flags |= self.rng.pick(&[
                    pte::HUGE,
                    pte::NO_EXECUTE,
                    pte::GLOBAL,
                    1 << 52,
                    1 << 62,
                    0x7ff << 52,
                ]);
            }
            flags
        }

        fn pte_value(&mut self) -> u64 {
            match self.rng.below(10) {
                0 => 0,
                1 => self.rng.next(),
                2 => pte::entry(self.rng.pick(&self.w.tables), pte::KERNEL_RW),
                _ => {
                    let mfn = self.mfn();
                    (mfn << 12 & pte::ADDRESS_MASK) | self.pte_flags()
                }
            }
        }

        /// Any 64-bit value, biased to edges; never an address Rust uses.
        fn value(&mut self) -> u64 {
            match self.rng.below(14) {
                0 => 0,
                1 => 1,
                2 => self.rng.below(16),
                3 => u32::MAX as u64,
                4 => u64::MAX,
                5 => 5000,
                6 => self.domid() as u64,
                7 => self.port() as u64,
                8 => self.mfn(),
                9 => self.pte_value(),
                10 => self.bad_ptr(),
                11 => 1 << self.rng.below(64),
                12 => self.rng.next() as u32 as u64,
                _ => self.rng.next(),
            }
        }

        /// A pointer the hypervisor cannot read or write.
        fn bad_ptr(&mut self) -> u64 {
            match self.rng.below(9) {
                0 => 0,
                1 => HOLE_START + (self.rng.below(HOLE_LEN) & !7),
                2 => HOLE_START + HOLE_LEN - 8,
                3 => 0x0000_8000_0000_0000 + self.rng.below(1 << 40),
                4 => 0xffff_7fff_ffff_f000 + self.rng.below(4096),
                5 => 0x0000_7fff_ffff_fff8,
                6 => self.w.window.va(GUARD_PAGE) + self.rng.below(4096),
                7 => u64::MAX - self.rng.below(64),
                _ => 0x1000 * (1 + self.rng.below(0xff)),
            }
        }

        /// A pointer the hypervisor may write through without harming us
        /// (and may read anything from), for writes of at most
        /// [`OUT_MAX`] bytes: a longer write from a sacrificial frame's
        /// physmap address would run on into the next physmap page, which
        /// may be any frame of ours (heap, stack, code).
        fn out_ptr(&mut self) -> u64 {
            match self.rng.below(12) {
                0..=2 => self.bad_ptr(),
                3 => self.w.window.va(RO_PAGE) + self.rng.below(4096),
                4 => {
                    let table = self.rng.pick(&self.w.tables);
                    physmap_va(table) + self.rng.below(512) * 8
                }
                5 => self
                    .w
                    .window
                    .va(FUZZ_FIRST + self.rng.below(512 - FUZZ_FIRST)),
                6 => self.sacrificial().va() + self.rng.below(4096 - OUT_MAX),
                7 => self.w.buf_end() - 1 - self.rng.below(16),
                _ => self.alloc(64),
            }
        }

        /// Where the hypervisor may write an array of any length: every
        /// choice ends in a guard page or refuses the first write.
        fn out_array(&mut self) -> u64 {
            match self.rng.below(4) {
                0 => self.bad_ptr(),
                1 => self.w.window.va(RO_PAGE) + self.rng.below(4096),
                _ => self.w.buf_end() - 8 * (1 + self.rng.below(16)),
            }
        }

        /// Where a structure we fill goes: the buffers, sometimes
        /// unaligned or straddling into the guard page, or nowhere.
        fn in_ptr(&mut self, size: u64) -> u64 {
            match self.rng.below(20) {
                0 => self.bad_ptr(),
                1 => self.w.buf_end() - 1 - self.rng.below(size.max(1)),
                2 => self.alloc(size + 8) + 1 + self.rng.below(7),
                _ => self.alloc(size),
            }
        }

        /// Where an array of `made` elements of `size` bytes goes when the
        /// call says `count`: anywhere [`in_ptr`] puts things if the count
        /// is no larger, else ending at the guard page, so that the
        /// hypervisor faults on the first element we did not make rather
        /// than acting on stale buffer contents (which could be any
        /// request, even one aimed at our own page tables).
        fn array(&mut self, made: u64, count: u64, size: u64) -> u64 {
            if count <= made {
                self.in_ptr(made * size)
            } else {
                self.w.buf_end() - made * size
            }
        }

        /// A virtual address where a mapping may be made, replaced or
        /// removed without touching anything of ours.
        fn disposable_va(&mut self) -> u64 {
            match self.rng.below(8) {
                0..=3 => self
                    .w
                    .window
                    .va(FUZZ_FIRST + self.rng.below(512 - FUZZ_FIRST)),
                4 => self.sacrificial().va(),
                5 => match self.bad_ptr() & !0xfff {
                    page if page == self.w.window.va(GUARD_PAGE) => HOLE_START,
                    page => page,
                },
                // Kernel L4 slots 16-255: nothing of ours (slot 2 is the
                // scratch window with the buffers).
                6 => (16 + self.rng.below(240)) << 39 | 0x1000,
                // Never a guard page: mapped, it would let overruns and
                // "unreadable" pointers reach whatever it mapped.
                _ => HOLE_START + (self.rng.below(HOLE_LEN) & !0xfff),
            }
        }

        fn alloc(&mut self, size: u64) -> u64 {
            let size = (size + 7) & !7;
            let limit = BUF_PAGES * 4096;
            if self.arena + size > limit {
                self.arena = 0;
            }
            let va = self.w.buf_start() + self.arena;
            self.arena += size.min(limit);
            va
        }

        /// Writes `value` at `va`, each of its bytes that lies in the
        /// buffers (a bad pointer's are dropped). A word that runs into
        /// the guard page is written up to it: a call that reads only the
        /// part before the guard (a 4-byte port of a 24-byte argument)
        /// must see what the generator chose, never a stale word an
        /// earlier call left there (which once closed our timer port).
        fn poke(&self, va: u64, value: u64) {
            for (i, byte) in value.to_le_bytes().into_iter().enumerate() {
                let at = va.wrapping_add(i as u64);
                if !self.w.in_buffers(at, 1) {
                    continue;
                }
                #[allow(unsafe_code)]
                // SAFETY: the buffer pages are frames of ours mapped
                // writable in the scratch window, which holds no Rust
                // object; a byte has no alignment.
                unsafe {
                    (at as *mut u8).write_volatile(byte);
                }
            }
        }

        fn peek(&self, va: u64) -> u64 {
            if !self.w.in_buffers(va, 8) {
                return u64::MAX;
            }
            #[allow(unsafe_code)]
            // SAFETY: as `poke`.
            let bytes = unsafe { (va as *const [u8; 8]).read_volatile() };
            u64::from_le_bytes(bytes)
        }

        fn put(&self, va: u64, words: &[u64]) {
            for (i, w) in words.iter().enumerate() {
                self.poke(va + i as u64 * 8, *w);
            }
        }

        // --- the generators ---

        fn generate(&mut self) -> Call {
            self.arena = 0;
            if !self.only.is_empty() {
                let h = self.rng.pick(&self.only);
                return self.implemented(h);
            }
            if self.rng.one_in(10) {
                return self.unimplemented();
            }
            let total: u64 = IMPLEMENTED.iter().map(|(_, w)| w).sum();
            let mut at = self.rng.below(total);
            let mut choice = Hypercall::XenVersion;
            for &(h, weight) in IMPLEMENTED {
                if at < weight {
                    choice = h;
                    break;
                }
                at -= weight;
            }
            self.implemented(choice)
        }

        fn implemented(&mut self, h: Hypercall) -> Call {
            match h {
                Hypercall::MmuUpdate => self.mmu_update(),
                Hypercall::UpdateVaMapping => self.update_va_mapping(),
                Hypercall::MmuextOp => self.mmuext_op(),
                Hypercall::MemoryOp => self.memory_op(),
                Hypercall::GrantTableOp => self.grant_table_op(),
                Hypercall::EventChannelOp => self.event_channel_op(),
                Hypercall::Multicall => self.multicall(),
                Hypercall::VcpuOp => self.vcpu_op(),
                Hypercall::SchedOp => self.sched_op(),
                Hypercall::XenVersion => {
                    let cmd = if self.rng.one_in(4) {
                        self.value()
                    } else {
                        self.rng.below(13)
                    };
                    Call::new(h, [cmd, self.out_ptr(), 0, 0, 0])
                }
                Hypercall::ConsoleIo => self.console_io(),
                Hypercall::SetTrapTable => self.set_trap_table(),
                Hypercall::SetCallbacks => {
                    let mut c = Call::new(
                        h,
                        [
                            self.code_address(),
                            self.code_address(),
                            self.code_address(),
                            0,
                            0,
                        ],
                    );
                    c.after.restore_callbacks = true;
                    c
                }
                Hypercall::CallbackOp => self.callback_op(),
                Hypercall::StackSwitch => {
                    Call::new(h, [self.value(), self.code_address(), 0, 0, 0])
                }
                Hypercall::SetSegmentBase => {
                    let which = if self.rng.one_in(5) {
                        self.value()
                    } else {
                        self.rng.below(4)
                    };
                    let mut c = Call::new(h, [which, self.code_address(), 0, 0, 0]);
                    c.after.segment_base = (which < 3).then_some(which as u32);
                    c
                }
                Hypercall::SetTimerOp => {
                    let timeout = match self.rng.below(4) {
                        0 => 0,
                        1 => time::now_ns() + self.rng.below(2_000_000),
                        _ => self.value(),
                    };
                    Call::new(h, [timeout, 0, 0, 0, 0])
                }
                Hypercall::Domctl | Hypercall::Sysctl => self.control(h),
                _ => self.unimplemented(),
            }
        }

        /// An address for a callback, trap handler, stack or segment base.
        fn code_address(&mut self) -> u64 {
            match self.rng.below(6) {
                0 => 0,
                1 => self.bad_ptr(),
                2 => self.rng.pick(&self.w.live_vas) + self.rng.below(4096),
                3 => self.rng.next(),
                _ => layout::VIRT_BASE + self.rng.below(1 << 30),
            }
        }

        fn unimplemented(&mut self) -> Call {
            let nr = loop {
                let nr = self.rng.below(64) as u32;
                let known = Hypercall::ALL.iter().find(|h| **h as u32 == nr);
                if nr != Hypercall::Iret as u32
                    && !known.is_some_and(|h| IMPLEMENTED.iter().any(|(i, _)| i == h))
                {
                    break nr;
                }
            };
            let mut args = [0; 5];
            for a in &mut args {
                *a = if self.rng.one_in(2) {
                    self.value()
                } else {
                    self.out_ptr()
                };
            }
            Call {
                nr,
                args,
                after: After::default(),
                oracle: Oracle::None,
            }
        }

        /// An mmu_update request: (ptr, val), and whether it is the
        /// "must be refused" kind with the undo that goes with it.
        fn mmu_request(&mut self) -> (u64, u64, Option<(&'static str, Undo)>) {
            let cmd = match self.rng.below(10) {
                0 => xen::MMU_MACHPHYS_UPDATE,
                1 => xen::MMU_PT_UPDATE_PRESERVE_AD,
                2 if self.rng.one_in(2) => xen::MMU_PT_UPDATE_NO_TRANSLATE,
                _ => xen::MMU_NORMAL_PT_UPDATE,
            };
            if cmd == xen::MMU_MACHPHYS_UPDATE {
                let mfn = self.disposable_mfn();
                return ((mfn << 12) | cmd, self.value(), None);
            }
            match self.rng.below(10) {
                // A fuzz page of the scratch window.
                0..=3 => {
                    let page = FUZZ_FIRST + self.rng.below(512 - FUZZ_FIRST);
                    let ptr = self.w.window.entry_maddr(page) | cmd;
                    if self.rng.one_in(4) && !self.w.foreign.is_empty() {
                        let mfn = self.rng.pick(&self.w.foreign);
                        let val = pte::entry(mfn, self.pte_flags() | pte::PRESENT);
                        let undo = Undo::ClearScratch(page);
                        return (
                            ptr,
                            val,
                            Some(("mmu_update mapped another domain's frame", undo)),
                        );
                    }
                    (ptr, self.pte_value(), None)
                }
                // An empty L4 slot of ours.
                4 => {
                    let slot = FREE_L4_SLOTS.start
                        + self.rng.below(FREE_L4_SLOTS.end - FREE_L4_SLOTS.start);
                    ((self.w.l4 * 4096 + slot * 8) | cmd, self.pte_value(), None)
                }
                // A live entry, rewritten with its own value.
                5 => {
                    let (table, index) = self.rng.pick(&self.w.live_entries);
                    // Unreadable (the M2P no longer names the table):
                    // an entry of a fuzz page instead, never a 0 written
                    // over a live mapping.
                    let Ok(current) = mm::read_table_entry(table, index) else {
                        let ptr = self.w.window.entry_maddr(FUZZ_FIRST) | cmd;
                        return (ptr, self.pte_value(), None);
                    };
                    let flip = self.rng.below(4) << 5 & (pte::ACCESSED | pte::DIRTY);
                    let val = if pte::is_present(current) {
                        current ^ flip
                    } else {
                        current
                    };
                    ((table * 4096 + index as u64 * 8) | cmd, val, None)
                }
                // Somewhere that is no page table of ours.
                6 => {
                    let at = self.disposable_mfn().wrapping_mul(4096) + self.rng.below(512) * 8;
                    (at | cmd, self.pte_value(), None)
                }
                7 => {
                    let (ptr, val) = (self.rng.next() & !3 | cmd, self.pte_value());
                    (self.harmless_ptr(ptr), val, None)
                }
                // Unaligned, into the scratch L1.
                8 => (
                    (self.w.window.entry_maddr(FUZZ_FIRST) + 4) | cmd,
                    self.pte_value(),
                    None,
                ),
                _ => {
                    let (ptr, val) = (self.value(), self.value());
                    (self.harmless_ptr(ptr), val, None)
                }
            }
        }

        /// A raw `ptr` of an mmu_update request, kept off our own page
        /// tables and the M2P entries of frames we use: a random value
        /// there (a PTE value of one of our tables reads as a machine
        /// address with a command in its low bits) would be a legitimate
        /// request that rewrites a live mapping or hides a table from the
        /// SDK, and the fuzzer would only be killing itself.
        fn harmless_ptr(&mut self, ptr: u64) -> u64 {
            let cmd = ptr & 3;
            let mfn = ptr >> 12;
            let ours = self.w.tables.contains(&mfn) || self.w.is_live(mfn);
            if !ours {
                ptr
            } else if cmd == xen::MMU_MACHPHYS_UPDATE {
                self.sacrificial().mfn << 12 | cmd
            } else {
                self.w
                    .window
                    .entry_maddr(FUZZ_FIRST + self.rng.below(512 - FUZZ_FIRST))
                    | cmd
            }
        }

        fn mmu_update(&mut self) -> Call {
            let count = self.count();
            let entries = count.min(16);
            let foreign = if self.rng.one_in(4) {
                self.domid()
            } else {
                DOMID_SELF
            };
            let reqs = self.array(entries, count, 16);
            let mut oracle = Oracle::None;
            for i in 0..entries {
                let (ptr, val, must_fail) = self.mmu_request();
                self.put(reqs + i * 16, &[ptr, val]);
                if let Some((what, undo)) = must_fail
                    && count == 1
                    && !self.in_multicall
                    && (foreign == DOMID_SELF || foreign == self.w.self_id)
                    && reqs >= self.w.buf_start()
                    && reqs + 16 <= self.w.buf_end()
                {
                    oracle = Oracle::MustFail { what, undo };
                }
            }
            let done = if self.rng.one_in(3) {
                0
            } else {
                self.out_ptr()
            };
            let mut c = Call::new(Hypercall::MmuUpdate, [reqs, count, done, foreign as u64, 0]);
            c.oracle = oracle;
            c
        }

        fn update_va_mapping(&mut self) -> Call {
            let flags = match self.rng.below(6) {
                0 => 0,
                1 => xen::UVMF_TLB_FLUSH,
                2 => xen::UVMF_INVLPG,
                3 => xen::UVMF_INVLPG | xen::UVMF_ALL,
                4 => self.out_ptr() & !7 | xen::UVMF_INVLPG,
                _ => self.value(),
            };
            let mut oracle = Oracle::None;
            let (va, val) = match self.rng.below(10) {
                // Another domain's frame into a fuzz page: must be refused.
                0 if !self.w.foreign.is_empty() => {
                    let page = FUZZ_FIRST + self.rng.below(512 - FUZZ_FIRST);
                    let mfn = self.rng.pick(&self.w.foreign);
                    oracle = Oracle::MustFail {
                        what: "update_va_mapping mapped another domain's frame",
                        undo: Undo::ClearScratch(page),
                    };
                    (
                        self.w.window.va(page),
                        pte::entry(mfn, self.pte_flags() | pte::PRESENT),
                    )
                }
                // One of our page tables, writable: must be refused.
                1 => {
                    let table = self.rng.pick(&self.w.tables);
                    let va = physmap_va(table);
                    oracle = Oracle::MustFail {
                        what: "update_va_mapping made one of our page tables writable",
                        undo: Undo::ReadOnly { va, mfn: table },
                    };
                    (va, pte::entry(table, pte::KERNEL_RW))
                }
                // A page Rust uses, with its own entry.
                2 => {
                    let va = self.rng.pick(&self.w.live_vas);
                    match mm::lookup(va) {
                        Ok(entry) if pte::is_present(entry) => (va, entry),
                        _ => (HOLE_START, 0),
                    }
                }
                _ => (self.disposable_va(), self.pte_value()),
            };
            if self.in_multicall {
                oracle = Oracle::None;
            }
            let mut c = Call::new(Hypercall::UpdateVaMapping, [va, val, flags, 0, 0]);
            c.oracle = oracle;
            c
        }

        fn mmuext_op(&mut self) -> Call {
            let count = self.count();
            let entries = count.min(8);
            let ops = self.array(entries, count, 24);
            for i in 0..entries {
                let cmd = if self.rng.one_in(8) {
                    self.value() as u32
                } else {
                    self.rng.below(21) as u32
                };
                let (arg1, arg2) = match cmd {
                    xen::MMUEXT_PIN_L1_TABLE..=xen::MMUEXT_UNPIN_TABLE => {
                        let mfn = match self.rng.below(4) {
                            0 => self.w.window.l1,
                            1 => self.w.l4,
                            _ => self.mfn(),
                        };
                        (mfn, self.value())
                    }
                    xen::MMUEXT_NEW_BASEPTR => {
                        let mfn = match self.rng.below(4) {
                            0 => self.w.l4,
                            1 => self.rng.pick(&self.w.tables),
                            2 if !self.w.foreign.is_empty() => self.rng.pick(&self.w.foreign),
                            _ => self
                                .rng
                                .pick(&[0, self.w.m2p_frame, self.w.max_mfn, u64::MAX]),
                        };
                        (mfn, 0)
                    }
                    xen::MMUEXT_NEW_USER_BASEPTR => (self.mfn(), 0),
                    xen::MMUEXT_TLB_FLUSH_MULTI | xen::MMUEXT_INVLPG_MULTI => {
                        (self.value(), self.out_ptr())
                    }
                    xen::MMUEXT_CLEAR_PAGE | xen::MMUEXT_COPY_PAGE => {
                        (self.disposable_mfn(), self.mfn())
                    }
                    xen::MMUEXT_SET_LDT => (self.out_ptr(), self.count()),
                    _ => (self.value(), self.value()),
                };
                let pad = self.rng.below(2) << 40;
                self.put(ops + i * 24, &[cmd as u64 | pad, arg1, arg2]);
            }
            let done = if self.rng.one_in(3) {
                0
            } else {
                self.out_ptr()
            };
            let foreign = if self.rng.one_in(4) {
                self.domid()
            } else {
                DOMID_SELF
            };
            Call::new(Hypercall::MmuextOp, [ops, count, done, foreign as u64, 0])
        }

        fn memory_op(&mut self) -> Call {
            let cmd = match self.rng.below(12) {
                0 => self.value(),
                1 => self.rng.below(64),
                // Continuation bits above the command.
                2 => self.rng.below(10) | self.rng.next() << 6,
                _ => self.rng.pick(&[0u64, 1, 2, 3, 4, 6, 9, 5, 7]),
            };
            let mut oracle = Oracle::None;
            let arg = match (cmd & 0x3f) as u32 {
                ops::XENMEM_INCREASE_RESERVATION
                | ops::XENMEM_DECREASE_RESERVATION
                | ops::XENMEM_POPULATE_PHYSMAP => {
                    let decrease = cmd == ops::XENMEM_DECREASE_RESERVATION as u64;
                    let n = self.count();
                    let list = if self.rng.one_in(6) {
                        self.out_array()
                    } else {
                        self.array(n.min(16), n, 8)
                    };
                    let mut foreign_only = true;
                    for i in 0..n.min(16) {
                        let v = if decrease {
                            let m = self.disposable_mfn();
                            foreign_only &= self.w.is_foreign(m);
                            m
                        } else if self.rng.one_in(2) {
                            self.rng.below(8192)
                        } else {
                            self.value()
                        };
                        self.poke(list + i * 8, v);
                    }
                    let order = if self.rng.one_in(6) {
                        self.value() as u32
                    } else {
                        0
                    };
                    let domid = if self.rng.one_in(3) {
                        self.domid()
                    } else {
                        DOMID_SELF
                    };
                    let arg = self.in_ptr(40);
                    let mem_flags = self.rng.below(4) << 32;
                    self.put(arg, &[list, n, order as u64 | mem_flags, domid as u64]);
                    if decrease
                        && n == 1
                        && foreign_only
                        && order == 0
                        && !self.in_multicall
                        && (domid == DOMID_SELF || domid == self.w.self_id)
                        && list >= self.w.buf_start()
                        && arg >= self.w.buf_start()
                        && arg + 40 <= self.w.buf_end()
                    {
                        oracle = Oracle::MustFail {
                            what: "decrease_reservation gave away another domain's frame",
                            undo: Undo::Nothing,
                        };
                    }
                    arg
                }
                ops::XENMEM_CURRENT_RESERVATION | ops::XENMEM_MAXIMUM_RESERVATION => {
                    let arg = self.in_ptr(2);
                    let d = self.domid() as u64;
                    self.poke(arg, d);
                    arg
                }
                ops::XENMEM_MEMORY_MAP => {
                    let arg = self.in_ptr(16);
                    let n = self.count();
                    let buf = self.out_ptr();
                    self.put(arg, &[n, buf]);
                    arg
                }
                _ => {
                    let arg = self.in_ptr(48);
                    for i in 0..6 {
                        let v = self.value();
                        self.poke(arg + i * 8, v);
                    }
                    arg
                }
            };
            let mut c = Call::new(Hypercall::MemoryOp, [cmd, arg, 0, 0, 0]);
            c.oracle = oracle;
            c
        }

        fn grant_ref(&mut self) -> u64 {
            match self.rng.below(6) {
                0 => self.rng.below(8),
                1 => self
                    .rng
                    .pick(&[511, 512, 2047, 2048, 100_000, u32::MAX as u64]),
                2 => self.rng.next() as u32 as u64,
                _ => 8 + self.rng.below(64),
            }
        }

        /// Half of a grant copy; `dest` keeps our own frames to the
        /// disposable ones. Returns (u, domid, offset) and whether it names
        /// a frame (not a ref) that is not ours to write.
        fn copy_side(&mut self, dest: bool) -> ([u64; 2], bool, bool) {
            let by_ref = self.rng.one_in(3);
            let domid = if self.rng.one_in(2) {
                DOMID_SELF
            } else {
                self.domid()
            };
            let (u, forbidden) = if by_ref {
                (self.grant_ref(), false)
            } else {
                match self.rng.below(4) {
                    0 if !self.w.foreign.is_empty() => (self.rng.pick(&self.w.foreign), true),
                    1 => (self.rng.pick(&self.w.tables), true),
                    _ if dest => (self.disposable_mfn(), false),
                    _ => (self.mfn(), false),
                }
            };
            let offset = match self.rng.below(4) {
                0 => 0,
                1 => 4095,
                2 => self.rng.next() as u16 as u64,
                _ => self.rng.below(4096),
            };
            ([u, domid as u64 | offset << 16], by_ref, forbidden)
        }

        fn grant_table_op(&mut self) -> Call {
            let cmd = if self.rng.one_in(8) {
                self.value()
            } else {
                self.rng.below(13)
            };
            let count = self.count();
            let entries = count.min(8);
            let mut oracle = Oracle::None;
            let uop = match cmd as u32 {
                gnttab::GNTTABOP_MAP_GRANT_REF => {
                    let uop = self.array(entries, count, 32);
                    for i in 0..entries {
                        let flags = if self.rng.one_in(4) {
                            self.value() as u32 as u64
                        } else {
                            (gnttab::GNTMAP_HOST_MAP
                                | (self.rng.below(2) as u32 * gnttab::GNTMAP_READONLY))
                                as u64
                        };
                        let r = self.grant_ref();
                        let d = self.domid() as u64;
                        let host = self.disposable_va();
                        let dev = self.value();
                        self.put(
                            uop + i * 32,
                            &[host, flags | r << 32, d | 0x7fff << 16, dev],
                        );
                    }
                    uop
                }
                gnttab::GNTTABOP_UNMAP_GRANT_REF | gnttab::GNTTABOP_UNMAP_AND_REPLACE => {
                    let uop = self.array(entries, count, 24);
                    for i in 0..entries {
                        let host = self.disposable_va();
                        let second = if cmd == gnttab::GNTTABOP_UNMAP_AND_REPLACE as u64 {
                            self.disposable_va()
                        } else {
                            self.value()
                        };
                        let handle = if self.rng.one_in(2) {
                            self.rng.below(8)
                        } else {
                            self.value()
                        };
                        self.put(uop + i * 24, &[host, second, handle]);
                    }
                    uop
                }
                gnttab::GNTTABOP_SETUP_TABLE | gnttab::GNTTABOP_QUERY_SIZE => {
                    let uop = self.array(entries, count, 24);
                    for i in 0..entries {
                        let d = self.domid() as u64;
                        let n = self.rng.pick(&[0u64, 1, 2, 4, 5, 32, 512, u32::MAX as u64]);
                        let list = self.out_ptr();
                        self.put(uop + i * 24, &[d | n << 32, 0, list]);
                    }
                    uop
                }
                gnttab::GNTTABOP_COPY => {
                    let uop = self.array(entries, count, 40);
                    for i in 0..entries {
                        let (src, _, _) = self.copy_side(false);
                        let (dst, dst_ref, forbidden) = self.copy_side(true);
                        let len = match self.rng.below(4) {
                            0 => 0,
                            1 => 4096,
                            2 => self.rng.next() as u16 as u64,
                            _ => self.rng.below(64),
                        };
                        let mut flags = self.rng.below(4);
                        if dst_ref {
                            flags |= gnttab::GNTCOPY_DEST_GREF as u64;
                        } else {
                            flags &= !(gnttab::GNTCOPY_DEST_GREF as u64);
                        }
                        let base = uop + i * 40;
                        self.put(
                            base,
                            &[
                                src[0],
                                src[1],
                                dst[0],
                                dst[1],
                                len | flags << 16 | 0x7777 << 32,
                            ],
                        );
                        if count == 1
                            && forbidden
                            && len > 0
                            && !self.in_multicall
                            && base >= self.w.buf_start()
                            && base + 40 <= self.w.buf_end()
                        {
                            oracle = Oracle::CopyMustFail {
                                what: "a grant copy wrote a frame that is not ours to write",
                                status_va: base + 36,
                            };
                        }
                    }
                    uop
                }
                gnttab::GNTTABOP_TRANSFER => {
                    let uop = self.array(entries, count, 16);
                    for i in 0..entries {
                        let mfn = self.disposable_mfn();
                        let d = self.domid() as u64;
                        let r = self.grant_ref();
                        self.put(uop + i * 16, &[mfn, d | r << 32]);
                    }
                    uop
                }
                _ => {
                    let uop = self.in_ptr(64);
                    for i in 0..8 {
                        let v = self.value();
                        self.poke(uop + i * 8, v);
                    }
                    uop
                }
            };
            let mut c = Call::new(Hypercall::GrantTableOp, [cmd, uop, count, 0, 0]);
            c.oracle = oracle;
            c
        }

        fn event_channel_op(&mut self) -> Call {
            let cmd = loop {
                let cmd = if self.rng.one_in(8) {
                    self.value() as u32
                } else {
                    self.rng.below(15) as u32
                };
                if cmd != evtchn::EVTCHNOP_INIT_CONTROL {
                    break cmd;
                }
            };
            let arg = self.in_ptr(24);
            let word = match cmd {
                evtchn::EVTCHNOP_ALLOC_UNBOUND => {
                    let (d, r) = (self.domid() as u64, self.domid() as u64);
                    d | r << 16 | (self.port() as u64) << 32
                }
                evtchn::EVTCHNOP_BIND_INTERDOMAIN => {
                    let d = self.domid() as u64;
                    d | (self.port() as u64) << 32
                }
                evtchn::EVTCHNOP_BIND_VIRQ => {
                    let virq = if self.rng.one_in(4) {
                        self.value() as u32
                    } else {
                        self.rng.below(26) as u32
                    };
                    virq as u64 | (self.vcpu() as u64) << 32
                }
                evtchn::EVTCHNOP_BIND_IPI => self.vcpu() as u64,
                evtchn::EVTCHNOP_CLOSE | evtchn::EVTCHNOP_BIND_VCPU => {
                    self.unprotected_port() as u64 | (self.vcpu() as u64) << 32
                }
                evtchn::EVTCHNOP_SEND | evtchn::EVTCHNOP_UNMASK | evtchn::EVTCHNOP_SET_PRIORITY => {
                    self.port() as u64 | (self.rng.below(20)) << 32
                }
                evtchn::EVTCHNOP_STATUS => {
                    let d = self.domid() as u64;
                    d | (self.port() as u64) << 32
                }
                evtchn::EVTCHNOP_RESET | evtchn::EVTCHNOP_RESET_CONT => self.other_domid() as u64,
                _ => self.value(),
            };
            let tail = [self.value(), self.value()];
            self.put(arg, &[word, tail[0], tail[1]]);
            Call::new(Hypercall::EventChannelOp, [cmd as u64, arg, 0, 0, 0])
        }

        fn vcpu(&mut self) -> u32 {
            match self.rng.below(8) {
                0..=4 => 0,
                5 => 1,
                6 => self.rng.pick(&[31, 32, 127, 128, u32::MAX]),
                _ => self.rng.next() as u32,
            }
        }

        fn vcpu_op(&mut self) -> Call {
            let (cmd, vcpu) = loop {
                let cmd = if self.rng.one_in(8) {
                    self.value() as u32
                } else {
                    self.rng.below(14) as u32
                };
                let vcpu = self.vcpu();
                let kills_us = vcpu == 0
                    && matches!(
                        cmd,
                        ops::VCPUOP_DOWN | ops::VCPUOP_SEND_NMI | ops::VCPUOP_REGISTER_VCPU_INFO
                    );
                if !kills_us {
                    break (cmd, vcpu);
                }
            };
            let arg = match cmd {
                ops::VCPUOP_SET_PERIODIC_TIMER => {
                    let arg = self.in_ptr(8);
                    let period = self
                        .rng
                        .pick(&[0, 1, 999_999, 1_000_000, 10_000_000, u64::MAX]);
                    self.poke(arg, period);
                    arg
                }
                ops::VCPUOP_SET_SINGLESHOT_TIMER => {
                    let arg = self.in_ptr(16);
                    let timeout = match self.rng.below(3) {
                        0 => time::now_ns() + self.rng.below(1_000_000),
                        1 => self.rng.pick(&[0, 1, u64::MAX, i64::MAX as u64]),
                        _ => self.value(),
                    };
                    let flags = self.rng.below(4);
                    self.put(arg, &[timeout, flags]);
                    arg
                }
                // These keep the pointer and write through it later (on
                // Xen): only places nothing of ours lives.
                ops::VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA
                | ops::VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA
                | ops::VCPUOP_REGISTER_VCPU_INFO
                | ops::VCPUOP_INITIALISE => {
                    if self.rng.one_in(2) {
                        self.bad_ptr()
                    } else {
                        let arg = self.in_ptr(16);
                        let target = self.disposable_va();
                        let offset = self.rng.below(4096);
                        self.put(arg, &[target, offset]);
                        arg
                    }
                }
                _ => self.out_ptr(),
            };
            Call::new(Hypercall::VcpuOp, [cmd as u64, vcpu as u64, arg, 0, 0])
        }

        fn sched_op(&mut self) -> Call {
            let choice = if self.in_multicall {
                0
            } else {
                self.rng.below(10)
            };
            match choice {
                // Block: the timer is armed just before it is made.
                1 => Call::new(
                    Hypercall::SchedOp,
                    [ops::SCHEDOP_BLOCK as u64, self.value(), 0, 0, 0],
                ),
                2 | 3 => {
                    let nr = self.rng.pick(&[0u64, 1, 2, 3, 128, 129, u32::MAX as u64]);
                    let ports = self.in_ptr(nr.min(4) * 4);
                    for i in 0..nr.min(4) {
                        let p = self.port() as u64;
                        let q = self.port() as u64;
                        self.poke(ports + i * 8, p | q << 32);
                    }
                    let timeout = if self.rng.one_in(3) {
                        1
                    } else {
                        time::now_ns() + self.rng.below(1_000_000)
                    };
                    let arg = self.alloc(24);
                    let pad = self.rng.below(2) << 32;
                    self.put(arg, &[ports, nr | pad, timeout]);
                    Call::new(Hypercall::SchedOp, [ops::SCHEDOP_POLL as u64, arg, 0, 0, 0])
                }
                4 => {
                    let arg = self.in_ptr(8);
                    let d = self.other_domid() as u64;
                    let reason = self.rng.below(6) << 32;
                    self.poke(arg, d | reason);
                    Call::new(
                        Hypercall::SchedOp,
                        [ops::SCHEDOP_REMOTE_SHUTDOWN as u64, arg, 0, 0, 0],
                    )
                }
                5 => {
                    let cmd = ops::SCHEDOP_PIN_OVERRIDE as u64 + self.rng.below(64);
                    Call::new(Hypercall::SchedOp, [cmd, self.out_ptr(), 0, 0, 0])
                }
                6 => {
                    // Numbers past every known command.
                    let cmd = (self.value() as u32).max(8) as u64;
                    Call::new(Hypercall::SchedOp, [cmd, self.out_ptr(), 0, 0, 0])
                }
                _ => Call::new(
                    Hypercall::SchedOp,
                    [ops::SCHEDOP_YIELD as u64, self.value(), 0, 0, 0],
                ),
            }
        }

        fn console_io(&mut self) -> Call {
            let (cmd, count, buf) = match self.rng.below(4) {
                0 => (xen::CONSOLEIO_WRITE as u64, 0, self.out_ptr()),
                1 => (xen::CONSOLEIO_WRITE as u64, self.count(), self.bad_ptr()),
                2 => (xen::CONSOLEIO_READ as u64, self.count(), self.out_ptr()),
                // Unknown commands; a write with a count is never made.
                _ => (
                    (self.value() as u32).max(2) as u64,
                    self.count(),
                    self.out_ptr(),
                ),
            };
            Call::new(Hypercall::ConsoleIo, [cmd, count, buf, 0, 0])
        }

        fn set_trap_table(&mut self) -> Call {
            let table = match self.rng.below(6) {
                0 => 0,
                1 => self.bad_ptr(),
                2 => {
                    let t = self.rng.pick(&self.w.tables);
                    physmap_va(t)
                }
                _ => {
                    let n = self.rng.below(6);
                    let table = self.in_ptr((n + 1) * 16);
                    for i in 0..n {
                        let vector = self.rng.below(256);
                        let flags = self.rng.below(256);
                        let cs = self.rng.pick(&[0xe033u64, 0xe030, 0, 0xffff]);
                        let address = self.code_address();
                        self.put(table + i * 16, &[vector | flags << 8 | cs << 16, address]);
                    }
                    if self.rng.one_in(4) {
                        let v = self.value();
                        self.put(table + n * 16, &[v, v]);
                    } else {
                        self.put(table + n * 16, &[0, 0]);
                    }
                    table
                }
            };
            let mut c = Call::new(Hypercall::SetTrapTable, [table, 0, 0, 0, 0]);
            c.after.restore_traps = true;
            c
        }

        fn callback_op(&mut self) -> Call {
            let cmd = match self.rng.below(6) {
                0 => self.value(),
                1 => ops::CALLBACKOP_UNREGISTER as u64,
                _ => ops::CALLBACKOP_REGISTER as u64,
            };
            let arg = if self.rng.one_in(6) {
                self.bad_ptr()
            } else {
                self.in_ptr(16)
            };
            let kind = if self.rng.one_in(4) {
                self.value() as u16 as u64
            } else {
                self.rng.below(8)
            };
            let address = self.code_address();
            let flags = self.rng.below(4) << 16;
            self.put(arg, &[kind | flags, address]);
            let mut c = Call::new(Hypercall::CallbackOp, [cmd, arg, 0, 0, 0]);
            c.after.restore_callbacks = true;
            c
        }

        fn control(&mut self, h: Hypercall) -> Call {
            let arg = if self.rng.one_in(8) {
                self.out_ptr()
            } else {
                self.in_ptr(16 + 128)
            };
            let cmd = if self.rng.one_in(4) {
                self.value() as u32 as u64
            } else {
                self.rng.below(16)
            };
            let version = if self.rng.one_in(5) {
                self.value() as u32 as u64
            } else {
                0x15
            };
            let mut words = [0u64; 18];
            words[0] = cmd | version << 32;
            for w in &mut words[1..] {
                *w = self.value();
            }
            if h == Hypercall::Domctl {
                words[1] = self.domid() as u64;
            }
            self.put(arg, &words);
            Call::new(h, [arg, 0, 0, 0, 0])
        }

        fn multicall(&mut self) -> Call {
            let n = self.rng.below(8);
            // The count may exceed the entries made (below): then they end at
            // the guard page, so the hypervisor faults on the first entry
            // past them instead of running stale buffer contents.
            let end = self.w.window.va(MC_PAGES.end);
            // A multicall naming itself: must be refused, not recursed.
            if self.rng.one_in(64) {
                let entries = end - 64;
                self.put(entries, &[Hypercall::Multicall as u64, 0, entries, 1]);
                return Call::new(Hypercall::Multicall, [entries, 1, 0, 0, 0]);
            }
            let entries = end - n * 64;
            self.in_multicall = true;
            let mut after = After::default();
            for i in 0..n {
                let inner = self.generate_inner();
                after.merge(inner.after);
                let a = inner.args;
                self.put(
                    entries + i * 64,
                    &[inner.nr as u64, 0x5a5a, a[0], a[1], a[2], a[3], a[4], 0],
                );
            }
            self.in_multicall = false;
            let count = match self.rng.below(8) {
                0 => self.count(),
                _ => n,
            };
            let ptr = if self.rng.one_in(10) {
                self.bad_ptr()
            } else {
                entries
            };
            let mut c = Call::new(Hypercall::Multicall, [ptr, count, 0, 0, 0]);
            c.after = after;
            c
        }

        /// One multicall entry: as [`generate`], without resetting the
        /// buffers the outer call is using.
        fn generate_inner(&mut self) -> Call {
            if self.rng.one_in(10) {
                return self.unimplemented();
            }
            loop {
                let h = self.rng.pick(IMPLEMENTED).0;
                if h != Hypercall::Multicall {
                    return self.implemented(h);
                }
            }
        }

        // --- making the calls ---

        fn issue(&mut self, call: &Call, trace: bool) -> i64 {
            let index = COUNT.load(Relaxed);
            if trace {
                direct(&format!(
                    "{NAME}: trace {}",
                    describe(index, call.nr as u64, &call.args)
                ));
            }
            let blocks =
                call.nr == Hypercall::SchedOp as u32 && call.args[0] == ops::SCHEDOP_BLOCK as u64;
            let masks = call.after.restore_callbacks || blocks;
            let was_enabled = masks && events::disable();
            if blocks {
                // Something must end the block: a timer 200 us from now,
                // whatever the fuzzer did to timers before. Events stay
                // masked from before the timer is armed (Xen's idiom, and
                // Linux's idle): `SCHEDOP_block` unmasks and returns at
                // once if the timer's event is already pending. Unmasked,
                // the upcall could take the event before the block, which
                // would then never end.
                let now = time::now_ns();
                let armed = hypercall::set_timer_op(now + 200_000);
                self.check_timer_port();
                if trace {
                    let timer = self.w.protected[1];
                    let si = pv_guest_sdk::shared::shared_info();
                    let v = pv_guest_sdk::shared::vcpu();
                    let word = timer as usize / 64;
                    let si_va = si as *const _ as u64;
                    direct(&format!(
                        "{NAME}: before block: shared_info at {si_va:#x}, its PTE {:#x}, \
                         start_info's frame {:#x}",
                        mm::lookup(si_va).unwrap_or(0),
                        SHARED_MFN.load(Relaxed)
                    ));
                    direct(&format!(
                        "{NAME}: before block: now {now} armed {armed:?} timer port {timer} \
                         pending {} masked {} upcall_pending {} upcall_mask {} sel {:#x}",
                        si.evtchn_pending[word].load(Relaxed) >> (timer % 64) & 1,
                        si.evtchn_mask[word].load(Relaxed) >> (timer % 64) & 1,
                        v.upcall_pending.load(Relaxed),
                        v.upcall_mask.load(Relaxed),
                        v.pending_sel.load(Relaxed)
                    ));
                }
            }
            #[allow(unsafe_code)]
            // SAFETY: the generators only name memory of ours that holds
            // no Rust object (the buffers, the scratch window, sacrificial
            // frames), read-only pages, or addresses we do not own; they
            // change no mapping Rust uses (see the module doc), and the
            // state a call can break (trap table, callbacks, segment
            // bases) is put back below before any Rust code relies on it.
            let ret = unsafe { test_guests::arch::hypercall(call.nr, call.args) };
            record(call.nr, &call.args, ret);
            if let Some(page) = self.watch {
                let va = self.w.window.va(page);
                if !pte::is_present(mm::lookup(va).unwrap_or(0)) {
                    dump_ring(&format!(
                        "watched scratch page {page} ({va:#x}) no longer mapped"
                    ));
                    // The words the call's pointer arguments named, as it
                    // left them (the request itself, for a batch).
                    for &arg in &call.args[..2] {
                        let words: Vec<u64> = (0..6).map(|i| self.peek(arg + i * 8)).collect();
                        direct(&format!("{NAME}: at {arg:#x}: {words:#x?}"));
                    }
                    let entry = mm::read_table_entry(self.w.window.l1, page as usize);
                    direct(&format!(
                        "{NAME}: scratch L1 {:#x} entry {page} is now {entry:x?}",
                        self.w.window.l1
                    ));
                    self.watch = None;
                }
            }
            if call.after.restore_traps {
                restore_traps();
            }
            if call.after.restore_callbacks {
                restore_callbacks();
            }
            if masks {
                events::restore(was_enabled);
            }
            if let Some(which) = call.after.segment_base {
                let _ = hypercall::set_segment_base(which, 0);
            }
            self.check(call, ret);
            ret
        }

        /// The guard pages must stay unmapped, or overruns and
        /// "unreadable" pointers would reach whatever they map. Nothing
        /// the generators make names them; if one is mapped all the same,
        /// it is reported and unmapped.
        fn check_guards(&mut self) {
            for page in [GUARD_PAGE, MC_PAGES.end] {
                let va = self.w.window.va(page);
                if pte::is_present(mm::lookup(va).unwrap_or(0)) {
                    println!(
                        "{NAME}: BUG: guard page {va:#x} found mapped (call #{})",
                        COUNT.load(Relaxed)
                    );
                    dump_ring("BUG: a guard page was mapped");
                    let _ = test_guests::hc::update_va_mapping(va, 0, xen::UVMF_INVLPG);
                }
            }
        }

        /// A block ends only by our timer's event: the timer port must
        /// still be bound to VIRQ_TIMER (the generators never close or
        /// rebind it). If a call did all the same, that is reported here
        /// rather than found as a domain that never wakes.
        fn check_timer_port(&self) {
            let timer = self.w.protected[1];
            let status = hypercall::evtchn_status(xen::DOMID_SELF, timer);
            let bound = status
                .as_ref()
                .is_ok_and(|s| s.status == evtchn::EVTCHNSTAT_VIRQ && s.u[0] == evtchn::VIRQ_TIMER);
            if !bound {
                let what = format!("our timer port {timer} is no longer VIRQ_TIMER's: {status:?}");
                println!(
                    "{NAME}: BUG: {what} (call #{}, seed {})",
                    COUNT.load(Relaxed),
                    SEED.load(Relaxed)
                );
                dump_ring(&format!("BUG: {what}"));
            }
        }

        fn check(&mut self, call: &Call, ret: i64) {
            let what = match call.oracle {
                Oracle::None => return,
                Oracle::MustFail { what, undo } => {
                    // A one-request batch or a single mapping: 0 is
                    // success; a reservation change counts extents done.
                    let accepted = if call.nr == Hypercall::MemoryOp as u32 {
                        ret == 1
                    } else {
                        ret == 0
                    };
                    if !accepted {
                        return;
                    }
                    match undo {
                        Undo::Nothing => {}
                        Undo::ClearScratch(page) => {
                            let _ = test_guests::hc::update_va_mapping(
                                self.w.window.va(page),
                                0,
                                xen::UVMF_INVLPG,
                            );
                        }
                        Undo::ReadOnly { va, mfn } => {
                            #[allow(unsafe_code)]
                            // SAFETY: the page-table page's own physmap
                            // mapping, put back read-only as it was.
                            let _ = unsafe {
                                hypercall::update_va_mapping(
                                    va,
                                    pte::entry(mfn, pte::KERNEL_RO),
                                    xen::UVMF_INVLPG,
                                )
                            };
                        }
                    }
                    what
                }
                Oracle::CopyMustFail { what, status_va } => {
                    let status = self.peek(status_va) as u16 as i16;
                    if ret != 0 || status != gnttab::GNTST_OKAY {
                        return;
                    }
                    what
                }
            };
            println!(
                "{NAME}: BUG: {what} (call #{}, seed {})",
                COUNT.load(Relaxed) - 1,
                SEED.load(Relaxed)
            );
            dump_ring(&format!("BUG: {what}"));
        }
    }

    /// The physmap address of one of our frames (given its machine number).
    fn physmap_va(mfn: Mfn) -> u64 {
        // Every table is ours; should the M2P say otherwise, an address
        // in the hole (refused) rather than one of ours.
        mm::mfn_to_pfn(mfn).map_or(HOLE_START, layout::pfn_to_virt)
    }

    #[allow(unsafe_code)]
    unsafe extern "C" {
        // The SDK's entry stubs (global symbols of its start of day).
        fn pv_trap_0();
        fn pv_trap_1();
        fn pv_trap_3();
        fn pv_trap_4();
        fn pv_trap_5();
        fn pv_trap_6();
        fn pv_trap_7();
        fn pv_trap_10();
        fn pv_trap_11();
        fn pv_trap_12();
        fn pv_trap_13();
        fn pv_trap_14();
        fn pv_trap_16();
        fn pv_trap_17();
        fn pv_trap_18();
        fn pv_trap_19();
        fn pv_event_entry();
        fn pv_failsafe_entry();
    }

    /// The SDK's trap table again, as its start of day installs it.
    fn restore_traps() {
        let stubs: [(u8, unsafe extern "C" fn()); 16] = [
            (0, pv_trap_0),
            (1, pv_trap_1),
            (3, pv_trap_3),
            (4, pv_trap_4),
            (5, pv_trap_5),
            (6, pv_trap_6),
            (7, pv_trap_7),
            (10, pv_trap_10),
            (11, pv_trap_11),
            (12, pv_trap_12),
            (13, pv_trap_13),
            (14, pv_trap_14),
            (16, pv_trap_16),
            (17, pv_trap_17),
            (18, pv_trap_18),
            (19, pv_trap_19),
        ];
        let mut table = [TrapInfo::default(); 17];
        for (slot, (vector, stub)) in table.iter_mut().zip(stubs) {
            let dpl = if vector == 3 || vector == 4 { 3 } else { 0 };
            *slot = TrapInfo {
                vector,
                flags: dpl | xen::TI_MASK_EVENTS,
                cs: xen::FLAT_KERNEL_CS64,
                _pad: 0,
                address: stub as usize as u64,
            };
        }
        #[allow(unsafe_code)]
        // SAFETY: the SDK's own stubs with the SDK's own flags: exactly
        // the table its start of day installed.
        let ok = unsafe { hypercall::set_trap_table(&table) };
        if ok.is_err() {
            direct(&format!("{NAME}: cannot restore the trap table"));
        }
    }

    /// The SDK's event and failsafe callbacks again (events are masked by
    /// the caller until this is done).
    fn restore_callbacks() {
        use abi::ops::{CALLBACKTYPE_EVENT, CALLBACKTYPE_FAILSAFE};
        #[allow(unsafe_code)]
        // SAFETY: the SDK's own entry stubs for these callbacks, as its
        // start of day registers them.
        let ok = unsafe {
            hypercall::callback_register(
                CALLBACKTYPE_EVENT,
                pv_event_entry as *const () as u64,
                true,
            )
            .and(hypercall::callback_register(
                CALLBACKTYPE_FAILSAFE,
                pv_failsafe_entry as *const () as u64,
                true,
            ))
        };
        if ok.is_err() {
            direct(&format!("{NAME}: cannot restore the callbacks"));
        }
    }

    fn budget_ns(start: &StartInfo) -> u64 {
        let secs = start
            .cmdline_option("secs")
            .and_then(|s| s.parse::<u64>().ok())
            .or_else(|| {
                start
                    .cmdline_option("minutes")
                    .and_then(|m| m.parse::<u64>().ok())
                    .map(|m| m * 60)
            })
            .unwrap_or(60);
        secs * 1_000_000_000
    }

    pub fn main(start: &'static StartInfo) -> ! {
        let seed = start
            .cmdline_option("seed")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(1);
        SEED.store(seed, Relaxed);
        SHARED_MFN.store(start.shared_info_maddr() >> 12, Relaxed);
        let trace_from = start
            .cmdline_option("trace")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        let budget = budget_ns(start);
        probe::install();
        let world = match World::new(start, seed) {
            Ok(w) => w,
            Err(why) => {
                println!("{NAME}: cannot set up: {why}");
                pv_guest_sdk::sched::crash();
            }
        };
        println!(
            "{NAME}: seed {seed}, {} s, d{} (peer d{}), {} own tables, {} foreign frames",
            budget / 1_000_000_000,
            world.self_id,
            world.peer,
            world.tables.len(),
            world.foreign.len()
        );
        // From here every exception is a failure worth the ring.
        for vector in 0..32 {
            traps::set_handler(vector, on_exception);
        }
        let mut fuzzer = Fuzzer {
            rng: Rng(seed),
            w: world,
            arena: 0,
            in_multicall: false,
            watch: start.cmdline_option("watch").and_then(|p| p.parse().ok()),
            only: start
                .cmdline_option("only")
                .unwrap_or("")
                .split('.')
                .filter_map(|n| n.parse::<u64>().ok())
                .filter_map(Hypercall::from_number)
                .filter(|h| IMPLEMENTED.iter().any(|(i, _)| i == h))
                .collect(),
        };
        let begin = time::now_ns();
        let end = begin + budget;
        let mut next_progress = begin + PROGRESS_NS;
        loop {
            let index = COUNT.load(Relaxed);
            let call = fuzzer.generate();
            fuzzer.issue(&call, index >= trace_from);
            if index.is_multiple_of(CLOCK_EVERY) {
                fuzzer.check_guards();
                let now = time::now_ns();
                if now >= next_progress {
                    next_progress += PROGRESS_NS;
                    println!("{NAME}: {} hypercalls", COUNT.load(Relaxed));
                }
                if now >= end {
                    break;
                }
            }
        }
        let secs = (time::now_ns() - begin) as f64 / 1e9;
        println!(
            "{NAME}: done: {} hypercalls in {secs:.1} s (seed {seed})",
            COUNT.load(Relaxed)
        );
        pv_guest_sdk::sched::poweroff()
    }
}
