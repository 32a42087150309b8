#!/usr/bin/env python3
"""Boot Debian trixie's riscv64 kernel in QEMU and report the facts the
riscv64 loader and purgatory rely on (docs/riscv64.md records them).

    tests/guest/riscv64_probe.py [--cpu rv64,zknh=true,zkr=true] [--out DIR]

Runs `qemu-system-riscv64 -M virt -bios default` (OpenSBI fw_dynamic, TCG)
with a busybox initramfs whose init prints /proc/cpuinfo, /proc/iomem (the
kernel command line asks for crashkernel=256M), /sys/kernel/kexec_* and the
size of /sys/firmware/fdt, then hex-dumps /sys/firmware/fdt; the host
decodes it with dtc. Also checks the Image header of the kernel file.
Nothing here loads a kernel on the host: only QEMU is started.
Exit code 0 when the guest reached its init and every section was read.
"""
import argparse
import os
import re
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from qemu_kexec import Qemu, QemuError, find  # noqa: E402

INIT = r"""
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo PROBE-INIT-OK
echo "== uname"; uname -r
echo "== cmdline"; cat /proc/cmdline
echo "== cpuinfo"; cat /proc/cpuinfo
echo "== iomem"; cat /proc/iomem
echo "== kexec files"; ls /sys/kernel | grep -E 'kexec|crash|vmcoreinfo'
for f in /sys/kernel/kexec_loaded /sys/kernel/kexec_crash_loaded /sys/kernel/kexec_crash_size; do
  [ -e $f ] && echo "$f=$(cat $f)"
done
echo "== fdt size"; busybox wc -c < /sys/firmware/fdt
echo "== fdt hex"; busybox hexdump -v -e '32/1 "%02x" "\n"' /sys/firmware/fdt
echo "== end"
poweroff -f
"""


def image_header(path):
    """Documentation/arch/riscv/boot-image-header.rst fields of `path`."""
    with open(path, "rb") as f:
        h = f.read(64)
    code0, code1, text_offset, image_size, flags, version, res1, res2, magic, magic2, res3 = struct.unpack(
        "<IIQQQIIQQII", h)
    return {
        "code0": f"{code0:#010x} ({h[:2]!r})",
        "text_offset": f"{text_offset:#x}",
        "image_size": f"{image_size:#x} ({image_size} bytes)",
        "file_size": os.path.getsize(path),
        "flags": f"{flags:#x} (bit 0 = big-endian)",
        "version": f"{version >> 16}.{version & 0xffff}",
        "res1": res1,
        "res2": res2,
        "magic": h[0x30:0x38].rstrip(b"\0").decode(errors="replace"),
        "magic2": repr(h[0x38:0x3c]),
        "res3 (PE offset)": f"{res3:#x}",
    }


def section(lines, name):
    i = find(lines, rf"^== {re.escape(name)}$")
    if i is None:
        raise SystemExit(f"riscv64_probe: the guest printed no '== {name}' section")
    out = []
    for l in lines[i + 1:]:
        if l.text.startswith("== "):
            break
        out.append(l.text)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cache = os.environ.get("RKEXEC_CACHE") or os.path.join(ROOT, "cache")
    ap.add_argument("--kernel", default=os.path.join(cache, "riscv64/trixie/Image"))
    ap.add_argument("--busybox", default=os.path.join(cache, "riscv64/busybox"))
    ap.add_argument("--cpu", default="rv64")
    ap.add_argument("--append", default="console=ttyS0 crashkernel=256M")
    ap.add_argument("-m", "--memory", type=int, default=1024)
    ap.add_argument("--out", help="keep the transcript and the decoded DTB here")
    ap.add_argument("--timeout", type=float, default=240)
    a = ap.parse_args(argv)

    for k, v in image_header(a.kernel).items():
        print(f"image header: {k}: {v}")

    spec = __import__("importlib.util").util.spec_from_file_location(
        "mk_initramfs", os.path.join(ROOT, "scripts/mk-initramfs.py"))
    mk = __import__("importlib.util").util.module_from_spec(spec)
    spec.loader.exec_module(mk)
    out = a.out or tempfile.mkdtemp(prefix="rkexec-riscv64-probe-")
    os.makedirs(out, exist_ok=True)
    initrd = mk.build(os.path.join(out, "probe.cpio.gz"), INIT, busybox=a.busybox)
    q = Qemu(a.kernel, initrd, a.append, cpu=a.cpu, memory=a.memory, qemu="qemu-system-riscv64",
             extra_args=("-bios", "default"), log_path=os.path.join(out, "console.log"))
    with q:
        try:
            q.wait_for(r"^== end$", a.timeout)
        except QemuError as e:
            print("\n".join(str(l) for l in q.lines[-30:]))
            raise SystemExit(f"riscv64_probe: {e}")
    lines = q.lines
    boot = find(lines, r"PROBE-INIT-OK")
    print(f"boot: OpenSBI banner to init in {lines[boot].t - lines[0].t:.1f} s (host, TCG)")
    for l in lines:
        if re.search(r"OpenSBI v|Runtime SBI Version|Platform HART Count|SBI (v|specification)|"
                     r"Domain0 Next|Boot HART (ISA|Base ISA|ISA Extensions)|"
                     r"SBI implementation|SBI v\d|Machine model|crashkernel|Crash kernel|riscv: base ISA|"
                     r"riscv: ELF capabilities|earlycon|printk: .*console", l.text):
            print(f"console: {l.text}")
    for name in ("uname", "cmdline", "cpuinfo", "iomem", "kexec files", "fdt size"):
        print(f"== {name}")
        print("\n".join(section(lines, name)))
    blob = bytes.fromhex("".join(section(lines, "fdt hex")))
    dtb = os.path.join(out, "sys-firmware-fdt.dtb")
    with open(dtb, "wb") as f:
        f.write(blob)
    dts = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", dtb], capture_output=True, text=True)
    with open(os.path.join(out, "sys-firmware-fdt.dts"), "w") as f:
        f.write(dts.stdout)
    print(f"== /sys/firmware/fdt decoded: {os.path.join(out, 'sys-firmware-fdt.dts')}")
    for l in dts.stdout.splitlines():
        if re.search(r"riscv,isa|mmu-type|stdout-path|reg-shift|reg-io-width|ns16550|"
                     r"bootargs|cpu@|boot_cpuid|compatible = \"riscv|linux,|mmode_resv|reserved-memory|"
                     r"rng-seed|kaslr-seed|serial@|memory@|clock-frequency", l):
            print(f"dts: {l.strip()}")
    print(f"dts header: boot_cpuid_phys {struct.unpack_from('>I', blob, 0x1c)[0]:#x}, totalsize {len(blob)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
