// SHA-256 block compression (FIPS 180-4 §6.2.2) with the Power ISA 2.07
// vector crypto instruction vshasigmaw (POWER8 and later): Σ0/Σ1 of the
// rounds and σ0/σ1 of the schedule are one instruction each.
//
// ELFv2 leaf function: r3 = state (8 words), r4 = data, r5 = blocks,
// r6 = the round constants (FIPS 180-4 §4.2.2, 16-byte aligned), r7 =
// the 16-byte byte-swap control for vperm.
//
// Each working variable a..h lives in element 0 (the ISA's numbering,
// leftmost) of its own vector register v0..v7; the other three elements
// compute alongside and are never read. The message schedule is kept four
// words to a register (v8..v11 = W[t..t+3] for t = 0, 4, 8, 12 of the
// current 16) and computed four at a time; W + K for four rounds is one
// vadduwm, and vsldoi brings each word to element 0. v12 = W + K, v13 =
// the round's word / schedule temporary, v14 = four constants, v15 =
// zero, v16..v18 round temporaries, v19 = byte-swap control, v24..v31 =
// the state at the start of the block (non-volatile in ELFv2: saved).

    .section .text.rkx_sha256_vcrypto, "ax"
    .balign 4
    .global rkx_sha256_vcrypto
    .type rkx_sha256_vcrypto, @function

// One round (§6.2.2 step 3) on a..h with W[t] + K[t] in element 0 of
// \wk: T1 = h + Σ1(e) + Ch(e,f,g) + K[t] + W[t]; d += T1;
// h = T1 + Σ0(a) + Maj(a,b,c). The next round renames the registers.
.macro ROUND a, b, c, d, e, f, g, h, wk
    vadduwm     \h, \h, \wk
    vsel        16, \g, \f, \e              // Ch: f where e is 1, else g
    vadduwm     \h, \h, 16
    vshasigmaw  16, \e, 1, 15               // Σ1(e)
    vadduwm     \h, \h, 16
    vadduwm     \d, \d, \h
    vxor        17, \a, \b
    vsel        17, \b, \c, 17              // Maj: c where a != b, else b
    vshasigmaw  18, \a, 1, 0                // Σ0(a)
    vadduwm     \h, \h, 17
    vadduwm     \h, \h, 18
.endm

// Four rounds on the four schedule words in \m and the four constants at
// r11 + \koff (a register holding the offset; 0 for none).
.macro GROUP a, b, c, d, e, f, g, h, m, koff
    lxvw4x      32+14, \koff, %r11
    vadduwm     12, \m, 14
    ROUND       \a, \b, \c, \d, \e, \f, \g, \h, 12
    vsldoi      13, 12, 12, 4
    ROUND       \h, \a, \b, \c, \d, \e, \f, \g, 13
    vsldoi      13, 12, 12, 8
    ROUND       \g, \h, \a, \b, \c, \d, \e, \f, 13
    vsldoi      13, 12, 12, 12
    ROUND       \f, \g, \h, \a, \b, \c, \d, \e, 13
.endm

// §6.2.2 step 1 for t..t+3, in place of W[t-16..t-13] (\m16), from the
// next twelve words (\m12, \m8, \m4): W[t] = σ1(W[t-2]) + W[t-7] +
// σ0(W[t-15]) + W[t-16]. σ1 of W[t], W[t+1] feeds W[t+2], W[t+3]: the
// two halves are done one after the other (σ1(0) = 0 fills the rest).
.macro SCHED m16, m12, m8, m4
    vsldoi      13, \m16, \m12, 4           // W[t-15..t-12]
    vshasigmaw  13, 13, 0, 0                // σ0
    vadduwm     \m16, \m16, 13
    vsldoi      13, \m8, \m4, 4             // W[t-7..t-4]
    vadduwm     \m16, \m16, 13
    vsldoi      13, \m4, 15, 8              // W[t-2], W[t-1], 0, 0
    vshasigmaw  13, 13, 0, 15               // σ1
    vadduwm     \m16, \m16, 13
    vsldoi      13, 15, \m16, 8             // 0, 0, W[t], W[t+1]
    vshasigmaw  13, 13, 0, 15               // σ1
    vadduwm     \m16, \m16, 13
.endm

rkx_sha256_vcrypto:
    cmpldi      %r5, 0
    beqlr
    stdu        %r1, -160(%r1)
    li          %r0, 32
    stvx        24, %r1, %r0
    li          %r0, 48
    stvx        25, %r1, %r0
    li          %r0, 64
    stvx        26, %r1, %r0
    li          %r0, 80
    stvx        27, %r1, %r0
    li          %r0, 96
    stvx        28, %r1, %r0
    li          %r0, 112
    stvx        29, %r1, %r0
    li          %r0, 128
    stvx        30, %r1, %r0
    li          %r0, 144
    stvx        31, %r1, %r0
    li          %r8, 16
    li          %r9, 32
    li          %r10, 48
    lxvw4x      32+19, 0, %r7
    vspltisw    15, 0
    // H0..H3 and H4..H7 (words as in memory), one to each element 0.
    lxvw4x      32+0, 0, %r3
    lxvw4x      32+4, %r3, %r8
    vsldoi      1, 0, 0, 4
    vsldoi      2, 0, 0, 8
    vsldoi      3, 0, 0, 12
    vsldoi      5, 4, 4, 4
    vsldoi      6, 4, 4, 8
    vsldoi      7, 4, 4, 12
.Lblock:
    vor         24, 0, 0
    vor         25, 1, 1
    vor         26, 2, 2
    vor         27, 3, 3
    vor         28, 4, 4
    vor         29, 5, 5
    vor         30, 6, 6
    vor         31, 7, 7
    // W[0..15]: big-endian words (FIPS 180-4 §3.1); lxvw4x reads them
    // little-endian, vperm swaps the bytes of each.
    lxvw4x      32+8, 0, %r4
    lxvw4x      32+9, %r4, %r8
    lxvw4x      32+10, %r4, %r9
    lxvw4x      32+11, %r4, %r10
    vperm       8, 8, 8, 19
    vperm       9, 9, 9, 19
    vperm       10, 10, 10, 19
    vperm       11, 11, 11, 19
    addi        %r4, %r4, 64
    mr          %r11, %r6
    li          %r0, 4
    mtctr       %r0
.Lrounds:
    GROUP       0, 1, 2, 3, 4, 5, 6, 7, 8, 0
    GROUP       4, 5, 6, 7, 0, 1, 2, 3, 9, %r8
    GROUP       0, 1, 2, 3, 4, 5, 6, 7, 10, %r9
    GROUP       4, 5, 6, 7, 0, 1, 2, 3, 11, %r10
    addi        %r11, %r11, 64
    bdz         .Ladd
    SCHED       8, 9, 10, 11
    SCHED       9, 10, 11, 8
    SCHED       10, 11, 8, 9
    SCHED       11, 8, 9, 10
    b           .Lrounds
    // §6.2.2 step 4.
.Ladd:
    vadduwm     0, 0, 24
    vadduwm     1, 1, 25
    vadduwm     2, 2, 26
    vadduwm     3, 3, 27
    vadduwm     4, 4, 28
    vadduwm     5, 5, 29
    vadduwm     6, 6, 30
    vadduwm     7, 7, 31
    addic.      %r5, %r5, -1
    bne         .Lblock
    // Element 0 of a..d into one register, e..h into another, stored.
    vmrghw      16, 0, 1
    vmrghw      17, 2, 3
    xxpermdi    32+16, 32+16, 32+17, 0
    vmrghw      17, 4, 5
    vmrghw      18, 6, 7
    xxpermdi    32+17, 32+17, 32+18, 0
    stxvw4x     32+16, 0, %r3
    stxvw4x     32+17, %r3, %r8
    li          %r0, 32
    lvx         24, %r1, %r0
    li          %r0, 48
    lvx         25, %r1, %r0
    li          %r0, 64
    lvx         26, %r1, %r0
    li          %r0, 80
    lvx         27, %r1, %r0
    li          %r0, 96
    lvx         28, %r1, %r0
    li          %r0, 112
    lvx         29, %r1, %r0
    li          %r0, 128
    lvx         30, %r1, %r0
    li          %r0, 144
    lvx         31, %r1, %r0
    addi        %r1, %r1, 160
    blr
    .size rkx_sha256_vcrypto, . - rkx_sha256_vcrypto
