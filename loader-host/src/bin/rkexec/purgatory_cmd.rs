//! `rkexec purgatory`: the purgatory images rkexec embeds, for other
//! loaders (docs/abi.md "Getting the image"): write the flat image (or the
//! ELF with symbols) of one architecture to a file, or print the image
//! headers. Its own small command line, recognised when `purgatory` is the
//! first argument (a kernel file of that name is `./purgatory`).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use kexec_purgatory::abi::{ARCH_AARCH64, ARCH_RISCV64, ARCH_X86_64, IMAGE_FLAG_POSITION_INDEPENDENT};
use loader_host::purgatory_image::{self as images, PurgatoryImage};
use sha2::{Digest, Sha256};

/// An architecture with an embedded purgatory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageArch {
    Aarch64,
    #[value(name = "x86_64")]
    X86_64,
    Riscv64,
}

impl ImageArch {
    const ALL: [ImageArch; 3] = [ImageArch::Aarch64, ImageArch::X86_64, ImageArch::Riscv64];

    fn name(self) -> &'static str {
        match self {
            ImageArch::Aarch64 => "aarch64",
            ImageArch::X86_64 => "x86_64",
            ImageArch::Riscv64 => "riscv64",
        }
    }

    /// (flat image, ELF, header arch).
    fn images(self) -> (&'static [u8], &'static [u8], u32) {
        match self {
            ImageArch::Aarch64 => (images::AARCH64_FLAT, images::AARCH64_ELF, ARCH_AARCH64),
            ImageArch::X86_64 => (images::X86_64_FLAT, images::X86_64_ELF, ARCH_X86_64),
            ImageArch::Riscv64 => (images::RISCV64_FLAT, images::RISCV64_ELF, ARCH_RISCV64),
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "rkexec purgatory",
    about = "Write or describe the verifying purgatory images rkexec embeds (their ABI: docs/abi.md)",
    after_help = "Examples:\n  rkexec purgatory --arch aarch64 --output purgatory-aarch64.bin\n  \
                  rkexec purgatory --arch x86_64 --elf --output purgatory-x86_64.elf\n  rkexec purgatory --info"
)]
struct PurgatoryArgs {
    /// The architecture of the image.
    #[arg(long, value_enum)]
    arch: Option<ImageArch>,
    /// Write the image to FILE ("-" for standard output).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// The ELF with symbols (PURGATORY_PARAMS, _start) instead of the flat image loaders copy into memory.
    #[arg(long)]
    elf: bool,
    /// Print the image header of --arch (of every image without it).
    #[arg(long)]
    info: bool,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The header of one image, as `key value` lines.
fn info(arch: ImageArch) -> Result<String, String> {
    let (flat, elf, abi_arch) = arch.images();
    let img = PurgatoryImage::parse(flat, abi_arch).map_err(|e| format!("{}: {e}", arch.name()))?;
    let h = img.header;
    Ok(format!(
        "arch {name}\nabi_version {}\nheader_size {}\nflags {:#x}{}\nimage_size {}\nmem_size {}\nentry_offset {:#x}\n\
         params_offset {:#x}\nparams_size {}\nsha256 {}\nelf_size {}\nelf_sha256 {}\n",
        h.abi_version,
        h.header_size,
        h.flags,
        if h.flags & IMAGE_FLAG_POSITION_INDEPENDENT != 0 { " (position independent)" } else { "" },
        h.image_size,
        h.mem_size,
        h.entry_offset,
        h.params_offset,
        h.params_size,
        hex(&Sha256::digest(flat)),
        elf.len(),
        hex(&Sha256::digest(elf)),
        name = arch.name(),
    ))
}

/// Run `rkexec purgatory ARGS`; the exit status.
pub fn main(argv0: &str, args: &[String]) -> u8 {
    let a = match PurgatoryArgs::try_parse_from(
        std::iter::once("rkexec purgatory".to_string()).chain(args.iter().cloned()),
    ) {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    if a.info {
        let arches: Vec<ImageArch> = a.arch.map_or_else(|| ImageArch::ALL.to_vec(), |x| vec![x]);
        for (i, arch) in arches.into_iter().enumerate() {
            match info(arch) {
                Ok(text) => print!("{}{text}", if i > 0 { "\n" } else { "" }),
                Err(e) => {
                    eprintln!("{argv0}: purgatory: {e}");
                    return 255;
                }
            }
        }
        if a.output.is_none() {
            return 0;
        }
    }
    let (Some(arch), Some(out)) = (a.arch, a.output) else {
        eprintln!("{argv0}: purgatory: give --arch aarch64|x86_64|riscv64 with --output FILE, or --info");
        return 1;
    };
    let (flat, elf, abi_arch) = arch.images();
    if let Err(e) = PurgatoryImage::parse(flat, abi_arch) {
        eprintln!("{argv0}: purgatory: embedded {} image: {e}", arch.name());
        return 255;
    }
    let bytes = if a.elf { elf } else { flat };
    let written = if out.as_os_str() == "-" {
        use std::io::Write;
        std::io::stdout().write_all(bytes).and_then(|()| std::io::stdout().flush())
    } else {
        std::fs::write(&out, bytes)
    };
    match written {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{argv0}: purgatory: {}: {e}", out.display());
            255
        }
    }
}
