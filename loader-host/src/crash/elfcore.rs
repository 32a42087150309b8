//! The kdump elfcorehdr: an ELF64 ET_CORE header describing the crashed
//! kernel's memory for the capture kernel's /proc/vmcore (fs/proc/vmcore.c
//! parses it). Built in userspace for kexec_load, as kexec-tools does.

use std::fmt;

use crate::range::Range;
use crate::system::crash_notes::NoteRegion;

use kexec_purgatory::elf::{
    EHDR64_SIZE, ELFCLASS64, ELFDATA2LSB, ELFMAG, ET_CORE, EV_CURRENT, PHDR64_SIZE, PT_LOAD, PT_NOTE,
};

const EHDR_SIZE: u64 = EHDR64_SIZE as u64;
const PHDR_SIZE: u64 = PHDR64_SIZE as u64;

/// What goes into the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreLayout {
    /// e_machine: the crashed kernel's architecture (`EM_*`).
    pub machine: u16,
    /// One per possible CPU (/sys/devices/system/cpu/cpuN/crash_notes).
    pub cpu_notes: Vec<NoteRegion>,
    /// /sys/kernel/vmcoreinfo.
    pub vmcoreinfo: NoteRegion,
    /// Memory to dump: System RAM minus the crash kernel region(s).
    pub ram: Vec<Range>,
    /// Linear-map offset: p_vaddr = p_paddr + this (wrapping), or None to
    /// leave p_vaddr 0 (readers of /proc/vmcore use p_offset/p_paddr).
    pub virt_offset: Option<u64>,
    /// x86_64: the kernel text mapping (vaddr, paddr, size), emitted as the
    /// first PT_LOAD as the kernel's own crash_prepare_elf64_headers does
    /// (dump tools use it to find the kernel image).
    pub kernel_text: Option<(u64, u64, u64)>,
    /// ppc64: low memory the capture kernel overwrites, dumped from the
    /// backup segment the purgatory copies it into: the first PT_LOAD,
    /// p_paddr the source, p_offset the copy (kexec-tools
    /// crashdump-ppc64.c get_crash_memory_ranges, crashdump-elf.c; the
    /// kernel's arch/powerpc/kexec/crash.c sync_backup_region_phdr finds it
    /// by p_paddr 0). Its address is 0 until the backup is placed.
    pub backup: Option<Backup>,
}

/// Memory the purgatory copies into a backup segment before the capture
/// kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backup {
    /// What is copied (`[0, size)`).
    pub source: Range,
    /// Where the copy lies (the backup segment).
    pub copy_at: u64,
}

/// The header cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfCoreError {
    /// More program headers than e_phnum (16 bits) can count.
    TooManyHeaders(usize),
}

impl fmt::Display for ElfCoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfCoreError::TooManyHeaders(n) => write!(f, "{n} program headers do not fit ELF's 16-bit e_phnum"),
        }
    }
}

impl std::error::Error for ElfCoreError {}

impl CoreLayout {
    /// Program headers: a PT_NOTE per CPU, one for vmcoreinfo, then the
    /// PT_LOADs.
    pub fn phnum(&self) -> usize {
        self.cpu_notes.len() + 1 + self.loads()
    }

    /// PT_LOAD entries: kernel text (if any) and the RAM ranges.
    pub fn loads(&self) -> usize {
        self.ram.len() + usize::from(self.kernel_text.is_some()) + usize::from(self.backup.is_some())
    }

    /// Bytes the header needs.
    pub fn size(&self) -> u64 {
        EHDR_SIZE + PHDR_SIZE * self.phnum() as u64
    }

    /// Serialise: Ehdr, then PT_NOTE per CPU, PT_NOTE vmcoreinfo, PT_LOAD
    /// per RAM range (the order kexec-tools uses).
    pub fn build(&self) -> Result<Vec<u8>, ElfCoreError> {
        let phnum = u16::try_from(self.phnum()).map_err(|_| ElfCoreError::TooManyHeaders(self.phnum()))?;
        let mut out = Vec::with_capacity(self.size() as usize);
        // ELF gABI "ELF Header": e_ident, then the fixed fields.
        out.extend_from_slice(&ELFMAG);
        out.extend_from_slice(&[ELFCLASS64, ELFDATA2LSB, EV_CURRENT, 0]); // ELFOSABI_NONE
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&ET_CORE.to_le_bytes());
        out.extend_from_slice(&self.machine.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes()); // e_version
        out.extend_from_slice(&0u64.to_le_bytes()); // e_entry
        out.extend_from_slice(&EHDR_SIZE.to_le_bytes()); // e_phoff
        out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        out.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
        out.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        out.extend_from_slice(&phnum.to_le_bytes());
        out.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
        let mut phdr_at = |p_type: u32, flags: u32, offset: u64, paddr: u64, vaddr: u64, size: u64| {
            out.extend_from_slice(&p_type.to_le_bytes());
            out.extend_from_slice(&flags.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes()); // p_offset: physical, as vmcore.c expects
            out.extend_from_slice(&vaddr.to_le_bytes());
            out.extend_from_slice(&paddr.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes()); // p_filesz
            out.extend_from_slice(&size.to_le_bytes()); // p_memsz
            out.extend_from_slice(&0u64.to_le_bytes()); // p_align
        };
        for n in &self.cpu_notes {
            phdr_at(PT_NOTE, 0, n.addr, n.addr, 0, n.size);
        }
        phdr_at(PT_NOTE, 0, self.vmcoreinfo.addr, self.vmcoreinfo.addr, 0, self.vmcoreinfo.size);
        if let Some((vaddr, paddr, size)) = self.kernel_text {
            phdr_at(PT_LOAD, 7, paddr, paddr, vaddr, size);
        }
        let vaddr = |paddr: u64| self.virt_offset.map_or(0, |o| paddr.wrapping_add(o));
        if let Some(b) = self.backup {
            let s = b.source;
            phdr_at(PT_LOAD, 7, b.copy_at, s.start, vaddr(s.start), s.len());
        }
        for r in &self.ram {
            phdr_at(PT_LOAD, 7, r.start, r.start, vaddr(r.start), r.len()); // PF_R|PF_W|PF_X
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kexec_purgatory::elf::EM_AARCH64;

    fn layout() -> CoreLayout {
        CoreLayout {
            machine: EM_AARCH64,
            cpu_notes: vec![NoteRegion { addr: 0x1000, size: 0x200 }, NoteRegion { addr: 0x2000, size: 0x200 }],
            vmcoreinfo: NoteRegion { addr: 0x5000, size: 0x1000 },
            ram: vec![Range::new(0x4000_0000, 0x5000_0000), Range::new(0x6000_0000, 0x8000_0000)],
            virt_offset: Some(0xffff_0000_0000_0000u64.wrapping_sub(0x4000_0000)),
            kernel_text: None,
            backup: None,
        }
    }

    #[test]
    fn kernel_text_is_the_first_load() {
        use object::read::elf::{ElfFile64, ProgramHeader as _};
        let mut l = layout();
        l.kernel_text = Some((0xffff_ffff_8100_0000, 0x100_0000, 0x200_0000));
        let bytes = l.build().unwrap();
        assert_eq!(l.loads(), 3);
        let elf = ElfFile64::<object::Endianness>::parse(&bytes[..]).unwrap();
        let e = elf.endian();
        let first_load = &elf.elf_program_headers()[3];
        assert_eq!(first_load.p_type(e).0, PT_LOAD);
        assert_eq!(
            (first_load.p_vaddr(e), first_load.p_paddr(e), first_load.p_memsz(e)),
            (0xffff_ffff_8100_0000, 0x100_0000, 0x200_0000)
        );
    }

    #[test]
    fn the_backup_is_the_first_load_read_from_its_copy() {
        use object::read::elf::{ElfFile64, ProgramHeader as _};
        let mut l = layout();
        l.ram = vec![Range::new(0x1_0000, 0x2000_0000), Range::new(0x4000_0000, 0x8000_0000)];
        l.virt_offset = Some(0xc000_0000_0000_0000);
        l.backup = Some(Backup { source: Range::new(0, 0x1_0000), copy_at: 0x2123_0000 });
        let bytes = l.build().unwrap();
        assert_eq!((l.loads(), bytes.len() as u64), (3, l.size()));
        let elf = ElfFile64::<object::Endianness>::parse(&bytes[..]).unwrap();
        let e = elf.endian();
        let b = &elf.elf_program_headers()[3];
        assert_eq!(b.p_type(e).0, PT_LOAD);
        assert_eq!((b.p_paddr(e), b.p_offset(e), b.p_memsz(e), b.p_filesz(e)), (0, 0x2123_0000, 0x1_0000, 0x1_0000));
        assert_eq!(b.p_vaddr(e), 0xc000_0000_0000_0000);
        let next = &elf.elf_program_headers()[4];
        assert_eq!((next.p_paddr(e), next.p_offset(e)), (0x1_0000, 0x1_0000));
        assert_eq!(next.p_vaddr(e), 0xc000_0000_0001_0000);
    }

    #[test]
    fn header_round_trips_through_the_object_crate() {
        use object::read::elf::{ElfFile64, ProgramHeader as _};
        let bytes = layout().build().unwrap();
        assert_eq!(bytes.len() as u64, layout().size());
        let elf = ElfFile64::<object::Endianness>::parse(&bytes[..]).unwrap();
        let e = elf.endian();
        let types: Vec<u32> = elf.elf_program_headers().iter().map(|p| p.p_type(e).0).collect();
        assert_eq!(types, [PT_NOTE, PT_NOTE, PT_NOTE, PT_LOAD, PT_LOAD]);
        let load = &elf.elf_program_headers()[4];
        assert_eq!(load.p_paddr(e), 0x6000_0000);
        assert_eq!(load.p_offset(e), 0x6000_0000);
        assert_eq!(load.p_memsz(e), 0x2000_0000);
        assert_eq!(load.p_vaddr(e), 0xffff_0000_2000_0000);
        // The purgatory's structure check accepts it.
        assert_eq!(kexec_purgatory::checks::check_elf64_core(&bytes), Ok(()));
    }
}
