//! Translating between pseudo-physical frames (the guest's view, indices
//! into its memory) and machine frames (what page-table entries and most
//! hypercalls name).
//!
//! pfn -> mfn comes from the p2m list the builder handed over; mfn -> pfn
//! from the hypervisor's read-only machine-to-phys table (M2P), which every
//! PV64 guest sees at `MACH2PHYS_VIRT_START`. The M2P is shared by all
//! domains, so its answer is only trusted when the p2m maps it back.

use super::frames::Pfn;

/// A machine frame number.
pub type Mfn = u64;

/// The p2m list of this domain.
#[derive(Clone, Copy)]
pub struct P2m<'a> {
    list: &'a [u64],
}

impl<'a> P2m<'a> {
    /// The p2m over `list` (`start_info.mfn_list`: entry `pfn` is its MFN).
    pub const fn new(list: &'a [u64]) -> Self {
        Self { list }
    }

    /// How many frames the list covers (`nr_pages`).
    pub fn len(&self) -> u64 {
        self.list.len() as u64
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The machine frame of pseudo-physical frame `pfn`, if the list covers it.
    pub fn pfn_to_mfn(&self, pfn: Pfn) -> Option<Mfn> {
        self.list.get(pfn as usize).copied()
    }

    /// The pfn behind `mfn`, given the M2P's answer for it: `None` if the
    /// M2P has no entry, or if the frame is not this domain's (the p2m
    /// does not map the pfn back to `mfn`).
    pub fn check_m2p(&self, mfn: Mfn, m2p_entry: Option<u64>) -> Option<Pfn> {
        let pfn = m2p_entry?;
        (self.pfn_to_mfn(pfn) == Some(mfn)).then_some(pfn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_both_ways_and_refuses_foreign_frames() {
        let list = [0x500, 0x501, 0x9000];
        let p2m = P2m::new(&list);
        assert_eq!(p2m.pfn_to_mfn(2), Some(0x9000));
        assert_eq!(p2m.pfn_to_mfn(3), None);
        assert_eq!(p2m.check_m2p(0x9000, Some(2)), Some(2));
        // The M2P says pfn 1 but our pfn 1 is another frame: not ours.
        assert_eq!(p2m.check_m2p(0x7777, Some(1)), None);
        // Out of range, or no M2P entry.
        assert_eq!(p2m.check_m2p(0x500, Some(99)), None);
        assert_eq!(p2m.check_m2p(0x500, None), None);
    }
}
