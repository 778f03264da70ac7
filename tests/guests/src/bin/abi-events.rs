//! Event channels, 2-level ABI, on IPI ports bound to the guest's own vCPU:
//! - `bind_ipi` + `send` delivers an upcall, before the send returns, with
//!   the right port pending (and events masked in the callback);
//! - a masked port (`evtchn_mask` bit): the send marks it pending but
//!   raises no upcall; `EVTCHNOP_unmask` raises it;
//! - a masked vCPU (`evtchn_upcall_mask`): no upcall until unmasked, then
//!   every pending port is seen, in order;
//! - `EVTCHNOP_status` of IPI, VIRQ and closed ports; after `close`, `send`
//!   and `status` of the port behave as for a closed port (-EINVAL and
//!   EVTCHNSTAT_closed); ports past the 4096 of the 2-level ABI give
//!   -EINVAL;
//! - a newly registered event callback takes effect at once: after
//!   `callback_op` puts a stub in front of the SDK's entry, the next upcall
//!   (a one-shot timer already due, raised on the way out of the
//!   `set_timer_op` that armed it) enters the stub (hv-core keeps a copy of the callback for upcalls without
//!   the domain's lock: a stale copy would enter the old one).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

    use abi::event_channel::{
        EVTCHNSTAT_CLOSED, EVTCHNSTAT_IPI, EVTCHNSTAT_VIRQ, Port, VIRQ_TIMER,
    };
    use pv_guest_sdk::time::now_ns;
    use pv_guest_sdk::{StartInfo, events, hypercall, println};
    use test_guests::preempt;
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure, ensure_eq, fail, hc};

    const NAME: &str = "abi-events";
    const EINVAL: i64 = -22;

    /// Upcalls seen, the last port, a bitmap of ports seen (ports < 64),
    /// and whether any handler ran with events unmasked.
    static COUNT: AtomicU32 = AtomicU32::new(0);
    static LAST: AtomicU32 = AtomicU32::new(u32::MAX);
    static SEEN: AtomicU64 = AtomicU64::new(0);
    static UNMASKED_IN_HANDLER: AtomicBool = AtomicBool::new(false);

    fn on_event(port: Port) {
        COUNT.fetch_add(1, Ordering::SeqCst);
        LAST.store(port, Ordering::SeqCst);
        if port < 64 {
            SEEN.fetch_or(1 << port, Ordering::SeqCst);
        }
        if events::enabled() {
            UNMASKED_IN_HANDLER.store(true, Ordering::SeqCst);
        }
    }

    fn count() -> u32 {
        COUNT.load(Ordering::SeqCst)
    }

    pub fn main(_start: &'static StartInfo) -> ! {
        finish(NAME, run())
    }

    fn run() -> Outcome {
        ensure!(events::enabled(), "events are masked at the start");
        let port = match hc::bind_ipi(0) {
            Ok(p) => p,
            Err(e) => fail!("EVTCHNOP_bind_ipi(vcpu 0) failed: {e}"),
        };
        ensure!(port != 0, "bind_ipi returned port 0 (reserved)");
        events::set_handler(port, on_event);
        if let Err(e) = events::unmask(port) {
            fail!("EVTCHNOP_unmask({port}) failed: {e}");
        }
        match hc::evtchn_status(port) {
            Ok(s) => {
                ensure_eq!(
                    s.status,
                    EVTCHNSTAT_IPI,
                    "EVTCHNOP_status({port}).status (IPI)"
                );
                ensure_eq!(s.vcpu, 0, "EVTCHNOP_status({port}).vcpu");
            }
            Err(e) => fail!("EVTCHNOP_status({port}) failed: {e}"),
        }

        send_delivers(port)?;
        masked_port(port)?;
        masked_vcpu(port)?;
        virq_status()?;
        closed(port)?;
        ensure!(
            !UNMASKED_IN_HANDLER.load(Ordering::SeqCst),
            "a handler ran with events unmasked"
        );
        new_callback()?;
        println!("{NAME}: IPI port {port}: send, port mask, vCPU mask, status, close");
        Ok(())
    }

    /// The upcall after a new `callback_op` registration enters the new
    /// callback (the preempt probe's stub, which notes where it found the
    /// guest and goes on into the SDK's entry).
    fn new_callback() -> Outcome {
        const MS: u64 = 1_000_000;
        if let Err(what) = preempt::install() {
            fail!("{what} failed");
        }
        // Due at once (a deadline already past, not 0, which cancels):
        // the upcall comes on the way out of this very hypercall, before
        // anything else could have refreshed a copy of the callback.
        if let Err(what) = preempt::arm(now_ns()) {
            fail!("{what} failed");
        }
        let start = now_ns();
        while preempt::upcall().is_none() && now_ns() - start < 2_000 * MS {
            core::hint::spin_loop();
        }
        ensure!(
            preempt::upcall().is_some(),
            "the timer's upcall did not enter the event callback registered last"
        );
        Ok(())
    }

    fn send_delivers(port: Port) -> Outcome {
        for round in 1..=3 {
            let before = count();
            ensure_eq!(hc::evtchn_send(port), 0, "EVTCHNOP_send({port})");
            ensure_eq!(count(), before + 1, "upcalls after send #{round} returned");
            ensure_eq!(LAST.load(Ordering::SeqCst), port, "port of the upcall");
            ensure!(
                !events::is_pending(port),
                "port {port} still pending after its handler ran"
            );
        }
        Ok(())
    }

    fn masked_port(port: Port) -> Outcome {
        events::mask(port);
        let before = count();
        ensure_eq!(
            hc::evtchn_send(port),
            0,
            "EVTCHNOP_send({port}) while the port is masked"
        );
        let _ = hypercall::sched_yield();
        ensure_eq!(count(), before, "upcalls for a masked port");
        ensure!(
            events::is_pending(port),
            "a send to a masked port did not mark it pending"
        );
        if let Err(e) = events::unmask(port) {
            fail!("EVTCHNOP_unmask({port}) failed: {e}");
        }
        ensure_eq!(
            count(),
            before + 1,
            "upcalls once EVTCHNOP_unmask returned for a pending port"
        );
        ensure_eq!(
            LAST.load(Ordering::SeqCst),
            port,
            "port of the upcall after unmask"
        );
        Ok(())
    }

    fn masked_vcpu(port: Port) -> Outcome {
        let second = match hc::bind_ipi(0) {
            Ok(p) => p,
            Err(e) => fail!("a second EVTCHNOP_bind_ipi failed: {e}"),
        };
        ensure!(second != port, "bind_ipi gave port {port} twice");
        events::set_handler(second, on_event);
        if let Err(e) = events::unmask(second) {
            fail!("EVTCHNOP_unmask({second}) failed: {e}");
        }
        SEEN.store(0, Ordering::SeqCst);
        let before = count();
        let was_enabled = events::disable();
        let sends = (hc::evtchn_send(second), hc::evtchn_send(port));
        let _ = hypercall::sched_yield();
        let during = count();
        let flagged = pv_guest_sdk::shared::vcpu()
            .upcall_pending
            .load(Ordering::SeqCst);
        events::restore(was_enabled);
        ensure_eq!(sends, (0, 0), "sends while the vCPU is masked");
        ensure_eq!(during, before, "upcalls while evtchn_upcall_mask is set");
        ensure!(
            flagged != 0,
            "evtchn_upcall_pending not set by sends while masked"
        );
        ensure_eq!(
            count(),
            before + 2,
            "upcalls after unmasking the vCPU (two ports pending)"
        );
        let both = 1u64 << port.min(63) | 1u64 << second.min(63);
        if port < 64 && second < 64 {
            ensure_eq!(
                SEEN.load(Ordering::SeqCst),
                both,
                "ports handled after unmasking"
            );
        }
        ensure_eq!(
            LAST.load(Ordering::SeqCst),
            port.max(second),
            "the last port handled (ports run in order)"
        );
        ensure_eq!(
            hypercall::evtchn_close(second),
            Ok(()),
            "EVTCHNOP_close({second})"
        );
        Ok(())
    }

    fn virq_status() -> Outcome {
        let virq_port = match hypercall::evtchn_bind_virq(VIRQ_TIMER, 0) {
            Ok(p) => p,
            Err(e) => fail!("EVTCHNOP_bind_virq(VIRQ_TIMER, vcpu 0) failed: {e}"),
        };
        match hc::evtchn_status(virq_port) {
            Ok(s) => {
                ensure_eq!(
                    s.status,
                    EVTCHNSTAT_VIRQ,
                    "EVTCHNOP_status({virq_port}).status (VIRQ)"
                );
                ensure_eq!(s.u[0], VIRQ_TIMER, "EVTCHNOP_status({virq_port}).u.virq");
                ensure_eq!(s.vcpu, 0, "EVTCHNOP_status({virq_port}).vcpu");
            }
            Err(e) => fail!("EVTCHNOP_status({virq_port}) failed: {e}"),
        }
        ensure_eq!(
            hypercall::evtchn_close(virq_port),
            Ok(()),
            "EVTCHNOP_close({virq_port})"
        );
        Ok(())
    }

    fn closed(port: Port) -> Outcome {
        ensure_eq!(
            hypercall::evtchn_close(port),
            Ok(()),
            "EVTCHNOP_close({port})"
        );
        let before = count();
        ensure_eq!(
            hc::evtchn_send(port),
            EINVAL,
            "EVTCHNOP_send({port}) after close"
        );
        ensure_eq!(count(), before, "upcalls from a send to a closed port");
        match hc::evtchn_status(port) {
            Ok(s) => ensure_eq!(
                s.status,
                EVTCHNSTAT_CLOSED,
                "EVTCHNOP_status({port}).status after close"
            ),
            Err(e) => fail!("EVTCHNOP_status({port}) after close failed: {e}"),
        }
        // A port in range that was never bound: sending to it is refused
        // like a send to a closed port. Its status is either that it is
        // closed or -EINVAL (Xen allocates ports in buckets and calls a
        // port beyond the last bucket invalid: a detail the ABI leaves
        // open).
        ensure_eq!(
            hc::evtchn_send(1000),
            EINVAL,
            "EVTCHNOP_send(1000), a port never bound"
        );
        match hc::evtchn_status(1000) {
            Err(EINVAL) => {}
            Ok(s) if s.status == EVTCHNSTAT_CLOSED => {}
            other => fail!("EVTCHNOP_status(1000), a port never bound: got {other:?}"),
        }
        // Past the 2-level ABI's 4096 ports.
        ensure_eq!(hc::evtchn_send(100_000), EINVAL, "EVTCHNOP_send(100000)");
        match hc::evtchn_status(100_000) {
            Err(EINVAL) => {}
            other => fail!("EVTCHNOP_status(100000): got {other:?}, want Err(-22)"),
        }
        Ok(())
    }
}
