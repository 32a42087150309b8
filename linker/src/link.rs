//! The purgatory's link: its linker script (`purgatory.ld`, shipped inside
//! this crate so that a packaged purgatory links as the repository's does)
//! and the arguments that make the image a static PIE with only RELATIVE
//! relocations (checked by loader-host's image tests).

use std::path::{Path, PathBuf};

/// The linker script: the layout every purgatory image shares (docs/abi.md).
pub const SCRIPT: &str = include_str!("../purgatory.ld");

/// The linker arguments for the purgatory linked for `target` with the
/// script at `script`.
pub fn args(target: &str, script: &Path) -> Vec<String> {
    let mut args = vec![
        format!("-T{}", script.display()),
        // Static PIE: position independent, no dynamic loader; `-z text`
        // refuses relocations in read-only sections, so every fix-up is a
        // RELATIVE one in writable data that _start applies.
        "-pie".into(),
        "--no-dynamic-linker".into(),
        "-z".into(),
        "text".into(),
        "-z".into(),
        "norelro".into(),
        "--pack-dyn-relocs=none".into(),
        "--hash-style=sysv".into(),
        "--gc-sections".into(),
    ];
    if !target.split('-').any(|part| part == "none") {
        // A hosted target used without its C library (ppc64le: Rust has no
        // bare-metal powerpc64le target): no crt objects, no libc, no
        // search paths of the toolchain.
        args.push("-nostdlib".into());
    }
    args
}

/// For the purgatory's build script: when cargo builds it for one of the
/// bare-metal targets (`settings::targets`), write the script into
/// `out_dir` and tell cargo to link the purgatory binary with it. Host
/// builds (unit tests) are not affected. Returns the script's path when it
/// was written.
pub fn emit_for(target: &str, out_dir: &Path) -> Result<Option<PathBuf>, String> {
    if !crate::settings::targets().any(|t| t == target) {
        return Ok(None);
    }
    let script = out_dir.join("purgatory.ld");
    std::fs::write(&script, SCRIPT).map_err(|e| format!("writing {}: {e}", script.display()))?;
    for arg in args(target, &script) {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    Ok(Some(script))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_puts_the_header_first_and_the_params_in_their_section() {
        assert!(SCRIPT.contains("ENTRY(_start)"));
        assert!(SCRIPT.contains("KEEP(*(.text.head))"), "the image header (arch/src/<arch>/entry.rs) first");
        assert!(SCRIPT.contains("KEEP(*(.params))"));
        let a = args("aarch64-unknown-none", Path::new("/x/purgatory.ld"));
        assert_eq!(a[0], "-T/x/purgatory.ld");
        assert!(a.iter().any(|s| s == "-pie") && a.iter().any(|s| s == "text"));
        assert!(!a.iter().any(|s| s == "-nostdlib"));
        let hosted = args("powerpc64le-unknown-linux-gnu", Path::new("/x/purgatory.ld"));
        assert_eq!(hosted.last().map(String::as_str), Some("-nostdlib"), "no crt, no libc for the hosted triple");
    }
}
