//! `cargo xtask doc`: the API documentation of the SDK and of `abi`, as a
//! guest author reads it (`cargo doc` for `x86_64-unknown-none`), with
//! every rustdoc warning (a broken intra-doc link, ...) an error.
//!
//! The crates do not yet `#![warn(missing_docs)]` (not every file is
//! documented); instead one line per crate counts the public items that
//! still lack a doc comment, so progress shows.

use std::process::Command;

use crate::build::root;
use crate::setup::TARGET;
use crate::{Failure, Result};

/// The crates documented: the SDK and the ABI it is written against.
const CRATES: &[&str] = &["pv-guest-sdk", "abi"];

/// `cargo xtask doc`: builds the docs, warnings denied; prints the SDK's
/// index page last.
pub fn run() -> Result<i32> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args: Vec<String> = ["doc", "--no-deps", "--target", TARGET]
        .iter()
        .map(|a| a.to_string())
        .collect();
    for krate in CRATES {
        args.push("-p".into());
        args.push(krate.to_string());
    }
    eprintln!(
        "xtask: doc: RUSTDOCFLAGS=\"-D warnings\" cargo {}",
        args.join(" ")
    );
    let status = Command::new(&cargo)
        .current_dir(root())
        .env("RUSTDOCFLAGS", "-D warnings")
        .args(&args)
        .status()?;
    // The count shows either way: progress is worth seeing while a broken
    // link still fails the build.
    let counts = CRATES
        .iter()
        .map(|krate| missing_docs(&cargo, krate).map(|n| format!("{krate} {n}")))
        .collect::<Result<Vec<_>>>()?;
    eprintln!("xtask: doc: items missing docs: {}", counts.join(", "));
    if !status.success() {
        return Err(Failure(
            "doc: cargo doc failed (rustdoc warnings are errors)".into(),
        ));
    }
    let index = root()
        .join("target")
        .join(TARGET)
        .join("doc/pv_guest_sdk/index.html");
    println!("{}", index.display());
    Ok(0)
}

/// How many items of `krate` `-W missing_docs` reports (a build for the
/// bare-metal target, as the crates are built).
fn missing_docs(cargo: &str, krate: &str) -> Result<usize> {
    let output = Command::new(cargo)
        .current_dir(root())
        .args(["rustc", "--release", "--target", TARGET, "-p", krate])
        .args(["--", "-W", "missing_docs"])
        .output()?;
    if !output.status.success() {
        return Err(Failure(format!(
            "doc: counting {krate}'s missing docs: cargo rustc failed\n{}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(count_missing(&String::from_utf8_lossy(&output.stderr)))
}

/// The number of `missing documentation` warnings in rustc's output.
fn count_missing(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|line| line.starts_with("warning: missing documentation"))
        .count()
}

#[cfg(test)]
mod tests {
    use super::count_missing;

    #[test]
    fn counts_only_missing_documentation_warnings() {
        let stderr = "warning: missing documentation for a struct\n  --> src/a.rs:1:1\n\
                      warning: unused variable: `x`\n\
                      warning: missing documentation for a function\n\
                      warning: `abi` (lib) generated 2 warnings\n";
        assert_eq!(count_missing(stderr), 2);
    }
}
