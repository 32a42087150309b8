//! The purgatory image: `machine` is the shared glue between the
//! architecture code (`purgatory-arch`) and the portable flow
//! (`kexec_purgatory::verify`); `aarch64` and `x86_64` hold what only that
//! architecture does, as one linear `purgatory_main`. On the host this
//! compiles to an empty program so the workspace builds and tests there.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod machine;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod aarch64;

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod x86_64;

#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod riscv64;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the purgatory is a bare-metal image: build it with --target aarch64-unknown-none");
}
