//! Synthetic inputs shared by the integration tests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A scratch directory (a /proc + /sys tree, files to load) for one test,
/// removed on drop.
#[allow(dead_code)] // each test binary uses what it needs
pub struct Scratch {
    pub root: PathBuf,
}

#[allow(dead_code)]
impl Scratch {
    /// A fresh directory under the temporary directory, named for the test
    /// binary (`suite`) and the test.
    pub fn new(suite: &str, name: &str) -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("rkx-{suite}-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Scratch { root }
    }

    /// Write `bytes` at `rel` (directories made), returning its path.
    pub fn write(&self, rel: impl AsRef<Path>, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// /proc/iomem of a QEMU q35 PC: 3 GiB low, 1 GiB above 4 GiB,
/// crashkernel=256M.
#[allow(dead_code)] // each test binary uses what it needs
pub const X86_IOMEM: &str = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
000f0000-000fffff : Reserved
00100000-bffdffff : System RAM
  01000000-01ffffff : Kernel code
  a0000000-afffffff : Crash kernel
bffe0000-bfffffff : Reserved
100000000-13fffffff : System RAM
";

/// A bzImage (boot.rst 2.15 header, 64-bit, relocatable) with a payload.
pub fn bzimage(payload: usize) -> Vec<u8> {
    let setup_sects = 27usize;
    let mut f = vec![0u8; (setup_sects + 1) * 512 + payload];
    f[0x1f1] = setup_sects as u8;
    f[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    f[0x200] = 0xeb;
    f[0x201] = 0x6a;
    f[0x202..0x206].copy_from_slice(b"HdrS");
    f[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    f[0x211] = 1;
    f[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    f[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes());
    f[0x234] = 1;
    f[0x235] = 21;
    f[0x236..0x238].copy_from_slice(&0x3u16.to_le_bytes());
    f[0x238..0x23c].copy_from_slice(&2047u32.to_le_bytes());
    f[0x258..0x260].copy_from_slice(&0x100_0000u64.to_le_bytes());
    f[0x260..0x264].copy_from_slice(&0x200_0000u32.to_le_bytes());
    for (i, b) in f[(setup_sects + 1) * 512..].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    f
}

/// A device tree like QEMU virt arm64's, as far as the loader reads one:
/// root cells, memory nodes, /reserved-memory, /memreserve/, PSCI, a
/// PL011 named by stdout-path, bootargs; each part can be changed to make
/// a hostile one.
#[allow(dead_code)] // each test binary uses what it needs
#[derive(Clone, Debug)]
pub struct Dtb {
    /// The root's `#address-cells` (None: no property).
    pub address_cells: Option<u32>,
    /// The root's `#size-cells` (None: no property).
    pub size_cells: Option<u32>,
    /// One `memory@…` node per (address, size), in root cells; None: no
    /// memory node at all.
    pub memory: Option<Vec<(u64, u64)>>,
    /// /chosen/linux,uefi-mmap-start (a UEFI memory map describes RAM).
    pub uefi: bool,
    /// /reserved-memory children: (name, address, size, "no-map" /
    /// "reusable" / "").
    pub reserved_memory: Vec<(&'static str, u64, u64, &'static str)>,
    /// /memreserve/ entries (address, size).
    pub memreserve: Vec<(u64, u64)>,
    /// A PL011 named by /chosen/stdout-path.
    pub console: bool,
    /// Its base.
    pub console_base: u64,
    /// /chosen/bootargs.
    pub bootargs: String,
}

#[allow(dead_code)]
impl Dtb {
    /// QEMU virt with 2 GiB at 0x40000000, 2/2 cells.
    pub fn virt() -> Dtb {
        Dtb {
            address_cells: Some(2),
            size_cells: Some(2),
            memory: Some(vec![(0x4000_0000, 0x8000_0000)]),
            uefi: false,
            reserved_memory: Vec::new(),
            memreserve: Vec::new(),
            console: true,
            console_base: 0x900_0000,
            bootargs: "console=ttyAMA0 root=/dev/vda".into(),
        }
    }

    /// `v` in `cells` big-endian 32-bit cells (the low ones).
    fn cells(v: u64, cells: u32, out: &mut Vec<u32>) {
        for i in (0..cells).rev() {
            out.push(if i >= 2 { 0 } else { (v >> (32 * i)) as u32 });
        }
    }

    fn reg(&self, pairs: &[(u64, u64)]) -> Vec<u32> {
        let mut v = Vec::new();
        for (a, s) in pairs {
            Dtb::cells(*a, self.address_cells.unwrap_or(1), &mut v);
            Dtb::cells(*s, self.size_cells.unwrap_or(1), &mut v);
        }
        v
    }

    /// The blob.
    pub fn build(&self) -> Vec<u8> {
        let rsv: Vec<_> = self.memreserve.iter().map(|&(a, s)| vm_fdt::FdtReserveEntry::new(a, s).unwrap()).collect();
        let mut w = vm_fdt::FdtWriter::new_with_mem_reserv(&rsv).unwrap();
        let root = w.begin_node("").unwrap();
        if let Some(a) = self.address_cells {
            w.property_u32("#address-cells", a).unwrap();
        }
        if let Some(s) = self.size_cells {
            w.property_u32("#size-cells", s).unwrap();
        }
        w.property_string("compatible", "linux,dummy-virt").unwrap();
        for (a, s) in self.memory.iter().flatten() {
            let m = w.begin_node(&format!("memory@{a:x}")).unwrap();
            w.property_string("device_type", "memory").unwrap();
            w.property_array_u32("reg", &self.reg(&[(*a, *s)])).unwrap();
            w.end_node(m).unwrap();
        }
        if !self.reserved_memory.is_empty() {
            let r = w.begin_node("reserved-memory").unwrap();
            if let Some(a) = self.address_cells {
                w.property_u32("#address-cells", a).unwrap();
            }
            if let Some(s) = self.size_cells {
                w.property_u32("#size-cells", s).unwrap();
            }
            w.property_null("ranges").unwrap();
            for (name, a, s, flag) in &self.reserved_memory {
                let n = w.begin_node(&format!("{name}@{a:x}")).unwrap();
                w.property_array_u32("reg", &self.reg(&[(*a, *s)])).unwrap();
                if !flag.is_empty() {
                    w.property_null(flag).unwrap();
                }
                w.end_node(n).unwrap();
            }
            w.end_node(r).unwrap();
        }
        let psci = w.begin_node("psci").unwrap();
        w.property_string("method", "hvc").unwrap();
        w.end_node(psci).unwrap();
        if self.console {
            let uart = w.begin_node(&format!("pl011@{:x}", self.console_base)).unwrap();
            w.property_string_list("compatible", vec!["arm,pl011".into(), "arm,primecell".into()]).unwrap();
            w.property_array_u32("reg", &self.reg(&[(self.console_base, 0x1000)])).unwrap();
            w.end_node(uart).unwrap();
        }
        let chosen = w.begin_node("chosen").unwrap();
        if self.console {
            w.property_string("stdout-path", &format!("/pl011@{:x}", self.console_base)).unwrap();
        }
        w.property_string("bootargs", &self.bootargs).unwrap();
        if self.uefi {
            w.property_u64("linux,uefi-mmap-start", 0x7e00_0000).unwrap();
            w.property_u32("linux,uefi-mmap-size", 0x1000).unwrap();
        }
        w.end_node(chosen).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }
}

/// An arm64 Image header (booting.rst §4) with `body` bytes after it.
#[allow(dead_code)] // each test binary uses what it needs
pub fn arm64_image(text_offset: u64, image_size: u64, flags: u64, body: usize) -> Vec<u8> {
    let mut img = vec![0u8; 64 + body];
    img[8..16].copy_from_slice(&text_offset.to_le_bytes());
    img[16..24].copy_from_slice(&image_size.to_le_bytes());
    img[24..32].copy_from_slice(&flags.to_le_bytes());
    img[0x38..0x3c].copy_from_slice(b"ARM\x64");
    img
}

/// A PE file with sections, as ukify lays them out (FileAlignment 0x200,
/// VirtualSize the exact length).
#[allow(dead_code)] // each test binary uses what it needs
pub fn pe(machine: u16, sections: &[(&str, &[u8])]) -> Vec<u8> {
    let (pe_at, opt_len) = (0x80usize, 0xf0usize);
    let table = pe_at + 24 + opt_len;
    let mut at = (table + sections.len() * 40).next_multiple_of(0x200);
    let mut f = vec![0u8; at];
    f[..2].copy_from_slice(b"MZ");
    f[0x3c..0x40].copy_from_slice(&(pe_at as u32).to_le_bytes());
    f[pe_at..pe_at + 4].copy_from_slice(b"PE\0\0");
    f[pe_at + 4..pe_at + 6].copy_from_slice(&machine.to_le_bytes());
    f[pe_at + 6..pe_at + 8].copy_from_slice(&(sections.len() as u16).to_le_bytes());
    f[pe_at + 20..pe_at + 22].copy_from_slice(&(opt_len as u16).to_le_bytes());
    for (i, (name, data)) in sections.iter().enumerate() {
        let h = table + i * 40;
        f[h..h + name.len()].copy_from_slice(name.as_bytes());
        let raw = data.len().next_multiple_of(0x200);
        for (o, v) in [(8, data.len()), (12, 0x10000 * (i + 1)), (16, raw), (20, at)] {
            f[h + o..h + o + 4].copy_from_slice(&(v as u32).to_le_bytes());
        }
        f.resize(at + raw, 0);
        f[at..at + data.len()].copy_from_slice(data);
        at += raw;
    }
    f
}
