//! What kexec-tools' build for one architecture accepts, read from its
//! sources (kexec-tools 2.0.32, kexec/kexec.h and `kexec/arch/<dir>/`): the
//! long options its main() scans argv with (KEXEC_OPTIONS plus the arch's
//! include/arch/options.h KEXEC_ALL_OPTIONS, in table order: glibc's
//! getopt_long resolves a prefix against this table, and lists the
//! candidates of an ambiguous one in its order), the options main() takes
//! that the arch's kernel loaders do not (their own getopt_long re-scan
//! prints glibc's "unrecognized option" and the load goes on), and how its
//! arch_process_options treats `--serial`.
//!
//! The command line is scanned with the build of the machine rkexec runs
//! on; the loader rules apply with the build of the kernel's architecture
//! (the same machine, unless a foreign kernel is only planned).

use crate::ops;

/// How a build treats `--serial VALUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialRule {
    /// kexec/arch/x86_64/kexec-x86_64.c arch_process_options: `ttyS0` is
    /// port 0x3f8, `ttyS1` 0x2f8, `0x<hex>` (strtoul base 16, the whole
    /// rest) a port below 65536; anything else is "Bad serial port base
    /// '%s'", the usage, and nothing is loaded.
    X86Port,
    /// kexec/arch/arm64/kexec-arm64.c find_purgatory_sink: any name; one
    /// that names no usable UART under /sys/class/tty is reported and the
    /// image is loaded without a purgatory console.
    AnyTty,
    /// The build has no `--serial` (riscv): rkexec's own option, with the
    /// loader's rules (an unusable console is refused).
    RkexecOnly,
}

/// One architecture's kexec-tools build.
#[derive(Debug)]
pub struct Build {
    /// The architecture's name as rkexec spells it (`ArchSpec::name`).
    pub arch: &'static str,
    /// kexec-tools' directory: `kexec/arch/<dir>`.
    pub dir: &'static str,
    /// main()'s long options (KEXEC_ALL_OPTIONS), in table order.
    pub long: &'static [&'static str],
    /// Options main() takes that none of the build's loaders for this
    /// architecture's kernels re-scan for: each prints glibc's
    /// "unrecognized option" there and is otherwise ignored.
    pub loader_unknown: &'static [&'static str],
    pub serial: SerialRule,
}

/// kexec/kexec.h KEXEC_OPTIONS: every build's first entries.
macro_rules! generic {
    ($($arch:literal),* $(,)?) => {
        &[
            "help", "version", "force", "no-checks", "no-ifdown", "no-sync", "load", "unload", "exec",
            "exec-live-update", "load-preserve-context", "load-jump-back-helper", "load-live-update", "entry",
            "type", "load-panic", "mem-min", "mem-max", "reuseinitrd", "kexec-file-syscall", "kexec-syscall",
            "kexec-syscall-auto", "debug", "status", "print-ckr-size", "hotplug", "no-cma", "force-dtb",
            $($arch),*
        ]
    };
}

/// kexec-tools' short options: kexec/kexec.h KEXEC_OPT_STR (every build
/// adds none).
#[cfg(test)]
pub const SHORT: &str = "h?vdfixyluet:pscaS";

/// The builds rkexec stands in for.
pub static BUILDS: &[Build] = &[
    Build {
        arch: "x86_64",
        dir: "x86_64",
        // kexec/arch/i386/include/arch/options.h (shared by the x86_64 build):
        // KEXEC_ARCH_OPTIONS, then KEXEC_ALL_OPTIONS' loader options.
        long: generic![
            "reset-vga",
            "serial",
            "serial-baud",
            "console-vga",
            "console-serial",
            "elf32-core-headers",
            "elf64-core-headers",
            "pass-memmap-cmdline",
            "noefi",
            "reuse-video-type",
            "command-line",
            "append",
            "reuse-cmdline",
            "initrd",
            "ramdisk",
            "args-elf",
            "args-linux",
            "args-none",
            "module",
            "real-mode",
            "entry-32bit",
            "dtb",
        ],
        // --dtb (in KEXEC_ALL_OPTIONS since 2.0.27, "x86: add devicetree
        // support", for the 32-bit kexec-bzImage.c loader) is in neither
        // the bzImage64_load/bzImage64_load_file table (kexec-bzImage64.c,
        // which a UKI's .linux also goes through, kexec-uki.c) nor
        // elf_x86_64_load's (kexec-elf-x86_64.c): petitboot's --dtb gets
        // "unrecognized option" and the kernel loads.
        loader_unknown: &["dtb"],
        serial: SerialRule::X86Port,
    },
    Build {
        arch: "arm64",
        dir: "arm64",
        // kexec/arch/arm64/include/arch/options.h KEXEC_ARCH_OPTIONS.
        long: generic!["append", "command-line", "dtb", "initrd", "serial", "ramdisk", "reuse-cmdline"],
        loader_unknown: &[],
        serial: SerialRule::AnyTty,
    },
    Build {
        arch: "riscv64",
        dir: "riscv",
        // kexec/arch/riscv/include/arch/options.h KEXEC_ARCH_OPTIONS.
        long: generic!["append", "dtb", "initrd", "command-line", "reuse-cmdline"],
        loader_unknown: &[],
        serial: SerialRule::RkexecOnly,
    },
];

/// The test seam's stand-in for the machine rkexec runs on: with
/// RKEXEC_TEST_NO_SYSCALLS=1, RKEXEC_TEST_HOST_ARCH=arm64 scans argv as
/// kexec-tools' arm64 build would.
pub const HOST_ARCH_ENV: &str = "RKEXEC_TEST_HOST_ARCH";

impl Build {
    /// The build for architecture `arch` (rkexec's name or an alias).
    pub fn for_arch(arch: &str) -> Option<&'static Build> {
        let name = loader_host::arch::by_name(arch).map_or(arch, |a| a.name);
        BUILDS.iter().find(|b| b.arch == name)
    }

    /// The build of the machine rkexec runs on (None on one kexec-tools
    /// is not described for here: every build's options then count alike).
    pub fn running() -> Option<&'static Build> {
        if ops::seam_on() {
            if let Some(a) = std::env::var_os(HOST_ARCH_ENV) {
                return Build::for_arch(&a.to_string_lossy());
            }
        }
        loader_host::arch::native().and_then(|a| Build::for_arch(a.name))
    }
}

/// glibc's strtoul(s, &end, 16) with `*end == '\0'` required, as
/// arch_process_options parses `--serial=0x...` after the "0x": leading
/// white space, a sign, an optional second "0x", then hex digits (none at
/// all is 0 with the end at the start, so only an empty rest passes); a
/// value past ULONG_MAX is ULONG_MAX; "-n" is its negation modulo 2^64.
pub fn strtoul_hex_whole(s: &str) -> Option<u64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    // "0x" counts as a prefix only when a hex digit follows it.
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .filter(|r| r.starts_with(|c: char| c.is_ascii_hexdigit()))
        .unwrap_or(t);
    let n = digits.bytes().take_while(u8::is_ascii_hexdigit).count();
    if n == 0 {
        // No conversion: endptr = s, so only an empty string is "whole".
        return s.is_empty().then_some(0);
    }
    if n != digits.len() {
        return None;
    }
    let v = digits.bytes().try_fold(0u64, |acc, b| {
        let d = u64::from((b as char).to_digit(16)?);
        acc.checked_mul(16).and_then(|a| a.checked_add(d))
    });
    // Out of range: ULONG_MAX whatever the sign (ERANGE).
    Some(match v {
        None => u64::MAX,
        Some(v) if neg => v.wrapping_neg(),
        Some(v) => v,
    })
}

/// kexec-tools' x86 `--serial` rule: the I/O port, or the message it
/// refuses the value with.
pub fn x86_serial_port(value: &str) -> Result<u64, String> {
    let port = match value {
        "ttyS0" => Some(0x3f8),
        "ttyS1" => Some(0x2f8),
        v => v.strip_prefix("0x").and_then(strtoul_hex_whole),
    };
    match port {
        Some(p) if p < 65536 => Ok(p),
        _ => Err(format!("Bad serial port base '{}'", loader_host::escape::text(value))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_serial_values_as_arch_process_options() {
        assert_eq!(x86_serial_port("ttyS0"), Ok(0x3f8));
        assert_eq!(x86_serial_port("ttyS1"), Ok(0x2f8));
        assert_eq!(x86_serial_port("0x3f8"), Ok(0x3f8));
        assert_eq!(x86_serial_port("0x3F8"), Ok(0x3f8));
        assert_eq!(x86_serial_port("0x0x2f8"), Ok(0x2f8), "strtoul base 16 takes its own 0x");
        assert_eq!(x86_serial_port("0x ffff"), Ok(0xffff), "leading white space");
        assert_eq!(x86_serial_port("0x"), Ok(0), "empty: strtoul gives 0 and the end is the NUL");
        for bad in ["ttyS2", "/dev/ttyS0", "ttyAMA0", "hvc0", "0x10000", "0x3f8 ", "0xzz", "0x-1", "3f8", "0X3f8"] {
            assert_eq!(x86_serial_port(bad), Err(format!("Bad serial port base '{bad}'")), "{bad}");
        }
    }

    #[test]
    fn builds_are_found_by_any_name() {
        assert_eq!(Build::for_arch("aarch64").map(|b| b.dir), Some("arm64"));
        assert_eq!(Build::for_arch("amd64").map(|b| b.dir), Some("x86_64"));
        assert_eq!(Build::for_arch("riscv64").map(|b| b.dir), Some("riscv"));
        assert!(Build::for_arch("sparc").is_none());
        for b in BUILDS {
            assert!(loader_host::arch::by_name(b.arch).is_some(), "{} is an architecture rkexec loads", b.arch);
        }
    }
}
