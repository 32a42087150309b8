//! From a load request to an x86_64 [`Plan`] for kexec_load: read the
//! bzImage and initrds, find usable memory and the e820 map, place the
//! segments by the 64-bit boot protocol (Documentation/arch/x86/boot.rst),
//! build the zero page, and fill the purgatory's parameter block
//! (`kernel_entry` = load address + 0x200, `boot_data` = boot_params).
//! Nothing is loaded.

use std::fmt;
use std::path::PathBuf;

use kexec_purgatory::abi::{
    ConsoleDesc, PurgatoryParams, SegmentKind, CONSOLE_8250_IO, PARAM_FLAG_REFRESH_SEEDS, PARAM_FLAG_SKIP_DIGESTS,
};

use crate::arm64::{self, CmdlineChoice, CrashOptions, EntropyQuality, Input, LoadError, LoadRequest};
use crate::bzimage::{BzImage, BzImageError, ENTRY_64_OFFSET};
use crate::elfcore;
use crate::iomem::{Iomem, IomemError};
use crate::layout::{align_up, FreeMap, Range, PAGE};
use crate::plan::{check, Plan, PlanError, PlannedSegment};
use crate::purgatory_image::PurgatoryImage;
use crate::sources::{read, ReadError, SystemSources};
use crate::x86_boot_params::{self as bp, BootParamsError, BootParamsInput, E820Entry, RunningBootParams};

const MIB: u64 = 1 << 20;
const GIB4: u64 = 1 << 32;
/// arch/x86/kernel/kexec-bzimage64.c MIN_BOOTPARAM_ADDR / MIN_PURGATORY_ADDR
/// (the values kexec-tools uses): nothing below 0x3000.
pub const MIN_LOW_ADDR: u64 = 0x3000;
/// kexec-bzimage64.c MIN_INITRD_LOAD_ADDR.
pub const MIN_INITRD_ADDR: u64 = 16 * MIB;
/// kexec-bzimage64.c MIN_KERNEL_LOAD_ADDR.
pub const MIN_KERNEL_ADDR: u64 = MIB;
/// Standard PC COM port bases, ttyS0..ttyS3 (drivers/tty/serial/8250,
/// SERIAL_PORT_DFNS in arch/x86/include/asm/serial.h).
const PC_COM_PORTS: [u64; 4] = [0x3f8, 0x2f8, 0x3e8, 0x2e8];

/// Why an x86_64 plan could not be made; each names its file, field or rule.
#[derive(Debug)]
pub enum X86Error {
    NoKernel,
    Read(ReadError),
    Kernel {
        path: PathBuf,
        err: BzImageError,
    },
    Iomem {
        path: PathBuf,
        err: IomemError,
    },
    BootParams(BootParamsError),
    Plan(PlanError),
    /// From the helpers shared with the arm64 path (memory, entropy).
    Shared(LoadError),
    /// An input or option that has no meaning on x86_64.
    NotForX86(&'static str),
    /// boot.rst cmdline_size: the longest command line the kernel takes.
    CmdlineTooLong {
        len: usize,
        max: u32,
    },
    NoCrashKernel(PathBuf),
    ElfCore(elfcore::ElfCoreError),
    NoCrashHotplug(PathBuf),
    ElfMagic(String),
}

impl fmt::Display for X86Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoKernel => write!(f, "no kernel image given"),
            Self::Read(e) => write!(f, "{e}"),
            Self::Kernel { path, err } => write!(f, "{}: {err}", path.display()),
            Self::Iomem { path, err } => write!(f, "{}: {err}", path.display()),
            Self::BootParams(e) => write!(f, "{e}"),
            Self::Plan(e) => write!(f, "{e}"),
            Self::Shared(e) => write!(f, "{e}"),
            Self::NotForX86(what) => write!(f, "{what} has no meaning on x86_64 (the kernel gets boot_params, not a DTB)"),
            Self::CmdlineTooLong { len, max } => write!(
                f,
                "the command line is {len} bytes; the kernel's cmdline_size (bzImage 0x238) allows {max}"
            ),
            Self::NoCrashKernel(p) => write!(
                f,
                "{}: no \"Crash kernel\" range: boot the running kernel with crashkernel=256M (or larger) to load a crash kernel",
                p.display()
            ),
            Self::ElfCore(e) => write!(f, "{e}"),
            Self::NoCrashHotplug(p) => write!(
                f,
                "--hotplug: {} is missing: this kernel has no crash hotplug (CONFIG_CRASH_HOTPLUG)",
                p.display()
            ),
            Self::ElfMagic(what) => write!(
                f,
                "--hotplug: the {what} starts with an ELF magic; the kernel would mistake it for the elfcorehdr"
            ),
        }
    }
}

impl std::error::Error for X86Error {}

/// The kdump parts of an image.
#[derive(Debug, Clone)]
pub struct CrashImage {
    pub elfcorehdr: Vec<u8>,
    /// At least `elfcorehdr.len()`; more when the kernel may grow it.
    pub memsz: u64,
    /// Crash hotplug rewrites it in place: exclude it from the digest.
    pub excluded: bool,
    /// Every "Crash kernel" range (x86 may have a low one too): the
    /// capture kernel's RAM.
    pub crash_ranges: Vec<Range>,
}

/// Everything `plan_x86_64` lays out.
#[derive(Debug, Clone)]
pub struct X86Image {
    pub kernel: BzImage,
    pub kernel_source: String,
    pub initrd: Option<(Vec<u8>, String)>,
    /// The command line before the loader's additions (elfcorehdr=).
    pub cmdline: String,
    /// The full e820 map of this machine.
    pub e820: Vec<E820Entry>,
    pub running: RunningBootParams,
    pub rng_seed: [u8; bp::RNG_SEED_LEN],
    pub crash: Option<CrashImage>,
}

fn page_round(n: u64) -> u64 {
    align_up(n.max(1), PAGE).unwrap_or(u64::MAX)
}

/// A planned segment whose digest covers `bytes` zero-padded to `memsz`
/// (the same rule as plan.rs: the kernel zero-fills past bufsz).
fn segment(kind: Option<SegmentKind>, mem: u64, memsz: u64, bytes: Vec<u8>, source: String) -> PlannedSegment {
    PlannedSegment::new(kind, mem, memsz, bytes, source)
}

fn no_room(what: &'static str, size: u64, rule: impl Into<String>) -> X86Error {
    X86Error::Plan(PlanError::NoRoom { what, size, rule: rule.into() })
}

/// Take `size` bytes below 4 GiB if possible, else (when `anywhere`)
/// above: kexec-tools keeps boot_params and the purgatory low.
fn take_low(free: &mut FreeMap, size: u64, min: u64, anywhere: bool) -> Option<Range> {
    free.take(size, PAGE, min, GIB4).or_else(|| if anywhere { free.take(size, PAGE, min, u64::MAX) } else { None })
}

/// Where the kernel goes and the alignment it was placed at.
fn place_kernel(bz: &BzImage, free: &FreeMap, top: u64, top_down: bool) -> Result<(u64, u64), X86Error> {
    let span = page_round(bz.init_size);
    if !bz.relocatable {
        // boot.rst pref_address: "A non-relocatable kernel will
        // unconditionally move itself and to run at this address."
        let r = Range::new(bz.pref_address, bz.pref_address.saturating_add(span));
        if r.start.is_multiple_of(PAGE) && r.end <= top && free.covers(&r) {
            return Ok((r.start, bz.kernel_alignment));
        }
        return Err(no_room(
            "kernel",
            span,
            format!(
                "a non-relocatable kernel must run at pref_address {:#x} with init_size bytes free",
                bz.pref_address
            ),
        ));
    }
    // arch/x86/boot/compressed/head_64.S: a load address below
    // LOAD_PHYSICAL_ADDR (= pref_address) is replaced by it, so nothing
    // lower is safe; kexec-bzimage64.c uses the same floor.
    let min = bz.pref_address.max(MIN_KERNEL_ADDR);
    // boot.rst kernel_alignment: the preferred alignment; min_alignment
    // (0x235): "the minimum alignment required, as opposed to preferred",
    // usable when the loader rewrites kernel_alignment in boot_params.
    let mut aligns = vec![bz.kernel_alignment.max(PAGE)];
    let min_align = 1u64.checked_shl(u32::from(bz.min_alignment)).unwrap_or(0);
    if bz.min_alignment > 0 && min_align >= PAGE && min_align < bz.kernel_alignment {
        aligns.push(min_align);
    }
    for align in aligns {
        let found = if top_down { free.find_highest(span, align, min, top) } else { free.find(span, align, min, top) };
        if let Some(addr) = found {
            return Ok((addr, align));
        }
    }
    let below = if top == u64::MAX { String::new() } else { " below 4 GiB (no XLF_CAN_BE_LOADED_ABOVE_4G)".into() };
    Err(no_room(
        "kernel",
        span,
        format!("needs init_size bytes at a kernel_alignment ({:#x}) aligned address >= pref_address {min:#x}{below} (boot.rst)", bz.kernel_alignment),
    ))
}

/// boot.rst cmdline: the kernel's own kexec_file path prepends
/// "elfcorehdr=0x<addr> " (kexec-bzimage64.c setup_cmdline): prepending
/// keeps it ahead of a " -- " that hands the rest to init. The kernel
/// parses it with memparse (kernel/crash_dump.c setup_elfcorehdr:
/// "elfcorehdr=[size[KMG]@]offset[KMG]"), so the hex form is fine.
fn crash_cmdline(cmdline: &str, elfcorehdr: u64) -> String {
    let c = cmdline.trim();
    if c.is_empty() {
        format!("elfcorehdr={elfcorehdr:#x}")
    } else {
        format!("elfcorehdr={elfcorehdr:#x} {c}")
    }
}

/// Lay out an x86_64 image in `free` memory. `base` carries console,
/// failure action and flags; the rest of the parameter block is filled here.
pub fn plan_x86_64(
    image: X86Image,
    free: &FreeMap,
    purgatory: &PurgatoryImage,
    base: PurgatoryParams,
) -> Result<Plan, X86Error> {
    let mut free = free.clone();
    let mut notes = Vec::new();
    let bz = image.kernel;
    let above_4g = bz.can_load_above_4g();
    // boot.rst xloadflags XLF_CAN_BE_LOADED_ABOVE_4G: "kernel/boot_params/
    // cmdline/ramdisk can be above 4G".
    let top = if above_4g { u64::MAX } else { GIB4 };

    // Kernel: the loaded bytes are the protected-mode payload; the whole
    // init_size span is kept free for decompression but only the payload
    // is a segment (no digest over megabytes of zeros).
    // Top-down for a normal load: the kernel can then usually allocate the
    // destination pages directly, so relocate_kernel copies nothing at
    // reboot (measured: ~0.3 s of the hand-off under TCG). Crash loads go
    // into the reservation bottom-up, as kexec-tools does.
    let top_down = image.crash.is_none();
    let (kernel_mem, align) = place_kernel(&bz, &free, top, top_down)?;
    free.remove(Range::new(kernel_mem, kernel_mem + page_round(bz.init_size)));
    let mut setup_header = bz.setup_header.clone();
    if align != bz.kernel_alignment {
        // boot.rst kernel_alignment: "it is possible for the loader to
        // modify this field to permit a lesser alignment" (head_64.S reads
        // it from boot_params).
        let at = 0x230 - crate::bzimage::HEADER_START;
        setup_header[at..at + 4].copy_from_slice(&(align as u32).to_le_bytes());
        notes.push(format!("kernel placed at min_alignment {align:#x}, not the preferred {:#x}", bz.kernel_alignment));
    }
    let payload_len = bz.payload.len() as u64;
    // boot.rst 64-bit protocol: "the range with setup_header.init_size from
    // start address of loaded kernel ... get ident mapping". kexec's
    // identity map covers the segments, so the kernel segment spans
    // init_size; the purgatory hashes only the payload (the rest is
    // decompression scratch whose contents do not matter).
    let mut segments = vec![PlannedSegment::with_scratch(
        Some(SegmentKind::Kernel),
        kernel_mem,
        page_round(payload_len),
        page_round(bz.init_size.max(payload_len)),
        bz.payload,
        image.kernel_source,
    )];

    // Initrd: >= 16 MiB; below initrd_addr_max unless the kernel takes
    // ext_ramdisk_image (boot.rst initrd_addr_max: "The maximum address that
    // may be occupied by the initial ramdisk/ramfs contents").
    let mut initrd_range = None;
    if let Some((bytes, source)) = image.initrd {
        let memsz = page_round(bytes.len() as u64);
        let max = if above_4g { u64::MAX } else { u64::from(bz.initrd_addr_max) + 1 };
        let r = if top_down {
            free.take_highest(memsz, PAGE, MIN_INITRD_ADDR, max)
        } else {
            free.take(memsz, PAGE, MIN_INITRD_ADDR, max)
        };
        let r = r.ok_or_else(|| {
            no_room(
                "initrd",
                memsz,
                format!("must lie between 16 MiB and {max:#x} (initrd_addr_max / XLF_CAN_BE_LOADED_ABOVE_4G)"),
            )
        })?;
        initrd_range = Some(Range::new(r.start, r.start + bytes.len() as u64));
        segments.push(segment(Some(SegmentKind::Initrd), r.start, memsz, bytes, source));
    }

    // Crash: the elfcorehdr, then the command line and e820 that name it.
    let mut cmdline = image.cmdline;
    let mut e820 = image.e820;
    if let Some(crash) = image.crash {
        let memsz = page_round(crash.memsz.max(crash.elfcorehdr.len() as u64));
        let r = free
            .take(memsz, PAGE, 0, u64::MAX)
            .ok_or_else(|| no_room("elfcorehdr", memsz, "must lie in the Crash kernel range"))?;
        let mut seg =
            segment(Some(SegmentKind::ElfCoreHdr), r.start, memsz, crash.elfcorehdr, "generated elfcorehdr".into());
        seg.excluded = crash.excluded;
        segments.push(seg);
        cmdline = crash_cmdline(&cmdline, r.start);
        // arch/x86/kernel/crash.c crash_setup_memmap_entries.
        e820 = bp::crash_e820(&e820, &crash.crash_ranges, &[r]);
    }
    // boot.rst cmdline_size: "The maximum size of the command line without
    // the terminating zero."
    if cmdline.len() > bz.cmdline_size as usize {
        return Err(X86Error::CmdlineTooLong { len: cmdline.len(), max: bz.cmdline_size });
    }

    // Boot params + command line + setup_data: one segment, >= 0x3000,
    // below 4 GiB where possible.
    let lay = bp::layout(cmdline.len(), e820.len());
    let bp_memsz = page_round(lay.len as u64);
    let bp_r = take_low(&mut free, bp_memsz, MIN_LOW_ADDR, above_4g).ok_or_else(|| {
        no_room(
            "boot-params",
            bp_memsz,
            "needs RAM at or above 0x3000 (below 4 GiB without XLF_CAN_BE_LOADED_ABOVE_4G)",
        )
    })?;
    let input = BootParamsInput {
        setup_header: &setup_header,
        can_load_above_4g: above_4g,
        cmdline: &cmdline,
        initrd: initrd_range,
        e820: &e820,
        acpi_rsdp_addr: image.running.acpi_rsdp_addr,
        screen_info: image.running.screen_info,
        rng_seed: image.rng_seed,
    };
    let zero_page = bp::build(&input, bp_r.start).map_err(X86Error::BootParams)?;
    segments.push(segment(
        Some(SegmentKind::BootParams),
        bp_r.start,
        bp_memsz,
        zero_page,
        format!("boot_params + command line ({} bytes)", cmdline.len()),
    ));

    // Purgatory: 4 KiB aligned, >= 0x3000, below 4 GiB where possible (it
    // runs on relocate_kernel's identity map, which covers all RAM).
    let purg_memsz = purgatory.mem_size();
    let purg_r = take_low(&mut free, purg_memsz, MIN_LOW_ADDR, true)
        .ok_or_else(|| no_room("purgatory", purg_memsz, "needs 4 KiB aligned RAM at or above 0x3000"))?;

    // boot.rst "64-bit Boot Protocol": entry = load address + 0x200, %rsi =
    // boot_params.
    let kernel_entry = kernel_mem + ENTRY_64_OFFSET;
    let mut params = base;
    params.kernel_entry = kernel_entry;
    params.boot_data = bp_r.start;
    crate::plan::append_purgatory(&mut segments, &mut params, purgatory, purg_r.start);

    let plan = Plan {
        entry: purg_r.start + purgatory.header.entry_offset,
        kernel_entry,
        dtb_addr: bp_r.start,
        segments,
        params,
        notes,
    };
    check(&plan).map_err(X86Error::Plan)?;
    Ok(plan)
}

/// The purgatory's console from the kernel command line: the last
/// `console=ttyS<N>` (N < 4, the PC COM ports) or `earlycon=uart[8250],io,<port>`.
pub fn console_from_cmdline(cmdline: &str) -> Option<ConsoleDesc> {
    let io = |base| ConsoleDesc { kind: CONSOLE_8250_IO, reserved: 0, base };
    let mut found = None;
    for tok in cmdline.split_whitespace() {
        if let Some(tty) = tok.strip_prefix("console=ttyS") {
            let n: String = tty.chars().take_while(char::is_ascii_digit).collect();
            if let Some(port) = n.parse::<usize>().ok().and_then(|n| PC_COM_PORTS.get(n)) {
                found = Some(io(*port));
            }
        } else if let Some(spec) = tok.strip_prefix("earlycon=") {
            let mut f = spec.split(',');
            if let (Some("uart" | "uart8250"), Some("io"), Some(port)) = (f.next(), f.next(), f.next()) {
                let port = port.trim_start_matches("0x");
                if let Ok(p) = u64::from_str_radix(port, 16) {
                    found = Some(io(p));
                }
            }
        }
    }
    found
}

/// Drop `name=...` tokens (kexec-tools' get_command_line removes
/// BOOT_IMAGE, and crashkernel for a capture kernel).
fn strip_param(cmdline: &str, name: &str) -> String {
    let prefix = format!("{name}=");
    cmdline.split_whitespace().filter(|t| !t.starts_with(&prefix)).collect::<Vec<_>>().join(" ")
}

/// The new kernel's command line. `Keep` means the running kernel's, as the
/// arm64 path keeps the DTB's bootargs (which are the running command line).
fn choose_cmdline(req: &LoadRequest, src: &SystemSources) -> Result<String, X86Error> {
    let running = || -> Result<String, X86Error> {
        let mut c = strip_param(&src.cmdline().map_err(X86Error::Read)?, "BOOT_IMAGE");
        // A capture kernel must not reserve crash memory again.
        if req.crash.is_some() {
            c = arm64::strip_crashkernel(&c);
        }
        Ok(c)
    };
    Ok(match &req.cmdline {
        CmdlineChoice::Keep => running()?,
        CmdlineChoice::Set(s) => s.clone(),
        CmdlineChoice::Reuse(extra) => {
            let c = running()?;
            [c.as_str(), extra.as_str()].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(" ")
        }
    })
}

/// Crash setup: the highest "Crash kernel" range as placement memory
/// (kernel/kexec_core.c sanity_check_segment_list accepts only crashk_res
/// for KEXEC_ON_CRASH; a crashkernel=,low range is crashk_low_res), the
/// elfcorehdr, and the ranges for the capture kernel's e820.
fn crash_setup(
    src: &SystemSources,
    iomem: &Iomem,
    opts: CrashOptions,
) -> Result<(FreeMap, CrashImage, String), X86Error> {
    let path = src.iomem_path();
    let crash_ranges = iomem.crash_kernel();
    let Some(high) = crash_ranges.iter().max_by_key(|r| r.start).copied() else {
        return Err(X86Error::NoCrashKernel(path));
    };
    let mut free = iomem.crash_usable();
    free.clip(high);
    // What to dump: all system RAM (driver-managed too, as the kernel's
    // walk_system_ram_res does), minus the low 1 MiB ("always reserved",
    // arch/x86/kernel/crash.c elf_header_exclude_ranges, which is why no
    // backup region is needed as kexec-tools' older scheme had), minus the
    // crash ranges.
    let mut ram = FreeMap::new(iomem.system_ram().into_iter().chain(iomem.driver_managed_ram()).collect());
    ram.remove(Range::new(0, MIB));
    for r in &crash_ranges {
        ram.remove(*r);
    }
    let ram = ram.ranges().to_vec();
    let virt_offset = ram.first().and_then(|r| crate::kcore::linear_offset(&src.proc_root.join("kcore"), r.start));
    let layout = elfcore::CoreLayout {
        machine: elfcore::EM_X86_64,
        cpu_notes: elfcore::read_cpu_notes(&src.sys_root).map_err(X86Error::ElfCore)?,
        vmcoreinfo: elfcore::read_vmcoreinfo(&src.sys_root).map_err(X86Error::ElfCore)?,
        ram,
        virt_offset,
        // The kernel's own header starts with the kernel text mapping.
        kernel_text: crate::kcore::kernel_text(&src.proc_root.join("kcore")),
    };
    let header = layout.build().map_err(X86Error::ElfCore)?;
    let memsz = elfcore::segment_memsz(header.len() as u64, &src.sys_root, opts.hotplug).map_err(X86Error::ElfCore)?;
    let note = format!(
        "elfcorehdr: {} CPU notes + vmcoreinfo, {} PT_LOAD ({}System RAM minus the low 1 MiB and the Crash kernel ranges)",
        layout.cpu_notes.len(),
        layout.loads(),
        if layout.kernel_text.is_some() { "kernel text, " } else { "" }
    );
    Ok((free, CrashImage { elfcorehdr: header, memsz, excluded: opts.hotplug && opts.exclude, crash_ranges }, note))
}

/// Build the plan for an x86_64 kexec_load.
pub fn plan(req: &LoadRequest, src: &SystemSources, purgatory: &PurgatoryImage) -> Result<Plan, X86Error> {
    let mut kernel_path = None;
    let mut initrd = Vec::new();
    let mut initrd_names = Vec::new();
    for i in &req.inputs {
        match i {
            Input::Kernel(p) => kernel_path = Some(p.clone()),
            // Concatenated, as the kernel's initramfs unpacker allows.
            Input::Initrd(p) => {
                initrd.extend_from_slice(&read(p).map_err(X86Error::Read)?);
                initrd_names.push(p.display().to_string());
            }
            Input::Dtb(_) => return Err(X86Error::NotForX86("--dtb")),
            Input::Cmdline(_) => {}
        }
    }
    if !req.dtb_set.is_empty() {
        return Err(X86Error::NotForX86("--dtb-set"));
    }
    if !req.dtb_delete.is_empty() {
        return Err(X86Error::NotForX86("--dtb-delete"));
    }
    let kernel_path = kernel_path.ok_or(X86Error::NoKernel)?;
    let kernel = BzImage::parse(&read(&kernel_path).map_err(X86Error::Read)?)
        .map_err(|err| X86Error::Kernel { path: kernel_path.clone(), err })?;
    let initrd = (!initrd_names.is_empty()).then(|| (initrd, initrd_names.join(" + ")));
    let cmdline = choose_cmdline(req, src)?;

    let iomem_path = src.iomem_path();
    let text = src.iomem().map_err(X86Error::Read)?;
    let iomem = Iomem::parse(&text).map_err(|err| X86Error::Iomem { path: iomem_path, err })?;
    let (e820, e820_source) = bp::read_e820(&src.sys_root, &iomem).map_err(X86Error::BootParams)?;
    let running = bp::read_running(&src.sys_root);

    let mut notes = vec![format!("e820: {} entries from {e820_source}", e820.len())];
    let (free, crash) = match req.crash {
        None => {
            let (free, n) = arm64::usable_memory(src).map_err(X86Error::Shared)?;
            notes.extend(n);
            (free, None)
        }
        Some(opts) => {
            let (free, crash, note) = crash_setup(src, &iomem, opts)?;
            notes.push(note);
            (free, Some(crash))
        }
    };
    let mut rng_seed = [0u8; bp::RNG_SEED_LEN];
    if arm64::random_bytes(&mut rng_seed).map_err(X86Error::Shared)? == EntropyQuality::Early {
        notes.push("the entropy pool was not initialised yet: the SETUP_RNG_SEED comes from GRND_INSECURE (the purgatory mixes in RDRAND where the CPU has it)".into());
    }
    if running.acpi_rsdp_addr == 0 {
        notes.push("ACPI RSDP unknown (no /sys/kernel/boot_params/data or /sys/firmware/efi/systab): acpi_rsdp_addr left 0, the kernel scans the BIOS areas".into());
    }

    let mut params = PurgatoryParams::new();
    params.flags = PARAM_FLAG_REFRESH_SEEDS;
    if !req.verify {
        params.flags |= PARAM_FLAG_SKIP_DIGESTS;
    }
    params.on_failure = req.on_failure;
    match req.console.or_else(|| console_from_cmdline(&cmdline)) {
        Some(c) => params.console = c,
        None => notes.push(
            "no console for the purgatory (none given with --serial, no console=ttyS<N> on the command line)".into(),
        ),
    }

    let hotplug = req.crash.is_some_and(|c| c.hotplug);
    let source =
        format!("{} (bzImage, protocol {}.{:02})", kernel_path.display(), kernel.version >> 8, kernel.version & 0xff);
    let image = X86Image { kernel, kernel_source: source, initrd, cmdline, e820, running, rng_seed, crash };
    let mut plan = plan_x86_64(image, &free, purgatory, params)?;
    plan.notes.extend(notes);
    if hotplug {
        for s in &plan.segments {
            if s.kind != Some(SegmentKind::ElfCoreHdr) && s.bytes.starts_with(b"\x7fELF") {
                return Err(X86Error::ElfMagic(s.kind_name().to_string()));
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bzimage::tests::sample;
    use kexec_purgatory::abi::{ARCH_X86_64, IMAGE_MAGIC};

    /// A flat x86_64 purgatory image with a valid 96-byte header.
    fn fake_purgatory() -> Vec<u8> {
        let len = 0x1800u64;
        let mut b = vec![0u8; len as usize];
        b[8..16].copy_from_slice(&IMAGE_MAGIC);
        let words: [(usize, u32); 4] = [(16, 1), (20, 96), (24, ARCH_X86_64), (28, 1)];
        for (o, v) in words {
            b[o..o + 4].copy_from_slice(&v.to_le_bytes());
        }
        let quads: [(usize, u64); 5] = [(32, len), (40, 0x3000), (48, 0x100), (56, 0x1000), (64, 1024)];
        for (o, v) in quads {
            b[o..o + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    fn le32(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }
    fn le64(b: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
    }

    fn e820() -> Vec<E820Entry> {
        vec![
            E820Entry { addr: 0, size: 0x9fc00, kind: bp::E820_RAM },
            E820Entry { addr: 0x10_0000, size: 0x7fef_0000, kind: bp::E820_RAM },
            E820Entry { addr: 0x7fff_0000, size: 0x1_0000, kind: bp::E820_ACPI },
            E820Entry { addr: 0x1_0000_0000, size: 0x8000_0000, kind: bp::E820_RAM },
        ]
    }

    fn image(kernel: Vec<u8>) -> X86Image {
        X86Image {
            kernel: BzImage::parse(&kernel).unwrap(),
            kernel_source: "vmlinuz".into(),
            initrd: Some((vec![0x11; 70_000], "initrd.img".into())),
            cmdline: "console=ttyS0,115200 root=/dev/vda".into(),
            e820: e820(),
            running: RunningBootParams { acpi_rsdp_addr: 0xf_5a40, screen_info: None },
            rng_seed: [3; 32],
            crash: None,
        }
    }

    fn ram() -> FreeMap {
        FreeMap::new(vec![
            Range::new(0x1000, 0x9_f000),
            Range::new(0x10_0000, 0x7fff_0000),
            Range::new(0x1_0000_0000, 0x1_8000_0000),
        ])
    }

    #[test]
    fn layout_follows_the_64bit_boot_protocol() {
        let pb = fake_purgatory();
        let purg = PurgatoryImage::parse(&pb, ARCH_X86_64).unwrap();
        let plan = plan_x86_64(image(sample(300_000)), &ram(), &purg, PurgatoryParams::new()).unwrap();
        let kinds: Vec<_> = plan.segments.iter().map(|s| s.kind_name()).collect();
        assert_eq!(kinds, ["kernel", "initrd", "boot-params", "purgatory"]);
        let (k, i, b, p) = (&plan.segments[0], &plan.segments[1], &plan.segments[2], &plan.segments[3]);
        // Kernel top-down (a normal load: destination pages the kernel
        // can allocate in place) at a kernel_alignment boundary >=
        // pref_address; entry +0x200; only the payload is loaded but the
        // init_size span stays clear.
        let span = page_round(0x300_0000);
        assert_eq!(k.mem % 0x20_0000, 0);
        assert!(k.mem + span <= 0x1_8000_0000 && k.mem + span > 0x1_8000_0000 - 0x20_0000, "highest fit: {k:?}");
        assert_eq!(plan.kernel_entry, k.mem + 0x200);
        // The segment spans init_size (identity-mapped by kexec); the
        // purgatory hashes the payload only.
        assert_eq!((k.memsz, k.digest_len), (span, page_round(300_000)));
        assert_eq!(plan.params.segments[0].len, page_round(300_000));
        assert!(i.mem + i.memsz <= k.mem || i.mem >= k.mem + span, "initrd clear of init_size");
        assert!(i.mem >= 0x100_0000);
        // boot_params low, at >= 0x3000; purgatory low too.
        assert!(b.mem >= 0x3000 && b.mem < MIB, "{b:?}");
        assert!(p.mem >= 0x3000 && p.mem + p.memsz <= GIB4);
        assert_eq!((plan.dtb_addr, plan.params.boot_data), (b.mem, b.mem));
        assert_eq!(plan.params.nr_segments, 3);
        assert_eq!(plan.params.segments[2].kind, SegmentKind::BootParams as u32);
        assert_eq!(plan.entry, p.mem + 0x100);
        // The zero page names the initrd and the command line.
        let z = &b.bytes;
        // ramdisk_image, with ext_ramdisk_image as its high half (above 4 GiB).
        assert_eq!(le32(z, 0x218) as u64 | (le32(z, 0x0c0) as u64) << 32, i.mem);
        assert_eq!(le32(z, 0x21c), 70_000);
        let cmd = le32(z, 0x228) as u64 - b.mem;
        assert_eq!(&z[cmd as usize..cmd as usize + 34], b"console=ttyS0,115200 root=/dev/vda");
        assert_eq!(le64(z, 0x070), 0xf_5a40);
        assert_eq!(z[0x1e8], 4);
        // The purgatory copy carries the block.
        assert_eq!(&p.bytes[0x1000..0x1400], &plan.params.to_bytes()[..]);
    }

    #[test]
    fn min_alignment_is_used_when_kernel_alignment_cannot_be_met() {
        let pb = fake_purgatory();
        let purg = PurgatoryImage::parse(&pb, ARCH_X86_64).unwrap();
        // Only 3 MiB + 4 KiB holes at 4 KiB offsets: the 2 MiB preference
        // cannot be met, min_alignment (2^12 here) can, and the header says so.
        let mut f = sample(1000);
        f[0x235] = 12;
        f[0x260..0x264].copy_from_slice(&0x30_0000u32.to_le_bytes());
        let free = FreeMap::new(vec![
            Range::new(0x3000, 0x9_0000),
            Range::new(0x100_1000, 0x140_2000),
            Range::new(0x200_0000, 0x210_0000),
        ]);
        let mut img = image(f);
        img.initrd = None;
        let plan = plan_x86_64(img, &free, &purg, PurgatoryParams::new()).unwrap();
        assert_eq!(plan.segments[0].mem, 0x110_2000, "highest 4 KiB aligned fit");
        let z = &plan.segments[1].bytes;
        assert_eq!(le32(z, 0x230), 0x1000);
        assert!(plan.notes[0].contains("min_alignment"));
    }

    #[test]
    fn non_relocatable_kernels_run_at_pref_address_or_not_at_all() {
        let pb = fake_purgatory();
        let purg = PurgatoryImage::parse(&pb, ARCH_X86_64).unwrap();
        let mut f = sample(1000);
        f[0x234] = 0;
        let plan = plan_x86_64(image(f.clone()), &ram(), &purg, PurgatoryParams::new()).unwrap();
        assert_eq!(plan.segments[0].mem, 0x100_0000);
        let mut free = ram();
        free.remove(Range::new(0x200_0000, 0x200_1000));
        let err = plan_x86_64(image(f), &free, &purg, PurgatoryParams::new()).unwrap_err();
        assert!(err.to_string().contains("non-relocatable kernel must run at pref_address 0x1000000"), "{err}");
    }

    #[test]
    fn without_the_above_4g_flag_everything_stays_low() {
        let pb = fake_purgatory();
        let purg = PurgatoryImage::parse(&pb, ARCH_X86_64).unwrap();
        let mut f = sample(1000);
        f[0x236] = 1; // XLF_KERNEL_64 only
        f[0x22c..0x230].copy_from_slice(&0x37ff_ffffu32.to_le_bytes());
        // Low memory only up to 0x3800_0000 besides what the kernel takes.
        let free = FreeMap::new(vec![
            Range::new(0x3000, 0x9_0000),
            Range::new(0x100_0000, 0x3800_0000),
            Range::new(0x1_0000_0000, 0x2_0000_0000),
        ]);
        let plan = plan_x86_64(image(f.clone()), &free, &purg, PurgatoryParams::new()).unwrap();
        for s in &plan.segments {
            assert!(s.mem + s.memsz <= 0x3800_0000, "{s:?}");
        }
        let high = FreeMap::new(vec![Range::new(0x3000, 0x9_0000), Range::new(0x1_0000_0000, 0x2_0000_0000)]);
        let err = plan_x86_64(image(f.clone()), &high, &purg, PurgatoryParams::new()).unwrap_err();
        assert!(err.to_string().contains("below 4 GiB (no XLF_CAN_BE_LOADED_ABOVE_4G)"), "{err}");
        // initrd_addr_max binds the initrd.
        let tight = FreeMap::new(vec![Range::new(0x3000, 0x9_0000), Range::new(0x3800_0000, 0x4000_0000)]);
        let err = plan_x86_64(image(f), &tight, &purg, PurgatoryParams::new()).unwrap_err();
        assert!(err.to_string().starts_with("no room for the initrd"), "{err}");
    }

    #[test]
    fn command_line_longer_than_cmdline_size_is_refused() {
        let pb = fake_purgatory();
        let purg = PurgatoryImage::parse(&pb, ARCH_X86_64).unwrap();
        let mut img = image(sample(1000));
        img.cmdline = "x".repeat(2048);
        let err = plan_x86_64(img, &ram(), &purg, PurgatoryParams::new()).unwrap_err();
        assert!(matches!(err, X86Error::CmdlineTooLong { len: 2048, max: 2047 }));
        assert!(err.to_string().contains("cmdline_size (bzImage 0x238) allows 2047"));
    }

    #[test]
    fn crash_layout_names_the_elfcorehdr_and_restricts_e820() {
        let pb = fake_purgatory();
        let purg = PurgatoryImage::parse(&pb, ARCH_X86_64).unwrap();
        let crash_r = Range::new(0x6000_0000, 0x7000_0000);
        let mut img = image(sample(1000));
        img.cmdline = "root=/dev/vda -- single".into();
        img.crash = Some(CrashImage {
            elfcorehdr: vec![0x7f; 500],
            memsz: 0x3100,
            excluded: true,
            crash_ranges: vec![crash_r],
        });
        let plan = plan_x86_64(img, &FreeMap::new(vec![crash_r]), &purg, PurgatoryParams::new()).unwrap();
        let kinds: Vec<_> = plan.segments.iter().map(|s| s.kind_name()).collect();
        assert_eq!(kinds, ["kernel", "initrd", "elfcorehdr", "boot-params", "purgatory"]);
        for s in &plan.segments {
            assert!(crash_r.contains_range(&s.range()), "{s:?} outside the crash range");
        }
        let core = &plan.segments[2];
        assert_eq!(core.memsz, 0x4000);
        assert_eq!(plan.params.segments[2].flags, kexec_purgatory::abi::SEGMENT_FLAG_EXCLUDED);
        let z = &plan.segments[3].bytes;
        let cmd = (le32(z, 0x228) as u64 - plan.segments[3].mem) as usize;
        let want = format!("elfcorehdr={:#x} root=/dev/vda -- single", core.mem);
        assert_eq!(&z[cmd..cmd + want.len()], want.as_bytes());
        // e820: low 1 MiB RAM, ACPI, crash range minus the elfcorehdr.
        let n = z[0x1e8] as usize;
        let entries: Vec<(u64, u64, u32)> =
            (0..n).map(|i| (le64(z, 0x2d0 + i * 20), le64(z, 0x2d8 + i * 20), le32(z, 0x2e0 + i * 20))).collect();
        assert_eq!(
            entries,
            [
                (0, 0x9fc00, 1),
                (0x6000_0000, core.mem - 0x6000_0000, 1),
                (core.mem + 0x4000, 0x7000_0000 - core.mem - 0x4000, 1),
                (0x7fff_0000, 0x1_0000, 3)
            ]
        );
    }

    /// The Debian bookworm kernel, when cache/ has it (not required).
    #[test]
    fn real_bookworm_vmlinuz_if_present() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cache/amd64/bookworm/vmlinuz");
        let Ok(bytes) = std::fs::read(&path) else {
            eprintln!("skipped: {} is absent", path.display());
            return;
        };
        let pb = fake_purgatory();
        let purg = PurgatoryImage::parse(&pb, ARCH_X86_64).unwrap();
        let plan = plan_x86_64(image(bytes), &ram(), &purg, PurgatoryParams::new()).unwrap();
        let k = &plan.segments[0];
        assert_eq!(plan.kernel_entry, k.mem + 0x200);
        assert_eq!(k.mem % 0x20_0000, 0, "kernel_alignment of the Debian kernel");
        assert!(k.mem >= 0x100_0000, "not below pref_address");
    }

    #[test]
    fn console_comes_from_the_command_line() {
        let io = |base| Some(ConsoleDesc { kind: CONSOLE_8250_IO, reserved: 0, base });
        assert_eq!(console_from_cmdline("quiet console=ttyS0,115200n8"), io(0x3f8));
        assert_eq!(console_from_cmdline("console=ttyS0 console=ttyS1"), io(0x2f8), "the last wins");
        assert_eq!(console_from_cmdline("earlycon=uart8250,io,0x2e8,115200"), io(0x2e8));
        assert_eq!(console_from_cmdline("console=tty0 console=ttyS7"), None);
        assert_eq!(console_from_cmdline("console=hvc0"), None);
    }

    /// A /proc + /sys fixture tree for `plan`.
    struct Fixture {
        root: PathBuf,
    }

    impl Fixture {
        fn new(name: &str, iomem: &str) -> Self {
            let root = std::env::temp_dir().join(format!("rkx-x86-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(root.join("proc")).unwrap();
            // One 128 MiB Movable block at 0x78000000: not usable for a normal load.
            let mem = root.join("sys/devices/system/memory");
            std::fs::create_dir_all(mem.join("memory15")).unwrap();
            std::fs::write(mem.join("block_size_bytes"), "8000000\n").unwrap();
            std::fs::write(mem.join("memory15/valid_zones"), "Movable\n").unwrap();
            std::fs::write(mem.join("memory15/removable"), "1\n").unwrap();
            std::fs::write(mem.join("memory15/state"), "online\n").unwrap();
            std::fs::write(root.join("proc/iomem"), iomem).unwrap();
            std::fs::write(
                root.join("proc/cmdline"),
                "BOOT_IMAGE=/vmlinuz root=/dev/vda console=ttyS0 crashkernel=256M\n",
            )
            .unwrap();
            std::fs::write(root.join("vmlinuz"), sample(4096)).unwrap();
            std::fs::write(root.join("initrd"), [1u8; 100]).unwrap();
            Fixture { root }
        }

        fn src(&self) -> SystemSources {
            SystemSources::new(self.root.join("proc"), self.root.join("sys"))
        }

        fn req(&self) -> LoadRequest {
            let mut r = LoadRequest::new(self.root.join("vmlinuz"));
            r.inputs.push(Input::Initrd(self.root.join("initrd")));
            r
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    const IOMEM: &str = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
000f0000-000fffff : Reserved
00100000-7ffdbfff : System RAM
  01000000-01ffffff : Kernel code
  6b000000-7affffff : Crash kernel
7ffdc000-7fffffff : ACPI Tables
";

    #[test]
    fn plan_from_a_system_tree() {
        let fx = Fixture::new("plan", IOMEM);
        let pb = fake_purgatory();
        let purg = PurgatoryImage::parse(&pb, ARCH_X86_64).unwrap();
        let plan = plan(&fx.req(), &fx.src(), &purg).unwrap();
        let kinds: Vec<_> = plan.segments.iter().map(|s| s.kind_name()).collect();
        assert_eq!(kinds, ["kernel", "initrd", "boot-params", "purgatory"]);
        assert_eq!(plan.params.console.base, 0x3f8);
        assert_eq!(plan.params.flags, PARAM_FLAG_REFRESH_SEEDS);
        assert!(plan.notes.iter().any(|n| n.contains("from /proc/iomem")), "{:?}", plan.notes);
        let z = &plan.segments[2].bytes;
        let cmd = (le32(z, 0x228) as u64 - plan.segments[2].mem) as usize;
        let want = b"root=/dev/vda console=ttyS0 crashkernel=256M\0";
        assert_eq!(&z[cmd..cmd + want.len()], want, "BOOT_IMAGE dropped, the rest kept");
        for s in &plan.segments {
            assert!(!Range::new(0x6b00_0000, 0x7b00_0000).overlaps(&s.range()), "normal load in the crash range");
            assert!(!Range::new(0x7800_0000, 0x8000_0000).overlaps(&s.range()), "normal load in hot-removable memory");
        }
        assert!(plan.notes.iter().any(|n| n.contains("hot-removable")), "{:?}", plan.notes);

        let mut r = fx.req();
        r.inputs.push(Input::Dtb(fx.root.join("x.dtb")));
        assert!(plan_err(&r, &fx, &purg).contains("--dtb has no meaning on x86_64"));
        let mut r = fx.req();
        r.dtb_set.push(("a".into(), "b".into()));
        assert!(plan_err(&r, &fx, &purg).contains("--dtb-set"));
        let r = LoadRequest { inputs: vec![], ..fx.req() };
        assert!(matches!(super::plan(&r, &fx.src(), &purg), Err(X86Error::NoKernel)));
        std::fs::write(fx.root.join("vmlinuz"), [0u8; 2000]).unwrap();
        assert!(plan_err(&fx.req(), &fx, &purg).contains("vmlinuz: bzImage boot_flag (0x1fe)"));
    }

    fn plan_err(r: &LoadRequest, fx: &Fixture, purg: &PurgatoryImage) -> String {
        super::plan(r, &fx.src(), purg).unwrap_err().to_string()
    }

    #[test]
    fn crash_plan_from_a_system_tree() {
        let fx = Fixture::new("crash", IOMEM);
        let sys = fx.root.join("sys");
        for cpu in 0..2 {
            let d = sys.join(format!("devices/system/cpu/cpu{cpu}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("crash_notes"), format!("7fa00{cpu}000\n")).unwrap();
            std::fs::write(d.join("crash_notes_size"), "432\n").unwrap();
        }
        std::fs::create_dir_all(sys.join("kernel")).unwrap();
        std::fs::write(sys.join("kernel/vmcoreinfo"), "4f0b1000 1000\n").unwrap();
        let pb = fake_purgatory();
        let purg = PurgatoryImage::parse(&pb, ARCH_X86_64).unwrap();
        let mut req = fx.req();
        req.crash = Some(CrashOptions { hotplug: false, exclude: true });
        let plan = plan(&req, &fx.src(), &purg).unwrap();
        let crash_r = Range::new(0x6b00_0000, 0x7b00_0000);
        for s in &plan.segments {
            assert!(crash_r.contains_range(&s.range()), "{s:?}");
        }
        let core = plan.segments.iter().find(|s| s.kind == Some(SegmentKind::ElfCoreHdr)).unwrap();
        // 2 CPU notes + vmcoreinfo + RAM: 0x100000-0x6affffff, 0x7b000000-0x7ffdbfff.
        assert_eq!(core.bytes.len(), 64 + 56 * 5);
        assert_eq!(core.bytes[18], 62, "EM_X86_64");
        let ph_load = 64 + 56 * 3;
        assert_eq!(le64(&core.bytes, ph_load + 24), 0x10_0000, "the low 1 MiB is not dumped");
        let bpseg = plan.segments.iter().find(|s| s.kind == Some(SegmentKind::BootParams)).unwrap();
        let cmd = (le32(&bpseg.bytes, 0x228) as u64 - bpseg.mem) as usize;
        let want = format!("elfcorehdr={:#x} root=/dev/vda console=ttyS0\0", core.mem);
        assert_eq!(&bpseg.bytes[cmd..cmd + want.len()], want.as_bytes(), "crashkernel= dropped");

        req.crash = Some(CrashOptions { hotplug: true, exclude: true });
        assert!(plan_err(&req, &fx, &purg).contains("crash_elfcorehdr_size is missing"));
        std::fs::write(sys.join("kernel/crash_elfcorehdr_size"), "8192\n").unwrap();
        let plan = super::plan(&req, &fx.src(), &purg).unwrap();
        let core = plan.segments.iter().find(|s| s.kind == Some(SegmentKind::ElfCoreHdr)).unwrap();
        assert_eq!((core.memsz, core.excluded), (page_round(64 + 8192), true));

        let none = Fixture::new("nocrash", "00001000-0009fbff : System RAM\n00100000-7ffdbfff : System RAM\n");
        let mut req = none.req();
        req.crash = Some(CrashOptions { hotplug: false, exclude: true });
        assert!(plan_err(&req, &none, &purg).contains("no \"Crash kernel\" range"));
    }
}
