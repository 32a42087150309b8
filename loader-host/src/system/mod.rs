//! Everything read from the running machine: /proc/iomem, the firmware
//! memory map, memory-hotplug blocks, /proc/kcore, crash notes, the serial
//! console in sysfs, entropy. Roots are configurable, so plans can be made
//! from another machine's files and tests use fixture trees. Nothing here
//! trusts what it reads: sizes are bounded, numbers checked, and every
//! error names the file.

pub mod console;
pub mod cpu_list;
pub mod crash_notes;
pub mod device_tree;
pub mod entropy;
pub mod firmware;
pub mod iomem;
pub mod kcore;
pub mod memory;
pub mod memory_hotplug;

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where /proc and /sys are.
#[derive(Debug, Clone)]
pub struct SystemSources {
    /// Stands for /proc (iomem, cmdline, kcore).
    pub proc_root: PathBuf,
    /// Stands for /sys (firmware/fdt, firmware/memmap, devices/system/...,
    /// class/tty, kernel/...).
    pub sys_root: PathBuf,
    /// The running kernel's page size: kexec_load's segments must be
    /// aligned to it (kernel/kexec_core.c sanity_check_segment_list checks
    /// PAGE_SIZE: 64 KiB on Debian's bookworm ppc64el kernels).
    pub page_size: u64,
}

/// A file we could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    /// The file.
    pub path: PathBuf,
    /// The I/O error, or the bound or encoding rule it breaks.
    pub why: String,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", crate::escape::path(&self.path), self.why)
    }
}

impl std::error::Error for ReadError {}

/// Why the memory map cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryMapError {
    /// /proc/iomem or a device-tree file could not be read.
    Read(ReadError),
    /// /proc/iomem is malformed: the memory map cannot be trusted, so
    /// nothing is placed.
    Iomem {
        /// The /proc/iomem read.
        path: PathBuf,
        /// The line and the rule it breaks.
        err: iomem::IomemError,
    },
}

impl fmt::Display for MemoryMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(e) => write!(f, "{e}"),
            Self::Iomem { path, err } => write!(f, "{}: {err}", crate::escape::path(path)),
        }
    }
}

impl std::error::Error for MemoryMapError {}

/// The most any /proc or /sys text file is read for (a real /proc/iomem is
/// a few KiB, 100 000 lines are 5 MiB; a hostile or broken one must not
/// exhaust memory).
pub const TEXT_LIMIT: u64 = 16 << 20;

/// The most a sysfs attribute or a one-line procfs file (/proc/cmdline) is
/// read for: sysfs formats an attribute into one page
/// (fs/sysfs/file.c sysfs_kf_seq_show, PAGE_SIZE, at most 64 KiB on the
/// architectures rkexec loads for); /proc/cmdline is saved_command_line
/// (COMMAND_LINE_SIZE, plus a bootconfig's at most 32 KiB).
pub const ATTR_LIMIT: u64 = 64 << 10;

/// What a file is when it is not a regular one, for messages.
pub fn file_kind(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "directory"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Open a /proc, /sys or firmware file without waiting: O_NONBLOCK (a FIFO
/// is not waited on for a writer; regular files ignore it), O_NOCTTY, and
/// on the opened descriptor (no window for the path to be swapped) the
/// check that it is a regular file, as every procfs and sysfs file is
/// (S_IFREG; /sys/firmware/fdt is a binary attribute). A FIFO, a device (a
/// link to /dev/zero), a socket or a directory is refused before a byte is
/// read.
pub fn open_regular(path: &Path) -> Result<std::fs::File, ReadError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |why: String| ReadError { path: path.to_path_buf(), why };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| err(e.to_string()))?;
    let ft = f.metadata().map_err(|e| err(e.to_string()))?.file_type();
    if !ft.is_file() {
        return Err(err(format!(
            "is a {}, not a regular file (the kernel's /proc and /sys files are regular files)",
            file_kind(ft)
        )));
    }
    Ok(f)
}

/// Read at most `limit` bytes of `path` (proc and sysfs files report size
/// 0, so the bound is on the read), naming the file in errors. Opened by
/// [`open_regular`]: never blocks, never reads a device.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let err = |why: String| ReadError { path: path.to_path_buf(), why };
    let f = open_regular(path)?;
    let mut out = Vec::new();
    f.take(limit.saturating_add(1)).read_to_end(&mut out).map_err(|e| err(e.to_string()))?;
    if out.len() as u64 > limit {
        return Err(err(format!("larger than {limit} bytes, more than this file can hold")));
    }
    Ok(out)
}

/// A bounded text file.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    read_text_within(path, TEXT_LIMIT)
}

/// A text file of at most `limit` bytes.
pub fn read_text_within(path: &Path, limit: u64) -> Result<String, ReadError> {
    let bytes = read_bounded(path, limit)?;
    String::from_utf8(bytes).map_err(|_| ReadError { path: path.to_path_buf(), why: "not UTF-8 text".into() })
}

/// A small sysfs attribute (at most [`ATTR_LIMIT`] bytes), trimmed; None
/// when the file does not exist.
pub fn read_attr(path: &Path) -> Result<Option<String>, ReadError> {
    match read_text_within(path, ATTR_LIMIT) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(_) if std::fs::symlink_metadata(path).is_err() => Ok(None),
        Err(e) => Err(e),
    }
}

/// This machine's page size: sysconf(_SC_PAGESIZE), 4 KiB if that fails.
pub fn host_page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(v).ok().filter(|&v| v > 0 && v.is_power_of_two()).unwrap_or(4096)
}

impl SystemSources {
    /// Read /proc from `proc_root` and /sys from `sys_root` (another
    /// machine's copies, or test fixtures).
    pub fn new(proc_root: PathBuf, sys_root: PathBuf) -> Self {
        SystemSources { proc_root, sys_root, page_size: host_page_size() }
    }

    /// The same, describing a kernel with `page_size` pages (another
    /// machine's files, test fixtures).
    pub fn with_page_size(self, page_size: u64) -> Self {
        SystemSources { page_size, ..self }
    }

    /// /proc/device-tree: the running kernel's live device tree (a link
    /// to /sys/firmware/devicetree/base), where the machine has one.
    pub fn device_tree_dir(&self) -> PathBuf {
        self.proc_root.join("device-tree")
    }

    /// The running machine's own /proc and /sys.
    pub fn running() -> Self {
        SystemSources::new("/proc".into(), "/sys".into())
    }

    /// /proc/iomem.
    pub fn iomem_path(&self) -> PathBuf {
        self.proc_root.join("iomem")
    }

    /// The text of /proc/iomem, bounded by [`TEXT_LIMIT`].
    pub fn iomem(&self) -> Result<String, ReadError> {
        read_text(&self.iomem_path())
    }

    /// The machine's memory map: /proc/iomem, completed with what the
    /// running kernel publishes only in its device tree
    /// ([`device_tree::firmware_ranges`]: powerpc lists neither its own
    /// image nor the crash reservation in /proc/iomem).
    pub fn memory_map(&self) -> Result<iomem::Iomem, MemoryMapError> {
        let path = self.iomem_path();
        let mut map = iomem::Iomem::parse(&self.iomem().map_err(MemoryMapError::Read)?)
            .map_err(|err| MemoryMapError::Iomem { path, err })?;
        let firmware = device_tree::firmware_ranges(&self.device_tree_dir()).map_err(MemoryMapError::Read)?;
        map.add_firmware_ranges(&firmware);
        Ok(map)
    }

    /// The running kernel's command line, without the trailing newline,
    /// as bytes: kexec-tools reads it with fgets and hands it on as it is
    /// (kexec/kexec.c get_command_line), and the kernel sets no encoding.
    /// A NUL inside it is refused, naming the file: the kernel prints
    /// saved_command_line, one C string, and a line with a NUL cannot be
    /// handed on (it would be cut there, or blamed on the boot data).
    pub fn cmdline(&self) -> Result<Vec<u8>, ReadError> {
        let path = self.proc_root.join("cmdline");
        let mut line = read_bounded(&path, ATTR_LIMIT)?;
        while line.last().is_some_and(|&b| b == b'\n' || b == 0) {
            line.pop();
        }
        if let Some(at) = line.iter().position(|&b| b == 0) {
            return Err(ReadError {
                path,
                why: format!("holds a NUL byte at offset {at}: a kernel command line is one NUL-terminated string"),
            });
        }
        Ok(line)
    }

    /// The DTB the running kernel booted with.
    pub fn fdt_path(&self) -> PathBuf {
        self.sys_root.join("firmware/fdt")
    }

    /// /proc/kcore (its program headers give x86's kernel text mapping and
    /// the linear-map offset for the elfcorehdr).
    pub fn kcore_path(&self) -> PathBuf {
        self.proc_root.join("kcore")
    }

    /// /sys/devices/system/memory: the memory-hotplug blocks.
    pub fn memory_blocks_dir(&self) -> PathBuf {
        self.sys_root.join("devices/system/memory")
    }

    /// /sys/kernel/kexec_loaded (or kexec_crash_loaded): "1" when loaded.
    pub fn kexec_loaded(&self, crash: bool) -> Result<bool, ReadError> {
        let file = if crash { "kernel/kexec_crash_loaded" } else { "kernel/kexec_loaded" };
        Ok(read_text_within(&self.sys_root.join(file), ATTR_LIMIT)?.trim() == "1")
    }

    /// /sys/kernel/security/lockdown shows `[none] integrity
    /// confidentiality` with the active mode in brackets.
    pub fn lockdown_active(&self) -> bool {
        read_text_within(&self.sys_root.join("kernel/security/lockdown"), ATTR_LIMIT)
            .is_ok_and(|s| !s.contains("[none]"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_reads_refuse_what_is_too_large() {
        let d = std::env::temp_dir().join(format!("rkx-sys-{}", std::process::id()));
        std::fs::create_dir_all(d.join("kernel")).unwrap();
        let p = d.join("f");
        std::fs::write(&p, vec![b'a'; 100]).unwrap();
        assert_eq!(read_bounded(&p, 100).unwrap().len(), 100);
        assert!(read_bounded(&p, 99).unwrap_err().to_string().contains("larger than 99 bytes"));
        assert_eq!(read_attr(&d.join("missing")).unwrap(), None);
        std::fs::write(d.join("kernel/kexec_loaded"), "1\n").unwrap();
        std::fs::write(d.join("kernel/kexec_crash_loaded"), "0\n").unwrap();
        let s = SystemSources::new(d.clone(), d.clone());
        assert!(s.kexec_loaded(false).unwrap());
        assert!(!s.kexec_loaded(true).unwrap());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
