//! `memcmp` with REPE CMPSB (C11 7.24.4.1; Intel SDM Vol. 2 "CMPS"),
//! replacing compiler_builtins' word-at-a-time version (a weak symbol
//! there, 580 bytes): the purgatory compares digests and short names only.
//! The direction flag is clear (SysV ABI; `_start` clears it). `memcpy`
//! and `memset` are inlined as REP MOVSB / REP STOSB already.
core::arch::global_asm!(
    ".section .text.rkx_mem, \"ax\"",
    ".global memcmp",
    ".type memcmp, @function",
    // rdi = a, rsi = b, rdx = n; returns the difference of the first
    // differing bytes (as unsigned char), or 0.
    "memcmp:",
    "    xor     eax, eax",
    "    mov     rcx, rdx",
    // With rcx = 0 nothing is compared and ZF is still set from the xor.
    "    repe cmpsb",
    "    je      1f",
    "    movzx   eax, byte ptr [rdi - 1]",
    "    movzx   ecx, byte ptr [rsi - 1]",
    "    sub     eax, ecx",
    "1:  ret",
    ".size memcmp, . - memcmp",
    ".text",
);
