//! `verify::validate` on any 1024-byte parameter block, against a
//! reference model of the rules docs/abi.md states: validate accepts
//! exactly the blocks the model accepts. Refusals render through
//! `report_failure` without panicking.
#![no_main]

use kexec_purgatory::abi::{
    PurgatoryParams, SegmentKind, MAX_SEGMENTS, PARAMS_MAGIC, PARAMS_VERSION, PARAM_FLAGS_KNOWN, SEGMENT_FLAG_EXCLUDED,
};
use kexec_purgatory::verify::{report_failure, validate, Failure};
use libfuzzer_sys::fuzz_target;
use rkexec_fuzz::{params_from_bytes, TextConsole, PARAMS_LEN};

/// docs/abi.md, "Parameter block" and "Segments".
fn model_accepts(p: &PurgatoryParams) -> bool {
    let header = p.magic == PARAMS_MAGIC
        && (1..=PARAMS_VERSION).contains(&p.version)
        && p.size as usize >= PARAMS_LEN
        && p.flags & !PARAM_FLAGS_KNOWN == 0
        && p.nr_segments as usize <= MAX_SEGMENTS;
    if !header {
        return false;
    }
    let segs = &p.segments[..p.nr_segments as usize];
    let ends: Option<Vec<(u64, u64)>> = segs.iter().map(|s| Some((s.mem, s.mem.checked_add(s.len)?))).collect();
    let Some(ends) = ends else { return false };
    let each = segs.iter().all(|s| {
        s.len > 0 && s.mem != 0 && SegmentKind::from_raw(s.kind).is_some() && s.flags & !SEGMENT_FLAG_EXCLUDED == 0
    });
    let disjoint = ends.iter().enumerate().all(|(i, a)| ends[..i].iter().all(|b| a.1 <= b.0 || b.1 <= a.0));
    let inside = |addr: u64| ends.iter().any(|&(s, e)| s <= addr && addr < e);
    each && disjoint && inside(p.kernel_entry) && (p.boot_data == 0 || inside(p.boot_data))
}

fuzz_target!(|data: &[u8]| {
    let p = params_from_bytes(data);
    let verdict = validate(&p);
    assert_eq!(verdict.is_ok(), model_accepts(&p), "validate says {verdict:?}");
    if let Err(e) = verdict {
        let mut con = TextConsole::default();
        report_failure(&p, &mut con, &Failure::Params(e));
        assert!(con.text().ends_with("not entering the kernel\n"));
    }
});
