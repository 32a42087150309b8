#!/usr/bin/env python3
"""Assemble a unified kernel image from a systemd-stub the documented
pre-ukify way (systemd v252 man/systemd-stub.xml "Assembling Kernel
Images"): `objcopy --add-section .NAME=FILE --change-section-vma .NAME=VMA`
for each section, onto linux{x64,aa64}.efi.stub from Debian bookworm's
systemd-boot-efi (252). The recipe's fixed VMAs assume a .linux under 16 MiB;
Debian's arm64 Image is ~27 MiB, so the VMAs are laid out here instead: each
section after the previous one (the stub's SizeOfImage first), 64 KiB
aligned, in UAPI.5's canonical order (.osrel .cmdline .initrd .ucode .dtb
.uname .linux last, as ukify puts the big one late).

    scripts/mk-uki.py --stub STUB --linux KERNEL [--initrd F] [--ucode F]
                      [--cmdline TEXT] [--dtb F] [--uname TEXT] [--osrel F] -o OUT

objcopy must handle the stub's PE flavour: the host's objcopy for
pei-x86-64, aarch64-linux-gnu-objcopy (binutils-aarch64-linux-gnu, which
scripts/setup.sh installs with the arm64 cross compiler) for
pei-aarch64-little. Importable: build(stub, out, sections).
"""
import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile

ORDER = [".osrel", ".cmdline", ".initrd", ".ucode", ".dtb", ".uname", ".linux"]
ALIGN = 0x10000


def pe_info(path):
    """(machine, SizeOfImage, ImageBase) of a PE file."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[:2] != b"MZ":
        raise SystemExit(f"{path}: not a PE file")
    pe, = struct.unpack_from("<I", head, 0x3c)
    if head[pe:pe + 4] != b"PE\0\0":
        raise SystemExit(f"{path}: no PE signature")
    machine, = struct.unpack_from("<H", head, pe + 4)
    opt = pe + 24
    magic, = struct.unpack_from("<H", head, opt)
    image_base = struct.unpack_from("<Q", head, opt + 24)[0] if magic == 0x20b else struct.unpack_from("<I", head, opt + 28)[0]
    size_of_image, = struct.unpack_from("<I", head, opt + 56)
    return machine, size_of_image, image_base


def objcopy_for(machine):
    tool = {0x8664: "objcopy", 0xaa64: "aarch64-linux-gnu-objcopy"}.get(machine)
    if tool is None:
        raise SystemExit(f"no objcopy known for PE machine {machine:#x}")
    if not shutil.which(tool):
        raise SystemExit(f"{tool} not found (scripts/setup.sh installs binutils / the arm64 cross binutils)")
    return tool


def build(stub, out, sections):
    """sections: {".linux": path, ".cmdline": path, ...} (paths to files)."""
    if ".linux" not in sections:
        raise SystemExit("a UKI needs .linux")
    machine, size_of_image, image_base = pe_info(stub)
    vma = (size_of_image + ALIGN - 1) // ALIGN * ALIGN
    args = []
    for name in sorted(sections, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
        path = sections[name]
        args += ["--add-section", f"{name}={path}", "--change-section-vma", f"{name}={image_base + vma:#x}"]
        vma = (vma + os.path.getsize(path) + ALIGN - 1) // ALIGN * ALIGN
    subprocess.run([objcopy_for(machine), *args, stub, out], check=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stub", required=True)
    ap.add_argument("--linux", required=True)
    ap.add_argument("--initrd")
    ap.add_argument("--ucode")
    ap.add_argument("--dtb")
    ap.add_argument("--osrel")
    ap.add_argument("--cmdline", help="command line text")
    ap.add_argument("--uname", help="kernel release text")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sections = {".linux": a.linux}
        for name, path in ((".initrd", a.initrd), (".ucode", a.ucode), (".dtb", a.dtb), (".osrel", a.osrel)):
            if path:
                sections[name] = path
        for name, text in ((".cmdline", a.cmdline), (".uname", a.uname)):
            if text is not None:
                p = os.path.join(tmp, name.lstrip("."))
                with open(p, "w") as f:
                    f.write(text)
                sections[name] = p
        build(a.stub, a.out, sections)
    print(f"mk-uki: {a.out} ({os.path.getsize(a.out)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
