//! SHA-256 block compression with the Armv8 Cryptographic Extension
//! instructions SHA256H, SHA256H2, SHA256SU0, SHA256SU1 (FEAT_SHA256).
//! Call only when `cpu::has_sha256_instructions()` is true.

use core::arch::aarch64::*;

/// FIPS 180-4 §4.2.2 round constants.
static K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
];

#[repr(C, align(16))]
struct AlignedBlock([u8; 64]);

/// Same contract as `kexec_purgatory::sha256::CompressFn`. Safe to call
/// only on a CPU with FEAT_SHA256; the caller checked ID_AA64ISAR0_EL1.
pub fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    // SAFETY: dispatch happens only after has_sha256_instructions().
    unsafe { compress_ce(state, blocks) }
}

#[target_feature(enable = "sha2")]
unsafe fn compress_ce(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    // SAFETY: all pointers come from references of the right size; the
    // intrinsics need FEAT_SHA256, which the caller checked.
    unsafe {
        let mut abcd = vld1q_u32(state.as_ptr());
        let mut efgh = vld1q_u32(state.as_ptr().add(4));
        // All 64 constants live in 16 vector registers for the whole loop.
        let kp = K.as_ptr();
        let k = [
            vld1q_u32(kp),
            vld1q_u32(kp.add(4)),
            vld1q_u32(kp.add(8)),
            vld1q_u32(kp.add(12)),
            vld1q_u32(kp.add(16)),
            vld1q_u32(kp.add(20)),
            vld1q_u32(kp.add(24)),
            vld1q_u32(kp.add(28)),
            vld1q_u32(kp.add(32)),
            vld1q_u32(kp.add(36)),
            vld1q_u32(kp.add(40)),
            vld1q_u32(kp.add(44)),
            vld1q_u32(kp.add(48)),
            vld1q_u32(kp.add(52)),
            vld1q_u32(kp.add(56)),
            vld1q_u32(kp.add(60)),
        ];
        for block in blocks {
            let (abcd0, efgh0) = (abcd, efgh);
            // The target is built with +strict-align, so a load through a
            // byte pointer becomes sixteen byte loads. Segment memory is
            // page aligned: load whole vectors from it, and copy only the
            // rare unaligned block (the padding tail) to an aligned buffer.
            let mut copy = AlignedBlock([0; 64]);
            let p = if (block.as_ptr() as usize).is_multiple_of(16) {
                block.as_ptr()
            } else {
                copy.0 = *block;
                copy.0.as_ptr()
            };
            let v = p.cast::<uint8x16_t>();
            // Message words are big-endian (FIPS 180-4 §3.1).
            let mut s0 = vreinterpretq_u32_u8(vrev32q_u8(core::ptr::read(v)));
            let mut s1 = vreinterpretq_u32_u8(vrev32q_u8(core::ptr::read(v.add(1))));
            let mut s2 = vreinterpretq_u32_u8(vrev32q_u8(core::ptr::read(v.add(2))));
            let mut s3 = vreinterpretq_u32_u8(vrev32q_u8(core::ptr::read(v.add(3))));
            // Four rounds with schedule words `w` and constants K[t..t+4].
            macro_rules! rounds {
                ($w:expr, $t:expr) => {{
                    let wk = vaddq_u32($w, k[$t / 4]);
                    let prev = abcd;
                    abcd = vsha256hq_u32(abcd, efgh, wk);
                    efgh = vsha256h2q_u32(efgh, prev, wk);
                }};
            }
            // Next four schedule words (FIPS 180-4 §6.2.2 step 1).
            macro_rules! schedule {
                ($a:ident, $b:ident, $c:ident, $d:ident) => {
                    $a = vsha256su1q_u32(vsha256su0q_u32($a, $b), $c, $d);
                };
            }
            // Written out, not looped: the image is built for size, and a
            // rolled loop over an array of vectors spills to the stack.
            rounds!(s0, 0);
            rounds!(s1, 4);
            rounds!(s2, 8);
            rounds!(s3, 12);
            schedule!(s0, s1, s2, s3);
            rounds!(s0, 16);
            schedule!(s1, s2, s3, s0);
            rounds!(s1, 20);
            schedule!(s2, s3, s0, s1);
            rounds!(s2, 24);
            schedule!(s3, s0, s1, s2);
            rounds!(s3, 28);
            schedule!(s0, s1, s2, s3);
            rounds!(s0, 32);
            schedule!(s1, s2, s3, s0);
            rounds!(s1, 36);
            schedule!(s2, s3, s0, s1);
            rounds!(s2, 40);
            schedule!(s3, s0, s1, s2);
            rounds!(s3, 44);
            schedule!(s0, s1, s2, s3);
            rounds!(s0, 48);
            schedule!(s1, s2, s3, s0);
            rounds!(s1, 52);
            schedule!(s2, s3, s0, s1);
            rounds!(s2, 56);
            schedule!(s3, s0, s1, s2);
            rounds!(s3, 60);
            abcd = vaddq_u32(abcd, abcd0);
            efgh = vaddq_u32(efgh, efgh0);
        }
        vst1q_u32(state.as_mut_ptr(), abcd);
        vst1q_u32(state.as_mut_ptr().add(4), efgh);
    }
}
