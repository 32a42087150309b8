//! The DTB path of the loader: `DtbEditor::from_blob`, `handover::facts`
//! and `handover::apply` with the edits a normal and a crash load make. What
//! `apply` writes must parse again, keep its edits, and be a DTB the
//! purgatory accepts (structure check, seed placeholders found).
//! The last input byte chooses the edits (bytes past the header's totalsize
//! are ignored by the parser): the user's `--dtb-set`/`--dtb-delete` come
//! first, an edit of a loader-owned property is refused, the memory nodes
//! and /reserved-memory read are well formed, and the blob handed over
//! says what was asked (check_handed_over: bootargs, initrd, the kdump
//! properties in the root's cells, whatever the cells are).
#![no_main]

use kexec_purgatory::checks::check_fdt;
use kexec_purgatory::fdt_patch::{find_seed_spans, PatchError};
use libfuzzer_sys::fuzz_target;
use loader_host::dtb::edit::DtbEditor;
use loader_host::dtb::handover::{apply, bootargs, check_handed_over, facts, DtbEdits, DtbFacts, DtbMemory, SourceDtb};
use loader_host::range::Range;

fn edits(sel: u8) -> DtbEdits {
    let mut e = DtbEdits {
        bootargs: (sel & 1 != 0).then(|| b"console=ttyAMA0 root=/dev/vda rw".to_vec()),
        initrd: (sel & 2 != 0).then(|| Range::new(0x4800_0000, 0x4812_3456)),
        kaslr_seed: Some([0x5a; 8]),
        rng_seed: Some([0xa5; 64]),
        remove_crash_properties: sel & 4 == 0,
        ..Default::default()
    };
    if sel & 8 != 0 {
        // kdump: the capture kernel's properties.
        e.elfcorehdr = Some(Range::new(0x7f00_0000, 0x7f01_0000));
        e.usable_memory = Some(vec![Range::new(0x6000_0000, 0x7000_0000), Range::new(0x7f00_0000, 0x7f01_0000)]);
    }
    if sel & 16 != 0 {
        // The user's edits, applied before anything is read.
        e.set_strings = vec![
            ("/chosen/stdout-path".into(), "serial0:115200n8".into()),
            ("/memory@40000000/status".into(), "disabled".into()),
        ];
        e.delete = vec!["/psci/method".into(), "/chosen/linux,booted".into(), "/reserved-memory/a/no-map".into()];
    }
    if sel & 64 != 0 {
        // An edit of what the loader writes: always refused.
        e.delete.push("/chosen/linux,elfcorehdr".into());
    }
    if sel & 32 != 0 {
        e.kaslr_seed = None;
    }
    e
}

/// The memory and reservations the loader reads are well formed: sorted,
/// disjoint, non-empty ranges, as placement takes them.
fn check_facts(f: &DtbFacts) {
    if let DtbMemory::Nodes(m) = &f.memory {
        assert!(m.iter().all(|r| !r.is_empty()), "an empty memory range");
        assert!(m.windows(2).all(|w| w[0].end < w[1].start), "memory ranges unsorted or touching: {m:?}");
    }
    assert!(f.reserved_memory.iter().all(|r| !r.range.is_empty()), "an empty /reserved-memory range");
}

fuzz_target!(|data: &[u8]| {
    let sel = data.last().copied().unwrap_or(0);
    if let Ok(ed) = DtbEditor::from_blob(data) {
        let _ = (ed.bootargs(), ed.initrd(), ed.psci_method(), ed.root_cells(), ed.memreserve());
        let _ = ed.reg_base("/chosen");
    }
    let _ = bootargs(data);
    if let Err(e) = facts(data) {
        drop(e.to_string());
    }
    let edits = edits(sel);
    if let Ok(source) = SourceDtb::new(data, &edits) {
        if let Ok(f) = source.facts() {
            check_facts(&f);
        }
    }
    let out = match apply(data, &edits) {
        Ok(out) => out,
        Err(e) => return drop(e.to_string()),
    };
    assert!(sel & 64 == 0, "an edit of linux,elfcorehdr was applied");
    // The blob says what was asked, read back in the root's cells.
    assert_eq!(check_handed_over(&out, &edits), Ok(()), "the handed-over DTB does not say what was planned");
    // What the loader hands over must read back with its edits applied.
    let again = DtbEditor::from_blob(&out).expect("apply's output does not parse");
    if let Some(args) = &edits.bootargs {
        assert_eq!(again.bootargs().expect("bootargs readable").as_deref(), Some(args.as_slice()));
    }
    assert_eq!(again.initrd().expect("initrd readable"), edits.initrd);
    let _ = facts(&out);
    // ... and the purgatory must accept it and find the seeds it refreshes.
    assert_eq!(check_fdt(&out), Ok(()), "purgatory refuses the loader's DTB");
    // The loader always writes both seeds (arch::dtb_boot), which makes /chosen;
    // with no seeds requested (sel bit 5) and no /chosen in the input,
    // none may exist, and then only that may be missing.
    match find_seed_spans(&out) {
        Ok([kaslr, rng]) => {
            if edits.kaslr_seed.is_some() {
                assert_eq!(kaslr.map(|s| s.len), Some(8));
                assert_eq!(rng.map(|s| s.len), Some(64));
            }
        }
        Err(PatchError::NoChosen) if edits.kaslr_seed.is_none() => {}
        Err(e) => panic!("purgatory cannot parse the loader's DTB: {e:?}"),
    }
});
