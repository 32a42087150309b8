//! The purgatory image: `platform` is the shared glue between the
//! architecture code (`purgatory-arch`) and the portable flow
//! (`kexec_purgatory::verify`); `aarch64`, `x86_64`, `riscv64` and
//! `ppc64le` hold what only that
//! architecture does, as one linear `purgatory_main`. On the host this
//! compiles to an empty program so the workspace builds and tests there.
#![cfg_attr(any(target_os = "none", rkx_bare_metal), no_std, no_main)]

#[cfg(any(target_os = "none", rkx_bare_metal))]
mod platform;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod aarch64;

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod x86_64;

#[cfg(all(target_arch = "riscv64", target_os = "none"))]
mod riscv64;

// ppc64le: a hosted target built as the image (`rkx_bare_metal`,
// .cargo/config.toml).
#[cfg(all(target_arch = "powerpc64", target_endian = "little", rkx_bare_metal))]
mod ppc64le;

#[cfg(not(any(target_os = "none", rkx_bare_metal)))]
fn main() {
    eprintln!("the purgatory is a bare-metal image: build it with --target aarch64-unknown-none");
}
