use super::*;
use crate::image::test_elf::*;
use crate::image::{PF_R, PF_X};
use abi::ops::*;

const MIB: u64 = 1 << 20;

fn plan_of(elf: &Elf, nr_pages: u64, module_len: u64) -> Result<StartOfDay, PlanError> {
    let bytes = elf.build();
    let image = PvImage::parse(&bytes).unwrap();
    StartOfDay::plan(&image, nr_pages, module_len)
}

/// A good image whose kernel occupies `memsz` bytes from `base`.
fn image_at(base: u64, memsz: u64) -> Elf {
    let mut elf = Elf::good();
    elf.segments = vec![Segment::load(base, 0x2000, memsz, PF_R | PF_X)];
    elf.set_note(xen_u64(XEN_ELFNOTE_VIRT_BASE, base))
        .set_note(xen_u64(XEN_ELFNOTE_PADDR_OFFSET, base))
        .set_note(xen_u64(XEN_ELFNOTE_ENTRY, base + 0x10))
        .set_note(xen_u64(XEN_ELFNOTE_HYPERCALL_PAGE, base + 0x1000));
    elf
}

/// Xen's search, transcribed: try every count from 2 upwards.
fn xen_reference(v_start: u64, pt_start: u64) -> (u64, u64) {
    let nr = |lo: u64, hi: u64, s: u32| {
        let (lo, hi) = (lo as u128, hi as u128);
        let m = (1u128 << s) - 1;
        (((hi + m) & !m) - (lo & !m)) as u64 >> s
    };
    for nr_pt in 2.. {
        let stack_end = pt_start + nr_pt * 4096 + 4096;
        let mut v_end = (stack_end + (4 * MIB - 1)) & !(4 * MIB - 1);
        if v_end - stack_end < 512 * 1024 {
            v_end += 4 * MIB;
        }
        if 1 + nr(v_start, v_end, 39) + nr(v_start, v_end, 30) + nr(v_start, v_end, 21) <= nr_pt {
            return (nr_pt, v_end);
        }
    }
    unreachable!()
}

#[test]
fn dom0_layout_of_a_small_image() {
    let plan = plan_of(&Elf::good(), 16384, 0).unwrap();
    assert_eq!(plan.role, Role::Dom0);
    assert_eq!(plan.v_start, BASE);
    assert_eq!(
        plan.kernel,
        Region {
            start: BASE,
            end: END,
            pfn: 0
        }
    );
    assert_eq!(plan.module, ModulePlacement::None);
    assert_eq!(plan.mod_start(), None);
    // 16384 entries of 8 bytes: 32 pages right after the kernel.
    assert_eq!(
        plan.p2m,
        P2mPlacement::Mapped(Region {
            start: END,
            end: END + 0x20000,
            pfn: 8
        })
    );
    assert_eq!(
        plan.start_info,
        Region {
            start: BASE + 0x28000,
            end: BASE + 0x29000,
            pfn: 0x28
        }
    );
    assert_eq!(plan.xenstore, None);
    assert_eq!(plan.console, None);
    // L4, L3, L2 and two L1s for the 4 MiB area.
    assert_eq!(
        plan.tables,
        TableCounts {
            l4: 1,
            l3: 1,
            l2: 1,
            l1: 2
        }
    );
    assert_eq!(plan.nr_pt_frames, 5);
    assert_eq!(
        plan.page_tables,
        Region {
            start: BASE + 0x29000,
            end: BASE + 0x2e000,
            pfn: 0x29
        }
    );
    assert_eq!(
        plan.stack,
        Region {
            start: BASE + 0x2e000,
            end: BASE + 0x2f000,
            pfn: 0x2e
        }
    );
    assert_eq!(plan.v_end, BASE + 4 * MIB);
    assert_eq!(plan.mapped_pages(), 1024);
    assert_eq!(plan.pages_needed, 1024);
    assert_eq!(plan.entry, ENTRY);
    assert_eq!(plan.hypercall_page, Some(HYPERCALL_PAGE));
    assert_eq!(plan.pfn_of(BASE + 0x2e123), Some(0x2e));
    assert_eq!(plan.pfn_of(plan.v_end), None);
}

#[test]
fn mapped_module_follows_the_kernel_page_aligned() {
    let plan = plan_of(&Elf::good(), 16384, 0x1800).unwrap();
    let module = Region {
        start: END,
        end: END + 0x1800,
        pfn: 8,
    };
    assert_eq!(plan.module, ModulePlacement::Mapped(module));
    assert_eq!(plan.mod_start(), Some(END));
    assert_eq!(module.pages(), 2);
    assert_eq!(plan.p2m.region().start, END + 0x2000);
    assert_eq!(plan.p2m.region().pfn, 10);
}

#[test]
fn unmapped_module_takes_the_frames_after_the_area() {
    let mut elf = Elf::good();
    elf.set_note(xen_u32(XEN_ELFNOTE_MOD_START_PFN, 1));
    let plan = plan_of(&elf, 16384, 0x1800).unwrap();
    assert_eq!(plan.p2m.region().start, END);
    assert_eq!(
        plan.module,
        ModulePlacement::Unmapped {
            pfn: 1024,
            pages: 2
        }
    );
    assert_eq!(plan.mod_start(), Some(1024));
    assert_eq!(plan.pages_needed, 1026);
}

#[test]
fn domu_gets_store_and_console_pages_after_start_info() {
    let bytes = Elf::good().build();
    let image = PvImage::parse(&bytes).unwrap();
    let plan = StartOfDay::plan_for(Role::DomU, &image, 16384, 0).unwrap();
    let si = plan.start_info;
    assert_eq!(
        plan.xenstore,
        Some(Region {
            start: si.end,
            end: si.end + 0x1000,
            pfn: si.pfn + 1
        })
    );
    assert_eq!(
        plan.console,
        Some(Region {
            start: si.end + 0x1000,
            end: si.end + 0x2000,
            pfn: si.pfn + 2
        })
    );
    assert_eq!(plan.page_tables.start, si.end + 0x2000);
}

#[test]
fn page_table_count_is_a_fixed_point() {
    // Chosen so that the first guess (2 frames) fits the 4 MiB area, the
    // 5 frames that area needs push the stack within 512 KiB of its end,
    // and the 8 MiB area that follows needs 7.
    let plan = plan_of(&image_at(BASE, 0x373000), 4096, 0).unwrap();
    assert_eq!(plan.page_tables.start, BASE + 0x37c000);
    assert_eq!(plan.nr_pt_frames, 7);
    assert_eq!(
        plan.tables,
        TableCounts {
            l4: 1,
            l3: 1,
            l2: 1,
            l1: 4
        }
    );
    assert_eq!(plan.v_end, BASE + 8 * MIB);
    assert_eq!(
        (plan.nr_pt_frames, plan.v_end),
        xen_reference(plan.v_start, BASE + 0x37c000)
    );
}

#[test]
fn area_is_4mib_aligned_with_at_least_512kib_of_padding() {
    // Stack ends 0x7c000 short of 4 MiB: less than 512 KiB, so one more 4 MiB.
    let plan = plan_of(&image_at(BASE, 0x373000), 4096, 0).unwrap();
    assert_eq!(plan.stack.end, BASE + 0x384000);
    assert_eq!(plan.v_end, BASE + 8 * MIB);
    // Stack ends 0x81000 short: enough padding, no extra 4 MiB.
    let plan = plan_of(&image_at(BASE, 0x370000), 4096, 0).unwrap();
    assert_eq!(plan.stack.end, BASE + 0x37f000);
    assert_eq!(plan.v_end, BASE + 4 * MIB);
}

#[test]
fn plans_match_xens_search_across_sizes() {
    for nr_pages in [1 << 14, 1 << 16, 1 << 17, 1 << 20] {
        for memsz in (0x2000..0x140_0000).step_by(0x3_3000) {
            let plan = plan_of(&image_at(BASE, memsz), nr_pages, 0).unwrap();
            let expected = xen_reference(plan.v_start, plan.page_tables.start);
            assert_eq!(
                (plan.nr_pt_frames, plan.v_end),
                expected,
                "memsz {memsz:#x}"
            );
            assert_eq!(plan.v_end % (4 * MIB), 0);
            assert!(plan.v_end - plan.stack.end >= 512 * 1024);
            assert!(plan.v_end - plan.stack.end < 512 * 1024 + 4 * MIB);
            assert_eq!(plan.page_tables.pages(), plan.nr_pt_frames);
            assert_eq!(plan.page_table_frames().count() as u64, plan.nr_pt_frames);
        }
    }
}

#[test]
fn frames_come_in_xens_order_across_a_1gib_boundary() {
    // The area runs from 1 GiB - 1 MiB to past 1 GiB + 2 MiB.
    let base = 0x3ff0_0000;
    let plan = plan_of(&image_at(base, 2 * MIB), 4096, 0).unwrap();
    assert_eq!(plan.v_end, 0x4040_0000);
    assert_eq!(
        plan.tables,
        TableCounts {
            l4: 1,
            l3: 1,
            l2: 2,
            l1: 3
        }
    );
    let frames: Vec<_> = plan.page_table_frames().map(|f| (f.level, f.va)).collect();
    assert_eq!(
        frames,
        [
            (4, 0),
            (1, 0x3fe0_0000),
            (2, 0),
            (3, 0),
            (1, 0x4000_0000),
            (2, 0x4000_0000),
            (1, 0x4020_0000),
        ]
    );
    let pfns: Vec<_> = plan.page_table_frames().map(|f| f.pfn).collect();
    let first = plan.page_tables.pfn;
    assert_eq!(pfns, (first..first + 7).collect::<Vec<_>>());
}

#[test]
fn too_few_pages() {
    let err = plan_of(&Elf::good(), 100, 0).unwrap_err();
    assert_eq!(err.to_string(), "image needs 1024 pages, domain has 100");
    // Exactly enough is enough.
    plan_of(&Elf::good(), 1024, 0).unwrap();
}

#[test]
fn separate_p2m_is_placed_at_init_p2m() {
    let mut elf = Elf::good();
    elf.set_note(xen_u64(XEN_ELFNOTE_INIT_P2M, 0x80_0000_0000));
    let plan = plan_of(&elf, 16384, 0).unwrap();
    assert_eq!(
        plan.p2m,
        P2mPlacement::Separate(Region {
            start: 0x80_0000_0000,
            end: 0x80_0002_0000,
            pfn: 1024
        })
    );
    // Nothing of the p2m inside the area: start_info follows the kernel.
    assert_eq!(plan.start_info.start, END);
    assert_eq!(plan.pages_needed, 1024 + 32 + 3);
}

#[test]
fn separate_p2m_may_not_touch_the_area() {
    let mut elf = Elf::good();
    elf.set_note(xen_u64(XEN_ELFNOTE_INIT_P2M, BASE + 0x10_0000));
    assert_eq!(
        plan_of(&elf, 16384, 0).unwrap_err().to_string(),
        "INIT_P2M table 0xffffffff80100000-0xffffffff80120000 overlaps the start-of-day area \
         0xffffffff80000000-0xffffffff80400000"
    );
}

#[test]
fn separate_p2m_outside_guest_space() {
    let mut elf = Elf::good();
    elf.set_note(xen_u64(
        XEN_ELFNOTE_INIT_P2M,
        abi::xen::HYPERVISOR_VIRT_START,
    ));
    assert_eq!(
        plan_of(&elf, 16384, 0).unwrap_err().to_string(),
        "INIT_P2M table 0xffff800000000000-0xffff800000020000 overlaps the hypervisor hole \
         0xffff800000000000-0xffff880000000000"
    );
}

#[test]
fn area_running_off_the_lower_half() {
    let plan = plan_of(&image_at(0x7fff_fff0_0000, 0x9_0000), 4096, 0);
    assert_eq!(
        plan.unwrap_err().to_string(),
        "start-of-day area 0x7ffffff00000-0x800000400000 is not canonical (guests own addresses \
         below 0x800000000000 and from 0xffff880000000000)"
    );
}

#[test]
fn area_running_off_the_top_of_the_address_space() {
    let plan = plan_of(&image_at(0xffff_ffff_ffc0_0000, 0x9_0000), 4096, 0);
    assert_eq!(
        plan.unwrap_err().to_string(),
        "start-of-day area does not fit below the top of the address space"
    );
}

#[test]
fn huge_domains_do_not_overflow() {
    let bytes = Elf::good().build();
    let image = PvImage::parse(&bytes).unwrap();
    assert_eq!(
        StartOfDay::plan(&image, u64::MAX, 0).unwrap_err(),
        PlanError::AddressSpaceExhausted
    );
    assert_eq!(
        StartOfDay::plan(&image, 16384, u64::MAX).unwrap_err(),
        PlanError::AddressSpaceExhausted
    );
}
