#!/usr/bin/env bash
# Set up a fresh machine and run every test: host unit tests, the
# bare-metal purgatory harness in QEMU, and the full-kexec QEMU tier with
# real Debian kernels. This is what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== purgatory builds for aarch64-unknown-none and x86_64-unknown-none (release, then the plain dev build)"
(cd purgatory && for target in aarch64-unknown-none x86_64-unknown-none; do
    cargo build --release --locked --target "$target"
    cargo build --locked --target "$target"
done)

echo "== cargo test (host units, ABI/C header, bare-metal QEMU harness)"
cargo test --locked --workspace

echo "== fuzz smoke: every loader parser and purgatory entry point, briefly (scripts/fuzz.sh)"
bash scripts/fuzz.sh --smoke

if [ -x scripts/test-guests.sh ]; then
    echo "== full-kexec QEMU tier (real Debian kernels)"
    bash scripts/test-guests.sh
fi
