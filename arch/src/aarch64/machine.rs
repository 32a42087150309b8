//! The architecture interface the purgatory's shared `Platform` calls
//! (`purgatory_arch::machine`); every architecture offers these names.

use super::{cpu, entry, handoff, sha2_ce};
use crate::uart::Uart;
use crate::{Compress, Conduit, UartKind};

pub use handoff::halt;

/// The architecture's name in console lines.
pub const NAME: &str = "aarch64";

/// The UART for a console descriptor, or None for a kind this
/// architecture has no access to (I/O ports).
pub fn uart(kind: UartKind, base: u64) -> Option<Uart> {
    match kind {
        UartKind::Pl011 => Some(Uart::Pl011(base)),
        UartKind::Ns16550Mmio32 => Some(Uart::Ns16550Mmio32(base)),
        UartKind::Ns16550Mmio8 => Some(Uart::Ns16550Mmio8(base)),
        UartKind::Ns16550Io | UartKind::Sbi => None,
    }
}

/// The Armv8 SHA-256 instructions, when ID_AA64ISAR0_EL1.SHA2 says they exist.
pub fn sha256_engine() -> Option<(Compress, &'static str)> {
    cpu::has_sha256_instructions().then_some((sha2_ce::compress as Compress, "armv8-sha2"))
}

/// 64 bits from RNDR (FEAT_RNG), if the CPU has it and it succeeded.
pub fn entropy() -> Option<u64> {
    cpu::rndr()
}

/// MPIDR_EL1 Aff2:Aff1:Aff0, what the DTB's cpu nodes hold in `reg`.
pub fn boot_cpu_id() -> u32 {
    cpu::mpidr_affinity()
}

/// The generic timer: always there (booting.rst requires CNTFRQ_EL0 set).
pub struct Clock;

impl Clock {
    pub fn start() -> Option<Self> {
        Some(Self)
    }

    pub fn now_us(&self) -> u64 {
        cpu::now_us()
    }
}

/// How [`reset`] would reset the system with this conduit, if it can.
pub fn reset_method(conduit: Conduit) -> Option<&'static str> {
    match conduit {
        Conduit::Hvc => Some("PSCI SYSTEM_RESET via HVC"),
        Conduit::Smc => Some("PSCI SYSTEM_RESET via SMC"),
        Conduit::None => None,
    }
}

/// Reset the system. Returns only if the reset did not happen.
pub fn reset(conduit: Conduit) {
    match conduit {
        Conduit::Hvc => handoff::psci_system_reset(false),
        Conduit::Smc => handoff::psci_system_reset(true),
        Conduit::None => {}
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
