"""Initramfs images of the guest tier, cached by content hash, and the loaders
that go into them.

Kernel 1's initramfs is big (busybox, the loader, /kernel2 = the Debian
kernel, /initrd2) and the same for every cell of an (arch, suite, loaders)
triple: it is built once and cached under cache/guest-tier/<arch>/ by the
hash of everything in it. A cell appends its own tiny gzip'd cpio holding
/cell.sh (and, for crash cells, /initrd-kdump) — the kernel unpacks
concatenated archives in order. Images are rebuilt when any input changes
(scripts, busybox, loader binaries, mk-initramfs.py) and pruned to the few
most recent per kind.
"""
import dataclasses
import fcntl
import gzip
import hashlib
import importlib.util
import io
import os
import shutil
import threading
import time

import guest_scripts as gs

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MK_PATH = os.path.join(ROOT, "scripts", "mk-initramfs.py")
_spec = importlib.util.spec_from_file_location("mk_initramfs", MK_PATH)
mk = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mk)

DEFAULT_CACHE = os.environ.get("RKEXEC_CACHE") or os.path.join(ROOT, "cache")
TIER_DIR = "guest-tier"  # under the cache
FORMAT = "guest-tier-v2"  # bump to invalidate every cached image

# ---------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Loader:
    name: str          # "rkexec" | "kexec-tools"
    cmd: str           # command name inside the guest
    adds: tuple = ()   # (src, dest) files for the initramfs
    trees: tuple = ()  # (src_dir, dest) trees for the initramfs
    purgatory: bool = False  # kexec_load goes through OUR purgatory: judge its console lines
    has_status: bool = True  # -S / --status
    plans: bool = False      # `plan ... --json` prints rkexec-plan/1


LOADERS = ("rkexec", "kexec-tools")


def static_tool(arch, tool, root=ROOT):
    """target/<guest target>/release/<tool>: the static guest-side build."""
    return os.path.join(root, "target", arch.guest_target, "release", tool)


def make_loader(arch, name, cache=DEFAULT_CACHE, rkexec=None):
    if name == "kexec-tools":
        tree = arch.kexec_tools_tree(cache)
        if not os.path.isfile(os.path.join(tree, "sbin", "kexec")):
            raise FileNotFoundError(f"{tree}/sbin/kexec missing: {arch.fixture_hint()}")
        return Loader("kexec-tools", "kexec", trees=((tree, "/"),))
    if name == "rkexec":
        rkexec = rkexec or static_tool(arch, "rkexec")
        if not os.path.isfile(rkexec):
            raise FileNotFoundError(
                f"{rkexec} missing: cargo build --release --locked --target {arch.guest_target} "
                "-p loader-host --bin rkexec")
        return Loader("rkexec", "rkexec", adds=((rkexec, "/sbin/rkexec"),), purgatory=True, plans=True)
    if name == "rkexec-as-kexec":  # installed where callers (systemd, kdump tools...) run /sbin/kexec
        return dataclasses.replace(make_loader(arch, "rkexec", cache, rkexec), name=name, cmd="/sbin/kexec",
                                   adds=((rkexec or static_tool(arch, "rkexec"), "/sbin/kexec"),))
    raise ValueError(f"unknown loader {name!r} ({' | '.join(LOADERS)})")

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


def workdir(cache, arch):
    return os.path.join(cache, TIER_DIR, arch.name)


def _cached(wdir, stem, key, builder, keep=4):
    """wdir/stem-KEY.cpio.gz, built under a lock if missing; all but the
    `keep` most recent stem-* images are pruned."""
    os.makedirs(wdir, exist_ok=True)
    out = os.path.join(wdir, f"{stem}-{key[:16]}.cpio.gz")
    with open(os.path.join(wdir, f".{stem}.lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if os.path.isfile(out):
            os.utime(out)
        else:
            builder(out)
            old = sorted((p for p in os.listdir(wdir) if p.startswith(stem + "-") and p.endswith(".cpio.gz")),
                         key=lambda p: os.path.getmtime(os.path.join(wdir, p)), reverse=True)
            for p in old[keep:]:
                try:
                    os.unlink(os.path.join(wdir, p))
                except OSError:
                    pass
    return out


def _need(path, arch):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} missing: {arch.fixture_hint()}")
    return path


def _key(*parts, adds=(), trees=()):
    h = hashlib.sha256("\n".join((FORMAT, file_hash(MK_PATH)) + parts).encode())
    for src, dest in adds:
        h.update(f"add {dest} {oct(os.stat(src).st_mode)} {file_hash(src)}\n".encode())
    for src, dest in trees:
        h.update(f"tree {dest} {tree_hash(src)}\n".encode())
    return h.hexdigest()


def build_initrd2(cache, arch, init=gs.INIT2, stem="initrd2"):
    """Kernel 2's initrd: busybox + `init` (INIT2, or a variant of it)."""
    bb = _need(arch.busybox(cache), arch)
    return _cached(workdir(cache, arch), stem, _key(init, file_hash(bb)),
                   lambda out: mk.build(out, init, bb, init_path="/init"))


def build_capture_initrd(cache, arch, vmcore_check=None):
    """The capture kernel's initrd: busybox + /vmcore-check + INIT_CAPTURE."""
    vmcore_check = vmcore_check or static_tool(arch, "vmcore-check")
    if not os.path.isfile(vmcore_check):
        raise FileNotFoundError(
            f"{vmcore_check} missing: cargo build --release --locked --target {arch.guest_target} "
            "-p guest-tools --bin vmcore-check")
    bb = _need(arch.busybox(cache), arch)
    adds = [(vmcore_check, "/vmcore-check")]
    return _cached(workdir(cache, arch), "initrd-kdump", _key(gs.INIT_CAPTURE, file_hash(bb), adds=adds),
                   lambda out: mk.build(out, gs.INIT_CAPTURE, bb, adds=adds, init_path="/init"))


def build_base(cache, arch, suite, loaders, init1=gs.INIT1):
    """Kernel 1's initramfs minus /cell.sh, for `suite` with all `loaders`.

    Returns (kernel path, base initramfs path)."""
    kernel = _need(arch.kernel(cache, suite), arch)
    bb = _need(arch.busybox(cache), arch)
    adds = [(kernel, "/kernel2"), (build_initrd2(cache, arch), "/initrd2")]
    trees = []
    for ld in loaders:
        adds += list(ld.adds)
        trees += list(ld.trees)
    stem = f"base-{suite}-{'+'.join(ld.name for ld in loaders)}"
    base = _cached(workdir(cache, arch), stem, _key(init1, f"busybox {file_hash(bb)}", adds=adds, trees=trees),
                   lambda out: mk.build(out, init1, bb, adds=adds, trees=trees))
    return kernel, base


def build_cell_initrd(base, cell_script, out, adds=()):
    """out := base + a gzip'd newc archive holding /cell.sh (and `adds`,
    (src, dest) files, e.g. /initrd-kdump)."""
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


def new_rundir(cache, label, keep=8, min_age_s=3 * 3600):
    """A fresh cache/guest-tier/runs/<stamp>-<label>-<pid>/ for console logs.
    Older run directories beyond the `keep` newest are removed once they are
    `min_age_s` old (a concurrent run's directory is never touched)."""
    d = os.path.join(cache, TIER_DIR, "runs")
    os.makedirs(d, exist_ok=True)
    runs = sorted(os.listdir(d))
    now = time.time()
    for r in runs[:-keep] if len(runs) > keep else []:
        p = os.path.join(d, r)
        try:
            if now - os.path.getmtime(p) > min_age_s:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass
    out = os.path.join(d, time.strftime("%Y%m%d-%H%M%S") + f"-{label}-{os.getpid()}")
    os.makedirs(out, exist_ok=True)
    return out


class ImageSet:
    """The images of one run: cache, and per architecture the static
    guest tools (rkexec, vmcore-check) that go into them."""

    def __init__(self, cache, tools=None):
        self.cache = cache
        self.tools = tools or {}  # {arch name: {"rkexec": path, "vmcore-check": path}}

    def tool(self, arch, name):
        return self.tools.get(arch.name, {}).get(name) or static_tool(arch, name)

    def loader(self, arch, name):
        return make_loader(arch, name, self.cache, self.tool(arch, "rkexec"))

    def base(self, arch, suite, loaders):
        return build_base(self.cache, arch, suite, loaders)

    def initrd2(self, arch):
        return build_initrd2(self.cache, arch)

    def capture_initrd(self, arch):
        return build_capture_initrd(self.cache, arch, self.tool(arch, "vmcore-check"))
