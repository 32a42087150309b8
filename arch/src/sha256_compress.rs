//! SHA-256 block compression (FIPS 180-4 §6.2.2) for the purgatory: the
//! portable engine, which is the `sha2` crate's, and the round loop and
//! round constants of the instruction engines.
//!
//! The portable engine ([`compress_portable`]) is
//! `sha2::block_api::compress256`, RustCrypto's audited code, built for the
//! images with its `soft` backend, compact variant, forced by the
//! bare-metal rustflags (`.cargo/config.toml`,
//! `linker/src/settings.rs`): never the crate's run-time dispatch,
//! which on x86_64 could reach SSE code before the purgatory enabled SSE.
//! Compact because the unrolled variant puts every image over the 20 KiB
//! bar; docs/sha256-engines.md has the measurements.
//!
//! The instruction engines are ours where they beat the crate or the crate
//! cannot be chosen at run time (docs/sha256-engines.md), each checked
//! against the crate in tests: the Armv8 SHA256H* and SHA-NI assembly load
//! [`K`] by symbol, so they share one table; riscv64's Zknh engine
//! (`riscv64::sha256_zknh`) is [`compress_with`] with σ/Σ as single
//! instructions.
//!
//! That loop is compact on purpose: four rounds are written out (the
//! working variables rotate by renaming) and run sixteen times over a full
//! 64-word schedule computed first; between passes the two halves of the
//! variables swap. About 0.6-0.9 KiB of code instead of 8-14 KiB for 64
//! unrolled rounds; measured with `bench-purgatory` (guest instructions per
//! byte, exact): fewer instructions than writing eight rounds out (less
//! register pressure), a third fewer than one round with moves.

/// The FIPS 180-4 §4.2.2 round constants, 16-byte aligned for the SSE
/// memory operands of the SHA-NI loop.
#[repr(C, align(16))]
pub struct RoundConstants(pub [u32; 64]);

/// FIPS 180-4 §4.2.2: the first 32 bits of the fractional parts of the cube
/// roots of the first 64 primes.
pub static K: RoundConstants = RoundConstants([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
]);

/// The portable engine: `sha2`'s block compression (same contract as
/// `kexec_purgatory::sha256::CompressFn`).
pub fn compress_portable(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    sha2::block_api::compress256(state, blocks);
}

/// The four functions of FIPS 180-4 §4.1.2, (4.4) to (4.7).
pub trait Sigmas {
    /// Σ0: ROTR 2 ^ ROTR 13 ^ ROTR 22.
    fn big0(x: u32) -> u32;
    /// Σ1: ROTR 6 ^ ROTR 11 ^ ROTR 25.
    fn big1(x: u32) -> u32;
    /// σ0: ROTR 7 ^ ROTR 18 ^ SHR 3.
    fn small0(x: u32) -> u32;
    /// σ1: ROTR 17 ^ ROTR 19 ^ SHR 10.
    fn small1(x: u32) -> u32;
}

/// FIPS 180-4 §6.2.2 over `blocks` with the σ/Σ functions of `S`.
#[inline(always)]
pub fn compress_with<S: Sigmas>(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    // The whole schedule W[0..64] of a block: every access in the loops
    // below is at a constant offset from a moving pointer (no index
    // arithmetic), and it is zeroed once per call, not per block.
    let mut w = [0u32; 64];
    for block in blocks {
        // Step 1: W[0..16] is the block (FIPS 180-4 §3.1: big-endian
        // words), then W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16].
        message_words(block, &mut w);
        for t in 16..64 {
            w[t] =
                S::small1(w[t - 2]).wrapping_add(w[t - 7]).wrapping_add(S::small0(w[t - 15])).wrapping_add(w[t - 16]);
        }
        // Step 2.
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
        // Step 3: four rounds written out (the variables rotate by
        // renaming), sixteen times.
        for (wt, kt) in w.as_chunks::<4>().0.iter().zip(K.0.as_chunks::<4>().0) {
            macro_rules! round {
                ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $i:literal) => {{
                    // T1 = h + Σ1(e) + Ch(e, f, g) + K[t] + W[t]
                    let ch = $g ^ ($e & ($f ^ $g));
                    let t1 = $h.wrapping_add(S::big1($e)).wrapping_add(ch).wrapping_add(kt[$i]).wrapping_add(wt[$i]);
                    // T2 = Σ0(a) + Maj(a, b, c); d += T1; h = T1 + T2.
                    let maj = ($a & $b) | ($c & ($a | $b));
                    $d = $d.wrapping_add(t1);
                    $h = t1.wrapping_add(S::big0($a)).wrapping_add(maj);
                }};
            }
            round!(a, b, c, d, e, f, g, h, 0);
            round!(h, a, b, c, d, e, f, g, 1);
            round!(g, h, a, b, c, d, e, f, 2);
            round!(f, g, h, a, b, c, d, e, 3);
            // Four renamings on, e..h hold what a..d should, and back.
            (a, b, c, d, e, f, g, h) = (e, f, g, h, a, b, c, d);
        }
        // Step 4 (written out: a zip over arrays stays a call per word
        // where the optimiser inlines little).
        let [s0, s1, s2, s3, s4, s5, s6, s7] = state;
        *s0 = s0.wrapping_add(a);
        *s1 = s1.wrapping_add(b);
        *s2 = s2.wrapping_add(c);
        *s3 = s3.wrapping_add(d);
        *s4 = s4.wrapping_add(e);
        *s5 = s5.wrapping_add(f);
        *s6 = s6.wrapping_add(g);
        *s7 = s7.wrapping_add(h);
    }
}

/// W[0..16]: the block's 16 big-endian words (FIPS 180-4 §3.1), assembled
/// from bytes: the loop serves riscv64 only, where without Zbb a byte swap
/// of an aligned word load costs as much, and any alignment is fine.
#[inline(always)]
fn message_words(block: &[u8; 64], w: &mut [u32; 64]) {
    for (dst, src) in w.iter_mut().zip(block.as_chunks::<4>().0) {
        *dst = u32::from_be_bytes(*src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The σ/Σ functions as the standard writes them: the Zknh engine's
    /// loop with plain rotations, so that the host can check the loop
    /// (the instructions themselves are checked in the riscv64 QEMU tests).
    struct Rotations;

    impl Sigmas for Rotations {
        fn big0(x: u32) -> u32 {
            x.rotate_right(2) ^ x.rotate_right(13) ^ x.rotate_right(22)
        }
        fn big1(x: u32) -> u32 {
            x.rotate_right(6) ^ x.rotate_right(11) ^ x.rotate_right(25)
        }
        fn small0(x: u32) -> u32 {
            x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
        }
        fn small1(x: u32) -> u32 {
            x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
        }
    }

    fn blocks(data: &[u8]) -> Vec<[u8; 64]> {
        data.chunks_exact(64).map(|c| c.try_into().unwrap()).collect()
    }

    const H0: [u32; 8] =
        [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

    #[test]
    fn the_loop_matches_the_sha2_crate() {
        let data: Vec<u8> = (0..64 * 41).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        for n in [0usize, 1, 2, 3, 16, 41] {
            let b = blocks(&data[..n * 64]);
            let mut ours = H0;
            compress_with::<Rotations>(&mut ours, &b);
            let mut theirs = H0;
            sha2::block_api::compress256(&mut theirs, &b);
            assert_eq!(ours, theirs, "{n} blocks");
        }
    }

    #[test]
    fn the_loop_reads_unaligned_blocks() {
        // The same data at every offset mod 4.
        let data: Vec<u8> = (0..64 * 3).map(|i: u32| (i * 37 + 11) as u8).collect();
        let mut want = H0;
        sha2::block_api::compress256(&mut want, &blocks(&data[..192]));
        for shift in 0..4 {
            let mut buf = vec![0u8; shift];
            buf.extend_from_slice(&data[..192]);
            let mut got = H0;
            compress_with::<Rotations>(&mut got, buf[shift..].as_chunks::<64>().0);
            assert_eq!(got, want, "offset {shift}");
        }
    }

    #[test]
    fn fips_180_4_abc() {
        // FIPS 180-2 appendix B.1: "abc", padded to one block; the loop
        // and the portable engine.
        let mut block = [0u8; 64];
        block[..4].copy_from_slice(b"abc\x80");
        block[63] = 24;
        let want = [0xba7816bf, 0x8f01cfea, 0x414140de, 0x5dae2223, 0xb00361a3, 0x96177a9c, 0xb410ff61, 0xf20015ad];
        let mut s = H0;
        compress_with::<Rotations>(&mut s, &[block]);
        assert_eq!(s, want, "the loop");
        let mut s = H0;
        compress_portable(&mut s, &[block]);
        assert_eq!(s, want, "the portable engine");
    }
}
