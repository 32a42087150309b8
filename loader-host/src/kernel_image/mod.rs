//! Detect and unpack arm64 kernels: a raw `Image`, a gzip'd `Image.gz`, or
//! an EFI zboot `vmlinuz.efi` (gzip or zstd payload). Everything ends as the
//! raw Image plus the fields of its header.

pub mod arm64;
pub mod decompress;
pub mod zboot;

use std::fmt;

use self::arm64::{Arm64Header, HeaderError};
use self::decompress::{Codec, DecompressError, GZIP_MAGIC, MAX_DECOMPRESSED};
use self::zboot::{ZbootError, ZbootHeader};

/// How the kernel file was packaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFormat {
    /// booting.rst §4 raw Image.
    Raw,
    /// Image.gz (booting.rst §3: the boot loader decompresses).
    Gzip,
    /// EFI zboot with a gzip payload.
    ZbootGzip,
    /// EFI zboot with a zstd payload.
    ZbootZstd,
}

impl KernelFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "Image",
            Self::Gzip => "Image.gz",
            Self::ZbootGzip => "EFI zboot (gzip)",
            Self::ZbootZstd => "EFI zboot (zstd)",
        }
    }
}

impl fmt::Display for KernelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `detect_format` sees from the magic numbers alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detected {
    Raw,
    Gzip,
    /// EFI zboot; the compression name is checked by `parse_arm64`.
    Zboot,
    /// None of the above; the first four bytes, for the message.
    Unknown {
        magic: String,
    },
}

/// A decompressed, checked arm64 kernel.
#[derive(Clone, PartialEq, Eq)]
pub struct Arm64Kernel {
    /// The raw Image.
    pub image: Vec<u8>,
    pub text_offset: u64,
    /// Effective image size from the header (bss included); an estimate
    /// when `image_size_estimated` (pre-3.17 kernel).
    pub image_size: u64,
    pub flags: u64,
    pub format: KernelFormat,
    pub image_size_estimated: bool,
}

impl Arm64Kernel {
    pub fn header(&self) -> Arm64Header {
        Arm64Header {
            text_offset: self.text_offset,
            image_size: self.image_size,
            flags: self.flags,
            size_estimated: self.image_size_estimated,
        }
    }

    /// Bytes the kernel segment must span: booting.rst §4 "At least
    /// image_size bytes from the start of the image must be free", and never
    /// less than the file (a signed Image carries data past image_size).
    pub fn mem_size(&self) -> u64 {
        self.image_size.max(self.image.len() as u64)
    }
}

impl fmt::Debug for Arm64Kernel {
    // The image is megabytes: show its length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arm64Kernel")
            .field("image", &self.image.len())
            .field("text_offset", &format_args!("{:#x}", self.text_offset))
            .field("image_size", &format_args!("{:#x}", self.image_size))
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("format", &self.format)
            .field("image_size_estimated", &self.image_size_estimated)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelImageError {
    /// No known magic.
    NotArm64 {
        magic: String,
    },
    /// The (decompressed) Image header is unusable.
    Header {
        format: KernelFormat,
        source: HeaderError,
    },
    Decompress(DecompressError),
    Zboot(ZbootError),
}

impl fmt::Display for KernelImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotArm64 { magic } => write!(
                f,
                "not an arm64 Image, Image.gz or EFI zboot image (magic {magic}; expected \"ARM\\x64\" at 0x38, \
                 1f 8b at 0, or \"MZ\" + \"zimg\" at 0)"
            ),
            Self::Header { format: KernelFormat::Raw, source } => write!(f, "{source}"),
            Self::Header { format, source } => write!(f, "{format} payload: {source}"),
            Self::Decompress(e) => write!(f, "{e}"),
            Self::Zboot(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for KernelImageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::NotArm64 { .. } => None,
            Self::Header { source, .. } => Some(source),
            Self::Decompress(e) => Some(e),
            Self::Zboot(e) => Some(e),
        }
    }
}

impl From<DecompressError> for KernelImageError {
    fn from(e: DecompressError) -> Self {
        Self::Decompress(e)
    }
}

impl From<ZbootError> for KernelImageError {
    fn from(e: ZbootError) -> Self {
        Self::Zboot(e)
    }
}

/// Classify a kernel file by its magic numbers. zboot is tested first: both
/// it and an EFI-stub Image start with "MZ", only zboot has "zimg" at 4.
pub fn detect_format(bytes: &[u8]) -> Detected {
    if zboot::is_zboot(bytes) {
        Detected::Zboot
    } else if arm64::has_magic(bytes) {
        Detected::Raw
    } else if bytes.starts_with(&GZIP_MAGIC) {
        Detected::Gzip
    } else {
        Detected::Unknown { magic: zboot::magic_of(bytes) }
    }
}

/// Detect, decompress and check an arm64 kernel. `host_page_size` is the
/// running kernel's page size in bytes (see `host_page_size()`).
pub fn parse_arm64(bytes: &[u8], host_page_size: u64) -> Result<Arm64Kernel, KernelImageError> {
    match detect_format(bytes) {
        Detected::Raw => from_raw(bytes.to_vec(), KernelFormat::Raw, host_page_size),
        _ => parse_arm64_owned(bytes.to_vec(), host_page_size),
    }
}

/// As [`parse_arm64`], taking the file's bytes by value so that a raw
/// Image (the common case) is not copied.
pub fn parse_arm64_owned(file: Vec<u8>, host_page_size: u64) -> Result<Arm64Kernel, KernelImageError> {
    let bytes = &file[..];
    match detect_format(bytes) {
        Detected::Raw => from_raw(file, KernelFormat::Raw, host_page_size),
        Detected::Gzip => {
            let image = decompress::decompress(Codec::Gzip, bytes, MAX_DECOMPRESSED, "Image.gz")?;
            from_raw(image, KernelFormat::Gzip, host_page_size)
        }
        Detected::Zboot => {
            let header = ZbootHeader::parse(bytes)?;
            header.check_arm64()?;
            let codec = header.codec()?;
            let format = match codec {
                Codec::Gzip => KernelFormat::ZbootGzip,
                Codec::Zstd => KernelFormat::ZbootZstd,
            };
            let image = decompress::decompress(codec, header.payload(bytes), MAX_DECOMPRESSED, "EFI zboot payload")?;
            from_raw(image, format, host_page_size)
        }
        Detected::Unknown { magic } => Err(KernelImageError::NotArm64 { magic }),
    }
}

fn from_raw(image: Vec<u8>, format: KernelFormat, host_page_size: u64) -> Result<Arm64Kernel, KernelImageError> {
    let h =
        arm64::parse_header(&image, host_page_size).map_err(|source| KernelImageError::Header { format, source })?;
    Ok(Arm64Kernel {
        image,
        text_offset: h.text_offset,
        image_size: h.image_size,
        flags: h.flags,
        format,
        image_size_estimated: h.size_estimated,
    })
}

/// The running kernel's page size (sysconf(_SC_PAGESIZE)), for
/// `parse_arm64`. Falls back to 4 KiB if sysconf fails.
pub fn host_page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(v).ok().filter(|&v| v > 0).unwrap_or(4096)
}

/// x86 boot protocol (Documentation/arch/x86/boot.rst, "The real-mode
/// kernel header"): boot_flag 0xAA55 at 0x1fe and "HdrS" at 0x202.
pub fn is_bzimage(bytes: &[u8]) -> bool {
    bytes.get(0x1fe..0x200) == Some(&[0x55, 0xaa][..]) && bytes.get(0x202..0x206) == Some(&b"HdrS"[..])
}

#[cfg(test)]
mod tests {
    use super::arm64::tests::image;
    use super::decompress::tests::{gzip, zstd};
    use super::zboot::tests::zboot;
    use super::zboot::MACHINE_ARM64;
    use super::*;

    const FLAGS_4K: u64 = 1 << 1;

    fn sample() -> Vec<u8> {
        image(0, 0x40_0000, FLAGS_4K | 8, 300_000)
    }

    #[test]
    fn raw_image() {
        let k = parse_arm64(&sample(), 4096).unwrap();
        assert_eq!(k.format, KernelFormat::Raw);
        assert_eq!(k.image, sample());
        assert_eq!((k.text_offset, k.image_size, k.flags), (0, 0x40_0000, FLAGS_4K | 8));
        assert_eq!(k.mem_size(), 0x40_0000);
        assert!(!k.image_size_estimated);
    }

    #[test]
    fn gzip_image() {
        let k = parse_arm64(&gzip(&sample()), 4096).unwrap();
        assert_eq!(k.format, KernelFormat::Gzip);
        assert_eq!(k.image, sample());
        assert_eq!(k.image_size, 0x40_0000);
    }

    #[test]
    fn zboot_gzip_and_zstd() {
        let k = parse_arm64(&zboot("gzip", MACHINE_ARM64, &gzip(&sample())), 4096).unwrap();
        assert_eq!(k.format, KernelFormat::ZbootGzip);
        assert_eq!(k.image, sample());
        let k = parse_arm64(&zboot("zstd22", MACHINE_ARM64, &zstd(&sample())), 4096).unwrap();
        assert_eq!(k.format, KernelFormat::ZbootZstd);
        assert_eq!(k.image, sample());
    }

    #[test]
    fn zboot_with_unsupported_compression_names_it() {
        let err = parse_arm64(&zboot("lzma", MACHINE_ARM64, b"\x5d\0\0"), 4096).unwrap_err();
        assert!(matches!(err, KernelImageError::Zboot(ZbootError::UnsupportedCompression { .. })));
        assert!(err.to_string().contains("\"lzma\""), "{err}");
    }

    #[test]
    fn payload_that_is_not_an_image_is_refused_with_context() {
        let err = parse_arm64(&gzip(b"just some text, long enough to exceed sixty-four bytes of header ....."), 4096)
            .unwrap_err();
        assert!(err.to_string().starts_with("Image.gz payload: arm64 Image header: magic at 0x38"), "{err}");
    }

    #[test]
    fn page_size_is_checked_after_decompression() {
        let err = parse_arm64(&gzip(&sample()), 65536).unwrap_err();
        assert!(matches!(err, KernelImageError::Header { source: HeaderError::PageSizeMismatch { .. }, .. }));
    }

    #[test]
    fn unknown_files_are_refused_with_their_magic() {
        let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0";
        assert_eq!(detect_format(elf), Detected::Unknown { magic: "7f 45 4c 46".into() });
        let err = parse_arm64(elf, 4096).unwrap_err();
        assert!(err.to_string().starts_with("not an arm64 Image, Image.gz or EFI zboot image (magic 7f 45 4c 46"));
        assert_eq!(detect_format(b""), Detected::Unknown { magic: "00 00 00 00".into() });
    }

    #[test]
    fn efi_stub_image_is_raw_not_zboot() {
        // A raw Image with the EFI stub also starts with "MZ".
        assert_eq!(detect_format(&sample()), Detected::Raw);
    }

    #[test]
    fn bzimage_quick_check() {
        let mut b = vec![0u8; 0x400];
        assert!(!is_bzimage(&b));
        b[0x1fe] = 0x55;
        b[0x1ff] = 0xaa;
        b[0x202..0x206].copy_from_slice(b"HdrS");
        assert!(is_bzimage(&b));
        assert!(!is_bzimage(&sample()));
    }

    #[test]
    fn host_page_size_is_a_power_of_two() {
        assert!(host_page_size().is_power_of_two());
    }
}
