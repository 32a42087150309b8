#!/usr/bin/env python3
"""Every benchmark figure of the README in one run, each next to its anchor
measured in the same run, as one table (text) and JSON.

  hand-off   rkexec -l / -e against Debian's kexec-tools -l and -i -l, same
             guest, same kernel 2 + initrd (tests/guest/bench_handoff.py),
             medians of N boots: arm64, amd64, ppc64el (bookworm kernels);
             riscv64 against rkexec -i (Debian ships no kexec-tools for it)
  kdump      the crash path: sysrq-c panic -> the capture kernel's first
             line, and the -p load, rkexec --no-hotplug -p against
             kexec-tools -p and -i -p (neither hotplug-aware), plus rkexec's
             default -p (hotplug-aware where the kernel has
             CONFIG_CRASH_HOTPLUG), trixie kernels (bench_handoff.py
             --kdump): arm64, amd64, ppc64el
  purgatory  guest instructions per byte (-icount, exact) per engine and
             arch, and hash wall time (bench-purgatory); next to the
             hand-off and kdump rows, the bytes rkexec's purgatory hashed in
             those boots times its instructions per byte
  load path  rkexec's own work natively (plan, no syscall) against reading
             the same files once + one SHA-256 pass (bench-load)
  sizes      the flat purgatory images, next to the kexec-tools purgatory
             embedded in Debian's kexec binary

    scripts/bench.py [--out DIR] [--boots N] [--arches ...] [--kdump-arches ...]
                     [--skip handoff,kdump,purgatory,load]

Run through scripts/bench.sh, which sets up, fetches and builds first.
Only QEMU loads kernels; nothing is loaded on this machine.
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("RKEXEC_CACHE") or os.path.join(ROOT, "cache")
REL = os.path.join(ROOT, "target", "release")


def run(cmd, **kw):
    print(f"bench: $ {' '.join(cmd)}", file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE, **kw).stdout


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    qemu = run(["qemu-system-aarch64", "--version"]).splitlines()[0]
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpu": model,
            "cores": os.cpu_count(), "kernel": platform.release(), "qemu": qemu}


def embedded_purgatory_size(blob):
    """Loaded bytes of the purgatory kexec-tools links into its kexec binary
    (an ELF relocatable, purgatory.ro, kept as a byte array): the sum of its
    SHF_ALLOC PROGBITS sections — what its loader copies into memory, the
    counterpart of our flat image (neither counts .bss)."""
    at = blob.find(b"\x7fELF\x02\x01", 1)
    while at > 0:
        e_type, = struct.unpack_from("<H", blob, at + 16)
        if e_type == 1:  # ET_REL
            e_shoff, = struct.unpack_from("<Q", blob, at + 40)
            e_shentsize, e_shnum = struct.unpack_from("<HH", blob, at + 58)
            total = 0
            for i in range(e_shnum):
                _, sh_type, sh_flags, _, _, sh_size = struct.unpack_from("<IIQQQQ", blob, at + e_shoff + i * e_shentsize)
                if sh_type == 1 and sh_flags & 2:  # SHT_PROGBITS, SHF_ALLOC
                    total += sh_size
            return total
        at = blob.find(b"\x7fELF\x02\x01", at + 1)
    return None


def sizes():
    info = run([os.path.join(REL, "rkexec"), "purgatory", "--info"])
    ours = {}
    arch = None
    for line in info.splitlines():
        k, _, v = line.partition(" ")
        if k == "arch":
            arch = v
        elif k in ("image_size", "mem_size") and arch:
            ours.setdefault(arch, {})[k] = int(v)
    theirs = {}
    for arch in ("arm64", "amd64", "ppc64el"):
        p = os.path.join(CACHE, arch, "kexec-tools", "sbin", "kexec")
        if os.path.isfile(p):
            theirs[arch] = embedded_purgatory_size(open(p, "rb").read())
    return {"rkexec": ours, "kexec_tools_purgatory_ro": theirs}


ROW = re.compile(r"^(?P<mode>.+?)\s{2,}(?P<engine>\S+)\s+(?P<ipb>[\d.]+)\s+(?P<guest>[\d.]+)\s+(?P<wall>[\d.]+)\s+(?P<x>[\d.]+)x$")


def purgatory(mib):
    out = run([os.path.join(REL, "bench-purgatory"), "--mib", str(mib)])
    rows = []
    arch = None
    for line in out.splitlines():
        m = re.match(r"^(aarch64|riscv64|x86_64|ppc64le) purgatory:", line)
        if m:
            arch = m.group(1)
        r = ROW.match(line.strip())
        if r and arch:
            rows.append({"arch": arch, "mode": r["mode"].strip(), "engine": r["engine"],
                         "insns_per_byte": float(r["ipb"]), "guest_ms": float(r["guest"]),
                         "wall_ms": float(r["wall"])})
        m = re.match(r"^\s+(purgatory sha-ni asm|sha2 crate, host dispatch)\s+(\d+) MB/s", line)
        if m:
            rows.append({"arch": "x86_64", "mode": m.group(1) + " (native)", "engine": "sha-ni",
                         "mb_per_s": int(m.group(2))})
    return {"mib": mib, "rows": rows, "text": out}


def load_path(runs):
    out_json = os.path.join(ROOT, "target", "bench", "load.json")
    os.makedirs(os.path.dirname(out_json), exist_ok=True)
    text = run([os.path.join(REL, "bench-load"), "--runs", str(runs), "--json", out_json])
    return {"rows": json.load(open(out_json)), "text": text}


# Median figures of a bench_handoff.py run, per variant.
HANDOFF_KEYS = ("handoff_s", "load_guest_s", "machine_kexec_to_k2_s", "panic_to_capture_s", "capture_init_s")


def handoff(arch, boots, kdump=False):
    """bench_handoff.py for one arch (--kdump: the crash path). A failed
    boot does not stop the run: the medians are of the boots that passed,
    and the failures are counted in the table."""
    tag = f"{'kdump' if kdump else 'handoff'}-{arch}"
    out_json = os.path.join(ROOT, "target", "bench", f"{tag}.json")
    os.makedirs(os.path.dirname(out_json), exist_ok=True)
    if os.path.exists(out_json):
        os.unlink(out_json)
    cmd = [sys.executable, os.path.join(ROOT, "tests", "guest", "bench_handoff.py"), "--arch", arch,
           "-n", str(boots), "--json", out_json] + (["--kdump"] if kdump else [])
    print(f"bench: $ {' '.join(cmd)}", file=sys.stderr, flush=True)
    p = subprocess.run(cmd, text=True, stdout=subprocess.PIPE)
    sys.stderr.write(p.stdout)
    m = re.search(r"^(\d+) boots ok, (\d+) failed$", p.stdout, re.M)
    failed = int(m.group(2)) if m else None
    if not os.path.exists(out_json):
        return {"medians": {}, "boots": {}, "text": p.stdout, "rc": p.returncode, "failed": failed}
    raw = json.load(open(out_json))
    med = {}
    for variant, boots_ in raw.items():
        med[variant] = {k: statistics.median([b[k] for b in boots_ if b.get(k) is not None])
                        for k in HANDOFF_KEYS if any(b.get(k) is not None for b in boots_)}
        pur = [b["purgatory"] for b in boots_ if b.get("purgatory")]
        if pur:
            med[variant]["purgatory"] = {"bytes": statistics.median(x["bytes"] for x in pur),
                                         "engine": pur[0]["engine"],
                                         "us": statistics.median(x["us"] for x in pur)}
        hp = {b.get("plan_hotplug") for b in boots_ if "plan_hotplug" in b}
        if hp:
            med[variant]["hotplug"] = sorted(hp, key=str)
    return {"medians": med, "boots": raw, "text": p.stdout, "rc": p.returncode, "failed": failed}


# Debian architecture -> bench-purgatory's name for it.
PURGATORY_ARCH = {"arm64": "aarch64", "amd64": "x86_64", "riscv64": "riscv64", "ppc64el": "ppc64le"}
# What QEMU 7.2's TCG does to each architecture's hashing (the wall clock
# figures), by the engine the guests' purgatory used.
TCG_NOTE = {
    "armv8-sha2": "TCG runs the SHA-256 instructions as helper calls",
    "vcrypto": "TCG runs vshasigmaw as a helper call",
    "zknh": "TCG runs the Zknh instructions as helper calls",
    "portable": "TCG's x86 CPUs have no SHA-NI",
}


def f2(x):
    return f"{x:.2f}" if x is not None else "-"


def q2(x, y):
    return f"{x / y:.2f}x" if x and y else "-"


def runs_note(arch, h):
    failed = h.get("failed")
    if h.get("rc") and not failed:
        return f"{arch}: bench_handoff.py exited {h['rc']} (no figures)"
    return f"{arch}: {failed} boot(s) failed, medians of the others" if failed else None


def purgatory_lines(r, section):
    """rkexec's purgatory in the hand-off/kdump boots: bytes, engine, its own
    clock (TCG wall) and, from the purgatory rows of this run, guest
    instructions per byte times those bytes."""
    rows = r.get("purgatory", {}).get("rows", [])
    out = []
    for arch, h in r[section].items():
        for variant, med in h["medians"].items():
            p = med.get("purgatory")
            if not p or " -i " in f" {variant} ":
                continue
            row = next((x for x in rows if x["arch"] == PURGATORY_ARCH[arch] and x["engine"] == p["engine"]
                        and "insns_per_byte" in x), None)
            ins = (f"x {row['insns_per_byte']:5.2f} insns/byte = {row['insns_per_byte'] * p['bytes'] / 1e6:5.0f} M "
                   "guest insns" if row else "(no -icount row for this engine)")
            out.append(f"  {arch:8s} {variant:24s} {p['bytes'] / 1e6:5.1f} MB with {p['engine']:10s} "
                       f"{p['us'] / 1e6:6.2f} s wall  {ins}  [{TCG_NOTE.get(p['engine'], '')}]")
    return out


def table(r):
    m = r["machine"]
    out = [f"rkexec benchmarks — {m['date']}, {m['cpu']}, {m['cores']} cores, {m['qemu']} (TCG)", ""]
    if "handoff" in r:
        out.append("hand-off (kexec -e -> kernel 2's first line), of it kernel-side (kernel 1's last line -> "
                   "kernel 2's first: relocation, purgatory, entry) and load (-l, guest clock), QEMU TCG, bookworm "
                   f"kernels (riscv64: trixie), medians of {r['boots']} boots, seconds; anchors measured in the "
                   "same run")
        out.append(f"{'':24s}{'kexec-tools -l':>16s}{'kexec-tools -i -l':>19s}{'rkexec -l':>12s}"
                   f"{'rkexec/-l':>11s}{'rkexec/-i':>11s}")
        notes = []
        for arch, h in r["handoff"].items():
            med = h["medians"]
            for key, label in (("handoff_s", "hand-off"), ("machine_kexec_to_k2_s", "kernel-side"),
                               ("load_guest_s", "load")):
                a = med.get("kexec -l", {}).get(key)
                b = med.get("kexec -i -l", {}).get(key) or med.get("rkexec -i -l", {}).get(key)
                c = med.get("rkexec -l", {}).get(key)
                if a is None and b is None and c is None and med:
                    continue  # e.g. no kernel-1 line on this arch's path
                out.append(f"{arch + ' ' + label:24s}{f2(a):>16s}{f2(b):>19s}{f2(c):>12s}"
                           f"{q2(c, a):>11s}{q2(c, b):>11s}")
            notes.append(runs_note(arch, h))
        if "riscv64" in r["handoff"]:
            out.append("riscv64: Debian ships no kexec-tools, so its -i column is rkexec -i -l (verification off)")
        out += [n for n in notes if n]
        pl = purgatory_lines(r, "handoff")
        if pl:
            out.append("rkexec's purgatory in those boots: bytes hashed, its own clock (TCG wall), guest instructions "
                       "(its -icount insns/byte below x bytes; kexec-tools' C purgatory has no such count here):")
            out += pl
        out.append("")
    if "kdump" in r:
        out.append("kdump: sysrq-c panic -> the capture kernel's first line, of it kernel-side (kernel 1's last line "
                   "-> the capture kernel's first) and load (-p, guest clock), QEMU TCG, trixie kernels, -smp 2, "
                   f"medians of {r['boots']} boots, seconds; anchors measured in the same run")
        out.append(f"{'':24s}{'kexec-tools -p':>16s}{'kexec-tools -i -p':>19s}{'rkexec --no-hotplug -p':>24s}"
                   f"{'rkexec -p':>11s}{'rkexec/-p':>11s}{'rkexec/-i':>11s}")
        notes = []
        for arch, h in r["kdump"].items():
            med = h["medians"]
            for key, label in (("panic_to_capture_s", "panic->capture"), ("machine_kexec_to_k2_s", "kernel-side"),
                               ("load_guest_s", "load -p")):
                a = med.get("kexec -p", {}).get(key)
                b = med.get("kexec -i -p", {}).get(key)
                c = med.get("rkexec --no-hotplug -p", {}).get(key)
                e = med.get("rkexec -p", {}).get(key)
                if a is None and b is None and c is None and e is None and med:
                    notes.append(f"{arch}: no {label} figure (kernel 1 prints no line of its own after the panic "
                                 "trace on this path: panic->capture is the kernel-side time)")
                    continue
                out.append(f"{arch + ' ' + label:24s}{f2(a):>16s}{f2(b):>19s}{f2(c):>24s}{f2(e):>11s}"
                           f"{q2(c, a):>11s}{q2(c, b):>11s}")
            hp_c = med.get("rkexec --no-hotplug -p", {}).get("hotplug")
            hp_e = med.get("rkexec -p", {}).get("hotplug")
            if hp_e is not None:
                notes.append(f"{arch}: rkexec -p loaded a {'hotplug-aware' if hp_e == [True] else 'fixed'} image "
                             f"(plan elfcorehdr.hotplug {hp_e}), --no-hotplug a "
                             f"{'fixed' if hp_c == [False] else 'hotplug-aware'} one ({hp_c})")
            elif hp_c is not None:
                notes.append(f"{arch}: the kernel has no CONFIG_CRASH_HOTPLUG: rkexec -p loads what --no-hotplug "
                             f"loads (plan elfcorehdr.hotplug {hp_c}); not measured twice")
            notes.append(runs_note(arch, h))
        out.append("kexec-tools -p runs without --hotplug; rkexec -p (its default) loads a hotplug-aware image where "
                   "the kernel has CONFIG_CRASH_HOTPLUG: elfcorehdr (and on ppc64el the DTB) excluded from the "
                   "digest and structure-checked; rkexec/ ratios use the --no-hotplug column (like with like)")
        out += [n for n in notes if n]
        pl = purgatory_lines(r, "kdump")
        if pl:
            out.append("rkexec's purgatory in those boots (as above):")
            out += pl
        out.append("")
    if "purgatory" in r:
        out.append(f"purgatory verification in the bare-metal harness, {r['purgatory']['mib']} MiB of segments "
                   "(guest instructions per byte under -icount are exact; TCG runs SHA instructions as helper "
                   "calls, so their wall time overstates them)")
        for row in r["purgatory"]["rows"]:
            if "insns_per_byte" in row:
                out.append(f"  {row['arch']:8s} {row['mode']:46s} {row['engine']:11s} "
                           f"{row['insns_per_byte']:6.2f} insns/byte {row['wall_ms']:8.1f} ms wall")
            else:
                out.append(f"  {row['arch']:8s} {row['mode']:46s} {row['engine']:11s} {row['mb_per_s']:6d} MB/s")
        out.append("")
    if "load" in r:
        out.append("load path, natively (rkexec plan: read, parse, place, hash; no syscall) against the floor "
                   "(read the same files once + one SHA-256 pass)")
        for row in r["load"]["rows"]:
            out.append(f"  {row['inputs']:30s} floor {row['floor_ms']:7.1f} ms  rkexec {row['plan_ms']:7.1f} ms  "
                       f"{row['ratio']:.2f}x   peak RSS {row['plan_rss_mib']:.1f} MiB for {row['inputs_mib']} MiB of inputs "
                       f"({row['plan_rss_mib'] - row['inputs_mib']:+.1f} MiB)")
        out.append("")
    if "handoff" in r or "kdump" in r:
        out.append("TCG distorts the wall clock of hashing: QEMU 7.2 runs arm64's SHA-256 instructions, ppc64's "
                   "vshasigmaw and riscv64's Zknh as helper calls, and its x86 CPUs have no SHA-NI (portable code "
                   "there). So rkexec's hand-off and kdump times overstate what its verification costs on hardware, "
                   "while kexec-tools' C SHA-256 runs as plain instructions (on arm64 with caches off, which TCG "
                   "does not model). Guest instructions (-icount) are the exact measure: the insns/byte rows below.")
        out.append("")
    s = r["sizes"]
    out.append("flat purgatory images (bytes): " + ", ".join(
        f"{a} {v['image_size']}" for a, v in s["rkexec"].items())
        + "; kexec-tools' purgatory (loaded bytes, Debian bookworm's 2.0.25): "
        + ", ".join(f"{a} {v}" for a, v in s["kexec_tools_purgatory_ro"].items() if v))
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "bench"))
    ap.add_argument("--boots", type=int, default=3, help="boots per hand-off variant (default 3)")
    ap.add_argument("--mib", type=int, default=64, help="purgatory bench segment size (default 64)")
    ap.add_argument("--arches", default="arm64,amd64,riscv64,ppc64el",
                    help="hand-off arches (default arm64,amd64,riscv64,ppc64el)")
    ap.add_argument("--kdump-arches", default="arm64,amd64,ppc64el",
                    help="kdump arches (default arm64,amd64,ppc64el: those Debian ships kexec-tools for)")
    ap.add_argument("--skip", default="", help="comma list of handoff,kdump,purgatory,load")
    a = ap.parse_args(argv)
    skip = set(filter(None, a.skip.split(",")))
    t0 = time.monotonic()
    r = {"machine": machine(), "boots": a.boots, "sizes": sizes()}
    if "load" not in skip:
        r["load"] = load_path(5)
    if "purgatory" not in skip:
        r["purgatory"] = purgatory(a.mib)
    if "handoff" not in skip:
        r["handoff"] = {arch: handoff(arch, a.boots) for arch in a.arches.split(",") if arch}
    if "kdump" not in skip:
        r["kdump"] = {arch: handoff(arch, a.boots, kdump=True) for arch in a.kdump_arches.split(",") if arch}
    r["wall_s"] = round(time.monotonic() - t0, 1)
    text = table(r) + f"\n(the whole run took {r['wall_s']:.0f} s)\n"
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "bench.txt"), "w") as f:
        f.write(text)
    with open(os.path.join(a.out, "bench.json"), "w") as f:
        json.dump({k: v for k, v in r.items()}, f, indent=1, default=str)
    print(text)
    print(f"bench: wrote {a.out}/bench.txt and bench.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
