//! The GRUB image: one ISO made by grub-mkrescue that boots under both
//! SeaBIOS (i386-pc) and UEFI (x86_64-efi), with a hypervisor as the
//! multiboot2 kernel (hv-core, or Xen) and its modules after it. The first
//! module is the initial domain's kernel, for either hypervisor.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use tests::{Hypervisor, InitialDomain, Kernel};

use crate::build::{self, target_dir};
use crate::{Failure, Result, xen};

/// A module on the image: file name under /boot, contents, command line.
#[derive(Hash)]
pub struct ModuleFile {
    pub name: String,
    pub contents: Vec<u8>,
    pub cmdline: String,
}

pub struct IsoSpec<'a> {
    hypervisor: Hypervisor,
    kernel: &'a Path,
    cmdline: &'a str,
    modules: &'a [ModuleFile],
}

impl<'a> IsoSpec<'a> {
    /// `kernel` is the hypervisor's image: hv-core's ELF, or Xen's
    /// (gzip-compressed, as GRUB can load it).
    pub fn new(
        hypervisor: Hypervisor,
        kernel: &'a Path,
        cmdline: &'a str,
        modules: &'a [ModuleFile],
    ) -> Self {
        Self {
            hypervisor,
            kernel,
            cmdline,
            modules,
        }
    }

    /// The kernel's file name under /boot.
    fn kernel_name(&self) -> &'static str {
        match self.hypervisor {
            Hypervisor::HvCore => "hv-core",
            Hypervisor::Xen => "xen.gz",
        }
    }

    fn grub_cfg(&self) -> String {
        let kernel = self.kernel_name();
        let title = self.hypervisor.tag();
        let mut entry = format!("    multiboot2 /boot/{kernel} {}\n", self.cmdline);
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
             menuentry \"{title}\" {{\n{entry}    boot\n}}\n"
        )
    }
}

/// Makes the image (reusing an identical one) and returns its path.
/// `stable_name` puts it at `target/hv-core.iso` (or `target/xen.iso`);
/// otherwise the name is derived from the contents, so scenarios with
/// different command lines each keep their own.
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
    // Per process, so two xtasks making the same image do not collide.
    let staging = dir.join(format!("{key}.{}.d", std::process::id()));
    let built = dir.join(format!("{key}.iso"));
    if !built.exists() {
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(staging.join("boot/grub"))?;
        fs::write(staging.join("boot").join(spec.kernel_name()), &kernel)?;
        fs::write(staging.join("boot/grub/grub.cfg"), &cfg)?;
        for module in spec.modules {
            fs::write(staging.join("boot").join(&module.name), &module.contents)?;
        }
        let partial = dir.join(format!("{key}.{}.iso.partial", std::process::id()));
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
    let stable = target_dir().join(format!("{}.iso", spec.hypervisor.tag()));
    fs::copy(&built, &stable)?;
    Ok(stable)
}

/// The image for one boot: `hypervisor` with `cmdline` (after Xen's base
/// line, for Xen), the initial domain's kernel as the first module, then
/// `modules`. Builds nothing: the kernels must already be built.
pub fn boot_image(
    hypervisor: Hypervisor,
    cmdline: &str,
    initial_domain: Option<InitialDomain>,
    modules: Vec<ModuleFile>,
    stable_name: bool,
) -> Result<PathBuf> {
    let (kernel, cmdline) = match hypervisor {
        Hypervisor::HvCore => (build::binary("hv-core"), cmdline.to_string()),
        Hypervisor::Xen => (
            xen::ensure()?.image,
            format!("{} {cmdline}", xen::CMDLINE).trim_end().to_string(),
        ),
    };
    let mut all = Vec::with_capacity(modules.len() + 1);
    if let Some(domain) = initial_domain {
        let name = domain.kernel.binary();
        let path = build::binary(name);
        let contents = fs::read(&path).map_err(|e| {
            Failure(match domain.kernel {
                Kernel::Guest(_) => format!(
                    "test guest `{name}` was not built ({}: {e}); is there a tests/guests/src/bin/{name}.rs?",
                    path.display()
                ),
                Kernel::Dom0 | Kernel::GuestClaimingAbi(..) => {
                    format!("cannot read {}: {e}", path.display())
                }
            })
        })?;
        let contents = match domain.kernel {
            Kernel::GuestClaimingAbi(_, major, minor) => claim_abi(contents, major, minor)
                .ok_or_else(|| Failure(format!("`{name}` has no HvCore ABI note to rewrite")))?,
            _ => contents,
        };
        all.push(ModuleFile {
            name: name.to_string(),
            contents,
            cmdline: domain.cmdline.to_string(),
        });
    }
    all.extend(modules);
    make_iso(
        &IsoSpec::new(hypervisor, &kernel, &cmdline, &all),
        stable_name,
    )
}

/// Rewrites the image's `HvCore` ABI note (namesz 7, descsz 4, type 1,
/// "HvCore\0" padded to 8 bytes, then the packed version) to claim
/// `major.minor`. `None` if the image has no such note.
pub fn claim_abi(mut image: Vec<u8>, major: u16, minor: u16) -> Option<Vec<u8>> {
    let mut header = Vec::new();
    header.extend_from_slice(&7u32.to_le_bytes());
    header.extend_from_slice(&4u32.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    header.extend_from_slice(b"HvCore\0\0");
    let at = image.windows(header.len()).position(|w| w == header)? + header.len();
    let version = (u32::from(major) << 16) | u32::from(minor);
    image[at..at + 4].copy_from_slice(&version.to_le_bytes());
    Some(image)
}

#[cfg(test)]
mod abi_note {
    #[test]
    fn rewrites_the_version_after_the_note_header() {
        let mut image = vec![0xffu8; 16];
        image.extend_from_slice(&[7, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0]);
        image.extend_from_slice(b"HvCore\0\0");
        image.extend_from_slice(&[1, 0, 0, 0, 0xee]);
        let patched = super::claim_abi(image, 0, 3).unwrap();
        assert_eq!(&patched[36..41], &[3, 0, 0, 0, 0xee]);
        assert!(super::claim_abi(vec![0; 64], 0, 3).is_none());
    }
}
