//! Everything that needs `unsafe` at the instruction level: entry and
//! start of day, the hypercall instruction, the trap and callback stubs,
//! user-mode entry, raw memory access through the physmap and the M2P.
//! The rest of the SDK builds safe APIs on these.

pub mod cpu;
pub mod entry;
pub mod hypercall;
pub mod mem;
pub mod shared;
pub mod start;
pub mod user;
