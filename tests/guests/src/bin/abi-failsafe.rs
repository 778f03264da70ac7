//! The failsafe callback: returning with `HYPERVISOR_iret` to a frame whose
//! code selector is not a usable one must not crash the domain but enter
//! the failsafe callback the guest registered (Xen's behaviour when it
//! cannot load the guest's segments).
#![cfg_attr(target_os = "none", no_std, no_main)]
// The test is two instructions' worth of raw ABI: registering a naked
// entry point and a hand-built iret frame.
#![allow(unsafe_code)]

pv_guest_sdk::entry!(kernel_main);

/// Entered by the hypervisor with the failsafe frame on the stack; the
/// stack is as after a call, so a Rust function can take over.
#[cfg(target_os = "none")]
#[unsafe(naked)]
extern "C" fn failsafe_entry() -> ! {
    core::arch::naked_asm!("jmp {reached}", reached = sym failsafe_reached)
}

#[cfg(target_os = "none")]
extern "C" fn failsafe_reached() -> ! {
    pv_guest_sdk::println!("PASS abi-failsafe");
    pv_guest_sdk::sched::poweroff()
}

#[cfg(target_os = "none")]
fn kernel_main(_start: &'static pv_guest_sdk::StartInfo) -> ! {
    use pv_guest_sdk::{hypercall, println, sched};
    // SAFETY: `failsafe_entry` handles the failsafe frame (it never
    // returns through it).
    let registered = unsafe {
        hypercall::callback_register(
            abi::ops::CALLBACKTYPE_FAILSAFE,
            failsafe_entry as *const () as u64,
            true,
        )
    };
    if registered.is_err() {
        println!("FAIL abi-failsafe: registering the failsafe callback: {registered:?}");
        sched::poweroff()
    }
    // SAFETY: an iret to the next instruction on this very stack, in
    // kernel mode (CS RPL 0 asks to stay in kernel mode), but with a code
    // selector (0x1230) that names no usable descriptor: the hypervisor
    // cannot return there and enters the failsafe callback instead. If it
    // returned anyway, execution would continue at label 2 with the same
    // stack.
    unsafe {
        core::arch::asm!(
            "mov rax, rsp",
            "push 0xe02b",          // ss
            "push rax",             // rsp
            "pushfq",               // rflags
            "push 0x1230",          // cs: no such descriptor
            "lea rax, [rip + 2f]",
            "push rax",             // rip
            "push 0",               // flags
            "jmp hypercall_page + {iret}",
            "2:",
            iret = const 23 * 32,
            out("rax") _,
        );
    }
    println!("FAIL abi-failsafe: iret to an unusable code selector returned to the guest");
    sched::poweroff()
}
