//! The purgatory image: glue between the architecture code (`purgatory-arch`)
//! and the portable flow (`kexec_purgatory::verify`). On the host this
//! compiles to an empty program so the workspace builds and tests there.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod params {
    use kexec_purgatory::abi::PurgatoryParams;

    /// The parameter block the loader fills in (docs/abi.md). Zero in the
    /// built image, so an unfilled image refuses to run (bad magic).
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".params")]
    static mut PURGATORY_PARAMS: PurgatoryParams = PurgatoryParams::EMPTY;

    /// The block as the loader wrote it. `black_box` hides the static's
    /// initialiser from the optimiser (the loader changed it after the
    /// build) without a field-by-field volatile copy.
    pub fn loaded_params() -> &'static PurgatoryParams {
        // SAFETY: nothing in the purgatory writes the block; single CPU.
        unsafe { &*core::hint::black_box(core::ptr::addr_of!(PURGATORY_PARAMS)) }
    }
}

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
