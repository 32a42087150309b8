#!/usr/bin/env bash
# Fuzz every parser of the loader and every purgatory entry point
# (fuzz/fuzz_targets/*.rs) with libFuzzer through cargo-fuzz, one target at a
# time, and print per target: executions, execs/s, coverage (libFuzzer's cov
# and ft), corpus size, peak RSS and findings.
#
#   scripts/fuzz.sh --smoke            each target 15 s (what scripts/test.sh runs)
#   scripts/fuzz.sh [--long]           the campaign: each target until --runs or --seconds
#   options: --targets a,b   --seconds N   --runs N   --timeout S   --rss-mb N
#
# Engine: cargo-fuzz (libFuzzer) on the nightly toolchain, AddressSanitizer,
# debug assertions and overflow checks on. The nightly has no bare-metal
# standard library, so the purgatory images loader-host embeds are built
# first with the default toolchain and reused (RKEXEC_PREBUILT_BARE_METAL).
#
# A finding (crash, panic, hang past --timeout, memory past --rss-mb) fails
# the run; libFuzzer's reproducer is kept in fuzz/artifacts/<target>/ (run it
# with fuzz/target/x86_64-unknown-linux-gnu/release/<target> <file>). Smoke
# runs start from the committed corpus in a scratch copy; long runs keep
# their corpus in fuzz/target/corpus/<target> between runs (neither is
# committed: new seeds are added by hand, small).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

mode=long
targets=""
seconds=""
runs=""
timeout=20
rss_mb=2560
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) mode=smoke ;;
        --long) mode=long ;;
        --targets) targets=$2; shift ;;
        --seconds) seconds=$2; shift ;;
        --runs) runs=$2; shift ;;
        --timeout) timeout=$2; shift ;;
        --rss-mb) rss_mb=$2; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "fuzz.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$mode" = smoke ]; then
    seconds=${seconds:-15}
else
    # The campaign bar: 10 M executions or one hour, whichever comes first.
    seconds=${seconds:-3600}
    runs=${runs:-10000000}
fi

log() { printf 'fuzz: %s\n' "$*" >&2; }

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz or the nightly toolchain is missing: run scripts/setup.sh" >&2
    exit 1
fi

all_targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^rkexec-fuzz$')
if [ -z "$targets" ]; then
    targets=$(echo $all_targets | tr ' ' ',')
fi
for t in ${targets//,/ }; do
    grep -qx "$t" <<<"$all_targets" || { echo "fuzz.sh: no target $t (have: $(echo $all_targets))" >&2; exit 2; }
done

log "purgatory images with the default toolchain (loader-host embeds them)"
cargo build --locked -q -p loader-host --lib
log "fuzz targets (nightly, AddressSanitizer, debug assertions)"
(cd fuzz && RKEXEC_PREBUILT_BARE_METAL=1 cargo +nightly fuzz build --debug-assertions)
bin_dir=$root/fuzz/target/x86_64-unknown-linux-gnu/release

# Per-target libFuzzer options: inputs long enough for the mock RAM / a DTB.
extra_args() {
    case "$1" in
        purgatory_run) echo "-max_len=16536" ;;
        dtb|fdt_patch|fdt_walk|fdt_crate|excluded_checks|image_uki) echo "-max_len=16384" ;;
        *) echo "" ;;
    esac
}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
results=()
failed=0
for t in ${targets//,/ }; do
    if [ "$mode" = smoke ]; then
        work=$scratch/corpus-$t
    else
        work=$root/fuzz/target/corpus/$t
    fi
    mkdir -p "$work" "fuzz/artifacts/$t"
    out=$scratch/$t.log
    args=(-max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb="$rss_mb"
        -artifact_prefix="$root/fuzz/artifacts/$t/" -print_final_stats=1)
    [ -n "$runs" ] && args+=(-runs="$runs")
    # shellcheck disable=SC2046 # word splitting of the extra options is wanted
    args+=($(extra_args "$t"))
    log "$t: ${seconds}s${runs:+ or $runs runs}"
    rc=0
    ASAN_OPTIONS=detect_odr_violation=0 nice -n 19 "$bin_dir/$t" "${args[@]}" "$work" "fuzz/corpus/$t" \
        >"$out" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$out" | tail -1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$out" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
    finding=none
    if [ "$rc" -ne 0 ]; then
        failed=1
        # The first of: the panic site (crate-relative), a sanitizer error, a
        # libFuzzer verdict (timeout, out-of-memory, deadly signal).
        finding=$(grep -m1 -oE 'panicked at [^ ]+|ERROR: AddressSanitizer: [a-z-]+|ERROR: libFuzzer: [a-z-]+' "$out" \
            | sed -e 's#/root/.cargo/registry/src/[^/]*/##' -e "s#$root/##" -e 's/:$//' || echo "exit $rc")
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$out" | tail -1)
        log "$t: FINDING ($finding); reproducer: ${artifact:-none}; log follows"
        grep -E 'panicked at|^thread|ERROR:|SUMMARY|Test unit written' -A3 "$out" | head -40 >&2 || true
    fi
    results+=("$(printf '%-20s %12s %9s %6s %7s %11s %7s  %s' "$t" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$finding")")
done

printf '\n%-20s %12s %9s %6s %7s %11s %7s  %s\n' target execs execs/s cov ft corpus rss_mb findings
printf '%s\n' "${results[@]}"
if [ "$failed" -ne 0 ]; then
    echo "fuzz.sh: findings above; reproducers in fuzz/artifacts/" >&2
    exit 1
fi
