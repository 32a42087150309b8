//! Everything the purgatory reads from a DTB, done with the `fdt` crate
//! 0.2.0-alpha3 instead of `kexec_purgatory::fdt` (docs/fdt-crate-evaluation.md):
//! the walk of the `fdt_crate` fuzz target and of `tests/fdt_crate.rs`.
//!
//! The crate has two modes: `Panic` unwraps every parse error by design,
//! `NoPanic` returns them; only `NoPanic` is a candidate for hostile blobs,
//! so only it is driven, through both parsers (`new_unaligned_fallible` on
//! the bytes, `new_fallible` on a `u32`-aligned copy). The walk is the one
//! `fuzz_targets/fdt_walk.rs` does with our walker (parse; every node, every
//! property, every child), plus the lookups the purgatory makes
//! (purgatory/src/fdt.rs, fdt_patch.rs, hart_isa.rs, checks.rs): the header
//! and `boot_cpuid_phys`, /chosen with `kaslr-seed`/`rng-seed` (and the
//! properties a kdump tree has), /cpus with each cpu's `reg`,
//! `timebase-frequency`, `riscv,isa(-extensions)`, and /memory's `reg`. A
//! parse error ends nothing: the walk goes on with what the crate still
//! offers, as a caller using `.ok()` would. What may not happen is a panic,
//! or a slice outside the blob.

// The crate under evaluation, renamed in Cargo.toml (`fdt` 0.1.5 is the
// workspace's).
use fdt_alpha::nodes::{AsNode, Node};
use fdt_alpha::parsing::{NoPanic, Parser};
use fdt_alpha::Fdt;

/// Properties looked up by name in /chosen: the purgatory's seeds, and what
/// loaders put there for a kdump or initrd boot.
pub const CHOSEN_PROPS: [&str; 8] = [
    "kaslr-seed",
    "rng-seed",
    "bootargs",
    "stdout-path",
    "linux,elfcorehdr",
    "linux,usable-memory-range",
    "linux,initrd-start",
    "linux,initrd-end",
];

/// Properties of a `/cpus/cpu*` node the riscv64 purgatory reads.
pub const CPU_PROPS: [&str; 3] = ["reg", "riscv,isa-extensions", "riscv,isa"];

/// The address range of the memory the blob lives in.
#[derive(Clone, Copy)]
pub struct Span {
    start: usize,
    end: usize,
}

impl Span {
    pub fn of<T>(s: &[T]) -> Self {
        let r = s.as_ptr_range();
        Span { start: r.start as usize, end: r.end as usize }
    }

    /// `s` lies inside the blob (an empty slice anywhere counts).
    pub fn holds(self, s: &[u8]) -> bool {
        let r = Span::of(s);
        s.is_empty() || (r.start >= self.start && r.end <= self.end)
    }

    /// `s`'s offset in the blob, as the purgatory needs it to patch a value.
    pub fn offset(self, s: &[u8]) -> usize {
        Span::of(s).start - self.start
    }
}

/// What one walk saw, for the differential checks of tests/fdt_crate.rs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// `Fdt::new*` accepted the blob.
    pub accepted: bool,
    /// `Fdt::root` succeeded.
    pub root: bool,
    /// `(depth, name)` of every node `Root::all_nodes` yielded, until its
    /// first error.
    pub nodes: Vec<(usize, String)>,
    /// The iteration of `all_nodes` ended with an error.
    pub nodes_error: bool,
    /// /chosen's `kaslr-seed` and `rng-seed`: `(offset, len)` in the blob.
    pub seeds: [Option<(usize, usize)>; 2],
    /// `Root::chosen` found a node.
    pub chosen: bool,
    /// The first cpu id of each `/cpus/cpu*` node (`CpuIds::iter().next()`).
    pub cpu_ids: Vec<Option<u64>>,
    /// `/cpus` `timebase-frequency`.
    pub timebase: Option<u64>,
}

/// Walk `fdt` (parsed from memory `blob`) as the purgatory would; panics
/// only where the crate does, or when it hands out a slice outside `blob`.
pub fn walk<'a, Q: Parser<'a>>(blob: Span, fdt: &Fdt<'a, (Q, NoPanic)>) -> Seen {
    let mut seen = Seen { accepted: true, ..Seen::default() };
    let h = fdt.header();
    let _ = (h.boot_cpuid, h.version, h.last_compatible_version, h.memory_reserve_map_offset, fdt.total_size());
    assert!(blob.holds(fdt.strings_block()), "strings block outside the blob");
    let structs = Span::of(fdt.structs_block());
    assert!(structs.start >= blob.start && structs.end <= blob.end, "structure block outside the blob");
    for s in fdt.strings().take(4096) {
        assert!(blob.holds(s.as_bytes()));
    }
    let Ok(root) = fdt.root() else {
        return seen;
    };
    seen.root = true;
    // Bound every iteration. Iterators over children (`NodeChildren`,
    // `Cpus::iter`, the topology's) stop at their first error: they repeat
    // it forever (finding 2, `known::CHILDREN_REPEAT_THEIR_ERROR`).
    let cap = 1 + (blob.end - blob.start);

    // Every node, depth-first; every property and child of each.
    match root.all_nodes() {
        Ok(nodes) => {
            let mut first_error = true;
            for item in nodes.take(cap) {
                match item {
                    Ok((depth, node)) => {
                        if first_error {
                            let name = node.name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
                            seen.nodes.push((depth, name));
                        }
                        visit(blob, node, cap);
                    }
                    Err(_) => {
                        seen.nodes_error |= first_error;
                        first_error = false;
                    }
                }
            }
        }
        Err(_) => seen.nodes_error = true,
    }
    let root_node = root.as_node();
    visit(blob, root_node, cap);
    if let Ok(children) = root_node.children() {
        let _ = (children.find("chosen"), children.find("cpus"), root_node.child("memory"));
    }
    let _ = root.cell_sizes();
    if let Ok(c) = root.compatible() {
        let _ = (c.first(), c.all().take(cap).count());
    }
    let _ = (root.model(), root.serial_number());

    // /chosen, as each lookup the crate offers finds it.
    for found in [fdt.find_node("/chosen"), root.find_node_by_name("chosen")] {
        if let Ok(Some(node)) = found {
            visit(blob, node, cap);
        }
    }
    if let Ok(chosen) = root.chosen() {
        seen.chosen = true;
        // `Root::chosen` is the node `find_node("/chosen")` returns.
        let clean = root.find_node("/chosen").is_ok_and(|n| n.is_some_and(|n| known::properties_read_cleanly(n, cap)));
        if clean {
            if let Ok(Some(args)) = chosen.bootargs() {
                assert!(blob.holds(args.as_bytes()));
            }
        }
        if let Ok(Some(p)) = chosen.stdout_path() {
            let _ = (p.path(), p.params());
        }
        if let Ok(Some(out)) = chosen.stdout() {
            visit(blob, out.node, cap);
        }
        if let Ok(Some(p)) = chosen.stdin_path() {
            let _ = (p.path(), p.params());
        }
        if let Ok(Some(inp)) = chosen.stdin() {
            visit(blob, inp.node, cap);
        }
    }
    // `Chosen` hides its node: the properties come from the node
    // `find_node("/chosen")` returns (the lookup `Root::chosen` makes).
    if let Ok(Some(node)) = root.find_node("/chosen") {
        visit(blob, node, cap);
        for (i, name) in CHOSEN_PROPS.iter().enumerate() {
            if let Ok(Some(p)) = node.raw_property(name) {
                assert!(blob.holds(p.value), "{name} outside the blob");
                if i < 2 {
                    seen.seeds[i] = Some((blob.offset(p.value), p.value.len()));
                }
            }
        }
    }

    // /cpus: the boot cpu's id, timebase, ISA.
    if let Ok(cpus) = root.cpus() {
        let _ = (cpus.cell_sizes(), cpus.common_clock_frequency());
        seen.timebase = cpus.common_timebase_frequency().ok().flatten();
        if let Ok(Some(topology)) = cpus.topology() {
            if let Ok(sockets) = topology.sockets() {
                for s in sockets.take(cap).map_while(Result::ok) {
                    let _ = s.id();
                }
            }
            if let Ok(clusters) = topology.clusters() {
                for c in clusters.take(cap).map_while(Result::ok) {
                    let _ = c.id();
                }
            }
        }
        if let Ok(iter) = cpus.iter() {
            for cpu in iter.take(cap).map_while(Result::ok) {
                let mut id = None;
                // `Cpu`'s getters take `self` (Copy only for Copy parsers).
                if let Ok(ids) = cpu.clone().reg::<u64>() {
                    id = ids.iter().next().and_then(Result::ok);
                    let _ = ids.iter().take(cap).count();
                    // `first` unwraps what `iter().next()` gives (finding 5).
                    if known::cpu_ids_first_has_an_id(&ids) {
                        let _ = ids.first();
                    }
                }
                seen.cpu_ids.push(id);
                let _ = (cpu.clone().timebase_frequency(), cpu.clone().clock_frequency());
                if let Ok(Some(s)) = cpu.status() {
                    let _ = (s.is_okay(), s.is_disabled());
                }
                if let Ok(Some(m)) = cpu.enable_method() {
                    let _ = (m.first(), m.iter().take(cap).count());
                }
                let node = cpu.as_node();
                for name in CPU_PROPS {
                    if let Ok(Some(p)) = node.raw_property(name) {
                        assert!(blob.holds(p.value), "{name} outside the blob");
                    }
                }
            }
        }
    }

    // /memory's reg.
    if let Ok(memory) = root.memory() {
        if let Ok(reg) = memory.reg() {
            let _ = reg.cell_sizes();
            let _ = reg.iter::<u64, u64>().take(cap).count();
            let _ = reg.iter::<u64, Option<u64>>().take(cap).count();
            for e in reg.iter_raw().take(cap) {
                assert!(blob.holds(e.address) && blob.holds(e.len));
            }
        }
        let _ = (memory.initial_mapped_area(), memory.hotpluggable());
    }
    seen
}

/// One node: its name, every property, its `reg`, its parent's name, and
/// every child's name (`all_nodes` visits the children themselves).
fn visit<'a, Q: Parser<'a>>(blob: Span, node: Node<'a, (Q, NoPanic)>, cap: usize) {
    if let Ok(name) = node.name() {
        // The root's "" comes back as a static "/".
        assert!(name.name == "/" || blob.holds(name.name.as_bytes()), "node name outside the blob");
    }
    props(blob, node, cap);
    read_reg(blob, node, cap);
    if let Some(parent) = node.parent() {
        let _ = parent.name();
    }
    if let Ok(children) = node.children() {
        for child in children.iter().take(cap).map_while(Result::ok) {
            let _ = child.name();
        }
    }
}

fn props<'a, Q: Parser<'a>>(blob: Span, node: Node<'a, (Q, NoPanic)>, cap: usize) {
    let Ok(props) = node.properties() else { return };
    // Stops at the first error, which the iterator repeats (finding 4).
    for p in props.iter().take(cap).map_while(Result::ok) {
        assert!(blob.holds(p.name.as_bytes()), "property name outside the blob");
        assert!(blob.holds(p.value), "property value outside the blob");
        let _ = (p.as_value::<u32>(), p.as_value::<u64>(), p.as_value::<&str>());
    }
    let _ = props.find("reg");
}

fn read_reg<'a, Q: Parser<'a>>(blob: Span, node: Node<'a, (Q, NoPanic)>, cap: usize) {
    let Ok(Some(reg)) = node.reg() else { return };
    let _ = reg.iter::<u64, u64>().take(cap).count();
    for e in reg.iter_raw().take(cap) {
        assert!(blob.holds(e.address) && blob.holds(e.len));
    }
}

/// Findings of the campaign (docs/fdt-crate-evaluation.md), each skipped
/// where it would panic so that the hunt can go on to other sites: a blob
/// or a call of that shape is not walked. tests/fdt_crate.rs holds each
/// one's minimized blob and checks that the crate still panics on it.
pub mod known {
    use super::{NoPanic, Node, Parser};

    /// Big-endian header word `i` (§5.2 order), if the bytes are there.
    fn word(data: &[u8], i: usize) -> Option<u32> {
        Some(u32::from_be_bytes(data.get(4 * i..4 * i + 4)?.try_into().ok()?))
    }

    /// Finding 1: `Fdt::new_unaligned` (lib.rs:230/231) and `Fdt::new`
    /// (lib.rs:272/273) add `off_dt_strings + size_dt_strings` and
    /// `off_dt_struct + size_dt_struct` in `u32`: a sum past 4 GiB panics
    /// (release: wraps, then lib.rs:236/237 slices out of range).
    pub fn header_sum_overflows(data: &[u8]) -> bool {
        let sum = |off, size| Some(word(data, off)?.checked_add(word(data, size)?).is_none());
        sum(3, 8) == Some(true) || sum(2, 9) == Some(true)
    }

    /// Finding 2 (a timeout of the campaign): `NodeChildren::advance`
    /// (nodes.rs:609-616) keeps its position when `parse_node` fails, so
    /// the children iterator (and `Cpus::iter`, the topology's iterators,
    /// built on it) yields the same `Err` forever. A caller that skips
    /// errors (`.flatten()`, `.filter_map(Result::ok)`) never returns. The
    /// walk stops each children iteration at its first error instead.
    pub const CHILDREN_REPEAT_THEIR_ERROR: () = ();

    /// Finding 4 (a timeout of the campaign): `NodeProperties::advance`
    /// (nodes.rs:464-471) returns `UnexpectedToken` without moving on when
    /// the next token of a node is neither a property nor a node boundary
    /// (an FDT_END inside it, say), so the properties iterator yields that
    /// `Err` forever, and `Chosen::bootargs` (chosen.rs:32), which
    /// `.flatten()`s it, never returns. The walk calls `bootargs` only on a
    /// /chosen whose properties read without error.
    pub fn properties_read_cleanly<'a, Q: Parser<'a>>(node: Node<'a, (Q, NoPanic)>, cap: usize) -> bool {
        node.properties().is_ok_and(|p| p.iter().take(cap).all(|p| p.is_ok()))
    }

    /// Finding 5: `CpuIds::first` (cpus.rs:598) is `iter().next().unwrap()`,
    /// and the iterator gives nothing when `reg` is shorter than /cpus'
    /// `#address-cells` cells (release too): a well-formed tree can say so.
    /// The walk calls `first` only when there is a first id.
    pub fn cpu_ids_first_has_an_id<C: fdt_alpha::cell_collector::CellCollector>(
        ids: &fdt_alpha::nodes::cpus::CpuIds<'_, C>,
    ) -> bool {
        ids.iter().next().is_some()
    }

    /// Finding 3: `Parser::parse_root` (parsing.rs:344), where every
    /// lookup starts, computes `byte_data.len() - 4` after the first token:
    /// a structure block that ends (fewer than 4 bytes left) right after
    /// the root's FDT_BEGIN_NODE (NOPs before it skipped) underflows
    /// (release: wraps, and `.get` refuses the block).
    pub fn root_token_ends_the_block(structs: &[u8]) -> bool {
        let mut rest = structs;
        while let Some((token, tail)) = rest.split_first_chunk::<4>() {
            match u32::from_be_bytes(*token) {
                4 => rest = tail,
                1 => return tail.len() < 4,
                _ => return false,
            }
        }
        false
    }
}

/// Both parsers on `data`: the unaligned one on the bytes, the aligned one
/// on a copy in `u32`s (zero-padded to a whole word). Returns what the
/// unaligned walk saw.
pub fn walk_both(data: &[u8]) -> Seen {
    let mut seen = Seen::default();
    let words: Vec<u32> = data
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_ne_bytes(w)
        })
        .collect();
    // The aligned copy's header may be whole where `data`'s is not.
    let padded: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    if known::header_sum_overflows(&padded) {
        return seen;
    }
    if let Ok(fdt) = Fdt::new_unaligned_fallible(data) {
        if !known::root_token_ends_the_block(fdt.structs_block()) {
            seen = walk(Span::of(data), &fdt);
        }
    }
    if let Ok(fdt) = Fdt::new_fallible(&words) {
        let structs: Vec<u8> = fdt.structs_block().iter().flat_map(|w| w.to_ne_bytes()).collect();
        if !known::root_token_ends_the_block(&structs) {
            walk(Span::of(&words), &fdt);
        }
    }
    seen
}
