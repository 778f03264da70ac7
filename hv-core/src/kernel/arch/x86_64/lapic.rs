//! The local APIC: this CPU's interrupt controller and its timer.
//!
//! xAPIC registers are reached through an uncached MMIO mapping, or through
//! MSRs when the firmware left the APIC in x2APIC mode. The timer runs in
//! TSC-deadline mode where the CPU has it and in one-shot mode otherwise,
//! with its rate calibrated against the (already calibrated) TSC.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::registers::model_specific::Msr;

use super::{paging, time};

pub const TIMER_VECTOR: u8 = 0xf0;
pub const SPURIOUS_VECTOR: u8 = 0xff;

const IA32_APIC_BASE: u32 = 0x1b;
const IA32_TSC_DEADLINE: u32 = 0x6e0;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;

const REG_ID: u32 = 0x20;
const REG_EOI: u32 = 0xb0;
const REG_SVR: u32 = 0xf0;
const REG_ICR_LOW: u32 = 0x300;
const REG_ICR_HIGH: u32 = 0x310;
const REG_LVT_TIMER: u32 = 0x320;
const REG_TIMER_INITIAL: u32 = 0x380;
const REG_TIMER_CURRENT: u32 = 0x390;
const REG_TIMER_DIVIDE: u32 = 0x3e0;

const LVT_MASKED: u32 = 1 << 16;
const LVT_TSC_DEADLINE: u32 = 0b10 << 17;
const DIVIDE_BY_1: u32 = 0b1011;

/// How the timer is programmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerMode {
    TscDeadline,
    /// One-shot countdown at this many ticks per second.
    OneShot {
        hz: u64,
    },
}

static MMIO_BASE: AtomicU64 = AtomicU64::new(0);
static X2APIC: AtomicU64 = AtomicU64::new(0);
static ONESHOT_HZ: AtomicU64 = AtomicU64::new(0);

fn read(reg: u32) -> u32 {
    if X2APIC.load(Ordering::Relaxed) != 0 {
        // SAFETY: x2APIC mode is on (checked at init), so MSR 0x800 + reg/16
        // is the architectural register; reading it has no side effects.
        unsafe { Msr::new(0x800 + (reg >> 4)).read() as u32 }
    } else {
        let addr = MMIO_BASE.load(Ordering::Relaxed) + reg as u64;
        // SAFETY: addr lies in the uncached mapping of this CPU's xAPIC
        // page made at init; the register is 32 bits wide and aligned.
        unsafe { core::ptr::read_volatile(addr as *const u32) }
    }
}

fn write(reg: u32, value: u32) {
    if X2APIC.load(Ordering::Relaxed) != 0 {
        // SAFETY: as in `read`; the callers write architecturally valid
        // values to registers hv-core owns.
        unsafe { Msr::new(0x800 + (reg >> 4)).write(value as u64) }
    } else {
        let addr = MMIO_BASE.load(Ordering::Relaxed) + reg as u64;
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
    }
}

/// Enables a secondary CPU's local APIC, in the boot CPU's mode (xAPIC at
/// the same address, or x2APIC), with the timer in the mode the boot CPU
/// chose and not armed. Returns the APIC id.
pub fn init_secondary() -> u32 {
    let mut base_msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: as in `init`; x2APIC mode is entered only when the boot CPU
    // runs in it (so the CPU has it), and EXTD is set together with EN as
    // the SDM allows from the xAPIC state.
    unsafe {
        let base = base_msr.read() | APIC_BASE_ENABLE;
        let mode = if X2APIC.load(Ordering::Relaxed) != 0 {
            APIC_BASE_X2APIC
        } else {
            0
        };
        base_msr.write(base | mode);
    }
    write(REG_SVR, (1 << 8) | SPURIOUS_VECTOR as u32);
    if ONESHOT_HZ.load(Ordering::Relaxed) == 0 {
        write(REG_LVT_TIMER, LVT_TSC_DEADLINE | TIMER_VECTOR as u32);
    } else {
        write(REG_TIMER_DIVIDE, DIVIDE_BY_1);
        write(REG_TIMER_INITIAL, 0);
        write(REG_LVT_TIMER, TIMER_VECTOR as u32);
    }
    id()
}

fn id() -> u32 {
    let id = read(REG_ID);
    if X2APIC.load(Ordering::Relaxed) != 0 {
        id
    } else {
        id >> 24
    }
}

/// Interrupt command bits: level assert; INIT; start-up at page
/// `vector` (fixed delivery is mode 0).
const ICR_ASSERT: u32 = 1 << 14;
const ICR_INIT: u32 = 0b101 << 8 | ICR_ASSERT;
const ICR_STARTUP: u32 = 0b110 << 8 | ICR_ASSERT;
/// xAPIC only: the last command is still being sent.
const ICR_PENDING: u32 = 1 << 12;

fn send_command(apic_id: u32, command: u32) {
    if X2APIC.load(Ordering::Relaxed) != 0 {
        // SAFETY: x2APIC mode: the ICR is one 64-bit MSR, the destination
        // in its high half; the callers send architecturally valid commands.
        unsafe {
            Msr::new(0x800 + (REG_ICR_LOW >> 4)).write((apic_id as u64) << 32 | command as u64)
        }
    } else {
        write(REG_ICR_HIGH, apic_id << 24);
        write(REG_ICR_LOW, command);
        while read(REG_ICR_LOW) & ICR_PENDING != 0 {
            core::hint::spin_loop();
        }
    }
}

/// Sends interrupt `vector` to the CPU with APIC id `apic_id` (fixed
/// delivery).
pub fn send_fixed(apic_id: u32, vector: u8) {
    send_command(apic_id, ICR_ASSERT | vector as u32);
}

/// Sends an NMI to every CPU but this one (the fatal stop: an NMI gets
/// through where hv-core runs with interrupts off).
pub fn send_nmi_to_others() {
    const ICR_NMI: u32 = 0b100 << 8 | ICR_ASSERT;
    const ICR_ALL_BUT_SELF: u32 = 0b11 << 18;
    send_command(0, ICR_NMI | ICR_ALL_BUT_SELF);
}

/// Sends INIT to the CPU with APIC id `apic_id`: it resets and waits for
/// a start-up IPI.
pub fn send_init(apic_id: u32) {
    send_command(apic_id, ICR_INIT);
}

/// Sends a start-up IPI: the CPU starts in real mode at `page << 12`.
pub fn send_startup(apic_id: u32, page: u8) {
    send_command(apic_id, ICR_STARTUP | page as u32);
}

/// Enables this CPU's local APIC and masks the legacy PIC. Returns the APIC id.
pub fn init() -> u32 {
    let mut base_msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every x86-64 CPU; setting the enable
    // bit keeps the firmware's base address and mode.
    let base = unsafe { base_msr.read() };
    if base & APIC_BASE_X2APIC != 0 {
        X2APIC.store(1, Ordering::Relaxed);
    } else {
        let phys = base & 0x000f_ffff_ffff_f000;
        MMIO_BASE.store(paging::map_mmio(phys, 4096), Ordering::Relaxed);
    }
    // SAFETY: see above.
    unsafe { base_msr.write(base | APIC_BASE_ENABLE) };
    mask_legacy_pic();
    write(REG_SVR, (1 << 8) | SPURIOUS_VECTOR as u32);
    write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
    id()
}

/// Remaps the 8259 PICs clear of the exception vectors (0x20-0x2f) and masks
/// every line: hv-core takes interrupts through the APICs only.
fn mask_legacy_pic() {
    use x86_64::instructions::port::Port;
    let mut cmd1: Port<u8> = Port::new(0x20);
    let mut data1: Port<u8> = Port::new(0x21);
    let mut cmd2: Port<u8> = Port::new(0xa0);
    let mut data2: Port<u8> = Port::new(0xa1);
    // SAFETY: the PIC ports belong to hv-core; this is the standard
    // initialisation sequence followed by masking every line.
    unsafe {
        cmd1.write(0x11);
        cmd2.write(0x11);
        data1.write(0x20);
        data2.write(0x28);
        data1.write(4);
        data2.write(2);
        data1.write(1);
        data2.write(1);
        data1.write(0xff);
        data2.write(0xff);
    }
}

pub fn eoi() {
    write(REG_EOI, 0);
}

/// Chooses the timer mode and, for one-shot mode, measures the APIC timer's
/// rate against the TSC.
pub fn init_timer(tsc_deadline: bool) -> TimerMode {
    if tsc_deadline {
        write(REG_LVT_TIMER, LVT_TSC_DEADLINE | TIMER_VECTOR as u32);
        return TimerMode::TscDeadline;
    }
    write(REG_TIMER_DIVIDE, DIVIDE_BY_1);
    write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
    let mut runs = [0u64; 3];
    for run in runs.iter_mut() {
        write(REG_TIMER_INITIAL, u32::MAX);
        time::spin_ns(5_000_000);
        let elapsed = u32::MAX - read(REG_TIMER_CURRENT);
        *run = elapsed as u64 * 200;
    }
    write(REG_TIMER_INITIAL, 0);
    runs.sort_unstable();
    let hz = runs[1].max(1);
    ONESHOT_HZ.store(hz, Ordering::Relaxed);
    write(REG_LVT_TIMER, TIMER_VECTOR as u32);
    TimerMode::OneShot { hz }
}

/// Arms the timer to fire once, `ns` nanoseconds from now.
pub fn arm_oneshot_ns(ns: u64) {
    match ONESHOT_HZ.load(Ordering::Relaxed) {
        0 => {
            let deadline = time::rdtsc().saturating_add(time::ns_to_ticks(ns).max(1));
            // SAFETY: the timer is in TSC-deadline mode (ONESHOT_HZ is 0 only
            // then), where this MSR arms it.
            unsafe { Msr::new(IA32_TSC_DEADLINE).write(deadline) };
        }
        hz => {
            let count = (ns as u128 * hz as u128 / 1_000_000_000).clamp(1, u32::MAX as u128);
            write(REG_TIMER_INITIAL, count as u32);
        }
    }
}
