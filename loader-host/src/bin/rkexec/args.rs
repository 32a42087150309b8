//! The command line's options: every option of kexec-tools' generic,
//! x86_64 and arm64 usage text (kexec/kexec.h KEXEC_OPTIONS, kexec/arch/
//! i386/include/arch/options.h, kexec/arch/arm64/include/arch/options.h)
//! plus rkexec's own. This clap definition is the one source for `--help`,
//! the man page, the shell completions and the getopt table
//! (`getopt::Table`); argv itself is scanned the GNU getopt_long way
//! (`getopt`), then handed to clap in a canonical form.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueEnum};

/// Which system call loads the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SyscallChoice {
    /// kexec_load through our purgatory, falling back to kexec_file_load
    /// when a security policy refuses kexec_load (lockdown: EPERM; IMA:
    /// EACCES) or the kernel lacks it (rkexec's default; -a).
    Auto,
    /// kexec_load only (-c).
    Load,
    /// kexec_file_load only (-s): the kernel loads and (with KEXEC_SIG)
    /// verifies the image; no purgatory of ours, no user DTB on arm64.
    File,
}

/// What the purgatory does when a digest does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnFailure {
    /// Print which segment failed and stop the CPU (kexec-tools' behaviour).
    Halt,
    /// Print, then reset the machine.
    Reset,
}

/// Shells `--completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

pub const ABOUT: &str = "Load and boot a new kernel with kexec, verified by rkexec's purgatory.";

pub const LONG_ABOUT: &str = "\
Load a new kernel into the running one and boot it, a drop-in replacement for kexec-tools' \
/sbin/kexec: it accepts kexec-tools' options and command lines as systemd, kdump-utils, \
kdump-tools, petitboot and the distributions' scripts pass them (GNU getopt rules: options \
and the kernel path in any order, --opt=value or --opt value, unambiguous long-option \
prefixes, -su, repeated flags, --).

Every image loaded with kexec_load carries rkexec's purgatory, which checks the SHA-256 of \
every segment before it enters the new kernel and refuses to boot a corrupted one.

Actions (kexec-tools' rules, applied in argv order; a later action overrides an earlier one): \
`rkexec KERNEL` loads KERNEL and then runs `shutdown -r now` so the system stops cleanly; the \
kernel is entered by the reboot. -l loads only, -p loads a crash kernel, -u unloads, -e boots \
the loaded kernel now, -f loads and boots at once without shutdown, -S reports whether a \
kernel is loaded (exit status 1 = loaded, 0 = not).

Where rkexec deliberately differs from kexec-tools: the default system call (auto) is \
kexec_load, so that our purgatory verifies the image, and kexec_file_load is used only when \
a security policy refuses kexec_load (lockdown, IMA) or the kernel lacks it (kexec-tools \
2.0.27 and later try kexec_file_load first). -s still means kexec_file_load only, -c \
kexec_load only.

`rkexec plan KERNEL ...` (or --dry-run with any load) shows what would be loaded, without \
privileges and without loading anything. `rkexec status` says what is loaded and whether the \
crash kernel is hotplug-aware (-S only exits with it, silently, as kexec-tools). Invoked as \
`kexec`, there are no such words: `kexec -l plan` loads the file called plan.";

pub const AFTER_HELP: &str = "\
Kernel formats: bzImage (x86_64), Image, Image.gz, Image.zst, EFI zboot vmlinuz (arm64), \
vmlinux ELF (x86_64 with Linux boot parameters as --args-linux, arm64), unified kernel images \
(UKI: .linux, .initrd, .ucode, .cmdline, .dtb sections; x86_64 and arm64). -t TYPE names one \
(kexec-tools' names such as bzImage64, elf-x86_64, Image, vmlinux, vmlinuz, uki are accepted).

Exit status (as kexec-tools): 0 success; 1 usage error, nothing loaded for -e, no crash \
memory reserved for -p; 255 a load, unload or exec failed; 253 -s and kexec_file_load \
unavailable. With -S: 1 if the kernel is loaded, 0 if not, 255 if that cannot be read.

Examples:
  rkexec -l /boot/vmlinuz --initrd=/boot/initrd.img --reuse-cmdline
  rkexec -e
  rkexec -s -p /boot/vmlinuz --initrd=/boot/initrd-kdump.img --command-line=\"irqpoll nr_cpus=1\"
  rkexec plan /boot/vmlinuz --initrd=/boot/initrd.img --json";

/// kexec-tools' and rkexec's options. Field names are the clap ids; the
/// getopt table is built from the long/short names and aliases below.
#[derive(Debug, Parser)]
#[command(
    name = "rkexec",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true,
    max_term_width = 100
)]
pub struct Args {
    /// The kernel image to load (as rkexec, `plan` as the first word: show the plan only).
    #[arg(value_name = "KERNEL")]
    pub positional: Vec<PathBuf>,

    // ---- kexec-tools' generic options (kexec/kexec.h, usage() in kexec/kexec.c)
    /// Print this help.
    #[arg(short = 'h', long = "help", action = ArgAction::SetTrue, help_heading = "Actions")]
    pub help: bool,
    /// Print the version of rkexec.
    #[arg(short = 'v', long = "version", action = ArgAction::SetTrue, help_heading = "Actions")]
    pub version: bool,
    /// Load the new kernel into the current kernel (for a later -e or reboot).
    #[arg(short = 'l', long = "load", help_heading = "Actions")]
    pub load: bool,
    /// Load the new kernel for use on panic (kdump).
    #[arg(short = 'p', long = "load-panic", help_heading = "Actions")]
    pub load_panic: bool,
    /// Unload the loaded kernel; with -p the crash kernel.
    #[arg(short = 'u', long = "unload", help_heading = "Actions")]
    pub unload: bool,
    /// Boot the loaded kernel now (sync first unless -y).
    #[arg(short = 'e', long = "exec", help_heading = "Actions")]
    pub exec: bool,
    /// Load and boot at once, without calling shutdown.
    #[arg(short = 'f', long = "force", help_heading = "Actions")]
    pub force: bool,
    /// Exit 1 if the kernel is loaded, 0 if not (silent): the crash kernel unless -l is given.
    #[arg(short = 'S', long = "status", help_heading = "Actions")]
    pub status: bool,
    /// Print the size of the crash kernel region (0 if none) and exit.
    #[arg(long = "print-ckr-size", help_heading = "Actions")]
    pub print_ckr_size: bool,
    /// Xen live update (Xen only: refused, as kexec-tools does outside Xen).
    #[arg(long = "exec-live-update", help_heading = "Actions")]
    pub exec_live_update: bool,
    /// Xen live update (Xen only: refused, as kexec-tools does outside Xen).
    #[arg(long = "load-live-update", help_heading = "Actions")]
    pub load_live_update: bool,
    /// Load preserving the current kernel's context (not supported: refused).
    #[arg(long = "load-preserve-context", help_heading = "Actions")]
    pub load_preserve_context: bool,
    /// Load a helper to jump back to the original kernel (not supported: refused).
    #[arg(long = "load-jump-back-helper", help_heading = "Actions")]
    pub load_jump_back_helper: bool,

    /// kexec_file_load only: the kernel loads and verifies the image (no fallback).
    #[arg(short = 's', long = "kexec-file-syscall", help_heading = "System call")]
    pub kexec_file_syscall: bool,
    /// kexec_load only (through rkexec's purgatory).
    #[arg(short = 'c', long = "kexec-syscall", help_heading = "System call")]
    pub kexec_syscall: bool,
    /// kexec_load, falling back to kexec_file_load when lockdown or IMA refuses it
    /// (the default; kexec-tools >= 2.0.27 tries kexec_file_load first instead).
    #[arg(short = 'a', long = "kexec-syscall-auto", help_heading = "System call")]
    pub kexec_syscall_auto: bool,
    /// Same as -a/-c/-s: auto, load or file (the last of these options wins).
    #[arg(long = "syscall", value_enum, value_name = "CALL", help_heading = "System call")]
    pub syscall: Option<SyscallChoice>,

    /// Kernel command line, also --command-line (replaces the default; added after --reuse-cmdline's).
    #[arg(long = "append", visible_alias = "command-line", value_name = "STRING", help_heading = "Kernel")]
    pub append: Option<OsString>,
    /// Start from the running kernel's command line, without BOOT_IMAGE= (and crashkernel= for -p).
    #[arg(long = "reuse-cmdline", help_heading = "Kernel")]
    pub reuse_cmdline: bool,
    /// Initrd, also --ramdisk (repeat to concatenate several, an rkexec extension).
    #[arg(long = "initrd", visible_alias = "ramdisk", value_name = "FILE", action = ArgAction::Append, help_heading = "Kernel")]
    pub initrd: Vec<PathBuf>,
    /// DTB to hand over instead of the running one (arm64, riscv64, ppc64le; ignored with -s;
    /// on x86 kexec-tools' "unrecognized option" warning, and ignored).
    #[arg(long = "dtb", value_name = "FILE", help_heading = "Kernel")]
    pub dtb: Option<PathBuf>,
    /// Kernel image type instead of probing (e.g. bzImage, Image, vmlinux, uki).
    #[arg(short = 't', long = "type", value_name = "TYPE", help_heading = "Kernel")]
    pub kernel_type: Option<String>,
    /// Lowest address any segment may be loaded at (C number: 0x.., 0.., decimal).
    #[arg(long = "mem-min", value_name = "ADDR", help_heading = "Kernel")]
    pub mem_min: Option<String>,
    /// Highest address any segment may occupy (inclusive).
    #[arg(long = "mem-max", value_name = "ADDR", help_heading = "Kernel")]
    pub mem_max: Option<String>,
    /// Jump-back address for --load-jump-back-helper (accepted, unused).
    #[arg(long = "entry", value_name = "ADDR", help_heading = "Kernel")]
    pub entry: Option<String>,
    /// Skip the purgatory's digest verification (fast, unsafe).
    #[arg(short = 'i', long = "no-checks", help_heading = "Kernel")]
    pub no_checks: bool,
    /// Reuse the initrd of the first boot (needs retain_initrd; not supported).
    #[arg(long = "reuseinitrd", help_heading = "Kernel")]
    pub reuseinitrd: bool,
    /// Crash hotplug: require that the kernel may rewrite the crash image (elfcorehdr; the DTB on ppc64) after CPU/memory hotplug (with -p). On by default wherever the running kernel supports it.
    #[arg(long = "hotplug", help_heading = "Kernel", conflicts_with = "no_hotplug")]
    pub hotplug: bool,
    /// Crash hotplug off (with -p): the crash image stays as loaded; reload it after CPU/memory hotplug.
    #[arg(long = "no-hotplug", help_heading = "Kernel")]
    pub no_hotplug: bool,
    /// kexec_file_load: don't use CMA for the segments (KEXEC_FILE_NO_CMA).
    #[arg(long = "no-cma", help_heading = "Kernel")]
    pub no_cma: bool,
    /// kexec_file_load: carry the current DTB over (KEXEC_FILE_FORCE_DTB).
    #[arg(long = "force-dtb", help_heading = "Kernel")]
    pub force_dtb: bool,

    /// Don't bring network interfaces down before -e/-f.
    #[arg(short = 'x', long = "no-ifdown", help_heading = "Boot")]
    pub no_ifdown: bool,
    /// Don't sync file systems before -e/-f.
    #[arg(short = 'y', long = "no-sync", help_heading = "Boot")]
    pub no_sync: bool,
    /// Debug output on stderr (progress, the plan); kexec_file_load gets KEXEC_FILE_DEBUG.
    #[arg(short = 'd', long = "debug", help_heading = "Boot")]
    pub debug: bool,

    // ---- x86_64 and arm64 options (arch options.h, arch_usage())
    /// Purgatory console. x86: ttyS0, ttyS1 or an I/O port (0x3f8), as kexec-tools; arm64: a
    /// tty in /sys/class/tty (ttyAMA0; one it cannot drive is noted and left out); riscv64: a tty or hvc0.
    #[arg(long = "serial", value_name = "PORT", help_heading = "Architecture")]
    pub serial: Option<String>,
    /// x86: serial baud rate (checked; the purgatory keeps the UART's settings).
    #[arg(long = "serial-baud", value_name = "BAUD", help_heading = "Architecture")]
    pub serial_baud: Option<String>,
    /// x86: the purgatory prints on the serial port (--serial, default ttyS0).
    #[arg(long = "console-serial", help_heading = "Architecture")]
    pub console_serial: bool,
    /// x86: VGA console for the purgatory (not available: noted, ignored).
    #[arg(long = "console-vga", help_heading = "Architecture")]
    pub console_vga: bool,
    /// x86: reset a standard VGA device (not available: noted, ignored).
    #[arg(long = "reset-vga", help_heading = "Architecture")]
    pub reset_vga: bool,
    /// x86: ELF32 core headers (noted: x86_64 writes ELF64).
    #[arg(long = "elf32-core-headers", help_heading = "Architecture")]
    pub elf32_core_headers: bool,
    /// x86: ELF64 core headers (what rkexec always writes).
    #[arg(long = "elf64-core-headers", help_heading = "Architecture")]
    pub elf64_core_headers: bool,
    /// x86: memory map on the crash command line (noted: boot_params' e820 carries it).
    #[arg(long = "pass-memmap-cmdline", help_heading = "Architecture")]
    pub pass_memmap_cmdline: bool,
    /// x86: no EFI information for the new kernel (rkexec passes none anyway).
    #[arg(long = "noefi", help_heading = "Architecture")]
    pub noefi: bool,
    /// x86: reuse the boot-time video type (the running screen_info is always reused).
    #[arg(long = "reuse-video-type", help_heading = "Architecture")]
    pub reuse_video_type: bool,
    /// x86 ELF: Linux boot parameters (what rkexec always passes to a vmlinux).
    #[arg(long = "args-linux", help_heading = "Architecture")]
    pub args_linux: bool,
    /// x86 ELF: ELF boot notes (noted: rkexec passes Linux boot parameters).
    #[arg(long = "args-elf", help_heading = "Architecture")]
    pub args_elf: bool,
    /// x86 ELF: no arguments (noted: rkexec passes Linux boot parameters).
    #[arg(long = "args-none", help_heading = "Architecture")]
    pub args_none: bool,
    /// x86 multiboot module (noted, ignored: multiboot kernels are not supported).
    #[arg(long = "module", value_name = "MOD", action = ArgAction::Append, help_heading = "Architecture")]
    pub module: Vec<String>,
    /// x86: 16-bit real-mode entry (noted: rkexec uses the 64-bit entry).
    #[arg(long = "real-mode", help_heading = "Architecture")]
    pub real_mode: bool,
    /// x86: 32-bit entry (noted: rkexec uses the 64-bit entry).
    #[arg(long = "entry-32bit", help_heading = "Architecture")]
    pub entry_32bit: bool,

    // ---- rkexec's own
    /// Show the plan instead of loading (no privileges needed, nothing loaded).
    #[arg(long = "dry-run", help_heading = "rkexec")]
    pub dry_run: bool,
    /// With plan/--dry-run: one line of JSON (docs/plan-json.md).
    #[arg(long = "json", help_heading = "rkexec")]
    pub json: bool,
    /// Set a DTB string property: /path/to/node/property=value.
    #[arg(long = "dtb-set", value_name = "PATH=VALUE", action = ArgAction::Append, help_heading = "rkexec")]
    pub dtb_set: Vec<String>,
    /// Delete a DTB property: /path/to/node/property.
    #[arg(long = "dtb-delete", value_name = "PATH", action = ArgAction::Append, help_heading = "rkexec")]
    pub dtb_delete: Vec<String>,
    /// What the purgatory does on a digest mismatch.
    #[arg(long = "on-failure", value_enum, default_value = "halt", help_heading = "rkexec")]
    pub on_failure: OnFailure,
    /// Debug: with --hotplug, hash the elfcorehdr anyway (a negative control).
    #[arg(long = "debug-hash-excluded", hide = true)]
    pub debug_hash_excluded: bool,
    /// Read /proc from here (tests, inspecting another system's files).
    #[arg(long = "proc-root", value_name = "DIR", default_value = "/proc", hide = true)]
    pub proc_root: PathBuf,
    /// Read /sys from here.
    #[arg(long = "sys-root", value_name = "DIR", default_value = "/sys", hide = true)]
    pub sys_root: PathBuf,
    /// Print the man page (roff) generated from these options.
    #[arg(long = "man", hide = true)]
    pub man: bool,
    /// Print a completion script for SHELL.
    #[arg(long = "completions", value_enum, value_name = "SHELL", hide = true)]
    pub completions: Option<Shell>,
}

/// kexec/kexec.c: `strtoul(optarg, &endptr, 0)` and `*endptr` must be NUL
/// ("Bad option value in --mem-min=..."): 0x hex, 0 octal, else decimal, no
/// suffixes.
pub fn c_number(s: &str) -> Option<u64> {
    let t = s.trim_start();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if t.is_empty() {
        // strtoul("") is 0 with endptr at the (empty) end: accepted.
        return Some(0);
    }
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        u64::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse().ok()?
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_numbers() {
        assert_eq!(c_number("0x10"), Some(16));
        assert_eq!(c_number("010"), Some(8));
        assert_eq!(c_number("10"), Some(10));
        assert_eq!(c_number("0"), Some(0));
        assert_eq!(c_number("10k"), None);
        assert_eq!(c_number(""), Some(0), "as strtoul");
    }
}
