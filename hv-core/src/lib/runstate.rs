//! Per-vCPU run-state accounting (Xen's `vcpu_runstate_info`): the time a
//! vCPU spent running, runnable, blocked and offline. The scheduler moves
//! a vCPU between states; readers get the totals up to "now".

use abi::ops::RUNSTATE_OFFLINE;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runstate {
    /// `RUNSTATE_*`.
    pub state: usize,
    /// System time (ns) the current state began.
    pub entry: u64,
    /// Time spent in each state before the current stretch.
    pub time: [u64; 4],
}

impl Runstate {
    /// A vCPU that has never run: offline since `now`.
    pub const fn new(now: u64) -> Self {
        Self {
            state: RUNSTATE_OFFLINE,
            entry: now,
            time: [0; 4],
        }
    }

    /// Moves to `state` at `now`, charging the stretch that ends.
    pub fn enter(&mut self, state: usize, now: u64) {
        if state == self.state {
            return;
        }
        self.time[self.state] += now.saturating_sub(self.entry);
        self.state = state;
        self.entry = now;
    }

    /// The totals including the current stretch up to `now`.
    pub fn totals(&self, now: u64) -> [u64; 4] {
        let mut t = self.time;
        t[self.state] += now.saturating_sub(self.entry);
        t
    }
}

#[cfg(test)]
mod tests {
    use abi::ops::{RUNSTATE_BLOCKED, RUNSTATE_RUNNABLE, RUNSTATE_RUNNING};

    use super::*;

    #[test]
    fn each_stretch_is_charged_to_its_state() {
        let mut r = Runstate::new(100);
        r.enter(RUNSTATE_RUNNABLE, 150);
        r.enter(RUNSTATE_RUNNING, 170);
        r.enter(RUNSTATE_RUNNING, 180);
        r.enter(RUNSTATE_BLOCKED, 200);
        assert_eq!(r.time, [30, 20, 0, 50]);
        assert_eq!(r.totals(260), [30, 20, 60, 50]);
        assert_eq!(r.totals(260).iter().sum::<u64>(), 160);
    }
}
