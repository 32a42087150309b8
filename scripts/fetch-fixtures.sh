#!/usr/bin/env bash
# Fetches the Debian test fixtures (kernels, busybox, kexec-tools + its shared
# libraries) into $RKEXEC_CACHE (default: <repo>/cache, git-ignored).
#
#   scripts/fetch-fixtures.sh [--arch arm64|amd64|riscv64|ppc64el|all] [--refresh]
#
# Layout produced (ARCH = arm64 | amd64 | riscv64 | ppc64el, SUITE = bookworm | trixie):
#   cache/ARCH/SUITE/vmlinuz   the kernel as Debian ships it (arm64: an
#                              uncompressed Image today, amd64: bzImage,
#                              riscv64: /boot/vmlinux-*, an Image with an EFI
#                              stub, see docs/riscv64.md)
#   cache/ARCH/SUITE/Image     arm64, riscv64: the (decompressed if needed) Image
#   cache/ppc64el/SUITE/vmlinux  ppc64el: /boot/vmlinux-*, the ELF vmlinux
#                              (bookworm 6.1: 64 KiB pages, trixie 6.12: 4 KiB)
#   cache/ARCH/SUITE/config    the kernel's /boot/config-*
#   cache/ARCH/SUITE/version   "<package> <version>" and the uname release
#   cache/ARCH/busybox         static busybox (from busybox-static)
#   cache/ARCH/kexec-tools/    sbin/kexec, lib/<triplet>/*.so*, the dynamic
#                              loader at its PT_INTERP path; copy the tree as
#                              is into an initramfs root.
#   cache/ARCH/systemd-stub/   linux{x64,aa64}.efi.stub from bookworm's
#                              systemd-boot-efi (252): scripts/mk-uki.py turns
#                              it into a unified kernel image
#   cache/amd64/SUITE/vmlinux  the ELF vmlinux inside vmlinuz
#                              (scripts/extract-vmlinux.py)
#
# riscv64 has only trixie (it is not a release architecture of bookworm):
# the trixie kernel (linux-image-riscv64; there is no cloud flavour), and
# busybox-static from trixie. Debian ships no kexec-tools for riscv64, so
# there is none here either (rkexec is the riscv64 loader). ppc64el's
# kexec-tools comes from bookworm like the others (2.0.25; the mirror this
# runs against serves no trixie ppc64el libc6 now), whose ppc64 loader caps
# placement at 768 MiB (fine for the 2 GiB guests); there is no UKI stub
# for ppc64el (no EFI on POWER). A trixie kernel the mirror does not serve
# is taken from bookworm-backports (the same 6.12 series).
#
# All apt operations go through a PRIVATE apt root per (suite, arch) under
# cache/apt/ (own sources.list, lists, dpkg status and archive cache), so the
# system's apt sources and dpkg architectures are never touched. The mirror
# URL is taken from the system's sources. Idempotent: a fixture whose output
# already exists is skipped (no network); --refresh re-resolves everything.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${RKEXEC_CACHE:-$ROOT/cache}
ARCHES=(arm64 amd64 riscv64 ppc64el)
REFRESH=0

log() { printf 'fetch-fixtures: %s\n' "$*" >&2; }
die() { printf 'fetch-fixtures: ERROR: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case $1 in
        --arch)
            case ${2:-} in
                arm64|amd64|riscv64|ppc64el) ARCHES=("$2") ;;
                all) ARCHES=(arm64 amd64 riscv64 ppc64el) ;;
                *) die "--arch wants arm64, amd64, riscv64, ppc64el or all (got '${2:-}')" ;;
            esac
            shift 2 ;;
        --refresh) REFRESH=1; shift ;;
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
done

# --- host tools -------------------------------------------------------------
need=()
command -v apt-get >/dev/null || die "apt-get not found: this script needs a Debian-family host"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found"
command -v readelf >/dev/null || need+=(binutils)
command -v gzip >/dev/null || need+=(gzip)
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${need[*]} and not root: install them first"
    log "apt-get install ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
        || die "could not install ${need[*]}"
fi

# --- mirror discovery ---------------------------------------------------------
# shellcheck source=lib/debian-mirror.sh
. "$ROOT/scripts/lib/debian-mirror.sh"
[ -r "$KEYRING" ] || die "$KEYRING missing (apt-get install debian-archive-keyring)"

# --- private apt root -----------------------------------------------------------
# apt_priv SUITE ARCH apt-get|apt-cache ARGS...
apt_opts() {
    local d=$CACHE/apt/$1-$2
    printf '%s\n' \
        -o "Dir::Etc::SourceList=$d/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null \
        -o "Dir::State=$d/state" -o "Dir::State::status=$d/state/status" \
        -o "Dir::Cache=$d/cache" -o "APT::Architecture=$2" -o "APT::Architectures=$2" \
        -o Acquire::Languages=none -o APT::Sandbox::User=root -q
}
apt_priv() {
    local suite=$1 arch=$2 tool=$3; shift 3
    local -a opts; mapfile -t opts < <(apt_opts "$suite" "$arch")
    "$tool" "${opts[@]}" "$@"
}
UPDATED=" "
apt_setup() {  # apt_setup SUITE ARCH: write sources.list and run update once per run
    local suite=$1 arch=$2 d=$CACHE/apt/$1-$2
    case $UPDATED in *" $suite-$arch "*) return 0 ;; esac
    mkdir -p "$d/state/lists/partial" "$d/cache/archives/partial"
    touch "$d/state/status"
    case $suite in
        *-backports) echo "deb [arch=$arch signed-by=$KEYRING] $MIRROR $suite main" >"$d/sources.list" ;;
        *) cat >"$d/sources.list" <<EOF
deb [arch=$arch signed-by=$KEYRING] $MIRROR $suite main
deb [arch=$arch signed-by=$KEYRING] $MIRROR $suite-updates main
deb [arch=$arch signed-by=$KEYRING] $SECURITY $suite-security main
EOF
        ;;
    esac
    log "apt-get update ($suite, $arch) from $MIRROR"
    apt_priv "$suite" "$arch" apt-get update >"$d/update.log" 2>&1 \
        || { cat "$d/update.log" >&2; die "apt-get update for $suite/$arch failed (see above)"; }
    UPDATED+="$suite-$arch "
}

# try_download SUITE ARCH PKG: apt-get download PKG (its newest version);
# non-zero when the mirror does not serve it (a version the index names can
# 404 for a while after an update).
try_download() {
    local suite=$1 arch=$2 pkg=$3 dl=$CACHE/apt/$1-$2/debs
    mkdir -p "$dl"
    (cd "$dl" && apt_priv "$suite" "$arch" apt-get download "$pkg:$arch" >/dev/null 2>"$dl/err.log")
}

# download SUITE ARCH PKG DESTDIR: apt-get download PKG and extract it into DESTDIR.
# Prints "PKG VERSION" on stdout.
download() {
    local suite=$1 arch=$2 pkg=$3 dest=$4 dl=$CACHE/apt/$1-$2/debs
    mkdir -p "$dl" "$dest"
    try_download "$suite" "$arch" "$pkg" \
        || { cat "$dl/err.log" >&2; die "apt-get download $pkg:$arch ($suite) failed"; }
    local ver deb
    ver=$(apt_priv "$suite" "$arch" apt-cache show --no-all-versions "$pkg:$arch" | sed -n 's/^Version: //p' | head -1)
    deb=$(first "$dl/${pkg}_${ver//:/%3a}_$arch.deb")
    [ -n "$deb" ] || die "downloaded .deb for $pkg $ver not found in $dl"
    dpkg-deb -x "$deb" "$dest" || die "dpkg-deb -x $deb failed"
    echo "$pkg $ver"
}

# resolve_meta SUITE ARCH META: the versioned kernel packages META depends
# on, one per line, newest version of META first (every version the index
# lists: -security, -updates and the release can each point elsewhere).
resolve_meta() {
    local deps
    deps=$(apt_priv "$1" "$2" apt-cache show "$3:$2" 2>/dev/null \
        | sed -n 's/^Depends: //p' | tr ',' '\n' | sed 's/^ *//; s/[ (].*//' \
        | grep '^linux-image-' | awk '!seen[$0]++' || true)
    [ -n "$deps" ] || die "could not resolve the kernel package behind $3 in $1/$2"
    echo "$deps"
}

# first PATH...: the first of the given paths that exists (empty if none).
first() { local f; for f in "$@"; do [ -e "$f" ] && { echo "$f"; return 0; }; done; return 0; }

# lib_deps SUITE ARCH PKG: PKG's (Pre-)Depends that are shared-library
# packages (first alternative of each).
lib_deps() {
    apt_priv "$1" "$2" apt-cache show --no-all-versions "$3:$2" \
        | sed -n 's/^\(Pre-\)\?Depends: //p' | tr ',' '\n' | sed 's/^ *//; s/[ (:|].*//' \
        | grep -E '^(lib|zlib)' | sort -u || true
}

# fallback_suite SUITE: where the same kernel series is built too, when
# SUITE's packages are not served (trixie's 6.12 is in bookworm-backports).
fallback_suite() { [ "$1" = trixie ] && echo bookworm-backports; return 0; }

# --- fixtures ---------------------------------------------------------------------
fetch_kernel() {  # fetch_kernel SUITE ARCH
    local suite=$1 arch=$2 out=$CACHE/$2/$1
    if [ $REFRESH = 0 ] && [ -s "$out/version" ] && [ -s "$out/vmlinuz" ]; then
        log "cached: $out ($(head -1 "$out/version"))"; return 0
    fi
    apt_setup "$suite" "$arch"
    local pkg tmp pv meta=linux-image-cloud-$arch
    # riscv64 and ppc64el have no cloud flavour: the generic image is what
    # such a machine runs.
    [ "$arch" = riscv64 ] && meta=linux-image-riscv64
    [ "$arch" = ppc64el ] && meta=linux-image-powerpc64le
    # The newest kernel the mirror serves: a package the index names can
    # 404 for a while, then the one the previous version of META named,
    # then (trixie) the same kernel series built for bookworm-backports.
    local candidate from
    pkg=
    for from in "$suite" $(fallback_suite "$suite"); do
        apt_setup "$from" "$arch"
        for candidate in $(resolve_meta "$from" "$arch" "$meta"); do
            if try_download "$from" "$arch" "$candidate"; then pkg=$candidate; break 2; fi
            log "$from/$arch: $candidate is not served by the mirror now; trying the previous one"
        done
    done
    [ -n "$pkg" ] || die "no kernel package behind $meta ($suite/$arch) could be downloaded"
    log "$suite/$arch: $meta -> $pkg ($from)"
    tmp=$(mktemp -d "$CACHE/tmp.XXXXXX")
    pv=$(download "$from" "$arch" "$pkg" "$tmp")
    local vmlinuz config
    # riscv64 ships /boot/vmlinux-* (no z: not compressed), which is an
    # Image with an EFI stub.
    vmlinuz=$(first "$tmp"/boot/vmlinuz-* "$tmp"/boot/vmlinux-*)
    config=$(first "$tmp"/boot/config-*)
    [ -n "$vmlinuz" ] || die "$pkg has no /boot/vmlinuz-* or /boot/vmlinux-*"
    rm -rf "$out"; mkdir -p "$out"
    cp "$vmlinuz" "$out/vmlinuz"
    [ -n "$config" ] && cp "$config" "$out/config"
    if [ "$arch" = riscv64 ]; then
        # Documentation/arch/riscv/boot-image-header.rst: magic2 "RSC\x05"
        # at 0x38. A gzip'd Image is handled in case Debian compresses it.
        python3 - "$out/vmlinuz" "$out/Image" <<'EOF' || die "could not extract the riscv64 Image from $out/vmlinuz"
import gzip, sys
src = open(sys.argv[1], "rb").read()
img = gzip.decompress(src) if src[:2] == b"\x1f\x8b" else src
if img[0x38:0x3c] != b"RSC\x05":
    sys.exit("kernel lacks the riscv64 Image magic2 RSC\\x05 at 0x38")
open(sys.argv[2], "wb").write(img)
EOF
    elif [ "$arch" = ppc64el ]; then
        # /boot/vmlinux-*: an ELF64 little-endian vmlinux (EM_PPC64).
        python3 - "$out/vmlinuz" "$out/vmlinux" <<'EOF' || die "$out/vmlinuz is not a little-endian ppc64 vmlinux"
import struct, sys
src = open(sys.argv[1], "rb").read()
if src[:6] != b"\x7fELF\x02\x01" or struct.unpack_from("<H", src, 18)[0] != 21:
    sys.exit("not an ELF64 LE EM_PPC64 file")
open(sys.argv[2], "wb").write(src)
EOF
    elif [ "$arch" = arm64 ]; then
        # Debian's arm64 vmlinuz is in fact an uncompressed Image on both
        # bookworm and trixie; still handle a gzip'd one and an EFI zboot
        # image ("MZ" .. "zimg", payload offset/size at 8/12) in case that
        # changes.
        python3 - "$out/vmlinuz" "$out/Image" <<'EOF' || die "could not decompress $out/vmlinuz"
import gzip, struct, sys
src = open(sys.argv[1], "rb").read()
if src[:2] == b"\x1f\x8b":
    img = gzip.decompress(src)
elif src[:2] == b"MZ" and src[4:8] == b"zimg":
    off, size = struct.unpack_from("<II", src, 8)
    comp = src[24:32].rstrip(b"\0")
    if comp != b"gzip":
        sys.exit(f"EFI zboot payload compressed with {comp!r}: only gzip handled")
    img = gzip.decompress(src[off:off + size])
else:
    img = src
if img[56:60] != b"ARM\x64":
    sys.exit("decompressed kernel lacks the arm64 Image magic")
open(sys.argv[2], "wb").write(img)
EOF
    fi
    { echo "$pv"; basename "$vmlinuz" | sed 's/^vmlinu[zx]-//'; } >"$out/version"
    rm -rf "$tmp"
    log "fetched: $out ($pv)"
}

# suites_of ARCH: the Debian suites that carry ARCH (riscv64: trixie only).
suites_of() { if [ "$1" = riscv64 ]; then echo trixie; else echo bookworm trixie; fi; }

fetch_busybox() {  # fetch_busybox ARCH
    local arch=$1 out=$CACHE/$1/busybox suite=bookworm
    [ "$arch" = riscv64 ] && suite=trixie
    if [ $REFRESH = 0 ] && [ -s "$out" ]; then log "cached: $out"; return 0; fi
    apt_setup "$suite" "$arch"
    local tmp pv
    tmp=$(mktemp -d "$CACHE/tmp.XXXXXX")
    pv=$(download "$suite" "$arch" busybox-static "$tmp")
    # bookworm ships /bin/busybox, trixie (merged /usr) /usr/bin/busybox.
    local bin
    bin=$(first "$tmp/bin/busybox" "$tmp/usr/bin/busybox")
    [ -n "$bin" ] || die "busybox-static:$arch ($suite) has no /bin/busybox nor /usr/bin/busybox"
    install -m 0755 "$bin" "$out"
    echo "$pv" >"$out.version"
    rm -rf "$tmp"
    log "fetched: $out ($pv)"
}

fetch_kexec_tools() {  # fetch_kexec_tools ARCH
    local arch=$1 out=$CACHE/$1/kexec-tools triplet suite=bookworm
    case $arch in
        arm64) triplet=aarch64-linux-gnu ;;
        amd64) triplet=x86_64-linux-gnu ;;
        ppc64el) triplet=powerpc64le-linux-gnu ;;
    esac
    if [ $REFRESH = 0 ] && [ -x "$out/sbin/kexec" ] && [ -s "$out/version" ]; then
        log "cached: $out ($(head -1 "$out/version"))"; return 0
    fi
    apt_setup "$suite" "$arch"
    # Built in $tmp/out and renamed into place at the end, so a failed run
    # never leaves a half-populated tree that a later run takes as cached.
    local tmp stage final=$out
    tmp=$(mktemp -d "$CACHE/tmp.XXXXXX"); stage=$tmp/stage; out=$tmp/out
    mkdir -p "$out/sbin" "$out/lib/$triplet"
    download "$suite" "$arch" kexec-tools "$tmp/kt" >"$out/version"
    local bin
    bin=$(first "$tmp"/kt/sbin/kexec "$tmp"/kt/usr/sbin/kexec)
    [ -n "$bin" ] || die "kexec-tools:$arch has no sbin/kexec"
    cp "$bin" "$out/sbin/kexec"
    # The library packages in kexec-tools' dependency closure (bookworm:
    # libc6, zlib1g, liblzma5, and on arm64 the Xen control libraries, which
    # /sbin/kexec links). Non-library dependencies (debconf ...) are skipped;
    # libc6 also ships the dynamic loader.
    local -a todo_pkgs; local done_pkgs=" " p
    mapfile -t todo_pkgs < <(lib_deps "$suite" "$arch" kexec-tools)
    while [ ${#todo_pkgs[@]} -gt 0 ]; do
        p=${todo_pkgs[0]}; todo_pkgs=("${todo_pkgs[@]:1}")
        case $done_pkgs in *" $p "*) continue ;; esac
        done_pkgs+="$p "
        download "$suite" "$arch" "$p" "$stage" >>"$out/version"
        mapfile -t -O ${#todo_pkgs[@]} todo_pkgs < <(lib_deps "$suite" "$arch" "$p")
    done
    local deps=$done_pkgs
    # Copy the NEEDED closure of sbin/kexec (real files, under their soname).
    local todo=("$out/sbin/kexec") seen=" " f lib src
    while [ ${#todo[@]} -gt 0 ]; do
        f=${todo[0]}; todo=("${todo[@]:1}")
        for lib in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            case $seen in *" $lib "*) continue ;; esac
            seen+="$lib "
            src=$(first "$stage"/lib/"$triplet"/"$lib" "$stage"/usr/lib/"$triplet"/"$lib")
            [ -n "$src" ] || die "$lib (needed by $(basename "$f")) is in none of: $deps"
            cp -L "$src" "$out/lib/$triplet/$lib"
            todo+=("$out/lib/$triplet/$lib")
        done
    done
    # The dynamic loader, at the exact path the binary asks for.
    local interp
    interp=$(readelf -l "$out/sbin/kexec" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
    [ -n "$interp" ] || die "no PT_INTERP in sbin/kexec"
    # ppc64el's /lib64/ld64.so.2 is a symlink to an absolute path: follow
    # it inside the staged tree, not on this machine.
    local loader=$stage$interp
    if [ -L "$loader" ]; then
        local target
        target=$(readlink "$loader")
        case $target in /*) loader=$stage$target ;; *) loader=$(dirname "$loader")/$target ;; esac
    fi
    [ -e "$loader" ] || die "dynamic loader $interp not found in libc6:$arch"
    mkdir -p "$out$(dirname "$interp")"
    cp -L "$loader" "$out$interp"
    chmod 0755 "$out$interp" "$out/sbin/kexec"
    rm -rf "$final"; mv "$out" "$final"; rm -rf "$tmp"
    log "fetched: $final ($(tr '\n' ' ' <"$final/version"))"
}

fetch_systemd_stub() {  # fetch_systemd_stub ARCH
    local arch=$1 out=$CACHE/$1/systemd-stub stub
    case $arch in arm64) stub=linuxaa64.efi.stub ;; amd64) stub=linuxx64.efi.stub ;; esac
    if [ $REFRESH = 0 ] && [ -s "$out/$stub" ] && [ -s "$out/version" ]; then
        log "cached: $out/$stub ($(cat "$out/version"))"; return 0
    fi
    apt_setup bookworm "$arch"
    local tmp pv
    tmp=$(mktemp -d "$CACHE/tmp.XXXXXX")
    pv=$(download bookworm "$arch" systemd-boot-efi "$tmp")
    [ -s "$tmp/usr/lib/systemd/boot/efi/$stub" ] || die "systemd-boot-efi:$arch has no $stub"
    mkdir -p "$out"
    cp "$tmp/usr/lib/systemd/boot/efi/$stub" "$out/$stub"
    echo "$pv" >"$out/version"
    rm -rf "$tmp"
    log "fetched: $out/$stub ($pv)"
}

extract_vmlinux() {  # extract_vmlinux SUITE: amd64 only
    local d=$CACHE/amd64/$1
    if [ $REFRESH = 0 ] && [ -s "$d/vmlinux" ] && [ "$d/vmlinux" -nt "$d/vmlinuz" ]; then
        log "cached: $d/vmlinux"; return 0
    fi
    python3 "$ROOT/scripts/extract-vmlinux.py" "$d/vmlinuz" "$d/vmlinux.tmp" \
        || die "could not extract the vmlinux ELF from $d/vmlinuz"
    mv "$d/vmlinux.tmp" "$d/vmlinux"
}

mkdir -p "$CACHE"
trap 'rm -rf "$CACHE"/tmp.??????' EXIT
for arch in "${ARCHES[@]}"; do
    for s in $(suites_of "$arch"); do fetch_kernel "$s" "$arch"; done
    fetch_busybox "$arch"
    # Debian has no kexec-tools for riscv64 (nor has upstream a riscv
    # purgatory): nothing to fetch.
    [ "$arch" = riscv64 ] || fetch_kexec_tools "$arch"
    # UKI stubs (systemd-boot-efi 252) and the amd64 vmlinux ELF.
    case $arch in arm64|amd64) fetch_systemd_stub "$arch" ;; esac
    if [ "$arch" = amd64 ]; then
        extract_vmlinux bookworm
        extract_vmlinux trixie
    fi
done

log "summary:"
for arch in "${ARCHES[@]}"; do
    for s in $(suites_of "$arch"); do
        printf '  %-28s %s\n' "$arch/$s" "$(tr '\n' ' ' <"$CACHE/$arch/$s/version")" >&2
    done
    printf '  %-28s %s\n' "$arch/busybox" "$(cat "$CACHE/$arch/busybox.version")" >&2
    [ "$arch" = riscv64 ] && continue
    printf '  %-28s %s (+ %s library packages, see its version file)\n' "$arch/kexec-tools" \
        "$(head -1 "$CACHE/$arch/kexec-tools/version")" "$(($(wc -l <"$CACHE/$arch/kexec-tools/version") - 1))" >&2
done
