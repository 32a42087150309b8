//! `memcpy`, `memset` and `memcmp` as byte loops (C11 7.24.2.1, 7.24.6.1,
//! 7.24.4.1), replacing compiler_builtins' word-at-a-time versions (weak
//! symbols there): nothing in the purgatory copies, fills or compares
//! more than a few KiB (a digest, a padding block, the DTB patch), and
//! these are a few dozen bytes instead of 1.1 KiB. Byte accesses need no
//! alignment (the target may not assume misaligned accesses work). The
//! digest engines read segment memory themselves.
core::arch::global_asm!(
    ".section .text.rkx_mem, \"ax\"",
    ".balign 2",
    ".global memcpy",
    ".type memcpy, @function",
    // a0 = dest, a1 = src, a2 = n; returns dest.
    "memcpy:",
    "    mv      t0, a0",
    "    beqz    a2, 2f",
    "1:  lbu     t1, 0(a1)",
    "    sb      t1, 0(t0)",
    "    addi    a1, a1, 1",
    "    addi    t0, t0, 1",
    "    addi    a2, a2, -1",
    "    bnez    a2, 1b",
    "2:  ret",
    ".size memcpy, . - memcpy",
    ".global memset",
    ".type memset, @function",
    // a0 = dest, a1 = byte, a2 = n; returns dest.
    "memset:",
    "    mv      t0, a0",
    "    beqz    a2, 2f",
    "1:  sb      a1, 0(t0)",
    "    addi    t0, t0, 1",
    "    addi    a2, a2, -1",
    "    bnez    a2, 1b",
    "2:  ret",
    ".size memset, . - memset",
    ".global memcmp",
    ".type memcmp, @function",
    // a0 = a, a1 = b, a2 = n; returns the difference of the first
    // differing bytes (as unsigned char), or 0.
    "memcmp:",
    "    li      t0, 0",
    "    li      t1, 0",
    "    beqz    a2, 2f",
    "1:  lbu     t0, 0(a0)",
    "    lbu     t1, 0(a1)",
    "    bne     t0, t1, 2f",
    "    addi    a0, a0, 1",
    "    addi    a1, a1, 1",
    "    addi    a2, a2, -1",
    "    bnez    a2, 1b",
    "2:  sub     a0, t0, t1",
    "    ret",
    ".size memcmp, . - memcmp",
    ".text",
);
