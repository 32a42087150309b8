//! The one placement primitive, in the spirit of the kernel's
//! `struct kexec_buf` and `kexec_add_buffer()` (include/linux/kexec.h,
//! kernel/kexec_file.c): a buffer asks for `memsz` bytes at an alignment
//! inside a window `[min, max)`, taken top-down or bottom-up from the free
//! map; the [`Layout`] records it as the next segment in kexec order. Every
//! architecture's planner is a short list of such requests.

use kexec_purgatory::abi::SegmentKind;

use crate::input::Blob;
use crate::plan::{PlanError, PlannedSegment};
use crate::range::{align_up, FreeMap, Range, PAGE};

/// Which end of the window a buffer is taken from (`kexec_buf.top_down`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Lowest address first.
    BottomUp,
    /// Highest address first.
    TopDown,
}

/// One buffer to place: what it holds and where it may go.
#[derive(Clone, Debug)]
pub struct KexecBuf {
    /// None only for the purgatory.
    pub kind: Option<SegmentKind>,
    pub data: Blob,
    /// Bytes of memory the segment occupies from its start (≥ the data;
    /// the kernel zero-fills past it). Rounded up to pages when placed.
    pub memsz: u64,
    /// Bytes reserved in front of the segment, inside the same aligned hole
    /// (arm64/riscv64 text_offset: the Image goes that far above an aligned
    /// base). A page multiple.
    pub lead: u64,
    /// Alignment of the hole's start: a power of two, at least a page.
    pub align: u64,
    /// The hole lies inside `[window.start, window.end)`.
    pub window: Range,
    pub order: Order,
    /// Why the window and alignment are what they are (the error says it).
    pub rule: String,
    /// Structure-checked instead of hashed by the purgatory (crash hotplug).
    pub excluded: bool,
    /// Where the bytes came from, for the plan.
    pub source: String,
}

impl KexecBuf {
    /// `data` as a segment of `kind`: page aligned, anywhere, bottom-up.
    pub fn new(kind: SegmentKind, data: Blob, source: impl Into<String>) -> Self {
        let memsz = data.len() as u64;
        KexecBuf {
            kind: Some(kind),
            data,
            memsz,
            lead: 0,
            align: PAGE,
            window: Range::ALL,
            order: Order::BottomUp,
            rule: "needs page-aligned free memory".into(),
            excluded: false,
            source: source.into(),
        }
    }

    /// The purgatory image (`mem_size` bytes of memory for its bss and stack).
    pub fn purgatory(data: Blob, mem_size: u64) -> Self {
        KexecBuf { kind: None, memsz: mem_size, ..KexecBuf::new(SegmentKind::Other, data, "embedded purgatory") }
    }

    pub fn memsz(mut self, memsz: u64) -> Self {
        self.memsz = memsz;
        self
    }

    pub fn lead(mut self, lead: u64) -> Self {
        self.lead = lead;
        self
    }

    pub fn align(mut self, align: u64) -> Self {
        self.align = align;
        self
    }

    /// Restrict to `window`, saying why.
    pub fn window(mut self, window: Range, rule: impl Into<String>) -> Self {
        self.window = window;
        self.rule = rule.into();
        self
    }

    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    pub fn excluded(mut self, excluded: bool) -> Self {
        self.excluded = excluded;
        self
    }

    fn what(&self) -> &'static str {
        self.kind.map_or("purgatory", SegmentKind::name)
    }

    /// Segment memsz (rounded to `page`, at least the data) and the size
    /// of the hole (lead + memsz); an error when they overflow.
    fn sizes(&self, page: u64) -> Result<(u64, u64), PlanError> {
        let too_big = || PlanError::NoRoom {
            what: self.what(),
            size: self.memsz,
            rule: "its size overflows the address space".into(),
        };
        let memsz = align_up(self.memsz.max(self.data.len() as u64).max(1), page).ok_or_else(too_big)?;
        let hole = self.lead.checked_add(memsz).ok_or_else(too_big)?;
        Ok((memsz, hole))
    }
}

/// Segments placed so far, in kexec order, and the memory still free.
#[derive(Clone, Debug)]
pub struct Layout {
    free: FreeMap,
    segments: Vec<PlannedSegment>,
    /// The running kernel's page size: every segment's mem and memsz are
    /// multiples of it (kernel/kexec_core.c sanity_check_segment_list).
    page: u64,
}

impl Layout {
    /// Placement into `free` for a kernel with `page`-byte pages (a power
    /// of two, at least 4 KiB).
    pub fn with_page(free: FreeMap, page: u64) -> Self {
        Layout { free, segments: Vec::new(), page: page.max(PAGE) }
    }

    /// The page size segments are aligned and sized to.
    pub fn page(&self) -> u64 {
        self.page
    }

    /// Where `buf` would go (the hole's range), without taking it.
    pub fn find(&self, buf: &KexecBuf) -> Option<Range> {
        let (_, hole) = buf.sizes(self.page).ok()?;
        if !buf.align.is_power_of_two() || buf.align < PAGE || !buf.lead.is_multiple_of(PAGE) {
            return None;
        }
        let align = buf.align.max(self.page);
        let (min, max) = (buf.window.start, buf.window.end);
        let at = match buf.order {
            Order::BottomUp => self.free.find(hole, align, min, max),
            Order::TopDown => self.free.find_highest(hole, align, min, max),
        }?;
        Some(Range::new(at, at + hole))
    }

    /// Place `buf` (kexec_add_buffer): take its hole from the free memory
    /// and append the segment. Returns the segment's range.
    pub fn add(&mut self, buf: KexecBuf) -> Result<Range, PlanError> {
        let (memsz, hole_len) = buf.sizes(self.page)?;
        if !buf.align.is_power_of_two() || buf.align < PAGE || !buf.lead.is_multiple_of(PAGE) {
            return Err(PlanError::Internal(format!(
                "{}: alignment {:#x} / lead {:#x} are not page multiples",
                buf.what(),
                buf.align,
                buf.lead
            )));
        }
        let hole = self.find(&buf).ok_or_else(|| PlanError::NoRoom {
            what: buf.what(),
            size: hole_len,
            rule: format!("{} ({:#x} aligned)", buf.rule, buf.align.max(self.page)),
        })?;
        self.free.remove(hole);
        let mem = hole.start + buf.lead;
        // The purgatory hashes the bytes and their zero padding to the page
        // end; the rest of memsz is room the kernel clears or does not read
        // (arm64 bss, x86 init_size) — hashing megabytes of zeros proves
        // nothing the kernel relies on. An excluded segment is checked
        // whole: the kernel may rewrite all of memsz (a crash-hotplug
        // elfcorehdr grows into it), and the purgatory's structure check
        // must see what it wrote.
        let digest_len =
            if buf.excluded { memsz } else { align_up(buf.data.len() as u64, PAGE).unwrap_or(memsz).min(memsz) };
        self.segments.push(PlannedSegment {
            kind: buf.kind,
            mem,
            memsz,
            digest_len,
            data: buf.data,
            sha256: [0; 32],
            excluded: buf.excluded,
            source: buf.source,
        });
        Ok(Range::new(mem, mem + memsz))
    }

    /// Memory still free (the tests check what `add` took).
    #[cfg(test)]
    pub fn free(&self) -> &FreeMap {
        &self.free
    }

    pub fn segments(&self) -> &[PlannedSegment] {
        &self.segments
    }

    /// Replace the bytes of segment `index` with `data` of the same length
    /// (the purgatory, once its parameter block is filled in).
    pub fn set_data(&mut self, index: usize, data: Blob) -> Result<(), PlanError> {
        let seg = self.segments.get_mut(index).ok_or_else(|| PlanError::Internal(format!("no segment {index}")))?;
        if seg.data.len() != data.len() {
            return Err(PlanError::Internal(format!("segment {index}: replacement changes its length")));
        }
        seg.data = data;
        Ok(())
    }

    pub fn into_segments(self) -> Vec<PlannedSegment> {
        self.segments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn blob(n: usize) -> Blob {
        Blob::new(vec![0xab; n])
    }

    fn ram() -> Layout {
        Layout::with_page(
            FreeMap::new(vec![Range::new(0x4000_0000, 0x4100_0000), Range::new(0x8000_0000, 0x8100_0000)]),
            PAGE,
        )
    }

    #[test]
    fn bottom_up_and_top_down_take_the_lowest_and_highest_hole() {
        let mut l = ram();
        let r = l.add(KexecBuf::new(SegmentKind::Initrd, blob(5000), "i")).unwrap();
        assert_eq!(r, Range::new(0x4000_0000, 0x4000_2000), "5000 bytes become two pages");
        let r = l.add(KexecBuf::new(SegmentKind::Dtb, blob(100), "d").order(Order::TopDown)).unwrap();
        assert_eq!(r, Range::new(0x80ff_f000, 0x8100_0000));
        let s = &l.segments()[0];
        assert_eq!((s.memsz, s.digest_len), (0x2000, 0x2000));
        assert!(!l.free().covers(&Range::new(0x4000_0000, 0x4000_1000)), "taken from the free map");
    }

    #[test]
    fn alignment_lead_and_window_are_honoured() {
        let mut l = ram();
        l.add(KexecBuf::new(SegmentKind::Other, blob(4096), "x")).unwrap();
        // 2 MiB aligned hole with 0x80000 in front: the segment starts at base + lead.
        let r = l
            .add(
                KexecBuf::new(SegmentKind::Kernel, blob(MIB as usize), "k")
                    .memsz(3 * MIB)
                    .lead(0x8_0000)
                    .align(2 * MIB),
            )
            .unwrap();
        assert_eq!(r, Range::new(0x4020_0000 + 0x8_0000, 0x4020_0000 + 0x8_0000 + 3 * MIB));
        let s = &l.segments()[1];
        assert_eq!((s.memsz, s.digest_len), (3 * MIB, MIB), "digest over the data, the rest is room");
        // A window that excludes the first range.
        let r = l
            .add(KexecBuf::new(SegmentKind::Initrd, blob(10), "i").window(Range::new(0x5000_0000, u64::MAX), "above"))
            .unwrap();
        assert_eq!(r.start, 0x8000_0000);
    }

    #[test]
    fn no_room_says_what_and_why() {
        let mut l = ram();
        let err = l
            .add(KexecBuf::new(SegmentKind::Initrd, blob(100), "i").memsz(64 * MIB).window(Range::ALL, "somewhere"))
            .unwrap_err();
        assert_eq!(err.to_string(), "no room for the initrd (67108864 bytes): somewhere (0x1000 aligned)");
        let err =
            l.add(KexecBuf::new(SegmentKind::Kernel, blob(100), "k").memsz(u64::MAX - 100).lead(0x1000)).unwrap_err();
        assert!(err.to_string().contains("overflows"), "{err}");
        let err = l.add(KexecBuf::new(SegmentKind::Kernel, blob(100), "k").align(3 * PAGE)).unwrap_err();
        assert!(matches!(err, PlanError::Internal(_)));
        assert!(l.segments().is_empty(), "nothing placed by failed requests");
    }

    #[test]
    fn find_does_not_take() {
        let l = ram();
        let b = KexecBuf::new(SegmentKind::Dtb, blob(10), "d");
        assert_eq!(l.find(&b), Some(Range::new(0x4000_0000, 0x4000_1000)));
        assert_eq!(l.free().total(), 32 * MIB);
    }

    #[test]
    fn purgatory_data_is_replaced_in_place() {
        let mut l = ram();
        l.add(KexecBuf::purgatory(blob(3000), 0x5000)).unwrap();
        assert_eq!(l.segments()[0].memsz, 0x5000);
        assert_eq!(l.segments()[0].kind, None);
        l.set_data(0, Blob::new(vec![1; 3000])).unwrap();
        assert!(l.set_data(0, blob(2999)).is_err());
        assert!(l.set_data(1, blob(1)).is_err());
    }
}
