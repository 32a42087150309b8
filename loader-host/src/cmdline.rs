//! The new kernel's command line from the caller's choice and the running
//! system, the same way on every architecture (kexec-tools' get_command_line
//! and --reuse-cmdline: kexec/kexec.c).

use crate::request::CmdlineChoice;

/// Drop `name=...` tokens.
pub fn strip_param(cmdline: &str, name: &str) -> String {
    let prefix = format!("{name}=");
    cmdline.split_whitespace().filter(|t| !t.starts_with(&prefix)).collect::<Vec<_>>().join(" ")
}

/// The running command line as a new kernel should inherit it: without
/// BOOT_IMAGE= (the boot loader's, not ours) and, for a capture kernel,
/// without crashkernel= (it must not reserve crash memory again).
pub fn inherited(running: &str, crash: bool) -> String {
    let c = strip_param(running, "BOOT_IMAGE");
    if crash {
        strip_param(&c, "crashkernel")
    } else {
        c
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
        CmdlineChoice::Keep => keep()?.map(|k| if crash { strip_param(&k, "crashkernel") } else { k }),
        CmdlineChoice::Set(s) => Some(s.clone()),
        CmdlineChoice::Reuse(extra) => {
            let base = inherited(&running()?, crash);
            Some(
                [base.as_str(), extra.as_str()].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(" "),
            )
        }
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
}
