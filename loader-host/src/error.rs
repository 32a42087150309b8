//! Why a load could not be planned: one error type for the whole pipeline,
//! wrapping each module's typed error. Every message names the file, field
//! or option and the rule; nothing has been loaded when one is returned.

use std::fmt;
use std::path::PathBuf;

use crate::arch_spec::Arch;
use crate::boot_params::BootParamsError;
use crate::crash::CrashError;
use crate::dtb::edit::DtbEditError;
use crate::image::ImageError;
use crate::input::InputError;
use crate::plan::PlanError;
use crate::purgatory_image::PurgatoryImageError;
use crate::system::console::ConsoleError;
use crate::system::entropy::EntropyError;
use crate::system::firmware::FirmwareError;
use crate::system::iomem::IomemError;
use crate::system::memory_hotplug::HotplugError;
use crate::system::ReadError;

/// Why a plan could not be made.
#[derive(Debug)]
pub enum LoadError {
    /// A kernel, initrd or DTB file.
    Input(InputError),
    /// The kernel file is not a kernel this loader boots.
    Kernel {
        /// The kernel file (`Request::kernel`).
        path: PathBuf,
        /// Which format rule it breaks.
        err: ImageError,
    },
    /// A /proc or /sys file.
    System(ReadError),
    /// /proc/iomem is malformed: the memory map cannot be trusted, so
    /// nothing is placed.
    Iomem {
        /// The /proc/iomem read (under `SystemSources::proc_root`).
        path: PathBuf,
        /// The line and the rule it breaks.
        err: IomemError,
    },
    /// The memory-hotplug blocks (/sys/devices/system/memory) could not be
    /// read, so hot-removable memory cannot be avoided.
    Hotplug(HotplugError),
    /// x86: the firmware memory map (/sys/firmware/memmap) the zero page's
    /// e820 table is built from.
    Firmware(FirmwareError),
    /// `--serial TTY` names no UART the purgatory can drive.
    Console(ConsoleError),
    /// getrandom(2) failed for the seeds handed to the new kernel.
    Entropy(EntropyError),
    /// The DTB to hand over could not be parsed or edited.
    Dtb {
        /// Where it came from: `--dtb`, the UKI holding a `.dtb` section, or
        /// /sys/firmware/fdt.
        path: PathBuf,
        /// What is wrong with it.
        err: DtbEditError,
    },
    /// x86: the zero page (boot_params) cannot be built.
    BootParams(BootParamsError),
    /// `-p`: the crash ranges or the elfcorehdr cannot be prepared.
    Crash(CrashError),
    /// The command line is longer than the kernel takes.
    CmdlineTooLong {
        /// Its length in bytes, without a terminating NUL.
        len: usize,
        /// The most bytes the kernel takes, without the NUL.
        max: usize,
        /// Where that limit comes from (COMMAND_LINE_SIZE, bzImage
        /// cmdline_size).
        rule: &'static str,
    },
    /// An option that means nothing for this architecture.
    NotForArch {
        /// The option, e.g. `--dtb`.
        option: &'static str,
        /// The kernel's architecture.
        arch: Arch,
        /// Why the option does not apply.
        why: &'static str,
    },
    /// No room for a segment, or the finished plan breaks a rule of
    /// kexec_load or the purgatory (`preflight`).
    Plan(PlanError),
    /// The embedded purgatory image fails its own header check (a build
    /// defect, not bad input).
    Purgatory(PurgatoryImageError),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Input(e) => write!(f, "{e}"),
            Self::Kernel { path, err } => write!(f, "{}: {err}", path.display()),
            Self::System(e) => write!(f, "{e}"),
            Self::Iomem { path, err } => write!(f, "{}: {err}", path.display()),
            Self::Hotplug(e) => write!(f, "{e}"),
            Self::Firmware(e) => write!(f, "{e}"),
            Self::Console(e) => write!(f, "{e}"),
            Self::Entropy(e) => write!(f, "{e}"),
            Self::Dtb { path, err } => write!(f, "{}: {err}", path.display()),
            Self::BootParams(e) => write!(f, "{e}"),
            Self::Crash(e) => write!(f, "{e}"),
            Self::CmdlineTooLong { len, max, rule } => {
                write!(f, "the command line is {len} bytes; {rule} allows {max}")
            }
            Self::NotForArch { option, arch, why } => write!(f, "{option} has no meaning on {arch}: {why}"),
            Self::Plan(e) => write!(f, "{e}"),
            Self::Purgatory(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<crate::system::MemoryMapError> for LoadError {
    fn from(e: crate::system::MemoryMapError) -> Self {
        match e {
            crate::system::MemoryMapError::Read(e) => LoadError::System(e),
            crate::system::MemoryMapError::Iomem { path, err } => LoadError::Iomem { path, err },
        }
    }
}

impl From<InputError> for LoadError {
    fn from(e: InputError) -> Self {
        LoadError::Input(e)
    }
}

impl From<PlanError> for LoadError {
    fn from(e: PlanError) -> Self {
        LoadError::Plan(e)
    }
}

impl From<ReadError> for LoadError {
    fn from(e: ReadError) -> Self {
        LoadError::System(e)
    }
}

impl From<CrashError> for LoadError {
    fn from(e: CrashError) -> Self {
        LoadError::Crash(e)
    }
}

impl From<EntropyError> for LoadError {
    fn from(e: EntropyError) -> Self {
        LoadError::Entropy(e)
    }
}

impl From<BootParamsError> for LoadError {
    fn from(e: BootParamsError) -> Self {
        LoadError::BootParams(e)
    }
}

impl From<FirmwareError> for LoadError {
    fn from(e: FirmwareError) -> Self {
        LoadError::Firmware(e)
    }
}

impl From<HotplugError> for LoadError {
    fn from(e: HotplugError) -> Self {
        LoadError::Hotplug(e)
    }
}

impl From<ConsoleError> for LoadError {
    fn from(e: ConsoleError) -> Self {
        LoadError::Console(e)
    }
}

impl From<PurgatoryImageError> for LoadError {
    fn from(e: PurgatoryImageError) -> Self {
        LoadError::Purgatory(e)
    }
}
