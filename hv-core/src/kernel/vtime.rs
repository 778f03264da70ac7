//! Guest time: system time (ns since boot) from the calibrated TSC,
//! published per vCPU in vcpu_time_info (pvclock), the wallclock in
//! shared_info, and one-shot timers that raise VIRQ_TIMER.
//!
//! hv-core's own system time is defined by the same formula the guest
//! applies (`TscScale`), from one TSC reading at boot, and each vCPU's
//! record is written once when its domain is built. A guest therefore
//! computes exactly hv-core's clock, which never goes backwards; re-writing
//! the record later could step it back by a rounding nanosecond.

use core::mem::offset_of;
use core::sync::atomic::Ordering::SeqCst;
use core::sync::atomic::{AtomicU64, Ordering};

use abi::xen::{SharedInfo, VcpuInfo};
use hv_core::pvclock::TscScale;
use spin::Once;

use crate::arch::{lapic, time};
use crate::domain::{self, Domain};
use crate::event_delivery;

static SCALE: Once<TscScale> = Once::new();
static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
/// Wallclock seconds at system time 0.
static BOOT_WALLCLOCK: AtomicU64 = AtomicU64::new(0);
const TIME_INFO: usize = offset_of!(VcpuInfo, time);
const WC_VERSION: usize = offset_of!(SharedInfo, wc_version);
const WC_SEC: usize = offset_of!(SharedInfo, wc_sec);
const WC_NSEC: usize = offset_of!(SharedInfo, wc_nsec);
const WC_SEC_HI: usize = offset_of!(SharedInfo, wc_sec_hi);

/// Starts the clock: call once, after the TSC is calibrated.
pub fn init() {
    BOOT_TSC.store(time::rdtsc(), Ordering::Relaxed);
    let scale = *SCALE.call_once(|| TscScale::for_hz(time::tsc_hz()));
    let (y, mo, d, h, mi, s) = crate::arch::rtc::read_time();
    let unix = hv_core::wallclock::unix_seconds(y, mo, d, h, mi, s);
    BOOT_WALLCLOCK.store(unix, Ordering::Relaxed);
    log::info!(
        "clock: pvclock mul {:#x} shift {}, wallclock {y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC",
        scale.mul,
        scale.shift
    );
}

fn scale() -> TscScale {
    *SCALE.get().expect("vtime::init ran")
}

/// System time in ns.
pub fn now_ns() -> u64 {
    scale().ticks_to_ns(time::rdtsc().wrapping_sub(BOOT_TSC.load(Ordering::Relaxed)))
}

/// Writes every vCPU's time record and the wallclock into `d`'s
/// shared_info (each under its version seqlock).
pub fn publish(d: &Domain) {
    let page = d.shared_page();
    let scale = scale();
    let boot = BOOT_TSC.load(Ordering::Relaxed);
    for v in 0..d.vcpus.len() {
        let info = d.vcpu_info(v);
        let at = TIME_INFO;
        let version = info.u32(at);
        version.fetch_add(1, SeqCst);
        // system_time at tsc_timestamp = boot is 0.
        info.u64(at + 8).store(boot, SeqCst);
        info.u64(at + 16).store(0, SeqCst);
        info.u32(at + 24).store(scale.mul, SeqCst);
        info.u8(at + 28).store(scale.shift as u8, SeqCst);
        info.u8(at + 29)
            .store(abi::xen::XEN_PVCLOCK_TSC_STABLE_BIT, SeqCst);
        version.fetch_add(1, SeqCst);
    }
    let wallclock = BOOT_WALLCLOCK.load(Ordering::Relaxed);
    let version = page.u32(WC_VERSION);
    version.fetch_add(1, SeqCst);
    page.u32(WC_SEC).store(wallclock as u32, SeqCst);
    page.u32(WC_NSEC).store(0, SeqCst);
    page.u32(WC_SEC_HI).store((wallclock >> 32) as u32, SeqCst);
    version.fetch_add(1, SeqCst);
}

/// Arms (or, with `None`, cancels) vCPU `v`'s one-shot timer.
pub fn set_timer(v: usize, deadline: Option<u64>) {
    domain::with_current(|d| d.vcpus[v].timer_deadline = deadline);
    check_timers();
}

/// A vCPU's periodic timer starts with this period, as on Xen.
pub const DEFAULT_PERIOD_NS: u64 = 10_000_000;

/// Sets (or stops) vCPU `v`'s periodic timer; the first tick is one
/// period from now.
pub fn set_periodic(v: usize, period_ns: Option<u64>) {
    let now = now_ns();
    domain::with_current(|d| {
        d.vcpus[v].periodic = period_ns.map(|p| (p, now.saturating_add(p)));
    });
    check_timers();
}

/// Fires every expired vCPU timer (raising VIRQ_TIMER) and arms the LAPIC
/// for the next deadline. Called from the timer interrupt and whenever a
/// deadline changes; a timer that the LAPIC ends slightly early is simply
/// re-armed, so VIRQ_TIMER never fires before its deadline.
pub fn check_timers() {
    if SCALE.get().is_none() {
        return;
    }
    let now = now_ns();
    let mut next = u64::MAX;
    domain::for_each(|d| {
        for v in 0..d.vcpus.len() {
            let vcpu = &mut d.vcpus[v];
            // A poll's timeout: the scheduler sees it has passed.
            let mut poll_over = false;
            if let crate::domain::Wait::Poll {
                deadline: Some(t), ..
            } = vcpu.wait
            {
                if t <= now {
                    poll_over = true;
                } else {
                    next = next.min(t);
                }
            }
            let mut fire = false;
            if vcpu.timer_deadline.is_some_and(|t| t <= now) {
                vcpu.timer_deadline = None;
                fire = true;
            }
            if let Some((period, due)) = vcpu.periodic
                && due <= now
            {
                // Missed ticks are not replayed, as on Xen.
                // Saturating: a guest's period is bounded (2^62 ns), but
                // nothing here may wrap a deadline into the past.
                let missed = (now - due) / period;
                let next = (missed + 1)
                    .checked_mul(period)
                    .and_then(|step| due.checked_add(step))
                    .unwrap_or(u64::MAX);
                vcpu.periodic = Some((period, next));
                fire = true;
            }
            next = vcpu
                .timer_deadline
                .into_iter()
                .chain(vcpu.periodic.map(|(_, due)| due))
                .fold(next, u64::min);
            if fire {
                event_delivery::timer_fired(d, v as u32);
            }
            if poll_over {
                crate::scheduler::notify(d, v);
            }
        }
    });
    crate::scheduler::tick(now);
    let next = next.min(crate::scheduler::slice_end());
    if next != u64::MAX {
        lapic::arm_oneshot_ns(next.saturating_sub(now).max(1));
    }
}
