//! Version numbers of the contract.
//!
//! Compatibility rule for [`AbiVersion`]: the same major version, and the
//! implementation's minor version at least the image's. Before 1.0 every minor
//! bump may break, so a 0.x image needs exactly the same minor version.

use core::fmt;

/// A `major.minor` version of the project's ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AbiVersion {
    /// Major version: a change breaks compatibility.
    pub major: u16,
    /// Minor version: a change adds to the contract (breaking before 1.0).
    pub minor: u16,
}

impl AbiVersion {
    /// The version `major.minor`.
    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }

    /// Packs the version as `major << 16 | minor`, the form used in ELF notes
    /// and hypercall results.
    pub const fn to_u32(self) -> u32 {
        (self.major as u32) << 16 | self.minor as u32
    }

    /// Unpacks a version packed by [`AbiVersion::to_u32`].
    pub const fn from_u32(raw: u32) -> Self {
        Self::new((raw >> 16) as u16, raw as u16)
    }

    /// Whether an implementation of version `self` can run an image built
    /// for `image`.
    pub const fn supports(self, image: AbiVersion) -> bool {
        if self.major != image.major {
            return false;
        }
        if self.major == 0 {
            self.minor == image.minor
        } else {
            self.minor >= image.minor
        }
    }
}

impl fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A Xen interface version, packed as Xen's `XENVER_version` result
/// (`major << 16 | minor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenVersion(pub u32);

impl XenVersion {
    /// The major version (the upper 16 bits).
    pub const fn major(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// The minor version (the lower 16 bits).
    pub const fn minor(self) -> u16 {
        self.0 as u16
    }
}

impl fmt::Display for XenVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major(), self.minor())
    }
}

/// The version of the project's contract (Xen subset plus our extensions).
pub const HV_ABI_VERSION: AbiVersion = AbiVersion::new(0, 1);

/// The Xen release whose PV64 interface we implement a subset of, packed as
/// `XENVER_version` reports it: Xen 4.17 is 0x00040011. (This is the
/// release, not the C headers' `__XEN_LATEST_INTERFACE_VERSION__`
/// compatibility macro, which has its own numbering.)
pub const XEN_INTERFACE_VERSION: XenVersion = XenVersion(0x0004_0011);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks() {
        let v = AbiVersion::new(3, 7);
        assert_eq!(v.to_u32(), 0x0003_0007);
        assert_eq!(AbiVersion::from_u32(0x0003_0007), v);
    }

    #[test]
    fn pre_1_0_needs_the_same_minor() {
        let hv = AbiVersion::new(0, 2);
        assert!(hv.supports(AbiVersion::new(0, 2)));
        assert!(!hv.supports(AbiVersion::new(0, 1)));
        assert!(!hv.supports(AbiVersion::new(0, 3)));
    }

    #[test]
    fn post_1_0_accepts_older_minors_of_the_same_major() {
        let hv = AbiVersion::new(1, 4);
        assert!(hv.supports(AbiVersion::new(1, 0)));
        assert!(hv.supports(AbiVersion::new(1, 4)));
        assert!(!hv.supports(AbiVersion::new(1, 5)));
        assert!(!hv.supports(AbiVersion::new(2, 0)));
    }

    #[test]
    fn xen_interface_is_4_17() {
        assert_eq!(XEN_INTERFACE_VERSION.to_string(), "4.17");
        assert_eq!(HV_ABI_VERSION.to_string(), "0.1");
    }
}
