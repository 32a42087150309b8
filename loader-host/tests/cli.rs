//! The rkexec command on the host: `plan` with fixture /proc and /sys trees
//! (QEMU virt arm64), and bad input. Nothing here loads a kernel: plan and
//! argument errors never reach a kexec system call.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/virt-arm64");

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rkx-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A minimal arm64 Image: booting.rst header (text_offset 0, image_size,
/// flags LE + 4K pages, magic "ARM\x64") and some body.
fn fake_image(dir: &Path, body: usize, image_size: u64) -> PathBuf {
    let mut img = vec![0u8; 64 + body];
    img[16..24].copy_from_slice(&image_size.to_le_bytes());
    img[24..32].copy_from_slice(&(0b0010u64).to_le_bytes()); // 4K pages
    img[0x38..0x3c].copy_from_slice(b"ARM\x64");
    let p = dir.join("Image");
    std::fs::write(&p, img).unwrap();
    p
}

fn rkexec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rkexec"))
        .args(args)
        .args(["--proc-root", &format!("{FIXTURES}/proc"), "--sys-root", &format!("{FIXTURES}/sys")])
        .output()
        .expect("run rkexec")
}

/// stderr of a run; a panic is never an acceptable way to fail.
fn stderr(o: &Output) -> String {
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!e.contains("panicked"), "rkexec panicked: {e}");
    e
}

#[test]
fn plan_prints_the_memory_map() {
    let dir = tmp("plan");
    let kernel = fake_image(&dir, 3 << 20, 8 << 20);
    let initrd = dir.join("initrd");
    std::fs::write(&initrd, vec![7u8; 100_000]).unwrap();
    let o = rkexec(&[
        "plan",
        kernel.to_str().unwrap(),
        "--initrd",
        initrd.to_str().unwrap(),
        "--append",
        "console=ttyAMA0 x",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let rows: Vec<&str> =
        out.lines().filter(|l| l.trim_start().chars().next().is_some_and(|c| c.is_ascii_digit())).collect();
    assert_eq!(rows.len(), 4, "{out}");
    assert!(rows[0].contains("kernel") && rows[0].contains("8.0 MiB"), "{out}");
    assert!(rows[1].contains("initrd"), "{out}");
    assert!(rows[2].contains("dtb") && rows[2].contains("generated DTB"), "{out}");
    assert!(rows[3].contains("purgatory") && rows[3].contains("self"), "{out}");
    assert!(out.contains("entry 0x"), "{out}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn plan_json_describes_segments_and_params() {
    let dir = tmp("json");
    let kernel = fake_image(&dir, 1 << 20, 4 << 20);
    let o =
        rkexec(&["--dry-run", "-l", kernel.to_str().unwrap(), "--json", "--reuse-cmdline", "--on-failure", "reset"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    let segs = v["segments"].as_array().unwrap();
    assert_eq!(segs.len(), 3, "kernel, dtb, purgatory without an initrd");
    for s in segs {
        let (start, end) = (s["start"].as_u64().unwrap(), s["end"].as_u64().unwrap());
        assert_eq!(start % 4096, 0);
        assert_eq!((end - start) % 4096, 0);
        // Inside the fixture's System RAM, outside its reserved children.
        assert!(start >= 0x4000_0000 && end <= 0xc000_0000, "{s}");
        assert!(end <= 0x4100_0000 || start >= 0x4134_0000 || s["kind"] == "kernel", "{s}");
    }
    assert_eq!(segs[0]["start"].as_u64().unwrap() % (2 << 20), 0, "kernel 2 MiB aligned");
    assert_eq!(v["schema"], "rkexec-plan/1");
    assert_eq!((v["arch"].as_str(), v["kind"].as_str()), (Some("arm64"), Some("kexec")));
    assert_eq!(v["boot_data"]["kind"], "dtb");
    assert_eq!(v["boot_data"]["addr"], segs[1]["start"]);
    let p = &v["purgatory"];
    assert_eq!(p["console"]["kind"], 1, "PL011 from /chosen/stdout-path");
    assert_eq!(p["console"]["base"], 0x900_0000);
    assert_eq!(p["psci_conduit"], 1, "QEMU virt without EL2: hvc");
    assert_eq!(p["on_failure"], "reset");
    assert_eq!(p["verify"], true);
    assert_eq!(p["nr_segments"], 2);
    assert!(!v["cmdline"].as_str().unwrap().contains("BOOT_IMAGE="), "{}", v["cmdline"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_inputs_fail_cleanly_and_name_the_problem() {
    let dir = tmp("bad");
    let not_kernel = dir.join("notes.txt");
    std::fs::write(&not_kernel, b"hello, not a kernel").unwrap();
    // kexec-tools: a kernel it cannot load is EFAILED (255).
    let o = rkexec(&["plan", not_kernel.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(255));
    let e = stderr(&o);
    assert!(
        e.starts_with("rkexec: ") && e.contains("notes.txt") && e.contains("not a kernel this loader knows"),
        "{e}"
    );

    let o = rkexec(&["plan", dir.join("missing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(255));
    assert!(stderr(&o).contains("missing: No such file"), "{}", stderr(&o));

    let kernel = fake_image(&dir, 4096, 1 << 20);
    let o = rkexec(&["plan", kernel.to_str().unwrap(), "--dtb", not_kernel.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(255));
    assert!(stderr(&o).contains("notes.txt"), "{}", stderr(&o));

    // -s then -c: the last wins (kexec-tools), so this is a kexec_load plan.
    let o = rkexec(&["plan", kernel.to_str().unwrap(), "-s", "-c"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("kexec_load through the rkexec purgatory"));

    let o = rkexec(&["plan", kernel.to_str().unwrap(), "--dtb-set", "chosen/x=1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--dtb-set chosen/x=1"), "{}", stderr(&o));

    // Big-endian kernel: flags bit 0.
    let mut img = std::fs::read(&kernel).unwrap();
    img[24] |= 1;
    let be = dir.join("Image-be");
    std::fs::write(&be, img).unwrap();
    let o = rkexec(&["plan", be.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(255));
    assert!(stderr(&o).to_lowercase().contains("big-endian"), "{}", stderr(&o));

    // kexec-tools: no kernel and no action is "No kernel specified", 255.
    let o = rkexec(&[]);
    assert_eq!(o.status.code(), Some(255));
    assert!(stderr(&o).contains("No kernel specified"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn status_without_the_sysfs_file_is_255_and_silent() {
    // The fixture tree has no kernel/kexec_loaded: kexec-tools'
    // kexec_loaded() returns -1, -S exits 255, nothing printed.
    let o = rkexec(&["-S", "-l"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(o.stdout.is_empty() && stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn status_says_whether_the_crash_kernel_is_hotplug_aware() {
    let dir = tmp("status-hp");
    let sys = dir.join("sys");
    std::fs::create_dir_all(sys.join("kernel")).unwrap();
    std::fs::create_dir_all(sys.join("devices/system/cpu")).unwrap();
    std::fs::create_dir_all(sys.join("devices/system/memory")).unwrap();
    let status = |crash_loaded: &str, cpu: &str, mem: &str| {
        std::fs::write(sys.join("kernel/kexec_crash_loaded"), crash_loaded).unwrap();
        std::fs::write(sys.join("devices/system/cpu/crash_hotplug"), cpu).unwrap();
        std::fs::write(sys.join("devices/system/memory/crash_hotplug"), mem).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_rkexec"))
            .args(["status", "--sys-root", sys.to_str().unwrap()])
            .output()
            .expect("run rkexec");
        (o.status.code(), String::from_utf8_lossy(&o.stdout).to_string())
    };
    std::fs::write(sys.join("kernel/kexec_loaded"), "0\n").unwrap();
    let (code, out) = status("1\n", "1\n", "1\n");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("kernel: not loaded\n"), "{out}");
    assert!(out.contains("crash kernel: loaded, hotplug-aware") && out.contains("cpu 1, memory 1"), "{out}");
    let (_, out) = status("1\n", "0\n", "0\n");
    assert!(out.contains("not hotplug-aware (loaded with --no-hotplug"), "{out}");
    let (_, out) = status("0\n", "0\n", "0\n");
    assert!(out.contains("crash kernel: not loaded"), "{out}");
    // -S stays silent, as kexec-tools'.
    let o = Command::new(env!("CARGO_BIN_EXE_rkexec"))
        .args(["-S", "-d", "--sys-root", sys.to_str().unwrap()])
        .output()
        .expect("run rkexec");
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

const CRASH_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/virt-arm64-crash");

fn rkexec_crash(args: &[&str], sys_root: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rkexec"))
        .args(args)
        .args(["--proc-root", &format!("{CRASH_FIXTURES}/proc"), "--sys-root", sys_root])
        .output()
        .expect("run rkexec")
}

#[test]
fn crash_plan_stays_inside_the_crash_region() {
    let dir = tmp("crash");
    let kernel = fake_image(&dir, 2 << 20, 6 << 20);
    let o = rkexec_crash(
        &["-p", kernel.to_str().unwrap(), "--dry-run", "--json", "--reuse-cmdline"],
        &format!("{CRASH_FIXTURES}/sys"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let segs = v["segments"].as_array().unwrap();
    let kinds: Vec<&str> = segs.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["kernel", "elfcorehdr", "dtb", "purgatory"]);
    for s in segs {
        let (start, end) = (s["start"].as_u64().unwrap(), s["end"].as_u64().unwrap());
        assert!(start >= 0xa000_0000 && end <= 0xb000_0000, "outside the Crash kernel range: {s}");
    }
    assert_eq!(segs[0]["start"], 0xa000_0000u64, "kernel at the 2 MiB aligned start of the crash region");
    assert_eq!(segs[1]["excluded"], false, "hashed unless --hotplug");
    // Two CPUs' notes + vmcoreinfo + RAM below and above the crash region.
    assert_eq!(segs[1]["bufsz"], 64 + 56 * 5);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn crash_errors_name_the_missing_piece() {
    let dir = tmp("crash-errors");
    let kernel = fake_image(&dir, 4096, 1 << 20);
    // No crashkernel= reservation.
    let o = rkexec(&["-p", kernel.to_str().unwrap(), "--dry-run"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("crashkernel="), "{}", stderr(&o));
    // --hotplug on a kernel without crash hotplug: kexec-tools' die()
    // (kexec/kexec.c main(), before anything is read or loaded), exit 1.
    let sys = format!("{CRASH_FIXTURES}/sys");
    let o = rkexec_crash(&["-p", kernel.to_str().unwrap(), "--dry-run", "--hotplug"], &sys);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "rkexec: Path {sys}/kernel/crash_elfcorehdr_size does not exist, the kernel needs CONFIG_CRASH_HOTPLUG\n"
        )
    );
    // Whatever the action: -u --hotplug, -S --hotplug die the same way.
    for argv in [&["-p", "-u", "--hotplug", "--dry-run"][..], &["-S", "--hotplug"][..]] {
        let o = rkexec_crash(argv, &sys);
        assert_eq!(o.status.code(), Some(1), "{argv:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("needs CONFIG_CRASH_HOTPLUG"), "{argv:?}: {}", stderr(&o));
    }
    // --hotplug without -p.
    let o = rkexec(&["-l", kernel.to_str().unwrap(), "--dry-run", "--hotplug"]);
    assert_eq!(o.status.code(), Some(1));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn crash_hotplug_sizes_and_excludes_the_elfcorehdr() {
    let dir = tmp("hotplug");
    // A copy of the crash sysfs tree with crash_elfcorehdr_size.
    let sys = dir.join("sys");
    let copy =
        Command::new("cp").args(["-r", &format!("{CRASH_FIXTURES}/sys"), sys.to_str().unwrap()]).status().unwrap();
    assert!(copy.success());
    std::fs::write(sys.join("kernel/crash_elfcorehdr_size"), "49392\n").unwrap();
    let kernel = fake_image(&dir, 4096, 1 << 20);
    let o = rkexec_crash(&["-p", kernel.to_str().unwrap(), "--dry-run", "--json", "--hotplug"], sys.to_str().unwrap());
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let core = &v["segments"][1];
    assert_eq!(core["kind"], "elfcorehdr");
    assert_eq!(core["excluded"], true);
    assert_eq!(core["memsz"], (64u64 + 49392).next_multiple_of(4096), "sized so the kernel can grow it");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn man_page_and_completions_come_from_the_option_table() {
    let o = rkexec(&["--man"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let man = String::from_utf8(o.stdout).unwrap();
    assert!(man.starts_with(".ie") || man.contains(".TH rkexec"), "roff: {}", &man[..200.min(man.len())]);
    // Every alias a caller uses, and the deliberate difference, are there.
    for word in [
        "reuse\\-cmdline",
        "command\\-line",
        "ramdisk",
        "kexec\\-file\\-syscall",
        "load\\-panic",
        "kexec_file_load first",
    ] {
        assert!(man.contains(word), "{word} missing from the man page");
    }
    assert!(!man.contains("proc\\-root"), "hidden test options stay out of the man page");
    // issue 21 item 9: section 8, as kexec(8) is installed.
    assert!(man.contains(".TH rkexec 8 "), "{}", &man[..200.min(man.len())]);
    let o = rkexec(&["--completions=bash"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bash = String::from_utf8(o.stdout).unwrap();
    assert!(bash.contains("--reuse-cmdline") && bash.contains("--kexec-syscall-auto") && bash.contains("complete -F"));
    let mut scripts = vec![("bash", bash)];
    for shell in ["zsh", "fish"] {
        let o = rkexec(&["--completions", shell]);
        assert!(o.status.success() && o.stdout.len() > 1000, "{shell}: {}", stderr(&o));
        scripts.push((shell, String::from_utf8(o.stdout).unwrap()));
    }
    // Registered for both names, and no hidden option offered.
    for (shell, script) in &scripts {
        for hidden in ["--proc-root", "--sys-root", "--debug-hash-excluded", "--man", "--completions"] {
            assert!(!script.contains(hidden), "{shell} completions offer the hidden {hidden}");
        }
        // fish spells long options without their dashes (-l proc-root).
        assert!(!script.contains("proc-root"), "{shell}");
    }
    assert!(scripts[0].1.contains("complete -F _rkexec") && scripts[0].1.contains("complete -F _kexec"), "bash");
    assert!(scripts[1].1.starts_with("#compdef rkexec kexec\n"), "zsh");
    assert!(scripts[2].1.contains("complete -c rkexec") && scripts[2].1.contains("complete -c kexec"), "fish");
    let o = rkexec(&["--completions=tcsh"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn purgatory_images_are_written_for_other_loaders() {
    let dir = tmp("purgatory");
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_rkexec")).args(args).output().expect("run rkexec");
    let info = run(&["purgatory", "--info"]);
    assert!(info.status.success(), "{}", stderr(&info));
    let text = String::from_utf8(info.stdout).unwrap();
    for arch in ["aarch64", "x86_64", "riscv64", "ppc64le"] {
        assert!(text.contains(&format!("arch {arch}\nabi_version 1\nheader_size 96\n")), "{text}");
    }
    for (arch, flat, elf) in [
        ("aarch64", loader_host::purgatory_image::AARCH64_FLAT, loader_host::purgatory_image::AARCH64_ELF),
        ("x86_64", loader_host::purgatory_image::X86_64_FLAT, loader_host::purgatory_image::X86_64_ELF),
        ("riscv64", loader_host::purgatory_image::RISCV64_FLAT, loader_host::purgatory_image::RISCV64_ELF),
        ("ppc64le", loader_host::purgatory_image::PPC64LE_FLAT, loader_host::purgatory_image::PPC64LE_ELF),
    ] {
        let out = dir.join(format!("p-{arch}"));
        let o = run(&["purgatory", "--arch", arch, "--output", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(std::fs::read(&out).unwrap(), flat, "{arch} flat image");
        let o = run(&["purgatory", "--arch", arch, "--elf", "--output", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(std::fs::read(&out).unwrap(), elf, "{arch} ELF");
        let sha = loader_host::digest::padded(flat, flat.len() as u64);
        let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        assert!(text.contains(&format!("sha256 {hex}\n")), "{arch}: {text}");
    }
    let o = run(&["purgatory", "--arch", "sparc", "--output", "x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--arch sparc: no such image (images: aarch64, x86_64, riscv64, ppc64le)"),
        "{}",
        stderr(&o)
    );
    // The architecture's own name finds its image too.
    let out = dir.join("p-arm64");
    let o = run(&["purgatory", "--arch", "arm64", "--output", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), loader_host::purgatory_image::AARCH64_FLAT);
    let o = run(&["purgatory"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("give --arch"), "{}", stderr(&o));
    let o = run(&["purgatory", "--arch", "aarch64", "--output", dir.join("no/such/dir/x").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(255));
    assert!(stderr(&o).contains("No such file"), "{}", stderr(&o));
    std::fs::remove_dir_all(dir).unwrap();
}
