#!/usr/bin/env bash
# Every benchmark figure in one run, each next to its anchor measured in the
# same run (see scripts/bench.py): the hand-off against Debian's kexec-tools
# in QEMU (arm64, amd64, riscv64), the purgatory's instructions per byte,
# the loader's own work against the read+hash floor, the image sizes.
# Writes target/bench/bench.txt and bench.json. About 15 minutes here.
#
#   scripts/bench.sh [bench.py options, e.g. --boots 5 --skip handoff]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
bash scripts/fetch-fixtures.sh --arch all
echo "== building the host tools and the static guest rkexec"
cargo build --release --locked -p loader-host --bin rkexec -p test-harness --bin bench-purgatory --bin bench-load
# riscv64: static glibc (Rust ships no riscv64 musl std; .cargo/config.toml).
for t in aarch64-unknown-linux-musl x86_64-unknown-linux-musl riscv64gc-unknown-linux-gnu; do
    cargo build --release --locked --target "$t" -p loader-host --bin rkexec
done
exec python3 scripts/bench.py "$@"
