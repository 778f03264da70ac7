//! A guest with no trap handlers that page-faults: nothing can be bounced
//! to, so the hypervisor must kill it alone and report domain, vCPU, RIP
//! and the reason. It prints one line before the fault; it never gets to
//! print a result, so the scenario judges the hypervisor's report.
#![cfg_attr(target_os = "none", no_std, no_main)]

pv_guest_sdk::entry!(kernel_main);

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
fn kernel_main(_start: &'static pv_guest_sdk::StartInfo) -> ! {
    use pv_guest_sdk::println;
    use test_guests::arch;

    // SAFETY: a null trap table clears every handler (Xen's semantics);
    // nothing in this guest relies on them afterwards.
    let cleared = unsafe { arch::hypercall(abi::Hypercall::SetTrapTable as u32, [0; 5]) };
    println!("fault-unhandled: trap table cleared ({cleared}); touching an unmapped page");
    // SAFETY: deliberately unsound: the read faults and there is no
    // handler, which is the point of this guest.
    let value = unsafe { arch::read_volatile_u64(0x10) };
    println!("FAIL fault-unhandled: the read returned {value:#x} instead of faulting");
    pv_guest_sdk::sched::poweroff()
}
