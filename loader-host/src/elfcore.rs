//! The kdump elfcorehdr: an ELF64 ET_CORE header describing the crashed
//! kernel's memory for the capture kernel's /proc/vmcore (fs/proc/vmcore.c
//! parses it). Built in userspace for kexec_load, as kexec-tools does.

use std::fmt;
use std::path::Path;

use crate::layout::Range;

const EHDR_SIZE: u64 = 64;
const PHDR_SIZE: u64 = 56;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const ET_CORE: u16 = 4;
pub const EM_AARCH64: u16 = 183;
pub const EM_X86_64: u16 = 62;

/// A note region: its physical address and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoteRegion {
    pub addr: u64,
    pub size: u64,
}

/// What goes into the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreLayout {
    pub machine: u16,
    /// One per possible CPU (/sys/devices/system/cpu/cpuN/crash_notes).
    pub cpu_notes: Vec<NoteRegion>,
    /// /sys/kernel/vmcoreinfo.
    pub vmcoreinfo: NoteRegion,
    /// Memory to dump: System RAM minus the crash kernel region(s).
    pub ram: Vec<Range>,
    /// Linear-map offset: p_vaddr = p_paddr + this (wrapping), or None to
    /// leave p_vaddr 0 (readers of /proc/vmcore use p_offset/p_paddr).
    pub virt_offset: Option<u64>,
    /// x86_64: the kernel text mapping (vaddr, paddr, size), emitted as the
    /// first PT_LOAD as the kernel's own crash_prepare_elf64_headers does
    /// (dump tools use it to find the kernel image).
    pub kernel_text: Option<(u64, u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfCoreError {
    Read {
        path: String,
        why: String,
    },
    Parse {
        path: String,
        value: String,
    },
    NoCpuNotes(String),
    TooManyHeaders(usize),
    TooSmall {
        needed: u64,
        available: u64,
    },
    /// `--hotplug` on a kernel without crash hotplug.
    NoCrashHotplug(String),
}

impl fmt::Display for ElfCoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfCoreError::Read { path, why } => write!(f, "{path}: {why}"),
            ElfCoreError::Parse { path, value } => write!(f, "{path}: cannot parse '{value}'"),
            ElfCoreError::NoCpuNotes(dir) => {
                write!(f, "{dir}: no cpuN/crash_notes files (kernel without CONFIG_CRASH_DUMP?)")
            }
            ElfCoreError::TooManyHeaders(n) => write!(f, "{n} program headers do not fit ELF's 16-bit e_phnum"),
            ElfCoreError::NoCrashHotplug(path) => write!(
                f,
                "--hotplug: {path} is missing: this kernel has no crash hotplug (CONFIG_CRASH_HOTPLUG)"
            ),
            ElfCoreError::TooSmall { needed, available } => write!(
                f,
                "elfcorehdr needs {needed} bytes but the kernel sized it at {available} (/sys/kernel/crash_elfcorehdr_size)"
            ),
        }
    }
}

impl std::error::Error for ElfCoreError {}

impl CoreLayout {
    pub fn phnum(&self) -> usize {
        self.cpu_notes.len() + 1 + self.loads()
    }

    /// PT_LOAD entries: kernel text (if any) and the RAM ranges.
    pub fn loads(&self) -> usize {
        self.ram.len() + usize::from(self.kernel_text.is_some())
    }

    /// Bytes the header needs.
    pub fn size(&self) -> u64 {
        EHDR_SIZE + PHDR_SIZE * self.phnum() as u64
    }

    /// Serialise: Ehdr, then PT_NOTE per CPU, PT_NOTE vmcoreinfo, PT_LOAD
    /// per RAM range (the order kexec-tools uses).
    pub fn build(&self) -> Result<Vec<u8>, ElfCoreError> {
        let phnum = u16::try_from(self.phnum()).map_err(|_| ElfCoreError::TooManyHeaders(self.phnum()))?;
        let mut out = Vec::with_capacity(self.size() as usize);
        // ELF gABI "ELF Header": e_ident, then the fixed fields.
        out.extend_from_slice(b"\x7fELF");
        out.extend_from_slice(&[2, 1, 1, 0]); // ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ELFOSABI_NONE
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&ET_CORE.to_le_bytes());
        out.extend_from_slice(&self.machine.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes()); // e_version
        out.extend_from_slice(&0u64.to_le_bytes()); // e_entry
        out.extend_from_slice(&EHDR_SIZE.to_le_bytes()); // e_phoff
        out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        out.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
        out.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        out.extend_from_slice(&phnum.to_le_bytes());
        out.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
        let mut phdr = |p_type: u32, flags: u32, paddr: u64, vaddr: u64, size: u64| {
            out.extend_from_slice(&p_type.to_le_bytes());
            out.extend_from_slice(&flags.to_le_bytes());
            out.extend_from_slice(&paddr.to_le_bytes()); // p_offset: physical, as vmcore.c expects
            out.extend_from_slice(&vaddr.to_le_bytes());
            out.extend_from_slice(&paddr.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes()); // p_filesz
            out.extend_from_slice(&size.to_le_bytes()); // p_memsz
            out.extend_from_slice(&0u64.to_le_bytes()); // p_align
        };
        for n in &self.cpu_notes {
            phdr(PT_NOTE, 0, n.addr, 0, n.size);
        }
        phdr(PT_NOTE, 0, self.vmcoreinfo.addr, 0, self.vmcoreinfo.size);
        if let Some((vaddr, paddr, size)) = self.kernel_text {
            phdr(PT_LOAD, 7, paddr, vaddr, size);
        }
        for r in &self.ram {
            let vaddr = self.virt_offset.map_or(0, |o| r.start.wrapping_add(o));
            phdr(PT_LOAD, 7, r.start, vaddr, r.len()); // PF_R|PF_W|PF_X
        }
        Ok(out)
    }
}

fn read_trim(path: &Path) -> Result<String, ElfCoreError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| ElfCoreError::Read { path: path.display().to_string(), why: e.to_string() })
}

fn parse_hex(path: &Path, s: &str) -> Result<u64, ElfCoreError> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16)
        .map_err(|_| ElfCoreError::Parse { path: path.display().to_string(), value: s.into() })
}

/// Per-CPU crash note regions: cpuN/crash_notes (hex address) and
/// cpuN/crash_notes_size (decimal), in CPU order.
pub fn read_cpu_notes(sys_root: &Path) -> Result<Vec<NoteRegion>, ElfCoreError> {
    let dir = sys_root.join("devices/system/cpu");
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| ElfCoreError::Read { path: dir.display().to_string(), why: e.to_string() })?;
    let mut cpus: Vec<(u32, NoteRegion)> = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(n) = name.strip_prefix("cpu").and_then(|n| n.parse::<u32>().ok()) else { continue };
        let notes = e.path().join("crash_notes");
        if !notes.exists() {
            continue;
        }
        let addr = parse_hex(&notes, &read_trim(&notes)?)?;
        let size_path = e.path().join("crash_notes_size");
        let size_text = read_trim(&size_path)?;
        let size = size_text
            .parse()
            .map_err(|_| ElfCoreError::Parse { path: size_path.display().to_string(), value: size_text })?;
        cpus.push((n, NoteRegion { addr, size }));
    }
    if cpus.is_empty() {
        return Err(ElfCoreError::NoCpuNotes(dir.display().to_string()));
    }
    cpus.sort_by_key(|c| c.0);
    Ok(cpus.into_iter().map(|c| c.1).collect())
}

/// /sys/kernel/vmcoreinfo: "<hex address> <hex size>".
pub fn read_vmcoreinfo(sys_root: &Path) -> Result<NoteRegion, ElfCoreError> {
    let path = sys_root.join("kernel/vmcoreinfo");
    let text = read_trim(&path)?;
    let mut it = text.split_whitespace();
    let (Some(a), Some(s)) = (it.next(), it.next()) else {
        return Err(ElfCoreError::Parse { path: path.display().to_string(), value: text });
    };
    Ok(NoteRegion { addr: parse_hex(&path, a)?, size: parse_hex(&path, s)? })
}

/// The elfcorehdr segment size the kernel needs for crash hotplug:
/// /sys/kernel/crash_elfcorehdr_size counts only the program headers
/// (kernel/crash_core.c crash_get_elfcorehdr_size), so add the Ehdr.
pub fn hotplug_size(sys_root: &Path) -> Result<u64, ElfCoreError> {
    let path = sys_root.join("kernel/crash_elfcorehdr_size");
    let text = read_trim(&path)?;
    let phdrs: u64 = text.parse().map_err(|_| ElfCoreError::Parse { path: path.display().to_string(), value: text })?;
    Ok(EHDR_SIZE + phdrs)
}

/// memsz of the elfcorehdr segment: its own size, or with crash hotplug
/// the room the kernel needs to rewrite it in place.
pub fn segment_memsz(header_len: u64, sys_root: &Path, hotplug: bool) -> Result<u64, ElfCoreError> {
    if !hotplug {
        return Ok(header_len);
    }
    let size_file = sys_root.join("kernel/crash_elfcorehdr_size");
    if !size_file.exists() {
        return Err(ElfCoreError::NoCrashHotplug(size_file.display().to_string()));
    }
    let room = hotplug_size(sys_root)?;
    if room < header_len {
        return Err(ElfCoreError::TooSmall { needed: header_len, available: room });
    }
    Ok(room)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> CoreLayout {
        CoreLayout {
            machine: EM_AARCH64,
            cpu_notes: vec![NoteRegion { addr: 0x1000, size: 0x200 }, NoteRegion { addr: 0x2000, size: 0x200 }],
            vmcoreinfo: NoteRegion { addr: 0x5000, size: 0x1000 },
            ram: vec![Range::new(0x4000_0000, 0x5000_0000), Range::new(0x6000_0000, 0x8000_0000)],
            virt_offset: Some(0xffff_0000_0000_0000u64.wrapping_sub(0x4000_0000)),
            kernel_text: None,
        }
    }

    #[test]
    fn kernel_text_is_the_first_load() {
        use object::read::elf::{ElfFile64, ProgramHeader as _};
        let mut l = layout();
        l.kernel_text = Some((0xffff_ffff_8100_0000, 0x100_0000, 0x200_0000));
        let bytes = l.build().unwrap();
        assert_eq!(l.loads(), 3);
        let elf = ElfFile64::<object::Endianness>::parse(&bytes[..]).unwrap();
        let e = elf.endian();
        let first_load = &elf.elf_program_headers()[3];
        assert_eq!(first_load.p_type(e).0, PT_LOAD);
        assert_eq!(
            (first_load.p_vaddr(e), first_load.p_paddr(e), first_load.p_memsz(e)),
            (0xffff_ffff_8100_0000, 0x100_0000, 0x200_0000)
        );
    }

    #[test]
    fn header_round_trips_through_the_object_crate() {
        use object::read::elf::{ElfFile64, ProgramHeader as _};
        let bytes = layout().build().unwrap();
        assert_eq!(bytes.len() as u64, layout().size());
        let elf = ElfFile64::<object::Endianness>::parse(&bytes[..]).unwrap();
        let e = elf.endian();
        let types: Vec<u32> = elf.elf_program_headers().iter().map(|p| p.p_type(e).0).collect();
        assert_eq!(types, [PT_NOTE, PT_NOTE, PT_NOTE, PT_LOAD, PT_LOAD]);
        let load = &elf.elf_program_headers()[4];
        assert_eq!(load.p_paddr(e), 0x6000_0000);
        assert_eq!(load.p_offset(e), 0x6000_0000);
        assert_eq!(load.p_memsz(e), 0x2000_0000);
        assert_eq!(load.p_vaddr(e), 0xffff_0000_2000_0000);
        // The purgatory's structure check accepts it.
        assert_eq!(kexec_purgatory::checks::check_elf64_core(&bytes), Ok(()));
    }

    #[test]
    fn reads_sysfs_fixtures() {
        let root = std::env::temp_dir().join(format!("rkx-elfcore-{}", std::process::id()));
        for (cpu, addr) in [(1, "7fa001000"), (0, "7fa000000"), (10, "7fa00a000")] {
            let d = root.join(format!("devices/system/cpu/cpu{cpu}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("crash_notes"), format!("{addr}\n")).unwrap();
            std::fs::write(d.join("crash_notes_size"), "432\n").unwrap();
        }
        std::fs::create_dir_all(root.join("devices/system/cpu/cpufreq")).unwrap();
        std::fs::create_dir_all(root.join("kernel")).unwrap();
        std::fs::write(root.join("kernel/vmcoreinfo"), "4f0b1000 1000\n").unwrap();
        std::fs::write(root.join("kernel/crash_elfcorehdr_size"), "49392\n").unwrap();
        let notes = read_cpu_notes(&root).unwrap();
        assert_eq!(notes.iter().map(|n| n.addr).collect::<Vec<_>>(), [0x7_fa00_0000, 0x7_fa00_1000, 0x7_fa00_a000]);
        assert_eq!(notes[0].size, 432);
        assert_eq!(read_vmcoreinfo(&root).unwrap(), NoteRegion { addr: 0x4f0b_1000, size: 0x1000 });
        assert_eq!(hotplug_size(&root).unwrap(), 64 + 49392);
        std::fs::write(root.join("kernel/vmcoreinfo"), "nonsense\n").unwrap();
        assert!(read_vmcoreinfo(&root).unwrap_err().to_string().contains("kernel/vmcoreinfo: cannot parse"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
