//! Leaving the purgatory: into the new kernel, or nowhere.

core::arch::global_asm!(
    r#"
    .section .text.handoff, "ax"
    // purgatory_enter(x0 = entry, x1 = dtb, x2 = clean_start, x3 = clean_len)
    //
    // Uses registers only: after the clean below, no memory is written, so
    // no dirty line of ours can reach memory after the kernel starts.
    .global purgatory_enter
purgatory_enter:
    mov     x19, x0
    mov     x20, x1
    // Clean+invalidate [x2, x2+x3) to PoC by D-cache line (our image,
    // stack included).
    mrs     x4, ctr_el0
    ubfx    x4, x4, #16, #4
    mov     x5, #4
    lsl     x5, x5, x4              // line = 4 << CTR_EL0.DminLine
    sub     x6, x5, #1
    bic     x2, x2, x6
    add     x3, x2, x3
1:  cmp     x2, x3
    b.hs    2f
    dc      civac, x2
    add     x2, x2, x5
    b       1b
2:  dsb     sy

    // booting.rst: MMU off, D-cache off (I-cache may be either; off).
    mrs     x4, CurrentEL
    cmp     x4, #(2 << 2)
    b.eq    3f
    mrs     x4, sctlr_el1
    bic     x4, x4, #1              // M
    bic     x4, x4, #(1 << 2)       // C
    bic     x4, x4, #(1 << 12)      // I
    msr     sctlr_el1, x4
    b       4f
3:  mrs     x4, sctlr_el2
    bic     x4, x4, #1
    bic     x4, x4, #(1 << 2)
    bic     x4, x4, #(1 << 12)
    msr     sctlr_el2, x4
4:  isb
    ic      iallu                   // no stale instructions for the kernel
    dsb     nsh
    isb

    // booting.rst "Primary CPU general-purpose register settings":
    // x0 = physical address of the DTB, x1 = x2 = x3 = 0.
    mov     x0, x20
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    br      x19

    // The one place the purgatory stops: DAIF stays masked (entry masked
    // it), so WFE only ever returns into this loop. Global symbols, so that
    // a debugger or the test harness can tell "halted here" from any other
    // silent state by the PC (purgatory_halt <= PC < purgatory_halt_end).
    .section .text.halt, "ax"
    .global purgatory_halt
    .global purgatory_halt_end
purgatory_halt:
    wfe
    b       purgatory_halt
purgatory_halt_end:
"#
);

unsafe extern "C" {
    fn purgatory_enter(entry: u64, dtb: u64, clean_start: u64, clean_len: u64) -> !;
    fn purgatory_halt() -> !;
}

/// Clean our own memory, turn MMU and caches off and jump to the kernel at
/// the current EL with DAIF still masked (entry masked them).
///
/// # Safety
/// `entry` must be verified kernel code and `dtb` its verified DTB, both
/// cleaned to PoC; `[image, image+image_len)` must cover every byte the
/// purgatory wrote with caches on other than those.
pub unsafe fn enter_kernel(entry: u64, dtb: u64, image: u64, image_len: u64) -> ! {
    // SAFETY: per the caller's contract.
    unsafe { purgatory_enter(entry, dtb, image, image_len) }
}

/// Stop this CPU for good in the `purgatory_halt` loop: interrupts stay
/// masked, so WFE never returns to anything but the loop.
pub fn halt() -> ! {
    // SAFETY: a WFE loop that touches no memory and never returns.
    unsafe { purgatory_halt() }
}

/// PSCI SYSTEM_RESET (PSCI 1.1 §5.1.10, function id 0x8400_0009) through
/// SMC (`smc` true) or HVC. Returns only if the call does, i.e. the reset
/// did not happen.
pub fn psci_system_reset(smc: bool) {
    const SYSTEM_RESET: u64 = 0x8400_0009;
    // SAFETY: a PSCI call does not return on success; on failure it returns
    // an error code in x0, which the caller treats as "no reset".
    unsafe {
        if smc {
            core::arch::asm!("smc #0", inout("x0") SYSTEM_RESET => _, clobber_abi("C"), options(nostack));
        } else {
            core::arch::asm!("hvc #0", inout("x0") SYSTEM_RESET => _, clobber_abi("C"), options(nostack));
        }
    }
}
