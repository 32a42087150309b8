#!/usr/bin/env bash
# Packaging checks (docs/packaging.md), each timed:
#  1. the library example: plan_from_fixtures plans a load from the fixture
#     /proc and /sys trees through loader_host's one entry point;
#  2. `cargo install --locked --path loader-host` into a temporary --root
#     (the workspace's target/release is reused, as cargo does for --path):
#     the installed rkexec prints its images' headers and plans a load of a
#     synthetic Image on the fixture trees;
#  3. `cargo package` of kexec-purgatory + purgatory-arch + purgatory-linker
#     (the link: linker script, settings, nested build) and of loader-host,
#     with cargo's verification build: loader-host's build script builds the
#     purgatory from the packaged crates; the images that build embedded
#     must be byte-identical to the installed rkexec's.
# Nothing here loads a kernel: `plan` never reaches a kexec system call.
set -euo pipefail
cd "$(dirname "$0")/.."

FIXTURES=loader-host/tests/fixtures/virt-arm64
PKG_TARGET=target/package-check
CRATES=(purgatory-linker purgatory-arch kexec-purgatory loader-host)
PKG_ARGS=()
for c in "${CRATES[@]}"; do PKG_ARGS+=(-p "$c"); done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "check-packaging: FAIL: $*" >&2; exit 1; }
timed() {
    local name=$1 t0=$SECONDS
    shift
    "$@"
    echo "-- $name: $((SECONDS - t0)) s"
}
expect() { # FILE PATTERN WHAT
    grep -Eq -- "$2" "$1" || { cat "$1" >&2; fail "$3"; }
}

example() {
    cargo run --locked --quiet --example plan_from_fixtures -p loader-host >"$tmp/example.txt"
    cat "$tmp/example.txt"
    expect "$tmp/example.txt" '^rkexec plan \(arm64' "example: no arm64 plan table"
    expect "$tmp/example.txt" '^ 0  kernel +0x40000000 .* 8\.0 MiB' "example: kernel row"
    expect "$tmp/example.txt" '^ 1  dtb .* generated DTB$' "example: dtb row"
    expect "$tmp/example.txt" '^ 2  purgatory .* self +embedded purgatory$' "example: purgatory row"
    expect "$tmp/example.txt" '^3 kexec segments for arm64' "example: its own look at the Plan"
}

# The images the loader embeds (linker/src/settings.rs PURGATORY_IMAGES).
PURGATORY_ARCHES="aarch64 x86_64 riscv64 ppc64le"

install() {
    cargo install --locked --quiet --path loader-host --root "$tmp/root"
    local rkexec=$tmp/root/bin/rkexec
    [ -x "$rkexec" ] || fail "cargo install left no $rkexec"
    "$rkexec" purgatory --info >"$tmp/info.txt"
    for arch in $PURGATORY_ARCHES; do
        expect "$tmp/info.txt" "^arch $arch$" "purgatory --info: no $arch image"
        "$rkexec" purgatory --arch "$arch" --output "$tmp/installed-$arch.bin"
        "$rkexec" purgatory --arch "$arch" --elf --output "$tmp/installed-$arch.elf"
    done
    [ "$(grep -c '^abi_version 1$' "$tmp/info.txt")" = "$(echo $PURGATORY_ARCHES | wc -w)" ] ||
        fail "purgatory --info: not one abi_version 1 per image ($PURGATORY_ARCHES)"
    # A synthetic arm64 Image (booting.rst header: image_size 8 MiB, 4K
    # pages, magic ARM\x64 at 0x38).
    python3 - "$tmp/Image" <<'EOF'
import struct, sys
img = bytearray(1 << 20)
struct.pack_into("<QQ", img, 16, 8 << 20, 0b0010)
img[0x38:0x3c] = b"ARM\x64"
open(sys.argv[1], "wb").write(img)
EOF
    "$rkexec" plan "$tmp/Image" --append "console=ttyAMA0" \
        --proc-root "$FIXTURES/proc" --sys-root "$FIXTURES/sys" >"$tmp/plan.txt"
    cat "$tmp/plan.txt"
    expect "$tmp/plan.txt" '^ 0  kernel .* 8\.0 MiB' "installed rkexec plan: kernel row"
    expect "$tmp/plan.txt" '^ 2  purgatory .* self ' "installed rkexec plan: purgatory row"
    expect "$tmp/plan.txt" '^command line: console=ttyAMA0$' "installed rkexec plan: command line"
}

# Cargo treats a registry crate of an unchanged version as unchanged (its
# unpacked sources in CARGO_HOME and its artifacts are reused), and the
# packages verified here keep their version while their sources change: the
# unpacked copies of our crates go first, from every local registry cargo
# package made (CARGO_HOME/registry/src/-<hash>, the hash of the package
# directory's path, so a fresh clone at a path used before meets the old
# copies), then our crates' artifacts.
clean_previous_package() {
    local cargo_home=${CARGO_HOME:-$HOME/.cargo} dir c
    for dir in "$cargo_home"/registry/src/-*/; do
        [ -d "$dir" ] || continue
        for c in "${CRATES[@]}"; do
            rm -rf "$dir$c"-[0-9]*
        done
    done
    if [ -d "$PKG_TARGET" ]; then
        cargo clean --quiet --target-dir "$PKG_TARGET" "${PKG_ARGS[@]}"
    fi
}

package() {
    local cargo_home=${CARGO_HOME:-$HOME/.cargo} out root
    for out in "$PKG_TARGET"/debug/build/kexec-purgatory-*/output; do
        [ -f "$out" ] || continue
        root=$(sed -n 's/^cargo::metadata=root=//p' "$out")
        case "$root" in
        "$cargo_home"/registry/src/-*/kexec-purgatory-*) rm -rf "$(dirname "$root")" ;;
        esac
    done
    if [ -d "$PKG_TARGET" ]; then
        cargo clean --quiet --target-dir "$PKG_TARGET" "${PKG_ARGS[@]}"
    fi
}

package() {
    clean_previous_package
    # --allow-dirty: the check is that the crates build from their
    # packages, also on a working tree with uncommitted changes.
    if ! cargo package --locked --allow-dirty --target-dir "$PKG_TARGET" "${PKG_ARGS[@]}" >"$tmp/package.log" 2>&1; then
        cat "$tmp/package.log" >&2
        fail "cargo package"
    fi
    grep -E '^ *(Packag|Verifying|Finished)' "$tmp/package.log"
    for c in "${CRATES[@]}"; do
        ls "$PKG_TARGET"/package/"$c"-*.crate >/dev/null 2>&1 || fail "no $c .crate"
    done
    # The verification build of loader-host: its OUT_DIR holds the scratch
    # workspace purgatory-linker made from the packaged crates.
    local scratch
    scratch=$(ls -d "$PKG_TARGET"/debug/build/loader-host-*/out/bare-metal-workspace 2>/dev/null) ||
        fail "the loader-host verification build made no scratch workspace (did it build in the repository?)"
    [ "$(echo "$scratch" | wc -l)" = 1 ] || fail "more than one scratch workspace: $scratch"
    local out
    out=$(dirname "$scratch")
    # It built what was packaged, not a stale copy.
    diff -r --exclude=target --exclude=.cargo-ok "$PKG_TARGET"/package/kexec-purgatory-*[0-9]/ "$scratch/purgatory" ||
        fail "the verification built stale kexec-purgatory sources"
    diff -r --exclude=target --exclude=.cargo-ok "$PKG_TARGET"/package/purgatory-arch-*[0-9]/ "$scratch/arch" ||
        fail "the verification built stale purgatory-arch sources"
    diff -r --exclude=target --exclude=.cargo-ok "$PKG_TARGET"/package/purgatory-linker-*[0-9]/ "$scratch/linker" ||
        fail "the verification built stale purgatory-linker sources"
    [ -f "$PKG_TARGET"/package/purgatory-linker-*[0-9]/purgatory.ld ] ||
        fail "the packaged purgatory-linker has no purgatory.ld"
    for arch in $PURGATORY_ARCHES; do
        for kind in bin elf; do
            cmp "$out/purgatory-$arch.$kind" "$tmp/installed-$arch.$kind" ||
                fail "purgatory-$arch.$kind built from the packages differs from the workspace's"
            echo "purgatory-$arch.$kind: $(sha256sum <"$tmp/installed-$arch.$kind" | cut -c1-16)… the same from the packages"
        done
    done
}

echo "-- the library example (loader-host/examples/plan_from_fixtures.rs)"
timed "example" example
echo "-- cargo install --locked --path loader-host --root <tmp>"
timed "cargo install" install
echo "-- cargo package ${CRATES[*]} (with the verification build)"
timed "cargo package" package
echo "check-packaging: PASS"
