//! The contract between hv-core, dom0 and every PV guest, and nothing else.
//!
//! The ABI is Xen's PV64 ABI for everything the project implements: numbers
//! and layouts come from Xen's public headers, so a guest written against this
//! crate also boots on Xen. The project's own additions live in a separate,
//! documented range with a version of their own ([`HV_ABI_VERSION`]).
//!
//! Two versions therefore describe a guest image:
//! - [`XEN_INTERFACE_VERSION`]: the Xen interface whose subset we implement,
//!   reported to guests by `XENVER_version`;
//! - [`HV_ABI_VERSION`]: the version of this crate's contract as a whole
//!   (Xen subset plus our extensions), declared by images in an ELF note and
//!   checked by the domain builder.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod domctl;
pub mod errno;
pub mod event_channel;
pub mod grant_table;
pub mod hypercall;
pub mod io;
pub mod ops;
pub mod pte;
pub mod shared_info;
pub mod version;
pub mod xen;

pub use errno::Errno;
pub use hypercall::Hypercall;

pub use version::{AbiVersion, HV_ABI_VERSION, XEN_INTERFACE_VERSION, XenVersion};
