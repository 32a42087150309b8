//! Console text without `core::fmt` (keeps the image small and free of
//! panic paths): strings, hexadecimal and decimal numbers, digests, and
//! line templates with `{name}` placeholders (`crate::console_lines`).
//!
//! Templates are stored packed ([`template!`](crate::template)): the placeholder names are
//! documentation (the `console_lines` constants keep them), so the packed
//! form keeps only `{}`; and the words the console text repeats most (the
//! `purgatory: ` every line starts with, "segment", "structure block",
//! ...: [`WORDS`]) are one control byte each, which [`fill`] prints as the
//! word. The text printed is the same either way (tested for every line
//! and reason); about 0.6 KiB less in each image.

use crate::console_lines::TAG;

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The words packed text stores as one byte, `WORDS[i]` as byte `i + 1`:
/// the tag, then the words that save the most bytes over `console_lines`
/// (longest first: packing takes the first that matches). Bytes 9, 10
/// and 13 stand for themselves (tab, newline, carriage return). None holds
/// `{` or `}`, so placeholders stay visible to [`fill`].
pub const WORDS: [&str; 31] = [
    TAG,
    "structure block",
    "purgatory image",
    "verification",
    " seeds ref",
    "REFUSED: ",
    "entering",
    "console ",
    "\t",
    "\n",
    "unknown ",
    "segment",
    "\r",
    "er than",
    " exclud",
    "version",
    "kernel",
    "inside",
    " the ",
    " not ",
    "block",
    "FDT ",
    "ader",
    "size",
    " is",
    "ed ",
    "es ",
    "res",
    "ot ",
    "nd ",
    "ELF",
];

purgatory_arch::str_table!(static DICTIONARY = [
    WORDS[0], WORDS[1], WORDS[2], WORDS[3], WORDS[4], WORDS[5], WORDS[6], WORDS[7], WORDS[8], WORDS[9],
    WORDS[10], WORDS[11], WORDS[12], WORDS[13], WORDS[14], WORDS[15], WORDS[16], WORDS[17], WORDS[18],
    WORDS[19], WORDS[20], WORDS[21], WORDS[22], WORDS[23], WORDS[24], WORDS[25], WORDS[26], WORDS[27],
    WORDS[28], WORDS[29], WORDS[30],
]);

/// The word a packed byte stands for, if it is one (bytes 1 to 31).
fn word(b: u8) -> Option<&'static str> {
    let i = b.wrapping_sub(1);
    (i < 31).then(|| DICTIONARY.get(i as usize))
}

/// Does `t[i..]` start with `w`?
const fn starts_with_at(t: &[u8], i: usize, w: &[u8]) -> bool {
    if t.len() - i < w.len() {
        return false;
    }
    let mut j = 0;
    while j < w.len() {
        if t[i + j] != w[j] {
            return false;
        }
        j += 1;
    }
    true
}

/// `text` packed into `out` (as far as it goes); returns the packed
/// length. Placeholder names go (`{index}` becomes `{}`), [`WORDS`] become
/// their bytes. Fails the build for a `{` without its `}`.
const fn pack(text: &str, out: &mut [u8]) -> usize {
    let t = text.as_bytes();
    let (mut i, mut n, mut in_name) = (0, 0, false);
    while i < t.len() {
        let c = t[i];
        let mut byte = c;
        let mut step = 1;
        if in_name {
            if c == b'}' {
                in_name = false;
            } else {
                i += 1;
                continue;
            }
        } else if c == b'{' {
            in_name = true;
        } else {
            let mut w = 0;
            while w < WORDS.len() {
                if starts_with_at(t, i, WORDS[w].as_bytes()) {
                    byte = w as u8 + 1;
                    step = WORDS[w].len();
                    break;
                }
                w += 1;
            }
        }
        if n < out.len() {
            out[n] = byte;
        }
        n += 1;
        i += step;
    }
    assert!(!in_name, "a console template has a `{{` without its `}}`");
    n
}

/// The packed length of `text` (see [`template!`](crate::template)).
pub const fn packed_len(text: &str) -> usize {
    pack(text, &mut [])
}

/// `text` packed (see [`template!`](crate::template)); `N` is its [`packed_len`].
pub const fn packed<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    assert!(pack(text, &mut out) == N);
    out
}

/// The packed form of a console text constant, built at compile time:
/// `con.line(template!(console_lines::SEGMENT_OK), &args)`. Print it only
/// through [`fill`] (as a template or an [`Arg::Text`]).
#[macro_export]
macro_rules! template {
    ($t:expr) => {{
        const PACKED: [u8; $crate::report::packed_len($t)] = $crate::report::packed($t);
        // Packing drops whole ASCII-delimited runs and replaces ASCII words
        // by ASCII bytes: still UTF-8 (checked at compile time).
        const TEXT: &str = match core::str::from_utf8(&PACKED) {
            Ok(s) => s,
            Err(_) => panic!("a packed console template is not UTF-8"),
        };
        TEXT
    }};
}

/// A reason or name the image returns as text (`FdtError::describe`...):
/// packed like a template in the image, where only [`fill`] prints it;
/// as written on the host, where loaders print it themselves.
#[macro_export]
macro_rules! text {
    ($t:expr) => {{
        #[cfg(any(target_os = "none", rkx_bare_metal))]
        let text = $crate::template!($t);
        #[cfg(not(any(target_os = "none", rkx_bare_metal)))]
        let text = $t;
        text
    }};
}

/// Write packed (or plain) text: runs as they are, word bytes as their
/// words.
fn write_text<C: Console>(con: &mut C, mut text: &[u8]) {
    while !text.is_empty() {
        let run = text.iter().position(|&b| word(b).is_some()).unwrap_or(text.len());
        con.write_bytes(text.get(..run).unwrap_or_default());
        if let Some(w) = text.get(run).and_then(|&b| word(b)) {
            con.write_bytes(w.as_bytes());
        }
        text = text.get(run + 1..).unwrap_or_default();
    }
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
    let mut args = args.iter();
    // Bytes, not `str::split_once`: the same walk in a third of the code.
    while let Some(open) = rest.iter().position(|&b| b == b'{') {
        let Some(close) = rest.iter().skip(open).position(|&b| b == b'}') else {
            break;
        };
        write_text(con, rest.get(..open).unwrap_or_default());
        match args.next() {
            Some(Arg::Text(s)) => write_text(con, s.as_bytes()),
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
    write_text(con, rest);
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
        // The tag (word 0) and "segment" (word 11) as one byte each.
        assert_eq!(SEG, "\u{1}\u{c} {} ({}) {}+{} sha256 ok");
        assert_eq!(crate::template!("a {x} b"), "a {} b", "no words");
        let args = [Arg::Dec(3), Arg::Text("dtb"), Arg::Hex(0x4a00_0000), Arg::Hex(0x1000)];
        let (mut packed, mut plain) = (TextConsole::default(), TextConsole::default());
        packed.line(SEG, &args);
        plain.line(lines::SEGMENT_OK, &args);
        assert_eq!(packed.0, "purgatory: segment 3 (dtb) 0x4a000000+0x1000 sha256 ok\n");
        assert_eq!(packed.0, plain.0);
        // Every line and reason, as a template and as a text argument.
        let all = lines::LINES.iter().chain(lines::PARAM_REASONS).chain(lines::STRUCTURE_REASONS);
        for (_, t) in all.chain(lines::PATCH_REASONS) {
            let mut buf = [0u8; 200];
            let n = pack(t, &mut buf);
            assert!(n <= t.len() && n < buf.len(), "{t}");
            let packed = core::str::from_utf8(&buf[..n]).unwrap();
            let (mut c, mut want) = (TextConsole::default(), TextConsole::default());
            fill(&mut c, packed, &[]);
            fill(&mut want, t, &[]);
            assert_eq!(c.0, want.0, "{t}");
            if !t.contains('{') {
                let (mut c, mut want) = (TextConsole::default(), TextConsole::default());
                fill(&mut c, "<{}>", &[Arg::Text(packed)]);
                fill(&mut want, "<{}>", &[Arg::Text(t)]);
                assert_eq!(c.0, want.0, "{t}");
            }
        }
        // Every word has its own byte; tab, newline and CR are themselves.
        for (i, w) in WORDS.iter().enumerate() {
            assert_eq!(word(i as u8 + 1), Some(*w), "byte {}", i + 1);
        }
        assert_eq!([WORDS[8], WORDS[9], WORDS[12]], ["\t", "\n", "\r"]);
        assert_eq!((word(0), word(32)), (None, None));
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
