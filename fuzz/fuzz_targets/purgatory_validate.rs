//! `verify::validate` on any 1024-byte parameter block and the rules of
//! any architecture and image placement, against a model of the rules
//! docs/abi.md states: validate accepts exactly the blocks the model
//! accepts. Refusals render through `report_failure` without panicking.
//!
//! Input: the block (1024 bytes), then one byte choosing the architecture
//! (aarch64, x86_64, riscv64) and the purgatory's load address and
//! mem_size (u64 each); zero-filled when short.
#![no_main]

use kexec_purgatory::abi::{
    PurgatoryParams, SegmentKind, CONSOLE_8250_IO, CONSOLE_8250_MMIO32, CONSOLE_8250_MMIO8, CONSOLE_NONE,
    CONSOLE_PL011, CONSOLE_SBI, MAX_SEGMENTS, PARAMS_MAGIC, PARAMS_VERSION, PARAM_FLAGS_KNOWN, SEGMENT_FLAG_EXCLUDED,
};
use kexec_purgatory::verify::{report_failure, validate, Failure, MemSpan, Rules};
use libfuzzer_sys::fuzz_target;
use rkexec_fuzz::{params_from_bytes, TextConsole, PARAMS_LEN};

/// Half-open `[start, end)` in 128 bits: nothing wraps.
type Span = (u128, u128);

fn span(start: u64, len: u64) -> Span {
    (u128::from(start), u128::from(start) + u128::from(len))
}

/// Two non-empty ranges share a byte.
fn meet(a: Span, b: Span) -> bool {
    a.0.max(b.0) < a.1.min(b.1)
}

/// docs/abi.md, "Parameter block", "Segments" and "Console".
fn model_accepts(p: &PurgatoryParams, arch: usize, image: Span) -> bool {
    let header = p.magic == PARAMS_MAGIC
        && (1..=PARAMS_VERSION).contains(&p.version)
        && p.size as usize >= PARAMS_LEN
        && p.flags & !PARAM_FLAGS_KNOWN == 0
        && p.on_failure <= 1
        && p.psci_conduit <= 2
        && p.nr_segments as usize <= MAX_SEGMENTS;
    if !header {
        return false;
    }
    let segs = &p.segments[..p.nr_segments as usize];
    let spans: Vec<Span> = segs.iter().map(|s| span(s.mem, s.len)).collect();
    let each = segs.iter().zip(&spans).all(|(s, sp)| {
        s.len > 0
            && s.mem != 0
            && sp.1 <= u128::from(u64::MAX)
            && SegmentKind::from_raw(s.kind).is_some()
            // Kind 6 (backup) is ppc64le's; these rules refuse it.
            && s.kind != SegmentKind::Backup as u32
            && s.flags & !SEGMENT_FLAG_EXCLUDED == 0
            && !meet(*sp, image)
    });
    let disjoint = spans.iter().enumerate().all(|(i, a)| spans[..i].iter().all(|b| !meet(*a, *b)));
    let holder = |addr: u64, kind: SegmentKind| {
        segs.iter().zip(&spans).any(|(s, sp)| s.kind == kind as u32 && sp.0 <= addr.into() && u128::from(addr) < sp.1)
    };
    let boot_kind = if arch == 1 { SegmentKind::BootParams } else { SegmentKind::Dtb };
    let base = p.console.base;
    // The UART's registers: 4 KiB from base, rounded out to pages.
    let uart = ((u128::from(base) & !0xfff), (u128::from(base) + 0x1000 + 0xfff) & !0xfff);
    let mmio_ok = base != 0 && !spans.iter().any(|s| meet(*s, uart)) && !meet(uart, image);
    let console = match p.console.kind {
        CONSOLE_NONE => true,
        CONSOLE_PL011 | CONSOLE_8250_MMIO32 | CONSOLE_8250_MMIO8 => mmio_ok,
        CONSOLE_8250_IO => arch == 1 && (1..=0xffff).contains(&base),
        CONSOLE_SBI => arch == 2,
        _ => false,
    };
    each && disjoint
        && holder(p.kernel_entry, SegmentKind::Kernel)
        && (p.boot_data == 0 || holder(p.boot_data, boot_kind))
        && console
}

fuzz_target!(|data: &[u8]| {
    let p = params_from_bytes(data);
    let mut extra = [0u8; 17];
    let tail = data.get(PARAMS_LEN..).unwrap_or(&[]);
    let n = tail.len().min(extra.len());
    extra[..n].copy_from_slice(&tail[..n]);
    let arch = usize::from(extra[0] % 3);
    let start = u64::from_le_bytes(extra[1..9].try_into().unwrap());
    // A purgatory is never empty: at least its header.
    let len = u64::from_le_bytes(extra[9..17].try_into().unwrap()).max(96);
    let own = MemSpan::new(start, len);
    let rules = [Rules::aarch64(own), Rules::x86_64(own), Rules::riscv64(own)][arch];
    let verdict = validate(&p, &rules);
    assert_eq!(verdict.is_ok(), model_accepts(&p, arch, span(start, len)), "validate says {verdict:?}");
    if let Err(e) = verdict {
        let mut con = TextConsole::default();
        report_failure(&p, &mut con, &Failure::Params(e));
        assert!(con.text().ends_with("not entering the kernel\n"));
        assert!(!e.to_string().is_empty());
    }
});
