//! Benchmark of the purgatory's verification in the bare-metal harness:
//! 64 MiB of segments, each digest mode, instructions per byte under
//! `-icount shift=0` (deterministic) and wall time without it; aarch64
//! (armv8-sha2 / portable / caches off), then riscv64 (Zknh / portable),
//! then x86_64 (portable: TCG has no SHA-NI), then ppc64le (POWER9 and
//! POWER8 vector crypto / portable), then the x86_64 image's SHA-NI
//! assembly run natively on this host against the `sha2` crate.
//!
//! Usage: cargo run --release -p test-harness --bin bench-purgatory [-- --mib N] [--arch aarch64|riscv64|x86_64|ppc64le]

use std::time::Duration;

use kexec_purgatory::abi::{PARAM_FLAG_DEBUG_CACHES_OFF, PARAM_FLAG_DEBUG_SOFT_SHA256};
use loader_host::purgatory_image::PurgatoryImage;
use test_harness::{Cell, Outcome, Scenario};

struct Mode {
    name: &'static str,
    cell: Cell,
    flags: u32,
}

/// (engine, microseconds) from "... bytes hashed with ENGINE in N us".
fn hashed(out: &Outcome) -> Option<(String, u64, u64)> {
    let line = out.line_with("bytes hashed with")?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let bytes_at = words.iter().position(|w| *w == "bytes")?;
    let bytes = words.get(bytes_at - 1)?.parse().ok()?;
    let with = words.iter().position(|w| *w == "with")?;
    let engine = words.get(with + 1)?.to_string();
    let us = words.get(with + 3)?.parse().ok()?;
    Some((engine, bytes, us))
}

fn run(mode: &Mode, mib: usize, icount: bool) -> Result<(String, u64, u64, Duration), String> {
    let mut sc = Scenario::with_initrd("bench", mode.cell, (mib << 20) - (64 << 10));
    sc.flags |= mode.flags;
    sc.icount = icount;
    sc.deadline = Duration::from_secs(600);
    let out = sc.run();
    if !out.contains("payload: checks passed") {
        return Err(format!("{}: guest did not boot:\n{}", mode.name, out.console));
    }
    let (engine, bytes, us) =
        hashed(&out).ok_or_else(|| format!("{}: no summary line:\n{}", mode.name, out.console))?;
    Ok((engine, bytes, us, out.wall))
}

fn main() {
    let mut mib = 64usize;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--mib") {
        match args.get(i + 1).and_then(|v| v.parse().ok()) {
            Some(v) if (1..=400).contains(&v) => mib = v,
            _ => {
                eprintln!("bench-purgatory: --mib takes a number of MiB from 1 to 400");
                std::process::exit(2);
            }
        }
    }
    let only = args.iter().position(|a| a == "--arch").map(|i| args.get(i + 1).map(String::as_str).unwrap_or(""));
    match only {
        None | Some("aarch64") => {}
        Some("riscv64") => return riscv64(mib),
        Some("x86_64") => return x86_64(mib),
        Some("ppc64le") => return ppc64le(mib),
        Some(other) => {
            eprintln!("bench-purgatory: --arch takes aarch64, riscv64, x86_64 or ppc64le (got '{other}')");
            std::process::exit(2);
        }
    }
    let modes = [
        Mode { name: "armv8-sha2, mmu+caches on", cell: Cell::EL2_NVHE, flags: 0 },
        Mode { name: "portable, mmu+caches on", cell: Cell::EL2_NVHE, flags: PARAM_FLAG_DEBUG_SOFT_SHA256 },
        Mode {
            name: "portable, mmu+caches off (kexec-tools style)",
            cell: Cell::EL2_NVHE,
            flags: PARAM_FLAG_DEBUG_SOFT_SHA256 | PARAM_FLAG_DEBUG_CACHES_OFF,
        },
    ];
    let image = match PurgatoryImage::aarch64() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("bench-purgatory: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "aarch64 purgatory: flat image {} bytes (kexec-tools' arm64 purgatory: 13.6 KB), memory footprint {} KiB",
        image.bytes.len(),
        image.mem_size() / 1024
    );
    println!("QEMU TCG, -M virt,virtualization=on -cpu cortex-a72 (EL2 nVHE), {mib} MiB of segments");
    println!("note: TCG does not model caches; cache effects show only on hardware. Instruction counts are exact.\n");
    table(&modes, mib);
    println!("\nspeedup = wall time of the kexec-tools-style row / this row, same run.");
    if only.is_none() {
        riscv64(mib);
        x86_64(mib);
        ppc64le(mib);
    }
    host_engines(mib);
}

/// Run each mode twice (counted under -icount, then timed) and print a
/// row per mode; the last row is the speedup anchor.
fn table(modes: &[Mode], mib: usize) {
    println!(
        "{:<46} {:>10} {:>12} {:>14} {:>12} {:>10}",
        "mode", "engine", "insns/byte", "guest ms", "hash wall ms", "speedup"
    );
    let mut rows = Vec::new();
    for mode in modes {
        match (run(mode, mib, true), run(mode, mib, false)) {
            (Ok((engine, bytes, icount_us, _)), Ok((_, _, wall_us, _))) => {
                // shift=0: one instruction per virtual nanosecond.
                let ipb = icount_us as f64 * 1000.0 / bytes as f64;
                rows.push((mode.name, engine, ipb, icount_us, wall_us));
            }
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("bench-purgatory: {e}");
                std::process::exit(1);
            }
        }
    }
    let anchor = rows.last().map(|r| r.4).unwrap_or(1).max(1) as f64;
    for (name, engine, ipb, icount_us, wall_us) in &rows {
        println!(
            "{:<46} {:>10} {:>12.2} {:>14.1} {:>12.1} {:>9.1}x",
            name,
            engine,
            ipb,
            *icount_us as f64 / 1000.0,
            *wall_us as f64 / 1000.0,
            anchor / (*wall_us).max(1) as f64
        );
    }
}

/// The x86_64 image's SHA-NI assembly (QEMU's TCG CPUs have no SHA-NI,
/// so the guests never run it) natively on this host
/// against the `sha2` crate as the host build gets it (its own runtime
/// dispatch, i.e. RustCrypto's SHA-NI code on such a CPU): same driver,
/// same data. The portable engine is the `sha2` crate itself (its `soft`
/// backend in the images: docs/sha256-engines.md), so it has no row here.
fn host_engines(mib: usize) {
    use kexec_purgatory::sha256::{digest, CompressFn};
    let data = test_harness::fixtures::pseudo_random(mib << 20, 3);
    let time = |f: CompressFn| {
        let mut best = f64::MAX;
        let mut out = [0u8; 32];
        for _ in 0..3 {
            let t = std::time::Instant::now();
            out = digest(&data, f);
            best = best.min(t.elapsed().as_secs_f64());
        }
        (out, best)
    };
    let mbs = |s: f64| mib as f64 * 1.048_576 / s;
    println!("the purgatory's SHA-NI engine, native on this host ({mib} MiB, best of 3):");
    let (sha2_digest, sha2_s) = time(sha2::block_api::compress256);
    #[cfg(target_arch = "x86_64")]
    match purgatory_arch::host_sha_ni::compress_fn() {
        Some(ni) => {
            let (ni_digest, ni_s) = time(ni);
            if ni_digest != sha2_digest {
                eprintln!("bench-purgatory: SHA-NI and sha2 crate digests differ");
                std::process::exit(1);
            }
            println!(
                "  purgatory sha-ni asm          {:>6.0} MB/s   (ours / sha2 crate = {:.2})",
                mbs(ni_s),
                sha2_s / ni_s
            );
        }
        None => println!("  this CPU has no SHA-NI: the purgatory's SHA-NI assembly was not run"),
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = sha2_digest;
    println!("  sha2 crate, host dispatch     {:>6.0} MB/s", mbs(sha2_s));
}

/// The riscv64 rows: Zknh against the portable code on the same hart
/// (`-cpu rv64,zknh=true`, OpenSBI), the portable row as the anchor.
fn riscv64(mib: usize) {
    let modes = [
        Mode { name: "zknh", cell: Cell::RV_ZKNH, flags: 0 },
        Mode { name: "portable", cell: Cell::RV_ZKNH, flags: PARAM_FLAG_DEBUG_SOFT_SHA256 },
    ];
    let image = match PurgatoryImage::riscv64() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("bench-purgatory: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "\nriscv64 purgatory: flat image {} bytes, memory footprint {} KiB",
        image.bytes.len(),
        image.mem_size() / 1024
    );
    println!("QEMU TCG, -M virt -bios default -cpu rv64,zknh=true (S-mode under OpenSBI), {mib} MiB of segments\n");
    table(&modes, mib);
    println!("\nspeedup = wall time of the portable row / this row, same run.");
}

/// The x86_64 row: the portable engine, which CPUID picks on QEMU's TCG
/// CPUs (no SHA-NI; the SHA-NI assembly is measured natively below).
fn x86_64(mib: usize) {
    let modes = [Mode { name: "portable (CPUID: no SHA-NI)", cell: Cell::X86, flags: 0 }];
    let image = match PurgatoryImage::x86_64() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("bench-purgatory: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "\nx86_64 purgatory: flat image {} bytes, memory footprint {} KiB",
        image.bytes.len(),
        image.mem_size() / 1024
    );
    println!("QEMU TCG, -M pc -cpu qemu64, entered in long mode by the harness's launcher, {mib} MiB of segments\n");
    table(&modes, mib);
}

/// The ppc64le rows: the vector crypto engine (vshasigmaw, ISA 2.07) on
/// POWER9 and POWER8 against the portable one, the last row the anchor.
fn ppc64le(mib: usize) {
    let modes = [
        Mode { name: "vcrypto, power9", cell: Cell::P9, flags: 0 },
        Mode { name: "vcrypto, power8", cell: Cell::P8, flags: 0 },
        Mode { name: "portable, power8", cell: Cell::P8, flags: PARAM_FLAG_DEBUG_SOFT_SHA256 },
        Mode { name: "portable, power9", cell: Cell::P9, flags: PARAM_FLAG_DEBUG_SOFT_SHA256 },
    ];
    let image = match PurgatoryImage::ppc64le() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("bench-purgatory: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "\nppc64le purgatory: flat image {} bytes, memory footprint {} KiB",
        image.bytes.len(),
        image.mem_size() / 1024
    );
    println!("QEMU TCG, -M pseries,x-vof=on (real mode, entered as kexec_sequence does), {mib} MiB of segments\n");
    table(&modes, mib);
    println!("\nspeedup = wall time of the portable power9 row / this row, same run.");
}
