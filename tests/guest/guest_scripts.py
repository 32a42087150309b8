"""The shell scripts that run inside the guests (busybox sh).

INIT1 is kernel 1's /init: it sources the per-cell /cell.sh (appended to the
cached initramfs as a second, tiny cpio archive) and powers off. INIT2 is
kernel 2's /init, INIT_CAPTURE the capture kernel's. The success words of
kernel 2 and the capture kernel are split in the scripts, so the literal
never exists in kernel 1's initramfs and only the kernel that booted it can
print it.

The helpers below write the /cell.sh fragments every cell kind shares.
"""

# Kernel 1's /init. Helpers for /cell.sh:
#   ktime            KT := nanoseconds since boot (/proc/timer_list "now at",
#                    shell builtins only, no fork; falls back to /proc/uptime)
#   timed CMD...     run CMD between KEXEC-LOAD-START / KEXEC-LOAD-DONE lines,
#                    the latter with rc= and the in-guest ns= duration
#   status WHEN CMD  run a status query CMD, print KEXEC-STATUS when=WHEN rc= out=[...]
#   do_exec CMD...   print KEXEC-EXEC-START and run CMD (e.g. `kexec -e`)
INIT1 = r"""#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
ktime() {
    if [ -r /proc/timer_list ]; then
        while read -r _a _b _c _d; do
            if [ "$_a $_b" = "now at" ]; then KT=$_c; return 0; fi
        done </proc/timer_list
    fi
    read -r _u _rest </proc/uptime
    KT=$(( ${_u%.*} * 1000000000 + ${_u#*.} * 10000000 ))
}
timed() {
    echo "KEXEC-LOAD-START $*"
    ktime; _t0=$KT
    "$@"
    _rc=$?
    ktime
    echo "KEXEC-LOAD-DONE rc=$_rc ns=$((KT - _t0))"
    return $_rc
}
status() {
    _w=$1; shift
    _o=$("$@" 2>&1)
    _rc=$?
    echo "KEXEC-STATUS when=$_w rc=$_rc out=[$(echo $_o)]"
}
do_exec() {
    sync
    echo KEXEC-EXEC-START
    "$@"
    echo "KEXEC-EXEC-FAILED rc=$?"
}
echo "INIT1-START $(cat /proc/uptime)"
if [ -f /cell.sh ]; then
    . /cell.sh
    echo "CELL-SCRIPT-DONE rc=$?"
else
    echo "CELL-SCRIPT-MISSING"
fi
poweroff -f
"""

# Kernel 2's /init.
INIT2 = r"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
read -r CMDLINE </proc/cmdline
read -r UP _rest </proc/uptime
echo "KERNEL2-""INIT-OK uptime=$UP cmdline: $CMDLINE"
poweroff -f
"""

# The capture kernel's /init (in /initrd-kdump). `ls -l` (a stat) gives the
# vmcore size without reading it. VMCORE_COVERS (a kernel parameter that
# reaches init as an environment variable: comma-separated physical
# addresses) asks vmcore-check which of them a PT_LOAD covers.
INIT_CAPTURE = r"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
read -r CMDLINE </proc/cmdline
read -r UP _rest </proc/uptime
echo "KDUMP-""INIT-OK uptime=$UP cmdline: $CMDLINE"
[ -d /proc/device-tree/cpus ] && echo "KDUMP-DT-CPUS $(ls /proc/device-tree/cpus | grep @ | tr '\n' ' ')"
if [ -e /proc/vmcore ]; then
    echo "KDUMP-VMCORE-PRESENT $(ls -l /proc/vmcore)"
    /vmcore-check /proc/vmcore $(echo "$VMCORE_COVERS" | tr , ' ')
    echo "KDUMP-VMCORE-CHECK rc=$?"
else
    echo "KDUMP-NO-VMCORE"
fi
echo "KDUMP-""DONE"
poweroff -f
"""


def sh_quote(s):
    """One shell word holding s, as the guest's busybox sh reads it."""
    return "'" + s.replace("'", "'\\''") + "'"


def status_line(loader, crash, when):
    """/cell.sh line: ask the loader whether a kernel is loaded (kexec-tools'
    -S: the crash kernel, -S -l: the normal one) and print the answer."""
    if not loader.has_status:
        return ":"
    return f"status {when} $LOADER -S{'' if crash else ' -l'}"


def kdump_prelude():
    """/cell.sh lines before a crash load: kernel 1's release, the crash
    kernel reservation (fail early without one)."""
    return [
        'echo "K1-RELEASE=$(uname -r)"',
        "_ck=$(grep 'Crash kernel' /proc/iomem)",
        # powerpc lists its reservation only in the device tree
        # (arch/powerpc/kexec/core.c export_crashk_values), not /proc/iomem.
        '_dt=/proc/device-tree/chosen/linux,crashkernel-base',
        '[ -n "$_ck" ] || [ ! -e $_dt ] || _ck="device tree base 0x$(od -An -tx1 $_dt | tr -d \' \\n\') size 0x$(od -An -tx1 ${_dt%base}size | tr -d \' \\n\')"',
        '[ -n "$_ck" ] || { echo "K1-NO-CRASHKERNEL (crashkernel= not reserved)"; return 1; }',
        'echo "K1-CRASHKERNEL $(echo $_ck)"',
    ]


def crash_lines(arch, cpu=None):
    """/cell.sh lines that crash kernel 1 (sysrq-c), on `cpu` if given."""
    trigger = "echo c >/proc/sysrq-trigger"
    if cpu is not None:
        trigger = f"busybox taskset -c {cpu} sh -c 'echo c >/proc/sysrq-trigger'"
    return [
        'echo "KEXEC-CRASH-LOADED $(cat /sys/kernel/kexec_crash_loaded)"',
        "sync",
        "echo KDUMP-PANIC-START",
        *([f"sleep {arch.crash_drain_s}"] if arch.crash_drain_s else []),
        trigger,
        'echo "KDUMP-PANIC-FAILED rc=$?"',
        "return 1",
    ]
