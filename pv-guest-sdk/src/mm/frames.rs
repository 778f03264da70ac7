//! The guest's free pseudo-physical frames, one bit each.
//!
//! Frames below the bootstrap region's end belong to the image and the
//! builder's structures and are never free. The allocator also keeps a
//! `limit`: only frames below it are mapped in the physmap yet, and only
//! those are handed out (the SDK raises the limit as it extends the
//! physmap, using frames below the limit for the new page tables).

use crate::layout::MAX_PHYSMAP_PAGES;

const WORDS: usize = (MAX_PHYSMAP_PAGES / 64) as usize;

/// A pseudo-physical frame number.
pub type Pfn = u64;

/// A bitmap allocator of this domain's pseudo-physical frames.
pub struct FrameAllocator {
    /// Bit set: frame free.
    free: [u64; WORDS],
    /// Frames at or above this are not handed out (not mapped yet).
    limit: Pfn,
    /// Where the next search starts.
    hint: Pfn,
    free_count: u64,
}

impl FrameAllocator {
    /// An allocator with no free frames; [`add_range`](Self::add_range) gives it some.
    pub const fn new() -> Self {
        Self {
            free: [0; WORDS],
            limit: 0,
            hint: 0,
            free_count: 0,
        }
    }

    /// Marks `[start, end)` free (clipped to what the bitmap covers).
    pub fn add_range(&mut self, start: Pfn, end: Pfn) {
        for pfn in start..end.min(MAX_PHYSMAP_PAGES) {
            let (w, b) = (pfn as usize / 64, pfn % 64);
            if self.free[w] & 1 << b == 0 {
                self.free[w] |= 1 << b;
                self.free_count += 1;
            }
        }
        self.hint = self.hint.min(start);
    }

    /// Frames at or above `limit` stay reserved until it is raised.
    pub fn set_limit(&mut self, limit: Pfn) {
        self.limit = limit.min(MAX_PHYSMAP_PAGES);
    }

    /// The frame number at and above which frames are reserved.
    pub fn limit(&self) -> Pfn {
        self.limit
    }

    /// Free frames, including those above the limit.
    pub fn free_count(&self) -> u64 {
        self.free_count
    }

    fn is_free(&self, pfn: Pfn) -> bool {
        self.free[pfn as usize / 64] & 1 << (pfn % 64) != 0
    }

    fn take(&mut self, pfn: Pfn) {
        self.free[pfn as usize / 64] &= !(1 << (pfn % 64));
        self.free_count -= 1;
    }

    /// One free frame below the limit.
    pub fn alloc(&mut self) -> Option<Pfn> {
        let pfn = self.find(self.hint).or_else(|| self.find(0))?;
        self.take(pfn);
        self.hint = pfn + 1;
        Some(pfn)
    }

    fn find(&self, from: Pfn) -> Option<Pfn> {
        let mut pfn = from;
        while pfn < self.limit {
            let word = self.free[pfn as usize / 64] >> (pfn % 64);
            if word != 0 {
                let found = pfn + word.trailing_zeros() as u64;
                return (found < self.limit).then_some(found);
            }
            pfn = (pfn / 64 + 1) * 64;
        }
        None
    }

    /// `count` consecutive free frames below the limit (first fit).
    pub fn alloc_contiguous(&mut self, count: u64) -> Option<Pfn> {
        if count == 0 {
            return None;
        }
        let mut start = self.find(0)?;
        loop {
            if start + count > self.limit {
                return None;
            }
            match (start..start + count).find(|&pfn| !self.is_free(pfn)) {
                None => break,
                Some(used) => start = self.find(used + 1)?,
            }
        }
        for pfn in start..start + count {
            self.take(pfn);
        }
        Some(start)
    }

    /// Returns a frame. Freeing a frame that is already free is a bug in the
    /// caller and panics.
    pub fn free(&mut self, pfn: Pfn) {
        assert!(
            pfn < MAX_PHYSMAP_PAGES && !self.is_free(pfn),
            "double free of pfn {pfn:#x}"
        );
        self.free[pfn as usize / 64] |= 1 << (pfn % 64);
        self.free_count += 1;
        self.hint = self.hint.min(pfn);
    }
}

impl Default for FrameAllocator {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocator(start: Pfn, end: Pfn, limit: Pfn) -> Box<FrameAllocator> {
        let mut a = Box::new(FrameAllocator::new());
        a.add_range(start, end);
        a.set_limit(limit);
        a
    }

    #[test]
    fn hands_out_free_frames_below_the_limit_only() {
        let mut a = allocator(10, 20, 13);
        assert_eq!(a.alloc(), Some(10));
        assert_eq!(a.alloc(), Some(11));
        assert_eq!(a.alloc(), Some(12));
        assert_eq!(a.alloc(), None);
        a.set_limit(20);
        assert_eq!(a.alloc(), Some(13));
        assert_eq!(a.free_count(), 6);
    }

    #[test]
    fn freed_frames_come_back() {
        let mut a = allocator(0, 4, 4);
        let frames: Vec<_> = (0..4).map(|_| a.alloc().unwrap()).collect();
        assert_eq!(a.alloc(), None);
        a.free(frames[2]);
        assert_eq!(a.alloc(), Some(2));
    }

    #[test]
    #[should_panic(expected = "double free")]
    fn double_free_panics() {
        let mut a = allocator(0, 4, 4);
        a.free(1);
    }

    #[test]
    fn contiguous_runs_skip_holes() {
        let mut a = allocator(100, 200, 200);
        a.alloc(); // 100
        let hole = a.alloc().unwrap(); // 101
        a.alloc(); // 102
        a.free(hole);
        assert_eq!(a.alloc_contiguous(5), Some(103));
        assert_eq!(a.alloc_contiguous(2), Some(108));
        assert_eq!(a.alloc_contiguous(200), None);
        assert_eq!(a.alloc(), Some(101));
    }

    #[test]
    fn word_boundaries_and_the_top_of_the_bitmap() {
        let top = MAX_PHYSMAP_PAGES;
        let mut a = allocator(top - 70, top + 10, top);
        assert_eq!(a.free_count(), 70);
        assert_eq!(a.alloc_contiguous(70), Some(top - 70));
        assert_eq!(a.alloc(), None);
    }

    #[test]
    fn randomized_alloc_free_keeps_counts_and_uniqueness() {
        let mut a = allocator(0, 1000, 1000);
        let mut held = std::collections::BTreeSet::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if !seed.is_multiple_of(3) {
                if let Some(pfn) = a.alloc() {
                    assert!(held.insert(pfn), "pfn {pfn} handed out twice");
                }
            } else if let Some(&pfn) = held.iter().nth((seed as usize >> 8) % held.len().max(1)) {
                held.remove(&pfn);
                a.free(pfn);
            }
            assert_eq!(a.free_count() as usize + held.len(), 1000);
        }
    }
}
