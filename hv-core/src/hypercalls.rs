//! Which hypercalls and ops hv-core implements: the table `docs/abi.md`
//! is checked against (see the test below), and which the hypercall
//! decoder consults first, so the two cannot drift apart.

use abi::Hypercall;

/// What hv-core does with a hypercall or op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Handled.
    Implemented,
    /// Answered with a named error on purpose (documented with the op).
    Refused,
    /// `-ENOSYS` for now.
    NotYet,
}

impl Status {
    pub const fn text(self) -> &'static str {
        match self {
            Self::Implemented => "implemented",
            Self::Refused => "refused",
            Self::NotYet => "not yet",
        }
    }
}

/// Hypercalls the decoder accepts.
pub const IMPLEMENTED: &[Hypercall] = &[
    Hypercall::SetTrapTable,
    Hypercall::MmuUpdate,
    Hypercall::StackSwitch,
    Hypercall::SetCallbacks,
    Hypercall::MemoryOp,
    Hypercall::Multicall,
    Hypercall::UpdateVaMapping,
    Hypercall::SetTimerOp,
    Hypercall::XenVersion,
    Hypercall::ConsoleIo,
    Hypercall::GrantTableOp,
    Hypercall::Iret,
    Hypercall::VcpuOp,
    Hypercall::SetSegmentBase,
    Hypercall::MmuextOp,
    Hypercall::SchedOp,
    Hypercall::CallbackOp,
    Hypercall::EventChannelOp,
    Hypercall::Sysctl,
    Hypercall::Domctl,
];

pub fn status(h: Hypercall) -> Status {
    if IMPLEMENTED.contains(&h) {
        Status::Implemented
    } else {
        Status::NotYet
    }
}

/// The ops of each implemented multi-op hypercall, with their status
/// (ops not listed answer `-ENOSYS`).
pub const OPS: &[(Hypercall, &str, Status)] = &[
    (
        Hypercall::MmuUpdate,
        "MMU_NORMAL_PT_UPDATE",
        Status::Implemented,
    ),
    (
        Hypercall::MmuUpdate,
        "MMU_MACHPHYS_UPDATE",
        Status::Implemented,
    ),
    (
        Hypercall::MmuUpdate,
        "MMU_PT_UPDATE_PRESERVE_AD",
        Status::Implemented,
    ),
    (
        Hypercall::MmuUpdate,
        "foreign domain (dom0 only)",
        Status::Implemented,
    ),
    (
        Hypercall::MmuextOp,
        "MMUEXT_PIN_L1_TABLE..PIN_L4_TABLE",
        Status::Implemented,
    ),
    (
        Hypercall::MmuextOp,
        "MMUEXT_UNPIN_TABLE",
        Status::Implemented,
    ),
    (
        Hypercall::MmuextOp,
        "MMUEXT_NEW_BASEPTR",
        Status::Implemented,
    ),
    (
        Hypercall::MmuextOp,
        "MMUEXT_NEW_USER_BASEPTR",
        Status::Implemented,
    ),
    (
        Hypercall::MmuextOp,
        "MMUEXT_TLB_FLUSH_LOCAL/MULTI/ALL",
        Status::Implemented,
    ),
    (
        Hypercall::MmuextOp,
        "MMUEXT_INVLPG_LOCAL/MULTI/ALL",
        Status::Implemented,
    ),
    (
        Hypercall::MmuextOp,
        "MMUEXT_SET_LDT (the null LDT; others -EOPNOTSUPP)",
        Status::Implemented,
    ),
    (
        Hypercall::MemoryOp,
        "XENMEM_memory_map",
        Status::Implemented,
    ),
    (
        Hypercall::MemoryOp,
        "XENMEM_maximum_ram_page",
        Status::Implemented,
    ),
    (
        Hypercall::MemoryOp,
        "XENMEM_current_reservation",
        Status::Implemented,
    ),
    (
        Hypercall::MemoryOp,
        "XENMEM_maximum_reservation",
        Status::Implemented,
    ),
    (
        Hypercall::MemoryOp,
        "XENMEM_populate_physmap, increase_reservation, decrease_reservation (own or, for dom0, another domain's)",
        Status::Implemented,
    ),
    (Hypercall::XenVersion, "XENVER_version", Status::Implemented),
    (
        Hypercall::XenVersion,
        "XENVER_extraversion",
        Status::Implemented,
    ),
    (
        Hypercall::XenVersion,
        "XENVER_compile_info",
        Status::Implemented,
    ),
    (
        Hypercall::XenVersion,
        "XENVER_capabilities",
        Status::Implemented,
    ),
    (
        Hypercall::XenVersion,
        "XENVER_changeset",
        Status::Implemented,
    ),
    (
        Hypercall::XenVersion,
        "XENVER_platform_parameters",
        Status::Implemented,
    ),
    (
        Hypercall::XenVersion,
        "XENVER_get_features",
        Status::Implemented,
    ),
    (
        Hypercall::XenVersion,
        "XENVER_pagesize",
        Status::Implemented,
    ),
    (
        Hypercall::XenVersion,
        "XENVER_guest_handle",
        Status::Implemented,
    ),
    (Hypercall::ConsoleIo, "CONSOLEIO_write", Status::Implemented),
    (Hypercall::ConsoleIo, "CONSOLEIO_read", Status::Implemented),
    (
        Hypercall::ConsoleIo,
        "CONSOLEIO_read from a domU",
        Status::Refused,
    ),
    (Hypercall::SchedOp, "SCHEDOP_yield", Status::Implemented),
    (Hypercall::SchedOp, "SCHEDOP_block", Status::Implemented),
    (Hypercall::SchedOp, "SCHEDOP_shutdown", Status::Implemented),
    (Hypercall::SchedOp, "SCHEDOP_poll", Status::Implemented),
    (
        Hypercall::VcpuOp,
        "VCPUOP_set_singleshot_timer",
        Status::Implemented,
    ),
    (
        Hypercall::VcpuOp,
        "VCPUOP_stop_singleshot_timer",
        Status::Implemented,
    ),
    (
        Hypercall::VcpuOp,
        "VCPUOP_set_periodic_timer",
        Status::Implemented,
    ),
    (
        Hypercall::VcpuOp,
        "VCPUOP_stop_periodic_timer",
        Status::Implemented,
    ),
    (Hypercall::VcpuOp, "VCPUOP_is_up", Status::Implemented),
    (
        Hypercall::VcpuOp,
        "VCPUOP_get_runstate_info",
        Status::Implemented,
    ),
    (
        Hypercall::CallbackOp,
        "CALLBACKOP_register (event, failsafe, syscall, syscall32, sysenter, nmi)",
        Status::Implemented,
    ),
    (
        Hypercall::CallbackOp,
        "CALLBACKOP_unregister (nmi; the others -EINVAL, as on Xen)",
        Status::Implemented,
    ),
    (
        Hypercall::SetSegmentBase,
        "SEGBASE_FS, SEGBASE_GS_USER, SEGBASE_GS_KERNEL",
        Status::Implemented,
    ),
    (
        Hypercall::SetSegmentBase,
        "SEGBASE_GS_USER_SEL",
        Status::Refused,
    ),
    (
        Hypercall::EventChannelOp,
        "EVTCHNOP_bind_virq",
        Status::Implemented,
    ),
    (
        Hypercall::EventChannelOp,
        "EVTCHNOP_bind_ipi",
        Status::Implemented,
    ),
    (
        Hypercall::EventChannelOp,
        "EVTCHNOP_alloc_unbound (dom0: in any domain)",
        Status::Implemented,
    ),
    (
        Hypercall::EventChannelOp,
        "EVTCHNOP_bind_interdomain",
        Status::Implemented,
    ),
    (
        Hypercall::EventChannelOp,
        "EVTCHNOP_send",
        Status::Implemented,
    ),
    (
        Hypercall::EventChannelOp,
        "EVTCHNOP_close",
        Status::Implemented,
    ),
    (
        Hypercall::EventChannelOp,
        "EVTCHNOP_unmask",
        Status::Implemented,
    ),
    (
        Hypercall::EventChannelOp,
        "EVTCHNOP_status",
        Status::Implemented,
    ),
    (
        Hypercall::GrantTableOp,
        "GNTTABOP_query_size",
        Status::Implemented,
    ),
    (
        Hypercall::GrantTableOp,
        "GNTTABOP_setup_table",
        Status::Implemented,
    ),
    (
        Hypercall::GrantTableOp,
        "GNTTABOP_map_grant_ref (host_map, readonly)",
        Status::Implemented,
    ),
    (
        Hypercall::GrantTableOp,
        "GNTTABOP_unmap_grant_ref",
        Status::Implemented,
    ),
    (
        Hypercall::GrantTableOp,
        "GNTTABOP_copy",
        Status::Implemented,
    ),
    (
        Hypercall::Domctl,
        "createdomain, destroydomain, pausedomain, unpausedomain",
        Status::Implemented,
    ),
    (
        Hypercall::Domctl,
        "getdomaininfo, max_mem, max_vcpus, setvcpucontext, getvcpuinfo",
        Status::Implemented,
    ),
    (
        Hypercall::Sysctl,
        "physinfo, getdomaininfolist",
        Status::Implemented,
    ),
];

#[cfg(test)]
mod docs {
    use super::*;

    const ABI_MD: &str = include_str!("../../docs/abi.md");

    fn hypercall_rows() -> Vec<Vec<&'static str>> {
        ABI_MD
            .lines()
            .filter(|l| l.starts_with("| ") && l.chars().nth(2).is_some_and(|c| c.is_ascii_digit()))
            .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
            .filter(|cells: &Vec<&str>| cells.len() == 3)
            .collect()
    }

    #[test]
    fn docs_give_each_hypercall_hv_cores_status() {
        let rows = hypercall_rows();
        for h in Hypercall::ALL {
            let row = rows
                .iter()
                .find(|r| r[1] == h.name())
                .unwrap_or_else(|| panic!("docs/abi.md does not list {}", h.name()));
            assert_eq!(
                row[2],
                status(h).text(),
                "docs/abi.md gives {} the wrong status",
                h.name()
            );
        }
    }

    #[test]
    fn docs_list_every_op_with_its_status() {
        for (h, op, status) in OPS {
            let line = format!("| {} | {} | {} |", h.name(), op, status.text());
            assert!(
                ABI_MD.lines().any(|l| l.trim() == line),
                "docs/abi.md lacks the row `{line}`"
            );
        }
        let op_rows = ABI_MD
            .lines()
            .filter(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                l.starts_with("| ")
                    && cells.len() == 3
                    && Hypercall::ALL.iter().any(|h| h.name() == cells[0])
            })
            .count();
        assert_eq!(
            op_rows,
            OPS.len(),
            "docs/abi.md lists ops hv-core does not know"
        );
    }
}
