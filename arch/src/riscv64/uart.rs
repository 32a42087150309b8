//! Polled output to the console named in the parameter block. No
//! initialisation: firmware or the old kernel set the UART up.

use super::sbi::SbiConsole;

/// Where console bytes go.
#[derive(Clone, Copy, Debug)]
pub enum Uart {
    None,
    /// 16550 with byte registers at consecutive addresses (reg-shift 0,
    /// reg-io-width 1: the 8250 binding's defaults, QEMU virt's uart0):
    /// THR at +0, LSR at +5, LSR.THRE (bit 5) set when THR is empty.
    Ns16550Mmio8(u64),
    /// 16550 with 32-bit registers (reg-shift 2, reg-io-width 4): LSR at
    /// +0x14.
    Ns16550Mmio32(u64),
    /// The SBI debug console or legacy putchar.
    Sbi(SbiConsole),
}

const SPIN_LIMIT: u32 = 1_000_000;

impl Uart {
    fn put_byte(self, b: u8) {
        // SAFETY (MMIO arms): the loader named this base as the console;
        // with satp = 0 physical addresses are used directly, and the PMAs
        // make the region I/O (uncached, ordered). Accesses of the register
        // width the binding says.
        match self {
            Self::None => {}
            Self::Ns16550Mmio8(base) => unsafe {
                let mut spins = 0;
                while core::ptr::read_volatile((base + 5) as *const u8) & (1 << 5) == 0 && spins < SPIN_LIMIT {
                    spins += 1;
                }
                core::ptr::write_volatile(base as *mut u8, b);
            },
            Self::Ns16550Mmio32(base) => unsafe {
                let mut spins = 0;
                while core::ptr::read_volatile((base + 0x14) as *const u32) & (1 << 5) == 0 && spins < SPIN_LIMIT {
                    spins += 1;
                }
                core::ptr::write_volatile(base as *mut u32, b as u32);
            },
            Self::Sbi(con) => con.put_byte(b),
        }
    }

    /// Write bytes, turning `\n` into `\r\n`.
    pub fn write(self, bytes: &[u8]) {
        crate::for_each_crlf(bytes, |b| self.put_byte(b));
    }
}
