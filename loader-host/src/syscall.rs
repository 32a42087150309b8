//! The kexec system calls, with hand-written ABI structures and per-arch
//! numbers (include/uapi/linux/kexec.h, arch syscall tables), and an errno
//! table that says what each failure means.
//!
//! Nothing here is called by `plan`/`--dry-run`; tests on the host never
//! reach `kexec_load`, `kexec_file_load` or `reboot`.

use std::ffi::CString;
use std::fmt;
use std::os::fd::AsRawFd;

use crate::plan::{LoadKind, Plan};
use crate::uapi::{KEXEC_FILE_NO_INITRAMFS, KEXEC_FILE_ON_CRASH, KEXEC_FILE_UNLOAD, KEXEC_ON_CRASH};

/// `struct kexec_segment` (include/uapi/linux/kexec.h).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct KexecSegment {
    /// The segment's bytes in this process.
    pub buf: *const libc::c_void,
    /// How many bytes of `buf` to copy.
    pub bufsz: libc::size_t,
    /// Physical destination, page aligned.
    pub mem: u64,
    /// Bytes of memory at `mem`, a page multiple; the kernel zero-fills
    /// past `bufsz`.
    pub memsz: libc::size_t,
}

/// reboot(2) magic numbers and LINUX_REBOOT_CMD_KEXEC.
const LINUX_REBOOT_MAGIC1: libc::c_int = 0xfee1_deadu32 as libc::c_int;
const LINUX_REBOOT_MAGIC2: libc::c_int = 672_274_793;
const LINUX_REBOOT_CMD_KEXEC: libc::c_int = 0x4558_4543;

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const KEXEC_LOAD: libc::c_long = 104;
    pub const KEXEC_FILE_LOAD: libc::c_long = 294;
}
#[cfg(target_arch = "x86_64")]
mod nr {
    pub const KEXEC_LOAD: libc::c_long = 246;
    pub const KEXEC_FILE_LOAD: libc::c_long = 320;
}
#[cfg(target_arch = "riscv64")]
mod nr {
    pub const KEXEC_LOAD: libc::c_long = 104;
    pub const KEXEC_FILE_LOAD: libc::c_long = 294;
}
// arch/powerpc/kernel/syscalls/syscall.tbl: 268 kexec_load, 382
// kexec_file_load.
#[cfg(target_arch = "powerpc64")]
mod nr {
    pub const KEXEC_LOAD: libc::c_long = 268;
    pub const KEXEC_FILE_LOAD: libc::c_long = 382;
}

/// `KEXEC_ARCH_*` for the machine we run on (0: KEXEC_ARCH_DEFAULT).
fn native_arch_flag() -> u64 {
    crate::arch::native().map_or(0, |a| a.kexec_arch_flag())
}

/// kexec_load's flags for `plan`: its architecture, KEXEC_ON_CRASH for a
/// crash kernel and the arch's crash-hotplug flag with --hotplug.
pub fn flags(plan: &Plan) -> u64 {
    let mut flags = plan.arch.kexec_arch_flag();
    if plan.kind == LoadKind::Crash {
        flags |= KEXEC_ON_CRASH;
        if let (true, Some(f)) = (plan.hotplug, plan.arch.hotplug_flag) {
            flags |= f.value;
        }
    }
    flags
}

/// kexec_load(2) of `plan`: the segment buffers are the plan's own bytes.
pub fn load(plan: &Plan) -> Result<(), SyscallError> {
    let segs: Vec<KexecSegment> = plan
        .segments
        .iter()
        .map(|s| KexecSegment {
            buf: s.data.as_ptr().cast(),
            bufsz: s.data.len(),
            mem: s.mem,
            memsz: s.memsz as libc::size_t,
        })
        .collect();
    kexec_load(plan.entry, &segs, flags(plan))
}

/// Which call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// kexec_load(2) of an image.
    KexecLoad,
    /// kexec_file_load(2) of an image.
    KexecFileLoad,
    /// kexec_load(2) with no segments: unload.
    Unload,
    /// kexec_file_load(2) with KEXEC_FILE_UNLOAD.
    FileUnload,
    /// reboot(2) with LINUX_REBOOT_CMD_KEXEC.
    Reboot,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::KexecLoad => "kexec_load",
            Call::KexecFileLoad => "kexec_file_load",
            Call::Unload => "kexec_load (unload)",
            Call::FileUnload => "kexec_file_load (unload)",
            Call::Reboot => "reboot(LINUX_REBOOT_CMD_KEXEC)",
        }
    }
}

/// A failed system call, with the errno and what it means for this call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallError {
    /// The call that failed.
    pub call: Call,
    /// Its errno.
    pub errno: i32,
    /// Extra context, e.g. which segment the kernel likely refused.
    pub context: Option<String>,
}

impl SyscallError {
    /// A sentence for `errno` from `call` (kernel/kexec.c, kexec_file.c,
    /// kexec_core.c return paths).
    pub fn meaning(&self) -> &'static str {
        use Call::*;
        match (self.call, self.errno) {
            (Reboot, libc::EINVAL) => "no kexec image is loaded (load one with -l first)",
            (KexecFileLoad, libc::EPERM) => {
                "not permitted: needs CAP_SYS_BOOT; under kernel lockdown or Secure Boot the kernel image must \
                 carry a signature the kernel trusts (KEXEC_SIG: builtin, secondary or platform keyring), \
                 and /proc/sys/kernel/kexec_load_disabled must be 0"
            }
            (_, libc::EPERM) => {
                "not permitted: needs CAP_SYS_BOOT, and is refused when /proc/sys/kernel/kexec_load_disabled is 1 \
                 or the kernel is locked down (lockdown= / Secure Boot; kexec_load is refused in lockdown, \
                 try kexec_file_load with -s)"
            }
            (KexecFileLoad, libc::EACCES) => {
                "refused by IMA appraisal or another security module: the kernel or initrd file lacks what the \
                 policy requires (e.g. a security.ima signature)"
            }
            (_, libc::EACCES) => {
                "refused by IMA or another security module: IMA cannot appraise an image that comes without a \
                 file (security/integrity/ima/ima_main.c ima_load_data: an appraise rule for KEXEC_KERNEL_CHECK, \
                 or KEXEC_SIG under Secure Boot); kexec_file_load (-s) passes the file"
            }
            (_, libc::ENOSYS) => "this kernel was built without this system call (CONFIG_KEXEC / CONFIG_KEXEC_FILE)",
            (_, libc::EBUSY) => "another kexec load or unload is in progress, or a crash kernel is being used",
            (_, libc::EADDRNOTAVAIL) => {
                "a segment's destination is not usable memory (for -p: outside the crashkernel= reservation)"
            }
            (KexecFileLoad, libc::ENOEXEC) => "the kernel refused the image format (or its signature, with KEXEC_SIG)",
            (KexecFileLoad, libc::EKEYREJECTED) => "the kernel image signature was rejected",
            (KexecFileLoad, libc::EINVAL) => {
                "the kernel refused the image or its arguments: flags it does not know, a command line its \
                 loader refuses, an empty initrd, segments over half of RAM or outside the crash \
                 reservation (kernel/kexec_file.c, kexec_core.c sanity_check_segment_list); the call \
                 exists, so kexec_load would not do better with the same image"
            }
            (_, libc::EINVAL) => {
                "invalid argument: unknown flags for this kernel, a segment not page aligned, overlapping, \
                 too large, or more than 16 segments"
            }
            (_, libc::ENOMEM) => "the kernel could not allocate memory for the image",
            (_, libc::EFAULT) => "the kernel could not read a segment buffer (loader bug)",
            (_, libc::EOVERFLOW) => "the command line or a segment is too large",
            _ => "unexpected error",
        }
    }
}

impl fmt::Display for SyscallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let err = std::io::Error::from_raw_os_error(self.errno);
        write!(f, "{} failed: {err}: {}", self.call.name(), self.meaning())?;
        if let Some(c) = &self.context {
            write!(f, " ({c})")?;
        }
        Ok(())
    }
}

impl std::error::Error for SyscallError {}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// kexec_load(2). `segments` point into buffers that must outlive the call.
pub fn kexec_load(entry: u64, segments: &[KexecSegment], flags: u64) -> Result<(), SyscallError> {
    // SAFETY: the kernel reads `segments.len()` descriptors and each
    // descriptor's buffer; all are live for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            nr::KEXEC_LOAD,
            entry as libc::c_ulong,
            segments.len() as libc::c_ulong,
            segments.as_ptr(),
            flags as libc::c_ulong,
        )
    };
    if rc != 0 {
        return Err(SyscallError { call: Call::KexecLoad, errno: last_errno(), context: None });
    }
    Ok(())
}

/// Unload the normal (or, with `crash`, the crash) image: kexec_load with
/// no segments.
pub fn kexec_unload(crash: bool) -> Result<(), SyscallError> {
    let flags = native_arch_flag() | if crash { KEXEC_ON_CRASH } else { 0 };
    // SAFETY: zero segments, null pointer: the documented unload call.
    let rc = unsafe {
        libc::syscall(
            nr::KEXEC_LOAD,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            std::ptr::null::<KexecSegment>(),
            flags as libc::c_ulong,
        )
    };
    if rc != 0 {
        return Err(SyscallError { call: Call::Unload, errno: last_errno(), context: None });
    }
    Ok(())
}

/// kexec_file_load(2): the kernel parses, places and (with KEXEC_SIG)
/// verifies the image itself.
pub fn kexec_file_load(
    kernel: &std::fs::File,
    initrd: Option<&std::fs::File>,
    cmdline: &[u8],
    flags: u64,
) -> Result<(), SyscallError> {
    let cmd = CString::new(cmdline).map_err(|_| SyscallError {
        call: Call::KexecFileLoad,
        errno: libc::EINVAL,
        context: Some("command line contains a NUL byte".into()),
    })?;
    let bytes = cmd.as_bytes_with_nul();
    let (initrd_fd, flags) = match initrd {
        Some(f) => (f.as_raw_fd(), flags),
        None => (-1, flags | KEXEC_FILE_NO_INITRAMFS),
    };
    // SAFETY: fds are open for the call; the command line buffer includes
    // its NUL and its length counts it, as the syscall requires.
    let rc = unsafe {
        libc::syscall(
            nr::KEXEC_FILE_LOAD,
            kernel.as_raw_fd() as libc::c_long,
            initrd_fd as libc::c_long,
            bytes.len() as libc::c_ulong,
            bytes.as_ptr(),
            flags as libc::c_ulong,
        )
    };
    if rc != 0 {
        return Err(SyscallError { call: Call::KexecFileLoad, errno: last_errno(), context: None });
    }
    Ok(())
}

/// A memfd holding `data`, positioned at its start: what kexec_file_load
/// gets for a kernel or initrd that is not a file as it is (a UKI's
/// sections, a decompressed Image, concatenated initrds), as kexec-tools'
/// copybuf_memfd does.
pub fn memfd(name: &str, data: &[u8]) -> std::io::Result<std::fs::File> {
    use std::io::{Seek, SeekFrom, Write};
    use std::os::fd::FromRawFd;
    let cname = CString::new(name).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns
    // a new descriptor we own, or -1.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    f.write_all(data)?;
    f.seek(SeekFrom::Start(0))?;
    Ok(f)
}

/// kexec_file_load unload.
pub fn kexec_file_unload(crash: bool) -> Result<(), SyscallError> {
    let flags = KEXEC_FILE_UNLOAD | if crash { KEXEC_FILE_ON_CRASH } else { 0 };
    // SAFETY: unload ignores the fds and command line.
    let rc = unsafe {
        libc::syscall(
            nr::KEXEC_FILE_LOAD,
            -1 as libc::c_long,
            -1 as libc::c_long,
            0 as libc::c_ulong,
            std::ptr::null::<u8>(),
            flags as libc::c_ulong,
        )
    };
    if rc != 0 {
        return Err(SyscallError { call: Call::FileUnload, errno: last_errno(), context: None });
    }
    Ok(())
}

/// Boot the loaded image now: sync file systems, then
/// reboot(LINUX_REBOOT_CMD_KEXEC). Returns only on failure.
pub fn kexec_reboot() -> SyscallError {
    // SAFETY: sync has no preconditions; reboot with the kexec command
    // either does not return or fails with errno.
    unsafe {
        libc::sync();
        libc::syscall(
            libc::SYS_reboot,
            LINUX_REBOOT_MAGIC1,
            LINUX_REBOOT_MAGIC2,
            LINUX_REBOOT_CMD_KEXEC,
            std::ptr::null::<u8>(),
        );
    }
    SyscallError { call: Call::Reboot, errno: last_errno(), context: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kexec_segment_matches_uapi_layout() {
        assert_eq!(std::mem::size_of::<KexecSegment>(), 32);
        assert_eq!(std::mem::offset_of!(KexecSegment, mem), 16);
    }

    #[test]
    fn errno_sentences_name_the_cause() {
        let e = SyscallError { call: Call::KexecLoad, errno: libc::EPERM, context: None };
        assert!(e.to_string().contains("CAP_SYS_BOOT"));
        assert!(e.to_string().contains("kexec_load_disabled"));
        assert!(e.to_string().contains("locked down"));
        let e = SyscallError { call: Call::KexecLoad, errno: libc::EINVAL, context: Some("segment 2 (initrd)".into()) };
        assert!(e.to_string().ends_with("(segment 2 (initrd))"));
        let e = SyscallError { call: Call::Reboot, errno: libc::EINVAL, context: None };
        assert!(e.to_string().contains("no kexec image is loaded"));
        let e = SyscallError { call: Call::KexecFileLoad, errno: libc::EPERM, context: None };
        assert!(e.to_string().contains("signature the kernel trusts"), "{e}");
        let e = SyscallError { call: Call::KexecLoad, errno: libc::EACCES, context: None };
        assert!(e.to_string().contains("ima_load_data") && e.to_string().contains("kexec_file_load (-s)"), "{e}");
        let e = SyscallError { call: Call::KexecFileLoad, errno: libc::EACCES, context: None };
        assert!(e.to_string().contains("IMA appraisal"), "{e}");
    }
}
