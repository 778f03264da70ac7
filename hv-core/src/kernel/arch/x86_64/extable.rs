//! The exception table: the instructions that may fault on a guest
//! address, each with the address it resumes at, as Linux and Xen keep
//! them. An instruction is added in its assembly, right after it:
//!
//! ```text
//! 1:  rep movsb
//! 2:  ...
//!     .pushsection .ex_table, "a"
//!     .balign 8
//!     .quad 1b, 2b
//!     .popsection
//! ```
//!
//! `link.ld` gathers every `.ex_table` into one read-only array between
//! `__ex_table_start` and `__ex_table_end`; a #PF or #GP in hv-core at an
//! instruction listed here resumes at its fix-up (the trap handler sets
//! RIP), any other is fatal.

/// One entry: the instruction's address and where it resumes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Entry {
    insn: u64,
    fixup: u64,
}

unsafe extern "C" {
    static __ex_table_start: Entry;
    static __ex_table_end: Entry;
}

fn table() -> &'static [Entry] {
    let start = core::ptr::addr_of!(__ex_table_start);
    let end = core::ptr::addr_of!(__ex_table_end);
    let len = (end as usize - start as usize) / core::mem::size_of::<Entry>();
    // SAFETY: the linker script places the `.ex_table` sections, arrays of
    // 8-byte-aligned (insn, fixup) quad pairs, contiguously between the
    // two symbols in read-only data that lives as long as hv-core.
    unsafe { core::slice::from_raw_parts(start, len) }
}

/// Where a fault at `rip` resumes, if the table lists `rip`.
pub fn fixup(rip: u64) -> Option<u64> {
    table().iter().find(|e| e.insn == rip).map(|e| e.fixup)
}

/// How many instructions may fault on guest addresses (the boot log
/// shows it: a table the linker dropped would leave every guest copy
/// fatal).
pub fn len() -> usize {
    table().len()
}
