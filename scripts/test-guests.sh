#!/usr/bin/env bash
# Full-kexec QEMU tier: real Debian kernels kexec real Debian kernels with our
# loader (rkexec + purgatory), in QEMU guests only, on every architecture of
# tests/guest/guest_arch.py (arm64, amd64, riscv64), in one run of the one driver
# (tests/guest/kexec_matrix.py, incl. the amd64 crash-hotplug cells).
#
#   scripts/test-guests.sh [kexec_matrix.py args, e.g. --cells el1,x86-kdump -v, --arch amd64]
#
# 1. fetches the fixtures of each architecture (cached under $RKEXEC_CACHE,
#    default cache/; no network when present),
# 2. builds the static guest-side rkexec, vmcore-check (the crash cells'
#    /proc/vmcore inspector) and fdt-edit (a DTB edit as a boot loader makes
#    it) for each architecture's guest target (musl, or static glibc on
#    riscv64 and ppc64el),
# 3. builds the rkexec .deb for amd64 and arm64 (scripts/build-deb.sh): the
#    systemd cells build their Debian images around it
#    (scripts/mk-systemd-image.sh, cached),
# 4. runs the judges' host tests (tests/guest/test_judges.py, no QEMU),
# 5. runs tests/guest/kexec_matrix.py --loader rkexec --jobs 2 over the whole
#    grid (extra arguments go to it).
# Prints the time of each step. Exit code: the matrix's (0 every cell passed,
# 1 a cell failed, 2 setup).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECONDS=0
step_t=0
took() { echo "== $1: $((SECONDS - step_t)) s"; step_t=$SECONDS; }

# arch name and guest target of every profile, one "NAME TARGET" per line
mapfile -t PROFILES < <(python3 -B -c '
import sys; sys.path.insert(0, "tests/guest")
import guest_arch
for a in guest_arch.ARCHES.values():
    print(a.name, a.guest_target)')
[ ${#PROFILES[@]} -gt 0 ] || { echo "test-guests: no architecture profiles in tests/guest/guest_arch.py" >&2; exit 2; }

for p in "${PROFILES[@]}"; do
    arch=${p%% *}
    echo "== fixtures ($arch)"
    bash scripts/fetch-fixtures.sh --arch "$arch"
done
took "fixtures"

# scripts/setup.sh adds the targets; do it here too so this script stands alone.
# .cargo/config.toml links them with rust-lld (no cross gcc needed).
static_bins() {  # static_bins TARGET: build rkexec + the guest tools for TARGET, check they are static
    local t=$1
    echo "== rkexec + vmcore-check + fdt-edit (static, $t)"
    if ! rustup target list --installed 2>/dev/null | grep -qx "$t"; then
        rustup target add "$t"
    fi
    grep -q "^\[target\.$t\]" .cargo/config.toml \
        || { echo "test-guests: .cargo/config.toml has no [target.$t] (its linker)" >&2; exit 2; }
    cargo build --release --locked --target "$t" -p loader-host -p guest-tools --bin rkexec --bin vmcore-check --bin fdt-edit
    local bin
    for bin in "target/$t/release/rkexec" "target/$t/release/vmcore-check" "target/$t/release/fdt-edit"; do
        [ -x "$bin" ] || { echo "test-guests: $bin was not built" >&2; exit 2; }
        # They run in bare busybox initramfses: they must not need a dynamic loader.
        if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
            echo "test-guests: $bin is dynamically linked; the guest needs a static binary" >&2; exit 2
        fi
    done
}
for p in "${PROFILES[@]}"; do
    static_bins "${p#* }"
done
took "static guest tools"

# The systemd cells (tests/guest/systemd_cells.py) install the rkexec .deb in
# their Debian images (scripts/mk-systemd-image.sh, cached under the cache):
# build it for their architectures (lintian runs in scripts/test.sh's
# packaging step).
echo "== rkexec .deb (amd64, arm64) for the systemd cells"
bash scripts/build-deb.sh --arch amd64 --arch arm64 --no-lintian >/dev/null
took "rkexec .deb"

echo "== judges and contracts (host, no QEMU)"
python3 tests/guest/test_judges.py || { echo "test-guests: the judges' own tests failed" >&2; exit 1; }
took "judge tests"

echo "== full-kexec matrix (QEMU: $(printf '%s ' "${PROFILES[@]%% *}"))"
rc=0
python3 tests/guest/kexec_matrix.py --loader rkexec --jobs 2 "$@" || rc=$?
took "full-kexec matrix"
echo "== guest tier: rc=$rc, ${SECONDS} s in all"
exit "$rc"
