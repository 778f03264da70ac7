//! The scheduler's choice, apart from the machinery that applies it (the
//! bin's `scheduler` module), so it can be tested on the host.
//!
//! Among runnable vCPUs: first one just woken from a wait, unless it has
//! run more than a slice beyond the least virtual runtime (so waking up
//! often buys no more than a fair share); else the least virtual runtime;
//! ties go to the lowest id (domain, then vCPU).

/// One runnable vCPU as the chooser sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The vCPU, packed so that lower ids win ties.
    pub id: u32,
    pub woken: bool,
    pub vruntime: u64,
}

/// The candidate to run, given the least virtual runtime among runnable
/// vCPUs at the previous decision (`floor`) and the slice length.
pub fn choose(
    candidates: impl IntoIterator<Item = Candidate>,
    floor: u64,
    slice: u64,
) -> Option<u32> {
    candidates
        .into_iter()
        .map(|c| {
            let boosted = c.woken && c.vruntime <= floor.saturating_add(slice);
            ((!boosted, c.vruntime, c.id), c.id)
        })
        .min_by_key(|(key, _)| *key)
        .map(|(_, id)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLICE: u64 = 10;

    fn c(id: u32, woken: bool, vruntime: u64) -> Candidate {
        Candidate {
            id,
            woken,
            vruntime,
        }
    }

    #[test]
    fn least_virtual_runtime_runs() {
        assert_eq!(
            choose([c(1, false, 50), c(2, false, 40)], 40, SLICE),
            Some(2)
        );
        assert_eq!(
            choose([c(1, false, 40), c(2, false, 40)], 40, SLICE),
            Some(1)
        );
        assert_eq!(choose([], 0, SLICE), None);
    }

    #[test]
    fn a_woken_vcpu_goes_first_unless_far_ahead() {
        assert_eq!(
            choose([c(1, false, 40), c(2, true, 45)], 40, SLICE),
            Some(2)
        );
        assert_eq!(
            choose([c(1, false, 40), c(2, true, 51)], 40, SLICE),
            Some(1)
        );
    }

    /// Two CPU-bound vCPUs and one that wakes every third slice for a
    /// tenth of a slice: the two share evenly, the waker always gets in.
    #[test]
    fn cpu_bound_vcpus_share_evenly() {
        let mut vr = [0u64; 3];
        let mut ran = [0u64; 3];
        let mut woken = false;
        let mut floor = 0;
        for step in 0..3000u64 {
            if step % 3 == 0 {
                woken = true;
                vr[2] = vr[2].max(floor);
            }
            let mut cands = vec![c(0, false, vr[0]), c(1, false, vr[1])];
            if woken {
                cands.push(c(2, true, vr[2]));
            }
            floor = floor.max(cands.iter().map(|c| c.vruntime).min().unwrap());
            let id = choose(cands, floor, SLICE).unwrap() as usize;
            let run = if id == 2 { 1 } else { SLICE };
            if id == 2 {
                woken = false;
            }
            vr[id] += run;
            ran[id] += run;
        }
        let (a, b) = (ran[0] as f64, ran[1] as f64);
        assert!((a - b).abs() / a.max(b) < 0.01, "{ran:?}");
        assert_eq!(ran[2], 1000, "the waker ran every time it woke");
    }
}
