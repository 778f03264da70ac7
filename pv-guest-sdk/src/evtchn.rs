//! Event channels between domains: allocate, bind, notify, wait, close.
//!
//! A channel has a port at each end. One side allocates an unbound port
//! that a named domain may connect to ([`alloc_unbound`]) and passes its
//! number on (through a shared page, the store, or the command line); the
//! other side connects to it ([`bind_interdomain`]). From then on
//! [`notify`] on either port marks the other pending and upcalls its
//! domain. Every port this module creates is unmasked, so its events reach
//! the upcall, which runs the port's handler ([`listen`]) and marks the
//! port fired for [`wait`].
//!
//! Waiting follows the PV `sti; hlt` rule: the check is made with upcalls
//! masked and `SCHEDOP_block` unmasks and blocks in one step, returning at
//! once if an event is already pending, so an event arriving between the
//! check and the block is never lost ([`crate::events::wait_until`]).

use abi::event_channel::{
    EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_IPI, EVTCHNSTAT_PIRQ, EVTCHNSTAT_UNBOUND,
    EVTCHNSTAT_VIRQ, Port, Status,
};
use abi::xen::DomId;

/// What a port is connected to (`EVTCHNOP_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortState {
    /// Not in use (`EVTCHNSTAT_closed`).
    Closed,
    /// Allocated; `remote` may bind to it.
    Unbound {
        /// The domain allowed to bind.
        remote: DomId,
    },
    /// Connected to `remote_port` of `remote`.
    Interdomain {
        /// The domain at the other end.
        remote: DomId,
        /// Its port.
        remote_port: Port,
    },
    /// Bound to physical IRQ `pirq` (`EVTCHNSTAT_pirq`).
    Pirq(u32),
    /// Bound to virtual IRQ `virq` (`EVTCHNSTAT_virq`).
    Virq(u32),
    /// An inter-processor channel between this domain's vCPUs (`EVTCHNSTAT_ipi`).
    Ipi,
    /// A status the ABI does not name.
    Unknown(u32),
}

/// A port's state and the vCPU its events are delivered to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortStatus {
    /// What the port is connected to.
    pub state: PortState,
    /// The vCPU that takes the port's upcalls.
    pub vcpu: u32,
}

impl PortStatus {
    /// Reads the hypervisor's answer (`u` means what `status` says).
    pub fn from_raw(raw: &Status) -> Self {
        let state = match raw.status {
            EVTCHNSTAT_CLOSED => PortState::Closed,
            EVTCHNSTAT_UNBOUND => PortState::Unbound {
                remote: raw.u[0] as DomId,
            },
            EVTCHNSTAT_INTERDOMAIN => PortState::Interdomain {
                remote: raw.u[0] as DomId,
                remote_port: raw.u[1],
            },
            EVTCHNSTAT_PIRQ => PortState::Pirq(raw.u[0]),
            EVTCHNSTAT_VIRQ => PortState::Virq(raw.u[0]),
            EVTCHNSTAT_IPI => PortState::Ipi,
            other => PortState::Unknown(other),
        };
        Self {
            state,
            vcpu: raw.vcpu,
        }
    }
}

#[cfg(target_os = "none")]
pub use self::target::*;

#[cfg(target_os = "none")]
mod target {
    use core::sync::atomic::{AtomicU32, Ordering};

    use abi::event_channel::Port;
    use abi::xen::{DOMID_SELF, DomId};

    use super::{PortState, PortStatus};
    use crate::events::{self, FIRED, Handler};
    use crate::{Error, Result, hypercall, time};

    pub use crate::events::bind_virq;

    /// Allocates a port that domain `remote` may connect to, unmasked.
    pub fn alloc_unbound(remote: DomId) -> Result<Port> {
        let port = hypercall::evtchn_alloc_unbound(remote)?;
        opened(port)
    }

    /// Connects a new local port to `remote_port` of domain `remote` (an
    /// unbound port that domain allocated for us), unmasked.
    pub fn bind_interdomain(remote: DomId, remote_port: Port) -> Result<Port> {
        let port = hypercall::evtchn_bind_interdomain(remote, remote_port)?;
        opened(port)
    }

    fn opened(port: Port) -> Result<Port> {
        FIRED.take(port);
        events::unmask(port)?;
        Ok(port)
    }

    /// Runs `handler` (in the upcall, events masked) each time `port`
    /// fires. Handlers must not block or use `mm`.
    pub fn listen(port: Port, handler: Handler) {
        events::set_handler(port, handler);
    }

    /// Signals the other end of `port` (`EVTCHNOP_send`).
    pub fn notify(port: Port) -> Result<()> {
        hypercall::evtchn_send(port)
    }

    /// Closes `port`: its handler goes, and the other end of an
    /// interdomain channel becomes unbound.
    pub fn close(port: Port) -> Result<()> {
        events::clear_handler(port);
        hypercall::evtchn_close(port)?;
        FIRED.take(port);
        Ok(())
    }

    /// What `port` is connected to.
    pub fn status(port: Port) -> Result<PortStatus> {
        hypercall::evtchn_status(DOMID_SELF, port).map(|raw| PortStatus::from_raw(&raw))
    }

    /// Whether `port` fired since the last [`wait`] or `take_fired`;
    /// clears the mark.
    pub fn take_fired(port: Port) -> bool {
        FIRED.take(port)
    }

    /// Blocks until `port` fires (or returns at once if it fired since the
    /// last wait). Other ports' handlers run meanwhile.
    pub fn wait(port: Port) {
        events::wait_until(|| FIRED.take(port));
    }

    /// As [`wait`], giving up after `timeout_ns`; returns whether the port
    /// fired. Uses the vCPU's one-shot timer (replacing any deadline set).
    pub fn wait_timeout(port: Port, timeout_ns: u64) -> Result<bool> {
        time::timer_port()?;
        let deadline = time::now_ns().saturating_add(timeout_ns);
        hypercall::set_timer_op(deadline)?;
        let mut fired = false;
        events::wait_until(|| {
            fired = FIRED.take(port);
            fired || time::now_ns() >= deadline
        });
        Ok(fired)
    }

    static OWN_DOMID: AtomicU32 = AtomicU32::new(u32::MAX);

    /// This domain's id. PV guests are not told it at start of day; as Xen
    /// guests may, the SDK allocates a loopback port (`remote_dom` =
    /// `DOMID_SELF`, which the hypervisor records as the caller's own id),
    /// reads that id back with `EVTCHNOP_status` and closes the port.
    pub fn own_domid() -> Result<DomId> {
        let known = OWN_DOMID.load(Ordering::Relaxed);
        if known != u32::MAX {
            return Ok(known as DomId);
        }
        let port = hypercall::evtchn_alloc_unbound(DOMID_SELF)?;
        let status = status(port);
        let _ = hypercall::evtchn_close(port);
        match status?.state {
            PortState::Unbound { remote } if remote != DOMID_SELF => {
                OWN_DOMID.store(remote as u32, Ordering::Relaxed);
                Ok(remote)
            }
            // The hypervisor kept DOMID_SELF: it does not tell.
            _ => Err(Error::Hypervisor(abi::Errno::NoSys)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(status: u32, u: [u32; 2]) -> Status {
        Status {
            status,
            vcpu: 2,
            u,
            ..Default::default()
        }
    }

    #[test]
    fn status_decodes_each_kind() {
        assert_eq!(
            PortStatus::from_raw(&raw(EVTCHNSTAT_UNBOUND, [7, 0])),
            PortStatus {
                state: PortState::Unbound { remote: 7 },
                vcpu: 2
            }
        );
        assert_eq!(
            PortStatus::from_raw(&raw(EVTCHNSTAT_INTERDOMAIN, [3, 41])).state,
            PortState::Interdomain {
                remote: 3,
                remote_port: 41
            }
        );
        assert_eq!(
            PortStatus::from_raw(&raw(EVTCHNSTAT_VIRQ, [2, 0])).state,
            PortState::Virq(2)
        );
        assert_eq!(
            PortStatus::from_raw(&raw(EVTCHNSTAT_PIRQ, [9, 0])).state,
            PortState::Pirq(9)
        );
        assert_eq!(
            PortStatus::from_raw(&raw(EVTCHNSTAT_CLOSED, [5, 5])).state,
            PortState::Closed
        );
        assert_eq!(
            PortStatus::from_raw(&raw(EVTCHNSTAT_IPI, [0, 0])).state,
            PortState::Ipi
        );
        assert_eq!(
            PortStatus::from_raw(&raw(77, [0, 0])).state,
            PortState::Unknown(77)
        );
    }
}
