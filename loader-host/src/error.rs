//! Why a load could not be planned: one error type for the whole pipeline,
//! wrapping each module's typed error. Every message names the file, field
//! or option and the rule; nothing has been loaded when one is returned.

use std::fmt;
use std::path::PathBuf;

use crate::arch::x86_64::boot_params::BootParamsError;
use crate::arch::Arch;
use crate::crash::CrashError;
use crate::dtb::edit::DtbEditError;
use crate::image::ImageError;
use crate::input::InputError;
use crate::plan::PlanError;
use crate::purgatory_image::ImageError as PurgatoryImageError;
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
        path: PathBuf,
        err: ImageError,
    },
    /// A /proc or /sys file.
    System(ReadError),
    Iomem {
        path: PathBuf,
        err: IomemError,
    },
    Hotplug(HotplugError),
    Firmware(FirmwareError),
    Console(ConsoleError),
    Entropy(EntropyError),
    Dtb {
        path: PathBuf,
        err: DtbEditError,
    },
    BootParams(BootParamsError),
    Crash(CrashError),
    /// The command line is longer than the kernel takes.
    CmdlineTooLong {
        len: usize,
        max: usize,
        rule: &'static str,
    },
    /// An option that means nothing for this architecture.
    NotForArch {
        option: &'static str,
        arch: Arch,
        why: &'static str,
    },
    /// With crash hotplug, a segment other than the elfcorehdr starts with
    /// an ELF magic: the kernel would take it for the elfcorehdr.
    ElfMagic(&'static str),
    Plan(PlanError),
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
            Self::ElfMagic(what) => write!(
                f,
                "--hotplug: the {what} starts with an ELF magic; the kernel would mistake it for the elfcorehdr"
            ),
            Self::Plan(e) => write!(f, "{e}"),
            Self::Purgatory(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LoadError {}

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
