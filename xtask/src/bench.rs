//! `cargo xtask bench`: boots the bench guest (`tests/guests/src/bin/bench.rs`)
//! as the initial domain on hv-core and on Xen 4.17 in one invocation,
//! collects its `BENCH <row> min_ns=<n> median_ns=<n> min_cycles=<n>
//! median_cycles=<n>` lines and prints one table: a row per measurement, a
//! column group per hypervisor, and the platform it ran on. Never part of
//! `cargo xtask test`.
//!
//! Then a dom0 shell session, the same dom0 and guests on both hosts (our
//! toolstack uses only Xen's domctl/sysctl, memory, event-channel and
//! grant-table ABI), measures what needs many domains: the event-channel
//! round trip between two pingpong guests and their grant-copy throughput
//! beside memcpy (both as the guests report them), and the time from
//! typing `create hello` to hello's first line on the serial console
//! (host clock, see [`create_to_first_line`]).
//!
//! Last, the same on two CPUs ([`smp_session_script`]): the event-channel
//! round trip with ping and pong pinned to different CPUs, and the
//! aggregate throughput of one spin guest, then of two (their iterations
//! per second of host time, from the console lines' arrival times): the
//! scaling from one guest to two is what two CPUs buy.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tests::domains::domu_text;
use tests::{Ending, Hypervisor, InitialDomain, Kernel, WAIT_PREFIX, guest_text};

use crate::qemu::{self, Accel, Firmware, Machine};
use crate::{Failure, Result, build, image, setup};

/// The bench guest's bin name, unless `--guest` names another.
const DEFAULT_GUEST: &str = "bench";
const TIMEOUT: Duration = Duration::from_secs(900);

/// One row of one hypervisor's results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measurement {
    pub min_ns: u64,
    pub median_ns: u64,
    pub min_cycles: u64,
    pub median_cycles: u64,
}

/// `BENCH <row> min_ns=.. median_ns=.. min_cycles=.. median_cycles=..`
/// (the fields in any order, each exactly once); `None` for anything else.
pub fn parse_bench_line(text: &str) -> Option<(String, Measurement)> {
    let mut words = text.split_whitespace();
    if words.next()? != "BENCH" {
        return None;
    }
    let row = words.next()?;
    let mut fields = [None; 4];
    for word in words {
        let (key, value) = word.split_once('=')?;
        let slot = match key {
            "min_ns" => 0,
            "median_ns" => 1,
            "min_cycles" => 2,
            "median_cycles" => 3,
            _ => return None,
        };
        if fields[slot].replace(value.parse::<u64>().ok()?).is_some() {
            return None;
        }
    }
    let [
        Some(min_ns),
        Some(median_ns),
        Some(min_cycles),
        Some(median_cycles),
    ] = fields
    else {
        return None;
    };
    Some((
        row.to_string(),
        Measurement {
            min_ns,
            median_ns,
            min_cycles,
            median_cycles,
        },
    ))
}

/// One run's rows, in the guest's order.
pub type Rows = Vec<(String, Measurement)>;

/// A named group of columns: one hypervisor's rows, in the guest's order.
pub struct Column<'a> {
    pub title: &'a str,
    pub rows: &'a [(String, Measurement)],
}

const FIELDS: [&str; 4] = ["min ns", "median ns", "min cycles", "median cycles"];

/// The row names of several sets of rows, in order of first appearance.
fn row_names<'a>(sets: impl IntoIterator<Item = &'a [(String, Measurement)]>) -> Vec<&'a str> {
    let mut names: Vec<&str> = Vec::new();
    for rows in sets {
        for (name, _) in rows {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    names
}

/// The table: one line per row name (in order of first appearance across
/// the groups), `-` where a group has no such row.
pub fn format_table(groups: &[Column]) -> String {
    let names = row_names(groups.iter().map(|g| g.rows));
    let name_width = names.iter().map(|n| n.len()).chain([3]).max().unwrap_or(3);
    let widths = FIELDS.map(|field| field.len().max(8));
    // Cells are separated by one space; a group by " | ".
    let group_width = widths.iter().sum::<usize>() + widths.len() - 1;
    let cells = |values: [String; 4]| -> String {
        let padded: Vec<String> = values
            .iter()
            .zip(widths)
            .map(|(value, w)| format!("{value:>w$}"))
            .collect();
        padded.join(" ")
    };

    let mut lines = Vec::new();
    let mut line = format!("{:name_width$}", "");
    for group in groups {
        line += &format!(" | {:<group_width$}", group.title);
    }
    lines.push(line);
    let mut line = format!("{:name_width$}", "row");
    for _ in groups {
        line += " | ";
        line += &cells(FIELDS.map(str::to_string));
    }
    lines.push(line);
    let mut line = "-".repeat(name_width);
    for _ in groups {
        line += "-+-";
        line += &"-".repeat(group_width);
    }
    lines.push(line);
    for name in names {
        let mut line = format!("{name:name_width$}");
        for group in groups {
            let found = group.rows.iter().find(|(row, _)| row == name);
            let values = match found {
                Some((_, m)) => {
                    [m.min_ns, m.median_ns, m.min_cycles, m.median_cycles].map(|v| v.to_string())
                }
                None => ["-"; 4].map(str::to_string),
            };
            line += " | ";
            line += &cells(values);
        }
        lines.push(line);
    }
    let mut out = String::new();
    for line in lines {
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// `cargo xtask bench` options.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub guest: Option<String>,
    /// A git revision whose hv-core runs beside this tree's.
    pub baseline: Option<String>,
    pub rounds: Option<usize>,
}

const USAGE: &str = "usage: cargo xtask bench [--guest NAME] [--baseline REV] [--rounds N]";

/// Rounds of the bench guest on every host (interleaved) unless
/// `--rounds` says otherwise.
const DEFAULT_ROUNDS: usize = 3;

pub fn parse_options(args: &[String]) -> std::result::Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().cloned().ok_or(USAGE.to_string());
        match flag.as_str() {
            "--guest" => options.guest = Some(value()?),
            "--baseline" => options.baseline = Some(value()?),
            "--rounds" => {
                let n = value()?;
                let n = n
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or(format!("--rounds wants a number of at least 1, not `{n}`"))?;
                options.rounds = Some(n);
            }
            _ => return Err(USAGE.to_string()),
        }
    }
    Ok(options)
}

/// One column of the bench: a hypervisor, and for hv-core which ELF.
struct Host {
    title: String,
    kind: Hypervisor,
    /// Another tree's hv-core (the baseline); `None` is this tree's.
    hv_core: Option<PathBuf>,
}

/// `cargo xtask bench [--guest NAME] [--baseline REV] [--rounds N]`.
pub fn run(args: &[String]) -> Result<i32> {
    let options = parse_options(args).map_err(Failure)?;
    let guest = options.guest.unwrap_or_else(|| DEFAULT_GUEST.to_string());
    let rounds = options.rounds.unwrap_or(DEFAULT_ROUNDS);
    setup::ensure_all()?;
    let xen = setup::ensure_xen()?;
    build::build_target()?;
    if !build::binary(&guest).exists() {
        return Err(Failure(format!(
            "no bench guest `{guest}`: tests/guests/src/bin/{guest}.rs does not exist yet \
             (it prints `BENCH <row> min_ns=.. median_ns=.. min_cycles=.. median_cycles=..` lines, \
             then powers off)"
        )));
    }
    let accel = qemu::default_accel();
    let mut hosts = vec![Host {
        title: "hv-core".into(),
        kind: Hypervisor::HvCore,
        hv_core: None,
    }];
    if let Some(rev) = &options.baseline {
        let (label, elf) = baseline_hv_core(rev)?;
        hosts.push(Host {
            title: format!("hv-core@{label}"),
            kind: Hypervisor::HvCore,
            hv_core: Some(elf),
        });
    }
    hosts.push(Host {
        title: format!("Xen {}", xen.version.split('+').next().unwrap_or("4.17")),
        kind: Hypervisor::Xen,
        hv_core: None,
    });
    // Interleaved: each round runs every host once, the order turned
    // round each time (A B C, C B A, ...), so a machine that slows down
    // or speeds up during the run does not favour one column.
    // The contended rows (two CPUs) in the same rounds, right after each
    // host's micro run (only the default guest has them).
    let variants: &[(Variant, &str)] = if guest == DEFAULT_GUEST {
        &[
            (Variant::Micro, ""),
            (Variant::Contended, " contended (2 CPUs)"),
        ]
    } else {
        &[(Variant::Micro, "")]
    };
    // Per variant, per host, per round.
    let mut results: Vec<Vec<Vec<Rows>>> = vec![vec![Vec::new(); hosts.len()]; variants.len()];
    let mut clean = true;
    for round in 0..rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..hosts.len()).collect()
        } else {
            (0..hosts.len()).rev().collect()
        };
        for h in order {
            let host = &hosts[h];
            for (&(variant, label), per_host) in variants.iter().zip(&mut results) {
                eprintln!(
                    "xtask: bench `{guest}`{label} on {} (round {} of {rounds})",
                    host.title,
                    round + 1
                );
                let rows = bench_on(host, &guest, accel, variant)?;
                clean &= rows.1;
                per_host[h].push(rows.0);
            }
        }
    }
    println!(
        "bench `{guest}`: host CPU {}, {} ({}), {rounds} interleaved round{}: \
         min is the least of the rounds' minimums, median the median of their medians",
        host_cpu(),
        qemu_version(),
        match accel {
            Accel::Tcg => "TCG",
            Accel::Kvm => "KVM",
        },
        if rounds == 1 { "" } else { "s" }
    );
    print_rounds(&hosts, &results[0], rounds);
    if let Some(contended) = results.get(1) {
        println!();
        println!(
            "hypercall cost under concurrency: two CPUs, a domain of two vCPUs; \
             vCPU 0 times the call while vCPU 1 spins in the guest or makes the same call"
        );
        print_rounds(&hosts, contended, rounds);
    }
    // The same dom0 and guests run on every host: our toolstack uses only
    // Xen's domctl/sysctl and memory, event-channel and grant-table ABI.
    let mut domains_clean = true;
    let titles: Vec<&str> = hosts.iter().map(|h| h.title.as_str()).collect();
    let mut columns_of = |what: &str, rows: SessionRows| {
        hosts
            .iter()
            .map(|host| {
                eprintln!("xtask: {what} on {}", host.title);
                rows(host, accel).unwrap_or_else(|Failure(why)| {
                    eprintln!("xtask: {what} on {}: {why}", host.title);
                    domains_clean = false;
                    Vec::new()
                })
            })
            .collect::<Vec<_>>()
    };
    let columns = columns_of("many-domains session", domain_rows);
    println!();
    println!("many domains: a dom0 shell session, the same dom0 and guests on each host");
    print!("{}", format_value_table(&titles, &columns));
    let smp_columns = columns_of("two-CPU session", smp_rows);
    println!();
    println!("two CPUs (-smp 2): the same dom0 and guests on each host");
    print!("{}", format_value_table(&titles, &smp_columns));
    Ok(if clean && domains_clean { 0 } else { 1 })
}

/// One dom0 session's rows on one host (`domain_rows`, `smp_rows`).
type SessionRows = fn(&Host, Accel) -> Result<Vec<(String, String)>>;

/// Builds hv-core as it was at git revision `rev`, in a worktree of its
/// own under `target/baseline/`; returns the revision's short name and
/// the ELF. The bench guest, dom0 and the other guests stay this tree's,
/// so only the hypervisor differs between the two columns.
fn baseline_hv_core(rev: &str) -> Result<(String, PathBuf)> {
    let git = |args: &[&str]| -> Result<String> {
        let out = Command::new("git")
            .current_dir(build::root())
            .args(args)
            .output()?;
        if !out.status.success() {
            return Err(Failure(format!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--verify", &format!("{rev}^{{commit}}")])?;
    let label = git(&["rev-parse", "--short", &commit])?;
    let dir = build::target_dir().join("baseline").join(&label);
    if !dir.join("hv-core").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let _ = git(&["worktree", "prune"]);
        git(&[
            "worktree",
            "add",
            "--detach",
            dir.to_str()
                .ok_or(Failure("a non-UTF-8 target path".into()))?,
            &commit,
        ])?;
    }
    eprintln!(
        "xtask: building hv-core at {label} (baseline) in {}",
        dir.display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&dir)
        .env_remove("CARGO_TARGET_DIR")
        .args([
            "build",
            "--release",
            "--target",
            setup::TARGET,
            "-p",
            "hv-core",
        ])
        .status()?;
    if !status.success() {
        return Err(Failure(format!("building hv-core at {label} failed")));
    }
    let elf = dir
        .join("target")
        .join(setup::TARGET)
        .join("release")
        .join("hv-core");
    Ok((label, elf))
}

/// One host's rounds as one set of rows: per row, the least of the
/// rounds' minimums and the median of their medians (rows in the first
/// round's order; a row missing from a round is left out of that round).
pub fn combine(rounds: &[Rows]) -> Rows {
    row_names(rounds.iter().map(Vec::as_slice))
        .into_iter()
        .map(|name| {
            let found: Vec<&Measurement> = rounds
                .iter()
                .filter_map(|r| r.iter().find(|(n, _)| n == name).map(|(_, m)| m))
                .collect();
            let least = |f: fn(&Measurement) -> u64| found.iter().map(|m| f(m)).min().unwrap_or(0);
            let median = |f: fn(&Measurement) -> u64| {
                let mut v: Vec<u64> = found.iter().map(|m| f(m)).collect();
                v.sort_unstable();
                v.get((v.len().max(1) - 1) / 2).copied().unwrap_or(0)
            };
            (
                name.to_string(),
                Measurement {
                    min_ns: least(|m| m.min_ns),
                    median_ns: median(|m| m.median_ns),
                    min_cycles: least(|m| m.min_cycles),
                    median_cycles: median(|m| m.median_cycles),
                },
            )
        })
        .collect()
}

/// Per row and per other host: the ratio of the first host's `min_ns` to
/// the other's in each round, as `median [least - most]`.
pub fn format_ratio_table(first: &[Rows], others: &[(String, Vec<Rows>)]) -> String {
    let names: Vec<String> = combine(first).into_iter().map(|(n, _)| n).collect();
    let name_width = names.iter().map(String::len).chain([3]).max().unwrap_or(3);
    let cell = |name: &str, theirs: &[Rows]| -> String {
        let mut ratios: Vec<f64> = first
            .iter()
            .zip(theirs)
            .filter_map(|(a, b)| {
                let a = a.iter().find(|(n, _)| n == name)?.1.min_ns;
                let b = b.iter().find(|(n, _)| n == name)?.1.min_ns;
                (b > 0).then(|| a as f64 / b as f64)
            })
            .collect();
        if ratios.is_empty() {
            return "-".into();
        }
        ratios.sort_by(f64::total_cmp);
        let median = ratios[(ratios.len() - 1) / 2];
        format!(
            "{median:.2}x [{:.2} - {:.2}]",
            ratios[0],
            ratios[ratios.len() - 1]
        )
    };
    let widths: Vec<usize> = others.iter().map(|(t, _)| t.len().max(22)).collect();
    let mut out = format!("{:name_width$}", "row");
    for ((title, _), w) in others.iter().zip(&widths) {
        out += &format!(" | {title:<w$}");
    }
    out = out.trim_end().to_string() + "\n";
    out += &"-".repeat(name_width);
    for w in &widths {
        out += &format!("-+-{}", "-".repeat(*w));
    }
    out += "\n";
    for name in &names {
        let mut line = format!("{name:name_width$}");
        for ((_, theirs), w) in others.iter().zip(&widths) {
            line += &format!(" | {:<w$}", cell(name, theirs));
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// Sequential `create hello` runs timed in the session.
const CREATES: usize = 10;
const SESSION_TIMEOUT: Duration = Duration::from_secs(900);

/// The session's script: the pingpong pair, then `create hello` under
/// names `hello1..` one after another, each once the last has ended.
fn session_script() -> Vec<String> {
    let mut lines = vec![
        "create pingpong name=pong cmdline=\"peer=2\"".to_string(),
        "create pingpong name=ping cmdline=\"peer=1\"".to_string(),
        format!("{WAIT_PREFIX}domain # (ping) #"),
        format!("{WAIT_PREFIX}domain # (pong) #"),
    ];
    for k in 1..=CREATES {
        lines.push(format!("create hello name=hello{k}"));
        lines.push(format!("{WAIT_PREFIX}domain # (hello{k}) #"));
    }
    lines.push("poweroff".to_string());
    lines
}

/// The two-CPU session's script: the pingpong pair with pong pinned to
/// CPU 0 and ping to CPU 1, then one spin guest for [`SPIN_REPORTS`]
/// reports, then a second beside it for as many.
pub fn smp_session_script() -> Vec<String> {
    let mut lines = vec![
        "create pingpong name=pong cmdline=\"peer=2\"".to_string(),
        "vcpu-pin pong all 0".to_string(),
        "create pingpong name=ping cmdline=\"peer=1\"".to_string(),
        "vcpu-pin ping all 1".to_string(),
        format!("{WAIT_PREFIX}domain # (ping) #"),
        format!("{WAIT_PREFIX}domain # (pong) #"),
        "create spin name=s1".to_string(),
    ];
    lines.extend((0..SPIN_REPORTS).map(|_| format!("{WAIT_PREFIX}[s1] spin: ")));
    lines.push("create spin name=s2".to_string());
    lines.extend((0..SPIN_REPORTS).map(|_| format!("{WAIT_PREFIX}[s2] spin: ")));
    lines.push("poweroff".to_string());
    lines
}

/// Reports each spin phase waits for (spin reports once per second of its
/// own CPU time).
const SPIN_REPORTS: usize = 5;

/// Boots dom0 on two CPUs, runs [`smp_session_script`] and reads the rows.
fn smp_rows(host: &Host, accel: Accel) -> Result<Vec<(String, String)>> {
    let script = smp_session_script();
    dom0_session(host, accel, 2, "two-CPU session", &script, |outcome| {
        smp_session_rows(&outcome.console, &outcome.line_started)
    })
}

/// Boots dom0 on `host` with `cpus` CPUs, types `script` at its shell and
/// reads the rows with `rows`; on a failure (or a session that did not
/// end in power-off) the console's last lines go to stderr.
fn dom0_session(
    host: &Host,
    accel: Accel,
    cpus: u8,
    what: &str,
    script: &[String],
    rows: impl FnOnce(&qemu::Outcome) -> std::result::Result<Vec<(String, String)>, String>,
) -> Result<Vec<(String, String)>> {
    let kind = host.kind;
    let domain = InitialDomain {
        kernel: Kernel::Dom0,
        cmdline: "",
    };
    let cmdline = match kind {
        Hypervisor::HvCore => "debug-exit=fatal",
        Hypervisor::Xen => "",
    };
    let iso = image::boot_image_with(
        host.hv_core.as_deref(),
        kind,
        cmdline,
        Some(domain),
        Vec::new(),
        &[],
        false,
    )?;
    let stop_on: Vec<&str> = kind.terminal_lines().iter().map(|(l, _)| *l).collect();
    let outcome = Machine::new(&iso, Firmware::Bios, accel)
        .cpus(cpus)
        .typing(script, tests::DOM0_PROMPT)
        .run_captured(SESSION_TIMEOUT, &stop_on)?;
    eprintln!(
        "xtask: {what}: {} ({:.1} s)",
        outcome.end,
        outcome.elapsed.as_secs_f64()
    );
    let rows = rows(&outcome);
    if rows.is_err() || Ending::of(kind, &outcome.end) != Some(Ending::PowerOff) {
        let lines: Vec<&str> = outcome.console.lines().collect();
        for line in &lines[lines.len().saturating_sub(40)..] {
            eprintln!("{line}");
        }
    }
    rows.map_err(Failure)
}

/// `spin: <n> iterations`: the total so far.
pub fn spin_iterations(text: &str) -> Option<u64> {
    text.strip_prefix("spin: ")?
        .strip_suffix(" iterations")?
        .trim()
        .parse()
        .ok()
}

/// Iterations per second of host time between the first and the last of
/// `reports` (arrival time, running total); `None` with fewer than two.
fn iteration_rate(reports: &[(Duration, u64)]) -> Option<f64> {
    let (first, last) = (reports.first()?, reports.last()?);
    let secs = last.0.checked_sub(first.0)?.as_secs_f64();
    (secs > 0.0 && last.1 > first.1).then(|| (last.1 - first.1) as f64 / secs)
}

/// The rows of a finished two-CPU session: the pingpong round trip, then
/// the spin rates: s1's reports before s2's first, and each guest's after
/// it (summed).
pub fn smp_session_rows(
    console: &str,
    line_started: &[Duration],
) -> std::result::Result<Vec<(String, String)>, String> {
    let lines: Vec<&str> = console.lines().collect();
    let round_trip = lines
        .iter()
        .filter_map(|l| domu_text(l, "ping"))
        .find_map(round_trip_ns)
        .ok_or("ping printed no mean round-trip time")?;
    let reports = |name: &str| -> Vec<(usize, Duration, u64)> {
        lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let n = spin_iterations(domu_text(l, name)?)?;
                Some((i, *line_started.get(i)?, n))
            })
            .collect()
    };
    let (s1, s2) = (reports("s1"), reports("s2"));
    let split = s2.first().map(|r| r.0).ok_or("s2 printed no iterations")?;
    let before: Vec<_> = s1
        .iter()
        .filter(|r| r.0 < split)
        .map(|r| (r.1, r.2))
        .collect();
    let after = |all: &[(usize, Duration, u64)]| -> Vec<(Duration, u64)> {
        all.iter()
            .filter(|r| r.0 >= split)
            .map(|r| (r.1, r.2))
            .collect()
    };
    let one = iteration_rate(&before).ok_or("s1 alone: fewer than two reports")?;
    let two = iteration_rate(&after(&s1)).ok_or("s1 beside s2: fewer than two reports")?
        + iteration_rate(&after(&s2)).ok_or("s2: fewer than two reports")?;
    let millions = |rate: f64| format!("{:.1} M iterations/s", rate / 1e6);
    Ok(vec![
        (
            "evtchn-pingpong-round-trip (ping, pong on CPUs 1, 0)".to_string(),
            format!("mean {round_trip} ns"),
        ),
        ("spin, 1 guest (2 CPUs)".to_string(), millions(one)),
        ("spin, 2 guests (2 CPUs)".to_string(), millions(two)),
        (
            "spin scaling, 2 guests / 1".to_string(),
            format!("{:.2}x", two / one),
        ),
    ])
}

/// Boots dom0 on one CPU, runs [`session_script`] and reads the rows.
fn domain_rows(host: &Host, accel: Accel) -> Result<Vec<(String, String)>> {
    let script = session_script();
    dom0_session(host, accel, 1, "many-domains session", &script, |outcome| {
        session_rows(
            &outcome.console,
            &outcome.line_started,
            &script,
            &outcome.typed_at,
        )
    })
}

/// The rows of a finished session: `console` with the time each of its
/// lines began to arrive, and the script with the time each typed line
/// went out.
pub fn session_rows(
    console: &str,
    line_started: &[Duration],
    script: &[String],
    typed_at: &[Duration],
) -> std::result::Result<Vec<(String, String)>, String> {
    let mut rows = Vec::new();
    let lines: Vec<&str> = console.lines().collect();
    let round_trip = lines
        .iter()
        .filter_map(|l| domu_text(l, "ping"))
        .find_map(round_trip_ns)
        .ok_or("ping printed no mean round-trip time")?;
    rows.push((
        "evtchn-pingpong-round-trip".to_string(),
        format!("mean {round_trip} ns"),
    ));
    let (copy, memcpy) = lines
        .iter()
        .filter_map(|l| domu_text(l, "ping").or_else(|| domu_text(l, "pong")))
        .find_map(copy_rates)
        .ok_or("no pingpong guest printed `pingpong: grant copy <x> MB/s, memcpy <y> MB/s`")?;
    rows.push(("grant-copy".to_string(), format!("{copy} MB/s")));
    rows.push(("memcpy (same guest)".to_string(), format!("{memcpy} MB/s")));
    let (grub, prompt) = boot_times(&lines, line_started)?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    rows.push((
        "qemu-start-to-dom0-prompt".to_string(),
        format!("{:.0} ms", ms(prompt)),
    ));
    rows.push((
        "grub-to-dom0-prompt".to_string(),
        format!("{:.0} ms", ms(prompt.saturating_sub(grub))),
    ));
    let mut samples = create_to_first_line(&lines, line_started, script, typed_at)?;
    samples.sort();
    rows.push((
        "create-to-first-line".to_string(),
        format!(
            "min {:.0} ms, median {:.0} ms of {}",
            ms(samples[0]),
            ms(samples[(samples.len() - 1) / 2]),
            samples.len()
        ),
    ));
    Ok(rows)
}

/// For each `create hello name=helloK` of the script: from the moment it
/// was typed to the moment the first line the console back-end printed
/// for `helloK` began to arrive. Both are host times on the serial stream,
/// so the figure includes dom0 echoing the command, building the domain,
/// the guest's start and dom0's console back-end.
/// When (from QEMU's start) GRUB began to boot the hypervisor (its
/// ``Booting `...'`` line) and when dom0 first showed its prompt.
pub fn boot_times(
    lines: &[&str],
    line_started: &[Duration],
) -> std::result::Result<(Duration, Duration), String> {
    let at = |what: &str, found: Option<usize>| {
        found
            .and_then(|i| line_started.get(i).copied())
            .ok_or_else(|| format!("the console never showed {what}"))
    };
    let grub = at(
        "GRUB's `Booting` line",
        lines.iter().position(|l| l.contains("Booting `")),
    )?;
    let prompt = at(
        "dom0's prompt",
        lines.iter().position(|l| l.contains(tests::DOM0_PROMPT)),
    )?;
    Ok((grub, prompt))
}

pub fn create_to_first_line(
    lines: &[&str],
    line_started: &[Duration],
    script: &[String],
    typed_at: &[Duration],
) -> std::result::Result<Vec<Duration>, String> {
    let typed: Vec<&String> = script
        .iter()
        .filter(|l| !l.starts_with(WAIT_PREFIX))
        .collect();
    let mut samples = Vec::new();
    for (index, line) in typed.iter().enumerate() {
        let Some(name) = line
            .strip_prefix("create hello name=")
            .map(|n| n.trim().to_string())
        else {
            continue;
        };
        let sent = *typed_at
            .get(index)
            .ok_or_else(|| format!("`{line}` was never typed"))?;
        let first = lines
            .iter()
            .position(|l| domu_text(l, &name).is_some())
            .ok_or_else(|| format!("{name} printed nothing"))?;
        let arrived = *line_started
            .get(first)
            .ok_or_else(|| format!("no arrival time for console line {first}"))?;
        samples.push(
            arrived
                .checked_sub(sent)
                .ok_or_else(|| format!("{name}'s first line came before `{line}` was typed"))?,
        );
    }
    if samples.is_empty() {
        return Err("no `create hello` in the script".into());
    }
    Ok(samples)
}

/// The number before `unit` (a word of its own, or glued to the number:
/// `123 ns`, `123ns`) in `text`, as a float.
fn number_before(text: &str, unit: &str) -> Option<f64> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .collect();
    words.iter().enumerate().find_map(|(i, word)| {
        if *word == unit {
            words.get(i.checked_sub(1)?)?.parse().ok()
        } else {
            word.strip_suffix(unit)?.parse().ok()
        }
    })
}

/// pingpong's mean round trip: a `pingpong:` line about the round trip's
/// mean, in ns.
pub fn round_trip_ns(text: &str) -> Option<u64> {
    let rest = text.strip_prefix("pingpong: ")?;
    if !(rest.contains("mean") && rest.contains("round trip")) {
        return None;
    }
    number_before(rest, "ns").map(|n| n.round() as u64)
}

/// `pingpong: grant copy <x> MB/s, memcpy <y> MB/s`.
pub fn copy_rates(text: &str) -> Option<(f64, f64)> {
    let rest = text.strip_prefix("pingpong: grant copy ")?;
    let (copy, memcpy) = rest.split_once("memcpy")?;
    Some((number_before(copy, "MB/s")?, number_before(memcpy, "MB/s")?))
}

/// A table of text values: a row per name (in order of first appearance),
/// a column per title, `-` where a column has no such row.
pub fn format_value_table(titles: &[&str], columns: &[Vec<(String, String)>]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for (name, _) in columns.iter().flatten() {
        if !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    let value = |column: &[(String, String)], name: &str| -> String {
        column
            .iter()
            .find(|(n, _)| n == name)
            .map_or_else(|| "-".to_string(), |(_, v)| v.clone())
    };
    let name_width = names.iter().map(|n| n.len()).chain([3]).max().unwrap_or(3);
    let widths: Vec<usize> = titles
        .iter()
        .zip(columns)
        .map(|(title, column)| {
            names
                .iter()
                .map(|n| value(column, n).len())
                .chain([title.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut lines = Vec::new();
    let mut line = format!("{:name_width$}", "row");
    for (title, w) in titles.iter().zip(&widths) {
        line += &format!(" | {title:w$}");
    }
    lines.push(line);
    let mut line = "-".repeat(name_width);
    for w in &widths {
        line += &format!("-+-{}", "-".repeat(*w));
    }
    lines.push(line);
    for name in &names {
        let mut line = format!("{name:name_width$}");
        for (column, w) in columns.iter().zip(&widths) {
            line += &format!(" | {:w$}", value(column, name));
        }
        lines.push(line);
    }
    let mut out = String::new();
    for line in lines {
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// Boots the bench guest on `host`: its rows, and whether the run was
/// clean (some rows, then power-off).
/// Prints the table of `per_round` (each host's rounds, combined) and the
/// ratios of the first column to each other, round by round (a round's
/// columns ran minutes apart at most), with their spread.
fn print_rounds(hosts: &[Host], per_round: &[Vec<Rows>], rounds: usize) {
    let combined: Vec<Rows> = per_round.iter().map(|r| combine(r)).collect();
    let groups: Vec<Column> = hosts
        .iter()
        .zip(&combined)
        .map(|(host, rows)| Column {
            title: &host.title,
            rows,
        })
        .collect();
    print!("{}", format_table(&groups));
    let pairs: Vec<(String, Vec<Rows>)> = hosts[1..]
        .iter()
        .zip(&per_round[1..])
        .map(|(host, rounds)| (format!("hv-core / {}", host.title), rounds.clone()))
        .collect();
    println!();
    println!("ratios of the rounds' min ns: median [least - most] over {rounds} rounds");
    print!("{}", format_ratio_table(&per_round[0], &pairs));
}

/// How the bench guest runs: the micro rows on one CPU, or the
/// `contended` rows (a hypercall's cost while the domain's other vCPU,
/// on the other CPU, spins or makes the same call) on two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Micro,
    Contended,
}

fn bench_on(
    host: &Host,
    guest: &str,
    accel: Accel,
    variant: Variant,
) -> Result<(Vec<(String, Measurement)>, bool)> {
    let hv_core = host.hv_core.as_deref();
    let title = &host.title;
    let host = host.kind;
    let (cmdline, guest_cmdline, cpus) = match (host, variant) {
        (Hypervisor::HvCore, Variant::Micro) => ("debug-exit=fatal", "", 1),
        (Hypervisor::Xen, Variant::Micro) => ("", "", 1),
        (Hypervisor::HvCore, Variant::Contended) => {
            ("debug-exit=fatal dom0_max_vcpus=2", "contended", 2)
        }
        (Hypervisor::Xen, Variant::Contended) => ("dom0_max_vcpus=2", "contended", 2),
    };
    let domain = InitialDomain {
        kernel: Kernel::Guest(leak(guest)),
        cmdline: guest_cmdline,
    };
    let iso = image::boot_image_with(hv_core, host, cmdline, Some(domain), Vec::new(), &[], false)?;
    let stop_on: Vec<&str> = host.terminal_lines().iter().map(|(l, _)| *l).collect();
    let outcome = Machine::new(&iso, Firmware::Bios, accel)
        .cpus(cpus)
        .run_captured(TIMEOUT, &stop_on)?;
    let mut rows = Vec::new();
    for text in outcome.console.lines().filter_map(|l| guest_text(host, l)) {
        match parse_bench_line(text) {
            Some(row) => rows.push(row),
            None if text.starts_with("BENCH ") => {
                eprintln!("xtask: ignoring a malformed line: {text}")
            }
            None => {}
        }
    }
    let powered_off = Ending::of(host, &outcome.end) == Some(Ending::PowerOff);
    let clean = powered_off && !rows.is_empty();
    if !clean {
        eprintln!(
            "xtask: the bench guest on {title} gave {} rows and {} ({}); its console:",
            rows.len(),
            if powered_off {
                "powered off"
            } else {
                "did not power off"
            },
            outcome.end
        );
        let lines: Vec<&str> = outcome.console.lines().collect();
        for line in &lines[lines.len().saturating_sub(40)..] {
            eprintln!("{line}");
        }
    }
    eprintln!(
        "xtask: {} rows from {title} in {:.1} s",
        rows.len(),
        outcome.elapsed.as_secs_f64()
    );
    Ok((rows, clean))
}

/// `Kernel::Guest` holds a `&'static str` (scenario data is static); the
/// bench names its guest at run time, once.
fn leak(name: &str) -> &'static str {
    Box::leak(name.to_string().into_boxed_str())
}

fn host_cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn qemu_version() -> String {
    Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout).lines().next().map(|l| {
                l.replace("QEMU emulator version", "QEMU")
                    .trim()
                    .to_string()
            })
        })
        .unwrap_or_else(|| "QEMU (version unknown)".into())
}

#[cfg(test)]
mod many_domains {
    use super::*;

    #[test]
    fn pingpong_lines_parse() {
        assert_eq!(
            round_trip_ns("pingpong: 100000 round trips, mean round trip 23456 ns"),
            Some(23456)
        );
        assert_eq!(
            round_trip_ns("pingpong: mean round trip: 1234.6ns over 100000"),
            Some(1235)
        );
        assert_eq!(
            round_trip_ns("pingpong: 100000 round trips, all payloads checked"),
            None
        );
        assert_eq!(
            copy_rates("pingpong: grant copy 85.5 MB/s, memcpy 912 MB/s"),
            Some((85.5, 912.0))
        );
        assert_eq!(copy_rates("pingpong: grant copy fast"), None);
    }

    fn secs(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn boot_times_are_grub_and_the_first_prompt() {
        let lines = [
            "noise",
            "  Booting `hv-core'",
            "(hv) x",
            "(d0) dom0> list",
            "(d0) dom0> ",
        ];
        let at: Vec<Duration> = [5, 300, 400, 1250, 1300]
            .iter()
            .map(|&ms| Duration::from_millis(ms))
            .collect();
        assert_eq!(
            super::boot_times(&lines, &at),
            Ok((Duration::from_millis(300), Duration::from_millis(1250)))
        );
        assert!(super::boot_times(&lines[2..], &at[2..]).is_err());
    }

    #[test]
    fn create_to_first_line_pairs_each_create_with_its_guest() {
        let script: Vec<String> = [
            "create pingpong name=pong",
            "wait:x",
            "create hello name=hello1",
            "wait:domain # (hello1) #",
            "create hello name=hello2",
            "poweroff",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let console = "(d0) dom0> create hello name=hello1\n\
                       (d0) [hello1] Hello\n\
                       (d0) [hello1] more\n\
                       (d0) dom0> create hello name=hello2\n\
                       (d0) [hello2] Hello\n";
        let lines: Vec<&str> = console.lines().collect();
        let started = [secs(100), secs(350), secs(360), secs(400), secs(900)];
        let typed = [secs(10), secs(90), secs(390), secs(1000)];
        assert_eq!(
            create_to_first_line(&lines, &started, &script, &typed),
            Ok(vec![secs(260), secs(510)])
        );
        let err = create_to_first_line(&lines[..3], &started, &script, &typed).unwrap_err();
        assert!(err.contains("hello2 printed nothing"), "{err}");
    }

    #[test]
    fn the_two_cpu_session_reads_round_trip_and_spin_rates() {
        let console = "\
(d0) [ping] pingpong: mean round trip 50000 ns over 1000 rounds
(d0) [s1] spin: 1000000 iterations
(d0) [s1] spin: 2000000 iterations
(d0) [s1] spin: 3000000 iterations
(d0) [s2] spin: 1000000 iterations
(d0) [s1] spin: 4000000 iterations
(d0) [s2] spin: 2000000 iterations
(d0) [s1] spin: 5000000 iterations
(d0) [s2] spin: 3000000 iterations
";
        let at = [0, 10, 11, 12, 20, 21, 21, 22, 22];
        let started: Vec<Duration> = at.iter().map(|&s| secs(s * 1000)).collect();
        let rows = smp_session_rows(console, &started).unwrap();
        let value = |name: &str| {
            rows.iter()
                .find(|r| r.0.starts_with(name))
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(value("evtchn-pingpong"), "mean 50000 ns");
        // s1 alone: 2 M in 2 s; then s1 1 M/s (21 to 22 s) and s2 2 M in 2 s.
        assert_eq!(value("spin, 1 guest"), "1.0 M iterations/s");
        assert_eq!(value("spin, 2 guests"), "2.0 M iterations/s");
        assert_eq!(value("spin scaling"), "2.00x");
        assert!(smp_session_rows("(d0) [s1] spin: 5 iterations\n", &started).is_err());
    }

    #[test]
    fn spin_reports_parse() {
        assert_eq!(spin_iterations("spin: 1234 iterations"), Some(1234));
        assert_eq!(spin_iterations("spin: spinning on 2 vCPUs"), None);
    }

    #[test]
    fn value_tables_line_up_with_a_dash_for_missing_rows() {
        let hv = vec![
            ("grant-copy".to_string(), "85 MB/s".to_string()),
            ("create-to-first-line".to_string(), "min 1 ms".to_string()),
        ];
        let xen = vec![("grant-copy".to_string(), "1152 MB/s".to_string())];
        let table = format_value_table(&["hv-core", "Xen 4.17.7"], &[hv, xen]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        let bars = |line: &str| -> Vec<usize> {
            line.char_indices()
                .filter(|&(_, c)| c == '|' || c == '+')
                .map(|(i, _)| i)
                .collect()
        };
        assert!(lines.iter().all(|l| bars(l) == bars(lines[0])), "{table}");
        assert!(
            lines[2].contains("85 MB/s") && lines[2].contains("1152 MB/s"),
            "{table}"
        );
        assert!(lines[3].trim_end().ends_with("| -"), "{table}");
    }
}

#[cfg(test)]
mod parsing_and_table {
    use super::*;

    fn m(min_ns: u64, median_ns: u64, min_cycles: u64, median_cycles: u64) -> Measurement {
        Measurement {
            min_ns,
            median_ns,
            min_cycles,
            median_cycles,
        }
    }

    #[test]
    fn a_bench_line_parses_with_fields_in_any_order() {
        assert_eq!(
            parse_bench_line(
                "BENCH null-hypercall min_ns=120 median_ns=130 min_cycles=312 median_cycles=338"
            ),
            Some(("null-hypercall".into(), m(120, 130, 312, 338)))
        );
        assert_eq!(
            parse_bench_line("BENCH x median_cycles=4 min_cycles=3 median_ns=2 min_ns=1"),
            Some(("x".into(), m(1, 2, 3, 4)))
        );
    }

    #[test]
    fn malformed_bench_lines_are_refused() {
        for line in [
            "BENCH",
            "BENCH x",
            "BENCH x min_ns=1 median_ns=2 min_cycles=3",
            "BENCH x min_ns=1 median_ns=2 min_cycles=3 median_cycles=four",
            "BENCH x min_ns=1 min_ns=1 median_ns=2 min_cycles=3 median_cycles=4",
            "BENCH x min_ns=1 median_ns=2 min_cycles=3 median_cycles=4 max_ns=9",
            "BENCHMARK x min_ns=1 median_ns=2 min_cycles=3 median_cycles=4",
            "PASS bench",
        ] {
            assert_eq!(parse_bench_line(line), None, "{line}");
        }
    }

    #[test]
    fn the_table_has_a_row_per_name_and_a_group_per_host() {
        let hv = vec![
            ("null-hypercall".to_string(), m(120, 130, 312, 338)),
            ("page-fault".to_string(), m(900, 950, 2340, 2470)),
        ];
        let xen = vec![
            ("null-hypercall".to_string(), m(410, 420, 1066, 1092)),
            ("event-send".to_string(), m(1, 2, 3, 4)),
        ];
        let table = format_table(&[
            Column {
                title: "hv-core",
                rows: &hv,
            },
            Column {
                title: "Xen 4.17.7",
                rows: &xen,
            },
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 6, "{table}");
        assert!(
            lines[0].contains("| hv-core") && lines[0].contains("| Xen 4.17.7"),
            "{table}"
        );
        assert_eq!(lines[1].matches("median ns").count(), 2, "{table}");
        let row = |name: &str| -> Vec<String> {
            lines
                .iter()
                .find(|l| l.starts_with(name))
                .unwrap()
                .split_whitespace()
                .filter(|w| *w != "|")
                .map(str::to_string)
                .collect()
        };
        assert_eq!(
            row("null-hypercall"),
            [
                "null-hypercall",
                "120",
                "130",
                "312",
                "338",
                "410",
                "420",
                "1066",
                "1092"
            ]
        );
        assert_eq!(
            row("page-fault"),
            [
                "page-fault",
                "900",
                "950",
                "2340",
                "2470",
                "-",
                "-",
                "-",
                "-"
            ]
        );
        assert_eq!(
            row("event-send"),
            ["event-send", "-", "-", "-", "-", "1", "2", "3", "4"]
        );
        // The group separators line up on every line.
        let bars = |line: &str| -> Vec<usize> {
            line.char_indices()
                .filter(|&(_, c)| c == '|' || c == '+')
                .map(|(i, _)| i)
                .collect()
        };
        assert!(lines.iter().all(|l| bars(l) == bars(lines[1])), "{table}");
    }

    #[test]
    fn options_parse_and_bad_ones_are_refused() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_options(&[]), Ok(Options::default()));
        assert_eq!(
            parse_options(&args(&["--baseline", "HEAD~3", "--rounds", "5"])),
            Ok(Options {
                guest: None,
                baseline: Some("HEAD~3".into()),
                rounds: Some(5),
            })
        );
        assert!(parse_options(&args(&["--rounds", "0"])).is_err());
        assert!(parse_options(&args(&["--rounds"])).is_err());
        assert!(parse_options(&args(&["--baseline"])).is_err());
        assert!(parse_options(&args(&["--fast"])).is_err());
    }

    #[test]
    fn rounds_combine_to_the_least_minimum_and_the_median_median() {
        let rounds = vec![
            vec![
                ("a".to_string(), m(10, 20, 30, 40)),
                ("b".to_string(), m(5, 6, 7, 8)),
            ],
            vec![("a".to_string(), m(12, 15, 29, 50))],
            vec![("a".to_string(), m(11, 30, 31, 45))],
        ];
        let combined = combine(&rounds);
        assert_eq!(combined[0], ("a".to_string(), m(10, 20, 29, 45)));
        // A row only one round has keeps that round's numbers.
        assert_eq!(combined[1], ("b".to_string(), m(5, 6, 7, 8)));
    }

    #[test]
    fn ratios_pair_the_rounds_and_show_their_spread() {
        let ours = vec![
            vec![("a".to_string(), m(100, 0, 0, 0))],
            vec![("a".to_string(), m(120, 0, 0, 0))],
            vec![("a".to_string(), m(90, 0, 0, 0))],
        ];
        let theirs = vec![
            vec![("a".to_string(), m(100, 0, 0, 0))],
            vec![("a".to_string(), m(60, 0, 0, 0))],
            vec![("a".to_string(), m(100, 0, 0, 0))],
        ];
        let table = format_ratio_table(&ours, &[("hv-core / Xen".to_string(), theirs)]);
        // Round by round: 1.00, 2.00, 0.90; the median is 1.00.
        assert!(table.contains("1.00x [0.90 - 2.00]"), "{table}");
        assert!(table.lines().next().unwrap().contains("hv-core / Xen"));
    }
}
