//! A tiny ELF64 writer for tests: good images, and handles to break them.

use zerocopy::IntoBytes;

use super::{
    EHDR_SIZE, ELF_MAGIC, ELFCLASS64, ELFDATA2LSB, EM_X86_64, ET_EXEC, EV_CURRENT, Elf64Ehdr,
    Elf64Nhdr, Elf64Phdr, Elf64Shdr, PF_R, PF_W, PF_X, PHDR_SIZE, PT_LOAD, PT_NOTE, SHDR_SIZE,
    SHT_NOTE,
};
use abi::ops::*;
use abi::version::HV_ABI_VERSION;

/// Where the default test image is linked, as SDK guests are: the top
/// 2 GiB, `VIRT_BASE = PADDR_OFFSET`, physical addresses equal to virtual.
pub const BASE: u64 = 0xffff_ffff_8000_0000;
pub const ENTRY: u64 = BASE + 0x10;
pub const HYPERCALL_PAGE: u64 = BASE + 0x1000;
/// `virt_kend` of the default image.
pub const END: u64 = BASE + 0x8000;

#[derive(Clone)]
pub struct Segment {
    pub p_type: u32,
    pub flags: u32,
    pub paddr: u64,
    pub data: Vec<u8>,
    pub memsz: u64,
}

impl Segment {
    pub fn load(paddr: u64, data_len: usize, memsz: u64, flags: u32) -> Self {
        let data = (0..data_len).map(|i| (i % 251) as u8 + 1).collect();
        Self {
            p_type: PT_LOAD,
            flags,
            paddr,
            data,
            memsz,
        }
    }
}

#[derive(Clone)]
pub struct Note {
    pub name: Vec<u8>,
    pub n_type: u32,
    pub desc: Vec<u8>,
}

pub fn xen_str(n_type: u32, text: &str) -> Note {
    let mut desc = text.as_bytes().to_vec();
    desc.push(0);
    Note {
        name: XEN_ELFNOTE_NAME.to_vec(),
        n_type,
        desc,
    }
}

pub fn xen_u64(n_type: u32, value: u64) -> Note {
    Note {
        name: XEN_ELFNOTE_NAME.to_vec(),
        n_type,
        desc: value.to_le_bytes().to_vec(),
    }
}

pub fn xen_u32(n_type: u32, value: u32) -> Note {
    Note {
        name: XEN_ELFNOTE_NAME.to_vec(),
        n_type,
        desc: value.to_le_bytes().to_vec(),
    }
}

pub fn hv_abi(raw: u32) -> Note {
    Note {
        name: HV_ELFNOTE_NAME.to_vec(),
        n_type: HV_ELFNOTE_ABI_VERSION,
        desc: raw.to_le_bytes().to_vec(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum NotePlace {
    Segment,
    Section,
    Nowhere,
}

#[derive(Clone)]
pub struct Elf {
    pub entry: u64,
    pub segments: Vec<Segment>,
    pub notes: Vec<Note>,
    pub note_place: NotePlace,
}

impl Elf {
    /// A valid image: text (with the hypercall page) and data+bss segments
    /// and every note a well-behaved SDK guest carries.
    pub fn good() -> Self {
        Self {
            entry: ENTRY,
            segments: vec![
                Segment::load(BASE, 0x3000, 0x3000, PF_R | PF_X),
                Segment::load(BASE + 0x3000, 0x800, 0x5000, PF_R | PF_W),
            ],
            notes: vec![
                xen_str(XEN_ELFNOTE_GUEST_OS, "HvTest"),
                xen_str(XEN_ELFNOTE_GUEST_VERSION, "0.1"),
                xen_str(XEN_ELFNOTE_XEN_VERSION, "xen-3.0"),
                xen_str(XEN_ELFNOTE_LOADER, "generic"),
                xen_u64(XEN_ELFNOTE_VIRT_BASE, BASE),
                xen_u64(XEN_ELFNOTE_PADDR_OFFSET, BASE),
                xen_u64(XEN_ELFNOTE_ENTRY, ENTRY),
                xen_u64(XEN_ELFNOTE_HYPERCALL_PAGE, HYPERCALL_PAGE),
                xen_str(XEN_ELFNOTE_FEATURES, "!pae_pgdir_above_4gb"),
                xen_str(XEN_ELFNOTE_PAE_MODE, "yes"),
                xen_u32(XEN_ELFNOTE_SUPPORTED_FEATURES, 1 << XENFEAT_DOM0),
                hv_abi(HV_ABI_VERSION.to_u32()),
            ],
            note_place: NotePlace::Segment,
        }
    }

    /// Replaces the Xen note of that type (or the HvCore note), or adds it.
    pub fn set_note(&mut self, note: Note) -> &mut Self {
        self.remove_note(&note.name.clone(), note.n_type);
        self.notes.push(note);
        self
    }

    pub fn remove_note(&mut self, name: &[u8], n_type: u32) -> &mut Self {
        self.notes
            .retain(|n| !(n.name == name && n.n_type == n_type));
        self
    }

    pub fn remove_xen_note(&mut self, n_type: u32) -> &mut Self {
        self.remove_note(XEN_ELFNOTE_NAME, n_type)
    }

    pub fn notes_blob(&self) -> Vec<u8> {
        let mut blob = Vec::new();
        for note in &self.notes {
            let mut name = note.name.clone();
            name.push(0);
            let hdr = Elf64Nhdr {
                n_namesz: (name.len() as u32).into(),
                n_descsz: (note.desc.len() as u32).into(),
                n_type: note.n_type.into(),
            };
            blob.extend_from_slice(hdr.as_bytes());
            blob.extend_from_slice(&name);
            pad4(&mut blob);
            blob.extend_from_slice(&note.desc);
            pad4(&mut blob);
        }
        blob
    }

    /// Layout: header, program headers, notes, segment data each at a
    /// page-aligned offset, section headers.
    pub fn build(&self) -> Vec<u8> {
        let note_segment = self.note_place == NotePlace::Segment;
        let phnum = self.segments.len() + usize::from(note_segment);
        let mut out = vec![0u8; EHDR_SIZE + phnum * PHDR_SIZE];
        let notes_offset = out.len();
        let blob = self.notes_blob();
        out.extend_from_slice(&blob);

        let mut phdrs = Vec::new();
        for seg in &self.segments {
            out.resize(out.len().next_multiple_of(4096), 0);
            let offset = out.len() as u64;
            out.extend_from_slice(&seg.data);
            phdrs.push(Elf64Phdr {
                p_type: seg.p_type.into(),
                p_flags: seg.flags.into(),
                p_offset: offset.into(),
                p_vaddr: seg.paddr.into(),
                p_paddr: seg.paddr.into(),
                p_filesz: (seg.data.len() as u64).into(),
                p_memsz: seg.memsz.into(),
                p_align: 4096.into(),
            });
        }
        if note_segment {
            phdrs.push(Elf64Phdr {
                p_type: PT_NOTE.into(),
                p_flags: PF_R.into(),
                p_offset: (notes_offset as u64).into(),
                p_filesz: (blob.len() as u64).into(),
                p_memsz: (blob.len() as u64).into(),
                p_align: 4.into(),
                ..Default::default()
            });
        }

        let mut shdrs = vec![Elf64Shdr::default()];
        if self.note_place == NotePlace::Section {
            shdrs.push(Elf64Shdr {
                sh_type: SHT_NOTE.into(),
                sh_offset: (notes_offset as u64).into(),
                sh_size: (blob.len() as u64).into(),
                sh_addralign: 4.into(),
                ..Default::default()
            });
        }
        out.resize(out.len().next_multiple_of(8), 0);
        let shoff = out.len();
        for sh in &shdrs {
            out.extend_from_slice(sh.as_bytes());
        }

        let mut ident = [0u8; 16];
        ident[..4].copy_from_slice(&ELF_MAGIC);
        ident[4] = ELFCLASS64;
        ident[5] = ELFDATA2LSB;
        ident[6] = EV_CURRENT;
        let ehdr = Elf64Ehdr {
            e_ident: ident,
            e_type: ET_EXEC.into(),
            e_machine: EM_X86_64.into(),
            e_version: u32::from(EV_CURRENT).into(),
            e_entry: self.entry.into(),
            e_phoff: (EHDR_SIZE as u64).into(),
            e_shoff: (shoff as u64).into(),
            e_ehsize: (EHDR_SIZE as u16).into(),
            e_phentsize: (PHDR_SIZE as u16).into(),
            e_phnum: (phnum as u16).into(),
            e_shentsize: (SHDR_SIZE as u16).into(),
            e_shnum: (shdrs.len() as u16).into(),
            ..Default::default()
        };
        out[..EHDR_SIZE].copy_from_slice(ehdr.as_bytes());
        for (i, ph) in phdrs.iter().enumerate() {
            let at = EHDR_SIZE + i * PHDR_SIZE;
            out[at..at + PHDR_SIZE].copy_from_slice(ph.as_bytes());
        }
        out
    }
}

fn pad4(v: &mut Vec<u8>) {
    v.resize(v.len().next_multiple_of(4), 0);
}

/// File offset of a program header field (`field` is its byte offset in
/// `Elf64Phdr`).
pub fn phdr_field(index: usize, field: usize) -> usize {
    EHDR_SIZE + index * PHDR_SIZE + field
}

pub const P_OFFSET: usize = 8;
pub const P_PADDR: usize = 24;
pub const P_FILESZ: usize = 32;
pub const P_MEMSZ: usize = 40;

pub fn put_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

pub fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

pub fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}
