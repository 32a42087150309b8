//! The aarch64 purgatory on QEMU virt: hand-off at each exception level,
//! both digest engines, DTB patches, the corruption matrix, exclusions and
//! malformed input. Every assertion is on what the guest printed or how
//! QEMU exited.

use kexec_purgatory::abi::{
    SegmentKind, PARAM_FLAG_DEBUG_CACHES_OFF, PARAM_FLAG_DEBUG_SOFT_SHA256, PARAM_FLAG_SKIP_DIGESTS,
};
use object::{Object, ObjectSection};
use test_harness::checks::{assert_engine_hashes_odd_lengths, assert_refused, hex, with_odd_segments};
use test_harness::fixtures::{KASLR_PLACEHOLDER, RNG_PLACEHOLDER, STALE_BOOT_CPUID};
use test_harness::scenario::{DTB_ADDR, INITRD_ADDR, OTHER_ADDR, PURGATORY_ADDR};
use test_harness::{Cell, Outcome, Scenario};

/// The kernel ran, found booting.rst's entry state, at the expected EL.
fn assert_booted(out: &Outcome, cell: Cell) {
    assert!(out.contains("payload: checks passed"), "payload did not pass:\n{}", out.console);
    assert_eq!(out.exit, Some(0), "semihosting exit status:\n{}", out.console);
    let entered = out.line_with("payload: entered").expect("entry line");
    assert!(entered.contains(&format!("el={}", cell.el())), "wrong EL: {entered}");
    assert!(entered.contains(&format!("e2h={}", u8::from(cell.vhe))), "wrong E2H: {entered}");
    assert!(entered.contains(&format!("x0={DTB_ADDR:#x} x1=0x0 x2=0x0 x3=0x0")), "registers: {entered}");
    assert!(entered.contains("mmu=0 dcache=0"), "MMU/D-cache left on: {entered}");
    assert!(out.contains("purgatory: verified 5 segments"), "no summary:\n{}", out.console);
    // The payload's semihosting exit: no reset, no halt.
    assert_eq!((out.shutdown.as_deref(), out.halted_at), (None, None), "{}", out.console);
}

/// The purgatory reset the system (QEMU's SHUTDOWN event says guest-reset
/// under -no-reboot) and nothing ran after: its resetting line, if it had
/// a console, is the last thing printed.
fn assert_reset(out: &Outcome) {
    assert!(
        out.reset(),
        "no PSCI reset (shutdown {:?}, exit {:?}, halted at {:?}):\n{}",
        out.shutdown,
        out.exit,
        out.halted_at,
        out.console
    );
    assert_eq!(out.exit, Some(0), "{}", out.console);
    assert!(!out.payload_ran(), "{}", out.console);
    if let Some(last) = out.console.lines().rfind(|l| !l.trim().is_empty()) {
        assert!(last.starts_with("purgatory: resetting the system (PSCI SYSTEM_RESET via"), "after the reset: {last}");
    }
}

/// The vCPU sat in the purgatory's halt loop (its PC, read over QMP), and
/// the harness ended the run.
fn assert_halted(out: &Outcome) {
    assert!(
        out.halted_at.is_some(),
        "not in the halt loop (killed {}, exit {:?}):\n{}",
        out.killed,
        out.exit,
        out.console
    );
    assert_eq!(out.shutdown.as_deref(), Some("host-qmp-quit"), "{}", out.console);
    assert!(!out.payload_ran(), "{}", out.console);
}

#[test]
fn boots_at_el1() {
    let out = Scenario::standard("el1", Cell::EL1).run();
    assert_booted(&out, Cell::EL1);
    assert!(out.contains("aarch64 EL1, image 0x4b000000, mmu+caches on"), "{}", out.console);
    assert!(out.contains("hashed with armv8-sha2"), "{}", out.console);
}

#[test]
fn boots_at_el2_nvhe() {
    let out = Scenario::standard("el2-nvhe", Cell::EL2_NVHE).run();
    assert_booted(&out, Cell::EL2_NVHE);
    assert!(out.contains("aarch64 EL2 nVHE"), "{}", out.console);
    assert!(out.contains("mmu+caches on"), "{}", out.console);
}

#[test]
fn boots_at_el2_vhe() {
    let out = Scenario::standard("el2-vhe", Cell::EL2_VHE).run();
    assert_booted(&out, Cell::EL2_VHE);
    assert!(out.contains("aarch64 EL2 VHE"), "{}", out.console);
    assert!(out.contains("mmu+caches on"), "{}", out.console);
}

#[test]
fn portable_sha256_at_every_el() {
    for cell in [Cell::EL1, Cell::EL2_NVHE, Cell::EL2_VHE] {
        let mut sc = Scenario::standard("soft", cell);
        sc.flags |= PARAM_FLAG_DEBUG_SOFT_SHA256;
        let out = sc.run();
        assert_booted(&out, cell);
        assert!(out.contains("hashed with portable"), "{}", out.console);
    }
}

#[test]
fn caches_off_mode_verifies_too() {
    let mut sc = Scenario::standard("caches-off", Cell::EL2_NVHE);
    sc.flags |= PARAM_FLAG_DEBUG_CACHES_OFF | PARAM_FLAG_DEBUG_SOFT_SHA256;
    let out = sc.run();
    assert_booted(&out, Cell::EL2_NVHE);
    assert!(out.contains("mmu+caches off (debug flag)"), "{}", out.console);
}

#[test]
fn every_engine_hashes_odd_lengths_at_odd_addresses() {
    // The Armv8 SHA-256 instructions with caches on and (MMU off: Device
    // memory, where unaligned accesses fault) off, and the portable code.
    let modes =
        [("armv8-sha2", 0), ("armv8-sha2", PARAM_FLAG_DEBUG_CACHES_OFF), ("portable", PARAM_FLAG_DEBUG_SOFT_SHA256)];
    for (engine, flags) in modes {
        assert_engine_hashes_odd_lengths(engine, |name| {
            let mut sc = Scenario::standard(&format!("{name}-{flags:#x}"), Cell::EL1);
            sc.flags |= flags;
            with_odd_segments(sc, 0x4c00_0000, 100)
        });
    }
}

fn seeds_line(out: &Outcome) -> String {
    out.line_with("payload: dtb ok").expect("payload printed the DTB line").to_string()
}

#[test]
fn seeds_refreshed_when_cpu_has_rndr() {
    // -cpu max implements FEAT_RNG.
    let first = Scenario::standard("rndr-1", Cell::EL1_MAX).run();
    let second = Scenario::standard("rndr-2", Cell::EL1_MAX).run();
    for out in [&first, &second] {
        assert_booted(out, Cell::EL1_MAX);
        assert!(out.contains("seeds refreshed 2, kept 0"), "{}", out.console);
        let line = seeds_line(out);
        assert!(!line.contains(&format!("kaslr-seed={}", hex(&KASLR_PLACEHOLDER))), "kaslr-seed unchanged: {line}");
        assert!(!line.contains(&format!("rng-seed={}", hex(&RNG_PLACEHOLDER))), "rng-seed unchanged: {line}");
    }
    assert_ne!(seeds_line(&first), seeds_line(&second), "two boots got the same seeds");
}

#[test]
fn seeds_kept_without_rndr_and_boot_cpu_set() {
    // cortex-a72 has no FEAT_RNG: the loader's values stay.
    let out = Scenario::standard("no-rndr", Cell::EL1).run();
    assert_booted(&out, Cell::EL1);
    assert!(out.contains("seeds refreshed 0, kept 2"), "{}", out.console);
    let line = seeds_line(&out);
    assert!(line.contains(&format!("kaslr-seed={}", hex(&KASLR_PLACEHOLDER))), "{line}");
    assert!(line.contains(&format!("rng-seed={}", hex(&RNG_PLACEHOLDER))), "{line}");
    // The DTB was built with a stale boot_cpuid_phys; CPU 0's MPIDR aff is 0.
    assert!(line.contains("boot_cpuid=0x0 "), "boot_cpuid_phys not set (was {STALE_BOOT_CPUID:#x}): {line}");
}

#[test]
fn corruption_anywhere_in_any_segment_is_refused() {
    let base = Scenario::standard("corrupt", Cell::EL2_NVHE);
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
                        sc.name = format!("corrupt-{}-{where_}", kind.name());
                        sc.corrupt.push((index, off, 0x01));
                        let out = sc.run();
                        assert_refused(&out, index, kind, "sha256 mismatch");
                        assert!(out.contains("  expected "), "{}", out.console);
                        assert!(out.contains("  actual   "), "{}", out.console);
                        assert_reset(&out);
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
fn refusal_with_halt_stops_the_cpu() {
    let mut sc = Scenario::standard("halt", Cell::EL1).halting();
    sc.corrupt.push((1, 100, 0x80));
    let out = sc.run();
    assert_refused(&out, 1, SegmentKind::Initrd, "sha256 mismatch");
    assert!(out.console.ends_with("purgatory: halted\n"), "{}", out.console);
    assert_halted(&out);
}

#[test]
fn a_cpu_stuck_elsewhere_is_not_taken_for_halted() {
    // Negative control for the halt check: a relocation of the wrong type
    // stops _start in its own WFE loop before anything is printed. Silent
    // and stopped too, but not in purgatory_halt: the harness must say so.
    let mut sc = Scenario::standard("stuck-in-entry", Cell::EL1);
    let file = object::File::parse(loader_host::purgatory_image::AARCH64_ELF).unwrap();
    let rela = file.section_by_name(".rela.dyn").expect(".rela.dyn").address() as usize;
    sc.corrupt_purgatory.push((rela + 8, 0x01)); // r_info: R_AARCH64_RELATIVE (1027) -> 1026
    sc.deadline = std::time::Duration::from_secs(3);
    let out = sc.run();
    assert_silent(&out);
    assert!(out.killed && out.halted_at.is_none() && out.shutdown.is_none(), "{out:?}");
}

#[test]
fn excluded_segments_are_not_hashed_but_boot() {
    // Exclusion is per input segment: check it at the first and the last
    // descriptor, with the purgatory below and above the segments.
    for (first, purgatory_addr) in [(true, PURGATORY_ADDR), (false, 0x4010_0000)] {
        let mut sc = Scenario::standard("excluded", Cell::EL1);
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
        // The kernel rewrote them after load (a p_memsz, a bootargs byte).
        sc.corrupt.push((core, 64 + 56 + 40, 0x10));
        let bootargs_at = sc.segments[dtb].data.windows(7).position(|w| w == b"harness").expect("bootargs");
        sc.corrupt.push((dtb, bootargs_at, 0x20));
        let out = sc.run();
        assert_booted(&out, Cell::EL1);
        let core_line = format!("segment {core} (elfcorehdr)");
        let dtb_line = format!("segment {dtb} (dtb)");
        for line in [core_line, dtb_line] {
            let l = out.line_with(&line).unwrap_or_else(|| panic!("no line for {line}:\n{}", out.console));
            assert!(l.ends_with("excluded, structure ok"), "{l}");
        }
        assert!(
            seeds_line(&out).contains("bootargs=\"console=ttyAMA0 Harness\""),
            "the rewritten DTB was not the one handed over:\n{}",
            out.console
        );
    }
}

#[test]
fn malformed_excluded_dtb_is_refused() {
    let mut sc = Scenario::standard("bad-excluded-dtb", Cell::EL1);
    let dtb = sc.index_of(SegmentKind::Dtb);
    sc.segments[dtb].excluded = true;
    sc.corrupt.push((dtb, 0, 0xff)); // FDT magic
    let out = sc.run();
    assert_refused(&out, dtb, SegmentKind::Dtb, "excluded but malformed: FDT magic is not 0xd00dfeed");
    assert_reset(&out);
}

#[test]
fn excluded_dtb_is_walked_token_by_token() {
    // A valid header, a broken structure block: the whole tree is checked,
    // not just the header.
    let mut sc = Scenario::standard("bad-excluded-dtb-token", Cell::EL1);
    let dtb = sc.index_of(SegmentKind::Dtb);
    sc.segments[dtb].excluded = true;
    let data = &sc.segments[dtb].data;
    let off_struct = u32::from_be_bytes(data[8..12].try_into().unwrap()) as usize;
    sc.corrupt.push((dtb, off_struct + 3, 0x06)); // FDT_BEGIN_NODE (1) -> 7
    let out = sc.run();
    assert_refused(&out, dtb, SegmentKind::Dtb, "excluded but malformed: FDT structure block has an unknown token");
    assert_reset(&out);
}

#[test]
fn malformed_dtb_is_not_patched_even_unhashed() {
    // kexec-tools' -i (no digests): the DTB patcher still walks the whole
    // blob first and refuses a property name outside the strings block.
    let mut sc = Scenario::standard("unhashed-bad-dtb", Cell::EL1);
    sc.flags |= PARAM_FLAG_SKIP_DIGESTS;
    let dtb = sc.index_of(SegmentKind::Dtb);
    let data = &sc.segments[dtb].data;
    let off_struct = u32::from_be_bytes(data[8..12].try_into().unwrap()) as usize;
    // The root's first property: BEGIN_NODE, "\0\0\0\0", PROP, len, nameoff.
    sc.corrupt.push((dtb, off_struct + 16, 0x7f)); // nameoff high byte
    let out = sc.run();
    assert!(out.contains("purgatory: verification skipped at the loader's request (-i)"), "{}", out.console);
    let line = "purgatory: REFUSED: cannot patch the dtb: FDT property name is not inside the strings block";
    assert!(out.contains(line), "expected '{line}':\n{}", out.console);
    assert!(out.contains("purgatory: not entering the kernel"), "{}", out.console);
    assert_reset(&out);
}

#[test]
fn malformed_excluded_elfcorehdr_is_refused() {
    let mut sc = Scenario::standard("bad-excluded-core", Cell::EL2_NVHE);
    let core = sc.index_of(SegmentKind::ElfCoreHdr);
    sc.segments[core].excluded = true;
    sc.corrupt.push((core, 57, 0x7f)); // e_phnum high byte: headers overrun the segment
    let out = sc.run();
    assert_refused(&out, core, SegmentKind::ElfCoreHdr, "ELF program headers do not fit in the segment");
    assert_reset(&out);
}

#[test]
fn relocates_itself_at_any_4k_aligned_address() {
    for addr in [0x4b00_7000u64, 0x4010_0000, 0x5fe0_0000] {
        let mut sc = Scenario::standard("reloc", Cell::EL2_NVHE);
        sc.purgatory_addr = addr;
        let out = sc.run();
        assert_booted(&out, Cell::EL2_NVHE);
        assert!(out.contains(&format!("image {addr:#x}, mmu+caches on")), "{}", out.console);
    }
}

/// The block was refused with `reason`, the purgatory said so and reset
/// the system (QEMU exits on PSCI SYSTEM_RESET under -no-reboot).
fn assert_params_refused(out: &Outcome, reason: &str) {
    let line = format!("purgatory: REFUSED: bad parameter block: {reason}");
    assert!(out.contains(&line), "expected '{line}':\n{}", out.console);
    assert!(out.contains("purgatory: not entering the kernel"), "{}", out.console);
    assert!(out.contains("purgatory: resetting the system (PSCI SYSTEM_RESET via HVC)"), "{}", out.console);
    assert_reset(out);
}

/// Nothing at all came from the purgatory (its console was not validated).
fn assert_silent(out: &Outcome) {
    assert!(!out.contains("purgatory:"), "printed on an unvalidated console:\n{}", out.console);
    assert!(!out.payload_ran(), "{}", out.console);
}

#[test]
fn unfilled_parameter_block_halts_without_a_word() {
    // Without the magic nothing in the block is trusted: not the console,
    // not the failure policy (RESET here): the CPU halts, silently.
    let mut sc = Scenario::standard("no-params", Cell::EL1);
    sc.edit_params = Some(|p| p.magic = 0);
    let out = sc.run();
    assert_silent(&out);
    assert_halted(&out);
}

#[test]
fn newer_parameter_block_is_refused() {
    let mut sc = Scenario::standard("params-v2", Cell::EL1);
    sc.edit_params = Some(|p| p.version = 2);
    assert_params_refused(&sc.run(), "unsupported version 2");
}

#[test]
fn kernel_entry_outside_segments_is_refused() {
    let mut sc = Scenario::standard("bad-entry", Cell::EL1);
    sc.edit_params = Some(|p| p.kernel_entry = 0x5000_0000);
    assert_params_refused(&sc.run(), "kernel entry 0x50000000 is not inside a kernel segment");
}

#[test]
fn kernel_entry_in_the_initrd_is_refused() {
    let mut sc = Scenario::standard("entry-in-initrd", Cell::EL1);
    sc.edit_params = Some(|p| p.kernel_entry = INITRD_ADDR + 0x40);
    assert_params_refused(&sc.run(), "kernel entry 0x44000040 is not inside a kernel segment");
}

#[test]
fn dtb_in_a_segment_of_another_kind_is_refused() {
    let mut sc = Scenario::standard("dtb-in-other", Cell::EL1);
    sc.edit_params = Some(|p| p.boot_data = OTHER_ADDR);
    assert_params_refused(&sc.run(), "boot data 0x4a200000 is not inside a dtb segment");
}

#[test]
fn segment_over_the_purgatory_is_refused_before_anything_else() {
    // The "other" segment's descriptor reaches into the purgatory: refused
    // before any page table is built over it or any digest taken.
    let mut sc = Scenario::standard("overlaps-image", Cell::EL1);
    sc.edit_params = Some(|p| p.segments[4].len = PURGATORY_ADDR + 0x1000 - OTHER_ADDR);
    let out = sc.run();
    assert!(out.contains("bad parameter block: segment 4 overlaps the purgatory image 0x4b000000+"), "{}", out.console);
    assert!(!out.contains("mmu+caches"), "set-up ran before validation:\n{}", out.console);
    assert_params_refused(&out, "segment 4 overlaps");
}

#[test]
fn console_inside_a_segment_is_never_written() {
    // Writing that "UART" would change verified memory: the purgatory
    // refuses without printing a byte, and resets as asked.
    for (name, base) in [("console-in-initrd", INITRD_ADDR + 0x100), ("console-in-image", PURGATORY_ADDR + 0x1000)] {
        let mut sc = Scenario::standard(name, Cell::EL1);
        sc.edit_params = Some(if base == INITRD_ADDR + 0x100 {
            |p| p.console.base = INITRD_ADDR + 0x100
        } else {
            |p| p.console.base = PURGATORY_ADDR + 0x1000
        });
        let out = sc.run();
        assert_silent(&out);
        assert_reset(&out);
    }
}
