//! vmcore-check: read a kdump /proc/vmcore and print what a test needs to
//! assert: program-header counts, the notes inside the (merged) PT_NOTE,
//! the VMCOREINFO OSRELEASE, and a read from the first PT_LOAD.
//!
//! Output (one fact per line, stable for the guest tests):
//!   VMCORE machine=N arch=<name>           (the ELF header's e_machine)
//!   VMCORE phnum=N pt_note=N pt_load=N
//!   VMCORE prstatus0 pc=0x..               (the first CPU's saved pc)
//!   VMCORE notes prstatus=N vmcoreinfo=0|1
//!   VMCORE OSRELEASE=<release>
//!   VMCORE load0 paddr=0x.. read=<bytes> ok
//!   VMCORE load-covers 0x<addr> yes|no     (for each address argument)
//! Exit 0 when the header parses, its e_machine is this program's own
//! architecture (the capture kernel's, so the crashed kernel's: the
//! loader wrote it into the elfcorehdr), every NT_PRSTATUS has that
//! architecture's `struct elf_prstatus` size, and the read succeeds; 1
//! otherwise.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

fn u16le(b: &[u8], o: usize) -> u64 {
    u16::from_le_bytes([b[o], b[o + 1]]) as u64
}
fn u32le(b: &[u8], o: usize) -> u64 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as u64
}
fn u64le(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// This architecture's ELF e_machine (ELF gABI), `sizeof(struct
/// elf_prstatus)` (include/linux/elfcore.h: the 112-byte common part,
/// ELF_NGREG 8-byte registers, pr_fpvalid and padding) and the index of
/// the pc in its pr_reg.
struct ArchCore {
    machine: u64,
    name: &'static str,
    prstatus_size: usize,
    pc_index: usize,
}

/// x86_64: 27 registers (struct user_regs_struct, rip at 16); aarch64: 34
/// (x0-x30, sp, pc, pstate); riscv64: 32 (pc, then x1-x31:
/// arch/riscv/include/uapi/asm/ptrace.h user_regs_struct); powerpc64: 48
/// (ELF_NGREG, arch/powerpc/include/uapi/asm/elf.h; gpr0-31 then nip).
const ARCH: ArchCore = if cfg!(target_arch = "x86_64") {
    ArchCore { machine: 62, name: "x86_64", prstatus_size: 112 + 27 * 8 + 8, pc_index: 16 }
} else if cfg!(target_arch = "aarch64") {
    ArchCore { machine: 183, name: "aarch64", prstatus_size: 112 + 34 * 8 + 8, pc_index: 32 }
} else if cfg!(target_arch = "riscv64") {
    ArchCore { machine: 243, name: "riscv64", prstatus_size: 112 + 32 * 8 + 8, pc_index: 0 }
} else if cfg!(target_arch = "powerpc64") {
    ArchCore { machine: 21, name: "ppc64", prstatus_size: 112 + 48 * 8 + 8, pc_index: 32 }
} else {
    ArchCore { machine: 0, name: "unknown", prstatus_size: 0, pc_index: 0 }
};

struct Phdr {
    p_type: u64,
    offset: u64,
    paddr: u64,
    filesz: u64,
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/proc/vmcore".into());
    let covers: Vec<u64> = args.filter_map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok()).collect();
    let mut f = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut ehdr = [0u8; 64];
    f.read_exact(&mut ehdr).map_err(|e| format!("{path}: reading the ELF header: {e}"))?;
    if &ehdr[..4] != b"\x7fELF" || ehdr[4] != 2 {
        return Err(format!("{path}: not an ELF64 file"));
    }
    let machine = u16le(&ehdr, 18);
    println!("VMCORE machine={machine} arch={}", ARCH.name);
    if machine != ARCH.machine {
        return Err(format!("{path}: e_machine is {machine}, a {} core has {}", ARCH.name, ARCH.machine));
    }
    let (phoff, phentsize, phnum) = (u64le(&ehdr, 32), u16le(&ehdr, 54), u16le(&ehdr, 56));
    let mut ph = vec![0u8; (phentsize * phnum) as usize];
    f.seek(SeekFrom::Start(phoff)).map_err(|e| e.to_string())?;
    f.read_exact(&mut ph).map_err(|e| format!("{path}: reading program headers: {e}"))?;
    let phdrs: Vec<Phdr> = (0..phnum as usize)
        .map(|i| {
            let b = &ph[i * phentsize as usize..];
            Phdr { p_type: u32le(b, 0), offset: u64le(b, 8), paddr: u64le(b, 24), filesz: u64le(b, 32) }
        })
        .collect();
    let notes: Vec<&Phdr> = phdrs.iter().filter(|p| p.p_type == 4).collect();
    let loads: Vec<&Phdr> = phdrs.iter().filter(|p| p.p_type == 1).collect();
    println!("VMCORE phnum={phnum} pt_note={} pt_load={}", notes.len(), loads.len());

    let (mut prstatus, mut vmcoreinfo) = (0, 0);
    for n in &notes {
        let mut buf = vec![0u8; n.filesz as usize];
        f.seek(SeekFrom::Start(n.offset)).map_err(|e| e.to_string())?;
        f.read_exact(&mut buf).map_err(|e| format!("{path}: reading notes: {e}"))?;
        let mut o = 0usize;
        while o + 12 <= buf.len() {
            let (namesz, descsz, ntype) = (u32le(&buf, o) as usize, u32le(&buf, o + 4) as usize, u32le(&buf, o + 8));
            let name_at = o + 12;
            let desc_at = name_at + namesz.next_multiple_of(4);
            let end = desc_at + descsz.next_multiple_of(4);
            if namesz == 0 || end > buf.len() {
                break;
            }
            let name = String::from_utf8_lossy(&buf[name_at..name_at + namesz]).trim_end_matches('\0').to_string();
            if name == "CORE" && ntype == 1 {
                if descsz != ARCH.prstatus_size {
                    return Err(format!(
                        "{path}: NT_PRSTATUS of {descsz} bytes, a {} struct elf_prstatus has {}",
                        ARCH.name, ARCH.prstatus_size
                    ));
                }
                if prstatus == 0 {
                    println!("VMCORE prstatus0 pc={:#x}", u64le(&buf, desc_at + 112 + ARCH.pc_index * 8));
                }
                prstatus += 1;
            }
            if name == "VMCOREINFO" {
                vmcoreinfo += 1;
                let text = String::from_utf8_lossy(&buf[desc_at..desc_at + descsz]);
                if let Some(rel) = text.lines().find_map(|l| l.strip_prefix("OSRELEASE=")) {
                    println!("VMCORE OSRELEASE={rel}");
                }
            }
            o = end;
        }
    }
    println!("VMCORE notes prstatus={prstatus} vmcoreinfo={vmcoreinfo}");

    let first = loads.first().ok_or("no PT_LOAD")?;
    // Its first 64 KiB (ppc64: all of the backed-up low memory, read
    // from the backup the purgatory copied it into) and how much of that
    // is not zero.
    let mut page = vec![0u8; 0x10000.min(first.filesz as usize)];
    f.seek(SeekFrom::Start(first.offset)).map_err(|e| e.to_string())?;
    f.read_exact(&mut page).map_err(|e| format!("{path}: reading the first PT_LOAD: {e}"))?;
    let nonzero = page.iter().filter(|b| **b != 0).count();
    println!("VMCORE load0 paddr={:#x} read={} ok nonzero={nonzero}", first.paddr, page.len());
    for a in covers {
        let hit = loads.iter().any(|l| l.paddr <= a && a < l.paddr + l.filesz);
        println!("VMCORE load-covers {a:#x} {}", if hit { "yes" } else { "no" });
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            println!("VMCORE error: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
