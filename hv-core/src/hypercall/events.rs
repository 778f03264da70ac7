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
use hv_core::event_channel::{Binding, Delivery, EventError};

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
                let own = domain::current_id();
                op.local_port = if is_self(op.remote_dom) {
                    domain::with_current(|d| {
                        match d.events.binding(op.remote_port) {
                            Binding::Unbound { remote } if remote == own => {}
                            _ => return Err(EventError::Invalid),
                        }
                        let local = d.events.bind_interdomain(own, op.remote_port)?;
                        d.events.connect(op.remote_port, own, local);
                        Ok(local)
                    })
                    .map_err(errno)?
                } else {
                    let remote_dom = op.remote_dom;
                    domain::with_two(own, remote_dom, |me, peer| {
                        if peer.state != State::Running {
                            return Err(Errno::Srch);
                        }
                        match peer.events.binding(op.remote_port) {
                            Binding::Unbound { remote } if remote == own => {}
                            _ => return Err(Errno::Inval),
                        }
                        let local = me
                            .events
                            .bind_interdomain(remote_dom, op.remote_port)
                            .map_err(errno)?;
                        peer.events.connect(op.remote_port, own, local);
                        Ok(local)
                    })
                    .ok_or(Errno::Srch)??
                };
                guest::write(arg, &op)?;
                Ok(0)
            }
            EVTCHNOP_CLOSE => {
                let op: PortOp = guest::read(arg)?;
                let own = domain::current_id();
                let binding = domain::with_current(|d| {
                    let binding = d.events.close(op.port)?;
                    if let Binding::Interdomain {
                        remote,
                        remote_port,
                    } = binding
                        && remote == own
                    {
                        d.events.disconnect(remote_port, own, op.port);
                    }
                    Ok(binding)
                })
                .map_err(errno)?;
                if let Binding::Interdomain {
                    remote,
                    remote_port,
                } = binding
                    && remote != own
                {
                    domain::with(remote, |peer| {
                        peer.events.disconnect(remote_port, own, op.port)
                    });
                }
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
