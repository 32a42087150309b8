//! The purgatory's portable flow: validate the parameter block, verify every
//! segment (hash, or structure-check when excluded), copy the low memory
//! into the backup segment (ppc64le kdump), patch the boot data, and say
//! where to jump. The architecture code supplies memory access, the
//! digest engine, entropy and the console through [`Platform`]; it never
//! decides whether to enter the kernel: this module does.

use crate::abi::{
    PurgatoryParams, SegmentDesc, SegmentKind, PARAM_FLAG_REFRESH_SEEDS, PARAM_FLAG_SET_BOOT_CPU,
    PARAM_FLAG_SKIP_DIGESTS,
};
use crate::checks::{check_excluded, StructureError};
use crate::console_lines as lines;
use crate::fdt_patch::{refresh_seeds, set_boot_cpuid, PatchError, SeedReport};
use crate::report::{Arg, Console};
use crate::sha256::{digest, CompressFn};
use crate::template;

pub use crate::validate::{
    boot_data_segment, check_console, console_span, console_usable, kernel_segment, validate, MemSpan, ParamError,
    Rules, SegmentRule,
};

/// What the purgatory needs from the machine it runs on.
pub trait Platform {
    type Con: Console;
    fn console(&mut self) -> &mut Self::Con;
    /// The bytes at physical `[mem, mem + len)`. `validate` has checked the
    /// range is non-empty, does not wrap, does not start at 0 and does not
    /// overlap the purgatory; the implementation vouches that it is RAM it
    /// may read and write.
    fn memory(&mut self, mem: u64, len: u64) -> &mut [u8];
    /// The SHA-256 block function to use, and its name for the report.
    fn digest_engine(&self) -> (CompressFn, &'static str);
    /// 64 bits from a hardware entropy source, or None when there is none.
    fn entropy(&mut self) -> Option<u64>;
    /// This CPU's id as the DTB's cpu nodes spell it (aarch64: MPIDR aff).
    fn boot_cpu_id(&self) -> u32;
    /// A monotonic clock in microseconds, for the report.
    fn now_us(&self) -> u64;
    /// ppc64le kdump: copy physical `[0, len)` to `[dst, dst + len)`, the
    /// backup segment. `validate` has checked (`Rules::backup`) that the
    /// destination is the one Backup segment, verified before this is
    /// called, and that the source overlaps no segment, not the
    /// purgatory's image and no console page; the implementation vouches
    /// that the source is RAM it may read. Only where a rule can allow a
    /// Backup segment (not in the aarch64, x86_64 and riscv64 images).
    /// The default does nothing: for a platform with no physical memory
    /// to copy, a loader rehearsing the flow on its own buffers (the copy
    /// decides nothing). The purgatory's `Machine` implements it.
    #[cfg(not(target_os = "none"))]
    fn copy_low_memory(&mut self, dst: u64, len: u64) {
        let _ = (dst, len);
    }
}

/// Where to go after verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handoff {
    pub entry: u64,
    pub boot_data: u64,
    /// The range the purgatory modified (inside the boot-data segment),
    /// which the architecture code must clean to the point of coherency
    /// before the jump.
    pub written: Option<(u64, u64)>,
}

/// Why the purgatory refused to enter the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    Params(ParamError),
    DigestMismatch { index: usize, expected: [u8; 32], actual: [u8; 32] },
    Structure { index: usize, error: StructureError },
    Patch { kind: SegmentKind, error: PatchError },
}

/// How console lines name the boot data of a kind.
pub fn boot_data_name(kind: SegmentKind) -> &'static str {
    match kind {
        SegmentKind::BootParams => "boot_params",
        _ => "dtb",
    }
}

fn kind_name(seg: &SegmentDesc) -> &'static str {
    SegmentKind::from_raw(seg.kind).map_or("?", SegmentKind::name)
}

/// A per-segment line: `template` with index, kind, mem and len, then
/// `extra` if the template has a place for it.
fn segment_line<C: Console>(con: &mut C, template: &str, index: usize, seg: &SegmentDesc, extra: Arg) {
    // A template without a fifth placeholder never prints `extra`.
    let args = [Arg::Dec(index as u64), Arg::Text(kind_name(seg)), Arg::Hex(seg.mem), Arg::Hex(seg.len), extra];
    con.line(template, &args);
}

/// Verify every segment, in input order. Returns the bytes hashed, or the
/// first failure.
pub fn verify_segments<P: Platform>(params: &PurgatoryParams, p: &mut P) -> Result<u64, Failure> {
    let (compress, _) = p.digest_engine();
    let mut hashed = 0u64;
    for (index, seg) in params.active_segments().iter().enumerate() {
        // One line per segment, printed in one place.
        let line = if seg.is_excluded() {
            // Exclusion is per input segment: the kernel may rewrite this
            // one after load (crash hotplug), so check its shape instead.
            let kind = SegmentKind::from_raw(seg.kind).unwrap_or(SegmentKind::Other);
            if let Err(error) = check_excluded(kind, p.memory(seg.mem, seg.len)) {
                return Err(Failure::Structure { index, error });
            }
            template!(lines::EXCLUDED_OK)
        } else if params.flags & PARAM_FLAG_SKIP_DIGESTS != 0 {
            template!(lines::NOT_HASHED)
        } else {
            let actual = digest(p.memory(seg.mem, seg.len), compress);
            hashed = hashed.saturating_add(seg.len);
            if actual != seg.sha256 {
                return Err(Failure::DigestMismatch { index, expected: seg.sha256, actual });
            }
            template!(lines::SEGMENT_OK)
        };
        segment_line(p.console(), line, index, seg, Arg::Dec(0));
    }
    Ok(hashed)
}

/// The whole flow. On `Ok`, the caller enters the kernel; on `Err`, the
/// failure has already been reported and the caller must not.
pub fn run<P: Platform>(params: &PurgatoryParams, rules: &Rules, p: &mut P) -> Result<Handoff, Failure> {
    let result = run_inner(params, rules, p);
    if let Err(failure) = &result {
        report_failure(params, p.console(), failure);
    }
    result
}

fn run_inner<P: Platform>(params: &PurgatoryParams, rules: &Rules, p: &mut P) -> Result<Handoff, Failure> {
    validate(params, rules).map_err(Failure::Params)?;
    let (_, engine) = p.digest_engine();
    let start = p.now_us();
    let hashed = verify_segments(params, p)?;
    let elapsed = p.now_us().saturating_sub(start);
    if params.flags & PARAM_FLAG_SKIP_DIGESTS != 0 {
        p.console().line(template!(lines::SKIPPED), &[]);
    }
    let summary = [Arg::Dec(params.nr_segments as u64), Arg::Dec(hashed), Arg::Text(engine), Arg::Dec(elapsed)];
    p.console().line(template!(lines::VERIFIED), &summary);
    // Verify, back up, then patch: kexec-tools' purgatory/purgatory.c
    // `purgatory` (verify_sha256_digest, then post_verification_setup_arch:
    // the backup) and v2wrap.S (boot_cpuid_phys, run_at_load after it).
    #[cfg(not(target_os = "none"))]
    copy_backup(params, rules, p);
    let written = patch_boot_data(params, rules, p)?;
    Ok(Handoff { entry: params.kernel_entry, boot_data: params.boot_data, written })
}

/// ppc64le kdump: physical `[0, len)` into the Backup segment, once every
/// segment (the backup's zeros included: a region written since the load
/// fails its digest) has been verified, as kexec-tools' purgatory does
/// (purgatory/arch/ppc64/crashdump_backup.c `crashdump_backup_memory`:
/// `memcpy(backup_start, 0, BACKUP_SRC_SIZE)`). The capture kernel then
/// overwrites `[0x100, __end_interrupts)` with its exception vectors
/// (head_64.S `__after_prom_start`), and the elfcorehdr's PT_LOAD for
/// `[0, len)` points at the copy (`p_offset` = the backup's address).
#[cfg(not(target_os = "none"))]
fn copy_backup<P: Platform>(params: &PurgatoryParams, rules: &Rules, p: &mut P) {
    if !rules.backup {
        return;
    }
    // validate() allowed at most one, its source clear of every segment,
    // the image and the console; verify_segments refused it excluded.
    let Some(seg) = params.active_segments().iter().find(|s| s.kind == SegmentKind::Backup as u32) else {
        return;
    };
    p.copy_low_memory(seg.mem, seg.len);
    p.console().line(template!(lines::BACKUP_COPIED), &[Arg::Hex(seg.len), Arg::Hex(seg.mem)]);
}

/// Refresh seeds / set the boot CPU in the boot data, in place, if asked.
/// Writes only inside the boot-data segment `validate` accepted, from
/// `boot_data` to its end. Returns the range written.
fn patch_boot_data<P: Platform>(
    params: &PurgatoryParams,
    rules: &Rules,
    p: &mut P,
) -> Result<Option<(u64, u64)>, Failure> {
    if params.flags & (PARAM_FLAG_REFRESH_SEEDS | PARAM_FLAG_SET_BOOT_CPU) == 0 {
        return Ok(None);
    }
    let Some(index) = boot_data_segment(params, rules).map_err(Failure::Params)? else {
        return Ok(None);
    };
    let Some(seg) = params.active_segments().get(index) else {
        return Ok(None);
    };
    let at = params.boot_data;
    // validate() proved seg.mem <= at < seg.mem + seg.len without wrapping.
    let len = seg.len.saturating_sub(at.saturating_sub(seg.mem));
    let (compress, _) = p.digest_engine();
    let cpu = p.boot_cpu_id();
    // Borrow the entropy source separately from memory.
    let pool: [Option<u64>; 8] = core::array::from_fn(|_| p.entropy());
    let mut next = pool.iter();
    let mut entropy = || next.next().copied().flatten();
    let refresh = params.flags & PARAM_FLAG_REFRESH_SEEDS != 0;
    let kind = rules.boot_data_kind;
    let blob = p.memory(at, len);
    match kind {
        SegmentKind::BootParams => {
            // x86: the seed lives in a setup_data node of boot_params.
            let r = if refresh {
                crate::setup_data::refresh_rng_seeds(blob, at, compress, &mut entropy)
            } else {
                Default::default()
            };
            let counts = [Arg::Dec(r.refreshed as u64), Arg::Dec(r.kept as u64)];
            p.console().line(template!(lines::BOOT_PARAMS_PATCHED), &counts);
        }
        _ => {
            let mut seeds = SeedReport::default();
            if refresh {
                seeds = refresh_seeds(blob, compress, &mut entropy).map_err(|error| Failure::Patch { kind, error })?;
            }
            if params.flags & PARAM_FLAG_SET_BOOT_CPU != 0 {
                set_boot_cpuid(blob, cpu).map_err(|error| Failure::Patch { kind, error })?;
            }
            let report = [Arg::Dec(seeds.refreshed as u64), Arg::Dec(seeds.kept as u64), Arg::Hex(cpu as u64)];
            p.console().line(template!(lines::DTB_PATCHED), &report);
        }
    }
    Ok(Some((at, len)))
}

/// Print which segment failed and why, then that the kernel is not
/// entered. Nothing else is printed after this but the failure policy's
/// "resetting"/"halted" lines.
pub fn report_failure<C: Console>(params: &PurgatoryParams, con: &mut C, failure: &Failure) {
    let seg = |i: usize| params.active_segments().get(i).unwrap_or(&SegmentDesc::EMPTY);
    // By reference: a copy of the digests would be byte loads and stores
    // on targets built with strict alignment.
    match failure {
        Failure::Params(e) => {
            let (template, args) = e.reason();
            con.line(template!(lines::BAD_PARAMS), &[Arg::Sub(&(template, &args))]);
        }
        Failure::DigestMismatch { index, expected, actual } => {
            segment_line(con, template!(lines::DIGEST_MISMATCH), *index, seg(*index), Arg::Dec(0));
            con.line(template!(lines::DIGEST_EXPECTED), &[Arg::HexBytes(expected)]);
            con.line(template!(lines::DIGEST_ACTUAL), &[Arg::HexBytes(actual)]);
        }
        Failure::Structure { index, error } => {
            segment_line(con, template!(lines::MALFORMED), *index, seg(*index), Arg::Text(error.describe()));
        }
        Failure::Patch { kind, error } => {
            con.line(template!(lines::PATCH_FAILED), &[Arg::Text(boot_data_name(*kind)), Arg::Text(error.describe())]);
        }
    }
    con.line(template!(lines::NOT_ENTERING), &[]);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::abi::{PARAM_FLAG_DEBUG_SOFT_SHA256, SEGMENT_FLAG_EXCLUDED};
    use crate::fdt_patch::{boot_cpuid, find_seed_spans};
    use crate::report::tests::TextConsole;
    use crate::sha256::compress_portable;
    use sha2::{Digest, Sha256};

    /// The purgatory "runs" at low addresses no host heap buffer uses.
    pub(crate) const RULES: Rules = Rules::aarch64(MemSpan::new(0x10_0000, 0x2_0000));

    /// Host memory standing in for physical memory: each segment is a
    /// buffer, its "physical address" is the buffer's address.
    pub(crate) struct HostPlatform {
        pub(crate) console: TextConsole,
        pub(crate) buffers: Vec<Vec<u8>>,
        pub(crate) entropy: Vec<u64>,
        /// Physical memory from address 0 (no host buffer lives there),
        /// what `copy_low_memory` copies from.
        pub(crate) low: Vec<u8>,
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
        fn copy_low_memory(&mut self, dst: u64, len: u64) {
            let source = self.low.get(..len as usize).expect("low memory covers the backup's source").to_vec();
            self.memory(dst, len).copy_from_slice(&source);
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
    pub(crate) fn setup() -> (PurgatoryParams, HostPlatform) {
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
        let entropy = vec![1, 2, 3, 4, 5, 6, 7, 8];
        let plat = HostPlatform { console: TextConsole::default(), buffers, entropy, low: Vec::new() };
        (p, plat)
    }

    #[test]
    fn all_good_hands_off_to_kernel_with_dtb() {
        let (mut params, mut plat) = setup();
        params.flags = PARAM_FLAG_REFRESH_SEEDS | PARAM_FLAG_SET_BOOT_CPU;
        let h = run(&params, &RULES, &mut plat).unwrap();
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
        run(&params, &RULES, &mut plat).unwrap();
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
                let err = run(&params, &RULES, &mut plat).unwrap_err();
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
            run(&params, &RULES, &mut plat).unwrap();
            let idx = if move_first { 0 } else { 3 };
            assert!(plat.console.0.contains(&format!("segment {idx} (elfcorehdr)")), "{}", plat.console.0);
            assert!(plat.console.0.contains("excluded, structure ok"));
            // A rewrite of a non-excluded segment is still caught.
            let (mut params, mut plat) = setup();
            params.segments[3].flags = SEGMENT_FLAG_EXCLUDED;
            plat.buffers[1][5] ^= 1;
            assert!(matches!(run(&params, &RULES, &mut plat), Err(Failure::DigestMismatch { index: 1, .. })));
        }
    }

    #[test]
    fn excluded_segments_are_structure_checked() {
        let (mut params, mut plat) = setup();
        params.segments[2].flags = SEGMENT_FLAG_EXCLUDED;
        plat.buffers[2][3] = 0; // FDT magic
        assert_eq!(
            run(&params, &RULES, &mut plat),
            Err(Failure::Structure { index: 2, error: StructureError::Fdt(crate::fdt::FdtError::Magic) })
        );
        let (mut params, mut plat) = setup();
        params.segments[0].flags = SEGMENT_FLAG_EXCLUDED;
        assert_eq!(
            run(&params, &RULES, &mut plat),
            Err(Failure::Structure { index: 0, error: StructureError::KindNotExcludable })
        );
    }

    #[test]
    fn a_refused_block_is_reported_with_its_reason() {
        let (mut params, mut plat) = setup();
        params.segments[1].len = 0;
        assert_eq!(
            run(&params, &RULES, &mut plat),
            Err(Failure::Params(ParamError::Segment(1, SegmentRule::ZeroLength)))
        );
        assert_eq!(
            plat.console.0,
            "purgatory: REFUSED: bad parameter block: segment 1: length is zero\n\
             purgatory: not entering the kernel\n"
        );
    }

    #[test]
    fn console_lines_are_the_templates_filled_in() {
        let (mut params, mut plat) = setup();
        params.flags = PARAM_FLAG_SET_BOOT_CPU;
        run(&params, &RULES, &mut plat).unwrap();
        let s = &params.segments;
        let want = [
            format!("purgatory: segment 0 (kernel) {:#x}+0x2000 sha256 ok", s[0].mem),
            format!("purgatory: segment 1 (initrd) {:#x}+0x4e20 sha256 ok", s[1].mem),
            format!("purgatory: segment 2 (dtb) {:#x}+0x1000 sha256 ok", s[2].mem),
            format!("purgatory: segment 3 (elfcorehdr) {:#x}+0xb0 sha256 ok", s[3].mem),
            "purgatory: verified 4 segments, 32464 bytes hashed with portable in 0 us".into(),
            "purgatory: dtb: seeds refreshed 0, kept 0; boot cpu 0x101".into(),
        ];
        assert_eq!(plat.console.0.lines().collect::<Vec<_>>(), want);
    }

    #[test]
    fn the_patcher_writes_only_the_boot_data_segment_from_boot_data_on() {
        // The DTB starts 0x100 into its segment: the bytes before it and
        // every other segment stay as loaded.
        let (mut params, mut plat) = setup();
        let mut dtb = vec![0x5a; 0x100];
        dtb.extend_from_slice(&test_dtb());
        plat.buffers[2] = dtb;
        let b = &plat.buffers[2];
        params.segments[2].mem = b.as_ptr() as u64;
        params.segments[2].len = b.len() as u64;
        params.segments[2].sha256 = Sha256::digest(b).into();
        params.boot_data = params.segments[2].mem + 0x100;
        params.flags = PARAM_FLAG_REFRESH_SEEDS | PARAM_FLAG_SET_BOOT_CPU;
        let before = plat.buffers.clone();
        let h = run(&params, &RULES, &mut plat).unwrap();
        assert_eq!(h.written, Some((params.boot_data, 4096)));
        assert_eq!(&plat.buffers[2][..0x100], &before[2][..0x100]);
        assert_eq!(boot_cpuid(&plat.buffers[2][0x100..]), Some(0x101));
        for i in [0, 1, 3] {
            assert_eq!(plat.buffers[i], before[i], "segment {i} was written");
        }
    }

    #[test]
    fn x86_rules_patch_the_boot_params_segment() {
        let (mut params, mut plat) = setup();
        params.segments[2].kind = SegmentKind::BootParams as u32;
        params.flags = PARAM_FLAG_REFRESH_SEEDS;
        let x86 = Rules::x86_64(RULES.own_image);
        let h = run(&params, &x86, &mut plat).unwrap();
        assert_eq!(h.written, Some((params.boot_data, 4096)));
        assert!(plat.console.0.contains("boot_params: rng seeds refreshed 0, kept 0"), "{}", plat.console.0);
        // The same block under aarch64's rules: boot data must be a DTB.
        let (mut params, mut plat) = setup();
        params.segments[2].kind = SegmentKind::BootParams as u32;
        let err = ParamError::BootDataNotInSegment(params.boot_data, SegmentKind::Dtb);
        assert_eq!(run(&params, &RULES, &mut plat), Err(Failure::Params(err)));
    }

    #[test]
    fn skip_digests_hashes_nothing_but_still_checks_structure() {
        let (mut params, mut plat) = setup();
        params.flags = PARAM_FLAG_SKIP_DIGESTS;
        plat.buffers[1][0] ^= 1;
        assert!(run(&params, &RULES, &mut plat).is_ok());
        assert!(plat.console.0.contains("verified 4 segments, 0 bytes hashed"), "{}", plat.console.0);
        assert!(plat.console.0.contains("verification skipped"));
        params.segments[3].flags = SEGMENT_FLAG_EXCLUDED;
        plat.buffers[3][0] = 0;
        assert!(matches!(run(&params, &RULES, &mut plat), Err(Failure::Structure { index: 3, .. })));
    }

    /// ppc64le's rules, the purgatory "running" where `RULES` says.
    const PPC: Rules = Rules::ppc64le(RULES.own_image);

    /// The standard block plus a zero-filled 64 KiB backup segment (index
    /// 4, hashed as zeros as kexec-tools hashes it) and low memory that is
    /// anything but zeros.
    fn with_backup() -> (PurgatoryParams, HostPlatform) {
        let (mut params, mut plat) = setup();
        plat.buffers.push(vec![0; 0x10000]);
        let b = &plat.buffers[4];
        params.segments[4] = SegmentDesc {
            mem: b.as_ptr() as u64,
            len: b.len() as u64,
            sha256: Sha256::digest(b).into(),
            kind: SegmentKind::Backup as u32,
            flags: 0,
        };
        params.nr_segments = 5;
        plat.low = (0..0x1_0000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        (params, plat)
    }

    #[test]
    fn the_backup_gets_low_memory_after_verification_and_before_the_patch() {
        let (mut params, mut plat) = with_backup();
        params.flags = PARAM_FLAG_SET_BOOT_CPU;
        run(&params, &PPC, &mut plat).unwrap();
        assert_eq!(plat.buffers[4], plat.low, "the backup is physical [0, 0x10000)");
        let lines: Vec<&str> = plat.console.0.lines().collect();
        let at = params.segments[4].mem;
        assert_eq!(lines[4], format!("purgatory: segment 4 (backup) {at:#x}+0x10000 sha256 ok"));
        assert!(lines[5].starts_with("purgatory: verified 5 segments, 98000 bytes hashed"), "{}", lines[5]);
        assert_eq!(lines[6], format!("purgatory: backup 0x0+0x10000 copied to {at:#x}"));
        assert_eq!(lines[7], "purgatory: dtb: seeds refreshed 0, kept 0; boot cpu 0x101");
        assert_eq!(lines.len(), 8);
    }

    #[test]
    fn a_written_backup_segment_is_refused_and_nothing_is_copied() {
        // Anything but the loader's zeros when the purgatory runs: the
        // digest names it, the copy never happens, the kernel is not entered.
        let (params, mut plat) = with_backup();
        plat.buffers[4][0x8000] = 1;
        let err = run(&params, &PPC, &mut plat).unwrap_err();
        assert!(matches!(err, Failure::DigestMismatch { index: 4, .. }), "{err:?}");
        assert!(plat.buffers[4].iter().enumerate().all(|(i, &b)| b == (i == 0x8000) as u8), "the copy happened");
        assert!(plat.console.0.contains("REFUSED: segment 4 (backup) "), "{}", plat.console.0);
        assert!(!plat.console.0.contains("purgatory: backup "), "{}", plat.console.0);
        assert!(plat.console.0.ends_with("not entering the kernel\n"));
    }

    #[test]
    fn an_excluded_backup_segment_is_refused_before_the_copy() {
        // Unhashed, its zeros would prove nothing: only dtb and elfcorehdr
        // segments may be excluded (checks::check_excluded).
        let (mut params, mut plat) = with_backup();
        params.segments[4].flags = SEGMENT_FLAG_EXCLUDED;
        assert_eq!(
            run(&params, &PPC, &mut plat),
            Err(Failure::Structure { index: 4, error: StructureError::KindNotExcludable })
        );
        assert!(plat.buffers[4].iter().all(|&b| b == 0), "the copy happened");
        assert!(
            plat.console.0.contains("(backup) ") && plat.console.0.contains("only dtb and elfcorehdr"),
            "{}",
            plat.console.0
        );
    }

    #[test]
    fn only_ppc64le_takes_a_backup_segment() {
        for rules in [RULES, Rules::x86_64(RULES.own_image), Rules::riscv64(RULES.own_image)] {
            let (mut params, mut plat) = with_backup();
            if rules.boot_data_kind == SegmentKind::BootParams {
                params.segments[2].kind = SegmentKind::BootParams as u32;
            }
            assert_eq!(run(&params, &rules, &mut plat), Err(Failure::Params(ParamError::BackupNotHere(4))));
            assert!(plat.buffers[4].iter().all(|&b| b == 0), "copied under {rules:?}");
            assert!(
                plat.console.0.contains(
                    "bad parameter block: segment 4: a backup segment, but this architecture's capture kernel needs none"
                ),
                "{}",
                plat.console.0
            );
        }
        // Without one, ppc64le copies nothing and says nothing of it.
        let (params, mut plat) = setup();
        run(&params, &PPC, &mut plat).unwrap();
        assert!(!plat.console.0.contains("backup"), "{}", plat.console.0);
    }

    #[test]
    fn debug_flags_are_known() {
        let (mut params, mut plat) = setup();
        params.flags = PARAM_FLAG_DEBUG_SOFT_SHA256;
        assert!(run(&params, &RULES, &mut plat).is_ok());
    }
}
