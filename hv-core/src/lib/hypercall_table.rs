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

/// The hypercall table: one row per hypercall hv-core implements, in
/// number order. A row names the hypercall (its number and Xen's name
/// come from [`abi::Hypercall`]), its register arguments in ABI order
/// (RDI, RSI, RDX, R10, R8, R9) with the type each is truncated to, the
/// handler the kernel calls with them (an expression over the argument
/// names, resolved in `hypercall/mod.rs`), and, for a hypercall with
/// several ops, each op's status. Everything else comes from this one
/// list: the kernel's decoder and dispatcher (`hypercall/mod.rs`), the
/// [`IMPLEMENTED`] and [`OPS`] lists here, and through them the check of
/// `docs/abi.md` below. Any number not listed answers `-ENOSYS`.
///
/// Use: `hypercall_table!(callback)` expands to `callback! { rows }`.
#[macro_export]
macro_rules! hypercall_table {
    ($callback:ident) => {
        $callback! {
            SetTrapTable(table: u64) => traps::SetTrapTable { table }.handle();
            MmuUpdate(reqs: u64, count: u32, done: u64, foreign: u16) => mm::Batch { base: reqs, count, done, foreigndom: foreign }.mmu_update(), ops [
                "MMU_NORMAL_PT_UPDATE": Implemented,
                "MMU_MACHPHYS_UPDATE": Implemented,
                "MMU_PT_UPDATE_PRESERVE_AD": Implemented,
                "foreign domain (dom0 only)": Implemented,
            ];
            StackSwitch(ss: u64, sp: u64) => traps::StackSwitch { _ss: ss, sp }.handle();
            SetCallbacks(event: u64, failsafe: u64, syscall: u64) => traps::SetCallbacks { event, failsafe, syscall }.handle();
            MemoryOp(cmd: u64, arg: u64) => memory::memory_op(cmd, arg), ops [
                "XENMEM_memory_map": Implemented,
                "XENMEM_maximum_ram_page": Implemented,
                "XENMEM_current_reservation": Implemented,
                "XENMEM_maximum_reservation": Implemented,
                "XENMEM_populate_physmap, increase_reservation, decrease_reservation (own or, for dom0, another domain's)": Implemented,
            ];
            Multicall(entries: u64, count: u32) => multicall(entries, count);
            UpdateVaMapping(va: u64, pte: u64, flags: u64) => mm::UpdateVaMapping { va, pte, flags }.handle();
            SetTimerOp(timeout: u64) => sched::set_timer_op(timeout);
            XenVersion(cmd: u32, arg: u64) => version::XenVersion::handle(cmd, arg, domain::current_id()), ops [
                "XENVER_version": Implemented,
                "XENVER_extraversion": Implemented,
                "XENVER_compile_info": Implemented,
                "XENVER_capabilities": Implemented,
                "XENVER_changeset": Implemented,
                "XENVER_platform_parameters": Implemented,
                "XENVER_get_features": Implemented,
                "XENVER_pagesize": Implemented,
                "XENVER_guest_handle": Implemented,
            ];
            ConsoleIo(cmd: u32, count: u32, buffer: u64) => console::console_io(cmd, count, buffer), ops [
                "CONSOLEIO_write": Implemented,
                "CONSOLEIO_read": Implemented,
                "CONSOLEIO_read from a domU": Refused,
            ];
            GrantTableOp(cmd: u32, uop: u64, count: u32) => grant::grant_table_op(cmd, uop, count), ops [
                "GNTTABOP_query_size": Implemented,
                "GNTTABOP_setup_table": Implemented,
                "GNTTABOP_map_grant_ref (host_map, readonly)": Implemented,
                "GNTTABOP_unmap_grant_ref": Implemented,
                "GNTTABOP_copy": Implemented,
            ];
            Iret() => iret_in_batch();
            VcpuOp(cmd: u32, vcpu: u32, arg: u64) => sched::vcpu_op(cmd, vcpu, arg), ops [
                "VCPUOP_initialise": Implemented,
                "VCPUOP_up": Implemented,
                "VCPUOP_down": Implemented,
                "VCPUOP_set_singleshot_timer": Implemented,
                "VCPUOP_stop_singleshot_timer": Implemented,
                "VCPUOP_set_periodic_timer": Implemented,
                "VCPUOP_stop_periodic_timer": Implemented,
                "VCPUOP_is_up": Implemented,
                "VCPUOP_get_runstate_info": Implemented,
            ];
            SetSegmentBase(which: u32, base: u64) => traps::SetSegmentBase { which, base }.handle(), ops [
                "SEGBASE_FS, SEGBASE_GS_USER, SEGBASE_GS_KERNEL": Implemented,
                "SEGBASE_GS_USER_SEL": Refused,
            ];
            MmuextOp(reqs: u64, count: u32, done: u64, foreign: u16) => mm::Batch { base: reqs, count, done, foreigndom: foreign }.mmuext_op(), ops [
                "MMUEXT_PIN_L1_TABLE..PIN_L4_TABLE": Implemented,
                "MMUEXT_UNPIN_TABLE": Implemented,
                "MMUEXT_NEW_BASEPTR": Implemented,
                "MMUEXT_NEW_USER_BASEPTR": Implemented,
                "MMUEXT_TLB_FLUSH_LOCAL/MULTI/ALL": Implemented,
                "MMUEXT_INVLPG_LOCAL/MULTI/ALL": Implemented,
                "MMUEXT_SET_LDT (the null LDT; others -EOPNOTSUPP)": Implemented,
            ];
            SchedOp(cmd: u32, arg: u64) => sched::SchedOp::handle(cmd, arg, domain::current_id()), ops [
                "SCHEDOP_yield": Implemented,
                "SCHEDOP_block": Implemented,
                "SCHEDOP_shutdown": Implemented,
                "SCHEDOP_poll": Implemented,
            ];
            CallbackOp(cmd: u32, arg: u64) => traps::CallbackOp::handle(cmd, arg, domain::current_id()), ops [
                "CALLBACKOP_register (event, failsafe, syscall, syscall32, sysenter, nmi)": Implemented,
                "CALLBACKOP_unregister (nmi; the others -EINVAL, as on Xen)": Implemented,
            ];
            EventChannelOp(cmd: u32, arg: u64) => event_channel_op::EventChannelOp::handle(cmd, arg, domain::current_id()), ops [
                "EVTCHNOP_bind_virq": Implemented,
                "EVTCHNOP_bind_ipi": Implemented,
                "EVTCHNOP_bind_vcpu": Implemented,
                "EVTCHNOP_alloc_unbound (dom0: in any domain)": Implemented,
                "EVTCHNOP_bind_interdomain": Implemented,
                "EVTCHNOP_send": Implemented,
                "EVTCHNOP_close": Implemented,
                "EVTCHNOP_unmask": Implemented,
                "EVTCHNOP_status": Implemented,
            ];
            Sysctl(arg: u64) => domctl::sysctl(arg), ops [
                "physinfo, getdomaininfolist": Implemented,
            ];
            Domctl(arg: u64) => domctl::domctl(arg), ops [
                "createdomain, destroydomain, pausedomain, unpausedomain": Implemented,
                "getdomaininfo, max_mem, max_vcpus, setvcpucontext, getvcpuinfo": Implemented,
                "setvcpuaffinity, getvcpuaffinity (hard; soft kept and reported)": Implemented,
            ];
        }
    };
}

/// Turns the table's rows into [`IMPLEMENTED`] and [`OPS`] (the handlers
/// are the kernel's; here they are only tokens).
macro_rules! statuses {
    ($(
        $variant:ident($($arg:ident: $ty:ty),*) => $handler:expr
        $(, ops [$($op:literal: $status:ident),* $(,)?])?;
    )*) => {
        /// Hypercalls the decoder accepts.
        pub const IMPLEMENTED: &[Hypercall] = &[$(Hypercall::$variant),*];

        /// The ops of each implemented multi-op hypercall, with their
        /// status (ops not listed answer `-ENOSYS`).
        pub const OPS: &[(Hypercall, &str, Status)] = &[$($($(
            (Hypercall::$variant, $op, Status::$status),
        )*)?)*];
    };
}

hypercall_table!(statuses);

/// Whether hv-core implements `h`.
pub fn status(h: Hypercall) -> Status {
    if IMPLEMENTED.contains(&h) {
        Status::Implemented
    } else {
        Status::NotYet
    }
}

#[cfg(test)]
mod docs {
    use super::*;

    const ABI_MD: &str = include_str!("../../../docs/abi.md");

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
        for &h in Hypercall::ALL {
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
