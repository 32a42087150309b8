//! The architecture interface the purgatory's shared `Platform` calls
//! (`purgatory_arch::machine`); every architecture offers these names.
//!
//! RISC-V has no CPUID: what the boot hart implements, its id and its timer
//! frequency come from a0 and the DTB, which the riscv64 glue reads and
//! hands over with [`init`] before the shared code starts.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::sbi::{self, SbiConsole};
use super::{cpu, entry, handoff, sha256_zknh};
use crate::uart::Uart;
use crate::{Compress, Conduit, UartKind};

pub use handoff::halt;

/// The architecture's name in console lines.
pub const NAME: &str = "riscv64";

static HART_ID: AtomicU64 = AtomicU64::new(0);
static ZKNH: AtomicBool = AtomicBool::new(false);
static ZKR: AtomicBool = AtomicBool::new(false);
static TIMEBASE_HZ: AtomicU64 = AtomicU64::new(0);

/// What the boot hart is: its id (a0 at entry), whether its DTB node lists
/// Zknh and Zkr, and `/cpus/timebase-frequency` (0 when unknown).
pub fn init(hart_id: u64, zknh: bool, zkr: bool, timebase_hz: u64) {
    HART_ID.store(hart_id, Ordering::Relaxed);
    ZKNH.store(zknh, Ordering::Relaxed);
    ZKR.store(zkr, Ordering::Relaxed);
    TIMEBASE_HZ.store(timebase_hz, Ordering::Relaxed);
}

/// The hart id [`init`] recorded.
pub fn hart_id() -> u64 {
    HART_ID.load(Ordering::Relaxed)
}

/// The UART for a console descriptor; no I/O ports on RISC-V.
pub fn uart(kind: UartKind, base: u64) -> Option<Uart> {
    match kind {
        UartKind::Ns16550Mmio8 => Some(Uart::Ns16550Mmio8(base)),
        UartKind::Ns16550Mmio32 => Some(Uart::Ns16550Mmio32(base)),
        UartKind::Pl011 => Some(Uart::Pl011(base)),
        UartKind::Sbi => Some(Uart::Sbi(SbiConsole::detect())),
        UartKind::Ns16550Io => None,
    }
}

/// The Zknh instructions, when the boot hart's DTB node lists Zknh.
pub fn sha256_engine() -> Option<(Compress, &'static str)> {
    ZKNH.load(Ordering::Relaxed).then_some((sha256_zknh::compress as Compress, "zknh"))
}

/// 64 bits from the Zkr `seed` CSR, when listed and S-mode may read it.
pub fn entropy() -> Option<u64> {
    cpu::seed_u64(ZKR.load(Ordering::Relaxed))
}

/// The hart id: what the DTB's cpu nodes hold in `reg` (cpus.yaml); FDT
/// boot_cpuid_phys is 32 bits.
pub fn boot_cpu_id() -> u32 {
    hart_id() as u32
}

/// The `time` CSR at the DTB's timebase frequency.
pub struct Clock {
    hz: u64,
}

impl Clock {
    /// None without a timebase frequency, or when S-mode may not read
    /// `time` (mcounteren.TM clear).
    pub fn start() -> Option<Self> {
        let hz = TIMEBASE_HZ.load(Ordering::Relaxed);
        (hz != 0 && cpu::time().is_some()).then_some(Self { hz })
    }

    pub fn now_us(&self) -> u64 {
        cpu::time().map_or(0, |t| cpu::ticks_to_us(t, self.hz))
    }
}

/// SBI SRST when the SBI implements it (the PSCI conduit is an Arm notion).
pub fn reset_method(_conduit: Conduit) -> Option<&'static str> {
    sbi::has_extension(sbi::EID_SRST).then_some("SBI SRST")
}

/// Reset the system. Returns only if the reset did not happen.
pub fn reset(_conduit: Conduit) {
    sbi::system_reset();
}

/// Header field `mem_size` of the image running at `base`.
///
/// # Safety
/// `base` must be the runtime base `_start` passed to `purgatory_main`.
pub unsafe fn image_mem_size(base: u64) -> u64 {
    // SAFETY: per the caller's contract.
    unsafe { entry::image_mem_size(base) }
}
