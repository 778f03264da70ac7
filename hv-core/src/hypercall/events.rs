//! `event_channel_op`: the 2-level ABI. VIRQs and IPIs, channels within a
//! domain and between domains, send, close, unmask, status. dom0 may
//! allocate an unbound port in another domain (how the toolstack makes a
//! guest's console channel) and ask any domain's port status.

use abi::Errno;
use abi::event_channel::{
    AllocUnbound, BindInterdomain, BindIpi, BindVirq, EVTCHNOP_ALLOC_UNBOUND,
    EVTCHNOP_BIND_INTERDOMAIN, EVTCHNOP_BIND_IPI, EVTCHNOP_BIND_VIRQ, EVTCHNOP_CLOSE,
    EVTCHNOP_SEND, EVTCHNOP_STATUS, EVTCHNOP_UNMASK, EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN,
    EVTCHNSTAT_IPI, EVTCHNSTAT_UNBOUND, EVTCHNSTAT_VIRQ, PortOp, Status,
};
use abi::xen::DomId;
use hv_core::event_channel::{self, Binding, Delivery, EventError, Peer, Port};

use crate::domain::{State, is_self};
use crate::{domain, events, guest};

#[derive(Clone, Copy, Debug)]
pub struct EventChannelOp {
    pub cmd: u32,
    pub arg: u64,
}

fn errno(e: EventError) -> Errno {
    match e {
        EventError::Invalid => Errno::Inval,
        EventError::Exists => Errno::Exist,
        EventError::NoSpace => Errno::NoSpc,
        EventError::NoVcpu => Errno::NoEnt,
    }
}

/// `EVTCHNOP_bind_interdomain` of `remote_dom`'s `remote_port` (the
/// caller's own for a loopback channel; another domain must be running).
fn bind_interdomain(remote_dom: DomId, remote_port: Port) -> Result<Port, Errno> {
    let own = domain::current_id();
    if is_self(remote_dom) {
        return domain::with_current(|d| {
            event_channel::bind_interdomain(&mut d.events, Peer::Loopback, own, own, remote_port)
        })
        .map_err(errno);
    }
    domain::with_two(own, remote_dom, |me, peer| {
        if peer.state != State::Running {
            return Err(Errno::Srch);
        }
        let peer = Peer::Other(&mut peer.events);
        event_channel::bind_interdomain(&mut me.events, peer, own, remote_dom, remote_port)
            .map_err(errno)
    })
    .ok_or(Errno::Srch)?
}

/// `EVTCHNOP_close` of the caller's `port`, with the other end of an
/// interdomain channel in the same step.
fn close(port: Port) -> Result<Binding, EventError> {
    let own = domain::current_id();
    let remote = match domain::with_current(|d| d.events.binding(port)) {
        Binding::Interdomain { remote, .. } if remote != own => Some(remote),
        _ => None,
    };
    let in_two = remote.and_then(|remote| {
        domain::with_two(own, remote, |me, peer| {
            event_channel::close(&mut me.events, Peer::Other(&mut peer.events), own, port)
        })
    });
    if let Some(closed) = in_two {
        return closed;
    }
    let peer = if remote.is_some() {
        Peer::Gone
    } else {
        Peer::Loopback
    };
    domain::with_current(|d| event_channel::close(&mut d.events, peer, own, port))
}

impl EventChannelOp {
    pub fn handle(self) -> Result<i64, Errno> {
        let arg = self.arg;
        match self.cmd {
            EVTCHNOP_BIND_VIRQ => {
                let mut op: BindVirq = guest::read(arg)?;
                op.port = domain::with_current(|d| d.events.bind_virq(op.virq, op.vcpu))
                    .map_err(errno)?;
                guest::write(arg, &op)?;
                Ok(0)
            }
            EVTCHNOP_BIND_IPI => {
                let mut op: BindIpi = guest::read(arg)?;
                op.port = domain::with_current(|d| d.events.bind_ipi(op.vcpu)).map_err(errno)?;
                guest::write(arg, &op)?;
                Ok(0)
            }
            EVTCHNOP_ALLOC_UNBOUND => {
                let mut op: AllocUnbound = guest::read(arg)?;
                let dom = domain::resolve(op.dom)?;
                let remote = if is_self(op.remote_dom) {
                    domain::current_id()
                } else if op.remote_dom < abi::xen::DOMID_FIRST_RESERVED {
                    op.remote_dom
                } else {
                    return Err(Errno::Inval);
                };
                op.port = domain::with(dom, |d| d.events.alloc_unbound(remote))
                    .ok_or(Errno::Srch)?
                    .map_err(errno)?;
                guest::write(arg, &op)?;
                Ok(0)
            }
            EVTCHNOP_BIND_INTERDOMAIN => {
                let mut op: BindInterdomain = guest::read(arg)?;
                op.local_port = bind_interdomain(op.remote_dom, op.remote_port)?;
                guest::write(arg, &op)?;
                Ok(0)
            }
            EVTCHNOP_CLOSE => {
                let op: PortOp = guest::read(arg)?;
                close(op.port).map_err(errno)?;
                events::clear_pending(op.port);
                Ok(0)
            }
            EVTCHNOP_SEND => {
                let op: PortOp = guest::read(arg)?;
                let delivery = domain::with_current(|d| d.events.send(op.port)).map_err(errno)?;
                match delivery {
                    Delivery::Local { port, vcpu } => events::raise(port, vcpu),
                    Delivery::Remote { dom, port } if is_self(dom) => {
                        let vcpu = domain::with_current(|d| d.events.notify_vcpu(port));
                        events::raise(port, vcpu);
                    }
                    Delivery::Remote { dom, port } => {
                        domain::with(dom, |peer| {
                            if peer.state == State::Running {
                                let vcpu = peer.events.notify_vcpu(port);
                                events::raise_in(peer, port, vcpu);
                            }
                        });
                    }
                    Delivery::Dropped => {}
                }
                Ok(0)
            }
            EVTCHNOP_UNMASK => {
                let op: PortOp = guest::read(arg)?;
                if op.port as usize >= hv_core::event_channel::NR_PORTS {
                    return Err(Errno::Inval);
                }
                events::unmask(op.port);
                Ok(0)
            }
            EVTCHNOP_STATUS => {
                let mut op: Status = guest::read(arg)?;
                let dom = domain::resolve(op.dom)?;
                if op.port as usize >= hv_core::event_channel::NR_PORTS {
                    return Err(Errno::Inval);
                }
                let (binding, vcpu) = domain::with(dom, |d| {
                    (d.events.binding(op.port), d.events.notify_vcpu(op.port))
                })
                .ok_or(Errno::Srch)?;
                op.vcpu = vcpu;
                op.u = [0, 0];
                op.status = match binding {
                    Binding::Free => EVTCHNSTAT_CLOSED,
                    Binding::Unbound { remote } => {
                        op.u[0] = remote as u32;
                        EVTCHNSTAT_UNBOUND
                    }
                    Binding::Interdomain {
                        remote,
                        remote_port,
                    } => {
                        op.u = [remote as u32, remote_port];
                        EVTCHNSTAT_INTERDOMAIN
                    }
                    Binding::Virq { virq, .. } => {
                        op.u[0] = virq;
                        EVTCHNSTAT_VIRQ
                    }
                    Binding::Ipi { .. } => EVTCHNSTAT_IPI,
                };
                guest::write(arg, &op)?;
                Ok(0)
            }
            _ => Err(Errno::NoSys),
        }
    }
}
