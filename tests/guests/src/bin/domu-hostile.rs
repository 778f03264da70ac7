//! A hostile domU: dom0 creates it (`create domu-hostile`), and it tries
//! everything an unprivileged guest must not be able to do, in raw
//! hypercalls, so the hypervisor is tested and not the SDK. Every attempt
//! must be refused with Xen's answer:
//!
//! - every domctl (each command hv-core implements, and an unknown one),
//!   both sysctls, and memory_op populate_physmap / increase_reservation /
//!   decrease_reservation for dom0: `-EPERM` (Xen 4.17 answers memory_op
//!   with 0 extents done instead; the guest holds each host to its own);
//! - mmu_update and mmuext_op naming dom0 as the foreign domain: `-EPERM`
//!   with nothing done;
//! - event channels: alloc_unbound and status in dom0 (`-EPERM`),
//!   bind_interdomain to a missing domain (`-ESRCH`), to dom0 ports that are
//!   not unbound for this domain and to a port of its own that is unbound
//!   for dom0 (`-EINVAL`), send on a port it does not have (`-EINVAL`);
//! - grant tables: setup_table for dom0 refused; map and copy of dom0's
//!   refs out of range (`GNTST_bad_gntref`), of a missing domain
//!   (`GNTST_bad_domain`), of its own refs by its own id (granted to
//!   another, never granted, out of range: refused); a copy from another
//!   domain's frame by MFN (`GNTST_permission_denied`) or into a frame it
//!   does not own; unmap of a handle it never had (`GNTST_bad_handle`);
//!   no refused map leaves a mapping behind (never-granted refs of a peer
//!   are `domu-grant`'s to check);
//! - mapping a frame it does not own (MFN 0, a frame of another domain
//!   found through the M2P, the M2P's own frame) with mmu_update and
//!   update_va_mapping, or claiming one in the M2P.
//!
//! One line per check, then the result line (`PASS domu-hostile`, or
//! `FAIL domu-hostile: not true: ...` listing every check that failed),
//! then power-off. The scenario then checks that dom0 still answers.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use alloc::boxed::Box;
    use alloc::format;

    use abi::Hypercall;
    use abi::domctl::{self, CreateDomain, DomainInfo, Domctl, Sysctl, VcpuGuestContext};
    use abi::event_channel::{self as evtchn, AllocUnbound, BindInterdomain, PortOp, Status};
    use abi::grant_table::{self as gnttab, GrantEntryV1};
    use abi::ops::{
        MemoryReservation, XENMEM_DECREASE_RESERVATION, XENMEM_INCREASE_RESERVATION,
        XENMEM_POPULATE_PHYSMAP,
    };
    use abi::xen::{
        DOMID_SELF, MACH2PHYS_VIRT_START, MMU_MACHPHYS_UPDATE, MMU_NORMAL_PT_UPDATE,
        MMUEXT_PIN_L4_TABLE, MmuUpdate, MmuextOp, UVMF_INVLPG,
    };
    use pv_guest_sdk::mm::{self, pte};
    use pv_guest_sdk::{StartInfo, println};
    use test_guests::Checks;
    use test_guests::arch::{self, hypercall};
    use test_guests::scratch::Window;
    use test_guests::{hc, host, probe};
    use zerocopy::{Immutable, IntoBytes};

    const NAME: &str = "domu-hostile";
    const EPERM: i64 = -1;
    const ESRCH: i64 = -3;
    const EINVAL: i64 = -22;
    /// A domain id below the reserved range that no domain has on a fresh
    /// boot of the test scenarios.
    const MISSING_DOMAIN: u16 = 0x7000;
    /// A grant ref beyond any v1 table (hv-core: 4 frames, 2048 entries).
    const REF_OUT_OF_RANGE: u32 = 100_000;
    /// The first ref a guest may use (0-7 are reserved by convention).
    const FIRST_REF: u32 = 8;

    /// Scratch window pages: the grant table frame, the target of every
    /// map attempt, and the target of the foreign-frame mappings.
    const PAGE_TABLE_FRAME: u64 = 0;
    const PAGE_MAP_TARGET: u64 = 1;
    const PAGE_FOREIGN: u64 = 2;

    pub fn main(_start: &'static StartInfo) -> ! {
        probe::install();
        let mut c = Checks::new(NAME);
        let window = match Window::new() {
            Ok(w) => w,
            Err(e) => {
                c.check(false, &format!("setting up the scratch window ({e})"));
                c.finish()
            }
        };
        privileged_ops(&mut c);
        foreign_memory(&mut c, &window);
        let self_id = own_domain_id(&mut c);
        event_channels(&mut c, self_id);
        grants(&mut c, &window, self_id);
        frames_not_owned(&mut c, &window);
        huge_batches(&mut c);
        println!("{NAME}: still running after every refusal");
        c.finish()
    }

    /// Batches far larger than one hypercall may work through at once:
    /// hv-core stops after its budget and the guest re-issues the call for
    /// the rest (a continuation), so the whole batch is still done, in
    /// order, with `done` counting all of it, while other domains ran.
    fn huge_batches(c: &mut Checks) {
        use abi::xen::{MMU_MACHPHYS_UPDATE, MmuUpdate, MulticallEntry};
        const ENTRIES: usize = 5000;
        let version = hc::xen_version_null(abi::ops::XENVER_VERSION);
        let mut entries = alloc::vec![
            MulticallEntry {
                op: Hypercall::XenVersion as u64,
                result: -1,
                args: [abi::ops::XENVER_VERSION as u64, 0, 0, 0, 0, 0],
            };
            ENTRIES
        ];
        let ret = hc::multicall(&mut entries);
        let all = entries.iter().all(|e| e.result == version);
        let ok = c.check(
            ret == 0 && all,
            &format!("a {ENTRIES}-entry multicall completes every entry"),
        );
        println!(
            "{NAME}: multicall of {ENTRIES} entries: {ret}, every result right: {all} {}",
            if ok { "(done)" } else { "WRONG" }
        );

        // Re-recording one of its own frames in the M2P, thousands of
        // times: harmless, and `done` must count every request.
        let pfn = 0;
        let mfn = mm::pfn_to_mfn(pfn).unwrap_or(0);
        let request = MmuUpdate {
            ptr: mfn << 12 | MMU_MACHPHYS_UPDATE,
            val: pfn,
        };
        let requests = alloc::vec![request; ENTRIES];
        let (ret, done) = hc::mmu_update(&requests, abi::xen::DOMID_SELF);
        let ok = c.check(
            ret == 0 && done == ENTRIES as u32,
            &format!("a {ENTRIES}-request mmu_update reports {ENTRIES} done"),
        );
        println!(
            "{NAME}: mmu_update of {ENTRIES} requests: {ret}, done {done} {}",
            if ok { "(done)" } else { "WRONG" }
        );
    }

    /// Records and prints one check: `got` must be `want`.
    fn expect(c: &mut Checks, what: &str, got: i64, want: i64) {
        let ok = c.check(got == want, &format!("{what} gives {want} (got {got})"));
        println!(
            "{NAME}: {what}: {got} {}",
            if ok { "(refused)" } else { "WRONG" }
        );
    }

    /// Records and prints one check: `got` must be an error.
    fn expect_refused(c: &mut Checks, what: &str, got: i64) {
        let ok = c.check(got < 0, &format!("{what} is refused (got {got})"));
        println!(
            "{NAME}: {what}: {got} {}",
            if ok { "(refused)" } else { "ACCEPTED" }
        );
    }

    fn addr<T>(value: &T) -> u64 {
        value as *const T as u64
    }

    fn addr_mut<T>(value: &mut T) -> u64 {
        value as *mut T as u64
    }

    /// One raw hypercall whose pointer arguments are the caller's live
    /// buffers.
    fn call(nr: Hypercall, args: [u64; 5]) -> i64 {
        #[allow(unsafe_code)]
        // SAFETY: every caller passes pointers to live, plain-data buffers
        // of its own (which any bytes the hypervisor writes leave valid),
        // or numbers; none of the operations, if wrongly accepted, changes
        // this domain's own mappings or memory that Rust relies on.
        unsafe {
            hypercall(nr as u32, args)
        }
    }

    fn domctl(cmd: u32, domain: u16, payload: &(impl IntoBytes + Immutable)) -> i64 {
        let mut op = Domctl::new(cmd, domain, payload);
        call(Hypercall::Domctl, [addr_mut(&mut op), 0, 0, 0, 0])
    }

    fn privileged_ops(c: &mut Checks) {
        let create = CreateDomain {
            max_vcpus: 1,
            max_evtchn_port: 1023,
            max_grant_frames: 1,
            max_maptrack_frames: 1,
            ..Default::default()
        };
        expect(
            c,
            "domctl createdomain",
            domctl(domctl::XEN_DOMCTL_CREATEDOMAIN, 0, &create),
            EPERM,
        );
        let info = DomainInfo::default();
        expect(
            c,
            "domctl getdomaininfo of dom0",
            domctl(domctl::XEN_DOMCTL_GETDOMAININFO, 0, &info),
            EPERM,
        );
        let max_mem = domctl::MaxMem { max_memkb: 1 << 30 };
        expect(
            c,
            "domctl max_mem of dom0",
            domctl(domctl::XEN_DOMCTL_MAX_MEM, 0, &max_mem),
            EPERM,
        );
        let max_vcpus = domctl::MaxVcpus { max: 4 };
        expect(
            c,
            "domctl max_vcpus of dom0",
            domctl(domctl::XEN_DOMCTL_MAX_VCPUS, 0, &max_vcpus),
            EPERM,
        );
        let vcpu_info = domctl::VcpuInfoCtl::default();
        expect(
            c,
            "domctl getvcpuinfo of dom0",
            domctl(domctl::XEN_DOMCTL_GETVCPUINFO, 0, &vcpu_info),
            EPERM,
        );
        // A context that would take dom0's vCPU to address 0.
        let mut context: Box<VcpuGuestContext> = Box::default();
        let ctx = domctl::VcpuContext {
            vcpu: 0,
            _pad: 0,
            ctxt: addr_mut(&mut *context),
        };
        expect(
            c,
            "domctl setvcpucontext of dom0",
            domctl(domctl::XEN_DOMCTL_SETVCPUCONTEXT, 0, &ctx),
            EPERM,
        );
        expect(
            c,
            "domctl getvcpucontext of dom0",
            domctl(domctl::XEN_DOMCTL_GETVCPUCONTEXT, 0, &ctx),
            EPERM,
        );
        let none = [0u8; 8];
        expect(
            c,
            "domctl unpausedomain of dom0",
            domctl(domctl::XEN_DOMCTL_UNPAUSEDOMAIN, 0, &none),
            EPERM,
        );
        // Refused, or dom0 stops answering and the scenario fails.
        expect(
            c,
            "domctl pausedomain of dom0",
            domctl(domctl::XEN_DOMCTL_PAUSEDOMAIN, 0, &none),
            EPERM,
        );
        expect(
            c,
            "domctl destroydomain of dom0",
            domctl(domctl::XEN_DOMCTL_DESTROYDOMAIN, 0, &none),
            EPERM,
        );
        expect(
            c,
            "domctl with an unknown command (77)",
            domctl(77, 0, &none),
            EPERM,
        );

        let mut op = Sysctl::new(domctl::XEN_SYSCTL_PHYSINFO, &domctl::PhysInfo::default());
        expect(
            c,
            "sysctl physinfo",
            call(Hypercall::Sysctl, [addr_mut(&mut op), 0, 0, 0, 0]),
            EPERM,
        );
        let mut buffer = [DomainInfo::default(); 4];
        let list = domctl::GetDomainInfoList {
            first_domain: 0,
            max_domains: buffer.len() as u32,
            buffer: addr_mut(&mut buffer),
            ..Default::default()
        };
        let mut op = Sysctl::new(domctl::XEN_SYSCTL_GETDOMAININFOLIST, &list);
        expect(
            c,
            "sysctl getdomaininfolist",
            call(Hypercall::Sysctl, [addr_mut(&mut op), 0, 0, 0, 0]),
            EPERM,
        );
        c.check(
            buffer.iter().all(|d| d.tot_pages == 0 && d.flags == 0),
            "a refused getdomaininfolist writes nothing",
        );

        // memory_op on dom0's behalf. The extent lists are ours; for
        // decrease, the frame is dom0's first (if it were given back, dom0
        // would lose it). hv-core answers -EPERM as the issue asks; Xen
        // 4.17 answers with the number of extents done, 0, when its XSM
        // check refuses (`do_memory_op` returns `start_extent`).
        let refused = if host::is_hv_core() { EPERM } else { 0 };
        for (cmd, name, frame) in [
            (XENMEM_POPULATE_PHYSMAP, "populate_physmap", 0x7_0000u64),
            (XENMEM_INCREASE_RESERVATION, "increase_reservation", 0),
            (XENMEM_DECREASE_RESERVATION, "decrease_reservation", 0x100),
        ] {
            let mut extents = [frame];
            let mut reservation = MemoryReservation {
                extent_start: addr_mut(&mut extents),
                nr_extents: 1,
                extent_order: 0,
                mem_flags: 0,
                domid: 0,
                _pad: [0; 3],
            };
            expect(
                c,
                &format!("memory_op {name} for dom0"),
                call(
                    Hypercall::MemoryOp,
                    [cmd as u64, addr_mut(&mut reservation), 0, 0, 0],
                ),
                refused,
            );
        }
    }

    /// mmu_update and mmuext_op with dom0 as the foreign domain.
    fn foreign_memory(c: &mut Checks, w: &Window) {
        let target = another_domains_frame().unwrap_or(0x100);
        let requests = [MmuUpdate {
            ptr: w.entry_maddr(PAGE_FOREIGN) | MMU_NORMAL_PT_UPDATE,
            val: pte::entry(target, pte::KERNEL_RO),
        }];
        let mut done = u32::MAX;
        let ret = call(
            Hypercall::MmuUpdate,
            [addr(&requests[0]), 1, addr_mut(&mut done), 0, 0],
        );
        expect(
            c,
            &format!("mmu_update with foreigndom 0 (dom0's frame {target:#x})"),
            ret,
            EPERM,
        );
        // `done` is not checked: Xen writes it when an mmu_update is
        // refused in its loop but returns before writing it when
        // mmuext_op's foreign domain is refused; nothing was done either
        // way, which the refusal itself says.
        let _ = done;
        let ops = [MmuextOp {
            cmd: MMUEXT_PIN_L4_TABLE,
            arg1: target,
            ..Default::default()
        }];
        let mut done = u32::MAX;
        let ret = call(
            Hypercall::MmuextOp,
            [addr(&ops[0]), 1, addr_mut(&mut done), 0, 0],
        );
        expect(
            c,
            &format!("mmuext_op pin_l4_table with foreigndom 0 (frame {target:#x})"),
            ret,
            EPERM,
        );
        let _ = done;
    }

    fn evtchn_op<T>(cmd: u32, arg: &mut T) -> i64 {
        call(
            Hypercall::EventChannelOp,
            [cmd as u64, addr_mut(arg), 0, 0, 0],
        )
    }

    /// This domain's id: a port allocated for `DOMID_SELF` reports the
    /// numeric id of its remote end (Xen resolves `DOMID_SELF` on
    /// allocation), which is this domain.
    fn own_domain_id(c: &mut Checks) -> u16 {
        let mut alloc = AllocUnbound {
            dom: DOMID_SELF,
            remote_dom: DOMID_SELF,
            port: 0,
        };
        let ret = evtchn_op(evtchn::EVTCHNOP_ALLOC_UNBOUND, &mut alloc);
        let mut status = Status {
            dom: DOMID_SELF,
            port: alloc.port,
            ..Default::default()
        };
        let status_ret = evtchn_op(evtchn::EVTCHNOP_STATUS, &mut status);
        let mut close = PortOp { port: alloc.port };
        evtchn_op(evtchn::EVTCHNOP_CLOSE, &mut close);
        let id = status.u[0] as u16;
        let ok = c.check(
            ret == 0
                && status_ret == 0
                && status.status == evtchn::EVTCHNSTAT_UNBOUND
                && id != 0
                && id < abi::xen::DOMID_FIRST_RESERVED,
            &format!(
                "a port unbound for DOMID_SELF names this domain (alloc {ret}, status {status_ret}, state {}, id {id})",
                status.status
            ),
        );
        println!(
            "{NAME}: this is domain {id}{}",
            if ok { "" } else { " (?)" }
        );
        id
    }

    fn event_channels(c: &mut Checks, self_id: u16) {
        let mut alloc = AllocUnbound {
            dom: 0,
            remote_dom: DOMID_SELF,
            port: 0,
        };
        expect(
            c,
            "evtchn alloc_unbound in dom0",
            evtchn_op(evtchn::EVTCHNOP_ALLOC_UNBOUND, &mut alloc),
            EPERM,
        );
        let mut status = Status {
            dom: 0,
            port: 1,
            ..Default::default()
        };
        expect(
            c,
            "evtchn status of dom0's port 1",
            evtchn_op(evtchn::EVTCHNOP_STATUS, &mut status),
            EPERM,
        );
        let mut bind = BindInterdomain {
            remote_dom: MISSING_DOMAIN,
            remote_port: 1,
            ..Default::default()
        };
        expect(
            c,
            &format!("evtchn bind_interdomain to missing domain {MISSING_DOMAIN}"),
            evtchn_op(evtchn::EVTCHNOP_BIND_INTERDOMAIN, &mut bind),
            ESRCH,
        );
        // dom0 allocates the console channel in this domain, so none of
        // dom0's ports is unbound for it.
        for port in 1..=8 {
            let mut bind = BindInterdomain {
                remote_dom: 0,
                remote_port: port,
                ..Default::default()
            };
            expect(
                c,
                &format!("evtchn bind_interdomain to dom0's port {port} (not unbound for us)"),
                evtchn_op(evtchn::EVTCHNOP_BIND_INTERDOMAIN, &mut bind),
                EINVAL,
            );
        }
        // A port of our own, unbound for dom0: only dom0 may bind it.
        let mut alloc = AllocUnbound {
            dom: DOMID_SELF,
            remote_dom: 0,
            port: 0,
        };
        let ret = evtchn_op(evtchn::EVTCHNOP_ALLOC_UNBOUND, &mut alloc);
        if c.check(
            ret == 0,
            &format!("alloc_unbound for dom0 in ourselves ({ret})"),
        ) {
            let mut bind = BindInterdomain {
                remote_dom: self_id,
                remote_port: alloc.port,
                ..Default::default()
            };
            expect(
                c,
                &format!(
                    "evtchn bind_interdomain to our own port {} (unbound for dom0)",
                    alloc.port
                ),
                evtchn_op(evtchn::EVTCHNOP_BIND_INTERDOMAIN, &mut bind),
                EINVAL,
            );
            let mut close = PortOp { port: alloc.port };
            evtchn_op(evtchn::EVTCHNOP_CLOSE, &mut close);
        }
        for port in [4000, 1 << 20] {
            expect(
                c,
                &format!("evtchn send on port {port} (not ours)"),
                hc::evtchn_send(port),
                EINVAL,
            );
        }
    }

    fn grant_op<T>(cmd: u32, ops: &mut [T]) -> i64 {
        call(
            Hypercall::GrantTableOp,
            [cmd as u64, addr_mut(&mut ops[0]), ops.len() as u64, 0, 0],
        )
    }

    fn status_name(status: i16) -> &'static str {
        match status {
            gnttab::GNTST_OKAY => "okay",
            gnttab::GNTST_GENERAL_ERROR => "general_error",
            gnttab::GNTST_BAD_DOMAIN => "bad_domain",
            gnttab::GNTST_BAD_GNTREF => "bad_gntref",
            gnttab::GNTST_BAD_HANDLE => "bad_handle",
            gnttab::GNTST_BAD_VIRT_ADDR => "bad_virt_addr",
            gnttab::GNTST_PERMISSION_DENIED => "permission_denied",
            gnttab::GNTST_BAD_PAGE => "bad_page",
            gnttab::GNTST_BAD_COPY_ARG => "bad_copy_arg",
            _ => "other",
        }
    }

    /// Records and prints one grant check: the call succeeds and the op's
    /// status is `want`.
    fn expect_status(c: &mut Checks, what: &str, ret: i64, status: i16, want: i16) {
        let ok = c.check(
            ret == 0 && status == want,
            &format!(
                "{what} gives GNTST_{} (got {ret}, GNTST_{})",
                status_name(want),
                status_name(status)
            ),
        );
        println!(
            "{NAME}: {what}: GNTST_{} ({status}) {}",
            status_name(status),
            if ok { "(refused)" } else { "WRONG" }
        );
    }

    /// Records and prints one grant check: the op is refused, by the call
    /// or its status, whatever the code.
    fn expect_grant_refused(c: &mut Checks, what: &str, ret: i64, status: i16) {
        let refused = ret < 0 || status < 0;
        c.check(
            refused,
            &format!("{what} is refused (got {ret}, status {status})"),
        );
        println!(
            "{NAME}: {what}: {ret}, GNTST_{} ({status}) {}",
            status_name(status),
            if refused { "(refused)" } else { "ACCEPTED" }
        );
    }

    fn grants(c: &mut Checks, w: &Window, self_id: u16) {
        // Someone else's table is not ours to set up.
        let mut frames = [0u64; 1];
        let mut setup = [gnttab::SetupTable {
            dom: 0,
            nr_frames: 1,
            frame_list: addr_mut(&mut frames),
            ..Default::default()
        }];
        let ret = grant_op(gnttab::GNTTABOP_SETUP_TABLE, &mut setup);
        let refused = ret < 0 || setup[0].status < 0;
        c.check(
            refused && frames[0] == 0,
            &format!(
                "setup_table for dom0 is refused (got {ret}, status {})",
                setup[0].status
            ),
        );
        println!(
            "{NAME}: grant setup_table for dom0: {ret}, GNTST_{} {}",
            status_name(setup[0].status),
            if refused { "(refused)" } else { "ACCEPTED" }
        );

        // Our own table, one frame, with ref 8 granting a page to dom0.
        let mut setup = [gnttab::SetupTable {
            dom: DOMID_SELF,
            nr_frames: 1,
            frame_list: addr_mut(&mut frames),
            ..Default::default()
        }];
        let ret = grant_op(gnttab::GNTTABOP_SETUP_TABLE, &mut setup);
        if !c.check(
            ret == 0 && setup[0].status == 0 && frames[0] != 0,
            &format!(
                "setup_table of our own (got {ret}, status {})",
                setup[0].status
            ),
        ) {
            return;
        }
        let table_va = w.va(PAGE_TABLE_FRAME);
        let ret =
            hc::update_va_mapping(table_va, pte::entry(frames[0], pte::KERNEL_RW), UVMF_INVLPG);
        if !c.check(
            ret == 0,
            &format!("mapping our grant table frame writable ({ret})"),
        ) {
            return;
        }
        let shared = match mm::alloc_frame() {
            Ok(f) => f,
            Err(e) => {
                c.check(false, &format!("allocating the granted page ({e})"));
                return;
            }
        };
        let entry = GrantEntryV1 {
            flags: gnttab::GTF_PERMIT_ACCESS,
            domid: 0,
            frame: shared.mfn as u32,
        };
        write_grant_entry(table_va, FIRST_REF, entry);
        println!(
            "{NAME}: granted ref {FIRST_REF} (frame {:#x}) to dom0",
            shared.mfn
        );

        let map_va = w.va(PAGE_MAP_TARGET);
        let map = |dom: u16, ref_: u32, readonly: bool| -> (i64, i16) {
            let mut op = [gnttab::MapGrantRef {
                host_addr: map_va,
                flags: gnttab::GNTMAP_HOST_MAP | if readonly { gnttab::GNTMAP_READONLY } else { 0 },
                ref_,
                dom,
                ..Default::default()
            }];
            let ret = grant_op(gnttab::GNTTABOP_MAP_GRANT_REF, &mut op);
            (ret, op[0].status)
        };
        use gnttab::{GNTST_BAD_DOMAIN, GNTST_BAD_GNTREF, GNTST_PERMISSION_DENIED};
        // Our own refs, by our numeric id: refused, whichever way (Xen
        // reads the entry and finds it is not for us; hv-core refuses a
        // domain mapping its own grants with bad_domain). Never-granted
        // refs of another domain are domu-grant's to check: that needs a
        // peer with a table.
        for (what, dom, ref_, want) in [
            (
                "map of our own ref 8 (granted to dom0, not us)",
                self_id,
                FIRST_REF,
                None,
            ),
            (
                "map of our own ref 9 (never granted)",
                self_id,
                FIRST_REF + 1,
                None,
            ),
            (
                "map of our own ref 100000 (out of range)",
                self_id,
                REF_OUT_OF_RANGE,
                None,
            ),
            (
                "map of dom0's ref 100000 (out of range)",
                0,
                REF_OUT_OF_RANGE,
                Some(GNTST_BAD_GNTREF),
            ),
            (
                "map of dom0's ref 0xffffffff (out of range)",
                0,
                u32::MAX,
                Some(GNTST_BAD_GNTREF),
            ),
            (
                "map of a missing domain's ref 8",
                MISSING_DOMAIN,
                FIRST_REF,
                Some(GNTST_BAD_DOMAIN),
            ),
        ] {
            for readonly in [false, true] {
                let (ret, status) = map(dom, ref_, readonly);
                let what = format!(
                    "{what}, {}",
                    if readonly { "read-only" } else { "writable" }
                );
                match want {
                    Some(want) => expect_status(c, &what, ret, status, want),
                    None => expect_grant_refused(c, &what, ret, status),
                }
            }
        }
        c.check(
            probe::read(map_va).is_err(),
            "no refused map leaves a mapping behind",
        );
        let mut unmap = [gnttab::UnmapGrantRef {
            host_addr: map_va,
            handle: 0x1234,
            ..Default::default()
        }];
        let ret = grant_op(gnttab::GNTTABOP_UNMAP_GRANT_REF, &mut unmap);
        expect_status(
            c,
            "unmap of a handle we never had",
            ret,
            unmap[0].status,
            gnttab::GNTST_BAD_HANDLE,
        );

        // Copies: the destination is always a page of ours.
        let dest = match mm::alloc_frame() {
            Ok(f) => f,
            Err(e) => {
                c.check(false, &format!("allocating the copy destination ({e})"));
                return;
            }
        };
        let ours = gnttab::CopyPtr {
            u: dest.mfn,
            domid: DOMID_SELF,
            offset: 0,
            _pad: 0,
        };
        let gref = |domid: u16, ref_: u32| gnttab::CopyPtr {
            u: ref_ as u64,
            domid,
            offset: 0,
            _pad: 0,
        };
        let foreign = another_domains_frame().unwrap_or(0x100);
        for (what, source, dest, flags, want) in [
            (
                "copy from a missing domain's ref 8".into(),
                gref(MISSING_DOMAIN, FIRST_REF),
                ours,
                gnttab::GNTCOPY_SOURCE_GREF,
                Some(GNTST_BAD_DOMAIN),
            ),
            (
                "copy from our own ref 100000 (out of range)".into(),
                gref(self_id, REF_OUT_OF_RANGE),
                ours,
                gnttab::GNTCOPY_SOURCE_GREF,
                None,
            ),
            (
                "copy from dom0's ref 100000 (out of range)".into(),
                gref(0, REF_OUT_OF_RANGE),
                ours,
                gnttab::GNTCOPY_SOURCE_GREF,
                Some(GNTST_BAD_GNTREF),
            ),
            (
                "copy from our own ref 9 (never granted)".into(),
                gref(self_id, FIRST_REF + 1),
                ours,
                gnttab::GNTCOPY_SOURCE_GREF,
                None,
            ),
            (
                "copy into our own ref 8 (granted to dom0)".into(),
                ours,
                gref(self_id, FIRST_REF),
                gnttab::GNTCOPY_DEST_GREF,
                None,
            ),
            (
                format!("copy from dom0's frame {foreign:#x} by MFN"),
                gnttab::CopyPtr {
                    u: foreign,
                    domid: 0,
                    offset: 0,
                    _pad: 0,
                },
                ours,
                0,
                Some(GNTST_PERMISSION_DENIED),
            ),
            (
                format!("copy into frame {foreign:#x} (not ours) as DOMID_SELF"),
                ours,
                gnttab::CopyPtr {
                    u: foreign,
                    domid: DOMID_SELF,
                    offset: 0,
                    _pad: 0,
                },
                0,
                None,
            ),
            (
                // Two errors at once: the source frame is not ours and the
                // destination ref is out of range. Xen claims the source
                // first, so the source's error is the one reported.
                format!("copy from frame {foreign:#x} (not ours) into our ref 100000"),
                gnttab::CopyPtr {
                    u: foreign,
                    domid: DOMID_SELF,
                    offset: 0,
                    _pad: 0,
                },
                gref(self_id, REF_OUT_OF_RANGE),
                gnttab::GNTCOPY_DEST_GREF,
                Some(gnttab::GNTST_BAD_PAGE),
            ),
        ] {
            let mut op = [gnttab::Copy {
                source,
                dest,
                len: 64,
                flags,
                ..Default::default()
            }];
            let ret = grant_op(gnttab::GNTTABOP_COPY, &mut op);
            match want {
                Some(want) => expect_status(c, &what, ret, op[0].status, want),
                None => expect_grant_refused(c, &what, ret, op[0].status),
            }
        }
        write_grant_entry(table_va, FIRST_REF, GrantEntryV1::default());
        let _ = hc::update_va_mapping(table_va, 0, UVMF_INVLPG);
        mm::free_frame(dest);
        mm::free_frame(shared);
    }

    /// Writes grant entry `ref_` of the table mapped at `table_va`: frame
    /// and domain first, flags last, as a granting guest must.
    fn write_grant_entry(table_va: u64, ref_: u32, entry: GrantEntryV1) {
        let va = table_va + ref_ as u64 * 8;
        let word = (entry.flags as u64) | (entry.domid as u64) << 16 | (entry.frame as u64) << 32;
        #[allow(unsafe_code)]
        // SAFETY: `va` is an entry of our grant table frame, mapped
        // writable in the scratch window, which holds no Rust object; one
        // aligned 8-byte store sets the whole entry at once.
        unsafe {
            arch::write_volatile_u64(va, word)
        };
    }

    /// The M2P entry of `mfn` (what the hypervisor says its pfn is in its
    /// owner's p2m); `None` where the M2P is not mapped (past the end of
    /// RAM).
    fn m2p(mfn: u64) -> Option<u64> {
        probe::read(MACH2PHYS_VIRT_START + mfn * 8).ok()
    }

    /// A frame that the M2P says belongs to a domain (a sane pfn) but that
    /// is not ours: another domain's. It is looked for next to ours, below
    /// (hv-core hands out frames upward, so dom0's sit lower) and above
    /// (Xen hands them out downward).
    fn another_domains_frame() -> Option<u64> {
        let list = pv_guest_sdk::start_info().mfn_list();
        let lowest = list.iter().copied().min()?;
        let highest = list.iter().copied().max()?;
        let foreign = |mfn: u64| {
            m2p(mfn).is_some_and(|pfn| pfn < (1 << 20) && mm::pfn_to_mfn(pfn) != Some(mfn))
        };
        (0x100..lowest)
            .rev()
            .find(|&mfn| foreign(mfn))
            .or_else(|| (highest + 1..highest + 0x10000).find(|&mfn| foreign(mfn)))
    }

    /// The frame behind the kernel L4's slot 256: the M2P, a hypervisor
    /// frame.
    fn m2p_frame() -> Option<u64> {
        let entry = mm::read_table_entry(mm::kernel_l4(), 256).ok()?;
        pte::is_present(entry).then(|| pte::mfn(entry))
    }

    fn frames_not_owned(c: &mut Checks, w: &Window) {
        let va = w.va(PAGE_FOREIGN);
        let mut frames = alloc::vec![(0u64, "MFN 0")];
        match another_domains_frame() {
            Some(mfn) => frames.push((mfn, "another domain's frame")),
            None => {
                c.check(
                    false,
                    "the M2P shows a frame of another domain next to ours",
                );
            }
        }
        match m2p_frame() {
            Some(mfn) => frames.push((mfn, "the M2P's frame")),
            None => {
                c.check(false, "L4 slot 256 (the M2P) is present");
            }
        }
        for (mfn, what) in frames {
            for (how, flags) in [("writable", pte::KERNEL_RW), ("read-only", pte::KERNEL_RO)] {
                let requests = [MmuUpdate {
                    ptr: w.entry_maddr(PAGE_FOREIGN) | MMU_NORMAL_PT_UPDATE,
                    val: pte::entry(mfn, flags),
                }];
                let (ret, _) = hc::mmu_update(&requests, DOMID_SELF);
                expect_refused(
                    c,
                    &format!("mmu_update mapping {what} {mfn:#x}, {how}"),
                    ret,
                );
                let ret = hc::update_va_mapping(va, pte::entry(mfn, flags), UVMF_INVLPG);
                expect_refused(
                    c,
                    &format!("update_va_mapping of {what} {mfn:#x}, {how}"),
                    ret,
                );
            }
            c.check(
                probe::read(va).is_err(),
                &format!("no refused mapping of {what} is readable"),
            );
            let requests = [MmuUpdate {
                ptr: (mfn << 12) | MMU_MACHPHYS_UPDATE,
                val: 5,
            }];
            let (ret, _) = hc::mmu_update(&requests, DOMID_SELF);
            expect_refused(
                c,
                &format!("mmu_update machphys_update claiming {what} {mfn:#x}"),
                ret,
            );
        }
    }
}
