//! Event delivery into a domain's shared_info; the console input that
//! raises VIRQ_CONSOLE, and the `console_io` writers waiting for room in
//! COM1's transmit ring.
//!
//! The binding of each port lives in `Domain::events`; its pending and mask
//! bits live in shared_info, which the guest writes concurrently, so every
//! access here is atomic (`SharedPage`). The delivery rules themselves are
//! `hv_core::event_channel::{set_pending, unmask}`, host-tested.

use core::mem::offset_of;
use core::sync::atomic::Ordering::SeqCst;

use abi::event_channel::{VIRQ_CONSOLE, VIRQ_TIMER};
use abi::xen::{DomId, SharedInfo};
use hv_core::event_channel::{self, Binding, EventBits, NR_PORTS, Port};

use crate::arch::serial;
use crate::arch::sync::IrqMutex;
use crate::domain::{self, Domain, MAX_POLL_PORTS, Wait};
use crate::guest::{PENDING_SEL, UPCALL_MASK, UPCALL_PENDING};

const EVTCHN_PENDING: usize = offset_of!(SharedInfo, evtchn_pending);
const EVTCHN_MASK: usize = offset_of!(SharedInfo, evtchn_mask);

/// A domain's event bits: the pending and mask words in its shared_info,
/// the selector and upcall flag in each vCPU's vcpu_info (wherever that is).
struct Bits<'a>(&'a Domain);

impl Bits<'_> {
    fn word(offset: usize, port: Port) -> (usize, u64) {
        (offset + (port as usize / 64) * 8, 1u64 << (port % 64))
    }
}

impl EventBits for Bits<'_> {
    fn test_and_set_pending(&mut self, port: Port) -> bool {
        let (at, bit) = Self::word(EVTCHN_PENDING, port);
        self.0.shared_page().u64(at).fetch_or(bit, SeqCst) & bit != 0
    }
    fn is_pending(&self, port: Port) -> bool {
        let (at, bit) = Self::word(EVTCHN_PENDING, port);
        self.0.shared_page().u64(at).load(SeqCst) & bit != 0
    }
    fn is_masked(&self, port: Port) -> bool {
        let (at, bit) = Self::word(EVTCHN_MASK, port);
        self.0.shared_page().u64(at).load(SeqCst) & bit != 0
    }
    fn test_and_clear_mask(&mut self, port: Port) -> bool {
        let (at, bit) = Self::word(EVTCHN_MASK, port);
        self.0.shared_page().u64(at).fetch_and(!bit, SeqCst) & bit != 0
    }
    fn test_and_set_selector(&mut self, vcpu: u32, word: u32) -> bool {
        let bit = 1u64 << word;
        self.0
            .vcpu_info(vcpu as usize)
            .u64(PENDING_SEL)
            .fetch_or(bit, SeqCst)
            & bit
            != 0
    }
    fn test_and_set_upcall_pending(&mut self, vcpu: u32) -> bool {
        self.0
            .vcpu_info(vcpu as usize)
            .u8(UPCALL_PENDING)
            .swap(1, SeqCst)
            != 0
    }
}

fn in_range(port: Port) -> bool {
    (port as usize) < NR_PORTS
}

/// Marks `port` of domain `d` pending for `vcpu`, and tells the scheduler:
/// a waiting vCPU may be what runs next, and one running on another CPU
/// is interrupted so that it takes the upcall now.
pub fn raise_in(d: &Domain, port: Port, vcpu: u32) {
    if in_range(port) {
        event_channel::set_pending(&mut Bits(d), port, vcpu);
        if (vcpu as usize) < d.vcpus.len() {
            crate::scheduler::notify(d, vcpu as usize);
        }
    }
}

/// Whether vCPU `v` of `d` has an upcall pending.
pub fn upcall_pending_in(d: &Domain, v: usize) -> bool {
    d.vcpu_info(v).u8(UPCALL_PENDING).load(SeqCst) != 0
}

/// Whether `port` of `d` is pending.
pub fn is_pending_in(d: &Domain, port: Port) -> bool {
    in_range(port) && Bits(d).is_pending(port)
}

/// Marks `port` of domain `d` pending for the vCPU the port notifies.
pub fn raise_bound(d: &Domain, port: Port) {
    raise_in(d, port, d.events.notify_vcpu(port));
}

/// Raises `virq` in domain `d` on `vcpu`, if the domain bound it.
pub fn send_virq(d: &Domain, virq: u32, vcpu: u32) {
    if let Some(port) = d.events.virq_port(virq, vcpu) {
        raise_bound(d, port);
    }
}

/// `EVTCHNOP_unmask`: a pending port's upcall goes to its notify vCPU,
/// which is woken (or interrupted on its CPU) like for any new event.
pub fn unmask(port: Port) {
    domain::with_current(|d| {
        let vcpu = d.events.notify_vcpu(port);
        if event_channel::unmask(&mut Bits(d), port, vcpu) && (vcpu as usize) < d.vcpus.len() {
            crate::scheduler::notify(d, vcpu as usize);
        }
    });
}

pub fn is_bound(port: Port) -> bool {
    domain::with_current(|d| d.events.binding(port) != Binding::Free)
}

pub fn is_pending(port: Port) -> bool {
    domain::with_current(|d| is_pending_in(d, port))
}

/// A closed port leaves nothing pending behind (Xen clears it too).
pub fn clear_pending(port: Port) {
    if in_range(port) {
        domain::with_current(|d| {
            let (at, bit) = Bits::word(EVTCHN_PENDING, port);
            d.shared_page().u64(at).fetch_and(!bit, SeqCst);
        });
    }
}

/// Clears the vCPU's upcall mask (what `SCHEDOP_block` does first).
pub fn enable_delivery(vcpu: usize) {
    domain::with_current(|d| d.vcpu_info(vcpu).u8(UPCALL_MASK).store(0, SeqCst));
}

/// Whether the vCPU has an upcall pending.
pub fn upcall_pending(vcpu: usize) -> bool {
    domain::with_current(|d| upcall_pending_in(d, vcpu))
}

/// Tells dom0 that a domain shut down, crashed or finished dying
/// (VIRQ_DOM_EXC); dom0 finds out which with getdomaininfo.
pub fn notify_dom_exc() {
    domain::with(0, |d| send_virq(d, abi::event_channel::VIRQ_DOM_EXC, 0));
}

/// Raises VIRQ_TIMER for `vcpu` of domain `d`.
pub fn timer_fired(d: &Domain, vcpu: u32) {
    send_virq(d, VIRQ_TIMER, vcpu);
}

/// Bytes typed on COM1, waiting for dom0's `console_io` read.
static CONSOLE_INPUT: IrqMutex<heapless::Deque<u8, 1024>> = IrqMutex::new(heapless::Deque::new());

/// The vCPUs (domain, index) waiting for room in COM1's transmit ring,
/// in the order they came.
static CONSOLE_WRITERS: IrqMutex<
    heapless::Vec<(DomId, usize), { domain::MAX_DOMAINS * domain::MAX_VCPUS }>,
> = IrqMutex::new(heapless::Vec::new());

fn queue_input(byte: u8) {
    CONSOLE_INPUT.with(|q| {
        // A full queue drops the newest byte, like a real UART overrun.
        let _ = q.push_back(byte);
    });
}

/// Moves whatever COM1 received into the input queue and tells dom0.
pub fn poll_console_input() {
    let mut got = false;
    serial::drain_input(|byte| {
        queue_input(byte);
        got = true;
    });
    if got {
        domain::with(0, |d| send_virq(d, VIRQ_CONSOLE, 0));
    }
}

/// COM1's interrupt: typed input for dom0, and the transmit ring served;
/// once it has drained enough, the writers waiting for room go on.
pub fn serial_interrupt() {
    let mut got = false;
    let room = serial::transmit_interrupt(|byte| {
        queue_input(byte);
        got = true;
    });
    if got {
        domain::with(0, |d| send_virq(d, VIRQ_CONSOLE, 0));
    }
    if room {
        wake_console_writers();
    }
}

/// The running vCPU's `console_io` write found the transmit ring full:
/// it waits (blocked, so other domains run) until the UART has drained
/// the ring, then re-issues the rest of its write (the caller has set the
/// continuation). Nothing is dropped; the writer goes at the UART's speed.
pub fn wait_for_console_room() {
    let writer = (domain::current_id(), domain::current_vcpu_index());
    // The wait first, then the listing, then a second look at the ring:
    // the UART's interrupt (on another CPU, or before this hypercall
    // began) may have drained the ring and woken the listed writers
    // already, and would not come again for an empty ring.
    // A poll of no ports without a deadline: only the wake below ends it.
    domain::with_current_vcpu(|v| {
        v.wait = Wait::Poll {
            ports: [0; MAX_POLL_PORTS],
            count: 0,
            deadline: None,
        }
    });
    CONSOLE_WRITERS.with(|w| {
        if !w.contains(&writer) {
            // One entry per vCPU: the table has room for all of them.
            let _ = w.push(writer);
        }
    });
    if serial::writers_may_go_on() {
        wake_console_writers();
    }
    crate::scheduler::request();
}

/// Ends the wait of every writer waiting for room, in the order they
/// came: the deadline of its empty poll becomes "now", which the
/// scheduler sees as a wake-up like any other.
fn wake_console_writers() {
    let writers = CONSOLE_WRITERS.with(core::mem::take);
    if writers.is_empty() {
        return;
    }
    for (id, v) in writers {
        // A domain destroyed meanwhile is gone from the table; a vCPU
        // waiting for something else keeps waiting.
        domain::with(id, |d| {
            if let Wait::Poll {
                count: 0,
                deadline: deadline @ None,
                ..
            } = &mut d.vcpus[v].wait
            {
                *deadline = Some(0);
                crate::scheduler::notify(d, v);
            }
        });
    }
}

/// Takes up to `buf.len()` queued input bytes.
pub fn take_console_input(buf: &mut [u8]) -> usize {
    CONSOLE_INPUT.with(|q| {
        let mut n = 0;
        while n < buf.len() {
            match q.pop_front() {
                Some(b) => {
                    buf[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        n
    })
}
