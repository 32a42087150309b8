#!/usr/bin/env python3
"""Crash hotplug end to end (amd64): the kernel rewrites the elfcorehdr of an
rkexec-loaded capture kernel after a memory or CPU hotplug event, and our
purgatory must skip (not hash) that segment, and only that one.

These are cells of the one guest-tier driver (kexec_matrix.py, names
x86-hp-*); this file defines their kind and scenarios, and is also a small
CLI for running just them. Debian trixie 6.12 (CONFIG_CRASH_HOTPLUG=y) is
kernel 1 and the capture kernel, under

    qemu-system-x86_64 -M q35 -cpu max -m 1G,slots=4,maxmem=4G -smp 1,maxcpus=2 (or 2,maxcpus=2) -qmp ...

kernel 1 booted with crashkernel=256M memhp_default_state=online. Kernel 1
loads the capture kernel with `rkexec -p ... --hotplug`
(KEXEC_UPDATE_ELFCOREHDR), turns on the kernel's own debug messages of the
crash hotplug code (dynamic debug for arch/x86/kernel/crash.c and
kernel/crash_core.c), writes a marker into the kernel log, signals
readiness; the hot-add happens (through QMP, or in sysfs); kernel 1 prints
the kernel log after its marker and crashes itself (sysrq-c).

Proof that the kernel rewrote the header, in every scenario: the kernel's
own "crash hp: updated elfcorehdr" debug line after the marker. Proof by
content where the bytes change (memory, cpu-online-stale): the capture
kernel's /proc/vmcore covers what the load-time header could not.

  memory              QMP object-add memory-backend-ram (512M) + device_add
                      pc-dimm at 4 GiB; the vmcore covers the DIMM and has one
                      PT_LOAD more than the plan; the purgatory printed the
                      elfcorehdr `excluded, structure ok`.
  memory-negative     the same with --debug-hash-excluded: the purgatory must
                      refuse the elfcorehdr (sha256 mismatch), not enter, and
                      nothing may boot.
  cpu-online          -smp 2: cpu1 offline at load time, onlined after it (the
                      "crash/cpuhp" online callback), panic on cpu1; the
                      kernel logs the rewrite, prstatus=2.
  cpu-online-identical  as cpu-online with --debug-hash-excluded: rkexec's
                      header has the kernel's own layout (a note for every
                      possible CPU), so the kernel's rewrite is byte-identical
                      and the purgatory must VERIFY the hashed header.
  cpu-online-stale    as cpu-online, but rkexec sees a /proc/iomem whose first
                      RAM range starts 1 MiB late (--proc-root), so its header
                      lacks 0x100000-0x1fffff: the capture kernel's vmcore
                      covering 0x100000 proves the CPU event rewrote it.
  cpu-online-negative cpu-online-stale with --debug-hash-excluded: the
                      purgatory must refuse the rewritten header.
  cpu                 QMP device_add of a second CPU (-smp 1,maxcpus=2). Not
                      in the default set: under TCG Debian 6.12 reserves no
                      hotplug slot ("Allowing 1 present CPUs plus 0 hotplug
                      CPUs"), so the CPU never appears in the guest.

    tests/guest/crash_hotplug_x86.py [--scenarios memory,cpu-online] [-j 2] [-v] [--timeout 300]
    (= tests/guest/kexec_matrix.py --arch amd64 --cells x86-hp-memory,x86-hp-cpu-online ...)
"""
import dataclasses
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import guest_cells as gcl  # noqa: E402
import guest_contracts as gc  # noqa: E402
import guest_judges as gj  # noqa: E402
import guest_scripts as gs  # noqa: E402
import qemu_kexec  # noqa: E402

SUITE = "trixie"  # 6.12, CONFIG_CRASH_HOTPLUG=y
PREFIX = "x86-hp-"
MEMORY = "1G,slots=4,maxmem=4G"
# The hot-added DIMM: q35 with -m 1G (all below 4 GiB) starts its
# device-memory region at 4 GiB and the first pc-dimm goes there.
DIMM_SIZE = 512 << 20
DIMM_START = 0x100000000
DIMM_LAST = DIMM_START + DIMM_SIZE - 0x1000  # its last page
LOW_CONTROL = 0x1000000  # kernel text (nokaslr): covered by any header
STALE_HOLE = 0x100000    # the MiB the stale /proc/iomem hides from rkexec
KLOG_MARK = "rkexec-test: hotplug begins"
REWRITE_RE = r"crash hp: updated elfcorehdr"  # arch/x86/kernel/crash.c, after the copy over the old header
# kernel/crash_core.c crash_handle_hotplug_event() logs the action first;
# include/linux/crash_core.h: KEXEC_CRASH_HP_ADD_CPU 1, KEXEC_CRASH_HP_ADD_MEMORY 3.
HP_ACTION = {"memory": r"hp_action 3$", "cpu": r"hp_action 1, cpu 1$", "cpu-online": r"hp_action 1, cpu 1$"}


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    doc: str
    hotplug: str             # "memory" | "cpu" (QMP hot-add) | "cpu-online" (sysfs offline -> online)
    negative: bool = False   # --debug-hash-excluded, the purgatory must refuse
    identical: bool = False  # --debug-hash-excluded, the purgatory must verify (byte-identical rewrite)
    stale: bool = False      # rkexec sees a /proc/iomem missing 1 MiB of RAM
    smp: str = "1,maxcpus=2"
    default: bool = True


SCENARIOS = [
    Scenario("memory", "pc-dimm 512M hot-added after the -p load; the vmcore covers it", "memory"),
    Scenario("memory-negative", "as memory with --debug-hash-excluded: the purgatory must refuse", "memory",
             negative=True),
    Scenario("cpu-online", "-smp 2: cpu1 offline at load time, onlined after it, panic on it; prstatus=2",
             "cpu-online", smp="2,maxcpus=2"),
    Scenario("cpu-online-identical", "as cpu-online with --debug-hash-excluded: the rewrite is byte-identical, the "
             "purgatory must verify it", "cpu-online", identical=True, smp="2,maxcpus=2"),
    Scenario("cpu-online-stale", "as cpu-online, rkexec given a /proc/iomem without 0x100000-0x1fffff: the vmcore "
             "covering it proves the rewrite", "cpu-online", stale=True, smp="2,maxcpus=2"),
    Scenario("cpu-online-negative", "cpu-online-stale with --debug-hash-excluded: the purgatory must refuse",
             "cpu-online", negative=True, stale=True, smp="2,maxcpus=2"),
    Scenario("cpu", "QMP device_add of cpu1 (-smp 1,maxcpus=2), panic on it; prstatus=2 [TCG: the guest reserves "
             "no hotplug CPU slot]", "cpu", default=False),
]
BY_NAME = {s.name: s for s in SCENARIOS}

# ---------------------------------------------------------------------------
# Guest script fragments
# ---------------------------------------------------------------------------

HEAD = r"""S=/sys/devices/system
echo "K1-CPUS possible=$(cat $S/cpu/possible) present=$(cat $S/cpu/present) online=$(cat $S/cpu/online)"
echo "K1-ELFCOREHDR-SIZE $(cat /sys/kernel/crash_elfcorehdr_size 2>&1)"
echo "K1-CRASH-HOTPLUG-BEFORE memory=$(cat $S/memory/crash_hotplug 2>&1) cpu=$(cat $S/cpu/crash_hotplug 2>&1)"
"""

# cpu-online: CPU 1 is present from boot; it goes offline before the load.
CPU_OFFLINE = r"""S=/sys/devices/system
echo 0 >$S/cpu/cpu1/online || { echo "K1-HOTPLUG-TIMEOUT cannot offline cpu1"; return 1; }
echo "K1-CPU1-OFFLINE online=$(cat $S/cpu/online) present=$(cat $S/cpu/present)"
"""

# A /proc for rkexec whose first RAM range above 1 MiB starts 1 MiB later.
STALE_PROC = r"""mkdir -p /tmp/stale-proc
sed 's/^00100000-\([0-9a-f]*\) : System RAM$/00200000-\1 : System RAM/' /proc/iomem >/tmp/stale-proc/iomem
grep -q '^00200000-[0-9a-f]* : System RAM$' /tmp/stale-proc/iomem \
    || { echo "K1-HOTPLUG-TIMEOUT no 00100000 System RAM line to make stale"; return 1; }
cat /proc/cmdline >/tmp/stale-proc/cmdline
ln -s /proc/kcore /tmp/stale-proc/kcore
echo "K1-STALE-IOMEM $(grep '^00200000' /tmp/stale-proc/iomem)"
"""

# After the load: report, turn on the crash hotplug debug messages, mark the log.
AFTER_LOAD = r"""echo "K1-CRASH-HOTPLUG memory=$(cat $S/memory/crash_hotplug 2>&1) cpu=$(cat $S/cpu/crash_hotplug 2>&1)"
grep -E 'System RAM|Crash kernel' /proc/iomem | while read -r _l; do echo "K1-IOMEM-BEFORE $_l"; done
_dd=/proc/dynamic_debug/control
[ -w $_dd ] || { mount -t debugfs none /sys/kernel/debug 2>/dev/null; _dd=/sys/kernel/debug/dynamic_debug/control; }
echo 'file arch/x86/kernel/crash.c +p' >$_dd && echo 'file kernel/crash_core.c +p' >$_dd \
    || { echo "K1-HOTPLUG-TIMEOUT cannot enable dynamic debug ($_dd)"; return 1; }
echo "@KLOG_MARK@" >/dev/kmsg
"""

# memory: wait for the DIMM's System RAM range, then for its blocks online.
MEMORY_BODY = r"""echo K1-READY-MEMORY
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
echo "K1-IOMEM-NEW $_new"
"""

# cpu: wait for cpu1 to appear (ACPI hot-add), online it (no udev here).
CPU_BODY = r"""echo "K1-CPU-TOPO $(dmesg | grep -o 'Allowing .* hotplug CPUs')"
echo K1-READY-CPU
_i=0
until [ -e $S/cpu/cpu1/online ]; do
    _i=$((_i + 1))
    [ $_i -le 60 ] || { echo "K1-HOTPLUG-TIMEOUT no cpu1 (possible=$(cat $S/cpu/possible))"; return 1; }
    sleep 0.5
done
[ "$(cat $S/cpu/cpu1/online)" = 1 ] || echo 1 >$S/cpu/cpu1/online
"""

CPU_ONLINE_BODY = r"""echo K1-READY-CPU
echo 1 >$S/cpu/cpu1/online
"""

CPU_WAIT_ONLINE = r"""_i=0
until [ "$(cat $S/cpu/cpu1/online)" = 1 ]; do
    _i=$((_i + 1)); [ $_i -le 60 ] || { echo "K1-HOTPLUG-TIMEOUT cpu1 did not come online"; return 1; }
    sleep 0.5
done
echo "K1-CPU1-ONLINE online=$(cat $S/cpu/online) crash_notes=$(cat $S/cpu/cpu1/crash_notes 2>&1)"
busybox taskset -c 1 true && echo "K1-TASKSET-OK" || { echo "K1-HOTPLUG-TIMEOUT taskset -c 1 failed"; return 1; }
"""

# What the kernel logged from the marker on (the crash hotplug debug lines).
KLOG = r"""dmesg | sed -n '/@KLOG_MARK@/,$p' | grep -E '@KLOG_MARK@|crash hp|hp_action|elfcorehdr' \
    | while read -r _l; do echo "K1-KLOG $_l"; done
"""


class HotplugKind(gcl.KdumpKind):
    name = "hotplug"
    qmp = True

    @staticmethod
    def scenario(run):
        return BY_NAME[run.cell.param("scenario")]

    def k1_kind_words(self, run):
        return f"{super().k1_kind_words(run)} memhp_default_state=online"

    def new_append(self, run):
        covers = ",".join(f"{a:#x}" for a in (DIMM_START, DIMM_LAST, LOW_CONTROL, STALE_HOLE))
        return f"{super().new_append(run)} VMCORE_COVERS={covers}"

    def qemu_opts(self, run):
        return dict(memory=MEMORY, smp=self.scenario(run).smp)

    def script(self, run):
        sc = self.scenario(run)
        extra = "--hotplug" + (" --debug-hash-excluded" if sc.negative or sc.identical else "") + (
            " --proc-root=/tmp/stale-proc" if sc.stale else "")
        body = {"memory": MEMORY_BODY, "cpu": CPU_BODY + CPU_WAIT_ONLINE,
                "cpu-online": CPU_ONLINE_BODY + CPU_WAIT_ONLINE}[sc.hotplug]
        parts = [f"LOADER={run.loader.cmd}", CPU_OFFLINE if sc.hotplug == "cpu-online" else "",
                 *gs.kdump_prelude(), HEAD, STALE_PROC if sc.stale else "", *self.load_lines(run, extra),
                 AFTER_LOAD, body, KLOG,
                 *gs.crash_lines(run.arch, cpu=0 if sc.hotplug == "memory" else 1)]
        s = "\n".join(p.strip("\n") for p in parts if p) + "\n"
        return (s.replace("@KLOG_MARK@", KLOG_MARK).replace("@DIMM_HEX@", f"{DIMM_START:x}")
                .replace("@DIMM_SIZE@", str(DIMM_SIZE)))

    def wait(self, run, q, timeout):
        deadline = time.monotonic() + timeout
        sc = self.scenario(run)
        i = q.wait_index(r"^K1-READY-(MEMORY|CPU)$|KEXEC-LOAD-FAILED|K1-NO-CRASHKERNEL|CELL-SCRIPT-|"
                         r"K1-HOTPLUG-TIMEOUT|" + gcl.PANIC_RE, timeout)
        if not q.lines[i].text.startswith("K1-READY"):
            time.sleep(1.0)
            return
        if sc.hotplug in ("memory", "cpu"):
            with q.qmp_client() as m:
                run.extra["qmp"] = hotplug_memory(m) if sc.hotplug == "memory" else hotplug_cpu(m)
        hit = gcl.wait_kdump(q, run.arch, max(1.0, deadline - time.monotonic()))
        if hit.text.startswith("KDUMP-DONE"):
            try:
                q.wait_exit(5)
            except Exception:  # noqa: BLE001
                pass
        elif gc.purgatory_lines().templates["refused"] in hit.text:
            try:  # the purgatory halts: make sure nothing boots after it
                q.wait_for(run.arch.boot_re, 8, q.lines.index(hit) + 1)
            except Exception:  # noqa: BLE001
                pass
        else:
            time.sleep(1.0)

    def steps(self, run, tr, info, bits):
        sc = self.scenario(run)
        i_start = self.before_crash(run, tr, info, bits)
        plan = gc.plan_facts(tr.T[:i_start], run, crash=True)
        i = tr.find(r"^K1-CRASH-HOTPLUG ", 0, i_start)
        want = "memory=1" if sc.hotplug == "memory" else "cpu=1"
        if i is None or want not in tr.T[i].split():
            raise gj.Fail(f"crash_hotplug sysfs does not say {want} after the --hotplug load: "
                          f"{tr.text(i) if i is not None else 'no K1-CRASH-HOTPLUG line'}")
        i_ready = tr.need(r"^K1-READY-", "kernel 1 never signalled readiness for the hotplug event", 0, i_start)
        i = tr.find(r"^K1-HOTPLUG-TIMEOUT")
        if i is not None:
            raise gj.Fail(f"kernel 1 did not see the {sc.hotplug} event: {tr.text(i)}")
        self.saw_event(sc, tr, info, bits, i_ready, i_start)
        if "qmp" in run.extra:
            bits.insert(0, f"QMP: {run.extra['qmp']}")
        i_mark = tr.need(r"^K1-KLOG .*" + re.escape(KLOG_MARK), "kernel 1 printed no kernel log after its marker",
                         i_ready, i_start)
        i_act = tr.find(r"^K1-KLOG .*crash hp: " + HP_ACTION[sc.hotplug], i_mark, i_start)
        i_rw = tr.find(r"^K1-KLOG .*" + REWRITE_RE, i_act, i_start) if i_act is not None else None
        if i_rw is None:
            klog = [tr.text(j) for j in range(i_mark, i_start) if tr.T[j].startswith("K1-KLOG")]
            raise gj.Fail(f"not proven: the kernel did not log '{HP_ACTION[sc.hotplug]}' then '{REWRITE_RE}' "
                          f"after the {sc.hotplug} event (its log from the marker on: {klog})")
        bits.append(f"kernel logged '{tr.T[i_act].split('crash hp: ')[1].strip()}', 'updated elfcorehdr'")
        i_panic, i_boot = self.crash_refused(run, tr, info, bits, i_start) if sc.negative else \
            self.crash(run, tr, info, bits, i_start)
        if sc.hotplug != "memory":
            i_c = tr.find(r"\bCPU: \d+ (UID|PID)", i_start, i_panic + 6)
            if i_c is None or not re.search(r"\bCPU: 1 ", tr.T[i_c]):
                raise gj.Fail(f"kernel 1 did not crash on CPU 1: {tr.text(i_c) if i_c is not None else 'no CPU: line'}")
        if sc.negative:
            return
        gj.purgatory_step(tr, info, bits, i_panic + 1, i_boot, plan, run.ours, *run.purgatory_rules())
        core = [s for s in info["purgatory_segments"] if s["kind"] == "elfcorehdr"]
        if len(core) != 1 or core[0]["excluded"] == sc.identical:
            raise gj.Fail(f"the purgatory should have {'hashed' if sc.identical else 'excluded'} the elfcorehdr: "
                          f"{info['purgatory_segments']}")
        more = sc.hotplug == "memory" and plan.pt_load is not None
        i_ok, facts, covers = self.capture(run, tr, info, bits, plan, i_start, i_boot,
                                           pt_load=plan.pt_load + 1 if more else None,
                                           why="the plan's elfcorehdr + the DIMM" if more else "the plan's elfcorehdr")
        if not covers.get(LOW_CONTROL):
            raise gj.Fail(f"kernel text {LOW_CONTROL:#x} is not covered by any PT_LOAD: {info['vmcore']}")
        if sc.hotplug == "memory":
            for a in (DIMM_START, DIMM_LAST):
                if not covers.get(a):
                    raise gj.Fail(f"the capture kernel's elfcorehdr does not cover the hot-added RAM at {a:#x}")
            bits.append(f"vmcore covers the DIMM at {DIMM_START:#x}")
        if sc.stale:
            if not covers.get(STALE_HOLE):
                raise gj.Fail(f"the vmcore does not cover {STALE_HOLE:#x} (hidden from rkexec): the CPU event did "
                              "not rewrite the header")
            bits.append(f"vmcore covers {STALE_HOLE:#x} that rkexec's header lacked")
        if sc.hotplug != "memory" and info["prstatus"] != 2:
            raise gj.Fail(f"/proc/vmcore has {info['prstatus']} PRSTATUS notes, expected 2")

    def saw_event(self, sc, tr, info, bits, i_ready, end):
        """What kernel 1 saw of the hot-add."""
        if sc.hotplug == "memory":
            i_new = tr.need(r"^K1-IOMEM-NEW ", "kernel 1 never printed the hot-added System RAM range", i_ready, end)
            m = re.match(r"K1-IOMEM-NEW ([0-9a-f]+)-([0-9a-f]+) : System RAM", tr.T[i_new])
            if not m or int(m.group(1), 16) != DIMM_START or int(m.group(2), 16) + 1 - DIMM_START != DIMM_SIZE:
                raise gj.Fail(f"hot-added range is not {DIMM_SIZE >> 20} MiB at {DIMM_START:#x}: {tr.text(i_new)}")
            i_bl = tr.need(r"^K1-HOTPLUG-BLOCKS ", "no memory block states", i_ready, end)
            if re.search(r"=(?!online\b)", tr.T[i_bl]):
                raise gj.Fail(f"hot-added memory blocks not all online: {tr.text(i_bl)}")
            bits.insert(0, f"hot-added System RAM {DIMM_START:#x}+{DIMM_SIZE:#x}, blocks online")
        else:
            i_on = tr.need(r"^K1-CPU1-ONLINE ", "kernel 1 never onlined cpu1", i_ready, end)
            bits.insert(0, tr.text(i_on)[3:])

    def crash_refused(self, run, tr, info, bits, i_start):
        """Negative control: after the panic the purgatory must refuse the
        rewritten elfcorehdr and not enter anything."""
        P = gc.purgatory_lines()
        i_panic = tr.need(gcl.PANIC_RE, "kernel 1 never printed 'Kernel panic - not syncing' after sysrq-c", i_start)
        i_ref = tr.find(P.pattern("digest_mismatch"), i_panic)
        said = P.said(tr.T[i_panic:])
        m = P.match("digest_mismatch", tr.T[i_ref]) if i_ref is not None else None
        if m is None or m["kind"] != "elfcorehdr":
            raise gj.Fail("the purgatory did not refuse the rewritten elfcorehdr"
                          + (f" (it said: {said[-1]})" if said else " (no purgatory output)"))
        info["refused_line"] = tr.text(i_ref)
        tr.need(re.escape(P.templates["not_entering"]), "no 'not entering the kernel' after the refusal", i_ref)
        i_boot = tr.find(run.arch.boot_re, i_panic + 1)
        if i_boot is not None:
            raise gj.Fail(f"a kernel booted after the refusal: {tr.text(i_boot)}")
        if tr.find(P.pattern("verified"), i_panic) is not None:
            raise gj.Fail(f"purgatory both refused and verified: {said}")
        bits.append(f"refused: {info['refused_line']}")
        return i_panic, None

# ---------------------------------------------------------------------------
# QMP actions
# ---------------------------------------------------------------------------


def hotplug_memory(qmp):
    qmp.command("object-add", **{"qom-type": "memory-backend-ram", "id": "mem1", "size": DIMM_SIZE})
    qmp.command("device_add", driver="pc-dimm", id="dimm1", memdev="mem1")
    devs = qmp.command("query-memory-devices")
    d = next((x["data"] for x in devs if x.get("data", {}).get("id") == "dimm1"), None)
    return f"pc-dimm dimm1 addr={d['addr']:#x} size={d['size']:#x}" if d else "pc-dimm dimm1"


def hotplug_cpu(qmp):
    """device_add a CPU into the first free query-hotpluggable-cpus slot."""
    cpus = qmp.command("query-hotpluggable-cpus")
    free = [c for c in cpus if "qom-path" not in c]
    if not free:
        raise qemu_kexec.QmpError(f"no hotpluggable CPU slot left: {cpus}")
    slot = sorted(free, key=lambda c: sorted(c["props"].items()))[0]
    qmp.command("device_add", driver=slot["type"], id="cpu1", **slot["props"])
    return f"added {slot['type']} " + ",".join(f"{k}={v}" for k, v in sorted(slot["props"].items()))


KINDS = {"hotplug": HotplugKind()}


def cells():
    return [gcl.Cell(PREFIX + s.name, "amd64", "hotplug", s.doc, suite=SUITE, loaders=("rkexec",),
                     default=s.default, params=(("scenario", s.name),)) for s in SCENARIOS]


def main(argv=None):
    """`--scenarios a,b` selects the cells of those scenarios; everything else goes to kexec_matrix."""
    return gcl.group_main("crash_hotplug_x86.py", ",".join(PREFIX + s.name for s in SCENARIOS if s.default), argv,
                          arch="amd64", scenarios=PREFIX)


if __name__ == "__main__":
    sys.exit(main())
