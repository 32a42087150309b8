//! PAPR hypervisor calls (pseries): `sc 1` with the opcode in r3 and the
//! arguments in r4.., the status back in r3 (LoPAPR, "Hypervisor Call
//! Semantics"; the kernel's plpar_hcall_norets in
//! arch/powerpc/platforms/pseries/hvCall.S). Only made when MSR[HV] is 0:
//! with HV set (powernv, bare metal) `sc 1` would enter our own CPU's
//! system-call vector, the old kernel's code.

/// H_PUT_TERM_CHAR (arch/powerpc/include/asm/hvcall.h).
const H_PUT_TERM_CHAR: u64 = 0x58;
/// H_BUSY and the long-busy range (hvcall.h): retry those.
const H_BUSY: i64 = 1;
const H_LONG_BUSY_START: i64 = 9900;
const H_LONG_BUSY_END: i64 = 9905;
/// Tries per chunk before the bytes are dropped: a console that never
/// takes them slows the purgatory down but cannot hang it.
const BUSY_LIMIT: u32 = 100_000;

/// One hypervisor call with up to four arguments; its status.
fn hcall4(op: u64, a: u64, b: u64, c: u64, d: u64) -> i64 {
    let status: u64;
    // SAFETY: a hypercall made from a pseries guest (callers checked
    // MSR[HV] = 0); the hypervisor returns here with the status in r3. It
    // may change r0 and r3-r12, CTR, XER and CR (the kernel's hvCall.S
    // saves CR around it): all declared, one by one (clobber_abi("C")
    // would also save the 18 non-volatile FPRs, which no hcall touches).
    unsafe {
        core::arch::asm!(
            "sc 1",
            inlateout("r3") op => status,
            inlateout("r4") a => _,
            inlateout("r5") b => _,
            inlateout("r6") c => _,
            inlateout("r7") d => _,
            out("r0") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("ctr") _,
            out("xer") _,
            out("cr0") _,
            out("cr1") _,
            out("cr2") _,
            out("cr3") _,
            out("cr4") _,
            out("cr5") _,
            out("cr6") _,
            out("cr7") _,
            options(nostack),
        );
    }
    status as i64
}

/// The PAPR virtual terminal `vterm` (the vty node's `reg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vterm(pub u64);

impl Vterm {
    /// H_PUT_TERM_CHAR(vterm, len <= 16, bytes 0..7, bytes 8..15): the
    /// bytes packed big-endian into r6 and r7, the first byte most
    /// significant (the kernel's hvc_put_chars; QEMU's h_put_term_char
    /// unpacks them the same way). Retried while the hypervisor is busy.
    fn put(self, hi: u64, lo: u64, len: u64) {
        for _ in 0..BUSY_LIMIT {
            match hcall4(H_PUT_TERM_CHAR, self.0, len, hi, lo) {
                H_BUSY | H_LONG_BUSY_START..=H_LONG_BUSY_END => {}
                // H_SUCCESS, or an error a retry cannot change.
                _ => return,
            }
        }
    }

    /// Write `bytes`, `\n` as `\r\n`, up to 16 bytes per call: shifted
    /// into a 128-bit big-endian buffer (hi:lo), then left-aligned.
    pub fn write(self, bytes: &[u8]) {
        let (mut hi, mut lo, mut n) = (0u64, 0u64, 0u64);
        crate::for_each_crlf(bytes, |b| {
            hi = hi << 8 | lo >> 56;
            lo = lo << 8 | b as u64;
            n += 1;
            if n == 16 {
                self.put(hi, lo, 16);
                (hi, lo, n) = (0, 0, 0);
            }
        });
        if n > 0 {
            // The first byte must be the most significant of hi: shift
            // the 8n bits up by the 16 - n bytes missing.
            let shift = (16 - n) * 8;
            if shift >= 64 {
                (hi, lo) = (lo << (shift - 64), 0);
            } else {
                (hi, lo) = (hi << shift | lo >> (64 - shift), lo << shift);
            }
            self.put(hi, lo, n);
        }
    }
}

/// QEMU's `KVMPPC_H_RTAS` (0xf000, QEMU include/hw/ppc/spapr.h): QEMU
/// runs the RTAS call whose big-endian `rtas_args` block is at `args`
/// itself. Only QEMU has it (PowerVM does not); the purgatory enters RTAS
/// the portable way (`rtas.rs`), and QEMU's own RTAS blob is this call.
/// The test payload and harness use it; the purgatory does not.
pub const KVMPPC_H_RTAS: u64 = 0xf000;
