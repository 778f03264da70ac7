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

#[cfg(test)]
mod tests {
    use super::*;

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
