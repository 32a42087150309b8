//! Human and JSON renderings of a [`Plan`].

use crate::plan::Plan;

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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The memory-map table `rkexec plan` prints.
pub fn table(plan: &Plan, title: &str) -> String {
    let mut out = String::new();
    out.push_str(title);
    out.push('\n');
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
            r.end - 1,
            human_size(s.memsz),
            &hex(&s.sha256)[..16],
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
        "entry {:#x} (purgatory), kernel {:#x}, dtb {:#x}; {} segments, {} to verify\n",
        plan.entry,
        plan.kernel_entry,
        plan.dtb_addr,
        plan.segments.len(),
        human_size(plan.segments.iter().filter(|s| s.kind.is_some() && !s.excluded).map(|s| s.memsz).sum())
    ));
    for n in &plan.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

/// `rkexec plan --json`.
pub fn json(plan: &Plan) -> serde_json::Value {
    let segments: Vec<_> = plan
        .segments
        .iter()
        .map(|s| {
            serde_json::json!({
                "kind": s.kind_name(),
                "start": s.mem,
                "end": s.mem + s.memsz,
                "memsz": s.memsz,
                "bufsz": s.bytes.len(),
                "sha256": hex(&s.sha256),
                "excluded": s.excluded,
                "source": s.source,
            })
        })
        .collect();
    serde_json::json!({
        "entry": plan.entry,
        "kernel_entry": plan.kernel_entry,
        "dtb": plan.dtb_addr,
        "segments": segments,
        "notes": plan.notes,
        "purgatory_params": {
            "flags": plan.params.flags,
            "console_kind": plan.params.console.kind,
            "console_base": plan.params.console.base,
            "on_failure": plan.params.on_failure,
            "psci_conduit": plan.params.psci_conduit,
            "nr_segments": plan.params.nr_segments,
        }
    })
}
