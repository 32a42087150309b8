//! The PE/COFF section table (Microsoft PE format: "MS-DOS Stub", "COFF
//! File Header", "Section Table"), enough to find a unified kernel image's
//! sections by name. Every offset and size read from the file is checked
//! against the file before a byte of a section is used.

use std::fmt;

use crate::fields::{le16, le32};
use crate::input::Blob;

/// "MZ" (the MS-DOS stub's signature).
pub const MZ: [u8; 2] = *b"MZ";
/// The DOS stub's field holding the PE header's offset.
const E_LFANEW_AT: usize = 0x3c;
const PE_SIGNATURE: [u8; 4] = *b"PE\0\0";
/// COFF file header (after the signature): Machine u16, NumberOfSections
/// u16, TimeDateStamp u32, PointerToSymbolTable u32, NumberOfSymbols u32,
/// SizeOfOptionalHeader u16, Characteristics u16.
const COFF_HEADER_LEN: usize = 20;
/// One section header: Name[8], VirtualSize, VirtualAddress, SizeOfRawData,
/// PointerToRawData, PointerToRelocations, PointerToLinenumbers (u32 each),
/// NumberOfRelocations, NumberOfLinenumbers (u16), Characteristics (u32).
const SECTION_HEADER_LEN: usize = 40;
/// PE format: "the Windows loader limits the number of sections to 96".
pub const MAX_SECTIONS: usize = 96;

/// COFF Machine IMAGE_FILE_MACHINE_AMD64 (PE format, "Machine Types").
pub const MACHINE_X86_64: u16 = 0x8664;
/// COFF Machine IMAGE_FILE_MACHINE_ARM64.
pub const MACHINE_ARM64: u16 = 0xaa64;
/// COFF Machine IMAGE_FILE_MACHINE_RISCV64.
pub const MACHINE_RISCV64: u16 = 0x5064;

/// The ELF machine of the architecture a COFF Machine names, for those
/// with kernels this loader boots.
pub fn elf_machine(coff_machine: u16) -> Option<u16> {
    use kexec_purgatory::elf::{EM_AARCH64, EM_RISCV, EM_X86_64};
    match coff_machine {
        MACHINE_X86_64 => Some(EM_X86_64),
        MACHINE_ARM64 => Some(EM_AARCH64),
        MACHINE_RISCV64 => Some(EM_RISCV),
        _ => None,
    }
}

/// The PE format's name of a COFF Machine, for messages.
pub fn machine_name(m: u16) -> &'static str {
    match m {
        MACHINE_X86_64 => "x86_64",
        MACHINE_RISCV64 => "riscv64",
        0x6264 => "loongarch64",
        0x01c4 => "arm (thumb-2)",
        MACHINE_ARM64 => "arm64",
        _ => "unknown",
    }
}

/// Why a file is not a PE image whose sections can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeError {
    /// No "MZ" at 0, or the file ends before e_lfanew (0x3c).
    NotPe,
    /// e_lfanew (0x3c) points outside the file or not at "PE\0\0".
    BadHeaderOffset {
        /// e_lfanew.
        offset: u32,
    },
    /// NumberOfSections is above [`MAX_SECTIONS`].
    TooManySections {
        /// NumberOfSections.
        count: usize,
    },
    /// The section table runs past the end of the file.
    TableTruncated {
        /// The file offset the COFF header or section table ends at.
        end: usize,
        /// The file's length in bytes.
        file: usize,
    },
    /// A section's raw data runs past the end of the file.
    SectionTruncated {
        /// The section's name.
        name: String,
        /// PointerToRawData.
        offset: u32,
        /// SizeOfRawData.
        size: u32,
        /// The file's length in bytes.
        file: usize,
    },
    /// VirtualSize is larger than the data the file holds for the section.
    SectionShort {
        /// The section's name.
        name: String,
        /// VirtualSize.
        virtual_size: u32,
        /// SizeOfRawData.
        raw_size: u32,
    },
}

impl fmt::Display for PeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pe = "PE/COFF";
        match self {
            Self::NotPe => write!(f, "{pe}: no \"MZ\" signature at 0"),
            Self::BadHeaderOffset { offset } => {
                write!(f, "{pe}: the header offset at 0x3c ({offset:#x}) does not point at a \"PE\\0\\0\" signature")
            }
            Self::TooManySections { count } => {
                write!(f, "{pe}: NumberOfSections is {count}, more than the format's limit of {MAX_SECTIONS}")
            }
            Self::TableTruncated { end, file } => {
                write!(f, "{pe}: the section table ends at {end:#x}, past the end of the {file}-byte file (truncated?)")
            }
            Self::SectionTruncated { name, offset, size, file } => write!(
                f,
                "{pe}: section {} (PointerToRawData {offset:#x} + SizeOfRawData {size:#x}) runs past the end of the {file}-byte file (truncated?)",
                crate::escape::text(name)
            ),
            Self::SectionShort { name, virtual_size, raw_size } => write!(
                f,
                "{pe}: section {} has VirtualSize {virtual_size:#x} but only {raw_size:#x} bytes in the file",
                crate::escape::text(name)
            ),
        }
    }
}

impl std::error::Error for PeError {}

/// One section header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The name, NULs removed (".linux", ".cmdline").
    pub name: String,
    /// VirtualSize: the section's size in memory (its data's exact length
    /// in a UKI).
    pub virtual_size: u32,
    /// VirtualAddress: its address relative to the image base.
    pub virtual_address: u32,
    /// SizeOfRawData: bytes in the file, rounded up to FileAlignment.
    pub raw_size: u32,
    /// PointerToRawData: the file offset of its data.
    pub raw_offset: u32,
}

/// A PE file's machine and sections, in table order.
#[derive(Debug, Clone)]
pub struct Pe {
    /// The COFF header's Machine (`MACHINE_*`).
    pub machine: u16,
    /// The section headers, each checked to lie inside the file.
    pub sections: Vec<Section>,
}

/// Whether `file` starts like a PE image (MZ, and "PE\0\0" where 0x3c says).
pub fn is_pe(file: &[u8]) -> bool {
    pe_offset(file).is_ok()
}

fn pe_offset(file: &[u8]) -> Result<usize, PeError> {
    if !file.starts_with(&MZ) {
        return Err(PeError::NotPe);
    }
    let off = le32(file, E_LFANEW_AT).ok_or(PeError::NotPe)?;
    let at = off as usize;
    match file.get(at..at.saturating_add(4)) {
        Some(sig) if sig == PE_SIGNATURE => Ok(at),
        _ => Err(PeError::BadHeaderOffset { offset: off }),
    }
}

impl Pe {
    /// Read the headers and the section table; every section's raw data is
    /// checked to lie inside the file.
    pub fn parse(file: &[u8]) -> Result<Pe, PeError> {
        let pe = Pe::section_table(file)?;
        for s in &pe.sections {
            let data_end = u64::from(s.raw_offset) + u64::from(s.raw_size);
            if data_end > file.len() as u64 {
                return Err(PeError::SectionTruncated {
                    name: s.name.clone(),
                    offset: s.raw_offset,
                    size: s.raw_size,
                    file: file.len(),
                });
            }
        }
        Ok(pe)
    }

    /// Read the headers and the section table only (which must lie inside
    /// `file`), without looking at the sections' data: what a format
    /// probe on a file's first bytes can see.
    pub fn section_table(file: &[u8]) -> Result<Pe, PeError> {
        let at = pe_offset(file)?;
        let coff = at + PE_SIGNATURE.len();
        let field16 = |o: usize| le16(file, coff + o);
        let (Some(machine), Some(count), Some(opt_len)) = (field16(0), field16(2), field16(16)) else {
            return Err(PeError::TableTruncated { end: coff + COFF_HEADER_LEN, file: file.len() });
        };
        let count = usize::from(count);
        if count > MAX_SECTIONS {
            return Err(PeError::TooManySections { count });
        }
        let table = coff + COFF_HEADER_LEN + usize::from(opt_len);
        let end = table + count * SECTION_HEADER_LEN;
        if end > file.len() {
            return Err(PeError::TableTruncated { end, file: file.len() });
        }
        let mut sections = Vec::with_capacity(count);
        for i in 0..count {
            let h = &file[table + i * SECTION_HEADER_LEN..table + (i + 1) * SECTION_HEADER_LEN];
            let name = String::from_utf8_lossy(&h[..8]).trim_end_matches('\0').to_string();
            let word = |o: usize| le32(h, o).unwrap_or(0);
            let s = Section {
                name,
                virtual_size: word(8),
                virtual_address: word(12),
                raw_size: word(16),
                raw_offset: word(20),
            };
            sections.push(s);
        }
        Ok(Pe { machine, sections })
    }

    /// The first section called `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

impl Section {
    /// The section's bytes: VirtualSize of them (the data's exact length;
    /// SizeOfRawData is rounded up to FileAlignment with zeros), or all of
    /// SizeOfRawData when VirtualSize is 0. kexec-tools' uki loader uses
    /// VirtualSize too since e18a71f (padding broke a signed bzImage's
    /// signature check).
    pub fn data(&self, file: &Blob) -> Result<Blob, PeError> {
        let len = match self.virtual_size {
            0 => self.raw_size,
            v if v > self.raw_size => {
                return Err(PeError::SectionShort { name: self.name.clone(), virtual_size: v, raw_size: self.raw_size })
            }
            v => v,
        };
        let start = self.raw_offset as usize;
        file.slice(start..start + len as usize).ok_or(PeError::SectionTruncated {
            name: self.name.clone(),
            offset: self.raw_offset,
            size: self.raw_size,
            file: file.len(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A PE file with `sections` (name, data), laid out like ukify does:
    /// headers, then each section's data at a 0x200 file alignment.
    pub(crate) fn pe_file(machine: u16, sections: &[(&str, &[u8])]) -> Vec<u8> {
        let pe_at = 0x80usize;
        let opt_len = 0xf0usize;
        let table = pe_at + 4 + COFF_HEADER_LEN + opt_len;
        let mut data_at = (table + sections.len() * SECTION_HEADER_LEN).next_multiple_of(0x200);
        let mut f = vec![0u8; data_at];
        f[..2].copy_from_slice(&MZ);
        f[E_LFANEW_AT..E_LFANEW_AT + 4].copy_from_slice(&(pe_at as u32).to_le_bytes());
        f[pe_at..pe_at + 4].copy_from_slice(&PE_SIGNATURE);
        let coff = pe_at + 4;
        f[coff..coff + 2].copy_from_slice(&machine.to_le_bytes());
        f[coff + 2..coff + 4].copy_from_slice(&(sections.len() as u16).to_le_bytes());
        f[coff + 16..coff + 18].copy_from_slice(&(opt_len as u16).to_le_bytes());
        for (i, (name, data)) in sections.iter().enumerate() {
            let h = table + i * SECTION_HEADER_LEN;
            let mut n = [0u8; 8];
            n[..name.len()].copy_from_slice(name.as_bytes());
            f[h..h + 8].copy_from_slice(&n);
            let raw = data.len().next_multiple_of(0x200);
            for (o, v) in [(8, data.len()), (12, 0x1000 * (i + 1)), (16, raw), (20, data_at)] {
                f[h + o..h + o + 4].copy_from_slice(&(v as u32).to_le_bytes());
            }
            f.resize(data_at + raw, 0);
            f[data_at..data_at + data.len()].copy_from_slice(data);
            data_at += raw;
        }
        f
    }

    #[test]
    fn sections_are_found_and_sized_by_virtual_size() {
        let f = Blob::new(pe_file(MACHINE_X86_64, &[(".text", b"code"), (".cmdline", b"quiet\0")]));
        let pe = Pe::parse(&f).unwrap();
        assert_eq!(pe.machine, MACHINE_X86_64);
        assert_eq!(pe.sections.len(), 2);
        let c = pe.section(".cmdline").unwrap();
        assert_eq!(&c.data(&f).unwrap()[..], b"quiet\0", "VirtualSize, not the 0x200 raw size");
        assert!(pe.section(".linux").is_none());
    }

    #[test]
    fn truncation_and_bad_headers_are_refused() {
        let full = pe_file(MACHINE_ARM64, &[(".linux", &[7u8; 3000])]);
        let cut = &full[..full.len() - 100];
        let err = Pe::parse(cut).unwrap_err();
        assert!(err.to_string().contains("section .linux") && err.to_string().contains("truncated"), "{err}");
        let err = Pe::parse(&full[..0x100]).unwrap_err();
        assert!(matches!(err, PeError::TableTruncated { .. }), "{err}");
        let mut bad = full.clone();
        bad[E_LFANEW_AT] = 0x90;
        assert!(matches!(Pe::parse(&bad).unwrap_err(), PeError::BadHeaderOffset { offset: 0x90 }));
        assert_eq!(Pe::parse(b"ELF").unwrap_err(), PeError::NotPe);
        // VirtualSize beyond the raw data.
        let mut short = full;
        let h = 0x80 + 4 + COFF_HEADER_LEN + 0xf0;
        short[h + 8..h + 12].copy_from_slice(&0x10000u32.to_le_bytes());
        let pe = Pe::parse(&short).unwrap();
        let err = pe.sections[0].data(&Blob::new(short.clone())).unwrap_err();
        assert!(err.to_string().contains("VirtualSize 0x10000"), "{err}");
    }
}
