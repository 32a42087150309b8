//! One guest run: segments, parameter block, CPU model, corruption, on
//! QEMU virt (aarch64, riscv64) or a PC machine (x86_64).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kexec_purgatory::abi::{
    PurgatoryParams, SegmentDesc, SegmentKind, CONSOLE_8250_IO, CONSOLE_8250_MMIO8, CONSOLE_HVTERM, CONSOLE_PL011,
    ON_FAILURE_HALT, ON_FAILURE_RESET, PARAM_FLAG_REFRESH_SEEDS, PARAM_FLAG_SET_BOOT_CPU, PPC64LE_ENTRY_BLOCK_SIZE,
    PPC64LE_ENTRY_FILL_START, PPC64LE_RUN_AT_LOAD_OFFSET, PSCI_CONDUIT_HVC, PSCI_CONDUIT_NONE, PSCI_CONDUIT_SMC,
    SEGMENT_FLAG_EXCLUDED,
};
use loader_host::purgatory_image::{PurgatoryImage, AARCH64_ELF, PPC64LE_ELF, RISCV64_ELF, X86_64_ELF};
use loader_host::range::Range;
use object::{Object, ObjectSymbol};
use sha2::{Digest, Sha256};

use crate::fixtures::{self, Payload, Rom};
use crate::qemu::{self, HaltLoop, Outcome};

/// QEMU virt's PL011 and RAM.
pub const UART_BASE: u64 = 0x0900_0000;
pub const RAM_BASE: u64 = 0x4000_0000;
pub const RAM_SIZE: u64 = 512 << 20;

/// Where the standard scenario puts things (RAM is 0x4000_0000..0x6000_0000).
pub const INITRD_ADDR: u64 = 0x4400_0000;
pub const DTB_ADDR: u64 = 0x4a00_0000;
pub const ELFCOREHDR_ADDR: u64 = 0x4a10_0000;
pub const OTHER_ADDR: u64 = 0x4a20_0000;
pub const PURGATORY_ADDR: u64 = 0x4b00_0000;

/// QEMU riscv virt: RAM from 0x8000_0000 (OpenSBI's 512 KiB at its start,
/// PMP-protected), uart0 (16550, byte registers), and where the riscv64
/// scenario puts things: the payload ("kernel") links at 0x8040_0000, 2 MiB
/// aligned as boot.rst requires; `-kernel` (the launcher) lands at
/// 0x8020_0000; QEMU's own DTB sits in the top 2 MiB of RAM.
pub const RV_UART_BASE: u64 = 0x1000_0000;
pub const RV_RAM_BASE: u64 = 0x8000_0000;
pub const RV_INITRD_ADDR: u64 = 0x8400_0000;
pub const RV_DTB_ADDR: u64 = 0x8a00_0000;
pub const RV_ELFCOREHDR_ADDR: u64 = 0x8a10_0000;
pub const RV_OTHER_ADDR: u64 = 0x8a20_0000;
pub const RV_PURGATORY_ADDR: u64 = 0x8b00_0000;

/// QEMU's PC machines (`-M pc`, `-M q35`) with no firmware but the
/// payload's launcher (`-bios`): RAM from 0, COM1 at I/O port 0x3f8,
/// isa-debug-exit at port 0xf4. The payload ("kernel") links at 16 MiB
/// (the kernel's default LOAD_PHYSICAL_ADDR) and is entered at +0x200;
/// the launcher's page tables and stack take [8 MiB, 8 MiB + 32 KiB),
/// which no scenario may use. Where the x86_64 scenario puts things:
pub const X86_COM1: u64 = 0x3f8;
pub const X86_RAM_BASE: u64 = 0;
pub const X86_KERNEL_ADDR: u64 = 0x0100_0000;
pub const X86_INITRD_ADDR: u64 = 0x0400_0000;
pub const X86_BOOT_PARAMS_ADDR: u64 = 0x0a00_0000;
pub const X86_ELFCOREHDR_ADDR: u64 = 0x0a10_0000;
pub const X86_OTHER_ADDR: u64 = 0x0a20_0000;
pub const X86_PURGATORY_ADDR: u64 = 0x0b00_0000;
/// The launcher's page tables and stack (payload_x86_64.rs).
pub const X86_LAUNCHER_MEM: std::ops::Range<u64> = 0x80_0000..0x80_8000;

/// QEMU pseries (ppc64le): RAM from 0 (VOF's firmware and stack low in it,
/// the launcher at QEMU's kernel address 0x400000), the vty's vterm
/// number, and where the ppc64le scenario puts things: the payload links
/// at 0x0200_0000 (64 KiB aligned, as ppc64 kexec segments are), the RTAS
/// blob in its own page as firmware instantiates it.
pub const PPC_VTERM: u64 = 0x7100_0000;
pub const PPC_RAM_SIZE: u64 = 2 << 30;
pub const PPC_INITRD_ADDR: u64 = 0x0400_0000;
pub const PPC_DTB_ADDR: u64 = 0x0a00_0000;
pub const PPC_ELFCOREHDR_ADDR: u64 = 0x0a10_0000;
pub const PPC_OTHER_ADDR: u64 = 0x0a20_0000;
pub const PPC_PURGATORY_ADDR: u64 = 0x0b00_0000;
pub const PPC_RTAS_ADDR: u64 = 0x0c00_0000;
pub const PPC_RTAS_SIZE: u32 = 0x1000;
/// ppc64le kdump: the 64 KiB backup segment (kexec-tools' BACKUP_SRC_SIZE)
/// `Scenario::ppc_kdump` adds; the ppc64le payload compares what it finds
/// there with physical [0, 0x10000) (payload_ppc64le.rs `BACKUP`).
pub const PPC_BACKUP_ADDR: u64 = 0x0a30_0000;
pub const PPC_BACKUP_LEN: usize = 0x1_0000;
/// ppc64le kdump: where `Scenario::ppc_kdump` puts the crashed kernel's
/// low memory (a pattern), in the part of [0, 0x10000) QEMU's VOF leaves
/// free (its code at 0..0xc38, its stack at 0x8000..0x10000:
/// hw/ppc/spapr_vof.c `spapr_vof_reset`).
pub const PPC_CRASHED_LOW: std::ops::Range<u64> = 0x1000..0x8000;

/// The QEMU system a cell runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Aarch64,
    Riscv64,
    X86_64,
    Ppc64le,
}

/// The riscv,isa strings QEMU 7.2 writes for hart 0 (docs/riscv64.md).
const RV_ISA: &str = "rv64imafdch_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbs_sstc";
const RV_ISA_ZKNH: &str = "rv64imafdch_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbs_zknh_sstc";
const RV_ISA_ZKNH_ZKR: &str = "rv64imafdch_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbs_zknh_zkr_sstc";

/// CPU model and privilege level of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    pub arch: Arch,
    pub cpu: &'static str,
    /// `virtualization=on`: the CPU starts at EL2 (else EL1).
    pub el2: bool,
    /// Start at the payload's VHE stub, which sets HCR_EL2.E2H first.
    pub vhe: bool,
    /// riscv64: `-bios none`, start at the payload's M-mode stub (firmware
    /// that grants S-mode the `seed` CSR) instead of OpenSBI.
    pub mstub: bool,
    /// riscv64: the `riscv,isa` string of hart 0 in the handed-over DTB.
    pub isa: &'static str,
    /// x86_64: the QEMU machine (`pc` or `q35`).
    pub machine: &'static str,
    /// ppc64le: `-smp` (a second CPU is started at 0x60 and held there).
    pub smp: u32,
    /// ppc64le: the boot CPU node's `cpu-version` (0: none).
    pub cpu_version: u32,
}

impl Cell {
    pub const EL1: Cell = Cell::arm("cortex-a72", false, false);
    pub const EL2_NVHE: Cell = Cell::arm("cortex-a72", true, false);
    pub const EL2_VHE: Cell = Cell::arm("max", true, true);
    pub const EL1_MAX: Cell = Cell::arm("max", false, false);

    /// riscv64 under OpenSBI (-bios default), QEMU's default CPU.
    pub const RV: Cell = Cell::rv("rv64", false, RV_ISA);
    /// riscv64 under OpenSBI with Zknh.
    pub const RV_ZKNH: Cell = Cell::rv("rv64,zknh=true", false, RV_ISA_ZKNH);
    /// riscv64 under OpenSBI v1.1 with Zknh and Zkr: the ISA string claims
    /// Zkr but OpenSBI never sets mseccfg.SSEED, so S-mode `seed` traps.
    pub const RV_ZKR_OPENSBI: Cell = Cell::rv("rv64,zknh=true,zkr=true", false, RV_ISA_ZKNH_ZKR);
    /// riscv64 with Zknh and Zkr behind the payload's M-mode stub, which
    /// sets mseccfg.SSEED (an ePMP CSR in QEMU 7.2, hence x-epmp).
    pub const RV_MSTUB: Cell = Cell::rv("rv64,zknh=true,zkr=true,x-epmp=true", true, RV_ISA_ZKNH_ZKR);

    /// x86_64 on the i440FX PC with QEMU's default CPU (qemu64: neither
    /// SHA-NI nor RDRAND/RDSEED).
    pub const X86: Cell = Cell::x86("pc", "qemu64");
    /// x86_64 with `-cpu max`: RDRAND under TCG, and still no SHA-NI (QEMU
    /// 7.2's TCG does not implement it).
    pub const X86_MAX: Cell = Cell::x86("pc", "max");
    /// x86_64 on the Q35 (ICH9) machine, whose reset control register at
    /// port 0xcf9 is the ICH9 LPC's.
    pub const X86_Q35: Cell = Cell::x86("q35", "qemu64");

    /// ppc64le: QEMU pseries, POWER9 (radix MMU, ISA 3.0: vector crypto
    /// and darn), the logical PVR QEMU's DTB shows (0x0f000005).
    pub const P9: Cell = Cell::ppc("power9", 1, 0x0f00_0005);
    /// ppc64le: two CPUs; the second is started at 0x60 as kexec releases
    /// it and must still be held there when the kernel starts.
    pub const P9_SMP2: Cell = Cell::ppc("power9", 2, 0x0f00_0005);
    /// ppc64le: POWER8 (hash MMU, ISA 2.07: vector crypto, no darn).
    pub const P8: Cell = Cell::ppc("power8", 1, 0x0f00_0004);

    const fn arm(cpu: &'static str, el2: bool, vhe: bool) -> Cell {
        Cell { arch: Arch::Aarch64, cpu, el2, vhe, mstub: false, isa: "", machine: "virt", smp: 1, cpu_version: 0 }
    }

    const fn rv(cpu: &'static str, mstub: bool, isa: &'static str) -> Cell {
        Cell { arch: Arch::Riscv64, cpu, el2: false, vhe: false, mstub, isa, machine: "virt", smp: 1, cpu_version: 0 }
    }

    const fn ppc(cpu: &'static str, smp: u32, cpu_version: u32) -> Cell {
        let machine = "pseries";
        Cell { arch: Arch::Ppc64le, cpu, el2: false, vhe: false, mstub: false, isa: "", machine, smp, cpu_version }
    }

    const fn x86(machine: &'static str, cpu: &'static str) -> Cell {
        Cell { arch: Arch::X86_64, cpu, el2: false, vhe: false, mstub: false, isa: "", machine, smp: 1, cpu_version: 0 }
    }

    /// Expected CurrentEL value at the kernel.
    pub fn el(&self) -> u32 {
        if self.el2 {
            2
        } else {
            1
        }
    }
}

/// One segment as the loader would describe it.
#[derive(Clone, Debug)]
pub struct SegmentSpec {
    pub kind: SegmentKind,
    pub addr: u64,
    /// Contents, zero-padded to the page-multiple memsz the digest covers.
    pub data: Vec<u8>,
    pub excluded: bool,
}

impl SegmentSpec {
    pub fn new(kind: SegmentKind, addr: u64, mut data: Vec<u8>) -> Self {
        data.resize(data.len().next_multiple_of(4096).max(4096), 0);
        SegmentSpec { kind, addr, data, excluded: false }
    }
}

/// A full guest run.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub cell: Cell,
    pub segments: Vec<SegmentSpec>,
    pub purgatory_addr: u64,
    pub flags: u32,
    pub on_failure: u32,
    /// (segment index, byte offset, xor mask) applied after the digests
    /// were computed: memory changed between load and purgatory.
    pub corrupt: Vec<(usize, usize, u8)>,
    /// Last-minute edits of the parameter block.
    pub edit_params: Option<fn(&mut PurgatoryParams)>,
    /// (byte offset, xor mask) applied to the purgatory image as loaded.
    pub corrupt_purgatory: Vec<(usize, u8)>,
    /// `-icount shift=0`: one instruction per virtual nanosecond.
    pub icount: bool,
    pub deadline: Duration,
    /// Index of the kernel segment (its payload entry is the kernel entry).
    pub kernel_index: usize,
    /// Index of the boot-data segment (`boot_data`): the DTB, on x86_64
    /// the boot_params.
    pub dtb_index: Option<usize>,
    /// x86_64: where the launcher jumps instead of the purgatory's entry
    /// (a negative control: straight into the kernel).
    pub launch_at: Option<u64>,
    /// ppc64le: the run_at_load word the loader puts at entry block + 0x5c
    /// (None: the kernel's own, as a plain kexec does; Some(1): kdump).
    pub run_at_load: Option<u32>,
    /// ppc64le: (address, bytes) loaded into RAM besides the segments and
    /// never described to the purgatory: memory the crashed kernel left.
    pub preload: Vec<(u64, Vec<u8>)>,
    payload: PayloadInfo,
}

#[derive(Clone, Debug)]
struct PayloadInfo {
    entry: u64,
    vhe_stub: u64,
    vhe_target_offset: usize,
    stub_dtb_offset: Option<usize>,
    /// x86_64: the launcher ROM and the offset in it of the slot holding
    /// the address it jumps to.
    rom: Option<(Rom, usize)>,
}

/// Where a scenario puts its segments.
struct Layout {
    ram_base: u64,
    initrd: u64,
    dtb: u64,
    elfcorehdr: u64,
    other: u64,
    purgatory: u64,
}

fn layout(arch: Arch) -> Layout {
    match arch {
        Arch::X86_64 => Layout {
            ram_base: X86_RAM_BASE,
            initrd: X86_INITRD_ADDR,
            dtb: X86_BOOT_PARAMS_ADDR,
            elfcorehdr: X86_ELFCOREHDR_ADDR,
            other: X86_OTHER_ADDR,
            purgatory: X86_PURGATORY_ADDR,
        },
        Arch::Ppc64le => Layout {
            ram_base: 0,
            initrd: PPC_INITRD_ADDR,
            dtb: PPC_DTB_ADDR,
            elfcorehdr: PPC_ELFCOREHDR_ADDR,
            other: PPC_OTHER_ADDR,
            purgatory: PPC_PURGATORY_ADDR,
        },
        Arch::Aarch64 => Layout {
            ram_base: RAM_BASE,
            initrd: INITRD_ADDR,
            dtb: DTB_ADDR,
            elfcorehdr: ELFCOREHDR_ADDR,
            other: OTHER_ADDR,
            purgatory: PURGATORY_ADDR,
        },
        Arch::Riscv64 => Layout {
            ram_base: RV_RAM_BASE,
            initrd: RV_INITRD_ADDR,
            dtb: RV_DTB_ADDR,
            elfcorehdr: RV_ELFCOREHDR_ADDR,
            other: RV_OTHER_ADDR,
            purgatory: RV_PURGATORY_ADDR,
        },
    }
}

/// riscv64 `-kernel` image under OpenSBI (loaded at RAM + 2 MiB, entered
/// in S-mode with a0 = hart id): load a1 (the DTB, as kexec's relocation
/// code passes it) and the purgatory entry from the two slots after the
/// code, and jump. RISC-V base ISA encodings:
fn riscv_launcher(entry: u64, dtb: u64) -> Vec<u8> {
    let mut v = Vec::new();
    for insn in [
        0x0000_0297u32, // auipc t0, 0
        0x0182_b583,    // ld    a1, 24(t0)
        0x0102_b283,    // ld    t0, 16(t0)
        0x0002_8067,    // jalr  x0, 0(t0)
    ] {
        v.extend_from_slice(&insn.to_le_bytes());
    }
    v.extend_from_slice(&entry.to_le_bytes()); // offset 16
    v.extend_from_slice(&dtb.to_le_bytes()); // offset 24
    v
}

static RUN_ID: AtomicU32 = AtomicU32::new(0);

impl Scenario {
    /// kernel (payload), initrd, dtb (x86_64: boot_params), elfcorehdr and
    /// an "other" segment.
    pub fn standard(name: &str, cell: Cell) -> Self {
        Self::with_initrd(name, cell, 1 << 20)
    }

    /// As `standard`, with an initrd of `initrd_len` bytes.
    pub fn with_initrd(name: &str, cell: Cell, initrd_len: usize) -> Self {
        let l = layout(cell.arch);
        let (payload, boot_kind, dtb, core) = match cell.arch {
            Arch::Aarch64 => {
                (Payload::load(), SegmentKind::Dtb, fixtures::dtb(l.ram_base, RAM_SIZE), fixtures::EM_AARCH64)
            }
            Arch::Riscv64 => {
                let dtb = fixtures::dtb_with_cpu(l.ram_base, RAM_SIZE, Some(cell.isa));
                (Payload::load_riscv64(), SegmentKind::Dtb, dtb, fixtures::EM_RISCV)
            }
            Arch::X86_64 => {
                let payload = Payload::load_x86_64();
                let initrd = Range::new(l.initrd, l.initrd + initrd_len as u64);
                let bp = fixtures::x86_boot_params(l.dtb, payload.bytes.len() as u64, initrd, RAM_SIZE);
                (payload, SegmentKind::BootParams, bp, fixtures::EM_X86_64)
            }
            Arch::Ppc64le => {
                let cpus: Vec<u32> = (0..cell.smp).collect();
                let rtas = Some((PPC_RTAS_ADDR, PPC_RTAS_SIZE));
                let dtb = fixtures::dtb_ppc64le(PPC_RAM_SIZE, &cpus, cell.cpu_version, rtas);
                (Payload::load_ppc64le(), SegmentKind::Dtb, dtb, fixtures::EM_PPC64)
            }
        };
        let segments = vec![
            SegmentSpec::new(SegmentKind::Kernel, payload.load_addr, payload.bytes.clone()),
            SegmentSpec::new(SegmentKind::Initrd, l.initrd, fixtures::pseudo_random(initrd_len, 7)),
            SegmentSpec::new(boot_kind, l.dtb, dtb),
            SegmentSpec::new(SegmentKind::ElfCoreHdr, l.elfcorehdr, fixtures::elfcorehdr_for(core, 2)),
            SegmentSpec::new(SegmentKind::Other, l.other, fixtures::pseudo_random(12345, 99)),
        ];
        // What rkexec asks for: the seed refresh on x86 (boot_params has no
        // boot CPU to set; loader-host/src/arch/x86_64/mod.rs), both on the
        // DTB machines (loader-host/src/arch/dtb_boot.rs).
        let flags = match cell.arch {
            Arch::X86_64 => PARAM_FLAG_REFRESH_SEEDS,
            _ => PARAM_FLAG_REFRESH_SEEDS | PARAM_FLAG_SET_BOOT_CPU,
        };
        // The stub's jump target slot: in the kernel image, or (x86_64) in
        // the launcher ROM.
        let (vhe_target_offset, rom) = match payload.rom.clone() {
            Some(rom) => {
                let slot = (payload.vhe_stub_target - rom.addr) as usize;
                (0, Some((rom, slot)))
            }
            None => ((payload.vhe_stub_target - payload.load_addr) as usize, None),
        };
        Scenario {
            name: name.into(),
            cell,
            segments,
            purgatory_addr: l.purgatory,
            flags,
            on_failure: ON_FAILURE_RESET,
            corrupt: Vec::new(),
            edit_params: None,
            corrupt_purgatory: Vec::new(),
            icount: false,
            deadline: Duration::from_secs(60),
            kernel_index: 0,
            dtb_index: Some(2),
            launch_at: None,
            run_at_load: None,
            preload: Vec::new(),
            payload: PayloadInfo {
                entry: payload.entry,
                vhe_stub: payload.vhe_stub,
                vhe_target_offset,
                stub_dtb_offset: payload.stub_dtb.map(|a| (a - payload.load_addr) as usize),
                rom,
            },
        }
    }

    /// ppc64le kdump as kexec-tools loads it: the standard segments, then a
    /// zero-filled 64 KiB backup segment (kexec/arch/ppc64/crashdump-ppc64.c
    /// `load_crashdump_segments`) at [`PPC_BACKUP_ADDR`], run_at_load 1,
    /// and a pattern in the crashed kernel's low memory
    /// ([`PPC_CRASHED_LOW`]) for the purgatory to back up.
    pub fn ppc_kdump(name: &str, cell: Cell) -> Self {
        assert_eq!(cell.arch, Arch::Ppc64le, "the backup segment is ppc64le's");
        let mut sc = Self::standard(name, cell);
        sc.segments.push(SegmentSpec::new(SegmentKind::Backup, PPC_BACKUP_ADDR, vec![0; PPC_BACKUP_LEN]));
        sc.run_at_load = Some(1);
        let len = (PPC_CRASHED_LOW.end - PPC_CRASHED_LOW.start) as usize;
        sc.preload.push((PPC_CRASHED_LOW.start, fixtures::pseudo_random(len, 0x6b64)));
        sc
    }

    pub fn index_of(&self, kind: SegmentKind) -> usize {
        self.segments.iter().position(|s| s.kind == kind).unwrap_or_else(|| panic!("no {kind:?} segment"))
    }

    /// The parameter block a loader would write for these segments.
    pub fn params(&self) -> PurgatoryParams {
        let mut p = PurgatoryParams::new();
        p.flags = self.flags;
        p.kernel_entry = self.payload.entry;
        p.boot_data = self.dtb_index.map_or(0, |i| self.segments[i].addr);
        p.on_failure = self.on_failure;
        match self.cell.arch {
            Arch::Aarch64 => {
                p.console.kind = CONSOLE_PL011;
                p.console.base = UART_BASE;
                // QEMU virt's PSCI conduit: SMC when EL2 exists without EL3, else HVC.
                p.psci_conduit = if self.cell.el2 { PSCI_CONDUIT_SMC } else { PSCI_CONDUIT_HVC };
            }
            Arch::Riscv64 => {
                p.console.kind = CONSOLE_8250_MMIO8;
                p.console.base = RV_UART_BASE;
                p.psci_conduit = PSCI_CONDUIT_NONE;
            }
            Arch::X86_64 => {
                p.console.kind = CONSOLE_8250_IO;
                p.console.base = X86_COM1;
                p.psci_conduit = PSCI_CONDUIT_NONE;
            }
            Arch::Ppc64le => {
                p.console.kind = CONSOLE_HVTERM;
                p.console.base = PPC_VTERM;
                p.psci_conduit = PSCI_CONDUIT_NONE;
            }
        }
        p.nr_segments = self.segments.len() as u32;
        for (d, s) in p.segments.iter_mut().zip(&self.segments) {
            *d = SegmentDesc {
                mem: s.addr,
                len: s.data.len() as u64,
                sha256: Sha256::digest(&s.data).into(),
                kind: s.kind as u32,
                flags: if s.excluded { SEGMENT_FLAG_EXCLUDED } else { 0 },
            };
        }
        if let Some(edit) = self.edit_params {
            edit(&mut p);
        }
        p
    }

    fn work_dir(&self) -> PathBuf {
        let id = RUN_ID.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join("rkexec-harness").join(format!("{}-{}-{id}", self.name, std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        dir
    }

    /// QEMU arguments for this scenario, writing segment files to `dir`.
    pub fn qemu_args(&self, dir: &std::path::Path) -> Vec<String> {
        match self.cell.arch {
            Arch::Riscv64 => return self.qemu_args_riscv64(dir),
            Arch::X86_64 => return self.qemu_args_x86_64(dir),
            Arch::Ppc64le => return self.qemu_args_ppc64le(dir),
            Arch::Aarch64 => {}
        }
        let image = PurgatoryImage::aarch64().expect("embedded purgatory is valid");
        let params = self.params();
        let mut purgatory = image.with_params(&params);
        for &(off, mask) in &self.corrupt_purgatory {
            purgatory[off] ^= mask;
        }
        let entry = self.purgatory_addr + image.header.entry_offset;

        let mut args: Vec<String> = [
            "-M",
            if self.cell.el2 { "virt,virtualization=on" } else { "virt" },
            "-cpu",
            self.cell.cpu,
            "-m",
            "512M",
            "-smp",
            "1",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-semihosting",
            "-no-reboot",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.icount {
            args.extend(["-icount".into(), "shift=0".into()]);
        }
        let mut add = |name: &str, addr: u64, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            args.push("-device".into());
            args.push(format!("loader,file={},addr={addr:#x},force-raw=on", path.display()));
        };
        for (i, s) in self.segments.iter().enumerate() {
            let mut data = s.data.clone();
            for &(idx, off, mask) in &self.corrupt {
                if idx == i {
                    data[off] ^= mask;
                }
            }
            add(&format!("seg{i}-{:?}.bin", s.kind), s.addr, &data);
        }
        add("purgatory.bin", self.purgatory_addr, &purgatory);
        let pc = if self.cell.vhe { self.payload.vhe_stub } else { entry };
        args.push("-device".into());
        args.push(format!("loader,addr={pc:#x},cpu-num=0"));
        args
    }

    /// The riscv64 guest: OpenSBI (`-bios default`) enters the launcher
    /// (`-kernel`) in S-mode, which jumps to the purgatory with a0 = hart
    /// id and a1 = the DTB; or (`mstub`) no firmware and the CPU starts at
    /// the payload's M-mode stub, which does the same after granting `seed`.
    fn qemu_args_riscv64(&self, dir: &std::path::Path) -> Vec<String> {
        let image = PurgatoryImage::riscv64().expect("embedded riscv64 purgatory is valid");
        let mut purgatory = image.with_params(&self.params());
        for &(off, mask) in &self.corrupt_purgatory {
            purgatory[off] ^= mask;
        }
        let entry = self.purgatory_addr + image.header.entry_offset;
        let bios = if self.cell.mstub { "none" } else { "default" };
        let mut args: Vec<String> = [
            "-M",
            "virt",
            "-cpu",
            self.cell.cpu,
            "-m",
            "512M",
            "-smp",
            "1",
            "-bios",
            bios,
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.icount {
            args.extend(["-icount".into(), "shift=0".into()]);
        }
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            path
        };
        for (i, s) in self.segments.iter().enumerate() {
            let mut data = s.data.clone();
            for &(idx, off, mask) in &self.corrupt {
                if idx == i {
                    data[off] ^= mask;
                }
            }
            let path = write(&format!("seg{i}-{:?}.bin", s.kind), &data);
            args.push("-device".into());
            args.push(format!("loader,file={},addr={:#x},force-raw=on", path.display(), s.addr));
        }
        let path = write("purgatory.bin", &purgatory);
        args.push("-device".into());
        args.push(format!("loader,file={},addr={:#x},force-raw=on", path.display(), self.purgatory_addr));
        if self.cell.mstub {
            args.push("-device".into());
            args.push(format!("loader,addr={:#x},cpu-num=0", self.payload.vhe_stub));
        } else {
            let dtb = self.dtb_index.map_or(0, |i| self.segments[i].addr);
            let path = write("launcher.bin", &riscv_launcher(entry, dtb));
            args.push("-kernel".into());
            args.push(path.display().to_string());
        }
        args
    }

    /// The x86_64 guest: no firmware but the payload's launcher as the
    /// `-bios` image, which the CPU resets into; it enters long mode and
    /// jumps to the purgatory (or `launch_at`) as relocate_kernel would.
    /// The payload exits through isa-debug-exit.
    fn qemu_args_x86_64(&self, dir: &std::path::Path) -> Vec<String> {
        let image = PurgatoryImage::x86_64().expect("embedded x86_64 purgatory is valid");
        let mut purgatory = image.with_params(&self.params());
        for &(off, mask) in &self.corrupt_purgatory {
            purgatory[off] ^= mask;
        }
        let entry = self.purgatory_addr + image.header.entry_offset;
        // The launcher builds its page tables and stack in RAM: a scenario
        // that loads something there would be overwritten, not tested.
        let spans = self.segments.iter().map(|s| (s.addr, s.data.len() as u64));
        for (addr, len) in spans.chain([(self.purgatory_addr, image.mem_size())]) {
            let clear = addr + len <= X86_LAUNCHER_MEM.start || addr >= X86_LAUNCHER_MEM.end;
            assert!(clear, "{addr:#x}+{len:#x} overlaps the launcher's memory {X86_LAUNCHER_MEM:#x?}");
        }
        let (mut rom, slot) = self.payload.rom.clone().expect("the x86_64 payload carries its launcher");
        rom.bytes[slot..slot + 8].copy_from_slice(&self.launch_at.unwrap_or(entry).to_le_bytes());
        let mut args: Vec<String> = [
            "-M",
            self.cell.machine,
            "-cpu",
            self.cell.cpu,
            "-m",
            "512M",
            "-smp",
            "1",
            "-nodefaults",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // A triple fault resets the machine like port 0xcf9 does; QEMU
        // says which it was only in this log (Outcome::triple_fault).
        args.extend([
            "-d".into(),
            "cpu_reset".into(),
            "-D".into(),
            dir.join(qemu::CPU_RESET_LOG).display().to_string(),
        ]);
        if self.icount {
            args.extend(["-icount".into(), "shift=0".into()]);
        }
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            path
        };
        args.push("-bios".into());
        args.push(write("launcher.rom", &rom.bios_image()).display().to_string());
        for (i, s) in self.segments.iter().enumerate() {
            let mut data = s.data.clone();
            for &(idx, off, mask) in &self.corrupt {
                if idx == i {
                    data[off] ^= mask;
                }
            }
            let path = write(&format!("seg{i}-{:?}.bin", s.kind), &data);
            args.push("-device".into());
            args.push(format!("loader,file={},addr={:#x},force-raw=on", path.display(), s.addr));
        }
        let path = write("purgatory.bin", &purgatory);
        args.push("-device".into());
        args.push(format!("loader,file={},addr={:#x},force-raw=on", path.display(), self.purgatory_addr));
        args
    }

    /// The ppc64le image as a loader completes it: the parameter block,
    /// then the entry block's bytes 4..0xff from the kernel's (its
    /// __secondary_hold at 0x60), the run_at_load word at 0x5c as the
    /// loader chose (kexec-tools' elf_ppc64_load).
    pub fn ppc64le_image_bytes(&self) -> Vec<u8> {
        let image = PurgatoryImage::ppc64le().expect("embedded ppc64le purgatory is valid");
        let mut bytes = image.with_params(&self.params());
        let block = image.header.entry_offset as usize;
        let kernel = &self.segments[self.kernel_index].data;
        let fill = PPC64LE_ENTRY_FILL_START as usize..PPC64LE_ENTRY_BLOCK_SIZE as usize;
        bytes[block + fill.start..block + fill.end].copy_from_slice(&kernel[fill]);
        if let Some(word) = self.run_at_load {
            let at = block + PPC64LE_RUN_AT_LOAD_OFFSET as usize;
            bytes[at..at + 4].copy_from_slice(&word.to_le_bytes());
        }
        for &(off, mask) in &self.corrupt_purgatory {
            bytes[off] ^= mask;
        }
        bytes
    }

    /// The ppc64le guest: QEMU pseries with VOF (`x-vof=on`, no SLOF)
    /// enters the payload's launcher as the boot image (`-kernel`,
    /// 32-bit big-endian); it copies the entry block to 0, starts the
    /// second CPU at 0x60 (with `-smp 2`) and enters the purgatory as
    /// kexec_sequence does. The RTAS blob sits where the DTB's /rtas says.
    fn qemu_args_ppc64le(&self, dir: &std::path::Path) -> Vec<String> {
        let image = PurgatoryImage::ppc64le().expect("embedded ppc64le purgatory is valid");
        let entry = self.purgatory_addr + image.header.entry_offset;
        // TCG lacks the Spectre mitigations the default machine asks for:
        // say they are broken rather than have QEMU warn on every run.
        let machine = "pseries,x-vof=on,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off";
        let smp = self.cell.smp.to_string();
        let mut args: Vec<String> = [
            "-M",
            machine,
            "-cpu",
            self.cell.cpu,
            "-m",
            "2G",
            "-smp",
            &smp,
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.icount {
            args.extend(["-icount".into(), "shift=0".into()]);
        }
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            path
        };
        let load = |args: &mut Vec<String>, name: &str, addr: u64, bytes: &[u8]| {
            let path = write(name, bytes);
            args.push("-device".into());
            args.push(format!("loader,file={},addr={addr:#x},force-raw=on", path.display()));
        };
        for (i, s) in self.segments.iter().enumerate() {
            let mut data = s.data.clone();
            for &(idx, off, mask) in &self.corrupt {
                if idx == i {
                    data[off] ^= mask;
                }
            }
            load(&mut args, &format!("seg{i}-{:?}.bin", s.kind), s.addr, &data);
        }
        load(&mut args, "purgatory.bin", self.purgatory_addr, &self.ppc64le_image_bytes());
        load(&mut args, "rtas.bin", PPC_RTAS_ADDR, &fixtures::ppc_rtas_blob());
        for (i, (addr, bytes)) in self.preload.iter().enumerate() {
            load(&mut args, &format!("preload{i}.bin"), *addr, bytes);
        }
        let (mut launcher, slots) = fixtures::ppc64le_launcher();
        let secondary: i64 = if self.cell.smp > 1 { 1 } else { -1 };
        for (i, v) in [entry, 0, secondary as u64, fixtures::PPC_RTAS_START_CPU as u64].into_iter().enumerate() {
            launcher[slots + 8 * i..slots + 8 * i + 8].copy_from_slice(&v.to_le_bytes());
        }
        let path = write("launcher.elf", &fixtures::ppc64_elf(&launcher));
        args.push("-kernel".into());
        args.push(path.display().to_string());
        args
    }

    /// The purgatory's halt loop where this scenario loads it (symbols of
    /// the embedded ELF, linked at 0).
    pub fn halt_loop(&self) -> HaltLoop {
        let elf = match self.cell.arch {
            Arch::Aarch64 => AARCH64_ELF,
            Arch::Riscv64 => RISCV64_ELF,
            Arch::X86_64 => X86_64_ELF,
            Arch::Ppc64le => PPC64LE_ELF,
        };
        let file = object::File::parse(elf).expect("embedded purgatory ELF parses");
        let sym = |name: &str| {
            file.symbols()
                .find(|s| s.name() == Ok(name))
                .map(|s| s.address())
                .unwrap_or_else(|| panic!("purgatory ELF lacks {name}"))
        };
        HaltLoop {
            start: self.purgatory_addr + sym("purgatory_halt"),
            end: self.purgatory_addr + sym("purgatory_halt_end"),
        }
    }

    /// Run the guest. Stops when QEMU exits (payload's semihosting,
    /// sifive_test or isa-debug-exit exit, PSCI/SBI/port 0xcf9 reset) or as
    /// soon as the vCPU sits in the purgatory's halt loop.
    pub fn run(&self) -> Outcome {
        let mut sc = self.clone();
        assert!(sc.preload.is_empty() || sc.cell.arch == Arch::Ppc64le, "preload is ppc64le's");
        if sc.cell.vhe || sc.cell.mstub {
            let entry = sc.purgatory_addr + sc.image().header.entry_offset;
            let off = sc.payload.vhe_target_offset;
            sc.segments[sc.kernel_index].data[off..off + 8].copy_from_slice(&entry.to_le_bytes());
            if let (Some(off), Some(i)) = (sc.payload.stub_dtb_offset, sc.dtb_index) {
                let dtb = sc.segments[i].addr;
                sc.segments[sc.kernel_index].data[off..off + 8].copy_from_slice(&dtb.to_le_bytes());
            }
        }
        let dir = sc.work_dir();
        let args = sc.qemu_args(&dir);
        let qemu = match sc.cell.arch {
            Arch::Aarch64 => "qemu-system-aarch64",
            Arch::Riscv64 => "qemu-system-riscv64",
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Ppc64le => "qemu-system-ppc64",
        };
        let out = qemu::run(qemu, &args, &dir, sc.halt_loop(), sc.deadline);
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    /// The embedded purgatory image this cell's architecture runs.
    pub fn image(&self) -> PurgatoryImage<'static> {
        match self.cell.arch {
            Arch::Aarch64 => PurgatoryImage::aarch64(),
            Arch::Riscv64 => PurgatoryImage::riscv64(),
            Arch::X86_64 => PurgatoryImage::x86_64(),
            Arch::Ppc64le => PurgatoryImage::ppc64le(),
        }
        .expect("embedded purgatory is valid")
    }

    /// Halt instead of resetting on failure.
    pub fn halting(mut self) -> Self {
        self.on_failure = ON_FAILURE_HALT;
        self
    }
}
