#!/usr/bin/env python3
"""Full-kexec QEMU tier: real Debian kernels kexec real Debian kernels, on
every architecture of guest_arch.ARCHES (arm64, amd64, riscv64), in one driver.

For every cell QEMU boots kernel 1 (the Debian cloud kernel of the cell's
suite) with an initramfs holding busybox, the loader under test (rkexec, or
Debian's kexec-tools), /kernel2 (the same kernel) and /initrd2; kernel 1's
/init sources the cell's /cell.sh, which loads kernel 2 (or a capture
kernel), prints KEXEC-EXEC-START and executes it (or crashes). The big part
of that initramfs is built once per (arch, suite, loaders) and cached by
content hash under cache/guest-tier/<arch>/; /cell.sh is a tiny second
archive appended per run. Each run draws a fresh random marker per cell
that only kernel 2's command line carries, so stale logs or a loader that
ignores --append cannot pass.

A cell passes only on what the new kernel and our purgatory printed, judged
against contracts (guest_contracts: the purgatory's line templates, the
loader's plan, the -S status rule). Cells, kinds and judges: guest_cells,
crash_hotplug_x86 and crash_hotplug_ppc (crash hotplug scenarios), c_loader_cells (the C loader),
dropin_cells (rkexec as /sbin/kexec with callers' argv, UKI, vmlinux ELF),
ppc_cells (ppc64el: Petitboot's --dtb on a second vterm, 4 CPUs, -S/-u/-s),
guest_judges; host tests of the judges: test_judges.py.

    scripts/fetch-fixtures.sh --arch all
    cargo build --release --locked --target <guest target> -p loader-host -p guest-tools --bin rkexec --bin vmcore-check --bin fdt-edit
    tests/guest/kexec_matrix.py [--arch arm64|amd64|all] [--loader rkexec|kexec-tools]
                                [--cells el1,x86-kdump,'kdump-*'] [--jobs 2] [--timeout 180]
                                [-v] [--json out.json] [--list]

Prints one `PASS name (...)` or `FAIL name: reason` block per cell as it
ends (with its wall time), the time per architecture, then `N passed, M
failed`. A cell whose kernel 1 never reached its /init (QEMU or the
kernel's own boot stalled; no loader ran) runs once more, printing `RERUN
name: ...`; the rerun alone decides it. Exit 0 when every cell passed, 1 when one failed, 2 on a setup
error. Nothing here loads or executes a kernel on the host: only QEMU runs.
"""
import argparse
import concurrent.futures
import dataclasses
import fnmatch
import json
import os
import secrets
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep the tree free of __pycache__
sys.path.insert(0, HERE)
import c_loader_cells as c_loader  # noqa: E402
import crash_hotplug_ppc as hotplug_ppc  # noqa: E402
import crash_hotplug_x86 as hotplug  # noqa: E402
import dropin_cells as dropin  # noqa: E402
import guest_cells as gcl  # noqa: E402
import guest_contracts as gc  # noqa: E402
import guest_images as gi  # noqa: E402
import ppc_cells  # noqa: E402
import qemu_kexec  # noqa: E402
import systemd_cells as systemd  # noqa: E402
from guest_arch import ARCHES  # noqa: E402
from guest_judges import Transcript, Verdict  # noqa: E402

KINDS = {**gcl.KINDS, **hotplug.KINDS, **hotplug_ppc.KINDS, **c_loader.KINDS, **dropin.KINDS, **ppc_cells.KINDS,
         **systemd.KINDS}
# Rough cost (TCG seconds) by kind, to start the long cells first.
# The systemd cells go last: their Debian images build in the background
# (mostly downloads) while the others run (systemd_cells.prebuild).
COST = {"systemd": 1, "hotplug": 60, "hotplug-ppc": 80, "kdump": 30, "kexec": 20, "uki": 20, "c-loader": 20,
        "lockdown": 15, "ima": 20, "vterm": 20}


def all_cells():
    return (gcl.grid() + hotplug.cells() + hotplug_ppc.cells() + c_loader.cells() + dropin.cells() + ppc_cells.cells()
            + systemd.cells())


@dataclasses.dataclass
class Result:
    cell: str
    arch: str
    loader: str
    ok: bool
    reason: str
    info: dict
    bits: list
    elapsed: float
    log: str
    tail: list
    window: list = dataclasses.field(default_factory=list)  # from the hand-off on, on a purgatory failure
    k1_user_space: bool = True  # kernel 1 reached its /init (INIT1-START)

    def line(self):
        if self.ok:
            return f"PASS {self.cell} ({', '.join(self.bits + [f'{self.elapsed:.0f} s'])})"
        tail = "\n".join("    " + str(l) for l in self.tail)
        out = (f"FAIL {self.cell}: {self.reason} ({self.elapsed:.0f} s)\n"
               f"  last {len(self.tail)} console lines ({self.log}):\n{tail}")
        if self.window:
            out += "\n  console from the hand-off on:\n" + "\n".join("    " + str(l) for l in self.window)
        return out

    def as_json(self):
        return dataclasses.asdict(self) | {"tail": [str(l) for l in self.tail],
                                            "window": [str(l) for l in self.window]}


def run_cell(cell, loader, images, rundir, timeout=180, echo=False, load_flags="", loaders_in_image=None):
    """Build the cell's initramfs, boot it, let its kind wait and judge.
    Returns a Result."""
    arch = ARCHES[cell.arch]
    kind = KINDS[cell.kind]
    cdir = os.path.join(rundir, f"{loader.name}-{cell.name}")
    os.makedirs(cdir, exist_ok=True)
    run = gcl.CellRun(cell, arch, arch.mode(cell.mode), loader, f"{cell.name}-{secrets.token_hex(6)}",
                      images.cache, load_flags, dir=cdir)
    log = os.path.join(cdir, "console.log")
    t0 = time.monotonic()
    if hasattr(kind, "boot"):  # a kind that boots its own disk image (systemd_cells)
        return run_booted(run, kind, images, log, t0, timeout, echo)
    kernel, base = images.base(arch, cell.suite, loaders_in_image or (loader,))
    run.kernel_path = kernel
    if cell.kernel2:
        run.kernel2_file = run.kernel_path = os.path.join(arch.arch_dir(images.cache), cell.kernel2)
    kind.prepare(run, images)
    adds = run.adds + gcl.extra_files(cell)
    if run.kernel2_file:
        adds += ((run.kernel2_file, "/kernel2.cell"),)
    script = kind.script(run)
    with open(os.path.join(cdir, "cell.sh"), "w") as f:
        f.write(script)
    initrd = gi.build_cell_initrd(base, script, os.path.join(cdir, "initrd1.cpio.gz"), adds)
    q = qemu_kexec.Qemu(kernel, initrd, kind.k1_append(run), echo=echo, log_path=log, qmp=kind.qmp,
                        **(arch.qemu_kwargs(run.mode) | kind.qemu_opts(run)))
    err = None
    with q:
        try:
            kind.wait(run, q, timeout)
        except (qemu_kexec.QemuError, qemu_kexec.QmpError, OSError) as e:
            err = f"{type(e).__name__}: {e}"
    for p in [initrd, *run.scratch]:  # tens of MB each; the cached base stays
        try:
            os.unlink(p)
        except OSError:
            pass
    tr = Transcript(list(q.lines))
    run.consoles = {name: list(c.lines) for name, c in q.consoles.items()}
    v = kind.judge(run, tr)
    if err and not v.ok:
        v = Verdict(False, f"{v.reason} [{err}]", v.info, v.bits)
    v.info["marker"] = run.marker
    window = []
    if not v.ok and "purgatory" in v.reason:
        i = tr.find(r"^KEXEC-EXEC-START$|^KDUMP-PANIC-START$")
        if i is not None and i < len(tr.lines) - 40:
            window = tr.lines[i:i + 30]
    return Result(cell.name, arch.name, loader.name, v.ok, v.reason, v.info, v.bits, time.monotonic() - t0, log,
                  tr.lines[-60:], window, k1_user_space=k1_reached_init(tr))


def run_booted(run, kind, images, log, t0, timeout, echo):
    """run_cell for a kind whose kernel 1 boots a disk image: kind.boot gives
    kernel, initrd, command line and extra QEMU arguments."""
    arch, cell = run.arch, run.cell
    kernel, initrd, append, args = kind.boot(run, images)
    q = qemu_kexec.Qemu(kernel, initrd, append, echo=echo, log_path=log,
                        **(arch.qemu_kwargs(run.mode) | {"extra_args": (*arch.qemu_extra, *args)}
                           | kind.qemu_opts(run)))
    err = None
    with q:
        try:
            kind.wait(run, q, timeout)
        except (qemu_kexec.QemuError, OSError) as e:
            err = f"{type(e).__name__}: {e}"
    for p in run.scratch:
        try:
            os.unlink(p)
        except OSError:
            pass
    tr = Transcript(list(q.lines))
    v = kind.judge(run, tr)
    if err and not v.ok:
        v = Verdict(False, f"{v.reason} [{err}]", v.info, v.bits)
    v.info["marker"] = run.marker
    return Result(cell.name, arch.name, run.loader.name, v.ok, v.reason, v.info, v.bits, time.monotonic() - t0, log,
                  tr.lines[-60:], k1_user_space=True)


def k1_reached_init(tr):
    """Did kernel 1 start its /init? A cell that failed before that failed
    before any loader ran: QEMU or kernel 1's own boot stalled (seen once
    under TCG: a riscv64 kernel 1 stopped at "smp: Bringing up secondary
    CPUs ..." on a loaded host)."""
    return tr.find(r"^INIT1-START") is not None


def run_cell_rerun_stalled(cell, loader, images, rundir, timeout=180, echo=False):
    """run_cell, and once more when kernel 1 stalled before its /init (the
    loader never ran, so nothing of ours was judged). The rerun is judged
    alone and says that it is one; its first log is kept beside it."""
    r = run_cell(cell, loader, images, rundir, timeout, echo)
    if r.ok or r.k1_user_space:
        return r
    stalled_at = str(r.tail[-1]) if r.tail else "no console output"
    first_log = r.log.replace("console.log", "console-stalled.log")
    try:
        os.replace(r.log, first_log)
    except OSError:
        first_log = "(not kept)"
    print(f"RERUN {cell.name}: kernel 1 stalled before its /init, at: {stalled_at.strip()} ({first_log})", flush=True)
    r2 = run_cell(cell, loader, images, rundir, timeout, echo)
    r2.bits = r2.bits + ["rerun: kernel 1's first boot stalled before /init"]
    if not r2.ok:
        r2.reason += " (rerun; kernel 1's first boot stalled before /init)"
    return r2


def select(cells, arches, loader, names):
    """The cells to run: by name, alias or glob (--cells), else the default set."""
    pool = [c for c in cells if c.arch in arches and loader in c.loaders and loader in ARCHES[c.arch].loaders]
    if not names:
        return [c for c in pool if c.default], []
    picked, unknown = [], []
    for n in names:
        hit = [c for c in pool if fnmatch.fnmatchcase(c.name, n) or n in c.aliases]
        if not hit:
            unknown.append(n)
        picked += [c for c in hit if c not in picked]
    return picked, unknown


def main(argv=None, prog=None):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="all", choices=("all", *ARCHES), help="architecture(s) (default all)")
    ap.add_argument("--loader", default="rkexec", choices=gi.LOADERS)
    ap.add_argument("--cells", help="comma-separated names, former names or globs (see --list)")
    ap.add_argument("--jobs", "-j", type=int, default=2, help="cells run in parallel (default 2)")
    ap.add_argument("--timeout", type=float, default=180, help="per cell, seconds (default 180)")
    ap.add_argument("--cache", default=gi.DEFAULT_CACHE)
    ap.add_argument("--rkexec", help="static rkexec for the guest (one --arch only; default: "
                    "target/<guest target>/release/rkexec)")
    ap.add_argument("--vmcore-check", help="static vmcore-check for the crash cells (one --arch only; default: "
                    "target/<guest target>/release/vmcore-check)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--list", action="store_true", help="list the cells and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo every console line")
    a = ap.parse_args(argv)
    arches = list(ARCHES) if a.arch == "all" else [a.arch]
    names = [n.strip() for n in (a.cells or "").split(",") if n.strip()]
    cells, unknown = select(all_cells(), arches, a.loader, names)
    if unknown:
        ap.error(f"unknown cell(s) for --arch {a.arch} --loader {a.loader}: {','.join(unknown)} (see --list)")
    if a.list:
        for c in all_cells():
            if c.arch in arches:
                extra = ("" if c.default else " [not in the default set]") + (
                    f" [was: {', '.join(c.aliases)}]" if c.aliases else "")
                print(f"{c.name:24s} {c.arch:6s} {c.kind:8s} {c.doc}{extra}")
        return 0
    if (a.rkexec or a.vmcore_check) and len(arches) != 1:
        ap.error("--rkexec / --vmcore-check name one architecture's binary: give --arch too")
    tools = {arches[0]: {"rkexec": a.rkexec, "vmcore-check": a.vmcore_check}} if len(arches) == 1 else {}
    images = gi.ImageSet(a.cache, tools)
    try:
        gc.purgatory_lines()
        run_loader, loader_of, builds = {}, {}, set()
        for c in cells:  # the loaders, and the shared images to build up front (not in the workers)
            arch = ARCHES[c.arch]
            if arch.name not in run_loader:
                run_loader[arch.name] = images.loader(arch, a.loader)
            loader_of[c.name] = KINDS[c.kind].own_loader(images, arch, c) or run_loader[arch.name]
            if hasattr(KINDS[c.kind], "boot"):  # builds its own image as it runs (systemd_cells)
                continue
            builds.add((images.base, arch, c.suite, (loader_of[c.name],)))
            if c.kind in ("kdump", "hotplug"):
                builds.add((images.capture_initrd, arch))
        t_img = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:  # gzip runs without the GIL
            for f in [ex.submit(b[0], *b[1:]) for b in builds]:
                f.result()
        print(f"kexec_matrix: {len(builds)} shared image(s) ready in {time.monotonic() - t_img:.0f} s", flush=True)
    except (OSError, RuntimeError, ValueError, gc.ContractError) as e:
        print(f"kexec_matrix: {e}", file=sys.stderr)
        return 2
    systemd.prebuild(images, [c for c in cells if c.kind == "systemd"])
    rundir = gi.new_rundir(a.cache, "matrix")
    print(f"kexec_matrix: loader {a.loader}, {len(cells)} cell(s) on {', '.join(sorted({c.arch for c in cells}))}, "
          f"{a.jobs} job(s), logs in {rundir}", flush=True)
    order = sorted(cells, key=lambda c: -COST[c.kind] * (1.5 if c.arch == "amd64" else 1.0))
    t0 = time.monotonic()
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        futs = {ex.submit(run_cell_rerun_stalled, c, loader_of[c.name], images, rundir, a.timeout, a.verbose): c
                for c in order}
        for fut in concurrent.futures.as_completed(futs):
            c = futs[fut]
            try:
                r = fut.result()
            except Exception as e:  # noqa: BLE001 -- a harness bug must not hide the others
                r = Result(c.name, c.arch, a.loader, False, f"harness error: {e!r}", {}, [], 0.0, "", [])
            results.append(r)
            print(r.line(), flush=True)
    wall = time.monotonic() - t0
    npass = sum(r.ok for r in results)
    if a.json:
        with open(a.json, "w") as f:
            json.dump([r.as_json() for r in results], f, indent=2)
    for arch in sorted({r.arch for r in results}):
        rs = [r for r in results if r.arch == arch]
        print(f"kexec_matrix: {arch}: {len(rs)} cell(s), {sum(r.ok for r in rs)} passed, "
              f"{sum(r.elapsed for r in rs):.0f} s of cell time", flush=True)
    print(f"kexec_matrix: {wall:.0f} s wall with {a.jobs} job(s)", flush=True)
    print(f"{npass} passed, {len(results) - npass} failed", flush=True)
    return 0 if npass == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
