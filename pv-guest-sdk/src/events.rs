//! Event channels (2-level ABI): per-port handlers, the upcall that runs
//! them, and interrupt masking, the PV replacement for `cli`/`sti`.
//!
//! The hypervisor marks a port pending in `evtchn_pending`, sets the port's
//! word in the vCPU's `evtchn_pending_sel` and `evtchn_upcall_pending`, and
//! bounces to the event callback unless `evtchn_upcall_mask` is set.
//! The upcall clears `upcall_pending`, takes the selector, and for each
//! selected word takes the pending and unmasked bits (clearing them) and
//! runs the handlers; it repeats while `upcall_pending` was set again.
//!
//! Masking: [`disable`] sets the vCPU's upcall mask and returns the old
//! state, [`restore`] puts it back; re-enabling checks `upcall_pending`
//! and, if set, forces the upcall that the mask held back with a cheap
//! hypercall (the hypervisor delivers pending upcalls on every return).

use core::sync::atomic::{AtomicU64, Ordering};

use abi::event_channel::Port;

use crate::fn_cell::FnCell;
use crate::shared_info::EVENT_WORDS;

/// Runs in the upcall, with events masked, for each pending port.
pub type Handler = fn(Port);

/// The 2-level bitmaps as the dispatcher needs them; implemented over the
/// shared-info page on the target and over plain memory in tests.
pub trait EventBitmaps {
    /// Clears `upcall_pending`.
    fn clear_upcall_pending(&self);
    /// Whether `upcall_pending` is set.
    fn upcall_pending(&self) -> bool;
    /// Atomically takes (reads and zeroes) the vCPU's pending selector.
    fn take_selector(&self) -> u64;
    /// Atomically takes the pending and unmasked bits of `word`, leaving
    /// masked pending bits in place.
    fn take_ready(&self, word: usize) -> u64;
}

/// Runs `handle` for every pending, unmasked port, lowest word first; each
/// port's pending bit is cleared before its handler runs, so an event that
/// arrives during the handler is seen again. Returns the number handled.
pub fn dispatch_pending(bits: &impl EventBitmaps, mut handle: impl FnMut(Port)) -> usize {
    let mut handled = 0;
    loop {
        bits.clear_upcall_pending();
        let mut selector = bits.take_selector();
        while selector != 0 {
            let word = selector.trailing_zeros() as usize;
            selector &= selector - 1;
            if word >= EVENT_WORDS {
                continue;
            }
            let mut ready = bits.take_ready(word);
            while ready != 0 {
                let bit = ready.trailing_zeros();
                ready &= ready - 1;
                handle((word * 64) as Port + bit);
                handled += 1;
            }
        }
        if !bits.upcall_pending() {
            return handled;
        }
    }
}

static HANDLERS: [FnCell<Handler>; abi::xen::NR_EVENT_CHANNELS] =
    [const { FnCell::new() }; abi::xen::NR_EVENT_CHANNELS];

/// Runs `handler` whenever `port` fires (replacing any other handler).
pub fn set_handler(port: Port, handler: Handler) {
    if let Some(cell) = HANDLERS.get(port as usize) {
        cell.set(handler);
    }
}

/// Removes the handler for `port`; its events are then only marked as fired.
pub fn clear_handler(port: Port) {
    if let Some(cell) = HANDLERS.get(port as usize) {
        cell.clear();
    }
}

/// One bit per port, set by the upcall each time the port fires (whether
/// or not it has a handler) and taken by whoever waits for it
/// ([`crate::evtchn::wait`]): the pending bit itself is cleared by the
/// upcall, so it cannot tell a waiter that the event came.
pub struct FiredPorts {
    words: [AtomicU64; EVENT_WORDS],
}

impl FiredPorts {
    /// No port fired.
    pub const fn new() -> Self {
        Self {
            words: [const { AtomicU64::new(0) }; EVENT_WORDS],
        }
    }

    /// Marks `port` as fired.
    pub fn mark(&self, port: Port) {
        if let Some(word) = self.words.get(port as usize / 64) {
            word.fetch_or(1 << (port % 64), Ordering::SeqCst);
        }
    }

    /// Whether `port` fired since the last take; clears the mark.
    pub fn take(&self, port: Port) -> bool {
        let bit = 1 << (port % 64);
        self.words
            .get(port as usize / 64)
            .is_some_and(|word| word.fetch_and(!bit, Ordering::SeqCst) & bit != 0)
    }

    /// Whether `port` fired since the last take, leaving the mark.
    pub fn peek(&self, port: Port) -> bool {
        self.words
            .get(port as usize / 64)
            .is_some_and(|word| word.load(Ordering::SeqCst) & 1 << (port % 64) != 0)
    }
}

impl Default for FiredPorts {
    fn default() -> Self {
        Self::new()
    }
}

pub(crate) static FIRED: FiredPorts = FiredPorts::new();

fn run_handler(port: Port) {
    FIRED.mark(port);
    if let Some(handler) = HANDLERS.get(port as usize).and_then(FnCell::get) {
        handler(port);
    }
}

#[cfg(target_os = "none")]
pub use self::target::*;

#[cfg(target_os = "none")]
mod target {
    use core::sync::atomic::Ordering;

    use abi::event_channel::Port;

    use super::{EventBitmaps, Handler, dispatch_pending, run_handler, set_handler};
    use crate::Result;
    use crate::hypercall;
    use crate::shared::{shared_info, vcpu};

    struct Shared;

    impl EventBitmaps for Shared {
        fn clear_upcall_pending(&self) {
            vcpu().upcall_pending.store(0, Ordering::SeqCst);
        }
        fn upcall_pending(&self) -> bool {
            vcpu().upcall_pending.load(Ordering::SeqCst) != 0
        }
        fn take_selector(&self) -> u64 {
            vcpu().pending_sel.swap(0, Ordering::SeqCst)
        }
        fn take_ready(&self, word: usize) -> u64 {
            let si = shared_info();
            let ready = si.evtchn_pending[word].load(Ordering::SeqCst)
                & !si.evtchn_mask[word].load(Ordering::SeqCst);
            if ready != 0 {
                si.evtchn_pending[word].fetch_and(!ready, Ordering::SeqCst);
            }
            ready
        }
    }

    /// The event callback's body (called by `traps::dispatch`).
    pub(crate) fn upcall() {
        dispatch_pending(&Shared, run_handler);
    }

    /// Registers the event and failsafe callbacks. Events stay masked.
    pub(crate) fn init() -> Result<()> {
        crate::arch::entry::register_callbacks()
    }

    /// Whether upcalls are currently allowed on this vCPU.
    pub fn enabled() -> bool {
        vcpu().upcall_mask.load(Ordering::SeqCst) == 0
    }

    /// Masks upcalls (the PV `cli`); returns whether they were enabled.
    pub fn disable() -> bool {
        vcpu().upcall_mask.swap(1, Ordering::SeqCst) == 0
    }

    /// Unmasks upcalls (the PV `sti`) and delivers any that were held back.
    pub fn enable() {
        vcpu().upcall_mask.store(0, Ordering::SeqCst);
        if vcpu().upcall_pending.load(Ordering::SeqCst) != 0 {
            // Any hypercall returns through the hypervisor's event check;
            // xen_version is the cheapest.
            let _ = hypercall::xen_version();
        }
    }

    /// Puts back the state [`disable`] returned.
    pub fn restore(was_enabled: bool) {
        if was_enabled {
            enable();
        }
    }

    /// Runs `f` with upcalls masked.
    pub fn without_events<R>(f: impl FnOnce() -> R) -> R {
        let was_enabled = disable();
        let result = f();
        restore(was_enabled);
        result
    }

    /// Blocks the vCPU until `ready()` holds; handlers run in between. The
    /// check happens with upcalls masked, and `SCHEDOP_block` unmasks and
    /// blocks in one step, so no event is lost between check and sleep.
    /// Upcalls are left as they were found.
    pub fn wait_until(mut ready: impl FnMut() -> bool) {
        let was_enabled = disable();
        while !ready() {
            // Blocking unmasks upcalls; pending ones run as it returns.
            let _ = hypercall::sched_block();
            disable();
        }
        restore(was_enabled);
    }

    /// Masks `port` (its events stay pending but raise no upcall).
    pub fn mask(port: Port) {
        if let Some(word) = shared_info().evtchn_mask.get(port as usize / 64) {
            word.fetch_or(1 << (port % 64), Ordering::SeqCst);
        }
    }

    /// Unmasks `port`; the hypervisor re-raises it if it is pending.
    pub fn unmask(port: Port) -> Result<()> {
        hypercall::evtchn_unmask(port)
    }

    /// Whether `port` is pending (handled ports are cleared by the upcall).
    pub fn is_pending(port: Port) -> bool {
        shared_info()
            .evtchn_pending
            .get(port as usize / 64)
            .is_some_and(|w| w.load(Ordering::SeqCst) & (1 << (port % 64)) != 0)
    }

    /// Binds `virq` on vCPU 0 to a new port, runs `handler` when it fires,
    /// and unmasks it.
    pub fn bind_virq(virq: u32, handler: Handler) -> Result<Port> {
        let port = hypercall::evtchn_bind_virq(virq, 0)?;
        set_handler(port, handler);
        unmask(port)?;
        Ok(port)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;

    #[derive(Default)]
    struct Fake {
        upcall_pending: Cell<bool>,
        selector: Cell<u64>,
        pending: RefCell<Vec<u64>>,
        mask: RefCell<Vec<u64>>,
        /// A port raised again while its own handler runs.
        raise_during: Cell<Option<Port>>,
    }

    impl Fake {
        fn new() -> Self {
            Self {
                pending: RefCell::new(vec![0; EVENT_WORDS]),
                mask: RefCell::new(vec![0; EVENT_WORDS]),
                ..Default::default()
            }
        }

        fn raise(&self, port: Port) {
            let word = port as usize / 64;
            self.pending.borrow_mut()[word] |= 1 << (port % 64);
            self.selector.set(self.selector.get() | 1 << word);
            self.upcall_pending.set(true);
        }
    }

    impl EventBitmaps for Fake {
        fn clear_upcall_pending(&self) {
            self.upcall_pending.set(false);
        }
        fn upcall_pending(&self) -> bool {
            self.upcall_pending.get()
        }
        fn take_selector(&self) -> u64 {
            self.selector.replace(0)
        }
        fn take_ready(&self, word: usize) -> u64 {
            let ready = self.pending.borrow()[word] & !self.mask.borrow()[word];
            self.pending.borrow_mut()[word] &= !ready;
            ready
        }
    }

    fn run(fake: &Fake) -> Vec<Port> {
        let mut seen = Vec::new();
        dispatch_pending(fake, |port| {
            seen.push(port);
            if fake.raise_during.get() == Some(port) {
                fake.raise_during.set(None);
                fake.raise(port);
            }
        });
        seen
    }

    #[test]
    fn pending_unmasked_ports_run_in_port_order() {
        let fake = Fake::new();
        for port in [200, 3, 64, 4095] {
            fake.raise(port);
        }
        assert_eq!(run(&fake), vec![3, 64, 200, 4095]);
        assert!(fake.pending.borrow().iter().all(|&w| w == 0));
    }

    #[test]
    fn masked_ports_stay_pending_and_do_not_run() {
        let fake = Fake::new();
        fake.mask.borrow_mut()[0] = 1 << 5;
        fake.raise(5);
        fake.raise(6);
        assert_eq!(run(&fake), vec![6]);
        assert_eq!(fake.pending.borrow()[0], 1 << 5);
    }

    #[test]
    fn an_event_raised_during_its_handler_runs_again() {
        let fake = Fake::new();
        fake.raise(7);
        fake.raise_during.set(Some(7));
        assert_eq!(run(&fake), vec![7, 7]);
    }

    #[test]
    fn nothing_selected_means_nothing_runs() {
        let fake = Fake::new();
        // Pending bit without its selector bit: not scanned (the hypervisor
        // always sets both; a stale bit waits for the next selection).
        fake.pending.borrow_mut()[1] = 1;
        assert_eq!(run(&fake), Vec::<Port>::new());
    }

    #[test]
    fn fired_marks_are_per_port_and_taken_once() {
        let fired = FiredPorts::new();
        fired.mark(65);
        fired.mark(4095);
        fired.mark(1 << 20); // out of range: ignored
        assert!(fired.peek(65));
        assert!(fired.take(65));
        assert!(!fired.take(65), "a mark is taken once");
        assert!(!fired.take(64) && !fired.take(66));
        assert!(fired.take(4095));
        assert!(!fired.take(1 << 20));
    }

    #[test]
    fn the_upcall_marks_ports_it_dispatches() {
        let fake = Fake::new();
        fake.raise(300);
        dispatch_pending(&fake, run_handler);
        assert!(FIRED.take(300));
    }

    #[test]
    fn handlers_register_per_port() {
        fn h(_: Port) {}
        set_handler(9, h);
        assert!(HANDLERS[9].get().is_some());
        clear_handler(9);
        assert!(HANDLERS[9].get().is_none());
        set_handler(1 << 20, h); // out of range: ignored
    }
}
