//! Link the unikernel as a static, non-PIE ELF laid out by `linker.ld`.
use std::path::PathBuf;

fn main() {
    let dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = dir.join("..").join("linker.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    for asm in ["pvh.S", "handover.S"] {
        let path = dir.join("..").join("boot").join(asm);
        println!("cargo:rerun-if-changed={}", path.display());
    }
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=sha1",
        "-Wl,-n",
        "-Wl,--no-dynamic-linker",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    // The image is only bootable when every crate was built without a red zone (the prebuilt
    // core is covered by the IST stacks, our crates must not rely on one either): say so when
    // this build is the host-flavoured one (`cargo build`/`clippy` of the workspace).
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if !flags.split('\x1f').any(|f| f == "no-redzone=yes") {
        println!(
            "cargo:warning=xsstub built without -C no-redzone=yes: not a bootable image (use `cargo xtask build`)"
        );
    }
}
