#!/usr/bin/env bash
# The main job, on a fresh machine: set up (Rust targets, QEMU, Debian
# fixtures in cache/), build the static arm64 rkexec, then show in QEMU a
# Debian arm64 kernel kexec'ing another through our verifying purgatory.
# Ends with a one-line verdict; exits 0 when kernel 2 really booted.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
bash scripts/fetch-fixtures.sh --arch arm64
echo "== building the static arm64 rkexec (the loader kernel 1 runs)"
cargo build --release --locked --target aarch64-unknown-linux-musl -p loader-host --bin rkexec
echo "== demo (QEMU TCG; about a minute)"
exec python3 scripts/demo.py
