"""Cells of the guest tier: small declarative records, and the kinds that
know how to script, wait for and judge them.

A Cell names an architecture (guest_arch.ARCHES), a Debian suite, a mode
(machine/CPU flavour), a kind and a few switches. Its kind writes kernel 1's
/cell.sh, says how QEMU must look (memory, CPUs, QMP), waits for the end of
the run and judges the transcript (guest_judges). Kinds:

  kexec     load kernel 2 (-l, or -s -l for kexec_file_load), ask -S before
            and after, print KEXEC-EXEC-START, `-e`. Pass: our purgatory's
            lines (kexec_load with rkexec) agree with each other and the plan,
            kernel 2 boots, its init prints the cell's marker and the plan's
            command line, both kernels report the mode's facts and version.
  kdump     kernel 1 with crashkernel= (the arch's) loads a capture kernel (-p) and
            its own initrd (busybox + vmcore-check), asks -S, crashes with
            sysrq-c. Pass: purgatory lines between the panic and the capture
            kernel's first line, the capture init's marker, vmcore-check's
            view of /proc/vmcore (one merged PT_NOTE with VMCOREINFO and one
            PRSTATUS per CPU online at the crash, the plan's PT_LOAD count,
            OSRELEASE = kernel 1's, the first PT_LOAD readable).
  lockdown  kernel 1 under lockdown=integrity: kexec_load is refused, the
            loader must say it falls back to kexec_file_load, explain its
            refusal, unload the same way, and leave nothing loaded.
  ima       kernel 1 with an IMA policy appraising kexec kernels: kexec_load
            is refused with EACCES (-c proves it), the auto load says it
            falls back and kernel 2 boots through kexec_file_load.
  (hotplug: crash_hotplug_x86.py, the crash-hotplug scenarios; c-loader:
  c_loader_cells.py, examples/c-loader as the loader; vterm: ppc_cells.py,
  kernel 2 and the purgatory on a second PAPR vterm.)

A kexec cell started with -smp N > 1 also requires both kernels to report
N CPUs brought up (guest_judges.cpus_step): the other CPUs took the
hand-off path.

Room for later cells (a few lines each): `load` / `exec` templates run the
loader with a caller's exact argv (placeholders {loader} {kernel} {initrd}
{append}; with loader="rkexec-as-kexec", rkexec installed as /sbin/kexec),
`kernel2` boots another kernel file (a UKI, a vmlinux ELF) from the arch's
cache directory, `files` adds more (src, dest) files to kernel 1's
initramfs (e.g. a C loader whose own command is the `load` template).
"""
import dataclasses
import os
import re
import sys
import time

import guest_contracts as gc
import guest_judges as gj
import guest_scripts as gs
from guest_arch import ARCHES
from guest_images import LOADERS, ROOT

PANIC_RE = r"Kernel panic - not syncing"


@dataclasses.dataclass(frozen=True)
class Cell:
    name: str
    arch: str                  # key of guest_arch.ARCHES
    kind: str                  # key of KINDS
    doc: str
    suite: str = "bookworm"
    mode: str = None           # the arch's mode name (None: its first)
    syscall: str = "load"      # "load" (kexec_load) | "file" (kexec_file_load, -s)
    reuse_cmdline: bool = False  # marker on kernel 1's cmdline, --reuse-cmdline
    dtb_override: bool = False   # --dtb=<dump of /sys/firmware/fdt>
    smp: object = 1            # QEMU -smp
    memory: object = None      # QEMU -m (None: the arch's)
    loaders: tuple = LOADERS   # the runs (--loader) this cell is part of
    loader: str = None         # always run with this loader (e.g. "rkexec-as-kexec"), whatever --loader says
    default: bool = True       # in the default set
    aliases: tuple = ()        # former names
    load: str = None           # load command template (None: the kind's), {loader} {kernel} {initrd} {append}
    exec: str = "{loader} -e"  # exec command template
    after_load: str = None     # more /cell.sh lines after the load (same placeholders)
    expect: tuple = ()         # ((regex, why), ...) the transcript must hold
    k1_extra: str = ""         # more words on kernel 1's command line ({marker} allowed)
    k2_lacks: tuple = ()       # words (prefixes) the new kernel's command line must not have
    kernel2: str = None        # another kernel 2, relative to cache/<arch>/ (e.g. "bookworm/vmlinux")
    files: tuple = ()          # extra (src, dest) for kernel 1's initramfs; src relative to the repo
    params: tuple = ()         # kind-specific ((key, value), ...)

    def param(self, key, default=None):
        return dict(self.params).get(key, default)


@dataclasses.dataclass
class CellRun:
    """One run of a cell: everything the kind needs to script and judge it."""

    cell: Cell
    arch: object
    mode: object
    loader: object
    marker: str
    cache: str
    load_flags: str = ""
    kernel_path: str = None    # host file whose payload the kernel segment holds (the floor of what is hashed)
    initrd_path: str = None    # host file behind the initrd the load names
    kernel2_file: str = None   # host file put at /kernel2.cell and loaded instead of /kernel2
    adds: tuple = ()           # (src, dest) for the per-cell archive
    dir: str = None            # the cell's run directory (console log, cell.sh, scratch files)
    scratch: list = dataclasses.field(default_factory=list)  # files to delete after the run
    extra: dict = dataclasses.field(default_factory=dict)  # what the kind noted while running
    consoles: dict = dataclasses.field(default_factory=dict)  # {name: [Line]}: the QEMU run's other consoles

    @property
    def syscall(self):
        return "file" if self.cell.syscall == "file" or "-s" in self.load_flags.split() else "load"

    @property
    def ours(self):
        """Does this load run our purgatory (kexec_load through rkexec)?"""
        return self.loader.purgatory and self.syscall == "load"

    @property
    def checks(self):
        """Does the purgatory verify (no `-i` / --no-checks in the load)?"""
        return "-i" not in self.load_flags.split() and "--no-checks" not in self.load_flags.split()

    def kernel2_in_guest(self):
        return "/kernel2.cell" if self.kernel2_file else "/kernel2"

    def purgatory_rules(self):
        """(must, must_not) for guest_judges.purgatory_step: the mode's lines, the arch's forbidden ones."""
        return self.mode.purgatory, self.arch.purgatory_forbid

# ---------------------------------------------------------------------------
# Kinds
# ---------------------------------------------------------------------------


def wait_end(q, stop_re, ok_re, timeout):
    """Wait for stop_re; after a success line (ok_re) let QEMU power off,
    after anything else collect a second of what follows (panic trace...)."""
    hit = q.wait_for(stop_re, timeout)
    if re.search(ok_re, hit.text):
        try:
            q.wait_exit(5)
        except Exception:  # noqa: BLE001 -- still running: the kill follows
            pass
    else:
        time.sleep(1.0)


class KexecKind:
    name = "kexec"
    qmp = False

    def own_loader(self, images, arch, cell):
        """The loader this cell always runs with (None: the run's --loader)."""
        return images.loader(arch, cell.loader) if cell.loader else None

    crash = False              # -p: a capture kernel, -S asks about it
    load_opt = "-l"
    initrd_in_guest = "/initrd2"

    def k1_append(self, run):
        c = run.cell
        return " ".join(w for w in (run.arch.append(), self.k1_kind_words(run), c.k1_extra.format(marker=run.marker),
                                    f"MARKER={run.marker}" if c.reuse_cmdline else "") if w)

    def k1_kind_words(self, run):
        return ""

    def new_append(self, run):
        """The new kernel's command line the load gives (--append)."""
        return f"{run.arch.append()} MARKER={run.marker}"

    def qemu_opts(self, run):
        return dict(memory=run.cell.memory or run.arch.memory, smp=run.cell.smp)

    def prepare(self, run, images):
        run.initrd_path = images.initrd2(run.arch)

    def fields(self, run):
        """The placeholders of the cell's templates."""
        return dict(kernel=run.kernel2_in_guest(), initrd=self.initrd_in_guest,
                    append=gs.sh_quote(self.new_append(run)))

    def load_and_plan(self, run, extra=""):
        """(load command, plan command): the load's own arguments with --dry-run (not `rkexec plan`:
        invoked as kexec, rkexec has no subcommands and `plan` would be a kernel file)."""
        c, f = run.cell, self.fields(run)
        if c.load:
            return c.load.format(loader="$LOADER", **f), c.load.format(loader="$LOADER --dry-run", **f)
        flags = (["-s"] if c.syscall == "file" else []) + run.load_flags.split()
        words = [f["kernel"], f"--initrd={f['initrd']}", *(["--dtb=/tmp/k1.dtb"] if c.dtb_override else []),
                 "--reuse-cmdline" if c.reuse_cmdline else f"--append={f['append']}", *([extra] if extra else [])]
        return (" ".join(["$LOADER", *flags, self.load_opt, *words]),
                " ".join(["$LOADER --dry-run", *flags, self.load_opt, *words]))

    def load_lines(self, run, extra=""):
        """-S before, the plan, the load, -S after (this image and the other one)."""
        load, plan = self.load_and_plan(run, extra)
        return [
            gs.status_line(run.loader, crash=self.crash, when="before"),
            gc.plan_line(run.loader, plan),
            f"timed {load} || {{ echo KEXEC-LOAD-FAILED; return 1; }}",
            gs.status_line(run.loader, crash=self.crash, when="after"),
            gs.status_line(run.loader, crash=not self.crash, when="other"),
            *([run.cell.after_load.format(loader="$LOADER", **self.fields(run))] if run.cell.after_load else []),
        ]

    def pre_lines(self, run):
        if not run.cell.dtb_override:
            return []
        return ["cat /sys/firmware/fdt >/tmp/k1.dtb || echo 'CELL: cannot copy /sys/firmware/fdt'",
                'echo "CELL: dtb $(busybox wc -c </tmp/k1.dtb) bytes from /sys/firmware/fdt"']

    def tail_lines(self, run):
        return ["do_exec " + run.cell.exec.format(loader="$LOADER"), "return 1"]

    def script(self, run):
        lines = [f"LOADER={run.loader.cmd}", *self.pre_lines(run), *self.load_lines(run), *self.tail_lines(run)]
        return "\n".join(lines) + "\n"

    def stop_re(self):
        return (r"KERNEL2-INIT-OK|KEXEC-LOAD-FAILED|KEXEC-EXEC-FAILED|CELL-SCRIPT-|" + PANIC_RE + "|"
                + re.escape(gc.purgatory_lines().templates["refused"]))

    def wait(self, run, q, timeout):
        wait_end(q, self.stop_re(), r"^KERNEL2-INIT-OK", timeout)

    def judge(self, run, tr):
        return gj.run_judge(lambda info, bits: self.steps(run, tr, info, bits))

    def steps(self, run, tr, info, bits):
        arch = run.arch
        i_init = tr.find(r"^INIT1-START ")
        if i_init is not None:
            info["k1_init_s"] = tr.t(i_init)  # QEMU spawn -> kernel 1's init
        i_exec = tr.find(r"^KEXEC-EXEC-START$")
        gj.load_step(tr, info, bits, i_exec)
        gj.status_step(tr, info, bits, run.loader, i_exec)
        if i_exec is None:
            raise gj.Fail("kernel 1 never reached KEXEC-EXEC-START")
        plan = gc.plan_facts(tr.T[:i_exec], run, crash=False)
        i = tr.find(r"^KEXEC-EXEC-FAILED", i_exec)
        if i is not None:
            raise gj.Fail(f"exec returned to kernel 1: {tr.text(i)}")
        i_boot = tr.find(arch.boot_re, i_exec + 1)
        if i_boot is None:
            gj.purgatory_step(tr, {}, [], i_exec + 1, len(tr.T), plan, run.ours)  # a refusal explains it
            raise gj.Fail("kernel 2 never printed a boot line after KEXEC-EXEC-START")
        info["handoff_s"] = tr.t(i_boot) - tr.t(i_exec)
        bits.insert(0, f"handoff {info['handoff_s']:.2f} s")
        i_bye = tr.find(arch.exit_re, i_exec, i_boot)
        if i_bye is not None:
            info["machine_kexec_to_k2_s"] = tr.t(i_boot) - tr.t(i_bye)
        gj.purgatory_step(tr, info, bits, i_exec + 1, i_boot, plan, run.ours, *run.purgatory_rules(),
                          checks=run.checks)
        i_ok = gj.init_index(tr, "KERNEL2-INIT-OK", i_boot, "kernel 2")
        info["kernel2_init_s"] = tr.t(i_ok) - tr.t(i_exec)
        gj.cmdline_step(tr, info, i_ok, run.marker, plan, lacks=run.cell.k2_lacks)
        gj.expect_step(tr, bits, run.cell.expect)
        gj.kernels_step(tr, info, bits, arch, run.mode, (0, i_exec), (i_boot, i_ok))
        gj.cpus_step(tr, info, bits, arch, gj.smp_cpus(run.cell.smp), (0, i_exec), (i_boot, i_ok))


class KdumpKind(KexecKind):
    name = "kdump"

    crash = True
    load_opt = "-p"
    initrd_in_guest = "/initrd-kdump"

    def k1_kind_words(self, run):
        return f"crashkernel={run.arch.crashkernel}"

    def new_append(self, run):
        return f"{run.arch.append()} maxcpus=1 MARKER={run.marker}"

    def prepare(self, run, images):
        run.initrd_path = images.capture_initrd(run.arch)
        run.adds = ((run.initrd_path, "/initrd-kdump"),)

    def pre_lines(self, run):
        return gs.kdump_prelude()

    def tail_lines(self, run):
        return gs.crash_lines(run.arch)

    def wait(self, run, q, timeout):
        hit = wait_kdump(q, run.arch, timeout)
        if hit.text.startswith("KDUMP-DONE"):
            try:
                q.wait_exit(5)
            except Exception:  # noqa: BLE001
                pass
        else:
            time.sleep(1.0)

    def steps(self, run, tr, info, bits):
        i_start = self.before_crash(run, tr, info, bits)
        plan = gc.plan_facts(tr.T[:i_start], run, crash=True)
        i_panic, i_boot = self.crash(run, tr, info, bits, i_start)
        gj.purgatory_step(tr, info, bits, i_panic + 1, i_boot, plan, run.ours, *run.purgatory_rules(),
                          checks=run.checks)
        self.capture(run, tr, info, bits, plan, i_start, i_boot)

    def before_crash(self, run, tr, info, bits):
        """Kernel 1 up to KDUMP-PANIC-START: release, reservation, load, -S,
        kexec_crash_loaded. Returns the index of KDUMP-PANIC-START."""
        i_rel = tr.need(r"^K1-RELEASE=", "kernel 1's cell script never printed K1-RELEASE")
        info["k1_release"] = tr.T[i_rel].split("=", 1)[1].strip()
        i = tr.find(r"^K1-NO-CRASHKERNEL")
        if i is not None:
            raise gj.Fail(f"kernel 1 reserved no crash kernel region: {tr.text(i)}")
        i_start = tr.find(r"^KDUMP-PANIC-START$")
        gj.load_step(tr, info, bits, i_start, what="load -p")
        gj.status_step(tr, info, bits, run.loader, i_start)
        if i_start is None:
            raise gj.Fail("kernel 1 never reached KDUMP-PANIC-START")
        i_cl = tr.find(r"^KEXEC-CRASH-LOADED ", 0, i_start)
        loaded = tr.T[i_cl].split()[-1] if i_cl is not None else None
        if loaded != "1":
            raise gj.Fail(f"/sys/kernel/kexec_crash_loaded is {loaded!r} after the -p load")
        m = re.search(run.arch.smp_re, "\n".join(tr.T[:i_start]))
        info["k1_cpus"] = int(m.group(1)) if m else None
        return i_start

    def crash(self, run, tr, info, bits, i_start):
        """Kernel 1's panic and the capture kernel's first line."""
        i = tr.find(r"^KDUMP-PANIC-FAILED", i_start)
        if i is not None:
            raise gj.Fail(f"sysrq-c returned to kernel 1: {tr.text(i)}")
        i_panic = tr.need(PANIC_RE, "kernel 1 never printed 'Kernel panic - not syncing' after sysrq-c", i_start)
        i_boot = tr.find(run.arch.boot_re, i_panic + 1)
        if i_boot is None:
            gj.purgatory_step(tr, {}, [], i_panic + 1, len(tr.T), gc.PlanFacts("none"), run.ours)
            raise gj.Fail("the capture kernel never printed a boot line after kernel 1's panic")
        info["panic_to_capture_s"] = tr.t(i_boot) - tr.t(i_panic)
        bits.insert(0, f"panic->capture {info['panic_to_capture_s']:.2f} s")
        i_bye = tr.find(run.arch.crash_exit_re, i_panic, i_boot)
        if i_bye is not None:
            info["machine_kexec_to_k2_s"] = tr.t(i_boot) - tr.t(i_bye)
        return i_panic, i_boot

    def capture(self, run, tr, info, bits, plan, i_start, i_boot, pt_load=None, why="the plan's elfcorehdr",
                count_loads=True):
        """The capture kernel: its init, cmdline, /proc/vmcore (with pt_load
        PT_LOADs, default: the plan's, unless not count_loads: a header the
        kernel rebuilt from its own memblock), facts."""
        i_ok = gj.init_index(tr, "KDUMP-INIT-OK", i_boot, "the capture kernel")
        info["capture_init_s"] = tr.t(i_ok) - tr.t(i_start)
        gj.cmdline_step(tr, info, i_ok, run.marker, plan, who="the capture kernel", lacks=run.cell.k2_lacks)
        gj.expect_step(tr, bits, run.cell.expect)
        facts, covers = gj.vmcore_step(tr, info, bits, i_ok, info["k1_release"])
        if run.arch.backup_low:
            # The first PT_LOAD is [0, backup_low), read from the backup the
            # purgatory filled after verification: zeros if it never copied.
            l0 = info["load0"]
            if l0["paddr"] != 0 or l0["read"] != run.arch.backup_low or l0["nonzero"] == 0:
                raise gj.Fail(f"/proc/vmcore's first PT_LOAD is not the crashed kernel's low {run.arch.backup_low:#x} "
                              f"bytes from the backup: {l0}")
            bits.append(f"[0, {run.arch.backup_low:#x}) from the backup: {l0['nonzero']} non-zero bytes")
        pt_load = plan.pt_load if pt_load is None else pt_load
        if pt_load is not None and count_loads:
            if info["pt_load"] != pt_load:
                raise gj.Fail(f"/proc/vmcore has {info['pt_load']} PT_LOAD, {why} has {pt_load}")
            bits.append(f"pt_load = {why}'s")
        if info["k1_cpus"] is not None and info["prstatus"] != info["k1_cpus"]:
            raise gj.Fail(f"/proc/vmcore has {info['prstatus']} PRSTATUS notes, {info['k1_cpus']} CPUs were online")
        gj.kernels_step(tr, info, bits, run.arch, run.mode, (0, i_start), (i_boot, i_ok), who="the capture kernel")
        return i_ok, facts, covers


def wait_kdump(q, arch, timeout, panic_grace=150):
    """Wait for the end of a crash cell. Kernel 1's own panic is expected
    (sysrq-c): after it, wait (at most panic_grace s) for the capture
    kernel's first line or the purgatory's refusal (kexec-tools' purgatory
    hashes silently for up to a minute under TCG), then for KDUMP-DONE or a
    failure (a second panic). Returns the last line waited for."""
    refused = re.escape(gc.purgatory_lines().templates["refused"])
    stop = (r"^KDUMP-DONE|^KDUMP-PANIC-FAILED|KEXEC-LOAD-FAILED|K1-NO-CRASHKERNEL|K1-HOTPLUG-TIMEOUT|CELL-SCRIPT-|"
            + refused)
    deadline = time.monotonic() + timeout
    left = lambda: max(1.0, deadline - time.monotonic())  # noqa: E731
    i = q.wait_index(stop + "|^KDUMP-PANIC-START$", timeout)
    if q.lines[i].text != "KDUMP-PANIC-START":
        return q.lines[i]
    i = q.wait_index(stop + "|" + PANIC_RE, left(), i + 1)
    if not re.search(PANIC_RE, q.lines[i].text):
        return q.lines[i]
    i = q.wait_index(stop + "|" + arch.boot_re, min(panic_grace, left()), i + 1)
    if not re.search(arch.boot_re, q.lines[i].text):
        return q.lines[i]
    i = q.wait_index(stop + "|" + PANIC_RE, left(), i + 1)
    return q.lines[i]


class LockdownKind(KexecKind):
    """lockdown=integrity refuses kexec_load: rkexec must fall back to
    kexec_file_load (which then demands a trusted signature the unsigned
    test setup cannot give), unload through kexec_file_load too, and never
    leave a kernel loaded."""

    name = "lockdown"
    WANT = (
        (r"LOCKDOWN-MODE .*\[integrity\]", "kernel 1 is not in lockdown=integrity"),
        (r"kexec_load refused by kernel lockdown; falling back to kexec_file_load", "no fallback to kexec_file_load"),
        (r"kexec_file_load failed: .*signature the kernel trusts", "kexec_file_load refusal not explained"),
        (r"^LOCKDOWN-LOAD-RC=255$", "load did not fail with exit 255 (kexec-tools' EFAILED)"),
        (r"kexec_load refused by kernel lockdown; unloading with kexec_file_load", "unload did not fall back"),
        (r"^LOCKDOWN-UNLOAD-RC=0$", "unload failed"),
    )

    def k1_kind_words(self, run):
        return "lockdown=integrity"

    def script(self, run):
        return "\n".join([
            f"LOADER={run.loader.cmd}",
            "mount -t securityfs none /sys/kernel/security 2>/dev/null",
            'echo "LOCKDOWN-MODE $(cat /sys/kernel/security/lockdown)"',
            f'$LOADER -l /kernel2 --initrd=/initrd2 --append="{self.new_append(run)}" 2>&1',
            'echo "LOCKDOWN-LOAD-RC=$?"',
            '$LOADER -u 2>&1; echo "LOCKDOWN-UNLOAD-RC=$?"',
            gs.status_line(run.loader, crash=False, when="unloaded"),
            "echo CELL-SCRIPT-LOCKDOWN-DONE",
            "return 1",
        ]) + "\n"

    def wait(self, run, q, timeout):
        wait_end(q, r"CELL-SCRIPT-|" + PANIC_RE, r"^CELL-SCRIPT-LOCKDOWN-DONE", timeout)

    def steps(self, run, tr, info, bits):
        tr.need(r"^CELL-SCRIPT-LOCKDOWN-DONE", "the lockdown script did not finish")
        for rx, why in self.WANT:
            tr.need(rx, why)
        i = tr.need(r"^KEXEC-STATUS when=unloaded ", "no -S answer after the unload")
        m = re.match(r"KEXEC-STATUS when=\w+ rc=(\d+) out=\[(.*)\]$", tr.T[i].strip())
        want_rc, silent = gc.status_expected(run.loader, loaded=False)
        if not m or int(m.group(1)) != want_rc or (silent and m.group(2)):
            raise gj.Fail(f"-S -l after the unload: {tr.text(i)}; the {gc.status_contract(run.loader)} contract "
                          f"says rc={want_rc}{' and silent' if silent else ''} (nothing loaded)")
        if tr.find(r"panicked") is not None:
            raise gj.Fail("rkexec panicked")
        bits.append("lockdown=integrity: kexec_load refused, fell back to kexec_file_load, signature refusal "
                    "explained, unload via kexec_file_load, nothing loaded")


class ImaKind(KexecKind):
    """An IMA policy that appraises kexec kernels refuses kexec_load with
    EACCES (security/integrity/ima/ima_main.c ima_load_data: "impossible to
    appraise a kernel image without a file descriptor; try using
    kexec_file_load syscall"), as systemctl kexec, Debian's kexec-load and
    `kexec -p -u` meet it on a Secure Boot machine. Kernel 1 boots with
    ima_appraise=enforce and loads the policy below; `-c` (kexec_load only)
    must be refused, then the load as systemd gives it (auto) must say it
    falls back and load kernel 2 through kexec_file_load, which the kernel
    appraises by the same policy. Judged on kernel 1's lines (the kernel's
    refusal, rkexec's fallback line) and kernel 2's boot, init and command
    line, against the kexec_file_load plan (`--dry-run -s`)."""

    name = "ima"
    # Debian's kernels (CONFIG_IMA_APPRAISE, no CONFIG_IMA_WRITE_POLICY: the
    # policy is written once) set IMA_APPRAISE_KEXEC for an appraise rule
    # with func=KEXEC_KERNEL_CHECK (ima_policy.c ima_appraise_flag), which is
    # what makes ima_load_data refuse kexec_load. Files in RAM file systems
    # are not appraised (the kernel's own appraise_tcb rules exempt them
    # too), so kernel 2 in the initramfs passes kexec_file_load's appraisal
    # without an IMA signature (the rules match in order).
    POLICY = (
        "dont_appraise fsmagic=0x858458f6",  # RAMFS_MAGIC (include/uapi/linux/magic.h)
        "dont_appraise fsmagic=0x01021994",  # TMPFS_MAGIC
        "appraise func=KEXEC_KERNEL_CHECK appraise_type=imasig",
    )
    WANT = (
        (r"^IMA-POLICY-RC=0$", "kernel 1 did not take the IMA policy"),
        (r"impossible to appraise a kernel image without a file descriptor",
         "kernel 1's IMA did not refuse kexec_load (ima_load_data)"),
        (r"rkexec: kexec_load failed: Permission denied", "-c did not report kexec_load's EACCES"),
        (r"^IMA-C-RC=255$", "-c (kexec_load only) was not refused with exit 255"),
        (r"rkexec: note: kexec_load refused by IMA or another security module \(EACCES\); falling back to "
         r"kexec_file_load", "no one-line fallback to kexec_file_load"),
    )

    def k1_kind_words(self, run):
        return "ima_appraise=enforce"

    def pre_lines(self, run):
        f = self.fields(run)
        policy = "\\n".join(self.POLICY)
        return [
            "mount -t securityfs none /sys/kernel/security 2>/dev/null",
            f"printf '{policy}\\n' >/sys/kernel/security/ima/policy; echo \"IMA-POLICY-RC=$?\"",
            f"$LOADER -c -l {f['kernel']} --initrd={f['initrd']} --append={f['append']} 2>&1; "
            'echo "IMA-C-RC=$?"',
        ]

    def load_and_plan(self, run, extra=""):
        # The load as a caller gives it (no syscall option: auto), the plan
        # of what the fallback loads.
        f = self.fields(run)
        words = [f["kernel"], f"--initrd={f['initrd']}", f"--append={f['append']}"]
        return " ".join(["$LOADER -l", *words]), " ".join(["$LOADER --dry-run -s -l", *words])

    def steps(self, run, tr, info, bits):
        i_exec = tr.find(r"^KEXEC-EXEC-START$")
        for rx, why in self.WANT:
            tr.need(rx, why, 0, i_exec)
        super().steps(run, tr, info, bits)
        bits.insert(0, "IMA refused kexec_load (EACCES), rkexec fell back to kexec_file_load")


KINDS = {k.name: k for k in (KexecKind(), KdumpKind(), LockdownKind(), ImaKind())}

# ---------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------


def _suffix(arch, suite):
    return "" if suite == arch.suites[0] else f"-{suite}"


def grid():
    """Every architecture's {suite} x {mode} x {kexec per syscall, kdump} cells, plus the extras."""
    cells = []
    for arch in ARCHES.values():
        many_modes = len(arch.modes) > 1
        for suite in arch.suites:
            sfx = _suffix(arch, suite)
            for mode in arch.modes:
                for sc in arch.syscalls:
                    parts = ([mode.name] if many_modes else []) + ([sc] if len(arch.syscalls) > 1 or not many_modes
                                                                     else [])
                    how = "kexec_load (-l)" if sc == "load" else "kexec_file_load (-s -l): the kernel's own purgatory"
                    cells.append(Cell(f"{arch.cell_prefix}{'-'.join(parts)}{sfx}", arch.name, "kexec",
                                      f"{mode.doc}; {suite}; {how}", suite=suite, mode=mode.name, syscall=sc,
                                      smp=arch.kexec_smp))
                if not arch.kdump:
                    continue
                name = f"{arch.cell_prefix}kdump" + (f"-{mode.name}" if many_modes else "") + sfx
                cells.append(Cell(name, arch.name, "kdump",
                                  f"{mode.doc}; {suite}; -smp 2, crashkernel={arch.crashkernel}, -p capture kernel, "
                                  "sysrq-c, /proc/vmcore", suite=suite, mode=mode.name, smp=2))
    cells += [
        Cell("dtb-override", "arm64", "kexec", "el1, bookworm: --dtb = kernel 1's /sys/firmware/fdt", dtb_override=True),
        Cell("reuse-cmdline", "arm64", "kexec", "el1, bookworm: kernel 1 booted with BOOT_IMAGE= and the marker, "
             "--reuse-cmdline: kernel 2 has the marker, no BOOT_IMAGE=", reuse_cmdline=True,
             k1_extra="BOOT_IMAGE=/boot/vmlinuz-6.1.0-57-cloud-arm64", k2_lacks=("BOOT_IMAGE=",)),
        Cell("x86-lockdown", "amd64", "lockdown", "q35, bookworm, kernel 1 with lockdown=integrity: kexec_load "
             "refused, fallback to kexec_file_load", loaders=("rkexec",)),
        Cell("x86-ima", "amd64", "ima", "q35, bookworm, kernel 1 with ima_appraise=enforce and an IMA policy "
             "appraising KEXEC_KERNEL_CHECK: kexec_load refused with EACCES, `-l` falls back to kexec_file_load, "
             "kernel 2 boots", syscall="file", loaders=("rkexec",)),
    ]
    former = {"trixie": "el1-trixie", "kdump-el2": "kdump-el2-nvhe", "x86-trixie": "x86-load-trixie",
              "rv-kexec": "rv-zknh", "rv-kdump": "rv-kdump-portable", "rv-kexec-portable": "rv-portable"}
    return [dataclasses.replace(c, aliases=c.aliases + tuple(k for k, v in former.items() if v == c.name))
            for c in cells]


def extra_files(cell):
    """A cell's `files` with repo-relative sources made absolute."""
    return tuple((src if os.path.isabs(src) else os.path.join(ROOT, src), dest) for src, dest in cell.files)


def group_main(prog, default_cells, argv=None, arch=None, scenarios=None):
    """The main() of one group's script (c_loader_cells.py, ppc_cells.py,
    ...): kexec_matrix.main over the group's `default_cells` (a --cells
    value) unless argv names cells or asks for --list; `arch` pins --arch.
    `scenarios` (prefix): `--scenarios a,b` stands for --cells prefix+a,
    prefix+b (the crash-hotplug scripts' spelling)."""
    import kexec_matrix
    argv = list(sys.argv[1:] if argv is None else argv)
    if scenarios is not None and "--scenarios" in argv:
        i = argv.index("--scenarios")
        names = argv[i + 1].split(",") if i + 1 < len(argv) else []
        argv[i:i + 2] = ["--cells", ",".join(scenarios + n.strip() for n in names if n.strip())]
    elif not any(a == "--cells" or a.startswith("--cells=") or a == "--list" for a in argv):
        argv += ["--cells", default_cells]
    return kexec_matrix.main([*(("--arch", arch) if arch else ()), *argv], prog=prog)
