//! Security finding 2: the LDT register was never loaded.
//!
//! hv-core loaded GDT, TSS and IDT but never LDTR, so the LDT was what
//! firmware left: base 0, limit 0xffff, which is the guest's own page at
//! linear 0. A call gate written there to hv-core's code segment gave a
//! guest ring 0 on a CPU without SMAP; with SMAP the CPU's implicit
//! descriptor read of a guest page faults, which only contains it by luck.
//! With a null LDT (hv-core now, and Xen), every selector with the table
//! indicator set is refused before any descriptor is read.
//!
//! This guest maps page 0 with valid ring-3 data descriptors in its first
//! two slots and, from 32-bit code (so that any outcome comes back through
//! an exception handler), checks:
//! - `lar` of LDT selectors 0x7 and 0xf reports them invalid (ZF clear)
//!   without faulting;
//! - loading 0x7 into ES raises #GP with error code 0x4 (the selector),
//!   not a page fault and not success;
//! - `MMUEXT_SET_LDT` accepts the null LDT and refuses bad arguments as
//!   Xen does (a real LDT: taken by Xen, refused by hv-core with
//!   -EOPNOTSUPP, see docs/abi.md).
//!
//! On hv-core at 0cd41cd (SMAP on) `lar` read page 0 and faulted.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use abi::xen::{MMUEXT_SET_LDT, MmuextOp};
    use pv_guest_sdk::{StartInfo, println};
    use test_guests::compat::{self, Came, Trapped};
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure_eq, fail, hc, host};

    const NAME: &str = "sec-null-ldt";
    const CODE_AT: u64 = 0x10_0000;
    /// Flat ring-3 data, present, writable: what an LDT entry at linear 0
    /// would give a selector with TI set.
    const USER_DATA: u64 = 0x00cf_f300_0000_ffff;

    /// `lar` of `selector`; then `ud2` (offset 10) if it was refused,
    /// `hlt` (offset 12, #GP(0) in ring 3) if it was accepted.
    fn lar_code(selector: u8) -> [u8; 13] {
        [
            0xb9, selector, 0, 0, 0, // mov $selector, %ecx
            0x0f, 0x02, 0xc1, // lar %ecx, %eax
            0x74, 0x02, // jz accepted
            0x0f, 0x0b, // ud2: refused
            0xf4, // accepted: hlt
        ]
    }
    const REFUSED_AT: u64 = 10;
    const ACCEPTED_AT: u64 = 12;

    /// `mov $0x7, %ecx; mov %ecx, %es; ud2`: the load at offset 5.
    const LOAD_ES: [u8; 9] = [0xb9, 0x07, 0, 0, 0, 0x8e, 0xc1, 0x0f, 0x0b];
    const LOAD_AT: u64 = 5;

    fn set_ldt(linear_addr: u64, entries: u64) -> i64 {
        let op = MmuextOp {
            cmd: MMUEXT_SET_LDT,
            _pad: 0,
            arg1: linear_addr,
            arg2: entries,
        };
        hc::mmuext_op(&[op]).0
    }

    /// `MMUEXT_SET_LDT`: the null LDT is accepted (Linux sets it on every
    /// switch), bad arguments refused as Xen refuses them; hv-core refuses
    /// a real LDT by name, Xen takes it (and is put back to null).
    fn set_ldt_checks() -> Outcome {
        ensure_eq!(set_ldt(0, 0), 0, "MMUEXT_SET_LDT of the null LDT");
        ensure_eq!(
            set_ldt(0x10_0800, 1),
            -22,
            "MMUEXT_SET_LDT at an unaligned address"
        );
        ensure_eq!(
            set_ldt(0x10_0000, 8193),
            -22,
            "MMUEXT_SET_LDT of 8193 entries"
        );
        let real = set_ldt(0x10_0000, 1);
        if host::is_hv_core() {
            ensure_eq!(
                real,
                -95,
                "MMUEXT_SET_LDT of one entry (-EOPNOTSUPP on hv-core)"
            );
        } else {
            ensure_eq!(real, 0, "MMUEXT_SET_LDT of one entry on Xen");
            ensure_eq!(set_ldt(0, 0), 0, "MMUEXT_SET_LDT back to the null LDT");
        }
        Ok(())
    }

    pub fn main(_start: &'static StartInfo) -> ! {
        compat::install();
        finish(NAME, run())
    }

    fn run() -> Outcome {
        let mut page0 = [0u8; 4096];
        page0[..8].copy_from_slice(&USER_DATA.to_le_bytes());
        page0[8..16].copy_from_slice(&USER_DATA.to_le_bytes());
        if let Err(e) = compat::map_code(0, &page0) {
            fail!("mapping page 0 with descriptors: {e}");
        }
        if let Err(e) = compat::map_stack() {
            fail!("mapping the compat stack: {e}");
        }
        let mut code = [0xccu8; 4096];
        for (i, selector) in [0x07u8, 0x0f].into_iter().enumerate() {
            let at = i * 0x20;
            code[at..at + 13].copy_from_slice(&lar_code(selector));
        }
        code[0x40..0x40 + LOAD_ES.len()].copy_from_slice(&LOAD_ES);
        if let Err(e) = compat::map_code(CODE_AT, &code) {
            fail!("mapping the 32-bit code: {e}");
        }

        for (i, selector) in [0x07u64, 0x0f].into_iter().enumerate() {
            let start = CODE_AT + i as u64 * 0x20;
            match compat::jump(start) {
                Came::Trap(Trapped { vector: 6, rip, .. }) if rip == start + REFUSED_AT => {}
                Came::Trap(Trapped {
                    vector: 13, rip, ..
                }) if rip == start + ACCEPTED_AT => {
                    fail!("lar accepted LDT selector {selector:#x}: the LDT is the guest's page 0")
                }
                Came::Trap(Trapped {
                    vector: 14, cr2, ..
                }) => fail!(
                    "lar of LDT selector {selector:#x} read linear {cr2:#x} (a page fault): \
                     the LDT is not null"
                ),
                other => fail!("lar of LDT selector {selector:#x} came back through {other}"),
            }
        }

        let start = CODE_AT + 0x40;
        match compat::jump(start) {
            Came::Trap(Trapped {
                vector: 13,
                error_code,
                rip,
                ..
            }) if rip == start + LOAD_AT => {
                ensure_eq!(
                    error_code,
                    0x4,
                    "#GP error code for loading LDT selector 0x7"
                );
            }
            other => fail!(
                "loading LDT selector 0x7 into ES came back through {other}; expected #GP(0x4)"
            ),
        }
        set_ldt_checks()?;
        println!("{NAME}: LDT selectors refused without reading the guest's page 0");
        Ok(())
    }
}
