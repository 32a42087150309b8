//! The x86_64 purgatory on QEMU's PC machines (i440FX `pc`, `q35`): the
//! payload's launcher ROM enters long mode and the purgatory as
//! relocate_kernel would, the purgatory verifies and enters the stand-in
//! kernel by boot.rst's 64-bit protocol. The digest engine (portable: TCG
//! has no SHA-NI), boot_params seeds, the corruption matrix, exclusions and
//! malformed input, relocation at odd addresses, reset (port 0xcf9) or
//! halt. Every assertion is on what the guest printed on COM1 or how QEMU
//! exited (isa-debug-exit status, a guest-reset SHUTDOWN event without a
//! logged triple fault, the RIP in the purgatory's halt loop).

use kexec_purgatory::abi::{
    PurgatoryParams, SegmentKind, CONSOLE_8250_IO, CONSOLE_8250_MMIO32, PARAM_FLAG_DEBUG_SOFT_SHA256,
    PARAM_FLAG_SKIP_DIGESTS,
};
use object::{Object, ObjectSection};
use test_harness::checks::{assert_engine_hashes_odd_lengths, assert_refused, hex, with_odd_segments};
use test_harness::fixtures::{x86_setup_data_head, X86_RNG_PLACEHOLDER};
use test_harness::scenario::{
    RAM_SIZE, X86_BOOT_PARAMS_ADDR, X86_INITRD_ADDR, X86_KERNEL_ADDR, X86_OTHER_ADDR, X86_PURGATORY_ADDR,
};
use test_harness::{Cell, Outcome, Scenario};

/// isa-debug-exit: QEMU exits with (value << 1) | 1; the payload writes
/// 0x10 when every check passed, 0x11 when one failed.
const EXIT_PASSED: i32 = 0x21;
const EXIT_FAILED: i32 = 0x23;

/// The state the launcher enters the purgatory with, as relocate_kernel's
/// identity_mapped leaves it: CR0 = PG|NE|ET|MP|PE, CR4 = PAE.
const CR0: u64 = 0x8000_0033;
const CR4: u64 = 0x20;

/// The kernel ran, at its 64-bit entry (load address + 0x200), and found
/// boot.rst's 64-bit protocol state: %rsi = boot_params, __BOOT_CS and
/// __BOOT_DS loaded, interrupts off, long mode, CR4 as at the purgatory's
/// entry, every other general register cleared (the payload checks those
/// and the GDT descriptors and says "checks passed").
fn assert_booted(out: &Outcome) {
    assert!(out.contains("payload: checks passed"), "payload did not pass:\n{}", out.console);
    assert_eq!(out.exit, Some(EXIT_PASSED), "isa-debug-exit status:\n{}", out.console);
    let entered = out.line_with("payload: entered").expect("entry line");
    let want = format!(
        "rsi={X86_BOOT_PARAMS_ADDR:#x} cs=0x10 ds=0x18 es=0x18 ss=0x18 if=0 cr0={CR0:#x} cr4={CR4:#x} efer.lma=1"
    );
    assert!(entered.contains(&want), "entry state: {entered}");
    assert!(out.contains("purgatory: verified 5 segments"), "no summary:\n{}", out.console);
    let entering =
        format!("purgatory: entering kernel at {:#x}, boot_params {X86_BOOT_PARAMS_ADDR:#x}", X86_KERNEL_ADDR + 0x200);
    assert!(out.contains(&entering), "expected '{entering}':\n{}", out.console);
    // The payload's isa-debug-exit: no reset, no halt.
    assert_eq!((out.shutdown.as_deref(), out.halted_at), (None, None), "{}", out.console);
}

/// The purgatory reset the machine through port 0xcf9 (QEMU's SHUTDOWN
/// event says guest-reset under -no-reboot) and nothing ran after: its
/// resetting line, if it had a console, is the last thing printed. A
/// triple fault resets the machine too; `reset()` excludes it.
fn assert_reset(out: &Outcome) {
    assert!(
        out.reset(),
        "no reset (shutdown {:?}, exit {:?}, halted at {:?}):\n{}",
        out.shutdown,
        out.exit,
        out.halted_at,
        out.console
    );
    assert_eq!(out.exit, Some(0), "{}", out.console);
    assert!(!out.payload_ran(), "{}", out.console);
    if let Some(last) = out.console.lines().rfind(|l| !l.trim().is_empty()) {
        assert_eq!(
            last, "purgatory: resetting the system (port 0xcf9, then the keyboard controller)",
            "{}",
            out.console
        );
    }
}

/// The vCPU sat in the purgatory's halt loop (its RIP, read over QMP), and
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

/// What the payload read from boot_params.
fn boot_params_line(out: &Outcome) -> String {
    out.line_with("payload: boot_params ok").expect("payload printed the boot_params line").to_string()
}

/// The SETUP_RNG_SEED bytes the payload found (hex).
fn seed_of(out: &Outcome) -> String {
    let line = boot_params_line(out);
    let at = line.find("rng-seed@").unwrap_or_else(|| panic!("no rng-seed: {line}"));
    line[at..].split('=').nth(1).expect("seed bytes").to_string()
}

#[test]
fn boots_on_pc_with_the_portable_engine() {
    let out = Scenario::standard("x86", Cell::X86).run();
    assert_booted(&out);
    let started = format!("purgatory: x86_64 long mode, image {X86_PURGATORY_ADDR:#x}, cr0 {CR0:#x}, cr4 {CR4:#x}");
    assert!(out.contains(&started), "expected '{started}':\n{}", out.console);
    // TCG's CPUs have no SHA-NI: the purgatory picked the portable code.
    assert!(out.contains("payload: cpuid sha-ni=0"), "{}", out.console);
    assert!(out.contains("bytes hashed with portable in"), "{}", out.console);
    let bp = boot_params_line(&out);
    let want = format!("cmdline=\"console=ttyS0 harness\" initrd={X86_INITRD_ADDR:#x}+0x100000 setup_data nodes=1");
    assert!(bp.contains(&want), "{bp}");
}

#[test]
fn boots_on_q35() {
    let out = Scenario::standard("x86-q35", Cell::X86_Q35).run();
    assert_booted(&out);
    assert!(out.contains("purgatory: x86_64 long mode"), "{}", out.console);
}

#[test]
fn portable_engine_without_sha_ni_and_with_the_debug_flag() {
    // -cpu max: still no SHA-NI under QEMU 7.2's TCG, so CPUID steers the
    // purgatory to the portable engine; the debug flag asks for it
    // outright, skipping the CPUID probe.
    for flags in [0, PARAM_FLAG_DEBUG_SOFT_SHA256] {
        let mut sc = Scenario::standard(&format!("x86-engine-{flags:#x}"), Cell::X86_MAX);
        sc.flags |= flags;
        let out = sc.run();
        assert_booted(&out);
        assert!(out.contains("payload: cpuid sha-ni=0"), "{}", out.console);
        assert!(out.contains("bytes hashed with portable in"), "{}", out.console);
        assert!(!out.contains("sha-ni in"), "{}", out.console);
    }
}

#[test]
fn every_engine_hashes_odd_lengths_at_odd_addresses() {
    for flags in [0, PARAM_FLAG_DEBUG_SOFT_SHA256] {
        assert_engine_hashes_odd_lengths("portable", |name| {
            let mut sc = Scenario::standard(&format!("x86-{name}-{flags:#x}"), Cell::X86);
            sc.flags |= flags;
            with_odd_segments(sc, 0x0c00_0000, 300)
        });
    }
}

#[test]
fn seeds_refreshed_when_cpu_has_rdrand() {
    // -cpu max has RDRAND under TCG: the SETUP_RNG_SEED node is mixed in
    // place.
    let first = Scenario::standard("x86-rdrand-1", Cell::X86_MAX).run();
    let second = Scenario::standard("x86-rdrand-2", Cell::X86_MAX).run();
    for out in [&first, &second] {
        assert_booted(out);
        assert!(out.contains("payload: cpuid sha-ni=0 rdrand=1"), "{}", out.console);
        assert!(out.contains("purgatory: boot_params: rng seeds refreshed 1, kept 0"), "{}", out.console);
        assert_ne!(seed_of(out), hex(&X86_RNG_PLACEHOLDER), "seed unchanged:\n{}", out.console);
    }
    assert_ne!(seed_of(&first), seed_of(&second), "two boots got the same seed");
}

#[test]
fn seeds_kept_without_rdrand() {
    // qemu64 has neither RDRAND nor RDSEED: the loader's seed stays.
    let out = Scenario::standard("x86-no-rdrand", Cell::X86).run();
    assert_booted(&out);
    assert!(out.contains("payload: cpuid sha-ni=0 rdrand=0 rdseed=0"), "{}", out.console);
    assert!(out.contains("purgatory: boot_params: rng seeds refreshed 0, kept 1"), "{}", out.console);
    assert_eq!(seed_of(&out), hex(&X86_RNG_PLACEHOLDER), "{}", out.console);
}

#[test]
fn corruption_anywhere_in_any_segment_is_refused() {
    let base = Scenario::standard("x86-corrupt", Cell::X86);
    let kinds = [
        SegmentKind::Kernel,
        SegmentKind::Initrd,
        SegmentKind::BootParams,
        SegmentKind::ElfCoreHdr,
        SegmentKind::Other,
    ];
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
                        sc.name = format!("x86-corrupt-{}-{where_}", kind.name());
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
    let mut sc = Scenario::standard("x86-halt", Cell::X86).halting();
    sc.corrupt.push((1, 100, 0x80));
    let out = sc.run();
    assert_refused(&out, 1, SegmentKind::Initrd, "sha256 mismatch");
    assert!(out.console.ends_with("purgatory: halted\n"), "{}", out.console);
    assert_halted(&out);
}

#[test]
fn a_cpu_stuck_elsewhere_is_not_taken_for_halted() {
    // Negative control for the halt check: a relocation of the wrong type
    // stops _start in its own CLI/HLT loop before anything is printed.
    // Silent and stopped too, but not in purgatory_halt.
    let mut sc = Scenario::standard("x86-stuck-in-entry", Cell::X86);
    let file = object::File::parse(loader_host::purgatory_image::X86_64_ELF).expect("purgatory ELF");
    let rela = file.section_by_name(".rela.dyn").expect(".rela.dyn").address() as usize;
    sc.corrupt_purgatory.push((rela + 8, 0x01)); // r_info: R_X86_64_RELATIVE (8) -> 9
    sc.deadline = std::time::Duration::from_secs(3);
    let out = sc.run();
    assert_silent(&out);
    assert!(out.killed && out.halted_at.is_none() && out.shutdown.is_none(), "{out:?}");
}

#[test]
fn a_triple_fault_is_not_taken_for_a_reset() {
    // Negative control for the reset check: the launcher jumps to an
    // address its page tables do not map; with no IDT the page fault
    // becomes a triple fault, which QEMU turns into the same guest-reset
    // SHUTDOWN event as port 0xcf9. Its log tells them apart.
    let mut sc = Scenario::standard("x86-triple-fault", Cell::X86);
    sc.launch_at = Some(0x2_0000_0000);
    let out = sc.run();
    assert_eq!(out.shutdown.as_deref(), Some("guest-reset"), "{out:?}");
    assert!(out.triple_fault && !out.reset(), "{out:?}");
    assert_silent(&out);
}

#[test]
fn the_payload_fails_a_kernel_entered_without_the_purgatory() {
    // Negative control for `assert_booted`: the launcher jumps straight
    // to the kernel entry, with its own GDT (0x10 data, 0x18 code),
    // poisoned registers and no boot_params in %rsi. The payload must
    // refuse that state, on the line and in its exit status.
    let mut sc = Scenario::standard("x86-no-purgatory", Cell::X86);
    sc.launch_at = Some(X86_KERNEL_ADDR + 0x200);
    let out = sc.run();
    assert_eq!(out.exit, Some(EXIT_FAILED), "{}", out.console);
    assert!(out.contains("payload: checks FAILED"), "{}", out.console);
    for line in [
        "payload: FAIL selectors are not __BOOT_CS/__BOOT_DS",
        "payload: FAIL gdt[0x10] is not a 64-bit execute/read code segment",
        "payload: FAIL gdt[0x18] is not a 4G flat read/write data segment",
        "payload: FAIL rbx is not zero",
        "payload: FAIL r15 is not zero",
        "is not a boot_params address",
    ] {
        assert!(out.contains(line), "expected '{line}':\n{}", out.console);
    }
    assert!(!out.contains("purgatory:"), "{}", out.console);
}

#[test]
fn excluded_segments_are_not_hashed_but_boot() {
    // Exclusion is per input segment: check it at the first and the last
    // descriptor, with the purgatory above the segments and low (0x3000,
    // where rkexec's bottom-up placement starts).
    for (first, purgatory_addr) in [(true, X86_PURGATORY_ADDR), (false, 0x3000)] {
        let mut sc = Scenario::standard("x86-excluded", Cell::X86);
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
        sc.segments[core].excluded = true;
        // The kernel rewrote it after load (crash hotplug: a p_memsz).
        sc.corrupt.push((core, 64 + 56 + 40, 0x10));
        let out = sc.run();
        assert_booted(&out);
        let line = format!("segment {core} (elfcorehdr)");
        let l = out.line_with(&line).unwrap_or_else(|| panic!("no line for {line}:\n{}", out.console));
        assert!(l.ends_with("excluded, structure ok"), "{l}");
        assert!(out.contains(&format!("image {purgatory_addr:#x}, cr0")), "{}", out.console);
    }
}

#[test]
fn malformed_excluded_elfcorehdr_is_refused() {
    let mut sc = Scenario::standard("x86-bad-excluded-core", Cell::X86);
    let core = sc.index_of(SegmentKind::ElfCoreHdr);
    sc.segments[core].excluded = true;
    sc.corrupt.push((core, 57, 0x7f)); // e_phnum high byte: headers overrun the segment
    let out = sc.run();
    assert_refused(&out, core, SegmentKind::ElfCoreHdr, "ELF program headers do not fit in the segment");
    assert_reset(&out);
}

#[test]
fn excluded_boot_params_is_refused() {
    // Only a DTB or an elfcorehdr may change after load; boot_params (and
    // the setup_data chain in it) is always hashed.
    let mut sc = Scenario::standard("x86-excluded-bp", Cell::X86);
    let bp = sc.index_of(SegmentKind::BootParams);
    sc.segments[bp].excluded = true;
    let out = sc.run();
    assert_refused(&out, bp, SegmentKind::BootParams, "only dtb and elfcorehdr segments may be excluded");
    assert_reset(&out);
}

/// A well-formed SETUP_RNG_SEED node (struct setup_data: next, type, len,
/// then the seed) holding the placeholder.
fn rng_node() -> Vec<u8> {
    let mut node = vec![0u8; 16];
    node[8..12].copy_from_slice(&9u32.to_le_bytes());
    node[12..16].copy_from_slice(&(X86_RNG_PLACEHOLDER.len() as u32).to_le_bytes());
    node.extend_from_slice(&X86_RNG_PLACEHOLDER);
    node
}

#[test]
fn setup_data_outside_the_boot_params_segment_is_never_written() {
    // -cpu max has RDRAND, so only the chain's shape keeps the purgatory
    // from writing: a chain whose head is a well-formed seed node in the
    // "other" segment (verified memory that is not the boot data), and a
    // seed node in the segment whose length runs past the segment's end.
    // Both are loaded as given and hashed; the kernel gets them unchanged.
    let mut sc = Scenario::standard("x86-setup-data-elsewhere", Cell::X86_MAX);
    let (bp, other) = (sc.index_of(SegmentKind::BootParams), sc.index_of(SegmentKind::Other));
    let node_at = 0x800;
    sc.segments[other].data[node_at..node_at + 48].copy_from_slice(&rng_node());
    sc.segments[bp].data[0x250..0x258].copy_from_slice(&(X86_OTHER_ADDR + node_at as u64).to_le_bytes());
    let out = sc.run();
    assert_booted(&out);
    assert!(out.contains("purgatory: boot_params: rng seeds refreshed 0, kept 0"), "{}", out.console);
    let at = format!("rng-seed@{:#x}={}", X86_OTHER_ADDR + node_at as u64, hex(&X86_RNG_PLACEHOLDER));
    assert!(boot_params_line(&out).contains(&at), "expected '{at}':\n{}", out.console);

    let mut sc = Scenario::standard("x86-setup-data-overruns", Cell::X86_MAX);
    let bp = sc.index_of(SegmentKind::BootParams);
    let node = x86_setup_data_head(&sc.segments[bp].data, X86_BOOT_PARAMS_ADDR);
    let room = (sc.segments[bp].data.len() - node - 16) as u32;
    sc.segments[bp].data[node + 12..node + 16].copy_from_slice(&(room + 1).to_le_bytes());
    let out = sc.run();
    assert_booted(&out);
    assert!(out.contains("purgatory: boot_params: rng seeds refreshed 0, kept 0"), "{}", out.console);
    assert!(seed_of(&out).starts_with(&hex(&X86_RNG_PLACEHOLDER)), "{}", out.console);
}

#[test]
fn skip_digests_boots_a_changed_segment_unhashed() {
    // kexec-tools' -i: no digests, structure checks only.
    let mut sc = Scenario::standard("x86-unhashed", Cell::X86);
    sc.flags |= PARAM_FLAG_SKIP_DIGESTS;
    sc.corrupt.push((1, 100, 0x80));
    let out = sc.run();
    assert_booted(&out);
    assert!(out.contains("purgatory: verification skipped at the loader's request (-i)"), "{}", out.console);
    assert!(out.contains("segment 1 (initrd) 0x4000000+0x100000 not hashed (verification off)"), "{}", out.console);
    assert!(out.contains("verified 5 segments, 0 bytes hashed"), "{}", out.console);
}

#[test]
fn relocates_itself_at_any_4k_aligned_address() {
    // An odd page, the lowest address rkexec uses (below 640 KiB, where
    // kexec-tools keeps its purgatory) and the image ending at the top of
    // RAM.
    let top = RAM_SIZE - Scenario::standard("x86-reloc", Cell::X86).image().mem_size().next_multiple_of(4096);
    for addr in [0x0b00_7000u64, 0x3000, top] {
        let mut sc = Scenario::standard("x86-reloc", Cell::X86);
        sc.purgatory_addr = addr;
        let out = sc.run();
        assert_booted(&out);
        assert!(out.contains(&format!("image {addr:#x}, cr0 {CR0:#x}, cr4 {CR4:#x}")), "{}", out.console);
    }
}

/// The block was refused with `reason`, the purgatory said so and reset
/// the machine.
fn assert_params_refused(out: &Outcome, reason: &str) {
    let line = format!("purgatory: REFUSED: bad parameter block: {reason}");
    assert!(out.contains(&line), "expected '{line}':\n{}", out.console);
    assert!(out.contains("purgatory: not entering the kernel"), "{}", out.console);
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
    let mut sc = Scenario::standard("x86-no-params", Cell::X86);
    sc.edit_params = Some(|p| p.magic = 0);
    let out = sc.run();
    assert_silent(&out);
    assert_halted(&out);
}

#[test]
fn newer_parameter_block_is_refused() {
    let mut sc = Scenario::standard("x86-params-v2", Cell::X86);
    sc.edit_params = Some(|p| p.version = 2);
    assert_params_refused(&sc.run(), "unsupported version 2");
}

#[test]
fn kernel_entry_outside_segments_is_refused() {
    let mut sc = Scenario::standard("x86-bad-entry", Cell::X86);
    sc.edit_params = Some(|p| p.kernel_entry = 0x1000_0000);
    assert_params_refused(&sc.run(), "kernel entry 0x10000000 is not inside a kernel segment");
}

#[test]
fn kernel_entry_in_the_initrd_is_refused() {
    let mut sc = Scenario::standard("x86-entry-in-initrd", Cell::X86);
    sc.edit_params = Some(|p| p.kernel_entry = X86_INITRD_ADDR + 0x200);
    assert_params_refused(&sc.run(), "kernel entry 0x4000200 is not inside a kernel segment");
}

#[test]
fn boot_params_in_a_segment_of_another_kind_is_refused() {
    let mut sc = Scenario::standard("x86-bp-in-other", Cell::X86);
    sc.edit_params = Some(|p| p.boot_data = X86_OTHER_ADDR);
    assert_params_refused(&sc.run(), "boot data 0xa200000 is not inside a boot-params segment");
}

#[test]
fn segment_over_the_purgatory_is_refused_before_anything_else() {
    let mut sc = Scenario::standard("x86-overlaps-image", Cell::X86);
    sc.edit_params = Some(|p| p.segments[4].len = X86_PURGATORY_ADDR + 0x1000 - X86_OTHER_ADDR);
    let out = sc.run();
    assert!(out.contains("bad parameter block: segment 4 overlaps the purgatory image 0xb000000+"), "{}", out.console);
    assert!(!out.contains("long mode"), "set-up ran before validation:\n{}", out.console);
    assert_params_refused(&out, "segment 4 overlaps");
}

/// A last-minute edit of the parameter block (`Scenario::edit_params`).
type EditParams = fn(&mut PurgatoryParams);

#[test]
fn a_console_that_could_write_memory_is_never_written() {
    // An MMIO UART inside a segment or the image would change verified
    // memory; an I/O port above 0xffff does not exist. The purgatory
    // refuses without printing a byte, and resets as asked.
    let cases: [(&str, EditParams); 3] = [
        ("x86-console-in-initrd", |p| {
            p.console.kind = CONSOLE_8250_MMIO32;
            p.console.base = X86_INITRD_ADDR + 0x100;
        }),
        ("x86-console-in-image", |p| {
            p.console.kind = CONSOLE_8250_MMIO32;
            p.console.base = X86_PURGATORY_ADDR + 0x1000;
        }),
        ("x86-console-port-too-high", |p| {
            p.console.kind = CONSOLE_8250_IO;
            p.console.base = 0x1_03f8;
        }),
    ];
    for (name, edit) in cases {
        let mut sc = Scenario::standard(name, Cell::X86);
        sc.edit_params = Some(edit);
        let out = sc.run();
        assert_silent(&out);
        assert_reset(&out);
    }
}
