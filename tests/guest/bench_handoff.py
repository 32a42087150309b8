#!/usr/bin/env python3
"""Benchmark: load time and kexec hand-off time, kexec-tools vs rkexec, in QEMU.

One guest for every variant: Debian bookworm arm64 cloud kernel as kernel 1
and kernel 2, -M virt,dtb-randomness=off -cpu cortex-a72, `nokaslr earlycon`
on both command lines, the same kernel-1 initramfs (busybox, kexec-tools AND
rkexec, /kernel2, /initrd2; guest_images.build_base) and the same
kernel 2 + initrd + --append. Only /cell.sh's loader command differs:

  (a) kexec-tools  `kexec -l`     (its purgatory checks SHA-256 digests)
  (b) kexec-tools  `kexec -i -l`  (--no-checks: no verification)
  (c) rkexec       `rkexec -l`    (our purgatory, verification on)

Every variant boots N times (default 3), interleaved a,b,c,a,b,c,... and one
at a time (the host has 2 cores; parallel guests would disturb each other).

Measured per boot:
  load       in-guest duration of the `-l` command: /proc/timer_list "now at"
             (ns) read with shell builtins right before and after it; the host
             time between the KEXEC-LOAD-START/-DONE console lines is kept as a
             cross-check ("load (host)").
  hand-off   host time from the KEXEC-EXEC-START console line (printed right
             before `LOADER -e`) to kernel 2's first console line (earlycon:
             "Booting Linux on physical CPU"): `-e` process start, kernel 1
             shutdown, relocation, purgatory, kernel 2 entry.
  kernel-side  host time from kernel 1's last line ("Bye!", machine_kexec)
             to kernel 2's first line: relocation + purgatory + entry only.
  purgatory  rkexec only: the T of "purgatory: verified N segments, B bytes
             hashed with ENGINE in T us" (the purgatory's own clock).

--arch amd64 measures the same on x86_64 (the matrix's x86-load cell:
qemu-system-x86_64 -M q35 -cpu max, Debian bookworm amd64 cloud bzImage as
kernel 1 and 2, `console=ttyS0 earlyprintk=serial nokaslr` on both command
lines; kernel 2's first line is "[    0.000000] Linux version ..." from
earlyprintk; kernel 1's last is "kexec_core: Starting new kernel"). The
static x86_64 rkexec is target/x86_64-unknown-linux-musl/release/rkexec.

--arch riscv64 boots the matrix's rv-zknh cell (qemu-system-riscv64 -M virt
-cpu rv64,zknh=true, OpenSBI, Debian trixie riscv64 kernels, earlycon). Debian
ships no kexec-tools for riscv64, so the anchor is rkexec itself with
verification off:

  (d) rkexec       `rkexec -i -l` (--no-checks: the purgatory hashes nothing)

and the riscv64 default is --variants c,d. Kernel 1's last line there is
"kexec_core: Starting new kernel".

    tests/guest/bench_handoff.py [--arch arm64|amd64|riscv64] [-n 3] [--rkexec PATH] [--variants a,b,c]
                                 [--json out.json]

This is a measurement command, not a test: it exits non-zero only when a boot
fails.
"""
import argparse
import dataclasses
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import guest_images as gi  # noqa: E402
import kexec_matrix as km  # noqa: E402
from guest_arch import ARCHES  # noqa: E402

# The matrix cell each architecture's benchmark boots.
BENCH_CELL = {"arm64": "el1", "amd64": "x86-load", "riscv64": "rv-zknh"}
# Variants each architecture measures unless --variants says otherwise.
DEFAULT_VARIANTS = {"arm64": "a,b,c", "amd64": "a,b,c", "riscv64": "c,d"}
VARIANTS = {
    "a": ("kexec -l", "kexec-tools", ""),
    "b": ("kexec -i -l", "kexec-tools", "-i"),
    "c": ("rkexec -l", "rkexec", ""),
    "d": ("rkexec -i -l", "rkexec", "-i"),
}
ANCHORS = ("a", "b", "d")  # what (c) is divided by, where measured
METRICS = [  # (key in Result.info, label)
    ("load_guest_s", "load (guest clock)"),
    ("load_host_s", "load (host, console)"),
    ("handoff_s", "hand-off"),
    ("machine_kexec_to_k2_s", "kernel-side (Bye! -> k2)"),
    ("kernel2_init_s", "exec -> kernel 2 init"),
]


def stats(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return statistics.median(xs), min(xs), max(xs)


def fmt(st, unit="s"):
    if st is None:
        return "n/a"
    med, lo, hi = st
    if unit == "us":
        return f"{med:,.0f} [{lo:,.0f}..{hi:,.0f}] us"
    return f"{med:.3f} [{lo:.3f}..{hi:.3f}]"


def ratio(c, x):
    if c is None or x is None or x[0] == 0:
        return "n/a"
    return f"{c[0] / x[0]:.3f}x"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--repeat", type=int, default=3, help="boots per variant (default 3)")
    ap.add_argument("--variants", help="subset of a,b,c,d (default a,b,c; riscv64: c,d)")
    ap.add_argument("--arch", default="arm64", choices=tuple(BENCH_CELL),
                    help="guest architecture (default arm64; amd64: q35, x86_64 kernels and loaders; "
                         "riscv64: virt, Zknh, rkexec only)")
    ap.add_argument("--rkexec", help="static rkexec for the guest (default: target/<guest target>/release/rkexec)")
    ap.add_argument("--cache", default=gi.DEFAULT_CACHE)
    ap.add_argument("--timeout", type=float, default=180, help="per boot (s)")
    ap.add_argument("--json", help="write raw per-boot figures here")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo the console")
    a = ap.parse_args(argv)
    want = [v.strip() for v in (a.variants or DEFAULT_VARIANTS[a.arch]).split(",") if v.strip()]
    bad = [v for v in want if v not in VARIANTS]
    if bad:
        ap.error(f"unknown variant(s) {bad}: a, b, c, d")

    arch = ARCHES[a.arch]
    if any(VARIANTS[v][1] not in arch.loaders for v in want):
        ap.error(f"{a.arch} guests carry only {', '.join(arch.loaders)}: variants "
                 + ", ".join(v for v, (_, lname, _) in VARIANTS.items() if lname in arch.loaders))
    cell = next(c for c in km.all_cells() if c.name == BENCH_CELL[a.arch])
    cell = dataclasses.replace(cell, name="bench")
    images = gi.ImageSet(a.cache, {arch.name: {"rkexec": a.rkexec}})
    loaders = {}
    for lname in dict.fromkeys(VARIANTS[v][1] for v in want):
        try:
            loaders[lname] = images.loader(arch, lname)
        except FileNotFoundError as e:
            sys.exit(f"bench_handoff: {e}" + ("\n(use --variants a,b to measure kexec-tools alone)"
                                              if lname == "rkexec" and a.arch != "riscv64" else ""))
    in_image = tuple(loaders.values())
    kernel, base = images.base(arch, cell.suite, in_image)
    rundir = gi.new_rundir(a.cache, f"bench-{arch.name}")
    mode = arch.mode(cell.mode)
    print(f"bench_handoff: kernel {kernel}, cpu {mode.cpu}, -M {mode.machine}, {a.repeat} boot(s) per variant, "
          f"initramfs {os.path.getsize(base) / 1e6:.1f} MB with {'+'.join(loaders)}, logs in {rundir}", flush=True)

    runs = {v: [] for v in want}
    failed = 0
    for rep in range(a.repeat):
        for v in want:
            label, lname, flags = VARIANTS[v]
            sub = os.path.join(rundir, f"{v}-{rep}")
            r = km.run_cell(cell, loaders[lname], images, sub, a.timeout, a.verbose, load_flags=flags,
                            loaders_in_image=in_image)
            if not r.ok:
                failed += 1
                print(r.line(), flush=True)
                continue
            i = r.info
            runs[v].append(i)
            p = i.get("purgatory")
            print(f"  ({v}) {label:12s} #{rep + 1}: load {i['load_guest_s']:.3f} s (host {i['load_host_s']:.3f}), "
                  f"hand-off {i['handoff_s']:.3f} s, kernel-side {i.get('machine_kexec_to_k2_s', float('nan')):.3f} s"
                  + (f", purgatory {p['us']} us for {p['bytes']} bytes ({p['engine']})" if p else ""), flush=True)

    S = {v: {k: stats([i.get(k) for i in runs[v]]) for k, _ in METRICS} for v in want}
    cols = [f"({v}) {VARIANTS[v][0]}" for v in want]
    anchors = [v for v in ANCHORS if v in want] if "c" in want else []
    w0, w = 28, 27
    print()
    print(f"{'median [min..max], seconds':{w0}s}" + "".join(f"{c:{w}s}" for c in cols)
          + "".join(f"    ours/({v})" for v in anchors))
    for k, label in METRICS:
        if a.arch != "arm64" and k == "machine_kexec_to_k2_s":
            label = "kernel-side (k1 last->k2)"  # "kexec_core: Starting new kernel"
        row = f"{label:{w0}s}" + "".join(f"{fmt(S[v][k]):{w}s}" for v in want)
        row += "".join(f"    {ratio(S['c'][k], S[v][k]):>8s}" for v in anchors)
        print(row)
    if "c" in want and runs["c"]:
        pu = stats([i["purgatory"]["us"] for i in runs["c"] if "purgatory" in i])
        p0 = runs["c"][0].get("purgatory", {})
        print(f"\nrkexec purgatory (its own clock): {p0.get('segments')} segments, {p0.get('bytes')} bytes "
              f"hashed with {p0.get('engine')} in {fmt(pu, 'us')}"
              + (f" = {p0.get('bytes', 0) / pu[0]:.1f} MB/s" if pu and pu[0] else ""))
    print(f"\n{sum(len(r) for r in runs.values())} boots ok, {failed} failed")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({VARIANTS[v][0]: runs[v] for v in want}, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
