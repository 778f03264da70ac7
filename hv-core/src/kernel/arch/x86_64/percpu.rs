//! Per-CPU state: each CPU's [`PerCpu`] block, found through GS, and its
//! area in the hypervisor hole (`hv_core::layout::percpu`): the GDT window,
//! the TSS and the stacks.
//!
//! While hv-core runs, `IA32_GS_BASE` holds the running CPU's block and
//! `IA32_KERNEL_GS_BASE` the guest's GS base; while a guest runs the two
//! are the other way round. Every entry from ring 3 swaps them
//! (`swapgs`) and every return to ring 3 swaps them back (see `entry.rs`
//! and the syscall entry in `pv.rs`), so hv-core code always finds its
//! block at `gs:0`, except in the few instructions around each swap: an
//! NMI, machine check or double fault can land there, so those handlers
//! (the IST vectors) never use GS and name the CPU by its APIC id
//! ([`index_of_apic`]).

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use hv_core::layout::{MAX_CPUS, percpu as area};
use x86_64::registers::model_specific::Msr;

use super::paging;

/// One CPU's block. The first fields are reached from the entry assembly
/// at fixed offsets ([`GS_SCRATCH`], [`GS_ENTRY_RSP0`]).
#[repr(C, align(64))]
pub struct PerCpu {
    /// This block's own address: `gs:0`, how [`current`] finds it.
    this: AtomicU64,
    /// The syscall entry's slot for the guest's RSP while it switches
    /// stacks.
    scratch: AtomicU64,
    /// The top of this CPU's guest-entry stack.
    entry_rsp0: AtomicU64,
    apic_id: AtomicU32,
    /// Up and running hv-core (set by the CPU itself).
    online: AtomicBool,
    index: AtomicU32,
    /// The scheduler's state for this CPU (`scheduler`).
    pub sched: crate::scheduler::CpuState,
    /// The hypercall running on this CPU (`hypercall`).
    pub call: crate::hypercall::CallState,
    /// TLB flushes other CPUs asked of this one, counted (each asker
    /// waits for its own number in `flush_done`): this CPU's TLB must be
    /// flushed before it runs guest code again or the asker goes on (see
    /// [`crate::memory`]'s flush rule).
    flush_requests: AtomicU64,
    /// The requests this CPU's last completed flush answered (all those
    /// counted before it began): a request made while a flush is under
    /// way is answered by the next one, not by that one.
    flush_done: AtomicU64,
    /// While this CPU holds a vCPU: its guest mode (kernel or user) and
    /// the machine address of its vcpu_info (0 when it holds none). Kept by the
    /// scheduler when it loads and gives back a vCPU, and by the mode
    /// switch, so a hypercall's entry and exit read them without the
    /// domain's lock.
    guest_kernel_mode: AtomicBool,
    /// The domain whose page tables are in this CPU's CR3 (its id + 1; 0:
    /// hv-core's own): the only domain whose translations its TLB may
    /// hold, guest entries never being global. Set before the CR3 write
    /// that loads a domain's root, so a CPU that flushes for a domain
    /// after changing its tables reaches every CPU that may cache them
    /// (Xen's dirty-CPU mask, kept per CPU).
    root_domain: AtomicU32,
    guest_vcpu_info: AtomicU64,
    /// The held vCPU's event callback (see `set_guest`): an upcall to a
    /// vCPU in guest kernel mode is bounced without its domain's lock.
    guest_event_callback: AtomicU64,
}

/// `gs:` offsets the entry assembly uses.
pub const GS_SCRATCH: usize = core::mem::offset_of!(PerCpu, scratch);
pub const GS_ENTRY_RSP0: usize = core::mem::offset_of!(PerCpu, entry_rsp0);
const _: () = assert!(core::mem::offset_of!(PerCpu, this) == 0);

impl PerCpu {
    const fn new() -> Self {
        Self {
            this: AtomicU64::new(0),
            scratch: AtomicU64::new(0),
            entry_rsp0: AtomicU64::new(0),
            apic_id: AtomicU32::new(u32::MAX),
            online: AtomicBool::new(false),
            index: AtomicU32::new(0),
            sched: crate::scheduler::CpuState::new(),
            call: crate::hypercall::CallState::new(),
            flush_requests: AtomicU64::new(0),
            flush_done: AtomicU64::new(0),
            guest_kernel_mode: AtomicBool::new(false),
            root_domain: AtomicU32::new(0),
            guest_vcpu_info: AtomicU64::new(0),
            guest_event_callback: AtomicU64::new(0),
        }
    }

    /// The held vCPU's guest mode: kernel (else user).
    pub fn guest_kernel_mode(&self) -> bool {
        self.guest_kernel_mode.load(Ordering::Relaxed)
    }

    pub fn set_guest_kernel_mode(&self, kernel: bool) {
        self.guest_kernel_mode.store(kernel, Ordering::Relaxed);
    }

    /// The held vCPU's vcpu_info, by machine address (0: no vCPU held).
    #[inline(always)]
    pub fn guest_vcpu_info(&self) -> u64 {
        self.guest_vcpu_info.load(Ordering::Relaxed)
    }

    /// The held vCPU's event callback (0: none registered, or no vCPU
    /// held).
    #[inline(always)]
    pub fn guest_event_callback(&self) -> u64 {
        self.guest_event_callback.load(Ordering::Relaxed)
    }

    /// The held vCPU registered `address` as its event callback.
    pub fn set_guest_event_callback(&self, address: u64) {
        self.guest_event_callback.store(address, Ordering::Relaxed);
    }

    /// What this CPU now holds: a vCPU in `kernel` mode whose vcpu_info
    /// is at machine address `vcpu_info` and whose event callback is
    /// `event_callback`, or (0) nothing.
    pub fn set_guest(&self, kernel: bool, vcpu_info: u64, event_callback: u64) {
        self.guest_kernel_mode.store(kernel, Ordering::Relaxed);
        self.guest_vcpu_info.store(vcpu_info, Ordering::Relaxed);
        self.guest_event_callback
            .store(event_callback, Ordering::Relaxed);
    }

    /// Records whose page tables this CPU is about to load (`None`:
    /// hv-core's own), before the CR3 write.
    pub fn set_root_domain(&self, dom: Option<u16>) {
        self.root_domain
            .store(dom.map_or(0, |d| u32::from(d) + 1), Ordering::SeqCst);
    }

    /// This CPU's number (0 is the boot CPU).
    pub fn index(&self) -> usize {
        self.index.load(Ordering::Relaxed) as usize
    }

    pub fn apic_id(&self) -> u32 {
        self.apic_id.load(Ordering::Relaxed)
    }

    /// The top of this CPU's guest-entry stack: where every entry from a
    /// guest lands.
    pub fn guest_entry_top(&self) -> u64 {
        self.entry_rsp0.load(Ordering::Relaxed)
    }
}

static CPUS: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];
/// CPUs that have come up, the boot CPU included.
static ONLINE: AtomicUsize = AtomicUsize::new(0);

const MSR_GS_BASE: u32 = 0xc000_0101;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;

/// The running CPU's block.
///
/// Not for the IST handlers (NMI, machine check, double fault): they may
/// interrupt an entry before its `swapgs`, when GS is still the guest's.
#[inline(always)]
pub fn current() -> &'static PerCpu {
    let this: u64;
    // SAFETY: reads one word at gs:0. Outside the IST handlers hv-core
    // runs only with GS at a CPU's block (see the module comment; each CPU
    // sets it in `activate` before anything can enter from a guest), whose
    // first word is the block's own address.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) this, options(nostack, readonly, preserves_flags));
    }
    // SAFETY: `this` is the address of an element of `CPUS`, a static,
    // written only by `activate`.
    unsafe { &*(this as *const PerCpu) }
}

/// Fills in CPU number `cpu`'s block (on the boot CPU, before that CPU
/// starts): its APIC id and stacks.
pub fn prepare(cpu: usize, apic_id: u32) {
    let block = &CPUS[cpu];
    block
        .this
        .store(block as *const PerCpu as u64, Ordering::Relaxed);
    block.apic_id.store(apic_id, Ordering::Relaxed);
    block.index.store(cpu as u32, Ordering::Relaxed);
    block.entry_rsp0.store(
        area::area(cpu) + area::stack_top(area::Stack::GuestEntry),
        Ordering::Release,
    );
}

/// Makes the running CPU CPU number `cpu` ([`prepare`]d): its block goes
/// into GS (and the guest's GS base, for now, is 0).
pub fn activate(cpu: usize) {
    let block = &CPUS[cpu];
    debug_assert_eq!(
        block.this.load(Ordering::Acquire),
        block as *const PerCpu as u64
    );
    // SAFETY: the two MSRs exist on every x86-64 CPU; hv-core's code reads
    // GS only through `current` (and the entry assembly), which want
    // exactly this block in GS_BASE; the guest's base is loaded into
    // KERNEL_GS_BASE before any guest runs on this CPU.
    unsafe {
        Msr::new(MSR_GS_BASE).write(block as *const PerCpu as u64);
        Msr::new(MSR_KERNEL_GS_BASE).write(0);
    }
}

/// Records that this CPU is up.
pub fn set_online() {
    let me = current();
    if !me.online.swap(true, Ordering::Release) {
        ONLINE.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether CPU `cpu` has come up.
pub fn is_online(cpu: usize) -> bool {
    CPUS.get(cpu)
        .is_some_and(|c| c.online.load(Ordering::Acquire))
}

/// CPUs up, the boot CPU included.
pub fn online_count() -> usize {
    ONLINE.load(Ordering::Relaxed)
}

/// The blocks of every CPU that is up, in CPU-number order.
pub fn online_cpus() -> impl Iterator<Item = &'static PerCpu> {
    CPUS.iter().take_while(|c| c.online.load(Ordering::Acquire))
}

/// The CPUs that are up, bit n for CPU n.
pub fn online_mask() -> hv_core::cpus::CpuMask {
    online_cpus().fold(0, |mask, cpu| mask | 1 << cpu.index())
}

/// CPU `cpu`'s block.
pub fn cpu(cpu: usize) -> &'static PerCpu {
    &CPUS[cpu]
}

/// The vector of the one inter-processor interrupt: its handler flushes
/// the TLB if asked ([`flush_other_cpus`]) and the interrupted code (a guest,
/// or the idle loop) goes through the scheduler on the way back, so it
/// also serves as the reschedule and event kick.
pub const IPI_VECTOR: u8 = 0xf1;

/// Interrupts `cpu` (see [`IPI_VECTOR`]).
pub fn kick(cpu: &PerCpu) {
    super::lapic::send_fixed(cpu.apic_id(), IPI_VECTOR);
}

/// Has every other CPU that is up flush its TLB, and waits until each
/// has: afterwards no CPU holds a translation made before the call.
/// While waiting it answers the others' requests, as every spinning CPU
/// does ([`serve_flush`]), so two CPUs flushing at once do not wait on
/// each other.
pub fn flush_other_cpus() {
    flush_cpus_where(|_| true);
}

/// [`flush_other_cpus`] for the CPUs that have domain `dom`'s page
/// tables loaded, the only ones whose TLBs may hold its translations: a
/// guest's own `*_ALL`/`*_MULTI` flush requests (a CPU that loads its
/// tables later flushes by loading them).
pub fn flush_cpus_of(dom: u16) {
    let mark = u32::from(dom) + 1;
    flush_cpus_where(|cpu| cpu.root_domain.load(Ordering::SeqCst) == mark);
}

/// Asks every other CPU that is up and `chosen` to flush its TLB, and
/// waits until each has (a flush that began after the request).
fn flush_cpus_where(chosen: impl Fn(&PerCpu) -> bool) {
    if online_count() == 1 {
        return;
    }
    let me = current().index();
    let mut tickets = [0u64; MAX_CPUS];
    for cpu in online_cpus().filter(|c| c.index() != me && chosen(c)) {
        tickets[cpu.index()] = cpu.flush_requests.fetch_add(1, Ordering::SeqCst) + 1;
        kick(cpu);
    }
    for cpu in online_cpus().filter(|c| tickets[c.index()] != 0) {
        while cpu.flush_done.load(Ordering::Acquire) < tickets[cpu.index()] {
            serve_flush();
            core::hint::spin_loop();
        }
    }
}

/// Flushes this CPU's TLB if another CPU asked it to. Every spin loop in
/// hv-core calls it (`sync::IrqMutex`), and so does the IPI handler: a
/// CPU waiting with interrupts off still answers.
pub fn serve_flush() {
    // GS may not be hv-core's in an IST handler; this is never called
    // from one.
    let me = current();
    let requests = me.flush_requests.load(Ordering::SeqCst);
    if me.flush_done.load(Ordering::Relaxed) < requests {
        super::pv::flush_tlb_local();
        me.flush_done.fetch_max(requests, Ordering::Release);
    }
}

/// The number of the CPU with APIC id `apic_id`, without GS: for the
/// reports of the IST handlers (and of any fatal error).
pub fn index_of_apic(apic_id: u32) -> Option<usize> {
    CPUS.iter().position(|c| c.apic_id() == apic_id)
}

/// A CPU area could not be built: memory ran out.
#[derive(Debug)]
pub struct NoMemory;

/// The frame every CPU's GDT window maps over the guest's 14 null pages.
static ZERO_FRAME: AtomicU64 = AtomicU64::new(0);

/// Maps CPU `cpu`'s area: its GDT window (the shared zero frame 14
/// times, read-only, then the CPU's own page) and each stack, every guard
/// page left unmapped. Run on the boot CPU, before the CPU starts.
pub fn map_area(cpu: usize) -> Result<(), NoMemory> {
    let base = area::area(cpu);
    let zero = match ZERO_FRAME.load(Ordering::Relaxed) {
        0 => {
            let frame = crate::memory::alloc_frame().ok_or(NoMemory)?;
            ZERO_FRAME.store(frame, Ordering::Relaxed);
            frame
        }
        frame => frame,
    };
    for page in 0..area::GDT_PAGES - 1 {
        paging::map_data_page(base + page * 4096, zero, false);
    }
    let own = crate::memory::alloc_frame().ok_or(NoMemory)?;
    paging::map_data_page(base + area::GDT_OWN_PAGE, own, true);
    for (stack, pages) in area::STACKS {
        let bottom = base + area::stack_bottom(stack);
        for page in 0..pages {
            let frame = crate::memory::alloc_frame().ok_or(NoMemory)?;
            paging::map_data_page(bottom + page * 4096, frame, true);
        }
    }
    Ok(())
}

/// Where CPU `cpu`'s GDT window starts.
pub fn gdt_base(cpu: usize) -> u64 {
    area::area(cpu)
}

/// Where CPU `cpu`'s TSS lies (in the GDT's own page, past its limit).
pub fn tss_address(cpu: usize) -> u64 {
    area::area(cpu) + area::GDT_OWN_PAGE + area::TSS_OFFSET_IN_PAGE
}

/// The top of CPU `cpu`'s `stack`.
pub fn stack_top(cpu: usize, stack: area::Stack) -> u64 {
    area::area(cpu) + area::stack_top(stack)
}
