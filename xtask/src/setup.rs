//! Automatic set-up: the Rust target and the Debian packages the xtask needs.
//!
//! Missing packages are installed with apt-get when running as root;
//! otherwise the exact command is printed and the xtask stops.

use std::process::Command;

use crate::{Failure, Result};

pub const TARGET: &str = "x86_64-unknown-none";

/// Debian packages, and a file each one provides (to tell it is installed
/// without trusting package names alone).
const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "qemu-utils",
    "grub-pc-bin",
    "grub-efi-amd64-bin",
    "grub-common",
    "xorriso",
    "mtools",
    "ovmf",
];

pub fn ensure_all() -> Result {
    ensure_toolchain()?;
    ensure_packages()
}

/// The bare-metal target from rust-toolchain.toml (rustup does not always add
/// a target to a toolchain that is already installed).
pub fn ensure_toolchain() -> Result {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let Ok(output) = installed else {
        // No rustup: the toolchain is managed some other way; cargo will say
        // if the target is missing.
        return Ok(());
    };
    if String::from_utf8_lossy(&output.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        return Ok(());
    }
    eprintln!("xtask: adding the Rust target {TARGET} (rustup target add {TARGET})");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()?;
    if !status.success() {
        return Err(Failure(format!("`rustup target add {TARGET}` failed")));
    }
    Ok(())
}

fn installed_version(package: &str) -> Option<String> {
    let output = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}|${Version}", package])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (status, version) = text.split_once('|')?;
    (status.ends_with(" installed")).then(|| version.to_string())
}

fn candidate_version(package: &str) -> Option<String> {
    let output = Command::new("apt-cache")
        .args(["policy", package])
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate: ").map(str::to_string))
        .filter(|v| v != "(none)")
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub fn ensure_packages() -> Result {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| installed_version(p).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if Command::new("dpkg-query")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err(Failure(format!(
            "this is not a Debian-like system; install these (or your distribution's equivalents): {}",
            missing.join(" ")
        )));
    }
    let command = format!(
        "apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    if !is_root() {
        return Err(Failure(format!(
            "missing Debian packages: {}\nrun: sudo apt-get update && sudo {command}",
            missing.join(" ")
        )));
    }
    eprintln!("xtask: installing {} (apt-get)", missing.join(" "));
    run_apt(&["update"])?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(&missing);
    // qemu-system-x86 and qemu-utils must come from the same QEMU release: a
    // newer qemu-utils (from backports, say) breaks the older system
    // emulator. Ask for the matching qemu-utils when installing QEMU.
    let matching_utils;
    if missing.contains(&"qemu-system-x86")
        && let (Some(have), Some(want)) = (
            installed_version("qemu-utils"),
            candidate_version("qemu-system-x86"),
        )
        && have != want
    {
        eprintln!(
            "xtask: qemu-utils {have} does not match qemu-system-x86 {want}; installing qemu-utils {want} with it"
        );
        matching_utils = format!("qemu-utils={want}");
        args.retain(|a| *a != "qemu-utils");
        args.push(&matching_utils);
        args.push("--allow-downgrades");
    }
    run_apt(&args)?;
    let still: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| installed_version(p).is_none())
        .collect();
    if !still.is_empty() {
        return Err(Failure(format!(
            "apt-get did not install: {}",
            still.join(" ")
        )));
    }
    Ok(())
}

fn run_apt(args: &[&str]) -> Result {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !status.success() {
        return Err(Failure(format!("`apt-get {}` failed", args.join(" "))));
    }
    Ok(())
}

/// Xen 4.17, the reference host, fetched on first use (see `xen.rs`).
pub fn ensure_xen() -> Result<crate::xen::Xen> {
    crate::xen::ensure()
}
