//! `cargo xtask`: build, image, run and test the hypervisor.
//!
//! ```text
//! cargo xtask build                 build every bare-metal crate
//! cargo xtask iso [--cmdline ".."]  make the GRUB image; prints its path last
//! cargo xtask run [--uefi] [--accel tcg|kvm] [--cmdline ".."] [-- QEMU args]
//! cargo xtask test                  host unit tests, then the QEMU scenarios
//! ```
#![deny(unsafe_code)]

mod build;
mod image;
mod qemu;
mod setup;
mod test;

use std::process::ExitCode;

use qemu::{Accel, Firmware};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  build                   build hv-core and the other bare-metal crates
  iso [--cmdline \"..\"]    make the GRUB multiboot2 image (BIOS + UEFI); prints its path
  run [options] [-- qemu args]
                          build, make the image and boot it in QEMU, serial console on this terminal
      --uefi              boot with OVMF instead of SeaBIOS
      --accel tcg|kvm     choose the accelerator (default: kvm only where the CPU has vmx/svm)
      --cmdline \"..\"      hypervisor command line (e.g. \"loglevel=debug\")
  test                    host unit tests, then every QEMU scenario";

/// A failed step, with the message the user sees.
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

pub type Result<T = ()> = std::result::Result<T, Failure>;

#[derive(Default)]
struct RunOptions {
    firmware: Option<Firmware>,
    accel: Option<Accel>,
    cmdline: Option<String>,
    qemu_args: Vec<String>,
}

fn parse_run_options(args: &[String], allow_run_only: bool) -> Result<RunOptions> {
    let mut options = RunOptions::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
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
    Ok(options)
}

fn run(args: &[String]) -> Result<i32> {
    let Some((command, rest)) = args.split_first() else {
        return Err(Failure(USAGE.into()));
    };
    match command.as_str() {
        "build" => {
            setup::ensure_toolchain()?;
            build::build_target()?;
            Ok(0)
        }
        "iso" => {
            let options = parse_run_options(rest, false)?;
            setup::ensure_all()?;
            let kernel = build::build_target()?;
            let cmdline = options.cmdline.unwrap_or_default();
            let iso = image::make_iso(&image::IsoSpec::new(&kernel, &cmdline, &[]), true)?;
            println!("{}", iso.display());
            Ok(0)
        }
        "run" => {
            let options = parse_run_options(rest, true)?;
            setup::ensure_all()?;
            let kernel = build::build_target()?;
            // A fatal error ends QEMU with a failure status; power-off stays
            // ACPI S5, as on a real machine.
            let cmdline = match options.cmdline {
                Some(c) => format!("debug-exit=fatal {c}"),
                None => "debug-exit=fatal".to_string(),
            };
            let iso = image::make_iso(&image::IsoSpec::new(&kernel, &cmdline, &[]), false)?;
            let firmware = options.firmware.unwrap_or(Firmware::Bios);
            let accel = options.accel.unwrap_or_else(qemu::default_accel);
            let status = qemu::Machine::new(&iso, firmware, accel)
                .extra_args(&options.qemu_args)
                .run_interactive()?;
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
        "test" => {
            if !rest.is_empty() {
                return Err(Failure(format!("`test` takes no arguments\n\n{USAGE}")));
            }
            test::run()
        }
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(0)
        }
        other => Err(Failure(format!("unknown command `{other}`\n\n{USAGE}"))),
    }
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
