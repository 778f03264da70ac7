//! The hypercall fuzz session: dom0 creates the canary (`domu-canary`) and
//! then the fuzzer (`domu-fuzz`), the fuzzer makes random hypercalls for
//! its time budget and exits, and the judge reads what everyone printed.
//! `cargo xtask fuzz` runs the same session with a seed and budget of the
//! user's choosing; `cargo xtask test` runs [`SCENARIO`], a fixed seed for
//! two minutes.
//!
//! A run passes when hv-core is alive (no `FATAL`, the machine powered
//! off as dom0 asked), the canary printed heartbeats and no `FAIL`, the
//! fuzzer finished its budget (it was not killed) and found no `BUG`, and
//! dom0 still answered `list` and `info` afterwards, listing the canary
//! alive. The script makes the canary check once more after the fuzzer
//! is gone (a `list` is typed after the fuzzer's exit, and the next step
//! waits for a canary line that comes after it).
//!
//! The parsing and the verdict line are pure and unit-tested here.

use std::time::Duration;

use crate::domains::{domu_text, free_memory_reports, list_tables};
use crate::{Accel, Ending, Firmware, InitialDomain, Judge, Kernel, Scenario, Step, line_matches};

use Step::{Type, WaitFor};

/// The domain names the session gives its two guests.
pub const CANARY: &str = "canary";
pub const FUZZER: &str = "fuzz";
/// The canary is created first on a fresh boot: domain 1.
pub const CANARY_ID: u32 = 1;

/// The fixed seed and budget of the `cargo xtask test` run.
pub const TEST_SEED: u64 = 20_240_601;
pub const TEST_SECS: u64 = 120;

/// The session's shell script: what `cargo xtask fuzz` types (and, with
/// the test's seed and budget, exactly what [`SCENARIO`] types).
pub fn script(seed: u64, secs: u64, trace_from: Option<u64>, extra: &str) -> Vec<String> {
    let mut trace = trace_from.map_or(String::new(), |n| format!(" trace={n}"));
    if !extra.is_empty() {
        trace = format!("{trace} {extra}");
    }
    vec![
        format!("create domu-canary name={CANARY} cmdline=\"seed={seed}\""),
        format!("wait:[{CANARY}] domu-canary: # KiB filled"),
        format!(
            "create domu-fuzz name={FUZZER} cmdline=\"seed={seed} secs={secs} peer={CANARY_ID}{trace}\""
        ),
        format!("wait:domain # ({FUZZER}) #"),
        "list".into(),
        format!("wait:[{CANARY}] domu-canary: #"),
        "info".into(),
        "poweroff".into(),
    ]
}

/// How long a session may take: the budget, boot and set-up, the
/// fuzzer's last stretch, and the canary's last check.
pub fn timeout(secs: u64) -> Duration {
    Duration::from_secs(secs + 60)
}

/// A two-minute run with a fixed seed, in `cargo xtask test`.
pub const SCENARIO: Scenario = Scenario {
    cmdline: "debug-exit=fatal",
    initial_domain: Some(InitialDomain {
        kernel: Kernel::Dom0,
        cmdline: "",
    }),
    input: &[
        Type("create domu-canary name=canary cmdline=\"seed=20240601\""),
        WaitFor("[canary] domu-canary: # KiB filled"),
        Type("create domu-fuzz name=fuzz cmdline=\"seed=20240601 secs=120 peer=1\""),
        WaitFor("domain # (fuzz) #"),
        Type("list"),
        WaitFor("[canary] domu-canary: #"),
        Type("info"),
        Type("poweroff"),
    ],
    timeout: Duration::from_secs(TEST_SECS + 30),
    judge: Judge::Shell {
        expect: &[],
        anywhere: &[],
        check: check_session,
        ending: Ending::PowerOff,
    },
    ..crate::boot("fuzz-hypercalls", Firmware::Bios, Accel::Tcg)
};

/// The scenario's judgement: every failure the console shows.
fn check_session(console: &str) -> Result<(), String> {
    let report = Report::read(console);
    match report.failures.as_slice() {
        [] => Ok(()),
        failures => Err(format!(
            "{}{}",
            failures.join("; "),
            report.last_hypercalls_text()
        )),
    }
}

/// What a fuzz session's console says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// The fuzzer's final count and seconds (`done:` line).
    pub done: Option<(u64, f64)>,
    /// The last progress count the fuzzer printed.
    pub last_progress: Option<u64>,
    pub canary_heartbeats: usize,
    /// The fuzzer's ring or trace lines, as printed (the last 32).
    pub last_hypercalls: Vec<String>,
    /// What went wrong, one phrase each; empty for a clean run.
    pub failures: Vec<String>,
}

/// The text after `domu-fuzz: ` on any line, whether it came through
/// dom0's console back-end or straight from `console_io`.
fn fuzzer_text(line: &str) -> Option<&str> {
    line.split_once("domu-fuzz: ")
        .map(|(_, rest)| rest.trim_end())
}

/// What the canary printed on a line (dom0's prompt may come first).
fn canary_text(line: &str) -> Option<&str> {
    domu_text(line, CANARY).or_else(|| {
        line.split_once(concat!("[", "canary", "] "))
            .map(|(_, rest)| rest.trim_end())
    })
}

impl Report {
    pub fn read(console: &str) -> Self {
        let mut r = Report::default();
        let lines: Vec<&str> = console.lines().collect();
        for line in &lines {
            if let Some(text) = fuzzer_text(line) {
                if let Some(rest) = text.strip_prefix("done: ") {
                    r.done = parse_done(rest);
                } else if let Some(n) = text
                    .strip_suffix(" hypercalls")
                    .and_then(|n| n.parse().ok())
                {
                    r.last_progress = Some(n);
                } else if text.starts_with("ring ") || text.starts_with("trace ") {
                    r.last_hypercalls.push(text.to_string());
                } else if text.starts_with("BUG: ") {
                    r.failures.push(format!("the fuzzer found a {text}"));
                }
            }
            if let Some(text) = canary_text(line) {
                if text.starts_with("domu-canary: intact after ") {
                    r.canary_heartbeats += 1;
                } else if let Some(why) = text.strip_prefix("domu-canary: FAIL: ") {
                    r.failures.push(format!("the canary was corrupted: {why}"));
                }
            }
            if line.contains("(hv) FATAL") {
                r.failures.push(format!("hv-core died: `{}`", line.trim()));
            }
            if line_matches(line, "(hv) ERROR: d# killed:") {
                r.failures
                    .push(format!("hv-core killed a domain: `{}`", line.trim()));
            }
        }
        let excess = r.last_hypercalls.len().saturating_sub(32);
        r.last_hypercalls.drain(..excess);
        r.judge_endings(console);
        r
    }

    fn judge_endings(&mut self, console: &str) {
        let ended = |name: &str| {
            console
                .lines()
                .find(|l| line_matches(l, &format!("domain # ({name}) #")) && !l.contains('['))
                .map(|l| l.trim().to_string())
        };
        match ended(FUZZER) {
            Some(line) if line.ends_with("exited") => {}
            Some(line) => self
                .failures
                .push(format!("the fuzzer did not exit cleanly: `{line}`")),
            None => self
                .failures
                .push("the fuzzer never ended (still running, or hung in a hypercall)".into()),
        }
        if self.done.is_none() {
            self.failures
                .push("the fuzzer never printed its `done:` line".into());
        }
        if let Some(line) = ended(CANARY) {
            self.failures.push(format!("the canary ended: `{line}`"));
        }
        if self.canary_heartbeats == 0 {
            self.failures
                .push("the canary printed no heartbeat (`intact after N checks`)".into());
        }
        match list_tables(console).last() {
            None => self
                .failures
                .push("dom0 never answered `list` after the fuzzer".into()),
            Some(rows) => {
                if !rows.iter().any(|r| r.id == 0 && r.name == "Domain-0") {
                    self.failures.push("`list` does not show Domain-0".into());
                }
                match rows.iter().find(|r| r.name == CANARY) {
                    None => self
                        .failures
                        .push("`list` no longer shows the canary".into()),
                    Some(row) if row.is_dead() => self
                        .failures
                        .push(format!("`list` shows the canary in state {}", row.state)),
                    Some(_) => {}
                }
            }
        }
        if free_memory_reports(console).is_empty() {
            self.failures
                .push("dom0 never answered `info` after the fuzzer".into());
        }
    }

    /// `; last hypercalls: a | b | ...` (at most 8, the latest), or nothing.
    pub fn last_hypercalls_text(&self) -> String {
        if self.last_hypercalls.is_empty() {
            return String::new();
        }
        let from = self.last_hypercalls.len().saturating_sub(8);
        format!(
            "; last hypercalls: {}",
            self.last_hypercalls[from..].join(" | ")
        )
    }
}

/// `<n> hypercalls in <s> s (seed <n>)`.
fn parse_done(text: &str) -> Option<(u64, f64)> {
    let (count, rest) = text.split_once(" hypercalls in ")?;
    let (secs, _) = rest.split_once(" s")?;
    Some((count.parse().ok()?, secs.parse().ok()?))
}

/// The one verdict line of `cargo xtask fuzz`, and whether it passed.
/// `ending` is how the machine stopped (`None`: killed at the timeout or
/// a QEMU error, described by `how`).
pub fn verdict(report: &Report, seed: u64, ending: Option<Ending>, how: &str) -> (String, bool) {
    let mut failures = report.failures.clone();
    match ending {
        Some(Ending::PowerOff) => {}
        Some(Ending::DebugExitFailure) => {
            if !failures.iter().any(|f| f.starts_with("hv-core died")) {
                failures.insert(0, "hv-core stopped with a fatal error".into());
            }
        }
        Some(other) => failures.insert(0, format!("the machine {}", other.describe())),
        None => failures.insert(0, format!("the run did not end: {how}")),
    }
    if failures.is_empty() {
        let (count, secs) = report.done.unwrap_or_default();
        let line = format!(
            "fuzz: {count} hypercalls in {:.1} min (seed {seed}): hv-core alive, canary intact ({} heartbeats), dom0 responsive",
            secs / 60.0,
            report.canary_heartbeats
        );
        return (line, true);
    }
    let progress = report
        .done
        .map(|(n, _)| n)
        .or(report.last_progress)
        .map_or(String::new(), |n| format!(" after about {n} hypercalls"));
    let trace = report
        .last_progress
        .map_or(String::new(), |n| format!(" --trace-from {n}"));
    let line = format!(
        "fuzz: FAILED (seed {seed}){progress}: {}{}; replay: cargo xtask fuzz --seed {seed}{trace}",
        failures.join("; "),
        report.last_hypercalls_text()
    );
    (line, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "\
(d0) created domain 1 (canary)
(d0) [canary] domu-canary: 8192 KiB filled from seed 7; checking
(d0) created domain 2 (fuzz)
(d0) [fuzz] domu-fuzz: seed 7, 120 s, d2 (peer d1), 20 own tables, 64 foreign frames
(d0) [canary] domu-canary: intact after 12 checks
(d0) [fuzz] domu-fuzz: 51200 hypercalls
(d0) [fuzz] domu-fuzz: 102400 hypercalls
(d0) [fuzz] domu-fuzz: done: 123456 hypercalls in 120.0 s (seed 7)
(hv) d2 shut down (poweroff)
(d0) domain 2 (fuzz) exited
(d0) dom0> list
(d0) Name ID Mem VCPUs State Time(s)
(d0) Domain-0 0 64 1 r----- 3.0
(d0) canary 1 16 1 -b---- 1.0
(d0) dom0> (d0) [canary] domu-canary: intact after 24 checks
(d0) info
(d0) free memory: 100000 pages
(d0) dom0> poweroff
(hv) d0 shut down (poweroff): powering off
";

    #[test]
    fn a_clean_session_passes_with_one_line() {
        let report = Report::read(CLEAN);
        assert_eq!(report.failures, Vec::<String>::new());
        assert_eq!(report.done, Some((123456, 120.0)));
        assert_eq!(report.last_progress, Some(102400));
        assert_eq!(report.canary_heartbeats, 2);
        let (line, ok) = verdict(&report, 7, Some(Ending::PowerOff), "");
        assert!(ok);
        assert_eq!(
            line,
            "fuzz: 123456 hypercalls in 2.0 min (seed 7): hv-core alive, canary intact (2 heartbeats), dom0 responsive"
        );
        assert_eq!(check_session(CLEAN), Ok(()));
    }

    #[test]
    fn a_fatal_error_fails_and_says_how_to_replay() {
        let console = CLEAN
            .split("(d0) [fuzz] domu-fuzz: done")
            .next()
            .unwrap()
            .to_string()
            + "(d2) domu-fuzz: ring #102401 MmuUpdate(1) 0x1 0x1 0x0 0x7ff0 0x0 -> -22\n\
               (hv) FATAL: page fault (#PF, vector 14) in hv-core on CPU 0 (APIC id 0)\n";
        let report = Report::read(&console);
        let (line, ok) = verdict(&report, 7, Some(Ending::DebugExitFailure), "");
        assert!(!ok);
        assert!(line.starts_with("fuzz: FAILED (seed 7) after about 102400 hypercalls: hv-core died: `(hv) FATAL: page fault"), "{line}");
        assert!(
            line.contains("last hypercalls: ring #102401 MmuUpdate(1)"),
            "{line}"
        );
        assert!(
            line.ends_with("replay: cargo xtask fuzz --seed 7 --trace-from 102400"),
            "{line}"
        );
        assert!(line.contains("the fuzzer never ended"), "{line}");
    }

    #[test]
    fn a_killed_fuzzer_a_corrupt_canary_and_a_bug_each_fail() {
        let killed = CLEAN
            .replace("(d0) domain 2 (fuzz) exited", "(hv) ERROR: d2v0 killed: page fault (#PF) at 0x0; RIP 0x1\n(d0) domain 2 (fuzz) crashed");
        let report = Report::read(&killed);
        assert!(
            report
                .failures
                .iter()
                .any(|f| f.contains("killed a domain"))
        );
        assert!(
            report
                .failures
                .iter()
                .any(|f| f.contains("did not exit cleanly"))
        );

        let corrupt = CLEAN.replace(
            "intact after 12 checks",
            "FAIL: pattern word 3 of frame 0x1234 (pfn 0x50) is 0x0, expected 0x1, after 3 checks",
        );
        let failures = Report::read(&corrupt).failures;
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].starts_with("the canary was corrupted: pattern word 3"));

        let bug = CLEAN.replace(
            "(d0) [fuzz] domu-fuzz: 51200 hypercalls",
            "(d0) [fuzz] domu-fuzz: BUG: mmu_update mapped another domain's frame (call #5, seed 7)",
        );
        assert!(check_session(&bug).unwrap_err().contains("BUG: mmu_update"));
    }

    #[test]
    fn dom0_must_answer_and_list_the_canary_alive() {
        let no_list = CLEAN.replace("(d0) Name ID Mem VCPUs State Time(s)\n", "");
        assert!(
            check_session(&no_list)
                .unwrap_err()
                .contains("never answered `list`")
        );
        let dead = CLEAN.replace("canary 1 16 1 -b----", "canary 1 16 1 ----c-");
        assert!(check_session(&dead).unwrap_err().contains("state ----c-"));
        let no_info = CLEAN.replace("(d0) free memory: 100000 pages\n", "");
        assert!(check_session(&no_info).unwrap_err().contains("`info`"));
    }

    #[test]
    fn the_scenario_types_the_session_script() {
        assert_eq!(
            crate::script(SCENARIO.input),
            script(TEST_SEED, TEST_SECS, None, "")
        );
        assert!(SCENARIO.timeout <= Duration::from_secs(150));
    }
}
