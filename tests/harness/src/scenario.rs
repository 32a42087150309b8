//! One guest run: segments, parameter block, CPU model, corruption.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kexec_purgatory::abi::{
    PurgatoryParams, SegmentDesc, SegmentKind, CONSOLE_PL011, ON_FAILURE_HALT, ON_FAILURE_RESET,
    PARAM_FLAG_REFRESH_SEEDS, PARAM_FLAG_SET_BOOT_CPU, PSCI_CONDUIT_HVC, PSCI_CONDUIT_SMC, SEGMENT_FLAG_EXCLUDED,
};
use loader_host::purgatory_image::{PurgatoryImage, AARCH64_ELF};
use object::{Object, ObjectSymbol};
use sha2::{Digest, Sha256};

use crate::fixtures::{self, Payload};
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

/// CPU model and exception level of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    pub cpu: &'static str,
    /// `virtualization=on`: the CPU starts at EL2 (else EL1).
    pub el2: bool,
    /// Start at the payload's VHE stub, which sets HCR_EL2.E2H first.
    pub vhe: bool,
}

impl Cell {
    pub const EL1: Cell = Cell { cpu: "cortex-a72", el2: false, vhe: false };
    pub const EL2_NVHE: Cell = Cell { cpu: "cortex-a72", el2: true, vhe: false };
    pub const EL2_VHE: Cell = Cell { cpu: "max", el2: true, vhe: true };
    pub const EL1_MAX: Cell = Cell { cpu: "max", el2: false, vhe: false };

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
    pub dtb_index: Option<usize>,
    payload: PayloadInfo,
}

#[derive(Clone, Debug)]
struct PayloadInfo {
    entry: u64,
    vhe_stub: u64,
    vhe_target_offset: usize,
}

static RUN_ID: AtomicU32 = AtomicU32::new(0);

impl Scenario {
    /// kernel (payload), initrd, dtb, elfcorehdr and an "other" segment.
    pub fn standard(name: &str, cell: Cell) -> Self {
        Self::with_initrd(name, cell, 1 << 20)
    }

    /// As `standard`, with an initrd of `initrd_len` bytes.
    pub fn with_initrd(name: &str, cell: Cell, initrd_len: usize) -> Self {
        let payload = Payload::load();
        let segments = vec![
            SegmentSpec::new(SegmentKind::Kernel, payload.load_addr, payload.bytes.clone()),
            SegmentSpec::new(SegmentKind::Initrd, INITRD_ADDR, fixtures::pseudo_random(initrd_len, 7)),
            SegmentSpec::new(SegmentKind::Dtb, DTB_ADDR, fixtures::dtb(RAM_BASE, RAM_SIZE)),
            SegmentSpec::new(SegmentKind::ElfCoreHdr, ELFCOREHDR_ADDR, fixtures::elfcorehdr(2)),
            SegmentSpec::new(SegmentKind::Other, OTHER_ADDR, fixtures::pseudo_random(12345, 99)),
        ];
        Scenario {
            name: name.into(),
            cell,
            segments,
            purgatory_addr: PURGATORY_ADDR,
            flags: PARAM_FLAG_REFRESH_SEEDS | PARAM_FLAG_SET_BOOT_CPU,
            on_failure: ON_FAILURE_RESET,
            corrupt: Vec::new(),
            edit_params: None,
            corrupt_purgatory: Vec::new(),
            icount: false,
            deadline: Duration::from_secs(60),
            kernel_index: 0,
            dtb_index: Some(2),
            payload: PayloadInfo {
                entry: payload.entry,
                vhe_stub: payload.vhe_stub,
                vhe_target_offset: (payload.vhe_stub_target - payload.load_addr) as usize,
            },
        }
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
        p.console.kind = CONSOLE_PL011;
        p.console.base = UART_BASE;
        p.on_failure = self.on_failure;
        // QEMU virt's PSCI conduit: SMC when EL2 exists without EL3, else HVC.
        p.psci_conduit = if self.cell.el2 { PSCI_CONDUIT_SMC } else { PSCI_CONDUIT_HVC };
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

    /// The purgatory's halt loop where this scenario loads it (symbols of
    /// the embedded ELF, linked at 0).
    pub fn halt_loop(&self) -> HaltLoop {
        let file = object::File::parse(AARCH64_ELF).expect("embedded purgatory ELF parses");
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

    /// Run the guest. Stops when QEMU exits (payload's semihosting exit,
    /// PSCI reset) or as soon as the vCPU sits in the purgatory's halt loop.
    pub fn run(&self) -> Outcome {
        let mut sc = self.clone();
        if sc.cell.vhe {
            let image = PurgatoryImage::aarch64().expect("embedded purgatory is valid");
            let entry = sc.purgatory_addr + image.header.entry_offset;
            let off = sc.payload.vhe_target_offset;
            sc.segments[sc.kernel_index].data[off..off + 8].copy_from_slice(&entry.to_le_bytes());
        }
        let dir = sc.work_dir();
        let args = sc.qemu_args(&dir);
        let out = qemu::run(&args, &dir, sc.halt_loop(), sc.deadline);
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    /// Halt instead of resetting on failure.
    pub fn halting(mut self) -> Self {
        self.on_failure = ON_FAILURE_HALT;
        self
    }
}
