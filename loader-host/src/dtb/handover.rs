//! The DTB handed to the new kernel: facts read from the source DTB
//! (PSCI conduit, console, reservations, old initrd) and the edits applied
//! to it (command line, initrd, seeds, crash properties, user edits).
//! Built on `edit::DtbEditor`.

use kexec_purgatory::abi::{ConsoleDesc, CONSOLE_8250_MMIO32, CONSOLE_8250_MMIO8, CONSOLE_HVTERM, CONSOLE_PL011};

use super::edit::{DtbEditError, DtbEditor, PsciMethod, DEFAULT_PADDING};
use crate::range::Range;

/// What the loader learns from the source DTB.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
}

/// Edits to make.
#[derive(Debug, Clone, Default)]
pub struct DtbEdits {
    /// New bootargs; None keeps the source DTB's.
    pub bootargs: Option<String>,
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
    /// `--dtb-set /path/prop=value` (string values).
    pub set_strings: Vec<(String, String)>,
    /// `--dtb-delete /path/prop`, and properties the running kernel added
    /// at run time that the next one must not inherit.
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

fn console_for(ed: &DtbEditor) -> Result<Option<ConsoleDesc>, DtbEditError> {
    // Documentation/devicetree/bindings/chosen.txt: stdout-path is a node
    // path or an alias, optionally followed by ":options".
    let Some(sp) = ed.string_property("/chosen", "stdout-path")? else { return Ok(None) };
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

/// Read the facts the loader needs from the source DTB.
pub fn facts(blob: &[u8]) -> Result<DtbFacts, DtbEditError> {
    let ed = DtbEditor::from_blob(blob)?;
    let old_initrd = ed.initrd()?;
    let reserved = ed.memreserve().into_iter().filter(|r| Some(*r) != old_initrd).collect();
    Ok(DtbFacts { psci_method: ed.psci_method()?, console: console_for(&ed)?, reserved, old_initrd })
}

/// Memory that M-mode firmware keeps from S-mode with PMP: the
/// `/reserved-memory/mmode_resv<N>@<addr>` nodes OpenSBI adds for it
/// (lib/utils/fdt/fdt_fixup.c, fdt_reserved_memory_fixup; QEMU virt:
/// 0x80000000, 512 KiB). S-mode reads of it fault (a capture kernel
/// reading it through /proc/vmcore gets EFAULT).
pub fn firmware_protected(blob: &[u8]) -> Result<Vec<Range>, DtbEditError> {
    let ed = DtbEditor::from_blob(blob)?;
    let mut out = Vec::new();
    for name in ed.child_names("/reserved-memory")? {
        if name.starts_with("mmode_resv") {
            out.extend(ed.reg_ranges(&format!("/reserved-memory/{name}"))?);
        }
    }
    Ok(out)
}

/// The source DTB's /chosen/bootargs, if readable.
pub fn bootargs(blob: &[u8]) -> Option<String> {
    DtbEditor::from_blob(blob).ok()?.bootargs().ok().flatten()
}

fn encode_cells(v: u64, cells: u32, out: &mut Vec<u8>) {
    if cells == 2 {
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.extend_from_slice(&(v as u32).to_be_bytes());
    }
}

/// Apply `edits` and serialise (with padding, so the blob can still be
/// patched in place).
pub fn apply(blob: &[u8], edits: &DtbEdits) -> Result<Vec<u8>, DtbEditError> {
    let mut ed = DtbEditor::from_blob(blob)?;
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
    // linux,usable-memory-range are <address size> pairs in root cells.
    if let Some(r) = edits.elfcorehdr {
        let mut v = Vec::new();
        encode_cells(r.start, cells.address, &mut v);
        encode_cells(r.len(), cells.size, &mut v);
        ed.set_property("/chosen", "linux,elfcorehdr", &v)?;
    }
    if let Some(ranges) = &edits.usable_memory {
        let mut v = Vec::new();
        for r in ranges {
            encode_cells(r.start, cells.address, &mut v);
            encode_cells(r.len(), cells.size, &mut v);
        }
        ed.set_property("/chosen", "linux,usable-memory-range", &v)?;
    }
    for (path, value) in &edits.set_strings {
        let (node, prop) = split_property_path(path).ok_or_else(|| DtbEditError::BadPath { path: path.clone() })?;
        let mut v = value.as_bytes().to_vec();
        v.push(0);
        ed.set_property(&node, &prop, &v)?;
    }
    for path in &edits.delete {
        let (node, prop) = split_property_path(path).ok_or_else(|| DtbEditError::BadPath { path: path.clone() })?;
        ed.delete_property(&node, &prop)?;
    }
    ed.to_blob(DEFAULT_PADDING)
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
}
