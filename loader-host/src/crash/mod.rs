//! kdump (`-p`): where a capture kernel may go (the "Crash kernel" ranges
//! the running kernel reserved with crashkernel=) and the elfcorehdr that
//! tells it what to dump (fs/proc/vmcore.c reads it). One procedure for
//! every architecture; what differs is the
//! [`CrashPolicy`](crate::arch_spec::CrashPolicy) each architecture's
//! description carries.

pub mod elfcore;

use std::fmt;
use std::path::PathBuf;

use crate::arch_spec::Arch;
use crate::range::{FreeMap, Range};
use crate::request::{CrashOptions, Hotplug};
use crate::system::crash_notes::{self, CrashNotesError};
use crate::system::iomem::Iomem;
use crate::system::{device_tree, kcore, SystemSources};

use self::elfcore::{Backup, CoreLayout, ElfCoreError};

/// What a crash load needs from the running system.
#[derive(Clone, Debug)]
pub(crate) struct CrashSetup {
    /// Where segments may go.
    pub free: FreeMap,
    /// Every "Crash kernel" range: the capture kernel's RAM.
    pub ranges: Vec<Range>,
    /// What the elfcorehdr describes ([`CrashSetup::header`] builds it).
    pub core: CoreLayout,
    /// The header as built with the backup (if any) at address 0: its
    /// size is final.
    pub header: Vec<u8>,
    /// Segment memsz: the header's size, or with crash hotplug the room the
    /// kernel needs to rewrite it in place.
    pub memsz: u64,
    /// Crash hotplug rewrites it after load: structure-checked, not hashed.
    pub excluded: bool,
    /// Crash hotplug rewrites the DTB too (ppc64): excluded likewise, and
    /// loaded with room for the CPUs that may come.
    pub dtb_excluded: bool,
    pub hotplug: bool,
    /// Why hotplug is on or off, for the plan.
    pub hotplug_why: String,
    pub cpu_notes: usize,
    pub pt_load: usize,
    /// What the header describes, for the plan.
    pub note: String,
}

impl CrashSetup {
    /// Low memory the purgatory must copy into a backup segment (the
    /// architecture's `backup_low`, where RAM covers it).
    pub fn backup_source(&self) -> Option<Range> {
        self.core.backup.map(|b| b.source)
    }

    /// The elfcorehdr with the backup copy at `backup_at` (the same size
    /// as [`CrashSetup::header`]).
    pub fn header_with_backup(&self, backup_at: u64) -> Result<Vec<u8>, CrashError> {
        let mut core = self.core.clone();
        if let Some(b) = core.backup.as_mut() {
            b.copy_at = backup_at;
        }
        core.build().map_err(CrashError::ElfCore)
    }
}

/// Why a crash load cannot be prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrashError {
    /// No crashkernel= reservation.
    NoCrashKernel(PathBuf),
    /// The per-CPU crash notes, vmcoreinfo or the kernel's hotplug
    /// elfcorehdr size could not be read from sysfs.
    Notes(CrashNotesError),
    /// The elfcorehdr cannot be built.
    ElfCore(ElfCoreError),
    /// `--hotplug` on an architecture without crash hotplug.
    NoHotplug(&'static str),
    /// The running DTB could not be read for the firmware's protected memory.
    FirmwareFdt {
        /// /sys/firmware/fdt.
        path: PathBuf,
        /// Why it could not be read or parsed.
        why: String,
    },
    /// The kernel's hotplug size is smaller than the header we built.
    TooSmall {
        /// Bytes of the header we built.
        needed: u64,
        /// Bytes the kernel sized it at (/sys/kernel/crash_elfcorehdr_size
        /// plus the 64-byte ELF header).
        available: u64,
    },
}

impl fmt::Display for CrashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCrashKernel(p) => write!(
                f,
                "{}: no \"Crash kernel\" range: boot the running kernel with crashkernel=256M (or larger) to load a crash kernel",
                p.display()
            ),
            Self::NoHotplug(why) => write!(f, "--hotplug: {why}; load the crash kernel without --hotplug"),
            Self::FirmwareFdt { path, why } => {
                write!(f, "{}: {why} (read for the memory M-mode firmware protects, left out of the dump)", path.display())
            }
            Self::Notes(e) => write!(f, "{e}"),
            Self::ElfCore(e) => write!(f, "{e}"),
            Self::TooSmall { needed, available } => write!(
                f,
                "elfcorehdr needs {needed} bytes but the kernel sized it at {available} (/sys/kernel/crash_elfcorehdr_size)"
            ),
        }
    }
}

impl std::error::Error for CrashError {}

/// The memory the running machine's M-mode firmware protects, from
/// /sys/firmware/fdt (none without one: no DT, no such firmware map).
fn firmware_protected(sys: &SystemSources) -> Result<Vec<Range>, CrashError> {
    let path = sys.fdt_path();
    if !path.exists() {
        return Ok(Vec::new());
    }
    let err = |why: String| CrashError::FirmwareFdt { path: path.clone(), why };
    // arch/riscv/include/asm/pgtable.h MAX_FDT_SIZE: 2 MiB.
    let blob = crate::system::read_bounded(&path, 2 << 20).map_err(|e| err(e.why))?;
    crate::dtb::handover::firmware_protected(&blob).map_err(|e| err(e.to_string()))
}

/// The crash ranges, the placement memory and the elfcorehdr.
pub(crate) fn prepare(
    sys: &SystemSources,
    iomem: &Iomem,
    arch: Arch,
    opts: CrashOptions,
) -> Result<CrashSetup, CrashError> {
    let policy = &arch.crash;
    let (hotplug, hotplug_why) = hotplug_choice(sys, arch, opts.hotplug)?;
    let ranges = iomem.crash_kernel();
    if ranges.is_empty() {
        return Err(CrashError::NoCrashKernel(sys.iomem_path()));
    }
    // Segments only in crashk_res (Iomem::crash_usable); the capture
    // kernel may still use every range.
    let free = iomem.crash_usable();
    // What to dump: RAM minus the crash ranges (and per policy).
    let mut ram = iomem.system_ram();
    if policy.dump_driver_managed {
        ram.extend(iomem.driver_managed_ram());
    }
    let mut ram = FreeMap::new(ram);
    if policy.skip_low_1m {
        ram.remove(Range::new(0, 1 << 20));
    }
    for r in &ranges {
        ram.remove(*r);
    }
    // Firmware's runtime memory inside the crash range (ppc64's RTAS) is
    // the crashed system's, not the capture kernel's: dumped (kexec-tools
    // crashdump-ppc64.c get_crash_memory_ranges, the kernel's
    // arch/powerpc/kexec/ranges.c get_crash_memory_ranges).
    let firmware = iomem.entries().iter().filter(|e| [device_tree::RTAS, device_tree::OPAL].contains(&e.name.as_str()));
    let mut inside = Vec::new();
    for f in firmware {
        for r in &ranges {
            let both = Range::new(f.range.start.max(r.start), f.range.end.min(r.end));
            if !both.is_empty() {
                inside.push(both);
            }
        }
    }
    if !inside.is_empty() {
        inside.extend_from_slice(ram.ranges());
        ram = FreeMap::new(inside);
    }
    // The low memory the capture kernel overwrites is dumped from its
    // backup: its own PT_LOAD, split off the RAM range that holds it.
    let backup = policy.backup_low.and_then(|size| {
        let low = Range::new(0, size);
        ram.ranges().iter().any(|r| r.contains_range(&low)).then_some(low)
    });
    if let Some(low) = backup {
        ram.remove(low);
    }
    let mut firmware = Vec::new();
    if policy.skip_firmware_protected {
        firmware = firmware_protected(sys)?;
        for r in &firmware {
            ram.remove(*r);
        }
    }
    let ram = ram.ranges().to_vec();
    let kcore_path = sys.kcore_path();
    let layout = CoreLayout {
        machine: arch.elf_machine,
        cpu_notes: crash_notes::read_cpu_notes(&sys.sys_root).map_err(CrashError::Notes)?,
        vmcoreinfo: crash_notes::read_vmcoreinfo(&sys.sys_root).map_err(CrashError::Notes)?,
        virt_offset: ram.first().and_then(|r| kcore::linear_offset(&kcore_path, r.start)).or(policy.linear_map_base),
        ram,
        kernel_text: if policy.kernel_text { kcore::kernel_text(&kcore_path) } else { None },
        backup: backup.map(|source| Backup { source, copy_at: 0 }),
    };
    let header = layout.build().map_err(CrashError::ElfCore)?;
    let memsz = if hotplug {
        let room = crash_notes::hotplug_elfcorehdr_size(&sys.sys_root).map_err(CrashError::Notes)?;
        if room < header.len() as u64 {
            return Err(CrashError::TooSmall { needed: header.len() as u64, available: room });
        }
        room
    } else {
        header.len() as u64
    };
    let note = format!(
        "elfcorehdr: {} CPU notes + vmcoreinfo, {} PT_LOAD ({}{}System RAM minus {}the Crash kernel ranges{})",
        layout.cpu_notes.len(),
        layout.loads(),
        if layout.kernel_text.is_some() { "kernel text, " } else { "" },
        match layout.backup {
            Some(b) => format!("{} from its backup, ", b.source),
            None => String::new(),
        },
        if policy.skip_low_1m { "the low 1 MiB and " } else { "" },
        if firmware.is_empty() {
            String::new()
        } else {
            format!(" and {} firmware-protected range(s)", firmware.len())
        },
    );
    Ok(CrashSetup {
        free,
        ranges,
        header,
        memsz,
        excluded: hotplug && opts.exclude,
        dtb_excluded: hotplug && opts.exclude && policy.hotplug_rewrites_dtb,
        hotplug,
        hotplug_why,
        cpu_notes: layout.cpu_notes.len(),
        pt_load: layout.loads(),
        core: layout,
        note,
    })
}

/// Whether the crash image is loaded hotplug-aware, and why: `--hotplug`
/// requires it, `--no-hotplug` refuses it, and by default it is on where
/// the architecture has the kexec_load flag and the running kernel was
/// built with CONFIG_CRASH_HOTPLUG (it then has
/// /sys/kernel/crash_elfcorehdr_size, kernel/ksysfs.c).
fn hotplug_choice(sys: &SystemSources, arch: Arch, choice: Hotplug) -> Result<(bool, String), CrashError> {
    let unsupported = match (arch.crash.no_hotplug, arch.hotplug_flag) {
        (Some(why), _) => Some(why),
        (None, None) => Some("this architecture has no kexec_load crash-hotplug flag"),
        (None, Some(_)) => None,
    };
    let kernel_has_it = crash_notes::has_crash_hotplug(&sys.sys_root);
    Ok(match (choice, unsupported) {
        (Hotplug::Off, _) => (false, "off (--no-hotplug): reload the crash kernel after CPU or memory hotplug".into()),
        (Hotplug::Required, Some(why)) => return Err(CrashError::NoHotplug(why)),
        (Hotplug::Required, None) => (true, "on (--hotplug)".into()),
        (Hotplug::Auto, Some(why)) => (false, format!("off: {why}")),
        (Hotplug::Auto, None) if kernel_has_it => (
            true,
            "on (the default where the running kernel has CONFIG_CRASH_HOTPLUG: it updates the loaded image on CPU and memory hotplug; --no-hotplug turns it off)".into(),
        ),
        (Hotplug::Auto, None) => (
            false,
            "off: the running kernel has no crash hotplug (no /sys/kernel/crash_elfcorehdr_size)".into(),
        ),
    })
}
