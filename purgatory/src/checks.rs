//! Structure checks for segments the kernel may rewrite after load (crash
//! hotplug). They are not hashed, but must still look like what they claim
//! to be before the new kernel trusts them.

use crate::abi::SegmentKind;
use crate::bytes::same;
use crate::console_lines::structure;
use crate::fdt::FdtError;

/// Why an excluded segment was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StructureError {
    /// The DTB is not a well-formed FDT (devicetree spec v0.4 §5).
    Fdt(FdtError),
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
            Self::Fdt(e) => e.describe(),
            Self::ElfIdent => crate::text!(structure::ELF_IDENT),
            Self::ElfType => crate::text!(structure::ELF_TYPE),
            Self::ElfHeaderSize => crate::text!(structure::ELF_HEADER_SIZE),
            Self::ElfPhdrs => crate::text!(structure::ELF_PHDRS),
            Self::KindNotExcludable => crate::text!(structure::NOT_EXCLUDABLE),
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

fn le16(data: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(data.get(off..off.checked_add(2)?)?.try_into().ok()?))
}

fn le64(data: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(off..off.checked_add(8)?)?.try_into().ok()?))
}

/// The whole FDT: header, memory reservation block and every token of the
/// structure block (`crate::fdt::check`), inside the segment.
pub fn check_fdt(data: &[u8]) -> Result<(), StructureError> {
    crate::fdt::check(data).map_err(StructureError::Fdt)
}

/// ELF64 core header checks: the shape of what the capture kernel parses.
pub fn check_elf64_core(data: &[u8]) -> Result<(), StructureError> {
    use crate::elf::{EHDR64_SIZE as EHDR, ELFCLASS64, ELFDATA2LSB, ELFMAG, ET_CORE, EV_CURRENT, PHDR64_SIZE};
    const PHDR: u64 = PHDR64_SIZE as u64;
    const IDENT: [u8; 7] = [ELFMAG[0], ELFMAG[1], ELFMAG[2], ELFMAG[3], ELFCLASS64, ELFDATA2LSB, EV_CURRENT];
    let ident = data.get(..7).filter(|_| data.len() >= EHDR);
    if !ident.is_some_and(|i| same(i, &IDENT)) {
        return Err(StructureError::ElfIdent);
    }
    let half = |off| le16(data, off).ok_or(StructureError::ElfIdent);
    if half(16)? != ET_CORE {
        return Err(StructureError::ElfType);
    }
    let (ehsize, phentsize, phnum) = (half(52)?, half(54)? as u64, half(56)? as u64);
    if ehsize as usize != EHDR || phentsize != PHDR {
        return Err(StructureError::ElfHeaderSize);
    }
    let phoff = le64(data, 32).ok_or(StructureError::ElfIdent)?;
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
        assert_eq!(check_fdt(&d[..d.len() - 1]), Err(StructureError::Fdt(FdtError::TotalSize)));
        d[0] ^= 1;
        assert_eq!(check_fdt(&d), Err(StructureError::Fdt(FdtError::Magic)));
    }

    #[test]
    fn fdt_block_outside_totalsize_is_refused() {
        let mut d = minimal_fdt();
        d[36..40].copy_from_slice(&0x1000u32.to_be_bytes()); // size_dt_struct
        assert_eq!(check_fdt(&d), Err(StructureError::Fdt(FdtError::Blocks)));
    }

    #[test]
    fn fdt_version_is_checked() {
        let mut d = minimal_fdt();
        d[20..24].copy_from_slice(&2u32.to_be_bytes());
        assert_eq!(check_fdt(&d), Err(StructureError::Fdt(FdtError::Version)));
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
