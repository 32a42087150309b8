//! Exception level, identification registers, counter, entropy.

use aarch64_cpu::registers::{
    CurrentEL, Readable, CNTFRQ_EL0, CNTVCT_EL0, HCR_EL2, ID_AA64ISAR0_EL1, ID_AA64MMFR0_EL1, MPIDR_EL1,
};

/// The translation regime we run in (booting.rst "Boot protocol": the
/// kernel may be entered at EL1, or at EL2 with or without VHE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regime {
    El1,
    /// EL2 with HCR_EL2.E2H = 0.
    El2Nvhe,
    /// EL2 with HCR_EL2.E2H = 1 (FEAT_VHE).
    El2Vhe,
}

impl Regime {
    pub fn current() -> Self {
        match CurrentEL.read(CurrentEL::EL) {
            2 if HCR_EL2.read(HCR_EL2::E2H) == 1 => Self::El2Vhe,
            2 => Self::El2Nvhe,
            _ => Self::El1,
        }
    }

    pub fn name(self) -> &'static str {
        crate::str_table!(static NAMES = ["EL1", "EL2 nVHE", "EL2 VHE"]);
        NAMES.get(self as usize)
    }
}

/// ID_AA64ISAR0_EL1.SHA2 (bits [15:12]) != 0: SHA256H/SHA256H2/SHA256SU0/SHA256SU1 exist.
pub fn has_sha256_instructions() -> bool {
    (ID_AA64ISAR0_EL1.get() >> 12) & 0xf != 0
}

/// ID_AA64ISAR0_EL1.RNDR != 0: FEAT_RNG (RNDR register) exists.
pub fn has_rndr() -> bool {
    ID_AA64ISAR0_EL1.read(ID_AA64ISAR0_EL1::RNDR) != 0
}

/// ID_AA64MMFR0_EL1.TGran4 == 0b0000 or 0b0001: the 4 KiB granule exists
/// (0b1111 means not implemented).
pub fn has_4k_granule() -> bool {
    ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::TGran4) != 0b1111
}

/// ID_AA64MMFR0_EL1.PARange, capped at 0b101 (48 bits): the value for
/// TCR_ELx.{I}PS with a 4 KiB granule and 48-bit VAs.
pub fn pa_range_field() -> u64 {
    ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange).min(0b101)
}

/// MPIDR_EL1 affinity Aff2:Aff1:Aff0, as the DTB cpu node `reg` holds for
/// single-cell cpu addresses.
pub fn mpidr_affinity() -> u32 {
    (MPIDR_EL1.get() & 0x00ff_ffff) as u32
}

/// Microseconds from the generic timer's virtual count.
pub fn now_us() -> u64 {
    let freq = CNTFRQ_EL0.get().max(1);
    let ticks = CNTVCT_EL0.get();
    // Split to stay in u64: (ticks % freq) * 1e6 < freq * 1e6 < 2^64 for
    // any counter under 18 THz.
    (ticks / freq) * 1_000_000 + (ticks % freq) * 1_000_000 / freq
}

/// One RNDR read: Some on success; RNDR sets PSTATE.Z on failure
/// (Arm ARM C5.2.18 "RNDR, Random Number").
pub fn rndr() -> Option<u64> {
    if !has_rndr() {
        return None;
    }
    let value: u64;
    let ok: u64;
    // SAFETY: RNDR exists (checked above); reading it has no side effect
    // other than NZCV, which the asm block declares clobbered.
    unsafe {
        core::arch::asm!(
            "mrs {v}, s3_3_c2_c4_0",
            "cset {ok}, ne",
            v = out(reg) value,
            ok = out(reg) ok,
            options(nomem, nostack),
        );
    }
    (ok != 0).then_some(value)
}
