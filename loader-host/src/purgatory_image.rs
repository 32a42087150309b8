//! The purgatory images this loader embeds, and filling in their parameter
//! block (docs/abi.md).

use kexec_purgatory::abi::{
    ImageHeader, PurgatoryParams, ABI_VERSION, ARCH_AARCH64, IMAGE_FLAG_POSITION_INDEPENDENT, IMAGE_MAGIC,
};

/// The aarch64 purgatory as a flat, position-independent image.
pub static AARCH64_FLAT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/purgatory-aarch64.bin"));
/// The same image as an ELF with symbols (`PURGATORY_PARAMS`, `_start`).
pub static AARCH64_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/purgatory-aarch64.elf"));

/// Why a purgatory image cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageError {
    TooSmall(usize),
    Magic,
    AbiVersion(u32),
    Arch { expected: u32, found: u32 },
    NotPositionIndependent,
    /// A header field points outside the image.
    Field(&'static str),
}

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooSmall(n) => write!(f, "purgatory image is {n} bytes, smaller than its 96-byte header"),
            Self::Magic => write!(f, "purgatory image header: magic is not RKXPURG"),
            Self::AbiVersion(v) => write!(f, "purgatory image header: abi_version {v} is not {ABI_VERSION}"),
            Self::Arch { expected, found } => {
                write!(f, "purgatory image header: arch {found}, this loader needs {expected}")
            }
            Self::NotPositionIndependent => write!(f, "purgatory image header: not position independent"),
            Self::Field(name) => write!(f, "purgatory image header: {name} lies outside the image"),
        }
    }
}

impl std::error::Error for ImageError {}

/// A checked purgatory image.
#[derive(Debug, Clone)]
pub struct PurgatoryImage<'a> {
    pub bytes: &'a [u8],
    pub header: ImageHeader,
}

impl<'a> PurgatoryImage<'a> {
    /// Check the header of a flat image built for `arch`.
    pub fn parse(bytes: &'a [u8], arch: u32) -> Result<Self, ImageError> {
        let header = ImageHeader::parse(bytes).ok_or(ImageError::TooSmall(bytes.len()))?;
        if header.magic != IMAGE_MAGIC {
            return Err(ImageError::Magic);
        }
        if header.abi_version != ABI_VERSION {
            return Err(ImageError::AbiVersion(header.abi_version));
        }
        if header.arch != arch {
            return Err(ImageError::Arch { expected: arch, found: header.arch });
        }
        if header.flags & IMAGE_FLAG_POSITION_INDEPENDENT == 0 {
            return Err(ImageError::NotPositionIndependent);
        }
        let len = bytes.len() as u64;
        if header.image_size != len {
            return Err(ImageError::Field("image_size"));
        }
        if header.mem_size < header.image_size {
            return Err(ImageError::Field("mem_size"));
        }
        if header.entry_offset >= len {
            return Err(ImageError::Field("entry_offset"));
        }
        let params_end = header.params_offset.checked_add(header.params_size);
        if header.params_size < std::mem::size_of::<PurgatoryParams>() as u64 || params_end.is_none_or(|e| e > len) {
            return Err(ImageError::Field("params_offset/params_size"));
        }
        Ok(Self { bytes, header })
    }

    /// The embedded aarch64 image.
    pub fn aarch64() -> Result<PurgatoryImage<'static>, ImageError> {
        PurgatoryImage::parse(AARCH64_FLAT, ARCH_AARCH64)
    }

    /// A copy of the image with `params` written into its parameter block.
    pub fn with_params(&self, params: &PurgatoryParams) -> Vec<u8> {
        let mut out = self.bytes.to_vec();
        let off = self.header.params_offset as usize;
        let bytes = params.to_bytes();
        out[off..off + bytes.len()].copy_from_slice(&bytes);
        out
    }

    /// Bytes of memory the loaded image needs (memsz), page-rounded.
    pub fn mem_size(&self) -> u64 {
        self.header.mem_size.next_multiple_of(4096)
    }
}
