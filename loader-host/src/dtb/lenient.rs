//! Read an FDT blob into dtoolkit's model without the spec's naming rules.
//!
//! dtoolkit validates node and property names against the devicetree
//! specification (§2.2.1, §2.2.4: 1-31 characters from a fixed set) and
//! refuses the whole blob otherwise. Shipping device trees break that rule
//! (Raspberry Pi 4's "arm,cpu-registers-not-fw-configured", the dwc3
//! "snps,dis-u2-freeclk-exists-quirk"); libfdt and the kernel accept them.
//! This reader checks only the structure (devicetree spec §5, "Flattened
//! Devicetree (DTB) Format"), with the purgatory's own walker, and is used
//! when dtoolkit refuses a name. Writing stays with dtoolkit.

use std::fmt;

use dtoolkit::memreserve::MemoryReservation;
use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
use kexec_purgatory::fdt::{self, FdtError, Token, Walker};

use crate::fields::be64;

/// Why a blob cannot be read even leniently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LenientError {
    /// The structure breaks a rule of the FDT format, as the purgatory's
    /// walker (`kexec_purgatory::fdt`) finds it.
    Fdt(FdtError),
    /// A node or property name is not UTF-8 (the model holds text names).
    NotUtf8 {
        /// The name's bytes, lossily decoded.
        name: String,
    },
}

impl fmt::Display for LenientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fdt(e) => f.write_str(e.describe()),
            Self::NotUtf8 { name } => write!(f, "the name {name:?} is not UTF-8"),
        }
    }
}

impl std::error::Error for LenientError {}

fn text(name: &[u8]) -> Result<&str, LenientError> {
    std::str::from_utf8(name).map_err(|_| LenientError::NotUtf8 { name: String::from_utf8_lossy(name).into_owned() })
}

/// Parse `blob` with the purgatory's bounds-checked walker (the one FDT
/// reader of loader and purgatory): the header, every reservation entry
/// and the whole structure block are checked as the purgatory checks
/// them; only the model is built here.
pub fn parse(blob: &[u8]) -> Result<DeviceTree, LenientError> {
    let mut walker = Walker::new(blob).map_err(LenientError::Fdt)?;
    let hdr = *walker.header();
    let mut tree = DeviceTree::new();
    // spec §5.3: `reservations` checked every entry up to the terminator.
    let count = fdt::reservations(blob, &hdr).map_err(LenientError::Fdt)?;
    for i in 0..count {
        let at = hdr.off_mem_rsvmap + 16 * i;
        let entry = be64(blob, at).zip(be64(blob, at + 8));
        let (address, size) = entry.ok_or(LenientError::Fdt(FdtError::ReservationMap))?;
        tree.memory_reservations.push(MemoryReservation::new(address, size));
    }
    // spec §5.4: the structure block, one token at a time.
    let mut stack: Vec<DeviceTreeNode> = Vec::new();
    while let Some(token) = walker.step().map_err(LenientError::Fdt)? {
        match token {
            Token::BeginNode { name, .. } => stack.push(DeviceTreeNode::new_unchecked(text(name)?)),
            Token::Prop { name, value, .. } => {
                // The walker checked the value lies in the structure block
                // and that a node is open.
                let bytes = value.bytes(blob).ok_or(LenientError::Fdt(FdtError::PropValue))?;
                let node = stack.last_mut().ok_or(LenientError::Fdt(FdtError::Nesting))?;
                node.add_property(DeviceTreeProperty::new_unchecked(text(name)?, bytes.to_vec()));
            }
            Token::EndNode { .. } => {
                let node = stack.pop().ok_or(LenientError::Fdt(FdtError::Nesting))?;
                match stack.last_mut() {
                    Some(parent) => parent.add_child(node),
                    None => tree.root = node,
                }
            }
        }
    }
    Ok(tree)
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
        assert_eq!(parse(&blob[..20]), Err(LenientError::Fdt(FdtError::Magic)));
        let mut b = blob.clone();
        let off_struct = u32::from_be_bytes(b[8..12].try_into().unwrap()) as usize;
        b[off_struct + 3] = 7; // unknown token in place of FDT_BEGIN_NODE
        assert_eq!(parse(&b), Err(LenientError::Fdt(FdtError::Token)));
        let mut b = blob.clone();
        b[36..40].copy_from_slice(&0xffff_0000u32.to_be_bytes());
        assert_eq!(parse(&b), Err(LenientError::Fdt(FdtError::Blocks)));
        let mut b = blob;
        b[20..24].copy_from_slice(&15u32.to_be_bytes());
        assert_eq!(parse(&b), Err(LenientError::Fdt(FdtError::Version)));
    }
}
