//! Memory blocks that may be hot-removed, from
//! `/sys/devices/system/memory` (Documentation/admin-guide/mm/memory-hotplug.rst,
//! "Memory Block Devices" and ABI/testing/sysfs-devices-memory). A kexec
//! segment placed in such a block could vanish between load and reboot.
//!
//! A block is hot-removable when it is
//! - online in ZONE_MOVABLE: `valid_zones` is "Movable" (for an online
//!   block its first token is the zone it belongs to), or
//! - offline or going offline: `state` is "offline"/"going-offline"
//!   (offline memory can be removed at any time and is not usable anyway).
//!
//! Without `valid_zones` (very old kernels), the deprecated `removable`
//! flag decides for online blocks. It is not consulted otherwise: since
//! v5.9 it reads 1 on any kernel that supports offlining, whatever the zone
//! (memory-hotplug.rst: "legacy interface ... Nowadays, the kernel returns 1
//! if and only if it supports memory offlining").

use std::fmt;
use std::path::{Path, PathBuf};

use crate::range::{FreeMap, Range};

/// Where the memory block devices live on a running system.
pub const SYSFS_MEMORY: &str = "/sys/devices/system/memory";

/// memory-hotplug.rst: `state` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockState {
    /// "online": in use by the kernel.
    Online,
    /// "offline": not in use; may be removed at any time.
    Offline,
    /// "going-offline": being offlined.
    GoingOffline,
}

/// One `memoryN` directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryBlock {
    /// N in `memoryN`.
    pub id: u64,
    /// `[phys_index * block_size_bytes, + block_size_bytes)`.
    pub range: Range,
    /// The `state` file.
    pub state: BlockState,
    /// First token of `valid_zones`, if the file exists.
    pub zone: Option<String>,
    /// The `removable` file, if it exists.
    pub removable_flag: Option<bool>,
}

impl MemoryBlock {
    /// See the module comment for the rule.
    pub fn hot_removable(&self) -> bool {
        match self.state {
            BlockState::Offline | BlockState::GoingOffline => true,
            BlockState::Online => match &self.zone {
                Some(zone) => zone == "Movable",
                None => self.removable_flag.unwrap_or(false),
            },
        }
    }
}

/// A memory block file that cannot be used; each names the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HotplugError {
    /// A file could not be read or listed.
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The read error.
        why: String,
    },
    /// A file's contents break the documented format.
    Invalid {
        /// The file.
        path: PathBuf,
        /// The rule it breaks.
        why: String,
    },
}

impl fmt::Display for HotplugError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, why } => write!(f, "{}: cannot read: {why}", crate::escape::path(path)),
            Self::Invalid { path, why } => write!(f, "{}: {why}", crate::escape::path(path)),
        }
    }
}

impl std::error::Error for HotplugError {}

/// A block attribute, bounded and opened without blocking
/// (`system::read_attr`): a FIFO or a link to /dev/zero in its place is
/// refused, not waited on or read without end.
fn read_attr(path: &Path) -> Result<Option<String>, HotplugError> {
    super::read_attr(path).map_err(|e| HotplugError::Read { path: e.path, why: e.why })
}

fn required(path: &Path) -> Result<String, HotplugError> {
    read_attr(path)?.ok_or_else(|| HotplugError::Read { path: path.to_path_buf(), why: "file is missing".into() })
}

fn invalid(path: &Path, why: impl Into<String>) -> HotplugError {
    HotplugError::Invalid { path: path.to_path_buf(), why: why.into() }
}

/// sysfs prints these as `%lx` / `%08lx` (drivers/base/memory.c); accept an
/// optional 0x.
fn parse_hex(path: &Path, text: &str) -> Result<u64, HotplugError> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(path, format!("{text:?} is not a hexadecimal number")));
    }
    u64::from_str_radix(digits, 16).map_err(|_| invalid(path, format!("{text:?} does not fit in 64 bits")))
}

/// Read every memory block under `root` (normally [`SYSFS_MEMORY`]).
/// Returns an empty list when `root` does not exist (no memory hotplug
/// support: nothing is removable).
pub fn read_blocks(root: &Path) -> Result<Vec<MemoryBlock>, HotplugError> {
    let listing = match std::fs::read_dir(root) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(HotplugError::Read { path: root.to_path_buf(), why: e.to_string() }),
    };
    let bs_path = root.join("block_size_bytes");
    // memory-hotplug.rst: "block_size_bytes: read-only: the size in bytes of
    // a memory block", printed in hex.
    let block_size = parse_hex(&bs_path, &required(&bs_path)?)?;
    if block_size == 0 || !block_size.is_power_of_two() {
        return Err(invalid(&bs_path, format!("block size {block_size:#x} is not a non-zero power of two")));
    }

    let mut blocks = Vec::new();
    for dirent in listing {
        let dirent = dirent.map_err(|e| HotplugError::Read { path: root.to_path_buf(), why: e.to_string() })?;
        let name = dirent.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_prefix("memory")).and_then(|n| n.parse::<u64>().ok()) else {
            continue; // block_size_bytes, probe, auto_online_blocks, ...
        };
        blocks.push(read_block(&dirent.path(), id, block_size)?);
    }
    blocks.sort_by_key(|b| b.range.start);
    Ok(blocks)
}

fn read_block(dir: &Path, id: u64, block_size: u64) -> Result<MemoryBlock, HotplugError> {
    // memory-hotplug.rst: "phys_index: read-only: the block id (the same as
    // XXX in memoryXXX)"; start = phys_index * block_size_bytes.
    let pi_path = dir.join("phys_index");
    let index = match read_attr(&pi_path)? {
        Some(text) => parse_hex(&pi_path, &text)?,
        None => id,
    };
    let start = index
        .checked_mul(block_size)
        .filter(|s| s.checked_add(block_size).is_some())
        .ok_or_else(|| invalid(&pi_path, format!("block {index:#x} of {block_size:#x} bytes is past 2^64")))?;

    let state_path = dir.join("state");
    let state = match required(&state_path)?.as_str() {
        "online" => BlockState::Online,
        "offline" => BlockState::Offline,
        "going-offline" => BlockState::GoingOffline,
        other => return Err(invalid(&state_path, format!("state {other:?} is not online, offline or going-offline"))),
    };

    let zone = read_attr(&dir.join("valid_zones"))?.and_then(|z| z.split_whitespace().next().map(str::to_string));

    let rm_path = dir.join("removable");
    let removable_flag = match read_attr(&rm_path)?.as_deref() {
        None => None,
        Some("1") => Some(true),
        Some("0") => Some(false),
        Some(other) => return Err(invalid(&rm_path, format!("{other:?} is neither 0 nor 1"))),
    };

    Ok(MemoryBlock { id, range: Range::new(start, start + block_size), state, zone, removable_flag })
}

/// Physical ranges that may be hot-removed, merged. Empty when `root`
/// does not exist.
pub fn hot_removable_ranges(root: &Path) -> Result<Vec<Range>, HotplugError> {
    let blocks = read_blocks(root)?;
    let ranges = blocks.iter().filter(|b| b.hot_removable()).map(|b| b.range).collect();
    Ok(FreeMap::new(ranges).ranges().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture(PathBuf);

    impl Fixture {
        fn new(name: &str, block_size: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("rkexec-hotplug-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("block_size_bytes"), format!("{block_size}\n")).unwrap();
            std::fs::write(dir.join("auto_online_blocks"), "online\n").unwrap();
            Fixture(dir)
        }

        fn block(&self, id: u64, files: &[(&str, &str)]) -> &Self {
            let d = self.0.join(format!("memory{id}"));
            std::fs::create_dir_all(&d).unwrap();
            for (name, value) in files {
                std::fs::write(d.join(name), format!("{value}\n")).unwrap();
            }
            self
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const MIB128: u64 = 128 << 20;

    #[test]
    fn movable_and_offline_blocks_are_removable() {
        let f = Fixture::new("mix", "8000000");
        f.block(8, &[("phys_index", "00000008"), ("state", "online"), ("valid_zones", "Normal"), ("removable", "1")])
            .block(
                9,
                &[("phys_index", "00000009"), ("state", "online"), ("valid_zones", "Movable"), ("removable", "1")],
            )
            .block(10, &[("phys_index", "0000000a"), ("state", "online"), ("valid_zones", "Movable")])
            .block(11, &[("phys_index", "0000000b"), ("state", "offline"), ("valid_zones", "Normal Movable")])
            .block(13, &[("phys_index", "0000000d"), ("state", "online"), ("valid_zones", "Movable Normal")]);
        let blocks = read_blocks(&f.0).unwrap();
        assert_eq!(blocks.len(), 5);
        assert_eq!(blocks[0].range, Range::new(8 * MIB128, 9 * MIB128));
        assert!(!blocks[0].hot_removable(), "Normal zone, removable=1 is not enough");
        assert_eq!(
            hot_removable_ranges(&f.0).unwrap(),
            vec![Range::new(9 * MIB128, 12 * MIB128), Range::new(13 * MIB128, 14 * MIB128)]
        );
    }

    #[test]
    fn old_kernels_without_valid_zones_use_removable() {
        let f = Fixture::new("old", "0x8000000");
        f.block(1, &[("phys_index", "00000001"), ("state", "online"), ("removable", "1")])
            .block(2, &[("phys_index", "00000002"), ("state", "online"), ("removable", "0")])
            .block(3, &[("state", "online")]);
        assert_eq!(hot_removable_ranges(&f.0).unwrap(), vec![Range::new(MIB128, 2 * MIB128)]);
        assert_eq!(read_blocks(&f.0).unwrap()[2].range.start, 3 * MIB128, "id stands in for phys_index");
    }

    #[test]
    fn missing_directory_means_nothing_removable() {
        let missing = std::env::temp_dir().join("rkexec-hotplug-does-not-exist");
        assert_eq!(hot_removable_ranges(&missing).unwrap(), vec![]);
    }

    #[test]
    fn bad_files_are_named() {
        let f = Fixture::new("bad-bs", "zz");
        let err = read_blocks(&f.0).unwrap_err();
        assert!(err.to_string().ends_with("block_size_bytes: \"zz\" is not a hexadecimal number"), "{err}");

        let f = Fixture::new("bad-state", "8000000");
        f.block(0, &[("phys_index", "0"), ("state", "sleeping")]);
        let err = read_blocks(&f.0).unwrap_err();
        assert!(err.to_string().contains("memory0/state: state \"sleeping\""), "{err}");

        let f = Fixture::new("no-state", "8000000");
        f.block(0, &[("phys_index", "0")]);
        let err = read_blocks(&f.0).unwrap_err();
        assert!(err.to_string().contains("memory0/state: cannot read: file is missing"), "{err}");

        let f = Fixture::new("overflow", "8000000");
        f.block(0, &[("phys_index", "ffffffffffff"), ("state", "online")]);
        let err = read_blocks(&f.0).unwrap_err();
        assert!(err.to_string().contains("past 2^64"), "{err}");

        let f = Fixture::new("bad-removable", "8000000");
        f.block(0, &[("phys_index", "0"), ("state", "online"), ("removable", "yes")]);
        assert!(read_blocks(&f.0).unwrap_err().to_string().contains("neither 0 nor 1"));

        let f = Fixture::new("odd-bs", "3000");
        assert!(read_blocks(&f.0).unwrap_err().to_string().contains("power of two"));
    }
}
