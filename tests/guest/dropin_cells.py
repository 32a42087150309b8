#!/usr/bin/env python3
"""rkexec installed as /sbin/kexec, driven by the callers' exact argv, in
QEMU guests (issue 10). A standalone runner over the guest tier's library
(kexec_matrix / kexec_matrix_x86 / qemu_kexec: images, INIT scripts, QEMU
console reader); it moves into the unified matrix driver as `load`/`exec`
template cells once that lands on main.

Kernel 1 (a Debian kernel) boots an initramfs holding busybox and the static
rkexec, makes /sbin/kexec a symlink to it, and runs the cell's caller argv.
Every verdict comes from what the guests printed: our purgatory's
"purgatory: verified N segments, B bytes hashed ..." line between
KEXEC-EXEC-START and kernel 2, kernel 2's own init printing its
/proc/cmdline (KERNEL2-INIT-OK, a word only kernel 2's initramfs holds), the
capture kernel's init (KDUMP-INIT-OK), and the exit statuses the cell
script echoes.

Cells:
  amd64-systemd      systemctl kexec + systemd-shutdown: `kexec --load K
                     --append OPTS --initrd I` (separate words), `kexec -e`;
                     `kexec -S -l` exits 0 before the load, 1 after; `-S`
                     (crash) 0.
  amd64-kdump-utils  Fedora kdump-utils with Secure Boot: `kexec -s -s -p
                     --command-line=... --initrd=... K` (kexec_file_load),
                     sysrq-c, the capture kernel's init runs.
  amd64-reuse        LTP ima_kexec / ArchWiki: kernel 1 booted with
                     BOOT_IMAGE=... MARKER=...; `kexec -l K --initrd=I
                     --reuse-cmdline`: kernel 2's /proc/cmdline has the marker
                     and no BOOT_IMAGE=.
  amd64-uki          a real UKI (bookworm systemd-stub 252 + bzImage +
                     .initrd + .ucode + .cmdline, scripts/mk-uki.py):
                     `kexec -l uki.efi`, `kexec -e`: kernel, initrd (the
                     .ucode archive's file present) and command line from the
                     UKI, through our purgatory.
  amd64-vmlinux      the vmlinux ELF from the bzImage (scripts/extract-
                     vmlinux.py): `kexec -l vmlinux --args-linux --initrd=I
                     --append=...`, through our purgatory.
  arm64-uki          the arm64 UKI (linuxaa64.efi.stub + Image), as amd64-uki.
  arm64-petitboot    petitboot: `kexec -l --debug --initrd= --dtb= --append=
                     K`, then its -s retry argv (--dtb noted and ignored, not
                     a usage error; Debian's arm64 kernels have no
                     kexec_file_load, so it exits 253 as kexec-tools does and
                     the -l image stays), then `kexec -e`.

    scripts/fetch-fixtures.sh
    cargo build --release --locked --target x86_64-unknown-linux-musl -p loader-host --bin rkexec
    cargo build --release --locked --target aarch64-unknown-linux-musl -p loader-host --bin rkexec
    cargo build --release --locked --target x86_64-unknown-linux-musl -p guest-tools --bin vmcore-check
    tests/guest/dropin_cells.py [--cells amd64-uki,arm64-uki] [--timeout 300] [-v] [--list]

Output: a PASS/FAIL block per cell and "N passed, N failed"; exit 0 when
all passed, 1 when a cell failed, 2 on setup errors. Only QEMU is started.
"""
import argparse
import dataclasses
import hashlib
import io
import os
import re
import secrets
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import kexec_matrix as km  # noqa: E402
import kexec_matrix_x86 as kx  # noqa: E402
import qemu_kexec  # noqa: E402

mk = km.mk
FORMAT = "dropin-cells-v1"
WORKDIR = "dropin-cells"
PURG_RE = km.PURG_RE


@dataclasses.dataclass(frozen=True)
class Arch:
    name: str
    qemu: str
    machine: str
    cpu: str
    extra: tuple
    k1_append: str
    k2_append: str
    target: str
    stub: str

    def rkexec(self):
        return os.path.join(ROOT, "target", self.target, "release", "rkexec")

    def vmcore_check(self):
        return os.path.join(ROOT, "target", self.target, "release", "vmcore-check")


ARCHES = {
    "amd64": Arch("amd64", kx.QEMU, "q35", "max", kx.QEMU_EXTRA, kx.K1_APPEND, kx.K2_APPEND,
                  "x86_64-unknown-linux-musl", "linuxx64.efi.stub"),
    "arm64": Arch("arm64", "qemu-system-aarch64", "virt,dtb-randomness=off", "cortex-a72", (), km.K1_APPEND,
                  km.K2_APPEND, "aarch64-unknown-linux-musl", "linuxaa64.efi.stub"),
}

# Kernel 2's init for UKI cells: INIT2 plus whether the file from the UKI's
# .ucode archive arrived (the stub's order: .ucode, then .initrd).
INIT_UKI = km.INIT2.replace('echo "KERNEL2-""INIT-OK',
                            '[ -e /ucode-marker ] && echo "UKI-""UCODE-PRESENT $(cat /ucode-marker)"\n'
                            'echo "KERNEL2-""INIT-OK')

STOP_RE = (r"KERNEL2-INIT-OK|KDUMP-DONE|KEXEC-LOAD-FAILED|KEXEC-EXEC-FAILED|CELL-SCRIPT-|"
           r"Kernel panic - not syncing: (?!sysrq)|end Kernel panic")


@dataclasses.dataclass(frozen=True)
class Cell:
    name: str
    arch: str
    doc: str
    script: str                 # /cell.sh; {M} the marker, {K2} kernel 2's base command line
    kernel2: str = "kernel"     # "kernel" | "uki" | "vmlinux": what /k2 is
    k1_extra: str = ""          # kernel 1's command line, added ({M} allowed)
    kdump: bool = False
    ours: bool = True           # kexec_load through our purgatory: its summary must show
    expect: tuple = ()          # (regex, why) that must be in the transcript
    refuse: tuple = ()          # (regex, why) that must NOT be
    suite: str = "bookworm"


def kernel2_cmdline_re(marker):
    return rf"KERNEL2-INIT-OK uptime=\S+ cmdline: .*MARKER={re.escape(marker)}"


CELLS = [
    Cell("amd64-systemd", "amd64", "systemctl kexec's load + systemd-shutdown's exec, -S before/after",
         script="""
kexec -S -l; echo "S-BEFORE rc=$?"
timed kexec --load /k2 --append "{K2} MARKER={M}" --initrd /initrd2 || {{ echo KEXEC-LOAD-FAILED; return 1; }}
kexec -S -l; echo "S-AFTER rc=$?"
kexec -S; echo "S-CRASH rc=$?"
do_exec kexec -e
""", expect=((r"^S-BEFORE rc=0$", "-S -l before the load must exit 0 (not loaded)"),
             (r"^S-AFTER rc=1$", "-S -l after the load must exit 1 (loaded)"),
             (r"^S-CRASH rc=0$", "-S (the crash image) must exit 0"))),
    Cell("amd64-kdump-utils", "amd64", "kdump-utils' Secure Boot form: -s -s -p --command-line= --initrd= K",
         script="""
timed kexec -s -s -p "--command-line={K2} maxcpus=1 MARKER={M}" --initrd=/initrd-kdump /k2 || {{ echo KEXEC-LOAD-FAILED; return 1; }}
kexec -S; echo "S-CRASH rc=$?"
echo "KEXEC-CRASH-LOADED $(cat /sys/kernel/kexec_crash_loaded)"
sync; echo KDUMP-PANIC-START; sleep 1
echo c >/proc/sysrq-trigger
echo "KDUMP-PANIC-FAILED rc=$?"
""", k1_extra=f"crashkernel={km.KDUMP_CRASHKERNEL}", kdump=True, ours=False,
         expect=((r"^S-CRASH rc=1$", "-S must exit 1 once the crash kernel is loaded"),
                 (r"^KEXEC-CRASH-LOADED 1$", "/sys/kernel/kexec_crash_loaded must read 1"))),
    Cell("amd64-reuse", "amd64", "--reuse-cmdline: kernel 2 gets kernel 1's command line minus BOOT_IMAGE=",
         script="""
timed kexec -l /k2 --initrd=/initrd2 --reuse-cmdline || {{ echo KEXEC-LOAD-FAILED; return 1; }}
do_exec kexec -e
""", k1_extra="BOOT_IMAGE=/boot/vmlinuz-6.1.0-57-cloud-amd64 MARKER={M}",
         refuse=((r"KERNEL2-INIT-OK .*BOOT_IMAGE=", "kernel 2's command line still has BOOT_IMAGE="),)),
    Cell("amd64-uki", "amd64", "a real UKI (systemd-stub 252): kernel, .ucode + .initrd and .cmdline from it",
         script="""
timed kexec -l /k2 || {{ echo KEXEC-LOAD-FAILED; return 1; }}
do_exec kexec -e
""", kernel2="uki", expect=((r"^UKI-UCODE-PRESENT ucode-from-uki$", "the .ucode archive did not reach kernel 2"),)),
    Cell("amd64-vmlinux", "amd64", "the vmlinux ELF from the bzImage, --args-linux, through our purgatory",
         script="""
timed kexec -l /k2 --args-linux --initrd=/initrd2 --append="{K2} MARKER={M}" || {{ echo KEXEC-LOAD-FAILED; return 1; }}
do_exec kexec -e
""", kernel2="vmlinux"),
    Cell("arm64-uki", "arm64", "a real arm64 UKI (linuxaa64.efi.stub + Image): kernel, initrd, cmdline from it",
         script="""
timed kexec -l /k2 || {{ echo KEXEC-LOAD-FAILED; return 1; }}
do_exec kexec -e
""", kernel2="uki", expect=((r"^UKI-UCODE-PRESENT ucode-from-uki$", "the .ucode archive did not reach kernel 2"),)),
    Cell("arm64-petitboot", "arm64", "petitboot: -l --debug --initrd= --dtb= --append= K, -e; its -s retry form "
         "(--dtb noted, not a usage error)",
         script="""
cat /sys/firmware/fdt >/tmp/board.dtb
timed kexec -l --debug --initrd=/initrd2 --dtb=/tmp/board.dtb "--append={K2} MARKER={M}" /k2 || {{ echo KEXEC-LOAD-FAILED; return 1; }}
kexec -s --debug --initrd=/initrd2 --dtb=/tmp/board.dtb "--append={K2} MARKER={M}" /k2 2>/tmp/s.err >/dev/null; echo "PB-S-RC=$?"
grep -q "dtb is ignored" /tmp/s.err && echo "PB-S-DTB-NOTED"
do_exec kexec -e
""", expect=((r"^PB-S-RC=253$", "the -s retry with --dtb must get as far as kexec_file_load (which Debian's "
              "arm64 kernels lack: 253 as kexec-tools), not fail as a usage error"),
             (r"^PB-S-DTB-NOTED$", "the ignored --dtb must be noted on stderr"))),
]
CELL_BY_NAME = {c.name: c for c in CELLS}


def cache_dir():
    return os.environ.get("RKEXEC_CACHE", os.path.join(ROOT, "cache"))


def need(path, how):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} missing: {how}")
    return path


def key_of(*parts, files=()):
    h = hashlib.sha256("\n".join([FORMAT, *parts]).encode())
    for f in files:
        h.update(f"{f} {km.file_hash(f)}\n".encode())
    return h.hexdigest()


def base_image(cache, arch):
    """Kernel 1's initramfs minus /cell.sh: busybox, INIT1, /sbin/rkexec."""
    bb = need(os.path.join(cache, arch.name, "busybox"), "run scripts/fetch-fixtures.sh")
    rk = need(arch.rkexec(), f"cargo build --release --locked --target {arch.target} -p loader-host --bin rkexec")
    wd = os.path.join(cache, WORKDIR)
    return km._cached(wd, f"base-{arch.name}", key_of(km.INIT1, files=(bb, rk, km._MK_PATH)),
                      lambda out: mk.build(out, km.INIT1, bb, adds=[(rk, "/sbin/rkexec")]))


def kernel2_initrd(cache, arch, init):
    bb = os.path.join(cache, arch.name, "busybox")
    stem = "initrd-uki" if init is INIT_UKI else "initrd2"
    return km._cached(os.path.join(cache, WORKDIR), f"{stem}-{arch.name}", key_of(init, files=(bb, km._MK_PATH)),
                      lambda out: mk.build(out, init, bb, init_path="/init"))


def ucode_archive(path):
    """An uncompressed newc archive with /ucode-marker (early microcode is an
    uncompressed cpio the kernel reads first, systemd-stub puts .ucode first)."""
    buf = io.BytesIO()
    w = mk.Newc(mk._Counting(buf))
    w.data("ucode-marker", b"ucode-from-uki\n", 0o644)
    w.close()
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return path


def make_uki(cache, arch, kernel, cdir, marker):
    stub = need(os.path.join(cache, arch.name, "systemd-stub", arch.stub), "run scripts/fetch-fixtures.sh")
    initrd = kernel2_initrd(cache, arch, INIT_UKI)
    ucode = ucode_archive(os.path.join(cdir, "ucode.cpio"))
    out = os.path.join(cdir, "uki.efi")
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "mk-uki.py"), "--stub", stub, "--linux", kernel,
                    "--initrd", initrd, "--ucode", ucode, "--cmdline", f"{arch.k2_append} MARKER={marker}",
                    "--uname", "rkexec-test", "-o", out], check=True, capture_output=True)
    return out


@dataclasses.dataclass
class Result:
    cell: str
    ok: bool
    reason: str
    seconds: float
    log: str
    facts: dict
    tail: list


def judge(cell, marker, lines):
    text = [ln.text for ln in lines]

    def find(regex, start=0):
        for i in range(start, len(text)):
            if re.search(regex, text[i]):
                return i
        return None

    facts = {}
    i_done = find(r"^KEXEC-LOAD-DONE rc=")
    if i_done is None:
        return False, "the load never finished (no KEXEC-LOAD-DONE)", facts
    if not text[i_done].startswith("KEXEC-LOAD-DONE rc=0 "):
        return False, f"the load failed: {text[i_done]}", facts
    for regex, why in cell.expect:
        if find(regex) is None:
            return False, why, facts
    if cell.kdump:
        i_panic = find(r"^KDUMP-PANIC-START$")
        i_init = find(rf"KDUMP-INIT-OK uptime=\S+ cmdline: .*MARKER={re.escape(marker)}", i_panic or 0)
        if i_panic is None or i_init is None:
            return False, "the capture kernel's init did not print the marker after the panic", facts
        facts["capture"] = "booted"
        return True, "", facts
    i_exec = find(r"^KEXEC-EXEC-START$")
    if i_exec is None:
        return False, "no KEXEC-EXEC-START", facts
    i_k2 = find(kernel2_cmdline_re(marker), i_exec)
    if i_k2 is None:
        return False, "kernel 2's init did not print a command line with the marker", facts
    facts["k2_cmdline"] = text[i_k2].split("cmdline: ", 1)[1]
    if cell.ours:
        i_purg = find(PURG_RE.pattern, i_exec)
        if i_purg is None or i_purg > i_k2:
            return False, "no 'purgatory: verified' line between KEXEC-EXEC-START and kernel 2", facts
        m = PURG_RE.search(text[i_purg])
        facts["purgatory"] = f"{m.group(1)} segments, {int(m.group(2)) >> 20} MiB, {m.group(3)}"
        if int(m.group(1)) < 2:
            return False, f"the purgatory verified only {m.group(1)} segment(s)", facts
    for regex, why in cell.refuse:
        if find(regex) is not None:
            return False, why, facts
    return True, "", facts


def run_cell(cell, cache, rundir, timeout, echo=False):
    arch = ARCHES[cell.arch]
    marker = f"{cell.name}-{secrets.token_hex(5)}"
    cdir = os.path.join(rundir, cell.name)
    os.makedirs(cdir, exist_ok=True)
    log = os.path.join(cdir, "console.log")
    t0 = time.monotonic()
    kernel = need(os.path.join(cache, arch.name, cell.suite, "vmlinuz"), "run scripts/fetch-fixtures.sh")
    if arch.name == "arm64":
        kernel = need(os.path.join(cache, arch.name, cell.suite, "Image"), "run scripts/fetch-fixtures.sh")
    base = base_image(cache, arch)
    k2 = {"kernel": kernel,
          "uki": None,
          "vmlinux": os.path.join(cache, arch.name, cell.suite, "vmlinux")}[cell.kernel2]
    if cell.kernel2 == "uki":
        k2 = make_uki(cache, arch, kernel, cdir, marker)
    need(k2, "run scripts/fetch-fixtures.sh")
    adds = [(k2, "/k2"), (kernel2_initrd(cache, arch, km.INIT2), "/initrd2")]
    if cell.kdump:
        vc = need(arch.vmcore_check(), f"cargo build --release --locked --target {arch.target} -p guest-tools "
                  "--bin vmcore-check")
        adds.append((kx.build_kdump_initrd(cache, os.path.join(cache, WORKDIR), vc), "/initrd-kdump"))
    # /sbin/kexec is rkexec, as a distribution would install it.
    script = "ln -sf /sbin/rkexec /sbin/kexec\n" + cell.script.format(M=marker, K2=arch.k2_append)
    with open(os.path.join(cdir, "cell.sh"), "w") as f:
        f.write(script)
    initrd = km.build_cell_initrd(base, script, os.path.join(cdir, "initrd1.cpio.gz"), adds)
    append = arch.k1_append + (" " + cell.k1_extra.format(M=marker) if cell.k1_extra else "")
    q = qemu_kexec.Qemu(kernel, initrd, append, machine=arch.machine, cpu=arch.cpu, memory=2048,
                        smp=2 if cell.kdump else 1, echo=echo, log_path=log, qemu=arch.qemu, extra_args=arch.extra)
    err = None
    with q:
        try:
            hit = q.wait_for(STOP_RE, timeout)
            if hit.text.startswith(("KERNEL2-INIT-OK", "KDUMP-DONE")):
                try:
                    q.wait_exit(10)
                except qemu_kexec.QemuError:
                    pass
            else:
                time.sleep(1.0)
        except qemu_kexec.QemuError as e:
            err = str(e)
    for p in (initrd, os.path.join(cdir, "uki.efi")):
        try:
            os.unlink(p)
        except OSError:
            pass
    lines = list(q.lines)
    ok, reason, facts = judge(cell, marker, lines)
    if err and not ok:
        reason = f"{reason} [{err}]"
    return Result(cell.name, ok, reason, time.monotonic() - t0, log, facts, [ln.text for ln in lines[-25:]])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", help="comma-separated cell names (default: all)")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", action="store_true", help="echo the consoles")
    a = ap.parse_args(argv)
    if a.list:
        for c in CELLS:
            print(f"{c.name:20} {c.doc}")
        return 0
    try:
        cells = [CELL_BY_NAME[n] for n in a.cells.split(",")] if a.cells else CELLS
    except KeyError as e:
        print(f"dropin_cells: unknown cell {e}; see --list", file=sys.stderr)
        return 2
    cache = cache_dir()
    rundir = os.path.join(cache, WORKDIR, "runs", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(rundir, exist_ok=True)
    passed = failed = 0
    for cell in cells:
        try:
            r = run_cell(cell, cache, rundir, a.timeout, echo=a.v)
        except (FileNotFoundError, subprocess.CalledProcessError) as e:
            print(f"dropin_cells: setup: {e}", file=sys.stderr)
            return 2
        if r.ok:
            passed += 1
            facts = ", ".join(f"{k}: {v}" for k, v in r.facts.items())
            print(f"PASS {r.cell} ({r.seconds:.0f} s; {facts})", flush=True)
        else:
            failed += 1
            print(f"FAIL {r.cell}: {r.reason} ({r.seconds:.0f} s, console: {r.log})", flush=True)
            for line in r.tail:
                print(f"    | {line}")
    shutil.rmtree(rundir, ignore_errors=True) if failed == 0 else None
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
