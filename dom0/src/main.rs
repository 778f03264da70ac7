//! dom0: the privileged PV service domain.
//!
//! dom0 is the toolstack, as `xl` is for Xen: it builds domains from the
//! guest images the boot loader handed it (the image bundle, its initrd),
//! shows their consoles, notices when they end, and gives the operator a
//! shell on the hypervisor console (`help` lists the commands). It will
//! also own the real devices and run the back-end drivers and the store.
//! It is a PV kernel written only against `pv-guest-sdk` and reaches the
//! hypervisor only through hypercalls.
//!
//! `unsafe` code lives in `privcmd` (the privileged hypercalls), `foreign`
//! (other domains' frames mapped into dom0) and `initrd`; the rest is safe,
//! and the pure parts (`shell`, `domains`, `console`, `bundle`) are tested
//! on the host.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]
// On the host only the pure logic is built, for its tests.
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

extern crate alloc;

mod bundle;
mod console;
mod domains;
mod shell;

#[cfg(target_os = "none")]
mod builder;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
mod foreign;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
mod initrd;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
mod privcmd;
#[cfg(target_os = "none")]
mod toolstack;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use alloc::string::String;
    use core::sync::atomic::Ordering;

    use abi::event_channel::{Port, VIRQ_CONSOLE};
    use pv_guest_sdk::line_editor::{Feed, LineEditor};
    use pv_guest_sdk::{StartInfo, events, hypercall, mm, println, sched, time};

    use crate::bundle::Bundle;
    use crate::initrd;
    use crate::shell::{COMMANDS, Command, Uptime};
    use crate::toolstack::{self, DOMAIN_EVENT, Toolstack, WAKE};

    /// Ctrl-]: leaves a domain's console, as in `xl console`.
    const DETACH: u8 = 0x1d;

    fn on_input(_: Port) {
        WAKE.store(true, Ordering::SeqCst);
    }

    pub fn main(start: &'static StartInfo) -> ! {
        let booted_ns = time::now_ns();
        println!(
            "dom0: PV kernel on pv-guest-sdk, ABI {} (Xen interface {}), running at CPL {}",
            pv_guest_sdk::HV_ABI_VERSION,
            pv_guest_sdk::XEN_INTERFACE_VERSION,
            pv_guest_sdk::current_privilege_level()
        );
        let bundle = match initrd::bytes(start).map(Bundle::parse) {
            Some(Ok(bundle)) => {
                println!(
                    "dom0: {} guest images (see `images`)",
                    bundle.images().len()
                );
                bundle
            }
            Some(Err(e)) => {
                println!("dom0: no guest images: {e}");
                Bundle::default()
            }
            None => {
                println!("dom0: no guest images (the boot loader gave dom0 no module)");
                Bundle::default()
            }
        };
        if let Err(e) = events::bind_virq(VIRQ_CONSOLE, on_input) {
            println!("dom0: cannot bind VIRQ_CONSOLE ({e}): no console input");
            sched::crash()
        }
        let mut tools = Toolstack::new(bundle);
        println!("dom0: type `help` for commands");
        toolstack::prompt(&mut tools);

        let mut editor = LineEditor::<256>::new();
        let mut input = [0u8; 256];
        loop {
            // Cleared before looking, so an event from here on makes the
            // wait below return at once.
            WAKE.store(false, Ordering::SeqCst);
            let mut busy = false;

            // Input first: a line typed at the prompt is echoed before
            // any guest output that arrived meanwhile.
            let n = match hypercall::console_read(&mut input) {
                Ok(n) => n,
                Err(e) => {
                    println!("dom0: console input failed: {e}");
                    sched::crash()
                }
            };
            busy |= n > 0;
            handle_input(&mut tools, &mut editor, &input[..n], start, booted_ns);

            let prompt_was_open = tools.prompt_open;
            busy |= tools.drain_consoles();
            if DOMAIN_EVENT.swap(false, Ordering::SeqCst) && tools.reap() {
                toolstack::prompt(&mut tools);
            }
            if prompt_was_open && !tools.prompt_open && !editor.line().is_empty() {
                // Output interrupted a half-typed line: show it again.
                let _ = hypercall::console_write(editor.line().as_bytes());
            }

            if !busy {
                events::wait_until(|| WAKE.load(Ordering::SeqCst));
            }
        }
    }

    /// Typed bytes: into the line editor and the shell, or, while attached,
    /// into the guest's console up to Ctrl-].
    fn handle_input(
        tools: &mut Toolstack,
        editor: &mut LineEditor<256>,
        bytes: &[u8],
        start: &StartInfo,
        booted_ns: u64,
    ) {
        let mut rest = bytes;
        while !rest.is_empty() {
            if tools.attached().is_some() {
                match rest.iter().position(|&b| b == DETACH) {
                    Some(at) => {
                        tools.type_into_attached(&rest[..at]);
                        tools.detach();
                        toolstack::prompt(tools);
                        rest = &rest[at + 1..];
                    }
                    None => {
                        tools.type_into_attached(rest);
                        rest = &[];
                    }
                }
                continue;
            }
            let byte = rest[0];
            rest = &rest[1..];
            match editor.feed(byte) {
                Feed::Echo(b) => {
                    let _ = hypercall::console_write(&[b]);
                }
                Feed::Erase => {
                    let _ = hypercall::console_write(b"\x08 \x08");
                }
                Feed::Line => {
                    let _ = hypercall::console_write(b"\n");
                    tools.prompt_open = false;
                    let line = String::from(editor.line());
                    editor.clear();
                    run(tools, &line, start, booted_ns);
                    if tools.attached().is_none() {
                        toolstack::prompt(tools);
                    }
                }
                Feed::Nothing => {}
            }
        }
    }

    /// Runs one command line.
    fn run(tools: &mut Toolstack, line: &str, start: &StartInfo, booted_ns: u64) {
        match Command::parse(line) {
            Ok(Command::Nothing) => {}
            Ok(Command::Help) => {
                for (name, what) in COMMANDS {
                    println!("  {name:<10} {what}");
                }
            }
            Ok(Command::Info) => info(tools, start, booted_ns),
            Ok(Command::List) => tools.list(),
            Ok(Command::Images) => tools.images(),
            Ok(Command::Create(args)) => tools.create(&args),
            Ok(Command::Destroy(target)) => tools.destroy(&target),
            Ok(Command::Pause(target)) => tools.pause(&target, true),
            Ok(Command::Unpause(target)) => tools.pause(&target, false),
            Ok(Command::Console(target)) => tools.attach(&target),
            Ok(Command::VcpuList(target)) => tools.vcpu_list(target.as_ref()),
            Ok(Command::VcpuPin(args)) => tools.vcpu_pin(&args),
            Ok(Command::Poweroff) => {
                tools.flush_all();
                println!("dom0: powering off");
                sched::poweroff()
            }
            Err(e) => println!("{e}"),
        }
    }

    fn info(tools: &Toolstack, start: &StartInfo, booted_ns: u64) {
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
        match tools.free_pages() {
            Ok(pages) => println!("free memory: {pages} pages"),
            Err(e) => println!("free memory: unknown (physinfo refused: {e})"),
        }
        let vcpus = (0..abi::xen::XEN_LEGACY_MAX_VCPUS as u32)
            .take_while(|&v| hypercall::vcpu_is_up(v).is_ok())
            .count();
        println!("vCPUs:      {vcpus}");
        match tools.physical_cpus() {
            Ok(cpus) => println!("CPUs:       {cpus} (physical)"),
            Err(e) => println!("CPUs:       unknown (physinfo refused: {e})"),
        }
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
