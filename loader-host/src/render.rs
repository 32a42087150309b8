//! Human and JSON renderings of a [`Plan`]. The JSON is a versioned
//! contract (docs/plan-json.md, `"schema": "rkexec-plan/1"`): tests and
//! tools read facts from it, never from the human table.

use kexec_purgatory::abi::{ON_FAILURE_RESET, PARAM_FLAG_SKIP_DIGESTS};

use crate::file_load::{FileInput, FilePlan};
use crate::plan::{LoadKind, Plan};

/// The JSON schema this module writes.
pub const PLAN_SCHEMA: &str = "rkexec-plan/1";
/// The schema of a kexec_file_load plan (`-s` with plan/--dry-run).
pub const FILE_PLAN_SCHEMA: &str = "rkexec-file-plan/1";

fn human_size(n: u64) -> String {
    const K: f64 = 1024.0;
    let f = n as f64;
    if f >= K * K * K {
        format!("{:.1} GiB", f / (K * K * K))
    } else if f >= K * K {
        format!("{:.1} MiB", f / (K * K))
    } else if f >= K {
        format!("{:.1} KiB", f / K)
    } else {
        format!("{n} B")
    }
}

/// A file name in the JSON: as it is when UTF-8, else escaped
/// (`escape::json_text`, docs/plan-json.md).
fn json_path(p: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    crate::escape::json_text(p.as_os_str().as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The memory-map table `rkexec plan` prints.
pub fn table(plan: &Plan) -> String {
    let what = if plan.kind == LoadKind::Crash { " crash kernel" } else { "" };
    let mut out = format!("rkexec plan ({}{what}, kexec_load through the rkexec purgatory):\n", plan.arch);
    out.push_str(&format!(
        "{:>2}  {:<11} {:<12} {:<12} {:>10}  {:<16} {:<8} {}\n",
        "#", "kind", "start", "end", "size", "sha256", "excluded", "source"
    ));
    for (i, s) in plan.segments.iter().enumerate() {
        let r = s.range();
        out.push_str(&format!(
            "{:>2}  {:<11} {:<#12x} {:<#12x} {:>10}  {:<16} {:<8} {}\n",
            i,
            s.kind_name(),
            r.start,
            r.end.saturating_sub(1),
            human_size(s.memsz),
            if s.kind.is_none() { "-".to_string() } else { hex(&s.sha256)[..16].to_string() },
            if s.kind.is_none() {
                "self"
            } else if s.excluded {
                "yes"
            } else {
                "no"
            },
            s.source
        ));
    }
    out.push_str(&format!(
        "entry {:#x} (purgatory), kernel {:#x}, {} {:#x}; {} segments, {} to verify\n",
        plan.entry,
        plan.kernel_entry,
        plan.boot_data.kind.name(),
        plan.boot_data.addr,
        plan.segments.len(),
        human_size(plan.hashed_bytes())
    ));
    out.push_str(&format!("command line: {}\n", crate::escape::bytes(&plan.cmdline)));
    for n in &plan.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

/// `rkexec plan --json` (schema rkexec-plan/1).
pub fn json(plan: &Plan) -> serde_json::Value {
    let segments: Vec<_> = plan
        .segments
        .iter()
        .enumerate()
        .map(|(index, s)| {
            serde_json::json!({
                "index": index,
                "kind": s.kind_name(),
                "start": s.mem,
                "end": s.mem.saturating_add(s.memsz),
                "memsz": s.memsz,
                "bufsz": s.data.len(),
                "digest_len": if s.kind.is_some() { s.digest_len } else { 0 },
                "sha256": if s.kind.is_some() { hex(&s.sha256) } else { String::new() },
                "excluded": s.excluded,
                "source": s.source,
            })
        })
        .collect();
    let p = &plan.params;
    serde_json::json!({
        "schema": PLAN_SCHEMA,
        "arch": plan.arch.name,
        "kind": match plan.kind { LoadKind::Kexec => "kexec", LoadKind::Crash => "crash" },
        "kernel": { "path": plan.kernel.path, "format": plan.kernel.format },
        "entry": plan.entry,
        "kernel_entry": plan.kernel_entry,
        "boot_data": { "kind": plan.boot_data.kind.name(), "addr": plan.boot_data.addr },
        "cmdline": crate::escape::json_text(&plan.cmdline),
        "cmdline_hex": hex(&plan.cmdline),
        "segments": segments,
        "hashed_bytes": plan.hashed_bytes(),
        "elfcorehdr": plan.elfcorehdr.map(|c| serde_json::json!({
            "addr": c.addr, "cpu_notes": c.cpu_notes, "pt_load": c.pt_load, "hotplug": plan.hotplug,
        })),
        "purgatory": {
            "verify": p.flags & PARAM_FLAG_SKIP_DIGESTS == 0,
            "on_failure": if p.on_failure == ON_FAILURE_RESET { "reset" } else { "halt" },
            "console": { "kind": p.console.kind, "base": p.console.base },
            "psci_conduit": p.psci_conduit,
            "flags": p.flags,
            "nr_segments": p.nr_segments,
        },
        "notes": plan.notes,
    })
}

/// What `plan -s` prints: the kexec_file_load call.
pub fn file_table(p: &FilePlan) -> String {
    let what = if p.kind == LoadKind::Crash { " crash kernel" } else { "" };
    let mut out =
        format!("rkexec plan ({}{what}, kexec_file_load: the kernel loads, places and verifies the image):\n", p.arch);
    out.push_str(&format!(
        "kernel: {} ({}) -> {}\n",
        crate::escape::path(&p.kernel_path),
        p.format,
        p.kernel.describe()
    ));
    out.push_str(&format!("initrd: {}\n", p.initrd.as_ref().map_or("none".to_string(), FileInput::describe)));
    out.push_str(&format!("flags: {:#x}\n", p.flags));
    out.push_str(&format!("command line: {}\n", crate::escape::bytes(&p.cmdline)));
    for n in &p.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

fn file_input_json(f: &FileInput) -> serde_json::Value {
    match f {
        FileInput::File(path) => {
            serde_json::json!({ "fd": "file", "path": json_path(path), "bytes": f.byte_len() })
        }
        FileInput::Memory { data, source } => serde_json::json!({
            "fd": "memfd", "source": source, "bytes": data.len(), "sha256": hex(&crate::digest::padded(data, data.len() as u64)),
        }),
    }
}

/// `plan -s --json` (schema rkexec-file-plan/1).
pub fn file_json(p: &FilePlan) -> serde_json::Value {
    serde_json::json!({
        "schema": FILE_PLAN_SCHEMA,
        "arch": p.arch.name,
        "kind": match p.kind { LoadKind::Kexec => "kexec", LoadKind::Crash => "crash" },
        "syscall": "kexec_file_load",
        "kernel": { "path": json_path(&p.kernel_path), "format": p.format, "fd": file_input_json(&p.kernel) },
        "initrd": p.initrd.as_ref().map(file_input_json),
        "cmdline": crate::escape::json_text(&p.cmdline),
        "cmdline_hex": hex(&p.cmdline),
        "flags": p.flags,
        "notes": p.notes,
    })
}
