//! CPUID features, control registers, the TSC and RDRAND/RDSEED.

use core::arch::x86_64::{__cpuid, __cpuid_count, _rdtsc};

use super::port::{inb, outb};

/// CPUID.(EAX=7,ECX=0):EBX.SHA[bit 29]: SHA-NI (SHA256RNDS2 & co).
/// SSE4.1 (CPUID.1:ECX[19]) and SSSE3 (CPUID.1:ECX[9]) are used too.
pub fn has_sha_ni() -> bool {
    let (l1, l7) = (__cpuid(1), __cpuid_count(7, 0));
    l7.ebx & (1 << 29) != 0 && l1.ecx & (1 << 19) != 0 && l1.ecx & (1 << 9) != 0
}

/// CPUID.1:ECX.RDRAND[bit 30].
pub fn has_rdrand() -> bool {
    __cpuid(1).ecx & (1 << 30) != 0
}

/// CPUID.(EAX=7,ECX=0):EBX.RDSEED[bit 18].
pub fn has_rdseed() -> bool {
    __cpuid_count(7, 0).ebx & (1 << 18) != 0
}

/// Initial APIC id of this CPU (CPUID.1:EBX[31:24]).
pub fn apic_id() -> u32 {
    __cpuid(1).ebx >> 24
}

/// 64 bits from RDSEED (preferred: fresh entropy) or RDRAND, retrying a
/// few times as Intel's DRNG guide recommends; None without either.
pub fn hw_random() -> Option<u64> {
    if has_rdseed() {
        for _ in 0..16 {
            if let Some(v) = rdseed() {
                return Some(v);
            }
        }
    }
    if has_rdrand() {
        for _ in 0..10 {
            if let Some(v) = rdrand() {
                return Some(v);
            }
        }
    }
    None
}

fn rdseed() -> Option<u64> {
    let v: u64;
    let ok: u8;
    // SAFETY: RDSEED exists (checked by the caller); CF=1 means valid.
    unsafe {
        core::arch::asm!("rdseed {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack))
    };
    (ok != 0).then_some(v)
}

fn rdrand() -> Option<u64> {
    let v: u64;
    let ok: u8;
    // SAFETY: RDRAND exists (checked by the caller); CF=1 means valid.
    unsafe {
        core::arch::asm!("rdrand {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack))
    };
    (ok != 0).then_some(v)
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC exists on every x86_64 CPU (CR4.TSD is clear in ring 0 anyway).
    unsafe { _rdtsc() }
}

/// TSC ticks per second, measured against PIT channel 2 over 10 ms (the
/// classic calibration; the 8254 counts at 1.193182 MHz). None when the
/// gate never closes (no PIT).
pub fn tsc_hz() -> Option<u64> {
    const PIT_HZ: u64 = 1_193_182;
    const LATCH: u64 = PIT_HZ / 100;
    let gate = inb(0x61);
    outb(0x61, (gate & !0x02) | 0x01); // gate channel 2 on, speaker off
    outb(0x43, 0xb0); // channel 2, lobyte/hibyte, mode 0
    outb(0x42, (LATCH & 0xff) as u8);
    outb(0x42, (LATCH >> 8) as u8);
    let t0 = rdtsc();
    let mut spins = 0u64;
    while inb(0x61) & 0x20 == 0 {
        spins += 1;
        if spins > 50_000_000 {
            outb(0x61, gate);
            return None;
        }
    }
    let t1 = rdtsc();
    outb(0x61, gate);
    Some(t1.wrapping_sub(t0).saturating_mul(100)).filter(|&hz| hz > 0)
}

/// Control registers, to restore the state relocate_kernel left.
pub fn read_cr0() -> u64 {
    let v: u64;
    // SAFETY: ring 0.
    unsafe { core::arch::asm!("mov {}, cr0", out(reg) v, options(nomem, nostack)) };
    v
}

pub fn read_cr4() -> u64 {
    let v: u64;
    // SAFETY: ring 0.
    unsafe { core::arch::asm!("mov {}, cr4", out(reg) v, options(nomem, nostack)) };
    v
}
