//! SHA-256 block compression with the SHA extensions (SHA256RNDS2,
//! SHA256MSG1, SHA256MSG2). The target is soft-float: SSE state must be
//! enabled (`enable_sse`) before calling `compress`, and only when
//! `cpu::has_sha_ni()`.

/// CR0.MP (bit 1) set, CR0.EM (bit 2) and CR0.TS (bit 3) clear; CR4.OSFXSR
/// (bit 9) and CR4.OSXMMEXCPT (bit 10) set: SSE instructions execute
/// (Intel SDM Vol. 3A §13.1.3). relocate_kernel leaves CR4 at PAE(+LA57).
pub fn enable_sse() {
    // SAFETY: ring 0; only SSE enablement bits change.
    unsafe {
        core::arch::asm!(
            "mov {t}, cr0",
            "and {t}, ~0xc",
            "or {t}, 0x2",
            "mov cr0, {t}",
            "mov {t}, cr4",
            "or {t}, 0x600",
            "mov cr4, {t}",
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// Same contract as `kexec_purgatory::sha256::CompressFn`; call only after
/// `enable_sse()` on a CPU with SHA-NI, SSSE3 and SSE4.1.
pub fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    // SAFETY: the assembly reads `blocks.len()` 64-byte blocks and updates
    // the 8-word state; the caller checked CPUID and enabled SSE.
    unsafe { rkx_sha256_ni(state.as_mut_ptr(), blocks.as_ptr().cast(), blocks.len()) }
}

unsafe extern "C" {
    fn rkx_sha256_ni(state: *mut u32, data: *const u8, nblocks: usize);
}

// In assembly because the target is soft-float: LLVM cannot lower vector
// code there even inside #[target_feature] functions. SysV ABI: rdi =
// state, rsi = data, rdx = number of blocks; xmm registers are
// caller-saved and unused by the rest of the image.
//
// xmm1 = ABEF, xmm2 = CDGH (the operand layout SHA256RNDS2 wants),
// xmm3..xmm6 = W[t-16..t-1] in groups of four, xmm0 = W+K (implicit
// SHA256RNDS2 operand), xmm7 = byte-swap mask, xmm8/9 = state at block
// start, xmm10 scratch; rcx = the round constants (`crate::sha256_compress::K`,
// 16-byte aligned for the PADDD memory operands).
core::arch::global_asm!(include_str!("sha256_ni.s"), k = sym crate::sha256_compress::K);
