//! The x86 zero page (struct boot_params, Documentation/arch/x86/
//! zero-page.rst) and what goes in it: the bzImage's setup header, the
//! command line, the initrd, the e820 memory map, the ACPI RSDP and a
//! setup_data chain carrying a SETUP_RNG_SEED the purgatory refreshes in
//! place. All of it is one kexec segment: boot_params, then the command
//! line, then the setup_data nodes.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::iomem::Iomem;
use crate::layout::{FreeMap, Range, PAGE};

/// zero-page.rst: struct boot_params is one 4 KiB page.
pub const BOOT_PARAMS_SIZE: usize = 4096;

// zero-page.rst offsets.
const SCREEN_INFO: usize = 0x000;
const SCREEN_INFO_LEN: usize = 0x040;
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

/// e820 types (arch/x86/include/asm/e820/types.h).
pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;
pub const E820_ACPI: u32 = 3;
pub const E820_NVS: u32 = 4;
pub const E820_UNUSABLE: u32 = 5;
pub const E820_PMEM: u32 = 7;
pub const E820_PRAM: u32 = 12;
pub const E820_SOFT_RESERVED: u32 = 0xefff_ffff;

const MIB: u64 = 1 << 20;
const GIB4: u64 = 1 << 32;

/// One e820 entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

impl E820Entry {
    pub fn range(&self) -> Range {
        Range::new(self.addr, self.addr.saturating_add(self.size))
    }

    fn from_range(r: Range, kind: u32) -> Self {
        E820Entry { addr: r.start, size: r.len(), kind }
    }
}

/// The e820 type for a name as arch/x86/kernel/e820.c e820_type_to_string()
/// prints it (in /sys/firmware/memmap/N/type and /proc/iomem).
pub fn e820_type_from_name(name: &str) -> Option<u32> {
    Some(match name {
        "System RAM" => E820_RAM,
        "Reserved" => E820_RESERVED,
        "ACPI Tables" => E820_ACPI,
        "ACPI Non-volatile Storage" => E820_NVS,
        "Unusable memory" => E820_UNUSABLE,
        "Persistent Memory (legacy)" => E820_PRAM,
        "Persistent Memory" => E820_PMEM,
        "Soft Reserved" => E820_SOFT_RESERVED,
        _ => return None,
    })
}

/// Why the zero page could not be built; each names the file or field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootParamsError {
    Read {
        path: PathBuf,
        why: String,
    },
    /// A memmap file that does not hold what firmware_memmap.c prints.
    Parse {
        path: PathBuf,
        value: String,
    },
    /// A memmap entry whose end is below its start.
    Inverted {
        dir: PathBuf,
    },
    /// Neither /sys/firmware/memmap nor /proc/iomem gave an e820 entry.
    NoMemoryMap,
    /// The setup header from the bzImage does not fit boot_params' hdr area.
    SetupHeader(usize),
    /// A pointer field needs more than 32 bits but the kernel lacks
    /// XLF_CAN_BE_LOADED_ABOVE_4G.
    Above4G {
        field: &'static str,
        addr: u64,
    },
    /// The command line holds a NUL byte.
    CmdlineNul,
}

impl fmt::Display for BootParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, why } => write!(f, "{}: {why}", path.display()),
            Self::Parse { path, value } => {
                write!(f, "{}: '{value}' is not what drivers/firmware/memmap.c writes", path.display())
            }
            Self::Inverted { dir } => write!(f, "{}: end is below start", dir.display()),
            Self::NoMemoryMap => {
                write!(f, "no e820 memory map: /sys/firmware/memmap is empty and /proc/iomem has no e820 entries")
            }
            Self::SetupHeader(n) => write!(
                f,
                "setup header is {n} bytes; boot_params has room for {} from 0x1f1 (zero-page.rst)",
                0x290 - HDR
            ),
            Self::Above4G { field, addr } => write!(
                f,
                "boot_params {field} would be {addr:#x}, above 4 GiB, but the kernel lacks XLF_CAN_BE_LOADED_ABOVE_4G (boot.rst)"
            ),
            Self::CmdlineNul => write!(f, "the kernel command line contains a NUL byte"),
        }
    }
}

impl std::error::Error for BootParamsError {}

fn read_trim(path: &Path) -> Result<String, BootParamsError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| BootParamsError::Read { path: path.to_path_buf(), why: e.to_string() })
}

fn parse_hex(path: &Path, s: &str) -> Result<u64, BootParamsError> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    u64::from_str_radix(digits, 16).map_err(|_| BootParamsError::Parse { path: path.to_path_buf(), value: s.into() })
}

/// The firmware memory map, /sys/firmware/memmap/N/{start,end,type}
/// (drivers/firmware/memmap.c: start/end "0x%llx", end inclusive; type the
/// e820_type_to_string() name). Unknown names are taken as Reserved, the
/// kernel's own default for unknown types. Empty when the directory is
/// absent (CONFIG_FIRMWARE_MEMMAP=n).
pub fn read_firmware_memmap(sys_root: &Path) -> Result<Vec<E820Entry>, BootParamsError> {
    let dir = sys_root.join("firmware/memmap");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let d = e.path();
        if e.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let start_path = d.join("start");
        let end_path = d.join("end");
        let start = parse_hex(&start_path, &read_trim(&start_path)?)?;
        let last = parse_hex(&end_path, &read_trim(&end_path)?)?;
        if last < start {
            return Err(BootParamsError::Inverted { dir: d });
        }
        let kind = e820_type_from_name(&read_trim(&d.join("type"))?).unwrap_or(E820_RESERVED);
        out.push(E820Entry::from_range(Range::inclusive(start, last), kind));
    }
    out.sort();
    Ok(out)
}

/// The e820 map as /proc/iomem shows it: top-level entries whose name is an
/// e820 type (arch/x86/kernel/e820.c e820__reserve_resources inserts one
/// resource per entry); PCI windows, ROMs and the like are skipped.
pub fn e820_from_iomem(iomem: &Iomem) -> Vec<E820Entry> {
    let mut out: Vec<E820Entry> = iomem
        .entries()
        .iter()
        .filter(|e| e.depth == 0)
        .filter_map(|e| e820_type_from_name(&e.name).map(|k| E820Entry::from_range(e.range, k)))
        .collect();
    out.sort();
    out
}

/// The map to hand over: the firmware map when sysfs has it (as kexec-tools
/// does), else /proc/iomem. Returns the map and where it came from.
pub fn read_e820(sys_root: &Path, iomem: &Iomem) -> Result<(Vec<E820Entry>, &'static str), BootParamsError> {
    let fw = read_firmware_memmap(sys_root)?;
    if !fw.is_empty() {
        return Ok((fw, "/sys/firmware/memmap"));
    }
    let io = e820_from_iomem(iomem);
    if io.is_empty() {
        return Err(BootParamsError::NoMemoryMap);
    }
    Ok((io, "/proc/iomem"))
}

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

/// What the running kernel was handed, from /sys/kernel/boot_params/data
/// (arch/x86/kernel/ksysfs.c: the raw zero page, root-only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunningBootParams {
    pub acpi_rsdp_addr: u64,
    /// screen_info, so the new kernel keeps the firmware framebuffer, as
    /// the kernel's kexec_file does (kexec-bzimage64.c setup_boot_parameters).
    pub screen_info: Option<[u8; SCREEN_INFO_LEN]>,
}

/// Read the RSDP and screen_info the new kernel needs. Order: the running
/// kernel's boot_params.acpi_rsdp_addr, else /sys/firmware/efi/systab's
/// "ACPI20=" then "ACPI=" (what kexec-bzimage64.c falls back to: efi.acpi20,
/// efi.acpi). Missing files are not errors: the RSDP stays 0 and the new
/// kernel scans the BIOS areas for it, as on a legacy-BIOS boot.
pub fn read_running(sys_root: &Path) -> RunningBootParams {
    let mut out = RunningBootParams::default();
    if let Ok(bp) = std::fs::read(sys_root.join("kernel/boot_params/data")) {
        if let Some(r) = bp.get(ACPI_RSDP_ADDR..ACPI_RSDP_ADDR + 8) {
            out.acpi_rsdp_addr = u64::from_le_bytes(r.try_into().unwrap_or([0; 8]));
        }
        if let Some(si) = bp.get(SCREEN_INFO..SCREEN_INFO + SCREEN_INFO_LEN) {
            let mut s = [0u8; SCREEN_INFO_LEN];
            s.copy_from_slice(si);
            out.screen_info = Some(s);
        }
    }
    if out.acpi_rsdp_addr == 0 {
        if let Ok(systab) = std::fs::read_to_string(sys_root.join("firmware/efi/systab")) {
            out.acpi_rsdp_addr = systab_rsdp(&systab).unwrap_or(0);
        }
    }
    out
}

/// drivers/firmware/efi/efi.c systab_show: "ACPI20=0x..." and "ACPI=0x..."
/// lines; ACPI 2.0 preferred.
pub fn systab_rsdp(text: &str) -> Option<u64> {
    let find = |key: &str| {
        text.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| {
            let v = v.trim();
            u64::from_str_radix(v.strip_prefix("0x").unwrap_or(v), 16).ok()
        })
    };
    find("ACPI20=").or_else(|| find("ACPI="))
}

/// What goes into the zero page.
#[derive(Debug, Clone)]
pub struct BootParamsInput<'a> {
    /// The bzImage's setup header (0x1f1 .. its end).
    pub setup_header: &'a [u8],
    pub can_load_above_4g: bool,
    pub cmdline: &'a str,
    /// The initrd's bytes in memory (not page-rounded).
    pub initrd: Option<Range>,
    pub e820: &'a [E820Entry],
    pub acpi_rsdp_addr: u64,
    pub screen_info: Option<[u8; SCREEN_INFO_LEN]>,
    pub rng_seed: [u8; RNG_SEED_LEN],
}

fn align16(n: usize) -> usize {
    n.next_multiple_of(16)
}

/// Where each part sits in the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentLayout {
    pub cmdline: usize,
    /// SETUP_E820_EXT node, when there are more than 128 entries.
    pub e820_ext: Option<usize>,
    pub rng_seed: usize,
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
    if input.cmdline.as_bytes().contains(&0) {
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
    put(&mut buf, lay.cmdline, input.cmdline.as_bytes());

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

    fn le64(b: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
    }
    fn le32(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rkx-bp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn header() -> Vec<u8> {
        let f = crate::bzimage::tests::sample(100);
        crate::bzimage::BzImage::parse(&f).unwrap().setup_header
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
            cmdline: "console=ttyS0 root=/dev/vda",
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
        i.cmdline = "a\0b";
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
    fn firmware_memmap_from_sysfs() {
        let root = tmp("memmap");
        for (n, start, end, ty) in [
            (0, "0x0", "0x9fbff", "System RAM"),
            (1, "0x9fc00", "0x9ffff", "Reserved"),
            (10, "0x100000000", "0x17fffffff", "System RAM"),
            (2, "0x7ffe0000", "0x7fffffff", "ACPI Tables"),
            (3, "0x80000000", "0x80000fff", "Something New"),
        ] {
            let d = root.join(format!("firmware/memmap/{n}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("start"), format!("{start}\n")).unwrap();
            std::fs::write(d.join("end"), format!("{end}\n")).unwrap();
            std::fs::write(d.join("type"), format!("{ty}\n")).unwrap();
        }
        let m = read_firmware_memmap(&root).unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m[0], E820Entry { addr: 0, size: 0x9fc00, kind: E820_RAM });
        assert_eq!(m[2], E820Entry { addr: 0x7ffe_0000, size: 0x2_0000, kind: E820_ACPI });
        assert_eq!(m[3].kind, E820_RESERVED, "unknown names are reserved");
        assert_eq!(m[4], E820Entry { addr: 0x1_0000_0000, size: 0x8000_0000, kind: E820_RAM });
        let io = Iomem::parse("00000000-00000fff : Reserved\n").unwrap();
        assert_eq!(read_e820(&root, &io).unwrap().1, "/sys/firmware/memmap");

        std::fs::write(root.join("firmware/memmap/3/end"), "0x1\n").unwrap();
        assert!(read_firmware_memmap(&root).unwrap_err().to_string().ends_with("memmap/3: end is below start"));
        std::fs::write(root.join("firmware/memmap/3/end"), "zz\n").unwrap();
        assert!(read_firmware_memmap(&root).unwrap_err().to_string().contains("memmap/3/end: 'zz'"));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn iomem_fallback_takes_top_level_e820_names() {
        let text = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
000a0000-000bffff : PCI Bus 0000:00
000f0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-7ffdbfff : System RAM
  1a000000-1a1fffff : Kernel code
7ffdc000-7fffffff : ACPI Non-volatile Storage
180000000-1bfffffff : System RAM (kmem)
";
        let io = Iomem::parse(text).unwrap();
        let m = e820_from_iomem(&io);
        let kinds: Vec<u32> = m.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [E820_RESERVED, E820_RAM, E820_RESERVED, E820_RAM, E820_NVS]);
        let root = tmp("nomemmap");
        assert_eq!(read_e820(&root, &io).unwrap(), (m, "/proc/iomem"));
        let none = Iomem::parse("000a0000-000bffff : PCI Bus 0000:00\n").unwrap();
        assert_eq!(read_e820(&root, &none).unwrap_err(), BootParamsError::NoMemoryMap);
        std::fs::remove_dir_all(&root).unwrap();
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

    #[test]
    fn rsdp_from_running_boot_params_then_systab() {
        let root = tmp("rsdp");
        assert_eq!(read_running(&root), RunningBootParams::default());
        std::fs::create_dir_all(root.join("firmware/efi")).unwrap();
        std::fs::write(root.join("firmware/efi/systab"), "SMBIOS3=0x7f8e0000\nACPI=0xf0000\nACPI20=0x7fb7e014\n")
            .unwrap();
        assert_eq!(read_running(&root).acpi_rsdp_addr, 0x7fb7_e014);
        assert_eq!(systab_rsdp("ACPI=0xf5a40\n"), Some(0xf_5a40));
        assert_eq!(systab_rsdp("SMBIOS=0x1\n"), None);
        let mut bp = vec![0u8; 4096];
        bp[0x70..0x78].copy_from_slice(&0xe_0000u64.to_le_bytes());
        bp[0] = 9;
        std::fs::create_dir_all(root.join("kernel/boot_params")).unwrap();
        std::fs::write(root.join("kernel/boot_params/data"), &bp).unwrap();
        let r = read_running(&root);
        assert_eq!(r.acpi_rsdp_addr, 0xe_0000);
        assert_eq!(r.screen_info.map(|s| s[0]), Some(9));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
