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
pub mod event_channel;
pub mod frame_alloc;
pub mod frame_table;
pub mod grant_table;
pub mod hypercall_table;
pub mod layout;
pub mod pvclock;
pub mod runstate;
pub mod sched_policy;
pub mod speculation;
pub mod wallclock;

// `event_channel` keeps its own names for `abi`'s; they must stay equal.
const _: () = {
    use abi::event_channel as xen;
    assert!(event_channel::NR_VIRQS == xen::NR_VIRQS as usize);
    // Per-vCPU VIRQs are exactly Xen's (`virq_is_global` false).
    let mut virq = 0;
    while virq < xen::NR_VIRQS {
        let per_vcpu = matches!(
            virq,
            xen::VIRQ_TIMER
                | xen::VIRQ_DEBUG
                | xen::VIRQ_DEBUGGER
                | xen::VIRQ_XENOPROF
                | xen::VIRQ_XENPMU
        );
        assert!(event_channel::virq_is_per_vcpu(virq) == per_vcpu);
        virq += 1;
    }
};
/// `event_channel::Port` is `abi::event_channel::Port` (fails to build if not).
const _: fn(abi::event_channel::Port) -> event_channel::Port = |port| port;

/// The product name and version printed in the banner.
pub const PRODUCT: &str = "hv-core";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
