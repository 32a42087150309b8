#!/usr/bin/env python3
"""Crash hotplug end to end on POWER (ppc64el): after a CPU or memory
hot-add the running kernel rewrites the capture kernel's DTB (CPU: the
/cpus nodes, arch/powerpc/kexec/crash.c update_crash_fdt) or its
elfcorehdr (memory: update_crash_elfcorehdr) in place; our purgatory must
structure-check those segments instead of hashing them, and the capture
kernel must see the new hardware. rkexec loads crash images hotplug-aware
by default wherever the running kernel supports it (README, "kdump").

Cells of the one guest-tier driver (kexec_matrix.py, names ppc-hp-*),
Debian trixie 6.12 ppc64el (CONFIG_CRASH_HOTPLUG=y) as kernel 1 and the
capture kernel, under

    qemu-system-ppc64 -M pseries,x-vof=on -cpu power9 -m 2G,slots=4,maxmem=4G -smp 1,maxcpus=4 -qmp ...

kernel 1 booted with crashkernel=512M. It loads the capture kernel with
`rkexec -p` (no hotplug option: the default), turns on the crash hotplug
code's debug messages (kernel/crash_core.c), marks its log, signals
readiness; the hot-add happens through QMP; kernel 1 prints its log after
the marker and crashes itself (sysrq-c).

  cpu           device_add of a POWER9 core (core-id 1): the pseries DLPAR
                code brings it online by itself; the kernel logs
                `hp_action 1, cpu 1`; the panic runs on the new CPU (taskset
                -c 1). Pass: the purgatory printed the DTB `excluded,
                structure ok`, the capture kernel boots on it and its
                /proc/device-tree/cpus lists the new core.
  memory        object-add + device_add pc-dimm (512M, QEMU puts it at
                2 GiB, where pseries device memory starts): the kernel
                onlines its LMBs itself and logs `hp_action 3`. Pass: the
                purgatory printed the elfcorehdr `excluded, structure ok`;
                the capture kernel's /proc/vmcore covers the DIMM.
  cpu-no-hotplug  the negative control: `--no-hotplug`, the same CPU event,
                panic on CPU 0 (a panic on the new CPU would hang, as
                kexec-tools without --hotplug does). Pass: crash_hotplug
                reads 0, kernel 1's live tree lists the new core and the
                capture kernel's does not: the stale tree, shown.

    tests/guest/crash_hotplug_ppc.py [--scenarios cpu,memory] [-j 2] [-v]
    (= tests/guest/kexec_matrix.py --arch ppc64el --cells ppc-hp-cpu,ppc-hp-memory ...)
"""
import dataclasses
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import crash_hotplug_x86 as x86  # noqa: E402
import guest_cells as gcl  # noqa: E402
import guest_contracts as gc  # noqa: E402
import guest_judges as gj  # noqa: E402
import guest_scripts as gs  # noqa: E402

SUITE = "trixie"  # 6.12, CONFIG_CRASH_HOTPLUG=y
PREFIX = "ppc-hp-"
MEMORY = "2G,slots=4,maxmem=4G"
# pseries device memory starts at ram_size rounded up to 1 GiB
# (hw/ppc/spapr.c SPAPR_DEVICE_MEM_ALIGN): the first DIMM at 2 GiB.
DIMM_SIZE = 512 << 20
DIMM_START = 0x80000000
DIMM_LAST = DIMM_START + DIMM_SIZE - 0x10000  # its last 64 KiB page
NEW_CORE = "@1"  # /cpus/PowerPC,POWER9@1: core-id 1's node
# kernel/crash_core.c crash_handle_hotplug_event (pr_debug); the powerpc
# handlers print only their failures (arch/powerpc/kexec/crash.c).
HP_ACTION = {"cpu": r"hp_action 1, cpu 1$", "memory": r"hp_action 3$"}
HP_FAILED = r"crash hp: (Failed to update crash FDT|Updated crash elfcorehdr elfsz|Unable to locate FDT)"


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    doc: str
    hotplug: str            # "cpu" | "memory" (QMP hot-add)
    loader_opts: str = ""   # extra rkexec -p options
    aware: bool = True      # the load is hotplug-aware (crash_hotplug reads 1)


SCENARIOS = [
    Scenario("cpu", "POWER9 core hot-added after the -p load, panic on it: the capture kernel's device tree lists "
             "it (the kernel rewrote the excluded DTB)", "cpu"),
    Scenario("memory", "pc-dimm 512M hot-added after the -p load: the vmcore covers it (the kernel rewrote the "
             "excluded elfcorehdr)", "memory"),
    Scenario("cpu-no-hotplug", "negative control: --no-hotplug, the same core hot-add, panic on CPU 0: the capture "
             "kernel's device tree lacks the new core", "cpu", loader_opts="--no-hotplug", aware=False),
]
BY_NAME = {s.name: s for s in SCENARIOS}

# After the load: report, turn on crash_core.c's debug messages, mark the log.
AFTER_LOAD = r"""echo "K1-CRASH-HOTPLUG memory=$(cat $S/memory/crash_hotplug 2>&1) cpu=$(cat $S/cpu/crash_hotplug 2>&1)"
_dd=/proc/dynamic_debug/control
[ -w $_dd ] || { mount -t debugfs none /sys/kernel/debug 2>/dev/null; _dd=/sys/kernel/debug/dynamic_debug/control; }
echo 'file kernel/crash_core.c +p' >$_dd || { echo "K1-HOTPLUG-TIMEOUT cannot enable dynamic debug ($_dd)"; return 1; }
echo "@KLOG_MARK@" >/dev/kmsg
"""

# The live tree's cores once the new one is up.
LIVE_CPUS = r"""echo "K1-DT-CPUS $(ls /proc/device-tree/cpus | grep @ | tr '\n' ' ')"
"""

# memory: wait for the DIMM's System RAM (pseries onlines hot-added LMBs
# itself: hotplug-memory.c dlpar_add_lmb -> dlpar_online_lmb).
MEMORY_BODY = r"""echo K1-READY-MEMORY
_ram() {  # is physical address $1 inside a top-level System RAM line?
    while IFS='- ' read -r _a _b _rest; do
        [ "$_rest" = ": System RAM" ] && [ $((0x$_a)) -le $1 ] && [ $((0x$_b)) -ge $1 ] && return 0
    done </proc/iomem
    return 1
}
_i=0
until _ram $((0x@DIMM_HEX@)) && _ram $((0x@DIMM_LAST_HEX@)); do
    _i=$((_i + 1)); [ $_i -le 240 ] || { echo "K1-HOTPLUG-TIMEOUT the DIMM is not all System RAM"; return 1; }
    sleep 0.5
done
grep ' : System RAM$' /proc/iomem | while read -r _l; do echo "K1-IOMEM-RAM $_l"; done
echo K1-DIMM-ONLINE
"""

KLOG = x86.KLOG.replace("grep -E '@KLOG_MARK@|crash hp|hp_action|elfcorehdr'",
                        "grep -E '@KLOG_MARK@|crash hp|hp_action'")


class PpcHotplugKind(x86.HotplugKind):
    name = "hotplug-ppc"

    @staticmethod
    def scenario(run):
        return BY_NAME[run.cell.param("scenario")]

    def k1_kind_words(self, run):
        return gcl.KdumpKind.k1_kind_words(self, run)

    def new_append(self, run):
        covers = ",".join(f"{a:#x}" for a in (DIMM_START, DIMM_LAST))
        return f"{gcl.KdumpKind.new_append(self, run)} VMCORE_COVERS={covers}"

    def qemu_opts(self, run):
        return dict(memory=MEMORY, smp="1,maxcpus=4")

    def script(self, run):
        sc = self.scenario(run)
        cpu = sc.hotplug == "cpu"
        body = x86.CPU_BODY + x86.CPU_WAIT_ONLINE + LIVE_CPUS if cpu else MEMORY_BODY
        parts = [f"LOADER={run.loader.cmd}", *gs.kdump_prelude(), x86.HEAD, *self.load_lines(run, sc.loader_opts),
                 AFTER_LOAD, body, KLOG,
                 *gs.crash_lines(run.arch, cpu=1 if cpu and sc.aware else 0)]
        s = "\n".join(p.strip("\n") for p in parts if p) + "\n"
        return (s.replace("@KLOG_MARK@", x86.KLOG_MARK).replace("@DIMM_HEX@", f"{DIMM_START:x}")
                .replace("@DIMM_LAST_HEX@", f"{DIMM_START + DIMM_SIZE - 1:x}"))

    def steps(self, run, tr, info, bits):
        sc = self.scenario(run)
        i_start = self.before_crash(run, tr, info, bits)
        plan = gc.plan_facts(tr.T[:i_start], run, crash=True)
        i = tr.find(r"^K1-CRASH-HOTPLUG ", 0, i_start)
        want = f"{sc.hotplug}={1 if sc.aware else 0}"
        if i is None or want not in tr.T[i].split():
            raise gj.Fail(f"crash_hotplug sysfs does not say {want} after the -p load "
                          f"{sc.loader_opts or '(default)'}: {tr.text(i) if i is not None else 'no K1-CRASH-HOTPLUG line'}")
        bits.append(f"crash_hotplug {want}")
        i_ready = tr.need(r"^K1-READY-", "kernel 1 never signalled readiness for the hotplug event", 0, i_start)
        i = tr.find(r"^K1-HOTPLUG-TIMEOUT")
        if i is not None:
            raise gj.Fail(f"kernel 1 did not see the {sc.hotplug} event: {tr.text(i)}")
        if "qmp" in run.extra:
            bits.insert(0, f"QMP: {run.extra['qmp']}")
        self.saw(sc, tr, bits, i_ready, i_start)
        i_mark = tr.need(r"^K1-KLOG .*" + re.escape(x86.KLOG_MARK), "kernel 1 printed no kernel log after its marker",
                         i_ready, i_start)
        i_fail = tr.find(r"^K1-KLOG .*" + HP_FAILED, i_mark, i_start)
        if i_fail is not None:
            raise gj.Fail(f"the kernel could not update the crash image: {tr.text(i_fail)}")
        i_act = tr.find(r"^K1-KLOG .*crash hp: " + HP_ACTION[sc.hotplug], i_mark, i_start)
        if sc.aware and i_act is None:
            raise gj.Fail(f"not proven: the kernel did not log '{HP_ACTION[sc.hotplug]}' after the {sc.hotplug} event")
        if not sc.aware and i_act is not None:
            raise gj.Fail(f"--no-hotplug, yet the kernel handled the event for the crash image: {tr.text(i_act)}")
        if i_act is not None:
            bits.append(f"kernel logged '{tr.T[i_act].split('crash hp: ')[1].strip()}'")
        i_panic, i_boot = self.crash(run, tr, info, bits, i_start)
        want_cpu = 1 if sc.hotplug == "cpu" and sc.aware else 0
        i_c = tr.find(r"\bCPU: \d+ (UID|PID)", i_start, i_panic + 8)
        if i_c is None or not re.search(rf"\bCPU: {want_cpu} ", tr.T[i_c]):
            raise gj.Fail(f"kernel 1 did not crash on CPU {want_cpu}: {tr.text(i_c) if i_c is not None else 'no CPU: line'}")
        gj.purgatory_step(tr, info, bits, i_panic + 1, i_boot, plan, run.ours, *run.purgatory_rules(),
                          checks=run.checks)
        rewritten = {"cpu": "dtb", "memory": "elfcorehdr"}[sc.hotplug]
        seg = [s for s in info["purgatory_segments"] if s["kind"] == rewritten]
        if len(seg) != 1 or seg[0]["excluded"] != sc.aware:
            raise gj.Fail(f"the purgatory should have {'structure-checked' if sc.aware else 'hashed'} the "
                          f"{rewritten}: {info['purgatory_segments']}")
        bits.append(f"{rewritten} {'excluded, structure ok' if sc.aware else 'hashed'}")
        if sc.hotplug == "cpu":
            info["k1_cpus"] = 2  # booted with one, the hot-added one online at the crash
        # memory: the kernel rebuilt the header from its memblock ranges
        # (arch/powerpc/kexec/ranges.c), not the plan's count.
        i_ok, facts, covers = self.capture(run, tr, info, bits, plan, i_start, i_boot,
                                           count_loads=sc.hotplug != "memory")
        if sc.hotplug == "memory":
            for a in (DIMM_START, DIMM_LAST):
                if not covers.get(a):
                    raise gj.Fail(f"the capture kernel's /proc/vmcore does not cover the hot-added RAM at {a:#x}: "
                                  f"{info['vmcore']}")
            bits.append(f"vmcore covers the DIMM {DIMM_START:#x}..{DIMM_LAST + 0xffff:#x}")
            return
        i_dt = tr.need(r"^KDUMP-DT-CPUS ", "the capture kernel printed no device-tree CPU list", i_ok)
        capture_cpus = tr.T[i_dt].split()[1:]
        has_new = any(c.endswith(NEW_CORE) for c in capture_cpus)
        if sc.aware and not has_new:
            raise gj.Fail(f"the capture kernel's device tree lacks the hot-added core: {capture_cpus}")
        if not sc.aware and has_new:
            raise gj.Fail(f"--no-hotplug, yet the capture kernel's device tree lists the new core: {capture_cpus}")
        bits.append(f"capture kernel's /cpus: {' '.join(capture_cpus)}")

    def saw(self, sc, tr, bits, i_ready, end):
        """What kernel 1 saw of the hot-add."""
        if sc.hotplug == "memory":
            tr.need(r"^K1-DIMM-ONLINE$", "kernel 1 never saw the whole DIMM as System RAM", i_ready, end)
            ram = [tr.T[j].split(" ", 1)[1] for j in range(i_ready, end) if tr.T[j].startswith("K1-IOMEM-RAM ")]
            new = [r for r in ram if int(r.split("-")[0], 16) >= DIMM_START]
            bits.insert(0, f"hot-added System RAM {', '.join(r.split(' ')[0] for r in new)} (one range per LMB)")
            return
        tr.need(r"^K1-CPU1-ONLINE ", "kernel 1 never brought cpu1 online", i_ready, end)
        i_dt = tr.need(r"^K1-DT-CPUS ", "kernel 1 printed no live /cpus", i_ready, end)
        live = tr.T[i_dt].split()[1:]
        if not any(c.endswith(NEW_CORE) for c in live):
            raise gj.Fail(f"kernel 1's live tree lacks the hot-added core: {live}")
        bits.insert(0, f"kernel 1's /cpus: {' '.join(live)}")


KINDS = {"hotplug-ppc": PpcHotplugKind()}


def cells():
    return [gcl.Cell(PREFIX + s.name, "ppc64el", "hotplug-ppc", s.doc, suite=SUITE, loaders=("rkexec",),
                     params=(("scenario", s.name),)) for s in SCENARIOS]


def main(argv=None):
    """`--scenarios a,b` selects ppc-hp-a,ppc-hp-b; everything else goes to kexec_matrix."""
    return gcl.group_main("crash_hotplug_ppc.py", ",".join(PREFIX + s.name for s in SCENARIOS), argv,
                          arch="ppc64el", scenarios=PREFIX)


if __name__ == "__main__":
    sys.exit(main())
