//! Hostile inputs, round 2 (issue 22): eleven classes that got through or
//! hung, each through every load path (`plan`, `-l`, `-p`, `-s -l`, `-s
//! -p`, dry runs on fixture /proc and /sys trees built here). A path that
//! reads the hostile input refuses it with one `rkexec:` line naming the
//! file, field or option and the rule, exit 255; a path that does not use
//! it (kexec_file_load builds its own DTB, a normal load reads no crash
//! notes) goes on, which each table says row by row. Every run is killed
//! at a deadline (a hang fails), runs with a 4 GiB address-space limit (an
//! unbounded read or allocation fails instead of taking the machine) and
//! must not panic.

mod common;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{arm64_image as image, Dtb};

/// Far more than any run needs (each takes well under a second): past it
/// is a hang.
const DEADLINE: Duration = Duration::from_secs(30);

/// The load paths, as dry runs (no system call is made).
const PATHS: [&str; 5] = ["plan", "-l", "-p", "-s -l", "-s -p"];

fn path_args(path: &str) -> Vec<&str> {
    match path {
        "plan" => vec!["plan"],
        "-l" => vec!["-l", "--dry-run"],
        "-p" => vec!["-p", "--dry-run"],
        "-s -l" => vec!["-s", "-l", "--dry-run"],
        "-s -p" => vec!["-s", "-p", "--dry-run"],
        other => panic!("no path {other}"),
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// The run's CPU time (user + system).
    took: Duration,
}

/// An arm64 QEMU virt machine: 2 GiB at 0x40000000, crashkernel=256M at
/// 0xa0000000, a PL011 at 0x9000000.
const ARM64_IOMEM: &str = "\
09000000-09000fff : pl011@9000000
40000000-bfffffff : System RAM
  40210000-40ffffff : Kernel code
  41000000-4133ffff : reserved
  41340000-4162ffff : Kernel data
  a0000000-afffffff : Crash kernel
";

/// An x86 PC: 2 GiB low, 2 GiB above 4 GiB, crashkernel=256M.
const X86_IOMEM: &str = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
000f0000-000fffff : Reserved
00100000-7ffeffff : System RAM
  01000000-01ffffff : Kernel code
  6b000000-7affffff : Crash kernel
7fff0000-7fffffff : ACPI Tables
100000000-17fffffff : System RAM
";

/// /proc and /sys of a machine, in a temporary directory removed on drop.
struct Machine {
    root: PathBuf,
}

impl Machine {
    fn empty(name: &str) -> Machine {
        let root = std::env::temp_dir().join(format!("rkx-hostile2-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::create_dir_all(root.join("sys/kernel")).unwrap();
        Machine { root }
    }

    /// An arm64 machine with `iomem`, its firmware DTB `dtb`, crash notes.
    fn arm64_with(name: &str, iomem: &str, dtb: &Dtb) -> Machine {
        let m = Machine::empty(name);
        m.write("proc/iomem", iomem);
        m.write("proc/cmdline", "console=ttyAMA0 crashkernel=256M rdinit=/init\n");
        m.write("sys/firmware/fdt", dtb.build());
        m.crash_notes();
        m
    }

    fn arm64(name: &str) -> Machine {
        Machine::arm64_with(name, ARM64_IOMEM, &Dtb::virt())
    }

    /// An x86 machine with `iomem` (no firmware memmap: e820 from iomem).
    fn x86_with(name: &str, iomem: &str) -> Machine {
        let m = Machine::empty(name);
        m.write("proc/iomem", iomem);
        m.write("proc/cmdline", "BOOT_IMAGE=/vmlinuz console=ttyS0 root=/dev/vda crashkernel=256M\n");
        m.crash_notes();
        m
    }

    fn crash_notes(&self) {
        for cpu in 0..2 {
            self.write(&format!("sys/devices/system/cpu/cpu{cpu}/crash_notes"), format!("7ef6d{cpu}000\n"));
            self.write(&format!("sys/devices/system/cpu/cpu{cpu}/crash_notes_size"), "432\n");
        }
        self.write("sys/kernel/vmcoreinfo", "bf3f2000 1000\n");
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Write `rel` (directories created); its path as a string.
    fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> String {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    }

    /// A sparse file of `len` bytes starting with `head`.
    fn sparse(&self, rel: &str, head: &[u8], len: u64) -> String {
        let p = self.write(rel, head);
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(len).unwrap();
        p
    }

    /// Put a FIFO (no writer) at `rel`, replacing what is there.
    fn fifo(&self, rel: &str) {
        let p = self.path(rel);
        let _ = std::fs::remove_file(&p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    /// Put a symbolic link to `target` at `rel`, replacing what is there.
    fn link(&self, rel: &str, target: &str) {
        let p = self.path(rel);
        let _ = std::fs::remove_file(&p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, &p).unwrap();
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[], None)
    }

    /// rkexec ARGS on this machine, with `env` set and, when given, a
    /// descriptor limit; killed at the deadline.
    fn run_with(&self, args: &[&str], env: &[(&str, &str)], nofile: Option<u64>) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rkexec"));
        cmd.args(args)
            .arg("--proc-root")
            .arg(self.path("proc"))
            .arg("--sys-root")
            .arg(self.path("sys"))
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: setrlimit only, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let limit = |res, v: u64| {
                    let l = libc::rlimit { rlim_cur: v, rlim_max: v };
                    if libc::setrlimit(res, &l) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                };
                limit(libc::RLIMIT_AS, 4 << 30)?;
                if let Some(n) = nofile {
                    limit(libc::RLIMIT_NOFILE, n)?;
                }
                Ok(())
            });
        }
        let start = Instant::now();
        // Reaped by wait4 below (for its CPU time), not by Child::wait.
        #[allow(clippy::zombie_processes)]
        let mut child = cmd.spawn().expect("run rkexec");
        // Drain the pipes while waiting: a chatty run must not block.
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let t_out = std::thread::spawn(move || {
            let mut s = String::new();
            out.read_to_string(&mut s).unwrap();
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = String::new();
            err.read_to_string(&mut s).unwrap();
            s
        });
        // wait4 for the exit and the child's CPU time (user + system): what
        // the run cost, however busy the machine is. The wall clock only
        // bounds a hang.
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        let (code, took) = loop {
            let mut status = 0;
            // SAFETY: rusage is plain data; wait4 fills it for our own child.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: valid pointers to locals; WNOHANG does not block.
            let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
            assert!(r >= 0, "wait4: {}", std::io::Error::last_os_error());
            if r == pid {
                let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
                let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
                break (code, tv(usage.ru_utime) + tv(usage.ru_stime));
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                panic!("rkexec {args:?} still running after {DEADLINE:?}: a hang");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let (stdout, stderr) = (t_out.join().unwrap(), t_err.join().unwrap());
        assert!(!stderr.contains("panicked"), "rkexec {args:?} panicked: {stderr}");
        Run { code, stdout, stderr, took }
    }

    /// `input` on every load path; (path, run).
    fn every_path(&self, input: &[&str]) -> Vec<(&'static str, Run)> {
        self.every_path_with(input, &[], None)
    }

    fn every_path_with(&self, input: &[&str], env: &[(&str, &str)], nofile: Option<u64>) -> Vec<(&'static str, Run)> {
        PATHS
            .iter()
            .map(|p| {
                let args: Vec<&str> = path_args(p).into_iter().chain(input.iter().copied()).collect();
                (*p, self.run_with(&args, env, nofile))
            })
            .collect()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// What a path must do with a row.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Plan it (exit 0).
    Ok,
    /// Refuse it: exit 255, one `rkexec:` line containing this.
    Refused(&'static str),
}
use Expect::{Ok as Planned, Refused};

fn check(row: &str, how: &str, r: &Run, want: Expect) {
    match want {
        Planned => assert_eq!(r.code, Some(0), "{row}: {how} must plan it; stderr: {}", r.stderr),
        Refused(needle) => {
            assert_eq!(r.code, Some(255), "{row}: {how}: exit status; stderr: {}", r.stderr);
            assert!(r.stderr.starts_with("rkexec: "), "{row}: {how}: {}", r.stderr);
            assert!(r.stderr.contains(needle), "{row}: {how}: expected {needle:?} in: {}", r.stderr);
            assert_eq!(r.stderr.lines().count(), 1, "{row}: {how}: one line: {}", r.stderr);
            assert!(!r.stderr.contains("would kexec"), "{row}: {how}: went on to the call: {}", r.stderr);
        }
    }
}

/// Run `input` on every path and check each against `want` (in PATHS
/// order); the runs, for further checks.
fn table(m: &Machine, row: &str, input: &[&str], want: [Expect; 5]) -> Vec<(&'static str, Run)> {
    let runs = m.every_path(input);
    for ((how, r), w) in runs.iter().zip(want) {
        check(row, how, r, w);
    }
    runs
}

fn all(e: Expect) -> [Expect; 5] {
    [e; 5]
}

/// Refused by the kexec_load paths, planned by kexec_file_load's, which do
/// not use the DTB (kexec_file_load builds its own).
fn dtb_paths(needle: &'static str) -> [Expect; 5] {
    [Refused(needle), Refused(needle), Refused(needle), Planned, Planned]
}

/// The plan's JSON (a kexec_load path run with --json).
fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.stdout))
}

/// (start, end) of every segment of a kexec_load plan's JSON.
fn segments(r: &Run) -> Vec<(u64, u64, String)> {
    json(r)["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["start"].as_u64().unwrap(), s["end"].as_u64().unwrap(), s["kind"].as_str().unwrap().to_string()))
        .collect()
}

const ANYWHERE: u64 = 0b1010; // 4K pages, bit 3 set

fn kernel(m: &Machine) -> String {
    m.write("Image", image(0, 4 << 20, ANYWHERE, 4032))
}

// ---------------------------------------------------------------------
// 1. DTB cells: linux,elfcorehdr and linux,usable-memory-range are written
//    in the root's #address-cells / #size-cells, or refused.
// ---------------------------------------------------------------------

/// A DTB with no memory node but a UEFI memory map (so /proc/iomem alone
/// places), no console (a console's reg would need cells too), root cells
/// as given.
fn uefi_dtb(address: Option<u32>, size: Option<u32>) -> Dtb {
    Dtb { address_cells: address, size_cells: size, memory: None, uefi: true, console: false, ..Dtb::virt() }
}

#[test]
fn class01_dtb_cells_encode_what_fits_and_refuse_what_does_not() {
    // Crash kernel above 4 GiB: its elfcorehdr's address needs 2 cells.
    let high = Machine::arm64_with(
        "cells-high",
        "09000000-09000fff : pl011@9000000\n40000000-17fffffff : System RAM\n  40210000-40ffffff : Kernel code\n  100000000-10fffffff : Crash kernel\n",
        &Dtb::virt(),
    );
    let k = kernel(&high);
    let one = high.write("one-cell.dtb", uefi_dtb(Some(1), Some(1)).build());
    table(
        &high,
        "#address-cells 1, elfcorehdr above 4 GiB",
        &[&k, "--dtb", &one],
        [Planned, Planned, Refused("DTB property /chosen/linux,elfcorehdr: the address 0x10"), Planned, Planned],
    );
    let r = high.run(&["-p", "--dry-run", &k, "--dtb", &one]);
    assert!(
        r.stderr.contains("does not fit the root's #address-cells of 1 (32 bits); kexec-tools refuses it too"),
        "{}",
        r.stderr
    );
    // A 4 GiB crash reservation: its size needs 2 cells.
    let big = Machine::arm64_with(
        "cells-big",
        "40000000-23fffffff : System RAM\n  40210000-40ffffff : Kernel code\n  80000000-17fffffff : Crash kernel\n",
        &Dtb::virt(),
    );
    let k = kernel(&big);
    let one = big.write("one-cell.dtb", uefi_dtb(Some(1), Some(1)).build());
    table(
        &big,
        "#size-cells 1, a 4 GiB crash range",
        &[&k, "--dtb", &one],
        [
            Planned,
            Planned,
            Refused("DTB property /chosen/linux,usable-memory-range: the size 0x100000000 does not fit the root's #size-cells of 1"),
            Planned,
            Planned,
        ],
    );
    // Root cells Linux cannot read a number in.
    let m = Machine::arm64("cells-zero");
    let k = kernel(&m);
    let zero = m.write("zero.dtb", uefi_dtb(Some(0), Some(1)).build());
    table(
        &m,
        "#address-cells 0",
        &[&k, "--dtb", &zero],
        [
            Planned,
            Planned,
            Refused("the root's #address-cells is 0: Linux reads this property in 1 to 4 cells"),
            Planned,
            Planned,
        ],
    );
    let five = m.write("five.dtb", uefi_dtb(Some(2), Some(5)).build());
    table(
        &m,
        "#size-cells 5",
        &[&k, "--dtb", &five],
        [Planned, Planned, Refused("the root's #size-cells is 5"), Planned, Planned],
    );
    // What fits is planned on every path.
    for (a, s) in [(Some(1), Some(1)), (Some(2), Some(1)), (Some(3), Some(2)), (None, None)] {
        let dtb = m.write("fits.dtb", uefi_dtb(a, s).build());
        table(&m, &format!("cells {a:?}/{s:?}"), &[&k, "--dtb", &dtb], all(Planned));
    }
}

/// `<address size>` pairs of a property in `a`/`s` cells.
fn pairs(v: &[u8], a: usize, s: usize) -> Vec<(u64, u64)> {
    let num = |b: &[u8]| b.chunks(4).fold(0u64, |n, c| n << 32 | u64::from(u32::from_be_bytes(c.try_into().unwrap())));
    assert_eq!(v.len() % ((a + s) * 4), 0, "{} bytes in {a}/{s} cells", v.len());
    v.chunks((a + s) * 4).map(|e| (num(&e[..a * 4]), num(&e[a * 4..]))).collect()
}

#[test]
fn class01_the_capture_kernel_reads_its_elfcorehdr_in_the_roots_cells() {
    // Through the library: the DTB segment's bytes, as the capture kernel
    // reads them (drivers/of/fdt.c: dt_root_addr_cells/dt_root_size_cells).
    let m = Machine::arm64("cells-bytes");
    let k = kernel(&m);
    for (a, s) in [(1u32, 1u32), (2, 1), (2, 2), (3, 2), (4, 4)] {
        let dtb = m.write("c.dtb", uefi_dtb(Some(a), Some(s)).build());
        let mut req = loader_host::Request::new(&k);
        req.dtb = Some(dtb.into());
        req.crash = Some(loader_host::CrashOptions { hotplug: loader_host::request::Hotplug::Off, exclude: true });
        let sys = loader_host::SystemSources::new(m.path("proc"), m.path("sys"));
        let plan = loader_host::plan(&req, &sys).unwrap_or_else(|e| panic!("cells {a}/{s}: {e}"));
        let seg = plan.segments.iter().find(|s| s.kind_name() == "dtb").unwrap();
        let fdt = fdt::Fdt::new(&seg.data).unwrap();
        let chosen = fdt.find_node("/chosen").unwrap();
        let core = plan.elfcorehdr.unwrap();
        let hdr = plan.segments.iter().find(|s| s.kind_name() == "elfcorehdr").unwrap();
        let got = pairs(chosen.property("linux,elfcorehdr").unwrap().value, a as usize, s as usize);
        assert_eq!(got, [(core.addr, hdr.memsz)], "cells {a}/{s}: linux,elfcorehdr");
        let usable = pairs(chosen.property("linux,usable-memory-range").unwrap().value, a as usize, s as usize);
        assert_eq!(usable, [(0xa000_0000, 0x1000_0000)], "cells {a}/{s}: linux,usable-memory-range");
    }
}

// ---------------------------------------------------------------------
// 2. The DTB handed over is the new kernel's memory map: its memory nodes
//    and /reserved-memory constrain placement, with /memreserve/.
// ---------------------------------------------------------------------

#[test]
fn class02_a_user_dtb_is_the_new_kernels_memory_map() {
    let m = Machine::arm64("dtb-memory");
    let k = kernel(&m);
    let initrd = m.write("initrd", vec![7u8; 300_000]);
    let dtb = |name: &str, d: Dtb| m.write(name, d.build());

    let none = dtb("none.dtb", Dtb { memory: None, ..Dtb::virt() });
    table(
        &m,
        "no memory node, no UEFI map",
        &[&k, "--dtb", &none],
        dtb_paths("none.dtb: DTB has no memory node (device_type = \"memory\") and no UEFI memory map"),
    );
    let zero = dtb("zero.dtb", Dtb { memory: Some(vec![(0x4000_0000, 0)]), ..Dtb::virt() });
    table(
        &m,
        "a memory node of size 0",
        &[&k, "--dtb", &zero],
        dtb_paths("zero.dtb: DTB has memory nodes that describe no RAM (every reg range has size 0)"),
    );
    // 64 MiB at the bottom of RAM: a normal load goes top-down, so it would
    // land above it; the crash range lies outside it altogether.
    let small = dtb("small.dtb", Dtb { memory: Some(vec![(0x4000_0000, 64 << 20)]), ..Dtb::virt() });
    let runs = table(
        &m,
        "64 MiB of memory nodes",
        &[&k, "--initrd", &initrd, "--dtb", &small, "--json"],
        [
            Planned,
            Planned,
            Refused("DTB has memory nodes for 0x40000000-0x43ffffff, none of it usable"),
            Planned,
            Planned,
        ],
    );
    for (how, r) in runs.iter().take(2) {
        for (start, end, kind) in segments(r) {
            assert!(
                start >= 0x4000_0000 && end <= 0x4400_0000,
                "{how}: {kind} {start:#x}-{end:#x} outside the DTB's memory"
            );
        }
        assert!(
            json(r)["notes"].to_string().contains("segments only in the RAM the DTB's memory nodes describe"),
            "{how}"
        );
    }
    // Carveouts at the top of RAM (where a normal load goes) and at the
    // start of the crash range (where a crash load goes), and a
    // /memreserve/.
    let carve = [
        (0xbe00_0000u64, 32u64 << 20, "no-map"),
        (0xbc00_0000, 32 << 20, "reusable"),
        (0xba00_0000, 32 << 20, ""),
        (0xa000_0000, 16 << 20, "no-map"),
    ];
    let reserved = dtb(
        "reserved.dtb",
        Dtb {
            reserved_memory: carve.iter().map(|&(a, s, f)| ("carveout", a, s, f)).collect(),
            memreserve: vec![(0xb900_0000, 16 << 20)],
            ..Dtb::virt()
        },
    );
    let runs = table(
        &m,
        "/reserved-memory and /memreserve/",
        &[&k, "--initrd", &initrd, "--dtb", &reserved, "--json"],
        all(Planned),
    );
    for (how, r) in runs.iter().take(3) {
        for (start, end, kind) in segments(r) {
            for (a, s) in carve.iter().map(|&(a, s, _)| (a, s)).chain([(0xb900_0000, 16 << 20)]) {
                assert!(end <= a || start >= a + s, "{how}: {kind} {start:#x}-{end:#x} in {a:#x}+{s:#x}");
            }
        }
    }
    // No memory node but a UEFI memory map: /proc/iomem places alone.
    let uefi = dtb("uefi.dtb", Dtb { memory: None, uefi: true, ..Dtb::virt() });
    table(&m, "a UEFI memory map", &[&k, "--dtb", &uefi], all(Planned));
}

// ---------------------------------------------------------------------
// 3. --dtb-set / --dtb-delete are applied first, then the result is
//    checked like any DTB.
// ---------------------------------------------------------------------

#[test]
fn class03_property_edits_are_applied_first_and_the_result_checked() {
    let m = Machine::arm64("dtb-edits");
    let k = kernel(&m);
    let long = format!("/chosen/bootargs={}", "x".repeat(3000));
    let edits = dtb_paths;
    table(
        &m,
        "bootargs past COMMAND_LINE_SIZE",
        &[&k, "--dtb-set", &long],
        edits("the command line is 3000 bytes; arm64's COMMAND_LINE_SIZE"),
    );
    table(
        &m,
        "a non-numeric linux,initrd-start",
        &[&k, "--dtb-set", "/chosen/linux,initrd-start=foo"],
        edits("--dtb-set /chosen/linux,initrd-start: the loader writes this property itself (the initrd the loader places"),
    );
    table(
        &m,
        "linux,elfcorehdr deleted",
        &[&k, "--dtb-delete", "/chosen/linux,elfcorehdr"],
        edits("--dtb-delete /chosen/linux,elfcorehdr: the loader writes this property itself (the capture kernel's elfcorehdr"),
    );
    table(
        &m,
        "a garbage /memory reg",
        &[&k, "--dtb-set", "/memory@40000000/reg=garbage"],
        edits("fdt as edited by --dtb-set/--dtb-delete: DTB property /memory@40000000/reg: 8 bytes is not a list of 16-byte entries"),
    );
    table(
        &m,
        "a garbage #address-cells",
        &[&k, "--dtb-set", "/#address-cells=x"],
        edits("as edited by --dtb-set/--dtb-delete: DTB property /#address-cells: 2 bytes is not one u32 cell"),
    );
    // What an edit says is what the loader reads: bootargs set by
    // --dtb-set are the command line kept without --append.
    let runs =
        table(&m, "bootargs set", &[&k, "--dtb-set", "/chosen/bootargs=console=ttyAMA0 quiet", "--json"], all(Planned));
    for (how, r) in runs.iter().take(3) {
        assert_eq!(json(r)["cmdline"], "console=ttyAMA0 quiet", "{how}");
    }
    table(&m, "stdout-path elsewhere", &[&k, "--dtb-set", "/chosen/stdout-path=/nowhere"], all(Planned));
}

// ---------------------------------------------------------------------
// 4. Sizes are bounded by the architecture's real limits before a byte is
//    read.
// ---------------------------------------------------------------------

#[test]
fn class04_sizes_are_bounded_before_a_byte_is_read() {
    // 256 GiB of RAM: the machine alone would let 40 GB through.
    let big = Machine::arm64_with(
        "size-arm64",
        "09000000-09000fff : pl011@9000000\n40000000-403fffffff : System RAM\n  40210000-40ffffff : Kernel code\n  a0000000-afffffff : Crash kernel\n",
        &Dtb { memory: Some(vec![(0x4000_0000, 256 << 30)]), ..Dtb::virt() },
    );
    let k = kernel(&big);
    let initrd = big.sparse("initrd", b"070701", 40 << 30);
    let runs = table(
        &big,
        "a 40 GB initrd on arm64",
        &[&k, "--initrd", &initrd],
        all(Refused("42949672960 bytes is more than the")),
    );
    for (how, r) in &runs {
        let bound = match *how {
            "plan" | "-l" => {
                "34359738368 bytes an initrd may have (the kernel's 32 GiB window, kexec-tools' arm64 rule)"
            }
            "-p" | "-s -p" => "268435456 bytes that can be placed",
            _ => "4294967296 bytes kexec_file_load reads",
        };
        assert!(r.stderr.contains(bound), "{how}: {}", r.stderr);
        assert!(r.took < Duration::from_secs(5), "{how}: took {:?}: read before refused?", r.took);
    }
    let huge = big.sparse("huge-Image", &image(0, 4 << 20, ANYWHERE, 4032), 40 << 30);
    let runs = table(&big, "a 40 GB kernel", &[&huge], all(Refused("42949672960 bytes is more than the")));
    for (how, r) in &runs {
        let bound = if how.ends_with("-p") {
            "268435456 bytes that can be placed"
        } else {
            "536870912 bytes a kernel image may have"
        };
        assert!(r.stderr.contains(bound), "{how}: {}", r.stderr);
    }
    // x86, 64 GiB: kexec takes at most half of RAM for all segments.
    let x86 = Machine::x86_with(
        "size-x86",
        "00001000-0009fbff : System RAM\n00100000-7ffeffff : System RAM\n  01000000-01ffffff : Kernel code\n  6b000000-7affffff : Crash kernel\n100000000-107fffffff : System RAM\n",
    );
    let bz = x86.write("bzImage", common::bzimage(40_000));
    let initrd = x86.sparse("initrd", b"070701", 40 << 30);
    let runs = table(
        &x86,
        "a 40 GB initrd on x86",
        &[&bz, "--initrd", &initrd],
        all(Refused("42949672960 bytes is more than the")),
    );
    for (how, r) in runs.iter().take(2) {
        assert!(
            r.stderr.contains("bytes kexec takes for all segments together (half of RAM: kernel/kexec_core.c"),
            "{how}: {}",
            r.stderr
        );
    }
}

// ---------------------------------------------------------------------
// 5. Every /proc, /sys and firmware file is opened without waiting and
//    read within a bound: a FIFO or a link to /dev/zero is refused.
// ---------------------------------------------------------------------

#[test]
fn class05_proc_and_sys_files_never_block_nor_read_without_end() {
    // (file under the machine root, extra arguments, the paths that read
    // it; the others must plan).
    type Row = (&'static str, &'static [&'static str], &'static [&'static str]);
    let arm64: [Row; 6] = [
        ("proc/iomem", &[], &["plan", "-l", "-p", "-s -l", "-s -p"]),
        ("proc/cmdline", &["--reuse-cmdline"], &["plan", "-l", "-p", "-s -l", "-s -p"]),
        ("sys/devices/system/cpu/cpu0/crash_notes", &[], &["-p"]),
        ("sys/devices/system/memory/memory8/state", &[], &["plan", "-l"]),
        // kexec_file_load keeps the running DTB's bootargs too (kept_cmdline).
        ("sys/firmware/fdt", &[], &["plan", "-l", "-p", "-s -l", "-s -p"]),
        ("proc/kcore", &[], &["-p"]),
    ];
    let x86: [Row; 1] = [("sys/firmware/memmap/0/type", &[], &["plan", "-l", "-p"])];
    for (special, what) in
        [("fifo", "is a FIFO, not a regular file"), ("zero", "is a character device, not a regular file")]
    {
        for (file, extra, readers) in arm64.iter().chain(&x86) {
            let is_x86 = file.contains("memmap");
            let m = if is_x86 { Machine::x86_with("special-x86", X86_IOMEM) } else { Machine::arm64("special") };
            // A memory block to read, an e820 map from sysfs, a kcore.
            m.write("sys/devices/system/memory/block_size_bytes", "8000000\n");
            m.write("sys/devices/system/memory/memory8/phys_index", "00000008\n");
            m.write("sys/devices/system/memory/memory8/state", "online\n");
            m.write("sys/devices/system/memory/memory8/valid_zones", "Normal\n");
            for (i, (start, end, ty)) in [
                ("0x1000", "0x9fbff", "System RAM"),
                ("0x100000", "0x7ffeffff", "System RAM"),
                ("0x100000000", "0x17fffffff", "System RAM"),
            ]
            .iter()
            .enumerate()
            {
                m.write(&format!("sys/firmware/memmap/{i}/start"), format!("{start}\n"));
                m.write(&format!("sys/firmware/memmap/{i}/end"), format!("{end}\n"));
                m.write(&format!("sys/firmware/memmap/{i}/type"), format!("{ty}\n"));
            }
            m.write("proc/kcore", b"\x7fELF");
            let k = if is_x86 { m.write("bzImage", common::bzimage(40_000)) } else { kernel(&m) };
            match special {
                "fifo" => m.fifo(file),
                _ => m.link(file, "/dev/zero"),
            }
            let input: Vec<&str> = [k.as_str()].into_iter().chain(extra.iter().copied()).collect();
            let needle = format!("{file}: ");
            let runs = m.every_path(&input);
            for (how, r) in &runs {
                let row = format!("{file} as a {special}");
                if readers.contains(how) {
                    check(&row, how, r, Refused(what));
                    assert!(r.stderr.contains(&needle), "{row}: {how}: the file is not named: {}", r.stderr);
                } else {
                    check(&row, how, r, Planned);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------
// 6. Scale: /proc/iomem of 100 000 lines and 130 000 /memreserve/
//    entries, planned within a deadline on every path.
// ---------------------------------------------------------------------

/// How long one run of the scale rows may take (debug build, 2 cores
/// shared): the quadratic code took 22 s for the iomem in a release build.
const SCALE_BUDGET: Duration = Duration::from_secs(8);

#[test]
fn class06_a_hundred_thousand_iomem_lines_plan_within_a_deadline() {
    // 32 GiB of RAM, a reserved page every 128 KiB (100 000 children),
    // the crash range among them.
    let mut iomem = String::from("09000000-09000fff : pl011@9000000\n40000000-83fffffff : System RAM\n");
    iomem.push_str("  40210000-40ffffff : Kernel code\n");
    let mut lines = 2;
    let mut at = 0x1_0000_0000u64;
    while lines < 100_000 {
        iomem.push_str(&format!("  {:x}-{:x} : reserved\n", at, at + 0xfff));
        at += 0x2_0000;
        lines += 1;
    }
    iomem.push_str("  600000000-60fffffff : Crash kernel\n");
    let m =
        Machine::arm64_with("scale-iomem", &iomem, &Dtb { memory: Some(vec![(0x4000_0000, 32 << 30)]), ..Dtb::virt() });
    let k = kernel(&m);
    let initrd = m.write("initrd", vec![1u8; 1 << 20]);
    let runs = table(&m, "100 000 iomem lines", &[&k, "--initrd", &initrd], all(Planned));
    for (how, r) in &runs {
        assert!(r.took < SCALE_BUDGET, "{how}: {:?} for 100 000 lines", r.took);
    }
}

#[test]
fn class06_a_hundred_and_thirty_thousand_memreserves_plan_within_a_deadline() {
    let m = Machine::arm64("scale-memreserve");
    let k = kernel(&m);
    // 4 KiB every 8 KiB from 0x50000000: 130 000 entries, 2 MB of DTB.
    let memreserve: Vec<(u64, u64)> = (0..130_000u64).map(|i| (0x5000_0000 + i * 0x2000, 0x1000)).collect();
    let dtb = m.write("many.dtb", Dtb { memreserve, ..Dtb::virt() }.build());
    let runs = table(&m, "130 000 /memreserve/ entries", &[&k, "--dtb", &dtb], all(Planned));
    for (how, r) in &runs {
        assert!(r.took < SCALE_BUDGET, "{how}: {:?} for 130 000 entries", r.took);
    }
}

// ---------------------------------------------------------------------
// 7. The machine's description must agree with itself.
// ---------------------------------------------------------------------

#[test]
fn class07_the_machine_description_is_consistent_or_refused() {
    // A crash reservation outside System RAM.
    let m = Machine::arm64_with(
        "crash-outside",
        "09000000-09000fff : pl011@9000000\n40000000-bfffffff : System RAM\n  40210000-40ffffff : Kernel code\nc0000000-cfffffff : Crash kernel\n",
        &Dtb { memory: Some(vec![(0x4000_0000, 0x9000_0000)]), ..Dtb::virt() },
    );
    let k = kernel(&m);
    let needle = "iomem line 4: the \"Crash kernel\" range 0xc0000000-0xcfffffff is not inside System RAM";
    table(&m, "crash range outside RAM", &[&k], [Planned, Planned, Refused(needle), Planned, Refused(needle)]);

    // x86: /proc/iomem says RAM above 4 GiB, the firmware's e820 map (what
    // the new kernel gets) says reserved.
    let x = Machine::x86_with("e820", X86_IOMEM);
    for (i, (start, end, ty)) in [
        ("0x0", "0xfff", "Reserved"),
        ("0x1000", "0x9fbff", "System RAM"),
        ("0x100000", "0x7ffeffff", "System RAM"),
        ("0x7fff0000", "0x7fffffff", "ACPI Tables"),
        ("0x100000000", "0x17fffffff", "Reserved"),
    ]
    .iter()
    .enumerate()
    {
        x.write(&format!("sys/firmware/memmap/{i}/start"), format!("{start}\n"));
        x.write(&format!("sys/firmware/memmap/{i}/end"), format!("{end}\n"));
        x.write(&format!("sys/firmware/memmap/{i}/type"), format!("{ty}\n"));
    }
    let bz = x.write("bzImage", common::bzimage(40_000));
    let runs = table(&x, "e820 reserves what iomem calls RAM", &[&bz, "--json"], all(Planned));
    for (how, r) in runs.iter().take(3) {
        for (start, end, kind) in segments(r) {
            assert!(
                end <= 0x1_0000_0000 || start >= 0x1_8000_0000,
                "{how}: {kind} {start:#x}-{end:#x} where e820 has no RAM"
            );
        }
    }
    assert!(json(&runs[0].1)["notes"]
        .to_string()
        .contains("not using 0x100000000-0x17fffffff: System RAM in /proc/iomem, but not RAM in the e820 map"));

    // A console base inside a reserved child of System RAM.
    let c = Machine::arm64_with(
        "console-reserved",
        "40000000-bfffffff : System RAM\n  40210000-40ffffff : Kernel code\n  4f000000-4f000fff : reserved\n  a0000000-afffffff : Crash kernel\n",
        &Dtb { console_base: 0x4f00_0000, ..Dtb::virt() },
    );
    let k = kernel(&c);
    table(
        &c,
        "console in reserved RAM",
        &[&k],
        dtb_paths("the console base 0x4f000000 is RAM, not a device: reserved 0x4f000000-0x4f000fff (/proc/iomem line 3) inside System RAM 0x40000000-0xbfffffff (line 1)"),
    );
}

// ---------------------------------------------------------------------
// 8. A capture kernel gets the loader's elfcorehdr= only.
// ---------------------------------------------------------------------

#[test]
fn class08_a_capture_kernels_command_line_has_no_elfcorehdr_but_the_loaders() {
    let m = Machine::arm64("elfcorehdr");
    let k = kernel(&m);
    let given = "root=/dev/vda elfcorehdr=0x1234 quiet";
    let runs = table(&m, "--append elfcorehdr=", &[&k, "--append", given, "--json"], all(Planned));
    for (how, r) in &runs {
        let want = if how.ends_with("-p") { "root=/dev/vda quiet" } else { given };
        assert_eq!(json(r)["cmdline"], want, "{how}");
        if how.ends_with("-p") {
            assert!(json(r)["notes"].to_string().contains("removed elfcorehdr=0x1234 from the command line"), "{how}");
        }
    }
    // --reuse-cmdline from a running capture kernel's line.
    m.write("proc/cmdline", "console=ttyAMA0 elfcorehdr=64M@2G crashkernel=256M\n");
    let runs = table(&m, "--reuse-cmdline elfcorehdr=", &[&k, "--reuse-cmdline", "--json"], all(Planned));
    assert_eq!(json(&runs[2].1)["cmdline"], "console=ttyAMA0", "-p");
    assert_eq!(json(&runs[4].1)["cmdline"], "console=ttyAMA0", "-s -p");
    // x86: the loader's elfcorehdr= first, the user's gone.
    let x = Machine::x86_with("elfcorehdr-x86", X86_IOMEM);
    let bz = x.write("bzImage", common::bzimage(40_000));
    let r = x.run(&["-p", "--dry-run", &bz, "--append", "elfcorehdr=64M console=ttyS0", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let line = json(&r)["cmdline"].as_str().unwrap().to_string();
    let addr = json(&r)["elfcorehdr"]["addr"].as_u64().unwrap();
    assert_eq!(line, format!("elfcorehdr={addr:#x} console=ttyS0"));
}

// ---------------------------------------------------------------------
// 9. -s applies kexec_file_load's rules before the call, and the kernel's
//    EINVAL is reported as a refusal, not as a missing system call.
// ---------------------------------------------------------------------

#[test]
fn class09_kexec_file_load_rules_before_the_call_and_einval_as_such() {
    // 1 GiB of RAM, an Image whose bss makes it 600 MiB: more than half,
    // though 768 MiB below the crash range are free.
    let m = Machine::arm64_with(
        "half",
        "09000000-09000fff : pl011@9000000\n40000000-7fffffff : System RAM\n  40210000-40ffffff : Kernel code\n  70000000-7fffffff : Crash kernel\n",
        &Dtb { memory: Some(vec![(0x4000_0000, 0x4000_0000)]), ..Dtb::virt() },
    );
    let k = m.write("Image", image(0, 600 << 20, ANYWHERE, 4032));
    table(
        &m,
        "a 600 MiB kernel on 1 GiB",
        &[&k],
        [
            Refused("more than half of RAM (1024 MiB"),
            Refused("more than half of RAM (1024 MiB"),
            Refused("no room for the kernel"),
            Refused("kexec_file_load would fail with EINVAL: the kernel (629145600 bytes) and initrd (0 bytes) take 629145600 bytes, more than half of RAM (536870912 of 1073741824 bytes"),
            Refused("no room for the kernel"),
        ],
    );
    // The kernel's answer, simulated: EINVAL is a refused load (255), only
    // a missing call is "not available" (253, as kexec-tools).
    let k = kernel(&m);
    let r = m.run_with(&["-s", "-l", "--dry-run", &k], &[("RKEXEC_TEST_FILE_LOAD_ERRNO", "22")], None);
    assert_eq!(r.code, Some(255), "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "kexec_file_load failed: Invalid argument (os error 22): the kernel refused the image or its arguments"
        ),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("not available"), "{}", r.stderr);
    let r = m.run_with(&["-s", "-p", "--dry-run", &k], &[("RKEXEC_TEST_FILE_LOAD_ERRNO", "22")], None);
    assert_eq!(r.code, Some(255), "{}", r.stderr);
    let r = m.run_with(&["-s", "-l", "--dry-run", &k], &[("RKEXEC_TEST_FILE_LOAD_ERRNO", "38")], None);
    assert_eq!(r.code, Some(253), "{}", r.stderr);
    // kexec-tools' one line, nothing before it (kexec/kexec.c: the call is
    // probed first and EFALLBACK printed by main).
    assert_eq!(r.stderr, "syscall kexec_file_load not available.\n");
}

// ---------------------------------------------------------------------
// 10. Formats are probed on structure; an empty initrd has one answer.
// ---------------------------------------------------------------------

#[test]
fn class10_probing_on_structure_and_one_answer_for_an_empty_initrd() {
    let m = Machine::arm64("probe");
    // An EFI-stub Image (MZ, a PE header at 0x40 with a .text section)
    // whose code happens to hold ".linux\0\0".
    let mut img = image(0, 4 << 20, ANYWHERE, 8192);
    let len = img.len() as u32;
    img[0..4].copy_from_slice(b"MZ\0\x91");
    img[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    img[0x40..0x44].copy_from_slice(b"PE\0\0");
    img[0x44..0x46].copy_from_slice(&0xaa64u16.to_le_bytes());
    img[0x46..0x48].copy_from_slice(&1u16.to_le_bytes());
    img[0x58..0x60].copy_from_slice(b".text\0\0\0");
    img[0x58 + 16..0x58 + 20].copy_from_slice(&len.to_le_bytes());
    img[0x1000..0x1008].copy_from_slice(b".linux\0\0");
    let k = m.write("Image", img);
    let runs = table(&m, "an EFI stub holding \".linux\"", &[&k, "--json"], all(Planned));
    assert_eq!(json(&runs[0].1)["kernel"]["format"], "Image");

    let k = kernel(&m);
    let empty = m.write("empty.img", b"");
    table(&m, "an empty initrd", &[&k, "--initrd", &empty], all(Refused("empty.img: the initrd is empty (0 bytes)")));
    let full = m.write("initrd", vec![1u8; 1000]);
    table(&m, "an empty initrd among others", &[&k, "--initrd", &empty, "--initrd", &full], all(Planned));
    table(
        &m,
        "two empty initrds",
        &[&k, "--initrd", &empty, "--initrd", &empty],
        all(Refused("the initrd is empty (0 bytes)")),
    );
}

// ---------------------------------------------------------------------
// 11. Messages blame the file at fault and print names escaped; window
//     failures name the window; a thousand initrds are read one at a time.
// ---------------------------------------------------------------------

#[test]
fn class11_the_file_at_fault_is_blamed() {
    let m = Machine::arm64("blame");
    let linux = image(0, 4 << 20, ANYWHERE, 4032);
    let u = m.write("uki.efi", common::pe(0xaa64, &[(".linux", &linux), (".cmdline", b"root=/dev/vda\0quiet\0")]));
    table(
        &m,
        "a NUL in a UKI's .cmdline",
        &[&u],
        all(Refused("uki.efi: unified kernel image (UAPI.5): .cmdline holds a NUL byte at offset 13")),
    );
    let k = kernel(&m);
    m.write("proc/cmdline", b"console=ttyAMA0\0rdinit=/init\n");
    table(
        &m,
        "a NUL in /proc/cmdline",
        &[&k, "--reuse-cmdline"],
        all(Refused("proc/cmdline: holds a NUL byte at offset 15")),
    );
}

#[test]
fn class11_names_are_printed_escaped_on_one_line() {
    let m = Machine::arm64("escape");
    let k = kernel(&m);
    let odd = m.path("bad\nname\x1b[31m");
    std::fs::write(&odd, b"").unwrap();
    let odd = odd.to_str().unwrap();
    table(
        &m,
        "a kernel named with control characters",
        &[odd],
        all(Refused("bad\\nname\\u{1b}[31m: not a kernel this loader knows")),
    );
    table(&m, "an initrd named so", &[&k, "--initrd", odd], all(Refused("bad\\nname\\u{1b}[31m: the initrd is empty")));
    let missing = format!("{}/gone\r\tx", m.root.display());
    table(&m, "a missing initrd named so", &[&k, "--initrd", &missing], all(Refused("gone\\r\\tx: No such file")));
}

#[test]
fn class11_mem_min_and_mem_max_failures_name_the_window() {
    let m = Machine::arm64("window");
    let k = kernel(&m);
    table(
        &m,
        "a window too small for the kernel",
        &[&k, "--mem-min", "0x40000000", "--mem-max", "0x402fffff"],
        [
            Refused("--mem-min/--mem-max restrict every segment to 0x40000000-0x402fffff"),
            Refused("--mem-min/--mem-max restrict every segment to 0x40000000-0x402fffff"),
            Refused("--mem-min/--mem-max restrict every segment to 0x40000000-0x402fffff"),
            // kexec_file_load places its segments itself: noted, ignored.
            Planned,
            Planned,
        ],
    );
}

#[test]
fn class11_a_thousand_initrds_need_no_thousand_descriptors() {
    let m = Machine::arm64("many");
    let k = kernel(&m);
    let mut args = vec![k.clone(), "--json".to_string()];
    let mut total = 0u64;
    for i in 0..1100 {
        let bytes = vec![(i % 251) as u8; 100 + i % 7];
        total += bytes.len() as u64;
        args.push(format!("--initrd={}", m.write(&format!("initrds/{i:04}"), bytes)));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    // 1024 descriptors, as a default `ulimit -n`.
    let runs = m.every_path_with(&argv, &[], Some(1024));
    for (how, r) in &runs {
        check("1100 initrds", how, r, Planned);
        let v = json(r);
        let bytes = if how.starts_with("-s") {
            v["initrd"]["bytes"].as_u64()
        } else {
            v["segments"].as_array().unwrap().iter().find(|s| s["kind"] == "initrd").and_then(|s| s["bufsz"].as_u64())
        };
        assert_eq!(bytes, Some(total), "{how}: every initrd, concatenated");
    }
}
