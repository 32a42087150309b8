#!/usr/bin/env bash
# Set up a fresh machine and run every test: host unit tests, the
# bare-metal purgatory harness in QEMU, and the full-kexec QEMU tier with
# real Debian kernels. This is what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== purgatory builds for aarch64-unknown-none, x86_64-unknown-none and riscv64gc-unknown-none-elf (release, then the plain dev build but for riscv64)"
(cd purgatory && for target in aarch64-unknown-none x86_64-unknown-none; do
    cargo build --release --locked --target "$target"
    cargo build --locked --target "$target"
done
# riscv64: release only. The dev build does not link yet: without LTO the
# prebuilt non-PIC `core` brings R_RISCV_64 data relocations into the PIE.
cargo build --release --locked --target riscv64gc-unknown-none-elf)

echo "== cargo test (host units, ABI/C header, bare-metal QEMU harness)"
cargo test --locked --workspace

if [ -x scripts/test-guests.sh ]; then
    echo "== full-kexec QEMU tier (real Debian kernels)"
    bash scripts/test-guests.sh
fi
