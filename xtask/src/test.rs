//! `cargo xtask test`: the lint checks (one result line), host unit tests,
//! then every QEMU scenario, then one plain `N passed, N failed, N skipped`
//! line. Exits non-zero on any failure.
//! Xen 4.17 is fetched first if any scenario boots it.

use std::process::Command;

use tests::{Accel, Hypervisor, Run, Scenario, Verdict};

use crate::build::{build_target, root};
use crate::image::{self, ModuleFile};
use crate::qemu::{self, Machine};
use crate::{Failure, Result, setup};

#[cfg(test)]
mod result_lines {
    #[test]
    fn counts_cargo_result_lines() {
        let line =
            "ok. 29 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.08s";
        assert_eq!(super::count(line, "passed"), 29);
        assert_eq!(super::count(line, "failed"), 0);
        let line = "FAILED. 5 passed; 2 failed; 0 ignored";
        assert_eq!(super::count(line, "passed"), 5);
        assert_eq!(super::count(line, "failed"), 2);
    }
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
}

/// With a filter, only the scenarios whose names contain it, and no host
/// tests: the quick loop while working on one guest.
pub fn run(filter: Option<&str>) -> Result<i32> {
    setup::ensure_all()?;
    let runs: Vec<Run> = tests::runs()
        .into_iter()
        .filter(|r| filter.is_none_or(|f| r.name.contains(f)))
        .collect();
    if filter.is_some() && runs.is_empty() {
        return Err(Failure(format!(
            "no scenario name contains `{}`",
            filter.unwrap_or_default()
        )));
    }
    // Without Xen, its scenarios fail with the reason and the rest still run.
    let mut xen_available = true;
    if runs
        .iter()
        .any(|r| r.scenario.hypervisor == Hypervisor::Xen)
        && let Err(Failure(reason)) = setup::ensure_xen()
    {
        eprintln!("xtask: {reason}");
        xen_available = false;
    }
    let mut tally = Tally::default();
    if filter.is_none() {
        lint(&mut tally)?;
        host_tests(&mut tally)?;
    }
    // Scenarios would boot stale binaries after a failed build: none run,
    // but the run still ends with its tally line.
    if let Err(Failure(reason)) = build_target() {
        println!("FAIL build: {reason}");
        tally.failed += 1;
        return Ok(tally.report());
    }
    if filter.is_none() {
        image_size(&mut tally);
    }
    let kvm = qemu::hardware_virtualization();
    for (i, run) in runs.iter().enumerate() {
        let scenario = run.scenario;
        eprintln!(
            "xtask: scenario {}/{}: {} ({}, {:?}, {:?}, {} CPU{})",
            i + 1,
            runs.len(),
            run.name,
            scenario.hypervisor.tag(),
            scenario.firmware,
            scenario.accel,
            run.cpus,
            if run.cpus == 1 { "" } else { "s" }
        );
        if scenario.accel == Accel::Kvm && !kvm {
            println!(
                "SKIP {}: the CPU has no hardware virtualization (vmx/svm)",
                run.name
            );
            tally.skipped += 1;
            continue;
        }
        if scenario.hypervisor == Hypervisor::Xen && !xen_available {
            println!(
                "FAIL {}: Xen 4.17 could not be fetched (see above)",
                run.name
            );
            tally.failed += 1;
            continue;
        }
        match run_scenario(run) {
            Ok((Verdict::Pass, secs)) => {
                println!("PASS {} ({secs:.1} s)", run.name);
                tally.passed += 1;
            }
            Ok((Verdict::Skip(reason), _)) => {
                println!("SKIP {}: {reason}", run.name);
                tally.skipped += 1;
            }
            Ok((Verdict::Fail(reason), _)) | Err(Failure(reason)) => {
                println!("FAIL {}: {reason}", run.name);
                tally.failed += 1;
            }
        }
    }
    Ok(tally.report())
}

impl Tally {
    /// Prints the closing line; the exit status.
    fn report(&self) -> i32 {
        println!(
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        );
        if self.failed == 0 { 0 } else { 1 }
    }
}

/// The most bytes of hv-core's ELF that GRUB loads from the boot medium
/// (the file bytes of its loadable segments; zeroed memory not counted).
pub const IMAGE_LIMIT_BYTES: u64 = 300 * 1024;

/// hv-core's loaded image against [`IMAGE_LIMIT_BYTES`], as one result line.
fn image_size(tally: &mut Tally) {
    let path = crate::build::binary("hv-core");
    let loaded = std::fs::read(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|elf| crate::image::loaded_bytes(&elf));
    match loaded {
        Ok(n) if n <= IMAGE_LIMIT_BYTES => {
            println!(
                "PASS image-size ({} KiB loaded, at most {} KiB)",
                n / 1024,
                IMAGE_LIMIT_BYTES / 1024
            );
            tally.passed += 1;
        }
        Ok(n) => {
            println!(
                "FAIL image-size: hv-core loads {} KiB, more than {} KiB",
                n / 1024,
                IMAGE_LIMIT_BYTES / 1024
            );
            tally.failed += 1;
        }
        Err(why) => {
            println!("FAIL image-size: {why}");
            tally.failed += 1;
        }
    }
}

/// `cargo xtask lint`'s checks, as one result line.
fn lint(tally: &mut Tally) -> Result {
    let failed = crate::lint::failures()?;
    if failed.is_empty() {
        println!("PASS lint");
        tally.passed += 1;
    } else {
        println!("FAIL lint: {} (see above)", failed.join(", "));
        tally.failed += 1;
    }
    Ok(())
}

/// `cargo test --workspace` on the host, counted from its result lines.
fn host_tests(tally: &mut Tally) -> Result {
    eprintln!("xtask: host unit tests (cargo test --workspace)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root())
        .args(["test", "--workspace", "--color", "never"])
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (mut passed, mut failed) = (0, 0);
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("test result: ") {
            passed += count(rest, "passed");
            failed += count(rest, "failed");
        }
    }
    if !output.status.success() {
        print!("{stdout}");
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        // A build failure runs no test at all; still count it as a failure.
        failed = failed.max(1);
    }
    eprintln!("xtask: host unit tests: {passed} passed, {failed} failed");
    tally.passed += passed;
    tally.failed += failed;
    Ok(())
}

/// The number before `what` in `ok. 12 passed; 0 failed; ...`.
fn count(result: &str, what: &str) -> usize {
    result
        .split(['.', ';'])
        .find_map(|part| part.trim().strip_suffix(what))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Where a script stopped, replayed over the whole console: the step it
/// never took (a line whose prompt never came, or a wait never met).
fn stuck_at(script: &[String], console: &str) -> Option<String> {
    let mut typist = tests::Typist::new(script, tests::DOM0_PROMPT);
    // Fed a line at a time, as it came in, so waits look only at what
    // followed each typed line.
    let bytes = console.as_bytes();
    let ends = bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .map(|(i, _)| i + 1)
        .chain([bytes.len()]);
    for end in ends {
        while typist.poll(&bytes[..end]).is_some() {}
    }
    typist.pending().map(str::to_string)
}

/// Whether a scenario boots the crate `cargo xtask new-guest` makes.
fn uses_new_guest(scenario: &Scenario) -> bool {
    scenario
        .initial_domain
        .is_some_and(|d| d.kernel == tests::Kernel::NewGuest)
        || scenario
            .bundle_extra
            .iter()
            .any(|&(_, kernel)| kernel == tests::Kernel::NewGuest)
}

/// Boots one scenario and judges it; the verdict and the run's seconds.
fn run_scenario(run: &Run) -> Result<(Verdict, f64)> {
    let (scenario, cpus) = (run.scenario, run.cpus);
    let modules: Vec<ModuleFile> = scenario
        .modules
        .iter()
        .map(|m| ModuleFile {
            name: m.name.to_string(),
            contents: vec![0; m.size],
            cmdline: m.cmdline.to_string(),
        })
        .collect();
    if uses_new_guest(scenario) {
        crate::new_guest::prepare_scenario_image()?;
    }
    let bundle_extra: Vec<(String, std::path::PathBuf)> = scenario
        .bundle_extra
        .iter()
        .map(|&(name, kernel)| (name.to_string(), image::kernel_path(kernel)))
        .collect();
    let iso = image::boot_image(
        scenario.hypervisor,
        scenario.cmdline,
        scenario.initial_domain,
        modules,
        &bundle_extra,
        false,
    )?;
    let stop_on: Vec<&str> = scenario
        .hypervisor
        .terminal_lines()
        .iter()
        .map(|(line, _)| *line)
        .collect();
    let typed = tests::script(scenario.input);
    let outcome = Machine::new(&iso, scenario.firmware, scenario.accel)
        .cpus(cpus)
        .typing(&typed, tests::DOM0_PROMPT)
        .run_captured(scenario.timeout, &stop_on)?;
    let verdict = scenario.check(&outcome.console, &outcome.end);
    let secs = outcome.elapsed.as_secs_f64();
    if verdict != Verdict::Pass {
        eprintln!("---- console of {} ----", run.name);
        let lines: Vec<&str> = outcome.console.lines().collect();
        for line in &lines[lines.len().saturating_sub(60)..] {
            eprintln!("{line}");
        }
        eprintln!("---- ({secs:.1} s, {}) ----", outcome.end);
        if let Some(step) = stuck_at(&typed, &outcome.console) {
            eprintln!("---- the script did not get past `{step}` ----");
        }
    }
    Ok((verdict, secs))
}
