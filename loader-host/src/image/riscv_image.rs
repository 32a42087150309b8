//! The raw riscv64 `Image` (Documentation/arch/riscv/boot-image-header.rst):
//! its 64-byte little-endian header, and the format module that loads it.
//! Debian ships it as `/boot/vmlinux-*` although it is no ELF (docs/riscv64.md).
//!
//! ```text
//! 0x00 u32 code0        "MZ" + `c.li s4,-13` with an EFI stub
//! 0x04 u32 code1        jump to the real entry
//! 0x08 u64 text_offset  Image load offset from the start of RAM
//! 0x10 u64 image_size   effective Image size (bss included)
//! 0x18 u64 flags        bit 0: 1 = big-endian
//! 0x20 u32 version      major in bits 31:16, minor in 15:0
//! 0x24 u32 res1
//! 0x28 u64 res2
//! 0x30 u64 magic        "RISCV\0\0\0" (deprecated)
//! 0x38 u32 magic2       "RSC\x05" (since version 0.2)
//! 0x3c u32 res3         PE header offset (EFI stub)
//! ```

use std::fmt;

use kexec_purgatory::elf::EM_RISCV;

use super::{Host, ImageError, ImageKernel, Kernel, KernelFormat, KernelImage};
use crate::fields::{le32, le64};
use crate::input::Blob;
use crate::range::PAGE;

/// Bytes in the header.
pub const HEADER_LEN: usize = 64;
/// boot-image-header.rst: `magic2 = 0x05435352` ("RSC\x05"), little endian,
/// at 0x38 — the field that identifies the header from version 0.2 on.
pub const MAGIC2: [u8; 4] = *b"RSC\x05";
/// Where [`MAGIC2`] sits in the header.
pub const MAGIC2_OFFSET: usize = 0x38;
const TEXT_OFFSET_AT: usize = 0x08;
const IMAGE_SIZE_AT: usize = 0x10;
const FLAGS_AT: usize = 0x18;
const VERSION_AT: usize = 0x20;
/// boot-image-header.rst: version 0.2 introduced `magic2`; kexec-tools'
/// riscv_header_check_magic (kexec/arch/riscv/image-header.h) requires at
/// least it.
pub const MIN_VERSION: u32 = 2;
/// boot-image-header.rst flags bit 0: "Kernel endianness. 1 if BE, 0 if LE."
pub const FLAG_BE: u64 = 1 << 0;
/// The largest text_offset taken as an alignment: a PUD (1 GiB) is the
/// largest mapping a riscv64 kernel could ask its base to be aligned to.
const MAX_TEXT_OFFSET: u64 = 1 << 30;

/// A parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RiscvHeader {
    /// text_offset (0x08): the Image's load offset from the start of RAM,
    /// taken as its alignment (see `dtb_boot::TextOffset::Alignment`).
    pub text_offset: u64,
    /// image_size (0x10): bytes the kernel occupies, bss included.
    pub image_size: u64,
    /// flags (0x18): bit 0 is the endianness.
    pub flags: u64,
    /// version (0x20): major in bits 31:16, minor in 15:0.
    pub version: u32,
}

/// Why a buffer is not a usable riscv64 Image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RiscvHeaderError {
    /// Shorter than the 64-byte header.
    TooShort {
        /// The file's length in bytes.
        len: usize,
    },
    /// No "RSC\x05" at 0x38.
    BadMagic {
        /// The 4 bytes at 0x38.
        found: [u8; 4],
    },
    /// version < 0.2: a header without `magic2` (the bytes at 0x38 match by
    /// accident, or the header is damaged).
    OldVersion {
        /// The header's version field.
        version: u32,
    },
    /// image_size 0: kexec-tools (kexec-image-riscv.c) and the kernel's own
    /// Image loader (arch/riscv/kernel/kexec_image.c) refuse it.
    NoImageSize,
    /// flags bit 0 set: a big-endian kernel.
    BigEndian,
    /// text_offset is not 0 or a power of two between 4 KiB and 1 GiB.
    TextOffset {
        /// The header's text_offset.
        text_offset: u64,
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

impl fmt::Display for RiscvHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = "riscv64 Image header";
        match self {
            Self::TooShort { len } => write!(
                f,
                "{h}: file is {len} bytes, shorter than the {HEADER_LEN}-byte header (boot-image-header.rst)"
            ),
            Self::BadMagic { found } => write!(
                f,
                "{h}: magic2 at 0x38 is {} instead of \"RSC\\x05\" (52 53 43 05, boot-image-header.rst)",
                crate::fields::magic_hex(found)
            ),
            Self::OldVersion { version } => write!(
                f,
                "{h}: version (0x20) is {}.{}, older than 0.2, the first with magic2 (boot-image-header.rst)",
                version >> 16,
                version & 0xffff
            ),
            Self::NoImageSize => write!(
                f,
                "{h}: image_size (0x10) is 0; boot-image-header.rst makes it mandatory for a boot loader"
            ),
            Self::BigEndian => {
                write!(f, "{h}: flags bit 0 is set: big-endian kernel, this loader runs little-endian")
            }
            Self::TextOffset { text_offset } => write!(
                f,
                "{h}: text_offset (0x08) {text_offset:#x} is not a power of two between 4 KiB and 1 GiB; kexec aligns the Image's base to it (arch/riscv/kernel/kexec_image.c)"
            ),
            Self::BadPeHeader { offset } => write!(
                f,
                "riscv64 Image EFI stub: the PE header offset at 0x3c ({offset:#x}) does not lead to a \"PE\\0\\0\" header and section table inside the file (truncated, or not an Image)"
            ),
            Self::Truncated { file, needed } => write!(
                f,
                "riscv64 Image is {file} bytes but its EFI stub's PE section table places data up to {needed}: the file is truncated"
            ),
        }
    }
}

impl std::error::Error for RiscvHeaderError {}

/// Whether `bytes` carries the riscv Image's magic2.
pub fn has_magic(bytes: &[u8]) -> bool {
    bytes.get(MAGIC2_OFFSET..MAGIC2_OFFSET + 4) == Some(&MAGIC2[..])
}

/// Parse and check the header of a raw riscv64 Image.
pub fn parse_header(image: &[u8]) -> Result<RiscvHeader, RiscvHeaderError> {
    if image.len() < HEADER_LEN {
        return Err(RiscvHeaderError::TooShort { len: image.len() });
    }
    if !has_magic(image) {
        let found = crate::fields::array(image, MAGIC2_OFFSET).unwrap_or([0; 4]);
        return Err(RiscvHeaderError::BadMagic { found });
    }
    // parse_header checked the 64-byte header is there.
    let field = |at| le64(image, at).unwrap_or(0);
    let h = RiscvHeader {
        text_offset: field(TEXT_OFFSET_AT),
        image_size: field(IMAGE_SIZE_AT),
        flags: field(FLAGS_AT),
        version: le32(image, VERSION_AT).unwrap_or(0),
    };
    if h.version < MIN_VERSION {
        return Err(RiscvHeaderError::OldVersion { version: h.version });
    }
    if h.image_size == 0 {
        return Err(RiscvHeaderError::NoImageSize);
    }
    if h.flags & FLAG_BE != 0 {
        return Err(RiscvHeaderError::BigEndian);
    }
    let t = h.text_offset;
    if t != 0 && !(t.is_power_of_two() && (PAGE..=MAX_TEXT_OFFSET).contains(&t)) {
        return Err(RiscvHeaderError::TextOffset { text_offset: t });
    }
    Ok(h)
}

/// The raw Image as an [`ImageKernel`], for this format and the ones that
/// wrap it (Image.gz, EFI zboot).
pub fn kernel_from_raw(data: Blob, format: &'static str, _host: Host) -> Result<KernelImage, ImageError> {
    let err = ImageError::Riscv;
    let h = parse_header(&data).map_err(err)?;
    let pe = super::pe_stub::extent(&data).map_err(|offset| err(RiscvHeaderError::BadPeHeader { offset }))?;
    if let Some(needed) = pe {
        let file = data.len() as u64;
        if file < needed {
            return Err(err(RiscvHeaderError::Truncated { file, needed }));
        }
    }
    // boot-image-header.rst: image_size is the effective size the kernel
    // occupies (bss included); never less than the file.
    let mem_size = h.image_size.max(data.len() as u64);
    let kernel = ImageKernel { data, text_offset: h.text_offset, mem_size, anywhere: false, size_estimated: false };
    Ok(KernelImage::plain(EM_RISCV, format, Kernel::Image(kernel)))
}

/// The format: a raw riscv64 Image ("RSC\x05" at 0x38).
pub struct RiscvImage;

impl KernelFormat for RiscvImage {
    fn names(&self) -> &'static [&'static str] {
        // kexec-tools' name first (kexec/arch/riscv/kexec-riscv.c file_type[]).
        &["image-riscv", "riscv64", "riscv"]
    }
    fn describe(&self) -> &'static str {
        "riscv64 Image (\"RSC\\x05\" at 0x38)"
    }
    fn probe(&self, file: &[u8]) -> bool {
        has_magic(file)
    }
    fn machine_hint(&self, _head: &[u8]) -> Option<u16> {
        Some(EM_RISCV)
    }
    fn parse(&self, file: Blob, host: Host) -> Result<KernelImage, ImageError> {
        kernel_from_raw(file, "riscv64 Image", host).map(KernelImage::as_whole_file)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A synthetic riscv64 Image: header (version 0.2) plus `body` bytes of
    /// filler, with an EFI stub when the body is large enough for one.
    pub(crate) fn image(text_offset: u64, image_size: u64, flags: u64, body: usize) -> Vec<u8> {
        let mut v = vec![0u8; HEADER_LEN + body];
        for (i, b) in v[HEADER_LEN..].iter_mut().enumerate() {
            *b = (i * 5 + 1) as u8;
        }
        v[TEXT_OFFSET_AT..TEXT_OFFSET_AT + 8].copy_from_slice(&text_offset.to_le_bytes());
        v[IMAGE_SIZE_AT..IMAGE_SIZE_AT + 8].copy_from_slice(&image_size.to_le_bytes());
        v[FLAGS_AT..FLAGS_AT + 8].copy_from_slice(&flags.to_le_bytes());
        v[VERSION_AT..VERSION_AT + 4].copy_from_slice(&MIN_VERSION.to_le_bytes());
        v[0x30..0x38].copy_from_slice(b"RISCV\0\0\0");
        v[MAGIC2_OFFSET..MAGIC2_OFFSET + 4].copy_from_slice(&MAGIC2);
        if body >= 0x80 {
            crate::image::pe_stub::tests::add_stub(&mut v, 0x106f_5a4du32.to_le_bytes(), 0x5064);
        }
        v
    }

    #[test]
    fn debian_like_header_parses() {
        let h = parse_header(&image(0x20_0000, 0x1e6_c000, 0, 4096)).unwrap();
        assert_eq!(h, RiscvHeader { text_offset: 0x20_0000, image_size: 0x1e6_c000, flags: 0, version: 2 });
        let k = kernel_from_raw(Blob::new(image(0x20_0000, 0x1e6_c000, 0, 4096)), "riscv64 Image", HOST).unwrap();
        assert_eq!(k.machine, EM_RISCV);
        let Kernel::Image(i) = k.kernel else { panic!("not an Image") };
        assert_eq!((i.text_offset, i.mem_size, i.anywhere), (0x20_0000, 0x1e6_c000, false));
    }

    const HOST: Host = Host { page_size: 4096 };

    #[test]
    fn each_header_rule_is_refused_with_the_field_named() {
        assert_eq!(parse_header(&[0u8; 63]), Err(RiscvHeaderError::TooShort { len: 63 }));
        let mut img = image(0x20_0000, 1 << 24, 0, 0);
        img[MAGIC2_OFFSET + 3] = 4;
        assert!(parse_header(&img).unwrap_err().to_string().contains("52 53 43 04"));
        let mut img = image(0x20_0000, 1 << 24, 0, 0);
        img[VERSION_AT..VERSION_AT + 4].copy_from_slice(&1u32.to_le_bytes());
        let e = parse_header(&img).unwrap_err();
        assert_eq!(e, RiscvHeaderError::OldVersion { version: 1 });
        assert!(e.to_string().contains("version (0x20) is 0.1"), "{e}");
        let e = parse_header(&image(0x20_0000, 0, 0, 0)).unwrap_err();
        assert!(e.to_string().contains("image_size (0x10) is 0"), "{e}");
        let e = parse_header(&image(0x20_0000, 1 << 24, FLAG_BE, 0)).unwrap_err();
        assert_eq!(e, RiscvHeaderError::BigEndian);
        for bad in [0x800, 0x30_0000, 1 << 31, u64::MAX] {
            let e = parse_header(&image(bad, 1 << 24, 0, 0)).unwrap_err();
            assert_eq!(e, RiscvHeaderError::TextOffset { text_offset: bad });
        }
        assert!(parse_header(&image(0, 1 << 24, 0, 0)).is_ok(), "text_offset 0: the 2 MiB rule alone");
    }

    #[test]
    fn truncated_efi_stub_images_are_refused() {
        let img = image(0x20_0000, 8 << 20, 0, 0x1000);
        let cut = Blob::new(img[..0x800].to_vec());
        let err = kernel_from_raw(cut, "riscv64 Image", HOST).unwrap_err();
        assert_eq!(
            err.to_string(),
            "riscv64 Image is 2048 bytes but its EFI stub's PE section table places data up to 4160: the file is truncated"
        );
        let tiny = Blob::new(img[..100].to_vec());
        let err = kernel_from_raw(tiny, "riscv64 Image", HOST).unwrap_err();
        assert!(err.to_string().contains("PE header offset at 0x3c (0x40) does not lead"), "{err}");
    }
}
