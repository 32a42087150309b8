//! The purgatory's portable flow: validate the parameter block, verify every
//! segment (hash, or structure-check when excluded), patch the DTB, and say
//! where to jump. The architecture code supplies memory access, the digest
//! engine, entropy and the console through [`Platform`]; it never decides
//! whether to enter the kernel — this module does.

use crate::abi::{
    PurgatoryParams, SegmentDesc, SegmentKind, MAX_SEGMENTS, PARAMS_MAGIC, PARAMS_VERSION, PARAM_FLAGS_KNOWN,
    PARAM_FLAG_REFRESH_SEEDS, PARAM_FLAG_SET_BOOT_CPU, PARAM_FLAG_SKIP_DIGESTS,
};
use crate::checks::{check_excluded, StructureError};
use crate::fdt_patch::{refresh_seeds, set_boot_cpuid, PatchError, SeedReport};
use crate::report::Console;
use crate::sha256::{digest, CompressFn};

/// What the purgatory needs from the machine it runs on.
pub trait Platform {
    type Con: Console;
    fn console(&mut self) -> &mut Self::Con;
    /// The bytes at physical `[mem, mem + len)`. `validate` has checked the
    /// range is non-empty, does not wrap and does not start at 0; the
    /// implementation vouches that it is RAM it may read and write.
    fn memory(&mut self, mem: u64, len: u64) -> &mut [u8];
    /// The SHA-256 block function to use, and its name for the report.
    fn digest_engine(&self) -> (CompressFn, &'static str);
    /// 64 bits from a hardware entropy source, or None when there is none.
    fn entropy(&mut self) -> Option<u64>;
    /// This CPU's id as the DTB's cpu nodes spell it (aarch64: MPIDR aff).
    fn boot_cpu_id(&self) -> u32;
    /// A monotonic clock in microseconds, for the report.
    fn now_us(&self) -> u64;
}

/// Where to go after verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handoff {
    pub entry: u64,
    pub boot_data: u64,
    /// The range the purgatory modified (the DTB), which the architecture
    /// code must clean to the point of coherency before the jump.
    pub written: Option<(u64, u64)>,
}

/// A parameter block the purgatory cannot act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamError {
    Magic,
    Version,
    Size,
    UnknownFlags(u32),
    TooManySegments(u32),
    /// Segment index and what is wrong with it.
    Segment(usize, &'static str),
    /// Two segments overlap.
    Overlap(usize, usize),
    /// The DTB address is not inside a segment.
    BootDataOutsideSegments,
    /// The kernel entry is not inside a segment.
    EntryOutsideSegments,
}

/// Why the purgatory refused to enter the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    Params(ParamError),
    DigestMismatch { index: usize, expected: [u8; 32], actual: [u8; 32] },
    Structure { index: usize, error: StructureError },
    DtbPatch(PatchError),
}

/// Check the block before touching any memory it names.
pub fn validate(params: &PurgatoryParams) -> Result<(), ParamError> {
    if params.magic != PARAMS_MAGIC {
        return Err(ParamError::Magic);
    }
    if params.version == 0 || params.version > PARAMS_VERSION {
        return Err(ParamError::Version);
    }
    // `size` is what the loader filled: it must cover every v1 field.
    if (params.size as usize) < core::mem::size_of::<PurgatoryParams>() {
        return Err(ParamError::Size);
    }
    if params.flags & !PARAM_FLAGS_KNOWN != 0 {
        return Err(ParamError::UnknownFlags(params.flags & !PARAM_FLAGS_KNOWN));
    }
    if params.nr_segments as usize > MAX_SEGMENTS {
        return Err(ParamError::TooManySegments(params.nr_segments));
    }
    let segs = params.active_segments();
    for (i, s) in segs.iter().enumerate() {
        if s.len == 0 {
            return Err(ParamError::Segment(i, "length is zero"));
        }
        if s.mem == 0 {
            return Err(ParamError::Segment(i, "starts at physical address 0"));
        }
        if s.mem.checked_add(s.len).is_none() {
            return Err(ParamError::Segment(i, "end wraps the address space"));
        }
        if usize::try_from(s.len).is_err() {
            return Err(ParamError::Segment(i, "longer than the address space"));
        }
        if SegmentKind::from_raw(s.kind).is_none() {
            return Err(ParamError::Segment(i, "unknown kind"));
        }
        if s.flags & !crate::abi::SEGMENT_FLAG_EXCLUDED != 0 {
            return Err(ParamError::Segment(i, "unknown segment flags"));
        }
        for (j, t) in segs.iter().enumerate().take(i) {
            if s.mem < t.mem + t.len && t.mem < s.mem + s.len {
                return Err(ParamError::Overlap(j, i));
            }
        }
    }
    if params.boot_data != 0 && find_segment(segs, params.boot_data).is_none() {
        return Err(ParamError::BootDataOutsideSegments);
    }
    if find_segment(segs, params.kernel_entry).is_none() {
        return Err(ParamError::EntryOutsideSegments);
    }
    Ok(())
}

fn find_segment(segs: &[SegmentDesc], addr: u64) -> Option<usize> {
    segs.iter().position(|s| addr >= s.mem && addr - s.mem < s.len)
}

const TAG: &str = "purgatory: ";

fn kind_name(seg: &SegmentDesc) -> &'static str {
    SegmentKind::from_raw(seg.kind).map_or("?", SegmentKind::name)
}

fn segment_line<C: Console>(con: &mut C, index: usize, seg: &SegmentDesc) {
    con.put("segment ").dec(index as u64).put(" (").put(kind_name(seg)).put(") ");
    con.hex(seg.mem).put("+").hex(seg.len);
}

/// Verify every segment, in input order. Returns the first failure.
pub fn verify_segments<P: Platform>(params: &PurgatoryParams, p: &mut P) -> Result<u64, Failure> {
    let (compress, _) = p.digest_engine();
    let mut hashed = 0u64;
    for (index, seg) in params.active_segments().iter().enumerate() {
        let data = p.memory(seg.mem, seg.len);
        if seg.is_excluded() {
            // Exclusion is per input segment: the kernel may rewrite this
            // one after load (crash hotplug), so check its shape instead.
            let kind = SegmentKind::from_raw(seg.kind).unwrap_or(SegmentKind::Other);
            if let Err(error) = check_excluded(kind, data) {
                return Err(Failure::Structure { index, error });
            }
            let con = p.console();
            con.put(TAG);
            segment_line(con, index, seg);
            con.put(" excluded, structure ok\n");
            continue;
        }
        if params.flags & PARAM_FLAG_SKIP_DIGESTS != 0 {
            let con = p.console();
            con.put(TAG);
            segment_line(con, index, seg);
            con.put(" not hashed (verification off)\n");
            continue;
        }
        let actual = digest(data, compress);
        hashed += seg.len;
        if actual != seg.sha256 {
            return Err(Failure::DigestMismatch { index, expected: seg.sha256, actual });
        }
        let con = p.console();
        con.put(TAG);
        segment_line(con, index, seg);
        con.put(" sha256 ok\n");
    }
    Ok(hashed)
}

/// The whole flow. On `Ok`, the caller enters the kernel; on `Err`, the
/// failure has already been reported and the caller must not.
pub fn run<P: Platform>(params: &PurgatoryParams, p: &mut P) -> Result<Handoff, Failure> {
    let result = run_inner(params, p);
    if let Err(failure) = &result {
        report_failure(params, p.console(), failure);
    }
    result
}

fn run_inner<P: Platform>(params: &PurgatoryParams, p: &mut P) -> Result<Handoff, Failure> {
    validate(params).map_err(Failure::Params)?;
    let (compress, engine) = p.digest_engine();
    let start = p.now_us();
    let hashed = verify_segments(params, p)?;
    let elapsed = p.now_us().saturating_sub(start);
    if params.flags & PARAM_FLAG_SKIP_DIGESTS != 0 {
        p.console().put(TAG).put("verification skipped at the loader's request (-i)\n");
    }
    p.console()
        .put(TAG)
        .put("verified ")
        .dec(params.nr_segments as u64)
        .put(" segments, ")
        .dec(hashed)
        .put(" bytes hashed with ")
        .put(engine)
        .put(" in ")
        .dec(elapsed)
        .put(" us\n");

    let mut written = None;
    if params.boot_data != 0 && params.flags & (PARAM_FLAG_REFRESH_SEEDS | PARAM_FLAG_SET_BOOT_CPU) != 0 {
        let segs = params.active_segments();
        // validate() proved the DTB / boot_params lie inside a segment.
        let seg = segs[find_segment(segs, params.boot_data).unwrap_or(0)];
        let len = seg.mem + seg.len - params.boot_data;
        let cpu = p.boot_cpu_id();
        // Borrow the entropy source separately from memory.
        let mut pool = [None; 8];
        for slot in pool.iter_mut() {
            *slot = p.entropy();
        }
        let mut next = pool.into_iter();
        let mut entropy = || next.next().flatten();
        if SegmentKind::from_raw(seg.kind) == Some(SegmentKind::BootParams) {
            // x86: the seed lives in a setup_data node of boot_params.
            let blob = p.memory(seg.mem, seg.len);
            let r = if params.flags & PARAM_FLAG_REFRESH_SEEDS != 0 {
                crate::setup_data::refresh_rng_seeds(blob, seg.mem, compress, &mut entropy)
            } else {
                Default::default()
            };
            written = Some((seg.mem, seg.len));
            let con = p.console();
            con.put(TAG).put("boot_params: rng seeds refreshed ").dec(r.refreshed as u64);
            con.put(", kept ").dec(r.kept as u64).put("\n");
        } else {
            let mut seeds = SeedReport::default();
            let blob = p.memory(params.boot_data, len);
            if params.flags & PARAM_FLAG_REFRESH_SEEDS != 0 {
                seeds = refresh_seeds(blob, compress, &mut entropy).map_err(Failure::DtbPatch)?;
            }
            if params.flags & PARAM_FLAG_SET_BOOT_CPU != 0 {
                set_boot_cpuid(blob, cpu).map_err(Failure::DtbPatch)?;
            }
            written = Some((params.boot_data, len));
            let con = p.console();
            con.put(TAG).put("dtb: seeds refreshed ").dec(seeds.refreshed as u64);
            con.put(", kept ").dec(seeds.kept as u64).put("; boot cpu ").hex(cpu as u64).put("\n");
        }
    }
    Ok(Handoff { entry: params.kernel_entry, boot_data: params.boot_data, written })
}

/// Print which segment failed and why. Nothing else is printed after this
/// except the architecture's "halting"/"resetting" line.
pub fn report_failure<C: Console>(params: &PurgatoryParams, con: &mut C, failure: &Failure) {
    let seg = |i: usize| params.segments.get(i).copied().unwrap_or(SegmentDesc::EMPTY);
    match *failure {
        Failure::Params(e) => {
            con.put(TAG).put("REFUSED: bad parameter block: ");
            match e {
                ParamError::Magic => con.put("magic is not RKXP"),
                ParamError::Version => con.put("unsupported version ").dec(params.version as u64),
                ParamError::Size => con.put("size field smaller than version 1 block"),
                ParamError::UnknownFlags(f) => con.put("unknown flags ").hex(f as u64),
                ParamError::TooManySegments(n) => con.put("too many segments: ").dec(n as u64),
                ParamError::Segment(i, why) => con.put("segment ").dec(i as u64).put(": ").put(why),
                ParamError::Overlap(i, j) => {
                    con.put("segments ").dec(i as u64).put(" and ").dec(j as u64).put(" overlap")
                }
                ParamError::BootDataOutsideSegments => con.put("boot data address is not inside a segment"),
                ParamError::EntryOutsideSegments => con.put("kernel entry is not inside a segment"),
            };
            con.put("\n");
        }
        Failure::DigestMismatch { index, expected, actual } => {
            con.put(TAG).put("REFUSED: ");
            segment_line(con, index, &seg(index));
            con.put(" sha256 mismatch\n");
            con.put(TAG).put("  expected ").bytes_hex(&expected).put("\n");
            con.put(TAG).put("  actual   ").bytes_hex(&actual).put("\n");
        }
        Failure::Structure { index, error } => {
            con.put(TAG).put("REFUSED: ");
            segment_line(con, index, &seg(index));
            con.put(" excluded but malformed: ").put(error.describe()).put("\n");
        }
        Failure::DtbPatch(e) => {
            con.put(TAG).put("REFUSED: cannot patch dtb: ").put(e.describe()).put("\n");
        }
    }
    con.put(TAG).put("not entering the kernel\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{PARAM_FLAG_DEBUG_SOFT_SHA256, SEGMENT_FLAG_EXCLUDED};
    use crate::fdt_patch::{boot_cpuid, find_seed_spans};
    use crate::report::tests::TextConsole;
    use crate::sha256::compress_portable;
    use sha2::{Digest, Sha256};

    /// Host memory standing in for physical memory: each segment is a
    /// buffer, its "physical address" is the buffer's address.
    struct HostPlatform {
        console: TextConsole,
        buffers: Vec<Vec<u8>>,
        entropy: Vec<u64>,
    }

    impl Platform for HostPlatform {
        type Con = TextConsole;
        fn console(&mut self) -> &mut TextConsole {
            &mut self.console
        }
        fn memory(&mut self, mem: u64, len: u64) -> &mut [u8] {
            let buf = self
                .buffers
                .iter_mut()
                .find(|b| {
                    let start = b.as_ptr() as u64;
                    mem >= start && mem + len <= start + b.len() as u64
                })
                .expect("address inside a host buffer");
            let off = (mem - buf.as_ptr() as u64) as usize;
            &mut buf[off..off + len as usize]
        }
        fn digest_engine(&self) -> (CompressFn, &'static str) {
            (compress_portable, "portable")
        }
        fn entropy(&mut self) -> Option<u64> {
            self.entropy.pop()
        }
        fn boot_cpu_id(&self) -> u32 {
            0x101
        }
        fn now_us(&self) -> u64 {
            0
        }
    }

    fn test_dtb() -> Vec<u8> {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        w.set_boot_cpuid_phys(7);
        let root = w.begin_node("").unwrap();
        let chosen = w.begin_node("chosen").unwrap();
        w.property("kaslr-seed", &[0x11; 8]).unwrap();
        w.property("rng-seed", &[0x22; 64]).unwrap();
        w.end_node(chosen).unwrap();
        w.end_node(root).unwrap();
        let mut blob = w.finish().unwrap();
        blob.resize(4096, 0);
        blob
    }

    /// kernel, initrd, dtb, elfcorehdr with correct digests.
    fn setup() -> (PurgatoryParams, HostPlatform) {
        let buffers = vec![
            vec![0xaa; 8192],
            (0..20000u32).map(|i| i as u8).collect(),
            test_dtb(),
            crate::checks::tests::minimal_core(2),
        ];
        let kinds = [SegmentKind::Kernel, SegmentKind::Initrd, SegmentKind::Dtb, SegmentKind::ElfCoreHdr];
        let mut p = PurgatoryParams::new();
        p.nr_segments = buffers.len() as u32;
        for (i, b) in buffers.iter().enumerate() {
            p.segments[i] = SegmentDesc {
                mem: b.as_ptr() as u64,
                len: b.len() as u64,
                sha256: Sha256::digest(b).into(),
                kind: kinds[i] as u32,
                flags: 0,
            };
        }
        p.kernel_entry = p.segments[0].mem;
        p.boot_data = p.segments[2].mem;
        let plat = HostPlatform { console: TextConsole::default(), buffers, entropy: vec![1, 2, 3, 4, 5, 6, 7, 8] };
        (p, plat)
    }

    #[test]
    fn all_good_hands_off_to_kernel_with_dtb() {
        let (mut params, mut plat) = setup();
        params.flags = PARAM_FLAG_REFRESH_SEEDS | PARAM_FLAG_SET_BOOT_CPU;
        let h = run(&params, &mut plat).unwrap();
        assert_eq!((h.entry, h.boot_data), (params.segments[0].mem, params.segments[2].mem));
        assert_eq!(h.written, Some((params.boot_data, 4096)));
        assert!(plat.console.0.contains("verified 4 segments, 32464 bytes hashed with portable"), "{}", plat.console.0);
        let dtb = &plat.buffers[2];
        assert_eq!(boot_cpuid(dtb), Some(0x101));
        let [k, r] = find_seed_spans(dtb).unwrap();
        let (k, r) = (k.unwrap(), r.unwrap());
        assert_ne!(&dtb[k.offset..k.offset + k.len], &[0x11; 8]);
        assert_ne!(&dtb[r.offset..r.offset + r.len], &[0x22; 64][..]);
        assert!(plat.console.0.contains("seeds refreshed 2, kept 0; boot cpu 0x101"));
    }

    #[test]
    fn no_entropy_keeps_seeds_as_loaded() {
        let (mut params, mut plat) = setup();
        params.flags = PARAM_FLAG_REFRESH_SEEDS;
        plat.entropy.clear();
        run(&params, &mut plat).unwrap();
        let dtb = &plat.buffers[2];
        let [k, _] = find_seed_spans(dtb).unwrap();
        let k = k.unwrap();
        assert_eq!(&dtb[k.offset..k.offset + k.len], &[0x11; 8]);
        assert_eq!(boot_cpuid(dtb), Some(7), "boot cpu untouched without the flag");
    }

    #[test]
    fn a_flipped_bit_anywhere_names_the_segment() {
        for seg in 0..4 {
            for pos in [0usize, 1000, usize::MAX] {
                let (params, mut plat) = setup();
                let len = plat.buffers[seg].len();
                let at = pos.min(len - 1);
                plat.buffers[seg][at] ^= 0x40;
                let err = run(&params, &mut plat).unwrap_err();
                match err {
                    Failure::DigestMismatch { index, expected, actual } => {
                        assert_eq!(index, seg);
                        assert_eq!(expected, params.segments[seg].sha256);
                        assert_ne!(actual, expected);
                    }
                    other => panic!("unexpected {other:?}"),
                }
                assert!(plat.console.0.contains(&format!("REFUSED: segment {seg} (")), "{}", plat.console.0);
                assert!(plat.console.0.ends_with("not entering the kernel\n"));
            }
        }
    }

    #[test]
    fn exclusion_follows_the_descriptor_not_its_position() {
        // The elfcorehdr excluded at index 3, then moved to index 0: the
        // rewritten one is skipped in both orders, nothing else is.
        for move_first in [false, true] {
            let (mut params, mut plat) = setup();
            params.segments[3].flags = SEGMENT_FLAG_EXCLUDED;
            plat.buffers[3][64 + 40] ^= 1; // kernel rewrote a p_filesz
            if move_first {
                params.segments[..4].rotate_right(1);
            }
            run(&params, &mut plat).unwrap();
            let idx = if move_first { 0 } else { 3 };
            assert!(plat.console.0.contains(&format!("segment {idx} (elfcorehdr)")), "{}", plat.console.0);
            assert!(plat.console.0.contains("excluded, structure ok"));
            // A rewrite of a non-excluded segment is still caught.
            let (mut params, mut plat) = setup();
            params.segments[3].flags = SEGMENT_FLAG_EXCLUDED;
            plat.buffers[1][5] ^= 1;
            assert!(matches!(run(&params, &mut plat), Err(Failure::DigestMismatch { index: 1, .. })));
        }
    }

    #[test]
    fn excluded_segments_are_structure_checked() {
        let (mut params, mut plat) = setup();
        params.segments[2].flags = SEGMENT_FLAG_EXCLUDED;
        plat.buffers[2][3] = 0; // FDT magic
        assert_eq!(run(&params, &mut plat), Err(Failure::Structure { index: 2, error: StructureError::FdtMagic }));
        let (mut params, mut plat) = setup();
        params.segments[0].flags = SEGMENT_FLAG_EXCLUDED;
        assert_eq!(
            run(&params, &mut plat),
            Err(Failure::Structure { index: 0, error: StructureError::KindNotExcludable })
        );
    }

    #[test]
    fn parameter_block_rules() {
        type Edit = fn(&mut PurgatoryParams);
        let cases: [(Edit, ParamError); 9] = [
            (|p| p.magic = 0, ParamError::Magic),
            (|p| p.version = 2, ParamError::Version),
            (|p| p.size = 100, ParamError::Size),
            (|p| p.flags = 1 << 30, ParamError::UnknownFlags(1 << 30)),
            (|p| p.nr_segments = 17, ParamError::TooManySegments(17)),
            (|p| p.segments[1].len = 0, ParamError::Segment(1, "length is zero")),
            (|p| p.segments[1].kind = 99, ParamError::Segment(1, "unknown kind")),
            (|p| p.segments[1].mem = p.segments[0].mem + 1, ParamError::Overlap(0, 1)),
            (|p| p.kernel_entry = 16, ParamError::EntryOutsideSegments),
        ];
        for (edit, want) in cases {
            let (mut params, mut plat) = setup();
            edit(&mut params);
            assert_eq!(run(&params, &mut plat), Err(Failure::Params(want)));
            assert!(plat.console.0.contains("REFUSED: bad parameter block"), "{}", plat.console.0);
        }
    }

    #[test]
    fn skip_digests_hashes_nothing_but_still_checks_structure() {
        let (mut params, mut plat) = setup();
        params.flags = PARAM_FLAG_SKIP_DIGESTS;
        plat.buffers[1][0] ^= 1;
        assert!(run(&params, &mut plat).is_ok());
        assert!(plat.console.0.contains("verified 4 segments, 0 bytes hashed"), "{}", plat.console.0);
        assert!(plat.console.0.contains("verification skipped"));
        params.segments[3].flags = SEGMENT_FLAG_EXCLUDED;
        plat.buffers[3][0] = 0;
        assert!(matches!(run(&params, &mut plat), Err(Failure::Structure { index: 3, .. })));
    }

    #[test]
    fn debug_flags_are_known() {
        let (mut params, mut plat) = setup();
        params.flags = PARAM_FLAG_DEBUG_SOFT_SHA256;
        assert!(run(&params, &mut plat).is_ok());
    }
}
