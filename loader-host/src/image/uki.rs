//! Unified kernel images (UAPI.5, uapi-group specifications
//! "unified_kernel_image.md"; systemd-stub(7)): a PE/EFI stub carrying the
//! kernel in `.linux` and, optionally, `.initrd`, `.ucode`, `.cmdline`,
//! `.dtb`, `.uname`, `.osrel`, `.splash`... sections. rkexec hands the new
//! kernel what systemd-stub would:
//!
//! - the kernel is `.linux`, recognised again through the format table
//!   (a bzImage on x86_64; an Image, Image.gz or EFI zboot on arm64);
//! - the initrd is `.ucode` then `.initrd`, each zero-padded to 4 bytes
//!   when there is a `.ucode` (systemd-stub combine_initrds: "the initrds
//!   are concatenated ... ALIGN4"); `.initrd` alone as it is;
//! - the command line is `.cmdline` unless the caller gives one;
//! - on arm64, `.dtb` replaces the running DTB ("the stub will ... install
//!   it in place of the firmware DTB").
//!
//! Multi-profile UKIs: the sections before the first `.profile` are the
//! base, the default profile @0 (the sections after the first `.profile`)
//! overrides same-named ones (UAPI.5 "Multi-Profile UKIs").

use std::fmt;

use super::pe::{self, Pe};
use super::{Embedded, Host, ImageError, KernelFormat, KernelImage, FORMATS};
use crate::input::Blob;

/// Why a PE file with a `.linux` section cannot be booted as a UKI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UkiError {
    /// `.linux` holds a UKI (or nothing a format recognises).
    Nested,
    /// The stub's PE machine and the kernel's architecture differ.
    MachineMismatch {
        /// The stub's COFF Machine (`pe::MACHINE_*`).
        machine: u16,
        /// The ELF machine of the kernel in `.linux`.
        kernel: u16,
    },
    /// `.cmdline` holds a NUL byte inside its text.
    CmdlineNul {
        /// Its offset in the trimmed text.
        at: usize,
    },
}

impl fmt::Display for UkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spec = "unified kernel image (UAPI.5)";
        match self {
            Self::Nested => write!(f, "{spec}: .linux holds another unified kernel image"),
            Self::MachineMismatch { machine, kernel } => {
                write!(
                    f,
                    "{spec}: the stub's PE machine is {machine:#06x} ({}) but .linux holds a kernel for {}",
                    pe::machine_name(*machine),
                    kexec_purgatory::elf::machine_name(*kernel).unwrap_or("unknown")
                )
            }
            Self::CmdlineNul { at } => write!(
                f,
                "{spec}: .cmdline holds a NUL byte at offset {at} of its text: a kernel command line is one NUL-terminated string"
            ),
        }
    }
}

impl std::error::Error for UkiError {}

/// The sections of the default profile: base sections overridden by
/// profile @0's.
fn default_profile(pe: &Pe) -> Vec<&pe::Section> {
    let mut profiles = pe.sections.split(|s| s.name == ".profile");
    let base: Vec<&pe::Section> = profiles.next().map(|b| b.iter().collect()).unwrap_or_default();
    let Some(first) = profiles.next() else {
        return base;
    };
    let mut out: Vec<&pe::Section> = base.into_iter().filter(|b| !first.iter().any(|p| p.name == b.name)).collect();
    out.extend(first.iter());
    out
}

/// Pad to a multiple of 4 bytes with zeros (systemd-stub ALIGN4).
fn pad4(v: &mut Vec<u8>) {
    v.resize(v.len().next_multiple_of(4), 0);
}

/// The format.
pub struct Uki;

impl KernelFormat for Uki {
    fn names(&self) -> &'static [&'static str] {
        // "uki": kexec-tools' name (kexec/kexec-uki.c, v2.0.30+).
        &["uki", "UKI", "efi"]
    }
    fn describe(&self) -> &'static str {
        "UKI (PE with a .linux section)"
    }
    fn probe(&self, file: &[u8]) -> bool {
        // The section table itself, not a search for the bytes ".linux":
        // an EFI-stub kernel Image may hold them anywhere in its code or
        // data. The table is in the first bytes (a probe of a file's head
        // sees it); its sections' data need not be.
        Pe::section_table(file).is_ok_and(|pe| pe.section(".linux").is_some())
    }
    fn machine_hint(&self, head: &[u8]) -> Option<u16> {
        pe::elf_machine(Pe::section_table(head).ok()?.machine)
    }
    fn file_limit(&self) -> Option<u64> {
        // A container: the initrd sections too (the machine bounds it).
        None
    }
    fn parse(&self, file: Blob, host: Host) -> Result<KernelImage, ImageError> {
        let pe = Pe::parse(&file).map_err(ImageError::Pe)?;
        let sections = default_profile(&pe);
        let get = |name: &str| -> Result<Option<Blob>, ImageError> {
            sections.iter().find(|s| s.name == name).map(|s| s.data(&file).map_err(ImageError::Pe)).transpose()
        };
        let linux = get(".linux")?.ok_or(ImageError::Pe(pe::PeError::NotPe))?;

        if Uki.probe(&linux) {
            return Err(ImageError::Uki(UkiError::Nested));
        }
        // .linux, recognised again by every format but this one.
        let inner_format =
            FORMATS.iter().filter(|f| f.names()[0] != "uki").find(|f| f.probe(&linux)).ok_or_else(|| {
                ImageError::Payload {
                    format: "UKI .linux",
                    inner: Box::new(ImageError::Unknown { magic: crate::fields::magic_hex(&linux) }),
                }
            })?;
        let inner = inner_format
            .parse(linux.clone(), host)
            .map_err(|e| ImageError::Payload { format: "UKI .linux", inner: Box::new(e) })?;
        if pe::elf_machine(pe.machine).is_some_and(|m| m != inner.machine) {
            return Err(ImageError::Uki(UkiError::MachineMismatch { machine: pe.machine, kernel: inner.machine }));
        }

        let ucode = get(".ucode")?;
        let initrd_sec = get(".initrd")?;
        let (initrd, initrd_source) = match (&ucode, &initrd_sec) {
            (None, None) => (None, String::new()),
            (None, Some(i)) => (Some(i.clone()), format!(".initrd ({} bytes)", i.len())),
            (Some(u), i) => {
                let mut v = u.to_vec();
                pad4(&mut v);
                let mut what = format!(".ucode ({} bytes)", u.len());
                if let Some(i) = i {
                    v.extend_from_slice(i);
                    pad4(&mut v);
                    what.push_str(&format!(" + .initrd ({} bytes)", i.len()));
                }
                (Some(Blob::new(v)), what)
            }
        };
        let text = |b: Blob| -> Option<String> {
            let s = std::str::from_utf8(&b).ok()?;
            Some(s.trim_matches(|c: char| c == '\0' || c.is_whitespace()).to_string())
        };
        // .cmdline is bytes, as systemd-stub hands them on (it converts
        // them to UTF-16 for LoadOptions, but the kernel's EFI stub turns
        // them back to bytes): no encoding is required here.
        let cmdline = get(".cmdline")?.map(|b| {
            let keep = |c: &u8| *c != 0 && !c.is_ascii_whitespace();
            let s = b.iter().position(keep).unwrap_or(b.len());
            let e = b.iter().rposition(keep).map_or(s, |i| i + 1);
            b[s..e].to_vec()
        });
        if let Some(at) = cmdline.as_deref().and_then(|c| c.iter().position(|&b| b == 0)) {
            return Err(ImageError::Uki(UkiError::CmdlineNul { at }));
        }
        let uname = get(".uname")?.and_then(text);
        let dtb = get(".dtb")?;
        let mut notes = Vec::new();
        if sections.iter().any(|s| s.name == ".dtbauto") {
            notes.push("UKI .dtbauto sections are not matched against this machine: not used".to_string());
        }
        if pe.sections.iter().filter(|s| s.name == ".profile").count() > 1 {
            notes.push("multi-profile UKI: the default profile @0 is used".to_string());
        }
        let embedded = Embedded {
            container: "UKI",
            inner_format: inner.format,
            linux,
            initrd,
            initrd_source,
            cmdline,
            dtb,
            uname,
            notes,
        };
        Ok(KernelImage {
            machine: inner.machine,
            format: "UKI",
            kernel: inner.kernel,
            embedded: Some(embedded),
            whole_file: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::arm64_image::tests::image;
    use crate::image::decompress::tests::gzip;
    use crate::image::pe::tests::pe_file;
    use crate::image::pe::{MACHINE_ARM64, MACHINE_RISCV64, MACHINE_X86_64};
    use crate::image::{load, Kernel};

    const HOST: Host = Host { page_size: 4096 };

    fn arm64_kernel() -> Vec<u8> {
        image(0, 0x40_0000, 1 << 1 | 8, 5000)
    }

    fn parse(f: Vec<u8>) -> Result<KernelImage, ImageError> {
        load(Blob::new(f), None, HOST)
    }

    #[test]
    fn a_riscv64_uki_carries_a_riscv64_image() {
        let rv = crate::image::riscv_image::tests::image(0x20_0000, 0x40_0000, 0, 5000);
        let f = pe_file(MACHINE_RISCV64, &[(".linux", &rv), (".cmdline", b"console=ttyS0\0")]);
        let k = parse(f).unwrap();
        assert_eq!((k.machine, k.format), (kexec_purgatory::elf::EM_RISCV, "UKI"));
        assert_eq!(k.embedded.unwrap().inner_format, "riscv64 Image");
        let err = parse(pe_file(MACHINE_ARM64, &[(".linux", &rv)])).unwrap_err();
        assert!(matches!(err, ImageError::Uki(UkiError::MachineMismatch { .. })), "{err}");
    }

    #[test]
    fn sections_become_kernel_initrd_cmdline_dtb() {
        let f = pe_file(
            MACHINE_ARM64,
            &[
                (".text", b"stub"),
                (".linux", &gzip(&arm64_kernel())),
                (".cmdline", b"  root=/dev/vda quiet\n\0"),
                (".initrd", b"0123456"),
                (".ucode", b"uc"),
                (".dtb", b"\xd0\x0d\xfe\xed"),
                (".uname", b"6.1.0-test\n"),
            ],
        );
        let k = parse(f).unwrap();
        assert_eq!((k.machine, k.format), (kexec_purgatory::elf::EM_AARCH64, "UKI"));
        let Kernel::Image(i) = &k.kernel else { panic!("{:?}", k.kernel) };
        assert_eq!(&i.data[..], &arm64_kernel()[..], ".linux decompressed through the format table");
        let e = k.embedded.unwrap();
        assert_eq!(e.inner_format, "Image.gz");
        assert_eq!(&e.initrd.unwrap()[..], b"uc\x00\x000123456\x00", "pad4(.ucode) then pad4(.initrd)");
        assert_eq!(e.initrd_source, ".ucode (2 bytes) + .initrd (7 bytes)");
        assert_eq!(e.cmdline.as_deref(), Some(&b"root=/dev/vda quiet"[..]));
        assert_eq!(&e.dtb.unwrap()[..], b"\xd0\x0d\xfe\xed");
        assert_eq!(e.uname.as_deref(), Some("6.1.0-test"));
    }

    /// issue 21 item 3: `.cmdline` is bytes; one that is not UTF-8 is
    /// taken as it is (it used to be refused), trimmed of whitespace and NULs.
    #[test]
    fn a_cmdline_that_is_not_utf8_is_kept_byte_for_byte() {
        let f =
            pe_file(MACHINE_ARM64, &[(".linux", &arm64_kernel()), (".cmdline", b"\0 root=/dev/\xff\xfe q=\xe9\n\0")]);
        let e = parse(f).unwrap().embedded.unwrap();
        assert_eq!(e.cmdline.as_deref(), Some(&b"root=/dev/\xff\xfe q=\xe9"[..]));
    }

    #[test]
    fn initrd_alone_is_passed_as_is_and_type_names_select() {
        let f =
            pe_file(MACHINE_X86_64, &[(".linux", &crate::image::bzimage::tests::sample(3000)), (".initrd", b"abc")]);
        let k = load(Blob::new(f.clone()), Some("uki"), HOST).unwrap();
        assert_eq!((k.machine, k.format), (kexec_purgatory::elf::EM_X86_64, "UKI"));
        let e = k.embedded.unwrap();
        assert_eq!(&e.initrd.unwrap()[..], b"abc");
        assert_eq!(e.cmdline, None);
        let err = load(Blob::new(f), Some("bzImage"), HOST).unwrap_err();
        assert_eq!(err.to_string(), "--type bzImage: the file is not of that type");
    }

    #[test]
    fn profile_zero_overrides_the_base() {
        let f = pe_file(
            MACHINE_ARM64,
            &[
                (".linux", &arm64_kernel()),
                (".cmdline", b"base"),
                (".profile", b"ID=a"),
                (".cmdline", b"profile0"),
                (".profile", b"ID=b"),
                (".cmdline", b"profile1"),
            ],
        );
        let e = parse(f).unwrap().embedded.unwrap();
        assert_eq!(e.cmdline.as_deref(), Some(&b"profile0"[..]));
        assert!(e.notes.iter().any(|n| n.contains("@0")), "{:?}", e.notes);
    }

    #[test]
    fn bad_ukis_are_refused_with_the_reason() {
        // The stub says x86_64, .linux holds an arm64 Image.
        let err = parse(pe_file(MACHINE_X86_64, &[(".linux", &arm64_kernel())])).unwrap_err();
        assert!(err.to_string().contains("PE machine is 0x8664 (x86_64) but .linux holds a kernel for arm64"), "{err}");
        let err = parse(pe_file(MACHINE_ARM64, &[(".linux", b"not a kernel at all, just some words")])).unwrap_err();
        assert!(err.to_string().starts_with("UKI .linux payload: not a kernel"), "{err}");
        let inner = pe_file(MACHINE_ARM64, &[(".linux", &arm64_kernel())]);
        let err = parse(pe_file(MACHINE_ARM64, &[(".linux", &inner)])).unwrap_err();
        assert!(err.to_string().contains(".linux holds another unified kernel image"), "{err}");
        // Truncated: the last section's data is cut off.
        let mut f = pe_file(MACHINE_ARM64, &[(".linux", &arm64_kernel()), (".initrd", &[1u8; 4000])]);
        f.truncate(f.len() - 1000);
        let err = parse(f).unwrap_err();
        assert!(err.to_string().contains("section .initrd") && err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn the_probe_reads_the_section_table_not_the_bytes() {
        // An EFI-stub kernel Image is a PE file too; ".linux\0\0" in its code
        // does not make it a UKI.
        let mut stub = arm64_kernel();
        crate::image::pe_stub::tests::add_stub(&mut stub, *b"MZ\0\x91", MACHINE_ARM64);
        stub[0x800..0x808].copy_from_slice(b".linux\0\0");
        assert!(!Uki.probe(&stub));
        assert_eq!(parse(stub).unwrap().format, "Image");
        // A UKI is one from its first 4 KiB, though its sections lie beyond.
        let f = pe_file(MACHINE_ARM64, &[(".linux", &arm64_kernel()), (".initrd", &[1u8; 9000])]);
        assert!(Uki.probe(&f[..4096]));
        assert_eq!(Uki.machine_hint(&f[..4096]), Some(kexec_purgatory::elf::EM_AARCH64));
        // A NUL inside .cmdline is the UKI's fault, and said so.
        let f = pe_file(MACHINE_ARM64, &[(".linux", &arm64_kernel()), (".cmdline", b"root=/dev/vda\0quiet\n")]);
        let err = parse(f).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unified kernel image (UAPI.5): .cmdline holds a NUL byte at offset 13 of its text: a kernel command line is one NUL-terminated string"
        );
    }
}
