//! `xen_version`. Every string goes out in a buffer zeroed first, so
//! nothing of hv-core's stack reaches the guest beyond the text itself.

use abi::Errno;
use abi::ops::{
    CompileInfo, FeatureInfo, XEN_CAPABILITIES_INFO_LEN, XEN_CHANGESET_INFO_LEN,
    XEN_EXTRAVERSION_LEN, XENFEAT_DOM0, XENFEAT_PAE_PGDIR_ABOVE_4GB, XENVER_CAPABILITIES,
    XENVER_CHANGESET, XENVER_COMPILE_INFO, XENVER_EXTRAVERSION, XENVER_GET_FEATURES,
    XENVER_GUEST_HANDLE, XENVER_PAGESIZE, XENVER_PLATFORM_PARAMETERS, XENVER_VERSION,
};

use crate::{domain, guest};

/// What `XENVER_extraversion` reports after the interface version.
const EXTRAVERSION: &str = "-hv-core";
const CAPABILITIES: &str = "xen-3.0-x86_64 ";
const CHANGESET: &str = concat!("hv-core ", env!("CARGO_PKG_VERSION"));

#[derive(Clone, Copy, Debug)]
pub struct XenVersion {
    pub cmd: u32,
    pub arg: u64,
}

/// `text` in a zeroed `N`-byte buffer (truncated, always NUL-terminated).
fn padded<const N: usize>(text: &str) -> [u8; N] {
    let mut buf = [0u8; N];
    let n = text.len().min(N - 1);
    buf[..n].copy_from_slice(&text.as_bytes()[..n]);
    buf
}

impl XenVersion {
    pub fn handle(self) -> Result<i64, Errno> {
        match self.cmd {
            XENVER_VERSION => Ok(abi::XEN_INTERFACE_VERSION.0 as i64),
            XENVER_EXTRAVERSION => {
                guest::write(self.arg, &padded::<XEN_EXTRAVERSION_LEN>(EXTRAVERSION))?;
                Ok(0)
            }
            XENVER_COMPILE_INFO => {
                let info = CompileInfo {
                    compiler: padded("rustc (stable)"),
                    compile_by: padded("hv-core"),
                    compile_domain: padded(""),
                    compile_date: padded(""),
                };
                guest::write(self.arg, &info)?;
                Ok(0)
            }
            XENVER_CAPABILITIES => {
                guest::write(self.arg, &padded::<XEN_CAPABILITIES_INFO_LEN>(CAPABILITIES))?;
                Ok(0)
            }
            XENVER_CHANGESET => {
                guest::write(self.arg, &padded::<XEN_CHANGESET_INFO_LEN>(CHANGESET))?;
                Ok(0)
            }
            XENVER_PLATFORM_PARAMETERS => {
                guest::write(self.arg, &abi::xen::HYPERVISOR_VIRT_START)?;
                Ok(0)
            }
            XENVER_GET_FEATURES => {
                let mut info: FeatureInfo = guest::read(self.arg)?;
                // Only submap 0 exists (XENFEAT_NR_SUBMAPS).
                if info.submap_idx != 0 {
                    return Err(Errno::Inval);
                }
                let privileged = domain::with_current(|d| d.privileged);
                info.submap = 1 << XENFEAT_PAE_PGDIR_ABOVE_4GB
                    | if privileged { 1 << XENFEAT_DOM0 } else { 0 };
                guest::write(self.arg, &info)?;
                Ok(0)
            }
            XENVER_PAGESIZE => Ok(4096),
            XENVER_GUEST_HANDLE => {
                guest::write(self.arg, &[0u8; 16])?;
                Ok(0)
            }
            _ => Err(Errno::NoSys),
        }
    }
}
