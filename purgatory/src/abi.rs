//! The purgatory's public ABI: the image header and the versioned parameter
//! block. This is the ONE definition shared by the purgatory and every loader
//! written in Rust; `include/kexec_purgatory.h` mirrors it for C loaders and
//! `docs/abi.md` is the prose contract. All fields are little-endian.
//!
//! Compatibility rules (docs/abi.md, "Versioning"):
//! - `ABI_VERSION` changes only when the header layout changes.
//! - `PARAMS_VERSION` changes when a field is added to `PurgatoryParams`;
//!   fields are only ever appended and `size` tells the purgatory how many
//!   bytes the loader filled, so an older loader keeps working.

/// Magic at `ImageHeader::magic`.
pub const IMAGE_MAGIC: [u8; 8] = *b"RKXPURG\0";
/// Version of the image-header layout.
pub const ABI_VERSION: u32 = 1;
/// Offset of [`ImageHeader`] from the start of the flat image.
pub const HEADER_OFFSET: usize = 0;

/// `ImageHeader::arch` values.
pub const ARCH_AARCH64: u32 = 1;
pub const ARCH_X86_64: u32 = 2;
pub const ARCH_RISCV64: u32 = 3;
pub const ARCH_PPC64LE: u32 = 4;

/// ppc64le: the entry point is a 256-byte block (at `entry_offset`, 256-byte
/// aligned) that the kernel's `kexec_sequence` copies to physical 0 before
/// it releases the other CPUs to 0x60 there (arch/powerpc/kernel/misc_64.S).
/// Word 0 is the purgatory's branch to its code; the bytes from
/// [`PPC64LE_ENTRY_FILL_START`] to [`PPC64LE_ENTRY_BLOCK_SIZE`] are the
/// loader's to fill with the new kernel's own bytes at those offsets (its
/// `__secondary_hold` at 0x60, which holds the other CPUs; its
/// `__run_at_load` word at 0x5c), as kexec-tools does (docs/abi.md).
pub const PPC64LE_ENTRY_BLOCK_SIZE: u64 = 0x100;
/// First byte of the entry block the loader fills (word 0 is ours).
pub const PPC64LE_ENTRY_FILL_START: u64 = 4;
/// Offset of the kernel's `__run_at_load` word in its first 256 bytes
/// (arch/powerpc/kernel/head_64.S): the purgatory copies the entry block's
/// word at this offset to `kernel_entry` + this offset after verification.
pub const PPC64LE_RUN_AT_LOAD_OFFSET: u64 = 0x5c;

/// `ImageHeader::flags`: the image applies its own `R_*_RELATIVE`
/// relocations at entry, so it may be copied to any 4 KiB-aligned address.
pub const IMAGE_FLAG_POSITION_INDEPENDENT: u32 = 1 << 0;

/// Required alignment of the image's load address.
pub const IMAGE_LOAD_ALIGN: u64 = 4096;

/// Header at offset 0 of the flat image (and of the ELF's first loadable
/// byte). The first two words are code: a branch to the entry point, so that
/// jumping to offset 0 also works.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    pub code0: u32,
    pub code1: u32,
    pub magic: [u8; 8],
    pub abi_version: u32,
    pub header_size: u32,
    pub arch: u32,
    pub flags: u32,
    /// Bytes in the flat image file.
    pub image_size: u64,
    /// Bytes of memory the image needs from its load address (file bytes,
    /// then zero-filled bss and stack). A loader's segment memsz must be at
    /// least this.
    pub mem_size: u64,
    /// Entry point, from the load address.
    pub entry_offset: u64,
    /// `PurgatoryParams`, from the load address.
    pub params_offset: u64,
    /// Bytes reserved for the parameter block in the image.
    pub params_size: u64,
    pub reserved: [u64; 3],
}

/// Magic at `PurgatoryParams::magic` ("RKXP").
pub const PARAMS_MAGIC: u32 = u32::from_le_bytes(*b"RKXP");
/// Version of the parameter block layout.
pub const PARAMS_VERSION: u32 = 1;
/// Maximum number of segment descriptors.
pub const MAX_SEGMENTS: usize = 16;

/// `PurgatoryParams::flags`.
/// Refresh `/chosen/kaslr-seed` and `/chosen/rng-seed` in the DTB.
pub const PARAM_FLAG_REFRESH_SEEDS: u32 = 1 << 0;
/// Set the FDT header's `boot_cpuid_phys` to the executing CPU.
pub const PARAM_FLAG_SET_BOOT_CPU: u32 = 1 << 1;
/// Do not hash (kexec-tools' `-i`): segments are still bounds-checked and
/// excluded ones structure-checked, and the summary says so.
pub const PARAM_FLAG_SKIP_DIGESTS: u32 = 1 << 2;
/// Debug: never use SHA-256 instructions (exercise the portable path).
pub const PARAM_FLAG_DEBUG_SOFT_SHA256: u32 = 1 << 16;
/// Debug: hash with MMU and caches off, as kexec-tools' purgatory does.
pub const PARAM_FLAG_DEBUG_CACHES_OFF: u32 = 1 << 17;
/// Flags this purgatory understands; others are refused.
pub const PARAM_FLAGS_KNOWN: u32 = PARAM_FLAG_REFRESH_SEEDS
    | PARAM_FLAG_SET_BOOT_CPU
    | PARAM_FLAG_SKIP_DIGESTS
    | PARAM_FLAG_DEBUG_SOFT_SHA256
    | PARAM_FLAG_DEBUG_CACHES_OFF;

/// `SegmentDesc::flags`: the kernel may rewrite this segment after load
/// (crash hotplug), so it is structure-checked instead of hashed.
pub const SEGMENT_FLAG_EXCLUDED: u32 = 1 << 0;

/// `SegmentDesc::kind` values.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentKind {
    Other = 0,
    Kernel = 1,
    Initrd = 2,
    Dtb = 3,
    ElfCoreHdr = 4,
    /// x86 boot_params / setup data.
    BootParams = 5,
    /// kdump on ppc64le: after every segment is verified, the purgatory
    /// copies physical memory `[0, len)` into this segment (the low memory
    /// the capture kernel overwrites with its exception vectors; kexec-tools'
    /// purgatory/arch/ppc64/crashdump_backup.c). Hashed as the loader wrote
    /// it (zeros). Only where the architecture's rules allow one.
    Backup = 6,
}

impl SegmentKind {
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::Other,
            1 => Self::Kernel,
            2 => Self::Initrd,
            3 => Self::Dtb,
            4 => Self::ElfCoreHdr,
            5 => Self::BootParams,
            6 => Self::Backup,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        // In discriminant order (a table without relocations).
        purgatory_arch::str_table!(static NAMES = ["other", "kernel", "initrd", "dtb", "elfcorehdr", "boot-params", "backup"]);
        NAMES.get(self as usize)
    }
}

/// One loaded segment the purgatory checks before entering the kernel.
/// `len` has memsz semantics: bytes past the file data are zeros that were
/// part of the digest the loader computed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentDesc {
    pub mem: u64,
    pub len: u64,
    pub sha256: [u8; 32],
    pub kind: u32,
    pub flags: u32,
}

impl SegmentDesc {
    pub const EMPTY: Self = Self { mem: 0, len: 0, sha256: [0; 32], kind: 0, flags: 0 };

    pub fn is_excluded(&self) -> bool {
        self.flags & SEGMENT_FLAG_EXCLUDED != 0
    }
}

/// `ConsoleDesc::kind` values.
pub const CONSOLE_NONE: u32 = 0;
/// ARM PL011 UART, MMIO.
pub const CONSOLE_PL011: u32 = 1;
/// 16550/8250 UART, MMIO with 32-bit registers (reg-shift 2).
pub const CONSOLE_8250_MMIO32: u32 = 2;
/// 16550/8250 UART at an x86 I/O port.
pub const CONSOLE_8250_IO: u32 = 3;
/// 16550/8250 UART, MMIO with 8-bit registers at consecutive addresses
/// (reg-shift 0, reg-io-width 1: the 8250 binding's defaults; QEMU riscv
/// virt's uart0).
pub const CONSOLE_8250_MMIO8: u32 = 4;
/// riscv64: the SBI console (DBCN when the SBI has it, else the legacy
/// putchar). `base` is ignored.
pub const CONSOLE_SBI: u32 = 5;
/// ppc64le under a PAPR hypervisor (pseries): the virtual terminal written
/// with the H_PUT_TERM_CHAR hypercall. `base` is the vterm number, the
/// `reg` of the `/vdevice/vty@…` node (`hvterm1`) stdout-path names
/// (0x71000000 on QEMU). Not memory: no console page.
pub const CONSOLE_HVTERM: u32 = 6;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsoleDesc {
    pub kind: u32,
    pub reserved: u32,
    /// MMIO physical base address, I/O port, or (hvterm) vterm number.
    pub base: u64,
}

/// `PurgatoryParams::on_failure` values.
pub const ON_FAILURE_HALT: u32 = 0;
pub const ON_FAILURE_RESET: u32 = 1;

/// `PurgatoryParams::psci_conduit` values (aarch64 `/psci/method`).
pub const PSCI_CONDUIT_NONE: u32 = 0;
pub const PSCI_CONDUIT_HVC: u32 = 1;
pub const PSCI_CONDUIT_SMC: u32 = 2;

/// The parameter block, at `ImageHeader::params_offset`. The loader writes
/// it into its copy of the image before loading.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PurgatoryParams {
    pub magic: u32,
    pub version: u32,
    /// `size_of::<PurgatoryParams>()` as the loader knew it.
    pub size: u32,
    pub flags: u32,
    /// Physical address the purgatory jumps to after verification.
    pub kernel_entry: u64,
    /// Physical address of the boot data the kernel receives: the DTB on
    /// aarch64 (x0) and riscv64 (a1), the boot_params (zero page) on x86_64
    /// (%rsi); or 0 for none. Its kind is the kind of the segment that
    /// holds it (`SegmentKind::Dtb` / `SegmentKind::BootParams`).
    pub boot_data: u64,
    pub console: ConsoleDesc,
    pub on_failure: u32,
    pub psci_conduit: u32,
    pub nr_segments: u32,
    pub reserved0: u32,
    pub segments: [SegmentDesc; MAX_SEGMENTS],
    pub reserved: [u64; 8],
}

impl PurgatoryParams {
    pub const EMPTY: Self = Self {
        magic: 0,
        version: 0,
        size: 0,
        flags: 0,
        kernel_entry: 0,
        boot_data: 0,
        console: ConsoleDesc { kind: CONSOLE_NONE, reserved: 0, base: 0 },
        on_failure: ON_FAILURE_HALT,
        psci_conduit: PSCI_CONDUIT_NONE,
        nr_segments: 0,
        reserved0: 0,
        segments: [SegmentDesc::EMPTY; MAX_SEGMENTS],
        reserved: [0; 8],
    };

    /// A parameter block with magic, version and size filled in.
    pub fn new() -> Self {
        Self { magic: PARAMS_MAGIC, version: PARAMS_VERSION, size: core::mem::size_of::<Self>() as u32, ..Self::EMPTY }
    }

    /// The segment descriptors in use (clamped to `MAX_SEGMENTS`).
    pub fn active_segments(&self) -> &[SegmentDesc] {
        let n = (self.nr_segments as usize).min(MAX_SEGMENTS);
        &self.segments[..n]
    }

    /// Serialise to little-endian bytes (what a loader writes into the image).
    pub fn to_bytes(&self) -> [u8; core::mem::size_of::<PurgatoryParams>()] {
        // SAFETY: PurgatoryParams is repr(C), Copy, has no padding (asserted
        // below) and only integer fields; every byte is initialised.
        unsafe { core::mem::transmute_copy(self) }
    }
}

impl Default for PurgatoryParams {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageHeader {
    /// Parse the header from the start of a flat image.
    pub fn parse(image: &[u8]) -> Option<Self> {
        let bytes = image.get(HEADER_OFFSET..HEADER_OFFSET + core::mem::size_of::<Self>())?;
        // SAFETY: length checked; ImageHeader is repr(C) plain integers with
        // no padding (asserted below), so any bit pattern is valid.
        let hdr: Self = unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast()) };
        Some(hdr)
    }
}

// Layout is part of the contract: fail the build if it drifts.
const _: () = assert!(core::mem::size_of::<ImageHeader>() == 96);
const _: () = assert!(core::mem::size_of::<SegmentDesc>() == 56);
const _: () = assert!(core::mem::size_of::<ConsoleDesc>() == 16);
const _: () = assert!(core::mem::size_of::<PurgatoryParams>() == 1024);
const _: () = assert!(core::mem::offset_of!(PurgatoryParams, segments) == 64);
const _: () = assert!(core::mem::offset_of!(ImageHeader, image_size) == 32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_with_their_names() {
        let names = ["other", "kernel", "initrd", "dtb", "elfcorehdr", "boot-params", "backup"];
        for (raw, name) in names.iter().enumerate() {
            let kind = SegmentKind::from_raw(raw as u32).expect("known kind");
            assert_eq!((kind as u32, kind.name()), (raw as u32, *name));
        }
        assert_eq!(SegmentKind::from_raw(7), None);
    }
}
