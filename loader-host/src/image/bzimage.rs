//! The x86 bzImage: its real-mode setup header and the protected-mode
//! kernel behind it (Documentation/arch/x86/boot.rst, "The Real-Mode Kernel
//! Header" and "Details of Header Fields"). Only what the 64-bit boot
//! protocol needs is read; every rule it depends on is checked here.

use std::fmt;

use kexec_purgatory::elf::EM_X86_64;

use super::{Host, ImageError, Kernel, KernelFormat, KernelImage};
use crate::fields::{le16, le32, le64};
use crate::input::Blob;

/// boot.rst: the setup header starts at 0x1f1 (struct boot_params.hdr).
pub const HEADER_START: usize = 0x1f1;
/// boot.rst "Details of Header Fields", setup_sects: "If this field is 0,
/// the real value is 4."
pub const LEGACY_SETUP_SECTS: usize = 4;
/// Sector size of the real-mode part.
pub const SECTOR: usize = 512;
/// boot.rst: protocol 2.12 added XLF_KERNEL_64 / the 64-bit entry rules
/// (kexec-tools' bzImage64_probe and the kernel's kexec_file require it).
pub const MIN_PROTOCOL: u16 = 0x020c;
/// boot.rst "64-bit Boot Protocol": the 64-bit entry point is the start of
/// the loaded protected-mode kernel plus 0x200.
pub const ENTRY_64_OFFSET: u64 = 0x200;
/// zero-page.rst: edd_mbr_sig_buffer starts at 0x290; the copied header must
/// end before it.
pub const HEADER_LIMIT: usize = 0x290;

// Field offsets (boot.rst "The Real-Mode Kernel Header" table).
const SETUP_SECTS: usize = 0x1f1;
const SYSSIZE: usize = 0x1f4;
const BOOT_FLAG: usize = 0x1fe;
const JUMP_LEN: usize = 0x201;
const HEADER_MAGIC: usize = 0x202;
const VERSION: usize = 0x206;
const LOADFLAGS: usize = 0x211;
const INITRD_ADDR_MAX: usize = 0x22c;
const KERNEL_ALIGNMENT: usize = 0x230;
const RELOCATABLE_KERNEL: usize = 0x234;
const MIN_ALIGNMENT: usize = 0x235;
const XLOADFLAGS: usize = 0x236;
const CMDLINE_SIZE: usize = 0x238;
const PREF_ADDRESS: usize = 0x258;
const INIT_SIZE: usize = 0x260;
const HANDOVER_OFFSET: usize = 0x264;
/// The last field this parser reads (handover_offset) ends here; a header
/// announcing a shorter length cannot hold it.
const FIELDS_END: usize = 0x268;

/// boot.rst loadflags bit 0 (read): protected-mode code loaded at 0x100000.
pub const LOADED_HIGH: u8 = 1 << 0;
/// boot.rst xloadflags bit 0: the kernel has the legacy 64-bit entry point
/// at 0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// boot.rst xloadflags bit 1: kernel/boot_params/cmdline/ramdisk can be
/// above 4G.
pub const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;
/// boot.rst xloadflags bit 5: the kernel supports 5-level paging.
pub const XLF_5LEVEL: u16 = 1 << 5;

/// A checked bzImage.
#[derive(Clone)]
pub struct BzImage {
    /// Header bytes 0x1f1 .. `0x202 + file[0x201]` (boot.rst "64-bit Boot
    /// Protocol": "The end of setup header can be calculated as follows:
    /// 0x0202 + byte value at offset 0x0201").
    pub setup_header: Vec<u8>,
    /// Bytes of the real-mode part: (setup_sects + 1) * 512.
    pub setup_size: usize,
    /// The protected-mode kernel: file[setup_size..] (shares the file's
    /// buffer).
    pub payload: Blob,
    /// Protocol version, e.g. 0x020f.
    pub version: u16,
    /// loadflags (0x211), e.g. [`LOADED_HIGH`].
    pub loadflags: u8,
    /// xloadflags (0x236), e.g. [`XLF_KERNEL_64`].
    pub xloadflags: u16,
    /// kernel_alignment (0x230): the physical alignment a relocatable
    /// kernel needs, a power of two.
    pub kernel_alignment: u64,
    /// 0 when the header does not set min_alignment.
    pub min_alignment: u8,
    /// relocatable_kernel (0x234) is non-zero: any `kernel_alignment`
    /// aligned address will do.
    pub relocatable: bool,
    /// pref_address (0x258): the preferred load address (a non-relocatable
    /// kernel runs only there).
    pub pref_address: u64,
    /// Bytes the kernel needs from its load address before it reads the
    /// memory map (decompression buffer included).
    pub init_size: u64,
    /// Longest command line, not counting the terminating NUL.
    pub cmdline_size: u32,
    /// Highest address the initrd may occupy (inclusive).
    pub initrd_addr_max: u32,
    /// handover_offset (0x264): the EFI handover entry's offset (read but
    /// not used: kexec enters at the 64-bit entry).
    pub handover_offset: u32,
}

impl fmt::Debug for BzImage {
    // The payload is megabytes: show its length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BzImage")
            .field("version", &format_args!("{:#06x}", self.version))
            .field("setup_size", &self.setup_size)
            .field("payload", &self.payload.len())
            .field("xloadflags", &format_args!("{:#x}", self.xloadflags))
            .field("kernel_alignment", &format_args!("{:#x}", self.kernel_alignment))
            .field("pref_address", &format_args!("{:#x}", self.pref_address))
            .field("init_size", &format_args!("{:#x}", self.init_size))
            .field("cmdline_size", &self.cmdline_size)
            .field("relocatable", &self.relocatable)
            .finish()
    }
}

impl BzImage {
    /// boot.rst xloadflags XLF_CAN_BE_LOADED_ABOVE_4G.
    pub fn can_load_above_4g(&self) -> bool {
        self.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G != 0
    }

    /// boot.rst xloadflags XLF_5LEVEL.
    pub fn supports_5level(&self) -> bool {
        self.xloadflags & XLF_5LEVEL != 0
    }
}

/// Why a file is not a bzImage this loader can boot; each names the field
/// and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BzImageError {
    /// Smaller than the boot sector plus one setup sector.
    TooShort(usize),
    /// boot_flag (0x1fe) is not 0xAA55.
    BootFlag(u16),
    /// header (0x202) is not "HdrS".
    Magic([u8; 4]),
    /// version (0x206) is below 2.12.
    Protocol(u16),
    /// loadflags (0x211) lacks LOADED_HIGH: a zImage.
    NotLoadedHigh(u8),
    /// xloadflags (0x236) lacks XLF_KERNEL_64.
    Not64Bit(u16),
    /// The header length from the jump at 0x200 does not cover the fields
    /// read, or runs past the boot_params header area.
    HeaderLength {
        /// Where the header ends: 0x202 + the byte at 0x201.
        end: usize,
    },
    /// The file is shorter than (setup_sects + 1) * 512 or has no payload.
    Truncated {
        /// (setup_sects + 1) * 512.
        setup_size: usize,
        /// The file's length in bytes.
        file_len: usize,
    },
    /// The file ends before the protected-mode kernel syssize (0x1f4)
    /// gives.
    Syssize {
        /// syssize * 16.
        kernel_len: u64,
        /// Bytes after the setup code.
        payload: usize,
    },
    /// kernel_alignment (0x230) is zero or not a power of two.
    Alignment(u32),
    /// init_size (0x260) is smaller than the payload.
    InitSize {
        /// The header's init_size.
        init_size: u64,
        /// Bytes of the protected-mode payload.
        payload: usize,
    },
    /// cmdline_size (0x238) is zero.
    CmdlineSize,
}

impl fmt::Display for BzImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule = "Documentation/arch/x86/boot.rst";
        match self {
            Self::TooShort(n) => write!(f, "bzImage is {n} bytes; a boot sector and a setup sector need at least 1024"),
            Self::BootFlag(v) => write!(f, "bzImage boot_flag (0x1fe) is {v:#06x}, {rule} requires 0xaa55"),
            Self::Magic(m) => write!(f, "bzImage header magic (0x202) is {m:02x?}, {rule} requires \"HdrS\""),
            Self::Protocol(v) => write!(
                f,
                "bzImage boot protocol {}.{:02} (0x206) is older than 2.12, the first with the 64-bit entry rules",
                v >> 8,
                v & 0xff
            ),
            Self::NotLoadedHigh(l) => write!(
                f,
                "bzImage loadflags (0x211) is {l:#04x} without LOADED_HIGH: a zImage, not a bzImage ({rule})"
            ),
            Self::Not64Bit(x) => write!(
                f,
                "bzImage xloadflags (0x236) is {x:#06x} without XLF_KERNEL_64: no 64-bit entry point at 0x200 ({rule})"
            ),
            Self::HeaderLength { end } => write!(
                f,
                "bzImage setup header ends at {end:#x} (0x202 + byte at 0x201); it must cover {FIELDS_END:#x} and stay below {HEADER_LIMIT:#x}"
            ),
            Self::Truncated { setup_size, file_len } => write!(
                f,
                "bzImage is {file_len} bytes but setup_sects (0x1f1) puts the protected-mode kernel at {setup_size}: truncated"
            ),
            Self::Syssize { kernel_len, payload } => write!(
                f,
                "bzImage syssize (0x1f4) gives a {kernel_len}-byte protected-mode kernel; the file holds {payload} bytes after the setup code: truncated"
            ),
            Self::Alignment(a) => {
                write!(f, "bzImage kernel_alignment (0x230) is {a:#x}, not a power of two ({rule})")
            }
            Self::InitSize { init_size, payload } => write!(
                f,
                "bzImage init_size (0x260) is {init_size:#x}, smaller than the {payload:#x}-byte protected-mode kernel"
            ),
            Self::CmdlineSize => write!(f, "bzImage cmdline_size (0x238) is 0: the kernel takes no command line"),
        }
    }
}

impl std::error::Error for BzImageError {}

// Reads within a length-checked prefix; the checks in `parse` guarantee
// every offset below FIELDS_END exists.
fn u8_at(b: &[u8], o: usize) -> u8 {
    b.get(o).copied().unwrap_or(0)
}
fn u16_at(b: &[u8], o: usize) -> u16 {
    le16(b, o).unwrap_or(0)
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    le32(b, o).unwrap_or(0)
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    le64(b, o).unwrap_or(0)
}

impl BzImage {
    /// Check `file` against the boot protocol and split it.
    pub fn parse(file: &Blob) -> Result<BzImage, BzImageError> {
        // Both the kernel's kexec_file (bzImage64_probe) and kexec-tools
        // refuse anything shorter than two sectors.
        if file.len() < 2 * SECTOR {
            return Err(BzImageError::TooShort(file.len()));
        }
        // boot.rst: boot_flag "Contains 0xAA55".
        let boot_flag = u16_at(file, BOOT_FLAG);
        if boot_flag != 0xaa55 {
            return Err(BzImageError::BootFlag(boot_flag));
        }
        // boot.rst: header "Contains the magic number 'HdrS'".
        let magic = crate::fields::array(file, HEADER_MAGIC).unwrap_or([0; 4]);
        if &magic != b"HdrS" {
            return Err(BzImageError::Magic(magic));
        }
        let version = u16_at(file, VERSION);
        if version < MIN_PROTOCOL {
            return Err(BzImageError::Protocol(version));
        }
        // boot.rst loadflags bit 0: "If 0, the protected-mode code is loaded
        // at 0x10000" (zImage).
        let loadflags = u8_at(file, LOADFLAGS);
        if loadflags & LOADED_HIGH == 0 {
            return Err(BzImageError::NotLoadedHigh(loadflags));
        }
        let xloadflags = u16_at(file, XLOADFLAGS);
        if xloadflags & XLF_KERNEL_64 == 0 {
            return Err(BzImageError::Not64Bit(xloadflags));
        }
        // boot.rst "64-bit Boot Protocol": header end = 0x0202 + file[0x201].
        let end = 0x202 + usize::from(u8_at(file, JUMP_LEN));
        if !(FIELDS_END..=HEADER_LIMIT).contains(&end) {
            return Err(BzImageError::HeaderLength { end });
        }
        // boot.rst setup_sects: "If this field is 0, the real value is 4."
        let sects = match usize::from(u8_at(file, SETUP_SECTS)) {
            0 => LEGACY_SETUP_SECTS,
            n => n,
        };
        let setup_size = (sects + 1) * SECTOR;
        if file.len() <= setup_size {
            return Err(BzImageError::Truncated { setup_size, file_len: file.len() });
        }
        // boot.rst kernel_alignment: "Alignment unit required by the kernel
        // (if relocatable_kernel is true)"; placement needs a power of two.
        let kernel_alignment = u32_at(file, KERNEL_ALIGNMENT);
        if !kernel_alignment.is_power_of_two() {
            return Err(BzImageError::Alignment(kernel_alignment));
        }
        let payload_len = file.len() - setup_size;
        // boot.rst syssize: "The size of the protected-mode code in units
        // of 16-byte paragraphs" (32 bits from protocol 2.04). The build
        // pads the kernel to it; a signature may follow (sbsign appends
        // one), so the file may be longer, never shorter.
        let kernel_len = u64::from(u32_at(file, SYSSIZE)) * 16;
        if kernel_len > payload_len as u64 {
            return Err(BzImageError::Syssize { kernel_len, payload: payload_len });
        }
        // boot.rst init_size: "the amount of linear contiguous memory
        // starting at the kernel runtime start address that the kernel
        // needs"; the loaded bytes must fit in it (kexec_load: bufsz <= memsz).
        let init_size = u64::from(u32_at(file, INIT_SIZE));
        if init_size < payload_len as u64 {
            return Err(BzImageError::InitSize { init_size, payload: payload_len });
        }
        let cmdline_size = u32_at(file, CMDLINE_SIZE);
        if cmdline_size == 0 {
            return Err(BzImageError::CmdlineSize);
        }
        Ok(BzImage {
            setup_header: file[HEADER_START..end].to_vec(),
            setup_size,
            payload: file.tail(setup_size),
            version,
            loadflags,
            xloadflags,
            kernel_alignment: u64::from(kernel_alignment),
            min_alignment: u8_at(file, MIN_ALIGNMENT),
            relocatable: u8_at(file, RELOCATABLE_KERNEL) != 0,
            pref_address: u64_at(file, PREF_ADDRESS),
            init_size,
            cmdline_size,
            initrd_addr_max: u32_at(file, INITRD_ADDR_MAX),
            handover_offset: u32_at(file, HANDOVER_OFFSET),
        })
    }
}

/// The format: an x86 bzImage (boot_flag 0xaa55 at 0x1fe, "HdrS" at 0x202).
pub struct BzImageFormat;

impl KernelFormat for BzImageFormat {
    fn names(&self) -> &'static [&'static str] {
        &["bzImage", "bzImage64", "bzimage"]
    }
    fn describe(&self) -> &'static str {
        "x86 bzImage (0xaa55 at 0x1fe, \"HdrS\" at 0x202)"
    }
    fn probe(&self, file: &[u8]) -> bool {
        is_bzimage(file)
    }
    fn machine_hint(&self, _head: &[u8]) -> Option<u16> {
        Some(EM_X86_64)
    }
    fn parse(&self, file: Blob, _host: Host) -> Result<KernelImage, ImageError> {
        let bz = BzImage::parse(&file).map_err(ImageError::BzImage)?;
        Ok(KernelImage::plain(EM_X86_64, "bzImage", Kernel::BzImage(bz)).as_whole_file())
    }
}

/// boot.rst "The real-mode kernel header": boot_flag 0xAA55 at 0x1fe and
/// "HdrS" at 0x202.
pub fn is_bzimage(bytes: &[u8]) -> bool {
    bytes.get(BOOT_FLAG..BOOT_FLAG + 2) == Some(&[0x55, 0xaa][..])
        && bytes.get(HEADER_MAGIC..HEADER_MAGIC + 4) == Some(&b"HdrS"[..])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A synthetic bzImage shaped like a 6.x x86_64 kernel: protocol 2.15,
    /// setup_sects 27, header ending at 0x26c.
    pub(crate) fn sample(payload_len: usize) -> Vec<u8> {
        let setup_sects = 27usize;
        let mut f = vec![0u8; (setup_sects + 1) * SECTOR + payload_len];
        f[SETUP_SECTS] = setup_sects as u8;
        f[BOOT_FLAG..BOOT_FLAG + 2].copy_from_slice(&0xaa55u16.to_le_bytes());
        f[0x200] = 0xeb;
        f[JUMP_LEN] = 0x6a; // 0x202 + 0x6a = 0x26c
        f[HEADER_MAGIC..HEADER_MAGIC + 4].copy_from_slice(b"HdrS");
        f[VERSION..VERSION + 2].copy_from_slice(&0x020fu16.to_le_bytes());
        f[LOADFLAGS] = LOADED_HIGH;
        f[INITRD_ADDR_MAX..INITRD_ADDR_MAX + 4].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        f[KERNEL_ALIGNMENT..KERNEL_ALIGNMENT + 4].copy_from_slice(&0x20_0000u32.to_le_bytes());
        f[RELOCATABLE_KERNEL] = 1;
        f[MIN_ALIGNMENT] = 21;
        f[XLOADFLAGS..XLOADFLAGS + 2]
            .copy_from_slice(&(XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G | XLF_5LEVEL).to_le_bytes());
        f[CMDLINE_SIZE..CMDLINE_SIZE + 4].copy_from_slice(&2047u32.to_le_bytes());
        f[PREF_ADDRESS..PREF_ADDRESS + 8].copy_from_slice(&0x100_0000u64.to_le_bytes());
        f[INIT_SIZE..INIT_SIZE + 4].copy_from_slice(&0x300_0000u32.to_le_bytes());
        f[HANDOVER_OFFSET..HANDOVER_OFFSET + 4].copy_from_slice(&0x190u32.to_le_bytes());
        for (i, b) in f[(setup_sects + 1) * SECTOR..].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        f
    }

    fn parse(f: &[u8]) -> Result<BzImage, BzImageError> {
        BzImage::parse(&Blob::new(f.to_vec()))
    }

    #[test]
    fn parses_the_fields_64bit_boot_needs() {
        let f = sample(5000);
        let bz = parse(&f).unwrap();
        assert_eq!(bz.setup_size, 28 * 512);
        assert_eq!(&bz.payload[..], &f[28 * 512..]);
        assert_eq!(bz.setup_header.len(), 0x26c - 0x1f1);
        assert_eq!(bz.setup_header[0], 27, "starts at setup_sects");
        assert_eq!(&bz.setup_header[0x202 - 0x1f1..0x206 - 0x1f1], b"HdrS");
        assert_eq!(bz.version, 0x020f);
        assert_eq!(bz.kernel_alignment, 0x20_0000);
        assert_eq!(bz.min_alignment, 21);
        assert!(bz.relocatable);
        assert_eq!(bz.pref_address, 0x100_0000);
        assert_eq!(bz.init_size, 0x300_0000);
        assert_eq!(bz.cmdline_size, 2047);
        assert_eq!(bz.initrd_addr_max, 0x7fff_ffff);
        assert_eq!(bz.handover_offset, 0x190);
        assert!(bz.can_load_above_4g() && bz.supports_5level());
        assert!(is_bzimage(&f));
        assert!(!is_bzimage(&f[..0x200]));
        assert!(format!("{bz:?}").contains("payload: 5000"));
    }

    #[test]
    fn setup_sects_zero_means_four() {
        let mut f = sample(100);
        f[SETUP_SECTS] = 0;
        let bz = parse(&f).unwrap();
        assert_eq!(bz.setup_size, 5 * 512);
        assert_eq!(bz.payload.len(), f.len() - 5 * 512);
    }

    #[test]
    fn each_rule_has_its_error() {
        let ok = sample(100);
        let with = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut f = ok.clone();
            edit(&mut f);
            parse(&f).unwrap_err()
        };
        assert_eq!(parse(&ok[..1000]).unwrap_err(), BzImageError::TooShort(1000));
        assert_eq!(with(&|f| f[BOOT_FLAG] = 0), BzImageError::BootFlag(0xaa00));
        assert_eq!(with(&|f| f[HEADER_MAGIC] = b'X'), BzImageError::Magic(*b"XdrS"));
        assert_eq!(with(&|f| f[VERSION] = 0x0b), BzImageError::Protocol(0x020b));
        assert_eq!(with(&|f| f[LOADFLAGS] = 0), BzImageError::NotLoadedHigh(0));
        assert_eq!(with(&|f| f[XLOADFLAGS] = 2), BzImageError::Not64Bit(2));
        assert_eq!(with(&|f| f[JUMP_LEN] = 0x10), BzImageError::HeaderLength { end: 0x212 });
        assert_eq!(with(&|f| f[JUMP_LEN] = 0x90), BzImageError::HeaderLength { end: 0x292 });
        assert_eq!(
            with(&|f| f.truncate(28 * 512)),
            BzImageError::Truncated { setup_size: 28 * 512, file_len: 28 * 512 }
        );
        // syssize past the file's end (a file cut short); equal is whole.
        assert_eq!(
            with(&|f| f[SYSSIZE..SYSSIZE + 4].copy_from_slice(&7u32.to_le_bytes())),
            BzImageError::Syssize { kernel_len: 112, payload: 100 }
        );
        let mut whole = ok.clone();
        whole[SYSSIZE..SYSSIZE + 4].copy_from_slice(&6u32.to_le_bytes());
        assert!(parse(&whole).is_ok(), "96 bytes of kernel and 4 more (a signature)");
        assert_eq!(with(&|f| f[KERNEL_ALIGNMENT] = 3), BzImageError::Alignment(0x20_0003));
        assert_eq!(
            with(&|f| f[INIT_SIZE..INIT_SIZE + 4].fill(0)),
            BzImageError::InitSize { init_size: 0, payload: 100 }
        );
        assert_eq!(with(&|f| f[CMDLINE_SIZE..CMDLINE_SIZE + 4].fill(0)), BzImageError::CmdlineSize);
        // Messages name the field and the rule.
        assert!(with(&|f| f[XLOADFLAGS] = 0).to_string().contains("xloadflags (0x236)"));
        assert!(with(&|f| f[VERSION] = 0x0b).to_string().contains("2.11 (0x206) is older than 2.12"));
    }

    #[test]
    fn above_4g_is_reported_not_required() {
        let mut f = sample(100);
        f[XLOADFLAGS] = XLF_KERNEL_64 as u8;
        let bz = parse(&f).unwrap();
        assert!(!bz.can_load_above_4g());
    }
}
