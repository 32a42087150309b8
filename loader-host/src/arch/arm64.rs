//! arm64 (Documentation/arch/arm64/booting.rst): an Image + DTB boot
//! (`dtb_boot`) with the Image at a 2 MiB aligned base plus text_offset,
//! initrd, elfcorehdr and DTB inside the kernel's 32 GiB window, the DTB
//! in x0.

use kexec_purgatory::abi::ARCH_AARCH64;
use kexec_purgatory::elf::EM_AARCH64;

use super::contract::{ArchInput, ArchLayout, Architecture, CmdlineLimit};
use super::dtb_boot::{self, DtbBoot, Placement, TextOffset};
use crate::arch_spec::{ArchSpec, CrashPolicy, HotplugFlag};
use crate::error::LoadError;
use crate::image::Kernel;
use crate::uapi::KEXEC_CRASH_HOTPLUG_SUPPORT;

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

/// arm64 as the loader sees it.
pub static SPEC: ArchSpec = ArchSpec {
    name: "arm64",
    aliases: &["aarch64"],
    rust_arch: "aarch64",
    debian_arch: "arm64",
    elf_machine: EM_AARCH64,
    purgatory_arch: ARCH_AARCH64,
    // The generic flag (include/uapi/linux/kexec.h), 6.10+.
    hotplug_flag: Some(HotplugFlag {
        value: KEXEC_CRASH_HOTPLUG_SUPPORT,
        name: "KEXEC_CRASH_HOTPLUG_SUPPORT (0x8)",
        kernels: "Linux 6.10+ with CONFIG_CRASH_HOTPLUG",
    }),
    // arm64's own elfcorehdr (arch/arm64/kernel/machine_kexec_file.c
    // prepare_elf_headers): all System RAM minus the crash ranges.
    crash: CrashPolicy {
        skip_low_1m: false,
        dump_driver_managed: false,
        kernel_text: false,
        no_hotplug: None,
        skip_firmware_protected: false,
        backup_low: None,
        linear_map_base: None,
        hotplug_rewrites_dtb: false,
    },
    kernel_takes_first_fdt: false,
    named_consoles: &[],
    io_port_serial: false,
};

/// booting.rst's rules as the shared Image + DTB flow takes them.
pub const BOOT: DtbBoot = DtbBoot {
    kernel_align: KERNEL_ALIGN,
    kernel_rule: "needs a 2 MiB aligned base with text_offset + image_size bytes free (booting.rst §4)",
    text_offset: TextOffset::Lead,
    placement: Placement::KernelWindow { size: WINDOW, align: GIB },
    window_rule: "the kernel's 32 GiB window, kexec-tools' arm64 rule",
    dtb_max: DTB_MAX,
    dtb_rule: "booting.rst §2",
    command_line: CmdlineLimit {
        max: COMMAND_LINE_SIZE - 1,
        rule: "arm64's COMMAND_LINE_SIZE (2048 with the NUL, arch/arm64/include/uapi/asm/setup.h)",
    },
    psci: true,
    sbi_console: false,
};

/// The arm64 planner.
pub(crate) struct Arm64;

impl Architecture for Arm64 {
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
        // arch/arm64/kernel/machine_kexec_file.c copies bootargs into the
        // DTB; the kernel keeps COMMAND_LINE_SIZE - 1 of them.
        Some(BOOT.command_line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::BootData;
    use crate::plan::Plan;
    use crate::range::Range;
    use crate::request::{CmdlineChoice, CrashOptions, Hotplug, Request};
    use crate::testing::{arm64_image, arm64_tree, Tree, ARM64_FLAGS_ANYWHERE, ARM64_FLAGS_LOW, VIRT_1G};
    use kexec_purgatory::abi::{SegmentKind, PSCI_CONDUIT_HVC};

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
        assert_eq!(dtb.bootargs().unwrap().as_deref(), Some(&b"console=ttyAMA0 root=/dev/vda"[..]), "bootargs kept");
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
            "00000000-3fffffff : System RAM\n00000000-001fffff : GICD\n00200000-002fffff : GICR\n09000000-09000fff : pl011@9000000\n",
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
        let err = plan_with(&t, img.clone(), |r| r.cmdline = CmdlineChoice::Set("x".repeat(2048).into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the command line is 2048 bytes; arm64's COMMAND_LINE_SIZE (2048 with the NUL, arch/arm64/include/uapi/asm/setup.h) allows 2047"
        );
        assert!(plan_with(&t, img.clone(), |r| r.cmdline = CmdlineChoice::Set("x".repeat(2047).into())).is_ok());
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
            r.crash = Some(CrashOptions { hotplug: Hotplug::Off, exclude: true });
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
        assert_eq!(p.cmdline, b"console=ttyAMA0 root=/dev/vda  maxcpus=1", "BOOT_IMAGE and crashkernel dropped");
        let core = p.elfcorehdr.unwrap();
        assert_eq!((core.addr, core.cpu_notes, core.pt_load), (p.segments[1].mem, 2, 2));
        let dtb = crate::dtb::edit::DtbEditor::from_blob(&p.segments[2].data).unwrap();
        assert!(dtb.property("/chosen", "linux,elfcorehdr").unwrap().is_some());
        assert_eq!(dtb.property("/chosen", "linux,usable-memory-range").unwrap().map(<[u8]>::len), Some(16));
    }
}
