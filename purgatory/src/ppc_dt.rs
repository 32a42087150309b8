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

/// One or two big-endian cells.
fn cells(v: &[u8]) -> Option<u64> {
    matches!(v.len(), 4 | 8).then(|| be_uint(v))
}

/// Exactly one cell.
fn cell(v: &[u8]) -> Option<u32> {
    (v.len() == 4).then(|| be_uint(v) as u32)
}

/// A cpu node as read so far.
#[derive(Default)]
struct Cpu {
    is_cpu: bool,
    reg: Option<u64>,
    /// `ibm,ppc-interrupt-server#s` lists the id / has the property.
    servers_match: bool,
    has_servers: bool,
    version: Option<u32>,
    timebase: Option<u64>,
}

impl Cpu {
    fn is(&self, id: u32) -> bool {
        self.is_cpu && if self.has_servers { self.servers_match } else { self.reg == Some(id as u64) }
    }
}

#[derive(Default)]
struct RtasProps {
    base: Option<u64>,
    entry: Option<u64>,
    size: Option<u64>,
    reboot: Option<u32>,
}

/// Read the boot CPU's node (the one listing physical id `cpu_id`) and
/// /rtas in one walk. A malformed blob gives `PpcDt::default()`.
pub fn read(dtb: &[u8], cpu_id: u32) -> PpcDt {
    read_walk(dtb, cpu_id).unwrap_or_default()
}

fn read_walk(dtb: &[u8], cpu_id: u32) -> Option<PpcDt> {
    let mut out = PpcDt::default();
    let mut walker = Walker::new(dtb).ok()?;
    let (mut in_cpus, mut in_rtas) = (false, false);
    let mut cpu: Option<Cpu> = None;
    let mut rtas = RtasProps::default();
    let mut rtas_seen = false;
    while let Some(token) = walker.step().ok()? {
        match token {
            Token::BeginNode { name, depth: 2 } => {
                in_cpus = same(name, b"cpus");
                // The first node named "rtas" (the kernel's
                // of_find_node_by_path("/rtas")).
                in_rtas = !rtas_seen && same(name, b"rtas");
                rtas_seen |= in_rtas;
            }
            Token::BeginNode { depth: 3, .. } if in_cpus => cpu = Some(Cpu::default()),
            Token::BeginNode { .. } => {}
            Token::EndNode { depth: 2 } => (in_cpus, in_rtas) = (false, false),
            Token::EndNode { depth: 3 } => {
                if let Some(c) = cpu.take().filter(|c| !out.cpu_found && c.is(cpu_id)) {
                    out.cpu_found = true;
                    out.cpu_version = c.version;
                    out.timebase_hz = c.timebase;
                }
            }
            Token::EndNode { .. } => {}
            Token::Prop { name, value, depth: 3 } => {
                let (Some(c), Some(v)) = (cpu.as_mut(), value.bytes(dtb)) else { continue };
                if same(name, b"device_type") {
                    c.is_cpu = same(v, b"cpu\0");
                } else if same(name, b"reg") {
                    c.reg = cells(v);
                } else if same(name, b"ibm,ppc-interrupt-server#s") {
                    c.has_servers = true;
                    c.servers_match = v.chunks_exact(4).any(|w| be_uint(w) == cpu_id as u64);
                } else if same(name, b"cpu-version") {
                    c.version = cell(v);
                } else if same(name, b"timebase-frequency") {
                    c.timebase = cells(v);
                }
            }
            Token::Prop { name, value, depth: 2 } if in_rtas => {
                let Some(v) = value.bytes(dtb) else { continue };
                if same(name, b"linux,rtas-base") {
                    rtas.base = cells(v);
                } else if same(name, b"linux,rtas-entry") {
                    rtas.entry = cells(v);
                } else if same(name, b"rtas-size") {
                    rtas.size = cells(v);
                } else if same(name, b"system-reboot") {
                    rtas.reboot = cell(v);
                }
            }
            Token::Prop { .. } => {}
        }
    }
    if let (Some(base), Some(entry), Some(size), Some(system_reboot)) = (rtas.base, rtas.entry, rtas.size, rtas.reboot)
    {
        out.rtas = Some(RtasNode { base, entry, size, system_reboot });
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
