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
    /// interrupt flag afterwards.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        interrupts::without_interrupts(|| f(&mut self.inner.lock()))
    }

    /// For the fatal-error path only: takes the lock even if this CPU died
    /// holding it, because the machine is about to stop and the report
    /// matters more than the interrupted writer.
    pub fn with_forced<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        interrupts::disable();
        if self.inner.is_locked() {
            // SAFETY: only called on the way to stopping the machine with
            // interrupts off and (until SMP) a single CPU: the holder was
            // interrupted by the fault being reported and never resumes.
            unsafe { self.inner.force_unlock() };
        }
        f(&mut self.inner.lock())
    }
}
