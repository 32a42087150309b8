//! riscv64 (Documentation/arch/riscv/boot.rst): an Image + DTB boot
//! (`dtb_boot`) with the Image at a 2 MiB aligned base, initrd,
//! elfcorehdr, DTB and purgatory above it, the hart id in a0 and the DTB
//! in a1 (the purgatory hands over what the kernel's relocation code would
//! have: docs/riscv64.md). No PSCI (the purgatory resets through SBI SRST),
//! no crash hotplug.

use kexec_purgatory::abi::{ARCH_RISCV64, CONSOLE_SBI};
use kexec_purgatory::elf::EM_RISCV;

use super::contract::{ArchInput, ArchLayout, Architecture, CmdlineLimit};
use super::dtb_boot::{self, DtbBoot, Placement, TextOffset};
use crate::arch_spec::{ArchSpec, CrashPolicy, NamedConsole};
use crate::error::LoadError;
use crate::image::Kernel;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// boot.rst "Kernel location": "the kernel must be placed at a PMD
/// boundary (2MB aligned for rv64 ...)".
pub const KERNEL_ALIGN: u64 = 2 * MIB;
/// arch/riscv/include/asm/pgtable.h: MAX_FDT_SIZE = PMD_SIZE (2 MiB) on
/// rv64, the most the early fixmap maps of the DTB.
pub const DTB_MAX: u64 = 2 * MIB;
/// The linear map of a kernel in its smallest mode (Sv39): KERN_VIRT_SIZE
/// = (PTRS_PER_PGD / 2 * PGDIR_SIZE) / 2 = 128 GiB
/// (arch/riscv/include/asm/pgtable.h); setup_bootmem()
/// (arch/riscv/mm/init.c) removes RAM above phys_ram_base + KERN_VIRT_SIZE
/// from memblock, so an initrd there would not be in memory at all.
pub const LINEAR_MAP: u64 = 128 * GIB;
/// arch/riscv/include/uapi/asm/setup.h: COMMAND_LINE_SIZE 1024, the NUL
/// included.
pub const COMMAND_LINE_SIZE: usize = 1024;

/// Why `--hotplug` is refused (docs/riscv64.md "Crash kernel").
pub const NO_HOTPLUG: &str = "riscv64 has no crash hotplug (arch/riscv/Kconfig does not select \
ARCH_SUPPORTS_CRASH_HOTPLUG, so the kernel never rewrites the elfcorehdr after load and rejects \
KEXEC_CRASH_HOTPLUG_SUPPORT)";

/// riscv64 as the loader sees it.
pub static SPEC: ArchSpec = ArchSpec {
    name: "riscv64",
    aliases: &[],
    rust_arch: "riscv64",
    debian_arch: "riscv64",
    elf_machine: EM_RISCV,
    purgatory_arch: ARCH_RISCV64,
    hotplug_flag: None,
    crash: CRASH,
    kernel_takes_first_fdt: true,
    // `--serial hvcN`: the kernel's SBI console (drivers/tty/hvc/
    // hvc_riscv_sbi.c); the purgatory writes through SBI DBCN or the
    // legacy putchar.
    named_consoles: &[NamedConsole { tty: "hvc", prefix: true, kind: CONSOLE_SBI, base: 0, sysfs_first: false }],
    io_port_serial: false,
};

/// riscv's own elfcorehdr (arch/riscv/kernel/machine_kexec_file.c
/// prepare_elf_headers): all System RAM minus the crash kernel range, and
/// minus what M-mode firmware protects with PMP (OpenSBI's
/// /reserved-memory/mmode_resv* nodes): measured under QEMU, reading that
/// through /proc/vmcore fails with EFAULT, so a dump tool copying the
/// whole core would stop there (kexec-tools and the kernel keep it). The
/// segments go into the highest "Crash kernel" range only: kexec_load's
/// sanity_check_segment_list() (kernel/kexec_core.c) accepts crashk_res
/// alone, and kexec-tools' riscv loader (crashdump-riscv.c
/// get_crash_kernel_load_range) takes the last one.
pub const CRASH: CrashPolicy = CrashPolicy {
    skip_low_1m: false,
    dump_driver_managed: false,
    kernel_text: false,
    no_hotplug: Some(NO_HOTPLUG),
    skip_firmware_protected: true,
    backup_low: None,
    linear_map_base: None,
    hotplug_rewrites_dtb: false,
};

/// boot.rst's rules and the placement both riscv loaders use: kexec-tools
/// (kexec/arch/riscv/kexec-image-riscv.c: the Image bottom-up at the
/// first aligned base; kexec-riscv.c load_extra_segments: initrd top-down
/// above the kernel's end, the DTB below it) and the kernel's own
/// (arch/riscv/kernel/kexec_image.c, machine_kexec_file.c
/// load_extra_segments: buf_min = kernel end, top-down).
pub const BOOT: DtbBoot = DtbBoot {
    kernel_align: KERNEL_ALIGN,
    kernel_rule: "needs a 2 MiB aligned base (aligned to text_offset if larger) with image_size bytes free (boot.rst \"Kernel location\")",
    text_offset: TextOffset::Alignment,
    placement: Placement::AboveKernel { linear_map: LINEAR_MAP },
    window_rule: "above the kernel, as kexec-tools' and the kernel's riscv loaders place them, and inside the 128 GiB an Sv39 kernel maps linearly",
    dtb_max: DTB_MAX,
    dtb_rule: "arch/riscv/include/asm/pgtable.h MAX_FDT_SIZE",
    command_line: CmdlineLimit {
        max: COMMAND_LINE_SIZE - 1,
        rule: "riscv's COMMAND_LINE_SIZE (1024 with the NUL, arch/riscv/include/uapi/asm/setup.h)",
    },
    psci: false,
    sbi_console: true,
};

/// The riscv64 planner.
pub(crate) struct Riscv64;

impl Architecture for Riscv64 {
    fn spec(&self) -> &'static ArchSpec {
        &SPEC
    }

    fn place(&self, input: ArchInput) -> Result<ArchLayout, LoadError> {
        dtb_boot::place(input, &SPEC, &BOOT)
    }

    fn kernel_footprint(&self, kernel: &Kernel) -> Option<u64> {
        BOOT.footprint(kernel)
    }

    fn initrd_limit(&self) -> Option<(u64, String)> {
        Some(BOOT.initrd_limit())
    }

    fn file_load_cmdline_limit(&self, _: &Kernel) -> Option<CmdlineLimit> {
        // arch/riscv/kernel/machine_kexec_file.c puts the line into the
        // DTB's bootargs; the kernel keeps COMMAND_LINE_SIZE - 1 of them.
        Some(BOOT.command_line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtb::edit::DtbEditor;
    use crate::plan::{BootData, Plan};
    use crate::range::Range;
    use crate::request::{CmdlineChoice, CrashOptions, Hotplug, Request};
    use crate::testing::{riscv_image, riscv_tree, riscv_virt_dtb, Tree, RISCV_VIRT_1G};
    use kexec_purgatory::abi::{SegmentKind, CONSOLE_8250_MMIO8, CONSOLE_SBI, PSCI_CONDUIT_NONE};

    /// The trixie kernel's header values.
    const TEXT_OFFSET: u64 = 0x20_0000;
    const IMAGE_SIZE: u64 = 0x1e6_c000;

    fn plan_with(t: &Tree, image: Vec<u8>, edit: impl FnOnce(&mut Request)) -> Result<Plan, LoadError> {
        let mut req = Request::new(t.write("Image", image));
        edit(&mut req);
        crate::planner::plan(&req, &t.sys())
    }

    fn kinds(p: &Plan) -> Vec<&'static str> {
        p.segments.iter().map(|s| s.kind_name()).collect()
    }

    fn debian_like() -> Vec<u8> {
        riscv_image(TEXT_OFFSET, IMAGE_SIZE, 3 * MIB as usize)
    }

    #[test]
    fn layout_follows_the_riscv_loaders() {
        let t = riscv_tree("rv-layout", RISCV_VIRT_1G);
        let initrd = t.write("initrd", vec![1u8; 5000]);
        let p = plan_with(&t, debian_like(), |r| r.initrds.push(initrd.clone())).unwrap();
        assert_eq!(p.arch.name, "riscv64");
        assert_eq!(kinds(&p), ["kernel", "initrd", "dtb", "purgatory"]);
        let k = &p.segments[0];
        // Bottom-up at the first 2 MiB boundary with image_size free: above
        // OpenSBI, the running kernel's image and its reservations.
        assert_eq!(k.mem, 0x8220_0000);
        assert_eq!(k.mem % KERNEL_ALIGN, 0);
        assert_eq!(p.kernel_entry, k.mem, "entry at the Image's first byte, not base + text_offset");
        assert_eq!(k.memsz, IMAGE_SIZE, "image_size covers the bss");
        assert_eq!(k.digest_len, (3 * MIB + 64).next_multiple_of(4096));
        // The rest top-down above the kernel: the initrd at the top of RAM,
        // the DTB under it.
        let (i, d) = (&p.segments[1], &p.segments[2]);
        assert!(i.mem >= k.mem + k.memsz && d.mem >= k.mem + k.memsz, "{i:?} {d:?}");
        assert_eq!(i.mem + i.memsz, 0xc000_0000, "the highest hole");
        assert_eq!(d.mem + d.memsz, i.mem, "the DTB just below the initrd, as kexec-tools puts it");
        let dtb = DtbEditor::from_blob(&d.data).unwrap();
        assert_eq!(dtb.initrd().unwrap(), Some(Range::new(i.mem, i.mem + 5000)));
        assert_eq!(dtb.bootargs().unwrap().as_deref(), Some(&b"console=ttyS0 root=/dev/vda"[..]), "bootargs kept");
        assert_eq!(p.boot_data, BootData { kind: SegmentKind::Dtb, addr: d.mem });
        assert_eq!(p.params.console.kind, CONSOLE_8250_MMIO8, "uart0: byte registers, no reg-shift");
        assert_eq!(p.params.console.base, 0x1000_0000);
        assert_eq!(p.params.psci_conduit, PSCI_CONDUIT_NONE, "no PSCI on riscv: the purgatory resets through SBI");
        assert_eq!(p.params.nr_segments, 3);
        let purg = p.segments.last().unwrap();
        assert!(purg.mem >= k.mem + k.memsz, "the purgatory above the kernel too: {purg:?}");
    }

    #[test]
    fn larger_text_offset_is_the_alignment_and_small_ones_keep_2_mib() {
        let t = riscv_tree("rv-align", RISCV_VIRT_1G);
        let p = plan_with(&t, riscv_image(0x400_0000, 4 * MIB, 4096), |_| {}).unwrap();
        assert_eq!(p.segments[0].mem, 0x8400_0000, "64 MiB aligned");
        let p = plan_with(&t, riscv_image(0x1000, 4 * MIB, 4096), |_| {}).unwrap();
        assert_eq!(p.segments[0].mem % KERNEL_ALIGN, 0, "never less than boot.rst's 2 MiB");
    }

    #[test]
    fn everything_stays_in_the_sv39_linear_map() {
        // RAM at 2 GiB and far above 2 GiB + 128 GiB: the initrd may not go up there.
        let t = riscv_tree("rv-linear", "80000000-805fffff : System RAM\n4000000000-4000ffffff : System RAM\n");
        let initrd = t.write("initrd", vec![0u8; 4 * MIB as usize]);
        let err = plan_with(&t, riscv_image(TEXT_OFFSET, 4 * MIB, 4096), |r| r.initrds.push(initrd.clone()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no room for the initrd"), "{err}");
        // The kernel above OpenSBI's /reserved-memory (0x80000000, 512 KiB).
        assert!(err.contains("between 0x80600000 and 0x2080000000"), "{err}");
        assert!(err.contains("Sv39 kernel maps linearly"), "{err}");
    }

    #[test]
    fn command_line_dtb_and_header_limits() {
        let t = riscv_tree("rv-limits", RISCV_VIRT_1G);
        let img = riscv_image(TEXT_OFFSET, 4 * MIB, 4096);
        let err = plan_with(&t, img.clone(), |r| r.cmdline = CmdlineChoice::Set("x".repeat(1024).into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the command line is 1024 bytes; riscv's COMMAND_LINE_SIZE (1024 with the NUL, arch/riscv/include/uapi/asm/setup.h) allows 1023"
        );
        assert!(plan_with(&t, img.clone(), |r| r.cmdline = CmdlineChoice::Set("x".repeat(1023).into())).is_ok());
        let err = plan_with(&t, img, |r| r.dtb_set.push(("/chosen/big".into(), "y".repeat(3 << 20)))).unwrap_err();
        assert!(err.to_string().contains("MAX_FDT_SIZE: the DTB must not exceed 2 MiB"), "{err}");
        let err = plan_with(&t, riscv_image(TEXT_OFFSET, 0, 4096), |_| {}).unwrap_err();
        assert!(err.to_string().contains("image_size (0x10) is 0"), "{err}");
    }

    #[test]
    fn sbi_console_when_the_kernel_console_is_sbi_or_hvc() {
        let t = riscv_tree("rv-sbi", RISCV_VIRT_1G);
        // No stdout-path UART the purgatory drives.
        t.fdt(&riscv_virt_dtb("console=hvc0"));
        let img = riscv_image(TEXT_OFFSET, 4 * MIB, 4096);
        let p = plan_with(&t, img.clone(), |r| r.dtb_delete.push("/chosen/stdout-path".into())).unwrap();
        assert_eq!(
            p.params.console.kind, CONSOLE_SBI,
            "--dtb-delete edits the DTB before the loader reads it: no stdout-path UART, the SBI console"
        );
        let mut dtb = DtbEditor::from_blob(&riscv_virt_dtb("console=hvc0")).unwrap();
        dtb.delete_property("/chosen", "stdout-path").unwrap();
        t.fdt(&dtb.to_blob(0).unwrap());
        let p = plan_with(&t, img.clone(), |_| {}).unwrap();
        assert_eq!(p.params.console.kind, CONSOLE_SBI);
        let p = plan_with(&t, img.clone(), |r| r.cmdline = CmdlineChoice::Set("console=ttyS0".into())).unwrap();
        assert_ne!(p.params.console.kind, CONSOLE_SBI, "the kernel's console is not SBI: stay silent");
        let p = plan_with(&t, img.clone(), |r| r.cmdline = CmdlineChoice::Set("earlycon=sbi quiet".into())).unwrap();
        assert_eq!(p.params.console.kind, CONSOLE_SBI);
        let p = plan_with(&t, img, |r| r.serial = Some("hvc0".into())).unwrap();
        assert_eq!(p.params.console.kind, CONSOLE_SBI, "--serial hvc0");
    }

    #[test]
    fn crash_plan_stays_in_the_highest_crash_range_and_refuses_hotplug() {
        let iomem = format!(
            "{RISCV_VIRT_1G}c0000000-ffffffff : System RAM\n  c0000000-c7ffffff : Crash kernel\n  e0000000-efffffff : Crash kernel\n"
        );
        let t = riscv_tree("rv-crash", &iomem);
        t.crash_notes(2);
        let p = plan_with(&t, riscv_image(TEXT_OFFSET, 8 * MIB, 4096), |r| {
            r.crash = Some(CrashOptions { hotplug: Hotplug::Off, exclude: true });
            r.cmdline = CmdlineChoice::Reuse("maxcpus=1".into());
        })
        .unwrap();
        assert_eq!(kinds(&p), ["kernel", "elfcorehdr", "dtb", "purgatory"]);
        let crash = Range::new(0xe000_0000, 0xf000_0000);
        for s in &p.segments {
            assert!(crash.contains_range(&s.range()), "only crashk_res (the highest): {s:?}");
        }
        assert_eq!(p.segments[0].mem, 0xe000_0000, "bottom-up into the reservation");
        assert!(p.segments[1].mem > p.segments[2].mem, "elfcorehdr top-down first, the DTB below it");
        assert_eq!(p.cmdline, b"console=ttyS0 root=/dev/vda  maxcpus=1", "BOOT_IMAGE and crashkernel dropped");
        let dtb = DtbEditor::from_blob(&p.segments[2].data).unwrap();
        let core = p.elfcorehdr.unwrap();
        let hdr = dtb.property("/chosen", "linux,elfcorehdr").unwrap().unwrap().to_vec();
        assert_eq!(hdr[..8], core.addr.to_be_bytes());
        assert_eq!(dtb.property("/chosen", "linux,usable-memory-range").unwrap().map(<[u8]>::len), Some(32));
        let core = &p.segments[1].data;
        assert_eq!(&core[18..20], &243u16.to_le_bytes(), "EM_RISCV");
        // The first PT_LOAD: RAM from the end of OpenSBI's PMP region
        // (/reserved-memory/mmode_resv0).
        let field = |i: usize, at: usize| u64::from_le_bytes(core[64 + 56 * i + at..][..8].try_into().unwrap());
        let first =
            (0..usize::from(u16::from_le_bytes([core[56], core[57]]))).find(|&i| field(i, 0) as u32 == 1).unwrap();
        assert_eq!((field(first, 24), field(first, 40)), (0x8008_0000, 0x4000_0000 - 0x8_0000), "not the firmware's");
        assert!(p.notes.iter().any(|n| n.contains("and 1 firmware-protected range(s)")), "{:?}", p.notes);

        let err = plan_with(&t, riscv_image(TEXT_OFFSET, 8 * MIB, 4096), |r| {
            r.crash = Some(CrashOptions { hotplug: Hotplug::Required, exclude: true });
        })
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("--hotplug: riscv64 has no crash hotplug"), "{err}");
        assert!(err.contains("ARCH_SUPPORTS_CRASH_HOTPLUG"), "{err}");
    }

    #[test]
    fn an_initrd_that_looks_like_an_fdt_is_refused() {
        // riscv's machine_kexec_prepare() would take it for the device tree.
        let t = riscv_tree("rv-fdt-first", RISCV_VIRT_1G);
        let initrd = t.write("initrd", riscv_virt_dtb("not an initrd"));
        let err = plan_with(&t, riscv_image(TEXT_OFFSET, 4 * MIB, 4096), |r| r.initrds.push(initrd.clone()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("segment 1 (initrd)"), "{err}");
        assert!(err.contains("starts like an FDT and comes before the DTB"), "{err}");
    }
}
