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

--arch ppc64el boots the matrix's ppc-load cell (qemu-system-ppc64 -M
pseries with VOF, -cpu power9, -smp 2, Debian bookworm ppc64el vmlinux as
kernel 1 and 2 on hvc0; kexec-tools is bookworm's 2.0.25). Kernel 2's first
line is "[    0.000000] ..." (the pseries kernel prints through the vterm
from its first instructions); kernel 1's last is "kexec: Starting
switchover sequence". Our purgatory hashes with POWER8's vector crypto
(vshasigmaw), which QEMU 7.2's TCG runs as a helper call per instruction:
its wall time there overstates what hashing costs (bench-purgatory counts
the guest instructions).

--kdump measures the crash path instead, on the matrix's trixie kdump cell
(kdump-el1-trixie, x86-kdump-trixie, ppc-kdump-trixie; rv-kdump-zknh):
kernel 1 (crashkernel=, -smp 2) loads the capture kernel and its initrd
with `-p`, crashes with sysrq-c, the capture kernel boots and reads
/proc/vmcore. Variants:

  (a) kexec-tools  `kexec -p`                 (no --hotplug: a fixed image, hashed)
  (b) kexec-tools  `kexec -i -p`              (no verification)
  (c) rkexec       `rkexec --no-hotplug -p`   (the same kind of image as (a))
  (d) rkexec       `rkexec --no-hotplug -i -p` (riscv64's anchor)
  (e) rkexec       `rkexec -p`                (the default: hotplug-aware where the
                                               running kernel has CONFIG_CRASH_HOTPLUG, i.e.
                                               elfcorehdr and, on ppc64el, the DTB excluded
                                               from the digest and structure-checked)

(e) is measured by default only where the kernel's config has
CONFIG_CRASH_HOTPLUG=y (Debian's 6.12 on amd64 and ppc64el); elsewhere it
loads what (c) loads. Each rkexec boot records the plan's
elfcorehdr.hotplug, so the output says which image was measured.
Measured per boot:
  load -p         in-guest duration of the -p command (as `load` above)
  panic->capture  host time from kernel 1's "Kernel panic - not syncing"
                  (sysrq-c) to the capture kernel's first console line
  kernel-side     host time from kernel 1's last line on the panic path
                  (the arch's crash_exit_re) to the capture kernel's first
  sysrq->init     KDUMP-PANIC-START to the capture kernel's init line

    tests/guest/bench_handoff.py [--arch arm64|amd64|riscv64|ppc64el] [--kdump] [-n 3] [--rkexec PATH]
                                 [--variants a,b,c] [--json out.json]

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
BENCH_CELL = {"arm64": "el1", "amd64": "x86-load", "riscv64": "rv-zknh", "ppc64el": "ppc-load"}
# --kdump: the crash cell. Trixie: amd64's and ppc64el's 6.12 have
# CONFIG_CRASH_HOTPLUG, so rkexec's default (e) differs from (c) there.
KDUMP_CELL = {"arm64": "kdump-el1-trixie", "amd64": "x86-kdump-trixie", "riscv64": "rv-kdump-zknh",
              "ppc64el": "ppc-kdump-trixie"}
# Variants each architecture measures unless --variants says otherwise
# (--kdump adds "e" where the kernel has crash hotplug: kdump_default).
DEFAULT_VARIANTS = {"arm64": "a,b,c", "amd64": "a,b,c", "riscv64": "c,d", "ppc64el": "a,b,c"}
# key: (label, loader, load flags)
VARIANTS = {
    "a": ("kexec -l", "kexec-tools", ""),
    "b": ("kexec -i -l", "kexec-tools", "-i"),
    "c": ("rkexec -l", "rkexec", ""),
    "d": ("rkexec -i -l", "rkexec", "-i"),
}
KDUMP_VARIANTS = {
    "a": ("kexec -p", "kexec-tools", ""),
    "b": ("kexec -i -p", "kexec-tools", "-i"),
    "c": ("rkexec --no-hotplug -p", "rkexec", "--no-hotplug"),
    "d": ("rkexec --no-hotplug -i -p", "rkexec", "--no-hotplug -i"),
    "e": ("rkexec -p", "rkexec", ""),
}
ANCHORS = ("a", "b", "d")  # what (c) is divided by, where measured
METRICS = [  # (key in Result.info, label)
    ("load_guest_s", "load (guest clock)"),
    ("load_host_s", "load (host, console)"),
    ("handoff_s", "hand-off"),
    ("machine_kexec_to_k2_s", "kernel-side (Bye! -> k2)"),
    ("kernel2_init_s", "exec -> kernel 2 init"),
]
KDUMP_METRICS = [
    ("load_guest_s", "load -p (guest clock)"),
    ("load_host_s", "load -p (host, console)"),
    ("panic_to_capture_s", "panic -> capture kernel"),
    ("machine_kexec_to_k2_s", "kernel-side (k1 last -> k2)"),
    ("capture_init_s", "sysrq -> capture init"),
]
# The key each boot's one-line summary and the "main" figure use.
MAIN = {False: "handoff_s", True: "panic_to_capture_s"}


def crash_hotplug_kernel(arch, suite, cache):
    """Does the kernel's config (cache/<arch>/<suite>/config) have
    CONFIG_CRASH_HOTPLUG=y? None when the config is missing."""
    try:
        with open(os.path.join(arch.arch_dir(cache), suite, "config")) as f:
            return any(line.strip() == "CONFIG_CRASH_HOTPLUG=y" for line in f)
    except OSError:
        return None


def kdump_default(arch, suite, cache):
    base = DEFAULT_VARIANTS[arch.name]
    return base + ",e" if crash_hotplug_kernel(arch, suite, cache) and "c" in base.split(",") else base


def plan_of(log):
    """The PLAN-JSON object kernel 1 printed (rkexec only), or None."""
    try:
        with open(log, errors="replace") as f:
            for line in f:
                at = line.find("PLAN-JSON {")
                if at >= 0:
                    return json.loads(line[at + len("PLAN-JSON "):])
    except (OSError, ValueError):
        pass
    return None


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


def boot(cell, loader, images, sub, a, flags, in_image):
    """One boot; once more when kernel 1 stalled before its /init (no
    loader ran: nothing was measured), as the matrix does."""
    r = km.run_cell(cell, loader, images, sub, a.timeout, a.verbose, load_flags=flags, loaders_in_image=in_image)
    if r.ok or r.k1_user_space:
        return r
    print(f"  RERUN: kernel 1 stalled before its /init ({r.log})", flush=True)
    return km.run_cell(cell, loader, images, sub + "-rerun", a.timeout, a.verbose, load_flags=flags,
                       loaders_in_image=in_image)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--repeat", type=int, default=3, help="boots per variant (default 3)")
    ap.add_argument("--variants", help="subset of a,b,c,d[,e] (default a,b,c; riscv64: c,d; --kdump adds e where "
                                       "the kernel has crash hotplug)")
    ap.add_argument("--arch", default="arm64", choices=tuple(BENCH_CELL),
                    help="guest architecture (default arm64; amd64: q35, x86_64 kernels and loaders; "
                         "riscv64: virt, Zknh, rkexec only; ppc64el: pseries, POWER9)")
    ap.add_argument("--kdump", action="store_true", help="the crash path (-p, sysrq-c) instead of -l / -e")
    ap.add_argument("--rkexec", help="static rkexec for the guest (default: target/<guest target>/release/rkexec)")
    ap.add_argument("--cache", default=gi.DEFAULT_CACHE)
    ap.add_argument("--timeout", type=float, default=300, help="per boot (s, default 300)")
    ap.add_argument("--json", help="write raw per-boot figures here")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo the console")
    a = ap.parse_args(argv)
    arch = ARCHES[a.arch]
    variants = KDUMP_VARIANTS if a.kdump else VARIANTS
    metrics = KDUMP_METRICS if a.kdump else METRICS
    main_key = MAIN[a.kdump]
    cell = next(c for c in km.all_cells() if c.name == (KDUMP_CELL if a.kdump else BENCH_CELL)[a.arch])
    cell = dataclasses.replace(cell, name="bench")
    default = kdump_default(arch, cell.suite, a.cache) if a.kdump else DEFAULT_VARIANTS[a.arch]
    want = [v.strip() for v in (a.variants or default).split(",") if v.strip()]
    bad = [v for v in want if v not in variants]
    if bad:
        ap.error(f"unknown variant(s) {bad}: {', '.join(variants)}")
    if any(variants[v][1] not in arch.loaders for v in want):
        ap.error(f"{a.arch} guests carry only {', '.join(arch.loaders)}: variants "
                 + ", ".join(v for v, (_, lname, _) in variants.items() if lname in arch.loaders))
    images = gi.ImageSet(a.cache, {arch.name: {"rkexec": a.rkexec}})
    loaders = {}
    for lname in dict.fromkeys(variants[v][1] for v in want):
        try:
            loaders[lname] = images.loader(arch, lname)
        except FileNotFoundError as e:
            sys.exit(f"bench_handoff: {e}" + ("\n(use --variants a,b to measure kexec-tools alone)"
                                              if lname == "rkexec" and a.arch != "riscv64" else ""))
    in_image = tuple(loaders.values())
    kernel, base = images.base(arch, cell.suite, in_image)
    if a.kdump:
        images.capture_initrd(arch)
    rundir = gi.new_rundir(a.cache, f"bench-{'kdump-' if a.kdump else ''}{arch.name}")
    mode = arch.mode(cell.mode)
    hp = crash_hotplug_kernel(arch, cell.suite, a.cache) if a.kdump else None
    print(f"bench_handoff: {'kdump, ' if a.kdump else ''}cell {cell.kind} {cell.suite}, kernel {kernel}"
          + (f" (CONFIG_CRASH_HOTPLUG: {'yes' if hp else 'no' if hp is False else '?'})" if a.kdump else "")
          + f", cpu {mode.cpu}, -M {mode.machine}, -smp {cell.smp}, {a.repeat} boot(s) per variant, "
          f"initramfs {os.path.getsize(base) / 1e6:.1f} MB with {'+'.join(loaders)}, logs in {rundir}", flush=True)

    runs = {v: [] for v in want}
    failed = 0
    for rep in range(a.repeat):
        for v in want:
            label, lname, flags = variants[v]
            sub = os.path.join(rundir, f"{v}-{rep}")
            r = boot(cell, loaders[lname], images, sub, a, flags, in_image)
            if not r.ok:
                failed += 1
                print(r.line(), flush=True)
                continue
            i = r.info
            if loaders[lname].plans:
                plan = plan_of(r.log) or {}
                i["plan_hashed_bytes"] = plan.get("hashed_bytes")
                if a.kdump:
                    i["plan_hotplug"] = (plan.get("elfcorehdr") or {}).get("hotplug")
            elif a.kdump:
                i["plan_hotplug"] = False  # kexec-tools without --hotplug
            runs[v].append(i)
            p = i.get("purgatory")
            print(f"  ({v}) {label:24s} #{rep + 1}: load {i['load_guest_s']:.3f} s (host {i['load_host_s']:.3f}), "
                  f"{'panic->capture' if a.kdump else 'hand-off'} {i[main_key]:.3f} s, "
                  f"kernel-side {i.get('machine_kexec_to_k2_s', float('nan')):.3f} s"
                  + (f", purgatory {p['us']} us for {p['bytes']} bytes ({p['engine']})" if p else "")
                  + (f", hotplug image {i['plan_hotplug']}" if "plan_hotplug" in i else ""), flush=True)

    S = {v: {k: stats([i.get(k) for i in runs[v]]) for k, _ in metrics} for v in want}
    cols = [f"({v}) {variants[v][0]}" for v in want]
    anchors = [v for v in ANCHORS if v in want] if "c" in want else []
    w0, w = 28, 27
    print()
    print(f"{'median [min..max], seconds':{w0}s}" + "".join(f"{c:{w}s}" for c in cols)
          + "".join(f"    ours/({v})" for v in anchors))
    for k, label in metrics:
        if not a.kdump and a.arch != "arm64" and k == "machine_kexec_to_k2_s":
            label = "kernel-side (k1 last->k2)"  # "kexec_core: Starting new kernel"
        row = f"{label:{w0}s}" + "".join(f"{fmt(S[v][k]):{w}s}" for v in want)
        row += "".join(f"    {ratio(S['c'][k], S[v][k]):>8s}" for v in anchors)
        print(row)
    for v in [v for v in ("c", "e") if v in want and runs[v]]:
        pu = stats([i["purgatory"]["us"] for i in runs[v] if "purgatory" in i])
        p0 = runs[v][0].get("purgatory", {})
        print(f"\n({v}) rkexec purgatory (its own clock): {p0.get('segments')} segments, {p0.get('bytes')} bytes "
              f"hashed with {p0.get('engine')} in {fmt(pu, 'us')}"
              + (f" = {p0.get('bytes', 0) / pu[0]:.1f} MB/s" if pu and pu[0] else "")
              + (f"; hotplug image: {sorted({str(i.get('plan_hotplug')) for i in runs[v]})}" if a.kdump else ""))
    print(f"\n{sum(len(r) for r in runs.values())} boots ok, {failed} failed")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({variants[v][0]: runs[v] for v in want}, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
