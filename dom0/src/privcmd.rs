//! The privileged hypercalls a toolstack makes and an ordinary guest never
//! does (Linux's `privcmd` driver passes the same calls through for `xl`):
//! domctl, sysctl, memory reservations on behalf of another domain, an
//! unbound port allocated in another domain, pinning another domain's page
//! table. (Foreign `mmu_update` is the SDK's, used by [`crate::foreign`].)
//!
//! Each is a typed wrapper over the SDK's one raw hypercall
//! ([`pv_guest_sdk::hypercall::raw`]). This module and [`crate::foreign`] are dom0's only
//! `unsafe` code.

use abi::Hypercall;
use abi::domctl::{
    CreateDomain, DomainInfo, Domctl, GetDomainInfoList, MaxMem, MaxVcpus, PhysInfo, Sysctl,
    VcpuAffinity, VcpuContext, VcpuGuestContext, VcpuInfoCtl, XEN_DOMCTL_CREATEDOMAIN,
    XEN_DOMCTL_DESTROYDOMAIN, XEN_DOMCTL_GETDOMAININFO, XEN_DOMCTL_GETVCPUAFFINITY,
    XEN_DOMCTL_GETVCPUINFO, XEN_DOMCTL_MAX_MEM, XEN_DOMCTL_MAX_VCPUS, XEN_DOMCTL_PAUSEDOMAIN,
    XEN_DOMCTL_SETVCPUAFFINITY, XEN_DOMCTL_SETVCPUCONTEXT, XEN_DOMCTL_UNPAUSEDOMAIN,
    XEN_SYSCTL_GETDOMAININFOLIST, XEN_SYSCTL_PHYSINFO, XEN_VCPUAFFINITY_HARD, XenctlBitmap,
};
use abi::event_channel::{AllocUnbound, EVTCHNOP_ALLOC_UNBOUND, Port};
use abi::ops::{MemoryReservation, XENMEM_POPULATE_PHYSMAP};
use abi::xen::DomId;
use abi::xen::{MMUEXT_PIN_L4_TABLE, MmuextOp};
use pv_guest_sdk::{Error, Result};
use zerocopy::{Immutable, IntoBytes};

/// Issues hypercall `nr` with up to five arguments and returns RAX.
///
/// # Safety
/// As [`pv_guest_sdk::hypercall::raw`]: the arguments must suit the
/// operation and the call must not change mappings Rust code relies on.
unsafe fn hypercall5(nr: Hypercall, args: [u64; 5]) -> i64 {
    // SAFETY: forwarded from the caller's contract.
    unsafe { pv_guest_sdk::hypercall::raw(nr as u32, args) }
}

/// A call whose only pointer argument is `arg`, a live Rust object the
/// hypervisor reads and writes back.
fn call_with<T>(nr: Hypercall, cmd: u64, arg: &mut T) -> Result<u64> {
    // SAFETY: `arg` is a live, exclusively borrowed object of the layout
    // the operation expects (each caller passes the ABI type for `cmd`);
    // none of these operations changes dom0's own mappings.
    let ret = unsafe { hypercall5(nr, [cmd, arg as *mut T as u64, 0, 0, 0]) };
    Error::check(ret)
}

/// `HYPERVISOR_domctl` with `op` read and written back in place.
///
/// # Safety
/// Any pointer inside the payload must point to a live object of the type
/// the command expects.
unsafe fn domctl(op: &mut Domctl) -> Result<()> {
    // SAFETY: one pointer argument, to the live `Domctl`; the caller
    // vouches for pointers inside it.
    let ret = unsafe { hypercall5(Hypercall::Domctl, [op as *mut Domctl as u64, 0, 0, 0, 0]) };
    Error::check(ret).map(drop)
}

/// A domctl whose payload holds no pointer; the request as the hypervisor
/// wrote it back.
fn plain_domctl<T: IntoBytes + Immutable>(cmd: u32, domain: DomId, payload: &T) -> Result<Domctl> {
    let mut op = Domctl::new(cmd, domain, payload);
    // SAFETY: every caller passes a payload type without pointers.
    unsafe { domctl(&mut op) }?;
    Ok(op)
}

/// `XEN_DOMCTL_createdomain`: a new, paused domain; the hypervisor picks
/// its id.
pub fn create_domain(config: &CreateDomain) -> Result<DomId> {
    plain_domctl(XEN_DOMCTL_CREATEDOMAIN, 0, config).map(|op| op.domain)
}

pub fn destroy_domain(id: DomId) -> Result<()> {
    plain_domctl(XEN_DOMCTL_DESTROYDOMAIN, id, &()).map(drop)
}

pub fn pause_domain(id: DomId) -> Result<()> {
    plain_domctl(XEN_DOMCTL_PAUSEDOMAIN, id, &()).map(drop)
}

pub fn unpause_domain(id: DomId) -> Result<()> {
    plain_domctl(XEN_DOMCTL_UNPAUSEDOMAIN, id, &()).map(drop)
}

/// `XEN_DOMCTL_getdomaininfo` for exactly `id` (`NoSuchDomain` if none).
pub fn domain_info(id: DomId) -> Result<DomainInfo> {
    plain_domctl(XEN_DOMCTL_GETDOMAININFO, id, &DomainInfo::default()).map(|op| op.payload())
}

pub fn set_max_vcpus(id: DomId, max: u32) -> Result<()> {
    plain_domctl(XEN_DOMCTL_MAX_VCPUS, id, &MaxVcpus { max }).map(drop)
}

pub fn set_max_mem(id: DomId, max_memkb: u64) -> Result<()> {
    plain_domctl(XEN_DOMCTL_MAX_MEM, id, &MaxMem { max_memkb }).map(drop)
}

/// `XEN_DOMCTL_setvcpucontext`: vCPU `vcpu`'s registers, page tables and
/// callbacks before the domain first runs.
pub fn set_vcpu_context(id: DomId, vcpu: u32, context: &VcpuGuestContext) -> Result<()> {
    let ctl = VcpuContext {
        vcpu,
        _pad: 0,
        ctxt: context as *const VcpuGuestContext as u64,
    };
    let mut op = Domctl::new(XEN_DOMCTL_SETVCPUCONTEXT, id, &ctl);
    // SAFETY: the payload's one pointer is to `context`, borrowed for the
    // call; the hypervisor only reads it.
    unsafe { domctl(&mut op) }
}

/// `XEN_DOMCTL_getvcpuinfo`: where vCPU `vcpu` runs, its state and CPU time.
pub fn vcpu_info(id: DomId, vcpu: u32) -> Result<VcpuInfoCtl> {
    let ctl = VcpuInfoCtl {
        vcpu,
        ..Default::default()
    };
    plain_domctl(XEN_DOMCTL_GETVCPUINFO, id, &ctl).map(|op| op.payload())
}

/// A hard-affinity `vcpuaffinity` call on the 64-CPU map `map`.
fn affinity_call(cmd: u32, id: DomId, vcpu: u32, map: &mut u64) -> Result<()> {
    let ctl = VcpuAffinity {
        vcpu,
        flags: XEN_VCPUAFFINITY_HARD,
        cpumap_hard: XenctlBitmap {
            bitmap: map as *mut u64 as u64,
            nr_bits: 64,
            _pad: 0,
        },
        ..Default::default()
    };
    let mut op = Domctl::new(cmd, id, &ctl);
    // SAFETY: the payload's one pointer is to `map`, 8 bytes borrowed
    // mutably for the call: the hypervisor reads and writes 64 bits.
    unsafe { domctl(&mut op) }
}

/// `XEN_DOMCTL_setvcpuaffinity` (hard): the CPUs vCPU `vcpu` may run on.
/// Returns the affinity in effect (`cpus` and the CPUs that are up).
pub fn set_vcpu_affinity(id: DomId, vcpu: u32, cpus: u64) -> Result<u64> {
    let mut map = cpus;
    affinity_call(XEN_DOMCTL_SETVCPUAFFINITY, id, vcpu, &mut map)?;
    Ok(map)
}

/// `XEN_DOMCTL_getvcpuaffinity` (hard).
pub fn vcpu_affinity(id: DomId, vcpu: u32) -> Result<u64> {
    let mut map = 0;
    affinity_call(XEN_DOMCTL_GETVCPUAFFINITY, id, vcpu, &mut map)?;
    Ok(map)
}

/// `HYPERVISOR_sysctl` with `op` read and written back in place.
///
/// # Safety
/// As for [`domctl`].
unsafe fn sysctl(op: &mut Sysctl) -> Result<()> {
    // SAFETY: as for `domctl`.
    let ret = unsafe { hypercall5(Hypercall::Sysctl, [op as *mut Sysctl as u64, 0, 0, 0, 0]) };
    Error::check(ret).map(drop)
}

/// `XEN_SYSCTL_physinfo`: the machine's pages, free pages, CPUs.
pub fn physinfo() -> Result<PhysInfo> {
    let mut op = Sysctl::new(XEN_SYSCTL_PHYSINFO, &PhysInfo::default());
    // SAFETY: physinfo's payload holds no pointer.
    unsafe { sysctl(&mut op) }?;
    Ok(op.payload())
}

/// `XEN_SYSCTL_getdomaininfolist` from domain 0: fills `buf` with the
/// domains in id order and returns how many there are (at most its length).
pub fn domain_info_list(buf: &mut [DomainInfo]) -> Result<usize> {
    let request = GetDomainInfoList {
        first_domain: 0,
        max_domains: buf.len() as u32,
        buffer: buf.as_mut_ptr() as u64,
        ..Default::default()
    };
    let mut op = Sysctl::new(XEN_SYSCTL_GETDOMAININFOLIST, &request);
    // SAFETY: the buffer is `buf`, borrowed mutably for the call, with room
    // for `max_domains` entries.
    unsafe { sysctl(&mut op) }?;
    let answer: GetDomainInfoList = op.payload();
    Ok((answer.num_domains as usize).min(buf.len()))
}

/// `XENMEM_populate_physmap` for `domid`: gives the domain a frame at each
/// guest frame number in `frames` and writes the machine frames back in
/// its place. Returns how many were populated (all of them unless the
/// domain reached its limit).
pub fn populate_physmap(domid: DomId, frames: &mut [u64]) -> Result<usize> {
    let mut reservation = MemoryReservation {
        extent_start: frames.as_mut_ptr() as u64,
        nr_extents: frames.len() as u64,
        extent_order: 0,
        mem_flags: 0,
        domid,
        _pad: [0; 3],
    };
    call_with(
        Hypercall::MemoryOp,
        XENMEM_POPULATE_PHYSMAP as u64,
        &mut reservation,
    )
    .map(|done| done as usize)
}

/// `EVTCHNOP_alloc_unbound` in domain `dom` for `remote`: how the toolstack
/// gives a new domain the port its console (or store) back-end binds to.
pub fn alloc_unbound_in(dom: DomId, remote: DomId) -> Result<Port> {
    let mut arg = AllocUnbound {
        dom,
        remote_dom: remote,
        port: 0,
    };
    call_with(
        Hypercall::EventChannelOp,
        EVTCHNOP_ALLOC_UNBOUND as u64,
        &mut arg,
    )?;
    Ok(arg.port)
}

/// `MMUEXT_PIN_L4_TABLE` of machine frame `l4`, a page table of domain
/// `owner`: the hypervisor validates the whole tree as that domain's.
pub fn pin_l4(owner: DomId, l4: u64) -> Result<()> {
    let op = MmuextOp {
        cmd: MMUEXT_PIN_L4_TABLE,
        _pad: 0,
        arg1: l4,
        arg2: 0,
    };
    // SAFETY: pinning changes no mapping (it only types and validates the
    // tree), so nothing dom0's Rust code relies on can change.
    unsafe { pv_guest_sdk::hypercall::mmuext_op(&[op], owner) }.map(drop)
}
