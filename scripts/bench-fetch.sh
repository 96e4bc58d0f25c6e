#!/bin/bash
# rtool fetch-pkg against curl: one 1 GiB package-shaped file, signed (ed25519, SHA-256), over
# HTTPS on loopback from an nginx started here with a CA made here. Two comparisons, measured
# in the same interleaved rounds:
#   - the user's real job: `fetch-pkg` (download and signature check) against `curl -o`
#     followed by `gpgv` on the same file;
#   - the raw download: `fetch-pkg --skip-verify` (which still hashes every byte with SHA-256)
#     against `curl -o`.
# Prints every round (loopback throughput on a shared 2-core machine swings between rounds),
# then min/median/max per command and the median of the per-round ratios.
set -euo pipefail
bin=$1
rounds=${RTOOL_BENCH_ROUNDS:-5}
for tool in curl gpg gpgv nginx openssl zstd python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "$0: missing tool: $tool (scripts/test-deps.sh installs it)" >&2
        exit 1
    fi
done
work=$(mktemp -d /tmp/rtool-bench-fetch.XXXXXX)
export GNUPGHOME=$work/gnupg
cleanup() {
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    gpgconf --kill gpg-agent >/dev/null 2>&1 || true
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
blob=root/packages/b/blob/blob-1.0-1-x86_64.pkg.tar.zst
head -c 1G /dev/urandom | zstd -q -1 -c > "$blob"
size=$(stat -c %s "$blob")

# A packager key, made here: a main key of an Arch-style keyring for rtool, a plain
# certificate for gpgv.
mkdir -m 700 "$GNUPGHOME"
# No trust database chatter: the key's trust is not what is measured.
gpg() { command gpg --batch --quiet --trust-model always "$@"; }
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-gen-key 'Bench Packager <bench@rtool.test>' ed25519 sign never 2>/dev/null
fpr=$(gpg --batch --with-colons --list-keys bench@rtool.test | awk -F: '/^fpr:/ { print $10; exit }')
gpg --batch --quiet -u "$fpr" --digest-algo SHA256 --detach-sign -o "$blob.sig" "$blob" 2>/dev/null
mkdir keyring
gpg --batch --armor --export "$fpr" > keyring/archlinux.gpg
echo "$fpr:4:" > keyring/archlinux-trusted
: > keyring/archlinux-revoked
gpg --batch --export "$fpr" > cert.gpg

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
        # What Arch mirrors speak; nginx 1.22 alone would stop at TLS 1.2.
        ssl_protocols TLSv1.2 TLSv1.3;
        root $work/root;
        autoindex on;
    }
}
CONF
nginx -p "$work" -c "$work/nginx.conf" -e "$work/error.log"
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

url=https://127.0.0.1:$port
path=packages/b/blob/blob-1.0-1-x86_64.pkg.tar.zst
# timed NAME CMD...: runs CMD (which must succeed), appends its wall time to NAME.t
timed() {
    local name=$1 start end
    shift
    start=$EPOCHREALTIME
    if ! "$@" > "$work/$name.out" 2>&1; then
        echo "$0: $name failed:" >&2
        cat "$work/$name.out" >&2
        exit 1
    fi
    end=$EPOCHREALTIME
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }' >> "$work/$name.t"
}
last() { tail -1 "$work/$1.t"; }
verified() {
    rm -f out/*
    timed fetch "$bin" fetch-pkg -q --mirror "$url" --ca-file ca.pem --keyring keyring -o out blob
}
curl_gpgv() {
    rm -f out/*
    timed curl curl -sS --cacert ca.pem -o out/blob "$url/$path"
    timed curlsig curl -sS --cacert ca.pem -o out/blob.sig "$url/$path.sig"
    timed gpgv gpgv --keyring "$work/cert.gpg" out/blob.sig out/blob
    # The work --skip-verify does beyond curl: every byte through SHA-256.
    timed sha sha256sum out/blob
}
raw() {
    rm -f out/*
    timed skip "$bin" fetch-pkg -q --mirror "$url" --ca-file ca.pem --skip-verify -o out blob
}

echo
echo "== fetch: $((size / 1048576)) MiB over HTTPS on loopback (nginx, TLS 1.3), ed25519/SHA-256 signature, $rounds interleaved rounds"
for i in $(seq "$rounds"); do
    if (( i % 2 )); then first=rtool; verified; curl_gpgv; raw
    else first=curl; curl_gpgv; verified; raw; fi
    printf '  round %d: fetch-pkg %5.2f s   curl -o %5.2f s + .sig %4.2f s + gpgv %4.2f s   fetch-pkg --skip-verify %5.2f s   (%s first)\n' \
        "$i" "$(last fetch)" "$(last curl)" "$(last curlsig)" "$(last gpgv)" "$(last skip)" "$first"
done
paste -d' ' curl.t curlsig.t gpgv.t | awk '{ printf "%.3f\n", $1 + $2 + $3 }' > job.t
paste -d' ' curl.t sha.t | awk '{ printf "%.3f\n", $1 + $2 }' > curlsha.t
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# stats NAME LABEL: min, median and max of NAME's rounds, and the median throughput
stats() {
    printf '  %-31s min %5.2f  median %5.2f  max %5.2f s  %7.1f MiB/s\n' "$2" "$(sort -n "$1.t" | head -1)" \
        "$(median "$1.t")" "$(sort -n "$1.t" | tail -1)" "$(awk -v t="$(median "$1.t")" -v n="$size" 'BEGIN { print n / t / 1048576 }')"
}
stats fetch 'fetch-pkg (download + verify)'
stats job 'curl -o, then gpgv'
stats skip 'fetch-pkg --skip-verify'
stats curl 'curl -o'
stats curlsha 'curl -o, then sha256sum'
stats gpgv 'gpgv alone'
# ratio A B: the per-round ratios A/B, then their median
ratios() { paste -d' ' "$1.t" "$2.t" | awk '{ printf "%.3f\n", $1 / $2 }' > "$work/ratio.$1.$2"; }
ratios job fetch; ratios curl skip; ratios curlsha skip
printf '  ratio (curl -o + gpgv)/fetch-pkg       %.2fx faster (target >= 1.80); rounds: %s\n' \
    "$(median ratio.job.fetch)" "$(awk '{ printf "%.2f ", $1 }' ratio.job.fetch)"
printf '  ratio rtool/curl download throughput   %.2fx (target >= 0.95); rounds: %s\n' \
    "$(median ratio.curl.skip)" "$(awk '{ printf "%.2f ", $1 }' ratio.curl.skip)"
printf '  ratio (curl -o + sha256sum)/--skip-verify %.2fx (the same work: download and SHA-256); rounds: %s\n' \
    "$(median ratio.curlsha.skip)" "$(awk '{ printf "%.2f ", $1 }' ratio.curlsha.skip)"
