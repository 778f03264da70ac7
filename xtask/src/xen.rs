//! Xen 4.17, the reference host: Debian's build of the hypervisor, fetched
//! once with `apt-get download` and unpacked under `target/xen/` (never
//! installed into the system), then booted by GRUB like hv-core, with the
//! initial domain's kernel as its first module.
//!
//! Xen does not end QEMU. When its initial domain powers off it prints
//! `Hardware Dom0 halted: halting machine` and halts; when it panics or the
//! domain crashes it reboots, or with `noreboot` halts. The xtask therefore
//! stops QEMU on those lines (`tests::Hypervisor::terminal_lines`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::build::target_dir;
use crate::{Failure, Result};

/// The Debian package that holds the hypervisor.
pub const PACKAGE: &str = "xen-hypervisor-4.17-amd64";

/// Xen's command line for every run, before a scenario's own options.
/// - `console=com1 com1=115200,8n1`: Xen's log and dom0's console on COM1,
///   the serial line QEMU connects to stdio.
/// - `smap=0`: Xen 4.17 is known to misbehave as a PV host under TCG when
///   the CPU has SMAP (`-cpu max` has it). Not yet seen here (`hello`
///   passes with `smap=1`), so a precaution; the guests do not need SMAP
///   in Xen.
/// - `noreboot`: a panic or a dom0 crash halts with its report instead of
///   rebooting (which `-no-reboot` would turn into a QEMU exit that looks
///   like a clean one).
/// - `dom0_mem=128M,max:128M dom0_max_vcpus=1`: a small, fixed initial
///   domain, the same on every machine; Xen builds its p2m in less time.
/// - `bootscrub=0`: Xen would otherwise scrub all free RAM, in idle time
///   after dom0 starts, which is TCG time stolen from the guest (and noise
///   in benchmarks).
/// - `edid=no`: no EDID probe through the BIOS during Xen's real-mode
///   start.
/// - `guest_loglvl=all`: Xen's warnings about what a guest did wrong
///   (a refused page-table update, say) reach the console.
pub const CMDLINE: &str = "console=com1 com1=115200,8n1 smap=0 noreboot \
     dom0_mem=128M,max:128M dom0_max_vcpus=1 bootscrub=0 edid=no guest_loglvl=all";

/// The fetched hypervisor.
pub struct Xen {
    /// The multiboot2 image, gzip-compressed as Debian ships it (GRUB
    /// decompresses it while loading).
    pub image: PathBuf,
    /// The Debian package version, for reports.
    pub version: String,
}

fn cache() -> PathBuf {
    target_dir().join("xen")
}

/// The hypervisor, fetched on first use; later calls need no network.
pub fn ensure() -> Result<Xen> {
    let dir = cache();
    let image = dir.join("xen-4.17.gz");
    let version_file = dir.join("xen-4.17.version");
    if let (true, Ok(version)) = (image.exists(), fs::read_to_string(&version_file)) {
        return Ok(Xen {
            image,
            version: version.trim().to_string(),
        });
    }
    fs::create_dir_all(&dir)?;
    let download = dir.join("download");
    let unpacked = dir.join("unpacked");
    let _ = fs::remove_dir_all(&download);
    let _ = fs::remove_dir_all(&unpacked);
    fs::create_dir_all(&download)?;
    eprintln!(
        "xtask: fetching Xen 4.17 (apt-get download {PACKAGE}) into {}",
        dir.display()
    );
    download_package(&download)?;
    let deb = fs::read_dir(&download)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .ok_or_else(|| {
            Failure(format!(
                "apt-get download left no .deb in {}",
                download.display()
            ))
        })?;
    let version = dpkg_deb(&["-f", &deb.to_string_lossy(), "Version"])?;
    dpkg_deb(&["-x", &deb.to_string_lossy(), &unpacked.to_string_lossy()])?;
    let found = find_hypervisor(&unpacked.join("boot"))?;
    let partial = dir.join("xen-4.17.gz.partial");
    fs::copy(&found, &partial)?;
    fs::rename(&partial, &image)?;
    fs::write(&version_file, format!("{}\n", version.trim()))?;
    let _ = fs::remove_dir_all(&download);
    let _ = fs::remove_dir_all(&unpacked);
    eprintln!(
        "xtask: Xen {} cached at {}",
        version.trim(),
        image.display()
    );
    Ok(Xen {
        image,
        version: version.trim().to_string(),
    })
}

/// `apt-get download`, which needs no root; as root, one `apt-get update`
/// and a second try when the package lists are missing or stale.
fn download_package(dir: &Path) -> Result {
    let attempt = || {
        Command::new("apt-get")
            .args(["download", PACKAGE])
            .current_dir(dir)
            .output()
    };
    let command = format!("(cd {} && apt-get download {PACKAGE})", dir.display());
    let mut output = attempt().map_err(|e| {
        Failure(format!(
            "cannot run apt-get ({e}); Xen 4.17 comes from Debian's {PACKAGE} package.\n\
             On a system without apt, put a Xen 4.17 multiboot2 image at {}",
            cache().join("xen-4.17.gz").display()
        ))
    })?;
    if !output.status.success() && crate::setup::is_root() {
        eprintln!("xtask: apt-get download failed; refreshing the package lists (apt-get update)");
        let _ = Command::new("apt-get").arg("update").status();
        output = attempt()?;
    }
    if !output.status.success() {
        return Err(Failure(format!(
            "fetching Xen 4.17 failed: `{command}` said:\n{}\n\
             If the package is unknown, refresh the package lists (sudo apt-get update); \
             Debian 12 (bookworm) has {PACKAGE}.",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

fn dpkg_deb(args: &[&str]) -> Result<String> {
    let output = Command::new("dpkg-deb")
        .args(args)
        .output()
        .map_err(|e| Failure(format!("cannot run dpkg-deb: {e}")))?;
    if !output.status.success() {
        return Err(Failure(format!(
            "`dpkg-deb {}` failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `boot/xen-4.17-amd64.gz` in today's package; the name is matched
/// loosely so a rebuilt package with another suffix still works.
fn find_hypervisor(boot: &Path) -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = fs::read_dir(boot)
        .map_err(|e| Failure(format!("the Xen package has no {}: {e}", boot.display())))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("xen-4.17") && n.ends_with(".gz"))
        })
        .collect();
    candidates.sort();
    candidates.into_iter().next().ok_or_else(|| {
        Failure(format!(
            "no xen-4.17*.gz in {} (the package layout changed?)",
            boot.display()
        ))
    })
}
