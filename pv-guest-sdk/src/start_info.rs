//! `start_info`, checked once and read through a safe type.
//!
//! The domain builder writes `start_info` before the guest runs and never
//! touches it again, so the SDK reads it through a shared reference; the
//! p2m list it points to becomes a slice of `nr_pages` machine frames.

use core::fmt;

use abi::xen::{
    SIF_INITDOMAIN, SIF_MOD_START_PFN, SIF_PRIVILEGED, START_INFO_MAGIC, StartInfo as RawStartInfo,
};

use crate::layout::{PAGE_SIZE, VIRT_BASE};

/// Why a `start_info` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartInfoError {
    /// The magic does not start with "xen-3.0-x86_64": not a PV64 start_info.
    BadMagic([u8; 32]),
    /// The p2m list is shorter than `nr_pages`.
    ShortMfnList {
        /// Pages the domain has.
        nr_pages: u64,
        /// Entries the p2m list has.
        len: usize,
    },
    /// A bootstrap structure lies below the image base.
    BelowImage {
        /// Which structure.
        what: &'static str,
        /// Its virtual address.
        va: u64,
    },
}

impl fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartInfoError::BadMagic(magic) => {
                let end = magic.iter().position(|&b| b == 0).unwrap_or(magic.len());
                write!(
                    f,
                    "start_info magic {:?} is not {:?}",
                    core::str::from_utf8(&magic[..end]).unwrap_or("<not UTF-8>"),
                    "xen-3.0-x86_64"
                )
            }
            StartInfoError::ShortMfnList { nr_pages, len } => {
                write!(f, "mfn_list holds {len} entries for {nr_pages} pages")
            }
            StartInfoError::BelowImage { what, va } => {
                write!(
                    f,
                    "{what} at {va:#x} lies below the image base {VIRT_BASE:#x}"
                )
            }
        }
    }
}

/// What kind of console the builder described.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleInfo {
    /// The initial domain: it writes through `console_io`; `info_off` and
    /// `info_size` locate a VGA/framebuffer description after start_info.
    Dom0 {
        /// Offset of the console description from start_info.
        info_off: u32,
        /// Its size in bytes.
        info_size: u32,
    },
    /// Other domains: a console ring page and its event channel.
    DomU {
        /// Machine frame of the console ring page.
        mfn: u64,
        /// The event channel the console backend signals.
        evtchn: u32,
    },
}

/// The checked `start_info` of this domain.
#[derive(Clone, Copy)]
pub struct StartInfo<'a> {
    raw: &'a RawStartInfo,
    mfn_list: &'a [u64],
}

impl<'a> StartInfo<'a> {
    /// Checks `raw` and the p2m list it names (`mfn_list`, already turned
    /// into a slice by the caller).
    pub fn new(raw: &'a RawStartInfo, mfn_list: &'a [u64]) -> Result<Self, StartInfoError> {
        if !raw.magic.starts_with(START_INFO_MAGIC) {
            return Err(StartInfoError::BadMagic(raw.magic));
        }
        if (mfn_list.len() as u64) < raw.nr_pages {
            return Err(StartInfoError::ShortMfnList {
                nr_pages: raw.nr_pages,
                len: mfn_list.len(),
            });
        }
        for (what, va) in [("page tables", raw.pt_base), ("mfn_list", raw.mfn_list)] {
            if va < VIRT_BASE {
                return Err(StartInfoError::BelowImage { what, va });
            }
        }
        Ok(Self {
            raw,
            mfn_list: &mfn_list[..raw.nr_pages as usize],
        })
    }

    /// The builder's structure, for fields this type does not interpret.
    pub fn raw(&self) -> &'a RawStartInfo {
        self.raw
    }

    /// "xen-3.0-x86_64" (builders may append more).
    pub fn magic(&self) -> &'a str {
        let end = self.raw.magic.iter().position(|&b| b == 0).unwrap_or(32);
        core::str::from_utf8(&self.raw.magic[..end]).unwrap_or("")
    }

    /// Pages the domain was given.
    pub fn nr_pages(&self) -> u64 {
        self.raw.nr_pages
    }

    /// Machine address of the shared-info page.
    pub fn shared_info_maddr(&self) -> u64 {
        self.raw.shared_info
    }

    /// The `SIF_*` flags.
    pub fn flags(&self) -> u32 {
        self.raw.flags
    }

    /// `SIF_PRIVILEGED`: the domain may use privileged operations.
    pub fn is_privileged(&self) -> bool {
        self.raw.flags & SIF_PRIVILEGED != 0
    }

    /// `SIF_INITDOMAIN`: the domain is the initial domain (dom0).
    pub fn is_initial_domain(&self) -> bool {
        self.raw.flags & SIF_INITDOMAIN != 0
    }

    /// The store's page (machine frame) and event channel.
    pub fn store(&self) -> (u64, u32) {
        (self.raw.store_mfn, self.raw.store_evtchn)
    }

    /// The console: `console_io` for the initial domain, a ring page otherwise.
    pub fn console(&self) -> ConsoleInfo {
        if self.is_initial_domain() {
            ConsoleInfo::Dom0 {
                info_off: self.raw.console[0] as u32,
                info_size: (self.raw.console[0] >> 32) as u32,
            }
        } else {
            let (mfn, evtchn) = self.raw.console_domu();
            ConsoleInfo::DomU { mfn, evtchn }
        }
    }

    /// Virtual address of the bootstrap L4 (the initial page-table base).
    pub fn pt_base(&self) -> u64 {
        self.raw.pt_base
    }

    /// Frames of bootstrap page tables, contiguous from `pt_base`.
    pub fn nr_pt_frames(&self) -> u64 {
        self.raw.nr_pt_frames
    }

    /// The p2m list: machine frame of each pseudo-physical frame.
    pub fn mfn_list(&self) -> &'a [u64] {
        self.mfn_list
    }

    /// The module (initrd), as (virtual address or first pfn, length).
    /// With `SIF_MOD_START_PFN` the start is a pseudo-physical frame.
    pub fn module(&self) -> Option<(u64, u64)> {
        (self.raw.mod_len != 0).then_some((self.raw.mod_start, self.raw.mod_len))
    }

    /// `SIF_MOD_START_PFN`: whether [`module`](Self::module)'s start is a PFN (otherwise a virtual address).
    pub fn module_start_is_pfn(&self) -> bool {
        self.raw.flags & SIF_MOD_START_PFN != 0
    }

    /// The command line, up to its first NUL and its first invalid UTF-8.
    pub fn cmdline(&self) -> &'a str {
        let bytes = self.raw.cmdline();
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    /// The value of `key=value` on the command line, if present.
    pub fn cmdline_option(&self, key: &str) -> Option<&'a str> {
        cmdline_option(self.cmdline(), key)
    }

    /// The first pseudo-physical frame after the bootstrap region's
    /// structures: the image, the p2m list, start_info, the bootstrap page
    /// tables and the one-page bootstrap stack that follows them. Frames
    /// from here to `nr_pages` are free for the guest.
    pub fn first_free_pfn(&self, image_end: u64) -> u64 {
        let page_up = |va: u64| (va - VIRT_BASE).div_ceil(PAGE_SIZE);
        let start_info_end =
            self.raw as *const RawStartInfo as u64 + core::mem::size_of::<RawStartInfo>() as u64;
        let ends = [
            page_up(image_end),
            page_up(self.raw.mfn_list + self.raw.nr_pages * 8),
            page_up(start_info_end.max(VIRT_BASE)),
            // The bootstrap stack page follows the page tables.
            page_up(self.raw.pt_base) + self.raw.nr_pt_frames + 1,
        ];
        ends.into_iter().max().unwrap_or(0).min(self.raw.nr_pages)
    }
}

impl fmt::Debug for StartInfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartInfo")
            .field("magic", &self.magic())
            .field("nr_pages", &self.nr_pages())
            .field(
                "shared_info",
                &format_args!("{:#x}", self.shared_info_maddr()),
            )
            .field("flags", &format_args!("{:#x}", self.flags()))
            .field("pt_base", &format_args!("{:#x}", self.pt_base()))
            .field("nr_pt_frames", &self.nr_pt_frames())
            .field("mfn_list", &format_args!("{:#x}", self.raw.mfn_list))
            .field("cmdline", &self.cmdline())
            .finish()
    }
}

/// The value of `key=value` in a space-separated command line; a bare
/// `key` yields `Some("")`. The last occurrence wins.
pub fn cmdline_option<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .rev()
        .find_map(|word| match word.split_once('=') {
            Some((k, v)) if k == key => Some(v),
            None if word == key => Some(""),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use zerocopy::FromZeros;

    use super::*;

    fn raw() -> Box<RawStartInfo> {
        let mut si = Box::new(RawStartInfo::new_zeroed());
        si.magic[..14].copy_from_slice(b"xen-3.0-x86_64");
        si.nr_pages = 4;
        si.flags = SIF_PRIVILEGED | SIF_INITDOMAIN;
        si.pt_base = VIRT_BASE + 0x20_0000;
        si.nr_pt_frames = 5;
        si.mfn_list = VIRT_BASE + 0x10_0000;
        si.shared_info = 0xabc000;
        si.cmd_line[..24].copy_from_slice(b"console=x  loglevel=warn");
        si
    }

    #[test]
    fn accepts_a_well_formed_start_info() {
        let raw = raw();
        let mfns = [10, 11, 12, 13, 14];
        let si = StartInfo::new(&raw, &mfns).unwrap();
        assert_eq!(si.magic(), "xen-3.0-x86_64");
        assert_eq!(si.mfn_list(), &[10, 11, 12, 13]);
        assert!(si.is_privileged() && si.is_initial_domain());
        assert_eq!(si.shared_info_maddr(), 0xabc000);
        assert_eq!(si.cmdline(), "console=x  loglevel=warn");
        assert_eq!(si.cmdline_option("loglevel"), Some("warn"));
        assert_eq!(si.cmdline_option("console"), Some("x"));
        assert_eq!(si.cmdline_option("quiet"), None);
        assert!(matches!(si.console(), ConsoleInfo::Dom0 { .. }));
        assert_eq!(si.module(), None);
    }

    #[test]
    fn refuses_a_wrong_magic() {
        let mut raw = raw();
        raw.magic[..14].copy_from_slice(b"xen-3.0-x86_32");
        assert!(matches!(
            StartInfo::new(&raw, &[0; 4]),
            Err(StartInfoError::BadMagic(_))
        ));
    }

    #[test]
    fn refuses_a_short_p2m_list() {
        let raw = raw();
        assert_eq!(
            StartInfo::new(&raw, &[0; 3]).err(),
            Some(StartInfoError::ShortMfnList {
                nr_pages: 4,
                len: 3
            })
        );
    }

    #[test]
    fn domu_console_comes_from_the_console_words() {
        let mut raw = raw();
        raw.flags = 0;
        raw.set_console_domu(0x1234, 5);
        let si = StartInfo::new(&raw, &[0; 4]).unwrap();
        assert_eq!(
            si.console(),
            ConsoleInfo::DomU {
                mfn: 0x1234,
                evtchn: 5
            }
        );
    }

    #[test]
    fn cmdline_stops_at_invalid_utf8() {
        let mut raw = raw();
        raw.cmd_line[3] = 0xff;
        let si = StartInfo::new(&raw, &[0; 4]).unwrap();
        assert_eq!(si.cmdline(), "con");
    }

    #[test]
    fn cmdline_option_last_wins_and_bare_words_are_empty() {
        assert_eq!(cmdline_option("a=1 b a=2", "a"), Some("2"));
        assert_eq!(cmdline_option("a=1 b a=2", "b"), Some(""));
        assert_eq!(cmdline_option("", "a"), None);
    }

    #[test]
    fn first_free_pfn_is_after_the_stack_page_behind_the_page_tables() {
        let mut raw = raw();
        raw.nr_pages = 1000;
        // Image ends at page 0x10, p2m at page 0x100 (1 page), tables at
        // page 0x200 for 5 pages, then one stack page.
        let mfns = [0u64; 1000];
        let si = StartInfo::new(&raw, &mfns).unwrap();
        let first = si.first_free_pfn(VIRT_BASE + 0x10 * PAGE_SIZE);
        assert_eq!(first, 0x200 + 5 + 1);
        // Never beyond the domain's pages.
        raw.nr_pages = 100;
        let si = StartInfo::new(&raw, &mfns).unwrap();
        assert_eq!(si.first_free_pfn(VIRT_BASE), 100);
    }
}
