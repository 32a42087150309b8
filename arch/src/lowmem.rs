//! Copying the first bytes of physical memory, from address 0: the kdump
//! backup (ppc64le; kexec-tools' purgatory/arch/ppc64/crashdump_backup.c
//! does `memcpy(backup_start, 0, 0x10000)`). Portable: any architecture
//! whose purgatory runs with physical addressing (real mode, or an
//! identity map covering both ranges) may use it.
//!
//! Address 0 is outside every Rust allocation, and Rust lets volatile
//! accesses reach such memory at any address, 0 included, through a
//! pointer without provenance (`core::ptr::read_volatile`, Rust 1.95: "any
//! address value is possible, including 0 and usize::MAX ... it can be
//! created with `without_provenance`. The access must not trap."; and
//! `write_volatile` the same for the destination, a loaded segment). A
//! plain load through a null pointer would be undefined behaviour; so would
//! `copy_nonoverlapping` from it.

use core::ptr::{read_volatile, without_provenance, without_provenance_mut, write_volatile};

/// Copy physical `[0, len)` to `[dst, dst + len)`: 64-bit words when `dst`
/// is 8-byte aligned (the source, from 0, always is), then the tail (or
/// everything, when `dst` is not aligned) byte by byte. Volatile on both
/// sides, so the compiler neither drops nor merges the accesses, nor turns
/// the loop into a call to `memcpy` (which would read through a null
/// pointer).
///
/// # Safety
///
/// `[0, len)` must be memory outside every Rust allocation that reads
/// without trapping and without side effects (RAM, not device registers);
/// `[dst, dst + len)` must be RAM outside every Rust allocation (a loaded
/// segment) the caller may write, not overlapping `[0, len)`, and must not
/// wrap. Both physically addressed as the caller runs.
pub unsafe fn copy_from_zero(dst: u64, len: u64) {
    let (dst, len) = (dst as usize, len as usize);
    let words = if dst % 8 == 0 { len / 8 } else { 0 };
    for i in 0..words {
        // SAFETY: the caller's contract; both addresses are 8-byte aligned
        // (i * 8 and dst + i * 8 with dst aligned) and inside the ranges.
        unsafe {
            let word = read_volatile(without_provenance::<u64>(i * 8));
            write_volatile(without_provenance_mut::<u64>(dst + i * 8), word);
        }
    }
    for at in words * 8..len {
        // SAFETY: the caller's contract; inside both ranges.
        unsafe {
            let byte = read_volatile(without_provenance::<u8>(at));
            write_volatile(without_provenance_mut::<u8>(dst + at), byte);
        }
    }
}
