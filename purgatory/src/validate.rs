//! The single gate: [`validate`] decides whether the purgatory may touch
//! anything a parameter block names. The purgatory calls it before any
//! page-table, cache or console work; a loader calls the very same function
//! on the block it is about to load (with the address it plans for the
//! purgatory), so it refuses before the syscall whatever the purgatory
//! would refuse. Pure and portable: no memory is read but the block.

use crate::abi::{
    PurgatoryParams, SegmentDesc, SegmentKind, ARCH_AARCH64, ARCH_RISCV64, ARCH_X86_64, CONSOLE_8250_IO,
    CONSOLE_8250_MMIO32, CONSOLE_8250_MMIO8, CONSOLE_NONE, CONSOLE_PL011, CONSOLE_SBI, MAX_SEGMENTS, ON_FAILURE_HALT,
    ON_FAILURE_RESET, PARAMS_MAGIC, PARAMS_VERSION, PARAM_FLAGS_KNOWN, PSCI_CONDUIT_HVC, PSCI_CONDUIT_NONE,
    PSCI_CONDUIT_SMC, SEGMENT_FLAG_EXCLUDED,
};
#[cfg(not(target_os = "none"))]
use crate::abi::{ARCH_PPC64LE, CONSOLE_HVTERM, PPC64LE_ENTRY_BLOCK_SIZE};
use crate::console_lines::param;
use crate::report::Arg;
#[cfg(not(target_os = "none"))]
use crate::report::{fill, Console};
use crate::template;

/// A range of physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemSpan {
    pub start: u64,
    pub len: u64,
}

impl MemSpan {
    pub const fn new(start: u64, len: u64) -> Self {
        Self { start, len }
    }

    /// `addr < start + len`, exactly (no wrap): below the start, or less
    /// than `len` past it.
    fn ends_after(self, addr: u64) -> bool {
        addr < self.start || addr - self.start < self.len
    }

    pub fn contains(self, addr: u64) -> bool {
        addr >= self.start && addr - self.start < self.len
    }

    pub fn overlaps(self, other: MemSpan) -> bool {
        other.ends_after(self.start) && self.ends_after(other.start)
    }
}

impl From<&SegmentDesc> for MemSpan {
    fn from(s: &SegmentDesc) -> Self {
        Self::new(s.mem, s.len)
    }
}

/// What a block is checked against besides itself: where the purgatory
/// runs and what the architecture's boot protocol hands the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// The purgatory image in memory: load address and the header's
    /// `mem_size` (code, data, .bss, page tables, stack). No segment may
    /// overlap it, nor the console.
    pub own_image: MemSpan,
    /// The kind of segment `boot_data` must point into: Dtb on aarch64
    /// (booting.rst: x0) and riscv64 (boot.rst: a1), BootParams on x86_64
    /// (boot.rst 64-bit protocol: %rsi).
    pub boot_data_kind: SegmentKind,
    /// The x86 I/O-port console kind exists on this architecture.
    pub io_port_console: bool,
    /// The SBI console kind exists on this architecture (riscv64).
    pub sbi_console: bool,
    /// ppc64le: the hvterm console kind (PAPR H_PUT_TERM_CHAR) exists.
    ///
    /// This field, `kernel_head` and the rules they enable are compiled
    /// only where they can apply: on the host (a loader checks blocks for
    /// every architecture) and in the ppc64le image. The aarch64, x86_64
    /// and riscv64 images (`target_os = "none"`) never enable them, and
    /// leaving the code out keeps those images as they were.
    #[cfg(not(target_os = "none"))]
    pub hvterm_console: bool,
    /// ppc64le: the kernel segment must hold the kernel's first 256 bytes
    /// from `kernel_entry`: the purgatory writes its run_at_load word
    /// (abi::PPC64LE_RUN_AT_LOAD_OFFSET) and compares the entry block with
    /// them.
    #[cfg(not(target_os = "none"))]
    pub kernel_head: bool,
    /// ppc64le kdump: the block may name one segment of kind Backup, into
    /// which the purgatory copies physical `[0, len)` after verification
    /// (kexec-tools' purgatory/arch/ppc64/crashdump_backup.c). Elsewhere
    /// (and in the aarch64, x86_64 and riscv64 images, which are built
    /// without this field) a Backup segment is refused: those capture
    /// kernels leave the crashed kernel's low memory alone.
    #[cfg(not(target_os = "none"))]
    pub backup: bool,
}

impl Rules {
    pub const fn aarch64(own_image: MemSpan) -> Self {
        Self {
            own_image,
            boot_data_kind: SegmentKind::Dtb,
            io_port_console: false,
            sbi_console: false,
            #[cfg(not(target_os = "none"))]
            hvterm_console: false,
            #[cfg(not(target_os = "none"))]
            kernel_head: false,
            #[cfg(not(target_os = "none"))]
            backup: false,
        }
    }

    pub const fn x86_64(own_image: MemSpan) -> Self {
        Self {
            own_image,
            boot_data_kind: SegmentKind::BootParams,
            io_port_console: true,
            sbi_console: false,
            #[cfg(not(target_os = "none"))]
            hvterm_console: false,
            #[cfg(not(target_os = "none"))]
            kernel_head: false,
            #[cfg(not(target_os = "none"))]
            backup: false,
        }
    }

    pub const fn riscv64(own_image: MemSpan) -> Self {
        Self {
            own_image,
            boot_data_kind: SegmentKind::Dtb,
            io_port_console: false,
            sbi_console: true,
            #[cfg(not(target_os = "none"))]
            hvterm_console: false,
            #[cfg(not(target_os = "none"))]
            kernel_head: false,
            #[cfg(not(target_os = "none"))]
            backup: false,
        }
    }

    /// ppc64le (Documentation/arch/powerpc/booting.rst: r3 = the DTB):
    /// the DTB is the boot data, the console may be the hypervisor's
    /// vterm, the kernel's first 256 bytes must be in its segment, and a
    /// capture kernel may come with a backup segment for the low 64 KiB it
    /// overwrites (head_64.S `__after_prom_start` copies its exception
    /// vectors to 0 even when it runs where it was loaded).
    #[cfg(not(target_os = "none"))]
    pub const fn ppc64le(own_image: MemSpan) -> Self {
        Self {
            own_image,
            boot_data_kind: SegmentKind::Dtb,
            io_port_console: false,
            sbi_console: false,
            hvterm_console: true,
            kernel_head: true,
            backup: true,
        }
    }

    /// The rules of the purgatory image whose header says `arch`
    /// (`ImageHeader::arch`), loaded at `own_image`.
    pub const fn for_arch(arch: u32, own_image: MemSpan) -> Option<Self> {
        match arch {
            ARCH_AARCH64 => Some(Self::aarch64(own_image)),
            ARCH_X86_64 => Some(Self::x86_64(own_image)),
            ARCH_RISCV64 => Some(Self::riscv64(own_image)),
            #[cfg(not(target_os = "none"))]
            ARCH_PPC64LE => Some(Self::ppc64le(own_image)),
            _ => None,
        }
    }
}

/// What is wrong with one segment descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentRule {
    ZeroLength,
    AtZero,
    Wraps,
    TooLong,
    UnknownKind(u32),
    UnknownFlags(u32),
}

/// A parameter block the purgatory refuses to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamError {
    Magic,
    Version(u32),
    /// `size` does not cover the version 1 block.
    Size(u32),
    UnknownFlags(u32),
    TooManySegments(u32),
    OnFailure(u32),
    PsciConduit(u32),
    Segment(usize, SegmentRule),
    /// Two segments overlap.
    Overlap(usize, usize),
    /// A segment overlaps the purgatory's own image.
    OverlapsImage(usize, MemSpan),
    /// The kernel entry is not inside a segment of kind Kernel.
    EntryNotInKernel(u64),
    /// `boot_data` is not inside a segment of the kind the rules require.
    BootDataNotInSegment(u64, SegmentKind),
    /// A console kind that does not exist (here).
    ConsoleKind(u32),
    ConsoleBaseZero,
    /// The console's page (its MMIO base) lies inside a segment.
    ConsoleInSegment(u64, usize),
    /// The console's page lies inside the purgatory image.
    ConsoleInImage(u64),
    /// An I/O-port console above port 0xffff.
    ConsolePort(u64),
    /// ppc64le: the kernel's first 256 bytes from this `kernel_entry` are
    /// not all inside its kernel segment (see `Rules::kernel_head`).
    #[cfg(not(target_os = "none"))]
    KernelHead(u64),
    /// A segment of kind Backup where the rules allow none
    /// (`Rules::backup`). Not in the ppc64le image (`rkx_bare_metal`),
    /// whose rules always allow one.
    #[cfg(not(rkx_bare_metal))]
    BackupNotHere(usize),
    /// ppc64le: a second Backup segment (the first one's index, then this).
    #[cfg(not(target_os = "none"))]
    BackupTwice(usize, usize),
    /// ppc64le: the backup's source `[0, len)` (index, len) is not all the
    /// crashed kernel's memory: from the last value on it holds a segment
    /// (loaded, not crashed, memory; the backup itself included), the
    /// purgatory image or an MMIO console's page (device registers).
    #[cfg(not(target_os = "none"))]
    BackupSource(usize, u64, u64),
}

impl ParamError {
    /// The `{reason}` of the refusal line: a `console_lines::param`
    /// template (packed) and its arguments (unused ones are never printed).
    pub fn reason(&self) -> (&'static str, [Arg<'static>; 3]) {
        // Kept as data: each arm picks a template by index, up to three
        // numbers and which of them print as hex (the others decimal); one
        // tail builds the arguments. (An arm per variant building three
        // `Arg`s was 0.75 to 1.1 KiB of code.) Table order = `T` order.
        #[derive(Clone, Copy)]
        enum T {
            Magic,
            Version,
            Size,
            Flags,
            TooManySegments,
            OnFailure,
            PsciConduit,
            SegmentZeroLength,
            SegmentAtZero,
            SegmentWraps,
            SegmentTooLong,
            SegmentKind,
            SegmentFlags,
            Overlap,
            OverlapsImage,
            Entry,
            BootData,
            ConsoleKind,
            ConsoleBaseZero,
            ConsoleInSegment,
            ConsoleInImage,
            ConsolePort,
            #[cfg(not(target_os = "none"))]
            KernelHead,
            #[cfg(not(target_os = "none"))]
            BackupTwice,
            #[cfg(not(target_os = "none"))]
            BackupSource,
            #[cfg(not(rkx_bare_metal))]
            BackupNotHere,
        }
        // The ppc64le-only templates after the common ones, where they
        // exist (see Rules); BACKUP_NOT_HERE last, where it can be printed
        // (not in the ppc64le image, whose rules always allow a backup).
        #[cfg(all(not(target_os = "none"), not(rkx_bare_metal)))]
        macro_rules! last_templates {
            ($($t:expr),* $(,)?) => {
                purgatory_arch::str_table!(static TEMPLATES = [
                    $($t,)*
                    template!(param::KERNEL_HEAD),
                    template!(param::BACKUP_TWICE),
                    template!(param::BACKUP_SOURCE),
                    template!(param::BACKUP_NOT_HERE),
                ]);
            };
        }
        #[cfg(rkx_bare_metal)]
        macro_rules! last_templates {
            ($($t:expr),* $(,)?) => {
                purgatory_arch::str_table!(static TEMPLATES = [
                    $($t,)*
                    template!(param::KERNEL_HEAD),
                    template!(param::BACKUP_TWICE),
                    template!(param::BACKUP_SOURCE),
                ]);
            };
        }
        #[cfg(target_os = "none")]
        macro_rules! last_templates {
            ($($t:expr),* $(,)?) => {
                purgatory_arch::str_table!(static TEMPLATES = [$($t,)* template!(param::BACKUP_NOT_HERE)]);
            };
        }
        last_templates!(
            template!(param::MAGIC),
            template!(param::VERSION),
            template!(param::SIZE),
            template!(param::FLAGS),
            template!(param::TOO_MANY_SEGMENTS),
            template!(param::ON_FAILURE),
            template!(param::PSCI_CONDUIT),
            template!(param::SEGMENT_ZERO_LENGTH),
            template!(param::SEGMENT_AT_ZERO),
            template!(param::SEGMENT_WRAPS),
            template!(param::SEGMENT_TOO_LONG),
            template!(param::SEGMENT_KIND),
            template!(param::SEGMENT_FLAGS),
            template!(param::OVERLAP),
            template!(param::OVERLAPS_IMAGE),
            template!(param::ENTRY),
            template!(param::BOOT_DATA),
            template!(param::CONSOLE_KIND),
            template!(param::CONSOLE_BASE_ZERO),
            template!(param::CONSOLE_IN_SEGMENT),
            template!(param::CONSOLE_IN_IMAGE),
            template!(param::CONSOLE_PORT),
        );
        // Bit i set: value i prints as hex.
        const X0: u8 = 1;
        const X1: u8 = 2;
        const X2: u8 = 4;
        let (t, v, hex) = match *self {
            Self::Magic => (T::Magic, [0, 0, 0], 0),
            Self::Version(v) => (T::Version, [v as u64, 0, 0], 0),
            Self::Size(v) => (T::Size, [v as u64, 0, 0], 0),
            Self::UnknownFlags(f) => (T::Flags, [f as u64, 0, 0], X0),
            Self::TooManySegments(n) => (T::TooManySegments, [n as u64, 0, 0], 0),
            Self::OnFailure(v) => (T::OnFailure, [v as u64, 0, 0], 0),
            Self::PsciConduit(v) => (T::PsciConduit, [v as u64, 0, 0], 0),
            Self::Segment(i, rule) => {
                let (t, value, hex) = match rule {
                    SegmentRule::ZeroLength => (T::SegmentZeroLength, 0, 0),
                    SegmentRule::AtZero => (T::SegmentAtZero, 0, 0),
                    SegmentRule::Wraps => (T::SegmentWraps, 0, 0),
                    SegmentRule::TooLong => (T::SegmentTooLong, 0, 0),
                    SegmentRule::UnknownKind(k) => (T::SegmentKind, k as u64, 0),
                    SegmentRule::UnknownFlags(f) => (T::SegmentFlags, f as u64, X1),
                };
                (t, [i as u64, value, 0], hex)
            }
            Self::Overlap(i, j) => (T::Overlap, [i as u64, j as u64, 0], 0),
            Self::OverlapsImage(i, img) => (T::OverlapsImage, [i as u64, img.start, img.len], X1 | X2),
            Self::EntryNotInKernel(a) => (T::Entry, [a, 0, 0], X0),
            // The kind, text, replaces value 1 below.
            Self::BootDataNotInSegment(a, _) => (T::BootData, [a, 0, 0], X0),
            Self::ConsoleKind(k) => (T::ConsoleKind, [k as u64, 0, 0], 0),
            Self::ConsoleBaseZero => (T::ConsoleBaseZero, [0, 0, 0], 0),
            Self::ConsoleInSegment(b, i) => (T::ConsoleInSegment, [b, i as u64, 0], X0),
            Self::ConsoleInImage(b) => (T::ConsoleInImage, [b, 0, 0], X0),
            Self::ConsolePort(b) => (T::ConsolePort, [b, 0, 0], X0),
            #[cfg(not(rkx_bare_metal))]
            Self::BackupNotHere(i) => (T::BackupNotHere, [i as u64, 0, 0], 0),
            #[cfg(not(target_os = "none"))]
            Self::KernelHead(a) => (T::KernelHead, [a, 0, 0], X0),
            #[cfg(not(target_os = "none"))]
            Self::BackupTwice(i, j) => (T::BackupTwice, [i as u64, j as u64, 0], 0),
            #[cfg(not(target_os = "none"))]
            Self::BackupSource(i, len, at) => (T::BackupSource, [i as u64, len, at], X1 | X2),
        };
        let arg = |i: u8, value: u64| if hex >> i & 1 != 0 { Arg::Hex(value) } else { Arg::Dec(value) };
        let [v0, v1, v2] = v;
        let mut args = [arg(0, v0), arg(1, v1), arg(2, v2)];
        if let (Self::BootDataNotInSegment(_, kind), [_, arg, _]) = (*self, &mut args) {
            *arg = Arg::Text(kind.name());
        }
        (TEMPLATES.get(t as usize), args)
    }
}

/// The reason as text, for loaders (`format!("{e}")`).
#[cfg(not(target_os = "none"))]
impl core::fmt::Display for ParamError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        struct Fmt<'a, 'b>(&'a mut core::fmt::Formatter<'b>, core::fmt::Result);
        impl Console for Fmt<'_, '_> {
            fn write_bytes(&mut self, bytes: &[u8]) {
                if self.1.is_ok() {
                    self.1 = self.0.write_str(core::str::from_utf8(bytes).unwrap_or("?"));
                }
            }
        }
        let mut out = Fmt(f, Ok(()));
        let (template, args) = self.reason();
        fill(&mut out, template, &args);
        out.1
    }
}

/// The page(s) the console UART's registers occupy and the purgatory maps
/// as Device memory: 4 KiB from `base`, rounded out to pages. (Inlined:
/// `check_backup` needs only the start, a mask.)
#[inline(always)]
pub fn console_span(base: u64) -> MemSpan {
    const PAGE: u64 = 4096;
    let start = base & !(PAGE - 1);
    let end = (base as u128 + 2 * PAGE as u128 - 1) & !(PAGE as u128 - 1);
    MemSpan::new(start, (end - start as u128).min(u64::MAX as u128) as u64)
}

/// Check the block before touching any memory it names. Every rule the
/// purgatory enforces on the block is here; see docs/abi.md.
pub fn validate(params: &PurgatoryParams, rules: &Rules) -> Result<(), ParamError> {
    check_header(params)?;
    check_segments(params, rules)?;
    let kernel = kernel_segment(params)?;
    #[cfg(not(target_os = "none"))]
    check_kernel_head(params, rules, kernel)?;
    #[cfg(target_os = "none")]
    let _ = kernel;
    boot_data_segment(params, rules)?;
    check_backup(params, rules)?;
    check_console(params, rules)
}

/// The Backup segment: only where the rules allow one; on ppc64le at most
/// one, and its source `[0, len)` the crashed kernel's memory: no segment,
/// not this image, no MMIO console page (kexec-tools places its backup
/// segment in the crash region and copies 0..0x10000:
/// kexec/arch/ppc64/crashdump-ppc64.c `load_crashdump_segments`,
/// purgatory/arch/ppc64/crashdump_backup.c).
fn check_backup(params: &PurgatoryParams, rules: &Rules) -> Result<(), ParamError> {
    let segs = params.active_segments();
    let is_backup = |s: &SegmentDesc| s.kind == SegmentKind::Backup as u32;
    let Some(i) = segs.iter().position(is_backup) else {
        return Ok(());
    };
    #[cfg(not(rkx_bare_metal))]
    if !backup_allowed(rules) {
        return Err(ParamError::BackupNotHere(i));
    }
    #[cfg(not(target_os = "none"))]
    {
        // Excluded, it would not be hashed: verify_segments refuses that
        // (checks::check_excluded: only dtb and elfcorehdr segments may
        // be), before anything is copied. Not repeated here: the ppc64le
        // image is within 0.1 KiB of its size bar.
        let backup = &segs[i];
        // A span [m, m + l), l > 0 and not wrapping (check_segments; a
        // console page is 4 KiB or more), overlaps [0, len) iff m < len:
        // the lowest such start is where the source stops being the
        // crashed kernel's.
        let image = rules.own_image;
        let mut lowest = if image.len != 0 { image.start } else { u64::MAX };
        if matches!(params.console.kind, CONSOLE_PL011 | CONSOLE_8250_MMIO32 | CONSOLE_8250_MMIO8) {
            lowest = lowest.min(console_span(params.console.base).start);
        }
        for (j, s) in segs.iter().enumerate() {
            if j > i && is_backup(s) {
                return Err(ParamError::BackupTwice(i, j));
            }
            lowest = lowest.min(s.mem);
        }
        if lowest < backup.len {
            return Err(ParamError::BackupSource(i, backup.len, lowest));
        }
    }
    Ok(())
}

/// `Rules::backup`; false in the images built without the field.
#[cfg(not(rkx_bare_metal))]
const fn backup_allowed(rules: &Rules) -> bool {
    #[cfg(not(target_os = "none"))]
    return rules.backup;
    #[cfg(target_os = "none")]
    {
        let _ = rules;
        false
    }
}

/// ppc64le: `[kernel_entry, + 256)` inside the kernel segment `kernel`
/// (head_64.S `first_256B`: the purgatory writes `__run_at_load` at 0x5c).
#[cfg(not(target_os = "none"))]
fn check_kernel_head(params: &PurgatoryParams, rules: &Rules, kernel: usize) -> Result<(), ParamError> {
    let Some(seg) = params.active_segments().get(kernel) else {
        return Ok(());
    };
    // kernel_entry lies in the segment (kernel_segment), so this is the
    // room from it to the segment's end, without wrapping.
    let room = seg.len - (params.kernel_entry - seg.mem);
    if rules.kernel_head && room < PPC64LE_ENTRY_BLOCK_SIZE {
        return Err(ParamError::KernelHead(params.kernel_entry));
    }
    Ok(())
}

/// Magic, version, size, flags, failure policy, segment count.
fn check_header(params: &PurgatoryParams) -> Result<(), ParamError> {
    if params.magic != PARAMS_MAGIC {
        return Err(ParamError::Magic);
    }
    if params.version == 0 || params.version > PARAMS_VERSION {
        return Err(ParamError::Version(params.version));
    }
    // `size` is what the loader filled: it must cover every v1 field.
    if (params.size as usize) < core::mem::size_of::<PurgatoryParams>() {
        return Err(ParamError::Size(params.size));
    }
    if params.flags & !PARAM_FLAGS_KNOWN != 0 {
        return Err(ParamError::UnknownFlags(params.flags & !PARAM_FLAGS_KNOWN));
    }
    if !matches!(params.on_failure, ON_FAILURE_HALT | ON_FAILURE_RESET) {
        return Err(ParamError::OnFailure(params.on_failure));
    }
    if !matches!(params.psci_conduit, PSCI_CONDUIT_NONE | PSCI_CONDUIT_HVC | PSCI_CONDUIT_SMC) {
        return Err(ParamError::PsciConduit(params.psci_conduit));
    }
    if params.nr_segments as usize > MAX_SEGMENTS {
        return Err(ParamError::TooManySegments(params.nr_segments));
    }
    Ok(())
}

/// Each descriptor on its own, then against the others and the image.
fn check_segments(params: &PurgatoryParams, rules: &Rules) -> Result<(), ParamError> {
    let segs = params.active_segments();
    for (i, s) in segs.iter().enumerate() {
        let bad = |rule| Err(ParamError::Segment(i, rule));
        if s.len == 0 {
            return bad(SegmentRule::ZeroLength);
        }
        if s.mem == 0 {
            return bad(SegmentRule::AtZero);
        }
        if s.mem.checked_add(s.len).is_none() {
            return bad(SegmentRule::Wraps);
        }
        if usize::try_from(s.len).is_err() {
            return bad(SegmentRule::TooLong);
        }
        if SegmentKind::from_raw(s.kind).is_none() {
            return bad(SegmentRule::UnknownKind(s.kind));
        }
        if s.flags & !SEGMENT_FLAG_EXCLUDED != 0 {
            return bad(SegmentRule::UnknownFlags(s.flags & !SEGMENT_FLAG_EXCLUDED));
        }
        for (j, t) in segs.iter().enumerate().take(i) {
            if MemSpan::from(s).overlaps(MemSpan::from(t)) {
                return Err(ParamError::Overlap(j, i));
            }
        }
        // The purgatory writes its stack, .bss and page tables: a segment
        // there would change after (or while) it is verified.
        if MemSpan::from(s).overlaps(rules.own_image) {
            return Err(ParamError::OverlapsImage(i, rules.own_image));
        }
    }
    Ok(())
}

/// The index of the segment holding `addr`.
fn segment_at(params: &PurgatoryParams, addr: u64) -> Option<usize> {
    params.active_segments().iter().position(|s| MemSpan::from(s).contains(addr))
}

fn kind_of(params: &PurgatoryParams, index: usize) -> Option<SegmentKind> {
    params.active_segments().get(index).and_then(|s| SegmentKind::from_raw(s.kind))
}

/// The kernel segment, which must hold the entry point.
pub fn kernel_segment(params: &PurgatoryParams) -> Result<usize, ParamError> {
    segment_at(params, params.kernel_entry)
        .filter(|&i| kind_of(params, i) == Some(SegmentKind::Kernel))
        .ok_or(ParamError::EntryNotInKernel(params.kernel_entry))
}

/// The segment holding the boot data (None when `boot_data` is 0): one of
/// the kind the rules require. The patcher writes this segment and no other.
pub fn boot_data_segment(params: &PurgatoryParams, rules: &Rules) -> Result<Option<usize>, ParamError> {
    if params.boot_data == 0 {
        return Ok(None);
    }
    segment_at(params, params.boot_data)
        .filter(|&i| kind_of(params, i) == Some(rules.boot_data_kind))
        .map(Some)
        .ok_or(ParamError::BootDataNotInSegment(params.boot_data, rules.boot_data_kind))
}

/// The console: a kind this architecture has, and a base whose writes can
/// never change verified memory (outside every segment and the image).
/// MMIO kinds: PL011, 16550 with 32-bit or 8-bit registers; the I/O-port
/// kind on x86_64 only; the SBI console on riscv64 only.
pub fn check_console(params: &PurgatoryParams, rules: &Rules) -> Result<(), ParamError> {
    let (kind, base) = (params.console.kind, params.console.base);
    match kind {
        CONSOLE_NONE => return Ok(()),
        CONSOLE_PL011 | CONSOLE_8250_MMIO32 | CONSOLE_8250_MMIO8 => {}
        // The SBI console: firmware calls, no address (`base` ignored).
        CONSOLE_SBI if rules.sbi_console => return Ok(()),
        // The PAPR vterm: hypervisor calls, `base` is a terminal number
        // (any value, 0 included: PAPR lets a partition name its first
        // vty 0, QEMU's spapr_vty does too), not memory.
        #[cfg(not(target_os = "none"))]
        CONSOLE_HVTERM if rules.hvterm_console => return Ok(()),
        CONSOLE_8250_IO if rules.io_port_console => {
            // An I/O port: not memory, so no segment can hold it.
            return match base {
                0 => Err(ParamError::ConsoleBaseZero),
                0x1..=0xffff => Ok(()),
                _ => Err(ParamError::ConsolePort(base)),
            };
        }
        _ => return Err(ParamError::ConsoleKind(kind)),
    }
    if base == 0 {
        return Err(ParamError::ConsoleBaseZero);
    }
    let page = console_span(base);
    if let Some(i) = params.active_segments().iter().position(|s| MemSpan::from(s).overlaps(page)) {
        return Err(ParamError::ConsoleInSegment(base, i));
    }
    if page.overlaps(rules.own_image) {
        return Err(ParamError::ConsoleInImage(base));
    }
    Ok(())
}

/// May the purgatory print on the block's console? Only when the block is
/// one (magic) and the console passes its own rules: then, and only then,
/// even a block refused for another reason can say why.
pub fn console_usable(params: &PurgatoryParams, rules: &Rules) -> bool {
    params.magic == PARAMS_MAGIC && params.console.kind != CONSOLE_NONE && check_console(params, rules).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{CONSOLE_8250_IO, CONSOLE_PL011, ON_FAILURE_RESET};
    use crate::verify::tests::{setup, RULES};

    type Edit = fn(&mut PurgatoryParams);

    fn check(edit: Edit, rules: &Rules) -> Result<(), ParamError> {
        let (mut params, _plat) = setup();
        edit(&mut params);
        validate(&params, rules)
    }

    #[test]
    fn span_arithmetic_is_exact_at_the_edges() {
        // The u64 forms against the mathematical ones (u128, no wrap).
        let v = [0u64, 1, 2, 0xfff, 0x1000, 1 << 63, u64::MAX - 1, u64::MAX];
        let end = |m: MemSpan| m.start as u128 + m.len as u128;
        for s1 in v {
            for l1 in v {
                for s2 in v {
                    for l2 in v {
                        let (x, y) = (MemSpan::new(s1, l1), MemSpan::new(s2, l2));
                        assert_eq!(x.overlaps(y), (s1 as u128) < end(y) && (s2 as u128) < end(x), "{x:?} {y:?}");
                        assert_eq!(x.contains(s2), s2 >= s1 && (s2 as u128) < end(x), "{x:?} {s2:#x}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_standard_block_is_valid() {
        assert_eq!(check(|_| {}, &RULES), Ok(()));
    }

    #[test]
    fn header_rules() {
        let cases: [(Edit, ParamError); 9] = [
            (|p| p.magic = 0, ParamError::Magic),
            (|p| p.version = 2, ParamError::Version(2)),
            (|p| p.version = 0, ParamError::Version(0)),
            (|p| p.size = 100, ParamError::Size(100)),
            (|p| p.flags = 1 << 30, ParamError::UnknownFlags(1 << 30)),
            (|p| p.nr_segments = 17, ParamError::TooManySegments(17)),
            (|p| p.on_failure = 7, ParamError::OnFailure(7)),
            (|p| p.psci_conduit = 9, ParamError::PsciConduit(9)),
            (|p| p.nr_segments = u32::MAX, ParamError::TooManySegments(u32::MAX)),
        ];
        for (edit, want) in cases {
            assert_eq!(check(edit, &RULES), Err(want));
        }
    }

    #[test]
    fn segment_rules() {
        let cases: [(Edit, ParamError); 8] = [
            (|p| p.segments[1].len = 0, ParamError::Segment(1, SegmentRule::ZeroLength)),
            (|p| p.segments[1].mem = 0, ParamError::Segment(1, SegmentRule::AtZero)),
            (|p| p.segments[3].len = u64::MAX, ParamError::Segment(3, SegmentRule::Wraps)),
            (|p| p.segments[1].kind = 99, ParamError::Segment(1, SegmentRule::UnknownKind(99))),
            (|p| p.segments[2].flags = 6, ParamError::Segment(2, SegmentRule::UnknownFlags(6))),
            (|p| p.segments[1].mem = p.segments[0].mem + 1, ParamError::Overlap(0, 1)),
            (|p| p.segments[3].mem = p.segments[0].mem + 8191, ParamError::Overlap(0, 3)),
            // Adjacent is fine; one byte into the purgatory is not.
            (|p| p.segments[1].mem = 0x10_0000 - 0x4e20 + 1, ParamError::OverlapsImage(1, RULES.own_image)),
        ];
        for (edit, want) in cases {
            assert_eq!(check(edit, &RULES), Err(want));
        }
        assert_eq!(check(|p| p.segments[1].mem = 0x10_0000 - 0x4e20, &RULES), Ok(()));
        assert_eq!(check(|p| p.segments[1].mem = 0x12_0000, &RULES), Ok(()));
        assert_eq!(
            check(|p| p.segments[1].mem = 0x11_ffff, &RULES),
            Err(ParamError::OverlapsImage(1, RULES.own_image))
        );
    }

    #[test]
    fn kernel_entry_must_be_in_a_kernel_segment() {
        assert_eq!(check(|p| p.kernel_entry = p.segments[0].mem + 8191, &RULES), Ok(()));
        let cases: [Edit; 4] = [
            |p| p.kernel_entry = 16,
            |p| p.kernel_entry = p.segments[0].mem + 8192,
            // Inside a segment, but the initrd's.
            |p| p.kernel_entry = p.segments[1].mem,
            |p| p.segments[0].kind = SegmentKind::Other as u32,
        ];
        for edit in cases {
            let (mut params, _plat) = setup();
            edit(&mut params);
            assert_eq!(validate(&params, &RULES), Err(ParamError::EntryNotInKernel(params.kernel_entry)));
        }
    }

    #[test]
    fn boot_data_must_be_in_a_segment_of_the_architectures_kind() {
        assert_eq!(check(|p| p.boot_data = 0, &RULES), Ok(()));
        assert_eq!(check(|p| p.boot_data = p.segments[2].mem + 4095, &RULES), Ok(()));
        let (mut params, _plat) = setup();
        params.boot_data = params.segments[1].mem; // the initrd
        assert_eq!(
            validate(&params, &RULES),
            Err(ParamError::BootDataNotInSegment(params.boot_data, SegmentKind::Dtb))
        );
        params.boot_data = params.segments[2].mem + 4096; // one past the DTB
        assert!(matches!(validate(&params, &RULES), Err(ParamError::BootDataNotInSegment(..))));
        // x86 wants boot_params there, riscv64 a DTB.
        let (params, _plat) = setup();
        let x86 = Rules::x86_64(RULES.own_image);
        assert_eq!(
            validate(&params, &x86),
            Err(ParamError::BootDataNotInSegment(params.boot_data, SegmentKind::BootParams))
        );
        assert_eq!(validate(&params, &Rules::riscv64(RULES.own_image)), Ok(()));
        assert_eq!(boot_data_segment(&params, &RULES), Ok(Some(2)));
    }

    #[test]
    fn console_rules() {
        let x86 = Rules::x86_64(RULES.own_image);
        let mmio = |p: &mut PurgatoryParams, base| {
            p.console.kind = CONSOLE_PL011;
            p.console.base = base;
        };
        let (mut params, _plat) = setup();
        mmio(&mut params, 0x0900_0000);
        assert_eq!(validate(&params, &RULES), Ok(()));
        assert!(console_usable(&params, &RULES));
        // Inside a segment, or close enough that its page is.
        // (Host heap buffers may share pages: the index is the first
        // segment the console page overlaps.)
        for base in [params.segments[1].mem + 0x10, params.segments[3].mem - 0x10] {
            mmio(&mut params, base);
            let first = params.segments.iter().position(|s| MemSpan::from(s).overlaps(console_span(base)));
            assert_eq!(validate(&params, &RULES), Err(ParamError::ConsoleInSegment(base, first.unwrap())));
            assert!(!console_usable(&params, &RULES));
        }
        mmio(&mut params, 0x10_0000 + 0x1_f000);
        assert_eq!(validate(&params, &RULES), Err(ParamError::ConsoleInImage(0x11_f000)));
        mmio(&mut params, 0);
        assert_eq!(validate(&params, &RULES), Err(ParamError::ConsoleBaseZero));
        params.console.kind = 99;
        assert_eq!(validate(&params, &RULES), Err(ParamError::ConsoleKind(99)));
        // I/O ports: only where they exist, and 16 bits wide.
        let (mut params, _plat) = setup();
        params.segments[2].kind = SegmentKind::BootParams as u32;
        params.console.kind = CONSOLE_8250_IO;
        params.console.base = 0x3f8;
        assert_eq!(validate(&params, &x86), Ok(()));
        assert_eq!(check_console(&params, &RULES), Err(ParamError::ConsoleKind(CONSOLE_8250_IO)));
        params.console.base = 0x1_0000;
        assert_eq!(validate(&params, &x86), Err(ParamError::ConsolePort(0x1_0000)));
        // 16550 with byte registers: MMIO everywhere; the SBI console:
        // riscv64 only, whatever the base.
        let (mut params, _plat) = setup();
        params.console.kind = crate::abi::CONSOLE_8250_MMIO8;
        params.console.base = params.segments[1].mem;
        assert!(matches!(validate(&params, &RULES), Err(ParamError::ConsoleInSegment(..))));
        params.console.base = 0x1000_0000;
        assert_eq!(validate(&params, &RULES), Ok(()));
        params.console.kind = crate::abi::CONSOLE_SBI;
        params.console.base = 0;
        assert_eq!(validate(&params, &Rules::riscv64(RULES.own_image)), Ok(()));
        assert!(console_usable(&params, &Rules::riscv64(RULES.own_image)));
        assert_eq!(validate(&params, &RULES), Err(ParamError::ConsoleKind(crate::abi::CONSOLE_SBI)));
    }

    #[test]
    fn ppc64le_rules_take_the_hvterm_and_want_the_kernels_head() {
        let ppc = Rules::ppc64le(RULES.own_image);
        // The PAPR vterm: a terminal number, not memory: any base, even
        // one that is also a segment's address; on ppc64le only.
        let (mut params, _plat) = setup();
        params.console.kind = crate::abi::CONSOLE_HVTERM;
        for base in [0x7100_0000, 0, params.segments[1].mem] {
            params.console.base = base;
            assert_eq!(validate(&params, &ppc), Ok(()), "vterm {base:#x}");
            assert!(console_usable(&params, &ppc));
        }
        assert_eq!(validate(&params, &RULES), Err(ParamError::ConsoleKind(crate::abi::CONSOLE_HVTERM)));
        assert_eq!(
            validate(&params, &Rules::riscv64(RULES.own_image)),
            Err(ParamError::ConsoleKind(crate::abi::CONSOLE_HVTERM))
        );
        // The kernel's first 256 bytes from kernel_entry in its segment
        // (8192 bytes): the last entry that fits is 256 from the end.
        let (mut params, _plat) = setup();
        params.kernel_entry = params.segments[0].mem + 8192 - 256;
        assert_eq!(validate(&params, &ppc), Ok(()));
        params.kernel_entry += 1;
        assert_eq!(validate(&params, &ppc), Err(ParamError::KernelHead(params.kernel_entry)));
        assert_eq!(validate(&params, &RULES), Ok(()), "only ppc64le has the rule");
        assert_eq!(Rules::for_arch(ARCH_PPC64LE, RULES.own_image), Some(ppc));
        assert_eq!(
            ParamError::KernelHead(0x200_0f01).to_string(),
            "kernel entry 0x2000f01: the kernel's first 256 bytes are not inside its segment"
        );
    }

    /// The standard block with a 64 KiB backup segment as index 4 (the
    /// address is only checked, never read, here).
    fn backup(p: &mut PurgatoryParams) {
        p.segments[4] =
            SegmentDesc { mem: 0x30_0000, len: 0x1_0000, kind: SegmentKind::Backup as u32, ..p.segments[0] };
        p.nr_segments = 5;
    }

    #[test]
    fn a_backup_segment_only_on_ppc64le() {
        let ppc = Rules::ppc64le(RULES.own_image);
        assert_eq!(check(backup, &ppc), Ok(()));
        let x86 = Rules::x86_64(RULES.own_image);
        let x86_block: Edit = |p| {
            backup(p);
            p.segments[2].kind = SegmentKind::BootParams as u32;
        };
        assert_eq!(check(x86_block, &x86), Err(ParamError::BackupNotHere(4)));
        assert_eq!(check(backup, &RULES), Err(ParamError::BackupNotHere(4)));
        assert_eq!(check(backup, &Rules::riscv64(RULES.own_image)), Err(ParamError::BackupNotHere(4)));
        // Whatever its position.
        let first: Edit = |p| {
            backup(p);
            p.segments[..5].rotate_right(1);
            p.kernel_entry = p.segments[1].mem;
        };
        assert_eq!(check(first, &RULES), Err(ParamError::BackupNotHere(0)));
        assert_eq!(check(first, &ppc), Ok(()));
    }

    #[test]
    fn ppc64le_backup_rules() {
        let ppc = Rules::ppc64le(RULES.own_image);
        let cases: [(Edit, ParamError); 6] = [
            // At most one.
            (
                |p| {
                    backup(p);
                    p.segments[5] = SegmentDesc { mem: 0x40_0000, ..p.segments[4] };
                    p.nr_segments = 6;
                },
                ParamError::BackupTwice(4, 5),
            ),
            // Its source [0, len) is the crashed kernel's memory: no
            // segment (itself included), not the purgatory, named by where
            // the first of them starts.
            (
                |p| {
                    backup(p);
                    p.segments[1].mem = 0xf000;
                    p.segments[1].len = 0x1000;
                },
                ParamError::BackupSource(4, 0x1_0000, 0xf000),
            ),
            (
                |p| {
                    backup(p);
                    p.segments[4].mem = 0x8000;
                },
                ParamError::BackupSource(4, 0x1_0000, 0x8000),
            ),
            (
                |p| {
                    backup(p);
                    p.segments[4].len = 0x10_0001;
                },
                ParamError::BackupSource(4, 0x10_0001, 0x10_0000),
            ),
            // Nor an MMIO console's page: device registers, not memory.
            (
                |p| {
                    backup(p);
                    p.console.kind = CONSOLE_PL011;
                    p.console.base = 0xfff8;
                },
                ParamError::BackupSource(4, 0x1_0000, 0xf000),
            ),
            // The lowest of them.
            (
                |p| {
                    backup(p);
                    p.segments[4].len = 0x10_0001;
                    p.segments[1].mem = 0xf_f000;
                    p.segments[1].len = 0x1000;
                    p.console.kind = crate::abi::CONSOLE_8250_MMIO8;
                    p.console.base = 0xf_e000;
                },
                ParamError::BackupSource(4, 0x10_0001, 0xf_e000),
            ),
        ];
        for (edit, want) in cases {
            assert_eq!(check(edit, &ppc), Err(want));
        }
        // Adjacent is fine: a segment at len, the image at len, a console
        // page from len, the vterm (a number, not memory) anywhere.
        let fine: [Edit; 4] = [
            |p| {
                backup(p);
                p.segments[1].mem = 0x1_0000;
                p.segments[1].len = 0x1000;
            },
            |p| {
                backup(p);
                p.segments[4].len = 0x10_0000;
            },
            |p| {
                backup(p);
                p.console.kind = CONSOLE_PL011;
                p.console.base = 0x1_0000;
            },
            |p| {
                backup(p);
                p.console.kind = CONSOLE_HVTERM;
                p.console.base = 0x100;
            },
        ];
        for edit in fine {
            assert_eq!(check(edit, &ppc), Ok(()));
        }
    }

    #[test]
    fn backup_reasons_read_as_text() {
        let cases = [
            (
                ParamError::BackupNotHere(5),
                "segment 5: a backup segment, but this architecture's capture kernel needs none",
            ),
            (ParamError::BackupTwice(4, 6), "segments 4 and 6 are both backup segments"),
            (
                ParamError::BackupSource(4, 0x10000, 0xb000),
                "segment 4: its backup source 0x0+0x10000 is not the crashed kernel's memory from 0xb000 on",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
        }
    }

    #[test]
    fn console_span_covers_the_register_window_rounded_to_pages() {
        assert_eq!(console_span(0x0900_0000), MemSpan::new(0x0900_0000, 0x1000));
        assert_eq!(console_span(0x0900_0ff0), MemSpan::new(0x0900_0000, 0x2000));
        assert_eq!(console_span(u64::MAX - 3), MemSpan::new(!0xfff, 0x2000));
    }

    #[test]
    fn a_console_that_passed_its_rules_may_report_other_refusals() {
        let (mut params, _plat) = setup();
        params.console.kind = CONSOLE_PL011;
        params.console.base = 0x0900_0000;
        params.kernel_entry = 16;
        assert!(validate(&params, &RULES).is_err());
        assert!(console_usable(&params, &RULES));
        // Without the magic nothing in the block is trusted.
        params.magic = 0;
        assert!(!console_usable(&params, &RULES));
        params.magic = crate::abi::PARAMS_MAGIC;
        params.on_failure = ON_FAILURE_RESET;
        params.console.kind = 0;
        assert!(!console_usable(&params, &RULES), "no console, nothing to print on");
    }

    #[test]
    fn rules_by_image_arch() {
        let img = MemSpan::new(0x4000_0000, 0x1_0000);
        assert_eq!(Rules::for_arch(ARCH_AARCH64, img), Some(Rules::aarch64(img)));
        assert_eq!(Rules::for_arch(ARCH_X86_64, img).map(|r| r.boot_data_kind), Some(SegmentKind::BootParams));
        assert_eq!(Rules::for_arch(ARCH_RISCV64, img).map(|r| r.boot_data_kind), Some(SegmentKind::Dtb));
        assert_eq!(Rules::for_arch(0, img), None);
    }

    #[test]
    fn reasons_read_as_text() {
        let cases = [
            (ParamError::Version(3), "unsupported version 3"),
            (ParamError::Segment(2, SegmentRule::UnknownFlags(6)), "segment 2: unknown segment flags 0x6"),
            (ParamError::Overlap(0, 4), "segments 0 and 4 overlap"),
            (
                ParamError::OverlapsImage(1, MemSpan::new(0x4b00_0000, 0x2_6000)),
                "segment 1 overlaps the purgatory image 0x4b000000+0x26000",
            ),
            (ParamError::EntryNotInKernel(0x5000_0000), "kernel entry 0x50000000 is not inside a kernel segment"),
            (
                ParamError::BootDataNotInSegment(0x4a00_0000, SegmentKind::BootParams),
                "boot data 0x4a000000 is not inside a boot-params segment",
            ),
            (ParamError::ConsoleInSegment(0x4400_0000, 1), "console page 0x44000000 lies inside segment 1"),
            (ParamError::ConsolePort(0x10000), "console I/O port 0x10000 is above 0xffff"),
            // Every other variant: the reason is table-driven.
            (ParamError::Magic, "magic is not RKXP"),
            (ParamError::Size(100), "size 100 is smaller than the version 1 block"),
            (ParamError::UnknownFlags(1 << 30), "unknown flags 0x40000000"),
            (ParamError::TooManySegments(17), "too many segments: 17"),
            (ParamError::OnFailure(7), "unknown on_failure 7"),
            (ParamError::PsciConduit(9), "unknown psci_conduit 9"),
            (ParamError::Segment(1, SegmentRule::ZeroLength), "segment 1: length is zero"),
            (ParamError::Segment(1, SegmentRule::AtZero), "segment 1: starts at physical address 0"),
            (ParamError::Segment(3, SegmentRule::Wraps), "segment 3: end wraps the address space"),
            (ParamError::Segment(3, SegmentRule::TooLong), "segment 3: longer than the address space"),
            (ParamError::Segment(1, SegmentRule::UnknownKind(99)), "segment 1: unknown kind 99"),
            (ParamError::ConsoleKind(7), "console kind 7 is not supported here"),
            (ParamError::ConsoleBaseZero, "console base is 0"),
            (ParamError::ConsoleInImage(0x4b00_1000), "console page 0x4b001000 lies inside the purgatory image"),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
        }
    }
}
