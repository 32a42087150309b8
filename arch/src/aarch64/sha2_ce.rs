//! SHA-256 block compression with the Armv8 Cryptographic Extension
//! instructions SHA256H, SHA256H2, SHA256SU0, SHA256SU1 (FEAT_SHA256), as a
//! hand-written loop (`sha256_ce.s`): the round constants stay in
//! registers for the whole call, a block is one load, and nothing but SHA
//! work happens per block. Call only when `cpu::has_sha256_instructions()`
//! is true.

/// Same contract as `kexec_purgatory::sha256::CompressFn`. Safe to call
/// only on a CPU with FEAT_SHA256; the caller checked ID_AA64ISAR0_EL1.
pub fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    // SAFETY: the assembly reads `blocks.len()` 64-byte blocks from
    // `blocks` and reads and writes the 8 words of `state`, nothing else
    // in memory (its stack use is balanced); the caller checked
    // ID_AA64ISAR0_EL1.SHA2 before choosing this engine.
    unsafe { rkx_sha256_ce(state.as_mut_ptr(), blocks.as_ptr().cast(), blocks.len()) }
}

unsafe extern "C" {
    fn rkx_sha256_ce(state: *mut u32, data: *const u8, nblocks: usize);
}

// AAPCS64 code: x0 = state, x1 = data, x2 = number of blocks; `k` is the
// round-constant table the whole image shares.
core::arch::global_asm!(include_str!("sha256_ce.s"), k = sym crate::sha256_compress::K);
