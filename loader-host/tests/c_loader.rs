//! examples/c-loader, the C loader that embeds our purgatory through
//! include/kexec_purgatory.h only: built on the host with warnings as errors
//! (examples/c-loader/build.sh host), then run in its --plan-only mode on the
//! virt-arm64 fixture tree. What it writes is checked with the Rust side of
//! the ABI: the parameter block passes the purgatory's own `validate`, every
//! digest equals the `sha2` crate's over memsz, the DTB parses and carries
//! the new /chosen properties. The host build has no kexec_load/reboot call
//! in it at all (checked), and --plan-only is the only mode it accepts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use kexec_purgatory::abi::{ImageHeader, PurgatoryParams, SegmentKind, CONSOLE_PL011, PARAMS_MAGIC, PSCI_CONDUIT_HVC};
use sha2::{Digest, Sha256};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/virt-arm64");
const MIB: u64 = 1 << 20;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rkx-c-loader-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The host build of the C loader, built once per test run by the
/// example's own build script (-std=c99 -Wall -Wextra -Werror).
fn c_loader() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = tmp("build");
        let o = Command::new("bash")
            .arg(format!("{ROOT}/examples/c-loader/build.sh"))
            .arg("host")
            .env("CLOADER_OUT", &out)
            .output()
            .expect("run examples/c-loader/build.sh");
        assert!(
            o.status.success(),
            "the C loader does not build warning-free on the host:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        out.join("host/c-loader")
    })
}

/// The flat aarch64 purgatory as another loader gets it. Until
/// `rkexec purgatory --output` exists, the image this crate embeds.
fn flat_purgatory(dir: &Path) -> PathBuf {
    let p = dir.join("purgatory-aarch64.bin");
    std::fs::write(&p, loader_host::purgatory_image::AARCH64_FLAT).unwrap();
    p
}

/// An arm64 Image (booting.rst header: text_offset 0, image_size, flags
/// LE + 4K pages + anywhere, magic) with a body that is not all zeros.
fn fake_image(dir: &Path, body: usize, image_size: u64) -> PathBuf {
    let mut img: Vec<u8> = (0..64 + body).map(|i| (i * 7 + i / 4096) as u8).collect();
    img[..16].fill(0);
    img[16..24].copy_from_slice(&image_size.to_le_bytes());
    img[24..32].copy_from_slice(&0b1010u64.to_le_bytes());
    img[32..56].fill(0);
    img[56..60].copy_from_slice(b"ARM\x64");
    let p = dir.join("Image");
    std::fs::write(&p, img).unwrap();
    p
}

struct Inputs {
    dir: PathBuf,
    image: PathBuf,
    initrd: PathBuf,
    purgatory: PathBuf,
}

fn inputs(name: &str) -> Inputs {
    let dir = tmp(name);
    let image = fake_image(&dir, 3 * MIB as usize + 123, 5 * MIB + 0x800);
    let initrd = dir.join("initrd");
    std::fs::write(&initrd, (0..300_001u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>()).unwrap();
    let purgatory = flat_purgatory(&dir);
    Inputs { dir, image, initrd, purgatory }
}

fn run(args: &[&str]) -> Output {
    Command::new(c_loader()).args(args).output().expect("run the host c-loader")
}

fn plan(i: &Inputs, extra: &[&str]) -> Output {
    let plan_dir = i.dir.join("plan");
    let mut args = vec![
        "--image".to_string(),
        i.image.display().to_string(),
        "--initrd".into(),
        i.initrd.display().to_string(),
        "--purgatory".into(),
        i.purgatory.display().to_string(),
        "--dtb".into(),
        format!("{FIXTURES}/sys/firmware/fdt"),
        "--iomem".into(),
        format!("{FIXTURES}/proc/iomem"),
        "--append".into(),
        "console=ttyAMA0 MARKER=c-loader-host".into(),
        "--plan-only".into(),
        format!("--plan-dir={}", plan_dir.display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&refs)
}

/// One `c-loader: segment N kind=K mem=.. memsz=.. bufsz=.. [sha256=..]` line.
#[derive(Debug)]
struct SegLine {
    kind: String,
    mem: u64,
    memsz: u64,
    bufsz: u64,
    sha256: Option<String>,
}

fn hexnum(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("not hex: {s}"))
}

fn seg_lines(stdout: &str) -> Vec<SegLine> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("c-loader: segment "))
        .map(|l| {
            let field = |k: &str| l.split_whitespace().find_map(|w| w.strip_prefix(k)).map(str::to_string);
            SegLine {
                kind: field("kind=").unwrap(),
                mem: hexnum(&field("mem=").unwrap()),
                memsz: hexnum(&field("memsz=").unwrap()),
                bufsz: hexnum(&field("bufsz=").unwrap()),
                sha256: field("sha256="),
            }
        })
        .collect()
}

fn params_of(purgatory_segment: &[u8]) -> (ImageHeader, PurgatoryParams) {
    let hdr = ImageHeader::parse(purgatory_segment).unwrap();
    let off = hdr.params_offset as usize;
    let bytes = &purgatory_segment[off..off + std::mem::size_of::<PurgatoryParams>()];
    // SAFETY: PurgatoryParams is repr(C) plain integers (abi.rs asserts its
    // size and layout); the slice has exactly its size.
    let params: PurgatoryParams = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    (hdr, params)
}

fn digest_memsz(bytes: &[u8], memsz: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(bytes);
    h.update(vec![0u8; (memsz - bytes.len() as u64) as usize]);
    h.finalize().into()
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn plan_is_what_the_purgatory_accepts() {
    let i = inputs("plan");
    let o = plan(&i, &[]);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
    let segs = seg_lines(&stdout);
    let kinds: Vec<&str> = segs.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["kernel", "initrd", "dtb", "purgatory"], "{stdout}");
    let bytes: Vec<Vec<u8>> =
        (0..segs.len()).map(|n| std::fs::read(i.dir.join(format!("plan/segment-{n}.bin"))).unwrap()).collect();

    // The parameter block, read back from the purgatory segment with the
    // Rust definition, passes the purgatory's own validation.
    let (hdr, params) = params_of(&bytes[3]);
    assert_eq!(params.magic, PARAMS_MAGIC);
    let own_image = kexec_purgatory::verify::MemSpan::new(segs[3].mem, hdr.mem_size);
    let rules = kexec_purgatory::verify::Rules::for_arch(hdr.arch, own_image).unwrap();
    assert_eq!(kexec_purgatory::verify::validate(&params, &rules), Ok(()));
    assert_eq!(params.nr_segments, 3);
    assert_eq!(params.console.kind, CONSOLE_PL011);
    assert_eq!(params.console.base, 0x900_0000, "stdout-path /pl011@9000000");
    assert_eq!(params.psci_conduit, PSCI_CONDUIT_HVC, "/psci/method hvc");
    assert_eq!(params.flags, 0);
    let entry = stdout.lines().find_map(|l| l.strip_prefix("c-loader: kexec entry ")).unwrap();
    assert_eq!(hexnum(entry.split_whitespace().next().unwrap()), segs[3].mem + hdr.entry_offset);
    assert!(segs[3].memsz >= hdr.mem_size && segs[3].mem.is_multiple_of(4096));

    // Every listed segment: same place as printed, digest over memsz equal
    // to the sha2 crate's (FIPS 180-4 done twice, independently).
    let want_kinds = [SegmentKind::Kernel, SegmentKind::Initrd, SegmentKind::Dtb];
    for (n, (d, s)) in params.active_segments().iter().zip(&segs).enumerate() {
        assert_eq!((d.mem, d.len, d.kind, d.flags), (s.mem, s.memsz, want_kinds[n] as u32, 0), "segment {n}");
        assert_eq!(bytes[n].len() as u64, s.bufsz);
        assert!(s.memsz % 4096 == 0 && s.mem % 4096 == 0 && s.bufsz <= s.memsz);
        assert_eq!(d.sha256, digest_memsz(&bytes[n], s.memsz), "segment {n} digest");
        assert_eq!(s.sha256.as_deref(), Some(hex(&d.sha256).as_str()));
    }
    // booting.rst: 2 MiB aligned base + text_offset (0), image_size covered.
    assert_eq!(params.kernel_entry, segs[0].mem);
    assert_eq!(segs[0].mem % (2 * MIB), 0);
    assert!(segs[0].memsz >= 5 * MIB + 0x800);
    assert_eq!(params.boot_data, segs[2].mem);
    // Inside the fixture's System RAM, clear of its reserved children.
    let reserved = [(0x4021_0000u64, 0x4163_0000u64), (0x4800_0000, 0x48e1_f000), (0xbd80_0000, 0xc000_0000)];
    for s in &segs {
        assert!(s.mem >= 0x4000_0000 && s.mem + s.memsz <= 0xc000_0000, "{s:?}");
        for (a, b) in reserved {
            assert!(s.mem + s.memsz <= a || s.mem >= b, "{s:?} overlaps reserved {a:#x}-{b:#x}");
        }
    }

    // The DTB: the purgatory's structure check, then the /chosen edit.
    let dtb = &bytes[2];
    assert_eq!(kexec_purgatory::checks::check_fdt(dtb), Ok(()));
    let fdt = fdt::Fdt::new(dtb).expect("the rebuilt DTB parses");
    let chosen = fdt.find_node("/chosen").unwrap();
    let prop = |name: &str| chosen.property(name).unwrap_or_else(|| panic!("/chosen/{name} missing")).value;
    assert_eq!(prop("bootargs"), b"console=ttyAMA0 MARKER=c-loader-host\0");
    assert_eq!(prop("linux,initrd-start"), segs[1].mem.to_be_bytes());
    assert_eq!(prop("linux,initrd-end"), (segs[1].mem + 300_001).to_be_bytes());
    assert_eq!(prop("stdout-path"), b"/pl011@9000000\0");
    let original = std::fs::read(format!("{FIXTURES}/sys/firmware/fdt")).unwrap();
    let before = fdt::Fdt::new(&original).unwrap();
    assert_eq!(fdt.all_nodes().count(), before.all_nodes().count(), "no node lost or added");
    assert_eq!(fdt.memory().regions().count(), before.memory().regions().count());
    std::fs::remove_dir_all(&i.dir).unwrap();
}

#[test]
fn corrupt_after_digest_breaks_exactly_that_segment() {
    for seg in [0usize, 1, 2] {
        let i = inputs(&format!("corrupt{seg}"));
        let o = plan(&i, &["--corrupt-after-digest", &seg.to_string()]);
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
        assert!(stdout.contains("flipped bit 0 of byte") && stdout.contains(&format!("of segment {seg} (")));
        let segs = seg_lines(&stdout);
        let bytes: Vec<Vec<u8>> =
            (0..4).map(|n| std::fs::read(i.dir.join(format!("plan/segment-{n}.bin"))).unwrap()).collect();
        let (_, params) = params_of(&bytes[3]);
        for (n, d) in params.active_segments().iter().enumerate() {
            let ok = d.sha256 == digest_memsz(&bytes[n], segs[n].memsz);
            assert_eq!(ok, n != seg, "segment {n} digest with segment {seg} corrupted");
        }
        std::fs::remove_dir_all(&i.dir).unwrap();
    }
}

/// Bad input: exit status, one line on stderr naming the file/field and
/// the rule, and nothing written to the plan directory.
fn refused(o: &Output, code: i32, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("c-loader: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "{err:?} lacks {n:?}");
    }
    assert!(o.stdout.is_empty() || !String::from_utf8_lossy(&o.stdout).contains("segment 0"), "no plan printed");
}

#[test]
fn bad_inputs_are_refused_with_one_clear_line() {
    let i = inputs("bad");
    let s = |p: &Path| p.display().to_string();
    let write = |name: &str, bytes: &[u8]| {
        let p = i.dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        s(&p)
    };
    let purg = loader_host::purgatory_image::AARCH64_FLAT;
    let elf = write("purgatory.elf", loader_host::purgatory_image::AARCH64_ELF);
    let x86 = write("purgatory-x86.bin", loader_host::purgatory_image::X86_64_FLAT);
    let short = write("purgatory-short.bin", &purg[..purg.len() - 1]);
    let no_magic = write("not-an-image", &[0x55u8; 4096]);
    let gz = write("Image.gz", &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    let dtb = std::fs::read(format!("{FIXTURES}/sys/firmware/fdt")).unwrap();
    let dtb_cut = write("cut.dtb", &dtb[..dtb.len() / 2]);
    let iomem_zero = write("iomem-zero", b"00000000-00000000 : System RAM\n");
    let iomem_small = write("iomem-small", b"40000000-403fffff : System RAM\n");
    let iomem_bad = write("iomem-bad", b"40000000-4zzfffff : System RAM\n");
    let base = |image: &str, purgatory: &str, dtb: &str, iomem: &str| -> Vec<String> {
        ["--image", image, "--purgatory", purgatory, "--dtb", dtb, "--iomem", iomem, "--plan-only"]
            .iter()
            .map(|x| x.to_string())
            .collect()
    };
    let (img, pur) = (s(&i.image), s(&i.purgatory));
    let (fdt_ok, iomem_ok) = (format!("{FIXTURES}/sys/firmware/fdt"), format!("{FIXTURES}/proc/iomem"));
    let cases: Vec<(Vec<String>, i32, Vec<&str>)> = vec![
        (base(&img, &elf, &fdt_ok, &iomem_ok), 1, vec!["--purgatory", "purgatory.elf", "magic"]),
        (base(&img, &x86, &fdt_ok, &iomem_ok), 1, vec!["purgatory-x86.bin", "arch 2"]),
        (base(&img, &short, &fdt_ok, &iomem_ok), 1, vec!["purgatory-short.bin", "image_size"]),
        (base(&no_magic, &pur, &fdt_ok, &iomem_ok), 1, vec!["--image", "not-an-image", "booting.rst"]),
        (base(&gz, &pur, &fdt_ok, &iomem_ok), 1, vec!["Image.gz", "gzip"]),
        (base(&img, &pur, &dtb_cut, &iomem_ok), 1, vec!["--dtb", "cut.dtb", "totalsize"]),
        (base(&img, &pur, &fdt_ok, &iomem_zero), 1, vec!["iomem-zero", "CAP_SYS_ADMIN"]),
        (base(&img, &pur, &fdt_ok, &iomem_small), 1, vec!["no room for the kernel", "booting.rst"]),
        (base(&img, &pur, &fdt_ok, &iomem_bad), 1, vec!["iomem-bad line 1"]),
        (base(&img, &pur, &fdt_ok, &format!("{}/missing", i.dir.display())), 1, vec!["--iomem", "missing"]),
    ];
    for (args, code, needles) in cases {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&run(&refs), code, &needles);
    }
    let ok = base(&img, &pur, &fdt_ok, &iomem_ok);
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = ok.iter().map(String::as_str).collect();
        a.extend_from_slice(extra);
        run(&a)
    };
    refused(&with(&["--corrupt-after-digest", "2"]), 1, &["--corrupt-after-digest 2", "lists 2 segments"]);
    refused(&with(&["--corrupt-after-digest", "x"]), 2, &["--corrupt-after-digest x"]);
    refused(&with(&["--console", "uart@1"]), 2, &["--console uart@1"]);
    refused(&with(&["--bogus"]), 2, &["unknown argument --bogus"]);
    std::fs::remove_dir_all(&i.dir).unwrap();
}

#[test]
fn host_build_only_plans_and_cannot_load() {
    let i = inputs("guard");
    let args = ["--image", i.image.to_str().unwrap(), "--purgatory", i.purgatory.to_str().unwrap(), "--load-only"];
    refused(&run(&args), 2, &["never calls kexec_load", "--plan-only"]);
    refused(&run(&args[..4]), 2, &["never calls kexec_load"]);
    // Not merely refused: the host binary does not import the calls at all.
    let nm = Command::new("nm").args(["-D", "--undefined-only"]).arg(c_loader()).output().expect("run nm");
    assert!(nm.status.success());
    let imports = String::from_utf8_lossy(&nm.stdout);
    assert!(imports.contains("fopen"), "nm saw the imports: {imports}");
    for forbidden in ["syscall", "reboot", "kexec"] {
        assert!(!imports.contains(forbidden), "the host build imports {forbidden}: {imports}");
    }
    std::fs::remove_dir_all(&i.dir).unwrap();
}
