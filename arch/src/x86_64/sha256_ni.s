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
    lea     rcx, [rip + {k}]
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
    .text
