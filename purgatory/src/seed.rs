//! Refreshing a seed the loader wrote: mix fresh hardware entropy into it,
//! so the new kernel's seed is at least as unpredictable as either source.

use crate::sha256::{digest, CompressFn};

/// Mix entropy into `value` in place, 32 bytes at a time. Returns false
/// (value untouched) when no entropy is available.
pub fn mix_in_place(
    value: &mut [u8],
    name: &str,
    compress: CompressFn,
    entropy: &mut dyn FnMut() -> Option<u64>,
) -> bool {
    // Gather all entropy first, so that a source failing half-way leaves the
    // value as loaded rather than half-mixed.
    let mut fresh = [0u64; 4];
    for word in fresh.iter_mut() {
        match entropy() {
            Some(w) => *word = w,
            None => return false,
        }
    }
    let loaded_len = value.len().min(64);
    let mut loaded = [0u8; 64];
    loaded[..loaded_len].copy_from_slice(&value[..loaded_len]);

    for (counter, chunk) in value.chunks_mut(32).enumerate() {
        // domain(16) | name(16) | counter(8) | loaded(64) | fresh(32)
        let mut input = [0u8; 136];
        input[..16].copy_from_slice(b"rkexec-seed-v1\0\0");
        let n = name.len().min(16);
        input[16..16 + n].copy_from_slice(&name.as_bytes()[..n]);
        input[32..40].copy_from_slice(&(counter as u64).to_le_bytes());
        input[40..104].copy_from_slice(&loaded);
        for (dst, w) in input[104..].chunks_exact_mut(8).zip(fresh) {
            dst.copy_from_slice(&w.to_le_bytes());
        }
        let out = digest(&input, compress);
        chunk.copy_from_slice(&out[..chunk.len()]);
    }
    true
}
