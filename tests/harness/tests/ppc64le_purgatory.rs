//! The ppc64le purgatory on QEMU pseries (VOF, no SLOF), entered as the
//! kernel's kexec_sequence enters it: the entry block copied to physical 0
//! (with -smp 2 another CPU spinning in the kernel's __secondary_hold at
//! 0x60), little-endian real mode, r3 = the boot CPU, r4 = LR = the entry,
//! r5 = 0 (the payload's launcher does it). The hand-off booting.rst asks
//! for, both digest engines (vector crypto on POWER9 and POWER8), darn
//! seeds on POWER9 only, the corruption matrix, exclusions and malformed
//! input, relocation at odd addresses, RTAS reset or halt, the entry-block
//! and run_at_load rules, the kdump backup of physical [0, 64 KiB). Every
//! assertion is on what the guest printed or how the run ended as QEMU
//! reports it over QMP (a guest-reset or guest-shutdown SHUTDOWN event, the
//! PC in the purgatory's halt loop).

use kexec_purgatory::abi::{SegmentKind, PARAM_FLAG_DEBUG_SOFT_SHA256};
use test_harness::checks::{assert_engine_hashes_odd_lengths, assert_refused, hex, with_odd_segments};
use test_harness::fixtures::{RNG_PLACEHOLDER, STALE_BOOT_CPUID};
use test_harness::scenario::{PPC_BACKUP_ADDR, PPC_DTB_ADDR, PPC_PURGATORY_ADDR};
use test_harness::{Cell, Outcome, Scenario};

/// The kernel ran and found booting.rst's entry state: r3 = the DTB, r4 =
/// its base, r5 = 0, real mode, little-endian, EE off (the payload
/// checks them and the boot CPU; see payload_ppc64le.rs), then powered
/// QEMU off.
fn assert_booted(out: &Outcome) {
    assert_booted_with(out, 5);
}

/// As `assert_booted`, for a block of `segments` segments.
fn assert_booted_with(out: &Outcome, segments: usize) {
    assert!(out.contains("payload: checks passed"), "payload did not pass:\n{}", out.console);
    assert!(out.powered_off(), "no RTAS power-off: {out:?}");
    let entered = out.line_with("payload: entered").expect("entry line");
    let want = format!("r3={PPC_DTB_ADDR:#x} r4=0x2000000 r5=0x0 ");
    assert!(entered.contains(&want), "registers: {entered}");
    assert!(out.contains(&format!("purgatory: verified {segments} segments")), "no summary:\n{}", out.console);
    assert!(out.contains(&format!("purgatory: entering kernel at 0x2000000, dtb {PPC_DTB_ADDR:#x}")));
}

fn dtb_line(out: &Outcome) -> String {
    out.line_with("payload: dtb ok").expect("payload printed the DTB line").to_string()
}

#[test]
fn p9_boots_with_vector_crypto_and_darn_seeds() {
    let first = Scenario::standard("p9", Cell::P9).run();
    let second = Scenario::standard("p9-again", Cell::P9).run();
    for out in [&first, &second] {
        assert_booted(out);
        assert!(
            out.contains("purgatory: ppc64le real mode, image 0xb000000, cpu 0x0, pvr 0x4e1200,"),
            "{}",
            out.console
        );
        assert!(out.contains("dtb cpu-version 0xf000005, isa 3.0: vcrypto darn"), "{}", out.console);
        assert!(out.contains("hashed with vcrypto"), "{}", out.console);
        // darn: the loader's rng-seed replaced; boot_cpuid_phys = r3.
        assert!(out.contains("seeds refreshed 1, kept 0; boot cpu 0x0"), "{}", out.console);
        let line = dtb_line(out);
        assert!(!line.contains(&hex(&RNG_PLACEHOLDER)), "rng-seed unchanged: {line}");
        assert!(line.contains("boot_cpuid=0x0 "), "boot_cpuid_phys not set (was {STALE_BOOT_CPUID:#x}): {line}");
        // The plain kexec's run_at_load: the kernel's own "run0".
        assert!(out.contains("purgatory: run_at_load 0x72756e30 written to 0x200005c"), "{}", out.console);
        assert!(out.contains("payload: run_at_load=0x72756e30"), "{}", out.console);
        assert!(out.contains("payload: no CPU held at 0x60"), "{}", out.console);
        // No backup segment: nothing copied, nothing found.
        assert!(!out.contains("purgatory: backup"), "{}", out.console);
        assert!(out.contains(&format!("payload: no backup at {PPC_BACKUP_ADDR:#x}")), "{}", out.console);
    }
    assert_ne!(dtb_line(&first), dtb_line(&second), "two boots got the same seed");
}

#[test]
fn p8_hash_mmu_cpu_has_vector_crypto_but_no_darn() {
    let out = Scenario::standard("p8", Cell::P8).run();
    assert_booted(&out);
    assert!(
        out.contains("cpu 0x0, pvr 0x4d0200, dtb cpu-version 0xf000004, isa 2.07: vcrypto no-darn"),
        "{}",
        out.console
    );
    assert!(out.contains("hashed with vcrypto"), "{}", out.console);
    assert!(out.contains("seeds refreshed 0, kept 1; boot cpu 0x0"), "{}", out.console);
    assert!(dtb_line(&out).contains(&format!("rng-seed={}", hex(&RNG_PLACEHOLDER))), "{}", out.console);
}

#[test]
fn the_logical_pvr_caps_the_level_and_the_debug_flag_forces_portable() {
    // A POWER9 partition in POWER8 compatibility mode: no darn.
    let mut cell = Cell::P9;
    cell.cpu_version = 0x0f00_0004;
    let out = Scenario::standard("p9-compat-p8", cell).run();
    assert_booted(&out);
    assert!(out.contains("isa 2.07: vcrypto no-darn"), "{}", out.console);
    assert!(out.contains("seeds refreshed 0, kept 1"), "{}", out.console);
    // ISA 2.06 (POWER7 compatibility): no vector crypto either.
    cell.cpu_version = 0x0f00_0003;
    let out = Scenario::standard("p9-compat-p7", cell).run();
    assert_booted(&out);
    assert!(out.contains("isa older: no-vcrypto no-darn"), "{}", out.console);
    assert!(out.contains("hashed with portable"), "{}", out.console);
    let mut sc = Scenario::standard("p9-soft", Cell::P9);
    sc.flags |= PARAM_FLAG_DEBUG_SOFT_SHA256;
    let out = sc.run();
    assert_booted(&out);
    assert!(out.contains("hashed with portable"), "{}", out.console);
}

#[test]
fn p9_every_engine_hashes_odd_lengths_at_odd_addresses() {
    for (engine, flags) in [("vcrypto", 0), ("portable", PARAM_FLAG_DEBUG_SOFT_SHA256)] {
        assert_engine_hashes_odd_lengths(engine, |name| {
            let mut sc = Scenario::standard(&format!("p9-{name}"), Cell::P9);
            sc.flags |= flags;
            with_odd_segments(sc, 0x0d00_0000, 300)
        });
    }
}

#[test]
fn a_cpu_held_at_0x60_stays_held_and_runs_when_the_kernel_releases_it() {
    // -smp 2: CPU 1 started at physical 0x60 (big-endian, r3 = 1) before
    // the purgatory runs, as kexec_sequence releases it; it acknowledged at
    // 0x40 and spins on 0x38 in the kernel's own __secondary_hold while the
    // purgatory verifies, and runs when the kernel writes 0x38.
    let out = Scenario::standard("p9-smp2", Cell::P9_SMP2).run();
    assert_booted(&out);
    assert!(out.contains("payload: secondary acknowledged 0x1, released, ran 0x1"), "{}", out.console);
}

#[test]
fn kdump_backs_up_low_memory_and_reaches_the_kernel_with_run_at_load() {
    // kexec-tools writes 1 for a crash kernel (it runs where it was
    // loaded); the purgatory copies whatever the loader put there. After
    // verifying every segment, the backup's zeros included, it copies
    // physical [0, 64 KiB) into the backup (crashdump_backup.c), before
    // the DTB patch and run_at_load (purgatory.c, v2wrap.S).
    let sc = Scenario::ppc_kdump("p9-kdump", Cell::P9);
    let backup = sc.index_of(SegmentKind::Backup);
    let out = sc.run();
    assert_booted_with(&out, 6);
    let at = |needle: &str| {
        out.console
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?}:\n{}", out.console))
    };
    let seg = format!("purgatory: segment {backup} (backup) {PPC_BACKUP_ADDR:#x}+0x10000 sha256 ok");
    let copied = format!("purgatory: backup 0x0+0x10000 copied to {PPC_BACKUP_ADDR:#x}");
    let order = [at(&seg), at("purgatory: verified 6 segments"), at(&copied), at("purgatory: dtb: seeds")];
    let run_at_load = at("purgatory: run_at_load 0x1 written to 0x200005c");
    assert!(order.is_sorted() && order[3] < run_at_load, "out of order {order:?} {run_at_load}:\n{}", out.console);
    assert!(out.contains("payload: run_at_load=0x1"), "{}", out.console);
    // The payload found physical [0, 0x10000) (VOF's code, the entry
    // block kexec copied to 0, the crashed kernel's pattern at
    // 0x1000..0x8000) in the backup, byte for byte.
    let line = out.line_with("payload: backup ").unwrap_or_else(|| panic!("no backup line:\n{}", out.console));
    let want = format!("payload: backup {PPC_BACKUP_ADDR:#x} equals physical 0x0+0x10000 (");
    assert!(line.starts_with(&want) && line.ends_with("bytes non-zero), 0x4..0x100 our head"), "{line}");
    let nonzero: usize = line[want.len()..].split(' ').next().and_then(|n| n.parse().ok()).expect("a count");
    assert!(nonzero > 0x7000 - 0x100, "the pattern at 0x1000..0x8000 is not in the backup: {line}");
}

#[test]
fn a_backup_segment_written_before_the_purgatory_is_refused() {
    // Not the loader's zeros: something wrote the crash region after the
    // load. The digest names the backup; nothing is copied or entered.
    let mut sc = Scenario::ppc_kdump("p9-kdump-bad-backup", Cell::P9).halting();
    let backup = sc.index_of(SegmentKind::Backup);
    sc.corrupt.push((backup, 0x8000, 0x01));
    let out = sc.run();
    assert_refused(&out, backup, SegmentKind::Backup, "sha256 mismatch");
    assert!(!out.contains("purgatory: backup "), "{}", out.console);
    assert!(out.halted_at.is_some(), "not in the halt loop: {out:?}");
    assert!(!out.payload_ran(), "{}", out.console);
}

#[test]
fn an_entry_block_that_is_not_the_kernels_head_is_refused() {
    // A loader that did not copy the kernel's bytes (0x60 still our `b .`)
    // or a block changed in memory: the held CPUs would not be the
    // kernel's. The kernel is never entered.
    let mut sc = Scenario::standard("p9-bad-block", Cell::P9).halting();
    let block = sc.image().header.entry_offset as usize;
    sc.corrupt_purgatory.push((block + 0x61, 0x10));
    let out = sc.run();
    let line = format!("REFUSED: entry block {:#x} differs from the kernel's first 256 bytes at 0x61", 0xb000100);
    assert!(out.contains(&line), "{}", out.console);
    assert!(out.contains("purgatory: not entering the kernel"), "{}", out.console);
    assert!(out.halted_at.is_some(), "not in the halt loop: {out:?}");
    assert!(!out.payload_ran(), "{}", out.console);
}

#[test]
fn corruption_anywhere_in_any_segment_is_refused_and_rtas_resets() {
    let base = Scenario::standard("p9-corrupt", Cell::P9);
    let kinds =
        [SegmentKind::Kernel, SegmentKind::Initrd, SegmentKind::Dtb, SegmentKind::ElfCoreHdr, SegmentKind::Other];
    let mut cases = Vec::new();
    for kind in kinds {
        let index = base.index_of(kind);
        let len = base.segments[index].data.len();
        for (where_, off) in [("start", 0), ("middle", len / 2), ("end", len - 1)] {
            cases.push((kind, index, where_, off));
        }
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .chunks(cases.len().div_ceil(2))
            .map(|chunk| {
                let base = &base;
                s.spawn(move || {
                    for &(kind, index, where_, off) in chunk {
                        let mut sc = base.clone();
                        sc.name = format!("p9-corrupt-{}-{where_}", kind.name());
                        sc.corrupt.push((index, off, 0x01));
                        let out = sc.run();
                        assert_refused(&out, index, kind, "sha256 mismatch");
                        assert!(out.contains("  expected "), "{}", out.console);
                        assert!(out.contains("  actual   "), "{}", out.console);
                        if kind == SegmentKind::Dtb {
                            // RTAS comes from a DTB whose digest matched:
                            // none here; the CPU halts instead.
                            let no = "purgatory: cannot reset the system (no usable RTAS system-reboot)";
                            assert!(out.contains(no), "{}", out.console);
                            assert!(out.halted_at.is_some(), "not in the halt loop: {out:?}");
                            continue;
                        }
                        assert!(out.contains("resetting the system (RTAS system-reboot)"), "{}", out.console);
                        // RTAS system-reboot under -no-reboot: QEMU's
                        // SHUTDOWN event says guest-reset, and nothing ran
                        // after the line.
                        assert!(out.reset(), "no reset: {out:?}");
                        let last = out.console.lines().rfind(|l| !l.trim().is_empty()).unwrap_or_default();
                        assert!(
                            last.starts_with("purgatory: resetting the system (RTAS system-reboot)"),
                            "after: {last}"
                        );
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("corruption cases");
        }
    });
}

#[test]
fn refusal_with_halt_stops_the_cpu_and_without_rtas_reset_halts_too() {
    let mut sc = Scenario::standard("p9-halt", Cell::P9).halting();
    sc.corrupt.push((1, 100, 0x80));
    let out = sc.run();
    assert_refused(&out, 1, SegmentKind::Initrd, "sha256 mismatch");
    assert!(out.console.ends_with("purgatory: halted\n"), "{}", out.console);
    assert!(out.halted_at.is_some(), "not in the halt loop: {out:?}");
    assert_eq!(out.shutdown.as_deref(), Some("host-qmp-quit"));
    // Reset asked for, but the DTB's RTAS lies inside a segment: not
    // called; said so, halted.
    let mut sc = Scenario::standard("p9-no-rtas", Cell::P9);
    let dtb = sc.index_of(SegmentKind::Dtb);
    sc.segments[dtb].data =
        test_harness::fixtures::dtb_ppc64le(2 << 30, &[0], 0x0f00_0005, Some((0x0400_0000, 0x1000)));
    sc.segments[dtb].data.resize(4096, 0);
    sc.corrupt.push((1, 100, 0x80));
    let out = sc.run();
    assert_refused(&out, 1, SegmentKind::Initrd, "sha256 mismatch");
    assert!(out.contains("purgatory: cannot reset the system (no usable RTAS system-reboot)"), "{}", out.console);
    assert!(out.halted_at.is_some(), "not in the halt loop: {out:?}");
}

#[test]
fn excluded_segments_are_not_hashed_but_boot() {
    for (first, purgatory_addr) in [(true, PPC_PURGATORY_ADDR), (false, 0x0060_0000)] {
        let mut sc = Scenario::standard("p9-excluded", Cell::P9);
        sc.purgatory_addr = purgatory_addr;
        let core = sc.index_of(SegmentKind::ElfCoreHdr);
        let seg = sc.segments.remove(core);
        if first {
            sc.segments.insert(0, seg);
            sc.kernel_index = 1;
            sc.dtb_index = Some(3);
        } else {
            sc.segments.push(seg);
            sc.dtb_index = Some(2);
        }
        let core = sc.index_of(SegmentKind::ElfCoreHdr);
        let dtb = sc.index_of(SegmentKind::Dtb);
        sc.segments[core].excluded = true;
        sc.segments[dtb].excluded = true;
        sc.corrupt.push((core, 64 + 56 + 40, 0x10));
        let bootargs_at = sc.segments[dtb].data.windows(7).position(|w| w == b"harness").expect("bootargs");
        sc.corrupt.push((dtb, bootargs_at, 0x20));
        let out = sc.run();
        assert_booted(&out);
        for line in [format!("segment {core} (elfcorehdr)"), format!("segment {dtb} (dtb)")] {
            let l = out.line_with(&line).unwrap_or_else(|| panic!("no line for {line}:\n{}", out.console));
            assert!(l.ends_with("excluded, structure ok"), "{l}");
        }
        assert!(dtb_line(&out).contains("bootargs=\"console=hvc0 Harness\""), "{}", out.console);
    }
}

#[test]
fn malformed_excluded_segments_are_refused() {
    let mut sc = Scenario::standard("p9-bad-excluded-dtb", Cell::P9);
    let dtb = sc.index_of(SegmentKind::Dtb);
    sc.segments[dtb].excluded = true;
    sc.corrupt.push((dtb, 0, 0xff));
    let out = sc.run();
    assert_refused(&out, dtb, SegmentKind::Dtb, "excluded but malformed: FDT magic is not 0xd00dfeed");

    let mut sc = Scenario::standard("p9-bad-excluded-core", Cell::P9);
    let core = sc.index_of(SegmentKind::ElfCoreHdr);
    sc.segments[core].excluded = true;
    sc.corrupt.push((core, 57, 0x7f));
    let out = sc.run();
    assert_refused(&out, core, SegmentKind::ElfCoreHdr, "ELF program headers do not fit in the segment");
}

#[test]
fn relocates_itself_at_any_4k_aligned_address() {
    for addr in [0x0b00_7000u64, 0x0060_0000, 0x7fe0_0000] {
        let mut sc = Scenario::standard("p9-reloc", Cell::P9);
        sc.purgatory_addr = addr;
        let out = sc.run();
        assert_booted(&out);
        assert!(out.contains(&format!("image {addr:#x}, cpu 0x0,")), "{}", out.console);
    }
}

#[test]
fn bad_parameter_blocks_are_refused() {
    // Without the magic nothing in the block is trusted, its console
    // included: a silent halt.
    let mut sc = Scenario::standard("p9-no-params", Cell::P9);
    sc.edit_params = Some(|p| p.magic = 0);
    let out = sc.run();
    assert!(!out.contains("purgatory:"), "{}", out.console);
    assert!(out.halted_at.is_some(), "not in the halt loop: {out:?}");
    assert!(!out.payload_ran(), "{}", out.console);

    // A refused block names no DTB the purgatory may read RTAS from:
    // reset is asked for, but it halts.
    let mut sc = Scenario::standard("p9-bad-entry", Cell::P9);
    sc.edit_params = Some(|p| p.kernel_entry = 0x0900_0000);
    let out = sc.run();
    let line = "REFUSED: bad parameter block: kernel entry 0x9000000 is not inside a kernel segment";
    assert!(out.contains(line), "{}", out.console);
    assert!(out.contains("purgatory: cannot reset the system (no usable RTAS system-reboot)"), "{}", out.console);
    assert!(out.halted_at.is_some(), "not in the halt loop: {out:?}");
    assert!(!out.payload_ran(), "{}", out.console);

    // The kernel's first 256 bytes must be in its segment (the purgatory
    // writes run_at_load there).
    let mut sc = Scenario::standard("p9-kernel-head", Cell::P9);
    sc.edit_params = Some(|p| p.kernel_entry = p.segments[0].mem + p.segments[0].len - 0x80);
    let out = sc.run();
    assert!(
        out.contains(
            "bad parameter block: kernel entry 0x2005f80: the kernel's first 256 bytes are not inside its segment"
        ),
        "{}",
        out.console
    );
    assert!(!out.payload_ran(), "{}", out.console);
}
