//! Hypercall numbers (`xen.h`, `__HYPERVISOR_*`).
//!
//! A PV64 guest calls hypercall `n` through `call hypercall_page + n * 32`,
//! with the number in RAX and arguments in RDI, RSI, RDX, R10, R8, R9.

/// Every hypercall number Xen defines, implemented or not, so that a
/// refusal can name what was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Hypercall {
    /// `__HYPERVISOR_set_trap_table`: install the virtual IDT (trap handlers).
    SetTrapTable = 0,
    /// `__HYPERVISOR_mmu_update`: batch of page-table entry and M2P updates.
    MmuUpdate = 1,
    /// `__HYPERVISOR_set_gdt`: install a GDT from a list of frames.
    SetGdt = 2,
    /// `__HYPERVISOR_stack_switch`: set the kernel stack (SS:RSP) for ring transitions.
    StackSwitch = 3,
    /// `__HYPERVISOR_set_callbacks`: register event, failsafe and syscall callbacks.
    SetCallbacks = 4,
    /// `__HYPERVISOR_fpu_taskswitch`: set or clear CR0.TS.
    FpuTaskswitch = 5,
    /// `__HYPERVISOR_sched_op_compat`: old scheduler op (argument by value).
    SchedOpCompat = 6,
    /// `__HYPERVISOR_platform_op`: platform control, for the control domain.
    PlatformOp = 7,
    /// `__HYPERVISOR_set_debugreg`: write a debug register.
    SetDebugreg = 8,
    /// `__HYPERVISOR_get_debugreg`: read a debug register.
    GetDebugreg = 9,
    /// `__HYPERVISOR_update_descriptor`: write one GDT/LDT descriptor.
    UpdateDescriptor = 10,
    /// `__HYPERVISOR_memory_op`: reservations, memory maps and physmap changes.
    MemoryOp = 12,
    /// `__HYPERVISOR_multicall`: run a batch of hypercalls.
    Multicall = 13,
    /// `__HYPERVISOR_update_va_mapping`: write the L1 entry mapping one virtual address.
    UpdateVaMapping = 14,
    /// `__HYPERVISOR_set_timer_op`: set the one-shot timer deadline.
    SetTimerOp = 15,
    /// `__HYPERVISOR_event_channel_op_compat`: old event-channel op (command inside the argument).
    EventChannelOpCompat = 16,
    /// `__HYPERVISOR_xen_version`: version and feature queries.
    XenVersion = 17,
    /// `__HYPERVISOR_console_io`: read or write Xen's console.
    ConsoleIo = 18,
    /// `__HYPERVISOR_physdev_op_compat`: old physical-device op (command inside the argument).
    PhysdevOpCompat = 19,
    /// `__HYPERVISOR_grant_table_op`: grant-table setup, mapping and copying.
    GrantTableOp = 20,
    /// `__HYPERVISOR_vm_assist`: enable or disable a VM assist.
    VmAssist = 21,
    /// `__HYPERVISOR_update_va_mapping_otherdomain`: `update_va_mapping` with another domain's frame.
    UpdateVaMappingOtherdomain = 22,
    /// `__HYPERVISOR_iret`: return from an exception or event callback.
    Iret = 23,
    /// `__HYPERVISOR_vcpu_op`: per-vCPU control (bring up, down, timers, runstate).
    VcpuOp = 24,
    /// `__HYPERVISOR_set_segment_base`: set the FS/GS base or load the user GS selector.
    SetSegmentBase = 25,
    /// `__HYPERVISOR_mmuext_op`: extended MMU ops (pin tables, new CR3, TLB flushes).
    MmuextOp = 26,
    /// `__HYPERVISOR_xsm_op`: Xen Security Modules (FLASK) op.
    XsmOp = 27,
    /// `__HYPERVISOR_nmi_op`: register or unregister an NMI callback.
    NmiOp = 28,
    /// `__HYPERVISOR_sched_op`: yield, block, shut down or poll.
    SchedOp = 29,
    /// `__HYPERVISOR_callback_op`: register or unregister one callback.
    CallbackOp = 30,
    /// `__HYPERVISOR_xenoprof_op`: oprofile-based profiling.
    XenoprofOp = 31,
    /// `__HYPERVISOR_event_channel_op`: allocate, bind, send and close event channels.
    EventChannelOp = 32,
    /// `__HYPERVISOR_physdev_op`: physical devices: IRQs, I/O privilege.
    PhysdevOp = 33,
    /// `__HYPERVISOR_hvm_op`: HVM parameters and controls.
    HvmOp = 34,
    /// `__HYPERVISOR_sysctl`: system-wide control, for the toolstack.
    Sysctl = 35,
    /// `__HYPERVISOR_domctl`: per-domain control, for the toolstack.
    Domctl = 36,
    /// `__HYPERVISOR_kexec_op`: load and run a kexec image.
    KexecOp = 37,
    /// `__HYPERVISOR_tmem_op`: transcendent memory (removed from Xen).
    TmemOp = 38,
    /// `__HYPERVISOR_argo_op`: Argo inter-domain messaging.
    ArgoOp = 39,
    /// `__HYPERVISOR_xenpmu_op`: virtual performance-monitoring unit.
    XenpmuOp = 40,
    /// `__HYPERVISOR_dm_op`: device-model ops on a target domain.
    DmOp = 41,
    /// `__HYPERVISOR_hypfs_op`: read and write the hypervisor filesystem.
    HypfsOp = 42,
}

impl Hypercall {
    /// Every hypercall, in number order.
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

    /// The hypercall with number `n` (RAX), if Xen defines one.
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
