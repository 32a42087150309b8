//! Image header, the entry block, self-relocation and the master CPU's
//! set-up.
//!
//! The kernel's `kexec_sequence` (arch/powerpc/kernel/misc_64.S) copies the
//! 256 bytes at the entry point (`image->start`) to physical 0, releases
//! the other CPUs to 0x60 there (big-endian, real mode, r3 = their physical
//! id) and then enters the entry point with `blr`: little-endian (as the
//! old kernel ran), 64-bit, real mode (MSR IR = DR = 0), MSR EE = 0, r3 =
//! this CPU's physical id, r4 = LR = the entry point, r5 = 0. r1, r2 and
//! r13 still hold the old kernel's stack, TOC and PACA (virtual
//! addresses): none of them is used here. Header layout:
//! `kexec_purgatory::abi::ImageHeader` (docs/abi.md).

core::arch::global_asm!(
    r#"
    .section .text.head, "ax"
    .global _head
_head:
    b       _start                  // code0: jumping to offset 0 works too
    nop                             // code1
    .ascii  "RKXPURG\0"             // magic
    .long   1                       // abi_version
    .long   96                      // header_size
    .long   4                       // arch: ARCH_PPC64LE
    .long   1                       // flags: IMAGE_FLAG_POSITION_INDEPENDENT
    .quad   __image_size
    .quad   __mem_size
    .quad   _start - _head          // entry_offset
    .quad   __params_offset
    .quad   __params_size
    .quad   0, 0, 0                 // reserved

    // The hand-off and the halt loop (handoff.rs), here because the entry
    // block's alignment leaves these bytes free (loader-host's image test
    // checks that the block still starts at 0x100).

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
    .global purgatory_halt
    .global purgatory_halt_end
purgatory_halt:
    or      31, 31, 31              // lowest SMT priority (a hint)
    b       purgatory_halt
purgatory_halt_end:

    // The entry block (abi::PPC64LE_ENTRY_BLOCK_SIZE, docs/abi.md
    // "ppc64le"): kexec_sequence copies these 256 bytes to physical 0 and
    // sends the other CPUs to 0x60 there. Word 0 is ours; bytes 4..0xff
    // are the loader's, which puts the new kernel's own bytes there (its
    // __run_at_load word at 0x5c and its __secondary_hold loop at 0x60),
    // as kexec-tools' v2wrap.S and elf_ppc64_load do. Our code never
    // executes them. Unfilled, 0x60 holds `b .` encoded big-endian (bytes
    // 48 00 00 00): a CPU sent there spins, as with v2wrap.S's `b $`.
    .balign 256
    .global _start
_start:
    b       rkx_master
    .space  0x5c - 4, 0
    .long   0                       // +0x5c: run_at_load (the loader's)
    .long   0x00000048              // +0x60: `b .`, big-endian
    .space  0x100 - 0x64, 0

rkx_master:
    // Keep the CPU id (r3); our base and TOC come from our own address,
    // not from r4 or r12 (ELFv2 §2.3.2.1's global entry convention does
    // not hold here: r12 is whatever kexec_sequence's clear_all left).
    mr      %r31, %r3
    mfmsr   %r28                     // MSR as kexec_sequence left it
    bcl     20, 31, 1f              // LR = 1f (the form that does not
1:  mflr    %r29                     // disturb the link-stack predictor)
    addi    %r30, %r29, _head - 1b    // runtime base (linked at 0)
    // ELFv2 ABI §3.4 "TOC": r2 = .TOC., here PC-relative.
    addis   %r2, %r29, (.TOC. - 1b)@ha
    addi    %r2, %r2, (.TOC. - 1b)@l
    li      %r13, 0                  // no PACA, no thread pointer

    // Apply R_PPC64_RELATIVE (22) (ELFv2 ABI §3.5.3, "Relocation
    // Types"): *(base + r_offset) = base + r_addend. Any other type means
    // the image was built wrong: stop here. Only data changes, so the
    // instruction cache needs nothing.
    addis   %r5, %r2, __rela_start@toc@ha
    addi    %r5, %r5, __rela_start@toc@l
    addis   %r6, %r2, __rela_end@toc@ha
    addi    %r6, %r6, __rela_end@toc@l
2:  cmpld   %r5, %r6
    bge     3f
    ld      %r7, 0(%r5)               // r_offset
    ld      %r8, 8(%r5)               // r_info
    ld      %r9, 16(%r5)              // r_addend
    addi    %r5, %r5, 24
    cmpldi  %r8, 22
    bne     .Lbad_relocation
    add     %r9, %r9, %r30
    stdx    %r9, %r30, %r7
    b       2b

    // Zero .bss (a loader that copies only the file bytes must work too).
3:  addis   %r5, %r2, __bss_start@toc@ha
    addi    %r5, %r5, __bss_start@toc@l
    addis   %r6, %r2, __bss_end@toc@ha
    addi    %r6, %r6, __bss_end@toc@l
    li      %r0, 0
4:  cmpld   %r5, %r6
    bge     5f
    std     %r0, 0(%r5)
    addi    %r5, %r5, 8
    b       4b

    // Our stack: ELFv2 §2.2.2.1, a 32-byte minimum frame with a zero back
    // chain, 16-byte aligned.
5:  addis   %r1, %r2, __stack_top@toc@ha
    addi    %r1, %r1, __stack_top@toc@l
    stdu    %r0, -32(%r1)

    // MSR: FP, VEC and VSX on (Power ISA v3.0B Book III, "Machine State
    // Register": bits 50, 38 and 40 enable those facilities; the
    // compiler's POWER8 code and the SHA-256 engine use them), EE off (it
    // is: kexec_sequence cleared it; we make sure). mtmsrd with L = 0
    // ("Move To MSR Doubleword") sets them and cannot change LE, HV or ME;
    // IR and DR stay 0: we run in real mode throughout.
    ori     %r27, %r28, 0x2000        // FP
    oris    %r27, %r27, 0x0280        // VEC | VSX
    li      %r0, 0x4000
    sldi    %r0, %r0, 1               // 0x8000: EE
    andc    %r27, %r27, %r0
    mtmsrd  %r27
    isync

    mr      %r3, %r30                 // base
    mr      %r4, %r31                 // CPU id
    mr      %r5, %r28                 // MSR at entry
    bl      purgatory_main
    nop
.Lbad_relocation:
    b       .Lbad_relocation
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

/// Header field `entry_offset` of the image loaded at `base`: where the
/// entry block is.
///
/// # Safety
/// As [`image_mem_size`].
pub unsafe fn image_entry_offset(base: u64) -> u64 {
    // SAFETY: as in image_mem_size; entry_offset is at offset 48.
    unsafe { core::ptr::read_volatile((base + 48) as *const u64) }
}
