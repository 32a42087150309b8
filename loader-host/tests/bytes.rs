//! Bytes, not text (issue 21 item 3): kexec-tools takes argv as C strings,
//! opens file names as given, puts `--append`'s bytes into the kernel's
//! command line unchanged and reads /proc/cmdline as bytes. These run the
//! real binary (as `rkexec plan` and as `kexec ... --dry-run`) with names
//! and command lines that are not UTF-8, and read the bytes the kernel
//! would get from the planned segments (the test seam
//! RKEXEC_TEST_SEGMENTS_DIR writes them out): /chosen/bootargs of the DTB,
//! the command line boot_params points at, the initrd. Where something is
//! printed, it is checked to be escaped and on one line.

mod common;
use common::bzimage;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory with /proc and /sys trees, removed on drop.
struct Tree(common::Scratch);

impl std::ops::Deref for Tree {
    type Target = common::Scratch;
    fn deref(&self) -> &common::Scratch {
        &self.0
    }
}

fn os(b: &[u8]) -> OsString {
    OsStr::from_bytes(b).to_os_string()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

impl Tree {
    fn new(name: &str) -> Tree {
        let s = common::Scratch::new("bytes", name);
        std::fs::create_dir_all(s.root.join("segments")).unwrap();
        Tree(s)
    }

    fn loaded(&self) {
        self.write("sys/kernel/kexec_loaded", "0\n");
        self.write("sys/kernel/kexec_crash_loaded", "0\n");
    }

    /// A PC, its /proc/cmdline `running`.
    fn x86(name: &str, running: &[u8]) -> Tree {
        let t = Tree::new(name);
        t.write("proc/iomem", common::X86_IOMEM);
        t.write("proc/cmdline", [running, b"\n"].concat());
        t.loaded();
        t
    }

    /// QEMU virt arm64 (the checked-in fixture), its /proc/cmdline `running`.
    fn arm64(name: &str, running: &[u8]) -> Tree {
        let t = Tree::new(name);
        let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/virt-arm64");
        for rel in ["proc/iomem", "sys/firmware/fdt", "sys/devices/system/memory/block_size_bytes"] {
            t.write(rel, std::fs::read(fx.join(rel)).unwrap());
        }
        t.write("proc/cmdline", [running, b"\n"].concat());
        t.loaded();
        t
    }

    /// `name`: the binary under that name (a link), as `kexec` is installed.
    fn bin(&self, name: &str) -> PathBuf {
        let p = self.root.join("bin").join(name);
        if !p.exists() {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rkexec"), &p).unwrap();
        }
        p
    }

    /// Run `argv0` with `argv`, this tree as /proc and /sys, the seam on
    /// and the segments written to `segments/`.
    fn run(&self, argv0: &str, argv: &[OsString]) -> Output {
        let _ = std::fs::remove_dir_all(self.root.join("segments"));
        std::fs::create_dir_all(self.root.join("segments")).unwrap();
        Command::new(self.bin(argv0))
            .arg("--proc-root")
            .arg(self.root.join("proc"))
            .arg("--sys-root")
            .arg(self.root.join("sys"))
            .args(argv)
            .env("RKEXEC_TEST_NO_SYSCALLS", "1")
            .env("RKEXEC_TEST_SEGMENTS_DIR", self.root.join("segments"))
            .output()
            .expect("run rkexec")
    }

    /// The JSON plan of a successful run.
    fn plan(&self, argv0: &str, argv: &[OsString]) -> serde_json::Value {
        let o = self.run(argv0, argv);
        assert!(o.status.success(), "{argv:?}: {}", err(&o));
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{argv:?}: {e}: {}", out(&o)))
    }

    /// The bytes of the planned segment of `kind` (the last run's).
    fn segment(&self, plan: &serde_json::Value, kind: &str) -> (u64, Vec<u8>) {
        let segs = plan["segments"].as_array().unwrap();
        let (i, s) = segs.iter().enumerate().find(|(_, s)| s["kind"] == kind).unwrap_or_else(|| panic!("no {kind}"));
        let data = std::fs::read(self.root.join("segments").join(format!("{i}-{kind}"))).unwrap();
        (s["start"].as_u64().unwrap(), data)
    }
}

fn err(o: &Output) -> String {
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!e.contains("panicked"), "rkexec panicked: {e}");
    e
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn arm64_image() -> Vec<u8> {
    let mut img = vec![0u8; 64 + (1 << 20)];
    img[16..24].copy_from_slice(&(4u64 << 20).to_le_bytes());
    img[24..32].copy_from_slice(&0b1010u64.to_le_bytes());
    img[0x38..0x3c].copy_from_slice(b"ARM\x64");
    img
}

/// /chosen/bootargs of a DTB segment, as the kernel reads it.
fn bootargs(dtb: &[u8]) -> Vec<u8> {
    loader_host::dtb::handover::bootargs(dtb).expect("/chosen/bootargs")
}

/// The NUL-terminated command line boot_params points at (boot.rst:
/// cmd_line_ptr 0x228, ext_cmd_line_ptr 0x0c8), read from the segment.
fn boot_params_cmdline(start: u64, bp: &[u8]) -> Vec<u8> {
    let u32_at = |o: usize| u64::from(u32::from_le_bytes(bp[o..o + 4].try_into().unwrap()));
    let addr = u32_at(0x228) | (u32_at(0x0c8) << 32);
    let at = usize::try_from(addr - start).unwrap();
    let len = bp[at..].iter().position(|&b| b == 0).expect("NUL-terminated");
    bp[at..at + len].to_vec()
}

const APPEND: &[u8] = b"console=ttyAMA0 root=/dev/\xff\xfe x=\xc3(\x80 caf\xc3\xa9";

#[test]
fn arm64_names_and_append_that_are_not_utf8_reach_the_dtb_byte_exact() {
    let t = Tree::arm64("arm64", b"console=ttyAMA0");
    let kernel = t.write(OsStr::from_bytes(b"vmlinuz-\xff\xfe"), arm64_image());
    let initrd_data: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    let initrd = t.write(OsStr::from_bytes(b"initrd-\x80.img"), &initrd_data);
    let mut append = OsString::from("--append=");
    append.push(os(APPEND));
    for (argv0, argv) in [
        ("rkexec", vec![os(b"plan"), kernel.clone().into(), os(b"--initrd"), initrd.clone().into(), append.clone()]),
        (
            "kexec",
            vec![
                os(b"-l"),
                kernel.clone().into(),
                os(b"--initrd"),
                initrd.clone().into(),
                append.clone(),
                os(b"--dry-run"),
            ],
        ),
    ] {
        let mut argv = argv;
        argv.push(os(b"--json"));
        let p = t.plan(argv0, &argv);
        assert_eq!(p["cmdline_hex"], hex(APPEND), "{argv0}");
        // Escaped in the JSON: \xNN for the bytes that are not UTF-8.
        assert_eq!(p["cmdline"], "console=ttyAMA0 root=/dev/\\xff\\xfe x=\\xc3(\\x80 café", "{argv0}");
        let kp = p["kernel"]["path"].as_str().unwrap();
        assert!(kp.ends_with("/vmlinuz-\\xff\\xfe"), "{argv0}: {kp}");
        let (_, dtb) = t.segment(&p, "dtb");
        assert_eq!(bootargs(&dtb), APPEND, "{argv0}: /chosen/bootargs byte for byte");
        let (_, rd) = t.segment(&p, "initrd");
        assert_eq!(rd, initrd_data, "{argv0}: the initrd opened by its name");
        let (_, k) = t.segment(&p, "kernel");
        assert_eq!(&k[0x38..0x3c], b"ARM\x64", "{argv0}: the kernel opened by its name");
    }
}

#[test]
fn x86_append_that_is_not_utf8_reaches_boot_params_byte_exact() {
    let t = Tree::x86("x86", b"root=/dev/vda1");
    let kernel = t.write(OsStr::from_bytes(b"bzImage\n\xff"), bzimage(200_000));
    let append = b"root=/dev/vda1 x=\xff\xfe\x01 quiet";
    let mut a = OsString::from("--command-line=");
    a.push(os(append));
    let p = t.plan("kexec", &[os(b"-l"), kernel.clone().into(), a, os(b"--dry-run"), os(b"--json")]);
    assert_eq!(p["cmdline_hex"], hex(append));
    assert_eq!(p["cmdline"], "root=/dev/vda1 x=\\xff\\xfe\\u{1} quiet", "escaped, one line");
    let (start, bp) = t.segment(&p, "boot-params");
    assert_eq!(boot_params_cmdline(start, &bp), append, "boot_params' command line byte for byte");
    // The human plan names the kernel file escaped, on one line.
    let o = t.run("rkexec", &[os(b"plan"), kernel.into(), os(b"--append"), os(append)]);
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    assert!(text.contains("command line: root=/dev/vda1 x=\\xff\\xfe\\u{1} quiet\n"), "{text}");
    assert!(text.contains("bzImage\\n\\xff (bzImage)"), "{text}");
    assert!(!text.contains('\u{fffd}'), "nothing replaced: {text}");
}

#[test]
fn reuse_cmdline_keeps_proc_cmdline_bytes() {
    let running = b"BOOT_IMAGE=/boot/vmlinuz-\xff root=/dev/\xfe\xfd crashkernel=256M lang=\xe9";
    let want = b"root=/dev/\xfe\xfd crashkernel=256M lang=\xe9 extra=\x80";
    // x86_64: boot_params.
    let t = Tree::x86("reuse-x86", running);
    let kernel = t.write("bzImage", bzimage(200_000));
    let mut extra = OsString::from("--append=");
    extra.push(os(b"extra=\x80"));
    let argv = [os(b"-l"), kernel.into(), os(b"--reuse-cmdline"), extra.clone(), os(b"--dry-run"), os(b"--json")];
    let p = t.plan("kexec", &argv);
    assert_eq!(p["cmdline_hex"], hex(want));
    let (start, bp) = t.segment(&p, "boot-params");
    assert_eq!(boot_params_cmdline(start, &bp), want);
    // kexec_file_load gets the same bytes (the plan of -s).
    let mut s = vec![os(b"-s")];
    s.extend(argv.iter().cloned());
    let f = t.plan("kexec", &s);
    assert_eq!(f["schema"], "rkexec-file-plan/1");
    assert_eq!(f["cmdline_hex"], hex(want));
    // arm64: /chosen/bootargs.
    let t = Tree::arm64("reuse-arm64", running);
    let kernel = t.write("Image", arm64_image());
    let p = t.plan("rkexec", &[os(b"plan"), kernel.into(), os(b"--reuse-cmdline"), extra, os(b"--json")]);
    let (_, dtb) = t.segment(&p, "dtb");
    assert_eq!(bootargs(&dtb), want);
}

#[test]
fn kexec_file_load_is_handed_the_bytes() {
    let t = Tree::x86("file", b"root=/dev/vda1");
    let kernel = t.write("bzImage", bzimage(200_000));
    let append = b"root=/dev/vda1 \xff\n";
    // Without --dry-run, under the seam: the simulated call prints what
    // it would pass, escaped and on one line.
    let o = t.run("kexec", &[os(b"-s"), os(b"-l"), kernel.into(), os(b"--append"), os(append)]);
    assert!(o.status.success(), "{}", err(&o));
    let e = err(&o);
    let line = e.lines().find(|l| l.starts_with("rkexec: would kexec_file_load")).unwrap_or_else(|| panic!("{e}"));
    assert!(line.contains("cmdline \"root=/dev/vda1 \\xff\\n\" (18 bytes with the NUL)"), "{line}");
}

#[test]
fn a_name_with_a_newline_and_0xff_is_printed_escaped() {
    let t = Tree::x86("names", b"root=/dev/vda1");
    let bad = t.write(OsStr::from_bytes(b"evil\nrkexec: loaded \xff"), b"not a kernel");
    let o = t.run("kexec", &[os(b"-l"), bad.into(), os(b"--dry-run")]);
    assert_eq!(o.status.code(), Some(255), "{}", err(&o));
    let e = err(&o);
    assert_eq!(e.lines().count(), 1, "one line: {e:?}");
    assert!(e.contains("evil\\nrkexec: loaded \\xff"), "{e:?}");
    // A missing initrd with such a name too.
    let kernel = t.write("bzImage", bzimage(200_000));
    let o = t.run("rkexec", &[os(b"plan"), kernel.into(), os(b"--initrd"), os(b"/nonexistent/\xff\nx")]);
    assert_eq!(o.status.code(), Some(255), "{}", err(&o));
    let e = err(&o);
    assert_eq!(e.lines().count(), 1, "one line: {e:?}");
    assert!(e.contains("/nonexistent/\\xff\\nx"), "{e:?}");
}

/// argv cannot hold a NUL, but a library caller's Request can: refused,
/// naming --append, on both system calls and for every architecture's
/// boot data.
#[test]
fn a_nul_in_append_is_refused_naming_append() {
    use loader_host::request::{CmdlineChoice, Request};
    use loader_host::SystemSources;
    for (name, tree, kernel_name, kernel) in [
        ("x86", Tree::x86("nul-x86", b"root=/dev/vda1"), "bzImage", bzimage(200_000)),
        ("arm64", Tree::arm64("nul-arm64", b"console=ttyAMA0"), "Image", arm64_image()),
    ] {
        let k = tree.write(kernel_name, kernel);
        let src = SystemSources::new(tree.root.join("proc"), tree.root.join("sys"));
        let mut req = Request::new(k);
        req.cmdline = CmdlineChoice::Set(b"root=/dev/vda1\0init=/evil".to_vec());
        let e = loader_host::plan(&req, &src).unwrap_err().to_string();
        assert!(e.contains("--append") && e.contains("NUL"), "{name}: {e}");
        let e = loader_host::file_load::file_plan(&req, &src, 0).unwrap_err().to_string();
        assert!(e.contains("--append") && e.contains("NUL"), "{name} kexec_file_load: {e}");
        // The same bytes without the NUL are taken as they are.
        req.cmdline = CmdlineChoice::Set(b"root=/dev/vda1 \xffinit=/x".to_vec());
        assert_eq!(loader_host::plan(&req, &src).unwrap().cmdline, b"root=/dev/vda1 \xffinit=/x", "{name}");
    }
}

/// /proc/cmdline's bytes are taken; a NUL inside it is refused naming it.
#[test]
fn proc_cmdline_with_a_nul_is_refused_naming_it() {
    let t = Tree::x86("nul-proc", b"root=/dev/\xff\0init=/evil");
    let kernel = t.write("bzImage", bzimage(200_000));
    let o = t.run("kexec", &[os(b"-l"), kernel.into(), os(b"--reuse-cmdline"), os(b"--dry-run")]);
    assert_eq!(o.status.code(), Some(255), "{}", err(&o));
    let e = err(&o);
    assert!(e.contains("/proc/cmdline") && e.contains("NUL byte at offset 11"), "{e}");
}

/// The kexec-compatible name takes `plan` as a file name, bytes and all.
#[test]
fn operands_stay_bytes_in_messages() {
    let t = Tree::x86("operands", b"root=/dev/vda1");
    let kernel = t.write("bzImage", bzimage(200_000));
    let o = t.run("kexec", &[os(b"-l"), kernel.into(), OsString::from_vec(b"extra\xff\n".to_vec()), os(b"--dry-run")]);
    assert!(o.status.success(), "{}", err(&o));
    let e = err(&o);
    assert!(e.contains("extra arguments after the kernel are ignored, as by kexec-tools: [\"extra\\xff\\n\"]"), "{e}");
}
