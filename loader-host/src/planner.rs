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
//!    purgatory would apply after the system call (`preflight`).

use std::os::unix::ffi::OsStrExt;

use kexec_purgatory::abi::{PurgatoryParams, PARAM_FLAG_SKIP_DIGESTS};

use crate::arch::contract::{ArchInput, ArchLayout, Initrd};
use crate::arch_spec::Arch;
use crate::crash;
use crate::digest;
use crate::error::LoadError;
use crate::input::Blob;
use crate::kernel_file::{self, KernelFile};
use crate::placement::KexecBuf;
use crate::plan::{CoreSummary, KernelSummary, LoadKind, Plan, PlanError};
use crate::preflight;
use crate::purgatory_image::PurgatoryImage;
use crate::range::Range;
use crate::request::Request;
use crate::system::{self, console, SystemSources};

/// Plan the load `req` describes on the machine `sys` describes. Nothing
/// is loaded; the plan has passed every check the load would make.
pub fn plan(req: &Request, sys: &SystemSources) -> Result<Plan, LoadError> {
    // 1-2. Memory, then the kernel, which decides the architecture.
    let mut file = kernel_file::open(req, sys, None)?;

    // 3. Initrds, concatenated: the image's own first (systemd-stub
    // order), then --initrd's, read straight onto its buffer.
    let own = file.take_own_initrd();
    let initrd = kernel_file::concatenated_initrds(own, &file.req.initrds, &file.initrd_limit)?
        .map(|(data, source)| Initrd { data, source });
    let KernelFile { iomem, total_ram, arch: architecture, image, req, format, source, mut notes, .. } = file;
    let arch = architecture.arch();
    let req = &req;

    // Memory for this kind of load.
    let (free, crash) = match req.crash {
        None => {
            let usable = system::memory::for_kexec(sys, &iomem)?;
            notes.extend(usable.notes);
            (usable.free, None)
        }
        Some(opts) => {
            let setup = crash::prepare(sys, &iomem, arch, opts)?;
            notes.push(setup.note.clone());
            notes.push(format!("crash hotplug: {}", setup.hotplug_why));
            (setup.free.clone(), Some(setup))
        }
    };

    // --mem-min / --mem-max (kexec/kexec.c: mem_min, mem_max bound every
    // locate_hole): clip the memory every placement takes from.
    let mut free = free;
    let window = mem_window(req)?;
    if let Some(window) = window {
        free.clip(window);
        notes.push(format!("segments restricted to {window} (--mem-min/--mem-max)"));
    }
    // A segment that finds no room inside the window says so: the window,
    // not the machine, may be what is too small.
    let in_window = |e: LoadError| match (e, window) {
        (LoadError::Plan(PlanError::NoRoom { what, size, rule }), Some(w)) => LoadError::Plan(PlanError::NoRoom {
            what,
            size,
            rule: format!("{rule}; --mem-min/--mem-max restrict every segment to {w}"),
        }),
        (e, _) => e,
    };

    let mut params = PurgatoryParams::new();
    if !req.verify {
        params.flags |= PARAM_FLAG_SKIP_DIGESTS;
    }
    params.on_failure = req.on_failure.abi();
    let console_given = match &req.serial {
        Some(tty) => {
            params.console = console::for_serial(&sys.sys_root, tty, arch)?;
            true
        }
        None => false,
    };
    let core = crash.as_ref().map(|c| (c.cpu_notes, c.pt_load, c.hotplug));
    let kind = if crash.is_some() { LoadKind::Crash } else { LoadKind::Kexec };

    // 4. The architecture places its segments.
    let input = ArchInput {
        req,
        sys,
        iomem: &iomem,
        kernel: image,
        kernel_source: source,
        initrd,
        free,
        crash,
        params,
        console_given,
        notes,
    };
    let arch_layout = architecture.place(input).map_err(in_window)?;

    // 5. The purgatory, digests, the parameter block.
    let purgatory = PurgatoryImage::for_arch(arch)?;
    let plan = finish(arch, kind, arch_layout, &purgatory, core, req, &format).map_err(in_window)?;

    // 6. Everything the kernel and the purgatory will check, checked now.
    preflight::check(&plan, &purgatory, &iomem, total_ram).map_err(LoadError::Plan)?;
    Ok(plan)
}

/// `[mem_min, mem_max]` as a range, when either is given.
fn mem_window(req: &Request) -> Result<Option<Range>, LoadError> {
    if req.mem_min.is_none() && req.mem_max.is_none() {
        return Ok(None);
    }
    let min = req.mem_min.unwrap_or(0);
    let end = req.mem_max.map_or(u64::MAX, |m| m.saturating_add(1));
    if min >= end {
        return Err(PlanError::Refused {
            rule: format!("--mem-min {min:#x} is above --mem-max {:#x}: no memory is left", end.wrapping_sub(1)),
        }
        .into());
    }
    Ok(Some(Range::new(min, end)))
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
    let ArchLayout {
        mut layout,
        kernel_entry,
        boot_data,
        cmdline,
        mut params,
        purgatory: windows,
        mut notes,
        entry_fill,
    } = a;
    let page_size = layout.page();
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
        let mut image = purgatory.with_params(&params);
        // What the architecture writes into the image from the entry on
        // (ppc64le: the kernel's first bytes in the entry block, docs/abi.md).
        if let Some(fill) = &entry_fill {
            let at = usize::try_from(purgatory.header.entry_offset.saturating_add(fill.offset)).unwrap_or(usize::MAX);
            let end = at.saturating_add(fill.bytes.len());
            let params_at = usize::try_from(purgatory.header.params_offset).unwrap_or(0);
            let params_end = params_at.saturating_add(std::mem::size_of::<PurgatoryParams>());
            match image.get_mut(at..end) {
                Some(dst) if end <= params_at || at >= params_end => dst.copy_from_slice(&fill.bytes),
                _ => {
                    return Err(crate::plan::PlanError::Internal(format!(
                    "the entry fill {at:#x}..{end:#x} is not inside the purgatory image or covers its parameter block"
                ))
                    .into())
                }
            }
        }
        last.data = Blob::new(image);
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
        kernel: KernelSummary {
            path: crate::escape::json_text(req.kernel.as_os_str().as_bytes()),
            format: format.to_string(),
        },
        entry: purg.start + purgatory.header.entry_offset,
        kernel_entry,
        boot_data,
        cmdline,
        elfcorehdr,
        hotplug: core.is_some_and(|c| c.2),
        params,
        notes,
        segments,
        page_size,
    })
}
