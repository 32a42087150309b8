#!/usr/bin/env python3
"""systemd itself as rkexec's caller (issue 21): a Debian guest booting
systemd as PID 1 from a disk image made of Debian packages, with the rkexec
.deb installed in place of kexec-tools and kdump-tools installed against it
(scripts/mk-systemd-image.sh builds and caches the image; the guest side is
tests/guest/systemd-image/). One QEMU run per (arch, suite) walks a chain:

  kernel 1   systemd boots; kdump-tools.service loads its crash kernel with
             /sbin/kexec (= rkexec); rkexec-cell.service reports the packages,
             the kexec binary, kdump-tools' state and command, then
  type1      hands systemd a Boot Loader Specification type #1 entry (kernel,
             initrd, options with the next stage) in /run/boot-loader-entries/
             (read "as if it was an ESP" by systemctl: systemd
             src/shared/bootspec.c boot_config_load_auto) and runs
             `systemctl kexec`: systemctl runs `kexec --load ... --append
             ... --initrd ...`, systemd-shutdown reboots into it
  uki        (trixie) the same with a type #2 entry: a UKI made for this run
             (scripts/mk-uki.py: systemd-stub + the image's kernel, initrd,
             os-release, and a .cmdline only this run knows), from /dev/vdb
             into /run/boot-loader-entries/EFI/Linux/, as systemd-boot hands
             one over: systemctl runs `kexec --load UKI --append <.cmdline>`
  crash      kernel N (booted by the previous step) has kdump-tools' crash
             kernel loaded again and crashes (sysrq-c); the capture kernel
             boots kdump-tools' initrd and kdump-tools-dump.service saves
             /var/crash/<stamp>/dump.<stamp> (makedumpfile) and reboots; QEMU
             restarts kernel 1, whose rkexec-cell-report.service prints the
             dump's size, magic, `file` and the crashed kernel's command line
             as its dmesg file holds it, then powers off.

Judged only on the console: each kernel's CELL- lines (stage, this run's
marker, rkexec installed, kexec-tools absent, kdump-tools active with its
crash kernel loaded by /sbin/kexec -p), what systemctl said it would run,
systemd-shutdown's "Rebooting with kexec", our purgatory's lines before
each new kernel (at least the kernel payload and initrd hashed, the mode's
lines), the next kernel's first line and same build, the UKI's .cmdline
reaching kernel N+1, the panic, the capture kernel, kdump-tools' "saved
vmcore", and the report (an ELF, kdump or flattened makedumpfile dump of
kernel 1's release whose dmesg shows this run's marker at the crashing
stage and the sysrq trigger).

    tests/guest/systemd_cells.py [--cells sd-amd64-bookworm,...] [-v] [--list]
    (= tests/guest/kexec_matrix.py --cells 'sd-*')
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import guest_cells as gcl  # noqa: E402
import guest_contracts as gc  # noqa: E402
import guest_judges as gj  # noqa: E402
from guest_images import ROOT  # noqa: E402

MK_IMAGE = os.path.join(ROOT, "scripts", "mk-systemd-image.sh")
MK_UKI = os.path.join(ROOT, "scripts", "mk-uki.py")
STUBS = {"amd64": "linuxx64.efi.stub", "arm64": "linuxaa64.efi.stub"}  # cache/<arch>/systemd-stub/
CRASHKERNEL = "256M"
MEMORY = 1024          # MiB: makedumpfile reads all of it under TCG
STAGE_TIMEOUT = 600    # s: one systemd boot (or a capture and its dump) under TCG on a loaded host
# The dump formats kdump-tools' makedumpfile writes (first 8 bytes, hex):
# ELF (-E), kdump-compressed ("KDUMP   ", default), flattened ("makedump", -F).
DUMP_MAGICS = {"7f454c46": "ELF", "4b44554d50202020": "kdump-compressed", "6d616b6564756d70": "flattened"}
FAIL_RE = r"CELL-ERROR|CELL-SYSTEMCTL-KEXEC-RC [1-9]|rkexec-cell.service: Failed|" + gcl.PANIC_RE


def deb_for(arch):
    """The newest target/debian/rkexec_*_<arch>.deb (scripts/build-deb.sh)."""
    debs = sorted(glob.glob(os.path.join(ROOT, "target", "debian", f"rkexec_*_{arch.name}.deb")),
                  key=os.path.getmtime)
    if not debs:
        raise FileNotFoundError(f"no target/debian/rkexec_*_{arch.name}.deb: run scripts/build-deb.sh "
                                f"--arch {arch.name}")
    return debs[-1]


_images = {}


def prebuild(images, cells):
    """Start building the images of `cells` in background threads (the
    matrix runs the other cells meanwhile); a cell that finds its image
    still building waits for it (the script's lock), one whose build failed
    fails with the script's error when it builds again."""
    from guest_arch import ARCHES
    for key in sorted({(c.arch, c.suite) for c in cells}):
        threading.Thread(target=_prebuild_one, args=(images, ARCHES[key[0]], key[1]), daemon=True).start()


def _prebuild_one(images, arch, suite):
    try:
        image(images, arch, suite)
    except (OSError, RuntimeError) as e:
        print(f"systemd_cells: background build of {arch.name}/{suite} failed (its cell will retry): "
              f"{str(e).splitlines()[0]}", flush=True)


def image(images, arch, suite):
    """The image directory for (arch, suite) from scripts/mk-systemd-image.sh
    (cached under the cache by the script itself)."""
    key = (images.cache, arch.name, suite)
    with _locks.setdefault(key, threading.Lock()):
        return _image(images, arch, suite, key)


_locks = {}


def _image(images, arch, suite, key):
    if key not in _images:
        env = dict(os.environ, RKEXEC_CACHE=images.cache)
        t0 = time.monotonic()
        out = subprocess.run(["bash", MK_IMAGE, "--arch", arch.name, "--suite", suite, "--deb", deb_for(arch)],
                             capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise RuntimeError(f"scripts/mk-systemd-image.sh --arch {arch.name} --suite {suite} failed:\n"
                               f"{out.stderr[-3000:]}")
        d = out.stdout.strip().splitlines()[-1]
        print(f"systemd_cells: image {arch.name}/{suite} ready in {time.monotonic() - t0:.0f} s: {d}", flush=True)
        _images[key] = d
    return _images[key]


class SystemdKind(gcl.KexecKind):
    """A systemd chain (see the module doc); steps in the cell's params."""

    name = "systemd"

    def steps_of(self, cell):
        return cell.param("steps").split(",")

    def boot(self, run, images):
        """(kernel, initrd, append, extra QEMU arguments, QEMU options) of kernel 1."""
        arch, cell = run.arch, run.cell
        d = image(images, arch, cell.suite)
        run.extra["image"] = d
        with open(os.path.join(d, "kernel-release")) as f:
            run.extra["release"] = f.read().strip()
        steps = self.steps_of(cell)
        run.extra["uki_token"] = run.marker.rsplit("-", 1)[-1] + "u"
        # nokaslr as in every cell of the tier (guest_arch.Arch.append): with
        # KASLR, trixie's amd64 kernel entered by our purgatory after the
        # first systemctl kexec printed nothing for 51 s in one run and for
        # over 9 minutes in another (not yet understood; the other handoffs of
        # the same runs, and every bookworm one, took seconds).
        append = (f"root=/dev/vda rw console={arch.console} {arch.early}{' nokaslr' if arch.nokaslr else ''} "
                  f"crashkernel={CRASHKERNEL} rkexec_cell.marker={run.marker} rkexec_cell.steps={','.join(steps)}")
        run.extra["append"] = append
        args = ["-drive", f"file={os.path.join(d, 'disk.img')},if=virtio,format=raw,snapshot=on"]
        if "uki" in steps:
            args += ["-drive", f"file={self.uki_disk(run, images, d, append, steps)},if=virtio,format=raw,readonly=on"]
        return os.path.join(d, "vmlinuz"), os.path.join(d, "initrd.img"), append, args

    def uki_disk(self, run, images, d, append, steps):
        """A small ext4 disk with uki-<stage>.efi for each uki step: the
        image's kernel and initrd in a UKI whose .cmdline is kernel 1's plus
        the next stage and a token only this UKI carries."""
        arch = run.arch
        stub = os.path.join(arch.arch_dir(images.cache), "systemd-stub", STUBS[arch.name])
        if not os.path.isfile(stub):
            raise FileNotFoundError(f"{stub} missing: {arch.fixture_hint()}")
        top = tempfile.mkdtemp(prefix="uki-", dir=run.dir)
        for k, step in enumerate(steps):
            if step != "uki":
                continue
            cmdline = f"{append} rkexec_cell.stage={k + 1} rkexec_cell.uki={run.extra['uki_token']}"
            out = subprocess.run([sys.executable, MK_UKI, "--stub", stub, "--linux", os.path.join(d, "vmlinuz"),
                                  "--initrd", os.path.join(d, "initrd.img"), "--osrel", os.path.join(d, "os-release"),
                                  "--cmdline", cmdline, "--uname", run.extra["release"],
                                  "-o", os.path.join(top, f"uki-{k + 1}.efi")], capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"scripts/mk-uki.py failed: {out.stdout}{out.stderr}")
        disk = os.path.join(run.dir, "uki.img")
        size_mb = sum(os.path.getsize(os.path.join(top, f)) for f in os.listdir(top)) // (1 << 20) + 16
        out = subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", top, disk, f"{size_mb}M"],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"mke2fs -d failed: {out.stderr}")
        shutil.rmtree(top, ignore_errors=True)
        run.scratch.append(disk)
        return disk

    def qemu_opts(self, run):
        return dict(memory=MEMORY, smp=1, reboot=True)

    # -- waiting ------------------------------------------------------------------
    def wait(self, run, q, timeout):
        """Each kernel's CELL-STEP, then (after the crash) the report and
        QEMU's exit; stop at the first failure line."""
        steps = self.steps_of(run.cell)
        i = 0
        for k, step in enumerate(steps):
            i = q.wait_index(rf"CELL-STEP stage={k} |{FAIL_RE}", STAGE_TIMEOUT, i)
            if re.search(FAIL_RE, q.lines[i].text):
                time.sleep(2.0)
                return
            i += 1
            if step == "crash":
                # the panic, the capture kernel and its dump, the reboot, the report
                i = q.wait_index(r"CELL-REPORT-DONE|CELL-ERROR", 2 * STAGE_TIMEOUT, i)
                q.wait_exit(60)
                return

    # -- judging --------------------------------------------------------------------
    def steps(self, run, tr, info, bits):
        arch, steps = run.arch, self.steps_of(run.cell)
        release = run.extra["release"]
        d = run.extra["image"]
        start = 0
        for k, step in enumerate(steps):
            i_up = self.kernel_up(run, tr, info, k, start)
            i_step = tr.need(rf"CELL-STEP stage={k} step={step}$", f"kernel {k + 1} did not take step {k} ({step})",
                             i_up)
            if step in ("type1", "uki"):
                start = self.systemctl_kexec(run, tr, info, bits, k, step, i_step, d)
            else:
                self.crash_and_dump(run, tr, info, bits, k, i_step, d, release)
        bits.append(f"{run.extra['versions']}")

    def kernel_up(self, run, tr, info, k, start):
        """Kernel k+1's report: systemd is PID 1, this run's marker, rkexec is
        /sbin/kexec and installed, kexec-tools is not, kdump-tools loaded its
        crash kernel with /sbin/kexec -p. Returns the CELL-UP index."""
        who = f"kernel {k + 1}" + (" (booted by systemctl kexec)" if k else "")
        i = tr.need(rf"CELL-UP stage={k} marker=", f"{who}: rkexec-cell.service never reported (no CELL-UP stage={k})",
                    start)
        m = re.search(r"CELL-UP stage=\d+ marker=(\S*) release=(\S+) pid1=(\S+)", tr.T[i])
        if not m or m.group(1) != run.marker:
            raise gj.Fail(f"{who}: {tr.text(i)} lacks this run's marker {run.marker}")
        if m.group(2) != run.extra["release"] or m.group(3) != "systemd":
            raise gj.Fail(f"{who}: {tr.text(i)}: expected release {run.extra['release']} and systemd as PID 1")
        facts = {}
        for key, rx in (("pkg", r"CELL-PKG (.*)$"), ("bin", r"CELL-KEXEC-BIN (.*)$"),
                        ("svc", r"CELL-KDUMP-SERVICE (.*)$"), ("cmd", r"CELL-KDUMP-CMD (.*)$"),
                        ("loaded", r"CELL-CRASH-LOADED (.*)$")):
            j = tr.need(rx, f"{who}: no {rx.split()[0]} line", i)
            facts[key] = re.search(rx, tr.T[j]).group(1).strip()
        pkgs = dict(w.split("=", 1) for w in facts["pkg"].split())
        if pkgs.get("rkexec", "absent") == "absent" or pkgs.get("kdump-tools", "absent") == "absent":
            raise gj.Fail(f"{who}: rkexec and kdump-tools must be installed: {facts['pkg']}")
        if pkgs.get("kexec-tools") != "absent":
            raise gj.Fail(f"{who}: kexec-tools is installed: {facts['pkg']}")
        if not re.match(r"/usr/sbin/rkexec rkexec \S+ \(kexec-tools \S+ compatible\)$", facts["bin"]):
            raise gj.Fail(f"{who}: /sbin/kexec is not rkexec: {facts['bin']}")
        if facts["svc"] != "active success":
            raise gj.Fail(f"{who}: kdump-tools.service is {facts['svc']!r}")
        if not facts["cmd"].startswith("/sbin/kexec -p "):
            raise gj.Fail(f"{who}: kdump-tools' recorded load is not /sbin/kexec -p: {facts['cmd']}")
        if facts["loaded"] != "1":
            raise gj.Fail(f"{who}: /sys/kernel/kexec_crash_loaded is {facts['loaded']!r} after kdump-tools.service")
        info[f"k{k + 1}_up_s"] = tr.t(i)
        run.extra["versions"] = f"rkexec {pkgs['rkexec']}, kdump-tools {pkgs['kdump-tools']}, no kexec-tools"
        return i

    def systemctl_kexec(self, run, tr, info, bits, k, step, i_step, d):
        """systemctl's load of the entry, systemd-shutdown's kexec, our
        purgatory, the next kernel's first line. Returns the next kernel's
        first line's index."""
        i_dry = tr.need(r"CELL-DRY-RUN Would run \S*kexec --load ", f"stage {k}: systemctl --dry-run kexec "
                        "did not say what it would run (no boot loader entry found?)", i_step)
        dry = tr.T[i_dry]
        if step == "type1":
            want, floor = (r'--load "/run/boot-loader-entries/+vmlinuz" --append ".*rkexec_cell.stage=%d.*" '
                           r'--initrd "/run/boot-loader-entries/+initrd.img"' % (k + 1)), "kernel + initrd"
        else:
            # no --initrd: the UKI brings its own (systemd 257 prints "(null)"
            # after the --append word where the initrd would be)
            want, floor = (r'--load "/run/boot-loader-entries/+EFI/Linux/rkexec-cell.efi" --append ".*rkexec_cell'
                           r'.stage=%d rkexec_cell.uki=%s"' % (k + 1, run.extra["uki_token"])), "the UKI's kernel + initrd"
            if "--initrd" in dry:
                raise gj.Fail(f"stage {k}: systemctl would pass an initrd with the UKI: {dry.strip()}")
        if not re.search(want, dry):
            raise gj.Fail(f"stage {k}: systemctl would not load the {step} entry as expected: {dry.strip()}")
        i_go = tr.need(rf"CELL-SYSTEMCTL-KEXEC step={step} stage={k}$", f"stage {k}: systemctl kexec not run", i_dry)
        i_sd = tr.need(r"systemd-shutdown\[1\]: Rebooting with kexec", f"stage {k}: systemd-shutdown never said "
                       "'Rebooting with kexec'", i_go)
        i_boot = tr.find(run.arch.boot_re, i_sd + 1)
        plan = gc.PlanFacts("systemctl kexec", min_hashed=self.floor(run, d))
        if i_boot is None:
            gj.purgatory_step(tr, {}, [], i_sd + 1, len(tr.T), plan, True)
            raise gj.Fail(f"stage {k}: no kernel booted after systemd-shutdown's kexec")
        gj.purgatory_step(tr, info, bits, i_sd + 1, i_boot, plan, True, *run.purgatory_rules())
        bits[-1] = f"{step}: {bits[-1]} (>= {floor})"
        info[f"handoff_{k + 1}_s"] = tr.t(i_boot) - tr.t(i_go)
        i_next = tr.need(rf"CELL-UP stage={k + 1} ", f"kernel {k + 2} (after systemctl kexec) never reported", i_boot)
        gj.kernels_step(tr, info, [], run.arch, run.mode, (0, i_go), (i_boot, i_next), who=f"kernel {k + 2}")
        if step == "uki":
            i_cl = tr.find(r"Kernel command line: ", i_boot, i_next)
            if i_cl is None or f"rkexec_cell.uki={run.extra['uki_token']}" not in tr.T[i_cl]:
                raise gj.Fail(f"kernel {k + 2}'s command line lacks the UKI's .cmdline token: "
                              f"{tr.text(i_cl) if i_cl is not None else 'no Kernel command line line'}")
        return i_boot

    def floor(self, run, d):
        """Bytes the purgatory must hash at least: the kernel payload and the initrd."""
        return run.arch.kernel_payload_size(os.path.join(d, "vmlinuz")) + os.path.getsize(os.path.join(d, "initrd.img"))

    def crash_and_dump(self, run, tr, info, bits, k, i_step, d, release):
        i_cr = tr.need(rf"CELL-CRASH stage={k}$", f"stage {k}: no CELL-CRASH", i_step)
        i_panic = tr.need(gcl.PANIC_RE, f"stage {k}: sysrq-c did not panic kernel {k + 1}", i_cr)
        i_cap = tr.find(run.arch.boot_re, i_panic + 1)
        plan = gc.PlanFacts("kdump-tools", min_hashed=self.floor(run, d))
        if i_cap is None:
            gj.purgatory_step(tr, {}, [], i_panic + 1, len(tr.T), plan, True)
            raise gj.Fail("the capture kernel never printed a boot line after the panic")
        gj.purgatory_step(tr, info, bits, i_panic + 1, i_cap, plan, True, *run.purgatory_rules())
        bits[-1] = f"crash: {bits[-1]}"
        info["panic_to_capture_s"] = tr.t(i_cap) - tr.t(i_panic)
        i_saved = tr.need(r"kdump-tools.*saved vmcore in /var/crash/", "kdump-tools did not say it saved the vmcore",
                          i_cap)
        i_rep = tr.need(rf"CELL-REPORT marker={re.escape(run.marker)} ", "the boot after the dump never reported it "
                        "(rkexec-cell-report.service)", i_saved)
        gj.kernels_step(tr, info, [], run.arch, run.mode, (0, i_cr), (i_cap, i_saved), who="the capture kernel")
        i_done = tr.need(r"CELL-REPORT-DONE", "the report did not finish", i_rep)
        dumps = [re.search(r"CELL-DUMP file=(\S+) bytes=(\d+) magic=([0-9a-f]*)", t) for t in tr.T[i_rep:i_done]]
        dumps = [m for m in dumps if m]
        if not dumps:
            raise gj.Fail("no dump file in /var/crash/<stamp>/")
        path, size, magic = dumps[0].group(1), int(dumps[0].group(2)), dumps[0].group(3)
        kind = next((v for m, v in DUMP_MAGICS.items() if magic.startswith(m)), None)
        if not re.match(r"/var/crash/\d{12}/dump\.\d{12}$", path) or size == 0 or kind is None:
            raise gj.Fail(f"the dump {path} ({size} bytes, magic {magic}) is not an ELF or makedumpfile dump")
        i_file = tr.need(r"CELL-DUMP-FILE ", "no `file` line for the dump", i_rep, i_done)
        if f"release {release}," not in tr.T[i_file] and "ELF" not in tr.T[i_file]:
            raise gj.Fail(f"`file` does not see a dump of {release}: {tr.text(i_file)}")
        i_dm = tr.need(r"CELL-DUMP-DMESG ", "no dmesg file beside the dump", i_rep, i_done)
        dm = tr.T[i_dm]
        words = set(dm.split())
        # kernel 1 has no stage word; the kernels systemctl kexec booted say theirs
        stage_ok = (f"rkexec_cell.stage={k}" in words) if k else not any(w.startswith("rkexec_cell.stage=")
                                                                          for w in words)
        if f"rkexec_cell.marker={run.marker}" not in words or not stage_ok:
            raise gj.Fail(f"the dump's dmesg is not of this run's kernel {k + 1}: {tr.text(i_dm)}")
        if not re.search(r"sysrq=[1-9]", dm):
            raise gj.Fail(f"the dump's dmesg lacks the sysrq crash: {tr.text(i_dm)}")
        bits.append(f"dump {kind} {size / 1e6:.0f} MB of {release}, its dmesg at stage {k} with the marker")


KINDS = {"systemd": SystemdKind()}


# arm64's images are built under qemu-user (every maintainer script, both
# initramfs builds): 19 and 42 min for the bookworm and trixie bases and 4
# and 10 more for stage 2 on this 2-core machine under load, against
# 2.5-4 min (and under a minute) for amd64. Both arm64 chains run with
# --cells 'sd-arm64-*' (or 'sd-*'); the test command runs amd64's.
# sd-arm64-trixie fails at its last step, on Debian's side: trixie's
# makedumpfile 1.7.6 refuses the 6.12 arm64 kernel's vmcore ("PAGE SIZE
# 0x1000 and VA Bits 52 not supported"), and kdump-tools, whose pipeline
# hides makedumpfile's status, says "saved vmcore" over an empty dump.
DEFAULT_ARCHES = ("amd64",)


def cells():
    out = []
    for arch in ("amd64", "arm64"):
        for suite, steps in (("bookworm", "type1,crash"), ("trixie", "type1,uki,crash")):
            how = "systemctl kexec of a type #1 entry" + (", then of a UKI (type #2)" if "uki" in steps else "")
            out.append(gcl.Cell(f"sd-{arch}-{suite}", arch, "systemd",
                                f"{suite}, systemd as PID 1, the rkexec .deb for kexec-tools: {how}; kdump-tools' "
                                "crash kernel, sysrq-c, its saved dump", suite=suite, loaders=("rkexec",),
                                loader="rkexec", params=(("steps", steps),), default=arch in DEFAULT_ARCHES))
    return out


def main(argv=None):
    return gcl.group_main("systemd_cells.py", ",".join(c.name for c in cells()), argv)


if __name__ == "__main__":
    sys.exit(main())
