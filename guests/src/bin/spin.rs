//! `spin`: a CPU-bound guest. It computes forever without yielding or
//! blocking, and about once per second of its own CPU time prints
//! `spin: <n> iterations` (the total so far). Two of them side by side
//! show whether the scheduler shares the CPU fairly; the iteration counts
//! and dom0's `list` CPU column should grow alike. Its own CPU time is the
//! hypervisor's account of it (`VCPUOP_get_runstate_info`, running time);
//! where that call is missing it is estimated from the clock (see
//! `guests::spin`). Created with several vCPUs (`vcpus=N`), it brings
//! up the others, which spin too (silently), and says so once:
//! `spin: spinning on N vCPUs`.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
mod kernel {
    use abi::ops::RUNSTATE_RUNNING;
    use guests::spin::CpuClock;
    use pv_guest_sdk::{StartInfo, hypercall, println, smp, time};

    /// CPU time so far: the hypervisor's figure, else the estimate.
    fn cpu_ns(clock: &mut CpuClock) -> u64 {
        let estimate = clock.tick(time::now_ns());
        match hypercall::vcpu_runstate_info(0) {
            Ok(info) => info.time[RUNSTATE_RUNNING],
            Err(_) => estimate,
        }
    }

    /// Iterations between clock readings: well under a millisecond of
    /// work, even under emulation.
    const BATCH: u64 = 1024;
    const REPORT_NS: u64 = 1_000_000_000;

    /// A secondary vCPU: the same work, forever, silently.
    extern "C" fn spin_forever() -> ! {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        loop {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state = core::hint::black_box(state);
        }
    }

    /// Brings up every vCPU past the first.
    fn start_others() {
        let count = smp::vcpu_count();
        if count == 1 {
            return;
        }
        let mut up = 1;
        for vcpu in 1..count {
            let stack = alloc::vec![0u8; 16 * 1024].leak();
            match smp::start_vcpu(vcpu, spin_forever, stack) {
                Ok(()) => up += 1,
                Err(e) => println!("spin: vCPU {vcpu} did not start: {e}"),
            }
        }
        println!("spin: spinning on {up} vCPUs");
    }

    pub fn main(_start: &'static StartInfo) -> ! {
        start_others();
        let mut clock = CpuClock::new(time::now_ns());
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut iterations = 0u64;
        let mut next_report = REPORT_NS;
        loop {
            for _ in 0..BATCH {
                // xorshift64: cheap work the compiler cannot skip.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state = core::hint::black_box(state);
            }
            iterations += BATCH;
            if cpu_ns(&mut clock) >= next_report {
                println!("spin: {iterations} iterations");
                next_report += REPORT_NS;
            }
        }
    }
}
