#!/usr/bin/env bash
# Full-kexec QEMU tier: real Debian kernels kexec real Debian kernels with our
# loader (rkexec + purgatory), in QEMU guests only: first the arm64 matrix
# (tests/guest/kexec_matrix.py), then the amd64 one (kexec_matrix_x86.py).
#
#   scripts/test-guests.sh [kexec_matrix.py args, e.g. --cells el1,trixie -v]
#
# Extra arguments go to the arm64 matrix only (its cell names are arm64's);
# RKEXEC_X86_ARGS (e.g. "--cells x86-load -v") is split into the amd64 one's.
#
# 1. fetches the fixtures for arm64, amd64 and riscv64 (cached under cache/;
#    no network when present),
# 2. builds the static guest-side rkexec and vmcore-check (the kdump cells'
#    /proc/vmcore inspector) for aarch64- and x86_64-unknown-linux-musl and
#    riscv64gc-unknown-linux-gnu (static glibc),
# 3. runs tests/guest/kexec_matrix.py --loader rkexec (incl. the kdump
#    cells), then tests/guest/kexec_matrix_x86.py --loader rkexec, the crash
#    hotplug scenarios, tests/guest/c_loader_cells.py (the C loader of
#    examples/c-loader), the drop-in cells and the riscv64 cells
#    (tests/guest/kexec_riscv64.py: kexec with Zknh, kdump); each runs even
#    if an earlier one failed.
# Exit code: 0 when everything passed; otherwise the first non-zero of
# (arm64, amd64, crash hotplug, c-loader, drop-in, riscv64) (1 a cell
# failed, 2 setup).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== fixtures (arm64, amd64, riscv64)"
bash scripts/fetch-fixtures.sh --arch all

# scripts/setup.sh adds the targets; do it here too so this script stands alone.
# .cargo/config.toml links them with rust-lld (no cross gcc needed).
static_bins() {  # static_bins TARGET: build rkexec + vmcore-check for TARGET, check they are static
    local t=$1
    echo "== rkexec + vmcore-check (static, $t)"
    if ! rustup target list --installed 2>/dev/null | grep -qx "$t"; then
        rustup target add "$t"
    fi
    grep -q "^\[target\.$t\]" .cargo/config.toml \
        || { echo "test-guests: .cargo/config.toml lacks [target.$t] linker = \"rust-lld\"" >&2; exit 2; }
    cargo build --release --locked --target "$t" -p loader-host --bin rkexec
    cargo build --release --locked --target "$t" -p guest-tools --bin vmcore-check
    local bin
    for bin in "target/$t/release/rkexec" "target/$t/release/vmcore-check"; do
        [ -x "$bin" ] || { echo "test-guests: $bin was not built" >&2; exit 2; }
        # They run in bare busybox initramfses: they must not need a dynamic loader.
        if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
            echo "test-guests: $bin is dynamically linked; the guest needs a static binary" >&2; exit 2
        fi
    done
}
static_bins aarch64-unknown-linux-musl
static_bins x86_64-unknown-linux-musl
# riscv64: static glibc (Rust ships no riscv64 musl std; .cargo/config.toml).
static_bins riscv64gc-unknown-linux-gnu
A64=target/aarch64-unknown-linux-musl/release
X64=target/x86_64-unknown-linux-musl/release
RV64=target/riscv64gc-unknown-linux-gnu/release

echo "== full-kexec matrix (QEMU, arm64)"
rc_arm64=0
python3 tests/guest/kexec_matrix.py --loader rkexec --rkexec "$A64/rkexec" --vmcore-check "$A64/vmcore-check" "$@" \
    || rc_arm64=$?

echo "== full-kexec matrix (QEMU, amd64)"
rc_amd64=0
# shellcheck disable=SC2086  # RKEXEC_X86_ARGS is a word list on purpose
python3 tests/guest/kexec_matrix_x86.py --loader rkexec --rkexec "$X64/rkexec" --vmcore-check "$X64/vmcore-check" \
    ${RKEXEC_X86_ARGS:-} || rc_amd64=$?

echo "== crash hotplug end to end (QEMU, amd64)"
rc_hotplug=0
python3 tests/guest/crash_hotplug_x86.py --rkexec "$X64/rkexec" --vmcore-check "$X64/vmcore-check" || rc_hotplug=$?

echo "== C loader (examples/c-loader) through our purgatory (QEMU, arm64)"
rc_cloader=0
python3 tests/guest/c_loader_cells.py || rc_cloader=$?

echo "== rkexec as /sbin/kexec with the callers' argv; UKI and vmlinux ELF kernels (QEMU, amd64 + arm64)"
rc_dropin=0
python3 tests/guest/dropin_cells.py || rc_dropin=$?

echo "== riscv64 cells: kexec (Zknh) and kdump (QEMU, trixie riscv64, both in parallel)"
rc_riscv64=0
python3 tests/guest/kexec_riscv64.py --rkexec "$RV64/rkexec" --vmcore-check "$RV64/vmcore-check" --jobs 2 \
    || rc_riscv64=$?

echo "== guest tier: arm64 matrix rc=$rc_arm64, amd64 matrix rc=$rc_amd64, crash hotplug rc=$rc_hotplug, c-loader rc=$rc_cloader, drop-in rc=$rc_dropin, riscv64 rc=$rc_riscv64"
if [ "$rc_arm64" -ne 0 ]; then exit "$rc_arm64"; fi
if [ "$rc_amd64" -ne 0 ]; then exit "$rc_amd64"; fi
if [ "$rc_hotplug" -ne 0 ]; then exit "$rc_hotplug"; fi
if [ "$rc_cloader" -ne 0 ]; then exit "$rc_cloader"; fi
if [ "$rc_dropin" -ne 0 ]; then exit "$rc_dropin"; fi
exit "$rc_riscv64"
