//! pv-guest-sdk: what a PV guest kernel links.
//!
//! A guest written against this crate boots as a Xen PV64 domain (Xen 4.17
//! or hv-core, which implements the same ABI). The SDK provides:
//! - start of day: the ELF notes, the hypercall page, `_start`, and a
//!   linker script (`link.ld`) placing the image at [`layout::VIRT_BASE`];
//! - [`hypercall`]: typed hypercalls returning [`Result`] with named errors;
//! - [`console`]: `print!`/`println!`, a `log` backend, `console_io` input;
//! - [`start_info()`] and [`shared_info`] as safe types;
//! - [`traps`]: exception handlers on Xen's bounce frames, and the way back
//!   through `HYPERVISOR_iret`;
//! - [`events`]: per-port handlers, the upcall, and masking (the PV
//!   `cli`/`sti`);
//! - [`mm`]: p2m/M2P translation, a frame allocator, page-table updates
//!   through the hypervisor, and the global heap;
//! - [`time`]: pvclock time, the wallclock, sleeping on the one-shot timer;
//! - [`user`]: guest user mode with its own page-table root and `syscall`;
//! - [`sched`]: power-off and crash;
//! - [`evtchn`]: event channels between domains (allocate, bind, notify,
//!   wait, close, status);
//! - [`grant`]: this domain's grant table (grant, revoke) and mapping or
//!   copying other domains' grants;
//! - [`ring`]: Xen's `io/ring.h` shared ring, front and back halves;
//! - [`shmem`]: [`shmem::SharedPage`], the one way to touch memory another
//!   domain shares;
//! - [`console_ring`]: the domU console page, which [`console`] uses when
//!   the domain is not the initial one.
//!
//! A guest is a `no_std`, `no_main` binary that names its entry function
//! with [`entry!`] and links with the SDK's linker script (see
//! `docs/sdk.md`). `unsafe` code lives in `arch`, `hypercall`,
//! `mm::paging`, `mm::heap`, `fn_cell`, `shmem` and `grant::target` (where
//! mapped grants become `SharedPage`s); the other modules deny it. The
//! pure parts (start_info checks, pvclock arithmetic, event dispatch,
//! frame allocation, p2m, rings, grant entries and refs, the console page)
//! build and are tested on the host.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]
// On the host only the pure parts are built; their target-side users are not.
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

extern crate alloc;

pub mod error;
pub mod evtchn;
#[allow(unsafe_code)]
mod fn_cell;
pub mod grant;
pub mod layout;
pub mod line_editor;
pub mod mm;
pub mod ring;
pub mod shared_info;
#[allow(unsafe_code)]
pub mod shmem;
pub mod start_info;
pub mod time;
pub mod traps;
pub mod user;

pub mod events;

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
mod arch;
#[cfg(target_os = "none")]
pub mod console;
pub mod console_ring;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod hypercall;
#[cfg(target_os = "none")]
mod panic;
#[cfg(target_os = "none")]
pub mod sched;
#[cfg(target_os = "none")]
pub mod shared;
#[cfg(target_os = "none")]
pub mod smp;
#[cfg(target_os = "none")]
mod start;

pub use abi::{HV_ABI_VERSION, XEN_INTERFACE_VERSION};
pub use error::{Error, Result};
pub use start_info::StartInfo;

#[cfg(target_os = "none")]
pub use start::start_info;

/// The privilege level the guest kernel runs at: 3 on PV64 (read from CS).
#[cfg(target_os = "none")]
pub fn current_privilege_level() -> u8 {
    (arch::cpu::read_cs() & 3) as u8
}

/// Names the guest kernel's entry function, `fn(&'static StartInfo) -> !`,
/// which the SDK calls once start of day is done (events unmasked, heap
/// ready). On the host it produces a `main` that explains the binary is a
/// guest kernel, so the workspace still builds and tests there; the
/// guest's own kernel code is then `#[cfg(target_os = "none")]`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[cfg(target_os = "none")]
        #[unsafe(no_mangle)]
        pub fn __pv_guest_main(start: &'static $crate::StartInfo<'static>) -> ! {
            let main: fn(&'static $crate::StartInfo<'static>) -> ! = $main;
            main(start)
        }

        #[cfg(not(target_os = "none"))]
        fn main() {
            eprintln!("this is a PV guest kernel: boot it under Xen or hv-core, not on the host");
            std::process::exit(2);
        }
    };
}

#[cfg(test)]
mod docs {
    #[test]
    fn the_guide_quotes_the_hello_guest_as_built() {
        let guide = include_str!("../../docs/sdk.md");
        let hello = include_str!("../../tests/guests/src/bin/sdk-hello.rs");
        assert!(
            guide.contains(hello.trim_end()),
            "docs/sdk.md must quote tests/guests/src/bin/sdk-hello.rs exactly"
        );
    }
}
