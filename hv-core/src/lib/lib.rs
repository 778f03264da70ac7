//! hv-core's pure logic: everything that decides without touching hardware,
//! so that it builds and is unit-tested on the host.
//!
//! The kernel binary (`main.rs` and `arch/`) feeds these modules what it reads
//! from the machine and acts on their answers. Nothing here uses `unsafe`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod acpi_sleep;
pub mod batch;
pub mod cmdline;
pub mod console;
pub mod cpus;
pub mod event_channel;
pub mod flush_clock;
pub mod frame_alloc;
pub mod frame_table;
pub mod grant_table;
pub mod hypercall_table;
pub mod layout;
pub mod pvclock;
pub mod runstate;
pub mod sched_policy;
pub mod slot;
pub mod speculation;
pub mod wallclock;

#[cfg(test)]
mod test_support;

/// The product name and version printed in the banner.
pub const PRODUCT: &str = "hv-core";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
