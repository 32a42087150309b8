#!/usr/bin/env python3
"""Crash hotplug end to end (amd64): the kernel rewrites the elfcorehdr of
an rkexec-loaded capture kernel after a memory or CPU hot-add, and our
purgatory must skip (not hash) that segment, and only that one.

Debian trixie 6.12 (CONFIG_CRASH_HOTPLUG=y) is kernel 1 and the capture
kernel, under

    qemu-system-x86_64 -M q35 -cpu max -m 1G,slots=4,maxmem=4G
                       -smp 1,maxcpus=2 -nographic -qmp unix:<sock>,...

with kernel 1 booted `console=ttyS0 nokaslr crashkernel=256M
memhp_default_state=online`. Kernel 1 loads the capture kernel with
`rkexec -p /kernel2 --initrd=/initrd-kdump --append=... --hotplug -d`
(KEXEC_UPDATE_ELFCOREHDR), prints a readiness marker and waits; this
harness then hot-adds hardware through QMP, kernel 1 onlines it, then
crashes itself (sysrq-c). Scenarios (one QEMU run each):

  memory           QMP object-add memory-backend-ram (mem1, 512M) +
                   device_add pc-dimm. Kernel 1 must see the new System RAM
                   at 0x100000000 (q35 with -m 1G puts the device-memory
                   region at 4 GiB) with its memory blocks online. Pass:
                   after the panic our purgatory prints the elfcorehdr
                   segment's `excluded, structure ok` line and `verified`,
                   the capture kernel boots (marker on its cmdline) and
                   vmcore-check reports `load-covers 0x100000000 yes`: the
                   header written at load time could not cover that range,
                   so the kernel rewrote it and the purgatory let it through.
  memory-negative  the same with `--debug-hash-excluded` (the elfcorehdr is
                   hashed anyway): the purgatory must print `REFUSED: segment
                   N (elfcorehdr) ... sha256 mismatch` and `not entering the
                   kernel` and halt; the capture kernel must never boot (the
                   harness sees the refusal, waits a few seconds, kills QEMU).
  cpu              QMP device_add of the second (hotpluggable) CPU, kernel 1
                   onlines it and panics ON it (busybox taskset -c 1). Pass:
                   purgatory verified + elfcorehdr excluded, the capture
                   kernel boots, vmcore-check says prstatus=2 (the x86 crash
                   hotplug handler rewrote the header on the CPU-online event
                   with a note for every possible CPU; rkexec wrote one per
                   present CPU at load time). SKIPPED by default under TCG:
                   Debian 6.12 counts QEMU's Enabled=0 MADT LAPIC entries as
                   hotplug slots only when it detects a hypervisor, and TCG
                   shows none ("Allowing 1 present CPUs plus 0 hotplug
                   CPUs"), so the added CPU never appears in the guest
                   (`--scenarios cpu` runs it anyway; --accel kvm where KVM
                   works).
  cpu-online       -smp 2: cpu1 is offlined (sysfs) before the load and
                   onlined after it, which raises the same crash-hotplug CPU
                   event (the kernel's "crash/cpuhp" online callback); panic
                   on cpu1; pass as for cpu (prstatus=2). The load-time
                   header already has 2 CPU notes here, so the proof that
                   the kernel rewrote it is:
  cpu-online-negative  cpu-online with `--debug-hash-excluded`. NOT run by
                   default: rkexec's elfcorehdr now has exactly the kernel's
                   own layout (every possible CPU's note, vmcoreinfo, kernel
                   text, RAM), so the kernel's rewrite after a CPU online
                   event is byte-identical and no digest can tell it
                   happened; memory-negative remains the proof that
                   exclusion is what lets a rewritten header boot.

    scripts/fetch-fixtures.sh --arch amd64
    cargo build --release --locked --target x86_64-unknown-linux-musl \\
        -p loader-host --bin rkexec -p guest-tools --bin vmcore-check
    tests/guest/crash_hotplug_x86.py [--scenarios memory,cpu-online] [-j 1] [-v]
                                     [--timeout 300] [--accel tcg|kvm]

Prints PASS/FAIL (or SKIP) per scenario, then `N passed, M failed`; exit 1 if any
failed, 2 on a setup error. Images are cached under
cache/crash-hotplug-x86/, console logs under cache/crash-hotplug-x86/runs/.
Nothing here loads or executes a kernel on the host: only QEMU is started.
"""
import argparse
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True  # keep the tree free of __pycache__
sys.path.insert(0, HERE)
import kexec_matrix as km  # noqa: E402
import kexec_matrix_x86 as kx  # noqa: E402
import qemu_kexec  # noqa: E402

mk = km.mk
DEFAULT_CACHE = km.DEFAULT_CACHE
DEFAULT_RKEXEC = kx.DEFAULT_RKEXEC
DEFAULT_VMCORE_CHECK = kx.DEFAULT_VMCORE_CHECK
FORMAT = "crash-hotplug-x86-v1"  # bump to invalidate the cached images
WORKDIR = "crash-hotplug-x86"    # under the cache
SUITE = "trixie"                 # 6.12, CONFIG_CRASH_HOTPLUG=y

MACHINE, CPU = "q35", "max"
MEMORY = "1G,slots=4,maxmem=4G"
SMP = "1,maxcpus=2"
# The cpu-online scenarios: both CPUs present from boot.
SMP_ONLINE = "2,maxcpus=2"
# Why the QMP `cpu` scenario cannot pass under TCG here (it is skipped by
# default with --accel tcg; --scenarios cpu runs it anyway):
CPU_TCG_SKIP = ("under TCG, Debian 6.12 reserves no hotplug CPU slot for -smp 1,maxcpus=2 ('Allowing 1 present "
                "CPUs plus 0 hotplug CPUs': it counts QEMU's Enabled=0 MADT LAPIC entries only when it detects a "
                "hypervisor, and TCG shows none), so a device_add'ed CPU never appears in the guest; "
                "cpu-online covers the same crash-hotplug CPU event")
K1_APPEND = "console=ttyS0 nokaslr rdinit=/init crashkernel=256M memhp_default_state=online"
K2_APPEND = "console=ttyS0 nokaslr rdinit=/init maxcpus=1"

# The hot-added DIMM: q35 with -m 1G (all below 4 GiB) starts its
# device-memory region at 4 GiB and the first pc-dimm goes there.
DIMM_SIZE = 512 << 20
DIMM_START = 0x100000000
DIMM_LAST = DIMM_START + DIMM_SIZE - 0x1000  # its last page
LOW_CONTROL = 0x1000000  # kernel text (nokaslr): covered by any header

# ---------------------------------------------------------------------------
# Guest scripts
# ---------------------------------------------------------------------------

# The capture kernel's /init: as kexec_matrix.INIT_KDUMP, with addresses for
# vmcore-check's `load-covers` lines. Success words split so the literal
# never exists in kernel 1's initramfs.
INIT_KDUMP = km.INIT_KDUMP.replace(
    "/vmcore-check /proc/vmcore\n", f"/vmcore-check /proc/vmcore {DIMM_START:#x} {DIMM_LAST:#x} {LOW_CONTROL:#x}\n"
)
assert INIT_KDUMP != km.INIT_KDUMP, "kexec_matrix.INIT_KDUMP no longer runs /vmcore-check as expected"

# Common head of /cell.sh (sourced by kexec_matrix.INIT1's /init): check
# the reservation, load the capture kernel with --hotplug, report.
CELL_HEAD = r"""
M=@MARKER@
S=/sys/devices/system
echo "K1-RELEASE=$(uname -r)"
_ck=$(grep 'Crash kernel' /proc/iomem)
[ -n "$_ck" ] || { echo "K1-NO-CRASHKERNEL (crashkernel= not reserved)"; return 1; }
echo "K1-CRASHKERNEL $(echo $_ck)"
echo "K1-CPUS possible=$(cat $S/cpu/possible) present=$(cat $S/cpu/present) online=$(cat $S/cpu/online)"
echo "K1-ELFCOREHDR-SIZE $(cat /sys/kernel/crash_elfcorehdr_size 2>&1)"
echo "K1-CRASH-HOTPLUG-BEFORE memory=$(cat $S/memory/crash_hotplug 2>&1) cpu=$(cat $S/cpu/crash_hotplug 2>&1)"
timed rkexec -p /kernel2 --initrd=/initrd-kdump --append="@K2APPEND@ MARKER=$M" --hotplug@FLAGS@ -d \
    || { echo KEXEC-LOAD-FAILED; return 1; }
rkexec -S; echo "KEXEC-STATUS rc=$?"
echo "KEXEC-CRASH-LOADED $(cat /sys/kernel/kexec_crash_loaded)"
echo "K1-CRASH-HOTPLUG memory=$(cat $S/memory/crash_hotplug 2>&1) cpu=$(cat $S/cpu/crash_hotplug 2>&1)"
grep -E 'System RAM|Crash kernel' /proc/iomem | while read -r _l; do echo "K1-IOMEM-BEFORE $_l"; done
grep MemTotal /proc/meminfo | sed 's/^/K1-BEFORE /'
"""

# Tail: crash kernel 1 (on CPU @PANIC_CPU@). The 8250 sends tty output by
# interrupt and the crash path never drains it: pause before sysrq-c.
CELL_TAIL = r"""
sync
echo KDUMP-PANIC-START
sleep 1
busybox taskset -c @PANIC_CPU@ sh -c 'echo c >/proc/sysrq-trigger'
echo "KDUMP-PANIC-FAILED rc=$?"
return 1
"""

# memory: wait for the DIMM's System RAM range, then for its blocks online.
CELL_MEMORY = r"""
_nb=$(ls -d $S/memory/memory* | busybox wc -l)
echo "K1-MEMBLOCKS-BEFORE n=$_nb block_size=0x$(cat $S/memory/block_size_bytes)"
echo K1-READY-MEMORY
_i=0
until grep -q '^@DIMM_HEX@-[0-9a-f]* : System RAM' /proc/iomem; do
    _i=$((_i + 1)); [ $_i -le 240 ] || { echo "K1-HOTPLUG-TIMEOUT no System RAM at @DIMM_HEX@"; return 1; }
    sleep 0.5
done
_new=$(grep '^@DIMM_HEX@-[0-9a-f]* : System RAM' /proc/iomem)
_bs=$((0x$(cat $S/memory/block_size_bytes)))
_first=$((0x@DIMM_HEX@ / _bs))
_n=$(( (@DIMM_SIZE@) / _bs ))
_i=0
while :; do
    _st="" _off=0
    _b=$_first
    while [ $_b -lt $((_first + _n)) ]; do
        _s=$(cat $S/memory/memory$_b/state 2>/dev/null || echo missing)
        _st="$_st memory$_b=$_s"
        [ "$_s" = online ] || _off=1
        _b=$((_b + 1))
    done
    [ $_off = 0 ] && break
    _i=$((_i + 1)); [ $_i -le 120 ] || { echo "K1-HOTPLUG-TIMEOUT blocks not online:$_st"; return 1; }
    sleep 0.5
done
echo "K1-HOTPLUG-BLOCKS$_st"
echo "K1-MEMBLOCKS-AFTER n=$(ls -d $S/memory/memory* | busybox wc -l)"
echo "K1-IOMEM-NEW $_new"
grep -E 'System RAM' /proc/iomem | while read -r _l; do echo "K1-IOMEM-AFTER $_l"; done
grep MemTotal /proc/meminfo | sed 's/^/K1-AFTER /'
echo "K1-CRASH-HOTPLUG-AFTER memory=$(cat $S/memory/crash_hotplug 2>&1)"
"""

# cpu: wait for cpu1 to appear (ACPI hot-add), online it (no udev here).
CELL_CPU = r"""
echo "K1-CPU-TOPO $(dmesg | grep -o 'Allowing .* hotplug CPUs')"
echo K1-READY-CPU
_i=0
until [ -e $S/cpu/cpu1/online ]; do
    _i=$((_i + 1))
    if [ $_i -gt 60 ]; then
        dmesg | tail -n 8 | while read -r _l; do echo "K1-DMESG $_l"; done
        echo "K1-HOTPLUG-TIMEOUT no cpu1 (possible=$(cat $S/cpu/possible) present=$(cat $S/cpu/present))"
        return 1
    fi
    sleep 0.5
done
echo "K1-CPU1-PRESENT present=$(cat $S/cpu/present) online=$(cat $S/cpu/online) cpu1/online=$(cat $S/cpu/cpu1/online)"
[ "$(cat $S/cpu/cpu1/online)" = 1 ] || echo 1 >$S/cpu/cpu1/online
_i=0
until [ "$(cat $S/cpu/cpu1/online)" = 1 ]; do
    _i=$((_i + 1)); [ $_i -le 60 ] || { echo "K1-HOTPLUG-TIMEOUT cpu1 did not come online"; return 1; }
    sleep 0.5
done
echo "K1-CPU1-ONLINE online=$(cat $S/cpu/online) crash_notes=$(cat $S/cpu/cpu1/crash_notes 2>&1)"
busybox taskset -c 1 true && echo "K1-TASKSET-OK" || { echo "K1-TASKSET-FAILED"; return 1; }
"""


# cpu-online: CPU 1 is present from boot; it goes offline before the load
# and back online after it: the same crash-hotplug CPU event (the kernel's
# "crash/cpuhp" online callback, KEXEC_CRASH_HP_ADD_CPU) as an ACPI hot-add.
CELL_CPU_OFFLINE = r"""
S=/sys/devices/system
echo 0 >$S/cpu/cpu1/online || { echo "K1-HOTPLUG-TIMEOUT cannot offline cpu1"; return 1; }
echo "K1-CPU1-OFFLINE online=$(cat $S/cpu/online) present=$(cat $S/cpu/present)"
"""
CELL_CPU_ONLINE = r"""
echo K1-READY-CPU
echo 1 >$S/cpu/cpu1/online
_i=0
until [ "$(cat $S/cpu/cpu1/online)" = 1 ]; do
    _i=$((_i + 1)); [ $_i -le 60 ] || { echo "K1-HOTPLUG-TIMEOUT cpu1 did not come online"; return 1; }
    sleep 0.5
done
echo "K1-CPU1-ONLINE online=$(cat $S/cpu/online) crash_notes=$(cat $S/cpu/cpu1/crash_notes 2>&1)"
busybox taskset -c 1 true && echo "K1-TASKSET-OK" || { echo "K1-TASKSET-FAILED"; return 1; }
"""


def cell_script(scenario, marker):
    sc = BY_NAME[scenario]
    head, body = CELL_HEAD, {"memory": CELL_MEMORY, "cpu": CELL_CPU, "cpu-online": CELL_CPU_ONLINE}[sc.hotplug]
    if sc.hotplug == "cpu-online":
        head = CELL_CPU_OFFLINE + head
    flags = " --debug-hash-excluded" if sc.negative else ""
    s = head + body + CELL_TAIL
    return (s.replace("@MARKER@", marker).replace("@K2APPEND@", K2_APPEND).replace("@FLAGS@", flags)
            .replace("@DIMM_HEX@", f"{DIMM_START:x}").replace("@DIMM_SIZE@", str(DIMM_SIZE))
            .replace("@PANIC_CPU@", "0" if sc.hotplug == "memory" else "1")).lstrip("\n")

# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------


def build_kdump_initrd(cache, workdir, vmcore_check):
    if not os.path.isfile(vmcore_check):
        raise FileNotFoundError(
            f"{vmcore_check} missing: cargo build --release --locked --target {kx.TARGET} "
            "-p guest-tools --bin vmcore-check")
    bb = kx.fixture_paths(cache, SUITE)["busybox"]
    key = hashlib.sha256(f"{FORMAT}\n{INIT_KDUMP}\n{km.file_hash(bb)}\n{km.file_hash(km._MK_PATH)}\n"
                         f"vmcore-check {km.file_hash(vmcore_check)}".encode()).hexdigest()
    return km._cached(workdir, "initrd-kdump", key,
                      lambda out: mk.build(out, INIT_KDUMP, bb, adds=[(vmcore_check, "/vmcore-check")],
                                           init_path="/init"))

# ---------------------------------------------------------------------------
# QMP (stdlib only)
# ---------------------------------------------------------------------------


class QmpError(RuntimeError):
    pass


class Qmp:
    """Minimal QMP client: greeting, qmp_capabilities, then one command at a
    time (events arriving in between are collected in .events)."""

    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError as e:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise QmpError(f"cannot connect to QMP socket {path}: {e}") from None
                time.sleep(0.2)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.events = []
        greeting = self._recv()
        if "QMP" not in greeting:
            raise QmpError(f"unexpected QMP greeting {greeting}")
        self.command("qmp_capabilities")

    def _recv(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise QmpError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def command(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._recv()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise QmpError(f"{name}: {r['error'].get('class')}: {r['error'].get('desc')}")
            if "return" in r:
                return r["return"]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def hotplug_memory(qmp):
    qmp.command("object-add", **{"qom-type": "memory-backend-ram", "id": "mem1", "size": DIMM_SIZE})
    qmp.command("device_add", driver="pc-dimm", id="dimm1", memdev="mem1")
    devs = qmp.command("query-memory-devices")
    d = next((x["data"] for x in devs if x.get("data", {}).get("id") == "dimm1"), None)
    return f"pc-dimm dimm1 addr={d['addr']:#x} size={d['size']:#x}" if d else "pc-dimm dimm1 (not in query-memory-devices)"


def _cpu_desc(slot):
    return f"{slot['type']} " + ",".join(f"{k}={v}" for k, v in sorted(slot["props"].items()))


def hotplug_cpu(qmp):
    """device_add a CPU into the first free query-hotpluggable-cpus slot."""
    cpus = qmp.command("query-hotpluggable-cpus")
    free = [c for c in cpus if "qom-path" not in c]
    if not free:
        raise QmpError(f"no hotpluggable CPU slot left: {cpus}")
    slot = sorted(free, key=lambda c: sorted(c["props"].items()))[0]
    qmp.command("device_add", driver=slot["type"], id="cpu1", **slot["props"])
    return f"added {_cpu_desc(slot)} (id cpu1)"

# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    doc: str
    hotplug: str          # "memory" | "cpu" (QMP hot-add) | "cpu-online" (sysfs offline -> online)
    negative: bool = False
    smp: str = SMP


SCENARIOS = [
    Scenario("memory", "pc-dimm 512M hot-added after the -p load; vmcore covers 0x100000000", "memory"),
    Scenario("memory-negative", "as memory with --debug-hash-excluded: the purgatory must refuse", "memory",
             negative=True),
    Scenario("cpu", "QMP device_add of cpu1 after the -p load (-smp 1,maxcpus=2), panic on it; prstatus=2 "
             "[needs a guest that sees a hypervisor: skipped under TCG]", "cpu"),
    Scenario("cpu-online", "-smp 2: cpu1 offline at load time, onlined after it, panic on it; prstatus=2",
             "cpu-online", smp=SMP_ONLINE),
    Scenario("cpu-online-negative", "as cpu-online with --debug-hash-excluded: proves the CPU event rewrote the "
             "elfcorehdr (the purgatory must refuse)", "cpu-online", negative=True, smp=SMP_ONLINE),
]
BY_NAME = {s.name: s for s in SCENARIOS}

READY_RE = r"^K1-READY-(MEMORY|CPU)$"
EARLY_STOP_RE = (r"KEXEC-LOAD-FAILED|K1-NO-CRASHKERNEL|CELL-SCRIPT-|K1-HOTPLUG-TIMEOUT|"
                 r"Kernel panic - not syncing|purgatory: REFUSED")
EXCLUDED_RE = re.compile(r"purgatory: segment (\d+) \(elfcorehdr\) \S+ excluded, structure ok")
REFUSED_RE = re.compile(r"purgatory: REFUSED: segment (\d+) \(elfcorehdr\) .*sha256 mismatch")


@dataclasses.dataclass
class Result:
    name: str
    ok: bool
    reason: str
    info: dict
    elapsed: float
    log: str
    tail: list

    def line(self):
        i = self.info
        if self.ok:
            bits = []
            if "qmp" in i:
                bits.append(f"hot-added {i['qmp']}")
            if "plan_note" in i:
                bits.append(f"plan '{i['plan_note']}'")
            if "excluded_line" in i:
                bits.append(f"'{i['excluded_line']}'")
            if "purgatory_line" in i:
                bits.append(f"'{i['purgatory_line']}'")
            if "refused_line" in i:
                bits.append(f"'{i['refused_line']}'")
            if "vmcore" in i:
                bits.append("; ".join(i["vmcore"]))
            if "panic_to_capture_s" in i:
                bits.append(f"panic->capture {i['panic_to_capture_s']:.2f} s")
            bits += i.get("notes", [])
            bits.append(f"{self.elapsed:.0f} s")
            return f"PASS {self.name}\n    " + "\n    ".join(bits)
        tail = "\n".join("    " + str(l) for l in self.tail)
        return f"FAIL {self.name}: {self.reason}\n  last {len(self.tail)} console lines ({self.log}):\n{tail}"


def _find(lines, regex, start=0, end=None):
    return km._find(lines, regex, start, end)


def judge(sc, marker, lines, min_hashed):
    """(ok, reason, info) from a scenario's console transcript."""
    info = {"notes": []}
    T = [l.text for l in lines]
    i_rel = _find(lines, r"^K1-RELEASE=")
    if i_rel is None:
        return False, "kernel 1's cell script never printed K1-RELEASE", info
    info["k1_release"] = T[i_rel].split("=", 1)[1].strip()
    i = _find(lines, r"^K1-NO-CRASHKERNEL")
    if i is not None:
        return False, f"kernel 1 reserved no crash kernel region: {T[i]}", info
    i = _find(lines, r"^K1-CRASHKERNEL ")
    info["crashkernel"] = T[i].split(None, 1)[1] if i is not None else None
    if _find(lines, r"^KEXEC-LOAD-FAILED") is not None:
        i = _find(lines, r"^KEXEC-LOAD-DONE ")
        return False, f"rkexec -p --hotplug failed ({T[i] if i is not None else 'no LOAD-DONE line'})", info
    i_ready = _find(lines, READY_RE)
    if i_ready is None:
        return False, "kernel 1 never signalled readiness for the hot-add", info
    for t in T[i_rel:i_ready]:
        m = km.PLAN_CORE_RE.search(t)
        if m:
            info["plan_cpu_notes"], info["plan_pt_load"] = int(m.group(1)), int(m.group(2))
            info["plan_note"] = t.strip()
    if "plan_note" not in info:
        return False, "no 'elfcorehdr: N CPU notes + vmcoreinfo, M PT_LOAD' note in the -d plan", info
    i = _find(lines, r"^KEXEC-CRASH-LOADED ", 0, i_ready)
    if i is None or T[i].split()[-1] != "1":
        return False, f"/sys/kernel/kexec_crash_loaded after the load: {T[i] if i is not None else '?'}", info
    i = _find(lines, r"^K1-CRASH-HOTPLUG ", 0, i_ready)
    want = "memory=1" if sc.hotplug == "memory" else "cpu=1"
    if i is None or want not in T[i].split():
        return False, (f"crash_hotplug sysfs does not say {want} after the --hotplug load: "
                       f"{T[i] if i is not None else 'no K1-CRASH-HOTPLUG line'}"), info
    i = _find(lines, r"^K1-HOTPLUG-TIMEOUT")
    if i is not None:
        why = f"kernel 1 did not see the hot-added {sc.hotplug}: {T[i]}"
        i_t = _find(lines, r"^K1-CPU-TOPO .*plus 0 hotplug CPUs")
        if sc.hotplug == "cpu" and i_t is not None:
            i_m = _find(lines, r"Unable to map lapic")
            why += f" -- {CPU_TCG_SKIP}" + (f"; kernel 1 said: {T[i_m].split('] ', 1)[-1]}" if i_m is not None else "")
        return False, why, info
    # what kernel 1 saw of the hot-add
    if sc.hotplug == "memory":
        i_new = _find(lines, r"^K1-IOMEM-NEW ", i_ready)
        if i_new is None:
            return False, "kernel 1 never printed the hot-added System RAM range", info
        m = re.match(r"K1-IOMEM-NEW ([0-9a-f]+)-([0-9a-f]+) : System RAM", T[i_new])
        if not m or int(m.group(1), 16) != DIMM_START:
            return False, f"hot-added range is not at {DIMM_START:#x}: {T[i_new]}", info
        info["new_range"] = f"{int(m.group(1), 16):#x}-{int(m.group(2), 16):#x}"
        if int(m.group(2), 16) + 1 - DIMM_START != DIMM_SIZE:
            return False, f"hot-added range is not {DIMM_SIZE >> 20} MiB: {T[i_new]}", info
        i_bl = _find(lines, r"^K1-HOTPLUG-BLOCKS ", i_ready)
        if i_bl is None or re.search(r"=(?!online\b)", T[i_bl]):
            return False, f"hot-added memory blocks not all online: {T[i_bl] if i_bl is not None else '?'}", info
        info["notes"].append(f"kernel 1 saw System RAM {info['new_range']}, blocks: {T[i_bl][18:]}")
    else:
        i_on = _find(lines, r"^K1-CPU1-ONLINE ", i_ready)
        if i_on is None:
            return False, "kernel 1 never onlined cpu1", info
        info["notes"].append(T[i_on])
    i_start = _find(lines, r"^KDUMP-PANIC-START$", i_ready)
    if i_start is None:
        return False, "kernel 1 never reached KDUMP-PANIC-START", info
    i = _find(lines, r"^KDUMP-PANIC-FAILED", i_start)
    if i is not None:
        return False, f"sysrq-c returned to kernel 1: {T[i]}", info
    i_panic = _find(lines, km.PANIC_RE, i_start)
    if i_panic is None:
        return False, "kernel 1 never printed 'Kernel panic - not syncing' after sysrq-c", info
    if sc.hotplug != "memory":
        i_c = _find(lines, r"\bCPU: \d+ (UID|PID)", i_start, i_panic + 6)
        cpu_txt = T[i_c] if i_c is not None else ""
        if not re.search(r"\bCPU: 1 ", cpu_txt):
            return False, f"kernel 1 did not crash on CPU 1: {cpu_txt.strip() or 'no CPU: line in the oops'}", info
    i_boot = _find(lines, qemu_kexec.KERNEL_BOOT_RE.pattern, i_panic + 1)
    purg = [t.strip() for t in T[i_panic:i_boot] if "purgatory:" in t]
    info["purgatory_output"] = purg

    if sc.negative:
        i_ref = _find(lines, REFUSED_RE.pattern, i_panic)
        if i_ref is None:
            return False, ("the purgatory did not refuse the rewritten elfcorehdr"
                           + (f" (it said: {purg[-1]})" if purg else " (no purgatory output)")
                           + (" and the capture kernel booted" if i_boot is not None else "")), info
        info["refused_line"] = T[i_ref].strip()
        if _find(lines, r"purgatory: not entering the kernel", i_ref) is None:
            return False, "no 'purgatory: not entering the kernel' after the refusal", info
        if i_boot is not None:
            return False, f"the capture kernel booted after the refusal: {T[i_boot]}", info
        if any("verified" in t for t in purg):
            return False, f"purgatory both refused and verified: {purg}", info
        return True, "", info

    if i_boot is None:
        return False, ("the capture kernel never printed a boot line after kernel 1's panic"
                       + (f" (purgatory said: {purg[-1]})" if purg else " (no purgatory output)")), info
    info["panic_to_capture_s"] = lines[i_boot].t - lines[i_panic].t
    i_ref = _find(lines, r"purgatory: REFUSED", i_panic, i_boot)
    if i_ref is not None:
        return False, f"purgatory refused: {T[i_ref]}", info
    i_ex = _find(lines, EXCLUDED_RE.pattern, i_panic, i_boot)
    if i_ex is None:
        return False, f"no 'segment N (elfcorehdr) ... excluded, structure ok' line from the purgatory: {purg}", info
    info["excluded_line"] = T[i_ex].strip()
    i_pv = _find(lines, km.PURG_RE.pattern, i_ex, i_boot)
    if i_pv is None:
        return False, f"no 'purgatory: verified' summary after the excluded line: {purg}", info
    info["purgatory_line"] = T[i_pv].strip()
    hashed = int(km.PURG_RE.search(T[i_pv]).group(2))
    if hashed < min_hashed:
        return False, f"purgatory hashed only {hashed} bytes (< capture kernel + initrd {min_hashed})", info
    i_ok = _find(lines, r"^KDUMP-INIT-OK ", i_boot + 1)
    if i_ok is None:
        i_p = _find(lines, r"Kernel panic", i_boot)
        return False, ("the capture kernel panicked: " + T[i_p]) if i_p is not None else \
            "the capture kernel booted but its init never printed KDUMP-INIT-OK", info
    cmdline = T[i_ok].split("cmdline:", 1)[1].split() if "cmdline:" in T[i_ok] else []
    if f"MARKER={marker}" not in cmdline:
        return False, f"the capture kernel's cmdline lacks MARKER={marker}: {' '.join(cmdline)!r}", info
    if _find(lines, r"^KDUMP-NO-VMCORE", i_ok) is not None:
        return False, "the capture kernel has no /proc/vmcore", info
    i_done = _find(lines, r"^KDUMP-DONE$", i_ok)
    if i_done is None:
        return False, "the capture init never printed KDUMP-DONE", info
    vm = [t for t in T[i_ok:i_done] if t.startswith("VMCORE ")]
    info["vmcore"] = vm
    i_rc = _find(lines, r"^KDUMP-VMCORE-CHECK rc=", i_ok, i_done)
    rc = T[i_rc].split("rc=", 1)[1].strip() if i_rc is not None else None
    err = next((t for t in vm if t.startswith("VMCORE error")), None)
    if err or rc != "0":
        return False, f"vmcore-check failed (rc={rc}): {err or (vm[-1] if vm else 'no output')}", info
    facts = {}
    covers = {}
    for t in vm:
        m = re.match(r"VMCORE load-covers (0x[0-9a-f]+) (yes|no)$", t)
        if m:
            covers[int(m.group(1), 16)] = m.group(2)
            continue
        for k, v in re.findall(r"(\w+)=(\S+)", t):
            facts.setdefault(k, v)
    try:
        pt_note, pt_load = int(facts["pt_note"]), int(facts["pt_load"])
        prstatus, vmcoreinfo = int(facts["prstatus"]), int(facts["vmcoreinfo"])
    except (KeyError, ValueError):
        return False, f"vmcore-check output incomplete: {vm}", info
    if pt_note != 1 or vmcoreinfo != 1:
        return False, f"/proc/vmcore: pt_note={pt_note} vmcoreinfo={vmcoreinfo}, expected 1 and 1", info
    if facts.get("OSRELEASE") != info["k1_release"]:
        return False, f"vmcoreinfo OSRELEASE={facts.get('OSRELEASE')!r}, kernel 1 is {info['k1_release']!r}", info
    if not any(re.match(r"VMCORE load0 paddr=0x[0-9a-f]+ read=\d+ ok$", t) for t in vm):
        return False, "no 'VMCORE load0 ... ok' line", info
    if covers.get(LOW_CONTROL) != "yes":
        return False, f"control address {LOW_CONTROL:#x} (kernel text) not covered by any PT_LOAD: {vm}", info
    if sc.hotplug == "memory":
        for a in (DIMM_START, DIMM_LAST):
            if covers.get(a) != "yes":
                return False, (f"VMCORE load-covers {a:#x} {covers.get(a)}: the elfcorehdr the capture kernel "
                               f"got does not describe the hot-added RAM (not rewritten?)"), info
        # the kernel's own header adds the DIMM and, on x86_64, a kernel-text
        # PT_LOAD (crash_prepare_elf64_headers(need_kernel_map=true))
        info["notes"].append(f"pt_load {info['plan_pt_load']} at load -> {pt_load} in the vmcore")
    else:
        if prstatus != 2:
            return False, (f"/proc/vmcore has {prstatus} PRSTATUS notes, expected 2 (the load-time header had "
                           f"{info['plan_cpu_notes']} CPU notes; the CPU hot-add should have rewritten it)"), info
        info["notes"].append(f"CPU notes {info['plan_cpu_notes']} at load -> prstatus={prstatus} in the vmcore")
        if info["plan_cpu_notes"] >= 2:
            info["notes"].append("NOTE: the load-time header already had 2 CPU notes: prstatus=2 alone does not "
                                 "prove a rewrite")
    return True, "", info


def run_scenario(sc, cache, rundir, rkexec, vmcore_check, timeout=300, echo=False, accel="tcg"):
    marker = f"{sc.name}-{secrets.token_hex(6)}"
    sdir = os.path.join(rundir, sc.name)
    os.makedirs(sdir, exist_ok=True)
    log = os.path.join(sdir, "console.log")
    t0 = time.monotonic()
    workdir = os.path.join(cache, WORKDIR)
    loader = kx.make_loader("rkexec", cache, rkexec)
    kernel, base = kx.build_base(cache, SUITE, (loader,), workdir=workdir)
    kdump = build_kdump_initrd(cache, workdir, vmcore_check)
    script = cell_script(sc.name, marker)
    with open(os.path.join(sdir, "cell.sh"), "w") as f:
        f.write(script)
    initrd = km.build_cell_initrd(base, script, os.path.join(sdir, "initrd1.cpio.gz"), ((kdump, "/initrd-kdump"),))
    sockdir = tempfile.mkdtemp(prefix="chx-qmp-")
    sock = os.path.join(sockdir, "qmp.sock")
    q = qemu_kexec.Qemu(kernel, initrd, K1_APPEND, machine=MACHINE, cpu=CPU, memory=MEMORY, smp=sc.smp,
                        accel=accel, echo=echo, log_path=log, qemu=kx.QEMU,
                        extra_args=(*kx.QEMU_EXTRA, "-qmp", f"unix:{sock},server=on,wait=off"))
    err, info_qmp = None, None
    deadline = time.monotonic() + timeout
    with q:
        try:
            ready = False
            hit = q.wait_for(READY_RE + "|" + EARLY_STOP_RE, timeout)
            if re.search(READY_RE, hit.text):
                ready = True
                if sc.hotplug in ("memory", "cpu"):
                    qmp = Qmp(sock)
                    try:
                        info_qmp = hotplug_memory(qmp) if sc.hotplug == "memory" else hotplug_cpu(qmp)
                    finally:
                        qmp.close()
            if ready:
                hit = km._wait_kdump(q, max(1.0, deadline - time.monotonic()))
                if hit.text.startswith("KDUMP-DONE"):
                    try:
                        q.wait_exit(5)
                    except qemu_kexec.QemuError:
                        pass
                elif "purgatory: REFUSED" in hit.text:
                    # the purgatory halts; make sure nothing boots after it
                    try:
                        q.wait_for(qemu_kexec.KERNEL_BOOT_RE.pattern, 8, q.lines.index(hit) + 1)
                    except qemu_kexec.QemuError:
                        pass
                else:
                    time.sleep(1.0)
            else:
                time.sleep(1.0)
        except (qemu_kexec.QemuError, QmpError, OSError) as e:
            err = f"{type(e).__name__}: {e}"
    shutil.rmtree(sockdir, ignore_errors=True)
    try:
        os.unlink(initrd)
    except OSError:
        pass
    lines = list(q.lines)
    min_hashed = kx.bzimage_payload_size(kernel) + os.path.getsize(kdump)
    ok, reason, info = judge(sc, marker, lines, min_hashed)
    if info_qmp:
        info["qmp"] = info_qmp
    if err and not ok:
        reason = f"{reason} [{err}]"
    info["marker"] = marker
    return Result(sc.name, ok, reason, info, time.monotonic() - t0, log, lines[-60:])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", help=f"comma-separated subset of: {','.join(BY_NAME)}")
    ap.add_argument("--rkexec", default=DEFAULT_RKEXEC, help="static x86_64 rkexec (default: %(default)s)")
    ap.add_argument("--vmcore-check", default=DEFAULT_VMCORE_CHECK,
                    help="static x86_64 vmcore-check (default: %(default)s)")
    ap.add_argument("--jobs", "-j", type=int, default=1, help="scenarios run in parallel (default 1)")
    ap.add_argument("--timeout", type=float, default=300, help="per scenario, seconds (default 300)")
    ap.add_argument("--accel", default="tcg", choices=("tcg", "kvm"))
    ap.add_argument("--cache", default=DEFAULT_CACHE)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo every console line")
    a = ap.parse_args(argv)
    if a.list:
        for s in SCENARIOS:
            print(f"{s.name:16s} {s.doc}")
        return 0
    # Not run by default: the rewrite after a CPU online event is
    # byte-identical to rkexec's header (see the module docstring).
    identical = {"cpu-online-negative"}
    scenarios, skipped = [s for s in SCENARIOS if s.name not in identical], []
    if not a.scenarios and a.accel == "tcg":
        skipped = [s for s in scenarios if s.hotplug == "cpu"]
        scenarios = [s for s in scenarios if s.hotplug != "cpu"]
    if a.scenarios:
        names = [n.strip() for n in a.scenarios.split(",") if n.strip()]
        bad = [n for n in names if n not in BY_NAME]
        if bad:
            ap.error(f"unknown scenario(s) {','.join(bad)}; known: {','.join(BY_NAME)}")
        scenarios = [BY_NAME[n] for n in names]
    workdir = os.path.join(a.cache, WORKDIR)
    try:
        loader = kx.make_loader("rkexec", a.cache, a.rkexec)
        kx.build_base(a.cache, SUITE, (loader,), workdir=workdir)
        build_kdump_initrd(a.cache, workdir, a.vmcore_check)
    except (OSError, ValueError) as e:
        print(f"crash_hotplug_x86: {e}", file=sys.stderr)
        return 2
    km.prune_runs(workdir)
    rundir = os.path.join(workdir, "runs", time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}")
    os.makedirs(rundir, exist_ok=True)
    print(f"crash_hotplug_x86: {len(scenarios)} scenario(s), {a.jobs} job(s), accel {a.accel}, logs in {rundir}",
          flush=True)
    for s in skipped:
        print(f"SKIP {s.name}: {CPU_TCG_SKIP} (--scenarios {s.name} runs it anyway)", flush=True)
    if not a.scenarios:
        print("SKIP cpu-online-negative: the kernel's CPU-event rewrite is byte-identical to rkexec's elfcorehdr, "
              "so a digest cannot see it (--scenarios cpu-online-negative runs it anyway)", flush=True)
    t0 = time.monotonic()
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        futs = {ex.submit(run_scenario, s, a.cache, rundir, a.rkexec, a.vmcore_check, a.timeout, a.verbose,
                          a.accel): s for s in scenarios}
        for fut in concurrent.futures.as_completed(futs):
            s = futs[fut]
            try:
                r = fut.result()
            except Exception as e:  # noqa: BLE001 -- a harness bug must not hide the others
                r = Result(s.name, False, f"harness error: {e!r}", {}, 0.0, "", [])
            results.append(r)
            print(r.line(), flush=True)
    npass = sum(r.ok for r in results)
    nfail = len(results) - npass
    if a.json:
        with open(a.json, "w") as f:
            json.dump([dataclasses.asdict(r) | {"tail": [str(l) for l in r.tail]} for r in results], f, indent=2)
    print(f"crash_hotplug_x86: {time.monotonic() - t0:.0f} s wall", flush=True)
    print(f"{npass} passed, {nfail} failed", flush=True)
    return 0 if nfail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
