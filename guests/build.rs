//! Links every example guest with the SDK's linker script at its fixed address.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let script = std::env::var("DEP_PV_GUEST_SDK_LINK_SCRIPT")
            .expect("pv-guest-sdk publishes its linker script");
        println!("cargo:rustc-link-arg-bins=-T{script}");
        println!("cargo:rustc-link-arg-bins=--no-pie");
        println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    }
}
