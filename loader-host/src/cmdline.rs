//! The new kernel's command line from the caller's choice and the running
//! system, the same way on every architecture (kexec-tools' get_command_line
//! and --reuse-cmdline: kexec/kexec.c).

use crate::request::CmdlineChoice;

/// kexec-tools' remove_parameter (kexec/kexec.c): find `name` (a plain
/// substring search, so `BOOT_IMAGE` also matches `BOOT_IMAGEX=`); when it
/// starts the line or follows whitespace, cut from there up to and
/// including the next space (or to the end of the line, leaving the space
/// before it), then look again; a match in the middle of a word stops the
/// search. All occurrences go, as in kexec-tools 2.0.32 (`crashkernel=X,high
/// crashkernel=Y,low`). Everything else is kept byte for byte, which IMA's
/// kexec-cmdline measurement (LTP ima_kexec) compares.
pub fn remove_parameter(line: &str, name: &str) -> String {
    let mut out = line.to_string();
    if name.is_empty() {
        return out;
    }
    while let Some(start) = out.find(name) {
        if start > 0 && !out.as_bytes()[start - 1].is_ascii_whitespace() {
            break;
        }
        match out[start..].find(' ') {
            Some(sp) => out.replace_range(start..start + sp + 1, ""),
            None => out.truncate(start),
        }
    }
    out
}

/// The running command line as a new kernel should inherit it
/// (kexec-tools' get_command_line for --reuse-cmdline): without BOOT_IMAGE
/// (the boot loader's, not ours) and, for a capture kernel, without
/// crashkernel (it must not reserve crash memory again).
pub fn inherited(running: &str, crash: bool) -> String {
    let c = remove_parameter(running, "BOOT_IMAGE");
    if crash {
        remove_parameter(&c, "crashkernel")
    } else {
        c
    }
}

/// kexec-tools' concat_cmdline: the reused line, one space, the appended
/// one; either alone as it is.
pub fn concat(reused: &str, append: &str) -> String {
    if append.is_empty() {
        reused.to_string()
    } else {
        format!("{reused} {append}")
    }
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
fn kernel_tokens(line: &str) -> Vec<std::ops::Range<usize>> {
    let b = line.as_bytes();
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
        if &line[start..i] == "--" {
            break;
        }
        out.push(start..i);
    }
    out
}

/// The parameter name of a token: before its `=`, a leading quote dropped,
/// dashes read as underscores (kernel/params.c parameq).
fn param_name(token: &str) -> String {
    let t = token.strip_prefix('"').unwrap_or(token);
    t.split('=').next().unwrap_or_default().trim_end_matches('"').replace('-', "_")
}

/// `line` without every kernel parameter called `name` (tokens as the
/// kernel splits them; anything after a bare `--` is init's and stays),
/// each with the spaces after it (or, for the last, before it); and the
/// tokens removed.
pub fn strip_param(line: &str, name: &str) -> (String, Vec<String>) {
    let want = name.replace('-', "_");
    let mut out = String::with_capacity(line.len());
    let mut removed = Vec::new();
    let mut at = 0;
    let tokens = kernel_tokens(line);
    for (i, t) in tokens.iter().enumerate() {
        if param_name(&line[t.clone()]) != want {
            continue;
        }
        removed.push(line[t.clone()].to_string());
        let end = match tokens.get(i + 1) {
            Some(next) => next.start,
            // The last kernel parameter: take the spaces before it instead
            // (unless a `--` follows, whose space must stay).
            None if line[t.end..].trim().is_empty() => {
                let before = line[at..t.start].trim_end().len() + at;
                out.push_str(&line[at..before]);
                at = line.len();
                continue;
            }
            None => line[t.end..].find(|c: char| !c.is_ascii_whitespace()).map_or(line.len(), |n| t.end + n),
        };
        out.push_str(&line[at..t.start]);
        at = end;
    }
    out.push_str(&line[at.min(line.len())..]);
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
    running: impl FnOnce() -> Result<String, E>,
    keep: impl FnOnce() -> Result<Option<String>, E>,
    crash: bool,
    notes: &mut Vec<String>,
) -> Result<Option<String>, E> {
    let line = match choice {
        CmdlineChoice::Keep => {
            keep()?.map(|k| if crash { remove_parameter(&k, "crashkernel") } else { k }.trim_end().to_string())
        }
        CmdlineChoice::Set(s) => Some(s.clone()),
        CmdlineChoice::Reuse(extra) => Some(concat(&inherited(&running()?, crash), extra)),
    };
    Ok(line.map(|l| if crash { for_capture(&l, notes) } else { l }))
}

/// `line` for a capture kernel: without `elfcorehdr=`, noted.
pub fn for_capture(line: &str, notes: &mut Vec<String>) -> String {
    let (out, removed) = strip_param(line, ELFCOREHDR);
    if !removed.is_empty() {
        notes.push(format!(
            "removed {} from the command line: the capture kernel gets the loader's elfcorehdr, and the kernel takes the last one given (kernel/crash_dump.c setup_elfcorehdr)",
            removed.iter().map(|t| crate::escape::text(t).to_string()).collect::<Vec<_>>().join(" ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(choice: CmdlineChoice, crash: bool) -> Option<String> {
        resolve::<()>(
            &choice,
            || Ok("BOOT_IMAGE=/vmlinuz root=/dev/vda crashkernel=256M quiet".into()),
            || Ok(Some("from dtb crashkernel=1G".into())),
            crash,
            &mut Vec::new(),
        )
        .unwrap()
    }

    #[test]
    fn reuse_drops_boot_image_and_for_crash_crashkernel() {
        assert_eq!(run(CmdlineChoice::Reuse(String::new()), false).unwrap(), "root=/dev/vda crashkernel=256M quiet");
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
            || Ok(String::new()),
            || Ok(None),
            true,
            &mut notes,
        )
        .unwrap();
        assert_eq!(line.as_deref(), Some("root=/dev/vda"));
        assert!(notes[0].starts_with("removed elfcorehdr=0x1000 from the command line"), "{notes:?}");
        let mut notes = Vec::new();
        let line = resolve::<()>(
            &CmdlineChoice::Set("elfcorehdr=1".into()),
            || Ok(String::new()),
            || Ok(None),
            false,
            &mut notes,
        );
        assert_eq!(line.unwrap().as_deref(), Some("elfcorehdr=1"), "a normal load keeps what it is given");
        assert!(notes.is_empty());
    }
}
