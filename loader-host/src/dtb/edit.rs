//! Edit a device tree blob for the next kernel: /chosen properties, seeds,
//! stale kexec properties and /memreserve/ entries, plus a generic
//! property editor. Parsing and serialisation are dtoolkit's (its
//! `DeviceTree` model); blobs whose names break the spec's naming rules are
//! read by `lenient` instead. The rules follow what the kernel's own
//! kexec_file_load does to a DTB (drivers/of/kexec.c,
//! of_kexec_alloc_and_setup_fdt).

use super::lenient;

use std::fmt;

use dtoolkit::fdt::Fdt;
use dtoolkit::memreserve::MemoryReservation;
use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
use dtoolkit::{Node, Property};

use crate::escape;
use crate::range::{align_up, Range};

use kexec_purgatory::fdt::{BOOT_CPUID_PHYS_OFFSET, HEADER_LEN, MAGIC};

/// devicetree spec §5.2: `totalsize`, the second header field.
const TOTALSIZE_AT: usize = 4;

/// Free space appended by default, so that in-place editors (libfdt's
/// fdt_setprop, the purgatory's patcher) can grow properties.
pub const DEFAULT_PADDING: u32 = 4096;
/// Documentation/devicetree/bindings/chosen.txt: kaslr-seed is a u64.
pub const KASLR_SEED_LEN: usize = 8;
/// Bytes of rng-seed we write (the kernel adds it to the entropy pool).
pub const RNG_SEED_LEN: usize = 64;
/// Properties that describe the running kernel's kexec state, never the
/// next kernel's: crash dump (chosen.txt "linux,elfcorehdr",
/// "linux,usable-memory-range") and the IMA measurement buffer handed over
/// by kexec_file (drivers/of/kexec.c, remove_ima_buffer).
pub const STALE_CHOSEN_PROPERTIES: [&str; 3] =
    ["linux,elfcorehdr", "linux,usable-memory-range", "linux,ima-kexec-buffer"];

/// drivers/of/of_private.h OF_ROOT_NODE_ADDR_CELLS_DEFAULT (but on SPARC).
pub const ROOT_ADDRESS_CELLS: u32 = 1;
/// drivers/of/of_private.h OF_ROOT_NODE_SIZE_CELLS_DEFAULT.
pub const ROOT_SIZE_CELLS: u32 = 1;

const INITRD_START: &str = "linux,initrd-start";
const INITRD_END: &str = "linux,initrd-end";

/// PSCI conduit: Documentation/devicetree/bindings/arm/psci.yaml `method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciMethod {
    /// "hvc": PSCI calls are HVC instructions (to a hypervisor).
    Hvc,
    /// "smc": PSCI calls are SMC instructions (to secure firmware).
    Smc,
}

impl PsciMethod {
    /// The parameter block's `psci_conduit` for this method
    /// (kexec_purgatory::abi `PSCI_CONDUIT_*`).
    pub fn conduit(self) -> u32 {
        match self {
            PsciMethod::Hvc => kexec_purgatory::abi::PSCI_CONDUIT_HVC,
            PsciMethod::Smc => kexec_purgatory::abi::PSCI_CONDUIT_SMC,
        }
    }
}

/// `#address-cells` / `#size-cells` of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cells {
    /// `#address-cells`: u32 cells per address in children's `reg`.
    pub address: u32,
    /// `#size-cells`: u32 cells per size in children's `reg`.
    pub size: u32,
}

/// Why a DTB cannot be read or edited as asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DtbEditError {
    /// The blob is not a valid FDT.
    Parse {
        /// The rule it breaks (devicetree spec §5 structure, header fields).
        why: String,
    },
    /// A path is not absolute or has an empty component.
    BadPath {
        /// The path given.
        path: String,
    },
    /// A node or property name breaks devicetree spec §2.2.
    BadName {
        /// The name.
        name: String,
        /// The naming rule it breaks.
        why: String,
    },
    /// A node that must exist does not.
    NoNode {
        /// The node's path.
        path: String,
    },
    /// A property's value has the wrong shape.
    BadValue {
        /// The node's path.
        path: String,
        /// The property's name.
        name: String,
        /// What shape was expected.
        why: String,
    },
    /// The tree cannot describe what the new kernel needs (no RAM).
    Unusable {
        /// What it lacks, and the rule.
        why: String,
    },
    /// The result would not fit the FDT's 32-bit sizes.
    TooLarge {
        /// The size the blob would have.
        bytes: u64,
    },
}

impl fmt::Display for DtbEditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parse { why } => write!(f, "DTB does not parse: {why}"),
            Self::BadPath { path } => {
                write!(f, "DTB path {:?} is not an absolute node path (\"/\" or \"/a/b@1\")", escape::text(path))
            }
            Self::BadName { name, why } => write!(f, "DTB name {:?}: {why}", escape::text(name)),
            Self::NoNode { path } => write!(f, "DTB has no node {}", escape::text(path)),
            Self::BadValue { path, name, why } => {
                write!(f, "DTB property {}/{}: {why}", escape::text(path.trim_end_matches('/')), escape::text(name))
            }
            Self::Unusable { why } => write!(f, "DTB {why}"),
            Self::TooLarge { bytes } => {
                write!(f, "DTB would be {bytes} bytes, over the 4 GiB limit of the FDT header's 32-bit totalsize")
            }
        }
    }
}

impl std::error::Error for DtbEditError {}

fn bad_value(path: &str, name: &str, why: impl Into<String>) -> DtbEditError {
    DtbEditError::BadValue { path: path.to_string(), name: name.to_string(), why: why.into() }
}

/// Split "/a/b" into ["a", "b"]; "/" gives [].
fn components(path: &str) -> Result<Vec<&str>, DtbEditError> {
    let bad = || DtbEditError::BadPath { path: path.to_string() };
    let rest = path.strip_prefix('/').ok_or_else(bad)?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    Ok(parts)
}

/// The key of `node`'s child matching `name`: exact, or, for a name
/// without a unit address, the first child with that base name (as
/// dtoolkit's `Node::child` and libfdt's fdt_subnode_offset match).
fn child_key(node: &DeviceTreeNode, name: &str) -> Option<String> {
    (&node).child(name).map(|c| c.name().to_string())
}

/// A property's value, borrowed from the tree (dtoolkit's `Node` and
/// `Property` are implemented on references; name them to keep the
/// tree's lifetime).
fn value_of<'a>(node: &'a DeviceTreeNode, name: &str) -> Option<&'a [u8]> {
    let prop: &'a DeviceTreeProperty = <DeviceTreeNode as Node>::property(node, name)?;
    <&'a DeviceTreeProperty as Property>::value_as::<&'a [u8]>(&prop).ok()
}

/// A big-endian number of 1 or 2 cells.
fn read_cells(value: &[u8]) -> Option<u64> {
    match value.len() {
        4 => Some(u64::from(u32::from_be_bytes([value[0], value[1], value[2], value[3]]))),
        8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(value);
            Some(u64::from_be_bytes(b))
        }
        _ => None,
    }
}

/// drivers/of/address.c OF_MAX_ADDR_CELLS: the most cells Linux takes for
/// an address.
pub const OF_MAX_ADDR_CELLS: usize = 4;

/// A big-endian number of any whole count of cells (none: 0), as Linux's
/// of_read_number reads it into 64 bits; None when a cell above the low
/// two is not zero (the number does not fit).
pub fn read_number(cells: &[u8]) -> Option<u64> {
    if !cells.len().is_multiple_of(4) {
        return None;
    }
    let (high, low) = cells.split_at(cells.len().saturating_sub(8));
    if high.iter().any(|b| *b != 0) {
        return None;
    }
    Some(low.iter().fold(0u64, |n, b| n << 8 | u64::from(*b)))
}

/// Cells as `<0x1 0x2>`, for messages.
fn hex_cells(b: &[u8]) -> String {
    let cells: Vec<String> =
        b.chunks(4).map(|c| format!("{:#x}", c.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)))).collect();
    format!("<{}>", cells.join(" "))
}

/// `<address size>` pairs of the property `prop` (value `v`) of the node
/// at `path`, in `cells` (see [`DtbEditor::address_size_pairs`]).
pub fn pairs(path: &str, prop: &str, v: &[u8], cells: Cells) -> Result<Vec<Range>, DtbEditError> {
    let (a, s) = (cells.address as usize, cells.size as usize);
    if !(1..=OF_MAX_ADDR_CELLS).contains(&a) || s > OF_MAX_ADDR_CELLS {
        return Err(bad_value(
            path,
            prop,
            format!("#address-cells {a} / #size-cells {s}: Linux reads 1 to 4 address cells (drivers/of/address.c OF_MAX_ADDR_CELLS)"),
        ));
    }
    let entry = (a + s) * 4;
    if !v.len().is_multiple_of(entry) {
        return Err(bad_value(path, prop, format!("{} bytes is not a list of {entry}-byte entries", v.len())));
    }
    let number = |b: &[u8]| {
        read_number(b).ok_or_else(|| bad_value(path, prop, format!("{} does not fit in 64 bits", hex_cells(b))))
    };
    let mut out = Vec::with_capacity(v.len() / entry);
    for e in v.chunks_exact(entry) {
        let base = number(&e[..a * 4])?;
        let size = number(&e[a * 4..])?;
        let r = Range::checked(base, size)
            .ok_or_else(|| bad_value(path, prop, format!("{base:#x} + {size:#x} wraps the address space")))?;
        out.push(r);
    }
    Ok(out)
}

/// A DTB being edited.
#[derive(Clone, Debug)]
pub struct DtbEditor {
    tree: DeviceTree,
    /// spec §5.2 header field dtoolkit does not model; carried over.
    boot_cpuid_phys: u32,
    /// Upper bound of the serialised size, kept below u32::MAX so that
    /// dtoolkit's writer (which panics past it) is never asked for more.
    size_bound: u64,
}

impl DtbEditor {
    /// Parse a blob. Bytes past the header's `totalsize` are ignored (a DTB
    /// file may be padded); fewer bytes than `totalsize` is an error.
    pub fn from_blob(blob: &[u8]) -> Result<Self, DtbEditError> {
        let parse = |why: String| DtbEditError::Parse { why };
        let header = blob
            .get(..HEADER_LEN)
            .ok_or_else(|| parse(format!("{} bytes is shorter than the 40-byte header", blob.len())))?;
        if header[..4] != MAGIC.to_be_bytes() {
            return Err(parse("no 0xd00dfeed magic (devicetree spec §5.2)".into()));
        }
        let be = |at: usize| u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
        let total = be(TOTALSIZE_AT) as usize;
        let blob = blob
            .get(..total)
            .ok_or_else(|| parse(format!("header totalsize {total} is larger than the {} bytes given", blob.len())))?;
        // The tree builders below recurse per level: walk the blob first with
        // the purgatory's own bounds-checked, iterative walker (the same
        // structure rules the purgatory applies; nesting at most 64 deep).
        kexec_purgatory::fdt::check(blob).map_err(|e| parse(e.describe().to_string()))?;
        let upgraded = as_version_17(blob).map_err(|e| parse(e.describe().to_string()))?;
        let blob = upgraded.as_deref().unwrap_or(blob);
        let tree = match Fdt::new(blob) {
            Ok(fdt) => DeviceTree::from_fdt(&fdt),
            // Shipping DTBs break the spec's name rules; read those leniently.
            Err(e)
                if matches!(
                    e.kind,
                    dtoolkit::error::FdtErrorKind::InvalidPropertyName | dtoolkit::error::FdtErrorKind::InvalidNodeName
                ) =>
            {
                lenient::parse(blob).map_err(|e| parse(e.to_string()))?
            }
            Err(e) => return Err(parse(e.to_string())),
        };
        Ok(DtbEditor { tree, boot_cpuid_phys: be(BOOT_CPUID_PHYS_OFFSET), size_bound: total as u64 })
    }

    /// The model, for anything not covered here.
    pub fn tree(&self) -> &DeviceTree {
        &self.tree
    }

    fn node(&self, path: &str) -> Result<Option<&DeviceTreeNode>, DtbEditError> {
        let mut node = &self.tree.root;
        for c in components(path)? {
            match (&node).child(c) {
                Some(child) => node = child,
                None => return Ok(None),
            }
        }
        Ok(Some(node))
    }

    /// The node at `path`, created (with its parents) if missing.
    fn node_mut_or_create(&mut self, path: &str) -> Result<&mut DeviceTreeNode, DtbEditError> {
        let parts = components(path)?;
        let mut node = &mut self.tree.root;
        for c in parts {
            let key = match child_key(node, c) {
                Some(key) => key,
                None => {
                    let child = DeviceTreeNode::new(c).map_err(|_| DtbEditError::BadName {
                        name: c.to_string(),
                        why: "invalid node name (devicetree spec §2.2.1)".into(),
                    })?;
                    // FDT_BEGIN_NODE + name + FDT_END_NODE.
                    self.size_bound += c.len() as u64 + 1 + 3 + 8;
                    node.add_child(child);
                    c.to_string()
                }
            };
            node = node.child_mut(&key).ok_or_else(|| DtbEditError::NoNode { path: path.to_string() })?;
        }
        Ok(node)
    }

    fn node_mut(&mut self, path: &str) -> Result<Option<&mut DeviceTreeNode>, DtbEditError> {
        let mut node = &mut self.tree.root;
        for c in components(path)? {
            let Some(key) = child_key(node, c) else { return Ok(None) };
            match node.child_mut(&key) {
                Some(child) => node = child,
                None => return Ok(None),
            }
        }
        Ok(Some(node))
    }

    /// A property's value, if the node and property exist.
    pub fn property(&self, path: &str, name: &str) -> Result<Option<&[u8]>, DtbEditError> {
        Ok(self.node(path)?.and_then(|n| value_of(n, name)))
    }

    /// Set `path`/`name` to `value`, creating the node and its parents.
    pub fn set_property(&mut self, path: &str, name: &str, value: &[u8]) -> Result<(), DtbEditError> {
        let prop = DeviceTreeProperty::new(name, value.to_vec()).map_err(|_| DtbEditError::BadName {
            name: name.to_string(),
            why: "invalid property name (devicetree spec §2.2.4)".into(),
        })?;
        // FDT_PROP header + value + padding + the name in the strings block.
        let grow = 12 + value.len() as u64 + 3 + name.len() as u64 + 1;
        if self.size_bound.saturating_add(grow) > u64::from(u32::MAX) {
            return Err(DtbEditError::TooLarge { bytes: self.size_bound.saturating_add(grow) });
        }
        self.node_mut_or_create(path)?.add_property(prop);
        self.size_bound += grow;
        Ok(())
    }

    /// Remove `path`/`name`; Ok(false) if it was not there.
    pub fn delete_property(&mut self, path: &str, name: &str) -> Result<bool, DtbEditError> {
        Ok(self.node_mut(path)?.and_then(|n| n.remove_property(name)).is_some())
    }

    /// A NUL-terminated string property (devicetree spec §2.2.4.1
    /// `<string>`).
    pub fn string_property(&self, path: &str, name: &str) -> Result<Option<String>, DtbEditError> {
        let Some(v) = self.property(path, name)? else { return Ok(None) };
        let s = v.strip_suffix(&[0]).ok_or_else(|| bad_value(path, name, "string is not NUL-terminated"))?;
        let s = std::str::from_utf8(s).map_err(|_| bad_value(path, name, "string is not UTF-8"))?;
        if s.contains('\0') {
            return Err(bad_value(path, name, "expected one string, found a string list"));
        }
        Ok(Some(s.to_string()))
    }

    /// `/chosen/bootargs` (chosen.txt).
    /// Bytes, as the kernel reads it (drivers/of/fdt.c
    /// early_init_dt_scan_chosen copies it into boot_command_line): no
    /// encoding is assumed.
    pub fn bootargs(&self) -> Result<Option<Vec<u8>>, DtbEditError> {
        let (path, name) = ("/chosen", "bootargs");
        let Some(v) = self.property(path, name)? else { return Ok(None) };
        let s = v.strip_suffix(&[0]).ok_or_else(|| bad_value(path, name, "string is not NUL-terminated"))?;
        if s.contains(&0) {
            return Err(bad_value(path, name, "expected one string, found a string list"));
        }
        Ok(Some(s.to_vec()))
    }

    /// Set `/chosen/bootargs` to `cmdline`, NUL-terminated (chosen.txt);
    /// a NUL inside it is refused.
    pub fn set_bootargs(&mut self, cmdline: &[u8]) -> Result<(), DtbEditError> {
        if cmdline.contains(&0) {
            return Err(bad_value("/chosen", "bootargs", "command line contains a NUL byte"));
        }
        let mut v = cmdline.to_vec();
        v.push(0);
        self.set_property("/chosen", "bootargs", &v)
    }

    /// The initrd described in /chosen: `[linux,initrd-start,
    /// linux,initrd-end)`, each 1 or 2 cells (drivers/of/fdt.c,
    /// early_init_dt_check_for_initrd reads `len / 4` cells; the end is
    /// exclusive).
    pub fn initrd(&self) -> Result<Option<Range>, DtbEditError> {
        let start = self.property("/chosen", INITRD_START)?;
        let end = self.property("/chosen", INITRD_END)?;
        let (start, end) = match (start, end) {
            (None, None) => return Ok(None),
            (Some(s), Some(e)) => (s, e),
            (Some(_), None) => return Err(bad_value("/chosen", INITRD_END, "missing while linux,initrd-start is set")),
            (None, Some(_)) => return Err(bad_value("/chosen", INITRD_START, "missing while linux,initrd-end is set")),
        };
        let cells = |v: &[u8], name: &str| {
            read_cells(v).ok_or_else(|| bad_value("/chosen", name, format!("{} bytes is not 1 or 2 cells", v.len())))
        };
        let (s, e) = (cells(start, INITRD_START)?, cells(end, INITRD_END)?);
        if e < s {
            return Err(bad_value("/chosen", INITRD_END, format!("{e:#x} is below linux,initrd-start {s:#x}")));
        }
        Ok(Some(Range::new(s, e)))
    }

    /// Describe the next kernel's initrd as u64s, as drivers/of/kexec.c
    /// does (fdt_setprop_u64), or delete both properties when there is none.
    pub fn set_initrd(&mut self, initrd: Option<Range>) -> Result<(), DtbEditError> {
        match initrd {
            Some(r) => {
                self.set_property("/chosen", INITRD_START, &r.start.to_be_bytes())?;
                self.set_property("/chosen", INITRD_END, &r.end.to_be_bytes())
            }
            None => {
                self.delete_property("/chosen", INITRD_START)?;
                self.delete_property("/chosen", INITRD_END)?;
                Ok(())
            }
        }
    }

    /// Delete [`STALE_CHOSEN_PROPERTIES`]; returns the names removed.
    pub fn remove_stale_kexec_properties(&mut self) -> Result<Vec<&'static str>, DtbEditError> {
        let mut removed = Vec::new();
        for name in STALE_CHOSEN_PROPERTIES {
            if self.delete_property("/chosen", name)? {
                removed.push(name);
            }
        }
        Ok(removed)
    }

    /// Write the seed placeholders the purgatory refreshes in place
    /// (purgatory/src/fdt_patch.rs): `kaslr-seed` (u64) and `rng-seed`.
    pub fn set_seeds(&mut self, kaslr: &[u8; KASLR_SEED_LEN], rng: &[u8; RNG_SEED_LEN]) -> Result<(), DtbEditError> {
        self.set_property("/chosen", "kaslr-seed", kaslr)?;
        self.set_property("/chosen", "rng-seed", rng)
    }

    /// The /memreserve/ entries (devicetree spec §5.3 memory reservation
    /// block), as ranges.
    pub fn memreserve(&self) -> Vec<Range> {
        self.tree
            .memory_reservations
            .iter()
            .map(|m| Range::new(m.address(), m.address().saturating_add(m.size())))
            .collect()
    }

    /// Append a /memreserve/ entry for `r`.
    pub fn add_memreserve(&mut self, r: Range) {
        self.size_bound += 16;
        self.tree.memory_reservations.push(MemoryReservation::new(r.start, r.len()));
    }

    /// Remove /memreserve/ entries exactly equal to `r`; returns how many.
    pub fn drop_memreserve(&mut self, r: Range) -> usize {
        let before = self.tree.memory_reservations.len();
        self.tree.memory_reservations.retain(|m| !(m.address() == r.start && m.size() == r.len()));
        before - self.tree.memory_reservations.len()
    }

    /// Remove the /memreserve/ entry a boot loader (or a previous kexec)
    /// made for the old initrd: drivers/of/kexec.c looks for the exact
    /// size, then for the size rounded up to a page ("kexec reserves exact
    /// initrd size, while firmware may reserve a multiple of PAGE_SIZE").
    pub fn drop_initrd_memreserve(&mut self, old_initrd: Range, page_size: u64) -> usize {
        let exact = self.drop_memreserve(old_initrd);
        if exact > 0 || !page_size.is_power_of_two() {
            return exact;
        }
        match align_up(old_initrd.len(), page_size).and_then(|len| old_initrd.start.checked_add(len)) {
            Some(end) => self.drop_memreserve(Range::new(old_initrd.start, end)),
            None => 0,
        }
    }

    /// `method` of /psci (psci.yaml: "hvc" or "smc"); None without /psci or
    /// without `method` (PSCI 0.2+ nodes may rely on the compatible alone,
    /// but the kernel still requires `method`).
    pub fn psci_method(&self) -> Result<Option<PsciMethod>, DtbEditError> {
        match self.string_property("/psci", "method")?.as_deref() {
            None => Ok(None),
            Some("hvc") => Ok(Some(PsciMethod::Hvc)),
            Some("smc") => Ok(Some(PsciMethod::Smc)),
            Some(other) => {
                Err(bad_value("/psci", "method", format!("{other:?} is neither \"hvc\" nor \"smc\" (psci.yaml)")))
            }
        }
    }

    /// `#address-cells`/`#size-cells` that apply to the children of the
    /// node at `path`, as Linux reads them (drivers/of/base.c
    /// of_bus_n_addr_cells / of_bus_n_size_cells): the node's own, else
    /// the nearest ancestor's, else OF_ROOT_NODE_ADDR_CELLS_DEFAULT and
    /// OF_ROOT_NODE_SIZE_CELLS_DEFAULT, 1 and 1 (drivers/of/of_private.h;
    /// the flat-tree scan uses the same defaults for the root,
    /// drivers/of/fdt.c early_init_dt_scan_root, and so does kexec-tools'
    /// arm64 get_cells_size).
    pub fn cells(&self, path: &str) -> Result<Cells, DtbEditError> {
        let parts = components(path)?;
        if self.node(path)?.is_none() {
            return Err(DtbEditError::NoNode { path: path.to_string() });
        }
        let read = |name: &str| -> Result<Option<u32>, DtbEditError> {
            for depth in (0..=parts.len()).rev() {
                let at = format!("/{}", parts[..depth].join("/"));
                let Some(node) = self.node(&at)? else { continue };
                match value_of(node, name) {
                    None => continue,
                    Some([a, b, c, d]) => return Ok(Some(u32::from_be_bytes([*a, *b, *c, *d]))),
                    Some(v) => return Err(bad_value(&at, name, format!("{} bytes is not one u32 cell", v.len()))),
                }
            }
            Ok(None)
        };
        Ok(Cells {
            address: read("#address-cells")?.unwrap_or(ROOT_ADDRESS_CELLS),
            size: read("#size-cells")?.unwrap_or(ROOT_SIZE_CELLS),
        })
    }

    /// The root node's cells: the encoding of `reg` in its children and
    /// of /chosen's `linux,elfcorehdr` and `linux,usable-memory-range`.
    pub fn root_cells(&self) -> Result<Cells, DtbEditError> {
        self.cells("/")
    }

    /// First address in the `reg` of the node at `path`, read with the
    /// parent's `#address-cells` (devicetree spec §2.3.6). None if the node
    /// has no `reg`.
    pub fn reg_base(&self, path: &str) -> Result<Option<u64>, DtbEditError> {
        let parts = components(path)?;
        let Some((_, parent)) = parts.split_last() else {
            return Err(DtbEditError::BadPath { path: path.to_string() });
        };
        let parent_path = format!("/{}", parent.join("/"));
        let node = self.node(path)?.ok_or_else(|| DtbEditError::NoNode { path: path.to_string() })?;
        let Some(reg) = node.property("reg") else { return Ok(None) };
        let cells = self.cells(&parent_path)?;
        let n = cells.address as usize;
        if !(1..=2).contains(&n) {
            return Err(bad_value(
                path,
                "reg",
                format!("parent #address-cells is {n}; only 1 or 2 fit a 64-bit address"),
            ));
        }
        let v = reg.value();
        let base = v.get(..n * 4).and_then(read_cells);
        base.map(Some)
            .ok_or_else(|| bad_value(path, "reg", format!("{} bytes is shorter than one {n}-cell address", v.len())))
    }

    /// The names of the children of the node at `path` (none if it does
    /// not exist).
    pub fn child_names(&self, path: &str) -> Result<Vec<String>, DtbEditError> {
        Ok(self.node(path)?.map(|n| n.children().map(|c| c.name().to_string()).collect()).unwrap_or_default())
    }

    /// Every (address, size) pair of the node's `reg`, in its parent's
    /// #address-cells / #size-cells (devicetree spec §2.3.6).
    pub fn reg_ranges(&self, path: &str) -> Result<Vec<Range>, DtbEditError> {
        self.address_size_pairs(path, "reg")
    }

    /// Every (address, size) pair of the property `prop` of the node at
    /// `path` (`reg`, `linux,usable-memory`), in the cells that apply to
    /// it ([`DtbEditor::cells`] of its parent). Each number may take up to
    /// OF_MAX_ADDR_CELLS (4) cells, read as Linux reads them (its low 64
    /// bits, drivers/of of_read_number) when the cells above are zero; a
    /// value that is not whole entries, a number past 64 bits or a range
    /// past 2^64 is an error naming the property. None of the property: no
    /// pairs.
    pub fn address_size_pairs(&self, path: &str, prop: &str) -> Result<Vec<Range>, DtbEditError> {
        let parts = components(path)?;
        let Some((_, parent)) = parts.split_last() else {
            return Err(DtbEditError::BadPath { path: path.to_string() });
        };
        let cells = self.cells(&format!("/{}", parent.join("/")))?;
        let node = self.node(path)?.ok_or_else(|| DtbEditError::NoNode { path: path.to_string() })?;
        let Some(v) = value_of(node, prop) else { return Ok(Vec::new()) };
        pairs(path, prop, v, cells)
    }

    /// For every child of the node at `path` (none if it does not exist),
    /// its name and the values of the properties `names`, in one walk: a
    /// node with thousands of children costs as much as reading them (a
    /// lookup by path per child would cost their square).
    #[allow(clippy::type_complexity)] // (name, one value per asked name)
    pub fn children_properties(
        &self,
        path: &str,
        names: &[&str],
    ) -> Result<Vec<(String, Vec<Option<&[u8]>>)>, DtbEditError> {
        let Some(node) = self.node(path)? else { return Ok(Vec::new()) };
        Ok(node.children().map(|c| (c.name().to_string(), names.iter().map(|n| value_of(c, n)).collect())).collect())
    }

    /// Serialise with dtoolkit, carry `boot_cpuid_phys` over, and append
    /// `padding` bytes of free space (rounded so the blob stays a multiple
    /// of 8 bytes). devicetree spec §5.2: totalsize "shall encompass all
    /// sections of the structure ... as well as any free space gaps between
    /// the blocks or after the final block".
    pub fn to_blob(&self, padding: u32) -> Result<Vec<u8>, DtbEditError> {
        let bound = self.size_bound.saturating_add(u64::from(padding)).saturating_add(8);
        if bound > u64::from(u32::MAX) {
            return Err(DtbEditError::TooLarge { bytes: bound });
        }
        let mut blob = self.tree.to_dtb();
        let total = (blob.len() + padding as usize).next_multiple_of(8);
        let total32 = u32::try_from(total).map_err(|_| DtbEditError::TooLarge { bytes: total as u64 })?;
        if blob.len() < HEADER_LEN {
            return Err(DtbEditError::Parse { why: "serialised blob is shorter than its header".into() });
        }
        blob.resize(total, 0);
        blob[TOTALSIZE_AT..TOTALSIZE_AT + 4].copy_from_slice(&total32.to_be_bytes());
        blob[BOOT_CPUID_PHYS_OFFSET..BOOT_CPUID_PHYS_OFFSET + 4].copy_from_slice(&self.boot_cpuid_phys.to_be_bytes());
        Ok(blob)
    }
}

/// Offset of `version` in the header (devicetree spec §5.2).
const VERSION_AT: usize = 20;
/// Offset of `size_dt_struct`, the field version 17 added (§5.2).
const SIZE_DT_STRUCT_AT: usize = 36;

/// A version 16 blob as version 17: the same bytes with `version` = 17 and
/// `size_dt_struct` filled in from a walk to FDT_END; None for a version 17
/// blob. A pseries kernel's /sys/firmware/fdt is version 16: prom_init
/// flattens the Open Firmware tree that way (arch/powerpc/kernel/prom_init.c
/// `flatten_device_tree`: `hdr->version = OF_DT_VERSION` (0x10),
/// `last_comp_version` 0x10, no `size_dt_struct`). dtoolkit reads version
/// 17 only; the upgrade is what libfdt's `fdt_open_into` does (fdt_rw.c: for
/// a version 16 tree it walks `fdt_next_tag` to FDT_END for the structure
/// size, then sets version 17 and `size_dt_struct`).
/// `blob` passed `fdt::check`, so its offsets are ≥ the 40-byte header and
/// bytes 36..40 belong to no block.
fn as_version_17(blob: &[u8]) -> Result<Option<Vec<u8>>, kexec_purgatory::fdt::FdtError> {
    let mut walker = kexec_purgatory::fdt::Walker::new(blob)?;
    if walker.header().version >= 17 {
        return Ok(None);
    }
    let struct_off = walker.header().dt_struct.off;
    while walker.step()?.is_some() {}
    // step() returned None at FDT_END: the block ends after that token.
    let size = walker.position().saturating_add(4).saturating_sub(struct_off);
    let size = u32::try_from(size).map_err(|_| kexec_purgatory::fdt::FdtError::Blocks)?;
    let mut out = blob.to_vec();
    out[VERSION_AT..VERSION_AT + 4].copy_from_slice(&17u32.to_be_bytes());
    out[SIZE_DT_STRUCT_AT..SIZE_DT_STRUCT_AT + 4].copy_from_slice(&size.to_be_bytes());
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A QEMU-virt-like DTB: memory, psci, a UART, chosen with an old
    /// initrd, crash-kernel leftovers, a memreserve for the initrd.
    fn fixture() -> Vec<u8> {
        let rsv = [
            vm_fdt::FdtReserveEntry::new(0x4800_0000, 0x12_3456).unwrap(),
            vm_fdt::FdtReserveEntry::new(0x4f00_0000, 0x1000).unwrap(),
        ];
        let mut w = vm_fdt::FdtWriter::new_with_mem_reserv(&rsv).unwrap();
        w.set_boot_cpuid_phys(3);
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_string("compatible", "linux,dummy-virt").unwrap();
        let psci = w.begin_node("psci").unwrap();
        w.property_string_list("compatible", vec!["arm,psci-1.0".into(), "arm,psci-0.2".into()]).unwrap();
        w.property_string("method", "hvc").unwrap();
        w.end_node(psci).unwrap();
        let mem = w.begin_node("memory@40000000").unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.property_array_u64("reg", &[0x4000_0000, 0x8000_0000]).unwrap();
        w.end_node(mem).unwrap();
        let pl011 = w.begin_node("pl011@9000000").unwrap();
        w.property_array_u64("reg", &[0x900_0000, 0x1000]).unwrap();
        w.end_node(pl011).unwrap();
        let chosen = w.begin_node("chosen").unwrap();
        w.property_string("bootargs", "console=ttyAMA0 root=/dev/vda").unwrap();
        w.property_u32("linux,initrd-start", 0x4800_0000).unwrap();
        w.property_u32("linux,initrd-end", 0x4812_3456).unwrap();
        w.property_array_u64("linux,elfcorehdr", &[0xbf00_0000, 0x1000]).unwrap();
        w.property_array_u64("linux,usable-memory-range", &[0xa000_0000, 0x1000_0000]).unwrap();
        w.property_string("stdout-path", "/pl011@9000000").unwrap();
        w.end_node(chosen).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    fn reparse(blob: &[u8]) -> fdt::Fdt<'_> {
        fdt::Fdt::new(blob).unwrap()
    }

    /// `blob` as prom_init writes a pseries /sys/firmware/fdt: version 16,
    /// last compatible 16, no size_dt_struct, totalsize a page past the
    /// structure block.
    fn as_version_16(blob: &[u8]) -> Vec<u8> {
        let mut v16 = blob.to_vec();
        v16.resize(blob.len() + 4096, 0);
        let total = u32::try_from(v16.len()).unwrap();
        v16[TOTALSIZE_AT..TOTALSIZE_AT + 4].copy_from_slice(&total.to_be_bytes());
        v16[VERSION_AT..VERSION_AT + 4].copy_from_slice(&16u32.to_be_bytes());
        v16[24..28].copy_from_slice(&16u32.to_be_bytes());
        v16[SIZE_DT_STRUCT_AT..SIZE_DT_STRUCT_AT + 4].copy_from_slice(&0u32.to_be_bytes());
        v16
    }

    #[test]
    fn reads_version_16_as_17() {
        let v17 = fixture();
        let v16 = as_version_16(&v17);
        let e = DtbEditor::from_blob(&v16).unwrap();
        assert_eq!(e.bootargs().unwrap().as_deref(), Some(&b"console=ttyAMA0 root=/dev/vda"[..]));
        assert_eq!(e.memreserve().len(), 2);
        // The same tree as the version 17 original, written back as 17.
        let again = DtbEditor::from_blob(&v17).unwrap().to_blob(0).unwrap();
        assert_eq!(e.to_blob(0).unwrap(), again);
        // The upgrade records the structure block's real length.
        let up = as_version_17(&v16).unwrap().unwrap();
        let be = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
        assert_eq!((be(&up, VERSION_AT), be(&up, SIZE_DT_STRUCT_AT)), (17, be(&v17, SIZE_DT_STRUCT_AT)));
        assert_eq!(as_version_17(&v17).unwrap(), None);
        // A version 16 tree whose FDT_END is missing is still refused.
        let mut broken = v16.clone();
        let end = usize::try_from(be(&v17, 8) + be(&v17, SIZE_DT_STRUCT_AT)).unwrap() - 4;
        broken[end..end + 4].copy_from_slice(&0x0bad_0bad_u32.to_be_bytes());
        assert!(DtbEditor::from_blob(&broken).is_err());
    }

    #[test]
    fn reads() {
        let e = DtbEditor::from_blob(&fixture()).unwrap();
        assert_eq!(e.bootargs().unwrap().as_deref(), Some(&b"console=ttyAMA0 root=/dev/vda"[..]));
        assert_eq!(e.psci_method().unwrap(), Some(PsciMethod::Hvc));
        assert_eq!(e.root_cells().unwrap(), Cells { address: 2, size: 2 });
        assert_eq!(e.reg_base("/pl011@9000000").unwrap(), Some(0x900_0000));
        assert_eq!(e.reg_base("/memory").unwrap(), Some(0x4000_0000), "base name matches memory@...");
        assert_eq!(e.reg_base("/psci").unwrap(), None);
        assert_eq!(e.initrd().unwrap(), Some(Range::new(0x4800_0000, 0x4812_3456)));
        assert_eq!(e.memreserve(), vec![Range::new(0x4800_0000, 0x4812_3456), Range::new(0x4f00_0000, 0x4f00_1000)]);
        assert_eq!(e.string_property("/chosen", "stdout-path").unwrap().as_deref(), Some("/pl011@9000000"));
        assert!(matches!(e.cells("/nope"), Err(DtbEditError::NoNode { .. })));
        assert!(matches!(e.string_property("/psci", "compatible"), Err(DtbEditError::BadValue { .. })));
    }

    #[test]
    fn prepare_for_next_kernel_and_reparse_with_fdt_crate() {
        let mut e = DtbEditor::from_blob(&fixture()).unwrap();
        let old = e.initrd().unwrap().unwrap();
        assert_eq!(e.drop_initrd_memreserve(old, 4096), 1);
        e.set_initrd(Some(Range::new(0x1_2000_0000, 0x1_2100_0000))).unwrap();
        assert_eq!(e.remove_stale_kexec_properties().unwrap(), vec!["linux,elfcorehdr", "linux,usable-memory-range"]);
        e.set_bootargs(b"console=ttyAMA0 quiet").unwrap();
        e.set_seeds(&[0x11; 8], &[0x22; 64]).unwrap();
        e.set_property("/chosen", "linux,booted-from-kexec", &[]).unwrap();
        let blob = e.to_blob(DEFAULT_PADDING).unwrap();

        let f = reparse(&blob);
        assert_eq!(f.total_size(), blob.len());
        assert_eq!(blob.len() % 8, 0);
        let chosen = f.find_node("/chosen").unwrap();
        let prop = |n: &str| chosen.property(n).map(|p| p.value);
        assert_eq!(prop("bootargs"), Some(&b"console=ttyAMA0 quiet\0"[..]));
        assert_eq!(prop("linux,initrd-start"), Some(&0x1_2000_0000u64.to_be_bytes()[..]));
        assert_eq!(prop("linux,initrd-end"), Some(&0x1_2100_0000u64.to_be_bytes()[..]));
        assert_eq!(prop("kaslr-seed"), Some(&[0x11; 8][..]));
        assert_eq!(prop("rng-seed"), Some(&[0x22; 64][..]));
        assert_eq!(prop("linux,booted-from-kexec"), Some(&[][..]));
        assert_eq!(prop("linux,elfcorehdr"), None);
        assert_eq!(prop("linux,usable-memory-range"), None);
        assert_eq!(prop("stdout-path"), Some(&b"/pl011@9000000\0"[..]));
        let rsv: Vec<_> = f.memory_reservations().map(|r| (r.address() as u64, r.size() as u64)).collect();
        assert_eq!(rsv, vec![(0x4f00_0000, 0x1000)]);
        assert_eq!(u32::from_be_bytes(blob[0x1c..0x20].try_into().unwrap()), 3, "boot_cpuid_phys kept");
        // The other nodes survive the round trip.
        assert!(f.find_node("/memory@40000000").is_some());
        assert_eq!(f.find_node("/psci").unwrap().property("method").unwrap().as_str(), Some("hvc"));

        // The purgatory finds the placeholders it refreshes in place.
        let spans = kexec_purgatory::fdt_patch::find_seed_spans(&blob).unwrap();
        let [Some(kaslr), Some(rng)] = spans else { panic!("seed placeholders not found: {spans:?}") };
        assert_eq!(&blob[kaslr.offset..kaslr.offset + kaslr.len], &[0x11; 8]);
        assert_eq!(&blob[rng.offset..rng.offset + rng.len], &[0x22; 64]);
        let back = DtbEditor::from_blob(&blob).unwrap();
        assert_eq!(back.bootargs().unwrap().as_deref(), Some(&b"console=ttyAMA0 quiet"[..]));
    }

    #[test]
    fn padding_leaves_free_space_inside_totalsize() {
        let e = DtbEditor::from_blob(&fixture()).unwrap();
        let tight = e.to_blob(0).unwrap();
        let padded = e.to_blob(DEFAULT_PADDING).unwrap();
        assert!(padded.len() >= tight.len() + DEFAULT_PADDING as usize);
        assert!(padded[tight.len()..].iter().all(|&b| b == 0));
        // Both readers accept free space after the strings block (libfdt's
        // fdt_setprop grows into it).
        assert_eq!(reparse(&padded).total_size(), padded.len());
        assert!(Fdt::new(&padded).is_ok());
        assert_eq!(DtbEditor::from_blob(&padded).unwrap().bootargs().unwrap(), e.bootargs().unwrap());
    }

    #[test]
    fn no_initrd_deletes_both_properties() {
        let mut e = DtbEditor::from_blob(&fixture()).unwrap();
        e.set_initrd(None).unwrap();
        let blob = e.to_blob(0).unwrap();
        let f = reparse(&blob);
        let chosen = f.find_node("/chosen").unwrap();
        assert!(chosen.property("linux,initrd-start").is_none() && chosen.property("linux,initrd-end").is_none());
    }

    #[test]
    fn generic_editor_creates_nodes_and_validates_names() {
        let mut e = DtbEditor::from_blob(&fixture()).unwrap();
        e.set_property("/new/deeper@1", "x", &[1, 2]).unwrap();
        assert_eq!(e.property("/new/deeper@1", "x").unwrap(), Some(&[1u8, 2][..]));
        assert_eq!(e.property("/new/deeper", "x").unwrap(), Some(&[1u8, 2][..]));
        assert!(e.delete_property("/new/deeper@1", "x").unwrap());
        assert!(!e.delete_property("/new/deeper@1", "x").unwrap());
        assert!(!e.delete_property("/absent", "x").unwrap());
        assert!(matches!(e.set_property("/chosen", "bad name", b""), Err(DtbEditError::BadName { .. })));
        assert!(matches!(e.set_property("/bad node", "x", b""), Err(DtbEditError::BadName { .. })));
        assert!(matches!(e.set_property("chosen", "x", b""), Err(DtbEditError::BadPath { .. })));
        assert!(matches!(e.set_property("/a//b", "x", b""), Err(DtbEditError::BadPath { .. })));
        // "/" itself is a valid path.
        e.set_property("/", "model", b"rkexec\0").unwrap();
        let blob = e.to_blob(0).unwrap();
        assert_eq!(reparse(&blob).root().property("model").unwrap().as_str(), Some("rkexec"));
    }

    #[test]
    fn dtb_without_chosen_gets_one() {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.end_node(root).unwrap();
        let mut e = DtbEditor::from_blob(&w.finish().unwrap()).unwrap();
        assert_eq!(e.bootargs().unwrap(), None);
        assert_eq!(e.psci_method().unwrap(), None);
        assert_eq!(e.root_cells().unwrap(), Cells { address: 1, size: 1 }, "Linux's root defaults (of_private.h)");
        e.set_bootargs(b"console=ttyS0").unwrap();
        let blob = e.to_blob(64).unwrap();
        assert_eq!(reparse(&blob).chosen().bootargs(), Some("console=ttyS0"));
    }

    #[test]
    fn blob_with_trailing_bytes_and_long_names_is_read() {
        let mut e = DtbEditor::from_blob(&fixture()).unwrap();
        e.tree
            .root
            .add_property(DeviceTreeProperty::new_unchecked("arm,cpu-registers-not-fw-configured", Vec::<u8>::new()));
        let mut blob = e.tree.to_dtb();
        blob.extend_from_slice(&[0xff; 100]);
        let back = DtbEditor::from_blob(&blob).unwrap();
        assert!(back.property("/", "arm,cpu-registers-not-fw-configured").unwrap().is_some());
        assert_eq!(back.bootargs().unwrap().as_deref(), Some(&b"console=ttyAMA0 root=/dev/vda"[..]));
    }

    #[test]
    fn broken_blobs_and_values_are_reported() {
        assert!(DtbEditor::from_blob(b"short").unwrap_err().to_string().contains("shorter than the 40-byte header"));
        let mut blob = fixture();
        blob[0] = 0;
        assert!(DtbEditor::from_blob(&blob).unwrap_err().to_string().contains("magic"));
        let blob = fixture();
        assert!(DtbEditor::from_blob(&blob[..blob.len() - 1]).unwrap_err().to_string().contains("totalsize"));

        let mut e = DtbEditor::from_blob(&fixture()).unwrap();
        e.delete_property("/chosen", "linux,initrd-end").unwrap();
        let err = e.initrd().unwrap_err();
        assert_eq!(err.to_string(), "DTB property /chosen/linux,initrd-end: missing while linux,initrd-start is set");
        e.set_property("/chosen", "linux,initrd-end", &[0, 0, 1]).unwrap();
        assert!(e.initrd().unwrap_err().to_string().contains("not 1 or 2 cells"));
        e.set_property("/psci", "method", b"smc\0").unwrap();
        assert_eq!(e.psci_method().unwrap(), Some(PsciMethod::Smc));
        e.set_property("/psci", "method", b"svc\0").unwrap();
        assert!(e.psci_method().unwrap_err().to_string().contains("neither \"hvc\" nor \"smc\""));
        assert!(e.set_bootargs(b"a\0b").is_err());
    }

    #[test]
    fn page_rounded_initrd_memreserve_is_dropped() {
        let mut e = DtbEditor::from_blob(&fixture()).unwrap();
        e.drop_memreserve(Range::new(0x4800_0000, 0x4812_3456));
        e.add_memreserve(Range::new(0x4800_0000, 0x4812_4000));
        assert_eq!(e.drop_initrd_memreserve(Range::new(0x4800_0000, 0x4812_3456), 4096), 1);
        assert_eq!(e.memreserve(), vec![Range::new(0x4f00_0000, 0x4f00_1000)]);
        assert_eq!(e.drop_initrd_memreserve(Range::new(0x4f00_0000, 0x4f00_0800), 4096), 1);
        assert!(e.memreserve().is_empty());
    }

    #[test]
    fn cells_are_inherited_as_linux_reads_them() {
        let mut e = DtbEditor::from_blob(&fixture()).unwrap();
        // /soc has none: its children's reg is in the root's 2/2.
        e.set_property("/soc/uart@1000", "reg", &[0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x10, 0]).unwrap();
        assert_eq!(e.cells("/soc").unwrap(), Cells { address: 2, size: 2 });
        assert_eq!(e.reg_ranges("/soc/uart@1000").unwrap(), [Range::new(0x1000, 0x2000)]);
        e.set_property("/soc", "#size-cells", &1u32.to_be_bytes()).unwrap();
        assert_eq!(e.cells("/soc").unwrap(), Cells { address: 2, size: 1 }, "its own size, the root's address");
        let e = e.reg_ranges("/soc/uart@1000").unwrap_err().to_string();
        assert!(e.contains("16 bytes is not a list of 12-byte entries"), "{e}");
    }

    #[test]
    fn numbers_take_up_to_four_cells_and_must_fit_64_bits() {
        assert_eq!(read_number(&[]), Some(0));
        assert_eq!(read_number(&[0, 0, 0, 5]), Some(5));
        assert_eq!(read_number(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2]), Some(0x1_0000_0002));
        assert_eq!(read_number(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]), None, "past 64 bits");
        assert_eq!(read_number(&[0, 0, 1]), None);
    }
}
