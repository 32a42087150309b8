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
    // domain(16) | name(16) | counter(8) | loaded(64) | fresh(32): all but
    // the counter is the same for every chunk, so it is laid out once.
    let mut input = [0u8; 136];
    // Gather all entropy first, so that a source failing half-way leaves the
    // value as loaded rather than half-mixed.
    for at in (104..136).step_by(8) {
        match entropy() {
            Some(w) => put(&mut input, at, &w.to_le_bytes()),
            None => return false,
        };
    }
    put(&mut input, 0, b"rkexec-seed-v1\0\0");
    put(&mut input, 16, name.as_bytes().get(..16).unwrap_or(name.as_bytes()));
    // The value as loaded, mixed into every chunk (the first 64 bytes).
    put(&mut input, 40, value.get(..64).unwrap_or(value));

    for (counter, chunk) in value.chunks_mut(32).enumerate() {
        put(&mut input, 32, &(counter as u64).to_le_bytes());
        put(chunk, 0, &digest(&input, compress));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha256::compress_portable;
    use sha2::{Digest, Sha256};

    /// The construction, written out with the sha2 crate: chunk i of the
    /// value becomes SHA-256("rkexec-seed-v1\0\0" | name padded to 16 |
    /// i as u64 LE | the loaded value's first 64 bytes, zero-padded |
    /// four entropy words LE), truncated to the chunk.
    fn reference(loaded: &[u8], name: &str, words: [u64; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, chunk) in loaded.chunks(32).enumerate() {
            let mut input = Vec::new();
            input.extend_from_slice(b"rkexec-seed-v1\0\0");
            let mut n = name.as_bytes()[..name.len().min(16)].to_vec();
            n.resize(16, 0);
            input.extend_from_slice(&n);
            input.extend_from_slice(&(i as u64).to_le_bytes());
            let mut l = loaded[..loaded.len().min(64)].to_vec();
            l.resize(64, 0);
            input.extend_from_slice(&l);
            for w in words {
                input.extend_from_slice(&w.to_le_bytes());
            }
            out.extend_from_slice(&Sha256::digest(&input)[..chunk.len()]);
        }
        out
    }

    #[test]
    fn matches_the_construction_for_every_length() {
        let words = [0x0123_4567_89ab_cdef, 2, u64::MAX, 0x5a5a];
        for len in [1, 8, 31, 32, 33, 61, 64, 65, 100] {
            for name in ["kaslr-seed", "setup-rng-seed-longer-than-16"] {
                let loaded: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
                let mut value = loaded.clone();
                let mut next = words.into_iter();
                assert!(mix_in_place(&mut value, name, compress_portable, &mut || next.next()));
                assert_eq!(value, reference(&loaded, name, words), "length {len}, {name}");
            }
        }
    }

    #[test]
    fn no_entropy_or_too_little_leaves_the_value() {
        let mut value = [7u8; 40];
        let mut three = [1u64, 2, 3].into_iter();
        assert!(!mix_in_place(&mut value, "rng-seed", compress_portable, &mut || three.next()));
        assert!(!mix_in_place(&mut value, "rng-seed", compress_portable, &mut || None));
        assert_eq!(value, [7u8; 40]);
    }
}
