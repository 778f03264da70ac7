//! More vCPUs than the first: a domain created with several (`create
//! ... vcpus=N`) starts on vCPU 0 only; [`start_vcpu`] brings up another
//! on an entry function and a stack of its own.
//!
//! The SDK's console, event and memory layers are vCPU 0's: a secondary
//! vCPU's code uses hypercalls and atomics only. It starts in guest
//! kernel mode on the domain's page tables, with events masked, no trap
//! table and no callbacks (a fault there crashes the domain).

use abi::domctl::{VGCF_IN_KERNEL, VcpuGuestContext};
use abi::xen::{FLAT_KERNEL_CS64, FLAT_KERNEL_SS64};

use crate::{Error, Result, hypercall, mm};

/// How many vCPUs the domain has: the first `n` for which
/// `VCPUOP_is_up` answers (Xen answers `-ENOENT` past the last).
pub fn vcpu_count() -> u32 {
    let mut n = 1;
    while n < 1024
        && !matches!(
            hypercall::vcpu_is_up(n),
            Err(Error::Hypervisor(abi::Errno::NoEnt))
        )
    {
        n += 1;
    }
    n
}

/// Gives vCPU `vcpu` a context that runs `entry` on `stack` (given up
/// for good: the vCPU runs on it until the domain ends), and starts it.
pub fn start_vcpu(vcpu: u32, entry: extern "C" fn() -> !, stack: &'static mut [u8]) -> Result<()> {
    let top = stack.as_mut_ptr() as u64 + stack.len() as u64;
    hypercall::vcpu_initialise(vcpu, &context(entry, top))?;
    hypercall::vcpu_up(vcpu)
}

/// The `VCPUOP_initialise` context [`start_vcpu`] gives: guest kernel
/// mode at `entry` on the domain's page tables, the stack below
/// `stack_top` (rounded down to 16 bytes), events masked, no trap table
/// or callbacks.
pub fn context(entry: extern "C" fn() -> !, stack_top: u64) -> VcpuGuestContext {
    let top = stack_top & !0xf;
    let mut ctrlreg = [0; 8];
    ctrlreg[3] = mm::kernel_l4() << 12;
    let mut context = VcpuGuestContext {
        flags: VGCF_IN_KERNEL,
        kernel_ss: FLAT_KERNEL_SS64 as u64,
        kernel_sp: top,
        ctrlreg,
        ..VcpuGuestContext::default()
    };
    // As after a call: RSP + 8 is 16-aligned at the entry.
    context.user_regs.rsp = top - 8;
    context.user_regs.rip = entry as *const () as u64;
    context.user_regs.cs = FLAT_KERNEL_CS64;
    context.user_regs.ss = FLAT_KERNEL_SS64;
    context.user_regs.rflags = 0x202;
    context
}

/// Gives the calling vCPU the SDK's trap table. vCPU 0 has it from the
/// start of day; a vCPU started with [`start_vcpu`] has none until it asks
/// (a trap table is per vCPU). Its exceptions then reach the handlers
/// `traps::set_handler` installed, which every vCPU shares.
pub fn install_trap_table() -> Result<()> {
    crate::arch::entry::install_trap_table()
}
