#!/usr/bin/env python3
"""ppc64el cells beyond the grid (issue 19): Petitboot's argv with a DTB it
edited, 4 CPUs, and -S / -u / -s on POWER. Cells of the one guest-tier
driver (kexec_matrix.py); this file lists them, defines the vterm kind, and
is a small CLI for running just them.

  ppc-petitboot   Petitboot kexecs with `--dtb FILE` it edited (libfdt).
                  QEMU gives the pseries guest a second PAPR vterm
                  (spapr-vty, reg VTERM) on a pipe the harness reads.
                  Kernel 1 (trixie 6.12) edits its /sys/firmware/fdt with
                  /fdt-edit (tests/guest-tools: /chosen/linux,stdout-path
                  and /chosen/stdout-path := the second vterm; version 16
                  in, as prom_init flattens it, version 17 out, as libfdt
                  writes it), then runs, as /sbin/kexec, Petitboot's
                  `kexec -l --debug --initrd= --dtb= --append= K` with no
                  console= on the command line, and `kexec -e`. Pass: the
                  purgatory's lines (judged like every cell: segments
                  against the plan, `verified`) and kernel 2 (banner to
                  KERNEL2-INIT-OK, the marker, the plan's command line)
                  are on the second vterm's transcript, none of them on the
                  first after KEXEC-EXEC-START, and the plan gives the
                  purgatory that vterm (hvterm, its number): pseries picks
                  hvc0 and its boot console from stdout-path
                  (drivers/tty/hvc/hvc_vio.c hvc_vio_init_early).
  ppc-load-smp4   trixie 6.12, -smp 4, kexec_load through our purgatory:
                  both kernels bring up 4 CPUs (the other three parked in
                  the new kernel's __secondary_hold). With the -l image
                  loaded: `-s -l` exits 253 with kexec-tools' one line,
                  "syscall kexec_file_load not available." and nothing
                  else (Debian's ppc64el kernels have no kexec_file_load)
                  and leaves the image loaded;
                  `-u` unloads (-S -l then exits 0, silent;
                  /sys/kernel/kexec_loaded 0); the image is loaded again
                  (-S -l exits 1) and executed. -S before and after the
                  first load as in every kexec cell.

    tests/guest/ppc_cells.py [--cells ppc-petitboot] [--loader kexec-tools] [-v] [--list]
    (= tests/guest/kexec_matrix.py --arch ppc64el --cells ppc-petitboot,ppc-load-smp4)
"""
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
from guest_arch import VERSION_RE  # noqa: E402

# The second vterm. QEMU's pseries has the default vty at 0x71000000, its
# NVRAM at 0x71000001 and numbers other VIO devices on from there; a VIO
# device's interrupt is its reg's low bits (hw/ppc/spapr_vio.c), so the
# reg must differ from the others' there too.
VTERM = 0x71000010
VTERM_NAME = "vty2"
VTERM_PATH = f"/vdevice/vty@{VTERM:x}"
DEFAULT_VTERM_PATH = "/vdevice/vty@71000000"
CONSOLE_HVTERM = 6  # include/kexec_purgatory.h RKX_CONSOLE_HVTERM

# Petitboot's argv (petitboot discover/boot.c kexec_load), as the arm64
# petitboot cell has it (dropin_cells.py), with the DTB it edited.
PETITBOOT_LOAD = "{loader} -l --debug --initrd={initrd} --dtb=/tmp/pb.dtb --append={append} {kernel}"
EDITED = tuple(
    (rf"^FDT-EDIT set /chosen/{p}={re.escape(VTERM_PATH)} was={re.escape(DEFAULT_VTERM_PATH)}$",
     f"kernel 1 did not edit its /sys/firmware/fdt's /chosen/{p} from the first vterm to the second")
    for p in ("linux,stdout-path", "stdout-path"))


class VtermKind(gcl.KexecKind):
    """Kernel 2 and the purgatory print on a second PAPR vterm, the one the
    handed-over DTB's stdout-path names."""

    name = "vterm"

    def qemu_opts(self, run):
        return super().qemu_opts(run) | dict(consoles=((VTERM_NAME, f"spapr-vty,reg={VTERM:#x}"),))

    def new_append(self, run):
        # No console=: kernel 2 must take its console from stdout-path.
        return f"rdinit=/init MARKER={run.marker}"

    def prepare(self, run, images):
        super().prepare(run, images)
        tool = images.tool(run.arch, "fdt-edit")
        if not os.path.isfile(tool):
            raise FileNotFoundError(f"{tool} missing: cargo build --release --locked --target "
                                    f"{run.arch.guest_target} -p guest-tools --bin fdt-edit")
        run.adds = run.adds + ((tool, "/fdt-edit"),)

    def pre_lines(self, run):
        sets = " ".join(f"/chosen/{p}={VTERM_PATH}" for p in ("linux,stdout-path", "stdout-path"))
        return [f"/fdt-edit /sys/firmware/fdt /tmp/pb.dtb {sets} || {{ echo KEXEC-LOAD-FAILED fdt-edit; return 1; }}"]

    def wait(self, run, q, timeout):
        """Kernel 1's exec on the first vterm, then kernel 2's init on either
        (on the first it is a failure the judge names)."""
        deadline = time.monotonic() + timeout
        i = q.wait_index(r"^KEXEC-EXEC-START$|KEXEC-LOAD-FAILED|CELL-SCRIPT-|" + gcl.PANIC_RE, timeout)
        if q.lines[i].text != "KEXEC-EXEC-START":
            time.sleep(1.0)
            return
        stop = re.compile(r"KERNEL2-INIT-OK|KEXEC-EXEC-FAILED|" + gcl.PANIC_RE + "|"
                          + re.escape(gc.purgatory_lines().templates["refused"]))
        vty = q.console(VTERM_NAME)
        while time.monotonic() < deadline and q.proc.poll() is None:
            if any(stop.search(l.text) for l in vty.lines) or any(stop.search(l.text) for l in q.lines[i + 1:]):
                break
            time.sleep(0.5)
        try:
            q.wait_exit(5)  # kernel 2's init powers off; a halted purgatory does not
        except Exception:  # noqa: BLE001 -- still running: the kill follows
            pass

    def judge(self, run, tr):
        return gj.run_judge(lambda info, bits: vterm_steps(run, tr, gj.Transcript(run.consoles.get(VTERM_NAME, [])),
                                                           info, bits, super(VtermKind, self).steps))


def vterm_steps(run, tr, vty, info, bits, kexec_steps):
    """tr: the first vterm (stdio), vty: the second. After kernel 1's
    KEXEC-EXEC-START the first vterm must carry no line of the purgatory's,
    no kernel banner or first line, no KERNEL2-INIT-OK (it does carry
    kernel 1's last lines, and kernel 2's operator-panel text: RTAS
    display-character, which QEMU writes to its lowest vty,
    hw/ppc/spapr_rtas.c). Then the kexec cell's own judge runs over kernel
    1's lines up to the exec followed by the second vterm's, and the plan
    must give the purgatory the second vterm."""
    i_exec = tr.find(r"^KEXEC-EXEC-START$")
    if i_exec is not None:
        P = gc.purgatory_lines()
        for rx, what in ((re.escape(P.tag), "our purgatory"), (run.arch.boot_re, "a kernel's first line"),
                         (VERSION_RE, "a kernel banner"), (r"KERNEL2-INIT-OK", "kernel 2's init")):
            j = tr.find(rx, i_exec + 1)
            if j is not None:
                raise gj.Fail(f"{what} printed on the first vterm after KEXEC-EXEC-START, not the one "
                              f"/chosen/stdout-path names: {tr.text(j)}")
        if not vty.lines:
            raise gj.Fail(f"nothing on the second vterm ({VTERM:#x}) after KEXEC-EXEC-START")
    both = gj.Transcript(tr.lines[:i_exec + 1] + vty.lines if i_exec is not None else tr.lines)
    kexec_steps(run, both, info, bits)
    con = gc.plan_facts(tr.T[:i_exec], run, crash=False).console or {}
    if con.get("kind") != CONSOLE_HVTERM or con.get("base") != VTERM:
        raise gj.Fail(f"the plan gives the purgatory console {con}, not hvterm {VTERM:#x} "
                      "(the --dtb file's stdout-path)")
    bits.insert(0, f"purgatory and kernel 2 on vterm {VTERM:#x} (stdout-path of --dtb), none on 0x71000000")


KINDS = {"vterm": VtermKind()}

STATUS_AFTER_LOAD = "\n".join([
    "{loader} -s -l {kernel} --initrd={initrd} --append={append} 2>/tmp/s.err; echo \"PPC-S-RC=$?\"",
    "sed 's/^/PPC-S-ERR /' /tmp/s.err",
    'echo "PPC-S-ERR-LINES $(wc -l < /tmp/s.err)"',
    'echo "PPC-LOADED-AFTER-S $(cat /sys/kernel/kexec_loaded)"',
    '{loader} -u; echo "PPC-U-RC=$?"',
    "status unloaded {loader} -S -l",
    'echo "PPC-LOADED-AFTER-U $(cat /sys/kernel/kexec_loaded)"',
    '{loader} -l {kernel} --initrd={initrd} --append={append}; echo "PPC-RELOAD-RC=$?"',
    "status reloaded {loader} -S -l",
])
STATUS_FACTS = (
    (r"^PPC-S-RC=253$", "-s -l must exit 253 as kexec-tools does (EFALLBACK): Debian's ppc64el kernels have no "
     "kexec_file_load"),
    (r"^PPC-S-ERR syscall kexec_file_load not available\.$", "-s -l must say kexec-tools' "
     "'syscall kexec_file_load not available.'"),
    (r"^PPC-S-ERR-LINES 1$", "-s -l must print that one line and nothing else, as kexec-tools does "
     "(kexec/kexec.c: the call is probed first, EFALLBACK printed by main)"),
    (r"^PPC-LOADED-AFTER-S 1$", "the refused -s load must leave the -l image loaded (/sys/kernel/kexec_loaded 1)"),
    (r"^PPC-U-RC=0$", "-u must exit 0"),
    (r"^KEXEC-STATUS when=unloaded rc=0 out=\[\]$", "-S -l after -u must exit 0 and print nothing (not loaded)"),
    (r"^PPC-LOADED-AFTER-U 0$", "after -u /sys/kernel/kexec_loaded must be 0"),
    (r"^PPC-RELOAD-RC=0$", "loading again after -u must succeed"),
    (r"^KEXEC-STATUS when=reloaded rc=1 out=\[\]$", "-S -l after loading again must exit 1 and print nothing"),
)


def cells():
    return [
        gcl.Cell("ppc-petitboot", "ppc64el", "vterm", "trixie: Petitboot's argv with --dtb = kernel 1's "
                 "/sys/firmware/fdt edited to a second vterm, no console=: the purgatory and kernel 2 print there",
                 suite="trixie", smp=2, load=PETITBOOT_LOAD, expect=EDITED, k2_lacks=("console=",),
                 loader="rkexec-as-kexec", loaders=("rkexec",)),
        gcl.Cell("ppc-load-smp4", "ppc64el", "kexec", "trixie, -smp 4: kernel 2 brings up 4 CPUs; -s -l 253 "
                 "(no kexec_file_load), -u unloads, -S before/after, load again, -e", suite="trixie", smp=4,
                 after_load=STATUS_AFTER_LOAD, expect=STATUS_FACTS),
    ]


def main(argv=None):
    return gcl.group_main("ppc_cells.py", ",".join(c.name for c in cells()), argv, arch="ppc64el")


if __name__ == "__main__":
    sys.exit(main())
