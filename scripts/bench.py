#!/usr/bin/env python3
"""Every benchmark figure of the README in one run, each next to its anchor
measured in the same run, as one table (text) and JSON.

  hand-off   rkexec -l / -e against Debian's kexec-tools -l and -i -l, same
             guest, same kernel 2 + initrd (tests/guest/bench_handoff.py),
             medians of N boots: arm64, amd64; riscv64 against rkexec -i
             (Debian ships no kexec-tools for riscv64)
  purgatory  guest instructions per byte (-icount, exact) per engine and
             arch, and hash wall time (bench-purgatory)
  load path  rkexec's own work natively (plan, no syscall) against reading
             the same files once + one SHA-256 pass (bench-load)
  sizes      the flat purgatory images, next to the kexec-tools purgatory
             embedded in Debian's kexec binary

    scripts/bench.py [--out DIR] [--boots N] [--skip handoff,purgatory,load]

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
    for arch in ("arm64", "amd64"):
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
        m = re.match(r"^(aarch64|riscv64|x86_64) purgatory:", line)
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


def handoff(arch, boots):
    out_json = os.path.join(ROOT, "target", "bench", f"handoff-{arch}.json")
    text = run([sys.executable, os.path.join(ROOT, "tests", "guest", "bench_handoff.py"), "--arch", arch,
                "-n", str(boots), "--json", out_json])
    raw = json.load(open(out_json))
    med = {}
    for variant, boots_ in raw.items():
        med[variant] = {k: statistics.median([b[k] for b in boots_ if b.get(k) is not None])
                        for k in ("handoff_s", "load_guest_s") if any(b.get(k) is not None for b in boots_)}
    return {"medians": med, "boots": raw, "text": text}


def table(r):
    m = r["machine"]
    out = [f"rkexec benchmarks — {m['date']}, {m['cpu']}, {m['cores']} cores, {m['qemu']} (TCG)", ""]
    if "handoff" in r:
        out.append("hand-off (kexec -e -> kernel 2's first line) and load, QEMU TCG, medians of "
                   f"{r['boots']} boots, seconds; anchors measured in the same run")
        out.append(f"{'':24s}{'kexec-tools -l':>16s}{'kexec-tools -i -l':>19s}{'rkexec -l':>12s}"
                   f"{'rkexec/-l':>11s}{'rkexec/-i':>11s}")
        for arch, h in r["handoff"].items():
            med = h["medians"]
            for key, label in (("handoff_s", "hand-off"), ("load_guest_s", "load")):
                a = med.get("kexec -l", {}).get(key)
                b = med.get("kexec -i -l", {}).get(key) or med.get("rkexec -i -l", {}).get(key)
                c = med.get("rkexec -l", {}).get(key)
                f = lambda x: f"{x:.2f}" if x is not None else "-"  # noqa: E731
                q = lambda x, y: f"{x / y:.2f}x" if x and y else "-"  # noqa: E731
                out.append(f"{arch + ' ' + label:24s}{f(a):>16s}{f(b):>19s}{f(c):>12s}{q(c, a):>11s}{q(c, b):>11s}")
        if "riscv64" in r["handoff"]:
            out.append("riscv64: Debian ships no kexec-tools, so its -i column is rkexec -i -l (verification off)")
        out.append("")
    if "purgatory" in r:
        out.append(f"purgatory verification, {r['purgatory']['mib']} MiB of segments (guest instructions per byte "
                   "are exact; TCG runs SHA instructions as helpers, so wall time understates them)")
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
    s = r["sizes"]
    out.append("flat purgatory images (bytes): " + ", ".join(
        f"{a} {v['image_size']}" for a, v in s["rkexec"].items())
        + "; kexec-tools' purgatory (loaded bytes, Debian bookworm): "
        + ", ".join(f"{a} {v}" for a, v in s["kexec_tools_purgatory_ro"].items() if v))
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "bench"))
    ap.add_argument("--boots", type=int, default=3, help="boots per hand-off variant (default 3)")
    ap.add_argument("--mib", type=int, default=64, help="purgatory bench segment size (default 64)")
    ap.add_argument("--arches", default="arm64,amd64,riscv64", help="hand-off arches (default arm64,amd64,riscv64)")
    ap.add_argument("--skip", default="", help="comma list of handoff,purgatory,load")
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
