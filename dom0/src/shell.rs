//! The operator's shell: one command per line, parsed into a [`Command`]
//! or refused with a one-line [`ParseError`].
//!
//! Words are separated by blanks; a double-quoted run is part of one word
//! with the quotes removed (`cmdline="peer=2 rounds=10"`), so a command
//! line with spaces can be given to `create`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use abi::xen::{DOMID_FIRST_RESERVED, DomId};

/// Memory a domain gets when `create` does not say (MiB).
pub const DEFAULT_MEMORY_MIB: u64 = 16;
/// The most `memory=` may ask for: the SDK's physmap reaches 2 GiB.
pub const MAX_MEMORY_MIB: u64 = 2048;
/// The most vCPUs `create` gives a domain (hv-core's limit per domain).
pub const MAX_DOMAIN_VCPUS: u32 = 8;

/// A command the shell understands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Info,
    Poweroff,
    List,
    Images,
    Create(CreateArgs),
    Destroy(Target),
    Pause(Target),
    Unpause(Target),
    Console(Target),
    /// `vcpu-list [<id|name>]`: every domain's vCPUs, or one domain's.
    VcpuList(Option<Target>),
    /// `vcpu-pin <id|name> <vcpu|all> <cpus|all>`: hard affinity.
    VcpuPin(PinArgs),
    /// An empty line.
    Nothing,
}

/// What `create` was asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateArgs {
    pub image: String,
    pub name: Option<String>,
    pub memory_mib: u64,
    pub cmdline: String,
    /// vCPUs (`vcpus=`): vCPU 0 starts, the guest brings up the others.
    pub vcpus: u32,
}

/// What `vcpu-pin` was asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinArgs {
    pub target: Target,
    /// One vCPU, or `None` for all of the domain's.
    pub vcpu: Option<u32>,
    /// The CPUs, bit n for CPU n (`all` is every bit).
    pub cpus: u64,
}

/// The most CPUs a CPU list may name (the hypervisor runs on at most 64).
pub const MAX_CPUS: u32 = 64;

/// A domain named on the command line: by id, or by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Id(DomId),
    Name(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Id(id) => write!(f, "{id}"),
            Target::Name(name) => f.write_str(name),
        }
    }
}

/// Each command with its one-line description, in `help` order.
pub const COMMANDS: [(&str, &str); 13] = [
    ("help", "list the commands"),
    (
        "info",
        "domain, memory, vCPUs, hypervisor and ABI versions, uptime, CPL",
    ),
    (
        "list",
        "one row per domain: name, id, memory, vCPUs, state, CPU seconds",
    ),
    ("images", "the guest images that can be created"),
    (
        "create",
        "create <image> [name=..] [memory=MiB] [vcpus=N] [cmdline=\"..\"]: build and start a domain",
    ),
    ("destroy", "destroy <id|name>: end a domain now"),
    ("pause", "pause <id|name>: stop scheduling a domain"),
    (
        "unpause",
        "unpause <id|name>: let a paused domain run again",
    ),
    (
        "console",
        "console <id|name>: type into a domain's console; Ctrl-] comes back",
    ),
    (
        "vcpu-list",
        "vcpu-list [id|name]: each vCPU's CPU, state, CPU seconds, affinity",
    ),
    (
        "vcpu-pin",
        "vcpu-pin <id|name> <vcpu|all> <cpus|all>: the CPUs a vCPU may run on (0-1,3)",
    ),
    ("poweroff", "power the machine off"),
    ("halt", "the same as poweroff"),
];

/// Why a line was refused; each prints as one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    UnknownCommand(String),
    UnterminatedQuote,
    /// The command needs an argument it did not get.
    Missing {
        command: &'static str,
        what: &'static str,
    },
    /// More words than the command takes.
    Extra {
        command: &'static str,
        word: String,
    },
    UnknownOption(String),
    DuplicateOption(&'static str),
    BadMemory(String),
    BadVcpus(String),
    BadName(String),
    BadTarget(String),
    BadVcpu(String),
    BadCpus(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownCommand(word) => write!(f, "unknown command `{word}` (try `help`)"),
            Self::UnterminatedQuote => f.write_str("a double quote is not closed"),
            Self::Missing { command, what } => write!(f, "`{command}` needs {what}"),
            Self::Extra { command, word } => {
                write!(f, "`{command}` does not take `{word}`")
            }
            Self::UnknownOption(word) => write!(
                f,
                "create: unknown option `{word}` (name=, memory=, cmdline=)"
            ),
            Self::DuplicateOption(key) => write!(f, "create: `{key}=` is given twice"),
            Self::BadVcpus(value) => write!(
                f,
                "create: vcpus= takes a count from 1 to {MAX_DOMAIN_VCPUS}, not `{value}`"
            ),
            Self::BadMemory(value) => write!(
                f,
                "create: memory= takes MiB from 1 to {MAX_MEMORY_MIB}, not `{value}`"
            ),
            Self::BadName(name) => write!(
                f,
                "create: bad name `{name}` (1-32 letters, digits, `-`, `_`, `.`, not all digits)"
            ),
            Self::BadTarget(word) => write!(f, "`{word}` is not a domain id or name"),
            Self::BadVcpu(word) => write!(f, "vcpu-pin: `{word}` is not a vCPU number or `all`"),
            Self::BadCpus(word) => write!(
                f,
                "vcpu-pin: `{word}` is not a CPU list (`all`, or numbers below {MAX_CPUS} and ranges: 0-1,3)"
            ),
        }
    }
}

impl Command {
    /// Parses one line.
    pub fn parse(line: &str) -> Result<Command, ParseError> {
        let words = split_words(line)?;
        let Some((first, rest)) = words.split_first() else {
            return Ok(Command::Nothing);
        };
        let no_args = |command: Command, name: &'static str| match rest.first() {
            None => Ok(command),
            Some(word) => Err(ParseError::Extra {
                command: name,
                word: word.clone(),
            }),
        };
        match first.as_str() {
            "help" | "?" => no_args(Command::Help, "help"),
            "info" => no_args(Command::Info, "info"),
            "poweroff" | "halt" => no_args(Command::Poweroff, "poweroff"),
            "list" => no_args(Command::List, "list"),
            "images" => no_args(Command::Images, "images"),
            "create" => parse_create(rest).map(Command::Create),
            "destroy" => parse_target("destroy", rest).map(Command::Destroy),
            "pause" => parse_target("pause", rest).map(Command::Pause),
            "unpause" => parse_target("unpause", rest).map(Command::Unpause),
            "console" => parse_target("console", rest).map(Command::Console),
            "vcpu-list" => match rest {
                [] => Ok(Command::VcpuList(None)),
                _ => parse_target("vcpu-list", rest).map(|t| Command::VcpuList(Some(t))),
            },
            "vcpu-pin" => parse_pin(rest).map(Command::VcpuPin),
            other => Err(ParseError::UnknownCommand(other.into())),
        }
    }
}

/// Splits at blanks, keeping double-quoted runs (quotes removed) inside
/// one word.
fn split_words(line: &str) -> Result<Vec<String>, ParseError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(core::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err(ParseError::UnterminatedQuote);
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn parse_create(words: &[String]) -> Result<CreateArgs, ParseError> {
    let Some((image, options)) = words.split_first() else {
        return Err(ParseError::Missing {
            command: "create",
            what: "an image name (see `images`)",
        });
    };
    let mut args = CreateArgs {
        image: image.clone(),
        name: None,
        memory_mib: DEFAULT_MEMORY_MIB,
        cmdline: String::new(),
        vcpus: 1,
    };
    let (mut seen_memory, mut seen_cmdline, mut seen_vcpus) = (false, false, false);
    for word in options {
        let Some((key, value)) = word.split_once('=') else {
            return Err(ParseError::UnknownOption(word.clone()));
        };
        let seen = match key {
            "name" => {
                check_name(value)?;
                args.name.replace(value.into()).is_some()
            }
            "memory" => {
                args.memory_mib = value
                    .parse()
                    .ok()
                    .filter(|mib| (1..=MAX_MEMORY_MIB).contains(mib))
                    .ok_or_else(|| ParseError::BadMemory(value.into()))?;
                core::mem::replace(&mut seen_memory, true)
            }
            "cmdline" => {
                args.cmdline = value.into();
                core::mem::replace(&mut seen_cmdline, true)
            }
            "vcpus" => {
                args.vcpus = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_DOMAIN_VCPUS).contains(n))
                    .ok_or_else(|| ParseError::BadVcpus(value.into()))?;
                core::mem::replace(&mut seen_vcpus, true)
            }
            _ => return Err(ParseError::UnknownOption(word.clone())),
        };
        if seen {
            let key = match key {
                "name" => "name",
                "memory" => "memory",
                "vcpus" => "vcpus",
                _ => "cmdline",
            };
            return Err(ParseError::DuplicateOption(key));
        }
    }
    Ok(args)
}

/// Domain names: short, one word, and never a number (so that `<id|name>`
/// is never ambiguous).
pub fn check_name(name: &str) -> Result<(), ParseError> {
    let ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ParseError::BadName(name.into()))
    }
}

fn parse_target(command: &'static str, words: &[String]) -> Result<Target, ParseError> {
    match words {
        [] => Err(ParseError::Missing {
            command,
            what: "a domain id or name",
        }),
        [word] => {
            if word.bytes().all(|b| b.is_ascii_digit()) {
                word.parse()
                    .ok()
                    .filter(|&id| id < DOMID_FIRST_RESERVED)
                    .map(Target::Id)
                    .ok_or_else(|| ParseError::BadTarget(word.clone()))
            } else {
                check_name(word).map_err(|_| ParseError::BadTarget(word.clone()))?;
                Ok(Target::Name(word.clone()))
            }
        }
        [_, extra, ..] => Err(ParseError::Extra {
            command,
            word: extra.clone(),
        }),
    }
}

fn parse_pin(words: &[String]) -> Result<PinArgs, ParseError> {
    const WHAT: &str = "a domain, a vCPU (or `all`) and CPUs (or `all`)";
    let [target, vcpu, cpus, rest @ ..] = words else {
        return Err(ParseError::Missing {
            command: "vcpu-pin",
            what: WHAT,
        });
    };
    if let Some(extra) = rest.first() {
        return Err(ParseError::Extra {
            command: "vcpu-pin",
            word: extra.clone(),
        });
    }
    let target = parse_target("vcpu-pin", core::slice::from_ref(target))?;
    let vcpu = match vcpu.as_str() {
        "all" => None,
        n => Some(n.parse().map_err(|_| ParseError::BadVcpu(n.into()))?),
    };
    let cpus = parse_cpus(cpus).ok_or_else(|| ParseError::BadCpus(cpus.clone()))?;
    Ok(PinArgs { target, vcpu, cpus })
}

/// `all`, or comma-separated CPU numbers and `a-b` ranges (`0-1,3`), as
/// `xl vcpu-pin` takes them; `None` if it is not one or names no CPU.
pub fn parse_cpus(text: &str) -> Option<u64> {
    if text == "all" {
        return Some(u64::MAX);
    }
    let number = |s: &str| {
        s.parse::<u32>()
            .ok()
            .filter(|&n| n < MAX_CPUS && s.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut mask = 0u64;
    for part in text.split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(part)?, number(part)?),
        };
        if first > last {
            return None;
        }
        for cpu in first..=last {
            mask |= 1 << cpu;
        }
    }
    Some(mask)
}

/// `mask` as a CPU list: `all` when it holds every CPU of `present`, else
/// numbers and ranges (`0-1,3`); `-` for none.
pub fn format_cpus(mask: u64, present: u64) -> String {
    use core::fmt::Write;
    if mask & present == present && present != 0 {
        return "all".into();
    }
    let mut out = String::new();
    let mut cpu = 0;
    while cpu < MAX_CPUS {
        if mask & 1 << cpu == 0 {
            cpu += 1;
            continue;
        }
        let first = cpu;
        while cpu + 1 < MAX_CPUS && mask & 1 << (cpu + 1) != 0 {
            cpu += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        let _ = if first == cpu {
            write!(out, "{first}")
        } else {
            write!(out, "{first}-{cpu}")
        };
        cpu += 1;
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

/// `1d 02:03:04.567`-style uptime from nanoseconds.
pub struct Uptime(pub u64);

impl fmt::Display for Uptime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 / 1_000_000;
        let (s, ms) = (ms / 1000, ms % 1000);
        let (m, s) = (s / 60, s % 60);
        let (h, m) = (m / 60, m % 60);
        let (d, h) = (h / 24, h % 24);
        if d > 0 {
            write!(f, "{d}d ")?;
        }
        write!(f, "{h:02}:{m:02}:{s:02}.{ms:03}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(image: &str) -> CreateArgs {
        CreateArgs {
            image: image.into(),
            name: None,
            memory_mib: DEFAULT_MEMORY_MIB,
            cmdline: String::new(),
            vcpus: 1,
        }
    }

    #[test]
    fn create_takes_a_vcpu_count() {
        assert_eq!(
            Command::parse("create spin vcpus=4"),
            Ok(Command::Create(CreateArgs {
                vcpus: 4,
                ..create("spin")
            }))
        );
        for bad in ["0", "9", "two", ""] {
            assert_eq!(
                Command::parse(&format!("create spin vcpus={bad}")),
                Err(ParseError::BadVcpus(bad.into())),
                "vcpus={bad}"
            );
        }
        assert_eq!(
            Command::parse("create spin vcpus=2 vcpus=2"),
            Err(ParseError::DuplicateOption("vcpus"))
        );
    }

    #[test]
    fn parses_vcpu_list_and_pin() {
        assert_eq!(Command::parse("vcpu-list"), Ok(Command::VcpuList(None)));
        assert_eq!(
            Command::parse("vcpu-list spin"),
            Ok(Command::VcpuList(Some(Target::Name("spin".into()))))
        );
        assert_eq!(
            Command::parse("vcpu-pin 3 0 1"),
            Ok(Command::VcpuPin(PinArgs {
                target: Target::Id(3),
                vcpu: Some(0),
                cpus: 0b10
            }))
        );
        assert_eq!(
            Command::parse("vcpu-pin a all 0-2,5"),
            Ok(Command::VcpuPin(PinArgs {
                target: Target::Name("a".into()),
                vcpu: None,
                cpus: 0b10_0111
            }))
        );
        assert_eq!(
            Command::parse("vcpu-pin a 0 all"),
            Ok(Command::VcpuPin(PinArgs {
                target: Target::Name("a".into()),
                vcpu: Some(0),
                cpus: u64::MAX
            }))
        );
        assert!(matches!(
            Command::parse("vcpu-pin a 0"),
            Err(ParseError::Missing { .. })
        ));
        assert!(matches!(
            Command::parse("vcpu-pin a x 1"),
            Err(ParseError::BadVcpu(w)) if w == "x"
        ));
        assert!(matches!(
            Command::parse("vcpu-pin a 0 1 2"),
            Err(ParseError::Extra { word, .. }) if word == "2"
        ));
        for bad in ["", "64", "2-1", "1,", "-1", "a", "1-", "+1", "0--1"] {
            assert_eq!(parse_cpus(bad), None, "{bad:?}");
        }
        assert_eq!(parse_cpus("63"), Some(1 << 63));
        assert_eq!(parse_cpus("0-63"), Some(u64::MAX));
    }

    #[test]
    fn cpu_lists_print_as_ranges() {
        assert_eq!(format_cpus(0b11, 0b11), "all");
        assert_eq!(format_cpus(u64::MAX, 0b1111), "all");
        assert_eq!(format_cpus(0b10, 0b11), "1");
        assert_eq!(format_cpus(0b1011, 0b1111), "0-1,3");
        assert_eq!(format_cpus(0b1101_0110, 0xff), "1-2,4,6-7");
        assert_eq!(format_cpus(0, 0b11), "-");
        assert_eq!(format_cpus(1 << 63, 0b11), "63");
        for mask in [0b1u64, 0b101, 0b111_0110, 1 << 40 | 7] {
            assert_eq!(parse_cpus(&format_cpus(mask, u64::MAX ^ 1)), Some(mask));
        }
    }

    #[test]
    fn parses_the_simple_commands() {
        assert_eq!(Command::parse("help"), Ok(Command::Help));
        assert_eq!(Command::parse("  info  "), Ok(Command::Info));
        assert_eq!(Command::parse("poweroff"), Ok(Command::Poweroff));
        assert_eq!(Command::parse("list"), Ok(Command::List));
        assert_eq!(Command::parse("images"), Ok(Command::Images));
        assert_eq!(Command::parse(""), Ok(Command::Nothing));
        assert_eq!(
            Command::parse("reboot now"),
            Err(ParseError::UnknownCommand("reboot".into()))
        );
        assert_eq!(
            Command::parse("list all").unwrap_err().to_string(),
            "`list` does not take `all`"
        );
    }

    #[test]
    fn help_lists_every_parsed_command() {
        for (name, _) in COMMANDS {
            assert!(
                !matches!(Command::parse(name), Err(ParseError::UnknownCommand(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn create_takes_an_image_and_options() {
        assert_eq!(
            Command::parse("create hello"),
            Ok(Command::Create(create("hello")))
        );
        let args = CreateArgs {
            name: Some("ping".into()),
            memory_mib: 32,
            cmdline: "peer=1 rounds=10".into(),
            ..create("pingpong")
        };
        assert_eq!(
            Command::parse("create pingpong name=ping memory=32 cmdline=\"peer=1 rounds=10\""),
            Ok(Command::Create(args.clone()))
        );
        // Quotes may surround the whole word too.
        assert_eq!(
            Command::parse("create pingpong \"cmdline=peer=1 rounds=10\" memory=32 name=ping"),
            Ok(Command::Create(args))
        );
        assert_eq!(
            Command::parse("create hello cmdline="),
            Ok(Command::Create(create("hello")))
        );
    }

    #[test]
    fn create_refuses_bad_arguments_in_one_line() {
        let error = |line: &str| Command::parse(line).unwrap_err().to_string();
        assert_eq!(
            error("create"),
            "`create` needs an image name (see `images`)"
        );
        assert_eq!(
            error("create hello colour=red"),
            "create: unknown option `colour=red` (name=, memory=, cmdline=)"
        );
        assert_eq!(
            error("create hello fast"),
            "create: unknown option `fast` (name=, memory=, cmdline=)"
        );
        assert_eq!(
            error("create hello memory=lots"),
            "create: memory= takes MiB from 1 to 2048, not `lots`"
        );
        assert!(error("create hello memory=0").contains("not `0`"));
        assert!(error("create hello memory=4096").contains("not `4096`"));
        assert_eq!(
            error("create hello memory=8 memory=9"),
            "create: `memory=` is given twice"
        );
        assert!(error("create hello name=42").starts_with("create: bad name `42`"));
        assert!(error("create hello name=a/b").starts_with("create: bad name"));
        assert!(error(&format!("create hello name={}", "x".repeat(33))).contains("bad name"));
        assert_eq!(
            error("create hello cmdline=\"a b"),
            "a double quote is not closed"
        );
        for line in ["create hello memory=8 memory=9", "create"] {
            assert!(!error(line).contains('\n'));
        }
    }

    #[test]
    fn targets_are_ids_or_names() {
        assert_eq!(
            Command::parse("destroy 3"),
            Ok(Command::Destroy(Target::Id(3)))
        );
        assert_eq!(
            Command::parse("pause ping"),
            Ok(Command::Pause(Target::Name("ping".into())))
        );
        assert_eq!(
            Command::parse("unpause hello-2"),
            Ok(Command::Unpause(Target::Name("hello-2".into())))
        );
        assert_eq!(
            Command::parse("console 1"),
            Ok(Command::Console(Target::Id(1)))
        );
        let error = |line: &str| Command::parse(line).unwrap_err().to_string();
        assert_eq!(error("destroy"), "`destroy` needs a domain id or name");
        assert_eq!(error("destroy 1 2"), "`destroy` does not take `2`");
        assert_eq!(error("destroy 99999"), "`99999` is not a domain id or name");
        assert_eq!(error("pause 32752"), "`32752` is not a domain id or name");
        assert_eq!(error("pause a/b"), "`a/b` is not a domain id or name");
    }

    #[test]
    fn uptime_reads_as_a_clock() {
        assert_eq!(Uptime(0).to_string(), "00:00:00.000");
        assert_eq!(Uptime(3_723_456_000_000).to_string(), "01:02:03.456");
        assert_eq!(Uptime(90_000_000_000_000).to_string(), "1d 01:00:00.000");
    }
}
