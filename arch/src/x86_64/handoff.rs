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
"#
);

unsafe extern "C" {
    fn purgatory_enter_x86(entry: u64, boot_params: u64, cr4: u64) -> !;
}

/// Jump to the kernel's 64-bit entry with `boot_params` in %rsi.
///
/// # Safety
/// `entry` and `boot_params` must be verified; `cr4` the value at entry.
pub unsafe fn enter_kernel(entry: u64, boot_params: u64, cr4: u64) -> ! {
    // SAFETY: per the caller's contract.
    unsafe { purgatory_enter_x86(entry, boot_params, cr4) }
}

/// Stop: interrupts off, HLT forever (NMIs return to the loop).
pub fn halt() -> ! {
    loop {
        // SAFETY: no memory effect.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
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
