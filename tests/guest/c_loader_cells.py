#!/usr/bin/env python3
"""arm64 QEMU cells for examples/c-loader: a loader written in C kexecs kernel 2 through our purgatory.

Kernel 1 (Debian bookworm Image) boots the kexec_matrix initramfs (busybox,
/kernel2, /initrd2) plus the static aarch64 C loader (/sbin/c-loader) and the
flat aarch64 purgatory (/purgatory-aarch64.bin). Its /cell.sh prints
KEXEC-EXEC-START and runs the C loader, which plans, prints its plan (one
`c-loader: segment N kind=... mem=... memsz=... sha256=...` line per
segment), calls kexec_load and reboot(LINUX_REBOOT_CMD_KEXEC).

  c-loader-boot    passes on kexec_matrix.judge (kernel 2's KERNEL2-INIT-OK
                   line with the run's marker, the purgatory's `verified`
                   summary between KEXEC-EXEC-START and kernel 2's first line,
                   EL, same kernel) AND on the purgatory's per-segment lines
                   naming exactly the segments the C loader planned.
  c-loader-refuse  --corrupt-after-digest SEG: the purgatory prints REFUSED
                   for segment SEG at the planned address, its `expected`
                   digest is the C loader's, `actual` differs, it halts, and
                   no kernel boots after KEXEC-EXEC-START.

    examples/c-loader/build.sh aarch64        (the runner does this itself)
    tests/guest/c_loader_cells.py [--cells c-loader-boot] [--timeout 240] [-v]

The flat purgatory comes from `examples/c-loader/build.sh purgatory OUT`
(the one place that knows where the image is). This module only starts
QEMU; the C loader's kexec_load and reboot run inside the guest.
Library use of kexec_matrix: Loader, Cell, build_base, build_cell_initrd,
judge, Result; to be folded into the unified guest driver.
"""
import argparse
import concurrent.futures
import dataclasses
import os
import re
import secrets
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import kexec_matrix as km  # noqa: E402
import qemu_kexec  # noqa: E402

BUILD_SH = os.path.join(ROOT, "examples", "c-loader", "build.sh")
GUEST_LOADER = "/sbin/c-loader"
GUEST_PURGATORY = "/purgatory-aarch64.bin"


@dataclasses.dataclass(frozen=True)
class CCell:
    name: str
    doc: str
    corrupt: int = None  # --corrupt-after-digest SEG: the purgatory must refuse SEG


CELLS = (
    CCell("c-loader-boot", "C loader: kernel 2 + initrd 2 + the running DTB through our purgatory, kernel 2's init runs"),
    CCell("c-loader-refuse", "C loader with --corrupt-after-digest 1: the purgatory refuses the initrd, halts",
          corrupt=1),
)
CELL_BY_NAME = {c.name: c for c in CELLS}

PLAN_RE = re.compile(r"c-loader: segment (\d+) kind=(\w+) mem=(0x[0-9a-f]+) memsz=(0x[0-9a-f]+) "
                     r"bufsz=(0x[0-9a-f]+)(?: sha256=([0-9a-f]{64}))?")
PURG_SEG_RE = re.compile(r"purgatory: segment (\d+) \((\w+)\) (0x[0-9a-f]+)\+(0x[0-9a-f]+) sha256 ok")
PURG_REFUSED_RE = re.compile(r"purgatory: REFUSED: segment (\d+) \((\w+)\) (0x[0-9a-f]+)\+(0x[0-9a-f]+) "
                             r"sha256 mismatch")
PURG_DIGEST_RE = re.compile(r"purgatory:\s+(expected|actual)\s+([0-9a-f]{64})")
REFUSE_STOP_RE = (r"purgatory: halted|purgatory: resetting|KERNEL2-INIT-OK|KEXEC-EXEC-FAILED|CELL-SCRIPT-|"
                  r"Kernel panic - not syncing")


def build_c_loader():
    """The static aarch64 C loader (examples/c-loader/build.sh aarch64)."""
    out = subprocess.run(["bash", BUILD_SH, "aarch64"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"examples/c-loader/build.sh aarch64 failed:\n{out.stdout}{out.stderr}")
    return out.stdout.strip().splitlines()[-1]


def flat_purgatory(dest):
    """The flat aarch64 purgatory image, copied to dest by build.sh's helper."""
    out = subprocess.run(["bash", BUILD_SH, "purgatory", dest], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"examples/c-loader/build.sh purgatory failed:\n{out.stdout}{out.stderr}")
    return dest


def make_loader(c_loader, purgatory):
    return km.Loader("c-loader", GUEST_LOADER, adds=((c_loader, GUEST_LOADER), (purgatory, GUEST_PURGATORY)),
                     purgatory=True)


def cell_script(cell, marker):
    corrupt = f" --corrupt-after-digest {cell.corrupt}" if cell.corrupt is not None else ""
    return "\n".join([
        f"M={marker}",
        f'do_exec {GUEST_LOADER} --image /kernel2 --initrd /initrd2 --purgatory {GUEST_PURGATORY}{corrupt} '
        f'--append="{km.K2_APPEND} MARKER=$M"',
        "return 1",
    ]) + "\n"


def plan_of(T, end):
    """{index: (kind, mem, memsz, sha256)} from the C loader's plan lines."""
    plan = {}
    for t in T[:end]:
        m = PLAN_RE.search(t)
        if m:
            plan[int(m.group(1))] = (m.group(2), int(m.group(3), 16), int(m.group(4), 16), m.group(6))
    return plan


def judge_boot(cell, loader, marker, lines, min_hashed):
    ok, reason, info = km.judge(km.Cell(cell.name, cell.doc), loader, marker, lines, min_hashed)
    if not ok:
        return ok, reason, info
    T = [l.text for l in lines]
    i_exec = km._find(lines, r"^KEXEC-EXEC-START$")
    i_boot = km._find(lines, qemu_kexec.KERNEL_BOOT_RE.pattern, i_exec + 1)
    plan = plan_of(T, i_boot)
    listed = {i: p for i, p in plan.items() if p[3]}  # the purgatory itself has no digest line
    if [p[0] for _, p in sorted(listed.items())] != ["kernel", "initrd", "dtb"]:
        return False, f"the C loader's plan lists {sorted(listed.items())}, expected kernel, initrd, dtb", info
    seen = {}
    for t in T[i_exec:i_boot]:
        m = PURG_SEG_RE.search(t)
        if m:
            seen[int(m.group(1))] = (m.group(2), int(m.group(3), 16), int(m.group(4), 16))
    want = {i: p[:3] for i, p in listed.items()}
    if seen != want:
        def show(segs):
            return ", ".join(f"{i} {k} {m:#x}+{n:#x}" for i, (k, m, n) in sorted(segs.items()))
        return False, f"the purgatory verified [{show(seen)}], the C loader planned [{show(want)}]", info
    if info["purgatory"]["segments"] != len(listed):
        return False, f"purgatory verified {info['purgatory']['segments']} segments, C loader listed {len(listed)}", info
    if km._find(lines, r"c-loader: kexec_load: \d+ segments loaded", i_exec, i_boot) is None:
        return False, "no 'c-loader: kexec_load: N segments loaded' line before kernel 2", info
    info["purgatory_lines"] = [t.strip() for t in T[i_exec:i_boot] if "purgatory: " in t]
    return True, "", info


def judge_refuse(cell, marker, lines):
    T = [l.text for l in lines]
    info = {}
    i_exec = km._find(lines, r"^KEXEC-EXEC-START$")
    if i_exec is None:
        return False, "kernel 1 never reached KEXEC-EXEC-START", info
    i_fail = km._find(lines, r"^KEXEC-EXEC-FAILED", i_exec)
    if i_fail is not None:
        err = [t for t in T[i_exec:i_fail] if t.startswith("c-loader: ")]
        return False, f"the C loader returned: {T[i_fail]} ({err[-1] if err else 'no c-loader line'})", info
    want = f"flipped bit 0 of byte 0x[0-9a-f]+ of segment {cell.corrupt} \\("
    if km._find(lines, want, i_exec) is None:
        return False, f"the C loader never said it corrupted segment {cell.corrupt}", info
    i_ref = km._find(lines, PURG_REFUSED_RE.pattern, i_exec)
    if i_ref is None:
        anyp = [t for t in T[i_exec:] if "purgatory:" in t]
        return False, ("no 'purgatory: REFUSED: segment N ... sha256 mismatch' line"
                       + (f" (purgatory said: {anyp[-1].strip()})" if anyp else " (no purgatory output)")), info
    m = PURG_REFUSED_RE.search(T[i_ref])
    refused = (int(m.group(1)), m.group(2), int(m.group(3), 16), int(m.group(4), 16))
    plan = plan_of(T, i_ref)
    if cell.corrupt not in plan:
        return False, f"no C loader plan line for segment {cell.corrupt}", info
    kind, mem, memsz, sha = plan[cell.corrupt]
    if refused != (cell.corrupt, kind, mem, memsz):
        return False, (f"the purgatory refused segment {refused[0]} ({refused[1]}) {refused[2]:#x}+{refused[3]:#x}, "
                       f"the C loader corrupted {cell.corrupt} ({kind}) {mem:#x}+{memsz:#x}"), info
    digests = dict(PURG_DIGEST_RE.search(t).groups() for t in T[i_ref + 1:i_ref + 4] if PURG_DIGEST_RE.search(t))
    if digests.get("expected") != sha:
        return False, f"purgatory expected {digests.get('expected')}, the C loader's digest is {sha}", info
    if not digests.get("actual") or digests["actual"] == sha:
        return False, f"purgatory's actual digest {digests.get('actual')} should differ from {sha}", info
    oks = {int(x.group(1)) for x in (PURG_SEG_RE.search(t) for t in T[i_exec:i_ref]) if x}
    if oks != set(range(cell.corrupt)):
        return False, f"segments verified before the refusal: {sorted(oks)}, expected 0..{cell.corrupt - 1}", info
    if km._find(lines, r"purgatory: not entering the kernel", i_ref) is None:
        return False, "the purgatory never said 'not entering the kernel'", info
    i_halt = km._find(lines, r"purgatory: halted", i_ref)
    if i_halt is None:
        return False, "the purgatory did not halt", info
    info["purgatory_lines"] = [t.strip() for t in T[i_exec:i_halt + 1] if "purgatory: " in t]
    i_boot = km._find(lines, qemu_kexec.KERNEL_BOOT_RE.pattern, i_exec + 1)
    if i_boot is not None:
        return False, f"a kernel booted after the refusal: {T[i_boot].strip()}", info
    if km._find(lines, r"KERNEL2-INIT-OK", i_exec) is not None:
        return False, "kernel 2's init ran", info
    info["summary"] = (f"purgatory refused segment {cell.corrupt} ({kind}) {mem:#x}+{memsz:#x}, expected = C loader's "
                       f"digest {sha[:16]}..., halted, no kernel after KEXEC-EXEC-START")
    return True, "", info


def run_cell(cell, loader, cache, rundir, timeout, echo=False):
    marker = f"{cell.name}-{secrets.token_hex(6)}"
    cdir = os.path.join(rundir, cell.name)
    os.makedirs(cdir, exist_ok=True)
    log = os.path.join(cdir, "console.log")
    t0 = time.monotonic()
    kernel, base = km.build_base(cache, "bookworm", (loader,))
    script = cell_script(cell, marker)
    with open(os.path.join(cdir, "cell.sh"), "w") as f:
        f.write(script)
    initrd = km.build_cell_initrd(base, script, os.path.join(cdir, "initrd1.cpio.gz"))
    cfg = km.Cell(cell.name, cell.doc)
    q = qemu_kexec.Qemu(kernel, initrd, cfg.k1_append(marker), machine=cfg.machine, cpu=cfg.cpu, echo=echo,
                        log_path=log)
    err = None
    with q:
        try:
            hit = q.wait_for(km.STOP_RE if cell.corrupt is None else REFUSE_STOP_RE, timeout)
            if hit.text.startswith("KERNEL2-INIT-OK"):
                try:
                    q.wait_exit(5)
                except qemu_kexec.QemuError:
                    pass
            else:
                time.sleep(3.0)  # whatever follows a refusal or failure must show up too
        except qemu_kexec.QemuError as e:
            err = str(e)
    os.unlink(initrd)
    lines = list(q.lines)
    initrd2 = km.build_initrd2(cache, os.path.join(cache, "kexec-matrix"))
    if cell.corrupt is None:
        ok, reason, info = judge_boot(cell, loader, marker, lines, os.path.getsize(kernel) + os.path.getsize(initrd2))
    else:
        ok, reason, info = judge_refuse(cell, marker, lines)
    if err and not ok:
        reason = f"{reason} [{err}]"
    info["marker"] = marker
    window = []
    i = km._find(lines, r"^KEXEC-EXEC-START$")
    if not ok and i is not None:
        window = lines[i:i + 30]
    return km.Result(cell.name, loader.name, ok, reason, info, time.monotonic() - t0, log, lines[-40:], window)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", help=f"comma-separated subset of: {','.join(CELL_BY_NAME)}")
    ap.add_argument("--c-loader", help="static aarch64 C loader (default: build it with examples/c-loader/build.sh)")
    ap.add_argument("--purgatory", help="flat aarch64 purgatory (default: examples/c-loader/build.sh purgatory)")
    ap.add_argument("--jobs", "-j", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=240, help="per cell, seconds (default 240)")
    ap.add_argument("--cache", default=km.DEFAULT_CACHE)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo every console line")
    a = ap.parse_args(argv)
    if a.list:
        for c in CELLS:
            print(f"{c.name:16s} {c.doc}")
        return 0
    cells = CELLS
    if a.cells:
        names = [n.strip() for n in a.cells.split(",") if n.strip()]
        bad = [n for n in names if n not in CELL_BY_NAME]
        if bad:
            ap.error(f"unknown cell(s) {','.join(bad)}; known: {','.join(CELL_BY_NAME)}")
        cells = [CELL_BY_NAME[n] for n in names]
    workdir = os.path.join(a.cache, "kexec-matrix")
    try:
        c_loader = a.c_loader or build_c_loader()
        os.makedirs(os.path.join(workdir, "c-loader"), exist_ok=True)
        purgatory = a.purgatory or flat_purgatory(os.path.join(workdir, "c-loader", "purgatory-aarch64.bin"))
        for p in (c_loader, purgatory):
            if not os.path.isfile(p):
                raise FileNotFoundError(f"{p} missing")
        loader = make_loader(c_loader, purgatory)
        km.build_base(a.cache, "bookworm", (loader,))
    except (OSError, RuntimeError, ValueError) as e:
        print(f"c_loader_cells: {e}", file=sys.stderr)
        return 2
    km.prune_runs(workdir)
    rundir = os.path.join(workdir, "runs", time.strftime("%Y%m%d-%H%M%S") + f"-c-loader-{os.getpid()}")
    os.makedirs(rundir, exist_ok=True)
    print(f"c_loader_cells: {len(cells)} cell(s), {a.jobs} job(s), logs in {rundir}", flush=True)
    t0 = time.monotonic()
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        futs = {ex.submit(run_cell, c, loader, a.cache, rundir, a.timeout, a.verbose): c for c in cells}
        for fut in concurrent.futures.as_completed(futs):
            c = futs[fut]
            try:
                r = fut.result()
            except Exception as e:  # noqa: BLE001 -- a harness bug must not hide the other cell
                r = km.Result(c.name, loader.name, False, f"harness error: {e!r}", {}, 0.0, "", [])
            results.append(r)
            print(r.line(), flush=True)
            for line in r.info.get("purgatory_lines", []) if r.ok else []:
                print(f"  {line}", flush=True)
    npass = sum(r.ok for r in results)
    print(f"c_loader_cells: {time.monotonic() - t0:.0f} s wall", flush=True)
    print(f"{npass} passed, {len(results) - npass} failed", flush=True)
    return 0 if npass == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
