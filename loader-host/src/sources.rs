//! Reading the running system's description (/proc, /sys), with errors
//! that name the file. Roots are configurable so plans can be made from
//! another machine's files and tests can use fixtures.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where /proc and /sys are.
#[derive(Debug, Clone)]
pub struct SystemSources {
    pub proc_root: PathBuf,
    pub sys_root: PathBuf,
}

/// A file we could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    pub path: PathBuf,
    pub why: String,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.why)
    }
}

impl std::error::Error for ReadError {}

/// Read a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>, ReadError> {
    std::fs::read(path).map_err(|e| ReadError { path: path.to_path_buf(), why: e.to_string() })
}

pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = read(path)?;
    String::from_utf8(bytes).map_err(|_| ReadError { path: path.to_path_buf(), why: "not UTF-8 text".into() })
}

impl SystemSources {
    pub fn new(proc_root: PathBuf, sys_root: PathBuf) -> Self {
        SystemSources { proc_root, sys_root }
    }

    pub fn iomem_path(&self) -> PathBuf {
        self.proc_root.join("iomem")
    }

    pub fn iomem(&self) -> Result<String, ReadError> {
        read_text(&self.iomem_path())
    }

    /// The running kernel's command line, without the trailing newline.
    pub fn cmdline(&self) -> Result<String, ReadError> {
        Ok(read_text(&self.proc_root.join("cmdline"))?.trim_end_matches(['\n', '\0']).to_string())
    }

    /// The DTB the running kernel booted with.
    pub fn fdt_path(&self) -> PathBuf {
        self.sys_root.join("firmware/fdt")
    }

    pub fn memory_blocks_dir(&self) -> PathBuf {
        self.sys_root.join("devices/system/memory")
    }
}
