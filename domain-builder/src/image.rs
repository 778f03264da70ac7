//! PV guest images: the ELF64 kernel a domain builder loads, and what its
//! ELF notes promise.
//!
//! [`PvImage::parse`] reads an x86_64 ELF executable the way Xen's libelf
//! does (`elf_xen_parse` and `elf_xen_addr_calc_check`), so an image Xen 4.17
//! accepts as a PV64 guest reads the same here:
//! - segments are placed by their *physical* address: a loadable segment
//!   lands at `p_paddr - PADDR_OFFSET + VIRT_BASE`; `p_vaddr` is ignored;
//! - Xen notes come from `PT_NOTE` segments, and from `SHT_NOTE` sections
//!   only when no segment holds one;
//! - without notes saying otherwise, `VIRT_BASE` and `PADDR_OFFSET` are 0 and
//!   the entry point is `e_entry`.
//!
//! On top of libelf's checks, every offset and length is bounds-checked
//! (malformed input is an error, never a panic), loadable segments may not
//! overlap, the hypercall page must be page-aligned, and the image must lie
//! in guest address space (never in the hypervisor hole). Required features
//! the hypervisor does not offer are refused by name.
//!
//! The project's own note (namespace [`HV_ELFNOTE_NAME`]) is optional here:
//! Xen-only guests such as Linux have none. [`PvImage::check_abi`] applies
//! the policy (hv-core's dom0 must carry it).
//!
//! Nothing here allocates; a parsed image borrows the bytes it came from.

use core::fmt;

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use abi::ops::{
    HV_ELFNOTE_ABI_VERSION, HV_ELFNOTE_NAME, XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_FEATURES,
    XEN_ELFNOTE_GUEST_OS, XEN_ELFNOTE_GUEST_VERSION, XEN_ELFNOTE_HYPERCALL_PAGE,
    XEN_ELFNOTE_INIT_P2M, XEN_ELFNOTE_LOADER, XEN_ELFNOTE_MOD_START_PFN, XEN_ELFNOTE_NAME,
    XEN_ELFNOTE_PADDR_OFFSET, XEN_ELFNOTE_PAE_MODE, XEN_ELFNOTE_SUPPORTED_FEATURES,
    XEN_ELFNOTE_VIRT_BASE, XEN_ELFNOTE_XEN_VERSION, XENFEAT_AUTO_TRANSLATED_PHYSMAP, XENFEAT_DOM0,
    XENFEAT_HVM_CALLBACK_VECTOR, XENFEAT_PAE_PGDIR_ABOVE_4GB, XENFEAT_SUPERVISOR_MODE_KERNEL,
    XENFEAT_WRITABLE_DESCRIPTOR_TABLES, XENFEAT_WRITABLE_PAGE_TABLES,
};
use abi::version::AbiVersion;
use abi::xen::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START};

#[cfg(test)]
pub(crate) mod test_elf;

pub const PAGE_SIZE: u64 = 4096;

/// Loadable segments an image may have. Kernels have a handful (Linux has
/// five); the bound keeps [`PvImage`] free of heap allocation.
pub const MAX_LOAD_SEGMENTS: usize = 16;

pub use abi::xen::LOWER_HALF_END;

// ELF constants used here (System V gABI, x86_64 psABI).
pub(crate) const ELF_MAGIC: [u8; 4] = *b"\x7fELF";
pub(crate) const ELFCLASS64: u8 = 2;
pub(crate) const ELFDATA2LSB: u8 = 1;
pub(crate) const EV_CURRENT: u8 = 1;
pub(crate) const ET_EXEC: u16 = 2;
pub(crate) const EM_X86_64: u16 = 62;
pub(crate) const PT_LOAD: u32 = 1;
pub(crate) const PT_NOTE: u32 = 4;
pub(crate) const SHT_NOTE: u32 = 7;
pub(crate) const PF_X: u32 = 1;
pub(crate) const PF_W: u32 = 2;
pub(crate) const PF_R: u32 = 4;

/// The ELF64 file header. Little-endian fields with alignment 1, so it reads
/// from any offset of any byte slice on any host.
#[derive(Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub(crate) struct Elf64Ehdr {
    pub e_ident: [u8; 16],
    pub e_type: U16,
    pub e_machine: U16,
    pub e_version: U32,
    pub e_entry: U64,
    pub e_phoff: U64,
    pub e_shoff: U64,
    pub e_flags: U32,
    pub e_ehsize: U16,
    pub e_phentsize: U16,
    pub e_phnum: U16,
    pub e_shentsize: U16,
    pub e_shnum: U16,
    pub e_shstrndx: U16,
}

#[derive(Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub(crate) struct Elf64Phdr {
    pub p_type: U32,
    pub p_flags: U32,
    pub p_offset: U64,
    pub p_vaddr: U64,
    pub p_paddr: U64,
    pub p_filesz: U64,
    pub p_memsz: U64,
    pub p_align: U64,
}

#[derive(Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub(crate) struct Elf64Shdr {
    pub sh_name: U32,
    pub sh_type: U32,
    pub sh_flags: U64,
    pub sh_addr: U64,
    pub sh_offset: U64,
    pub sh_size: U64,
    pub sh_link: U32,
    pub sh_info: U32,
    pub sh_addralign: U64,
    pub sh_entsize: U64,
}

/// An ELF note header; the name and then the descriptor follow, each padded
/// to 4 bytes (Xen reads ELF64 notes with 4-byte padding too).
#[derive(Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub(crate) struct Elf64Nhdr {
    pub n_namesz: U32,
    pub n_descsz: U32,
    pub n_type: U32,
}

const EHDR_SIZE: usize = core::mem::size_of::<Elf64Ehdr>();
const PHDR_SIZE: usize = core::mem::size_of::<Elf64Phdr>();
const SHDR_SIZE: usize = core::mem::size_of::<Elf64Shdr>();
const NHDR_SIZE: usize = core::mem::size_of::<Elf64Nhdr>();
const _: () = assert!(EHDR_SIZE == 64 && PHDR_SIZE == 56 && SHDR_SIZE == 64 && NHDR_SIZE == 12);

/// The Xen notes the parser interprets, for naming them in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XenNote {
    Entry,
    HypercallPage,
    VirtBase,
    PaddrOffset,
    XenVersion,
    GuestOs,
    GuestVersion,
    Loader,
    PaeMode,
    Features,
    InitP2m,
    ModStartPfn,
    SupportedFeatures,
}

impl XenNote {
    fn from_type(note_type: u32) -> Option<Self> {
        Some(match note_type {
            XEN_ELFNOTE_ENTRY => Self::Entry,
            XEN_ELFNOTE_HYPERCALL_PAGE => Self::HypercallPage,
            XEN_ELFNOTE_VIRT_BASE => Self::VirtBase,
            XEN_ELFNOTE_PADDR_OFFSET => Self::PaddrOffset,
            XEN_ELFNOTE_XEN_VERSION => Self::XenVersion,
            XEN_ELFNOTE_GUEST_OS => Self::GuestOs,
            XEN_ELFNOTE_GUEST_VERSION => Self::GuestVersion,
            XEN_ELFNOTE_LOADER => Self::Loader,
            XEN_ELFNOTE_PAE_MODE => Self::PaeMode,
            XEN_ELFNOTE_FEATURES => Self::Features,
            XEN_ELFNOTE_INIT_P2M => Self::InitP2m,
            XEN_ELFNOTE_MOD_START_PFN => Self::ModStartPfn,
            XEN_ELFNOTE_SUPPORTED_FEATURES => Self::SupportedFeatures,
            _ => return None,
        })
    }

    /// The name `elfnote.h` gives it, without the `XEN_ELFNOTE_` prefix.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Entry => "ENTRY",
            Self::HypercallPage => "HYPERCALL_PAGE",
            Self::VirtBase => "VIRT_BASE",
            Self::PaddrOffset => "PADDR_OFFSET",
            Self::XenVersion => "XEN_VERSION",
            Self::GuestOs => "GUEST_OS",
            Self::GuestVersion => "GUEST_VERSION",
            Self::Loader => "LOADER",
            Self::PaeMode => "PAE_MODE",
            Self::Features => "FEATURES",
            Self::InitP2m => "INIT_P2M",
            Self::ModStartPfn => "MOD_START_PFN",
            Self::SupportedFeatures => "SUPPORTED_FEATURES",
        }
    }

    const fn is_string(self) -> bool {
        matches!(
            self,
            Self::XenVersion
                | Self::GuestOs
                | Self::GuestVersion
                | Self::Loader
                | Self::PaeMode
                | Self::Features
        )
    }
}

impl fmt::Display for XenNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The features a `FEATURES` note can name: the names Xen's libelf knows.
/// Any other name is ignored when optional and refused when required, as
/// libelf does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    WritablePageTables,
    WritableDescriptorTables,
    AutoTranslatedPhysmap,
    SupervisorModeKernel,
    PaePgdirAbove4gb,
    HvmCallbackVector,
    Dom0,
}

impl Feature {
    pub const ALL: [Feature; 7] = [
        Self::WritablePageTables,
        Self::WritableDescriptorTables,
        Self::AutoTranslatedPhysmap,
        Self::SupervisorModeKernel,
        Self::PaePgdirAbove4gb,
        Self::HvmCallbackVector,
        Self::Dom0,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::WritablePageTables => "writable_page_tables",
            Self::WritableDescriptorTables => "writable_descriptor_tables",
            Self::AutoTranslatedPhysmap => "auto_translated_physmap",
            Self::SupervisorModeKernel => "supervisor_mode_kernel",
            Self::PaePgdirAbove4gb => "pae_pgdir_above_4gb",
            Self::HvmCallbackVector => "hvm_callback_vector",
            Self::Dom0 => "dom0",
        }
    }

    /// Its `XENFEAT_*` bit number.
    pub const fn bit(self) -> u32 {
        match self {
            Self::WritablePageTables => XENFEAT_WRITABLE_PAGE_TABLES,
            Self::WritableDescriptorTables => XENFEAT_WRITABLE_DESCRIPTOR_TABLES,
            Self::AutoTranslatedPhysmap => XENFEAT_AUTO_TRANSLATED_PHYSMAP,
            Self::SupervisorModeKernel => XENFEAT_SUPERVISOR_MODE_KERNEL,
            Self::PaePgdirAbove4gb => XENFEAT_PAE_PGDIR_ABOVE_4GB,
            Self::HvmCallbackVector => XENFEAT_HVM_CALLBACK_VECTOR,
            Self::Dom0 => XENFEAT_DOM0,
        }
    }

    /// Whether a PV64 guest on this project's hypervisor may *require* it.
    ///
    /// Refused: writable page tables (page tables are always read-only and
    /// changed only through hypercalls: there is no emulation of direct
    /// writes), writable descriptor tables (`set_gdt` takes read-only
    /// frames), auto-translated physmap (direct paging only), a kernel in
    /// ring 0 (the guest kernel runs in ring 3), and the HVM callback vector
    /// (an HVM feature). Accepted: page directories above 4 GiB (always true
    /// in 64-bit mode) and dom0 capability (a statement about the guest).
    pub const fn is_supported(self) -> bool {
        matches!(self, Self::PaePgdirAbove4gb | Self::Dom0)
    }

    fn from_name(name: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name().as_bytes() == name)
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The guest's feature declarations, as `XENFEAT_*` bitmaps (submap 0, the
/// only one Xen defines).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// Features the kernel can use: every name in `FEATURES` (required ones
    /// too) plus the `SUPPORTED_FEATURES` bitmap.
    pub supported: u32,
    /// Features the kernel cannot run without (`!name` in `FEATURES`).
    pub required: u32,
}

impl Features {
    pub const fn supports(&self, feature: Feature) -> bool {
        self.supported & (1 << feature.bit()) != 0
    }

    pub const fn requires(&self, feature: Feature) -> bool {
        self.required & (1 << feature.bit()) != 0
    }
}

/// A short copy of text from an image, for error messages (errors do not
/// borrow the image). Longer text is cut and shown with "...".
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NoteText {
    len: u8,
    truncated: bool,
    buf: [u8; NoteText::CAPACITY],
}

impl NoteText {
    const CAPACITY: usize = 40;

    fn new(bytes: &[u8]) -> Self {
        let len = bytes.len().min(Self::CAPACITY);
        let mut buf = [0; Self::CAPACITY];
        buf[..len].copy_from_slice(&bytes[..len]);
        Self {
            len: len as u8,
            truncated: bytes.len() > len,
            buf,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl fmt::Display for NoteText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Escaped so that hostile bytes cannot break the one-line message.
        for &b in self.as_bytes() {
            write!(f, "{}", core::ascii::escape_default(b))?;
        }
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NoteText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// What about the ELF header says "not for us".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderMismatch {
    Class(u8),
    Encoding(u8),
    Version,
    Machine(u16),
    Type(u16),
}

impl fmt::Display for HeaderMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Class(1) => f.write_str("it is 32-bit"),
            Self::Class(c) => write!(f, "ELF class {c}"),
            Self::Encoding(2) => f.write_str("it is big-endian"),
            Self::Encoding(d) => write!(f, "data encoding {d}"),
            Self::Version => f.write_str("unknown ELF version"),
            Self::Machine(m) => write!(f, "machine {m}, not x86_64 (62)"),
            Self::Type(3) => f.write_str("it is a shared object, not an executable"),
            Self::Type(1) => f.write_str("it is a relocatable object, not an executable"),
            Self::Type(t) => write!(f, "ELF type {t}, not an executable"),
        }
    }
}

/// Which header table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderTable {
    Program,
    Section,
}

impl fmt::Display for HeaderTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Program => "program header",
            Self::Section => "section header",
        })
    }
}

/// Why an address range is not guest address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutsideGuest {
    /// It overlaps `HYPERVISOR_VIRT_START..HYPERVISOR_VIRT_END`.
    HypervisorHole,
    /// It reaches into the non-canonical gap above the lower half.
    NonCanonical,
}

impl fmt::Display for OutsideGuest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HypervisorHole => write!(
                f,
                "overlaps the hypervisor hole {HYPERVISOR_VIRT_START:#x}-{HYPERVISOR_VIRT_END:#x}"
            ),
            Self::NonCanonical => write!(
                f,
                "is not canonical (guests own addresses below {LOWER_HALF_END:#x} and from \
                 {HYPERVISOR_VIRT_END:#x})"
            ),
        }
    }
}

/// Checks that `[start, end)` is guest address space: the lower canonical
/// half, or the upper half above the hypervisor hole.
pub fn check_guest_range(start: u64, end: u64) -> Result<(), OutsideGuest> {
    let last = end.saturating_sub(1).max(start);
    if start < HYPERVISOR_VIRT_END && last >= HYPERVISOR_VIRT_START {
        return Err(OutsideGuest::HypervisorHole);
    }
    let lower = last < LOWER_HALF_END;
    let upper = start >= HYPERVISOR_VIRT_END;
    if lower || upper {
        Ok(())
    } else {
        Err(OutsideGuest::NonCanonical)
    }
}

/// Whether the ABI note must be present, for [`PvImage::check_abi`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbiNote {
    /// Images built against this project (hv-core's dom0, SDK guests).
    Required,
    /// Xen-only guests (e.g. Linux) carry none; a present note is still
    /// checked.
    Optional,
}

/// Why an image was refused. `Display` is one line naming the problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    TooShort {
        len: usize,
    },
    NotElf,
    NotX86_64Executable(HeaderMismatch),
    TableOutsideFile(HeaderTable),
    BadEntrySize {
        table: HeaderTable,
        size: u16,
    },
    SegmentOutsideFile {
        index: u16,
    },
    SectionOutsideFile {
        index: u16,
    },
    FileLargerThanMemory {
        index: u16,
    },
    SegmentWraps {
        index: u16,
    },
    SegmentsOverlap {
        first: u16,
        second: u16,
    },
    NoLoadableSegments,
    TooManySegments,
    MalformedNote {
        offset: u64,
    },
    NoXenNotes,
    MissingNote(XenNote),
    BadNoteValue {
        note: XenNote,
        found: NoteText,
        expected: &'static str,
    },
    NoteSize {
        note: XenNote,
        size: u32,
    },
    NoteNotUtf8(XenNote),
    UnknownFeature(NoteText),
    UnsupportedFeature(Feature),
    PaddrOffsetWithoutVirtBase,
    VirtBaseUnaligned {
        virt_base: u64,
    },
    ImageWraps,
    ImageBelowVirtBase {
        start: u64,
        virt_base: u64,
    },
    EntryOutside {
        entry: u64,
        start: u64,
        end: u64,
    },
    HypercallPageOutside {
        addr: u64,
        start: u64,
        end: u64,
    },
    HypercallPageUnaligned {
        addr: u64,
    },
    P2mInsideImage {
        p2m_base: u64,
        start: u64,
        end: u64,
    },
    P2mUnaligned {
        p2m_base: u64,
    },
    OutsideGuest {
        start: u64,
        end: u64,
        why: OutsideGuest,
    },
    AbiNoteSize {
        size: u32,
    },
    MissingAbiNote,
    AbiMismatch {
        image: AbiVersion,
        implemented: AbiVersion,
    },
    NotDom0Capable,
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooShort { len } => {
                write!(f, "image is {len} bytes, too short for an ELF64 header")
            }
            Self::NotElf => f.write_str("not an ELF file (bad magic number)"),
            Self::NotX86_64Executable(why) => {
                write!(f, "not an ELF64 x86_64 executable: {why}")
            }
            Self::TableOutsideFile(table) => {
                write!(f, "{table} table extends past the end of the file")
            }
            Self::BadEntrySize { table, size } => {
                let expected = match table {
                    HeaderTable::Program => PHDR_SIZE,
                    HeaderTable::Section => SHDR_SIZE,
                };
                write!(f, "{table} entries are {size} bytes, expected {expected}")
            }
            Self::SegmentOutsideFile { index } => {
                write!(f, "segment {index} extends past the end of the file")
            }
            Self::SectionOutsideFile { index } => {
                write!(f, "section {index} extends past the end of the file")
            }
            Self::FileLargerThanMemory { index } => {
                write!(
                    f,
                    "segment {index} has a file size larger than its memory size"
                )
            }
            Self::SegmentWraps { index } => {
                write!(
                    f,
                    "segment {index} wraps around the end of the address space"
                )
            }
            Self::SegmentsOverlap { first, second } => {
                write!(f, "segments {first} and {second} overlap")
            }
            Self::NoLoadableSegments => f.write_str("image has no loadable segments"),
            Self::TooManySegments => {
                write!(
                    f,
                    "image has more than {MAX_LOAD_SEGMENTS} loadable segments"
                )
            }
            Self::MalformedNote { offset } => {
                write!(f, "malformed ELF note at file offset {offset:#x}")
            }
            Self::NoXenNotes => f.write_str("no Xen ELF notes: not a Xen PV image"),
            Self::MissingNote(note) => write!(f, "missing Xen note {note}"),
            Self::BadNoteValue {
                note,
                found,
                expected,
            } => {
                write!(f, "Xen note {note} is \"{found}\", expected \"{expected}\"")
            }
            Self::NoteSize { note, size } => {
                write!(
                    f,
                    "Xen note {note} has a {size}-byte value, expected 1, 2, 4 or 8 bytes"
                )
            }
            Self::NoteNotUtf8(note) => write!(f, "Xen note {note} is not valid UTF-8"),
            Self::UnknownFeature(name) => write!(f, "required feature {name} is unknown"),
            Self::UnsupportedFeature(feature) => {
                write!(f, "required feature {feature} is not supported")
            }
            Self::PaddrOffsetWithoutVirtBase => {
                f.write_str("Xen note PADDR_OFFSET is set but VIRT_BASE is not")
            }
            Self::VirtBaseUnaligned { virt_base } => {
                write!(f, "VIRT_BASE {virt_base:#x} is not page-aligned")
            }
            Self::ImageWraps => f.write_str("image wraps around the end of the address space"),
            Self::ImageBelowVirtBase { start, virt_base } => {
                write!(
                    f,
                    "image starts at {start:#x}, below VIRT_BASE {virt_base:#x}"
                )
            }
            Self::EntryOutside { entry, start, end } => {
                write!(
                    f,
                    "entry point {entry:#x} is outside the image {start:#x}-{end:#x}"
                )
            }
            Self::HypercallPageOutside { addr, start, end } => {
                write!(
                    f,
                    "hypercall page {addr:#x} is outside the image {start:#x}-{end:#x}"
                )
            }
            Self::HypercallPageUnaligned { addr } => {
                write!(f, "hypercall page {addr:#x} is not page-aligned")
            }
            Self::P2mInsideImage {
                p2m_base,
                start,
                end,
            } => {
                write!(
                    f,
                    "INIT_P2M base {p2m_base:#x} lies inside the image {start:#x}-{end:#x}"
                )
            }
            Self::P2mUnaligned { p2m_base } => {
                write!(f, "INIT_P2M base {p2m_base:#x} is not page-aligned")
            }
            Self::OutsideGuest { start, end, why } => {
                write!(f, "image {start:#x}-{end:#x} {why}")
            }
            Self::AbiNoteSize { size } => {
                write!(f, "HvCore ABI note has a {size}-byte value, expected 4")
            }
            Self::MissingAbiNote => {
                f.write_str("image has no HvCore ABI note saying which ABI it was built for")
            }
            Self::AbiMismatch { image, implemented } => {
                write!(
                    f,
                    "built for ABI {image}, this hypervisor implements ABI {implemented}"
                )
            }
            Self::NotDom0Capable => {
                f.write_str("image's SUPPORTED_FEATURES lack dom0: it cannot run as dom0")
            }
        }
    }
}

/// A loadable segment, validated: its bytes lie in the file and its memory
/// range in the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment<'a> {
    /// Program-header index, as errors name it.
    pub index: u16,
    /// Where the segment starts in the guest's address space.
    pub virt_addr: u64,
    /// The bytes to copy to `virt_addr`.
    pub data: &'a [u8],
    /// Bytes the segment occupies; `mem_size - data.len()` bytes after the
    /// data are zero (the bss).
    pub mem_size: u64,
    /// `PF_R`/`PF_W`/`PF_X` bits. Xen maps the whole image writable and
    /// executable; these are for builders that want to do better.
    pub flags: u32,
}

impl LoadSegment<'_> {
    /// The zero-filled tail, as `(virt_addr, len)`.
    pub fn bss(&self) -> (u64, u64) {
        let file = self.data.len() as u64;
        (self.virt_addr + file, self.mem_size - file)
    }
}

#[derive(Clone, Copy, Default)]
struct SegmentSlot {
    index: u16,
    paddr: u64,
    offset: usize,
    filesz: usize,
    memsz: u64,
    flags: u32,
}

/// A parsed, validated PV64 guest kernel image.
#[derive(Clone)]
pub struct PvImage<'a> {
    bytes: &'a [u8],
    segments: [SegmentSlot; MAX_LOAD_SEGMENTS],
    nr_segments: usize,
    guest_os: Option<&'a str>,
    guest_version: Option<&'a str>,
    xen_version: &'a str,
    loader: Option<&'a str>,
    pae_mode: Option<&'a str>,
    virt_base: u64,
    paddr_offset: u64,
    virt_kstart: u64,
    virt_kend: u64,
    virt_entry: u64,
    hypercall_page: Option<u64>,
    p2m_base: Option<u64>,
    mod_start_pfn: bool,
    features: Features,
    has_supported_features_note: bool,
    abi_version: Option<AbiVersion>,
}

impl fmt::Debug for PvImage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PvImage")
            .field("guest_os", &self.guest_os)
            .field("virt_base", &Hex(self.virt_base))
            .field("virt_kstart", &Hex(self.virt_kstart))
            .field("virt_kend", &Hex(self.virt_kend))
            .field("virt_entry", &Hex(self.virt_entry))
            .field("hypercall_page", &self.hypercall_page.map(Hex))
            .field("segments", &self.nr_segments)
            .field("features", &self.features)
            .field("abi_version", &self.abi_version)
            .finish_non_exhaustive()
    }
}

/// Shows an address in hex inside `Debug` output.
struct Hex(u64);

impl fmt::Debug for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl<'a> PvImage<'a> {
    /// Parses and checks an image. See the module documentation for the
    /// rules.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ImageError> {
        let ehdr = read_ehdr(bytes)?;
        let phdrs = HeaderTableRef::new(
            bytes,
            HeaderTable::Program,
            ehdr.e_phoff.get(),
            ehdr.e_phnum.get(),
            ehdr.e_phentsize.get(),
        )?;
        let shdrs = HeaderTableRef::new(
            bytes,
            HeaderTable::Section,
            ehdr.e_shoff.get(),
            ehdr.e_shnum.get(),
            ehdr.e_shentsize.get(),
        )?;

        let mut segments = [SegmentSlot::default(); MAX_LOAD_SEGMENTS];
        let mut nr_segments = 0;
        for index in 0..phdrs.count {
            let ph: Elf64Phdr = phdrs.entry(index);
            // libelf loads PT_LOAD segments with at least one of R, W, X.
            if ph.p_type.get() != PT_LOAD || ph.p_flags.get() & (PF_R | PF_W | PF_X) == 0 {
                continue;
            }
            let (offset, filesz) = file_range(bytes, ph.p_offset.get(), ph.p_filesz.get())
                .ok_or(ImageError::SegmentOutsideFile { index })?;
            let memsz = ph.p_memsz.get();
            if filesz as u64 > memsz {
                return Err(ImageError::FileLargerThanMemory { index });
            }
            let paddr = ph.p_paddr.get();
            if paddr.checked_add(memsz).is_none() {
                return Err(ImageError::SegmentWraps { index });
            }
            let slot = segments
                .get_mut(nr_segments)
                .ok_or(ImageError::TooManySegments)?;
            *slot = SegmentSlot {
                index,
                paddr,
                offset,
                filesz,
                memsz,
                flags: ph.p_flags.get(),
            };
            nr_segments += 1;
        }
        let segments_found = &segments[..nr_segments];
        if segments_found.is_empty() {
            return Err(ImageError::NoLoadableSegments);
        }
        for (i, a) in segments_found.iter().enumerate() {
            for b in &segments_found[i + 1..] {
                if a.paddr < b.paddr + b.memsz && b.paddr < a.paddr + a.memsz {
                    return Err(ImageError::SegmentsOverlap {
                        first: a.index,
                        second: b.index,
                    });
                }
            }
        }
        // libelf's pstart/pend: the physical extent of all loadable segments.
        let pstart = segments_found.iter().map(|s| s.paddr).min().unwrap_or(0);
        let pend = segments_found
            .iter()
            .map(|s| s.paddr + s.memsz)
            .max()
            .unwrap_or(0);

        let notes = read_notes(bytes, &phdrs, &shdrs)?;
        let checked = check_notes(&notes)?;

        // elf_xen_addr_calc_check, with its defaults for the notes interface.
        if notes.paddr_offset.is_some() && notes.virt_base.is_none() {
            return Err(ImageError::PaddrOffsetWithoutVirtBase);
        }
        let virt_base = notes.virt_base.unwrap_or(0);
        let paddr_offset = notes.paddr_offset.unwrap_or(0);
        if virt_base % PAGE_SIZE != 0 {
            return Err(ImageError::VirtBaseUnaligned { virt_base });
        }
        // Wrapping, as in libelf: an offset may be "negative".
        let virt_offset = virt_base.wrapping_sub(paddr_offset);
        let virt_kstart = pstart.wrapping_add(virt_offset);
        let virt_kend = pend.wrapping_add(virt_offset);
        if virt_kstart > virt_kend {
            return Err(ImageError::ImageWraps);
        }
        if virt_base > virt_kstart {
            return Err(ImageError::ImageBelowVirtBase {
                start: virt_kstart,
                virt_base,
            });
        }
        check_guest_range(virt_kstart, virt_kend).map_err(|why| ImageError::OutsideGuest {
            start: virt_kstart,
            end: virt_kend,
            why,
        })?;
        let (start, end) = (virt_kstart, virt_kend);
        let virt_entry = notes.entry.unwrap_or(ehdr.e_entry.get());
        if !(start..end).contains(&virt_entry) {
            return Err(ImageError::EntryOutside {
                entry: virt_entry,
                start,
                end,
            });
        }
        if let Some(addr) = notes.hypercall_page {
            if !(start..end).contains(&addr) {
                return Err(ImageError::HypercallPageOutside { addr, start, end });
            }
            if addr % PAGE_SIZE != 0 {
                return Err(ImageError::HypercallPageUnaligned { addr });
            }
        }
        if let Some(p2m_base) = notes.p2m_base {
            if (start..end).contains(&p2m_base) {
                return Err(ImageError::P2mInsideImage {
                    p2m_base,
                    start,
                    end,
                });
            }
            if p2m_base % PAGE_SIZE != 0 {
                return Err(ImageError::P2mUnaligned { p2m_base });
            }
        }

        Ok(Self {
            bytes,
            segments,
            nr_segments,
            guest_os: notes.guest_os,
            guest_version: notes.guest_version,
            xen_version: checked.xen_version,
            loader: notes.loader,
            pae_mode: notes.pae_mode,
            virt_base,
            paddr_offset,
            virt_kstart,
            virt_kend,
            virt_entry,
            hypercall_page: notes.hypercall_page,
            p2m_base: notes.p2m_base,
            mod_start_pfn: notes.mod_start_pfn,
            features: notes.features,
            has_supported_features_note: notes.has_supported_features,
            abi_version: notes.abi_version,
        })
    }

    /// The image's loadable segments at their guest virtual addresses, in
    /// program-header order. A builder copies each `data` to `virt_addr`
    /// and zeroes the rest up to `mem_size`; bytes of the image range
    /// between segments are not covered, so start from zeroed pages.
    pub fn segments(&self) -> impl Iterator<Item = LoadSegment<'a>> + '_ {
        let virt_offset = self.virt_base.wrapping_sub(self.paddr_offset);
        self.segments[..self.nr_segments]
            .iter()
            .map(move |s| LoadSegment {
                index: s.index,
                virt_addr: s.paddr.wrapping_add(virt_offset),
                // In bounds: parse checked offset + filesz against the file.
                data: &self.bytes[s.offset..s.offset + s.filesz],
                mem_size: s.memsz,
                flags: s.flags,
            })
    }

    /// Checks the image's ABI note against the ABI version the caller
    /// implements (normally [`abi::HV_ABI_VERSION`]).
    pub fn check_abi(&self, implemented: AbiVersion, note: AbiNote) -> Result<(), ImageError> {
        match (self.abi_version, note) {
            (None, AbiNote::Optional) => Ok(()),
            (None, AbiNote::Required) => Err(ImageError::MissingAbiNote),
            (Some(image), _) if implemented.supports(image) => Ok(()),
            (Some(image), _) => Err(ImageError::AbiMismatch { image, implemented }),
        }
    }

    /// Xen's dom0 check: an image that lists its supported features in
    /// `SUPPORTED_FEATURES` must include `dom0` there to be built as dom0.
    pub fn check_dom0(&self) -> Result<(), ImageError> {
        if self.has_supported_features_note && !self.features.supports(Feature::Dom0) {
            return Err(ImageError::NotDom0Capable);
        }
        Ok(())
    }

    /// `GUEST_OS`, e.g. "linux" or "HvCore-dom0".
    pub fn guest_os(&self) -> Option<&'a str> {
        self.guest_os
    }

    pub fn guest_version(&self) -> Option<&'a str> {
        self.guest_version
    }

    /// `XEN_VERSION`; always starts with "xen-3.0".
    pub fn xen_version(&self) -> &'a str {
        self.xen_version
    }

    /// `LOADER`; "generic" unless `GUEST_OS` is "linux".
    pub fn loader(&self) -> Option<&'a str> {
        self.loader
    }

    /// `PAE_MODE` as written ("yes" for Linux). Xen's dom0 builder appends
    /// "p" to the start_info magic when a 64-bit image sets it.
    pub fn pae_mode(&self) -> Option<&'a str> {
        self.pae_mode
    }

    /// The lowest address of the start-of-day area (`VIRT_BASE`, default 0).
    pub fn virt_base(&self) -> u64 {
        self.virt_base
    }

    /// `PADDR_OFFSET` (default 0): a segment's address is
    /// `p_paddr - paddr_offset + virt_base`.
    pub fn paddr_offset(&self) -> u64 {
        self.paddr_offset
    }

    /// First byte of the loaded image.
    pub fn virt_kstart(&self) -> u64 {
        self.virt_kstart
    }

    /// One past the last byte of the loaded image (bss included).
    pub fn virt_kend(&self) -> u64 {
        self.virt_kend
    }

    /// Where the first vCPU starts (`ENTRY`, else `e_entry`).
    pub fn virt_entry(&self) -> u64 {
        self.virt_entry
    }

    /// The page the builder fills with hypercall stubs, if the image has
    /// one: page-aligned, inside the image.
    pub fn hypercall_page(&self) -> Option<u64> {
        self.hypercall_page
    }

    /// `INIT_P2M`: where the guest wants its p2m list mapped, outside the
    /// start-of-day area (Linux asks for 0x8000000000).
    pub fn p2m_base(&self) -> Option<u64> {
        self.p2m_base
    }

    /// `MOD_START_PFN`: the guest takes its initial module unmapped, by
    /// frame number, instead of inside the start-of-day area.
    pub fn mod_start_pfn(&self) -> bool {
        self.mod_start_pfn
    }

    pub fn features(&self) -> Features {
        self.features
    }

    /// The ABI version from the project's note, if the image has one.
    pub fn abi_version(&self) -> Option<AbiVersion> {
        self.abi_version
    }
}

fn read_ehdr(bytes: &[u8]) -> Result<Elf64Ehdr, ImageError> {
    // Magic first, so that a short non-ELF file is called what it is.
    if bytes.len() >= 4 && bytes[..4] != ELF_MAGIC {
        return Err(ImageError::NotElf);
    }
    let Ok((ehdr, _)) = Elf64Ehdr::read_from_prefix(bytes) else {
        return Err(ImageError::TooShort { len: bytes.len() });
    };
    let id = &ehdr.e_ident;
    let mismatch = if id[4] != ELFCLASS64 {
        Some(HeaderMismatch::Class(id[4]))
    } else if id[5] != ELFDATA2LSB {
        Some(HeaderMismatch::Encoding(id[5]))
    } else if id[6] != EV_CURRENT || ehdr.e_version.get() != u32::from(EV_CURRENT) {
        Some(HeaderMismatch::Version)
    } else if ehdr.e_machine.get() != EM_X86_64 {
        Some(HeaderMismatch::Machine(ehdr.e_machine.get()))
    } else if ehdr.e_type.get() != ET_EXEC {
        Some(HeaderMismatch::Type(ehdr.e_type.get()))
    } else {
        None
    };
    match mismatch {
        Some(why) => Err(ImageError::NotX86_64Executable(why)),
        None => Ok(ehdr),
    }
}

/// A bounds-checked header table.
struct HeaderTableRef<'a> {
    bytes: &'a [u8],
    offset: usize,
    count: u16,
    entry_size: usize,
}

impl<'a> HeaderTableRef<'a> {
    fn new(
        bytes: &'a [u8],
        table: HeaderTable,
        offset: u64,
        count: u16,
        entry_size: u16,
    ) -> Result<Self, ImageError> {
        let expected = match table {
            HeaderTable::Program => PHDR_SIZE,
            HeaderTable::Section => SHDR_SIZE,
        };
        if count == 0 {
            return Ok(Self {
                bytes,
                offset: 0,
                count: 0,
                entry_size: expected,
            });
        }
        if usize::from(entry_size) != expected {
            return Err(ImageError::BadEntrySize {
                table,
                size: entry_size,
            });
        }
        let (offset, _) = file_range(bytes, offset, u64::from(count) * expected as u64)
            .ok_or(ImageError::TableOutsideFile(table))?;
        Ok(Self {
            bytes,
            offset,
            count,
            entry_size: expected,
        })
    }

    fn entry<T: FromBytes>(&self, index: u16) -> T {
        let start = self.offset + usize::from(index) * self.entry_size;
        // In bounds: `new` checked the whole table against the file, and
        // every entry type has exactly `entry_size` bytes.
        match T::read_from_prefix(&self.bytes[start..]) {
            Ok((entry, _)) => entry,
            Err(_) => unreachable!("header table entry outside a checked table"),
        }
    }
}

/// `[offset, offset + len)` as indices into `bytes`, if it lies inside.
fn file_range(bytes: &[u8], offset: u64, len: u64) -> Option<(usize, usize)> {
    let end = offset.checked_add(len)?;
    if end > bytes.len() as u64 {
        return None;
    }
    Some((offset as usize, len as usize))
}

/// What the notes say, before the cross-checks.
#[derive(Default)]
struct Notes<'a> {
    xen_notes: usize,
    guest_os: Option<&'a str>,
    guest_version: Option<&'a str>,
    xen_version: Option<&'a str>,
    loader: Option<&'a str>,
    pae_mode: Option<&'a str>,
    entry: Option<u64>,
    hypercall_page: Option<u64>,
    virt_base: Option<u64>,
    paddr_offset: Option<u64>,
    p2m_base: Option<u64>,
    mod_start_pfn: bool,
    features: Features,
    has_supported_features: bool,
    abi_version: Option<AbiVersion>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Namespaces {
    All,
    HvCoreOnly,
}

fn read_notes<'a>(
    bytes: &'a [u8],
    phdrs: &HeaderTableRef<'a>,
    shdrs: &HeaderTableRef<'a>,
) -> Result<Notes<'a>, ImageError> {
    let mut notes = Notes::default();
    for index in 0..phdrs.count {
        let ph: Elf64Phdr = phdrs.entry(index);
        // Like libelf, skip note segments at offset 0: some binutils
        // versions emit them that way.
        if ph.p_type.get() != PT_NOTE || ph.p_offset.get() == 0 {
            continue;
        }
        let (start, len) = file_range(bytes, ph.p_offset.get(), ph.p_filesz.get())
            .ok_or(ImageError::SegmentOutsideFile { index })?;
        scan_notes(bytes, start, start + len, Namespaces::All, &mut notes)?;
    }
    // Sections are the fallback for Xen notes (libelf's rule), and always a
    // place to look for our own note if the segments lacked it.
    let namespaces = if notes.xen_notes == 0 {
        Namespaces::All
    } else if notes.abi_version.is_none() {
        Namespaces::HvCoreOnly
    } else {
        return Ok(notes);
    };
    // Section 0 is the null section.
    for index in 1..shdrs.count {
        let sh: Elf64Shdr = shdrs.entry(index);
        if sh.sh_type.get() != SHT_NOTE {
            continue;
        }
        let (start, len) = file_range(bytes, sh.sh_offset.get(), sh.sh_size.get())
            .ok_or(ImageError::SectionOutsideFile { index })?;
        scan_notes(bytes, start, start + len, namespaces, &mut notes)?;
    }
    Ok(notes)
}

fn scan_notes<'a>(
    bytes: &'a [u8],
    start: usize,
    end: usize,
    namespaces: Namespaces,
    notes: &mut Notes<'a>,
) -> Result<(), ImageError> {
    let mut pos = start;
    while pos < end {
        let malformed = ImageError::MalformedNote { offset: pos as u64 };
        let Some(Ok((hdr, _))) = bytes.get(pos..end).map(Elf64Nhdr::read_from_prefix) else {
            return Err(malformed);
        };
        let namesz = hdr.n_namesz.get() as usize;
        let descsz = hdr.n_descsz.get() as usize;
        let name_start = pos + NHDR_SIZE;
        let desc_start = name_start.checked_add(align4(namesz)).ok_or(malformed)?;
        let desc_end = desc_start.checked_add(descsz).ok_or(malformed)?;
        if desc_end > end {
            return Err(malformed);
        }
        let name = until_nul(&bytes[name_start..name_start + namesz]);
        let desc = &bytes[desc_start..desc_end];
        if name == XEN_ELFNOTE_NAME && namespaces == Namespaces::All {
            notes.xen_notes += 1;
            apply_xen_note(hdr.n_type.get(), desc, notes)?;
        } else if name == HV_ELFNOTE_NAME && hdr.n_type.get() == HV_ELFNOTE_ABI_VERSION {
            let raw: [u8; 4] = desc.try_into().map_err(|_| ImageError::AbiNoteSize {
                size: descsz as u32,
            })?;
            notes.abi_version = Some(AbiVersion::from_u32(u32::from_le_bytes(raw)));
        }
        // The padding after the last descriptor may be missing.
        pos = desc_start.saturating_add(align4(descsz));
    }
    Ok(())
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(nul) => &bytes[..nul],
        None => bytes,
    }
}

fn apply_xen_note<'a>(
    note_type: u32,
    desc: &'a [u8],
    notes: &mut Notes<'a>,
) -> Result<(), ImageError> {
    // Unknown Xen notes are ignored, as libelf does.
    let Some(note) = XenNote::from_type(note_type) else {
        return Ok(());
    };
    if note.is_string() {
        let text =
            core::str::from_utf8(until_nul(desc)).map_err(|_| ImageError::NoteNotUtf8(note))?;
        match note {
            XenNote::GuestOs => notes.guest_os = Some(text),
            XenNote::GuestVersion => notes.guest_version = Some(text),
            XenNote::XenVersion => notes.xen_version = Some(text),
            XenNote::Loader => notes.loader = Some(text),
            XenNote::PaeMode => notes.pae_mode = Some(text),
            XenNote::Features => parse_features(text, &mut notes.features)?,
            _ => {}
        }
        return Ok(());
    }
    if note == XenNote::SupportedFeatures {
        // An array of 32-bit submaps; submap 0 is the only one defined.
        let submap: [u8; 4] = desc
            .get(..4)
            .filter(|_| desc.len().is_multiple_of(4))
            .and_then(|d| d.try_into().ok())
            .ok_or(ImageError::NoteSize {
                note,
                size: desc.len() as u32,
            })?;
        notes.features.supported |= u32::from_le_bytes(submap);
        notes.has_supported_features = true;
        return Ok(());
    }
    let value = numeric(desc).ok_or(ImageError::NoteSize {
        note,
        size: desc.len() as u32,
    })?;
    match note {
        XenNote::Entry => notes.entry = Some(value),
        XenNote::HypercallPage => notes.hypercall_page = Some(value),
        XenNote::VirtBase => notes.virt_base = Some(value),
        XenNote::PaddrOffset => notes.paddr_offset = Some(value),
        XenNote::InitP2m => notes.p2m_base = Some(value),
        XenNote::ModStartPfn => notes.mod_start_pfn = value != 0,
        _ => {}
    }
    Ok(())
}

/// A numeric note: 1, 2, 4 or 8 little-endian bytes.
fn numeric(desc: &[u8]) -> Option<u64> {
    if !matches!(desc.len(), 1 | 2 | 4 | 8) {
        return None;
    }
    let mut raw = [0u8; 8];
    raw[..desc.len()].copy_from_slice(desc);
    Some(u64::from_le_bytes(raw))
}

/// Parses a `FEATURES` string: names separated by `|`, `!` marking the
/// required ones. Unknown optional names are ignored, unknown required ones
/// refused (libelf's rule). Whether the hypervisor offers a known required
/// feature is checked later, once every note is read.
fn parse_features(text: &str, features: &mut Features) -> Result<(), ImageError> {
    for item in text.split('|').filter(|item| !item.is_empty()) {
        let (required, name) = match item.strip_prefix('!') {
            Some(name) => (true, name),
            None => (false, item),
        };
        match Feature::from_name(name.as_bytes()) {
            Some(feature) => {
                features.supported |= 1 << feature.bit();
                if required {
                    features.required |= 1 << feature.bit();
                }
            }
            None if required => {
                return Err(ImageError::UnknownFeature(NoteText::new(name.as_bytes())));
            }
            None => {}
        }
    }
    Ok(())
}

struct CheckedNotes<'a> {
    xen_version: &'a str,
}

/// libelf's `elf_xen_note_check`, then the required-feature check.
fn check_notes<'a>(notes: &Notes<'a>) -> Result<CheckedNotes<'a>, ImageError> {
    if notes.xen_notes == 0 {
        return Err(ImageError::NoXenNotes);
    }
    // Xen loads images for the generic loader, and Linux whatever its
    // LOADER says.
    let linux = notes.guest_os.is_some_and(|os| os.starts_with("linux"));
    match notes.loader {
        _ if linux => {}
        None => return Err(ImageError::MissingNote(XenNote::Loader)),
        Some(loader) if !loader.starts_with("generic") => {
            return Err(ImageError::BadNoteValue {
                note: XenNote::Loader,
                found: NoteText::new(loader.as_bytes()),
                expected: "generic",
            });
        }
        Some(_) => {}
    }
    let xen_version = notes
        .xen_version
        .ok_or(ImageError::MissingNote(XenNote::XenVersion))?;
    if !xen_version.starts_with("xen-3.0") {
        return Err(ImageError::BadNoteValue {
            note: XenNote::XenVersion,
            found: NoteText::new(xen_version.as_bytes()),
            expected: "xen-3.0",
        });
    }
    if let Some(feature) = Feature::ALL
        .into_iter()
        .find(|f| notes.features.requires(*f) && !f.is_supported())
    {
        return Err(ImageError::UnsupportedFeature(feature));
    }
    Ok(CheckedNotes { xen_version })
}

#[cfg(test)]
mod tests;
