//! The raw hypercall instruction sequence: a `call` into the builder-filled
//! hypercall page, number in RAX, arguments in RDI, RSI, RDX, R10, R8.
//!
//! Xen's PV64 stubs are `push rcx; push r11; mov eax, nr; syscall;
//! pop r11; pop rcx; ret`, so RCX and R11 survive; the argument registers
//! do not (debug hypervisors poison them), and are declared clobbered.

use core::arch::asm;

use super::start::hypercall_page;

/// Issues hypercall `nr` with up to five arguments and returns RAX.
///
/// # Safety
/// The arguments must be what hypercall `nr` expects: pointers must point to
/// memory valid for the access the hypercall makes, and the call must not
/// change mappings or state that Rust code relies on (unmapping live
/// memory, replacing the running page tables, ...).
#[inline(always)]
pub unsafe fn hypercall5(nr: u32, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let stub = (&raw const hypercall_page) as u64 + nr as u64 * abi::hypercall::STUB_SIZE as u64;
    let ret: i64;
    // SAFETY: the stub is the builder's code for hypercall `nr`; it returns
    // with RSP and every register not listed here preserved. The caller
    // vouches for the arguments.
    unsafe {
        asm!(
            "call {stub}",
            stub = in(reg) stub,
            inlateout("rax") nr as u64 => ret,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            inlateout("r8") a5 => _,
            out("rcx") _,
            out("r11") _,
        );
    }
    ret
}
