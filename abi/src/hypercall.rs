//! Hypercall numbers (`xen.h`, `__HYPERVISOR_*`).
//!
//! A PV64 guest calls hypercall `n` through `call hypercall_page + n * 32`,
//! with the number in RAX and arguments in RDI, RSI, RDX, R10, R8, R9.

/// Defines [`Hypercall`] (its variants, [`Hypercall::ALL`],
/// [`Hypercall::from_number`] and [`Hypercall::name`]) from one row per
/// hypercall: number, variant, Xen's name, what it does.
macro_rules! hypercalls {
    ($($nr:literal $variant:ident $name:ident: $what:literal;)*) => {
        /// Every hypercall number Xen defines, implemented or not, so that a
        /// refusal can name what was asked for.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u32)]
        pub enum Hypercall {
            $(
                #[doc = concat!("`__HYPERVISOR_", stringify!($name), "`: ", $what)]
                $variant = $nr,
            )*
        }

        impl Hypercall {
            /// Every hypercall, in number order.
            pub const ALL: &'static [Hypercall] = &[$(Self::$variant),*];

            /// The hypercall with number `n` (RAX), if Xen defines one.
            pub const fn from_number(n: u64) -> Option<Self> {
                match n {
                    $($nr => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// Xen's name for the hypercall, as in `__HYPERVISOR_<name>`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => stringify!($name),)*
                }
            }
        }
    };
}

hypercalls! {
     0 SetTrapTable set_trap_table: "install the virtual IDT (trap handlers).";
     1 MmuUpdate mmu_update: "batch of page-table entry and M2P updates.";
     2 SetGdt set_gdt: "install a GDT from a list of frames.";
     3 StackSwitch stack_switch: "set the kernel stack (SS:RSP) for ring transitions.";
     4 SetCallbacks set_callbacks: "register event, failsafe and syscall callbacks.";
     5 FpuTaskswitch fpu_taskswitch: "set or clear CR0.TS.";
     6 SchedOpCompat sched_op_compat: "old scheduler op (argument by value).";
     7 PlatformOp platform_op: "platform control, for the control domain.";
     8 SetDebugreg set_debugreg: "write a debug register.";
     9 GetDebugreg get_debugreg: "read a debug register.";
    10 UpdateDescriptor update_descriptor: "write one GDT/LDT descriptor.";
    12 MemoryOp memory_op: "reservations, memory maps and physmap changes.";
    13 Multicall multicall: "run a batch of hypercalls.";
    14 UpdateVaMapping update_va_mapping: "write the L1 entry mapping one virtual address.";
    15 SetTimerOp set_timer_op: "set the one-shot timer deadline.";
    16 EventChannelOpCompat event_channel_op_compat: "old event-channel op (command inside the argument).";
    17 XenVersion xen_version: "version and feature queries.";
    18 ConsoleIo console_io: "read or write Xen's console.";
    19 PhysdevOpCompat physdev_op_compat: "old physical-device op (command inside the argument).";
    20 GrantTableOp grant_table_op: "grant-table setup, mapping and copying.";
    21 VmAssist vm_assist: "enable or disable a VM assist.";
    22 UpdateVaMappingOtherdomain update_va_mapping_otherdomain: "`update_va_mapping` with another domain's frame.";
    23 Iret iret: "return from an exception or event callback.";
    24 VcpuOp vcpu_op: "per-vCPU control (bring up, down, timers, runstate).";
    25 SetSegmentBase set_segment_base: "set the FS/GS base or load the user GS selector.";
    26 MmuextOp mmuext_op: "extended MMU ops (pin tables, new CR3, TLB flushes).";
    27 XsmOp xsm_op: "Xen Security Modules (FLASK) op.";
    28 NmiOp nmi_op: "register or unregister an NMI callback.";
    29 SchedOp sched_op: "yield, block, shut down or poll.";
    30 CallbackOp callback_op: "register or unregister one callback.";
    31 XenoprofOp xenoprof_op: "oprofile-based profiling.";
    32 EventChannelOp event_channel_op: "allocate, bind, send and close event channels.";
    33 PhysdevOp physdev_op: "physical devices: IRQs, I/O privilege.";
    34 HvmOp hvm_op: "HVM parameters and controls.";
    35 Sysctl sysctl: "system-wide control, for the toolstack.";
    36 Domctl domctl: "per-domain control, for the toolstack.";
    37 KexecOp kexec_op: "load and run a kexec image.";
    38 TmemOp tmem_op: "transcendent memory (removed from Xen).";
    39 ArgoOp argo_op: "Argo inter-domain messaging.";
    40 XenpmuOp xenpmu_op: "virtual performance-monitoring unit.";
    41 DmOp dm_op: "device-model ops on a target domain.";
    42 HypfsOp hypfs_op: "read and write the hypervisor filesystem.";
}

/// Bytes per hypercall-page stub.
pub const STUB_SIZE: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_are_unique() {
        for &h in Hypercall::ALL {
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
        for &h in Hypercall::ALL {
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
