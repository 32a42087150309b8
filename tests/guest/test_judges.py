#!/usr/bin/env python3
"""Host-only tests of the guest tier's judges and contracts (no QEMU).

Each test feeds a judge a synthetic console transcript shaped like a real
one (tests/guest/kexec_matrix.py logs) and checks that it passes when every
fact holds and fails, with the right reason, when one does not: the judges
cannot pass by accident. Runs in a second:

    python3 tests/guest/test_judges.py [-v]
"""
import contextlib
import dataclasses
import io
import json
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import crash_hotplug_x86 as hp  # noqa: E402
import guest_cells as gcl  # noqa: E402
import guest_contracts as gc  # noqa: E402
import guest_images as gi  # noqa: E402
import kexec_matrix as km  # noqa: E402
import ppc_cells  # noqa: E402
import qemu_kexec  # noqa: E402
import systemd_cells as sdc  # noqa: E402
from guest_arch import ARCHES  # noqa: E402
from guest_judges import Transcript  # noqa: E402
from qemu_kexec import Line  # noqa: E402

MARKER = "el1-0123456789ab"
K2_CMDLINE = f"console=ttyAMA0 earlycon nokaslr rdinit=/init MARKER={MARKER}"
SEGS = [("kernel", 0xb7c00000, 0x1ab0000), ("initrd", 0xb9702000, 0xfe000), ("dtb", 0xbfab5000, 0x3000)]
RKEXEC = gi.Loader("rkexec", "rkexec", purgatory=True, plans=True)


def kernel_lines(version="6.1.0-57-cloud-arm64", el="EL1", extra=()):
    return ["[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd083]",
            f"[    0.000000] Linux version {version} (debian-kernel@lists.debian.org)",
            *extra, f"[    0.120000] CPU: All CPU(s) started at {el}"]


def status(when, loaded, contract):
    rc = (1 if loaded else 0) if contract == "kexec-tools" else (0 if loaded else 1)
    out = "" if contract == "kexec-tools" else f"kexec kernel {'loaded' if loaded else 'not loaded'}"
    return f"KEXEC-STATUS when={when} rc={rc} out=[{out}]"


def plan_json(segs=SEGS, cmdline=K2_CMDLINE, **over):
    p = {"schema": "rkexec-plan/1", "arch": "arm64", "kind": "kexec",
         "kernel": {"path": "/kernel2", "format": "Image"}, "entry": 0xbfa66060, "kernel_entry": 0xb7c00000,
         "boot_data": {"kind": "dtb", "addr": 0xbfab5000}, "cmdline": cmdline,
         "segments": [{"index": i, "kind": k, "start": s, "end": s + n, "memsz": n, "bufsz": n, "digest_len": n,
                       "sha256": "00" * 32, "excluded": False, "source": "x"} for i, (k, s, n) in enumerate(segs)]
         + [{"index": len(segs), "kind": "purgatory", "start": 0xbfa66000, "end": 0xbfa70000, "memsz": 0xa000,
             "bufsz": 0xa000, "digest_len": 0, "sha256": "", "excluded": False, "source": "embedded"}],
         "elfcorehdr": None, "purgatory": {"verify": True, "on_failure": "halt", "console": {"kind": 1, "base": 0},
                                           "flags": 0}, "notes": []}
    p.update(over)
    return "PLAN-JSON " + json.dumps(p)


def kexec_transcript(contract="kexec-tools", segs=SEGS, verified=None, k2_el="EL1", cmdline=K2_CMDLINE,
                     plan="same", status_after=True):
    """An el1 kexec cell's console; plan="same" prints the plan of `segs`."""
    total = sum(n for _, _, n in segs) if verified is None else verified
    texts = [*kernel_lines(), "INIT1-START 3.0 1.0", status("before", False, contract)]
    if plan is not None:
        texts.append(plan_json(segs=segs) if plan == "same" else plan)
    texts += ["KEXEC-LOAD-START rkexec -l /kernel2", "KEXEC-LOAD-DONE rc=0 ns=2736778160",
              status("after", status_after, contract), status("other", False, contract), "KEXEC-EXEC-START",
              "[   11.176437] kexec_core: Starting new kernel", "[   11.176900] Bye!",
              "purgatory: aarch64 EL1, image 0xbfa66000, mmu+caches on"]
    texts += [f"purgatory: segment {i} ({k}) {s:#x}+{n:#x} sha256 ok" for i, (k, s, n) in enumerate(segs)]
    texts += [f"purgatory: verified {len(segs)} segments, {total} bytes hashed with armv8-sha2 in 1425449 us",
              "purgatory: entering kernel at 0xb7c00000, dtb 0xbfab5000", *kernel_lines(el=k2_el),
              f"KERNEL2-INIT-OK uptime=2.1 cmdline: {cmdline}"]
    return Transcript([Line(float(i), t) for i, t in enumerate(texts)])


class Files:
    """Host files standing for /kernel2 and /initrd2 (their sizes matter),
    removed when the test case ends."""

    def __init__(self, test, kernel_size, initrd_size):
        self.dir = tempfile.TemporaryDirectory()
        test.addCleanup(self.dir.cleanup)
        self.kernel = os.path.join(self.dir.name, "Image")
        self.initrd = os.path.join(self.dir.name, "initrd2")
        for p, n in ((self.kernel, kernel_size), (self.initrd, initrd_size)):
            with open(p, "wb") as f:
                f.truncate(n)


def run_for(cell_name, files, loader=RKEXEC, marker=MARKER):
    cell = next(c for c in gcl.grid() + hp.cells() if c.name == cell_name)
    arch = ARCHES[cell.arch]
    return gcl.CellRun(cell, arch, arch.mode(cell.mode), loader, marker, "/nonexistent",
                       kernel_path=files.kernel, initrd_path=files.initrd)


class Contracts(unittest.TestCase):
    def test_templates_become_typed_groups(self):
        P = gc.purgatory_lines()
        m = P.match("segment_ok", "junk purgatory: segment 2 (boot-params) 0x32a05000+0x2000 sha256 ok")
        self.assertEqual(m, {"index": 2, "kind": "boot-params", "mem": 0x32a05000, "len": 0x2000})
        self.assertIsNone(P.match("segment_ok", "purgatory: segment 2 (dtb) 0x1+0x2 sha256 mismatch"))
        v = P.match("verified", "purgatory: verified 4 segments, 13070336 bytes hashed with portable in 545122 us")
        self.assertEqual(v, {"segments": 4, "bytes": 13070336, "engine": "portable", "us": 545122})
        self.assertEqual(P.match("resetting", "purgatory: resetting the system (PSCI SYSTEM_RESET)"),
                         {"method": "PSCI SYSTEM_RESET"})  # a value may hold spaces

    def test_status_rules(self):
        kt = gi.Loader("kexec-tools", "kexec")
        self.assertEqual(gc.status_expected(kt, loaded=True), (1, True))
        self.assertEqual(gc.status_expected(kt, loaded=False), (0, True))


class KexecJudge(unittest.TestCase):
    def setUp(self):
        self.files = Files(self, SEGS[0][2] - 4096, SEGS[1][2] - 4096)
        self.run_ = run_for("el1", self.files)
        self.kind = gcl.KINDS["kexec"]

    def judge(self, tr):
        return self.kind.judge(self.run_, tr)

    def test_pass(self):
        v = self.judge(kexec_transcript(contract=gc.RKEXEC_STATUS))
        self.assertTrue(v.ok, v.reason)
        self.assertEqual(v.info["purgatory"]["bytes"], sum(n for _, _, n in SEGS))

    def test_summary_disagrees_with_segment_lines(self):
        v = self.judge(kexec_transcript(contract=gc.RKEXEC_STATUS, verified=4096))
        self.assertFalse(v.ok)
        self.assertIn("add up to", v.reason)

    def test_hashed_less_than_the_files(self):
        small = [(k, s, 0x1000) for k, s, _ in SEGS]
        v = self.judge(kexec_transcript(contract=gc.RKEXEC_STATUS, segs=small))
        self.assertFalse(v.ok)
        self.assertIn("less than the kernel payload", v.reason)

    def test_wrong_status_fails(self):
        other = "kexec-tools" if gc.RKEXEC_STATUS != "kexec-tools" else "rkexec-legacy"
        v = self.judge(kexec_transcript(contract=other))
        self.assertFalse(v.ok)
        self.assertIn("-S before the load", v.reason)
        v = self.judge(kexec_transcript(contract=gc.RKEXEC_STATUS, status_after=False))
        self.assertFalse(v.ok)
        self.assertIn("-S after the load", v.reason)

    def test_marker_and_el(self):
        v = self.judge(kexec_transcript(contract=gc.RKEXEC_STATUS, cmdline=K2_CMDLINE.replace(MARKER, "x")))
        self.assertFalse(v.ok)
        self.assertIn("lacks MARKER", v.reason)
        v = self.judge(kexec_transcript(contract=gc.RKEXEC_STATUS, k2_el="EL2"))
        self.assertFalse(v.ok)
        self.assertIn("el='EL2'", v.reason)

    def test_refusal_is_named(self):
        tr = kexec_transcript(contract=gc.RKEXEC_STATUS)
        i = next(i for i, t in enumerate(tr.T) if "segment 1 (initrd)" in t)
        tr.lines[i] = Line(tr.lines[i].t, "purgatory: REFUSED: segment 1 (initrd) 0xb9702000+0xfe000 sha256 mismatch")
        v = self.judge(Transcript(tr.lines[:i + 1]))
        self.assertFalse(v.ok)
        self.assertIn("purgatory refused: purgatory: REFUSED: segment 1", v.reason)


class PlanJson(unittest.TestCase):
    """The rkexec-plan/1 facts the judges take."""

    def setUp(self):
        self.files = Files(self, 1, 1)
        self.run_ = run_for("el1", self.files)
        self.kind = gcl.KINDS["kexec"]

    def judge(self, plan):
        return self.kind.judge(self.run_, kexec_transcript(contract=gc.RKEXEC_STATUS, plan=plan))

    def test_pass(self):
        v = self.judge(plan_json())
        self.assertTrue(v.ok, v.reason)

    def test_mismatches(self):
        moved = [SEGS[0], ("initrd", SEGS[1][1] + 0x1000, SEGS[1][2]), SEGS[2]]
        for plan, why in ((plan_json(segs=moved), "the plan says"),
                          (plan_json(cmdline=K2_CMDLINE + " extra"), "the plan's cmdline"),
                          (plan_json(schema="rkexec-plan/0"), "schema"),
                          (plan_json(boot_data={"kind": "boot-params", "addr": 1}), "boot_data kind"),
                          (plan_json(segs=SEGS[:2]), "the plan has 2 segments"),
                          (plan_json(hashed_bytes=1), "hashed_bytes"),
                          (plan_json(kind="crash"), "expected arm64 kexec"),
                          (None, "no PLAN-JSON")):
            v = self.judge(plan)
            self.assertFalse(v.ok, why)
            self.assertIn(why, v.reason)

    def test_file_plan_cmdline_prefix(self):
        """rkexec-file-plan/1: kexec_file_load's crash cmdline gains elfcorehdr= in front, nothing else."""
        import guest_judges as gj
        f = gc._file_plan({"cmdline": K2_CMDLINE}, crash=True)
        for words, ok in ((f"elfcorehdr=0x72924000 {K2_CMDLINE}", True), (K2_CMDLINE, True),
                          (f"elfcorehdr=0x72924000 x {K2_CMDLINE}", False), (f"foo=1 {K2_CMDLINE}", False)):
            tr = Transcript([Line(0.0, f"KDUMP-INIT-OK uptime=1 cmdline: {words}")])
            try:
                gj.cmdline_step(tr, {}, 0, MARKER, f)
                self.assertTrue(ok, words)
            except gj.Fail:
                self.assertFalse(ok, words)

    def test_plan_line_only_for_rkexec(self):
        self.assertIn("PLAN-JSON", gc.plan_line(RKEXEC, "/kernel2"))
        self.assertEqual(gc.plan_line(gi.Loader("kexec-tools", "kexec"), "/kernel2"), ":")


class HotplugJudge(unittest.TestCase):
    """The crash-hotplug CPU cell: a PASS needs the kernel's own rewrite log."""

    def transcript(self, klog):
        cpu = "6.12.118+deb13-cloud-amd64"
        k = ["[    0.000000] Linux version " + cpu + " (x)", "[    0.3] smpboot: Total of 2 processors activated"]
        texts = [*k, "K1-RELEASE=" + cpu, "K1-CRASHKERNEL 2f000000-3effffff : Crash kernel",
                 status("before", False, gc.RKEXEC_STATUS), self.plan(),
                 "KEXEC-LOAD-DONE rc=0 ns=1000", status("after", True, gc.RKEXEC_STATUS),
                 status("other", False, gc.RKEXEC_STATUS),
                 "K1-CRASH-HOTPLUG memory=1 cpu=1", "K1-READY-CPU", "K1-CPU1-ONLINE online=0-1 crash_notes=1",
                 "K1-KLOG [ 18.2] " + hp.KLOG_MARK, *klog, "KEXEC-CRASH-LOADED 1", "KDUMP-PANIC-START",
                 "[ 20.0] CPU: 1 UID: 0 PID: 1 Comm: sh", "[ 20.1] Kernel panic - not syncing: sysrq triggered crash",
                 "purgatory: x86_64 long mode, image 0x32a07000, cr0 0x80000033, cr4 0x1020",
                 "purgatory: segment 0 (kernel) 0x2f000000+0xb2f000 sha256 ok",
                 "purgatory: segment 1 (initrd) 0x327de000+0x146000 sha256 ok",
                 "purgatory: segment 2 (elfcorehdr) 0x32924000+0xe1000 excluded, structure ok",
                 "purgatory: segment 3 (boot-params) 0x32a05000+0x2000 sha256 ok",
                 f"purgatory: verified 4 segments, {0xb2f000 + 0x146000 + 0x2000} bytes hashed with portable in 5 us",
                 "[    0.000000] Linux version " + cpu + " (x)",
                 f"KDUMP-INIT-OK uptime=4.7 cmdline: {self.CMDLINE}",
                 "VMCORE phnum=4 pt_note=1 pt_load=3", "VMCORE OSRELEASE=" + cpu, "VMCORE notes prstatus=2 vmcoreinfo=1",
                 "VMCORE load0 paddr=0x1000000 read=65536 ok nonzero=9000", "VMCORE load-covers 0x1000000 yes",
                 "KDUMP-VMCORE-CHECK rc=0", "KDUMP-DONE"]
        return Transcript([Line(float(i), t) for i, t in enumerate(texts)])

    CMDLINE = f"elfcorehdr=0x32924000 console=ttyS0 MARKER={MARKER}"
    SEGS = [("kernel", 0x2f000000, 0xb2f000, False), ("initrd", 0x327de000, 0x146000, False),
            ("elfcorehdr", 0x32924000, 0xe1000, True), ("boot-params", 0x32a05000, 0x2000, False)]

    def plan(self):
        segs = [{"index": i, "kind": k, "start": s, "end": s + n, "memsz": n, "bufsz": n, "digest_len": n,
                 "sha256": "00" * 32, "excluded": x, "source": "x"} for i, (k, s, n, x) in enumerate(self.SEGS)]
        return "PLAN-JSON " + json.dumps({
            "schema": "rkexec-plan/1", "arch": "x86_64", "kind": "crash", "cmdline": self.CMDLINE,
            "boot_data": {"kind": "boot-params", "addr": 0x32a05000}, "segments": segs,
            "hashed_bytes": sum(n for _, _, n, x in self.SEGS if not x),
            "elfcorehdr": {"addr": 0x32924000, "cpu_notes": 2, "pt_load": 3, "hotplug": True}})

    def test_rewrite_must_be_logged(self):
        files = Files(self, 0xb2f000 + 0x200 * 5, 0x146000)
        run = run_for("x86-hp-cpu-online", files)
        kind = hp.KINDS["hotplug"]
        ok = kind.judge(run, self.transcript(["K1-KLOG [ 18.3] crash hp: hp_action 1, cpu 1",
                                              "K1-KLOG [ 18.4] crash hp: updated elfcorehdr"]))
        self.assertTrue(ok.ok, ok.reason)
        for klog in ([], ["K1-KLOG [ 18.4] crash hp: updated elfcorehdr"],
                     ["K1-KLOG [ 18.3] crash hp: hp_action 3", "K1-KLOG [ 18.4] crash hp: updated elfcorehdr"]):
            v = kind.judge(run, self.transcript(klog))
            self.assertFalse(v.ok, klog)
            self.assertIn("not proven", v.reason)


class CallerArgv(unittest.TestCase):
    """Room for caller cells: a load template with rkexec installed as /sbin/kexec."""

    def test_template_script(self):
        files = Files(self, 1, 1)
        loader = gi.make_loader(ARCHES["arm64"], "rkexec-as-kexec", rkexec=files.kernel)
        self.assertEqual((loader.cmd, loader.adds), ("/sbin/kexec", ((files.kernel, "/sbin/kexec"),)))
        run = run_for("el1", files, loader=loader)
        run.cell = dataclasses.replace(run.cell, load="{loader} --load {kernel} --append {append} --initrd {initrd}")
        script = gcl.KINDS["kexec"].script(run)
        self.assertIn(f"timed $LOADER --load /kernel2 --append '{K2_CMDLINE}' --initrd /initrd2 ||", script)
        self.assertIn("LOADER=/sbin/kexec", script)
        self.assertIn("do_exec $LOADER -e", script)
        self.assertIn("status before $LOADER -S -l", script)
        self.assertIn("status other $LOADER -S\n", script)
        self.assertIn(f"PLAN-JSON $($LOADER --dry-run --load /kernel2 --append '{K2_CMDLINE}' --initrd /initrd2 --json", script)


class ModeLines(unittest.TestCase):
    """A mode's required purgatory lines (riscv64: the engine and the hart's ISA)."""

    def test_riscv_engine_and_isa(self):
        import guest_judges as gj
        mode = ARCHES["riscv64"].mode("zknh")
        base = ["purgatory: riscv64 S-mode, image 0x8fe00000, hart 0x0, a1 0x8fe40000, caches on (PMA, satp 0)",
                "purgatory: boot hart isa from dtb: zknh zkr",
                "purgatory: segment 0 (kernel) 0x80200000+0x1000 sha256 ok",
                "purgatory: verified 1 segments, 4096 bytes hashed with zknh in 9 us"]
        for texts, why in ((base, None), ([t.replace("with zknh", "with portable") for t in base], "engine"),
                           ([t.replace(": zknh zkr", ": no-zknh zkr") for t in base], "riscv_isa"),
                           (base[1:], "setup_riscv"),
                           (base + ["purgatory: note: the kernel found the FDT at a1 0x1, the loader named 0x2"],
                            "the kernel found the FDT")):
            tr = Transcript([Line(float(i), t) for i, t in enumerate(texts)])
            try:
                gj.purgatory_step(tr, {}, [], 0, len(texts), gc.PlanFacts("none"), True, mode.purgatory,
                                  ARCHES["riscv64"].purgatory_forbid)
                self.assertIsNone(why)
            except gj.Fail as e:
                self.assertIsNotNone(why, str(e))
                self.assertIn(why, str(e))


class NoChecks(unittest.TestCase):
    """`rkexec -i`: the purgatory says it skipped, lists segments as not hashed, hashes 0 bytes."""

    def test_skipped_form_only_with_i(self):
        import guest_judges as gj
        off = ["purgatory: verification skipped at the loader's request (-i)",
               "purgatory: segment 0 (kernel) 0x80200000+0x1000 not hashed (verification off)",
               "purgatory: segment 1 (initrd) 0x84000000+0x2000 not hashed (verification off)",
               "purgatory: verified 2 segments, 0 bytes hashed with zknh in 0 us"]
        on = ["purgatory: segment 0 (kernel) 0x80200000+0x1000 sha256 ok",
              "purgatory: segment 1 (initrd) 0x84000000+0x2000 sha256 ok",
              "purgatory: verified 2 segments, 12288 bytes hashed with zknh in 9 us"]
        for texts, checks, why in ((off, False, None), (on, True, None),
                                   (off, True, "skipped verification though"),
                                   (on, False, "did not say it skipped"),
                                   ([off[0], on[0], off[2], off[3]], False, "sha256 ok for a load with -i"),
                                   (off[:3] + ["purgatory: verified 2 segments, 4096 bytes hashed with zknh in 9 us"],
                                    False, "add up to 0 bytes")):
            tr = Transcript([Line(float(i), t) for i, t in enumerate(texts)])
            try:
                gj.purgatory_step(tr, {}, [], 0, len(texts), gc.PlanFacts("none"), True, checks=checks)
                self.assertIsNone(why, texts)
            except gj.Fail as e:
                self.assertIsNotNone(why, str(e))
                self.assertIn(why, str(e))


class Grid(unittest.TestCase):
    def test_names_unique_and_complete(self):
        cells = gcl.grid() + hp.cells()
        names = [c.name for c in cells] + [a for c in cells for a in c.aliases]
        self.assertEqual(len(names), len(set(names)))
        for want in ("el1", "el2-nvhe", "el2-vhe", "kdump-el1", "kdump-el2-vhe-trixie", "dtb-override",
                     "reuse-cmdline", "x86-load", "x86-file-trixie", "x86-kdump-trixie", "x86-lockdown", "x86-ima",
                     "x86-hp-memory-negative", "x86-hp-cpu-online-negative"):
            self.assertIn(want, names)
        self.assertTrue(all(dataclasses.is_dataclass(c) for c in cells))
        everything = [c.name for c in km.all_cells()]
        self.assertEqual(len(everything), len(set(everything)))
        for want in ("ppc-load", "ppc-load-trixie", "ppc-petitboot", "ppc-load-smp4"):
            self.assertIn(want, everything)


class StalledKernel1(unittest.TestCase):
    """A cell reruns once only when kernel 1 never reached its /init."""

    def result(self, ok, k1, log):
        last = [Line(9.0, "smp: Bringing up secondary CPUs ...")]
        return km.Result("rv-kdump-portable", "riscv64", "rkexec", ok, "why", {}, [], 1.0, log, last,
                         k1_user_space=k1)

    def run_with(self, *results):
        calls = []
        seq = iter(results)
        real = km.run_cell

        def fake(*a, **k):
            calls.append(a)
            return next(seq)

        km.run_cell = fake
        try:
            with tempfile.TemporaryDirectory() as d:
                log = os.path.join(d, "console.log")
                for r in results:
                    r.log = log
                open(log, "w").close()
                cell = gcl.grid()[0]
                printed = io.StringIO()
                with contextlib.redirect_stdout(printed):
                    r = km.run_cell_rerun_stalled(cell, "loader", None, d)
                kept = os.path.exists(os.path.join(d, "console-stalled.log"))
        finally:
            km.run_cell = real
        # The RERUN line is printed exactly when the cell ran again.
        self.assertEqual(printed.getvalue().startswith(f"RERUN {cell.name}: kernel 1 stalled"), len(calls) == 2)
        return r, len(calls), kept

    def test_k1_reached_init(self):
        def tr(*texts):
            return Transcript([Line(float(i), t) for i, t in enumerate(texts)])

        self.assertTrue(km.k1_reached_init(tr("x", "INIT1-START 1.20 0.40", "K1-RELEASE=6.12")))
        self.assertFalse(km.k1_reached_init(tr("smp: Bringing up secondary CPUs ...")))

    def test_reruns(self):
        r, n, kept = self.run_with(self.result(False, False, ""), self.result(True, True, ""))
        self.assertEqual((r.ok, n, kept), (True, 2, True))
        self.assertIn("rerun: kernel 1's first boot stalled before /init", r.bits)
        r, n, _ = self.run_with(self.result(False, False, ""), self.result(False, False, ""))
        self.assertEqual((r.ok, n), (False, 2))
        self.assertIn("(rerun;", r.reason)
        # A failure after kernel 1's /init started is the cell's: no rerun.
        r, n, kept = self.run_with(self.result(False, True, ""))
        self.assertEqual((r.ok, n, kept), (False, 1, False))
        r, n, _ = self.run_with(self.result(True, True, ""))
        self.assertEqual((r.ok, n), (True, 1))


PPC_SEGS = [("kernel", 0x3fb0000, 0x2755000), ("initrd", 0x6850000, 0x13d000), ("dtb", 0x7fffa000, 0x6000)]
PPC_VERSION = "6.12.95+deb12-powerpc64le"


def ppc_kernel(cpus, t0=0.0):
    return [f"[    0.000000] Linux version {PPC_VERSION} (debian-kernel@lists.debian.org)",
            "[    0.000000] printk: legacy bootconsole [udbg0] enabled",
            f"[    0.391136] smp: Brought up 1 node, {cpus} CPUs"]


def lines(texts, t0=0.0):
    return [Line(t0 + i, t) for i, t in enumerate(texts)]


class CpusStep(unittest.TestCase):
    """-smp N > 1: both kernels must report N CPUs (the secondary CPUs' hand-off path)."""

    def test_smp_values(self):
        import guest_judges as gj
        self.assertEqual([gj.smp_cpus(v) for v in (4, "2", "1,maxcpus=4", "x")], [4, 2, 1, None])

    def test_counts(self):
        import guest_judges as gj
        arch = ARCHES["ppc64el"]
        for k1, k2, want, why in ((4, 4, 4, None), (4, 2, 4, "kernel 2 brought up 2 CPUs, QEMU started 4"),
                                  (2, 4, 4, "kernel 1 brought up 2"), (None, 4, 4, "an unreported number"),
                                  (1, 1, 1, None), (None, None, 1, None)):
            texts = (ppc_kernel(k1)[:2] if k1 is None else ppc_kernel(k1)) + ["KEXEC-EXEC-START"]
            n1 = len(texts)
            texts += ppc_kernel(k2)[:2] if k2 is None else ppc_kernel(k2)
            tr = Transcript(lines(texts))
            bits = []
            try:
                gj.cpus_step(tr, {}, bits, arch, want, (0, n1), (n1, len(texts)))
                self.assertIsNone(why)
                self.assertEqual(bits, [f"kernel 2 brought up {want} CPUs"] if want > 1 else [])
            except gj.Fail as e:
                self.assertIsNotNone(why, str(e))
                self.assertIn(why, str(e))


class VtermJudge(unittest.TestCase):
    """ppc-petitboot: the purgatory and kernel 2 on the second vterm, none of them on the first."""

    def setUp(self):
        self.files = Files(self, PPC_SEGS[0][2] - 4096, PPC_SEGS[1][2] - 4096)
        cell = next(c for c in ppc_cells.cells() if c.name == "ppc-petitboot")
        arch = ARCHES[cell.arch]
        self.marker = "ppc-petitboot-0123456789ab"
        self.run_ = gcl.CellRun(cell, arch, arch.mode(cell.mode), dataclasses.replace(RKEXEC, cmd="/sbin/kexec"),
                                self.marker, "/nonexistent", kernel_path=self.files.kernel,
                                initrd_path=self.files.initrd)
        self.kind = km.KINDS["vterm"]

    def transcripts(self, console_base=ppc_cells.VTERM, on_first=(), vty=True, edited=True):
        cmdline = f"rdinit=/init MARKER={self.marker}"
        plan = json.loads(plan_json(segs=PPC_SEGS, cmdline=cmdline)[len("PLAN-JSON "):])
        plan.update(arch="ppc64le", purgatory={**plan["purgatory"], "console": {"kind": 6, "base": console_base}})
        first = [*ppc_kernel(2), "INIT1-START 3.0 1.0"]
        if edited:
            first += ["FDT-EDIT in version=16 size=24576 out version=17 size=17036",
                      *[f"FDT-EDIT set /chosen/{p}=/vdevice/vty@71000010 was=/vdevice/vty@71000000"
                        for p in ("linux,stdout-path", "stdout-path")]]
        first += [status("before", False, "kexec-tools"), "PLAN-JSON " + json.dumps(plan),
                  "KEXEC-LOAD-START /sbin/kexec -l --debug", "KEXEC-LOAD-DONE rc=0 ns=1000719119",
                  status("after", True, "kexec-tools"), status("other", False, "kexec-tools"), "KEXEC-EXEC-START",
                  "[    8.343406] kexec: Starting switchover sequence.", "Linux ppc64le", *on_first]
        second = ["purgatory: ppc64le real mode, image 0x698d000, cpu 0x0, pvr 0x4e1200"]
        second += [f"purgatory: segment {i} ({k}) {a:#x}+{n:#x} sha256 ok" for i, (k, a, n) in enumerate(PPC_SEGS)]
        second += [f"purgatory: verified 3 segments, {sum(n for _, _, n in PPC_SEGS)} bytes hashed with vcrypto "
                   "in 10515228 us", "purgatory: entering kernel at 0x3fb0000, dtb 0x7fffa000", *ppc_kernel(2),
                   f"KERNEL2-INIT-OK uptime=3.31 cmdline: {cmdline}"]
        self.run_.consoles = {ppc_cells.VTERM_NAME: lines(second, 30.0) if vty else []}
        return Transcript(lines(first))

    def test_pass(self):
        v = self.kind.judge(self.run_, self.transcripts())
        self.assertTrue(v.ok, v.reason)
        self.assertIn("purgatory and kernel 2 on vterm 0x71000010", v.bits[0])
        # kernel 2's first line (the 7th on vty2, from t=30) - KEXEC-EXEC-START (the 14th on the first, from t=0)
        self.assertAlmostEqual(v.info["handoff_s"], (30.0 + 6) - 13)

    def test_failures(self):
        for kw, why in ((dict(on_first=("purgatory: verified 3 segments, 1 bytes hashed with vcrypto in 1 us",)),
                         "our purgatory printed on the first vterm"),
                        (dict(on_first=(f"[    0.000000] Linux version {PPC_VERSION}",)), "a kernel's first line"),
                        (dict(on_first=(f"[    1.000000] Linux version {PPC_VERSION}",)), "a kernel banner"),
                        (dict(on_first=("KERNEL2-INIT-OK uptime=1",)), "kernel 2's init printed on the first"),
                        (dict(vty=False), "nothing on the second vterm"),
                        (dict(console_base=0x71000000), "not hvterm 0x71000010"),
                        (dict(edited=False), "did not edit its /sys/firmware/fdt")):
            v = self.kind.judge(self.run_, self.transcripts(**kw))
            self.assertFalse(v.ok, kw)
            self.assertIn(why, v.reason)


class StatusFacts(unittest.TestCase):
    """ppc-load-smp4's -s / -u / -S facts, on the lines rkexec and kexec-tools 2.0.25 both print."""

    LINES = ["PPC-S-RC=253", "PPC-S-ERR syscall kexec_file_load not available.", "PPC-S-ERR-LINES 1",
             "PPC-LOADED-AFTER-S 1", "PPC-U-RC=0", "KEXEC-STATUS when=unloaded rc=0 out=[]", "PPC-LOADED-AFTER-U 0",
             "PPC-RELOAD-RC=0", "KEXEC-STATUS when=reloaded rc=1 out=[]"]

    def test_pass_and_each_fact_can_fail(self):
        import guest_judges as gj
        cell = next(c for c in ppc_cells.cells() if c.name == "ppc-load-smp4")
        self.assertEqual(cell.smp, 4)
        gj.expect_step(Transcript(lines(self.LINES)), [], cell.expect)
        for bad, good in (("PPC-S-RC=255", "PPC-S-RC=253"), ("PPC-LOADED-AFTER-S 0", "PPC-LOADED-AFTER-S 1"),
                          ("KEXEC-STATUS when=unloaded rc=1 out=[]", "KEXEC-STATUS when=unloaded rc=0 out=[]"),
                          ("KEXEC-STATUS when=unloaded rc=0 out=[not loaded]", "KEXEC-STATUS when=unloaded rc=0 out=[]"),
                          ("PPC-LOADED-AFTER-U 1", "PPC-LOADED-AFTER-U 0"),
                          ("PPC-S-ERR kexec_file_load failed", "PPC-S-ERR syscall kexec_file_load not available."),
                          ("PPC-S-ERR rkexec: syscall kexec_file_load not available.",
                           "PPC-S-ERR syscall kexec_file_load not available."),
                          ("PPC-S-ERR-LINES 2", "PPC-S-ERR-LINES 1")):
            texts = [bad if t == good else t for t in self.LINES]
            with self.assertRaises(gj.Fail, msg=bad):
                gj.expect_step(Transcript(lines(texts)), [], cell.expect)


class SecondConsole(unittest.TestCase):
    """qemu_kexec: a second console is a device on a pipe chardev, read like stdio."""

    def test_argv_and_reader(self):
        with tempfile.TemporaryDirectory() as d:
            kernel = os.path.join(d, "vmlinux")
            open(kernel, "wb").close()
            q = qemu_kexec.Qemu(kernel, consoles=(("vty2", "spapr-vty,reg=0x71000010"),),
                                log_path=os.path.join(d, "console.log"))
            try:
                i = q.argv.index("-chardev")
                self.assertEqual(q.argv[i:i + 4], ["-chardev", f"pipe,id=vty2,path={q._tmp}/vty2", "-device",
                                                   "spapr-vty,reg=0x71000010,chardev=vty2"])
                self.assertTrue(all(os.path.exists(f"{q._tmp}/vty2{e}") for e in (".in", ".out")))
            finally:
                q.kill()
            r, w = os.pipe()
            done = []
            c = qemu_kexec.Console("vty2", log_path=os.path.join(d, "console-vty2.log"))
            c.start(r, 0.0, writer_gone=lambda: bool(done))
            os.write(w, b"purgatory: verified\r\nKERNEL2-INIT-OK x\npartial")
            self.assertEqual(c.wait_index(r"KERNEL2-INIT-OK", 5), 1)
            done.append(1)  # "QEMU exited": the reader drains, ends, closes its fd
            c.close()
            os.close(w)
            self.assertEqual([l.text for l in c.lines], ["purgatory: verified", "KERNEL2-INIT-OK x", "partial"])
            with self.assertRaises(qemu_kexec.QemuError):
                c.wait_index(r"never", 5)
            with open(os.path.join(d, "console-vty2.log")) as f:
                self.assertEqual(len(f.read().splitlines()), 3)


SD_MARKER = "sd-amd64-bookworm-51a8294a9210"
SD_REL = "6.1.0-57-cloud-amd64"
SD_K1 = f"root=/dev/vda rw console=ttyS0 earlyprintk=serial crashkernel=256M rkexec_cell.marker={SD_MARKER} " \
        "rkexec_cell.steps=type1,crash"


def sd_transcript(**over):
    """sd-amd64-bookworm's console as a real run printed it (abridged):
    kernel 1, systemctl kexec, kernel 2, sysrq-c, the capture kernel, the
    report boot. `over` replaces lines by a key."""
    lv = f"[    0.000000] Linux version {SD_REL} (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian"

    def up(k, pid):
        return [f"[   63.2] rkexec-cell[{pid}]: CELL-UP stage={k} marker={SD_MARKER} release={SD_REL} pid1=systemd",
                over.get(f"pkg{k}", f"[   64.2] rkexec-cell[{pid}]: CELL-PKG rkexec=0.1.0-1 kdump-tools=1:1.8.1 "
                                    "kexec-tools=absent"),
                f"[   64.5] rkexec-cell[{pid}]: CELL-KEXEC-BIN /usr/sbin/rkexec rkexec 0.1.0 (kexec-tools 2.0.32 "
                "compatible)",
                over.get(f"svc{k}", f"[   64.8] rkexec-cell[{pid}]: CELL-KDUMP-SERVICE active success"),
                f"[   64.9] rkexec-cell[{pid}]: CELL-KDUMP-CMD /sbin/kexec -p --command-line=\"...\" "
                "--initrd=/var/lib/kdump/initrd.img /var/lib/kdump/vmlinuz",
                f"[   64.9] rkexec-cell[{pid}]: CELL-CRASH-LOADED 1"]
    lines = [
        lv, f"[    0.000000] Command line: {SD_K1}",
        *up(0, 346),
        "[   68.2] rkexec-cell[346]: CELL-STEP stage=0 step=type1",
        over.get("dry", '[   69.3] rkexec-cell[409]: CELL-DRY-RUN Would run /sbin/kexec --load '
                 f'"/run/boot-loader-entries//vmlinuz" --append "{SD_K1} rkexec_cell.stage=1" --initrd '
                 '"/run/boot-loader-entries//initrd.img"'),
        "[   69.4] rkexec-cell[346]: CELL-SYSTEMCTL-KEXEC step=type1 stage=0",
        "[   74.9] systemd-shutdown[1]: Rebooting with kexec.",
        "[   75.0] kexec_core: Starting new kernel",
        "purgatory: x86_64 long mode, image 0x5000, cr0 0x80000033, cr4 0x1020",
        "purgatory: segment 0 (kernel) 0x2bc00000+0xd84000 sha256 ok",
        "purgatory: segment 1 (initrd) 0x3f9f8000+0x5e4000 sha256 ok",
        "purgatory: segment 2 (boot-params) 0x3000+0x2000 sha256 ok",
        over.get("verified1", "purgatory: verified 3 segments, 20357120 bytes hashed with portable in 322632 us"),
        "purgatory: entering kernel at 0x2bc00200, boot_params 0x3000",
        lv, f"[    0.000000] Kernel command line: {SD_K1} rkexec_cell.stage=1",
        *up(1, 344),
        "[   93.7] rkexec-cell[344]: CELL-STEP stage=1 step=crash",
        "[   93.7] rkexec-cell[344]: CELL-CRASH stage=1",
        "[   94.8] Kernel panic - not syncing: sysrq triggered crash",
        "purgatory: x86_64 long mode, image 0x2e960000, cr0 0x80000033, cr4 0x1020",
        "purgatory: segment 0 (kernel) 0x2b000000+0xd84000 sha256 ok",
        "purgatory: segment 1 (initrd) 0x2e378000+0x5e5000 sha256 ok",
        "purgatory: segment 2 (elfcorehdr) 0x2e95d000+0x1000 sha256 ok",
        "purgatory: segment 3 (boot-params) 0x2e95e000+0x2000 sha256 ok",
        "purgatory: verified 4 segments, 20365312 bytes hashed with portable in 581177 us",
        "purgatory: entering kernel at 0x2b000200, boot_params 0x2e95e000",
        lv, "[   64.4] kdump-tools[219]: kdump-tools: saved vmcore in /var/crash/202612070549.",
        "[   91.5] reboot: Restarting system",
        "c" + lv,
        f"[   53.4] rkexec-cell[197]: CELL-REPORT marker={SD_MARKER} release={SD_REL}",
        over.get("dump", "[   54.4] rkexec-cell[197]: CELL-DUMP file=/var/crash/202612070549/dump.202612070549 "
                 "bytes=20944344 magic=6d616b6564756d70"),
        f"[   59.2] rkexec-cell[197]: CELL-DUMP-FILE Flattened kdump compressed dump v6, system Linux, node "
        f"rkexec-guest, release {SD_REL}, version #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3, machine x86_64",
        over.get("dmesg", f"[   61.4] rkexec-cell[197]: CELL-DUMP-DMESG rkexec_cell.marker={SD_MARKER} "
                 "rkexec_cell.stage=1 rkexec_cell.steps=type1,crash sysrq=1"),
        "[   61.4] rkexec-cell[197]: CELL-REPORT-DONE",
    ]
    return Transcript([Line(float(i), t) for i, t in enumerate(lines)])


class SystemdJudge(unittest.TestCase):
    """systemd_cells: the chain passes on the console a real run printed, and
    fails when any one fact is missing or wrong."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        for name, size in (("vmlinuz", 4096), ("initrd.img", 8192)):  # the hashed floor: 12 KiB
            with open(os.path.join(self.dir, name), "wb") as f:
                f.write(b"\0" * size)
        arch = ARCHES["amd64"]
        cell = next(c for c in sdc.cells() if c.name == "sd-amd64-bookworm")
        self.run = gcl.CellRun(cell, arch, arch.mode(None), RKEXEC, SD_MARKER, self.dir)
        self.run.extra.update(image=self.dir, release=SD_REL)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def verdict(self, **over):
        return sdc.KINDS["systemd"].judge(self.run, sd_transcript(**over))

    def test_real_run_passes(self):
        v = self.verdict()
        self.assertTrue(v.ok, v.reason)
        self.assertIn("dump flattened", " ".join(v.bits))

    def test_each_fact_can_fail(self):
        cases = {
            "pkg1": ("[ 1] rkexec-cell[1]: CELL-PKG rkexec=0.1.0-1 kdump-tools=1:1.8.1 kexec-tools=1:2.0.25-3",
                     "kexec-tools is installed"),
            "svc0": ("[ 1] rkexec-cell[1]: CELL-KDUMP-SERVICE failed exit-code", "kdump-tools.service is"),
            "dry": ("[ 1] rkexec-cell[1]: CELL-DRY-RUN Would run /sbin/kexec --load \"/boot/vmlinuz\" --append \"x\"",
                    "would not load the type1 entry"),
            "verified1": ("purgatory: verified 3 segments, 1 bytes hashed with portable in 3 us",
                          "segment lines add up to"),
            "dump": ("[ 1] rkexec-cell[1]: CELL-DUMP file=/var/crash/202612070549/dump.202612070549 bytes=9 "
                     "magic=0000000000000000", "is not an ELF or makedumpfile dump"),
            "dmesg": ("[ 1] rkexec-cell[1]: CELL-DUMP-DMESG rkexec_cell.marker=other rkexec_cell.stage=1 sysrq=1",
                      "is not of this run's kernel 2"),
        }
        for key, (line, why) in cases.items():
            with self.subTest(key):
                v = self.verdict(**{key: line})
                self.assertFalse(v.ok, key)
                self.assertIn(why, v.reason)

    def test_floor(self):
        # the purgatory must hash at least the kernel and the initrd
        with open(os.path.join(self.dir, "initrd.img"), "wb") as f:
            f.write(b"\0" * 30_000_000)
        v = self.verdict()
        self.assertFalse(v.ok)
        self.assertIn("less than the kernel payload + initrd", v.reason)


if __name__ == "__main__":
    unittest.main()
