//! Image header, entry point and self-relocation.
//!
//! The header layout is `kexec_purgatory::abi::ImageHeader` (docs/abi.md);
//! the loader's tests parse it from the built image, so the two cannot
//! drift silently. Symbols starting with `__` come from
//! the purgatory's linker script (linker/purgatory.ld).

core::arch::global_asm!(
    r#"
    .section .text.head, "ax"
    .global _head
_head:
    b       _start                  // code0: jumping to offset 0 works too
    nop                             // code1
    .ascii  "RKXPURG\0"             // magic
    .word   1                       // abi_version
    .word   96                      // header_size
    .word   1                       // arch: ARCH_AARCH64
    .word   1                       // flags: IMAGE_FLAG_POSITION_INDEPENDENT
    .quad   __image_size            // image_size: bytes in the flat file
    .quad   __mem_size              // mem_size: file + bss + stack
    .quad   _start - _head          // entry_offset
    .quad   __params_offset         // params_offset
    .quad   __params_size           // params_size
    .quad   0, 0, 0                 // reserved

    .global _start
_start:
    // booting.rst: all of DAIF masked at the hand-off; mask them now so
    // nothing can interrupt a CPU with no vectors of ours installed.
    msr     daifset, #0xf

    // Runtime base of the image (linked at 0).
    adr     x19, _head

    // Apply R_AARCH64_RELATIVE (ELF for the Arm 64-bit Architecture,
    // "Dynamic relocations"): *(base + r_offset) = base + r_addend.
    // Any other type means the image was built wrong: stop here.
    adrp    x1, __rela_start
    add     x1, x1, :lo12:__rela_start
    adrp    x2, __rela_end
    add     x2, x2, :lo12:__rela_end
1:  cmp     x1, x2
    b.hs    2f
    ldp     x3, x4, [x1]            // r_offset, r_info
    ldr     x5, [x1, #16]           // r_addend
    add     x1, x1, #24
    cmp     x4, #1027               // R_AARCH64_RELATIVE, symbol 0
    b.ne    .Lbad_relocation
    add     x5, x5, x19
    str     x5, [x19, x3]
    b       1b

    // Zero .bss (the loader's memsz zero-fill should have, but a loader
    // that copies only the file bytes must work too).
2:  adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
3:  cmp     x1, x2
    b.hs    4f
    stp     xzr, xzr, [x1], #16
    b       3b

4:  adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1

    // Allow FP/SIMD at the current EL (the SHA-256 code uses it).
    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)
    b.ne    .Lfp_el1
    mrs     x1, hcr_el2
    tbnz    x1, #34, .Lfp_vhe       // HCR_EL2.E2H
    // nVHE EL2: CPTR_EL2.TFP (bit 10) traps FP/SIMD; clear it.
    mrs     x1, cptr_el2
    bic     x1, x1, #(1 << 10)
    msr     cptr_el2, x1
    b       .Lfp_done
.Lfp_vhe:
    // E2H=1: CPTR_EL2 has the CPACR_EL1 layout; FPEN [21:20] = 0b11.
    mrs     x1, cptr_el2
    orr     x1, x1, #(3 << 20)
    msr     cptr_el2, x1
    b       .Lfp_done
.Lfp_el1:
    // CPACR_EL1.FPEN [21:20] = 0b11: no FP/SIMD traps at EL1/EL0.
    mrs     x1, cpacr_el1
    orr     x1, x1, #(3 << 20)
    msr     cpacr_el1, x1
.Lfp_done:
    isb

    mov     x0, x19
    bl      purgatory_main
.Lbad_relocation:
    wfe
    b       .Lbad_relocation
"#
);

/// Header field `mem_size` of the image loaded at `base` (entry passes the
/// runtime base to `purgatory_main`).
///
/// # Safety
/// `base` must be the runtime base `_start` computed.
pub unsafe fn image_mem_size(base: u64) -> u64 {
    // SAFETY: the header is the first 96 bytes of the image at `base`;
    // mem_size is at offset 40, 8-byte aligned.
    unsafe { core::ptr::read_volatile((base + 40) as *const u64) }
}
