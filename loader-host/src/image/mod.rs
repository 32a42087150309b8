//! Kernel image formats. Each format is one module implementing
//! [`KernelFormat`] (probe the file, parse it into a [`KernelImage`] for its
//! architecture), registered in [`FORMATS`] — the way kexec-tools'
//! `file_type[]`, the kernel's `kexec_file_loaders[]` and rust-vmm
//! linux-loader's `KernelLoader` do it. Adding a format is one module plus
//! one line in the table.

pub mod arm64_image;
pub mod bzimage;
pub mod decompress;
pub mod elf;
pub mod pe;
pub mod pe_stub;
pub mod riscv_image;
pub mod uki;
pub mod zboot;

use std::fmt;

use crate::input::Blob;

use self::arm64_image::Arm64HeaderError;
use self::bzimage::{BzImage, BzImageError};
use self::decompress::DecompressError;
use self::elf::{ElfError, ElfKernel};
use self::pe::PeError;
use self::riscv_image::RiscvHeaderError;
use self::uki::UkiError;
use self::zboot::ZbootError;

/// What the running system tells a parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Host {
    /// The running kernel's page size (an arm64 Image built for another
    /// page size is refused).
    pub page_size: u64,
}

impl Host {
    /// This machine: sysconf(_SC_PAGESIZE), 4 KiB if that fails.
    pub fn current() -> Host {
        Host { page_size: crate::system::host_page_size() }
    }
}

/// A kernel loaded at an aligned base plus `text_offset` (arm64 booting.rst
/// §4 "Call the kernel image").
#[derive(Clone, Debug)]
pub struct ImageKernel {
    /// The raw (decompressed) Image.
    pub data: Blob,
    /// The header's text_offset: arm64, bytes above the 2 MiB aligned base
    /// (booting.rst §4); riscv64, the alignment the Image needs
    /// (boot-image-header.rst, see `dtb_boot::TextOffset`).
    pub text_offset: u64,
    /// Bytes from the load address the kernel occupies, bss included (never
    /// less than the file).
    pub mem_size: u64,
    /// Header flags bit 3: anywhere in RAM, else as low as possible.
    pub anywhere: bool,
    /// The header had no image_size (pre-3.17): `mem_size` is an estimate.
    pub size_estimated: bool,
}

/// The loadable kernel inside the file, by boot protocol.
#[derive(Clone, Debug)]
pub enum Kernel {
    /// arm64 Image (booting.rst).
    Image(ImageKernel),
    /// x86 bzImage (boot.rst 64-bit boot protocol).
    BzImage(BzImage),
    /// A vmlinux ELF as one span: x86_64's at its physical addresses,
    /// entered at e_entry with boot_params (kexec-tools' elf-x86_64
    /// --args-linux); ppc64le's anywhere, entered at its e_entry offset
    /// with a DTB (kexec-tools' elf-ppc64).
    Elf(ElfKernel),
}

/// What a container file (a unified kernel image) carries besides the
/// kernel: the pieces systemd-stub would hand over.
#[derive(Clone, Debug)]
pub struct Embedded {
    /// The container's name, e.g. "UKI".
    pub container: &'static str,
    /// The format of the kernel inside (`.linux`), e.g. "bzImage".
    pub inner_format: &'static str,
    /// The kernel's bytes as the container holds them (`.linux`).
    pub linux: Blob,
    /// The initrd the stub would pass: `.ucode` then `.initrd`, each padded
    /// to 4 bytes when there is a `.ucode` (systemd-stub combine_initrds).
    pub initrd: Option<Blob>,
    /// Which sections `initrd` is made of, for the plan.
    pub initrd_source: String,
    /// `.cmdline`, leading and trailing whitespace and NULs removed.
    pub cmdline: Option<Vec<u8>>,
    /// `.dtb`: replaces the firmware's (the running) DTB.
    pub dtb: Option<Blob>,
    /// `.uname`: the kernel's release.
    pub uname: Option<String>,
    /// Sections that were seen but not used, and why.
    pub notes: Vec<String>,
}

/// A parsed kernel file.
#[derive(Clone, Debug)]
pub struct KernelImage {
    /// ELF `e_machine` of the architecture the kernel is for
    /// (kexec_purgatory::elf `EM_*`; `arch::by_machine` names it).
    pub machine: u16,
    /// The format that recognised the file, e.g. "Image.gz".
    pub format: &'static str,
    /// The kernel to place, by boot protocol.
    pub kernel: Kernel,
    /// Set by container formats (UKI).
    pub embedded: Option<Embedded>,
    /// The kernel is the file's bytes as they are (no container, no
    /// compression, no ELF wrapping): a kexec_file_load loader can be
    /// handed the file itself.
    pub whole_file: bool,
}

impl KernelImage {
    /// A kernel file that is only a kernel.
    pub fn plain(machine: u16, format: &'static str, kernel: Kernel) -> Self {
        KernelImage { machine, format, kernel, embedded: None, whole_file: false }
    }

    /// The same, marked as the whole file (`whole_file`).
    pub fn as_whole_file(self) -> Self {
        KernelImage { whole_file: true, ..self }
    }
}

/// Why a file is not a kernel this loader can boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageError {
    /// No format recognised the file.
    Unknown {
        /// The file's first 4 bytes, in hex.
        magic: String,
    },
    /// `-t NAME` names no format.
    UnknownType {
        /// The name given.
        name: String,
    },
    /// `-t NAME` names a format that does not recognise the file.
    NotOfType {
        /// The name given.
        name: String,
    },
    /// An arm64 Image header (or its EFI stub's PE header) breaks
    /// booting.rst §4.
    Arm64(Arm64HeaderError),
    /// A riscv64 Image header (or its EFI stub's PE header) breaks
    /// boot-image-header.rst.
    Riscv(RiscvHeaderError),
    /// A bzImage setup header breaks boot.rst.
    BzImage(BzImageError),
    /// An EFI zboot header is malformed.
    Zboot(ZbootError),
    /// A compressed kernel does not decompress within the limits.
    Decompress(DecompressError),
    /// A PE/COFF file (UKI, EFI stub) is malformed.
    Pe(PeError),
    /// A vmlinux ELF is malformed or not bootable.
    Elf(ElfError),
    /// A unified kernel image's sections are unusable.
    Uki(UkiError),
    /// `-t NAME` names a kexec-tools file type rkexec does not load.
    UnsupportedType {
        /// The name given.
        name: String,
        /// Why rkexec does not load it.
        why: &'static str,
    },
    /// A decompressed payload with neither Image magic at 0x38.
    NotAnImage {
        /// The 4 bytes at 0x38.
        found: [u8; 4],
    },
    /// A compressed or wrapped kernel whose payload is not one.
    Payload {
        /// The outer format, e.g. "Image.gz".
        format: &'static str,
        /// Why the payload is not a kernel.
        inner: Box<ImageError>,
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown { magic } => write!(
                f,
                "not a kernel this loader knows (starts with {magic}; formats: {})",
                FORMATS.iter().map(|x| x.describe()).collect::<Vec<_>>().join(", ")
            ),
            Self::UnknownType { name } => write!(
                f,
                "--type {}: no such kernel type (known: {})",
                crate::escape::text(name),
                FORMATS.iter().flat_map(|x| x.names().iter().copied()).collect::<Vec<_>>().join(", ")
            ),
            Self::NotOfType { name } => write!(f, "--type {}: the file is not of that type", crate::escape::text(name)),
            Self::Arm64(e) => write!(f, "{e}"),
            Self::Riscv(e) => write!(f, "{e}"),
            Self::NotAnImage { found } => write!(
                f,
                "no Image magic at 0x38: found {} (arm64 \"ARM\\x64\" 41 52 4d 64, riscv64 \"RSC\\x05\" 52 53 43 05)",
                crate::fields::magic_hex(found)
            ),
            Self::BzImage(e) => write!(f, "{e}"),
            Self::Zboot(e) => write!(f, "{e}"),
            Self::Decompress(e) => write!(f, "{e}"),
            Self::Pe(e) => write!(f, "{e}"),
            Self::Elf(e) => write!(f, "{e}"),
            Self::Uki(e) => write!(f, "{e}"),
            Self::UnsupportedType { name, why } => write!(f, "--type {}: {why}", crate::escape::text(name)),
            Self::Payload { format, inner } => write!(f, "{format} payload: {inner}"),
        }
    }
}

impl std::error::Error for ImageError {}

/// One kernel file format.
pub trait KernelFormat: Sync {
    /// Names accepted by `-t/--type`, the first being the one shown.
    fn names(&self) -> &'static [&'static str];
    /// What it looks for, for messages: `Image ("ARM\x64" at 0x38)`.
    fn describe(&self) -> &'static str;
    /// A cheap look at the file's magic numbers.
    fn probe(&self, file: &[u8]) -> bool;
    /// The ELF machine of the architecture a file of this format is for,
    /// from its first bytes when they say (None: only parsing tells).
    fn machine_hint(&self, head: &[u8]) -> Option<u16>;
    /// Check and unpack the file.
    fn parse(&self, file: Blob, host: Host) -> Result<KernelImage, ImageError>;
    /// The largest file of this format the loader reads, known from its
    /// first bytes before the rest is read: a kernel is at most
    /// [`MAX_KERNEL_IMAGE`]; None for files that carry more than a kernel
    /// (a UKI's initrd, a vmlinux's debug sections), bounded by the
    /// machine only.
    fn file_limit(&self) -> Option<u64> {
        Some(MAX_KERNEL_IMAGE)
    }
}

/// The loader's cap on a kernel image, compressed or not: the one
/// decompression stops at ([`decompress::MAX_DECOMPRESSED`]), ten times
/// the largest distribution kernels.
pub const MAX_KERNEL_IMAGE: u64 = decompress::MAX_DECOMPRESSED;

/// Every format, in probe order: a UKI first (a PE file with a `.linux`
/// section, which no kernel's own EFI stub has), zboot before Image (both
/// start with "MZ"; only zboot has "zimg" at 4).
pub static FORMATS: &[&dyn KernelFormat] = &[
    &uki::Uki,
    &zboot::Zboot,
    &bzimage::BzImageFormat,
    &arm64_image::Arm64Image,
    &riscv_image::RiscvImage,
    &decompress::ImageGz,
    &elf::Vmlinux,
];

/// A raw Image of either architecture (the payload of Image.gz, EFI zboot
/// and a UKI), told apart by the magic at 0x38 (arm64 booting.rst §4, riscv
/// boot-image-header.rst).
pub fn raw_image(data: Blob, format: &'static str, host: Host) -> Result<KernelImage, ImageError> {
    if arm64_image::has_magic(&data) {
        arm64_image::kernel_from_raw(data, format, host)
    } else if riscv_image::has_magic(&data) {
        riscv_image::kernel_from_raw(data, format, host)
    } else {
        Err(ImageError::NotAnImage { found: crate::fields::array(&data, 0x38).unwrap_or([0; 4]) })
    }
}

/// kexec-tools' file types (kexec/arch/x86_64/kexec-x86_64.c and
/// kexec/arch/arm64/kexec-arm64.c `file_type[]`) that rkexec does not load,
/// so that `-t` names them with a reason instead of "no such type".
const KEXEC_TOOLS_UNSUPPORTED: &[(&str, &str)] = &[
    ("multiboot2-x86", "multiboot kernels are not supported by rkexec"),
    ("multiboot-x86", "multiboot kernels are not supported by rkexec"),
    ("elf-x86", "32-bit x86 kernels are not supported by rkexec"),
    ("beoboot-x86", "beoboot images are not supported by rkexec"),
    ("nbi-x86", "network boot images are not supported by rkexec"),
    ("uImage", "U-Boot images are not supported by rkexec"),
];

/// Find the format of `file` (or use the one `-t` names) and parse it.
/// `-t` takes rkexec's and kexec-tools' names, case-insensitively; when a
/// name belongs to several formats (kexec-tools' arm64 "vmlinuz" is the EFI
/// zboot, rkexec's older alias a gzip'd Image) the one that recognises the
/// file is used.
pub fn load(file: Blob, kernel_type: Option<&str>, host: Host) -> Result<KernelImage, ImageError> {
    select(&file, kernel_type)?.parse(file, host)
}

/// The format of a file from its first bytes (every probe looks at the
/// head only), or the one `-t` names if it recognises them.
pub fn select(head: &[u8], kernel_type: Option<&str>) -> Result<&'static dyn KernelFormat, ImageError> {
    if let Some(name) = kernel_type {
        let named: Vec<&&dyn KernelFormat> =
            FORMATS.iter().filter(|f| f.names().iter().any(|n| n.eq_ignore_ascii_case(name))).collect();
        if named.is_empty() {
            if let Some((_, why)) = KEXEC_TOOLS_UNSUPPORTED.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                return Err(ImageError::UnsupportedType { name: name.to_string(), why });
            }
            return Err(ImageError::UnknownType { name: name.to_string() });
        }
        return match named.iter().find(|f| f.probe(head)) {
            Some(format) => Ok(**format),
            None => Err(ImageError::NotOfType { name: name.to_string() }),
        };
    }
    match FORMATS.iter().find(|f| f.probe(head)) {
        Some(format) => Ok(*format),
        None => Err(ImageError::Unknown { magic: crate::fields::magic_hex(head) }),
    }
}

/// The ELF machine of the architecture a kernel file is for, from its
/// first bytes alone (None when no format recognises it or the format
/// cannot tell yet).
pub fn probe_machine(head: &[u8]) -> Option<u16> {
    FORMATS.iter().find(|f| f.probe(head)).and_then(|f| f.machine_hint(head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::arm64_image::tests::image;
    use crate::image::decompress::tests::{gzip, zstd};
    use crate::image::pe::{MACHINE_ARM64, MACHINE_RISCV64};
    use crate::image::zboot::tests::zboot;
    use kexec_purgatory::elf::{EM_AARCH64, EM_RISCV, EM_X86_64};

    const FLAGS_4K: u64 = 1 << 1;
    const HOST: Host = Host { page_size: 4096 };

    fn sample() -> Vec<u8> {
        image(0, 0x40_0000, FLAGS_4K | 8, 300_000)
    }

    fn parse(bytes: Vec<u8>) -> Result<KernelImage, ImageError> {
        load(Blob::new(bytes), None, HOST)
    }

    fn image_of(k: &KernelImage) -> &ImageKernel {
        match &k.kernel {
            Kernel::Image(i) => i,
            other => panic!("not an Image: {other:?}"),
        }
    }

    #[test]
    fn every_arm64_packaging_ends_as_the_raw_image() {
        for (bytes, format) in [
            (sample(), "Image"),
            (gzip(&sample()), "Image.gz"),
            (zboot("gzip", MACHINE_ARM64, &gzip(&sample())), "EFI zboot (gzip)"),
            (zboot("zstd22", MACHINE_ARM64, &zstd(&sample())), "EFI zboot (zstd)"),
        ] {
            let k = parse(bytes).unwrap();
            assert_eq!((k.machine, k.format), (EM_AARCH64, format));
            let i = image_of(&k);
            assert_eq!(&i.data[..], &sample()[..], "{format}");
            assert_eq!((i.text_offset, i.mem_size, i.anywhere), (0, 0x40_0000, true));
        }
    }

    #[test]
    fn every_riscv64_packaging_ends_as_the_raw_image() {
        let raw = crate::image::riscv_image::tests::image(0x20_0000, 0x40_0000, 0, 300_000);
        for (bytes, format) in [
            (raw.clone(), "riscv64 Image"),
            (gzip(&raw), "Image.gz"),
            (zboot("gzip", MACHINE_RISCV64, &gzip(&raw)), "EFI zboot (gzip)"),
            (zboot("zstd22", MACHINE_RISCV64, &zstd(&raw)), "EFI zboot (zstd)"),
        ] {
            let k = parse(bytes).unwrap();
            assert_eq!((k.machine, k.format), (EM_RISCV, format));
            let i = image_of(&k);
            assert_eq!(&i.data[..], &raw[..], "{format}");
            assert_eq!((i.text_offset, i.mem_size), (0x20_0000, 0x40_0000));
        }
        assert_eq!(probe_machine(&raw[..4096]), Some(EM_RISCV));
        assert_eq!(probe_machine(&zboot("gzip", MACHINE_RISCV64, b"x")[..]), Some(EM_RISCV));
        // A zboot whose PE machine and payload disagree.
        let err = parse(zboot("gzip", MACHINE_RISCV64, &gzip(&sample()))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "EFI zboot header (zboot-header.S): PE machine type 0x5064 (riscv64) but the payload is an arm64 Image"
        );
        let k = load(Blob::new(raw.clone()), Some("image-riscv"), HOST).unwrap();
        assert_eq!(k.machine, EM_RISCV);
    }

    #[test]
    fn bzimage_is_x86() {
        let k = parse(crate::image::bzimage::tests::sample(5000)).unwrap();
        assert_eq!((k.machine, k.format), (EM_X86_64, "bzImage"));
    }

    #[test]
    fn unknown_files_name_their_magic_and_the_formats() {
        let err = parse(b"\xca\xfe\xba\xbe\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("not a kernel this loader knows (starts with ca fe ba be"), "{msg}");
        assert!(msg.contains("bzImage") && msg.contains("ARM\\x64"), "{msg}");
        assert!(parse(Vec::new()).unwrap_err().to_string().contains("00 00 00 00"));
    }

    #[test]
    fn type_option_selects_and_checks() {
        let k = load(Blob::new(sample()), Some("image"), HOST).unwrap();
        assert_eq!(k.format, "Image");
        let err = load(Blob::new(sample()), Some("bzImage"), HOST).unwrap_err();
        assert_eq!(err.to_string(), "--type bzImage: the file is not of that type");
        let err = load(Blob::new(sample()), Some("nosuchtype"), HOST).unwrap_err();
        assert!(err.to_string().starts_with("--type nosuchtype: no such kernel type (known: "), "{err}");
        let err = load(Blob::new(sample()), Some("uImage"), HOST).unwrap_err();
        assert_eq!(err.to_string(), "--type uImage: U-Boot images are not supported by rkexec");
        // kexec-tools' names: arm64 "vmlinuz" is the EFI zboot, "zImage" a gzip'd Image.
        let gz = crate::image::decompress::tests::gzip(&sample());
        assert_eq!(load(Blob::new(gz.clone()), Some("zImage"), HOST).unwrap().format, "Image.gz");
        assert_eq!(load(Blob::new(gz), Some("vmlinuz"), HOST).unwrap().format, "Image.gz", "the one that probes");
    }

    #[test]
    fn payload_that_is_not_an_image_is_refused_with_context() {
        let err = parse(gzip(b"just some text, long enough to exceed sixty-four bytes of header .....")).unwrap_err();
        assert!(err.to_string().starts_with("Image.gz payload: no Image magic at 0x38: found 66 20 68 65"), "{err}");
        let err = parse(zboot("lzma", MACHINE_ARM64, b"\x5d\0\0")).unwrap_err();
        assert!(err.to_string().contains("\"lzma\""), "{err}");
    }

    #[test]
    fn page_size_is_checked_after_decompression() {
        let err = load(Blob::new(gzip(&sample())), None, Host { page_size: 65536 }).unwrap_err();
        assert!(err.to_string().contains("4K pages but the running kernel uses 64K"), "{err}");
    }

    #[test]
    fn host_page_size_is_a_power_of_two() {
        assert!(Host::current().page_size.is_power_of_two());
    }
}
