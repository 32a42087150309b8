#!/usr/bin/env bash
# Installs everything a fresh machine (Rust toolchain, gcc, python only) needs to
# build, test and demo the project. Idempotent; safe to re-run.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }

# Rust targets: RUSTUP_AUTO_INSTALL=0 on CI, so add them explicitly.
log "rustup targets and components"
# riscv64's guest tools are static glibc binaries (riscv64gc-unknown-linux-gnu):
# Rust ships no riscv64gc-unknown-linux-musl standard library (.cargo/config.toml).
# ppc64le: the purgatory is built no_std for powerpc64le-unknown-linux-gnu
# (Rust has no bare-metal powerpc64le target), the guest tools static glibc
# for the same triple (no powerpc64le musl standard library here).
rustup target add aarch64-unknown-none x86_64-unknown-none \
    riscv64gc-unknown-none-elf aarch64-unknown-linux-musl x86_64-unknown-linux-musl \
    riscv64gc-unknown-linux-gnu powerpc64le-unknown-linux-gnu >/dev/null
rustup component add rust-src llvm-tools rustfmt clippy >/dev/null

# System packages. --no-install-recommends: a plain install of qemu-system-*
# conflicts with the preinstalled qemu-utils.
need_pkgs=()
command -v qemu-system-aarch64 >/dev/null || need_pkgs+=(qemu-system-arm)
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
# qemu-system-riscv64 is in qemu-system-misc. `-M virt -bios default` loads
# OpenSBI's fw_dynamic, which qemu-system-data ships (docs/riscv64.md).
command -v qemu-system-riscv64 >/dev/null || need_pkgs+=(qemu-system-misc)
# qemu-system-ppc64 (-M pseries,x-vof=on: QEMU's vof.bin is in
# qemu-system-data).
command -v qemu-system-ppc64 >/dev/null || need_pkgs+=(qemu-system-ppc)
[ -e /usr/share/qemu/vof.bin ] || need_pkgs+=(qemu-system-data)
[ -e /usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.bin ] || need_pkgs+=(qemu-system-data)
command -v cpio >/dev/null || need_pkgs+=(cpio)
command -v zstd >/dev/null || need_pkgs+=(zstd)
# extract-vmlinux.py: bookworm's amd64 kernel is lz4-compressed; mk-uki.py: objcopy.
command -v lz4 >/dev/null || need_pkgs+=(lz4)
command -v objcopy >/dev/null || need_pkgs+=(binutils)
command -v dtc >/dev/null || need_pkgs+=(device-tree-compiler)
[ -e /usr/share/qemu/efi-virtio.rom ] || need_pkgs+=(ipxe-qemu)
# examples/c-loader: the C loader, static for the arm64 guests.
command -v aarch64-linux-gnu-gcc >/dev/null || need_pkgs+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.a ] || need_pkgs+=(libc6-dev-arm64-cross)
# The riscv64 guest tools: the cross gcc links them statically against glibc.
command -v riscv64-linux-gnu-gcc >/dev/null || need_pkgs+=(gcc-riscv64-linux-gnu)
[ -e /usr/riscv64-linux-gnu/lib/libc.a ] || need_pkgs+=(libc6-dev-riscv64-cross)
# The ppc64le guest tools, likewise.
command -v powerpc64le-linux-gnu-gcc >/dev/null || need_pkgs+=(gcc-powerpc64le-linux-gnu)
[ -e /usr/powerpc64le-linux-gnu/lib/libc.a ] || need_pkgs+=(libc6-dev-ppc64el-cross)
# The Debian package (scripts/build-deb.sh): lintian checks the packages
# (ppc64el's static rkexec is linked by the cross gcc above).
command -v lintian >/dev/null || need_pkgs+=(lintian)
# The systemd cells' Debian images (scripts/mk-systemd-image.sh): mmdebstrap,
# and qemu-user for the arm64 maintainer scripts (arch-test: mmdebstrap's
# check that the foreign architecture runs).
command -v mmdebstrap >/dev/null || need_pkgs+=(mmdebstrap)
command -v arch-test >/dev/null || need_pkgs+=(arch-test)
command -v qemu-aarch64-static >/dev/null || need_pkgs+=(qemu-user-static)
command -v mke2fs >/dev/null || need_pkgs+=(e2fsprogs)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "apt-get install ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
[ -e /usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.bin ] \
    || { log "ERROR: OpenSBI fw_dynamic missing (qemu-system-data): -M virt -bios default cannot boot"; exit 1; }
# scripts/fuzz.sh: cargo-fuzz (libFuzzer) drives the fuzz targets with the
# nightly toolchain; the tool itself builds with the default one.
if ! command -v cargo-fuzz >/dev/null; then
    log "cargo install cargo-fuzz"
    cargo install -q cargo-fuzz --locked --version 0.13.2
fi
# scripts/build-deb.sh: cargo-deb builds the .deb from loader-host's metadata.
if ! command -v cargo-deb >/dev/null || [ "$(cargo-deb --version 2>/dev/null | awk '{print $NF}')" != 3.8.0 ]; then
    log "cargo install cargo-deb"
    cargo install -q --locked cargo-deb --version 3.8.0
fi
log "done"
