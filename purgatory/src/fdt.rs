//! A small bounds-checked reader of flattened devicetrees (devicetree
//! specification v0.4, chapter 5 "Flattened Devicetree (DTB) Format").
//!
//! Pure functions over `&[u8]`: every offset is checked against the blob,
//! every sum is checked, nesting is bounded, and nothing panics, whatever
//! the bytes (the purgatory walks DTBs it is about to hand to a kernel, and
//! excluded DTBs the old kernel may have rewritten). [`check`] walks the
//! whole blob; [`Walker`] yields its structure-block tokens one by one.

use crate::bytes::{be_uint, same};

/// FDT header magic (§5.2).
pub const MAGIC: u32 = 0xd00d_feed;
/// Bytes of the version 17 header (§5.2: ten 32-bit fields).
pub const HEADER_LEN: usize = 40;
/// Offset of `boot_cpuid_phys` in the header (§5.2).
pub const BOOT_CPUID_PHYS_OFFSET: usize = 0x1c;
/// Deepest node nesting accepted (the root is depth 1). Linux's
/// drivers/of/fdt.c unflattens up to 64 levels.
pub const MAX_DEPTH: usize = 64;

/// Structure block tokens (§5.4.1).
const FDT_BEGIN_NODE: u32 = 0x1;
const FDT_END_NODE: u32 = 0x2;
const FDT_PROP: u32 = 0x3;
const FDT_NOP: u32 = 0x4;
const FDT_END: u32 = 0x9;

/// What is wrong with a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdtError {
    /// Shorter than the header, or the magic is not 0xd00dfeed.
    Magic,
    /// `totalsize` is smaller than the header or larger than the memory
    /// the blob lives in.
    TotalSize,
    /// `version` below 16 or `last_comp_version` above 17 (§5.2).
    Version,
    /// A block lies outside `[header, totalsize)` or is misaligned: the
    /// structure block on 4 bytes, the reservation map on 8 (§5.3, §5.4).
    Blocks,
    /// The memory reservation block has no terminating entry inside
    /// `totalsize`, or an entry wraps the address space (§5.3.2).
    ReservationMap,
    /// A token that is none of BEGIN_NODE/END_NODE/PROP/NOP/END.
    Token,
    /// The structure block ends before FDT_END, or in the middle of a token.
    Truncated,
    /// A node name without its NUL inside the structure block.
    NodeName,
    /// A property value runs past the structure block.
    PropValue,
    /// A property's `nameoff` is outside the strings block, or its name has
    /// no NUL inside it.
    PropName,
    /// Nodes nest deeper than [`MAX_DEPTH`].
    Depth,
    /// Not one root node (named "") holding every property and node:
    /// END_NODE with no node open, a property outside any node, a second
    /// root, a named root, or FDT_END inside a node.
    Nesting,
}

impl FdtError {
    pub fn describe(self) -> &'static str {
        use crate::console_lines::fdt;
        // In declaration order (a table without relocations), packed in
        // the image (`report::text!`).
        purgatory_arch::str_table!(static REASONS = [
            crate::text!(fdt::MAGIC),
            crate::text!(fdt::TOTAL_SIZE),
            crate::text!(fdt::VERSION),
            crate::text!(fdt::BLOCKS),
            crate::text!(fdt::RESERVATION_MAP),
            crate::text!(fdt::TOKEN),
            crate::text!(fdt::TRUNCATED),
            crate::text!(fdt::NODE_NAME),
            crate::text!(fdt::PROP_VALUE),
            crate::text!(fdt::PROP_NAME),
            crate::text!(fdt::DEPTH),
            crate::text!(fdt::NESTING),
        ]);
        REASONS.get(self as usize)
    }
}

/// Big-endian u32 at `off`, if all four bytes are there.
fn be32(b: &[u8], off: usize) -> Option<u32> {
    Some(be_uint(b.get(off..off.checked_add(4)?)?) as u32)
}

/// Big-endian u64 at `off`, if all eight bytes are there.
fn be64(b: &[u8], off: usize) -> Option<u64> {
    Some(be_uint(b.get(off..off.checked_add(8)?)?))
}

/// A block of the blob: `len` bytes at offset `off`, inside `totalsize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub off: usize,
    pub len: usize,
}

impl Block {
    /// `len` bytes at `off`, if that ends at or before `limit`.
    fn within(off: usize, len: usize, limit: usize) -> Option<Self> {
        (off.checked_add(len)? <= limit).then_some(Self { off, len })
    }

    /// The block's bytes in `blob`, if they are there.
    pub fn bytes<'a>(&self, blob: &'a [u8]) -> Option<&'a [u8]> {
        blob.get(self.off..self.off.checked_add(self.len)?)
    }
}

/// The header fields (§5.2), checked against the blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub totalsize: usize,
    pub version: u32,
    pub last_comp_version: u32,
    pub boot_cpuid_phys: u32,
    /// Offset of the memory reservation block (its length is found by
    /// walking it to the terminating entry).
    pub off_mem_rsvmap: usize,
    /// The structure block; for version 16 blobs (no `size_dt_struct`), up
    /// to `totalsize`.
    pub dt_struct: Block,
    pub dt_strings: Block,
}

/// Read and check the header of `blob`, the memory the DTB lives in: magic,
/// `totalsize` within `blob`, a version this code reads, and every block
/// inside `[header, totalsize)` with its alignment.
pub fn header(blob: &[u8]) -> Result<Header, FdtError> {
    // The ten big-endian header words (§5.2), read in one loop (the blob
    // may be at any address: byte loads where alignment is strict).
    let mut words = [0u32; 10];
    for (word, bytes) in words.iter_mut().zip(blob.get(..HEADER_LEN).ok_or(FdtError::Magic)?.as_chunks::<4>().0) {
        *word = u32::from_be_bytes(*bytes);
    }
    let [magic, totalsize, off_struct, off_strings, off_rsvmap, version, last_comp_version, boot_cpuid_phys, size_strings, size_dt_struct] =
        words;
    if magic != MAGIC {
        return Err(FdtError::Magic);
    }
    let totalsize = totalsize as usize;
    if totalsize < HEADER_LEN || totalsize > blob.len() {
        return Err(FdtError::TotalSize);
    }
    let (off_struct, off_strings, off_rsvmap) = (off_struct as usize, off_strings as usize, off_rsvmap as usize);
    // §5.2: version 17 is current and backwards compatible with 16.
    if version < 16 || last_comp_version > 17 {
        return Err(FdtError::Version);
    }
    let size_strings = size_strings as usize;
    let size_struct = if version >= 17 { size_dt_struct as usize } else { totalsize.saturating_sub(off_struct) };
    let inside = |off: usize, len: usize| {
        if off < HEADER_LEN {
            return None;
        }
        Block::within(off, len, totalsize)
    };
    let dt_struct = inside(off_struct, size_struct).ok_or(FdtError::Blocks)?;
    let dt_strings = inside(off_strings, size_strings).ok_or(FdtError::Blocks)?;
    // The reservation map needs at least its terminating entry.
    inside(off_rsvmap, 16).ok_or(FdtError::Blocks)?;
    if off_struct % 4 != 0 || off_rsvmap % 8 != 0 {
        return Err(FdtError::Blocks);
    }
    Ok(Header {
        totalsize,
        version,
        last_comp_version,
        boot_cpuid_phys,
        off_mem_rsvmap: off_rsvmap,
        dt_struct,
        dt_strings,
    })
}

/// Walk the memory reservation block (§5.3): `{address, size}` pairs of
/// big-endian u64 up to the all-zero entry, which must lie inside
/// `totalsize`. No entry may wrap the address space. Returns the number of
/// entries before the terminator.
pub fn reservations(blob: &[u8], hdr: &Header) -> Result<usize, FdtError> {
    let mut off = hdr.off_mem_rsvmap;
    let mut count = 0usize;
    loop {
        let entry_end = off.checked_add(16).filter(|&e| e <= hdr.totalsize).ok_or(FdtError::ReservationMap)?;
        let (Some(address), Some(size)) = (be64(blob, off), be64(blob, off.saturating_add(8))) else {
            return Err(FdtError::ReservationMap);
        };
        if address == 0 && size == 0 {
            return Ok(count);
        }
        if address.checked_add(size).is_none() {
            return Err(FdtError::ReservationMap);
        }
        count = count.saturating_add(1);
        off = entry_end;
    }
}

/// One structure-block token (§5.4.1). Offsets are from the start of the
/// blob, so a property's value can be patched in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token<'a> {
    /// A node opens; `name` without its NUL ("" for the root). `depth` is
    /// the node's own depth: 1 for the root.
    BeginNode { name: &'a [u8], depth: usize },
    /// The node at `depth` closes.
    EndNode { depth: usize },
    /// A property of the innermost open node (at `depth`).
    Prop { name: &'a [u8], value: Block, depth: usize },
}

/// Iterates the structure block's tokens, checking the whole grammar on
/// the way: after the last token it has checked FDT_END at depth 0. NOPs
/// are skipped. After the first error it yields nothing more.
pub struct Walker<'a> {
    blob: &'a [u8],
    hdr: Header,
    /// Next token's offset in the blob.
    pos: usize,
    depth: usize,
    /// The root node has been closed.
    root_done: bool,
    finished: bool,
}

impl<'a> Walker<'a> {
    /// A walker over `blob` whose header is valid.
    pub fn new(blob: &'a [u8]) -> Result<Self, FdtError> {
        let hdr = header(blob)?;
        Ok(Self { blob, hdr, pos: hdr.dt_struct.off, depth: 0, root_done: false, finished: false })
    }

    pub fn header(&self) -> &Header {
        &self.hdr
    }

    /// The offset of the next token: after `step` returned `Ok(None)`, that
    /// of FDT_END, so the structure block's real length is this + 4 − its
    /// offset (what a version 16 header does not record).
    pub fn position(&self) -> usize {
        self.pos
    }

    fn struct_end(&self) -> usize {
        // header() checked off + len <= totalsize.
        self.hdr.dt_struct.off.saturating_add(self.hdr.dt_struct.len)
    }

    /// The u32 at `pos` inside the structure block.
    fn word(&self, pos: usize) -> Result<u32, FdtError> {
        Block::within(pos, 4, self.struct_end()).and_then(|_| be32(self.blob, pos)).ok_or(FdtError::Truncated)
    }

    /// `pos + len` rounded up to the next 4-byte boundary (§5.4.1: tokens
    /// are 32-bit aligned), if it stays inside the structure block.
    fn skip_padded(&self, pos: usize, len: usize) -> Option<usize> {
        let end = pos.checked_add(len)?.checked_add(3)? & !3;
        (end <= self.struct_end()).then_some(end)
    }

    /// A NUL-terminated string starting at `off` within `limit`: its bytes
    /// without the NUL.
    fn c_string(&self, off: usize, limit: usize) -> Option<&'a [u8]> {
        let tail = self.blob.get(off..limit)?;
        let len = tail.iter().position(|&b| b == 0)?;
        tail.get(..len)
    }

    /// The next token (NOPs skipped), or None at FDT_END once the tree is
    /// closed. The loop the purgatory's walks use (`while let Some(t) =
    /// w.step()?`); the `Iterator` is the same walk for callers that want
    /// one.
    pub fn step(&mut self) -> Result<Option<Token<'a>>, FdtError> {
        loop {
            let token = self.word(self.pos)?;
            let body = self.pos.checked_add(4).ok_or(FdtError::Truncated)?;
            match token {
                FDT_NOP => self.pos = body,
                FDT_BEGIN_NODE => {
                    // §5.4.1: the name follows, NUL-terminated, padded.
                    let name = self.c_string(body, self.struct_end()).ok_or(FdtError::NodeName)?;
                    let next = self.skip_padded(body, name.len().saturating_add(1)).ok_or(FdtError::NodeName)?;
                    // One root, named "" (§2.2.1, §5.4.2); bounded nesting.
                    if self.depth == 0 && (self.root_done || !name.is_empty()) {
                        return Err(FdtError::Nesting);
                    }
                    if self.depth >= MAX_DEPTH {
                        return Err(FdtError::Depth);
                    }
                    self.depth += 1;
                    self.pos = next;
                    return Ok(Some(Token::BeginNode { name, depth: self.depth }));
                }
                FDT_END_NODE => {
                    let depth = self.depth;
                    if depth == 0 {
                        return Err(FdtError::Nesting);
                    }
                    self.depth = depth - 1;
                    self.root_done |= self.depth == 0;
                    self.pos = body;
                    return Ok(Some(Token::EndNode { depth }));
                }
                FDT_PROP => {
                    // §5.4.1: struct { u32 len; u32 nameoff; } then the
                    // value, padded; the name is in the strings block.
                    let len = self.word(body)? as usize;
                    let nameoff = self.word(body.checked_add(4).ok_or(FdtError::Truncated)?)? as usize;
                    let value_off = body.checked_add(8).ok_or(FdtError::Truncated)?;
                    let next = self.skip_padded(value_off, len).ok_or(FdtError::PropValue)?;
                    let strings = self.hdr.dt_strings;
                    let name_at = (nameoff < strings.len)
                        .then(|| strings.off.checked_add(nameoff))
                        .flatten()
                        .ok_or(FdtError::PropName)?;
                    let strings_end = strings.off.saturating_add(strings.len);
                    let name = self.c_string(name_at, strings_end).ok_or(FdtError::PropName)?;
                    if self.depth == 0 {
                        return Err(FdtError::Nesting);
                    }
                    self.pos = next;
                    let value = Block { off: value_off, len };
                    return Ok(Some(Token::Prop { name, value, depth: self.depth }));
                }
                FDT_END => {
                    // §5.4.1: the last token; every node closed, one root.
                    if self.depth != 0 || !self.root_done {
                        return Err(FdtError::Nesting);
                    }
                    return Ok(None);
                }
                _ => return Err(FdtError::Token),
            }
        }
    }
}

impl<'a> Iterator for Walker<'a> {
    type Item = Result<Token<'a>, FdtError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let item = self.step();
        if !matches!(item, Ok(Some(_))) {
            self.finished = true;
        }
        item.transpose()
    }
}

/// Check the whole blob: header, reservation map, and every token of the
/// structure block.
pub fn check(blob: &[u8]) -> Result<(), FdtError> {
    let mut walker = Walker::new(blob)?;
    reservations(blob, walker.header())?;
    while walker.step()?.is_some() {}
    Ok(())
}

/// Is `name` the node /chosen? Linux's early_init_dt_scan_chosen looks up
/// "/chosen" (then "/chosen@0") with libfdt, whose fdt_nodename_eq_ also
/// matches a unit address when the path has none: the first node named
/// "chosen" or "chosen@..." is the one the kernel reads, and the one the
/// loader edits.
fn is_chosen(name: &[u8]) -> bool {
    // "chosen", or "chosen@" and a unit address; compared out of line
    // (`same`), not expanded inline.
    name.get(..6).is_some_and(|n| same(n, b"chosen")) && matches!(name.get(6), None | Some(b'@'))
}

/// Check the whole blob (as [`check`]) and find, in the first /chosen
/// node, the value of the first property named like each of `names`.
pub fn chosen_props<const N: usize>(blob: &[u8], names: [&str; N]) -> Result<(bool, [Option<Block>; N]), FdtError> {
    let mut walker = Walker::new(blob)?;
    reservations(blob, walker.header())?;
    let mut found = [None; N];
    let mut chosen = false;
    let mut in_chosen = false;
    while let Some(token) = walker.step()? {
        match token {
            Token::BeginNode { name, depth } => {
                if depth == 2 && !chosen && is_chosen(name) {
                    chosen = true;
                    in_chosen = true;
                }
            }
            Token::EndNode { depth } => in_chosen &= depth != 2,
            Token::Prop { name, value, depth } => {
                if in_chosen && depth == 2 {
                    for (n, slot) in names.iter().zip(found.iter_mut()) {
                        if slot.is_none() && same(n.as_bytes(), name) {
                            *slot = Some(value);
                        }
                    }
                }
            }
        }
    }
    Ok((chosen, found))
}

/// Read `boot_cpuid_phys` (used by tests and the harness).
pub fn boot_cpuid(blob: &[u8]) -> Option<u32> {
    be32(blob, BOOT_CPUID_PHYS_OFFSET)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vm_fdt::{FdtReserveEntry, FdtWriter};

    /// A tree with reservations, nesting, empty and odd-length values.
    pub(crate) fn sample(depth: usize) -> Vec<u8> {
        let reserve =
            [FdtReserveEntry::new(0x4800_0000, 0x1000).unwrap(), FdtReserveEntry::new(0x5000_0000, 7).unwrap()];
        let mut w = FdtWriter::new_with_mem_reserv(&reserve).unwrap();
        w.set_boot_cpuid_phys(3);
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_string("compatible", "linux,dummy-virt").unwrap();
        let cpus = w.begin_node("cpus").unwrap();
        for i in 0..3u32 {
            let cpu = w.begin_node(&format!("cpu@{i}")).unwrap();
            w.property_u32("reg", i).unwrap();
            w.property_null("enable-method-none").unwrap();
            w.end_node(cpu).unwrap();
        }
        w.end_node(cpus).unwrap();
        let chosen = w.begin_node("chosen").unwrap();
        w.property_string("bootargs", "console=ttyAMA0").unwrap();
        w.property("kaslr-seed", &[0x11; 8]).unwrap();
        w.property("rng-seed", &[0x22; 61]).unwrap();
        let sub = w.begin_node("sub").unwrap();
        w.property("kaslr-seed", &[0x33; 8]).unwrap();
        w.end_node(sub).unwrap();
        w.end_node(chosen).unwrap();
        let mut open = Vec::new();
        for i in 0..depth {
            open.push(w.begin_node(&format!("n{i}")).unwrap());
            w.property("odd", &[i as u8; 3]).unwrap();
        }
        while let Some(n) = open.pop() {
            w.end_node(n).unwrap();
        }
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    /// A node's name and its (property name, value) list.
    type NodeDump = (String, Vec<(String, Vec<u8>)>);

    fn tokens(blob: &[u8]) -> Result<Vec<Token<'_>>, FdtError> {
        Walker::new(blob)?.collect()
    }

    fn set_be32(blob: &mut [u8], off: usize, v: u32) {
        blob[off..off + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// Header field `i` (§5.2 order: 1 totalsize, 2 off_dt_struct, ...).
    /// Reads a copy, so edits can use it on the blob they change.
    fn field(blob: &[u8], i: usize) -> usize {
        be32(blob, 4 * i).unwrap() as usize
    }

    #[test]
    fn every_error_describes_itself_with_its_console_text() {
        use crate::console_lines::fdt;
        let all = [
            (FdtError::Magic, fdt::MAGIC),
            (FdtError::TotalSize, fdt::TOTAL_SIZE),
            (FdtError::Version, fdt::VERSION),
            (FdtError::Blocks, fdt::BLOCKS),
            (FdtError::ReservationMap, fdt::RESERVATION_MAP),
            (FdtError::Token, fdt::TOKEN),
            (FdtError::Truncated, fdt::TRUNCATED),
            (FdtError::NodeName, fdt::NODE_NAME),
            (FdtError::PropValue, fdt::PROP_VALUE),
            (FdtError::PropName, fdt::PROP_NAME),
            (FdtError::Depth, fdt::DEPTH),
            (FdtError::Nesting, fdt::NESTING),
        ];
        for (e, text) in all {
            assert_eq!(e.describe(), text, "{e:?}");
        }
    }

    #[test]
    fn walks_what_the_fdt_crate_reads() {
        // (fdt 0.1.5 indexes a 64-entry array by depth: node.rs:433 panics
        // at 64 levels, so the cross-check stays shallower.)
        for depth in [0, 1, 5, 40] {
            let blob = sample(depth);
            assert_eq!(check(&blob), Ok(()));
            let theirs = fdt::Fdt::new(&blob).unwrap();
            // Nodes in depth-first order, each with its properties.
            let mut ours: Vec<NodeDump> = Vec::new();
            for t in tokens(&blob).unwrap() {
                match t {
                    Token::BeginNode { name, .. } => {
                        let name = if name.is_empty() { "/".into() } else { String::from_utf8(name.to_vec()).unwrap() };
                        ours.push((name, Vec::new()));
                    }
                    Token::Prop { name, value, .. } => ours
                        .last_mut()
                        .unwrap()
                        .1
                        .push((String::from_utf8(name.to_vec()).unwrap(), value.bytes(&blob).unwrap().to_vec())),
                    Token::EndNode { .. } => {}
                }
            }
            let reference: Vec<NodeDump> = theirs
                .all_nodes()
                .map(|n| (n.name.to_string(), n.properties().map(|p| (p.name.to_string(), p.value.to_vec())).collect()))
                .collect();
            assert_eq!(ours, reference, "depth {depth}");
            let hdr = header(&blob).unwrap();
            assert_eq!(reservations(&blob, &hdr), Ok(theirs.memory_reservations().count()));
            assert_eq!(hdr.boot_cpuid_phys, 3);
            assert_eq!(hdr.totalsize, theirs.total_size());
        }
    }

    /// Found by fuzz/fuzz_targets/dtb.rs: the loader (dtoolkit, as libfdt)
    /// wrote the seeds into "chosen@9020000", the first node named like
    /// /chosen, while this lookup took the later exact "chosen": the seeds
    /// the kernel reads were never refreshed, and a tree with only
    /// "chosen@1" had no /chosen at all.
    #[test]
    fn chosen_is_the_first_node_libfdt_matches() {
        let tree = |first: &str, second: Option<&str>| {
            let mut w = vm_fdt::FdtWriter::new().unwrap();
            let root = w.begin_node("").unwrap();
            for (name, seed) in [(Some(first), 1u8), (second, 2u8)] {
                let Some(name) = name else { continue };
                let n = w.begin_node(name).unwrap();
                w.property("kaslr-seed", &[seed; 8]).unwrap();
                w.end_node(n).unwrap();
            }
            w.end_node(root).unwrap();
            w.finish().unwrap()
        };
        for (first, second) in [("chosen@9020000", Some("chosen")), ("chosen@1", None), ("chosen", Some("chosen@0"))] {
            let blob = tree(first, second);
            let (chosen, [k]) = chosen_props(&blob, ["kaslr-seed"]).unwrap();
            assert!(chosen, "{first}");
            assert_eq!(k.and_then(|b| b.bytes(&blob)), Some(&[1u8; 8][..]), "{first} then {second:?}");
        }
        let (chosen, _) = chosen_props(&tree("chosenx", Some("chose")), ["kaslr-seed"]).unwrap();
        assert!(!chosen, "only \"chosen\" and \"chosen@...\" name /chosen");
    }

    #[test]
    fn finds_chosen_properties_where_the_fdt_crate_does() {
        let blob = sample(2);
        let (chosen, [k, r, missing]) = chosen_props(&blob, ["kaslr-seed", "rng-seed", "nope"]).unwrap();
        assert!(chosen);
        assert_eq!(missing, None);
        let theirs = fdt::Fdt::new(&blob).unwrap();
        let node = theirs.find_node("/chosen").unwrap();
        for (ours, name) in [(k, "kaslr-seed"), (r, "rng-seed")] {
            let value = node.property(name).unwrap().value;
            let off = value.as_ptr() as usize - blob.as_ptr() as usize;
            assert_eq!(ours, Some(Block { off, len: value.len() }), "{name}");
        }
        // /chosen/sub's kaslr-seed is not /chosen's.
        assert_eq!(k.unwrap().bytes(&blob).unwrap(), &[0x11; 8]);
    }

    #[test]
    fn header_rules() {
        let good = sample(0);
        let total = good.len();
        type Edit = fn(&mut Vec<u8>);
        let cases: [(Edit, FdtError); 13] = [
            (|b| b[0] ^= 1, FdtError::Magic),
            (|b| b.truncate(39), FdtError::Magic),
            (|b| set_be32(b, 4, 39), FdtError::TotalSize),
            (
                |b| {
                    let v = field(b, 1) as u32 + 1;
                    set_be32(b, 4, v)
                },
                FdtError::TotalSize,
            ),
            (|b| set_be32(b, 20, 15), FdtError::Version),
            (|b| set_be32(b, 24, 18), FdtError::Version),
            (|b| set_be32(b, 8, 36), FdtError::Blocks),
            (
                |b| {
                    let v = field(b, 2) as u32 + 2;
                    set_be32(b, 8, v)
                },
                FdtError::Blocks,
            ),
            (|b| set_be32(b, 36, u32::MAX), FdtError::Blocks),
            (|b| set_be32(b, 12, u32::MAX), FdtError::Blocks),
            (
                |b| {
                    let v = field(b, 1) as u32;
                    set_be32(b, 32, v)
                },
                FdtError::Blocks,
            ),
            (|b| set_be32(b, 16, 44), FdtError::Blocks),
            (
                |b| {
                    let v = field(b, 1) as u32 - 8;
                    set_be32(b, 16, v)
                },
                FdtError::Blocks,
            ),
        ];
        for (i, (edit, want)) in cases.into_iter().enumerate() {
            let mut b = good.clone();
            edit(&mut b);
            assert_eq!(check(&b), Err(want), "case {i}");
        }
        // totalsize bounds the blob, not the memory it lives in.
        let mut roomy = good.clone();
        roomy.resize(total + 4096, 0xee);
        assert_eq!(check(&roomy), Ok(()));
        assert_eq!(check(&good[..total - 1]), Err(FdtError::TotalSize));
    }

    #[test]
    fn reservation_map_rules() {
        let good = sample(0);
        let rsv = field(&good, 4);
        let mut wraps = good.clone();
        wraps[rsv + 8..rsv + 16].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(check(&wraps), Err(FdtError::ReservationMap));
        // No terminator before totalsize: every entry non-zero to the end.
        let mut endless = good.clone();
        for b in endless[rsv..].iter_mut() {
            *b = 1;
        }
        set_be32(&mut endless, 16, rsv as u32);
        assert_eq!(reservations(&endless, &header(&endless).unwrap()), Err(FdtError::ReservationMap));
    }

    /// The blob with the structure block replaced by `words` (big-endian)
    /// and the strings block by `strings`.
    fn with_struct(words: &[u32], strings: &[u8]) -> Vec<u8> {
        let mut s: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        let off_struct = 56usize;
        let off_strings = off_struct + s.len();
        let total = off_strings + strings.len();
        let mut b = Vec::new();
        for v in [
            MAGIC,
            total as u32,
            off_struct as u32,
            off_strings as u32,
            40,
            17,
            16,
            0,
            strings.len() as u32,
            s.len() as u32,
        ] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(&[0; 16]);
        b.append(&mut s);
        b.extend_from_slice(strings);
        b
    }

    const B: u32 = FDT_BEGIN_NODE;
    const E: u32 = FDT_END_NODE;
    const P: u32 = FDT_PROP;
    const N: u32 = FDT_NOP;
    const END: u32 = FDT_END;

    #[test]
    fn structure_rules() {
        let strings = b"reg\0name\0";
        for words in [&[B, 0, E, END][..], &[N, B, 0, N, P, 4, 0, 7, N, E, N, END]] {
            assert_eq!(check(&with_struct(words, strings)), Ok(()), "{words:x?}");
        }
        let cases: [(&[u32], FdtError); 13] = [
            (&[B, 0, E], FdtError::Truncated),
            (&[B, 0], FdtError::Truncated),
            (&[B, 0, E, E, END], FdtError::Nesting),
            (&[B, 0, E, B, 0, E, END], FdtError::Nesting),
            (&[B, 0x6100_0000, E, END], FdtError::Nesting), // root named "a"
            (&[B, 0, END], FdtError::Nesting),
            (&[END], FdtError::Nesting),
            (&[P, 4, 0, 7, B, 0, E, END], FdtError::Nesting), // property before the root
            (&[B, 0, 7, E, END], FdtError::Token),
            (&[B, 0x6161_6161], FdtError::NodeName),
            (&[B, 0, P, 13, 0, 7, E, END], FdtError::PropValue),
            (&[B, 0, P, 4, 9, 7, E, END], FdtError::PropName),
            // A value length that would overflow the offset arithmetic.
            (&[B, 0, P, u32::MAX, 0, E, END], FdtError::PropValue),
        ];
        for (words, want) in cases {
            assert_eq!(check(&with_struct(words, strings)), Err(want), "{words:x?}");
        }
        // A name offset inside the strings block, no NUL after it there.
        assert_eq!(check(&with_struct(&[B, 0, P, 0, 4, E, END], b"reg\0name")), Err(FdtError::PropName));
    }

    #[test]
    fn nesting_is_bounded() {
        // Root, then nodes named "a" down to `depth`, closed again.
        let nested = |depth: usize| {
            let mut w = vec![B, 0];
            for _ in 1..depth {
                w.extend([B, 0x6100_0000]);
            }
            w.extend(std::iter::repeat_n(E, depth));
            w.push(END);
            with_struct(&w, b"")
        };
        assert_eq!(check(&nested(MAX_DEPTH)), Ok(()));
        assert_eq!(check(&nested(MAX_DEPTH + 1)), Err(FdtError::Depth));
        assert_eq!(check(&nested(10_000)), Err(FdtError::Depth));
    }

    /// Blobs that make the `fdt` 0.1.5 crate panic through its public API
    /// (`Fdt::new` accepts each; `all_nodes`, `properties`, `children` or
    /// `find_node` then panic at the site named), byte for byte as reported
    /// upstream in docs/upstream/fdt-0.1.5-panics.md. Our walker refuses
    /// the malformed ones with the rule they break and reads the rest
    /// (names need not be UTF-8: the purgatory compares bytes, as libfdt).
    #[test]
    fn what_panics_the_fdt_crate_is_refused_or_read() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
        };
        const HEAD: &str = "d00dfeed";
        let cases: [(&str, &str, Result<(), FdtError>); 12] = [
            ("control", "0000005a00000038000000580000002800000011000000100000000000000002000000200000000000000000000000000000000000000001000000000000000300000004000000000000000100000002000000096100", Ok(())),
            ("lib.rs:413 struct block past totalsize", "0000005a00000038000000580000002800000011000000100000000000000002000010200000000000000000000000000000000000000001000000000000000300000004000000000000000100000002000000096100", Err(FdtError::Blocks)),
            ("lib.rs:409 strings block past totalsize", "0000005a00000038000000580000002800000011000000100000000000001002000000200000000000000000000000000000000000000001000000000000000300000004000000000000000100000002000000096100", Err(FdtError::Blocks)),
            ("lib.rs:401 nameoff past the strings block", "0000005a00000038000000580000002800000011000000100000000000000002000000200000000000000000000000000000000000000001000000000000000300000004000000640000000000000002000000096100", Err(FdtError::PropName)),
            ("lib.rs:401 name without NUL", "0000005a00000038000000580000002800000011000000100000000000000002000000200000000000000000000000000000000000000001000000000000000300000004000000000000000000000002000000096162", Err(FdtError::PropName)),
            ("lib.rs:405 property name not UTF-8", "0000005a0000003800000058000000280000001100000010000000000000000200000020000000000000000000000000000000000000000100000000000000030000000400000000000000000000000200000009ff00", Ok(())),
            ("node.rs:508 value past the struct block", "0000005a00000038000000580000002800000011000000100000000000000002000000200000000000000000000000000000000000000001000000000000000300001000000000000000000000000002000000096100", Err(FdtError::PropValue)),
            ("node.rs:505 FDT_PROP at the end", "00000046000000380000004400000028000000110000001000000000000000020000000c000000000000000000000000000000000000000100000000000000036100", Err(FdtError::Truncated)),
            ("node.rs:426 node name without NUL", "000000400000003800000040000000280000001100000010000000000000000000000008000000000000000000000000000000000000000161626364", Err(FdtError::NodeName)),
            ("node.rs:426 node name not UTF-8", "00000054000000380000005400000028000000110000001000000000000000000000001c00000000000000000000000000000000000000010000000000000001ff000000000000020000000200000009", Ok(())),
            ("node.rs:408/448 END_NODE first", "0000004c000000380000004c000000280000001100000010000000000000000000000014000000000000000000000000000000000000000200000001000000000000000200000009", Err(FdtError::Nesting)),
            ("node.rs:472 child without END_NODE", "0000004c000000380000004c000000280000001100000010000000000000000000000014000000000000000000000000000000000000000100000000000000016300000000000009", Err(FdtError::Nesting)),
        ];
        for (site, rest, want) in cases {
            let blob = hex(&format!("{HEAD}{rest}"));
            assert_eq!(check(&blob), want, "{site}");
            exercise(&blob);
        }
        // node.rs:433: `all_nodes` keeps 64 parents and indexes the 65th
        // slot at depth 64, which the specification and Linux allow.
        let mut w = vec![B, 0];
        for _ in 1..MAX_DEPTH {
            w.extend([B, 0x6100_0000]);
        }
        w.extend(std::iter::repeat_n(E, MAX_DEPTH));
        w.push(END);
        assert_eq!(check(&with_struct(&w, b"")), Ok(()));
    }

    /// xorshift64*: reproducible pseudo-random numbers.
    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed | 1;
        move || {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    /// Everything the purgatory does with a DTB, on hostile bytes: no
    /// panic (host tests run with overflow checks), no write outside the
    /// blob, and a blob that passes `check` really reads as one.
    fn exercise(blob: &[u8]) {
        let verdict = check(blob);
        let mut copy = blob.to_vec();
        let patched = crate::fdt_patch::refresh_seeds(&mut copy, crate::sha256::compress_portable, &mut || Some(5));
        if verdict.is_err() {
            assert!(patched.is_err(), "patched a blob check refused");
            assert_eq!(copy, blob, "wrote into a refused blob");
        }
        let _ = crate::fdt_patch::set_boot_cpuid(&mut copy, 1);
        let _ = crate::checks::check_excluded(crate::abi::SegmentKind::Dtb, blob);
        if verdict.is_ok() {
            assert!(tokens(blob).is_ok());
        }
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let good = sample(3);
        // Every truncation, with and without totalsize fixed up to match.
        for len in 0..good.len() {
            exercise(&good[..len]);
            let mut fixed = good[..len].to_vec();
            if len >= 8 {
                set_be32(&mut fixed, 4, len as u32);
            }
            exercise(&fixed);
        }
        // Random corruption: header fields, then any byte, then any word
        // set to a token or a boundary value.
        let mut next = rng(0x5eed);
        let specials = [0, 1, 2, 3, 4, 9, 0x7fff_ffff, 0xffff_fffc, u32::MAX, good.len() as u32];
        for round in 0..20_000 {
            let mut b = good.clone();
            for _ in 0..1 + next() % 4 {
                let r = next();
                let at = match round % 3 {
                    0 => (r as usize % 10) * 4,
                    _ => (r as usize % (b.len() / 4)) * 4,
                };
                if round % 3 == 1 {
                    b[at + (r >> 32) as usize % 4] ^= 1 << ((r >> 40) % 8);
                } else {
                    set_be32(&mut b, at, specials[(r >> 32) as usize % specials.len()]);
                }
            }
            exercise(&b);
        }
    }
}
