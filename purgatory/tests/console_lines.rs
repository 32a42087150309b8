//! tests/guest/purgatory_lines.json is generated from
//! purgatory/src/console_lines.rs: the guest-tier judges read it to match
//! what the purgatory prints. This test fails with a diff when the file is
//! stale; `RKEXEC_BLESS=1 cargo test -p kexec-purgatory --test console_lines`
//! rewrites it.

use std::path::PathBuf;

use kexec_purgatory::console_lines::{
    DEC_PLACEHOLDERS, DIGEST_PLACEHOLDERS, HEX_PLACEHOLDERS, LINES, PARAM_REASONS, PATCH_REASONS, STRUCTURE_REASONS,
    TEXT_PLACEHOLDERS,
};

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn object(pairs: &[(&str, &str)], indent: &str) -> String {
    let items: Vec<String> =
        pairs.iter().map(|(k, v)| format!("{indent}  {}: {}", json_string(k), json_string(v))).collect();
    format!("{{\n{}\n{indent}}}", items.join(",\n"))
}

fn list(names: &[&str]) -> String {
    let items: Vec<String> = names.iter().map(|n| json_string(n)).collect();
    format!("[{}]", items.join(", "))
}

/// The file's exact contents: the line templates as top-level keys, then
/// the reason templates and the placeholder formats.
fn generate() -> String {
    let mut out = String::from("{\n");
    out.push_str(&format!(
        "  \"_about\": {},\n",
        json_string(
            "Generated from purgatory/src/console_lines.rs (RKEXEC_BLESS=1 cargo test -p kexec-purgatory \
             --test console_lines); do not edit. Values are templates: {name} placeholders are filled in \
             order, formats in _placeholders."
        )
    ));
    for (key, template) in LINES {
        out.push_str(&format!("  {}: {},\n", json_string(key), json_string(template)));
    }
    out.push_str(&format!("  \"param_reasons\": {},\n", object(PARAM_REASONS, "  ")));
    out.push_str(&format!("  \"structure_reasons\": {},\n", object(STRUCTURE_REASONS, "  ")));
    out.push_str(&format!("  \"patch_reasons\": {},\n", object(PATCH_REASONS, "  ")));
    out.push_str(&format!(
        "  \"_placeholders\": {{\n    \"hex\": {},\n    \"decimal\": {},\n    \"sha256\": {},\n    \"text\": {}\n  }}\n",
        list(HEX_PLACEHOLDERS),
        list(DEC_PLACEHOLDERS),
        list(DIGEST_PLACEHOLDERS),
        list(TEXT_PLACEHOLDERS)
    ));
    out.push_str("}\n");
    out
}

#[test]
fn purgatory_lines_json_is_in_sync() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/guest/purgatory_lines.json");
    let want = generate();
    if std::env::var_os("RKEXEC_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &want).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        let (h, w): (Vec<&str>, Vec<&str>) = (have.lines().collect(), want.lines().collect());
        let mut diff = String::new();
        for i in 0..h.len().max(w.len()) {
            match (h.get(i), w.get(i)) {
                (Some(a), Some(b)) if a == b => {}
                (a, b) => {
                    if let Some(a) = a {
                        diff.push_str(&format!("-{a}\n"));
                    }
                    if let Some(b) = b {
                        diff.push_str(&format!("+{b}\n"));
                    }
                }
            }
        }
        panic!(
            "{} is stale (line by line, - file, + generated):\n{diff}\nrun: RKEXEC_BLESS=1 cargo test -p kexec-purgatory --test console_lines",
            path.display()
        );
    }
}

#[test]
fn the_generated_file_is_json_with_the_contract_keys() {
    let text = generate();
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    for key in [
        "tag",
        "verified",
        "segment_ok",
        "excluded_ok",
        "refused",
        "digest_mismatch",
        "not_entering",
        "entering",
        "halted",
        "resetting",
    ] {
        assert!(v.get(key).and_then(|s| s.as_str()).is_some_and(|s| s.starts_with("purgatory: ")), "{key}");
    }
}
