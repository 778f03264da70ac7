//! `cargo xtask bench`: boots the bench guest (`tests/guests/src/bin/bench.rs`)
//! as the initial domain on hv-core and on Xen 4.17 in one invocation,
//! collects its `BENCH <row> min_ns=<n> median_ns=<n> min_cycles=<n>
//! median_cycles=<n>` lines and prints one table: a row per measurement, a
//! column group per hypervisor, and the platform it ran on. Never part of
//! `cargo xtask test`.

use std::process::Command;
use std::time::Duration;

use tests::{Ending, Hypervisor, InitialDomain, Kernel, guest_text};

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

/// A named group of columns: one hypervisor's rows, in the guest's order.
pub struct Column<'a> {
    pub title: &'a str,
    pub rows: &'a [(String, Measurement)],
}

const FIELDS: [&str; 4] = ["min ns", "median ns", "min cycles", "median cycles"];

/// The table: one line per row name (in order of first appearance across
/// the groups), `-` where a group has no such row.
pub fn format_table(groups: &[Column]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for group in groups {
        for (name, _) in group.rows {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
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

/// `cargo xtask bench [--guest NAME]`.
pub fn run(args: &[String]) -> Result<i32> {
    let guest = match args {
        [] => DEFAULT_GUEST.to_string(),
        [flag, name] if flag == "--guest" => name.clone(),
        _ => return Err(Failure("usage: cargo xtask bench [--guest NAME]".into())),
    };
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
    let xen_title = format!("Xen {}", xen.version.split('+').next().unwrap_or("4.17"));
    let mut results = Vec::new();
    let mut clean = true;
    for host in [Hypervisor::HvCore, Hypervisor::Xen] {
        eprintln!("xtask: bench `{guest}` on {}", host.tag());
        let rows = bench_on(host, &guest, accel)?;
        clean &= rows.1;
        results.push((host, rows.0));
    }
    let groups: Vec<Column> = results
        .iter()
        .map(|(host, rows)| Column {
            title: match host {
                Hypervisor::HvCore => "hv-core",
                Hypervisor::Xen => &xen_title,
            },
            rows,
        })
        .collect();
    println!(
        "bench `{guest}`: host CPU {}, {} ({})",
        host_cpu(),
        qemu_version(),
        match accel {
            Accel::Tcg => "TCG",
            Accel::Kvm => "KVM",
        }
    );
    print!("{}", format_table(&groups));
    Ok(if clean { 0 } else { 1 })
}

/// Boots the bench guest on `host`: its rows, and whether the run was
/// clean (some rows, then power-off).
fn bench_on(
    host: Hypervisor,
    guest: &str,
    accel: Accel,
) -> Result<(Vec<(String, Measurement)>, bool)> {
    let cmdline = match host {
        Hypervisor::HvCore => "debug-exit=fatal",
        Hypervisor::Xen => "",
    };
    let domain = InitialDomain {
        kernel: Kernel::Guest(leak(guest)),
        cmdline: "",
    };
    let iso = image::boot_image(host, cmdline, Some(domain), Vec::new(), false)?;
    let stop_on: Vec<&str> = host.terminal_lines().iter().map(|(l, _)| *l).collect();
    let outcome = Machine::new(&iso, Firmware::Bios, accel).run_captured(TIMEOUT, &stop_on)?;
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
            "xtask: the bench guest on {} gave {} rows and {} ({}); its console:",
            host.tag(),
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
        "xtask: {} rows from {} in {:.1} s",
        rows.len(),
        host.tag(),
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
}
