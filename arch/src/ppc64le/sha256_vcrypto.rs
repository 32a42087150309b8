//! SHA-256 block compression with the POWER8 vector crypto instruction
//! `vshasigmaw` (Power ISA 2.07 "Vector SHA-256 Sigma Word"), as a
//! hand-written loop (`sha256_vcrypto.s`; the approach of OpenSSL's
//! sha512p8-ppc.pl, one working variable per vector register, written
//! anew: the schedule four words at a time, W + K four at a time). Call
//! only when the boot CPU implements ISA 2.07 (machine::init's level) and
//! MSR[VEC] and MSR[VSX] are on (the entry code turns them on).

/// vperm control that swaps the bytes of each word (the ISA numbers vector
/// bytes from the left: byte 4i+k takes byte 4i+3-k), as lxvw4x loads it.
#[repr(C, align(16))]
struct SwapControl([u32; 4]);
static BYTE_SWAP: SwapControl = SwapControl([0x0302_0100, 0x0706_0504, 0x0b0a_0908, 0x0f0e_0d0c]);

/// Same contract as `kexec_purgatory::sha256::CompressFn`.
pub fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    // SAFETY: the assembly reads `blocks.len()` 64-byte blocks from
    // `blocks`, the 64 round constants and the 16-byte control, and reads
    // and writes the 8 words of `state`, nothing else (its stack frame is
    // balanced); the caller chose this engine only for an ISA 2.07 CPU,
    // and the entry code enabled VEC and VSX.
    unsafe {
        rkx_sha256_vcrypto(
            state.as_mut_ptr(),
            blocks.as_ptr().cast(),
            blocks.len(),
            crate::sha256_compress::K.0.as_ptr(),
            BYTE_SWAP.0.as_ptr(),
        )
    }
}

unsafe extern "C" {
    fn rkx_sha256_vcrypto(state: *mut u32, data: *const u8, nblocks: usize, k: *const u32, swap: *const u32);
}

core::arch::global_asm!(include_str!("sha256_vcrypto.s"));
