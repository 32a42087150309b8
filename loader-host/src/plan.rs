//! The result of planning a load, for every architecture: the segments in
//! kexec order (purgatory last), where the purgatory and the kernel are
//! entered, the boot data, and the purgatory's parameter block. A plan is
//! complete and checked before any system call; `rkexec plan` prints it.

use std::fmt;

use kexec_purgatory::abi::{PurgatoryParams, SegmentKind};

use crate::arch::Arch;
use crate::input::Blob;
use crate::range::Range;

/// A segment in the final image.
#[derive(Clone)]
pub struct PlannedSegment {
    /// None for the purgatory itself.
    pub kind: Option<SegmentKind>,
    pub mem: u64,
    pub memsz: u64,
    /// Bytes from `mem` the purgatory hashes: the data and its zero padding
    /// to the end of the page. The rest of memsz is room the kernel needs
    /// free but whose contents it does not rely on.
    pub digest_len: u64,
    pub data: Blob,
    /// SHA-256 of `data` zero-padded to `digest_len` (see `digest`).
    pub sha256: [u8; 32],
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

    pub fn kind_name(&self) -> &'static str {
        self.kind.map_or("purgatory", SegmentKind::name)
    }
}

/// A normal kexec image or a crash (kdump) one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadKind {
    Kexec,
    Crash,
}

/// The boot data the kernel receives: a DTB (arm64 x0, riscv64 a1) or the
/// x86 zero page (rsi).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootData {
    pub kind: SegmentKind,
    pub addr: u64,
}

/// What the elfcorehdr of a crash plan describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreSummary {
    pub addr: u64,
    pub cpu_notes: usize,
    pub pt_load: usize,
}

/// The loaded kernel file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelSummary {
    pub path: String,
    /// The format that recognised it (image::FORMATS names).
    pub format: String,
}

/// A complete, checked plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub arch: Arch,
    pub kind: LoadKind,
    pub kernel: KernelSummary,
    pub segments: Vec<PlannedSegment>,
    /// kexec entry: the purgatory's entry point.
    pub entry: u64,
    pub kernel_entry: u64,
    pub boot_data: BootData,
    /// The command line the new kernel gets.
    pub cmdline: String,
    pub elfcorehdr: Option<CoreSummary>,
    /// The kernel may rewrite the elfcorehdr after load (crash hotplug).
    pub hotplug: bool,
    /// The parameter block written into the purgatory segment.
    pub params: PurgatoryParams,
    /// Things the user should know (memory skipped and why, fallbacks).
    pub notes: Vec<String>,
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
    NoRoom { what: &'static str, size: u64, rule: String },
    /// A rule the loader checks on the finished plan (validate.rs).
    Refused { rule: String },
    /// A bug of ours: a plan that breaks a rule placement should have kept.
    Internal(String),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NoRoom { what, size, rule } => write!(f, "no room for the {what} ({size} bytes): {rule}"),
            PlanError::Refused { rule } => write!(f, "refused before loading: {rule}"),
            PlanError::Internal(s) => write!(f, "layout check failed: {s}"),
        }
    }
}

impl std::error::Error for PlanError {}
