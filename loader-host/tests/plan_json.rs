//! docs/plan-json.md is the contract of `plan --json`: real output of the
//! binary (x86_64 and arm64, kexec and crash, kexec_load and
//! kexec_file_load plans) must have exactly the documented fields, each of
//! the documented JSON type. A field added to report.rs without the doc,
//! or documented but gone, fails here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const DOC: &str = include_str!("../../docs/plan-json.md");
const ARM64: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/virt-arm64");
const ARM64_CRASH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/virt-arm64-crash");

/// (path, type) of every documented field of `schema`, from the list
/// between `<!-- fields: SCHEMA -->` and `<!-- end fields -->`.
fn documented(schema: &str) -> BTreeMap<String, String> {
    let start = DOC.find(&format!("<!-- fields: {schema} -->")).expect("field list in the doc");
    let end = start + DOC[start..].find("<!-- end fields -->").expect("end of the field list");
    DOC[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .map(|l| {
            let (path, rest) = l.split_once('`').unwrap();
            let ty = rest.trim_start().strip_prefix('(').and_then(|r| r.split([',', ')']).next()).unwrap();
            (path.to_string(), ty.trim().to_string())
        })
        .collect()
}

fn type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Every path in `v` with its type; array elements as `name[]`.
fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                if x.is_object() {
                    walk(&p, x, out);
                } else {
                    out.insert(p.clone(), type_name(x).to_string());
                    if let serde_json::Value::Array(items) = x {
                        for it in items.iter().filter(|i| i.is_object()) {
                            walk(&format!("{p}[]"), it, out);
                        }
                    }
                }
            }
        }
        _ => {
            out.insert(prefix.to_string(), type_name(v).to_string());
        }
    }
}

/// The documented type admits `actual` ("object or null", "string, memfd only").
fn admits(doc: &str, actual: &str) -> bool {
    doc == actual || doc.split(" or ").any(|t| t == actual) || (doc.contains("object") && actual == "null")
}

fn plan(args: &[&str], root: &str) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_rkexec"))
        .args(["--proc-root", &format!("{root}/proc"), "--sys-root", &format!("{root}/sys")])
        .args(args)
        .args(["--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(text.trim_end().lines().count(), 1, "one line of JSON");
    serde_json::from_str(&text).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rkx-planjson-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn image(dir: &Path) -> PathBuf {
    let mut img = vec![0u8; 64 + 300_000];
    img[16..24].copy_from_slice(&(4u64 << 20).to_le_bytes());
    img[24..32].copy_from_slice(&0b1010u64.to_le_bytes());
    img[0x38..0x3c].copy_from_slice(b"ARM\x64");
    let p = dir.join("Image");
    std::fs::write(&p, img).unwrap();
    p
}

/// Checks `outputs` of `schema` together: each output's fields are
/// documented with a type that admits them, and every documented field
/// appears in at least one output.
fn check(schema: &str, outputs: &[serde_json::Value]) {
    let doc = documented(schema);
    let mut seen = BTreeMap::new();
    for o in outputs {
        assert_eq!(o["schema"], schema);
        let mut fields = BTreeMap::new();
        walk("", o, &mut fields);
        for (path, ty) in &fields {
            let want = doc.get(path).unwrap_or_else(|| panic!("{schema}: {path} ({ty}) is not in docs/plan-json.md"));
            assert!(admits(want, ty), "{schema}: {path} is {ty}, documented as {want}");
        }
        seen.extend(fields);
    }
    for path in doc.keys() {
        assert!(seen.contains_key(path), "{schema}: documented {path} never appears in real output");
    }
}

#[test]
fn kexec_load_plans_match_the_documented_schema() {
    let d = tmp("load");
    let k = image(&d);
    let initrd = d.join("initrd");
    std::fs::write(&initrd, [1u8; 1000]).unwrap();
    let (k, i) = (k.to_str().unwrap(), initrd.to_str().unwrap());
    check(
        "rkexec-plan/1",
        &[
            plan(&["plan", k, "--initrd", i, "--append", "x"], ARM64),
            plan(&["plan", "-p", k, "--reuse-cmdline"], ARM64_CRASH),
        ],
    );
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn kexec_file_load_plans_match_the_documented_schema() {
    let d = tmp("file");
    let k = image(&d);
    let initrd = d.join("initrd");
    std::fs::write(&initrd, [1u8; 1000]).unwrap();
    let gz = d.join("Image.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, &std::fs::read(&k).unwrap()).unwrap();
    std::fs::write(&gz, e.finish().unwrap()).unwrap();
    let (k, i, gz) = (k.to_str().unwrap(), initrd.to_str().unwrap(), gz.to_str().unwrap());
    let ii = format!("--initrd={i}");
    check(
        "rkexec-file-plan/1",
        &[
            plan(&["plan", "-s", k, "--append=x"], ARM64),
            plan(&["plan", "-s", "-p", k, &ii, "--initrd", i], ARM64_CRASH),
            plan(&["plan", "-s", gz, &ii], ARM64),
        ],
    );
    std::fs::remove_dir_all(d).unwrap();
}
