//! x86 boot_params setup_data chain (Documentation/arch/x86/boot.rst,
//! "Details of Header Fields", setup_data): refresh the SETUP_RNG_SEED
//! entry the loader placed inside the boot-params segment.

use crate::sha256::CompressFn;

/// boot_params.hdr.setup_data: physical address of the first node.
const SETUP_DATA_OFFSET: usize = 0x250;
/// include/uapi/asm/bootparam.h SETUP_RNG_SEED.
pub const SETUP_RNG_SEED: u32 = 9;
/// Hops before giving up (a loop in the chain).
const MAX_NODES: usize = 64;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetupSeedReport {
    pub refreshed: u32,
    pub kept: u32,
}

fn le_u64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off.checked_add(8)?)?.try_into().ok()?))
}

fn le_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?))
}

/// One `struct setup_data` header (bootparam.h): `next` (u64), `type`
/// (u32), `len` (u32), then `len` bytes of data. Returns (next, type, data
/// range) for a node wholly inside `seg`.
fn node_at(seg: &[u8], off: usize) -> Option<(u64, u32, core::ops::Range<usize>)> {
    let next = le_u64(seg, off)?;
    let ty = le_u32(seg, off.checked_add(8)?)?;
    let len = le_u32(seg, off.checked_add(12)?)?;
    let data = off.checked_add(16)?;
    let end = data.checked_add(usize::try_from(len).ok()?)?;
    (end <= seg.len()).then_some((next, ty, data..end))
}

/// Walk the chain starting in `seg` (the boot_params and what follows it in
/// its segment, at physical `base`) and refresh every SETUP_RNG_SEED node
/// that lies wholly inside `seg`. A node outside it is not ours to write
/// and ends the walk, as does a chain longer than MAX_NODES (a loop).
pub fn refresh_rng_seeds(
    seg: &mut [u8],
    base: u64,
    compress: CompressFn,
    entropy: &mut dyn FnMut() -> Option<u64>,
) -> SetupSeedReport {
    let mut report = SetupSeedReport::default();
    let mut next = le_u64(seg, SETUP_DATA_OFFSET).unwrap_or(0);
    for _ in 0..MAX_NODES {
        // Physical address -> offset in `seg`; 0 ends the chain.
        let off = match next.checked_sub(base).map(usize::try_from) {
            Some(Ok(off)) if next != 0 => off,
            _ => break,
        };
        let Some((link, ty, data)) = node_at(seg, off) else { break };
        if ty == SETUP_RNG_SEED {
            let Some(value) = seg.get_mut(data) else { break };
            if crate::seed::mix_in_place(value, "setup-rng-seed", compress, entropy) {
                report.refreshed += 1;
            } else {
                report.kept += 1;
            }
        }
        next = link;
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha256::compress_portable;

    /// boot_params page + a setup_data node with a 32-byte seed.
    fn boot_params(base: u64) -> Vec<u8> {
        let mut bp = vec![0u8; 8192];
        let node = 0x1000usize;
        bp[SETUP_DATA_OFFSET..SETUP_DATA_OFFSET + 8].copy_from_slice(&(base + node as u64).to_le_bytes());
        bp[node + 8..node + 12].copy_from_slice(&SETUP_RNG_SEED.to_le_bytes());
        bp[node + 12..node + 16].copy_from_slice(&32u32.to_le_bytes());
        bp[node + 16..node + 48].fill(0x33);
        bp
    }

    #[test]
    fn seed_node_is_refreshed_in_place() {
        let base = 0x10_0000;
        let mut bp = boot_params(base);
        let mut n = 0;
        let r = refresh_rng_seeds(&mut bp, base, compress_portable, &mut || {
            n += 1;
            Some(n)
        });
        assert_eq!(r, SetupSeedReport { refreshed: 1, kept: 0 });
        assert_ne!(&bp[0x1010..0x1030], &[0x33; 32]);
        assert_eq!(&bp[0x1000..0x1008], &[0; 8], "link untouched");
    }

    #[test]
    fn no_entropy_keeps_and_foreign_nodes_are_left_alone() {
        let base = 0x10_0000;
        let mut bp = boot_params(base);
        assert_eq!(refresh_rng_seeds(&mut bp, base, compress_portable, &mut || None).kept, 1);
        assert_eq!(&bp[0x1010..0x1030], &[0x33; 32]);
        // Chain pointing outside the segment: nothing happens.
        bp[SETUP_DATA_OFFSET..SETUP_DATA_OFFSET + 8].copy_from_slice(&0x9000_0000u64.to_le_bytes());
        assert_eq!(refresh_rng_seeds(&mut bp, base, compress_portable, &mut || Some(1)), SetupSeedReport::default());
        // Nodes whose header or data would run past the segment, or whose
        // offset arithmetic would overflow: nothing written, no panic.
        for (node_at_off, len) in [(8192 - 8, 0u32), (0x1000, u32::MAX), (8192 - 16, 1)] {
            let mut bp = boot_params(base);
            bp[SETUP_DATA_OFFSET..SETUP_DATA_OFFSET + 8].copy_from_slice(&(base + node_at_off).to_le_bytes());
            if node_at_off + 16 <= 8192 {
                let o = node_at_off as usize;
                bp[o + 8..o + 12].copy_from_slice(&SETUP_RNG_SEED.to_le_bytes());
                bp[o + 12..o + 16].copy_from_slice(&len.to_le_bytes());
            }
            let before = bp.clone();
            assert_eq!(
                refresh_rng_seeds(&mut bp, base, compress_portable, &mut || Some(3)),
                SetupSeedReport::default()
            );
            assert_eq!(bp, before);
        }
        for next in [u64::MAX, base - 1, base + 0x1_0000_0000] {
            let mut bp = boot_params(base);
            bp[SETUP_DATA_OFFSET..SETUP_DATA_OFFSET + 8].copy_from_slice(&next.to_le_bytes());
            assert_eq!(
                refresh_rng_seeds(&mut bp, base, compress_portable, &mut || Some(3)),
                SetupSeedReport::default()
            );
        }
        let mut bp = boot_params(base);
        assert_eq!(
            refresh_rng_seeds(&mut bp[..0x100], base, compress_portable, &mut || Some(3)),
            SetupSeedReport::default()
        );
        // A self-loop ends after MAX_NODES hops.
        let mut bp = boot_params(base);
        bp[0x1000..0x1008].copy_from_slice(&(base + 0x1000).to_le_bytes());
        let r = refresh_rng_seeds(&mut bp, base, compress_portable, &mut || Some(7));
        assert_eq!(r.refreshed as usize, MAX_NODES);
    }
}
