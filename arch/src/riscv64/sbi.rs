//! Supervisor Binary Interface calls (RISC-V SBI specification v2.0):
//! `ecall` with the extension id in a7, the function id in a6, arguments in
//! a0..a5; the SBI returns an error code in a0 and a value in a1 (§3).
//! Legacy (v0.1) extensions return their result in a0 only.

/// Base extension (§4), function 3: sbi_probe_extension.
const EID_BASE: u64 = 0x10;
const FID_PROBE_EXTENSION: u64 = 3;
/// Legacy console putchar (§5.2, EID 0x01).
const EID_LEGACY_PUTCHAR: u64 = 0x01;
/// Debug console (DBCN, §12, SBI 2.0): function 2 write_byte.
pub const EID_DBCN: u64 = 0x4442_434E;
const FID_DBCN_WRITE_BYTE: u64 = 2;
/// System reset (SRST, §10): function 0 system_reset(type, reason).
pub const EID_SRST: u64 = 0x5352_5354;
const SRST_TYPE_COLD_REBOOT: u64 = 1;
const SRST_REASON_SYSTEM_FAILURE: u64 = 1;

fn ecall(eid: u64, fid: u64, a0: u64, a1: u64) -> (i64, u64) {
    let error: u64;
    let value: u64;
    // SAFETY: an SBI call; M-mode firmware handles it and returns (or, for
    // SRST, resets). Registers per the SBI calling convention.
    unsafe {
        core::arch::asm!(
            "ecall",
            inlateout("a0") a0 => error,
            inlateout("a1") a1 => value,
            in("a6") fid,
            in("a7") eid,
            options(nostack),
        );
    }
    (error as i64, value)
}

/// sbi_probe_extension: true when the SBI implements `eid` (value != 0).
pub fn has_extension(eid: u64) -> bool {
    let (err, value) = ecall(EID_BASE, FID_PROBE_EXTENSION, eid, 0);
    err == 0 && value != 0
}

/// The SBI console the purgatory writes to, decided once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SbiConsole {
    /// DBCN write_byte (SBI 2.0).
    Dbcn,
    /// Legacy sbi_console_putchar (SBI v0.1, still in OpenSBI).
    Legacy,
}

impl SbiConsole {
    pub fn detect() -> Self {
        if has_extension(EID_DBCN) {
            Self::Dbcn
        } else {
            Self::Legacy
        }
    }

    pub fn put_byte(self, b: u8) {
        match self {
            Self::Dbcn => {
                ecall(EID_DBCN, FID_DBCN_WRITE_BYTE, b as u64, 0);
            }
            Self::Legacy => {
                ecall(EID_LEGACY_PUTCHAR, 0, b as u64, 0);
            }
        }
    }
}

/// SRST system_reset(cold reboot, system failure). Returns only when the
/// SBI lacks SRST or refused; the caller then halts.
pub fn system_reset() {
    if has_extension(EID_SRST) {
        ecall(EID_SRST, 0, SRST_TYPE_COLD_REBOOT, SRST_REASON_SYSTEM_FAILURE);
    }
}
