#!/usr/bin/env python3
"""rkexec installed as /sbin/kexec, driven by the callers' exact argv, and
UKI / vmlinux ELF kernels as kernel 2 (issue 10): cells of the one guest-tier
driver (kexec_matrix.py); this file lists them, defines the UKI kind, and is a
small CLI for running just them.

Each cell is the matrix's kexec or kdump kind with loader "rkexec-as-kexec"
(the static rkexec at /sbin/kexec) and a `load` template holding the
caller's argv word for word, so it is judged like every other cell: -S
before and after the load (kexec-tools' statuses), the plan the same
arguments give (rkexec-plan/1, or rkexec-file-plan/1 for -s), our
purgatory's segment lines against it (kexec_load), kernel 2's init printing
the marker and exactly the plan's command line, same build, the mode's facts.

  x86-systemd        systemctl kexec + systemd-shutdown: `kexec --load K
                     --append OPTS --initrd I` (separate words), `kexec -e`.
  x86-kdump-utils    Fedora kdump-utils under Secure Boot: `kexec -s -s -p
                     --command-line=... --initrd=... K` (kexec_file_load),
                     sysrq-c, /proc/vmcore checked in the capture kernel.
  x86-reuse-cmdline  LTP ima_kexec / ArchWiki: kernel 1 booted with
                     BOOT_IMAGE=... MARKER=...; `kexec -l K --initrd=I
                     --reuse-cmdline`: kernel 2 has the marker, no BOOT_IMAGE=.
  x86-uki, uki       a real UKI (bookworm systemd-stub 252 + the kernel +
                     .initrd + .ucode + .cmdline, scripts/mk-uki.py):
                     `kexec -l uki.efi`: kernel, initrd (the .ucode archive's
                     file arrives first) and command line from the UKI.
  x86-vmlinux        the vmlinux ELF from the bzImage (scripts/extract-
                     vmlinux.py, fetched as cache/amd64/bookworm/vmlinux):
                     `kexec -l vmlinux --args-linux --initrd=I --append=...`.
  petitboot          `kexec -l --debug --initrd= --dtb= --append= K`, then its
                     -s retry argv (--dtb noted and ignored, not a usage
                     error; Debian's arm64 kernels lack kexec_file_load: 253
                     as kexec-tools, the -l image stays), then `kexec -e`.

    tests/guest/dropin_cells.py [--cells x86-uki,uki] [--timeout 300] [-v] [--list]
    (= tests/guest/kexec_matrix.py --cells x86-systemd,... ; former names amd64-*/arm64-* still work)
"""
import io
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import guest_cells as gcl  # noqa: E402
import guest_images as gi  # noqa: E402
import guest_scripts as gs  # noqa: E402

MK_UKI = os.path.join(gi.ROOT, "scripts", "mk-uki.py")
STUBS = {"amd64": "linuxx64.efi.stub", "arm64": "linuxaa64.efi.stub"}  # cache/<arch>/systemd-stub/

# Kernel 2's init for UKI cells: INIT2, plus whether the file from the UKI's
# .ucode archive arrived (systemd-stub's order: .ucode, then .initrd).
INIT_UKI = gs.INIT2.replace('echo "KERNEL2-""INIT-OK',
                            '[ -e /ucode-marker ] && echo "UKI-""UCODE-PRESENT $(cat /ucode-marker)"\n'
                            'echo "KERNEL2-""INIT-OK')
assert INIT_UKI != gs.INIT2, "guest_scripts.INIT2 no longer prints KERNEL2-INIT-OK as expected"
UCODE_SEEN = ((r"^UKI-UCODE-PRESENT ucode-from-uki$", "the .ucode archive did not reach kernel 2"),)


def ucode_archive(path):
    """An uncompressed newc archive with /ucode-marker (early microcode is an
    uncompressed cpio the kernel reads first; systemd-stub puts .ucode first)."""
    buf = io.BytesIO()
    w = gi.mk.Newc(gi.mk._Counting(buf))
    w.data("ucode-marker", b"ucode-from-uki\n", 0o644)
    w.close()
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return path


class UkiKind(gcl.KexecKind):
    """kernel 2 is a UKI made for this run (its .cmdline carries the marker)."""

    name = "uki"

    def prepare(self, run, images):
        arch = run.arch
        stub = os.path.join(arch.arch_dir(images.cache), "systemd-stub", STUBS[arch.name])
        if not os.path.isfile(stub):
            raise FileNotFoundError(f"{stub} missing: {arch.fixture_hint()}")
        run.initrd_path = gi.build_initrd2(images.cache, arch, INIT_UKI, stem="initrd-uki")
        ucode = ucode_archive(os.path.join(run.dir, "ucode.cpio"))
        uki = os.path.join(run.dir, "uki.efi")
        out = subprocess.run([sys.executable, MK_UKI, "--stub", stub, "--linux", run.kernel_path, "--initrd",
                              run.initrd_path, "--ucode", ucode, "--cmdline", self.new_append(run), "--uname",
                              "rkexec-test", "-o", uki], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"scripts/mk-uki.py failed: {out.stdout}{out.stderr}")
        run.kernel2_file = uki  # run.kernel_path stays the kernel inside it: the hashed floor
        run.scratch += [uki, ucode]


KINDS = {"uki": UkiKind()}

AS_KEXEC = dict(loader="rkexec-as-kexec", loaders=("rkexec",))
PETITBOOT_RETRY = ("{loader} -s --debug --initrd={initrd} --dtb=/tmp/k1.dtb --append={append} {kernel} "
                   '2>/tmp/s.err >/dev/null; echo "PB-S-RC=$?"\n'
                   'grep -q "dtb is ignored" /tmp/s.err && echo "PB-S-DTB-NOTED"')


def cells():
    return [
        gcl.Cell("x86-systemd", "amd64", "kexec", "systemctl kexec's load + systemd-shutdown's exec, as /sbin/kexec",
                 load="{loader} --load {kernel} --append {append} --initrd {initrd}", aliases=("amd64-systemd",),
                 **AS_KEXEC),
        gcl.Cell("x86-kdump-utils", "amd64", "kdump", "kdump-utils' Secure Boot form: -s -s -p --command-line= "
                 "--initrd= K (kexec_file_load)", syscall="file", smp=2,
                 load="{loader} -s -s -p --command-line={append} --initrd={initrd} {kernel}",
                 aliases=("amd64-kdump-utils",), **AS_KEXEC),
        gcl.Cell("x86-reuse-cmdline", "amd64", "kexec", "--reuse-cmdline: kernel 2 gets kernel 1's command line "
                 "minus BOOT_IMAGE=", reuse_cmdline=True, k1_extra="BOOT_IMAGE=/boot/vmlinuz-6.1.0-57-cloud-amd64",
                 k2_lacks=("BOOT_IMAGE=",), aliases=("amd64-reuse",), **AS_KEXEC),
        gcl.Cell("x86-uki", "amd64", "uki", "a real UKI (systemd-stub 252): kernel, .ucode + .initrd and .cmdline "
                 "from it", load="{loader} -l {kernel}", expect=UCODE_SEEN, aliases=("amd64-uki",), **AS_KEXEC),
        gcl.Cell("x86-vmlinux", "amd64", "kexec", "the vmlinux ELF from the bzImage, --args-linux, through our "
                 "purgatory", kernel2="bookworm/vmlinux",
                 load="{loader} -l {kernel} --args-linux --initrd={initrd} --append={append}",
                 aliases=("amd64-vmlinux",), **AS_KEXEC),
        gcl.Cell("uki", "arm64", "uki", "a real arm64 UKI (linuxaa64.efi.stub + Image): kernel, initrd, cmdline "
                 "from it", load="{loader} -l {kernel}", expect=UCODE_SEEN, aliases=("arm64-uki",), **AS_KEXEC),
        gcl.Cell("petitboot", "arm64", "kexec", "petitboot: -l --debug --initrd= --dtb= --append= K, its -s retry "
                 "form (--dtb noted, not a usage error), -e", dtb_override=True,
                 load="{loader} -l --debug --initrd={initrd} --dtb=/tmp/k1.dtb --append={append} {kernel}",
                 after_load=PETITBOOT_RETRY, aliases=("arm64-petitboot",),
                 expect=((r"^PB-S-RC=253$", "the -s retry with --dtb must get as far as kexec_file_load (which "
                          "Debian's arm64 kernels lack: 253 as kexec-tools), not fail as a usage error"),
                         (r"^PB-S-DTB-NOTED$", "the ignored --dtb must be noted on stderr")), **AS_KEXEC),
    ]


def main(argv=None):
    return gcl.group_main("dropin_cells.py", ",".join(c.name for c in cells()), argv)


if __name__ == "__main__":
    sys.exit(main())
