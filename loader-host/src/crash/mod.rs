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
use crate::request::CrashOptions;
use crate::system::crash_notes::{self, CrashNotesError};
use crate::system::iomem::Iomem;
use crate::system::{kcore, ReadError, SystemSources};

use self::elfcore::{CoreLayout, ElfCoreError};

/// What a crash load needs from the running system.
#[derive(Clone, Debug)]
pub(crate) struct CrashSetup {
    /// Where segments may go.
    pub free: FreeMap,
    /// Every "Crash kernel" range: the capture kernel's RAM.
    pub ranges: Vec<Range>,
    pub header: Vec<u8>,
    /// Segment memsz: the header's size, or with crash hotplug the room the
    /// kernel needs to rewrite it in place.
    pub memsz: u64,
    /// Crash hotplug rewrites it after load: structure-checked, not hashed.
    pub excluded: bool,
    pub hotplug: bool,
    pub cpu_notes: usize,
    pub pt_load: usize,
    /// What the header describes, for the plan.
    pub note: String,
}

/// Why a crash load cannot be prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrashError {
    /// No crashkernel= reservation.
    NoCrashKernel(PathBuf),
    /// A "Crash kernel" range that is not inside System RAM
    /// (`Iomem::crash_kernel_outside_ram`).
    OutsideRam {
        /// /proc/iomem.
        path: PathBuf,
        /// Its line.
        line: usize,
        /// The range.
        range: Range,
    },
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
    /// /proc/kcore is there but is no regular file (its program headers
    /// give the elfcorehdr's p_vaddr).
    Kcore(ReadError),
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
                crate::escape::path(p)
            ),
            Self::OutsideRam { path, line, range } => write!(
                f,
                "{} line {line}: the \"Crash kernel\" range {range} is not inside System RAM: crashkernel= reserves RAM \
                 (kernel/crash_reserve.c), so a capture kernel placed there would not be in memory",
                crate::escape::path(path)
            ),
            Self::NoHotplug(why) => write!(f, "--hotplug: {why}; load the crash kernel without --hotplug"),
            Self::FirmwareFdt { path, why } => {
                write!(f, "{}: {why} (read for the memory M-mode firmware protects, left out of the dump)", crate::escape::path(path))
            }
            Self::Notes(e) => write!(f, "{e}"),
            Self::Kcore(e) => write!(f, "{e}"),
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
    if let (true, Some(why)) = (opts.hotplug, policy.no_hotplug) {
        return Err(CrashError::NoHotplug(why));
    }
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
        virt_offset: match ram.first() {
            Some(r) => kcore::linear_offset(&kcore_path, r.start).map_err(CrashError::Kcore)?,
            None => None,
        },
        ram,
        kernel_text: if policy.kernel_text {
            kcore::kernel_text(&kcore_path).map_err(CrashError::Kcore)?
        } else {
            None
        },
    };
    let header = layout.build().map_err(CrashError::ElfCore)?;
    let memsz = if opts.hotplug {
        let room = crash_notes::hotplug_elfcorehdr_size(&sys.sys_root).map_err(CrashError::Notes)?;
        if room < header.len() as u64 {
            return Err(CrashError::TooSmall { needed: header.len() as u64, available: room });
        }
        room
    } else {
        header.len() as u64
    };
    let note = format!(
        "elfcorehdr: {} CPU notes + vmcoreinfo, {} PT_LOAD ({}System RAM minus {}the Crash kernel ranges{})",
        layout.cpu_notes.len(),
        layout.loads(),
        if layout.kernel_text.is_some() { "kernel text, " } else { "" },
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
        excluded: opts.hotplug && opts.exclude,
        hotplug: opts.hotplug,
        cpu_notes: layout.cpu_notes.len(),
        pt_load: layout.loads(),
        note,
    })
}
