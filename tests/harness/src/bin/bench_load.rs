//! Benchmark of the loader's own work, natively and without any system
//! call: `loader_host::plan` (what `rkexec plan` and `rkexec -l` do before
//! kexec_load) for a 32 MiB arm64 Image with a 40 MiB and a 400 MiB initrd,
//! against the floor measured in the same run — reading the same files once
//! and one SHA-256 pass over them with the `sha2` crate. Each measurement
//! runs in a fresh child process (this binary re-executed), so its wall time
//! and peak RSS (wait4's ru_maxrss) are its own. Medians of `--runs` (5).
//!
//! Usage: cargo run --release -p test-harness --bin bench-load [-- --runs N] [--json FILE]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../loader-host/tests/fixtures/virt-arm64");
const MIB: usize = 1 << 20;

/// A child's wall time and peak resident set.
#[derive(Clone, Copy, Debug)]
struct Sample {
    wall: Duration,
    maxrss_kib: u64,
}

/// Run this binary with `args` in a child; its wall time and ru_maxrss.
fn child(args: &[String]) -> Sample {
    let exe = std::env::current_exe().expect("current_exe");
    let start = Instant::now();
    // Reaped below by wait4, which also reports its rusage.
    #[allow(clippy::zombie_processes)]
    let c = Command::new(exe).args(args).spawn().expect("spawn child");
    let pid = c.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into the two locals.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(rc, pid, "wait4 failed");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child {args:?} failed");
    Sample { wall, maxrss_kib: usage.ru_maxrss as u64 }
}

/// The floor: read each file once, hash it once.
fn floor(files: &[PathBuf]) {
    let mut kept = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).expect("read input");
        let d: [u8; 32] = Sha256::digest(&bytes).into();
        std::hint::black_box(d);
        kept.push(bytes); // materialised, as a loader must
    }
    std::hint::black_box(kept);
}

/// The loader's plan of the same files.
fn plan(files: &[PathBuf]) {
    let mut req = loader_host::Request::new(&files[0]);
    req.initrds = files[1..].to_vec();
    let sys = loader_host::SystemSources::new(format!("{FIXTURES}/proc").into(), format!("{FIXTURES}/sys").into());
    let plan = loader_host::plan(&req, &sys).expect("plan");
    std::hint::black_box(plan);
}

/// 32 MiB of Image (booting.rst header, flags: 4 KiB pages, anywhere) and
/// an initrd of `initrd_mib`, pseudo-random so nothing compresses or dedups.
fn inputs(dir: &Path, initrd_mib: usize) -> Vec<PathBuf> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut fill = |n: usize| -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            v.extend_from_slice(&state.to_le_bytes());
        }
        v.truncate(n);
        v
    };
    let mut img = fill(32 * MIB);
    img[..64].fill(0);
    img[16..24].copy_from_slice(&(48u64 << 20).to_le_bytes());
    img[24..32].copy_from_slice(&0b1010u64.to_le_bytes());
    img[0x38..0x3c].copy_from_slice(b"ARM\x64");
    let image = dir.join("Image");
    std::fs::write(&image, img).expect("write Image");
    let initrd = dir.join(format!("initrd-{initrd_mib}M"));
    let mut f = std::fs::File::create(&initrd).expect("create initrd");
    for _ in 0..initrd_mib / 8 {
        std::io::Write::write_all(&mut f, &fill(8 * MIB)).expect("write initrd");
    }
    vec![image, initrd]
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(mode) = args.first().filter(|a| a.starts_with("--child-")) {
        let files: Vec<PathBuf> = args[1..].iter().map(PathBuf::from).collect();
        match mode.as_str() {
            "--child-floor" => floor(&files),
            "--child-plan" => plan(&files),
            _ => std::process::exit(2),
        }
        return;
    }
    let runs = args.iter().position(|a| a == "--runs").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(5usize);
    let json_out = args.iter().position(|a| a == "--json").and_then(|i| args.get(i + 1)).cloned();
    let dir = std::env::temp_dir().join(format!("rkexec-bench-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    println!("load path: loader_host::plan natively (what rkexec does before kexec_load), medians of {runs}");
    println!("floor = read the same files once + one SHA-256 pass (sha2 crate), measured in the same run\n");
    println!(
        "{:<28} {:>10} {:>10} {:>7} {:>11} {:>11} {:>13}",
        "inputs", "floor ms", "plan ms", "ratio", "floor RSS", "plan RSS", "RSS - inputs"
    );
    let mut rows = Vec::new();
    for initrd_mib in [40usize, 400] {
        let files = inputs(&dir, initrd_mib);
        let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        let inputs_mib = 32 + initrd_mib;
        // Warm the page cache so both sides read from memory.
        child(&[vec!["--child-floor".to_string()], names.clone()].concat());
        let (mut fl, mut pl, mut frss, mut prss) = (vec![], vec![], vec![], vec![]);
        for _ in 0..runs {
            let f = child(&[vec!["--child-floor".to_string()], names.clone()].concat());
            let p = child(&[vec!["--child-plan".to_string()], names.clone()].concat());
            fl.push(f.wall.as_secs_f64() * 1e3);
            pl.push(p.wall.as_secs_f64() * 1e3);
            frss.push(f.maxrss_kib as f64 / 1024.0);
            prss.push(p.maxrss_kib as f64 / 1024.0);
        }
        let (f, p, fr, pr) = (median(fl), median(pl), median(frss), median(prss));
        let label = format!("32 MiB Image + {initrd_mib} MiB initrd");
        println!(
            "{label:<28} {f:>10.1} {p:>10.1} {:>6.2}x {fr:>8.1} MiB {pr:>8.1} MiB {:>+9.1} MiB",
            p / f,
            pr - inputs_mib as f64
        );
        rows.push(format!(
            "{{\"inputs\":\"{label}\",\"inputs_mib\":{inputs_mib},\"floor_ms\":{f:.1},\"plan_ms\":{p:.1},\"ratio\":{:.3},\"floor_rss_mib\":{fr:.1},\"plan_rss_mib\":{pr:.1}}}",
            p / f
        ));
        for file in files {
            let _ = std::fs::remove_file(file);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("\nratio = plan / floor; RSS - inputs = peak RSS of the plan beyond the input bytes it must hold");
    if let Some(path) = json_out {
        std::fs::write(&path, format!("[{}]\n", rows.join(","))).expect("write JSON");
    }
}
