//! The image bundle: the guest kernels dom0 can create domains from.
//!
//! The boot loader hands dom0 one module (its initrd, `start_info.mod_start`
//! and `mod_len`): a ustar archive made by `cargo xtask build`, one regular
//! file per image, named by the image's name (`hello`, `pingpong`,
//! `domu-crash`, ...). The archive is read in place; nothing is copied.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use tar_no_std::{CorruptDataError, TarArchiveRef};

/// One image of the bundle.
pub struct Image<'a> {
    pub name: String,
    pub bytes: &'a [u8],
}

/// The bundle's images, in archive order.
#[derive(Default)]
pub struct Bundle<'a> {
    images: Vec<Image<'a>>,
}

/// Why the module is not a bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleError {
    /// The archive reader refused it (every header's checksum, type and
    /// size are checked, and the end marker, before anything is read).
    NotAnArchive { len: usize, why: CorruptDataError },
    /// An entry's name is not UTF-8.
    BadName,
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnArchive { len, why } => {
                write!(f, "the {len}-byte module is not a tar archive: {why}")
            }
            Self::BadName => f.write_str("an image name in the bundle is not UTF-8"),
        }
    }
}

impl<'a> Bundle<'a> {
    /// Reads the archive in `bytes`. Directory prefixes are dropped from
    /// names (`guests/hello` is `hello`).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BundleError> {
        // Only the two end blocks: an archive of nothing, which the reader
        // refuses as too short.
        if !bytes.is_empty() && bytes.len().is_multiple_of(512) && bytes.iter().all(|&b| b == 0) {
            return Ok(Self::default());
        }
        let archive = TarArchiveRef::new(bytes).map_err(|why| BundleError::NotAnArchive {
            len: bytes.len(),
            why,
        })?;
        let mut images = Vec::new();
        for entry in archive.entries() {
            let name = entry.filename();
            let name = name.as_str().map_err(|_| BundleError::BadName)?;
            let name = name.rsplit('/').next().unwrap_or(name);
            images.push(Image {
                name: name.into(),
                bytes: entry.data(),
            });
        }
        Ok(Self { images })
    }

    pub fn images(&self) -> &[Image<'a>] {
        &self.images
    }

    /// The image called `name`.
    pub fn find(&self, name: &str) -> Option<&Image<'a>> {
        self.images.iter().find(|image| image.name == name)
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// A ustar archive of `files` (name, contents), as `cargo xtask build`
/// writes it: the test's independent writer.
#[cfg(test)]
pub(crate) fn ustar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        header[100..108].copy_from_slice(b"0000644\0");
        header[108..116].copy_from_slice(b"0000000\0");
        header[116..124].copy_from_slice(b"0000000\0");
        let size = alloc::format!("{:011o}\0", data.len());
        header[124..136].copy_from_slice(size.as_bytes());
        header[136..148].copy_from_slice(b"00000000000\0");
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        let sum = alloc::format!("{sum:06o}\0 ");
        header[148..156].copy_from_slice(sum.as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_image_by_name() {
        let hello = b"\x7fELF hello".repeat(100);
        let spin = b"\x7fELF spin".to_vec();
        let archive = ustar(&[("hello", &hello), ("images/spin", &spin)]);
        let bundle = Bundle::parse(&archive).unwrap();
        let names: Vec<&str> = bundle.images().iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["hello", "spin"]);
        assert_eq!(bundle.find("hello").unwrap().bytes, &hello[..]);
        assert_eq!(bundle.find("spin").unwrap().bytes, &spin[..]);
        assert!(bundle.find("pingpong").is_none());
    }

    #[test]
    fn an_empty_archive_has_no_images() {
        let archive = ustar(&[]);
        let bundle = Bundle::parse(&archive).unwrap();
        assert!(bundle.is_empty());
    }

    #[test]
    fn other_bytes_are_refused() {
        assert_eq!(
            Bundle::parse(&[0u8; 700]).err(),
            Some(BundleError::NotAnArchive {
                len: 700,
                why: CorruptDataError::InvalidBlockSize
            })
        );
        assert!(
            Bundle::parse(&[])
                .err()
                .unwrap()
                .to_string()
                .starts_with("the 0-byte module is not a tar archive: ")
        );
    }

    #[test]
    fn a_damaged_header_or_a_short_archive_is_refused() {
        let mut archive = ustar(&[("hello", b"abc")]);
        archive[3] ^= 1; // the name, under the checksum
        assert!(matches!(
            Bundle::parse(&archive),
            Err(BundleError::NotAnArchive {
                why: CorruptDataError::InvalidChecksum { block_index: 0 },
                ..
            })
        ));
        // An entry claiming more bytes than the archive holds.
        let archive = ustar(&[("hello", &[7; 600])]);
        assert!(Bundle::parse(&archive[..1024 + 512]).is_err());
    }
}
