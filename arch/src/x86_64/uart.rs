//! Polled 8250/16550 output: THR at +0, LSR at +5 (LSR.THRE, bit 5, set
//! when the holding register is empty). No initialisation: the old kernel
//! set the line up.

#[derive(Clone, Copy, Debug)]
pub enum Uart {
    None,
    /// Registers at I/O ports base..base+7 (COM1 = 0x3f8).
    Io(u16),
    /// Registers 4 bytes apart in MMIO (reg-shift 2).
    Mmio32(u64),
}

const SPIN_LIMIT: u32 = 1_000_000;

fn outb(port: u16, v: u8) {
    // SAFETY: the loader named this UART as our console.
    unsafe { core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack)) };
}

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as above.
    unsafe { core::arch::asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack)) };
    v
}

impl Uart {
    fn put_byte(self, b: u8) {
        match self {
            Uart::None => {}
            Uart::Io(base) => {
                let mut spins = 0;
                while inb(base + 5) & 0x20 == 0 && spins < SPIN_LIMIT {
                    spins += 1;
                }
                outb(base, b);
            }
            // SAFETY: the loader named this MMIO UART; the kexec identity
            // map covers it (else the loader must not choose it).
            Uart::Mmio32(base) => unsafe {
                let mut spins = 0;
                while core::ptr::read_volatile((base + 0x14) as *const u32) & 0x20 == 0 && spins < SPIN_LIMIT {
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
}
