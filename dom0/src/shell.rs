//! The operator's shell: one command per line.

/// A command the shell understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Info,
    Poweroff,
    /// An empty line.
    Nothing,
}

/// Each command with its one-line description, in `help` order.
pub const COMMANDS: [(&str, &str); 3] = [
    ("help", "list the commands"),
    (
        "info",
        "domain, memory, vCPUs, hypervisor and ABI versions, uptime, CPL",
    ),
    ("poweroff", "power the machine off"),
];

impl Command {
    /// Parses a line; the error is the unknown command word.
    pub fn parse(line: &str) -> Result<Command, &str> {
        let mut words = line.split_ascii_whitespace();
        match words.next() {
            None => Ok(Command::Nothing),
            Some("help" | "?") => Ok(Command::Help),
            Some("info") => Ok(Command::Info),
            Some("poweroff" | "halt") => Ok(Command::Poweroff),
            Some(other) => Err(other),
        }
    }
}

/// `1d 02:03:04.567`-style uptime from nanoseconds.
pub struct Uptime(pub u64);

impl core::fmt::Display for Uptime {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
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

    #[test]
    fn parses_commands_and_names_unknown_ones() {
        assert_eq!(Command::parse("help"), Ok(Command::Help));
        assert_eq!(Command::parse("  info  "), Ok(Command::Info));
        assert_eq!(Command::parse("poweroff"), Ok(Command::Poweroff));
        assert_eq!(Command::parse(""), Ok(Command::Nothing));
        assert_eq!(Command::parse("reboot now"), Err("reboot"));
    }

    #[test]
    fn help_lists_every_parsed_command() {
        for (name, _) in COMMANDS {
            assert!(Command::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn uptime_reads_as_a_clock() {
        assert_eq!(Uptime(0).to_string(), "00:00:00.000");
        assert_eq!(Uptime(3_723_456_000_000).to_string(), "01:02:03.456");
        assert_eq!(Uptime(90_000_000_000_000).to_string(), "1d 01:00:00.000");
    }
}
