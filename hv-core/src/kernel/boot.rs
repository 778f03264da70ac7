//! `hv_main`: from the boot loader's hand-off to a running hypervisor.

use hv_core::cmdline::Options;
use hv_core::frame_alloc::{FRAME_SIZE, PhysRange, UsableRanges};
use hv_core::{PRODUCT, VERSION};
use multiboot2::{BootInformation, MemoryAreaType};

use crate::arch::{self, cpu, lapic, paging, time};
use crate::{dom0, logger, memory, stop, vtime};

const MIB: u64 = 1 << 20;

/// Called by the architecture's entry code with the boot loader's hand-off.
pub fn start(handoff: arch::BootHandoff) -> ! {
    logger::init();
    cpu::init_descriptor_tables();

    let info = match handoff.boot_info() {
        Ok(info) => info,
        Err(arch::BootInfoError::NotMultiboot2(magic)) => {
            log::error!("not started by a multiboot2 boot loader (magic {magic:#x})");
            stop::fatal("bad boot magic");
        }
        Err(arch::BootInfoError::Unreadable(e)) => {
            log::error!("cannot read the multiboot2 boot information: {e:?}");
            stop::fatal("bad boot information");
        }
    };

    let cmdline = info
        .command_line_tag()
        .and_then(|t| t.cmdline().ok())
        .unwrap_or("");
    let options = Options::parse(cmdline, |e| log::warn!("command line: {e}"));
    logger::set_level(options.log_level);
    stop::set_debug_exit(options.debug_exit);

    log::info!("{PRODUCT} {VERSION} (abi {})", abi::HV_ABI_VERSION);
    log::info!(
        "implements the Xen {} PV64 interface; command line: \"{cmdline}\"",
        abi::XEN_INTERFACE_VERSION
    );
    if let Some(name) = info.boot_loader_name_tag().and_then(|t| t.name().ok()) {
        log::debug!("boot loader: {name}");
    }

    let features = *cpu::features();
    cpu::enable_protections();
    report_cpu(&features);

    let trampoline = init_memory(&info, handoff.info_phys());
    init_boot_cpu();

    let platform = match arch::acpi::discover(&info) {
        Ok(platform) => Some(platform),
        Err(e) => {
            log::warn!("{e}; assuming one CPU and no soft-off");
            None
        }
    };
    stop::set_soft_off(platform.and_then(|p| p.power));
    match platform {
        Some(p) => log::info!(
            "cpus: {} (ACPI {}), ioapics: {}, soft-off: {}",
            p.cpus,
            if p.revision >= 2 { "2.0+" } else { "1.0" },
            p.ioapics,
            if p.power.is_some() {
                "ACPI S5"
            } else {
                "unavailable"
            }
        ),
        None => log::info!("cpus: 1 (no ACPI)"),
    }

    init_time(&features);
    // The guest clock before the other CPUs: their scheduler reads it.
    vtime::init();
    start_cpus(platform.as_ref(), options.max_cpus, trampoline);

    if let Some(crash) = options.crash {
        log::info!("crashing on purpose (crash={crash:?})");
        arch::crash(crash);
    }

    let modules = report_modules(&info);
    if modules == 0 {
        log::info!("no dom0 module: nothing to run; powering off");
        stop::power_off()
    }

    arch::pv::init();
    if let Some(platform) = platform {
        route_console_input(&platform);
    }
    let module = info.module_tags().next().expect("counted above");
    let bytes = info.module_bytes(0).expect("counted above");
    // The second module is dom0's initrd, as on Xen (the toolstack's
    // bundle of guest images); further ones are not passed on.
    let initrd = info.module_bytes(1).unwrap_or(&[]);
    let frame = match dom0::build_with_initrd(
        bytes,
        module.cmdline().unwrap_or(""),
        initrd,
        options.dom0_mem,
        options.dom0_max_vcpus,
    ) {
        Ok(frame) => frame,
        Err(e) => {
            log::error!("dom0 image refused: {e}");
            stop::fatal("cannot build dom0")
        }
    };
    log::info!("starting dom0 in ring 3");
    crate::scheduler::start(vtime::now_ns());
    arch::pv::enter_guest(&frame)
}

/// COM1's interrupt: input, so dom0's console can be typed at, and the
/// transmit ring's drain (without it, output stays polled).
fn route_console_input(platform: &arch::acpi::Platform) {
    let Some(ioapic) = platform.ioapic else {
        log::warn!("no IOAPIC: console input is unavailable");
        return;
    };
    let (gsi, level, active_low) = platform.com1_gsi;
    arch::ioapic::route(
        &ioapic,
        gsi,
        arch::SERIAL_VECTOR,
        cpu::apic_id(),
        level,
        active_low,
    );
    arch::serial::enable_interrupts();
}

fn report_cpu(f: &cpu::Features) {
    let mut brand = [0u8; 48];
    let vendor = core::str::from_utf8(&f.vendor).unwrap_or("?");
    log::info!("cpu: {vendor} \"{}\"", cpu::brand(&mut brand));
    let flag = |on: bool| if on { "+" } else { "-" };
    log::info!(
        "cpu features: {}nx {}smep {}smap {}xsave {}1gb-pages {}svm {}npt {}vmx {}x2apic {}tsc-deadline {}invariant-tsc",
        flag(f.nx),
        flag(f.smep),
        flag(f.smap),
        flag(f.xsave),
        flag(f.pdpe1gb),
        flag(f.svm),
        flag(f.npt),
        flag(f.vmx),
        flag(f.x2apic),
        flag(f.tsc_deadline),
        flag(f.invariant_tsc),
    );
    log::info!(
        "protections: NX {}, SMEP {}, SMAP {}",
        on_off(f.nx),
        on_off(f.smep),
        on_off(f.smap)
    );
    report_meltdown(f);
}

/// One line on whether PV domUs are isolated on this CPU (Meltdown):
/// hv-core has no XPTI, so an affected CPU gets a warning, not a fix.
fn report_meltdown(f: &cpu::Features) {
    use hv_core::speculation::{CpuFacts, Meltdown};
    let facts = CpuFacts {
        vendor: &f.vendor,
        arch_capabilities: f.arch_capabilities,
    };
    match Meltdown::of(&facts) {
        Meltdown::NotAffectedVendor => log::info!("meltdown: not affected (not an Intel CPU)"),
        Meltdown::NotAffectedRdclNo => log::info!("meltdown: not affected (RDCL_NO)"),
        Meltdown::Affected => log::warn!(
            "meltdown: this CPU is affected and hv-core has no XPTI: PV domUs are not isolated \
             here (a domU can read all memory); see docs/security.md"
        ),
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off (not supported)" }
}

/// Sets up the frame allocator and hv-core's page tables; returns the page
/// below 1 MiB the secondary CPUs will start in, if there is one.
fn init_memory(info: &BootInformation, boot_info_phys: u64) -> Option<u64> {
    let Some(map) = info.memory_map_tag() else {
        log::error!("the boot loader passed no memory map");
        stop::fatal("no memory map");
    };
    let areas = map.memory_areas();
    let range = |a: &multiboot2::MemoryArea| PhysRange::from_len(a.start_address(), a.size());
    let is_available = |a: &&multiboot2::MemoryArea| a.typ() == MemoryAreaType::Available;
    let is_ram = |a: &&multiboot2::MemoryArea| {
        matches!(
            a.typ(),
            MemoryAreaType::Available
                | MemoryAreaType::AcpiAvailable
                | MemoryAreaType::ReservedHibernate
        )
    };
    for a in areas {
        log::debug!(
            "memory map: {:#014x}-{:#014x} {:?}",
            a.start_address(),
            a.end_address(),
            a.typ()
        );
    }

    let image = arch::image_phys_range();
    let boot_info = PhysRange::from_len(boot_info_phys, info.total_size() as u64);
    let modules = info
        .module_tags()
        .map(|m| PhysRange::new(m.start_address() as u64, m.end_address() as u64));
    // Memory the map calls both available and something else is not used.
    let not_available = areas.iter().filter(|a| !is_available(a)).map(range);
    let reserved = [PhysRange::new(0, MIB), image, boot_info]
        .into_iter()
        .chain(modules.clone())
        .chain(not_available.clone());
    let or_stop = |ranges: Result<UsableRanges, _>| {
        ranges.unwrap_or_else(|e| {
            log::error!("{e}");
            stop::fatal("memory map too fragmented")
        })
    };
    let usable = or_stop(UsableRanges::new(
        areas.iter().filter(is_available).map(range),
        reserved,
    ));
    let ram = or_stop(UsableRanges::new(
        areas.iter().filter(is_ram).map(range),
        [],
    ));
    let usable_bytes = usable.total_bytes();
    if let Err(e) = memory::init(usable, ram.end() / FRAME_SIZE) {
        log::error!("{e}");
        stop::fatal("cannot set up the frame allocator");
    }
    paging::init(&ram);
    paging::map_m2p();
    log::info!(
        "memory: {} MiB RAM, {} MiB usable, {} MiB free after boot (hv-core image {} KiB)",
        ram.total_bytes() / MIB,
        usable_bytes / MIB,
        memory::frames_to_mib(memory::free_frames()),
        image.len() / 1024
    );
    // The first MiB is kept from the allocator: its available pages hold
    // nothing of hv-core's, so the first one clear of the boot loader's
    // data is the secondary CPUs' start page (page 0 aside: its real-mode
    // interrupt vectors are the firmware's).
    let low_available = or_stop(UsableRanges::new(
        areas.iter().filter(is_available).map(range),
        [PhysRange::new(0, FRAME_SIZE), PhysRange::new(MIB, u64::MAX)]
            .into_iter()
            .chain([image, boot_info])
            .chain(modules)
            .chain(not_available),
    ));
    // The ranges are page-aligned: the lowest that holds a page starts with one.
    low_available
        .as_slice()
        .iter()
        .find(|r| r.len() >= FRAME_SIZE)
        .map(|r| r.start)
}

/// Moves the boot CPU onto its per-CPU area (GDT, TSS, stacks) and its
/// per-CPU block into GS, before anything can enter from a guest.
fn init_boot_cpu() {
    if arch::percpu::map_area(0).is_err() {
        stop::fatal("no memory for the boot CPU's per-CPU area");
    }
    arch::percpu::prepare(0, cpu::apic_id());
    arch::percpu::activate(0);
    cpu::load_cpu_tables(0);
    arch::percpu::set_online();
}

/// Starts every other CPU the MADT lists (at most `maxcpus=` in all) and
/// reports them.
fn start_cpus(platform: Option<&arch::acpi::Platform>, max: Option<usize>, page: Option<u64>) {
    let madt = platform.map_or(&[][..], |p| p.apic_ids());
    let (plan, left) = hv_core::cpus::plan(madt, cpu::apic_id(), max);
    if left.by_maxcpus > 0 {
        log::info!(
            "maxcpus={}: {} more CPUs left off",
            plan.len(),
            left.by_maxcpus
        );
    }
    if left.by_room > 0 {
        log::warn!(
            "{} CPUs left off: hv-core runs on at most {}",
            left.by_room,
            hv_core::layout::MAX_CPUS
        );
    }
    if left.duplicates > 0 {
        log::warn!(
            "the MADT lists {} APIC ids twice; each started once",
            left.duplicates
        );
    }
    let running = match page {
        Some(page) => arch::smp::start_secondaries(&plan, page),
        None if plan.len() > 1 => {
            log::warn!("no free page below 1 MiB to start the other CPUs from; running on one");
            1
        }
        None => 1,
    };
    let mut ids: heapless::String<{ hv_core::layout::MAX_CPUS * 11 }> = heapless::String::new();
    for id in arch::percpu::online_cpus().map(|c| c.apic_id()) {
        use core::fmt::Write;
        let _ = write!(ids, " {id}");
    }
    log::info!("smp: {running} of {} CPUs up (APIC ids{ids})", plan.len());
}

/// A secondary CPU, up: it runs the vCPUs the scheduler gives it, and
/// halts while there are none.
pub fn secondary_main(cpu: usize, apic: u32) -> ! {
    log::debug!("cpu {cpu} (APIC id {apic}) up");
    crate::scheduler::run_secondary()
}

fn init_time(f: &cpu::Features) {
    let hz = time::calibrate_tsc();
    log::info!(
        "tsc: {}.{:03} MHz (calibrated against the PIT{})",
        hz / 1_000_000,
        hz / 1_000 % 1_000,
        if f.invariant_tsc { ", invariant" } else { "" }
    );
    let apic_id = lapic::init();
    let mode = lapic::init_timer(f.tsc_deadline);

    // Prove interrupts are delivered: arm a one-shot and sleep until it fires.
    const DELAY_NS: u64 = 2_000_000;
    let before = arch::TIMER_INTERRUPTS.load(core::sync::atomic::Ordering::Relaxed);
    let start = time::rdtsc();
    lapic::arm_oneshot_ns(DELAY_NS);
    let deadline = start + time::ns_to_ticks(1_000_000_000);
    while arch::TIMER_INTERRUPTS.load(core::sync::atomic::Ordering::Relaxed) == before {
        if time::rdtsc() > deadline {
            log::error!("the LAPIC timer did not fire within a second");
            stop::fatal("no timer interrupt");
        }
        arch::power::wait_for_interrupt();
    }
    let fired = arch::LAST_TIMER_TSC.load(core::sync::atomic::Ordering::Relaxed);
    let elapsed_us = time::ticks_to_ns(fired - start) / 1000;
    let rate = match mode {
        lapic::TimerMode::TscDeadline => 0,
        lapic::TimerMode::OneShot { hz } => hz,
    };
    if rate == 0 {
        log::info!(
            "lapic: id {apic_id}, timer in TSC-deadline mode; a {} us one-shot fired after {elapsed_us} us",
            DELAY_NS / 1000
        );
    } else {
        log::info!(
            "lapic: id {apic_id}, timer in one-shot mode at {}.{:03} MHz; a {} us one-shot fired after {elapsed_us} us",
            rate / 1_000_000,
            rate / 1_000 % 1_000,
            DELAY_NS / 1000
        );
    }
}

fn report_modules(info: &BootInformation) -> usize {
    let mut count = 0;
    for (i, module) in info.module_tags().enumerate() {
        let size = module.module_size() as u64;
        log::info!(
            "module {i}: {:#x}-{:#x}, {} KiB, command line \"{}\"",
            module.start_address(),
            module.end_address(),
            size.div_ceil(1024),
            module.cmdline().unwrap_or("?")
        );
        count += 1;
    }
    count
}
