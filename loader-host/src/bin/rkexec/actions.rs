//! kexec-tools' action state machine (kexec/kexec.c main()): the options
//! are applied in argv order, each action flag overwriting what an earlier
//! one set, with the parse-time exits (-h, -v, --print-ckr-size, bad
//! numbers) taken where they occur in argv.

use std::ffi::OsString;

use loader_host::escape;

use crate::args::{c_number, SyscallChoice};
use crate::getopt::Scanned;

/// What to do, after every option was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actions {
    pub load: bool,
    pub exec: bool,
    pub shutdown: bool,
    pub sync: bool,
    pub ifdown: bool,
    pub unload: bool,
    pub status: bool,
    /// kexec_flags == KEXEC_ON_CRASH (-p; -S without -l).
    pub crash: bool,
    pub syscall: SyscallChoice,
    pub preserve_context: bool,
    pub jump_back_helper: bool,
    pub live_update: bool,
    pub reuse_initrd: bool,
    pub mem_min: Option<u64>,
    pub mem_max: Option<u64>,
}

/// A parse-time exit, in argv order (kexec/kexec.c main()'s first loop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Early {
    Help,
    Version,
    PrintCkrSize,
    Man,
    Completions,
    /// Message, then the usage text, exit 1.
    BadValue(String),
    /// Message only, exit 1.
    Die(String),
}

pub fn fold(sc: &Scanned) -> Result<Actions, Early> {
    let mut a = Actions {
        load: true,
        exec: false,
        shutdown: true,
        sync: true,
        ifdown: false,
        unload: false,
        status: false,
        crash: false,
        syscall: SyscallChoice::Auto,
        preserve_context: false,
        jump_back_helper: false,
        live_update: false,
        reuse_initrd: false,
        mem_min: None,
        mem_max: None,
    };
    let (mut has_opt_load, mut skip_sync, mut skip_ifdown) = (false, false, false);
    let num = |name: &str, v: &Option<OsString>| {
        let v = v.clone().unwrap_or_default();
        v.to_str()
            .and_then(c_number)
            .ok_or_else(|| Early::BadValue(format!("Bad option value in --{name}={}", escape::os(&v))))
    };
    for o in &sc.opts {
        match o.id.as_str() {
            "help" => return Err(Early::Help),
            "version" => return Err(Early::Version),
            "print_ckr_size" => return Err(Early::PrintCkrSize),
            "man" => return Err(Early::Man),
            "completions" => return Err(Early::Completions),
            "no_ifdown" => skip_ifdown = true,
            "no_sync" => skip_sync = true,
            "force" => (a.load, a.shutdown, a.sync, a.ifdown, a.exec) = (true, false, true, true, true),
            "load" => {
                has_opt_load = true;
                (a.load, a.exec, a.shutdown) = (true, false, false);
            }
            "unload" => (a.load, a.shutdown, a.sync, a.unload) = (false, false, false, true),
            "exec_live_update" => return Err(Early::Die("--exec-live-update only works under xen.".into())),
            "exec" => (a.load, a.shutdown, a.sync, a.ifdown, a.exec) = (false, false, true, true, true),
            "load_jump_back_helper" => {
                (a.load, a.shutdown, a.sync, a.ifdown, a.exec) = (false, false, true, true, false);
                a.jump_back_helper = true;
                (a.crash, a.preserve_context) = (false, true);
            }
            "entry" => {
                num("entry", &o.value)?;
            }
            "load_preserve_context" | "load_live_update" => {
                (a.load, a.exec, a.shutdown, a.sync) = (true, false, false, true);
                // kexec_flags = KEXEC_PRESERVE_CONTEXT or KEXEC_LIVE_UPDATE:
                // an assignment, so an earlier -p's KEXEC_ON_CRASH is gone.
                a.crash = false;
                a.preserve_context = o.id == "load_preserve_context";
                a.live_update = o.id == "load_live_update";
            }
            "load_panic" => {
                (a.load, a.exec, a.shutdown, a.sync) = (true, false, false, false);
                (a.crash, a.preserve_context, a.live_update) = (true, false, false);
            }
            "mem_min" => a.mem_min = Some(num("mem-min", &o.value)?),
            "mem_max" => a.mem_max = Some(num("mem-max", &o.value)?),
            "reuseinitrd" => a.reuse_initrd = true,
            "kexec_file_syscall" => a.syscall = SyscallChoice::File,
            "kexec_syscall" => a.syscall = SyscallChoice::Load,
            "kexec_syscall_auto" => a.syscall = SyscallChoice::Auto,
            "syscall" => {
                a.syscall = match o.value.as_deref().map(|v| v.to_str().ok_or(v)) {
                    Some(Ok("file")) => SyscallChoice::File,
                    Some(Ok("load")) => SyscallChoice::Load,
                    Some(Ok("auto")) => SyscallChoice::Auto,
                    other => {
                        let shown = match other {
                            Some(Ok(s)) => escape::text(s).to_string(),
                            Some(Err(v)) => escape::os(v).to_string(),
                            None => String::new(),
                        };
                        return Err(Early::BadValue(format!(
                            "Bad option value in --syscall={shown}: auto, load or file"
                        )));
                    }
                }
            }
            "status" => a.status = true,
            _ => {}
        }
    }
    if skip_ifdown {
        a.ifdown = false;
    }
    if skip_sync {
        a.sync = false;
    }
    if a.status {
        // "if (kexec_flags == 0 && !has_opt_load) kexec_flags = KEXEC_ON_CRASH".
        if !a.crash && !a.preserve_context && !a.live_update && !has_opt_load {
            a.crash = true;
        }
        (a.load, a.reuse_initrd, a.unload, a.shutdown, a.sync, a.ifdown, a.exec) =
            (false, false, false, false, false, false, false);
        a.jump_back_helper = false;
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::getopt::{scan, Table};

    fn act(words: &[&str]) -> Result<Actions, Early> {
        let argv: Vec<std::ffi::OsString> = words.iter().map(std::ffi::OsString::from).collect();
        fold(&scan(&Table::from_clap(), &argv, false).unwrap_or_else(|(_, e)| panic!("{e}")))
    }

    /// (load, exec, shutdown, sync, ifdown, unload, status, crash)
    fn flags(a: Actions) -> [bool; 8] {
        [a.load, a.exec, a.shutdown, a.sync, a.ifdown, a.unload, a.status, a.crash]
    }

    #[test]
    fn kexec_tools_state_machine() {
        // kexec K: load, then shutdown.
        assert_eq!(flags(act(&["K"]).unwrap()), [true, false, true, true, false, false, false, false]);
        assert_eq!(flags(act(&["-l", "K"]).unwrap()), [true, false, false, true, false, false, false, false]);
        assert_eq!(flags(act(&["-p", "K"]).unwrap()), [true, false, false, false, false, false, false, true]);
        assert_eq!(flags(act(&["-e"]).unwrap()), [false, true, false, true, true, false, false, false]);
        assert_eq!(flags(act(&["-e", "-x", "-y"]).unwrap()), [false, true, false, false, false, false, false, false]);
        // -f wins over an earlier -e (load needed), -e over an earlier -f.
        assert_eq!(flags(act(&["-e", "-f"]).unwrap()), [true, true, false, true, true, false, false, false]);
        assert_eq!(flags(act(&["-f", "-e"]).unwrap()), [false, true, false, true, true, false, false, false]);
        assert_eq!(flags(act(&["-p", "-u"]).unwrap()), [false, false, false, false, false, true, false, true]);
        // -u -p: -p re-enables the load after the unload.
        assert_eq!(flags(act(&["-u", "-p"]).unwrap()), [true, false, false, false, false, true, false, true]);
        assert_eq!(flags(act(&["-su"]).unwrap()), [false, false, false, false, false, true, false, false]);
    }

    #[test]
    fn status_selects_crash_unless_load_is_given() {
        assert!(act(&["-S"]).unwrap().crash);
        assert!(!act(&["-S", "-l"]).unwrap().crash);
        assert!(!act(&["-l", "-S"]).unwrap().crash);
        assert!(act(&["-p", "-S"]).unwrap().crash);
        assert!(act(&["-s", "-S"]).unwrap().crash);
        let a = act(&["-S", "-e", "K"]).unwrap();
        assert!(a.status && !a.load && !a.exec, "-S overrides everything");
    }

    #[test]
    fn syscall_choice_last_wins_and_parse_time_exits_in_order() {
        assert_eq!(act(&["-s", "-c"]).unwrap().syscall, SyscallChoice::Load);
        assert_eq!(act(&["-c", "--kexec-syscall-auto"]).unwrap().syscall, SyscallChoice::Auto);
        assert_eq!(act(&["-s", "-s"]).unwrap().syscall, SyscallChoice::File);
        assert_eq!(act(&["--help", "--mem-min=zz"]).unwrap_err(), Early::Help);
        assert_eq!(act(&["-hv"]).unwrap_err(), Early::Help);
        assert_eq!(act(&["-vh"]).unwrap_err(), Early::Version);
        assert_eq!(act(&["--mem-max=12k"]).unwrap_err(), Early::BadValue("Bad option value in --mem-max=12k".into()));
        assert_eq!(act(&["--mem-min", "-h"]).unwrap_err(), Early::BadValue("Bad option value in --mem-min=-h".into()));
        let a = act(&["--mem-min=0x1000000", "--mem-max", "01000"]).unwrap();
        assert_eq!((a.mem_min, a.mem_max), (Some(0x100_0000), Some(0o1000)));
    }
}
