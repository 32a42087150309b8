//! Parse `/proc/iomem` into entries with their nesting, and derive the RAM a
//! kexec image may be placed in.
//!
//! Format (kernel/resource.c, r_show): one resource a line,
//! `"%*s%0*llx-%0*llx : %s\n"` with `depth * 2` spaces of indentation, hex
//! start and inclusive end, then the name. Depth is capped at
//! MAX_IORES_LEVEL (5). Without CAP_SYS_ADMIN every address prints as 0.

use std::fmt;

use crate::range::{FreeMap, Range, PAGE};

/// kernel/resource.c: the name of boot memory resources.
pub const SYSTEM_RAM: &str = "System RAM";
/// kernel/crash_core.c / arch setup code: the crashkernel= reservation.
pub const CRASH_KERNEL: &str = "Crash kernel";

/// A firmware or kernel region the device tree describes and /proc/iomem
/// does not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirmwareRange {
    /// Where it is.
    pub range: Range,
    /// The name it takes in the memory map ([`CRASH_KERNEL`] for
    /// the crash reservation).
    pub name: &'static str,
}

/// Children of System RAM that are still fine as kexec_load destinations:
/// the running kernel's own image. kexec_load copies segment data into
/// pages that avoid every destination (kernel/kexec_core.c,
/// kimage_alloc_page) and only moves it into place after this kernel has
/// stopped (arch/arm64/kernel/relocate_kernel.S). kexec-tools' arm64
/// `to_be_excluded()` (kexec/arch/arm64/kexec-arm64.c) keeps the same
/// names; x86 adds "Kernel rodata" and "Kernel bss"; riscv64 names the
/// whole of it "Kernel image" (arch/riscv/kernel/setup.c kimage_res).
const KEEP_CHILDREN: [&str; 6] =
    [SYSTEM_RAM, "Kernel code", "Kernel rodata", "Kernel data", "Kernel bss", "Kernel image"];

/// One line of /proc/iomem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IomemEntry {
    /// Half-open; the file's inclusive end plus one.
    pub range: Range,
    /// The resource's name, e.g. "System RAM", "Kernel code", "pl011@9000000".
    pub name: String,
    /// Indentation / 2.
    pub depth: usize,
    /// Index of the enclosing entry in `Iomem::entries`.
    pub parent: Option<usize>,
    /// 1-based line number, for messages.
    pub line: usize,
}

/// The parsed file, in file order (a pre-order walk of the resource tree).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iomem {
    entries: Vec<IomemEntry>,
}

/// Why /proc/iomem text cannot be trusted as a memory map; `line` is
/// 1-based.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IomemError {
    /// A line does not have the r_show shape.
    Malformed {
        /// The line.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
    /// Indentation jumps more than one level deeper.
    BadNesting {
        /// The line.
        line: usize,
        /// Its depth (indentation / 2).
        depth: usize,
        /// The depth of the line before it.
        previous: usize,
    },
    /// A child's range is not inside its parent's.
    OutsideParent {
        /// The child's line.
        line: usize,
        /// The child's range.
        child: Range,
        /// The parent's line.
        parent_line: usize,
        /// The parent's range.
        parent: Range,
    },
    /// Every address is zero: the reader lacks CAP_SYS_ADMIN.
    ZeroAddresses,
    /// Nothing to parse.
    Empty,
}

impl fmt::Display for IomemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { line, why } => {
                write!(f, "/proc/iomem line {line}: {why} (expected \"start-end : name\", hex, 2 spaces per level)")
            }
            Self::BadNesting { line, depth, previous } => write!(
                f,
                "/proc/iomem line {line}: nesting depth {depth} follows depth {previous}; a child can only be one level deeper"
            ),
            Self::OutsideParent { line, child, parent_line, parent } => write!(
                f,
                "/proc/iomem line {line}: {child} is not inside its parent {parent} (line {parent_line})"
            ),
            Self::ZeroAddresses => {
                write!(f, "/proc/iomem shows zero addresses: needs CAP_SYS_ADMIN (run as root)")
            }
            Self::Empty => write!(f, "/proc/iomem has no entries"),
        }
    }
}

impl std::error::Error for IomemError {}

fn malformed(line: usize, why: impl Into<String>) -> IomemError {
    IomemError::Malformed { line, why: why.into() }
}

/// A hex number as r_show prints it (no prefix, no sign).
fn parse_hex(s: &str, line: usize, what: &str) -> Result<u64, IomemError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed(line, format!("{what} address {s:?} is not hexadecimal")));
    }
    u64::from_str_radix(s, 16).map_err(|_| malformed(line, format!("{what} address {s:?} does not fit in 64 bits")))
}

/// Parse one line into (depth, start, inclusive end, name).
fn parse_line(text: &str, line: usize) -> Result<(usize, u64, u64, String), IomemError> {
    let body = text.trim_start_matches(' ');
    let indent = text.len() - body.len();
    // resource.c r_show: `depth * 2` spaces.
    if !indent.is_multiple_of(2) {
        return Err(malformed(line, format!("indentation of {indent} spaces is not a multiple of 2")));
    }
    let (span, name) = match body.split_once(" : ") {
        Some((span, name)) => (span, name),
        // An empty name prints as "start-end : " and may have lost its
        // trailing space.
        None => match body.strip_suffix(" :") {
            Some(span) => (span, ""),
            None => return Err(malformed(line, "no \" : \" between the range and the name")),
        },
    };
    let (start, end) = span.split_once('-').ok_or_else(|| malformed(line, format!("range {span:?} has no '-'")))?;
    let start = parse_hex(start, line, "start")?;
    let end = parse_hex(end, line, "end")?;
    Ok((indent / 2, start, end, name.to_string()))
}

impl Iomem {
    /// Parse the text of /proc/iomem, checking each line's shape, the
    /// nesting (kernel/resource.c keeps children inside parents) and that
    /// the addresses are not the zeros an unprivileged reader sees.
    pub fn parse(text: &str) -> Result<Self, IomemError> {
        let mut entries: Vec<IomemEntry> = Vec::new();
        // Index of the most recent entry at each depth.
        let mut open: Vec<usize> = Vec::new();
        let mut all_zero = true;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            if raw.trim().is_empty() {
                continue;
            }
            let (depth, start, last, name) = parse_line(raw, line)?;
            if depth > open.len() {
                return Err(IomemError::BadNesting { line, depth, previous: open.len().saturating_sub(1) });
            }
            open.truncate(depth);
            all_zero &= start == 0 && last == 0;
            if last < start {
                return Err(malformed(line, format!("end {last:#x} is below start {start:#x}")));
            }
            entries.push(IomemEntry {
                range: Range::inclusive(start, last),
                name,
                depth,
                parent: open.last().copied(),
                line,
            });
            open.push(entries.len() - 1);
        }
        if entries.is_empty() {
            return Err(IomemError::Empty);
        }
        // resource.c r_show prints 0-0 for every entry to readers without
        // CAP_SYS_ADMIN; nothing below would be meaningful.
        if all_zero {
            return Err(IomemError::ZeroAddresses);
        }
        // The resource tree nests children inside parents
        // (kernel/resource.c, __request_resource); check it, as a truncated or
        // hand-edited file would break it.
        for e in &entries {
            if let Some(p) = e.parent.and_then(|p| entries.get(p)) {
                if !p.range.contains_range(&e.range) {
                    return Err(IomemError::OutsideParent {
                        line: e.line,
                        child: e.range,
                        parent_line: p.line,
                        parent: p.range,
                    });
                }
            }
        }
        Ok(Iomem { entries })
    }

    /// Add what the machine describes elsewhere than /proc/iomem (powerpc's
    /// device tree: its kernel image, crash reservation, RTAS): each range
    /// becomes a child of the "System RAM" entry that holds it (a
    /// top-level entry when none does), unless an entry of that name
    /// already covers it. Line 0 marks them as not from the file.
    pub fn add_firmware_ranges(&mut self, ranges: &[FirmwareRange]) {
        for f in ranges {
            if self.entries.iter().any(|e| e.name == f.name && e.range.contains_range(&f.range)) {
                continue;
            }
            let parent = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.name == SYSTEM_RAM && e.range.contains_range(&f.range))
                .map(|(i, _)| i)
                .next();
            let depth = parent.map_or(0, |p| self.entries[p].depth + 1);
            self.entries.push(IomemEntry { range: f.range, name: f.name.to_string(), depth, parent, line: 0 });
        }
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[IomemEntry] {
        &self.entries
    }

    /// Direct children of `entries()[index]`.
    pub fn children(&self, index: usize) -> impl Iterator<Item = &IomemEntry> + '_ {
        self.entries.iter().filter(move |e| e.parent == Some(index))
    }

    fn named(&self, pred: impl Fn(&str) -> bool) -> Vec<Range> {
        self.entries.iter().filter(|e| pred(&e.name)).map(|e| e.range).collect()
    }

    /// Boot memory: entries named exactly "System RAM", at any depth.
    /// Driver-managed memory ("System RAM (kmem)", "System RAM (virtio_mem)")
    /// is not included; see `driver_managed_ram`.
    pub fn system_ram(&self) -> Vec<Range> {
        self.named(|n| n == SYSTEM_RAM)
    }

    /// mm/memory_hotplug.c add_memory_driver_managed(): resource names of the
    /// form "System RAM ($DRIVER)", flagged IORESOURCE_SYSRAM_DRIVER_MANAGED
    /// so that kexec does not place images there (a driver such as
    /// virtio-mem or dax/kmem decides what of it is accessible after
    /// reboot). kexec-tools matches "System RAM" as a prefix and would use it.
    pub fn driver_managed_ram(&self) -> Vec<Range> {
        self.named(|n| n.starts_with("System RAM (") && n.ends_with(')'))
    }

    /// The crashkernel= reservation(s) ("Crash kernel", nested in System RAM;
    /// x86 may have a second, low one).
    pub fn crash_kernel(&self) -> Vec<Range> {
        self.named(|n| n == CRASH_KERNEL)
    }

    /// Entries named "reserved" (arm64: memblock reservations and no-map
    /// regions; x86 e820 prints "Reserved"), at any depth.
    pub fn reserved(&self) -> Vec<Range> {
        self.named(|n| n.eq_ignore_ascii_case("reserved"))
    }

    /// RAM a normal (non-crash) kexec_load may use as segment destinations:
    /// every "System RAM" range minus every other resource inside it except
    /// the running kernel's image (KEEP_CHILDREN).
    ///
    /// This follows kexec-tools' arm64 get_memory_ranges() (two passes: add
    /// System RAM, then exclude what `to_be_excluded()` names) with two
    /// deliberate differences:
    /// - "Crash kernel" is excluded too: a loaded crash kernel lives there
    ///   and a normal image has no business in it (kexec-tools keeps it when
    ///   it matches /sys/kernel/kexec_crash_size, for crash loads; use
    ///   `crash_usable` for those).
    /// - driver-managed RAM is not usable (see `driver_managed_ram`).
    ///
    /// On arm64 the excluded "reserved" children are memblock reservations
    /// (arch/arm64/kernel/setup.c, request_standard_resources): the DTB,
    /// UEFI tables, GIC ITS/LPI tables, /reserved-memory and /memreserve/
    /// regions. They must survive into the next kernel.
    pub fn usable_ram(&self) -> FreeMap {
        self.usable(SYSTEM_RAM, self.system_ram())
    }

    /// `regions` (RAM named `name`) minus what may not receive a segment.
    /// Resources never overlap their siblings (kernel/resource.c,
    /// __request_resource), so in a sound tree only descendants of RAM take
    /// from it, and ancestors of RAM (a "PCI mem" window around it) must not:
    /// - its descendants other than the kernel image parts;
    /// - any other entry that overlaps it without enclosing it (a reserved
    ///   range or an MMIO window listed at top level across RAM: the
    ///   kernel's resource tree should not allow it, a broken firmware map
    ///   or a hostile file may);
    /// - the first page: the purgatory refuses a segment at address 0 (it
    ///   is not a valid physical pointer to hand over).
    fn usable(&self, name: &str, regions: Vec<Range>) -> FreeMap {
        // Parents come before their children (parse() builds the tree in
        // file order), so one pass down finds descendants of `name` and one
        // pass up from each `name` entry finds its ancestors: linear in the
        // number of entries, whatever the file holds.
        let n = self.entries.len();
        let mut below = vec![false; n];
        for (i, e) in self.entries.iter().enumerate() {
            if let Some(p) = e.parent.filter(|&p| p < i) {
                below[i] = below[p] || self.entries[p].name == name;
            }
        }
        let mut above = vec![false; n];
        for e in self.entries.iter().filter(|e| e.name == name) {
            let mut p = e.parent;
            while let Some(i) = p.filter(|&i| i < n && !above[i]) {
                above[i] = true;
                p = self.entries[i].parent;
            }
        }
        let mut free = FreeMap::new(regions);
        let cuts = self.entries.iter().enumerate().filter_map(|(i, e)| {
            let kept = e.name == name || KEEP_CHILDREN.contains(&e.name.as_str());
            (!kept && (below[i] || !above[i])).then_some(e.range)
        });
        // One sweep for all of them: linear after a sort, however many
        // lines the file has.
        free.remove_all(cuts.chain([Range::new(0, PAGE)]));
        free
    }

    /// The first "Crash kernel" entry that does not lie inside System RAM,
    /// if any. crashkernel= reserves RAM (kernel/crash_reserve.c,
    /// reserve_crashkernel_generic allocates it from memblock memory) and
    /// the architectures insert the resource into System RAM; one outside
    /// it is a broken or forged map, and a capture kernel placed there
    /// would be placed in memory that is not RAM.
    pub fn crash_kernel_outside_ram(&self) -> Option<&IomemEntry> {
        let ram = FreeMap::new(self.system_ram());
        self.entries.iter().filter(|e| e.name == CRASH_KERNEL).find(|e| !ram.covers(&e.range))
    }

    /// Whether `name` names memory rather than a device: System RAM (boot
    /// or driver-managed), the crash reservation, memblock reservations
    /// ("reserved", x86's "Reserved") and the running kernel's image.
    pub fn is_memory_name(name: &str) -> bool {
        name == SYSTEM_RAM
            || name == CRASH_KERNEL
            || name.eq_ignore_ascii_case("reserved")
            || KEEP_CHILDREN.contains(&name)
            || name.starts_with("System RAM (") && name.ends_with(')')
    }

    /// Where a crash kernel's (KEXEC_ON_CRASH) segments may go: the
    /// highest "Crash kernel" range minus anything reserved inside it.
    /// kernel/kexec_core.c sanity_check_segment_list accepts only
    /// crashk_res; with crashkernel=X,high the low range is crashk_low_res,
    /// which the capture kernel may use but no segment may occupy.
    pub fn crash_usable(&self) -> FreeMap {
        let mut free = self.usable(CRASH_KERNEL, self.crash_kernel());
        if let Some(highest) = self.crash_kernel().into_iter().max_by_key(|r| r.start) {
            free.clip(highest);
        }
        free
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU virt, arm64, 2 GiB, crashkernel=256M (shape of a 6.x kernel).
    const QEMU_VIRT_ARM64: &str = "\
00000000-03ffffff : LNRO0015:00
04000000-07ffffff : LNRO0015:01
08000000-0800ffff : GICD
080a0000-08ffffff : GICR
09000000-09000fff : ARMH0011:00
  09000000-09000fff : ARMH0011:00 ARMH0011:00
09010000-09010fff : LNRO0013:00
  09010000-09010fff : LNRO0013:00 LNRO0013:00
09030000-09030fff : ARMH0061:00
0a000000-0a0001ff : LNRO0005:00
10000000-3efeffff : PCI Bus 0000:00
  10000000-101fffff : PCI Bus 0000:01
    10000000-1007ffff : 0000:01:00.0
3f000000-3fffffff : PCI ECAM 0000 [bus 00-0f]
40000000-bfffffff : System RAM
  40210000-4175ffff : Kernel code
  41760000-41c2ffff : reserved
  41c30000-4200ffff : Kernel data
  48000000-480fffff : reserved
  a0000000-afffffff : Crash kernel
  bbe00000-bbffffff : reserved
  bfe4a000-bfffffff : reserved
4010000000-401fffffff : PCI ECAM
8000000000-ffffffffff : PCI Bus 0000:00
";

    /// x86_64 PC (QEMU q35), 6 GiB.
    const X86: &str = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000a0000-000bffff : PCI Bus 0000:00
000c0000-000c99ff : Video ROM
000f0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-7ffdbfff : System RAM
  1a000000-1a1fffff : Kernel code
  1a200000-1a8d5fff : Kernel rodata
  1aa00000-1ac5f23f : Kernel data
  1b1a4000-1b5fffff : Kernel bss
  6b000000-7affffff : Crash kernel
7ffdc000-7fffffff : Reserved
b0000000-bfffffff : PCI MMCONFIG 0000 [bus 00-ff]
  b0000000-bfffffff : Reserved
fffc0000-ffffffff : Reserved
100000000-17fffffff : System RAM
180000000-1bfffffff : System RAM (kmem)
";

    fn r(start: u64, last: u64) -> Range {
        Range::inclusive(start, last)
    }

    #[test]
    fn qemu_arm64_tree() {
        let m = Iomem::parse(QEMU_VIRT_ARM64).unwrap();
        let pci01 = &m.entries()[12];
        assert_eq!((pci01.name.as_str(), pci01.depth, pci01.parent), ("0000:01:00.0", 2, Some(11)));
        let ram = m.entries().iter().position(|e| e.name == SYSTEM_RAM).unwrap();
        assert_eq!(m.children(ram).count(), 7);
        assert_eq!(m.system_ram(), vec![r(0x4000_0000, 0xbfff_ffff)]);
        assert_eq!(m.crash_kernel(), vec![r(0xa000_0000, 0xafff_ffff)]);
        assert_eq!(m.reserved().len(), 4);
        assert_eq!(m.entries().last().unwrap().range, r(0x80_0000_0000, 0xff_ffff_ffff));
    }

    #[test]
    fn qemu_arm64_usable_ram_keeps_kernel_image_drops_reserved_and_crash() {
        let m = Iomem::parse(QEMU_VIRT_ARM64).unwrap();
        assert_eq!(
            m.usable_ram().ranges(),
            &[
                r(0x4000_0000, 0x4175_ffff),
                r(0x41c3_0000, 0x47ff_ffff),
                r(0x4810_0000, 0x9fff_ffff),
                r(0xb000_0000, 0xbbdf_ffff),
                r(0xbc00_0000, 0xbfe4_9fff),
            ]
        );
        assert_eq!(m.crash_usable().ranges(), &[r(0xa000_0000, 0xafff_ffff)]);
    }

    #[test]
    fn x86_usable_ram() {
        let m = Iomem::parse(X86).unwrap();
        assert_eq!(m.system_ram().len(), 3);
        assert_eq!(m.driver_managed_ram(), vec![r(0x1_8000_0000, 0x1_bfff_ffff)]);
        assert_eq!(m.reserved().len(), 6, "x86 capitalises Reserved");
        assert_eq!(
            m.usable_ram().ranges(),
            &[
                r(0x1000, 0x9_fbff),
                r(0x10_0000, 0x6aff_ffff),
                r(0x7b00_0000, 0x7ffd_bfff),
                r(0x1_0000_0000, 0x1_7fff_ffff)
            ]
        );
    }

    #[test]
    fn reserved_inside_crash_kernel_is_not_crash_usable() {
        let text =
            "40000000-bfffffff : System RAM\n  a0000000-afffffff : Crash kernel\n    a0000000-a0000fff : reserved\n";
        let m = Iomem::parse(text).unwrap();
        assert_eq!(m.crash_usable().ranges(), &[r(0xa000_1000, 0xafff_ffff)]);
        assert_eq!(m.usable_ram().ranges(), &[r(0x4000_0000, 0x9fff_ffff), r(0xb000_0000, 0xbfff_ffff)]);
    }

    #[test]
    fn non_root_view_is_a_specific_error() {
        let text = "00000000-00000000 : System RAM\n  00000000-00000000 : Kernel code\n";
        let err = Iomem::parse(text).unwrap_err();
        assert_eq!(err, IomemError::ZeroAddresses);
        assert_eq!(err.to_string(), "/proc/iomem shows zero addresses: needs CAP_SYS_ADMIN (run as root)");
    }

    #[test]
    fn malformed_lines_name_their_line_number() {
        let cases = [
            ("40000000-bfffffff System RAM\n", 1, "no \" : \""),
            ("40000000-bfffffff : System RAM\n   40000000-4fffffff : x\n", 2, "multiple of 2"),
            ("40000000+bfffffff : System RAM\n", 1, "has no '-'"),
            ("4000000g-bfffffff : System RAM\n", 1, "not hexadecimal"),
            ("+4000000-bfffffff : System RAM\n", 1, "not hexadecimal"),
            ("c0000000-bfffffff : System RAM\n", 1, "below start"),
            ("10000000000000000-1ffffffffffffffff : x\n", 1, "64 bits"),
        ];
        for (text, line, why) in cases {
            let err = Iomem::parse(text).unwrap_err();
            assert!(err.to_string().starts_with(&format!("/proc/iomem line {line}: ")), "{err}");
            assert!(err.to_string().contains(why), "{err}");
        }
    }

    #[test]
    fn nesting_is_checked() {
        let err = Iomem::parse("40000000-bfffffff : System RAM\n    40000000-4fffffff : x\n").unwrap_err();
        assert_eq!(err, IomemError::BadNesting { line: 2, depth: 2, previous: 0 });
        let err = Iomem::parse("40000000-bfffffff : System RAM\n  30000000-4fffffff : x\n").unwrap_err();
        assert!(matches!(err, IomemError::OutsideParent { line: 2, parent_line: 1, .. }), "{err}");
        assert_eq!(Iomem::parse("\n\n"), Err(IomemError::Empty));
    }

    #[test]
    fn odd_names_survive() {
        let m = Iomem::parse("40000000-bfffffff : a : b\n  40000000-40000fff :\nc0000000-c0000fff : \n").unwrap();
        let names: Vec<_> = m.entries().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a : b", "", ""]);
    }

    #[test]
    fn full_64_bit_end_does_not_overflow() {
        let m = Iomem::parse("00000000-ffffffffffffffff : PCI mem\n  40000000-7fffffff : System RAM\n").unwrap();
        assert_eq!(m.system_ram(), vec![r(0x4000_0000, 0x7fff_ffff)]);
        assert_eq!(m.usable_ram().ranges(), &[r(0x4000_0000, 0x7fff_ffff)], "an enclosing window takes nothing");
    }

    #[test]
    fn top_level_ranges_over_ram_and_page_zero_are_not_usable() {
        // A GIC and a reserved range listed at top level across System RAM,
        // and RAM from address 0.
        let text = "\
00000000-3fffffff : System RAM
08000000-0800ffff : GICD
40000000-bfffffff : System RAM
  40210000-4175ffff : Kernel code
4f000000-4fffffff : reserved
";
        let m = Iomem::parse(text).unwrap();
        assert_eq!(
            m.usable_ram().ranges(),
            &[r(0x1000, 0x7ff_ffff), r(0x801_0000, 0x4eff_ffff), r(0x5000_0000, 0xbfff_ffff)]
        );
    }

    #[test]
    fn crash_segments_go_only_into_crashk_res() {
        // crashkernel=X,high: a low range (crashk_low_res) and the high one.
        let text = "00000000-bfffffff : System RAM\n  10000000-17ffffff : Crash kernel\n100000000-1ffffffff : System RAM\n  180000000-1bfffffff : Crash kernel\n";
        let m = Iomem::parse(text).unwrap();
        assert_eq!(m.crash_kernel().len(), 2);
        assert_eq!(m.crash_usable().ranges(), &[r(0x1_8000_0000, 0x1_bfff_ffff)]);
    }

    #[test]
    fn a_crash_range_outside_system_ram_is_found() {
        let inside = Iomem::parse("40000000-bfffffff : System RAM\n  a0000000-afffffff : Crash kernel\n").unwrap();
        assert_eq!(inside.crash_kernel_outside_ram(), None);
        let across =
            "40000000-7fffffff : System RAM\n80000000-bfffffff : System RAM\n78000000-87ffffff : Crash kernel\n";
        assert_eq!(Iomem::parse(across).unwrap().crash_kernel_outside_ram(), None, "adjacent RAM entries hold it");
        let outside = Iomem::parse("40000000-bfffffff : System RAM\nc0000000-cfffffff : Crash kernel\n").unwrap();
        assert_eq!(outside.crash_kernel_outside_ram().map(|e| e.line), Some(2));
        for name in ["System RAM", "reserved", "Reserved", "Crash kernel", "Kernel code", "System RAM (kmem)"] {
            assert!(Iomem::is_memory_name(name), "{name}");
        }
        for name in ["pl011@9000000", "GICD", "PCI Bus 0000:00", "System ROM"] {
            assert!(!Iomem::is_memory_name(name), "{name}");
        }
    }

    #[test]
    fn a_hundred_thousand_lines_are_parsed_and_cut_in_linear_time() {
        let mut text = String::from("40000000-83fffffff : System RAM\n");
        for i in 0..100_000u64 {
            let at = 0x1_0000_0000 + i * 0x2_0000;
            text.push_str(&format!("  {:x}-{:x} : reserved\n", at, at + 0xfff));
        }
        // In this thread's CPU time: a busy machine's preemption is not the code's.
        let start = crate::testing::thread_cpu_time();
        let m = Iomem::parse(&text).unwrap();
        let free = m.usable_ram();
        assert_eq!(free.ranges().len(), 100_001);
        let took = crate::testing::thread_cpu_time() - start;
        assert!(took < std::time::Duration::from_secs(5), "took {took:?} of CPU");
    }
}
