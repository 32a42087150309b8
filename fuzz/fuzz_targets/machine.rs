//! A whole plan on a fuzzed machine (issue 22): `loader_host::plan` and
//! `file_load::file_plan` of a fixed arm64 Image on /proc and /sys trees
//! whose /proc/iomem, /proc/cmdline and firmware DTB come from the input,
//! /proc/iomem repeated up to 30 000 lines (scale), with and without
//! `--dtb-set`/`--dtb-delete` edits, initrd and `-p`.
//!
//! Input: `sel` (1 byte: bit 0 crash, bit 1 an initrd, bit 2 the user's
//! edits, bit 3 an edit of a property the loader owns, bits 4-7 log2 of the
//! iomem repetitions), the iomem's length (u16 LE) and text, the command
//! line's length (1 byte) and text (used with --reuse-cmdline), then the DTB.
//!
//! A plan that is made must keep the round-2 rules: every segment inside
//! the memory the handed-over DTB describes (when it has memory nodes),
//! outside its /reserved-memory and /memreserve/, the DTB handed over
//! readable with the plan's elfcorehdr in the root's cells, no
//! elfcorehdr= of anyone else's on a capture kernel's line; an edit of a
//! loader-owned property is always refused.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use loader_host::cmdline::{strip_param, ELFCOREHDR};
use loader_host::dtb::edit::{read_number, DtbEditor};
use loader_host::dtb::handover::{DtbEdits, DtbMemory, SourceDtb};
use loader_host::range::{FreeMap, Range};
use loader_host::request::{CmdlineChoice, CrashOptions, Hotplug, Request};
use loader_host::{file_load, SystemSources};

/// Lines the repeated iomem may reach.
const MAX_LINES: usize = 30_000;

/// The tree, made once per process: the kernel, the initrd, crash notes;
/// iomem, cmdline and fdt rewritten per input.
fn root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("rkexec-fuzz-machine-{}", std::process::id()));
        let write = |rel: &str, bytes: &[u8]| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        };
        // booting.rst §4: 4 MiB image, anywhere, 4 KiB pages.
        let mut img = vec![0u8; 4096];
        img[16..24].copy_from_slice(&(4u64 << 20).to_le_bytes());
        img[24..32].copy_from_slice(&0b1010u64.to_le_bytes());
        img[0x38..0x3c].copy_from_slice(b"ARM\x64");
        write("Image", &img);
        write("initrd", &[0x30; 5000]);
        for cpu in 0..2 {
            write(&format!("sys/devices/system/cpu/cpu{cpu}/crash_notes"), format!("7ef6d{cpu}000\n").as_bytes());
            write(&format!("sys/devices/system/cpu/cpu{cpu}/crash_notes_size"), b"432\n");
        }
        write("sys/kernel/vmcoreinfo", b"bf3f2000 1000\n");
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::create_dir_all(root.join("sys/firmware")).unwrap();
        root
    })
}

fn user_edits(sel: u8) -> (Vec<(String, String)>, Vec<String>) {
    let mut set = Vec::new();
    let mut delete = Vec::new();
    if sel & 4 != 0 {
        set.push(("/chosen/stdout-path".to_string(), "/pl011@9000000".to_string()));
        set.push(("/memory@40000000/reg".to_string(), "garbage".to_string()));
        delete.push("/psci/method".to_string());
    }
    if sel & 8 != 0 {
        delete.push("/chosen/linux,elfcorehdr".to_string());
    }
    (set, delete)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let sel = data[0];
    let iomem_len = usize::from(u16::from_le_bytes([data[1], data[2]])).min(data.len() - 3);
    let (iomem, rest) = data[3..].split_at(iomem_len);
    let (cmdline, dtb) = match rest.split_first() {
        Some((&n, r)) => r.split_at(usize::from(n).min(r.len())),
        None => (&[][..], &[][..]),
    };
    // Scale: the iomem's lines repeated, up to MAX_LINES.
    let text = String::from_utf8_lossy(iomem);
    let lines = text.lines().count().max(1);
    let reps = (1usize << (sel >> 4)).min(MAX_LINES / lines).max(1);
    let root = root();
    std::fs::write(root.join("proc/iomem"), text.repeat(reps)).unwrap();
    std::fs::write(root.join("proc/cmdline"), cmdline).unwrap();
    std::fs::write(root.join("sys/firmware/fdt"), dtb).unwrap();
    let sys = SystemSources::new(root.join("proc"), root.join("sys"));

    let mut req = Request::new(root.join("Image"));
    if sel & 1 != 0 {
        req.crash = Some(CrashOptions { hotplug: Hotplug::Off, exclude: true });
    }
    if sel & 2 != 0 {
        req.initrds.push(root.join("initrd"));
    }
    req.cmdline = CmdlineChoice::Reuse(Vec::new());
    let (set, delete) = user_edits(sel);
    req.dtb_set = set;
    req.dtb_delete = delete;

    // kexec_file_load's plan: only that it answers.
    if let Err(e) = file_load::file_plan(&req, &sys, 0) {
        drop(e.to_string());
    }
    let plan = match loader_host::plan(&req, &sys) {
        Ok(p) => p,
        Err(e) => return drop(e.to_string()),
    };
    assert!(sel & 8 == 0, "an edit of linux,elfcorehdr went through");

    // The DTB as the loader read it (the user's edits applied first).
    let user = DtbEdits { set_strings: req.dtb_set.clone(), delete: req.dtb_delete.clone(), ..Default::default() };
    let facts = SourceDtb::new(dtb, &user).expect("planned from a DTB that does not read").facts().expect("facts");
    let mut keep_out: Vec<Range> = facts.reserved.clone();
    keep_out.extend(facts.reserved_memory.iter().map(|r| r.range));
    let memory = match &facts.memory {
        DtbMemory::Nodes(m) => Some(FreeMap::new(m.clone())),
        DtbMemory::Uefi => None,
        DtbMemory::Absent => panic!("planned with a DTB that describes no RAM"),
    };
    for s in &plan.segments {
        let r = s.range();
        if let Some(m) = &memory {
            assert!(m.covers(&r), "{} {r} outside the DTB's memory", s.kind_name());
        }
        for k in &keep_out {
            assert!(!r.overlaps(k), "{} {r} in the DTB's reservation {k}", s.kind_name());
        }
    }

    // The DTB handed over reads back, with the elfcorehdr in root cells.
    let seg = plan.segments.iter().find(|s| s.kind_name() == "dtb").expect("a dtb segment");
    let ed = DtbEditor::from_blob(&seg.data).expect("the handed-over DTB parses");
    if let Some(core) = plan.elfcorehdr {
        let cells = ed.root_cells().expect("root cells");
        let v = ed.property("/chosen", "linux,elfcorehdr").expect("chosen").expect("linux,elfcorehdr");
        let a = cells.address as usize * 4;
        assert_eq!(v.len(), a + cells.size as usize * 4, "linux,elfcorehdr in the root's cells");
        assert_eq!(read_number(&v[..a]), Some(core.addr), "the elfcorehdr's address");
        // The capture kernel's line has the loader's elfcorehdr only.
        assert!(strip_param(&plan.cmdline, ELFCOREHDR).1.is_empty(), "elfcorehdr= left on {:?}", plan.cmdline);
    }
});
