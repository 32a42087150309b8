#!/usr/bin/env bash
# Every benchmark figure in one run, each next to its anchor measured in the
# same run (see scripts/bench.py): the hand-off against Debian's kexec-tools
# in QEMU (arm64, amd64, ppc64el; riscv64 against rkexec -i), the kdump path
# (panic -> capture kernel) against kexec-tools -p (arm64, amd64, ppc64el),
# the purgatory's instructions per byte, the loader's own work against the
# read+hash floor, the image sizes.
# Writes target/bench/bench.txt and bench.json. About 13 minutes here
# (2 cores; the ppc64el guests are the slow ones).
#
#   scripts/bench.sh [bench.py options, e.g. --boots 5 --skip handoff,kdump]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
bash scripts/fetch-fixtures.sh --arch all
echo "== building the host tools and the static guest rkexec + vmcore-check"
cargo build --release --locked -p loader-host --bin rkexec -p test-harness --bin bench-purgatory --bin bench-load
# Every guest architecture's target (tests/guest/guest_arch.py): musl on
# arm64 and amd64, static glibc on riscv64 and ppc64el (.cargo/config.toml).
mapfile -t TARGETS < <(python3 -B -c '
import sys; sys.path.insert(0, "tests/guest")
import guest_arch
for a in guest_arch.ARCHES.values():
    print(a.guest_target)')
for t in "${TARGETS[@]}"; do
    cargo build --release --locked --target "$t" -p loader-host --bin rkexec -p guest-tools --bin vmcore-check
done
exec python3 scripts/bench.py "$@"
