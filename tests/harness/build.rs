//! Build the bare-metal test payload (the stand-in kernel) for each
//! architecture the harness runs and stage the ELFs.
use std::path::PathBuf;

use purgatory_linker::{build, rerun_if_changed, workspace_root, BareMetal, Sources};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let root = workspace_root(&manifest);
    rerun_if_changed(&root, &["tests/payload", "Cargo.lock"]);
    let sources = Sources::Workspace { root };
    for (arch, target) in [
        ("aarch64", "aarch64-unknown-none"),
        ("riscv64", "riscv64gc-unknown-none-elf"),
        ("x86_64", "x86_64-unknown-none"),
        ("ppc64le", "powerpc64le-unknown-linux-gnu"),
    ] {
        let what = BareMetal { package: "test-payload", bin: "test-payload", target };
        let elf = build(&sources, &what).unwrap_or_else(|e| panic!("{e}"));
        let dest = out.join(format!("test-payload-{arch}.elf"));
        std::fs::copy(&elf, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", elf.display()));
    }
}
