//! Helpers for build scripts that embed bare-metal images: run a nested
//! `cargo build` for a `*-unknown-none` target, and turn the resulting ELF
//! into the flat image loaders copy into memory.

use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSegment};

/// A bare-metal binary to build.
pub struct BareMetal<'a> {
    pub package: &'a str,
    pub bin: &'a str,
    pub target: &'a str,
}

/// The workspace root, from a member's CARGO_MANIFEST_DIR.
pub fn workspace_root(manifest_dir: &Path) -> PathBuf {
    let mut dir = manifest_dir.to_path_buf();
    while !dir.join("Cargo.lock").exists() && !dir.join(".cargo").is_dir() {
        if !dir.pop() {
            return manifest_dir.to_path_buf();
        }
    }
    dir
}

/// Build `what` in release mode in `<root>/target/bare-metal` and return
/// the ELF path. Cargo hands build scripts an empty CARGO_ENCODED_RUSTFLAGS
/// (and maybe RUSTFLAGS, CARGO_TARGET_DIR, CARGO_BUILD_TARGET): they would
/// override `.cargo/config.toml`, so the nested build runs without them.
/// Under `cargo clippy` the wrapper and its arguments would turn the nested
/// build into a lint run of the bare-metal crates (linted on their own
/// targets by the test command instead): they are cleared too.
pub fn build(root: &Path, what: &BareMetal) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = root.join("target").join("bare-metal");
    let status = Command::new(cargo)
        .current_dir(root)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .env_remove("CLIPPY_CONF_DIR")
        .args(["build", "--release", "--locked", "-p", what.package, "--bin", what.bin, "--target", what.target])
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .map_err(|e| format!("cannot run cargo for {}: {e}", what.package))?;
    if !status.success() {
        return Err(format!(
            "building {} for {} failed ({status}); is the target installed? run scripts/setup.sh",
            what.package, what.target
        ));
    }
    Ok(target_dir.join(what.target).join("release").join(what.bin))
}

/// Flatten an ELF's PT_LOAD file bytes into one image starting at the
/// lowest loadable address. Bytes past each segment's file size (.bss)
/// are not included: the image header's mem_size covers them.
pub fn flatten(elf: &[u8]) -> Result<Vec<u8>, String> {
    let file = object::File::parse(elf).map_err(|e| format!("not an ELF: {e}"))?;
    let segs: Vec<_> = file.segments().filter(|s| s.file_range().1 > 0).collect();
    let base = segs.iter().map(|s| s.address()).min().ok_or("ELF has no loadable bytes")?;
    let end = segs.iter().map(|s| s.address() + s.file_range().1).max().unwrap_or(base);
    let mut image = vec![0u8; (end - base) as usize];
    for s in &segs {
        let data = s.data().map_err(|e| format!("bad segment: {e}"))?;
        let off = (s.address() - base) as usize;
        image[off..off + data.len()].copy_from_slice(data);
    }
    Ok(image)
}

/// Tell cargo to rerun the build script when anything under these
/// workspace-relative paths changes.
pub fn rerun_if_changed(root: &Path, paths: &[&str]) {
    for p in paths {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
}
