// SHA-256 block compression (FIPS 180-4 §6.2.2) with the FEAT_SHA256
// instructions (Arm ARM C7.2: SHA256H, SHA256H2, SHA256SU0, SHA256SU1).
// AAPCS64: x0 = state (8 words, a..h), x1 = data, x2 = number of 64-byte
// blocks. Clobbers x1-x3, v0-v9 and v16-v31; restores d8/d9 (the low
// halves of v8/v9 are callee-saved, AAPCS64 §6.1.2).
//
// v0 = abcd, v1 = efgh (lane 0 = a / e), v2 = abcd before the four rounds
// (SHA256H2 wants it), v3 = W+K of the four rounds, v4-v7 = W[t..t+15] in
// groups of four, v8/v9 = the state at block start, v16-v31 = K[0..63]
// (FIPS 180-4 §4.2.2, the table `crate::sha256_compress::K`, operand k), loaded once
// per call.
//
// Per block: one 64-byte load, 4 byte reversals, 16 x (add, mov, sha256h,
// sha256h2), 12 x (sha256su0, sha256su1), 2 adds, the loop: 99
// instructions. The data needs no alignment: ld1 with byte elements is
// always element-aligned, so it also works with the MMU off (Device
// memory, where an unaligned access faults: Arm ARM B2.5.2).
//
// Assembled by global_asm! (sha2_ce.rs), whose template syntax doubles
// the register-list braces (doubled here, single in the object code).
    .arch_extension sha2
    .section .text.rkx_sha256_ce, "ax"
    .balign 4

    // Rounds 4g..4g+3 (FIPS 180-4 §6.2.2 steps 3-4 four times): W in \w,
    // K in \k. SHA256H computes the new abcd from abcd, efgh and W+K;
    // SHA256H2 the new efgh from efgh and the old abcd (v2).
    .macro RKX_RND4 w, k
        add     v3.4s, \w\().4s, \k\().4s
        mov     v2.16b, v0.16b
        sha256h q0, q1, v3.4s
        sha256h2 q1, q2, v3.4s
    .endm

    // The same four rounds, and, in the register they just consumed, the
    // four schedule words 16 further on (§6.2.2 step 1): SHA256SU0 adds
    // sigma0(W[t-15..t-12]) from \w1, SHA256SU1 adds W[t-7..t-4] and
    // sigma1(W[t-2..t-1]) from \w2 and \w3. Interleaved with the rounds so
    // that a pipelined core overlaps the two chains.
    .macro RKX_RND4_SCHED w, k, w1, w2, w3
        add     v3.4s, \w\().4s, \k\().4s
        sha256su0 \w\().4s, \w1\().4s
        mov     v2.16b, v0.16b
        sha256h q0, q1, v3.4s
        sha256h2 q1, q2, v3.4s
        sha256su1 \w\().4s, \w2\().4s, \w3\().4s
    .endm

    .global rkx_sha256_ce
    .type rkx_sha256_ce, %function
rkx_sha256_ce:
    cbz     x2, 2f
    adrp    x3, {k}
    add     x3, x3, :lo12:{k}
    ld1     {{v16.4s, v17.4s, v18.4s, v19.4s}}, [x3], #64
    ld1     {{v20.4s, v21.4s, v22.4s, v23.4s}}, [x3], #64
    ld1     {{v24.4s, v25.4s, v26.4s, v27.4s}}, [x3], #64
    ld1     {{v28.4s, v29.4s, v30.4s, v31.4s}}, [x3]
    ld1     {{v0.4s, v1.4s}}, [x0]
    stp     d8, d9, [sp, #-16]!
1:
    ld1     {{v4.16b, v5.16b, v6.16b, v7.16b}}, [x1], #64
    mov     v8.16b, v0.16b
    mov     v9.16b, v1.16b
    // Message words are big-endian (FIPS 180-4 §3.1).
    rev32   v4.16b, v4.16b
    rev32   v5.16b, v5.16b
    rev32   v6.16b, v6.16b
    rev32   v7.16b, v7.16b
    RKX_RND4_SCHED v4, v16, v5, v6, v7
    RKX_RND4_SCHED v5, v17, v6, v7, v4
    RKX_RND4_SCHED v6, v18, v7, v4, v5
    RKX_RND4_SCHED v7, v19, v4, v5, v6
    RKX_RND4_SCHED v4, v20, v5, v6, v7
    RKX_RND4_SCHED v5, v21, v6, v7, v4
    RKX_RND4_SCHED v6, v22, v7, v4, v5
    RKX_RND4_SCHED v7, v23, v4, v5, v6
    RKX_RND4_SCHED v4, v24, v5, v6, v7
    RKX_RND4_SCHED v5, v25, v6, v7, v4
    RKX_RND4_SCHED v6, v26, v7, v4, v5
    RKX_RND4_SCHED v7, v27, v4, v5, v6
    RKX_RND4 v4, v28
    RKX_RND4 v5, v29
    RKX_RND4 v6, v30
    RKX_RND4 v7, v31
    // §6.2.2 step 4: add the block's result to the state.
    add     v0.4s, v0.4s, v8.4s
    add     v1.4s, v1.4s, v9.4s
    subs    x2, x2, #1
    b.ne    1b
    st1     {{v0.4s, v1.4s}}, [x0]
    ldp     d8, d9, [sp], #16
2:
    ret
    .size rkx_sha256_ce, . - rkx_sha256_ce

    .text
