//! SHA-256 over one contiguous memory range, driven by a block-compression
//! function the platform chooses (ARMv8 SHA2 instructions, SHA-NI, Zknh,
//! or the portable engine: the `sha2` crate's block compression).
//!
//! Only padding lives here (FIPS 180-4 §5.1.1): full 64-byte blocks are fed
//! to the compression function straight from memory, without copying.

use crate::bytes::put;

/// Compresses whole 64-byte blocks into the state (FIPS 180-4 §6.2.2).
pub type CompressFn = fn(state: &mut [u32; 8], blocks: &[[u8; 64]]);

/// FIPS 180-4 §5.3.3 initial hash value.
const H0: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// The portable compression function: `sha2::block_api::compress256`, the
/// same on every architecture (its `soft` backend in the images).
pub use purgatory_arch::sha256_compress::compress_portable;

/// SHA-256 of `data` using `compress`.
pub fn digest(data: &[u8], compress: CompressFn) -> [u8; 32] {
    let mut state = H0;
    // Every whole block straight from memory, in one call (the engines
    // loop themselves).
    let (blocks, tail) = data.as_chunks::<64>();
    compress(&mut state, blocks);

    // Padding: 0x80, zeros, then the message length in bits, big-endian.
    // The tail is shorter than a block, so all of it fits in two.
    let mut last = [0u8; 128];
    let n = put(&mut last, 0, tail);
    put(&mut last, n, &[0x80]);
    let end = if n + 1 + 8 <= 64 { 64 } else { 128 };
    let bit_len = (data.len() as u64).wrapping_mul(8);
    put(&mut last, end - 8, &bit_len.to_be_bytes());
    compress(&mut state, last.get(..end).unwrap_or_default().as_chunks::<64>().0);

    // The digest is the state's words, big-endian.
    for word in &mut state {
        *word = word.to_be();
    }
    // SAFETY: [u32; 8] and [u8; 32] have the same size, and every bit
    // pattern is valid for both.
    unsafe { core::mem::transmute::<[u32; 8], [u8; 32]>(state) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn matches_sha2_crate_for_every_tail_length() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in (0..=200).chain([511, 512, 513, 999, 1000]) {
            let ours = digest(&data[..len], compress_portable);
            let theirs: [u8; 32] = Sha256::digest(&data[..len]).into();
            assert_eq!(ours, theirs, "length {len}");
        }
    }

    #[test]
    fn known_answer_abc() {
        // FIPS 180-4 example "abc".
        let d = digest(b"abc", compress_portable);
        assert_eq!(d[..8], [0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea], "SHA-256(\"abc\") prefix");
    }

    #[test]
    fn spans_several_chunks() {
        let data = vec![0x5au8; 4096 * 64 * 2 + 17];
        let theirs: [u8; 32] = Sha256::digest(&data).into();
        assert_eq!(digest(&data, compress_portable), theirs);
    }
}
