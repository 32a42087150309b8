#!/usr/bin/env bash
# Build the C loader: a static aarch64 binary for the guests (Debian's
# gcc-aarch64-linux-gnu + libc6-dev-arm64-cross, scripts/setup.sh installs
# them) and a host build (plan-only: it contains no kexec_load/reboot call).
#
#   examples/c-loader/build.sh [aarch64|host|all]     (default all)
#   examples/c-loader/build.sh purgatory OUT          copy the flat aarch64
#                                                      purgatory image to OUT
#
# Outputs: target/c-loader/aarch64/c-loader, target/c-loader/host/c-loader.
# Both with -std=c99 -Wall -Wextra -Werror: a warning fails the build.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${CLOADER_OUT:-$ROOT/target/c-loader}"
CFLAGS=(-std=c99 -Wall -Wextra -Werror -O2 -I "$ROOT/include")
SOURCES=("$HERE/cloader.c" "$HERE/fdt.c")

build_aarch64() {
    local cc=aarch64-linux-gnu-gcc
    command -v "$cc" >/dev/null \
        || { echo "c-loader build: $cc missing: run scripts/setup.sh (gcc-aarch64-linux-gnu libc6-dev-arm64-cross)" >&2; exit 2; }
    mkdir -p "$OUT/aarch64"
    "$cc" "${CFLAGS[@]}" -static -o "$OUT/aarch64/c-loader" "${SOURCES[@]}"
    # It runs in a bare busybox initramfs: no dynamic loader there.
    if readelf -l "$OUT/aarch64/c-loader" | grep -q 'Requesting program interpreter'; then
        echo "c-loader build: $OUT/aarch64/c-loader is dynamically linked" >&2; exit 2
    fi
    echo "$OUT/aarch64/c-loader"
}

build_host() {
    mkdir -p "$OUT/host"
    "${CC:-cc}" "${CFLAGS[@]}" -o "$OUT/host/c-loader" "${SOURCES[@]}"
    echo "$OUT/host/c-loader"
}

# The flat aarch64 purgatory image. The ONE place that knows where it comes
# from: today loader-host's build script leaves it in its OUT_DIR; once
# `rkexec purgatory --arch aarch64 --output FILE` is on main, this becomes
# that command.
flat_purgatory() {
    # The image rkexec embeds, as other loaders get it (docs/abi.md).
    local out=$1
    (cd "$ROOT" && cargo run --locked --release -q -p loader-host --bin rkexec -- \
        purgatory --arch aarch64 --output "$out") \
        || { echo "c-loader build: rkexec purgatory --arch aarch64 failed" >&2; exit 2; }
    echo "$out"
}

case "${1:-all}" in
    aarch64) build_aarch64 ;;
    host) build_host ;;
    all) build_aarch64; build_host ;;
    purgatory) flat_purgatory "${2:?purgatory needs an output path}" ;;
    *) echo "usage: $0 [aarch64|host|all] | purgatory OUT" >&2; exit 2 ;;
esac
