//! What an architecture is to the loader, as data: its names, its ELF
//! machine (and so its `KEXEC_ARCH_*`), its purgatory image, the kexec
//! flag that makes a crash image hotplug-aware, how its kernel builds an
//! elfcorehdr, which consoles `--serial` can name. Each architecture module
//! (`arch::arm64`, `arch::x86_64`, …) declares one [`ArchSpec`]; generic
//! code asks it instead of matching on an architecture.
//!
//! This module imports nothing of the pipeline: every other module may
//! read an [`Arch`], none is read by it.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// How an architecture's kernel builds its own elfcorehdr, which ours
/// follows (kernel/crash_core.c crash_prepare_elf64_headers and the arch's
/// crash.c).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashPolicy {
    /// x86: the low 1 MiB is not dumped ("always reserved",
    /// arch/x86/kernel/crash.c elf_header_exclude_ranges).
    pub skip_low_1m: bool,
    /// x86: driver-managed RAM is dumped too (walk_system_ram_res).
    pub dump_driver_managed: bool,
    /// x86: the kernel text mapping is the first PT_LOAD.
    pub kernel_text: bool,
    /// Why the kernel cannot rewrite the crash image after load, when it
    /// cannot (`--hotplug` is then refused); None where crash hotplug
    /// exists (kernel/crash_core.c, ARCH_SUPPORTS_CRASH_HOTPLUG).
    pub no_hotplug: Option<&'static str>,
    /// riscv: leave out of the dump the memory M-mode firmware protects
    /// from S-mode (the running DTB's OpenSBI /reserved-memory/mmode_resv*
    /// nodes): the capture kernel cannot read it.
    pub skip_firmware_protected: bool,
    /// ppc64: the capture kernel runs where it is loaded but still writes
    /// its exception vectors over low memory, so the first this many bytes
    /// of RAM are copied by the purgatory into a backup segment after
    /// verification, and the elfcorehdr's PT_LOAD for them points there
    /// (kexec-tools kexec/arch/ppc64/crashdump-ppc64.h BACKUP_SRC_SIZE,
    /// the kernel's arch/powerpc/include/asm/crashdump-ppc64.h).
    pub backup_low: Option<u64>,
    /// The linear map's base for the elfcorehdr's p_vaddr (p_paddr + it)
    /// when /proc/kcore does not say (ppc64: PAGE_OFFSET
    /// 0xc000000000000000, arch/powerpc/include/asm/page.h; kexec-tools
    /// crashdump-ppc64.c elf_info64). None: p_vaddr from /proc/kcore or 0.
    pub linear_map_base: Option<u64>,
    /// With crash hotplug the kernel rewrites the DTB segment in place too
    /// (ppc64: the /cpus nodes on a CPU hot-add, arch/powerpc/kexec/crash.c
    /// update_crash_fdt): it is then excluded from the digest and loaded
    /// with room to grow.
    pub hotplug_rewrites_dtb: bool,
}

/// The kexec_load flag that lets the kernel rewrite a crash image after a
/// CPU or memory hotplug event (include/uapi/linux/kexec.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HotplugFlag {
    /// The flag's value.
    pub value: u64,
    /// Its name and value, for messages: `KEXEC_UPDATE_ELFCOREHDR (0x4)`.
    pub name: &'static str,
    /// The kernels that take it (a kernel that refuses it with EINVAL is
    /// older or built without crash hotplug).
    pub kernels: &'static str,
}

/// A `--serial` name the purgatory drives without sysfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamedConsole {
    /// The tty name's prefix (`hvc`) or whole name (`ttyS0`).
    pub tty: &'static str,
    /// Whether `tty` is a prefix (`hvc0`, `hvc1`, … all match).
    pub prefix: bool,
    /// The console kind (kexec_purgatory::abi `CONSOLE_*`).
    pub kind: u32,
    /// Its base (an MMIO address or I/O port; 0 for firmware consoles).
    pub base: u64,
    /// Ask sysfs first and fall back to this only when it has no such
    /// UART (kexec-tools' fixed x86 port names); else this name never
    /// reaches sysfs (a hypervisor console is no serial_core UART).
    pub sysfs_first: bool,
}

/// One architecture, as data.
#[derive(Debug)]
pub struct ArchSpec {
    /// The kernel's name for it (`arch/<name>` in the kernel tree): the
    /// name plans, messages and `--arch` use.
    pub name: &'static str,
    /// Other names accepted where an architecture is named (Rust's,
    /// Debian's).
    pub aliases: &'static [&'static str],
    /// `std::env::consts::ARCH` of a loader running on it.
    pub rust_arch: &'static str,
    /// Debian's name for it (its packages, the fixtures' cache folders).
    pub debian_arch: &'static str,
    /// ELF `e_machine` (ELF gABI; include/uapi/linux/elf-em.h): the
    /// elfcorehdr's machine, and kexec_load's `KEXEC_ARCH_*` in the top 16
    /// bits of its flags.
    pub elf_machine: u16,
    /// The purgatory image header's `arch` (kexec_purgatory::abi `ARCH_*`):
    /// which embedded image this architecture loads.
    pub purgatory_arch: u32,
    /// The crash-hotplug flag its kernels take on kexec_load, if any.
    pub hotplug_flag: Option<HotplugFlag>,
    /// How its kernel builds the elfcorehdr.
    pub crash: CrashPolicy,
    /// The kernel hands the next image the first segment that looks like an
    /// FDT, rather than what the purgatory passes (riscv:
    /// machine_kexec_prepare() in arch/riscv/kernel/machine_kexec.c): no
    /// other segment may come before the DTB looking like one.
    pub kernel_takes_first_fdt: bool,
    /// `--serial` names the purgatory drives without sysfs (hypervisor or
    /// firmware consoles, legacy port names).
    pub named_consoles: &'static [NamedConsole],
    /// `--serial=0x<port>` names an 8250 at an I/O port (x86, kexec-tools'
    /// kexec/arch/x86_64/kexec-x86_64.c arch_process_options).
    pub io_port_serial: bool,
}

impl ArchSpec {
    /// kexec_load's `KEXEC_ARCH_*`: the ELF machine in the top 16 bits
    /// (include/uapi/linux/kexec.h).
    pub fn kexec_arch_flag(&self) -> u64 {
        u64::from(self.elf_machine) << 16
    }

    /// Whether `name` names this architecture.
    pub fn is_named(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

/// An architecture: a handle on its [`ArchSpec`], compared by name.
#[derive(Clone, Copy)]
pub struct Arch(pub &'static ArchSpec);

impl Deref for Arch {
    type Target = ArchSpec;
    fn deref(&self) -> &ArchSpec {
        self.0
    }
}

impl PartialEq for Arch {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Arch {}

impl Hash for Arch {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl fmt::Debug for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Arch({})", self.0.name)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}
