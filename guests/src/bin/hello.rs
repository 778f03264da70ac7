//! `hello`: the smallest domU. It shows what a guest learns at start of
//! day (its id, memory, command line, where its console goes), prints it
//! through its console (the ring page dom0's back-end reads, for a domU)
//! and shuts itself down with `SCHEDOP_shutdown(poweroff)`, after which
//! dom0 sees it gone.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use pv_guest_sdk::{StartInfo, console, evtchn, println, sched, time};

    pub fn main(start: &'static StartInfo) -> ! {
        match evtchn::own_domid() {
            Ok(id) => println!("Hello from domain {id}!"),
            Err(e) => println!("Hello from a domain that cannot learn its id ({e})!"),
        }
        println!("hello: command line {:?}", start.cmdline());
        println!(
            "hello: {} pages ({} MiB), console through {}",
            start.nr_pages(),
            start.nr_pages() >> 8,
            if console::uses_ring() {
                "the console ring"
            } else {
                "console_io"
            }
        );
        println!(
            "hello: {} ms since the hypervisor started",
            time::now_ns() / 1_000_000
        );
        println!("hello: goodbye");
        sched::poweroff()
    }
}
