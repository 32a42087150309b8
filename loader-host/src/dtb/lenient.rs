//! Read an FDT blob into dtoolkit's model without the spec's naming rules.
//!
//! dtoolkit validates node and property names against the devicetree
//! specification (§2.2.1, §2.2.4: 1-31 characters from a fixed set) and
//! refuses the whole blob otherwise. Shipping device trees break that rule
//! (Raspberry Pi 4's "arm,cpu-registers-not-fw-configured", the dwc3
//! "snps,dis-u2-freeclk-exists-quirk"); libfdt and the kernel accept them.
//! This reader checks only the structure (devicetree spec §5, "Flattened
//! Devicetree (DTB) Format") and is used when dtoolkit refuses a name.
//! Writing stays with dtoolkit.

use std::fmt;

use dtoolkit::memreserve::MemoryReservation;
use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};

/// spec §5.4.1 token values.
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
/// spec §5.2: header is ten big-endian u32s.
const HEADER_LEN: usize = 40;
/// Nesting deeper than this is refused (dtoolkit's writer recurses).
pub const MAX_DEPTH: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LenientError {
    pub offset: usize,
    pub why: &'static str,
}

impl fmt::Display for LenientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {:#x}", self.why, self.offset)
    }
}

impl std::error::Error for LenientError {}

fn err(offset: usize, why: &'static str) -> LenientError {
    LenientError { offset, why }
}

fn be32(b: &[u8], at: usize) -> Result<u32, LenientError> {
    let s = b.get(at..at.saturating_add(4)).ok_or(err(at, "truncated"))?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], at: usize) -> Result<u64, LenientError> {
    Ok((u64::from(be32(b, at)?) << 32) | u64::from(be32(b, at + 4)?))
}

/// A NUL-terminated UTF-8 string at `at`, not running past `end`.
fn cstr(b: &[u8], at: usize, end: usize) -> Result<&str, LenientError> {
    let s = b.get(at..end).ok_or(err(at, "string outside its block"))?;
    let n = s.iter().position(|&c| c == 0).ok_or(err(at, "string is not NUL-terminated inside its block"))?;
    std::str::from_utf8(&s[..n]).map_err(|_| err(at, "string is not UTF-8"))
}

fn align4(v: usize) -> usize {
    v.next_multiple_of(4)
}

/// Parse `blob` (exactly `totalsize` bytes).
pub fn parse(blob: &[u8]) -> Result<DeviceTree, LenientError> {
    if blob.len() < HEADER_LEN {
        return Err(err(0, "shorter than the 40-byte FDT header"));
    }
    // spec §5.2 header fields.
    let off_struct = be32(blob, 8)? as usize;
    let off_strings = be32(blob, 12)? as usize;
    let off_rsvmap = be32(blob, 16)? as usize;
    let version = be32(blob, 20)?;
    let size_strings = be32(blob, 32)? as usize;
    let size_struct = be32(blob, 36)? as usize;
    if version < 17 {
        // size_dt_struct only exists from version 17 (spec §5.2).
        return Err(err(20, "FDT version below 17"));
    }
    let struct_end = off_struct.checked_add(size_struct).filter(|&e| e <= blob.len());
    let strings_end = off_strings.checked_add(size_strings).filter(|&e| e <= blob.len());
    let (Some(struct_end), Some(strings_end)) = (struct_end, strings_end) else {
        return Err(err(8, "structure or strings block outside totalsize"));
    };

    let mut tree = DeviceTree::new();
    // spec §5.3: (address, size) u64 pairs ended by a zero pair.
    let mut at = off_rsvmap;
    loop {
        let (address, size) = (be64(blob, at)?, be64(blob, at + 8)?);
        if address == 0 && size == 0 {
            break;
        }
        tree.memory_reservations.push(MemoryReservation::new(address, size));
        at += 16;
    }

    // spec §5.4: the structure block.
    let mut stack: Vec<DeviceTreeNode> = Vec::new();
    let mut root: Option<DeviceTreeNode> = None;
    let mut at = off_struct;
    loop {
        if at + 4 > struct_end {
            return Err(err(at, "structure block ends without FDT_END"));
        }
        let token = be32(blob, at)?;
        at += 4;
        match token {
            FDT_BEGIN_NODE => {
                if root.is_some() {
                    return Err(err(at, "second root node"));
                }
                let name = cstr(blob, at, struct_end)?;
                if stack.len() >= MAX_DEPTH {
                    return Err(err(at, "nodes nested too deeply"));
                }
                if stack.is_empty() != name.is_empty() {
                    return Err(err(at, "only the root node may have an empty name"));
                }
                at = align4(at + name.len() + 1);
                stack.push(DeviceTreeNode::new_unchecked(name));
            }
            FDT_PROP => {
                let len = be32(blob, at)? as usize;
                let nameoff = be32(blob, at + 4)? as usize;
                let name = cstr(blob, off_strings.saturating_add(nameoff), strings_end)?;
                let value = blob.get(at + 8..at + 8 + len).filter(|_| at + 8 + len <= struct_end);
                let value = value.ok_or(err(at, "property value outside the structure block"))?;
                let node = stack.last_mut().ok_or(err(at, "property outside any node"))?;
                node.add_property(DeviceTreeProperty::new_unchecked(name, value.to_vec()));
                at = align4(at + 8 + len);
            }
            FDT_NOP => {}
            FDT_END_NODE => {
                let node = stack.pop().ok_or(err(at, "FDT_END_NODE without a node"))?;
                match stack.last_mut() {
                    Some(parent) => parent.add_child(node),
                    None => root = Some(node),
                }
            }
            FDT_END => {
                let Some(root) = root else {
                    return Err(err(at, "FDT_END before the root node closed"));
                };
                tree.root = root;
                return Ok(tree);
            }
            _ => return Err(err(at - 4, "unknown structure token")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtoolkit::Node;

    fn sample() -> Vec<u8> {
        let mut w =
            vm_fdt::FdtWriter::new_with_mem_reserv(&[vm_fdt::FdtReserveEntry::new(0x4800_0000, 0x1000).unwrap()])
                .unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        let chosen = w.begin_node("chosen").unwrap();
        w.property_string("bootargs", "console=ttyAMA0").unwrap();
        w.end_node(chosen).unwrap();
        let mem = w.begin_node("memory@40000000").unwrap();
        w.property_null("dma-coherent").unwrap();
        w.end_node(mem).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn matches_dtoolkit_on_valid_blobs() {
        let blob = sample();
        let strict = DeviceTree::from_fdt(&dtoolkit::fdt::Fdt::new(&blob).unwrap());
        assert_eq!(parse(&blob).unwrap(), strict);
    }

    #[test]
    fn accepts_long_property_names() {
        let mut blob = sample();
        // Rename "dma-coherent" in the strings block to a 35-character name
        // by appending it: rebuild via the model to keep offsets right.
        let mut tree = parse(&blob).unwrap();
        tree.find_node_mut("/chosen")
            .unwrap()
            .add_property(DeviceTreeProperty::new_unchecked("arm,cpu-registers-not-fw-configured", Vec::<u8>::new()));
        blob = tree.to_dtb();
        assert!(dtoolkit::fdt::Fdt::new(&blob).is_err(), "dtoolkit refuses it");
        let back = parse(&blob).unwrap();
        assert!(back.find_node("/chosen").unwrap().property("arm,cpu-registers-not-fw-configured").is_some());
        assert_eq!(back.memory_reservations.len(), 1);
    }

    #[test]
    fn refuses_broken_structure() {
        let blob = sample();
        assert!(parse(&blob[..20]).is_err());
        let mut b = blob.clone();
        let off_struct = be32(&b, 8).unwrap() as usize;
        b[off_struct + 3] = 7; // unknown token in place of FDT_BEGIN_NODE
        assert_eq!(parse(&b).unwrap_err().why, "unknown structure token");
        let mut b = blob.clone();
        b[36..40].copy_from_slice(&0xffff_0000u32.to_be_bytes());
        assert!(parse(&b).unwrap_err().why.contains("outside totalsize"));
        let mut b = blob;
        b[20..24].copy_from_slice(&16u32.to_be_bytes());
        assert_eq!(parse(&b).unwrap_err().why, "FDT version below 17");
    }
}
