//! x86 I/O port access (Intel SDM Vol. 1 §19 "Input/Output").

/// OUT to `port`.
pub fn outb(port: u16, v: u8) {
    // SAFETY: ring 0; the purgatory owns the machine. Callers only name
    // ports of devices it drives (PIT, port 0x61, the console UART, the
    // reset registers).
    unsafe { core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags)) };
}

/// IN from `port`.
pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as in `outb`.
    unsafe { core::arch::asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags)) };
    v
}
