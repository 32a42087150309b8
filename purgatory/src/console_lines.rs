//! The console line contract: every line the purgatory prints, as a
//! template with `{name}` placeholders filled in order by
//! [`crate::report::Console::line`]. The purgatory prints these constants
//! and nothing else, and `tests/guest/purgatory_lines.json` (generated from
//! [`LINES`], [`PARAM_REASONS`] and [`STRUCTURE_REASONS`]; a host test fails
//! when it is stale) is what the guest-tier judges match against.
//!
//! Placeholders: `{entry}`, `{image}`, `{mem}`, `{len}`, `{boot_data}`,
//! `{cpu}`, `{cr0}`, `{cr4}`, `{addr}`, `{flags}`, `{base}`, `{hart}`, `{a1}`,
//! `{scause}`, `{sepc}`, `{stval}`, `{pvr}`, `{cpu_version}`,
//! `{offset}`, `{word}` are 0x-prefixed
//! lowercase hex without leading zeros; `{index}`, `{other}`, `{segments}`,
//! `{bytes}`, `{us}`, `{refreshed}`, `{kept}`, `{count}`, `{version}`,
//! `{size}`, `{value}` decimal; `{sha256}` 64 lowercase hex digits; the others text.

/// Every line starts with this.
pub const TAG: &str = "purgatory: ";
/// Every refusal starts with this.
pub const REFUSED: &str = "purgatory: REFUSED: ";

/// First line, once the parameter block is valid. `{setup}` is one of the
/// `SETUP_*` templates.
pub const STARTED: &str = "purgatory: {arch} {mode}, image {image}, {setup}";
pub const SETUP_CACHES_ON: &str = "mmu+caches on";
pub const SETUP_CACHES_OFF: &str = "mmu+caches off ({why})";
pub const SETUP_X86: &str = "cr0 {cr0}, cr4 {cr4}";
pub const SETUP_RISCV: &str = "hart {hart}, a1 {a1}, caches on (PMA, satp 0)";
/// riscv64: where the boot hart's extensions came from; `{zknh}` is
/// "zknh" or "no-zknh", `{zkr}` "zkr" or "no-zkr".
pub const RISCV_ISA: &str = "purgatory: boot hart isa from {source}: {zknh} {zkr}";
/// riscv64: a1 at entry is not the DTB the block names (kexec_load passes
/// the first FDT-looking segment); the verified one is handed over.
pub const RISCV_A1_NOTE: &str = "purgatory: note: the kernel found the FDT at a1 {a1}, the loader named {boot_data}";
/// riscv64: a trap that was no guarded probe.
pub const UNEXPECTED_TRAP: &str =
    "purgatory: unexpected trap scause {scause} sepc {sepc} stval {stval}, not entering the kernel";
/// ppc64le: the CPU id kexec passed in r3 and what that CPU implements: its
/// PVR, the logical PVR of its DTB cpu node's `cpu-version` (0: none or
/// DTB not believed), the ISA level they give; `{vcrypto}` is "vcrypto"
/// or "no-vcrypto", `{darn}` "darn" or "no-darn".
pub const SETUP_PPC64LE: &str =
    "cpu {cpu}, pvr {pvr}, dtb cpu-version {cpu_version}, isa {isa}: {vcrypto} {darn}, caches on (real mode)";
/// ppc64le: the entry block is not the kernel's first 256 bytes.
pub const ENTRY_BLOCK_MISMATCH: &str =
    "purgatory: REFUSED: entry block {addr} differs from the kernel's first 256 bytes at {offset}";
/// ppc64le: the run_at_load word copied into the kernel.
pub const RUN_AT_LOAD: &str = "purgatory: run_at_load {word} written to {addr}";
/// ppc64le kdump: physical `[0, len)` copied into the backup segment at
/// `{addr}` after verification (kexec-tools' crashdump_backup.c).
pub const BACKUP_COPIED: &str = "purgatory: backup 0x0+{len} copied to {addr}";
pub const NO_CLOCK: &str = "purgatory: no clock to time the verification: times read 0";

pub const SEGMENT_OK: &str = "purgatory: segment {index} ({kind}) {mem}+{len} sha256 ok";
pub const EXCLUDED_OK: &str = "purgatory: segment {index} ({kind}) {mem}+{len} excluded, structure ok";
pub const NOT_HASHED: &str = "purgatory: segment {index} ({kind}) {mem}+{len} not hashed (verification off)";
pub const SKIPPED: &str = "purgatory: verification skipped at the loader's request (-i)";
pub const VERIFIED: &str = "purgatory: verified {segments} segments, {bytes} bytes hashed with {engine} in {us} us";
pub const DTB_PATCHED: &str = "purgatory: dtb: seeds refreshed {refreshed}, kept {kept}; boot cpu {cpu}";
pub const BOOT_PARAMS_PATCHED: &str = "purgatory: boot_params: rng seeds refreshed {refreshed}, kept {kept}";
pub const ENTERING: &str = "purgatory: entering kernel at {entry}, {boot_data_name} {boot_data}";

/// `{reason}` is one of [`PARAM_REASONS`].
pub const BAD_PARAMS: &str = "purgatory: REFUSED: bad parameter block: {reason}";
pub const DIGEST_MISMATCH: &str = "purgatory: REFUSED: segment {index} ({kind}) {mem}+{len} sha256 mismatch";
pub const DIGEST_EXPECTED: &str = "purgatory:   expected {sha256}";
pub const DIGEST_ACTUAL: &str = "purgatory:   actual   {sha256}";
/// `{reason}` is one of [`STRUCTURE_REASONS`].
pub const MALFORMED: &str = "purgatory: REFUSED: segment {index} ({kind}) {mem}+{len} excluded but malformed: {reason}";
pub const PATCH_FAILED: &str = "purgatory: REFUSED: cannot patch the {boot_data_name}: {reason}";
pub const NOT_ENTERING: &str = "purgatory: not entering the kernel";
pub const INTERNAL_ERROR: &str = "purgatory: internal error (panic), not entering the kernel";

pub const RESETTING: &str = "purgatory: resetting the system ({method})";
pub const RESET_FAILED: &str = "purgatory: the reset did not happen";
pub const NO_RESET: &str = "purgatory: cannot reset the system (no PSCI conduit)";
/// ppc64le: no RTAS the purgatory may call.
pub const NO_RESET_RTAS: &str = "purgatory: cannot reset the system (no usable RTAS system-reboot)";
pub const HALTED: &str = "purgatory: halted";

/// Why a parameter block was refused (`{reason}` of [`BAD_PARAMS`]).
pub mod param {
    pub const MAGIC: &str = "magic is not RKXP";
    pub const VERSION: &str = "unsupported version {version}";
    pub const SIZE: &str = "size {size} is smaller than the version 1 block";
    pub const FLAGS: &str = "unknown flags {flags}";
    pub const TOO_MANY_SEGMENTS: &str = "too many segments: {count}";
    pub const ON_FAILURE: &str = "unknown on_failure {value}";
    pub const PSCI_CONDUIT: &str = "unknown psci_conduit {value}";
    pub const SEGMENT_ZERO_LENGTH: &str = "segment {index}: length is zero";
    pub const SEGMENT_AT_ZERO: &str = "segment {index}: starts at physical address 0";
    pub const SEGMENT_WRAPS: &str = "segment {index}: end wraps the address space";
    pub const SEGMENT_TOO_LONG: &str = "segment {index}: longer than the address space";
    pub const SEGMENT_KIND: &str = "segment {index}: unknown kind {value}";
    pub const SEGMENT_FLAGS: &str = "segment {index}: unknown segment flags {flags}";
    pub const OVERLAP: &str = "segments {index} and {other} overlap";
    pub const OVERLAPS_IMAGE: &str = "segment {index} overlaps the purgatory image {mem}+{len}";
    pub const ENTRY: &str = "kernel entry {addr} is not inside a kernel segment";
    pub const BOOT_DATA: &str = "boot data {addr} is not inside a {kind} segment";
    pub const CONSOLE_KIND: &str = "console kind {value} is not supported here";
    pub const CONSOLE_BASE_ZERO: &str = "console base is 0";
    pub const CONSOLE_IN_SEGMENT: &str = "console page {base} lies inside segment {index}";
    pub const CONSOLE_IN_IMAGE: &str = "console page {base} lies inside the purgatory image";
    pub const CONSOLE_PORT: &str = "console I/O port {base} is above 0xffff";
    pub const KERNEL_HEAD: &str = "kernel entry {addr}: the kernel's first 256 bytes are not inside its segment";
    pub const BACKUP_NOT_HERE: &str =
        "segment {index}: a backup segment, but this architecture's capture kernel needs none";
    pub const BACKUP_TWICE: &str = "segments {index} and {other} are both backup segments";
    pub const BACKUP_SOURCE: &str =
        "segment {index}: its backup source 0x0+{len} is not the crashed kernel's memory from {addr} on";
}

/// Why an excluded segment is malformed (`{reason}` of [`MALFORMED`]).
pub mod structure {
    pub const ELF_IDENT: &str = "not a little-endian ELF64 header";
    pub const ELF_TYPE: &str = "ELF e_type is not ET_CORE";
    pub const ELF_HEADER_SIZE: &str = "ELF e_ehsize/e_phentsize are not ELF64 sizes";
    pub const ELF_PHDRS: &str = "ELF program headers do not fit in the segment";
    pub const NOT_EXCLUDABLE: &str = "only dtb and elfcorehdr segments may be excluded";
}

/// What is wrong with a DTB (`{reason}` of [`MALFORMED`] for an excluded
/// one, of [`PATCH_FAILED`] for the one being patched).
pub mod fdt {
    pub const MAGIC: &str = "FDT magic is not 0xd00dfeed";
    pub const TOTAL_SIZE: &str = "FDT totalsize does not fit the segment";
    pub const VERSION: &str = "FDT version is not compatible with 17";
    pub const BLOCKS: &str = "FDT blocks do not fit in totalsize or are misaligned";
    pub const RESERVATION_MAP: &str = "FDT memory reservation block is unterminated or an entry wraps";
    pub const TOKEN: &str = "FDT structure block has an unknown token";
    pub const TRUNCATED: &str = "FDT structure block ends before FDT_END";
    pub const NODE_NAME: &str = "FDT node name is not NUL-terminated inside the structure block";
    pub const PROP_VALUE: &str = "FDT property value runs past the structure block";
    pub const PROP_NAME: &str = "FDT property name is not inside the strings block";
    pub const DEPTH: &str = "FDT nodes nest deeper than 64 levels";
    pub const NESTING: &str = "FDT nodes do not form one tree under a root node";
}

/// Why the boot data could not be patched (`{reason}` of [`PATCH_FAILED`],
/// besides the [`fdt`] ones).
pub mod patch {
    pub const NO_CHOSEN: &str = "DTB has no /chosen node";
}

/// Placeholders printed as 0x-prefixed hex; as decimal; as 64 hex digits.
/// All others are text.
pub const HEX_PLACEHOLDERS: &[&str] = &[
    "entry",
    "image",
    "mem",
    "len",
    "boot_data",
    "cpu",
    "cr0",
    "cr4",
    "addr",
    "flags",
    "base",
    "hart",
    "a1",
    "scause",
    "sepc",
    "stval",
    "pvr",
    "cpu_version",
    "offset",
    "word",
];
pub const DEC_PLACEHOLDERS: &[&str] =
    &["index", "other", "segments", "bytes", "us", "refreshed", "kept", "count", "version", "size", "value"];
pub const DIGEST_PLACEHOLDERS: &[&str] = &["sha256"];
pub const TEXT_PLACEHOLDERS: &[&str] = &[
    "arch",
    "mode",
    "setup",
    "why",
    "kind",
    "engine",
    "boot_data_name",
    "reason",
    "method",
    "source",
    "zknh",
    "zkr",
    "isa",
    "vcrypto",
    "darn",
];

/// Every line template, by the key `purgatory_lines.json` gives it.
pub const LINES: &[(&str, &str)] = &[
    ("tag", TAG),
    ("refused", REFUSED),
    ("started", STARTED),
    ("setup_caches_on", SETUP_CACHES_ON),
    ("setup_caches_off", SETUP_CACHES_OFF),
    ("setup_x86", SETUP_X86),
    ("setup_riscv", SETUP_RISCV),
    ("riscv_isa", RISCV_ISA),
    ("riscv_a1_note", RISCV_A1_NOTE),
    ("unexpected_trap", UNEXPECTED_TRAP),
    ("setup_ppc64le", SETUP_PPC64LE),
    ("entry_block_mismatch", ENTRY_BLOCK_MISMATCH),
    ("run_at_load", RUN_AT_LOAD),
    ("backup_copied", BACKUP_COPIED),
    ("no_clock", NO_CLOCK),
    ("segment_ok", SEGMENT_OK),
    ("excluded_ok", EXCLUDED_OK),
    ("not_hashed", NOT_HASHED),
    ("skipped", SKIPPED),
    ("verified", VERIFIED),
    ("dtb_patched", DTB_PATCHED),
    ("boot_params_patched", BOOT_PARAMS_PATCHED),
    ("entering", ENTERING),
    ("bad_params", BAD_PARAMS),
    ("digest_mismatch", DIGEST_MISMATCH),
    ("digest_expected", DIGEST_EXPECTED),
    ("digest_actual", DIGEST_ACTUAL),
    ("malformed", MALFORMED),
    ("patch_failed", PATCH_FAILED),
    ("not_entering", NOT_ENTERING),
    ("internal_error", INTERNAL_ERROR),
    ("resetting", RESETTING),
    ("reset_failed", RESET_FAILED),
    ("no_reset", NO_RESET),
    ("no_reset_rtas", NO_RESET_RTAS),
    ("halted", HALTED),
];

/// `{reason}` templates of [`BAD_PARAMS`].
pub const PARAM_REASONS: &[(&str, &str)] = &[
    ("magic", param::MAGIC),
    ("version", param::VERSION),
    ("size", param::SIZE),
    ("flags", param::FLAGS),
    ("too_many_segments", param::TOO_MANY_SEGMENTS),
    ("on_failure", param::ON_FAILURE),
    ("psci_conduit", param::PSCI_CONDUIT),
    ("segment_zero_length", param::SEGMENT_ZERO_LENGTH),
    ("segment_at_zero", param::SEGMENT_AT_ZERO),
    ("segment_wraps", param::SEGMENT_WRAPS),
    ("segment_too_long", param::SEGMENT_TOO_LONG),
    ("segment_kind", param::SEGMENT_KIND),
    ("segment_flags", param::SEGMENT_FLAGS),
    ("overlap", param::OVERLAP),
    ("overlaps_image", param::OVERLAPS_IMAGE),
    ("entry", param::ENTRY),
    ("boot_data", param::BOOT_DATA),
    ("console_kind", param::CONSOLE_KIND),
    ("console_base_zero", param::CONSOLE_BASE_ZERO),
    ("console_in_segment", param::CONSOLE_IN_SEGMENT),
    ("console_in_image", param::CONSOLE_IN_IMAGE),
    ("console_port", param::CONSOLE_PORT),
    ("kernel_head", param::KERNEL_HEAD),
    ("backup_not_here", param::BACKUP_NOT_HERE),
    ("backup_twice", param::BACKUP_TWICE),
    ("backup_source", param::BACKUP_SOURCE),
];

/// `{reason}` texts of [`MALFORMED`] (the `fdt_*` ones also of
/// [`PATCH_FAILED`]).
pub const STRUCTURE_REASONS: &[(&str, &str)] = &[
    ("fdt_magic", fdt::MAGIC),
    ("fdt_total_size", fdt::TOTAL_SIZE),
    ("fdt_version", fdt::VERSION),
    ("fdt_blocks", fdt::BLOCKS),
    ("fdt_reservation_map", fdt::RESERVATION_MAP),
    ("fdt_token", fdt::TOKEN),
    ("fdt_truncated", fdt::TRUNCATED),
    ("fdt_node_name", fdt::NODE_NAME),
    ("fdt_prop_value", fdt::PROP_VALUE),
    ("fdt_prop_name", fdt::PROP_NAME),
    ("fdt_depth", fdt::DEPTH),
    ("fdt_nesting", fdt::NESTING),
    ("elf_ident", structure::ELF_IDENT),
    ("elf_type", structure::ELF_TYPE),
    ("elf_header_size", structure::ELF_HEADER_SIZE),
    ("elf_phdrs", structure::ELF_PHDRS),
    ("not_excludable", structure::NOT_EXCLUDABLE),
];

/// `{reason}` texts of [`PATCH_FAILED`] besides the `fdt_*` ones of
/// [`STRUCTURE_REASONS`].
pub const PATCH_REASONS: &[(&str, &str)] = &[("no_chosen", patch::NO_CHOSEN)];

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholders(template: &str) -> Vec<&str> {
        template.split('{').skip(1).filter_map(|s| s.split_once('}')).map(|(name, _)| name).collect()
    }

    #[test]
    fn every_placeholder_has_a_documented_format() {
        let known: Vec<&str> = [HEX_PLACEHOLDERS, DEC_PLACEHOLDERS, DIGEST_PLACEHOLDERS, TEXT_PLACEHOLDERS].concat();
        for (key, template) in LINES.iter().chain(PARAM_REASONS).chain(STRUCTURE_REASONS).chain(PATCH_REASONS) {
            for name in placeholders(template) {
                assert!(known.contains(&name), "{key}: placeholder {{{name}}} has no format");
            }
        }
    }

    #[test]
    fn lines_start_with_the_tag_and_keys_are_unique() {
        let setups = [SETUP_CACHES_ON, SETUP_CACHES_OFF, SETUP_X86, SETUP_RISCV, SETUP_PPC64LE];
        let mut keys = std::collections::HashSet::new();
        for (key, template) in LINES {
            assert!(keys.insert(*key), "duplicate key {key}");
            assert!(template.starts_with(TAG) || setups.contains(template), "{key}: {template}");
        }
    }
}
