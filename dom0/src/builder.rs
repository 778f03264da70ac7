//! The domain builder: a PV guest image in, a running domain out, in the
//! order Xen's libxc builds one.
//!
//! 1. Parse the image and check its notes and ABI version, and lay out its
//!    start of day (`domain_builder::start_of_day`, role domU): nothing is created for
//!    an image that would be refused.
//! 2. `createdomain` (it starts paused) with the vCPU count, `max_vcpus`,
//!    `max_mem`.
//! 3. `populate_physmap` for every guest frame; the hypervisor hands back
//!    the machine frames, which become the p2m list.
//! 4. Map the frames the start of day writes (foreign `mmu_update`), zero
//!    them (Xen's frames need not come zeroed), and fill them with the same
//!    code hv-core builds dom0 with (`domain_builder::start_of_day::build`): kernel,
//!    p2m list, hypercall page, `start_info` (console page and port, no
//!    privileges), page tables.
//! 5. Unmap all of it (a writable mapping would stop the tables from
//!    validating), pin the L4 for the domain (foreign `mmuext_op`) and set
//!    vCPU 0's context.
//!
//! The console port is allocated in the new domain for dom0 before
//! `start_info` is written, and the console page stays mapped in dom0; the
//! caller binds its end of the port and then unpauses the domain, so no
//! output is written before the back-end listens. Any failure destroys the
//! half-built domain.

use alloc::vec::Vec;
use core::fmt;

use abi::domctl::{CreateDomain, VGCF_IN_KERNEL, VGCF_ONLINE, VcpuGuestContext};
use abi::event_channel::Port;
use abi::xen::{DomId, FLAT_KERNEL_CS64, FLAT_KERNEL_DS64, FLAT_KERNEL_SS64};
use domain_builder::image::{AbiNote, ImageError, PvImage};
use domain_builder::start_of_day::build::{self as fill, DomainMemory, StartInfoSpec};
use domain_builder::start_of_day::{P2mPlacement, PlanError, Role, StartOfDay};
use pv_guest_sdk::Error;

use crate::foreign::{ForeignError, ForeignPage, Window};
use crate::privcmd;

/// What to build.
pub struct Spec<'a> {
    pub image: &'a [u8],
    pub memory_mib: u64,
    pub cmdline: &'a str,
    /// vCPUs the domain gets (vCPU 0 is given the start-of-day context).
    pub vcpus: u32,
}

/// A domain that is built, still paused.
pub struct Built {
    pub id: DomId,
    /// The console ring page, mapped in dom0.
    pub console: ForeignPage,
    /// The domain's console port (in `start_info`); dom0 binds to it.
    pub console_port: Port,
}

/// Why a domain could not be built; each prints as one line.
#[derive(Debug)]
pub enum BuildError {
    Image(ImageError),
    Plan(PlanError),
    /// An image asking for `INIT_P2M` (a separately mapped p2m list).
    SeparateP2m,
    /// A hypercall of the given step failed.
    Refused {
        step: &'static str,
        error: Error,
    },
    /// The hypervisor gave fewer frames than asked for.
    OutOfMemory {
        got: u64,
        wanted: u64,
    },
    Map(ForeignError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Image(e) => write!(f, "{e}"),
            Self::Plan(e) => write!(f, "{e}"),
            Self::SeparateP2m => f.write_str("images asking for INIT_P2M are not supported"),
            Self::Refused { step, error } => write!(f, "{step} failed: {error}"),
            Self::OutOfMemory { got, wanted } => write!(
                f,
                "the hypervisor gave {got} of {wanted} pages (out of memory)"
            ),
            Self::Map(e) => write!(f, "{e}"),
        }
    }
}

fn refused(step: &'static str) -> impl FnOnce(Error) -> BuildError {
    move |error| BuildError::Refused { step, error }
}

/// Parses and checks an image and plans its start of day, creating
/// nothing: what `create` refuses before it touches the hypervisor.
pub fn plan<'a>(spec: &Spec<'a>) -> Result<(PvImage<'a>, StartOfDay), BuildError> {
    let image = PvImage::parse(spec.image).map_err(BuildError::Image)?;
    image
        .check_abi(abi::HV_ABI_VERSION, AbiNote::Required)
        .map_err(BuildError::Image)?;
    let nr_pages = spec.memory_mib * 256;
    let plan = StartOfDay::plan_for(Role::DomU, &image, nr_pages, 0).map_err(BuildError::Plan)?;
    if matches!(plan.p2m, P2mPlacement::Separate(_)) {
        return Err(BuildError::SeparateP2m);
    }
    Ok((image, plan))
}

/// Builds a domain and leaves it paused.
pub fn build(window: &mut Window, spec: &Spec<'_>) -> Result<Built, BuildError> {
    let (image, plan) = plan(spec)?;
    let id = create_domain(spec.vcpus)?;
    match fill_domain(window, id, &image, &plan, spec) {
        Ok(built) => Ok(built),
        Err(e) => {
            let _ = privcmd::destroy_domain(id);
            Err(e)
        }
    }
}

fn create_domain(vcpus: u32) -> Result<DomId, BuildError> {
    let create = CreateDomain {
        max_vcpus: vcpus,
        max_evtchn_port: 1023,
        max_grant_frames: 4,
        max_maptrack_frames: 128,
        // XEN_DOMCTL_GRANT_version(1): grant tables v1 at most (Xen 4.17
        // refuses 0).
        grant_opts: 1,
        ..Default::default()
    };
    privcmd::create_domain(&create).map_err(refused("createdomain"))
}

/// Everything after `createdomain`; the caller destroys the domain if this
/// fails.
fn fill_domain(
    window: &mut Window,
    id: DomId,
    image: &PvImage<'_>,
    plan: &StartOfDay,
    spec: &Spec<'_>,
) -> Result<Built, BuildError> {
    privcmd::set_max_vcpus(id, spec.vcpus).map_err(refused("max_vcpus"))?;
    privcmd::set_max_mem(id, spec.memory_mib * 1024).map_err(refused("max_mem"))?;

    // Every guest frame, in order; populate_physmap writes the machine
    // frames back in place.
    let mut p2m: Vec<u64> = (0..plan.nr_pages).collect();
    let mut done = 0;
    for chunk in p2m.chunks_mut(512) {
        let n = privcmd::populate_physmap(id, chunk).map_err(refused("populate_physmap"))?;
        done += n as u64;
        if n < chunk.len() {
            return Err(BuildError::OutOfMemory {
                got: done,
                wanted: plan.nr_pages,
            });
        }
    }

    let info = privcmd::domain_info(id).map_err(refused("getdomaininfo"))?;
    let console_pfn = plan.console.expect("a domU plan has a console page").pfn;
    let console_mfn = p2m[console_pfn as usize];
    let console_port = privcmd::alloc_unbound_in(id, 0).map_err(refused("alloc_unbound"))?;

    let mut memory = ForeignMemory {
        window,
        owner: id,
        p2m: &p2m,
        mapped: Vec::new(),
        error: None,
    };
    clear_start_of_day(&mut memory, plan);
    fill::load_kernel(&mut memory, plan, image);
    fill::write_p2m_list(&mut memory, plan);
    fill::fill_hypercall_page(&mut memory, plan);
    let start_info = fill::start_info(
        plan,
        &StartInfoSpec {
            shared_info: info.shared_info_frame << 12,
            cmdline: spec.cmdline,
            module_len: 0,
            console: Some((console_mfn, console_port)),
            store: None,
        },
    );
    fill::write_start_info(&mut memory, plan, &start_info);
    let l4 = fill::write_page_tables(&mut memory, plan);
    memory.finish()?;

    privcmd::pin_l4(id, l4).map_err(refused("pinning the L4"))?;

    let mut context = VcpuGuestContext::default();
    let regs = plan.entry_registers();
    context.flags = VGCF_IN_KERNEL | VGCF_ONLINE;
    context.user_regs.rip = regs.rip;
    context.user_regs.rsp = regs.rsp;
    context.user_regs.rsi = regs.rsi;
    context.user_regs.rflags = 0x202;
    context.user_regs.cs = FLAT_KERNEL_CS64;
    context.user_regs.ss = FLAT_KERNEL_SS64;
    context.user_regs.ds = FLAT_KERNEL_DS64;
    context.user_regs.es = FLAT_KERNEL_DS64;
    context.user_regs.fs = FLAT_KERNEL_DS64;
    context.user_regs.gs = FLAT_KERNEL_DS64;
    context.kernel_ss = u64::from(FLAT_KERNEL_SS64);
    context.kernel_sp = regs.rsp;
    context.ctrlreg[3] = l4 << 12;
    privcmd::set_vcpu_context(id, 0, &context).map_err(refused("setvcpucontext"))?;

    let console = window.map(id, console_mfn).map_err(BuildError::Map)?;
    Ok(Built {
        id,
        console,
        console_port,
    })
}

/// Zeroes every frame of the start-of-day structures (the image, the p2m
/// list, `start_info`, the store and console pages, the page tables, the
/// stack), the way libxc zeroes each segment it allocates and clears the
/// console and store pages. The shared filler writes only the bytes it
/// means and counts on zeroed frames, but `populate_physmap` does not
/// promise any: on Xen the first domain built after boot gets frames that
/// still hold whatever the boot loader put there (freed boot modules,
/// dom0's own ELF among them). A console page left like that has
/// impossible ring indices, so the guest's front-end gives up on the ring
/// and its output is lost.
fn clear_start_of_day(memory: &mut ForeignMemory<'_, '_>, plan: &StartOfDay) {
    const ZERO: [u8; 4096] = [0; 4096];
    // The stack is the last structure; the frames after it are the guest's.
    let end = plan.stack.pfn + plan.stack.pages();
    for pfn in 0..end {
        memory.write(pfn, 0, &ZERO);
    }
}

/// The new domain's frames as the shared builder writes them: each frame
/// is mapped into the window on first use and kept until [`finish`]
/// (or until the window fills, when everything mapped so far goes).
///
/// [`finish`]: ForeignMemory::finish
struct ForeignMemory<'w, 'p> {
    window: &'w mut Window,
    owner: DomId,
    p2m: &'p [u64],
    mapped: Vec<(u64, ForeignPage)>,
    /// The first mapping that failed; later writes are skipped.
    error: Option<ForeignError>,
}

impl ForeignMemory<'_, '_> {
    fn page(&mut self, pfn: u64) -> Option<&ForeignPage> {
        if let Some(i) = self.mapped.iter().rposition(|(p, _)| *p == pfn) {
            return Some(&self.mapped[i].1);
        }
        let mfn = self.p2m[pfn as usize];
        let page = match self.window.map(self.owner, mfn) {
            Err(ForeignError::WindowFull) if !self.mapped.is_empty() => {
                self.window
                    .unmap(self.mapped.drain(..).map(|(_, page)| page));
                self.window.map(self.owner, mfn)
            }
            other => other,
        };
        match page {
            Ok(page) => {
                self.mapped.push((pfn, page));
                self.mapped.last().map(|(_, page)| page)
            }
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }

    /// Unmaps everything; the first failure, if any.
    fn finish(mut self) -> Result<(), BuildError> {
        self.window
            .unmap(self.mapped.drain(..).map(|(_, page)| page));
        match self.error {
            Some(e) => Err(BuildError::Map(e)),
            None => Ok(()),
        }
    }
}

impl DomainMemory for ForeignMemory<'_, '_> {
    fn mfn(&self, pfn: u64) -> u64 {
        self.p2m[pfn as usize]
    }

    fn write(&mut self, pfn: u64, offset: usize, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if let Some(page) = self.page(pfn) {
            page.page().write_bytes(offset, bytes);
        }
    }
}
