//! What firmware told the running kernel, as sysfs and procfs show it: the
//! e820-style memory map (/sys/firmware/memmap, or /proc/iomem's top-level
//! entries), the ACPI RSDP and the screen_info it was handed
//! (/sys/kernel/boot_params/data, /sys/firmware/efi/systab). x86 hands this
//! to the next kernel in its zero page.

use std::fmt;
use std::path::{Path, PathBuf};

use super::iomem::Iomem;
use crate::range::{FreeMap, Range};

/// zero-page.rst: screen_info occupies the first 0x40 bytes.
pub const SCREEN_INFO_LEN: usize = 0x40;
const SCREEN_INFO: usize = 0x000;
/// zero-page.rst acpi_rsdp_addr.
const ACPI_RSDP_ADDR: usize = 0x070;

/// e820 type E820_TYPE_RAM (arch/x86/include/asm/e820/types.h), "System
/// RAM".
pub const E820_RAM: u32 = 1;
/// E820_TYPE_RESERVED, "Reserved".
pub const E820_RESERVED: u32 = 2;
/// E820_TYPE_ACPI, "ACPI Tables" (reclaimable once the kernel has read
/// them).
pub const E820_ACPI: u32 = 3;
/// E820_TYPE_NVS, "ACPI Non-volatile Storage".
pub const E820_NVS: u32 = 4;
/// E820_TYPE_UNUSABLE, "Unusable memory".
pub const E820_UNUSABLE: u32 = 5;
/// E820_TYPE_PMEM, "Persistent Memory".
pub const E820_PMEM: u32 = 7;
/// E820_TYPE_PRAM, "Persistent Memory (legacy)".
pub const E820_PRAM: u32 = 12;
/// E820_TYPE_SOFT_RESERVED, "Soft Reserved" (EFI specific-purpose memory).
pub const E820_SOFT_RESERVED: u32 = 0xefff_ffff;

/// One e820 entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct E820Entry {
    /// Physical start address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// The e820 type (`E820_*`).
    pub kind: u32,
}

impl E820Entry {
    /// `[addr, addr + size)`, the end saturated at 2^64 - 1.
    pub fn range(&self) -> Range {
        Range::new(self.addr, self.addr.saturating_add(self.size))
    }

    /// The entry covering `r` with type `kind`.
    pub fn from_range(r: Range, kind: u32) -> Self {
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

/// A firmware file that is missing or malformed; each names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirmwareError {
    /// A memmap file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The read error.
        why: String,
    },
    /// A memmap file that does not hold what firmware_memmap.c prints.
    Parse {
        /// The file.
        path: PathBuf,
        /// What it holds.
        value: String,
    },
    /// A memmap entry whose end is below its start.
    Inverted {
        /// The entry's directory, /sys/firmware/memmap/N.
        dir: PathBuf,
    },
    /// Neither /sys/firmware/memmap nor /proc/iomem gave an e820 entry.
    NoMemoryMap,
}

impl fmt::Display for FirmwareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, why } => write!(f, "{}: {why}", crate::escape::path(path)),
            Self::Parse { path, value } => {
                write!(
                    f,
                    "{}: '{}' is not what drivers/firmware/memmap.c writes",
                    crate::escape::path(path),
                    crate::escape::text(value)
                )
            }
            Self::Inverted { dir } => write!(f, "{}: end is below start", crate::escape::path(dir)),
            Self::NoMemoryMap => {
                write!(f, "no e820 memory map: /sys/firmware/memmap is empty and /proc/iomem has no e820 entries")
            }
        }
    }
}

impl std::error::Error for FirmwareError {}

fn read_trim(path: &Path) -> Result<String, FirmwareError> {
    super::read_text(path).map(|s| s.trim().to_string()).map_err(|e| FirmwareError::Read { path: e.path, why: e.why })
}

fn parse_hex(path: &Path, s: &str) -> Result<u64, FirmwareError> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    u64::from_str_radix(digits, 16).map_err(|_| FirmwareError::Parse { path: path.to_path_buf(), value: s.into() })
}

/// The firmware memory map, /sys/firmware/memmap/N/{start,end,type}
/// (drivers/firmware/memmap.c: start/end "0x%llx", end inclusive; type the
/// e820_type_to_string() name). Unknown names are taken as Reserved, the
/// kernel's own default for unknown types. Empty when the directory is
/// absent (CONFIG_FIRMWARE_MEMMAP=n).
pub fn read_firmware_memmap(sys_root: &Path) -> Result<Vec<E820Entry>, FirmwareError> {
    let dir = sys_root.join("firmware/memmap");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let d = e.path();
        if e.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let [start, end, kind] = ["start", "end", "type"].map(|f| read_trim(&d.join(f)));
        out.push(memmap_entry(&d, &start?, &end?, &kind?)?);
    }
    out.sort();
    Ok(out)
}

/// One /sys/firmware/memmap/N entry from its trimmed `start`, `end` and
/// `type` files (`dir` names it in errors).
pub fn memmap_entry(dir: &Path, start: &str, end: &str, kind: &str) -> Result<E820Entry, FirmwareError> {
    let start = parse_hex(&dir.join("start"), start)?;
    let last = parse_hex(&dir.join("end"), end)?;
    if last < start {
        return Err(FirmwareError::Inverted { dir: dir.to_path_buf() });
    }
    let kind = e820_type_from_name(kind).unwrap_or(E820_RESERVED);
    Ok(E820Entry::from_range(Range::inclusive(start, last), kind))
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
pub fn read_e820(sys_root: &Path, iomem: &Iomem) -> Result<(Vec<E820Entry>, &'static str), FirmwareError> {
    let fw = read_firmware_memmap(sys_root)?;
    if !fw.is_empty() {
        return Ok((fw, "/sys/firmware/memmap"));
    }
    let io = e820_from_iomem(iomem);
    if io.is_empty() {
        return Err(FirmwareError::NoMemoryMap);
    }
    Ok((io, "/proc/iomem"))
}

/// Keep `free` inside the RAM entries (E820_RAM) of `e820`, the map the
/// new kernel gets, noting what /proc/iomem offered that the map does not
/// call RAM.
pub fn within_e820_ram(free: &mut FreeMap, e820: &[E820Entry], source: &str, notes: &mut Vec<String>) {
    let ram = FreeMap::new(e820.iter().filter(|e| e.kind == E820_RAM).map(E820Entry::range).collect());
    let mut dropped = free.clone();
    free.intersect(&ram);
    dropped.remove_all(ram.ranges().iter().copied());
    for r in dropped.ranges() {
        notes.push(format!(
            "not using {r}: System RAM in /proc/iomem, but not RAM in the e820 map the new kernel gets ({source})"
        ));
    }
}

/// What the running kernel was handed, from /sys/kernel/boot_params/data
/// (arch/x86/kernel/ksysfs.c: the raw zero page, root-only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunningBootParams {
    /// The ACPI RSDP's physical address; 0 when unknown.
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
    let mut out = match super::read_bounded(&sys_root.join("kernel/boot_params/data"), 1 << 16) {
        Ok(bp) => running_from_boot_params(&bp),
        Err(_) => RunningBootParams::default(),
    };
    if out.acpi_rsdp_addr == 0 {
        if let Ok(systab) = super::read_text(&sys_root.join("firmware/efi/systab")) {
            out.acpi_rsdp_addr = systab_rsdp(&systab).unwrap_or(0);
        }
    }
    out
}

/// The RSDP and screen_info of a zero page as /sys/kernel/boot_params/data
/// holds it (fields a shorter blob does not reach stay unset).
pub fn running_from_boot_params(bp: &[u8]) -> RunningBootParams {
    let mut out = RunningBootParams::default();
    if let Some(r) = crate::fields::le64(bp, ACPI_RSDP_ADDR) {
        out.acpi_rsdp_addr = r;
    }
    out.screen_info = crate::fields::array(bp, SCREEN_INFO);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rkx-fw-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
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
        assert_eq!(read_e820(&root, &none).unwrap_err(), FirmwareError::NoMemoryMap);
        std::fs::remove_dir_all(&root).unwrap();
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

    #[test]
    fn placement_stays_inside_the_e820_ram_handed_over() {
        let e820 = [
            E820Entry { addr: 0x1000, size: 0x9_f000, kind: E820_RAM },
            E820Entry { addr: 0x10_0000, size: 0x7ff0_0000, kind: E820_RAM },
            E820Entry { addr: 0x1_0000_0000, size: 0x8000_0000, kind: E820_RESERVED },
        ];
        let mut free = FreeMap::new(vec![Range::new(0x10_0000, 0x8000_0000), Range::new(0x1_0000_0000, 0x1_8000_0000)]);
        let mut notes = Vec::new();
        within_e820_ram(&mut free, &e820, "/sys/firmware/memmap", &mut notes);
        assert_eq!(free.ranges(), &[Range::new(0x10_0000, 0x8000_0000)]);
        assert_eq!(notes, ["not using 0x100000000-0x17fffffff: System RAM in /proc/iomem, but not RAM in the e820 map the new kernel gets (/sys/firmware/memmap)"]);
    }
}
