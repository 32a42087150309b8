//! The DTB handed to the new kernel: facts read from the source DTB
//! (PSCI conduit, console, reservations, old initrd, the memory it
//! describes) and the edits applied to it (the user's `--dtb-set` /
//! `--dtb-delete` first, then the command line, initrd, seeds and crash
//! properties the loader writes), and the check of what comes out. Built
//! on `edit::DtbEditor`.

use kexec_purgatory::abi::{ConsoleDesc, CONSOLE_8250_MMIO32, CONSOLE_8250_MMIO8, CONSOLE_HVTERM, CONSOLE_PL011};

use super::edit::{pairs, read_number, Cells, DtbEditError, DtbEditor, PsciMethod, DEFAULT_PADDING, OF_MAX_ADDR_CELLS};
use crate::escape;
use crate::range::{FreeMap, Range};

/// What the new kernel takes for its RAM from a DTB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtbMemory {
    /// The root's memory nodes (drivers/of/fdt.c early_init_dt_scan_memory:
    /// children of the root with `device_type = "memory"` whose status is
    /// okay; `linux,usable-memory` if present, else `reg`, in the root's
    /// cells; ranges of size 0 skipped), merged. May be empty.
    Nodes(Vec<Range>),
    /// No memory node, and /chosen names a UEFI memory map
    /// (`linux,uefi-mmap-start`, drivers/firmware/efi/fdtparams.c): the
    /// EFI stub deletes the memory nodes (drivers/firmware/efi/libstub/
    /// fdt.c update_fdt) and the map describes RAM; /proc/iomem is then the
    /// machine's own account of it.
    Uefi,
    /// Neither: the new kernel would find no RAM at all.
    Absent,
}

/// A /reserved-memory region with a static `reg`
/// (Documentation/devicetree/bindings/reserved-memory/reserved-memory.yaml):
/// the new kernel reserves it early (drivers/of/of_reserved_mem.c
/// fdt_scan_reserved_mem: memblock_reserve, or with `no-map` takes it out
/// of the linear map), so no segment may lie in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedRegion {
    /// The region.
    pub range: Range,
    /// The node's path.
    pub node: String,
    /// `no-map`: not even mapped by the kernel.
    pub no_map: bool,
    /// `reusable`: the kernel may use it until its driver claims it.
    pub reusable: bool,
}

/// What the loader learns from the source DTB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtbFacts {
    /// /psci's method.
    pub psci_method: Option<PsciMethod>,
    /// The UART /chosen/stdout-path names, if the purgatory can drive it.
    pub console: Option<ConsoleDesc>,
    /// /memreserve/ entries other than the old initrd's.
    pub reserved: Vec<Range>,
    /// The initrd /chosen describes (`linux,initrd-start`/`-end`): the
    /// running kernel's, not the next one's.
    pub old_initrd: Option<Range>,
    /// The RAM the new kernel will know of.
    pub memory: DtbMemory,
    /// /reserved-memory regions with a static `reg`.
    pub reserved_memory: Vec<ReservedRegion>,
    /// The root's `#address-cells` / `#size-cells`: how /chosen's
    /// `linux,elfcorehdr` and `linux,usable-memory-range` are written.
    pub root_cells: Cells,
}

/// Edits the loader makes (after the user's).
#[derive(Debug, Clone, Default)]
pub struct DtbEdits {
    /// New bootargs; None keeps the source DTB's.
    pub bootargs: Option<Vec<u8>>,
    /// The new initrd; None deletes linux,initrd-start/end.
    pub initrd: Option<Range>,
    /// `/chosen/kaslr-seed` (chosen.txt, a u64), for kernels that read one
    /// (not powerpc's). The purgatory refreshes it and `rng_seed` in place.
    pub kaslr_seed: Option<[u8; 8]>,
    /// `/chosen/rng-seed` (chosen.txt: bytes the kernel adds to its
    /// entropy pool).
    pub rng_seed: Option<[u8; 64]>,
    /// Drop linux,elfcorehdr / linux,usable-memory-range / IMA buffer.
    pub remove_crash_properties: bool,
    /// kdump: `linux,usable-memory-range` (root cells encoding).
    pub usable_memory: Option<Vec<Range>>,
    /// kdump: `linux,elfcorehdr`.
    pub elfcorehdr: Option<Range>,
    /// `--dtb-set /path/prop=value` (string values): applied to the source
    /// DTB before anything is read from it.
    pub set_strings: Vec<(String, String)>,
    /// `--dtb-delete /path/prop`, and properties the running kernel added
    /// at run time that the next one must not inherit: likewise.
    pub delete: Vec<String>,
    /// /memreserve/ entries to add: memory the next kernel must not use
    /// that its tree does not say otherwise (powerpc's RTAS and OPAL,
    /// kexec-tools' fs2dt checkprop).
    pub memreserve: Vec<Range>,
}

/// Split "/a/b/prop" into ("/a/b", "prop").
pub fn split_property_path(full: &str) -> Option<(String, String)> {
    let (node, prop) = full.rsplit_once('/')?;
    if prop.is_empty() || !full.starts_with('/') {
        return None;
    }
    Some((if node.is_empty() { "/".to_string() } else { node.to_string() }, prop.to_string()))
}

/// /chosen properties the loader writes or removes on every load, and
/// what they carry: a `--dtb-set` of one would be overwritten and a
/// `--dtb-delete` undone, or, applied after the loader, would hand the new
/// kernel an initrd or elfcorehdr the plan does not have. The options may
/// not name them.
pub const LOADER_CHOSEN_PROPERTIES: [(&str, &str); 7] = [
    ("linux,initrd-start", "the initrd the loader places (give it with --initrd)"),
    ("linux,initrd-end", "the initrd the loader places (give it with --initrd)"),
    ("linux,elfcorehdr", "the capture kernel's elfcorehdr, written for -p and removed otherwise"),
    ("linux,usable-memory-range", "the capture kernel's memory, written for -p and removed otherwise"),
    ("linux,ima-kexec-buffer", "the running kernel's IMA measurement buffer, always removed"),
    ("kaslr-seed", "a fresh seed, written by the loader and refreshed by the purgatory"),
    ("rng-seed", "fresh entropy, written by the loader and refreshed by the purgatory"),
];

/// Whether `node` (a `--dtb-set`/`--dtb-delete` node path) is /chosen as
/// the kernel finds it: the root's child called `chosen`, with or without
/// a unit address (libfdt fdt_path_offset matching, as the loader's own
/// edits do).
fn is_chosen(node: &str) -> bool {
    node.strip_prefix('/').is_some_and(|n| n.split('@').next() == Some("chosen") && !n.contains('/'))
}

/// The user's edits, checked (paths, and no loader-owned property) and
/// applied in order to `ed`: `(option, /node/property)` errors name the
/// option.
fn apply_user_edits(ed: &mut DtbEditor, edits: &DtbEdits) -> Result<(), UserEditError> {
    let owned = |option: &'static str, path: &str| -> Result<(String, String), UserEditError> {
        let (node, prop) = split_property_path(path)
            .ok_or_else(|| UserEditError::Dtb(DtbEditError::BadPath { path: path.to_string() }))?;
        if let Some((_, what)) = LOADER_CHOSEN_PROPERTIES.iter().find(|(n, _)| *n == prop).filter(|_| is_chosen(&node))
        {
            return Err(UserEditError::Owned { option, path: path.to_string(), what });
        }
        Ok((node, prop))
    };
    for (path, value) in &edits.set_strings {
        let (node, prop) = owned("--dtb-set", path)?;
        let mut v = value.as_bytes().to_vec();
        v.push(0);
        ed.set_property(&node, &prop, &v).map_err(UserEditError::Dtb)?;
    }
    for path in &edits.delete {
        let (node, prop) = owned("--dtb-delete", path)?;
        ed.delete_property(&node, &prop).map_err(UserEditError::Dtb)?;
    }
    Ok(())
}

/// Why the user's edits cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserEditError {
    /// An edit names a property the loader writes (see
    /// [`LOADER_CHOSEN_PROPERTIES`]).
    Owned {
        /// `--dtb-set` or `--dtb-delete`.
        option: &'static str,
        /// The /node/property given.
        path: String,
        /// What the loader keeps in it.
        what: &'static str,
    },
    /// The edit itself fails (bad path or name, too large).
    Dtb(DtbEditError),
}

impl std::fmt::Display for UserEditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Owned { option, path, what } => write!(
                f,
                "{option} {}: the loader writes this property itself ({what}); it cannot be edited",
                escape::text(path)
            ),
            Self::Dtb(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for UserEditError {}

fn console_for(ed: &DtbEditor) -> Result<Option<ConsoleDesc>, DtbEditError> {
    // Documentation/devicetree/bindings/chosen.txt: stdout-path is a node
    // path or an alias, optionally followed by ":options". Without it the
    // kernel takes the legacy linux,stdout-path (drivers/of/base.c
    // of_alias_scan), which pseries firmware and Petitboot still write.
    let sp = match ed.string_property("/chosen", "stdout-path")? {
        Some(sp) => sp,
        None => match ed.string_property("/chosen", "linux,stdout-path")? {
            Some(sp) => sp,
            None => return Ok(None),
        },
    };
    let target = sp.split(':').next().unwrap_or_default().to_string();
    let path = if target.starts_with('/') {
        target
    } else {
        match ed.string_property("/aliases", &target)? {
            Some(p) => p,
            None => return Ok(None),
        }
    };
    let Some(compat) = ed.property(&path, "compatible")? else { return Ok(None) };
    let compat: Vec<&str> = compat.split(|b| *b == 0).filter_map(|s| std::str::from_utf8(s).ok()).collect();
    let Some(base) = ed.reg_base(&path)? else { return Ok(None) };
    let cell = |name: &str| -> Result<Option<u32>, DtbEditError> {
        Ok(ed.property(&path, name)?.and_then(|v| <[u8; 4]>::try_from(v).ok()).map(u32::from_be_bytes))
    };
    if compat.contains(&"arm,pl011") {
        return Ok(Some(ConsoleDesc { kind: CONSOLE_PL011, reserved: 0, base }));
    }
    // PAPR's virtual terminal (pseries /vdevice/vty@…, compatible
    // "hvterm1", drivers/tty/hvc/hvc_vio.c): `reg` is the vterm number
    // H_PUT_TERM_CHAR takes, not an address.
    if compat.contains(&"hvterm1") {
        return Ok(Some(ConsoleDesc { kind: CONSOLE_HVTERM, reserved: 0, base }));
    }
    let is_8250 = compat.iter().any(|c| matches!(*c, "ns16550a" | "ns16550" | "snps,dw-apb-uart" | "ns8250"));
    if !is_8250 {
        return Ok(None);
    }
    // Documentation/devicetree/bindings/serial/8250.yaml: reg-shift
    // defaults to 0, reg-io-width to 1 (byte registers at consecutive
    // addresses: QEMU virt riscv's uart0).
    let kind = match (cell("reg-shift")?.unwrap_or(0), cell("reg-io-width")?.unwrap_or(1)) {
        (2, 4) => CONSOLE_8250_MMIO32,
        (0, 1) => CONSOLE_8250_MMIO8,
        _ => return Ok(None),
    };
    Ok(Some(ConsoleDesc { kind, reserved: 0, base }))
}

/// of_fdt_device_is_available (drivers/of/fdt.c): no `status`, or "okay"
/// / "ok".
fn available(status: Option<&[u8]>) -> bool {
    match status {
        None => true,
        Some(v) => matches!(v.strip_suffix(&[0]).unwrap_or(v), b"okay" | b"ok"),
    }
}

/// The memory the new kernel will take from this DTB (see [`DtbMemory`]).
/// The root's children are read in one walk (a root with tens of
/// thousands of nodes costs what reading them does).
fn memory(ed: &DtbEditor) -> Result<DtbMemory, DtbEditError> {
    let cells = ed.root_cells()?;
    let mut found = false;
    let mut ranges = Vec::new();
    let wanted = ["device_type", "status", "linux,usable-memory", "reg"];
    for (name, v) in ed.children_properties("/", &wanted)? {
        let [device_type, status, usable, reg] = v[..] else { continue };
        if device_type != Some(b"memory\0") || !available(status) {
            continue;
        }
        found = true;
        let (prop, value) = match (usable, reg) {
            (Some(u), _) => ("linux,usable-memory", u),
            (None, Some(r)) => ("reg", r),
            (None, None) => continue,
        };
        ranges.extend(pairs(&format!("/{name}"), prop, value, cells)?.into_iter().filter(|r| !r.is_empty()));
    }
    if found {
        return Ok(DtbMemory::Nodes(FreeMap::new(ranges).ranges().to_vec()));
    }
    if ed.property("/chosen", "linux,uefi-mmap-start")?.is_some() {
        return Ok(DtbMemory::Uefi);
    }
    Ok(DtbMemory::Absent)
}

/// The static regions of /reserved-memory (see [`ReservedRegion`]);
/// dynamic ones (`size` without `reg`) are allocated by the new kernel
/// after it has reserved its image, initrd and DTB, so they do not
/// constrain placement.
fn reserved_memory(ed: &DtbEditor) -> Result<Vec<ReservedRegion>, DtbEditError> {
    let wanted = ["status", "reg", "no-map", "reusable"];
    let children = ed.children_properties("/reserved-memory", &wanted)?;
    if children.is_empty() {
        return Ok(Vec::new());
    }
    let cells = ed.cells("/reserved-memory")?;
    let mut out = Vec::new();
    for (name, v) in children {
        let [status, reg, no_map, reusable] = v[..] else { continue };
        let Some(reg) = reg.filter(|_| available(status)) else { continue };
        let node = format!("/reserved-memory/{name}");
        for range in pairs(&node, "reg", reg, cells)?.into_iter().filter(|r| !r.is_empty()) {
            out.push(ReservedRegion {
                range,
                node: node.clone(),
                no_map: no_map.is_some(),
                reusable: reusable.is_some(),
            });
        }
    }
    Ok(out)
}

/// A source DTB with the user's edits applied: everything the loader reads
/// of it is read after them, so the facts (console, memory, reservations,
/// bootargs) are those of the DTB the new kernel gets.
#[derive(Debug, Clone)]
pub struct SourceDtb {
    ed: DtbEditor,
    /// Whether user edits were applied (messages say the DTB was edited).
    pub edited: bool,
}

impl SourceDtb {
    /// Parse `blob` and apply the user's `--dtb-set` / `--dtb-delete` of
    /// `edits`.
    pub fn new(blob: &[u8], edits: &DtbEdits) -> Result<Self, SourceError> {
        let mut ed = DtbEditor::from_blob(blob).map_err(SourceError::Dtb)?;
        apply_user_edits(&mut ed, edits).map_err(SourceError::Edit)?;
        Ok(SourceDtb { ed, edited: !edits.set_strings.is_empty() || !edits.delete.is_empty() })
    }

    /// What the loader needs to know of it.
    pub fn facts(&self) -> Result<DtbFacts, DtbEditError> {
        let ed = &self.ed;
        let old_initrd = ed.initrd()?;
        let reserved = ed.memreserve().into_iter().filter(|r| Some(*r) != old_initrd).collect();
        Ok(DtbFacts {
            psci_method: ed.psci_method()?,
            console: console_for(ed)?,
            reserved,
            old_initrd,
            memory: memory(ed)?,
            reserved_memory: reserved_memory(ed)?,
            root_cells: ed.root_cells()?,
        })
    }

    /// The edited tree, for what an architecture reads of it beyond the
    /// facts.
    pub fn editor(&self) -> &DtbEditor {
        &self.ed
    }

    /// Its /chosen/bootargs (one NUL-terminated string, or an error).
    pub fn bootargs(&self) -> Result<Option<Vec<u8>>, DtbEditError> {
        self.ed.bootargs()
    }

    /// Apply the loader's edits (`set_strings`/`delete` are the user's and
    /// were applied by [`SourceDtb::new`]), serialise with padding (so the
    /// blob can still be patched in place), and check what comes out
    /// against what was asked ([`check_handed_over`]).
    pub fn finish(self, edits: &DtbEdits) -> Result<Vec<u8>, DtbEditError> {
        let mut ed = self.ed;
        if let Some(args) = &edits.bootargs {
            ed.set_bootargs(args)?;
        }
        if let Some(old) = ed.initrd()? {
            // The old initrd's reservation would pin memory the new kernel owns.
            ed.drop_initrd_memreserve(old, 4096);
        }
        ed.set_initrd(edits.initrd)?;
        if edits.remove_crash_properties {
            ed.remove_stale_kexec_properties()?;
        }
        match (&edits.kaslr_seed, &edits.rng_seed) {
            (Some(k), Some(r)) => ed.set_seeds(k, r)?,
            (None, Some(r)) => ed.set_property("/chosen", "rng-seed", r)?,
            _ => {}
        }
        for r in &edits.memreserve {
            ed.add_memreserve(*r);
        }
        let cells = ed.root_cells()?;
        // Documentation/devicetree/bindings/chosen.txt: linux,elfcorehdr and
        // linux,usable-memory-range are <address size> pairs in the root's
        // cells, read by the capture kernel with dt_root_addr_cells /
        // dt_root_size_cells (drivers/of/fdt.c
        // early_init_dt_check_for_elfcorehdr, ..._usable_mem_range).
        if let Some(r) = edits.elfcorehdr {
            let v = encode_ranges(&[r], cells, "linux,elfcorehdr")?;
            ed.set_property("/chosen", "linux,elfcorehdr", &v)?;
        }
        if let Some(ranges) = &edits.usable_memory {
            let v = encode_ranges(ranges, cells, "linux,usable-memory-range")?;
            ed.set_property("/chosen", "linux,usable-memory-range", &v)?;
        }
        let blob = ed.to_blob(DEFAULT_PADDING)?;
        check_handed_over(&blob, edits)?;
        Ok(blob)
    }
}

/// Why a source DTB cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceError {
    /// The blob does not parse.
    Dtb(DtbEditError),
    /// A `--dtb-set` / `--dtb-delete` cannot be applied.
    Edit(UserEditError),
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dtb(e) => write!(f, "{e}"),
            Self::Edit(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SourceError {}

/// Write `v` in `cells` 32-bit cells, big-endian, the cells above the low
/// two zero (kexec-tools' arm64 fill_property); None when it does not fit
/// (one cell holds 32 bits).
fn encode(v: u64, cells: u32, out: &mut Vec<u8>) -> bool {
    match cells {
        1 => match u32::try_from(v) {
            Ok(v) => out.extend_from_slice(&v.to_be_bytes()),
            Err(_) => return false,
        },
        n => {
            out.resize(out.len() + 4 * (n as usize - 2), 0);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    true
}

/// `ranges` as `<address size>` pairs in the root's `cells`, refusing
/// what they cannot hold: kexec-tools' arm64 setup_2nd_dtb refuses too
/// ("elfcorehdr doesn't fit cells-size", cells_size_fitted: with one
/// address cell the start must be below 4 GiB, with one size cell the
/// size below 4 GiB), where writing it would truncate it to 32 bits. Root
/// cells of 0 or above OF_MAX_ADDR_CELLS (4) carry no usable number.
fn encode_ranges(ranges: &[Range], cells: Cells, prop: &str) -> Result<Vec<u8>, DtbEditError> {
    let bad = |why: String| DtbEditError::BadValue { path: "/chosen".into(), name: prop.into(), why };
    for (name, n) in [("#address-cells", cells.address), ("#size-cells", cells.size)] {
        if n == 0 || n as usize > OF_MAX_ADDR_CELLS {
            return Err(bad(format!(
                "the root's {name} is {n}: Linux reads this property in 1 to {OF_MAX_ADDR_CELLS} cells per number (drivers/of/address.c OF_MAX_ADDR_CELLS)"
            )));
        }
    }
    let mut v = Vec::new();
    for r in ranges {
        if !encode(r.start, cells.address, &mut v) {
            return Err(bad(format!(
                "the address {:#x} does not fit the root's #address-cells of 1 (32 bits); kexec-tools refuses it too (\"doesn't fit cells-size\")",
                r.start
            )));
        }
        if !encode(r.len(), cells.size, &mut v) {
            return Err(bad(format!(
                "the size {:#x} does not fit the root's #size-cells of 1 (32 bits); kexec-tools refuses it too (\"doesn't fit cells-size\")",
                r.len()
            )));
        }
    }
    Ok(v)
}

/// `<address size>` pairs of `value` in `cells` (the inverse of
/// [`encode_ranges`]).
fn decode_ranges(value: &[u8], cells: Cells) -> Option<Vec<Range>> {
    let (a, s) = (cells.address as usize * 4, cells.size as usize * 4);
    if a + s == 0 || !value.len().is_multiple_of(a + s) {
        return None;
    }
    value.chunks_exact(a + s).map(|e| Range::checked(read_number(&e[..a])?, read_number(&e[a..])?)).collect()
}

/// Read back the DTB the loader built and check it says what the plan
/// does: the command line, the initrd, and for a capture kernel the
/// elfcorehdr and usable memory, as the new kernel will read them (root
/// cells). Anything the edits or their order could break is caught here,
/// before the system call, not by a kernel that boots without its initrd
/// or elfcorehdr.
pub fn check_handed_over(blob: &[u8], edits: &DtbEdits) -> Result<(), DtbEditError> {
    let ed = DtbEditor::from_blob(blob)?;
    let mismatch = |name: &str, why: String| DtbEditError::BadValue { path: "/chosen".into(), name: name.into(), why };
    if let Some(args) = &edits.bootargs {
        if ed.bootargs()?.as_deref() != Some(args.as_slice()) {
            return Err(mismatch("bootargs", "is not the command line planned".into()));
        }
    }
    if ed.initrd()? != edits.initrd {
        return Err(mismatch("linux,initrd-start", format!("does not name the planned initrd {:?}", edits.initrd)));
    }
    let cells = ed.root_cells()?;
    for (name, want) in [
        ("linux,elfcorehdr", edits.elfcorehdr.map(|r| vec![r])),
        ("linux,usable-memory-range", edits.usable_memory.clone()),
    ] {
        let got = ed.property("/chosen", name)?;
        match (want, got) {
            (None, None) => {}
            (None, Some(_)) if !edits.remove_crash_properties => {}
            (Some(w), Some(g)) if decode_ranges(g, cells).as_ref() == Some(&w) => {}
            (want, _) => return Err(mismatch(name, format!("does not hold what the plan names ({want:?})"))),
        }
    }
    Ok(())
}

/// Read the facts the loader needs from the source DTB (no edits).
pub fn facts(blob: &[u8]) -> Result<DtbFacts, DtbEditError> {
    SourceDtb { ed: DtbEditor::from_blob(blob)?, edited: false }.facts()
}

/// Memory that M-mode firmware keeps from S-mode with PMP: the
/// `/reserved-memory/mmode_resv<N>@<addr>` nodes OpenSBI adds for it
/// (lib/utils/fdt/fdt_fixup.c, fdt_reserved_memory_fixup; QEMU virt:
/// 0x80000000, 512 KiB). S-mode reads of it fault (a capture kernel
/// reading it through /proc/vmcore gets EFAULT).
pub fn firmware_protected(blob: &[u8]) -> Result<Vec<Range>, DtbEditError> {
    let ed = DtbEditor::from_blob(blob)?;
    let children = ed.children_properties("/reserved-memory", &["reg"])?;
    if children.is_empty() {
        return Ok(Vec::new());
    }
    let cells = ed.cells("/reserved-memory")?;
    let mut out = Vec::new();
    for (name, v) in children.iter().filter(|(name, _)| name.starts_with("mmode_resv")) {
        if let Some(reg) = v[0] {
            out.extend(pairs(&format!("/reserved-memory/{name}"), "reg", reg, cells)?);
        }
    }
    Ok(out)
}

/// The source DTB's /chosen/bootargs, if readable.
pub fn bootargs(blob: &[u8]) -> Option<Vec<u8>> {
    DtbEditor::from_blob(blob).ok()?.bootargs().ok().flatten()
}

/// Apply `edits` (the user's first, then the loader's) and serialise.
pub fn apply(blob: &[u8], edits: &DtbEdits) -> Result<Vec<u8>, SourceError> {
    SourceDtb::new(blob, edits)?.finish(edits).map_err(SourceError::Dtb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu_like_dtb() -> Vec<u8> {
        crate::testing::qemu_virt_dtb_with(
            "console=ttyAMA0 old",
            &[(0x4800_0000, 0x10_0000)],
            &[("linux,initrd-start", 0x4800_0000), ("linux,initrd-end", 0x4810_0000), ("linux,elfcorehdr", 0x1234)],
        )
    }

    #[test]
    fn facts_from_a_qemu_virt_like_tree() {
        let f = facts(&qemu_like_dtb()).unwrap();
        assert_eq!(f.psci_method, Some(PsciMethod::Hvc));
        assert_eq!(f.console, Some(ConsoleDesc { kind: CONSOLE_PL011, reserved: 0, base: 0x900_0000 }));
        assert_eq!(f.old_initrd, Some(Range::new(0x4800_0000, 0x4810_0000)));
        assert!(f.reserved.is_empty(), "the old initrd's memreserve is not a reservation to honour");
    }

    #[test]
    fn edits_land_and_the_purgatory_finds_its_placeholders() {
        let edits = DtbEdits {
            bootargs: Some("console=ttyAMA0 new".into()),
            initrd: Some(Range::new(0x4400_0000, 0x4400_1234)),
            kaslr_seed: Some([7; 8]),
            rng_seed: Some([9; 64]),
            remove_crash_properties: true,
            set_strings: vec![("/chosen/stdout-path".into(), "serial0".into())],
            delete: vec!["/psci/method".into()],
            ..Default::default()
        };
        let out = apply(&qemu_like_dtb(), &edits).unwrap();
        let fdt = fdt::Fdt::new(&out).unwrap();
        let chosen = fdt.find_node("/chosen").unwrap();
        assert_eq!(chosen.property("bootargs").unwrap().as_str(), Some("console=ttyAMA0 new"));
        assert_eq!(chosen.property("linux,initrd-start").unwrap().as_usize(), Some(0x4400_0000));
        assert_eq!(chosen.property("linux,initrd-end").unwrap().as_usize(), Some(0x4400_1234));
        assert!(chosen.property("linux,elfcorehdr").is_none());
        assert_eq!(chosen.property("stdout-path").unwrap().as_str(), Some("serial0"));
        assert!(fdt.find_node("/psci").unwrap().property("method").is_none());
        assert_eq!(fdt.memory_reservations().count(), 0, "old initrd reservation dropped");
        let spans = kexec_purgatory::fdt_patch::find_seed_spans(&out).unwrap();
        assert_eq!(spans[0].unwrap().len, 8);
        assert_eq!(spans[1].unwrap().len, 64);
    }

    #[test]
    fn kdump_properties_use_root_cells() {
        let edits = DtbEdits {
            elfcorehdr: Some(Range::new(0x7f00_0000, 0x7f01_0000)),
            usable_memory: Some(vec![Range::new(0x6000_0000, 0x7000_0000)]),
            ..Default::default()
        };
        let out = apply(&qemu_like_dtb(), &edits).unwrap();
        let fdt = fdt::Fdt::new(&out).unwrap();
        let chosen = fdt.find_node("/chosen").unwrap();
        let v = chosen.property("linux,elfcorehdr").unwrap().value;
        assert_eq!(v, [0, 0, 0, 0, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(chosen.property("linux,usable-memory-range").unwrap().value.len(), 16);
        assert!(chosen.property("linux,initrd-start").is_none(), "no initrd: properties deleted");
    }

    #[test]
    fn opensbi_protected_memory_is_found() {
        let blob = crate::testing::riscv_virt_dtb("console=ttyS0");
        assert_eq!(firmware_protected(&blob).unwrap(), [Range::new(0x8000_0000, 0x8008_0000)]);
        assert!(firmware_protected(&qemu_like_dtb()).unwrap().is_empty(), "no /reserved-memory");
        let f = facts(&blob).unwrap();
        assert_eq!(f.console, Some(ConsoleDesc { kind: CONSOLE_8250_MMIO8, reserved: 0, base: 0x1000_0000 }));
        assert_eq!(f.psci_method, None);
        // A 16550 with reg-shift 1 is none of the kinds: no console rather than a wrong one.
        let mut ed = DtbEditor::from_blob(&blob).unwrap();
        ed.set_property("/soc/serial@10000000", "reg-shift", &1u32.to_be_bytes()).unwrap();
        assert_eq!(facts(&ed.to_blob(0).unwrap()).unwrap().console, None);
        ed.set_property("/soc/serial@10000000", "reg-shift", &2u32.to_be_bytes()).unwrap();
        ed.set_property("/soc/serial@10000000", "reg-io-width", &4u32.to_be_bytes()).unwrap();
        let c = facts(&ed.to_blob(0).unwrap()).unwrap().console.unwrap();
        assert_eq!(c.kind, CONSOLE_8250_MMIO32);
    }

    #[test]
    fn property_paths() {
        assert_eq!(split_property_path("/chosen/stdout-path"), Some(("/chosen".into(), "stdout-path".into())));
        assert_eq!(split_property_path("/model"), Some(("/".into(), "model".into())));
        assert_eq!(split_property_path("chosen/x"), None);
        assert_eq!(split_property_path("/chosen/"), None);
    }

    /// A tree with root `cells`, memory nodes and /reserved-memory, as
    /// `edit` leaves it.
    fn tree(cells: (u32, u32), edit: impl FnOnce(&mut DtbEditor)) -> Vec<u8> {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", cells.0).unwrap();
        w.property_u32("#size-cells", cells.1).unwrap();
        let chosen = w.begin_node("chosen").unwrap();
        w.end_node(chosen).unwrap();
        w.end_node(root).unwrap();
        let mut ed = DtbEditor::from_blob(&w.finish().unwrap()).unwrap();
        edit(&mut ed);
        ed.to_blob(0).unwrap()
    }

    fn with_memory(ed: &mut DtbEditor, node: &str, reg: &[u8]) {
        ed.set_property(node, "device_type", b"memory\0").unwrap();
        ed.set_property(node, "reg", reg).unwrap();
    }

    fn be(cells: &[u32]) -> Vec<u8> {
        cells.iter().flat_map(|c| c.to_be_bytes()).collect()
    }

    #[test]
    fn kdump_properties_take_any_root_cells_and_refuse_what_does_not_fit() {
        let core = Range::new(0x7f00_0000, 0x7f01_0000);
        let crash = vec![Range::new(0x6000_0000, 0x7000_0000)];
        let edits = DtbEdits { elfcorehdr: Some(core), usable_memory: Some(crash), ..Default::default() };
        for ((a, s), want) in [
            ((1, 1), be(&[0x7f00_0000, 0x1_0000])),
            ((2, 1), be(&[0, 0x7f00_0000, 0x1_0000])),
            ((3, 2), be(&[0, 0, 0x7f00_0000, 0, 0x1_0000])),
            ((4, 4), be(&[0, 0, 0, 0x7f00_0000, 0, 0, 0, 0x1_0000])),
        ] {
            let out = apply(&tree((a, s), |_| {}), &edits).unwrap();
            let ed = DtbEditor::from_blob(&out).unwrap();
            assert_eq!(ed.property("/chosen", "linux,elfcorehdr").unwrap(), Some(&want[..]), "cells {a}/{s}");
        }
        // One cell cannot hold an address or a size of 4 GiB or more.
        let high = DtbEdits { elfcorehdr: Some(Range::new(0x1_0000_0000, 0x1_0000_1000)), ..Default::default() };
        let e = apply(&tree((1, 1), |_| {}), &high).unwrap_err().to_string();
        assert_eq!(
            e,
            "DTB property /chosen/linux,elfcorehdr: the address 0x100000000 does not fit the root's #address-cells of 1 (32 bits); kexec-tools refuses it too (\"doesn't fit cells-size\")"
        );
        let big = DtbEdits { usable_memory: Some(vec![Range::new(0x8000_0000, 0x1_8000_0000)]), ..Default::default() };
        let e = apply(&tree((1, 1), |_| {}), &big).unwrap_err().to_string();
        assert!(
            e.contains("linux,usable-memory-range: the size 0x100000000 does not fit the root's #size-cells of 1"),
            "{e}"
        );
        assert!(apply(&tree((2, 2), |_| {}), &big).is_ok());
        for cells in [(0, 1), (2, 0), (5, 2), (2, 5)] {
            let e = apply(&tree(cells, |_| {}), &edits).unwrap_err().to_string();
            assert!(e.contains("Linux reads this property in 1 to 4 cells per number"), "{cells:?}: {e}");
        }
    }

    #[test]
    fn memory_nodes_uefi_maps_and_reserved_memory_are_read_as_linux_reads_them() {
        let f = |blob: Vec<u8>| facts(&blob).unwrap();
        assert_eq!(f(tree((2, 2), |_| {})).memory, DtbMemory::Absent);
        let uefi = tree((2, 2), |ed| ed.set_property("/chosen", "linux,uefi-mmap-start", &[0; 8]).unwrap());
        assert_eq!(f(uefi).memory, DtbMemory::Uefi);
        let nodes = tree((2, 1), |ed| {
            with_memory(ed, "/memory@40000000", &be(&[0, 0x4000_0000, 0x4000_0000, 1, 0, 0x1000]));
            // linux,usable-memory wins over reg (drivers/of/fdt.c).
            with_memory(ed, "/memory@100000000", &be(&[1, 0, 0x1000_0000]));
            ed.set_property("/memory@100000000", "linux,usable-memory", &be(&[1, 0, 0x800_0000])).unwrap();
            // Disabled, or not device_type memory: not memory.
            with_memory(ed, "/memory@200000000", &be(&[2, 0, 0x1000_0000]));
            ed.set_property("/memory@200000000", "status", b"disabled\0").unwrap();
            ed.set_property("/sram@300000000", "reg", &be(&[3, 0, 0x1000])).unwrap();
            // /reserved-memory in the root's cells.
            ed.set_property("/reserved-memory/a@48000000", "reg", &be(&[0, 0x4800_0000, 0x10_0000])).unwrap();
            ed.set_property("/reserved-memory/a@48000000", "no-map", &[]).unwrap();
            ed.set_property("/reserved-memory/b@49000000", "reg", &be(&[0, 0x4900_0000, 0x10_0000])).unwrap();
            ed.set_property("/reserved-memory/b@49000000", "reusable", &[]).unwrap();
            ed.set_property("/reserved-memory/dyn", "size", &be(&[0x10_0000])).unwrap();
        });
        let read = f(nodes);
        assert_eq!(
            read.memory,
            DtbMemory::Nodes(vec![Range::new(0x4000_0000, 0x8000_0000), Range::new(0x1_0000_0000, 0x1_0800_0000)]),
            "the size-0 range dropped, usable-memory used, the disabled node skipped"
        );
        let rsv: Vec<_> = read.reserved_memory.iter().map(|r| (r.range.start, r.no_map, r.reusable)).collect();
        assert_eq!(rsv, [(0x4800_0000, true, false), (0x4900_0000, false, true)], "the dynamic region is not one");
        let zero = tree((2, 2), |ed| with_memory(ed, "/memory@0", &be(&[0, 0, 0, 0])));
        assert_eq!(f(zero).memory, DtbMemory::Nodes(vec![]));
        let garbage = tree((2, 2), |ed| with_memory(ed, "/memory@0", b"garbage\0"));
        let e = facts(&garbage).unwrap_err().to_string();
        assert_eq!(e, "DTB property /memory@0/reg: 8 bytes is not a list of 16-byte entries");
    }

    #[test]
    fn user_edits_come_first_and_may_not_touch_what_the_loader_writes() {
        let blob = qemu_like_dtb();
        let user = |set: &[(&str, &str)], delete: &[&str]| DtbEdits {
            set_strings: set.iter().map(|(p, v)| (p.to_string(), v.to_string())).collect(),
            delete: delete.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        };
        // What the loader reads is the edited tree.
        let s = SourceDtb::new(&blob, &user(&[("/chosen/bootargs", "edited")], &["/chosen/stdout-path"])).unwrap();
        assert!(s.edited);
        assert_eq!(s.bootargs().unwrap().as_deref(), Some(&b"edited"[..]));
        assert_eq!(s.facts().unwrap().console, None);
        for (set, delete) in [
            (vec![("/chosen/linux,initrd-start", "foo")], vec![]),
            (vec![("/chosen@0/kaslr-seed", "x")], vec![]),
            (vec![], vec!["/chosen/linux,elfcorehdr"]),
            (vec![], vec!["/chosen/linux,usable-memory-range"]),
        ] {
            let e = SourceDtb::new(&blob, &user(&set, &delete)).unwrap_err();
            assert!(matches!(e, SourceError::Edit(UserEditError::Owned { .. })), "{set:?} {delete:?}: {e}");
            assert!(e.to_string().contains("the loader writes this property itself"), "{e}");
        }
        // Elsewhere the same names are the user's.
        assert!(SourceDtb::new(&blob, &user(&[("/other/linux,initrd-start", "1")], &[])).is_ok());
        let e = SourceDtb::new(&blob, &user(&[("chosen/x", "1")], &[])).unwrap_err();
        assert!(e.to_string().contains("is not an absolute node path"), "{e}");
    }

    #[test]
    fn the_blob_handed_over_is_read_back_against_the_plan() {
        let edits = DtbEdits {
            bootargs: Some("console=ttyAMA0".into()),
            initrd: Some(Range::new(0x4400_0000, 0x4400_1000)),
            elfcorehdr: Some(Range::new(0x7f00_0000, 0x7f01_0000)),
            usable_memory: Some(vec![Range::new(0x6000_0000, 0x8000_0000)]),
            remove_crash_properties: true,
            ..Default::default()
        };
        let out = apply(&qemu_like_dtb(), &edits).unwrap();
        check_handed_over(&out, &edits).unwrap();
        // Any field that does not say what the plan says is caught.
        let other = |f: fn(&mut DtbEdits)| {
            let mut e = edits.clone();
            f(&mut e);
            check_handed_over(&out, &e).unwrap_err().to_string()
        };
        assert!(other(|e| e.bootargs = Some("quiet".into())).contains("bootargs: is not the command line planned"));
        assert!(other(|e| e.initrd = None).contains("linux,initrd-start: does not name the planned initrd"));
        assert!(other(|e| e.elfcorehdr = Some(Range::new(0, 0x1000))).contains("linux,elfcorehdr: does not hold"));
        assert!(other(|e| e.usable_memory = None).contains("linux,usable-memory-range: does not hold"));
    }

    /// A root with `n` memory nodes.
    fn many_memory_nodes(n: u64) -> Vec<u8> {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        for i in 0..n {
            let n = w.begin_node(&format!("memory@{:x}", 0x4000_0000 + i * 0x10_0000)).unwrap();
            w.property_string("device_type", "memory").unwrap();
            w.property_array_u64("reg", &[0x4000_0000 + i * 0x10_0000, 0x8_0000]).unwrap();
            w.end_node(n).unwrap();
        }
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    /// Issue 22 class 6: memory nodes are read in one walk of the root,
    /// not a path lookup per child. Judged on growth, not on a clock that
    /// depends on the machine's load: 8x the nodes must cost well under the
    /// 64x a quadratic read costs, in this thread's CPU time (best of three
    /// runs each). The 60 s bound only keeps a
    /// regression from hanging the suite.
    #[test]
    fn a_root_with_twenty_thousand_nodes_is_read_in_one_walk() {
        let cpu_time = crate::testing::thread_cpu_time;
        let time = |blob: &[u8], want: usize| {
            (0..3)
                .map(|_| {
                    let start = cpu_time();
                    let DtbMemory::Nodes(m) = facts(blob).unwrap().memory else { panic!("memory nodes") };
                    assert_eq!(m.len(), want);
                    cpu_time() - start
                })
                .min()
                .unwrap()
        };
        let (small, large) = (many_memory_nodes(2_500), many_memory_nodes(20_000));
        let (t_small, t_large) = (time(&small, 2_500), time(&large, 20_000));
        assert!(t_large < std::time::Duration::from_secs(60), "took {t_large:?}");
        let growth = t_large.as_secs_f64() / t_small.as_secs_f64().max(1e-6);
        assert!(growth < 24.0, "8x the nodes took {growth:.1}x the time ({t_small:?} -> {t_large:?}): not linear");
    }
}
