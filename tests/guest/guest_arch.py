"""Architecture profiles of the guest tier: everything that differs between
arm64, amd64, riscv64 and ppc64el guests, in one record per architecture.

An Arch says how to start QEMU (binary, machine, CPU, extra arguments), how
the Debian kernel talks on its serial console (console name, early console
switch, the first line of a freshly entered kernel, kernel 1's last line
before it jumps), where its fixtures are in the cache, which Rust target the
static guest tools are built for, which kexec syscalls the Debian kernels
have, and the boot facts (exception level, VHE, KVM...) each kernel reports.

A Mode is one machine/CPU flavour of an Arch (arm64: EL1, EL2 nVHE, EL2
VHE; amd64: q35; riscv64: with and without Zknh) with the facts both
kernels must report in it and the lines our purgatory must print in it
(purgatory_lines.json templates with the placeholder values required).

Adding an architecture is one more Arch in ARCHES (see RISCV64) and its
static tools' target in .cargo/config.toml: scripts/test-guests.sh fetches
its fixtures and builds its tools from this table, and the grid
(guest_cells.grid) gives it its kexec and kdump cells.
"""
import dataclasses
import json
import os
import re
import struct

# What the loader says of each architecture (the "arch" of a plan, the boot
# data kind, the purgatory image), by Debian name: generated from
# loader-host's architecture descriptions (loader-host/tests/arch_facts.rs).
ARCH_FACTS_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "arch_facts.json")
with open(ARCH_FACTS_JSON) as _f:
    LOADER_FACTS = json.load(_f)

# A line that can only come from a freshly booting kernel. With `earlycon`
# (arm64) / `earlyprintk=serial` (x86) it is printed right at kernel entry.
KERNEL_BOOT_RE = r"Booting Linux on physical CPU|^\[\s*0\.000000\]"
VERSION_RE = r"Linux version (\S+)"


@dataclasses.dataclass(frozen=True)
class Mode:
    """A machine/CPU flavour. `expect` maps an Arch.facts name to the value
    every kernel (kernel 1, kernel 2, the capture kernel) must report in this
    mode; None means the fact must be absent."""

    name: str
    doc: str
    machine: str
    cpu: str
    expect: tuple = ()     # ((fact, value), ...)
    purgatory: tuple = ()  # ((line template key, ((placeholder, value), ...)), ...) our purgatory prints

    def expected(self):
        return dict(self.expect)


@dataclasses.dataclass(frozen=True)
class Arch:
    name: str             # Debian architecture; also the cache subdirectory
    qemu: str
    qemu_extra: tuple
    console: str          # console= device name
    early: str            # early console switch: the first line comes at kernel entry
    kernel_file: str      # cache/<name>/<suite>/<kernel_file>: the kernel both kernels boot
    guest_target: str     # Rust target of the static rkexec / vmcore-check the guest runs
    suites: tuple
    modes: tuple          # Mode, the first is the default
    syscalls: tuple       # "load" (kexec_load) and/or "file" (kexec_file_load) in the Debian kernels
    exit_re: str          # kernel 1's last line before jumping (machine_kexec)
    crash_exit_re: str    # the same on the panic path
    smp_re: str           # "N processors activated" (group 1: N)
    cell_prefix: str = ""  # prefix of this arch's cell names
    boot_re: str = KERNEL_BOOT_RE
    facts: tuple = ()     # ((name, regex), ...): group 1 (or "yes" without a group) is the value
    crash_drain_s: int = 0  # pause before sysrq-c so the serial driver drains its buffer
    has_dtb: bool = False   # /sys/firmware/fdt exists: --dtb cells make sense
    memory: int = 2048
    loaders: tuple = ("rkexec", "kexec-tools")  # loaders with fixtures for this arch (Debian has no riscv64 kexec-tools)
    nokaslr: bool = True  # riscv64's Debian kernel takes no nokaslr
    purgatory_forbid: tuple = ()  # line template keys our purgatory must not print on this arch
    kexec_smp: int = 1    # QEMU -smp of the kexec cells (ppc64el: the secondary-CPU hand-off is the point)
    kdump: bool = True    # the grid has kdump cells for it
    crashkernel: str = "256M"  # kernel 1's crashkernel= in the kdump cells
    backup_low: int = 0   # low memory the purgatory backs up for the capture kernel (ppc64: 64 KiB)

    # -- what the loader says of it (arch_facts.json) -----------------------------
    @property
    def plan_arch(self):
        """The "arch" of `rkexec plan --json`."""
        return LOADER_FACTS[self.name]["plan_arch"]

    @property
    def boot_data(self):
        """The boot data kind the kernel receives: "dtb" | "boot-params"."""
        return LOADER_FACTS[self.name]["boot_data"]

    # -- fixtures ---------------------------------------------------------------
    def arch_dir(self, cache):
        return os.path.join(cache, self.name)

    def kernel(self, cache, suite):
        return os.path.join(self.arch_dir(cache), suite, self.kernel_file)

    def busybox(self, cache):
        return os.path.join(self.arch_dir(cache), "busybox")

    def kexec_tools_tree(self, cache):
        return os.path.join(self.arch_dir(cache), "kexec-tools")

    def fixture_hint(self):
        return f"run scripts/fetch-fixtures.sh --arch {self.name}"

    def mode(self, name=None):
        for m in self.modes:
            if name in (None, m.name):
                return m
        raise KeyError(f"{self.name} has no mode {name!r} ({', '.join(m.name for m in self.modes)})")

    # -- command lines ----------------------------------------------------------
    def append(self):
        """Kernel 1's and kernel 2's base command line."""
        return f"console={self.console} {self.early}{' nokaslr' if self.nokaslr else ''} rdinit=/init"

    def qemu_kwargs(self, mode):
        return dict(qemu=self.qemu, machine=mode.machine, cpu=mode.cpu, extra_args=self.qemu_extra,
                    memory=self.memory)

    # -- what a kernel reports ------------------------------------------------------
    def kernel_facts(self, texts):
        """{fact: value or None} over the console texts of one kernel."""
        out = {}
        for name, rx in self.facts + (("version", VERSION_RE),):
            pat = re.compile(rx)
            out[name] = None
            for t in texts:
                m = pat.search(t)
                if m:
                    out[name] = m.group(1) if pat.groups else "yes"
                    break
        return out

    def kernel_payload_size(self, path):
        """Bytes of the kernel file a loader copies into the kernel segment
        (a lower bound of what a verifying purgatory hashes for it)."""
        with open(path, "rb") as f:
            if f.read(4) == b"\x7fELF":
                return elf_load_size(path)
        if self.name == "amd64":
            return bzimage_payload_size(path)
        return os.path.getsize(path)


def bzimage_payload_size(path):
    """Bytes of a bzImage past its real-mode setup (boot.rst: setup_sects at
    0x1f1, 0 meaning 4, plus the boot sector): what kexec-tools and the
    kernel's own bzImage64 loader copy."""
    with open(path, "rb") as f:
        hdr = f.read(0x202)
    if len(hdr) < 0x202 or hdr[0x1fe:0x200] != b"\x55\xaa":
        return os.path.getsize(path)
    setup_sects = hdr[0x1f1] or 4
    return os.path.getsize(path) - (setup_sects + 1) * 512


def elf_load_size(path):
    """Sum of p_filesz over an ELF64 little-endian file's PT_LOAD headers
    (ELF gABI: e_phoff at 32, e_phentsize/e_phnum at 54/56; p_filesz at 32)."""
    with open(path, "rb") as f:
        eh = f.read(64)
        phoff, = struct.unpack_from("<Q", eh, 32)
        phentsize, phnum = struct.unpack_from("<HH", eh, 54)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    total = 0
    for i in range(phnum):
        p_type, = struct.unpack_from("<I", ph, i * phentsize)
        if p_type == 1:  # PT_LOAD
            total += struct.unpack_from("<Q", ph, i * phentsize + 32)[0]
    return total


ARM64_FACTS = (
    ("el", r"CPU: All CPU\(s\) started at (EL\d)"),
    # "CPU features: detected: Virtualization Host Extensions", "kvm [1]: VHE
    # mode initialized successfully" (not "Hyp nVHE mode ...", 6.12's nVHE line)
    ("vhe", r"Virtualization Host Extensions|\bVHE mode initialized"),
    # KVM came up: 6.1 "Hyp mode", 6.12 "Hyp nVHE mode" or "VHE mode"
    ("kvm", r"kvm \[\d+\]: (?:Hyp (?:nVHE )?mode|VHE mode) initialized successfully"),
)

ARM64 = Arch(
    name="arm64", qemu="qemu-system-aarch64", qemu_extra=(),
    console="ttyAMA0", early="earlycon", kernel_file="Image", guest_target="aarch64-unknown-linux-musl",
    suites=("bookworm", "trixie"),
    modes=(
        # dtb-randomness=off: QEMU otherwise puts a kaslr-seed in /chosen that a
        # `nokaslr` kernel 1 leaves un-wiped (kexec-tools then refuses to load).
        Mode("el1", "virt, cortex-a72: kernel 1 entered at EL1", "virt,dtb-randomness=off", "cortex-a72",
             (("el", "EL1"), ("vhe", None), ("kvm", None)), (("started", (("mode", "EL1"),)),)),
        Mode("el2-nvhe", "virt,virtualization=on, cortex-a72 (no VHE): kernels entered at EL2, nVHE hyp",
             "virt,virtualization=on,dtb-randomness=off", "cortex-a72",
             (("el", "EL2"), ("vhe", None), ("kvm", "yes")), (("started", (("mode", "EL2 nVHE"),)),)),
        # pauth-impdef: QEMU's architected QARMA pointer auth is very slow under
        # TCG; the IMPDEF algorithm is architecturally equivalent for the guest.
        # lpa2=off: with FEAT_LPA2 Debian's 6.12 (52-bit VA, 5 levels) oopses in
        # trans_pgd_create_copy() on every kexec_load that needs relocation,
        # whatever the loader (kexec-tools too): a kernel bug, not ours to test.
        Mode("el2-vhe", "virt,virtualization=on, -cpu max (no LPA2): kernels run at EL2 with VHE",
             "virt,virtualization=on,dtb-randomness=off", "max,pauth-impdef=on,lpa2=off",
             (("el", "EL2"), ("vhe", "yes"), ("kvm", "yes")), (("started", (("mode", "EL2 VHE"),)),)),
    ),
    syscalls=("load",),  # Debian arm64 kernels: CONFIG_KEXEC_FILE is not set
    exit_re=r"\] Bye!$", crash_exit_re=r"Starting crashdump kernel",
    smp_re=r"SMP: Total of (\d+) processors? activated", facts=ARM64_FACTS, has_dtb=True,
)

AMD64 = Arch(
    name="amd64", qemu="qemu-system-x86_64",
    qemu_extra=("-nic", "none"),  # q35's default e1000e only adds an iPXE ROM to the boot
    console="ttyS0", early="earlyprintk=serial", kernel_file="vmlinuz", guest_target="x86_64-unknown-linux-musl",
    suites=("bookworm", "trixie"),
    modes=(Mode("q35", "q35, -cpu max", "q35", "max", (), (("started", (("mode", "long mode"),)),)),),
    syscalls=("load", "file"),
    exit_re=r"kexec_core: Starting new kernel", crash_exit_re=r"Kernel Offset: |end Kernel panic",
    smp_re=r"smpboot: Total of (\d+) processors? activated", cell_prefix="x86-",
    # The 8250 driver sends tty output from its transmit buffer by interrupt;
    # the crash path never drains it, so sysrq-c right away loses lines.
    crash_drain_s=1,
)

RISCV64 = Arch(
    name="riscv64", qemu="qemu-system-riscv64",
    qemu_extra=("-bios", "default"),  # OpenSBI fw_dynamic (qemu-system-data), docs/riscv64.md
    # earlycon without arguments takes /chosen/stdout-path (uart0, a 16550):
    # kernel 2's first line is printed at its entry.
    console="ttyS0", early="earlycon", nokaslr=False, kernel_file="Image",
    guest_target="riscv64gc-unknown-linux-gnu",  # static glibc: Rust ships no riscv64 musl std
    suites=("trixie",),  # riscv64 is a Debian release architecture from trixie on
    modes=(
        Mode("zknh", "virt, -cpu rv64,zknh=true: the purgatory hashes with Zknh", "virt", "rv64,zknh=true", (),
             (("verified", (("engine", "zknh"),)), ("riscv_isa", (("zknh", "zknh"),)), ("setup_riscv", ()))),
        Mode("portable", "virt, -cpu rv64 (no Zknh): the purgatory's portable SHA-256", "virt", "rv64", (),
             (("verified", (("engine", "portable"),)), ("riscv_isa", (("zknh", "no-zknh"),)), ("setup_riscv", ()))),
    ),
    syscalls=("load",),  # Debian riscv64: CONFIG_KEXEC_FILE is not set
    exit_re=r"kexec_core: Starting new kernel", crash_exit_re=r"Starting crashdump kernel",
    smp_re=r"smp: Brought up \d+ nodes?, (\d+) CPUs?",  # riscv prints no "SMP: Total of N processors"
    cell_prefix="rv-", crash_drain_s=1, has_dtb=True, loaders=("rkexec",),
    # the kernel handed the purgatory another FDT than the loader named; a trap
    purgatory_forbid=("riscv_a1_note", "unexpected_trap"),
)

# QEMU's pseries with its built-in VOF firmware (no SLOF: 4 s to a
# kernel's init instead of 11); TCG lacks the Spectre mitigations the
# default machine asks for: say they are broken rather than have QEMU warn.
PSERIES = "pseries,x-vof=on,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off"

PPC64EL = Arch(
    name="ppc64el", qemu="qemu-system-ppc64", qemu_extra=(),
    # hvc0 is the PAPR vterm; the pseries kernel prints through it (udbg)
    # from its first instructions, no early console switch needed.
    console="hvc0", early="", nokaslr=False, kernel_file="vmlinux",
    guest_target="powerpc64le-unknown-linux-gnu",  # static glibc: no powerpc64le musl std here
    suites=("bookworm", "trixie"),  # bookworm 6.1: 64 KiB pages; trixie 6.12: 4 KiB
    modes=(
        Mode("power9", "pseries (VOF), -cpu power9: radix MMU, the purgatory hashes with vector crypto",
             PSERIES, "power9", (), (("verified", (("engine", "vcrypto"),)),)),
    ),
    syscalls=("load",),  # Debian ppc64el: CONFIG_KEXEC_FILE is not set on any release
    exit_re=r"kexec: Starting switchover sequence", crash_exit_re=r"kexec: Starting switchover sequence",
    smp_re=r"smp: Brought up \d+ nodes?, (\d+) CPUs?",
    cell_prefix="ppc-", kexec_smp=2,
    # A ppc64el capture kernel (Debian's is ~40 MB in memory) with its
    # initrd in 256M runs out of memory; kexec-tools' own ppc64 runs use
    # 512M (docs/ppc64le.md, "kdump").
    crashkernel="512M",
    backup_low=0x10000,
)

ARCHES = {a.name: a for a in (ARM64, AMD64, RISCV64, PPC64EL)}
