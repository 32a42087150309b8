//! Test fixtures shared by the unit tests: a temporary /proc + /sys tree,
//! synthetic kernels and a QEMU-virt-like DTB. Compiled for tests only.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::system::SystemSources;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A temporary directory with `proc/` and `sys/`, removed on drop.
pub struct Tree {
    pub root: PathBuf,
}

impl Tree {
    pub fn new(name: &str) -> Tree {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("rkx-tree-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::create_dir_all(root.join("sys/kernel")).unwrap();
        Tree { root }
    }

    /// Write `rel` (under the tree) with `bytes`, creating directories.
    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }

    pub fn iomem(&self, text: &str) -> &Self {
        self.write("proc/iomem", text);
        self
    }

    pub fn cmdline(&self, text: &str) -> &Self {
        self.cmdline_bytes(text.as_bytes())
    }

    /// /proc/cmdline holding `line` and a newline (bytes: the kernel sets
    /// no encoding).
    pub fn cmdline_bytes(&self, line: &[u8]) -> &Self {
        self.write("proc/cmdline", [line, b"\n"].concat());
        self
    }

    pub fn fdt(&self, blob: &[u8]) -> &Self {
        self.write("sys/firmware/fdt", blob);
        self
    }

    /// Crash notes for `cpus` CPUs and a vmcoreinfo note.
    pub fn crash_notes(&self, cpus: u32) -> &Self {
        for cpu in 0..cpus {
            self.write(&format!("sys/devices/system/cpu/cpu{cpu}/crash_notes"), format!("7fa00{cpu}000\n"));
            self.write(&format!("sys/devices/system/cpu/cpu{cpu}/crash_notes_size"), "432\n");
        }
        self.write("sys/kernel/vmcoreinfo", "4f0b1000 1000\n");
        self
    }

    pub fn sys(&self) -> SystemSources {
        SystemSources::new(self.root.join("proc"), self.root.join("sys"))
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A synthetic arm64 Image (booting.rst §4 header + filler body).
pub fn arm64_image(text_offset: u64, image_size: u64, flags: u64, body: usize) -> Vec<u8> {
    crate::image::arm64_image::tests::image(text_offset, image_size, flags, body)
}

/// booting.rst §4 flags: little-endian, 4 KiB pages, anywhere in RAM.
pub const ARM64_FLAGS_ANYWHERE: u64 = (1 << 1) | (1 << 3);
/// ... as low as possible in RAM (bit 3 clear).
pub const ARM64_FLAGS_LOW: u64 = 1 << 1;

/// The size of the test DTBs' memory node: 1 TiB, more than any test's
/// /proc/iomem lists.
pub const TEST_RAM_SIZE: u64 = 1 << 40;

/// A DTB shaped like QEMU virt's: PSCI over hvc, a PL011 console at
/// 0x9000000, bootargs, 2 address / 2 size cells.
pub fn qemu_virt_dtb(bootargs: &str) -> Vec<u8> {
    qemu_virt_dtb_with(bootargs, &[], &[])
}

/// The same with /memreserve/ entries (address, size) and extra u64
/// properties in /chosen.
pub fn qemu_virt_dtb_with(bootargs: &str, memreserve: &[(u64, u64)], chosen_u64: &[(&str, u64)]) -> Vec<u8> {
    let reserve: Vec<_> = memreserve.iter().map(|&(a, s)| vm_fdt::FdtReserveEntry::new(a, s).unwrap()).collect();
    let mut w = vm_fdt::FdtWriter::new_with_mem_reserv(&reserve).unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    // QEMU virt's memory node, made large enough for every test's
    // /proc/iomem (the new kernel's RAM is what memory nodes describe).
    let mem = w.begin_node("memory@0").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[0, TEST_RAM_SIZE]).unwrap();
    w.end_node(mem).unwrap();
    let psci = w.begin_node("psci").unwrap();
    w.property_string("method", "hvc").unwrap();
    w.end_node(psci).unwrap();
    let uart = w.begin_node("pl011@9000000").unwrap();
    w.property_string_list("compatible", vec!["arm,pl011".into(), "arm,primecell".into()]).unwrap();
    w.property_array_u64("reg", &[0x900_0000, 0x1000]).unwrap();
    w.end_node(uart).unwrap();
    let chosen = w.begin_node("chosen").unwrap();
    w.property_string("stdout-path", "/pl011@9000000").unwrap();
    w.property_string("bootargs", bootargs).unwrap();
    for (name, v) in chosen_u64 {
        w.property_u64(name, *v).unwrap();
    }
    w.end_node(chosen).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

/// A tree for arm64 tests: `iomem`, a QEMU virt DTB, a command line.
pub fn arm64_tree(name: &str, iomem: &str) -> Tree {
    let t = Tree::new(name);
    t.iomem(iomem).cmdline("BOOT_IMAGE=/vmlinuz console=ttyAMA0 root=/dev/vda crashkernel=256M");
    t.fdt(&qemu_virt_dtb("console=ttyAMA0 root=/dev/vda"));
    t
}

/// QEMU virt arm64 with 1 GiB at 0x40000000.
pub const VIRT_1G: &str = "\
09000000-09000fff : pl011@9000000
40000000-7fffffff : System RAM
  40210000-4175ffff : Kernel code
  41760000-41c2ffff : reserved
  41c30000-4200ffff : Kernel data
";

/// A synthetic riscv64 Image (boot-image-header.rst header, version 0.2,
/// EFI stub, filler body).
pub fn riscv_image(text_offset: u64, image_size: u64, body: usize) -> Vec<u8> {
    crate::image::riscv_image::tests::image(text_offset, image_size, 0, body)
}

/// A DTB shaped like QEMU virt riscv64's (docs/riscv64.md): 2 address / 2
/// size cells, no /psci, OpenSBI's /reserved-memory, one hart with a
/// `riscv,isa` string, `uart0` as a byte-register 16550 at 0x10000000
/// (no reg-shift/reg-io-width) named by stdout-path, bootargs.
pub fn riscv_virt_dtb(bootargs: &str) -> Vec<u8> {
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_string("compatible", "riscv-virtio").unwrap();
    let rsv = w.begin_node("reserved-memory").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_null("ranges").unwrap();
    let m = w.begin_node("mmode_resv0@80000000").unwrap();
    w.property_array_u64("reg", &[0x8000_0000, 0x8_0000]).unwrap();
    w.end_node(m).unwrap();
    w.end_node(rsv).unwrap();
    let mem = w.begin_node("memory@80000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[0x8000_0000, TEST_RAM_SIZE]).unwrap();
    w.end_node(mem).unwrap();
    let chosen = w.begin_node("chosen").unwrap();
    w.property_string("bootargs", bootargs).unwrap();
    w.property_string("stdout-path", "/soc/serial@10000000").unwrap();
    w.end_node(chosen).unwrap();
    let cpus = w.begin_node("cpus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 0).unwrap();
    w.property_u32("timebase-frequency", 10_000_000).unwrap();
    let cpu = w.begin_node("cpu@0").unwrap();
    w.property_string("device_type", "cpu").unwrap();
    w.property_u32("reg", 0).unwrap();
    w.property_string("compatible", "riscv").unwrap();
    w.property_string("riscv,isa", "rv64imafdch_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbs_sstc").unwrap();
    w.end_node(cpu).unwrap();
    w.end_node(cpus).unwrap();
    let soc = w.begin_node("soc").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_string("compatible", "simple-bus").unwrap();
    w.property_null("ranges").unwrap();
    let uart = w.begin_node("serial@10000000").unwrap();
    w.property_string("compatible", "ns16550a").unwrap();
    w.property_array_u64("reg", &[0x1000_0000, 0x100]).unwrap();
    w.end_node(uart).unwrap();
    w.end_node(soc).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

/// A tree for riscv64 tests: `iomem`, a QEMU virt riscv64 DTB, a command
/// line.
pub fn riscv_tree(name: &str, iomem: &str) -> Tree {
    let t = Tree::new(name);
    t.iomem(iomem).cmdline("BOOT_IMAGE=/vmlinux console=ttyS0 root=/dev/vda crashkernel=256M");
    t.fdt(&riscv_virt_dtb("console=ttyS0 root=/dev/vda"));
    t
}

/// QEMU virt riscv64 with 1 GiB at 0x80000000 (the shape of trixie's
/// 6.12 /proc/iomem: OpenSBI's reservation, "Kernel image" and its parts).
pub const RISCV_VIRT_1G: &str = "\
10000000-100000ff : serial
80000000-bfffffff : System RAM
  80000000-8007ffff : Reserved
  80200000-80201fff : Reserved
  80202000-8206b3f7 : Kernel image
    80202000-80c8332f : Kernel code
    81200000-81bfffff : Kernel rodata
    81e00000-81fb95ff : Kernel data
    81fba000-8206b3f7 : Kernel bss
  8206b3f8-821fffff : Reserved
  bfe00000-bfe01fff : Reserved
";

/// The committed fixture of a QEMU pseries guest (Debian's 6.12 ppc64el
/// kernel, 2 GiB, crashkernel=512M, -smp 2): /proc/iomem, /proc/cmdline,
/// /proc/device-tree, crash notes. Copied, so a test may change it.
pub fn pseries_tree(name: &str) -> Tree {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dest = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &dest);
            } else {
                std::fs::copy(e.path(), &dest).unwrap();
            }
        }
    }
    let t = Tree::new(name);
    copy(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pseries-ppc64le"), &t.root);
    t
}

/// A ppc64le vmlinux as Debian builds one (ET_EXEC, one PT_LOAD at vaddr
/// 0xc000000000000000 / paddr 0, e_entry its first byte): `file_len`
/// bytes of image in `mem_size` bytes of memory. Its first 256 bytes are
/// head_64.S-shaped: `__run_at_load` ("run0") at 0x5c, `__secondary_hold`
/// from 0x60 (filled with a marker).
pub fn ppc64_vmlinux(file_len: usize, mem_size: u64) -> Vec<u8> {
    const KVA: u64 = 0xc000_0000_0000_0000;
    let mut image = vec![0x5au8; file_len.max(0x100)];
    image[..4].copy_from_slice(&0x4800_0060u32.to_le_bytes());
    image[0x5c..0x60].copy_from_slice(&0x7275_6e30u32.to_le_bytes());
    for (i, b) in image[0x60..0x100].iter_mut().enumerate() {
        *b = i as u8;
    }
    crate::image::elf::tests::elf(kexec_purgatory::elf::EM_PPC64, 2, KVA, &[(KVA, 0, &image, mem_size)])
}

/// This thread's CPU time: what a computation costs whatever else the
/// machine runs (a scale test's measure; preemption does not count).
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    std::time::Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0))
}
