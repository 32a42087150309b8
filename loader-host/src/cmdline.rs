//! The new kernel's command line from the caller's choice and the running
//! system, the same way on every architecture (kexec-tools' get_command_line
//! and --reuse-cmdline: kexec/kexec.c).

use crate::request::CmdlineChoice;

/// The first index of `needle` in `hay` (a byte substring search).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// kexec-tools' remove_parameter (kexec/kexec.c): find `name` (a plain
/// substring search, so `BOOT_IMAGE` also matches `BOOT_IMAGEX=`); when it
/// starts the line or follows whitespace, cut from there up to and
/// including the next space (or to the end of the line, leaving the space
/// before it), then look again; a match in the middle of a word stops the
/// search. All occurrences go, as in kexec-tools 2.0.32 (`crashkernel=X,high
/// crashkernel=Y,low`). Everything else is kept byte for byte, which IMA's
/// kexec-cmdline measurement (LTP ima_kexec) compares; the line is bytes,
/// as kexec-tools' C string is (no encoding is assumed).
pub fn remove_parameter(line: &[u8], name: &str) -> Vec<u8> {
    let mut out = line.to_vec();
    if name.is_empty() {
        return out;
    }
    while let Some(start) = find(&out, name.as_bytes()) {
        if start > 0 && !out[start - 1].is_ascii_whitespace() {
            break;
        }
        match out[start..].iter().position(|&b| b == b' ') {
            Some(sp) => {
                out.drain(start..start + sp + 1);
            }
            None => out.truncate(start),
        }
    }
    out
}

/// The running command line as a new kernel should inherit it
/// (kexec-tools' get_command_line for --reuse-cmdline): without BOOT_IMAGE
/// (the boot loader's, not ours) and, for a capture kernel, without
/// crashkernel (it must not reserve crash memory again).
pub fn inherited(running: &[u8], crash: bool) -> Vec<u8> {
    let c = remove_parameter(running, "BOOT_IMAGE");
    if crash {
        remove_parameter(&c, "crashkernel")
    } else {
        c
    }
}

/// kexec-tools' concat_cmdline: the reused line, one space, the appended
/// one; either alone as it is.
pub fn concat(reused: &[u8], append: &[u8]) -> Vec<u8> {
    let mut out = reused.to_vec();
    if !append.is_empty() {
        out.push(b' ');
        out.extend_from_slice(append);
    }
    out
}

/// `line` without trailing ASCII whitespace.
pub fn trim_end(line: &[u8]) -> &[u8] {
    let n = line.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    &line[..n]
}

/// `line` without leading and trailing ASCII whitespace.
pub fn trim(line: &[u8]) -> &[u8] {
    let t = trim_end(line);
    let n = t.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(t.len());
    &t[n..]
}

/// The whitespace-separated words of `line` (for reading parameters such
/// as `console=` whose values are ASCII; other bytes are kept as they are).
pub fn words(line: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    line.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty())
}

/// The parameter a capture kernel finds its elfcorehdr by
/// (kernel/crash_dump.c setup_elfcorehdr, an early_param: every
/// occurrence is parsed and the last one wins, after the DTB's
/// linux,elfcorehdr too).
pub const ELFCOREHDR: &str = "elfcorehdr";

/// The kernel's command-line tokens (kernel/params.c next_arg): runs of
/// non-space characters, a double quote protecting spaces up to the next
/// one; the first bare `--` ends the kernel's parameters (the rest is
/// init's). Returns each token's byte range, up to (not including) `--`.
fn kernel_tokens(b: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        let start = i;
        let mut in_quote = false;
        while i < b.len() && (in_quote || !b[i].is_ascii_whitespace()) {
            if b[i] == b'"' {
                in_quote = !in_quote;
            }
            i += 1;
        }
        if &b[start..i] == b"--" {
            break;
        }
        out.push(start..i);
    }
    out
}

/// The parameter name of a token: before its `=`, a leading quote dropped,
/// dashes read as underscores (kernel/params.c parameq).
fn param_name(token: &[u8]) -> Vec<u8> {
    let t = token.strip_prefix(b"\"").unwrap_or(token);
    let name = t.split(|&b| b == b'=').next().unwrap_or_default();
    let n = name.iter().rposition(|&b| b != b'"').map_or(0, |i| i + 1);
    name[..n].iter().map(|&b| if b == b'-' { b'_' } else { b }).collect()
}

/// `line` without every kernel parameter called `name` (tokens as the
/// kernel splits them; anything after a bare `--` is init's and stays),
/// each with the spaces after it (or, for the last, before it); and the
/// tokens removed.
pub fn strip_param(line: &[u8], name: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
    let want: Vec<u8> = name.bytes().map(|b| if b == b'-' { b'_' } else { b }).collect();
    let mut out = Vec::with_capacity(line.len());
    let mut removed = Vec::new();
    let mut at = 0;
    let tokens = kernel_tokens(line);
    for (i, t) in tokens.iter().enumerate() {
        if param_name(&line[t.clone()]) != want {
            continue;
        }
        removed.push(line[t.clone()].to_vec());
        let end = match tokens.get(i + 1) {
            Some(next) => next.start,
            // The last kernel parameter: take the spaces before it instead
            // (unless a `--` follows, whose space must stay).
            None if trim(&line[t.end..]).is_empty() => {
                let before = trim_end(&line[at..t.start]).len() + at;
                out.extend_from_slice(&line[at..before]);
                at = line.len();
                continue;
            }
            None => line[t.end..].iter().position(|b| !b.is_ascii_whitespace()).map_or(line.len(), |n| t.end + n),
        };
        out.extend_from_slice(&line[at..t.start]);
        at = end;
    }
    out.extend_from_slice(&line[at.min(line.len())..]);
    (out, removed)
}

/// Resolve `choice`. `running` reads /proc/cmdline when needed; `keep` is
/// what the architecture keeps without --append (None: nothing to set).
/// For a capture kernel (`crash`), any `elfcorehdr=` is taken out of the
/// line whatever its source, and said in `notes`: the loader passes the
/// capture kernel its own, and the kernel would take the last one given
/// (the way kexec-tools' get_command_line takes out crashkernel=).
pub fn resolve<E>(
    choice: &CmdlineChoice,
    running: impl FnOnce() -> Result<Vec<u8>, E>,
    keep: impl FnOnce() -> Result<Option<Vec<u8>>, E>,
    crash: bool,
    notes: &mut Vec<String>,
) -> Result<Option<Vec<u8>>, E> {
    let line = match choice {
        CmdlineChoice::Keep => keep()?.map(|k| {
            let k = if crash { remove_parameter(&k, "crashkernel") } else { k };
            trim_end(&k).to_vec()
        }),
        CmdlineChoice::Set(s) => Some(s.clone()),
        CmdlineChoice::Reuse(extra) => Some(concat(&inherited(&running()?, crash), extra)),
    };
    Ok(line.map(|l| if crash { for_capture(&l, notes) } else { l }))
}

/// `line` for a capture kernel: without `elfcorehdr=`, noted.
pub fn for_capture(line: &[u8], notes: &mut Vec<String>) -> Vec<u8> {
    let (out, removed) = strip_param(line, ELFCOREHDR);
    if !removed.is_empty() {
        notes.push(format!(
            "removed {} from the command line: the capture kernel gets the loader's elfcorehdr, and the kernel takes the last one given (kernel/crash_dump.c setup_elfcorehdr)",
            removed.iter().map(|t| crate::escape::bytes(t).to_string()).collect::<Vec<_>>().join(" ")
        ));
    }
    out
}

/// A capture kernel's command line: `elfcorehdr=<address>` first, then
/// `line`. The kernel's own kexec_file loaders write it there
/// (arch/x86/kernel/kexec-bzimage64.c setup_cmdline,
/// arch/powerpc/kexec/file_load.c setup_kdump_cmdline): first keeps it
/// ahead of a " -- " that hands the rest to init. The kernel parses it with
/// memparse (kernel/crash_dump.c setup_elfcorehdr), so the hex form is
/// fine.
pub fn with_elfcorehdr(line: &[u8], elfcorehdr: u64) -> Vec<u8> {
    let mut out = format!("elfcorehdr={elfcorehdr:#x}").into_bytes();
    let c = trim(line);
    if !c.is_empty() {
        out.push(b' ');
        out.extend_from_slice(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: Vec<u8>) -> String {
        String::from_utf8(b).unwrap()
    }
    // The byte functions, on text (the tests' lines are UTF-8).
    fn remove_parameter(l: &str, n: &str) -> String {
        text(super::remove_parameter(l.as_bytes(), n))
    }
    fn inherited(l: &str, crash: bool) -> String {
        text(super::inherited(l.as_bytes(), crash))
    }
    fn concat(a: &str, b: &str) -> String {
        text(super::concat(a.as_bytes(), b.as_bytes()))
    }
    fn strip_param(l: &str, n: &str) -> (String, Vec<String>) {
        let (a, b) = super::strip_param(l.as_bytes(), n);
        (text(a), b.into_iter().map(text).collect())
    }

    fn run(choice: CmdlineChoice, crash: bool) -> Option<String> {
        resolve::<()>(
            &choice,
            || Ok("BOOT_IMAGE=/vmlinuz root=/dev/vda crashkernel=256M quiet".into()),
            || Ok(Some("from dtb crashkernel=1G".into())),
            crash,
            &mut Vec::new(),
        )
        .unwrap()
        .map(text)
    }

    /// issue 21 item 3: the line is bytes end to end, as kexec-tools' C
    /// strings are; a byte that is not UTF-8 is kept, not refused.
    #[test]
    fn bytes_that_are_not_utf8_are_kept() {
        let running = b"BOOT_IMAGE=/k root=/dev/\xff\xfe crashkernel=1G x=\xc3";
        let got = resolve::<()>(
            &CmdlineChoice::Reuse(b"a=\x80".to_vec()),
            || Ok(running.to_vec()),
            || Ok(None),
            true,
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(got.as_deref(), Some(&b"root=/dev/\xff\xfe x=\xc3 a=\x80"[..]));
        let (line, removed) = super::strip_param(b"\xffa elfcorehdr=\xfe b", ELFCOREHDR);
        assert_eq!((line, removed), (b"\xffa b".to_vec(), vec![b"elfcorehdr=\xfe".to_vec()]));
    }

    #[test]
    fn reuse_drops_boot_image_and_for_crash_crashkernel() {
        assert_eq!(run(CmdlineChoice::Reuse(Vec::new()), false).unwrap(), "root=/dev/vda crashkernel=256M quiet");
        assert_eq!(run(CmdlineChoice::Reuse("x=1".into()), true).unwrap(), "root=/dev/vda quiet x=1");
        assert_eq!(run(CmdlineChoice::Set("a b".into()), true).unwrap(), "a b");
        assert_eq!(run(CmdlineChoice::Keep, true).unwrap(), "from dtb");
        assert_eq!(run(CmdlineChoice::Keep, false).unwrap(), "from dtb crashkernel=1G");
    }

    #[test]
    fn remove_parameter_matches_kexec_tools_byte_for_byte() {
        // LTP ima_kexec expects `sed 's/BOOT_IMAGE=[^ ]* //'` of /proc/cmdline.
        assert_eq!(remove_parameter("BOOT_IMAGE=/vmlinuz-6.1 root=/dev/vda  ro", "BOOT_IMAGE"), "root=/dev/vda  ro");
        assert_eq!(remove_parameter("a BOOT_IMAGE=/x b", "BOOT_IMAGE"), "a b");
        assert_eq!(remove_parameter("a b BOOT_IMAGE=/x", "BOOT_IMAGE"), "a b ", "last token: the space before stays");
        assert_eq!(remove_parameter("crashkernel=1G,high crashkernel=256M,low x", "crashkernel"), "x", "all of them");
        assert_eq!(remove_parameter("xcrashkernel=1 crashkernel=2", "crashkernel"), "xcrashkernel=1 crashkernel=2");
        assert_eq!(remove_parameter("quiet", "BOOT_IMAGE"), "quiet");
        assert_eq!(inherited("BOOT_IMAGE=/k crashkernel=1G q", false), "crashkernel=1G q");
        assert_eq!(inherited("BOOT_IMAGE=/k crashkernel=1G q", true), "q");
        assert_eq!(concat("a b", ""), "a b");
        assert_eq!(concat("a b", "c"), "a b c");
    }

    #[test]
    fn a_capture_kernel_gets_no_elfcorehdr_but_the_loaders() {
        let strip = |l: &str| strip_param(l, ELFCOREHDR);
        assert_eq!(
            strip("root=/dev/vda elfcorehdr=0x1234 quiet"),
            ("root=/dev/vda quiet".into(), vec!["elfcorehdr=0x1234".into()])
        );
        assert_eq!(
            strip("elfcorehdr=1 a elfcorehdr=64M@2G"),
            ("a".into(), vec!["elfcorehdr=1".into(), "elfcorehdr=64M@2G".into()])
        );
        assert_eq!(
            strip("a  elfcorehdr=1"),
            ("a".into(), vec!["elfcorehdr=1".into()]),
            "the last: the spaces before go"
        );
        assert_eq!(strip("a elfcorehdr"), ("a".into(), vec!["elfcorehdr".into()]));
        // Words that only contain the name, a quoted value, init's part.
        assert_eq!(strip("xelfcorehdr=1 foo=elfcorehdr=2").1, Vec::<String>::new());
        assert_eq!(strip("foo=\"a elfcorehdr=3\" b").1, Vec::<String>::new(), "inside a quoted value");
        assert_eq!(strip("\"elfcorehdr=4\" b"), ("b".into(), vec!["\"elfcorehdr=4\"".into()]));
        assert_eq!(strip("a elfcorehdr=5 -- elfcorehdr=6"), ("a -- elfcorehdr=6".into(), vec!["elfcorehdr=5".into()]));
        let mut notes = Vec::new();
        let line = resolve::<()>(
            &CmdlineChoice::Set("root=/dev/vda elfcorehdr=0x1000".into()),
            || Ok(Vec::new()),
            || Ok(None),
            true,
            &mut notes,
        )
        .unwrap();
        assert_eq!(line.as_deref(), Some(&b"root=/dev/vda"[..]));
        assert!(notes[0].starts_with("removed elfcorehdr=0x1000 from the command line"), "{notes:?}");
        let mut notes = Vec::new();
        let line = resolve::<()>(
            &CmdlineChoice::Set("elfcorehdr=1".into()),
            || Ok(Vec::new()),
            || Ok(None),
            false,
            &mut notes,
        );
        assert_eq!(line.unwrap().as_deref(), Some(&b"elfcorehdr=1"[..]), "a normal load keeps what it is given");
        assert!(notes.is_empty());
    }
}
