//! Fixed-width integers read from byte slices, bounds-checked: every header
//! parser in the loader reads through these, so a short or hostile file
//! gives `None` (turned into an error naming the field), never a panic.

/// `N` bytes at `at`, if they are all inside `b`.
pub fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Little-endian u16 at `at`.
pub fn le16(b: &[u8], at: usize) -> Option<u16> {
    array(b, at).map(u16::from_le_bytes)
}

/// Little-endian u32 at `at`.
pub fn le32(b: &[u8], at: usize) -> Option<u32> {
    array(b, at).map(u32::from_le_bytes)
}

/// Little-endian u64 at `at`.
pub fn le64(b: &[u8], at: usize) -> Option<u64> {
    array(b, at).map(u64::from_le_bytes)
}

/// Big-endian u32 at `at` (devicetree blobs).
pub fn be32(b: &[u8], at: usize) -> Option<u32> {
    array(b, at).map(u32::from_be_bytes)
}

/// Big-endian u64 at `at`.
pub fn be64(b: &[u8], at: usize) -> Option<u64> {
    array(b, at).map(u64::from_be_bytes)
}

/// The first four bytes as "7f 45 4c 46", zero-filled when shorter (error
/// messages name what a file starts with).
pub fn magic_hex(b: &[u8]) -> String {
    let mut m = [0u8; 4];
    let n = b.len().min(4);
    m[..n].copy_from_slice(&b[..n]);
    format!("{:02x} {:02x} {:02x} {:02x}", m[0], m[1], m[2], m[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inside_and_refuses_outside() {
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(le16(&b, 0), Some(0x0201));
        assert_eq!(le32(&b, 1), Some(0x0504_0302));
        assert_eq!(le64(&b, 1), Some(0x0908_0706_0504_0302));
        assert_eq!(be32(&b, 0), Some(0x0102_0304));
        assert_eq!(be64(&b, 0), Some(0x0102_0304_0506_0708));
        assert_eq!(le64(&b, 2), None);
        assert_eq!(le32(&b, usize::MAX - 1), None, "no overflow on the end");
        assert_eq!(magic_hex(b"\x7fE"), "7f 45 00 00");
    }
}
