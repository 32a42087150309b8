//! ELF64 constants (ELF gABI, "ELF Header" and "Program Header"; the
//! kernel's include/uapi/linux/elf.h and elf-em.h): the one set the
//! purgatory's elfcorehdr check and the loader's ELF reader and elfcorehdr
//! writer share.

/// `e_ident[EI_MAG0..=EI_MAG3]`.
pub const ELFMAG: [u8; 4] = *b"\x7fELF";
/// `e_ident[EI_CLASS]` of a 64-bit object.
pub const ELFCLASS64: u8 = 2;
/// `e_ident[EI_DATA]`: two's complement, little-endian.
pub const ELFDATA2LSB: u8 = 1;
/// `e_ident[EI_DATA]`: two's complement, big-endian.
pub const ELFDATA2MSB: u8 = 2;
/// `e_ident[EI_VERSION]` and `e_version`.
pub const EV_CURRENT: u8 = 1;
/// `e_type`: executable file.
pub const ET_EXEC: u16 = 2;
/// `e_type`: shared object (a PIE).
pub const ET_DYN: u16 = 3;
/// `e_type`: core file.
pub const ET_CORE: u16 = 4;

/// `e_machine`: x86-64.
pub const EM_X86_64: u16 = 62;
/// `e_machine`: 64-bit PowerPC (both byte orders).
pub const EM_PPC64: u16 = 21;
/// `e_machine`: AArch64.
pub const EM_AARCH64: u16 = 183;
/// `e_machine`: RISC-V.
pub const EM_RISCV: u16 = 243;

/// `p_type`: a loadable segment.
pub const PT_LOAD: u32 = 1;
/// `p_type`: the program interpreter.
pub const PT_INTERP: u32 = 3;
/// `p_type`: notes.
pub const PT_NOTE: u32 = 4;

/// `sizeof(Elf64_Ehdr)`.
pub const EHDR64_SIZE: usize = 64;
/// `sizeof(Elf64_Phdr)`.
pub const PHDR64_SIZE: usize = 56;

/// The Linux architecture of 64-bit kernels for `e_machine`, as the
/// loader names architectures in messages (`arm64`, not `AArch64`); None
/// for a machine this project does not know.
pub fn machine_name(machine: u16) -> Option<&'static str> {
    match machine {
        EM_X86_64 => Some("x86_64"),
        EM_PPC64 => Some("ppc64"),
        EM_AARCH64 => Some("arm64"),
        EM_RISCV => Some("riscv64"),
        _ => None,
    }
}
