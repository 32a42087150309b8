//! Names that come from outside (file paths, DTB node and property names,
//! values read from /proc and /sys, `--serial` and `-t` arguments) as
//! messages print them: one line, no terminal control sequences. Every
//! error and plan line that shows such a name goes through [`Escaped`], so
//! a file called `"x\nrkexec: loaded"` cannot forge a second message line
//! and an ESC in a DTB name cannot drive the terminal.
//!
//! The form is Rust's escapes for strings: `\n`, `\r`, `\t`, `\\`, `\u{…}`
//! for other control and bidirectional-formatting characters, and `\xNN`
//! for bytes of a path that are not UTF-8. Everything else is shown as it
//! is. A JSON value that must carry such bytes uses [`json_text`].

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A name to print, escaped (see the module comment).
#[derive(Clone, Copy)]
pub struct Escaped<'a>(&'a [u8]);

/// `p`, escaped.
pub fn path(p: &Path) -> Escaped<'_> {
    Escaped(p.as_os_str().as_bytes())
}

/// `s`, escaped.
pub fn text(s: &str) -> Escaped<'_> {
    Escaped(s.as_bytes())
}

/// `b` (bytes: a kernel command line, a DTB string), escaped.
pub fn bytes(b: &[u8]) -> Escaped<'_> {
    Escaped(b)
}

/// `s` (an OS string: a file name, an argument), escaped.
pub fn os(s: &OsStr) -> Escaped<'_> {
    Escaped(s.as_bytes())
}

/// Characters that reorder or hide text on a terminal (Unicode bidi
/// controls: LRM, RLM, LRE..RLO, LRI..PDI), escaped like control characters.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn write_char(f: &mut fmt::Formatter<'_>, c: char) -> fmt::Result {
    match c {
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        '\t' => f.write_str("\\t"),
        '\\' => f.write_str("\\\\"),
        c if c.is_control() || is_bidi_control(c) => write!(f, "\\u{{{:x}}}", c as u32),
        c => write!(f, "{c}"),
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                write_char(f, c)?;
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// `b` as a JSON string value: the text itself when `b` is UTF-8 (JSON
/// escapes what it must), else the escaped form above (`\xNN` for the
/// bytes that are not UTF-8, a backslash doubled), which stays valid
/// JSON and tells the bytes apart (docs/plan-json.md).
pub fn json_text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => Escaped(b).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn control_characters_and_bad_bytes_are_escaped_the_rest_kept() {
        assert_eq!(text("/boot/vmlinuz-6.1 é").to_string(), "/boot/vmlinuz-6.1 é");
        assert_eq!(text("a\nrkexec: loaded").to_string(), "a\\nrkexec: loaded");
        assert_eq!(text("\x1b[31mred\t\r").to_string(), "\\u{1b}[31mred\\t\\r");
        assert_eq!(text("back\\slash").to_string(), "back\\\\slash");
        assert_eq!(text("\u{202e}gpj.exe").to_string(), "\\u{202e}gpj.exe");
        assert_eq!(text("\u{7f}\u{85}").to_string(), "\\u{7f}\\u{85}");
        let p = Path::new(OsStr::from_bytes(b"/tmp/\xff\xfe\nx"));
        assert_eq!(path(p).to_string(), "/tmp/\\xff\\xfe\\nx");
        assert_eq!(format!("{:?}", text("a\n")), "\"a\\n\"");
        assert!(!path(p).to_string().contains('\n'));
        assert_eq!(bytes(b"a=\xff\n").to_string(), "a=\\xff\\n");
        assert_eq!(json_text(b"a\nb"), "a\nb", "UTF-8 text as it is: JSON escapes it");
        assert_eq!(json_text(b"a\n\xffb\\"), "a\\n\\xffb\\\\");
    }
}
