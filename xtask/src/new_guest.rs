//! `cargo xtask new-guest DIR`: writes a PV guest kernel crate of one's own
//! from a template. It depends on this checkout's `pv-guest-sdk` by path,
//! pins the project's toolchain and the bare-metal target, and `cargo run
//! --release` in DIR builds it and boots it as the initial domain through
//! this checkout's `cargo xtask run --kernel` (`cargo run --release --
//! --xen` on Xen 4.17).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tests::NEW_GUEST;

use crate::build::{root, target_dir};
use crate::setup::TARGET;
use crate::{Failure, Result};

/// The files of a new guest crate, as (path in DIR, contents).
pub fn files(name: &str, project: &Path) -> Result<Vec<(PathBuf, String)>> {
    let toolchain = fs::read_to_string(project.join("rust-toolchain.toml"))?;
    // The project's lock file, so the SDK's dependencies resolve to the
    // versions the project is tested with (Cargo drops what is unused).
    let lock = fs::read_to_string(project.join("Cargo.lock"))?;
    let project = project.display().to_string();
    if project.contains(['"', '\\', '\'']) {
        return Err(Failure(format!(
            "the project's path `{project}` cannot be written into a TOML string"
        )));
    }
    let fill = |text: &str| text.replace("{name}", name).replace("{project}", &project);
    Ok(vec![
        ("Cargo.toml".into(), fill(CARGO_TOML)),
        ("build.rs".into(), BUILD_RS.to_string()),
        ("rust-toolchain.toml".into(), toolchain),
        ("Cargo.lock".into(), lock),
        (".cargo/config.toml".into(), fill(CONFIG_TOML)),
        (".gitignore".into(), "/target\n".to_string()),
        ("src/main.rs".into(), fill(MAIN_RS)),
        ("README.md".into(), fill(README_MD)),
    ])
}

/// Whether `name` can be a crate and a bundle image name: lower-case ASCII
/// letters, digits, `-` and `_`, starting with a letter, at most 64 bytes.
pub fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Writes the crate into `dir` (which must not exist, or be empty); its
/// name is `dir`'s last component. Returns the crate's name.
pub fn create(dir: &Path) -> Result<String> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Failure(format!("`{}` does not end in a name", dir.display())))?
        .to_string();
    if !valid_name(&name) {
        return Err(Failure(format!(
            "`{name}` cannot name a guest crate: use lower-case letters, digits, `-` and `_`, \
             starting with a letter"
        )));
    }
    if dir.exists() && fs::read_dir(dir)?.next().is_some() {
        return Err(Failure(format!(
            "{} exists and is not empty; nothing was written",
            dir.display()
        )));
    }
    write_files(dir, &name)?;
    Ok(name)
}

fn write_files(dir: &Path, name: &str) -> Result {
    for (path, contents) in files(name, &root())? {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, contents)
            .map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

/// Where the new-guest scenarios keep their crate: outside the workspace's
/// members, under `target/` (its own `[workspace]` table keeps Cargo from
/// looking further up).
fn scenario_dir() -> PathBuf {
    target_dir().join("new-guest").join(NEW_GUEST)
}

/// The image the new-guest scenarios boot ([`prepare_scenario_image`]
/// makes it).
pub fn scenario_image() -> PathBuf {
    scenario_dir()
        .join("target")
        .join(TARGET)
        .join("release")
        .join(NEW_GUEST)
}

/// Makes the new-guest scenarios' crate as a user would: the template
/// written afresh (its `target/` kept between runs, for speed), then a
/// plain `cargo build --release` in it, with none of the workspace's
/// settings. Once per xtask run.
pub fn prepare_scenario_image() -> Result {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| build_scenario_crate().map_err(|Failure(why)| why))
        .clone()
        .map_err(Failure)
}

fn build_scenario_crate() -> Result {
    let dir = scenario_dir();
    if dir.exists() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name() == "target" {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                fs::remove_dir_all(&path)?;
            } else {
                fs::remove_file(&path)?;
            }
        }
    }
    write_files(&dir, NEW_GUEST)?;
    eprintln!(
        "xtask: building the new-guest crate `{NEW_GUEST}` in {} (cargo build --release)",
        dir.display()
    );
    let mut cargo = Command::new("cargo");
    cargo.current_dir(&dir).args(["build", "--release"]);
    // As typed in a fresh shell: nothing of this cargo run leaks in.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let leaks = (key.starts_with("CARGO") && key != "CARGO_HOME")
            || key == "RUSTUP_TOOLCHAIN"
            || key.starts_with("RUSTFLAGS");
        if leaks {
            cargo.env_remove(key.as_ref());
        }
    }
    let output = cargo.output()?;
    if !output.status.success() {
        return Err(Failure(format!(
            "`cargo build --release` in {} failed:\n{}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    if !scenario_image().is_file() {
        return Err(Failure(format!(
            "`cargo build --release` in {} made no {}",
            dir.display(),
            scenario_image().display()
        )));
    }
    Ok(())
}

pub fn run(args: &[String]) -> Result<i32> {
    let [dir] = args else {
        return Err(Failure("usage: cargo xtask new-guest DIR".into()));
    };
    let dir = Path::new(dir);
    let name = create(dir)?;
    let shown = dir.display();
    println!("xtask: wrote the guest crate `{name}` in {shown}");
    println!("  boot it on hv-core:  cd {shown} && cargo run --release");
    println!("  on Xen 4.17:         cd {shown} && cargo run --release -- --xen");
    println!(
        "  as a domU under dom0: cargo xtask run --image {name}=<path>, then `create {name}` \
         (see {shown}/README.md)"
    );
    Ok(0)
}

const CARGO_TOML: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# A crate of its own, not part of any workspace around it.
[workspace]

[dependencies]
pv-guest-sdk = { path = "{project}/pv-guest-sdk" }

# A kernel has nowhere to unwind to: a panic prints and crashes the domain.
[profile.dev]
panic = "abort"

[profile.release]
panic = "abort"
"#;

const BUILD_RS: &str = r#"//! Links the kernel with the SDK's linker script at the SDK's fixed address.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let script = std::env::var("DEP_PV_GUEST_SDK_LINK_SCRIPT")
            .expect("pv-guest-sdk publishes its linker script");
        println!("cargo:rustc-link-arg-bins=-T{script}");
        println!("cargo:rustc-link-arg-bins=--no-pie");
        println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    }
}
"#;

const CONFIG_TOML: &str = r#"# A PV kernel is built for the bare-metal target.
[build]
target = "x86_64-unknown-none"

# `cargo run --release` boots the kernel in QEMU as the initial domain,
# through the project's xtask (run from the project, so its own toolchain
# and settings apply); `cargo run --release -- --xen` boots it on Xen 4.17.
[target.x86_64-unknown-none]
# (Cargo passes the kernel's path relative to this crate, then the arguments.)
runner = ["sh", "-c", "kernel=$(realpath \"$0\") && cd '{project}' && exec cargo xtask run --kernel \"$kernel\" \"$@\""]
"#;

const MAIN_RS: &str = r#"//! `{name}`: a PV guest kernel written against `pv-guest-sdk`. It runs on
//! hv-core and on Xen 4.17, as the initial domain or as a domU that dom0
//! creates: it greets, reads the clock around a short sleep, and powers
//! off.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use pv_guest_sdk::{StartInfo, println, sched, time};

    pub fn main(start: &'static StartInfo) -> ! {
        println!(
            "{name}: hello from my own kernel ({} pages, command line {:?})",
            start.nr_pages(),
            start.cmdline()
        );
        let before = time::now_ns();
        match time::sleep_ns(10_000_000) {
            Ok(()) => println!("{name}: slept {} ms", (time::now_ns() - before) / 1_000_000),
            Err(e) => println!("{name}: cannot sleep: {e}"),
        }
        println!("{name}: goodbye");
        sched::poweroff()
    }
}
"#;

const README_MD: &str = r#"# {name}

A PV guest kernel written against `pv-guest-sdk` (the SDK of the project
at `{project}`; its guide is `{project}/docs/sdk.md`). It runs on hv-core
and on Xen 4.17.

- `cargo build --release`: builds
  `target/x86_64-unknown-none/release/{name}` (the toolchain and target
  come from `rust-toolchain.toml` and `.cargo/config.toml`).
- `cargo run --release`: builds it and boots it in QEMU as the initial
  domain on hv-core (through the project's `cargo xtask run --kernel`);
  `cargo run --release -- --xen` boots it on Xen 4.17.
- As a domU under dom0: from the project,
  `cargo xtask run --image {name}=$PWD/target/x86_64-unknown-none/release/{name}`,
  then `create {name}` at dom0's shell (add `--xen` for Xen).
"#;

#[cfg(test)]
mod template {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(valid_name("mykernel"));
        assert!(valid_name("my-kernel_2"));
        assert!(!valid_name("MyKernel"));
        assert!(!valid_name("2fast"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(""));
    }

    #[test]
    fn the_template_names_the_crate_and_the_project() {
        let files = files("mykernel", &root()).unwrap();
        let text = |path: &str| {
            files
                .iter()
                .find(|(p, _)| p == Path::new(path))
                .map(|(_, t)| t.clone())
                .unwrap()
        };
        assert!(text("Cargo.toml").contains("name = \"mykernel\""));
        let sdk = root().join("pv-guest-sdk").display().to_string();
        assert!(text("Cargo.toml").contains(&sdk));
        assert!(text("src/main.rs").contains("mykernel: hello from my own kernel"));
        assert!(
            !files
                .iter()
                .any(|(_, t)| t.contains("{name}") || t.contains("{project}"))
        );
        assert!(text("rust-toolchain.toml").contains("x86_64-unknown-none"));
    }
}
