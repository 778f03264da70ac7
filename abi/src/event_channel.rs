//! Event channels, 2-level ABI (`event_channel.h`): ops and argument structs.

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::xen::DomId;

pub type Port = u32;

pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
pub const EVTCHNOP_BIND_PIRQ: u32 = 2;
pub const EVTCHNOP_CLOSE: u32 = 3;
pub const EVTCHNOP_SEND: u32 = 4;
pub const EVTCHNOP_STATUS: u32 = 5;
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
pub const EVTCHNOP_BIND_IPI: u32 = 7;
pub const EVTCHNOP_BIND_VCPU: u32 = 8;
pub const EVTCHNOP_UNMASK: u32 = 9;
pub const EVTCHNOP_RESET: u32 = 10;
pub const EVTCHNOP_INIT_CONTROL: u32 = 11;
pub const EVTCHNOP_EXPAND_ARRAY: u32 = 12;
pub const EVTCHNOP_SET_PRIORITY: u32 = 13;
/// Xen-internal (`#ifdef __XEN__`): guests cannot use it.
pub const EVTCHNOP_RESET_CONT: u32 = 14;

/// Virtual IRQs a domain can bind a port to.
pub const VIRQ_TIMER: u32 = 0;
pub const VIRQ_DEBUG: u32 = 1;
pub const VIRQ_CONSOLE: u32 = 2;
pub const VIRQ_DOM_EXC: u32 = 3;
pub const VIRQ_TBUF: u32 = 4;
pub const VIRQ_DEBUGGER: u32 = 6;
pub const VIRQ_XENOPROF: u32 = 7;
pub const VIRQ_CON_RING: u32 = 8;
pub const VIRQ_PCPU_STATE: u32 = 9;
pub const VIRQ_MEM_EVENT: u32 = 10;
pub const VIRQ_ARGO: u32 = 11;
pub const VIRQ_ENOMEM: u32 = 12;
pub const VIRQ_XENPMU: u32 = 13;
pub const NR_VIRQS: u32 = 24;

/// `EVTCHNOP_status` results.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
pub const EVTCHNSTAT_PIRQ: u32 = 3;
pub const EVTCHNSTAT_VIRQ: u32 = 4;
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

const _: () = {
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
