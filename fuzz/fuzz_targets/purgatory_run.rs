//! `verify::run`, the purgatory's whole flow, on a mock platform whose RAM
//! is a host buffer: segments placed in it with right or wrong digests,
//! excluded or not, entry and boot data anywhere, DTB / boot_params content
//! from the fuzzer. Properties:
//! - the kernel is entered only if every segment that is neither excluded
//!   nor under `-i` has the digest its descriptor states;
//! - the purgatory touches memory only inside segments (the mock panics
//!   otherwise) and writes only inside the range it reports as written;
//! - a refusal is reported and ends with "not entering the kernel".
//!
//! Input layout (little-endian), chosen so seeds are easy to write:
//! ```text
//! 0      u8   flags: bit 0 refresh seeds, 1 boot cpu, 2 skip digests,
//!             3 soft SHA, 4 caches off, 5 no boot data, 7 an unknown flag
//! 1      u8   nr_segments (as is: above 16 is refused)
//! 2      u8   entropy words available
//! 3      u8   bits 0-1 architecture's rules (aarch64, x86_64, riscv64),
//!             bit 2 the purgatory image inside RAM (refused), bits 4-5
//!             console (none, PL011 outside RAM, PL011 inside RAM, I/O port)
//! 4      u32  boot cpu id
//! 8      u64  kernel entry, from the start of RAM (wrapping)
//! 16     u64  boot data, from the start of RAM (wrapping)
//! 24     16 x { u16 offset in RAM, u16 len, u8 kind (>5: unknown),
//!               u8 bit 0 excluded, bit 1 wrong digest, bit 2 unknown flag,
//!               u16 - }
//! 152    RAM contents (zero-filled to 16 KiB)
//! ```
#![no_main]

use kexec_purgatory::abi::{
    ConsoleDesc, PurgatoryParams, SegmentDesc, CONSOLE_8250_IO, CONSOLE_NONE, CONSOLE_PL011,
    PARAM_FLAG_DEBUG_CACHES_OFF, PARAM_FLAG_DEBUG_SOFT_SHA256, PARAM_FLAG_REFRESH_SEEDS, PARAM_FLAG_SET_BOOT_CPU,
    PARAM_FLAG_SKIP_DIGESTS, SEGMENT_FLAG_EXCLUDED,
};
use kexec_purgatory::verify::{run, MemSpan, Rules};
use libfuzzer_sys::fuzz_target;
use rkexec_fuzz::{changed_bytes, MockPlatform, ARENA_BASE};
use sha2::{Digest, Sha256};

/// Mock RAM size.
const ARENA_LEN: usize = 16 << 10;
const HEADER: usize = 24 + 16 * 8;
const WORDS: [u64; 12] = [11, 22, 33, 44, 55, 66, 77, 88, 99, 111, 122, 133];

fn flags(bits: u8) -> u32 {
    let table = [
        PARAM_FLAG_REFRESH_SEEDS,
        PARAM_FLAG_SET_BOOT_CPU,
        PARAM_FLAG_SKIP_DIGESTS,
        PARAM_FLAG_DEBUG_SOFT_SHA256,
        PARAM_FLAG_DEBUG_CACHES_OFF,
        0,
        0,
        1 << 30,
    ];
    table.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).fold(0, |f, (_, v)| f | v)
}

fuzz_target!(|data: &[u8]| {
    let mut head = [0u8; HEADER];
    let n = data.len().min(HEADER);
    head[..n].copy_from_slice(&data[..n]);
    let mut arena = data[n..].to_vec();
    arena.resize(ARENA_LEN, 0);
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([head[at], head[at + 1]]));
    let u64_at = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().unwrap());

    let mut p = PurgatoryParams::new();
    p.flags = flags(head[0]);
    p.nr_segments = u32::from(head[1]);
    for (i, d) in p.segments.iter_mut().enumerate() {
        let r = 24 + i * 8;
        let at = u16_at(r) % ARENA_LEN;
        let len = u16_at(r + 2).min(ARENA_LEN - at);
        let kind = if head[r + 4] <= 5 { u32::from(head[r + 4]) } else { 99 };
        let sflags = head[r + 5];
        let mut sha256: [u8; 32] = Sha256::digest(&arena[at..at + len]).into();
        if sflags & 2 != 0 {
            sha256[0] ^= 1;
        }
        let flags = if sflags & 1 != 0 { SEGMENT_FLAG_EXCLUDED } else { 0 } | if sflags & 4 != 0 { 1 << 9 } else { 0 };
        *d = SegmentDesc { mem: ARENA_BASE + at as u64, len: len as u64, sha256, kind, flags };
    }
    p.kernel_entry = ARENA_BASE.wrapping_add(u64_at(8));
    p.boot_data = if head[0] & (1 << 5) != 0 { 0 } else { ARENA_BASE.wrapping_add(u64_at(16)) };
    let cpu = u32::from_le_bytes(head[4..8].try_into().unwrap());
    let entropy = WORDS[..usize::from(head[2]) % (WORDS.len() + 1)].to_vec();

    let own =
        if head[3] & 4 != 0 { MemSpan::new(ARENA_BASE + 0x3000, 0x1000) } else { MemSpan::new(0x3000_0000, 0x2_0000) };
    let rules = match head[3] & 3 {
        1 => Rules::x86_64(own),
        2 => Rules::riscv64(own),
        _ => Rules::aarch64(own),
    };
    p.console = match (head[3] >> 4) & 3 {
        0 => ConsoleDesc { kind: CONSOLE_NONE, reserved: 0, base: 0 },
        1 => ConsoleDesc { kind: CONSOLE_PL011, reserved: 0, base: 0x0900_0000 },
        2 => ConsoleDesc { kind: CONSOLE_PL011, reserved: 0, base: ARENA_BASE + 0x100 },
        _ => ConsoleDesc { kind: CONSOLE_8250_IO, reserved: 0, base: 0x3f8 },
    };
    let before = arena.clone();
    let mut plat = MockPlatform::new(arena, &p, entropy, cpu);
    match run(&p, &rules, &mut plat) {
        Ok(h) => {
            assert_eq!((h.entry, h.boot_data), (p.kernel_entry, p.boot_data));
            if p.flags & PARAM_FLAG_SKIP_DIGESTS == 0 {
                for (i, s) in p.active_segments().iter().enumerate() {
                    let off = (s.mem - ARENA_BASE) as usize;
                    let actual: [u8; 32] = Sha256::digest(&before[off..off + s.len as usize]).into();
                    assert!(s.is_excluded() || actual == s.sha256, "entered with segment {i} not matching its digest");
                }
            }
            let (w_start, w_len) = h.written.map_or((0, 0), |(m, l)| ((m - ARENA_BASE) as usize, l as usize));
            for i in changed_bytes(&before, &plat.arena) {
                assert!((w_start..w_start + w_len).contains(&i), "byte {i:#x} changed outside the written range");
            }
        }
        Err(_) => {
            let text = plat.console.text();
            assert!(text.ends_with("not entering the kernel\n"), "refusal not reported: {text}");
        }
    }
});
