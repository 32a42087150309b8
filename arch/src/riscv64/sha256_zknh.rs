//! SHA-256 block compression with the Zknh scalar instructions
//! `sha256sum0`, `sha256sum1`, `sha256sig0`, `sha256sig1` (RISC-V scalar
//! cryptography spec v1.0, Zknh; on RV64 they read the low 32 bits of rs1
//! and write the result sign-extended). Call only when the boot hart's ISA
//! string lists Zknh. The loop is the portable one (`crate::sha256_compress`) with
//! σ/Σ as these instructions; Ch, Maj and the additions are ordinary
//! integer code.

use crate::sha256_compress::{compress_with, Sigmas};

macro_rules! zknh_op {
    ($name:ident, $insn:literal) => {
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
                    // Sign-extended: RV64 keeps 32-bit values that way, so
                    // this costs no instruction (a zero extension would
                    // cost two), and the instruction reads bits 31..0 only.
                    x = in(reg) x as i32 as i64 as u64,
                    options(pure, nomem, nostack),
                );
            }
            r as u32
        }
    };
}

/// σ/Σ as Zknh instructions (FIPS 180-4 §4.1.2, (4.4) to (4.7)).
struct Zknh;

impl Sigmas for Zknh {
    zknh_op!(big0, "sha256sum0");
    zknh_op!(big1, "sha256sum1");
    zknh_op!(small0, "sha256sig0");
    zknh_op!(small1, "sha256sig1");
}

/// Same contract as `kexec_purgatory::sha256::CompressFn` (FIPS 180-4
/// §6.2.2). Safe to call only on a hart with Zknh.
pub fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    compress_with::<Zknh>(state, blocks);
}
