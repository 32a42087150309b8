//! In-place DTB patches made after verification: fresh seeds and the boot
//! CPU. The blob never changes size: the loader reserved the properties
//! (placeholders) and the purgatory only overwrites their values.

use crate::console_lines::patch;
use crate::sha256::CompressFn;

/// `/chosen` properties refreshed when `PARAM_FLAG_REFRESH_SEEDS` is set.
/// Documentation/devicetree/bindings/chosen.txt (dt-schema chosen.yaml):
/// `kaslr-seed` is a 64-bit value, `rng-seed` a byte string.
pub const SEED_PROPERTIES: [&str; 2] = ["kaslr-seed", "rng-seed"];

/// Offset of `boot_cpuid_phys` in the FDT header (devicetree spec §5.2).
const BOOT_CPUID_PHYS_OFFSET: usize = 0x1c;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchError {
    /// The blob does not parse as an FDT.
    Parse,
    /// The blob has no /chosen node.
    NoChosen,
}

impl PatchError {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Parse => patch::PARSE,
            Self::NoChosen => patch::NO_CHOSEN,
        }
    }
}

/// A property value's location inside the blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueSpan {
    pub offset: usize,
    pub len: usize,
}

/// Find the seed placeholders in `/chosen`, in `SEED_PROPERTIES` order.
pub fn find_seed_spans(blob: &[u8]) -> Result<[Option<ValueSpan>; 2], PatchError> {
    let fdt = fdt::Fdt::new(blob).map_err(|_| PatchError::Parse)?;
    let chosen = fdt.find_node("/chosen").ok_or(PatchError::NoChosen)?;
    let base = blob.as_ptr() as usize;
    let mut spans = [None; 2];
    for (span, name) in spans.iter_mut().zip(SEED_PROPERTIES) {
        if let Some(prop) = chosen.property(name) {
            // The fdt crate hands out slices of `blob`: their address gives
            // the value's offset, which is what lets us patch in place.
            let offset = prop.value.as_ptr() as usize - base;
            *span = Some(ValueSpan { offset, len: prop.value.len() });
        }
    }
    Ok(spans)
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
    let spans = find_seed_spans(blob)?;
    let mut report = SeedReport::default();
    for (span, name) in spans.into_iter().zip(SEED_PROPERTIES) {
        let Some(span) = span else { continue };
        let value = &mut blob[span.offset..span.offset + span.len];
        if crate::seed::mix_in_place(value, name, compress, entropy) {
            report.refreshed += 1;
        } else {
            report.kept += 1;
        }
    }
    Ok(report)
}

/// Set the FDT header's `boot_cpuid_phys` (devicetree spec §5.2: "physical
/// ID of the system's boot CPU", the `reg` of its cpu node).
pub fn set_boot_cpuid(blob: &mut [u8], cpu_id: u32) -> Result<(), PatchError> {
    if blob.len() < 40 || blob[..4] != 0xd00d_feedu32.to_be_bytes() {
        return Err(PatchError::Parse);
    }
    blob[BOOT_CPUID_PHYS_OFFSET..BOOT_CPUID_PHYS_OFFSET + 4].copy_from_slice(&cpu_id.to_be_bytes());
    Ok(())
}

/// Read `boot_cpuid_phys` (used by tests and the harness).
pub fn boot_cpuid(blob: &[u8]) -> Option<u32> {
    let b = blob.get(BOOT_CPUID_PHYS_OFFSET..BOOT_CPUID_PHYS_OFFSET + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}
