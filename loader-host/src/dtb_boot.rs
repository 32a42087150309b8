//! The boot protocol shared by the architectures that hand the new kernel a
//! DTB and load a raw "Image" (arm64 booting.rst, riscv64 boot.rst): the
//! Image at an aligned base plus text_offset, initrd and elfcorehdr near
//! it, and the DTB — built from the running one (or --dtb) with the new
//! command line, initrd, seeds and kdump properties — last. What differs
//! between those architectures is a [`DtbBoot`] each declares.

use kexec_purgatory::abi::{
    SegmentKind, PARAM_FLAG_REFRESH_SEEDS, PARAM_FLAG_SET_BOOT_CPU, PSCI_CONDUIT_HVC, PSCI_CONDUIT_NONE,
    PSCI_CONDUIT_SMC,
};

use crate::arch::Arch;
use crate::cmdline;
use crate::dtb::handover::{self, DtbEdits};
use crate::error::LoadError;
use crate::image::Kernel;
use crate::input::{self, Blob};
use crate::placement::{KexecBuf, Layout, Order};
use crate::plan::{BootData, PlanError};
use crate::planner::{ArchInput, ArchLayout, PurgatoryWindow};
use crate::range::{align_down, Range};
use crate::system::entropy::{random_bytes, EntropyQuality};

/// An architecture's rules for an Image + DTB boot.
#[derive(Clone, Copy, Debug)]
pub struct DtbBoot {
    pub arch: Arch,
    /// Alignment of the base the Image goes text_offset above.
    pub kernel_align: u64,
    /// Why (for the error when no such base is free).
    pub kernel_rule: &'static str,
    /// Initrd, elfcorehdr, DTB and purgatory go below the end of a window
    /// of this size starting at the kernel's base rounded down to
    /// `window_align` (None: anywhere in RAM).
    pub window: Option<(u64, u64)>,
    pub window_rule: &'static str,
    /// The largest DTB the kernel takes, and where that rule is written.
    pub dtb_max: u64,
    pub dtb_rule: &'static str,
    /// COMMAND_LINE_SIZE, the NUL included.
    pub command_line_size: usize,
    pub command_line_rule: &'static str,
}

impl DtbBoot {
    /// The window for everything after the kernel at `base` (ending at
    /// `kernel_end`): top-down it may start below the kernel, bottom-up it
    /// starts above it, as kexec-tools places them.
    fn window(&self, base: u64, kernel_end: u64, order: Order) -> Range {
        let (start, end) = match self.window {
            Some((size, align)) => {
                let start = align_down(base, align);
                (start, start.saturating_add(size))
            }
            None => (0, u64::MAX),
        };
        Range::new(if order == Order::TopDown { start } else { kernel_end }, end)
    }
}

/// Place a kernel Image and build its DTB by `rules`.
pub fn plan(input: ArchInput, rules: &DtbBoot) -> Result<ArchLayout, LoadError> {
    let ArchInput {
        req, sys, kernel, kernel_source, initrd, free, crash, mut params, console_given, mut notes, ..
    } = input;
    let Kernel::Image(k) = &kernel.kernel else {
        return Err(PlanError::Internal(format!("{} is not an {} Image", kernel.format, rules.arch)).into());
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
    // running one.
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
    let dtb_err = |err| LoadError::Dtb { path: dtb_path.clone(), err };
    let facts = handover::facts(&dtb_in).map_err(dtb_err)?;

    // Without --append the DTB keeps its bootargs (kexec-tools' arm64
    // behaviour), minus crashkernel= for a capture kernel.
    let crashing = crash.is_some();
    let bootargs = cmdline::resolve(
        &req.cmdline,
        || sys.cmdline().map_err(LoadError::System),
        || Ok(handover::bootargs(&dtb_in)),
        crashing,
    )?;
    let final_cmdline = bootargs.clone().or_else(|| handover::bootargs(&dtb_in)).unwrap_or_default();
    if final_cmdline.len() >= rules.command_line_size {
        return Err(LoadError::CmdlineTooLong {
            len: final_cmdline.len(),
            max: rules.command_line_size - 1,
            rule: rules.command_line_rule,
        });
    }

    let mut kaslr_seed = [0u8; 8];
    let mut rng_seed = [0u8; 64];
    if random_bytes(&mut kaslr_seed)? == EntropyQuality::Early {
        notes.push("the entropy pool was not initialised yet: DTB seeds come from GRND_INSECURE (the purgatory mixes in the CPU's own entropy where it has some)".into());
    }
    random_bytes(&mut rng_seed)?;

    // Memory the DTB reserves (/memreserve/) stays untouched even when
    // /proc/iomem does not show it.
    let mut free = free;
    for r in &facts.reserved {
        free.remove(*r);
    }
    let mut layout = Layout::new(free);

    // Top-down for a normal load (destination pages are then usually free,
    // so relocate_kernel copies nothing at reboot); bottom-up into the crash
    // reservation, and as low as possible when header flags bit 3 says so.
    let order = if !crashing && k.anywhere { Order::TopDown } else { Order::BottomUp };
    let kr = layout.add(
        KexecBuf::new(SegmentKind::Kernel, k.data.clone(), kernel_source)
            .memsz(k.mem_size)
            .lead(k.text_offset)
            .align(rules.kernel_align)
            .order(order)
            .window(Range::ALL, rules.kernel_rule),
    )?;
    let base = kr.start - k.text_offset;
    let window = rules.window(base, kr.end, order);
    let rule = format!("must lie between {:#x} and {:#x} ({})", window.start, window.end, rules.window_rule);

    let mut initrd_range = None;
    if let Some(i) = initrd {
        let len = i.data.len() as u64;
        let r = layout.add(KexecBuf::new(SegmentKind::Initrd, i.data, i.source).order(order).window(window, &rule))?;
        initrd_range = Some(Range::new(r.start, r.start + len));
    }

    let mut edits = DtbEdits {
        bootargs,
        initrd: initrd_range,
        kaslr_seed: Some(kaslr_seed),
        rng_seed: Some(rng_seed),
        remove_crash_properties: true,
        set_strings: req.dtb_set.clone(),
        delete: req.dtb_delete.clone(),
        ..Default::default()
    };
    if let Some(c) = &crash {
        let r = layout.add(
            KexecBuf::new(SegmentKind::ElfCoreHdr, Blob::new(c.header.clone()), "generated elfcorehdr")
                .memsz(c.memsz)
                .excluded(c.excluded)
                .order(order)
                .window(window, &rule),
        )?;
        // Documentation/devicetree/bindings/chosen.txt: the capture kernel
        // finds its elfcorehdr and may use only the crash ranges.
        edits.elfcorehdr = Some(r);
        edits.usable_memory = Some(c.ranges.clone());
    }
    let dtb = handover::apply(&dtb_in, &edits).map_err(dtb_err)?;
    if dtb.len() as u64 > rules.dtb_max {
        let rule = format!("{}: the DTB must not exceed {} MiB", rules.dtb_rule, rules.dtb_max >> 20);
        return Err(PlanError::NoRoom { what: "dtb", size: dtb.len() as u64, rule }.into());
    }
    let dtb_r = layout
        .add(KexecBuf::new(SegmentKind::Dtb, Blob::new(dtb), "generated DTB").order(order).window(window, &rule))?;

    params.flags |= PARAM_FLAG_REFRESH_SEEDS | PARAM_FLAG_SET_BOOT_CPU;
    // The purgatory resets through PSCI where the DTB names its conduit.
    params.psci_conduit = match facts.psci_method.as_deref() {
        Some("hvc") => PSCI_CONDUIT_HVC,
        Some("smc") => PSCI_CONDUIT_SMC,
        _ => PSCI_CONDUIT_NONE,
    };
    // The console /chosen/stdout-path names, unless --serial chose one.
    if let (false, Some(c)) = (console_given, facts.console) {
        params.console = c;
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
    })
}
