//! Console text without `core::fmt` (keeps the image small): strings,
//! hexadecimal and decimal numbers, digests.

/// Where console bytes go. Implementations write to a UART, or collect text
/// in tests.
pub trait Console {
    fn write_bytes(&mut self, bytes: &[u8]);

    fn put(&mut self, s: &str) -> &mut Self
    where
        Self: Sized,
    {
        self.write_bytes(s.as_bytes());
        self
    }

    /// `0x` followed by at least one hex digit, no leading zeros.
    fn hex(&mut self, v: u64) -> &mut Self
    where
        Self: Sized,
    {
        let mut buf = [0u8; 18];
        buf[0] = b'0';
        buf[1] = b'x';
        let digits = if v == 0 { 1 } else { (67 - v.leading_zeros() as usize) / 4 };
        for i in 0..digits {
            let nib = ((v >> (4 * (digits - 1 - i))) & 0xf) as usize;
            buf[2 + i] = b"0123456789abcdef"[nib];
        }
        self.write_bytes(&buf[..2 + digits]);
        self
    }

    fn dec(&mut self, mut v: u64) -> &mut Self
    where
        Self: Sized,
    {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.write_bytes(&buf[i..]);
        self
    }

    /// Bytes as lowercase hex, no separators.
    fn bytes_hex(&mut self, bytes: &[u8]) -> &mut Self
    where
        Self: Sized,
    {
        for b in bytes {
            let pair = [b"0123456789abcdef"[(b >> 4) as usize], b"0123456789abcdef"[(b & 0xf) as usize]];
            self.write_bytes(&pair);
        }
        self
    }
}

/// A console that drops everything (no console configured).
pub struct NullConsole;

impl Console for NullConsole {
    fn write_bytes(&mut self, _bytes: &[u8]) {}
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[derive(Default)]
    pub struct TextConsole(pub String);

    impl Console for TextConsole {
        fn write_bytes(&mut self, bytes: &[u8]) {
            self.0.push_str(core::str::from_utf8(bytes).unwrap());
        }
    }

    #[test]
    fn numbers() {
        let mut c = TextConsole::default();
        c.hex(0).put(" ").hex(0x4000_0000).put(" ").hex(u64::MAX).put(" ").dec(0).put(" ").dec(1234567);
        c.put(" ").bytes_hex(&[0x00, 0xab, 0x7f]);
        assert_eq!(c.0, "0x0 0x40000000 0xffffffffffffffff 0 1234567 00ab7f");
    }
}
