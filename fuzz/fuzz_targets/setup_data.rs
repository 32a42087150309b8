//! x86 boot_params: `setup_data::refresh_rng_seeds` walks the setup_data
//! chain of the boot-params segment. Input: the segment's physical base
//! (8 bytes, little-endian), the number of entropy words available (1
//! byte), then the segment's bytes.
#![no_main]

use kexec_purgatory::setup_data::refresh_rng_seeds;
use kexec_purgatory::sha256::compress_portable;
use libfuzzer_sys::fuzz_target;
use rkexec_fuzz::entropy_from;

const WORDS: [u64; 15] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

fuzz_target!(|data: &[u8]| {
    let Some((base, rest)) = data.split_first_chunk::<8>() else { return };
    let Some((&ctl, seg)) = rest.split_first() else { return };
    let mut seg = seg.to_vec();
    let len = seg.len();
    let mut entropy = entropy_from(&WORDS[..usize::from(ctl % 16)]);
    let r = refresh_rng_seeds(&mut seg, u64::from_le_bytes(*base), compress_portable, &mut entropy);
    assert_eq!(seg.len(), len);
    assert!(r.refreshed + r.kept <= 64, "more nodes than the walk's bound");
});
