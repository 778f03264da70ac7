//! Mapping the shared-info page, and access to it and to this vCPU's slot.

pub use crate::arch::shared::shared_info;
use crate::shared_info::VcpuInfoCell;

/// This vCPU's `vcpu_info` (the SDK runs on vCPU 0).
pub fn vcpu() -> &'static VcpuInfoCell {
    &shared_info().vcpu_info[0]
}

pub(crate) use crate::arch::shared::map;
