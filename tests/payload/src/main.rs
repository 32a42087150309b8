//! A stand-in kernel for the bare-metal harness. It records the CPU state
//! it was entered with before touching anything, checks what the boot
//! protocol requires of the hand-off (aarch64: Documentation/arch/arm64/
//! booting.rst, riscv64: Documentation/arch/riscv/boot.rst, x86_64:
//! Documentation/arch/x86/boot.rst "64-bit Boot Protocol", ppc64le:
//! Documentation/arch/powerpc/booting.rst), prints what it found on the
//! console and exits QEMU with a status that says whether all checks
//! passed (aarch64: semihosting; riscv64: QEMU virt's sifive_test
//! finisher; x86_64: isa-debug-exit; ppc64le: RTAS power-off, after a line
//! saying which).
//!
//! It also carries `vhe_stub`: a few instructions the harness starts the
//! CPU at to set HCR_EL2.E2H (QEMU resets with E2H=0) before jumping to the
//! purgatory, whose address the harness writes at `vhe_stub_target`; the
//! riscv64 one carries `mstub`, an M-mode stand-in for firmware (see
//! payload_riscv64.rs), the x86_64 one `launcher`, the `-bios` image that
//! enters long mode and the purgatory as relocate_kernel would (see
//! payload_x86_64.rs).
#![cfg_attr(any(target_os = "none", rkx_bare_metal), no_std, no_main)]

#[cfg(not(any(target_os = "none", rkx_bare_metal)))]
fn main() {}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod payload;

#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod payload_riscv64;

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod payload_x86_64;

// ppc64le: built for powerpc64le-unknown-linux-gnu as bare metal
// (`rkx_bare_metal`, .cargo/config.toml).
#[cfg(all(target_arch = "powerpc64", target_endian = "little", rkx_bare_metal))]
mod payload_ppc64le;
