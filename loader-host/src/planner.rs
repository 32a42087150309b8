//! One load request, start to finish, for every architecture — a linear
//! flow, each step in its own module:
//!
//! 1. the machine's memory (`system::iomem`, `system::memory` / `crash`),
//! 2. the kernel file, read once and recognised by its format (`input`,
//!    `image`), which decides the architecture,
//! 3. the initrds, concatenated as they are read,
//! 4. the architecture's planner places kernel, initrd, elfcorehdr and boot
//!    data through the one placement primitive (`arch::*`, `placement`),
//! 5. the purgatory is placed, every segment hashed and the parameter
//!    block filled (`digest`, `purgatory_image`),
//! 6. the finished plan is checked against every rule the kernel and the
//!    purgatory would apply after the system call (`validate`).

use kexec_purgatory::abi::{ConsoleDesc, PurgatoryParams, CONSOLE_8250_IO, PARAM_FLAG_SKIP_DIGESTS};

use crate::arch::{self, Arch};
use crate::crash::{self, CrashSetup};
use crate::digest;
use crate::error::LoadError;
use crate::image::{self, Embedded, Host, KernelImage};
use crate::input::{self, Blob};
use crate::placement::{KexecBuf, Layout, Order};
use crate::plan::{BootData, CoreSummary, KernelSummary, LoadKind, Plan};
use crate::purgatory_image::PurgatoryImage;
use crate::range::{FreeMap, Range};
use crate::request::{CmdlineChoice, Request};
use crate::system::iomem::Iomem;
use crate::system::{self, console, SystemSources};
use crate::validate;

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
    pub cmdline: String,
    pub params: PurgatoryParams,
    pub purgatory: Vec<PurgatoryWindow>,
    pub notes: Vec<String>,
}

/// Why an input may be no larger than the usable RAM (or crash
/// reservation) /proc/iomem lists.
pub(crate) const PLACEABLE: &str = "that can be placed in this machine's usable memory (/proc/iomem)";

/// Plan the load `req` describes on the machine `sys` describes. Nothing
/// is loaded; the plan has passed every check the load would make.
pub fn plan(req: &Request, sys: &SystemSources) -> Result<Plan, LoadError> {
    // 1. Memory, so that no input is read that could not be placed.
    let iomem_path = sys.iomem_path();
    let iomem = Iomem::parse(&sys.iomem()?).map_err(|err| LoadError::Iomem { path: iomem_path, err })?;
    if req.crash.is_some() && iomem.crash_kernel().is_empty() {
        return Err(crash::CrashError::NoCrashKernel(sys.iomem_path()).into());
    }
    let placeable = if req.crash.is_some() { iomem.crash_usable() } else { iomem.usable_ram() }.total();

    // 2. The kernel, which decides the architecture.
    let file = input::read_file(&req.kernel, placeable, PLACEABLE)?;
    let mut kernel = image::load(file, req.kernel_type.as_deref(), Host::current())
        .map_err(|err| LoadError::Kernel { path: req.kernel.clone(), err })?;
    let arch = kernel.arch;
    let format = match &kernel.embedded {
        Some(e) => format!("{} ({})", kernel.format, e.inner_format),
        None => kernel.format.to_string(),
    };
    let kernel_source = format!("{} ({format})", req.kernel.display());
    let mut notes = Vec::new();

    // A unified kernel image brings its command line (unless the caller
    // gives one), its initrd and its DTB (image::uki).
    let with_embedded;
    let req = match &kernel.embedded {
        Some(e) => {
            notes.extend(e.notes.iter().cloned());
            with_embedded = embedded_request(req, e, &mut notes);
            &with_embedded
        }
        None => req,
    };

    // 3. Initrds, concatenated as the kernel's initramfs unpacker allows:
    // the image's own first (systemd-stub order), then --initrd's.
    // Taken, not cloned: the buffer is extended in place when --initrd
    // files follow.
    let own = kernel
        .embedded
        .as_mut()
        .and_then(|e| e.initrd.take().map(|d| (d, format!("{} {}", req.kernel.display(), e.initrd_source))));
    let initrd = match (own, req.initrds.as_slice()) {
        (None, []) => None,
        (None, paths) => Some(Initrd {
            data: input::read_concatenated(paths, placeable, "initrds", PLACEABLE)?,
            source: join_paths(paths),
        }),
        (Some((data, source)), []) => Some(Initrd { data, source }),
        (Some((own, source)), paths) => {
            // The kernel's initramfs unpacker skips zero padding between
            // cpio archives only in 4-byte steps (init/initramfs.c).
            let mut head = own.into_vec();
            head.resize(head.len().next_multiple_of(4), 0);
            let data = input::read_concatenated_after(head, paths, placeable, "initrds", PLACEABLE)?;
            Some(Initrd { data, source: format!("{source} + {}", join_paths(paths)) })
        }
    };

    // Memory for this kind of load.
    let (free, crash) = match req.crash {
        None => {
            let usable = system::memory::for_kexec(sys, &iomem)?;
            notes.extend(usable.notes);
            (usable.free, None)
        }
        Some(opts) => {
            let setup = crash::prepare(sys, &iomem, &arch::crash_policy(arch), opts)?;
            notes.push(setup.note.clone());
            (setup.free.clone(), Some(setup))
        }
    };

    // --mem-min / --mem-max (kexec/kexec.c: mem_min, mem_max bound every
    // locate_hole): clip the memory every placement takes from.
    let mut free = free;
    if let Some(window) = mem_window(req)? {
        free.clip(window);
        notes.push(format!("segments restricted to {window} (--mem-min/--mem-max)"));
    }

    let mut params = PurgatoryParams::new();
    if !req.verify {
        params.flags |= PARAM_FLAG_SKIP_DIGESTS;
    }
    params.on_failure = req.on_failure.abi();
    let console_given = match &req.serial {
        Some(tty) => {
            params.console = match (io_port(tty), console::for_tty(&sys.sys_root, tty, arch)) {
                (Some(port), _) => ConsoleDesc { kind: CONSOLE_8250_IO, reserved: 0, base: port },
                (None, Ok(c)) => c,
                // kexec-tools' x86 --serial names (kexec/arch/x86_64/
                // kexec-x86_64.c): ttyS0 0x3f8, ttyS1 0x2f8.
                (None, Err(_)) if arch == Arch::X86_64 && matches!(tty.as_str(), "ttyS0" | "ttyS1") => {
                    ConsoleDesc { kind: CONSOLE_8250_IO, reserved: 0, base: if tty == "ttyS0" { 0x3f8 } else { 0x2f8 } }
                }
                (None, Err(e)) => return Err(e.into()),
            };
            true
        }
        None => false,
    };
    let core = crash.as_ref().map(|c| (c.cpu_notes, c.pt_load, c.hotplug));
    let kind = if crash.is_some() { LoadKind::Crash } else { LoadKind::Kexec };

    // 4. The architecture places its segments.
    let input =
        ArchInput { req, sys, iomem: &iomem, kernel, kernel_source, initrd, free, crash, params, console_given, notes };
    let arch_layout = match arch {
        Arch::Arm64 => arch::arm64::plan(input)?,
        Arch::X86_64 => arch::x86_64::plan(input)?,
        Arch::Riscv64 => arch::riscv64::plan(input)?,
    };

    // 5. The purgatory, digests, the parameter block.
    let purgatory = PurgatoryImage::for_arch(arch)?;
    let plan = finish(arch, kind, arch_layout, &purgatory, core, req, &format)?;

    // 6. Everything the kernel and the purgatory will check, checked now.
    validate::plan(&plan, &purgatory, &iomem).map_err(LoadError::Plan)?;
    Ok(plan)
}

fn join_paths(paths: &[std::path::PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" + ")
}

/// The request with a UKI's `.cmdline` as the command line when the caller
/// gave none (systemd-stub: the embedded command line is the default).
pub(crate) fn embedded_request(req: &Request, e: &Embedded, notes: &mut Vec<String>) -> Request {
    let mut r = req.clone();
    if let (CmdlineChoice::Keep, Some(c)) = (&req.cmdline, &e.cmdline) {
        r.cmdline = CmdlineChoice::Set(c.clone());
        notes.push(format!("command line from the {} .cmdline section", e.container));
    }
    r
}

/// `[mem_min, mem_max]` as a range, when either is given.
fn mem_window(req: &Request) -> Result<Option<Range>, LoadError> {
    if req.mem_min.is_none() && req.mem_max.is_none() {
        return Ok(None);
    }
    let min = req.mem_min.unwrap_or(0);
    let end = req.mem_max.map_or(u64::MAX, |m| m.saturating_add(1));
    if min >= end {
        return Err(crate::plan::PlanError::Refused {
            rule: format!("--mem-min {min:#x} is above --mem-max {:#x}: no memory is left", end.wrapping_sub(1)),
        }
        .into());
    }
    Ok(Some(Range::new(min, end)))
}

/// kexec-tools' x86 `--serial=0x<hex>` form (kexec/arch/x86_64/
/// kexec-x86_64.c arch_process_options): an 8250 at that I/O port.
fn io_port(spec: &str) -> Option<u64> {
    let hex = spec.strip_prefix("0x")?;
    u64::from_str_radix(hex, 16).ok().filter(|p| *p < 65536)
}

/// Place the purgatory, hash every segment, fill the parameter block.
fn finish(
    arch: Arch,
    kind: LoadKind,
    a: ArchLayout,
    purgatory: &PurgatoryImage,
    core: Option<(usize, usize, bool)>,
    req: &Request,
    format: &str,
) -> Result<Plan, LoadError> {
    let ArchLayout { mut layout, kernel_entry, boot_data, cmdline, mut params, purgatory: windows, mut notes } = a;
    let image = Blob::new(purgatory.bytes.to_vec());
    let mut placed = None;
    let mut last_err = None;
    for w in &windows {
        let buf = KexecBuf::purgatory(image.clone(), purgatory.mem_size()).window(w.window, w.rule).order(w.order);
        match layout.add(buf) {
            Ok(r) => {
                placed = Some(r);
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let purg = match (placed, last_err) {
        (Some(r), _) => r,
        (None, Some(e)) => return Err(e.into()),
        (None, None) => return Err(crate::plan::PlanError::Internal("no window for the purgatory".into()).into()),
    };
    let mut segments = layout.into_segments();
    digest::fill(&mut segments);
    let described = &segments[..segments.len() - 1];
    params.kernel_entry = kernel_entry;
    params.boot_data = boot_data.addr;
    params.nr_segments = described.len() as u32;
    for (d, s) in params.segments.iter_mut().zip(described) {
        *d = kexec_purgatory::abi::SegmentDesc {
            mem: s.mem,
            len: s.digest_len,
            sha256: s.sha256,
            kind: s.kind.map_or(0, |k| k as u32),
            flags: if s.excluded { kexec_purgatory::abi::SEGMENT_FLAG_EXCLUDED } else { 0 },
        };
    }
    if let Some(last) = segments.last_mut() {
        last.data = Blob::new(purgatory.with_params(&params));
    }
    if !req.verify {
        notes.push("digest verification is off (-i): the purgatory checks the block and boots without hashing".into());
    }
    if params.console.kind == kexec_purgatory::abi::CONSOLE_NONE {
        notes.push("no console for the purgatory: it runs silently (give --serial TTY)".into());
    }
    let elfcorehdr = core.and_then(|(cpu_notes, pt_load, _)| {
        segments.iter().find(|s| s.kind == Some(kexec_purgatory::abi::SegmentKind::ElfCoreHdr)).map(|s| CoreSummary {
            addr: s.mem,
            cpu_notes,
            pt_load,
        })
    });
    Ok(Plan {
        arch,
        kind,
        kernel: KernelSummary { path: req.kernel.display().to_string(), format: format.to_string() },
        entry: purg.start + purgatory.header.entry_offset,
        kernel_entry,
        boot_data,
        cmdline,
        elfcorehdr,
        hotplug: core.is_some_and(|c| c.2),
        params,
        notes,
        segments,
    })
}
