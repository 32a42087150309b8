#!/usr/bin/env python3
"""Full-kexec QEMU tier (amd64): a real Debian kernel kexecs a real Debian kernel.

The x86_64 twin of kexec_matrix.py (same guest scripts, same cached
kernel-1 initramfs + per-cell /cell.sh scheme, same judges, same output):
QEMU is `qemu-system-x86_64 -M q35 -cpu max -m 2048` (TCG), kernel 1 is a
Debian cloud bzImage booted with `console=ttyS0 earlyprintk=serial nokaslr`,
its initramfs holds busybox (amd64), the loader under test, /kernel2 (the
same bzImage) and /initrd2. Kernel 2's command line also carries
`earlyprintk=serial`, so its first line ("[    0.000000] Linux version")
is printed right at entry and the hand-off time means something (as
`earlycon` does on arm64).

Cells:
  x86-load    `LOADER -l` (kexec_load). For rkexec: OUR purgatory, whose
              `purgatory: verified ...` summary (on COM1, because kernel 2's
              command line has console=ttyS0) must sit between
              KEXEC-EXEC-START and kernel 2's first line.
  x86-file    `LOADER -s -l` (kexec_file_load): the kernel loads and checks
              the image and runs its own purgatory; no summary of ours.
  x86-trixie  as x86-load with the trixie 6.12 kernel as kernel 1 and 2.
  x86-kdump   -smp 2, kernel 1 with crashkernel=256M; `LOADER -p /kernel2
              --initrd=/initrd-kdump ... -d`, sysrq-c; the capture kernel
              runs vmcore-check on /proc/vmcore (one merged PT_NOTE with
              vmcoreinfo and >= 1 PRSTATUS, as many PT_LOADs as the -d plan's
              elfcorehdr note announced, OSRELEASE = kernel 1's, the first
              PT_LOAD readable, our purgatory's summary between kernel 1's
              panic and the capture kernel's first line).

    scripts/fetch-fixtures.sh --arch amd64
    cargo build --release --locked --target x86_64-unknown-linux-musl -p loader-host --bin rkexec
    cargo build --release --locked --target x86_64-unknown-linux-musl -p guest-tools --bin vmcore-check
    tests/guest/kexec_matrix_x86.py [--loader rkexec|kexec-tools] [--cells x86-load,x86-kdump]
                                    [--jobs 2] [--timeout 180] [-v] [--json out.json]

Library: build_base(), make_loader(), X86Cell, CELLS, run_cell() (same
signatures as kexec_matrix's, amd64 fixtures). Images are cached under
cache/kexec-matrix-x86/ (separate from the arm64 ones so that neither
tier's cache pruning evicts the other's). Nothing here loads or executes a
kernel on the host: only QEMU is started.
"""
import argparse
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import re
import secrets
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True  # keep the tree free of __pycache__
sys.path.insert(0, HERE)
import kexec_matrix as km  # noqa: E402
import qemu_kexec  # noqa: E402

mk = km.mk
DEFAULT_CACHE = km.DEFAULT_CACHE
TARGET = "x86_64-unknown-linux-musl"
DEFAULT_RKEXEC = os.path.join(ROOT, "target", TARGET, "release", "rkexec")
DEFAULT_VMCORE_CHECK = os.path.join(ROOT, "target", TARGET, "release", "vmcore-check")
FORMAT = "kexec-matrix-x86-v1"  # bump to invalidate every cached amd64 initramfs
WORKDIR = "kexec-matrix-x86"    # under the cache
QEMU = "qemu-system-x86_64"
QEMU_EXTRA = ("-nic", "none")  # q35's default e1000e only adds an iPXE ROM to the boot

K1_APPEND = "console=ttyS0 earlyprintk=serial nokaslr rdinit=/init"
K2_APPEND = "console=ttyS0 earlyprintk=serial nokaslr rdinit=/init"
KDUMP_CRASHKERNEL = km.KDUMP_CRASHKERNEL
KDUMP_APPEND = K2_APPEND + " maxcpus=1"

SMP_X86_RE = re.compile(r"smpboot: Total of (\d+) processors? activated")

# ---------------------------------------------------------------------------
# Fixtures, loaders and images (amd64 versions of kexec_matrix's helpers,
# which hard-code cache/arm64; the hashing/caching/cpio code is shared)
# ---------------------------------------------------------------------------


def fixture_paths(cache, suite):
    arch = os.path.join(cache, "amd64")
    paths = {"kernel": os.path.join(arch, suite, "vmlinuz"), "busybox": os.path.join(arch, "busybox")}
    for p in paths.values():
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p} missing: run scripts/fetch-fixtures.sh --arch amd64")
    return paths


def make_loader(name, cache=DEFAULT_CACHE, rkexec=DEFAULT_RKEXEC):
    if name == "kexec-tools":
        tree = os.path.join(cache, "amd64", "kexec-tools")
        if not os.path.isfile(os.path.join(tree, "sbin", "kexec")):
            raise FileNotFoundError(f"{tree}/sbin/kexec missing: run scripts/fetch-fixtures.sh --arch amd64")
        return km.Loader("kexec-tools", "kexec", trees=((tree, "/"),))
    if name == "rkexec":
        if not os.path.isfile(rkexec):
            raise FileNotFoundError(
                f"{rkexec} missing: cargo build --release --locked --target {TARGET} -p loader-host --bin rkexec")
        return km.Loader("rkexec", "rkexec", adds=((rkexec, "/sbin/rkexec"),), purgatory=True)
    raise ValueError(f"unknown loader {name!r} (rkexec | kexec-tools)")


def _workdir(cache):
    return os.path.join(cache, WORKDIR)


def build_initrd2(cache, workdir=None):
    workdir = workdir or _workdir(cache)
    bb = fixture_paths(cache, "bookworm")["busybox"]
    key = hashlib.sha256(f"{FORMAT}\n{km.INIT2}\n{km.file_hash(bb)}\n{km.file_hash(km._MK_PATH)}".encode()).hexdigest()
    return km._cached(workdir, "initrd2", key, lambda out: mk.build(out, km.INIT2, bb, init_path="/init"))


def build_kdump_initrd(cache, workdir=None, vmcore_check=DEFAULT_VMCORE_CHECK):
    workdir = workdir or _workdir(cache)
    if not os.path.isfile(vmcore_check):
        raise FileNotFoundError(
            f"{vmcore_check} missing: cargo build --release --locked --target {TARGET} "
            "-p guest-tools --bin vmcore-check")
    bb = fixture_paths(cache, "bookworm")["busybox"]
    key = hashlib.sha256(f"{FORMAT}\n{km.INIT_KDUMP}\n{km.file_hash(bb)}\n{km.file_hash(km._MK_PATH)}\n"
                         f"vmcore-check {km.file_hash(vmcore_check)}".encode()).hexdigest()
    return km._cached(workdir, "initrd-kdump", key,
                      lambda out: mk.build(out, km.INIT_KDUMP, bb, adds=[(vmcore_check, "/vmcore-check")],
                                           init_path="/init"))


def build_base(cache, suite, loaders, workdir=None, init1=km.INIT1):
    """Kernel 1's initramfs minus /cell.sh. Returns (bzImage path, base path)."""
    workdir = workdir or _workdir(cache)
    fx = fixture_paths(cache, suite)
    initrd2 = build_initrd2(cache, workdir)
    adds = [(fx["kernel"], "/kernel2"), (initrd2, "/initrd2")]
    trees = []
    for ld in loaders:
        adds += list(ld.adds)
        trees += list(ld.trees)
    h = hashlib.sha256(f"{FORMAT}\n{init1}\n{km.file_hash(km._MK_PATH)}\n"
                       f"busybox {km.file_hash(fx['busybox'])}\n".encode())
    for src, dest in adds:
        h.update(f"add {dest} {oct(os.stat(src).st_mode)} {km.file_hash(src)}\n".encode())
    for src, dest in trees:
        h.update(f"tree {dest} {km.tree_hash(src)}\n".encode())
    stem = f"base-{suite}-{'+'.join(ld.name for ld in loaders)}"
    base = km._cached(workdir, stem, h.hexdigest(),
                      lambda out: mk.build(out, init1, fx["busybox"], adds=adds, trees=trees))
    return fx["kernel"], base


def bzimage_payload_size(path):
    """Bytes of a bzImage past its real-mode setup: a lower bound for what a
    loader puts in the kernel segment (kexec-tools and the kernel's own
    bzImage64 loader copy exactly this; a loader that decompresses copies more)."""
    with open(path, "rb") as f:
        hdr = f.read(0x202)
    if len(hdr) < 0x202 or hdr[0x1fe:0x200] != b"\x55\xaa":
        return os.path.getsize(path)
    setup_sects = hdr[0x1f1] or 4
    return os.path.getsize(path) - (setup_sects + 1) * 512

# ---------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class X86Cell:
    name: str
    doc: str
    suite: str = "bookworm"
    machine: str = "q35"
    cpu: str = "max"
    smp: int = 1
    file_syscall: bool = False  # -s: kexec_file_load, the kernel's own purgatory
    kdump: bool = False
    # what kexec_matrix.judge() compares the kernels' "CPU: All CPU(s) started
    # at ELn" / VHE lines against: x86 prints none, so None / False.
    k1_el: str = None
    k2_el: str = None
    vhe: bool = False
    lockdown: bool = False  # kernel 1 with lockdown=integrity: kexec_load refused

    def k1_append(self, marker):
        extra = f" crashkernel={KDUMP_CRASHKERNEL}" if self.kdump else ""
        return K1_APPEND + extra + (" lockdown=integrity" if self.lockdown else "")

    def script(self, loader, marker, load_flags=""):
        """/cell.sh: load kernel 2 with `loader`, print KEXEC-EXEC-START, exec."""
        if self.kdump:
            return self.kdump_script(loader, marker, load_flags)
        if self.lockdown:
            return self.lockdown_script(loader, marker)
        flags = " ".join(f for f in (("-s" if self.file_syscall else ""), load_flags) if f)
        flags = f" {flags}" if flags else ""
        return "\n".join([
            f"LOADER={loader.cmd}",
            f"M={marker}",
            f'timed $LOADER{flags} -l /kernel2 --initrd=/initrd2 --append="{K2_APPEND} MARKER=$M"'
            " || { echo KEXEC-LOAD-FAILED; return 1; }",
            "$LOADER -S -l; echo \"KEXEC-STATUS rc=$?\"" if loader.name == "rkexec" else ":",
            "do_exec $LOADER -e",
            "return 1",
        ]) + "\n"

    def lockdown_script(self, loader, marker):
        """Lockdown refuses kexec_load: the loader must fall back to
        kexec_file_load (which then demands a trusted signature the unsigned
        test setup cannot give), unload through kexec_file_load too, and
        never leave a kernel loaded."""
        return "\n".join([
            f"LOADER={loader.cmd}",
            "mount -t securityfs none /sys/kernel/security 2>/dev/null",
            'echo "LOCKDOWN-MODE $(cat /sys/kernel/security/lockdown)"',
            f'$LOADER -l /kernel2 --initrd=/initrd2 --append="{K2_APPEND} MARKER={marker}" 2>&1',
            'echo "LOCKDOWN-LOAD-RC=$?"',
            '$LOADER -u 2>&1; echo "LOCKDOWN-UNLOAD-RC=$?"',
            '$LOADER -S -l; echo "LOCKDOWN-STATUS-RC=$?"',
            "echo CELL-SCRIPT-LOCKDOWN-DONE",
            "return 1",
        ]) + "\n"

    def kdump_script(self, loader, marker, load_flags=""):
        """As kexec_matrix.Cell.kdump_script, with the x86 capture command line,
        a pause before sysrq-c and `-S` for rkexec only (kexec-tools' -S
        exits 1 when a kernel IS loaded)."""
        flags = f" {load_flags}" if load_flags else ""
        return "\n".join([
            f"LOADER={loader.cmd}",
            f"M={marker}",
            'echo "K1-RELEASE=$(uname -r)"',
            "_ck=$(grep 'Crash kernel' /proc/iomem)",
            '[ -n "$_ck" ] || { echo "K1-NO-CRASHKERNEL (crashkernel= not reserved)"; return 1; }',
            'echo "K1-CRASHKERNEL $(echo $_ck)"',
            f'timed $LOADER{flags} -p /kernel2 --initrd=/initrd-kdump --append="{KDUMP_APPEND} MARKER=$M" -d'
            " || { echo KEXEC-LOAD-FAILED; return 1; }",
            '$LOADER -S; echo "KEXEC-STATUS rc=$?"' if loader.name == "rkexec" else ":",
            'echo "KEXEC-CRASH-LOADED $(cat /sys/kernel/kexec_crash_loaded)"',
            "sync",
            "echo KDUMP-PANIC-START",
            # The 8250 driver sends tty output from its transmit buffer by
            # interrupt; sysrq-c right away loses the line above (the
            # crash path never drains it). Let it drain first.
            "sleep 1",
            "echo c >/proc/sysrq-trigger",
            'echo "KDUMP-PANIC-FAILED rc=$?"',
            "return 1",
        ]) + "\n"


CELLS = [
    X86Cell("x86-load", "q35, bookworm: kexec_load (-l); for rkexec through our purgatory"),
    X86Cell("x86-file", "q35, bookworm: kexec_file_load (-s -l); the kernel's own purgatory", file_syscall=True),
    X86Cell("x86-trixie", "q35, trixie 6.12 as kernel 1 and kernel 2, kexec_load (-l)", suite="trixie"),
    X86Cell("x86-kdump", f"q35 -smp 2, crashkernel={KDUMP_CRASHKERNEL}, -p capture kernel, sysrq-c, /proc/vmcore",
            smp=2, kdump=True),
    X86Cell("x86-lockdown", "q35, kernel 1 with lockdown=integrity: kexec_load refused, fallback to kexec_file_load "
            "(rkexec only)", lockdown=True),
]
CELL_BY_NAME = {c.name: c for c in CELLS}

# ---------------------------------------------------------------------------
# Running and judging
# ---------------------------------------------------------------------------


def run_cell(cell, loader, cache, rundir, timeout=180, echo=False, load_flags="", loaders_in_image=None,
             memory=2048, vmcore_check=DEFAULT_VMCORE_CHECK):
    """kexec_matrix.run_cell for q35: build, boot, judge (with kexec_matrix.judge)."""
    marker = f"{cell.name}-{secrets.token_hex(6)}"
    cdir = os.path.join(rundir, f"{loader.name}-{cell.name}")
    os.makedirs(cdir, exist_ok=True)
    log = os.path.join(cdir, "console.log")
    t0 = time.monotonic()
    kernel, base = build_base(cache, cell.suite, loaders_in_image or (loader,))
    script = cell.script(loader, marker, load_flags)
    adds, second = (), build_initrd2(cache)
    if cell.kdump:
        second = build_kdump_initrd(cache, vmcore_check=vmcore_check)
        adds = ((second, "/initrd-kdump"),)
    initrd = km.build_cell_initrd(base, script, os.path.join(cdir, "initrd1.cpio.gz"), adds)
    with open(os.path.join(cdir, "cell.sh"), "w") as f:
        f.write(script)
    q = qemu_kexec.Qemu(kernel, initrd, cell.k1_append(marker), machine=cell.machine, cpu=cell.cpu,
                        memory=memory, smp=cell.smp, echo=echo, log_path=log, qemu=QEMU,
                        extra_args=QEMU_EXTRA)
    err = None
    with q:
        try:
            hit = km._wait_kdump(q, timeout) if cell.kdump else q.wait_for(km.STOP_RE, timeout)
            if hit.text.startswith(("KERNEL2-INIT-OK", "KDUMP-DONE")):
                try:
                    q.wait_exit(5)  # `poweroff -f` from kernel 2
                except qemu_kexec.QemuError:
                    pass
            else:
                time.sleep(1.0)  # collect what follows a failure (panic trace ...)
        except qemu_kexec.QemuError as e:
            err = str(e)
    try:
        os.unlink(initrd)
    except OSError:
        pass
    lines = list(q.lines)
    if cell.lockdown:
        return judge_lockdown(cell, loader, lines, time.monotonic() - t0, log)
    # -s: the kernel's purgatory runs, not ours: expect no summary of ours.
    judged = dataclasses.replace(loader, purgatory=False) if cell.file_syscall else loader
    min_hashed = 0 if "-i" in load_flags.split() else bzimage_payload_size(kernel) + os.path.getsize(second)
    ok, reason, info = km.judge(cell, judged, marker, lines, min_hashed)
    if err and not ok:
        reason = f"{reason} [{err}]"
    info["marker"] = marker
    if cell.kdump and info.get("k1_cpus") is None:  # x86 says "smpboot: Total of N processors activated"
        i_start = km._find(lines, r"^KDUMP-PANIC-START$")
        m = SMP_X86_RE.search("\n".join(l.text for l in lines[:i_start]))
        if m:
            info["k1_cpus"] = int(m.group(1))  # Result.line() warns if PRSTATUS notes differ
    # Result.line() prints "k1 <EL> -> k2 <EL>": on x86 show the kernel releases.
    for k in ("k1", "k2"):
        if info.get(f"{k}_el") is None and f"{k}_version" in info:
            info[f"{k}_el"] = info[f"{k}_version"]
    window = []
    if not ok and "purgatory" in reason:
        i = km._find(lines, km.PANIC_RE, km._find(lines, r"^KDUMP-PANIC-START$") or 0) if cell.kdump else \
            km._find(lines, r"^KEXEC-EXEC-START$")
        if i is not None and i < len(lines) - 40:
            window = lines[i:i + 25]
    return km.Result(cell.name, loader.name, ok, reason, info, time.monotonic() - t0, log,
                     lines[-60:], window)


def judge_lockdown(cell, loader, lines, elapsed, log):
    """Pass only on what kernel 1 printed: lockdown active, the loader said it
    fell back to kexec_file_load, that call was refused with the signature
    explanation, the load failed, the unload fell back and succeeded, and no
    kernel is left loaded."""
    text = "\n".join(l.text for l in lines)
    want = [
        (r"LOCKDOWN-MODE .*\[integrity\]", "kernel 1 is not in lockdown=integrity"),
        (r"kexec_load refused by kernel lockdown; falling back to kexec_file_load", "no fallback to kexec_file_load"),
        (r"kexec_file_load failed: .*signature the kernel trusts", "kexec_file_load refusal not explained"),
        (r"^LOCKDOWN-LOAD-RC=255$", "load did not fail with exit 255 (kexec-tools' EFAILED)"),
        (r"kexec_load refused by kernel lockdown; unloading with kexec_file_load", "unload did not fall back"),
        (r"^LOCKDOWN-UNLOAD-RC=0$", "unload failed"),
        # kexec-tools' -S: silent, exit 0 = not loaded (issue 10).
        (r"^LOCKDOWN-STATUS-RC=0$", "-S -l did not exit 0 (not loaded)"),
    ]
    for rx, why in want:
        if not re.search(rx, text, re.M):
            return km.Result(cell.name, loader.name, False, why, {}, elapsed, log, lines[-60:], [])
    if re.search(r"panicked", text):
        return km.Result(cell.name, loader.name, False, "rkexec panicked", {}, elapsed, log, lines[-60:], [])
    summary = "lockdown=integrity: kexec_load refused, fell back to kexec_file_load, signature refusal explained, unload via kexec_file_load, nothing loaded"
    return km.Result(cell.name, loader.name, True, "", {"summary": summary}, elapsed, log, [], [])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loader", default="rkexec", choices=km.LOADERS)
    ap.add_argument("--rkexec", default=DEFAULT_RKEXEC, help="static x86_64 rkexec binary (default: %(default)s)")
    ap.add_argument("--vmcore-check", default=DEFAULT_VMCORE_CHECK,
                    help="static x86_64 vmcore-check for the kdump cell (default: %(default)s)")
    ap.add_argument("--cells", help=f"comma-separated subset of: {','.join(CELL_BY_NAME)}")
    ap.add_argument("--jobs", "-j", type=int, default=2, help="cells run in parallel (default 2)")
    ap.add_argument("--timeout", type=float, default=180, help="per cell, seconds (default 180)")
    ap.add_argument("--cache", default=DEFAULT_CACHE)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--list", action="store_true", help="list the cells and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo every console line")
    a = ap.parse_args(argv)
    if a.list:
        for c in CELLS:
            print(f"{c.name:12s} {c.suite:8s} -M {c.machine} -cpu {c.cpu} -smp {c.smp}: {c.doc}")
        return 0
    cells = CELLS
    if a.cells:
        names = [n.strip() for n in a.cells.split(",") if n.strip()]
        bad = [n for n in names if n not in CELL_BY_NAME]
        if bad:
            ap.error(f"unknown cell(s) {','.join(bad)}; known: {','.join(CELL_BY_NAME)}")
        cells = [CELL_BY_NAME[n] for n in names]
    if a.loader != "rkexec":
        cells = [c for c in cells if not c.lockdown]  # rkexec's own fallback behaviour
    try:
        loader = make_loader(a.loader, a.cache, a.rkexec)
        for suite in sorted({c.suite for c in cells}):
            build_base(a.cache, suite, (loader,))
        build_initrd2(a.cache)
        if any(c.kdump for c in cells):
            build_kdump_initrd(a.cache, vmcore_check=a.vmcore_check)
    except (OSError, ValueError) as e:
        print(f"kexec_matrix_x86: {e}", file=sys.stderr)
        return 2
    workdir = _workdir(a.cache)
    km.prune_runs(workdir)
    rundir = os.path.join(workdir, "runs", time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}")
    os.makedirs(rundir, exist_ok=True)
    print(f"kexec_matrix_x86: loader {loader.name}, {len(cells)} cell(s), {a.jobs} job(s), logs in {rundir}",
          flush=True)
    t0 = time.monotonic()
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        futs = {ex.submit(run_cell, c, loader, a.cache, rundir, a.timeout, a.verbose,
                          vmcore_check=a.vmcore_check): c for c in cells}
        for fut in concurrent.futures.as_completed(futs):
            c = futs[fut]
            try:
                r = fut.result()
            except Exception as e:  # noqa: BLE001 -- a harness bug must not hide the others
                r = km.Result(c.name, loader.name, False, f"harness error: {e!r}", {}, 0.0, "", [])
            results.append(r)
            print(r.line(), flush=True)
    npass = sum(r.ok for r in results)
    nfail = len(results) - npass
    if a.json:
        with open(a.json, "w") as f:
            json.dump([dataclasses.asdict(r) | {"tail": [str(l) for l in r.tail],
                                                 "window": [str(l) for l in r.window]} for r in results], f, indent=2)
    print(f"kexec_matrix_x86: {time.monotonic() - t0:.0f} s wall", flush=True)
    print(f"{npass} passed, {nfail} failed", flush=True)
    return 0 if nfail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
