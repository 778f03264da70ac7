//! The scheduler's choices, apart from the machinery that applies them
//! (the bin's `scheduler` module), so they can be tested on the host.
//!
//! Every vCPU waits in one CPU's run queue. A CPU chooses among its own
//! queue's runnable vCPUs ([`choose`]): first one just woken from a wait,
//! unless it has run more than a slice beyond the least virtual runtime
//! (so waking up often buys no more than a fair share); else the least
//! virtual runtime; ties go to the lowest id (domain, then vCPU). With
//! nothing of its own it pulls the neediest vCPU waiting in another queue,
//! and it does so too when that one lags its own choice by more than a
//! slice ([`choose_across`]): virtual runtime is one clock for all queues,
//! so this keeps the shares fair across CPUs. A vCPU that becomes runnable
//! waits on the CPU it last ran on unless that CPU is busy and another it
//! may use is idle ([`place`]).

use crate::cpus::CpuMask;

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

/// What a CPU runs next, from its own queue's candidates (`local`) and the
/// runnable vCPUs waiting in other queues that it may run (`remote`): the
/// id, and whether it is pulled from another queue.
pub fn choose_across(
    local: &[Candidate],
    remote: &[Candidate],
    floor: u64,
    slice: u64,
) -> Option<(u32, bool)> {
    let neediest = remote.iter().min_by_key(|c| (c.vruntime, c.id));
    let Some(mine) = choose(local.iter().copied(), floor, slice) else {
        return neediest.map(|c| (c.id, true));
    };
    let mine = local
        .iter()
        .find(|c| c.id == mine)
        .expect("the choice is a candidate");
    let boosted = mine.woken && mine.vruntime <= floor.saturating_add(slice);
    match neediest {
        Some(other) if !boosted && other.vruntime.saturating_add(slice) < mine.vruntime => {
            Some((other.id, true))
        }
        _ => Some((mine.id, false)),
    }
}

/// The CPU whose queue a vCPU that becomes runnable should wait in: its
/// own (`home`, where it last ran) if that CPU is idle; else an idle CPU
/// it prefers (`soft`, its soft affinity), then any idle CPU it may use
/// (the first after `home` either way, so wake-ups spread); else its own,
/// if it may still run there; else the first it may use. `allowed` is its
/// hard affinity among the CPUs that are up (never empty), `idle` the
/// CPUs with nothing to run.
pub fn place(home: usize, allowed: CpuMask, soft: CpuMask, idle: CpuMask) -> usize {
    let bit = |cpu: usize| 1u64.checked_shl(cpu as u32).unwrap_or(0);
    let home_allowed = allowed & bit(home) != 0;
    if home_allowed && idle & bit(home) != 0 {
        return home;
    }
    let first_after_home = |set: CpuMask| {
        let after = set & !(bit(home) | bit(home).wrapping_sub(1));
        let pick = if after != 0 { after } else { set };
        pick.trailing_zeros() as usize
    };
    for free in [allowed & soft & idle, allowed & idle] {
        if free != 0 {
            return first_after_home(free);
        }
    }
    if home_allowed || allowed == 0 {
        home
    } else {
        allowed.trailing_zeros() as usize
    }
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

    #[test]
    fn a_cpu_runs_its_own_queue_first() {
        // Local 40 against a remote 45: the local one.
        assert_eq!(
            choose_across(&[c(1, false, 40)], &[c(2, false, 45)], 40, SLICE),
            Some((1, false))
        );
        // A remote one behind by no more than a slice stays where it is.
        assert_eq!(
            choose_across(&[c(1, false, 50)], &[c(2, false, 40)], 40, SLICE),
            Some((1, false))
        );
    }

    #[test]
    fn an_idle_cpu_pulls_the_neediest() {
        assert_eq!(
            choose_across(&[], &[c(3, false, 70), c(2, false, 60)], 60, SLICE),
            Some((2, true))
        );
        assert_eq!(choose_across(&[], &[], 0, SLICE), None);
    }

    #[test]
    fn a_vcpu_lagging_by_more_than_a_slice_is_pulled() {
        assert_eq!(
            choose_across(&[c(1, false, 100)], &[c(2, false, 80)], 80, SLICE),
            Some((2, true))
        );
        // Unless the local choice was just woken (its latency comes first).
        assert_eq!(
            choose_across(&[c(1, true, 85)], &[c(2, false, 70)], 80, SLICE),
            Some((1, false))
        );
    }

    /// Three CPU-bound vCPUs on two CPUs, two queued on CPU 0 at first:
    /// pulling keeps every share within a few percent of two thirds.
    #[test]
    fn three_vcpus_on_two_cpus_share_evenly() {
        let mut vr = [0u64; 3];
        let mut queue = [0usize, 0, 1];
        let mut running: [Option<usize>; 2] = [None, None];
        let mut floor = 0;
        for _ in 0..3000 {
            for cpu in 0..2 {
                // The CPU's slice ends: its vCPU goes back to its queue.
                if let Some(v) = running[cpu].take() {
                    vr[v] += SLICE;
                }
                let held = |v: usize| running.contains(&Some(v));
                let local: Vec<_> = (0..3)
                    .filter(|&v| queue[v] == cpu && !held(v))
                    .map(|v| c(v as u32, false, vr[v]))
                    .collect();
                let remote: Vec<_> = (0..3)
                    .filter(|&v| queue[v] != cpu && !held(v))
                    .map(|v| c(v as u32, false, vr[v]))
                    .collect();
                floor = floor.max(*vr.iter().min().unwrap());
                if let Some((id, _)) = choose_across(&local, &remote, floor, SLICE) {
                    queue[id as usize] = cpu;
                    running[cpu] = Some(id as usize);
                }
            }
        }
        let (least, most) = (*vr.iter().min().unwrap(), *vr.iter().max().unwrap());
        assert!((most - least) as f64 / most as f64 <= 0.02, "{vr:?}");
    }

    #[test]
    fn a_waking_vcpu_stays_home_unless_another_cpu_is_idle() {
        let all = 0b1111;
        // Home idle: home.
        assert_eq!(place(1, all, all, 0b0010), 1);
        // Home busy, CPU 3 idle: CPU 3.
        assert_eq!(place(1, all, all, 0b1000), 3);
        // Home busy, CPUs 0 and 2 idle: the first after home.
        assert_eq!(place(1, all, all, 0b0101), 2);
        assert_eq!(place(3, all, all, 0b0101), 0);
        // Nothing idle: home.
        assert_eq!(place(2, all, all, 0), 2);
    }

    #[test]
    fn placement_respects_hard_affinity() {
        let all = 0b1111;
        // Pinned to CPU 2, home 0 idle: CPU 2 (busy) all the same.
        assert_eq!(place(0, 0b0100, all, 0b0001), 2);
        // Pinned to CPUs 1-2, CPU 3 idle: not CPU 3.
        assert_eq!(place(1, 0b0110, all, 0b1000), 1);
        assert_eq!(place(0, 0b0110, all, 0b1000), 1);
    }

    #[test]
    fn an_idle_cpu_of_the_soft_affinity_comes_first() {
        let all = 0b1111;
        // Home busy, CPUs 2 and 3 idle, CPU 3 preferred: CPU 3.
        assert_eq!(place(1, all, 0b1000, 0b1100), 3);
        // No preferred CPU idle: any idle one.
        assert_eq!(place(1, all, 0b0001, 0b0100), 2);
        // Soft affinity never overrides hard.
        assert_eq!(place(1, 0b0110, 0b1000, 0b1100), 2);
    }
}
