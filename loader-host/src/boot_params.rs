//! The x86 zero page (struct boot_params, Documentation/arch/x86/
//! zero-page.rst) and what goes in it: the bzImage's setup header, the
//! command line, the initrd, the e820 memory map, the ACPI RSDP and a
//! setup_data chain carrying a SETUP_RNG_SEED the purgatory refreshes in
//! place. All of it is one kexec segment: boot_params, then the command
//! line, then the setup_data nodes.

use std::fmt;

use crate::range::{FreeMap, Range, PAGE};
use crate::system::firmware::{
    E820Entry, E820_ACPI, E820_NVS, E820_PMEM, E820_PRAM, E820_RAM, E820_RESERVED, SCREEN_INFO_LEN,
};

/// zero-page.rst: struct boot_params is one 4 KiB page.
pub const BOOT_PARAMS_SIZE: usize = 4096;

// zero-page.rst offsets.
const SCREEN_INFO: usize = 0x000;
const ACPI_RSDP_ADDR: usize = 0x070;
const EXT_RAMDISK_IMAGE: usize = 0x0c0;
const EXT_RAMDISK_SIZE: usize = 0x0c4;
const EXT_CMD_LINE_PTR: usize = 0x0c8;
const E820_ENTRIES: usize = 0x1e8;
const HDR: usize = 0x1f1;
const E820_TABLE: usize = 0x2d0;
// boot.rst setup header offsets (within boot_params).
const TYPE_OF_LOADER: usize = 0x210;
const LOADFLAGS: usize = 0x211;
const RAMDISK_IMAGE: usize = 0x218;
const RAMDISK_SIZE: usize = 0x21c;
const CMD_LINE_PTR: usize = 0x228;
const HDR_SETUP_DATA: usize = 0x250;

const MIB: u64 = 1 << 20;
const GIB4: u64 = 1 << 32;

/// zero-page.rst e820_table: E820_MAX_ENTRIES_ZEROPAGE = 128 entries.
pub const E820_MAX_ZEROPAGE: usize = 128;
/// struct boot_e820_entry: u64 addr, u64 size, u32 type, packed.
const E820_ENTRY_SIZE: usize = 20;
/// struct setup_data: u64 next, u32 type, u32 len, then data.
const SETUP_DATA_HEADER: usize = 16;
/// include/uapi/asm/setup_data.h SETUP_E820_EXT: e820 entries beyond 128.
pub const SETUP_E820_EXT: u32 = 1;
/// include/uapi/asm/setup_data.h SETUP_RNG_SEED.
pub const SETUP_RNG_SEED: u32 = 9;
/// The seed length the kernel's own kexec_file loader passes
/// (arch/x86/kernel/kexec-bzimage64.c RNG_SEED_LENGTH).
pub const RNG_SEED_LEN: usize = 32;
/// boot.rst type_of_loader: "If your boot loader has an assigned id ...
/// Otherwise, enter 0xFF here." 0xD is kexec-tools' id; we are not it.
pub const LOADER_TYPE_UNDEFINED: u8 = 0xff;
/// boot.rst loadflags bit 0 (read-only, kept from the image).
const LOADED_HIGH: u8 = 1 << 0;

/// Why the zero page could not be built; each names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootParamsError {
    /// The setup header from the bzImage does not fit boot_params' hdr area.
    SetupHeader(usize),
    /// A pointer field needs more than 32 bits but the kernel lacks
    /// XLF_CAN_BE_LOADED_ABOVE_4G.
    Above4G {
        /// The boot_params field (`cmd_line_ptr`, `ramdisk_image`,
        /// `setup_data`).
        field: &'static str,
        /// The physical address it would hold.
        addr: u64,
    },
    /// The command line holds a NUL byte.
    CmdlineNul,
}

impl fmt::Display for BootParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SetupHeader(n) => write!(
                f,
                "setup header is {n} bytes; boot_params has room for {} from 0x1f1 (zero-page.rst)",
                0x290 - HDR
            ),
            Self::Above4G { field, addr } => write!(
                f,
                "boot_params {field} would be {addr:#x}, above 4 GiB, but the kernel lacks XLF_CAN_BE_LOADED_ABOVE_4G (boot.rst)"
            ),
            Self::CmdlineNul => write!(f, "the command line given (--append/--command-line) contains a NUL byte"),
        }
    }
}

impl std::error::Error for BootParamsError {}

/// The capture kernel's e820, as the kernel's own kexec_file path builds it
/// (arch/x86/kernel/crash.c crash_setup_memmap_entries): RAM is only the
/// System RAM below 1 MiB and the crash region(s) minus `exclude` (the
/// elfcorehdr), pieces under a page dropped; ACPI tables, ACPI NVS and
/// reserved entries are kept so the capture kernel maps and honours them,
/// and persistent memory (7, 12) as kexec-tools' load_crashdump_segments
/// does. Everything else of the old kernel's RAM is left out.
pub fn crash_e820(full: &[E820Entry], crash: &[Range], exclude: &[Range]) -> Vec<E820Entry> {
    let mut out = Vec::new();
    // crash.c: "Add the low 1M".
    let mut low = FreeMap::new(full.iter().filter(|e| e.kind == E820_RAM).map(E820Entry::range).collect());
    low.clip(Range::new(0, MIB));
    for r in crash {
        low.remove(*r);
    }
    out.extend(low.ranges().iter().map(|r| E820Entry::from_range(*r, E820_RAM)));
    // crash.c: ACPI tables, ACPI NVS, e820 reserved.
    out.extend(
        full.iter().filter(|e| matches!(e.kind, E820_ACPI | E820_NVS | E820_RESERVED | E820_PMEM | E820_PRAM)).copied(),
    );
    // crash.c memmap_exclude_ranges: the crash region minus the elfcorehdr;
    // "If entry is less than a page, skip it".
    let mut ram = FreeMap::new(crash.to_vec());
    for r in exclude {
        ram.remove(*r);
    }
    out.extend(ram.ranges().iter().filter(|r| r.len() >= PAGE).map(|r| E820Entry::from_range(*r, E820_RAM)));
    out.sort();
    out
}

/// What goes into the zero page.
#[derive(Debug, Clone)]
pub struct BootParamsInput<'a> {
    /// The bzImage's setup header (0x1f1 .. its end).
    pub setup_header: &'a [u8],
    /// xloadflags XLF_CAN_BE_LOADED_ABOVE_4G (boot.rst): the command line,
    /// initrd and setup_data may lie above 4 GiB (the `ext_*` high halves).
    pub can_load_above_4g: bool,
    /// The command line, without the NUL `build` appends.
    pub cmdline: &'a [u8],
    /// The initrd's bytes in memory (not page-rounded).
    pub initrd: Option<Range>,
    /// The new kernel's memory map, sorted: the first 128 entries go in
    /// `e820_table`, the rest in a SETUP_E820_EXT node.
    pub e820: &'a [E820Entry],
    /// zero-page.rst `acpi_rsdp_addr` (0x070); 0 lets the kernel scan the
    /// BIOS areas for the RSDP.
    pub acpi_rsdp_addr: u64,
    /// The running kernel's `screen_info` (0x000), so that the new kernel
    /// finds the firmware framebuffer; None leaves it zero.
    pub screen_info: Option<[u8; SCREEN_INFO_LEN]>,
    /// The SETUP_RNG_SEED node's bytes (the purgatory refreshes them in
    /// place before the jump).
    pub rng_seed: [u8; RNG_SEED_LEN],
}

fn align16(n: usize) -> usize {
    n.next_multiple_of(16)
}

/// Where each part sits in the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentLayout {
    /// Offset of the command line: right after boot_params.
    pub cmdline: usize,
    /// SETUP_E820_EXT node, when there are more than 128 entries.
    pub e820_ext: Option<usize>,
    /// Offset of the SETUP_RNG_SEED node (its 16-byte setup_data header).
    pub rng_seed: usize,
    /// Bytes in the segment.
    pub len: usize,
}

/// The segment's layout for a command line of `cmdline_len` bytes and
/// `e820_entries` entries: boot_params, the NUL-terminated command line,
/// then 16-byte aligned setup_data nodes.
pub fn layout(cmdline_len: usize, e820_entries: usize) -> SegmentLayout {
    let cmdline = BOOT_PARAMS_SIZE;
    let mut at = align16(cmdline + cmdline_len + 1);
    let extra = e820_entries.saturating_sub(E820_MAX_ZEROPAGE);
    let e820_ext = (extra > 0).then(|| {
        let node = at;
        at = align16(at + SETUP_DATA_HEADER + extra * E820_ENTRY_SIZE);
        node
    });
    let rng_seed = at;
    SegmentLayout { cmdline, e820_ext, rng_seed, len: rng_seed + SETUP_DATA_HEADER + RNG_SEED_LEN }
}

fn put(buf: &mut [u8], off: usize, bytes: &[u8]) {
    buf[off..off + bytes.len()].copy_from_slice(bytes);
}

fn put_e820(buf: &mut [u8], off: usize, e: &E820Entry) {
    put(buf, off, &e.addr.to_le_bytes());
    put(buf, off + 8, &e.size.to_le_bytes());
    put(buf, off + 16, &e.kind.to_le_bytes());
}

/// Split a 64-bit pointer into the low field and its ext_ high half
/// (zero-page.rst ext_*: "upper 32 bits of ..."), refusing the high half
/// when the kernel cannot take it.
fn split(addr: u64, above_4g: bool, field: &'static str) -> Result<(u32, u32), BootParamsError> {
    if addr >= GIB4 && !above_4g {
        return Err(BootParamsError::Above4G { field, addr });
    }
    Ok((addr as u32, (addr >> 32) as u32))
}

/// Build the boot-params segment for loading at physical `base`.
pub fn build(input: &BootParamsInput, base: u64) -> Result<Vec<u8>, BootParamsError> {
    let hdr_len = input.setup_header.len();
    if HDR + hdr_len > 0x290 {
        return Err(BootParamsError::SetupHeader(hdr_len));
    }
    if input.cmdline.contains(&0) {
        return Err(BootParamsError::CmdlineNul);
    }
    let lay = layout(input.cmdline.len(), input.e820.len());
    let mut buf = vec![0u8; lay.len];
    let above = input.can_load_above_4g;

    // boot.rst "64-bit Boot Protocol": boot_params zeroed, then the setup
    // header copied in at 0x1f1.
    put(&mut buf, HDR, input.setup_header);
    if let Some(si) = &input.screen_info {
        put(&mut buf, SCREEN_INFO, si);
    }
    // boot.rst type_of_loader (write, obligatory).
    buf[TYPE_OF_LOADER] = LOADER_TYPE_UNDEFINED;
    // boot.rst loadflags: LOADED_HIGH is the kernel's (read); QUIET_FLAG,
    // KEEP_SEGMENTS (obsolete, 32-bit entry only) and CAN_USE_HEAP (with
    // heap_end_ptr: the real-mode setup code's heap) mean nothing to the
    // 64-bit entry, which skips setup; KASLR_FLAG is kernel-internal. Keep
    // only LOADED_HIGH (the kernel's kexec_file writes 0).
    buf[LOADFLAGS] &= LOADED_HIGH;

    // zero-page.rst acpi_rsdp_addr (0x070; moved out of the setup header in
    // protocol 2.15).
    put(&mut buf, ACPI_RSDP_ADDR, &input.acpi_rsdp_addr.to_le_bytes());

    // boot.rst cmd_line_ptr + zero-page.rst ext_cmd_line_ptr.
    let (lo, hi) = split(base + lay.cmdline as u64, above, "cmd_line_ptr")?;
    put(&mut buf, CMD_LINE_PTR, &lo.to_le_bytes());
    put(&mut buf, EXT_CMD_LINE_PTR, &hi.to_le_bytes());
    put(&mut buf, lay.cmdline, input.cmdline);

    // boot.rst ramdisk_image/ramdisk_size + zero-page.rst ext_ramdisk_*.
    if let Some(r) = input.initrd {
        let (lo, hi) = split(r.start, above, "ramdisk_image")?;
        put(&mut buf, RAMDISK_IMAGE, &lo.to_le_bytes());
        put(&mut buf, EXT_RAMDISK_IMAGE, &hi.to_le_bytes());
        let (lo, hi) = (r.len() as u32, (r.len() >> 32) as u32);
        put(&mut buf, RAMDISK_SIZE, &lo.to_le_bytes());
        put(&mut buf, EXT_RAMDISK_SIZE, &hi.to_le_bytes());
    }

    // zero-page.rst e820_entries / e820_table: the first 128 entries.
    let (first, rest) = input.e820.split_at(input.e820.len().min(E820_MAX_ZEROPAGE));
    buf[E820_ENTRIES] = first.len() as u8;
    for (i, e) in first.iter().enumerate() {
        put_e820(&mut buf, E820_TABLE + i * E820_ENTRY_SIZE, e);
    }

    // boot.rst setup_data: a singly linked list of nodes; each added node
    // goes at the head (as kexec-bzimage64.c does).
    let mut head = 0u64;
    let mut link = |buf: &mut [u8], off: usize, kind: u32, len: usize| -> Result<(), BootParamsError> {
        put(buf, off, &head.to_le_bytes());
        put(buf, off + 8, &kind.to_le_bytes());
        put(buf, off + 12, &(len as u32).to_le_bytes());
        head = base + off as u64;
        if head >= GIB4 && !above {
            return Err(BootParamsError::Above4G { field: "setup_data", addr: head });
        }
        Ok(())
    };
    if let Some(node) = lay.e820_ext {
        // arch/x86/kernel/e820.c e820__memory_setup_extended: the rest.
        for (i, e) in rest.iter().enumerate() {
            put_e820(&mut buf, node + SETUP_DATA_HEADER + i * E820_ENTRY_SIZE, e);
        }
        link(&mut buf, node, SETUP_E820_EXT, rest.len() * E820_ENTRY_SIZE)?;
    }
    // arch/x86/kernel/setup.c parse_setup_data: SETUP_RNG_SEED is credited
    // to the pool and wiped; the purgatory refreshes it in place first.
    put(&mut buf, lay.rng_seed + SETUP_DATA_HEADER, &input.rng_seed);
    link(&mut buf, lay.rng_seed, SETUP_RNG_SEED, RNG_SEED_LEN)?;
    put(&mut buf, HDR_SETUP_DATA, &head.to_le_bytes());
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::firmware::E820_UNUSABLE;

    fn le64(b: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
    }
    fn le32(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }

    fn header() -> Vec<u8> {
        let f = crate::image::bzimage::tests::sample(100);
        crate::image::bzimage::BzImage::parse(&crate::input::Blob::new(f)).unwrap().setup_header
    }

    fn e820() -> Vec<E820Entry> {
        vec![
            E820Entry { addr: 0, size: 0x9fc00, kind: E820_RAM },
            E820Entry { addr: 0x9fc00, size: 0x400, kind: E820_RESERVED },
            E820Entry { addr: 0x10_0000, size: 0x7ff0_0000, kind: E820_RAM },
            E820Entry { addr: 0x7ff0_0000, size: 0x10_0000, kind: E820_ACPI },
            E820Entry { addr: 0x1_0000_0000, size: 0x1_0000_0000, kind: E820_RAM },
        ]
    }

    fn input<'a>(hdr: &'a [u8], map: &'a [E820Entry]) -> BootParamsInput<'a> {
        BootParamsInput {
            setup_header: hdr,
            can_load_above_4g: true,
            cmdline: b"console=ttyS0 root=/dev/vda",
            initrd: Some(Range::new(0x1_2000_0000, 0x1_2000_1234)),
            e820: map,
            acpi_rsdp_addr: 0x7ffe_0014,
            screen_info: None,
            rng_seed: [0x5a; RNG_SEED_LEN],
        }
    }

    #[test]
    fn zero_page_fields_follow_zero_page_rst() {
        let hdr = header();
        let map = e820();
        let base = 0x1_0000_3000;
        let bp = build(&input(&hdr, &map), base).unwrap();
        assert_eq!(&bp[0x202..0x206], b"HdrS", "setup header copied at 0x1f1");
        assert_eq!(bp[0x210], 0xff);
        assert_eq!(bp[0x211], LOADED_HIGH);
        assert_eq!(le64(&bp, 0x070), 0x7ffe_0014);
        // Command line right after the page, pointer split low/ext.
        assert_eq!(le32(&bp, 0x228), 0x0000_4000);
        assert_eq!(le32(&bp, 0x0c8), 1);
        assert_eq!(&bp[4096..4096 + 27], b"console=ttyS0 root=/dev/vda");
        assert_eq!(bp[4096 + 27], 0);
        // Initrd above 4 GiB: low + ext halves.
        assert_eq!((le32(&bp, 0x218), le32(&bp, 0x0c0)), (0x2000_0000, 1));
        assert_eq!((le32(&bp, 0x21c), le32(&bp, 0x0c4)), (0x1234, 0));
        // e820.
        assert_eq!(bp[0x1e8], 5);
        assert_eq!((le64(&bp, 0x2d0 + 40), le64(&bp, 0x2d0 + 48), le32(&bp, 0x2d0 + 56)), (0x10_0000, 0x7ff0_0000, 1));
        // setup_data: one RNG seed node inside the segment.
        let node = le64(&bp, 0x250);
        let off = (node - base) as usize;
        assert_eq!(off % 16, 0);
        assert_eq!((le64(&bp, off), le32(&bp, off + 8), le32(&bp, off + 12)), (0, SETUP_RNG_SEED, 32));
        assert_eq!(&bp[off + 16..off + 48], &[0x5a; 32]);
        assert_eq!(bp.len(), off + 48);
    }

    #[test]
    fn more_than_128_entries_spill_into_setup_e820_ext() {
        let hdr = header();
        let map: Vec<E820Entry> =
            (0..130u64).map(|i| E820Entry { addr: i * 0x20_0000, size: 0x10_0000, kind: E820_RAM }).collect();
        let base = 0x8000;
        let bp = build(&input(&hdr, &map), base).unwrap();
        assert_eq!(bp[0x1e8], 128);
        let rng = (le64(&bp, 0x250) - base) as usize;
        assert_eq!(le32(&bp, rng + 8), SETUP_RNG_SEED);
        let ext = (le64(&bp, rng) - base) as usize;
        assert_eq!((le32(&bp, ext + 8), le32(&bp, ext + 12)), (SETUP_E820_EXT, 40));
        assert_eq!(le64(&bp, ext + 16 + 20), 129 * 0x20_0000);
        assert_eq!(le64(&bp, ext), 0, "end of chain");
        assert_eq!(layout(27, 130).e820_ext, Some(ext));
    }

    #[test]
    fn pointers_above_4g_need_the_xloadflag() {
        let hdr = header();
        let map = e820();
        let mut i = input(&hdr, &map);
        i.can_load_above_4g = false;
        assert_eq!(
            build(&i, 0x1_0000_0000).unwrap_err(),
            BootParamsError::Above4G { field: "cmd_line_ptr", addr: 0x1_0000_1000 }
        );
        let e = build(&i, 0x3000).unwrap_err();
        assert_eq!(e, BootParamsError::Above4G { field: "ramdisk_image", addr: 0x1_2000_0000 });
        assert!(e.to_string().contains("XLF_CAN_BE_LOADED_ABOVE_4G"));
        i.initrd = Some(Range::new(0x200_0000, 0x300_0000));
        assert!(build(&i, 0x3000).is_ok());
    }

    #[test]
    fn bad_inputs_are_refused() {
        let map = e820();
        let long = vec![0u8; 0xa0];
        assert_eq!(build(&input(&long, &map), 0x3000).unwrap_err(), BootParamsError::SetupHeader(0xa0));
        let hdr = header();
        let mut i = input(&hdr, &map);
        i.cmdline = b"a\0b";
        assert_eq!(build(&i, 0x3000).unwrap_err(), BootParamsError::CmdlineNul);
    }

    #[test]
    fn screen_info_is_carried() {
        let hdr = header();
        let map = e820();
        let mut i = input(&hdr, &map);
        i.screen_info = Some([7; SCREEN_INFO_LEN]);
        let bp = build(&i, 0x3000).unwrap();
        assert_eq!(&bp[..0x40], &[7; 0x40]);
        assert_eq!(bp[0x40], 0);
    }

    #[test]
    fn crash_map_keeps_low_1m_crash_ram_and_firmware_tables() {
        let mut map = e820();
        map.push(E820Entry { addr: 0x2_0000_0000, size: 0x1000_0000, kind: E820_PMEM });
        map.push(E820Entry { addr: 0x2_1000_0000, size: 0x1000, kind: E820_UNUSABLE });
        let crash = [Range::new(0x6000_0000, 0x7000_0000), Range::new(0x1_f000_0000, 0x2_0000_0000)];
        let elfcorehdr = Range::new(0x6000_0000, 0x6000_4000);
        let m = crash_e820(&map, &crash, &[elfcorehdr]);
        assert_eq!(
            m,
            vec![
                E820Entry { addr: 0, size: 0x9fc00, kind: E820_RAM },
                E820Entry { addr: 0x9fc00, size: 0x400, kind: E820_RESERVED },
                E820Entry { addr: 0x10_0000, size: 0, kind: E820_RAM },
                E820Entry { addr: 0x6000_4000, size: 0x0fff_c000, kind: E820_RAM },
                E820Entry { addr: 0x7ff0_0000, size: 0x10_0000, kind: E820_ACPI },
                E820Entry { addr: 0x1_f000_0000, size: 0x1000_0000, kind: E820_RAM },
                E820Entry { addr: 0x2_0000_0000, size: 0x1000_0000, kind: E820_PMEM },
            ]
            .into_iter()
            .filter(|e| e.size > 0)
            .collect::<Vec<_>>()
        );
        // A sliver under a page next to the elfcorehdr is dropped.
        let m = crash_e820(&map, &crash[..1], &[Range::new(0x6000_0800, 0x6fff_f800)]);
        assert!(m.iter().all(|e| e.kind != E820_RAM || e.addr < MIB), "{m:?}");
    }
}
