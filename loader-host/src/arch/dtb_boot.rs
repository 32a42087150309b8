//! The boot protocol shared by the architectures that hand the new kernel a
//! DTB and load a raw "Image" (arm64 booting.rst, riscv64 boot.rst): the
//! Image at an aligned base, initrd and elfcorehdr in a window the kernel
//! can reach, and the DTB — built from the running one (or --dtb) with the
//! new command line, initrd, seeds and kdump properties — last. What
//! differs between those architectures is a [`DtbBoot`] each declares.

use kexec_purgatory::abi::{
    ConsoleDesc, SegmentKind, CONSOLE_SBI, PARAM_FLAG_REFRESH_SEEDS, PARAM_FLAG_SET_BOOT_CPU, PSCI_CONDUIT_NONE,
};

use super::contract::{ArchInput, ArchLayout, CmdlineLimit, PurgatoryWindow};
use crate::arch_spec::ArchSpec;
use crate::cmdline;
use crate::dtb::edit::DtbEditError;
use crate::dtb::handover::{DtbEdits, DtbMemory, SourceDtb};
use crate::error::LoadError;
use crate::escape;
use crate::image::Kernel;
use crate::input::{self, Blob};
use crate::placement::{KexecBuf, Layout, Order};
use crate::plan::{BootData, PlanError};
use crate::range::{align_down, FreeMap, Range};
use crate::system::entropy::{random_bytes, EntropyQuality};

/// What the Image header's text_offset means for placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextOffset {
    /// arm64 booting.rst §4: the Image goes text_offset bytes above a
    /// `kernel_align` aligned base (the bytes below it stay unused).
    Lead,
    /// riscv boot-image-header.rst: text_offset is where firmware puts the
    /// Image above the start of RAM; kexec loaders align the Image itself
    /// to it (kexec-tools kexec-image-riscv.c, the kernel's
    /// arch/riscv/kernel/kexec_image.c): the Image starts at a base aligned
    /// to the larger of text_offset and `kernel_align`, entry at its first
    /// byte.
    Alignment,
}

/// Where the kernel goes and the window for everything after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The kernel top-down when its header allows any address (bottom-up
    /// when it asks to be low, and into a crash reservation); the rest in
    /// the same order, below the end of a window of `size` bytes starting
    /// at the kernel's base rounded down to `align`.
    KernelWindow {
        /// Bytes in the window.
        size: u64,
        /// Alignment its start is rounded down to.
        align: u64,
    },
    /// The kernel bottom-up; the rest top-down between the kernel's end
    /// and `linear_map` bytes above the start of the new kernel's RAM
    /// rounded down to 2 MiB (what it maps linearly, so what it can read
    /// an initrd from).
    AboveKernel {
        /// Bytes of RAM the new kernel maps linearly from that start.
        linear_map: u64,
    },
}

/// An architecture's rules for an Image + DTB boot.
#[derive(Clone, Copy, Debug)]
pub struct DtbBoot {
    /// Alignment of the kernel's base.
    pub kernel_align: u64,
    /// Why (for the error when no such base is free).
    pub kernel_rule: &'static str,
    /// What the Image header's text_offset means.
    pub text_offset: TextOffset,
    /// The kernel's order and the window for initrd, elfcorehdr, DTB and
    /// purgatory.
    pub placement: Placement,
    /// Where that window comes from (for the error when nothing fits).
    pub window_rule: &'static str,
    /// The largest DTB the kernel takes, and where that rule is written.
    pub dtb_max: u64,
    /// Where `dtb_max` is written.
    pub dtb_rule: &'static str,
    /// COMMAND_LINE_SIZE less its NUL, and where it is defined.
    pub command_line: CmdlineLimit,
    /// The purgatory resets through PSCI (the DTB's /psci conduit); false
    /// where it resets otherwise (riscv64: SBI SRST, docs/abi.md).
    pub psci: bool,
    /// When /chosen/stdout-path names no UART the purgatory drives, it
    /// prints through the SBI console if the command line puts the
    /// kernel's console there (riscv64 only; `console=hvc0`, `earlycon=sbi`).
    pub sbi_console: bool,
}

/// 2 MiB: riscv's `phys_ram_base` is the start of DRAM rounded down to a
/// PMD (arch/riscv/mm/init.c setup_bootmem).
const PMD: u64 = 2 << 20;

impl DtbBoot {
    /// The order of the kernel and of everything after it.
    fn orders(&self, anywhere: bool, crashing: bool) -> (Order, Order) {
        match self.placement {
            Placement::KernelWindow { .. } => {
                let o = if !crashing && anywhere { Order::TopDown } else { Order::BottomUp };
                (o, o)
            }
            Placement::AboveKernel { .. } => (Order::BottomUp, Order::TopDown),
        }
    }

    /// The window for everything after the kernel at `base` (ending at
    /// `kernel_end`); `ram_start` is the lowest address of the new kernel's
    /// memory.
    fn window(&self, base: u64, kernel_end: u64, order: Order, ram_start: u64) -> Range {
        match self.placement {
            Placement::KernelWindow { size, align } => {
                // Top-down it may start below the kernel, bottom-up it
                // starts above it, as kexec-tools places them.
                let start = align_down(base, align);
                Range::new(if order == Order::TopDown { start } else { kernel_end }, start.saturating_add(size))
            }
            Placement::AboveKernel { linear_map } => {
                Range::new(kernel_end, align_down(ram_start, PMD).saturating_add(linear_map))
            }
        }
    }

    /// Bytes the Image needs from its aligned base: booting.rst §4 puts it
    /// text_offset above the base; riscv's text_offset is an alignment,
    /// not a lead (None: more than 2^64, or not an Image).
    pub fn footprint(&self, kernel: &Kernel) -> Option<u64> {
        let Kernel::Image(i) = kernel else { return None };
        match self.text_offset {
            TextOffset::Lead => i.text_offset.checked_add(i.mem_size),
            TextOffset::Alignment => Some(i.mem_size),
        }
    }

    /// The largest initrd the window after the kernel can hold (arm64's
    /// 32 GiB window, riscv64's linear map), and why.
    pub fn initrd_limit(&self) -> (u64, String) {
        let bytes = match self.placement {
            Placement::KernelWindow { size, .. } => size,
            Placement::AboveKernel { linear_map } => linear_map,
        };
        (bytes, format!("an initrd may have ({})", self.window_rule))
    }

    /// (lead, alignment) of the kernel's hole for an Image with `text_offset`.
    fn kernel_hole(&self, text_offset: u64) -> (u64, u64) {
        match self.text_offset {
            TextOffset::Lead => (text_offset, self.kernel_align),
            TextOffset::Alignment => (0, self.kernel_align.max(text_offset)),
        }
    }
}

/// The kernel's console is the SBI one: `console=hvc0` (the SBI hvc
/// driver, drivers/tty/hvc/hvc_riscv_sbi.c) or `earlycon=sbi`
/// (drivers/tty/serial/earlycon-riscv-sbi.c), the last console= deciding.
fn sbi_console_in(line: &[u8]) -> bool {
    let last_console = cmdline::words(line).rev().find_map(|t| t.strip_prefix(b"console="));
    match last_console {
        Some(c) => c.starts_with(b"hvc"),
        None => cmdline::words(line).any(|t| t == b"earlycon=sbi"),
    }
}

/// Confine `free` to the RAM the DTB describes (see [`DtbMemory`]);
/// returns where that RAM starts when memory nodes give it. A DTB that
/// describes no RAM is refused: the new kernel would have none
/// (drivers/of/fdt.c early_init_dt_scan_memory finds nothing and there is
/// no UEFI memory map to fall back on). kexec-tools places by /proc/iomem
/// alone and would load it. Also returns the RAM list when it left out
/// memory /proc/iomem offers (placement errors name it).
fn dtb_memory(
    memory: &DtbMemory,
    free: &mut FreeMap,
    notes: &mut Vec<String>,
) -> Result<(Option<u64>, Option<String>), DtbEditError> {
    let nodes = match memory {
        DtbMemory::Uefi => return Ok((None, None)),
        DtbMemory::Absent => {
            return Err(DtbEditError::Unusable {
                why: "has no memory node (device_type = \"memory\") and no UEFI memory map (/chosen/linux,uefi-mmap-start): the new kernel would find no RAM (drivers/of/fdt.c early_init_dt_scan_memory)".into(),
            })
        }
        DtbMemory::Nodes(m) if m.is_empty() => {
            return Err(DtbEditError::Unusable {
                why: "has memory nodes that describe no RAM (every reg range has size 0): the new kernel would find none (drivers/of/fdt.c early_init_dt_scan_memory)".into(),
            })
        }
        DtbMemory::Nodes(m) => m,
    };
    let before = free.total();
    free.intersect(&FreeMap::new(nodes.clone()));
    let list = nodes.iter().map(Range::to_string).collect::<Vec<_>>().join(", ");
    if before > 0 && free.total() == 0 {
        return Err(DtbEditError::Unusable {
            why: format!(
                "has memory nodes for {list}, none of it usable memory here (/proc/iomem): the new kernel would run in RAM it does not know of"
            ),
        });
    }
    let clipped = (free.total() < before).then(|| {
        notes.push(format!(
            "segments only in the RAM the DTB's memory nodes describe ({list}): the new kernel knows no other"
        ));
        list
    });
    Ok((nodes.first().map(|r| r.start), clipped))
}

/// Place a kernel Image and build its DTB by `rules`.
pub(crate) fn place(input: ArchInput, arch: &ArchSpec, rules: &DtbBoot) -> Result<ArchLayout, LoadError> {
    let ArchInput {
        req,
        sys,
        iomem,
        kernel,
        kernel_source,
        initrd,
        free,
        crash,
        mut params,
        console_given,
        mut notes,
        ..
    } = input;
    let Kernel::Image(k) = &kernel.kernel else {
        return Err(PlanError::Internal(format!("{} is not an {} Image", kernel.format, arch.name)).into());
    };
    if k.size_estimated {
        notes.push(format!(
            "pre-3.17 kernel header (image_size 0): assuming text_offset {:#x} and {} MiB of memory",
            k.text_offset,
            k.mem_size >> 20
        ));
    }

    // The DTB to hand over, and what it tells us: --dtb, else a UKI's .dtb
    // (systemd-stub installs it in place of the firmware's), else the
    // running one. The user's --dtb-set/--dtb-delete are applied first:
    // everything below reads the DTB the new kernel gets.
    let own_dtb = kernel.embedded.as_ref().and_then(|e| e.dtb.clone());
    let (dtb_path, dtb_in) = match (&req.dtb, own_dtb) {
        (Some(p), _) => (p.clone(), input::read_file(p, rules.dtb_max, "a DTB may have")?),
        (None, Some(d)) => {
            notes.push(format!("DTB from the {} .dtb section", kernel.format));
            (req.kernel.clone(), d)
        }
        (None, None) => {
            let p = sys.fdt_path();
            let d = input::read_file(&p, rules.dtb_max, "a DTB may have")?;
            (p, d)
        }
    };
    let user = DtbEdits { set_strings: req.dtb_set.clone(), delete: req.dtb_delete.clone(), ..Default::default() };
    let edited = user.set_strings.len() + user.delete.len() > 0;
    let dtb_err = |err| LoadError::Dtb { path: dtb_path.clone(), err, edited };
    let source = SourceDtb::new(&dtb_in, &user).map_err(|e| LoadError::from_dtb_source(&dtb_path, e, edited))?;
    let facts = source.facts().map_err(dtb_err)?;

    // Without --append the DTB keeps its bootargs (kexec-tools' arm64
    // behaviour), minus crashkernel= (and elfcorehdr=) for a capture kernel.
    let crashing = crash.is_some();
    let dtb_bootargs = source.bootargs().map_err(dtb_err)?;
    let bootargs = cmdline::resolve(
        &req.cmdline,
        || sys.cmdline().map_err(LoadError::System),
        || Ok(dtb_bootargs.clone()),
        crashing,
        &mut notes,
    )?;
    let final_cmdline = bootargs.clone().or(dtb_bootargs).unwrap_or_default();
    if final_cmdline.contains(&0) {
        // /proc/cmdline, a UKI's .cmdline and the DTB's bootargs are
        // refused where they are read: the line was given.
        return Err(PlanError::Refused {
            rule: "the command line given (--append/--command-line) contains a NUL byte".into(),
        }
        .into());
    }
    if final_cmdline.len() > rules.command_line.max {
        return Err(LoadError::CmdlineTooLong {
            len: final_cmdline.len(),
            max: rules.command_line.max,
            rule: rules.command_line.rule,
        });
    }

    let mut kaslr_seed = [0u8; 8];
    let mut rng_seed = [0u8; 64];
    if random_bytes(&mut kaslr_seed)? == EntropyQuality::Early {
        notes.push("the entropy pool was not initialised yet: DTB seeds come from GRND_INSECURE (the purgatory mixes in the CPU's own entropy where it has some)".into());
    }
    random_bytes(&mut rng_seed)?;

    // The DTB is the new kernel's memory map: segments only in the RAM its
    // memory nodes describe, and never in what it reserves (/memreserve/,
    // /reserved-memory), even where /proc/iomem does not show it.
    let mut free = free;
    let (dtb_ram_start, dtb_ram) = dtb_memory(&facts.memory, &mut free, &mut notes).map_err(dtb_err)?;
    // A segment without room says so when the DTB's memory, not the
    // machine's, is what is too small.
    let room = |e: PlanError| match (e, &dtb_ram) {
        (PlanError::NoRoom { what, size, rule }, Some(list)) => PlanError::NoRoom {
            what,
            size,
            rule: format!("{rule}; only the RAM the DTB's memory nodes describe is used ({list})"),
        },
        (e, _) => e,
    };
    let before = free.clone();
    free.remove_all(facts.reserved.iter().copied().chain(facts.reserved_memory.iter().map(|r| r.range)));
    for r in facts.reserved_memory.iter().filter(|r| before.overlaps(&r.range)) {
        let how = match (r.no_map, r.reusable) {
            (true, _) => "no-map",
            (false, true) => "reusable",
            (false, false) => "reserved",
        };
        notes.push(format!("not using {} {} ({how}: the new kernel reserves it)", escape::text(&r.node), r.range));
    }
    let mut layout = Layout::with_page(free, sys.page_size);

    // arm64: top-down for a normal load (destination pages are then usually
    // free, so relocate_kernel copies nothing at reboot); bottom-up into the
    // crash reservation, and as low as possible when header flags bit 3
    // says so. riscv64: see Placement::AboveKernel.
    let (kernel_order, order) = rules.orders(k.anywhere, crashing);
    let (lead, align) = rules.kernel_hole(k.text_offset);
    let kr = layout
        .add(
            KexecBuf::new(SegmentKind::Kernel, k.data.clone(), kernel_source)
                .memsz(k.mem_size)
                .lead(lead)
                .align(align)
                .order(kernel_order)
                .window(Range::ALL, rules.kernel_rule),
        )
        .map_err(room)?;
    let base = kr.start - lead;
    // The new kernel's memory: the crash ranges it is confined to, else
    // what the DTB describes, else all System RAM.
    let ram_start = match (&crash, dtb_ram_start) {
        (Some(c), _) => c.ranges.iter().map(|r| r.start).min(),
        (None, Some(start)) => Some(start),
        (None, None) => iomem.system_ram().iter().map(|r| r.start).min(),
    }
    .unwrap_or(0);
    let window = rules.window(base, kr.end, order, ram_start);
    let rule = format!("must lie between {:#x} and {:#x} ({})", window.start, window.end, rules.window_rule);

    let mut initrd_range = None;
    if let Some(i) = initrd {
        let len = i.data.len() as u64;
        let r = layout
            .add(KexecBuf::new(SegmentKind::Initrd, i.data, i.source).order(order).window(window, &rule))
            .map_err(room)?;
        initrd_range = Some(Range::new(r.start, r.start + len));
    }

    let mut edits = DtbEdits {
        bootargs,
        initrd: initrd_range,
        kaslr_seed: Some(kaslr_seed),
        rng_seed: Some(rng_seed),
        remove_crash_properties: true,
        ..Default::default()
    };
    if let Some(c) = &crash {
        let r = layout
            .add(
                KexecBuf::new(SegmentKind::ElfCoreHdr, Blob::new(c.header.clone()), "generated elfcorehdr")
                    .memsz(c.memsz)
                    .excluded(c.excluded)
                    .order(order)
                    .window(window, &rule),
            )
            .map_err(room)?;
        // Documentation/devicetree/bindings/chosen.txt: the capture kernel
        // finds its elfcorehdr and may use only the crash ranges.
        edits.elfcorehdr = Some(r);
        edits.usable_memory = Some(c.ranges.clone());
    }
    let dtb = source.finish(&edits).map_err(dtb_err)?;
    if dtb.len() as u64 > rules.dtb_max {
        let rule = format!("{}: the DTB must not exceed {} MiB", rules.dtb_rule, rules.dtb_max >> 20);
        return Err(PlanError::NoRoom { what: "dtb", size: dtb.len() as u64, rule }.into());
    }
    let dtb_r = layout
        .add(KexecBuf::new(SegmentKind::Dtb, Blob::new(dtb), "generated DTB").order(order).window(window, &rule))
        .map_err(room)?;

    params.flags |= PARAM_FLAG_REFRESH_SEEDS | PARAM_FLAG_SET_BOOT_CPU;
    // The purgatory resets through PSCI where the DTB names its conduit.
    params.psci_conduit = match (rules.psci, facts.psci_method) {
        (true, Some(method)) => method.conduit(),
        _ => PSCI_CONDUIT_NONE,
    };
    // The console /chosen/stdout-path names, unless --serial chose one;
    // else the SBI console where the kernel's own console is there.
    if !console_given {
        if let Some(c) = facts.console {
            params.console = c;
        } else if rules.sbi_console && sbi_console_in(&final_cmdline) {
            params.console = ConsoleDesc { kind: CONSOLE_SBI, reserved: 0, base: 0 };
        }
    }

    Ok(ArchLayout {
        layout,
        kernel_entry: kr.start,
        boot_data: BootData { kind: SegmentKind::Dtb, addr: dtb_r.start },
        cmdline: final_cmdline,
        params,
        purgatory: vec![
            PurgatoryWindow { window, order, rule: "near the kernel (its window)" },
            PurgatoryWindow { window: Range::ALL, order, rule: "needs 4 KiB aligned RAM" },
        ],
        notes,
        entry_fill: None,
    })
}
