//! The library's one entry point, end to end without the CLI: describe a
//! load ([`loader_host::Request`]), plan it against a machine
//! ([`loader_host::plan`] with [`loader_host::SystemSources`]), look at the
//! [`loader_host::Plan`], and stop where a real loader would call
//! `loader_host::syscall::load(&plan)` and `loader_host::syscall::kexec_reboot()`.
//!
//! The machine is the fixture /proc and /sys trees of a QEMU virt arm64
//! guest in `tests/fixtures/virt-arm64` (its /proc/iomem, /proc/cmdline,
//! /sys/firmware/fdt), so this runs anywhere, unprivileged:
//!
//! ```text
//! cargo run --example plan_from_fixtures -p loader-host [-- KERNEL [INITRD]]
//! ```
//!
//! Without a KERNEL it writes a synthetic arm64 Image (an 8 MiB
//! `image_size`, 1 MiB of file) to a temporary directory and plans that.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use loader_host::{plan, CmdlineChoice, Request, SystemSources};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/virt-arm64");

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let given_kernel = args.next().map(PathBuf::from);
    let initrd = args.next().map(PathBuf::from);
    let scratch = std::env::temp_dir().join(format!("rkexec-example-{}", std::process::id()));

    let result = run(given_kernel, initrd, &scratch);
    // Only the synthetic Image is ours to remove.
    let _ = std::fs::remove_dir_all(&scratch);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plan_from_fixtures: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    given_kernel: Option<PathBuf>,
    initrd: Option<PathBuf>,
    scratch: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let kernel = match given_kernel {
        Some(k) => k,
        None => synthetic_image(scratch)?,
    };

    // 1. What to load: the kernel, an optional initrd, a command line.
    let mut req = Request::new(&kernel);
    req.initrds.extend(initrd);
    req.cmdline = CmdlineChoice::Set("console=ttyAMA0 root=/dev/vda rw".into());

    // 2. Where: /proc and /sys of the machine. `SystemSources::running()`
    //    would be this machine's own; here the fixture guest's.
    let sys = SystemSources::new(Path::new(FIXTURES).join("proc"), Path::new(FIXTURES).join("sys"));

    // 3. The plan: every segment placed and hashed, the purgatory's
    //    parameter block filled, and every rule the kernel and the
    //    purgatory would apply checked. Bad input is an error here, before
    //    anything reaches the kernel.
    let plan = plan(&req, &sys)?;

    // 4. A look at it.
    print!("{}", loader_host::render::table(&plan));
    println!(
        "\n{} kexec segments for {}, {} bytes to verify; the purgatory at {:#x} enters the kernel at {:#x} with the {} at {:#x}",
        plan.segments.len(),
        plan.arch,
        plan.hashed_bytes(),
        plan.entry,
        plan.kernel_entry,
        plan.boot_data.kind.name(),
        plan.boot_data.addr,
    );

    // 5. A loader would now hand the plan to kexec_load(2) (CAP_SYS_BOOT,
    //    and the running kernel must be the one the plan was made for), then
    //    boot it. Never on a machine you are not about to reboot, and this
    //    plan is for the fixture guest, so both are left out here:
    // loader_host::syscall::load(&plan)?;
    // return Err(loader_host::syscall::kexec_reboot().into());
    Ok(())
}

/// A minimal arm64 Image (Documentation/arch/arm64/booting.rst, "Call the
/// kernel image"): text_offset 0, image_size 8 MiB, flags = little endian
/// with 4K pages (bits 1-2 = 1), the magic "ARM\x64" at 0x38, then a body.
fn synthetic_image(dir: &Path) -> std::io::Result<PathBuf> {
    let mut image = vec![0u8; 1 << 20];
    image[16..24].copy_from_slice(&(8u64 << 20).to_le_bytes());
    image[24..32].copy_from_slice(&0b0010u64.to_le_bytes());
    image[0x38..0x3c].copy_from_slice(b"ARM\x64");
    std::fs::create_dir_all(dir)?;
    let path = dir.join("Image");
    std::fs::write(&path, image)?;
    Ok(path)
}
