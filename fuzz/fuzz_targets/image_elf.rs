//! vmlinux ELF (`image::load(-t vmlinux)`): x86_64 PT_LOADs flattened into
//! one physical span, arm64's Image found at e_entry. The span holds the
//! entry, never wraps, and what is built stays within the loader's cap on
//! a kernel image.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loader_host::image::decompress::MAX_DECOMPRESSED;
use loader_host::image::{self, Host, Kernel};
use loader_host::input::Blob;

const HOST: Host = Host { page_size: 4096 };

fuzz_target!(|data: &[u8]| {
    match image::load(Blob::new(data.to_vec()), Some("vmlinux"), HOST) {
        Ok(k) => match &k.kernel {
            Kernel::Elf(e) => {
                let end = e.paddr.checked_add(e.mem_size).expect("span wraps");
                assert!((e.paddr..end).contains(&e.entry), "entry outside the span");
                assert!(e.data.len() as u64 <= e.mem_size);
                assert!(e.data.len() as u64 <= MAX_DECOMPRESSED, "span data above the kernel cap");
            }
            Kernel::Image(i) => assert!(i.data.len() as u64 <= MAX_DECOMPRESSED, "Image above the kernel cap"),
            Kernel::BzImage(_) => panic!("a vmlinux parsed as a bzImage"),
        },
        Err(e) => drop(e.to_string()),
    }
});
