#!/usr/bin/env bash
# Full-kexec QEMU tier: real Debian arm64 kernels kexec real Debian kernels
# with our loader (rkexec + purgatory), in QEMU guests only.
#
#   scripts/test-guests.sh [kexec_matrix.py args, e.g. --cells el1,trixie -v]
#
# 1. fetches the fixtures (cached under cache/; no network when present),
# 2. builds the static guest-side rkexec and vmcore-check (the kdump cells'
#    /proc/vmcore inspector) for aarch64-unknown-linux-musl,
# 3. runs tests/guest/kexec_matrix.py --loader rkexec (incl. the kdump cells).
# Exit code = the matrix's (0 all cells passed, 1 a cell failed, 2 setup).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== fixtures (arm64)"
bash scripts/fetch-fixtures.sh --arch arm64

echo "== rkexec + vmcore-check (static, aarch64-unknown-linux-musl)"
# scripts/setup.sh adds the target; do it here too so this script stands alone.
if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-musl; then
    rustup target add aarch64-unknown-linux-musl
fi
# .cargo/config.toml links this target with rust-lld (no cross gcc needed).
grep -q '^\[target\.aarch64-unknown-linux-musl\]' .cargo/config.toml \
    || { echo "test-guests: .cargo/config.toml lacks [target.aarch64-unknown-linux-musl] linker = \"rust-lld\"" >&2; exit 2; }
cargo build --release --locked --target aarch64-unknown-linux-musl -p loader-host --bin rkexec
cargo build --release --locked --target aarch64-unknown-linux-musl -p guest-tools --bin vmcore-check
RKEXEC=target/aarch64-unknown-linux-musl/release/rkexec
VMCORE_CHECK=target/aarch64-unknown-linux-musl/release/vmcore-check
for bin in "$RKEXEC" "$VMCORE_CHECK"; do
    [ -x "$bin" ] || { echo "test-guests: $bin was not built" >&2; exit 2; }
    # They run in bare busybox initramfses: they must not need a dynamic loader.
    if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
        echo "test-guests: $bin is dynamically linked; the guest needs a static binary" >&2; exit 2
    fi
done

echo "== full-kexec matrix (QEMU, arm64)"
rc=0
python3 tests/guest/kexec_matrix.py --loader rkexec --rkexec "$RKEXEC" --vmcore-check "$VMCORE_CHECK" "$@" || rc=$?
exit $rc
