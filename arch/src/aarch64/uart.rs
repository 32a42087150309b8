//! Polled output to the console UART named in the parameter block. No
//! initialisation: the UART was set up by firmware or the old kernel.

/// A UART we can write to.
#[derive(Clone, Copy, Debug)]
pub enum Uart {
    None,
    /// Arm PL011 (PrimeCell UART TRM DDI0183): DR at 0x00, FR at 0x18,
    /// FR.TXFF (bit 5) set while the transmit FIFO is full.
    Pl011(u64),
    /// 16550-compatible with 32-bit registers: THR at 0, LSR at 5 << 2,
    /// LSR.THRE (bit 5) set when the holding register is empty.
    Ns16550Mmio32(u64),
}

const SPIN_LIMIT: u32 = 1_000_000;

impl Uart {
    fn put_byte(self, b: u8) {
        // SAFETY (both arms): the loader named this MMIO base as the
        // console; it is identity-mapped as Device memory (or the MMU is
        // off). Volatile accesses of the register width.
        match self {
            Self::None => {}
            Self::Pl011(base) => unsafe {
                let mut spins = 0;
                while core::ptr::read_volatile((base + 0x18) as *const u32) & (1 << 5) != 0 && spins < SPIN_LIMIT {
                    spins += 1;
                }
                core::ptr::write_volatile(base as *mut u32, b as u32);
            },
            Self::Ns16550Mmio32(base) => unsafe {
                let mut spins = 0;
                while core::ptr::read_volatile((base + 0x14) as *const u32) & (1 << 5) == 0 && spins < SPIN_LIMIT {
                    spins += 1;
                }
                core::ptr::write_volatile(base as *mut u32, b as u32);
            },
        }
    }

    /// Write bytes, turning `\n` into `\r\n`.
    pub fn write(self, bytes: &[u8]) {
        crate::for_each_crlf(bytes, |b| self.put_byte(b));
    }

    /// MMIO base to map as Device memory, if any.
    pub fn mmio_base(self) -> Option<u64> {
        match self {
            Self::None => None,
            Self::Pl011(b) | Self::Ns16550Mmio32(b) => Some(b),
        }
    }
}
