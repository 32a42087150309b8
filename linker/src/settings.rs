//! The compiler settings of every bare-metal image, passed to the nested
//! cargo explicitly instead of inherited from the workspace: a packaged
//! crate has no `.cargo/config.toml` and no workspace `Cargo.toml`, and the
//! images must come out the same from a package as from the repository.
//!
//! These lists are the bare-metal part of the workspace's
//! `.cargo/config.toml` (`[target.<triple>] rustflags`) and `Cargo.toml`
//! (`[profile.release]`), which plain `cargo build --target …` and `cargo
//! clippy` runs in the repository still read; the unit tests below fail
//! when the two sides differ. The reasons for each setting are the
//! comments in those two files.

/// Every purgatory image: its name (the machine name `uname -m` reports,
/// docs/loader.md "Names") and the bare-metal target it is built for. The
/// one list of images: loader-host's build script builds and embeds these.
pub const PURGATORY_IMAGES: &[(&str, &str)] = &[
    ("aarch64", "aarch64-unknown-none"),
    ("x86_64", "x86_64-unknown-none"),
    ("riscv64", "riscv64gc-unknown-none-elf"),
    // Built no_std for a hosted target: Rust has no bare-metal powerpc64le
    // one (`--cfg rkx_bare_metal` below tells the crates it is the image).
    ("ppc64le", "powerpc64le-unknown-linux-gnu"),
];

/// Per-target rustflags (`target.<triple>.rustflags` in the workspace's
/// `.cargo/config.toml`).
const RUSTFLAGS: &[(&str, &[&str])] = &[
    (
        "aarch64-unknown-none",
        &[
            "-C",
            "relocation-model=pie",
            "-C",
            "lto=fat",
            "-C",
            "embed-bitcode=yes",
            "--cfg",
            SHA2_BACKEND,
            "--cfg",
            SHA2_BACKEND_SOFT,
        ],
    ),
    ("x86_64-unknown-none", &["-C", "relocation-model=pie", "--cfg", SHA2_BACKEND, "--cfg", SHA2_BACKEND_SOFT]),
    (
        "riscv64gc-unknown-none-elf",
        &[
            "-C",
            "relocation-model=pie",
            "-C",
            "lto=fat",
            "-C",
            "embed-bitcode=yes",
            "-C",
            "target-feature=+relax",
            "--cfg",
            SHA2_BACKEND,
            "--cfg",
            SHA2_BACKEND_SOFT,
        ],
    ),
    (
        "powerpc64le-unknown-linux-gnu",
        &[
            "-C",
            "linker=rust-lld",
            "-C",
            "relocation-model=pie",
            "-C",
            "panic=abort",
            "--cfg",
            "rkx_bare_metal",
            "--cfg",
            SHA2_BACKEND,
            "--cfg",
            SHA2_BACKEND_SOFT,
        ],
    ),
];

/// The `sha2` crate's portable backend for the purgatory's portable
/// engine, never its run-time dispatch (sha2 0.11 README "Backends").
const SHA2_BACKEND: &str = "sha2_backend=\"soft\"";

/// Its compact variant: the unrolled one puts every image over the 20 KiB
/// bar (docs/sha256-engines.md).
const SHA2_BACKEND_SOFT: &str = "sha2_backend_soft=\"compact\"";

/// The release profile (`[profile.release]` of the workspace's
/// `Cargo.toml`): dotted key under `profile.release`, TOML value.
pub const RELEASE_PROFILE: &[(&str, &str)] = &[
    ("panic", "\"abort\""),
    ("opt-level", "3"),
    ("lto", "true"),
    ("codegen-units", "1"),
    ("debug", "false"),
    ("package.kexec-purgatory.opt-level", "\"z\""),
    ("package.purgatory-arch.opt-level", "\"z\""),
    ("package.sha2.opt-level", "3"),
];

/// The rustflags for `target`, or `None` for a target the project does
/// not build bare-metal images for.
pub fn rustflags(target: &str) -> Option<&'static [&'static str]> {
    RUSTFLAGS.iter().find(|(t, _)| *t == target).map(|(_, flags)| *flags)
}

/// `CARGO_ENCODED_RUSTFLAGS` for `target`: the flags separated by 0x1f
/// (cargo's environment-variables reference). Set, it replaces
/// `target.<triple>.rustflags` of any config file rather than adding to
/// it, so the nested build compiles with exactly these flags.
pub fn encoded_rustflags(target: &str) -> Option<String> {
    rustflags(target).map(|flags| flags.join("\u{1f}"))
}

/// The release profile as cargo `--config` arguments
/// (`profile.release.<key>=<value>`). A `--config` value overrides the
/// same key of a manifest's `[profile]` (cargo's profiles reference:
/// config profiles take precedence), so inside the workspace they restate
/// it and outside it they are the whole profile.
pub fn profile_config_args() -> impl Iterator<Item = String> {
    RELEASE_PROFILE.iter().map(|(key, value)| format!("profile.release.{key}={value}"))
}

/// The bare-metal targets with settings.
pub fn targets() -> impl Iterator<Item = &'static str> {
    RUSTFLAGS.iter().map(|(t, _)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn workspace_file(name: &str) -> toml::Table {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn value(text: &str) -> toml::Value {
        let table: toml::Table = format!("v = {text}").parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        table["v"].clone()
    }

    /// Every leaf of `table` as (dotted key, value).
    fn leaves(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
        for (key, v) in table {
            let dotted = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            match v {
                toml::Value::Table(t) => leaves(&dotted, t, out),
                other => out.push((dotted, other.clone())),
            }
        }
    }

    #[test]
    fn rustflags_are_the_workspace_config() {
        let config = workspace_file(".cargo/config.toml");
        let tables = config["target"].as_table().expect("[target] tables");
        // Every bare-metal target (OS `none`) the workspace gives rustflags
        // to is in our list, with the same flags in the same order, and the
        // other way round. A purgatory built for a hosted triple (ppc64le)
        // takes its flags only from here: the workspace's table for that
        // triple is the guest tools' and must not make a purgatory.
        let mut seen = Vec::new();
        for (triple, settings) in tables {
            let Some(flags) = settings.get("rustflags") else { continue };
            let flags: Vec<&str> =
                flags.as_array().expect("rustflags is an array").iter().map(|f| f.as_str().expect("string")).collect();
            if !triple.split('-').any(|part| part == "none") {
                assert!(!flags.contains(&"rkx_bare_metal"), "{triple}: the guest tools' table builds no purgatory");
                continue;
            }
            assert_eq!(rustflags(triple), Some(flags.as_slice()), "rustflags of {triple}");
            seen.push(triple.clone());
        }
        let mut ours: Vec<String> =
            targets().filter(|t| t.split('-').any(|part| part == "none")).map(String::from).collect();
        seen.sort();
        ours.sort();
        assert_eq!(seen, ours, "bare-metal targets with rustflags");
        assert!(rustflags("powerpc64le-unknown-linux-gnu").is_some_and(|f| f.contains(&"rkx_bare_metal")));
    }

    #[test]
    fn release_profile_is_the_workspace_profile() {
        let manifest = workspace_file("Cargo.toml");
        let release = manifest["profile"]["release"].as_table().expect("[profile.release]");
        let mut theirs = Vec::new();
        leaves("", release, &mut theirs);
        let mut ours: Vec<(String, toml::Value)> =
            RELEASE_PROFILE.iter().map(|(k, v)| (k.to_string(), value(v))).collect();
        theirs.sort_by(|a, b| a.0.cmp(&b.0));
        ours.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(ours, theirs);
    }

    #[test]
    fn every_image_has_its_target_settings() {
        for (name, target) in PURGATORY_IMAGES {
            assert!(rustflags(target).is_some(), "{name}: no settings for {target}");
        }
        assert_eq!(PURGATORY_IMAGES.len(), targets().count(), "a target with settings but no image");
    }

    #[test]
    fn encoded_rustflags_separate_with_unit_separator() {
        assert_eq!(
            encoded_rustflags("x86_64-unknown-none").as_deref(),
            Some(
                "-C\u{1f}relocation-model=pie\u{1f}--cfg\u{1f}sha2_backend=\"soft\"\u{1f}--cfg\u{1f}sha2_backend_soft=\"compact\""
            )
        );
        assert_eq!(encoded_rustflags("x86_64-unknown-linux-gnu"), None);
    }

    #[test]
    fn profile_args_are_dotted_config_keys() {
        let args: Vec<String> = profile_config_args().collect();
        assert!(args.contains(&"profile.release.panic=\"abort\"".to_string()));
        assert!(args.contains(&"profile.release.package.kexec-purgatory.opt-level=\"z\"".to_string()));
        assert_eq!(args.len(), RELEASE_PROFILE.len());
    }
}
