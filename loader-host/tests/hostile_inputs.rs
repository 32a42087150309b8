//! Damaged and hostile inputs through `rkexec plan`, one test per row of
//! the table in issue 11: each refuses with a message naming the file or
//! field and the rule, exits non-zero, never panics and never hangs (every
//! run is killed after a deadline), and loads nothing (plan makes no
//! system call). The last row (many initrds) must keep working. The same
//! rows go through every load path (`-l`, `-p`, `-s -l`, `-s -p`, dry
//! runs) and meet the same refusal.

mod common;
use common::arm64_image as image;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/virt-arm64");
/// The same machine booted with crashkernel= (for `-p`).
const CRASH_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/virt-arm64-crash");
/// Far more than any of these needs: a run past it is a hang.
const DEADLINE: Duration = Duration::from_secs(30);

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rkx-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// rkexec ARGS against the fixture tree (`proc` may be replaced), killed
/// at the deadline.
fn rkexec_in(args: &[&str], proc_root: &Path) -> Run {
    rkexec_roots(args, proc_root, Path::new(&format!("{FIXTURES}/sys")))
}

/// rkexec ARGS against /proc and /sys fixture trees, killed at the
/// deadline.
fn rkexec_roots(args: &[&str], proc_root: &Path, sys_root: &Path) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rkexec"))
        .args(args)
        .arg("--proc-root")
        .arg(proc_root)
        .arg("--sys-root")
        .arg(sys_root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rkexec");
    let start = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("rkexec {args:?} still running after {DEADLINE:?}: a hang");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(!stderr.contains("panicked"), "rkexec panicked: {stderr}");
    Run { code, stdout, stderr }
}

fn rkexec(args: &[&str]) -> Run {
    rkexec_in(args, Path::new(&format!("{FIXTURES}/proc")))
}

const ANYWHERE: u64 = 0b1010; // 4K pages, bit 3 set
const LOW: u64 = 0b0010; // 4K pages, bit 3 clear

fn refused(r: &Run, needle: &str) {
    // kexec-tools' status for a kernel it cannot load (EFAILED).
    assert_eq!(r.code, Some(255), "exit status; stderr: {}", r.stderr);
    assert!(r.stderr.starts_with("rkexec: "), "{}", r.stderr);
    assert!(r.stderr.contains(needle), "expected {needle:?} in: {}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
}

#[test]
fn huge_image_size_is_refused_quickly_not_hashed() {
    let d = tmp("huge");
    let k = d.join("Image");
    std::fs::write(&k, image(0, 1 << 63, ANYWHERE, 4032)).unwrap();
    let start = Instant::now();
    let r = rkexec(&["plan", k.to_str().unwrap()]);
    refused(&r, "no room for the kernel");
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    std::fs::write(&k, image(1 << 62, 1 << 62, ANYWHERE, 4032)).unwrap();
    refused(&rkexec(&["plan", k.to_str().unwrap()]), "no room for the kernel");
}

#[test]
fn text_offset_near_the_top_does_not_wrap() {
    let d = tmp("wrap");
    let k = d.join("Image");
    std::fs::write(&k, image(u64::MAX - 0xfff, 1 << 24, LOW, 4032)).unwrap();
    refused(
        &rkexec(&["plan", k.to_str().unwrap()]),
        "text_offset (0x08) 0xfffffffffffff000 + image_size (0x10) 0x1000000 overflows 64 bits",
    );
}

#[test]
fn special_and_sparse_files_are_refused_before_reading() {
    let r = rkexec(&["plan", "/dev/zero"]);
    refused(&r, "/dev/zero: is a character device, not a regular file");
    let d = tmp("sparse");
    let k = d.join("Image");
    std::fs::write(&k, image(0, 1 << 24, ANYWHERE, 4032)).unwrap();
    let sparse = d.join("initrd");
    std::fs::File::create(&sparse).unwrap().set_len(40 << 30).unwrap();
    let r = rkexec(&["plan", k.to_str().unwrap(), "--initrd", sparse.to_str().unwrap()]);
    refused(&r, "42949672960 bytes is more than the");
    let r = rkexec(&["plan", k.to_str().unwrap(), "--initrd", "/dev/zero"]);
    refused(&r, "/dev/zero: is a character device");
    let r = rkexec(&["plan", k.to_str().unwrap(), "--dtb", "/dev/zero"]);
    refused(&r, "/dev/zero: is a character device");
}

#[test]
fn iomem_ranges_over_ram_receive_no_segment() {
    // A reserved range and a GIC listed at top level across System RAM,
    // and System RAM from 0 with flags bit 3 clear (place low).
    let d = tmp("iomem");
    let proc = d.join("proc");
    std::fs::create_dir_all(&proc).unwrap();
    std::fs::write(
        proc.join("iomem"),
        "00000000-3fffffff : System RAM\n00000000-001fffff : GICD\n01000000-01ffffff : reserved\n09000000-09000fff : pl011@9000000\n",
    )
    .unwrap();
    std::fs::write(proc.join("cmdline"), "console=ttyAMA0\n").unwrap();
    let k = d.join("Image");
    std::fs::write(&k, image(0, 4 << 20, LOW, 4032)).unwrap();
    // The DTB the new kernel gets describes the same RAM (from 0, 1 GiB).
    let dtb = d.join("virt.dtb");
    std::fs::write(&dtb, common::Dtb { memory: Some(vec![(0, 0x4000_0000)]), ..common::Dtb::virt() }.build()).unwrap();
    let (k, dtb) = (k.to_str().unwrap(), dtb.to_str().unwrap());
    let r = rkexec_in(&["plan", k, "--dtb", dtb, "--json"], &proc);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    for s in v["segments"].as_array().unwrap() {
        let (start, end) = (s["start"].as_u64().unwrap(), s["end"].as_u64().unwrap());
        assert!(start >= 0x20_0000, "on the GIC or page 0: {s}");
        assert!(end <= 0x100_0000 || start >= 0x200_0000, "on the reserved range: {s}");
    }
    assert_eq!(v["segments"][0]["start"], 0x20_0000, "the lowest 2 MiB base off the GIC");
    // The same map without the UART's own line puts the DTB's console
    // (stdout-path, pl011@9000000) in usable RAM: refused, not written.
    std::fs::write(proc.join("iomem"), "00000000-3fffffff : System RAM\n00000000-001fffff : GICD\n").unwrap();
    let r = rkexec_in(&["plan", k, "--dtb", dtb], &proc);
    refused(&r, "the console base 0x9000000 is RAM, not a device: System RAM 0x0-0x3fffffff (/proc/iomem line 1)");
}

#[test]
fn arm64_command_line_limit() {
    let d = tmp("cmdline");
    let k = d.join("Image");
    std::fs::write(&k, image(0, 4 << 20, ANYWHERE, 4032)).unwrap();
    let long = "x".repeat(10 * 1024);
    let r = rkexec(&["plan", k.to_str().unwrap(), "--append", &long]);
    refused(&r, "the command line is 10240 bytes; arm64's COMMAND_LINE_SIZE");
}

#[test]
fn truncated_efi_stub_image_is_refused() {
    // A 100-byte file whose Image header says 8 MiB, with an EFI stub's
    // "MZ" and a PE header offset that the file does not reach.
    let d = tmp("trunc");
    let mut img = image(0, 8 << 20, ANYWHERE, 36);
    img[..2].copy_from_slice(b"MZ");
    img[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    let k = d.join("Image");
    std::fs::write(&k, img).unwrap();
    refused(&rkexec(&["plan", k.to_str().unwrap()]), "does not lead to a \"PE\\0\\0\" header");
}

#[test]
fn compressed_image_with_trailing_garbage_is_refused() {
    use std::io::Write;
    let d = tmp("gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&image(0, 4 << 20, ANYWHERE, 4032)).unwrap();
    let mut gz = e.finish().unwrap();
    gz.extend_from_slice(b"trailing garbage");
    let k = d.join("Image.gz");
    std::fs::write(&k, gz).unwrap();
    refused(&rkexec(&["plan", k.to_str().unwrap()]), "16 bytes of data follow the end of the gzip stream");
}

#[test]
fn twenty_initrds_are_concatenated() {
    let d = tmp("many");
    let k = d.join("Image");
    std::fs::write(&k, image(0, 4 << 20, ANYWHERE, 4032)).unwrap();
    let mut args = vec!["plan".to_string(), k.display().to_string(), "--json".into()];
    for i in 0..20 {
        let p = d.join(format!("initrd{i}"));
        std::fs::write(&p, vec![i as u8; 1000 + i]).unwrap();
        args.push(format!("--initrd={}", p.display()));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = rkexec(&argv);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let initrd = v["segments"].as_array().unwrap().iter().find(|s| s["kind"] == "initrd").unwrap();
    assert_eq!(initrd["bufsz"], (0..20).map(|i| 1000 + i).sum::<u64>());
    assert!(initrd["source"].as_str().unwrap().contains("initrd19"));
}

/// A DTB of 20 000 nested nodes, 240 KB: the tree builders recurse per
/// level.
fn deep_dtb() -> Vec<u8> {
    let mut s = Vec::new();
    for level in 0..20_000 {
        s.extend_from_slice(&1u32.to_be_bytes());
        // The root is named "", every node under it "n".
        s.extend_from_slice(if level == 0 { b"\0\0\0\0" } else { b"n\0\0\0" });
    }
    for _ in 0..20_000 {
        s.extend_from_slice(&2u32.to_be_bytes());
    }
    s.extend_from_slice(&9u32.to_be_bytes());
    let (off_struct, off_strings) = (56u32, 56 + s.len() as u32);
    let mut blob = Vec::new();
    for v in [0xd00d_feed, off_strings, off_struct, off_strings, 40, 17, 16, 0, 0, s.len() as u32] {
        blob.extend_from_slice(&u32::to_be_bytes(v));
    }
    blob.extend_from_slice(&[0u8; 16]);
    blob.extend_from_slice(&s);
    blob
}

#[test]
fn deeply_nested_dtb_is_refused_not_a_stack_overflow() {
    let blob = deep_dtb();
    let d = tmp("nested");
    let (k, dtb) = (d.join("Image"), d.join("deep.dtb"));
    std::fs::write(&k, image(0, 4 << 20, ANYWHERE, 4032)).unwrap();
    std::fs::write(&dtb, blob).unwrap();
    let r = rkexec(&["plan", k.to_str().unwrap(), "--dtb", dtb.to_str().unwrap()]);
    refused(&r, "deep.dtb: DTB does not parse: FDT nodes nest deeper than 64 levels");
}

/// Every load path: the plan, kexec_load and kexec_file_load, normal and
/// crash, as dry runs (nothing is loaded; no system call is made).
const PATHS: [&[&str]; 5] =
    [&["plan"], &["-l", "--dry-run"], &["-p", "--dry-run"], &["-s", "-l", "--dry-run"], &["-s", "-p", "--dry-run"]];

fn on_every_path(input: &[&str]) -> Vec<(String, Run)> {
    let (proc, sys) = (format!("{CRASH_FIXTURES}/proc"), format!("{CRASH_FIXTURES}/sys"));
    PATHS
        .iter()
        .map(|path| {
            let args: Vec<&str> = path.iter().chain(input).copied().collect();
            (args.join(" "), rkexec_roots(&args, Path::new(&proc), Path::new(&sys)))
        })
        .collect()
}

#[test]
fn every_load_path_refuses_alike() {
    use std::io::Write;
    let d = tmp("paths");
    let path = |name: &str, bytes: Vec<u8>| {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let ok = path("Image", image(0, 4 << 20, ANYWHERE, 4032));
    let huge = path("huge", image(0, 1 << 63, ANYWHERE, 4032));
    let wrap = path("wrap", image(0xffff_ffff_ffff_f000, 1 << 24, ANYWHERE, 4032));
    let mut stub = image(0, 8 << 20, ANYWHERE, 36);
    stub[..2].copy_from_slice(b"MZ");
    stub[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    let truncated = path("truncated", stub);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&image(0, 4 << 20, ANYWHERE, 4032)).unwrap();
    let mut gz = e.finish().unwrap();
    gz.extend_from_slice(b"trailing garbage");
    let garbage = path("Image.gz", gz);
    let sparse = d.join("sparse");
    std::fs::File::create(&sparse).unwrap().set_len(40 << 30).unwrap();
    let sparse = sparse.display().to_string();
    // A bzImage whose syssize (0x1f4) says 8 MiB, cut after 40 000 bytes.
    let mut bz = common::bzimage(40_000);
    bz[0x1f4..0x1f8].copy_from_slice(&(8u32 << 20 >> 4).to_le_bytes());
    let cut_bz = path("bzImage", bz);
    let long = "x".repeat(10 * 1024);

    // The control: every path takes a good Image.
    for (how, r) in on_every_path(&[&ok]) {
        assert_eq!(r.code, Some(0), "{how}: {}", r.stderr);
    }
    let rows: [(&[&str], &str); 9] = [
        (&[&huge], "no room for the kernel"),
        (&[&wrap], "text_offset (0x08) 0xfffffffffffff000 + image_size (0x10) 0x1000000 overflows 64 bits"),
        (&["/dev/zero"], "/dev/zero: is a character device, not a regular file"),
        (&[&ok, "--initrd", "/dev/zero"], "/dev/zero: is a character device, not a regular file"),
        (&[&ok, "--initrd", &sparse], "42949672960 bytes is more than the"),
        (&[&ok, "--append", &long], "the command line is 10240 bytes; arm64's COMMAND_LINE_SIZE"),
        (&[&truncated], "does not lead to a \"PE\\0\\0\" header"),
        (&[&garbage], "16 bytes of data follow the end of the gzip stream"),
        (&[&cut_bz], "bzImage syssize (0x1f4) gives a 8388608-byte protected-mode kernel; the file holds 40000 bytes"),
    ];
    for (input, needle) in rows {
        for (how, r) in on_every_path(input) {
            assert_eq!(r.code, Some(255), "{how}: exit status; stderr: {}", r.stderr);
            assert!(r.stderr.starts_with("rkexec: "), "{how}: {}", r.stderr);
            assert!(r.stderr.contains(needle), "{how}: expected {needle:?} in: {}", r.stderr);
            assert!(!r.stderr.contains("would kexec"), "{how}: went on to the call: {}", r.stderr);
        }
    }
    // The DTB is kexec_load's alone (kexec_file_load builds its own).
    let deep = path("deep.dtb", deep_dtb());
    for (how, r) in on_every_path(&[&ok, "--dtb", &deep]).into_iter().filter(|(how, _)| !how.starts_with("-s")) {
        assert_eq!(r.code, Some(255), "{how}: exit status; stderr: {}", r.stderr);
        assert!(r.stderr.contains("FDT nodes nest deeper than 64 levels"), "{how}: {}", r.stderr);
    }
}
