//! Publishes the SDK's linker script to the build scripts of the guest crates
//! that depend on it (as `DEP_PV_GUEST_SDK_LINK_SCRIPT`), so every guest
//! links at the same fixed address with the same section layout.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:link_script={dir}/link.ld");
}
