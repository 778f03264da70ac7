//! The GRUB image: one ISO made by grub-mkrescue that boots under both
//! SeaBIOS (i386-pc) and UEFI (x86_64-efi), with hv-core as the multiboot2
//! kernel and any modules after it.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::build::target_dir;
use crate::{Failure, Result};

/// A module on the image: file name under /boot, contents, command line.
#[derive(Hash)]
pub struct ModuleFile {
    pub name: String,
    pub contents: Vec<u8>,
    pub cmdline: String,
}

pub struct IsoSpec<'a> {
    kernel: &'a Path,
    cmdline: &'a str,
    modules: &'a [ModuleFile],
}

impl<'a> IsoSpec<'a> {
    pub fn new(kernel: &'a Path, cmdline: &'a str, modules: &'a [ModuleFile]) -> Self {
        Self {
            kernel,
            cmdline,
            modules,
        }
    }

    fn grub_cfg(&self) -> String {
        let mut entry = format!("    multiboot2 /boot/hv-core {}\n", self.cmdline);
        for module in self.modules {
            entry += &format!("    module2 /boot/{} {}\n", module.name, module.cmdline);
        }
        format!(
            "# Made by `cargo xtask`.\n\
             serial --unit=0 --speed=115200\n\
             terminal_input serial console\n\
             terminal_output serial console\n\
             set timeout=0\n\
             set gfxpayload=keep\n\
             set default=0\n\
             menuentry \"hv-core\" {{\n{entry}    boot\n}}\n"
        )
    }
}

/// Makes the image (reusing an identical one) and returns its path.
/// `stable_name` puts it at `target/hv-core.iso`; otherwise the name is
/// derived from the contents, so scenarios with different command lines
/// each keep their own.
pub fn make_iso(spec: &IsoSpec, stable_name: bool) -> Result<PathBuf> {
    let kernel = fs::read(spec.kernel)
        .map_err(|e| Failure(format!("cannot read {}: {e}", spec.kernel.display())))?;
    let cfg = spec.grub_cfg();
    let mut hasher = DefaultHasher::new();
    kernel.hash(&mut hasher);
    cfg.hash(&mut hasher);
    spec.modules.hash(&mut hasher);
    let key = format!("{:016x}", hasher.finish());

    let dir = target_dir().join("iso");
    let staging = dir.join(format!("{key}.d"));
    let built = dir.join(format!("{key}.iso"));
    if !built.exists() {
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(staging.join("boot/grub"))?;
        fs::write(staging.join("boot/hv-core"), &kernel)?;
        fs::write(staging.join("boot/grub/grub.cfg"), &cfg)?;
        for module in spec.modules {
            fs::write(staging.join("boot").join(&module.name), &module.contents)?;
        }
        let partial = dir.join(format!("{key}.iso.partial"));
        let output = Command::new("grub-mkrescue")
            .arg("-o")
            .arg(&partial)
            .arg(&staging)
            .output()
            .map_err(|e| Failure(format!("cannot run grub-mkrescue: {e}")))?;
        if !output.status.success() {
            return Err(Failure(format!(
                "grub-mkrescue failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        fs::rename(&partial, &built)?;
        let _ = fs::remove_dir_all(&staging);
    }
    if !stable_name {
        return Ok(built);
    }
    let stable = target_dir().join("hv-core.iso");
    fs::copy(&built, &stable)?;
    Ok(stable)
}
