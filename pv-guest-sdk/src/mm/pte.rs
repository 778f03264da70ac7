//! Page-table entries: Xen's x86 bits and helpers from [`abi::pte`], plus
//! the flag sets this SDK maps with.

pub use abi::pte::*;

/// A kernel data mapping (accessed and dirty set up front, which saves the
/// hypervisor emulating the hardware's first-touch updates).
pub const KERNEL_RW: u64 = PRESENT | WRITABLE | ACCESSED | DIRTY;
/// A kernel read-only mapping (page tables, shared pages the guest only
/// reads): accessed set up front, never writable.
pub const KERNEL_RO: u64 = PRESENT | ACCESSED;
/// What intermediate tables (L4-L2 entries) get: permissions are decided
/// at the leaves.
pub const TABLE: u64 = PRESENT | WRITABLE | USER | ACCESSED | DIRTY;
