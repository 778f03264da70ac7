//! When a TLB flush on every CPU is owed, shared by all CPUs.
//!
//! A flag ("something changed since the last flush") is not enough on
//! several CPUs: CPU A clears it and starts a shootdown; before every CPU
//! has answered, CPU B finds it clear, takes that as "nothing is cached",
//! and hands out a freed frame (or validates a page table) while a CPU
//! A has not reached yet still holds the stale translation. The clock
//! counts the changes instead and remembers how many of them the last
//! *completed* flush covered, so B flushes too unless a flush that started
//! after the change it depends on has ended (Xen's TLB-flush clock, in
//! its simplest form: one clock, flushes of every CPU).

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

pub struct FlushClock {
    /// Changes a flush must cover, ever.
    marks: AtomicU64,
    /// The changes the last completed flush covered (all those counted
    /// before it started).
    flushed: AtomicU64,
}

impl FlushClock {
    pub const fn new() -> Self {
        Self {
            marks: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
        }
    }

    /// A change that a flush must cover happened (counted before anything
    /// can depend on it: before a freed frame goes back to the allocator).
    pub fn mark(&self) {
        self.marks.fetch_add(1, SeqCst);
    }

    /// Runs `flush` unless every change counted so far is covered by a
    /// flush that has completed; true if it ran.
    pub fn flush_if_owed(&self, flush: impl FnOnce()) -> bool {
        let marks = self.marks.load(SeqCst);
        if self.flushed.load(SeqCst) >= marks {
            return false;
        }
        self.flush(marks, flush);
        true
    }

    /// Runs `flush`, a flush of everything, and records it as covering
    /// every change counted before it.
    pub fn flush_now(&self, flush: impl FnOnce()) {
        self.flush(self.marks.load(SeqCst), flush);
    }

    fn flush(&self, marks: u64, flush: impl FnOnce()) {
        flush();
        self.flushed.fetch_max(marks, SeqCst);
    }
}

impl Default for FlushClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_is_owed_after_a_mark_only() {
        let clock = FlushClock::new();
        assert!(!clock.flush_if_owed(|| panic!("nothing to flush")));
        clock.mark();
        clock.mark();
        let mut ran = 0;
        assert!(clock.flush_if_owed(|| ran += 1));
        assert!(!clock.flush_if_owed(|| ran += 1));
        assert_eq!(ran, 1);
    }

    /// The race a flag loses: while one CPU's flush is still in flight, a
    /// second CPU must not take the change as covered.
    #[test]
    fn a_flush_in_flight_covers_nothing_yet() {
        let clock = FlushClock::new();
        clock.mark();
        let mut inner = false;
        assert!(clock.flush_if_owed(|| {
            inner = clock.flush_if_owed(|| {});
        }));
        assert!(
            inner,
            "the second CPU flushed while the first was in flight"
        );
    }

    /// A change counted after a flush started is not covered by it.
    #[test]
    fn a_mark_during_a_flush_stays_owed() {
        let clock = FlushClock::new();
        clock.mark();
        clock.flush_now(|| clock.mark());
        assert!(clock.flush_if_owed(|| {}));
        clock.flush_now(|| {});
        assert!(!clock.flush_if_owed(|| panic!("covered")));
    }
}
