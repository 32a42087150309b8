//! What kexec_file_load(2) gets for a request (`-s`, or the fallback under
//! lockdown): the kernel's file descriptor, the initrd's, the command line
//! and the flags. The kernel parses, places and (with KEXEC_SIG) verifies
//! the image itself; nothing of rkexec's purgatory is involved.
//!
//! kexec-tools' do_kexec_file_load (kexec/kexec.c) hands the kernel the
//! file, decompressed into a memfd when it was compressed; its uki type
//! (kexec/kexec-uki.c) hands over `.linux` and `.initrd`. rkexec does the
//! same and still refuses before the system call what the kernel's own
//! loaders would refuse (a file that is no kernel, a vmlinux ELF, no crash
//! memory).

use std::path::PathBuf;

use crate::arch::{self, Arch};
use crate::cmdline;
use crate::crash::CrashError;
use crate::error::LoadError;
use crate::image::{self, Host, Kernel, KernelImage};
use crate::input::{self, Blob};
use crate::plan::{LoadKind, PlanError};
use crate::planner::{embedded_request, PLACEABLE};
use crate::request::{CmdlineChoice, Request};
use crate::syscall::{KEXEC_FILE_NO_INITRAMFS, KEXEC_FILE_ON_CRASH};
use crate::system::iomem::Iomem;
use crate::system::SystemSources;

/// The most a kernel or initrd file is read for the file path (the kernel
/// itself refuses what it cannot place).
pub const FILE_LIMIT: u64 = 4 << 30;

/// A file descriptor's contents.
#[derive(Clone, Debug)]
pub enum FileInput {
    /// The file itself is opened and passed (its IMA xattrs and appended
    /// signature stay with it).
    File(PathBuf),
    /// These bytes, in a memfd.
    Memory {
        /// The bytes (a decompressed kernel, a UKI's `.linux` or
        /// `.initrd`, concatenated initrds).
        data: Blob,
        /// Where they came from, for the plan.
        source: String,
    },
}

impl FileInput {
    /// The path, or where the bytes came from and their length, for the
    /// plan table.
    pub fn describe(&self) -> String {
        match self {
            FileInput::File(p) => p.display().to_string(),
            FileInput::Memory { data, source } => format!("{source} ({} bytes, in a memfd)", data.len()),
        }
    }

    /// Bytes the descriptor will hold; None when the file cannot be
    /// stat'ed.
    pub fn byte_len(&self) -> Option<u64> {
        match self {
            FileInput::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            FileInput::Memory { data, .. } => Some(data.len() as u64),
        }
    }
}

/// Everything kexec_file_load will be called with.
#[derive(Clone, Debug)]
pub struct FilePlan {
    /// The kernel's architecture.
    pub arch: Arch,
    /// Normal or crash load (KEXEC_FILE_ON_CRASH).
    pub kind: LoadKind,
    /// The kernel file the request named.
    pub kernel_path: PathBuf,
    /// The recognised format, e.g. "bzImage" or "UKI (bzImage)".
    pub format: String,
    /// What the kernel descriptor (`kernel_fd`) holds.
    pub kernel: FileInput,
    /// What the initrd descriptor (`initrd_fd`) holds; None passes
    /// KEXEC_FILE_NO_INITRAMFS.
    pub initrd: Option<FileInput>,
    /// Without its NUL; the call passes strlen + 1.
    pub cmdline: String,
    /// The call's flags (`KEXEC_FILE_*`).
    pub flags: u64,
    /// Things the user should know (options the kernel ignores, what a UKI
    /// brought).
    pub notes: Vec<String>,
}

/// Plan a kexec_file_load of `req`; `extra_flags` are added to the flags
/// (KEXEC_FILE_NO_CMA, KEXEC_FILE_FORCE_DTB).
pub fn plan(req: &Request, sys: &SystemSources, extra_flags: u64) -> Result<FilePlan, LoadError> {
    let crash = req.crash.is_some();
    let path = sys.iomem_path();
    let iomem = Iomem::parse(&sys.iomem()?).map_err(|err| LoadError::Iomem { path: path.clone(), err })?;
    // kexec/kexec.c main(): a crash load needs the crashkernel= region.
    if crash && iomem.crash_kernel().is_empty() {
        return Err(CrashError::NoCrashKernel(path).into());
    }
    // The kexec_load path's bound (planner::plan): nothing larger than the
    // memory the kernel could place it in is read or handed over.
    let placeable = if crash { iomem.crash_usable() } else { iomem.usable_ram() }.total();
    let limit = if placeable < FILE_LIMIT {
        Limit { bytes: placeable, why: PLACEABLE }
    } else {
        Limit { bytes: FILE_LIMIT, why: "kexec_file_load reads" }
    };
    let file = input::read_file(&req.kernel, limit.bytes, limit.why)?;
    let mut parsed = image::load(file, req.kernel_type.as_deref(), Host::current())
        .map_err(|err| LoadError::Kernel { path: req.kernel.clone(), err })?;
    let mut notes = Vec::new();
    let with_embedded;
    let req = match &parsed.embedded {
        Some(e) => {
            notes.extend(e.notes.iter().cloned());
            with_embedded = embedded_request(req, e, &mut notes);
            &with_embedded
        }
        None => req,
    };
    let format = match &parsed.embedded {
        Some(e) => format!("{} ({})", parsed.format, e.inner_format),
        None => parsed.format.to_string(),
    };
    let kernel = kernel_input(req, &parsed, &mut notes)?;
    check_footprint(req, &parsed, placeable)?;
    // Taken, not cloned: the buffer is extended in place when --initrd
    // files follow.
    let own = parsed.embedded.as_mut().and_then(|e| e.initrd.take().map(|d| (d, e.initrd_source.clone())));
    let initrd = initrd_input(req, own, limit)?;

    // Command line: kexec-tools passes --append / --reuse-cmdline's text
    // (concat_cmdline), or an empty one.
    let cmdline = match &req.cmdline {
        CmdlineChoice::Keep => String::new(),
        CmdlineChoice::Set(s) => s.clone(),
        CmdlineChoice::Reuse(extra) => cmdline::concat(&cmdline::inherited(&sys.cmdline()?, crash), extra),
    };
    if cmdline.contains('\0') {
        return Err(PlanError::Refused { rule: "the command line contains a NUL byte".into() }.into());
    }
    check_cmdline(&cmdline, &parsed)?;
    let mut flags = extra_flags;
    if crash {
        flags |= KEXEC_FILE_ON_CRASH;
    }
    if initrd.is_none() {
        flags |= KEXEC_FILE_NO_INITRAMFS;
    }

    // What only rkexec's kexec_load path uses (kexec-tools ignores these
    // on the file path too, kexec/kexec.c do_kexec_file_load).
    let ignored: [(bool, &str); 7] = [
        (req.dtb.is_some(), "--dtb is ignored: kexec_file_load builds the DTB itself"),
        (
            !req.dtb_set.is_empty() || !req.dtb_delete.is_empty(),
            "--dtb-set/--dtb-delete are ignored: kexec_file_load builds the DTB itself",
        ),
        (
            req.mem_min.is_some() || req.mem_max.is_some(),
            "--mem-min/--mem-max are ignored: the kernel places kexec_file_load's segments",
        ),
        (
            req.serial.is_some() || req.console_serial,
            "--serial/--console-serial are ignored: there is no purgatory of ours to print",
        ),
        (!req.verify, "-i is ignored: the kernel's own purgatory always checks its digests"),
        (
            req.crash.is_some_and(|c| c.hotplug),
            "--hotplug: kexec_file_load images are updated on hotplug by the kernel itself (CONFIG_CRASH_HOTPLUG)",
        ),
        (
            parsed.embedded.as_ref().is_some_and(|e| e.dtb.is_some()),
            "the UKI's .dtb is not used: kexec_file_load builds the DTB itself",
        ),
    ];
    notes.extend(ignored.iter().filter(|(on, _)| *on).map(|(_, n)| n.to_string()));
    Ok(FilePlan {
        arch: parsed.arch,
        kind: if crash { LoadKind::Crash } else { LoadKind::Kexec },
        kernel_path: req.kernel.clone(),
        format,
        kernel,
        initrd,
        cmdline,
        flags,
        notes,
    })
}

/// The kernel's bytes as the kernel's kexec_file loaders take them: a
/// bzImage (arch/x86/kernel/kexec-bzimage64.c) or an uncompressed arm64 or
/// riscv64 Image (arch/arm64/kernel/kexec_image.c,
/// arch/riscv/kernel/kexec_image.c; trixie's riscv64 kernel has no
/// kexec_file_load at all).
fn kernel_input(req: &Request, k: &KernelImage, notes: &mut Vec<String>) -> Result<FileInput, LoadError> {
    let path = req.kernel.display();
    match (&k.kernel, &k.embedded) {
        (Kernel::Elf(_), _) => Err(PlanError::Refused {
            rule: format!(
                "{path}: kexec_file_load takes a bzImage or an arm64 Image, not a vmlinux ELF (kexec-tools fails the same way); load it with kexec_load (-c, or rkexec's default)"
            ),
        }
        .into()),
        (Kernel::BzImage(_), Some(e)) => {
            notes.push(format!("{} .linux ({}) is passed in a memfd", e.container, e.inner_format));
            Ok(FileInput::Memory { data: e.linux.clone(), source: format!("{path} .linux") })
        }
        (Kernel::BzImage(_), None) => Ok(FileInput::File(req.kernel.clone())),
        (Kernel::Image(i), e) => {
            if e.is_none() && matches!(k.format, "Image" | "riscv64 Image") {
                return Ok(FileInput::File(req.kernel.clone()));
            }
            let what = match e {
                Some(e) => format!("{path} .linux ({})", e.inner_format),
                None => format!("{path} ({})", k.format),
            };
            notes.push(format!(
                "{what} is passed decompressed, in a memfd ({}'s kexec_file_load takes only an Image); a signature on the file does not carry over",
                k.arch
            ));
            Ok(FileInput::Memory { data: i.data.clone(), source: format!("{what}, decompressed") })
        }
    }
}

/// The most bytes a file may have, and why.
#[derive(Clone, Copy)]
struct Limit {
    bytes: u64,
    why: &'static str,
}

/// The kernel's memory footprint must fit the memory it can be placed in:
/// the kernel's own loaders would fail to place it (kexec_add_buffer), and
/// the kexec_load path refuses the same kernel ("no room for the kernel").
fn check_footprint(req: &Request, k: &KernelImage, placeable: u64) -> Result<(), LoadError> {
    let footprint = match (&k.kernel, k.arch) {
        // booting.rst §4: text_offset + image_size from a 2 MiB aligned base.
        (Kernel::Image(i), Arch::Arm64) => i.text_offset.checked_add(i.mem_size),
        // riscv64's text_offset is an alignment, not a lead.
        (Kernel::Image(i), _) => Some(i.mem_size),
        // boot.rst init_size: the linear memory the kernel needs.
        (Kernel::BzImage(b), _) => Some(b.init_size),
        (Kernel::Elf(_), _) => return Ok(()),
    };
    match footprint {
        Some(n) if n <= placeable => Ok(()),
        n => Err(PlanError::Refused {
            rule: format!(
                "{}: no room for the kernel ({} bytes): more than the {placeable} bytes {PLACEABLE}",
                req.kernel.display(),
                n.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string()),
            ),
        }
        .into()),
    }
}

/// The command line must fit what the new kernel takes, by the rule the
/// kexec_load path applies: arm64 and riscv64 copy `bootargs` into a
/// COMMAND_LINE_SIZE buffer and truncate the rest silently; x86's
/// kexec_file bzImage loader refuses a line whose length with its NUL,
/// plus room for `elfcorehdr=0x<64-bit>` (30 bytes), exceeds cmdline_size
/// (arch/x86/kernel/kexec-bzimage64.c, every load type).
fn check_cmdline(cmdline: &str, k: &KernelImage) -> Result<(), LoadError> {
    const ELFCOREHDR_STR_LEN: usize = 30;
    let (max, rule) = match (&k.kernel, k.arch) {
        (Kernel::BzImage(b), _) => (
            (b.cmdline_size as usize).saturating_sub(1 + ELFCOREHDR_STR_LEN),
            "kexec_file_load's bzImage loader (the line, its NUL and 30 bytes for elfcorehdr= within cmdline_size, arch/x86/kernel/kexec-bzimage64.c)",
        ),
        (_, Arch::Arm64) => (arch::arm64::BOOT.command_line_size - 1, arch::arm64::BOOT.command_line_rule),
        (_, Arch::Riscv64) => (arch::riscv64::BOOT.command_line_size - 1, arch::riscv64::BOOT.command_line_rule),
        (_, Arch::X86_64) => return Ok(()),
    };
    if cmdline.len() > max {
        return Err(LoadError::CmdlineTooLong { len: cmdline.len(), max, rule });
    }
    Ok(())
}

/// `own`: the kernel file's own initrd (a UKI's) and where it came from.
fn initrd_input(req: &Request, own: Option<(Blob, String)>, limit: Limit) -> Result<Option<FileInput>, LoadError> {
    Ok(match (own, req.initrds.as_slice()) {
        (None, []) => None,
        (None, [one]) => {
            // Handed over as a descriptor, unread: checked as a read would be.
            let size = input::regular_size(one)?;
            if size > limit.bytes {
                let err = input::InputError::TooLarge { path: one.clone(), size, limit: limit.bytes, why: limit.why };
                return Err(err.into());
            }
            Some(FileInput::File(one.clone()))
        }
        (Some((own, s)), []) => Some(FileInput::Memory { data: own, source: format!("{} {s}", req.kernel.display()) }),
        (own, paths) => {
            let mut head = Vec::new();
            let mut sources = Vec::new();
            if let Some((d, s)) = own {
                head = d.into_vec();
                sources.push(format!("{} {s}", req.kernel.display()));
                // cpio archives are concatenated on 4-byte boundaries
                // (init/initramfs.c skips zero padding in 4-byte steps).
                head.resize(head.len().next_multiple_of(4), 0);
            }
            let data = input::read_concatenated_after(head, paths, limit.bytes, "initrds", limit.why)?;
            sources.extend(paths.iter().map(|p| p.display().to_string()));
            Some(FileInput::Memory { data, source: sources.join(" + ") })
        }
    })
}
