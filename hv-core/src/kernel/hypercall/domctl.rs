//! `domctl` and `sysctl`: the toolstack's operations, dom0 only (a domU
//! gets `-EPERM` for every one, before anything is read).

use abi::Errno;
use abi::domctl::{
    CreateDomain, DomainInfo, Domctl, GetDomainInfoList, MaxMem, MaxVcpus, PhysInfo, Sysctl,
    VGCF_FAILSAFE_DISABLES_EVENTS, VGCF_ONLINE, VGCF_SYSCALL_DISABLES_EVENTS, VcpuAffinity,
    VcpuContext, VcpuGuestContext, VcpuInfoCtl, XEN_DOMCTL_CDF_HVM_GUEST, XEN_DOMCTL_CREATEDOMAIN,
    XEN_DOMCTL_DESTROYDOMAIN, XEN_DOMCTL_GETDOMAININFO, XEN_DOMCTL_GETVCPUAFFINITY,
    XEN_DOMCTL_GETVCPUINFO, XEN_DOMCTL_INTERFACE_VERSION, XEN_DOMCTL_MAX_MEM, XEN_DOMCTL_MAX_VCPUS,
    XEN_DOMCTL_PAUSEDOMAIN, XEN_DOMCTL_SETVCPUAFFINITY, XEN_DOMCTL_SETVCPUCONTEXT,
    XEN_DOMCTL_UNPAUSEDOMAIN, XEN_DOMINF_BLOCKED, XEN_DOMINF_DYING, XEN_DOMINF_PAUSED,
    XEN_DOMINF_RUNNING, XEN_DOMINF_SHUTDOWN, XEN_DOMINF_SHUTDOWNSHIFT,
    XEN_SYSCTL_GETDOMAININFOLIST, XEN_SYSCTL_INTERFACE_VERSION, XEN_SYSCTL_PHYSINFO,
    XEN_VCPUAFFINITY_HARD, XEN_VCPUAFFINITY_SOFT, XenctlBitmap,
};
use abi::xen::{DomId, FLAT_KERNEL_CS64, FLAT_KERNEL_SS64};
use hv_core::cpus::{self, CpuMask};
use hv_core::frame_table::Budget;

use crate::arch::TrapFrame;
use crate::arch::percpu;
use crate::arch::pv::{self, MachinePageTables};
use crate::domain::{self, Callbacks, Domain, State, TrapEntry, Wait};
use crate::lifecycle::{self, CreateError};
use crate::{guest, memory, scheduler, vtime};

/// Defines a control family (`domctl`, `sysctl`): the command and its
/// payload sit in one struct (Xen's `xen_domctl`/`xen_sysctl`), read from
/// the guest once by the family's entry point; each command's payload
/// type is taken out of the union, handed to its handler
/// `fn(&mut Payload, target: &mut DomId) -> Result<i64, Errno>` (`target`
/// is the struct's `domain` field: `createdomain` returns the new id in
/// it; sysctl has none), and written back with the struct once, after the
/// handler succeeded: `inout` with the payload the handler left, `id_out`
/// (createdomain) with only `domain` changed, the union as the guest
/// wrote it.
macro_rules! control_family {
    ($family:ident: $header:ty {
        $($cmd:path => $variant:ident($payload:ty), $dir:ident => $handler:path;)*
    }) => {
        #[derive(Clone, Copy)]
        enum $family {
            $($variant($payload),)*
        }

        impl $family {
            fn of(header: &$header) -> Result<Self, Errno> {
                Ok(match header.cmd {
                    $($cmd => Self::$variant(header.payload()),)*
                    _ => return Err(Errno::NoSys),
                })
            }

            /// Runs the command; an `inout` one's payload and `target`
            /// go back into `header`, which the caller writes out.
            fn run(self, header: &mut $header, target: &mut DomId) -> Result<(i64, bool), Errno> {
                match self {
                    $(Self::$variant(mut payload) => {
                        let result = $handler(&mut payload, target)?;
                        let (copy_back, with_payload) = control_family!(@copy_back $dir);
                        if with_payload {
                            header.set_payload(&payload);
                        }
                        Ok((result, copy_back))
                    })*
                }
            }
        }
    };
    (@copy_back inout) => { (true, true) };
    (@copy_back id_out) => { (true, false) };
    (@copy_back in) => { (false, false) };
}

control_family!(DomctlOp: Domctl {
    XEN_DOMCTL_CREATEDOMAIN => CreateDomain(CreateDomain), id_out => create_domain;
    XEN_DOMCTL_DESTROYDOMAIN => DestroyDomain(()), in => destroy_domain;
    XEN_DOMCTL_PAUSEDOMAIN => PauseDomain(()), in => pause_domain;
    XEN_DOMCTL_UNPAUSEDOMAIN => UnpauseDomain(()), in => unpause_domain;
    XEN_DOMCTL_GETDOMAININFO => GetDomainInfo(DomainInfo), inout => get_domain_info;
    XEN_DOMCTL_MAX_MEM => MaxMem(MaxMem), in => max_mem;
    XEN_DOMCTL_MAX_VCPUS => MaxVcpus(MaxVcpus), in => max_vcpus;
    XEN_DOMCTL_SETVCPUCONTEXT => SetVcpuContext(VcpuContext), in => set_vcpu_context_op;
    XEN_DOMCTL_GETVCPUINFO => GetVcpuInfo(VcpuInfoCtl), inout => get_vcpu_info;
    XEN_DOMCTL_SETVCPUAFFINITY => SetVcpuAffinity(VcpuAffinity), inout => set_vcpu_affinity;
    XEN_DOMCTL_GETVCPUAFFINITY => GetVcpuAffinity(VcpuAffinity), inout => get_vcpu_affinity;
});

control_family!(SysctlOp: Sysctl {
    XEN_SYSCTL_PHYSINFO => PhysInfo(PhysInfo), inout => phys_info;
    XEN_SYSCTL_GETDOMAININFOLIST => GetDomainInfoList(GetDomainInfoList), inout => domain_info_list;
});

/// `domctl(arg)`: dom0 only, Xen's interface version only.
pub fn domctl(arg: u64) -> Result<i64, Errno> {
    if !domain::current_is_privileged() {
        return Err(Errno::Perm);
    }
    let mut op: Domctl = guest::read(arg)?;
    if op.interface_version != XEN_DOMCTL_INTERFACE_VERSION {
        return Err(Errno::Acces);
    }
    let mut target = op.domain;
    let (result, copy_back) = DomctlOp::of(&op)?.run(&mut op, &mut target)?;
    if copy_back {
        op.domain = target;
        guest::write(arg, &op)?;
    }
    Ok(result)
}

/// `sysctl(arg)`: dom0 only, Xen's interface version only.
pub fn sysctl(arg: u64) -> Result<i64, Errno> {
    if !domain::current_is_privileged() {
        return Err(Errno::Perm);
    }
    let mut op: Sysctl = guest::read(arg)?;
    if op.interface_version != XEN_SYSCTL_INTERFACE_VERSION {
        return Err(Errno::Acces);
    }
    let (result, copy_back) = SysctlOp::of(&op)?.run(&mut op, &mut DomId::default())?;
    if copy_back {
        guest::write(arg, &op)?;
    }
    Ok(result)
}

fn create_domain(create: &mut CreateDomain, target: &mut DomId) -> Result<i64, Errno> {
    // Xen's limits: at least one vCPU, at most what the host allows.
    let vcpus = create.max_vcpus as usize;
    if create.flags & XEN_DOMCTL_CDF_HVM_GUEST != 0 || !(1..=domain::MAX_VCPUS).contains(&vcpus) {
        return Err(Errno::Inval);
    }
    *target = lifecycle::create(*target, vcpus, create.handle).map_err(|e| match e {
        CreateError::NoRoom => Errno::NoSpc,
        CreateError::IdTaken => Errno::Exist,
        CreateError::NoMemory => Errno::NoMem,
    })?;
    Ok(0)
}

fn destroy_domain(_: &mut (), target: &mut DomId) -> Result<i64, Errno> {
    other_domain(*target)?;
    lifecycle::destroy(*target);
    Ok(0)
}

fn pause_domain(_: &mut (), target: &mut DomId) -> Result<i64, Errno> {
    set_paused(*target, true)
}

fn unpause_domain(_: &mut (), target: &mut DomId) -> Result<i64, Errno> {
    set_paused(*target, false)
}

fn set_paused(id: DomId, pause: bool) -> Result<i64, Errno> {
    other_domain(id)?;
    domain::with(id, |d| {
        if d.state == State::Dying || d.destroying {
            return Err(Errno::Inval);
        }
        let unpause = d.paused && !pause;
        d.paused = pause;
        let now = vtime::now_ns();
        for v in 0..d.max_vcpus {
            if unpause {
                scheduler::catch_up(&mut d.vcpus[v]);
            }
            if d.vcpus[v].on_cpu.is_none() {
                let state = scheduler::resting_state(d, v);
                d.vcpus[v].runstate.enter(state, now);
            }
        }
        Ok(())
    })
    .ok_or(Errno::Srch)??;
    if pause {
        // As Xen's domain_pause: done only once no CPU runs it.
        scheduler::take_off_cpus(id);
    } else {
        domain::with(id, |d| {
            (0..d.max_vcpus).for_each(|v| scheduler::notify(d, v))
        });
    }
    scheduler::request();
    Ok(0)
}

fn get_domain_info(info: &mut DomainInfo, target: &mut DomId) -> Result<i64, Errno> {
    lifecycle::reap_all();
    *info = domain::with(*target, |d| info_of(d)).ok_or(Errno::Srch)?;
    Ok(0)
}

fn max_mem(max: &mut MaxMem, target: &mut DomId) -> Result<i64, Errno> {
    domain::with(*target, |d| d.max_pages = max.max_memkb / 4).ok_or(Errno::Srch)?;
    Ok(0)
}

/// `XEN_DOMCTL_max_vcpus`: the count is fixed at `createdomain`; asking
/// for no more than that is accepted, more is `-EINVAL`.
fn max_vcpus(max: &mut MaxVcpus, target: &mut DomId) -> Result<i64, Errno> {
    if max.max as usize > vcpus_of(*target)? {
        return Err(Errno::Inval);
    }
    Ok(0)
}

fn set_vcpu_context_op(ctl: &mut VcpuContext, target: &mut DomId) -> Result<i64, Errno> {
    other_domain(*target)?;
    if ctl.vcpu as usize >= vcpus_of(*target)? {
        return Err(Errno::Inval);
    }
    let ctxt: VcpuGuestContext = guest::read(ctl.ctxt)?;
    set_vcpu_context(*target, ctl.vcpu as usize, &ctxt, ContextFrom::Toolstack)?;
    Ok(0)
}

/// How many vCPUs domain `id` has (`-ESRCH` for no such domain).
fn vcpus_of(id: DomId) -> Result<usize, Errno> {
    domain::with(id, |d| d.max_vcpus).ok_or(Errno::Srch)
}

fn get_vcpu_info(info: &mut VcpuInfoCtl, target: &mut DomId) -> Result<i64, Errno> {
    if info.vcpu as usize >= vcpus_of(*target)? {
        return Err(Errno::Inval);
    }
    domain::with(*target, |d| {
        let v = &d.vcpus[info.vcpu as usize];
        info.online = v.online as u8;
        info.blocked = !matches!(v.wait, Wait::None) as u8;
        info.running = scheduler::is_running(d, info.vcpu as usize) as u8;
        info.cpu_time = scheduler::vcpu_cpu_time(d, info.vcpu as usize);
        info.cpu = v.on_cpu.unwrap_or(v.last_cpu) as u32;
    })
    .ok_or(Errno::Srch)?;
    Ok(0)
}

/// The vCPU a `vcpuaffinity` call names, and what it asks for (hard,
/// soft or both: neither is `-EINVAL`, as on Xen).
fn affinity_request(aff: &VcpuAffinity, target: DomId) -> Result<(usize, bool, bool), Errno> {
    if aff.vcpu as usize >= vcpus_of(target)? {
        return Err(Errno::Inval);
    }
    let hard = aff.flags & XEN_VCPUAFFINITY_HARD != 0;
    let soft = aff.flags & XEN_VCPUAFFINITY_SOFT != 0;
    if !(hard || soft) {
        return Err(Errno::Inval);
    }
    for map in [&aff.cpumap_hard, &aff.cpumap_soft] {
        if cpus::bitmap_bytes(map.nr_bits) > cpus::MAX_BITMAP_BYTES {
            return Err(Errno::Inval);
        }
    }
    Ok((aff.vcpu as usize, hard, soft))
}

/// Reads the CPUs a `xenctl_bitmap` names (bytes past the first 8 name
/// CPUs hv-core cannot have).
fn read_cpumap(map: &XenctlBitmap) -> Result<CpuMask, Errno> {
    let mut bytes = [0u8; 8];
    let n = cpus::bitmap_bytes(map.nr_bits).min(8);
    guest::read_bytes(&mut bytes[..n], map.bitmap)?;
    Ok(cpus::mask_from_bitmap(&bytes[..n], map.nr_bits))
}

/// Writes `mask` into a `xenctl_bitmap`, every byte of it (those past the
/// first 8 zero), as Xen does.
fn write_cpumap(map: &XenctlBitmap, mask: CpuMask) -> Result<(), Errno> {
    let (bytes, n) = cpus::mask_to_bitmap(mask, map.nr_bits);
    guest::write_bytes(map.bitmap, &bytes[..n])?;
    let zeros = [0u8; 64];
    let mut at = n;
    let total = cpus::bitmap_bytes(map.nr_bits);
    while at < total {
        let chunk = (total - at).min(zeros.len());
        guest::write_bytes(map.bitmap + at as u64, &zeros[..chunk])?;
        at += chunk;
    }
    Ok(())
}

/// Writes back the maps a `vcpuaffinity` call named (`hard`, `soft`).
fn write_cpumaps(
    aff: &VcpuAffinity,
    hard: bool,
    soft: bool,
    hard_map: CpuMask,
    soft_map: CpuMask,
) -> Result<i64, Errno> {
    if hard {
        write_cpumap(&aff.cpumap_hard, hard_map)?;
    }
    if soft {
        write_cpumap(&aff.cpumap_soft, soft_map)?;
    }
    Ok(0)
}

/// `XEN_DOMCTL_setvcpuaffinity`: the CPUs a vCPU may run on (hard) and
/// prefers (soft). A hard affinity with no CPU that is up is `-EINVAL`
/// and changes nothing; a vCPU on a CPU it may no longer use leaves it at
/// once. The maps written back are the affinity in effect: hard ANDed with
/// the CPUs up, soft ANDed with that.
fn set_vcpu_affinity(aff: &mut VcpuAffinity, target: &mut DomId) -> Result<i64, Errno> {
    let (v, hard, soft) = affinity_request(aff, *target)?;
    domain::with(*target, |_| ()).ok_or(Errno::Srch)?;
    let online = percpu::online_mask();
    let new_hard = hard.then(|| read_cpumap(&aff.cpumap_hard)).transpose()?;
    let new_soft = soft.then(|| read_cpumap(&aff.cpumap_soft)).transpose()?;
    if new_hard.is_some_and(|mask| mask & online == 0) {
        return Err(Errno::Inval);
    }
    let (effective_hard, effective_soft) = domain::with(*target, |d| {
        let vcpu = &mut d.vcpus[v];
        if let Some(mask) = new_hard {
            vcpu.hard_affinity = mask;
        }
        if let Some(mask) = new_soft {
            vcpu.soft_affinity = mask;
        }
        scheduler::affinity_changed(d, v);
        let vcpu = &d.vcpus[v];
        let hard = vcpu.hard_affinity & online;
        (hard, vcpu.soft_affinity & hard)
    })
    .ok_or(Errno::Srch)?;
    write_cpumaps(aff, hard, soft, effective_hard, effective_soft)
}

/// `XEN_DOMCTL_getvcpuaffinity`: the maps `flags` names, as set (hard
/// ANDed with the CPUs up, as Xen reports it).
fn get_vcpu_affinity(aff: &mut VcpuAffinity, target: &mut DomId) -> Result<i64, Errno> {
    let (v, hard, soft) = affinity_request(aff, *target)?;
    let online = percpu::online_mask();
    let (h, s) = domain::with(*target, |d| {
        let vcpu = &d.vcpus[v];
        (vcpu.hard_affinity & online, vcpu.soft_affinity)
    })
    .ok_or(Errno::Srch)?;
    write_cpumaps(aff, hard, soft, h, s)
}

/// Operations that act on a domain other than dom0 itself.
fn other_domain(id: DomId) -> Result<(), Errno> {
    if id == 0 || domain::is_self(id) {
        return Err(Errno::Inval);
    }
    domain::with(id, |_| ()).ok_or(Errno::Srch)
}

/// What `getdomaininfo` reports for `d`.
fn info_of(d: &Domain) -> DomainInfo {
    let mut flags = 0;
    match d.state {
        State::Running => {}
        State::Shutdown(reason) => {
            flags |= XEN_DOMINF_SHUTDOWN | (reason & 0xff) << XEN_DOMINF_SHUTDOWNSHIFT
        }
        State::Dying => flags |= XEN_DOMINF_DYING,
    }
    if d.paused {
        flags |= XEN_DOMINF_PAUSED;
    }
    // As Xen: running if any vCPU is, blocked if any is (and none runs).
    if (0..d.max_vcpus).any(|v| scheduler::is_running(d, v)) {
        flags |= XEN_DOMINF_RUNNING;
    } else if d
        .vcpus()
        .iter()
        .any(|v| v.online && !matches!(v.wait, Wait::None))
    {
        flags |= XEN_DOMINF_BLOCKED;
    }
    let overhead = 1 + d.grants.nr_frames() as u64;
    DomainInfo {
        domain: d.id,
        flags,
        tot_pages: d.nr_pages + overhead,
        max_pages: d.max_pages,
        shared_info_frame: d.shared_page().mfn(),
        cpu_time: scheduler::running_cpu_time(d),
        nr_online_vcpus: d.vcpus.iter().filter(|v| v.online).count() as u32,
        max_vcpu_id: d.max_vcpus as u32 - 1,
        handle: d.handle,
        gpaddr_bits: 52,
        ..DomainInfo::default()
    }
}

/// Who sets a vCPU's context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextFrom {
    /// `XEN_DOMCTL_setvcpucontext`: the domain is paused (or not running).
    Toolstack,
    /// `VCPUOP_initialise`: the domain itself, for a vCPU that has none
    /// yet (`-EEXIST` otherwise, as on Xen).
    Guest,
}

/// `XEN_DOMCTL_setvcpucontext` (the domain builder's last step before
/// unpausing) and `VCPUOP_initialise`: vCPU `vcpu` of domain `id` gets
/// context `c`. The kernel L4 (`ctrlreg[3]`) is validated as a page table
/// of the domain, as on Xen; the registers are sanitised to ring 3.
pub fn set_vcpu_context(
    id: DomId,
    vcpu: usize,
    c: &VcpuGuestContext,
    from: ContextFrom,
) -> Result<(), Errno> {
    let l4 = c.ctrlreg[3] >> 12;
    if l4 == 0 {
        return Err(Errno::Inval);
    }
    let (state, paused, initialised) =
        domain::with(id, |d| (d.state, d.paused, d.vcpus[vcpu].initialised)).ok_or(Errno::Srch)?;
    if state == State::Dying {
        return Err(Errno::Srch);
    }
    match from {
        // The context of a running vCPU is its own business.
        ContextFrom::Toolstack if state == State::Running && !paused => return Err(Errno::Busy),
        ContextFrom::Guest if initialised => return Err(Errno::Exist),
        _ => {}
    }
    let addresses = [
        c.user_regs.rip,
        c.user_regs.rsp,
        c.kernel_sp,
        c.event_callback_eip,
        c.failsafe_callback_eip,
        c.syscall_callback_eip,
        c.fs_base,
        c.gs_base_kernel,
        c.gs_base_user,
    ];
    let traps = c.trap_ctxt.iter().map(|t| t.address);
    if !addresses.into_iter().chain(traps).all(pv::is_canonical) {
        return Err(Errno::Inval);
    }
    crate::page_tables::flush_if_stale();
    let mut mem = MachinePageTables;
    let root = memory::with_frame_table(|ft| pv::Root::take(ft, l4, id, &mut Budget::unlimited()))
        .map_err(|e| {
            log::info!("d{id}: setvcpucontext: the kernel page tables do not validate: {e}");
            Errno::Inval
        })?;
    let r = &c.user_regs;
    let mut root = Some(root);
    let applied = domain::with(id, |d| {
        // Checked again under the lock: the checks above were made
        // under an earlier one, and meanwhile another vCPU of the domain
        // may have initialised this one and started it, dom0 may have
        // unpaused it, or it may be being destroyed. A vCPU a CPU holds
        // keeps its context (its root is that CPU's CR3).
        let v = &d.vcpus[vcpu];
        let refused = if d.state == State::Dying || d.destroying {
            Some(Errno::Srch)
        } else {
            match from {
                ContextFrom::Toolstack
                    if (d.state == State::Running && !d.paused) || v.on_cpu.is_some() =>
                {
                    Some(Errno::Busy)
                }
                ContextFrom::Guest if v.initialised || v.on_cpu.is_some() => Some(Errno::Exist),
                _ => None,
            }
        };
        if let Some(errno) = refused {
            return Err(errno);
        }
        let v = &mut d.vcpus[vcpu];
        v.frame = TrapFrame {
            r15: r.r15,
            r14: r.r14,
            r13: r.r13,
            r12: r.r12,
            r11: r.r11,
            r10: r.r10,
            r9: r.r9,
            r8: r.r8,
            rbp: r.rbp,
            rdi: r.rdi,
            rsi: r.rsi,
            rdx: r.rdx,
            rcx: r.rcx,
            rbx: r.rbx,
            rax: r.rax,
            rip: r.rip,
            cs: FLAT_KERNEL_CS64 as u64,
            // Guests run with interrupts on and no I/O privilege.
            rflags: (r.rflags & !(3 << 12)) | 0x202,
            rsp: r.rsp,
            ss: FLAT_KERNEL_SS64 as u64,
            ..TrapFrame::ZERO
        };
        // A PV64 vCPU always starts in guest kernel mode.
        v.kernel_mode = true;
        v.kernel_sp = c.kernel_sp;
        for t in c.trap_ctxt.iter().filter(|t| t.address != 0) {
            v.traps[t.vector as usize] = TrapEntry {
                address: t.address,
                flags: t.flags,
            };
        }
        v.callbacks = Callbacks {
            event: c.event_callback_eip,
            failsafe: c.failsafe_callback_eip,
            syscall: c.syscall_callback_eip,
            failsafe_masks_events: c.flags & VGCF_FAILSAFE_DISABLES_EVENTS != 0,
            syscall_masks_events: c.flags & VGCF_SYSCALL_DISABLES_EVENTS != 0,
            // The 64-bit context has no slots for these (Xen's neither):
            // the guest registers them with callback_op.
            syscall32: 0,
            sysenter: 0,
            syscall32_masks_events: false,
            sysenter_masks_events: false,
        };
        // As Xen loads them on the first switch; a selector no guest
        // could load becomes null.
        v.selectors = crate::arch::pv::DataSelectors {
            ds: r.ds,
            es: r.es,
            fs: r.fs,
            gs: r.gs,
        }
        .sanitised();
        v.fs_base = c.fs_base;
        v.gs_base_kernel = c.gs_base_kernel;
        v.gs_base_user = c.gs_base_user;
        v.initialised = true;
        v.online = c.flags & VGCF_ONLINE != 0;
        v.wait = Wait::None;
        scheduler::catch_up(v);
        v.periodic = Some((
            vtime::DEFAULT_PERIOD_NS,
            vtime::now_ns() + vtime::DEFAULT_PERIOD_NS,
        ));
        let old = core::mem::replace(&mut v.kernel_root, root.take());
        let state = scheduler::resting_state(d, vcpu);
        d.vcpus[vcpu].runstate.enter(state, vtime::now_ns());
        vtime::publish(d);
        if d.vcpus[vcpu].online {
            scheduler::notify(d, vcpu);
        }
        Ok(old)
    });
    // The root taken above, if it was not used, and the one it replaced.
    let unused = root.take();
    let (result, old_root) = match applied {
        Some(Ok(old)) => (Ok(()), old),
        Some(Err(errno)) => (Err(errno), unused),
        None => (Err(Errno::Srch), unused),
    };
    if let Some(old_root) = old_root {
        let old_root = old_root.into_reference();
        memory::with_frame_table(|ft| ft.put_page_type(&mut mem, old_root));
        // No CPU holds the vCPU, but others may still cache what the
        // tree mapped: once devalidated its frames may become writable.
        crate::page_tables::flush_all();
    }
    result
}

fn phys_info(info: &mut PhysInfo, _: &mut DomId) -> Result<i64, Errno> {
    lifecycle::reap_all();
    *info = PhysInfo {
        threads_per_core: 1,
        cores_per_socket: 1,
        nr_cpus: crate::arch::percpu::online_count() as u32,
        max_cpu_id: crate::arch::percpu::online_count().saturating_sub(1) as u32,
        nr_nodes: 1,
        cpu_khz: (crate::arch::time::tsc_hz() / 1000) as u32,
        total_pages: memory::total_frames(),
        free_pages: memory::free_frames(),
        max_mfn: memory::max_mfn().saturating_sub(1),
        ..PhysInfo::default()
    };
    Ok(0)
}

/// The domains from `first_domain` on, in id order, as many as fit.
fn domain_info_list(list: &mut GetDomainInfoList, _: &mut DomId) -> Result<i64, Errno> {
    lifecycle::reap_all();
    let mut infos: heapless::Vec<DomainInfo, { domain::MAX_DOMAINS }> = heapless::Vec::new();
    domain::for_each(|d| {
        if d.id >= list.first_domain {
            let _ = infos.push(info_of(d));
        }
    });
    infos.sort_unstable_by_key(|i| i.domain);
    let n = infos.len().min(list.max_domains as usize);
    let out = guest::GuestArray::<DomainInfo>::new(list.buffer, n as u64);
    for (i, info) in infos[..n].iter().enumerate() {
        out.at(i as u64)?.write(info)?;
    }
    list.num_domains = n as u32;
    Ok(0)
}
