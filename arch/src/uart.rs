//! Polled output to the console UART the parameter block names, for every
//! architecture. No initialisation: firmware or the old kernel set the line
//! up. Every wait is bounded, so a UART that never drains slows the
//! purgatory down but cannot hang it.

/// The UART models a console descriptor can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uart {
    /// No console: output is dropped.
    None,
    /// Arm PL011 (PrimeCell UART TRM DDI0183): DR at 0x00, FR at 0x18,
    /// FR.TXFF (bit 5) set while the transmit FIFO is full.
    Pl011(u64),
    /// 16550-compatible with 32-bit registers (reg-shift 2): THR at 0,
    /// LSR at 5 << 2, LSR.THRE (bit 5) set when the holding register is empty.
    Ns16550Mmio32(u64),
    /// 16550 at x86 I/O ports base..base+7 (COM1 = 0x3f8): THR at +0,
    /// LSR at +5.
    #[cfg(target_arch = "x86_64")]
    Ns16550Io(u16),
    /// 16550 with byte registers at consecutive addresses (reg-shift 0,
    /// reg-io-width 1, the 8250 binding's defaults; QEMU riscv virt's
    /// uart0): THR at +0, LSR at +5.
    Ns16550Mmio8(u64),
    /// riscv64: the SBI debug console or legacy putchar.
    #[cfg(target_arch = "riscv64")]
    Sbi(crate::riscv64::sbi::SbiConsole),
    /// ppc64le: the PAPR virtual terminal (hypercalls, no MMIO).
    #[cfg(target_arch = "powerpc64")]
    Hvterm(crate::ppc64le::hcall::Vterm),
}

/// Status polls per byte before writing anyway.
const SPIN_LIMIT: u32 = 1_000_000;

/// PL011 FR.TXFF and 16550 LSR.THRE.
const BIT5: u32 = 1 << 5;

fn read32(addr: u64) -> u32 {
    // SAFETY: `addr` is a register of the MMIO UART the loader named as the
    // console; the purgatory validated that it lies outside every segment
    // and outside its own image, and maps it as Device memory (or runs with
    // the MMU off / on the kexec identity map). Aligned 32-bit access.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn read8(addr: u64) -> u8 {
    // SAFETY: as in `read32`; a byte register.
    unsafe { core::ptr::read_volatile(addr as *const u8) }
}

fn write8(addr: u64, v: u8) {
    // SAFETY: as in `read32`; a byte register.
    unsafe { core::ptr::write_volatile(addr as *mut u8, v) }
}

fn write32(addr: u64, v: u32) {
    // SAFETY: as in `read32`.
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}

/// Spin while `busy()` holds, at most SPIN_LIMIT times.
fn wait_while(mut busy: impl FnMut() -> bool) {
    let mut spins = 0;
    while busy() && spins < SPIN_LIMIT {
        spins += 1;
    }
}

impl Uart {
    #[cfg_attr(target_arch = "powerpc64", allow(dead_code))]
    fn put_byte(self, b: u8) {
        match self {
            Self::None => {}
            Self::Pl011(base) => {
                wait_while(|| read32(base.wrapping_add(0x18)) & BIT5 != 0);
                write32(base, b as u32);
            }
            Self::Ns16550Mmio32(base) => {
                wait_while(|| read32(base.wrapping_add(0x14)) & BIT5 == 0);
                write32(base, b as u32);
            }
            Self::Ns16550Mmio8(base) => {
                wait_while(|| read8(base.wrapping_add(5)) as u32 & BIT5 == 0);
                write8(base, b);
            }
            #[cfg(target_arch = "riscv64")]
            Self::Sbi(con) => con.put_byte(b),
            // Never reached: `write` sends the vterm's bytes itself.
            #[cfg(target_arch = "powerpc64")]
            Self::Hvterm(_) => {}
            #[cfg(target_arch = "x86_64")]
            Self::Ns16550Io(base) => {
                use crate::x86_64::port::{inb, outb};
                wait_while(|| inb(base.wrapping_add(5)) as u32 & BIT5 == 0);
                outb(base, b);
            }
        }
    }

    /// Write bytes, turning `\n` into `\r\n`.
    pub fn write(self, bytes: &[u8]) {
        // ppc64le: the vterm (up to 16 bytes per hypercall) is the only
        // console its machine::uart hands out; no MMIO UART code is kept.
        #[cfg(target_arch = "powerpc64")]
        if let Self::Hvterm(vterm) = self {
            vterm.write(bytes);
        }
        #[cfg(not(target_arch = "powerpc64"))]
        crate::for_each_crlf(bytes, |b| self.put_byte(b));
    }

    /// The MMIO page to map as Device memory, if any.
    pub fn mmio_base(self) -> Option<u64> {
        match self {
            Self::Pl011(b) | Self::Ns16550Mmio32(b) | Self::Ns16550Mmio8(b) => Some(b),
            _ => None,
        }
    }
}
