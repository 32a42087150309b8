//! What the caller asks for, independent of the architecture: the input
//! files, the command line, kdump, the purgatory's behaviour. The CLI fills
//! one from kexec-tools' options; library users build one directly.

use std::path::PathBuf;

use kexec_purgatory::abi::{ON_FAILURE_HALT, ON_FAILURE_RESET};

/// How the new kernel's command line is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdlineChoice {
    /// No --append: what the architecture keeps by default (arm64: the
    /// DTB's bootargs; x86_64: the running kernel's command line).
    Keep,
    /// Exactly this (--append / --command-line): bytes, as kexec-tools
    /// passes its argv's C string on (no encoding is assumed).
    Set(Vec<u8>),
    /// The running kernel's /proc/cmdline, then this appended (may be
    /// empty): --reuse-cmdline.
    Reuse(Vec<u8>),
}

/// Whether a crash image is loaded hotplug-aware: the running kernel may
/// then rewrite its elfcorehdr (and, on ppc64, its DTB) after a CPU or
/// memory hotplug event instead of leaving a stale description
/// (kernel/crash_core.c crash_handle_hotplug_event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hotplug {
    /// On wherever the running kernel supports it
    /// (/sys/kernel/crash_elfcorehdr_size exists: CONFIG_CRASH_HOTPLUG)
    /// and the architecture has the kexec_load flag; off elsewhere.
    #[default]
    Auto,
    /// `--hotplug`: on, or a refusal saying why it cannot be.
    Required,
    /// `--no-hotplug`: off (a userspace reload on every hotplug event).
    Off,
}

/// kdump specifics (`-p`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashOptions {
    /// Crash hotplug: the kernel may rewrite the elfcorehdr (and DTB)
    /// after load.
    pub hotplug: Hotplug,
    /// Exclude the rewritable segments from the digest (true but for the
    /// `--debug-hash-excluded` negative control).
    pub exclude: bool,
}

/// What the purgatory does when a check fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Print which segment failed and stop the CPU (kexec-tools' behaviour).
    Halt,
    /// Print, then reset the machine.
    Reset,
}

impl OnFailure {
    /// The parameter block's `on_failure` value.
    pub fn abi(self) -> u32 {
        match self {
            OnFailure::Halt => ON_FAILURE_HALT,
            OnFailure::Reset => ON_FAILURE_RESET,
        }
    }

    /// The action's name: `halt` or `reset`.
    pub fn name(self) -> &'static str {
        match self {
            OnFailure::Halt => "halt",
            OnFailure::Reset => "reset",
        }
    }
}

/// One load.
#[derive(Debug, Clone)]
pub struct Request {
    /// The kernel file: any format in `image::FORMATS` (Image, Image.gz,
    /// EFI zboot, bzImage, vmlinux, UKI); its format decides the
    /// architecture.
    pub kernel: PathBuf,
    /// `-t TYPE`: the kernel format to use instead of probing.
    pub kernel_type: Option<String>,
    /// Initrds, concatenated in this order.
    pub initrds: Vec<PathBuf>,
    /// A DTB to hand over instead of the running one (arm64, riscv64, ppc64le).
    pub dtb: Option<PathBuf>,
    /// The new kernel's command line.
    pub cmdline: CmdlineChoice,
    /// `--serial TTY`: the purgatory's console (else the boot data's).
    pub serial: Option<String>,
    /// Hash every segment in the purgatory (false: kexec-tools' -i).
    pub verify: bool,
    /// What the purgatory does when a check fails (the parameter block's
    /// `on_failure`).
    pub on_failure: OnFailure,
    /// Extra DTB edits: `--dtb-set /node/prop=value`, `--dtb-delete /node/prop`.
    /// `--dtb-set`: (`/node/prop` path, value) pairs, applied in order.
    pub dtb_set: Vec<(String, String)>,
    /// `--dtb-delete`: `/node/prop` paths of properties to remove.
    pub dtb_delete: Vec<String>,
    /// `-p`: a crash (kdump) kernel.
    pub crash: Option<CrashOptions>,
    /// `--mem-min` / `--mem-max` (kexec-tools' names): every segment lies
    /// inside `[mem_min, mem_max]` (mem_max inclusive). `mem_min`: the
    /// lowest physical address a segment may use.
    pub mem_min: Option<u64>,
    /// The highest physical address a segment may use (inclusive).
    pub mem_max: Option<u64>,
    /// x86 `--console-serial`: the purgatory prints on the serial port
    /// (`--serial`, else ttyS0 at 0x3f8, kexec-tools' default serial_base)
    /// even when the command line names no serial console.
    pub console_serial: bool,
}

impl Request {
    /// Load `kernel` with defaults: no initrd, the architecture's default
    /// command line, verification on, halt on failure.
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        Request {
            kernel: kernel.into(),
            kernel_type: None,
            initrds: Vec::new(),
            dtb: None,
            cmdline: CmdlineChoice::Keep,
            serial: None,
            verify: true,
            on_failure: OnFailure::Halt,
            dtb_set: Vec::new(),
            dtb_delete: Vec::new(),
            crash: None,
            mem_min: None,
            mem_max: None,
            console_serial: false,
        }
    }
}
