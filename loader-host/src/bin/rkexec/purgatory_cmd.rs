//! `rkexec purgatory`: the purgatory images rkexec embeds, for other
//! loaders (docs/abi.md "Getting the image"): write the flat image (or the
//! ELF with symbols) of one architecture to a file, or print the image
//! headers. Its own small command line, recognised when `purgatory` is the
//! first argument (a kernel file of that name is `./purgatory`).

use std::path::PathBuf;

use clap::Parser;
use kexec_purgatory::abi::IMAGE_FLAG_POSITION_INDEPENDENT;
use loader_host::purgatory_image::{self as images, EmbeddedImage, PurgatoryImage};
use sha2::{Digest, Sha256};

/// The embedded image `name` names: the image's own name (`aarch64`) or
/// any name of the architecture it serves (`arm64`).
fn image_named(name: &str) -> Result<&'static EmbeddedImage, String> {
    let by_arch = loader_host::arch::by_name(name).and_then(|a| images::embedded(a.purgatory_arch));
    images::EMBEDDED.iter().find(|e| e.name == name).or(by_arch).ok_or_else(|| {
        let names: Vec<&str> = images::EMBEDDED.iter().map(|e| e.name).collect();
        format!("--arch {name}: no such image (images: {})", names.join(", "))
    })
}

#[derive(Debug, Parser)]
#[command(
    name = "rkexec purgatory",
    about = "Write or describe the verifying purgatory images rkexec embeds (their ABI: docs/abi.md)",
    after_help = "Examples:\n  rkexec purgatory --arch aarch64 --output purgatory-aarch64.bin\n  \
                  rkexec purgatory --arch x86_64 --elf --output purgatory-x86_64.elf\n  rkexec purgatory --info"
)]
struct PurgatoryArgs {
    /// The architecture of the image (its name, e.g. aarch64, or the
    /// architecture's: arm64).
    #[arg(long)]
    arch: Option<String>,
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
fn info(image: &EmbeddedImage) -> Result<String, String> {
    let (flat, elf) = (image.flat, image.elf);
    let img = PurgatoryImage::parse(flat, image.abi_arch).map_err(|e| format!("{}: {e}", image.name))?;
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
        name = image.name,
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
    let chosen = match a.arch.as_deref().map(image_named).transpose() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{argv0}: purgatory: {e}");
            return 1;
        }
    };
    if a.info {
        let all: Vec<&EmbeddedImage> = images::EMBEDDED.iter().collect();
        let shown = chosen.map_or(all, |c| vec![c]);
        for (i, image) in shown.into_iter().enumerate() {
            match info(image) {
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
    let (Some(image), Some(out)) = (chosen, a.output) else {
        let names: Vec<&str> = images::EMBEDDED.iter().map(|e| e.name).collect();
        eprintln!("{argv0}: purgatory: give --arch {} with --output FILE, or --info", names.join("|"));
        return 1;
    };
    if let Err(e) = PurgatoryImage::parse(image.flat, image.abi_arch) {
        eprintln!("{argv0}: purgatory: embedded {} image: {e}", image.name);
        return 255;
    }
    let bytes = if a.elf { image.elf } else { image.flat };
    let written = if out.as_os_str() == "-" {
        use std::io::Write;
        std::io::stdout().write_all(bytes).and_then(|()| std::io::stdout().flush())
    } else {
        std::fs::write(&out, bytes)
    };
    match written {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{argv0}: purgatory: {}: {e}", loader_host::escape::path(&out));
            255
        }
    }
}
