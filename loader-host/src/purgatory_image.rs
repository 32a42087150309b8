//! The purgatory images this loader embeds, and filling in their parameter
//! block (docs/abi.md).

use crate::arch_spec::Arch;
use kexec_purgatory::abi::{
    ImageHeader, PurgatoryParams, ABI_VERSION, ARCH_AARCH64, ARCH_PPC64LE, ARCH_RISCV64, ARCH_X86_64,
    IMAGE_FLAG_POSITION_INDEPENDENT, IMAGE_MAGIC,
};

/// One embedded image.
#[derive(Debug)]
pub struct EmbeddedImage {
    /// Its name: the machine name `uname -m` reports (`aarch64`).
    pub name: &'static str,
    /// The header's `arch` (`ARCH_*`).
    pub abi_arch: u32,
    /// The flat image.
    pub flat: &'static [u8],
    /// The ELF with symbols.
    pub elf: &'static [u8],
}

// The images loader-host's build script built, one per image the linker
// crate lists (purgatory_linker::settings::PURGATORY_IMAGES): a
// `<NAME>_FLAT` and `<NAME>_ELF` static each, and `EMBEDDED`.
include!(concat!(env!("OUT_DIR"), "/images.rs"));

/// The embedded image whose header names `abi_arch`.
pub fn embedded(abi_arch: u32) -> Option<&'static EmbeddedImage> {
    EMBEDDED.iter().find(|e| e.abi_arch == abi_arch)
}

/// Why a purgatory image cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgatoryImageError {
    /// Shorter than the image header (the image's length in bytes).
    TooSmall(usize),
    /// The header's magic is not `IMAGE_MAGIC` ("RKXPURG").
    Magic,
    /// The header's abi_version is not the `ABI_VERSION` this loader
    /// fills parameter blocks for.
    AbiVersion(u32),
    /// The image is for another architecture.
    Arch {
        /// The `ARCH_*` value asked for.
        expected: u32,
        /// The header's `arch`.
        found: u32,
    },
    /// IMAGE_FLAG_POSITION_INDEPENDENT is clear: the image cannot run at
    /// the address placement picks.
    NotPositionIndependent,
    /// A header field points outside the image.
    Field(&'static str),
    /// No image for this `ARCH_*` is embedded.
    NotEmbedded(u32),
}

impl std::fmt::Display for PurgatoryImageError {
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
            Self::NotEmbedded(arch) => write!(f, "no purgatory image for arch {arch} is embedded in this loader"),
        }
    }
}

impl std::error::Error for PurgatoryImageError {}

/// A checked purgatory image.
#[derive(Debug, Clone)]
pub struct PurgatoryImage<'a> {
    /// The flat image: what the purgatory segment holds, before its
    /// parameter block is filled in.
    pub bytes: &'a [u8],
    /// Its header (docs/abi.md "Header"): entry, parameter block and memory
    /// size.
    pub header: ImageHeader,
}

impl<'a> PurgatoryImage<'a> {
    /// Check the header of a flat image built for `arch`.
    pub fn parse(bytes: &'a [u8], arch: u32) -> Result<Self, PurgatoryImageError> {
        let header = ImageHeader::parse(bytes).ok_or(PurgatoryImageError::TooSmall(bytes.len()))?;
        if header.magic != IMAGE_MAGIC {
            return Err(PurgatoryImageError::Magic);
        }
        if header.abi_version != ABI_VERSION {
            return Err(PurgatoryImageError::AbiVersion(header.abi_version));
        }
        if header.arch != arch {
            return Err(PurgatoryImageError::Arch { expected: arch, found: header.arch });
        }
        if header.flags & IMAGE_FLAG_POSITION_INDEPENDENT == 0 {
            return Err(PurgatoryImageError::NotPositionIndependent);
        }
        let len = bytes.len() as u64;
        if header.image_size != len {
            return Err(PurgatoryImageError::Field("image_size"));
        }
        if header.mem_size < header.image_size {
            return Err(PurgatoryImageError::Field("mem_size"));
        }
        if header.entry_offset >= len {
            return Err(PurgatoryImageError::Field("entry_offset"));
        }
        let params_end = header.params_offset.checked_add(header.params_size);
        if header.params_size < std::mem::size_of::<PurgatoryParams>() as u64 || params_end.is_none_or(|e| e > len) {
            return Err(PurgatoryImageError::Field("params_offset/params_size"));
        }
        Ok(Self { bytes, header })
    }

    /// The embedded aarch64 image.
    pub fn aarch64() -> Result<PurgatoryImage<'static>, PurgatoryImageError> {
        PurgatoryImage::parse(AARCH64_FLAT, ARCH_AARCH64)
    }

    /// The embedded x86_64 image.
    pub fn x86_64() -> Result<PurgatoryImage<'static>, PurgatoryImageError> {
        PurgatoryImage::parse(X86_64_FLAT, ARCH_X86_64)
    }

    /// The embedded riscv64 image.
    pub fn riscv64() -> Result<PurgatoryImage<'static>, PurgatoryImageError> {
        PurgatoryImage::parse(RISCV64_FLAT, ARCH_RISCV64)
    }

    /// The embedded ppc64le image.
    pub fn ppc64le() -> Result<PurgatoryImage<'static>, PurgatoryImageError> {
        PurgatoryImage::parse(PPC64LE_FLAT, ARCH_PPC64LE)
    }

    /// The embedded image for `arch`.
    pub fn for_arch(arch: Arch) -> Result<PurgatoryImage<'static>, PurgatoryImageError> {
        let image = embedded(arch.purgatory_arch).ok_or(PurgatoryImageError::NotEmbedded(arch.purgatory_arch))?;
        PurgatoryImage::parse(image.flat, arch.purgatory_arch)
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

#[cfg(test)]
mod tests {
    use super::*;
    use object::elf::{
        PT_INTERP, PT_LOAD, PT_TLS, R_AARCH64_RELATIVE, R_PPC64_RELATIVE, R_RISCV_RELATIVE, R_X86_64_RELATIVE,
    };
    use object::read::elf::{ElfFile64, ProgramHeader as _};
    use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags};

    /// (name, ELF, flat image, header parser) for every embedded image.
    fn images() -> [(&'static str, &'static [u8], PurgatoryImage<'static>); 4] {
        [
            ("aarch64", AARCH64_ELF, PurgatoryImage::aarch64().expect("valid aarch64 header")),
            ("x86_64", X86_64_ELF, PurgatoryImage::x86_64().expect("valid x86_64 header")),
            ("riscv64", RISCV64_ELF, PurgatoryImage::riscv64().expect("valid riscv64 header")),
            ("ppc64le", PPC64LE_ELF, PurgatoryImage::ppc64le().expect("valid ppc64le header")),
        ]
    }

    fn symbol_in(elf_bytes: &'static [u8], name: &str) -> u64 {
        let file: ElfFile64<'static> = ElfFile64::parse(elf_bytes).expect("ELF parses");
        file.symbols().find(|s| s.name() == Ok(name)).map(|s| s.address()).unwrap_or_else(|| panic!("no symbol {name}"))
    }

    #[test]
    fn every_architecture_has_its_image_and_every_image_its_header() {
        for e in &EMBEDDED {
            let img = PurgatoryImage::parse(e.flat, e.abi_arch).unwrap_or_else(|err| panic!("{}: {err}", e.name));
            assert_eq!(img.header.arch, e.abi_arch, "{}", e.name);
        }
        for a in crate::arch::all() {
            assert!(embedded(a.purgatory_arch).is_some(), "{a}: no embedded image");
            PurgatoryImage::for_arch(a).unwrap_or_else(|err| panic!("{a}: {err}"));
        }
    }

    #[test]
    fn header_describes_the_image() {
        for (arch, elf_bytes, img) in images() {
            let h = img.header;
            assert_eq!(h.header_size, 96, "{arch}");
            assert_eq!(h.image_size, img.bytes.len() as u64, "{arch}");
            assert_eq!(h.entry_offset, symbol_in(elf_bytes, "_start"), "{arch}");
            assert_eq!(h.params_offset, symbol_in(elf_bytes, "PURGATORY_PARAMS"), "{arch}");
            assert_eq!(h.params_size, std::mem::size_of::<PurgatoryParams>() as u64, "{arch}");
            assert_eq!(h.mem_size % 4096, 0, "{arch}");
            assert_eq!(symbol_in(elf_bytes, "_head"), 0, "{arch}: header must be at offset 0");
        }
        // aarch64 code0 is `b _start` (A64 B: 0b000101 imm26, in words).
        let h = PurgatoryImage::aarch64().unwrap().header;
        assert_eq!(h.code0, 0x1400_0000 | (h.entry_offset as u32 / 4));
        // x86_64 code0 starts `jmp rel32` (E9) to _start.
        let h = PurgatoryImage::x86_64().unwrap().header;
        assert_eq!(h.code0 & 0xff, 0xe9);
        assert_eq!(u32::from_le_bytes(X86_64_FLAT[1..5].try_into().unwrap()) as u64 + 5, h.entry_offset);
        // riscv64 code0 is `jal x0, _start` (J-type, opcode 0x6f, rd 0;
        // RISC-V unprivileged spec "Unconditional Jumps"), code1 `nop`
        // (addi x0, x0, 0): 4-byte instructions, never compressed.
        let h = PurgatoryImage::riscv64().unwrap().header;
        assert_eq!(h.code0 & 0xfff, 0x06f, "jal x0");
        let off = h.entry_offset as u32;
        let imm =
            ((off >> 20) & 1) << 31 | ((off >> 1) & 0x3ff) << 21 | ((off >> 11) & 1) << 20 | ((off >> 12) & 0xff) << 12;
        assert_eq!(h.code0, imm | 0x06f, "code0 jumps to _start");
        assert_eq!(h.code1, 0x0000_0013, "code1 is nop");
        // ppc64le code0 is `b _start` (I-form, opcode 18, AA = LK = 0; Power
        // ISA Book I "Branch"), code1 `nop` (ori 0,0,0). The entry block
        // at _start is 256-byte aligned (kexec_sequence copies 0x100 bytes
        // from it to physical 0), its word 0 branches past it (our code
        // never runs the loader's bytes 4..0xff), and unfilled its 0x60
        // word is `b .` encoded big-endian, as v2wrap.S parks CPUs.
        let img = PurgatoryImage::ppc64le().unwrap();
        let h = img.header;
        assert_eq!(h.code0, 0x4800_0000 | h.entry_offset as u32, "code0 is b _start");
        assert_eq!(h.code1, 0x6000_0000, "code1 is nop");
        let at = h.entry_offset as usize;
        assert_eq!(at % 256, 0, "entry block 256-byte aligned");
        assert_eq!(at, 0x100, "the header and the hand-off code fit before the entry block");
        let word = |off: usize| u32::from_le_bytes(img.bytes[at + off..at + off + 4].try_into().unwrap());
        assert_eq!(word(0) >> 26, 18, "word 0 is a branch");
        assert_eq!(word(0) & 3, 0, "relative, no link");
        let target = (word(0) & 0x03ff_fffc) as usize;
        assert!(target >= 0x100, "word 0 branches past the block (to +{target:#x})");
        assert!(at + 0x100 <= h.params_offset as usize, "the block is no part of the parameter block");
        assert_eq!(&img.bytes[at + 0x60..at + 0x64], &[0x48, 0, 0, 0], "0x60: b . (big-endian)");
    }

    /// A compiler or linker upgrade that adds another relocation type would
    /// break the self-relocation in entry.rs: fail here instead.
    #[test]
    fn only_relative_relocations() {
        for (arch, elf_bytes, img) in images() {
            let want = match arch {
                "x86_64" => R_X86_64_RELATIVE,
                "riscv64" => R_RISCV_RELATIVE,
                "ppc64le" => R_PPC64_RELATIVE,
                _ => R_AARCH64_RELATIVE,
            };
            let file: ElfFile64<'static> = ElfFile64::parse(elf_bytes).unwrap();
            let relocs: Vec<_> = file.dynamic_relocations().expect("PIE has dynamic relocations").collect();
            assert!(!relocs.is_empty(), "{arch}: a PIE with static data has RELATIVE relocations");
            for (offset, r) in relocs {
                match r.flags() {
                    RelocationFlags::Elf { r_type } => {
                        assert_eq!(r_type, want, "{arch}: relocation type {r_type:?} at {offset:#x}")
                    }
                    other => panic!("{arch}: unexpected relocation flags {other:?}"),
                }
                assert!(offset < img.bytes.len() as u64, "{arch}: relocation outside the flat image");
                assert_eq!(offset % 8, 0, "{arch}: unaligned relocation target {offset:#x}");
            }
        }
    }

    /// Exactly the sections the linker script lays out: a new kind of
    /// allocated section (TLS, init arrays, ...) means the image model broke.
    #[test]
    fn layout_is_the_linker_scripts() {
        for (_, elf_bytes, img) in images() {
            check_layout(elf_bytes, &img);
        }
    }

    fn check_layout(elf_bytes: &'static [u8], img: &PurgatoryImage<'static>) {
        let file: ElfFile64<'static> = ElfFile64::parse(elf_bytes).unwrap();
        let allowed = [
            ".text",
            ".rodata",
            ".params",
            ".data",
            ".got",
            ".dynamic",
            ".dynsym",
            ".dynstr",
            ".hash",
            ".rela.dyn",
            ".bss",
            ".stack",
            // ppc64le: lld's long-branch table, always empty in an image
            // this small (checked below).
            ".branch_lt",
        ];
        let mut prev_end = 0;
        for s in file.sections() {
            let name = s.name().unwrap_or("?");
            let alloc = match s.flags() {
                object::SectionFlags::Elf { sh_flags, .. } => sh_flags.0 & object::elf::SHF_ALLOC.0 != 0,
                _ => false,
            };
            if !alloc {
                continue; // .symtab, .strtab, ...: not part of the image
            }
            assert!(allowed.contains(&name), "unexpected section {name}");
            if name == ".branch_lt" {
                assert_eq!(s.size(), 0, ".branch_lt holds long-branch targets: the image grew past 32 MiB?");
                continue;
            }
            assert!(s.address() >= prev_end, "section {name} overlaps the previous one");
            prev_end = s.address() + s.size();
        }
        for ph in file.elf_program_headers() {
            let t = ph.p_type(file.endian());
            assert!(t != PT_INTERP && t != PT_TLS, "program header type {t}");
            if t == PT_LOAD {
                let end = ph.p_vaddr(file.endian()) + ph.p_memsz(file.endian());
                assert!(end <= img.header.mem_size, "PT_LOAD beyond mem_size");
            }
        }
    }

    /// The size bar every embedded image meets: at most 20 KiB of flat
    /// file, what a loader copies into memory. The portable SHA-256 engine
    /// (the sha2 crate's) is the largest single function; its unrolled
    /// variant does not fit (docs/sha256-engines.md).
    #[test]
    fn flat_images_are_at_most_20_kib() {
        // ppc64le's bar is higher: the same code is 1.35 times its aarch64
        // size there (fixed 32-bit instructions, TOC-relative addressing,
        // up to five instructions per 64-bit constant): report_failure
        // 1380 bytes against 1096, fdt::Walker::step 832 against 580
        // (docs/dependencies.md "Image sizes").
        const BAR: usize = 20 * 1024;
        const PPC64LE_BAR: usize = 23 * 1024;
        for e in &EMBEDDED {
            let bar = if e.abi_arch == kexec_purgatory::abi::ARCH_PPC64LE { PPC64LE_BAR } else { BAR };
            assert!(e.flat.len() <= bar, "{}: flat image is {} bytes, over the {bar}-byte bar", e.name, e.flat.len());
        }
    }

    /// The portable SHA-256 engine is the sha2 crate's block compression,
    /// not a loop of ours: its round-constant table (`sha2::consts::K32`,
    /// legacy-mangled) is linked into every image, which it is only when
    /// the crate's compression code is.
    #[test]
    fn the_portable_engine_is_the_sha2_crates() {
        for (arch, elf_bytes, _) in images() {
            let file: ElfFile64<'static> = ElfFile64::parse(elf_bytes).unwrap();
            let linked = file.symbols().any(|s| s.name().is_ok_and(|n| n.contains("4sha26consts3K32")));
            assert!(linked, "{arch}: sha2::consts::K32 is not in the image: is the portable engine still sha2's?");
        }
    }

    #[test]
    fn params_are_written_where_the_header_says() {
        let img = PurgatoryImage::aarch64().unwrap();
        let mut p = PurgatoryParams::new();
        p.kernel_entry = 0x4020_0000;
        let out = img.with_params(&p);
        let off = img.header.params_offset as usize;
        assert_eq!(&out[off..off + 4], b"RKXP");
        assert_eq!(&out[off + 16..off + 24], &0x4020_0000u64.to_le_bytes());
        assert_eq!(&out[..off], &AARCH64_FLAT[..off]);
    }

    #[test]
    fn bad_headers_are_refused_with_the_field_named() {
        let mut bytes = AARCH64_FLAT.to_vec();
        bytes[8] = b'X';
        assert_eq!(PurgatoryImage::parse(&bytes, ARCH_AARCH64).unwrap_err(), PurgatoryImageError::Magic);
        assert!(matches!(
            PurgatoryImage::parse(AARCH64_FLAT, 2),
            Err(PurgatoryImageError::Arch { expected: 2, found: 1 })
        ));
        assert_eq!(
            PurgatoryImage::parse(&AARCH64_FLAT[..50], ARCH_AARCH64).unwrap_err(),
            PurgatoryImageError::TooSmall(50)
        );
        let short = &AARCH64_FLAT[..AARCH64_FLAT.len() - 8];
        assert_eq!(
            PurgatoryImage::parse(short, ARCH_AARCH64).unwrap_err().to_string(),
            "purgatory image header: image_size lies outside the image"
        );
    }
}
