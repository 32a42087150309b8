//! The running kernel's linear-map offset, from /proc/kcore's program
//! headers (fs/proc/kcore.c: KCORE_RAM entries carry p_paddr = physical,
//! p_vaddr = its linear-map address). Used for the elfcorehdr's p_vaddr,
//! which dump tools (makedumpfile, crash) read; /proc/vmcore itself does not.

use std::io::Read;
use std::path::Path;

/// `vaddr - paddr` of the largest PT_LOAD that covers `phys`, or None when
/// /proc/kcore is unreadable or has no such entry.
pub fn linear_offset(kcore: &Path, phys: u64) -> Option<u64> {
    offset_from_headers(&read_head(kcore)?, phys)
}

fn le16(b: &[u8], o: usize) -> Option<u64> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?) as u64)
}
fn le32(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn le64(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// x86_64: the kernel text PT_LOAD of /proc/kcore (KCORE_TEXT: vaddr in
/// the __START_KERNEL_map region, p_paddr its physical address) as
/// (vaddr, paddr, size).
pub fn kernel_text(kcore: &Path) -> Option<(u64, u64, u64)> {
    let head = read_head(kcore)?;
    text_from_headers(&head)
}

fn read_head(kcore: &Path) -> Option<Vec<u8>> {
    let mut f = std::fs::File::open(kcore).ok()?;
    let mut head = vec![0u8; 64 * 1024];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    head.truncate(n);
    Some(head)
}

/// x86_64 __START_KERNEL_map (Documentation/arch/x86/x86_64/mm.rst).
const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// Module area start: text entries lie below it.
const MODULES_VADDR: u64 = 0xffff_ffff_a000_0000;

fn text_from_headers(head: &[u8]) -> Option<(u64, u64, u64)> {
    if head.get(..4)? != b"\x7fELF" || *head.get(4)? != 2 || *head.get(5)? != 1 {
        return None;
    }
    let phoff = le64(head, 32)? as usize;
    let phentsize = le16(head, 54)? as usize;
    let phnum = le16(head, 56)? as usize;
    (0..phnum).find_map(|i| {
        let p = phoff + i * phentsize;
        let (ty, vaddr, paddr, memsz) = (le32(head, p)?, le64(head, p + 16)?, le64(head, p + 24)?, le64(head, p + 40)?);
        (ty == 1 && (START_KERNEL_MAP..MODULES_VADDR).contains(&vaddr) && paddr != u64::MAX && memsz > 0)
            .then_some((vaddr, paddr, memsz))
    })
}

/// The same, from the first bytes of a kcore-like ELF64 core file.
pub fn offset_from_headers(head: &[u8], phys: u64) -> Option<u64> {
    if head.get(..4)? != b"\x7fELF" || *head.get(4)? != 2 || *head.get(5)? != 1 {
        return None;
    }
    let phoff = le64(head, 32)? as usize;
    let phentsize = le16(head, 54)? as usize;
    let phnum = le16(head, 56)? as usize;
    let mut best: Option<(u64, u64)> = None; // (memsz, offset)
    for i in 0..phnum {
        let p = phoff + i * phentsize;
        if le32(head, p)? != 1 {
            continue; // PT_LOAD only
        }
        let (vaddr, paddr, memsz) = (le64(head, p + 16)?, le64(head, p + 24)?, le64(head, p + 40)?);
        if paddr == u64::MAX || !(paddr <= phys && phys < paddr.saturating_add(memsz)) {
            continue;
        }
        if best.is_none_or(|(m, _)| memsz > m) {
            best = Some((memsz, vaddr.wrapping_sub(paddr)));
        }
    }
    best.map(|(_, o)| o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elfcore::{CoreLayout, NoteRegion, EM_AARCH64};
    use crate::layout::Range;

    #[test]
    fn picks_the_linear_map_entry() {
        // A kcore-like file: PT_LOADs built with our own elfcore writer.
        let off = 0xffff_0000_0000_0000u64.wrapping_sub(0x4000_0000);
        let core = CoreLayout {
            machine: EM_AARCH64,
            cpu_notes: vec![],
            vmcoreinfo: NoteRegion { addr: 0, size: 0 },
            ram: vec![Range::new(0x4000_0000, 0xc000_0000)],
            virt_offset: Some(off),
            kernel_text: Some((0xffff_ffff_8100_0000, 0x100_0000, 0x180_0000)),
        };
        let bytes = core.build().unwrap();
        assert_eq!(text_from_headers(&bytes), Some((0xffff_ffff_8100_0000, 0x100_0000, 0x180_0000)));
        assert_eq!(offset_from_headers(&bytes, 0x4800_0000), Some(off));
        assert_eq!(offset_from_headers(&bytes, 0x1000), None);
        assert_eq!(offset_from_headers(b"not an elf", 0), None);
    }
}
