//! The purgatory's in-place DTB patches on any blob: `find_seed_spans`,
//! `refresh_seeds` (writes only inside the seed properties it found, nothing
//! when it fails) and `set_boot_cpuid` (writes only the header field).
//! Input: a control byte (entropy words available, 0..=15), then the blob.
#![no_main]

use kexec_purgatory::fdt_patch::{find_seed_spans, refresh_seeds, set_boot_cpuid};
use kexec_purgatory::sha256::compress_portable;
use libfuzzer_sys::fuzz_target;
use rkexec_fuzz::{changed_bytes, entropy_from};

const WORDS: [u64; 15] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, blob)) = data.split_first() else { return };
    let spans = find_seed_spans(blob);
    if let Ok(spans) = &spans {
        for s in spans.iter().flatten() {
            assert!(s.offset.checked_add(s.len).is_some_and(|e| e <= blob.len()), "span {s:?} outside the blob");
        }
    }
    let mut b = blob.to_vec();
    let mut entropy = entropy_from(&WORDS[..usize::from(ctl % 16)]);
    let r = refresh_seeds(&mut b, compress_portable, &mut entropy);
    assert_eq!(r.is_ok(), spans.is_ok());
    let inside = |i: usize| spans.iter().flatten().flatten().any(|s| (s.offset..s.offset + s.len).contains(&i));
    for i in changed_bytes(blob, &b) {
        assert!(inside(i), "refresh_seeds changed byte {i:#x} outside the seed values");
    }
    let before = b.clone();
    if set_boot_cpuid(&mut b, 0x8000_0101).is_ok() {
        assert!(changed_bytes(&before, &b).all(|i| (0x1c..0x20).contains(&i)));
    } else {
        assert_eq!(before, b);
    }
});
