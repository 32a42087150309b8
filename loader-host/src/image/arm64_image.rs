//! The raw arm64 `Image` (Documentation/arch/arm64/booting.rst §4 "Call
//! the kernel image"): its 64-byte little-endian header, and the format
//! module that loads it.

use std::fmt;

use kexec_purgatory::elf::EM_AARCH64;

use super::{Host, ImageError, ImageKernel, Kernel, KernelFormat, KernelImage};
use crate::fields::le64;
use crate::input::Blob;
use crate::range::PAGE;

/// Bytes in the header.
pub const HEADER_LEN: usize = 64;
/// booting.rst §4: `u32 magic = 0x644d5241` ("ARM\x64") at offset 0x38.
pub const MAGIC: [u8; 4] = *b"ARM\x64";
/// Where [`MAGIC`] sits in the header (booting.rst §4).
pub const MAGIC_OFFSET: usize = 0x38;
const TEXT_OFFSET_AT: usize = 8;
const IMAGE_SIZE_AT: usize = 16;
const FLAGS_AT: usize = 24;

/// booting.rst §4: "Where image_size is zero, text_offset can be assumed to
/// be 0x80000" (kernels before v3.17).
pub const LEGACY_TEXT_OFFSET: u64 = 0x80000;
/// kexec-tools (kexec/arch/arm64/kexec-arm64.c, arm64_process_image_header)
/// assumes 16 MiB for a pre-3.17 kernel; we use at least that.
pub const LEGACY_MIN_IMAGE_SIZE: u64 = 16 << 20;
const MIB2: u64 = 2 << 20;

/// booting.rst §4 flags bit 0: "Kernel endianness. 1 if BE, 0 if LE."
pub const FLAG_BE: u64 = 1 << 0;
/// booting.rst §4 flags bits 1-2: kernel page size.
const FLAG_PAGE_SHIFT: u32 = 1;
const FLAG_PAGE_MASK: u64 = 0b11 << FLAG_PAGE_SHIFT;
/// booting.rst §4 flags bit 3: physical placement (1 = anywhere within the
/// 48-bit addressable range, 0 = as close as possible to the base of DRAM).
pub const FLAG_PHYS_PLACEMENT_ANYWHERE: u64 = 1 << 3;

/// A parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arm64Header {
    /// booting.rst §4 `text_offset` (0x08): bytes between the 2 MiB
    /// aligned base and the Image's first byte; 0x80000 for a pre-3.17
    /// kernel.
    pub text_offset: u64,
    /// Effective image size (bss included). For a pre-3.17 kernel (header
    /// `image_size == 0`) this is an estimate; see `size_estimated`.
    pub image_size: u64,
    /// booting.rst §4 `flags` (0x18): endianness, page size, physical
    /// placement; 0 for a pre-3.17 kernel.
    pub flags: u64,
    /// The header had `image_size == 0` and `text_offset`/`image_size` were
    /// filled in by the pre-3.17 rule.
    pub size_estimated: bool,
}

/// Page size the kernel was built for (flags bits 1-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPageSize {
    /// 0: not said (any page size is accepted).
    Unspecified,
    /// 1: 4 KiB pages.
    Size4K,
    /// 2: 16 KiB pages.
    Size16K,
    /// 3: 64 KiB pages.
    Size64K,
}

impl KernelPageSize {
    /// The page size in bytes; None when unspecified.
    pub fn bytes(self) -> Option<u64> {
        match self {
            Self::Unspecified => None,
            Self::Size4K => Some(4 << 10),
            Self::Size16K => Some(16 << 10),
            Self::Size64K => Some(64 << 10),
        }
    }
}

impl Arm64Header {
    /// booting.rst §4 flags bits 1-2: the page size the kernel was built
    /// for.
    pub fn page_size(&self) -> KernelPageSize {
        // booting.rst §4: 0 - Unspecified, 1 - 4K, 2 - 16K, 3 - 64K.
        match (self.flags & FLAG_PAGE_MASK) >> FLAG_PAGE_SHIFT {
            1 => KernelPageSize::Size4K,
            2 => KernelPageSize::Size16K,
            3 => KernelPageSize::Size64K,
            _ => KernelPageSize::Unspecified,
        }
    }

    /// booting.rst §4 flags bit 0: a big-endian kernel.
    pub fn is_big_endian(&self) -> bool {
        self.flags & FLAG_BE != 0
    }

    /// booting.rst §4 flags bit 3.
    pub fn placement_anywhere(&self) -> bool {
        self.flags & FLAG_PHYS_PLACEMENT_ANYWHERE != 0
    }
}

/// Why a buffer is not a usable arm64 Image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arm64HeaderError {
    /// Shorter than the 64-byte header.
    TooShort {
        /// The file's length in bytes.
        len: usize,
    },
    /// No "ARM\x64" at 0x38.
    BadMagic {
        /// The 4 bytes at 0x38.
        found: [u8; 4],
    },
    /// flags bit 0 set.
    BigEndian,
    /// flags bits 1-2 name a page size the running kernel does not use.
    PageSizeMismatch {
        /// The kernel's page size in bytes.
        kernel: u64,
        /// The running kernel's page size in bytes.
        host: u64,
    },
    /// text_offset is not a page multiple: the segment could not start
    /// page-aligned (kexec_load requires it).
    TextOffset {
        /// The header's text_offset.
        text_offset: u64,
    },
    /// text_offset + image_size passes the end of the address space.
    SizeOverflow {
        /// The header's text_offset.
        text_offset: u64,
        /// The header's image_size.
        image_size: u64,
    },
    /// The EFI stub's PE header ("MZ" at 0, its offset at 0x3c) is missing
    /// or runs past the file.
    BadPeHeader {
        /// The PE header offset read at 0x3c.
        offset: u64,
    },
    /// The PE section table places data past the end of the file: the file
    /// was cut short.
    Truncated {
        /// The file's length in bytes.
        file: u64,
        /// The furthest section end (PointerToRawData + SizeOfRawData).
        needed: u64,
    },
}

impl fmt::Display for Arm64HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => write!(
                f,
                "arm64 Image header: file is {len} bytes, shorter than the {HEADER_LEN}-byte header (booting.rst §4)"
            ),
            Self::BadMagic { found } => write!(
                f,
                "arm64 Image header: magic at 0x38 is {} instead of \"ARM\\x64\" (41 52 4d 64, booting.rst §4)",
                hex4(found)
            ),
            Self::BigEndian => {
                write!(f, "arm64 Image header: flags bit 0 is set: big-endian kernel, this loader runs little-endian")
            }
            Self::PageSizeMismatch { kernel, host } => write!(
                f,
                "arm64 Image header: flags bits 1-2 say the kernel uses {} pages but the running kernel uses {} pages",
                kib(*kernel),
                kib(*host)
            ),
            Self::TextOffset { text_offset } => write!(
                f,
                "arm64 Image header: text_offset (0x08) {text_offset:#x} is not a multiple of 4 KiB; kexec segments start on pages"
            ),
            Self::BadPeHeader { offset } => write!(
                f,
                "arm64 Image EFI stub: the PE header offset at 0x3c ({offset:#x}) does not lead to a \"PE\\0\\0\" header and section table inside the file (truncated, or not an Image)"
            ),
            Self::Truncated { file, needed } => write!(
                f,
                "arm64 Image is {file} bytes but its EFI stub's PE section table places data up to {needed}: the file is truncated"
            ),
            Self::SizeOverflow { text_offset, image_size } => write!(
                f,
                "arm64 Image header: text_offset (0x08) {text_offset:#x} + image_size (0x10) {image_size:#x} overflows 64 bits"
            ),
        }
    }
}

impl std::error::Error for Arm64HeaderError {}

fn kib(bytes: u64) -> String {
    format!("{}K", bytes >> 10)
}

fn hex4(b: &[u8; 4]) -> String {
    crate::fields::magic_hex(b)
}

fn field(b: &[u8], at: usize) -> u64 {
    // parse_header checked the 64-byte header is there.
    le64(b, at).unwrap_or(0)
}

/// Whether `bytes` carries the arm64 Image magic.
pub fn has_magic(bytes: &[u8]) -> bool {
    bytes.get(MAGIC_OFFSET..MAGIC_OFFSET + 4) == Some(&MAGIC[..])
}

/// Parse and check the header of a raw Image. `host_page_size` is the
/// running kernel's page size in bytes.
pub fn parse_header(image: &[u8], host_page_size: u64) -> Result<Arm64Header, Arm64HeaderError> {
    if image.len() < HEADER_LEN {
        return Err(Arm64HeaderError::TooShort { len: image.len() });
    }
    if !has_magic(image) {
        let found = crate::fields::array(image, MAGIC_OFFSET).unwrap_or([0; 4]);
        return Err(Arm64HeaderError::BadMagic { found });
    }
    let image_size = field(image, IMAGE_SIZE_AT);
    // booting.rst §4: "As of v3.17, all fields are little endian"; before
    // that image_size is zero and flags did not exist.
    let flags = if image_size == 0 { 0 } else { field(image, FLAGS_AT) };
    let header = if image_size == 0 {
        // booting.rst §4: "Where image_size is zero, text_offset can be
        // assumed to be 0x80000", and the memory the kernel needs after its
        // image "is effectively unbound". We estimate rather than refuse:
        // twice the file rounded up to 2 MiB (text + data + bss + early page
        // tables have never exceeded that on 3.x kernels), and never less
        // than the 16 MiB kexec-tools assumes. Callers see
        // `size_estimated` and should say so.
        let file = (image.len() as u64).div_ceil(MIB2) * MIB2;
        Arm64Header {
            text_offset: LEGACY_TEXT_OFFSET,
            image_size: file.saturating_mul(2).max(LEGACY_MIN_IMAGE_SIZE),
            flags,
            size_estimated: true,
        }
    } else {
        Arm64Header { text_offset: field(image, TEXT_OFFSET_AT), image_size, flags, size_estimated: false }
    };
    if header.is_big_endian() {
        return Err(Arm64HeaderError::BigEndian);
    }
    if let Some(kernel) = header.page_size().bytes() {
        // booting.rst §4 bits 1-2. A kernel built for another granule may not
        // be supported by this CPU (ID_AA64MMFR0_EL1.TGran*); the running
        // kernel's page size is the one we know works.
        if kernel != host_page_size {
            return Err(Arm64HeaderError::PageSizeMismatch { kernel, host: host_page_size });
        }
    }
    if !header.text_offset.is_multiple_of(PAGE) {
        return Err(Arm64HeaderError::TextOffset { text_offset: header.text_offset });
    }
    if header.text_offset.checked_add(header.image_size).is_none() {
        return Err(Arm64HeaderError::SizeOverflow { text_offset: header.text_offset, image_size: header.image_size });
    }
    Ok(header)
}

/// The bytes an Image with an EFI stub must have (see
/// [`super::pe_stub::extent`]); None for an Image without the stub ("MZ"
/// at 0 is how booting.rst §4's code0 marks it).
pub fn pe_extent(image: &[u8]) -> Result<Option<u64>, Arm64HeaderError> {
    super::pe_stub::extent(image).map_err(|offset| Arm64HeaderError::BadPeHeader { offset })
}

/// The raw Image as an [`ImageKernel`], for this format and the ones that
/// wrap it (Image.gz, EFI zboot).
pub fn kernel_from_raw(data: Blob, format: &'static str, host: Host) -> Result<KernelImage, ImageError> {
    let h = parse_header(&data, host.page_size).map_err(ImageError::Arm64)?;
    if let Some(needed) = pe_extent(&data).map_err(ImageError::Arm64)? {
        let file = data.len() as u64;
        if file < needed {
            return Err(ImageError::Arm64(Arm64HeaderError::Truncated { file, needed }));
        }
    }
    // booting.rst §4: "At least image_size bytes from the start of the image
    // must be free"; a signed Image carries data past image_size, so never
    // less than the file.
    let mem_size = h.image_size.max(data.len() as u64);
    let kernel = ImageKernel {
        data,
        text_offset: h.text_offset,
        mem_size,
        anywhere: h.placement_anywhere(),
        size_estimated: h.size_estimated,
    };
    Ok(KernelImage::plain(EM_AARCH64, format, Kernel::Image(kernel)))
}

/// The format: a raw arm64 Image ("ARM\x64" at 0x38).
pub struct Arm64Image;

impl KernelFormat for Arm64Image {
    fn names(&self) -> &'static [&'static str] {
        &["Image", "image-arm64", "arm64"]
    }
    fn describe(&self) -> &'static str {
        "arm64 Image (\"ARM\\x64\" at 0x38)"
    }
    fn probe(&self, file: &[u8]) -> bool {
        has_magic(file)
    }
    fn machine_hint(&self, _head: &[u8]) -> Option<u16> {
        Some(EM_AARCH64)
    }
    fn parse(&self, file: Blob, host: Host) -> Result<KernelImage, ImageError> {
        kernel_from_raw(file, "Image", host).map(KernelImage::as_whole_file)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A synthetic Image: header plus `body` bytes of filler.
    pub(crate) fn image(text_offset: u64, image_size: u64, flags: u64, body: usize) -> Vec<u8> {
        let mut v = vec![0u8; HEADER_LEN + body];
        for (i, b) in v[HEADER_LEN..].iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        v[8..16].copy_from_slice(&text_offset.to_le_bytes());
        v[16..24].copy_from_slice(&image_size.to_le_bytes());
        v[24..32].copy_from_slice(&flags.to_le_bytes());
        v[MAGIC_OFFSET..MAGIC_OFFSET + 4].copy_from_slice(&MAGIC);
        if body >= 0x80 {
            crate::image::pe_stub::tests::add_stub(&mut v, *b"MZ@\xfa", 0xaa64);
        }
        v
    }

    const FLAGS_4K: u64 = 1 << 1;
    const FLAGS_64K: u64 = 3 << 1;

    #[test]
    fn modern_header_parses() {
        let h = parse_header(&image(0, 0x2a0_0000, FLAGS_4K | FLAG_PHYS_PLACEMENT_ANYWHERE, 100), 4096).unwrap();
        assert_eq!(h.text_offset, 0);
        assert_eq!(h.image_size, 0x2a0_0000);
        assert_eq!(h.page_size(), KernelPageSize::Size4K);
        assert!(h.placement_anywhere());
        assert!(!h.size_estimated);
    }

    #[test]
    fn unspecified_page_size_is_accepted_on_any_host() {
        let h = parse_header(&image(0x80000, 0x100_0000, 0, 0), 65536).unwrap();
        assert_eq!(h.page_size(), KernelPageSize::Unspecified);
        assert_eq!(h.text_offset, 0x80000);
    }

    #[test]
    fn pre_3_17_header_uses_documented_defaults() {
        // text_offset field garbage (BE kernel's 0x80000), image_size 0.
        let mut img = image(0x0000_0800_0000_0000, 0, 0, 3 << 20);
        img[24..32].copy_from_slice(&u64::MAX.to_le_bytes()); // flags did not exist
        let h = parse_header(&img, 4096).unwrap();
        assert_eq!(h.text_offset, LEGACY_TEXT_OFFSET);
        assert!(h.size_estimated);
        assert_eq!(h.image_size, 16 << 20);
        let big = image(0, 0, 0, 20 << 20);
        assert_eq!(parse_header(&big, 4096).unwrap().image_size, 44 << 20);
    }

    #[test]
    fn big_endian_kernel_is_refused() {
        let err = parse_header(&image(0, 1 << 24, FLAG_BE | FLAGS_4K, 0), 4096).unwrap_err();
        assert_eq!(err, Arm64HeaderError::BigEndian);
        assert!(err.to_string().contains("big-endian kernel, this loader runs little-endian"));
    }

    #[test]
    fn page_size_mismatch_is_refused() {
        let err = parse_header(&image(0, 1 << 24, FLAGS_64K, 0), 4096).unwrap_err();
        assert_eq!(err, Arm64HeaderError::PageSizeMismatch { kernel: 65536, host: 4096 });
        assert!(err.to_string().contains("64K pages but the running kernel uses 4K"), "{err}");
        assert!(parse_header(&image(0, 1 << 24, FLAGS_64K, 0), 65536).is_ok());
    }

    #[test]
    fn short_or_magicless_buffers_are_refused() {
        assert_eq!(parse_header(&[0u8; 63], 4096), Err(Arm64HeaderError::TooShort { len: 63 }));
        let mut img = image(0, 1 << 24, 0, 0);
        img[MAGIC_OFFSET] = b'X';
        let err = parse_header(&img, 4096).unwrap_err();
        assert!(err.to_string().contains("58 52 4d 64"), "{err}");
    }

    #[test]
    fn hostile_offsets_are_refused_not_wrapped() {
        // text_offset near 2^64 (issue: the addition wrapped and a kernel
        // was placed outside RAM).
        let err = parse_header(&image(u64::MAX - 0xfff, 1 << 24, FLAGS_4K, 0), 4096).unwrap_err();
        assert!(matches!(err, Arm64HeaderError::SizeOverflow { .. }), "{err}");
        assert!(err.to_string().contains("overflows 64 bits"), "{err}");
        let err = parse_header(&image(0x800, 1 << 24, FLAGS_4K, 0), 4096).unwrap_err();
        assert_eq!(err, Arm64HeaderError::TextOffset { text_offset: 0x800 });
        // A huge but representable image_size parses; placement refuses it.
        assert!(parse_header(&image(0, 1 << 62, FLAGS_4K, 0), 4096).is_ok());
    }

    #[test]
    fn truncated_efi_stub_images_are_refused() {
        let img = image(0, 8 << 20, FLAGS_4K, 0x1000);
        assert_eq!(pe_extent(&img), Ok(Some(img.len() as u64)));
        let host = Host { page_size: 4096 };
        let cut = Blob::new(img[..0x800].to_vec());
        let err = kernel_from_raw(cut, "Image", host).unwrap_err();
        assert_eq!(err.to_string(), "arm64 Image is 2048 bytes but its EFI stub's PE section table places data up to 4160: the file is truncated");
        // A 100-byte file whose header says 8 MiB: the PE header is not even there.
        let tiny = Blob::new(img[..100].to_vec());
        let err = kernel_from_raw(tiny, "Image", host).unwrap_err();
        assert!(err.to_string().contains("PE header offset at 0x3c (0x40) does not lead"), "{err}");
        // An Image without the stub has no extent to check.
        assert_eq!(pe_extent(&image(0, 8 << 20, FLAGS_4K, 16)), Ok(None));
    }
}
