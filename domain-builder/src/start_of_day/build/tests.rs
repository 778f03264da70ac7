use std::collections::HashMap;

use super::*;
use crate::image::test_elf::*;
use crate::image::{PF_R, PF_X};
use crate::start_of_day::{ModulePlacement, Role};
use abi::ops::*;

const MIB: u64 = 1 << 20;

/// A domain's memory: zeroed frames, guest frame `pfn` at machine frame
/// `0x5000 + 3 * pfn` (so a pfn never passes for its mfn).
#[derive(Default)]
struct FakeDomain {
    frames: HashMap<u64, Vec<u8>>,
    writes: usize,
}

impl FakeDomain {
    fn pfn_of_mfn(mfn: u64) -> u64 {
        assert_eq!((mfn - 0x5000) % 3, 0, "{mfn:#x} is no frame of the domain");
        (mfn - 0x5000) / 3
    }

    fn frame(&self, pfn: u64) -> &[u8] {
        static ZERO: [u8; 4096] = [0; 4096];
        self.frames.get(&pfn).map_or(&ZERO[..], |f| &f[..])
    }

    fn u64_at(&self, pfn: u64, index: usize) -> u64 {
        let bytes = &self.frame(pfn)[index * 8..index * 8 + 8];
        u64::from_le_bytes(bytes.try_into().unwrap())
    }

    fn bytes_at(&self, plan: &StartOfDay, va: u64, len: usize) -> Vec<u8> {
        (va..va + len as u64)
            .map(|at| self.frame(plan.pfn_of(at).unwrap())[(at % 4096) as usize])
            .collect()
    }

    /// The leaf entry mapping `va` under the L4 at `l4`, walking the
    /// tables the builder wrote.
    fn translate(&self, l4: u64, va: u64) -> Option<u64> {
        let mut table = l4;
        for level in (1..=4u32).rev() {
            let index = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
            let entry = self.u64_at(Self::pfn_of_mfn(table), index);
            if entry & PRESENT == 0 {
                return None;
            }
            if level == 1 {
                return Some(entry);
            }
            assert_eq!(entry & 0xfff, TABLE_LINK, "link flags at level {level}");
            table = entry >> 12;
        }
        unreachable!()
    }
}

impl DomainMemory for FakeDomain {
    fn mfn(&self, pfn: u64) -> u64 {
        0x5000 + 3 * pfn
    }

    fn write(&mut self, pfn: u64, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= 4096, "a write crossed a page");
        let frame = self.frames.entry(pfn).or_insert_with(|| vec![0; 4096]);
        frame[offset..offset + bytes.len()].copy_from_slice(bytes);
        self.writes += 1;
    }
}

fn plan(elf: &Elf, role: Role, nr_pages: u64, module_len: u64) -> StartOfDay {
    let bytes = elf.build();
    let image = PvImage::parse(&bytes).unwrap();
    StartOfDay::plan_for(role, &image, nr_pages, module_len).unwrap()
}

fn image_at(base: u64, memsz: u64) -> Elf {
    let mut elf = Elf::good();
    elf.segments = vec![Segment::load(base, 0x2000, memsz, PF_R | PF_X)];
    elf.set_note(xen_u64(XEN_ELFNOTE_VIRT_BASE, base))
        .set_note(xen_u64(XEN_ELFNOTE_PADDR_OFFSET, base))
        .set_note(xen_u64(XEN_ELFNOTE_ENTRY, base + 0x10))
        .set_note(xen_u64(XEN_ELFNOTE_HYPERCALL_PAGE, base + 0x1000));
    elf
}

/// Every page of the area maps its own frame, page tables read-only and
/// everything else writable; nothing outside the area is mapped.
fn check_tables(plan: &StartOfDay) {
    let mut mem = FakeDomain::default();
    let l4 = write_page_tables(&mut mem, plan);
    assert_eq!(l4, mem.mfn(plan.page_tables.pfn));
    assert_eq!(mem.writes as u64, plan.nr_pt_frames, "one write per table");
    let tables = plan.page_tables.pfn..plan.page_tables.pfn + plan.nr_pt_frames;
    for pfn in 0..plan.mapped_pages() {
        let va = plan.v_start + pfn * 4096;
        let entry = mem.translate(l4, va).unwrap_or_else(|| panic!("{va:#x}"));
        assert_eq!(entry >> 12, mem.mfn(pfn), "{va:#x}");
        let flags = if tables.contains(&pfn) {
            LEAF_RO
        } else {
            LEAF_RW
        };
        assert_eq!(entry & 0xfff, flags, "{va:#x}");
    }
    assert_eq!(mem.translate(l4, plan.v_end), None);
    if !plan.v_start.is_multiple_of(2 * MIB) {
        assert_eq!(mem.translate(l4, plan.v_start - 4096), None);
    }
}

#[test]
fn page_tables_map_the_area_onto_its_frames() {
    check_tables(&plan(&Elf::good(), Role::Dom0, 16384, 0));
    check_tables(&plan(&Elf::good(), Role::DomU, 4096, 0));
}

#[test]
fn page_tables_across_a_1gib_boundary() {
    // Two L2 tables, an L1 that starts 1 MiB before the area.
    let plan = plan(&image_at(0x3ff0_0000, 2 * MIB), Role::DomU, 4096, 0);
    assert_eq!(plan.tables.l2, 2);
    check_tables(&plan);
}

#[test]
fn page_tables_of_an_area_larger_than_one_l1() {
    let plan = plan(&image_at(BASE, 9 * MIB), Role::Dom0, 65536, 0);
    assert!(plan.tables.l1 > 4);
    check_tables(&plan);
}

#[test]
fn kernel_segments_land_at_their_addresses_and_the_bss_stays_zero() {
    let elf = Elf::good();
    let bytes = elf.build();
    let image = PvImage::parse(&bytes).unwrap();
    let plan = StartOfDay::plan_for(Role::DomU, &image, 4096, 0).unwrap();
    let mut mem = FakeDomain::default();
    load_kernel(&mut mem, &plan, &image);
    for segment in image.segments() {
        assert_eq!(
            mem.bytes_at(&plan, segment.virt_addr, segment.data.len()),
            segment.data
        );
        let (bss, len) = segment.bss();
        assert!(
            mem.bytes_at(&plan, bss, len as usize)
                .iter()
                .all(|&b| b == 0)
        );
    }
}

#[test]
fn copies_split_at_page_boundaries() {
    let plan = plan(&Elf::good(), Role::DomU, 4096, 0);
    let mut mem = FakeDomain::default();
    let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    copy_to(&mut mem, &plan, BASE + 4000, &data);
    assert_eq!(mem.bytes_at(&plan, BASE + 4000, data.len()), data);
    assert_eq!(mem.writes, 4, "4000..4096, two whole pages, the rest");
}

#[test]
#[should_panic(expected = "outside the start-of-day area")]
fn copies_outside_the_area_are_a_bug() {
    let plan = plan(&Elf::good(), Role::DomU, 4096, 0);
    copy_to(
        &mut FakeDomain::default(),
        &plan,
        plan.v_end - 2,
        &[1, 2, 3],
    );
}

#[test]
fn module_lands_after_the_kernel() {
    let module: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let plan = plan(&Elf::good(), Role::Dom0, 4096, module.len() as u64);
    let ModulePlacement::Mapped(region) = plan.module else {
        panic!("mapped module expected");
    };
    let mut mem = FakeDomain::default();
    load_module(&mut mem, &plan, &module);
    assert_eq!(mem.bytes_at(&plan, region.start, module.len()), module);
    let info = start_info(
        &plan,
        &StartInfoSpec {
            module_len: module.len() as u64,
            ..Default::default()
        },
    );
    assert_eq!((info.mod_start, info.mod_len), (region.start, 5000));
    assert_eq!(info.flags & SIF_MOD_START_PFN, 0);
}

#[test]
fn p2m_list_names_every_frame() {
    let plan = plan(&Elf::good(), Role::DomU, 1500, 0);
    let mut mem = FakeDomain::default();
    write_p2m_list(&mut mem, &plan);
    let list = mem.bytes_at(&plan, plan.p2m.region().start, 1500 * 8);
    for (pfn, entry) in list.chunks_exact(8).enumerate() {
        let mfn = u64::from_le_bytes(entry.try_into().unwrap());
        assert_eq!(mfn, mem.mfn(pfn as u64));
    }
}

#[test]
fn hypercall_page_holds_xens_stubs() {
    let page = hypercall_page();
    // Hypercall 1 (mmu_update): push rcx; push r11; mov $1, eax; syscall;
    // pop r11; pop rcx; ret; then int3 padding.
    assert_eq!(
        &page[32..32 + 15],
        &[
            0x51, 0x41, 0x53, 0xb8, 1, 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3, 0xcc
        ]
    );
    // iret (23) also pushes rax and never returns.
    let iret = 23 * 32;
    assert_eq!(
        &page[iret..iret + 12],
        &[0x51, 0x41, 0x53, 0x50, 0xb8, 23, 0, 0, 0, 0x0f, 0x05, 0xcc]
    );
    let plan = plan(&Elf::good(), Role::DomU, 4096, 0);
    let mut mem = FakeDomain::default();
    fill_hypercall_page(&mut mem, &plan);
    assert_eq!(mem.bytes_at(&plan, HYPERCALL_PAGE, 4096), page);
}

#[test]
fn domu_start_info_has_its_console_and_no_privileges() {
    let plan = plan(&Elf::good(), Role::DomU, 4096, 0);
    let long = "x".repeat(2000);
    let info = start_info(
        &plan,
        &StartInfoSpec {
            shared_info: 0xabc000,
            cmdline: &long,
            console: Some((0x1234, 7)),
            ..Default::default()
        },
    );
    assert!(info.magic.starts_with(b"xen-3.0-x86_64"));
    assert_eq!(info.flags, 0);
    assert_eq!(info.nr_pages, 4096);
    assert_eq!(info.shared_info, 0xabc000);
    assert_eq!(info.console_domu(), (0x1234, 7));
    assert_eq!((info.store_mfn, info.store_evtchn), (0, 0));
    assert_eq!(info.pt_base, plan.page_tables.start);
    assert_eq!(info.nr_pt_frames, plan.nr_pt_frames);
    assert_eq!(info.mfn_list, plan.p2m.region().start);
    assert_eq!((info.mod_start, info.mod_len), (0, 0));
    // Truncated, and NUL-terminated.
    assert_eq!(info.cmdline().len(), 1023);

    let mut mem = FakeDomain::default();
    write_start_info(&mut mem, &plan, &info);
    assert_eq!(
        mem.bytes_at(&plan, plan.start_info.start, info.as_bytes().len()),
        info.as_bytes()
    );
}

#[test]
fn dom0_start_info_is_privileged() {
    let plan = plan(&Elf::good(), Role::Dom0, 4096, 0);
    let info = start_info(
        &plan,
        &StartInfoSpec {
            cmdline: "loglevel=debug",
            ..Default::default()
        },
    );
    assert_eq!(info.flags, SIF_PRIVILEGED | SIF_INITDOMAIN);
    assert_eq!(info.cmdline(), b"loglevel=debug");
}

#[test]
fn entry_registers_point_at_the_plan() {
    let plan = plan(&Elf::good(), Role::DomU, 4096, 0);
    let regs = plan.entry_registers();
    assert_eq!(regs.rip, ENTRY);
    assert_eq!(regs.rsp, plan.stack.end);
    assert_eq!(regs.rsi, plan.start_info.start);
}
