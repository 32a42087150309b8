//! The contract between the generic pipeline and one architecture: what
//! the planner hands an architecture ([`ArchInput`]), what it gets back
//! ([`ArchLayout`]), and the hooks an architecture implements
//! ([`Architecture`]). Generic code calls these; it never names an
//! architecture.

use kexec_purgatory::abi::PurgatoryParams;

use crate::arch_spec::{Arch, ArchSpec};
use crate::crash::CrashSetup;
use crate::dtb::handover;
use crate::error::LoadError;
use crate::image::{Kernel, KernelImage};
use crate::input::{self, Blob};
use crate::placement::{Layout, Order};
use crate::plan::BootData;
use crate::range::{FreeMap, Range};
use crate::request::Request;
use crate::system::iomem::Iomem;
use crate::system::SystemSources;

/// The initrds, concatenated.
#[derive(Clone, Debug)]
pub(crate) struct Initrd {
    pub data: Blob,
    /// Their names, joined with " + ".
    pub source: String,
}

/// What every architecture's planner receives.
pub(crate) struct ArchInput<'a> {
    pub req: &'a Request,
    pub sys: &'a SystemSources,
    pub iomem: &'a Iomem,
    pub kernel: KernelImage,
    /// "path (format)", for the plan table.
    pub kernel_source: String,
    pub initrd: Option<Initrd>,
    /// Memory the segments may go to (normal RAM, or the crash ranges).
    pub free: FreeMap,
    pub crash: Option<CrashSetup>,
    /// The purgatory's parameter block so far: flags from the request,
    /// failure action, and the console if `--serial` named one.
    pub params: PurgatoryParams,
    /// Whether `params.console` was set by the caller.
    pub console_given: bool,
    /// Notes for the plan, to which the planner adds its own.
    pub notes: Vec<String>,
}

/// Where the purgatory may go, preferred first.
#[derive(Clone, Debug)]
pub(crate) struct PurgatoryWindow {
    pub window: Range,
    pub order: Order,
    pub rule: &'static str,
}

/// What an architecture's planner hands back.
pub(crate) struct ArchLayout {
    /// Kernel, initrd, elfcorehdr, boot data: placed, in kexec order.
    pub layout: Layout,
    pub kernel_entry: u64,
    pub boot_data: BootData,
    pub cmdline: Vec<u8>,
    pub params: PurgatoryParams,
    pub purgatory: Vec<PurgatoryWindow>,
    pub notes: Vec<String>,
    /// Bytes the architecture writes into the purgatory image, from its
    /// entry point on (ppc64le: the kernel's first 256 bytes into the
    /// entry block, docs/abi.md); None for most.
    pub entry_fill: Option<EntryFill>,
}

/// Bytes written into the purgatory image at `offset` from its entry.
#[derive(Clone, Debug)]
pub(crate) struct EntryFill {
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// A limit on the kernel command line and where it is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdlineLimit {
    /// Bytes allowed, without the NUL.
    pub max: usize,
    /// Where the limit comes from.
    pub rule: &'static str,
}

/// One architecture: its description and the steps only it knows.
pub(crate) trait Architecture: Sync {
    /// Its description.
    fn spec(&self) -> &'static ArchSpec;

    /// Place the kernel, initrd, elfcorehdr and boot data of a kexec_load
    /// image (the purgatory is placed after, in one of the returned
    /// windows).
    fn place(&self, input: ArchInput) -> Result<ArchLayout, LoadError>;

    /// Bytes of memory `kernel` needs from its load address (what
    /// kexec_file_load's own loader must find room for), None when it
    /// overflows 64 bits. Only called for kernels [`Architecture::spec`]'s
    /// formats produce.
    fn kernel_footprint(&self, kernel: &Kernel) -> Option<u64>;

    /// The command-line limit kexec_file_load's loader for `kernel`
    /// enforces, if it has one.
    fn file_load_cmdline_limit(&self, kernel: &Kernel) -> Option<CmdlineLimit>;

    /// The most bytes an initrd may have on this architecture whatever the
    /// machine's size (the window its kernel reads an initrd from), and
    /// the rule, so that a larger file is refused before it is read; None
    /// where only the machine's memory bounds it.
    fn initrd_limit(&self) -> Option<(u64, String)> {
        None
    }

    /// The command line a new kernel gets when the caller gives none
    /// (`CmdlineChoice::Keep`), the same on kexec_load and kexec_file_load
    /// (a capture kernel's crashkernel= is taken out after,
    /// `cmdline::resolve`); None: none at all. By default the running
    /// DTB's /chosen/bootargs, which kexec-tools' arm64 kexec_load keeps
    /// (kexec/arch/arm64/kexec-arm64.c set_bootargs leaves the DTB alone
    /// without --append) and which the kernel's own kexec_file_load DTB
    /// (drivers/of/kexec.c of_kexec_alloc_and_setup_fdt, a copy of the
    /// running one) gets only when it is passed as the command line.
    fn kept_cmdline(&self, sys: &SystemSources) -> Result<Option<Vec<u8>>, LoadError> {
        running_bootargs(sys)
    }

    /// Whether kexec_file_load's loader for this architecture takes a
    /// vmlinux ELF (powerpc's: arch/powerpc/kexec/elf_64.c); the others
    /// take a bzImage or an Image only.
    fn file_load_takes_vmlinux(&self) -> bool {
        false
    }

    /// The handle generic code passes around.
    fn arch(&self) -> Arch {
        Arch(self.spec())
    }
}

/// The most of /sys/firmware/fdt read for its bootargs: the largest DTB a
/// DTB architecture's kernel takes (arm64 MAX_FDT_SIZE, 2 MiB).
const RUNNING_FDT_MAX: u64 = 2 << 20;

/// The running DTB's (/sys/firmware/fdt, the kernel's initial_boot_params)
/// /chosen/bootargs: what a new kernel keeps without --append
/// (`Architecture::kept_cmdline`).
pub(crate) fn running_bootargs(sys: &SystemSources) -> Result<Option<Vec<u8>>, LoadError> {
    let fdt = input::read_file(&sys.fdt_path(), RUNNING_FDT_MAX, "a DTB may have")?;
    Ok(handover::bootargs(&fdt))
}
