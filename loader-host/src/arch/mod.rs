//! The architectures a kernel can be loaded for. Each planner module
//! (`arm64`, `riscv64`, `x86_64`) turns a kernel image plus the machine's memory into
//! placed segments and its boot data; they share only what lives outside
//! `arch/` (placement, crash, dtb, system), never each other.

pub mod arm64;
pub mod riscv64;
pub mod x86_64;

use kexec_purgatory::abi::{SegmentKind, ARCH_AARCH64, ARCH_RISCV64, ARCH_X86_64};

use crate::crash::CrashPolicy;

/// An architecture rkexec loads kernels for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// AArch64 (little-endian): an Image booted per
    /// Documentation/arch/arm64/booting.rst.
    Arm64,
    /// x86-64: a bzImage (Documentation/arch/x86/boot.rst 64-bit boot
    /// protocol) or a vmlinux.
    X86_64,
    /// RV64: an Image booted per Documentation/arch/riscv/boot.rst.
    Riscv64,
}

impl Arch {
    /// The name in plans and messages (Debian's architecture names).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Arm64 => "arm64",
            Arch::X86_64 => "x86_64",
            Arch::Riscv64 => "riscv64",
        }
    }

    /// The purgatory image header's `arch` (kexec_purgatory::abi).
    pub fn purgatory_arch(self) -> u32 {
        match self {
            Arch::Arm64 => ARCH_AARCH64,
            Arch::X86_64 => ARCH_X86_64,
            Arch::Riscv64 => ARCH_RISCV64,
        }
    }

    /// The kind of segment that carries the kernel's boot data.
    pub fn boot_data_kind(self) -> SegmentKind {
        match self {
            Arch::Arm64 | Arch::Riscv64 => SegmentKind::Dtb,
            Arch::X86_64 => SegmentKind::BootParams,
        }
    }

    /// `KEXEC_ARCH_*` for kexec_load's flags: the ELF machine number in the
    /// top 16 bits (include/uapi/linux/kexec.h).
    pub fn kexec_arch_flag(self) -> u64 {
        u64::from(self.elf_machine()) << 16
    }

    /// kexec_load's flag that lets the kernel rewrite the elfcorehdr after
    /// a hotplug event: x86 has taken KEXEC_UPDATE_ELFCOREHDR (0x4) since
    /// 6.5 (6.5-6.9 reject 0x8); every other arch the generic
    /// KEXEC_CRASH_HOTPLUG_SUPPORT (0x8, 6.10+). include/uapi/linux/kexec.h.
    /// riscv64 has no crash hotplug (`crash::CrashPolicy::no_hotplug`), so
    /// its plans never carry the flag.
    pub fn hotplug_flag(self) -> u64 {
        match self {
            Arch::Arm64 | Arch::Riscv64 => crate::syscall::KEXEC_CRASH_HOTPLUG_SUPPORT,
            Arch::X86_64 => crate::syscall::KEXEC_UPDATE_ELFCOREHDR,
        }
    }

    /// Whether the kernel picks the DTB it hands over itself, as the first
    /// segment that looks like an FDT (riscv: machine_kexec_prepare() in
    /// arch/riscv/kernel/machine_kexec.c), rather than taking it from the
    /// purgatory only.
    pub fn kernel_takes_first_fdt(self) -> bool {
        self == Arch::Riscv64
    }

    /// ELF e_machine (elfcorehdr; ELF gABI: EM_AARCH64 183, EM_X86_64 62,
    /// EM_RISCV 243), also the KEXEC_ARCH_* value.
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::Arm64 => 183,
            Arch::X86_64 => 62,
            Arch::Riscv64 => 243,
        }
    }

    /// The architecture this program runs on, if it loads kernels for it.
    pub fn native() -> Option<Arch> {
        if cfg!(target_arch = "aarch64") {
            Some(Arch::Arm64)
        } else if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "riscv64") {
            Some(Arch::Riscv64)
        } else {
            None
        }
    }

    /// From a name: `arm64`/`aarch64`, `x86_64`/`amd64`, `riscv64`.
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "arm64" | "aarch64" => Some(Arch::Arm64),
            "x86_64" | "amd64" => Some(Arch::X86_64),
            "riscv64" => Some(Arch::Riscv64),
            _ => None,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How `arch`'s kernel builds its elfcorehdr, which ours follows.
pub fn crash_policy(arch: Arch) -> CrashPolicy {
    match arch {
        Arch::Arm64 => arm64::CRASH,
        Arch::X86_64 => x86_64::CRASH,
        Arch::Riscv64 => riscv64::CRASH,
    }
}
