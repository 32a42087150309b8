//! libfdt's `fdt_check_header()` (scripts/dtc/libfdt/fdt.c), on a
//! header alone: what riscv's `machine_kexec_prepare()`
//! (arch/riscv/kernel/machine_kexec.c) runs over the first
//! `sizeof(struct fdt_header)` bytes of each kexec segment, in order, to
//! decide which one is the FDT it hands to the next kernel in a1.

use kexec_purgatory::fdt::{HEADER_LEN, MAGIC};

use crate::fields::be32;

/// libfdt_internal.h: FDT_FIRST_SUPPORTED_VERSION, FDT_LAST_SUPPORTED_VERSION.
const FIRST_SUPPORTED: u32 = 0x02;
const LAST_SUPPORTED: u32 = 0x11;

/// fdt_header_size_(): 28 bytes for version 1, 32 for 2, 36 for 3-16, 40
/// from 17.
fn header_size(version: u32) -> u64 {
    match version {
        ..=1 => 28,
        2 => 32,
        3..=16 => 36,
        _ => 40,
    }
}

/// Whether the 40 bytes at the start of `head` (zeros where it is
/// shorter) pass `fdt_check_header()`: the magic, a supported version,
/// totalsize at least the header and at most INT_MAX, and the
/// memory-reservation, structure and strings blocks inside totalsize.
pub fn passes(head: &[u8]) -> bool {
    let mut h = [0u8; HEADER_LEN];
    let n = head.len().min(HEADER_LEN);
    h[..n].copy_from_slice(&head[..n]);
    let field = |i: usize| u64::from(be32(&h, i * 4).unwrap_or(0));
    let (magic, total, off_struct, off_strings, off_rsv) = (field(0), field(1), field(2), field(3), field(4));
    let (version, last_comp, size_strings, size_struct) = (field(5), field(6), field(8), field(9));
    if magic != u64::from(MAGIC) {
        return false;
    }
    if version < u64::from(FIRST_SUPPORTED) || last_comp > u64::from(LAST_SUPPORTED) || version < last_comp {
        return false;
    }
    let hdr = header_size(version as u32);
    if total < hdr || total > i32::MAX as u64 {
        return false;
    }
    // check_off_(): hdrsize <= off <= totalsize; check_block_(): also
    // off + size <= totalsize (all in 64 bits here: no wrap).
    let off_ok = |off: u64| off >= hdr && off <= total;
    let block_ok = |off: u64, size: u64| off_ok(off) && off + size <= total;
    let struct_ok = if version < 17 { off_ok(off_struct) } else { block_ok(off_struct, size_struct) };
    off_ok(off_rsv) && struct_ok && block_ok(off_strings, size_strings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(fields: [u32; 10]) -> Vec<u8> {
        fields.iter().flat_map(|f| f.to_be_bytes()).collect()
    }

    const GOOD: [u32; 10] = [MAGIC, 0x2000, 0x40, 0x1800, 0x30, 17, 16, 0, 0x100, 0x1000];

    #[test]
    fn a_real_blob_passes_and_each_rule_fails_it() {
        assert!(passes(&crate::testing::qemu_virt_dtb("x")));
        assert!(passes(&header(GOOD)));
        let broken: [(usize, u32); 9] = [
            (0, 0xd00d_fee0), // magic
            (5, 1),           // version below the first supported
            (6, 18),          // last_comp_version above the last supported
            (1, 0x20),        // totalsize below the header
            (1, 0x8000_0000), // totalsize above INT_MAX
            (4, 0x3000),      // memory reservation map past totalsize
            (2, 0x10),        // structure block inside the header
            (9, 0x2000),      // structure block runs past totalsize
            (3, 0x1f80),      // strings block runs past totalsize
        ];
        for (i, v) in broken {
            let mut f = GOOD;
            f[i] = v;
            assert!(!passes(&header(f)), "field {i} = {v:#x} should fail");
        }
        // Version 16 checks only the structure block's offset.
        let mut f = GOOD;
        f[5] = 16;
        f[9] = 0x10_0000;
        assert!(passes(&header(f)));
        assert!(!passes(&[]), "no bytes: zeros, no magic");
        assert!(!passes(b"MZ\0\0"));
    }
}
