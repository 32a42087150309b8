//! The EFI stub a kernel Image may carry (arm64 booting.rst §4, riscv
//! boot-image-header.rst: "MZ" in code0, the PE header's offset at 0x3c):
//! how far its PE section table says the file extends, so a truncated
//! Image is refused before it is loaded.

use crate::fields::{le16, le32};

/// The end of the furthest PE section (PE format: the COFF header after
/// "PE\0\0", the section table after the optional header; each section's
/// PointerToRawData + SizeOfRawData). `Ok(None)` for an Image without the
/// stub; `Err(offset)` names the PE header offset at 0x3c when it does not
/// lead to a complete header and section table inside the file.
pub fn extent(image: &[u8]) -> Result<Option<u64>, u64> {
    if !image.starts_with(b"MZ") {
        return Ok(None);
    }
    let at = u64::from(le32(image, 0x3c).unwrap_or(u32::MAX));
    let pe = usize::try_from(at).map_err(|_| at)?;
    if image.get(pe..pe.saturating_add(4)) != Some(&b"PE\0\0"[..]) {
        return Err(at);
    }
    let coff = pe.checked_add(4).ok_or(at)?;
    let sections = le16(image, coff.checked_add(2).ok_or(at)?).ok_or(at)?;
    let optional = le16(image, coff.checked_add(16).ok_or(at)?).ok_or(at)?;
    let table = coff.checked_add(20 + usize::from(optional)).ok_or(at)?;
    let mut end = 0u64;
    for i in 0..usize::from(sections) {
        let entry = table.checked_add(i * 40).ok_or(at)?;
        let size = le32(image, entry.checked_add(16).ok_or(at)?).ok_or(at)?;
        let ptr = le32(image, entry.checked_add(20).ok_or(at)?).ok_or(at)?;
        end = end.max(u64::from(ptr) + u64::from(size));
    }
    Ok(Some(end))
}

#[cfg(test)]
pub(crate) mod tests {
    /// Turn the first 0x80 bytes of a synthetic Image into an EFI stub as
    /// real kernels have one: `code0` (its first bytes "MZ"), the PE header
    /// at 0x40 (the offset at 0x3c) for `machine`, one section spanning the
    /// whole file.
    pub(crate) fn add_stub(v: &mut [u8], code0: [u8; 4], machine: u16) {
        v[0..4].copy_from_slice(&code0);
        v[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        v[0x40..0x44].copy_from_slice(b"PE\0\0");
        v[0x44..0x46].copy_from_slice(&machine.to_le_bytes());
        v[0x46..0x48].copy_from_slice(&1u16.to_le_bytes()); // NumberOfSections
        v[0x54..0x56].copy_from_slice(&0u16.to_le_bytes()); // SizeOfOptionalHeader
        let sect = 0x58;
        v[sect..sect + 8].copy_from_slice(b".text\0\0\0");
        let len = v.len() as u32;
        v[sect + 16..sect + 20].copy_from_slice(&len.to_le_bytes()); // SizeOfRawData
        v[sect + 20..sect + 24].copy_from_slice(&0u32.to_le_bytes()); // PointerToRawData
    }
}
