//! Synthetic segment contents: deterministic pseudo-random bytes, a DTB
//! with seed placeholders, an x86 boot_params segment (built by the
//! loader's own code around a minimal setup header), an ELF64 core header,
//! and the payload image.

use loader_host::boot_params::{self, BootParamsInput, RNG_SEED_LEN};
use loader_host::range::Range;
use loader_host::system::firmware::{E820Entry, E820_RAM};
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};

/// Seed placeholders the "loader" writes; the purgatory replaces them when
/// the CPU has an entropy source.
pub const KASLR_PLACEHOLDER: [u8; 8] = [0x11; 8];
pub const RNG_PLACEHOLDER: [u8; 64] = [0x22; 64];
/// boot_cpuid_phys the DTB is built with; the purgatory must overwrite it.
pub const STALE_BOOT_CPUID: u32 = 0xdead;

/// xorshift64* bytes: reproducible "initrd" contents.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A DTB like a loader would hand over: /chosen with bootargs and seed
/// placeholders, a memory node, a stale boot_cpuid_phys.
pub fn dtb(mem_base: u64, mem_size: u64) -> Vec<u8> {
    dtb_with_cpu(mem_base, mem_size, None)
}

/// As [`dtb`], plus (riscv64) a `/cpus` node with `timebase-frequency` and
/// hart 0's `riscv,isa` string, as the loader copies them from
/// /sys/firmware/fdt: the purgatory picks its engines from them.
pub fn dtb_with_cpu(mem_base: u64, mem_size: u64, riscv_isa: Option<&str>) -> Vec<u8> {
    let build = || -> Result<Vec<u8>, vm_fdt::Error> {
        let mut w = vm_fdt::FdtWriter::new()?;
        w.set_boot_cpuid_phys(STALE_BOOT_CPUID);
        let root = w.begin_node("")?;
        w.property_u32("#address-cells", 2)?;
        w.property_u32("#size-cells", 2)?;
        w.property_string("compatible", "linux,dummy-virt")?;
        let chosen = w.begin_node("chosen")?;
        w.property_string("bootargs", "console=ttyAMA0 harness")?;
        w.property("kaslr-seed", &KASLR_PLACEHOLDER)?;
        w.property("rng-seed", &RNG_PLACEHOLDER)?;
        w.end_node(chosen)?;
        let mem = w.begin_node(&format!("memory@{mem_base:x}"))?;
        w.property_string("device_type", "memory")?;
        w.property_array_u64("reg", &[mem_base, mem_size])?;
        w.end_node(mem)?;
        if let Some(isa) = riscv_isa {
            // QEMU virt: 10 MHz timebase, hart 0 (cpus.yaml: reg = hart id).
            let cpus = w.begin_node("cpus")?;
            w.property_u32("#address-cells", 1)?;
            w.property_u32("#size-cells", 0)?;
            w.property_u32("timebase-frequency", 10_000_000)?;
            let cpu = w.begin_node("cpu@0")?;
            w.property_string("device_type", "cpu")?;
            w.property_u32("reg", 0)?;
            w.property_string("compatible", "riscv")?;
            w.property_string("riscv,isa", isa)?;
            w.end_node(cpu)?;
            w.end_node(cpus)?;
        }
        w.end_node(root)?;
        w.finish()
    };
    build().expect("vm-fdt builds a fixed tree")
}

/// x86: the SETUP_RNG_SEED bytes the "loader" writes; the purgatory mixes
/// fresh entropy into them when the CPU has RDSEED or RDRAND.
pub const X86_RNG_PLACEHOLDER: [u8; RNG_SEED_LEN] = [0x33; RNG_SEED_LEN];
/// x86: the command line the boot_params segment carries.
pub const X86_CMDLINE: &str = "console=ttyS0 harness";

/// boot.rst's setup header (0x1f1..0x268, protocol 2.15) of a relocatable
/// 64-bit kernel, as a bzImage carries it: what the loader copies into
/// boot_params. Offsets below are boot_params offsets.
fn x86_setup_header(init_size: u32) -> Vec<u8> {
    const HDR: usize = 0x1f1;
    let mut h = vec![0u8; 0x268 - HDR];
    let mut put = |off: usize, bytes: &[u8]| h[off - HDR..off - HDR + bytes.len()].copy_from_slice(bytes);
    put(0x1f1, &[4]); // setup_sects
    put(0x1fe, &0xaa55u16.to_le_bytes()); // boot_flag
    put(0x202, b"HdrS"); // header
    put(0x206, &0x020fu16.to_le_bytes()); // version 2.15
    put(0x211, &[1]); // loadflags: LOADED_HIGH
    put(0x22c, &0x7fff_ffffu32.to_le_bytes()); // initrd_addr_max
    put(0x230, &0x20_0000u32.to_le_bytes()); // kernel_alignment
    put(0x234, &[1]); // relocatable_kernel
    put(0x236, &0x3u16.to_le_bytes()); // xloadflags: XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
    put(0x238, &2047u32.to_le_bytes()); // cmdline_size
    put(0x258, &0x100_0000u64.to_le_bytes()); // pref_address
    put(0x260, &init_size.to_le_bytes()); // init_size
    h
}

/// The boot_params segment a loader builds for the stand-in kernel, at
/// physical `base`: zero page with the setup header, [`X86_CMDLINE`], the
/// initrd, an e820 map of `ram_size` bytes (the low 640 KiB and from 1
/// MiB on) and a SETUP_RNG_SEED node holding [`X86_RNG_PLACEHOLDER`].
/// Built by loader-host's own `boot_params::build`.
pub fn x86_boot_params(base: u64, kernel_len: u64, initrd: Range, ram_size: u64) -> Vec<u8> {
    let header = x86_setup_header(u32::try_from(kernel_len.next_multiple_of(4096)).expect("small kernel"));
    let e820 = [
        E820Entry { addr: 0, size: 0xa_0000, kind: E820_RAM },
        E820Entry { addr: 0x10_0000, size: ram_size - 0x10_0000, kind: E820_RAM },
    ];
    let input = BootParamsInput {
        setup_header: &header,
        can_load_above_4g: true,
        cmdline: X86_CMDLINE.as_bytes(),
        initrd: Some(initrd),
        e820: &e820,
        acpi_rsdp_addr: 0,
        screen_info: None,
        rng_seed: X86_RNG_PLACEHOLDER,
    };
    boot_params::build(&input, base).expect("the fixture's boot_params build")
}

/// Offset of the first setup_data node in a [`x86_boot_params`] segment
/// (the head of the chain, boot_params.hdr.setup_data at 0x250), given
/// the segment's physical `base`.
pub fn x86_setup_data_head(bp: &[u8], base: u64) -> usize {
    let head = u64::from_le_bytes(bp[0x250..0x258].try_into().expect("8 bytes"));
    usize::try_from(head - base).expect("node in the segment")
}

/// QEMU 7.2 pseries' RTAS tokens (include/hw/ppc/spapr.h, RTAS_TOKEN_BASE
/// 0x2000 + index): what its /rtas node lists.
pub const PPC_RTAS_POWER_OFF: u32 = 0x2003;
pub const PPC_RTAS_SYSTEM_REBOOT: u32 = 0x2004;
pub const PPC_RTAS_START_CPU: u32 = 0x2006;
/// The time base of QEMU's pseries CPUs (`timebase-frequency`).
pub const PPC_TIMEBASE_HZ: u32 = 512_000_000;

/// A ppc64le DTB as the loader would hand it over on QEMU pseries: one
/// `/cpus/PowerPC,POWER9@N` node per CPU id (`device_type = "cpu"`, `reg`,
/// `ibm,ppc-interrupt-server#s`, `cpu-version` when not 0,
/// `timebase-frequency`), `/rtas` with `linux,rtas-base`/`-entry`,
/// `rtas-size` and the tokens, `/chosen` with bootargs and an `rng-seed`
/// placeholder (powerpc reads rng-seed, not kaslr-seed), RAM from 0, and
/// a stale boot_cpuid_phys.
pub fn dtb_ppc64le(mem_size: u64, cpus: &[u32], cpu_version: u32, rtas: Option<(u64, u32)>) -> Vec<u8> {
    let build = || -> Result<Vec<u8>, vm_fdt::Error> {
        let mut w = vm_fdt::FdtWriter::new()?;
        w.set_boot_cpuid_phys(STALE_BOOT_CPUID);
        let root = w.begin_node("")?;
        w.property_u32("#address-cells", 2)?;
        w.property_u32("#size-cells", 2)?;
        w.property_string("compatible", "qemu,pseries")?;
        let chosen = w.begin_node("chosen")?;
        w.property_string("bootargs", "console=hvc0 harness")?;
        w.property("rng-seed", &RNG_PLACEHOLDER)?;
        w.end_node(chosen)?;
        let mem = w.begin_node("memory@0")?;
        w.property_string("device_type", "memory")?;
        w.property_array_u64("reg", &[0, mem_size])?;
        w.end_node(mem)?;
        let cpus_node = w.begin_node("cpus")?;
        w.property_u32("#address-cells", 1)?;
        w.property_u32("#size-cells", 0)?;
        for &id in cpus {
            let cpu = w.begin_node(&format!("PowerPC,POWER9@{id:x}"))?;
            w.property_string("device_type", "cpu")?;
            w.property_u32("reg", id)?;
            w.property_array_u32("ibm,ppc-interrupt-server#s", &[id])?;
            if cpu_version != 0 {
                w.property_u32("cpu-version", cpu_version)?;
            }
            w.property_u32("timebase-frequency", PPC_TIMEBASE_HZ)?;
            w.end_node(cpu)?;
        }
        w.end_node(cpus_node)?;
        if let Some((base, size)) = rtas {
            let r = w.begin_node("rtas")?;
            w.property_u32("linux,rtas-base", base as u32)?;
            w.property_u32("linux,rtas-entry", base as u32)?;
            w.property_u32("rtas-size", size)?;
            w.property_u32("power-off", PPC_RTAS_POWER_OFF)?;
            w.property_u32("system-reboot", PPC_RTAS_SYSTEM_REBOOT)?;
            w.property_u32("start-cpu", PPC_RTAS_START_CPU)?;
            w.end_node(r)?;
        }
        let vdevice = w.begin_node("vdevice")?;
        let vty = w.begin_node("vty@71000000")?;
        w.property_string("compatible", "hvterm1")?;
        w.property_u32("reg", 0x7100_0000)?;
        w.end_node(vty)?;
        w.end_node(vdevice)?;
        w.end_node(root)?;
        w.finish()
    };
    build().expect("vm-fdt builds a fixed tree")
}

/// The RTAS code QEMU's firmware instantiates (pc-bios/vof/entry.S
/// `hv_rtas`): `mr r4,r3; lis r3,0; ori r3,r3,0xf000 (KVMPPC_H_RTAS);
/// sc 1; blr`, big-endian. The purgatory enters it as it enters any
/// RTAS: in 32-bit big-endian real mode.
pub fn ppc_rtas_blob() -> Vec<u8> {
    [0x7c64_1b78u32, 0x3c60_0000, 0x6063_f000, 0x4400_0022, 0x4e80_0020].iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// A minimal ELF64 little-endian EM_PPC64 executable (ELFv2, e_flags 2)
/// holding `code` in one PT_LOAD at virtual address 0: what QEMU's
/// pseries `-kernel` takes; it loads it at its kernel address (0x400000)
/// and VOF enters it there.
pub fn ppc64_elf(code: &[u8]) -> Vec<u8> {
    const OFF: usize = 0x100;
    let mut e = vec![0u8; OFF];
    e[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
    let put = |e: &mut Vec<u8>, at: usize, v: &[u8]| e[at..at + v.len()].copy_from_slice(v);
    put(&mut e, 16, &2u16.to_le_bytes()); // ET_EXEC
    put(&mut e, 18, &21u16.to_le_bytes()); // EM_PPC64
    put(&mut e, 20, &1u32.to_le_bytes());
    put(&mut e, 24, &0u64.to_le_bytes()); // e_entry
    put(&mut e, 32, &64u64.to_le_bytes()); // e_phoff
    put(&mut e, 48, &2u32.to_le_bytes()); // e_flags: ELFv2
    put(&mut e, 52, &64u16.to_le_bytes());
    put(&mut e, 54, &56u16.to_le_bytes());
    put(&mut e, 56, &1u16.to_le_bytes());
    put(&mut e, 64, &1u32.to_le_bytes()); // PT_LOAD
    put(&mut e, 68, &7u32.to_le_bytes()); // RWX
    put(&mut e, 72, &(OFF as u64).to_le_bytes());
    put(&mut e, 96, &(code.len() as u64).to_le_bytes()); // filesz
    put(&mut e, 104, &(code.len() as u64).to_le_bytes()); // memsz
    put(&mut e, 112, &0x1_0000u64.to_le_bytes());
    e.extend_from_slice(code);
    e
}

/// The ppc64le payload's launcher (`launcher`..`launcher_end`) and where
/// its slots are in it (`launcher_slots`): entry, r3, the CPU to start at
/// 0x60 (or -1), the RTAS start-cpu token.
pub fn ppc64le_launcher() -> (Vec<u8>, usize) {
    let file = object::File::parse(PAYLOAD_ELF_PPC64LE).expect("payload ELF parses");
    let sym = |name: &str| {
        file.symbols()
            .find(|s| s.name() == Ok(name))
            .map(|s| s.address())
            .unwrap_or_else(|| panic!("payload lacks {name}"))
    };
    let (start, end, slots) = (sym("launcher"), sym("launcher_end"), sym("launcher_slots"));
    let payload = Payload::load_ppc64le();
    let at = (start - payload.load_addr) as usize;
    let bytes = payload.bytes[at..at + (end - start) as usize].to_vec();
    (bytes, (slots - start) as usize)
}

/// An ELF64 ET_CORE header with one PT_NOTE and `loads` PT_LOAD entries,
/// the shape of a kdump elfcorehdr (for an arm64 kernel; see
/// [`elfcorehdr_for`]).
pub fn elfcorehdr(loads: u16) -> Vec<u8> {
    elfcorehdr_for(EM_AARCH64, loads)
}

/// ELF e_machine values (ELF gABI; include/uapi/linux/elf-em.h).
pub const EM_AARCH64: u16 = 183;
pub const EM_X86_64: u16 = 62;
pub const EM_RISCV: u16 = 243;
pub const EM_PPC64: u16 = 21;

/// As [`elfcorehdr`], for a kernel of `machine`.
pub fn elfcorehdr_for(machine: u16, loads: u16) -> Vec<u8> {
    let phnum = loads + 1;
    let mut d = vec![0u8; 64 + 56 * phnum as usize];
    d[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
    d[16..18].copy_from_slice(&4u16.to_le_bytes()); // ET_CORE
    d[18..20].copy_from_slice(&machine.to_le_bytes()); // e_machine
    d[20..24].copy_from_slice(&1u32.to_le_bytes());
    d[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    d[52..54].copy_from_slice(&64u16.to_le_bytes());
    d[54..56].copy_from_slice(&56u16.to_le_bytes());
    d[56..58].copy_from_slice(&phnum.to_le_bytes());
    for i in 0..phnum as usize {
        let ph = &mut d[64 + 56 * i..64 + 56 * (i + 1)];
        let p_type: u32 = if i == 0 { 4 } else { 1 };
        ph[..4].copy_from_slice(&p_type.to_le_bytes());
        ph[16..24].copy_from_slice(&(0x4000_0000u64 + (i as u64) * 0x100_0000).to_le_bytes());
        ph[32..40].copy_from_slice(&0x100_0000u64.to_le_bytes());
    }
    d
}

/// The stand-in kernel: flat bytes at its link address and the addresses
/// of its firmware stub (aarch64: the VHE stub; riscv64: the M-mode stub;
/// x86_64: the launcher) and the stub's jump target slot.
pub struct Payload {
    pub load_addr: u64,
    pub bytes: Vec<u8>,
    pub entry: u64,
    pub vhe_stub: u64,
    pub vhe_stub_target: u64,
    /// riscv64 only: the slot the M-mode stub loads a1 (the DTB) from.
    pub stub_dtb: Option<u64>,
    /// x86_64 only: the launcher, which is no part of the kernel image but
    /// the end of the `-bios` image (it holds `vhe_stub` and
    /// `vhe_stub_target`).
    pub rom: Option<Rom>,
}

/// Bytes QEMU maps read-only at `addr` (the end of the `-bios` image is
/// mapped just below 4 GiB).
#[derive(Clone, Debug)]
pub struct Rom {
    pub addr: u64,
    pub bytes: Vec<u8>,
}

impl Rom {
    /// QEMU's PC machines take a `-bios` image whose size is a multiple of
    /// 64 KiB, mapped to end at 4 GiB: this ROM at the end, zeros before.
    pub fn bios_image(&self) -> Vec<u8> {
        let size = self.bytes.len().next_multiple_of(64 << 10);
        assert_eq!(self.addr + self.bytes.len() as u64, 1 << 32, "the launcher ends at 4 GiB");
        let mut image = vec![0u8; size - self.bytes.len()];
        image.extend_from_slice(&self.bytes);
        image
    }
}

pub static PAYLOAD_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/test-payload-aarch64.elf"));
pub static PAYLOAD_ELF_RISCV64: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/test-payload-riscv64.elf"));
pub static PAYLOAD_ELF_X86_64: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/test-payload-x86_64.elf"));
pub static PAYLOAD_ELF_PPC64LE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/test-payload-ppc64le.elf"));

impl Payload {
    pub fn load() -> Self {
        Self::from_elf(PAYLOAD_ELF, "vhe_stub", "vhe_stub_target", None)
    }

    /// The riscv64 payload; its `mstub` plays M-mode firmware.
    pub fn load_riscv64() -> Self {
        Self::from_elf(PAYLOAD_ELF_RISCV64, "mstub", "mstub_target", Some("mstub_dtb"))
    }

    /// The x86_64 payload; its `launcher` (a ROM below 4 GiB) plays
    /// firmware and relocate_kernel.
    pub fn load_x86_64() -> Self {
        Self::from_elf(PAYLOAD_ELF_X86_64, "launcher_start", "launcher_target", None)
    }

    /// The ppc64le payload; its `launcher` plays firmware and the old
    /// kernel's kexec_sequence (it carries no stub slot of the kind the
    /// others have: `vhe_stub*` name the launcher and its slots).
    pub fn load_ppc64le() -> Self {
        Self::from_elf(PAYLOAD_ELF_PPC64LE, "launcher", "launcher_slots", None)
    }

    fn from_elf(elf: &[u8], stub: &str, target: &str, dtb_slot: Option<&str>) -> Self {
        let file = object::File::parse(elf).expect("payload ELF parses");
        let sym = |name: &str| {
            file.symbols()
                .find(|s| s.name() == Ok(name))
                .map(|s| s.address())
                .unwrap_or_else(|| panic!("payload lacks {name}"))
        };
        // x86_64: the launcher section is ROM, not kernel.
        let rom = file
            .section_by_name(".launcher")
            .map(|sec| Rom { addr: sec.address(), bytes: sec.data().expect("launcher bytes").to_vec() });
        let in_rom = |addr: u64| rom.as_ref().is_some_and(|r| addr >= r.addr && addr < r.addr + r.bytes.len() as u64);
        let segs: Vec<_> = file.segments().filter(|s| s.file_range().1 > 0 && !in_rom(s.address())).collect();
        let base = segs.iter().map(|s| s.address()).min().expect("payload has loadable bytes");
        let end = segs.iter().map(|s| s.address() + s.size()).max().expect("payload has loadable bytes");
        let mut bytes = vec![0u8; (end - base) as usize];
        for s in &segs {
            let data = s.data().expect("segment data");
            let off = (s.address() - base) as usize;
            bytes[off..off + data.len()].copy_from_slice(data);
        }
        Payload {
            load_addr: base,
            bytes,
            entry: file.entry(),
            vhe_stub: sym(stub),
            vhe_stub_target: sym(target),
            stub_dtb: dtb_slot.map(sym),
            rom,
        }
    }

    /// Point the VHE stub at the purgatory entry.
    pub fn set_vhe_target(&mut self, purgatory_entry: u64) {
        let off = (self.vhe_stub_target - self.load_addr) as usize;
        self.bytes[off..off + 8].copy_from_slice(&purgatory_entry.to_le_bytes());
    }
}
