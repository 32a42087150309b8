//! Physical-memory bookkeeping: half-open ranges and a set of free,
//! disjoint ranges from which aligned holes are found (lowest or highest
//! first). The placement primitive built on it is `placement`.

use std::fmt;

/// A half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Range {
    /// The first address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
}

impl Range {
    /// Every address.
    pub const ALL: Range = Range { start: 0, end: u64::MAX };

    /// `[start, end)`, as given (an `end` below `start` makes an empty
    /// range).
    pub const fn new(start: u64, end: u64) -> Self {
        Range { start, end }
    }

    /// `[start, start + len)`, None when the end would pass 2^64 (a length
    /// read from a header must not wrap).
    pub fn checked(start: u64, len: u64) -> Option<Self> {
        start.checked_add(len).map(|end| Range { start, end })
    }

    /// Does the range hold `addr`?
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// From an inclusive end, as /proc/iomem prints ranges.
    pub fn inclusive(start: u64, last: u64) -> Self {
        Range { start, end: last.saturating_add(1) }
    }

    /// Bytes in the range (0 when empty).
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Does the range hold no address?
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Do the two ranges share an address?
    pub fn overlaps(&self, other: &Range) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Does `other` lie within it (`start <= other.start`, `other.end <=
    /// end`)?
    pub fn contains_range(&self, other: &Range) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}-{:#x}", self.start, self.end.saturating_sub(1))
    }
}

/// The page size every kexec segment is aligned to (kexec_load requires
/// page-aligned `mem` and `memsz`: kernel/kexec_core.c
/// sanity_check_segment_list). arm64/riscv64 kernels with larger pages
/// still take 4 KiB-aligned segments from a 4 KiB-page loader's view: the
/// kernel checks against its own PAGE_SIZE, which the Image header's page
/// size must match (image::arm64_image).
pub const PAGE: u64 = 4096;

/// `v` rounded up to `align` (a power of two), None on overflow.
pub fn align_up(v: u64, align: u64) -> Option<u64> {
    v.checked_add(align - 1).map(|x| x & !(align - 1))
}

/// `v` rounded down to `align` (a power of two).
pub fn align_down(v: u64, align: u64) -> u64 {
    v & !(align - 1)
}

/// Free memory as sorted, disjoint, non-empty ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FreeMap {
    ranges: Vec<Range>,
}

impl FreeMap {
    /// Normalise `ranges` (sort, merge overlapping or touching ones).
    pub fn new(mut ranges: Vec<Range>) -> Self {
        ranges.retain(|r| !r.is_empty());
        ranges.sort();
        let mut out: Vec<Range> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match out.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => out.push(r),
            }
        }
        FreeMap { ranges: out }
    }

    /// The free ranges, sorted and disjoint.
    pub fn ranges(&self) -> &[Range] {
        &self.ranges
    }

    /// Remove `cut` from the free ranges.
    pub fn remove(&mut self, cut: Range) {
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        for r in &self.ranges {
            if !r.overlaps(&cut) {
                out.push(*r);
                continue;
            }
            if r.start < cut.start {
                out.push(Range::new(r.start, cut.start));
            }
            if cut.end < r.end {
                out.push(Range::new(cut.end, r.end));
            }
        }
        self.ranges = out;
    }

    /// Remove every range of `cuts`, given in any order: one sort and one
    /// sweep, so that a /proc/iomem of 100 000 lines or a DTB of 130 000
    /// /memreserve/ entries costs what sorting them does ([`remove`] one
    /// by one would be quadratic).
    ///
    /// [`remove`]: FreeMap::remove
    pub fn remove_all(&mut self, cuts: impl IntoIterator<Item = Range>) {
        let cuts = FreeMap::new(cuts.into_iter().collect());
        let cuts = cuts.ranges();
        let mut out = Vec::with_capacity(self.ranges.len() + cuts.len());
        // Cuts are sorted and disjoint, as are the free ranges: `first` only
        // moves forward. A cut may reach into the next free range, so the
        // one that ends a free range is looked at again for the next.
        let mut first = 0;
        for r in &self.ranges {
            while first < cuts.len() && cuts[first].end <= r.start {
                first += 1;
            }
            let mut start = r.start;
            for c in cuts[first..].iter().take_while(|c| c.start < r.end) {
                if c.start > start {
                    out.push(Range::new(start, c.start));
                }
                start = start.max(c.end);
                if start >= r.end {
                    break;
                }
            }
            if start < r.end {
                out.push(Range::new(start, r.end));
            }
        }
        self.ranges = out;
    }

    /// Keep only what also lies in `other` (a sweep over both sorted lists).
    pub fn intersect(&mut self, other: &FreeMap) {
        let (a, b) = (&self.ranges, &other.ranges);
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            let r = Range::new(a[i].start.max(b[j].start), a[i].end.min(b[j].end));
            if !r.is_empty() {
                out.push(r);
            }
            if a[i].end < b[j].end {
                i += 1;
            } else {
                j += 1;
            }
        }
        self.ranges = out;
    }

    /// Keep only what lies inside `keep`.
    pub fn clip(&mut self, keep: Range) {
        self.ranges = self
            .ranges
            .iter()
            .filter_map(|r| {
                let c = Range::new(r.start.max(keep.start), r.end.min(keep.end));
                (!c.is_empty()).then_some(c)
            })
            .collect();
    }

    /// Lowest `addr` with `addr % align == 0`, `addr >= min`,
    /// `addr + size <= max`, and `[addr, addr + size)` inside one free range.
    pub fn find(&self, size: u64, align: u64, min: u64, max: u64) -> Option<u64> {
        for r in &self.ranges {
            let Some(addr) = align_up(r.start.max(min), align) else { continue };
            let Some(end) = addr.checked_add(size) else { continue };
            if end <= r.end && end <= max {
                return Some(addr);
            }
        }
        None
    }

    /// Highest `addr` with the same constraints as [`FreeMap::find`].
    pub fn find_highest(&self, size: u64, align: u64, min: u64, max: u64) -> Option<u64> {
        for r in self.ranges.iter().rev() {
            let Some(top) = r.end.min(max).checked_sub(size) else { continue };
            let addr = align_down(top, align);
            if addr >= r.start.max(min) {
                return Some(addr);
            }
        }
        None
    }

    /// `find_highest`, then remove the range found.
    pub fn take_highest(&mut self, size: u64, align: u64, min: u64, max: u64) -> Option<Range> {
        let addr = self.find_highest(size, align, min, max)?;
        let r = Range::new(addr, addr + size);
        self.remove(r);
        Some(r)
    }

    /// `find`, then remove the range found.
    pub fn take(&mut self, size: u64, align: u64, min: u64, max: u64) -> Option<Range> {
        let addr = self.find(size, align, min, max)?;
        let r = Range::new(addr, addr + size);
        self.remove(r);
        Some(r)
    }

    /// Bytes free in all.
    pub fn total(&self) -> u64 {
        self.ranges.iter().fold(0u64, |t, r| t.saturating_add(r.len()))
    }

    /// Does any free range share an address with `r`? (A binary search:
    /// the ranges are sorted and disjoint.)
    pub fn overlaps(&self, r: &Range) -> bool {
        let i = self.ranges.partition_point(|f| f.end <= r.start);
        self.ranges.get(i).is_some_and(|f| f.overlaps(r))
    }

    /// Is `r` entirely free?
    pub fn covers(&self, r: &Range) -> bool {
        self.ranges.iter().any(|f| f.contains_range(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_removes() {
        let mut m =
            FreeMap::new(vec![Range::new(0x3000, 0x5000), Range::new(0x1000, 0x3000), Range::new(0x8000, 0x9000)]);
        assert_eq!(m.ranges(), &[Range::new(0x1000, 0x5000), Range::new(0x8000, 0x9000)]);
        m.remove(Range::new(0x2000, 0x3000));
        assert_eq!(m.ranges(), &[Range::new(0x1000, 0x2000), Range::new(0x3000, 0x5000), Range::new(0x8000, 0x9000)]);
        m.clip(Range::new(0x1800, 0x8800));
        assert_eq!(m.ranges(), &[Range::new(0x1800, 0x2000), Range::new(0x3000, 0x5000), Range::new(0x8000, 0x8800)]);
    }

    #[test]
    fn finds_lowest_aligned_hole_that_fits() {
        let m = FreeMap::new(vec![Range::new(0x4000_1000, 0x4030_0000), Range::new(0x5000_0000, 0x6000_0000)]);
        assert_eq!(m.find(0x10_0000, 0x20_0000, 0, u64::MAX), Some(0x4020_0000));
        assert_eq!(m.find(0x20_0000, 0x20_0000, 0, u64::MAX), Some(0x5000_0000));
        assert_eq!(m.find(0x1000, 0x1000, 0x4500_0000, u64::MAX), Some(0x5000_0000));
        assert_eq!(m.find(0x2000_0000, 0x1000, 0, u64::MAX), None);
        assert_eq!(m.find(0x1000, 0x1000, 0, 0x4000_1fff), None);
        assert_eq!(m.find(u64::MAX, 0x1000, 0, u64::MAX), None);
    }

    #[test]
    fn finds_highest_aligned_hole_that_fits() {
        let m = FreeMap::new(vec![Range::new(0x4000_1000, 0x4030_0000), Range::new(0x5000_0000, 0x6000_1000)]);
        assert_eq!(m.find_highest(0x10_0000, 0x20_0000, 0, u64::MAX), Some(0x5fe0_0000));
        assert_eq!(m.find_highest(0x1000, 0x1000, 0, 0x5000_0000), Some(0x402f_f000));
        assert_eq!(m.find_highest(0x20_0000, 0x20_0000, 0, 0x5000_0000), None, "0x4000_1000 is not 2 MiB aligned");
        assert_eq!(m.find_highest(0x1000, 0x1000, 0x6000_0001, u64::MAX), None);
        assert_eq!(m.find_highest(u64::MAX, 0x1000, 0, u64::MAX), None);
        let mut m = m;
        assert_eq!(m.take_highest(0x1000, 0x1000, 0, u64::MAX), Some(Range::new(0x6000_0000, 0x6000_1000)));
        assert_eq!(m.take_highest(0x1000, 0x1000, 0, u64::MAX), Some(Range::new(0x5fff_f000, 0x6000_0000)));
    }

    #[test]
    fn take_consumes() {
        let mut m = FreeMap::new(vec![Range::new(0x1000, 0x4000)]);
        assert_eq!(m.take(0x1000, 0x1000, 0, u64::MAX), Some(Range::new(0x1000, 0x2000)));
        assert_eq!(m.take(0x1000, 0x1000, 0, u64::MAX), Some(Range::new(0x2000, 0x3000)));
        assert!(!m.covers(&Range::new(0x1000, 0x2000)));
        assert!(m.covers(&Range::new(0x3000, 0x4000)));
    }

    #[test]
    fn remove_all_equals_removing_one_by_one() {
        let free = FreeMap::new(vec![
            Range::new(0x1000, 0x9000),
            Range::new(0x1_0000, 0x2_0000),
            Range::new(0x3_0000, 0x3_1000),
            Range::new(0x10_0000, u64::MAX),
        ]);
        let cuts = [
            Range::new(0x8000, 0x1_1000), // across the end of one range into the next
            Range::new(0x2000, 0x3000),
            Range::new(0x1_8000, 0x1_9000),
            Range::new(0x1_8800, 0x1_a000), // overlapping another cut
            Range::new(0x3_0000, 0x3_1000), // a whole range
            Range::new(0xffff_0000, u64::MAX),
            Range::new(0x500, 0x800), // in no range
        ];
        let mut one_by_one = free.clone();
        for c in cuts {
            one_by_one.remove(c);
        }
        let mut all = free.clone();
        all.remove_all(cuts.iter().rev().copied());
        assert_eq!(all, one_by_one);
        assert_eq!(
            all.ranges(),
            &[
                Range::new(0x1000, 0x2000),
                Range::new(0x3000, 0x8000),
                Range::new(0x1_1000, 0x1_8000),
                Range::new(0x1_a000, 0x2_0000),
                Range::new(0x10_0000, 0xffff_0000),
            ]
        );
    }

    #[test]
    fn overlaps_finds_a_shared_address_by_binary_search() {
        let m = FreeMap::new(vec![Range::new(0x1000, 0x2000), Range::new(0x4000, 0x5000)]);
        assert!(m.overlaps(&Range::new(0x1fff, 0x3000)));
        assert!(m.overlaps(&Range::new(0, 0x10_0000)));
        assert!(!m.overlaps(&Range::new(0x2000, 0x4000)), "between the two");
        assert!(!m.overlaps(&Range::new(0x5000, 0x6000)));
    }

    #[test]
    fn intersect_keeps_what_both_hold() {
        let mut a = FreeMap::new(vec![Range::new(0, 0x100), Range::new(0x200, 0x400)]);
        a.intersect(&FreeMap::new(vec![Range::new(0x80, 0x280), Range::new(0x300, 0x1000)]));
        assert_eq!(a.ranges(), &[Range::new(0x80, 0x100), Range::new(0x200, 0x280), Range::new(0x300, 0x400)]);
    }

    #[test]
    fn removing_a_hundred_thousand_cuts_is_fast() {
        // A page of RAM every other page: 100 000 cuts into one range.
        let mut free = FreeMap::new(vec![Range::new(0, 200_000 * PAGE)]);
        // In this thread's CPU time: a busy machine's preemption is not the code's.
        let start = crate::testing::thread_cpu_time();
        free.remove_all((0..100_000u64).map(|i| Range::new(2 * i * PAGE, (2 * i + 1) * PAGE)));
        assert_eq!(free.ranges().len(), 100_000);
        let took = crate::testing::thread_cpu_time() - start;
        assert!(took < std::time::Duration::from_secs(2), "took {took:?} of CPU");
    }

    #[test]
    fn display_is_inclusive_like_iomem() {
        assert_eq!(Range::new(0x4000_0000, 0x4020_0000).to_string(), "0x40000000-0x401fffff");
    }
}
