//! Everything the command does to the machine: the kexec system calls,
//! sync, bringing interfaces down, reboot, exec'ing shutdown, reading the
//! loaded state. `Real` does them; `Simulated` (--dry-run, and the hidden
//! test seam RKEXEC_TEST_NO_SYSCALLS=1 that the CLI tests set) prints the
//! action it would take on stderr ("rkexec: would ...") and keeps the
//! loaded state in memory, so kexec-tools' state machine is tested without
//! a single privileged call.

use std::os::unix::process::CommandExt;

use loader_host::file_load::{FileInput, FilePlan};
use loader_host::plan::Plan;
use loader_host::syscall::{self, SyscallError};
use loader_host::system::{read_text, SystemSources};

/// The hidden test seam: set to 1, no system call that changes the
/// machine is made (nor is shutdown exec'd); each is printed instead.
pub const SEAM_ENV: &str = "RKEXEC_TEST_NO_SYSCALLS";

/// With the seam (or --dry-run): the errno a simulated kexec_file_load
/// fails with, so that what the command makes of the kernel's answer is
/// tested without the call.
pub const FILE_LOAD_ERRNO_ENV: &str = "RKEXEC_TEST_FILE_LOAD_ERRNO";

/// kexec-tools' my_shutdown (kexec/kexec.c): these, in order, with argv
/// "shutdown -r now".
pub const SHUTDOWN_PATHS: [&str; 3] = ["/sbin/shutdown", "/etc/shutdown", "/bin/shutdown"];

pub trait Ops {
    fn kexec_load(&mut self, plan: &Plan) -> Result<(), SyscallError>;
    /// Opens the inputs (or fills memfds) and calls kexec_file_load; the
    /// error's errno is 0 when no system call failed.
    fn kexec_file_load(&mut self, plan: &FilePlan) -> Result<(), (String, i32)>;
    /// Unload with kexec_load (`via_file` false) or kexec_file_load.
    fn unload(&mut self, crash: bool, via_file: bool) -> Result<(), SyscallError>;
    fn sync(&mut self);
    fn ifdown(&mut self);
    /// reboot(LINUX_REBOOT_CMD_KEXEC); returns only if it failed (Some)
    /// or was simulated (None).
    fn reboot_kexec(&mut self) -> Option<SyscallError>;
    /// exec shutdown -r now; returns only if every exec failed (Some) or it
    /// was simulated (None).
    fn shutdown(&mut self) -> Option<String>;
    /// kexec-tools' kexec_loaded(): the number in /sys/kernel/kexec_loaded
    /// (kexec_crash_loaded), None when it cannot be read.
    fn loaded(&self, crash: bool) -> Option<i64>;
}

/// The sysfs file's number, as kexec-tools reads it (strtol of the first
/// two characters).
pub fn read_loaded(src: &SystemSources, crash: bool) -> Option<i64> {
    let file = if crash { "kernel/kexec_crash_loaded" } else { "kernel/kexec_loaded" };
    let text = read_text(&src.sys_root.join(file)).ok()?;
    let head: String = text.chars().take(2).collect();
    let digits: String = head.trim_start().chars().take_while(|c| c.is_ascii_digit() || *c == '-').collect();
    digits.parse().ok()
}

pub struct Real {
    pub src: SystemSources,
}

fn open_input(what: &str, input: &FileInput) -> Result<std::fs::File, String> {
    match input {
        // Checked again on the descriptor the kernel gets.
        FileInput::File(p) => loader_host::input::open_regular(p).map(|(f, _)| f).map_err(|e| e.to_string()),
        FileInput::Memory { data, source } => {
            syscall::memfd(what, data).map_err(|e| format!("{source}: memfd_create/write failed: {e}"))
        }
    }
}

impl Ops for Real {
    fn kexec_load(&mut self, plan: &Plan) -> Result<(), SyscallError> {
        syscall::load(plan)
    }
    fn kexec_file_load(&mut self, plan: &FilePlan) -> Result<(), (String, i32)> {
        let kernel = open_input("rkexec-kernel", &plan.kernel).map_err(|m| (m, 0))?;
        let initrd = plan.initrd.as_ref().map(|i| open_input("rkexec-initrd", i)).transpose().map_err(|m| (m, 0))?;
        syscall::kexec_file_load(&kernel, initrd.as_ref(), &plan.cmdline, plan.flags)
            .map_err(|e| (e.to_string(), e.errno))
    }
    fn unload(&mut self, crash: bool, via_file: bool) -> Result<(), SyscallError> {
        if via_file {
            syscall::kexec_file_unload(crash)
        } else {
            syscall::kexec_unload(crash)
        }
    }
    fn sync(&mut self) {
        // SAFETY: sync(2) has no preconditions.
        unsafe { libc::sync() };
    }
    fn ifdown(&mut self) {
        ifdown_all();
    }
    fn reboot_kexec(&mut self) -> Option<SyscallError> {
        Some(syscall::kexec_reboot())
    }
    fn shutdown(&mut self) -> Option<String> {
        let mut last = String::new();
        for path in SHUTDOWN_PATHS {
            // exec replaces this process; it returns only on failure.
            let err = std::process::Command::new(path).arg0("shutdown").args(["-r", "now"]).exec();
            last = format!("{path}: {err}");
        }
        Some(last)
    }
    fn loaded(&self, crash: bool) -> Option<i64> {
        read_loaded(&self.src, crash)
    }
}

/// kexec-tools' ifdown (kexec/ifdown.c): every interface but the loopback
/// and alias names ("eth0:1") is brought down (IFF_UP cleared), so that no
/// NIC keeps DMAing into memory the new kernel owns. Errors are reported
/// and ignored, as there.
fn ifdown_all() {
    // SAFETY: if_nameindex returns an array terminated by a zero entry (or
    // NULL), freed with if_freenameindex; each name is a C string.
    let names: Vec<String> = unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            eprintln!("rkexec: ifdown: if_nameindex: {}", std::io::Error::last_os_error());
            return;
        }
        let mut v = Vec::new();
        let mut p = list;
        while (*p).if_index != 0 && !(*p).if_name.is_null() {
            v.push(std::ffi::CStr::from_ptr((*p).if_name).to_string_lossy().into_owned());
            p = p.add(1);
        }
        libc::if_freenameindex(list);
        v
    };
    // SAFETY: a datagram socket only used for interface ioctls.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        eprintln!("rkexec: ifdown: socket: {}", std::io::Error::last_os_error());
        return;
    }
    for name in names.iter().filter(|n| n.as_str() != "lo" && !n.contains(':')) {
        // SAFETY: ifreq is plain data; the name is copied with a NUL
        // terminator inside IFNAMSIZ; SIOCGIFFLAGS/SIOCSIFFLAGS read and
        // write ifr_flags of that struct only.
        unsafe {
            let mut req: libc::ifreq = std::mem::zeroed();
            for (d, s) in req.ifr_name.iter_mut().zip(name.bytes().take(libc::IFNAMSIZ - 1)) {
                *d = s as libc::c_char;
            }
            if libc::ioctl(sock, libc::SIOCGIFFLAGS as _, &mut req) < 0 {
                eprintln!("rkexec: ifdown: {name}: SIOCGIFFLAGS: {}", std::io::Error::last_os_error());
                continue;
            }
            if req.ifr_ifru.ifru_flags & libc::IFF_UP as libc::c_short == 0 {
                continue;
            }
            req.ifr_ifru.ifru_flags &= !(libc::IFF_UP as libc::c_short);
            if libc::ioctl(sock, libc::SIOCSIFFLAGS as _, &req) < 0 {
                eprintln!("rkexec: ifdown: {name}: SIOCSIFFLAGS: {}", std::io::Error::last_os_error());
            }
        }
    }
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(sock) };
}

/// Test seam: the simulated kexec_load, and its unload, fail with this
/// errno (EACCES, EPERM, ENOSYS or a number), as on a kernel whose policy
/// refuses kexec_load: kernel/kexec.c kexec_load_check runs for both, and
/// IMA's ima_load_data returns EACCES there.
pub const REFUSE_KEXEC_LOAD_ENV: &str = "RKEXEC_TEST_REFUSE_KEXEC_LOAD";
/// Test seam: the kexec_file_load flags the simulated kernel knows (e.g.
/// 0x7, Linux before 6.7): any other is EINVAL, as kernel/kexec_file.c
/// checks them against KEXEC_FILE_FLAGS.
pub const FILE_FLAGS_ENV: &str = "RKEXEC_TEST_KEXEC_FILE_FLAGS";
/// Test seam: the simulated kexec_load writes each segment's bytes to
/// `<dir>/<index>-<kind>`, so tests can read what the kernel would get
/// (the command line inside boot_params or /chosen/bootargs).
pub const SEGMENTS_DIR_ENV: &str = "RKEXEC_TEST_SEGMENTS_DIR";

fn errno_of(name: &str) -> Option<i32> {
    Some(match name {
        "EACCES" => libc::EACCES,
        "EPERM" => libc::EPERM,
        "ENOSYS" => libc::ENOSYS,
        "EINVAL" => libc::EINVAL,
        n => n.parse().ok()?,
    })
}

/// Prints each action; remembers loads and unloads.
pub struct Simulated {
    pub src: SystemSources,
    /// Set by a simulated load (Some(1)) or unload (Some(0)).
    normal: Option<i64>,
    crash: Option<i64>,
    /// REFUSE_KEXEC_LOAD_ENV's errno.
    refuse_kexec_load: Option<i32>,
    /// FILE_FLAGS_ENV's mask.
    file_flags: Option<u64>,
}

impl Simulated {
    pub fn new(src: SystemSources) -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|_| seam_on());
        Simulated {
            src,
            normal: None,
            crash: None,
            refuse_kexec_load: env(REFUSE_KEXEC_LOAD_ENV).and_then(|v| errno_of(&v)),
            file_flags: env(FILE_FLAGS_ENV).and_then(|v| crate::args::c_number(&v)),
        }
    }

    /// The simulated kernel's answer to kexec_load (or its unload).
    fn kexec_load_refusal(&self, call: syscall::Call) -> Result<(), SyscallError> {
        match self.refuse_kexec_load {
            Some(errno) => {
                let e = SyscallError { call, errno, context: None };
                would(&format!("be refused: {e}"));
                Err(e)
            }
            None => Ok(()),
        }
    }

    fn set(&mut self, crash: bool, v: i64) {
        if crash {
            self.crash = Some(v);
        } else {
            self.normal = Some(v);
        }
    }
}

fn would(what: &str) {
    eprintln!("rkexec: would {what}");
}

fn input_word(i: &FileInput) -> String {
    match i {
        FileInput::File(p) => loader_host::escape::path(p).to_string(),
        FileInput::Memory { data, source } => format!("memfd[{} bytes: {source}]", data.len()),
    }
}

impl Ops for Simulated {
    fn kexec_load(&mut self, plan: &Plan) -> Result<(), SyscallError> {
        would(&format!(
            "kexec_load: {} segments, entry {:#x}, flags {:#x}",
            plan.segments.len(),
            plan.entry,
            syscall::flags(plan)
        ));
        self.kexec_load_refusal(syscall::Call::KexecLoad)?;
        if let Some(dir) = std::env::var_os(SEGMENTS_DIR_ENV).filter(|_| seam_on()) {
            let dir = std::path::PathBuf::from(dir);
            for (i, s) in plan.segments.iter().enumerate() {
                let path = dir.join(format!("{i}-{}", s.kind_name()));
                if let Err(e) = std::fs::write(&path, &s.data[..]) {
                    eprintln!("rkexec: {}: {e}", loader_host::escape::path(&path));
                }
            }
        }
        self.set(plan.kind == loader_host::plan::LoadKind::Crash, 1);
        Ok(())
    }
    fn kexec_file_load(&mut self, plan: &FilePlan) -> Result<(), (String, i32)> {
        // Open the files as the real call would, so a missing one fails here too.
        for i in std::iter::once(&plan.kernel).chain(plan.initrd.as_ref()) {
            if let FileInput::File(p) = i {
                loader_host::input::open_regular(p).map_err(|e| (e.to_string(), 0))?;
            }
        }
        if let Some(errno) = std::env::var(FILE_LOAD_ERRNO_ENV).ok().and_then(|v| v.parse::<i32>().ok()) {
            let e = SyscallError { call: syscall::Call::KexecFileLoad, errno, context: None };
            return Err((e.to_string(), errno));
        }
        would(&format!(
            "kexec_file_load: kernel {}, initrd {}, cmdline {:?} ({} bytes with the NUL), flags {:#x}",
            input_word(&plan.kernel),
            plan.initrd.as_ref().map_or("none".into(), input_word),
            loader_host::escape::bytes(&plan.cmdline),
            plan.cmdline.len() + 1,
            plan.flags
        ));
        if let Some(known) = self.file_flags.filter(|k| plan.flags & !k != 0) {
            let e = SyscallError { call: syscall::Call::KexecFileLoad, errno: libc::EINVAL, context: None };
            would(&format!("be refused: {e} (flags {:#x} outside {known:#x})", plan.flags));
            return Err((e.to_string(), e.errno));
        }
        self.set(plan.kind == loader_host::plan::LoadKind::Crash, 1);
        Ok(())
    }
    fn unload(&mut self, crash: bool, via_file: bool) -> Result<(), SyscallError> {
        let call = if via_file { "kexec_file_load(KEXEC_FILE_UNLOAD)" } else { "kexec_load(unload)" };
        would(&format!("unload the {} kernel with {call}", if crash { "crash" } else { "kexec" }));
        if !via_file {
            self.kexec_load_refusal(syscall::Call::Unload)?;
        }
        self.set(crash, 0);
        Ok(())
    }
    fn sync(&mut self) {
        would("sync file systems");
    }
    fn ifdown(&mut self) {
        would("bring network interfaces down");
    }
    fn reboot_kexec(&mut self) -> Option<SyscallError> {
        would("reboot(LINUX_REBOOT_CMD_KEXEC)");
        None
    }
    fn shutdown(&mut self) -> Option<String> {
        would(&format!("exec {} -r now", SHUTDOWN_PATHS[0]));
        None
    }
    fn loaded(&self, crash: bool) -> Option<i64> {
        let mem = if crash { self.crash } else { self.normal };
        mem.or_else(|| read_loaded(&self.src, crash))
    }
}

/// Whether the test seam is on.
pub fn seam_on() -> bool {
    std::env::var_os(SEAM_ENV).is_some_and(|v| v == "1")
}
