//! The smallest PV guest: start of day, one line, power-off.
#![cfg_attr(target_os = "none", no_std, no_main)]

pv_guest_sdk::entry!(kernel_main);

#[cfg(target_os = "none")]
fn kernel_main(start: &'static pv_guest_sdk::StartInfo) -> ! {
    use pv_guest_sdk::{println, sched};
    println!(
        "hello from a PV guest: CPL {}, {} pages, command line {:?}",
        pv_guest_sdk::current_privilege_level(),
        start.nr_pages(),
        start.cmdline()
    );
    println!("PASS sdk-hello");
    sched::poweroff()
}
