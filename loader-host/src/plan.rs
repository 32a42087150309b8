//! The result of planning a load, for every architecture: the segments in
//! kexec order (purgatory last), where the purgatory and the kernel are
//! entered, the boot data, and the purgatory's parameter block. A plan is
//! complete and checked before any system call; `rkexec plan` prints it.

use std::fmt;

use kexec_purgatory::abi::{PurgatoryParams, SegmentKind};
use kexec_purgatory::report::Console;
use kexec_purgatory::verify::{self, Failure};

use crate::arch_spec::Arch;
use crate::input::Blob;
use crate::range::Range;

/// A segment in the final image.
#[derive(Clone)]
pub struct PlannedSegment {
    /// None for the purgatory itself.
    pub kind: Option<SegmentKind>,
    /// Physical address of its first byte, page aligned
    /// (`kexec_segment.mem`).
    pub mem: u64,
    /// Bytes of memory it occupies from `mem`, a page multiple at least the
    /// data's length (`kexec_segment.memsz`; the kernel zero-fills past the
    /// data).
    pub memsz: u64,
    /// Bytes from `mem` the purgatory hashes: the data and its zero padding
    /// to the end of the page. The rest of memsz is room the kernel needs
    /// free but whose contents it does not rely on.
    pub digest_len: u64,
    /// The bytes loaded at `mem` (`kexec_segment.buf`/`bufsz`).
    pub data: Blob,
    /// SHA-256 of `data` zero-padded to `digest_len` (see `digest`).
    pub sha256: [u8; 32],
    /// Left out of the digest check and structure-checked instead
    /// (`SEGMENT_FLAG_EXCLUDED`): the elfcorehdr the kernel rewrites on
    /// crash hotplug.
    pub excluded: bool,
    /// Where the bytes came from, for the plan table.
    pub source: String,
}

impl fmt::Debug for PlannedSegment {
    // The bytes are megabytes: show their length, not their contents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlannedSegment")
            .field("kind", &self.kind_name())
            .field("range", &self.range().to_string())
            .field("bytes", &self.data.len())
            .field("digest_len", &self.digest_len)
            .field("excluded", &self.excluded)
            .field("source", &self.source)
            .finish()
    }
}

impl PlannedSegment {
    /// `[mem, mem + memsz)`; segments come from placement, which checked
    /// that the end does not wrap.
    pub fn range(&self) -> Range {
        Range::new(self.mem, self.mem.saturating_add(self.memsz))
    }

    /// Its kind's name (`SegmentKind::name`: "kernel", "initrd", ...), or
    /// "purgatory".
    pub fn kind_name(&self) -> &'static str {
        self.kind.map_or("purgatory", SegmentKind::name)
    }
}

/// A normal kexec image or a crash (kdump) one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadKind {
    /// Loaded for `reboot(LINUX_REBOOT_CMD_KEXEC)` (`kexec -l` then `-e`).
    Kexec,
    /// Loaded with `KEXEC_ON_CRASH`, run by the kernel when it panics
    /// (`kexec -p`).
    Crash,
}

/// The boot data the kernel receives: a DTB (arm64 x0, riscv64 a1) or the
/// x86 zero page (rsi).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootData {
    /// `SegmentKind::Dtb` or `SegmentKind::BootParams`.
    pub kind: SegmentKind,
    /// Physical address of the segment, the value the purgatory passes
    /// (the parameter block's `boot_data`).
    pub addr: u64,
}

/// What the elfcorehdr of a crash plan describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreSummary {
    /// Physical address of the elfcorehdr segment (the capture kernel's
    /// `elfcorehdr=` on x86, `/chosen/linux,elfcorehdr` in a DTB).
    pub addr: u64,
    /// PT_NOTE entries for per-CPU crash notes, one per possible CPU.
    pub cpu_notes: usize,
    /// PT_LOAD entries: memory the capture kernel can dump (and, on x86,
    /// the kernel text mapping).
    pub pt_load: usize,
}

/// The loaded kernel file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelSummary {
    /// The kernel file as the request named it: as it is when UTF-8, else
    /// escaped (`escape::json_text`).
    pub path: String,
    /// The format that recognised it (image::FORMATS names).
    pub format: String,
}

/// A complete, checked plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The kernel's architecture (its file format decided it).
    pub arch: Arch,
    /// Normal or crash load.
    pub kind: LoadKind,
    /// The kernel file and the format that read it.
    pub kernel: KernelSummary,
    /// What kexec_load receives, in order: the arch's segments, then the
    /// purgatory.
    pub segments: Vec<PlannedSegment>,
    /// kexec entry: the purgatory's entry point.
    pub entry: u64,
    /// Physical address the purgatory jumps to (the parameter block's
    /// `kernel_entry`): the Image's first byte, a bzImage's 64-bit entry
    /// (load address + 0x200, boot.rst) or a vmlinux's e_entry.
    pub kernel_entry: u64,
    /// The boot data segment the kernel is handed.
    pub boot_data: BootData,
    /// The command line the new kernel gets: bytes, as the kernel takes
    /// them (no encoding is assumed), without a NUL.
    pub cmdline: Vec<u8>,
    /// The elfcorehdr of a crash load; None for a normal one.
    pub elfcorehdr: Option<CoreSummary>,
    /// The kernel may rewrite the elfcorehdr after load (crash hotplug).
    pub hotplug: bool,
    /// The parameter block written into the purgatory segment.
    pub params: PurgatoryParams,
    /// Things the user should know (memory skipped and why, fallbacks).
    pub notes: Vec<String>,
    /// The running kernel's page size, which every segment is aligned and
    /// sized to.
    pub page_size: u64,
}

impl Plan {
    /// The purgatory segment (always the last).
    pub fn purgatory(&self) -> Option<&PlannedSegment> {
        self.segments.last().filter(|s| s.kind.is_none())
    }

    /// Bytes the purgatory hashes.
    pub fn hashed_bytes(&self) -> u64 {
        self.segments.iter().filter(|s| s.kind.is_some() && !s.excluded).map(|s| s.digest_len).sum()
    }
}

/// Why a layout could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// No hole for a segment.
    NoRoom {
        /// The segment's kind name ("kernel", "initrd", ...).
        what: &'static str,
        /// Bytes it needs (with the lead reserved in front of it).
        size: u64,
        /// The window and alignment it was limited to, and why.
        rule: String,
    },
    /// A rule the loader checks on the finished plan (preflight.rs).
    Refused {
        /// The rule, where it comes from, and what broke it.
        rule: String,
    },
    /// The purgatory's own flow, rehearsed on the plan (preflight.rs),
    /// refuses it: what the purgatory would refuse after the reboot.
    PurgatoryRefuses(Failure),
    /// A bug of ours: a plan that breaks a rule placement should have kept.
    Internal(String),
}

/// The purgatory's reason for `failure`, in its own words (the texts its
/// console lines carry, kexec_purgatory::console_lines).
fn purgatory_reason(failure: &Failure) -> String {
    match failure {
        Failure::Params(e) => {
            let (template, args) = e.reason();
            let mut text = Text::default();
            text.line(template, &args);
            format!("bad parameter block: {}", text.0.trim_end())
        }
        Failure::DigestMismatch { index, .. } => format!("segment {index}: sha256 mismatch"),
        Failure::Structure { index, error } => {
            format!("segment {index} is excluded but malformed: {}", error.describe())
        }
        Failure::Patch { kind, error } => {
            format!("cannot patch the {}: {}", verify::boot_data_name(*kind), error.describe())
        }
    }
}

/// A purgatory console that keeps what is printed.
#[derive(Default)]
struct Text(String);

impl kexec_purgatory::report::Console for Text {
    fn write_bytes(&mut self, bytes: &[u8]) {
        self.0.push_str(&String::from_utf8_lossy(bytes));
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NoRoom { what, size, rule } => write!(f, "no room for the {what} ({size} bytes): {rule}"),
            PlanError::Refused { rule } => write!(f, "refused before loading: {rule}"),
            PlanError::PurgatoryRefuses(failure) => {
                write!(f, "refused before loading: the purgatory would refuse this load: {}", purgatory_reason(failure))
            }
            PlanError::Internal(s) => write!(f, "layout check failed: {s}"),
        }
    }
}

impl std::error::Error for PlanError {}
