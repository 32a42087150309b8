//! ppc64le (Documentation/arch/powerpc/booting.rst; the kernel's kexec
//! path: arch/powerpc/kexec/core_64.c, arch/powerpc/kernel/misc_64.S
//! `kexec_sequence`): a relocatable vmlinux ELF entered with r3 = the DTB,
//! r4 = its own base, r5 = 0, after our purgatory has verified every
//! segment. What differs from the other DTB architectures, each as
//! kexec-tools' ppc64 loader does it (kexec/arch/ppc64/kexec-elf-ppc64.c
//! `elf_ppc64_load`, kexec-ppc64.c, kexec/fs2dt.c):
//!
//! - the DTB is rebuilt from the live tree, /proc/device-tree (fs2dt);
//!   /sys/firmware/fdt is only the blob the running kernel booted with;
//! - everything stays below the end of the first memory block (the RMA:
//!   what a hash-MMU partition can reach in real mode), the kernel lowest,
//!   above the running kernel's `linux,kernel-end` (machine_kexec_prepare
//!   refuses a segment below it), and nothing else inside the span the
//!   new kernel copies itself over (`[0, its size)`, head_64.S);
//! - segments are aligned to the running kernel's page size (64 KiB on
//!   Debian's bookworm kernels);
//! - the purgatory's entry block carries the kernel's first 256 bytes
//!   (its `__secondary_hold` at 0x60, where kexec_sequence parks the other
//!   CPUs, and its `__run_at_load` word at 0x5c): docs/abi.md "ppc64le".

mod capture_tree;

use kexec_purgatory::abi::{
    SegmentKind, ARCH_PPC64LE, CONSOLE_HVTERM, PARAM_FLAG_REFRESH_SEEDS, PARAM_FLAG_SET_BOOT_CPU,
    PPC64LE_ENTRY_BLOCK_SIZE, PPC64LE_ENTRY_FILL_START, PPC64LE_RUN_AT_LOAD_OFFSET,
};
use kexec_purgatory::elf::EM_PPC64;

use super::contract::{ArchInput, ArchLayout, Architecture, CmdlineLimit, EntryFill, PurgatoryWindow};
use crate::arch_spec::{ArchSpec, CrashPolicy, HotplugFlag, NamedConsole};
use crate::cmdline;
use crate::dtb::edit::DtbEditor;
use crate::dtb::handover::{self, DtbEdits};
use crate::error::LoadError;
use crate::image::Kernel;
use crate::input::{self, Blob};
use crate::placement::{KexecBuf, Layout, Order};
use crate::plan::{BootData, PlanError};
use crate::range::{align_up, Range};
use crate::system::device_tree;
use crate::system::entropy::{random_bytes, EntropyQuality};
use crate::system::SystemSources;
use crate::uapi::KEXEC_CRASH_HOTPLUG_SUPPORT;

const KIB: u64 = 1 << 10;
const GIB: u64 = 1 << 30;

/// arch/powerpc/include/uapi/asm/setup.h: COMMAND_LINE_SIZE 2048, the NUL
/// included (drivers/of/fdt.c copies /chosen/bootargs into a buffer of it
/// and drops the rest).
pub const COMMAND_LINE_SIZE: usize = 2048;
/// The most a DTB is read for (a large partition's tree with its
/// ibm,dynamic-memory is a few MiB).
pub const DTB_MAX: u64 = device_tree::TREE_LIMIT;
/// The kernel's load address alignment: 64 KiB, the largest page size
/// (a relocatable kernel run where it is loaded keeps its page-aligned
/// layout, head_64.S `__run_at_load`; kexec-tools aligns to the page).
pub const KERNEL_ALIGN: u64 = 64 * KIB;
/// Low memory a ppc64 capture kernel overwrites (its exception vectors;
/// kexec-tools crashdump-ppc64.h BACKUP_SRC_SIZE, the kernel's
/// asm/crashdump-ppc64.h): 64 KiB, backed up by the purgatory.
pub const BACKUP_SIZE: u64 = 0x1_0000;
/// The linear map's base, `PAGE_OFFSET` (arch/powerpc/include/asm/page.h;
/// kexec-tools crashdump-ppc64.c elf_info64): the elfcorehdr's p_vaddr.
pub const PAGE_OFFSET: u64 = 0xc000_0000_0000_0000;
/// The purgatory calls RTAS to reset, which runs in 32-bit mode and
/// returns into the purgatory: keep it below 4 GiB when it can be.
const LOW_4G: u64 = 4 * GIB;

/// Properties the running kernel adds to its live tree at run time, which
/// the next kernel computes afresh (kexec-tools' fs2dt `putprops` drops
/// them): its own image's end, the hash page table, the crash reservation
/// (arch/powerpc/kexec/core.c `kexec_setup`), and `linux,memory-limit`,
/// which 6.10+ exports big-endian and a little-endian kernel would read
/// raw (arch/powerpc/kernel/prom.c): `mem=` on the command line says it.
const RUNTIME_PROPERTIES: &[&str] = &[
    "/chosen/linux,kernel-end",
    "/chosen/linux,htab-base",
    "/chosen/linux,htab-size",
    "/chosen/linux,crashkernel-base",
    "/chosen/linux,crashkernel-size",
    "/chosen/linux,memory-limit",
];

/// ppc64le as the loader sees it.
pub static SPEC: ArchSpec = ArchSpec {
    name: "ppc64le",
    aliases: &["ppc64el", "powerpc64le"],
    rust_arch: "powerpc64",
    debian_arch: "ppc64el",
    elf_machine: EM_PPC64,
    purgatory_arch: ARCH_PPC64LE,
    // The generic flag (include/uapi/linux/kexec.h), 6.10+; 0x4 is taken
    // and ignored there (arch/powerpc/kexec/crash.c).
    hotplug_flag: Some(HotplugFlag {
        value: KEXEC_CRASH_HOTPLUG_SUPPORT,
        name: "KEXEC_CRASH_HOTPLUG_SUPPORT (0x8)",
        kernels: "Linux 6.10+ with CONFIG_CRASH_HOTPLUG",
    }),
    // powerpc's own elfcorehdr (arch/powerpc/kexec/file_load_64.c
    // load_elfcorehdr_segment): all RAM minus the crash range.
    crash: CrashPolicy {
        skip_low_1m: false,
        dump_driver_managed: false,
        kernel_text: false,
        no_hotplug: None,
        skip_firmware_protected: false,
        backup_low: Some(BACKUP_SIZE),
        linear_map_base: Some(PAGE_OFFSET),
        hotplug_rewrites_dtb: true,
    },
    kernel_takes_first_fdt: false,
    // `--serial hvcN`: the PAPR vterm, whose number the DTB's vty node
    // gives (`reg`); 0 here stands for "the one stdout-path names".
    named_consoles: &[NamedConsole { tty: "hvc", prefix: true, kind: CONSOLE_HVTERM, base: 0, sysfs_first: false }],
    io_port_serial: false,
};

const CMDLINE: CmdlineLimit = CmdlineLimit {
    max: COMMAND_LINE_SIZE - 1,
    rule: "powerpc's COMMAND_LINE_SIZE (2048 with the NUL, arch/powerpc/include/uapi/asm/setup.h)",
};

/// The ppc64le planner.
pub(crate) struct Ppc64le;

impl Architecture for Ppc64le {
    fn spec(&self) -> &'static ArchSpec {
        &SPEC
    }

    fn place(&self, input: ArchInput) -> Result<ArchLayout, LoadError> {
        place(input)
    }

    fn kernel_footprint(&self, kernel: &Kernel) -> Option<u64> {
        match kernel {
            Kernel::Elf(e) => Some(e.mem_size),
            _ => None,
        }
    }

    fn file_load_cmdline_limit(&self, _: &Kernel) -> Option<CmdlineLimit> {
        // arch/powerpc/kexec/file_load.c setup_cmdline: the line goes into
        // the DTB's bootargs, read into COMMAND_LINE_SIZE.
        Some(CMDLINE)
    }

    fn kept_cmdline(&self, sys: &SystemSources) -> Result<Option<Vec<u8>>, LoadError> {
        // place() rebuilds the DTB from the live tree (/proc/device-tree,
        // kexec-tools' fs2dt) and keeps its bootargs without --append;
        // kexec_file_load gets the same line (arch/powerpc/kexec/elf_64.c
        // hands the kernel's of_kexec_alloc_and_setup_fdt the command line
        // it is given, and drops bootargs without one).
        let tree = device_tree::read_tree(&sys.device_tree_dir()).map_err(LoadError::System)?;
        Ok(handover::bootargs(&tree.to_dtb()))
    }

    fn file_load_takes_vmlinux(&self) -> bool {
        // arch/powerpc/kexec/elf_64.c: kexec_file_load's ppc64 loader is an
        // ELF one.
        true
    }
}

/// The end of the first memory block (the lowest `/memory@…` node's
/// first range): kexec-tools' `rma_top` (kexec-ppc64.c), below which
/// everything is placed.
fn rma_top(dtb: &DtbEditor) -> Result<Option<u64>, crate::dtb::edit::DtbEditError> {
    let mut first: Option<Range> = None;
    for name in dtb.child_names("/")? {
        if name == "memory" || name.starts_with("memory@") {
            for r in dtb.reg_ranges(&format!("/{name}"))? {
                if !r.is_empty() && first.is_none_or(|f| r.start < f.start) {
                    first = Some(r);
                }
            }
        }
    }
    Ok(first.map(|r| r.end))
}

/// What the next kernel must keep that its tree says only in properties:
/// RTAS and OPAL (kexec-tools' fs2dt checkprop adds them as /memreserve/),
/// and the root's `reserved-ranges`.
fn firmware_reservations(dtb: &DtbEditor) -> Result<Vec<Range>, crate::dtb::edit::DtbEditError> {
    let number = |path: &str, name: &str| -> Result<Option<u64>, crate::dtb::edit::DtbEditError> {
        Ok(dtb.property(path, name)?.and_then(|v| match v.len() {
            4 => Some(u64::from(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))),
            8 => Some(u64::from_be_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]])),
            _ => None,
        }))
    };
    let mut out = Vec::new();
    for (node, base, size) in
        [("/rtas", "linux,rtas-base", "rtas-size"), ("/ibm,opal", "opal-base-address", "opal-runtime-size")]
    {
        if let (Some(b), Some(s)) = (number(node, base)?, number(node, size)?) {
            out.extend(Range::checked(b, s).filter(|r| !r.is_empty()));
        }
    }
    // The root's reserved-ranges: <address size> pairs, two cells each
    // (kexec-tools' scan_reserved_ranges reads them as u64 pairs).
    if let Some(v) = dtb.property("/", "reserved-ranges")? {
        for pair in v.chunks_exact(16) {
            let (a, s) = pair.split_at(8);
            let (a, s) = (
                u64::from_be_bytes(a.try_into().unwrap_or([0; 8])),
                u64::from_be_bytes(s.try_into().unwrap_or([0; 8])),
            );
            out.extend(Range::checked(a, s).filter(|r| !r.is_empty()));
        }
    }
    Ok(out)
}

/// `__run_at_load`'s default, "run0" (head_64.S RUN_AT_LOAD_DEFAULT): the
/// kernel copies itself to 0 unless a loader writes 1 (kexec-tools
/// kexec-elf-ppc64.c: KERNEL_RUN_AT_ZERO_MAGIC).
const RUN_AT_ZERO: u32 = 0x7275_6e30;

/// The capture kernel's `__run_at_load` word: 1, so it runs inside the
/// crash reservation where it is loaded instead of copying itself over the
/// crashed kernel at 0 (head_64.S `__after_prom_start`). A kernel whose
/// word is neither "run0" nor 1 is not relocatable that way: refused, as
/// the purgatory would otherwise start a kernel that destroys the dump.
fn run_in_place(fill: &mut [u8], kernel_source: &str) -> Result<(), LoadError> {
    let at = (PPC64LE_RUN_AT_LOAD_OFFSET - PPC64LE_ENTRY_FILL_START) as usize;
    let word = fill.get_mut(at..at + 4).ok_or_else(|| PlanError::Internal("entry block shorter than 0x60".into()))?;
    match u32::from_le_bytes([word[0], word[1], word[2], word[3]]) {
        RUN_AT_ZERO | 1 => {
            word.copy_from_slice(&1u32.to_le_bytes());
            Ok(())
        }
        other => Err(PlanError::Refused {
            rule: format!(
                "{kernel_source}: __run_at_load (offset 0x5c) is {other:#x}, neither \"run0\" nor 1: not a relocatable ppc64 kernel, so as a capture kernel it would copy itself over the crashed kernel's memory at 0 (head_64.S; CONFIG_CRASH_DUMP selects RELOCATABLE)"
            ),
        }
        .into()),
    }
}

/// The crash reservation the capture kernel is loaded into: the lowest
/// one starting below the first memory block's end (ppc64 has one,
/// crashk_res; kexec-tools confines every segment to it and below
/// rma_top, kexec-ppc64.c get_devtree_details / setup_memory_ranges).
fn crash_window(ranges: &[Range], top: u64) -> Result<Range, LoadError> {
    ranges
        .iter()
        .filter(|r| r.start < top)
        .min_by_key(|r| r.start)
        .map(|r| Range::new(r.start, r.end.min(top)))
        .ok_or_else(|| {
            PlanError::Refused {
                rule: format!(
                    "the crash reservation lies above the first memory block's end {top:#x}: a ppc64 capture kernel must be reachable in real mode (kexec-tools' rma_top)"
                ),
            }
            .into()
        })
}

/// Place a ppc64le kernel and build its DTB.
fn place(input: ArchInput) -> Result<ArchLayout, LoadError> {
    let ArchInput {
        req, sys, kernel, kernel_source, initrd, free, crash, mut params, console_given, mut notes, ..
    } = input;
    let Kernel::Elf(elf) = &kernel.kernel else {
        return Err(PlanError::Internal(format!("{} is not a ppc64le vmlinux", kernel.format)).into());
    };
    // The kernel's first 256 bytes go into the purgatory's entry block.
    let entry_off = elf.entry.checked_sub(elf.paddr).unwrap_or(u64::MAX);
    let head = usize::try_from(entry_off)
        .ok()
        .and_then(|at| elf.data.get(at..at.checked_add(PPC64LE_ENTRY_BLOCK_SIZE as usize)?))
        .ok_or_else(|| PlanError::Refused {
            rule: format!(
                "{kernel_source}: fewer than 256 bytes of the kernel from its entry {:#x}: no __secondary_hold to park the other CPUs in (head_64.S)",
                elf.entry
            ),
        })?;
    let mut fill = head.get(PPC64LE_ENTRY_FILL_START as usize..).unwrap_or_default().to_vec();
    if crash.is_some() {
        run_in_place(&mut fill, &kernel_source)?;
    }

    // The DTB: --dtb as given, else the live tree as fs2dt rebuilds it.
    let (dtb_path, dtb_in) = match &req.dtb {
        Some(p) => (p.clone(), input::read_file(p, DTB_MAX, "a DTB may have")?),
        None => {
            let dir = sys.device_tree_dir();
            let tree = device_tree::read_tree(&dir).map_err(LoadError::System)?;
            notes.push(format!("DTB rebuilt from the live tree {} (as kexec-tools' fs2dt)", crate::escape::path(&dir)));
            (dir, Blob::new(tree.to_dtb()))
        }
    };
    // The user's --dtb-set/--dtb-delete first: everything below (console,
    // memory, reservations, bootargs) is read from the tree the new kernel
    // gets, as on the other DTB architectures (dtb_boot.rs). Petitboot
    // moves the console this way.
    let user = DtbEdits { set_strings: req.dtb_set.clone(), delete: req.dtb_delete.clone(), ..Default::default() };
    let edited = !user.set_strings.is_empty() || !user.delete.is_empty();
    let dtb_err = |err| LoadError::Dtb { path: dtb_path.clone(), err, edited };
    let source =
        handover::SourceDtb::new(&dtb_in, &user).map_err(|e| LoadError::from_dtb_source(&dtb_path, e, edited))?;
    let facts = source.facts().map_err(dtb_err)?;
    let src = source.editor();
    let source_bootargs = source.bootargs().map_err(dtb_err)?;

    // Without --append the running command line (the tree's bootargs), as
    // on the other DTB architectures; a capture kernel's without
    // crashkernel=.
    let bootargs = cmdline::resolve(
        &req.cmdline,
        || sys.cmdline().map_err(LoadError::System),
        || Ok(source_bootargs.clone()),
        crash.is_some(),
        &mut notes,
    )?;
    let mut final_cmdline = bootargs.clone().or_else(|| source_bootargs.clone()).unwrap_or_default();
    if final_cmdline.contains(&0) {
        // /proc/cmdline and the DTB's bootargs are refused where they are
        // read: the line was given.
        return Err(PlanError::Refused {
            rule: "the command line given (--append/--command-line) contains a NUL byte".into(),
        }
        .into());
    }
    let mut rng_seed = [0u8; 64];
    if random_bytes(&mut rng_seed)? == EntropyQuality::Early {
        notes.push("the entropy pool was not initialised yet: the DTB's rng-seed comes from GRND_INSECURE (the purgatory mixes in darn where the CPU has it)".into());
    }

    // Memory: below the first block's end, aligned to this kernel's pages.
    let top = rma_top(src).map_err(dtb_err)?.ok_or_else(|| LoadError::Dtb {
        edited: false,
        path: dtb_path.clone(),
        err: crate::dtb::edit::DtbEditError::NoNode { path: "/memory@…".into() },
    })?;
    let reserved = firmware_reservations(src).map_err(dtb_err)?;
    let mut free = free;
    for r in facts.reserved.iter().chain(&reserved) {
        free.remove(*r);
    }
    let page = sys.page_size;
    let mut layout = Layout::with_page(free, page);

    // The kernel lowest: above the running kernel (linux,kernel-end) for
    // kexec, at the crash reservation's base for kdump (kexec-tools
    // elf_ppc64_load: locate_hole bottom-up).
    let kernel_window = match &crash {
        Some(c) => crash_window(&c.ranges, top)?,
        None => Range::new(0, top),
    };
    let rule = if crash.is_some() {
        "needs a page-aligned base with the kernel's memory size free inside the crash reservation, below the first memory block's end (kexec-tools' rma_top)"
    } else {
        "needs a page-aligned base with the kernel's memory size free, below the first memory block's end (kexec-tools' rma_top) and above the running kernel (linux,kernel-end)"
    };
    let kr = layout.add(
        KexecBuf::new(SegmentKind::Kernel, elf.data.clone(), kernel_source)
            .memsz(elf.mem_size)
            .align(KERNEL_ALIGN.max(page))
            .order(Order::BottomUp)
            .window(kernel_window, rule),
    )?;
    // kexec: head_64.S copies the kernel to 0 (it is not run where
    // loaded), so what lies in [0, its size) is gone once it runs. kdump:
    // it runs in place; the rest goes above it in the reservation.
    let window = match &crash {
        Some(_) => Range::new(kr.end, kernel_window.end),
        None => {
            let copied = align_up(elf.mem_size, page).unwrap_or(u64::MAX);
            Range::new(copied.max(kr.end).min(top), top)
        }
    };
    let window_rule = format!(
        "must lie between {:#x} and {:#x}: above the kernel{}, below {}",
        window.start,
        window.end,
        if crash.is_some() { "" } else { " and the span it copies itself over" },
        if crash.is_some() {
            "the crash reservation's end and the first memory block's (kexec-tools' rma_top)"
        } else {
            "the first memory block's end (kexec-tools' rma_top)"
        },
    );

    // kdump: the backup of low memory, then the elfcorehdr describing it
    // (kexec-tools load_crashdump_segments: both bottom-up after the
    // kernel).
    let mut capture = None;
    if let Some(c) = &crash {
        let mut backup_at = None;
        if let Some(low) = c.backup_source() {
            // Zeros the purgatory hashes before it copies low memory in
            // (kexec-tools: a zero-filled buffer of the same size).
            let zeros = vec![0u8; usize::try_from(low.len()).unwrap_or(0)];
            let r = layout.add(
                KexecBuf::new(SegmentKind::Backup, Blob::new(zeros), format!("backup of {low}"))
                    .memsz(low.len())
                    .order(Order::BottomUp)
                    .window(window, &window_rule),
            )?;
            backup_at = Some(r);
        }
        let header = c.header_with_backup(backup_at.map_or(0, |r| r.start)).map_err(LoadError::Crash)?;
        let core = layout.add(
            KexecBuf::new(SegmentKind::ElfCoreHdr, Blob::new(header), "generated elfcorehdr")
                .memsz(c.memsz)
                .excluded(c.excluded)
                .order(Order::BottomUp)
                .window(window, &window_rule),
        )?;
        capture = Some((c, backup_at, core));
    }

    let mut initrd_range = None;
    if let Some(i) = initrd {
        let len = i.data.len() as u64;
        let r = layout.add(
            KexecBuf::new(SegmentKind::Initrd, i.data, i.source).order(Order::BottomUp).window(window, &window_rule),
        )?;
        initrd_range = Some(Range::new(r.start, r.start + len));
    }
    let mut delete = req.dtb_delete.clone();
    if req.dtb.is_none() {
        delete.extend(RUNTIME_PROPERTIES.iter().map(|p| p.to_string()));
    }
    let mut bootargs = bootargs;
    if let Some((_, _, core)) = &capture {
        // arch/powerpc/kexec/file_load.c setup_kdump_cmdline: the capture
        // kernel finds its elfcorehdr on the command line
        // (kernel/crash_dump.c setup_elfcorehdr) and in /chosen.
        final_cmdline = cmdline::with_elfcorehdr(&final_cmdline, core.start);
        bootargs = Some(final_cmdline.clone());
    }
    if final_cmdline.len() > CMDLINE.max {
        return Err(LoadError::CmdlineTooLong { len: final_cmdline.len(), max: CMDLINE.max, rule: CMDLINE.rule });
    }
    let edits = DtbEdits {
        bootargs,
        initrd: initrd_range,
        kaslr_seed: None,
        rng_seed: Some(rng_seed),
        remove_crash_properties: true,
        set_strings: req.dtb_set.clone(),
        delete,
        memreserve: reserved.clone(),
        elfcorehdr: capture.as_ref().map(|(_, _, core)| *core),
        ..Default::default()
    };
    let mut dtb = handover::apply(&dtb_in, &edits).map_err(|e| LoadError::from_dtb_source(&dtb_path, e, edited))?;
    let mut dtb_excluded = false;
    if let Some((c, backup, core)) = &capture {
        let crash_range = kernel_window;
        let mut ed = DtbEditor::from_blob(&dtb).map_err(dtb_err)?;
        // What the capture kernel must leave alone: the crashed kernel's
        // memory below the reservation (all but the backed-up 64 KiB), the
        // backup and the elfcorehdr at its full size (kexec-tools
        // crashdump-ppc64.c load_crashdump_segments, fs2dt reserve(); the
        // kernel's file_load_64.c setup_new_fdt_ppc64).
        if crash_range.start > BACKUP_SIZE {
            ed.add_memreserve(Range::new(BACKUP_SIZE, crash_range.start));
        }
        if let Some(b) = backup {
            ed.add_memreserve(*b);
        }
        ed.add_memreserve(*core);
        let usable = capture_tree::usable_ranges(crash_range.end, &reserved, page);
        let restricted = capture_tree::restrict_memory(&mut ed, &usable).map_err(dtb_err)?;
        notes.push(format!(
            "capture kernel's memory: {} (linux,usable-memory on {} memory node(s){})",
            usable.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(" + "),
            restricted.memory_nodes,
            match restricted.lmbs {
                Some(n) => format!(", linux,drconf-usable-memory for {n} assigned LMB(s)"),
                None => String::new(),
            }
        ));
        let room = if c.hotplug {
            let possible = crate::system::cpu_list::possible_cpus(&sys.sys_root).map_err(LoadError::System)?;
            let room = capture_tree::cpu_hotplug_room(&ed, possible).map_err(dtb_err)?;
            notes.push(format!(
                "DTB loaded with {room} bytes free for the kernel's /cpus rewrite on CPU hotplug ({possible} possible CPUs)"
            ));
            room
        } else {
            u64::from(crate::dtb::edit::DEFAULT_PADDING)
        };
        let room =
            u32::try_from(room).map_err(|_| dtb_err(crate::dtb::edit::DtbEditError::TooLarge { bytes: room }))?;
        dtb = ed.to_blob(room).map_err(dtb_err)?;
        dtb_excluded = c.dtb_excluded;
    }
    // kexec-tools puts the DTB at the top of the first block, or of the
    // crash reservation (kexec-elf-ppc64.c: add_buffer(..., -1)).
    let dtb_r = layout.add(
        KexecBuf::new(SegmentKind::Dtb, Blob::new(dtb), "generated DTB")
            .excluded(dtb_excluded)
            .order(Order::TopDown)
            .window(window, &window_rule),
    )?;

    params.flags |= PARAM_FLAG_REFRESH_SEEDS | PARAM_FLAG_SET_BOOT_CPU;
    // The console stdout-path names (the PAPR vterm), or --serial hvcN,
    // whose number the tree gives.
    match (console_given, facts.console) {
        (false, Some(c)) => params.console = c,
        (true, Some(c)) if params.console.kind == CONSOLE_HVTERM && params.console.base == 0 => {
            params.console.base = c.base;
        }
        _ => {}
    }
    let low = Range::new(window.start, window.end.min(LOW_4G));
    let mut purgatory = Vec::new();
    if !low.is_empty() {
        purgatory.push(PurgatoryWindow {
            window: low,
            order: Order::BottomUp,
            rule: "below 4 GiB (RTAS returns into it)",
        });
    }
    purgatory.push(PurgatoryWindow {
        window,
        order: Order::BottomUp,
        rule: "above the kernel, below the first memory block's end",
    });
    Ok(ArchLayout {
        layout,
        kernel_entry: kr.start + entry_off,
        boot_data: BootData { kind: SegmentKind::Dtb, addr: dtb_r.start },
        cmdline: final_cmdline,
        params,
        purgatory,
        notes,
        entry_fill: Some(EntryFill { offset: PPC64LE_ENTRY_FILL_START, bytes: fill }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;
    use crate::request::{CmdlineChoice, CrashOptions, Hotplug, Request};
    use crate::testing::{ppc64_vmlinux, pseries_tree, Tree};
    use kexec_purgatory::abi::PPC64LE_RUN_AT_LOAD_OFFSET;

    const MIB: u64 = 1 << 20;
    /// Debian 6.12's: p_memsz 0x289f250.
    const KERNEL_MEM: u64 = 0x289_f250;
    /// The fixture's linux,kernel-end (the running 6.12 kernel's _end).
    const OLD_KERNEL_END: u64 = 0x28a_0000;
    /// The fixture's crashkernel=512M reservation.
    const CRASH: Range = Range::new(0x2000_0000, 0x4000_0000);
    /// The fixture's RTAS (linux,rtas-base, rtas-size).
    const RTAS: Range = Range::new(0x2fff_f000, 0x2fff_f000 + 0x83c);

    fn plan_with(t: &Tree, page: u64, edit: impl FnOnce(&mut Request)) -> Result<Plan, LoadError> {
        let mut req = Request::new(t.write("vmlinux", ppc64_vmlinux(3 * MIB as usize, KERNEL_MEM)));
        edit(&mut req);
        crate::planner::plan(&req, &t.sys().with_page_size(page))
    }

    fn kinds(p: &Plan) -> Vec<&'static str> {
        p.segments.iter().map(|s| s.kind_name()).collect()
    }

    /// issue 21 item 8: without --append kexec_file_load gets the command
    /// line kexec_load keeps, the live tree's bootargs.
    #[test]
    fn kexec_file_load_keeps_the_same_command_line() {
        let t = pseries_tree("ppc-keep");
        let p = plan_with(&t, 4096, |_| {}).unwrap();
        let req = Request::new(t.root.join("vmlinux"));
        let f = crate::file_load::file_plan(&req, &t.sys().with_page_size(4096), 0).unwrap();
        assert_eq!(p.cmdline, b"console=hvc0 crashkernel=512M");
        assert_eq!(f.cmdline, p.cmdline);
    }

    /// issue 21 item 3: the command line is bytes into /chosen/bootargs,
    /// a capture kernel's with elfcorehdr= first; a NUL is refused naming
    /// --append.
    #[test]
    fn a_command_line_that_is_not_utf8_reaches_bootargs() {
        let t = pseries_tree("ppc-bytes");
        let line = b"console=hvc0 root=/dev/\xff\xfe";
        for crashing in [false, true] {
            let p = plan_with(&t, 4096, |r| {
                r.cmdline = CmdlineChoice::Set(line.to_vec());
                if crashing {
                    r.crash = Some(CrashOptions { hotplug: Hotplug::Off, exclude: true });
                }
            })
            .unwrap();
            let dtb = p.segments.iter().find(|s| s.kind_name() == "dtb").unwrap();
            let args = DtbEditor::from_blob(&dtb.data).unwrap().bootargs().unwrap().unwrap();
            assert_eq!(args, p.cmdline);
            assert!(args.ends_with(line), "{crashing}: {args:?}");
            assert_eq!(args.starts_with(b"elfcorehdr=0x"), crashing);
        }
        let e = plan_with(&t, 4096, |r| r.cmdline = CmdlineChoice::Set(b"a\0b".to_vec())).unwrap_err();
        assert!(e.to_string().contains("--append"), "{e}");
    }

    #[test]
    fn layout_follows_kexec_tools_ppc64_loader() {
        let t = pseries_tree("ppc-layout");
        let initrd = t.write("initrd", vec![7u8; 5000]);
        let p = plan_with(&t, 4096, |r| r.initrds.push(initrd.clone())).unwrap();
        assert_eq!(p.arch.name, "ppc64le");
        assert_eq!(kinds(&p), ["kernel", "initrd", "dtb", "purgatory"]);
        let (k, i, d, purg) = (&p.segments[0], &p.segments[1], &p.segments[2], &p.segments[3]);
        // The kernel lowest above the running one (linux,kernel-end), 64 KiB
        // aligned; entered at its first byte.
        assert_eq!(k.mem, OLD_KERNEL_END);
        assert_eq!(k.mem % KERNEL_ALIGN, 0);
        assert_eq!(p.kernel_entry, k.mem);
        assert_eq!(k.memsz, align_up(KERNEL_MEM, 4096).unwrap());
        // Nothing else in [0, the kernel's size): it copies itself there.
        for s in &p.segments[1..] {
            assert!(s.mem >= k.mem + k.memsz, "{s:?} inside what the kernel copies itself over");
            assert!(!s.range().overlaps(&CRASH) && !s.range().overlaps(&RTAS), "{s:?}");
        }
        assert!(i.mem < d.mem, "initrd bottom-up, DTB top-down");
        assert_eq!(d.mem + d.memsz, 0x8000_0000, "the DTB at the top of the first block");
        assert!(purg.mem + purg.memsz <= 1 << 32, "the purgatory below 4 GiB (RTAS returns into it)");
        // The DTB: the live tree with what the next kernel needs.
        let dtb = DtbEditor::from_blob(&d.data).unwrap();
        assert_eq!(dtb.initrd().unwrap(), Some(Range::new(i.mem, i.mem + 5000)));
        assert_eq!(dtb.bootargs().unwrap().as_deref(), Some(&b"console=hvc0 crashkernel=512M"[..]), "bootargs kept");
        for gone in ["linux,kernel-end", "linux,crashkernel-base", "linux,crashkernel-size", "linux,memory-limit"] {
            assert!(dtb.property("/chosen", gone).unwrap().is_none(), "{gone} is the running kernel's");
        }
        assert!(dtb.property("/chosen", "rng-seed").unwrap().is_some());
        assert!(dtb.property("/chosen", "kaslr-seed").unwrap().is_none(), "powerpc reads no kaslr-seed");
        assert!(dtb.memreserve().contains(&RTAS), "RTAS kept: {:?}", dtb.memreserve());
        assert!(dtb.property("/rtas", "linux,rtas-base").unwrap().is_some());
        // The purgatory: hvterm console, boot CPU and seeds patched, the
        // kernel's first bytes in its entry block.
        assert_eq!((p.params.console.kind, p.params.console.base), (CONSOLE_HVTERM, 0x7100_0000));
        assert_eq!(p.params.flags, PARAM_FLAG_REFRESH_SEEDS | PARAM_FLAG_SET_BOOT_CPU);
        let img = crate::purgatory_image::PurgatoryImage::for_arch(p.arch).unwrap();
        let block = (p.entry - purg.mem) as usize;
        assert_eq!(block as u64, img.header.entry_offset);
        assert_eq!(&purg.data[block + 4..block + 0x100], &k.data[4..0x100], "the kernel's bytes 4..0xff");
        let word = |b: &[u8]| u32::from_le_bytes(b[block + 0x5c..block + 0x60].try_into().unwrap());
        assert_eq!(word(&purg.data), 0x7275_6e30, "run_at_load: the kernel's own (\"run0\"), as kexec does");
        assert_eq!(PPC64LE_RUN_AT_LOAD_OFFSET, 0x5c);
        assert_eq!(&purg.data[block..block + 4], &img.bytes[block..block + 4], "word 0 is the purgatory's");
    }

    /// Petitboot's edit: stdout-path moved to a second vterm with
    /// --dtb-set. The purgatory prints where the new kernel will (the
    /// console is read from the edited tree), and the DTB carries the edit.
    #[test]
    fn the_console_is_the_edited_trees() {
        let t = pseries_tree("ppc-vterm2");
        let vty = "proc/device-tree/vdevice/vty@71000000";
        for prop in ["compatible", "device_type", "name", "interrupts"] {
            let bytes = std::fs::read(t.root.join(vty).join(prop)).unwrap();
            t.write(&format!("proc/device-tree/vdevice/vty@71000010/{prop}"), bytes);
        }
        t.write("proc/device-tree/vdevice/vty@71000010/reg", 0x7100_0010u32.to_be_bytes());
        let moved = "/vdevice/vty@71000010";
        let p = plan_with(&t, 4096, |r| {
            for prop in ["stdout-path", "linux,stdout-path"] {
                r.dtb_set.push((format!("/chosen/{prop}"), moved.into()));
            }
        })
        .unwrap();
        assert_eq!((p.params.console.kind, p.params.console.base), (CONSOLE_HVTERM, 0x7100_0010));
        let d = p.segments.iter().find(|s| s.kind_name() == "dtb").unwrap();
        let dtb = DtbEditor::from_blob(&d.data).unwrap();
        assert_eq!(dtb.string_property("/chosen", "stdout-path").unwrap().as_deref(), Some(moved));
        // Without stdout-path the kernel reads linux,stdout-path
        // (of_alias_scan), and so does the loader.
        let p = plan_with(&t, 4096, |r| {
            r.dtb_delete.push("/chosen/stdout-path".into());
            r.dtb_set.push(("/chosen/linux,stdout-path".into(), moved.into()));
        })
        .unwrap();
        assert_eq!(p.params.console.base, 0x7100_0010);
        // Unedited, the first vterm.
        let p = plan_with(&t, 4096, |_| {}).unwrap();
        assert_eq!(p.params.console.base, 0x7100_0000);
        // Petitboot's form: --dtb /sys/firmware/fdt, which on pseries is
        // prom_init's version 16 flattening (no size_dt_struct), edited.
        let mut v16 = device_tree::read_tree(&t.root.join("proc/device-tree")).unwrap().to_dtb();
        let be = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
        assert_eq!(be(&v16, 20), 17);
        v16.extend_from_slice(&[0; 4096]);
        let total = u32::try_from(v16.len()).unwrap();
        v16[4..8].copy_from_slice(&total.to_be_bytes());
        v16[20..24].copy_from_slice(&16u32.to_be_bytes());
        v16[24..28].copy_from_slice(&16u32.to_be_bytes());
        v16[36..40].copy_from_slice(&0u32.to_be_bytes());
        let fdt = t.write("sys/firmware/fdt", &v16);
        let p = plan_with(&t, 4096, |r| {
            r.dtb = Some(fdt.clone());
            r.dtb_set.push(("/chosen/stdout-path".into(), moved.into()));
        })
        .unwrap();
        assert_eq!(p.params.console.base, 0x7100_0010);
    }

    #[test]
    fn sixty_four_kib_pages_align_every_segment() {
        let t = pseries_tree("ppc-64k");
        let initrd = t.write("initrd", vec![7u8; 5000]);
        let p = plan_with(&t, 64 << 10, |r| r.initrds.push(initrd.clone())).unwrap();
        for s in &p.segments {
            assert_eq!((s.mem % (64 << 10), s.memsz % (64 << 10)), (0, 0), "{s:?}");
        }
        assert_eq!(p.page_size, 64 << 10);
    }

    #[test]
    fn limits_say_which_rule() {
        let t = pseries_tree("ppc-limits");
        let err = plan_with(&t, 4096, |r| r.cmdline = CmdlineChoice::Set("x".repeat(2048).into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the command line is 2048 bytes; powerpc's COMMAND_LINE_SIZE (2048 with the NUL, arch/powerpc/include/uapi/asm/setup.h) allows 2047"
        );
        assert!(plan_with(&t, 4096, |r| r.cmdline = CmdlineChoice::Set("x".repeat(2047).into())).is_ok());
        // A kernel of fewer than 256 bytes has no __secondary_hold.
        let mut req = Request::new(t.write(
            "tiny",
            crate::image::elf::tests::elf(
                EM_PPC64,
                2,
                0xc000_0000_0000_0000,
                &[(0xc000_0000_0000_0000, 0, &[0u8; 64], 0x1000)],
            ),
        ));
        req.cmdline = CmdlineChoice::Set(Vec::new());
        let err = crate::planner::plan(&req, &t.sys()).unwrap_err().to_string();
        assert!(err.contains("fewer than 256 bytes of the kernel"), "{err}");
    }

    #[test]
    fn the_live_tree_decides_where_nothing_may_go() {
        // No linux,kernel-end: the running kernel's image is unknown but
        // /proc/iomem has no Kernel code entry on powerpc; the loader
        // still keeps the kernel off page 0.
        let t = pseries_tree("ppc-nokend");
        std::fs::remove_file(t.root.join("proc/device-tree/chosen/linux,kernel-end")).unwrap();
        let p = plan_with(&t, 4096, |_| {}).unwrap();
        assert_eq!(p.segments[0].mem, KERNEL_ALIGN, "page 0 stays free");
        // The crash reservation comes from /chosen when /proc/iomem lacks it.
        let t = pseries_tree("ppc-crashres");
        let map = t.sys().memory_map().unwrap();
        assert_eq!(map.crash_kernel(), vec![CRASH]);
    }

    fn crash(hotplug: Hotplug) -> impl FnOnce(&mut Request) {
        move |r| {
            r.crash = Some(CrashOptions { hotplug, exclude: true });
            r.cmdline = CmdlineChoice::Set("console=hvc0 maxcpus=1".into());
        }
    }

    fn be64s(v: &[u8]) -> Vec<u64> {
        v.chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().unwrap())).collect()
    }

    #[test]
    fn kdump_follows_kexec_tools_ppc64_crash_layout() {
        let t = pseries_tree("ppc-kdump");
        let initrd = t.write("initrd", vec![7u8; 5000]);
        let p = plan_with(&t, 64 << 10, |r| {
            crash(Hotplug::Off)(r);
            r.initrds.push(initrd.clone());
        })
        .unwrap();
        assert_eq!(kinds(&p), ["kernel", "backup", "elfcorehdr", "initrd", "dtb", "purgatory"]);
        let seg = |k: &str| p.segments.iter().find(|s| s.kind_name() == k).unwrap();
        let (k, b, core, d, purg) = (seg("kernel"), seg("backup"), seg("elfcorehdr"), seg("dtb"), seg("purgatory"));
        // Everything inside the reservation, below the first block's end,
        // clear of RTAS; the kernel at its base; the DTB at its top.
        for s in &p.segments {
            assert!(CRASH.contains_range(&s.range()), "{s:?} outside the crash reservation");
            assert!(!s.range().overlaps(&RTAS), "{s:?} over RTAS");
            assert_eq!((s.mem % (64 << 10), s.memsz % (64 << 10)), (0, 0), "{s:?}");
        }
        assert_eq!(k.mem, CRASH.start);
        assert_eq!(p.kernel_entry, k.mem);
        assert_eq!((b.mem, b.memsz), (k.mem + k.memsz, BACKUP_SIZE));
        assert!(b.data.len() as u64 == BACKUP_SIZE && b.data.iter().all(|x| *x == 0), "the backup is hashed as zeros");
        assert!(!core.excluded && !d.excluded, "no hotplug: everything hashed");
        assert_eq!(d.mem + d.memsz, CRASH.end, "the DTB top-down, at the reservation's top");
        assert!(purg.mem + purg.memsz <= 1 << 32);
        // run_at_load = 1 in the entry block: the capture kernel runs in
        // place.
        let img = crate::purgatory_image::PurgatoryImage::for_arch(p.arch).unwrap();
        let block = (p.entry - purg.mem) as usize;
        let word = u32::from_le_bytes(purg.data[block + 0x5c..block + 0x60].try_into().unwrap());
        assert_eq!(word, 1);
        assert_eq!(&purg.data[block + 0x60..block + 0x100], &k.data[0x60..0x100], "__secondary_hold kept");
        assert_eq!(img.header.entry_offset as usize, block);
        // The elfcorehdr: EM_PPC64, [0, 64K) read from the backup first,
        // then RAM minus the reservation with RTAS added back, p_vaddr in
        // the linear map.
        use object::read::elf::{ElfFile64, ProgramHeader as _};
        let elf = ElfFile64::<object::Endianness>::parse(&core.data[..]).unwrap();
        let e = elf.endian();
        assert_eq!(elf.elf_header().e_machine.get(e).0, EM_PPC64);
        let loads: Vec<(u64, u64, u64, u64)> = elf
            .elf_program_headers()
            .iter()
            .filter(|h| h.p_type(e) == object::elf::PT_LOAD)
            .map(|h| (h.p_paddr(e), h.p_offset(e), h.p_memsz(e), h.p_vaddr(e)))
            .collect();
        assert_eq!(loads[0], (0, b.mem, BACKUP_SIZE, PAGE_OFFSET));
        assert_eq!(loads[1], (BACKUP_SIZE, BACKUP_SIZE, CRASH.start - BACKUP_SIZE, PAGE_OFFSET + BACKUP_SIZE));
        assert_eq!((loads[2].0, loads[2].2), (RTAS.start, RTAS.len()), "RTAS inside the reservation is dumped");
        assert_eq!((loads[3].0, loads[3].0 + loads[3].2), (CRASH.end, 0x8000_0000));
        assert_eq!(loads.len(), 4);
        // The DTB as the capture kernel reads it.
        let dtb = DtbEditor::from_blob(&d.data).unwrap();
        let args = dtb.bootargs().unwrap().unwrap();
        assert_eq!(args, format!("elfcorehdr={:#x} console=hvc0 maxcpus=1", core.mem).into_bytes());
        assert_eq!(p.cmdline, args);
        assert_eq!(be64s(dtb.property("/chosen", "linux,elfcorehdr").unwrap().unwrap()), [core.mem, core.memsz]);
        assert_eq!(be64s(dtb.property("/memory@0", "linux,usable-memory").unwrap().unwrap()), [0, CRASH.end]);
        let rsv = dtb.memreserve();
        for want in [Range::new(BACKUP_SIZE, CRASH.start), b.range(), core.range(), RTAS] {
            assert!(rsv.contains(&want), "{want} not reserved: {rsv:?}");
        }
        for gone in ["linux,crashkernel-base", "linux,crashkernel-size", "linux,kernel-end", "linux,memory-limit"] {
            assert!(dtb.property("/chosen", gone).unwrap().is_none(), "{gone}");
        }
        assert!(p.notes.iter().any(|n| n.contains("crash hotplug: off (--no-hotplug)")), "{:?}", p.notes);
        assert!(!p.hotplug);
    }

    #[test]
    fn kdump_is_hotplug_aware_by_default_where_the_kernel_is() {
        let t = pseries_tree("ppc-kdump-hp");
        // 4 possible CPUs, 2 present (-smp 2,maxcpus=4).
        std::fs::write(t.root.join("sys/devices/system/cpu/possible"), "0-3\n").unwrap();
        let p = plan_with(&t, 4096, crash(Hotplug::Auto)).unwrap();
        assert!(p.hotplug, "{:?}", p.notes);
        assert!(p.notes.iter().any(|n| n.contains("crash hotplug: on (the default")), "{:?}", p.notes);
        let seg = |k: &str| p.segments.iter().find(|s| s.kind_name() == k).unwrap();
        let (core, d) = (seg("elfcorehdr"), seg("dtb"));
        // /sys/kernel/crash_elfcorehdr_size (458984) + the ELF header,
        // page-rounded; both rewritable segments excluded.
        assert_eq!(core.memsz, align_up(458_984 + 64, 4096).unwrap());
        assert!(core.excluded && d.excluded);
        // Checked whole by the purgatory: the kernel may write all of it.
        assert_eq!((core.digest_len, d.digest_len), (core.memsz, d.memsz));
        // Room for two more POWER9 cores inside totalsize (libfdt's
        // fdt_add_subnode splices within it).
        let total = u32::from_be_bytes(d.data[4..8].try_into().unwrap()) as usize;
        assert_eq!(total, d.data.len());
        let used = {
            let strings = u32::from_be_bytes(d.data[12..16].try_into().unwrap()) as usize;
            strings + u32::from_be_bytes(d.data[32..36].try_into().unwrap()) as usize
        };
        assert!(total - used > 4096 + 2 * 600, "free {} bytes", total - used);
        // The layout libfdt's read-write functions require (fdt_rw_probe_:
        // version 17, rsvmap, struct, strings in order).
        let be = |at: usize| u32::from_be_bytes(d.data[at..at + 4].try_into().unwrap());
        assert_eq!(be(20), 17);
        assert!(be(16) >= 40 && be(8) > be(16) && be(12) > be(8), "blocks in order");
        // The purgatory's structure check accepts it.
        assert_eq!(kexec_purgatory::checks::check_fdt(&d.data), Ok(()));
        // --no-hotplug: the same tree, hashed, default padding.
        let off = plan_with(&t, 4096, crash(Hotplug::Off)).unwrap();
        assert!(!off.hotplug && off.segments.iter().all(|s| !s.excluded));
        // A kernel without crash hotplug: off by default, --hotplug refused.
        std::fs::remove_file(t.root.join("sys/kernel/crash_elfcorehdr_size")).unwrap();
        let p = plan_with(&t, 4096, crash(Hotplug::Auto)).unwrap();
        assert!(!p.hotplug);
        assert!(p.notes.iter().any(|n| n.contains("no /sys/kernel/crash_elfcorehdr_size")), "{:?}", p.notes);
        let err = plan_with(&t, 4096, crash(Hotplug::Required)).unwrap_err().to_string();
        assert!(err.contains("crash_elfcorehdr_size"), "{err}");
    }

    #[test]
    fn a_kernel_that_cannot_run_in_place_is_no_capture_kernel() {
        let t = pseries_tree("ppc-kdump-fixed");
        let mut image = ppc64_vmlinux(3 * MIB as usize, KERNEL_MEM);
        // The vmlinux's one PT_LOAD starts at file offset 0x10000.
        let at = image.windows(4).position(|w| w == 0x7275_6e30u32.to_le_bytes()).unwrap();
        image[at..at + 4].copy_from_slice(&0x1234u32.to_le_bytes());
        let mut req = Request::new(t.write("vmlinux", image));
        crash(Hotplug::Off)(&mut req);
        let err = crate::planner::plan(&req, &t.sys()).unwrap_err().to_string();
        assert!(err.contains("__run_at_load (offset 0x5c) is 0x1234"), "{err}");
    }

    #[test]
    fn with_hotplug_no_other_segment_may_look_like_the_dtb() {
        let t = pseries_tree("ppc-kdump-fdt-first");
        let mut fake = 0xd00d_feedu32.to_be_bytes().to_vec();
        fake.resize(4096, 0);
        let initrd = t.write("initrd", fake);
        let err = plan_with(&t, 4096, |r| {
            crash(Hotplug::Auto)(r);
            r.initrds.push(initrd.clone());
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("the initrd starts with the FDT magic"), "{err}");
        // Without hotplug nothing rewrites it: loaded.
        plan_with(&t, 4096, |r| {
            crash(Hotplug::Off)(r);
            r.initrds.push(initrd.clone());
        })
        .unwrap();
    }
}
