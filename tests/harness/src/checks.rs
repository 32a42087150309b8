//! Assertions and scenarios the per-architecture harness tests share: a
//! refusal as the purgatory must print it, and the digest engines on
//! segments of every padding length at unaligned addresses.

use kexec_purgatory::abi::SegmentKind;
use sha2::{Digest, Sha256};

use crate::fixtures::pseudo_random;
use crate::{Outcome, Scenario, SegmentSpec};

/// Lower-case hex, as the purgatory prints digests and seeds.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The purgatory refused, named the segment, and never entered the kernel.
pub fn assert_refused(out: &Outcome, index: usize, kind: SegmentKind, why: &str) {
    let line = format!("REFUSED: segment {index} ({})", kind.name());
    assert!(out.contains(&line), "expected '{line}':\n{}", out.console);
    assert!(out.contains(why), "expected '{why}':\n{}", out.console);
    assert!(out.contains("purgatory: not entering the kernel"), "{}", out.console);
    assert!(!out.payload_ran(), "kernel ran after a refusal:\n{}", out.console);
}

/// Segment lengths around every padding case of FIPS 180-4 §5.1.1 (the
/// tail and its 0x80 and 64-bit length fit one block up to 55 bytes, need
/// two from 56 to 63, none of the data at 64) and longer ones.
pub const ODD_LENGTHS: [usize; 11] = [1, 55, 56, 63, 64, 65, 119, 120, 128, 4097, 12345];

/// `sc`'s segments, then one "other" segment of each odd length at an odd
/// address from `base` on (no 4, 8 or 16-byte alignment anywhere): the
/// digest engines read whole blocks straight from segment memory.
pub fn with_odd_segments(mut sc: Scenario, base: u64, seed: u64) -> Scenario {
    for (i, &len) in ODD_LENGTHS.iter().enumerate() {
        let addr = base + (i as u64) * 0x1_0000 + 1 + 2 * i as u64;
        let data = pseudo_random(len, seed + i as u64);
        sc.segments.push(SegmentSpec { kind: SegmentKind::Other, addr, data, excluded: false });
    }
    sc
}

/// `engine` (the name the purgatory prints) hashes every odd-length
/// segment of `make(name)` (a scenario from [`with_odd_segments`]) to the
/// sha2 crate's digest, and a changed last byte in each padding case is
/// refused with the digest of the changed bytes.
pub fn assert_engine_hashes_odd_lengths(engine: &str, make: impl Fn(&str) -> Scenario) {
    let sc = make(&format!("odd-lengths-{engine}"));
    let first = sc.segments.len() - ODD_LENGTHS.len();
    let out = sc.run();
    assert!(out.contains("payload: checks passed"), "{engine}:\n{}", out.console);
    let summary = format!("verified {} segments", sc.segments.len());
    assert!(out.contains(&summary) && out.contains(&format!("hashed with {engine}")), "{}", out.console);
    for (i, seg) in sc.segments.iter().enumerate().skip(first) {
        let line = format!("segment {i} (other) {:#x}+{:#x} sha256 ok", seg.addr, seg.data.len());
        assert!(out.contains(&line), "{engine}: expected '{line}':\n{}", out.console);
    }
    // A changed byte in the last block of each padding case: the digest
    // the engine printed is the sha2 crate's of the new bytes.
    for len in [56, 12345] {
        let mut sc = make(&format!("odd-corrupt-{engine}"));
        let index = first + ODD_LENGTHS.iter().position(|&l| l == len).expect("listed length");
        sc.corrupt.push((index, len - 1, 0x01));
        let out = sc.run();
        assert_refused(&out, index, SegmentKind::Other, "sha256 mismatch");
        let mut changed = sc.segments[index].data.clone();
        changed[len - 1] ^= 0x01;
        let actual = format!("purgatory:   actual   {}", hex(&Sha256::digest(&changed)));
        assert!(out.contains(&actual), "{engine}, length {len}: expected '{actual}':\n{}", out.console);
    }
}
