    .section .text.sha_ni, "ax"
    .macro RKX_RND4 w, koff
        movdqa  xmm0, \w
        paddd   xmm0, [rcx + \koff]
        sha256rnds2 xmm2, xmm1, xmm0
        pshufd  xmm0, xmm0, 0x0e
        sha256rnds2 xmm1, xmm2, xmm0
    .endm
    // W[t..t+4] (FIPS 180-4 §6.2.2 step 1): MSG1 adds sigma0(W[t-15..]),
    // ALIGNR+PADDD adds W[t-7..], MSG2 adds sigma1(W[t-2..]).
    .macro RKX_SCHED a, b, c, d
        sha256msg1 \a, \b
        movdqa  xmm10, \d
        palignr xmm10, \c, 4
        paddd   \a, xmm10
        sha256msg2 \a, \d
    .endm

    .global rkx_sha256_ni
rkx_sha256_ni:
    test    rdx, rdx
    jz      2f
    movdqu  xmm7, [rip + .Lrkx_bswap]
    lea     rcx, [rip + .Lrkx_k]
    movdqu  xmm1, [rdi]             // DCBA
    movdqu  xmm2, [rdi + 16]        // HGFE
    pshufd  xmm1, xmm1, 0xb1        // CDAB
    pshufd  xmm2, xmm2, 0x1b        // EFGH
    movdqa  xmm3, xmm1
    palignr xmm1, xmm2, 8           // ABEF
    pblendw xmm2, xmm3, 0xf0        // CDGH
1:
    movdqa  xmm8, xmm1
    movdqa  xmm9, xmm2
    movdqu  xmm3, [rsi]
    pshufb  xmm3, xmm7
    movdqu  xmm4, [rsi + 16]
    pshufb  xmm4, xmm7
    movdqu  xmm5, [rsi + 32]
    pshufb  xmm5, xmm7
    movdqu  xmm6, [rsi + 48]
    pshufb  xmm6, xmm7
    RKX_RND4 xmm3, 0
    RKX_RND4 xmm4, 16
    RKX_RND4 xmm5, 32
    RKX_RND4 xmm6, 48
    RKX_SCHED xmm3, xmm4, xmm5, xmm6
    RKX_RND4 xmm3, 64
    RKX_SCHED xmm4, xmm5, xmm6, xmm3
    RKX_RND4 xmm4, 80
    RKX_SCHED xmm5, xmm6, xmm3, xmm4
    RKX_RND4 xmm5, 96
    RKX_SCHED xmm6, xmm3, xmm4, xmm5
    RKX_RND4 xmm6, 112
    RKX_SCHED xmm3, xmm4, xmm5, xmm6
    RKX_RND4 xmm3, 128
    RKX_SCHED xmm4, xmm5, xmm6, xmm3
    RKX_RND4 xmm4, 144
    RKX_SCHED xmm5, xmm6, xmm3, xmm4
    RKX_RND4 xmm5, 160
    RKX_SCHED xmm6, xmm3, xmm4, xmm5
    RKX_RND4 xmm6, 176
    RKX_SCHED xmm3, xmm4, xmm5, xmm6
    RKX_RND4 xmm3, 192
    RKX_SCHED xmm4, xmm5, xmm6, xmm3
    RKX_RND4 xmm4, 208
    RKX_SCHED xmm5, xmm6, xmm3, xmm4
    RKX_RND4 xmm5, 224
    RKX_SCHED xmm6, xmm3, xmm4, xmm5
    RKX_RND4 xmm6, 240
    paddd   xmm1, xmm8
    paddd   xmm2, xmm9
    add     rsi, 64
    dec     rdx
    jnz     1b
    pshufd  xmm1, xmm1, 0x1b        // FEBA
    pshufd  xmm2, xmm2, 0xb1        // DCHG
    movdqa  xmm3, xmm1
    pblendw xmm1, xmm2, 0xf0        // DCBA
    palignr xmm2, xmm3, 8           // HGEF
    movdqu  [rdi], xmm1
    movdqu  [rdi + 16], xmm2
2:  ret

    .section .rodata.sha_ni, "a"
    .balign 16
.Lrkx_bswap:
    .byte 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12
    // FIPS 180-4 §4.2.2 round constants.
.Lrkx_k:
    .long 0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5
    .long 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174
    .long 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da
    .long 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967
    .long 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85
    .long 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070
    .long 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3
    .long 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
    .text
