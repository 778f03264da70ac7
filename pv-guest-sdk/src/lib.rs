//! pv-guest-sdk: what a PV guest kernel links.
//!
//! It replaces the sensitive instructions a guest kernel may not execute in
//! ring 3 with hypercalls (interrupt masking, page-table writes, CR3, traps,
//! halt, time), gives start of day, console and `log`, event channels, grant
//! tables and Xen's shared rings safe Rust APIs, and provides the split
//! front- and back-end drivers, so dom0 and any driver domain share them.
//! It speaks only the `abi` crate's contract and never depends on hv-core.
//!
//! Today it holds only what every guest needs before hypercalls exist.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub use abi::{HV_ABI_VERSION, XEN_INTERFACE_VERSION};

/// Spins forever without touching any privileged state: the one thing a
/// guest can do before it has hypercalls to block with.
pub fn idle() -> ! {
    loop {
        core::hint::spin_loop();
    }
}
