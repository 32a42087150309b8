#!/usr/bin/env python3
"""Full-kexec QEMU cells on riscv64: Debian trixie's riscv64 kernel kexecs itself with rkexec.

A small runner over the arm64 matrix's library (tests/guest/kexec_matrix.py:
the guest init scripts, the content-hash cache of initramfses, the console
judges) until the one architecture-parameterised guest driver lands; then
these cells become its riscv64 profile.

QEMU: `qemu-system-riscv64 -M virt -bios default` (OpenSBI fw_dynamic), TCG.
Kernel 1 is trixie's riscv64 kernel with an initramfs holding busybox, the
static riscv64 rkexec, /kernel2 (the same Image) and /initrd2; /cell.sh loads
kernel 2 and execs it (or, for kdump, loads it with -p and crashes kernel 1).

Cells (each passes only on what the guests printed, judged by
kexec_matrix.judge / judge_kdump):
  rv-kexec  -cpu rv64,zknh=true: kernel 2 reaches its init with the cell's
            marker on its command line; the purgatory's `verified` summary sits
            between KEXEC-EXEC-START and kernel 2's first line, hashed at least
            kernel 2 + initrd 2, with the Zknh engine, after reading the boot
            hart's ISA (zknh) from the DTB and entering on hart 0.
  rv-kdump  default -cpu rv64, -smp 2, crashkernel=256M: -p capture kernel,
            sysrq-c; the purgatory (portable engine) verifies between kernel
            1's panic and the capture kernel's first line; the capture init's
            vmcore-check reads /proc/vmcore: EM_RISCV, one merged PT_NOTE with
            VMCOREINFO and riscv-sized NT_PRSTATUS notes, as many PT_LOADs as
            kernel 1's plan announced, OSRELEASE = kernel 1's release.

    scripts/fetch-fixtures.sh --arch riscv64
    cargo build --release --locked --target riscv64gc-unknown-linux-gnu -p loader-host --bin rkexec
    cargo build --release --locked --target riscv64gc-unknown-linux-gnu -p guest-tools --bin vmcore-check
    tests/guest/kexec_riscv64.py [--cells rv-kexec,rv-kdump] [--jobs 2] [--timeout 300] [-v]

Nothing here loads or executes a kernel on the host: only QEMU is started.
"""
import argparse
import concurrent.futures
import dataclasses
import hashlib
import os
import re
import secrets
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import kexec_matrix as km  # noqa: E402
import qemu_kexec  # noqa: E402

DEFAULT_CACHE = km.DEFAULT_CACHE
TARGET = "riscv64gc-unknown-linux-gnu"  # static glibc: Rust ships no riscv64 musl std
DEFAULT_RKEXEC = os.path.join(ROOT, "target", TARGET, "release", "rkexec")
DEFAULT_VMCORE_CHECK = os.path.join(ROOT, "target", TARGET, "release", "vmcore-check")
FORMAT = km.FORMAT + "+riscv64-v1"
SUITE = "trixie"  # riscv64 is a release architecture from trixie on

# earlycon without arguments takes /chosen/stdout-path (uart0, a 16550 at
# 0x10000000): kernel 2's first line is printed at its entry.
K1_APPEND = "console=ttyS0 earlycon rdinit=/init"
K2_APPEND = "console=ttyS0 earlycon rdinit=/init"
KDUMP_CRASHKERNEL = "256M"
KDUMP_APPEND = K2_APPEND + " maxcpus=1"
# The purgatory's riscv lines (purgatory/src/riscv64.rs): where it was
# entered and which ISA the boot hart's DTB node lists.
HART_RE = re.compile(r"purgatory: .*hart (0x[0-9a-f]+|\d+), a1 (0x[0-9a-f]+)")
ISA_RE = re.compile(r"purgatory: boot hart isa from (\S+): (\S+) (\S+)")
# kernel/smp.c smp_init(): riscv has no "SMP: Total of N processors" line.
SMP_RE = re.compile(r"smp: Brought up \d+ nodes?, (\d+) CPUs?")


@dataclasses.dataclass
class Cell:
    name: str
    doc: str
    cpu: str = "rv64"
    smp: int = 1
    kdump: bool = False
    engine: str = ""          # the digest engine the purgatory must report
    zknh: bool = False        # the boot hart's DTB lists Zknh
    # what kexec_matrix.judge compares (arm64 exception levels; riscv has none)
    k1_el: object = None
    k2_el: object = None
    vhe: bool = False
    suite: str = SUITE

    def k1_append(self, marker):
        del marker
        return K1_APPEND + (f" crashkernel={KDUMP_CRASHKERNEL}" if self.kdump else "")

    def script(self, loader, marker):
        """/cell.sh: the same contract as kexec_matrix.Cell.script."""
        L = loader.cmd
        if not self.kdump:
            return "\n".join([
                f"LOADER={L}",
                f"M={marker}",
                f'timed $LOADER -l /kernel2 --initrd=/initrd2 --append="{K2_APPEND} MARKER=$M" -d'
                " || { echo KEXEC-LOAD-FAILED; return 1; }",
                '$LOADER -S -l; echo "KEXEC-STATUS rc=$?"',
                "do_exec $LOADER -e",
                "return 1",
            ]) + "\n"
        return "\n".join([
            f"LOADER={L}",
            f"M={marker}",
            'echo "K1-RELEASE=$(uname -r)"',
            "_ck=$(grep 'Crash kernel' /proc/iomem)",
            '[ -n "$_ck" ] || { echo "K1-NO-CRASHKERNEL (crashkernel= not reserved)"; return 1; }',
            'echo "K1-CRASHKERNEL $(echo $_ck)"',
            f'timed $LOADER -p /kernel2 --initrd=/initrd-kdump --append="{KDUMP_APPEND} MARKER=$M" -d'
            " || { echo KEXEC-LOAD-FAILED; return 1; }",
            '$LOADER -S; echo "KEXEC-STATUS rc=$?"',
            'echo "KEXEC-CRASH-LOADED $(cat /sys/kernel/kexec_crash_loaded)"',
            "sync",
            "echo KDUMP-PANIC-START",
            # The 8250 driver sends tty output from its transmit buffer by
            # interrupt, which the crash path never drains: let it empty
            # first, or the marker and the panic share a console line.
            "sleep 1",
            "echo c >/proc/sysrq-trigger",
            'echo "KDUMP-PANIC-FAILED rc=$?"',
            "return 1",
        ]) + "\n"


CELLS = [
    Cell("rv-kexec", "-cpu rv64,zknh=true: kernel 2 reaches its init through the purgatory's Zknh engine",
         cpu="rv64,zknh=true", engine="zknh", zknh=True),
    Cell("rv-kdump", f"-smp 2, crashkernel={KDUMP_CRASHKERNEL}: -p, sysrq-c, /proc/vmcore (portable engine)",
         smp=2, kdump=True, engine="portable"),
]
# Not in the default run: the anchor for the engine figures (the same
# kexec as rv-kexec on the default CPU, so the purgatory hashes with the
# portable engine in the same run).
EXTRA_CELLS = [
    Cell("rv-kexec-portable", "default -cpu rv64: as rv-kexec with the portable engine (figures only)",
         engine="portable"),
]
CELL_BY_NAME = {c.name: c for c in CELLS + EXTRA_CELLS}


def fixture_paths(cache):
    arch = os.path.join(cache, "riscv64")
    # Debian installs it as /boot/vmlinux-*: an Image with an EFI stub.
    paths = {"kernel": os.path.join(arch, SUITE, "Image"), "busybox": os.path.join(arch, "busybox")}
    for p in paths.values():
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p} missing: run scripts/fetch-fixtures.sh --arch riscv64")
    return paths


def _key(*parts):
    return hashlib.sha256("\n".join([FORMAT, *parts]).encode()).hexdigest()


def build_initrd2(cache, workdir):
    bb = fixture_paths(cache)["busybox"]
    key = _key(km.INIT2, km.file_hash(bb), km.file_hash(km._MK_PATH))
    return km._cached(workdir, "rv-initrd2", key, lambda out: km.mk.build(out, km.INIT2, bb, init_path="/init"))


def build_kdump_initrd(cache, workdir, vmcore_check):
    if not os.path.isfile(vmcore_check):
        raise FileNotFoundError(f"{vmcore_check} missing: cargo build --release --locked --target {TARGET} "
                                "-p guest-tools --bin vmcore-check")
    bb = fixture_paths(cache)["busybox"]
    key = _key(km.INIT_KDUMP, km.file_hash(bb), km.file_hash(km._MK_PATH), km.file_hash(vmcore_check))
    return km._cached(workdir, "rv-initrd-kdump", key,
                      lambda out: km.mk.build(out, km.INIT_KDUMP, bb, adds=[(vmcore_check, "/vmcore-check")],
                                              init_path="/init"))


def build_base(cache, loader, workdir):
    """Kernel 1's initramfs minus /cell.sh: (kernel path, base path)."""
    fx = fixture_paths(cache)
    initrd2 = build_initrd2(cache, workdir)
    adds = [(fx["kernel"], "/kernel2"), (initrd2, "/initrd2"), *loader.adds]
    h = [km.INIT1, km.file_hash(km._MK_PATH), km.file_hash(fx["busybox"])]
    h += [f"{dest} {oct(os.stat(src).st_mode)} {km.file_hash(src)}" for src, dest in adds]
    base = km._cached(workdir, f"rv-base-{loader.name}", _key(*h),
                      lambda out: km.mk.build(out, km.INIT1, fx["busybox"], adds=adds))
    return fx["kernel"], base


def judge(cell, loader, marker, lines, min_hashed):
    """kexec_matrix's judges, then what is riscv's own: the engine, and the
    purgatory's hart/ISA lines in the hand-off window."""
    ok, reason, info = km.judge(cell, loader, marker, lines, min_hashed)
    if not ok:
        return ok, reason, info
    # -S (crash) / -S -l after the load: kexec-tools' contract, which rkexec
    # follows (kexec/kexec.c: exit status 1 when that kernel is loaded).
    rc = info.pop("status_rc", None)
    info["status_loaded_rc"] = rc
    if rc != 1:
        return False, f"-S{'' if cell.kdump else ' -l'} after the load exited {rc}, kexec-tools' 'loaded' is 1", info
    p = info.get("purgatory", {})
    if cell.engine and p.get("engine") != cell.engine:
        return False, f"purgatory hashed with {p.get('engine')!r}, expected {cell.engine!r}", info
    # The window the purgatory ran in: after the exec (or panic) marker, before the new kernel's first line.
    start = km._find(lines, r"^KDUMP-PANIC-START$" if cell.kdump else r"^KEXEC-EXEC-START$") or 0
    end = km._find(lines, qemu_kexec.KERNEL_BOOT_RE.pattern,
                   km._find(lines, km.PURG_RE.pattern, start) or start) or len(lines)
    window = [l.text for l in lines[start:end]]
    hart = next((m for m in map(HART_RE.search, window) if m), None)
    isa = next((m for m in map(ISA_RE.search, window) if m), None)
    if hart is None or isa is None:
        return False, "no 'purgatory: ... hart N, a1 ...' and 'boot hart isa from ...' lines before the new kernel", info
    info["purgatory_hart"], info["purgatory_a1"] = hart.group(1), hart.group(2)
    info["purgatory_isa"] = " ".join(isa.groups())
    want = "zknh" if cell.zknh else "no-zknh"
    if isa.group(2) != want:
        return False, f"the purgatory read {isa.group(2)!r} from the boot hart's DTB node, expected {want!r}", info
    if any("purgatory: note: the kernel found the FDT at a1" in t for t in window):
        return False, "the kernel handed the purgatory another FDT than the loader named", info
    if cell.kdump:
        # One NT_PRSTATUS per CPU kernel 1 brought up (crash_smp_send_stop
        # saved the others' registers).
        m = next((m for m in map(SMP_RE.search, (l.text for l in lines[:start])) if m), None)
        cpus = int(m.group(1)) if m else None
        info["k1_cpus"] = cpus
        if cpus != cell.smp or info.get("prstatus") != cpus:
            return False, f"{info.get('prstatus')} NT_PRSTATUS notes, kernel 1 brought up {cpus} CPUs (-smp {cell.smp})", info
    return True, "", info


def run_cell(cell, loader, cache, rundir, timeout, echo, vmcore_check):
    marker = f"{cell.name}-{secrets.token_hex(6)}"
    cdir = os.path.join(rundir, cell.name)
    os.makedirs(cdir, exist_ok=True)
    log = os.path.join(cdir, "console.log")
    t0 = time.monotonic()
    workdir = os.path.join(cache, "kexec-matrix")
    kernel, base = build_base(cache, loader, workdir)
    script = cell.script(loader, marker)
    second = build_initrd2(cache, workdir)
    adds = ()
    if cell.kdump:
        second = build_kdump_initrd(cache, workdir, vmcore_check)
        adds = ((second, "/initrd-kdump"),)
    initrd = km.build_cell_initrd(base, script, os.path.join(cdir, "initrd1.cpio.gz"), adds)
    with open(os.path.join(cdir, "cell.sh"), "w") as f:
        f.write(script)
    q = qemu_kexec.Qemu(kernel, initrd, cell.k1_append(marker), machine="virt", cpu=cell.cpu, memory=2048,
                        smp=cell.smp, qemu="qemu-system-riscv64", extra_args=("-bios", "default"), echo=echo,
                        log_path=log)
    err = None
    with q:
        try:
            hit = km._wait_kdump(q, timeout) if cell.kdump else q.wait_for(km.STOP_RE, timeout)
            if hit.text.startswith(("KERNEL2-INIT-OK", "KDUMP-DONE")):
                try:
                    q.wait_exit(5)
                except qemu_kexec.QemuError:
                    pass
            else:
                time.sleep(1.0)
        except qemu_kexec.QemuError as e:
            err = str(e)
    try:
        os.unlink(initrd)
    except OSError:
        pass
    lines = list(q.lines)
    min_hashed = os.path.getsize(kernel) + os.path.getsize(second)
    ok, reason, info = judge(cell, loader, marker, lines, min_hashed)
    if err and not ok:
        reason = f"{reason} [{err}]"
    info["marker"] = marker
    window = []
    if not ok:
        i = km._find(lines, r"^KDUMP-PANIC-START$" if cell.kdump else r"^KEXEC-EXEC-START$")
        if i is not None:
            window = lines[i:i + 30]
    return km.Result(cell.name, loader.name, ok, reason, info, time.monotonic() - t0, log, lines[-50:], window)


def describe(r):
    """kexec_matrix's PASS/FAIL line, plus the purgatory's riscv facts."""
    out = r.line()
    if r.ok:
        i = r.info
        out += (f"\n  -S after the load: {i['status_loaded_rc']} (loaded); "
                f"purgatory: hart {i['purgatory_hart']} a1 {i['purgatory_a1']}, isa {i['purgatory_isa']}"
                f"\n  {i.get('purgatory_line') or ''}").rstrip()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rkexec", default=DEFAULT_RKEXEC, help="static riscv64 rkexec (default: %(default)s)")
    ap.add_argument("--vmcore-check", default=DEFAULT_VMCORE_CHECK, help="static riscv64 vmcore-check")
    ap.add_argument("--cells", help=f"comma-separated cells (default: {','.join(c.name for c in CELLS)}; "
                    f"known: {','.join(CELL_BY_NAME)})")
    ap.add_argument("--jobs", "-j", type=int, default=2, help="cells run in parallel (default 2)")
    ap.add_argument("--timeout", type=float, default=300, help="per cell, seconds (default 300)")
    ap.add_argument("--cache", default=DEFAULT_CACHE)
    ap.add_argument("-v", "--verbose", action="store_true", help="echo every console line")
    a = ap.parse_args(argv)
    cells = CELLS
    if a.cells:
        names = [n.strip() for n in a.cells.split(",") if n.strip()]
        bad = [n for n in names if n not in CELL_BY_NAME]
        if bad:
            ap.error(f"unknown cell(s) {','.join(bad)}; known: {','.join(CELL_BY_NAME)}")
        cells = [CELL_BY_NAME[n] for n in names]
    workdir = os.path.join(a.cache, "kexec-matrix")
    try:
        if not os.path.isfile(a.rkexec):
            raise FileNotFoundError(f"{a.rkexec} missing: cargo build --release --locked --target {TARGET} "
                                    "-p loader-host --bin rkexec")
        loader = km.Loader("rkexec", "rkexec", adds=((a.rkexec, "/sbin/rkexec"),), purgatory=True)
        build_base(a.cache, loader, workdir)
        if any(c.kdump for c in cells):
            build_kdump_initrd(a.cache, workdir, a.vmcore_check)
    except (OSError, ValueError) as e:
        print(f"kexec_riscv64: {e}", file=sys.stderr)
        return 2
    km.prune_runs(workdir)
    rundir = os.path.join(workdir, "runs", time.strftime("%Y%m%d-%H%M%S") + f"-rv-{os.getpid()}")
    os.makedirs(rundir, exist_ok=True)
    print(f"kexec_riscv64: {len(cells)} cell(s), {a.jobs} job(s), logs in {rundir}", flush=True)
    t0 = time.monotonic()
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        futs = {ex.submit(run_cell, c, loader, a.cache, rundir, a.timeout, a.verbose, a.vmcore_check): c
                for c in cells}
        for fut in concurrent.futures.as_completed(futs):
            c = futs[fut]
            try:
                r = fut.result()
            except Exception as e:  # noqa: BLE001 -- a harness bug must not hide the other cell
                r = km.Result(c.name, loader.name, False, f"harness error: {e!r}", {}, 0.0, "", [])
            results.append(r)
            print(describe(r), flush=True)
    npass = sum(r.ok for r in results)
    print(f"kexec_riscv64: {time.monotonic() - t0:.0f} s wall", flush=True)
    print(f"{npass} passed, {len(results) - npass} failed", flush=True)
    return 0 if npass == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
