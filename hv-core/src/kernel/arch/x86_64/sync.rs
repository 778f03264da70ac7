//! Locks that disable interrupts while held, so an interrupt handler on the
//! same CPU can never spin on a lock its own CPU holds.

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

    /// Runs `f` with the lock held and interrupts off, restoring the
    /// interrupt flag afterwards. While it waits for the lock the CPU
    /// answers other CPUs' TLB-flush requests (`percpu::serve_flush`): the
    /// holder may be waiting for this CPU's flush.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        interrupts::without_interrupts(|| {
            let mut guard = loop {
                if let Some(guard) = self.inner.try_lock() {
                    break guard;
                }
                // Only once there are other CPUs to ask: before that GS
                // may not yet hold this CPU's block.
                if super::percpu::online_count() > 1 {
                    super::percpu::serve_flush();
                }
                core::hint::spin_loop();
            };
            f(&mut guard)
        })
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
