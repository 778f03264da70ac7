//! What happens on each vector: exceptions in hv-core are fatal and produce a
//! report; the LAPIC timer is counted; spurious interrupts are ignored.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::registers::control::{Cr0, Cr2, Cr3, Cr4};

use super::entry::{SYSCALL32_VECTOR, SYSENTER_VECTOR, TrapFrame};
use super::{cpu, lapic, pv, serial, time};

const RFLAGS_TF: u64 = 1 << 8;

/// How many times the LAPIC timer has fired, and the TSC when it last did.
pub static TIMER_INTERRUPTS: AtomicU64 = AtomicU64::new(0);
pub static LAST_TIMER_TSC: AtomicU64 = AtomicU64::new(0);

pub fn dispatch(frame: &mut TrapFrame) {
    // Another CPU stopped the machine (`stop::fatal`): this one halts.
    if frame.vector == 2 && crate::stop::stopping() {
        super::power::halt_forever();
    }
    let from_guest = frame.cs & 3 == 3;
    // (A 64-bit `syscall` never comes here: `entry::syscall_dispatch`
    // takes it.)
    match frame.vector {
        SYSCALL32_VECTOR => crate::guest::syscall32(frame),
        SYSENTER_VECTOR => crate::guest::sysenter(frame),
        0..=31 if from_guest => crate::guest::exception(frame, Cr2::read_raw()),
        // A guest's `sysenter` with TF set traps on the entry stub's first
        // instruction: step on without it (the guest's TF is dropped).
        1 if pv::is_sysenter_entry(frame.rip) => frame.rflags &= !RFLAGS_TF,
        // A guest pointer that faulted inside the checked copy.
        13 | 14 if let Some(resume) = pv::fixup(frame.rip) => frame.rip = resume,
        0..=31 => fatal_exception(frame),
        vector if vector == lapic::TIMER_VECTOR as u64 => {
            LAST_TIMER_TSC.store(time::rdtsc(), Ordering::Relaxed);
            TIMER_INTERRUPTS.fetch_add(1, Ordering::Relaxed);
            lapic::eoi();
            crate::vtime::check_timers();
        }
        vector if vector == super::percpu::IPI_VECTOR as u64 => {
            // Another CPU's kick: a TLB flush it asked for, and whatever
            // it asked of the scheduler happens on the way back.
            lapic::eoi();
            super::percpu::serve_flush();
        }
        vector if vector == super::SERIAL_VECTOR as u64 => {
            crate::event_delivery::serial_interrupt();
            lapic::eoi();
        }
        vector if vector == lapic::SPURIOUS_VECTOR as u64 => {}
        vector => {
            log::warn!("unexpected interrupt on vector {vector:#04x} ignored");
            lapic::eoi();
        }
    }
    if from_guest {
        crate::guest::exit_to_guest(frame);
    }
}

/// Mnemonic and name of each architectural exception.
pub fn exception_name(vector: u8) -> (&'static str, &'static str) {
    match vector {
        0 => ("#DE", "divide error"),
        1 => ("#DB", "debug"),
        2 => ("NMI", "non-maskable interrupt"),
        3 => ("#BP", "breakpoint"),
        4 => ("#OF", "overflow"),
        5 => ("#BR", "bound range exceeded"),
        6 => ("#UD", "invalid opcode"),
        7 => ("#NM", "device not available"),
        8 => ("#DF", "double fault"),
        10 => ("#TS", "invalid TSS"),
        11 => ("#NP", "segment not present"),
        12 => ("#SS", "stack-segment fault"),
        13 => ("#GP", "general protection fault"),
        14 => ("#PF", "page fault"),
        16 => ("#MF", "x87 floating-point error"),
        17 => ("#AC", "alignment check"),
        18 => ("#MC", "machine check"),
        19 => ("#XM", "SIMD floating-point exception"),
        20 => ("#VE", "virtualization exception"),
        21 => ("#CP", "control protection exception"),
        28 => ("#HV", "hypervisor injection exception"),
        29 => ("#VC", "VMM communication exception"),
        30 => ("#SX", "security exception"),
        _ => ("#??", "reserved exception"),
    }
}

fn page_fault_cause(code: u64) -> [&'static str; 4] {
    [
        if code & 1 != 0 {
            "protection-violation"
        } else {
            "not-present"
        },
        if code & 2 != 0 { "write" } else { "read" },
        if code & 4 != 0 { "user" } else { "supervisor" },
        if code & 16 != 0 {
            "instruction-fetch"
        } else {
            "data"
        },
    ]
}

fn fatal_exception(frame: &TrapFrame) -> ! {
    let vector = frame.vector as u8;
    let (mnemonic, name) = exception_name(vector);
    serial::report_then(
        |out| {
            let _ = write_report(out, frame, vector, mnemonic, name);
        },
        || crate::stop::fatal("exception in hv-core"),
    )
}

fn write_report(
    out: &mut serial::FatalConsole,
    f: &TrapFrame,
    vector: u8,
    mnemonic: &str,
    name: &str,
) -> fmt::Result {
    // By APIC id, not GS: an NMI or machine check may have come in
    // before an entry's swapgs.
    let apic = cpu::apic_id();
    let cpu = super::percpu::index_of_apic(apic).unwrap_or(0);
    writeln!(
        out,
        "(hv) FATAL: {name} ({mnemonic}, vector {vector}) in hv-core on CPU {cpu} (APIC id {apic})"
    )?;
    write!(out, "(hv)   error code {:#06x}", f.error_code)?;
    if vector == 14 {
        let [p, w, u, i] = page_fault_cause(f.error_code);
        write!(out, " [{p} {w} {u} {i}]")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "(hv)   RIP {:#018x}  CS {:#06x}  RFLAGS {:#010x}",
        f.rip, f.cs, f.rflags
    )?;
    writeln!(out, "(hv)   RSP {:#018x}  SS {:#06x}", f.rsp, f.ss)?;
    let cr2 = Cr2::read_raw();
    let (cr3, _) = Cr3::read_raw();
    writeln!(
        out,
        "(hv)   CR0 {:#018x}  CR2 {:#018x}  CR3 {:#018x}  CR4 {:#018x}",
        Cr0::read_raw(),
        cr2,
        cr3.start_address().as_u64(),
        Cr4::read_raw()
    )?;
    let regs = [
        ("RAX", f.rax),
        ("RBX", f.rbx),
        ("RCX", f.rcx),
        ("RDX", f.rdx),
        ("RSI", f.rsi),
        ("RDI", f.rdi),
        ("RBP", f.rbp),
        ("R8 ", f.r8),
        ("R9 ", f.r9),
        ("R10", f.r10),
        ("R11", f.r11),
        ("R12", f.r12),
        ("R13", f.r13),
        ("R14", f.r14),
        ("R15", f.r15),
    ];
    for row in regs.chunks(4) {
        write!(out, "(hv)  ")?;
        for (name, value) in row {
            write!(out, " {name} {value:#018x}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}
