//! Memory a normal (non-crash) load may place segments in: System RAM as
//! /proc/iomem shows it (minus reservations, see `Iomem::usable_ram`),
//! minus memory that can be hot-removed before the reboot (seed 002: a
//! block that can be offlined must not hold a segment), minus
//! driver-managed RAM. Crash loads use the crash ranges instead (`crash`).

use super::iomem::Iomem;
use super::memory_hotplug::{self, HotplugError};
use super::SystemSources;
use crate::range::FreeMap;

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
    let removable = memory_hotplug::hot_removable_ranges(&sys.memory_blocks_dir())?;
    for r in FreeMap::new(removable).ranges() {
        free.remove(*r);
        notes.push(format!("not using hot-removable memory {r} (Movable zone)"));
    }
    Ok(Usable { free, notes })
}
