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

use crate::arch::contract::Architecture;
use crate::arch_spec::Arch;
use crate::cmdline;
use crate::error::LoadError;
use crate::escape;
use crate::image::{Kernel, KernelImage};
use crate::input::{self, Blob, InputError};
use crate::kernel_file::{self, KernelFile, Limit, PLACEABLE};
use crate::plan::{LoadKind, PlanError};
use crate::range::PAGE;
use crate::request::Request;
use crate::system::SystemSources;
use crate::uapi::{KEXEC_FILE_NO_INITRAMFS, KEXEC_FILE_ON_CRASH};

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
            FileInput::File(p) => crate::escape::path(p).to_string(),
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
    /// Bytes, without its NUL; the call passes strlen + 1.
    pub cmdline: Vec<u8>,
    /// The call's flags (`KEXEC_FILE_*`).
    pub flags: u64,
    /// Things the user should know (options the kernel ignores, what a UKI
    /// brought).
    pub notes: Vec<String>,
}

/// Plan a kexec_file_load of `req`; `extra_flags` are added to the flags
/// (KEXEC_FILE_NO_CMA, KEXEC_FILE_FORCE_DTB).
pub fn file_plan(req: &Request, sys: &SystemSources, extra_flags: u64) -> Result<FilePlan, LoadError> {
    let crash = req.crash.is_some();
    // The kexec_load path's bound (kernel_file::open): nothing larger than
    // the memory the kernel could place it in is read or handed over, nor
    // more than kexec_file_load reads.
    let cap = Limit { bytes: FILE_LIMIT, why: "kexec_file_load reads".into() };
    let mut file = kernel_file::open(req, sys, Some(cap))?;
    let kernel = kernel_input(&file)?;
    check_footprint(&file)?;
    let own = file.take_own_initrd();
    let initrd = initrd_input(&file, own)?;
    check_half_of_ram(&file, initrd.as_ref())?;
    let KernelFile { arch: architecture, image: parsed, req, format, mut notes, .. } = file;
    notes.extend(kernel.1);
    let kernel = kernel.0;
    let req = &req;

    // Command line: --append / --reuse-cmdline's text (kexec-tools'
    // concat_cmdline), else what the architecture keeps, the same line the
    // kexec_load path gives (`Architecture::kept_cmdline`); a capture
    // kernel's without elfcorehdr= (the kernel adds its own:
    // cmdline::resolve).
    let running = || sys.cmdline().map_err(LoadError::System);
    let keep = || architecture.kept_cmdline(sys);
    let cmdline = cmdline::resolve(&req.cmdline, running, keep, crash, &mut notes)?.unwrap_or_default();
    if cmdline.contains(&0) {
        return Err(PlanError::Refused {
            rule: "the command line given (--append/--command-line) contains a NUL byte".into(),
        }
        .into());
    }
    check_cmdline(&cmdline, architecture, &parsed)?;
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
            req.crash.is_some_and(|c| c.hotplug == crate::request::Hotplug::Required),
            "--hotplug: kexec_file_load images are updated on hotplug by the kernel itself (CONFIG_CRASH_HOTPLUG)",
        ),
        (
            parsed.embedded.as_ref().is_some_and(|e| e.dtb.is_some()),
            "the UKI's .dtb is not used: kexec_file_load builds the DTB itself",
        ),
    ];
    notes.extend(ignored.iter().filter(|(on, _)| *on).map(|(_, n)| n.to_string()));
    Ok(FilePlan {
        arch: architecture.arch(),
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

/// The kernel's bytes as the kernel's kexec_file loaders take them: the
/// kernel file itself when it is the kernel as is (a bzImage,
/// arch/x86/kernel/kexec-bzimage64.c; an uncompressed Image,
/// arch/{arm64,riscv}/kernel/kexec_image.c), else the kernel taken out of
/// its container or decompressed, in a memfd; and the notes that says.
fn kernel_input(file: &KernelFile) -> Result<(FileInput, Vec<String>), LoadError> {
    let (req, k) = (&file.req, &file.image);
    let path = crate::escape::path(&req.kernel);
    match (&k.kernel, &k.embedded) {
        (Kernel::Elf(_), _) if !file.arch.file_load_takes_vmlinux() => Err(PlanError::Refused {
            rule: format!(
                "{path}: kexec_file_load takes a bzImage or an Image, not a vmlinux ELF (kexec-tools fails the same way); load it with kexec_load (-c, or rkexec's default)"
            ),
        }
        .into()),
        (Kernel::BzImage(_), Some(e)) => Ok((
            FileInput::Memory { data: e.linux.clone(), source: format!("{path} .linux") },
            vec![format!("{} .linux ({}) is passed in a memfd", e.container, e.inner_format)],
        )),
        (_, None) if k.whole_file => Ok((FileInput::File(req.kernel.clone()), Vec::new())),
        (Kernel::BzImage(_) | Kernel::Elf(_), _) => Err(PlanError::Internal(format!(
            "{path}: a {} to be handed over is neither the file itself nor in a container",
            k.format
        ))
        .into()),
        (Kernel::Image(i), e) => {
            let what = match e {
                Some(e) => format!("{path} .linux ({})", e.inner_format),
                None => format!("{path} ({})", k.format),
            };
            let note = format!(
                "{what} is passed decompressed, in a memfd ({}'s kexec_file_load takes only an Image); a signature on the file does not carry over",
                file.arch.spec().name
            );
            Ok((FileInput::Memory { data: i.data.clone(), source: format!("{what}, decompressed") }, vec![note]))
        }
    }
}

/// The kernel's memory footprint must fit the memory it can be placed in:
/// the kernel's own loaders would fail to place it (kexec_add_buffer), and
/// the kexec_load path refuses the same kernel ("no room for the kernel").
fn check_footprint(file: &KernelFile) -> Result<(), LoadError> {
    if matches!(file.image.kernel, Kernel::Elf(_)) && !file.arch.file_load_takes_vmlinux() {
        // Refused by kernel_input: kexec_file_load takes no vmlinux.
        return Ok(());
    }
    let placeable = file.placeable;
    match file.arch.kernel_footprint(&file.image.kernel) {
        Some(n) if n <= placeable => Ok(()),
        n => Err(PlanError::Refused {
            rule: format!(
                "{}: no room for the kernel ({} bytes): more than the {placeable} bytes {PLACEABLE}",
                crate::escape::path(&file.req.kernel),
                n.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string()),
            ),
        }
        .into()),
    }
}

/// kexec_file_load applies kexec_load's segment rules to the segments its
/// loader made (kernel/kexec_file.c kimage_file_alloc_init calls
/// sanity_check_segment_list): no segment, and not all of them together,
/// may take more than half of RAM (totalram_pages() / 2), or the call
/// fails with EINVAL. The kernel's segment spans its footprint (bzImage
/// init_size, arch/x86/kernel/kexec-bzimage64.c; an Image's image_size,
/// arch/{arm64,riscv}/kernel/kexec_image.c), the initrd its length; the
/// boot data and purgatory add pages this check leaves out.
fn check_half_of_ram(file: &KernelFile, initrd: Option<&FileInput>) -> Result<(), LoadError> {
    let pages = |n: u64| n.div_ceil(PAGE).saturating_mul(PAGE);
    let kernel = file.arch.kernel_footprint(&file.image.kernel).map_or(u64::MAX, pages);
    let initrd = initrd.map_or(Some(0), FileInput::byte_len).map_or(u64::MAX, pages);
    let half = file.total_ram.half();
    let total = kernel.saturating_add(initrd);
    if total <= half {
        return Ok(());
    }
    Err(PlanError::Refused {
        rule: format!(
            "kexec_file_load would fail with EINVAL: the kernel ({kernel} bytes) and initrd ({initrd} bytes) take {total} bytes, more than half of RAM ({half} of {} bytes, {}; kernel/kexec_core.c sanity_check_segment_list)",
            file.total_ram.bytes, file.total_ram.source
        ),
    }
    .into())
}

/// The command line must fit what the new kernel takes, by the rule its
/// kexec_file loader applies (`Architecture::file_load_cmdline_limit`):
/// arm64 and riscv64 copy `bootargs` into a COMMAND_LINE_SIZE buffer and
/// truncate the rest silently; x86's bzImage loader refuses a line too
/// long for cmdline_size.
fn check_cmdline(cmdline: &[u8], arch: &dyn Architecture, k: &KernelImage) -> Result<(), LoadError> {
    match arch.file_load_cmdline_limit(&k.kernel) {
        Some(limit) if cmdline.len() > limit.max => {
            Err(LoadError::CmdlineTooLong { len: cmdline.len(), max: limit.max, rule: limit.rule })
        }
        _ => Ok(()),
    }
}

/// The initrd descriptor's contents: one `--initrd` file handed over as
/// itself (unread, but checked as a read would be), else `own` (a UKI's)
/// and the files concatenated in a memfd.
fn initrd_input(file: &KernelFile, own: Option<(Blob, String)>) -> Result<Option<FileInput>, LoadError> {
    let limit = &file.initrd_limit;
    if let (None, [one]) = (&own, file.req.initrds.as_slice()) {
        let size = input::regular_size(one)?;
        if size > limit.bytes {
            let err = InputError::TooLarge { path: one.clone(), size, limit: limit.bytes, why: limit.why.clone() };
            return Err(err.into());
        }
        // The same refusal as the kexec_load path's, which the kernel would
        // make too (fs/kernel_read_file.c: an empty file is EINVAL).
        if size == 0 {
            return Err(InputError::EmptyInitrd { source: escape::path(one).to_string() }.into());
        }
        return Ok(Some(FileInput::File(one.clone())));
    }
    Ok(kernel_file::concatenated_initrds(own, &file.req.initrds, limit)?
        .map(|(data, source)| FileInput::Memory { data, source }))
}
