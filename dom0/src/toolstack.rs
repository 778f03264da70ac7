//! The toolstack: the domains dom0 made, the shell's commands on them, the
//! console back-end and what happens when a domain ends.
//!
//! Everything here runs in dom0's main loop, never in an event handler:
//! handlers only raise [`WAKE`] (and [`DOMAIN_EVENT`] for `VIRQ_DOM_EXC`),
//! and the loop drains the consoles and looks at the domains when it wakes.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use abi::Errno;
use abi::domctl::{DomainInfo, XEN_DOMINF_DYING};
use abi::event_channel::{Port, VIRQ_DOM_EXC};
use abi::io::console::CONSOLE_OUT_SIZE;
use abi::xen::DomId;
use pv_guest_sdk::{Error, events, hypercall, print, println};

use crate::builder::{self, Spec};
use crate::bundle::Bundle;
use crate::console::{LineBuffer, give_input, take_output};
use crate::domains::{
    DOM0_NAME, Ending, choose_name, list_header, list_row, vcpu_list_header, vcpu_list_row,
};
use crate::foreign::{ForeignPage, Window};
use crate::privcmd;
use crate::shell::{CreateArgs, PinArgs, Target, format_cpus};

/// Raised by every event the toolstack listens to: the main loop has work.
pub static WAKE: AtomicBool = AtomicBool::new(false);
/// Raised by `VIRQ_DOM_EXC`: some domain shut down, crashed or died.
pub static DOMAIN_EVENT: AtomicBool = AtomicBool::new(false);

fn on_console_event(_: Port) {
    WAKE.store(true, Ordering::SeqCst);
}

fn on_domain_event(_: Port) {
    DOMAIN_EVENT.store(true, Ordering::SeqCst);
    WAKE.store(true, Ordering::SeqCst);
}

/// A domain dom0 built.
struct Guest {
    id: DomId,
    name: String,
    /// The console ring page, mapped.
    console: ForeignPage,
    /// dom0's end of the console channel.
    port: Port,
    lines: LineBuffer,
}

pub struct Toolstack {
    bundle: Bundle<'static>,
    window: Option<Window>,
    guests: Vec<Guest>,
    /// The domain whose console the terminal is attached to.
    attached: Option<DomId>,
    /// The prompt is on screen with nothing after it but typed input:
    /// output must start on a new line.
    pub prompt_open: bool,
}

impl Toolstack {
    /// Binds `VIRQ_DOM_EXC` and sets up the foreign-mapping window. Without
    /// the window (or on a hypervisor that refuses dom0 what it needs) the
    /// shell still runs; `create` says why it cannot.
    pub fn new(bundle: Bundle<'static>) -> Self {
        if let Err(e) = events::bind_virq(VIRQ_DOM_EXC, on_domain_event) {
            println!("dom0: cannot bind VIRQ_DOM_EXC ({e}): ended domains go unnoticed");
        }
        let window = match Window::new() {
            Ok(window) => Some(window),
            Err(e) => {
                println!("dom0: {e}; `create` is unavailable");
                None
            }
        };
        Self {
            bundle,
            window,
            guests: Vec::new(),
            attached: None,
            prompt_open: false,
        }
    }

    pub fn attached(&self) -> Option<DomId> {
        self.attached
    }

    fn holder(&self, name: &str) -> Option<DomId> {
        self.guests.iter().find(|g| g.name == name).map(|g| g.id)
    }

    fn index_of(&self, target: &Target) -> Option<usize> {
        self.guests.iter().position(|g| match target {
            Target::Id(id) => g.id == *id,
            Target::Name(name) => g.name == *name,
        })
    }

    /// The guest `target` names, or the one-line reason it names none.
    fn find(&self, command: &str, target: &Target) -> Result<usize, String> {
        match (self.index_of(target), target) {
            (Some(i), _) => Ok(i),
            (None, Target::Id(0)) => Err(alloc::format!(
                "{command}: domain 0 is dom0 itself (use `poweroff`)"
            )),
            (None, _) => Err(alloc::format!(
                "{command}: no domain `{target}` (see `list`)"
            )),
        }
    }

    /// Starts output on its own line if the prompt is showing.
    fn leave_prompt(&mut self) {
        if core::mem::take(&mut self.prompt_open) {
            println!();
        }
    }

    // --- commands --------------------------------------------------------

    pub fn images(&self) {
        if self.bundle.is_empty() {
            println!("no images (the boot loader gave dom0 no image bundle)");
        }
        for image in self.bundle.images() {
            println!(
                "{:<24} {:>6} KiB",
                image.name,
                image.bytes.len().div_ceil(1024)
            );
        }
    }

    pub fn create(&mut self, args: &CreateArgs) {
        let Some(image) = self.bundle.find(&args.image) else {
            println!("create: no image `{}` (see `images`)", args.image);
            return;
        };
        let (image_name, image_bytes): (String, &'static [u8]) = (image.name.clone(), image.bytes);
        if let Some(name) = &args.name
            && let Some(other) = self.holder(name)
        {
            println!("create: the name `{name}` is taken by domain {other}");
            return;
        }
        let Some(window) = self.window.as_mut() else {
            println!("create: dom0 cannot map other domains' memory (see the start-up message)");
            return;
        };
        let spec = Spec {
            image: image_bytes,
            memory_mib: args.memory_mib,
            cmdline: &args.cmdline,
            vcpus: args.vcpus,
        };
        let built = match builder::build(window, &spec) {
            Ok(built) => built,
            Err(builder::BuildError::Image(e)) => {
                println!("create: image `{}` refused: {e}", args.image);
                return;
            }
            Err(e) => {
                println!("create: {e}");
                return;
            }
        };
        let id = built.id;
        // An explicit name was checked above; the default one needs the id.
        let name = choose_name(args.name.as_deref(), &image_name, id, |n| self.holder(n))
            .unwrap_or_else(|_| alloc::format!("{image_name}-{id}"));
        let port = match hypercall::evtchn_bind_interdomain(id, built.console_port) {
            Ok(port) => port,
            Err(e) => {
                println!("create: binding the console of domain {id} failed: {e}");
                self.window_unmap(built.console);
                let _ = privcmd::destroy_domain(id);
                return;
            }
        };
        events::set_handler(port, on_console_event);
        let _ = events::unmask(port);
        self.guests.push(Guest {
            id,
            name,
            console: built.console,
            port,
            lines: LineBuffer::default(),
        });
        if let Err(e) = privcmd::unpause_domain(id) {
            println!("create: unpausing domain {id} failed: {e}");
            self.remove(self.guests.len() - 1, true);
            return;
        }
        let guest = &self.guests[self.guests.len() - 1];
        println!("created domain {} ({})", guest.id, guest.name);
    }

    pub fn destroy(&mut self, target: &Target) {
        match self.find("destroy", target) {
            Ok(i) => {
                let (id, name) = (self.guests[i].id, self.guests[i].name.clone());
                self.remove(i, true);
                println!("domain {id} ({name}) destroyed");
            }
            Err(e) => println!("{e}"),
        }
    }

    pub fn pause(&mut self, target: &Target, pause: bool) {
        let command = if pause { "pause" } else { "unpause" };
        let i = match self.find(command, target) {
            Ok(i) => i,
            Err(e) => return println!("{e}"),
        };
        let id = self.guests[i].id;
        let result = if pause {
            privcmd::pause_domain(id)
        } else {
            privcmd::unpause_domain(id)
        };
        if let Err(e) = result {
            println!("{command}: domain {id}: {e}");
        }
    }

    /// Attaches the terminal to a domain's console.
    pub fn attach(&mut self, target: &Target) {
        match self.find("console", target) {
            Ok(i) => {
                let guest = &self.guests[i];
                println!(
                    "attached to the console of domain {} ({}); Ctrl-] detaches",
                    guest.id, guest.name
                );
                self.attached = Some(guest.id);
            }
            Err(e) => println!("{e}"),
        }
    }

    pub fn detach(&mut self) {
        if self.attached.take().is_some() {
            println!();
            println!("detached");
        }
    }

    /// Types `bytes` into the attached domain's console; what does not fit
    /// in its ring is dropped (a full ring means the guest is not reading).
    pub fn type_into_attached(&mut self, bytes: &[u8]) {
        let Some(guest) = self.guests.iter().find(|g| Some(g.id) == self.attached) else {
            return;
        };
        if give_input(guest.console.page(), bytes) > 0 {
            let _ = hypercall::evtchn_send(guest.port);
        }
    }

    pub fn list(&self) {
        let mut infos = [DomainInfo::default(); 64];
        let n = match privcmd::domain_info_list(&mut infos) {
            Ok(n) => n,
            Err(e) => return println!("list: the hypervisor refused the domain list: {e}"),
        };
        println!("{}", list_header());
        for info in &infos[..n] {
            println!("{}", list_row(self.name_of(info.domain), info));
        }
    }

    /// Every domain (or the one `target` names, dom0 included) and its
    /// vCPUs, one row each, as `xl vcpu-list`.
    pub fn vcpu_list(&self, target: Option<&Target>) {
        let mut infos = [DomainInfo::default(); 64];
        let n = match privcmd::domain_info_list(&mut infos) {
            Ok(n) => n,
            Err(e) => return println!("vcpu-list: the hypervisor refused the domain list: {e}"),
        };
        let present = self.present_cpus();
        let domains: Vec<(DomId, &str)> = match target {
            Some(target) => match self.any_domain("vcpu-list", target) {
                Ok(one) => alloc::vec![one],
                Err(e) => return println!("{e}"),
            },
            None => infos[..n]
                .iter()
                .map(|info| (info.domain, self.name_of(info.domain)))
                .collect(),
        };
        println!("{}", vcpu_list_header());
        for (id, name) in domains {
            let vcpus = infos[..n]
                .iter()
                .find(|i| i.domain == id)
                .map_or(1, |i| i.max_vcpu_id + 1);
            for vcpu in 0..vcpus {
                let info = match privcmd::vcpu_info(id, vcpu) {
                    Ok(info) => info,
                    Err(e) => {
                        println!("vcpu-list: domain {id} vCPU {vcpu}: {e}");
                        continue;
                    }
                };
                let affinity = privcmd::vcpu_affinity(id, vcpu)
                    .map_or_else(|e| alloc::format!("({e})"), |m| format_cpus(m, present));
                println!("{}", vcpu_list_row(name, id, &info, &affinity));
            }
        }
    }

    /// Sets the hard affinity of one vCPU or all of a domain's.
    pub fn vcpu_pin(&self, args: &PinArgs) {
        let (id, _) = match self.any_domain("vcpu-pin", &args.target) {
            Ok(one) => one,
            Err(e) => return println!("{e}"),
        };
        let vcpus = match args.vcpu {
            Some(v) => v..v + 1,
            None => 0..privcmd::domain_info(id).map_or(1, |i| i.max_vcpu_id + 1),
        };
        let present = self.present_cpus();
        for vcpu in vcpus {
            match privcmd::set_vcpu_affinity(id, vcpu, args.cpus) {
                Ok(effective) => println!(
                    "vcpu-pin: domain {id} vCPU {vcpu} may run on CPUs {}",
                    format_cpus(effective, present)
                ),
                Err(Error::Hypervisor(Errno::Inval)) if args.cpus & present == 0 => println!(
                    "vcpu-pin: none of CPUs {} is up (the machine has {})",
                    format_cpus(args.cpus, u64::MAX),
                    format_cpus(present, 0)
                ),
                Err(e) => println!("vcpu-pin: domain {id} vCPU {vcpu}: {e}"),
            }
        }
    }

    /// The CPUs that are up (as physinfo counts them; the first 64).
    fn present_cpus(&self) -> u64 {
        match self.physical_cpus() {
            Ok(n) if n >= 64 => u64::MAX,
            Ok(n) => (1u64 << n) - 1,
            Err(_) => 1,
        }
    }

    /// `list`'s name for domain `id`.
    fn name_of(&self, id: DomId) -> &str {
        match id {
            0 => DOM0_NAME,
            id => self
                .guests
                .iter()
                .find(|g| g.id == id)
                .map_or("(not dom0's)", |g| g.name.as_str()),
        }
    }

    /// The domain `target` names, dom0 (`0`, `Domain-0`) included.
    fn any_domain(&self, command: &str, target: &Target) -> Result<(DomId, &str), String> {
        match target {
            Target::Id(0) => Ok((0, DOM0_NAME)),
            Target::Name(name) if name == DOM0_NAME => Ok((0, DOM0_NAME)),
            _ => self.find(command, target).map(|i| {
                let g = &self.guests[i];
                (g.id, g.name.as_str())
            }),
        }
    }

    /// Free memory as the hypervisor counts it.
    pub fn free_pages(&self) -> Result<u64, Error> {
        privcmd::physinfo().map(|info| info.free_pages)
    }

    /// The physical CPUs the hypervisor runs on.
    pub fn physical_cpus(&self) -> Result<u32, Error> {
        privcmd::physinfo().map(|info| info.nr_cpus)
    }

    // --- the console back-end and domain events --------------------------

    /// Shows what every domain has written since the last call, at most a
    /// ring's worth each, so a guest that writes without pause cannot keep
    /// dom0 from its shell. Returns whether there was anything.
    pub fn drain_consoles(&mut self) -> bool {
        let mut any = false;
        for i in 0..self.guests.len() {
            any |= self.drain(i, 1);
        }
        any
    }

    /// Up to `rounds` ring's worth of guest `i`'s output.
    fn drain(&mut self, i: usize, rounds: usize) -> bool {
        let mut buf = [0u8; CONSOLE_OUT_SIZE as usize];
        let mut any = false;
        for _ in 0..rounds {
            let n = take_output(self.guests[i].console.page(), &mut buf);
            if n == 0 {
                break;
            }
            any = true;
            // The guest may be waiting for room in its ring.
            let _ = hypercall::evtchn_send(self.guests[i].port);
            self.show(i, &buf[..n]);
        }
        any
    }

    fn show(&mut self, i: usize, bytes: &[u8]) {
        if self.attached == Some(self.guests[i].id) {
            // Attached: the guest's bytes as they are, as `xl console`.
            let _ = hypercall::console_write(bytes);
            return;
        }
        self.leave_prompt();
        let guest = &mut self.guests[i];
        let name = &guest.name;
        guest.lines.push(bytes, |line| println!("[{name}] {line}"));
    }

    /// Looks at every domain after `VIRQ_DOM_EXC`: one that shut down is
    /// reported and destroyed (`xl`'s default `on_poweroff` and `on_crash`),
    /// one that is gone is forgotten. Returns whether the attached console
    /// went away.
    pub fn reap(&mut self) -> bool {
        let was_attached = self.attached;
        let mut i = 0;
        while i < self.guests.len() {
            let id = self.guests[i].id;
            let ending = match privcmd::domain_info(id) {
                Ok(info) if info.flags & XEN_DOMINF_DYING != 0 => None,
                Ok(info) => info.shutdown_reason().map(Ending::of),
                Err(Error::Hypervisor(Errno::Srch)) => Some(Ending::Other(u32::MAX)),
                Err(_) => None,
            };
            let Some(ending) = ending else {
                i += 1;
                continue;
            };
            // What it wrote last comes before the report (it cannot write
            // more: it has shut down).
            self.drain(i, usize::MAX);
            let name = self.guests[i].name.clone();
            self.leave_prompt();
            if ending == Ending::Other(u32::MAX) {
                println!("domain {id} ({name}) is gone");
                self.remove(i, false);
            } else {
                println!("{}", ending.report(id, &name));
                self.remove(i, true);
            }
        }
        was_attached.is_some() && self.attached.is_none()
    }

    /// Forgets guest `i`: its last partial line is shown, dom0's mapping
    /// and port go, and (with `destroy`) the domain is destroyed.
    fn remove(&mut self, i: usize, destroy: bool) {
        // A running domain may still be writing: take what is there, but
        // not for ever.
        self.drain(i, 2);
        let mut guest = self.guests.remove(i);
        let name = guest.name.clone();
        guest.lines.flush(|line| println!("[{name}] {line}"));
        if self.attached == Some(guest.id) {
            self.attached = None;
            println!();
            println!("detached: domain {} ({name}) ended", guest.id);
        }
        events::clear_handler(guest.port);
        let _ = hypercall::evtchn_close(guest.port);
        self.window_unmap(guest.console);
        if destroy && let Err(e) = privcmd::destroy_domain(guest.id) {
            println!("destroying domain {} failed: {e}", guest.id);
        }
    }

    fn window_unmap(&mut self, page: ForeignPage) {
        if let Some(window) = self.window.as_mut() {
            window.unmap([page]);
        }
    }

    /// Shows the rest of every console (before power-off).
    pub fn flush_all(&mut self) {
        for i in 0..self.guests.len() {
            self.drain(i, 2);
        }
        for guest in &mut self.guests {
            let name = &guest.name;
            guest.lines.flush(|line| println!("[{name}] {line}"));
        }
    }
}

/// The prompt, printed once per command: scripted input types a line each
/// time it appears.
pub fn prompt(toolstack: &mut Toolstack) {
    print!("dom0> ");
    toolstack.prompt_open = true;
}
