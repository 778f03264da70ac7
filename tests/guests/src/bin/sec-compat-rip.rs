//! Security finding 7: a return to the 32-bit code segment with RIP at
//! or above 4 GiB.
//!
//! hv-core checked only that a guest's return RIP is canonical. With CS
//! 0xe023 (32-bit) and RIP beyond 4 GiB, which a guest gets by
//! `HYPERVISOR_iret` or by the forced-CPUID prefix at 0xfffffff9 (the
//! emulation added 7 to RIP without wrapping), hv-core's own `iretq`
//! takes a #GP in ring 0 on hardware: a fatal stop. QEMU's TCG truncates
//! RIP instead, so TCG cannot show the stop; this guest checks what
//! hv-core does before its `iretq`:
//! - `HYPERVISOR_iret` to 0xe023:0x1_0000_0000 delivers #GP(0) to the
//!   guest with that RIP and the 32-bit CS in the frame (as Xen's iretq
//!   fault handler does on hardware), instead of returning there;
//! - the forced-CPUID prefix ending exactly at 4 GiB is emulated, and
//!   execution continues at EIP 0, as the CPU's EIP wraps in a 32-bit
//!   segment (the `ud2` there raises #UD at RIP 0).
//!
//! hv-core only: under TCG, Xen returns to the truncated RIP (QEMU), so
//! its answer to the first check is a #PF at 0, not the hardware's.
//! On hv-core at 0cd41cd the first check got that #PF too.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use abi::xen::FLAT_RING3_CS32;
    use pv_guest_sdk::{StartInfo, println};
    use test_guests::compat::{self, Came, Trapped};
    use test_guests::verdict::{Outcome, finish};
    use test_guests::{ensure_eq, fail};

    const NAME: &str = "sec-compat-rip";
    const FOUR_GIB: u64 = 1 << 32;
    /// The page ending at 4 GiB, whose last 7 bytes are the prefix
    /// `ud2; "xen"; cpuid`; and page 0, where EIP wraps to (`ud2`).
    const TOP_PAGE: u64 = FOUR_GIB - 0x1000;
    const PREFIX_AT: u64 = FOUR_GIB - 7;
    const SELECTOR: u64 = 0xfffc;

    pub fn main(_start: &'static StartInfo) -> ! {
        compat::install();
        finish(NAME, run())
    }

    fn run() -> Outcome {
        if let Err(e) = compat::map_stack() {
            fail!("mapping the compat stack: {e}");
        }

        // 1. HYPERVISOR_iret to a 32-bit CS with RIP = 4 GiB.
        match compat::iret(FLAT_RING3_CS32, FOUR_GIB) {
            Came::Trap(Trapped {
                vector: 13,
                error_code: 0,
                rip,
                cs,
                ..
            }) => {
                ensure_eq!(rip, FOUR_GIB, "#GP frame RIP");
                ensure_eq!(
                    cs & SELECTOR,
                    FLAT_RING3_CS32 as u64 & SELECTOR,
                    "#GP frame CS"
                );
            }
            other => fail!(
                "HYPERVISOR_iret to {FLAT_RING3_CS32:#x}:{FOUR_GIB:#x} came back through \
                 {other}; expected #GP(0) before the return"
            ),
        }

        // 2. The forced-CPUID prefix in the last 7 bytes below 4 GiB.
        let mut top = [0x0f, 0x0b].repeat(2048);
        let at = (PREFIX_AT - TOP_PAGE) as usize;
        top[at..].copy_from_slice(&[0x0f, 0x0b, b'x', b'e', b'n', 0x0f, 0xa2]);
        if let Err(e) = compat::map_code(TOP_PAGE, &top) {
            fail!("mapping the page below 4 GiB: {e}");
        }
        if let Err(e) = compat::map_code(0, &[0x0f, 0x0b].repeat(2048)) {
            fail!("mapping page 0: {e}");
        }
        match compat::jump(PREFIX_AT) {
            Came::Trap(Trapped {
                vector: 6, rip: 0, ..
            }) => {}
            other => fail!(
                "the forced-CPUID prefix at {PREFIX_AT:#x} came back through {other}; \
                 expected #UD at RIP 0 (EIP wraps)"
            ),
        }
        println!("{NAME}: RIP at 4 GiB with a 32-bit CS: #GP(0); EIP wraps after emulation");
        Ok(())
    }
}
