//! The PV64 domain builder both builders share: hv-core builds dom0 with it
//! at boot, dom0's toolstack every other domain (Xen's libelf and
//! `xc_dom_*`). It implements the boot protocol `abi` states: which notes
//! an image carries, where its segments land, where `start_info`, the p2m
//! list, the bootstrap page tables and the stack go.
//!
//! - [`image`]: parses and checks a PV guest kernel (ELF64 and Xen notes);
//! - [`start_of_day`]: lays out a new domain's first mapped area, and
//!   [`start_of_day::build`] fills it.
//!
//! Pure: no heap, no `unsafe`, host-tested, linkable into both builders.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod image;
pub mod start_of_day;
