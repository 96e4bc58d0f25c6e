#!/bin/bash
# Benchmarks rtool against the peer tools, side by side in one run, and prints ratios.
# Each applet with a speed target adds a section. Runs as root: extraction goes to a tmpfs
# mounted in a private mount namespace, so the host's mounts are never touched.
# BENCH_ONLY=NAME[,NAME…] runs only those sections: fetch, verify, extract, install.
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")/.." && pwd)
fixtures=${RTOOL_BENCH_FIXTURES:-$here/target/tmp/fixtures}
rounds=${RTOOL_BENCH_ROUNDS:-5}
only=${BENCH_ONLY:-}
want() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }

echo "rtool bench: $("$bin" --version), $rounds rounds each, median wall time"
bash "$here/tests/fixtures/make-packages.sh" "$fixtures" >/dev/null
pkg=$fixtures/rtool-kmod-1.0-1-x86_64.pkg.tar.zst

# Download and signature checks, each side by side with its peers.
if want fetch; then bash "$here/scripts/bench-fetch.sh" "$bin"; fi
if want verify; then bash "$here/scripts/bench-verify.sh" "$bin"; fi

# The extraction and install sections run inside their own mount namespace.
exec unshare --mount --propagation private -- bash -s "$bin" "$pkg" "$rounds" "$only" <<'SECTION'
set -euo pipefail
bin=$1 pkg=$2 rounds=$3 only=$4
want() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }
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
minof() { sort -n "$1" | head -1; }
fresh() { rm -rf "$work/out"; mkdir "$work/out"; }

size=$(stat -c %s "$pkg")
files=$("$bin" extract -t "$pkg" | wc -l)
cp "$pkg" "$work/pkg.tar.zst"
p=$work/pkg.tar.zst

if want extract; then
echo
echo "== extract: $(basename "$pkg") ($((size / 1048576)) MiB zstd, $files members) into tmpfs, $rounds interleaved rounds"
for i in $(seq "$rounds"); do
    fresh; run rtool "$bin" extract -q -C "$work/out" "$p"
    fresh; run bsdtar bsdtar -xpf "$p" -C "$work/out"
    fresh; run tar tar --zstd -xpf "$p" -C "$work/out"
    run zstd sh -c "zstd -dc '$p' > /dev/null"
    printf '  round %d: rtool %5.2f s   bsdtar %5.2f s   tar %5.2f s   zstd -dc %5.2f s\n' "$i" \
        "$(tail -1 "$work/rtool.t")" "$(tail -1 "$work/bsdtar.t")" "$(tail -1 "$work/tar.t")" "$(tail -1 "$work/zstd.t")"
done
# One noisy round must not pass for a regression or a win: each command's spread is shown.
xstats() {
    printf '  %-17s min %5.2f  median %5.2f  max %5.2f s' "$2" "$(minof "$work/$1.t")" \
        "$(median "$work/$1.t")" "$(maxof "$work/$1.t")"
    if [ "${3:-}" = rss ]; then printf '   peak RSS %d MiB' $(( $(maxof "$work/$1.m") / 1024 )); fi
    echo
}
xstats rtool 'rtool extract' rss
xstats bsdtar 'bsdtar -xpf'
xstats tar 'tar --zstd -xpf'
xstats zstd 'zstd -dc (limit)'
r=$(median "$work/rtool.t"); b=$(median "$work/bsdtar.t"); t=$(median "$work/tar.t"); z=$(median "$work/zstd.t")
awk -v r="$r" -v b="$b" -v t="$t" -v z="$z" 'BEGIN {
    printf "  ratio bsdtar/rtool    %.2fx faster (target >= 1.30), medians\n", b / r
    printf "  ratio tar/rtool       %.2fx faster, medians\n", t / r
    printf "  ratio rtool/limit     %.2fx of decompression alone (target <= 1.40), medians\n", r / z
}'
fi

if want verify; then
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
fi

if want install; then
echo
echo "== install: $(basename "$pkg") ($((size / 1048576)) MiB zstd, $files members) into a fresh root, rtool vs pacman -U"
printf '[options]\nSigLevel = Never\n' > "$work/pacman.conf"
# mkroot DIR: an empty Arch-like root (what was there before is removed)
mkroot() {
    rm -rf "$1"
    mkdir -p "$1/usr/bin" "$1/usr/lib" "$1/etc" "$1/var/lib/pacman" "$1/tmp"
    ln -s usr/bin "$1/bin"; ln -s usr/lib "$1/lib"; ln -s usr/bin "$1/sbin"
}
in_rtool() { run install-rtool "$bin" install --root "$work/r1" --skip-verify --no-hooks "$p"; }
in_pacman() {
    run install-pacman pacman --config "$work/pacman.conf" -r "$work/r2" --noconfirm --noscriptlet \
        --hookdir /nonexistent -U "$p"
}
# Both write warnings and progress to stderr: kept aside, shown only if a run fails.
trap 'echo "install bench failed; the tools said:" >&2; cat "$work/install.err" >&2' EXIT
for i in $(seq "$rounds"); do
    mkroot "$work/r1"; mkroot "$work/r2"
    if (( i % 2 )); then first=rtool; in_rtool; in_pacman; else first=pacman; in_pacman; in_rtool; fi 2>>"$work/install.err"
    # The floor: no installer can finish before the package is decompressed, once, on one core.
    run install-zstd sh -c "zstd -dc '$p' > /dev/null"
    printf '  round %d: rtool %6.2f s   pacman %6.2f s   zstd -dc %6.2f s   (%s first)\n' "$i" \
        "$(tail -1 "$work/install-rtool.t")" "$(tail -1 "$work/install-pacman.t")" \
        "$(tail -1 "$work/install-zstd.t")" "$first"
done
trap - EXIT
# stats NAME LABEL: min, median and max of NAME's rounds, and its peak RSS
stats() {
    printf '  %-17s min %6.2f  median %6.2f  max %6.2f s   peak RSS %d MiB\n' "$2" "$(minof "$work/$1.t")" \
        "$(median "$work/$1.t")" "$(maxof "$work/$1.t")" $(( $(maxof "$work/$1.m") / 1024 ))
}
stats install-rtool 'rtool install'
stats install-pacman 'pacman -U'
stats install-zstd 'zstd -dc (floor)'
awk -v r="$(median "$work/install-rtool.t")" -v q="$(median "$work/install-pacman.t")" \
    -v z="$(median "$work/install-zstd.t")" 'BEGIN {
    printf "  ratio pacman/rtool    %.2fx faster (target: rtool >= 1.5x faster)\n", q / r
    printf "  ratio pacman/floor    %.2fx: the most any installer could reach here\n", q / z
    printf "  ratio rtool/floor     %.2fx of decompression alone\n", r / z
}'

# The last round's roots: the same tree (type, mode, owner, size, link target of every path
# but var/log and tmp, and every file's md5 but desc's, which holds the install date), and the
# same local database entry (files, mtree, desc without %INSTALLDATE%).
listing() (
    cd "$1"; shopt -s nullglob
    find . \( -path ./var/log -o -path ./tmp \) -prune -o -printf '%y %m %U:%G %s %l %p\n' | LC_ALL=C sort
    find . \( -path ./var/log -o -path ./tmp -o -path './var/lib/pacman/local/*/desc' \) -prune -o -type f -print0 \
        | LC_ALL=C sort -z | xargs -0 md5sum
    for d in var/lib/pacman/local/*/; do
        echo "$d"; md5sum "${d}files" "${d}mtree"; sed '/^%INSTALLDATE%$/,/^$/d' "${d}desc"
    done
)
listing "$work/r1" > "$work/r1.tree"; listing "$work/r2" > "$work/r2.tree"
if cmp -s "$work/r1.tree" "$work/r2.tree"; then same=yes; else same=no; fi
echo "  same tree and database: $same"
if [ $same = no ]; then diff "$work/r1.tree" "$work/r2.tree" | head -20 | sed 's/^/    /' || true; fi
rm -rf "$work/r1" "$work/r2"
fi
umount "$work"
rmdir "$work"
SECTION
