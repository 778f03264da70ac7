//! Building the bare-metal crates.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::setup::TARGET;
use crate::{Failure, Result};

/// The workspace root (the xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// The crates that run on the machine rather than the host; `test-guests`
/// builds every test guest kernel (one bin each).
const TARGET_CRATES: &[&str] = &["hv-core", "dom0", "pv-guest-sdk", "abi", "test-guests"];

/// A bare-metal binary built by [`build_target`]: `hv-core`, `dom0`, or a
/// test guest's bin name.
pub fn binary(name: &str) -> PathBuf {
    target_dir().join(TARGET).join("release").join(name)
}

/// Builds every bare-metal crate (release) and returns hv-core's ELF.
pub fn build_target() -> Result<PathBuf> {
    eprintln!("xtask: building {} for {TARGET}", TARGET_CRATES.join(", "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root())
        .args(["build", "--release", "--target", TARGET]);
    for krate in TARGET_CRATES {
        command.args(["-p", krate]);
    }
    let status = command.status()?;
    if !status.success() {
        return Err(Failure("building the bare-metal crates failed".into()));
    }
    Ok(binary("hv-core"))
}
