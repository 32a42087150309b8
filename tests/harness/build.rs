//! Build the bare-metal test payload (the stand-in kernel) and stage its ELF.
use std::path::PathBuf;

use build_support::{build, rerun_if_changed, workspace_root, BareMetal};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let root = workspace_root(&manifest);
    rerun_if_changed(&root, &["tests/payload", "Cargo.lock", ".cargo/config.toml"]);
    let what = BareMetal { package: "test-payload", bin: "test-payload", target: "aarch64-unknown-none" };
    let elf = build(&root, &what).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(&elf, out.join("test-payload.elf")).unwrap_or_else(|e| panic!("copy {}: {e}", elf.display()));
}
