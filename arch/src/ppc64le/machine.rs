//! The architecture interface the purgatory's shared `Platform` calls
//! (`purgatory_arch::machine`); every architecture offers these names.
//!
//! What the boot CPU implements (from its PVR and the DTB's logical
//! `cpu-version`), its id (r3 at entry), its time-base frequency and where
//! RTAS is come from the ppc64le glue through [`init`] before the shared
//! code starts.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::hcall::Vterm;
use super::rtas::Rtas;
use super::{cpu, entry, handoff, sha256_vcrypto};
use crate::uart::Uart;
use crate::{Compress, Conduit, UartKind};

pub use handoff::halt;

/// The architecture's name in console lines.
pub const NAME: &str = "ppc64le";

static CPU_ID: AtomicU32 = AtomicU32::new(0);
static VCRYPTO: AtomicBool = AtomicBool::new(false);
static DARN: AtomicBool = AtomicBool::new(false);
static TIMEBASE_HZ: AtomicU64 = AtomicU64::new(0);
static RTAS_BASE: AtomicU64 = AtomicU64::new(0);
static RTAS_ENTRY: AtomicU64 = AtomicU64::new(0);
/// The `system-reboot` token; u32::MAX (RTAS_UNKNOWN_SERVICE in the
/// kernel's rtas.h) when there is none.
static RTAS_REBOOT: AtomicU32 = AtomicU32::new(u32::MAX);

/// What the boot CPU is and has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootCpu {
    /// The physical CPU id kexec_sequence passed in r3.
    pub id: u32,
    /// ISA 2.07 vector crypto (vshasigmaw).
    pub vcrypto: bool,
    /// ISA 3.0 `darn`.
    pub darn: bool,
    /// `timebase-frequency` of its cpu node, in Hz; 0 when unknown.
    pub timebase_hz: u64,
}

/// Record the boot CPU and (if the caller found a usable one) RTAS with
/// its `system-reboot` token.
pub fn init(boot: BootCpu, rtas: Option<(Rtas, u32)>) {
    CPU_ID.store(boot.id, Ordering::Relaxed);
    VCRYPTO.store(boot.vcrypto, Ordering::Relaxed);
    DARN.store(boot.darn, Ordering::Relaxed);
    TIMEBASE_HZ.store(boot.timebase_hz, Ordering::Relaxed);
    if let Some((r, token)) = rtas {
        RTAS_BASE.store(r.base, Ordering::Relaxed);
        RTAS_ENTRY.store(r.entry, Ordering::Relaxed);
        RTAS_REBOOT.store(token, Ordering::Relaxed);
    }
}

/// In a PAPR partition (MSR[HV] clear): hypercalls go to the hypervisor.
pub fn in_partition() -> bool {
    cpu::msr() & cpu::MSR_HV == 0
}

/// The console for a descriptor: only the hypervisor's vterm, and only
/// in a partition (with MSR[HV] set, `sc 1` would enter the old kernel's
/// vector, so the console stays silent). No MMIO UART.
pub fn uart(kind: UartKind, base: u64) -> Option<Uart> {
    match kind {
        UartKind::Hvterm if in_partition() => Some(Uart::Hvterm(Vterm(base))),
        _ => None,
    }
}

/// The POWER8 vector-crypto engine, when the boot CPU has it.
pub fn sha256_engine() -> Option<(Compress, &'static str)> {
    VCRYPTO.load(Ordering::Relaxed).then_some((sha256_vcrypto::compress as Compress, "vcrypto"))
}

/// 64 bits from `darn` (POWER9 and later), None without it or when it
/// keeps failing.
pub fn entropy() -> Option<u64> {
    if DARN.load(Ordering::Relaxed) {
        cpu::darn()
    } else {
        None
    }
}

/// The physical id r3 carried: what the DTB's cpu nodes list in
/// `ibm,ppc-interrupt-server#s` and the kernel matches boot_cpuid_phys
/// against (arch/powerpc/kernel/prom.c early_init_dt_scan_cpus).
pub fn boot_cpu_id() -> u32 {
    CPU_ID.load(Ordering::Relaxed)
}

/// The time base at the DTB's frequency.
pub struct Clock {
    hz: u64,
}

impl Clock {
    /// None without a time-base frequency.
    pub fn start() -> Option<Self> {
        let hz = TIMEBASE_HZ.load(Ordering::Relaxed);
        (hz != 0).then_some(Self { hz })
    }

    pub fn now_us(&self) -> u64 {
        cpu::ticks_to_us(cpu::timebase(), self.hz)
    }
}

fn rtas() -> Option<(Rtas, u32)> {
    let token = RTAS_REBOOT.load(Ordering::Relaxed);
    let rtas = Rtas { base: RTAS_BASE.load(Ordering::Relaxed), entry: RTAS_ENTRY.load(Ordering::Relaxed) };
    (token != u32::MAX && rtas.entry != 0 && in_partition()).then_some((rtas, token))
}

/// RTAS `system-reboot` when [`init`] was given RTAS (the PSCI conduit is
/// an Arm notion).
pub fn reset_method(_conduit: Conduit) -> Option<&'static str> {
    rtas().map(|_| "RTAS system-reboot")
}

/// Reset the system. Returns only if the reset did not happen.
pub fn reset(_conduit: Conduit) {
    if let Some((r, token)) = rtas() {
        // SAFETY: init() was given RTAS only after the glue checked that
        // it and this image lie below 4 GiB, outside every segment; we are
        // in a partition, in real mode.
        unsafe { r.call0(token) };
    }
}

/// Header field `mem_size` of the image running at `base`.
///
/// # Safety
/// `base` must be the runtime base `_start` passed to `purgatory_main`.
pub unsafe fn image_mem_size(base: u64) -> u64 {
    // SAFETY: per the caller's contract.
    unsafe { entry::image_mem_size(base) }
}
