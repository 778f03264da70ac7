//! The one batch loop every guest-array hypercall runs through (multicall,
//! `mmu_update`, `mmuext_op`, grant-table ops, `memory_op` reservations):
//! an element at a time, one op of the hypercall's budget each, ending in
//! a way the caller turns into Xen's result or continuation.

use abi::Errno;

/// How a batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Every element from the start on was handled, or a handler said
    /// [`Step::Stop`]: `done` elements, counted from 0 (so a resumed
    /// batch's earlier passes are included).
    Complete { done: u64 },
    /// The budget ran out, or an element answered `-ERESTART` (it ran out
    /// part-way and must run again), before element `at` was done: the
    /// caller continues the hypercall from it.
    Preempted { at: u64 },
}

/// What an element's handler asks for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Next,
    /// End the batch here without an error (a reservation that ran out of
    /// memory: Xen's short count).
    Stop,
}

/// Runs `each` on elements `start..len`. `spend` is asked before each
/// element whether the budget allows one more op. The first error other
/// than `-ERESTART` ends the batch with it.
pub fn run(
    start: u64,
    len: u64,
    mut spend: impl FnMut() -> bool,
    mut each: impl FnMut(u64) -> Result<Step, Errno>,
) -> Result<Ended, Errno> {
    for i in start..len {
        let step = if spend() {
            each(i)
        } else {
            Err(Errno::Restart)
        };
        match step {
            Ok(Step::Next) => {}
            Ok(Step::Stop) => return Ok(Ended::Complete { done: i }),
            Err(Errno::Restart) => return Ok(Ended::Preempted { at: i }),
            Err(e) => return Err(e),
        }
    }
    Ok(Ended::Complete {
        done: len.max(start),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A budget of `n` ops.
    fn budget(n: u32) -> impl FnMut() -> bool {
        let mut left = n;
        move || {
            let ok = left > 0;
            left = left.saturating_sub(1);
            ok
        }
    }

    #[test]
    fn a_batch_within_its_budget_completes() {
        let mut seen = Vec::new();
        let ended = run(0, 5, budget(1024), |i| {
            seen.push(i);
            Ok(Step::Next)
        });
        assert_eq!(ended, Ok(Ended::Complete { done: 5 }));
        assert_eq!(seen, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn the_budget_preempts_at_the_first_element_not_done() {
        let mut done = 0;
        let ended = run(0, 1 << 40, budget(1024), |_| {
            done += 1;
            Ok(Step::Next)
        });
        assert_eq!(ended, Ok(Ended::Preempted { at: 1024 }));
        assert_eq!(done, 1024);
    }

    #[test]
    fn a_resumed_batch_starts_where_it_stopped_and_counts_from_zero() {
        let mut seen = Vec::new();
        let ended = run(1024, 1030, budget(1024), |i| {
            seen.push(i);
            Ok(Step::Next)
        });
        assert_eq!(ended, Ok(Ended::Complete { done: 1030 }));
        assert_eq!(seen, [1024, 1025, 1026, 1027, 1028, 1029]);
        // Resumed past the end (a guest's own continuation): nothing to do.
        assert_eq!(
            run(9, 3, budget(1), |_| unreachable!()),
            Ok(Ended::Complete { done: 9 })
        );
    }

    #[test]
    fn an_element_that_asks_to_restart_is_not_done() {
        let ended = run(0, 10, budget(1024), |i| {
            if i == 3 {
                Err(Errno::Restart)
            } else {
                Ok(Step::Next)
            }
        });
        assert_eq!(ended, Ok(Ended::Preempted { at: 3 }));
    }

    #[test]
    fn stop_is_a_short_count_and_errors_end_the_batch() {
        let stop = run(0, 10, budget(1024), |i| {
            Ok(if i == 4 { Step::Stop } else { Step::Next })
        });
        assert_eq!(stop, Ok(Ended::Complete { done: 4 }));
        let mut after = false;
        let error = run(0, 10, budget(1024), |i| {
            after |= i > 2;
            if i == 2 {
                Err(Errno::Fault)
            } else {
                Ok(Step::Next)
            }
        });
        assert_eq!(error, Err(Errno::Fault));
        assert!(!after, "no element runs after an error");
    }
}
