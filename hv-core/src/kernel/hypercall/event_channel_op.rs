//! `event_channel_op`: the 2-level ABI. VIRQs and IPIs, channels within a
//! domain and between domains, send, close, unmask, status. dom0 may
//! allocate an unbound port in another domain (how the toolstack makes a
//! guest's console channel) and ask any domain's port status.

use abi::Errno;
use abi::event_channel::{
    AllocUnbound, BindInterdomain, BindIpi, BindVcpu, BindVirq, EVTCHNOP_ALLOC_UNBOUND,
    EVTCHNOP_BIND_INTERDOMAIN, EVTCHNOP_BIND_IPI, EVTCHNOP_BIND_VCPU, EVTCHNOP_BIND_VIRQ,
    EVTCHNOP_CLOSE, EVTCHNOP_SEND, EVTCHNOP_STATUS, EVTCHNOP_UNMASK, EVTCHNSTAT_CLOSED,
    EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_IPI, EVTCHNSTAT_UNBOUND, EVTCHNSTAT_VIRQ, PortOp, Status,
};
use abi::xen::DomId;
use hv_core::event_channel::{self, Binding, Delivery, EventError, Peer, Port};

use crate::domain::{State, is_self};
use crate::{domain, event_delivery};

super::op_family! {
    /// An `event_channel_op` request.
    EventChannelOp(DomId) {
        EVTCHNOP_BIND_VIRQ => BindVirq(BindVirq), inout => bind_virq;
        EVTCHNOP_BIND_IPI => BindIpi(BindIpi), inout => bind_ipi;
        EVTCHNOP_BIND_VCPU => BindVcpu(BindVcpu), in => bind_vcpu;
        EVTCHNOP_ALLOC_UNBOUND => AllocUnbound(AllocUnbound), inout => alloc_unbound;
        EVTCHNOP_BIND_INTERDOMAIN => BindInterdomain(BindInterdomain), inout => bind_interdomain;
        EVTCHNOP_CLOSE => Close(PortOp), in => close;
        EVTCHNOP_SEND => Send(PortOp), in => send;
        EVTCHNOP_UNMASK => Unmask(PortOp), in => unmask;
        EVTCHNOP_STATUS => Status(Status), inout => status;
    }
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
fn connect(own: DomId, remote_dom: DomId, remote_port: Port) -> Result<Port, Errno> {
    if is_self(remote_dom) {
        return domain::with_current(|d| {
            event_channel::bind_interdomain(&mut d.events, Peer::Loopback, own, own, remote_port)
        })
        .map_err(errno);
    }
    domain::with_two(own, remote_dom, |me, peer| {
        // A domain being destroyed takes no new channels: its teardown
        // closes its ports domain by domain (`lifecycle::close_channels`).
        if peer.state != State::Running || peer.destroying {
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
fn close_port(own: DomId, port: Port) -> Result<Binding, EventError> {
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

fn bind_virq(op: &mut BindVirq, _caller: DomId) -> Result<i64, Errno> {
    op.port = domain::with_current(|d| d.events.bind_virq(op.virq, op.vcpu)).map_err(errno)?;
    Ok(0)
}

fn bind_ipi(op: &mut BindIpi, _caller: DomId) -> Result<i64, Errno> {
    op.port = domain::with_current(|d| d.events.bind_ipi(op.vcpu)).map_err(errno)?;
    Ok(0)
}

/// dom0 may allocate in any domain (`domain::resolve` decides).
fn alloc_unbound(op: &mut AllocUnbound, caller: DomId) -> Result<i64, Errno> {
    let dom = domain::resolve(op.dom)?;
    let remote = if is_self(op.remote_dom) {
        caller
    } else if op.remote_dom < abi::xen::DOMID_FIRST_RESERVED {
        op.remote_dom
    } else {
        return Err(Errno::Inval);
    };
    op.port = domain::with(dom, |d| d.events.alloc_unbound(remote))
        .ok_or(Errno::Srch)?
        .map_err(errno)?;
    Ok(0)
}

fn bind_interdomain(op: &mut BindInterdomain, caller: DomId) -> Result<i64, Errno> {
    op.local_port = connect(caller, op.remote_dom, op.remote_port)?;
    Ok(0)
}

fn close(op: &mut PortOp, caller: DomId) -> Result<i64, Errno> {
    close_port(caller, op.port).map_err(errno)?;
    event_delivery::clear_pending(op.port);
    Ok(0)
}

fn bind_vcpu(op: &mut BindVcpu, _caller: DomId) -> Result<i64, Errno> {
    domain::with_current(|d| d.events.bind_vcpu(op.port, op.vcpu)).map_err(errno)?;
    Ok(0)
}

fn send(op: &mut PortOp, caller: DomId) -> Result<i64, Errno> {
    // A port of the caller's own (an IPI, a loopback channel) is raised
    // under the one lock that looked it up.
    let remote = domain::with_current(|d| {
        Ok(match d.events.send(op.port)? {
            Delivery::Local { port, vcpu } => {
                event_delivery::raise_in(d, port, vcpu);
                None
            }
            Delivery::Remote { dom, port } if dom == d.id => {
                event_delivery::raise_bound(d, port);
                None
            }
            Delivery::Remote { dom, .. } => Some(dom),
            Delivery::Dropped => None,
        })
    })
    .map_err(errno)?;
    if let Some(dom) = remote {
        // Read again with both ends locked: the peer may have closed the
        // channel (and bound its port anew) since the look above, which a
        // close does to both ends under both locks.
        domain::with_two(caller, dom, |me, peer| {
            if let Ok(Delivery::Remote { dom, port }) = me.events.send(op.port)
                && dom == peer.id
                && peer.state == State::Running
            {
                event_delivery::raise_bound(peer, port);
            }
        });
    }
    Ok(0)
}

fn unmask(op: &mut PortOp, _caller: DomId) -> Result<i64, Errno> {
    if op.port as usize >= hv_core::event_channel::NR_PORTS {
        return Err(Errno::Inval);
    }
    event_delivery::unmask(op.port);
    Ok(0)
}

/// Any domain's port for dom0 (`domain::resolve` decides).
fn status(op: &mut Status, _caller: DomId) -> Result<i64, Errno> {
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
    Ok(0)
}
