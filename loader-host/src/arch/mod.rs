//! The architectures a kernel can be loaded for: one module each, listed
//! once in `ARCHITECTURES`. Each module declares its
//! [`ArchSpec`](crate::arch_spec::ArchSpec) and implements
//! `contract::Architecture`: placement and boot data for kexec_load,
//! what kexec_file_load's own loader requires. They share only what lives
//! in this folder's `contract` and `dtb_boot` and outside it (placement,
//! crash, dtb, boot_params, system), never each other.
//!
//! Adding an architecture is one module here and one line in
//! `ARCHITECTURES` (docs/loader.md "Adding an architecture").

pub mod arm64;
pub(crate) mod contract;
pub mod dtb_boot;
pub mod ppc64le;
pub mod riscv64;
pub mod x86_64;

use crate::arch_spec::Arch;

use self::contract::Architecture;

/// Every architecture rkexec loads kernels for.
pub(crate) static ARCHITECTURES: &[&dyn Architecture] =
    &[&arm64::Arm64, &x86_64::X86_64, &riscv64::Riscv64, &ppc64le::Ppc64le];

/// The architecture whose kernels have ELF machine `machine`.
pub(crate) fn for_machine(machine: u16) -> Option<&'static dyn Architecture> {
    ARCHITECTURES.iter().copied().find(|a| a.spec().elf_machine == machine)
}

/// Every architecture, in the table's order.
pub fn all() -> impl Iterator<Item = Arch> {
    ARCHITECTURES.iter().map(|a| a.arch())
}

/// The architecture whose kernels have ELF machine `machine`, if rkexec
/// loads them.
pub fn by_machine(machine: u16) -> Option<Arch> {
    for_machine(machine).map(|a| a.arch())
}

/// The architecture `name` names (its kernel name or an alias: `arm64`,
/// `aarch64`, `x86_64`, `amd64`, …).
pub fn by_name(name: &str) -> Option<Arch> {
    all().find(|a| a.is_named(name))
}

/// The architecture this program runs on, if it loads kernels for it
/// (every one of them is little-endian: a big-endian ppc64 host is none).
pub fn native() -> Option<Arch> {
    if cfg!(target_endian = "big") {
        return None;
    }
    all().find(|a| a.rust_arch == std::env::consts::ARCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_machines_and_purgatories_are_unique() {
        let specs: Vec<Arch> = all().collect();
        for (i, a) in specs.iter().enumerate() {
            for b in &specs[..i] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.elf_machine, b.elf_machine, "{a} and {b}");
                assert_ne!(a.purgatory_arch, b.purgatory_arch, "{a} and {b}");
                assert!(!a.aliases.iter().any(|n| b.is_named(n)), "{a} and {b} share a name");
            }
            assert_eq!(by_name(a.name), Some(*a));
            assert_eq!(by_machine(a.elf_machine), Some(*a));
        }
        assert_eq!(by_name("aarch64").map(|a| a.name), Some("arm64"));
        assert_eq!(by_name("amd64").map(|a| a.name), Some("x86_64"));
        assert_eq!(by_name("sparc"), None);
    }
}
