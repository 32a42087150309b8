#!/usr/bin/env python3
"""The main job, shown: in QEMU, a Debian arm64 kernel kexecs another
Debian kernel through rkexec and our verifying purgatory.

Kernel 1 boots a busybox initramfs holding the static rkexec, /kernel2 (the
same Debian Image) and /initrd2. Its /init prints rkexec's plan, loads
kernel 2 with `rkexec -l` and boots it with `rkexec -e`. On screen: the
plan, the purgatory's verification lines, kernel 2's first lines and its
init's greeting, then a one-line verdict from what the guests printed.

    scripts/demo.py [--cache DIR] [--rkexec PATH] [--timeout SECONDS]

Only QEMU is started here; nothing is loaded or executed on this machine.
Run through scripts/demo.sh, which sets up a fresh machine first.
"""
import argparse
import importlib.util
import os
import re
import secrets
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(ROOT, "tests", "guest"))
import qemu_kexec  # noqa: E402

_spec = importlib.util.spec_from_file_location("mk_initramfs", os.path.join(ROOT, "scripts", "mk-initramfs.py"))
mk = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mk)

# Kernel 1 is quiet (the screen is for the hand-off); kernel 2 prints from
# its first instruction (earlycon), so its first line is the proof.
K1_APPEND = "console=ttyAMA0 earlycon nokaslr rdinit=/init quiet"
K2_APPEND = "console=ttyAMA0 earlycon nokaslr rdinit=/init"

INIT1 = r"""#!/bin/sh
export PATH=/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "demo: kernel 1 is up: Linux $(uname -r)"
echo "demo: rkexec plan /kernel2 --initrd=/initrd2 --append=..."
rkexec plan /kernel2 --initrd=/initrd2 --append="$K2" || echo DEMO-PLAN-FAILED
echo "demo: rkexec -l (kexec_load through the rkexec purgatory)"
rkexec -l /kernel2 --initrd=/initrd2 --append="$K2" || { echo DEMO-LOAD-FAILED; poweroff -f; }
echo "demo: rkexec -e"
sync
rkexec -e
echo DEMO-EXEC-FAILED
poweroff -f
"""

# Split so that the success word never appears in kernel 1's initramfs.
INIT2 = r"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
echo "KERNEL2-""INIT-OK: kernel 2 ($(uname -r)) reached its init; cmdline: $(cat /proc/cmdline)"
poweroff -f
"""

SHOW = re.compile(
    r"^demo:|^rkexec plan|^ ?#|^ *\d+  |^entry |^command line:|^note:|purgatory: |Booting Linux|Linux version|"
    r"KERNEL2-INIT-OK|DEMO-")
VERIFIED = re.compile(r"purgatory: verified (\d+) segments?, (\d+) bytes hashed with (\S+) in (\d+) us")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default=os.environ.get("RKEXEC_CACHE") or os.path.join(ROOT, "cache"))
    ap.add_argument("--rkexec", default=os.path.join(ROOT, "target", "aarch64-unknown-linux-musl", "release", "rkexec"))
    ap.add_argument("--timeout", type=float, default=240)
    a = ap.parse_args(argv)
    kernel = os.path.join(a.cache, "arm64", "bookworm", "Image")
    busybox = os.path.join(a.cache, "arm64", "busybox")
    for p in (kernel, busybox, a.rkexec):
        if not os.path.isfile(p):
            print(f"demo: {p} is missing (scripts/demo.sh fetches and builds it)", file=sys.stderr)
            return 2
    marker = secrets.token_hex(4)
    k2 = f"{K2_APPEND} DEMO={marker}"
    with tempfile.TemporaryDirectory(prefix="rkexec-demo-") as d:
        initrd2 = os.path.join(d, "initrd2.cpio.gz")
        mk.build(initrd2, INIT2, busybox, init_path="/init")
        initrd1 = os.path.join(d, "initrd1.cpio.gz")
        init1 = INIT1.replace("$K2", k2)
        mk.build(initrd1, init1, busybox, adds=[(a.rkexec, "/sbin/rkexec"), (kernel, "/kernel2"), (initrd2, "/initrd2")])
        print(f"demo: QEMU virt, cortex-a72, kernel 1 = kernel 2 = {os.path.relpath(kernel, ROOT)}", flush=True)
        q = qemu_kexec.Qemu(kernel, initrd1, K1_APPEND, machine="virt", cpu="cortex-a72", memory=2048)
        shown = 0
        with q:
            try:
                q.wait_for(r"KERNEL2-INIT-OK|DEMO-(LOAD|EXEC|PLAN)-FAILED|purgatory: REFUSED|Kernel panic", a.timeout)
                q.wait_exit(10)
            except qemu_kexec.QemuError as e:
                print(f"demo: {e}", flush=True)
        for line in q.lines:
            if SHOW.search(line.text):
                print(f"  [{line.t:6.2f}s] {line.text}")
                shown += 1
    text = [l.text for l in q.lines]
    i_exec = next((i for i, t in enumerate(text) if t.startswith("demo: rkexec -e")), None)
    i_k2 = next((i for i, t in enumerate(text) if i_exec is not None and i > i_exec and
                 qemu_kexec.KERNEL_BOOT_RE.search(t)), None)
    verified = next((VERIFIED.search(t) for t in text[i_exec or 0:i_k2 or 0] if VERIFIED.search(t)), None)
    ok_line = next((t for t in text if t.startswith("KERNEL2-INIT-OK") and f"DEMO={marker}" in t), None)
    if i_exec is not None and i_k2 is not None and verified and ok_line:
        segs, nbytes, engine, us = verified.groups()
        print(f"DEMO PASS: Debian's kernel kexec'd Debian's kernel through the rkexec purgatory "
              f"({segs} segments, {int(nbytes) / 1e6:.1f} MB SHA-256 verified with {engine} in {int(us) / 1e3:.0f} ms "
              f"of guest time); kernel 2 reached its init with this run's marker")
        return 0
    why = ("kernel 1 never ran rkexec -e" if i_exec is None else
           "no kernel 2 boot line after rkexec -e" if i_k2 is None else
           "no 'purgatory: verified' line between rkexec -e and kernel 2" if not verified else
           "kernel 2's init did not report this run's marker")
    print(f"DEMO FAIL: {why} ({len(q.lines)} console lines, {shown} shown)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
