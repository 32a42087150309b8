//! Leaving the purgatory: into the new kernel, or nowhere.

core::arch::global_asm!(
    r#"
    .section .text.handoff, "ax"
    .balign 4
    // purgatory_enter(r3 = entry, r4 = dtb, r5 = MSR to run the kernel with)
    .global purgatory_enter
purgatory_enter:
    mtctr   %r3
    mr      %r6, %r3
    // MSR as we were entered with (FP/VEC/VSX as the old kernel left
    // them), EE off: booting.rst's entry has interrupts off, and
    // kexec_sequence left EE off. mtmsrd (L = 0) cannot change LE, HV, ME.
    li      %r0, 0x4000
    sldi    %r0, %r0, 1               // 0x8000: EE
    andc    %r5, %r5, %r0
    mtmsrd  %r5
    isync
    // Our stores (the DTB patches, run_at_load) are data the kernel reads
    // with ordinary loads: order them before its first access. Nothing we
    // wrote is code, so the instruction cache needs nothing.
    sync
    // Documentation/arch/powerpc/booting.rst, "Entry point" b): r3 = the
    // DTB, r4 = the kernel's physical address, r5 = 0 (a flat-tree entry,
    // not Open Firmware's). r8/r9 are 0 as on pseries under kexec-tools
    // (its v2wrap.S passes OPAL base/entry there). Entered little-endian:
    // the kernel's __start (FIXUP_ENDIAN) takes either endianness.
    mr      %r3, %r4
    mr      %r4, %r6
    li      %r5, 0
    li      %r6, 0
    li      %r7, 0
    li      %r8, 0
    li      %r9, 0
    li      %r10, 0
    li      %r11, 0
    li      %r12, 0
    bctr

    // The one place the purgatory stops: EE is off, so nothing but a
    // system reset or machine check leaves the loop. Global symbols, so
    // that a debugger or the test harness can tell "halted here" from any
    // other silent state by the PC (purgatory_halt <= pc < purgatory_halt_end).
    .section .text.halt, "ax"
    .balign 4
    .global purgatory_halt
    .global purgatory_halt_end
purgatory_halt:
    or      31, 31, 31              // lowest SMT priority (a hint)
    b       purgatory_halt
purgatory_halt_end:
"#
);

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
