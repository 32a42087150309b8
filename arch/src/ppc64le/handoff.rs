//! Leaving the purgatory: into the new kernel, or nowhere.

// The code is in the 160 bytes between the image header and the entry
// block (entry.rs), which would otherwise be padding.

unsafe extern "C" {
    fn purgatory_enter(entry: u64, dtb: u64, msr: u64) -> !;
    fn purgatory_halt() -> !;
}

/// Jump to the kernel per Documentation/arch/powerpc/booting.rst: r3 =
/// DTB, r4 = the kernel's base (its entry: the first byte of its image),
/// r5 = 0, real mode, MSR EE off; `msr` (the MSR we were entered with)
/// gives the other facility bits back.
///
/// # Safety
/// `entry` must be verified kernel code and `dtb` its verified DTB.
pub unsafe fn enter_kernel(entry: u64, dtb: u64, msr: u64) -> ! {
    // SAFETY: per the caller's contract.
    unsafe { purgatory_enter(entry, dtb, msr) }
}

/// Stop this CPU for good in the `purgatory_halt` loop.
pub fn halt() -> ! {
    // SAFETY: a branch loop that touches no memory and never returns.
    unsafe { purgatory_halt() }
}
