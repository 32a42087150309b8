#!/usr/bin/env python3
"""Anchor measurement: Debian's kexec-tools kexec'ing a Debian kernel, in QEMU.

Kernel 1 (Debian bookworm arm64 cloud kernel) boots an initramfs holding
busybox, Debian's /sbin/kexec (+ libs), kernel 2 (/kernel2, by default the
same Image) and a tiny initrd for it (/initrd2). Its init loads kernel 2 with
`kexec -l` (kexec_load: this kernel has no KEXEC_FILE), prints
KEXEC-EXEC-START and runs `kexec -e`. Kernel 2's /init2 prints
KERNEL2-INIT-OK with the MARKER from its command line and powers off.

Runs once with purgatory SHA-256 verification (plain `kexec -l`) and once
with `-i` (--no-checks), and prints, from host timestamps of console lines:
  boot      QEMU spawn -> kernel 1's init prints its first line
  load      KEXEC-LOAD-START -> KEXEC-LOAD-DONE (the `kexec -l` command)
  hand-off  KEXEC-EXEC-START -> kernel 2's first console line
  kernel2   KEXEC-EXEC-START -> KERNEL2-INIT-OK

    scripts/fetch-fixtures.sh --arch arm64
    tests/guest/anchor_kexec_tools.py [--suite bookworm] [--cpu cortex-a72] [-v]
"""
import argparse
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True  # keep the tree free of __pycache__
sys.path.insert(0, HERE)
import qemu_kexec  # noqa: E402

_spec = importlib.util.spec_from_file_location("mk_initramfs", os.path.join(ROOT, "scripts", "mk-initramfs.py"))
mk = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mk)

MARKER = "xyz"

# Kernel 1's init. Unknown `name=value` kernel parameters reach init as
# environment variables: KFLAGS carries the extra kexec flags ("-i" or empty).
INIT1 = r"""#!/bin/sh
export PATH=/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "INIT1-START uptime=$(cut -d' ' -f1 /proc/uptime)"
[ "$KFLAGS" = none ] && KFLAGS=
echo "KEXEC-LOAD-START flags='$KFLAGS'"
kexec $KFLAGS -l /kernel2 --initrd=/initrd2 \
    --append="console=ttyAMA0 earlycon nokaslr rdinit=/init2 MARKER=@MARKER@"
rc=$?
echo "KEXEC-LOAD-DONE rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
if [ $rc -ne 0 ]; then echo "KEXEC-LOAD-FAILED"; poweroff -f; fi
sync
echo KEXEC-EXEC-START
kexec -e
echo "KEXEC-EXEC-FAILED rc=$?"
poweroff -f
""".replace("@MARKER@", MARKER)

# Kernel 2's init: report the marker from its own command line, power off.
INIT2 = r"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
echo "KERNEL2-INIT-OK $(grep -o 'MARKER=[^ ]*' /proc/cmdline) uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
"""


def build_images(cache, suite, workdir):
    arch = os.path.join(cache, "arm64")
    kernel = os.path.join(arch, suite, "Image")
    busybox = os.path.join(arch, "busybox")
    kexec_tree = os.path.join(arch, "kexec-tools")
    for p in (kernel, busybox, os.path.join(kexec_tree, "sbin", "kexec")):
        if not os.path.exists(p):
            sys.exit(f"anchor: {p} missing: run scripts/fetch-fixtures.sh --arch arm64")
    initrd2 = mk.build(os.path.join(workdir, "initrd2.cpio.gz"), INIT2, busybox, init_path="/init2")
    initrd1 = mk.build(os.path.join(workdir, "initrd1.cpio.gz"), INIT1, busybox,
                       adds=[(kernel, "/kernel2"), (initrd2, "/initrd2")],
                       trees=[(kexec_tree, "/")])
    return kernel, initrd1


def measure(kernel, initrd1, kflags, args):
    append = f"console=ttyAMA0 nokaslr rdinit=/init KFLAGS={kflags or 'none'}"
    log = os.path.join(args.workdir, f"console{kflags or ''}.log")
    # dtb-randomness=off: QEMU otherwise puts a kaslr-seed in /chosen, which a
    # `nokaslr` kernel 1 leaves un-wiped, and kexec-tools then refuses to load
    # ("setup_2nd_dtb: kaslr-seed is not wiped to 0").
    q = qemu_kexec.Qemu(kernel, initrd1, append, machine="virt,dtb-randomness=off", cpu=args.cpu, memory=args.memory,
                        virtualization=args.virtualization, echo=args.verbose, log_path=log)
    with q:
        try:
            ok = q.wait_for(r"KERNEL2-INIT-OK|KEXEC-LOAD-FAILED|KEXEC-EXEC-FAILED|Kernel panic",
                            args.timeout)
        except qemu_kexec.QemuError as e:
            sys.exit(f"anchor: {e}\n{q.transcript()[-4000:]}")
    if "KERNEL2-INIT-OK" not in ok.text:
        sys.exit(f"anchor: failed: {ok.text}\n{q.transcript()[-4000:]}")
    if f"MARKER={MARKER}" not in ok.text:
        sys.exit(f"anchor: kernel 2 did not get our command line: {ok.text}")
    L = q.lines
    i = qemu_kexec.find(L, r"INIT1-START")
    return {
        "boot": L[i].t,
        "load": qemu_kexec.interval(L, r"KEXEC-LOAD-START", r"KEXEC-LOAD-DONE"),
        "handoff": qemu_kexec.handoff_time(L),
        "kernel2": qemu_kexec.interval(L, r"KEXEC-EXEC-START", r"KERNEL2-INIT-OK"),
        "log": log,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default=os.environ.get("RKEXEC_CACHE", os.path.join(ROOT, "cache")))
    ap.add_argument("--suite", default="bookworm", choices=["bookworm", "trixie"])
    ap.add_argument("--cpu", default="cortex-a72")
    ap.add_argument("-m", "--memory", type=int, default=2048)
    ap.add_argument("--virtualization", action="store_true")
    ap.add_argument("--timeout", type=float, default=600, help="per run (s)")
    ap.add_argument("--only", choices=["verify", "noverify"], help="run just one variant")
    ap.add_argument("--workdir", help="images and console logs (default CACHE/anchor-kexec-tools/SUITE)")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo the console")
    args = ap.parse_args()
    args.workdir = args.workdir or os.path.join(args.cache, "anchor-kexec-tools", args.suite)
    os.makedirs(args.workdir, exist_ok=True)
    kernel, initrd1 = build_images(args.cache, args.suite, args.workdir)
    print(f"anchor: kernel {kernel} ({open(os.path.join(os.path.dirname(kernel), 'version')).read().split()[1]}), "
          f"initrd1 {os.path.getsize(initrd1) / 1e6:.1f} MB, cpu {args.cpu}, workdir {args.workdir}")
    variants = [("verify", ""), ("noverify", "-i")]
    if args.only:
        variants = [v for v in variants if v[0] == args.only]
    for name, kflags in variants:
        r = measure(kernel, initrd1, kflags, args)
        print(f"{name:9s} (kexec {kflags or '  '} -l): boot-to-init {r['boot']:6.2f} s  "
              f"load {r['load']:6.2f} s  hand-off {r['handoff']:6.2f} s  "
              f"exec-to-init2 {r['kernel2']:6.2f} s  [{r['log']}]", flush=True)


if __name__ == "__main__":
    main()
