//! Byte copies that cannot panic: iterators instead of indexing, so the
//! image needs no bounds-check failure path for them whatever the
//! optimiser proves (the purgatory is built for size, which inlines little).

/// Copy `src` into `dst` starting at offset `at`, as far as both go.
/// Returns the number of bytes copied.
pub fn put(dst: &mut [u8], at: usize, src: &[u8]) -> usize {
    dst.iter_mut().skip(at).zip(src).map(|(d, s)| *d = *s).count()
}

/// `a == b`, out of line: an inlined comparison with a constant is
/// expanded into byte loads and compares on the strict-alignment targets,
/// at each use (node and property names).
#[inline(never)]
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// `bytes` as one big-endian unsigned number (up to 8 of them), in a
/// loop out of line: the inlined shift-and-or of eight bytes is about 20
/// instructions on riscv64, at each use.
#[inline(never)]
pub fn be_uint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |v, &b| v << 8 | b as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_endian_numbers() {
        assert_eq!(be_uint(&[]), 0);
        assert_eq!(be_uint(&[1, 2, 3, 4]), 0x0102_0304);
        assert_eq!(be_uint(&[0xff; 8]), u64::MAX);
    }

    #[test]
    fn same_is_equality() {
        assert!(same(b"chosen", b"chosen") && same(b"", b""));
        assert!(!same(b"chosen", b"chosen@0") && !same(b"chosen", b"chosEn"));
    }

    #[test]
    fn copies_what_fits() {
        let mut d = [0u8; 6];
        assert_eq!(put(&mut d, 1, b"abc"), 3);
        assert_eq!(&d, b"\0abc\0\0");
        assert_eq!(put(&mut d, 4, b"xyz"), 2);
        assert_eq!(&d, b"\0abcxy");
        assert_eq!(put(&mut d, 9, b"q"), 0);
        assert_eq!(put(&mut d, usize::MAX, b"q"), 0);
    }
}
