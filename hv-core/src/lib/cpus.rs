//! Which CPUs to bring up: the MADT's enabled local APICs, the boot CPU
//! first, at most `maxcpus=` of them and at most [`MAX_CPUS`].

use crate::layout::MAX_CPUS;

/// The CPUs hv-core runs on, by APIC id, in CPU-number order: index 0 is
/// the boot CPU.
pub type CpuList = heapless::Vec<u32, MAX_CPUS>;

/// What [`plan`] left out, for the boot log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Left {
    /// Over `maxcpus=`.
    pub by_maxcpus: usize,
    /// Over [`MAX_CPUS`].
    pub by_room: usize,
    /// An APIC id listed twice (a firmware bug).
    pub duplicates: usize,
}

/// The boot CPU (`bsp`, which runs this) and then the others the MADT
/// lists (`madt`, enabled ones, in table order), up to `max` in all. The
/// boot CPU is always first, listed or not: it is running.
pub fn plan(madt: &[u32], bsp: u32, max: Option<usize>) -> (CpuList, Left) {
    let limit = max.unwrap_or(usize::MAX).clamp(1, MAX_CPUS);
    let mut cpus = CpuList::new();
    let mut left = Left::default();
    let _ = cpus.push(bsp);
    for (i, &id) in madt.iter().enumerate() {
        if id == bsp && !madt[..i].contains(&id) {
            continue;
        }
        if cpus.contains(&id) {
            left.duplicates += 1;
        } else if cpus.len() >= limit {
            if max.is_some_and(|m| m <= MAX_CPUS) {
                left.by_maxcpus += 1;
            } else {
                left.by_room += 1;
            }
        } else {
            let _ = cpus.push(id);
        }
    }
    (cpus, left)
}

/// The CPU number of APIC id `apic_id`, if it is one of `cpus`.
pub fn index_of(cpus: &[u32], apic_id: u32) -> Option<usize> {
    cpus.iter().position(|&id| id == apic_id)
}

/// A set of CPUs by number, bit n for CPU n (hv-core runs on at most
/// [`MAX_CPUS`] = 64).
pub type CpuMask = u64;

/// Every CPU.
pub const ALL_CPUS: CpuMask = u64::MAX;

/// The largest `xenctl_bitmap` hv-core reads or writes, in bytes (32768
/// CPUs, more than Xen's largest `NR_CPUS`): a longer one is refused.
pub const MAX_BITMAP_BYTES: usize = 4096;

/// The bytes a `xenctl_bitmap` of `nr_bits` bits occupies.
pub fn bitmap_bytes(nr_bits: u32) -> usize {
    (nr_bits as usize).div_ceil(8)
}

/// The CPUs a `xenctl_bitmap` names: `bytes` are its first bytes (up to
/// 8), `nr_bits` its length; bits at or past `nr_bits` do not count, and
/// CPUs past the mask's 64 do not exist here.
pub fn mask_from_bitmap(bytes: &[u8], nr_bits: u32) -> CpuMask {
    let mut word = [0u8; 8];
    let n = bytes.len().min(8);
    word[..n].copy_from_slice(&bytes[..n]);
    let mask = u64::from_le_bytes(word);
    if nr_bits >= 64 {
        mask
    } else {
        mask & ((1u64 << nr_bits) - 1)
    }
}

/// `mask` as the first (up to 8) bytes of a `xenctl_bitmap` of
/// `nr_bits` bits, bits past `nr_bits` clear; the bitmap's further bytes
/// (if any) are all zero.
pub fn mask_to_bitmap(mask: CpuMask, nr_bits: u32) -> ([u8; 8], usize) {
    let n = bitmap_bytes(nr_bits).min(8);
    let clipped = mask_from_bitmap(&mask.to_le_bytes(), nr_bits);
    (clipped.to_le_bytes(), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_clip_to_their_length_and_to_64_cpus() {
        assert_eq!(mask_from_bitmap(&[0xff], 3), 0b111);
        assert_eq!(mask_from_bitmap(&[0x0f, 0x01], 9), 0x10f);
        assert_eq!(mask_from_bitmap(&[0x0f, 0x01], 8), 0x0f);
        assert_eq!(mask_from_bitmap(&[], 64), 0);
        assert_eq!(mask_from_bitmap(&[0xff; 12], 96), u64::MAX);
        assert_eq!(mask_from_bitmap(&[0xff; 8], 0), 0);
        assert_eq!(bitmap_bytes(0), 0);
        assert_eq!(bitmap_bytes(1), 1);
        assert_eq!(bitmap_bytes(64), 8);
        assert_eq!(bitmap_bytes(65), 9);
        assert_eq!(mask_to_bitmap(0b1011, 2), ([0b11, 0, 0, 0, 0, 0, 0, 0], 1));
        assert_eq!(mask_to_bitmap(u64::MAX, 200).1, 8);
        assert_eq!(mask_to_bitmap(0x100, 12), ([0, 1, 0, 0, 0, 0, 0, 0], 2));
    }

    #[test]
    fn boot_cpu_first_then_table_order() {
        let (cpus, left) = plan(&[0, 1, 2, 3], 0, None);
        assert_eq!(cpus.as_slice(), [0, 1, 2, 3]);
        assert_eq!(left, Left::default());
        // Booted on APIC 2: it is CPU 0, the rest keep their order.
        let (cpus, _) = plan(&[0, 1, 2, 3], 2, None);
        assert_eq!(cpus.as_slice(), [2, 0, 1, 3]);
        assert_eq!(index_of(&cpus, 1), Some(2));
        assert_eq!(index_of(&cpus, 7), None);
    }

    #[test]
    fn maxcpus_limits_and_counts_what_it_left() {
        let (cpus, left) = plan(&[0, 1, 2, 3], 0, Some(2));
        assert_eq!(cpus.as_slice(), [0, 1]);
        assert_eq!(left.by_maxcpus, 2);
        let (cpus, left) = plan(&[0, 1], 0, Some(1));
        assert_eq!(cpus.as_slice(), [0]);
        assert_eq!(left.by_maxcpus, 1);
        // More than there are is all there are.
        let (cpus, left) = plan(&[0, 1], 0, Some(8));
        assert_eq!(cpus.len(), 2);
        assert_eq!(left, Left::default());
    }

    #[test]
    fn no_table_or_a_table_without_the_boot_cpu_still_runs_it() {
        assert_eq!(plan(&[], 5, None).0.as_slice(), [5]);
        assert_eq!(plan(&[1, 2], 5, None).0.as_slice(), [5, 1, 2]);
    }

    #[test]
    fn duplicates_are_started_once() {
        let (cpus, left) = plan(&[0, 1, 1, 0], 0, None);
        assert_eq!(cpus.as_slice(), [0, 1]);
        assert_eq!(left.duplicates, 2);
    }

    #[test]
    fn room_is_bounded() {
        let many: Vec<u32> = (0..100).collect();
        let (cpus, left) = plan(&many, 0, None);
        assert_eq!(cpus.len(), MAX_CPUS);
        assert_eq!(left.by_room, 100 - MAX_CPUS);
        let (_, left) = plan(&many, 0, Some(1000));
        assert_eq!(left.by_room, 100 - MAX_CPUS);
    }
}
