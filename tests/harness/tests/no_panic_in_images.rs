//! No panic is reachable in the purgatory images the loader embeds.
//!
//! The images are built with panic=abort, fat LTO and --gc-sections, so
//! code nothing can reach is not linked. Every panic path (a failed bounds
//! check, an `unwrap()` on None, an overflowing `checked` operation turned
//! into `expect`, a slice length mismatch...) ends in `core::panicking::*`
//! and our `#[panic_handler]` (symbol `rust_begin_unwind`): if either is in
//! the symbol table, some input can make the purgatory panic instead of
//! refusing cleanly. Checked for the aarch64, x86_64, riscv64 and ppc64le images; adding an
//! `unwrap()` on input anywhere on the purgatory's path makes this fail.

use loader_host::purgatory_image::{AARCH64_ELF, PPC64LE_ELF, RISCV64_ELF, X86_64_ELF};
use object::{Object, ObjectSymbol};

/// Substrings of (mangled or not) symbol names that only panic machinery
/// has: core::panicking::{panic, panic_fmt, panic_bounds_check,
/// panic_const_*, assert_failed, ...}, the handler, and the cold
/// `*_fail`/`*_failed` helpers of core::option, core::result and
/// core::slice.
const PANIC_MARKERS: &[&str] = &[
    "panicking",
    "panic_",
    "rust_begin_unwind",
    "unwrap_failed",
    "expect_failed",
    "index_fail",
    "index_len_fail",
    "index_order_fail",
    "len_mismatch_fail",
    "assert_failed",
];

fn panic_symbols(elf: &[u8]) -> (usize, Vec<String>) {
    let file = object::File::parse(elf).expect("purgatory ELF parses");
    let names: Vec<String> = file.symbols().filter_map(|s| s.name().ok().map(str::to_string)).collect();
    let hits = names.iter().filter(|n| PANIC_MARKERS.iter().any(|m| n.contains(m))).cloned().collect();
    (names.len(), hits)
}

#[test]
fn release_images_have_no_panic_machinery() {
    for (arch, elf) in
        [("aarch64", AARCH64_ELF), ("x86_64", X86_64_ELF), ("riscv64", RISCV64_ELF), ("ppc64le", PPC64LE_ELF)]
    {
        let (count, hits) = panic_symbols(elf);
        // The check means something only if the image has its symbols.
        assert!(count > 50, "{arch}: only {count} symbols: was the image stripped?");
        let file = object::File::parse(elf).unwrap();
        assert!(file.symbols().any(|s| s.name() == Ok("purgatory_main")), "{arch}: no purgatory_main symbol");
        assert!(hits.is_empty(), "{arch}: a panic is reachable; panic machinery linked in: {hits:#?}");
    }
}

#[test]
fn the_markers_catch_panic_machinery() {
    // The check itself: a host binary (this one) does have panic paths.
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let (_, hits) = panic_symbols(&me);
    assert!(hits.iter().any(|h| h.contains("panicking")), "markers found nothing in a binary that panics");
}
