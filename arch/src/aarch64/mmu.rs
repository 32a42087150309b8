//! Turning the stage-1 MMU and caches on over an identity map, for the
//! regime we were entered in. Off again happens in `handoff`.

use super::cpu::{pa_range_field, Regime};
use crate::pagetable::MAIR_VALUE;

/// TCR fields shared by all regimes: T0SZ = 16 (48-bit VA, walk starts at
/// level 0), IRGN0/ORGN0 = 0b01 (write-back write-allocate walks),
/// SH0 = 0b11 (inner shareable), TG0 = 0b00 (4 KiB granule).
const TCR_T0: u64 = 16 | (0b01 << 8) | (0b01 << 10) | (0b11 << 12);
/// TCR_EL1 / VHE TCR_EL2: EPD1 (bit 23) disables TTBR1 walks.
const TCR_EPD1: u64 = 1 << 23;
/// nVHE TCR_EL2 RES1 bits 31 and 23 (Arm ARM D19.2.137).
const TCR_EL2_RES1: u64 = (1 << 31) | (1 << 23);

/// SCTLR_ELx bits (Arm ARM D19.2.118): M (MMU), A (alignment check),
/// C (data cache), I (instruction cache), WXN (write implies XN).
pub const SCTLR_M: u64 = 1 << 0;
pub const SCTLR_A: u64 = 1 << 1;
pub const SCTLR_C: u64 = 1 << 2;
pub const SCTLR_I: u64 = 1 << 12;
pub const SCTLR_WXN: u64 = 1 << 19;

/// Execute-never bits for Device mappings in this regime: PXN|UXN at EL1
/// and VHE EL2; only XN (bit 54) at nVHE EL2, where bit 53 is RES0.
pub fn device_xn_bits(regime: Regime) -> u64 {
    match regime {
        Regime::El2Nvhe => 1 << 54,
        _ => (1 << 53) | (1 << 54),
    }
}

/// The TCR value for `regime`.
fn tcr(regime: Regime) -> u64 {
    let ps = pa_range_field();
    match regime {
        // TCR_EL1 and E2H=1 TCR_EL2 share the EL1 layout: IPS at [34:32].
        Regime::El1 | Regime::El2Vhe => TCR_T0 | TCR_EPD1 | (ps << 32),
        // nVHE TCR_EL2: PS at [18:16].
        Regime::El2Nvhe => TCR_T0 | TCR_EL2_RES1 | (ps << 16),
    }
}

/// Enable the MMU with `root` as TTBR0 and turn on both caches.
///
/// # Safety
/// `root` must be an identity map of all code, data and stack in use, of
/// every address touched until [`super::handoff`], written with caches off
/// and invalidated from the caches (Arm ARM D8.15: table walks may read
/// stale lines otherwise).
pub unsafe fn enable(regime: Regime, root: u64) {
    let tcr = tcr(regime);
    // SAFETY: the caller guarantees the identity map; the sequence follows
    // Arm ARM D8.11 "enabling the MMU": program MAIR/TCR/TTBR0, ISB,
    // invalidate stale TLB entries of this regime, DSB, ISB, then SCTLR.
    unsafe {
        match regime {
            Regime::El1 => core::arch::asm!(
                "msr mair_el1, {mair}",
                "msr tcr_el1, {tcr}",
                "msr ttbr0_el1, {root}",
                "isb",
                "tlbi vmalle1",
                "dsb nsh",
                "isb",
                "mrs {t}, sctlr_el1",
                "orr {t}, {t}, {set}",
                "bic {t}, {t}, {clear}",
                "msr sctlr_el1, {t}",
                "isb",
                mair = in(reg) MAIR_VALUE, tcr = in(reg) tcr, root = in(reg) root,
                set = in(reg) SCTLR_M | SCTLR_C | SCTLR_I,
                clear = in(reg) SCTLR_A | SCTLR_WXN,
                t = out(reg) _, options(nostack),
            ),
            Regime::El2Nvhe | Regime::El2Vhe => core::arch::asm!(
                "msr mair_el2, {mair}",
                "msr tcr_el2, {tcr}",
                "msr ttbr0_el2, {root}",
                "isb",
                "tlbi alle2",
                "dsb nsh",
                "isb",
                "mrs {t}, sctlr_el2",
                "orr {t}, {t}, {set}",
                "bic {t}, {t}, {clear}",
                "msr sctlr_el2, {t}",
                "isb",
                mair = in(reg) MAIR_VALUE, tcr = in(reg) tcr, root = in(reg) root,
                set = in(reg) SCTLR_M | SCTLR_C | SCTLR_I,
                clear = in(reg) SCTLR_A | SCTLR_WXN,
                t = out(reg) _, options(nostack),
            ),
        }
    }
}

/// Is the MMU on in this regime?
pub fn is_enabled(regime: Regime) -> bool {
    let sctlr: u64;
    // SAFETY: reads a system register.
    unsafe {
        match regime {
            Regime::El1 => core::arch::asm!("mrs {}, sctlr_el1", out(reg) sctlr, options(nomem, nostack)),
            _ => core::arch::asm!("mrs {}, sctlr_el2", out(reg) sctlr, options(nomem, nostack)),
        }
    }
    sctlr & SCTLR_M != 0
}
