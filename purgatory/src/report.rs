//! Console text without `core::fmt` (keeps the image small and free of
//! panic paths): strings, hexadecimal and decimal numbers, digests, and
//! line templates with `{name}` placeholders (`crate::console_lines`).
//!
//! Templates are stored packed ([`template!`]): the placeholder names are
//! documentation (the `console_lines` constants keep them), so the packed
//! form keeps only `{}`, and the `purgatory: ` every line starts with is
//! one byte, [`TAG_BYTE`], that [`fill`] prints as the tag. The text
//! printed is the same either way.

use crate::console_lines::TAG;

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Stands for `console_lines::TAG` at the start of a packed template.
pub const TAG_BYTE: u8 = 0x01;

/// `template` packed into `out` (as far as it goes); returns the packed
/// length. Fails the build for a `{` without its `}`.
const fn pack(template: &str, out: &mut [u8]) -> usize {
    let (t, tag) = (template.as_bytes(), TAG.as_bytes());
    let (mut i, mut n, mut in_name) = (0, 0, false);
    let mut tagged = t.len() >= tag.len();
    while tagged && i < tag.len() {
        tagged = t[i] == tag[i];
        i += 1;
    }
    if tagged {
        if !out.is_empty() {
            out[0] = TAG_BYTE;
        }
        n = 1;
    } else {
        i = 0;
    }
    while i < t.len() {
        let c = t[i];
        if !in_name || c == b'}' {
            if n < out.len() {
                out[n] = c;
            }
            n += 1;
        }
        if c == b'{' {
            in_name = true;
        } else if c == b'}' {
            in_name = false;
        }
        i += 1;
    }
    assert!(!in_name, "a console template has a `{{` without its `}}`");
    n
}

/// The packed length of `template` (see [`template!`]).
pub const fn packed_len(template: &str) -> usize {
    pack(template, &mut [])
}

/// `template` packed (see [`template!`]); `N` is its [`packed_len`].
pub const fn packed<const N: usize>(template: &str) -> [u8; N] {
    let mut out = [0u8; N];
    assert!(pack(template, &mut out) == N);
    out
}

/// The packed form of a template constant, built at compile time:
/// `con.line(template!(console_lines::SEGMENT_OK), &args)`.
#[macro_export]
macro_rules! template {
    ($t:expr) => {{
        const PACKED: [u8; $crate::report::packed_len($t)] = $crate::report::packed($t);
        // Packing drops whole ASCII-delimited runs and replaces the ASCII
        // tag by an ASCII byte: still UTF-8 (checked at compile time).
        const TEXT: &str = match core::str::from_utf8(&PACKED) {
            Ok(s) => s,
            Err(_) => panic!("a packed console template is not UTF-8"),
        };
        TEXT
    }};
}

/// A value for one `{name}` placeholder of a line template.
#[derive(Clone, Copy, Debug)]
pub enum Arg<'a> {
    Text(&'a str),
    /// Decimal.
    Dec(u64),
    /// `0x` and lowercase hex digits, no leading zeros.
    Hex(u64),
    /// Bytes as lowercase hex, two digits each (digests).
    HexBytes(&'a [u8]),
    /// A nested template with its own arguments (behind a reference:
    /// two fat pointers inline would make every `Arg` 40 bytes, not 24).
    Sub(&'a (&'a str, &'a [Arg<'a>])),
}

/// Write `template` (packed or not) with each `{...}` replaced by the next
/// argument, in order. A placeholder without an argument prints nothing; an
/// unclosed `{` prints as text.
pub fn fill<C: Console>(con: &mut C, template: &str, args: &[Arg]) {
    let mut rest = template.as_bytes();
    if let [TAG_BYTE, tail @ ..] = rest {
        con.write_bytes(TAG.as_bytes());
        rest = tail;
    }
    let mut args = args.iter();
    // Bytes, not `str::split_once`: the same walk in a third of the code.
    while let Some(open) = rest.iter().position(|&b| b == b'{') {
        let Some(close) = rest.iter().skip(open).position(|&b| b == b'}') else {
            break;
        };
        con.write_bytes(rest.get(..open).unwrap_or_default());
        match args.next() {
            Some(Arg::Text(s)) => con.write_bytes(s.as_bytes()),
            Some(&Arg::Dec(v)) => {
                con.dec(v);
            }
            Some(&Arg::Hex(v)) => {
                con.hex(v);
            }
            Some(Arg::HexBytes(b)) => {
                con.bytes_hex(b);
            }
            Some(Arg::Sub((t, a))) => fill(con, t, a),
            None => {}
        }
        rest = rest.get(open + close + 1..).unwrap_or_default();
    }
    con.write_bytes(rest);
}

/// Where console bytes go. Implementations write to a UART, or collect text
/// in tests.
pub trait Console {
    fn write_bytes(&mut self, bytes: &[u8]);

    /// One whole line: `template` filled with `args`, then a newline.
    fn line(&mut self, template: &str, args: &[Arg]) -> &mut Self
    where
        Self: Sized,
    {
        fill(self, template, args);
        self.write_bytes(b"\n");
        self
    }

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
        self.write_bytes(b"0x");
        digits(self, v, 16);
        self
    }

    fn dec(&mut self, v: u64) -> &mut Self
    where
        Self: Sized,
    {
        digits(self, v, 10);
        self
    }

    /// Bytes as lowercase hex, no separators.
    fn bytes_hex(&mut self, bytes: &[u8]) -> &mut Self
    where
        Self: Sized,
    {
        for b in bytes {
            let pair = [HEX_DIGITS[(b >> 4) as usize], HEX_DIGITS[(b & 0xf) as usize]];
            self.write_bytes(&pair);
        }
        self
    }
}

/// `v` in `base` (10 or 16), lowercase, no leading zeros: one loop for
/// both formats, filling a buffer from the right (u64::MAX has 20 decimal
/// digits).
fn digits<C: Console>(con: &mut C, mut v: u64, base: u64) {
    let mut buf = [0u8; 20];
    let mut start = buf.len();
    for slot in buf.iter_mut().rev() {
        *slot = HEX_DIGITS[(v % base) as usize & 0xf];
        start -= 1;
        v /= base;
        if v == 0 {
            break;
        }
    }
    con.write_bytes(buf.get(start..).unwrap_or_default());
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
        c.put(" ").bytes_hex(&[0x00, 0xab, 0x7f]).put(" ").dec(u64::MAX);
        assert_eq!(c.0, "0x0 0x40000000 0xffffffffffffffff 0 1234567 00ab7f 18446744073709551615");
    }

    #[test]
    fn packed_templates_print_the_same_text() {
        use crate::console_lines as lines;
        const SEG: &str = crate::template!(lines::SEGMENT_OK);
        assert_eq!(SEG, "\u{1}segment {} ({}) {}+{} sha256 ok");
        assert_eq!(crate::template!("a {x} b"), "a {} b", "untagged");
        let args = [Arg::Dec(3), Arg::Text("dtb"), Arg::Hex(0x4a00_0000), Arg::Hex(0x1000)];
        let (mut packed, mut plain) = (TextConsole::default(), TextConsole::default());
        packed.line(SEG, &args);
        plain.line(lines::SEGMENT_OK, &args);
        assert_eq!(packed.0, "purgatory: segment 3 (dtb) 0x4a000000+0x1000 sha256 ok\n");
        assert_eq!(packed.0, plain.0);
        for (_, t) in lines::LINES.iter().chain(lines::PARAM_REASONS) {
            let mut buf = [0u8; 200];
            let n = pack(t, &mut buf);
            let mut c = TextConsole::default();
            fill(&mut c, core::str::from_utf8(&buf[..n]).unwrap(), &[]);
            let mut want = TextConsole::default();
            fill(&mut want, t, &[]);
            assert_eq!(c.0, want.0, "{t}");
        }
    }

    #[test]
    fn templates_fill_in_order() {
        let mut c = TextConsole::default();
        let sub = [Arg::Text("debug flag")];
        c.line(
            "a {x} b {y}, {z}: {w} {v}",
            &[
                Arg::Dec(7),
                Arg::Hex(0x40),
                Arg::HexBytes(&[1, 0xfe]),
                Arg::Sub(&("off ({why})", &sub)),
                Arg::Text("end"),
            ],
        );
        assert_eq!(c.0, "a 7 b 0x40, 01fe: off (debug flag) end\n");
        let mut c = TextConsole::default();
        c.line("missing {one} and {two", &[]);
        assert_eq!(c.0, "missing  and {two\n");
    }
}
