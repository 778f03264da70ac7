//! hv-core: the ring-0 hypervisor.
//!
//! Boot order: serial console and exception handling first (so that any
//! later failure is reported), then the boot information, memory (frame
//! allocator, final page tables), ACPI, time and the local APIC timer, and
//! finally the multiboot2 modules: the first one is dom0.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
mod arch;
#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod cpuid;
#[cfg(target_os = "none")]
mod dom0;
#[cfg(target_os = "none")]
mod domain;
#[cfg(target_os = "none")]
mod event_delivery;
#[cfg(target_os = "none")]
mod grant;
#[cfg(target_os = "none")]
mod guest;
#[cfg(target_os = "none")]
mod hypercall;
#[cfg(target_os = "none")]
mod lifecycle;
#[cfg(target_os = "none")]
mod logger;
#[cfg(target_os = "none")]
mod memory;
#[cfg(target_os = "none")]
mod page_tables;
#[cfg(target_os = "none")]
mod scheduler;
#[cfg(target_os = "none")]
mod stop;
#[cfg(target_os = "none")]
mod vtime;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "hv-core runs on bare metal: build it with `cargo xtask build` and boot it with `cargo xtask run`."
    );
    std::process::exit(2);
}
