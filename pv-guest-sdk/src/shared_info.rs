//! The shared-info page as the guest sees it: memory the hypervisor writes
//! at any time, so every field is an atomic. The views are `abi`'s
//! ([`abi::shared_info`]), which checks their layouts against
//! `abi::xen::{SharedInfo, VcpuInfo, VcpuTimeInfo}` at compile time.
//!
//! On the target, [`crate::shared`] maps the real page and hands out
//! `&'static SharedInfoPage`; host tests build one in ordinary memory.

pub use abi::shared_info::{EVENT_WORDS, SharedInfoPage, VcpuInfoCell, VcpuTimeInfoCell};
