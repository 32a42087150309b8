//! Memory a normal (non-crash) load may place segments in: System RAM as
//! /proc/iomem shows it (minus reservations, see `Iomem::usable_ram`),
//! minus memory that can be hot-removed before the reboot (seed 002: a
//! block that can be offlined must not hold a segment), minus
//! driver-managed RAM. Crash loads use the crash ranges instead (`crash`).

use super::iomem::Iomem;
use super::memory_hotplug::{self, HotplugError};
use super::{read_text_within, ReadError, SystemSources, ATTR_LIMIT};
use crate::range::{FreeMap, PAGE};

/// Free memory, and what was left out and why (for the plan's notes).
#[derive(Debug, Clone)]
pub struct Usable {
    /// Where segments may go.
    pub free: FreeMap,
    /// One line per range left out, saying why.
    pub notes: Vec<String>,
}

/// Memory for a normal kexec load.
pub fn for_kexec(sys: &SystemSources, iomem: &Iomem) -> Result<Usable, HotplugError> {
    let mut free = iomem.usable_ram();
    let mut notes = Vec::new();
    for r in iomem.driver_managed_ram() {
        notes.push(format!("not using driver-managed RAM {r} (hot-pluggable by its driver)"));
    }
    let removable = FreeMap::new(memory_hotplug::hot_removable_ranges(&sys.memory_blocks_dir())?);
    free.remove_all(removable.ranges().iter().copied());
    for r in removable.ranges() {
        notes.push(format!("not using hot-removable memory {r} (Movable zone)"));
    }
    Ok(Usable { free, notes })
}

/// What the kernel counts as RAM when it applies kexec's "no more than
/// half of memory" rule (kernel/kexec_core.c sanity_check_segment_list:
/// totalram_pages()).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotalRam {
    /// Bytes.
    pub bytes: u64,
    /// Where the figure comes from.
    pub source: &'static str,
}

impl TotalRam {
    /// Half of it in whole pages, in bytes: the most all segments of one
    /// image may take together, and so any one of them.
    pub fn half(&self) -> u64 {
        (self.bytes / PAGE / 2) * PAGE
    }
}

/// totalram_pages() as /proc/meminfo's MemTotal shows it (fs/proc/meminfo.c:
/// `MemTotal: <totalram_pages() in kB> kB`); on another machine's tree
/// without a meminfo, the System RAM /proc/iomem lists (at least as much:
/// totalram_pages() leaves out the kernel image and reservations).
pub fn total_ram(sys: &SystemSources, iomem: &Iomem) -> Result<TotalRam, ReadError> {
    let path = sys.proc_root.join("meminfo");
    if std::fs::symlink_metadata(&path).is_err() {
        let bytes = iomem.system_ram().iter().fold(0u64, |t, r| t.saturating_add(r.len()));
        return Ok(TotalRam { bytes, source: "System RAM in /proc/iomem" });
    }
    let text = read_text_within(&path, ATTR_LIMIT)?;
    let bad = |why: String| ReadError { path: path.clone(), why };
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .ok_or_else(|| bad("has no MemTotal line (fs/proc/meminfo.c)".into()))?;
    let kb = line
        .trim()
        .strip_suffix("kB")
        .and_then(|n| n.trim().parse::<u64>().ok())
        .ok_or_else(|| bad(format!("MemTotal {:?} is not \"<number> kB\"", line.trim())))?;
    let bytes = kb.checked_mul(1024).ok_or_else(|| bad(format!("MemTotal {kb} kB does not fit in 64 bits")))?;
    Ok(TotalRam { bytes, source: "MemTotal in /proc/meminfo" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_ram_is_memtotal_else_the_system_ram_listed() {
        let t = crate::testing::Tree::new("meminfo");
        t.iomem("40000000-7fffffff : System RAM\n");
        let iomem = Iomem::parse("40000000-7fffffff : System RAM\n").unwrap();
        assert_eq!(
            total_ram(&t.sys(), &iomem).unwrap(),
            TotalRam { bytes: 1 << 30, source: "System RAM in /proc/iomem" }
        );
        t.write("proc/meminfo", "MemTotal:         996452 kB\nMemFree:  1 kB\n");
        let r = total_ram(&t.sys(), &iomem).unwrap();
        assert_eq!(r.bytes, 996_452 * 1024);
        assert_eq!(r.half(), (996_452 * 1024 / 4096 / 2) * 4096, "half, in whole pages");
        t.write("proc/meminfo", "MemTotal: lots\n");
        let e = total_ram(&t.sys(), &iomem).unwrap_err().to_string();
        assert!(e.ends_with("meminfo: MemTotal \"lots\" is not \"<number> kB\""), "{e}");
    }
}
