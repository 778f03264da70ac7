//! Building dom0 from the first multiboot2 module: the one guest image
//! hv-core itself parses (every other domain is built by dom0).
//!
//! The image is checked (`domain_builder::image`: ELF, Xen notes, our ABI note) and
//! laid out exactly as Xen lays out a PV64 dom0 (`domain_builder::start_of_day`):
//! kernel, initrd (the second multiboot2 module, if any), p2m list,
//! start_info, bootstrap page tables (mapped read-only), stack, all mapped
//! 1:1 from guest frame 0. What goes into those frames is written by
//! `domain_builder::start_of_day::build`, the code dom0's own domain builder uses for
//! every other domain. The tables are then validated and pinned through
//! the frame table like any guest's, so dom0 starts under the same rules
//! it will live by.

use abi::xen::{FLAT_KERNEL_CS64, FLAT_KERNEL_SS64};
use domain_builder::image::{AbiNote, PvImage};
use domain_builder::start_of_day::build::{self as fill, DomainMemory, StartInfoSpec};
use domain_builder::start_of_day::{P2mPlacement, StartOfDay};
use hv_core::frame_table::{Budget, FrameType, Mfn, Owner};

use crate::arch::TrapFrame;
use crate::arch::pv::{self, MachinePageTables};
use crate::arch::shared;
use crate::domain;
use crate::{memory, vtime};

const PAGE: u64 = 4096;
/// Frames of p2m list the builder can track (each covers 2 GiB of dom0).
const MAX_P2M_FRAMES: usize = 512;

/// Why dom0 could not be built; each prints as one line.
#[derive(Debug)]
pub enum BuildError {
    Image(domain_builder::image::ImageError),
    Plan(domain_builder::start_of_day::PlanError),
    OutOfMemory { needed: u64, free: u64 },
    TooBig { pages: u64 },
    SeparateP2m,
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
            Self::SeparateP2m => f.write_str("images asking for INIT_P2M are not supported"),
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
    /// Where entry `pfn` lives: its p2m frame and the offset in it.
    fn entry(&self, pfn: u64) -> (Mfn, usize) {
        (self.frames[(pfn / 512) as usize], (pfn % 512) as usize * 8)
    }

    fn get(&self, pfn: u64) -> Mfn {
        let (frame, offset) = self.entry(pfn);
        let mut entry = [0; 8];
        shared::read_domain_frame(frame, offset, &mut entry).expect("the p2m frames are dom0's");
        Mfn::from_le_bytes(entry)
    }

    fn set(&self, pfn: u64, mfn: Mfn) {
        let (frame, offset) = self.entry(pfn);
        shared::write_domain_frame(frame, offset, &mfn.to_le_bytes())
            .expect("the p2m frames are dom0's");
    }
}

/// dom0's frames through the direct map, for the shared builder.
impl DomainMemory for &P2m {
    fn mfn(&self, pfn: u64) -> u64 {
        self.get(pfn)
    }

    fn write(&mut self, pfn: u64, offset: usize, bytes: &[u8]) {
        // Before pinning, none of dom0's frames is a page table yet.
        shared::write_domain_frame(self.get(pfn), offset, bytes)
            .expect("dom0's frames are its own and not yet page tables");
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
/// the frame its first vCPU starts from. `initrd` (empty for none) is
/// mapped after the kernel and named by `start_info.mod_start`/`mod_len`,
/// as Xen hands dom0 its second multiboot2 module.
pub fn build_with_initrd(
    image: &[u8],
    cmdline: &str,
    initrd: &[u8],
    mem_bytes: u64,
    max_vcpus: usize,
) -> Result<TrapFrame, BuildError> {
    let image = PvImage::parse(image).map_err(BuildError::Image)?;
    image
        .check_abi(abi::HV_ABI_VERSION, AbiNote::Required)
        .map_err(BuildError::Image)?;
    image.check_dom0().map_err(BuildError::Image)?;

    let nr_pages = mem_bytes / PAGE;
    if nr_pages > MAX_P2M_FRAMES as u64 * 512 {
        return Err(BuildError::TooBig { pages: nr_pages });
    }
    let plan = StartOfDay::plan(&image, nr_pages, initrd.len() as u64).map_err(BuildError::Plan)?;
    if matches!(plan.p2m, P2mPlacement::Separate(_)) {
        return Err(BuildError::SeparateP2m);
    }
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

    let shared_info = crate::lifecycle::alloc_shared_info(0).expect("counted above");

    // Kernel segments (the bss is already zero: frames come zeroed), the
    // initrd, the hypercall page, start_info and the page tables.
    let mut mem = &p2m;
    fill::load_kernel(&mut mem, &plan, &image);
    fill::load_module(&mut mem, &plan, initrd);
    fill::fill_hypercall_page(&mut mem, &plan);
    let info = fill::start_info(
        &plan,
        &StartInfoSpec {
            shared_info: shared_info.mfn() << 12,
            cmdline,
            module_len: initrd.len() as u64,
            ..Default::default()
        },
    );
    fill::write_start_info(&mut mem, &plan, &info);
    let l4 = fill::write_page_tables(&mut mem, &plan);

    // Validate and pin the tree (a guest may unpin it once it has its own),
    // and hold it as the kernel root.
    let mut mem = MachinePageTables;
    let root = memory::with_frame_table(|ft| {
        ft.pin(&mut mem, l4, 0, FrameType::L4)?;
        pv::Root::take(ft, l4, 0, &mut Budget::unlimited())
    })
    .map_err(BuildError::Pin)?;

    domain::create(0, true, max_vcpus, shared_info).expect("dom0 is the first domain");
    domain::with(0, |d| {
        // vCPU 0 starts; dom0 brings up the others (`VCPUOP_initialise`,
        // `VCPUOP_up`), as on Xen.
        d.vcpus[0].initialised = true;
        d.nr_pages = nr_pages;
        d.max_pages = nr_pages;
        d.vcpus[0].online = true;
        // Held by the boot CPU, which enters it: no idle CPU may take it
        // (its registers are the boot CPU's frame, not yet `frame`).
        d.vcpus[0].on_cpu = Some(crate::arch::percpu::current().index());
        d.vcpus[0].kernel_root = Some(root);
        d.vcpus[0].periodic = Some((
            vtime::DEFAULT_PERIOD_NS,
            vtime::now_ns() + vtime::DEFAULT_PERIOD_NS,
        ));
        vtime::publish(d);
    });

    log::info!(
        "dom0: {} MiB, entry {:#x}, start_info {:#x}, page tables {:#x} ({} frames), stack top {:#x}",
        nr_pages >> 8,
        plan.entry,
        plan.start_info.start,
        plan.page_tables.start,
        plan.nr_pt_frames,
        plan.stack.end
    );
    domain::with(0, |d| d.vcpus[0].load_root());
    let regs = plan.entry_registers();
    Ok(initial_frame(regs.rip, regs.rsp, regs.rsi))
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
