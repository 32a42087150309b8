//! arm64 (Documentation/arch/arm64/booting.rst): the Image at a 2 MiB
//! aligned base plus text_offset, initrd, elfcorehdr and DTB inside the
//! kernel's 32 GiB window, the DTB (x0) built from the running one with the
//! new command line, initrd, seeds and kdump properties.

use kexec_purgatory::abi::{
    SegmentKind, PARAM_FLAG_REFRESH_SEEDS, PARAM_FLAG_SET_BOOT_CPU, PSCI_CONDUIT_HVC, PSCI_CONDUIT_NONE,
    PSCI_CONDUIT_SMC,
};

use crate::cmdline;
use crate::crash::elfcore::EM_AARCH64;
use crate::crash::{CrashPlacement, CrashPolicy};
use crate::dtb::handover::{self, DtbEdits};
use crate::error::LoadError;
use crate::image::Kernel;
use crate::input::{self, Blob};
use crate::placement::{KexecBuf, Layout, Order};
use crate::plan::{BootData, PlanError};
use crate::planner::{ArchInput, ArchLayout, PurgatoryWindow};
use crate::range::{align_down, Range};
use crate::system::entropy::{random_bytes, EntropyQuality};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// booting.rst §4: "The Image must be placed text_offset bytes from a 2MB
/// aligned base address".
pub const KERNEL_ALIGN: u64 = 2 * MIB;
/// booting.rst §2: "the dtb must not exceed 2 megabytes in size".
pub const DTB_MAX: u64 = 2 * MIB;
/// kexec-tools' arm64 rule (kexec/arch/arm64/kexec-arm64.c): initrd and
/// DTB below the end of the 32 GiB window that starts at the 1 GiB aligned
/// base of the kernel, so that the kernel's early mappings reach them.
pub const WINDOW: u64 = 32 * GIB;
/// arch/arm64/include/uapi/asm/setup.h: COMMAND_LINE_SIZE 2048, the NUL
/// included.
pub const COMMAND_LINE_SIZE: usize = 2048;

/// arm64's own elfcorehdr (arch/arm64/kernel/machine_kexec_file.c
/// prepare_elf_headers): all System RAM minus the crash ranges.
pub const CRASH: CrashPolicy = CrashPolicy {
    machine: EM_AARCH64,
    skip_low_1m: false,
    dump_driver_managed: false,
    kernel_text: false,
    placement: CrashPlacement::AllRanges,
};

/// Place an arm64 kernel and build its DTB.
pub fn plan(input: ArchInput) -> Result<ArchLayout, LoadError> {
    let ArchInput {
        req, sys, kernel, kernel_source, initrd, free, crash, mut params, console_given, mut notes, ..
    } = input;
    let Kernel::Image(k) = &kernel.kernel else {
        return Err(PlanError::Internal(format!("{} is not an arm64 Image", kernel.format)).into());
    };
    if k.size_estimated {
        notes.push(format!(
            "pre-3.17 kernel header (image_size 0): assuming text_offset {:#x} and {} MiB of memory",
            k.text_offset,
            k.mem_size >> 20
        ));
    }

    // The DTB to hand over, and what it tells us.
    // --dtb, else a UKI's .dtb (systemd-stub installs it in place of the
    // firmware's), else the running one.
    let own_dtb = kernel.embedded.as_ref().and_then(|e| e.dtb.clone());
    let (dtb_path, dtb_in) = match (&req.dtb, own_dtb) {
        (Some(p), _) => (p.clone(), input::read_file(p, DTB_MAX, "booting.rst allows for a DTB")?),
        (None, Some(d)) => {
            notes.push(format!("DTB from the {} .dtb section", kernel.format));
            (req.kernel.clone(), d)
        }
        (None, None) => {
            let p = sys.fdt_path();
            let d = input::read_file(&p, DTB_MAX, "booting.rst allows for a DTB")?;
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
    if final_cmdline.len() >= COMMAND_LINE_SIZE {
        return Err(LoadError::CmdlineTooLong {
            len: final_cmdline.len(),
            max: COMMAND_LINE_SIZE - 1,
            rule: "arm64's COMMAND_LINE_SIZE (2048 with the NUL, arch/arm64/include/uapi/asm/setup.h)",
        });
    }

    let mut kaslr_seed = [0u8; 8];
    let mut rng_seed = [0u8; 64];
    if random_bytes(&mut kaslr_seed)? == EntropyQuality::Early {
        notes.push("the entropy pool was not initialised yet: DTB seeds come from GRND_INSECURE (the purgatory mixes in RNDR where the CPU has it)".into());
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
            .align(KERNEL_ALIGN)
            .order(order)
            .window(Range::ALL, "needs a 2 MiB aligned base with text_offset + image_size bytes free (booting.rst §4)"),
    )?;
    let base = kr.start - k.text_offset;
    let window_start = align_down(base, GIB);
    let window =
        Range::new(if order == Order::TopDown { window_start } else { kr.end }, window_start.saturating_add(WINDOW));
    let rule = format!(
        "must lie between {:#x} and {:#x} (the kernel's 32 GiB window, kexec-tools' arm64 rule)",
        window.start, window.end
    );

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
    if dtb.len() as u64 > DTB_MAX {
        return Err(PlanError::NoRoom {
            what: "dtb",
            size: dtb.len() as u64,
            rule: "booting.rst §2: the DTB must not exceed 2 MiB".into(),
        }
        .into());
    }
    let dtb_r = layout
        .add(KexecBuf::new(SegmentKind::Dtb, Blob::new(dtb), "generated DTB").order(order).window(window, &rule))?;

    params.flags |= PARAM_FLAG_REFRESH_SEEDS | PARAM_FLAG_SET_BOOT_CPU;
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
            PurgatoryWindow { window, order, rule: "near the kernel (its 32 GiB window)" },
            PurgatoryWindow { window: Range::ALL, order, rule: "needs 4 KiB aligned RAM" },
        ],
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;
    use crate::request::{CmdlineChoice, CrashOptions, Request};
    use crate::testing::{arm64_image, arm64_tree, Tree, ARM64_FLAGS_ANYWHERE, ARM64_FLAGS_LOW, VIRT_1G};

    fn plan_with(t: &Tree, image: Vec<u8>, edit: impl FnOnce(&mut Request)) -> Result<Plan, LoadError> {
        let mut req = Request::new(t.write("Image", image));
        edit(&mut req);
        crate::planner::plan(&req, &t.sys())
    }

    fn kinds(p: &Plan) -> Vec<&'static str> {
        p.segments.iter().map(|s| s.kind_name()).collect()
    }

    #[test]
    fn layout_follows_booting_rst() {
        let t = arm64_tree("a64-layout", VIRT_1G);
        let initrd = t.write("initrd", vec![1u8; 5000]);
        let p = plan_with(&t, arm64_image(0, 4 * MIB + 0x800, ARM64_FLAGS_ANYWHERE, 3 * MIB as usize), |r| {
            r.initrds.push(initrd.clone())
        })
        .unwrap();
        assert_eq!(kinds(&p), ["kernel", "initrd", "dtb", "purgatory"]);
        let k = &p.segments[0];
        assert_eq!(k.mem % KERNEL_ALIGN, 0);
        assert_eq!(k.memsz, 4 * MIB + 0x1000, "image_size rounded to pages");
        assert_eq!(k.digest_len, (3 * MIB + 64).next_multiple_of(4096), "bss is room, not hashed");
        assert_eq!(p.kernel_entry, k.mem);
        // Top-down for a normal load: the kernel at the top of RAM, the rest
        // in its window.
        assert!(k.mem + k.memsz > 0x7f00_0000, "{k:?}");
        let i = &p.segments[1];
        let dtb = crate::dtb::edit::DtbEditor::from_blob(&p.segments[2].data).unwrap();
        assert_eq!(dtb.initrd().unwrap(), Some(Range::new(i.mem, i.mem + 5000)), "the DTB names the real initrd");
        assert_eq!(dtb.bootargs().unwrap().as_deref(), Some("console=ttyAMA0 root=/dev/vda"), "bootargs kept");
        assert_eq!(p.boot_data, BootData { kind: SegmentKind::Dtb, addr: p.segments[2].mem });
        assert_eq!(p.params.nr_segments, 3, "the purgatory does not describe itself");
        assert_eq!(p.params.console.base, 0x900_0000);
        assert_eq!(p.params.psci_conduit, PSCI_CONDUIT_HVC);
    }

    #[test]
    fn text_offset_and_low_placement_are_honoured() {
        let t = arm64_tree("a64-low", VIRT_1G);
        let p = plan_with(&t, arm64_image(0x8_0000, 4 * MIB, ARM64_FLAGS_LOW, 4096), |_| {}).unwrap();
        let k = &p.segments[0];
        assert_eq!(k.mem % KERNEL_ALIGN, 0x8_0000);
        assert_eq!(
            k.mem,
            0x4000_0000 + 0x8_0000,
            "flags bit 3 clear: the lowest 2 MiB base (over the running kernel's image, which kexec may reuse)"
        );
        for s in &p.segments[1..] {
            assert!(s.mem > k.mem, "bottom-up: {s:?} above the kernel");
        }
    }

    #[test]
    fn ram_at_zero_and_mmio_over_ram_receive_nothing() {
        // System RAM from 0, a GIC listed across it, flags bit 3 clear (as
        // low as possible): the kernel lands neither at 0 nor on the GIC.
        let t = arm64_tree(
            "a64-zero",
            "00000000-3fffffff : System RAM\n00000000-001fffff : GICD\n00200000-002fffff : GICR\n",
        );
        let p = plan_with(&t, arm64_image(0, 4 * MIB, ARM64_FLAGS_LOW, 4096), |_| {}).unwrap();
        assert_eq!(p.segments[0].mem, 0x40_0000);
        for s in &p.segments {
            assert!(s.mem >= 0x30_0000, "{s:?} on the GIC or page 0");
        }
    }

    #[test]
    fn no_room_and_window_errors_say_why() {
        let t = arm64_tree("a64-small", "40000000-40ffffff : System RAM\n");
        let err = plan_with(&t, arm64_image(0, 64 * MIB, ARM64_FLAGS_ANYWHERE, 4096), |_| {}).unwrap_err();
        assert!(err.to_string().contains("kernel"), "{err}");
        assert!(
            err.to_string().contains("4160 bytes is more than") || err.to_string().contains("no room for the kernel")
        );
        // Only memory far above the kernel's 32 GiB window is left for the initrd.
        let t = arm64_tree("a64-window", "40000000-405fffff : System RAM\n1000000000-1010000000 : System RAM\n");
        let initrd = t.write("initrd", vec![0u8; 4 * MIB as usize]);
        let err = plan_with(&t, arm64_image(0, 4 * MIB, ARM64_FLAGS_LOW, 4096), |r| r.initrds.push(initrd.clone()))
            .unwrap_err();
        assert!(err.to_string().contains("no room for the initrd"), "{err}");
        assert!(err.to_string().contains("32 GiB window"), "{err}");
    }

    #[test]
    fn command_line_and_dtb_limits() {
        let t = arm64_tree("a64-limits", VIRT_1G);
        let img = arm64_image(0, 4 * MIB, ARM64_FLAGS_ANYWHERE, 4096);
        let err = plan_with(&t, img.clone(), |r| r.cmdline = CmdlineChoice::Set("x".repeat(2048))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the command line is 2048 bytes; arm64's COMMAND_LINE_SIZE (2048 with the NUL, arch/arm64/include/uapi/asm/setup.h) allows 2047"
        );
        assert!(plan_with(&t, img.clone(), |r| r.cmdline = CmdlineChoice::Set("x".repeat(2047))).is_ok());
        let err = plan_with(&t, img, |r| r.dtb_set.push(("/chosen/big".into(), "y".repeat(3 << 20)))).unwrap_err();
        assert!(err.to_string().contains("must not exceed 2 MiB"), "{err}");
    }

    #[test]
    fn crash_plan_stays_in_the_crash_range_and_names_the_elfcorehdr() {
        let t = arm64_tree(
            "a64-crash",
            "40000000-bfffffff : System RAM\n  40210000-4175ffff : Kernel code\n  a0000000-afffffff : Crash kernel\n",
        );
        t.crash_notes(2);
        let p = plan_with(&t, arm64_image(0, 8 * MIB, ARM64_FLAGS_ANYWHERE, 4096), |r| {
            r.crash = Some(CrashOptions { hotplug: false, exclude: true });
            r.cmdline = CmdlineChoice::Reuse("maxcpus=1".into());
        })
        .unwrap();
        assert_eq!(kinds(&p), ["kernel", "elfcorehdr", "dtb", "purgatory"]);
        let crash = Range::new(0xa000_0000, 0xb000_0000);
        for s in &p.segments {
            assert!(crash.contains_range(&s.range()), "{s:?}");
        }
        assert_eq!(p.segments[0].mem, 0xa000_0000, "bottom-up into the reservation");
        // kexec-tools' remove_parameter keeps the space before a removed
        // last token, and concat_cmdline adds one: byte for byte the same.
        assert_eq!(p.cmdline, "console=ttyAMA0 root=/dev/vda  maxcpus=1", "BOOT_IMAGE and crashkernel dropped");
        let core = p.elfcorehdr.unwrap();
        assert_eq!((core.addr, core.cpu_notes, core.pt_load), (p.segments[1].mem, 2, 2));
        let dtb = crate::dtb::edit::DtbEditor::from_blob(&p.segments[2].data).unwrap();
        assert!(dtb.property("/chosen", "linux,elfcorehdr").unwrap().is_some());
        assert_eq!(dtb.property("/chosen", "linux,usable-memory-range").unwrap().map(<[u8]>::len), Some(16));
    }
}
