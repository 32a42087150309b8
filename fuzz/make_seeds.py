#!/usr/bin/env python3
"""Write the committed seed corpora, fuzz/corpus/<target>/<name>.

Small synthetic inputs shaped like the real thing (headers as the specs lay
them out, a real QEMU virt DTB and /proc/iomem samples from the loader's test
fixtures), a few KiB each; never kernels. Deterministic: rerunning rewrites
the same bytes. Needs the `zstd` command (scripts/setup.sh installs it).
"""
import gzip
import hashlib
import os
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(ROOT)
CORPUS = os.path.join(ROOT, "corpus")
FIXTURES = os.path.join(REPO, "loader-host", "tests", "fixtures")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fixture(*path):
    with open(os.path.join(FIXTURES, *path), "rb") as f:
        return f.read()


def gz(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


def zstd(data):
    return subprocess.run(["zstd", "-q", "-c", "-19", "--no-check"], input=data, stdout=subprocess.PIPE,
                          check=True).stdout


# --- kernel images ---------------------------------------------------------

def arm64_image(text_offset=0, image_size=0x40_0000, flags=0b1010, body=2048):
    """booting.rst §4 header: code0/1, text_offset, image_size, flags, res,
    magic "ARM\\x64" at 0x38, PE offset at 0x3c."""
    h = bytearray(64)
    h[0:4] = b"MZ@\xfa"
    struct.pack_into("<QQQ", h, 8, text_offset, image_size, flags)
    h[0x38:0x3c] = b"ARM\x64"
    struct.pack_into("<I", h, 0x3c, 0x40)
    return bytes(h) + bytes((i * 7 + 3) & 0xff for i in range(body))


def riscv_image(text_offset=0x200000, image_size=0x40_0000, body=2048):
    """riscv boot-image-header.rst: text_offset, image_size, flags, version
    0.2, "RISCV\\0\\0\\0" at 0x30, "RSC\\x05" at 0x38, PE offset at 0x3c."""
    h = bytearray(64)
    h[0:4] = b"MZo\x10"
    struct.pack_into("<QQQI", h, 8, text_offset, image_size, 0, 2)
    h[0x30:0x38] = b"RISCV\0\0\0"
    h[0x38:0x3c] = b"RSC\x05"
    return bytes(h) + bytes((i * 3 + 1) & 0xff for i in range(body))


def zboot(comp, payload, machine=0xaa64):
    """zboot-header.S: MZ, "zimg", payload offset/size, comp type at 0x18,
    PE magic at 0x38 and the PE header offset at 0x3c."""
    at = 0x80
    h = bytearray(at)
    h[0:2] = b"MZ"
    h[4:8] = b"zimg"
    struct.pack_into("<II", h, 8, at, len(payload))
    h[0x18:0x18 + len(comp)] = comp.encode()
    h[0x38:0x3c] = b"\xcd\x23\x82\x81"
    struct.pack_into("<I", h, 0x3c, 0x40)
    h[0x40:0x44] = b"PE\0\0"
    struct.pack_into("<H", h, 0x44, machine)
    return bytes(h) + payload


def bzimage(setup_sects=3, payload=1024, version=0x020f):
    """boot.rst real-mode header at 0x1f1, 64-bit capable."""
    # boot.rst setup_sects: "If this field is 0, the real value is 4."
    setup_size = ((setup_sects or 4) + 1) * 512
    f = bytearray(setup_size + payload)
    f[0x1f1] = setup_sects
    struct.pack_into("<H", f, 0x1fe, 0xaa55)
    f[0x200] = 0xeb
    f[0x201] = 0x6a  # header ends at 0x26c
    f[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", f, 0x206, version)
    f[0x211] = 0x01  # LOADED_HIGH
    struct.pack_into("<I", f, 0x22c, 0x7fffffff)  # initrd_addr_max
    struct.pack_into("<I", f, 0x230, 0x200000)  # kernel_alignment
    f[0x234] = 1  # relocatable
    f[0x235] = 21
    struct.pack_into("<H", f, 0x236, 0x7f)  # xloadflags
    struct.pack_into("<I", f, 0x238, 2047)  # cmdline_size
    struct.pack_into("<Q", f, 0x258, 0x1000000)  # pref_address
    struct.pack_into("<I", f, 0x260, 0x10000)  # init_size
    for i in range(setup_size, len(f)):
        f[i] = (i * 13) & 0xff
    return bytes(f)


def pe_file(machine, sections):
    """PE/COFF: MZ, e_lfanew at 0x3c, "PE\\0\\0", COFF header, an empty
    optional header, the section table, raw data on 0x200 boundaries."""
    pe_at, opt_len = 0x80, 0
    table = pe_at + 4 + 20 + opt_len
    data_at = -(-(table + 40 * len(sections)) // 0x200) * 0x200
    f = bytearray(data_at)
    f[0:2] = b"MZ"
    struct.pack_into("<I", f, 0x3c, pe_at)
    f[pe_at:pe_at + 4] = b"PE\0\0"
    struct.pack_into("<HH", f, pe_at + 4, machine, len(sections))
    for i, (name, data) in enumerate(sections):
        h = table + 40 * i
        raw = -(-len(data) // 0x200) * 0x200
        f[h:h + 8] = name.encode().ljust(8, b"\0")
        struct.pack_into("<IIII", f, h + 8, len(data), 0x1000 * (i + 1), raw, data_at)
        f += bytes(raw)
        f[data_at:data_at + len(data)] = data
        data_at += raw
    return bytes(f)


def elf_exec(machine, entry, loads):
    """ELF64 LE ET_EXEC, loads = [(vaddr, paddr, bytes, memsz)]."""
    phoff = 64
    data_at = -(-(phoff + 56 * len(loads)) // 0x100) * 0x100
    f = bytearray(data_at)
    f[0:7] = b"\x7fELF\x02\x01\x01"
    struct.pack_into("<HHIQQQIHHHHHH", f, 16, 2, machine, 1, entry, phoff, 0, 0, 64, 56, len(loads), 0, 0, 0)
    for i, (vaddr, paddr, data, memsz) in enumerate(loads):
        struct.pack_into("<IIQQQQQQ", f, phoff + 56 * i, 1, 7, data_at, vaddr, paddr, len(data), memsz, 0x1000)
        f += data
        data_at += len(data)
    return bytes(f)


def images():
    img = arm64_image()
    put("image_load", "arm64-image", img)
    put("image_load", "arm64-image-legacy", arm64_image(text_offset=0x80000, image_size=0, flags=0))
    put("image_load", "arm64-image-placed-low-64k", arm64_image(image_size=0x20_0000, flags=0b0110))
    put("image_load", "image-gz", gz(img))
    put("image_load", "zboot-gzip", zboot("gzip", gz(img)))
    put("image_load", "zboot-zstd22", zboot("zstd22", zstd(img)))
    put("image_load", "zboot-x86-machine", zboot("gzip", gz(img), machine=0x8664))
    put("image_load", "bzimage", bzimage())
    rv = riscv_image()
    put("image_load", "riscv64-image", rv)
    put("image_load", "riscv64-zboot-gzip", zboot("gzip", gz(rv), machine=0x5064))
    put("image_load", "bzimage-legacy-sects", bzimage(setup_sects=0, payload=600))
    # UKIs (UAPI.5): the kernel in .linux, initrd, ucode, cmdline, dtb;
    # multi-profile: the base, then profile @0 overriding .cmdline.
    put("image_uki", "x86-bzimage", pe_file(0x8664, [(".osrel", b"ID=debian\n"), (".cmdline", b" quiet \n\0"),
                                                      (".ucode", b"uc"), (".initrd", b"0123456"),
                                                      (".linux", bzimage())]))
    put("image_uki", "arm64-image-gz-dtb", pe_file(0xaa64, [(".linux", gz(img)), (".dtb", fdt_minimal()),
                                                              (".uname", b"6.1.0-test\n")]))
    put("image_uki", "multi-profile", pe_file(0xaa64, [(".linux", img), (".cmdline", b"base"),
                                                         (".profile", b"ID=a"), (".cmdline", b"profile0"),
                                                         (".profile", b"ID=b"), (".cmdline", b"profile1")]))
    put("image_load", "uki-x86", pe_file(0x8664, [(".linux", bzimage()), (".cmdline", b"quiet")]))
    # vmlinux ELF: x86_64 PT_LOADs at physical addresses with a gap; arm64
    # with the Image header at e_entry.
    text = bytes((i * 5) & 0xff for i in range(1024))
    x86 = elf_exec(62, 0x100_0000, [(0xffff_ffff_8100_0000, 0x100_0000, text, 0x2000),
                                    (0xffff_ffff_8120_0000, 0x120_0000, text[:256], 0x1000)])
    put("image_elf", "x86-two-loads", x86)
    put("image_elf", "arm64-image-at-entry", elf_exec(183, 0xffff_8000_1000_0000,
                                                      [(0xffff_8000_1000_0000, 0x4020_0000, img, 0x40_0000)]))
    put("image_load", "vmlinux-x86", x86)
    data = bytes((i % 251) for i in range(4096))
    put("decompress", "gzip", gz(data))
    put("decompress", "gzip-zero-padded", gz(data) + bytes(64))
    put("decompress", "zstd", zstd(data))
    put("decompress", "zstd-rle", zstd(bytes(8192)))


# --- /proc, /sys -----------------------------------------------------------

X86_IOMEM = b"""\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000a0000-000bffff : PCI Bus 0000:00
000c0000-000c99ff : Video ROM
000f0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-7ffdbfff : System RAM
  1a000000-1a1fffff : Kernel code
  1a200000-1a8d5fff : Kernel rodata
  1aa00000-1ac5f23f : Kernel data
  1b1a4000-1b5fffff : Kernel bss
  6b000000-7affffff : Crash kernel
7ffdc000-7fffffff : Reserved
b0000000-bfffffff : PCI MMCONFIG 0000 [bus 00-ff]
  b0000000-bfffffff : Reserved
fffc0000-ffffffff : Reserved
100000000-17fffffff : System RAM
180000000-1bfffffff : System RAM (kmem)
"""


def system():
    put("iomem", "virt-arm64", fixture("virt-arm64", "proc", "iomem"))
    put("iomem", "virt-arm64-crash", fixture("virt-arm64-crash", "proc", "iomem"))
    put("iomem", "x86-q35", X86_IOMEM)
    put("iomem", "virt-riscv64", fixture("virt-riscv64", "proc", "iomem"))
    bp = bytearray(0x1000)
    bp[0] = 9  # screen_info.orig_x
    struct.pack_into("<Q", bp, 0x70, 0x7fb7e014)  # acpi_rsdp_addr
    put("firmware", "memmap-systab-iomem",
        bytes(bp) + b"0x100000\n0x7ffdbfff\nSystem RAM\nACPI20=0x7fb7e014\nACPI=0xf0000\n" + X86_IOMEM)
    put("firmware", "memmap-reserved", bytes(0x1000) + b"0x9fc00\n0x9ffff\nReserved\n")
    put("kcore", "x86-text-and-ram", struct.pack("<Q", 0x4800_0000) + kcore())


def kcore():
    """An ELF64 core like /proc/kcore: a PT_NOTE, the x86 kernel text
    (KCORE_TEXT) and a linear-map RAM PT_LOAD (KCORE_RAM)."""
    phdrs = [
        (4, 0, 0, 0, 0x100),  # PT_NOTE
        (1, 0xffff_ffff_8100_0000, 0x100_0000, 0x180_0000, 0),
        (1, 0xffff_8880_4000_0000, 0x4000_0000, 0x8000_0000, 0),
    ]
    eh = bytearray(64)
    eh[0:7] = b"\x7fELF\x02\x01\x01"
    struct.pack_into("<HHIQQQIHHHHHH", eh, 16, 4, 62, 1, 0, 64, 0, 0, 64, 56, len(phdrs), 0, 0, 0)
    out = bytes(eh)
    for ty, vaddr, paddr, memsz, filesz in phdrs:
        out += struct.pack("<IIQQQQQQ", ty, 7, 0x1000, vaddr, paddr, filesz, memsz, 0x1000)
    return out


# --- device trees ------------------------------------------------------------

def fdt_minimal():
    """devicetree spec §5: header, empty reservation map, root node only."""
    s = struct.pack(">II", 1, 0) + struct.pack(">II", 2, 9)
    off_rsv, off_struct = 40, 56
    off_strings = off_struct + len(s)
    hdr = struct.pack(">10I", 0xd00dfeed, off_strings, off_struct, off_strings, off_rsv, 17, 16, 0, 0, len(s))
    return hdr + bytes(16) + s


def fdt_nested(depth):
    """Nodes nested `depth` deep under the root: the loader's and the
    purgatory's walkers refuse more than 64 levels (Linux FDT_MAX_DEPTH)."""
    st = struct.pack(">I", 1) + b"\0\0\0\0"
    st += (struct.pack(">I", 1) + b"n\0\0\0") * depth + struct.pack(">I", 2) * (depth + 1) + struct.pack(">I", 9)
    off_rsv, off_struct = 40, 56
    off_strings = off_struct + len(st)
    hdr = struct.pack(">10I", 0xd00dfeed, off_strings, off_struct, off_strings, off_rsv, 17, 16, 0, 0, len(st))
    return hdr + bytes(16) + st


def fdt_nodes(nodes):
    """A root holding `nodes` = [(name, [(property, value)])]."""
    strings, st = b"", struct.pack(">I", 1) + b"\0\0\0\0"
    for name, props in nodes:
        n = name.encode() + b"\0"
        st += struct.pack(">I", 1) + n + bytes(-len(n) % 4)
        for prop, value in props:
            key = prop.encode() + b"\0"
            if key not in strings:
                strings += key
            st += struct.pack(">III", 3, len(value), strings.index(key)) + value + bytes(-len(value) % 4)
        st += struct.pack(">I", 2)
    st += struct.pack(">II", 2, 9)
    off_struct = 56
    off_strings = off_struct + len(st)
    total = off_strings + len(strings)
    hdr = struct.pack(">10I", 0xd00dfeed, total, off_struct, off_strings, 40, 17, 16, 0, len(strings), len(st))
    return hdr + bytes(16) + st + strings


def fdt_chosen_seeds():
    """A /chosen with kaslr-seed and rng-seed placeholders, padded."""
    strings = b"kaslr-seed\0rng-seed\0bootargs\0"
    st = struct.pack(">I", 1) + b"\0\0\0\0"
    st += struct.pack(">I", 1) + b"chosen\0\0"
    st += struct.pack(">III", 3, 8, 0) + bytes([0x11] * 8)
    st += struct.pack(">III", 3, 64, 11) + bytes([0x22] * 64)
    args = b"console=ttyAMA0\0"
    st += struct.pack(">III", 3, len(args), 20) + args
    st += struct.pack(">III", 2, 2, 9)
    off_rsv = 40
    off_struct = off_rsv + 16
    off_strings = off_struct + len(st)
    total = off_strings + len(strings) + 256
    hdr = struct.pack(">10I", 0xd00dfeed, total, off_struct, off_strings, off_rsv, 17, 16, 7, len(strings), len(st))
    blob = hdr + bytes(16) + st + strings
    return blob + bytes(total - len(blob))


def dtbs():
    virt = fixture("virt-arm64", "sys", "firmware", "fdt")
    seeds = fdt_chosen_seeds()
    # The dtb target's last byte picks the edits; bytes past totalsize are ignored.
    put("dtb", "qemu-virt", virt)
    put("dtb", "qemu-virt-riscv64", fixture("virt-riscv64", "sys", "firmware", "fdt"))
    put("dtb", "qemu-virt-crash-edits", virt + bytes([0x1f]))
    put("dtb", "chosen-seeds", seeds)
    put("dtb", "minimal", fdt_minimal() + bytes([0x03]))
    put("fdt_patch", "qemu-virt", bytes([8]) + virt)
    put("fdt_patch", "chosen-seeds", bytes([8]) + seeds)
    put("fdt_patch", "no-entropy", bytes([0]) + seeds)
    for depth in (63, 65):
        put("dtb", f"nested-{depth}", fdt_nested(depth))
        put("excluded_checks", f"fdt-nested-{depth}", fdt_nested(depth))
    put("excluded_checks", "fdt-minimal", fdt_minimal())
    # libfdt's /chosen is the first "chosen" or "chosen@..." node (the
    # loader edits it, the kernel reads it, the purgatory must patch it).
    unit_first = fdt_nodes([("chosen@9020000", [("kaslr-seed", bytes(8))]), ("chosen", [("rng-seed", bytes(64))])])
    put("dtb", "chosen-unit-address-first", unit_first + bytes([0x03]))
    put("fdt_patch", "chosen-unit-address-first", bytes([8]) + unit_first)
    # fdt_crate (the fdt crate under evaluation) starts from fdt_walk's seeds.
    for target in ("fdt_walk", "fdt_crate"):
        put(target, "chosen-unit-address-first", unit_first)
        put(target, "qemu-virt", virt)
        put(target, "chosen-seeds", seeds)
        put(target, "minimal", fdt_minimal())
        for depth in (63, 65):
            put(target, f"nested-{depth}", fdt_nested(depth))
    put("excluded_checks", "fdt-qemu-virt", virt)
    put("excluded_checks", "elf-core", elf_core(3))


def elf_core(phnum):
    d = bytearray(64 + 56 * phnum)
    d[0:7] = b"\x7fELF\x02\x01\x01"
    struct.pack_into("<H", d, 16, 4)
    struct.pack_into("<Q", d, 32, 64)
    struct.pack_into("<HHH", d, 52, 64, 56, phnum)
    return bytes(d)


# --- purgatory parameter blocks ----------------------------------------------

PARAMS_MAGIC = struct.unpack("<I", b"RKXP")[0]


def params(segments, entry, boot_data, flags=0):
    """docs/abi.md parameter block v1 (1024 bytes)."""
    b = bytearray(1024)
    struct.pack_into("<IIIIQQ", b, 0, PARAMS_MAGIC, 1, 1024, flags, entry, boot_data)
    struct.pack_into("<I", b, 56, len(segments))
    for i, (mem, data, kind, sflags) in enumerate(segments):
        at = 64 + i * 56
        struct.pack_into("<QQ", b, at, mem, len(data))
        b[at + 16:at + 48] = hashlib.sha256(data).digest()
        struct.pack_into("<II", b, at + 48, kind, sflags)
    return bytes(b)


def boot_params_with_seed():
    """An x86 zero page whose setup_data chain holds one SETUP_RNG_SEED node
    at 0x1000 (boot.rst setup_data; base 0x100000)."""
    bp = bytearray(0x1000 + 16 + 32)
    struct.pack_into("<Q", bp, 0x250, 0x10_0000 + 0x1000)
    struct.pack_into("<QII", bp, 0x1000, 0, 9, 32)
    bp[0x1010:0x1030] = bytes([0x33] * 32)
    return bytes(bp)


def run_input(flags, segs, entry, boot_data, ram, nseg=None, entropy=8, cpu=0x101, rules=0):
    """The purgatory_run layout (see fuzz_targets/purgatory_run.rs)."""
    h = bytearray(24 + 16 * 8)
    h[0] = flags
    h[1] = len(segs) if nseg is None else nseg
    h[2] = entropy
    h[3] = rules
    struct.pack_into("<IQQ", h, 4, cpu, entry, boot_data)
    for i, (at, length, kind, sflags) in enumerate(segs):
        struct.pack_into("<HHBB", h, 24 + i * 8, at, length, kind, sflags)
    return bytes(h) + ram


def purgatory():
    kernel = bytes([0xaa]) * 4096
    initrd = bytes(i & 0xff for i in range(3000))
    dtb = fdt_chosen_seeds()
    base = 0x4000_0000
    segs = [(base + 0x1000, kernel, 1, 0), (base + 0x3000, initrd, 2, 0), (base + 0x8000, dtb, 3, 0),
            (base + 0x9000, elf_core(2), 4, 1)]
    # After the block: the architecture (0 aarch64, 1 x86_64, 2 riscv64) and
    # the purgatory's load address and mem_size.
    def rules(arch, start=0x3000_0000, size=0x2_0000):
        return struct.pack("<BQQ", arch, start, size)
    put("purgatory_validate", "arm64-four-segments",
        params(segs, base + 0x1000, base + 0x8000, flags=3) + rules(0))
    put("purgatory_validate", "x86-boot-params",
        params([(0x100000, bytes(4096), 5, 0), (0x1000000, kernel, 1, 0)], 0x1000200, 0x100000, flags=1) + rules(1))
    put("purgatory_validate", "skip-digests", params(segs[:1], base + 0x1000, 0, flags=4) + rules(2))

    # RAM: kernel at 0x0, initrd at 0x1000, dtb at 0x2000, core at 0x3000.
    ram = bytearray(0x3000 + 64 + 56 * 2)
    ram[0:0x1000] = kernel
    ram[0x1000:0x1000 + len(initrd)] = initrd
    ram[0x2000:0x2000 + len(dtb)] = dtb
    ram[0x3000:] = elf_core(2)
    four = [(0, 0x1000, 1, 0), (0x1000, len(initrd), 2, 0), (0x2000, len(dtb), 3, 0), (0x3000, 64 + 112, 4, 1)]
    put("purgatory_run", "arm64-seeds-bootcpu", run_input(0b11, four, 0, 0x2000, bytes(ram)))
    put("purgatory_run", "arm64-excluded-dtb", run_input(0b01, four[:2] + [(0x2000, len(dtb), 3, 1)], 0, 0x2000,
                                                         bytes(ram)))
    put("purgatory_run", "arm64-bad-digest", run_input(0b11, [(0, 0x1000, 1, 2)] + four[1:], 0, 0x2000,
                                                       bytes(ram)))
    bp = boot_params_with_seed()
    # boot_params at RAM 0: its setup_data pointer must be ARENA_BASE-relative.
    bpr = bytearray(bp)
    struct.pack_into("<Q", bpr, 0x250, base + 0x1000)
    x86 = bytes(bpr) + bytes(0x2000 - len(bpr)) + kernel
    put("purgatory_run", "x86-setup-data-seed",
        run_input(0b01, [(0, len(bpr), 5, 0), (0x2000, 0x1000, 1, 0)], 0x2200, 0, x86, rules=1))
    put("setup_data", "one-seed-node", struct.pack("<Q", 0x10_0000) + bytes([8]) + bp)
    put("setup_data", "no-entropy", struct.pack("<Q", 0x10_0000) + bytes([0]) + bp)


def main():
    if len(sys.argv) > 1:
        sys.exit("usage: make_seeds.py (no arguments)")
    images()
    system()
    dtbs()
    purgatory()


if __name__ == "__main__":
    main()
