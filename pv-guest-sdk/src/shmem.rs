//! Pages shared with another party (the hypervisor, a peer domain): the one
//! way the SDK reads and writes them.
//!
//! Memory that another domain may write at any moment cannot hold ordinary
//! Rust objects: a `&[u8]` into it would promise the compiler that nothing
//! changes underneath. A [`SharedPage`] instead offers atomics for the words
//! both sides synchronise on (ring indices, grant flags) and volatile copies
//! for the data itself, each copy reading the page exactly once, so a value
//! that was checked is the value that is used (no double fetch).
//!
//! Every access is bounds-checked against the page; a bad offset is a bug
//! in the caller and panics rather than touching memory outside the page.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};

use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Bytes in a page.
pub const PAGE_BYTES: usize = 4096;

/// One 4 KiB page of shared memory.
#[repr(C, align(4096))]
pub struct SharedPage(UnsafeCell<[u8; PAGE_BYTES]>);

// SAFETY: all access goes through atomics or volatile copies; the page is
// memory the other side writes concurrently anyway, and no Rust invariant
// depends on its contents (every type read from it is `FromBytes`).
unsafe impl Sync for SharedPage {}

impl SharedPage {
    /// A zeroed page (in ordinary memory: for host tests, or for a page of
    /// the heap whose frame is shared).
    pub const fn zeroed() -> SharedPage {
        SharedPage(UnsafeCell::new([0; PAGE_BYTES]))
    }

    /// A zeroed page on the heap.
    pub fn new_boxed() -> alloc::boxed::Box<SharedPage> {
        alloc::boxed::Box::new(Self::zeroed())
    }

    /// The page mapped at `va`.
    ///
    /// # Safety
    /// `va` must be page aligned and mapped readable and writable for `'a`,
    /// and for `'a` the page must hold no Rust object and be reached by this
    /// program only through `SharedPage` (another domain or the hypervisor
    /// may write it at any time).
    pub unsafe fn from_va<'a>(va: u64) -> &'a SharedPage {
        assert!(
            va.is_multiple_of(PAGE_BYTES as u64),
            "{va:#x} is not page aligned"
        );
        // SAFETY: the caller vouches for the mapping and its exclusive use
        // through this type for `'a`; alignment was checked.
        unsafe { &*(va as *const SharedPage) }
    }

    /// The several consecutive pages mapped from `va`.
    ///
    /// # Safety
    /// As [`SharedPage::from_va`], for each of the `count` pages.
    pub unsafe fn slice_from_va<'a>(va: u64, count: usize) -> &'a [SharedPage] {
        assert!(
            va.is_multiple_of(PAGE_BYTES as u64),
            "{va:#x} is not page aligned"
        );
        // SAFETY: as `from_va`, for `count` consecutive pages; `SharedPage`
        // is exactly one page in size and alignment, so the pages form an
        // array.
        unsafe { core::slice::from_raw_parts(va as *const SharedPage, count) }
    }

    /// The page's virtual address.
    pub fn va(&self) -> u64 {
        self.0.get() as u64
    }

    fn base(&self) -> *mut u8 {
        self.0.get().cast::<u8>()
    }

    /// Checks that `[offset, offset + len)` lies in the page and `offset`
    /// is a multiple of `align`.
    fn check(offset: usize, len: usize, align: usize) {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= PAGE_BYTES),
            "shared page access {offset:#x}+{len:#x} is outside the page"
        );
        assert!(
            offset.is_multiple_of(align),
            "shared page access at {offset:#x} is not {align}-aligned"
        );
    }

    /// The 1-byte word at `offset` as an atomic (panics if the word is
    /// outside the page or misaligned).
    pub fn u8(&self, offset: usize) -> &AtomicU8 {
        Self::check(offset, 1, 1);
        // SAFETY: in bounds (checked); an `AtomicU8` may alias bytes others
        // write concurrently, and the page outlives `&self`.
        unsafe { AtomicU8::from_ptr(self.base().add(offset)) }
    }

    /// The 2-byte word at `offset` as an atomic (panics if the word is
    /// outside the page or misaligned).
    pub fn u16(&self, offset: usize) -> &AtomicU16 {
        Self::check(offset, 2, 2);
        // SAFETY: in bounds and aligned (checked); as for `u8`.
        unsafe { AtomicU16::from_ptr(self.base().add(offset).cast()) }
    }

    /// The 4-byte word at `offset` as an atomic (panics if the word is
    /// outside the page or misaligned).
    pub fn u32(&self, offset: usize) -> &AtomicU32 {
        Self::check(offset, 4, 4);
        // SAFETY: in bounds and aligned (checked); as for `u8`.
        unsafe { AtomicU32::from_ptr(self.base().add(offset).cast()) }
    }

    /// The 8-byte word at `offset` as an atomic (panics if the word is
    /// outside the page or misaligned).
    pub fn u64(&self, offset: usize) -> &AtomicU64 {
        Self::check(offset, 8, 8);
        // SAFETY: in bounds and aligned (checked); as for `u8`.
        unsafe { AtomicU64::from_ptr(self.base().add(offset).cast()) }
    }

    /// One copy of the `T` at `offset` (which must suit `T`'s alignment).
    /// Any bit pattern is a valid `T`, so whatever the other side wrote is
    /// safe to use once it is checked.
    pub fn read<T: FromBytes>(&self, offset: usize) -> T {
        Self::check(offset, size_of::<T>(), align_of::<T>());
        // SAFETY: in bounds and aligned (checked); `T: FromBytes` accepts
        // any contents; volatile keeps it one read of the shared memory.
        unsafe { core::ptr::read_volatile(self.base().add(offset).cast::<T>()) }
    }

    /// Writes `value` at `offset` (which must suit `T`'s alignment).
    pub fn write<T: IntoBytes + Immutable + Copy>(&self, offset: usize, value: T) {
        Self::check(offset, size_of::<T>(), align_of::<T>());
        // SAFETY: in bounds and aligned (checked); the page holds no Rust
        // object, so overwriting it breaks nothing.
        unsafe { core::ptr::write_volatile(self.base().add(offset).cast::<T>(), value) }
    }

    /// Copies `out.len()` bytes from `offset` into `out`.
    pub fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        Self::check(offset, out.len(), 1);
        for (i, byte) in out.iter_mut().enumerate() {
            // SAFETY: in bounds (checked for the whole range).
            *byte = unsafe { core::ptr::read_volatile(self.base().add(offset + i)) };
        }
    }

    /// Copies `bytes` into the page at `offset`.
    pub fn write_bytes(&self, offset: usize, bytes: &[u8]) {
        Self::check(offset, bytes.len(), 1);
        for (i, &byte) in bytes.iter().enumerate() {
            // SAFETY: in bounds (checked for the whole range).
            unsafe { core::ptr::write_volatile(self.base().add(offset + i), byte) };
        }
    }

    /// Sets `len` bytes from `offset` to `byte`.
    pub fn fill(&self, offset: usize, len: usize, byte: u8) {
        Self::check(offset, len, 1);
        for i in 0..len {
            // SAFETY: in bounds (checked for the whole range).
            unsafe { core::ptr::write_volatile(self.base().add(offset + i), byte) };
        }
    }
}

#[cfg(test)]
mod tests {
    use core::sync::atomic::Ordering;

    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
    #[repr(C)]
    struct Pair {
        a: u32,
        b: u32,
    }

    #[test]
    fn atomics_and_copies_see_the_same_bytes() {
        let page = SharedPage::new_boxed();
        page.u32(8).store(0x1122_3344, Ordering::SeqCst);
        assert_eq!(page.read::<u32>(8), 0x1122_3344);
        page.write(16, Pair { a: 1, b: 2 });
        assert_eq!(page.u64(16).load(Ordering::SeqCst), 2 << 32 | 1);
        let mut out = [0u8; 4];
        page.read_bytes(8, &mut out);
        assert_eq!(out, 0x1122_3344u32.to_le_bytes());
        page.write_bytes(4094, &[7, 8]);
        assert_eq!(page.u16(4094).load(Ordering::SeqCst), 0x0807);
        page.fill(0, 4, 0xff);
        assert_eq!(page.u32(0).load(Ordering::SeqCst), u32::MAX);
    }

    #[test]
    #[should_panic(expected = "outside the page")]
    fn an_access_past_the_end_panics() {
        SharedPage::new_boxed().read_bytes(4090, &mut [0; 7]);
    }

    #[test]
    #[should_panic(expected = "outside the page")]
    fn an_offset_that_overflows_panics() {
        SharedPage::new_boxed().write_bytes(usize::MAX, &[1]);
    }

    #[test]
    #[should_panic(expected = "aligned")]
    fn a_misaligned_word_panics() {
        SharedPage::new_boxed().u32(2);
    }
}
