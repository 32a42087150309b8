//! Build the purgatory images for their bare-metal targets (a nested cargo
//! build) and stage the ELF and the flat image for `include_bytes!`.
use std::path::PathBuf;

use build_support::{build, flatten, rerun_if_changed, workspace_root, BareMetal};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let root = workspace_root(&manifest);
    rerun_if_changed(
        &root,
        &[
            "purgatory/src",
            "purgatory/build.rs",
            "purgatory/Cargo.toml",
            "arch/src",
            "linker",
            // The images' profile settings (opt-level per package).
            "Cargo.toml",
            "Cargo.lock",
            ".cargo/config.toml",
        ],
    );

    for (arch, target) in [
        ("aarch64", "aarch64-unknown-none"),
        ("x86_64", "x86_64-unknown-none"),
        ("riscv64", "riscv64gc-unknown-none-elf"),
    ] {
        let what = BareMetal { package: "kexec-purgatory", bin: "purgatory", target };
        let elf_path = build(&root, &what).unwrap_or_else(|e| panic!("{e}"));
        let elf = std::fs::read(&elf_path).unwrap_or_else(|e| panic!("reading {}: {e}", elf_path.display()));
        let flat = flatten(&elf).unwrap_or_else(|e| panic!("flattening {}: {e}", elf_path.display()));
        std::fs::write(out.join(format!("purgatory-{arch}.elf")), &elf).expect("write OUT_DIR");
        std::fs::write(out.join(format!("purgatory-{arch}.bin")), &flat).expect("write OUT_DIR");
    }
}
