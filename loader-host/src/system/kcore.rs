//! The running kernel's linear-map offset, from /proc/kcore's program
//! headers (fs/proc/kcore.c: KCORE_RAM entries carry p_paddr = physical,
//! p_vaddr = its linear-map address). Used for the elfcorehdr's p_vaddr,
//! which dump tools (makedumpfile, crash) read; /proc/vmcore itself does not.

use std::io::Read;
use std::path::Path;

use crate::fields::{le16, le32, le64};

/// `vaddr - paddr` of the largest PT_LOAD that covers `phys`, or None when
/// /proc/kcore is unreadable or has no such entry.
pub fn linear_offset(kcore: &Path, phys: u64) -> Option<u64> {
    offset_from_headers(&read_head(kcore)?, phys)
}

/// The program headers of an ELF64 little-endian file's first bytes, as
/// (p_type, p_vaddr, p_paddr, p_memsz); None when it is not one. Offsets
/// come from the file: checked, never trusted.
fn program_headers(head: &[u8]) -> Option<Vec<(u32, u64, u64, u64)>> {
    if head.get(..4)? != b"\x7fELF" || *head.get(4)? != 2 || *head.get(5)? != 1 {
        return None;
    }
    let phoff = usize::try_from(le64(head, 32)?).ok()?;
    // ELF gABI: e_phentsize is sizeof(Elf64_Phdr) in an ELF64 file; any
    // other stride (0 repeats one entry 65535 times) is not a kcore.
    let phentsize = usize::from(le16(head, 54)?);
    if phentsize != 56 {
        return None;
    }
    let phnum = usize::from(le16(head, 56)?);
    (0..phnum)
        .map(|i| {
            let p = phoff.checked_add(i.checked_mul(phentsize)?)?;
            Some((
                le32(head, p)?,
                le64(head, p.checked_add(16)?)?,
                le64(head, p.checked_add(24)?)?,
                le64(head, p.checked_add(40)?)?,
            ))
        })
        .collect()
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

/// [`kernel_text`] from the first bytes of a kcore-like ELF64 core file.
pub fn text_from_headers(head: &[u8]) -> Option<(u64, u64, u64)> {
    program_headers(head)?.into_iter().find_map(|(ty, vaddr, paddr, memsz)| {
        (ty == 1 && (START_KERNEL_MAP..MODULES_VADDR).contains(&vaddr) && paddr != u64::MAX && memsz > 0)
            .then_some((vaddr, paddr, memsz))
    })
}

/// The same, from the first bytes of a kcore-like ELF64 core file.
pub fn offset_from_headers(head: &[u8], phys: u64) -> Option<u64> {
    let mut best: Option<(u64, u64)> = None; // (memsz, offset)
    for (ty, vaddr, paddr, memsz) in program_headers(head)? {
        // PT_LOAD only, and only those that map `phys`.
        if ty != 1 || paddr == u64::MAX || !(paddr <= phys && phys < paddr.saturating_add(memsz)) {
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
    use crate::crash::elfcore::CoreLayout;
    use crate::range::Range;
    use crate::system::crash_notes::NoteRegion;
    use kexec_purgatory::elf::EM_AARCH64;

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
            backup: None,
        };
        let bytes = core.build().unwrap();
        assert_eq!(text_from_headers(&bytes), Some((0xffff_ffff_8100_0000, 0x100_0000, 0x180_0000)));
        assert_eq!(offset_from_headers(&bytes, 0x4800_0000), Some(off));
        assert_eq!(offset_from_headers(&bytes, 0x1000), None);
        assert_eq!(offset_from_headers(b"not an elf", 0), None);
    }

    #[test]
    fn hostile_headers_do_not_overflow() {
        let mut h = vec![0u8; 64];
        h[..6].copy_from_slice(b"\x7fELF\x02\x01");
        h[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // e_phoff
        h[54..56].copy_from_slice(&0xffffu16.to_le_bytes());
        h[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
        assert_eq!(offset_from_headers(&h, 0), None);
        assert_eq!(text_from_headers(&h), None);
        // Found by fuzz target kcore (inputs 10x slower than the rest):
        // e_phentsize 0 read one program header 65535 times.
        let mut h = vec![0u8; 64 + 56];
        h[..6].copy_from_slice(b"\x7fELF\x02\x01");
        h[32..40].copy_from_slice(&64u64.to_le_bytes());
        h[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
        h[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        h[64 + 40..64 + 48].copy_from_slice(&u64::MAX.to_le_bytes()); // p_memsz
        assert_eq!(program_headers(&h), None);
        assert_eq!(offset_from_headers(&h, 0x1000), None);
    }
}
