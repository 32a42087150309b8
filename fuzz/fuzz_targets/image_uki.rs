//! Unified kernel images: the PE/COFF section table (`image::pe`) and
//! `image::load(-t uki)`, whose `.linux` goes through the format table
//! again. Every section a parsed UKI hands over lies inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loader_host::image::pe::Pe;
use loader_host::image::{self, Host};
use loader_host::input::Blob;

const HOST: Host = Host { page_size: 4096 };

fuzz_target!(|data: &[u8]| {
    let blob = Blob::new(data.to_vec());
    if let Ok(pe) = Pe::parse(data) {
        assert!(pe.sections.len() <= loader_host::image::pe::MAX_SECTIONS);
        for s in &pe.sections {
            if let Ok(bytes) = s.data(&blob) {
                let start = s.raw_offset as usize;
                assert_eq!(&data[start..start + bytes.len()], &bytes[..]);
            }
        }
    }
    match image::load(blob, Some("uki"), HOST) {
        Ok(k) => {
            let e = k.embedded.expect("a UKI is a container");
            assert!(e.linux.len() <= data.len());
            assert_ne!(e.inner_format, "UKI", "a UKI inside a UKI");
            if let Some(c) = e.cmdline {
                assert_eq!(c.trim_ascii(), &c[..]);
                assert!(!c.contains(&0));
            }
        }
        Err(e) => drop(e.to_string()),
    }
});
