//! The loader's shape, checked on its source: the top-level modules import
//! each other one way only (no cycle), and the generic pipeline names no
//! architecture — an architecture is one module under `src/arch/` and one
//! line in its table (docs/loader.md "Adding an architecture").
//!
//! Read from `use crate::…` lines and `crate::…` paths in non-test code
//! (everything before a file's first top-level `#[cfg(test)]`), comments
//! removed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every library source file (not the binary, not the test fixtures of
/// `testing.rs`), relative to src/.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "bin") {
                files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") && p.file_name().is_some_and(|n| n != "testing.rs") {
            out.push(p.strip_prefix(src()).expect("under src").to_path_buf());
        }
    }
}

/// The file's code: before its test module, without comments.
fn code(rel: &Path) -> String {
    let text = std::fs::read_to_string(src().join(rel)).expect("read source");
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        let line = match line.find("//") {
            // Not inside a string literal on this line (good enough for
            // this code base: no "//" in strings but URLs in comments).
            Some(i) if line[..i].matches('"').count() % 2 == 0 => &line[..i],
            _ => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The top-level module a file belongs to (`arch/arm64.rs` → `arch`).
fn top(rel: &Path) -> String {
    let first = rel.components().next().expect("a path").as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

/// The top-level modules `code` refers to as `crate::<module>`.
fn refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &all {
        let from = top(f);
        if from == "lib" {
            continue; // declares the modules and re-exports: not a step
        }
        let deps = g.entry(from.clone()).or_default();
        for to in refs(&code(f)) {
            if to != from {
                deps.insert(to);
            }
        }
    }
    g
}

/// A cycle through `node`, if any (depth-first, colours).
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut c = stack[at..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, g, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn top_level_modules_import_one_way() {
    let g = graph();
    assert!(g.len() > 15, "read the modules: {g:?}");
    if let Some(cycle) = find_cycle(&g) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
    // The order one load passes through them (lib.rs, docs/loader.md): no
    // step imports one that comes after it. `placement` is the primitive
    // the architectures place through, so it comes before them; `plan`
    // and `error` are the vocabulary every step returns, not steps.
    let pipeline = [
        "request",
        "system",
        "input",
        "image",
        "crash",
        "placement",
        "arch",
        "digest",
        "purgatory_image",
        "preflight",
        "planner",
        "file_load",
        "render",
        "syscall",
    ];
    for (i, from) in pipeline.iter().enumerate() {
        for later in &pipeline[i + 1..] {
            assert!(!g[*from].contains(*later), "{from} imports {later}, which comes after it");
        }
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default();
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
}

/// Architecture names as code spells them (strings, paths, constants).
const ARCH_WORDS: &[&str] = &[
    "arm64", "aarch64", "AARCH64", "x86_64", "X86_64", "amd64", "riscv64", "RISCV64", "RISCV", "ppc64le", "ppc64",
    "PPC64", "powerpc",
];

/// Whether `code` names an architecture outside `cfg(target_arch = …)`.
fn names_an_arch(code: &str) -> bool {
    code.lines().filter(|l| !l.contains("target_arch")).any(|l| {
        ARCH_WORDS.iter().any(|w| {
            l.match_indices(w).any(|(i, _)| {
                let before = l[..i].chars().next_back();
                let after = l[i + w.len()..].chars().next();
                let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric());
                !ident(before) && !ident(after)
            })
        })
    })
}

#[test]
fn only_the_architecture_wing_and_the_formats_name_an_architecture() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let mut naming: Vec<String> =
        all.iter().filter(|f| names_an_arch(&code(f))).map(|f| f.to_string_lossy().replace('\\', "/")).collect();
    naming.sort();
    // Where an architecture may be named: its own module in arch/ and the
    // table (arch/mod.rs); the kernel formats, which are per architecture
    // by nature (an arm64 Image, a bzImage; PE and ELF machine numbers);
    // x86's zero page and firmware memory map; the syscall numbers of the
    // machine rkexec runs on; the embedded purgatory images, one per
    // architecture. Nothing else of the pipeline.
    let allowed = |f: &str| {
        f.starts_with("arch/") && f != "arch/contract.rs" && f != "arch/dtb_boot.rs"
            || f.starts_with("image/")
            || matches!(f, "boot_params.rs" | "system/firmware.rs" | "syscall.rs" | "purgatory_image.rs")
    };
    let stray: Vec<&String> = naming.iter().filter(|f| !allowed(f)).collect();
    assert!(stray.is_empty(), "generic code names an architecture: {stray:?} (all that do: {naming:?})");
    // Each architecture module is there, in the table once.
    let table = code(Path::new("arch/mod.rs"));
    for a in loader_host::arch::all() {
        let module = if Path::new(&src()).join("arch").join(format!("{}.rs", a.name)).exists()
            || src().join("arch").join(a.name).is_dir()
        {
            a.name.to_string()
        } else {
            panic!("no module arch/{0}.rs or arch/{0}/ for {0}", a.name)
        };
        assert_eq!(table.matches(&format!("&{module}::")).count(), 1, "{module} in ARCHITECTURES once");
    }
}
