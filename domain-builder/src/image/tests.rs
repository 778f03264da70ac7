use super::test_elf::*;
use super::*;
use abi::version::HV_ABI_VERSION;
use zerocopy::IntoBytes;

fn parse_err(bytes: &[u8]) -> String {
    match PvImage::parse(bytes) {
        Ok(image) => panic!("parsed, expected an error: {image:?}"),
        Err(e) => e.to_string(),
    }
}

fn build_err(elf: &Elf) -> String {
    parse_err(&elf.build())
}

#[test]
fn good_image_parses_with_every_note() {
    let bytes = Elf::good().build();
    let image = PvImage::parse(&bytes).unwrap();
    assert_eq!(image.guest_os(), Some("HvTest"));
    assert_eq!(image.guest_version(), Some("0.1"));
    assert_eq!(image.xen_version(), "xen-3.0");
    assert_eq!(image.loader(), Some("generic"));
    assert_eq!(image.pae_mode(), Some("yes"));
    assert_eq!(image.virt_base(), BASE);
    assert_eq!(image.paddr_offset(), BASE);
    assert_eq!(image.virt_kstart(), BASE);
    assert_eq!(image.virt_kend(), END);
    assert_eq!(image.virt_entry(), ENTRY);
    assert_eq!(image.hypercall_page(), Some(HYPERCALL_PAGE));
    assert_eq!(image.p2m_base(), None);
    assert!(!image.mod_start_pfn());
    assert!(image.features().requires(Feature::PaePgdirAbove4gb));
    assert!(image.features().supports(Feature::Dom0));
    assert!(!image.features().requires(Feature::Dom0));
    assert_eq!(image.abi_version(), Some(HV_ABI_VERSION));
    image.check_abi(HV_ABI_VERSION, AbiNote::Required).unwrap();
    image.check_dom0().unwrap();
}

#[test]
fn segments_carry_their_bytes_and_bss() {
    let elf = Elf::good();
    let bytes = elf.build();
    let image = PvImage::parse(&bytes).unwrap();
    let segs: Vec<_> = image.segments().collect();
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[0].virt_addr, BASE);
    assert_eq!(segs[0].data, &elf.segments[0].data[..]);
    assert_eq!(segs[0].bss(), (BASE + 0x3000, 0));
    assert_eq!(segs[0].flags, PF_R | PF_X);
    assert_eq!(segs[1].index, 1);
    assert_eq!(segs[1].virt_addr, BASE + 0x3000);
    assert_eq!(segs[1].data, &elf.segments[1].data[..]);
    assert_eq!(segs[1].bss(), (BASE + 0x3800, 0x4800));
}

#[test]
fn linux_style_image_places_segments_by_physical_address() {
    // Linux: VIRT_BASE = 0xffffffff80000000, no PADDR_OFFSET (so 0),
    // segments at physical 16 MiB, no LOADER note but GUEST_OS "linux".
    let mut elf = Elf::good();
    let paddr = 0x100_0000;
    elf.segments = vec![Segment::load(paddr, 0x2000, 0x4000, PF_R | PF_X)];
    elf.entry = 0; // the ENTRY note wins over e_entry
    elf.remove_xen_note(XEN_ELFNOTE_PADDR_OFFSET)
        .remove_xen_note(XEN_ELFNOTE_LOADER)
        .remove_note(HV_ELFNOTE_NAME, HV_ELFNOTE_ABI_VERSION)
        .set_note(xen_str(XEN_ELFNOTE_GUEST_OS, "linux"))
        .set_note(xen_u64(XEN_ELFNOTE_ENTRY, BASE + paddr + 0x100))
        .set_note(xen_u64(XEN_ELFNOTE_HYPERCALL_PAGE, BASE + paddr + 0x1000))
        .set_note(xen_u64(XEN_ELFNOTE_INIT_P2M, 0x80_0000_0000))
        .set_note(xen_u32(XEN_ELFNOTE_MOD_START_PFN, 1));
    let bytes = elf.build();
    let image = PvImage::parse(&bytes).unwrap();
    assert_eq!(image.paddr_offset(), 0);
    assert_eq!(image.virt_kstart(), BASE + paddr);
    assert_eq!(image.virt_kend(), BASE + paddr + 0x4000);
    assert_eq!(image.segments().next().unwrap().virt_addr, BASE + paddr);
    assert_eq!(image.p2m_base(), Some(0x80_0000_0000));
    assert!(image.mod_start_pfn());
    assert_eq!(image.abi_version(), None);
    image.check_abi(HV_ABI_VERSION, AbiNote::Optional).unwrap();
}

#[test]
fn without_address_notes_xen_defaults_apply() {
    let mut elf = Elf::good();
    elf.segments = vec![Segment::load(0x40_0000, 0x2000, 0x2000, PF_R | PF_X)];
    elf.entry = 0x40_0020;
    for t in [
        XEN_ELFNOTE_VIRT_BASE,
        XEN_ELFNOTE_PADDR_OFFSET,
        XEN_ELFNOTE_ENTRY,
        XEN_ELFNOTE_HYPERCALL_PAGE,
    ] {
        elf.remove_xen_note(t);
    }
    let bytes = elf.build();
    let image = PvImage::parse(&bytes).unwrap();
    assert_eq!(image.virt_base(), 0);
    assert_eq!(image.paddr_offset(), 0);
    assert_eq!(image.virt_kstart(), 0x40_0000);
    assert_eq!(image.virt_entry(), 0x40_0020);
    assert_eq!(image.hypercall_page(), None);
}

#[test]
fn notes_are_read_from_sections_when_no_segment_has_them() {
    let mut elf = Elf::good();
    elf.note_place = NotePlace::Section;
    let bytes = elf.build();
    let image = PvImage::parse(&bytes).unwrap();
    assert_eq!(image.guest_os(), Some("HvTest"));
    assert_eq!(image.abi_version(), Some(HV_ABI_VERSION));
}

#[test]
fn features_list_marks_required_and_ignores_unknown_optional_names() {
    let mut elf = Elf::good();
    elf.set_note(xen_str(
        XEN_ELFNOTE_FEATURES,
        "!pae_pgdir_above_4gb|dom0|some_future_thing|",
    ))
    .remove_xen_note(XEN_ELFNOTE_SUPPORTED_FEATURES);
    let bytes = elf.build();
    let f = PvImage::parse(&bytes).unwrap().features();
    assert_eq!(f.required, 1 << XENFEAT_PAE_PGDIR_ABOVE_4GB);
    assert_eq!(
        f.supported,
        1 << XENFEAT_PAE_PGDIR_ABOVE_4GB | 1 << XENFEAT_DOM0
    );
}

// Malformed images, each refused with its own line.

#[test]
fn truncated_header() {
    let bytes = Elf::good().build();
    assert_eq!(
        parse_err(&bytes[..40]),
        "image is 40 bytes, too short for an ELF64 header"
    );
    assert_eq!(
        parse_err(&[]),
        "image is 0 bytes, too short for an ELF64 header"
    );
}

#[test]
fn bad_magic() {
    let mut bytes = Elf::good().build();
    bytes[1] = b'X';
    assert_eq!(parse_err(&bytes), "not an ELF file (bad magic number)");
}

#[test]
fn wrong_class() {
    let mut bytes = Elf::good().build();
    bytes[4] = 1;
    assert_eq!(
        parse_err(&bytes),
        "not an ELF64 x86_64 executable: it is 32-bit"
    );
}

#[test]
fn wrong_encoding() {
    let mut bytes = Elf::good().build();
    bytes[5] = 2;
    assert_eq!(
        parse_err(&bytes),
        "not an ELF64 x86_64 executable: it is big-endian"
    );
}

#[test]
fn wrong_machine() {
    let mut bytes = Elf::good().build();
    put_u16(&mut bytes, 18, 183);
    assert_eq!(
        parse_err(&bytes),
        "not an ELF64 x86_64 executable: machine 183, not x86_64 (62)"
    );
}

#[test]
fn not_an_executable() {
    let mut bytes = Elf::good().build();
    put_u16(&mut bytes, 16, 3);
    assert_eq!(
        parse_err(&bytes),
        "not an ELF64 x86_64 executable: it is a shared object, not an executable"
    );
}

#[test]
fn program_headers_past_the_end() {
    let mut bytes = Elf::good().build();
    let len = bytes.len() as u64;
    put_u64(&mut bytes, 32, len - 8);
    assert_eq!(
        parse_err(&bytes),
        "program header table extends past the end of the file"
    );
}

#[test]
fn program_header_entry_size() {
    let mut bytes = Elf::good().build();
    put_u16(&mut bytes, 54, 32);
    assert_eq!(
        parse_err(&bytes),
        "program header entries are 32 bytes, expected 56"
    );
}

#[test]
fn segment_past_the_end_of_the_file() {
    let mut bytes = Elf::good().build();
    put_u64(&mut bytes, phdr_field(1, P_FILESZ), 0x10_0000);
    put_u64(&mut bytes, phdr_field(1, P_MEMSZ), 0x10_0000);
    assert_eq!(
        parse_err(&bytes),
        "segment 1 extends past the end of the file"
    );
}

#[test]
fn segment_offset_overflow() {
    let mut bytes = Elf::good().build();
    put_u64(&mut bytes, phdr_field(0, P_OFFSET), u64::MAX - 0x10);
    assert_eq!(
        parse_err(&bytes),
        "segment 0 extends past the end of the file"
    );
}

#[test]
fn file_size_larger_than_memory_size() {
    let mut bytes = Elf::good().build();
    put_u64(&mut bytes, phdr_field(0, P_MEMSZ), 0x1000);
    assert_eq!(
        parse_err(&bytes),
        "segment 0 has a file size larger than its memory size"
    );
}

#[test]
fn segment_wrapping_the_address_space() {
    let mut bytes = Elf::good().build();
    put_u64(&mut bytes, phdr_field(1, P_PADDR), u64::MAX - 0x100);
    assert_eq!(
        parse_err(&bytes),
        "segment 1 wraps around the end of the address space"
    );
}

#[test]
fn overlapping_segments() {
    let mut elf = Elf::good();
    elf.segments[1].paddr = BASE + 0x2000;
    assert_eq!(build_err(&elf), "segments 0 and 1 overlap");
}

#[test]
fn no_loadable_segments() {
    let mut elf = Elf::good();
    for seg in &mut elf.segments {
        seg.flags = 0; // libelf skips PT_LOAD without R, W or X
    }
    assert_eq!(build_err(&elf), "image has no loadable segments");
}

#[test]
fn too_many_segments() {
    let mut elf = Elf::good();
    elf.segments = (0..17)
        .map(|i| Segment::load(BASE + i * 0x1000, 16, 16, PF_R))
        .collect();
    assert_eq!(build_err(&elf), "image has more than 16 loadable segments");
}

#[test]
fn entry_outside_the_image() {
    let mut elf = Elf::good();
    elf.set_note(xen_u64(XEN_ELFNOTE_ENTRY, END));
    assert_eq!(
        build_err(&elf),
        "entry point 0xffffffff80008000 is outside the image 0xffffffff80000000-0xffffffff80008000"
    );
}

#[test]
fn hypercall_page_unaligned() {
    let mut elf = Elf::good();
    elf.set_note(xen_u64(XEN_ELFNOTE_HYPERCALL_PAGE, HYPERCALL_PAGE + 8));
    assert_eq!(
        build_err(&elf),
        "hypercall page 0xffffffff80001008 is not page-aligned"
    );
}

#[test]
fn hypercall_page_outside_the_image() {
    let mut elf = Elf::good();
    elf.set_note(xen_u64(XEN_ELFNOTE_HYPERCALL_PAGE, BASE - 0x1000));
    assert_eq!(
        build_err(&elf),
        "hypercall page 0xffffffff7ffff000 is outside the image \
         0xffffffff80000000-0xffffffff80008000"
    );
}

#[test]
fn no_notes_at_all() {
    let mut elf = Elf::good();
    elf.note_place = NotePlace::Nowhere;
    assert_eq!(build_err(&elf), "no Xen ELF notes: not a Xen PV image");
}

#[test]
fn missing_xen_version() {
    let mut elf = Elf::good();
    elf.remove_xen_note(XEN_ELFNOTE_XEN_VERSION);
    assert_eq!(build_err(&elf), "missing Xen note XEN_VERSION");
}

#[test]
fn missing_loader() {
    let mut elf = Elf::good();
    elf.remove_xen_note(XEN_ELFNOTE_LOADER);
    assert_eq!(build_err(&elf), "missing Xen note LOADER");
}

#[test]
fn bad_loader() {
    let mut elf = Elf::good();
    elf.set_note(xen_str(XEN_ELFNOTE_LOADER, "elf"));
    assert_eq!(
        build_err(&elf),
        "Xen note LOADER is \"elf\", expected \"generic\""
    );
}

#[test]
fn bad_xen_version() {
    let mut elf = Elf::good();
    elf.set_note(xen_str(XEN_ELFNOTE_XEN_VERSION, "xen-2.0"));
    assert_eq!(
        build_err(&elf),
        "Xen note XEN_VERSION is \"xen-2.0\", expected \"xen-3.0\""
    );
}

#[test]
fn hostile_note_text_stays_on_one_line() {
    let mut elf = Elf::good();
    elf.set_note(xen_str(
        XEN_ELFNOTE_XEN_VERSION,
        "x\nFAKE: a second line that goes on and on and on",
    ));
    assert_eq!(
        build_err(&elf),
        "Xen note XEN_VERSION is \"x\\nFAKE: a second line that goes on and o...\", \
         expected \"xen-3.0\""
    );
}

#[test]
fn note_not_utf8() {
    let mut elf = Elf::good();
    let mut note = xen_str(XEN_ELFNOTE_GUEST_OS, "");
    note.desc = vec![0xff, 0xfe, 0];
    elf.set_note(note);
    assert_eq!(build_err(&elf), "Xen note GUEST_OS is not valid UTF-8");
}

#[test]
fn numeric_note_of_odd_size() {
    let mut elf = Elf::good();
    let mut note = xen_u64(XEN_ELFNOTE_ENTRY, ENTRY);
    note.desc.truncate(3);
    elf.set_note(note);
    assert_eq!(
        build_err(&elf),
        "Xen note ENTRY has a 3-byte value, expected 1, 2, 4 or 8 bytes"
    );
}

#[test]
fn unsupported_required_features() {
    for feature in Feature::ALL.into_iter().filter(|f| !f.is_supported()) {
        let mut elf = Elf::good();
        let features = format!("!{}|pae_pgdir_above_4gb", feature.name());
        elf.set_note(xen_str(XEN_ELFNOTE_FEATURES, &features));
        assert_eq!(
            build_err(&elf),
            format!("required feature {} is not supported", feature.name())
        );
    }
    let mut elf = Elf::good();
    elf.set_note(xen_str(
        XEN_ELFNOTE_FEATURES,
        "!writable_page_tables|pae_pgdir_above_4gb",
    ));
    assert_eq!(
        build_err(&elf),
        "required feature writable_page_tables is not supported"
    );
}

#[test]
fn unsupported_features_are_fine_when_optional() {
    let mut elf = Elf::good();
    elf.set_note(xen_str(
        XEN_ELFNOTE_FEATURES,
        "writable_page_tables|supervisor_mode_kernel",
    ));
    let bytes = elf.build();
    let image = PvImage::parse(&bytes).unwrap();
    assert!(image.features().supports(Feature::WritablePageTables));
    assert_eq!(image.features().required, 0);
}

#[test]
fn unknown_required_feature() {
    let mut elf = Elf::good();
    elf.set_note(xen_str(
        XEN_ELFNOTE_FEATURES,
        "pae_pgdir_above_4gb|!frobnicate",
    ));
    assert_eq!(build_err(&elf), "required feature frobnicate is unknown");
}

#[test]
fn abi_mismatch_names_both_versions() {
    let mut elf = Elf::good();
    elf.set_note(hv_abi(AbiVersion::new(0, 3).to_u32()));
    let bytes = elf.build();
    let image = PvImage::parse(&bytes).unwrap();
    assert_eq!(image.abi_version(), Some(AbiVersion::new(0, 3)));
    for policy in [AbiNote::Required, AbiNote::Optional] {
        let err = image.check_abi(AbiVersion::new(0, 1), policy).unwrap_err();
        assert_eq!(
            err.to_string(),
            "built for ABI 0.3, this hypervisor implements ABI 0.1"
        );
    }
}

#[test]
fn newer_minor_implementation_accepts_older_image_after_1_0() {
    let mut elf = Elf::good();
    elf.set_note(hv_abi(AbiVersion::new(1, 2).to_u32()));
    let bytes = elf.build();
    let image = PvImage::parse(&bytes).unwrap();
    image
        .check_abi(AbiVersion::new(1, 3), AbiNote::Required)
        .unwrap();
}

#[test]
fn missing_abi_note_is_an_error_only_when_required() {
    let mut elf = Elf::good();
    elf.remove_note(HV_ELFNOTE_NAME, HV_ELFNOTE_ABI_VERSION);
    let bytes = elf.build();
    let image = PvImage::parse(&bytes).unwrap();
    assert_eq!(image.abi_version(), None);
    image.check_abi(HV_ABI_VERSION, AbiNote::Optional).unwrap();
    assert_eq!(
        image
            .check_abi(HV_ABI_VERSION, AbiNote::Required)
            .unwrap_err()
            .to_string(),
        "image has no HvCore ABI note saying which ABI it was built for"
    );
}

#[test]
fn abi_note_of_wrong_size() {
    let mut elf = Elf::good();
    let mut note = hv_abi(0);
    note.desc.push(0);
    elf.set_note(note);
    assert_eq!(
        build_err(&elf),
        "HvCore ABI note has a 5-byte value, expected 4"
    );
}

#[test]
fn abi_note_in_a_section_when_xen_notes_are_in_a_segment() {
    // The Xen notes come from the segment; our note is only in a section.
    let mut elf = Elf::good();
    elf.remove_note(HV_ELFNOTE_NAME, HV_ELFNOTE_ABI_VERSION);
    let mut bytes = elf.build();
    let mut section_only = Elf::good();
    section_only.notes = vec![hv_abi(AbiVersion::new(0, 7).to_u32())];
    let blob = section_only.notes_blob();
    // Append the blob and a section table with a null and a note section.
    let blob_at = bytes.len();
    bytes.extend_from_slice(&blob);
    bytes.resize(bytes.len().next_multiple_of(8), 0);
    let shoff = bytes.len();
    bytes.extend_from_slice(Elf64Shdr::default().as_bytes());
    let sh = Elf64Shdr {
        sh_type: SHT_NOTE.into(),
        sh_offset: (blob_at as u64).into(),
        sh_size: (blob.len() as u64).into(),
        ..Default::default()
    };
    bytes.extend_from_slice(sh.as_bytes());
    put_u64(&mut bytes, 40, shoff as u64);
    put_u16(&mut bytes, 60, 2);
    let image = PvImage::parse(&bytes).unwrap();
    assert_eq!(image.abi_version(), Some(AbiVersion::new(0, 7)));
}

#[test]
fn image_in_the_hypervisor_hole() {
    let mut elf = Elf::good();
    let base = HYPERVISOR_VIRT_START;
    elf.segments = vec![Segment::load(base, 0x2000, 0x2000, PF_R | PF_X)];
    elf.set_note(xen_u64(XEN_ELFNOTE_VIRT_BASE, base))
        .set_note(xen_u64(XEN_ELFNOTE_PADDR_OFFSET, base))
        .set_note(xen_u64(XEN_ELFNOTE_ENTRY, base))
        .remove_xen_note(XEN_ELFNOTE_HYPERCALL_PAGE);
    assert_eq!(
        build_err(&elf),
        "image 0xffff800000000000-0xffff800000002000 overlaps the hypervisor hole \
         0xffff800000000000-0xffff880000000000"
    );
}

#[test]
fn image_reaching_into_the_hole_from_below_is_not_canonical() {
    let mut elf = Elf::good();
    let base = 0x0000_7fff_ffff_f000;
    elf.segments = vec![Segment::load(base, 0x1000, 0x2000, PF_R | PF_X)];
    elf.set_note(xen_u64(XEN_ELFNOTE_VIRT_BASE, base))
        .set_note(xen_u64(XEN_ELFNOTE_PADDR_OFFSET, base))
        .set_note(xen_u64(XEN_ELFNOTE_ENTRY, base))
        .remove_xen_note(XEN_ELFNOTE_HYPERCALL_PAGE);
    assert_eq!(
        build_err(&elf),
        "image 0x7ffffffff000-0x800000001000 is not canonical (guests own addresses below \
         0x800000000000 and from 0xffff880000000000)"
    );
}

#[test]
fn image_just_above_the_hole_is_fine() {
    let mut elf = Elf::good();
    let base = HYPERVISOR_VIRT_END;
    elf.segments = vec![Segment::load(base, 0x2000, 0x2000, PF_R | PF_X)];
    elf.set_note(xen_u64(XEN_ELFNOTE_VIRT_BASE, base))
        .set_note(xen_u64(XEN_ELFNOTE_PADDR_OFFSET, base))
        .set_note(xen_u64(XEN_ELFNOTE_ENTRY, base))
        .set_note(xen_u64(XEN_ELFNOTE_HYPERCALL_PAGE, base + 0x1000));
    PvImage::parse(&elf.build()).unwrap();
}

#[test]
fn paddr_offset_without_virt_base() {
    let mut elf = Elf::good();
    elf.remove_xen_note(XEN_ELFNOTE_VIRT_BASE);
    assert_eq!(
        build_err(&elf),
        "Xen note PADDR_OFFSET is set but VIRT_BASE is not"
    );
}

#[test]
fn virt_base_must_be_page_aligned() {
    let mut elf = Elf::good();
    elf.set_note(xen_u64(XEN_ELFNOTE_VIRT_BASE, BASE + 8))
        .set_note(xen_u64(XEN_ELFNOTE_PADDR_OFFSET, BASE + 8));
    assert_eq!(
        build_err(&elf),
        "VIRT_BASE 0xffffffff80000008 is not page-aligned"
    );
}

#[test]
fn image_below_virt_base() {
    let mut elf = Elf::good();
    elf.set_note(xen_u64(XEN_ELFNOTE_VIRT_BASE, BASE + 0x1000))
        .set_note(xen_u64(XEN_ELFNOTE_PADDR_OFFSET, BASE + 0x1000));
    assert_eq!(
        build_err(&elf),
        "image starts at 0xffffffff80000000, below VIRT_BASE 0xffffffff80001000"
    );
}

#[test]
fn image_wrapping_after_translation() {
    // VIRT_BASE - PADDR_OFFSET pushes the end of the image past 2^64.
    // Offset 0x7ffff000 puts the first byte at 2^64 - 4 KiB.
    let mut elf = Elf::good();
    elf.set_note(xen_u64(XEN_ELFNOTE_PADDR_OFFSET, 0xffff_ffff_0000_1000));
    assert_eq!(
        build_err(&elf),
        "image wraps around the end of the address space"
    );
}

#[test]
fn p2m_base_inside_the_image() {
    let mut elf = Elf::good();
    elf.set_note(xen_u64(XEN_ELFNOTE_INIT_P2M, BASE + 0x2000));
    assert_eq!(
        build_err(&elf),
        "INIT_P2M base 0xffffffff80002000 lies inside the image \
         0xffffffff80000000-0xffffffff80008000"
    );
}

#[test]
fn malformed_note() {
    let elf = Elf::good();
    let mut bytes = elf.build();
    let notes_at = EHDR_SIZE + (elf.segments.len() + 1) * PHDR_SIZE;
    put_u32(&mut bytes, notes_at + 4, 0x10_0000); // descsz of the first note
    assert_eq!(
        parse_err(&bytes),
        format!("malformed ELF note at file offset {notes_at:#x}")
    );
}

#[test]
fn dom0_check_follows_supported_features() {
    let bytes = Elf::good().build();
    PvImage::parse(&bytes).unwrap().check_dom0().unwrap();

    let mut elf = Elf::good();
    elf.set_note(xen_u32(XEN_ELFNOTE_SUPPORTED_FEATURES, 0));
    let bytes = elf.build();
    assert_eq!(
        PvImage::parse(&bytes)
            .unwrap()
            .check_dom0()
            .unwrap_err()
            .to_string(),
        "image's SUPPORTED_FEATURES lack dom0: it cannot run as dom0"
    );

    // No SUPPORTED_FEATURES note: Xen does not ask.
    let mut elf = Elf::good();
    elf.remove_xen_note(XEN_ELFNOTE_SUPPORTED_FEATURES);
    let bytes = elf.build();
    PvImage::parse(&bytes).unwrap().check_dom0().unwrap();
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_mutations_never_panic() {
    let good = Elf::good().build();
    // Most of the structure sits in the first page (headers and notes).
    let hot = 0x400.min(good.len());
    let mut rng = Rng::new(0x5eed_1234);
    let mut accepted = 0;
    let mut errors = std::collections::HashSet::new();
    for _ in 0..30_000 {
        let mut bytes = good.clone();
        for _ in 0..1 + rng.below(8) {
            let at = if rng.below(4) == 0 {
                rng.below(bytes.len())
            } else {
                rng.below(hot)
            };
            bytes[at] = match rng.below(4) {
                0 => 0,
                1 => 0xff,
                2 => bytes[at] ^ (1 << rng.below(8)),
                _ => rng.next() as u8,
            };
        }
        if rng.below(10) == 0 {
            bytes.truncate(rng.below(bytes.len() + 1));
        }
        match PvImage::parse(&bytes) {
            Ok(image) => {
                accepted += 1;
                for seg in image.segments() {
                    let _ = seg.bss();
                }
                let _ = image.check_abi(HV_ABI_VERSION, AbiNote::Required);
                let _ = crate::start_of_day::StartOfDay::plan(&image, 1 << 14, 0x1234);
            }
            Err(e) => {
                let line = e.to_string();
                assert!(!line.contains('\n'), "multi-line error: {line:?}");
                errors.insert(core::mem::discriminant(&e));
            }
        }
    }
    // The mutations must reach both outcomes and many different checks.
    assert!(accepted > 100, "only {accepted} mutated images parsed");
    assert!(
        errors.len() >= 10,
        "only {} distinct errors seen",
        errors.len()
    );
}

#[test]
fn parses_a_real_built_guest_if_present() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/x86_64-unknown-none/release/hello"
    );
    let Ok(bytes) = std::fs::read(path) else {
        return;
    };
    let image = match PvImage::parse(&bytes) {
        Ok(image) => image,
        Err(e) => panic!("{path}: {e}"),
    };
    assert!(
        image.hypercall_page().is_some(),
        "{path}: no hypercall page"
    );
    if let Err(e) = crate::start_of_day::StartOfDay::plan(&image, 1 << 14, 0) {
        panic!("{path}: {e}");
    }
}
