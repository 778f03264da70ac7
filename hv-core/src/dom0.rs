//! Building dom0 from the first multiboot2 module: the one guest image
//! hv-core itself parses (every other domain is built by dom0).
//!
//! The image is checked (`abi::image`: ELF, Xen notes, our ABI note) and
//! laid out exactly as Xen lays out a PV64 dom0 (`abi::start_of_day`):
//! kernel, p2m list, start_info, bootstrap page tables (mapped read-only),
//! stack, all mapped 1:1 from guest frame 0. The tables are then validated
//! and pinned through the frame table like any guest's, so dom0 starts
//! under the same rules it will live by.

use abi::image::{AbiNote, PvImage};
use abi::start_of_day::StartOfDay;
use abi::xen::{
    FLAT_KERNEL_CS64, FLAT_KERNEL_SS64, SIF_INITDOMAIN, SIF_PRIVILEGED, START_INFO_MAGIC, StartInfo,
};
use hv_core::frame_table::{FrameType, Mfn, Owner, PageTableMemory};
use zerocopy::{FromZeros, IntoBytes};

use crate::arch::TrapFrame;
use crate::arch::pv::{self, MachinePageTables};
use crate::arch::shared::SharedPage;
use crate::domain;
use crate::guest::UPCALL_MASK;
use crate::{memory, vtime};

const PAGE: u64 = 4096;
const PRESENT: u64 = 1;
const WRITABLE: u64 = 2;
const USER: u64 = 4;
/// Frames of p2m list the builder can track (each covers 2 GiB of dom0).
const MAX_P2M_FRAMES: usize = 512;

/// Why dom0 could not be built; each prints as one line.
#[derive(Debug)]
pub enum BuildError {
    Image(abi::image::ImageError),
    Plan(abi::start_of_day::PlanError),
    OutOfMemory { needed: u64, free: u64 },
    TooBig { pages: u64 },
    Pin(hv_core::frame_table::PageError),
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Image(e) => write!(f, "{e}"),
            Self::Plan(e) => write!(f, "{e}"),
            Self::OutOfMemory { needed, free } => write!(
                f,
                "dom0 needs {needed} pages but only {free} are free (lower dom0_mem=)"
            ),
            Self::TooBig { pages } => write!(
                f,
                "dom0_mem of {pages} pages is more than this builder tracks ({} pages)",
                MAX_P2M_FRAMES as u64 * 512
            ),
            Self::Pin(e) => write!(f, "the bootstrap page tables do not validate: {e}"),
        }
    }
}

/// The guest's pseudo-physical to machine map while it is being built:
/// the p2m list's own frames, which hold every other entry.
struct P2m {
    frames: [Mfn; MAX_P2M_FRAMES],
}

impl P2m {
    fn get(&self, pfn: u64) -> Mfn {
        let frame = self.frames[(pfn / 512) as usize];
        MachinePageTables.read_entry(frame, (pfn % 512) as usize)
    }

    fn set(&self, pfn: u64, mfn: Mfn) {
        let frame = self.frames[(pfn / 512) as usize];
        MachinePageTables.write_entry(frame, (pfn % 512) as usize, mfn);
    }
}

fn alloc_for_dom0() -> Mfn {
    let phys = memory::alloc_frame().expect("free frames were counted before building");
    let mfn = phys >> 12;
    memory::with_frame_table(|ft| ft.assign(mfn, Owner::Domain(0)))
        .expect("a fresh frame has no references");
    mfn
}

/// Builds dom0 from `image` (with `cmdline`, from the module) and returns
/// the frame its first vCPU starts from.
pub fn build(image: &[u8], cmdline: &str, mem_bytes: u64) -> Result<TrapFrame, BuildError> {
    let image = PvImage::parse(image).map_err(BuildError::Image)?;
    image
        .check_abi(abi::HV_ABI_VERSION, AbiNote::Required)
        .map_err(BuildError::Image)?;
    image.check_dom0().map_err(BuildError::Image)?;

    let nr_pages = mem_bytes / PAGE;
    if nr_pages > MAX_P2M_FRAMES as u64 * 512 {
        return Err(BuildError::TooBig { pages: nr_pages });
    }
    let plan = StartOfDay::plan(&image, nr_pages, 0).map_err(BuildError::Plan)?;
    let free = memory::free_frames();
    if nr_pages + 1 > free {
        return Err(BuildError::OutOfMemory {
            needed: nr_pages + 1,
            free,
        });
    }

    // The p2m list's frames first, so every later frame can be recorded.
    let p2m_region = plan.p2m.region();
    let mut p2m = P2m {
        frames: [0; MAX_P2M_FRAMES],
    };
    let p2m_first = p2m_region.pfn;
    let p2m_pages = p2m_region.pages();
    for i in 0..p2m_pages {
        p2m.frames[i as usize] = alloc_for_dom0();
    }
    for pfn in 0..nr_pages {
        let mfn = if (p2m_first..p2m_first + p2m_pages).contains(&pfn) {
            p2m.frames[(pfn - p2m_first) as usize]
        } else {
            alloc_for_dom0()
        };
        p2m.set(pfn, mfn);
        memory::set_m2p(mfn, pfn);
    }
    let frame_of = |va: u64| p2m.get(plan.pfn_of(va).expect("inside the start-of-day area"));

    // Kernel segments (the bss is already zero: frames come zeroed).
    for segment in image.segments() {
        copy_into_guest(&frame_of, segment.virt_addr, segment.data);
    }

    if let Some(page) = plan.hypercall_page {
        fill_hypercall_page(frame_of(page));
    }

    let l4 = build_page_tables(&plan, &p2m);

    let shared_info = memory::alloc_frame().expect("counted above") >> 12;
    memory::with_frame_table(|ft| ft.assign(shared_info, Owner::SharedWith(0)))
        .expect("a fresh frame has no references");
    // vCPU 0's events start masked, as on Xen.
    SharedPage::new(shared_info)
        .u8(UPCALL_MASK)
        .store(1, core::sync::atomic::Ordering::SeqCst);

    let mut info = StartInfo::new_zeroed();
    info.magic[..START_INFO_MAGIC.len()].copy_from_slice(START_INFO_MAGIC);
    info.nr_pages = nr_pages;
    info.shared_info = shared_info << 12;
    info.flags = SIF_PRIVILEGED | SIF_INITDOMAIN;
    info.pt_base = plan.page_tables.start;
    info.nr_pt_frames = plan.nr_pt_frames;
    info.mfn_list = p2m_region.start;
    let n = cmdline.len().min(info.cmd_line.len() - 1);
    info.cmd_line[..n].copy_from_slice(&cmdline.as_bytes()[..n]);
    copy_into_guest(&frame_of, plan.start_info.start, info.as_bytes());

    // Validate and pin the tree (a guest may unpin it once it has its own),
    // and hold it as the kernel root.
    let mut mem = MachinePageTables;
    memory::with_frame_table(|ft| {
        ft.pin(&mut mem, l4, 0, FrameType::L4)?;
        ft.get_page_type(&mut mem, l4, 0, FrameType::L4)
    })
    .map_err(BuildError::Pin)?;

    domain::create(0, true, shared_info).expect("dom0 is the first domain");
    domain::with(0, |d| {
        d.nr_pages = nr_pages;
        d.vcpus[0].kernel_root = l4;
        d.vcpus[0].periodic = Some((
            vtime::DEFAULT_PERIOD_NS,
            vtime::now_ns() + vtime::DEFAULT_PERIOD_NS,
        ));
        vtime::publish(d);
    });
    domain::set_current(0);

    log::info!(
        "dom0: {} MiB, entry {:#x}, start_info {:#x}, page tables {:#x} ({} frames), stack top {:#x}",
        nr_pages >> 8,
        plan.entry,
        plan.start_info.start,
        plan.page_tables.start,
        plan.nr_pt_frames,
        plan.stack.end
    );
    pv::load_page_table_root(l4);
    Ok(initial_frame(
        plan.entry,
        plan.stack.end,
        plan.start_info.start,
    ))
}

/// Copies `bytes` to guest virtual address `va`, page by page.
fn copy_into_guest(frame_of: &impl Fn(u64) -> Mfn, va: u64, bytes: &[u8]) {
    let mut done = 0usize;
    while done < bytes.len() {
        let at = va + done as u64;
        let offset = (at % PAGE) as usize;
        let n = (PAGE as usize - offset).min(bytes.len() - done);
        SharedPage::new(frame_of(at)).write_bytes(offset, &bytes[done..done + n]);
        done += n;
    }
}

/// Xen's PV64 hypercall page: 32 bytes per hypercall,
/// `push %rcx; push %r11; mov $nr, %eax; syscall; pop %r11; pop %rcx; ret`,
/// and for `iret` (jumped to, never called) `push %rcx; push %r11;
/// push %rax; mov $23, %eax; syscall`.
fn fill_hypercall_page(mfn: Mfn) {
    let page = SharedPage::new(mfn);
    for nr in 0..128u32 {
        let mut stub = [0xccu8; 32];
        if nr == abi::Hypercall::Iret as u32 {
            stub[..4].copy_from_slice(&[0x51, 0x41, 0x53, 0x50]);
            stub[4] = 0xb8;
            stub[5..9].copy_from_slice(&nr.to_le_bytes());
            stub[9..11].copy_from_slice(&[0x0f, 0x05]);
        } else {
            stub[..3].copy_from_slice(&[0x51, 0x41, 0x53]);
            stub[3] = 0xb8;
            stub[4..8].copy_from_slice(&nr.to_le_bytes());
            stub[8..14].copy_from_slice(&[0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3]);
        }
        page.write_bytes(nr as usize * 32, &stub);
    }
}

/// Fills the bootstrap page tables the plan placed and returns the L4's
/// frame. Every page of the area is mapped writable except the tables
/// themselves, which are read-only (as Xen maps them).
fn build_page_tables(plan: &StartOfDay, p2m: &P2m) -> Mfn {
    let mut mem = MachinePageTables;
    let link = PRESENT | WRITABLE | USER;
    let l4 = p2m.get(plan.page_tables.pfn);
    let index = |va: u64, level: u32| ((va >> (12 + 9 * (level - 1))) & 511) as usize;
    let walk = |mem: &MachinePageTables, va: u64, down_to: u32| -> Mfn {
        let mut table = l4;
        for level in (down_to + 1..=4).rev() {
            table = hv_core::frame_table::entry_mfn(mem.read_entry(table, index(va, level)));
        }
        table
    };
    // Link each level's tables into the level above, top down.
    for level in [3u8, 2, 1] {
        for frame in plan.page_table_frames().filter(|f| f.level == level) {
            let parent = walk(&mem, frame.va, level as u32 + 1);
            let mfn = p2m.get(frame.pfn);
            mem.write_entry(parent, index(frame.va, level as u32 + 1), mfn << 12 | link);
        }
    }
    let tables = plan.page_tables.pfn..plan.page_tables.pfn + plan.nr_pt_frames;
    for pfn in 0..plan.mapped_pages() {
        let va = plan.v_start + pfn * PAGE;
        let l1 = walk(&mem, va, 1);
        let flags = if tables.contains(&pfn) {
            PRESENT | USER
        } else {
            PRESENT | WRITABLE | USER
        };
        mem.write_entry(l1, index(va, 1), p2m.get(pfn) << 12 | flags);
    }
    l4
}

fn initial_frame(entry: u64, stack_top: u64, start_info: u64) -> TrapFrame {
    TrapFrame {
        rsi: start_info,
        rip: entry,
        cs: FLAT_KERNEL_CS64 as u64,
        rflags: 0x202,
        rsp: stack_top,
        ss: FLAT_KERNEL_SS64 as u64,
        ..TrapFrame::default()
    }
}
