//! The hypervisor command line: `key=value` options and bare flags separated
//! by spaces, as GRUB passes them (`loglevel=debug debug-exit`).
//!
//! Unknown keys are reported, not fatal: a typo must not stop a machine from
//! booting, but the operator must see it.

use core::fmt;

/// How verbose the serial log is (`loglevel=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Where QEMU's isa-debug-exit device is used to end the run (`debug-exit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugExit {
    /// Not used: power off through ACPI, halt on a fatal error.
    Off,
    /// Only a fatal error exits through the device (with a failure code);
    /// power-off still goes through ACPI S5. `cargo xtask run` uses this.
    Fatal,
    /// Power-off and fatal errors both exit through the device. Test runs.
    All,
}

/// A deliberate fault during boot (`crash=`), for testing the exception path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// Read an unmapped address: #PF.
    PageFault,
    /// Execute `ud2`: #UD.
    InvalidOpcode,
    /// Divide by zero: #DE.
    DivideError,
    /// Overflow the boot stack into its guard page: #PF on the stack,
    /// handled on the #DF IST stack.
    StackOverflow,
}

/// Parsed options. Defaults are what a real machine wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub log_level: LogLevel,
    pub debug_exit: DebugExit,
    pub crash: Option<Crash>,
    /// dom0's memory in bytes (`dom0_mem=`, Xen's spelling: `256M`, `1G`,
    /// `65536K` or plain bytes).
    pub dom0_mem: u64,
    /// At most this many CPUs are brought up, the boot CPU included
    /// (`maxcpus=`, Xen's spelling); all the MADT lists when not given.
    pub max_cpus: Option<usize>,
    /// dom0's vCPUs (`dom0_max_vcpus=`, Xen's spelling, a count): vCPU 0
    /// starts, dom0 brings up the others with `VCPUOP_up`. At most
    /// [`crate::event_channel::MAX_VCPUS`]; 1 when not given.
    pub dom0_max_vcpus: usize,
}

/// dom0's memory when `dom0_mem=` is not given.
pub const DEFAULT_DOM0_MEM: u64 = 64 << 20;

impl Default for Options {
    fn default() -> Self {
        Self {
            log_level: LogLevel::Info,
            debug_exit: DebugExit::Off,
            crash: None,
            dom0_mem: DEFAULT_DOM0_MEM,
            max_cpus: None,
            dom0_max_vcpus: 1,
        }
    }
}

/// A size with an optional K/M/G suffix (powers of 1024).
pub fn parse_size(value: &str) -> Option<u64> {
    let (digits, shift) = match value.as_bytes().last()? {
        b'k' | b'K' => (&value[..value.len() - 1], 10),
        b'm' | b'M' => (&value[..value.len() - 1], 20),
        b'g' | b'G' => (&value[..value.len() - 1], 30),
        _ => (value, 0),
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1 << shift)
}

/// A word of the command line that was not understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdlineError<'a> {
    UnknownKey(&'a str),
    BadValue { key: &'a str, value: &'a str },
}

impl fmt::Display for CmdlineError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKey(key) => write!(f, "unknown option `{key}` ignored"),
            Self::BadValue { key, value } => {
                write!(f, "bad value `{value}` for `{key}` ignored")
            }
        }
    }
}

impl Options {
    /// Parses `cmdline`, calling `on_error` for every word it ignores.
    /// Later words override earlier ones.
    pub fn parse<'a>(cmdline: &'a str, mut on_error: impl FnMut(CmdlineError<'a>)) -> Self {
        let mut options = Self::default();
        for word in cmdline.split_ascii_whitespace() {
            let (key, value) = match word.split_once('=') {
                Some((key, value)) => (key, Some(value)),
                None => (word, None),
            };
            let bad = || CmdlineError::BadValue {
                key,
                value: value.unwrap_or(""),
            };
            match key {
                "loglevel" => match value.and_then(parse_log_level) {
                    Some(level) => options.log_level = level,
                    None => on_error(bad()),
                },
                "debug-exit" => match value {
                    None | Some("all") => options.debug_exit = DebugExit::All,
                    Some("fatal") => options.debug_exit = DebugExit::Fatal,
                    Some("off") => options.debug_exit = DebugExit::Off,
                    Some(_) => on_error(bad()),
                },
                "dom0_mem" => match value.and_then(parse_size) {
                    Some(bytes) if bytes >= 1 << 20 => options.dom0_mem = bytes,
                    _ => on_error(bad()),
                },
                "maxcpus" => match value.and_then(|v| v.parse::<usize>().ok()) {
                    Some(n) if n >= 1 => options.max_cpus = Some(n),
                    _ => on_error(bad()),
                },
                "dom0_max_vcpus" => match value.and_then(|v| v.parse::<usize>().ok()) {
                    Some(n) if (1..=crate::event_channel::MAX_VCPUS).contains(&n) => {
                        options.dom0_max_vcpus = n
                    }
                    _ => on_error(bad()),
                },
                "crash" => match value.and_then(parse_crash) {
                    Some(crash) => options.crash = Some(crash),
                    None => on_error(bad()),
                },
                _ => on_error(CmdlineError::UnknownKey(key)),
            }
        }
        options
    }
}

fn parse_log_level(value: &str) -> Option<LogLevel> {
    Some(match value {
        "error" | "0" => LogLevel::Error,
        "warn" | "1" => LogLevel::Warn,
        "info" | "2" => LogLevel::Info,
        "debug" | "3" => LogLevel::Debug,
        "trace" | "4" => LogLevel::Trace,
        _ => return None,
    })
}

fn parse_crash(value: &str) -> Option<Crash> {
    Some(match value {
        "page-fault" => Crash::PageFault,
        "invalid-opcode" => Crash::InvalidOpcode,
        "divide-error" => Crash::DivideError,
        "stack-overflow" => Crash::StackOverflow,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(cmdline: &str) -> (Options, Vec<String>) {
        let mut errors = Vec::new();
        let options = Options::parse(cmdline, |e| errors.push(e.to_string()));
        (options, errors)
    }

    #[test]
    fn empty_gives_defaults() {
        assert_eq!(parse(""), (Options::default(), vec![]));
        assert_eq!(parse("   "), (Options::default(), vec![]));
    }

    #[test]
    fn reads_every_option() {
        let (options, errors) = parse("loglevel=debug debug-exit crash=page-fault");
        assert!(errors.is_empty());
        assert_eq!(options.log_level, LogLevel::Debug);
        assert_eq!(options.debug_exit, DebugExit::All);
        assert_eq!(options.crash, Some(Crash::PageFault));
    }

    #[test]
    fn debug_exit_values() {
        assert_eq!(parse("debug-exit=fatal").0.debug_exit, DebugExit::Fatal);
        assert_eq!(parse("debug-exit=all").0.debug_exit, DebugExit::All);
        assert_eq!(
            parse("debug-exit debug-exit=off").0.debug_exit,
            DebugExit::Off
        );
    }

    #[test]
    fn numeric_log_levels() {
        assert_eq!(parse("loglevel=0").0.log_level, LogLevel::Error);
        assert_eq!(parse("loglevel=4").0.log_level, LogLevel::Trace);
    }

    #[test]
    fn later_words_win() {
        assert_eq!(
            parse("loglevel=trace loglevel=warn").0.log_level,
            LogLevel::Warn
        );
    }

    #[test]
    fn unknown_and_bad_words_are_reported_and_ignored() {
        let (options, errors) = parse("frobnicate loglevel=loud crash= loglevel=error");
        assert_eq!(options.log_level, LogLevel::Error);
        assert_eq!(options.crash, None);
        assert_eq!(
            errors,
            [
                "unknown option `frobnicate` ignored",
                "bad value `loud` for `loglevel` ignored",
                "bad value `` for `crash` ignored",
            ]
        );
    }

    #[test]
    fn tolerates_tabs_and_repeated_spaces() {
        let (options, errors) = parse("\tloglevel=warn  \t debug-exit=fatal ");
        assert!(errors.is_empty());
        assert_eq!(options.log_level, LogLevel::Warn);
        assert_eq!(options.debug_exit, DebugExit::Fatal);
    }

    #[test]
    fn dom0_mem_takes_xen_sizes() {
        let parse = |s| Options::parse(s, |e| panic!("{e}")).dom0_mem;
        assert_eq!(parse("dom0_mem=256M"), 256 << 20);
        assert_eq!(parse("dom0_mem=1G"), 1 << 30);
        assert_eq!(parse("dom0_mem=65536K"), 64 << 20);
        assert_eq!(parse("dom0_mem=16777216"), 16 << 20);
        assert_eq!(parse(""), DEFAULT_DOM0_MEM);
        let mut errors = 0;
        for bad in [
            "dom0_mem=",
            "dom0_mem=12Q",
            "dom0_mem=100K",
            "dom0_mem=99999999999G",
        ] {
            let o = Options::parse(bad, |_| errors += 1);
            assert_eq!(o.dom0_mem, DEFAULT_DOM0_MEM);
        }
        assert_eq!(errors, 4);
    }

    #[test]
    fn dom0_max_vcpus_is_a_count_up_to_the_limit() {
        assert_eq!(parse("").0.dom0_max_vcpus, 1);
        assert_eq!(parse("dom0_max_vcpus=4").0.dom0_max_vcpus, 4);
        let max = crate::event_channel::MAX_VCPUS;
        assert_eq!(
            parse(&format!("dom0_max_vcpus={max}")).0.dom0_max_vcpus,
            max
        );
        for bad in [
            format!("dom0_max_vcpus={}", max + 1),
            "dom0_max_vcpus=0".into(),
            "dom0_max_vcpus=x".into(),
        ] {
            let (options, errors) = parse(&bad);
            assert_eq!(options.dom0_max_vcpus, 1, "{bad}");
            assert_eq!(errors.len(), 1, "{bad}");
        }
    }

    #[test]
    fn maxcpus_is_a_positive_count() {
        assert_eq!(parse("maxcpus=2").0.max_cpus, Some(2));
        assert_eq!(parse("").0.max_cpus, None);
        for bad in ["maxcpus=0", "maxcpus=", "maxcpus=two", "maxcpus"] {
            let (options, errors) = parse(bad);
            assert_eq!(options.max_cpus, None, "{bad}");
            assert_eq!(errors.len(), 1, "{bad}");
        }
    }
}
