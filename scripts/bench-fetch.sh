#!/bin/bash
# rtool fetch-pkg against curl: one 1 GiB package-shaped file over HTTPS on loopback, from an
# nginx started here with a CA made here. Prints the throughput ratio.
set -euo pipefail
bin=$1
rounds=${RTOOL_BENCH_ROUNDS:-5}
work=$(mktemp -d /tmp/rtool-bench-fetch.XXXXXX)
cleanup() {
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    rm -rf "$work" "${out:-/nonexistent}"
}
trap cleanup EXIT

cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
    -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout srv.key -out srv.csr 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' > ext
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out srv.pem 2>/dev/null

mkdir -p root/packages/b/blob
# Both tools write into memory (a tmpfs): the comparison is of transfers, not of the disk,
# and rtool's fsync before the rename costs nothing there.
out=$(mktemp -d /dev/shm/rtool-bench-out.XXXXXX)
ln -s "$out" out
# A valid zstd stream (rtool checks the magic bytes), incompressible, just over 1 GiB.
head -c 1G /dev/urandom | zstd -q -1 -c > root/packages/b/blob/blob-1.0-1-x86_64.pkg.tar.zst
size=$(stat -c %s root/packages/b/blob/blob-1.0-1-x86_64.pkg.tar.zst)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > nginx.conf <<CONF
user root;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events {}
http {
    access_log off;
    sendfile on;
    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $work/srv.pem;
        ssl_certificate_key $work/srv.key;
        root $work/root;
        autoindex on;
    }
}
CONF
nginx -p "$work" -c "$work/nginx.conf" -e "$work/error.log"
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

url=https://127.0.0.1:$port
rtool_t=() curl_t=() curlsum_t=()
for _ in $(seq "$rounds"); do
    rm -f out/*
    s=$(date +%s.%N)
    "$bin" fetch-pkg -q --mirror "$url" --ca-file ca.pem --skip-verify -o out blob >/dev/null 2>&1
    e=$(date +%s.%N); rtool_t+=("$(echo "$e - $s" | bc)")
    rm -f out/*
    s=$(date +%s.%N)
    curl -s --cacert ca.pem -o out/blob "$url/packages/b/blob/blob-1.0-1-x86_64.pkg.tar.zst"
    e=$(date +%s.%N); curl_t+=("$(echo "$e - $s" | bc)")
    rm -f out/*
    # Like for like: rtool hashes every byte as it arrives (to print the checksum and
    # resume safely); curl does not, so also time curl with sha256sum on the stream.
    s=$(date +%s.%N)
    curl -s --cacert ca.pem "$url/packages/b/blob/blob-1.0-1-x86_64.pkg.tar.zst" | tee out/blob | sha256sum > /dev/null
    e=$(date +%s.%N); curlsum_t+=("$(echo "$e - $s" | bc)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
r=$(median "${rtool_t[@]}"); c=$(median "${curl_t[@]}"); cs=$(median "${curlsum_t[@]}")
echo
echo "== fetch: $((size / 1048576)) MiB over HTTPS on loopback (nginx, TLS 1.3), $rounds rounds, median"
# Loopback throughput on a shared 2-core machine swings by a quarter between rounds: show them.
spread=$(for i in "${!rtool_t[@]}"; do echo "${curl_t[$i]} / ${rtool_t[$i]}"; done | bc -l \
    | awk '{printf "%.2f ", $1}')
awk -v r="$r" -v c="$c" -v cs="$cs" -v n="$size" -v spread="$spread" 'BEGIN {
    printf "  rtool fetch-pkg           %6.2f s  %7.1f MiB/s\n", r, n / r / 1048576
    printf "  curl -o                   %6.2f s  %7.1f MiB/s\n", c, n / c / 1048576
    printf "  curl | tee | sha256sum    %6.2f s  %7.1f MiB/s\n", cs, n / cs / 1048576
    printf "  ratio rtool/curl throughput            %.2fx (target >= 0.90)\n", c / r
    printf "  per-round ratios                       %s\n", spread
    printf "  ratio rtool/(curl + sha256sum)         %.2fx\n", cs / r
}'
