//! Tables of strings that cost no relocations.
//!
//! A `match` returning one of N string constants compiles to a table of N
//! pointers (and one of lengths). In the position-independent images each
//! pointer is 8 bytes of data plus a 24-byte `R_*_RELATIVE` relocation
//! that `_start` applies: 32 bytes per string before its text. A
//! [`StrTable`] holds the strings back to back with their end offsets,
//! built at compile time from the same constants; looking one up is
//! PC-relative arithmetic. Use [`str_table!`] to declare one.

/// `N` strings of `BYTES` bytes in total, back to back.
pub struct StrTable<const N: usize, const BYTES: usize> {
    bytes: [u8; BYTES],
    /// Where each string ends in `bytes` (it starts where the previous one
    /// ends).
    ends: [u16; N],
}

/// The total length of `strs` (the `BYTES` of their table).
pub const fn total_len(strs: &[&str]) -> usize {
    let (mut i, mut n) = (0, 0);
    while i < strs.len() {
        n += strs[i].len();
        i += 1;
    }
    n
}

impl<const N: usize, const BYTES: usize> StrTable<N, BYTES> {
    /// Copy `strs` into a table (compile time: the build fails if `BYTES`
    /// is not their total length or exceeds 64 KiB).
    pub const fn new(strs: [&str; N]) -> Self {
        assert!(BYTES == total_len(&strs) && BYTES <= u16::MAX as usize);
        let mut bytes = [0u8; BYTES];
        let mut ends = [0u16; N];
        let (mut i, mut at) = (0, 0);
        while i < N {
            let s = strs[i].as_bytes();
            let mut j = 0;
            while j < s.len() {
                bytes[at] = s[j];
                at += 1;
                j += 1;
            }
            ends[i] = at as u16;
            i += 1;
        }
        Self { bytes, ends }
    }

    /// String `i`, or "" past the end.
    pub fn get(&self, i: usize) -> &str {
        nth(&self.bytes, &self.ends, i)
    }
}

/// String `i` of a table's bytes and end offsets: one copy for every
/// table (not inlined per table and per use).
#[inline(never)]
fn nth<'a>(bytes: &'a [u8], ends: &[u16], i: usize) -> &'a str {
    let start = match i.checked_sub(1) {
        Some(prev) => ends.get(prev).copied().unwrap_or(0),
        None => 0,
    };
    let end = ends.get(i).copied().unwrap_or(0);
    let bytes = bytes.get(start as usize..end as usize).unwrap_or_default();
    // SAFETY: `StrTable::new` copied whole `&str`s and recorded where each
    // ends, so bytes from one end to the next are one of them: valid
    // UTF-8. (An out-of-range `i` gives the empty slice.)
    unsafe { core::str::from_utf8_unchecked(bytes) }
}

/// `str_table!(pub static NAME = [A, B, ...])` declares a [`StrTable`] of
/// the given string constants, in that order.
#[macro_export]
macro_rules! str_table {
    ($vis:vis static $name:ident = [$($s:expr),* $(,)?] $(;)?) => {
        $vis static $name: $crate::strtab::StrTable<
            { [$($s),*].len() },
            { $crate::strtab::total_len(&[$($s),*]) },
        > = $crate::strtab::StrTable::new([$($s),*]);
    };
}

#[cfg(test)]
mod tests {
    str_table!(static T = ["EL1", "", "EL2 nVHE", "é"]);

    #[test]
    fn strings_come_back_whole() {
        assert_eq!([T.get(0), T.get(1), T.get(2), T.get(3)], ["EL1", "", "EL2 nVHE", "é"]);
        assert_eq!(T.get(4), "");
        assert_eq!(T.get(usize::MAX), "");
    }
}
