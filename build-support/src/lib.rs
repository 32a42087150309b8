//! Helpers for build scripts that embed bare-metal images: run a nested
//! `cargo build` for a `*-unknown-none` target — in the repository's
//! workspace, or for packaged crates in a scratch workspace laid out like
//! it ([`Sources`]) — with every compiler setting passed explicitly
//! ([`settings`]), and turn the resulting ELF into the flat image loaders
//! copy into memory.

use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSegment};

pub mod settings;
mod sources;

pub use sources::{Crate, Sources};

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

/// Build `what` in release mode in `sources` and return the ELF path.
///
/// The compiler settings are explicit: `CARGO_ENCODED_RUSTFLAGS` holds the
/// target's rustflags and `--config` arguments the release profile
/// ([`settings`]). Cargo hands build scripts an empty
/// CARGO_ENCODED_RUSTFLAGS (and maybe RUSTFLAGS, CARGO_TARGET_DIR,
/// CARGO_BUILD_TARGET): they are replaced or removed. Under `cargo clippy`
/// the wrapper and its arguments would turn the nested build into a lint
/// run of the bare-metal crates (linted on their own targets by the test
/// command instead): they are cleared too.
///
/// In the workspace the build is `--locked` to the repository's
/// `Cargo.lock`; a scratch workspace starts from the packaged crate's
/// lock, which cargo completes (our crates become path packages there).
pub fn build(sources: &Sources, what: &BareMetal) -> Result<PathBuf, String> {
    let rustflags = settings::encoded_rustflags(what.target)
        .ok_or_else(|| format!("no bare-metal settings for target {} (build-support/src/settings.rs)", what.target))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = sources.target_dir();
    let mut cmd = Command::new(cargo);
    cmd.current_dir(sources.root())
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .env_remove("CLIPPY_CONF_DIR");
    for arg in settings::profile_config_args() {
        cmd.arg("--config").arg(arg);
    }
    cmd.args(["build", "--release", "-p", what.package, "--bin", what.bin, "--target", what.target]);
    if matches!(sources, Sources::Workspace { .. }) {
        cmd.arg("--locked");
    }
    cmd.arg("--target-dir").arg(&target_dir);
    let status = cmd.status().map_err(|e| format!("cannot run cargo for {}: {e}", what.package))?;
    if !status.success() {
        return Err(format!(
            "building {} for {} failed ({status}); is the target installed? \
             `rustup target add {}` (scripts/setup.sh in the repository adds every one)",
            what.package, what.target, what.target
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
