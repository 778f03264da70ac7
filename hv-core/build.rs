//! Links the hv-core binary with its own linker script when building for the
//! bare-metal target. Host builds (unit tests of the pure modules) are plain.
fn main() {
    println!("cargo:rerun-if-changed=link.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
        println!("cargo:rustc-link-arg-bin=hv-core=-T{dir}/link.ld");
        // Position-dependent: the image runs where it is linked, and nothing
        // applies relocations at boot. Code is still generated PIC, which works
        // at any address, unlike the kernel code model (top 2 GiB only).
        println!("cargo:rustc-link-arg-bin=hv-core=--no-pie");
        println!("cargo:rustc-link-arg-bin=hv-core=-znostart-stop-gc");
        println!("cargo:rustc-link-arg-bin=hv-core=--no-dynamic-linker");
    }
}
