//! Image header, entry point, self-relocation and the trap vector.
//!
//! The kernel's relocation code (arch/riscv/kernel/kexec_relocate.S) enters
//! us in S-mode with satp = 0, a0 = hart id, a1 = the FDT it found, sie = 0
//! and sstatus.SIE = 0; on the crash path through a trap, with `stvec`
//! pointing at our own entry (docs/riscv64.md). Header layout:
//! `kexec_purgatory::abi::ImageHeader` (docs/abi.md).

core::arch::global_asm!(
    r#"
    .section .text.head, "ax"
    .option push
    .option norvc                   // code0/code1 are exactly 4 bytes each
    .global _head
_head:
    j       _start                  // code0: jumping to offset 0 works too
    nop                             // code1
    .ascii  "RKXPURG\0"             // magic
    .word   1                       // abi_version
    .word   96                      // header_size
    .word   3                       // arch: ARCH_RISCV64
    .word   1                       // flags: IMAGE_FLAG_POSITION_INDEPENDENT
    .dword  __image_size
    .dword  __mem_size
    .dword  _start - _head          // entry_offset
    .dword  __params_offset
    .dword  __params_size
    .dword  0, 0, 0                 // reserved
    .option pop

    .global _start
    .balign 4
_start:
    // Interrupts off (boot.rst hands over with them off; the kernel's
    // relocation code already cleared sie/sip, we make sure).
    csrci   sstatus, 2              // sstatus.SIE
    csrw    sie, zero
    // Our own trap vector before anything can trap: on the crash path
    // stvec still points at _start (riscv_kexec_norelocate), so a fault
    // would re-enter us. Direct mode: the address must be 4-byte aligned.
    lla     t0, rkx_trap_vector
    csrw    stvec, t0
    csrw    sscratch, zero

    mv      s1, a0                  // hart id (boot.rst: a0)
    mv      s2, a1                  // the FDT the kernel found (a1)
    lla     s0, _head               // runtime base (linked at 0)

    // Apply R_RISCV_RELATIVE (3) (RISC-V ELF psABI, "Dynamic
    // relocations"): *(base + r_offset) = base + r_addend. Any other type
    // means the image was built wrong: stop here.
    lla     t0, __rela_start
    lla     t1, __rela_end
1:  bgeu    t0, t1, 2f
    ld      t2, 0(t0)               // r_offset
    ld      t3, 8(t0)               // r_info
    ld      t4, 16(t0)              // r_addend
    addi    t0, t0, 24
    li      t5, 3
    bne     t3, t5, .Lbad_relocation
    add     t4, t4, s0
    add     t2, t2, s0
    sd      t4, 0(t2)
    j       1b

    // Zero .bss (a loader that copies only the file bytes must work too).
2:  lla     t0, __bss_start
    lla     t1, __bss_end
3:  bgeu    t0, t1, 4f
    sd      zero, 0(t0)
    addi    t0, t0, 8
    j       3b

4:  lla     sp, __stack_top
    // sstatus.FS = Initial (bits 14:13 = 01): the riscv64gc target may use
    // FP registers; the kernel disables the unit again in its head.S.
    li      t0, (3 << 13)
    csrc    sstatus, t0
    li      t0, (1 << 13)
    csrs    sstatus, t0
    // The relocations and .bss are data; nothing we execute changed, but
    // order the stores before any instruction fetch that could see them.
    fence.i

    mv      a0, s0
    mv      a1, s1
    mv      a2, s2
    call    purgatory_main
.Lbad_relocation:
    csrw    sie, zero
    wfi
    j       .Lbad_relocation

    // Trap vector (stvec, direct mode). A trap while a guarded probe is
    // armed (rkx_probe_resume != 0) resumes at that address with the probe
    // failed; that is how reading `seed` or `time` survives S-mode having
    // no access (docs/riscv64.md, Zkr). Any other trap is a bug of ours:
    // report it and stop (rkx_unexpected_trap never returns).
    .balign 4
    .global rkx_trap_vector
rkx_trap_vector:
    csrw    sscratch, t6
    lla     t6, rkx_probe_resume
    ld      t6, 0(t6)
    beqz    t6, 5f
    csrw    sepc, t6
    lla     t6, rkx_probe_resume
    sd      zero, 0(t6)
    csrr    t6, sscratch
    sret
5:  csrr    a0, scause
    csrr    a1, sepc
    csrr    a2, stval
    lla     sp, __stack_top
    call    rkx_unexpected_trap
6:  wfi
    j       6b

    // In .data (file bytes, zero in the image): valid before .bss is
    // cleared, so a trap during relocation is never taken for a probe.
    .section .data.rkx_probe, "aw"
    .balign 8
    .global rkx_probe_resume
rkx_probe_resume:
    .dword  0
"#
);

/// Header field `mem_size` of the image loaded at `base`.
///
/// # Safety
/// `base` must be the runtime base `_start` computed.
pub unsafe fn image_mem_size(base: u64) -> u64 {
    // SAFETY: the header is the first 96 bytes of the image at `base`;
    // mem_size is at offset 40, 8-byte aligned.
    unsafe { core::ptr::read_volatile((base + 40) as *const u64) }
}
