//! What the running kernel publishes for a crash dump: the per-CPU crash
//! note buffers (`/sys/devices/system/cpu/cpuN/crash_notes[_size]`), the
//! vmcoreinfo note (/sys/kernel/vmcoreinfo) and, with crash hotplug, the
//! room the kernel needs to rewrite the elfcorehdr
//! (/sys/kernel/crash_elfcorehdr_size).

use std::fmt;
use std::path::Path;

use super::{read_attr, ReadError};

/// A note buffer: physical address and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoteRegion {
    /// Physical address of the buffer.
    pub addr: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// A crash-dump file that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrashNotesError {
    /// A file or directory that must be there cannot be read.
    Read(ReadError),
    /// A file does not hold the number it should.
    Parse {
        /// The file.
        path: String,
        /// What it holds.
        value: String,
    },
    /// No cpuN/crash_notes under this directory (/sys/devices/system/cpu):
    /// the kernel has no CONFIG_CRASH_DUMP.
    NoCpuNotes(String),
    /// `--hotplug` on a kernel without crash hotplug.
    NoCrashHotplug(String),
}

impl fmt::Display for CrashNotesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(e) => write!(f, "{e}"),
            Self::Parse { path, value } => write!(f, "{path}: cannot parse '{value}'"),
            Self::NoCpuNotes(dir) => {
                write!(f, "{dir}: no cpuN/crash_notes files (kernel without CONFIG_CRASH_DUMP?)")
            }
            Self::NoCrashHotplug(path) => {
                write!(f, "--hotplug: {path} is missing: this kernel has no crash hotplug (CONFIG_CRASH_HOTPLUG)")
            }
        }
    }
}

impl std::error::Error for CrashNotesError {}

fn required(path: &Path) -> Result<String, CrashNotesError> {
    read_attr(path)
        .map_err(CrashNotesError::Read)?
        .ok_or_else(|| CrashNotesError::Read(ReadError { path: path.to_path_buf(), why: "file is missing".into() }))
}

fn parse_hex(path: &Path, s: &str) -> Result<u64, CrashNotesError> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16)
        .map_err(|_| CrashNotesError::Parse { path: path.display().to_string(), value: s.into() })
}

fn parse_dec(path: &Path, s: &str) -> Result<u64, CrashNotesError> {
    s.parse().map_err(|_| CrashNotesError::Parse { path: path.display().to_string(), value: s.into() })
}

/// Per-CPU crash note regions: cpuN/crash_notes (hex address) and
/// cpuN/crash_notes_size (decimal), in CPU order (drivers/base/cpu.c).
pub fn read_cpu_notes(sys_root: &Path) -> Result<Vec<NoteRegion>, CrashNotesError> {
    let dir = sys_root.join("devices/system/cpu");
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| CrashNotesError::Read(ReadError { path: dir.clone(), why: e.to_string() }))?;
    let mut cpus: Vec<(u32, NoteRegion)> = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(n) = name.strip_prefix("cpu").and_then(|n| n.parse::<u32>().ok()) else { continue };
        let notes = e.path().join("crash_notes");
        if !notes.exists() {
            continue;
        }
        let addr = parse_hex(&notes, &required(&notes)?)?;
        let size_path = e.path().join("crash_notes_size");
        let size = parse_dec(&size_path, &required(&size_path)?)?;
        cpus.push((n, NoteRegion { addr, size }));
    }
    if cpus.is_empty() {
        return Err(CrashNotesError::NoCpuNotes(dir.display().to_string()));
    }
    cpus.sort_by_key(|c| c.0);
    Ok(cpus.into_iter().map(|c| c.1).collect())
}

/// /sys/kernel/vmcoreinfo: `"<hex address> <hex size>"` (kernel/ksysfs.c).
pub fn read_vmcoreinfo(sys_root: &Path) -> Result<NoteRegion, CrashNotesError> {
    let path = sys_root.join("kernel/vmcoreinfo");
    let text = required(&path)?;
    let mut it = text.split_whitespace();
    let (Some(a), Some(s)) = (it.next(), it.next()) else {
        return Err(CrashNotesError::Parse { path: path.display().to_string(), value: text });
    };
    Ok(NoteRegion { addr: parse_hex(&path, a)?, size: parse_hex(&path, s)? })
}

/// Whether the running kernel has crash hotplug (CONFIG_CRASH_HOTPLUG):
/// it then shows /sys/kernel/crash_elfcorehdr_size (kernel/ksysfs.c).
pub fn has_crash_hotplug(sys_root: &Path) -> bool {
    sys_root.join("kernel/crash_elfcorehdr_size").is_file()
}

/// Bytes the kernel needs for an elfcorehdr it may rewrite (crash
/// hotplug): /sys/kernel/crash_elfcorehdr_size counts only the program
/// headers (kernel/crash_core.c crash_get_elfcorehdr_size), so the ELF
/// header's 64 bytes are added. An error when the file is missing: the
/// kernel has no crash hotplug.
pub fn hotplug_elfcorehdr_size(sys_root: &Path) -> Result<u64, CrashNotesError> {
    const EHDR_SIZE: u64 = 64;
    let path = sys_root.join("kernel/crash_elfcorehdr_size");
    if !path.exists() {
        return Err(CrashNotesError::NoCrashHotplug(path.display().to_string()));
    }
    let phdrs = parse_dec(&path, &required(&path)?)?;
    phdrs
        .checked_add(EHDR_SIZE)
        .ok_or_else(|| CrashNotesError::Parse { path: path.display().to_string(), value: phdrs.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sysfs_fixtures() {
        let root = std::env::temp_dir().join(format!("rkx-notes-{}", std::process::id()));
        for (cpu, addr) in [(1, "7fa001000"), (0, "7fa000000"), (10, "7fa00a000")] {
            let d = root.join(format!("devices/system/cpu/cpu{cpu}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("crash_notes"), format!("{addr}\n")).unwrap();
            std::fs::write(d.join("crash_notes_size"), "432\n").unwrap();
        }
        std::fs::create_dir_all(root.join("devices/system/cpu/cpufreq")).unwrap();
        std::fs::create_dir_all(root.join("kernel")).unwrap();
        std::fs::write(root.join("kernel/vmcoreinfo"), "4f0b1000 1000\n").unwrap();
        assert!(hotplug_elfcorehdr_size(&root).unwrap_err().to_string().contains("no crash hotplug"));
        std::fs::write(root.join("kernel/crash_elfcorehdr_size"), "49392\n").unwrap();
        let notes = read_cpu_notes(&root).unwrap();
        assert_eq!(notes.iter().map(|n| n.addr).collect::<Vec<_>>(), [0x7_fa00_0000, 0x7_fa00_1000, 0x7_fa00_a000]);
        assert_eq!(notes[0].size, 432);
        assert_eq!(read_vmcoreinfo(&root).unwrap(), NoteRegion { addr: 0x4f0b_1000, size: 0x1000 });
        assert_eq!(hotplug_elfcorehdr_size(&root).unwrap(), 64 + 49392);
        std::fs::write(root.join("kernel/vmcoreinfo"), "nonsense\n").unwrap();
        assert!(read_vmcoreinfo(&root).unwrap_err().to_string().contains("kernel/vmcoreinfo: cannot parse"));
        std::fs::write(root.join("kernel/crash_elfcorehdr_size"), "18446744073709551615\n").unwrap();
        assert!(hotplug_elfcorehdr_size(&root).is_err(), "no overflow");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
