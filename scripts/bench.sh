#!/bin/bash
# Benchmarks rtool against the peer tools, side by side in one run, and prints ratios.
# Each applet with a speed target adds a section. Runs as root: extraction goes to a tmpfs
# mounted in a private mount namespace, so the host's mounts are never touched.
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")/.." && pwd)
fixtures=${RTOOL_BENCH_FIXTURES:-$here/target/tmp/fixtures}
rounds=${RTOOL_BENCH_ROUNDS:-5}

echo "rtool bench: $("$bin" --version), $rounds rounds each, median wall time"
bash "$here/tests/fixtures/make-packages.sh" "$fixtures" >/dev/null
pkg=$fixtures/rtool-kmod-1.0-1-x86_64.pkg.tar.zst

# Download and signature checks, each side by side with its peers.
bash "$here/scripts/bench-fetch.sh" "$bin"
bash "$here/scripts/bench-verify.sh" "$bin"

# The extraction section runs inside its own mount namespace.
exec unshare --mount --propagation private -- bash -s "$bin" "$pkg" "$rounds" <<'SECTION'
set -euo pipefail
bin=$1 pkg=$2 rounds=$3
work=$(mktemp -d /tmp/rtool-bench.XXXXXX)
mount -t tmpfs -o size=4G bench "$work"

# run NAME CMD...: one timed run; appends seconds to $work/NAME.t and peak RSS (KiB) to NAME.m
run() {
    local name=$1; shift
    sync
    /usr/bin/time -f '%e %M' -o "$work/.last" "$@" >/dev/null
    read -r secs kib < "$work/.last"
    echo "$secs" >> "$work/$name.t"
    echo "$kib" >> "$work/$name.m"
}
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
maxof() { sort -n "$1" | tail -1; }
fresh() { rm -rf "$work/out"; mkdir "$work/out"; }

size=$(stat -c %s "$pkg")
files=$("$bin" extract -t "$pkg" | wc -l)
echo
echo "== extract: $(basename "$pkg") ($((size / 1048576)) MiB zstd, $files members) into tmpfs"
cp "$pkg" "$work/pkg.tar.zst"
p=$work/pkg.tar.zst
for _ in $(seq "$rounds"); do
    fresh; run rtool "$bin" extract -q -C "$work/out" "$p"
    fresh; run bsdtar bsdtar -xpf "$p" -C "$work/out"
    fresh; run tar tar --zstd -xpf "$p" -C "$work/out"
    run zstd sh -c "zstd -dc '$p' > /dev/null"
done
r=$(median "$work/rtool.t"); b=$(median "$work/bsdtar.t"); t=$(median "$work/tar.t"); z=$(median "$work/zstd.t")
printf '  rtool extract    %6.2f s   peak RSS %d MiB\n' "$r" $(( $(maxof "$work/rtool.m") / 1024 ))
printf '  bsdtar -xpf      %6.2f s\n' "$b"
printf '  tar --zstd -xpf  %6.2f s\n' "$t"
printf '  zstd -dc (limit) %6.2f s\n' "$z"
awk -v r="$r" -v b="$b" -v t="$t" -v z="$z" 'BEGIN {
    printf "  ratio bsdtar/rtool    %.2fx faster (target >= 1.30)\n", b / r
    printf "  ratio tar/rtool       %.2fx faster\n", t / r
    printf "  ratio rtool/limit     %.2fx of decompression alone (target <= 1.50)\n", r / z
}'

echo
echo "== verify: the extracted tree against .MTREE vs sha256sum over the same files"
fresh; "$bin" extract -q -C "$work/out" "$p"
for _ in $(seq "$rounds"); do
    run verify "$bin" extract --verify -C "$work/out" "$p"
    run sha256sum sh -c "cd '$work/out' && find . -type f -print0 | xargs -0 sha256sum > /dev/null"
done
v=$(median "$work/verify.t"); s=$(median "$work/sha256sum.t")
printf '  rtool --verify   %6.2f s\n' "$v"
printf '  sha256sum        %6.2f s\n' "$s"
awk -v v="$v" -v s="$s" 'BEGIN { printf "  ratio sha256sum/rtool %.2fx faster\n", s / v }'
umount "$work"
rmdir "$work"
SECTION
