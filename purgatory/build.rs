//! Link the bare-metal purgatory image with the linker script and
//! arguments the `purgatory-linker` crate owns (the script ships inside
//! that crate, so a packaged purgatory links the same way as the
//! workspace). Host builds of the crate (unit tests) are not affected.
use std::path::PathBuf;

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // `links` metadata: dependents' build scripts read it as
    // DEP_KEXEC_PURGATORY_ROOT (cargo's build-scripts reference, "the links
    // manifest key").
    println!("cargo::metadata=root={}", root.display());
    purgatory_linker::link::emit_for(&target, &out).unwrap_or_else(|e| panic!("{e}"));
}
