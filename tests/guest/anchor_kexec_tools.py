#!/usr/bin/env python3
"""Anchor measurement: Debian's kexec-tools kexec'ing a Debian kernel, in QEMU.

The matrix's own cell (el1 on arm64, x86-load on amd64; `--suite trixie`
picks its trixie twin, `--virtualization` the arm64 EL2 nVHE one) run with
Debian's kexec-tools as the loader: kernel 1 loads kernel 2 with `kexec -l`
(kexec_load), prints KEXEC-EXEC-START and runs `kexec -e`; kernel 2's init
prints KERNEL2-INIT-OK with the cell's marker. The cell is judged as in the
matrix (kernel 2 booted with our command line, same build, the mode's EL).

Runs once with kexec-tools' own purgatory SHA-256 verification (plain
`kexec -l`) and once with `-i` (--no-checks), and prints, from host
timestamps of console lines:
  boot      QEMU spawn -> kernel 1's init prints its first line
  load      KEXEC-LOAD-START -> KEXEC-LOAD-DONE (the `kexec -l` command)
  hand-off  KEXEC-EXEC-START -> kernel 2's first console line
  kernel2   KEXEC-EXEC-START -> KERNEL2-INIT-OK

    scripts/fetch-fixtures.sh --arch arm64
    tests/guest/anchor_kexec_tools.py [--arch arm64|amd64] [--suite bookworm|trixie] [--virtualization] [-v]
"""
import argparse
import dataclasses
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep the tree free of __pycache__
sys.path.insert(0, HERE)
import guest_images as gi  # noqa: E402
import kexec_matrix as km  # noqa: E402
from guest_arch import ARCHES  # noqa: E402


def anchor_cell(arch, suite, virtualization):
    mode = "el2-nvhe" if virtualization else None
    for c in km.all_cells():
        if (c.arch == arch and c.kind == "kexec" and c.suite == suite and c.syscall == "load"
                and not (c.reuse_cmdline or c.dtb_override) and c.mode == (mode or ARCHES[arch].modes[0].name)):
            return c
    sys.exit(f"anchor: no kexec cell for {arch} {suite}{' EL2' if virtualization else ''}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default=gi.DEFAULT_CACHE)
    ap.add_argument("--arch", default="arm64", choices=sorted(ARCHES))
    ap.add_argument("--suite", default="bookworm", choices=["bookworm", "trixie"])
    ap.add_argument("--virtualization", action="store_true", help="arm64: the EL2 nVHE mode")
    ap.add_argument("--timeout", type=float, default=600, help="per run (s)")
    ap.add_argument("--only", choices=["verify", "noverify"], help="run just one variant")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo the console")
    args = ap.parse_args()
    arch = ARCHES[args.arch]
    cell = dataclasses.replace(anchor_cell(arch.name, args.suite, args.virtualization), name="anchor")
    images = gi.ImageSet(args.cache)
    try:
        loader = images.loader(arch, "kexec-tools")
    except FileNotFoundError as e:
        sys.exit(f"anchor: {e}")
    kernel, base = images.base(arch, cell.suite, (loader,))
    rundir = gi.new_rundir(args.cache, f"anchor-{arch.name}")
    with open(os.path.join(os.path.dirname(kernel), "version")) as f:
        version = f.read().split()[1]
    print(f"anchor: kernel {kernel} ({version}), initrd1 {os.path.getsize(base) / 1e6:.1f} MB, "
          f"mode {arch.mode(cell.mode).name}, logs in {rundir}")
    variants = [("verify", ""), ("noverify", "-i")]
    if args.only:
        variants = [v for v in variants if v[0] == args.only]
    for name, kflags in variants:
        r = km.run_cell(cell, loader, images, os.path.join(rundir, name), args.timeout, args.verbose,
                        load_flags=kflags)
        if not r.ok:
            sys.exit(f"anchor: {name}: {r.line()}")
        i = r.info
        print(f"{name:9s} (kexec {kflags or '  '} -l): boot-to-init {i['k1_init_s']:6.2f} s  "
              f"load {i['load_host_s']:6.2f} s  hand-off {i['handoff_s']:6.2f} s  "
              f"exec-to-init2 {i['kernel2_init_s']:6.2f} s  [{r.log}]", flush=True)


if __name__ == "__main__":
    main()
