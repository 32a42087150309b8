//! `image::load` over every kernel format (UKI, EFI zboot gzip/zstd,
//! bzImage, arm64 Image, Image.gz, vmlinux ELF): detected from the bytes,
//! and forced with `-t NAME`.
//! A parsed kernel must satisfy what the planners rely on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use kexec_purgatory::elf::{EM_AARCH64, EM_PPC64, EM_RISCV, EM_X86_64};
use loader_host::image::{self, Host, Kernel, KernelImage, FORMATS};
use loader_host::input::Blob;

const HOST: Host = Host { page_size: 4096 };

fn check(k: &KernelImage, file: &[u8]) {
    // A container's kernel is its .linux section, not the whole file.
    let raw: &[u8] = k.embedded.as_ref().map_or(file, |e| &e.linux);
    match &k.kernel {
        Kernel::Image(i) => {
            // The image and its bss fit from the load address.
            assert!(i.mem_size >= i.data.len() as u64, "mem_size below the file");
            assert!(i.text_offset.is_multiple_of(4096), "text_offset {:#x} not page aligned", i.text_offset);
            match k.machine {
                // booting.rst §4: placed text_offset bytes above a 2 MiB base.
                EM_AARCH64 => assert!(i.text_offset.checked_add(i.mem_size).is_some(), "text_offset + mem_size wraps"),
                // riscv boot.rst: text_offset is the base's alignment, 0 or 4 KiB..1 GiB.
                EM_RISCV => {
                    assert!(i.text_offset == 0 || i.text_offset.is_power_of_two() && i.text_offset <= 1 << 30)
                }
                m => panic!("an Image for ELF machine {m}"),
            }
        }
        Kernel::BzImage(b) => {
            assert_eq!(k.machine, EM_X86_64);
            assert_eq!(b.setup_size + b.payload.len(), raw.len(), "payload is not the rest of the file");
            assert!(!b.payload.is_empty());
            assert!(b.payload.len() as u64 <= b.init_size, "payload larger than init_size");
            assert!(b.kernel_alignment.is_power_of_two());
            assert!(b.cmdline_size > 0);
        }
        Kernel::Elf(e) => {
            assert!(matches!(k.machine, EM_X86_64 | EM_PPC64), "a vmlinux span for machine {}", k.machine);
            assert!(e.data.len() as u64 <= e.mem_size, "span shorter than its data");
            let end = e.paddr.checked_add(e.mem_size).expect("span wraps");
            assert!((e.paddr..end).contains(&e.entry), "entry outside the span");
            assert!(e.loads > 0);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let blob = Blob::new(data.to_vec());
    let _ = image::probe_machine(data);
    match image::load(blob.clone(), None, HOST) {
        Ok(k) => check(&k, data),
        Err(e) => drop(e.to_string()),
    }
    // `-t NAME` for every other format that recognises the file (zboot and
    // Image both start with "MZ"), and one that does not.
    for f in FORMATS.iter().filter(|f| f.probe(data)).skip(1) {
        match image::load(blob.clone(), Some(f.names()[0]), HOST) {
            Ok(k) => check(&k, data),
            Err(e) => drop(e.to_string()),
        }
    }
    if let Some(other) = FORMATS.iter().find(|f| !f.probe(data)) {
        let e =
            image::load(blob.clone(), Some(other.names()[0]), HOST).expect_err("-t with a format that does not probe");
        drop(e.to_string());
    }
});
