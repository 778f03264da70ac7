//! `xen_version`: the interface version, build strings and feature map.

use abi::Errno;
use abi::ops::{
    CompileInfo, FeatureInfo, XEN_CAPABILITIES_INFO_LEN, XEN_CHANGESET_INFO_LEN,
    XEN_EXTRAVERSION_LEN, XENFEAT_DOM0, XENFEAT_PAE_PGDIR_ABOVE_4GB, XENVER_CAPABILITIES,
    XENVER_CHANGESET, XENVER_COMPILE_INFO, XENVER_EXTRAVERSION, XENVER_GET_FEATURES,
    XENVER_GUEST_HANDLE, XENVER_PAGESIZE, XENVER_PLATFORM_PARAMETERS, XENVER_VERSION,
};

use abi::xen::DomId;

use crate::domain;

/// What `XENVER_extraversion` reports after the interface version.
const EXTRAVERSION: &str = "-hv-core";
const CAPABILITIES: &str = "xen-3.0-x86_64 ";
const CHANGESET: &str = concat!("hv-core ", env!("CARGO_PKG_VERSION"));

super::op_family! {
    /// A `xen_version` request. Every string goes out in a buffer zeroed
    /// first (`out`), so nothing beyond the text itself reaches the guest.
    XenVersion(DomId) {
        XENVER_VERSION => Version(()), none => version;
        XENVER_EXTRAVERSION => ExtraVersion([u8; XEN_EXTRAVERSION_LEN]), out => extra_version;
        XENVER_COMPILE_INFO => CompileInfo(CompileInfo), out => compile_info;
        XENVER_CAPABILITIES => Capabilities([u8; XEN_CAPABILITIES_INFO_LEN]), out => capabilities;
        XENVER_CHANGESET => Changeset([u8; XEN_CHANGESET_INFO_LEN]), out => changeset;
        XENVER_PLATFORM_PARAMETERS => PlatformParameters(u64), out => platform_parameters;
        XENVER_GET_FEATURES => GetFeatures(FeatureInfo), inout => get_features;
        XENVER_PAGESIZE => PageSize(()), none => page_size;
        XENVER_GUEST_HANDLE => GuestHandle([u8; 16]), out => guest_handle;
    }
}

/// `text` in a zeroed `N`-byte buffer (truncated, always NUL-terminated).
fn padded<const N: usize>(text: &str) -> [u8; N] {
    let mut buf = [0u8; N];
    let n = text.len().min(N - 1);
    buf[..n].copy_from_slice(&text.as_bytes()[..n]);
    buf
}

fn version(_: &mut (), _caller: DomId) -> Result<i64, Errno> {
    Ok(abi::XEN_INTERFACE_VERSION.0 as i64)
}

fn extra_version(text: &mut [u8; XEN_EXTRAVERSION_LEN], _caller: DomId) -> Result<i64, Errno> {
    *text = padded(EXTRAVERSION);
    Ok(0)
}

fn compile_info(info: &mut CompileInfo, _caller: DomId) -> Result<i64, Errno> {
    *info = CompileInfo {
        compiler: padded("rustc (stable)"),
        compile_by: padded("hv-core"),
        compile_domain: padded(""),
        compile_date: padded(""),
    };
    Ok(0)
}

fn capabilities(text: &mut [u8; XEN_CAPABILITIES_INFO_LEN], _caller: DomId) -> Result<i64, Errno> {
    *text = padded(CAPABILITIES);
    Ok(0)
}

fn changeset(text: &mut [u8; XEN_CHANGESET_INFO_LEN], _caller: DomId) -> Result<i64, Errno> {
    *text = padded(CHANGESET);
    Ok(0)
}

fn platform_parameters(virt_start: &mut u64, _caller: DomId) -> Result<i64, Errno> {
    *virt_start = abi::xen::HYPERVISOR_VIRT_START;
    Ok(0)
}

fn get_features(info: &mut FeatureInfo, caller: DomId) -> Result<i64, Errno> {
    // Only submap 0 exists (XENFEAT_NR_SUBMAPS).
    if info.submap_idx != 0 {
        return Err(Errno::Inval);
    }
    let privileged = domain::with(caller, |d| d.privileged).ok_or(Errno::Srch)?;
    info.submap = 1 << XENFEAT_PAE_PGDIR_ABOVE_4GB | if privileged { 1 << XENFEAT_DOM0 } else { 0 };
    Ok(0)
}

fn page_size(_: &mut (), _caller: DomId) -> Result<i64, Errno> {
    Ok(4096)
}

/// The domain handle: hv-core keeps none, so zeros.
fn guest_handle(_handle: &mut [u8; 16], _caller: DomId) -> Result<i64, Errno> {
    Ok(0)
}
