//! `/proc/iomem`: `Iomem::parse`, the RAM a normal and a crash load may use
//! (`usable_ram`, `crash_usable`), and placement in what is left.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loader_host::range::{FreeMap, Range, PAGE};
use loader_host::system::iomem::Iomem;

/// Free ranges are sorted, disjoint, non-empty, inside `within` (the union
/// of the RAM entries: a broken file may list overlapping ones), and never
/// hold the first page (the purgatory refuses a segment at 0).
fn check_free(free: &FreeMap, within: &[Range], what: &str) {
    let within = FreeMap::new(within.to_vec());
    let r = free.ranges();
    for w in r.windows(2) {
        assert!(w[0].end <= w[1].start, "{what}: {} and {} overlap or are out of order", w[0], w[1]);
    }
    for x in r {
        assert!(!x.is_empty(), "{what}: empty range");
        assert!(x.start >= PAGE, "{what}: {x} holds the first page");
        assert!(within.covers(x), "{what}: {x} is not inside the RAM it came from");
    }
    // Placement answers lie in free memory, aligned, within bounds.
    for (size, align) in [(PAGE, PAGE), (2 << 20, 2 << 20), (0x1234_5000, 1 << 30)] {
        for (min, max) in [(0, u64::MAX), (0, 1 << 32), (1 << 32, u64::MAX)] {
            for addr in
                [free.find(size, align, min, max), free.find_highest(size, align, min, max)].into_iter().flatten()
            {
                let placed = Range::checked(addr, size).expect("placement wraps");
                assert!(
                    addr.is_multiple_of(align) && addr >= min && placed.end <= max,
                    "{what}: {placed} breaks bounds"
                );
                assert!(free.covers(&placed), "{what}: {placed} is not free");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let m = match Iomem::parse(&text) {
        Ok(m) => m,
        Err(e) => return drop(e.to_string()),
    };
    let entries = m.entries();
    assert!(!entries.is_empty());
    for (i, e) in entries.iter().enumerate() {
        assert!(!e.range.is_empty() || e.range.end == u64::MAX, "entry {i} is empty");
        if let Some(p) = e.parent {
            assert!(p < i, "parent after child");
            assert_eq!(entries[p].depth + 1, e.depth);
            assert!(entries[p].range.contains_range(&e.range));
        } else {
            assert_eq!(e.depth, 0);
        }
        assert!(m.children(i).all(|c| c.parent == Some(i)));
    }
    check_free(&m.usable_ram(), &m.system_ram(), "usable_ram");
    check_free(&m.crash_usable(), &m.crash_kernel(), "crash_usable");
    let _ = (m.driver_managed_ram(), m.reserved());
});
