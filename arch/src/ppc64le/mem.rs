//! `memcpy`, `memmove`, `memset`, `memcmp` and `bcmp` as byte loops (C11
//! 7.24.2.1, 7.24.2.2, 7.24.6.1, 7.24.4.1; bcmp: POSIX.1-2001). The image
//! is built for a hosted target (powerpc64le-unknown-linux-gnu, used
//! without its C library), whose compiler_builtins expects the C library to
//! provide these: they must be here. Nothing in the purgatory copies,
//! fills or compares more than a few KiB (a digest, a padding block, the
//! DTB patch); the digest engines read segment memory themselves.
//! ELFv2 leaf functions: no stack frame, no TOC use.
core::arch::global_asm!(
    ".section .text.rkx_mem, \"ax\"",
    ".balign 4",
    ".global memcpy",
    ".type memcpy, @function",
    // r3 = dest, r4 = src, r5 = n; returns dest.
    "memcpy:",
    "    mr      %r6, %r3",
    "    cmpldi  %r5, 0",
    "    beqlr",
    "    mtctr   %r5",
    "1:  lbz     %r7, 0(%r4)",
    "    stb     %r7, 0(%r6)",
    "    addi    %r4, %r4, 1",
    "    addi    %r6, %r6, 1",
    "    bdnz    1b",
    "    blr",
    ".size memcpy, . - memcpy",
    ".global memmove",
    ".type memmove, @function",
    // As memcpy; backwards when dest lies above src (overlap-safe).
    "memmove:",
    "    cmpld   %r3, %r4",
    "    ble     memcpy",
    "    cmpldi  %r5, 0",
    "    beqlr",
    "    mtctr   %r5",
    "    add     %r4, %r4, %r5",
    "    add     %r6, %r3, %r5",
    "1:  lbzu    %r7, -1(%r4)",
    "    stbu    %r7, -1(%r6)",
    "    bdnz    1b",
    "    blr",
    ".size memmove, . - memmove",
    ".global memset",
    ".type memset, @function",
    // r3 = dest, r4 = byte, r5 = n; returns dest.
    "memset:",
    "    mr      %r6, %r3",
    "    cmpldi  %r5, 0",
    "    beqlr",
    "    mtctr   %r5",
    "1:  stb     %r4, 0(%r6)",
    "    addi    %r6, %r6, 1",
    "    bdnz    1b",
    "    blr",
    ".size memset, . - memset",
    ".global memcmp",
    ".type memcmp, @function",
    ".global bcmp",
    ".type bcmp, @function",
    // r3 = a, r4 = b, r5 = n; returns the difference of the first
    // differing bytes (as unsigned char), or 0. bcmp: zero iff equal.
    "memcmp:",
    "bcmp:",
    "    li      %r6, 0",
    "    li      %r7, 0",
    "    cmpldi  %r5, 0",
    "    beq     2f",
    "    mtctr   %r5",
    "1:  lbz     %r6, 0(%r3)",
    "    lbz     %r7, 0(%r4)",
    "    cmplw   %r6, %r7",
    "    bne     2f",
    "    addi    %r3, %r3, 1",
    "    addi    %r4, %r4, 1",
    "    bdnz    1b",
    "2:  subf    %r3, %r7, %r6",
    "    blr",
    ".size memcmp, . - memcmp",
    ".size bcmp, . - bcmp",
    // The precompiled `core` of this hosted target is built to unwind and
    // names the personality routine (DW.ref.rust_eh_personality); with
    // panic=abort nothing unwinds, so it never runs: a trap if it did.
    ".global rust_eh_personality",
    ".type rust_eh_personality, @function",
    "rust_eh_personality:",
    "    trap",
    ".size rust_eh_personality, . - rust_eh_personality",
    ".text",
);
