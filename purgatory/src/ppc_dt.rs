//! What the ppc64le purgatory learns from the DTB it hands over, before
//! verifying it, to choose an engine, an entropy source, a clock and a way
//! to reset: the boot CPU's node and the /rtas node. Portable, so the host
//! tests it; the blob is read with the bounds-checked walker of
//! `crate::fdt` (whole blob checked, no panic on any input), and a
//! malformed blob means "nothing optional".
//!
//! The boot CPU is the `/cpus` child with `device_type = "cpu"` whose
//! `ibm,ppc-interrupt-server#s` lists the physical id kexec passed in r3
//! (or, without that property, whose `reg` is it), as the kernel finds it
//! (arch/powerpc/kernel/prom.c early_init_dt_scan_cpus). Its `cpu-version`
//! is the logical PVR the partition runs at (asm/reg.h PVR_ARCH_*:
//! 0x0f000004 ISA 2.07, 5 ISA 3.0, 6 ISA 3.1) and its
//! `timebase-frequency` the time base's rate.

use crate::bytes::{be_uint, same};
use crate::fdt::{Token, Walker};

/// What the DTB says about the boot CPU and RTAS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PpcDt {
    /// A cpu node lists the boot CPU's id.
    pub cpu_found: bool,
    /// Its `cpu-version` (a raw or a logical PVR).
    pub cpu_version: Option<u32>,
    /// Its `timebase-frequency`, in Hz.
    pub timebase_hz: Option<u64>,
    /// `/rtas`: `linux,rtas-base`, `linux,rtas-entry`, `rtas-size`, the
    /// `system-reboot` token.
    pub rtas: Option<RtasNode>,
}

/// The /rtas node's properties the purgatory uses (all present).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtasNode {
    pub base: u64,
    pub entry: u64,
    pub size: u64,
    pub system_reboot: u32,
}

/// The properties the walk reads, by index: five of a cpu node, then four
/// of /rtas. One table and one lookup (a comparison per name written out
/// is much more code).
const DEVICE_TYPE: usize = 0;
const REG: usize = 1;
const SERVERS: usize = 2;
const CPU_VERSION: usize = 3;
const TIMEBASE: usize = 4;
const RTAS_BASE: usize = 5;
const RTAS_ENTRY: usize = 6;
const RTAS_SIZE: usize = 7;
const SYSTEM_REBOOT: usize = 8;
purgatory_arch::str_table!(static NAMES = [
    "device_type",
    "reg",
    "ibm,ppc-interrupt-server#s",
    "cpu-version",
    "timebase-frequency",
    "linux,rtas-base",
    "linux,rtas-entry",
    "rtas-size",
    "system-reboot",
]);

/// The index of `name` in `NAMES`.
#[inline(never)]
fn prop_index(name: &[u8]) -> Option<usize> {
    (DEVICE_TYPE..=SYSTEM_REBOOT).find(|&i| same(NAMES.get(i).as_bytes(), name))
}

/// Read the boot CPU's node (the one listing physical id `cpu_id`) and
/// /rtas in one walk. A malformed blob gives `PpcDt::default()`.
pub fn read(dtb: &[u8], cpu_id: u32) -> PpcDt {
    read_walk(dtb, cpu_id).unwrap_or_default()
}

fn read_walk(dtb: &[u8], cpu_id: u32) -> Option<PpcDt> {
    let mut out = PpcDt::default();
    let mut walker = Walker::new(dtb).ok()?;
    // Where the walk is: 1 inside /cpus, 2 inside the first /rtas.
    let mut scope = 0u8;
    let mut rtas_seen = false;
    // The open cpu node's numbers and /rtas's, by property index, and
    // which of them were present (bit i); for a cpu node, DEVICE_TYPE's
    // bit means "cpu" and SERVERS's value 1 means the id is listed.
    let (mut vals, mut have) = ([0u64; 9], 0u16);
    let (mut rtas, mut rtas_have) = ([0u64; 9], 0u16);
    let bit = |i: usize| 1u16 << i;
    while let Some(token) = walker.step().ok()? {
        match token {
            Token::BeginNode { name, depth: 2 } => {
                // /rtas: the first node of that name (of_find_node_by_path).
                scope = if same(name, b"cpus") {
                    1
                } else if !rtas_seen && same(name, b"rtas") {
                    rtas_seen = true;
                    2
                } else {
                    0
                };
            }
            Token::BeginNode { depth: 3, .. } => have = 0,
            Token::EndNode { depth: 2 } => scope = 0,
            Token::EndNode { depth: 3 } => {
                let listed = if have & bit(SERVERS) != 0 {
                    vals[SERVERS] == 1
                } else {
                    have & bit(REG) != 0 && vals[REG] == cpu_id as u64
                };
                if scope == 1 && have & bit(DEVICE_TYPE) != 0 && listed && !out.cpu_found {
                    out.cpu_found = true;
                    out.cpu_version = (have & bit(CPU_VERSION) != 0).then_some(vals[CPU_VERSION] as u32);
                    out.timebase_hz = (have & bit(TIMEBASE) != 0).then_some(vals[TIMEBASE]);
                }
            }
            Token::Prop { name, value, depth } if (scope, depth) == (1, 3) || (scope, depth) == (2, 2) => {
                let (Some(i), Some(v)) = (prop_index(name), value.bytes(dtb)) else { continue };
                let value = match i {
                    DEVICE_TYPE if same(v, b"cpu\0") => 0,
                    SERVERS => v.chunks_exact(4).any(|w| be_uint(w) == cpu_id as u64) as u64,
                    // cpu-version and the RTAS token: exactly one cell;
                    // the others one or two.
                    CPU_VERSION | SYSTEM_REBOOT if v.len() == 4 => be_uint(v),
                    REG | TIMEBASE | RTAS_BASE | RTAS_ENTRY | RTAS_SIZE if matches!(v.len(), 4 | 8) => be_uint(v),
                    _ => continue,
                };
                let (table, seen) = if depth == 3 { (&mut vals, &mut have) } else { (&mut rtas, &mut rtas_have) };
                if let Some(slot) = table.get_mut(i) {
                    *slot = value;
                    *seen |= bit(i);
                }
            }
            _ => {}
        }
    }
    let all = bit(RTAS_BASE) | bit(RTAS_ENTRY) | bit(RTAS_SIZE) | bit(SYSTEM_REBOOT);
    if rtas_have & all == all {
        out.rtas = Some(RtasNode {
            base: rtas[RTAS_BASE],
            entry: rtas[RTAS_ENTRY],
            size: rtas[RTAS_SIZE],
            system_reboot: rtas[SYSTEM_REBOOT] as u32,
        });
    }
    Some(out)
}

/// The instruction-set level the boot CPU runs at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum IsaLevel {
    /// Before ISA 2.07, or a processor we do not know.
    Older,
    /// ISA 2.07 (POWER8): vector crypto, `vshasigmaw`.
    V2_07,
    /// ISA 3.0 (POWER9): `darn`.
    V3_0,
    /// ISA 3.1 (POWER10, POWER11).
    V3_1,
}

impl IsaLevel {
    pub fn name(self) -> &'static str {
        // In declaration order (a table without relocations).
        purgatory_arch::str_table!(static NAMES = ["older", "2.07", "3.0", "3.1"]);
        NAMES.get(self as usize)
    }

    /// ISA 2.07's vector crypto (`vshasigmaw`).
    pub fn vcrypto(self) -> bool {
        self >= Self::V2_07
    }

    /// ISA 3.0's `darn`.
    pub fn darn(self) -> bool {
        self >= Self::V3_0
    }
}

/// The level a raw PVR's processor family implements
/// (arch/powerpc/include/asm/reg.h PVR_POWER8E 0x4b, PVR_POWER8NVL 0x4c,
/// PVR_POWER8 0x4d, PVR_POWER9 0x4e, PVR_POWER10 0x80, PVR_POWER11 0x82).
fn raw_level(pvr: u32) -> IsaLevel {
    match pvr >> 16 {
        0x004b..=0x004d => IsaLevel::V2_07,
        0x004e => IsaLevel::V3_0,
        0x0080 | 0x0082 => IsaLevel::V3_1,
        _ => IsaLevel::Older,
    }
}

/// The level a logical PVR (asm/reg.h PVR_ARCH_207 0x0f000004, PVR_ARCH_300
/// 0x0f000005, PVR_ARCH_31 0x0f000006, PVR_ARCH_31_P11 0x0f000007) names,
/// if `cpu_version` is one.
fn logical_level(cpu_version: u32) -> Option<IsaLevel> {
    match cpu_version {
        0x0f00_0000..=0x0f00_0003 => Some(IsaLevel::Older),
        0x0f00_0004 => Some(IsaLevel::V2_07),
        0x0f00_0005 => Some(IsaLevel::V3_0),
        0x0f00_0006 | 0x0f00_0007 => Some(IsaLevel::V3_1),
        _ => None,
    }
}

/// What the boot CPU may execute: the processor's own level (its PVR, read
/// with mfpvr), capped by the logical PVR of its DTB node when that is
/// one. A partition in a compatibility mode sees its host's PVR, but the
/// hypervisor may disable newer instructions (the PCR), which the logical
/// PVR tells; a raw PVR in `cpu-version` (bare metal) adds nothing.
pub fn isa_level(pvr: u32, cpu_version: Option<u32>) -> IsaLevel {
    let raw = raw_level(pvr);
    match cpu_version.and_then(logical_level) {
        Some(logical) => raw.min(logical),
        None => raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU pseries' shape: /cpus/PowerPC,POWER9@N with reg, the
    /// interrupt servers, cpu-version and timebase-frequency; /rtas.
    fn dtb(servers: &[&[u32]], version: Option<u32>, rtas: bool) -> Vec<u8> {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        let cpus = w.begin_node("cpus").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 0).unwrap();
        for (i, list) in servers.iter().enumerate() {
            let reg = list.first().copied().unwrap_or(i as u32 * 8);
            let node = w.begin_node(&format!("PowerPC,POWER9@{reg:x}")).unwrap();
            w.property_string("device_type", "cpu").unwrap();
            w.property_u32("reg", reg).unwrap();
            if !list.is_empty() {
                w.property_array_u32("ibm,ppc-interrupt-server#s", list).unwrap();
            }
            if let Some(v) = version {
                w.property_u32("cpu-version", v + i as u32).unwrap();
            }
            w.property_u32("timebase-frequency", 512_000_000 + i as u32).unwrap();
            w.end_node(node).unwrap();
        }
        w.end_node(cpus).unwrap();
        if rtas {
            let r = w.begin_node("rtas").unwrap();
            w.property_u32("linux,rtas-base", 0x2fff_0000).unwrap();
            w.property_u32("linux,rtas-entry", 0x2fff_0000).unwrap();
            w.property_u32("rtas-size", 0x83c).unwrap();
            w.property_u32("system-reboot", 0x2004).unwrap();
            w.property_u32("power-off", 0x2003).unwrap();
            w.end_node(r).unwrap();
        }
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn the_node_listing_the_id_is_the_boot_cpu() {
        // Two cores, four threads each: id 5 is the second node's.
        let blob = dtb(&[&[0, 1, 2, 3], &[4, 5, 6, 7]], Some(0x0f00_0005), true);
        let dt = read(&blob, 5);
        assert!(dt.cpu_found);
        assert_eq!(dt.cpu_version, Some(0x0f00_0006), "the second node's (test gives it +1)");
        assert_eq!(dt.timebase_hz, Some(512_000_001));
        assert_eq!(
            dt.rtas,
            Some(RtasNode { base: 0x2fff_0000, entry: 0x2fff_0000, size: 0x83c, system_reboot: 0x2004 })
        );
        assert_eq!(read(&blob, 0).cpu_version, Some(0x0f00_0005));
        let none = read(&blob, 9);
        assert!(!none.cpu_found && none.cpu_version.is_none() && none.timebase_hz.is_none());
    }

    #[test]
    fn reg_names_the_cpu_without_interrupt_servers() {
        let blob = dtb(&[&[], &[]], None, false);
        let dt = read(&blob, 8);
        assert!(dt.cpu_found && dt.cpu_version.is_none() && dt.rtas.is_none());
        assert_eq!(dt.timebase_hz, Some(512_000_001));
    }

    #[test]
    fn a_malformed_blob_gives_nothing() {
        let mut blob = dtb(&[&[0]], Some(0x0f00_0005), true);
        let end = blob.len() - 1;
        blob[end - 20] ^= 0xff;
        blob.truncate(end);
        assert_eq!(read(&blob, 0), PpcDt::default());
        assert_eq!(read(&[0u8; 8], 0), PpcDt::default());
    }

    #[test]
    fn isa_level_is_the_pvr_capped_by_the_logical_pvr() {
        const P8: u32 = 0x004d_0200;
        const P9: u32 = 0x004e_1200;
        const P10: u32 = 0x0080_0100;
        assert_eq!(isa_level(P9, None), IsaLevel::V3_0);
        assert_eq!(isa_level(P9, Some(0x0f00_0005)), IsaLevel::V3_0);
        // A POWER9 running a POWER8-compatible partition: no darn.
        assert_eq!(isa_level(P9, Some(0x0f00_0004)), IsaLevel::V2_07);
        assert_eq!(isa_level(P10, Some(0x0f00_0003)), IsaLevel::Older);
        // A logical PVR never raises the level; a raw one is no cap.
        assert_eq!(isa_level(P8, Some(0x0f00_0006)), IsaLevel::V2_07);
        assert_eq!(isa_level(P8, Some(P9)), IsaLevel::V2_07);
        assert_eq!(isa_level(0x003f_0201, None), IsaLevel::Older, "POWER7");
        assert_eq!(isa_level(0x0082_0200, None), IsaLevel::V3_1, "POWER11");
        let l = isa_level(P9, None);
        assert!(l.vcrypto() && l.darn() && l.name() == "3.0");
        let l = isa_level(P8, None);
        assert!(l.vcrypto() && !l.darn() && l.name() == "2.07");
        assert!(!IsaLevel::Older.vcrypto());
    }
}
