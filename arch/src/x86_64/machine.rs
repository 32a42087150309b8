//! The architecture interface the purgatory's shared `Platform` calls
//! (`purgatory_arch::machine`); every architecture offers these names.

use super::{cpu, entry, handoff, sha_ni};
use crate::uart::Uart;
use crate::{Compress, Conduit, UartKind};

pub use handoff::halt;

/// The architecture's name in console lines.
pub const NAME: &str = "x86_64";

/// The UART for a console descriptor. I/O ports are 16 bits wide (the
/// purgatory's validation refuses a larger base; None here as well).
pub fn uart(kind: UartKind, base: u64) -> Option<Uart> {
    match kind {
        UartKind::Pl011 => Some(Uart::Pl011(base)),
        UartKind::Ns16550Mmio32 => Some(Uart::Ns16550Mmio32(base)),
        UartKind::Ns16550Io => u16::try_from(base).ok().map(Uart::Ns16550Io),
        UartKind::Ns16550Mmio8 => Some(Uart::Ns16550Mmio8(base)),
        UartKind::Sbi => None,
    }
}

/// SHA-NI when CPUID says it exists (with SSSE3 and SSE4.1). Choosing it
/// turns SSE on (CR0/CR4), which the hand-off undoes by restoring CR4.
pub fn sha256_engine() -> Option<(Compress, &'static str)> {
    if !cpu::has_sha_ni() {
        return None;
    }
    sha_ni::enable_sse();
    Some((sha_ni::compress as Compress, "sha-ni"))
}

/// 64 bits from RDSEED or RDRAND, if the CPU has either.
pub fn entropy() -> Option<u64> {
    cpu::hw_random()
}

/// The initial APIC id of this CPU.
pub fn boot_cpu_id() -> u32 {
    cpu::apic_id()
}

/// The TSC, calibrated against PIT channel 2.
pub struct Clock {
    tsc_hz: u64,
}

impl Clock {
    /// Calibrate (10 ms); None without a PIT.
    pub fn start() -> Option<Self> {
        cpu::tsc_hz().map(|tsc_hz| Self { tsc_hz })
    }

    pub fn now_us(&self) -> u64 {
        let (t, hz) = (cpu::rdtsc(), self.tsc_hz.max(1));
        // Split to stay in u64 (as aarch64's cpu::now_us does).
        (t / hz).saturating_mul(1_000_000).saturating_add((t % hz).saturating_mul(1_000_000) / hz)
    }
}

/// How [`reset`] resets the system (the conduit is an Arm notion).
pub fn reset_method(_conduit: Conduit) -> Option<&'static str> {
    Some("port 0xcf9, then the keyboard controller")
}

/// Reset the system. Returns only if the reset did not happen.
pub fn reset(_conduit: Conduit) {
    handoff::reset();
}

/// Header field `mem_size` of the image running at `base`.
///
/// # Safety
/// `base` must be the runtime base `_start` passed to `purgatory_main`.
pub unsafe fn image_mem_size(base: u64) -> u64 {
    // SAFETY: per the caller's contract.
    unsafe { entry::image_mem_size(base) }
}
