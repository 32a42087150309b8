//! `checks::check_excluded` on any bytes, for every segment kind. What the
//! structure checks accept is what the purgatory then reads: an accepted
//! ELF core has its program headers inside the segment, and an accepted DTB
//! is one the patcher's parser accepts too.
#![no_main]

use kexec_purgatory::abi::SegmentKind;
use kexec_purgatory::checks::check_excluded;
use kexec_purgatory::fdt_patch::{find_seed_spans, PatchError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for raw in 0..=6 {
        let kind = SegmentKind::from_raw(raw).expect("ABI kind");
        let verdict = check_excluded(kind, data);
        if let Err(e) = verdict {
            assert!(!e.describe().is_empty());
            continue;
        }
        match kind {
            SegmentKind::ElfCoreHdr => {
                let phoff = u64::from_le_bytes(data[32..40].try_into().unwrap());
                let phnum = u64::from(u16::from_le_bytes([data[56], data[57]]));
                assert!(phoff + phnum * 56 <= data.len() as u64);
            }
            SegmentKind::Dtb => {
                // The patcher reads the same blob: it must agree it is well formed.
                assert!(!matches!(find_seed_spans(data), Err(PatchError::Fdt(_))), "checked DTB the patcher refuses");
            }
            other => panic!("{other:?} accepted as excludable"),
        }
    }
});
