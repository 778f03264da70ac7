//! dom0: the privileged PV service domain.
//!
//! dom0 will own the real devices (virtio disk and NIC), run the back-end
//! drivers and the store, and build and manage the other domains. Today it
//! is a PV kernel written only against `pv-guest-sdk` that prints a banner
//! and gives the operator a shell on the hypervisor console (`help`,
//! `info`, `poweroff`). It reaches the hypervisor only through hypercalls
//! and boots on Xen 4.17 as well as on hv-core.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]
// On the host only the shell's pure logic is built, for its tests.
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

mod shell;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use pv_guest_sdk::console::input::LineReader;
    use pv_guest_sdk::{StartInfo, hypercall, mm, print, println, sched, time};

    use crate::shell::{COMMANDS, Command, Uptime};

    pub fn main(start: &'static StartInfo) -> ! {
        let booted_ns = time::now_ns();
        println!(
            "dom0: PV kernel on pv-guest-sdk, ABI {} (Xen interface {}), running at CPL {}",
            pv_guest_sdk::HV_ABI_VERSION,
            pv_guest_sdk::XEN_INTERFACE_VERSION,
            pv_guest_sdk::current_privilege_level()
        );
        println!("dom0: type `help` for commands");
        let mut reader = LineReader::<128>::new();
        loop {
            print!("dom0> ");
            let line = match reader.read_line() {
                Ok(line) => line,
                Err(e) => {
                    println!("dom0: console input failed: {e}");
                    sched::crash()
                }
            };
            match Command::parse(line) {
                Ok(Command::Nothing) => {}
                Ok(Command::Help) => {
                    for (name, what) in COMMANDS {
                        println!("  {name:<10} {what}");
                    }
                }
                Ok(Command::Info) => info(start, booted_ns),
                Ok(Command::Poweroff) => {
                    println!("dom0: powering off");
                    sched::poweroff()
                }
                Err(word) => println!("unknown command `{word}` (try `help`)"),
            }
        }
    }

    fn info(start: &StartInfo, booted_ns: u64) {
        if start.is_initial_domain() {
            println!("domain:     0 (initial domain, privileged)");
        } else {
            println!(
                "domain:     not the initial domain (privileged: {})",
                start.is_privileged()
            );
        }
        let reservation = hypercall::memory_current_reservation(abi::xen::DOMID_SELF);
        println!(
            "memory:     {} KiB given at boot, {} KiB held now, {} KiB free",
            start.nr_pages() * 4,
            reservation.map(|pages| pages * 4).unwrap_or(0),
            mm::free_frames() * 4
        );
        let vcpus = (0..abi::xen::XEN_LEGACY_MAX_VCPUS as u32)
            .take_while(|&v| hypercall::vcpu_is_up(v).is_ok())
            .count();
        println!("vCPUs:      {vcpus}");
        let version = abi::XenVersion(hypercall::xen_version());
        let extra = hypercall::xen_extraversion().unwrap_or_default();
        let extra_len = extra.iter().position(|&b| b == 0).unwrap_or(extra.len());
        println!(
            "hypervisor: interface {}{}",
            version,
            core::str::from_utf8(&extra[..extra_len]).unwrap_or("")
        );
        println!(
            "ABI:        {} (Xen interface {} implemented by pv-guest-sdk)",
            pv_guest_sdk::HV_ABI_VERSION,
            pv_guest_sdk::XEN_INTERFACE_VERSION
        );
        let now = time::now_ns();
        println!(
            "uptime:     {} (hypervisor), {} (dom0)",
            Uptime(now),
            Uptime(now.saturating_sub(booted_ns))
        );
        println!("CPL:        {}", pv_guest_sdk::current_privilege_level());
    }
}
