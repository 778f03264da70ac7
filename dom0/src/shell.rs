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
}

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
pub const COMMANDS: [(&str, &str); 11] = [
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
        "create <image> [name=..] [memory=MiB] [cmdline=\"..\"]: build and start a domain",
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
    BadName(String),
    BadTarget(String),
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
            Self::BadMemory(value) => write!(
                f,
                "create: memory= takes MiB from 1 to {MAX_MEMORY_MIB}, not `{value}`"
            ),
            Self::BadName(name) => write!(
                f,
                "create: bad name `{name}` (1-32 letters, digits, `-`, `_`, `.`, not all digits)"
            ),
            Self::BadTarget(word) => write!(f, "`{word}` is not a domain id or name"),
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
    };
    let (mut seen_memory, mut seen_cmdline) = (false, false);
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
            _ => return Err(ParseError::UnknownOption(word.clone())),
        };
        if seen {
            let key = match key {
                "name" => "name",
                "memory" => "memory",
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
