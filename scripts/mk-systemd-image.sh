#!/usr/bin/env bash
# Builds the Debian guest of the systemd cells (tests/guest/systemd_cells.py):
# a disk image made from Debian packages with mmdebstrap, booting systemd as
# PID 1, with the rkexec .deb installed in place of kexec-tools and
# kdump-tools installed against it.
#
#   scripts/mk-systemd-image.sh --arch amd64|arm64 --suite bookworm|trixie --deb rkexec_X_ARCH.deb
#
# Prints the image directory on stdout (the last line). Two cached stages under
# $RKEXEC_CACHE/systemd-images/ARCH/SUITE/ (git-ignored, like every fixture):
#
#  base-KEY.tar   mmdebstrap --variant=minbase: systemd-sysv, udev, the
#                 suite's cloud kernel, initramfs-tools (MODULES=list: the
#                 virtio modules, so the initramfs is the same in a chroot and
#                 on the machine), makedumpfile and kdump-tools' other
#                 dependencies; kdump-tools and kexec-tools are downloaded
#                 (with their dependencies) but not installed, and the apt
#                 lists are kept, so stage 2 installs them from there. No docs,
#                 man pages or locales. KEY: the package list and the mmdebstrap call.
#  image-KEY2/    the base plus the .deb (KEY2: KEY, the .deb's and the guest files'
#                 SHA-256, this script's):
#                 disk.img (raw ext4, the root file system), vmlinuz and
#                 initrd.img (the image's own kernel and initramfs, for QEMU's
#                 -kernel/-initrd), os-release, kernel-release, install.log.
#                 Stage 2 proves the package in a chroot, each step checked
#                 with dpkg-query (install.log has the apt/dpkg output):
#                   1. apt-get install ./rkexec.deb       (kexec-tools absent)
#                   2. apt-get install kdump-tools        -> satisfied by rkexec's
#                      Provides: kexec-tools; kexec-tools stays uninstalled
#                   3. apt-get install kexec-tools        -> removes rkexec
#                      (Conflicts), kdump-tools stays installed
#                   4. apt-get install ./rkexec.deb       -> removes kexec-tools
#                      (Conflicts/Replaces), kdump-tools stays installed
#                 then generates kdump-tools' capture initrd with the package's
#                 own kernel hook (it skips itself in a chroot and would
#                 otherwise run under TCG at the first boot).
#
# All packages come from the mirror of the system's sources (as
# scripts/fetch-fixtures.sh finds it) through mmdebstrap's own apt
# configuration: the system's apt sources and state are never used. When a
# download fails (a mirror can list a version for a while before it serves
# it), the base is tried once more without the -updates and -security suites.
#
# arm64 on an x86_64 host: mmdebstrap runs the arm64 maintainer scripts under
# qemu-user (qemu-user-static, registered with binfmt_misc; this script
# mounts binfmt_misc and registers qemu-aarch64 with the F flag when needed).
# Needs root (mmdebstrap --mode=root, chroot, mke2fs -d).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${RKEXEC_CACHE:-$ROOT/cache}
ARCH= SUITE= DEB=
log() { printf 'mk-systemd-image: %s\n' "$*" >&2; }
die() { printf 'mk-systemd-image: ERROR: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case $1 in
        --arch) ARCH=${2:-}; shift 2 ;;
        --suite) SUITE=${2:-}; shift 2 ;;
        --deb) DEB=${2:-}; shift 2 ;;
        -h|--help) sed -n '2,50p' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
done
case $ARCH in amd64|arm64) ;; *) die "--arch wants amd64 or arm64 (got '$ARCH')" ;; esac
case $SUITE in bookworm|trixie) ;; *) die "--suite wants bookworm or trixie (got '$SUITE')" ;; esac
[ -f "$DEB" ] || die "--deb: '$DEB' is not a file (scripts/build-deb.sh builds it)"
[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap --mode=root, chroot)"
for t in mmdebstrap mke2fs sha256sum; do command -v $t >/dev/null || die "$t missing (scripts/setup.sh installs it)"; done

# --- mirror: the first /debian and /debian-security URIs of the system's sources
# shellcheck source=lib/debian-mirror.sh
. "$ROOT/scripts/lib/debian-mirror.sh"

# --- foreign architecture: qemu-user through binfmt_misc
host_arch=$(dpkg --print-architecture)
if [ "$ARCH" != "$host_arch" ]; then
    [ "$ARCH" = arm64 ] || die "no foreign-architecture support for $ARCH"
    bf=/proc/sys/fs/binfmt_misc
    if ! mountpoint -q $bf; then
        mount -t binfmt_misc binfmt_misc $bf || die "cannot mount binfmt_misc"
    fi
    if [ ! -e $bf/qemu-aarch64 ]; then
        conf=/usr/lib/binfmt.d/qemu-aarch64.conf
        [ -r $conf ] || die "$conf missing (apt-get install qemu-user-static)"
        log "registering qemu-aarch64 with binfmt_misc ($conf)"
        grep -v '^#' $conf >$bf/register || die "cannot register qemu-aarch64"
    fi
    grep -q '^enabled' $bf/qemu-aarch64 || die "binfmt_misc qemu-aarch64 is disabled"
    # F: the interpreter is opened at registration, so it runs in the chroot
    grep -q '^flags:.*F' $bf/qemu-aarch64 \
        || die "binfmt_misc qemu-aarch64 is registered without the F flag (the chroot has no interpreter)"
fi

OUT=$CACHE/systemd-images/$ARCH/$SUITE
mkdir -p "$OUT"
DEB_HASH=$(sha256sum "$DEB" | cut -c1-16)

# One builder per (arch, suite) at a time.
exec 9>"$OUT/.lock"
flock 9

t0=$SECONDS
# --- stage 1: the base tarball ------------------------------------------------------
# The packages of the base (minbase adds apt, which stage 2 installs with).
#  systemd-sysv udev       systemd as PID 1, device units
#  kmod procps             modprobe (initramfs), lsmod and sysctl (kdump-tools)
#  linux-image-cloud-ARCH  the suite's cloud kernel (its modules: the initramfs)
#  initramfs-tools         the boot initramfs and kdump-tools' capture initrd
#  makedumpfile            what kdump-tools saves the dump with (Recommends)
#  the rest                kdump-tools' Depends but kexec-tools
BASE_PKGS=systemd-sysv,udev,kmod,procps,linux-image-cloud-$ARCH,initramfs-tools,makedumpfile
BASE_PKGS+=,bsdextrautils,busybox,file,linux-base,ucf,debconf,lsb-base
# The guest reads no documentation: skipping it keeps the image small.
NODOCS=(--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
        --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
        --dpkgopt='path-exclude=/usr/share/info/*')

build_base() {  # build_base WITH_UPDATES(1|0)
    local tmp=$BASE.tmp
    local -a sources=("deb [signed-by=$KEYRING] $MIRROR $SUITE main")
    if [ "$1" = 1 ]; then
        sources+=("deb [signed-by=$KEYRING] $MIRROR $SUITE-updates main"
                  "deb [signed-by=$KEYRING] $SECURITY $SUITE-security main")
    fi
    rm -f "$tmp"
    # essential hook: the initramfs configuration, before the kernel's
    # postinst builds the initramfs: MODULES=list with what a QEMU virt/q35
    # guest needs for its virtio root disk (MODULES=most is large,
    # MODULES=dep would look at the build host).
    # customize hook: kdump-tools, kexec-tools and their dependencies into
    # apt's cache (kept with the lists): stage 2 installs them from there.
    mmdebstrap --mode=root --variant=minbase --arch="$ARCH" --format=tar \
        --include="$BASE_PKGS" "${NODOCS[@]}" \
        --aptopt='Acquire::Languages "none"' --aptopt='APT::Install-Recommends "false"' \
        --skip=cleanup/apt/lists --skip=cleanup/apt/cache \
        --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"' \
        --essential-hook='printf "MODULES=list\n" >"$1/etc/initramfs-tools/conf.d/rkexec-test"' \
        --essential-hook='printf "virtio_pci\nvirtio_mmio\nvirtio_blk\n" >>"$1/etc/initramfs-tools/modules"' \
        --customize-hook='chroot "$1" apt-get install --download-only -y kdump-tools kexec-tools' \
        "$SUITE" "$tmp" "${sources[@]}" >"$OUT/base.log" 2>&1 || return 1
    mv "$tmp" "$BASE"
}
# The base's key: what goes into it (the package list, the mmdebstrap call).
KEY=$( { echo "$ARCH $SUITE $BASE_PKGS ${NODOCS[*]}"; declare -f build_base; } | sha256sum | cut -c1-16)
BASE=$OUT/base-$KEY.tar
if [ -s "$BASE" ]; then
    log "cached: $BASE"
else
    log "mmdebstrap $SUITE $ARCH from $MIRROR (log: $OUT/base.log)"
    if ! build_base 1; then
        tail -5 "$OUT/base.log" >&2
        log "retrying without $SUITE-updates and $SUITE-security (a listed version may not be served yet)"
        build_base 0 || { tail -20 "$OUT/base.log" >&2; die "mmdebstrap failed (see $OUT/base.log)"; }
    fi
    # keep the newest base only
    find "$OUT" -maxdepth 1 -name 'base-*.tar' ! -name "base-$KEY.tar" -delete
    log "base built in $((SECONDS - t0)) s ($(du -h "$BASE" | cut -f1))"
fi

# --- stage 2: the package, kdump-tools, the test units, the disk image ----------------
t1=$SECONDS
OVERLAY=$ROOT/tests/guest/systemd-image
[ -d "$OVERLAY" ] || die "$OVERLAY missing"
OV_HASH=$( (cd "$OVERLAY" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16)
# stage 2's key: the base, the .deb, the guest files and this script
SELF_HASH=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-8)
IMG=$OUT/image-$KEY-$DEB_HASH-$OV_HASH-$SELF_HASH
if [ -s "$IMG/disk.img" ] && [ -s "$IMG/done" ]; then
    log "cached: $IMG"
    touch "$IMG/done"
    echo "$IMG"
    exit 0
fi
work=$OUT/work.$$
rm -rf "$work"; mkdir -p "$work/root"
trap 'rm -rf "$work"' EXIT
tar -C "$work/root" -xpf "$BASE"
# apt wants the file under its own name (a renamed .deb: "Pathname to
# install is not absolute").
DEB_IN=/tmp/$(basename "$DEB")
cp "$DEB" "$work/root$DEB_IN"
STEPS=$(cat <<'EOF'
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
APT="apt-get -y -q -o Dpkg::Use-Pty=0 -o APT::Install-Recommends=false"
state() {  # state PKG: "installed" or "absent"
    if dpkg-query -W -f '${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed; then echo installed; else echo absent; fi
}
expect() {  # expect STEP PKG STATE
    got=$(state "$2")
    echo "STEP $1: $2 $got"
    [ "$got" = "$3" ] || { echo "STEP $1 FAILED: $2 is $got, expected $3"; exit 1; }
}
echo "kdump-tools kdump-tools/use_kdump boolean true" | debconf-set-selections
echo "kexec-tools kexec-tools/load_kexec boolean false" | debconf-set-selections
# kdump-tools ships initramfs hooks, so installing it triggers an
# update-initramfs -u of the boot initramfs, which its hooks leave as it was
# (they act only for kdump-tools' own initrd, CONFDIR=/var/lib/kdump/...):
# skipped here (minutes under qemu-user on arm64), restored at the end.
sed -i 's/^update_initramfs=.*/update_initramfs=no/' /etc/initramfs-tools/update-initramfs.conf
echo "== 1. apt-get install $DEB_IN"
$APT install "$DEB_IN"
expect 1 rkexec installed; expect 1 kexec-tools absent
echo "== 2. apt-get install kdump-tools (its Depends: kexec-tools is rkexec's Provides)"
$APT install kdump-tools
expect 2 kdump-tools installed; expect 2 rkexec installed; expect 2 kexec-tools absent
echo "== 3. apt-get install kexec-tools (Debian's): rkexec goes, kdump-tools stays"
$APT install kexec-tools
expect 3 kexec-tools installed; expect 3 rkexec absent; expect 3 kdump-tools installed
echo "== 4. apt-get install $DEB_IN: kexec-tools goes, kdump-tools stays"
$APT install "$DEB_IN"
expect 4 rkexec installed; expect 4 kexec-tools absent; expect 4 kdump-tools installed
# what only kexec-tools needed (its Xen libraries) goes too
$APT autoremove
echo "== /usr/sbin/kexec: $(readlink -f /usr/sbin/kexec); /sbin/kexec: $(readlink -f /sbin/kexec)"
[ "$(readlink -f /sbin/kexec)" = /usr/sbin/rkexec ] || { echo "/sbin/kexec is not rkexec"; exit 1; }
/usr/sbin/kexec -v
echo "== kdump-tools' capture initrd (its kernel hook; it skips itself in a chroot)"
kver=$(linux-version list | tail -1)
mkdir -p /tmp/notchroot; printf '#!/bin/sh\nexit 1\n' >/tmp/notchroot/ischroot; chmod +x /tmp/notchroot/ischroot
PATH=/tmp/notchroot:$PATH /etc/kernel/postinst.d/kdump-tools "$kver"
# kdump-config load rebuilds the initrd unless the sysctls it was built with
# are recorded (check_sysctl_change); then its links, as `load` makes them.
cp /etc/kdump/sysctl.conf "/var/lib/kdump/latest_sysctls-$kver"
kdump-config symlinks "$kver"
ls -l /var/lib/kdump/
[ -s "/var/lib/kdump/initrd.img-$kver" ] || { echo "no kdump initrd"; exit 1; }
sed -i 's/^update_initramfs=.*/update_initramfs=yes/' /etc/initramfs-tools/update-initramfs.conf
rm -rf /tmp/notchroot "$DEB_IN"
apt-get clean
EOF
)
log "stage 2: the rkexec package and kdump-tools in a chroot (log: $IMG.log)"
# A private mount namespace: /proc, /sys and /dev go away with it.
if ! unshare --mount --fork sh -c '
        r=$1; shift
        mount -t proc proc "$r/proc" && mount -t sysfs sysfs "$r/sys" && mount --rbind /dev "$r/dev" \
            && mount -t tmpfs tmpfs "$r/run" || exit 1
        exec chroot "$r" /usr/bin/env DEB_IN="$2" /bin/sh -c "$1"' sh "$work/root" "$STEPS" "$DEB_IN" >"$IMG.log" 2>&1; then
    tail -30 "$IMG.log" >&2
    die "stage 2 failed in the chroot (see $IMG.log)"
fi
grep '^STEP ' "$IMG.log" >&2

# The test units and their script (tests/guest/systemd-image/), enabled.
cp -a "$OVERLAY/." "$work/root/"
chmod 0755 "$work/root/usr/local/sbin/"* 2>/dev/null || true
for u in "$OVERLAY"/etc/systemd/system/*.service; do
    systemctl --root="$work/root" enable "$(basename "$u")" >/dev/null 2>&1 \
        || die "systemctl enable $(basename "$u") failed"
done
# No login prompts on the console (the cells read it; nobody logs in).
systemctl --root="$work/root" mask getty.target >/dev/null 2>&1
echo rkexec-guest >"$work/root/etc/hostname"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$work/root/etc/fstab"

mkdir -p "$IMG.tmp"
kver=$(ls "$work/root/lib/modules" | tail -1)
cp "$work/root/boot/vmlinuz-$kver" "$IMG.tmp/vmlinuz"
cp "$work/root/boot/initrd.img-$kver" "$IMG.tmp/initrd.img"
cp -L "$work/root/etc/os-release" "$IMG.tmp/os-release"
echo "$kver" >"$IMG.tmp/kernel-release"
dpkg-query --admindir="$work/root/var/lib/dpkg" -W -f '${Package} ${Version}\n' \
    rkexec kdump-tools systemd "linux-image-$kver" makedumpfile >"$IMG.tmp/versions" 2>/dev/null || true
mv "$IMG.log" "$IMG.tmp/install.log"
# Room for the crash dumps: the root file system gets 1 GiB more than its
# content (a sparse file: only what is written takes disk space).
used_mb=$(du -sm "$work/root" | cut -f1)
mke2fs -q -t ext4 -L rkexec-root -d "$work/root" "$IMG.tmp/disk.img" "$((used_mb + 1024))M" \
    || die "mke2fs -d failed"
date -u +%FT%TZ >"$IMG.tmp/done"
rm -rf "$IMG"; mv "$IMG.tmp" "$IMG"
# keep the newest image only (a concurrent run of another .deb rebuilds its own)
find "$OUT" -maxdepth 1 -name 'image-*' ! -name "$(basename "$IMG")" -exec rm -rf {} +
log "image built in $((SECONDS - t1)) s (stage 2), $((SECONDS - t0)) s in all: $IMG"
echo "$IMG"
