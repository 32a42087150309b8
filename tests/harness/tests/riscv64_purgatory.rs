//! The riscv64 purgatory on QEMU virt: the hand-off boot.rst asks for,
//! both digest engines (Zknh where QEMU exposes it), seeds from the `seed`
//! CSR where S-mode may read it, the corruption matrix, exclusions and
//! malformed input, relocation at odd addresses, SBI reset or halt. Every
//! assertion is on what the guest printed or how the run ended as QEMU
//! reports it over QMP (a guest-reset SHUTDOWN event, the PC in the
//! purgatory's halt loop).

use kexec_purgatory::abi::{SegmentKind, CONSOLE_SBI, PARAM_FLAG_DEBUG_SOFT_SHA256};
use test_harness::checks::{assert_engine_hashes_odd_lengths, assert_refused, hex, with_odd_segments};
use test_harness::fixtures::{KASLR_PLACEHOLDER, RNG_PLACEHOLDER, STALE_BOOT_CPUID};
use test_harness::scenario::{RV_DTB_ADDR, RV_PURGATORY_ADDR};
use test_harness::{Cell, Outcome, Scenario};

/// The kernel ran and found boot.rst's entry state: a0 = hart 0, a1 = the
/// DTB, satp = 0, interrupts off, the other argument registers zero.
fn assert_booted(out: &Outcome) {
    assert!(out.contains("payload: checks passed"), "payload did not pass:\n{}", out.console);
    assert_eq!(out.exit, Some(0), "sifive_test exit status:\n{}", out.console);
    let entered = out.line_with("payload: entered").expect("entry line");
    let want = format!("a0=0x0 a1={RV_DTB_ADDR:#x} a2=0x0 a7=0x0 satp=0x0 sie=0x0 sstatus.sie=0");
    assert!(entered.contains(&want), "registers: {entered}");
    assert!(out.contains("purgatory: verified 5 segments"), "no summary:\n{}", out.console);
    assert!(out.contains(&format!("purgatory: entering kernel at 0x80400000, dtb {RV_DTB_ADDR:#x}")));
}

fn seeds_line(out: &Outcome) -> String {
    out.line_with("payload: dtb ok").expect("payload printed the DTB line").to_string()
}

#[test]
fn rv_boots_under_opensbi_with_the_portable_engine() {
    let out = Scenario::standard("rv", Cell::RV).run();
    assert_booted(&out);
    assert!(out.contains("riscv64 S-mode, image 0x8b000000, hart 0x0, a1 0x8a000000"), "{}", out.console);
    assert!(out.contains("boot hart isa from riscv,isa: no-zknh no-zkr"), "{}", out.console);
    assert!(out.contains("hashed with portable"), "{}", out.console);
    // No Zkr: the loader's seeds stay; boot_cpuid_phys = hart id.
    assert!(out.contains("seeds refreshed 0, kept 2; boot cpu 0x0"), "{}", out.console);
    let line = seeds_line(&out);
    assert!(line.contains(&format!("kaslr-seed={}", hex(&KASLR_PLACEHOLDER))), "{line}");
    assert!(line.contains(&format!("rng-seed={}", hex(&RNG_PLACEHOLDER))), "{line}");
    assert!(line.contains("boot_cpuid=0x0 "), "boot_cpuid_phys not set (was {STALE_BOOT_CPUID:#x}): {line}");
}

#[test]
fn rv_zknh_engine_when_the_hart_has_it() {
    let out = Scenario::standard("rv-zknh", Cell::RV_ZKNH).run();
    assert_booted(&out);
    assert!(out.contains("boot hart isa from riscv,isa: zknh no-zkr"), "{}", out.console);
    assert!(out.contains("hashed with zknh"), "{}", out.console);
    // The debug flag forces the portable code on the same hart.
    let mut sc = Scenario::standard("rv-zknh-soft", Cell::RV_ZKNH);
    sc.flags |= PARAM_FLAG_DEBUG_SOFT_SHA256;
    let out = sc.run();
    assert_booted(&out);
    assert!(out.contains("hashed with portable"), "{}", out.console);
}

#[test]
fn rv_every_engine_hashes_odd_lengths_at_odd_addresses() {
    for (engine, flags) in [("zknh", 0), ("portable", PARAM_FLAG_DEBUG_SOFT_SHA256)] {
        assert_engine_hashes_odd_lengths(engine, |name| {
            let mut sc = Scenario::standard(&format!("rv-{name}"), Cell::RV_ZKNH);
            sc.flags |= flags;
            with_odd_segments(sc, 0x8c00_0000, 200)
        });
    }
}

#[test]
fn rv_dtb_claiming_zknh_on_a_hart_without_it_never_enters_the_kernel() {
    // The engine follows the DTB; a lying DTB makes the first sha256sig0
    // trap, which the purgatory reports instead of running the kernel.
    let mut cell = Cell::RV;
    cell.isa = "rv64imafdch_zicsr_zknh";
    let out = Scenario::standard("rv-lying-isa", cell).halting().run();
    assert!(out.contains("purgatory: unexpected trap scause 0x2"), "{}", out.console);
    assert!(out.contains("not entering the kernel"), "{}", out.console);
    assert!(out.contains("purgatory: halted"), "{}", out.console);
    assert!(out.halted_at.is_some(), "not in the halt loop: {out:?}");
    assert!(!out.payload_ran(), "{}", out.console);
}

#[test]
fn rv_seed_csr_that_traps_in_s_mode_keeps_the_loaders_seeds() {
    // QEMU 7.2's OpenSBI v1.1 leaves mseccfg.SSEED clear: the ISA string
    // says zkr but reading `seed` traps. The guard turns that into "no
    // entropy" (the trixie kernel itself dies on it, docs/riscv64.md).
    let out = Scenario::standard("rv-zkr-opensbi", Cell::RV_ZKR_OPENSBI).run();
    assert_booted(&out);
    assert!(out.contains("boot hart isa from riscv,isa: zknh zkr"), "{}", out.console);
    assert!(out.contains("seeds refreshed 0, kept 2"), "{}", out.console);
    let line = seeds_line(&out);
    assert!(line.contains(&format!("rng-seed={}", hex(&RNG_PLACEHOLDER))), "{line}");
}

#[test]
fn rv_seeds_refreshed_from_the_seed_csr_when_firmware_grants_it() {
    let first = Scenario::standard("rv-seed-1", Cell::RV_MSTUB).halting().run();
    let second = Scenario::standard("rv-seed-2", Cell::RV_MSTUB).halting().run();
    for out in [&first, &second] {
        assert_booted(out);
        assert!(out.contains("seeds refreshed 2, kept 0; boot cpu 0x0"), "{}", out.console);
        assert!(out.contains("hashed with zknh"), "{}", out.console);
        let line = seeds_line(out);
        assert!(!line.contains(&format!("kaslr-seed={}", hex(&KASLR_PLACEHOLDER))), "kaslr-seed unchanged: {line}");
        assert!(!line.contains(&format!("rng-seed={}", hex(&RNG_PLACEHOLDER))), "rng-seed unchanged: {line}");
    }
    assert_ne!(seeds_line(&first), seeds_line(&second), "two boots got the same seeds");
}

#[test]
fn rv_sbi_console_carries_the_purgatory_lines() {
    // OpenSBI v1.1 has no DBCN: the legacy putchar is used.
    let mut sc = Scenario::standard("rv-sbi-console", Cell::RV);
    sc.edit_params = Some(|p| {
        p.console.kind = CONSOLE_SBI;
        p.console.base = 0;
    });
    let out = sc.run();
    assert_booted(&out);
    assert!(out.contains("purgatory: riscv64 S-mode, image 0x8b000000, hart 0x0"), "{}", out.console);
}

#[test]
fn rv_corruption_anywhere_in_any_segment_is_refused_and_sbi_resets() {
    let base = Scenario::standard("rv-corrupt", Cell::RV_ZKNH);
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
                        sc.name = format!("rv-corrupt-{}-{where_}", kind.name());
                        sc.corrupt.push((index, off, 0x01));
                        let out = sc.run();
                        assert_refused(&out, index, kind, "sha256 mismatch");
                        assert!(out.contains("  expected "), "{}", out.console);
                        assert!(out.contains("  actual   "), "{}", out.console);
                        assert!(out.contains("resetting the system (SBI SRST)"), "{}", out.console);
                        // SRST under -no-reboot: QEMU's SHUTDOWN event says
                        // guest-reset, and nothing ran after the line.
                        assert!(out.reset() && out.exit == Some(0), "no reset: {out:?}");
                        let last = out.console.lines().rfind(|l| !l.trim().is_empty()).unwrap_or_default();
                        assert!(last.starts_with("purgatory: resetting the system (SBI SRST)"), "after: {last}");
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
fn rv_refusal_with_halt_stops_the_hart() {
    let mut sc = Scenario::standard("rv-halt", Cell::RV).halting();
    sc.corrupt.push((1, 100, 0x80));
    let out = sc.run();
    assert_refused(&out, 1, SegmentKind::Initrd, "sha256 mismatch");
    assert!(out.console.ends_with("purgatory: halted\n"), "{}", out.console);
    assert!(out.halted_at.is_some(), "not in the halt loop: {out:?}");
    assert_eq!(out.shutdown.as_deref(), Some("host-qmp-quit"));
}

#[test]
fn rv_excluded_segments_are_not_hashed_but_boot() {
    for (first, purgatory_addr) in [(true, RV_PURGATORY_ADDR), (false, 0x8060_0000)] {
        let mut sc = Scenario::standard("rv-excluded", Cell::RV_ZKNH);
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
        assert!(seeds_line(&out).contains("bootargs=\"console=ttyAMA0 Harness\""), "{}", out.console);
    }
}

#[test]
fn rv_malformed_excluded_segments_are_refused() {
    let mut sc = Scenario::standard("rv-bad-excluded-dtb", Cell::RV);
    let dtb = sc.index_of(SegmentKind::Dtb);
    sc.segments[dtb].excluded = true;
    sc.corrupt.push((dtb, 0, 0xff));
    let out = sc.run();
    assert_refused(&out, dtb, SegmentKind::Dtb, "excluded but malformed: FDT magic is not 0xd00dfeed");

    let mut sc = Scenario::standard("rv-bad-excluded-core", Cell::RV);
    let core = sc.index_of(SegmentKind::ElfCoreHdr);
    sc.segments[core].excluded = true;
    sc.corrupt.push((core, 57, 0x7f));
    let out = sc.run();
    assert_refused(&out, core, SegmentKind::ElfCoreHdr, "ELF program headers do not fit in the segment");
}

#[test]
fn rv_relocates_itself_at_any_4k_aligned_address() {
    for addr in [0x8b00_7000u64, 0x8060_0000, 0x9fc0_0000] {
        let mut sc = Scenario::standard("rv-reloc", Cell::RV_ZKNH);
        sc.purgatory_addr = addr;
        let out = sc.run();
        assert_booted(&out);
        assert!(out.contains(&format!("image {addr:#x}, hart 0x0, a1 {RV_DTB_ADDR:#x}")), "{}", out.console);
    }
}

#[test]
fn rv_bad_parameter_blocks_are_refused() {
    // Without the magic nothing in the block is trusted, its console
    // included: a silent halt.
    let mut sc = Scenario::standard("rv-no-params", Cell::RV);
    sc.edit_params = Some(|p| p.magic = 0);
    let out = sc.run();
    assert!(!out.contains("purgatory:"), "{}", out.console);
    assert!(out.halted_at.is_some(), "not in the halt loop: {out:?}");
    assert!(!out.payload_ran(), "{}", out.console);

    let mut sc = Scenario::standard("rv-bad-entry", Cell::RV);
    sc.edit_params = Some(|p| p.kernel_entry = 0x9000_0000);
    let out = sc.run();
    let line = "REFUSED: bad parameter block: kernel entry 0x90000000 is not inside a kernel segment";
    assert!(out.contains(line), "{}", out.console);
    assert!(out.reset(), "no SBI reset: {out:?}");
    assert!(!out.payload_ran(), "{}", out.console);
}
