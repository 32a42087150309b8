//! `image::decompress::decompress`: gzip and zstd, every input through both
//! codecs, output never above the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loader_host::image::decompress::{decompress, Codec};

/// A small cap so that bombs are found quickly; the logic is the same at
/// MAX_DECOMPRESSED.
const LIMIT: u64 = 8 << 20;

fuzz_target!(|data: &[u8]| {
    for codec in [Codec::Gzip, Codec::Zstd] {
        match decompress(codec, data, LIMIT, "fuzz") {
            Ok(out) => assert!(out.len() as u64 <= LIMIT, "{} output over the cap", codec.name()),
            Err(e) => drop(e.to_string()),
        }
    }
});
