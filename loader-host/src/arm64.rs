//! From a load request to an arm64 [`Plan`]: read the kernel, initrds and
//! DTB, find usable memory, edit the DTB, choose the console, lay out the
//! segments and fill the purgatory's parameter block. Nothing is loaded.

use std::fmt;
use std::path::PathBuf;

use kexec_purgatory::abi::{
    ConsoleDesc, PurgatoryParams, ON_FAILURE_HALT, PARAM_FLAG_REFRESH_SEEDS, PARAM_FLAG_SET_BOOT_CPU,
    PARAM_FLAG_SKIP_DIGESTS, PSCI_CONDUIT_HVC, PSCI_CONDUIT_NONE, PSCI_CONDUIT_SMC,
};

use crate::elfcore;
use crate::handover_dtb::{self, DtbEdits};
use crate::iomem::Iomem;
use crate::kernel_image::{self, Arm64Kernel};
use crate::layout::{FreeMap, Range};
use crate::memory_hotplug;
use crate::plan::{plan_arm64, ExtraSegment, KernelInput, Placed, Plan, PlanOptions};
use crate::purgatory_image::PurgatoryImage;
use crate::sources::{read, SystemSources};

/// The inputs, typed: kernel, initrds (concatenated), optional DTB and
/// command line — what the proposed kexec_file_load2's
/// `struct kexec_file_fd { type; fd; }[]` carried, done in userspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Kernel(PathBuf),
    Initrd(PathBuf),
    Dtb(PathBuf),
    Cmdline(String),
}

/// How the new kernel's command line is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdlineChoice {
    /// Keep the DTB's bootargs (kexec-tools' behaviour without --append).
    Keep,
    /// Set exactly this.
    Set(String),
    /// The running kernel's /proc/cmdline, then this appended (may be empty).
    Reuse(String),
}

/// Everything `rkexec -l` needs to build a plan.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    pub inputs: Vec<Input>,
    pub cmdline: CmdlineChoice,
    /// Console chosen by --serial (else the DTB's stdout-path).
    pub console: Option<ConsoleDesc>,
    pub verify: bool,
    pub on_failure: u32,
    /// Extra property edits (`--dtb-set`, `--dtb-delete`).
    pub dtb_set: Vec<(String, String)>,
    pub dtb_delete: Vec<String>,
    /// `-p`: a crash (kdump) kernel.
    pub crash: Option<CrashOptions>,
}

/// kdump specifics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashOptions {
    /// `--hotplug`: the kernel may rewrite the elfcorehdr after load.
    pub hotplug: bool,
    /// Exclude the rewritable segments from the digest (true but for the
    /// `--debug-hash-excluded` negative control).
    pub exclude: bool,
}

impl LoadRequest {
    pub fn new(kernel: PathBuf) -> Self {
        LoadRequest {
            inputs: vec![Input::Kernel(kernel)],
            cmdline: CmdlineChoice::Keep,
            console: None,
            verify: true,
            on_failure: ON_FAILURE_HALT,
            dtb_set: Vec::new(),
            dtb_delete: Vec::new(),
            crash: None,
        }
    }

    fn kernel(&self) -> Option<&PathBuf> {
        self.inputs.iter().find_map(|i| if let Input::Kernel(p) = i { Some(p) } else { None })
    }

    fn initrds(&self) -> impl Iterator<Item = &PathBuf> {
        self.inputs.iter().filter_map(|i| if let Input::Initrd(p) = i { Some(p) } else { None })
    }

    fn dtb(&self) -> Option<&PathBuf> {
        self.inputs.iter().find_map(|i| if let Input::Dtb(p) = i { Some(p) } else { None })
    }
}

/// Why a plan could not be made; every variant names its file or field.
#[derive(Debug)]
pub enum LoadError {
    NoKernel,
    Read(crate::sources::ReadError),
    Kernel {
        path: PathBuf,
        err: kernel_image::KernelImageError,
    },
    Iomem {
        path: PathBuf,
        err: crate::iomem::IomemError,
    },
    Hotplug(memory_hotplug::HotplugError),
    Dtb {
        path: PathBuf,
        err: String,
    },
    Plan(crate::plan::PlanError),
    Entropy(String),
    /// `-p` without a crashkernel= reservation.
    NoCrashKernel(PathBuf),
    ElfCore(crate::elfcore::ElfCoreError),
    /// A segment other than the elfcorehdr starts with an ELF magic: the
    /// kernel's crash hotplug would take the last one for the elfcorehdr.
    ElfMagic(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NoKernel => write!(f, "no kernel image given"),
            LoadError::Read(e) => write!(f, "{e}"),
            LoadError::Kernel { path, err } => write!(f, "{}: {err}", path.display()),
            LoadError::Iomem { path, err } => write!(f, "{}: {err}", path.display()),
            LoadError::Hotplug(e) => write!(f, "{e}"),
            LoadError::Dtb { path, err } => write!(f, "{}: {err}", path.display()),
            LoadError::Plan(e) => write!(f, "{e}"),
            LoadError::Entropy(e) => write!(f, "getrandom: {e}"),
            LoadError::NoCrashKernel(p) => write!(
                f,
                "{}: no \"Crash kernel\" range: boot the running kernel with crashkernel=256M (or larger) to load a crash kernel",
                p.display()
            ),
            LoadError::ElfCore(e) => write!(f, "{e}"),
            LoadError::ElfMagic(what) => write!(
                f,
                "--hotplug: the {what} starts with an ELF magic; the kernel would mistake it for the elfcorehdr"
            ),
        }
    }
}

impl std::error::Error for LoadError {}

/// How the seed bytes were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntropyQuality {
    /// The CRNG was initialised.
    Full,
    /// The CRNG was not yet initialised (early boot): GRND_INSECURE bytes
    /// rather than blocking the load; the purgatory still mixes in RNDR.
    Early,
}

fn getrandom_flags(buf: &mut [u8], flags: libc::c_uint) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writes at most buf.len() - done bytes into buf[done..].
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, flags) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
}

/// Seed bytes from getrandom(2) without blocking the load on an
/// uninitialised CRNG (kexec early in boot, as kdump setups do).
pub fn random_bytes(buf: &mut [u8]) -> Result<EntropyQuality, LoadError> {
    const GRND_INSECURE: libc::c_uint = 0x0004; // Linux 5.6+
    match getrandom_flags(buf, libc::GRND_NONBLOCK) {
        Ok(()) => return Ok(EntropyQuality::Full),
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
        Err(e) => return Err(LoadError::Entropy(e.to_string())),
    }
    match getrandom_flags(buf, GRND_INSECURE) {
        Ok(()) => Ok(EntropyQuality::Early),
        // Older kernels: wait for the pool after all.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            getrandom_flags(buf, 0).map_err(|e| LoadError::Entropy(e.to_string()))?;
            Ok(EntropyQuality::Full)
        }
        Err(e) => Err(LoadError::Entropy(e.to_string())),
    }
}

/// Usable memory for a normal load: System RAM minus reserved children,
/// minus hot-removable blocks (seed 002: a block that can be offlined
/// before the reboot must not hold a segment). Returns notes for the plan.
pub fn usable_memory(src: &SystemSources) -> Result<(FreeMap, Vec<String>), LoadError> {
    let path = src.iomem_path();
    let text = src.iomem().map_err(LoadError::Read)?;
    let iomem = Iomem::parse(&text).map_err(|err| LoadError::Iomem { path: path.clone(), err })?;
    let mut free = iomem.usable_ram();
    let mut notes = Vec::new();
    for r in iomem.driver_managed_ram() {
        notes.push(format!("not using driver-managed RAM {r} (hot-pluggable by its driver)"));
    }
    let removable = memory_hotplug::hot_removable_ranges(&src.memory_blocks_dir()).map_err(LoadError::Hotplug)?;
    for r in merge(removable) {
        free.remove(r);
        notes.push(format!("not using hot-removable memory {r} (Movable zone)"));
    }
    Ok((free, notes))
}

fn merge(ranges: Vec<Range>) -> Vec<Range> {
    FreeMap::new(ranges).ranges().to_vec()
}

/// Build the plan for an arm64 kexec_load.
pub fn plan(req: &LoadRequest, src: &SystemSources, purgatory: &PurgatoryImage) -> Result<Plan, LoadError> {
    let kernel_path = req.kernel().ok_or(LoadError::NoKernel)?;
    let kernel_bytes = read(kernel_path).map_err(LoadError::Read)?;
    let kernel: Arm64Kernel = kernel_image::parse_arm64_owned(kernel_bytes, kernel_image::host_page_size())
        .map_err(|err| LoadError::Kernel { path: kernel_path.clone(), err })?;

    // Initrds are concatenated, as the kernel's initramfs unpacker allows.
    let mut initrd = Vec::new();
    let mut initrd_names = Vec::new();
    for p in req.initrds() {
        initrd.extend_from_slice(&read(p).map_err(LoadError::Read)?);
        initrd_names.push(p.display().to_string());
    }
    let initrd = (!initrd_names.is_empty()).then(|| (initrd, initrd_names.join(" + ")));

    let dtb_path = req.dtb().cloned().unwrap_or_else(|| src.fdt_path());
    let dtb_in = read(&dtb_path).map_err(LoadError::Read)?;
    let bootargs = match &req.cmdline {
        // A capture kernel must not reserve crash memory again.
        CmdlineChoice::Keep if req.crash.is_some() => handover_dtb::bootargs(&dtb_in).map(|b| strip_crashkernel(&b)),
        CmdlineChoice::Keep => None,
        CmdlineChoice::Set(s) => Some(s.clone()),
        CmdlineChoice::Reuse(extra) => {
            // kexec-tools drops crashkernel= from a reused command line for
            // a capture kernel: it must not reserve again.
            let mut c = src.cmdline().map_err(LoadError::Read)?;
            if req.crash.is_some() {
                c = strip_crashkernel(&c);
            }
            if !extra.is_empty() {
                c.push(' ');
                c.push_str(extra);
            }
            Some(c)
        }
    };
    let mut kaslr_seed = [0u8; 8];
    let mut rng_seed = [0u8; 64];
    let quality = random_bytes(&mut kaslr_seed)?;
    random_bytes(&mut rng_seed)?;

    let facts =
        handover_dtb::facts(&dtb_in).map_err(|err| LoadError::Dtb { path: dtb_path.clone(), err: err.to_string() })?;
    let (mut free, mut notes, crash) = match req.crash {
        None => {
            let (free, notes) = usable_memory(src)?;
            (free, notes, None)
        }
        Some(opts) => {
            let (free, core) = crash_setup(src, opts)?;
            let note = format!(
                "elfcorehdr: {} CPU notes + vmcoreinfo, {} PT_LOAD (System RAM minus the Crash kernel range)",
                core.cpu_notes, core.loads
            );
            (free, vec![note], Some((core, opts)))
        }
    };
    if quality == EntropyQuality::Early {
        notes.push("the entropy pool was not initialised yet: DTB seeds come from GRND_INSECURE (the purgatory mixes in RNDR where the CPU has it)".into());
    }
    // Memory the DTB itself reserves (/memreserve/, /reserved-memory) is
    // honoured even when /proc/iomem does not show it.
    for r in &facts.reserved {
        free.remove(*r);
    }

    let mut params = PurgatoryParams::new();
    params.flags = PARAM_FLAG_REFRESH_SEEDS | PARAM_FLAG_SET_BOOT_CPU;
    if !req.verify {
        params.flags |= PARAM_FLAG_SKIP_DIGESTS;
    }
    params.on_failure = req.on_failure;
    params.psci_conduit = match facts.psci_method.as_deref() {
        Some("hvc") => PSCI_CONDUIT_HVC,
        Some("smc") => PSCI_CONDUIT_SMC,
        _ => PSCI_CONDUIT_NONE,
    };
    match req.console.or(facts.console) {
        Some(c) => params.console = c,
        None => notes.push(
            "no console for the purgatory (none given with --serial, none found from /chosen/stdout-path)".into(),
        ),
    }

    let mut edits_base = DtbEdits {
        bootargs,
        initrd: None,
        kaslr_seed: Some(kaslr_seed),
        rng_seed: Some(rng_seed),
        remove_crash_properties: true,
        usable_memory: None,
        elfcorehdr: None,
        set_strings: req.dtb_set.clone(),
        delete: req.dtb_delete.clone(),
    };
    let dtb_path_for_err = dtb_path.clone();
    let mut extras = Vec::new();
    if let Some((core, opts)) = &crash {
        extras.push(core.segment(*opts));
        // Documentation/devicetree/bindings/chosen.txt: the capture kernel
        // may use only the crash region(s).
        edits_base.usable_memory = Some(core.crash_ranges.clone());
    }
    let mut make_dtb = |placed: &Placed| -> Result<Vec<u8>, String> {
        let mut e = edits_base.clone();
        e.initrd = placed.initrd;
        e.elfcorehdr = placed.extras.first().copied();
        handover_dtb::apply(&dtb_in, &e).map_err(|err| format!("{}: {err}", dtb_path_for_err.display()))
    };
    let source = format!("{} ({})", kernel_path.display(), kernel.format.name());
    let image_size = kernel.mem_size();
    let anywhere = kernel.header().placement_anywhere();
    let input = KernelInput { image: kernel.image, text_offset: kernel.text_offset, image_size, anywhere, source };
    let opts = PlanOptions { params, exclude_dtb: false, top_down: req.crash.is_none() };
    let mut plan =
        plan_arm64(input, initrd, extras, &mut make_dtb, &free, purgatory, &opts).map_err(LoadError::Plan)?;
    plan.notes.extend(notes);
    if let Some((_, opts)) = &crash {
        if opts.hotplug {
            for s in &plan.segments {
                if s.kind != Some(kexec_purgatory::abi::SegmentKind::ElfCoreHdr) && s.bytes.starts_with(b"\x7fELF") {
                    return Err(LoadError::ElfMagic(s.kind_name().to_string()));
                }
            }
        }
    }
    Ok(plan)
}

/// Remove `crashkernel=...` tokens from a command line.
pub fn strip_crashkernel(cmdline: &str) -> String {
    cmdline.split_whitespace().filter(|t| !t.starts_with("crashkernel=")).collect::<Vec<_>>().join(" ")
}

/// What a crash load needs from the running system.
pub struct CrashSetup {
    pub crash_ranges: Vec<Range>,
    pub cpu_notes: usize,
    pub loads: usize,
    pub header: Vec<u8>,
    pub memsz: u64,
}

impl CrashSetup {
    fn segment(&self, opts: CrashOptions) -> ExtraSegment {
        ExtraSegment {
            kind: kexec_purgatory::abi::SegmentKind::ElfCoreHdr,
            bytes: self.header.clone(),
            memsz: self.memsz,
            // Crash hotplug rewrites it in place after load: exclude it
            // from the digest; the purgatory still checks its structure.
            excluded: opts.hotplug && opts.exclude,
            source: "generated elfcorehdr".into(),
        }
    }
}

/// Crash-region memory and the elfcorehdr (fs/proc/vmcore.c reads it).
fn crash_setup(src: &SystemSources, opts: CrashOptions) -> Result<(FreeMap, CrashSetup), LoadError> {
    let path = src.iomem_path();
    let text = src.iomem().map_err(LoadError::Read)?;
    let iomem = Iomem::parse(&text).map_err(|err| LoadError::Iomem { path: path.clone(), err })?;
    let crash_ranges = iomem.crash_kernel();
    if crash_ranges.is_empty() {
        return Err(LoadError::NoCrashKernel(path));
    }
    let mut ram = FreeMap::new(iomem.system_ram());
    for r in &crash_ranges {
        ram.remove(*r);
    }
    let ram = ram.ranges().to_vec();
    let virt_offset = ram.first().and_then(|r| crate::kcore::linear_offset(&src.proc_root.join("kcore"), r.start));
    let layout = elfcore::CoreLayout {
        machine: elfcore::EM_AARCH64,
        cpu_notes: elfcore::read_cpu_notes(&src.sys_root).map_err(LoadError::ElfCore)?,
        vmcoreinfo: elfcore::read_vmcoreinfo(&src.sys_root).map_err(LoadError::ElfCore)?,
        ram,
        virt_offset,
        kernel_text: None,
    };
    let header = layout.build().map_err(LoadError::ElfCore)?;
    let (cpu_notes, loads) = (layout.cpu_notes.len(), layout.loads());
    let memsz = elfcore::segment_memsz(header.len() as u64, &src.sys_root, opts.hotplug).map_err(LoadError::ElfCore)?;
    Ok((iomem.crash_usable(), CrashSetup { crash_ranges, cpu_notes, loads, header, memsz }))
}
