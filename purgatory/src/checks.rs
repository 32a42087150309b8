//! Structure checks for segments the kernel may rewrite after load (crash
//! hotplug). They are not hashed, but must still look like what they claim
//! to be before the new kernel trusts them.

use crate::abi::SegmentKind;
use crate::console_lines::structure;

/// Why an excluded segment was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StructureError {
    /// FDT magic is not 0xd00dfeed (devicetree spec v0.4 §5.2).
    FdtMagic,
    /// FDT `totalsize` is smaller than the header or larger than the segment.
    FdtTotalSize,
    /// FDT `version`/`last_comp_version` are not compatible with 17.
    FdtVersion,
    /// FDT structure/strings/reserve-map blocks do not fit in `totalsize`.
    FdtBlocks,
    /// ELF `e_ident` is not a little-endian ELF64 (ELF gABI §4 "ELF Header").
    ElfIdent,
    /// ELF `e_type` is not ET_CORE.
    ElfType,
    /// ELF header or program-header sizes are not the ELF64 ones.
    ElfHeaderSize,
    /// Program headers do not fit in the segment.
    ElfPhdrs,
    /// Segment kind cannot be excluded (only dtb and elfcorehdr can).
    KindNotExcludable,
}

impl StructureError {
    pub fn describe(self) -> &'static str {
        match self {
            Self::FdtMagic => structure::FDT_MAGIC,
            Self::FdtTotalSize => structure::FDT_TOTAL_SIZE,
            Self::FdtVersion => structure::FDT_VERSION,
            Self::FdtBlocks => structure::FDT_BLOCKS,
            Self::ElfIdent => structure::ELF_IDENT,
            Self::ElfType => structure::ELF_TYPE,
            Self::ElfHeaderSize => structure::ELF_HEADER_SIZE,
            Self::ElfPhdrs => structure::ELF_PHDRS,
            Self::KindNotExcludable => structure::NOT_EXCLUDABLE,
        }
    }
}

/// Check an excluded segment of `kind` whose memory is `data`.
pub fn check_excluded(kind: SegmentKind, data: &[u8]) -> Result<(), StructureError> {
    match kind {
        SegmentKind::Dtb => check_fdt(data),
        SegmentKind::ElfCoreHdr => check_elf64_core(data),
        _ => Err(StructureError::KindNotExcludable),
    }
}

fn be32(data: &[u8], off: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&data[off..off + 4]);
    u32::from_be_bytes(b)
}

fn le16(data: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([data[off], data[off + 1]])
}

fn le64(data: &[u8], off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[off..off + 8]);
    u64::from_le_bytes(b)
}

/// Devicetree spec v0.4 §5.2 header checks.
pub fn check_fdt(data: &[u8]) -> Result<(), StructureError> {
    const HEADER: usize = 40;
    if data.len() < HEADER || be32(data, 0) != 0xd00d_feed {
        return Err(StructureError::FdtMagic);
    }
    let total = be32(data, 4) as u64;
    if total < HEADER as u64 || total > data.len() as u64 {
        return Err(StructureError::FdtTotalSize);
    }
    let (off_struct, off_strings, off_rsvmap) = (be32(data, 8) as u64, be32(data, 12) as u64, be32(data, 16) as u64);
    let (version, last_comp) = (be32(data, 20), be32(data, 24));
    if version < 16 || last_comp > 17 {
        return Err(StructureError::FdtVersion);
    }
    let size_strings = be32(data, 32) as u64;
    let size_struct = be32(data, 36) as u64;
    let fits = |off: u64, len: u64| off >= HEADER as u64 && off + len <= total;
    if !fits(off_struct, size_struct)
        || !fits(off_strings, size_strings)
        || !fits(off_rsvmap, 16)
        || off_rsvmap % 8 != 0
    {
        return Err(StructureError::FdtBlocks);
    }
    Ok(())
}

/// ELF64 core header checks: the shape of what the capture kernel parses.
pub fn check_elf64_core(data: &[u8]) -> Result<(), StructureError> {
    const EHDR: usize = 64;
    const PHDR: u64 = 56;
    const ET_CORE: u16 = 4;
    // e_ident: magic, ELFCLASS64 (2), ELFDATA2LSB (1), EV_CURRENT (1).
    if data.len() < EHDR || data[..4] != *b"\x7fELF" || data[4] != 2 || data[5] != 1 || data[6] != 1 {
        return Err(StructureError::ElfIdent);
    }
    if le16(data, 16) != ET_CORE {
        return Err(StructureError::ElfType);
    }
    let (ehsize, phentsize, phnum) = (le16(data, 52), le16(data, 54) as u64, le16(data, 56) as u64);
    if ehsize as usize != EHDR || phentsize != PHDR {
        return Err(StructureError::ElfHeaderSize);
    }
    let phoff = le64(data, 32);
    let end = phnum.checked_mul(PHDR).and_then(|n| n.checked_add(phoff));
    match end {
        Some(end) if phnum > 0 && phoff >= EHDR as u64 && end <= data.len() as u64 => Ok(()),
        _ => Err(StructureError::ElfPhdrs),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn minimal_fdt() -> Vec<u8> {
        // Header (40) + rsvmap terminator (16) + struct (BEGIN_NODE "" , END_NODE, END) + strings.
        let mut s = Vec::new();
        s.extend_from_slice(&1u32.to_be_bytes()); // FDT_BEGIN_NODE
        s.extend_from_slice(&[0, 0, 0, 0]); // name "" padded
        s.extend_from_slice(&2u32.to_be_bytes()); // FDT_END_NODE
        s.extend_from_slice(&9u32.to_be_bytes()); // FDT_END
        let off_rsv = 40u32;
        let off_struct = off_rsv + 16;
        let off_strings = off_struct + s.len() as u32;
        let total = off_strings;
        let mut d = Vec::new();
        for v in [0xd00dfeed, total, off_struct, off_strings, off_rsv, 17, 16, 0, 0, s.len() as u32] {
            d.extend_from_slice(&v.to_be_bytes());
        }
        d.extend_from_slice(&[0u8; 16]);
        d.extend_from_slice(&s);
        d
    }

    pub(crate) fn minimal_core(phnum: u16) -> Vec<u8> {
        let mut d = vec![0u8; 64 + 56 * phnum as usize];
        d[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        d[16..18].copy_from_slice(&4u16.to_le_bytes());
        d[32..40].copy_from_slice(&64u64.to_le_bytes());
        d[52..54].copy_from_slice(&64u16.to_le_bytes());
        d[54..56].copy_from_slice(&56u16.to_le_bytes());
        d[56..58].copy_from_slice(&phnum.to_le_bytes());
        d
    }

    #[test]
    fn valid_fdt_passes_and_fits_checks_fire() {
        let mut d = minimal_fdt();
        assert_eq!(check_fdt(&d), Ok(()));
        assert_eq!(check_fdt(&d[..d.len() - 1]), Err(StructureError::FdtTotalSize));
        d[0] ^= 1;
        assert_eq!(check_fdt(&d), Err(StructureError::FdtMagic));
    }

    #[test]
    fn fdt_block_outside_totalsize_is_refused() {
        let mut d = minimal_fdt();
        d[36..40].copy_from_slice(&0x1000u32.to_be_bytes()); // size_dt_struct
        assert_eq!(check_fdt(&d), Err(StructureError::FdtBlocks));
    }

    #[test]
    fn fdt_version_is_checked() {
        let mut d = minimal_fdt();
        d[20..24].copy_from_slice(&2u32.to_be_bytes());
        assert_eq!(check_fdt(&d), Err(StructureError::FdtVersion));
    }

    #[test]
    fn core_header_checks() {
        let d = minimal_core(3);
        assert_eq!(check_elf64_core(&d), Ok(()));
        assert_eq!(check_elf64_core(&d[..d.len() - 1]), Err(StructureError::ElfPhdrs));
        let mut bad = d.clone();
        bad[4] = 1; // ELFCLASS32
        assert_eq!(check_elf64_core(&bad), Err(StructureError::ElfIdent));
        let mut exec = d.clone();
        exec[16] = 2; // ET_EXEC
        assert_eq!(check_elf64_core(&exec), Err(StructureError::ElfType));
        assert_eq!(check_elf64_core(&minimal_core(0)), Err(StructureError::ElfPhdrs));
        let mut huge = d;
        huge[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(check_elf64_core(&huge), Err(StructureError::ElfPhdrs));
    }

    #[test]
    fn kernel_cannot_be_excluded() {
        assert_eq!(check_excluded(SegmentKind::Kernel, &[0; 64]), Err(StructureError::KindNotExcludable));
    }
}
