//! Build the purgatory images for their bare-metal targets (a nested cargo
//! build) and stage the ELF and the flat image for `include_bytes!`.
//!
//! The purgatory's sources are found through the dependency graph, so the
//! same script works in the repository and from a packaged crate
//! (docs/packaging.md): kexec-purgatory's directory is its `links`
//! metadata, purgatory-arch's the constant it exports to build scripts.
use std::path::{Path, PathBuf};

use purgatory_linker::{build, flatten, BareMetal, Crate, Sources};

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let purgatory = PathBuf::from(
        std::env::var("DEP_KEXEC_PURGATORY_ROOT").expect("kexec-purgatory's build script sets links metadata `root`"),
    );
    let arch = PathBuf::from(purgatory_arch::MANIFEST_DIR);
    let linker = PathBuf::from(purgatory_linker::MANIFEST_DIR);
    // The repository paths: a scratch workspace puts the copies there so
    // that package-built images are byte-identical to repository-built ones.
    let crates = [
        Crate { repo_path: "purgatory", dir: &purgatory },
        Crate { repo_path: "arch", dir: &arch },
        Crate { repo_path: "linker", dir: &linker },
    ];
    let sources = Sources::locate(&crates, &out).unwrap_or_else(|e| panic!("{e}"));
    for dir in [&purgatory, &arch, &linker] {
        // A directory: cargo scans it recursively for changes.
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    if let Sources::Workspace { root } = &sources {
        println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());
    }

    println!("cargo:rerun-if-env-changed={}", purgatory_linker::PREBUILT_ENV);
    // purgatory_image.rs includes this: a `<NAME>_FLAT` and `<NAME>_ELF`
    // static per image the linker crate lists, and the EMBEDDED table of
    // them (each entry's `arch` is its own header's).
    let mut statics = String::new();
    let mut table = String::new();
    for (name, target) in purgatory_linker::settings::PURGATORY_IMAGES {
        let what = BareMetal { package: "kexec-purgatory", bin: "purgatory", target };
        let elf_path = build(&sources, &what).unwrap_or_else(|e| panic!("{e}"));
        let (flat, elf, arch) = stage(&out, name, &elf_path);
        let upper = name.to_uppercase();
        statics.push_str(&format!(
            "/// The {name} purgatory as a flat, position-independent image.\n\
             pub static {upper}_FLAT: &[u8] = include_bytes!({flat:?});\n\
             /// The {name} image as an ELF with symbols (`PURGATORY_PARAMS`, `_start`).\n\
             pub static {upper}_ELF: &[u8] = include_bytes!({elf:?});\n"
        ));
        table.push_str(&format!(
            "    EmbeddedImage {{ name: {name:?}, abi_arch: {arch}, flat: {upper}_FLAT, elf: {upper}_ELF }},\n"
        ));
    }
    let n = purgatory_linker::settings::PURGATORY_IMAGES.len();
    let images = format!(
        "{statics}\n/// Every image this loader embeds.\npub static EMBEDDED: [EmbeddedImage; {n}] = [\n{table}];\n"
    );
    std::fs::write(out.join("images.rs"), images).expect("write OUT_DIR");
}

/// Write `purgatory-<name>.elf` and its flat image `purgatory-<name>.bin`:
/// their paths and the header's `arch`.
fn stage(out: &Path, name: &str, elf_path: &Path) -> (String, String, u32) {
    let elf = std::fs::read(elf_path).unwrap_or_else(|e| panic!("reading {}: {e}", elf_path.display()));
    let flat = flatten(&elf).unwrap_or_else(|e| panic!("flattening {}: {e}", elf_path.display()));
    let (elf_out, flat_out) = (out.join(format!("purgatory-{name}.elf")), out.join(format!("purgatory-{name}.bin")));
    std::fs::write(&elf_out, &elf).expect("write OUT_DIR");
    std::fs::write(&flat_out, &flat).expect("write OUT_DIR");
    // docs/abi.md "Header": code0, code1, magic[8], abi_version,
    // header_size, then the u32 `arch` at offset 24 (purgatory_image's
    // tests check each entry against the parsed header).
    let arch = flat.get(24..28).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    (flat_out.display().to_string(), elf_out.display().to_string(), arch)
}
