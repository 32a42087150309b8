//! The device tree a ppc64le capture kernel boots with (kdump), as the
//! kernel reads it: arch/powerpc/kernel/prom.c `early_init_dt_scan_memory_ppc`
//! takes its memory from `linux,usable-memory` on each memory node (the
//! generic drivers/of/fdt.c `early_init_dt_scan_memory` prefers it to
//! `reg`) and from `linux,drconf-usable-memory` beside
//! `ibm,dynamic-memory[-v2]` (`early_init_drmem_lmb`); `/chosen`'s
//! `linux,usable-memory-range` is not read on powerpc. What the capture
//! kernel may use is what kexec-tools (kexec/arch/ppc64/crashdump-ppc64.c
//! `add_usable_mem_rgns`, kexec/fs2dt.c) and the kernel's own kexec_file
//! loader (arch/powerpc/kexec/file_load_64.c `update_usable_mem_fdt`) give
//! it: RAM from 0 to the end of the crash reservation, minus what
//! /memreserve/ keeps (the crashed kernel's memory below the reservation),
//! plus the firmware's runtime memory (RTAS, OPAL).
//!
//! With crash hotplug the running kernel rewrites the `/cpus` nodes of
//! this tree in place when a CPU comes online (arch/powerpc/kexec/crash.c
//! `update_crash_fdt`, core_64.c `update_cpus_node`, with libfdt, which
//! fails with -FDT_ERR_NOSPACE past the header's totalsize): the tree is
//! loaded with room for every possible core's node.

use dtoolkit::{Node, Property};

use crate::dtb::edit::{DtbEditError, DtbEditor};
use crate::range::{align_down, align_up, Range};

/// `ibm,dynamic-memory` LMB flags (arch/powerpc/include/asm/drmem.h).
const DRCONF_MEM_ASSIGNED: u32 = 0x8;
const DRCONF_MEM_RESERVED: u32 = 0x80;
/// The drconf node (PAPR; arch/powerpc/mm/drmem.c).
const DRCONF: &str = "/ibm,dynamic-reconfiguration-memory";
/// Room beyond what the CPU nodes need, as kexec-tools' fixup_dt keeps
/// (kexec/arch/ppc64/fdt.c: `size += 4096`).
const MARGIN: u64 = 4096;
/// Most LMBs read from a tree (64 TiB of 256 MiB blocks).
const MAX_LMBS: u64 = 1 << 18;

/// What the capture kernel may use: `[0, crash end)` and the firmware's
/// runtime memory, each rounded out to `page` (kexec-tools
/// add_usable_mem_rgns rounds to the page size).
pub(super) fn usable_ranges(crash_end: u64, firmware: &[Range], page: u64) -> Vec<Range> {
    let mut out = vec![Range::new(0, crash_end)];
    for f in firmware {
        let end = align_up(f.end, page).unwrap_or(u64::MAX);
        out.push(Range::new(align_down(f.start, page), end));
    }
    crate::range::FreeMap::new(out).ranges().to_vec()
}

/// The parts of `[start, end)` inside `usable`.
fn usable_parts(r: Range, usable: &[Range]) -> Vec<Range> {
    usable.iter().map(|u| Range::new(r.start.max(u.start), r.end.min(u.end))).filter(|p| !p.is_empty()).collect()
}

fn push_cells(v: u64, cells: u32, out: &mut Vec<u8>) {
    if cells >= 2 {
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.extend_from_slice(&(v as u32).to_be_bytes());
    }
}

/// Read `n` (1 or 2) big-endian cells at `*at` and advance.
fn take_cells(v: &[u8], at: &mut usize, n: u32) -> Option<u64> {
    let len = 4 * n as usize;
    let bytes = v.get(*at..at.checked_add(len)?)?;
    *at += len;
    Some(
        bytes
            .chunks_exact(4)
            .fold(0u64, |acc, c| (acc << 32) | u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))),
    )
}

fn bad(path: &str, name: &str, why: impl Into<String>) -> DtbEditError {
    DtbEditError::BadValue { path: path.to_string(), name: name.to_string(), why: why.into() }
}

/// What [`restrict_memory`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Restricted {
    /// Memory nodes given `linux,usable-memory`.
    pub memory_nodes: usize,
    /// LMBs of `ibm,dynamic-memory[-v2]` given a `linux,drconf-usable-memory`
    /// entry (None: no drconf node).
    pub lmbs: Option<u64>,
}

/// Give every memory node `linux,usable-memory` (its `reg` ranges cut to
/// `usable`, in the root's cells; one (0, 0) pair when nothing is left,
/// which the kernel skips) and the drconf node its
/// `linux,drconf-usable-memory`.
pub(super) fn restrict_memory(dtb: &mut DtbEditor, usable: &[Range]) -> Result<Restricted, DtbEditError> {
    let cells = dtb.root_cells()?;
    if !(1..=2).contains(&cells.address) || !(1..=2).contains(&cells.size) {
        return Err(bad("/", "#address-cells", "a memory description needs 1 or 2 address and size cells"));
    }
    let mut done = Restricted::default();
    for name in dtb.child_names("/")? {
        let path = format!("/{name}");
        let is_memory = dtb.property(&path, "device_type")?.is_some_and(|v| v == b"memory\0");
        if !is_memory {
            continue;
        }
        let mut value = Vec::new();
        for r in dtb.reg_ranges(&path)? {
            for p in usable_parts(r, usable) {
                push_cells(p.start, cells.address, &mut value);
                push_cells(p.len(), cells.size, &mut value);
            }
        }
        if value.is_empty() {
            push_cells(0, cells.address, &mut value);
            push_cells(0, cells.size, &mut value);
        }
        dtb.set_property(&path, "linux,usable-memory", &value)?;
        done.memory_nodes += 1;
    }
    done.lmbs = drconf_usable_memory(dtb, usable, cells.address, cells.size)?;
    Ok(done)
}

/// One LMB of the drconf node.
struct Lmb {
    base: u64,
    flags: u32,
}

/// The LMBs of `ibm,dynamic-memory` (v1) or, without it,
/// `ibm,dynamic-memory-v2` (arch/powerpc/mm/drmem.c
/// `walk_drmem_lmbs_early`, `read_drconf_v1_cell`, `read_drconf_v2_cell`).
fn lmbs(dtb: &DtbEditor, lmb_size: u64, addr_cells: u32) -> Result<Option<Vec<Lmb>>, DtbEditError> {
    let mut out = Vec::new();
    if let Some(v) = dtb.property(DRCONF, "ibm,dynamic-memory")? {
        let name = "ibm,dynamic-memory";
        let mut at = 0;
        let n = take_cells(v, &mut at, 1).ok_or_else(|| bad(DRCONF, name, "no LMB count"))?;
        if n > MAX_LMBS {
            return Err(bad(DRCONF, name, format!("{n} LMBs: more than {MAX_LMBS}")));
        }
        for i in 0..n {
            // base, drc-index, reserved, associativity index, flags.
            let cell = |at: &mut usize, c| {
                take_cells(v, at, c).ok_or_else(|| bad(DRCONF, name, format!("LMB {i} is cut short")))
            };
            let base = cell(&mut at, addr_cells)?;
            for _ in 0..3 {
                cell(&mut at, 1)?;
            }
            out.push(Lmb { base, flags: cell(&mut at, 1)? as u32 });
        }
        return Ok(Some(out));
    }
    let Some(v) = dtb.property(DRCONF, "ibm,dynamic-memory-v2")? else { return Ok(None) };
    let name = "ibm,dynamic-memory-v2";
    let mut at = 0;
    let sets = take_cells(v, &mut at, 1).ok_or_else(|| bad(DRCONF, name, "no set count"))?;
    for i in 0..sets {
        // sequential LMBs, base, drc-index, associativity index, flags.
        let cell =
            |at: &mut usize, c| take_cells(v, at, c).ok_or_else(|| bad(DRCONF, name, format!("set {i} is cut short")));
        let count = cell(&mut at, 1)?;
        let base = cell(&mut at, addr_cells)?;
        cell(&mut at, 1)?;
        cell(&mut at, 1)?;
        let flags = cell(&mut at, 1)? as u32;
        if (out.len() as u64).saturating_add(count) > MAX_LMBS {
            return Err(bad(DRCONF, name, format!("more than {MAX_LMBS} LMBs")));
        }
        for k in 0..count {
            let base = k.checked_mul(lmb_size).and_then(|off| base.checked_add(off));
            let base = base.ok_or_else(|| bad(DRCONF, name, format!("set {i} wraps the address space")))?;
            out.push(Lmb { base, flags });
        }
    }
    Ok(Some(out))
}

/// `linux,drconf-usable-memory`: for each LMB the kernel reads one for, a
/// count and that many (base, size) pairs inside `usable` (count 0: the
/// LMB is not the capture kernel's). The kernel reads an entry only for an
/// LMB that is assigned and not reserved (prom.c `early_init_drmem_lmb`,
/// numa.c `numa_setup_drmem_lmb` skip the others before reading), so
/// those are the ones written; kexec-tools' fs2dt and the kernel's own
/// `kdump_setup_usable_lmb` write one for every LMB, which reads the same
/// only while no skipped LMB comes before an assigned one.
fn drconf_usable_memory(
    dtb: &mut DtbEditor,
    usable: &[Range],
    addr_cells: u32,
    size_cells: u32,
) -> Result<Option<u64>, DtbEditError> {
    let Some(size) = dtb.property(DRCONF, "ibm,lmb-size")? else { return Ok(None) };
    let lmb_size = take_cells(size, &mut 0, size_cells)
        .filter(|s| *s > 0)
        .ok_or_else(|| bad(DRCONF, "ibm,lmb-size", "not a non-zero size in the root's #size-cells"))?;
    let Some(lmbs) = lmbs(dtb, lmb_size, addr_cells)? else { return Ok(None) };
    let mut value = Vec::new();
    let mut written = 0u64;
    for lmb in lmbs.iter().filter(|l| l.flags & DRCONF_MEM_ASSIGNED != 0 && l.flags & DRCONF_MEM_RESERVED == 0) {
        let end = lmb.base.checked_add(lmb_size).ok_or_else(|| bad(DRCONF, "ibm,dynamic-memory", "an LMB wraps"))?;
        let parts = usable_parts(Range::new(lmb.base, end), usable);
        push_cells(parts.len() as u64, size_cells, &mut value);
        for p in parts {
            push_cells(p.start, addr_cells, &mut value);
            push_cells(p.len(), size_cells, &mut value);
        }
        written += 1;
    }
    dtb.set_property(DRCONF, "linux,drconf-usable-memory", &value)?;
    Ok(Some(written))
}

/// Bytes one node takes in the structure block (devicetree spec §5.4:
/// FDT_BEGIN_NODE, its name and NUL padded to 4, each property's 12-byte
/// header and value padded to 4, FDT_END_NODE).
fn node_size(node: &dtoolkit::model::DeviceTreeNode) -> u64 {
    let pad = |n: usize| (n as u64).next_multiple_of(4);
    let props: u64 = node.properties().map(|p| 12 + pad(p.value().len())).sum();
    let children: u64 = node.children().map(node_size).sum();
    4 + pad(node.name().len() + 1) + props + children + 4
}

/// Room the kernel needs to rewrite `/cpus` with every possible core:
/// the cores that may still come (possible threads / threads per core,
/// less the cores the tree lists) times the largest core node, with a
/// quarter more for properties a new node may add, plus kexec-tools'
/// 4096 (kexec/arch/ppc64/fdt.c `kdump_fdt_extra_size` counts the same
/// cores but not the structure block's headers and padding).
pub(super) fn cpu_hotplug_room(dtb: &DtbEditor, possible_threads: u64) -> Result<u64, DtbEditError> {
    let root = &dtb.tree().root;
    let Some(cpus) = root.children().find(|c| c.name() == "cpus") else {
        return Err(DtbEditError::NoNode { path: "/cpus".into() });
    };
    let is_cpu =
        |n: &&dtoolkit::model::DeviceTreeNode| n.property("device_type").is_some_and(|p| p.value() == b"cpu\0");
    let cores: Vec<_> = cpus.children().filter(is_cpu).collect();
    let threads = cores
        .first()
        .and_then(|c| c.property("ibm,ppc-interrupt-server#s"))
        .map(|p| (p.value().len() / 4) as u64)
        .filter(|t| *t > 0)
        .unwrap_or(1);
    let possible_cores = possible_threads.div_ceil(threads);
    let missing = possible_cores.saturating_sub(cores.len() as u64);
    let largest = cores.iter().map(|c| node_size(c)).max().unwrap_or(0);
    Ok(missing.saturating_mul(largest.saturating_add(largest / 4)).saturating_add(MARGIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn usable_is_low_memory_to_the_crash_end_and_the_firmware_rounded_out() {
        let rtas = Range::new(0x2fff_f000, 0x2fff_f83c);
        let far = Range::new(0x7000_1000, 0x7000_2000);
        assert_eq!(
            usable_ranges(0x4000_0000, &[rtas, far], 64 << 10),
            vec![Range::new(0, 0x4000_0000), Range::new(0x7000_0000, 0x7001_0000)]
        );
    }

    #[test]
    fn v2_sets_expand_and_only_assigned_unreserved_lmbs_get_an_entry() {
        let t = crate::testing::pseries_tree("ppc-drconf");
        let node = t.root.join("proc/device-tree/ibm,dynamic-reconfiguration-memory");
        std::fs::create_dir_all(&node).unwrap();
        let lmb = 256 * MIB;
        std::fs::write(node.join("name"), b"ibm,dynamic-reconfiguration-memory\0").unwrap();
        std::fs::write(node.join("ibm,lmb-size"), lmb.to_be_bytes()).unwrap();
        // QEMU's layout: RAM + gap reserved, one DIMM at 2 GiB, free slots.
        let mut v2 = 3u32.to_be_bytes().to_vec();
        for (count, base, flags) in [(8u32, 0u64, 0xa0u32), (2, 0x8000_0000, 0x108), (6, 0xa000_0000, 0)] {
            v2.extend_from_slice(&count.to_be_bytes());
            v2.extend_from_slice(&base.to_be_bytes());
            v2.extend_from_slice(&[0; 8]);
            v2.extend_from_slice(&flags.to_be_bytes());
        }
        std::fs::write(node.join("ibm,dynamic-memory-v2"), &v2).unwrap();
        let tree = crate::system::device_tree::read_tree(&t.sys().device_tree_dir()).unwrap();
        let mut dtb = DtbEditor::from_blob(&tree.to_dtb()).unwrap();
        // A usable range reaching into the DIMM's second LMB.
        let usable = [Range::new(0, 0x4000_0000), Range::new(0x9000_0000, 0x9000_1000)];
        let done = restrict_memory(&mut dtb, &usable).unwrap();
        assert_eq!(done, Restricted { memory_nodes: 1, lmbs: Some(2) });
        let usm = dtb.property(DRCONF, "linux,drconf-usable-memory").unwrap().unwrap();
        let mut want = 0u64.to_be_bytes().to_vec();
        for v in [1u64, 0x9000_0000, 0x1000] {
            want.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(usm, &want[..]);
        let mem = dtb.property("/memory@0", "linux,usable-memory").unwrap().unwrap();
        let mut want = Vec::new();
        for v in [0u64, 0x4000_0000] {
            want.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(mem, &want[..], "memory@0 cut to [0, crash end)");
        // A truncated set is an error naming the property.
        std::fs::write(node.join("ibm,dynamic-memory-v2"), &v2[..30]).unwrap();
        let tree = crate::system::device_tree::read_tree(&t.sys().device_tree_dir()).unwrap();
        let mut dtb = DtbEditor::from_blob(&tree.to_dtb()).unwrap();
        let err = restrict_memory(&mut dtb, &usable).unwrap_err().to_string();
        assert!(err.contains("ibm,dynamic-memory-v2") && err.contains("set 1 is cut short"), "{err}");
    }

    #[test]
    fn a_memory_node_outside_the_usable_set_gets_one_empty_pair() {
        let t = crate::testing::pseries_tree("ppc-usable-empty");
        let tree = crate::system::device_tree::read_tree(&t.sys().device_tree_dir()).unwrap();
        let mut dtb = DtbEditor::from_blob(&tree.to_dtb()).unwrap();
        restrict_memory(&mut dtb, &[Range::new(0x1_0000_0000, 0x1_1000_0000)]).unwrap();
        assert_eq!(dtb.property("/memory@0", "linux,usable-memory").unwrap().unwrap(), &[0u8; 16][..]);
    }

    #[test]
    fn room_for_the_cores_that_may_come() {
        let t = crate::testing::pseries_tree("ppc-cpu-room");
        let tree = crate::system::device_tree::read_tree(&t.sys().device_tree_dir()).unwrap();
        let dtb = DtbEditor::from_blob(&tree.to_dtb()).unwrap();
        // The fixture lists 2 one-thread cores.
        assert_eq!(cpu_hotplug_room(&dtb, 2).unwrap(), MARGIN);
        let one = cpu_hotplug_room(&dtb, 3).unwrap() - MARGIN;
        assert!(one > 400 && one < 4000, "one POWER9 core node with a quarter more: {one}");
        assert_eq!(cpu_hotplug_room(&dtb, 6).unwrap() - MARGIN, 4 * one);
    }
}
