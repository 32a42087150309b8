//! The purgatory's own FDT reader (purgatory::fdt): `header`,
//! `reservations`, the token `Walker`, `check` and `chosen_props`, on any
//! bytes. What it yields stays inside the blob and its blocks, nesting is
//! balanced and bounded, and `check` accepts exactly the blobs whose walk
//! ends cleanly.
#![no_main]

use kexec_purgatory::fdt::{self, Token, Walker, MAX_DEPTH};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(hdr) = fdt::header(data) else {
        assert!(fdt::check(data).is_err());
        return;
    };
    assert!(hdr.totalsize <= data.len() && hdr.totalsize >= fdt::HEADER_LEN);
    for b in [hdr.dt_struct, hdr.dt_strings] {
        assert!(b.off.checked_add(b.len).is_some_and(|e| e <= hdr.totalsize));
        assert!(b.bytes(data).is_some());
    }
    let rsv = fdt::reservations(data, &hdr);
    let mut walker = Walker::new(data).expect("header() accepted it");
    let mut depth = 0usize;
    let mut clean = true;
    for t in walker.by_ref() {
        match t {
            Ok(Token::BeginNode { name, depth: d }) => {
                depth += 1;
                assert_eq!(d, depth);
                assert!(d <= MAX_DEPTH);
                assert!(!name.contains(&0));
            }
            Ok(Token::EndNode { depth: d }) => {
                assert_eq!(d, depth);
                depth -= 1;
            }
            Ok(Token::Prop { name, value, depth: d }) => {
                assert_eq!(d, depth);
                assert!(d >= 1 && !name.contains(&0));
                let s = hdr.dt_struct;
                assert!(value.off >= s.off && value.off + value.len <= s.off + s.len, "value outside the struct block");
            }
            Err(_) => clean = false,
        }
    }
    if clean {
        assert_eq!(depth, 0, "the walk ended inside a node");
    }
    assert_eq!(fdt::check(data).is_ok(), clean && rsv.is_ok(), "check disagrees with the walk");
    // The patcher's lookup walks the same grammar: same verdict.
    match fdt::chosen_props(data, ["kaslr-seed", "rng-seed", "bootargs"]) {
        Ok((_, props)) => {
            assert!(clean && rsv.is_ok(), "chosen_props accepted what the walk refused");
            for b in props.iter().flatten() {
                assert!(b.bytes(data).is_some());
            }
        }
        Err(_) => assert!(!(clean && rsv.is_ok()), "chosen_props refused what the walk accepted"),
    }
});
