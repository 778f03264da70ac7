//! `cargo xtask lint`: clippy on the host crates and on the bare-metal
//! ones (for `x86_64-unknown-none`, as they are built), every warning an
//! error, and `cargo fmt --check`. `cargo xtask test` runs the same checks
//! first, as one result line, so CI enforces them.
//!
//! The workspace's lints (`unsafe_op_in_unsafe_fn`,
//! `clippy::undocumented_unsafe_blocks`, ...) live in `Cargo.toml`; this
//! is what makes them bite.

use std::process::Command;

use crate::build::{self, root};
use crate::setup::TARGET;
use crate::{Failure, Result};

/// One check: what it is called and the cargo arguments that run it.
struct Check {
    name: &'static str,
    args: Vec<String>,
}

fn checks() -> Vec<Check> {
    let strings = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let deny = ["--", "-D", "warnings"];
    let mut bare_metal = strings(&["clippy", "--release", "--target", TARGET]);
    for krate in build::TARGET_CRATES {
        bare_metal.extend(strings(&["-p", krate]));
    }
    bare_metal.extend(strings(&deny));
    let mut examples = strings(&["clippy", "--release", "--target", TARGET, "-p"]);
    examples.push(build::EXAMPLE_GUESTS.to_string());
    examples.push("--target-dir".into());
    examples.push(build::examples_target_dir().display().to_string());
    examples.extend(strings(&deny));
    let mut host = strings(&["clippy", "--workspace", "--all-targets"]);
    host.extend(strings(&deny));
    vec![
        Check {
            name: "rustfmt",
            args: strings(&["fmt", "--all", "--check"]),
        },
        Check {
            name: "clippy (host)",
            args: host,
        },
        Check {
            name: "clippy (x86_64-unknown-none)",
            args: bare_metal,
        },
        Check {
            name: "clippy (example guests)",
            args: examples,
        },
    ]
}

/// Runs every check; the names of those that failed (their output is
/// printed as it comes).
pub fn failures() -> Result<Vec<&'static str>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut failed = Vec::new();
    for check in checks() {
        eprintln!(
            "xtask: lint: {} (cargo {})",
            check.name,
            check.args.join(" ")
        );
        let status = Command::new(&cargo)
            .current_dir(root())
            .args(&check.args)
            .status()?;
        if !status.success() {
            failed.push(check.name);
        }
    }
    Ok(failed)
}

/// `cargo xtask lint`: exit status 0 when everything is clean.
pub fn run() -> Result<i32> {
    let failed = failures()?;
    if failed.is_empty() {
        eprintln!("xtask: lint: clean");
        Ok(0)
    } else {
        Err(Failure(format!("lint: {} failed", failed.join(", "))))
    }
}
