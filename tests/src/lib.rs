//! The QEMU scenarios: what each boots and what its console must show.
//!
//! A scenario is data: firmware, accelerator, hypervisor command line,
//! modules, a hard timeout, and the expected ending (QEMU exit status) and
//! console lines. `cargo xtask test` boots each one and hands the captured
//! console and exit status to [`Scenario::check`], which decides the single
//! result line. Keeping the judgement here, apart from the QEMU driver,
//! lets it be unit-tested.
#![deny(unsafe_code)]

use std::time::Duration;

/// The PC firmware QEMU boots the GRUB image with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS, GRUB's i386-pc platform.
    Bios,
    /// OVMF, GRUB's x86_64-efi platform.
    Uefi,
}

/// The accelerator a scenario runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    /// Only where the CPU has hardware virtualization; skipped otherwise.
    Kvm,
}

/// How QEMU must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// isa-debug-exit with hv-core's success code (QEMU status 33).
    DebugExitSuccess,
    /// isa-debug-exit with hv-core's failure code (QEMU status 35).
    DebugExitFailure,
    /// The guest powered the machine off (ACPI S5): QEMU status 0.
    PowerOff,
}

impl Ending {
    pub fn status(self) -> i32 {
        match self {
            Self::DebugExitSuccess => 33,
            Self::DebugExitFailure => 35,
            Self::PowerOff => 0,
        }
    }

    /// What a QEMU exit status means, in words.
    pub fn describe(status: i32) -> &'static str {
        match status {
            0 => "powered off",
            33 => "debug-exit success",
            35 => "debug-exit failure",
            _ => "QEMU error or unexpected exit",
        }
    }
}

/// A multiboot2 module put on the image.
#[derive(Clone, Copy, Debug)]
pub struct Module {
    /// File name on the image (under /boot).
    pub name: &'static str,
    /// Contents: this many bytes of a fixed pattern.
    pub size: usize,
    pub cmdline: &'static str,
}

#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub firmware: Firmware,
    pub accel: Accel,
    pub cmdline: &'static str,
    pub modules: &'static [Module],
    pub timeout: Duration,
    pub ending: Ending,
    /// Each must match a console line (see [`line_matches`]), in order;
    /// consecutive patterns may match the same line.
    pub expect: &'static [&'static str],
}

/// The banner shape every boot must show: `hv-core X.Y.Z (abi X.Y)`.
pub const BANNER: &str = "hv-core # (abi #)";

const NO_DOM0: &[&str] = &[
    BANNER,
    "implements the Xen # PV64 interface",
    "protections: NX on",
    "memory: # MiB RAM, # MiB usable, # MiB free after boot",
    "cpus: # (ACPI #), ioapics: #",
    "tsc: # MHz (calibrated against the PIT",
    "lapic: id #, timer in # mode",
    "one-shot fired after # us",
    "no dom0 module: nothing to run; powering off",
];

const fn boot(name: &'static str, firmware: Firmware, accel: Accel) -> Scenario {
    Scenario {
        name,
        firmware,
        accel,
        cmdline: "debug-exit",
        modules: &[],
        timeout: Duration::from_secs(120),
        ending: Ending::DebugExitSuccess,
        expect: NO_DOM0,
    }
}

const fn fault(
    name: &'static str,
    crash: &'static str,
    expect: &'static [&'static str],
) -> Scenario {
    Scenario {
        name,
        firmware: Firmware::Bios,
        accel: Accel::Tcg,
        cmdline: crash,
        modules: &[],
        timeout: Duration::from_secs(120),
        ending: Ending::DebugExitFailure,
        expect,
    }
}

/// Every scenario `cargo xtask test` runs, in order.
pub const SCENARIOS: &[Scenario] = &[
    boot("boot-bios-tcg", Firmware::Bios, Accel::Tcg),
    boot("boot-uefi-tcg", Firmware::Uefi, Accel::Tcg),
    boot("boot-bios-kvm", Firmware::Bios, Accel::Kvm),
    boot("boot-uefi-kvm", Firmware::Uefi, Accel::Kvm),
    Scenario {
        name: "poweroff-acpi-s5",
        cmdline: "",
        ending: Ending::PowerOff,
        ..boot("", Firmware::Bios, Accel::Tcg)
    },
    Scenario {
        name: "modules-listed",
        cmdline: "debug-exit loglevel=debug",
        modules: &[
            Module {
                name: "first.bin",
                size: 5000,
                cmdline: "first module --with args",
            },
            Module {
                name: "second.bin",
                size: 70_000,
                cmdline: "second",
            },
        ],
        expect: &[
            BANNER,
            "module 0: #, 5 KiB, command line \"first module --with args\"",
            "module 1: #, 69 KiB, command line \"second\"",
            "building dom0 is not implemented yet; powering off",
        ],
        ..boot("", Firmware::Bios, Accel::Tcg)
    },
    Scenario {
        name: "bad-cmdline-reported",
        cmdline: "debug-exit frobnicate loglevel=loud",
        expect: &[
            "WARNING: command line: unknown option `frobnicate` ignored",
            "WARNING: command line: bad value `loud` for `loglevel` ignored",
            BANNER,
        ],
        ..boot("", Firmware::Bios, Accel::Tcg)
    },
    fault(
        "fault-page-fault",
        "debug-exit crash=page-fault",
        &[
            "crashing on purpose (crash=PageFault)",
            "FATAL: page fault (#PF, vector 14) in hv-core on CPU 0 (APIC id #)",
            "error code 0x0000 [not-present read supervisor data]",
            "RIP 0xffff82d0#  CS 0x0008  RFLAGS #",
            "CR2 0xffff800012345000",
            "RAX #",
            "hv-core stopped: exception in hv-core",
        ],
    ),
    fault(
        "fault-stack-overflow",
        "debug-exit crash=stack-overflow",
        &[
            "FATAL: double fault (#DF, vector 8) in hv-core",
            "hv-core stopped: exception in hv-core",
        ],
    ),
    fault(
        "fault-invalid-opcode",
        "debug-exit crash=invalid-opcode",
        &[
            "FATAL: invalid opcode (#UD, vector 6) in hv-core",
            "hv-core stopped: exception in hv-core",
        ],
    ),
];

/// Whether `line` contains `pattern`, where `#` in the pattern stands for
/// any run of non-space characters (a number, an address, a version).
pub fn line_matches(line: &str, pattern: &str) -> bool {
    (0..=line.len())
        .any(|start| line.is_char_boundary(start) && matches_at(&line[start..], pattern))
}

fn matches_at(text: &str, pattern: &str) -> bool {
    match pattern.split_once('#') {
        None => text.starts_with(pattern),
        Some((literal, rest)) => {
            let Some(after) = text.strip_prefix(literal) else {
                return false;
            };
            let run = after.find(' ').unwrap_or(after.len());
            // Try every non-empty prefix of the run, shortest first, so
            // `#.#` style patterns can match parts of one word.
            (1..=run)
                .filter(|&n| after.is_char_boundary(n))
                .any(|n| matches_at(&after[n..], rest))
        }
    }
}

impl Scenario {
    /// Judges a finished run: `Ok` or the reason it failed.
    pub fn check(&self, console: &str, status: Option<i32>) -> Result<(), String> {
        let Some(status) = status else {
            return Err(format!("timed out after {} s", self.timeout.as_secs()));
        };
        // In order, though several patterns may match the same line.
        let lines: Vec<&str> = console.lines().collect();
        let mut at = 0;
        for pattern in self.expect {
            match lines[at..]
                .iter()
                .position(|line| line_matches(line, pattern))
            {
                Some(found) => at += found,
                None => return Err(format!("console never showed `{pattern}` (in order)")),
            }
        }
        let want = self.ending.status();
        if status != want {
            return Err(format!(
                "QEMU exited with status {status} ({}), expected {want} ({})",
                Ending::describe(status),
                Ending::describe(want)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_a_word_or_part_of_one() {
        assert!(line_matches("(hv) hv-core 0.1.0 (abi 0.1)", BANNER));
        assert!(line_matches("tsc: 2893.120 MHz", "tsc: # MHz"));
        assert!(line_matches("tsc: 2893.120 MHz", "tsc: #.# MHz"));
        assert!(!line_matches("(hv) hv-core  (abi 0.1)", BANNER));
        assert!(!line_matches("hv-core 0.1.0 (api 0.1)", BANNER));
        assert!(line_matches(
            "RIP 0xffff82d000201234  CS",
            "RIP 0xffff82d0#  CS"
        ));
        assert!(!line_matches(
            "RIP 0x0000000000201234  CS",
            "RIP 0xffff82d0#  CS"
        ));
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = SCENARIOS.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SCENARIOS.len());
    }

    fn boot_console() -> String {
        [
            "(hv) hv-core 0.1.0 (abi 0.1)",
            "(hv) implements the Xen 4.17 PV64 interface; command line: \"debug-exit\"",
            "(hv) protections: NX on, SMEP on, SMAP on",
            "(hv) memory: 511 MiB RAM, 509 MiB usable, 508 MiB free after boot (hv-core image 200 KiB)",
            "(hv) cpus: 1 (ACPI 2.0+), ioapics: 1, soft-off: ACPI S5",
            "(hv) tsc: 2893.120 MHz (calibrated against the PIT)",
            "(hv) lapic: id 0, timer in one-shot mode at 1000.000 MHz; a 2000 us one-shot fired after 2010 us",
            "(hv) no dom0 module: nothing to run; powering off",
        ]
        .join("\n")
    }

    #[test]
    fn a_good_boot_passes() {
        assert_eq!(SCENARIOS[0].check(&boot_console(), Some(33)), Ok(()));
    }

    #[test]
    fn a_wrong_exit_status_fails() {
        let err = SCENARIOS[0].check(&boot_console(), Some(35)).unwrap_err();
        assert!(
            err.contains("status 35 (debug-exit failure), expected 33"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_line_fails_and_names_it() {
        let console = boot_console().replace("lapic", "apic");
        let err = SCENARIOS[0].check(&console, Some(33)).unwrap_err();
        assert!(err.contains("lapic: id #"), "{err}");
    }

    #[test]
    fn lines_out_of_order_fail() {
        let console = boot_console();
        let mut lines: Vec<_> = console.lines().collect();
        lines.swap(0, 3);
        assert!(SCENARIOS[0].check(&lines.join("\n"), Some(33)).is_err());
    }

    #[test]
    fn a_timeout_fails() {
        assert!(
            SCENARIOS[0]
                .check(&boot_console(), None)
                .unwrap_err()
                .contains("timed out")
        );
    }
}
