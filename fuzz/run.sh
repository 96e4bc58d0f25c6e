#!/usr/bin/env bash
# Runs the fuzz targets one after another, FUZZ_SECONDS (default 60) each, and prints per
# target the executions and any crash. Installs cargo-fuzz when it is missing; needs a
# nightly toolchain (FUZZ_TOOLCHAIN, default +nightly).
#
# Usage: fuzz/run.sh [TARGET…]    (default: every target of fuzz/Cargo.toml)
#
# New inputs libFuzzer finds go to fuzz/target/corpus/TARGET, never into the seeds kept in git
# (fuzz/corpus/TARGET); a crashing input is left in fuzz/artifacts/TARGET/ to be moved to
# fuzz/regressions/TARGET/ with its fix (fuzz/README.md).
set -uo pipefail

cd "$(dirname "$0")"
secs=${FUZZ_SECONDS:-60}
toolchain=${FUZZ_TOOLCHAIN:-+nightly}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install --locked cargo-fuzz || exit 2
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^rtool-fuzz$')
fi

echo "fuzz: building ${#targets[@]} targets"
cargo "$toolchain" fuzz build || exit 2

mkdir -p target/logs
total=0
crashed=()
for t in "${targets[@]}"; do
    mkdir -p "target/corpus/$t"
    dirs=("target/corpus/$t" "corpus/$t")
    [ -d "regressions/$t" ] && dirs+=("regressions/$t")
    log="target/logs/$t.log"
    cargo "$toolchain" fuzz run "$t" "${dirs[@]}" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    execs=${execs:-0}
    total=$((total + execs))
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    if [ "$rc" -eq 0 ]; then
        printf 'fuzz: %-12s %10s executions in %ss, no crash\n' "$t" "$execs" "$secs"
    else
        crashed+=("$t")
        what=$(grep -m1 -E "^thread '.*' panicked|ERROR: libFuzzer|ERROR: AddressSanitizer|==ERROR" "$log")
        printf 'fuzz: %-12s %10s executions, CRASH: %s\n' "$t" "$execs" "${what:-exit $rc}"
        printf 'fuzz: %-12s input: %s (log: fuzz/%s)\n' "" "${artifact:-none written}" "$log"
    fi
done
echo "fuzz: $total executions in all"
if [ ${#crashed[@]} -gt 0 ]; then
    echo "fuzz: crashes in: ${crashed[*]}"
    exit 1
fi
