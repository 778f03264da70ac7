//! Event channels, Xen's 2-level ABI: the per-domain port table and the
//! rules for marking a port pending.
//!
//! A port's *binding* (what it is connected to) lives here, in hypervisor
//! memory. Its *pending* and *mask* bits live in the domain's shared_info
//! page and the selector and upcall flag in its vcpu_info, where the guest
//! reads and clears them; [`EventBits`] abstracts that memory so the
//! delivery rules are host-tested.
//!
//! Channels between two domains (Xen's `evtchn_bind_interdomain` and
//! `evtchn_close`) change both domains' tables in one step: [`bind_interdomain`]
//! and [`close`] take the local table and the [`Peer`] (the same table for
//! a loopback channel), so a bound channel's two ends always name each
//! other, and closing one end leaves the other unbound, waiting for the
//! closer again.
//!
//! Delivery rules (Xen's `evtchn_2l_set_pending` and `_unmask`): a port
//! raises an upcall only on the 0->1 edge of its pending bit while
//! unmasked; the selector bit and the upcall flag are set only on their own
//! 0->1 edges. Unmasking a pending port replays the edge the mask hid.

use core::fmt;

use abi::event_channel as xen;

/// A port number (Xen's `evtchn_port_t`).
pub use abi::event_channel::Port;
/// Ports each domain can have (the 2-level ABI allows 4096; hv-core keeps
/// tables small and fixed-size).
pub const NR_PORTS: usize = 1024;
/// Virtual IRQs, Xen's `NR_VIRQS`.
pub const NR_VIRQS: usize = xen::NR_VIRQS as usize;
/// vCPUs per domain whose VIRQs and IPIs this table tracks.
pub const MAX_VCPUS: usize = 8;

/// VIRQs bound per vCPU rather than per domain (Xen's `virq_is_global` is
/// false for exactly these).
pub const fn virq_is_per_vcpu(virq: u32) -> bool {
    matches!(
        virq,
        xen::VIRQ_TIMER
            | xen::VIRQ_DEBUG
            | xen::VIRQ_DEBUGGER
            | xen::VIRQ_XENOPROF
            | xen::VIRQ_XENPMU
    )
}

/// What a port is connected to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Binding {
    #[default]
    Free,
    /// Waiting for `remote` to bind to it.
    Unbound {
        remote: u16,
    },
    Interdomain {
        remote: u16,
        remote_port: Port,
    },
    Virq {
        virq: u32,
        vcpu: u32,
    },
    Ipi {
        vcpu: u32,
    },
}

/// Why an event-channel operation was refused; maps onto Xen's errnos.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventError {
    /// Out of range, not bound, or the wrong kind of port (`-EINVAL`).
    Invalid,
    /// The VIRQ is already bound (`-EEXIST`).
    Exists,
    /// No free port (`-ENOSPC`).
    NoSpace,
    /// No such vCPU (`-ENOENT`).
    NoVcpu,
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Invalid => "invalid port or binding",
            Self::Exists => "already bound",
            Self::NoSpace => "no free port",
            Self::NoVcpu => "no such vCPU",
        })
    }
}

/// Where sending on a port delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Mark `port` of this domain pending for `vcpu`.
    Local { port: Port, vcpu: u32 },
    /// Mark `port` of domain `dom` pending.
    Remote { dom: u16, port: Port },
    /// Nothing is connected yet: the event is dropped, as Xen does.
    Dropped,
}

/// One domain's ports.
pub struct EventChannels {
    ports: [Binding; NR_PORTS],
    /// The vCPU each port notifies.
    notify_vcpu: [u8; NR_PORTS],
    virqs: [[Option<u16>; NR_VIRQS]; MAX_VCPUS],
    nr_vcpus: u32,
}

impl EventChannels {
    pub const fn new(nr_vcpus: u32) -> Self {
        Self {
            ports: [Binding::Free; NR_PORTS],
            notify_vcpu: [0; NR_PORTS],
            virqs: [[None; NR_VIRQS]; MAX_VCPUS],
            nr_vcpus,
        }
    }

    /// As [`EventChannels::new`], in place (the table is large: no
    /// temporary copy of it on the stack).
    pub fn reset(&mut self, nr_vcpus: u32) {
        self.ports.fill(Binding::Free);
        self.notify_vcpu.fill(0);
        for vcpu in self.virqs.iter_mut() {
            vcpu.fill(None);
        }
        self.nr_vcpus = nr_vcpus;
    }

    pub fn binding(&self, port: Port) -> Binding {
        self.ports
            .get(port as usize)
            .copied()
            .unwrap_or(Binding::Free)
    }

    pub fn notify_vcpu(&self, port: Port) -> u32 {
        self.notify_vcpu.get(port as usize).copied().unwrap_or(0) as u32
    }

    fn check_vcpu(&self, vcpu: u32) -> Result<(), EventError> {
        if vcpu < self.nr_vcpus && (vcpu as usize) < MAX_VCPUS {
            Ok(())
        } else {
            Err(EventError::NoVcpu)
        }
    }

    /// The lowest free port; port 0 is never used, as in Xen.
    fn allocate(&mut self, binding: Binding, vcpu: u32) -> Result<Port, EventError> {
        let port = (1..NR_PORTS)
            .find(|&p| self.ports[p] == Binding::Free)
            .ok_or(EventError::NoSpace)?;
        self.ports[port] = binding;
        self.notify_vcpu[port] = vcpu as u8;
        Ok(port as Port)
    }

    /// `EVTCHNOP_bind_virq`.
    pub fn bind_virq(&mut self, virq: u32, vcpu: u32) -> Result<Port, EventError> {
        if virq as usize >= NR_VIRQS {
            return Err(EventError::Invalid);
        }
        // Global VIRQs are bound on vCPU 0 only (Xen: -EINVAL otherwise).
        if !virq_is_per_vcpu(virq) && vcpu != 0 {
            return Err(EventError::Invalid);
        }
        self.check_vcpu(vcpu)?;
        if self.virqs[vcpu as usize][virq as usize].is_some() {
            return Err(EventError::Exists);
        }
        let port = self.allocate(Binding::Virq { virq, vcpu }, vcpu)?;
        self.virqs[vcpu as usize][virq as usize] = Some(port as u16);
        Ok(port)
    }

    /// `EVTCHNOP_bind_ipi`.
    pub fn bind_ipi(&mut self, vcpu: u32) -> Result<Port, EventError> {
        self.check_vcpu(vcpu)?;
        self.allocate(Binding::Ipi { vcpu }, vcpu)
    }

    /// `EVTCHNOP_bind_vcpu`: `port` notifies `vcpu` from now on. As on
    /// Xen, for interdomain and unbound ports and global VIRQs; a
    /// per-vCPU VIRQ, an IPI or a free port is `Invalid`, a vCPU the
    /// domain does not have `NoVcpu` (checked first).
    pub fn bind_vcpu(&mut self, port: Port, vcpu: u32) -> Result<(), EventError> {
        self.check_vcpu(vcpu)?;
        match self.binding(port) {
            Binding::Virq { virq, .. } if !virq_is_per_vcpu(virq) => {}
            Binding::Unbound { .. } | Binding::Interdomain { .. } => {}
            _ => return Err(EventError::Invalid),
        }
        self.notify_vcpu[port as usize] = vcpu as u8;
        Ok(())
    }

    /// `EVTCHNOP_alloc_unbound` (the local half).
    pub fn alloc_unbound(&mut self, remote: u16) -> Result<Port, EventError> {
        self.allocate(Binding::Unbound { remote }, 0)
    }

    /// Connects a local port to a remote one (both halves of
    /// `EVTCHNOP_bind_interdomain` go through here).
    pub fn connect(&mut self, port: Port, remote: u16, remote_port: Port) {
        if let Some(b) = self.ports.get_mut(port as usize) {
            *b = Binding::Interdomain {
                remote,
                remote_port,
            };
        }
    }

    /// Allocates a port connected to `remote`'s `remote_port`.
    pub fn bind_interdomain(&mut self, remote: u16, remote_port: Port) -> Result<Port, EventError> {
        self.allocate(
            Binding::Interdomain {
                remote,
                remote_port,
            },
            0,
        )
    }

    /// `EVTCHNOP_close`: frees the port and returns what it was bound to,
    /// so the caller can unhook the other end of an interdomain channel.
    pub fn close(&mut self, port: Port) -> Result<Binding, EventError> {
        let Some(binding) = self.ports.get(port as usize).copied() else {
            return Err(EventError::Invalid);
        };
        if binding == Binding::Free || port == 0 {
            return Err(EventError::Invalid);
        }
        if let Binding::Virq { virq, vcpu } = binding {
            self.virqs[vcpu as usize][virq as usize] = None;
        }
        self.ports[port as usize] = Binding::Free;
        self.notify_vcpu[port as usize] = 0;
        Ok(binding)
    }

    /// Turns the other end of a closed interdomain channel back into an
    /// unbound port, as Xen does; only if `port` really is the end that
    /// pointed at (`remote`, `remote_port`).
    pub fn disconnect(&mut self, port: Port, remote: u16, remote_port: Port) {
        if let Some(b) = self.ports.get_mut(port as usize)
            && *b
                == (Binding::Interdomain {
                    remote,
                    remote_port,
                })
        {
            *b = Binding::Unbound { remote };
        }
    }

    /// Every port connected to domain `dead` becomes unbound (teardown).
    pub fn disconnect_domain(&mut self, dead: u16) {
        for b in self.ports.iter_mut() {
            if let Binding::Interdomain { remote, .. } = *b
                && remote == dead
            {
                *b = Binding::Unbound { remote };
            }
        }
    }

    /// `EVTCHNOP_send`: where the event goes.
    pub fn send(&self, port: Port) -> Result<Delivery, EventError> {
        match self.binding(port) {
            Binding::Ipi { vcpu } => Ok(Delivery::Local { port, vcpu }),
            Binding::Interdomain {
                remote,
                remote_port,
            } => Ok(Delivery::Remote {
                dom: remote,
                port: remote_port,
            }),
            Binding::Unbound { .. } => Ok(Delivery::Dropped),
            Binding::Free | Binding::Virq { .. } => Err(EventError::Invalid),
        }
    }

    /// The port bound to `virq` on `vcpu`, if any.
    pub fn virq_port(&self, virq: u32, vcpu: u32) -> Option<Port> {
        let vcpu = if virq_is_per_vcpu(virq) { vcpu } else { 0 };
        self.virqs
            .get(vcpu as usize)?
            .get(virq as usize)?
            .map(|p| p as Port)
    }

    /// Every bound port, for teardown.
    pub fn bound_ports(&self) -> impl Iterator<Item = (Port, Binding)> + '_ {
        self.ports
            .iter()
            .enumerate()
            .filter(|(_, b)| **b != Binding::Free)
            .map(|(p, b)| (p as Port, *b))
    }
}

/// The other end's table for a rule over two domains.
pub enum Peer<'a> {
    /// The channel's other end is in the local table (the domain bound
    /// its own port: a loopback channel).
    Loopback,
    /// Another domain's table.
    Other(&'a mut EventChannels),
    /// The other domain no longer exists: only the local end changes.
    Gone,
}

impl Peer<'_> {
    /// The table holding the other end: `local` itself for a loopback.
    fn table<'t>(&'t mut self, local: &'t mut EventChannels) -> Option<&'t mut EventChannels> {
        match self {
            Peer::Loopback => Some(local),
            Peer::Other(peer) => Some(peer),
            Peer::Gone => None,
        }
    }
}

/// `EVTCHNOP_bind_interdomain`: domain `own` (table `local`) binds the
/// peer's `remote_port`, which must be unbound and waiting for `own`; the
/// peer is `remote_dom` (`own` for a loopback). Both ends are connected;
/// returns the new local port.
pub fn bind_interdomain(
    local: &mut EventChannels,
    mut peer: Peer<'_>,
    own: u16,
    remote_dom: u16,
    remote_port: Port,
) -> Result<Port, EventError> {
    let waiting = peer
        .table(local)
        .map(|t| t.binding(remote_port) == Binding::Unbound { remote: own });
    if waiting != Some(true) {
        return Err(EventError::Invalid);
    }
    let port = local.bind_interdomain(remote_dom, remote_port)?;
    if let Some(remote) = peer.table(local) {
        remote.connect(remote_port, own, port);
    }
    Ok(port)
}

/// `EVTCHNOP_close` of `port` in domain `own`'s table `local`: frees it
/// and, for an interdomain channel, turns the other end (in `peer`, the
/// domain the binding names) back into an unbound port waiting for `own`.
/// Returns what the port was bound to.
pub fn close(
    local: &mut EventChannels,
    mut peer: Peer<'_>,
    own: u16,
    port: Port,
) -> Result<Binding, EventError> {
    let binding = local.close(port)?;
    if let Binding::Interdomain { remote_port, .. } = binding
        && let Some(remote) = peer.table(local)
    {
        remote.disconnect(remote_port, own, port);
    }
    Ok(binding)
}

/// The guest-visible bits: `shared_info.evtchn_pending/mask` and each
/// vCPU's `evtchn_pending_sel` and `evtchn_upcall_pending`. Each
/// `test_and_*` is atomic in the real implementation, because the guest
/// changes these words concurrently.
pub trait EventBits {
    fn test_and_set_pending(&mut self, port: Port) -> bool;
    fn is_pending(&self, port: Port) -> bool;
    fn is_masked(&self, port: Port) -> bool;
    fn test_and_clear_mask(&mut self, port: Port) -> bool;
    fn test_and_set_selector(&mut self, vcpu: u32, word: u32) -> bool;
    fn test_and_set_upcall_pending(&mut self, vcpu: u32) -> bool;
}

/// Marks `port` pending for `vcpu`; returns whether the vCPU now has a new
/// upcall to take (the caller wakes it).
pub fn set_pending(bits: &mut impl EventBits, port: Port, vcpu: u32) -> bool {
    if bits.test_and_set_pending(port) {
        return false;
    }
    if bits.is_masked(port) || bits.test_and_set_selector(vcpu, port / 64) {
        return false;
    }
    !bits.test_and_set_upcall_pending(vcpu)
}

/// `EVTCHNOP_unmask`: clears the mask and replays a pending edge; returns
/// whether the vCPU now has a new upcall to take.
pub fn unmask(bits: &mut impl EventBits, port: Port, vcpu: u32) -> bool {
    if !bits.test_and_clear_mask(port) || !bits.is_pending(port) {
        return false;
    }
    if bits.test_and_set_selector(vcpu, port / 64) {
        return false;
    }
    !bits.test_and_set_upcall_pending(vcpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bits {
        pending: [u64; 64],
        mask: [u64; 64],
        sel: [u64; MAX_VCPUS],
        upcall: [bool; MAX_VCPUS],
    }

    impl Default for Bits {
        fn default() -> Self {
            Self {
                pending: [0; 64],
                mask: [0; 64],
                sel: [0; MAX_VCPUS],
                upcall: [false; MAX_VCPUS],
            }
        }
    }

    fn tas(word: &mut u64, bit: u32) -> bool {
        let was = *word & 1 << bit != 0;
        *word |= 1 << bit;
        was
    }

    impl EventBits for Bits {
        fn test_and_set_pending(&mut self, port: Port) -> bool {
            tas(&mut self.pending[port as usize / 64], port % 64)
        }
        fn is_pending(&self, port: Port) -> bool {
            self.pending[port as usize / 64] & 1 << (port % 64) != 0
        }
        fn is_masked(&self, port: Port) -> bool {
            self.mask[port as usize / 64] & 1 << (port % 64) != 0
        }
        fn test_and_clear_mask(&mut self, port: Port) -> bool {
            let was = self.is_masked(port);
            self.mask[port as usize / 64] &= !(1 << (port % 64));
            was
        }
        fn test_and_set_selector(&mut self, vcpu: u32, word: u32) -> bool {
            tas(&mut self.sel[vcpu as usize], word)
        }
        fn test_and_set_upcall_pending(&mut self, vcpu: u32) -> bool {
            let was = self.upcall[vcpu as usize];
            self.upcall[vcpu as usize] = true;
            was
        }
    }

    #[test]
    fn reset_is_new() {
        let mut ch = EventChannels::new(2);
        let timer = ch.bind_virq(0, 1).unwrap();
        ch.bind_ipi(0).unwrap();
        ch.reset(1);
        assert_eq!(ch.binding(timer), Binding::Free);
        assert_eq!(ch.virq_port(0, 1), None);
        assert_eq!(ch.bind_virq(0, 1), Err(EventError::NoVcpu));
        assert_eq!(ch.bind_virq(0, 0), Ok(1));
    }

    #[test]
    fn ports_start_at_one_and_are_reused_lowest_first() {
        let mut ch = EventChannels::new(2);
        assert_eq!(ch.bind_virq(0, 0), Ok(1));
        assert_eq!(ch.bind_ipi(1), Ok(2));
        assert_eq!(ch.bind_virq(2, 0), Ok(3));
        assert_eq!(ch.close(2), Ok(Binding::Ipi { vcpu: 1 }));
        assert_eq!(ch.bind_ipi(0), Ok(2));
    }

    #[test]
    fn a_virq_binds_once_per_vcpu_and_global_virqs_only_on_vcpu_0() {
        let mut ch = EventChannels::new(2);
        let timer0 = ch.bind_virq(0, 0).unwrap();
        assert_eq!(ch.bind_virq(0, 0), Err(EventError::Exists));
        let timer1 = ch.bind_virq(0, 1).unwrap();
        assert_ne!(timer0, timer1);
        assert_eq!(ch.virq_port(0, 1), Some(timer1));
        assert_eq!(ch.bind_virq(2, 1), Err(EventError::Invalid));
        assert_eq!(ch.bind_virq(0, 2), Err(EventError::NoVcpu));
        assert_eq!(ch.bind_virq(24, 0), Err(EventError::Invalid));
        ch.close(timer0).unwrap();
        assert_eq!(ch.virq_port(0, 0), None);
        assert!(ch.bind_virq(0, 0).is_ok());
    }

    #[test]
    fn bind_vcpu_moves_channels_and_global_virqs_only() {
        let mut ch = EventChannels::new(2);
        let unbound = ch.alloc_unbound(3).unwrap();
        let inter = ch.bind_interdomain(4, 9).unwrap();
        let console = ch.bind_virq(2, 0).unwrap();
        let timer = ch.bind_virq(0, 0).unwrap();
        let ipi = ch.bind_ipi(0).unwrap();
        for port in [unbound, inter, console] {
            assert_eq!(ch.notify_vcpu(port), 0);
            assert_eq!(ch.bind_vcpu(port, 1), Ok(()));
            assert_eq!(ch.notify_vcpu(port), 1);
        }
        // A global VIRQ is still found by its vCPU-0 binding.
        assert_eq!(ch.virq_port(2, 1), Some(console));
        for port in [timer, ipi, 0, 7, NR_PORTS as Port] {
            assert_eq!(
                ch.bind_vcpu(port, 1),
                Err(EventError::Invalid),
                "port {port}"
            );
            assert_eq!(ch.notify_vcpu(port), 0);
        }
        // The vCPU is checked first, whatever the port.
        assert_eq!(ch.bind_vcpu(unbound, 2), Err(EventError::NoVcpu));
        assert_eq!(ch.bind_vcpu(timer, 2), Err(EventError::NoVcpu));
        assert_eq!(ch.notify_vcpu(unbound), 1);
    }

    #[test]
    fn close_refuses_free_reserved_and_out_of_range_ports() {
        let mut ch = EventChannels::new(1);
        assert_eq!(ch.close(0), Err(EventError::Invalid));
        assert_eq!(ch.close(5), Err(EventError::Invalid));
        assert_eq!(ch.close(NR_PORTS as Port), Err(EventError::Invalid));
        assert_eq!(ch.close(u32::MAX), Err(EventError::Invalid));
    }

    #[test]
    fn send_goes_where_the_port_is_bound() {
        let mut ch = EventChannels::new(1);
        let ipi = ch.bind_ipi(0).unwrap();
        let virq = ch.bind_virq(2, 0).unwrap();
        let unbound = ch.alloc_unbound(3).unwrap();
        let inter = ch.bind_interdomain(4, 9).unwrap();
        assert_eq!(ch.send(ipi), Ok(Delivery::Local { port: ipi, vcpu: 0 }));
        assert_eq!(ch.send(virq), Err(EventError::Invalid));
        assert_eq!(ch.send(unbound), Ok(Delivery::Dropped));
        assert_eq!(ch.send(inter), Ok(Delivery::Remote { dom: 4, port: 9 }));
        assert_eq!(ch.send(77), Err(EventError::Invalid));
        // Only the end that points back at the closed port is undone.
        ch.disconnect(inter, 4, 10);
        assert_eq!(
            ch.binding(inter),
            Binding::Interdomain {
                remote: 4,
                remote_port: 9
            }
        );
        ch.disconnect(inter, 4, 9);
        assert_eq!(ch.binding(inter), Binding::Unbound { remote: 4 });
    }

    #[test]
    fn upcall_only_on_unmasked_edges() {
        let mut bits = Bits::default();
        assert!(set_pending(&mut bits, 70, 0));
        assert_eq!(bits.sel[0], 1 << 1);
        // Already pending: no new edge.
        assert!(!set_pending(&mut bits, 70, 0));
        // Another port in the same word while the upcall is outstanding.
        assert!(!set_pending(&mut bits, 71, 0));
        assert!(bits.is_pending(71));
    }

    #[test]
    fn masked_port_edge_is_replayed_by_unmask() {
        let mut bits = Bits::default();
        bits.mask[0] = 1 << 5;
        assert!(!set_pending(&mut bits, 5, 0));
        assert!(bits.is_pending(5));
        assert_eq!(bits.sel[0], 0);
        assert!(!bits.upcall[0]);
        assert!(unmask(&mut bits, 5, 0));
        assert_eq!(bits.sel[0], 1);
        assert!(bits.upcall[0]);
        // Unmasking an unmasked port does nothing.
        assert!(!unmask(&mut bits, 5, 0));
    }

    #[test]
    fn unmask_of_a_port_not_pending_raises_nothing() {
        let mut bits = Bits::default();
        bits.mask[0] = 1 << 9;
        assert!(!unmask(&mut bits, 9, 0));
        assert!(!bits.upcall[0]);
    }

    // --- channels between two domains --------------------------------

    const A: u16 = 1;
    const B: u16 = 2;

    #[test]
    fn binding_connects_both_ends_to_each_other() {
        let (mut a, mut b) = (EventChannels::new(1), EventChannels::new(1));
        let offered = b.alloc_unbound(A).unwrap();
        let port = bind_interdomain(&mut a, Peer::Other(&mut b), A, B, offered).unwrap();
        let a_end = Binding::Interdomain {
            remote: B,
            remote_port: offered,
        };
        let b_end = Binding::Interdomain {
            remote: A,
            remote_port: port,
        };
        assert_eq!(a.binding(port), a_end);
        assert_eq!(b.binding(offered), b_end);
    }

    #[test]
    fn only_the_named_domain_binds_an_unbound_port_and_only_once() {
        let (mut a, mut b) = (EventChannels::new(1), EventChannels::new(1));
        let for_someone_else = b.alloc_unbound(3).unwrap();
        let refused = bind_interdomain(&mut a, Peer::Other(&mut b), A, B, for_someone_else);
        assert_eq!(refused, Err(EventError::Invalid));
        let offered = b.alloc_unbound(A).unwrap();
        bind_interdomain(&mut a, Peer::Other(&mut b), A, B, offered).unwrap();
        let again = bind_interdomain(&mut a, Peer::Other(&mut b), A, B, offered);
        assert_eq!(again, Err(EventError::Invalid));
        let free = bind_interdomain(&mut a, Peer::Other(&mut b), A, B, 100);
        assert_eq!(free, Err(EventError::Invalid));
        assert_eq!(
            bind_interdomain(&mut a, Peer::Gone, A, B, offered),
            Err(EventError::Invalid)
        );
        // The refusals took no local port.
        assert_eq!(a.bound_ports().count(), 1);
    }

    #[test]
    fn closing_one_end_leaves_the_other_waiting_for_the_closer() {
        let (mut a, mut b) = (EventChannels::new(1), EventChannels::new(1));
        let offered = b.alloc_unbound(A).unwrap();
        let port = bind_interdomain(&mut a, Peer::Other(&mut b), A, B, offered).unwrap();
        let closed = close(&mut a, Peer::Other(&mut b), A, port).unwrap();
        assert!(matches!(closed, Binding::Interdomain { remote: B, .. }));
        assert_eq!(a.binding(port), Binding::Free);
        assert_eq!(b.binding(offered), Binding::Unbound { remote: A });
        // A rebind connects again.
        let port = bind_interdomain(&mut a, Peer::Other(&mut b), A, B, offered).unwrap();
        assert_eq!(b.send(offered), Ok(Delivery::Remote { dom: A, port }));
    }

    #[test]
    fn a_loopback_channel_is_bound_and_closed_in_one_table() {
        let mut a = EventChannels::new(1);
        let offered = a.alloc_unbound(A).unwrap();
        let port = bind_interdomain(&mut a, Peer::Loopback, A, A, offered).unwrap();
        assert_eq!(
            a.send(port),
            Ok(Delivery::Remote {
                dom: A,
                port: offered
            })
        );
        assert_eq!(a.send(offered), Ok(Delivery::Remote { dom: A, port }));
        close(&mut a, Peer::Loopback, A, offered).unwrap();
        assert_eq!(a.binding(port), Binding::Unbound { remote: A });
    }

    #[test]
    fn closing_never_unhooks_a_port_that_moved_on() {
        let (mut a, mut b) = (EventChannels::new(1), EventChannels::new(1));
        let offered = b.alloc_unbound(A).unwrap();
        let port = bind_interdomain(&mut a, Peer::Other(&mut b), A, B, offered).unwrap();
        // B closes its end and reuses the port number for something else.
        close(&mut b, Peer::Other(&mut a), B, offered).unwrap();
        assert_eq!(a.binding(port), Binding::Unbound { remote: B });
        let reused = b.bind_ipi(0).unwrap();
        assert_eq!(reused, offered);
        close(&mut a, Peer::Other(&mut b), A, port).unwrap();
        assert_eq!(b.binding(reused), Binding::Ipi { vcpu: 0 });
    }

    #[test]
    fn closing_with_the_peer_gone_frees_the_local_end() {
        let mut a = EventChannels::new(1);
        let port = a.bind_interdomain(B, 7).unwrap();
        let closed = close(&mut a, Peer::Gone, A, port).unwrap();
        assert_eq!(
            closed,
            Binding::Interdomain {
                remote: B,
                remote_port: 7
            }
        );
        assert_eq!(a.binding(port), Binding::Free);
        assert_eq!(close(&mut a, Peer::Gone, A, port), Err(EventError::Invalid));
    }
}
