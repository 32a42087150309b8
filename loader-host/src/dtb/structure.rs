//! A first, iterative pass over a blob's structure block (devicetree spec
//! v0.4 §5.4) that checks what the tree builders trust: every token inside
//! the block, names NUL-terminated, and nesting no deeper than
//! [`MAX_DEPTH`]. dtoolkit's parser and `lenient` recurse per node level: a
//! blob nested 20 000 levels deep (240 KB) would overflow the stack.

use crate::bytes::be32;

/// Deepest node nesting accepted. Linux's own unflattener stops at 64
/// (drivers/of/fdt.c FDT_MAX_DEPTH); real trees are under 10 deep.
pub const MAX_DEPTH: usize = 64;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|n| n & !3)
}

/// Walk `blob`'s structure block (the header's magic and totalsize already
/// checked by the caller); Err says what is wrong.
pub fn check(blob: &[u8]) -> Result<(), String> {
    let off = be32(blob, 8).ok_or("header too short")? as usize;
    let size = be32(blob, 36).ok_or("header too short")? as usize;
    let end = off.checked_add(size).filter(|&e| e <= blob.len()).ok_or_else(|| {
        format!("structure block {off:#x}+{size:#x} (header 0x08/0x24) runs past the blob's {} bytes", blob.len())
    })?;
    let block = &blob[off..end];
    let mut at = 0usize;
    let mut depth = 0usize;
    loop {
        let token =
            be32(block, at).ok_or_else(|| format!("structure block ends without FDT_END (at {:#x})", off + at))?;
        at += 4;
        match token {
            FDT_BEGIN_NODE => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!("nodes nested more than {MAX_DEPTH} deep (Linux's FDT_MAX_DEPTH)"));
                }
                let name_len = block[at.min(block.len())..]
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or_else(|| format!("node name at {:#x} is not NUL-terminated in the block", off + at))?;
                at = align4(at + name_len + 1).ok_or("offset overflow")?;
            }
            FDT_END_NODE => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("FDT_END_NODE at {:#x} closes no node", off + at - 4))?;
            }
            FDT_PROP => {
                let len = be32(block, at).ok_or("property header runs past the block")? as usize;
                at = at.checked_add(8).and_then(|a| a.checked_add(len)).and_then(align4).ok_or("offset overflow")?;
                if at > block.len() {
                    return Err(format!("a property value runs past the structure block ({len} bytes)"));
                }
            }
            FDT_NOP => {}
            FDT_END if depth == 0 => return Ok(()),
            FDT_END => return Err(format!("FDT_END with {depth} nodes still open")),
            other => return Err(format!("unknown token {other:#x} at {:#x}", off + at - 4)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob whose structure block nests `depth` empty nodes.
    pub(crate) fn nested(depth: usize) -> Vec<u8> {
        let mut s = Vec::new();
        for _ in 0..depth {
            s.extend_from_slice(&FDT_BEGIN_NODE.to_be_bytes());
            s.extend_from_slice(b"n\0\0\0");
        }
        for _ in 0..depth {
            s.extend_from_slice(&FDT_END_NODE.to_be_bytes());
        }
        s.extend_from_slice(&FDT_END.to_be_bytes());
        let off_rsv = 40u32;
        let off_struct = off_rsv + 16;
        let off_strings = off_struct + s.len() as u32;
        let mut d = Vec::new();
        for v in [0xd00d_feed, off_strings, off_struct, off_strings, off_rsv, 17, 16, 0, 0, s.len() as u32] {
            d.extend_from_slice(&u32::to_be_bytes(v));
        }
        d.extend_from_slice(&[0u8; 16]);
        d.extend_from_slice(&s);
        d
    }

    #[test]
    fn nesting_is_bounded_without_recursion() {
        assert_eq!(check(&nested(MAX_DEPTH)), Ok(()));
        let err = check(&nested(20_000)).unwrap_err();
        assert!(err.contains("nested more than 64 deep"), "{err}");
        let mut cut = nested(3);
        cut.truncate(cut.len() - 4);
        assert!(check(&cut).is_err());
    }

    #[test]
    fn real_blobs_pass() {
        assert_eq!(check(&crate::testing::qemu_virt_dtb("console=ttyAMA0")), Ok(()));
    }
}
