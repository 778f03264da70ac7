//! Domains and their vCPUs: what hv-core keeps for each guest.
//!
//! A domain owns machine frames (recorded in the frame table), one
//! shared_info page, its event-channel ports and its vCPUs. A vCPU holds the
//! PV state Xen keeps per vCPU: guest kernel or user mode, the two page-table
//! roots, the trap table and callbacks, the kernel stack for bounces, segment
//! bases and its one-shot timer.
//!
//! Each CPU runs one vCPU at a time (its `percpu` block names the domain);
//! a vCPU no CPU holds keeps its registers in [`Vcpu::frame`], and the
//! scheduler (`scheduler`) swaps frames on the way out to a guest.
//!
//! Locks: each domain has its own (its slot's), and a table lock
//! serialises creation and removal. Lock order: the table lock, then
//! domain locks in slot order (at most two: [`with_two`]), then the locks
//! inside hv-core's services (frame table, allocator, console), never the
//! reverse; a domain's lock is never held while taking another domain's
//! except through [`with_two`] (event delivery works on the domain it was
//! given).

use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};

use abi::xen::DomId;
use hv_core::event_channel::EventChannels;
use hv_core::frame_table::Mfn;

use crate::arch::TrapFrame;
use crate::arch::pv::SegmentBases;
use crate::arch::shared::{SharedPage, VCPU_INFO_BYTES, VcpuInfo, VcpuInfoFrame};
use crate::arch::sync::IrqMutex;

/// Domains alive at once, dom0 included (dying ones count until their
/// last frame is released).
pub const MAX_DOMAINS: usize = 16;
/// vCPUs per domain, at most (a domain has the number its
/// `createdomain` asked for, [`Domain::max_vcpus`]).
pub const MAX_VCPUS: usize = hv_core::event_channel::MAX_VCPUS;
/// Ports a `SCHEDOP_poll` may wait on (Xen's limit is the same order).
pub const MAX_POLL_PORTS: usize = 128;

/// Why a vCPU is not running although it could. (Kept inline, poll
/// ports and all: one per vCPU in a static table, no allocation.)
#[derive(Clone, Copy, Debug)]
#[allow(clippy::large_enum_variant)]
// A tag of its own, `None` = 0: a vacant domain's vCPUs are all zeros.
#[repr(u8)]
pub enum Wait {
    /// Runnable.
    None,
    /// `SCHEDOP_block`: until an upcall is pending.
    Block,
    /// `SCHEDOP_poll`: until one of the ports is pending or the deadline.
    Poll {
        ports: [u32; MAX_POLL_PORTS],
        count: usize,
        deadline: Option<u64>,
    },
}

/// One trap-table entry: where to bounce a vector, and its flags
/// (`TI_DPL_MASK`, `TI_MASK_EVENTS`).
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapEntry {
    pub address: u64,
    pub flags: u8,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Callbacks {
    pub event: u64,
    pub failsafe: u64,
    /// `syscall` from 64-bit guest user mode.
    pub syscall: u64,
    /// `syscall` from the 32-bit code segment, in either guest mode.
    pub syscall32: u64,
    /// `sysenter`, in either guest mode.
    pub sysenter: u64,
    pub failsafe_masks_events: bool,
    pub syscall_masks_events: bool,
    pub syscall32_masks_events: bool,
    pub sysenter_masks_events: bool,
}

pub struct Vcpu {
    /// Guest kernel mode (else guest user mode); both run in ring 3.
    pub kernel_mode: bool,
    /// The page-table roots the vCPU holds (a type reference each);
    /// none until it is given a context.
    pub kernel_root: Option<crate::arch::pv::Root>,
    pub user_root: Option<crate::arch::pv::Root>,
    /// Where bounces from user mode put their frame (`stack_switch`).
    pub kernel_sp: u64,
    pub traps: [TrapEntry; 256],
    pub callbacks: Callbacks,
    pub fs_base: u64,
    pub gs_base_kernel: u64,
    pub gs_base_user: u64,
    /// The one-shot timer's deadline in system time (ns), if armed.
    pub timer_deadline: Option<u64>,
    /// The periodic timer: period and next deadline (ns). Xen starts
    /// every PV vCPU with a 10 ms one; guests stop it with
    /// `VCPUOP_stop_periodic_timer`.
    pub periodic: Option<(u64, u64)>,
    /// The registers while the vCPU is not on the CPU.
    pub frame: TrapFrame,
    pub fpu: crate::arch::pv::FpuState,
    /// DS, ES, FS and GS while the vCPU is not on the CPU.
    pub selectors: crate::arch::pv::DataSelectors,
    /// Has a context (dom0's vCPU 0 at build, a domU's by
    /// `setvcpucontext`, any by `VCPUOP_initialise`).
    pub initialised: bool,
    /// Up: may run (dom0's vCPU 0 at build, a domU's by `setvcpucontext`
    /// with `VGCF_online`, any by `VCPUOP_up`; `VCPUOP_down` clears it).
    pub online: bool,
    pub wait: Wait,
    /// Woken from a wait and not yet run: runs before vCPUs that were
    /// preempted (what lets a ping-pong of events go at event speed).
    pub woken: bool,
    /// Time spent running, runnable, blocked and offline.
    pub runstate: hv_core::runstate::Runstate,
    /// The scheduler's virtual runtime: CPU time, raised on wake-up to the
    /// least among runnable vCPUs so a long sleep earns no burst.
    pub vruntime: u64,
    /// The CPU that holds the vCPU (runs it, or has chosen it and not yet
    /// given it back): its registers are that CPU's, not `frame`'s.
    pub on_cpu: Option<usize>,
    /// The CPU it last ran on.
    pub last_cpu: usize,
    /// The CPU whose run queue it waits in (`scheduler`): where it last
    /// ran, or where it was placed when it woke. An atomic: placement
    /// happens where the domain is only read (event delivery).
    pub queue: core::sync::atomic::AtomicU32,
    /// The CPUs it may run on (`setvcpuaffinity`'s hard affinity; the
    /// CPUs that are up among them is never empty).
    pub hard_affinity: hv_core::cpus::CpuMask,
    /// The CPUs it prefers, as the toolstack set it: an idle one of them
    /// comes first when it wakes (`sched_policy::place`).
    pub soft_affinity: hv_core::cpus::CpuMask,
    /// Where the guest moved its vcpu_info (`VCPUOP_register_vcpu_info`);
    /// `None`: its slot in shared_info.
    pub vcpu_info_frame: Option<VcpuInfoFrame>,
}

impl Vcpu {
    pub const fn new() -> Self {
        Self {
            kernel_mode: true,
            kernel_root: None,
            user_root: None,
            kernel_sp: 0,
            traps: [TrapEntry {
                address: 0,
                flags: 0,
            }; 256],
            callbacks: Callbacks {
                event: 0,
                failsafe: 0,
                syscall: 0,
                syscall32: 0,
                sysenter: 0,
                failsafe_masks_events: false,
                syscall_masks_events: false,
                syscall32_masks_events: false,
                sysenter_masks_events: false,
            },
            fs_base: 0,
            gs_base_kernel: 0,
            gs_base_user: 0,
            timer_deadline: None,
            periodic: None,
            frame: TrapFrame::ZERO,
            fpu: crate::arch::pv::FpuState::INIT,
            selectors: crate::arch::pv::DataSelectors {
                ds: 0,
                es: 0,
                fs: 0,
                gs: 0,
            },
            initialised: false,
            online: false,
            wait: Wait::None,
            woken: false,
            runstate: hv_core::runstate::Runstate::new(0),
            vruntime: 0,
            on_cpu: None,
            last_cpu: 0,
            queue: core::sync::atomic::AtomicU32::new(0),
            hard_affinity: hv_core::cpus::ALL_CPUS,
            soft_affinity: hv_core::cpus::ALL_CPUS,
            vcpu_info_frame: None,
        }
    }

    /// A vacant domain slot's vCPU: all zeros, so that the domain table
    /// sits in `.bss` (an occupied domain's vCPUs start as [`Vcpu::new`]).
    const fn vacant() -> Self {
        let mut v = Self::new();
        v.kernel_mode = false;
        v.fpu = crate::arch::pv::FpuState::ZERO;
        v.hard_affinity = 0;
        v.soft_affinity = 0;
        v.runstate.state = 0;
        v
    }

    /// The segment bases to load for the current guest mode.
    pub fn segment_bases(&self) -> SegmentBases {
        let gs = if self.kernel_mode {
            self.gs_base_kernel
        } else {
            self.gs_base_user
        };
        SegmentBases {
            fs: self.fs_base,
            gs,
        }
    }

    /// The page-table root for the current guest mode (none before the
    /// vCPU has a context).
    pub fn current_root(&self) -> Option<&crate::arch::pv::Root> {
        if self.kernel_mode {
            self.kernel_root.as_ref()
        } else {
            self.user_root.as_ref().or(self.kernel_root.as_ref())
        }
    }

    /// [`Self::current_root`]'s frame (0 for none: never a live table).
    pub fn current_root_mfn(&self) -> Mfn {
        self.current_root().map_or(0, |r| r.mfn())
    }

    /// Switches the CPU to [`Self::current_root`]; a vCPU without one
    /// cannot run, so asking is a bug.
    pub fn load_root(&self) {
        let root = self
            .current_root()
            .expect("a vCPU that runs has page tables");
        crate::arch::pv::load_page_table_root(root);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Running,
    /// Shut down with a `SHUTDOWN_*` reason; waits for the toolstack.
    Shutdown(u32),
    /// Destroyed, but some of its frames are still referenced by another
    /// domain (mapped by dom0, or granted and mapped); it goes away when
    /// the last one is released.
    Dying,
}

/// A domain's state and resources. The table's slots are vacant domains
/// from the start (all zeros, in `.bss`: [`Domain::vacant`]), occupied
/// and vacated in place, field by field, because a whole `Domain` (72 KiB
/// with eight vCPUs) is too large to pass through any stack as a
/// temporary (the compiler may keep two copies of one: at `opt-level =
/// "s"`, a frame that overflowed the entry stack, later the boot stack).
pub struct Domain {
    /// A domain: the slot is taken ([`Domain::occupy`] fills it).
    pub occupied: bool,
    pub id: DomId,
    pub privileged: bool,
    /// Pages the domain owns (its reservation).
    pub nr_pages: u64,
    /// Its shared_info page, freed with the domain (`None` only while
    /// vacant).
    pub shared_info: Option<SharedPage>,
    pub events: EventChannels,
    /// The vCPUs `createdomain` asked for (1 to [`MAX_VCPUS`]); the slots
    /// past them stay offline and no hypercall reaches them.
    pub max_vcpus: usize,
    pub vcpus: [Vcpu; MAX_VCPUS],
    pub state: State,
    /// Paused by the toolstack (`XEN_DOMCTL_pausedomain`); domUs are
    /// created paused.
    pub paused: bool,
    /// `destroydomain` has begun: no vCPU of it runs again, whatever the
    /// guest or an unpause does meanwhile (set before its vCPUs are taken
    /// off the CPUs; `state` becomes `Dying` later, once its channels,
    /// grants and roots are gone).
    pub destroying: bool,
    /// The reservation limit, in pages (`XEN_DOMCTL_max_mem`).
    pub max_pages: u64,
    /// The toolstack's handle (`xen_domain_handle_t`).
    pub handle: [u8; 16],
    pub grants: crate::grant::GrantTable,
    /// The grant table's frames, freed with the domain.
    pub grant_frames: crate::grant::GrantFrames,
}

impl Domain {
    /// An empty slot's domain: all zeros.
    const fn vacant() -> Self {
        Self {
            occupied: false,
            id: 0,
            privileged: false,
            nr_pages: 0,
            shared_info: None,
            events: EventChannels::new(0),
            max_vcpus: 0,
            vcpus: [const { Vcpu::vacant() }; MAX_VCPUS],
            state: State::Running,
            paused: false,
            destroying: false,
            max_pages: 0,
            handle: [0; 16],
            grants: crate::grant::GrantTable::new(),
            grant_frames: crate::grant::GrantFrames::new(),
        }
    }

    /// Makes this vacant slot domain `id`, as new, in place.
    fn occupy(&mut self, id: DomId, privileged: bool, max_vcpus: usize, shared_info: SharedPage) {
        self.id = id;
        self.privileged = privileged;
        self.nr_pages = 0;
        self.shared_info = Some(shared_info);
        self.max_vcpus = max_vcpus;
        self.events.reset(max_vcpus as u32);
        for vcpu in self.vcpus.iter_mut() {
            *vcpu = Vcpu::new();
        }
        self.state = State::Running;
        self.paused = false;
        self.destroying = false;
        self.max_pages = 0;
        self.handle = [0; 16];
        self.grants = crate::grant::GrantTable::new();
        self.grant_frames = crate::grant::GrantFrames::new();
        self.occupied = true;
    }

    /// Frees what the domain holds (its shared_info and grant frames) and
    /// makes the slot vacant, in place.
    fn vacate(&mut self) {
        self.occupied = false;
        self.id = abi::xen::DOMID_INVALID;
        self.shared_info = None;
        self.grant_frames = crate::grant::GrantFrames::new();
        for vcpu in self.vcpus.iter_mut() {
            *vcpu = Vcpu::new();
        }
    }

    /// The vCPUs the domain has (`max_vcpus` of them).
    pub fn vcpus(&self) -> &[Vcpu] {
        &self.vcpus[..self.max_vcpus]
    }

    pub fn vcpus_mut(&mut self) -> &mut [Vcpu] {
        &mut self.vcpus[..self.max_vcpus]
    }

    /// vCPU `v`'s vcpu_info: where it registered one, else its slot in
    /// shared_info.
    #[inline(always)]
    pub fn vcpu_info(&self, v: usize) -> VcpuInfo<'_> {
        match &self.vcpus[v].vcpu_info_frame {
            Some(frame) => VcpuInfo::Frame(frame),
            None => VcpuInfo::Slot(self.shared_page(), v * VCPU_INFO_BYTES),
        }
    }

    pub fn shared_page(&self) -> &SharedPage {
        self.shared_info
            .as_ref()
            .expect("a domain in the table has its shared_info page")
    }
}

/// Slots, not `Option`s: a table of empty slots is zeros, so it sits in
/// `.bss` rather than in the image (`hv_core::slot`). Each slot has its own
/// lock: a hypercall takes its own domain's (and, for interdomain events,
/// grant maps and copies, the peer's too), never a lock over all domains.
static DOMAINS: [IrqMutex<Domain>; MAX_DOMAINS] =
    [const { IrqMutex::new(Domain::vacant()) }; MAX_DOMAINS];

/// Which domain each slot holds (its id + 1; 0: vacant), read without a
/// lock to find a domain's slot. Only a hint: the slot's own lock
/// confirms it (`Domain::occupied`, `Domain::id`), since the domain may go
/// between the look and the lock.
static SLOT_IDS: [AtomicU32; MAX_DOMAINS] = [const { AtomicU32::new(0) }; MAX_DOMAINS];

/// Serialises what changes which slot holds which domain: creation,
/// removal, the choice of a new id. Taken before a slot's lock, never
/// inside one.
static TABLE: IrqMutex<()> = IrqMutex::new(());

const fn slot_tag(id: DomId) -> u32 {
    id as u32 + 1
}

/// The slot that holds domain `id`, by the hint.
#[inline(always)]
fn slot_of(id: DomId) -> Option<usize> {
    SLOT_IDS
        .iter()
        .position(|tag| tag.load(Ordering::Acquire) == slot_tag(id))
}

/// The domain whose vCPU runs on this CPU (`DOMID_INVALID` on a CPU
/// that holds none: it runs no hypercall then).
#[inline(always)]
pub fn current_id() -> DomId {
    crate::arch::percpu::current()
        .sched
        .current()
        .unwrap_or(abi::xen::DOMID_INVALID)
}

/// Whether `dom` names the running domain: `DOMID_SELF` or its own id.
pub fn is_self(dom: DomId) -> bool {
    dom == abi::xen::DOMID_SELF || dom == current_id()
}

/// The domain in `slot`, if it holds one.
fn live(slot: &mut Domain) -> Option<&mut Domain> {
    Some(slot).filter(|d| d.occupied)
}

/// Creates domain `id` in the table (in place: a `Domain` is large);
/// fails when the table is full or the id is taken (and then the
/// shared_info page is freed).
pub fn create(
    id: DomId,
    privileged: bool,
    max_vcpus: usize,
    shared_info: SharedPage,
) -> Result<(), ()> {
    assert!((1..=MAX_VCPUS).contains(&max_vcpus));
    TABLE.with(|_| {
        if slot_of(id).is_some() {
            return Err(());
        }
        let slot = SLOT_IDS
            .iter()
            .position(|tag| tag.load(Ordering::Relaxed) == 0)
            .ok_or(())?;
        DOMAINS[slot].with(|d| d.occupy(id, privileged, max_vcpus, shared_info));
        SLOT_IDS[slot].store(slot_tag(id), Ordering::Release);
        Ok(())
    })
}

/// Runs `f` on domain `id`, if it exists, with its lock held.
pub fn with<R>(id: DomId, f: impl FnOnce(&mut Domain) -> R) -> Option<R> {
    DOMAINS[slot_of(id)?].with(|slot| live(slot).filter(|d| d.id == id).map(f))
}

/// Runs `f` on every domain, one at a time, each with its lock held (not
/// a snapshot of all at once: domains may come and go meanwhile).
pub fn for_each(mut f: impl FnMut(&mut Domain)) {
    for (slot, tag) in DOMAINS.iter().zip(&SLOT_IDS) {
        if tag.load(Ordering::Acquire) != 0 {
            slot.with(|d| live(d).map(&mut f));
        }
    }
}

/// Runs `f` on the running domain.
pub fn with_current<R>(f: impl FnOnce(&mut Domain) -> R) -> R {
    with(current_id(), f).expect("the running domain exists")
}

/// The index of the vCPU on this CPU within its domain (0 on a CPU that
/// holds none: it runs no hypercall then).
#[inline(always)]
pub fn current_vcpu_index() -> usize {
    crate::arch::percpu::current().sched.current_vcpu()
}

/// Runs `f` on the vCPU on this CPU: the one place that knows which of
/// the running domain's vCPUs that is.
pub fn with_current_vcpu<R>(f: impl FnOnce(&mut Vcpu) -> R) -> R {
    with_current(|d| f(&mut d.vcpus[current_vcpu_index()]))
}

/// Runs `f` on two distinct domains at once (interdomain events, grant
/// maps and copies); `None` if either does not exist or they are the same.
/// Lock order: the two slots' locks in slot order.
pub fn with_two<R>(a: DomId, b: DomId, f: impl FnOnce(&mut Domain, &mut Domain) -> R) -> Option<R> {
    if a == b {
        return None;
    }
    let (sa, sb) = (slot_of(a)?, slot_of(b)?);
    let (first, second) = if sa < sb { (sa, sb) } else { (sb, sa) };
    DOMAINS[first].with(|x| {
        DOMAINS[second].with(|y| {
            let (da, db) = if sa < sb { (x, y) } else { (y, x) };
            let da = live(da).filter(|d| d.id == a)?;
            let db = live(db).filter(|d| d.id == b)?;
            Some(f(da, db))
        })
    })
}

/// Removes domain `id` from the table. Its shared_info and grant-table
/// pages are freed with it, so nothing may map them any more.
pub fn remove(id: DomId) {
    TABLE.with(|_| {
        if let Some(slot) = slot_of(id) {
            SLOT_IDS[slot].store(0, Ordering::Release);
            DOMAINS[slot].with(|d| {
                if let Some(d) = live(d).filter(|d| d.id == id) {
                    d.vacate();
                }
            });
        }
    });
}

/// The domain a request's `dom` field names: the caller (`DOMID_SELF` or
/// its own id), or for dom0 any other domain that is not dying. A domU
/// naming another domain gets `-EPERM`; a missing or dying one `-ESRCH`.
pub fn resolve(dom: DomId) -> Result<DomId, abi::Errno> {
    if is_self(dom) {
        return Ok(current_id());
    }
    if !current_is_privileged() {
        return Err(abi::Errno::Perm);
    }
    match with(dom, |d| d.state) {
        Some(State::Dying) | None => Err(abi::Errno::Srch),
        Some(_) => Ok(dom),
    }
}

/// Whether the current domain is the privileged one.
pub fn current_is_privileged() -> bool {
    with_current(|d| d.privileged)
}

/// The id for a new domain: the lowest free one above the last handed
/// out (ids are not reused at once, as on Xen), wrapping below the
/// reserved range.
pub fn next_free_id() -> Option<DomId> {
    static LAST: AtomicU16 = AtomicU16::new(0);
    TABLE.with(|_| {
        if SLOT_IDS.iter().all(|tag| tag.load(Ordering::Relaxed) != 0) {
            return None;
        }
        let mut id = LAST.load(Ordering::Relaxed);
        loop {
            id = if id + 1 >= abi::xen::DOMID_FIRST_RESERVED {
                1
            } else {
                id + 1
            };
            if slot_of(id).is_none() {
                LAST.store(id, Ordering::Relaxed);
                return Some(id);
            }
        }
    })
}
