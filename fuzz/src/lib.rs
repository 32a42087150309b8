//! What the fuzz targets share: a purgatory parameter block decoded from
//! raw bytes, and a mock `Platform` whose "physical memory" is a host
//! buffer (as purgatory/src/verify.rs's tests do), which also checks that
//! the purgatory only touches memory inside the segments it validated.

pub mod fdt_crate;

use kexec_purgatory::abi::{ConsoleDesc, PurgatoryParams, SegmentDesc, MAX_SEGMENTS};
use kexec_purgatory::report::Console;
use kexec_purgatory::sha256::{compress_portable, CompressFn};
use kexec_purgatory::verify::Platform;

/// Bytes of a parameter block (abi.rs asserts the layout).
pub const PARAMS_LEN: usize = core::mem::size_of::<PurgatoryParams>();

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A parameter block from the first `PARAMS_LEN` bytes of `data` (zero
/// filled when shorter), read field by field at the offsets of
/// docs/abi.md / include/kexec_purgatory.h, as the purgatory sees the
/// little-endian block a loader wrote.
pub fn params_from_bytes(data: &[u8]) -> PurgatoryParams {
    let mut b = [0u8; PARAMS_LEN];
    let n = data.len().min(PARAMS_LEN);
    b[..n].copy_from_slice(&data[..n]);
    let mut p = PurgatoryParams::EMPTY;
    p.magic = le32(&b, 0);
    p.version = le32(&b, 4);
    p.size = le32(&b, 8);
    p.flags = le32(&b, 12);
    p.kernel_entry = le64(&b, 16);
    p.boot_data = le64(&b, 24);
    p.console = ConsoleDesc { kind: le32(&b, 32), reserved: le32(&b, 36), base: le64(&b, 40) };
    p.on_failure = le32(&b, 48);
    p.psci_conduit = le32(&b, 52);
    p.nr_segments = le32(&b, 56);
    p.reserved0 = le32(&b, 60);
    for (i, s) in p.segments.iter_mut().enumerate() {
        let at = 64 + i * 56;
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&b[at + 16..at + 48]);
        *s = SegmentDesc {
            mem: le64(&b, at),
            len: le64(&b, at + 8),
            sha256,
            kind: le32(&b, at + 48),
            flags: le32(&b, at + 52),
        };
    }
    let reserved_at = 64 + MAX_SEGMENTS * 56;
    for (i, r) in p.reserved.iter_mut().enumerate() {
        *r = le64(&b, reserved_at + i * 8);
    }
    // The decoder and the ABI's own serialiser must agree byte for byte.
    assert_eq!(p.to_bytes(), b, "params_from_bytes disagrees with PurgatoryParams::to_bytes");
    p
}

/// Console text, kept so that a target can check what was reported.
#[derive(Default)]
pub struct TextConsole(pub Vec<u8>);

impl Console for TextConsole {
    fn write_bytes(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

impl TextConsole {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

/// Where the mock's RAM starts ("physical" address of `arena[0]`).
pub const ARENA_BASE: u64 = 0x4000_0000;

/// Host memory standing in for physical memory `[ARENA_BASE, ARENA_BASE +
/// arena.len())`. `memory()` is only legal inside a segment the block
/// names (the purgatory's contract: `validate` has checked them, the loader
/// vouches they are RAM); anything else is a purgatory bug and panics.
pub struct MockPlatform {
    pub arena: Vec<u8>,
    pub console: TextConsole,
    pub entropy: Vec<u64>,
    pub cpu: u32,
    /// `(mem, len)` of every segment of the block under test.
    pub segments: Vec<(u64, u64)>,
}

impl MockPlatform {
    pub fn new(arena: Vec<u8>, params: &PurgatoryParams, entropy: Vec<u64>, cpu: u32) -> Self {
        let segments = params.active_segments().iter().map(|s| (s.mem, s.len)).collect();
        MockPlatform { arena, console: TextConsole::default(), entropy, cpu, segments }
    }

    /// Is `[mem, mem + len)` inside the arena?
    pub fn in_arena(&self, mem: u64, len: u64) -> bool {
        mem >= ARENA_BASE && mem.checked_add(len).is_some_and(|end| end <= ARENA_BASE + self.arena.len() as u64)
    }
}

impl Platform for MockPlatform {
    type Con = TextConsole;
    fn console(&mut self) -> &mut TextConsole {
        &mut self.console
    }
    fn memory(&mut self, mem: u64, len: u64) -> &mut [u8] {
        let inside_segment = self.segments.iter().any(|&(s, l)| {
            mem >= s && mem.checked_add(len).zip(s.checked_add(l)).is_some_and(|(end, seg_end)| end <= seg_end)
        });
        assert!(inside_segment, "purgatory asked for memory {mem:#x}+{len:#x} outside every segment");
        assert!(self.in_arena(mem, len), "segment {mem:#x}+{len:#x} is not mock RAM (harness bug)");
        let off = (mem - ARENA_BASE) as usize;
        &mut self.arena[off..off + len as usize]
    }
    fn digest_engine(&self) -> (CompressFn, &'static str) {
        (compress_portable, "portable")
    }
    fn entropy(&mut self) -> Option<u64> {
        self.entropy.pop()
    }
    fn boot_cpu_id(&self) -> u32 {
        self.cpu
    }
    fn now_us(&self) -> u64 {
        0
    }
}

/// An entropy source over fuzz-chosen words (None when they run out).
pub fn entropy_from(words: &[u64]) -> impl FnMut() -> Option<u64> + '_ {
    let mut it = words.iter().copied();
    move || it.next()
}

/// Offsets where `a` and `b` differ (compared up to the shorter).
pub fn changed_bytes<'a>(a: &'a [u8], b: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    a.iter().zip(b).enumerate().filter(|(_, (x, y))| x != y).map(|(i, _)| i)
}
