//! `cargo xtask`: build, image, run and test the hypervisor.
//!
//! ```text
//! cargo xtask build                 build every bare-metal crate, test guest and example
//!                                   guest, and pack the image bundle
//! cargo xtask iso [image options]   make the GRUB image; prints its path last
//! cargo xtask run [image options] [--uefi] [--accel tcg|kvm] [-- QEMU args]
//! cargo xtask test [FILTER]         host unit tests, then the QEMU scenarios
//! cargo xtask bench [--guest NAME]  the bench guest on hv-core and on Xen 4.17
//! cargo xtask fuzz [--minutes N] [--seed S]
//!                                   the hypercall fuzzer and its canary under dom0
//! cargo xtask new-guest DIR         a PV guest crate of one's own, from a template
//! cargo xtask doc                   the SDK's and abi's API docs, rustdoc warnings as errors
//! ```
#![deny(unsafe_code)]

mod bench;
mod build;
mod doc;
mod fuzz;
mod image;
mod lint;
mod new_guest;
mod qemu;
mod setup;
mod test;
mod xen;

use std::io::IsTerminal;
use std::process::ExitCode;

use qemu::{Accel, Firmware};
use tests::{Ending, Hypervisor, InitialDomain, Kernel};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  build                   build hv-core, dom0, the test guests, the example guests and the
                          other bare-metal crates; pack the image bundle dom0 creates domains
                          from (target/guests.tar: the example guests and the domu-* test guests)
  iso [image options]     make the GRUB multiboot2 image (BIOS + UEFI); prints its path
  run [image options] [run options] [-- qemu args]
                          build, make the image and boot it in QEMU, serial console on this terminal
  test [FILTER]           lint, host unit tests, then every QEMU scenario; with FILTER, only
                          the scenarios whose names contain it (no lint, no host tests)
  lint                    rustfmt --check and clippy (host and x86_64-unknown-none), warnings
                          as errors
  doc                     cargo doc for pv-guest-sdk and abi (x86_64-unknown-none), rustdoc
                          warnings as errors; counts the items still undocumented per crate
                          and prints the path of the SDK's index.html
  bench [--guest NAME]    boot the bench guest (tests/guests/src/bin/bench.rs) on hv-core and on
                          Xen 4.17 and print one table of its BENCH lines
  fuzz [--minutes N] [--secs N] [--seed S] [--trace-from N]
                          dom0 creates a canary domU and the hypercall fuzzer (domu-fuzz), which
                          makes random hypercalls for N minutes (default 2, seed random unless
                          given); one verdict line: hv-core alive, canary intact, dom0 responsive

  new-guest DIR           write a PV guest kernel crate of one's own in DIR (a template that
                          greets and powers off); `cargo run --release` in DIR boots it

image options:
  --xen                   boot Xen 4.17 (the reference host) instead of hv-core
  --kernel PATH           the initial domain is the PV kernel (ELF) at PATH instead of dom0
  --image NAME=PATH       add the PV kernel at PATH to dom0's image bundle as NAME, so that
                          `create NAME` at dom0's shell runs it as a domU (repeatable)
  --guest NAME            the initial domain is test guest NAME (tests/guests/src/bin/NAME.rs)
                          instead of dom0
  --no-dom0               no initial domain (hv-core only)
  --cmdline \"..\"          hypervisor command line (e.g. \"loglevel=debug\"; after Xen's own for Xen)
run options:
  --uefi                  boot with OVMF instead of SeaBIOS
  --accel tcg|kvm         choose the accelerator (default: kvm only where the CPU has vmx/svm)";

/// A failed step, with the message the user sees.
#[derive(Debug)]
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

pub type Result<T = ()> = std::result::Result<T, Failure>;

struct RunOptions {
    hypervisor: Hypervisor,
    /// `None`: no initial domain.
    kernel: Option<Kernel>,
    firmware: Option<Firmware>,
    accel: Option<Accel>,
    cmdline: Option<String>,
    /// `--image NAME=PATH`: one's own kernels for dom0's bundle.
    images: Vec<(String, std::path::PathBuf)>,
    qemu_args: Vec<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            hypervisor: Hypervisor::HvCore,
            kernel: Some(Kernel::Dom0),
            firmware: None,
            accel: None,
            cmdline: None,
            images: Vec::new(),
            qemu_args: Vec::new(),
        }
    }
}

fn parse_run_options(args: &[String], allow_run_only: bool) -> Result<RunOptions> {
    let mut options = RunOptions::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--xen" => options.hypervisor = Hypervisor::Xen,
            "--no-dom0" => options.kernel = None,
            "--guest" => {
                let name = args
                    .next()
                    .ok_or_else(|| Failure("--guest needs a test guest's name".into()))?;
                // Scenario data names guests statically; this one is named
                // once per run.
                options.kernel = Some(Kernel::Guest(Box::leak(name.clone().into_boxed_str())));
            }
            "--kernel" => {
                let path = args
                    .next()
                    .ok_or_else(|| Failure("--kernel needs the path of a PV kernel".into()))?;
                let path = std::path::absolute(path)?;
                if !path.is_file() {
                    return Err(Failure(format!("--kernel: no file {}", path.display())));
                }
                let path = path.display().to_string();
                options.kernel = Some(Kernel::File(Box::leak(path.into_boxed_str())));
            }
            "--image" => {
                let spec = args
                    .next()
                    .ok_or_else(|| Failure("--image needs NAME=PATH".into()))?;
                let Some((name, path)) = spec.split_once('=') else {
                    return Err(Failure(format!(
                        "--image takes NAME=PATH (the name `create` will use), not `{spec}`"
                    )));
                };
                let path = std::path::absolute(path)?;
                if !path.is_file() {
                    return Err(Failure(format!(
                        "--image {name}: no file {}",
                        path.display()
                    )));
                }
                options.images.push((name.to_string(), path));
            }
            "--uefi" if allow_run_only => options.firmware = Some(Firmware::Uefi),
            "--bios" if allow_run_only => options.firmware = Some(Firmware::Bios),
            "--accel" if allow_run_only => {
                options.accel = Some(match args.next().map(String::as_str) {
                    Some("tcg") => Accel::Tcg,
                    Some("kvm") => Accel::Kvm,
                    other => {
                        return Err(Failure(format!(
                            "--accel takes `tcg` or `kvm`, not `{}`",
                            other.unwrap_or("")
                        )));
                    }
                })
            }
            "--cmdline" => {
                let value = args
                    .next()
                    .ok_or_else(|| Failure("--cmdline needs a value".into()))?;
                options.cmdline = Some(value.clone());
            }
            "--" if allow_run_only => {
                options.qemu_args = args.cloned().collect();
                break;
            }
            other => return Err(Failure(format!("unknown option `{other}`\n\n{USAGE}"))),
        }
    }
    if !options.images.is_empty() && options.kernel != Some(Kernel::Dom0) {
        return Err(Failure(
            "--image adds to dom0's bundle; it cannot go with --kernel, --guest or --no-dom0"
                .into(),
        ));
    }
    if options.hypervisor == Hypervisor::Xen && options.kernel.is_none() {
        return Err(Failure(
            "Xen needs an initial domain; drop --no-dom0".into(),
        ));
    }
    Ok(options)
}

/// Builds everything and makes the image the options describe.
fn image_for(options: &RunOptions, cmdline: &str, stable_name: bool) -> Result<std::path::PathBuf> {
    setup::ensure_all()?;
    if options.hypervisor == Hypervisor::Xen {
        setup::ensure_xen()?;
    }
    build::build_target()?;
    let domain = options.kernel.map(|kernel| InitialDomain {
        kernel,
        cmdline: "",
    });
    image::boot_image(
        options.hypervisor,
        cmdline,
        domain,
        Vec::new(),
        &options.images,
        stable_name,
    )
}

fn run(args: &[String]) -> Result<i32> {
    let Some((command, rest)) = args.split_first() else {
        return Err(Failure(USAGE.into()));
    };
    match command.as_str() {
        "build" => {
            setup::ensure_toolchain()?;
            build::build_target()?;
            let bundle = build::write_bundle()?;
            let mut names: Vec<String> =
                build::bundle_images().into_iter().map(|(n, _)| n).collect();
            names.push(build::MISMATCHED_IMAGE.to_string());
            eprintln!("xtask: image bundle: {}", names.join(", "));
            println!("{}", bundle.display());
            Ok(0)
        }
        "iso" => {
            let options = parse_run_options(rest, false)?;
            let cmdline = options.cmdline.clone().unwrap_or_default();
            let iso = image_for(&options, &cmdline, true)?;
            println!("{}", iso.display());
            Ok(0)
        }
        "run" => {
            let options = parse_run_options(rest, true)?;
            let cmdline = match (options.hypervisor, &options.cmdline) {
                // A fatal error ends QEMU with a failure status; power-off
                // stays ACPI S5, as on a real machine.
                (Hypervisor::HvCore, Some(c)) => format!("debug-exit=fatal {c}"),
                (Hypervisor::HvCore, None) => "debug-exit=fatal".to_string(),
                (Hypervisor::Xen, c) => c.clone().unwrap_or_default(),
            };
            let iso = image_for(&options, &cmdline, false)?;
            let firmware = options.firmware.unwrap_or(Firmware::Bios);
            let accel = options.accel.unwrap_or_else(qemu::default_accel);
            let mut machine =
                qemu::Machine::new(&iso, firmware, accel).extra_args(&options.qemu_args);
            // Piped input (`printf 'info\npoweroff\n' | cargo xtask run`)
            // is typed at dom0's shell a line per prompt.
            let piped = !std::io::stdin().is_terminal();
            if piped {
                let lines: Vec<String> = std::io::stdin().lines().map_while(|l| l.ok()).collect();
                machine = machine.typing(&lines, tests::DOM0_PROMPT);
            }
            if options.hypervisor == Hypervisor::Xen {
                return run_xen(&machine);
            }
            let status = if piped {
                match machine.run_watched(None, &[], true)?.end {
                    tests::RunEnd::Exited(status) => status,
                    _ => -1,
                }
            } else {
                machine.run_interactive()?
            };
            Ok(match status {
                0 | 33 => 0,
                35 => {
                    eprintln!("xtask: hv-core stopped with a fatal error (see the report above)");
                    1
                }
                other => {
                    eprintln!("xtask: QEMU exited with status {other}");
                    other.max(1)
                }
            })
        }
        "test" => match rest {
            [] => test::run(None),
            [filter] if !filter.starts_with('-') => test::run(Some(filter)),
            _ => Err(Failure(format!("`test` takes at most a filter\n\n{USAGE}"))),
        },
        "lint" => lint::run(),
        "doc" => doc::run(),
        "bench" => bench::run(rest),
        "fuzz" => fuzz::run(rest),
        "new-guest" => new_guest::run(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(0)
        }
        other => Err(Failure(format!("unknown command `{other}`\n\n{USAGE}"))),
    }
}

/// Xen halts rather than ending QEMU: the console is watched and QEMU
/// stopped at Xen's last line.
fn run_xen(machine: &qemu::Machine) -> Result<i32> {
    let stop_on: Vec<&str> = Hypervisor::Xen
        .terminal_lines()
        .iter()
        .map(|(line, _)| *line)
        .collect();
    eprintln!("xtask: booting Xen 4.17; the serial console follows");
    let outcome = machine.run_watched(None, &stop_on, true)?;
    let ending = Ending::of(Hypervisor::Xen, &outcome.end);
    eprintln!(
        "xtask: {} ({}) after {:.1} s",
        outcome.end,
        ending.map_or("QEMU error", Ending::describe),
        outcome.elapsed.as_secs_f64()
    );
    Ok(if ending == Some(Ending::PowerOff) {
        0
    } else {
        1
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(Failure(message)) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
