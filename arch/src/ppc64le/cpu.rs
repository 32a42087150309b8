//! Processor registers the purgatory reads, and `darn`.

/// The Machine State Register.
pub fn msr() -> u64 {
    let v: u64;
    // SAFETY: mfmsr is privileged (we run at the old kernel's privilege)
    // and has no side effect.
    unsafe { core::arch::asm!("mfmsr {0}", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// MSR[HV] (bit 3): set on bare metal (powernv), clear in a pseries guest.
pub const MSR_HV: u64 = 1 << 60;

/// The Processor Version Register: the physical processor (`PVR >> 16` is
/// the family: 0x004d POWER8, 0x004e POWER9, 0x0080 POWER10;
/// arch/powerpc/include/asm/reg.h).
pub fn pvr() -> u32 {
    let v: u64;
    // SAFETY: mfpvr (mfspr 287) is privileged-readable, no side effect.
    unsafe { core::arch::asm!("mfpvr {0}", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v as u32
}

/// The time base (mftb): ticks at `/cpus/*/timebase-frequency`.
pub fn timebase() -> u64 {
    let v: u64;
    // SAFETY: reading the time base has no side effect.
    unsafe { core::arch::asm!("mftb {0}", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// One `darn RT,1` (Power ISA v3.0 "Deliver A Random Number", 64-bit
/// conditioned): all ones means the source failed this time; the kernel
/// retries 10 times (arch/powerpc/platforms/powernv/rng.c, DARN_ERR).
/// Call only on a CPU with ISA 3.0 (POWER9 or later): earlier ones raise
/// an illegal-instruction interrupt.
pub fn darn() -> Option<u64> {
    const DARN_ERR: u64 = u64::MAX;
    for _ in 0..10 {
        let v: u64;
        // SAFETY: the caller checked ISA 3.0; darn only writes its target.
        unsafe { core::arch::asm!("darn {0}, 1", out(reg) v, options(nomem, nostack, preserves_flags)) };
        if v != DARN_ERR {
            return Some(v);
        }
    }
    None
}

/// Microseconds of `ticks` at `freq` Hz, split to stay in u64.
pub fn ticks_to_us(ticks: u64, freq: u64) -> u64 {
    let freq = freq.max(1);
    (ticks / freq) * 1_000_000 + (ticks % freq) * 1_000_000 / freq
}
