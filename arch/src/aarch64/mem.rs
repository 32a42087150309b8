//! `memcpy`, `memset` and `memcmp` as byte loops (C11 7.24.2.1, 7.24.6.1,
//! 7.24.4.1), replacing compiler_builtins' word-at-a-time versions (weak
//! symbols there): nothing in the purgatory copies, fills or compares
//! more than a few KiB (a translation table, a digest, a padding block),
//! and these are 60 bytes instead of 900. Byte accesses are always
//! aligned, so they also work with the MMU off (Device memory: Arm ARM
//! B2.5.2). The digest engines read segment memory themselves.
core::arch::global_asm!(
    ".section .text.rkx_mem, \"ax\"",
    ".balign 4",
    ".global memcpy",
    ".type memcpy, %function",
    // x0 = dest, x1 = src, x2 = n; returns dest.
    "memcpy:",
    "    mov     x3, x0",
    "    cbz     x2, 2f",
    "1:  ldrb    w4, [x1], #1",
    "    strb    w4, [x3], #1",
    "    subs    x2, x2, #1",
    "    b.ne    1b",
    "2:  ret",
    ".size memcpy, . - memcpy",
    ".global memset",
    ".type memset, %function",
    // x0 = dest, w1 = byte, x2 = n; returns dest.
    "memset:",
    "    mov     x3, x0",
    "    cbz     x2, 2f",
    "1:  strb    w1, [x3], #1",
    "    subs    x2, x2, #1",
    "    b.ne    1b",
    "2:  ret",
    ".size memset, . - memset",
    ".global memcmp",
    ".type memcmp, %function",
    // x0 = a, x1 = b, x2 = n; returns the difference of the first
    // differing bytes (as unsigned char), or 0.
    "memcmp:",
    "    mov     w3, #0",
    "    cbz     x2, 2f",
    "1:  ldrb    w3, [x0], #1",
    "    ldrb    w4, [x1], #1",
    "    subs    w3, w3, w4",
    "    b.ne    2f",
    "    subs    x2, x2, #1",
    "    b.ne    1b",
    "2:  mov     w0, w3",
    "    ret",
    ".size memcmp, . - memcmp",
    ".text",
);
