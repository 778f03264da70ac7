//! `cargo xtask fuzz [--minutes N] [--secs N] [--seed S] [--trace-from N] [--only NR]`:
//! boots hv-core and dom0 under TCG (`-cpu max`, as the scenarios), has
//! dom0 create the canary and then the hypercall fuzzer, lets the fuzzer
//! run for its budget (default 2 minutes), and prints one verdict line
//! (see `tests::fuzz`). The seed is printed first; without `--seed` it
//! comes from the clock. Exits non-zero on failure.
//!
//! The whole console is kept in `target/fuzz-<seed>.log`; on a failure
//! its last lines are shown. When the fuzzer did not finish (hv-core
//! stopped, or the fuzzer was killed or hung), the same seed is run again
//! with the fuzzer printing every hypercall from its last progress count
//! on (`--trace-from`, straight to the serial line): the fuzzer's choices
//! depend only on the seed, so the replay shows the calls that led up to
//! the end, and they are quoted under the verdict.

use std::time::{SystemTime, UNIX_EPOCH};

use tests::fuzz::{self, Report};
use tests::{Ending, Hypervisor, InitialDomain, Kernel};

use crate::qemu::{Accel, Firmware, Machine, Outcome};
use crate::{Failure, Result, build, image, setup};

/// The default budget, long enough to reach the rarer paths of most
/// generators at the rate TCG allows, short enough to run often.
const DEFAULT_MINUTES: u64 = 2;

struct Options {
    secs: u64,
    seed: u64,
    trace_from: Option<u64>,
    /// `--only NR[.NR...]`: the fuzzer makes only these hypercalls.
    only: Option<String>,
    /// `--watch PAGE`: the fuzzer checks after every call that this
    /// scratch buffer page is still mapped, and prints its ring if not.
    watch: Option<u64>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut secs = DEFAULT_MINUTES * 60;
    let mut seed = None;
    let mut trace_from = None;
    let mut only = None;
    let mut watch = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number = |what: &str| -> Result<u64> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| Failure(format!("{arg} needs {what}")))
        };
        match arg.as_str() {
            "--minutes" => secs = number("a whole number of minutes")? * 60,
            "--secs" => secs = number("a number of seconds")?,
            "--seed" => seed = Some(number("a number")?),
            "--trace-from" => trace_from = Some(number("a hypercall count")?),
            "--watch" => watch = Some(number("a scratch page number")?),
            "--only" => {
                only = Some(
                    args.next()
                        .filter(|v| v.split('.').all(|n| n.parse::<u32>().is_ok()))
                        .cloned()
                        .ok_or_else(|| {
                            Failure("--only needs hypercall numbers (`1.14.26`)".into())
                        })?,
                )
            }
            other => return Err(Failure(format!("`fuzz`: unknown option `{other}`"))),
        }
    }
    if secs == 0 {
        return Err(Failure("the fuzzer needs at least a second".into()));
    }
    let seed = seed.unwrap_or_else(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        // Small enough to type back.
        (nanos ^ u64::from(std::process::id()) << 20) % 1_000_000_000
    });
    Ok(Options {
        secs,
        seed,
        trace_from,
        only,
        watch,
    })
}

/// One session: the console and how it ended.
fn session(options: &Options, trace_from: Option<u64>) -> Result<Outcome> {
    let domain = InitialDomain {
        kernel: Kernel::Dom0,
        cmdline: "",
    };
    let iso = image::boot_image(
        Hypervisor::HvCore,
        "debug-exit=fatal",
        Some(domain),
        Vec::new(),
        &[],
        false,
    )?;
    let extra = options
        .only
        .as_ref()
        .map_or(String::new(), |nr| format!("only={nr}"));
    let extra = match options.watch {
        Some(page) => format!("{extra} watch={page}").trim().to_string(),
        None => extra,
    };
    let script = fuzz::script(options.seed, options.secs, trace_from, &extra);
    Machine::new(&iso, Firmware::Bios, Accel::Tcg)
        .typing(&script, tests::DOM0_PROMPT)
        .run_captured(fuzz::timeout(options.secs), &[])
}

pub fn run(args: &[String]) -> Result<i32> {
    let options = parse(args)?;
    println!(
        "fuzz: seed {}, {} s (replay: cargo xtask fuzz --seed {} --secs {})",
        options.seed, options.secs, options.seed, options.secs
    );
    setup::ensure_all()?;
    build::build_target()?;
    let outcome = session(&options, options.trace_from)?;
    let report = Report::read(&outcome.console);
    let ending = Ending::of(Hypervisor::HvCore, &outcome.end);
    let (line, ok) = fuzz::verdict(&report, options.seed, ending, &outcome.end.to_string());
    let log = build::target_dir().join(format!("fuzz-{}.log", options.seed));
    std::fs::write(&log, &outcome.console)?;
    if !ok {
        eprintln!(
            "---- the console's last lines (all of it: {}) ----",
            log.display()
        );
        let lines: Vec<&str> = outcome.console.lines().collect();
        for l in &lines[lines.len().saturating_sub(40)..] {
            eprintln!("{l}");
        }
        eprintln!(
            "---- ({:.1} s, {}) ----",
            outcome.elapsed.as_secs_f64(),
            outcome.end
        );
        if report.done.is_none() && options.trace_from.is_none() {
            replay(&options, &report);
        }
    }
    println!("{line}");
    Ok(if ok { 0 } else { 1 })
}

/// Runs the seed again, tracing from the last progress count, and shows
/// the last calls the fuzzer announced before the run ended.
fn replay(options: &Options, first: &Report) {
    let from = first.last_progress.unwrap_or(0);
    eprintln!(
        "xtask: replaying seed {} with every hypercall from #{from} printed",
        options.seed
    );
    match session(options, Some(from)) {
        Ok(outcome) => {
            let log = build::target_dir().join(format!("fuzz-{}-replay.log", options.seed));
            if std::fs::write(&log, &outcome.console).is_ok() {
                eprintln!("xtask: the replay's console: {}", log.display());
            }
            let report = Report::read(&outcome.console);
            let traced: Vec<&String> = report
                .last_hypercalls
                .iter()
                .filter(|l| l.starts_with("trace "))
                .collect();
            if traced.is_empty() {
                eprintln!("xtask: the replay traced nothing ({})", outcome.end);
                return;
            }
            let same = report.done.is_none();
            eprintln!(
                "xtask: the replay {} (ended: {}); its last {} traced hypercalls:",
                if same {
                    "ended the same way"
                } else {
                    "finished (the failure did not repeat)"
                },
                outcome.end,
                traced.len()
            );
            for l in traced {
                eprintln!("  {l}");
            }
        }
        Err(Failure(why)) => eprintln!("xtask: the replay could not run: {why}"),
    }
}

#[cfg(test)]
mod options {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn minutes_seed_and_trace_parse() {
        let o = parse(&strings(&["--minutes", "3", "--seed", "42"])).unwrap();
        assert_eq!((o.secs, o.seed, o.trace_from), (180, 42, None));
        let o = parse(&strings(&[
            "--secs",
            "20",
            "--trace-from",
            "1000",
            "--seed",
            "1",
        ]))
        .unwrap();
        assert_eq!((o.secs, o.trace_from), (20, Some(1000)));
        assert_eq!(parse(&[]).unwrap().secs, 120);
        assert!(parse(&strings(&["--minutes"])).is_err());
        assert!(parse(&strings(&["--secs", "0"])).is_err());
        assert!(parse(&strings(&["--frob"])).is_err());
    }
}
