//! The QEMU scenarios: what each boots and what its console must show.
//!
//! A scenario is data: the hypervisor (hv-core, or Xen 4.17 as the
//! reference host), firmware, accelerator, hypervisor command line, the
//! initial domain's kernel and other modules, a hard timeout, and how the
//! run is judged. `cargo xtask test` boots each one and hands the captured
//! console and the way the run ended to [`Scenario::check`], which decides
//! the single result line. Keeping the judgement here, apart from the QEMU
//! driver, lets it be unit-tested.
//!
//! Two kinds of judgement:
//! - console lines in order plus an expected [`Ending`] (hv-core's own boot
//!   and fault scenarios);
//! - a test guest's result line (`PASS <name>`, `FAIL <name>: <why>`,
//!   `SKIP <name>: <why>`), which decides; a guest that passes or skips must
//!   then power the machine off. [`GUEST_TESTS`] runs each guest on both
//!   hypervisors from one line of data.
#![deny(unsafe_code)]

pub mod domains;
pub mod fuzz;

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

/// The hypervisor GRUB boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hypervisor {
    HvCore,
    /// Xen 4.17 (Debian's build), the reference host: the same guest binary
    /// runs on both, so its behaviour and its speed can be compared.
    Xen,
}

impl Hypervisor {
    /// The suffix of guest-test names (`abi-traps@xen`).
    pub const fn tag(self) -> &'static str {
        match self {
            Self::HvCore => "hv-core",
            Self::Xen => "xen",
        }
    }

    /// The prefix of the hypervisor's own console lines; a line carrying it
    /// is never a guest's result line.
    pub const fn log_prefix(self) -> &'static str {
        match self {
            Self::HvCore => "(hv)",
            Self::Xen => "(XEN)",
        }
    }

    /// Console lines after which the hypervisor does nothing more, and
    /// what each means. Xen halts rather than ending QEMU when its initial
    /// domain shuts down or when it panics (with `noreboot`), so the xtask
    /// stops QEMU once it sees one of these. hv-core ends QEMU itself.
    pub const fn terminal_lines(self) -> &'static [(&'static str, Ending)] {
        match self {
            Self::HvCore => &[],
            Self::Xen => &[
                ("Hardware Dom# halted: halting machine", Ending::PowerOff),
                ("Hardware Dom# crashed:", Ending::DomainCrash),
                ("Hardware Dom# shutdown: rebooting machine", Ending::Reset),
                ("Manual reset required", Ending::Panic),
                ("Reboot in five seconds", Ending::Panic),
            ],
        }
    }
}

/// How a run ended, as the machine showed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// hv-core's isa-debug-exit success code (QEMU status 33).
    DebugExitSuccess,
    /// hv-core's isa-debug-exit failure code (QEMU status 35): a fatal
    /// error in hv-core, reported on the console.
    DebugExitFailure,
    /// The initial domain powered the machine off: ACPI S5 under hv-core
    /// (QEMU status 0), Xen's "halting machine" line under Xen.
    PowerOff,
    /// Xen: the initial domain crashed.
    DomainCrash,
    /// Xen panicked (and, with `noreboot`, waits for a manual reset).
    Panic,
    /// The machine reset: QEMU runs with `-no-reboot`, so it exits.
    Reset,
}

impl Ending {
    /// What the end of a run means on `host`; `None` for a QEMU error.
    pub fn of(host: Hypervisor, end: &RunEnd) -> Option<Self> {
        match (host, end) {
            (_, RunEnd::TimedOut) => None,
            (_, RunEnd::Stopped(line)) => host
                .terminal_lines()
                .iter()
                .find(|(pattern, _)| line_matches(line, pattern))
                .map(|&(_, ending)| ending),
            (Hypervisor::HvCore, RunEnd::Exited(0)) => Some(Self::PowerOff),
            (Hypervisor::HvCore, RunEnd::Exited(33)) => Some(Self::DebugExitSuccess),
            (Hypervisor::HvCore, RunEnd::Exited(35)) => Some(Self::DebugExitFailure),
            // Xen never ends QEMU itself, except by resetting the machine.
            (Hypervisor::Xen, RunEnd::Exited(0)) => Some(Self::Reset),
            (_, RunEnd::Exited(_)) => None,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::DebugExitSuccess => "debug-exit success",
            Self::DebugExitFailure => "debug-exit failure",
            Self::PowerOff => "powered off",
            Self::DomainCrash => "the initial domain crashed",
            Self::Panic => "the hypervisor panicked",
            Self::Reset => "the machine reset",
        }
    }
}

/// How QEMU stopped, as the xtask saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// QEMU exited by itself with this status.
    Exited(i32),
    /// The xtask stopped QEMU after this terminal line (see
    /// [`Hypervisor::terminal_lines`]).
    Stopped(String),
    /// The xtask killed QEMU at the scenario's timeout.
    TimedOut,
}

impl std::fmt::Display for RunEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited(status) => write!(f, "QEMU exited with status {status}"),
            Self::Stopped(line) => write!(f, "stopped after `{}`", line.trim()),
            Self::TimedOut => write!(f, "timed out"),
        }
    }
}

/// A multiboot2 module put on the image, all zero bytes. (Xen takes the
/// last four bytes of a first module that is not an ELF image for the
/// length it would decompress to; zeros keep that harmless.)
#[derive(Clone, Copy, Debug)]
pub struct Module {
    /// File name on the image (under /boot).
    pub name: &'static str,
    /// Contents: this many zero bytes.
    pub size: usize,
    pub cmdline: &'static str,
}

/// A kernel booted as the initial domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// The `dom0` crate's binary.
    Dom0,
    /// A binary of the `test-guests` package (`tests/guests/src/bin/<name>.rs`).
    Guest(&'static str),
    /// A test guest whose `HvCore` ABI note the xtask rewrites to claim
    /// another ABI version (`major.minor`), to test the refusal.
    GuestClaimingAbi(&'static str, u16, u16),
    /// A PV kernel image anywhere on disk (one's own:
    /// `cargo xtask run --kernel PATH`).
    File(&'static str),
    /// The guest crate `cargo xtask new-guest` writes, made and built by
    /// the xtask outside the workspace ([`NEW_GUEST`]).
    NewGuest,
}

/// The name of the crate the new-guest scenarios make with `cargo xtask
/// new-guest` (and of its image in dom0's bundle).
pub const NEW_GUEST: &str = "mykernel";

impl Kernel {
    /// The image's name: its binary's name under
    /// `target/x86_64-unknown-none/release/`, or a file's path.
    pub const fn binary(self) -> &'static str {
        match self {
            Self::Dom0 => "dom0",
            Self::Guest(name) | Self::GuestClaimingAbi(name, ..) | Self::File(name) => name,
            Self::NewGuest => NEW_GUEST,
        }
    }
}

/// The initial domain: the first multiboot2 module, with its command line.
#[derive(Clone, Copy, Debug)]
pub struct InitialDomain {
    pub kernel: Kernel,
    pub cmdline: &'static str,
}

/// How a scenario is judged.
#[derive(Clone, Copy, Debug)]
pub enum Judge {
    /// Each pattern must match a console line (see [`line_matches`]), in
    /// order (consecutive patterns may match the same line), and the run
    /// must end so.
    Console {
        expect: &'static [&'static str],
        ending: Ending,
    },
    /// The named test guest's single result line decides.
    ResultLine(&'static str),
    /// As [`Judge::ResultLine`], and then `check` on the whole console:
    /// for what a guest cannot see itself, such as how its output
    /// reached the console.
    ResultLineAndConsole {
        guest: &'static str,
        check: fn(&str) -> Result<(), String>,
    },
    /// A dom0 shell session: `expect` in order as for [`Judge::Console`],
    /// each of `anywhere` on some line in any order (guests running side
    /// by side print in no fixed order), then `check` on the whole
    /// console (the `list` table, numbers `info` printed, a domU's result
    /// line), and the run must end so.
    Shell {
        expect: &'static [&'static str],
        anywhere: &'static [&'static str],
        check: fn(&str) -> Result<(), String>,
        ending: Ending,
    },
}

/// One step of a scripted shell session (see [`Typist`]).
#[derive(Clone, Copy, Debug)]
pub enum Step {
    /// A line typed at the next prompt.
    Type(&'static str),
    /// Wait for a console line matching this pattern before going on.
    WaitFor(&'static str),
    /// These steps, this many times over.
    Repeat(u32, &'static [Step]),
}

/// The steps as [`Typist`] script lines.
pub fn script(steps: &[Step]) -> Vec<String> {
    let mut lines = Vec::new();
    for step in steps {
        match *step {
            Step::Type(line) => lines.push(line.to_string()),
            Step::WaitFor(pattern) => lines.push(format!("{WAIT_PREFIX}{pattern}")),
            Step::Repeat(times, steps) => {
                let once = script(steps);
                for _ in 0..times {
                    lines.extend(once.iter().cloned());
                }
            }
        }
    }
    lines
}

/// What a scenario came to: the word and reason on its result line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(String),
    Skip(String),
}

#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub hypervisor: Hypervisor,
    pub firmware: Firmware,
    pub accel: Accel,
    /// The hypervisor's command line. For Xen, the xtask puts its own base
    /// line (serial console, `noreboot`, ...) before it.
    pub cmdline: &'static str,
    /// The first module, if any.
    pub initial_domain: Option<InitialDomain>,
    /// Zero-filled modules, after the initial domain.
    pub modules: &'static [Module],
    /// Images added to dom0's bundle under these names (as `cargo xtask
    /// run --image NAME=PATH` adds them), beside the project's own.
    pub bundle_extra: &'static [(&'static str, Kernel)],
    pub timeout: Duration,
    pub judge: Judge,
    /// What is typed at dom0's shell, a line per prompt ([`DOM0_PROMPT`]).
    pub input: &'static [Step],
    /// The machine's CPUs (QEMU's `-smp`).
    pub cpus: u8,
}

/// dom0's shell prompt; scripted input is typed a line per prompt.
pub const DOM0_PROMPT: &str = "dom0> ";

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
    "smp: # of # CPUs up (APIC ids 0",
    "no dom0 module: nothing to run; powering off",
];

/// [`NO_DOM0`] on a machine with more CPUs: each comes up.
const fn smp_boot(
    name: &'static str,
    firmware: Firmware,
    cpus: u8,
    cmdline: &'static str,
    expect: &'static [&'static str],
) -> Scenario {
    Scenario {
        cmdline,
        cpus,
        judge: Judge::Console {
            expect,
            ending: Ending::DebugExitSuccess,
        },
        ..boot(name, firmware, Accel::Tcg)
    }
}

const fn boot(name: &'static str, firmware: Firmware, accel: Accel) -> Scenario {
    Scenario {
        name,
        hypervisor: Hypervisor::HvCore,
        firmware,
        accel,
        cmdline: "debug-exit",
        initial_domain: None,
        modules: &[],
        bundle_extra: &[],
        timeout: Duration::from_secs(120),
        judge: Judge::Console {
            expect: NO_DOM0,
            ending: Ending::DebugExitSuccess,
        },
        input: &[],
        cpus: 1,
    }
}

const fn fault(
    name: &'static str,
    crash: &'static str,
    expect: &'static [&'static str],
) -> Scenario {
    Scenario {
        cmdline: crash,
        judge: Judge::Console {
            expect,
            ending: Ending::DebugExitFailure,
        },
        ..boot(name, Firmware::Bios, Accel::Tcg)
    }
}

/// hv-core's own scenarios, and the reference host's smoke test.
pub const SCENARIOS: &[Scenario] = &[
    boot("boot-bios-tcg", Firmware::Bios, Accel::Tcg),
    boot("boot-uefi-tcg", Firmware::Uefi, Accel::Tcg),
    boot("boot-bios-kvm", Firmware::Bios, Accel::Kvm),
    boot("boot-uefi-kvm", Firmware::Uefi, Accel::Kvm),
    // Every CPU the MADT lists comes up, on either firmware (each leaves
    // a different page below 1 MiB free for the start-up trampoline).
    smp_boot(
        "smp-2-bios",
        Firmware::Bios,
        2,
        "debug-exit",
        &[
            BANNER,
            "cpus: 2 (ACPI #)",
            "smp: 2 of 2 CPUs up (APIC ids 0 1)",
            "no dom0 module: nothing to run; powering off",
        ],
    ),
    smp_boot(
        "smp-4-uefi",
        Firmware::Uefi,
        4,
        "debug-exit",
        &[
            BANNER,
            "cpus: 4 (ACPI #)",
            "smp: 4 of 4 CPUs up (APIC ids 0 1 2 3)",
            "no dom0 module: nothing to run; powering off",
        ],
    ),
    smp_boot(
        "smp-4-bios",
        Firmware::Bios,
        4,
        "debug-exit",
        &[
            "smp: 4 of 4 CPUs up (APIC ids 0 1 2 3)",
            "no dom0 module: nothing to run; powering off",
        ],
    ),
    // `maxcpus=` limits it, the boot CPU counted.
    smp_boot(
        "smp-maxcpus",
        Firmware::Bios,
        4,
        "debug-exit maxcpus=2",
        &[
            "cpus: 4 (ACPI #)",
            "maxcpus=2: 2 more CPUs left off",
            "smp: 2 of 2 CPUs up (APIC ids 0 1)",
            "no dom0 module: nothing to run; powering off",
        ],
    ),
    Scenario {
        cmdline: "",
        judge: Judge::Console {
            expect: NO_DOM0,
            ending: Ending::PowerOff,
        },
        ..boot("poweroff-acpi-s5", Firmware::Bios, Accel::Tcg)
    },
    Scenario {
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
        // The first module is dom0's kernel; zeros are no ELF image.
        judge: Judge::Console {
            expect: &[
                BANNER,
                "module 0: #, 5 KiB, command line \"first module --with args\"",
                "module 1: #, 69 KiB, command line \"second\"",
                "dom0 image refused: ",
                "hv-core stopped: cannot build dom0",
            ],
            ending: Ending::DebugExitFailure,
        },
        ..boot("modules-listed", Firmware::Bios, Accel::Tcg)
    },
    Scenario {
        cmdline: "debug-exit frobnicate loglevel=loud",
        judge: Judge::Console {
            expect: &[
                "WARNING: command line: unknown option `frobnicate` ignored",
                "WARNING: command line: bad value `loud` for `loglevel` ignored",
                BANNER,
            ],
            ending: Ending::DebugExitSuccess,
        },
        ..boot("bad-cmdline-reported", Firmware::Bios, Accel::Tcg)
    },
    fault(
        "fault-page-fault",
        "debug-exit crash=page-fault",
        &[
            "crashing on purpose (crash=PageFault)",
            "FATAL: page fault (#PF, vector 14) in hv-core on CPU 0 (APIC id #)",
            "error code 0x0000 [not-present read supervisor data]",
            "RIP 0xffff82d0#  CS 0xe008  RFLAGS #",
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
    // The reference host itself: Xen boots with our command line, reaches
    // the point of building dom0, refuses a first module that is not an ELF
    // image and panics; the xtask stops QEMU on Xen's last line. This proves the
    // fetch, image, boot and capture path without depending on any guest.
    Scenario {
        name: "xen-refuses-non-elf-dom0",
        hypervisor: Hypervisor::Xen,
        cmdline: "",
        modules: &[Module {
            name: "not-elf",
            size: 4096,
            cmdline: "",
        }],
        timeout: Duration::from_secs(60),
        judge: Judge::Console {
            expect: &[
                "(XEN) Xen version 4.17.#",
                "(XEN) Command line: console=com1",
                "(XEN) ELF: not an ELF binary",
                "(XEN) Could not construct domain 0",
                "(XEN) Manual reset required ('noreboot' specified)",
            ],
            ending: Ending::Panic,
        },
        ..boot("", Firmware::Bios, Accel::Tcg)
    },
    // dom0 in ring 3, its shell driven as an operator would.
    Scenario {
        cmdline: "debug-exit=fatal",
        initial_domain: Some(InitialDomain {
            kernel: Kernel::Dom0,
            cmdline: "",
        }),
        input: &[
            Step::Type("help"),
            Step::Type("info"),
            Step::Type("poweroff"),
        ],
        judge: Judge::Console {
            expect: &[
                "(hv) starting dom0 in ring 3",
                "(d0) dom0: PV kernel on pv-guest-sdk, ABI 0.1 (Xen interface 4.17), running at CPL 3",
                "(d0) dom0> help",
                "poweroff   power the machine off",
                "(d0) dom0> info",
                "(d0) domain:     0 (initial domain, privileged)",
                "(d0) CPUs:       # (physical)",
                "(d0) hypervisor: interface 4.17-hv-core",
                "(d0) CPL:        3",
                "(d0) dom0> poweroff",
                "(hv) d0 shut down (poweroff): powering off",
            ],
            ending: Ending::PowerOff,
        },
        ..boot("dom0-shell", Firmware::Bios, Accel::Tcg)
    },
    // dom0 on a 2-CPU machine: the toolstack sees both CPUs.
    Scenario {
        cmdline: "debug-exit=fatal",
        initial_domain: Some(InitialDomain {
            kernel: Kernel::Dom0,
            cmdline: "",
        }),
        input: &[Step::Type("info"), Step::Type("poweroff")],
        judge: Judge::Console {
            expect: &[
                "(hv) smp: 2 of 2 CPUs up (APIC ids 0 1)",
                "(d0) dom0> info",
                "(d0) CPUs:       2 (physical)",
                "(hv) d0 shut down (poweroff): powering off",
            ],
            ending: Ending::PowerOff,
        },
        cpus: 2,
        ..boot("dom0-smp-2", Firmware::Bios, Accel::Tcg)
    },
    // A fault with nowhere to bounce kills the domain alone, with a report.
    Scenario {
        cmdline: "debug-exit",
        initial_domain: Some(InitialDomain {
            kernel: Kernel::Guest("fault-unhandled"),
            cmdline: "",
        }),
        judge: Judge::Console {
            expect: &[
                "(d0) fault-unhandled: trap table cleared (0)",
                "(hv) ERROR: d0v0 killed: page fault (#PF) at 0x10, error code #, could not be bounced: no handler registered; RIP 0xffffffff8# RSP # CS 0xe033",
                "(hv) hv-core stopped: dom0 crashed",
            ],
            ending: Ending::DebugExitFailure,
        },
        ..boot("guest-fault-kills-domain", Firmware::Bios, Accel::Tcg)
    },
    // hv-core only: a return frame hv-core cannot use enters the failsafe
    // callback. Xen 4.17 crashes dom0 instead for this frame (a bad CS on
    // HYPERVISOR_iret); its failsafe path is for segment loads on context
    // switch, which one vCPU cannot provoke.
    guest_test("abi-failsafe@hv-core", "abi-failsafe", Hypervisor::HvCore),
    // Security finding 7 (hv-core only): a 32-bit CS with RIP at 4 GiB is
    // refused before hv-core's iretq. Under TCG Xen returns to the
    // truncated RIP, as QEMU does for any iretq, so it cannot agree.
    guest_test(
        "sec-compat-rip@hv-core",
        "sec-compat-rip",
        Hypervisor::HvCore,
    ),
    // An image built for another ABI is refused, naming both versions.
    Scenario {
        cmdline: "debug-exit",
        initial_domain: Some(InitialDomain {
            kernel: Kernel::GuestClaimingAbi("sdk-hello", 0, 3),
            cmdline: "",
        }),
        judge: Judge::Console {
            expect: &[
                "(hv) ERROR: dom0 image refused: built for ABI 0.3, this hypervisor implements ABI 0.1",
                "(hv) hv-core stopped: cannot build dom0",
            ],
            ending: Ending::DebugExitFailure,
        },
        ..boot("abi-mismatch-refused", Firmware::Bios, Accel::Tcg)
    },
    // Security finding 6 (hv-core only): not-present PTEs with unsafe
    // addresses (L1TF) are refused. Xen 4.17 checks only on L1TF-affected
    // CPUs (never under TCG), and crashes or shadows the domain instead.
    guest_test("sec-l1tf-pte@hv-core", "sec-l1tf-pte", Hypervisor::HvCore),
    // Security finding 8 (hv-core only): no domain text reaches the
    // console looking like hv-core's, or able to drive the terminal.
    Scenario {
        cmdline: "debug-exit=fatal loglevel=debug",
        judge: Judge::ResultLineAndConsole {
            guest: "sec-console-spoof",
            check: spoof_check,
        },
        ..guest_test(
            "sec-console-spoof@hv-core",
            "sec-console-spoof",
            Hypervisor::HvCore,
        )
    },
    // Security finding 4 (hv-core only): a 128 KiB console_io write lets
    // the CPU go while it is under way.
    guest_test(
        "sec-console-stall@hv-core",
        "sec-console-stall",
        Hypervisor::HvCore,
    ),
];

/// The console after `sec-console-spoof` (the initial domain, d0): no raw
/// ESC byte; no line that starts with `(hv)` holds the guest's forged
/// text; every line of the guest's text starts with `(d0) `; hv-core's
/// lines after the guest left a line open (its logged refusal, its
/// power-off line) start lines of their own.
pub fn spoof_check(console: &str) -> Result<(), String> {
    // Control bytes shown, not sent to the terminal reading this.
    let shown = |line: &str| -> String {
        line.chars()
            .map(|c| match c {
                c if c.is_control() => format!("\\x{:02x}", c as u32),
                c => c.to_string(),
            })
            .collect()
    };
    let mut problems = Vec::new();
    // From hv-core's first line on (the boot loader draws its menu with
    // escape sequences of its own).
    if let Some(line) = console
        .lines()
        .skip_while(|line| !line.starts_with("(hv) "))
        .find(|line| line.contains('\x1b'))
    {
        problems.push(format!(
            "a raw ESC byte reached the console: `{}`",
            shown(line)
        ));
    }
    for line in console.lines() {
        let line = line.trim_end();
        let guests = line.contains("FORGED") || line.contains("sec-console-spoof");
        if line.starts_with("(hv)") && line.contains("FORGED") {
            problems.push(format!(
                "the guest's text reached the console as an hv-core line: `{}`",
                shown(line)
            ));
        } else if guests && !line.starts_with("(d0) ") {
            problems.push(format!(
                "a line of the guest's text does not start with `(d0) `: `{}`",
                shown(line)
            ));
        }
    }
    for (what, text) in [
        ("the refused mmu_update", "page-table request refused"),
        ("the power-off", "shut down (poweroff)"),
    ] {
        match console.lines().find(|line| line.contains(text)) {
            None => problems.push(format!("hv-core logged no line about {what} (`{text}`)")),
            Some(line) if !line.starts_with("(hv) ") => problems.push(format!(
                "hv-core's line about {what} did not start a line: `{}`",
                shown(line)
            )),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// One test guest as the initial domain on `hypervisor`, judged by its
/// result line. hv-core runs with `debug-exit=fatal`: the guest's power-off
/// is ACPI S5 (QEMU status 0) and a fatal error is status 35.
pub const fn guest_test(
    name: &'static str,
    guest: &'static str,
    hypervisor: Hypervisor,
) -> Scenario {
    Scenario {
        name,
        hypervisor,
        firmware: Firmware::Bios,
        accel: Accel::Tcg,
        cmdline: match hypervisor {
            Hypervisor::HvCore => "debug-exit=fatal",
            Hypervisor::Xen => "",
        },
        initial_domain: Some(InitialDomain {
            kernel: Kernel::Guest(guest),
            cmdline: "",
        }),
        modules: &[],
        bundle_extra: &[],
        timeout: Duration::from_secs(60),
        judge: Judge::ResultLine(guest),
        input: &[],
        cpus: 1,
    }
}

/// `on_both!("abi-traps")`: the test guest `tests/guests/src/bin/abi-traps.rs`
/// as two scenarios, `abi-traps@hv-core` and `abi-traps@xen`.
macro_rules! on_both {
    ($guest:literal) => {
        [
            guest_test(concat!($guest, "@hv-core"), $guest, Hypervisor::HvCore),
            guest_test(concat!($guest, "@xen"), $guest, Hypervisor::Xen),
        ]
    };
}

/// The ABI test guests, each run on hv-core and on Xen. Adding a guest is
/// one line here: `on_both!("<bin name>"),`. The guest prints exactly one
/// result line naming itself (its bin name) and then shuts down.
pub const GUEST_TESTS: &[[Scenario; 2]] = &[
    // Start of day, console output and power-off: the SDK's smallest guest.
    on_both!("sdk-hello"),
    // The ABI itself, in raw hypercalls and frames.
    on_both!("abi-hypercall"),
    on_both!("abi-traps"),
    on_both!("abi-events"),
    on_both!("abi-pagetable"),
    on_both!("abi-syscall"),
    on_both!("abi-timer"),
    on_both!("abi-pvclock"),
    on_both!("abi-cpuid"),
    on_both!("abi-domctl"),
    // Two vCPUs in one domain (the initial domain, `dom0_max_vcpus=2`).
    [
        Scenario {
            cmdline: "debug-exit=fatal dom0_max_vcpus=2",
            ..guest_test("abi-vcpus@hv-core", "abi-vcpus", Hypervisor::HvCore)
        },
        Scenario {
            cmdline: "dom0_max_vcpus=2",
            ..guest_test("abi-vcpus@xen", "abi-vcpus", Hypervisor::Xen)
        },
    ],
    [
        Scenario {
            cmdline: "debug-exit=fatal dom0_max_vcpus=2",
            ..guest_test("abi-vcpu-info@hv-core", "abi-vcpu-info", Hypervisor::HvCore)
        },
        Scenario {
            cmdline: "dom0_max_vcpus=2",
            ..guest_test("abi-vcpu-info@xen", "abi-vcpu-info", Hypervisor::Xen)
        },
    ],
    // Four vCPUs at work at once: counter, IPIs all to all, TLB races
    // (on four CPUs here; its @smp2 twin does not exist, the scenario
    // is not a one-CPU one).
    [
        Scenario {
            cmdline: "debug-exit=fatal dom0_max_vcpus=4",
            cpus: 4,
            timeout: Duration::from_secs(120),
            ..guest_test("smp-vcpus@hv-core", "smp-vcpus", Hypervisor::HvCore)
        },
        Scenario {
            cmdline: "dom0_max_vcpus=4",
            cpus: 2,
            timeout: Duration::from_secs(120),
            ..guest_test("smp-vcpus@xen", "smp-vcpus", Hypervisor::Xen)
        },
    ],
    // The SDK's safe layers over it.
    on_both!("sdk-traps"),
    on_both!("sdk-memory"),
    on_both!("sdk-events"),
    on_both!("sdk-usermode"),
    // Security regressions (docs/security.md), one guest per finding.
    // Finding 14: two vCPUs racing on one hypercall get Xen's answers.
    [
        Scenario {
            cmdline: "debug-exit=fatal dom0_max_vcpus=8",
            cpus: 2,
            ..guest_test("sec-smp-races@hv-core", "sec-smp-races", Hypervisor::HvCore)
        },
        Scenario {
            cmdline: "dom0_max_vcpus=8",
            cpus: 2,
            ..guest_test("sec-smp-races@xen", "sec-smp-races", Hypervisor::Xen)
        },
    ],
    // Finding 12: a preempted hypercall's continuation is its vCPU's
    // (two vCPUs on two CPUs).
    [
        Scenario {
            cmdline: "debug-exit=fatal dom0_max_vcpus=2",
            cpus: 2,
            ..guest_test(
                "sec-smp-continuation@hv-core",
                "sec-smp-continuation",
                Hypervisor::HvCore,
            )
        },
        Scenario {
            cmdline: "dom0_max_vcpus=2",
            cpus: 2,
            ..guest_test(
                "sec-smp-continuation@xen",
                "sec-smp-continuation",
                Hypervisor::Xen,
            )
        },
    ],
    on_both!("sec-compat-syscall"),
    // Finding 3: a huge page-table validation is cut into passes, with
    // events delivered in between.
    on_both!("sec-pt-preempt"),
    on_both!("sec-timer-overflow"),
    on_both!("sec-null-ldt"),
    on_both!("sec-decrease-flush"),
    on_both!("sec-reservation-preempt"),
];

/// Every scenario `cargo xtask test` runs, in order.
pub fn scenarios() -> impl Iterator<Item = &'static Scenario> {
    SCENARIOS
        .iter()
        .chain(GUEST_TESTS.as_flattened())
        .chain(domains::SCENARIOS)
        .chain([&fuzz::SCENARIO])
}

/// One boot of a scenario: on its own CPU count, or as its two-CPU twin.
#[derive(Clone, Debug)]
pub struct Run {
    pub scenario: &'static Scenario,
    /// QEMU's `-smp`.
    pub cpus: u8,
    /// The scenario's name, with `@smp2` for a twin.
    pub name: String,
}

/// The suffix of a scenario's two-CPU twin.
pub const SMP_TWIN: &str = "@smp2";

/// Whether `scenario` also runs on two CPUs: every hv-core scenario made
/// for one CPU, so that each feature is seen with a second CPU taking
/// vCPUs, except the two-minute fuzz session (its seed covers the
/// hypercall surface, not the placement).
fn has_smp_twin(scenario: &Scenario) -> bool {
    scenario.hypervisor == Hypervisor::HvCore
        && scenario.cpus == 1
        && scenario.accel == Accel::Tcg
        && scenario.name != fuzz::SCENARIO.name
}

/// Every run: each scenario as written, then the two-CPU twins.
pub fn runs() -> Vec<Run> {
    let own = scenarios().map(|scenario| Run {
        scenario,
        cpus: scenario.cpus,
        name: scenario.name.to_string(),
    });
    let twins = scenarios().filter(|s| has_smp_twin(s)).map(|scenario| Run {
        scenario,
        cpus: 2,
        name: format!("{}{SMP_TWIN}", scenario.name),
    });
    own.chain(twins).collect()
}

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

/// A guest's console line without the tag a hypervisor may put before
/// guest output (`(d0) `, say); `None` for the hypervisor's own lines.
pub fn guest_text(host: Hypervisor, line: &str) -> Option<&str> {
    let line = line.trim_start();
    if line.starts_with(host.log_prefix()) {
        return None;
    }
    let untagged = line
        .strip_prefix('(')
        .and_then(|rest| rest.split_once(") "))
        .filter(|(tag, _)| !tag.contains(' '))
        .map_or(line, |(_, text)| text);
    Some(untagged.trim_end())
}

/// A scripted operator at dom0's shell: what `cargo xtask test` types for
/// a scenario's [`Step`]s and what piped `cargo xtask run` input types.
///
/// Script lines are typed one per appearance of the prompt, as a person
/// would (typing ahead is not safe: the boot loader and the UART's reset
/// swallow bytes that arrive before the shell reads them). A line
/// `wait:<pattern>` types nothing: the next line waits until a whole
/// console line matching `<pattern>` (see [`line_matches`]) has appeared
/// since the last typed line, so a script can let a guest run, exit or
/// crash before it goes on. Each wait takes its own line: two waits for
/// the same pattern need two such lines, and waits for different patterns
/// are met in whatever order their lines come.
#[derive(Clone, Debug)]
pub struct Typist {
    script: Vec<String>,
    prompt: String,
    next: usize,
    /// Console offset where the next prompt is looked for.
    prompt_from: usize,
    /// Console offset where the last line was typed: waits look after it.
    typed_at: usize,
    /// Start offsets of the lines waits have taken since then.
    taken: Vec<usize>,
    /// Where the pending wait goes on looking (the whole lines before it
    /// were checked against its pattern).
    wait_from: usize,
    /// Where the next prompt search goes on looking (no prompt starts
    /// between `prompt_from` and here).
    prompt_scanned: usize,
    /// Console bytes looked at so far, all polls together: a cost
    /// measure (the host tests hold it linear in the console's length).
    examined: usize,
}

/// The script-line prefix of a wait step (see [`Typist`]).
pub const WAIT_PREFIX: &str = "wait:";

impl Typist {
    pub fn new(script: &[String], prompt: &str) -> Self {
        Self {
            script: script.to_vec(),
            prompt: prompt.to_string(),
            next: 0,
            prompt_from: 0,
            typed_at: 0,
            taken: Vec::new(),
            wait_from: 0,
            prompt_scanned: 0,
            examined: 0,
        }
    }

    /// Whether every step has been taken.
    pub fn done(&self) -> bool {
        self.next >= self.script.len()
    }

    /// The step the script is at (a line to type or a `wait:`), if any.
    pub fn pending(&self) -> Option<&str> {
        self.script.get(self.next).map(String::as_str)
    }

    /// Given the whole console so far, the line to type now (without its
    /// newline), if the script has one ready. Waits that are met are
    /// passed in the same call.
    pub fn poll(&mut self, console: &[u8]) -> Option<String> {
        while let Some(step) = self.script.get(self.next).cloned() {
            if let Some(pattern) = step.strip_prefix(WAIT_PREFIX) {
                let line = self.untaken_line_matching(console, pattern)?;
                self.taken.push(line);
                self.next_step();
                continue;
            }
            let at = self.find_prompt(console)?;
            self.prompt_from = at + self.prompt.len();
            self.prompt_scanned = self.prompt_from;
            self.typed_at = console.len();
            self.taken.clear();
            self.next_step();
            return Some(step);
        }
        None
    }

    /// On to the next step; a wait there looks from the last typed line
    /// again (waits are met in any order).
    fn next_step(&mut self) {
        self.next += 1;
        self.wait_from = self.typed_at;
    }

    /// Where the first prompt after the last one used starts. Each byte
    /// is searched once, however often this is asked while none comes.
    fn find_prompt(&mut self, console: &[u8]) -> Option<usize> {
        let prompt = self.prompt.as_bytes();
        if prompt.is_empty() {
            return None;
        }
        let from = self.prompt_scanned.max(self.prompt_from);
        if console.len() < from + prompt.len() {
            return None;
        }
        self.examined += console.len() - from;
        match console[from..]
            .windows(prompt.len())
            .position(|w| w == prompt)
        {
            Some(at) => Some(from + at),
            None => {
                // A prompt cut short at the end may still be completed.
                self.prompt_scanned = console.len() + 1 - prompt.len();
                None
            }
        }
    }

    /// The start offset of the first whole line after the last typed line
    /// that matches `pattern` and no earlier wait took. Each line is
    /// checked once per wait step, however often this is asked.
    fn untaken_line_matching(&mut self, console: &[u8], pattern: &str) -> Option<usize> {
        let mut start = self.wait_from.max(self.typed_at).min(console.len());
        while let Some(len) = console[start..].iter().position(|&b| b == b'\n') {
            self.examined += len + 1;
            let line = String::from_utf8_lossy(&console[start..start + len]).replace('\r', "");
            if !self.taken.contains(&start) && line_matches(&line, pattern) {
                return Some(start);
            }
            start += len + 1;
            self.wait_from = start;
        }
        None
    }
}

/// A guest's result line, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultLine<'a> {
    pub name: &'a str,
    pub verdict: Verdict,
}

/// `PASS <name>`, `FAIL <name>: <why>` or `SKIP <name>: <why>`.
pub fn parse_result_line(text: &str) -> Option<ResultLine<'_>> {
    let (word, rest) = text.split_once(' ')?;
    let (name, why) = match rest.split_once(": ") {
        Some((name, why)) => (name, why.trim()),
        None => (rest.trim(), ""),
    };
    if name.is_empty() || name.contains(' ') {
        return None;
    }
    let verdict = match word {
        "PASS" => Verdict::Pass,
        "FAIL" => Verdict::Fail(why.to_string()),
        "SKIP" => Verdict::Skip(why.to_string()),
        _ => return None,
    };
    Some(ResultLine { name, verdict })
}

impl Scenario {
    /// Judges a finished run from its console and the way it ended.
    pub fn check(&self, console: &str, end: &RunEnd) -> Verdict {
        // Xen ignores options it does not know; the xtask's command line
        // must not rot unnoticed.
        if self.hypervisor == Hypervisor::Xen
            && let Some(line) = console
                .lines()
                .find(|line| line_matches(line, "(XEN) parameter \"#\" unknown!"))
        {
            return Verdict::Fail(format!("Xen rejected a command-line option: `{line}`"));
        }
        match self.judge {
            Judge::Console { expect, ending } => self.check_console(console, end, expect, ending),
            Judge::ResultLine(guest) => self.check_result_line(console, end, guest),
            Judge::ResultLineAndConsole { guest, check } => {
                match self.check_result_line(console, end, guest) {
                    Verdict::Pass => check(console).map_or_else(Verdict::Fail, |()| Verdict::Pass),
                    other => other,
                }
            }
            Judge::Shell {
                expect,
                anywhere,
                check,
                ending,
            } => {
                if *end == RunEnd::TimedOut {
                    return Verdict::Fail(format!("timed out after {} s", self.timeout.as_secs()));
                }
                if let Err(why) = check(console) {
                    return Verdict::Fail(why);
                }
                if let Some(missing) = anywhere
                    .iter()
                    .find(|pattern| !console.lines().any(|line| line_matches(line, pattern)))
                {
                    return Verdict::Fail(format!("console never showed `{missing}`"));
                }
                self.check_console(console, end, expect, ending)
            }
        }
    }

    fn check_console(&self, console: &str, end: &RunEnd, expect: &[&str], want: Ending) -> Verdict {
        if *end == RunEnd::TimedOut {
            return Verdict::Fail(format!("timed out after {} s", self.timeout.as_secs()));
        }
        // In order, though several patterns may match the same line.
        let lines: Vec<&str> = console.lines().collect();
        let mut at = 0;
        for pattern in expect {
            match lines[at..]
                .iter()
                .position(|line| line_matches(line, pattern))
            {
                Some(found) => at += found,
                None => {
                    return Verdict::Fail(format!("console never showed `{pattern}` (in order)"));
                }
            }
        }
        match Ending::of(self.hypervisor, end) {
            Some(got) if got == want => Verdict::Pass,
            got => Verdict::Fail(format!(
                "{end} ({}), expected: {}",
                got.map_or("QEMU error or unexpected exit", Ending::describe),
                want.describe()
            )),
        }
    }

    fn check_result_line(&self, console: &str, end: &RunEnd, guest: &str) -> Verdict {
        let results: Vec<ResultLine> = console
            .lines()
            .filter_map(|line| guest_text(self.hypervisor, line))
            .filter_map(parse_result_line)
            .collect();
        let ending = Ending::of(self.hypervisor, end);
        let how = match ending {
            Some(ending) => format!("{end} ({})", ending.describe()),
            None if *end == RunEnd::TimedOut => {
                format!("timed out after {} s", self.timeout.as_secs())
            }
            None => format!("{end} (QEMU error or unexpected exit)"),
        };
        let result = match results.as_slice() {
            [] => return Verdict::Fail(format!("no result line; {how}")),
            [one] => one,
            many => {
                return Verdict::Fail(format!("{} result lines, expected one", many.len()));
            }
        };
        if result.name != guest {
            return Verdict::Fail(format!(
                "the result line names `{}`, expected `{guest}`",
                result.name
            ));
        }
        match &result.verdict {
            Verdict::Fail(why) => Verdict::Fail(why.clone()),
            // Passing or skipping, the guest must still shut down cleanly.
            _ if ending != Some(Ending::PowerOff) => {
                let word = if result.verdict == Verdict::Pass {
                    "PASS"
                } else {
                    "SKIP"
                };
                Verdict::Fail(format!("printed {word}, then {how}"))
            }
            verdict => verdict.clone(),
        }
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

    fn script(lines: &[&str]) -> Typist {
        let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        Typist::new(&lines, DOM0_PROMPT)
    }

    #[test]
    fn the_typist_types_one_line_per_prompt() {
        let mut t = script(&["help", "info"]);
        assert_eq!(t.poll(b"booting\n"), None);
        let mut console = b"booting\n(d0) dom0> ".to_vec();
        assert_eq!(t.poll(&console).as_deref(), Some("help"));
        // The same prompt is not used twice.
        assert_eq!(t.poll(&console), None);
        console.extend(b"help\ncommands...\n(d0) dom0> ");
        assert_eq!(t.poll(&console).as_deref(), Some("info"));
        assert!(t.done());
        console.extend(b"info\n(d0) dom0> ");
        assert_eq!(t.poll(&console), None);
    }

    #[test]
    fn a_wait_holds_the_next_line_until_a_whole_matching_line_appears() {
        let mut t = script(&["create hello", "wait:domain # (hello) exited", "list"]);
        let mut console = b"(d0) dom0> ".to_vec();
        assert_eq!(t.poll(&console).as_deref(), Some("create hello"));
        console.extend(b"create hello\n(d0) created domain 1 (hello)\n(d0) dom0> ");
        // The prompt is there, but hello has not exited yet.
        assert_eq!(t.poll(&console), None);
        console.extend(b"(d0) [hello] Hello\n(d0) domain 1 (hello) exi");
        assert_eq!(t.poll(&console), None, "half a line is not a line");
        console.extend(b"ted\n");
        // The prompt printed before the awaited line still counts.
        assert_eq!(t.poll(&console).as_deref(), Some("list"));
        assert!(t.done());
    }

    #[test]
    fn each_wait_takes_its_own_line_in_any_order() {
        let mut t = script(&[
            "create spin",
            "wait:[spin] spin:",
            "wait:[spin] spin:",
            "list",
        ]);
        let mut console = b"(d0) [spin] spin: 1 iterations\n(d0) dom0> ".to_vec();
        assert_eq!(t.poll(&console).as_deref(), Some("create spin"));
        console.extend(b"create spin\n(d0) dom0> (d0) [spin] spin: 2 iterations\n");
        // One progress line since `create spin` (the first one came
        // before it): the second wait holds.
        assert_eq!(t.poll(&console), None);
        assert_eq!(t.pending(), Some("wait:[spin] spin:"));
        console.extend(b"(d0) [spin] spin: 3 iterations\n");
        assert_eq!(t.poll(&console).as_deref(), Some("list"));

        let mut t = script(&["go", "wait:(ping) exited", "wait:(pong) exited", "list"]);
        let mut console = b"dom0> ".to_vec();
        assert_eq!(t.poll(&console).as_deref(), Some("go"));
        console.extend(b"go\ndom0> domain 1 (pong) exited\n");
        assert_eq!(t.poll(&console), None);
        console.extend(b"domain 2 (ping) exited\n");
        assert_eq!(t.poll(&console).as_deref(), Some("list"));
    }

    /// A console that grows a line at a time (a guest tracing every
    /// hypercall writes megabytes) is read once, not once per poll: the
    /// xtask polls after every chunk it receives, and a quadratic typist
    /// fell so far behind a fuzzer's trace that the run timed out with
    /// the fuzzer's end still unread.
    #[test]
    fn the_typist_reads_a_growing_console_in_linear_time() {
        let mut t = script(&["go", "wait:the end", "list"]);
        let mut console = b"dom0> ".to_vec();
        assert_eq!(t.poll(&console).as_deref(), Some("go"));
        for i in 0..3_000 {
            console.extend(format!("(d2) trace #{i} XenVersion(17) 0x1 0x2\n").as_bytes());
            assert_eq!(t.poll(&console), None);
        }
        console.extend(b"the end\n");
        assert_eq!(t.poll(&console), None, "no prompt since `go`");
        for _ in 0..3_000 {
            console.extend(b"(d0) no prompt in this line\n");
            assert_eq!(t.poll(&console), None);
        }
        console.extend(b"dom0> ");
        assert_eq!(t.poll(&console).as_deref(), Some("list"));
        assert!(
            t.examined < 4 * console.len(),
            "{} bytes looked at for a console of {}",
            t.examined,
            console.len()
        );
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = scenarios().map(|s| s.name).collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
    }

    #[test]
    fn every_one_cpu_hv_core_scenario_also_runs_on_two() {
        let runs = runs();
        let mut names: Vec<_> = runs.iter().map(|r| r.name.as_str()).collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "run names are unique");
        let twin = |name: &str| {
            runs.iter()
                .find(|r| r.name == format!("{name}{SMP_TWIN}"))
                .map(|r| r.cpus)
        };
        assert_eq!(twin("dom0-shell"), Some(2));
        assert_eq!(twin("abi-traps@hv-core"), Some(2));
        assert_eq!(twin("boot-bios-tcg"), Some(2));
        assert_eq!(twin("abi-traps@xen"), None);
        assert_eq!(twin("smp-4-bios"), None);
        assert_eq!(twin("fuzz-hypercalls"), None);
        assert!(runs.iter().any(|r| r.name == "dom0-shell" && r.cpus == 1));
    }

    #[test]
    fn one_line_makes_a_scenario_per_hypervisor() {
        let [on_hv_core, on_xen] = on_both!("abi-traps");
        assert_eq!(on_hv_core.name, "abi-traps@hv-core");
        assert_eq!(on_hv_core.hypervisor, Hypervisor::HvCore);
        assert_eq!(on_xen.name, "abi-traps@xen");
        assert_eq!(on_xen.hypervisor, Hypervisor::Xen);
        for scenario in [on_hv_core, on_xen] {
            assert_eq!(
                scenario.initial_domain.unwrap().kernel,
                Kernel::Guest("abi-traps")
            );
            assert!(matches!(scenario.judge, Judge::ResultLine("abi-traps")));
        }
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
            "(hv) smp: 1 of 1 CPUs up (APIC ids 0)",
            "(hv) no dom0 module: nothing to run; powering off",
        ]
        .join("\n")
    }

    #[test]
    fn a_good_boot_passes() {
        assert_eq!(
            SCENARIOS[0].check(&boot_console(), &RunEnd::Exited(33)),
            Verdict::Pass
        );
    }

    fn failure(verdict: Verdict) -> String {
        match verdict {
            Verdict::Fail(reason) => reason,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_wrong_exit_status_fails() {
        let err = failure(SCENARIOS[0].check(&boot_console(), &RunEnd::Exited(35)));
        assert!(
            err.contains("status 35 (debug-exit failure), expected: debug-exit success"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_line_fails_and_names_it() {
        let console = boot_console().replace("lapic", "apic");
        let err = failure(SCENARIOS[0].check(&console, &RunEnd::Exited(33)));
        assert!(err.contains("lapic: id #"), "{err}");
    }

    #[test]
    fn lines_out_of_order_fail() {
        let console = boot_console();
        let mut lines: Vec<_> = console.lines().collect();
        lines.swap(0, 3);
        assert_ne!(
            SCENARIOS[0].check(&lines.join("\n"), &RunEnd::Exited(33)),
            Verdict::Pass
        );
    }

    #[test]
    fn a_timeout_fails() {
        let err = failure(SCENARIOS[0].check(&boot_console(), &RunEnd::TimedOut));
        assert!(err.contains("timed out"), "{err}");
    }

    fn xen_smoke() -> &'static Scenario {
        SCENARIOS
            .iter()
            .find(|s| s.hypervisor == Hypervisor::Xen)
            .unwrap()
    }

    const XEN_PANIC: &str = "(XEN) Xen version 4.17.7 (Debian 4.17.7+13) debug=n\n\
        (XEN) Command line: console=com1 com1=115200,8n1 smap=0 noreboot\n\
        (XEN) ELF: not an ELF binary\n\
        (XEN) Panic on CPU 0:\n\
        (XEN) Could not construct domain 0\n\
        (XEN) Manual reset required ('noreboot' specified)\n";

    #[test]
    fn xen_endings_come_from_its_terminal_lines() {
        let stopped = |line: &str| RunEnd::Stopped(line.to_string());
        let xen = Hypervisor::Xen;
        assert_eq!(
            Ending::of(xen, &stopped("(XEN) Hardware Dom0 halted: halting machine")),
            Some(Ending::PowerOff)
        );
        assert_eq!(
            Ending::of(
                xen,
                &stopped("(XEN) Hardware Dom0 crashed: 'noreboot' set - not rebooting.")
            ),
            Some(Ending::DomainCrash)
        );
        assert_eq!(
            Ending::of(
                xen,
                &stopped("(XEN) Manual reset required ('noreboot' specified)")
            ),
            Some(Ending::Panic)
        );
        // Xen does not power off; QEMU ending on its own means a reset.
        assert_eq!(Ending::of(xen, &RunEnd::Exited(0)), Some(Ending::Reset));
        assert_eq!(
            Ending::of(Hypervisor::HvCore, &RunEnd::Exited(0)),
            Some(Ending::PowerOff)
        );
    }

    #[test]
    fn the_xen_smoke_test_wants_the_panic() {
        let panic = RunEnd::Stopped("(XEN) Manual reset required ('noreboot' specified)".into());
        assert_eq!(xen_smoke().check(XEN_PANIC, &panic), Verdict::Pass);
        let halted = RunEnd::Stopped("(XEN) Hardware Dom0 halted: halting machine".into());
        let err = failure(xen_smoke().check(XEN_PANIC, &halted));
        assert!(err.contains("expected: the hypervisor panicked"), "{err}");
    }

    #[test]
    fn an_unknown_xen_option_fails() {
        let console = format!("(XEN) parameter \"frob\" unknown!\n{XEN_PANIC}");
        let panic = RunEnd::Stopped("(XEN) Manual reset required".into());
        let err = failure(xen_smoke().check(&console, &panic));
        assert!(err.contains("parameter \"frob\" unknown!"), "{err}");
    }

    #[test]
    fn terminal_lines_are_unambiguous() {
        for host in [Hypervisor::HvCore, Hypervisor::Xen] {
            for (line, _) in host.terminal_lines() {
                let line = line.replace('#', "0");
                let hits = host
                    .terminal_lines()
                    .iter()
                    .filter(|(pattern, _)| line_matches(&line, pattern))
                    .count();
                assert_eq!(hits, 1, "{line}");
            }
        }
    }

    #[test]
    fn result_lines_parse() {
        assert_eq!(
            parse_result_line("PASS abi-traps"),
            Some(ResultLine {
                name: "abi-traps",
                verdict: Verdict::Pass
            })
        );
        assert_eq!(
            parse_result_line("FAIL abi-traps: #GP not bounced: got vector 14"),
            Some(ResultLine {
                name: "abi-traps",
                verdict: Verdict::Fail("#GP not bounced: got vector 14".into())
            })
        );
        assert_eq!(
            parse_result_line("SKIP abi-grants: no grant tables"),
            Some(ResultLine {
                name: "abi-grants",
                verdict: Verdict::Skip("no grant tables".into())
            })
        );
        assert_eq!(parse_result_line("PASSED abi-traps"), None);
        assert_eq!(parse_result_line("PASS"), None);
        assert_eq!(parse_result_line("PASS two words"), None);
    }

    #[test]
    fn guest_text_drops_a_guest_tag_but_not_hypervisor_lines() {
        let xen = Hypervisor::Xen;
        assert_eq!(guest_text(xen, "PASS x\r"), Some("PASS x"));
        assert_eq!(guest_text(xen, "(d0) PASS x"), Some("PASS x"));
        assert_eq!(guest_text(xen, "(XEN) PASS x"), None);
        assert_eq!(guest_text(Hypervisor::HvCore, "(hv) PASS x"), None);
        assert_eq!(
            guest_text(Hypervisor::HvCore, "(not a tag) PASS x"),
            Some("(not a tag) PASS x")
        );
    }

    fn guest_on(host: Hypervisor) -> Scenario {
        guest_test("demo@test", "demo", host)
    }

    const XEN_HALT: &str = "(XEN) Hardware Dom0 halted: halting machine";

    #[test]
    fn a_passing_guest_that_powers_off_passes_on_both_hosts() {
        let console = format!("(XEN) Freed 664kB init memory\nPASS demo\n{XEN_HALT}\n");
        assert_eq!(
            guest_on(Hypervisor::Xen).check(&console, &RunEnd::Stopped(XEN_HALT.into())),
            Verdict::Pass
        );
        let console = "(hv) hv-core 0.1.0 (abi 0.1)\n(d0) PASS demo\n";
        assert_eq!(
            guest_on(Hypervisor::HvCore).check(console, &RunEnd::Exited(0)),
            Verdict::Pass
        );
    }

    #[test]
    fn the_guest_result_line_decides() {
        let console = "FAIL demo: wrong errno\n";
        assert_eq!(
            guest_on(Hypervisor::HvCore).check(console, &RunEnd::Exited(0)),
            Verdict::Fail("wrong errno".into())
        );
        let console = "SKIP demo: no SMAP here\n";
        assert_eq!(
            guest_on(Hypervisor::HvCore).check(console, &RunEnd::Exited(0)),
            Verdict::Skip("no SMAP here".into())
        );
    }

    #[test]
    fn a_pass_without_a_clean_shutdown_fails() {
        let crashed = RunEnd::Stopped("(XEN) Hardware Dom0 crashed: 'noreboot' set".into());
        let err = failure(guest_on(Hypervisor::Xen).check("PASS demo\n", &crashed));
        assert!(err.contains("printed PASS, then"), "{err}");
        assert!(err.contains("the initial domain crashed"), "{err}");
        let err = failure(guest_on(Hypervisor::HvCore).check("PASS demo\n", &RunEnd::Exited(35)));
        assert!(err.contains("debug-exit failure"), "{err}");
        let err = failure(guest_on(Hypervisor::HvCore).check("PASS demo\n", &RunEnd::TimedOut));
        assert!(err.contains("timed out after 60 s"), "{err}");
    }

    fn spoof_scenario() -> &'static Scenario {
        SCENARIOS
            .iter()
            .find(|s| s.name == "sec-console-spoof@hv-core")
            .unwrap()
    }

    /// What sec-console-spoof's console looks like with output sanitised
    /// and tagged per UART line.
    const SPOOF_CLEAN: &str = "(hv) starting dom0 in ring 3\n\
        (d0) sec-console-spoof: a line left open\n\
        (hv) d0: page-table request refused: frame 0 is not the domain's\n\
        (d0) (hv) FORGED after hv-core's line\n\
        (d0) sec-console-spoof: ?[2K(hv) FORGED2 over an erased line\n\
        (d0) \n\
        (d0) (hv) FORGED3 after a newline of its own\n\
        (d0) PASS sec-console-spoof\n\
        (d0) sec-console-spoof: a line left open at power-off\n\
        (hv) d0 shut down (poweroff): powering off\n";

    #[test]
    fn the_spoof_judge_passes_tagged_sanitised_output() {
        assert_eq!(
            spoof_scenario().check(SPOOF_CLEAN, &RunEnd::Exited(0)),
            Verdict::Pass
        );
    }

    #[test]
    fn the_spoof_judge_fails_a_forged_line_an_escape_or_a_joined_line() {
        let forged = SPOOF_CLEAN.replace("(d0) (hv) FORGED after", "(hv) FORGED after");
        let err = failure(spoof_scenario().check(&forged, &RunEnd::Exited(0)));
        assert!(err.contains("as an hv-core line"), "{err}");

        // The boot loader's own escapes before hv-core's first line are
        // not the guest's.
        let grub = format!("\x1b[H\x1b[J  Booting `hv-core'\n{SPOOF_CLEAN}");
        assert_eq!(
            spoof_scenario().check(&grub, &RunEnd::Exited(0)),
            Verdict::Pass
        );
        let escaped = SPOOF_CLEAN.replace("?[2K", "\x1b[2K");
        let err = failure(spoof_scenario().check(&escaped, &RunEnd::Exited(0)));
        assert!(err.contains("a raw ESC byte"), "{err}");

        let joined = SPOOF_CLEAN.replace("open\n(hv) d0: page", "open(hv) d0: page");
        let err = failure(spoof_scenario().check(&joined, &RunEnd::Exited(0)));
        assert!(
            err.contains("about the refused mmu_update did not start a line"),
            "{err}"
        );

        let untagged = SPOOF_CLEAN.replace(
            "(d0) sec-console-spoof: a line left open\n",
            "sec-console-spoof: a line left open\n",
        );
        let err = failure(spoof_scenario().check(&untagged, &RunEnd::Exited(0)));
        assert!(err.contains("does not start with `(d0) `"), "{err}");

        let no_power_off = SPOOF_CLEAN.replace("(hv) d0 shut down (poweroff): powering off\n", "");
        let err = failure(spoof_scenario().check(&no_power_off, &RunEnd::Exited(0)));
        assert!(err.contains("no line about the power-off"), "{err}");
    }

    #[test]
    fn the_spoof_judge_lets_the_result_line_decide_first() {
        let console = SPOOF_CLEAN.replace(
            "PASS sec-console-spoof",
            "FAIL sec-console-spoof: console_io refused",
        );
        assert_eq!(
            spoof_scenario().check(&console, &RunEnd::Exited(0)),
            Verdict::Fail("console_io refused".into())
        );
        let err = failure(spoof_scenario().check(SPOOF_CLEAN, &RunEnd::Exited(35)));
        assert!(err.contains("printed PASS, then"), "{err}");
    }

    #[test]
    fn no_result_line_or_several_or_another_name_fail() {
        let host = Hypervisor::HvCore;
        let err = failure(guest_on(host).check("(hv) FATAL: oops\n", &RunEnd::Exited(35)));
        assert!(err.contains("no result line"), "{err}");
        let err = failure(guest_on(host).check("PASS demo\nPASS demo\n", &RunEnd::Exited(0)));
        assert!(err.contains("2 result lines"), "{err}");
        let err = failure(guest_on(host).check("PASS other\n", &RunEnd::Exited(0)));
        assert!(err.contains("names `other`"), "{err}");
    }
}
