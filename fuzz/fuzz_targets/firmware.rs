//! The firmware memory map readers (system::firmware): e820 from
//! /proc/iomem's top level, a /sys/firmware/memmap entry's start/end/type
//! files, the zero page in /sys/kernel/boot_params/data and the RSDP from
//! /sys/firmware/efi/systab.
//!
//! Input: the first 0x1000 bytes are a boot_params blob; the rest is text
//! whose first three lines are a memmap entry's files, the whole of it also
//! read as /proc/iomem and as systab.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use loader_host::system::firmware::{e820_from_iomem, memmap_entry, running_from_boot_params, systab_rsdp};
use loader_host::system::iomem::Iomem;

const BOOT_PARAMS: usize = 0x1000;

fuzz_target!(|data: &[u8]| {
    let (bp, rest) = data.split_at(data.len().min(BOOT_PARAMS));
    let r = running_from_boot_params(bp);
    if bp.len() >= 0x78 {
        assert_eq!(r.acpi_rsdp_addr, u64::from_le_bytes(bp[0x70..0x78].try_into().unwrap()));
        assert!(r.screen_info.is_some());
    }
    let text = String::from_utf8_lossy(rest);
    let _ = systab_rsdp(&text);
    let mut lines = text.lines().map(str::trim);
    let (start, end, kind) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    match memmap_entry(Path::new("/sys/firmware/memmap/0"), start, end, kind) {
        Ok(e) => assert!(e.addr.checked_add(e.size).is_some() || e.size == 0, "entry wraps"),
        Err(e) => drop(e.to_string()),
    }
    if let Ok(io) = Iomem::parse(&text) {
        let map = e820_from_iomem(&io);
        assert!(map.windows(2).all(|w| w[0] <= w[1]), "e820 map not sorted");
        assert!(map.len() <= io.entries().iter().filter(|e| e.depth == 0).count());
    }
});
