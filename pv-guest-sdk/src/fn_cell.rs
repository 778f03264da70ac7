//! A function pointer that interrupt-context code can read without a lock.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicUsize, Ordering};

/// An optional function pointer of type `F` in an atomic word. `F` must be
/// a function pointer type (checked for size; function pointers are never
/// null, so 0 stands for "none").
pub struct FnCell<F> {
    raw: AtomicUsize,
    _type: PhantomData<F>,
}

impl<F: Copy> FnCell<F> {
    pub const fn new() -> Self {
        Self {
            raw: AtomicUsize::new(0),
            _type: PhantomData,
        }
    }

    pub fn set(&self, f: F) {
        const { assert!(core::mem::size_of::<F>() == core::mem::size_of::<usize>()) };
        // SAFETY: same size (checked above); a function pointer is a plain
        // address.
        let raw = unsafe { core::mem::transmute_copy::<F, usize>(&f) };
        self.raw.store(raw, Ordering::Release);
    }

    pub fn clear(&self) {
        self.raw.store(0, Ordering::Release);
    }

    pub fn get(&self) -> Option<F> {
        let raw = self.raw.load(Ordering::Acquire);
        // SAFETY: every non-zero value stored came from `set`, i.e. from a
        // value of type `F` of the same size.
        (raw != 0).then(|| unsafe { core::mem::transmute_copy::<usize, F>(&raw) })
    }
}

impl<F: Copy> Default for FnCell<F> {
    fn default() -> Self {
        Self::new()
    }
}
