//! A stand-in kernel for the bare-metal harness. It records the CPU state
//! it was entered with before touching anything, checks what
//! Documentation/arch/arm64/booting.rst requires of the hand-off, prints
//! what it found on the PL011 and exits QEMU through semihosting with 0
//! (all checks passed) or 1.
//!
//! It also carries `vhe_stub`: a few instructions the harness starts the
//! CPU at to set HCR_EL2.E2H (QEMU resets with E2H=0) before jumping to the
//! purgatory, whose address the harness writes at `vhe_stub_target`.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod payload;
