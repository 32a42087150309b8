#!/usr/bin/env python3
"""Recover the vmlinux ELF inside an x86 bzImage, as the kernel's
scripts/extract-vmlinux does: find each compression magic in the file, try
to decompress from there, keep the first result that is an ELF file.

    scripts/extract-vmlinux.py BZIMAGE OUT

The bzImage payload is arch/x86/boot/compressed/vmlinux.bin.<comp>: the
stripped vmlinux (an ELF, `objcopy -R .comment -S`) followed by its
relocation table, compressed with the kernel's CONFIG_KERNEL_* method.
gzip, xz, lzma and bzip2 are decoded with Python's standard library; zstd
and lz4 (Debian bookworm's amd64 kernels are lz4, trixie's zstd) with the
`zstd` / `lz4` command-line tools, which scripts/setup.sh installs. The ELF
is cut at the end of its last section or segment (the relocation table that
follows is not part of it).
"""
import bz2
import gzip
import lzma
import shutil
import struct
import subprocess
import sys
import zlib

# (name, magic) as scripts/extract-vmlinux lists them.
MAGICS = [
    ("gzip", b"\x1f\x8b\x08"),
    ("xz", b"\xfd7zXZ\x00"),
    ("bzip2", b"BZh"),
    ("lzma", b"\x5d\x00\x00\x00"),
    ("lz4", b"\x02\x21\x4c\x18"),
    ("zstd", b"\x28\xb5\x2f\xfd"),
]
MAX_OUT = 1 << 30


def via_tool(tool, args, data):
    if not shutil.which(tool):
        raise RuntimeError(f"{tool} not installed (scripts/setup.sh installs it)")
    p = subprocess.run([tool, *args], input=data, capture_output=True, check=False)
    # Trailing data after the frame makes some tools complain; the output is
    # still complete when it is an ELF.
    return p.stdout


def decompress(name, data):
    if name == "gzip":
        d = zlib.decompressobj(wbits=31)
        return d.decompress(data, MAX_OUT)
    if name == "xz":
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data, MAX_OUT)
    if name == "lzma":
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data, MAX_OUT)
    if name == "bzip2":
        return bz2.BZ2Decompressor().decompress(data, MAX_OUT)
    if name == "zstd":
        return via_tool("zstd", ["-dcq"], data)
    if name == "lz4":
        return via_tool("lz4", ["-dcq"], data)
    raise ValueError(name)


def elf_end(elf):
    """Bytes of the ELF-64 file proper: the furthest of its headers,
    sections and segments."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        return None
    phoff, shoff = struct.unpack_from("<QQ", elf, 32)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", elf, 54)
    end = max(phoff + phentsize * phnum, shoff + shentsize * shnum)
    for i in range(phnum):
        _t, _f, off, _v, _p, filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        end = max(end, off + filesz)
    for i in range(shnum):
        stype, = struct.unpack_from("<I", elf, shoff + i * shentsize + 4)
        off, size = struct.unpack_from("<QQ", elf, shoff + i * shentsize + 24)
        if stype != 8:  # SHT_NOBITS takes no file space
            end = max(end, off + size)
    return end if end <= len(elf) else None


def extract(data):
    tried = []
    for name, magic in MAGICS:
        at = data.find(magic)
        while at >= 0:
            try:
                out = decompress(name, data[at:])
            except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError, RuntimeError) as e:
                tried.append(f"{name}@{at:#x}: {e}")
                out = b""
            end = elf_end(out) if out else None
            if end:
                return name, at, out[:end]
            at = data.find(magic, at + 1)
    raise SystemExit("no compressed ELF found; tried: " + ("; ".join(tried[:8]) or "no magic matched"))


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    data = open(sys.argv[1], "rb").read()
    if data[0x202:0x206] != b"HdrS":
        raise SystemExit(f"{sys.argv[1]}: not a bzImage (no HdrS at 0x202)")
    name, at, elf = extract(data)
    machine, = struct.unpack_from("<H", elf, 18)
    if machine != 62:
        raise SystemExit(f"{sys.argv[1]}: the payload is an ELF for machine {machine}, not x86_64")
    with open(sys.argv[2], "wb") as f:
        f.write(elf)
    print(f"extract-vmlinux: {name} payload at {at:#x} -> {len(elf)} bytes of ELF", file=sys.stderr)


if __name__ == "__main__":
    main()
