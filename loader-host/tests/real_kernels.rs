//! `rkexec plan` on the real Debian kernels the guest tier boots (arm64
//! Image and amd64 bzImage, bookworm and trixie; riscv64 Image, trixie),
//! against fixture /proc and /sys trees (virt-riscv64: what trixie's
//! kernel showed under QEMU virt with 2 GiB and crashkernel=256M,
//! tests/guest/riscv64_probe.py). They need `scripts/fetch-fixtures.sh` to have filled the
//! cache, so they are `#[ignore]`d in a plain `cargo test` (reported as
//! ignored, never as passed) and run by scripts/test.sh with `--ignored`
//! after the fetch; there, a missing kernel fails.

use std::path::PathBuf;
use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/virt-arm64");

/// $RKEXEC_CACHE, or <repo>/cache when it is unset or empty (as the
/// scripts' `${RKEXEC_CACHE:-$ROOT/cache}`).
fn cache() -> PathBuf {
    std::env::var_os("RKEXEC_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../cache")))
}

fn kernel(arch: &str, suite: &str, file: &str) -> PathBuf {
    let p = cache().join(arch).join(suite).join(file);
    assert!(p.is_file(), "{} is missing: run scripts/fetch-fixtures.sh --arch {arch}", p.display());
    p
}

fn plan(args: &[&str], proc_root: &str, sys_root: &str) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_rkexec"))
        .args(["plan", "--json"])
        .args(args)
        .args(["--proc-root", proc_root, "--sys-root", sys_root])
        .output()
        .expect("run rkexec");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "rkexec plan {args:?}: {err}");
    serde_json::from_slice(&o.stdout).expect("one line of JSON")
}

fn arm64(suite: &str) {
    let k = kernel("arm64", suite, "Image");
    let v = plan(&[k.to_str().unwrap()], &format!("{FIXTURES}/proc"), &format!("{FIXTURES}/sys"));
    assert_eq!((v["arch"].as_str(), v["kernel"]["format"].as_str()), (Some("arm64"), Some("Image")));
    let seg = &v["segments"][0];
    let size = std::fs::metadata(&k).unwrap().len();
    assert_eq!(seg["bufsz"], size);
    assert_eq!(seg["digest_len"], size.next_multiple_of(4096), "the file, not the bss");
    assert!(seg["memsz"].as_u64().unwrap() > size, "image_size covers the bss");
    assert_eq!(seg["start"].as_u64().unwrap() % (2 << 20), 0, "2 MiB aligned (text_offset 0)");
}

#[test]
#[ignore = "needs the Debian kernels in cache/: scripts/test.sh runs it with --ignored after fetching them"]
fn arm64_bookworm_image_plans() {
    arm64("bookworm");
}

#[test]
#[ignore = "needs the Debian kernels in cache/: scripts/test.sh runs it with --ignored after fetching them"]
fn arm64_trixie_image_plans() {
    arm64("trixie");
}

fn amd64(suite: &str) {
    let k = kernel("amd64", suite, "vmlinuz");
    let d = std::env::temp_dir().join(format!("rkx-real-{suite}-{}", std::process::id()));
    std::fs::create_dir_all(d.join("proc")).unwrap();
    std::fs::create_dir_all(d.join("sys")).unwrap();
    std::fs::write(
        d.join("proc/iomem"),
        "00001000-0009fbff : System RAM\n00100000-7ffdffff : System RAM\n  01000000-01ffffff : Kernel code\n7ffe0000-7fffffff : Reserved\n",
    )
    .unwrap();
    std::fs::write(d.join("proc/cmdline"), "BOOT_IMAGE=/vmlinuz console=ttyS0 root=/dev/vda\n").unwrap();
    let v = plan(&[k.to_str().unwrap()], d.join("proc").to_str().unwrap(), d.join("sys").to_str().unwrap());
    std::fs::remove_dir_all(&d).unwrap();
    assert_eq!((v["arch"].as_str(), v["kernel"]["format"].as_str()), (Some("x86_64"), Some("bzImage")));
    let seg = &v["segments"][0];
    let start = seg["start"].as_u64().unwrap();
    assert_eq!(start % (2 << 20), 0, "kernel_alignment of the Debian kernel");
    assert!(start >= 0x100_0000, "not below pref_address");
    assert_eq!(v["kernel_entry"], start + 0x200, "64-bit entry");
    assert!(seg["memsz"].as_u64().unwrap() > seg["bufsz"].as_u64().unwrap(), "the segment spans init_size");
    assert_eq!(v["cmdline"], "console=ttyS0 root=/dev/vda");
    assert_eq!(v["boot_data"]["kind"], "boot-params");
}

#[test]
#[ignore = "needs the Debian kernels in cache/: scripts/test.sh runs it with --ignored after fetching them"]
fn amd64_bookworm_bzimage_plans() {
    amd64("bookworm");
}

#[test]
#[ignore = "needs the Debian kernels in cache/: scripts/test.sh runs it with --ignored after fetching them"]
fn amd64_trixie_bzimage_plans() {
    amd64("trixie");
}

const RISCV64: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/virt-riscv64");

#[test]
#[ignore = "needs the Debian kernels in cache/: scripts/test.sh runs it with --ignored after fetching them"]
fn riscv64_trixie_image_plans() {
    // Debian ships it as /boot/vmlinux-*: an Image with an EFI stub.
    let k = kernel("riscv64", "trixie", "vmlinuz");
    let (proc_root, sys_root) = (format!("{RISCV64}/proc"), format!("{RISCV64}/sys"));
    let v = plan(&[k.to_str().unwrap()], &proc_root, &sys_root);
    assert_eq!((v["arch"].as_str(), v["kernel"]["format"].as_str()), (Some("riscv64"), Some("riscv64 Image")));
    let seg = &v["segments"][0];
    let size = std::fs::metadata(&k).unwrap().len();
    let start = seg["start"].as_u64().unwrap();
    assert_eq!(seg["bufsz"], size);
    assert_eq!(seg["memsz"], 0x1e6_c000, "image_size (bss included)");
    assert_eq!(start % (2 << 20), 0, "boot.rst: a 2 MiB boundary");
    assert_eq!(v["kernel_entry"], start, "entered at the Image's first byte");
    assert_eq!(start, 0x8220_0000, "the first 2 MiB boundary above the running kernel's reservations");
    let kernel_end = start + 0x1e6_c000;
    let segs = v["segments"].as_array().unwrap();
    for s in &segs[1..] {
        assert!(s["start"].as_u64().unwrap() >= kernel_end, "above the kernel: {s}");
    }
    assert_eq!(v["boot_data"]["kind"], "dtb");
    assert_eq!(v["cmdline"], "console=ttyS0 crashkernel=256M", "the DTB's bootargs kept");

    // The capture kernel: inside the crash range, --hotplug refused.
    let v = plan(&["-p", k.to_str().unwrap(), "--reuse-cmdline"], &proc_root, &sys_root);
    let crash = 0xebc0_0000..0xfbc0_0000u64;
    for s in v["segments"].as_array().unwrap() {
        let (a, n) = (s["start"].as_u64().unwrap(), s["memsz"].as_u64().unwrap());
        assert!(crash.contains(&a) && a + n <= crash.end, "outside the Crash kernel range: {s}");
    }
    assert_eq!(v["cmdline"], "console=ttyS0 rdinit=/init", "crashkernel= dropped");
    let hotplug = |sys_root: &str| {
        Command::new(env!("CARGO_BIN_EXE_rkexec"))
            .args(["plan", "-p", "--hotplug", k.to_str().unwrap(), "--proc-root", &proc_root, "--sys-root", sys_root])
            .output()
            .expect("run rkexec")
    };
    // The kernel has no /sys/kernel/crash_elfcorehdr_size (no
    // CONFIG_CRASH_HOTPLUG on riscv): kexec-tools' die() first, exit 1
    // (kexec/kexec.c main()).
    let o = hotplug(&sys_root);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "kexec-tools' die(): {err}");
    assert!(err.contains("crash_elfcorehdr_size does not exist, the kernel needs CONFIG_CRASH_HOTPLUG"), "{err}");
    // Even with the file, the loader refuses: riscv has no crash hotplug.
    let sys = std::env::temp_dir().join(format!("rkx-real-riscv-sys-{}", std::process::id()));
    let copy = Command::new("cp").args(["-r", &sys_root, sys.to_str().unwrap()]).status().unwrap();
    assert!(copy.success());
    std::fs::write(sys.join("kernel/crash_elfcorehdr_size"), "49392\n").unwrap();
    let o = hotplug(sys.to_str().unwrap());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(255), "refused as kexec-tools' EFAILED: {err}");
    assert!(err.contains("--hotplug: riscv64 has no crash hotplug"), "{err}");
    std::fs::remove_dir_all(sys).unwrap();
}
