//! A domU that ends badly on purpose, in the way its command line names:
//!
//! - `wild`: clears its trap table and writes through a wild pointer: a
//!   page fault with nowhere to bounce, so the hypervisor kills it;
//! - `ud2`: clears its trap table and executes `ud2`: an invalid opcode
//!   with nowhere to bounce, killed the same way;
//! - `panic`: a Rust panic; the SDK prints it and shuts the domain down
//!   with `SHUTDOWN_crash`;
//! - `badhc`: hypercalls with wild pointer arguments, each of which must
//!   come back `-EFAULT` (bad arguments are refused, never fatal), then a
//!   read through a wild pointer with the SDK's trap table in place and no
//!   handler for #PF: the SDK reports it and crashes the domain.
//!
//! Each mode prints one line saying what it is about to do. dom0 must
//! report the crash (`domain <id> (<name>) crashed`) and everything else
//! must keep running; the scenario judges that.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use abi::Hypercall;
    use pv_guest_sdk::{StartInfo, println};
    use test_guests::arch;
    use test_guests::hc;

    const NAME: &str = "domu-crash";
    const EFAULT: i64 = -14;
    /// Canonical, in the guest half, and never mapped by the SDK.
    const WILD: u64 = 0x0000_3bad_dead_0000;
    /// In the hypervisor's direct map.
    const HYPERVISOR_POINTER: u64 = 0xffff_8300_0000_0000;

    pub fn main(start: &'static StartInfo) -> ! {
        let mode = start.cmdline().trim();
        match mode {
            "wild" => {
                clear_trap_table();
                println!("{NAME}: wild: writing to {WILD:#x} with no trap table");
                #[allow(unsafe_code)]
                // SAFETY: deliberately unsound: the store faults and there
                // is no handler, so the hypervisor kills this domain.
                unsafe {
                    arch::write_volatile_u64(WILD, 0x5a5a)
                };
            }
            "ud2" => {
                clear_trap_table();
                println!("{NAME}: ud2: executing ud2 with no trap table");
                #[allow(unsafe_code)]
                // SAFETY: the probe only executes ud2; with no trap table
                // the hypervisor kills this domain.
                unsafe {
                    arch::run_probe(arch::Probe::Ud2, 0, 0)
                };
            }
            "panic" => {
                println!("{NAME}: panic: panicking on purpose");
                panic!("{NAME} panics on purpose");
            }
            "badhc" => bad_hypercalls(),
            other => {
                println!(
                    "{NAME}: unknown mode `{other}` (want wild, ud2, panic or badhc); powering off"
                );
                pv_guest_sdk::sched::poweroff();
            }
        }
        println!("{NAME}: {mode}: still running after what should have killed it");
        pv_guest_sdk::sched::poweroff()
    }

    fn clear_trap_table() {
        #[allow(unsafe_code)]
        // SAFETY: a null trap table clears every handler (Xen's
        // semantics); what follows relies on having none.
        let ret = unsafe { arch::hypercall(Hypercall::SetTrapTable as u32, [0; 5]) };
        if ret != 0 {
            println!("{NAME}: clearing the trap table failed ({ret})");
        }
    }

    fn bad_hypercalls() {
        use abi::event_channel::EVTCHNOP_ALLOC_UNBOUND;
        use abi::grant_table::GNTTABOP_COPY;
        use abi::ops::{SCHEDOP_SHUTDOWN, XENMEM_POPULATE_PHYSMAP, XENVER_EXTRAVERSION};

        let calls: [(&str, Hypercall, [u64; 5], usize); 7] = [
            (
                "console_io write from a wild buffer",
                Hypercall::ConsoleIo,
                [0, 16, WILD, 0, 0],
                2,
            ),
            (
                "xen_version into a hypervisor address",
                Hypercall::XenVersion,
                [XENVER_EXTRAVERSION as u64, HYPERVISOR_POINTER, 0, 0, 0],
                1,
            ),
            (
                "event_channel_op with a wild argument",
                Hypercall::EventChannelOp,
                [EVTCHNOP_ALLOC_UNBOUND as u64, WILD, 0, 0, 0],
                1,
            ),
            (
                "grant_table_op copy with a wild argument",
                Hypercall::GrantTableOp,
                [GNTTABOP_COPY as u64, WILD, 1, 0, 0],
                1,
            ),
            (
                "memory_op populate_physmap with a wild argument",
                Hypercall::MemoryOp,
                [XENMEM_POPULATE_PHYSMAP as u64, WILD, 0, 0, 0],
                1,
            ),
            (
                "mmu_update with a wild request list",
                Hypercall::MmuUpdate,
                [WILD, 1, 0, 0x7ff0, 0],
                0,
            ),
            (
                "sched_op shutdown with a wild argument",
                Hypercall::SchedOp,
                [SCHEDOP_SHUTDOWN as u64, WILD, 0, 0, 0],
                1,
            ),
        ];
        let mut all_efault = true;
        for (what, nr, args, pointer) in calls {
            let ret = hc::with_bad_pointer(nr, args, pointer);
            all_efault &= ret == EFAULT;
            println!(
                "{NAME}: badhc: {what}: {ret}{}",
                if ret == EFAULT { " (EFAULT)" } else { " WRONG" }
            );
        }
        if all_efault {
            println!("{NAME}: badhc: every bad argument refused with -EFAULT");
        } else {
            println!("{NAME}: badhc: some bad argument was not refused with -EFAULT");
        }
        println!("{NAME}: badhc: reading {WILD:#x} with no #PF handler");
        #[allow(unsafe_code)]
        // SAFETY: deliberately unsound: the load faults; the SDK has no
        // handler for it, reports it and crashes this domain.
        let value = unsafe { arch::read_volatile_u64(WILD) };
        println!("{NAME}: badhc: the read returned {value:#x}");
    }
}
