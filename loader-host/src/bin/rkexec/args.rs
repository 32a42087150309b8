//! Command-line arguments: kexec-tools' common flags (so systemd, petitboot
//! and kdump scripts can call us unchanged) plus `plan`/`--dry-run`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Which system call loads the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SyscallChoice {
    /// kexec_load through our purgatory, falling back to kexec_file_load
    /// when kexec_load is refused (lockdown / Secure Boot).
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
    /// Print, then PSCI SYSTEM_RESET.
    Reset,
}

#[derive(Debug, Parser)]
#[command(
    name = "rkexec",
    version,
    about = "Load and boot a new kernel with kexec, verified by our purgatory.",
    long_about = "Load and boot a new kernel with kexec. Accepts kexec-tools' common options.\n\
                  `rkexec plan KERNEL ...` (or --dry-run) shows the memory layout without loading anything.",
    after_help = "Examples:\n  rkexec -l /boot/vmlinuz --initrd=/boot/initrd.img --reuse-cmdline\n  rkexec -e\n  rkexec plan /boot/vmlinuz --initrd=/boot/initrd.img --json"
)]
pub struct Args {
    /// `plan`: show the layout (no privileges, nothing loaded); otherwise
    /// the kernel image.
    #[arg(value_name = "KERNEL")]
    pub positional: Vec<PathBuf>,

    /// Load the kernel (into the normal kexec slot).
    #[arg(short = 'l', long = "load")]
    pub load: bool,
    /// Load a crash (panic) kernel, entered when the running kernel panics.
    #[arg(short = 'p', long = "load-panic")]
    pub load_panic: bool,
    /// Boot the loaded kernel now.
    #[arg(short = 'e', long = "exec")]
    pub exec: bool,
    /// Load (if a kernel is given) and boot at once, without shutdown.
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Unload the loaded kernel (with -p: the crash kernel).
    #[arg(short = 'u', long = "unload")]
    pub unload: bool,
    /// Exit 0 if a kernel is loaded (with -l: normal, default: crash), 1 if not.
    #[arg(short = 'S', long = "status")]
    pub status: bool,
    /// Use kexec_file_load (same as --syscall=file).
    #[arg(short = 's', long = "kexec-file-syscall")]
    pub file_syscall: bool,
    /// Use kexec_load (same as --syscall=load).
    #[arg(short = 'c', long = "kexec-syscall")]
    pub load_syscall: bool,
    /// kexec_load, falling back to kexec_file_load (same as --syscall=auto; the default).
    #[arg(short = 'a', long = "kexec-syscall-auto")]
    pub auto_syscall: bool,
    /// Which system call to use.
    #[arg(long = "syscall", value_enum)]
    pub syscall: Option<SyscallChoice>,
    /// Skip digest verification in the purgatory (kexec-tools' --no-checks).
    #[arg(short = 'i', long = "no-checks")]
    pub no_checks: bool,
    /// Print what is being done.
    #[arg(short = 'd', long = "debug")]
    pub debug: bool,
    /// Accepted for compatibility: we never bring interfaces down.
    #[arg(short = 'x', long = "no-ifdown")]
    pub no_ifdown: bool,
    /// Accepted for compatibility with kexec-tools; we do not call shutdown.
    #[arg(long = "no-sync")]
    pub no_sync: bool,

    /// Kernel command line (replaces the DTB's bootargs).
    #[arg(long = "append", alias = "command-line", value_name = "STRING")]
    pub append: Option<String>,
    /// Start from the running kernel's /proc/cmdline (then --append is added).
    #[arg(long = "reuse-cmdline")]
    pub reuse_cmdline: bool,
    /// Initrd; repeat to concatenate several.
    #[arg(long = "initrd", alias = "ramdisk", value_name = "FILE")]
    pub initrd: Vec<PathBuf>,
    /// DTB to hand over instead of /sys/firmware/fdt.
    #[arg(long = "dtb", value_name = "FILE")]
    pub dtb: Option<PathBuf>,
    /// Console for the purgatory's messages (e.g. ttyAMA0, ttyS0).
    #[arg(long = "serial", value_name = "TTY")]
    pub serial: Option<String>,
    /// Kernel image type (Image, vmlinuz, zimg; autodetected when omitted).
    #[arg(short = 't', long = "type", value_name = "TYPE")]
    pub kernel_type: Option<String>,
    /// Set a DTB string property: /path/to/node/property=value.
    #[arg(long = "dtb-set", value_name = "PATH=VALUE")]
    pub dtb_set: Vec<String>,
    /// Delete a DTB property: /path/to/node/property.
    #[arg(long = "dtb-delete", value_name = "PATH")]
    pub dtb_delete: Vec<String>,
    /// What the purgatory does on a digest mismatch.
    #[arg(long = "on-failure", value_enum, default_value = "halt")]
    pub on_failure: OnFailure,
    /// Crash hotplug: let the kernel rewrite the elfcorehdr (and FDT) after
    /// load; those segments are structure-checked instead of hashed.
    #[arg(long = "hotplug")]
    pub hotplug: bool,
    /// Debug: with --hotplug, hash the elfcorehdr anyway (a negative
    /// control: after a hotplug rewrite the purgatory must refuse it).
    #[arg(long = "debug-hash-excluded")]
    pub debug_hash_excluded: bool,

    /// Show the plan instead of loading (no privileges needed).
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// With plan/--dry-run: machine-readable output.
    #[arg(long = "json")]
    pub json: bool,
    /// Read /proc from here (tests, inspecting another system's files).
    #[arg(long = "proc-root", value_name = "DIR", default_value = "/proc", hide = true)]
    pub proc_root: PathBuf,
    /// Read /sys from here.
    #[arg(long = "sys-root", value_name = "DIR", default_value = "/sys", hide = true)]
    pub sys_root: PathBuf,
}

impl Args {
    /// The syscall to use, from -s/-c/-a/--syscall (last wins like getopt
    /// would not tell us, so conflicting ones are an error).
    pub fn syscall_choice(&self) -> Result<SyscallChoice, String> {
        let mut picked: Vec<SyscallChoice> = Vec::new();
        if self.file_syscall {
            picked.push(SyscallChoice::File);
        }
        if self.load_syscall {
            picked.push(SyscallChoice::Load);
        }
        if self.auto_syscall {
            picked.push(SyscallChoice::Auto);
        }
        picked.extend(self.syscall);
        picked.dedup();
        match picked.as_slice() {
            [] => Ok(SyscallChoice::Auto),
            [one] => Ok(*one),
            _ => Err(format!("conflicting system call choices: {picked:?}; give one of -s, -c, -a or --syscall")),
        }
    }
}
