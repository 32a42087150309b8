//! CSRs the purgatory reads: `seed` (Zkr) and `time`, both behind the
//! trap guard of entry.rs, since S-mode access to either depends on what
//! M-mode firmware enabled (mseccfg.SSEED, mcounteren.TM), not only on
//! what the ISA string claims.

unsafe extern "C" {
    static mut rkx_probe_resume: u64;
}

/// One `seed` CSR read (csrrw rd, seed, x0: the Zkr spec requires a
/// read-write access). None when the access trapped (illegal instruction:
/// no Zkr, or mseccfg.SSEED clear).
fn seed_csr() -> Option<u32> {
    let value: u64;
    let ok: u64;
    // SAFETY: arms the trap guard with the resume label, reads `seed`; a
    // trap resumes at 1: with ok = 0 (entry.rs rkx_trap_vector), which
    // also disarms the guard. Only t0/t1 and the outputs are touched.
    unsafe {
        core::arch::asm!(
            "lla t0, 1f",
            "sd t0, 0({resume})",
            "li {ok}, 0",
            "li {v}, 0",
            ".option push",
            ".option arch, +zkr",
            "csrrw {v}, seed, zero",
            ".option pop",
            "li {ok}, 1",
            "1:",
            "sd zero, 0({resume})",
            resume = in(reg) core::ptr::addr_of_mut!(rkx_probe_resume),
            ok = out(reg) ok,
            v = out(reg) value,
            out("t0") _,
            options(nostack),
        );
    }
    (ok != 0).then_some(value as u32)
}

/// 64 bits of entropy from the Zkr entropy source: four ES16 samples
/// (`seed` bits 31:30 = 0b10, 16 bits in 15:0; RISC-V scalar crypto spec
/// v1.0 §4.1). BIST and WAIT are retried a bounded number of times, DEAD
/// (0b11) or an inaccessible CSR give None. The caller conditions the
/// result with SHA-256 (kexec_purgatory::seed).
pub fn seed_u64(zkr: bool) -> Option<u64> {
    if !zkr {
        return None;
    }
    let mut out = 0u64;
    let mut got = 0;
    let mut tries = 0u32;
    while got < 4 {
        let s = seed_csr()?;
        match s >> 30 {
            0b10 => {
                out = (out << 16) | (s & 0xffff) as u64;
                got += 1;
            }
            0b11 => return None,
            _ => {
                tries += 1;
                if tries > 100_000 {
                    return None;
                }
            }
        }
    }
    Some(out)
}

/// The `time` CSR, or None when S-mode may not read it (mcounteren.TM).
pub fn time() -> Option<u64> {
    let value: u64;
    let ok: u64;
    // SAFETY: as in seed_csr: a guarded CSR read.
    unsafe {
        core::arch::asm!(
            "lla t0, 1f",
            "sd t0, 0({resume})",
            "li {ok}, 0",
            "li {v}, 0",
            "rdtime {v}",
            "li {ok}, 1",
            "1:",
            "sd zero, 0({resume})",
            resume = in(reg) core::ptr::addr_of_mut!(rkx_probe_resume),
            ok = out(reg) ok,
            v = out(reg) value,
            out("t0") _,
            options(nostack),
        );
    }
    (ok != 0).then_some(value)
}

/// Microseconds of `ticks` at `freq` Hz (the DTB's
/// /cpus/timebase-frequency), split to stay in u64.
pub fn ticks_to_us(ticks: u64, freq: u64) -> u64 {
    let freq = freq.max(1);
    (ticks / freq) * 1_000_000 + (ticks % freq) * 1_000_000 / freq
}
