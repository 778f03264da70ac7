//! Building the bare-metal crates, and the image bundle dom0 creates
//! domains from.

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
pub(crate) const TARGET_CRATES: &[&str] = &[
    "hv-core",
    "dom0",
    "pv-guest-sdk",
    "abi",
    "domain-builder",
    "test-guests",
];

/// A bare-metal binary built by [`build_target`]: `hv-core`, `dom0`, or a
/// test guest's bin name.
pub fn binary(name: &str) -> PathBuf {
    target_dir().join(TARGET).join("release").join(name)
}

/// The package of the example guests that ship with the project
/// (`guests/`: hello, pingpong, spin).
pub(crate) const EXAMPLE_GUESTS: &str = "guests";

/// Where the example guests are built. A target directory of their own:
/// an example and a test guest of the same name would otherwise be
/// written to the same file.
pub(crate) fn examples_target_dir() -> PathBuf {
    target_dir().join("example-guests")
}

/// Builds every bare-metal crate (release), then the example guests, and
/// returns hv-core's ELF.
pub fn build_target() -> Result<PathBuf> {
    eprintln!("xtask: building {} for {TARGET}", TARGET_CRATES.join(", "));
    let mut command = cargo_build();
    for krate in TARGET_CRATES {
        command.args(["-p", krate]);
    }
    if !command.status()?.success() {
        return Err(Failure("building the bare-metal crates failed".into()));
    }
    if root().join(EXAMPLE_GUESTS).join("Cargo.toml").exists() {
        eprintln!("xtask: building the example guests ({EXAMPLE_GUESTS}) for {TARGET}");
        let mut command = cargo_build();
        command
            .args(["-p", EXAMPLE_GUESTS, "--target-dir"])
            .arg(examples_target_dir());
        if !command.status()?.success() {
            return Err(Failure("building the example guests failed".into()));
        }
    }
    Ok(binary("hv-core"))
}

fn cargo_build() -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root())
        .args(["build", "--release", "--target", TARGET]);
    command
}

/// The bin names of the `.rs` files directly in `dir` whose names start
/// with `prefix`, sorted.
fn bins_in(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let stem = path.file_stem()?.to_str()?;
            (path.extension()? == "rs" && stem.starts_with(prefix)).then(|| stem.to_string())
        })
        .collect();
    names.sort();
    names
}

/// The images dom0 can create domains from, as (image name, built ELF):
/// every example guest (each bin of `guests/`), then every domU test
/// guest (the `domu-*` bins of `test-guests`).
pub fn bundle_images() -> Vec<(String, PathBuf)> {
    let examples = bins_in(&root().join(EXAMPLE_GUESTS).join("src/bin"), "");
    let domu_tests = bins_in(&root().join("tests/guests/src/bin"), "domu-");
    let example_dir = examples_target_dir().join(TARGET).join("release");
    examples
        .into_iter()
        .map(|name| {
            let path = example_dir.join(&name);
            (name, path)
        })
        .chain(domu_tests.into_iter().map(|name| {
            let path = binary(&name);
            (name, path)
        }))
        .collect()
}

/// The bundle's image that claims ABI 0.3 (the test guest `hello`, its
/// note rewritten).
pub const MISMATCHED_IMAGE: &str = "domu-abi-0.3";

/// The image bundle: a ustar archive of [`bundle_images`],
/// [`MISMATCHED_IMAGE`] and `extra` (one's own kernels, by name), each ELF
/// with its debug information and section headers dropped (only what the
/// domain builder loads is kept). Builds nothing.
pub fn bundle(extra: &[(String, PathBuf)]) -> Result<Vec<u8>> {
    let mut files = Vec::new();
    for (name, path) in bundle_images() {
        let elf = std::fs::read(&path).map_err(|e| {
            Failure(format!(
                "guest image `{name}` was not built ({}: {e})",
                path.display()
            ))
        })?;
        files.push((name, crate::image::loadable_part(elf)));
    }
    // A domU image built for another ABI, which `create` must refuse
    // naming both versions.
    let hello = std::fs::read(binary("sdk-hello"))
        .map_err(|e| Failure(format!("test guest `sdk-hello` was not built: {e}")))?;
    let claimed = crate::image::claim_abi(crate::image::loadable_part(hello), 0, 3)
        .ok_or_else(|| Failure("`sdk-hello` has no HvCore ABI note to rewrite".into()))?;
    files.push((MISMATCHED_IMAGE.to_string(), claimed));
    for (name, path) in extra {
        if !crate::new_guest::valid_name(name) {
            return Err(Failure(format!(
                "`{name}` cannot name an image: use lower-case letters, digits, `-` and `_`, \
                 starting with a letter"
            )));
        }
        if files.iter().any(|(n, _)| n == name) {
            return Err(Failure(format!(
                "the bundle already has an image named `{name}`; choose another name"
            )));
        }
        let elf = std::fs::read(path)
            .map_err(|e| Failure(format!("cannot read {}: {e}", path.display())))?;
        crate::image::check_kernel(path, &elf, domain_builder::image::AbiNote::Required, false)?;
        files.push((name.clone(), crate::image::loadable_part(elf)));
    }
    Ok(crate::image::ustar(&files))
}

/// Writes the bundle to `target/guests.tar` and returns that path.
pub fn write_bundle() -> Result<PathBuf> {
    let path = target_dir().join("guests.tar");
    std::fs::write(&path, bundle(&[])?)?;
    Ok(path)
}
