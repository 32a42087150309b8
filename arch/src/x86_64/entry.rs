//! Image header, entry point, self-relocation and segment setup.
//!
//! relocate_kernel (arch/x86/kernel/relocate_kernel_64.S) enters us in
//! 64-bit mode on the kexec identity page tables, interrupts off, with CR4
//! reduced to PAE (+LA57) and no usable stack or GDT of ours. Header layout:
//! `kexec_purgatory::abi::ImageHeader` (docs/abi.md).

core::arch::global_asm!(
    r#"
    .section .text.head, "ax"
    .global _head
    .code64
_head:
    jmp     _start                  // code0: 5-byte jmp rel32 + 3 bytes
    .balign 8, 0x90                 // code1 padding (nops)
    .ascii  "RKXPURG\0"             // magic
    .long   1                       // abi_version
    .long   96                      // header_size
    .long   2                       // arch: ARCH_X86_64
    .long   1                       // flags: IMAGE_FLAG_POSITION_INDEPENDENT
    .quad   __image_size
    .quad   __mem_size
    .quad   _start - _head          // entry_offset
    .quad   __params_offset
    .quad   __params_size
    .quad   0, 0, 0

    .global _start
_start:
    cli                             // boot.rst: interrupts must be disabled
    cld
    lea     rbx, [rip + _head]      // runtime base (linked at 0)

    // Apply R_X86_64_RELATIVE (8): *(base + r_offset) = base + r_addend.
    lea     rsi, [rip + __rela_start]
    lea     rdi, [rip + __rela_end]
1:  cmp     rsi, rdi
    jae     2f
    mov     rax, [rsi]              // r_offset
    mov     rcx, [rsi + 8]          // r_info
    mov     rdx, [rsi + 16]         // r_addend
    add     rsi, 24
    cmp     rcx, 8
    jne     .Lbad_relocation
    add     rdx, rbx
    mov     [rbx + rax], rdx
    jmp     1b

    // Zero .bss.
2:  lea     rdi, [rip + __bss_start]
    lea     rcx, [rip + __bss_end]
    sub     rcx, rdi
    xor     eax, eax
    rep stosb

    lea     rsp, [rip + __stack_top]

    // Our own GDT: the kernel's is at a virtual address the identity map
    // may not cover. boot.rst 64-bit protocol: __BOOT_CS = 0x10 (4G flat
    // execute/read), __BOOT_DS = 0x18 (4G flat read/write).
    lea     rax, [rip + purgatory_gdt]
    mov     [rip + purgatory_gdt_ptr + 2], rax
    lgdt    [rip + purgatory_gdt_ptr]
    lea     rax, [rip + 3f]
    push    0x10
    push    rax
    retfq
3:  mov     eax, 0x18
    mov     ds, eax
    mov     es, eax
    mov     ss, eax
    mov     fs, eax
    mov     gs, eax

    mov     rdi, rbx
    call    purgatory_main
.Lbad_relocation:
    cli
    hlt
    jmp     .Lbad_relocation

    .section .data.gdt, "aw"
    .balign 16
purgatory_gdt:
    .quad   0                       // 0x00 null
    .quad   0                       // 0x08 unused
    .quad   0x00af9a000000ffff      // 0x10 code: L=1, P, DPL0, exec/read
    .quad   0x00cf92000000ffff      // 0x18 data: P, DPL0, read/write, 4G
purgatory_gdt_end:
    .balign 8
purgatory_gdt_ptr:
    .word   purgatory_gdt_end - purgatory_gdt - 1
    .quad   0                       // base, written at run time
"#
);

/// Header field `mem_size` of the image loaded at `base`.
///
/// # Safety
/// `base` must be the runtime base `_start` computed.
pub unsafe fn image_mem_size(base: u64) -> u64 {
    // SAFETY: the header is the first 96 bytes of the image at `base`;
    // mem_size is at offset 40.
    unsafe { core::ptr::read_volatile((base + 40) as *const u64) }
}
