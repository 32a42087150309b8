//! Segment layout for an arm64 kexec_load image: where the kernel, initrd,
//! DTB and purgatory go, their digests, and the purgatory's parameter block.
//! Every rule is checked here, before any system call.

use std::fmt;

use kexec_purgatory::abi::{PurgatoryParams, SegmentDesc, SegmentKind, MAX_SEGMENTS, SEGMENT_FLAG_EXCLUDED};
use sha2::{Digest, Sha256};

use crate::layout::{align_down, align_up, FreeMap, Range, PAGE};
use crate::purgatory_image::PurgatoryImage;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// booting.rst §4: the Image goes text_offset bytes from a 2 MiB aligned base.
pub const KERNEL_ALIGN: u64 = 2 * MIB;
/// booting.rst §2: "the dtb must not exceed 2 megabytes in size".
pub const DTB_MAX: u64 = 2 * MIB;
/// kexec-tools' arm64 rule (kexec-arm64.c): initrd and DTB above the kernel,
/// below the end of the 32 GiB window that starts at the 1 GiB-aligned
/// base of the kernel, so the kernel's early mappings reach them.
pub const WINDOW: u64 = 32 * GIB;

/// What the kernel needs, from its image header.
#[derive(Debug, Clone)]
pub struct KernelInput {
    /// The raw (decompressed) Image.
    pub image: Vec<u8>,
    pub text_offset: u64,
    /// Bytes from the load address the kernel occupies, bss included.
    pub image_size: u64,
    /// Header flags bit 3: the kernel may sit anywhere in RAM (else as
    /// close to the start of DRAM as possible, booting.rst §4).
    pub anywhere: bool,
    /// Where the image came from, for the plan table.
    pub source: String,
}

/// A segment in the final image, in kexec_load order.
#[derive(Clone)]
pub struct PlannedSegment {
    /// None for the purgatory itself.
    pub kind: Option<SegmentKind>,
    pub mem: u64,
    pub memsz: u64,
    /// Bytes from `mem` the purgatory hashes (<= memsz). The rest is
    /// scratch the kernel needs mapped but whose contents do not matter
    /// (x86: the decompressor's init_size room).
    pub digest_len: u64,
    pub bytes: Vec<u8>,
    /// Digest of `bytes` zero-padded to `digest_len`.
    pub sha256: [u8; 32],
    pub excluded: bool,
    /// Where the bytes came from, for the plan table.
    pub source: String,
}

impl fmt::Debug for PlannedSegment {
    // The bytes are megabytes: show their length, not their contents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlannedSegment")
            .field("kind", &self.kind_name())
            .field("range", &self.range().to_string())
            .field("bytes", &self.bytes.len())
            .field("excluded", &self.excluded)
            .field("source", &self.source)
            .finish()
    }
}

impl PlannedSegment {
    pub fn range(&self) -> Range {
        Range::new(self.mem, self.mem + self.memsz)
    }

    pub fn kind_name(&self) -> &'static str {
        self.kind.map_or("purgatory", SegmentKind::name)
    }
}

/// The result: segments, entry point, parameter block and notes.
#[derive(Debug, Clone)]
pub struct Plan {
    pub segments: Vec<PlannedSegment>,
    /// kexec entry: the purgatory's entry point.
    pub entry: u64,
    pub kernel_entry: u64,
    pub dtb_addr: u64,
    pub params: PurgatoryParams,
    /// Things the user should know (memory skipped and why).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// No hole for a segment.
    NoRoom {
        what: &'static str,
        size: u64,
        rule: String,
    },
    DtbTooLarge(u64),
    TooManySegments(usize),
    KernelSize {
        image_len: u64,
        image_size: u64,
    },
    /// A placed segment overlaps another or leaves usable memory.
    Internal(String),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NoRoom { what, size, rule } => {
                write!(f, "no room for the {what} ({size} bytes): {rule}")
            }
            PlanError::DtbTooLarge(n) => {
                write!(f, "DTB is {n} bytes; Documentation/arch/arm64/booting.rst allows at most 2 MiB")
            }
            PlanError::TooManySegments(n) => write!(f, "{n} segments; kexec_load takes at most 16"),
            PlanError::KernelSize { image_len, image_size } => write!(
                f,
                "kernel header image_size ({image_size:#x}) is smaller than the image file ({image_len:#x} bytes)"
            ),
            PlanError::Internal(s) => write!(f, "layout check failed: {s}"),
        }
    }
}

impl std::error::Error for PlanError {}

/// A generated segment placed between the initrd and the DTB (kdump's
/// elfcorehdr).
#[derive(Debug, Clone)]
pub struct ExtraSegment {
    pub kind: SegmentKind,
    pub bytes: Vec<u8>,
    /// At least `bytes.len()`; more when the kernel may grow it in place.
    pub memsz: u64,
    pub excluded: bool,
    pub source: String,
}

/// Where the segments the DTB refers to ended up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placed {
    /// The initrd's bytes (not page-rounded).
    pub initrd: Option<Range>,
    /// Each extra segment's full memsz range, in order.
    pub extras: Vec<Range>,
}

/// Options that shape the parameter block.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Base parameter block (console, flags, failure action) to complete.
    pub params: PurgatoryParams,
    /// Mark the DTB segment excluded (the kernel may rewrite it).
    pub exclude_dtb: bool,
    /// Place segments from the top of memory down. For a normal kexec_load
    /// the kernel can then usually allocate each destination page directly
    /// (high memory is rarely in use), so nothing is copied at reboot; low
    /// memory holds the running kernel and would be copied page by page in
    /// relocate_kernel. Crash loads go bottom-up into the reservation.
    pub top_down: bool,
}

fn page_round(n: u64) -> u64 {
    align_up(n.max(1), PAGE).unwrap_or(u64::MAX)
}

fn segment(kind: Option<SegmentKind>, mem: u64, memsz: u64, bytes: Vec<u8>, source: String) -> PlannedSegment {
    PlannedSegment::new(kind, mem, memsz, bytes, source)
}

impl PlannedSegment {
    /// A segment whose digest covers all of `memsz`.
    pub fn new(kind: Option<SegmentKind>, mem: u64, memsz: u64, bytes: Vec<u8>, source: String) -> Self {
        Self::with_scratch(kind, mem, memsz, memsz, bytes, source)
    }

    /// A segment hashed over its first `digest_len` bytes, with scratch up
    /// to `memsz`.
    pub fn with_scratch(
        kind: Option<SegmentKind>,
        mem: u64,
        digest_len: u64,
        memsz: u64,
        bytes: Vec<u8>,
        source: String,
    ) -> Self {
        let mut h = Sha256::new();
        h.update(&bytes);
        // memsz semantics: the kernel zero-fills past bufsz, the digest
        // covers those zeros up to digest_len.
        let zeros = [0u8; 4096];
        let mut left = digest_len.saturating_sub(bytes.len() as u64);
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            h.update(&zeros[..n]);
            left -= n as u64;
        }
        PlannedSegment { kind, mem, memsz, digest_len, bytes, sha256: h.finalize().into(), excluded: false, source }
    }
}

/// Lay out an arm64 image in `free` memory. `make_dtb` receives the
/// initrd's final range and returns the DTB to hand over (it must fit the
/// placement it is given no more than `DTB_MAX`).
pub fn plan_arm64(
    kernel: KernelInput,
    initrd: Option<(Vec<u8>, String)>,
    extras: Vec<ExtraSegment>,
    make_dtb: &mut dyn FnMut(&Placed) -> Result<Vec<u8>, String>,
    free: &FreeMap,
    purgatory: &PurgatoryImage,
    opts: &PlanOptions,
) -> Result<Plan, PlanError> {
    let mut free = free.clone();
    let image_len = kernel.image.len() as u64;
    if kernel.image_size < image_len {
        return Err(PlanError::KernelSize { image_len, image_size: kernel.image_size });
    }

    // Kernel: 2 MiB aligned base, + text_offset, image_size bytes free.
    let kernel_span = page_round(kernel.text_offset + kernel.image_size);
    let top_down = opts.top_down && kernel.anywhere;
    let found = if top_down {
        free.find_highest(kernel_span, KERNEL_ALIGN, 0, u64::MAX)
    } else {
        free.find(kernel_span, KERNEL_ALIGN, 0, u64::MAX)
    };
    let base = found.ok_or_else(|| PlanError::NoRoom {
        what: "kernel",
        size: kernel_span,
        rule: "needs a 2 MiB aligned base with text_offset + image_size bytes free (booting.rst §4)".into(),
    })?;
    free.remove(Range::new(base, base + kernel_span));
    let kernel_mem = base + kernel.text_offset;
    let kernel_memsz = page_round(kernel.image_size);
    let mut segments = vec![segment(Some(SegmentKind::Kernel), kernel_mem, kernel_memsz, kernel.image, kernel.source)];

    // Initrd and DTB: inside the kernel's 32 GiB window; bottom-up they go
    // above the kernel, as kexec-tools does.
    let window_min = if top_down { align_down(base, GIB) } else { base + kernel_span };
    let window_max = align_down(base, GIB).saturating_add(WINDOW);
    let window_rule = format!("must lie between {window_min:#x} and {window_max:#x} (the 32 GiB window of the kernel)");
    let take = |free: &mut FreeMap, size: u64, min: u64, max: u64| {
        if top_down {
            free.take_highest(size, PAGE, min, max)
        } else {
            free.take(size, PAGE, min, max)
        }
    };
    let mut initrd_range = None;
    if let Some((bytes, source)) = initrd {
        let memsz = page_round(bytes.len() as u64);
        let r = take(&mut free, memsz, window_min, window_max).ok_or_else(|| PlanError::NoRoom {
            what: "initrd",
            size: memsz,
            rule: window_rule.clone(),
        })?;
        initrd_range = Some(Range::new(r.start, r.start + bytes.len() as u64));
        segments.push(segment(Some(SegmentKind::Initrd), r.start, memsz, bytes, source));
    }

    let mut placed = Placed { initrd: initrd_range, extras: Vec::new() };
    for extra in extras {
        let memsz = page_round(extra.memsz.max(extra.bytes.len() as u64));
        let r = take(&mut free, memsz, window_min, window_max).ok_or_else(|| PlanError::NoRoom {
            what: extra.kind.name(),
            size: memsz,
            rule: window_rule.clone(),
        })?;
        placed.extras.push(r);
        let mut seg = segment(Some(extra.kind), r.start, memsz, extra.bytes, extra.source);
        seg.excluded = extra.excluded;
        segments.push(seg);
    }

    let dtb = make_dtb(&placed).map_err(PlanError::Internal)?;
    if dtb.len() as u64 > DTB_MAX {
        return Err(PlanError::DtbTooLarge(dtb.len() as u64));
    }
    let dtb_memsz = page_round(dtb.len() as u64);
    let dtb_r = take(&mut free, dtb_memsz, window_min, window_max).ok_or_else(|| PlanError::NoRoom {
        what: "DTB",
        size: dtb_memsz,
        rule: window_rule.clone(),
    })?;
    let mut dtb_seg = segment(Some(SegmentKind::Dtb), dtb_r.start, dtb_memsz, dtb, "generated DTB".into());
    dtb_seg.excluded = opts.exclude_dtb;
    segments.push(dtb_seg);

    // Purgatory: anywhere 4 KiB aligned; prefer the same window.
    let purg_memsz = purgatory.mem_size();
    let purg_r = take(&mut free, purg_memsz, window_min, window_max)
        .or_else(|| take(&mut free, purg_memsz, 0, u64::MAX))
        .ok_or_else(|| PlanError::NoRoom {
            what: "purgatory",
            size: purg_memsz,
            rule: "needs 4 KiB aligned RAM".into(),
        })?;

    // Parameter block: every segment but the purgatory, in kexec order.
    let mut params = opts.params;
    params.kernel_entry = kernel_mem;
    params.boot_data = dtb_r.start;
    append_purgatory(&mut segments, &mut params, purgatory, purg_r.start);

    let plan = Plan {
        entry: purg_r.start + purgatory.header.entry_offset,
        kernel_entry: kernel_mem,
        dtb_addr: dtb_r.start,
        segments,
        params,
        notes: Vec::new(),
    };
    check(&plan)?;
    Ok(plan)
}

/// Describe `segments` (in kexec order) in `params`, then append the
/// purgatory carrying that block at `at`. The purgatory does not list
/// itself: it cannot hash the image it is running from.
pub fn append_purgatory(
    segments: &mut Vec<PlannedSegment>,
    params: &mut PurgatoryParams,
    purgatory: &PurgatoryImage,
    at: u64,
) {
    params.nr_segments = segments.len() as u32;
    for (d, s) in params.segments.iter_mut().zip(segments.iter()) {
        *d = SegmentDesc {
            mem: s.mem,
            len: s.digest_len,
            sha256: s.sha256,
            kind: s.kind.map_or(0, |k| k as u32),
            flags: if s.excluded { SEGMENT_FLAG_EXCLUDED } else { 0 },
        };
    }
    let bytes = purgatory.with_params(params);
    segments.push(segment(None, at, purgatory.mem_size(), bytes, "embedded purgatory".into()));
}

/// The rules kexec_load enforces (kernel/kexec_core.c
/// sanity_check_segment_list) and ours, checked before the call.
pub fn check(plan: &Plan) -> Result<(), PlanError> {
    if plan.segments.len() > MAX_SEGMENTS {
        return Err(PlanError::TooManySegments(plan.segments.len()));
    }
    for (i, s) in plan.segments.iter().enumerate() {
        if s.mem % PAGE != 0 || s.memsz % PAGE != 0 {
            return Err(PlanError::Internal(format!("segment {i} ({}) is not page aligned", s.kind_name())));
        }
        if (s.bytes.len() as u64) > s.digest_len || s.digest_len > s.memsz {
            return Err(PlanError::Internal(format!(
                "segment {i} ({}) has more bytes than it hashes or holds",
                s.kind_name()
            )));
        }
        for (j, t) in plan.segments.iter().enumerate().take(i) {
            if s.range().overlaps(&t.range()) {
                return Err(PlanError::Internal(format!(
                    "segment {i} ({}) {} overlaps segment {j} ({}) {}",
                    s.kind_name(),
                    s.range(),
                    t.kind_name(),
                    t.range()
                )));
            }
        }
    }
    let inside = |addr: u64| plan.segments.iter().any(|s| s.range().contains_range(&Range::new(addr, addr + 1)));
    if !inside(plan.entry) || !inside(plan.kernel_entry) || !inside(plan.dtb_addr) {
        return Err(PlanError::Internal("an entry point or the DTB lies outside the segments".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kexec_purgatory::abi::ARCH_AARCH64;

    fn purgatory() -> PurgatoryImage<'static> {
        PurgatoryImage::parse(crate::purgatory_image::AARCH64_FLAT, ARCH_AARCH64).unwrap()
    }

    fn kernel() -> KernelInput {
        KernelInput {
            image: vec![0x5a; 3 * 1024 * 1024 + 123],
            text_offset: 0,
            image_size: 4 * MIB + 0x800,
            anywhere: true,
            source: "Image".into(),
        }
    }

    fn opts() -> PlanOptions {
        PlanOptions { params: PurgatoryParams::new(), exclude_dtb: false, top_down: false }
    }

    fn ram() -> FreeMap {
        FreeMap::new(vec![Range::new(0x4000_0000, 0x8000_0000)])
    }

    #[test]
    fn arm64_layout_follows_booting_rst() {
        let initrd = Some((vec![1u8; 5000], "initrd.img".to_string()));
        let mut seen_initrd = None;
        let mut make_dtb = |p: &Placed| {
            seen_initrd = p.initrd;
            Ok(vec![0xd0; 3000])
        };
        let plan = plan_arm64(kernel(), initrd, Vec::new(), &mut make_dtb, &ram(), &purgatory(), &opts()).unwrap();
        let kinds: Vec<_> = plan.segments.iter().map(|s| s.kind_name()).collect();
        assert_eq!(kinds, ["kernel", "initrd", "dtb", "purgatory"]);
        let k = &plan.segments[0];
        assert_eq!(k.mem % KERNEL_ALIGN, 0);
        assert_eq!(k.memsz, 4 * MIB + PAGE, "image_size rounded to pages");
        let initrd = &plan.segments[1];
        assert!(initrd.mem >= k.mem + k.memsz);
        assert_eq!(seen_initrd, Some(Range::new(initrd.mem, initrd.mem + 5000)), "DTB gets the real initrd range");
        assert_eq!(plan.params.nr_segments, 3, "the purgatory does not list itself");
        assert_eq!(plan.params.segments[1].sha256, initrd.sha256);
        assert_eq!(plan.params.kernel_entry, k.mem);
        assert_eq!(plan.dtb_addr, plan.segments[2].mem);
        // The digest covers memsz: bytes, then zeros.
        let mut padded = vec![1u8; 5000];
        padded.resize(initrd.memsz as usize, 0);
        assert_eq!(initrd.sha256, <[u8; 32]>::from(Sha256::digest(&padded)));
        // The purgatory copy carries the same block.
        let p = plan.segments.last().unwrap();
        let off = purgatory().header.params_offset as usize;
        assert_eq!(&p.bytes[off..off + 1024], &plan.params.to_bytes()[..]);
    }

    #[test]
    fn text_offset_is_honoured() {
        let mut k = kernel();
        k.text_offset = 0x8_0000;
        let plan = plan_arm64(k, None, Vec::new(), &mut |_| Ok(vec![0; 100]), &ram(), &purgatory(), &opts()).unwrap();
        assert_eq!(plan.segments[0].mem % KERNEL_ALIGN, 0x8_0000);
    }

    #[test]
    fn holes_are_respected_and_errors_say_why() {
        // 0x4000_0000..0x4010_0000 is too small for the kernel.
        let free = FreeMap::new(vec![Range::new(0x4000_0000, 0x4010_0000), Range::new(0x4060_0000, 0x5000_0000)]);
        let plan =
            plan_arm64(kernel(), None, Vec::new(), &mut |_| Ok(vec![0; 100]), &free, &purgatory(), &opts()).unwrap();
        assert_eq!(plan.segments[0].mem, 0x4060_0000);
        for s in &plan.segments {
            assert!(free.covers(&s.range()), "{} outside free memory", s.kind_name());
        }
        let tiny = FreeMap::new(vec![Range::new(0x4000_0000, 0x4040_0000)]);
        let err = plan_arm64(kernel(), None, Vec::new(), &mut |_| Ok(vec![0; 100]), &tiny, &purgatory(), &opts())
            .unwrap_err();
        assert!(err.to_string().starts_with("no room for the kernel"), "{err}");
    }

    #[test]
    fn initrd_beyond_the_window_is_refused() {
        // Only memory far above the kernel's 32 GiB window is left for the initrd.
        let free = FreeMap::new(vec![Range::new(0x4000_0000, 0x4040_1000), Range::new(0x10_0000_0000, 0x10_1000_0000)]);
        let err = plan_arm64(
            kernel(),
            Some((vec![0; 100], "i".into())),
            Vec::new(),
            &mut |_| Ok(vec![0; 10]),
            &free,
            &purgatory(),
            &opts(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no room for the initrd"), "{err}");
        assert!(err.to_string().contains("32 GiB window"), "{err}");
    }

    #[test]
    fn extra_segments_sit_between_initrd_and_dtb_and_keep_their_flags() {
        let core = ExtraSegment {
            kind: SegmentKind::ElfCoreHdr,
            bytes: vec![0x7f; 300],
            memsz: 3 * PAGE + 1,
            excluded: true,
            source: "generated elfcorehdr".into(),
        };
        let mut seen = Placed::default();
        let plan = plan_arm64(
            kernel(),
            None,
            vec![core],
            &mut |p| {
                seen = p.clone();
                Ok(vec![0; 10])
            },
            &ram(),
            &purgatory(),
            &opts(),
        )
        .unwrap();
        let kinds: Vec<_> = plan.segments.iter().map(|s| s.kind_name()).collect();
        assert_eq!(kinds, ["kernel", "elfcorehdr", "dtb", "purgatory"]);
        assert_eq!(plan.segments[1].memsz, 4 * PAGE, "room for the kernel to grow it");
        assert_eq!(seen.extras, vec![plan.segments[1].range()], "the DTB learns where it went");
        assert_eq!(plan.params.segments[1].flags, SEGMENT_FLAG_EXCLUDED);
    }

    #[test]
    fn top_down_puts_everything_high_unless_the_kernel_must_sit_low() {
        let o = PlanOptions { top_down: true, ..opts() };
        let plan = plan_arm64(
            kernel(),
            Some((vec![1; 5000], "i".into())),
            Vec::new(),
            &mut |_| Ok(vec![0; 100]),
            &ram(),
            &purgatory(),
            &o,
        )
        .unwrap();
        let k = &plan.segments[0];
        assert_eq!(k.mem, 0x7fa0_0000, "highest 2 MiB aligned base with 4 MiB + 4 KiB free");
        for s in &plan.segments[1..] {
            assert!(s.mem >= 0x7000_0000, "{} placed low at {:#x}", s.kind_name(), s.mem);
        }
        let mut low = kernel();
        low.anywhere = false;
        let plan = plan_arm64(low, None, Vec::new(), &mut |_| Ok(vec![0; 100]), &ram(), &purgatory(), &o).unwrap();
        assert_eq!(plan.segments[0].mem, 0x4000_0000, "flags bit 3 clear: as low as possible");
    }

    #[test]
    fn oversized_dtb_is_refused() {
        let err = plan_arm64(kernel(), None, Vec::new(), &mut |_| Ok(vec![0; 3 << 20]), &ram(), &purgatory(), &opts())
            .unwrap_err();
        assert_eq!(err, PlanError::DtbTooLarge(3 << 20));
    }

    #[test]
    fn excluded_dtb_is_flagged_in_params() {
        let o = PlanOptions { exclude_dtb: true, ..opts() };
        let plan = plan_arm64(kernel(), None, Vec::new(), &mut |_| Ok(vec![0; 100]), &ram(), &purgatory(), &o).unwrap();
        let dtb = plan.params.segments[1];
        assert_eq!(dtb.kind, SegmentKind::Dtb as u32);
        assert_eq!(dtb.flags, SEGMENT_FLAG_EXCLUDED);
    }
}
