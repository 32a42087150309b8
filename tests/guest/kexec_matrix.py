#!/usr/bin/env python3
"""Full-kexec QEMU tier (arm64): a real Debian kernel kexecs a real Debian kernel.

For every cell, QEMU boots kernel 1 (a Debian cloud Image) with an initramfs
holding busybox, the loader under test (rkexec, or Debian's kexec-tools tree),
/kernel2 (the same Debian Image) and /initrd2 (a tiny initrd whose /init prints
KERNEL2-INIT-OK plus its /proc/cmdline and powers off). Kernel 1's /init
sources /cell.sh, which loads kernel 2 with the loader, prints
KEXEC-EXEC-START and execs it.

The big part of that initramfs (busybox, loaders, kernel 2, initrd 2, /init)
is built once per (suite, loaders) and cached by content hash under
cache/kexec-matrix/; /cell.sh is a second, tiny gzip'd cpio archive appended
to it per run (the kernel unpacks concatenated archives in order). Each run
draws a fresh random marker per cell, and the marker is only ever on kernel
2's command line (or, for reuse-cmdline, on kernel 1's), so stale logs or a
loader that ignores --append cannot pass.

A cell passes only on what kernel 2 itself printed: after KEXEC-EXEC-START, a
kernel boot line, then a `KERNEL2-INIT-OK cmdline: ...` line carrying the
cell's marker; for rkexec, the purgatory's `purgatory: verified` summary must
sit between KEXEC-EXEC-START and kernel 2's first line; the EL2 cells also
check the exception level (and VHE) that kernel 1 and kernel 2 report.

    scripts/fetch-fixtures.sh --arch arm64
    cargo build --release --locked --target aarch64-unknown-linux-musl -p guest-tools --bin vmcore-check
    tests/guest/kexec_matrix.py [--loader rkexec|kexec-tools] [--cells el1,trixie,kdump-el1]
                                [--jobs 2] [--timeout 180] [-v] [--json out.json]

kdump cells (kdump-el1, kdump-el2; -smp 2, kernel 1 with crashkernel=256M)
load the same kernel as a capture kernel with `-p` and an own tiny initrd
(/initrd-kdump: busybox + the static vmcore-check tool), then crash kernel 1
with sysrq-c. They pass only on what the guests printed: the purgatory's
summary between kernel 1's panic and the capture kernel's first line, the
capture init's KDUMP-INIT-OK line with the cell's marker, and vmcore-check's
view of /proc/vmcore (one merged PT_NOTE with vmcoreinfo and >= 1 PRSTATUS,
as many PT_LOADs as kernel 1's plan note announced, OSRELEASE = kernel 1's
`uname -r`, a successful read of the first PT_LOAD).

Library: build_base(), build_cell_initrd(), Cell, CELLS, run_cell(), LOADERS.
Nothing here loads or executes a kernel on the host: only QEMU is started.
"""
import argparse
import concurrent.futures
import dataclasses
import fcntl
import gzip
import hashlib
import importlib.util
import io
import json
import os
import re
import secrets
import shutil
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True  # keep the tree free of __pycache__
sys.path.insert(0, HERE)
import qemu_kexec  # noqa: E402

_MK_PATH = os.path.join(ROOT, "scripts", "mk-initramfs.py")
_spec = importlib.util.spec_from_file_location("mk_initramfs", _MK_PATH)
mk = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mk)

DEFAULT_CACHE = os.environ.get("RKEXEC_CACHE", os.path.join(ROOT, "cache"))
DEFAULT_RKEXEC = os.path.join(ROOT, "target", "aarch64-unknown-linux-musl", "release", "rkexec")
DEFAULT_VMCORE_CHECK = os.path.join(ROOT, "target", "aarch64-unknown-linux-musl", "release", "vmcore-check")
FORMAT = "kexec-matrix-v1"  # bump to invalidate every cached initramfs

# Kernel 1's command line (both kernels get earlycon, so the first line of
# kernel 2 is printed at its entry and the hand-off time means something).
K1_APPEND = "console=ttyAMA0 earlycon nokaslr rdinit=/init"
# Kernel 2's command line, minus the per-cell marker.
K2_APPEND = "console=ttyAMA0 earlycon nokaslr rdinit=/init"
# kdump cells: kernel 1 reserves the crash kernel region; the capture
# kernel's command line (minus the marker) brings up one CPU only.
KDUMP_CRASHKERNEL = "256M"
KDUMP_APPEND = K2_APPEND + " maxcpus=1"

# ---------------------------------------------------------------------------
# Guest scripts
# ---------------------------------------------------------------------------

# Kernel 1's /init. Helpers for /cell.sh:
#   ktime            KT := nanoseconds since boot (/proc/timer_list "now at",
#                    shell builtins only, no fork; falls back to /proc/uptime)
#   timed CMD...     run CMD between KEXEC-LOAD-START / KEXEC-LOAD-DONE lines,
#                    the latter with rc= and the in-guest ns= duration
#   do_exec CMD...   print KEXEC-EXEC-START and run CMD (e.g. `kexec -e`)
INIT1 = r"""#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
ktime() {
    if [ -r /proc/timer_list ]; then
        while read -r _a _b _c _d; do
            if [ "$_a $_b" = "now at" ]; then KT=$_c; return 0; fi
        done </proc/timer_list
    fi
    read -r _u _rest </proc/uptime
    KT=$(( ${_u%.*} * 1000000000 + ${_u#*.} * 10000000 ))
}
timed() {
    echo "KEXEC-LOAD-START $*"
    ktime; _t0=$KT
    "$@"
    _rc=$?
    ktime
    echo "KEXEC-LOAD-DONE rc=$_rc ns=$((KT - _t0))"
    return $_rc
}
do_exec() {
    sync
    echo KEXEC-EXEC-START
    "$@"
    echo "KEXEC-EXEC-FAILED rc=$?"
}
echo "INIT1-START $(cat /proc/uptime)"
if [ -f /cell.sh ]; then
    . /cell.sh
    echo "CELL-SCRIPT-DONE rc=$?"
else
    echo "CELL-SCRIPT-MISSING"
fi
poweroff -f
"""

# Kernel 2's /init. The success word is split in the script so that the
# literal KERNEL2-INIT-OK never exists in kernel 1's initramfs.
INIT2 = r"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
read -r CMDLINE </proc/cmdline
read -r UP _rest </proc/uptime
echo "KERNEL2-""INIT-OK uptime=$UP cmdline: $CMDLINE"
poweroff -f
"""

# The capture kernel's /init (in /initrd-kdump). Success words split as in
# INIT2. `ls -l` (a stat) gives the vmcore size without reading it.
INIT_KDUMP = r"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
read -r CMDLINE </proc/cmdline
read -r UP _rest </proc/uptime
echo "KDUMP-""INIT-OK uptime=$UP cmdline: $CMDLINE"
if [ -e /proc/vmcore ]; then
    echo "KDUMP-VMCORE-PRESENT $(ls -l /proc/vmcore)"
    /vmcore-check /proc/vmcore
    echo "KDUMP-VMCORE-CHECK rc=$?"
else
    echo "KDUMP-NO-VMCORE"
fi
echo "KDUMP-""DONE"
poweroff -f
"""

# ---------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Loader:
    name: str          # "rkexec" | "kexec-tools"
    cmd: str           # command name inside the guest
    adds: tuple = ()   # (src, dest) files for the initramfs
    trees: tuple = ()  # (src_dir, dest) trees for the initramfs
    purgatory: bool = False  # our purgatory: expect its console summary


def make_loader(name, cache=DEFAULT_CACHE, rkexec=DEFAULT_RKEXEC):
    if name == "kexec-tools":
        tree = os.path.join(cache, "arm64", "kexec-tools")
        if not os.path.isfile(os.path.join(tree, "sbin", "kexec")):
            raise FileNotFoundError(f"{tree}/sbin/kexec missing: run scripts/fetch-fixtures.sh --arch arm64")
        return Loader("kexec-tools", "kexec", trees=((tree, "/"),))
    if name == "rkexec":
        if not os.path.isfile(rkexec):
            raise FileNotFoundError(
                f"{rkexec} missing: cargo build --release --locked --target aarch64-unknown-linux-musl "
                "-p loader-host --bin rkexec")
        return Loader("rkexec", "rkexec", adds=((rkexec, "/sbin/rkexec"),), purgatory=True)
    raise ValueError(f"unknown loader {name!r} (rkexec | kexec-tools)")


LOADERS = ("rkexec", "kexec-tools")

# ---------------------------------------------------------------------------
# Content-hash cached images
# ---------------------------------------------------------------------------

_hash_memo = {}
_hash_lock = threading.Lock()


def file_hash(path):
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        if key in _hash_memo:
            return _hash_memo[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    with _hash_lock:
        _hash_memo[key] = h.hexdigest()
    return h.hexdigest()


def tree_hash(d):
    h = hashlib.sha256()
    for root, dirs, files in os.walk(d):
        dirs.sort()
        for fn in sorted(files) + [x for x in dirs if os.path.islink(os.path.join(root, x))]:
            p = os.path.join(root, fn)
            rel = os.path.relpath(p, d)
            if os.path.islink(p):
                h.update(f"L {rel} {os.readlink(p)}\n".encode())
            else:
                h.update(f"F {rel} {oct(os.stat(p).st_mode)} {file_hash(p)}\n".encode())
    return h.hexdigest()


def _cached(workdir, stem, key, builder, keep=4):
    """Return workdir/stem-KEY.cpio.gz, building it under a lock if needed;
    prune all but the `keep` most recent stem-* images."""
    os.makedirs(workdir, exist_ok=True)
    out = os.path.join(workdir, f"{stem}-{key[:16]}.cpio.gz")
    with open(os.path.join(workdir, f".{stem}.lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if os.path.isfile(out):
            os.utime(out)
        else:
            builder(out)
            old = sorted((p for p in os.listdir(workdir)
                          if p.startswith(stem + "-") and p.endswith(".cpio.gz")),
                         key=lambda p: os.path.getmtime(os.path.join(workdir, p)), reverse=True)
            for p in old[keep:]:
                try:
                    os.unlink(os.path.join(workdir, p))
                except OSError:
                    pass
    return out


def fixture_paths(cache, suite):
    arch = os.path.join(cache, "arm64")
    paths = {"kernel": os.path.join(arch, suite, "Image"), "busybox": os.path.join(arch, "busybox")}
    for p in paths.values():
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p} missing: run scripts/fetch-fixtures.sh --arch arm64")
    return paths


def build_initrd2(cache, workdir):
    bb = fixture_paths(cache, "bookworm")["busybox"]
    key = hashlib.sha256(f"{FORMAT}\n{INIT2}\n{file_hash(bb)}\n{file_hash(_MK_PATH)}".encode()).hexdigest()
    return _cached(workdir, "initrd2", key, lambda out: mk.build(out, INIT2, bb, init_path="/init"))


def build_kdump_initrd(cache, workdir, vmcore_check=DEFAULT_VMCORE_CHECK):
    """The capture kernel's initrd: busybox + /vmcore-check + INIT_KDUMP."""
    if not os.path.isfile(vmcore_check):
        raise FileNotFoundError(
            f"{vmcore_check} missing: cargo build --release --locked --target aarch64-unknown-linux-musl "
            "-p guest-tools --bin vmcore-check")
    bb = fixture_paths(cache, "bookworm")["busybox"]
    key = hashlib.sha256(f"{FORMAT}\n{INIT_KDUMP}\n{file_hash(bb)}\n{file_hash(_MK_PATH)}\n"
                         f"vmcore-check {file_hash(vmcore_check)}".encode()).hexdigest()
    return _cached(workdir, "initrd-kdump", key,
                   lambda out: mk.build(out, INIT_KDUMP, bb, adds=[(vmcore_check, "/vmcore-check")],
                                        init_path="/init"))


def build_base(cache, suite, loaders, workdir=None, init1=INIT1):
    """Kernel 1's initramfs minus /cell.sh, for `suite` with all `loaders`.

    Returns (kernel_image_path, base_initramfs_path)."""
    workdir = workdir or os.path.join(cache, "kexec-matrix")
    fx = fixture_paths(cache, suite)
    initrd2 = build_initrd2(cache, workdir)
    adds = [(fx["kernel"], "/kernel2"), (initrd2, "/initrd2")]
    trees = []
    for ld in loaders:
        adds += list(ld.adds)
        trees += list(ld.trees)
    h = hashlib.sha256(f"{FORMAT}\n{init1}\n{file_hash(_MK_PATH)}\nbusybox {file_hash(fx['busybox'])}\n".encode())
    for src, dest in adds:
        h.update(f"add {dest} {oct(os.stat(src).st_mode)} {file_hash(src)}\n".encode())
    for src, dest in trees:
        h.update(f"tree {dest} {tree_hash(src)}\n".encode())
    stem = f"base-{suite}-{'+'.join(ld.name for ld in loaders)}"
    base = _cached(workdir, stem, h.hexdigest(),
                   lambda out: mk.build(out, init1, fx["busybox"], adds=adds, trees=trees))
    return fx["kernel"], base


def build_cell_initrd(base, cell_script, out, adds=()):
    """out := base + a gzip'd newc archive holding /cell.sh (and `adds`,
    (src, dest) files, e.g. the kdump cells' /initrd-kdump)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        w = mk.Newc(mk._Counting(gz))
        for src, dest in adds:
            w.file(dest, src)
        w.data("cell.sh", cell_script.encode(), 0o755)
        w.close()
    tmp = out + ".tmp"
    with open(base, "rb") as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.write(buf.getvalue())
    os.replace(tmp, out)
    return out

# ---------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Cell:
    name: str
    doc: str
    suite: str = "bookworm"
    machine: str = "virt,dtb-randomness=off"
    cpu: str = "cortex-a72"
    reuse_cmdline: bool = False  # marker on kernel 1's cmdline, --reuse-cmdline
    dtb_override: bool = False   # --dtb=<dump of /sys/firmware/fdt>
    k1_el: str = "EL1"           # "CPU: All CPU(s) started at <EL>" expected
    k2_el: str = "EL1"
    vhe: bool = False            # both kernels must report VHE
    smp: int = 1
    kdump: bool = False          # -p capture kernel, sysrq-c, check /proc/vmcore

    def k1_append(self, marker):
        return (K1_APPEND + (f" crashkernel={KDUMP_CRASHKERNEL}" if self.kdump else "")
                + (f" MARKER={marker}" if self.reuse_cmdline else ""))

    def script(self, loader, marker, load_flags=""):
        """/cell.sh: load kernel 2 with `loader`, print KEXEC-EXEC-START, exec."""
        if self.kdump:
            return self.kdump_script(loader, marker, load_flags)
        L = loader.cmd
        flags = f" {load_flags}" if load_flags else ""
        lines = [f"LOADER={L}", f"M={marker}"]
        if self.reuse_cmdline:
            load = f"timed $LOADER{flags} -l /kernel2 --initrd=/initrd2 --reuse-cmdline"
        else:
            extra = ""
            if self.dtb_override:
                lines.append("cat /sys/firmware/fdt >/tmp/k1.dtb || echo 'CELL: cannot copy /sys/firmware/fdt'")
                lines.append('echo "CELL: dtb $(wc -c </tmp/k1.dtb) bytes from /sys/firmware/fdt"')
                extra = " --dtb=/tmp/k1.dtb"
            load = (f'timed $LOADER{flags} -l /kernel2 --initrd=/initrd2{extra} '
                    f'--append="{K2_APPEND} MARKER=$M"')
        lines += [
            load + " || { echo KEXEC-LOAD-FAILED; return 1; }",
            "$LOADER -S -l; echo \"KEXEC-STATUS rc=$?\"" if loader.purgatory else ":",
            "do_exec $LOADER -e",
            "return 1",
        ]
        return "\n".join(lines) + "\n"

    def kdump_script(self, loader, marker, load_flags=""):
        """/cell.sh for kdump: check the reservation, load /kernel2 as the
        capture kernel (-p, -d: the plan, with its elfcorehdr note), report
        the crash-load status, then crash kernel 1 (sysrq-c)."""
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
            '$LOADER -S; echo "KEXEC-STATUS rc=$?"',
            'echo "KEXEC-CRASH-LOADED $(cat /sys/kernel/kexec_crash_loaded)"',
            "sync",
            "echo KDUMP-PANIC-START",
            "echo c >/proc/sysrq-trigger",
            'echo "KDUMP-PANIC-FAILED rc=$?"',
            "return 1",
        ]) + "\n"


CELLS = [
    Cell("el1", "plain virt, kernel 1 at EL1"),
    Cell("el2-nvhe", "virt,virtualization=on, cortex-a72 (no VHE): kernel 1 entered at EL2, runs at EL1 over its nVHE hyp; kexec goes via EL2",
         machine="virt,virtualization=on,dtb-randomness=off", k1_el="EL2", k2_el="EL2"),
    # pauth-impdef: QEMU's architected QARMA pointer-auth is very slow under
    # TCG; the IMPDEF algorithm is architecturally equivalent for the guest.
    Cell("el2-vhe", "virt,virtualization=on, -cpu max: kernel 1 runs at EL2 with VHE",
         machine="virt,virtualization=on,dtb-randomness=off", cpu="max,pauth-impdef=on",
         k1_el="EL2", k2_el="EL2", vhe=True),
    Cell("dtb-override", "--dtb = kernel 1's /sys/firmware/fdt, marker via --append", dtb_override=True),
    Cell("reuse-cmdline", "marker on kernel 1's cmdline, --reuse-cmdline", reuse_cmdline=True),
    Cell("trixie", "trixie 6.12 kernel as kernel 1 and kernel 2", suite="trixie"),
    Cell("kdump-el1", f"kdump: -smp 2, crashkernel={KDUMP_CRASHKERNEL}, -p capture kernel, sysrq-c, /proc/vmcore",
         smp=2, kdump=True),
    Cell("kdump-el2", "kdump as kdump-el1 with virt,virtualization=on (kernel 1 entered at EL2, nVHE)",
         machine="virt,virtualization=on,dtb-randomness=off", k1_el="EL2", k2_el="EL2", smp=2, kdump=True),
]
CELL_BY_NAME = {c.name: c for c in CELLS}

# ---------------------------------------------------------------------------
# Running and judging
# ---------------------------------------------------------------------------

STOP_RE = (r"KERNEL2-INIT-OK|KEXEC-LOAD-FAILED|KEXEC-EXEC-FAILED|CELL-SCRIPT-|"
           r"Kernel panic - not syncing|purgatory: REFUSED")
PURG_RE = re.compile(r"purgatory: verified (\d+) segments?, (\d+) bytes hashed with (\S+) in (\d+) us")
EL_RE = re.compile(r"CPU: All CPU\(s\) started at (EL\d)")
VHE_RE = re.compile(r"Virtualization Host Extensions|VHE mode initialized")


# kdump cells
KDUMP_STOP_RE = (r"^KDUMP-DONE|^KDUMP-PANIC-FAILED|KEXEC-LOAD-FAILED|K1-NO-CRASHKERNEL|CELL-SCRIPT-|"
                 r"purgatory: REFUSED")
PANIC_RE = r"Kernel panic - not syncing"
PLAN_CORE_RE = re.compile(r"elfcorehdr: (\d+) CPU notes \+ vmcoreinfo, (\d+) PT_LOAD")
SMP_RE = re.compile(r"SMP: Total of (\d+) processors? activated")


def _find(lines, regex, start=0, end=None):
    pat = re.compile(regex)
    for i in range(start, len(lines) if end is None else min(end, len(lines))):
        if pat.search(lines[i].text):
            return i
    return None


def judge(cell, loader, marker, lines, min_hashed=1):
    """Returns (ok, reason, info) from a console transcript.

    min_hashed: the purgatory must report at least this many bytes hashed
    (run_cell passes the sizes of kernel 2 + initrd 2: verification on)."""
    if cell.kdump:
        return judge_kdump(cell, loader, marker, lines, min_hashed)
    info = {}
    T = [l.text for l in lines]
    i_ref = _find(lines, r"purgatory: REFUSED")
    if i_ref is not None:
        return False, f"purgatory refused: {T[i_ref].strip()}", info
    i_ld = _find(lines, r"^KEXEC-LOAD-DONE ")
    if i_ld is not None:
        m = re.search(r"rc=(\d+) ns=(-?\d+)", T[i_ld])
        if m:
            info["load_rc"], info["load_guest_s"] = int(m.group(1)), int(m.group(2)) / 1e9
        i_ls = _find(lines, r"^KEXEC-LOAD-START", 0, i_ld)
        if i_ls is not None:
            info["load_host_s"] = lines[i_ld].t - lines[i_ls].t
    i_st = _find(lines, r"^KEXEC-STATUS rc=")
    if i_st is not None:
        info["status_rc"] = int(T[i_st].split("rc=")[1].split()[0])
    if _find(lines, r"^KEXEC-LOAD-FAILED") is not None:
        return False, f"load failed ({T[i_ld].strip() if i_ld is not None else 'no LOAD-DONE line'})", info
    i_exec = _find(lines, r"^KEXEC-EXEC-START$")
    if i_exec is None:
        return False, "kernel 1 never reached KEXEC-EXEC-START", info
    if _find(lines, r"^KEXEC-EXEC-FAILED", i_exec) is not None:
        return False, f"exec returned to kernel 1: {T[_find(lines, r'^KEXEC-EXEC-FAILED', i_exec)]}", info
    i_boot = _find(lines, qemu_kexec.KERNEL_BOOT_RE.pattern, i_exec + 1)
    if i_boot is None:
        return False, "kernel 2 never printed a boot line after KEXEC-EXEC-START", info
    info["handoff_s"] = lines[i_boot].t - lines[i_exec].t
    i_bye = _find(lines, r"\] Bye!$", i_exec, i_boot)  # machine_kexec's last words
    if i_bye is None:
        i_bye = _find(lines, r"kexec_core: Starting new kernel", i_exec, i_boot)
    if i_bye is not None:
        info["machine_kexec_to_k2_s"] = lines[i_boot].t - lines[i_bye].t
    # purgatory summary, strictly between the exec marker and kernel 2's first line
    if loader.purgatory:
        i_pv = None
        for i in range(i_exec + 1, i_boot):
            m = PURG_RE.search(T[i])
            if m:
                i_pv = i
                info["purgatory"] = {"segments": int(m.group(1)), "bytes": int(m.group(2)),
                                     "engine": m.group(3), "us": int(m.group(4))}
                break
        if i_pv is None:
            anyp = [t for t in T[i_exec:i_boot] if "purgatory:" in t]
            return False, ("no 'purgatory: verified' summary before kernel 2's first line"
                           + (f" (purgatory said: {anyp[-1].strip()})" if anyp else " (no purgatory output)")), info
        if info["purgatory"]["bytes"] < min_hashed:
            return False, (f"purgatory hashed only {info['purgatory']['bytes']} bytes, less than kernel 2 + "
                           f"initrd 2 ({min_hashed}): {T[i_pv].strip()}"), info
    i_ok = _find(lines, r"^KERNEL2-INIT-OK ", i_boot + 1)
    if i_ok is None:
        i_p = _find(lines, r"Kernel panic", i_boot)
        return False, ("kernel 2 panicked: " + T[i_p].strip()) if i_p is not None else \
            "kernel 2 booted but its init never printed KERNEL2-INIT-OK", info
    info["kernel2_init_s"] = lines[i_ok].t - lines[i_exec].t
    cmdline = T[i_ok].split("cmdline:", 1)[1].split() if "cmdline:" in T[i_ok] else []
    info["k2_cmdline"] = " ".join(cmdline)
    if f"MARKER={marker}" not in cmdline:
        return False, f"kernel 2's cmdline lacks MARKER={marker}: {' '.join(cmdline)!r}", info
    # exception levels and VHE, as each kernel reported them
    k1 = [EL_RE.search(t) for t in T[:i_exec]]
    k2 = [EL_RE.search(t) for t in T[i_boot:i_ok]]
    k1_el = next((m.group(1) for m in k1 if m), None)
    k2_el = next((m.group(1) for m in k2 if m), None)
    info["k1_el"], info["k2_el"] = k1_el, k2_el
    if k1_el != cell.k1_el:
        return False, f"kernel 1 started at {k1_el}, expected {cell.k1_el}", info
    if k2_el != cell.k2_el:
        return False, f"kernel 2 started at {k2_el}, expected {cell.k2_el} (kexec lost EL2?)", info
    k1_vhe = any(VHE_RE.search(t) for t in T[:i_exec])
    k2_vhe = any(VHE_RE.search(t) for t in T[i_boot:i_ok])
    info["k1_vhe"], info["k2_vhe"] = k1_vhe, k2_vhe
    if cell.vhe and not (k1_vhe and k2_vhe):
        return False, f"VHE expected on both kernels (kernel 1: {k1_vhe}, kernel 2: {k2_vhe})", info
    if not cell.vhe and (k1_vhe or k2_vhe):
        return False, f"unexpected VHE (kernel 1: {k1_vhe}, kernel 2: {k2_vhe})", info
    # EL2 cells: kernel 2's KVM must come up again (the hyp state survived)
    if cell.k2_el == "EL2":
        want = "VHE mode initialized successfully" if cell.vhe else "Hyp mode initialized successfully"
        if not any(want in t for t in T[i_boot:i_ok]):
            return False, f"kernel 2 did not print 'kvm [1]: {want}'", info
    # kernel 2 is the image we meant (same build as kernel 1 in every cell)
    v1 = next((t.split("Linux version ", 1)[1].split()[0] for t in T[:i_exec] if "Linux version " in t), None)
    v2 = next((t.split("Linux version ", 1)[1].split()[0] for t in T[i_boot:i_ok] if "Linux version " in t), None)
    info["k1_version"], info["k2_version"] = v1, v2
    if v1 != v2:
        return False, f"kernel 2 is {v2}, expected {v1}", info
    return True, "", info


def _el_vhe_version(T, start, end):
    el = next((m.group(1) for m in (EL_RE.search(t) for t in T[start:end]) if m), None)
    vhe = any(VHE_RE.search(t) for t in T[start:end])
    ver = next((t.split("Linux version ", 1)[1].split()[0] for t in T[start:end] if "Linux version " in t), None)
    return el, vhe, ver


def judge_kdump(cell, loader, marker, lines, min_hashed=1):
    """judge() for the kdump cells: kernel 1 loads a capture kernel with -p
    and crashes; the capture kernel's init runs vmcore-check."""
    info = {}
    T = [l.text for l in lines]
    i_ref = _find(lines, r"purgatory: REFUSED")
    if i_ref is not None:
        return False, f"purgatory refused: {T[i_ref].strip()}", info
    i_rel = _find(lines, r"^K1-RELEASE=")
    if i_rel is None:
        return False, "kernel 1's cell script never printed K1-RELEASE", info
    info["k1_release"] = T[i_rel].split("=", 1)[1].strip()
    i_nock = _find(lines, r"^K1-NO-CRASHKERNEL")
    if i_nock is not None:
        return False, f"kernel 1 reserved no crash kernel region: {T[i_nock].strip()}", info
    i_ck = _find(lines, r"^K1-CRASHKERNEL ")
    if i_ck is not None:
        info["crashkernel"] = T[i_ck].split(None, 1)[1].strip()
        m = re.match(r"([0-9a-fA-F]+)-([0-9a-fA-F]+)", info["crashkernel"])
        if m:
            info["crashkernel_mb"] = (int(m.group(2), 16) + 1 - int(m.group(1), 16)) / (1 << 20)
    i_ld = _find(lines, r"^KEXEC-LOAD-DONE ")
    if i_ld is not None:
        m = re.search(r"rc=(\d+) ns=(-?\d+)", T[i_ld])
        if m:
            info["load_rc"], info["load_guest_s"] = int(m.group(1)), int(m.group(2)) / 1e9
    if _find(lines, r"^KEXEC-LOAD-FAILED") is not None:
        return False, f"-p load failed ({T[i_ld].strip() if i_ld is not None else 'no LOAD-DONE line'})", info
    i_start = _find(lines, r"^KDUMP-PANIC-START$")
    if i_start is None:
        return False, "kernel 1 never reached KDUMP-PANIC-START", info
    for i in range(i_rel, i_start):  # the -d plan, printed while loading
        m = PLAN_CORE_RE.search(T[i])
        if m:
            info["plan_cpu_notes"], info["plan_pt_load"] = int(m.group(1)), int(m.group(2))
            info["plan_note"] = T[i].strip()
    if loader.purgatory and "plan_pt_load" not in info:
        return False, "no 'elfcorehdr: N CPU notes + vmcoreinfo, M PT_LOAD' note in the -d plan", info
    i_st = _find(lines, r"^KEXEC-STATUS rc=", 0, i_start)
    if i_st is not None:
        info["status_rc"] = int(T[i_st].split("rc=")[1].split()[0])
    i_cl = _find(lines, r"^KEXEC-CRASH-LOADED ", 0, i_start)
    info["crash_loaded"] = T[i_cl].split(None, 1)[1].strip() if i_cl is not None and \
        len(T[i_cl].split(None, 1)) > 1 else None
    if info["crash_loaded"] != "1":
        return False, f"/sys/kernel/kexec_crash_loaded is {info['crash_loaded']!r} after the -p load", info
    i_pf = _find(lines, r"^KDUMP-PANIC-FAILED", i_start)
    if i_pf is not None:
        return False, f"sysrq-c returned to kernel 1: {T[i_pf].strip()}", info
    m = SMP_RE.search("\n".join(T[:i_start]))
    info["k1_cpus"] = int(m.group(1)) if m else None
    i_panic = _find(lines, PANIC_RE, i_start)
    if i_panic is None:
        return False, "kernel 1 never printed 'Kernel panic - not syncing' after sysrq-c", info
    i_boot = _find(lines, qemu_kexec.KERNEL_BOOT_RE.pattern, i_panic + 1)
    if i_boot is None:
        anyp = [t for t in T[i_panic:] if "purgatory:" in t]
        return False, ("the capture kernel never printed a boot line after kernel 1's panic"
                       + (f" (purgatory said: {anyp[-1].strip()})" if anyp else " (no purgatory output)")), info
    info["panic_to_capture_s"] = lines[i_boot].t - lines[i_panic].t
    i_bye = _find(lines, r"Starting crashdump kernel", i_panic, i_boot)
    if i_bye is not None:
        info["machine_kexec_to_k2_s"] = lines[i_boot].t - lines[i_bye].t
    if loader.purgatory:
        i_pv = None
        for i in range(i_panic + 1, i_boot):
            m = PURG_RE.search(T[i])
            if m:
                i_pv = i
                info["purgatory"] = {"segments": int(m.group(1)), "bytes": int(m.group(2)),
                                     "engine": m.group(3), "us": int(m.group(4))}
                info["purgatory_line"] = T[i].strip()
                break
        if i_pv is None:
            anyp = [t for t in T[i_panic:i_boot] if "purgatory:" in t]
            return False, ("no 'purgatory: verified' summary between kernel 1's panic and the capture kernel's "
                           "first line" + (f" (purgatory said: {anyp[-1].strip()})" if anyp
                                           else " (no purgatory output)")), info
        if info["purgatory"]["bytes"] < min_hashed:
            return False, (f"purgatory hashed only {info['purgatory']['bytes']} bytes, less than the capture "
                           f"kernel + its initrd ({min_hashed}): {T[i_pv].strip()}"), info
    i_ok = _find(lines, r"^KDUMP-INIT-OK ", i_boot + 1)
    if i_ok is None:
        i_p = _find(lines, r"Kernel panic", i_boot)
        return False, ("the capture kernel panicked: " + T[i_p].strip()) if i_p is not None else \
            "the capture kernel booted but its init never printed KDUMP-INIT-OK", info
    info["capture_init_s"] = lines[i_ok].t - lines[i_panic].t
    cmdline = T[i_ok].split("cmdline:", 1)[1].split() if "cmdline:" in T[i_ok] else []
    info["k2_cmdline"] = " ".join(cmdline)
    if f"MARKER={marker}" not in cmdline:
        return False, f"the capture kernel's cmdline lacks MARKER={marker}: {' '.join(cmdline)!r}", info
    if _find(lines, r"^KDUMP-NO-VMCORE", i_ok) is not None:
        return False, "the capture kernel has no /proc/vmcore", info
    i_done = _find(lines, r"^KDUMP-DONE$", i_ok)
    if i_done is None:
        return False, "the capture init never printed KDUMP-DONE", info
    vm = [t for t in T[i_ok:i_done] if t.startswith("VMCORE ")]
    info["vmcore"] = vm
    err = next((t for t in vm if t.startswith("VMCORE error")), None)
    i_rc = _find(lines, r"^KDUMP-VMCORE-CHECK rc=", i_ok, i_done)
    rc = T[i_rc].split("rc=", 1)[1].strip() if i_rc is not None else None
    if err or rc != "0":
        return False, f"vmcore-check failed (rc={rc}): {err or (vm[-1] if vm else 'no output')}", info
    facts = {}
    for t in vm:
        for k, v in re.findall(r"(\w+)=(\S+)", t):
            facts.setdefault(k, v)
    info["vmcore_facts"] = facts
    try:
        pt_note, pt_load = int(facts["pt_note"]), int(facts["pt_load"])
        prstatus, vmcoreinfo = int(facts["prstatus"]), int(facts["vmcoreinfo"])
    except (KeyError, ValueError):
        return False, f"vmcore-check output incomplete: {vm}", info
    info["prstatus"] = prstatus
    if pt_note != 1:
        return False, f"/proc/vmcore has {pt_note} PT_NOTE headers, expected 1 (merged)", info
    if vmcoreinfo != 1:
        return False, f"the merged PT_NOTE holds {vmcoreinfo} VMCOREINFO notes, expected 1", info
    if prstatus < 1:
        return False, "the merged PT_NOTE holds no NT_PRSTATUS note", info
    if "plan_pt_load" in info and pt_load != info["plan_pt_load"]:
        return False, f"/proc/vmcore has {pt_load} PT_LOAD, kernel 1's plan announced {info['plan_pt_load']}", info
    if facts.get("OSRELEASE") != info["k1_release"]:
        return False, f"vmcoreinfo OSRELEASE={facts.get('OSRELEASE')!r}, kernel 1 is {info['k1_release']!r}", info
    if not any(re.match(r"VMCORE load0 paddr=0x[0-9a-f]+ read=\d+ ok$", t) for t in vm):
        return False, "no 'VMCORE load0 ... ok' line", info
    # exception levels (the capture kernel is entered like a kexec'd one)
    k1_el, k1_vhe, v1 = _el_vhe_version(T, 0, i_start)
    k2_el, k2_vhe, v2 = _el_vhe_version(T, i_boot, i_ok)
    info.update(k1_el=k1_el, k2_el=k2_el, k1_vhe=k1_vhe, k2_vhe=k2_vhe, k1_version=v1, k2_version=v2)
    if k1_el != cell.k1_el:
        return False, f"kernel 1 started at {k1_el}, expected {cell.k1_el}", info
    if k2_el != cell.k2_el:
        return False, f"the capture kernel started at {k2_el}, expected {cell.k2_el}", info
    if v1 != v2:
        return False, f"the capture kernel is {v2}, expected {v1}", info
    return True, "", info


@dataclasses.dataclass
class Result:
    cell: str
    loader: str
    ok: bool
    reason: str
    info: dict
    elapsed: float
    log: str
    tail: list
    window: list = dataclasses.field(default_factory=list)  # hand-off lines, on a purgatory failure

    def line(self):
        if self.ok and "vmcore_facts" in self.info:  # kdump cell
            i = self.info
            f = i["vmcore_facts"]
            bits = [f"panic->capture {i['panic_to_capture_s']:.2f} s"]
            if "load_guest_s" in i:
                bits.append(f"load -p {i['load_guest_s']:.2f} s")
            if "purgatory" in i:
                p = i["purgatory"]
                bits.append(f"purgatory {p['segments']} seg {p['bytes'] / 1e6:.1f} MB {p['engine']} {p['us']} us")
            bits.append(f"crashkernel {i.get('crashkernel_mb', 0):.0f} MB")
            bits.append(f"vmcore pt_note={f['pt_note']} pt_load={f['pt_load']}"
                        + (f" (plan {i['plan_pt_load']})" if "plan_pt_load" in i else "")
                        + f" prstatus={i['prstatus']}/{i.get('k1_cpus')} cpus vmcoreinfo={f['vmcoreinfo']}"
                        + f" OSRELEASE={f['OSRELEASE']}")
            bits.append(f"k1 {i['k1_el']}{'/VHE' if i['k1_vhe'] else ''} -> k2 {i['k2_el']}{'/VHE' if i['k2_vhe'] else ''}")
            if i.get("status_rc") not in (None, 0):
                bits.append(f"WARNING: -S exited {i['status_rc']}")
            if i.get("k1_cpus") and i["prstatus"] != i["k1_cpus"]:
                bits.append(f"WARNING: {i['prstatus']} PRSTATUS notes for {i['k1_cpus']} online CPUs")
            bits.append(f"{self.elapsed:.0f} s")
            return f"PASS {self.cell} ({', '.join(bits)})"
        if self.ok and "summary" in self.info:  # cells judged by their own rules
            return f"PASS {self.cell} ({self.info['summary']}, {self.elapsed:.0f} s)"
        if self.ok:
            i = self.info
            bits = [f"handoff {i['handoff_s']:.2f} s"]
            if "load_guest_s" in i:
                bits.append(f"load {i['load_guest_s']:.2f} s")
            if "purgatory" in i:
                p = i["purgatory"]
                bits.append(f"purgatory {p['segments']} seg {p['bytes'] / 1e6:.1f} MB {p['engine']} {p['us']} us")
            bits.append(f"k1 {i['k1_el']}{'/VHE' if i['k1_vhe'] else ''} -> k2 {i['k2_el']}{'/VHE' if i['k2_vhe'] else ''}")
            if i.get("status_rc") not in (None, 0):
                bits.append(f"WARNING: -S -l exited {i['status_rc']}")
            bits.append(f"{self.elapsed:.0f} s")
            return f"PASS {self.cell} ({', '.join(bits)})"
        tail = "\n".join("    " + str(l) for l in self.tail)
        out = f"FAIL {self.cell}: {self.reason}\n  last {len(self.tail)} console lines ({self.log}):\n{tail}"
        if self.window:
            out += "\n  console from KEXEC-EXEC-START:\n" + "\n".join("    " + str(l) for l in self.window)
        return out


def _wait_kdump(q, timeout, panic_grace=60):
    """Wait for the end of a kdump cell. Kernel 1's own panic is expected
    (sysrq-c): after it, wait (at most panic_grace s) for the capture
    kernel's first line, then for KDUMP-DONE or a failure (a second panic)."""
    deadline = time.monotonic() + timeout
    hit = q.wait_for(KDUMP_STOP_RE + "|^KDUMP-PANIC-START$", timeout)
    if hit.text != "KDUMP-PANIC-START":
        return hit
    i = q.lines.index(hit)
    hit = q.wait_for(KDUMP_STOP_RE + "|" + PANIC_RE, max(1.0, deadline - time.monotonic()), i + 1)
    if not re.search(PANIC_RE, hit.text):
        return hit
    i = q.lines.index(hit)
    hit = q.wait_for(KDUMP_STOP_RE + "|" + qemu_kexec.KERNEL_BOOT_RE.pattern,
                     max(1.0, min(panic_grace, deadline - time.monotonic())), i + 1)
    if not qemu_kexec.KERNEL_BOOT_RE.search(hit.text):
        return hit
    i = q.lines.index(hit)
    return q.wait_for(KDUMP_STOP_RE + "|" + PANIC_RE, max(1.0, deadline - time.monotonic()), i + 1)


def run_cell(cell, loader, cache, rundir, timeout=180, echo=False, load_flags="", loaders_in_image=None,
             memory=2048, vmcore_check=DEFAULT_VMCORE_CHECK):
    """Build the cell's initramfs, boot it, judge the console. Returns Result."""
    marker = f"{cell.name}-{secrets.token_hex(6)}"
    cdir = os.path.join(rundir, f"{loader.name}-{cell.name}")
    os.makedirs(cdir, exist_ok=True)
    log = os.path.join(cdir, "console.log")
    t0 = time.monotonic()
    kernel, base = build_base(cache, cell.suite, loaders_in_image or (loader,))
    script = cell.script(loader, marker, load_flags)
    adds, second = (), build_initrd2(cache, os.path.join(cache, "kexec-matrix"))
    if cell.kdump:
        second = build_kdump_initrd(cache, os.path.join(cache, "kexec-matrix"), vmcore_check)
        adds = ((second, "/initrd-kdump"),)
    initrd = build_cell_initrd(base, script, os.path.join(cdir, "initrd1.cpio.gz"), adds)
    with open(os.path.join(cdir, "cell.sh"), "w") as f:
        f.write(script)
    q = qemu_kexec.Qemu(kernel, initrd, cell.k1_append(marker), machine=cell.machine, cpu=cell.cpu,
                        memory=memory, smp=cell.smp, echo=echo, log_path=log)
    err = None
    with q:
        try:
            hit = _wait_kdump(q, timeout) if cell.kdump else q.wait_for(STOP_RE, timeout)
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
        os.unlink(initrd)  # ~20-30 MB each; the cached base stays
    except OSError:
        pass
    lines = list(q.lines)
    min_hashed = 0 if "-i" in load_flags.split() else os.path.getsize(kernel) + os.path.getsize(second)
    ok, reason, info = judge(cell, loader, marker, lines, min_hashed)
    if err and not ok:
        reason = f"{reason} [{err}]"
    info["marker"] = marker
    window = []
    if not ok and "purgatory" in reason:
        i = _find(lines, PANIC_RE, _find(lines, r"^KDUMP-PANIC-START$") or 0) if cell.kdump else \
            _find(lines, r"^KEXEC-EXEC-START$")
        if i is not None and i < len(lines) - 40:
            window = lines[i:i + 25]
    return Result(cell.name, loader.name, ok, reason, info, time.monotonic() - t0, log,
                  lines[-60:] if cell.kdump else lines[-40:], window)


def prune_runs(workdir, keep=6):
    d = os.path.join(workdir, "runs")
    if not os.path.isdir(d):
        return
    runs = sorted(os.listdir(d))
    for r in runs[:-keep] if len(runs) > keep else []:
        shutil.rmtree(os.path.join(d, r), ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loader", default="rkexec", choices=LOADERS)
    ap.add_argument("--rkexec", default=DEFAULT_RKEXEC, help="static aarch64 rkexec binary (default: %(default)s)")
    ap.add_argument("--vmcore-check", default=DEFAULT_VMCORE_CHECK,
                    help="static aarch64 vmcore-check for the kdump cells (default: %(default)s)")
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
            print(f"{c.name:14s} {c.suite:8s} -M {c.machine} -cpu {c.cpu} -smp {c.smp}: {c.doc}")
        return 0
    cells = CELLS
    if a.cells:
        names = [n.strip() for n in a.cells.split(",") if n.strip()]
        bad = [n for n in names if n not in CELL_BY_NAME]
        if bad:
            ap.error(f"unknown cell(s) {','.join(bad)}; known: {','.join(CELL_BY_NAME)}")
        cells = [CELL_BY_NAME[n] for n in names]
    try:
        loader = make_loader(a.loader, a.cache, a.rkexec)
        # build the shared images up front (once per suite), not in the workers
        for suite in sorted({c.suite for c in cells}):
            build_base(a.cache, suite, (loader,))
        build_initrd2(a.cache, os.path.join(a.cache, "kexec-matrix"))
        if any(c.kdump for c in cells):
            build_kdump_initrd(a.cache, os.path.join(a.cache, "kexec-matrix"), a.vmcore_check)
    except (OSError, ValueError) as e:
        print(f"kexec_matrix: {e}", file=sys.stderr)
        return 2
    workdir = os.path.join(a.cache, "kexec-matrix")
    prune_runs(workdir)
    rundir = os.path.join(workdir, "runs", time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}")
    os.makedirs(rundir, exist_ok=True)
    print(f"kexec_matrix: loader {loader.name}, {len(cells)} cell(s), {a.jobs} job(s), logs in {rundir}",
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
                r = Result(c.name, loader.name, False, f"harness error: {e!r}", {}, 0.0, "", [])
            results.append(r)
            print(r.line(), flush=True)
    npass = sum(r.ok for r in results)
    nfail = len(results) - npass
    if a.json:
        with open(a.json, "w") as f:
            json.dump([dataclasses.asdict(r) | {"tail": [str(l) for l in r.tail],
                                                 "window": [str(l) for l in r.window]} for r in results], f, indent=2)
    print(f"kexec_matrix: {time.monotonic() - t0:.0f} s wall", flush=True)
    print(f"{npass} passed, {nfail} failed", flush=True)
    return 0 if nfail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
