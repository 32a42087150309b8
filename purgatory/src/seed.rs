//! Refreshing a seed the loader wrote: mix fresh hardware entropy into it,
//! so the new kernel's seed is at least as unpredictable as either source.

use crate::bytes::put;
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
    // The value as loaded, mixed into every chunk (the first 64 bytes).
    let mut loaded = [0u8; 64];
    put(&mut loaded, 0, value);
    let name = name.as_bytes().get(..16).unwrap_or(name.as_bytes());

    for (counter, chunk) in value.chunks_mut(32).enumerate() {
        // domain(16) | name(16) | counter(8) | loaded(64) | fresh(32)
        let mut input = [0u8; 136];
        put(&mut input, 0, b"rkexec-seed-v1\0\0");
        put(&mut input, 16, name);
        put(&mut input, 32, &(counter as u64).to_le_bytes());
        put(&mut input, 40, &loaded);
        for (i, w) in fresh.iter().enumerate() {
            put(&mut input, 104 + 8 * i, &w.to_le_bytes());
        }
        let out = digest(&input, compress);
        put(chunk, 0, &out);
    }
    true
}
