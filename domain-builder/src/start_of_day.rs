//! Where everything goes when a PV64 domain starts: the start-of-day layout.
//!
//! A PV guest starts with one contiguous, mapped area of its address space,
//! laid out exactly as Xen 4.17's dom0 builder (`dom0_construct_pv`) lays
//! it out, because guests rely on it (Linux finds its page tables after
//! `start_info`, and its free memory after the area):
//!
//! ```text
//! v_start = VIRT_BASE                            pfn 0
//!   kernel        virt_kstart..virt_kend        (anything below virt_kstart is mapped too)
//!   module        next page (not with MOD_START_PFN: then it follows the area, by pfn)
//!   p2m list      next page, nr_pages * 8 bytes (not with INIT_P2M: then it is mapped there)
//!   start_info    next page (dom0: the VGA console info follows it in the same page)
//!   xenstore      one page, domU only
//!   console       one page, domU only
//!   page tables   nr_pt_frames pages mapping v_start..v_end, the L4 first
//!   stack         one page; the first vCPU starts with RSP at its end
//!   padding       at least 512 KiB, up to v_end, a 4 MiB boundary
//! v_end
//! ```
//!
//! The page-table count depends on v_end and v_end on the page-table count;
//! like Xen, the plan takes the smallest count that covers its own area.
//! Every page of `v_start..v_end` is guest frame `(va - v_start) >> 12`.
//!
//! One deliberate difference: Xen takes the area's frames in one
//! power-of-two allocation, so it demands up to twice the area's size in
//! pages and puts an unmapped module after that allocation. Here the area
//! needs exactly its own pages, and an unmapped module starts at the first
//! frame after it. Guests read both through `start_info`.
//!
//! The domU arrangement (xenstore and console pages after `start_info`) is
//! the order Xen uses when it builds a domain that has those pages (its PV
//! shim) and the order libxc's domU builder allocates them in, though libxc
//! counts page tables and padding by rules of its own.
//!
//! [`build`] fills a plan's frames (kernel, p2m list, start_info, hypercall
//! page, page tables) through a small trait, so hv-core's dom0 builder and
//! dom0's domain builder write the same bytes.

use core::fmt;

use crate::image::{OutsideGuest, PAGE_SIZE, PvImage, check_guest_range};

pub mod build;

/// v_end is aligned to this: Xen's superpage-sized start-of-day mapping.
pub const AREA_ALIGN: u64 = 4 << 20;
/// Xen leaves at least this much mapped space after the stack page, for the
/// guest's early allocations.
pub const MIN_PADDING: u64 = 512 << 10;

const L1_SHIFT: u32 = 21; // one L1 maps 2 MiB
const L2_SHIFT: u32 = 30; // one L2 maps 1 GiB
const L3_SHIFT: u32 = 39; // one L3 maps 512 GiB

/// The kind of domain being built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The initial domain: no store or console pages (it uses `console_io`
    /// and starts the store itself).
    Dom0,
    /// Any other domain: xenstore and console pages follow `start_info`.
    DomU,
}

/// A virtual range `[start, end)` of the start-of-day area and its first
/// guest frame number. `end` is exact (not rounded to a page); the region
/// owns every page it touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub pfn: u64,
}

impl Region {
    fn mapped(v_start: u64, start: u64, end: u64) -> Self {
        Self {
            start,
            end,
            pfn: (start - v_start) / PAGE_SIZE,
        }
    }

    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Pages the region touches.
    pub fn pages(&self) -> u64 {
        if self.is_empty() {
            return 0;
        }
        (self.end - 1) / PAGE_SIZE - self.start / PAGE_SIZE + 1
    }
}

/// Where the initial module (initrd) goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModulePlacement {
    /// No module.
    None,
    /// Mapped right after the kernel; `start_info.mod_start` is its address.
    Mapped(Region),
    /// The image asked for `MOD_START_PFN`: the module's frames follow the
    /// start-of-day area unmapped; `start_info.mod_start` is `pfn` and
    /// `SIF_MOD_START_PFN` is set.
    Unmapped { pfn: u64, pages: u64 },
}

/// Where the p2m list (`start_info.mfn_list`) goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum P2mPlacement {
    /// Inside the start-of-day area, after the module.
    Mapped(Region),
    /// At the image's `INIT_P2M` address, outside the area. The builder
    /// maps it with page tables of its own; `pfn` is the first frame
    /// available for it and those tables (`start_info.first_p2m_pfn`), and
    /// `nr_p2m_frames` counts what it used.
    Separate(Region),
}

impl P2mPlacement {
    pub fn region(&self) -> Region {
        match *self {
            Self::Mapped(r) | Self::Separate(r) => r,
        }
    }
}

/// Bootstrap page-table frames, by level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableCounts {
    pub l4: u64,
    pub l3: u64,
    pub l2: u64,
    pub l1: u64,
}

impl TableCounts {
    /// The frames needed to map `[start, end)` with 4 KiB pages from one L4.
    pub fn covering(start: u64, end: u64) -> Self {
        Self {
            l4: 1,
            l3: spans(start, end, L3_SHIFT),
            l2: spans(start, end, L2_SHIFT),
            l1: spans(start, end, L1_SHIFT),
        }
    }

    pub fn total(&self) -> u64 {
        self.l4 + self.l3 + self.l2 + self.l1
    }
}

/// How many `1 << shift`-aligned blocks `[start, end)` touches (Xen's `NR`).
fn spans(start: u64, end: u64, shift: u32) -> u64 {
    let block = 1u128 << shift;
    let lo = u128::from(start) & !(block - 1);
    let hi = (u128::from(end) + block - 1) & !(block - 1);
    ((hi - lo) >> shift) as u64
}

/// Why a domain's start of day cannot be laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    TooFewPages {
        needed: u64,
        available: u64,
    },
    AddressSpaceExhausted,
    OutsideGuest {
        start: u64,
        end: u64,
        why: OutsideGuest,
    },
    P2mOutsideGuest {
        start: u64,
        end: u64,
        why: OutsideGuest,
    },
    P2mOverlapsArea {
        p2m_start: u64,
        p2m_end: u64,
        start: u64,
        end: u64,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooFewPages { needed, available } => {
                write!(f, "image needs {needed} pages, domain has {available}")
            }
            Self::AddressSpaceExhausted => {
                f.write_str("start-of-day area does not fit below the top of the address space")
            }
            Self::OutsideGuest { start, end, why } => {
                write!(f, "start-of-day area {start:#x}-{end:#x} {why}")
            }
            Self::P2mOutsideGuest { start, end, why } => {
                write!(f, "INIT_P2M table {start:#x}-{end:#x} {why}")
            }
            Self::P2mOverlapsArea {
                p2m_start,
                p2m_end,
                start,
                end,
            } => write!(
                f,
                "INIT_P2M table {p2m_start:#x}-{p2m_end:#x} overlaps the start-of-day area \
                 {start:#x}-{end:#x}"
            ),
        }
    }
}

/// The planned start of day of one domain. Addresses are guest virtual.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartOfDay {
    pub role: Role,
    /// First address of the area (`VIRT_BASE`); guest frame 0.
    pub v_start: u64,
    /// End of the area: a 4 MiB boundary at least 512 KiB past the stack.
    pub v_end: u64,
    pub kernel: Region,
    pub module: ModulePlacement,
    /// `start_info.mfn_list` is `p2m.region().start`.
    pub p2m: P2mPlacement,
    /// One page; RSI points at its start.
    pub start_info: Region,
    /// DomU only.
    pub xenstore: Option<Region>,
    /// DomU only.
    pub console: Option<Region>,
    /// `start_info.pt_base` is `page_tables.start`, the L4.
    pub page_tables: Region,
    /// `start_info.nr_pt_frames`: `tables.total()`.
    pub nr_pt_frames: u64,
    pub tables: TableCounts,
    /// One page; the first vCPU starts with RSP = `stack.end`.
    pub stack: Region,
    /// Where the first vCPU starts.
    pub entry: u64,
    pub hypercall_page: Option<u64>,
    /// The domain's size (`start_info.nr_pages`).
    pub nr_pages: u64,
    /// The fewest pages the layout fits in (at most `nr_pages`).
    pub pages_needed: u64,
}

impl StartOfDay {
    /// Lays out dom0's start of day: `nr_pages` is the domain's size in
    /// pages (the p2m list has one entry per page), `module_len` the initial
    /// module's length in bytes (0 for none).
    pub fn plan(image: &PvImage<'_>, nr_pages: u64, module_len: u64) -> Result<Self, PlanError> {
        Self::plan_for(Role::Dom0, image, nr_pages, module_len)
    }

    /// Lays out the start of day of a domain with the given role.
    pub fn plan_for(
        role: Role,
        image: &PvImage<'_>,
        nr_pages: u64,
        module_len: u64,
    ) -> Result<Self, PlanError> {
        let overflow = PlanError::AddressSpaceExhausted;
        let v_start = image.virt_base();
        let kernel = Region::mapped(v_start, image.virt_kstart(), image.virt_kend());
        let after_kernel = page_up(kernel.end).ok_or(overflow)?;

        let (module, p2m_start) = if module_len == 0 {
            (ModulePlacement::None, after_kernel)
        } else if image.mod_start_pfn() {
            // The pfn is known once the area's end is; see below.
            (
                ModulePlacement::Unmapped {
                    pfn: 0,
                    pages: pages_for(module_len),
                },
                after_kernel,
            )
        } else {
            let end = after_kernel.checked_add(module_len).ok_or(overflow)?;
            let region = Region::mapped(v_start, after_kernel, end);
            (
                ModulePlacement::Mapped(region),
                page_up(end).ok_or(overflow)?,
            )
        };

        let p2m_len = nr_pages.checked_mul(8).ok_or(overflow)?;
        let p2m_end = match image.p2m_base() {
            Some(_) => p2m_start,
            None => p2m_start.checked_add(p2m_len).ok_or(overflow)?,
        };
        let start_info_start = page_up(p2m_end).ok_or(overflow)?;
        let start_info = page_at(v_start, start_info_start).ok_or(overflow)?;
        let (xenstore, console, pt_start) = match role {
            Role::Dom0 => (None, None, start_info.end),
            Role::DomU => {
                let store = page_at(v_start, start_info.end).ok_or(overflow)?;
                let console = page_at(v_start, store.end).ok_or(overflow)?;
                (Some(store), Some(console), console.end)
            }
        };

        // Xen searches upwards for the smallest count whose area it covers.
        // Jumping straight to the count an attempt needed finds the same
        // one: the need only grows with the count, so every count between
        // falls short too.
        let mut nr_pt_frames: u64 = 2;
        let (page_tables, stack, v_end, tables) = loop {
            let pt_end = nr_pt_frames
                .checked_mul(PAGE_SIZE)
                .and_then(|len| pt_start.checked_add(len))
                .ok_or(overflow)?;
            let page_tables = Region::mapped(v_start, pt_start, pt_end);
            let stack = page_at(v_start, pt_end).ok_or(overflow)?;
            let mut v_end = align_up(stack.end, AREA_ALIGN).ok_or(overflow)?;
            if v_end - stack.end < MIN_PADDING {
                v_end = v_end.checked_add(AREA_ALIGN).ok_or(overflow)?;
            }
            let tables = TableCounts::covering(v_start, v_end);
            if tables.total() <= nr_pt_frames {
                break (page_tables, stack, v_end, tables);
            }
            nr_pt_frames = tables.total();
        };
        debug_assert_eq!(tables.total(), nr_pt_frames);

        check_guest_range(v_start, v_end).map_err(|why| PlanError::OutsideGuest {
            start: v_start,
            end: v_end,
            why,
        })?;

        let mapped_pages = (v_end - v_start) / PAGE_SIZE;
        let mut pages_needed = mapped_pages;
        let module = match module {
            ModulePlacement::Unmapped { pages, .. } => {
                let pfn = pages_needed;
                pages_needed = pages_needed.checked_add(pages).ok_or(overflow)?;
                ModulePlacement::Unmapped { pfn, pages }
            }
            other => other,
        };
        let p2m = match image.p2m_base() {
            None => P2mPlacement::Mapped(Region::mapped(v_start, p2m_start, p2m_end)),
            Some(base) => {
                let end = base.checked_add(p2m_len).ok_or(overflow)?;
                check_guest_range(base, end).map_err(|why| PlanError::P2mOutsideGuest {
                    start: base,
                    end,
                    why,
                })?;
                // Xen's test, which also refuses a table that merely touches.
                if v_start <= end && base <= v_end {
                    return Err(PlanError::P2mOverlapsArea {
                        p2m_start: base,
                        p2m_end: end,
                        start: v_start,
                        end: v_end,
                    });
                }
                let region = Region {
                    start: base,
                    end,
                    pfn: pages_needed,
                };
                // Xen's own lower bound: the list's pages and three tables.
                pages_needed = pages_needed
                    .checked_add(pages_for(p2m_len))
                    .and_then(|n| n.checked_add(3))
                    .ok_or(overflow)?;
                P2mPlacement::Separate(region)
            }
        };
        if pages_needed > nr_pages {
            return Err(PlanError::TooFewPages {
                needed: pages_needed,
                available: nr_pages,
            });
        }

        Ok(Self {
            role,
            v_start,
            v_end,
            kernel,
            module,
            p2m,
            start_info,
            xenstore,
            console,
            page_tables,
            nr_pt_frames,
            tables,
            stack,
            entry: image.virt_entry(),
            hypercall_page: image.hypercall_page(),
            nr_pages,
            pages_needed,
        })
    }

    /// Pages mapped at start of day: guest frames `0..mapped_pages()`.
    pub fn mapped_pages(&self) -> u64 {
        (self.v_end - self.v_start) / PAGE_SIZE
    }

    /// The guest frame mapped at `va`, if `va` is in the area.
    pub fn pfn_of(&self, va: u64) -> Option<u64> {
        (self.v_start..self.v_end)
            .contains(&va)
            .then(|| (va - self.v_start) / PAGE_SIZE)
    }

    /// `start_info.mod_start`: the module's address, or its first frame
    /// when unmapped (with `SIF_MOD_START_PFN`).
    pub fn mod_start(&self) -> Option<u64> {
        match self.module {
            ModulePlacement::None => None,
            ModulePlacement::Mapped(r) => Some(r.start),
            ModulePlacement::Unmapped { pfn, .. } => Some(pfn),
        }
    }

    /// The bootstrap page-table frames in the order Xen fills them: the L4,
    /// then, walking the area upwards 2 MiB at a time, each new L1, followed
    /// by a new L2 when the walk enters another 1 GiB, followed by a new L3
    /// when it enters another 512 GiB.
    pub fn page_table_frames(&self) -> PageTableFrames {
        PageTableFrames {
            next_pfn: self.page_tables.pfn,
            l4_done: false,
            chunk: self.v_start & !((1 << L1_SHIFT) - 1),
            first: true,
            v_end: self.v_end,
            pending: [TableFrame::default(); 2],
            nr_pending: 0,
        }
    }
}

/// One bootstrap page-table frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableFrame {
    pub pfn: u64,
    /// 4 for the L4 down to 1 for an L1.
    pub level: u8,
    /// The first address the table maps (aligned to what it covers).
    pub va: u64,
}

/// Iterator from [`StartOfDay::page_table_frames`].
#[derive(Clone, Debug)]
pub struct PageTableFrames {
    next_pfn: u64,
    l4_done: bool,
    chunk: u64,
    first: bool,
    v_end: u64,
    /// An L2 and/or L3 still to hand out after the L1 just returned,
    /// highest level last.
    pending: [TableFrame; 2],
    nr_pending: usize,
}

impl PageTableFrames {
    fn take(&mut self, level: u8, va: u64) -> TableFrame {
        let frame = TableFrame {
            pfn: self.next_pfn,
            level,
            va,
        };
        self.next_pfn += 1;
        frame
    }
}

impl Iterator for PageTableFrames {
    type Item = TableFrame;

    fn next(&mut self) -> Option<TableFrame> {
        if !self.l4_done {
            self.l4_done = true;
            return Some(self.take(4, 0));
        }
        if self.nr_pending > 0 {
            let frame = self.pending[0];
            self.pending[0] = self.pending[1];
            self.nr_pending -= 1;
            return Some(self.take(frame.level, frame.va));
        }
        if self.chunk >= self.v_end {
            return None;
        }
        let chunk = self.chunk;
        let l1 = self.take(1, chunk);
        let aligned = |shift: u32| chunk & ((1u64 << shift) - 1) == 0;
        if self.first || aligned(L2_SHIFT) {
            self.pending[self.nr_pending] = TableFrame {
                pfn: 0,
                level: 2,
                va: chunk & !((1 << L2_SHIFT) - 1),
            };
            self.nr_pending += 1;
            if self.first || aligned(L3_SHIFT) {
                self.pending[self.nr_pending] = TableFrame {
                    pfn: 0,
                    level: 3,
                    va: chunk & !((1 << L3_SHIFT) - 1),
                };
                self.nr_pending += 1;
            }
        }
        self.first = false;
        // At the very top of the address space there is no next chunk.
        self.chunk = chunk.saturating_add(1 << L1_SHIFT);
        Some(l1)
    }
}

fn align_up(value: u64, align: u64) -> Option<u64> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}

fn page_up(value: u64) -> Option<u64> {
    align_up(value, PAGE_SIZE)
}

fn pages_for(len: u64) -> u64 {
    len.div_ceil(PAGE_SIZE)
}

/// The page at `start` (page-aligned) as a region.
fn page_at(v_start: u64, start: u64) -> Option<Region> {
    let end = start.checked_add(PAGE_SIZE)?;
    Some(Region::mapped(v_start, start, end))
}

#[cfg(test)]
mod tests;
