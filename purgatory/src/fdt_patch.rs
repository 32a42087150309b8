//! In-place DTB patches made after verification: fresh seeds and the boot
//! CPU. The blob never changes size: the loader reserved the properties
//! (placeholders) and the purgatory only overwrites their values. The blob
//! is walked with the bounds-checked reader in `crate::fdt`, which checks
//! the whole structure before anything is written.

use crate::console_lines::patch;
use crate::fdt::{self, FdtError, BOOT_CPUID_PHYS_OFFSET};
use crate::sha256::CompressFn;

/// `/chosen` properties refreshed when `PARAM_FLAG_REFRESH_SEEDS` is set.
/// Documentation/devicetree/bindings/chosen.txt (dt-schema chosen.yaml):
/// `kaslr-seed` is a 64-bit value, `rng-seed` a byte string.
pub const SEED_PROPERTIES: [&str; 2] = ["kaslr-seed", "rng-seed"];
// The same names as the image reads them (no relocations).
purgatory_arch::str_table!(static SEED_NAMES = [SEED_PROPERTIES[0], SEED_PROPERTIES[1]]);

/// `SEED_PROPERTIES`, looked up in `SEED_NAMES`.
fn seed_names() -> [&'static str; 2] {
    [SEED_NAMES.get(0), SEED_NAMES.get(1)]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchError {
    /// The blob is not a well-formed FDT.
    Fdt(FdtError),
    /// The blob has no /chosen node.
    NoChosen,
}

impl PatchError {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Fdt(e) => e.describe(),
            Self::NoChosen => crate::text!(patch::NO_CHOSEN),
        }
    }
}

/// A property value's location inside the blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueSpan {
    pub offset: usize,
    pub len: usize,
}

/// Find the seed placeholders in `/chosen`, in `SEED_PROPERTIES` order,
/// after checking the whole blob.
pub fn find_seed_spans(blob: &[u8]) -> Result<[Option<ValueSpan>; 2], PatchError> {
    let (chosen, found) = fdt::chosen_props(blob, seed_names()).map_err(PatchError::Fdt)?;
    if !chosen {
        return Err(PatchError::NoChosen);
    }
    Ok(found.map(|b| b.map(|b| ValueSpan { offset: b.off, len: b.len })))
}

/// Outcome of [`refresh_seeds`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// Properties whose value was replaced.
    pub refreshed: u32,
    /// Properties found but kept as loaded (no entropy source).
    pub kept: u32,
}

/// Replace each seed placeholder with SHA-256(domain, name, counter, loaded
/// value, fresh entropy) so that the result is at least as unpredictable as
/// either input. With no entropy source (`entropy` returns None) the values
/// are left exactly as the loader wrote them.
pub fn refresh_seeds(
    blob: &mut [u8],
    compress: CompressFn,
    entropy: &mut dyn FnMut() -> Option<u64>,
) -> Result<SeedReport, PatchError> {
    // As find_seed_spans, without converting the spans.
    let (chosen, found) = fdt::chosen_props(blob, seed_names()).map_err(PatchError::Fdt)?;
    if !chosen {
        return Err(PatchError::NoChosen);
    }
    let mut report = SeedReport::default();
    for (i, span) in found.iter().enumerate() {
        // The walker proved the value lies inside the structure block.
        let Some(value) = span.and_then(|b| b.off.checked_add(b.len).and_then(|end| blob.get_mut(b.off..end))) else {
            continue;
        };
        if crate::seed::mix_in_place(value, SEED_NAMES.get(i), compress, entropy) {
            report.refreshed += 1;
        } else {
            report.kept += 1;
        }
    }
    Ok(report)
}

/// Set the FDT header's `boot_cpuid_phys` (devicetree spec §5.2: "physical
/// ID of the system's boot CPU", the `reg` of its cpu node), in a blob
/// whose header is valid.
pub fn set_boot_cpuid(blob: &mut [u8], cpu_id: u32) -> Result<(), PatchError> {
    fdt::header(blob).map_err(PatchError::Fdt)?;
    let field = blob.get_mut(BOOT_CPUID_PHYS_OFFSET..BOOT_CPUID_PHYS_OFFSET + 4);
    field.ok_or(PatchError::Fdt(FdtError::Magic))?.copy_from_slice(&cpu_id.to_be_bytes());
    Ok(())
}

/// Read `boot_cpuid_phys` (used by tests and the harness).
pub fn boot_cpuid(blob: &[u8]) -> Option<u32> {
    fdt::boot_cpuid(blob)
}
