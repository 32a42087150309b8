//! Every caller's exact argv (/work/notes/callers-findings.md §1.9, each
//! cited from the caller's source there), run through the real `rkexec`
//! binary against fixture /proc and /sys trees, checked for what
//! kexec-tools would do: exit status, the action taken, the command line
//! and initrd handed over. No system call is made: every run sets the
//! hidden test seam RKEXEC_TEST_NO_SYSCALLS=1, under which the binary
//! prints "rkexec: would ..." for each privileged action instead, and
//! plans are read from `--dry-run --json`.

mod common;
use common::{bzimage, pe};
use std::path::Path;
use std::process::{Command, Output};

/// A /proc + /sys tree for one test.
struct Tree(common::Scratch);

impl std::ops::Deref for Tree {
    type Target = common::Scratch;
    fn deref(&self) -> &common::Scratch {
        &self.0
    }
}

const RUNNING_CMDLINE: &str =
    "BOOT_IMAGE=/boot/vmlinuz-6.1.0-57-cloud-amd64 root=/dev/vda1 ro console=ttyS0,115200 crashkernel=256M quiet";

impl Tree {
    fn new(name: &str) -> Tree {
        let s = common::Scratch::new("callers", name);
        Tree(s)
    }

    /// A PC with a crashkernel= reservation, nothing loaded.
    fn x86(name: &str) -> Tree {
        let t = Tree::new(name);
        t.write("proc/iomem", common::X86_IOMEM);
        t.write("proc/cmdline", format!("{RUNNING_CMDLINE}\n"));
        t.loaded(0, 0);
        for cpu in 0..2 {
            t.write(format!("sys/devices/system/cpu/cpu{cpu}/crash_notes"), format!("7fa00{cpu}000\n"));
            t.write(format!("sys/devices/system/cpu/cpu{cpu}/crash_notes_size"), "432\n");
        }
        t.write("sys/kernel/vmcoreinfo", "4f0b1000 1000\n");
        t
    }

    /// QEMU virt arm64 (the checked-in fixture) with nothing loaded.
    fn arm64(name: &str) -> Tree {
        let t = Tree::new(name);
        let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/virt-arm64");
        for rel in ["proc/iomem", "proc/cmdline", "sys/firmware/fdt", "sys/devices/system/memory/block_size_bytes"] {
            t.write(rel, std::fs::read(fx.join(rel)).unwrap());
        }
        t.loaded(0, 0);
        t
    }

    fn loaded(&self, normal: u8, crash: u8) {
        self.write("sys/kernel/kexec_loaded", format!("{normal}\n"));
        self.write("sys/kernel/kexec_crash_loaded", format!("{crash}\n"));
    }

    fn path(&self, rel: &str) -> String {
        self.root.join(rel).to_str().unwrap().to_string()
    }

    /// rkexec ARGV with the seam on and this tree as /proc and /sys.
    fn run(&self, argv: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rkexec"))
            .args(["--proc-root", &self.path("proc"), "--sys-root", &self.path("sys")])
            .args(argv)
            .env("RKEXEC_TEST_NO_SYSCALLS", "1")
            .output()
            .expect("run rkexec")
    }

    /// The plan of ARGV (its --dry-run --json).
    fn plan(&self, argv: &[&str]) -> serde_json::Value {
        let mut v = argv.to_vec();
        v.extend(["--dry-run", "--json"]);
        let o = self.run(&v);
        assert!(o.status.success(), "{argv:?}: {}", err(&o));
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{argv:?}: {e}: {}", out(&o)))
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

/// The "rkexec: would ..." lines, in order.
fn woulds(o: &Output) -> Vec<String> {
    err(o).lines().filter_map(|l| l.strip_prefix("rkexec: would ")).map(str::to_string).collect()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

// ---- synthetic kernels ---------------------------------------------------

/// An x86_64 vmlinux: one PT_LOAD at 16 MiB, entered there.
fn vmlinux() -> Vec<u8> {
    let mut f = vec![0u8; 0x1000];
    f[..4].copy_from_slice(b"\x7fELF");
    (f[4], f[5], f[6]) = (2, 1, 1);
    f[16..18].copy_from_slice(&2u16.to_le_bytes());
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[24..32].copy_from_slice(&0x100_0000u64.to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&1u16.to_le_bytes());
    let p = 64;
    f[p..p + 4].copy_from_slice(&1u32.to_le_bytes());
    for (o, v) in [(8, 0x1000u64), (16, 0xffff_ffff_8100_0000), (24, 0x100_0000), (32, 0x3000), (40, 0x80_0000)] {
        f[p + o..p + o + 8].copy_from_slice(&v.to_le_bytes());
    }
    f.extend(std::iter::repeat_n(0x90u8, 0x3000));
    f
}

/// A minimal arm64 Image (booting.rst header, 4K pages, anywhere).
fn arm64_image(body: usize) -> Vec<u8> {
    let mut img = vec![0u8; 64 + body];
    img[16..24].copy_from_slice(&(4u64 << 20).to_le_bytes());
    img[24..32].copy_from_slice(&0b1010u64.to_le_bytes());
    img[0x38..0x3c].copy_from_slice(b"ARM\x64");
    img
}

fn cmdline_of(plan: &serde_json::Value) -> &str {
    plan["cmdline"].as_str().unwrap()
}

fn kinds(plan: &serde_json::Value) -> Vec<&str> {
    plan["segments"].as_array().unwrap().iter().map(|s| s["kind"].as_str().unwrap()).collect()
}

// ---- §1.1 systemd ---------------------------------------------------------

#[test]
fn systemd_load_with_empty_append_then_exec() {
    let t = Tree::x86("systemd-empty");
    let k = t.write("boot/vmlinuz", bzimage(40_000));
    // systemctl kexec: `--append` and its value always, "" without options.
    let argv = ["--load", k.to_str().unwrap(), "--append", ""];
    let o = t.run(&argv);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let w = woulds(&o);
    assert!(w[0].starts_with("kexec_load: 3 segments"), "kernel, boot_params, purgatory: {w:?}");
    assert_eq!(w[1], "sync file systems", "-l syncs after loading (kexec-tools do_sync)");
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(cmdline_of(&t.plan(&argv)), "", "an empty --append is an empty command line");
    // systemd-shutdown: `kexec -e` once something is loaded.
    t.loaded(1, 0);
    let o = t.run(&["-e"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(woulds(&o), ["sync file systems", "bring network interfaces down", "reboot(LINUX_REBOOT_CMD_KEXEC)"]);
}

#[test]
fn systemd_load_with_options_and_initrd() {
    let t = Tree::x86("systemd-initrd");
    let k = t.write("boot/vmlinuz", bzimage(40_000));
    let i = t.write("boot/initrd.img", vec![7u8; 30_000]);
    // An option value that starts with '-' is the value (separate word).
    let argv = ["--load", k.to_str().unwrap(), "--append", "-- root=/dev/vda1 quiet", "--initrd", i.to_str().unwrap()];
    let o = t.run(&argv);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let p = t.plan(&argv);
    assert_eq!(cmdline_of(&p), "-- root=/dev/vda1 quiet");
    assert_eq!(kinds(&p), ["kernel", "initrd", "boot-params", "purgatory"]);
    assert_eq!(p["segments"][1]["bufsz"], 30_000);
}

#[test]
fn systemd_loads_a_uki_with_its_own_cmdline_as_append() {
    let t = Tree::x86("systemd-uki");
    let uki = pe(
        0x8664,
        &[
            (".text", b"stub"),
            (".cmdline", b"root=/dev/vda1 rw\n"),
            (".linux", &bzimage(20_000)),
            (".initrd", &[3u8; 5000]),
        ],
    );
    let efi = t.write("efi/EFI/Linux/debian.efi", uki);
    // systemd passes the UKI and its .cmdline as --append, no --initrd.
    let argv = ["--load", efi.to_str().unwrap(), "--append", "root=/dev/vda1 rw"];
    let o = t.run(&argv);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let p = t.plan(&argv);
    assert_eq!(p["kernel"]["format"], "UKI (bzImage)");
    assert_eq!(cmdline_of(&p), "root=/dev/vda1 rw");
    assert_eq!(kinds(&p), ["kernel", "initrd", "boot-params", "purgatory"], "the UKI's .initrd is the initrd");
    assert_eq!(p["segments"][1]["bufsz"], 5000);
    // Without --append, .cmdline is the command line.
    let p = t.plan(&["--load", efi.to_str().unwrap()]);
    assert_eq!(cmdline_of(&p), "root=/dev/vda1 rw");
}

#[test]
fn exec_with_nothing_loaded_dies() {
    let t = Tree::x86("exec-nothing");
    let o = t.run(&["-e"]);
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("Nothing has been loaded!"), "{}", err(&o));
    assert!(woulds(&o).is_empty(), "no reboot attempted");
}

// ---- §1.2 Fedora kdump-utils, §1.3 Debian kdump-tools ----------------------

#[test]
fn kdump_utils_secure_boot_double_s_crash_load() {
    let t = Tree::x86("kdump-utils");
    let k = t.write("boot/vmlinuz-6.1", bzimage(40_000));
    let i = t.write("boot/initramfs-6.1kdump.img", vec![1u8; 9000]);
    let cmd = "ro console=ttyS0,115200 irqpoll nr_cpus=1 reset_devices disable_cpu_apicid=0";
    let ci = format!("--command-line={cmd}");
    let ii = format!("--initrd={}", i.display());
    // KEXEC_ARGS="-s", Secure Boot adds another -s.
    let argv = ["-s", "-s", "-p", ci.as_str(), ii.as_str(), k.to_str().unwrap()];
    let o = t.run(&argv);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let w = woulds(&o);
    assert_eq!(w.len(), 1, "-p does not sync: {w:?}");
    assert_eq!(
        w[0],
        format!(
            "kexec_file_load: kernel {}, initrd {}, cmdline {cmd:?} ({} bytes with the NUL), flags 0x2",
            k.display(),
            i.display(),
            cmd.len() + 1
        )
    );
    // --dry-run with -s shows that call.
    let p = t.plan(&argv);
    assert_eq!(p["schema"], "rkexec-file-plan/1");
    assert_eq!((p["kind"].as_str(), p["flags"].as_u64()), (Some("crash"), Some(2)));
    assert_eq!(p["kernel"]["fd"]["fd"], "file");
    // Unload, with and without -s; nothing loaded is fine (reload).
    for argv in [&["-p", "-u"][..], &["-s", "-p", "-u"][..]] {
        let o = t.run(argv);
        assert_eq!(code(&o), 0, "{argv:?}: {}", err(&o));
        let call = if argv[0] == "-s" { "kexec_file_load(KEXEC_FILE_UNLOAD)" } else { "kexec_load(unload)" };
        assert_eq!(woulds(&o), [format!("unload the crash kernel with {call}")]);
    }
}

#[test]
fn kdump_utils_crash_loads_a_uki_with_its_kdump_initrd() {
    let t = Tree::x86("kdump-uki");
    let uki = pe(0x8664, &[(".linux", &bzimage(20_000)), (".initrd", &[3u8; 5001]), (".cmdline", b"quiet")]);
    let efi = t.write("efi/EFI/Linux/m-6.1.efi", uki);
    let i = t.write("kdump.img", vec![9u8; 100]);
    let ii = format!("--initrd={}", i.display());
    let argv = ["-s", "-p", "--command-line=irqpoll", ii.as_str(), efi.to_str().unwrap()];
    let p = t.plan(&argv);
    assert_eq!(p["kernel"]["format"], "UKI (bzImage)");
    assert_eq!(p["kernel"]["fd"]["fd"], "memfd", ".linux in a memfd");
    assert_eq!(p["kernel"]["fd"]["bytes"], bzimage(20_000).len());
    // issue 21 item 2: --initrd replaces the UKI's .initrd, as in
    // kexec-tools (kexec-bzImage64.c bzImage64_load_file uses the UKI's
    // implicit_initrd_fd only without --initrd): the kdump initrd alone,
    // handed over as the file itself.
    assert_eq!(p["initrd"]["bytes"], 100, "{p}");
    assert_eq!(p["initrd"]["fd"], "file", "{p}");
    assert!(p["notes"].to_string().contains("--initrd replaces the UKI's .initrd"), "{p}");
    assert_eq!(p["cmdline"], "irqpoll");
    let o = t.run(&argv);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(woulds(&o)[0].contains(&format!("initrd {},", i.display())), "{:?}", woulds(&o));
    // The same on the kexec_load path: one initrd segment, kdump.img's bytes.
    let argv = ["-p", "--command-line=irqpoll", ii.as_str(), efi.to_str().unwrap()];
    let p = t.plan(&argv);
    assert_eq!(kinds(&p), ["kernel", "initrd", "elfcorehdr", "boot-params", "purgatory"]);
    assert_eq!(p["segments"][1]["bufsz"], 100, "{p}");
    // Without --initrd the UKI's own .initrd is the initrd (systemd-stub).
    let p = t.plan(&["-p", "--command-line=irqpoll", efi.to_str().unwrap()]);
    assert_eq!(p["segments"][1]["bufsz"], 5001, "{p}");
}

#[test]
fn kdump_tools_elf_kernel_with_args_linux() {
    let t = Tree::x86("kdump-tools");
    // A vmlinux linked at 16 MiB needs the reservation there (crashkernel=X@16M).
    t.write(
        "proc/iomem",
        common::X86_IOMEM.replace("a0000000-afffffff : Crash kernel", "01000000-10ffffff : Crash kernel"),
    );
    let k = t.write("var/lib/kdump/vmlinuz", vmlinux());
    let i = t.write("var/lib/kdump/initrd.img", vec![1u8; 2000]);
    let cl = " reset_devices systemd.unit=kdump-tools-dump.service nr_cpus=1 irqpoll usbcore.nousb";
    let ci = format!("--command-line={cl}");
    let ii = format!("--initrd={}", i.display());
    let argv = ["-p", "--args-linux", ci.as_str(), ii.as_str(), k.to_str().unwrap()];
    let o = t.run(&argv);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let p = t.plan(&argv);
    assert_eq!(p["kernel"]["format"], "vmlinux ELF");
    assert_eq!(p["kernel_entry"], 0x100_0000);
    assert_eq!(kinds(&p), ["kernel", "initrd", "elfcorehdr", "boot-params", "purgatory"]);
    assert!(cmdline_of(&p).ends_with(cl), "kdump-tools' command line kept byte for byte: {:?}", p["cmdline"]);
    // With -s (Secure Boot): kexec_file_load takes no ELF; refused before the call.
    let mut s = vec!["-s"];
    s.extend(argv);
    let o = t.run(&s);
    assert_eq!(code(&o), 255);
    assert!(err(&o).contains("not a vmlinux ELF"), "{}", err(&o));
    assert!(woulds(&o).is_empty());
}

#[test]
fn crash_load_without_reservation_dies_like_kexec_tools() {
    let t = Tree::x86("no-crash");
    t.write("proc/iomem", common::X86_IOMEM.replace("  a0000000-afffffff : Crash kernel\n", ""));
    let k = t.write("vmlinuz", bzimage(1000));
    let o = t.run(&["-p", k.to_str().unwrap(), "--command-line=x"]);
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("Memory for crashkernel is not reserved"), "{}", err(&o));
}

// ---- §1.4 Debian kexec-tools scripts --------------------------------------

#[test]
fn debian_kexec_load_keeps_boot_image_in_append() {
    let t = Tree::x86("debian");
    let k = t.write("vmlinuz", bzimage(40_000));
    let i = t.write("initrd.img", vec![1u8; 100]);
    // REAL_APPEND="$(cat /proc/cmdline)": BOOT_IMAGE= stays (kexec-tools
    // does not touch --append).
    let ap = format!("--append={RUNNING_CMDLINE}");
    let ii = format!("--initrd={}", i.display());
    for argv in
        [vec!["-l", k.to_str().unwrap(), ap.as_str()], vec!["-l", k.to_str().unwrap(), ii.as_str(), ap.as_str()]]
    {
        let o = t.run(&argv);
        assert_eq!(code(&o), 0, "{}", err(&o));
        assert_eq!(cmdline_of(&t.plan(&argv)), RUNNING_CMDLINE);
    }
    t.loaded(1, 0);
    assert_eq!(code(&t.run(&["-e"])), 0);
}

// ---- §1.5 petitboot -----------------------------------------------------------

#[test]
fn petitboot_load_with_dtb_then_s_retry_then_exec() {
    let t = Tree::arm64("petitboot");
    let k = t.write("var/petitboot/Image", arm64_image(100_000));
    let d = t.write("var/petitboot/board.dtb", std::fs::read(t.root.join("sys/firmware/fdt")).unwrap());
    let i = t.write("var/petitboot/initrd", vec![1u8; 500]);
    let (ii, dd) = (format!("--initrd={}", i.display()), format!("--dtb={}", d.display()));
    // No boot args: petitboot passes the two characters "" (no shell).
    let argv = ["-l", "--debug", ii.as_str(), dd.as_str(), "--append=\"\"", k.to_str().unwrap()];
    let o = t.run(&argv);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let p = t.plan(&argv);
    assert_eq!(cmdline_of(&p), "\"\"", "the literal two quote characters, as kexec-tools passes them");
    // The -s retry keeps --dtb: not fatal, noted.
    let mut s = argv.to_vec();
    s[0] = "-s";
    let o = t.run(&s);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(err(&o).contains("note: --dtb is ignored"), "{}", err(&o));
    assert!(woulds(&o)[0].starts_with("kexec_file_load: kernel "), "{:?}", woulds(&o));
    // Then kexec -e; -e -f is "-f wins": a load with no kernel, as kexec-tools.
    t.loaded(1, 0);
    assert_eq!(code(&t.run(&["-e"])), 0);
    let o = t.run(&["-e", "-f"]);
    assert_eq!(code(&o), 255);
    assert!(err(&o).contains("No kernel specified"), "{}", err(&o));
    // -f -e is -e.
    assert_eq!(code(&t.run(&["-f", "-e"])), 0);
}

// ---- §1.6 NixOS -------------------------------------------------------------------

#[test]
fn nixos_prepare_kexec_netboot_and_installer() {
    let t = Tree::x86("nixos");
    let k = t.write("p/kernel", bzimage(40_000));
    let i = t.write("p/initrd", vec![2u8; 1000]);
    let ii = format!("--initrd={}", i.display());
    // prepare-kexec.service
    let argv = ["--load", k.to_str().unwrap(), ii.as_str(), "--append=loglevel=4 init=/nix/store/x/init"];
    assert_eq!(code(&t.run(&argv)), 0);
    assert_eq!(cmdline_of(&t.plan(&argv)), "loglevel=4 init=/nix/store/x/init");
    // netboot kexec-boot: the probe, then --command-line as two words.
    let o = t.run(&["-v"]);
    assert_eq!(code(&o), 0);
    assert!(out(&o).starts_with("rkexec "), "{}", out(&o));
    let argv = ["--load", k.to_str().unwrap(), ii.as_str(), "--command-line", "init=/nix/store/y/init loglevel=4"];
    assert_eq!(cmdline_of(&t.plan(&argv)), "init=/nix/store/y/init loglevel=4");
    // nixos-images kexec-run.sh
    let argv = [
        "--load",
        k.to_str().unwrap(),
        "--kexec-syscall-auto",
        ii.as_str(),
        "--no-checks",
        "--command-line",
        "init=/nix/store/z/init",
    ];
    let o = t.run(&argv);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let p = t.plan(&argv);
    assert_eq!(p["purgatory"]["verify"], false, "--no-checks");
    // crashdump.nix: x86 VGA options accepted, each with a note.
    let argv = [
        "-p",
        k.to_str().unwrap(),
        ii.as_str(),
        "--reset-vga",
        "--console-vga",
        "--command-line=init=/nix/store/w/init irqpoll maxcpus=1 reset_devices",
    ];
    let o = t.run(&argv);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(err(&o).contains("note: --console-vga") && err(&o).contains("note: --reset-vga"), "{}", err(&o));
    assert!(woulds(&o)[0].contains("flags 0x3e0001"), "kexec_load with KEXEC_ON_CRASH: {:?}", woulds(&o));
}

// ---- §1.7 LTP ima_kexec ---------------------------------------------------------

#[test]
fn ltp_reuse_cmdline_append_command_line_and_su() {
    let t = Tree::x86("ltp");
    let k = t.write("boot/vmlinuz-6.1", bzimage(40_000));
    let o = t.run(&["-h"]);
    assert_eq!(code(&o), 0);
    assert!(out(&o).contains("reuse-cmdline"), "LTP greps -h for it");
    // The measured command line: /proc/cmdline minus "BOOT_IMAGE=... ", exactly.
    let expected = RUNNING_CMDLINE.replacen("BOOT_IMAGE=/boot/vmlinuz-6.1.0-57-cloud-amd64 ", "", 1);
    for (opt, want) in [("--reuse-cmdline", expected.as_str()), ("--append=foo", "foo"), ("--command-line=bar", "bar")]
    {
        let argv = ["-s", "-l", k.to_str().unwrap(), opt];
        let o = t.run(&argv);
        assert_eq!(code(&o), 0, "{}", err(&o));
        let w = woulds(&o);
        assert!(w[0].contains(&format!("cmdline {want:?} ({} bytes with the NUL)", want.len() + 1)), "{w:?}");
        assert_eq!(t.plan(&argv)["cmdline"], want);
        let o = t.run(&["-su"]);
        assert_eq!(code(&o), 0);
        assert_eq!(woulds(&o), ["unload the kexec kernel with kexec_file_load(KEXEC_FILE_UNLOAD)"]);
    }
    // The kexec_load path drops BOOT_IMAGE the same way.
    assert_eq!(cmdline_of(&t.plan(&["-l", k.to_str().unwrap(), "--reuse-cmdline"])), expected);
    // -p also drops crashkernel=.
    let p = t.plan(&["-s", "-p", k.to_str().unwrap(), "--reuse-cmdline", "--append=irqpoll"]);
    assert_eq!(p["cmdline"], "root=/dev/vda1 ro console=ttyS0,115200 quiet irqpoll");
}

/// The kernel's kexec_file bzImage loader refuses a line whose length
/// with its NUL, plus 30 bytes for `elfcorehdr=`, passes cmdline_size
/// (arch/x86/kernel/kexec-bzimage64.c): `-s` refuses it before the call;
/// kexec_load takes up to cmdline_size (boot.rst).
#[test]
fn x86_kexec_file_command_line_limit_is_the_kernels() {
    let t = Tree::x86("x86-s-cmdline");
    let k = t.write("boot/vmlinuz", bzimage(40_000));
    let k = k.to_str().unwrap();
    let line = |n: usize| format!("--command-line={}", "x".repeat(n));
    let o = t.run(&["-s", "-l", k, &line(2047 - 31)]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let o = t.run(&["-s", "-l", k, &line(2047 - 30)]);
    assert_eq!(code(&o), 255);
    assert!(err(&o).contains("the command line is 2017 bytes; kexec_file_load's bzImage loader"), "{}", err(&o));
    assert!(woulds(&o).is_empty(), "{:?}", woulds(&o));
    let o = t.run(&["-l", k, &line(2047)]);
    assert_eq!(code(&o), 0, "{}", err(&o));
}

// ---- §1.8 openSUSE, kernel selftests, plain `kexec K` ------------------------------

#[test]
fn opensuse_kernel_first_and_dash_a_last() {
    let t = Tree::x86("opensuse");
    let k = t.write("boot/vmlinuz", bzimage(40_000));
    let i = t.write("boot/initrd-kdump", vec![1u8; 100]);
    let ii = format!("--initrd={}", i.display());
    let argv = ["-p", k.to_str().unwrap(), "--append=irqpoll nr_cpus=1", ii.as_str(), "-a"];
    let o = t.run(&argv);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(
        cmdline_of(&t.plan(&argv)),
        format!("elfcorehdr={:#x} irqpoll nr_cpus=1", t.plan(&argv)["elfcorehdr"]["addr"].as_u64().unwrap())
    );
    assert_eq!(code(&t.run(&["-a", "-p", "-u"])), 0);
}

#[test]
fn kernel_selftest_options_after_the_kernel() {
    let t = Tree::x86("selftest");
    let k = t.write("boot/bzImage", bzimage(40_000));
    let i = t.write("initramfs", vec![1u8; 100]);
    let ii = format!("--initrd={}", i.display());
    let argv = ["-l", "-s", "--reuse-cmdline", k.to_str().unwrap(), ii.as_str()];
    let o = t.run(&argv);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(woulds(&o)[0].contains(&format!("initrd {}", i.display())), "{:?}", woulds(&o));
}

#[test]
fn plain_kexec_kernel_loads_then_runs_shutdown() {
    let t = Tree::x86("shutdown");
    let k = t.write("vmlinuz", bzimage(40_000));
    let o = t.run(&[k.to_str().unwrap(), "--append=quiet"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let w = woulds(&o);
    assert!(w[0].starts_with("kexec_load:"), "{w:?}");
    assert_eq!(w[1], "exec /sbin/shutdown -r now", "a clean shutdown, never a direct reboot");
    assert_eq!(w.len(), 2, "nothing after shutdown: {w:?}");
    // -f: load and boot at once, no shutdown.
    let o = t.run(&["-f", k.to_str().unwrap(), "--append=quiet"]);
    let w = woulds(&o);
    assert_eq!(w[1..], ["sync file systems", "bring network interfaces down", "reboot(LINUX_REBOOT_CMD_KEXEC)"]);
    // -f -y -x: no sync, no ifdown.
    let o = t.run(&["-fyx", k.to_str().unwrap()]);
    assert_eq!(woulds(&o)[1..], ["reboot(LINUX_REBOOT_CMD_KEXEC)"]);
}

// ---- -S, usage errors, options ------------------------------------------------------

#[test]
fn status_exit_codes_follow_kexec_tools() {
    let t = Tree::x86("status");
    let st = |argv: &[&str]| {
        let o = t.run(argv);
        assert!(o.stdout.is_empty() && err(&o).is_empty(), "-S is silent");
        code(&o)
    };
    t.loaded(0, 1);
    assert_eq!((st(&["-S"]), st(&["-S", "-l"]), st(&["-l", "-S"]), st(&["-p", "-S"])), (1, 0, 0, 1));
    t.loaded(1, 0);
    assert_eq!((st(&["-S"]), st(&["-S", "-l"]), st(&["-s", "-S"]), st(&["-S", "-d"])), (0, 1, 0, 0));
    t.write("sys/kernel/kexec_loaded", "garbage\n");
    assert_eq!(st(&["-S", "-l"]), 255);
}

#[test]
fn usage_errors_exit_1_with_getopt_messages() {
    let t = Tree::x86("usage");
    for (argv, msg) in [
        (&["--bogus"][..], "unrecognized option '--bogus'"),
        (&["--load-p"][..], "option '--load-p' is ambiguous; possibilities: '--load-preserve-context' '--load-panic'"),
        (&["--status=1"][..], "option '--status' doesn't allow an argument"),
        (&["--mem-max=12k"][..], "Bad option value in --mem-max=12k"),
        (&["--entry=zz"][..], "Bad option value in --entry=zz"),
        (&["-t"][..], "option requires an argument -- 't'"),
    ] {
        let o = t.run(argv);
        assert_eq!(code(&o), 1, "{argv:?}");
        assert!(err(&o).contains(msg), "{argv:?}: {}", err(&o));
        assert!(out(&o).contains("Usage:"), "usage on stdout");
    }
    let o = t.run(&["-?"]);
    assert_eq!(code(&o), 1);
    // -h before a bad option wins; after it, the error does.
    assert_eq!(code(&t.run(&["--help", "--bogus"])), 0);
    assert_eq!(code(&t.run(&["--bogus", "--help"])), 1);
    // Unambiguous prefixes and the exact name.
    let o = t.run(&["--vers"]);
    assert_eq!(code(&o), 0);
    assert!(out(&o).starts_with("rkexec "));
    // Unload with nothing loaded is fine (kdump reload paths).
    assert_eq!(code(&t.run(&["-u"])), 0);
}

#[test]
fn every_kexec_tools_option_is_accepted() {
    let t = Tree::x86("all-options");
    let k = t.write("vmlinuz", bzimage(40_000));
    let ks = k.to_str().unwrap();
    for opt in [
        "-i",
        "-x",
        "-y",
        "-d",
        "--mem-min=0x1000000",
        "--mem-max=0xbfffffff",
        "--entry=0x1000",
        "--type=bzImage64",
        "--serial=ttyS0",
        "--serial=0x3f8",
        "--serial-baud=115200",
        "--console-vga",
        "--console-serial",
        "--reset-vga",
        "--elf32-core-headers",
        "--elf64-core-headers",
        "--pass-memmap-cmdline",
        "--noefi",
        "--reuse-video-type",
        "--args-linux",
        "--args-elf",
        "--args-none",
        "--module=mod",
        "--real-mode",
        "--entry-32bit",
        "--no-cma",
        "--force-dtb",
        "--ramdisk=/dev/null",
        "--command-line=x",
        "--reuse-cmdline",
        "--kexec-syscall",
    ] {
        let o = t.run(&["-l", ks, opt]);
        // --ramdisk=/dev/null: not a regular file, refused by name (not a usage error).
        let want = if opt.starts_with("--ramdisk") { 255 } else { 0 };
        assert_eq!(code(&o), want, "{opt}: {}", err(&o));
    }
    // --print-ckr-size: the crash region's size in decimal.
    let o = t.run(&["--print-ckr-size"]);
    assert_eq!((code(&o), out(&o).trim()), (0, "268435456"));
    // Bad x86 serial values: kexec-tools' messages, nothing loaded.
    let o = t.run(&["-l", ks, "--serial-baud=1234"]);
    assert_eq!(code(&o), 255);
    assert!(err(&o).contains("Bad serial port baud rate '1234'") && woulds(&o).is_empty());
    // Not supported: refused with the reason.
    for opt in ["--load-preserve-context", "--load-jump-back-helper", "--load-live-update", "--exec-live-update"] {
        let o = t.run(&[opt, ks]);
        assert_eq!(code(&o), 1, "{opt}: {}", err(&o));
        assert!(woulds(&o).is_empty());
    }
    let o = t.run(&["-l", ks, "--reuseinitrd"]);
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("didn't retain the initrd"), "{}", err(&o));
}

#[test]
fn type_option_selects_the_format() {
    let t = Tree::x86("type");
    let k = t.write("vmlinuz", bzimage(4000));
    assert_eq!(t.plan(&["-l", k.to_str().unwrap(), "-t", "bzImage64"])["kernel"]["format"], "bzImage");
    let o = t.run(&["-l", k.to_str().unwrap(), "-telf-x86_64"]);
    assert_eq!(code(&o), 255);
    assert!(err(&o).contains("--type elf-x86_64: the file is not of that type"), "{}", err(&o));
    let o = t.run(&["-l", k.to_str().unwrap(), "--type=multiboot-x86"]);
    assert!(err(&o).contains("multiboot kernels are not supported"), "{}", err(&o));
}

// ---- issue 21: the differences that broke callers -------------------------------------

impl Tree {
    /// rkexec ARGV as `run`, with more environment (the test seam's knobs).
    fn run_env(&self, argv: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rkexec"))
            .args(["--proc-root", &self.path("proc"), "--sys-root", &self.path("sys")])
            .args(argv)
            .env("RKEXEC_TEST_NO_SYSCALLS", "1")
            .envs(env.iter().copied())
            .output()
            .expect("run rkexec")
    }

    /// The binary invoked as `kexec` (a link named kexec, as /sbin/kexec
    /// is), in the tree's directory.
    fn run_as_kexec(&self, argv: &[&str]) -> Output {
        let link = self.root.join("bin/kexec");
        if !link.exists() {
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rkexec"), &link).unwrap();
        }
        Command::new(&link)
            .args(["--proc-root", &self.path("proc"), "--sys-root", &self.path("sys")])
            .args(argv)
            .current_dir(&self.root)
            .env("RKEXEC_TEST_NO_SYSCALLS", "1")
            .output()
            .expect("run kexec")
    }
}

/// The "rkexec: note: ..." lines.
fn notes(o: &Output) -> Vec<String> {
    err(o).lines().filter_map(|l| l.strip_prefix("rkexec: note: ")).map(str::to_string).collect()
}

const REFUSE: &str = "RKEXEC_TEST_REFUSE_KEXEC_LOAD";
const IMA_FALLBACK: &str = "kexec_load refused by IMA or another security module (EACCES); falling back to \
                            kexec_file_load (the kernel loads and verifies the image; our purgatory is not used)";

/// Item 1: with an IMA appraise rule for KEXEC_KERNEL_CHECK (or KEXEC_SIG
/// under Secure Boot) kexec_load, and its unload, fail with EACCES
/// (security/integrity/ima/ima_main.c ima_load_data). kexec-tools >= 2.0.27
/// tries kexec_file_load first; rkexec's auto mode falls back to it, says
/// so in one line, and the callers' argv work.
#[test]
fn ima_refusing_kexec_load_falls_back_to_kexec_file_load() {
    let t = Tree::x86("ima");
    let k = t.write("boot/vmlinuz", bzimage(40_000));
    let i = t.write("boot/initrd.img", vec![7u8; 3000]);
    let (ks, is) = (k.to_str().unwrap(), i.to_str().unwrap());
    let eacces = [(REFUSE, "EACCES")];
    // systemctl kexec (§1.1) and Debian's kexec-load (§1.4).
    let debian_append = format!("--append={RUNNING_CMDLINE}");
    let debian_initrd = format!("--initrd={is}");
    for (argv, cmdline) in [
        (vec!["--load", ks, "--append", "root=/dev/vda1 quiet", "--initrd", is], "root=/dev/vda1 quiet"),
        (vec!["-l", ks, debian_initrd.as_str(), debian_append.as_str()], RUNNING_CMDLINE),
    ] {
        let o = t.run_env(&argv, &eacces);
        assert_eq!(code(&o), 0, "{argv:?}: {}", err(&o));
        let w = woulds(&o);
        assert!(w[0].starts_with("kexec_load: 4 segments"), "{w:?}");
        assert!(w[1].starts_with("be refused: kexec_load failed: Permission denied"), "{w:?}");
        assert_eq!(
            w[2],
            format!(
                "kexec_file_load: kernel {ks}, initrd {is}, cmdline {cmdline:?} ({} bytes with the NUL), flags 0x0",
                cmdline.len() + 1
            )
        );
        assert_eq!(w[3..], ["sync file systems"]);
        assert_eq!(notes(&o), [IMA_FALLBACK], "one line says so");
    }
    // kdump-tools' and kdump-utils' reload: `kexec -p -u`, then the load.
    let o = t.run_env(&["-p", "-u"], &eacces);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let w = woulds(&o);
    assert_eq!(w[0], "unload the crash kernel with kexec_load(unload)");
    assert!(w[1].starts_with("be refused: kexec_load (unload) failed: Permission denied"), "{w:?}");
    assert_eq!(w[2..], ["unload the crash kernel with kexec_file_load(KEXEC_FILE_UNLOAD)"]);
    assert_eq!(
        notes(&o),
        ["kexec_load refused by IMA or another security module (EACCES); unloading with kexec_file_load"]
    );
    let o = t.run_env(&["-p", ks, "--command-line=irqpoll nr_cpus=1", &debian_initrd], &eacces);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(woulds(&o)[2].ends_with("flags 0x2"), "KEXEC_FILE_ON_CRASH: {:?}", woulds(&o));
    // -c is kexec_load only: the refusal stands, explained (exit 255).
    let o = t.run_env(&["-c", "-l", ks], &eacces);
    assert_eq!(code(&o), 255);
    assert!(err(&o).contains("ima_load_data") && err(&o).contains("kexec_file_load (-s)"), "{}", err(&o));
    assert!(woulds(&o).iter().all(|w| !w.starts_with("kexec_file_load")), "{:?}", woulds(&o));
    // EPERM without lockdown (LoadPin, kexec_load_disabled) and ENOSYS (no
    // CONFIG_KEXEC) fall back too; kexec_file_load then decides.
    for (errno, why) in [
        ("EPERM", "kexec_load refused (EPERM: a security module, kexec_load_disabled or no CAP_SYS_BOOT)"),
        ("ENOSYS", "kexec_load is not in this kernel (ENOSYS)"),
    ] {
        let o = t.run_env(&["-l", ks, "--append=x"], &[(REFUSE, errno)]);
        assert_eq!(code(&o), 0, "{errno}: {}", err(&o));
        assert!(notes(&o)[0].starts_with(&format!("{why}; falling back to kexec_file_load")), "{:?}", notes(&o));
    }
    // Lockdown keeps its own words (the x86-lockdown guest cell reads them).
    t.write("sys/kernel/security/lockdown", "none [integrity] confidentiality\n");
    let o = t.run_env(&["-l", ks, "--append=x"], &[(REFUSE, "EPERM")]);
    assert!(notes(&o)[0].starts_with("kexec_load refused by kernel lockdown; falling back to kexec_file_load"));
}

/// Item 4: as `kexec` (argv[0]), argv is kexec-tools' only: files called
/// `plan` and `purgatory` are kernels; as rkexec both words stay commands.
#[test]
fn invoked_as_kexec_plan_and_purgatory_are_file_names() {
    let t = Tree::x86("as-kexec");
    t.write("plan", bzimage(40_000));
    t.write("purgatory", bzimage(30_000));
    for name in ["plan", "purgatory"] {
        let o = t.run_as_kexec(&["-l", name, "--append=quiet"]);
        assert_eq!(code(&o), 0, "kexec -l {name}: {}", err(&o));
        assert_eq!(woulds(&o).len(), 2, "loaded, then synced: {:?}", woulds(&o));
        assert!(woulds(&o)[0].starts_with("kexec_load: 3 segments"), "{:?}", woulds(&o));
        let o = t.run_as_kexec(&["-l", name, "--dry-run", "--json"]);
        assert_eq!(code(&o), 0, "{}", err(&o));
        let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(p["kernel"]["path"], name, "{p}");
    }
    // `kexec plan -l K`: a kernel called plan, loaded (then -l's sync), not a dry run.
    let o = t.run_as_kexec(&["plan", "-l"]);
    assert!(woulds(&o)[0].starts_with("kexec_load"), "{:?}", woulds(&o));
    // The man page of the command it is installed as (item 9).
    let o = t.run_as_kexec(&["--man"]);
    assert!(out(&o).contains(".TH kexec 8 "), "{}", &out(&o)[..200.min(out(&o).len())]);
    // As rkexec: the commands.
    let k = t.path("plan");
    let o = t.run(&["plan", &k]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(out(&o).starts_with("rkexec plan (x86_64, kexec_load"), "{}", out(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_rkexec")).args(["purgatory", "--info"]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(out(&o).contains("abi_version"), "{}", out(&o));
}

/// Item 5: petitboot passes --dtb whenever its boot entry has one; on x86
/// kexec-tools' bzImage64 loader's getopt_long does not know it, warns and
/// loads (kexec/arch/x86_64/kexec-bzImage64.c bzImage64_load).
#[test]
fn petitboot_dtb_on_x86_is_warned_about_and_dropped() {
    let t = Tree::x86("petitboot-x86");
    let k = t.write("var/petitboot/vmlinuz", bzimage(40_000));
    let d = t.write("var/petitboot/board.dtb", [0xd0u8, 0x0d, 0xfe, 0xed, 0, 0, 0, 8]);
    let i = t.write("var/petitboot/initrd", vec![1u8; 500]);
    let (ii, dd) = (format!("--initrd={}", i.display()), format!("--dtb={}", d.display()));
    let ks = k.to_str().unwrap();
    let argv = ["-l", "--debug", ii.as_str(), dd.as_str(), "--append=quiet", ks];
    let o = t.run(&argv);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(err(&o).lines().any(|l| l == format!("rkexec: unrecognized option '{dd}'")), "{}", err(&o));
    assert!(woulds(&o)[0].starts_with("kexec_load: 4 segments"), "{:?}", woulds(&o));
    assert_eq!(cmdline_of(&t.plan(&argv)), "quiet");
    // Its -s retry, the two-word form, and as /sbin/kexec (glibc names argv[0]).
    let o = t.run(&["-s", "-l", "--dtb", d.to_str().unwrap(), "--append=quiet", ks]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(err(&o).lines().any(|l| l == "rkexec: unrecognized option '--dtb'"), "{}", err(&o));
    assert!(woulds(&o)[0].starts_with("kexec_file_load: kernel "), "{:?}", woulds(&o));
    let o = t.run_as_kexec(&["-l", dd.as_str(), ks]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(err(&o).lines().any(|l| l == format!("kexec: unrecognized option '{dd}'")), "{}", err(&o));
    // rkexec's own DTB edits still make no sense for a bzImage.
    let o = t.run(&["-l", ks, "--dtb-set=/chosen/x=1"]);
    assert_eq!(code(&o), 255);
}

/// Item 6: -d is debug output on stderr (kexec-tools' dbgprintf), and
/// kexec_file_load gets KEXEC_FILE_DEBUG (kexec-tools >= 2.0.29).
#[test]
fn debug_output_goes_to_stderr_and_file_load_gets_kexec_file_debug() {
    let t = Tree::x86("debug");
    let k = t.write("vmlinuz", bzimage(40_000));
    let ks = k.to_str().unwrap();
    let o = t.run(&["-l", "-d", ks, "--append=x"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(o.stdout.is_empty(), "stdout: {}", out(&o));
    assert!(err(&o).contains("entry 0x") && err(&o).contains("purgatory"), "the plan on stderr: {}", err(&o));
    let o = t.run(&["-s", "-l", "-d", ks, "--append=x"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(o.stdout.is_empty(), "stdout: {}", out(&o));
    assert!(err(&o).contains("kexec_file_load"), "{}", err(&o));
    // KEXEC_FILE_NO_INITRAMFS | KEXEC_FILE_DEBUG
    assert!(woulds(&o)[0].ends_with("flags 0xc"), "{:?}", woulds(&o));
    // A kernel before 6.7 refuses the flag with EINVAL: loaded again without it.
    let o = t.run_env(&["-s", "-l", "-d", ks, "--append=x"], &[("RKEXEC_TEST_KEXEC_FILE_FLAGS", "0x7")]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let w = woulds(&o);
    assert!(w[0].ends_with("flags 0xc") && w[1].starts_with("be refused: kexec_file_load failed"), "{w:?}");
    assert!(w[2].ends_with("flags 0x4"), "{w:?}");
    assert!(notes(&o).iter().any(|n| n.starts_with("kexec_file_load refused KEXEC_FILE_DEBUG")), "{:?}", notes(&o));
    // Without -d: no flag, nothing on stdout either.
    let o = t.run(&["-s", "-l", ks, "--append=x"]);
    assert!(woulds(&o)[0].ends_with("flags 0x4") && o.stdout.is_empty(), "{:?}", woulds(&o));
}

/// Item 7: long-option prefixes are resolved against the running
/// architecture's kexec-tools table (kexec/arch/arm64/include/arch/
/// options.h on arm64): these 12 are unique there.
#[test]
fn arm64_prefixes_resolve_as_kexec_tools_arm64_build() {
    let t = Tree::arm64("arm64-prefixes");
    let k = t.write("Image", arm64_image(100_000));
    let ks = k.to_str().unwrap();
    let arm64 = [("RKEXEC_TEST_HOST_ARCH", "arm64")];
    let plan = |argv: &[&str], env: &[(&str, &str)]| {
        let mut v = argv.to_vec();
        v.extend(["--dry-run", "--json"]);
        t.run_env(&v, env)
    };
    for (prefix, value) in [
        ("--a", Some("quiet")),
        ("--c", Some("quiet")),
        ("--co", Some("quiet")),
        ("--en", Some("0x1000")),
        ("--ent", Some("0x1000")),
        ("--entr", Some("0x1000")),
        ("--reuse-", None),
        ("--se", Some("ttyAMA0")),
        ("--ser", Some("ttyAMA0")),
        ("--seri", Some("ttyAMA0")),
        ("--seria", Some("ttyAMA0")),
    ] {
        let word = value.map_or(prefix.to_string(), |v| format!("{prefix}={v}"));
        let o = plan(&["-l", ks, &word], &arm64);
        assert_eq!(code(&o), 0, "{word} on arm64: {}", err(&o));
        let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        if value == Some("quiet") {
            assert_eq!(cmdline_of(&p), "quiet", "{word} is --append/--command-line");
        }
        // kexec-tools' x86_64 table has two options for each.
        let o = plan(&["-l", ks, &word], &[("RKEXEC_TEST_HOST_ARCH", "x86_64")]);
        assert_eq!(code(&o), 1, "{word} is ambiguous on x86_64: {}", err(&o));
        assert!(err(&o).contains(&format!("option '{prefix}' is ambiguous")), "{}", err(&o));
    }
    let o = t.run_env(&["--p"], &arm64);
    assert_eq!((code(&o), out(&o).trim()), (0, "0"), "--p is --print-ckr-size: {}", err(&o));
}

/// Item 7: --serial as kexec-tools' x86 arch_process_options takes it
/// (ttyS0, ttyS1, 0x<port>; "Bad serial port base", exit 255, nothing
/// loaded otherwise), and as its arm64 loader: any name, a missing UART is
/// reported and the kernel loaded without purgatory console.
#[test]
fn serial_accepts_what_kexec_tools_accepts() {
    let t = Tree::x86("serial");
    let k = t.write("vmlinuz", bzimage(40_000));
    let ks = k.to_str().unwrap();
    for ok in ["--serial=ttyS1", "--serial=0x2f8", "--serial=0x0x2f8", "--serial=0x 2f8"] {
        let o = t.run(&["-l", ks, ok]);
        assert_eq!(code(&o), 0, "{ok}: {}", err(&o));
        let p = t.plan(&["-l", ks, ok]);
        assert_eq!(
            (p["purgatory"]["console"]["kind"].as_u64(), p["purgatory"]["console"]["base"].as_u64()),
            (Some(3), Some(0x2f8)),
            "{ok}: an 8250 at I/O port 0x2f8: {p}"
        );
    }
    let o = t.run(&["-l", ks, "--serial=0x"]);
    assert_eq!(code(&o), 0, "0x: port 0, accepted by kexec-tools: {}", err(&o));
    assert!(notes(&o).iter().any(|n| n.contains("I/O port 0")), "{}", err(&o));
    for bad in ["ttyS2", "/dev/ttyS0", "ttyAMA0", "0x10000", "0X3f8"] {
        let o = t.run(&["-l", ks, &format!("--serial={bad}")]);
        assert_eq!(code(&o), 255, "{bad}: {}", err(&o));
        assert!(err(&o).lines().any(|l| l == format!("Bad serial port base '{bad}'")), "{bad}: {}", err(&o));
        assert!(out(&o).contains("Usage:") && woulds(&o).is_empty(), "{bad}");
    }
    let t = Tree::arm64("serial-arm64");
    let k = t.write("Image", arm64_image(100_000));
    let o = t.run(&["-l", k.to_str().unwrap(), "--serial=ttyNOPE"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(
        notes(&o).iter().any(|n| n.starts_with("--serial=ttyNOPE: ") && n.contains("without a purgatory console")),
        "{}",
        err(&o)
    );
    assert!(woulds(&o)[0].starts_with("kexec_load"), "{:?}", woulds(&o));
}

/// Item 7: `-t unknown` as kexec-tools (kexec/kexec.c my_load: "Unsupported
/// kernel type %s", exit 255); kexec_file_load never reads -t there
/// (do_kexec_file_load probes every type).
#[test]
fn unknown_type_as_kexec_tools() {
    let t = Tree::x86("type-unknown");
    let k = t.write("vmlinuz", bzimage(40_000));
    let ks = k.to_str().unwrap();
    let o = t.run(&["-l", ks, "-t", "unknown"]);
    assert_eq!(code(&o), 255);
    assert_eq!(err(&o), "Unsupported kernel type unknown\n");
    assert!(woulds(&o).is_empty());
    let o = t.run(&["-s", "-l", ks, "-t", "unknown"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(notes(&o).iter().any(|n| n.starts_with("-t unknown is ignored with kexec_file_load")), "{}", err(&o));
    assert!(woulds(&o)[0].starts_with("kexec_file_load"), "{:?}", woulds(&o));
}

/// Item 8: without --append the same argv gives the same command line on
/// both system calls: x86_64 the running one minus BOOT_IMAGE= (and
/// crashkernel= for -p), arm64 the running DTB's bootargs.
#[test]
fn without_append_both_syscalls_give_the_same_command_line() {
    let t = Tree::x86("keep-x86");
    let k = t.write("vmlinuz", bzimage(40_000));
    let ks = k.to_str().unwrap();
    let want = RUNNING_CMDLINE.replacen("BOOT_IMAGE=/boot/vmlinuz-6.1.0-57-cloud-amd64 ", "", 1);
    assert_eq!(cmdline_of(&t.plan(&["-l", ks])), want);
    assert_eq!(t.plan(&["-s", "-l", ks])["cmdline"], want.as_str());
    let o = t.run(&["-s", "-l", ks]);
    assert!(woulds(&o)[0].contains(&format!("cmdline {want:?}")), "{:?}", woulds(&o));
    // -p: kexec_load puts elfcorehdr= first, the kernel does so for
    // kexec_file_load (arch/x86/kernel/kexec-bzimage64.c); the rest is one line.
    let crash = want.replacen(" crashkernel=256M", "", 1);
    let p = t.plan(&["-p", ks]);
    let addr = p["elfcorehdr"]["addr"].as_u64().unwrap();
    assert_eq!(cmdline_of(&p), format!("elfcorehdr={addr:#x} {crash}"));
    assert_eq!(t.plan(&["-s", "-p", ks])["cmdline"], crash.as_str());
    // arm64: the running DTB's bootargs on both.
    let t = Tree::arm64("keep-arm64");
    let k = t.write("Image", arm64_image(100_000));
    let ks = k.to_str().unwrap();
    let l = cmdline_of(&t.plan(&["-l", ks])).to_string();
    assert!(l.contains("console=ttyAMA0"), "{l}");
    assert_eq!(t.plan(&["-s", "-l", ks])["cmdline"], l.as_str());
}
