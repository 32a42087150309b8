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

use kexec_purgatory::abi::{PurgatoryParams, PARAM_FLAG_SKIP_DIGESTS};

use crate::arch::{self, Arch};
use crate::crash::{self, CrashSetup};
use crate::digest;
use crate::error::LoadError;
use crate::image::{self, Host, KernelImage};
use crate::input::{self, Blob};
use crate::placement::{KexecBuf, Layout, Order};
use crate::plan::{BootData, CoreSummary, KernelSummary, LoadKind, Plan};
use crate::purgatory_image::PurgatoryImage;
use crate::range::{FreeMap, Range};
use crate::request::Request;
use crate::system::iomem::Iomem;
use crate::system::{self, console, SystemSources};
use crate::validate;

/// The initrds, concatenated.
#[derive(Clone, Debug)]
pub struct Initrd {
    pub data: Blob,
    /// Their names, joined with " + ".
    pub source: String,
}

/// What every architecture's planner receives.
pub struct ArchInput<'a> {
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
pub struct PurgatoryWindow {
    pub window: Range,
    pub order: Order,
    pub rule: &'static str,
}

/// What an architecture's planner hands back.
pub struct ArchLayout {
    /// Kernel, initrd, elfcorehdr, boot data: placed, in kexec order.
    pub layout: Layout,
    pub kernel_entry: u64,
    pub boot_data: BootData,
    pub cmdline: String,
    pub params: PurgatoryParams,
    pub purgatory: Vec<PurgatoryWindow>,
    pub notes: Vec<String>,
}

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
    const PLACEABLE: &str = "that can be placed in this machine's usable memory (/proc/iomem)";

    // 2. The kernel, which decides the architecture.
    let file = input::read_file(&req.kernel, placeable, PLACEABLE)?;
    let kernel = image::load(file, req.kernel_type.as_deref(), Host::current())
        .map_err(|err| LoadError::Kernel { path: req.kernel.clone(), err })?;
    let arch = kernel.arch;
    let kernel_source = format!("{} ({})", req.kernel.display(), kernel.format);

    // 3. Initrds, concatenated as the kernel's initramfs unpacker allows.
    let initrd = match req.initrds.as_slice() {
        [] => None,
        paths => Some(Initrd {
            data: input::read_concatenated(paths, placeable, "initrds", PLACEABLE)?,
            source: paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" + "),
        }),
    };

    // Memory for this kind of load.
    let mut notes = Vec::new();
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

    let mut params = PurgatoryParams::new();
    if !req.verify {
        params.flags |= PARAM_FLAG_SKIP_DIGESTS;
    }
    params.on_failure = req.on_failure.abi();
    let console_given = match &req.serial {
        Some(tty) => {
            params.console = console::from_sysfs(&sys.sys_root, tty)?;
            true
        }
        None => false,
    };
    let core = crash.as_ref().map(|c| (c.cpu_notes, c.pt_load, c.hotplug));
    let kind = if crash.is_some() { LoadKind::Crash } else { LoadKind::Kexec };
    let format = kernel.format;

    // 4. The architecture places its segments.
    let input =
        ArchInput { req, sys, iomem: &iomem, kernel, kernel_source, initrd, free, crash, params, console_given, notes };
    let arch_layout = match arch {
        Arch::Arm64 => arch::arm64::plan(input)?,
        Arch::X86_64 => arch::x86_64::plan(input)?,
    };

    // 5. The purgatory, digests, the parameter block.
    let purgatory = PurgatoryImage::for_arch(arch)?;
    let plan = finish(arch, kind, arch_layout, &purgatory, core, req, format)?;

    // 6. Everything the kernel and the purgatory will check, checked now.
    validate::plan(&plan, &purgatory, &iomem).map_err(LoadError::Plan)?;
    Ok(plan)
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
