//! SHA-256 block compression with the Zknh scalar instructions
//! `sha256sum0`, `sha256sum1`, `sha256sig0`, `sha256sig1` (RISC-V scalar
//! cryptography spec v1.0, Zknh; on RV64 they operate on the low 32 bits and
//! sign-extend). Call only when the boot hart's ISA string lists Zknh.
//! Everything else (Ch, Maj, additions) is ordinary integer code.

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

macro_rules! zknh_op {
    ($name:ident, $insn:literal, $what:literal) => {
        #[doc = $what]
        #[inline(always)]
        fn $name(x: u32) -> u32 {
            let r: u64;
            // SAFETY: a pure register operation; the caller dispatched here
            // only for a hart whose ISA string lists Zknh.
            unsafe {
                core::arch::asm!(
                    ".option push",
                    ".option arch, +zknh",
                    concat!($insn, " {r}, {x}"),
                    ".option pop",
                    r = lateout(reg) r,
                    x = in(reg) x as u64,
                    options(pure, nomem, nostack),
                );
            }
            r as u32
        }
    };
}

zknh_op!(sum0, "sha256sum0", "FIPS 180-4 Σ0: ROTR 2 ^ ROTR 13 ^ ROTR 22.");
zknh_op!(sum1, "sha256sum1", "FIPS 180-4 Σ1: ROTR 6 ^ ROTR 11 ^ ROTR 25.");
zknh_op!(sig0, "sha256sig0", "FIPS 180-4 σ0: ROTR 7 ^ ROTR 18 ^ SHR 3.");
zknh_op!(sig1, "sha256sig1", "FIPS 180-4 σ1: ROTR 17 ^ ROTR 19 ^ SHR 10.");

/// Same contract as `kexec_purgatory::sha256::CompressFn` (FIPS 180-4
/// §6.2.2). Safe to call only on a hart with Zknh.
pub fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    for block in blocks {
        // Message words are big-endian (§3.1). Segment memory is page
        // aligned: load two words per 64-bit access; only the padding tail
        // (a stack buffer) may be unaligned, and is copied first, since
        // the target may not assume misaligned loads are supported.
        let words: [u64; 8] = if (block.as_ptr() as usize).is_multiple_of(8) {
            // SAFETY: 64 readable bytes, 8-byte aligned (checked).
            unsafe { core::ptr::read(block.as_ptr().cast::<[u64; 8]>()) }
        } else {
            let mut copy = [0u64; 8];
            for (dst, src) in copy.iter_mut().zip(block.chunks_exact(8)) {
                *dst = u64::from_le_bytes([src[0], src[1], src[2], src[3], src[4], src[5], src[6], src[7]]);
            }
            copy
        };
        let mut w = [0u32; 16];
        for (i, d) in words.into_iter().enumerate() {
            w[2 * i] = (d as u32).swap_bytes();
            w[2 * i + 1] = ((d >> 32) as u32).swap_bytes();
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
        // Written out, not looped: the image is built for size
        // (opt-level z), which keeps a loop rolled and the schedule in
        // memory; unrolled, every index is a constant and `w` lives in
        // registers. Each round renames the variables instead of moving
        // them (FIPS 180-4 §6.2.2 step 3, with a..h rotated).
        macro_rules! round {
            ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $t:expr) => {{
                let t = $t;
                if t >= 16 {
                    // Rolling 16-word schedule (§6.2.2 step 1).
                    w[t % 16] = sig1(w[(t + 14) % 16])
                        .wrapping_add(w[(t + 9) % 16])
                        .wrapping_add(sig0(w[(t + 1) % 16]))
                        .wrapping_add(w[t % 16]);
                }
                let t1 = $h
                    .wrapping_add(sum1($e))
                    .wrapping_add(($e & $f) ^ (!$e & $g))
                    .wrapping_add(K[t])
                    .wrapping_add(w[t % 16]);
                $d = $d.wrapping_add(t1);
                $h = t1.wrapping_add(sum0($a)).wrapping_add(($a & $b) ^ ($a & $c) ^ ($b & $c));
            }};
        }
        macro_rules! eight_rounds {
            ($t:expr) => {
                round!(a, b, c, d, e, f, g, h, $t);
                round!(h, a, b, c, d, e, f, g, $t + 1);
                round!(g, h, a, b, c, d, e, f, $t + 2);
                round!(f, g, h, a, b, c, d, e, $t + 3);
                round!(e, f, g, h, a, b, c, d, $t + 4);
                round!(d, e, f, g, h, a, b, c, $t + 5);
                round!(c, d, e, f, g, h, a, b, $t + 6);
                round!(b, c, d, e, f, g, h, a, $t + 7);
            };
        }
        eight_rounds!(0);
        eight_rounds!(8);
        eight_rounds!(16);
        eight_rounds!(24);
        eight_rounds!(32);
        eight_rounds!(40);
        eight_rounds!(48);
        eight_rounds!(56);
        for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *s = s.wrapping_add(v);
        }
    }
}
