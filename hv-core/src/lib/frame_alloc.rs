//! Physical memory: which frames are usable, and the allocator that hands
//! them out.
//!
//! [`UsableRanges`] turns a firmware memory map (unsorted, overlapping,
//! unaligned, with holes) plus the ranges that are already taken (hv-core's
//! image, the boot information, every module, the first MiB) into a sorted
//! list of disjoint, page-aligned ranges. A range that the map calls both
//! available and reserved is reserved: when the firmware contradicts itself
//! we do not hand out memory it might be using.
//!
//! [`FrameAllocator`] is a bitmap over those ranges (one bit per frame, set
//! while free). It detects double frees and frees of frames it never managed,
//! and keeps an exact free count, so memory leaks show up as numbers.

use core::fmt;

pub const FRAME_SIZE: u64 = 4096;

/// A half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysRange {
    pub start: u64,
    pub end: u64,
}

impl PhysRange {
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    pub const fn from_len(start: u64, len: u64) -> Self {
        Self {
            start,
            end: start.saturating_add(len),
        }
    }

    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// The whole frames inside the range.
    const fn shrunk_to_frames(self) -> Self {
        let start = match self.start.checked_next_multiple_of(FRAME_SIZE) {
            Some(start) => start,
            None => u64::MAX,
        };
        Self::new(start, self.end / FRAME_SIZE * FRAME_SIZE)
    }

    /// The frames the range touches.
    const fn grown_to_frames(self) -> Self {
        let end = match self.end.checked_next_multiple_of(FRAME_SIZE) {
            Some(end) => end,
            None => u64::MAX / FRAME_SIZE * FRAME_SIZE,
        };
        Self::new(self.start / FRAME_SIZE * FRAME_SIZE, end)
    }
}

/// More disjoint ranges than the fixed table holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooFragmented;

impl fmt::Display for TooFragmented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memory map has more than {MAX_RANGES} usable ranges")
    }
}

pub const MAX_RANGES: usize = 128;

/// Sorted, disjoint, page-aligned usable ranges.
#[derive(Clone, Debug)]
pub struct UsableRanges {
    ranges: [PhysRange; MAX_RANGES],
    len: usize,
}

impl UsableRanges {
    /// Usable memory: every `available` range, minus every `reserved` one.
    pub fn new(
        available: impl IntoIterator<Item = PhysRange>,
        reserved: impl IntoIterator<Item = PhysRange>,
    ) -> Result<Self, TooFragmented> {
        let mut usable = Self {
            ranges: [PhysRange::new(0, 0); MAX_RANGES],
            len: 0,
        };
        for range in available {
            usable.add(range.shrunk_to_frames())?;
        }
        for range in reserved {
            usable.remove(range.grown_to_frames())?;
        }
        Ok(usable)
    }

    pub fn as_slice(&self) -> &[PhysRange] {
        &self.ranges[..self.len]
    }

    pub fn total_bytes(&self) -> u64 {
        self.as_slice().iter().map(PhysRange::len).sum()
    }

    /// One past the highest usable address (0 when there is none).
    pub fn end(&self) -> u64 {
        self.as_slice().last().map_or(0, |r| r.end)
    }

    /// Removes `len` bytes (rounded up to frames) from the lowest range that
    /// fits entirely below `limit`, and returns their start.
    pub fn take(&mut self, len: u64, limit: u64) -> Option<u64> {
        let len = len.checked_next_multiple_of(FRAME_SIZE)?;
        let found = self
            .as_slice()
            .iter()
            .find(|r| r.len() >= len && r.start + len <= limit)?
            .start;
        self.remove(PhysRange::from_len(found, len)).ok()?;
        Some(found)
    }

    fn add(&mut self, new: PhysRange) -> Result<(), TooFragmented> {
        if new.is_empty() {
            return Ok(());
        }
        // Merge with every range it overlaps or touches, then insert sorted.
        let mut merged = new;
        let mut i = 0;
        while i < self.len {
            let r = self.ranges[i];
            if r.start <= merged.end && merged.start <= r.end {
                merged = PhysRange::new(r.start.min(merged.start), r.end.max(merged.end));
                self.delete(i);
            } else {
                i += 1;
            }
        }
        let at = self.as_slice().partition_point(|r| r.start < merged.start);
        self.insert(at, merged)
    }

    fn remove(&mut self, hole: PhysRange) -> Result<(), TooFragmented> {
        if hole.is_empty() {
            return Ok(());
        }
        let mut i = 0;
        while i < self.len {
            let r = self.ranges[i];
            if hole.end <= r.start || r.end <= hole.start {
                i += 1;
                continue;
            }
            let below = PhysRange::new(r.start, hole.start.max(r.start));
            let above = PhysRange::new(hole.end.min(r.end), r.end);
            self.delete(i);
            if !below.is_empty() {
                self.insert(i, below)?;
                i += 1;
            }
            if !above.is_empty() {
                self.insert(i, above)?;
                i += 1;
            }
        }
        Ok(())
    }

    fn insert(&mut self, at: usize, range: PhysRange) -> Result<(), TooFragmented> {
        if self.len == MAX_RANGES {
            return Err(TooFragmented);
        }
        self.ranges.copy_within(at..self.len, at + 1);
        self.ranges[at] = range;
        self.len += 1;
        Ok(())
    }

    fn delete(&mut self, at: usize) {
        self.ranges.copy_within(at + 1..self.len, at);
        self.len -= 1;
    }
}

/// Why a frame could not be freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// The address is not the start of a frame.
    Unaligned(u64),
    /// The frame was never handed out by this allocator.
    NotManaged(u64),
    /// The frame is already free.
    DoubleFree(u64),
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unaligned(a) => write!(f, "{a:#x} is not frame-aligned"),
            Self::NotManaged(a) => write!(f, "frame {a:#x} is not managed by the allocator"),
            Self::DoubleFree(a) => write!(f, "frame {a:#x} is already free"),
        }
    }
}

/// A bitmap frame allocator. Bit `n` covers the frame at `n * FRAME_SIZE`;
/// it is set while that frame is free.
pub struct FrameAllocator<'a> {
    bitmap: &'a mut [u64],
    /// Frames that may ever be free: the usable ranges it was built from.
    managed: UsableRanges,
    free: u64,
    /// Word index to start the next search at (next fit).
    cursor: usize,
}

impl<'a> FrameAllocator<'a> {
    /// How many `u64` words of bitmap `ranges` needs.
    pub fn bitmap_words(ranges: &UsableRanges) -> usize {
        (ranges.end() / FRAME_SIZE).div_ceil(64) as usize
    }

    /// An allocator whose free frames are exactly `ranges`. `bitmap` must
    /// hold at least [`Self::bitmap_words`] words.
    pub fn new(bitmap: &'a mut [u64], ranges: &UsableRanges) -> Self {
        assert!(
            bitmap.len() >= Self::bitmap_words(ranges),
            "frame bitmap too small"
        );
        bitmap.fill(0);
        let mut allocator = Self {
            bitmap,
            managed: ranges.clone(),
            free: 0,
            cursor: 0,
        };
        for range in ranges.as_slice() {
            for frame in range.start / FRAME_SIZE..range.end / FRAME_SIZE {
                allocator.set_free(frame as usize);
            }
        }
        allocator
    }

    pub fn free_frames(&self) -> u64 {
        self.free
    }

    pub fn managed_frames(&self) -> u64 {
        self.managed.total_bytes() / FRAME_SIZE
    }

    /// Hands out the lowest free frame at or after the cursor, wrapping once.
    pub fn alloc(&mut self) -> Option<u64> {
        let words = self.bitmap.len();
        for step in 0..words {
            let i = (self.cursor + step) % words;
            let word = self.bitmap[i];
            if word != 0 {
                let bit = word.trailing_zeros() as usize;
                self.bitmap[i] &= !(1 << bit);
                self.free -= 1;
                self.cursor = i;
                return Some((i * 64 + bit) as u64 * FRAME_SIZE);
            }
        }
        None
    }

    pub fn free(&mut self, addr: u64) -> Result<(), FreeError> {
        if !addr.is_multiple_of(FRAME_SIZE) {
            return Err(FreeError::Unaligned(addr));
        }
        let managed = self
            .managed
            .as_slice()
            .iter()
            .any(|r| r.start <= addr && addr < r.end);
        if !managed {
            return Err(FreeError::NotManaged(addr));
        }
        let frame = (addr / FRAME_SIZE) as usize;
        if self.bitmap[frame / 64] & (1 << (frame % 64)) != 0 {
            return Err(FreeError::DoubleFree(addr));
        }
        self.set_free(frame);
        self.cursor = self.cursor.min(frame / 64);
        Ok(())
    }

    fn set_free(&mut self, frame: usize) {
        self.bitmap[frame / 64] |= 1 << (frame % 64);
        self.free += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn r(start: u64, end: u64) -> PhysRange {
        PhysRange::new(start, end)
    }

    fn usable(available: &[PhysRange], reserved: &[PhysRange]) -> Vec<PhysRange> {
        UsableRanges::new(available.iter().copied(), reserved.iter().copied())
            .unwrap()
            .as_slice()
            .to_vec()
    }

    #[test]
    fn sorts_and_merges_overlapping_and_touching_ranges() {
        let got = usable(
            &[
                r(8 * MIB, 16 * MIB),
                r(0, 2 * MIB),
                r(12 * MIB, 20 * MIB),
                r(2 * MIB, 3 * MIB),
            ],
            &[],
        );
        assert_eq!(got, [r(0, 3 * MIB), r(8 * MIB, 20 * MIB)]);
    }

    #[test]
    fn keeps_holes_between_ranges() {
        let got = usable(
            &[r(0, 0x9f000), r(MIB, 128 * MIB), r(4096 * MIB, 4608 * MIB)],
            &[],
        );
        assert_eq!(
            got,
            [r(0, 0x9f000), r(MIB, 128 * MIB), r(4096 * MIB, 4608 * MIB)]
        );
    }

    #[test]
    fn shrinks_unaligned_available_ranges_to_whole_frames() {
        let got = usable(&[r(0x1001, 0x5fff), r(0x10000, 0x10fff)], &[]);
        assert_eq!(got, [r(0x2000, 0x5000)]);
    }

    #[test]
    fn excludes_reserved_ranges_grown_to_whole_frames() {
        // An image, a boot-info block straddling a frame boundary, a module.
        let got = usable(
            &[r(0, 64 * MIB)],
            &[
                r(0, MIB),
                r(2 * MIB, 3 * MIB),
                r(0x30_0ff8, 0x30_1010),
                r(10 * MIB, 11 * MIB + 1),
            ],
        );
        assert_eq!(
            got,
            [
                r(MIB, 2 * MIB),
                r(0x30_2000, 10 * MIB),
                r(11 * MIB + FRAME_SIZE, 64 * MIB)
            ]
        );
    }

    #[test]
    fn reserved_wins_over_available_in_any_order() {
        let got = usable(
            &[r(0, 16 * MIB), r(4 * MIB, 8 * MIB)],
            &[r(4 * MIB, 8 * MIB)],
        );
        assert_eq!(got, [r(0, 4 * MIB), r(8 * MIB, 16 * MIB)]);
    }

    #[test]
    fn reserved_range_covering_several_available_ranges_removes_them_all() {
        let got = usable(
            &[r(0, MIB), r(2 * MIB, 3 * MIB), r(4 * MIB, 5 * MIB)],
            &[r(0, 4 * MIB + 4096)],
        );
        assert_eq!(got, [r(4 * MIB + 4096, 5 * MIB)]);
    }

    #[test]
    fn reserved_ranges_outside_ram_change_nothing() {
        let got = usable(&[r(MIB, 2 * MIB)], &[r(0xfee0_0000, 0xfee0_1000), r(0, 0)]);
        assert_eq!(got, [r(MIB, 2 * MIB)]);
    }

    #[test]
    fn ranges_at_the_top_of_the_address_space_do_not_overflow() {
        let got = usable(
            &[r(u64::MAX - 3 * FRAME_SIZE, u64::MAX)],
            &[r(u64::MAX - 10, u64::MAX)],
        );
        let top = u64::MAX / FRAME_SIZE * FRAME_SIZE;
        assert_eq!(got, [r(top - 2 * FRAME_SIZE, top)]);
    }

    #[test]
    fn too_many_ranges_is_an_error() {
        let available = (0..MAX_RANGES as u64 + 1).map(|i| r(i * 2 * MIB, i * 2 * MIB + MIB));
        assert_eq!(UsableRanges::new(available, []).unwrap_err(), TooFragmented);
    }

    #[test]
    fn take_carves_from_the_lowest_fitting_range_below_the_limit() {
        let mut ranges = UsableRanges::new([r(MIB, MIB + 8192), r(4 * MIB, 8 * MIB)], []).unwrap();
        assert_eq!(ranges.take(3 * 4096, 8 * MIB), Some(4 * MIB));
        assert_eq!(
            ranges.as_slice(),
            [r(MIB, MIB + 8192), r(4 * MIB + 3 * 4096, 8 * MIB)]
        );
        assert_eq!(ranges.take(MIB, 4 * MIB), None);
    }

    fn allocator_over(ranges: &UsableRanges) -> (Vec<u64>, usize) {
        (
            vec![0u64; FrameAllocator::bitmap_words(ranges)],
            FrameAllocator::bitmap_words(ranges),
        )
    }

    #[test]
    fn allocator_hands_out_exactly_the_usable_frames() {
        let ranges =
            UsableRanges::new([r(0, 64 * 1024), r(MIB, MIB + 5 * 4096)], [r(0, 4096)]).unwrap();
        let (mut bitmap, _) = allocator_over(&ranges);
        let mut allocator = FrameAllocator::new(&mut bitmap, &ranges);
        assert_eq!(allocator.free_frames(), 15 + 5);
        let mut got = Vec::new();
        while let Some(frame) = allocator.alloc() {
            got.push(frame);
        }
        let mut want: Vec<u64> = (1..16).map(|f| f * 4096).collect();
        want.extend((0..5).map(|f| MIB + f * 4096));
        assert_eq!(got, want);
        assert_eq!(allocator.free_frames(), 0);
    }

    #[test]
    fn freed_frames_come_back_and_counts_balance() {
        let ranges = UsableRanges::new([r(MIB, 2 * MIB)], []).unwrap();
        let (mut bitmap, _) = allocator_over(&ranges);
        let mut allocator = FrameAllocator::new(&mut bitmap, &ranges);
        let before = allocator.free_frames();
        let frames: Vec<u64> = (0..100).map(|_| allocator.alloc().unwrap()).collect();
        assert_eq!(allocator.free_frames(), before - 100);
        for &frame in frames.iter().rev() {
            allocator.free(frame).unwrap();
        }
        assert_eq!(allocator.free_frames(), before);
        assert_eq!(allocator.alloc(), Some(MIB));
    }

    #[test]
    fn bad_frees_are_refused_and_change_nothing() {
        let ranges = UsableRanges::new([r(MIB, 2 * MIB)], []).unwrap();
        let (mut bitmap, _) = allocator_over(&ranges);
        let mut allocator = FrameAllocator::new(&mut bitmap, &ranges);
        let frame = allocator.alloc().unwrap();
        let free = allocator.free_frames();
        assert_eq!(
            allocator.free(frame + 8),
            Err(FreeError::Unaligned(frame + 8))
        );
        assert_eq!(allocator.free(0), Err(FreeError::NotManaged(0)));
        assert_eq!(allocator.free(2 * MIB), Err(FreeError::NotManaged(2 * MIB)));
        assert_eq!(
            allocator.free(frame + 4096),
            Err(FreeError::DoubleFree(frame + 4096))
        );
        assert_eq!(allocator.free_frames(), free);
        allocator.free(frame).unwrap();
        assert_eq!(allocator.free(frame), Err(FreeError::DoubleFree(frame)));
    }

    #[test]
    fn random_alloc_free_sequences_never_hand_out_a_frame_twice() {
        // A small deterministic generator: no dependency needed for this.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let ranges = UsableRanges::new(
            [r(0, 3 * MIB), r(5 * MIB, 6 * MIB)],
            [r(0, MIB), r(0x1f_f000, 0x20_3000)],
        )
        .unwrap();
        let (mut bitmap, _) = allocator_over(&ranges);
        let mut allocator = FrameAllocator::new(&mut bitmap, &ranges);
        let total = allocator.free_frames();
        let mut held = std::collections::BTreeSet::new();
        for _ in 0..20_000 {
            if next() % 3 != 0 {
                if let Some(frame) = allocator.alloc() {
                    assert!(
                        ranges
                            .as_slice()
                            .iter()
                            .any(|r| r.start <= frame && frame < r.end)
                    );
                    assert!(held.insert(frame), "frame {frame:#x} handed out twice");
                }
            } else if let Some(&frame) = held.iter().nth(next() as usize % held.len().max(1)) {
                held.remove(&frame);
                allocator.free(frame).unwrap();
            }
            assert_eq!(allocator.free_frames() + held.len() as u64, total);
        }
    }
}
