//! Build the purgatory images for their bare-metal targets (a nested cargo
//! build) and stage the ELF and the flat image for `include_bytes!`.
//!
//! The purgatory's sources are found through the dependency graph, so the
//! same script works in the repository and from a packaged crate
//! (docs/packaging.md): kexec-purgatory's directory is its `links`
//! metadata, purgatory-arch's the constant it exports to build scripts.
use std::path::{Path, PathBuf};

use build_support::{build, flatten, BareMetal, Crate, Sources};

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let purgatory = PathBuf::from(
        std::env::var("DEP_KEXEC_PURGATORY_ROOT").expect("kexec-purgatory's build script sets links metadata `root`"),
    );
    let arch = PathBuf::from(purgatory_arch::MANIFEST_DIR);
    // The repository paths: a scratch workspace puts the copies there so
    // that package-built images are byte-identical to repository-built ones.
    let crates = [Crate { repo_path: "purgatory", dir: &purgatory }, Crate { repo_path: "arch", dir: &arch }];
    let sources = Sources::locate(&crates, &out).unwrap_or_else(|e| panic!("{e}"));
    for dir in [&purgatory, &arch] {
        // A directory: cargo scans it recursively for changes.
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    if let Sources::Workspace { root } = &sources {
        println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());
    }

    println!("cargo:rerun-if-env-changed={}", build_support::PREBUILT_ENV);
    for (arch, target) in [
        ("aarch64", "aarch64-unknown-none"),
        ("x86_64", "x86_64-unknown-none"),
        ("riscv64", "riscv64gc-unknown-none-elf"),
        // Built no_std for a hosted target (.cargo/config.toml): Rust has
        // no bare-metal powerpc64le one.
        ("ppc64le", "powerpc64le-unknown-linux-gnu"),
    ] {
        let what = BareMetal { package: "kexec-purgatory", bin: "purgatory", target };
        let elf_path = build(&sources, &what).unwrap_or_else(|e| panic!("{e}"));
        stage(&out, arch, &elf_path);
    }
}

/// Write `purgatory-<arch>.elf` and its flat image `purgatory-<arch>.bin`.
fn stage(out: &Path, arch: &str, elf_path: &Path) {
    let elf = std::fs::read(elf_path).unwrap_or_else(|e| panic!("reading {}: {e}", elf_path.display()));
    let flat = flatten(&elf).unwrap_or_else(|e| panic!("flattening {}: {e}", elf_path.display()));
    std::fs::write(out.join(format!("purgatory-{arch}.elf")), &elf).expect("write OUT_DIR");
    std::fs::write(out.join(format!("purgatory-{arch}.bin")), &flat).expect("write OUT_DIR");
}
