//! Which pages of the map window ([`crate::layout::MAP_WINDOW_VA`]) are in
//! use. The window holds mappings of frames that are not the guest's own
//! (another domain's granted pages); its L1 table exists before any slot
//! is handed out, so the hypervisor can fill an entry in place.

use crate::layout::{MAP_WINDOW_PAGES, MAP_WINDOW_VA, PAGE_SIZE};

const WORDS: usize = MAP_WINDOW_PAGES.div_ceil(64);

/// One bit per window page, set while the page is handed out.
pub struct WindowSlots {
    used: [u64; WORDS],
}

impl WindowSlots {
    /// All slots free.
    pub const fn new() -> Self {
        Self { used: [0; WORDS] }
    }

    /// The lowest free slot, now taken.
    pub fn take(&mut self) -> Option<usize> {
        for (w, word) in self.used.iter_mut().enumerate() {
            if *word != u64::MAX {
                let bit = (!*word).trailing_zeros() as usize;
                let index = w * 64 + bit;
                if index >= MAP_WINDOW_PAGES {
                    return None;
                }
                *word |= 1 << bit;
                return Some(index);
            }
        }
        None
    }

    /// Gives slot `index` back.
    pub fn release(&mut self, index: usize) {
        assert!(
            index < MAP_WINDOW_PAGES && self.used[index / 64] & 1 << (index % 64) != 0,
            "map window slot {index} released but not taken"
        );
        self.used[index / 64] &= !(1 << (index % 64));
    }
}

impl Default for WindowSlots {
    fn default() -> Self {
        Self::new()
    }
}

/// The virtual address of window slot `index`.
pub const fn slot_va(index: usize) -> u64 {
    MAP_WINDOW_VA + index as u64 * PAGE_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_handed_out_lowest_first_until_the_window_is_full() {
        let mut slots = WindowSlots::new();
        for expected in 0..MAP_WINDOW_PAGES {
            assert_eq!(slots.take(), Some(expected));
        }
        assert_eq!(slots.take(), None);
        slots.release(70);
        slots.release(3);
        assert_eq!(slots.take(), Some(3));
        assert_eq!(slots.take(), Some(70));
        assert_eq!(slot_va(1), MAP_WINDOW_VA + 4096);
    }

    #[test]
    #[should_panic(expected = "not taken")]
    fn releasing_a_free_slot_panics() {
        WindowSlots::new().release(5);
    }
}
