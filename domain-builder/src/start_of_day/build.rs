//! Filling a planned start of day: the half of building a PV domain that
//! does not depend on who builds it.
//!
//! hv-core builds dom0 through its direct map; dom0's toolstack builds every
//! other domain through frames it maps from that domain with foreign
//! `mmu_update`. Both hand these functions a [`DomainMemory`] and get the
//! same bytes in the same frames: the kernel's segments, the p2m list,
//! `start_info`, the hypercall page and the bootstrap page tables.
//!
//! Every function writes whole frames or byte runs inside one frame, never
//! reads guest memory back, and assumes the frames came zeroed: the bss and
//! all padding (the console and store pages entirely) are left as they
//! are. hv-core zeroes every frame it allocates; Xen's `populate_physmap`
//! promises nothing of the kind, so dom0's builder clears the frames first.

use zerocopy::{FromZeros, IntoBytes};

use super::{P2mPlacement, StartOfDay, TableFrame};
use crate::image::{PAGE_SIZE, PvImage};
use abi::Hypercall;
use abi::hypercall::STUB_SIZE;
use abi::pte::{ENTRIES, PRESENT, USER, WRITABLE};
use abi::xen::{
    MAX_GUEST_CMDLINE, SIF_INITDOMAIN, SIF_MOD_START_PFN, SIF_PRIVILEGED, START_INFO_MAGIC,
    StartInfo,
};

/// A domain's frames as a builder reaches them.
pub trait DomainMemory {
    /// The machine frame behind guest frame `pfn` (the builder's p2m).
    fn mfn(&self, pfn: u64) -> u64;
    /// Writes `bytes` at `offset` in guest frame `pfn`. Callers never cross
    /// a page boundary: `offset + bytes.len() <= 4096`.
    fn write(&mut self, pfn: u64, offset: usize, bytes: &[u8]);
}

/// What links a table into the level above it: permissions are decided at
/// the leaves.
pub const TABLE_LINK: u64 = PRESENT | WRITABLE | USER;
/// An ordinary page of the area.
pub const LEAF_RW: u64 = PRESENT | WRITABLE | USER;
/// A bootstrap page table as a leaf: read-only, as Xen maps them (a guest
/// never holds a writable mapping of one of its page tables).
pub const LEAF_RO: u64 = PRESENT | USER;

/// Copies `bytes` to guest virtual address `va` of the start-of-day area,
/// page by page.
///
/// # Panics
/// If any byte falls outside the area: the plan places everything the
/// other functions write inside it, so that is a builder bug.
pub fn copy_to(mem: &mut impl DomainMemory, plan: &StartOfDay, va: u64, bytes: &[u8]) {
    let mut done = 0usize;
    while done < bytes.len() {
        let at = va + done as u64;
        let pfn = plan
            .pfn_of(at)
            .unwrap_or_else(|| panic!("{at:#x} is outside the start-of-day area"));
        let offset = (at % PAGE_SIZE) as usize;
        let n = (PAGE_SIZE as usize - offset).min(bytes.len() - done);
        mem.write(pfn, offset, &bytes[done..done + n]);
        done += n;
    }
}

/// Copies the image's loadable segments to their addresses. Their bss
/// parts are left alone: the frames are zero already.
pub fn load_kernel(mem: &mut impl DomainMemory, plan: &StartOfDay, image: &PvImage<'_>) {
    for segment in image.segments() {
        copy_to(mem, plan, segment.virt_addr, segment.data);
    }
}

/// Copies the initial module (initrd) to where the plan mapped it; does
/// nothing for a plan without a mapped module.
pub fn load_module(mem: &mut impl DomainMemory, plan: &StartOfDay, module: &[u8]) {
    if let super::ModulePlacement::Mapped(region) = plan.module {
        let n = module.len().min(region.len() as usize);
        copy_to(mem, plan, region.start, &module[..n]);
    }
}

/// Xen's PV64 hypercall page: a 32-byte stub per hypercall,
/// `push %rcx; push %r11; mov $nr, %eax; syscall; pop %r11; pop %rcx; ret`,
/// and for `iret` (jumped to, never called) `push %rcx; push %r11;
/// push %rax; mov $23, %eax; syscall`. The rest of each stub is `int3`.
pub fn hypercall_page() -> [u8; PAGE_SIZE as usize] {
    let mut page = [0xccu8; PAGE_SIZE as usize];
    for (nr, stub) in page.chunks_exact_mut(STUB_SIZE).enumerate() {
        let nr = nr as u32;
        if nr == Hypercall::Iret as u32 {
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
    }
    page
}

/// Fills the page the image named with `XEN_ELFNOTE_HYPERCALL_PAGE`, if any.
pub fn fill_hypercall_page(mem: &mut impl DomainMemory, plan: &StartOfDay) {
    if let Some(va) = plan.hypercall_page {
        copy_to(mem, plan, va, &hypercall_page());
    }
}

/// Writes the p2m list (`start_info.mfn_list`): the machine frame of every
/// guest frame, `nr_pages` entries, from `mem.mfn`.
///
/// # Panics
/// For an `INIT_P2M` placement, which needs page tables of its own that
/// this builder does not make; builders refuse such images first.
pub fn write_p2m_list(mem: &mut impl DomainMemory, plan: &StartOfDay) {
    let P2mPlacement::Mapped(region) = plan.p2m else {
        panic!("a separately mapped p2m list is not supported");
    };
    let mut entries = [0u64; ENTRIES];
    let mut pfn = 0;
    while pfn < plan.nr_pages {
        let n = (plan.nr_pages - pfn).min(ENTRIES as u64) as usize;
        for (i, entry) in entries[..n].iter_mut().enumerate() {
            *entry = mem.mfn(pfn + i as u64);
        }
        copy_to(mem, plan, region.start + pfn * 8, entries[..n].as_bytes());
        pfn += n as u64;
    }
}

/// How much one table of each level maps: 4 KiB pages for an L1, up to
/// 512 GiB for an L3 (`level` 1-3).
fn span_shift(level: u8) -> u32 {
    12 + 9 * u32::from(level)
}

/// The contents of one bootstrap page table: the tables of the level below
/// that fall inside it, or for an L1 the area's pages (tables read-only).
pub fn page_table_contents(
    plan: &StartOfDay,
    table: TableFrame,
    mfn: impl Fn(u64) -> u64,
) -> [u64; ENTRIES] {
    let mut entries = [0u64; ENTRIES];
    let index = |va: u64, level: u8| ((va >> span_shift(level - 1)) & 511) as usize;
    if table.level == 1 {
        let first = table.va.max(plan.v_start);
        let last = table.va.saturating_add(1 << span_shift(1)).min(plan.v_end);
        let tables = plan.page_tables.pfn..plan.page_tables.pfn + plan.nr_pt_frames;
        for va in (first..last).step_by(PAGE_SIZE as usize) {
            let pfn = (va - plan.v_start) / PAGE_SIZE;
            let flags = if tables.contains(&pfn) {
                LEAF_RO
            } else {
                LEAF_RW
            };
            entries[index(va, 1)] = mfn(pfn) << 12 | flags;
        }
        return entries;
    }
    let below = table.level - 1;
    for child in plan.page_table_frames().filter(|f| f.level == below) {
        // The L4 holds every L3; lower tables hold what lies in their span.
        let inside =
            table.level == 4 || child.va & !((1u64 << span_shift(table.level)) - 1) == table.va;
        if inside {
            entries[index(child.va, table.level)] = mfn(child.pfn) << 12 | TABLE_LINK;
        }
    }
    entries
}

/// Writes every bootstrap page table the plan placed and returns the L4's
/// machine frame (`ctrlreg[3] >> 12`). The area is mapped from guest frame
/// 0 upwards, every page writable except the tables themselves.
pub fn write_page_tables(mem: &mut impl DomainMemory, plan: &StartOfDay) -> u64 {
    for table in plan.page_table_frames() {
        let entries = page_table_contents(plan, table, |pfn| mem.mfn(pfn));
        mem.write(table.pfn, 0, entries.as_bytes());
    }
    mem.mfn(plan.page_tables.pfn)
}

/// What a builder knows about a domain beyond its plan.
#[derive(Clone, Copy, Debug, Default)]
pub struct StartInfoSpec<'a> {
    /// Machine address of the domain's shared-info page.
    pub shared_info: u64,
    /// The kernel's command line (truncated to 1023 bytes).
    pub cmdline: &'a str,
    /// The module's length in bytes (0: none); the plan says where it is.
    pub module_len: u64,
    /// DomU: the console ring page's machine frame and event channel.
    pub console: Option<(u64, u32)>,
    /// DomU: the store page's machine frame and event channel.
    pub store: Option<(u64, u32)>,
}

/// The `start_info` page of a domain laid out by `plan`. dom0's flags are
/// `SIF_PRIVILEGED | SIF_INITDOMAIN`; any other domain gets neither.
pub fn start_info(plan: &StartOfDay, spec: &StartInfoSpec<'_>) -> StartInfo {
    let mut info = StartInfo::new_zeroed();
    info.magic[..START_INFO_MAGIC.len()].copy_from_slice(START_INFO_MAGIC);
    info.nr_pages = plan.nr_pages;
    info.shared_info = spec.shared_info;
    info.flags = match plan.role {
        super::Role::Dom0 => SIF_PRIVILEGED | SIF_INITDOMAIN,
        super::Role::DomU => 0,
    };
    if let Some((mfn, evtchn)) = spec.store {
        info.store_mfn = mfn;
        info.store_evtchn = evtchn;
    }
    if let Some((mfn, evtchn)) = spec.console {
        info.set_console_domu(mfn, evtchn);
    }
    info.pt_base = plan.page_tables.start;
    info.nr_pt_frames = plan.nr_pt_frames;
    info.mfn_list = plan.p2m.region().start;
    if spec.module_len != 0
        && let Some(start) = plan.mod_start()
    {
        info.mod_start = start;
        info.mod_len = spec.module_len;
        if matches!(plan.module, super::ModulePlacement::Unmapped { .. }) {
            info.flags |= SIF_MOD_START_PFN;
        }
    }
    let n = spec.cmdline.len().min(MAX_GUEST_CMDLINE - 1);
    info.cmd_line[..n].copy_from_slice(&spec.cmdline.as_bytes()[..n]);
    info
}

/// Writes `info` to the plan's `start_info` page.
pub fn write_start_info(mem: &mut impl DomainMemory, plan: &StartOfDay, info: &StartInfo) {
    copy_to(mem, plan, plan.start_info.start, info.as_bytes());
}

/// The first vCPU's registers at entry, as Xen sets them: RIP the entry
/// point, RSP the end of the stack page, RSI `start_info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRegisters {
    pub rip: u64,
    pub rsp: u64,
    pub rsi: u64,
}

impl StartOfDay {
    pub fn entry_registers(&self) -> EntryRegisters {
        EntryRegisters {
            rip: self.entry,
            rsp: self.stack.end,
            rsi: self.start_info.start,
        }
    }
}

#[cfg(test)]
mod tests;
