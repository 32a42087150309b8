//! Leaving the purgatory: into the new kernel, or nowhere.

core::arch::global_asm!(
    r#"
    .section .text.handoff, "ax"
    .balign 4
    // purgatory_enter(a0 = entry, a1 = hart id, a2 = dtb)
    .global purgatory_enter
purgatory_enter:
    mv      t0, a0
    mv      s0, a1
    mv      s1, a2
    // Interrupts stay off (boot.rst hands over with the kernel masking
    // them itself; never let one arrive in between).
    csrci   sstatus, 2
    csrw    sie, zero
    csrw    sip, zero
    // MMU off (boot.rst "CSR state": satp = 0). It already is: we were
    // entered that way and never enabled it.
    csrw    satp, zero
    sfence.vma
    // FP back to Off, as the kernel's relocation code left it; clear the
    // trap state the way kexec_relocate.S does.
    li      t1, (3 << 13)
    csrc    sstatus, t1
    csrw    stvec, zero
    csrw    sscratch, zero
    csrw    sepc, zero
    csrw    scause, zero
    // boot.rst "Register state": a0 = hart id, a1 = devicetree.
    mv      a0, s0
    mv      a1, s1
    li      a2, 0
    li      a3, 0
    li      a4, 0
    li      a5, 0
    li      a6, 0
    li      a7, 0
    li      s0, 0
    li      s1, 0
    li      s2, 0
    li      s3, 0
    li      s4, 0
    li      s5, 0
    li      s6, 0
    li      s7, 0
    li      s8, 0
    li      s9, 0
    li      s10, 0
    li      s11, 0
    li      t1, 0
    li      t2, 0
    li      t3, 0
    li      t4, 0
    li      t5, 0
    li      t6, 0
    li      ra, 0
    li      sp, 0
    li      gp, 0
    li      tp, 0
    // Make every store (DTB patches) visible to instruction fetch too,
    // as kexec_relocate.S does before its jump.
    fence   rw, rw
    fence.i
    jr      t0

    // The one place the purgatory stops: S-mode interrupts off, so WFI
    // only ever returns into this loop (the privileged spec allows
    // spurious wake-ups). Global symbols, so that a debugger or the test
    // harness can tell "halted here" from any other silent state by the PC
    // (purgatory_halt <= pc < purgatory_halt_end).
    .section .text.halt, "ax"
    .balign 4
    .global purgatory_halt
    .global purgatory_halt_end
purgatory_halt:
    csrci   sstatus, 2
    csrw    sie, zero
1:  wfi
    j       1b
purgatory_halt_end:
"#
);

unsafe extern "C" {
    fn purgatory_enter(entry: u64, hart_id: u64, dtb: u64) -> !;
    fn purgatory_halt() -> !;
}

/// Jump to the kernel per Documentation/arch/riscv/boot.rst: a0 = hart id,
/// a1 = DTB, satp = 0, S-mode, interrupts off.
///
/// # Safety
/// `entry` must be verified kernel code and `dtb` its verified DTB.
pub unsafe fn enter_kernel(entry: u64, hart_id: u64, dtb: u64) -> ! {
    // SAFETY: per the caller's contract.
    unsafe { purgatory_enter(entry, hart_id, dtb) }
}

/// Stop this hart for good in the `purgatory_halt` loop.
pub fn halt() -> ! {
    // SAFETY: masks S-mode interrupts and waits in WFI; no memory effect,
    // never returns.
    unsafe { purgatory_halt() }
}
