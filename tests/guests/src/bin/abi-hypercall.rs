//! The hypercall calling convention and return values, as Xen's PV64 ABI
//! defines them:
//! - result in RAX as a 64-bit value: `-ENOSYS` for a hypercall number
//!   with nothing behind it (through the hypercall page, and past it with
//!   `syscall` directly) and for an unknown op of a known hypercall; 0 or a
//!   value on success;
//! - arguments in RDI, RSI, RDX, R10: each one is read from its register;
//! - only the parameter registers may be clobbered: RBX, RBP and R12-R15
//!   survive, and the hypercall page's stubs keep RCX and R11;
//! - multicall: every entry's result is written back, the call returns 0;
//! - xen_version: version, the string commands (buffers written in full:
//!   nothing after the string's NUL), platform parameters, features, page
//!   size.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use abi::Hypercall;
    use abi::ops::*;
    use abi::xen::{MMUEXT_TLB_FLUSH_LOCAL, MmuextOp, MulticallEntry, SIF_INITDOMAIN};
    use pv_guest_sdk::{StartInfo, println};
    use test_guests::arch::{Observed, hypercall_observed, sentinel};
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure, ensure_eq, fail, hc};

    const NAME: &str = "abi-hypercall";
    const ENOSYS: i64 = -38;
    const EINVAL: i64 = -22;

    pub fn main(start: &'static StartInfo) -> ! {
        finish(NAME, run(start))
    }

    fn run(start: &StartInfo) -> Outcome {
        unknown_hypercalls()?;
        unknown_ops()?;
        registers()?;
        argument_registers()?;
        version_and_values()?;
        string_buffers()?;
        features(start)?;
        multicall()?;
        Ok(())
    }

    /// Numbers with no hypercall: a gap in the table, past the last one,
    /// the top of the hypercall page, and one only `syscall` can reach.
    fn unknown_hypercalls() -> Outcome {
        for nr in [11, 43, 60, 127] {
            ensure_eq!(
                hc::numbered(nr),
                ENOSYS,
                "hypercall {nr} (none) through the hypercall page"
            );
        }
        for nr in [128u64, 1000, 1 << 32] {
            ensure_eq!(
                hc::numbered_direct(nr),
                ENOSYS,
                "hypercall {nr:#x} (none) by syscall"
            );
        }
        Ok(())
    }

    /// Known hypercalls, ops they do not have. memory_op's op is the low
    /// six bits of its command (the rest is a continuation index), so its
    /// unknown op is 63.
    fn unknown_ops() -> Outcome {
        let cases: [(Hypercall, u64); 6] = [
            (Hypercall::XenVersion, 1000),
            (Hypercall::SchedOp, 1000),
            (Hypercall::EventChannelOp, 1000),
            (Hypercall::MemoryOp, 63),
            (Hypercall::CallbackOp, 1000),
            (Hypercall::ConsoleIo, 1000),
        ];
        for (nr, cmd) in cases {
            ensure_eq!(
                hc::unknown_op(nr, cmd),
                ENOSYS,
                "{} op {cmd} (none)",
                nr.name()
            );
        }
        ensure_eq!(
            hc::vcpu_op_null(1000, 0),
            ENOSYS,
            "vcpu_op op 1000 (none) on vCPU 0"
        );
        Ok(())
    }

    /// Around a two-argument hypercall, every register that is not one of
    /// its parameters keeps its value; RCX and R11, which `syscall`
    /// destroys, are saved by the hypercall page's stub.
    fn registers() -> Outcome {
        let (ret, after) = observed(Hypercall::XenVersion, XENVER_VERSION as u64, 0);
        ensure!(ret > 0, "xen_version(XENVER_version) returned {ret}");
        let values = after.values();
        for (i, name) in Observed::NAMES.iter().enumerate() {
            let must_keep = matches!(
                *name,
                "rbx" | "rbp" | "r12" | "r13" | "r14" | "r15" | "rcx" | "r11"
            );
            if must_keep && values[i] != sentinel(i) {
                fail!(
                    "{name} changed across xen_version: {:#x} -> {:#x}",
                    sentinel(i),
                    values[i]
                );
            }
        }
        // The same for a hypercall that fails.
        let (ret, after) = observed(Hypercall::XenVersion, 1000, 0);
        ensure_eq!(ret, ENOSYS, "xen_version op 1000");
        ensure!(
            after.rbx == sentinel(0) && after.r12 == sentinel(8),
            "registers changed across a failed hypercall"
        );
        Ok(())
    }

    fn observed(nr: Hypercall, a1: u64, a2: u64) -> (i64, Observed) {
        #[allow(unsafe_code)]
        // SAFETY: xen_version with a version or unknown command reads no
        // memory.
        unsafe {
            hypercall_observed(nr, a1, a2)
        }
    }

    /// mmuext_op(ops, count, done, foreigndom) uses four argument
    /// registers: the ops pointer (RDI) and count (RSI) decide what runs,
    /// `done` (RDX) comes back written, and the domain (R10) is checked:
    /// naming a domain that does not exist is refused.
    fn argument_registers() -> Outcome {
        let flush = MmuextOp {
            cmd: MMUEXT_TLB_FLUSH_LOCAL,
            _pad: 0,
            arg1: 0,
            arg2: 0,
        };
        let (ret, done) = hc::mmuext_op(&[flush, flush, flush]);
        ensure_eq!(
            (ret, done),
            (0, 3),
            "mmuext_op(3 TLB flushes, DOMID_SELF): (result, done)"
        );
        let (ret, _) = hc::mmuext_op_foreign(&[flush], 0x7fe0);
        ensure!(
            ret < 0,
            "mmuext_op naming domain 0x7fe0 (none) was accepted ({ret})"
        );
        Ok(())
    }

    /// Success is 0 or a value in RAX.
    fn version_and_values() -> Outcome {
        let version = hc::xen_version_null(XENVER_VERSION);
        ensure!(
            version > 0 && version >> 32 == 0,
            "XENVER_version returned {version:#x}"
        );
        println!(
            "{NAME}: hypervisor interface {}.{}",
            version >> 16,
            version & 0xffff
        );
        ensure_eq!(
            hc::xen_version_null(XENVER_PAGESIZE),
            4096,
            "XENVER_pagesize"
        );
        ensure_eq!(hc::sched_op_null(SCHEDOP_YIELD), 0, "SCHEDOP_yield");
        let mut params = [0u8; 8];
        ensure_eq!(
            hc::xen_version(XENVER_PLATFORM_PARAMETERS, &mut params),
            0,
            "XENVER_platform_parameters"
        );
        ensure_eq!(
            u64::from_le_bytes(params),
            abi::xen::HYPERVISOR_VIRT_START,
            "platform_parameters.virt_start"
        );
        Ok(())
    }

    /// The string commands write their whole buffer: the string, its NUL,
    /// and zeroes after it, never what was there before (0xAA here).
    fn string_buffers() -> Outcome {
        let mut extra = [0xAAu8; XEN_EXTRAVERSION_LEN];
        ensure_eq!(
            hc::xen_version(XENVER_EXTRAVERSION, &mut extra),
            0,
            "XENVER_extraversion"
        );
        let extra_text = nul_terminated("extraversion", &extra)?;

        let mut changeset = [0xAAu8; XEN_CHANGESET_INFO_LEN];
        ensure_eq!(
            hc::xen_version(XENVER_CHANGESET, &mut changeset),
            0,
            "XENVER_changeset"
        );
        let changeset_text = nul_terminated("changeset", &changeset)?;

        let mut caps = [0xAAu8; XEN_CAPABILITIES_INFO_LEN];
        ensure_eq!(
            hc::xen_version(XENVER_CAPABILITIES, &mut caps),
            0,
            "XENVER_capabilities"
        );
        let caps_text = nul_terminated("capabilities", &caps)?;
        ensure!(
            caps_text.split(' ').any(|c| c == "xen-3.0-x86_64"),
            "capabilities {caps_text:?} do not list xen-3.0-x86_64"
        );

        let mut info = [0xAAu8; 144];
        ensure_eq!(
            hc::xen_version(XENVER_COMPILE_INFO, &mut info),
            0,
            "XENVER_compile_info"
        );
        let (compiler, rest) = info.split_at(64);
        let (by, rest) = rest.split_at(16);
        let (domain, date) = rest.split_at(32);
        let compiler = nul_terminated("compile_info.compiler", compiler)?;
        nul_terminated("compile_info.compile_by", by)?;
        nul_terminated("compile_info.compile_domain", domain)?;
        let date = nul_terminated("compile_info.compile_date", date)?;

        println!("{NAME}: extraversion {extra_text:?}, changeset {changeset_text:?}");
        println!("{NAME}: capabilities {caps_text:?}");
        println!("{NAME}: compiled by {compiler:?} on {date:?}");
        Ok(())
    }

    /// The text before the first NUL; fails if there is no NUL or any
    /// byte after it is not 0.
    fn nul_terminated<'a>(
        what: &str,
        buf: &'a [u8],
    ) -> Result<&'a str, test_guests::verdict::Stop> {
        let Some(end) = buf.iter().position(|&b| b == 0) else {
            fail!("{what}: no NUL in the {}-byte buffer", buf.len());
        };
        if let Some(i) = buf[end..].iter().position(|&b| b != 0) {
            fail!(
                "{what}: byte {} after the string's NUL is {:#04x}, not 0 (buffer not fully written)",
                end + i,
                buf[end + i]
            );
        }
        match core::str::from_utf8(&buf[..end]) {
            Ok(text) => Ok(text),
            Err(_) => fail!("{what}: not UTF-8: {:?}", &buf[..end]),
        }
    }

    /// XENVER_get_features: submap 0 for a PV guest has no
    /// auto-translated physmap, says dom0 for the initial domain; there
    /// is no submap 1.
    fn features(start: &StartInfo) -> Outcome {
        let mut info = [0u8; 8];
        ensure_eq!(
            hc::xen_version(XENVER_GET_FEATURES, &mut info),
            0,
            "XENVER_get_features submap 0"
        );
        let map = u32::from_le_bytes([info[4], info[5], info[6], info[7]]);
        println!("{NAME}: features submap 0 = {map:#010x}");
        ensure!(
            map & 1 << XENFEAT_AUTO_TRANSLATED_PHYSMAP == 0,
            "a PV guest is told its physmap is auto-translated"
        );
        if start.flags() & SIF_INITDOMAIN != 0 {
            ensure!(
                map & 1 << XENFEAT_DOM0 != 0,
                "the initial domain's features lack XENFEAT_dom0"
            );
        }
        let mut info = [0u8; 8];
        info[0] = 1;
        ensure_eq!(
            hc::xen_version(XENVER_GET_FEATURES, &mut info),
            EINVAL,
            "XENVER_get_features submap 1"
        );
        Ok(())
    }

    /// A batch with good and bad entries: each result written back in its
    /// entry, the multicall itself 0.
    fn multicall() -> Outcome {
        let entry = |op: u64, args: [u64; 6]| MulticallEntry {
            op,
            result: 0x5a5a,
            args,
        };
        let xv = Hypercall::XenVersion as u64;
        let mut batch = [
            entry(xv, [XENVER_VERSION as u64, 0, 0, 0, 0, 0]),
            entry(11, [0; 6]),
            entry(xv, [XENVER_PAGESIZE as u64, 0, 0, 0, 0, 0]),
            entry(xv, [1000, 0, 0, 0, 0, 0]),
            entry(
                Hypercall::SchedOp as u64,
                [SCHEDOP_YIELD as u64, 0, 0, 0, 0, 0],
            ),
        ];
        ensure_eq!(hc::multicall(&mut batch), 0, "multicall of 5 entries");
        let version = hc::xen_version_null(XENVER_VERSION);
        let results: [i64; 5] = core::array::from_fn(|i| batch[i].result);
        ensure_eq!(
            results,
            [version, ENOSYS, 4096, ENOSYS, 0],
            "multicall results (version, hypercall 11, pagesize, xen_version op 1000, yield)"
        );
        ensure_eq!(hc::multicall(&mut []), 0, "an empty multicall");
        Ok(())
    }
}
