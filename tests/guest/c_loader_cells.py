#!/usr/bin/env python3
"""arm64 cells for examples/c-loader: a loader written in C kexecs kernel 2
through our purgatory (cells c-loader-* of the one guest-tier driver,
kexec_matrix.py; this file defines their kind and is a small CLI for them).

Kernel 1 (Debian bookworm Image, el1) boots the shared initramfs (busybox,
/kernel2, /initrd2) plus the static aarch64 C loader (/sbin/c-loader) and
the flat aarch64 purgatory (/purgatory-aarch64.bin). Its /cell.sh prints
KEXEC-EXEC-START and runs the C loader, which plans, prints its plan (one
`c-loader: segment N kind=... mem=... memsz=... bufsz=... [sha256=...]` line
per segment), calls kexec_load and reboot(LINUX_REBOOT_CMD_KEXEC).

  c-loader-boot    the C loader's plan is the plan: the purgatory's segment
                   lines must name exactly its segments (kind, address,
                   length), then as every kexec cell: kernel 2 boots with the
                   run's marker, same build, the mode's EL.
  c-loader-refuse  --corrupt-after-digest 1: the purgatory refuses segment 1
                   at the planned address (sha256 mismatch), its `expected`
                   digest is the C loader's, `actual` differs, the segments
                   before it verified, it halts, and no kernel boots.

    examples/c-loader/build.sh aarch64        (the driver does this itself)
    tests/guest/c_loader_cells.py [--cells c-loader-boot] [--timeout 240] [-v]
    (= tests/guest/kexec_matrix.py --arch arm64 --cells 'c-loader-*' ...)
"""
import os
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import guest_cells as gcl  # noqa: E402
import guest_contracts as gc  # noqa: E402
import guest_images as gi  # noqa: E402
import guest_judges as gj  # noqa: E402

BUILD_SH = os.path.join(gi.ROOT, "examples", "c-loader", "build.sh")
GUEST_LOADER = "/sbin/c-loader"
GUEST_PURGATORY = "/purgatory-aarch64.bin"
PLAN_RE = re.compile(r"c-loader: segment (\d+) kind=(\w+) mem=(0x[0-9a-f]+) memsz=(0x[0-9a-f]+) "
                     r"bufsz=(0x[0-9a-f]+)(?: sha256=([0-9a-f]{64}))?")


def _build(*args):
    out = subprocess.run(["bash", BUILD_SH, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"examples/c-loader/build.sh {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
    path = out.stdout.strip().splitlines()[-1]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"examples/c-loader/build.sh {' '.join(args)} named {path}, which is missing")
    return path


def c_loader_plan(texts):
    """The C loader's plan lines as rkexec-plan-like segments: the ones it
    hands to the purgatory (those with a digest), in order."""
    segs = []
    for t in texts:
        m = PLAN_RE.search(t)
        if m and m.group(6):
            segs.append({"index": int(m.group(1)), "kind": m.group(2), "start": int(m.group(3), 16),
                         "digest_len": int(m.group(4), 16), "excluded": False, "sha256": m.group(6)})
    return segs


class CLoaderKind(gcl.KexecKind):
    name = "c-loader"

    def __init__(self):
        self._lock = threading.Lock()
        self._loader = None

    def own_loader(self, images, arch, cell):
        """Loader("c-loader"): the C loader and the flat purgatory it loads,
        built once per process by examples/c-loader/build.sh."""
        with self._lock:
            if self._loader is None:
                c_loader = _build("aarch64")
                wdir = gi.workdir(images.cache, arch)
                os.makedirs(wdir, exist_ok=True)
                purgatory = _build("purgatory", os.path.join(wdir, "purgatory-aarch64.bin"))
                self._loader = gi.Loader("c-loader", GUEST_LOADER, purgatory=True, has_status=False,
                                         adds=((c_loader, GUEST_LOADER), (purgatory, GUEST_PURGATORY)))
            return self._loader

    def script(self, run):
        corrupt = run.cell.param("corrupt")
        flags = f" --corrupt-after-digest {corrupt}" if corrupt is not None else ""
        return "\n".join([
            f"do_exec {GUEST_LOADER} --image /kernel2 --initrd /initrd2 --purgatory {GUEST_PURGATORY}{flags} "
            f'--append="{self.new_append(run)}"',
            "return 1",
        ]) + "\n"

    def wait(self, run, q, timeout):
        if run.cell.param("corrupt") is None:
            return super().wait(run, q, timeout)
        P = gc.purgatory_lines()
        gcl.wait_end(q, "|".join(re.escape(P.templates[k]) for k in ("halted", "resetting"))
                     + r"|KERNEL2-INIT-OK|KEXEC-EXEC-FAILED|CELL-SCRIPT-|" + gcl.PANIC_RE, r"$^", timeout)
        time.sleep(2.0)  # whatever follows a refusal must show up too

    def steps(self, run, tr, info, bits):
        i_exec = tr.need(r"^KEXEC-EXEC-START$", "kernel 1 never reached KEXEC-EXEC-START")
        i = tr.find(r"^KEXEC-EXEC-FAILED", i_exec)
        if i is not None:
            err = [tr.text(j) for j in range(i_exec, i) if tr.T[j].startswith("c-loader: ")]
            raise gj.Fail(f"the C loader returned: {tr.text(i)} ({err[-1] if err else 'no c-loader line'})")
        if run.cell.param("corrupt") is not None:
            return self.refused(run, tr, info, bits, i_exec)
        i_boot = tr.need(run.arch.boot_re, "kernel 2 never printed a boot line after KEXEC-EXEC-START", i_exec + 1)
        segs = c_loader_plan(tr.T[i_exec:i_boot])
        if [s["kind"] for s in segs] != ["kernel", "initrd", "dtb"]:
            raise gj.Fail(f"the C loader's plan lists {[(s['index'], s['kind']) for s in segs]}, "
                          "expected kernel, initrd, dtb")
        tr.need(r"c-loader: kexec_load: \d+ segments loaded", "no 'c-loader: kexec_load: N segments loaded' line",
                i_exec, i_boot)
        plan = gc.PlanFacts("c-loader", segments=segs, hashed=sum(s["digest_len"] for s in segs))
        info["handoff_s"] = tr.t(i_boot) - tr.t(i_exec)
        bits.append("the purgatory verified exactly the C loader's planned segments")
        gj.purgatory_step(tr, info, bits, i_exec + 1, i_boot, plan, True, *run.purgatory_rules())
        i_ok = gj.init_index(tr, "KERNEL2-INIT-OK", i_boot, "kernel 2")
        gj.cmdline_step(tr, info, i_ok, run.marker, plan)
        gj.kernels_step(tr, info, bits, run.arch, run.mode, (0, i_exec), (i_boot, i_ok))

    def refused(self, run, tr, info, bits, i_exec):
        P = gc.purgatory_lines()
        n = run.cell.param("corrupt")
        tr.need(rf"flipped bit 0 of byte 0x[0-9a-f]+ of segment {n} \(", f"the C loader never said it corrupted "
                f"segment {n}", i_exec)
        i_ref = tr.find(P.pattern("digest_mismatch"), i_exec)
        if i_ref is None:
            said = P.said(tr.T[i_exec:])
            raise gj.Fail("no digest_mismatch refusal from the purgatory"
                          + (f" (it said: {said[-1]})" if said else " (no purgatory output)"))
        r = P.match("digest_mismatch", tr.T[i_ref])
        plan = {s["index"]: s for s in c_loader_plan(tr.T[i_exec:i_ref])}
        if n not in plan:
            raise gj.Fail(f"no C loader plan line for segment {n}")
        p = plan[n]
        if (r["index"], r["kind"], r["mem"], r["len"]) != (n, p["kind"], p["start"], p["digest_len"]):
            raise gj.Fail(f"the purgatory refused {tr.text(i_ref)}, the C loader corrupted segment {n} "
                          f"({p['kind']}) {p['start']:#x}+{p['digest_len']:#x}")
        digests = {}
        for j in range(i_ref + 1, min(i_ref + 4, len(tr.T))):
            for key in ("digest_expected", "digest_actual"):
                m = P.match(key, tr.T[j])
                if m:
                    digests[key] = m["sha256"]
        if digests.get("digest_expected") != p["sha256"]:
            raise gj.Fail(f"purgatory expected {digests.get('digest_expected')}, the C loader's digest is {p['sha256']}")
        if not digests.get("digest_actual") or digests["digest_actual"] == p["sha256"]:
            raise gj.Fail(f"purgatory's actual digest {digests.get('digest_actual')} should differ from {p['sha256']}")
        oks = [P.match("segment_ok", t)["index"] for t in tr.T[i_exec:i_ref] if P.match("segment_ok", t)]
        if oks != list(range(n)):
            raise gj.Fail(f"segments verified before the refusal: {oks}, expected 0..{n - 1}")
        i_no = tr.need(re.escape(P.templates["not_entering"]), "the purgatory never said it is not entering", i_ref)
        tr.need(re.escape(P.templates["halted"]), "the purgatory did not halt", i_no)
        i_boot = tr.find(run.arch.boot_re, i_exec + 1)
        if i_boot is not None:
            raise gj.Fail(f"a kernel booted after the refusal: {tr.text(i_boot)}")
        bits.append(f"purgatory refused segment {n} ({p['kind']}) {p['start']:#x}+{p['digest_len']:#x}, expected = "
                    f"the C loader's digest {p['sha256'][:16]}..., halted, no kernel after KEXEC-EXEC-START")


KINDS = {"c-loader": CLoaderKind()}


def cells():
    return [
        gcl.Cell("c-loader-boot", "arm64", "c-loader", "C loader: kernel 2 + initrd 2 + the running DTB through our "
                 "purgatory, kernel 2's init runs", loaders=("rkexec",)),
        gcl.Cell("c-loader-refuse", "arm64", "c-loader", "C loader with --corrupt-after-digest 1: the purgatory "
                 "refuses the initrd, halts", loaders=("rkexec",), params=(("corrupt", 1),)),
    ]


def main(argv=None):
    return gcl.group_main("c_loader_cells.py", "c-loader-*", argv, arch="arm64")


if __name__ == "__main__":
    sys.exit(main())
