//! dom0: the privileged PV service domain.
//!
//! dom0 will own the real devices (virtio disk and NIC), run the back-end
//! drivers and the store, build and manage the other domains, and give the
//! operator a shell. It is a ring-3 PV kernel written only against
//! `pv-guest-sdk` and reaches hv-core only through hypercalls. hv-core does
//! not build domains yet, so nothing boots this binary today: it has no
//! behaviour beyond idling, and claims none.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

// The entry symbol moves into the SDK's start-of-day module with the PV
// start-of-day work; exporting it is the one unsafe attribute here.
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
extern "C" fn _start() -> ! {
    pv_guest_sdk::idle()
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    pv_guest_sdk::idle()
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("dom0 is a PV guest kernel: hv-core boots it, not the host.");
    std::process::exit(2);
}
