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

/// Resolve `choice`. `running` reads /proc/cmdline when needed; `keep` is
/// what the architecture keeps without --append (None: nothing to set).
pub fn resolve<E>(
    choice: &CmdlineChoice,
    running: impl FnOnce() -> Result<String, E>,
    keep: impl FnOnce() -> Result<Option<String>, E>,
    crash: bool,
) -> Result<Option<String>, E> {
    Ok(match choice {
        CmdlineChoice::Keep => {
            keep()?.map(|k| if crash { remove_parameter(&k, "crashkernel") } else { k }.trim_end().to_string())
        }
        CmdlineChoice::Set(s) => Some(s.clone()),
        CmdlineChoice::Reuse(extra) => Some(concat(&inherited(&running()?, crash), extra)),
    })
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
}
