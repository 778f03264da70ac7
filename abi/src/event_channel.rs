//! Event channels, 2-level ABI (`event_channel.h`): ops and argument structs.

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::xen::DomId;

/// An event-channel port number (`evtchn_port_t`).
pub type Port = u32;

/// Connect to an unbound port another domain allocated for us.
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
/// Bind a virtual IRQ to a new port on a vCPU.
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
/// Bind a physical IRQ to a new port (privileged domains).
pub const EVTCHNOP_BIND_PIRQ: u32 = 2;
/// Close a port; its peer, if any, becomes unbound.
pub const EVTCHNOP_CLOSE: u32 = 3;
/// Send an event to the remote end of a port.
pub const EVTCHNOP_SEND: u32 = 4;
/// Query the state of a port.
pub const EVTCHNOP_STATUS: u32 = 5;
/// Allocate an unbound port that a given remote domain may bind to.
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// Allocate a port for inter-vCPU notification (IPI).
pub const EVTCHNOP_BIND_IPI: u32 = 7;
/// Change the vCPU a port's events are delivered to.
pub const EVTCHNOP_BIND_VCPU: u32 = 8;
/// Unmask a port, delivering an event if one is pending.
pub const EVTCHNOP_UNMASK: u32 = 9;
/// Close all of a domain's ports.
pub const EVTCHNOP_RESET: u32 = 10;
/// FIFO ABI: register a vCPU's control block.
pub const EVTCHNOP_INIT_CONTROL: u32 = 11;
/// FIFO ABI: add a page to the event array.
pub const EVTCHNOP_EXPAND_ARRAY: u32 = 12;
/// FIFO ABI: set a port's priority.
pub const EVTCHNOP_SET_PRIORITY: u32 = 13;
/// Xen-internal (`#ifdef __XEN__`): guests cannot use it.
pub const EVTCHNOP_RESET_CONT: u32 = 14;

/// Virtual IRQs a domain can bind a port to.
pub const VIRQ_TIMER: u32 = 0;
/// Virtual IRQ: a debug request (console `q` key).
pub const VIRQ_DEBUG: u32 = 1;
/// Virtual IRQ: (control domain) bytes received on the emergency console.
pub const VIRQ_CONSOLE: u32 = 2;
/// Virtual IRQ: (control domain) a domain shut down or crashed.
pub const VIRQ_DOM_EXC: u32 = 3;
/// Virtual IRQ: (control domain) the trace buffer is half full.
pub const VIRQ_TBUF: u32 = 4;
/// Virtual IRQ: (control domain) a domain hit a debugger trap.
pub const VIRQ_DEBUGGER: u32 = 6;
/// Virtual IRQ: (control domain) a xenoprof sample is ready.
pub const VIRQ_XENOPROF: u32 = 7;
/// Virtual IRQ: (control domain) the console ring has new data.
pub const VIRQ_CON_RING: u32 = 8;
/// Virtual IRQ: (control domain) a physical CPU changed state.
pub const VIRQ_PCPU_STATE: u32 = 9;
/// Virtual IRQ: (control domain) a memory event is pending.
pub const VIRQ_MEM_EVENT: u32 = 10;
/// Virtual IRQ: Argo has messages ready.
pub const VIRQ_ARGO: u32 = 11;
/// Virtual IRQ: (control domain) Xen is short of free memory.
pub const VIRQ_ENOMEM: u32 = 12;
/// Virtual IRQ: a PMU interrupt (per-vCPU).
pub const VIRQ_XENPMU: u32 = 13;
/// Number of virtual IRQs.
pub const NR_VIRQS: u32 = 24;

/// `EVTCHNOP_status` results.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
/// The port is allocated, waiting for a remote domain to bind.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
/// The port is bound to a port of another domain.
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
/// The port is bound to a physical IRQ.
pub const EVTCHNSTAT_PIRQ: u32 = 3;
/// The port is bound to a virtual IRQ.
pub const EVTCHNSTAT_VIRQ: u32 = 4;
/// The port is bound for inter-vCPU notification.
pub const EVTCHNSTAT_IPI: u32 = 5;

/// Allocates a port in `dom` that `remote_dom` may bind to. OUT: `port`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct AllocUnbound {
    /// IN: the domain to allocate in (`DOMID_SELF`, or another for a
    /// privileged caller).
    pub dom: DomId,
    /// IN: the domain that may bind to the port.
    pub remote_dom: DomId,
    /// OUT: the new port.
    pub port: Port,
}

const _: () = {
    assert!(size_of::<AllocUnbound>() == 8);
    assert!(offset_of!(AllocUnbound, port) == 4);
};

/// Binds to `remote_port` of `remote_dom`. OUT: `local_port`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BindInterdomain {
    /// IN: the domain owning the unbound port.
    pub remote_dom: DomId,
    /// Padding; must be zero.
    pub _pad: u16,
    /// IN: that port (allocated for us with `alloc_unbound`).
    pub remote_port: Port,
    /// OUT: our end.
    pub local_port: Port,
}

const _: () = {
    assert!(size_of::<BindInterdomain>() == 12);
    assert!(offset_of!(BindInterdomain, remote_port) == 4);
    assert!(offset_of!(BindInterdomain, local_port) == 8);
};

/// Binds `virq` on `vcpu`. OUT: `port`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BindVirq {
    /// IN: `VIRQ_*`.
    pub virq: u32,
    /// IN: the vCPU to notify (per-vCPU VIRQs; 0 for global ones).
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: Port,
}

const _: () = {
    assert!(size_of::<BindVirq>() == 12);
};

/// Allocates an inter-vCPU port delivered to `vcpu`. OUT: `port`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BindIpi {
    /// IN: the vCPU to notify.
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: Port,
}

/// `EVTCHNOP_bind_vcpu`: notifications of `port` go to `vcpu` from now
/// on (an interdomain or unbound port, or a global VIRQ).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BindVcpu {
    /// IN: the caller's port.
    pub port: Port,
    /// IN: the vCPU to notify.
    pub vcpu: u32,
}

const _: () = {
    assert!(size_of::<BindVcpu>() == 8);
    assert!(size_of::<BindIpi>() == 8);
};

/// The argument of close, send and unmask.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct PortOp {
    /// IN: the port.
    pub port: Port,
}

const _: () = {
    assert!(size_of::<PortOp>() == 4);
};

/// `EVTCHNOP_status`: IN `dom`, `port`; OUT `status`, `vcpu` and `u`, whose
/// meaning depends on `status` (unbound: remote domid; interdomain: domid
/// then port; pirq/virq: the number).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Status {
    /// IN: the domain to query (`DOMID_SELF`).
    pub dom: DomId,
    /// Padding; must be zero.
    pub _pad: u16,
    /// IN: the port.
    pub port: Port,
    /// OUT: `EVTCHNSTAT_*`.
    pub status: u32,
    /// OUT: the vCPU notified.
    pub vcpu: u32,
    /// OUT: by `status`: unbound, the remote domid; interdomain, domid
    /// then port; pirq/virq, the number.
    pub u: [u32; 2],
}

const _: () = {
    assert!(size_of::<Status>() == 24);
    assert!(offset_of!(Status, port) == 4);
    assert!(offset_of!(Status, status) == 8);
    assert!(offset_of!(Status, vcpu) == 12);
    assert!(offset_of!(Status, u) == 16);
};
