//! Links dom0 with pv-guest-sdk's linker script at the SDK's fixed address.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let script = std::env::var("DEP_PV_GUEST_SDK_LINK_SCRIPT")
            .expect("pv-guest-sdk publishes its linker script");
        println!("cargo:rustc-link-arg-bins=-T{script}");
        println!("cargo:rustc-link-arg-bins=--no-pie");
        println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    }
}
