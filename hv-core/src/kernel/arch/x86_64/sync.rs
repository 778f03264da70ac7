//! Locks that are only ever taken with interrupts off, so an interrupt
//! handler on the same CPU can never spin on a lock its own CPU holds.
//!
//! hv-core runs with interrupts off everywhere: every entry from a guest
//! clears IF (interrupt gates, `syscall`'s flag mask), interrupt handlers
//! run with it clear, and the one `sti` is the idle halt's
//! (`power::wait_for_interrupt`, which clears it again before it returns).
//! So taking a lock saves and restores nothing (reading RFLAGS is a
//! `pushf`, dear under emulation, and hv-core takes locks on most paths);
//! debug builds check the rule.
use spin::Mutex;
use x86_64::instructions::interrupts;

pub struct IrqMutex<T> {
    inner: Mutex<T>,
}

impl<T> IrqMutex<T> {
    pub const fn new(value: T) -> Self {
        Self {
            inner: Mutex::new(value),
        }
    }

    /// Runs `f` with the lock held (interrupts are off: see the module
    /// documentation). While it waits for the lock the CPU answers other
    /// CPUs' TLB-flush requests (`percpu::serve_flush`): the holder may be
    /// waiting for this CPU's flush.
    #[inline(always)]
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        debug_assert!(
            !interrupts::are_enabled(),
            "a lock taken with interrupts on"
        );
        let mut guard = match self.inner.try_lock() {
            Some(guard) => guard,
            None => self.wait(),
        };
        f(&mut guard)
    }

    /// The contended case of [`Self::with`], out of line.
    #[inline(never)]
    fn wait(&self) -> spin::MutexGuard<'_, T> {
        loop {
            if let Some(guard) = self.inner.try_lock() {
                return guard;
            }
            // Only once there are other CPUs to ask: before that GS may
            // not yet hold this CPU's block.
            if super::percpu::online_count() > 1 {
                super::percpu::serve_flush();
            }
            core::hint::spin_loop();
        }
    }

    /// Runs `f` with the lock taken even if this CPU died holding it, for
    /// the report on the way to stopping the machine (`serial::report_then`).
    ///
    /// # Safety
    ///
    /// The caller must never return to the code this CPU was running when
    /// it took the lock, if any: the machine stops first. Then the holder's
    /// reference is never used again, and `f`'s is the only live one.
    pub unsafe fn with_forced<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        interrupts::disable();
        if self.inner.is_locked() {
            // SAFETY: interrupts are off; the holder is code this CPU
            // interrupted (or is unwinding from), which the caller
            // guarantees never resumes, or another CPU, which the report
            // then races (its output may interleave; the machine stops
            // after the report either way).
            unsafe { self.inner.force_unlock() };
        }
        f(&mut self.inner.lock())
    }
}
