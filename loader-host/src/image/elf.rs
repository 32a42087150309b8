//! vmlinux ELF kernels (ELF-64 gABI: "ELF Header", "Program Header"), as
//! kexec-tools loads them:
//!
//! - x86_64 (kexec/arch/x86_64/kexec-elf-x86_64.c, `--args-linux`): every
//!   PT_LOAD at its p_paddr, min(p_filesz, p_memsz) bytes and p_memsz of
//!   memory; the kernel entered at e_entry, a physical address in an x86_64
//!   vmlinux (vmlinux.lds.S `ENTRY(phys_startup_64)`), with the Linux
//!   64-bit boot protocol (boot_params in %rsi). rkexec keeps the PT_LOADs
//!   as one span (they are contiguous up to alignment gaps, which are
//!   zero-filled).
//! - ppc64le (kexec/arch/ppc64/kexec-elf-ppc64.c `elf_ppc64_load`): a
//!   relocatable kernel (Debian: ET_EXEC, one PT_LOAD at vaddr
//!   0xc000000000000000 / paddr 0, e_entry its first byte) loaded as one
//!   span anywhere the loader finds room, entered at e_entry's offset in
//!   it; the kernel copies itself to 0 unless told to run where it is
//!   (`__run_at_load`, arch/powerpc/kernel/head_64.S).
//! - arm64 (kexec/arch/arm64/kexec-elf-arm64.c): the arm64 Image header sits
//!   at e_entry (vmlinux.lds.S `ENTRY(_text)`); the PT_LOADs laid out from
//!   there by virtual address are the Image (arch/arm64/boot/Makefile
//!   builds Image with `objcopy -O binary` of the same segments), placed by
//!   its header like any Image.

use std::fmt;

use super::decompress::MAX_DECOMPRESSED;
use super::{Host, ImageError, Kernel, KernelFormat, KernelImage};
use kexec_purgatory::elf::{
    EHDR64_SIZE as EHDR_LEN, ELFCLASS64, ELFDATA2LSB, ELFMAG, EM_AARCH64, EM_PPC64, EM_X86_64, ET_DYN, ET_EXEC,
    PHDR64_SIZE as PHDR_LEN, PT_INTERP, PT_LOAD,
};

use crate::fields::le16;
use crate::input::Blob;

/// Largest gap between two PT_LOADs that is zero-filled into one span (a
/// vmlinux's gaps are alignment padding, at most a 2 MiB page).
pub const MAX_GAP: u64 = 16 << 20;

/// A checked x86_64 or ppc64le vmlinux, as one span of physical memory.
#[derive(Clone, Debug)]
pub struct ElfKernel {
    /// The PT_LOADs' bytes from the first p_paddr, gaps zero-filled.
    pub data: Blob,
    /// Physical address of `data[0]` (the lowest p_paddr).
    pub paddr: u64,
    /// Bytes of memory from `paddr` (the highest p_paddr + p_memsz).
    pub mem_size: u64,
    /// e_entry: the physical address the kernel is entered at.
    pub entry: u64,
    /// How many PT_LOADs the span holds.
    pub loads: usize,
}

/// Why a file is not a vmlinux this loader boots; each names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfError {
    /// A header or a PT_LOAD's file bytes run past the end of the file.
    Truncated {
        /// What runs past: "ELF header", "program header table", "PT_LOAD
        /// data".
        what: &'static str,
        /// The file offset it ends at.
        end: u64,
        /// The file's length in bytes.
        file: usize,
    },
    /// Not ELFCLASS64 little-endian (ELFDATA2LSB).
    Class {
        /// `e_ident[EI_CLASS]`.
        class: u8,
        /// `e_ident[EI_DATA]`.
        data: u8,
    },
    /// e_type is neither ET_EXEC nor ET_DYN.
    Type(u16),
    /// e_machine is neither EM_X86_64 nor EM_AARCH64.
    Machine(u16),
    /// A PT_INTERP: a program, not a kernel.
    Interp,
    /// e_phentsize is not sizeof(Elf64_Phdr) = 56.
    PhentSize(u16),
    /// No PT_LOAD with memory.
    NoLoad,
    /// Program header `index` has p_filesz > p_memsz.
    FileszAboveMemsz {
        /// The program header's index.
        index: usize,
    },
    /// Program header `index`: its address + p_memsz overflows 64 bits.
    Overflow {
        /// The program header's index.
        index: usize,
    },
    /// Program header `index` overlaps the PT_LOAD before it (by address).
    Overlap {
        /// The program header's index.
        index: usize,
    },
    /// Program header `index` starts more than [`MAX_GAP`] after the
    /// previous PT_LOAD ends: not one span.
    Gap {
        /// The program header's index.
        index: usize,
        /// Bytes between the previous PT_LOAD's end and its start.
        gap: u64,
    },
    /// Program header `index` takes the PT_LOADs' span past the loader's
    /// cap on a kernel image (MAX_DECOMPRESSED).
    Span {
        /// The program header's index.
        index: usize,
        /// Bytes from the span's start to this PT_LOAD's end.
        span: u64,
    },
    /// x86_64: e_entry lies in no PT_LOAD's physical range.
    EntryOutside {
        /// e_entry.
        entry: u64,
    },
    /// x86_64 ET_DYN: not supported (a vmlinux is ET_EXEC).
    X86Dyn,
    /// arm64: no Image header (booting.rst §4 magic at 0x38) at e_entry.
    NoArm64Header {
        /// e_entry.
        entry: u64,
    },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = "vmlinux ELF";
        match self {
            Self::Truncated { what, end, file } => {
                write!(f, "{e}: the {what} ends at {end:#x}, past the end of the {file}-byte file (truncated?)")
            }
            Self::Class { class, data } => write!(
                f,
                "{e}: EI_CLASS {class} / EI_DATA {data}; only 64-bit little-endian (ELFCLASS64, ELFDATA2LSB) kernels boot"
            ),
            Self::Type(t) => write!(f, "{e}: e_type {t} is neither ET_EXEC (2) nor ET_DYN (3)"),
            Self::Machine(m) => {
                write!(f, "{e}: e_machine {m} is none of EM_X86_64 (62), EM_AARCH64 (183), EM_PPC64 (21)")
            }
            Self::Interp => write!(f, "{e}: has a PT_INTERP (a program, not a kernel)"),
            Self::PhentSize(n) => write!(f, "{e}: e_phentsize {n} is not sizeof(Elf64_Phdr) = 56"),
            Self::NoLoad => write!(f, "{e}: no PT_LOAD segment with memory"),
            Self::FileszAboveMemsz { index } => write!(f, "{e}: program header {index}: p_filesz > p_memsz"),
            Self::Overflow { index } => write!(f, "{e}: program header {index}: address + p_memsz overflows"),
            Self::Overlap { index } => write!(f, "{e}: program header {index}: PT_LOAD overlaps the previous one"),
            Self::Gap { index, gap } => write!(
                f,
                "{e}: program header {index}: PT_LOAD starts {gap:#x} bytes after the previous one ends; rkexec loads a vmlinux as one span with gaps under {MAX_GAP:#x}"
            ),
            Self::Span { index, span } => write!(
                f,
                "{e}: program header {index}: the PT_LOADs span {span:#x} bytes, more than the loader's {} MiB cap on a kernel image",
                MAX_DECOMPRESSED >> 20
            ),
            Self::EntryOutside { entry } => write!(
                f,
                "{e}: e_entry {entry:#x} is not inside any PT_LOAD's physical range (an x86_64 vmlinux is entered at a physical address)"
            ),
            Self::X86Dyn => write!(f, "{e}: an x86_64 ET_DYN kernel is not supported (a vmlinux is ET_EXEC)"),
            Self::NoArm64Header { entry } => {
                write!(f, "{e}: no arm64 Image header (\"ARM\\x64\" at 0x38) at e_entry {entry:#x} (booting.rst)")
            }
        }
    }
}

impl std::error::Error for ElfError {}

#[derive(Clone, Copy, Debug)]
struct Load {
    index: usize,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

struct Parsed {
    machine: u16,
    etype: u16,
    entry: u64,
    loads: Vec<Load>,
}

/// The ELF header and program headers, read with the `object` crate's
/// bounds-checked ELF reader (docs/dependencies.md: the project does not
/// hand-write what a well-kept, upstream-fuzzed crate does), then the
/// rules a vmlinux must meet on top.
fn parse_headers(file: &[u8]) -> Result<Parsed, ElfError> {
    use object::read::elf::{FileHeader as _, ProgramHeader as _};
    let trunc = |what, end: u64| ElfError::Truncated { what, end, file: file.len() };
    if file.len() < EHDR_LEN {
        return Err(trunc("ELF header", EHDR_LEN as u64));
    }
    if file[4] != ELFCLASS64 || file[5] != ELFDATA2LSB {
        return Err(ElfError::Class { class: file[4], data: file[5] });
    }
    let header = object::elf::FileHeader64::<object::LittleEndian>::parse(file)
        .map_err(|_| ElfError::Class { class: file[4], data: file[5] })?;
    let le = object::LittleEndian;
    let (etype, machine) = (header.e_type.get(le).0, header.e_machine.get(le).0);
    if etype != ET_EXEC && etype != ET_DYN {
        return Err(ElfError::Type(etype));
    }
    if !matches!(machine, EM_X86_64 | EM_AARCH64 | EM_PPC64) {
        return Err(ElfError::Machine(machine));
    }
    let (phentsize, phnum) = (header.e_phentsize.get(le), header.e_phnum.get(le));
    if phnum > 0 && usize::from(phentsize) != PHDR_LEN {
        return Err(ElfError::PhentSize(phentsize));
    }
    let phoff = header.e_phoff.get(le);
    let table_end = phoff.saturating_add(u64::from(phnum) * PHDR_LEN as u64);
    let phdrs = header.program_headers(le, file).map_err(|_| trunc("program header table", table_end))?;
    let mut loads = Vec::new();
    for (index, ph) in phdrs.iter().enumerate() {
        match ph.p_type(le).0 {
            PT_INTERP => return Err(ElfError::Interp),
            PT_LOAD => {}
            _ => continue,
        }
        let l = Load {
            index,
            offset: ph.p_offset(le),
            vaddr: ph.p_vaddr(le),
            paddr: ph.p_paddr(le),
            filesz: ph.p_filesz(le),
            memsz: ph.p_memsz(le),
        };
        if l.filesz > l.memsz {
            return Err(ElfError::FileszAboveMemsz { index });
        }
        if l.paddr.checked_add(l.memsz).is_none() || l.vaddr.checked_add(l.memsz).is_none() {
            return Err(ElfError::Overflow { index });
        }
        let end = l.offset.checked_add(l.filesz).ok_or(ElfError::Overflow { index })?;
        if end > file.len() as u64 {
            return Err(trunc("PT_LOAD data", end));
        }
        if l.memsz > 0 {
            loads.push(l);
        }
    }
    if loads.is_empty() {
        return Err(ElfError::NoLoad);
    }
    Ok(Parsed { machine, etype, entry: header.e_entry.get(le), loads })
}

/// The PT_LOADs as one buffer, keyed by `addr` (p_paddr or p_vaddr), from
/// `start`: (bytes with gaps zero-filled, memory size from `start`).
fn flatten(file: &[u8], loads: &[Load], addr: impl Fn(&Load) -> u64, start: u64) -> Result<(Vec<u8>, u64), ElfError> {
    let mut sorted: Vec<Load> = loads.iter().copied().filter(|l| addr(l) + l.memsz > start).collect();
    sorted.sort_by_key(|l| addr(l));
    // Check every load before zero-filling any: gaps under MAX_GAP still add
    // up, so the span is bounded too (parse_headers checked that addr +
    // memsz does not wrap).
    let mut end = start;
    for (i, l) in sorted.iter().enumerate() {
        let at = addr(l);
        if i > 0 && at < end {
            return Err(ElfError::Overlap { index: l.index });
        }
        if i > 0 && at - end > MAX_GAP {
            return Err(ElfError::Gap { index: l.index, gap: at - end });
        }
        end = at + l.memsz;
        if end - start > MAX_DECOMPRESSED {
            return Err(ElfError::Span { index: l.index, span: end - start });
        }
    }
    let mut data = Vec::new();
    for l in &sorted {
        let at = addr(l);
        // Bytes of this load before `start` (only the first may have any).
        let skip = start.saturating_sub(at);
        let from = (at.max(start) - start) as usize;
        let bytes = &file[(l.offset + skip.min(l.filesz)) as usize..(l.offset + l.filesz) as usize];
        if !bytes.is_empty() {
            data.resize(from, 0);
            data.extend_from_slice(bytes);
        }
    }
    Ok((data, end - start))
}

fn x86_64(file: &[u8], p: &Parsed) -> Result<ElfKernel, ElfError> {
    if p.etype != ET_EXEC {
        return Err(ElfError::X86Dyn);
    }
    let paddr = p.loads.iter().map(|l| l.paddr).min().unwrap_or(0);
    if !p.loads.iter().any(|l| p.entry >= l.paddr && p.entry < l.paddr + l.memsz) {
        return Err(ElfError::EntryOutside { entry: p.entry });
    }
    let (data, mem_size) = flatten(file, &p.loads, |l| l.paddr, paddr)?;
    Ok(ElfKernel { data: Blob::new(data), paddr, mem_size, entry: p.entry, loads: p.loads.len() })
}

/// A ppc64le vmlinux: its PT_LOADs as one span by physical address, the
/// entry where e_entry (a virtual address) falls in it. Relocatable: the
/// span is placed anywhere (`arch::ppc64le`), not at p_paddr.
fn ppc64(file: &[u8], p: &Parsed) -> Result<ElfKernel, ElfError> {
    let inside = p.loads.iter().find(|l| p.entry >= l.vaddr && p.entry < l.vaddr + l.memsz);
    let Some(l) = inside else {
        return Err(ElfError::EntryOutside { entry: p.entry });
    };
    let paddr = p.loads.iter().map(|l| l.paddr).min().unwrap_or(0);
    let entry = l.paddr + (p.entry - l.vaddr);
    let (data, mem_size) = flatten(file, &p.loads, |l| l.paddr, paddr)?;
    Ok(ElfKernel { data: Blob::new(data), paddr, mem_size, entry, loads: p.loads.len() })
}

/// The arm64 Image inside an arm64 vmlinux.
fn arm64_image(file: &[u8], p: &Parsed) -> Result<Vec<u8>, ElfError> {
    let inside = p.loads.iter().find(|l| p.entry >= l.vaddr && p.entry < l.vaddr + l.filesz);
    let Some(first) = inside else {
        return Err(ElfError::NoArm64Header { entry: p.entry });
    };
    let at = (first.offset + (p.entry - first.vaddr)) as usize;
    if file.get(at + 0x38..at + 0x3c) != Some(b"ARM\x64".as_slice()) {
        return Err(ElfError::NoArm64Header { entry: p.entry });
    }
    Ok(flatten(file, &p.loads, |l| l.vaddr, p.entry)?.0)
}

/// The format.
pub struct Vmlinux;

impl KernelFormat for Vmlinux {
    fn names(&self) -> &'static [&'static str] {
        // kexec-tools: "elf-x86_64" (x86_64), "vmlinux" (arm64), "elf-ppc64"
        // (ppc64, kexec/arch/ppc64/kexec-ppc64.c file_type[]).
        &["vmlinux", "elf-x86_64", "elf-arm64", "elf-ppc64", "elf"]
    }
    fn describe(&self) -> &'static str {
        "vmlinux ELF (7f 45 4c 46)"
    }
    fn probe(&self, file: &[u8]) -> bool {
        file.starts_with(&ELFMAG)
    }
    fn machine_hint(&self, head: &[u8]) -> Option<u16> {
        le16(head, 18).filter(|m| matches!(*m, EM_X86_64 | EM_AARCH64 | EM_PPC64))
    }
    fn parse(&self, file: Blob, host: Host) -> Result<KernelImage, ImageError> {
        let p = parse_headers(&file).map_err(ImageError::Elf)?;
        match p.machine {
            EM_X86_64 => {
                let k = x86_64(&file, &p).map_err(ImageError::Elf)?;
                Ok(KernelImage::plain(EM_X86_64, "vmlinux ELF", Kernel::Elf(k)))
            }
            EM_PPC64 => {
                // kexec_file_load's ppc64 loader takes the file as it is
                // (arch/powerpc/kexec/elf_64.c).
                let k = ppc64(&file, &p).map_err(ImageError::Elf)?;
                Ok(KernelImage::plain(EM_PPC64, "vmlinux ELF", Kernel::Elf(k)).as_whole_file())
            }
            _ => {
                let image = arm64_image(&file, &p).map_err(ImageError::Elf)?;
                super::arm64_image::kernel_from_raw(Blob::new(image), "vmlinux ELF", host)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::image::arm64_image::tests::image;
    use crate::image::load;

    /// An ELF-64 LE executable with `loads` (vaddr, paddr, bytes, memsz).
    pub(crate) fn elf(machine: u16, etype: u16, entry: u64, loads: &[(u64, u64, &[u8], u64)]) -> Vec<u8> {
        let phoff = EHDR_LEN;
        let mut data_at = (phoff + loads.len() * PHDR_LEN).next_multiple_of(0x1000);
        let mut f = vec![0u8; data_at];
        f[..4].copy_from_slice(&ELFMAG);
        f[4] = ELFCLASS64;
        f[5] = ELFDATA2LSB;
        f[6] = 1;
        f[16..18].copy_from_slice(&etype.to_le_bytes());
        f[18..20].copy_from_slice(&machine.to_le_bytes());
        f[24..32].copy_from_slice(&entry.to_le_bytes());
        f[32..40].copy_from_slice(&(phoff as u64).to_le_bytes());
        f[54..56].copy_from_slice(&(PHDR_LEN as u16).to_le_bytes());
        f[56..58].copy_from_slice(&(loads.len() as u16).to_le_bytes());
        for (i, (vaddr, paddr, bytes, memsz)) in loads.iter().enumerate() {
            let p = phoff + i * PHDR_LEN;
            f[p..p + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            for (o, v) in [(8, data_at as u64), (16, *vaddr), (24, *paddr), (32, bytes.len() as u64), (40, *memsz)] {
                f[p + o..p + o + 8].copy_from_slice(&v.to_le_bytes());
            }
            f.resize(data_at, 0);
            f.extend_from_slice(bytes);
            data_at = f.len().next_multiple_of(0x1000);
        }
        f
    }

    const HOST: Host = Host { page_size: 4096 };
    const KVA: u64 = 0xffff_ffff_8100_0000;

    #[test]
    fn x86_64_vmlinux_is_one_physical_span() {
        let f = elf(
            EM_X86_64,
            ET_EXEC,
            0x100_0000,
            &[(KVA, 0x100_0000, &[1u8; 5000], 0x2000), (KVA + 0x20_0000, 0x120_0000, &[2u8; 100], 0x10_0000)],
        );
        let k = load(Blob::new(f), None, HOST).unwrap();
        assert_eq!((k.machine, k.format), (EM_X86_64, "vmlinux ELF"));
        let Kernel::Elf(e) = k.kernel else { panic!() };
        assert_eq!((e.paddr, e.entry, e.loads), (0x100_0000, 0x100_0000, 2));
        assert_eq!(e.mem_size, 0x30_0000);
        assert_eq!(e.data.len(), 0x20_0000 + 100);
        assert!(e.data[5000..0x20_0000].iter().all(|&b| b == 0), "the gap and the first load's bss are zeros");
        assert_eq!(e.data[0x20_0000], 2);
    }

    #[test]
    fn x86_64_vmlinux_errors_name_the_field() {
        let one = |entry, etype| elf(EM_X86_64, etype, entry, &[(KVA, 0x100_0000, &[1u8; 64], 0x1000)]);
        let err = load(Blob::new(one(KVA, ET_EXEC)), None, HOST).unwrap_err();
        assert!(err.to_string().contains("e_entry 0xffffffff81000000 is not inside"), "{err}");
        let err = load(Blob::new(one(0x100_0000, ET_DYN)), None, HOST).unwrap_err();
        assert!(err.to_string().contains("ET_DYN"), "{err}");
        let mut f = one(0x100_0000, ET_EXEC);
        f.truncate(f.len() - 10);
        assert!(load(Blob::new(f), None, HOST).unwrap_err().to_string().contains("PT_LOAD data ends"));
        let mut f = one(0x100_0000, ET_EXEC);
        f[4] = 1;
        assert!(load(Blob::new(f), None, HOST).unwrap_err().to_string().contains("ELFCLASS64"));
        let far = elf(
            EM_X86_64,
            ET_EXEC,
            0x100_0000,
            &[(KVA, 0x100_0000, &[1u8; 64], 0x1000), (KVA, 0x4000_0000, &[1u8; 64], 0x1000)],
        );
        assert!(load(Blob::new(far), None, HOST).unwrap_err().to_string().contains("one span"));
    }

    /// Found by fuzz/fuzz_targets/image_elf.rs: 300 one-byte PT_LOADs, each
    /// just under MAX_GAP after the last, made a 17 KB file allocate a
    /// 4.8 GiB span (out of memory); a 1 MB file could ask for 290 GiB.
    #[test]
    fn many_gapped_loads_cannot_build_a_span_above_the_kernel_cap() {
        let step = MAX_GAP + 0x1000;
        let loads: Vec<(u64, u64, &[u8], u64)> =
            (0..40u64).map(|i| (KVA + i * step, 0x100_0000 + i * step, &[7u8][..], 0x1000)).collect();
        let err = load(Blob::new(elf(EM_X86_64, ET_EXEC, 0x100_0000, &loads)), None, HOST).unwrap_err();
        assert!(err.to_string().contains("more than the loader's 512 MiB cap on a kernel image"), "{err}");
        // The same for an arm64 vmlinux, spanned from e_entry by virtual address.
        let img = image(0, 0x40_0000, 1 << 1 | 8, 100);
        let mut arm: Vec<(u64, u64, &[u8], u64)> = vec![(KVA, 0x4000_0000, &img[..], 0x1000)];
        arm.extend((1..40u64).map(|i| (KVA + i * step, 0x4000_0000 + i * step, &[7u8][..], 0x1000)));
        let err = load(Blob::new(elf(EM_AARCH64, ET_EXEC, KVA, &arm)), None, HOST).unwrap_err();
        assert!(err.to_string().contains("more than the loader's 512 MiB cap on a kernel image"), "{err}");
    }

    #[test]
    fn arm64_vmlinux_becomes_its_image() {
        let img = image(0, 0x40_0000, 1 << 1 | 8, 9000);
        let va = 0xffff_8000_0800_0000u64;
        // Split in two PT_LOADs, as text and data are in a real vmlinux.
        let f = elf(
            EM_AARCH64,
            ET_DYN,
            va,
            &[(va, 0, &img[..0x1000], 0x1000), (va + 0x1000, 0, &img[0x1000..], 0x40_0000)],
        );
        let k = load(Blob::new(f), Some("vmlinux"), HOST).unwrap();
        assert_eq!((k.machine, k.format), (EM_AARCH64, "vmlinux ELF"));
        let Kernel::Image(i) = k.kernel else { panic!() };
        assert_eq!(&i.data[..], &img[..]);
        assert_eq!(i.mem_size, 0x40_0000);
        let bad = elf(EM_AARCH64, ET_DYN, va, &[(va, 0, &[0u8; 100], 0x1000)]);
        assert!(load(Blob::new(bad), None, HOST).unwrap_err().to_string().contains("no arm64 Image header"));
    }
}
