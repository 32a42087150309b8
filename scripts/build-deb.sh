#!/usr/bin/env bash
# Builds the rkexec Debian package (cargo-deb, metadata in loader-host/Cargo.toml
# [package.metadata.deb]) for each architecture, checks what it holds and runs
# lintian on it.
#
#   scripts/build-deb.sh [--arch amd64|arm64|riscv64|ppc64el|all]... [--no-lintian]
#
# `all` is amd64, arm64, riscv64 and ppc64el.
#
# Writes target/debian/rkexec_VERSION_ARCH.deb and prints their paths (one a
# line, last). The binary is static for every architecture:
#   amd64    x86_64-unknown-linux-musl       (rust-lld, .cargo/config.toml)
#   arm64    aarch64-unknown-linux-musl      (rust-lld, .cargo/config.toml)
#   riscv64  riscv64gc-unknown-linux-gnu     static glibc (riscv64-linux-gnu-gcc, .cargo/config.toml)
#   ppc64el  powerpc64le-unknown-linux-gnu   static glibc (powerpc64le-linux-gnu-gcc, .cargo/config.toml;
#            Rust's powerpc64le musl standard library is not downloadable here)
# What goes in besides the binary is generated from the host's build of the
# same sources (the amd64 one, which runs here): `rkexec --man` (installed as
# section 8: kexec(8) as `kexec --man` prints it, and rkexec(8)), `rkexec --completions bash|zsh|fish`
# (under the names rkexec and kexec: the scripts register both), and every image `rkexec purgatory
# --info` lists, written with `rkexec purgatory --arch NAME --output`.
#
# Checks, each failing the script: the package's fields (Package, Version,
# Architecture, Provides/Conflicts/Replaces kexec-tools, no Depends), its file
# list against the expected one, /usr/sbin/kexec -> rkexec, the binary's ELF
# machine and that it has no program interpreter, the man page's section, and
# lintian with no tag left but the overrides in loader-host/debian/lintian-overrides
# (each justified there).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

ALL=(amd64 arm64 riscv64 ppc64el)
ARCHES=()
LINTIAN=1
while [ $# -gt 0 ]; do
    case $1 in
        --arch) case ${2:-} in
                    all) ARCHES+=("${ALL[@]}") ;;
                    amd64|arm64|riscv64|ppc64el) ARCHES+=("$2") ;;
                    *) echo "build-deb: --arch wants amd64, arm64, riscv64, ppc64el or all" >&2; exit 2 ;;
                esac; shift 2 ;;
        --no-lintian) LINTIAN=0; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "build-deb: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[ ${#ARCHES[@]} -gt 0 ] || ARCHES=("${ALL[@]}")
log() { printf 'build-deb: %s\n' "$*" >&2; }
die() { printf 'build-deb: ERROR: %s\n' "$*" >&2; exit 1; }
command -v cargo-deb >/dev/null || die "cargo-deb missing (scripts/setup.sh installs it)"
[ $LINTIAN = 0 ] || command -v lintian >/dev/null || die "lintian missing (scripts/setup.sh installs it)"

target_of() {
    case $1 in
        amd64) echo x86_64-unknown-linux-musl ;;
        arm64) echo aarch64-unknown-linux-musl ;;
        riscv64) echo riscv64gc-unknown-linux-gnu ;;
        ppc64el) echo powerpc64le-unknown-linux-gnu ;;
    esac
}
# readelf's Machine: line for each architecture
machine_of() {
    case $1 in
        amd64) echo 'Advanced Micro Devices X86-64' ;;
        arm64) echo 'AArch64' ;;
        riscv64) echo 'RISC-V' ;;
        ppc64el) echo 'PowerPC64' ;;
    esac
}

build() {  # build ARCH: the static rkexec for ARCH
    local t; t=$(target_of "$1")
    rustup target list --installed | grep -qx "$t" || rustup target add "$t"
    cargo build --release --locked --target "$t" -p loader-host --bin rkexec
}

# --- the generated assets, from the host's build --------------------------------------
A=target/deb-assets
rm -rf "$A"; mkdir -p "$A"/{bin,man,purgatory,completions/bash,completions/zsh,completions/fish}
build amd64
HOST_RKEXEC=target/$(target_of amd64)/release/rkexec
# The man pages are section 8 (system administration, where kexec(8) is):
# the page and the directory must agree (lintian: wrong-manual-section).
# kexec(8) is what the binary prints when invoked as kexec (argv[0]).
for name in rkexec kexec; do
    (exec -a "$name" "$HOST_RKEXEC" --man) >"$A/man/$name.8"
    grep -q "^\.TH $name 8\( \|\$\)" "$A/man/$name.8" || die "$name --man: no '.TH $name 8' line"
    gzip -9n "$A/man/$name.8"
done
for sh in bash zsh fish; do
    out=$("$HOST_RKEXEC" --completions "$sh") || die "rkexec --completions $sh failed"
    [ -n "$out" ] || die "rkexec --completions $sh printed nothing"
    for name in rkexec kexec; do
        case $sh in
            bash) printf '%s\n' "$out" >"$A/completions/bash/$name" ;;
            zsh) printf '%s\n' "$out" >"$A/completions/zsh/_$name" ;;
            fish) printf '%s\n' "$out" >"$A/completions/fish/$name.fish" ;;
        esac
    done
done
mapfile -t IMAGES < <("$HOST_RKEXEC" purgatory --info | sed -n 's/^arch //p')
[ ${#IMAGES[@]} -gt 0 ] || die "rkexec purgatory --info lists no image"
for img in "${IMAGES[@]}"; do
    "$HOST_RKEXEC" purgatory --arch "$img" --output "$A/purgatory/purgatory-$img.bin"
done
log "assets: man page, completions (bash zsh fish), purgatory images: ${IMAGES[*]}"

# GNU strip for each architecture (binutils, and the cross binutils the
# cross compilers of scripts/setup.sh bring); llvm-strip refuses riscv64's
# static glibc binary ("Link field value 26 in section .rela.dyn is not a
# symbol table").
strip_of() {
    case $1 in
        amd64) echo strip ;;
        arm64) echo aarch64-linux-gnu-strip ;;
        riscv64) echo riscv64-linux-gnu-strip ;;
        ppc64el) echo powerpc64le-linux-gnu-strip ;;
    esac
}

expected_files() {  # the package's file list, sorted (dpkg-deb -c names, without ./)
    {
        printf '%s\n' usr/sbin/rkexec usr/sbin/kexec usr/share/man/man8/rkexec.8.gz usr/share/man/man8/kexec.8.gz \
            usr/share/bash-completion/completions/rkexec usr/share/bash-completion/completions/kexec \
            usr/share/zsh/vendor-completions/_rkexec usr/share/zsh/vendor-completions/_kexec \
            usr/share/fish/vendor_completions.d/rkexec.fish usr/share/fish/vendor_completions.d/kexec.fish \
            usr/include/kexec_purgatory.h usr/share/doc/rkexec/abi.md usr/share/doc/rkexec/copyright \
            usr/share/doc/rkexec/changelog.Debian.gz usr/share/lintian/overrides/rkexec
        for img in "${IMAGES[@]}"; do echo "usr/lib/rkexec/purgatory-$img.bin"; done
    } | sort
}

DEBS=()
EPOCH=$(date -d "$(sed -n 's/^ -- .*>  //p' loader-host/debian/changelog | head -1)" +%s) \
    || die "no date in loader-host/debian/changelog's first entry"
for arch in "${ARCHES[@]}"; do
    t=$(target_of "$arch")
    log "== $arch ($t)"
    build "$arch"
    bin=target/$t/release/rkexec
    if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
        die "$bin is dynamically linked"
    fi
    readelf -h "$bin" | grep -q "Machine: *$(machine_of "$arch")" || die "$bin is not a $(machine_of "$arch") ELF"
    cp "$bin" "$A/bin/rkexec"
    command -v "$(strip_of "$arch")" >/dev/null || die "$(strip_of "$arch") missing (scripts/setup.sh)"
    "$(strip_of "$arch")" --strip-all --remove-section=.comment --remove-section=.note "$A/bin/rkexec"  # as dh_strip
    out=$(cargo deb -p loader-host --target "$t" --no-build --no-strip --locked 2>&1) \
        || { echo "$out" >&2; die "cargo deb failed for $arch"; }
    deb=$(echo "$out" | grep -o '/[^ ]*\.deb$' | tail -1)
    [ -f "$deb" ] || { echo "$out" >&2; die "cargo deb printed no .deb path for $arch"; }
    case $deb in *_"$arch".deb) ;; *) die "$deb is not an $arch package" ;; esac
    # Two fix-ups cargo-deb 3.8 leaves to us, then dpkg-deb rebuilds the
    # archive: it writes no DEBIAN/md5sums (debsums checks installed files
    # against it), and an empty `Depends:` field when there is nothing to
    # depend on (a static binary; lintian: empty-field).
    x=target/debian/unpack-$arch
    rm -rf "$x"; dpkg-deb -R "$deb" "$x"
    sed -i '/^Depends: *$/d' "$x/DEBIAN/control"
    (cd "$x" && find usr -type f -print0 | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
    chmod 0644 "$x/DEBIAN/md5sums"
    # Reproducible: every timestamp is the changelog's (as cargo-deb's own),
    # so the same sources give the same .deb (the systemd cells' images are
    # cached by its SHA-256).
    find "$x" -exec touch -h -d "@$EPOCH" {} +
    SOURCE_DATE_EPOCH=$EPOCH dpkg-deb --root-owner-group -Zxz -b "$x" "$deb" >/dev/null
    rm -rf "$x"

    # The control fields.
    field() { dpkg-deb -f "$deb" "$1"; }
    [ "$(field Package)" = rkexec ] || die "$deb: Package is '$(field Package)'"
    [ "$(field Architecture)" = "$arch" ] || die "$deb: Architecture is '$(field Architecture)'"
    for f in Provides Conflicts Replaces; do
        field "$f" | grep -q '^kexec-tools\b' || die "$deb: $f is '$(field "$f")', not kexec-tools"
    done
    [ -z "$(field Depends)" ] || die "$deb: Depends '$(field Depends)' (the binary is static)"
    # The files.
    listing=$(dpkg-deb -c "$deb")
    got=$(awk '$1 !~ /^d/ {print $6}' <<<"$listing" | sed 's:^\./::' | sort)
    if [ "$got" != "$(expected_files)" ]; then
        diff <(expected_files) <(echo "$got") >&2 || true
        die "$deb: the file list differs from the expected one (< expected, > packaged)"
    fi
    grep -q ' \./usr/sbin/kexec -> rkexec$' <<<"$listing" || die "$deb: /usr/sbin/kexec is not a symlink to rkexec"
    if [ $LINTIAN = 1 ]; then
        # Every tag not overridden fails (lintian exits non-zero on errors
        # only; --fail-on warning,info,pedantic makes the rest count too).
        # (--show-overrides would make the overridden ones count: the
        # verdict is the run without it, the log the run with it.)
        if ! lintian --fail-on error,warning,info,pedantic --display-level '>=pedantic' "$deb" >&2; then
            die "lintian: $deb has tags that are not overridden (above)"
        fi
        lintian --display-level '>=pedantic' --show-overrides "$deb" >"target/debian/lintian-$arch.txt" 2>&1 || true
        log "lintian $arch: clean ($(grep -c '^O: ' "target/debian/lintian-$arch.txt" || true) overridden tag(s), see loader-host/debian/lintian-overrides)"
    fi
    case $deb in /*) ;; *) deb=$ROOT/$deb ;; esac
    DEBS+=("$deb")
done
printf '%s\n' "${DEBS[@]}"
