//! The first half of every load, for kexec_load (`planner`) and
//! kexec_file_load (`file_load`) alike: the machine's memory, which bounds
//! what may be read; the kernel file, read once and recognised by its
//! format; the architecture it is for; and what a unified kernel image
//! brings (its `.cmdline` as the default command line, its initrd).

use crate::arch;
use crate::arch::contract::Architecture;
use crate::crash::CrashError;
use crate::error::LoadError;
use crate::image::{self, Host, KernelImage};
use crate::input::{self, Blob};
use crate::plan::PlanError;
use crate::request::{CmdlineChoice, Request};
use crate::system::iomem::Iomem;
use crate::system::SystemSources;

/// Why an input may be no larger than the usable RAM (or crash
/// reservation) /proc/iomem lists.
pub(crate) const PLACEABLE: &str = "that can be placed in this machine's usable memory (/proc/iomem)";

/// A bound on what is read: the most bytes, and why.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limit {
    pub bytes: u64,
    pub why: &'static str,
}

/// The request's kernel, read and recognised on this machine.
pub(crate) struct KernelFile {
    /// /proc/iomem as read.
    pub iomem: Iomem,
    /// What any input may be at most: the memory the segments could take
    /// (usable RAM, or the crash reservation for `-p`), or the caller's
    /// lower cap.
    pub limit: Limit,
    /// Bytes of that memory (the kernel's footprint must fit it).
    pub placeable: u64,
    /// The architecture the kernel is for.
    pub arch: &'static dyn Architecture,
    /// The parsed kernel.
    pub image: KernelImage,
    /// The request as the kernel file completes it: a UKI's `.cmdline` is
    /// the command line when the caller gave none (systemd-stub: the
    /// embedded command line is the default).
    pub req: Request,
    /// The format, with a container's inner one: "UKI (bzImage)".
    pub format: String,
    /// "path (format)", for the plan table.
    pub source: String,
    /// What the plan should say about the file.
    pub notes: Vec<String>,
}

/// Read `req.kernel` on the machine `sys` describes; nothing larger than
/// `cap` (when given) or than the memory it could be placed in is read.
pub(crate) fn open(req: &Request, sys: &SystemSources, cap: Option<Limit>) -> Result<KernelFile, LoadError> {
    // Memory first, so that no input is read that could not be placed.
    let path = sys.iomem_path();
    let iomem = sys.memory_map()?;
    let crash = req.crash.is_some();
    // kexec/kexec.c main(): a crash load needs the crashkernel= region.
    if crash && iomem.crash_kernel().is_empty() {
        return Err(CrashError::NoCrashKernel(path).into());
    }
    let placeable = if crash { iomem.crash_usable() } else { iomem.usable_ram() }.total();
    let limit = match cap {
        Some(c) if c.bytes < placeable => c,
        _ => Limit { bytes: placeable, why: PLACEABLE },
    };

    let file = input::read_file(&req.kernel, limit.bytes, limit.why)?;
    let image = image::load(file, req.kernel_type.as_deref(), Host { page_size: sys.page_size })
        .map_err(|err| LoadError::Kernel { path: req.kernel.clone(), err })?;
    let arch = arch::for_machine(image.machine).ok_or_else(|| {
        let name = kexec_purgatory::elf::machine_name(image.machine).unwrap_or("unknown");
        PlanError::Refused {
            rule: format!(
                "{}: a kernel for ELF machine {} ({name}), which rkexec does not load",
                req.kernel.display(),
                image.machine
            ),
        }
    })?;
    let format = match &image.embedded {
        Some(e) => format!("{} ({})", image.format, e.inner_format),
        None => image.format.to_string(),
    };
    let source = format!("{} ({format})", req.kernel.display());

    let mut notes = Vec::new();
    let mut req = req.clone();
    if let Some(e) = &image.embedded {
        notes.extend(e.notes.iter().cloned());
        if let (CmdlineChoice::Keep, Some(c)) = (&req.cmdline, &e.cmdline) {
            req.cmdline = CmdlineChoice::Set(c.clone());
            notes.push(format!("command line from the {} .cmdline section", e.container));
        }
    }
    Ok(KernelFile { iomem, limit, placeable, arch, image, req, format, source, notes })
}

impl KernelFile {
    /// The kernel file's own initrd (a UKI's `.ucode` + `.initrd`) and
    /// where it came from, taken out of the image; None when it has none or
    /// when `--initrd` is given, which replaces it as in kexec-tools (its
    /// UKI type hands the loaders `.initrd` as implicit_initrd_fd, used
    /// only without --initrd: kexec/arch/x86_64/kexec-bzImage64.c
    /// bzImage64_load_file, kexec/arch/arm64/kexec-image-arm64.c
    /// image_arm64_load; `.ucode` it never passes). kdumpctl's
    /// `--initrd=kdump.img` must not bring the boot initramfs into the
    /// crash reservation.
    pub fn take_own_initrd(&mut self) -> Option<(Blob, String)> {
        let path = self.req.kernel.display().to_string();
        let e = self.image.embedded.as_mut()?;
        let source = format!("{path} {}", e.initrd_source);
        let own = e.initrd.take().map(|d| (d, source));
        if own.is_some() && !self.req.initrds.is_empty() {
            let container = e.container;
            self.notes.push(format!("--initrd replaces the {container}'s {}, as in kexec-tools", e.initrd_source));
            return None;
        }
        own
    }
}

/// `own` (a UKI's initrd) followed by the `--initrd` files, concatenated as
/// the kernel's initramfs unpacker allows: it skips zero padding between
/// cpio archives only in 4-byte steps (init/initramfs.c), so `own` is
/// padded to 4 bytes first. None when there is neither.
pub(crate) fn concatenated_initrds(
    own: Option<(Blob, String)>,
    paths: &[std::path::PathBuf],
    limit: Limit,
) -> Result<Option<(Blob, String)>, LoadError> {
    let names = || paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" + ");
    Ok(match (own, paths) {
        (None, []) => None,
        (None, paths) => Some((input::read_concatenated(paths, limit.bytes, "initrds", limit.why)?, names())),
        (Some(own), []) => Some(own),
        (Some((own, source)), paths) => {
            let mut head = own.into_vec();
            head.resize(head.len().next_multiple_of(4), 0);
            let data = input::read_concatenated_after(head, paths, limit.bytes, "initrds", limit.why)?;
            Some((data, format!("{source} + {}", names())))
        }
    })
}
