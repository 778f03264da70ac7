//! Hypercall numbers (`xen.h`, `__HYPERVISOR_*`).
//!
//! A PV64 guest calls hypercall `n` through `call hypercall_page + n * 32`,
//! with the number in RAX and arguments in RDI, RSI, RDX, R10, R8, R9.

/// Every hypercall number Xen defines, implemented or not, so that a
/// refusal can name what was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Hypercall {
    SetTrapTable = 0,
    MmuUpdate = 1,
    SetGdt = 2,
    StackSwitch = 3,
    SetCallbacks = 4,
    FpuTaskswitch = 5,
    SchedOpCompat = 6,
    PlatformOp = 7,
    SetDebugreg = 8,
    GetDebugreg = 9,
    UpdateDescriptor = 10,
    MemoryOp = 12,
    Multicall = 13,
    UpdateVaMapping = 14,
    SetTimerOp = 15,
    EventChannelOpCompat = 16,
    XenVersion = 17,
    ConsoleIo = 18,
    PhysdevOpCompat = 19,
    GrantTableOp = 20,
    VmAssist = 21,
    UpdateVaMappingOtherdomain = 22,
    Iret = 23,
    VcpuOp = 24,
    SetSegmentBase = 25,
    MmuextOp = 26,
    XsmOp = 27,
    NmiOp = 28,
    SchedOp = 29,
    CallbackOp = 30,
    XenoprofOp = 31,
    EventChannelOp = 32,
    PhysdevOp = 33,
    HvmOp = 34,
    Sysctl = 35,
    Domctl = 36,
    KexecOp = 37,
    TmemOp = 38,
    ArgoOp = 39,
    XenpmuOp = 40,
    DmOp = 41,
    HypfsOp = 42,
}

impl Hypercall {
    pub const ALL: [Hypercall; 42] = [
        Self::SetTrapTable,
        Self::MmuUpdate,
        Self::SetGdt,
        Self::StackSwitch,
        Self::SetCallbacks,
        Self::FpuTaskswitch,
        Self::SchedOpCompat,
        Self::PlatformOp,
        Self::SetDebugreg,
        Self::GetDebugreg,
        Self::UpdateDescriptor,
        Self::MemoryOp,
        Self::Multicall,
        Self::UpdateVaMapping,
        Self::SetTimerOp,
        Self::EventChannelOpCompat,
        Self::XenVersion,
        Self::ConsoleIo,
        Self::PhysdevOpCompat,
        Self::GrantTableOp,
        Self::VmAssist,
        Self::UpdateVaMappingOtherdomain,
        Self::Iret,
        Self::VcpuOp,
        Self::SetSegmentBase,
        Self::MmuextOp,
        Self::XsmOp,
        Self::NmiOp,
        Self::SchedOp,
        Self::CallbackOp,
        Self::XenoprofOp,
        Self::EventChannelOp,
        Self::PhysdevOp,
        Self::HvmOp,
        Self::Sysctl,
        Self::Domctl,
        Self::KexecOp,
        Self::TmemOp,
        Self::ArgoOp,
        Self::XenpmuOp,
        Self::DmOp,
        Self::HypfsOp,
    ];

    pub fn from_number(n: u64) -> Option<Self> {
        Self::ALL.iter().copied().find(|h| *h as u64 == n)
    }

    /// Xen's name for the hypercall, as in `__HYPERVISOR_<name>`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::SetTrapTable => "set_trap_table",
            Self::MmuUpdate => "mmu_update",
            Self::SetGdt => "set_gdt",
            Self::StackSwitch => "stack_switch",
            Self::SetCallbacks => "set_callbacks",
            Self::FpuTaskswitch => "fpu_taskswitch",
            Self::SchedOpCompat => "sched_op_compat",
            Self::PlatformOp => "platform_op",
            Self::SetDebugreg => "set_debugreg",
            Self::GetDebugreg => "get_debugreg",
            Self::UpdateDescriptor => "update_descriptor",
            Self::MemoryOp => "memory_op",
            Self::Multicall => "multicall",
            Self::UpdateVaMapping => "update_va_mapping",
            Self::SetTimerOp => "set_timer_op",
            Self::EventChannelOpCompat => "event_channel_op_compat",
            Self::XenVersion => "xen_version",
            Self::ConsoleIo => "console_io",
            Self::PhysdevOpCompat => "physdev_op_compat",
            Self::GrantTableOp => "grant_table_op",
            Self::VmAssist => "vm_assist",
            Self::UpdateVaMappingOtherdomain => "update_va_mapping_otherdomain",
            Self::Iret => "iret",
            Self::VcpuOp => "vcpu_op",
            Self::SetSegmentBase => "set_segment_base",
            Self::MmuextOp => "mmuext_op",
            Self::XsmOp => "xsm_op",
            Self::NmiOp => "nmi_op",
            Self::SchedOp => "sched_op",
            Self::CallbackOp => "callback_op",
            Self::XenoprofOp => "xenoprof_op",
            Self::EventChannelOp => "event_channel_op",
            Self::PhysdevOp => "physdev_op",
            Self::HvmOp => "hvm_op",
            Self::Sysctl => "sysctl",
            Self::Domctl => "domctl",
            Self::KexecOp => "kexec_op",
            Self::TmemOp => "tmem_op",
            Self::ArgoOp => "argo_op",
            Self::XenpmuOp => "xenpmu_op",
            Self::DmOp => "dm_op",
            Self::HypfsOp => "hypfs_op",
        }
    }
}

/// Bytes per hypercall-page stub.
pub const STUB_SIZE: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_are_unique() {
        for h in Hypercall::ALL {
            assert_eq!(Hypercall::from_number(h as u64), Some(h));
        }
        assert_eq!(Hypercall::from_number(11), None);
        assert_eq!(Hypercall::from_number(43), None);
        let mut numbers: Vec<u32> = Hypercall::ALL.iter().map(|h| *h as u32).collect();
        numbers.dedup();
        assert_eq!(numbers.len(), 42);
    }

    #[test]
    fn every_stub_fits_in_one_page() {
        assert!((Hypercall::HypfsOp as usize + 1) * STUB_SIZE <= 4096);
    }
}

#[cfg(test)]
mod docs {
    use super::Hypercall;

    const ABI_MD: &str = include_str!("../../docs/abi.md");
    const STATUSES: [&str; 3] = ["implemented", "refused", "not yet"];

    #[test]
    fn docs_list_every_hypercall() {
        let rows: Vec<Vec<&str>> = ABI_MD
            .lines()
            .filter(|l| l.starts_with("| ") && l.chars().nth(2).is_some_and(|c| c.is_ascii_digit()))
            .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
            .filter(|cells: &Vec<&str>| cells.len() == 3)
            .collect();
        for h in Hypercall::ALL {
            let matching: Vec<_> = rows.iter().filter(|r| r[1] == h.name()).collect();
            assert_eq!(
                matching.len(),
                1,
                "docs/abi.md must list {} exactly once",
                h.name()
            );
            let row = matching[0];
            assert_eq!(
                row[0],
                (h as u32).to_string(),
                "wrong number for {}",
                h.name()
            );
            assert!(
                STATUSES.contains(&row[2]),
                "bad status `{}` for {}",
                row[2],
                h.name()
            );
        }
        assert_eq!(
            rows.len(),
            Hypercall::ALL.len(),
            "docs/abi.md lists hypercalls abi does not know"
        );
    }
}
