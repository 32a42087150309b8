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
    tests/guest/kexec_matrix.py [--loader rkexec|kexec-tools] [--cells el1,trixie]
                                [--jobs 2] [--timeout 180] [-v] [--json out.json]

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
FORMAT = "kexec-matrix-v1"  # bump to invalidate every cached initramfs

# Kernel 1's command line (both kernels get earlycon, so the first line of
# kernel 2 is printed at its entry and the hand-off time means something).
K1_APPEND = "console=ttyAMA0 earlycon nokaslr rdinit=/init"
# Kernel 2's command line, minus the per-cell marker.
K2_APPEND = "console=ttyAMA0 earlycon nokaslr rdinit=/init"

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


def build_cell_initrd(base, cell_script, out):
    """out := base + a gzip'd newc archive holding /cell.sh."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        w = mk.Newc(mk._Counting(gz))
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

    def k1_append(self, marker):
        return K1_APPEND + (f" MARKER={marker}" if self.reuse_cmdline else "")

    def script(self, loader, marker, load_flags=""):
        """/cell.sh: load kernel 2 with `loader`, print KEXEC-EXEC-START, exec."""
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


def run_cell(cell, loader, cache, rundir, timeout=180, echo=False, load_flags="", loaders_in_image=None,
             memory=2048):
    """Build the cell's initramfs, boot it, judge the console. Returns Result."""
    marker = f"{cell.name}-{secrets.token_hex(6)}"
    cdir = os.path.join(rundir, f"{loader.name}-{cell.name}")
    os.makedirs(cdir, exist_ok=True)
    log = os.path.join(cdir, "console.log")
    t0 = time.monotonic()
    kernel, base = build_base(cache, cell.suite, loaders_in_image or (loader,))
    script = cell.script(loader, marker, load_flags)
    initrd = build_cell_initrd(base, script, os.path.join(cdir, "initrd1.cpio.gz"))
    with open(os.path.join(cdir, "cell.sh"), "w") as f:
        f.write(script)
    q = qemu_kexec.Qemu(kernel, initrd, cell.k1_append(marker), machine=cell.machine, cpu=cell.cpu,
                        memory=memory, echo=echo, log_path=log)
    err = None
    with q:
        try:
            hit = q.wait_for(STOP_RE, timeout)
            if hit.text.startswith("KERNEL2-INIT-OK"):
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
    min_hashed = 0 if "-i" in load_flags.split() else \
        os.path.getsize(kernel) + os.path.getsize(build_initrd2(cache, os.path.join(cache, "kexec-matrix")))
    ok, reason, info = judge(cell, loader, marker, lines, min_hashed)
    if err and not ok:
        reason = f"{reason} [{err}]"
    info["marker"] = marker
    window = []
    if not ok and "purgatory" in reason:
        i = _find(lines, r"^KEXEC-EXEC-START$")
        if i is not None and i < len(lines) - 40:
            window = lines[i:i + 25]
    return Result(cell.name, loader.name, ok, reason, info, time.monotonic() - t0, log,
                  lines[-40:], window)


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
            print(f"{c.name:14s} {c.suite:8s} -M {c.machine} -cpu {c.cpu}: {c.doc}")
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
        futs = {ex.submit(run_cell, c, loader, a.cache, rundir, a.timeout, a.verbose): c for c in cells}
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
