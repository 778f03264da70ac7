//! What the toolstack knows of each domain it made, and how `list` shows
//! domains: the pure half, host-tested.
//!
//! The hypervisor knows domains by id; names are the toolstack's (as in
//! `xl`): unique, defaulting to the image's name, with `-<id>` added when
//! that is taken.

use alloc::format;
use alloc::string::String;

use abi::domctl::{
    DomainInfo, VcpuInfoCtl, XEN_DOMINF_BLOCKED, XEN_DOMINF_DYING, XEN_DOMINF_PAUSED,
    XEN_DOMINF_RUNNING,
};
use abi::ops::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT};
use abi::xen::DomId;

/// The name `list` gives dom0, as `xl` does.
pub const DOM0_NAME: &str = "Domain-0";

/// The name a new domain gets: `wanted` as given, or the image's name,
/// suffixed `-<id>` if a domain already has it. `Err` names the domain that
/// holds a wanted name.
pub fn choose_name(
    wanted: Option<&str>,
    image: &str,
    id: DomId,
    holder: impl Fn(&str) -> Option<DomId>,
) -> Result<String, DomId> {
    match wanted {
        Some(name) => match holder(name) {
            Some(other) => Err(other),
            None => Ok(name.into()),
        },
        None if holder(image).is_none() => Ok(image.into()),
        None => Ok(format!("{image}-{id}")),
    }
}

/// How a domain ended, from its shutdown reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Exited,
    Crashed,
    Rebooted,
    /// Any other reason (suspend, watchdog, ...), by number.
    Other(u32),
}

impl Ending {
    pub fn of(reason: u32) -> Self {
        match reason {
            SHUTDOWN_POWEROFF => Self::Exited,
            SHUTDOWN_CRASH => Self::Crashed,
            SHUTDOWN_REBOOT => Self::Rebooted,
            other => Self::Other(other),
        }
    }

    /// The report line: `domain 3 (hello) exited`.
    pub fn report(self, id: DomId, name: &str) -> String {
        match self {
            Self::Exited => format!("domain {id} ({name}) exited"),
            Self::Crashed => format!("domain {id} ({name}) crashed"),
            Self::Rebooted => format!("domain {id} ({name}) asked to reboot; destroyed"),
            Self::Other(reason) => format!("domain {id} ({name}) shut down (reason {reason})"),
        }
    }
}

/// `xl list`'s six state letters: running, blocked, paused, shutdown, the
/// shutdown reason (`c` crashed, `r` reboot, `s` suspend, `w` watchdog),
/// dying.
pub fn state_letters(info: &DomainInfo) -> String {
    let flag = |bit: u32, letter: char| {
        if info.flags & bit != 0 { letter } else { '-' }
    };
    let reason = match info.shutdown_reason() {
        Some(reason) => b"-rscw".get(reason as usize).map_or('?', |&b| b as char),
        None => '-',
    };
    let shutdown = if info.shutdown_reason().is_some() {
        's'
    } else {
        '-'
    };
    [
        flag(XEN_DOMINF_RUNNING, 'r'),
        flag(XEN_DOMINF_BLOCKED, 'b'),
        flag(XEN_DOMINF_PAUSED, 'p'),
        shutdown,
        reason,
        flag(XEN_DOMINF_DYING, 'd'),
    ]
    .into_iter()
    .collect()
}

/// The header of `list`.
pub fn list_header() -> String {
    format!(
        "{:<24} {:>5} {:>5} {:>5} {:>8} {:>9}",
        "Name", "ID", "Mem", "VCPUs", "State", "Time(s)"
    )
}

/// One row of `list`: memory in MiB from the pages the domain holds, CPU
/// time in seconds with one decimal.
pub fn list_row(name: &str, info: &DomainInfo) -> String {
    let mib = info.tot_pages * 4 / 1024;
    let tenths = info.cpu_time / 100_000_000;
    format!(
        "{:<24} {:>5} {:>5} {:>5} {:>8} {:>7}.{}",
        name,
        info.domain,
        mib,
        info.nr_online_vcpus,
        state_letters(info),
        tenths / 10,
        tenths % 10
    )
}

/// The header of `vcpu-list` (as `xl vcpu-list`).
pub fn vcpu_list_header() -> String {
    format!(
        "{:<24} {:>5} {:>5} {:>5} {:>5} {:>9}  {}",
        "Name", "ID", "VCPU", "CPU", "State", "Time(s)", "Affinity"
    )
}

/// One row of `vcpu-list`: the CPU it is on or last ran on (`-` while
/// down), `xl`'s three state letters (running, blocked, `p` for down), CPU
/// seconds, the CPUs it may run on.
pub fn vcpu_list_row(name: &str, id: DomId, info: &VcpuInfoCtl, affinity: &str) -> String {
    let cpu = if info.online != 0 {
        format!("{}", info.cpu)
    } else {
        "-".into()
    };
    let state: String = [
        if info.running != 0 { 'r' } else { '-' },
        if info.blocked != 0 { 'b' } else { '-' },
        if info.online == 0 { 'p' } else { '-' },
    ]
    .into_iter()
    .collect();
    let tenths = info.cpu_time / 100_000_000;
    format!(
        "{:<24} {:>5} {:>5} {:>5} {:>5} {:>7}.{}  {}",
        name,
        id,
        info.vcpu,
        cpu,
        state,
        tenths / 10,
        tenths % 10,
        affinity
    )
}

#[cfg(test)]
mod tests {
    use abi::domctl::{XEN_DOMINF_SHUTDOWN, XEN_DOMINF_SHUTDOWNSHIFT};

    use super::*;

    #[test]
    fn names_default_to_the_image_and_stay_unique() {
        let none = |_: &str| None;
        let hello_is_1 = |name: &str| (name == "hello").then_some(1);
        assert_eq!(choose_name(None, "hello", 1, none), Ok("hello".into()));
        assert_eq!(
            choose_name(None, "hello", 4, hello_is_1),
            Ok("hello-4".into())
        );
        assert_eq!(
            choose_name(Some("ping"), "pingpong", 2, hello_is_1),
            Ok("ping".into())
        );
        assert_eq!(choose_name(Some("hello"), "spin", 5, hello_is_1), Err(1));
    }

    #[test]
    fn endings_are_reported_by_reason() {
        assert_eq!(Ending::of(0).report(3, "hello"), "domain 3 (hello) exited");
        assert_eq!(Ending::of(3).report(3, "crash"), "domain 3 (crash) crashed");
        assert_eq!(
            Ending::of(4).report(2, "x"),
            "domain 2 (x) shut down (reason 4)"
        );
    }

    fn info(flags: u32) -> DomainInfo {
        DomainInfo {
            domain: 7,
            flags,
            tot_pages: 4098,
            nr_online_vcpus: 1,
            cpu_time: 12_345_678_901,
            ..Default::default()
        }
    }

    #[test]
    fn state_letters_follow_xl() {
        assert_eq!(state_letters(&info(XEN_DOMINF_RUNNING)), "r-----");
        assert_eq!(state_letters(&info(XEN_DOMINF_BLOCKED)), "-b----");
        assert_eq!(
            state_letters(&info(XEN_DOMINF_PAUSED | XEN_DOMINF_BLOCKED)),
            "-bp---"
        );
        let crashed = XEN_DOMINF_SHUTDOWN | (SHUTDOWN_CRASH << XEN_DOMINF_SHUTDOWNSHIFT);
        assert_eq!(state_letters(&info(crashed)), "---sc-");
        let off = XEN_DOMINF_SHUTDOWN | XEN_DOMINF_DYING;
        assert_eq!(state_letters(&info(off)), "---s-d");
        let odd = XEN_DOMINF_SHUTDOWN | (9 << XEN_DOMINF_SHUTDOWNSHIFT);
        assert_eq!(state_letters(&info(odd)), "---s?-");
    }

    #[test]
    fn vcpu_list_rows_line_up_under_the_header() {
        let header = vcpu_list_header();
        assert_eq!(
            header,
            "Name                        ID  VCPU   CPU State   Time(s)  Affinity"
        );
        let info = VcpuInfoCtl {
            vcpu: 0,
            online: 1,
            running: 1,
            cpu: 1,
            cpu_time: 2_345_000_000,
            ..Default::default()
        };
        let row = vcpu_list_row("spin", 3, &info, "0-1");
        assert_eq!(
            row,
            "spin                         3     0     1   r--       2.3  0-1"
        );
        assert_eq!(header.find("Affinity"), row.find("0-1"));
        let down = VcpuInfoCtl {
            online: 0,
            running: 0,
            ..info
        };
        let words: alloc::vec::Vec<String> = vcpu_list_row("x", 3, &down, "all")
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(words, ["x", "3", "0", "-", "--p", "2.3", "all"]);
    }

    #[test]
    fn list_rows_line_up_under_the_header() {
        let header = list_header();
        let row = list_row("hello", &info(XEN_DOMINF_BLOCKED));
        assert_eq!(
            header,
            "Name                        ID   Mem VCPUs    State   Time(s)"
        );
        assert_eq!(
            row,
            "hello                        7    16     1   -b----      12.3"
        );
        assert_eq!(header.len(), row.len());
        let words: alloc::vec::Vec<&str> = row.split_whitespace().collect();
        assert_eq!(words, ["hello", "7", "16", "1", "-b----", "12.3"]);
    }
}
