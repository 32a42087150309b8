//! Link the bare-metal purgatory image with its linker script, which ships
//! inside this crate (`purgatory.ld`) so a packaged crate links the same
//! way as the workspace. Host builds of the crate (unit tests) are not
//! affected.
use std::path::PathBuf;

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    // `links` metadata: dependents' build scripts read it as
    // DEP_KEXEC_PURGATORY_ROOT (cargo's build-scripts reference, "the links
    // manifest key").
    println!("cargo::metadata=root={}", root.display());
    let script = root.join("purgatory.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    let ppc64le = target == "powerpc64le-unknown-linux-gnu";
    if ppc64le
        || ["aarch64-unknown-none", "x86_64-unknown-none", "riscv64gc-unknown-none-elf"].contains(&target.as_str())
    {
        // Static PIE: position independent, only RELATIVE relocations
        // (checked by loader-host's image tests), no dynamic loader.
        for arg in [
            format!("-T{}", script.display()),
            "-pie".into(),
            "--no-dynamic-linker".into(),
            "-z".into(),
            "text".into(),
            "-z".into(),
            "norelro".into(),
            "--pack-dyn-relocs=none".into(),
            "--hash-style=sysv".into(),
            "--gc-sections".into(),
        ] {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
        if ppc64le {
            // A hosted target used without its C library (.cargo/config.toml):
            // no crt objects, no libc, no search paths of the toolchain.
            println!("cargo:rustc-link-arg-bins=-nostdlib");
        }
    }
}
