//! The `fdt` crate 0.2.0-alpha3, in its no-panic mode, on any bytes
//! (docs/fdt-crate-evaluation.md): the walk `fdt_walk` does with the
//! purgatory's own reader, and every lookup the purgatory makes in a DTB
//! (`rkexec_fuzz::fdt_crate::walk_both`), through both of the crate's
//! parsers. Fails on a panic inside the crate, or a slice it hands out
//! that is not inside the blob. Whether it reads what our walker reads is
//! checked by tests/fdt_crate.rs, not here.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rkexec_fuzz::fdt_crate::walk_both;

fuzz_target!(|data: &[u8]| {
    walk_both(data);
});
