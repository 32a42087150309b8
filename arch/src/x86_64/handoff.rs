//! Leaving the purgatory: into the new kernel, or nowhere.

core::arch::global_asm!(
    r#"
    .section .text.handoff, "ax"
    .code64
    // purgatory_enter_x86(rdi = entry, rsi = boot_params, rdx = cr4 to restore)
    //
    // Documentation/arch/x86/boot.rst "64-bit Boot Protocol": 64-bit mode,
    // paging on with the kernel/boot_params identity mapped, our GDT with
    // CS = __BOOT_CS (0x10) and DS/ES/SS = __BOOT_DS (0x18) already loaded
    // at entry, interrupts disabled, %rsi = struct boot_params.
    .global purgatory_enter_x86
purgatory_enter_x86:
    cli
    mov     cr4, rdx                // CR4 as relocate_kernel left it (no OSFXSR)
    mov     rax, rdi
    xor     ebx, ebx
    xor     ecx, ecx
    xor     edx, edx
    xor     edi, edi
    xor     ebp, ebp
    xor     r8d, r8d
    xor     r9d, r9d
    xor     r10d, r10d
    xor     r11d, r11d
    xor     r12d, r12d
    xor     r13d, r13d
    xor     r14d, r14d
    xor     r15d, r15d
    jmp     rax

    // The one place the purgatory stops: interrupts off, HLT; an NMI or
    // SMI returns into the loop. Global symbols, so that a debugger can
    // tell "halted here" by the PC (purgatory_halt <= RIP < purgatory_halt_end).
    .section .text.halt, "ax"
    .global purgatory_halt
    .global purgatory_halt_end
purgatory_halt:
    cli
    hlt
    jmp     purgatory_halt
purgatory_halt_end:
"#
);

unsafe extern "C" {
    fn purgatory_enter_x86(entry: u64, boot_params: u64, cr4: u64) -> !;
    fn purgatory_halt() -> !;
}

/// Jump to the kernel's 64-bit entry with `boot_params` in %rsi.
///
/// # Safety
/// `entry` and `boot_params` must be verified; `cr4` the value at entry.
pub unsafe fn enter_kernel(entry: u64, boot_params: u64, cr4: u64) -> ! {
    // SAFETY: per the caller's contract.
    unsafe { purgatory_enter_x86(entry, boot_params, cr4) }
}

/// Stop for good in the `purgatory_halt` loop: interrupts off, HLT (NMIs
/// return into the loop).
pub fn halt() -> ! {
    // SAFETY: a CLI/HLT loop that touches no memory and never returns.
    unsafe { purgatory_halt() }
}

/// Reset the machine: PCI reset control (port 0xcf9: 0x02 then 0x06, a
/// hard reset), then the keyboard controller's reset pulse (0xfe to port
/// 0x64). Returns only if both were ignored.
pub fn reset() {
    use super::port::outb;
    outb(0xcf9, 0x02);
    outb(0xcf9, 0x06);
    outb(0x64, 0xfe);
}
