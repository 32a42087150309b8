//! /proc/kcore program-header parsing (system::kcore): the linear-map
//! offset for a physical address and the x86 kernel-text PT_LOAD.
//! Input: 8 bytes of physical address, then the file's first bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loader_host::system::kcore::{offset_from_headers, text_from_headers};

fuzz_target!(|data: &[u8]| {
    let (phys, head) = match data.split_first_chunk::<8>() {
        Some((p, h)) => (u64::from_le_bytes(*p), h),
        None => (0, data),
    };
    let _ = offset_from_headers(head, phys);
    if let Some((vaddr, _paddr, size)) = text_from_headers(head) {
        assert!(size > 0);
        assert!((0xffff_ffff_8000_0000..0xffff_ffff_a000_0000).contains(&vaddr));
    }
});
