//! The GRUB image: one ISO made by grub-mkrescue that boots under both
//! SeaBIOS (i386-pc) and UEFI (x86_64-efi), with a hypervisor as the
//! multiboot2 kernel (hv-core, or Xen) and its modules after it. The first
//! module is the initial domain's kernel, for either hypervisor; when that
//! is dom0, the second is the image bundle (dom0's initrd), the guest
//! kernels dom0's toolstack creates domains from.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use domain_builder::image::{AbiNote, PvImage};
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
    // GRUB reads every byte of the file from the emulated CD: the debug
    // information (most of hv-core's ELF) stays in target/, for gdb.
    let kernel = loadable_part(
        fs::read(spec.kernel)
            .map_err(|e| Failure(format!("cannot read {}: {e}", spec.kernel.display())))?,
    );
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
    bundle_extra: &[(String, PathBuf)],
    stable_name: bool,
) -> Result<PathBuf> {
    boot_image_with(
        None,
        hypervisor,
        cmdline,
        initial_domain,
        modules,
        bundle_extra,
        stable_name,
    )
}

/// As [`boot_image`], with another hv-core ELF than this tree's (the
/// benchmark's baseline) when `hv_core` names one.
pub fn boot_image_with(
    hv_core: Option<&Path>,
    hypervisor: Hypervisor,
    cmdline: &str,
    initial_domain: Option<InitialDomain>,
    modules: Vec<ModuleFile>,
    bundle_extra: &[(String, PathBuf)],
    stable_name: bool,
) -> Result<PathBuf> {
    let (kernel, cmdline) = match hypervisor {
        Hypervisor::HvCore => (
            hv_core.map_or_else(|| build::binary("hv-core"), Path::to_path_buf),
            cmdline.to_string(),
        ),
        Hypervisor::Xen => (
            xen::ensure()?.image,
            format!("{} {cmdline}", xen::CMDLINE).trim_end().to_string(),
        ),
    };
    let mut all = Vec::with_capacity(modules.len() + 2);
    if let Some(domain) = initial_domain {
        let (name, contents) = initial_kernel(hypervisor, domain.kernel)?;
        all.push(ModuleFile {
            name,
            // As for hv-core (`make_iso`): what a domain builder reads.
            contents: loadable_part(contents),
            cmdline: domain.cmdline.to_string(),
        });
        if domain.kernel == Kernel::Dom0 {
            all.push(ModuleFile {
                name: BUNDLE_NAME.to_string(),
                contents: build::bundle(bundle_extra)?,
                cmdline: String::new(),
            });
        }
    }
    all.extend(modules);
    make_iso(
        &IsoSpec::new(hypervisor, &kernel, &cmdline, &all),
        stable_name,
    )
}

/// Where a kernel's image is on disk.
pub fn kernel_path(kernel: Kernel) -> PathBuf {
    match kernel {
        Kernel::File(path) => PathBuf::from(path),
        Kernel::NewGuest => crate::new_guest::scenario_image(),
        Kernel::Dom0 | Kernel::Guest(_) | Kernel::GuestClaimingAbi(..) => {
            build::binary(kernel.binary())
        }
    }
}

/// The initial domain's module: its file name under /boot and its bytes.
fn initial_kernel(hypervisor: Hypervisor, kernel: Kernel) -> Result<(String, Vec<u8>)> {
    let path = kernel_path(kernel);
    let name = kernel.binary();
    let contents = fs::read(&path).map_err(|e| {
        Failure(match kernel {
            Kernel::Guest(_) => format!(
                "test guest `{name}` was not built ({}: {e}); is there a tests/guests/src/bin/{name}.rs?",
                path.display()
            ),
            _ => format!("cannot read {}: {e}", path.display()),
        })
    })?;
    match kernel {
        Kernel::GuestClaimingAbi(_, major, minor) => {
            let claimed = claim_abi(contents, major, minor)
                .ok_or_else(|| Failure(format!("`{name}` has no HvCore ABI note to rewrite")))?;
            Ok((name.to_string(), claimed))
        }
        Kernel::File(_) | Kernel::NewGuest => {
            // One's own kernel: refused here, with the reason, rather than
            // by the hypervisor after a boot.
            let note = match hypervisor {
                Hypervisor::HvCore => AbiNote::Required,
                Hypervisor::Xen => AbiNote::Optional,
            };
            check_kernel(&path, &contents, note, true)?;
            let file = path
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| crate::new_guest::valid_name(n))
                .unwrap_or("kernel");
            Ok((file.to_string(), contents))
        }
        Kernel::Dom0 | Kernel::Guest(_) => Ok((name.to_string(), contents)),
    }
}

/// Checks that `bytes` (read from `path`) is a PV kernel the domain
/// builders take: an x86-64 ELF executable with Xen's notes, built for
/// this ABI (when `note` requires the project's ABI note), and able to
/// run as the initial domain if `initial`. The error names the file.
pub fn check_kernel(path: &Path, bytes: &[u8], note: AbiNote, initial: bool) -> Result {
    let refused = |why: String| {
        Failure(format!(
            "{} is not a PV kernel we can boot: {why}",
            path.display()
        ))
    };
    let image = PvImage::parse(bytes).map_err(|e| refused(e.to_string()))?;
    image
        .check_abi(abi::HV_ABI_VERSION, note)
        .map_err(|e| refused(e.to_string()))?;
    if initial {
        image.check_dom0().map_err(|e| refused(e.to_string()))?;
    }
    Ok(())
}

/// The image bundle's file name under /boot.
pub const BUNDLE_NAME: &str = "guests.tar";

/// The part of an ELF image a domain builder reads: everything up to the
/// end of the last segment's file bytes (headers, program headers, every
/// loadable and note segment), with the section header table dropped.
/// Debug information and symbol tables sit after the segments, so this
/// strips them without a tool. Bytes that are no ELF64 image come back as
/// they were.
pub fn loadable_part(mut elf: Vec<u8>) -> Vec<u8> {
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
    let u64_at =
        |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"));
    if elf.len() < 64 || elf[..5] != *b"\x7fELF\x02" {
        return elf;
    }
    let phoff = u64_at(&elf, 32) as usize;
    let phentsize = usize::from(u16_at(&elf, 54));
    let phnum = usize::from(u16_at(&elf, 56));
    let table_end = phnum
        .checked_mul(phentsize)
        .and_then(|len| len.checked_add(phoff));
    if phentsize < 56 || table_end.is_none_or(|end| end > elf.len()) {
        return elf;
    }
    let mut end = table_end.unwrap_or(0).max(64);
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let (offset, filesz) = (u64_at(&elf, ph + 8), u64_at(&elf, ph + 32));
        match offset.checked_add(filesz) {
            Some(seg_end) if seg_end <= elf.len() as u64 => end = end.max(seg_end as usize),
            _ => return elf,
        }
    }
    elf.truncate(end);
    // No section headers: e_shoff, e_shnum, e_shstrndx.
    elf[40..48].fill(0);
    elf[60..64].fill(0);
    elf
}

/// The bytes a boot loader reads from an ELF64 image: the file bytes of
/// its loadable segments (their zeroed tails, `.bss`, not counted).
pub fn loaded_bytes(elf: &[u8]) -> std::result::Result<u64, String> {
    use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
    let file = ElfFile64::<object::Endianness>::parse(elf)
        .map_err(|e| format!("not an ELF64 image: {e}"))?;
    let endian = file.endian();
    let headers = file
        .elf_header()
        .program_headers(endian, elf)
        .map_err(|e| format!("bad program headers: {e}"))?;
    Ok(headers
        .iter()
        .filter(|h| h.p_type(endian) == object::elf::PT_LOAD)
        .map(|h| h.p_filesz(endian))
        .sum())
}

/// A ustar archive of `files` (name, contents): a 512-byte header per file
/// (name, octal size, checksum), its bytes padded to 512, then two zero
/// blocks. Names must fit the 100-byte name field.
pub fn ustar(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        assert!(
            name.len() < 100,
            "image name `{name}` is too long for ustar"
        );
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        header[100..108].copy_from_slice(b"0000644\0");
        header[108..116].copy_from_slice(b"0000000\0");
        header[116..124].copy_from_slice(b"0000000\0");
        header[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
        header[136..148].copy_from_slice(b"00000000000\0");
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        // The checksum counts its own field as blanks.
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.resize(out.len() + 1024, 0);
    out
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
mod bundle {
    use tar_no_std::TarArchiveRef;

    #[test]
    fn the_archive_reads_back_with_dom0s_reader() {
        let files = vec![
            ("hello".to_string(), b"\x7fELF hello".repeat(70)),
            ("domu-crash".to_string(), vec![0xaa; 512]),
            ("empty".to_string(), Vec::new()),
        ];
        let archive = super::ustar(&files);
        assert_eq!(archive.len() % 512, 0);
        let read = TarArchiveRef::new(&archive).unwrap();
        let entries: Vec<(String, Vec<u8>)> = read
            .entries()
            .map(|e| {
                (
                    e.filename().as_str().unwrap().to_string(),
                    e.data().to_vec(),
                )
            })
            .collect();
        assert_eq!(entries, files);
    }

    #[test]
    fn loadable_part_cuts_after_the_last_segment() {
        let mut elf = vec![0u8; 0x100];
        elf[..5].copy_from_slice(b"\x7fELF\x02");
        elf[32] = 64; // e_phoff
        elf[40] = 0x80; // e_shoff
        elf[54] = 56; // e_phentsize
        elf[56] = 1; // e_phnum
        elf[60] = 3; // e_shnum
        elf[64 + 8] = 0xc0; // p_offset
        elf[64 + 32] = 0x20; // p_filesz
        elf.extend_from_slice(&[0xdb; 0x200]); // "debug information"
        let stripped = super::loadable_part(elf.clone());
        assert_eq!(stripped.len(), 0xe0);
        assert_eq!(&stripped[..40], &elf[..40]);
        assert_eq!(&stripped[40..48], &[0; 8]);
        assert_eq!(stripped[60], 0);
    }

    /// The test guest `sdk-hello` as built, if it is (else nothing to check).
    fn built_guest() -> Option<Vec<u8>> {
        let path = crate::build::binary("sdk-hello");
        let elf = std::fs::read(&path);
        if elf.is_err() {
            eprintln!("{} is not built: nothing to check", path.display());
        }
        elf.ok()
    }

    /// The loaded bytes of a built guest: its segments' file bytes, the
    /// same before and after stripping, and less than the file.
    #[test]
    fn loaded_bytes_count_the_segments_file_bytes() {
        let Some(elf) = built_guest() else {
            return;
        };
        let loaded = super::loaded_bytes(&elf).unwrap();
        assert!(loaded > 0 && loaded < elf.len() as u64);
        assert_eq!(super::loaded_bytes(&super::loadable_part(elf)), Ok(loaded));
        assert!(super::loaded_bytes(b"not an elf").is_err());
    }

    /// A built guest keeps its segments and notes and loses the rest.
    #[test]
    fn loadable_part_of_a_built_guest() {
        let Some(elf) = built_guest() else {
            return;
        };
        let stripped = super::loadable_part(elf.clone());
        assert!(stripped.len() < elf.len());
        assert_eq!(&stripped[..40], &elf[..40]);
        assert_eq!(&stripped[40..48], &[0; 8], "no section headers");
        let image = domain_builder::image::PvImage::parse(&stripped).expect("still a PV image");
        let original = domain_builder::image::PvImage::parse(&elf).unwrap();
        let segments = |i: &domain_builder::image::PvImage<'_>| {
            i.segments()
                .map(|s| (s.virt_addr, s.data.to_vec(), s.mem_size))
                .collect::<Vec<_>>()
        };
        assert_eq!(segments(&image), segments(&original));
        assert_eq!(image.abi_version(), original.abi_version());
    }

    #[test]
    fn loadable_part_leaves_other_bytes_alone() {
        assert_eq!(super::loadable_part(vec![1, 2, 3]), vec![1, 2, 3]);
        let mut truncated = b"\x7fELF\x02".to_vec();
        truncated.resize(64, 0);
        truncated[32] = 200; // program headers past the end
        truncated[54] = 56;
        truncated[56] = 1;
        assert_eq!(super::loadable_part(truncated.clone()), truncated);
    }
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
