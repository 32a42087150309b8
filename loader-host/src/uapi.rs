//! The kexec ABI's flag values (include/uapi/linux/kexec.h), shared by
//! the architecture descriptions and the system calls.

/// kexec_load flag (include/uapi/linux/kexec.h): load the crash (kdump)
/// image, run when the kernel panics.
pub const KEXEC_ON_CRASH: u64 = 0x0000_0001;
/// kexec_load flag: preserve the system's context across the jump, for a
/// kexec jump back (CONFIG_KEXEC_JUMP). rkexec never sets it.
pub const KEXEC_PRESERVE_CONTEXT: u64 = 0x0000_0002;
/// x86 only, kernels 6.5+: the kernel may rewrite the elfcorehdr
/// (`ArchSpec::hotplug_flag`).
pub const KEXEC_UPDATE_ELFCOREHDR: u64 = 0x0000_0004;
/// Generic (6.10+): the kernel may update the crash image on hotplug.
pub const KEXEC_CRASH_HOTPLUG_SUPPORT: u64 = 0x0000_0008;
/// kexec_file_load flag (include/uapi/linux/kexec.h): unload the image.
pub const KEXEC_FILE_UNLOAD: u64 = 0x0000_0001;
/// kexec_file_load flag: load the crash (kdump) image.
pub const KEXEC_FILE_ON_CRASH: u64 = 0x0000_0002;
/// kexec_file_load flag: no initrd (the initrd fd is ignored).
pub const KEXEC_FILE_NO_INITRAMFS: u64 = 0x0000_0004;
/// Linux 6.7+: the kernel prints how it placed the image (kexec-tools
/// >= 2.0.29 passes it with -d).
pub const KEXEC_FILE_DEBUG: u64 = 0x0000_0008;
/// Linux 6.17+: do not place the segments in CMA (kexec-tools --no-cma).
pub const KEXEC_FILE_NO_CMA: u64 = 0x0000_0010;
/// x86, Linux 6.17+: carry the running DTB over (kexec-tools --force-dtb).
pub const KEXEC_FILE_FORCE_DTB: u64 = 0x0000_0020;
