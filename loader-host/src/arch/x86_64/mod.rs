//! x86_64 (Documentation/arch/x86/boot.rst, "64-bit Boot Protocol"): the
//! bzImage's protected-mode kernel at a kernel_alignment boundary with its
//! init_size span free, the initrd between 16 MiB and initrd_addr_max, and
//! the zero page (boot_params: setup header, command line, e820, RSDP,
//! setup_data) the kernel receives in %rsi.

use kexec_purgatory::abi::{ConsoleDesc, SegmentKind, ARCH_X86_64, CONSOLE_8250_IO, PARAM_FLAG_REFRESH_SEEDS};
use kexec_purgatory::elf::EM_X86_64;

use super::contract::{ArchInput, ArchLayout, Architecture, CmdlineLimit, PurgatoryWindow};
use crate::arch_spec::{ArchSpec, CrashPolicy, HotplugFlag, NamedConsole};
use crate::boot_params::{self as bp, BootParamsInput};
use crate::cmdline;
use crate::error::LoadError;
use crate::image::bzimage::{BzImage, ENTRY_64_OFFSET, HEADER_START};
use crate::image::elf::ElfKernel;
use crate::image::Kernel;
use crate::input::Blob;
use crate::placement::{KexecBuf, Layout, Order};
use crate::plan::{BootData, PlanError};
use crate::range::{align_up, Range, PAGE};
use crate::system::entropy::{random_bytes, EntropyQuality};
use crate::system::firmware;
use crate::system::SystemSources;
use crate::uapi::KEXEC_UPDATE_ELFCOREHDR;

const MIB: u64 = 1 << 20;
const GIB4: u64 = 1 << 32;
/// arch/x86/kernel/kexec-bzimage64.c MIN_BOOTPARAM_ADDR / MIN_PURGATORY_ADDR
/// (the values kexec-tools uses): nothing below 0x3000.
pub const MIN_LOW_ADDR: u64 = 0x3000;
/// kexec-bzimage64.c MIN_INITRD_LOAD_ADDR.
pub const MIN_INITRD_ADDR: u64 = 16 * MIB;
/// kexec-bzimage64.c MIN_KERNEL_LOAD_ADDR.
pub const MIN_KERNEL_ADDR: u64 = MIB;
/// Standard PC COM port bases, ttyS0..ttyS3 (SERIAL_PORT_DFNS in
/// arch/x86/include/asm/serial.h).
const PC_COM_PORTS: [u64; 4] = [0x3f8, 0x2f8, 0x3e8, 0x2e8];

/// x86_64 as the loader sees it.
pub static SPEC: ArchSpec = ArchSpec {
    name: "x86_64",
    aliases: &["amd64", "x86-64"],
    rust_arch: "x86_64",
    debian_arch: "amd64",
    elf_machine: EM_X86_64,
    purgatory_arch: ARCH_X86_64,
    // x86 has taken KEXEC_UPDATE_ELFCOREHDR since 6.5 (6.5-6.9 reject the
    // generic 0x8; include/uapi/linux/kexec.h).
    hotplug_flag: Some(HotplugFlag {
        value: KEXEC_UPDATE_ELFCOREHDR,
        name: "KEXEC_UPDATE_ELFCOREHDR (0x4)",
        kernels: "Linux 6.5+ with CONFIG_CRASH_HOTPLUG",
    }),
    // x86's own elfcorehdr (arch/x86/kernel/crash.c prepare_elf_headers):
    // all RAM incl. driver-managed, minus the low 1 MiB and the crash
    // ranges, the kernel text mapping first; segments only in crashk_res.
    crash: CrashPolicy {
        skip_low_1m: true,
        dump_driver_managed: true,
        kernel_text: true,
        no_hotplug: None,
        skip_firmware_protected: false,
        backup_low: None,
        linear_map_base: None,
        hotplug_rewrites_dtb: false,
    },
    kernel_takes_first_fdt: false,
    // kexec-tools' x86 --serial names (kexec/arch/x86_64/kexec-x86_64.c):
    // ttyS0 0x3f8, ttyS1 0x2f8, when sysfs has no such UART.
    named_consoles: &[
        NamedConsole { tty: "ttyS0", prefix: false, kind: CONSOLE_8250_IO, base: PC_COM_PORTS[0], sysfs_first: true },
        NamedConsole { tty: "ttyS1", prefix: false, kind: CONSOLE_8250_IO, base: PC_COM_PORTS[1], sysfs_first: true },
    ],
    io_port_serial: true,
};

/// The x86_64 planner.
pub(crate) struct X86_64;

impl Architecture for X86_64 {
    fn spec(&self) -> &'static ArchSpec {
        &SPEC
    }

    fn place(&self, input: ArchInput) -> Result<ArchLayout, LoadError> {
        place(input)
    }

    fn kernel_footprint(&self, kernel: &Kernel) -> Option<u64> {
        match kernel {
            // boot.rst init_size: the linear memory the kernel needs.
            Kernel::BzImage(b) => Some(b.init_size),
            Kernel::Elf(e) => Some(e.mem_size),
            Kernel::Image(_) => None,
        }
    }

    /// The running kernel's command line minus BOOT_IMAGE= (the boot
    /// loader's, not ours; kexec-tools' get_command_line), on both system
    /// calls: an x86 kernel has no DTB to keep bootargs in, and kexec-tools'
    /// empty line (kexec/arch/x86_64/kexec-bzImage64.c bzImage64_load and
    /// bzImage64_load_file without --append) rarely boots a system.
    fn kept_cmdline(&self, sys: &SystemSources) -> Result<Option<Vec<u8>>, LoadError> {
        let running = sys.cmdline().map_err(LoadError::System)?;
        Ok(Some(cmdline::inherited(&running, false)))
    }

    fn file_load_cmdline_limit(&self, kernel: &Kernel) -> Option<CmdlineLimit> {
        // arch/x86/kernel/kexec-bzimage64.c refuses a line whose length with
        // its NUL, plus room for `elfcorehdr=0x<64-bit>` (30 bytes), exceeds
        // cmdline_size (every load type).
        const ELFCOREHDR_STR_LEN: usize = 30;
        let Kernel::BzImage(b) = kernel else { return None };
        Some(CmdlineLimit {
            max: (b.cmdline_size as usize).saturating_sub(1 + ELFCOREHDR_STR_LEN),
            rule: "kexec_file_load's bzImage loader (the line, its NUL and 30 bytes for elfcorehdr= within cmdline_size, arch/x86/kernel/kexec-bzimage64.c)",
        })
    }
}

fn page_round(n: u64) -> u64 {
    align_up(n.max(1), PAGE).unwrap_or(u64::MAX)
}

/// The purgatory's console from the kernel command line: the last
/// `console=ttyS<N>` (N < 4, the PC COM ports) or `earlycon=uart[8250],io,<port>`.
/// Words that are not UTF-8 name no such console and are passed over.
pub fn console_from_cmdline(line: &[u8]) -> Option<ConsoleDesc> {
    let io = |base| ConsoleDesc { kind: CONSOLE_8250_IO, reserved: 0, base };
    let mut found = None;
    for tok in cmdline::words(line).filter_map(|w| std::str::from_utf8(w).ok()) {
        if let Some(tty) = tok.strip_prefix("console=ttyS") {
            let n: String = tty.chars().take_while(char::is_ascii_digit).collect();
            if let Some(port) = n.parse::<usize>().ok().and_then(|n| PC_COM_PORTS.get(n)) {
                found = Some(io(*port));
            }
        } else if let Some(spec) = tok.strip_prefix("earlycon=") {
            let mut f = spec.split(',');
            if let (Some("uart" | "uart8250"), Some("io"), Some(port)) = (f.next(), f.next(), f.next()) {
                let port = port.trim_start_matches("0x");
                // An I/O port is 16 bits.
                if let Some(p) = u64::from_str_radix(port, 16).ok().filter(|p| *p <= 0xffff) {
                    found = Some(io(p));
                }
            }
        }
    }
    found
}

/// The kernel segment's placement request, at `align`.
fn kernel_buf(bz: &BzImage, source: &str, top: u64, order: Order, align: u64) -> KexecBuf {
    // boot.rst 64-bit protocol: "the range with setup_header.init_size from
    // start address of loaded kernel ... get ident mapping": the segment
    // spans init_size (kexec's identity map covers the segments); the
    // purgatory hashes only the payload.
    let memsz = page_round(bz.init_size.max(bz.payload.len() as u64));
    let buf = KexecBuf::new(SegmentKind::Kernel, bz.payload.clone(), source).memsz(memsz).order(order);
    if !bz.relocatable {
        // boot.rst pref_address: "A non-relocatable kernel will
        // unconditionally move itself and to run at this address."
        let end = bz.pref_address.saturating_add(memsz).min(top);
        return buf.window(
            Range::new(bz.pref_address, end),
            format!(
                "a non-relocatable kernel must run at pref_address {:#x} with init_size bytes free",
                bz.pref_address
            ),
        );
    }
    // arch/x86/boot/compressed/head_64.S: a load address below
    // LOAD_PHYSICAL_ADDR (= pref_address) is replaced by it, so nothing
    // lower is safe; kexec-bzimage64.c uses the same floor.
    let min = bz.pref_address.max(MIN_KERNEL_ADDR);
    let below = if top == u64::MAX { "" } else { " below 4 GiB (no XLF_CAN_BE_LOADED_ABOVE_4G)" };
    buf.align(align).window(
        Range::new(min, top),
        format!(
            "needs init_size bytes at a kernel_alignment ({:#x}) aligned address >= pref_address {min:#x}{below} (boot.rst)",
            bz.kernel_alignment
        ),
    )
}

/// What the boot data needs from the placed kernel.
struct PlacedKernel {
    /// Where the purgatory enters it.
    entry: u64,
    /// The setup header for boot_params (0x1f1 ..).
    setup_header: Vec<u8>,
    /// boot.rst XLF_CAN_BE_LOADED_ABOVE_4G.
    above_4g: bool,
    initrd_addr_max: u32,
    /// Longest command line without its NUL.
    cmdline_size: u32,
}

/// Place a bzImage's protected-mode kernel (boot.rst "64-bit Boot
/// Protocol").
fn place_bzimage(
    bz: &BzImage,
    kernel_source: &str,
    order: Order,
    layout: &mut Layout,
    notes: &mut Vec<String>,
) -> Result<PlacedKernel, LoadError> {
    let source = format!("{kernel_source}, protocol {}.{:02}", bz.version >> 8, bz.version & 0xff);
    // boot.rst xloadflags XLF_CAN_BE_LOADED_ABOVE_4G: "kernel/boot_params/
    // cmdline/ramdisk can be above 4G".
    let above_4g = bz.can_load_above_4g();
    let top = if above_4g { u64::MAX } else { GIB4 };
    // Kernel: kernel_alignment, else min_alignment (boot.rst 0x235: "the
    // minimum alignment required, as opposed to preferred"), which the
    // loader may then write into kernel_alignment.
    let preferred = kernel_buf(bz, &source, top, order, bz.kernel_alignment.max(PAGE));
    let min_align = 1u64.checked_shl(u32::from(bz.min_alignment)).unwrap_or(0);
    let buf = if layout.find(&preferred).is_none()
        && bz.relocatable
        && bz.min_alignment > 0
        && min_align >= PAGE
        && min_align < bz.kernel_alignment
    {
        kernel_buf(bz, &source, top, order, min_align)
    } else {
        preferred
    };
    let align = buf.align;
    let kr = layout.add(buf)?;
    let mut setup_header = bz.setup_header.clone();
    if bz.relocatable && align != bz.kernel_alignment {
        // boot.rst kernel_alignment: "it is possible for the loader to
        // modify this field to permit a lesser alignment" (head_64.S reads
        // it from boot_params).
        let at = 0x230 - HEADER_START;
        if let Some(field) = setup_header.get_mut(at..at + 4) {
            field.copy_from_slice(&(align as u32).to_le_bytes());
        }
        notes.push(format!("kernel placed at min_alignment {align:#x}, not the preferred {:#x}", bz.kernel_alignment));
    }

    // boot.rst "64-bit Boot Protocol": entry = load address + 0x200.
    Ok(PlacedKernel {
        entry: kr.start + ENTRY_64_OFFSET,
        setup_header,
        above_4g,
        initrd_addr_max: bz.initrd_addr_max,
        cmdline_size: bz.cmdline_size,
    })
}

/// x86 COMMAND_LINE_SIZE (arch/x86/include/asm/setup.h), NUL included.
const VMLINUX_COMMAND_LINE_SIZE: u32 = 2048;

/// A setup header for a kernel that has none (a vmlinux), as kexec-tools'
/// x86_linux_faked_param_header / init_linux_parameters make one
/// (kexec/arch/i386/x86-linux-setup.c): boot_flag, "HdrS", a protocol
/// version, LOADED_HIGH, the 64-bit xloadflags and cmdline_size. The kernel
/// proper reads only the fields boot_params::build fills (command line,
/// initrd, setup_data, type_of_loader).
pub fn vmlinux_setup_header() -> Vec<u8> {
    let mut h = vec![0u8; 0x268 - HEADER_START];
    let mut put =
        |at: usize, bytes: &[u8]| h[at - HEADER_START..at - HEADER_START + bytes.len()].copy_from_slice(bytes);
    put(0x1fe, &0xaa55u16.to_le_bytes());
    put(0x201, &[(0x268 - 0x202) as u8]);
    put(0x202, b"HdrS");
    put(0x206, &0x020fu16.to_le_bytes());
    put(0x211, &[crate::image::bzimage::LOADED_HIGH]);
    put(0x22c, &0x7fff_ffffu32.to_le_bytes());
    put(0x230, &0x20_0000u32.to_le_bytes());
    put(
        0x236,
        &(crate::image::bzimage::XLF_KERNEL_64 | crate::image::bzimage::XLF_CAN_BE_LOADED_ABOVE_4G).to_le_bytes(),
    );
    put(0x238, &(VMLINUX_COMMAND_LINE_SIZE - 1).to_le_bytes());
    h
}

/// Place a vmlinux at its physical addresses (kexec-tools' elf-x86_64
/// loader: each PT_LOAD at p_paddr; an ET_EXEC vmlinux is linked to run
/// there, and startup_64 is entered at e_entry).
fn place_vmlinux(
    elf: &ElfKernel,
    kernel_source: &str,
    order: Order,
    layout: &mut Layout,
    notes: &mut Vec<String>,
    crashing: bool,
) -> Result<PlacedKernel, LoadError> {
    let memsz = page_round(elf.mem_size);
    let end = elf.paddr.saturating_add(memsz);
    let kr = layout.add(
        KexecBuf::new(SegmentKind::Kernel, elf.data.clone(), format!("{kernel_source}, {} PT_LOAD", elf.loads))
            .memsz(memsz)
            .order(order)
            .window(
                Range::new(elf.paddr, end),
                format!(
                    "a vmlinux runs at its PT_LOAD physical addresses {:#x}..{end:#x}{}",
                    elf.paddr,
                    if crashing {
                        ", which the crashkernel= region must contain (e.g. crashkernel=256M@16M)"
                    } else {
                        ""
                    }
                ),
            ),
    )?;
    if kr.start != elf.paddr {
        return Err(
            PlanError::Internal(format!("vmlinux placed at {:#x}, not p_paddr {:#x}", kr.start, elf.paddr)).into()
        );
    }
    notes.push("vmlinux ELF: Linux boot parameters (kexec-tools' --args-linux), entered at e_entry".into());
    Ok(PlacedKernel {
        entry: elf.entry,
        setup_header: vmlinux_setup_header(),
        above_4g: true,
        initrd_addr_max: 0x7fff_ffff,
        cmdline_size: VMLINUX_COMMAND_LINE_SIZE - 1,
    })
}

/// Place an x86_64 kernel and build its zero page.
fn place(input: ArchInput) -> Result<ArchLayout, LoadError> {
    let ArchInput { req, sys, iomem, kernel, kernel_source, initrd, free, crash, mut params, console_given, mut notes } =
        input;
    if !matches!(kernel.kernel, Kernel::BzImage(_) | Kernel::Elf(_)) {
        return Err(PlanError::Internal(format!("{} is not an x86_64 kernel", kernel.format)).into());
    }
    for (given, option) in [
        (req.dtb.is_some(), "--dtb"),
        (!req.dtb_set.is_empty(), "--dtb-set"),
        (!req.dtb_delete.is_empty(), "--dtb-delete"),
    ] {
        if given {
            return Err(LoadError::NotForArch {
                option,
                arch: crate::arch_spec::Arch(&SPEC),
                why: "the kernel gets boot_params, not a DTB",
            });
        }
    }

    // Without --append, the running kernel's command line (minus
    // BOOT_IMAGE=, and crashkernel= for a capture kernel).
    let crashing = crash.is_some();
    let running = || sys.cmdline().map_err(LoadError::System);
    let keep = || X86_64.kept_cmdline(sys);
    let mut cmdline = cmdline::resolve(&req.cmdline, running, keep, crashing, &mut notes)?.unwrap_or_default();

    let (e820, e820_source) = firmware::read_e820(&sys.sys_root, iomem)?;
    notes.push(format!("e820: {} entries from {e820_source}", e820.len()));
    // The new kernel's RAM is what this e820 map says (kexec-tools places
    // by /sys/firmware/memmap too, kexec/arch/i386/kexec-x86-common.c
    // get_memory_ranges_sysfs): no segment where it says no RAM, whatever
    // /proc/iomem says. A capture kernel's map is built from its
    // reservation (bp::crash_e820), so it holds there by construction.
    let mut free = free;
    if !crashing {
        firmware::within_e820_ram(&mut free, &e820, e820_source, &mut notes);
    }
    let running_bp = firmware::read_running(&sys.sys_root);
    if running_bp.acpi_rsdp_addr == 0 {
        notes.push("ACPI RSDP unknown (no /sys/kernel/boot_params/data or /sys/firmware/efi/systab): acpi_rsdp_addr left 0, the kernel scans the BIOS areas".into());
    }
    let mut rng_seed = [0u8; bp::RNG_SEED_LEN];
    if random_bytes(&mut rng_seed)? == EntropyQuality::Early {
        notes.push("the entropy pool was not initialised yet: the SETUP_RNG_SEED comes from GRND_INSECURE (the purgatory mixes in RDRAND where the CPU has it)".into());
    }

    // Top-down for a normal load: the kernel can then usually allocate the
    // destination pages directly, so relocate_kernel copies nothing at
    // reboot (measured: ~0.3 s of the hand-off under TCG). Crash loads go
    // into the reservation bottom-up, as kexec-tools does.
    let order = if crashing { Order::BottomUp } else { Order::TopDown };
    let mut layout = Layout::with_page(free, sys.page_size);
    let placed = match &kernel.kernel {
        Kernel::BzImage(bz) => place_bzimage(bz, &kernel_source, order, &mut layout, &mut notes)?,
        Kernel::Elf(elf) => place_vmlinux(elf, &kernel_source, order, &mut layout, &mut notes, crashing)?,
        Kernel::Image(_) => return Err(PlanError::Internal("an arm64 Image on x86_64".into()).into()),
    };
    let PlacedKernel { entry, setup_header, above_4g, initrd_addr_max, cmdline_size } = placed;

    // Initrd: >= 16 MiB, below initrd_addr_max unless the kernel takes
    // ext_ramdisk_image (boot.rst initrd_addr_max: "The maximum address that
    // may be occupied by the initial ramdisk/ramfs contents").
    let mut initrd_range = None;
    if let Some(i) = initrd {
        let max = if above_4g { u64::MAX } else { u64::from(initrd_addr_max).saturating_add(1) };
        let len = i.data.len() as u64;
        let r = layout.add(KexecBuf::new(SegmentKind::Initrd, i.data, i.source).order(order).window(
            Range::new(MIN_INITRD_ADDR, max),
            format!("must lie between 16 MiB and {max:#x} (initrd_addr_max / XLF_CAN_BE_LOADED_ABOVE_4G)"),
        ))?;
        initrd_range = Some(Range::new(r.start, r.start + len));
    }

    // Crash: the elfcorehdr, then the command line and e820 that name it.
    let mut e820 = e820;
    if let Some(c) = &crash {
        let r = layout.add(
            KexecBuf::new(SegmentKind::ElfCoreHdr, Blob::new(c.header.clone()), "generated elfcorehdr")
                .memsz(c.memsz)
                .excluded(c.excluded)
                .window(Range::ALL, "must lie in the Crash kernel range"),
        )?;
        cmdline = cmdline::with_elfcorehdr(&cmdline, r.start);
        // arch/x86/kernel/crash.c crash_setup_memmap_entries.
        e820 = bp::crash_e820(&e820, &c.ranges, &[r]);
    }
    // boot.rst cmdline_size: "The maximum size of the command line without
    // the terminating zero."
    if cmdline.len() > cmdline_size as usize {
        return Err(LoadError::CmdlineTooLong {
            len: cmdline.len(),
            max: cmdline_size as usize,
            rule: "the kernel's cmdline_size (bzImage 0x238)",
        });
    }

    // Boot params + command line + setup_data: one segment, >= 0x3000,
    // below 4 GiB where possible. Placed first, built for its address.
    let bp_len = bp::layout(cmdline.len(), e820.len()).len;
    let bp_buf = |window: Range| {
        KexecBuf::new(
            SegmentKind::BootParams,
            Blob::new(vec![0; bp_len]),
            format!("boot_params + command line ({} bytes)", cmdline.len()),
        )
        .window(window, "needs RAM at or above 0x3000 (below 4 GiB without XLF_CAN_BE_LOADED_ABOVE_4G)")
    };
    let low = bp_buf(Range::new(MIN_LOW_ADDR, GIB4));
    let top = if above_4g { u64::MAX } else { GIB4 };
    let bp_r = match layout.find(&low) {
        Some(_) => layout.add(low)?,
        None => layout.add(bp_buf(Range::new(MIN_LOW_ADDR, top)))?,
    };
    let zero_page = bp::build(
        &BootParamsInput {
            setup_header: &setup_header,
            can_load_above_4g: above_4g,
            cmdline: &cmdline,
            initrd: initrd_range,
            e820: &e820,
            acpi_rsdp_addr: running_bp.acpi_rsdp_addr,
            screen_info: running_bp.screen_info,
            rng_seed,
        },
        bp_r.start,
    )?;
    let bp_index = layout.segments().len() - 1;
    layout.set_data(bp_index, Blob::new(zero_page))?;

    params.flags |= PARAM_FLAG_REFRESH_SEEDS;
    if !console_given {
        if req.console_serial {
            // kexec-tools' --console-serial prints on serial_base, 0x3f8
            // unless --serial named another (kexec/arch/x86_64/kexec-x86_64.c).
            params.console = ConsoleDesc { kind: CONSOLE_8250_IO, reserved: 0, base: PC_COM_PORTS[0] };
        } else if let Some(c) = console_from_cmdline(&cmdline) {
            params.console = c;
        }
    }
    Ok(ArchLayout {
        layout,
        kernel_entry: entry,
        boot_data: BootData { kind: SegmentKind::BootParams, addr: bp_r.start },
        cmdline,
        params,
        // It runs on relocate_kernel's identity map, which covers all RAM;
        // kexec-tools keeps it low.
        purgatory: vec![
            PurgatoryWindow { window: Range::new(MIN_LOW_ADDR, GIB4), order: Order::BottomUp, rule: "below 4 GiB" },
            PurgatoryWindow {
                window: Range::new(MIN_LOW_ADDR, u64::MAX),
                order: Order::BottomUp,
                rule: "needs 4 KiB aligned RAM at or above 0x3000",
            },
        ],
        notes,
        entry_fill: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::{le32, le64};
    use crate::image::bzimage::tests::sample;
    use crate::plan::Plan;
    use crate::request::{CmdlineChoice, CrashOptions, Hotplug, Request};
    use crate::testing::Tree;

    const IOMEM: &str = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
000f0000-000fffff : Reserved
00100000-7ffeffff : System RAM
  01000000-01ffffff : Kernel code
7fff0000-7fffffff : ACPI Tables
100000000-17fffffff : System RAM
";

    fn tree(name: &str, iomem: &str) -> Tree {
        let t = Tree::new(name);
        t.iomem(iomem).cmdline("BOOT_IMAGE=/vmlinuz console=ttyS0,115200 root=/dev/vda crashkernel=256M");
        t
    }

    fn plan_with(t: &Tree, kernel: Vec<u8>, edit: impl FnOnce(&mut Request)) -> Result<Plan, LoadError> {
        let mut req = Request::new(t.write("vmlinuz", kernel));
        edit(&mut req);
        crate::planner::plan(&req, &t.sys())
    }

    fn kinds(p: &Plan) -> Vec<&'static str> {
        p.segments.iter().map(|s| s.kind_name()).collect()
    }

    /// (cmdline, e820 entries) of a zero page loaded at `base`.
    fn zero_page(z: &[u8], base: u64) -> (String, Vec<(u64, u64, u32)>) {
        let cmd = (u64::from(le32(z, 0x228).unwrap()) - base) as usize;
        let end = cmd + z[cmd..].iter().position(|&b| b == 0).unwrap();
        let n = z[0x1e8] as usize;
        let e820 = (0..n)
            .map(|i| {
                (le64(z, 0x2d0 + i * 20).unwrap(), le64(z, 0x2d8 + i * 20).unwrap(), le32(z, 0x2e0 + i * 20).unwrap())
            })
            .collect();
        (String::from_utf8(z[cmd..end].to_vec()).unwrap(), e820)
    }

    #[test]
    fn layout_follows_the_64bit_boot_protocol() {
        let t = tree("x86-layout", IOMEM);
        let initrd = t.write("initrd", vec![0x11u8; 70_000]);
        let p = plan_with(&t, sample(300_000), |r| r.initrds.push(initrd.clone())).unwrap();
        assert_eq!(kinds(&p), ["kernel", "initrd", "boot-params", "purgatory"]);
        let (k, i, b, pg) = (&p.segments[0], &p.segments[1], &p.segments[2], &p.segments[3]);
        // Top-down at a kernel_alignment boundary >= pref_address; the
        // segment spans init_size, the digest only the payload.
        assert_eq!(k.mem % 0x20_0000, 0);
        assert!(k.mem + k.memsz <= 0x1_8000_0000 && k.mem + k.memsz > 0x1_8000_0000 - 0x20_0000, "highest fit: {k:?}");
        assert_eq!((k.memsz, k.digest_len), (0x300_0000, 300_000u64.next_multiple_of(4096)));
        assert_eq!(p.kernel_entry, k.mem + 0x200);
        assert!(i.mem >= 0x100_0000);
        // boot_params and the purgatory low, at >= 0x3000.
        assert!(b.mem >= 0x3000 && b.mem < 0x1_0000_0000, "{b:?}");
        assert!(pg.mem >= 0x3000 && pg.mem + pg.memsz <= 0x1_0000_0000);
        assert_eq!(p.boot_data, BootData { kind: SegmentKind::BootParams, addr: b.mem });
        let z = &b.data;
        // ramdisk_image with ext_ramdisk_image as its high half.
        assert_eq!(u64::from(le32(z, 0x218).unwrap()) | u64::from(le32(z, 0x0c0).unwrap()) << 32, i.mem);
        assert_eq!(le32(z, 0x21c), Some(70_000));
        let (cmd, e820) = zero_page(z, b.mem);
        assert_eq!(cmd, "console=ttyS0,115200 root=/dev/vda crashkernel=256M", "BOOT_IMAGE dropped");
        assert_eq!(p.cmdline, cmd.as_bytes());
        assert_eq!(e820.len(), 6, "every e820 entry of /proc/iomem");
        assert_eq!(p.params.console.base, 0x3f8, "console=ttyS0");
        assert_eq!(p.params.flags, PARAM_FLAG_REFRESH_SEEDS);
    }

    #[test]
    fn min_alignment_is_used_when_kernel_alignment_cannot_be_met() {
        // Only 3 MiB + 4 KiB holes at 4 KiB offsets above pref_address: the
        // 2 MiB preference cannot be met, min_alignment (2^12) can, and the
        // header says so.
        let t = tree(
            "x86-minalign",
            "00003000-0008ffff : System RAM\n00100000-00ffffff : System RAM\n01001000-01401fff : System RAM\n",
        );
        let mut f = sample(1000);
        f[0x235] = 12;
        f[0x260..0x264].copy_from_slice(&0x30_0000u32.to_le_bytes());
        let p = plan_with(&t, f, |_| {}).unwrap();
        assert_eq!(p.segments[0].mem, 0x110_2000, "highest 4 KiB aligned fit");
        assert_eq!(le32(&p.segments[1].data, 0x230), Some(0x1000));
        assert!(p.notes.iter().any(|n| n.contains("min_alignment")), "{:?}", p.notes);
    }

    #[test]
    fn non_relocatable_kernels_run_at_pref_address_or_not_at_all() {
        let mut f = sample(1000);
        f[0x234] = 0;
        let p = plan_with(&tree("x86-nonreloc", IOMEM), f.clone(), |_| {}).unwrap();
        assert_eq!(p.segments[0].mem, 0x100_0000);
        let holed = IOMEM.replace(
            "00100000-7ffeffff : System RAM\n",
            "00100000-7ffeffff : System RAM\n  02000000-02000fff : reserved\n",
        );
        let err = plan_with(&tree("x86-nonreloc2", &holed), f, |_| {}).unwrap_err();
        assert!(err.to_string().contains("non-relocatable kernel must run at pref_address 0x1000000"), "{err}");
    }

    #[test]
    fn without_the_above_4g_flag_everything_stays_low() {
        let mut f = sample(1000);
        f[0x236] = 1; // XLF_KERNEL_64 only
        f[0x22c..0x230].copy_from_slice(&0x37ff_ffffu32.to_le_bytes());
        let t = tree("x86-low", IOMEM);
        let initrd = t.write("initrd", [1u8; 100]);
        let p = plan_with(&t, f.clone(), |r| r.initrds.push(initrd.clone())).unwrap();
        for s in &p.segments {
            assert!(s.mem + s.memsz <= 0x8000_0000, "{s:?}");
        }
        assert!(p.segments[1].mem + p.segments[1].memsz <= 0x3800_0000, "initrd below initrd_addr_max");
        let t = tree("x86-high", "00001000-0009fbff : System RAM\n100000000-1ffffffff : System RAM\n");
        let err = plan_with(&t, f, |_| {}).unwrap_err();
        assert!(err.to_string().contains("below 4 GiB (no XLF_CAN_BE_LOADED_ABOVE_4G)"), "{err}");
    }

    #[test]
    fn command_line_longer_than_cmdline_size_is_refused() {
        let t = tree("x86-cmdline", IOMEM);
        let err = plan_with(&t, sample(1000), |r| r.cmdline = CmdlineChoice::Set("x".repeat(2048).into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the command line is 2048 bytes; the kernel's cmdline_size (bzImage 0x238) allows 2047"
        );
    }

    #[test]
    fn dtb_options_mean_nothing_here() {
        let t = tree("x86-dtb", IOMEM);
        let dtb = t.write("x.dtb", [0u8; 64]);
        let err = plan_with(&t, sample(1000), |r| r.dtb = Some(dtb.clone())).unwrap_err();
        assert_eq!(err.to_string(), "--dtb has no meaning on x86_64: the kernel gets boot_params, not a DTB");
        let err = plan_with(&t, sample(1000), |r| r.dtb_delete.push("/a/b".into())).unwrap_err();
        assert!(err.to_string().starts_with("--dtb-delete has no meaning"), "{err}");
    }

    #[test]
    fn crash_layout_names_the_elfcorehdr_and_restricts_e820() {
        let t = tree(
            "x86-crash",
            "00001000-0009fbff : System RAM\n00100000-7ffeffff : System RAM\n  6b000000-7affffff : Crash kernel\n7fff0000-7fffffff : ACPI Tables\n",
        );
        t.crash_notes(2);
        let initrd = t.write("initrd", [1u8; 100]);
        let p = plan_with(&t, sample(4096), |r| {
            r.initrds.push(initrd.clone());
            r.crash = Some(CrashOptions { hotplug: Hotplug::Off, exclude: true });
            r.cmdline = CmdlineChoice::Reuse("-- single".into());
        })
        .unwrap();
        assert_eq!(kinds(&p), ["kernel", "initrd", "elfcorehdr", "boot-params", "purgatory"]);
        let crash = Range::new(0x6b00_0000, 0x7b00_0000);
        for s in &p.segments {
            assert!(crash.contains_range(&s.range()), "{s:?} outside the crash range");
        }
        let core = &p.segments[2];
        // 2 CPU notes + vmcoreinfo + RAM: 0x100000-0x6affffff, 0x7b000000-0x7ffeffff.
        assert_eq!(core.data.len(), 64 + 56 * 5);
        assert_eq!(core.data[18], 62, "EM_X86_64");
        assert_eq!(le64(&core.data, 64 + 56 * 3 + 24), Some(0x10_0000), "the low 1 MiB is not dumped");
        let b = &p.segments[3];
        let (cmd, e820) = zero_page(&b.data, b.mem);
        // kexec-tools' remove_parameter keeps the space before a removed last token.
        assert_eq!(cmd, format!("elfcorehdr={:#x} console=ttyS0,115200 root=/dev/vda  -- single", core.mem));
        assert_eq!(
            e820,
            [
                (0x1000, 0x9_ec00, 1),
                (0x6b00_0000, core.mem - 0x6b00_0000, 1),
                (core.mem + 0x1000, 0x7b00_0000 - core.mem - 0x1000, 1),
                (0x7fff_0000, 0x1_0000, 3)
            ]
        );
        assert_eq!(p.elfcorehdr.map(|c| c.pt_load), Some(2));
        // --hotplug needs the kernel's crash_elfcorehdr_size.
        let err =
            plan_with(&t, sample(4096), |r| r.crash = Some(CrashOptions { hotplug: Hotplug::Required, exclude: true }))
                .unwrap_err();
        assert!(err.to_string().contains("crash_elfcorehdr_size is missing"), "{err}");
        t.write("sys/kernel/crash_elfcorehdr_size", "8192\n");
        let p =
            plan_with(&t, sample(4096), |r| r.crash = Some(CrashOptions { hotplug: Hotplug::Required, exclude: true }))
                .unwrap();
        let core = p.segments.iter().find(|s| s.kind == Some(SegmentKind::ElfCoreHdr)).unwrap();
        assert_eq!((core.memsz, core.excluded, p.hotplug), (page_round(64 + 8192), true, true));
    }

    #[test]
    fn vmlinux_runs_at_its_physical_addresses_with_a_faked_header() {
        use crate::image::elf::tests::elf;
        let t = tree("x86-vmlinux", IOMEM);
        let kva = 0xffff_ffff_8100_0000;
        let f = elf(62, 2, 0x100_0000, &[(kva, 0x100_0000, &[0x90; 8000], 0x40_0000)]);
        let initrd = t.write("initrd", [1u8; 100]);
        let p = plan_with(&t, f.clone(), |r| {
            r.initrds.push(initrd.clone());
            r.cmdline = CmdlineChoice::Set("console=ttyS1 x".into());
        })
        .unwrap();
        assert_eq!(kinds(&p), ["kernel", "initrd", "boot-params", "purgatory"]);
        assert_eq!((p.segments[0].mem, p.segments[0].memsz), (0x100_0000, 0x40_0000), "at p_paddr");
        assert_eq!(p.kernel_entry, 0x100_0000, "e_entry, not +0x200");
        let b = &p.segments[2];
        assert_eq!(&b.data[0x202..0x206], b"HdrS", "faked setup header");
        let ramdisk = u64::from(le32(&b.data, 0x218).unwrap()) | u64::from(le32(&b.data, 0x0c0).unwrap()) << 32;
        assert_eq!(ramdisk, p.segments[1].mem);
        assert_eq!(zero_page(&b.data, b.mem).0, "console=ttyS1 x");
        assert_eq!(p.params.console.base, 0x2f8);
        // A crash load needs the reservation to hold the link-time address.
        t.crash_notes(1);
        let t2 = tree(
            "x86-vmlinux-crash",
            "00001000-0009fbff : System RAM\n00100000-7ffeffff : System RAM\n  6b000000-7affffff : Crash kernel\n",
        );
        t2.crash_notes(1);
        let err =
            plan_with(&t2, f, |r| r.crash = Some(CrashOptions { hotplug: Hotplug::Off, exclude: true })).unwrap_err();
        assert!(err.to_string().contains("crashkernel= region must contain"), "{err}");
    }

    #[test]
    fn mem_min_and_mem_max_bound_every_segment() {
        let t = tree("x86-memwin", IOMEM);
        let initrd = t.write("initrd", [1u8; 100]);
        let p = plan_with(&t, sample(300_000), |r| {
            r.initrds.push(initrd.clone());
            r.mem_min = Some(0x200_0000);
            r.mem_max = Some(0x3fff_ffff);
        })
        .unwrap();
        for s in &p.segments {
            assert!(s.mem >= 0x200_0000 && s.mem + s.memsz <= 0x4000_0000, "{s:?}");
        }
        let err = plan_with(&t, sample(300_000), |r| {
            r.mem_min = Some(0x4000_0000);
            r.mem_max = Some(0x1000);
        })
        .unwrap_err();
        assert!(err.to_string().contains("--mem-min 0x40000000 is above --mem-max 0x1000"), "{err}");
    }

    #[test]
    fn console_serial_and_io_port_serial() {
        let t = tree("x86-console", IOMEM);
        t.cmdline("root=/dev/vda");
        let p = plan_with(&t, sample(1000), |r| r.console_serial = true).unwrap();
        assert_eq!((p.params.console.kind, p.params.console.base), (CONSOLE_8250_IO, 0x3f8));
        let p = plan_with(&t, sample(1000), |r| r.serial = Some("0x2e8".into())).unwrap();
        assert_eq!((p.params.console.kind, p.params.console.base), (CONSOLE_8250_IO, 0x2e8));
    }

    #[test]
    fn console_comes_from_the_command_line() {
        let io = |base| Some(ConsoleDesc { kind: CONSOLE_8250_IO, reserved: 0, base });
        assert_eq!(console_from_cmdline(b"quiet console=ttyS0,115200n8"), io(0x3f8));
        assert_eq!(console_from_cmdline(b"console=ttyS0 console=ttyS1"), io(0x2f8), "the last wins");
        assert_eq!(console_from_cmdline(b"earlycon=uart8250,io,0x2e8,115200"), io(0x2e8));
        assert_eq!(console_from_cmdline(b"earlycon=uart8250,io,0x12345"), None, "ports are 16 bits");
        assert_eq!(console_from_cmdline(b"console=tty0 console=ttyS7"), None);
        assert_eq!(console_from_cmdline(b"console=hvc0"), None);
    }
}
