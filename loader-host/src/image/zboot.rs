//! The EFI zboot header (drivers/firmware/efi/libstub/zboot-header.S, with
//! the compression names from drivers/firmware/efi/libstub/Makefile.zboot):
//!
//! ```text
//! 0x00 u32  MZ_MAGIC ("MZ\0\0")
//! 0x04 char "zimg"              image type
//! 0x08 u32  payload offset      from the start of the file
//! 0x0c u32  payload size        compressed bytes (the size trailer that
//!                               non-gzip methods append is excluded)
//! 0x10 u32  0, 0                reserved
//! 0x18 asciz compression type   "gzip", "lz4", "lzma", "lzo", "xzkern", "zstd22"
//! 0x38 u32  LINUX_PE_MAGIC
//! 0x3c u32  PE header offset    -> "PE\0\0", u16 machine
//! ```

use std::fmt;

use super::decompress::{decompress, Codec, MAX_DECOMPRESSED};
// arm64's and riscv's zboot (arch/{arm64,riscv}/boot/Makefile, EFI_ZBOOT)
// write these COFF machines.
use super::pe::{self, machine_name, MACHINE_ARM64, MACHINE_RISCV64};
use super::{Host, ImageError, KernelFormat, KernelImage};
use crate::fields::le32;
use crate::input::Blob;

/// zboot-header.S: the image type at 0x04 that tells zboot from a plain
/// EFI-stub Image.
pub const IMAGE_TYPE: [u8; 4] = *b"zimg";
const IMAGE_TYPE_AT: usize = 4;
const PAYLOAD_OFFSET_AT: usize = 8;
const PAYLOAD_SIZE_AT: usize = 12;
const COMP_TYPE_AT: usize = 0x18;
/// `.org .Ldoshdr + 0x38` ends the compression-type field.
const COMP_TYPE_END: usize = 0x38;
const PE_OFFSET_AT: usize = 0x3c;
/// Bytes needed to read every fixed field.
const HEADER_LEN: usize = 0x40;
/// PE/COFF signature.
const PE_MAGIC: [u8; 4] = *b"PE\0\0";

/// A checked zboot header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZbootHeader {
    /// 0x08: where the compressed payload starts in the file.
    pub payload_offset: u32,
    /// 0x0c: compressed bytes (without the size trailer non-gzip methods
    /// append).
    pub payload_size: u32,
    /// As written in the header, e.g. "gzip" or "zstd22".
    pub compression: String,
    /// The PE header's COFF Machine.
    pub machine: u16,
}

/// Why a file with the zboot signature cannot be unpacked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZbootError {
    /// Shorter than the 0x40 bytes of fixed fields.
    TooShort {
        /// The file's length in bytes.
        len: usize,
    },
    /// Compression-type field has no NUL before 0x38 or is not ASCII.
    BadCompressionField,
    /// Payload lies outside the file.
    PayloadOutOfBounds {
        /// The header's payload offset.
        offset: u32,
        /// The header's payload size.
        size: u32,
        /// The file's length in bytes.
        file: usize,
    },
    /// PE header offset at 0x3c does not lead to "PE\0\0".
    BadPeHeader {
        /// The offset read at 0x3c.
        offset: u32,
    },
    /// A zboot image for another architecture.
    WrongMachine {
        /// The COFF Machine.
        machine: u16,
    },
    /// The PE machine names one architecture, the Image inside is another's.
    PayloadArch {
        /// The COFF Machine.
        machine: u16,
        /// The ELF machine of the decompressed Image.
        payload: u16,
    },
    /// A compression this loader does not decode.
    UnsupportedCompression {
        /// The compression type as the header names it.
        name: String,
    },
}

impl fmt::Display for ZbootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let z = "EFI zboot header (zboot-header.S)";
        match self {
            Self::TooShort { len } => write!(f, "{z}: file is {len} bytes, shorter than the {HEADER_LEN}-byte header"),
            Self::BadCompressionField => {
                write!(f, "{z}: compression type at 0x18 is not a NUL-terminated ASCII string before 0x38")
            }
            Self::PayloadOutOfBounds { offset, size, file } => write!(
                f,
                "{z}: payload offset {offset:#x} + size {size:#x} (at 0x08/0x0c) runs past the end of the {file}-byte file"
            ),
            Self::BadPeHeader { offset } => {
                write!(f, "{z}: PE header offset {offset:#x} (at 0x3c) does not point at a \"PE\\0\\0\" signature")
            }
            Self::WrongMachine { machine } => write!(
                f,
                "{z}: PE machine type is {machine:#06x} ({}), not one this loader boots from EFI zboot (arm64 {MACHINE_ARM64:#06x}, riscv64 {MACHINE_RISCV64:#06x})",
                machine_name(*machine)
            ),
            Self::PayloadArch { machine, payload } => write!(
                f,
                "{z}: PE machine type {machine:#06x} ({}) but the payload is an {} Image",
                machine_name(*machine),
                kexec_purgatory::elf::machine_name(*payload).unwrap_or("unknown")
            ),
            Self::UnsupportedCompression { name } => write!(
                f,
                "{z}: payload compression \"{name}\" is not supported (this loader decodes gzip and zstd)"
            ),
        }
    }
}

impl std::error::Error for ZbootError {}

fn word(b: &[u8], at: usize) -> u32 {
    // parse() checked the 0x40-byte header is there.
    le32(b, at).unwrap_or(0)
}

/// "MZ" at 0 and "zimg" at 4.
pub fn is_zboot(bytes: &[u8]) -> bool {
    bytes.starts_with(b"MZ") && bytes.get(IMAGE_TYPE_AT..IMAGE_TYPE_AT + 4) == Some(&IMAGE_TYPE[..])
}

impl ZbootHeader {
    /// Parse the header of a file for which `is_zboot` holds.
    pub fn parse(file: &[u8]) -> Result<Self, ZbootError> {
        if file.len() < HEADER_LEN {
            return Err(ZbootError::TooShort { len: file.len() });
        }
        let field = &file[COMP_TYPE_AT..COMP_TYPE_END];
        // zboot-header.S: `.asciz COMP_TYPE`, then `.org .Ldoshdr + 0x38`.
        let nul = field.iter().position(|&b| b == 0).ok_or(ZbootError::BadCompressionField)?;
        let compression = std::str::from_utf8(&field[..nul])
            .ok()
            .filter(|s| s.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or(ZbootError::BadCompressionField)?
            .to_string();

        let payload_offset = word(file, PAYLOAD_OFFSET_AT);
        let payload_size = word(file, PAYLOAD_SIZE_AT);
        let end = u64::from(payload_offset) + u64::from(payload_size);
        if end > file.len() as u64 {
            return Err(ZbootError::PayloadOutOfBounds {
                offset: payload_offset,
                size: payload_size,
                file: file.len(),
            });
        }

        // zboot-header.S `.Lpehdr: .long PE_MAGIC; .short MACHINE_TYPE`.
        let pe = word(file, PE_OFFSET_AT);
        let pe_at = pe as usize;
        let sig = file.get(pe_at..pe_at.saturating_add(6)).ok_or(ZbootError::BadPeHeader { offset: pe })?;
        if sig[..4] != PE_MAGIC {
            return Err(ZbootError::BadPeHeader { offset: pe });
        }
        let machine = u16::from_le_bytes([sig[4], sig[5]]);
        Ok(ZbootHeader { payload_offset, payload_size, compression, machine })
    }

    /// The compressed payload (bounds checked in `parse`).
    pub fn payload<'a>(&self, file: &'a [u8]) -> &'a [u8] {
        let start = self.payload_offset as usize;
        file.get(start..start + self.payload_size as usize).unwrap_or(&[])
    }

    /// The ELF machine of the PE machine type, for those this loader
    /// boots from zboot (x86 kernels are bzImages, not zboot).
    pub fn elf_machine(&self) -> Result<u16, ZbootError> {
        match self.machine {
            MACHINE_ARM64 | MACHINE_RISCV64 => pe::elf_machine(self.machine),
            _ => None,
        }
        .ok_or(ZbootError::WrongMachine { machine: self.machine })
    }

    /// Makefile.zboot: comp-type-$(CONFIG_KERNEL_GZIP) := gzip,
    /// comp-type-$(CONFIG_KERNEL_ZSTD) := zstd22 (older trees and other
    /// builders write "zstd").
    pub fn codec(&self) -> Result<Codec, ZbootError> {
        match self.compression.as_str() {
            "gzip" => Ok(Codec::Gzip),
            "zstd" | "zstd22" => Ok(Codec::Zstd),
            other => Err(ZbootError::UnsupportedCompression { name: other.to_string() }),
        }
    }
}

/// The format: EFI zboot ("MZ" at 0, "zimg" at 4), payload gzip or zstd.
pub struct Zboot;

impl KernelFormat for Zboot {
    fn names(&self) -> &'static [&'static str] {
        // "vmlinuz": kexec-tools' arm64 name (v2.0.27+, kexec-arm64.c file_type[]).
        &["zimg", "zboot", "vmlinuz.efi", "vmlinuz"]
    }
    fn describe(&self) -> &'static str {
        "EFI zboot (\"MZ\" + \"zimg\" at 0)"
    }
    fn probe(&self, file: &[u8]) -> bool {
        is_zboot(file)
    }
    fn machine_hint(&self, head: &[u8]) -> Option<u16> {
        ZbootHeader::parse(head).ok()?.elf_machine().ok()
    }
    fn parse(&self, file: Blob, host: Host) -> Result<KernelImage, ImageError> {
        let header = ZbootHeader::parse(&file).map_err(ImageError::Zboot)?;
        // Refuse other architectures before spending time decompressing.
        let machine = header.elf_machine().map_err(ImageError::Zboot)?;
        let codec = header.codec().map_err(ImageError::Zboot)?;
        let format = match codec {
            Codec::Gzip => "EFI zboot (gzip)",
            Codec::Zstd => "EFI zboot (zstd)",
        };
        let image = decompress(codec, header.payload(&file), MAX_DECOMPRESSED, "EFI zboot payload")
            .map_err(ImageError::Decompress)?;
        let wrap = |e| ImageError::Payload { format, inner: Box::new(e) };
        let kernel = super::raw_image(Blob::new(image), format, host).map_err(wrap)?;
        // The PE machine and the Image inside must agree.
        if kernel.machine != machine {
            return Err(ImageError::Zboot(ZbootError::PayloadArch {
                machine: header.machine,
                payload: kernel.machine,
            }));
        }
        Ok(kernel)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A synthetic zboot file wrapping `payload`, laid out as
    /// zboot-header.S does (PE header at 0x40, payload after a gap).
    pub(crate) fn zboot(compression: &str, machine: u16, payload: &[u8]) -> Vec<u8> {
        let payload_at = 0x200usize;
        let mut v = vec![0u8; payload_at];
        v[0..4].copy_from_slice(&0x5a4du32.to_le_bytes());
        v[4..8].copy_from_slice(b"zimg");
        v[8..12].copy_from_slice(&(payload_at as u32).to_le_bytes());
        v[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        v[0x18..0x18 + compression.len()].copy_from_slice(compression.as_bytes());
        v[0x38..0x3c].copy_from_slice(b"\xcd\x23\x82\x81");
        v[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        v[0x40..0x44].copy_from_slice(b"PE\0\0");
        v[0x44..0x46].copy_from_slice(&machine.to_le_bytes());
        v.extend_from_slice(payload);
        // Non-gzip methods append a le32 size the header excludes.
        v.extend_from_slice(&0x1234u32.to_le_bytes());
        v
    }

    #[test]
    fn header_fields_are_read_at_the_documented_offsets() {
        let f = zboot("zstd22", MACHINE_ARM64, b"payload!");
        assert!(is_zboot(&f));
        let h = ZbootHeader::parse(&f).unwrap();
        assert_eq!(
            h,
            ZbootHeader { payload_offset: 0x200, payload_size: 8, compression: "zstd22".into(), machine: 0xaa64 }
        );
        assert_eq!(h.payload(&f), b"payload!");
        assert_eq!(h.codec().unwrap(), Codec::Zstd);
        assert_eq!(h.elf_machine(), Ok(kexec_purgatory::elf::EM_AARCH64));
    }

    #[test]
    fn other_compressions_are_named() {
        for name in ["lzma", "xzkern", "lz4", "lzo"] {
            let h = ZbootHeader::parse(&zboot(name, MACHINE_ARM64, b"x")).unwrap();
            let err = h.codec().unwrap_err();
            assert!(err.to_string().contains(&format!("\"{name}\" is not supported")), "{err}");
        }
    }

    #[test]
    fn malformed_headers_are_refused() {
        let mut f = zboot("gzip", MACHINE_ARM64, b"abc");
        f[12..16].copy_from_slice(&0x10_0000u32.to_le_bytes());
        assert!(matches!(ZbootHeader::parse(&f), Err(ZbootError::PayloadOutOfBounds { .. })));

        let mut f = zboot("gzip", MACHINE_ARM64, b"abc");
        f[0x18..0x38].fill(b'a');
        assert_eq!(ZbootHeader::parse(&f), Err(ZbootError::BadCompressionField));

        let mut f = zboot("gzip", MACHINE_ARM64, b"abc");
        f[0x3c..0x40].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(matches!(ZbootHeader::parse(&f), Err(ZbootError::BadPeHeader { .. })));

        assert!(matches!(ZbootHeader::parse(&f[..0x20]), Err(ZbootError::TooShort { len: 0x20 })));

        let h = ZbootHeader::parse(&zboot("gzip", 0x8664, b"abc")).unwrap();
        let err = h.elf_machine().unwrap_err();
        assert!(err.to_string().contains("x86_64"), "{err}");
        assert_eq!(
            ZbootHeader::parse(&zboot("gzip", MACHINE_RISCV64, b"abc")).unwrap().elf_machine(),
            Ok(kexec_purgatory::elf::EM_RISCV)
        );
    }
}
