//! What the riscv64 purgatory learns from the DTB about the hart it runs
//! on: RISC-V has no CPUID, so the extensions come from the boot hart's cpu
//! node (Documentation/devicetree/bindings/riscv/cpus.yaml and
//! extensions.yaml): `riscv,isa-extensions` (a string list, preferred) or
//! else the `riscv,isa` string, and the timer frequency from
//! `/cpus/timebase-frequency`. Portable, so the host tests it; the blob is
//! read with the bounds-checked walker of `crate::fdt` (whole blob checked,
//! no panic on any input).

use crate::bytes::{be_uint, same};
use crate::fdt::{Block, Token, Walker};

/// Extensions the purgatory can use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HartIsa {
    /// Zknh: sha256sum0/1, sha256sig0/1 (implied by Zkn and Zk).
    pub zknh: bool,
    /// Zkr: the `seed` CSR (implied by Zk). S-mode access still depends on
    /// mseccfg.SSEED, so the reader must be trap-guarded.
    pub zkr: bool,
    /// Which property it came from.
    pub source: IsaSource,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IsaSource {
    /// No cpu node with this hart id, or neither property.
    #[default]
    None,
    IsaExtensions,
    IsaString,
}

impl IsaSource {
    pub fn name(self) -> &'static str {
        // In declaration order (a table without relocations).
        purgatory_arch::str_table!(static NAMES = ["no cpu node", "riscv,isa-extensions", "riscv,isa"]);
        NAMES.get(self as usize)
    }
}

impl HartIsa {
    /// One extension name, as bytes: the names we look for are ASCII, so
    /// no UTF-8 validation (and its code) is needed to match them.
    fn add(&mut self, ext: &[u8]) {
        // Scalar crypto spec v1.0 §2.x: Zk = Zkn + Zkr + Zkt; Zkn includes
        // Zknh. Extension names are case-insensitive: "zk" then one of
        // "", "n", "nh", "r", by byte rather than five string comparisons.
        let lower = |i: usize| ext.get(i).map(u8::to_ascii_lowercase);
        if (lower(0), lower(1)) != (Some(b'z'), Some(b'k')) {
            return;
        }
        match (ext.len(), lower(2), lower(3)) {
            (2, ..) => (self.zknh, self.zkr) = (true, true),
            (3, Some(b'n'), _) | (4, Some(b'n'), Some(b'h')) => self.zknh = true,
            (3, Some(b'r'), _) => self.zkr = true,
            _ => {}
        }
    }
}

/// Parse a `riscv,isa` string: `rv64` + single-letter extensions, then
/// multi-letter ones separated by `_` (e.g. `rv64imafdc_zicsr_zknh`).
pub fn parse_isa_string(isa: &str) -> HartIsa {
    parse_isa_bytes(isa.as_bytes())
}

fn parse_isa_bytes(isa: &[u8]) -> HartIsa {
    let mut out = HartIsa { source: IsaSource::IsaString, ..HartIsa::default() };
    // The first token, "rv64imafdch...", has single letters, none of ours.
    for token in isa.split(|&b| b == b'_').skip(1) {
        out.add(token.trim_ascii());
    }
    out
}

/// A cell-sized integer property value (one or two 32-bit cells, as the
/// fdt crate's `as_usize` read them), big-endian.
fn cells(v: &[u8]) -> Option<u64> {
    matches!(v.len(), 4 | 8).then(|| be_uint(v))
}

/// What one `/cpus/cpu*` node says (value locations in the blob).
#[derive(Default)]
struct CpuNode {
    reg: Option<u64>,
    isa_extensions: Option<Block>,
    isa: Option<Block>,
}

impl CpuNode {
    fn isa(&self, dtb: &[u8]) -> HartIsa {
        if let Some(list) = self.isa_extensions.and_then(|b| b.bytes(dtb)) {
            let mut out = HartIsa { source: IsaSource::IsaExtensions, ..HartIsa::default() };
            for name in list.split(|&b| b == 0) {
                out.add(name);
            }
            return out;
        }
        match self.isa.and_then(|b| b.bytes(dtb)) {
            // A DT string: the bytes up to its NUL.
            Some(s) => parse_isa_bytes(s.split(|&b| b == 0).next().unwrap_or_default()),
            None => HartIsa::default(),
        }
    }
}

/// Walk the whole blob (`crate::fdt`, bounds-checked) and hand every node
/// of `/cpus` (depth 3) and every `/cpus` property to `visit`; None if the
/// blob is malformed anywhere.
fn walk_cpus(dtb: &[u8], mut visit: impl FnMut(CpusItem)) -> Option<()> {
    let mut walker = Walker::new(dtb).ok()?;
    let mut in_cpus = false;
    let mut cpu: Option<CpuNode> = None;
    while let Some(token) = walker.step().ok()? {
        match token {
            Token::BeginNode { name, depth: 2 } => in_cpus = same(name, b"cpus"),
            Token::BeginNode { name, depth: 3 } if in_cpus && name.get(..3).is_some_and(|n| same(n, b"cpu")) => {
                cpu = Some(CpuNode::default())
            }
            Token::BeginNode { .. } => {}
            Token::EndNode { depth: 2 } => in_cpus = false,
            Token::EndNode { depth: 3 } => {
                if let Some(node) = cpu.take() {
                    visit(CpusItem::Cpu(node));
                }
            }
            Token::EndNode { .. } => {}
            Token::Prop { name, value, depth: 2 } if in_cpus => visit(CpusItem::Prop(name, value)),
            Token::Prop { name, value, depth: 3 } => {
                // Names compared out of line (`same`): a `match` on byte
                // strings expands every comparison inline.
                if let Some(node) = cpu.as_mut() {
                    if same(name, b"reg") {
                        node.reg = value.bytes(dtb).and_then(cells);
                    } else if same(name, b"riscv,isa-extensions") {
                        node.isa_extensions = Some(value);
                    } else if same(name, b"riscv,isa") {
                        node.isa = Some(value);
                    }
                }
            }
            Token::Prop { .. } => {}
        }
    }
    Some(())
}

enum CpusItem<'a> {
    /// A `/cpus/cpu*` node, once closed.
    Cpu(CpuNode),
    /// A property of `/cpus` itself.
    Prop(&'a [u8], Block),
}

/// What the DTB says about the boot hart, in one walk of the blob: its
/// extensions (the first `/cpus/cpu*` node whose `reg` is `hart_id`) and
/// `/cpus/timebase-frequency` (one or two cells, in Hz). A malformed blob
/// gives neither; a missing node or property gives `HartIsa::default()`
/// (nothing optional used) or None.
pub fn boot_hart(dtb: &[u8], hart_id: u64) -> (HartIsa, Option<u64>) {
    let (mut isa, mut timebase) = (None, None);
    let walked = walk_cpus(dtb, |item| match item {
        CpusItem::Cpu(node) => {
            if isa.is_none() && node.reg == Some(hart_id) {
                isa = Some(node.isa(dtb));
            }
        }
        CpusItem::Prop(name, value) => {
            if same(name, b"timebase-frequency") {
                timebase = timebase.or(value.bytes(dtb).and_then(cells));
            }
        }
    });
    match walked {
        Some(()) => (isa.unwrap_or_default(), timebase),
        None => (HartIsa::default(), None),
    }
}

/// The boot hart's extensions ([`boot_hart`]).
pub fn boot_hart_isa(dtb: &[u8], hart_id: u64) -> HartIsa {
    boot_hart(dtb, hart_id).0
}

/// `/cpus/timebase-frequency` ([`boot_hart`]).
pub fn timebase_frequency(dtb: &[u8]) -> Option<u64> {
    boot_hart(dtb, 0).1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dtb(isa: Option<&str>, exts: Option<&[&str]>, hart: u32) -> Vec<u8> {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        let cpus = w.begin_node("cpus").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 0).unwrap();
        w.property_u32("timebase-frequency", 10_000_000).unwrap();
        for id in [0u32, hart] {
            if id == hart && id == 0 && isa.is_none() && exts.is_none() {
                continue;
            }
            let cpu = w.begin_node(&format!("cpu@{id}")).unwrap();
            w.property_string("device_type", "cpu").unwrap();
            w.property_u32("reg", id).unwrap();
            if id == hart {
                if let Some(s) = isa {
                    w.property_string("riscv,isa", s).unwrap();
                }
                if let Some(list) = exts {
                    w.property_string_list("riscv,isa-extensions", list.iter().map(|s| s.to_string()).collect())
                        .unwrap();
                }
            } else {
                w.property_string("riscv,isa", "rv64imafdc_zk").unwrap();
            }
            w.end_node(cpu).unwrap();
            if hart == 0 {
                break;
            }
        }
        w.end_node(cpus).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn sources_are_named() {
        let names = [IsaSource::None, IsaSource::IsaExtensions, IsaSource::IsaString].map(IsaSource::name);
        assert_eq!(names, ["no cpu node", "riscv,isa-extensions", "riscv,isa"]);
    }

    #[test]
    fn qemu_72_isa_strings() {
        let plain = "rv64imafdch_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbs_sstc";
        assert_eq!(parse_isa_string(plain), HartIsa { zknh: false, zkr: false, source: IsaSource::IsaString });
        let zknh = "rv64imafdch_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbs_zknh_sstc";
        assert!(parse_isa_string(zknh).zknh);
        assert!(parse_isa_string("rv64imac_zkr").zkr);
        let zk = parse_isa_string("rv64gc_Zk");
        assert!(zk.zknh && zk.zkr, "Zk implies Zknh and Zkr");
        assert!(parse_isa_string("rv64gc_zkn").zknh);
        // Single letters never enable anything; a prefix is not a match.
        assert!(!parse_isa_string("rv64gczknh").zknh);
        assert!(!parse_isa_string("rv64gc_zknhx").zknh);
    }

    #[test]
    fn boot_hart_node_is_found_by_reg() {
        let blob = dtb(Some("rv64imafdc_zknh"), None, 3);
        let isa = boot_hart_isa(&blob, 3);
        assert_eq!(isa, HartIsa { zknh: true, zkr: false, source: IsaSource::IsaString });
        // Hart 0's node says rv64imafdc_zk: a different hart id reads that.
        let other = boot_hart_isa(&blob, 0);
        assert!(other.zknh && other.zkr);
        assert_eq!(boot_hart_isa(&blob, 7), HartIsa::default(), "no node for hart 7");
        assert_eq!(timebase_frequency(&blob), Some(10_000_000));
    }

    #[test]
    fn isa_extensions_list_wins_over_the_string() {
        let blob = dtb(Some("rv64imafdc"), Some(&["i", "m", "zicsr", "zknh", "zkr"]), 0);
        assert_eq!(boot_hart_isa(&blob, 0), HartIsa { zknh: true, zkr: true, source: IsaSource::IsaExtensions });
    }

    #[test]
    fn garbage_gives_nothing() {
        assert_eq!(boot_hart_isa(b"not a dtb", 0), HartIsa::default());
        assert_eq!(timebase_frequency(b"nope"), None);
        // A well-formed start and a broken tail: nothing is trusted.
        let blob = dtb(Some("rv64imafdc_zknh"), None, 0);
        let cut = blob.len() - 8;
        let mut bad = blob.clone();
        bad[cut..].fill(0xff);
        assert_eq!(boot_hart_isa(&bad, 0), HartIsa::default());
        assert_eq!(timebase_frequency(&bad), None);
        for len in 0..blob.len() {
            let _ = (boot_hart_isa(&blob[..len], 0), timebase_frequency(&blob[..len]));
        }
    }
}
