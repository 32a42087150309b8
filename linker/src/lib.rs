//! The purgatory's link, end to end: its linker script and link arguments
//! ([`link`], used by the purgatory's build script), the compiler and
//! relocation settings of each bare-metal target ([`settings`]), the
//! nested `cargo build` that makes the images — in the repository's
//! workspace, or for packaged crates in a scratch workspace laid out like
//! it ([`Sources`]) — and the ELF → flat image step ([`flatten`]) whose
//! output loaders copy into memory.

use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSegment};

pub mod link;
pub mod settings;
mod sources;

pub use sources::{Crate, Sources};

/// This crate's source directory as cargo compiled it: where a loader's
/// build script finds it to copy it into a scratch workspace.
pub const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// Environment variable: `1` makes [`build`] reuse the images a previous
/// build made in the repository's workspace instead of building them. For
/// a toolchain that has no bare-metal standard library (the nightly the
/// fuzz targets are built with: scripts/fuzz.sh builds the images with the
/// default toolchain first).
pub const PREBUILT_ENV: &str = "RKEXEC_PREBUILT_BARE_METAL";

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
///
/// With [`PREBUILT_ENV`] set to `1`, nothing is built: the ELF a previous
/// build left in the workspace's `target/bare-metal` is returned (an error
/// names the command that makes it when it is missing, or says that
/// packaged crates have no such build).
pub fn build(sources: &Sources, what: &BareMetal) -> Result<PathBuf, String> {
    let target_dir = sources.target_dir();
    let elf = target_dir.join(what.target).join("release").join(what.bin);
    if std::env::var(PREBUILT_ENV).as_deref() == Ok("1") {
        return prebuilt(sources, elf);
    }
    let rustflags = settings::encoded_rustflags(what.target)
        .ok_or_else(|| format!("no bare-metal settings for target {} (linker/src/settings.rs)", what.target))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
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
    Ok(elf)
}

/// [`PREBUILT_ENV`]: the workspace's image at `elf`, which must exist.
fn prebuilt(sources: &Sources, elf: PathBuf) -> Result<PathBuf, String> {
    if let Sources::Packaged { .. } = sources {
        return Err(format!(
            "{PREBUILT_ENV}=1 reuses the images of a build in the repository's workspace; these crates are packaged"
        ));
    }
    println!("cargo:rerun-if-changed={}", elf.display());
    if elf.is_file() {
        Ok(elf)
    } else {
        Err(format!(
            "{PREBUILT_ENV}=1 but {} is missing: build it first with the default toolchain (cargo build -p loader-host)",
            elf.display()
        ))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prebuilt_images_come_only_from_a_workspace_build() {
        let dir = std::env::temp_dir().join(format!("purgatory-linker-prebuilt-{}", std::process::id()));
        let ws = Sources::Workspace { root: dir.clone() };
        let elf = ws.target_dir().join("aarch64-unknown-none/release/purgatory");
        let err = prebuilt(&ws, elf.clone()).unwrap_err();
        assert!(err.contains("is missing") && err.contains("cargo build -p loader-host"), "{err}");
        std::fs::create_dir_all(elf.parent().unwrap()).unwrap();
        std::fs::write(&elf, b"\x7fELF").unwrap();
        assert_eq!(prebuilt(&ws, elf.clone()).unwrap(), elf);
        let packaged = Sources::Packaged { scratch: dir.join("scratch") };
        let err = prebuilt(&packaged, elf).unwrap_err();
        assert!(err.contains("packaged"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
