#!/usr/bin/env bash
# Set up a fresh machine and run every test: host unit tests, the
# bare-metal purgatory harness in QEMU, and the full-kexec QEMU tier with
# real Debian kernels. This is what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== hygiene: cargo fmt --check, clippy (host and bare-metal targets), rustdoc"
cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo clippy --locked --target aarch64-unknown-none -p kexec-purgatory -p purgatory-arch -p test-payload -- -D warnings
cargo clippy --locked --target x86_64-unknown-none -p kexec-purgatory -p purgatory-arch -p test-payload -- -D warnings
cargo clippy --locked --target riscv64gc-unknown-none-elf -p kexec-purgatory -p purgatory-arch -p test-payload -- -D warnings
# ppc64le: a hosted triple built no_std; its flags come from the linker
# crate (the workspace's table for the triple is the guest tools'), in a
# target directory of its own so the two never rebuild each other.
ppc64le=powerpc64le-unknown-linux-gnu
ppc64le_flags=$(cargo run -q --locked -p purgatory-linker --bin purgatory-rustflags -- "$ppc64le")
CARGO_ENCODED_RUSTFLAGS=$ppc64le_flags cargo clippy --locked --target "$ppc64le" --target-dir target/purgatory-ppc64le \
    -p kexec-purgatory -p purgatory-arch -p test-payload -- -D warnings
RUSTDOCFLAGS=-Dwarnings cargo doc --locked --no-deps -p loader-host -p kexec-purgatory

echo "== purgatory builds for aarch64-unknown-none, x86_64-unknown-none, riscv64gc-unknown-none-elf and ppc64le (release, then the plain dev build)"
(cd purgatory && for target in aarch64-unknown-none x86_64-unknown-none riscv64gc-unknown-none-elf; do
    cargo build --release --locked --target "$target"
    cargo build --locked --target "$target"
done
for profile in --release ""; do
    # shellcheck disable=SC2086
    CARGO_ENCODED_RUSTFLAGS=$ppc64le_flags cargo build $profile --locked --target "$ppc64le" \
        --target-dir ../target/purgatory-ppc64le
done)

echo "== cargo test (host units, ABI/C header, bare-metal QEMU harness)"
cargo test --locked --workspace

echo "== fuzz smoke: every loader parser and purgatory entry point, briefly (scripts/fuzz.sh)"
bash scripts/fuzz.sh --smoke

echo "== packaging (docs/packaging.md): the library example, cargo install --path loader-host into a temporary root, cargo package of the purgatory and loader crates"
bash scripts/check-packaging.sh

echo "== Debian package (scripts/build-deb.sh): rkexec_*.deb for amd64, arm64, riscv64, ppc64el; fields, files, lintian"
bash scripts/build-deb.sh

echo "== rkexec plan on the real Debian kernels (fixtures fetched into cache/ first)"
bash scripts/fetch-fixtures.sh --arch all
cargo test --locked -p loader-host --test real_kernels -- --ignored

echo "== the README's demo (scripts/demo.sh: a Debian kernel kexecs another through our purgatory)"
bash scripts/demo.sh

if [ -x scripts/test-guests.sh ]; then
    echo "== full-kexec QEMU tier (real Debian kernels)"
    bash scripts/test-guests.sh
fi
