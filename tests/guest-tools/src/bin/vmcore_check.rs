//! vmcore-check: read a kdump /proc/vmcore and print what a test needs to
//! assert: program-header counts, the notes inside the (merged) PT_NOTE,
//! the VMCOREINFO OSRELEASE, and a read from the first PT_LOAD.
//!
//! Output (one fact per line, stable for the guest tests):
//!   VMCORE phnum=N pt_note=N pt_load=N
//!   VMCORE notes prstatus=N vmcoreinfo=0|1
//!   VMCORE OSRELEASE=<release>
//!   VMCORE load0 paddr=0x.. read=<bytes> ok
//!   VMCORE load-covers 0x<addr> yes|no     (for each address argument)
//! Exit 0 when the header parses and the read succeeds, 1 otherwise.

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
    let mut page = vec![0u8; 4096.min(first.filesz as usize)];
    f.seek(SeekFrom::Start(first.offset)).map_err(|e| e.to_string())?;
    f.read_exact(&mut page).map_err(|e| format!("{path}: reading the first PT_LOAD: {e}"))?;
    println!("VMCORE load0 paddr={:#x} read={} ok", first.paddr, page.len());
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
