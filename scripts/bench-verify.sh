#!/usr/bin/env bash
# bench-verify.sh BIN [MB]
#
# Times signature verification of one large file (150 MB of random data unless MB is given,
# signed with a fresh ed25519 test key, SHA-256): `BIN verify` against gpgv and sq, 3 rounds
# each after a warm-up read, and prints the median wall time, the peak memory (max RSS) and
# the ratios. Everything happens in a temporary directory that is removed at the end.
#
# Needs: gpg and gpgv (gnupg), sq (sq), /usr/bin/time (time).
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
	echo "usage: $0 BIN [MB]" >&2
	exit 2
fi
bin=$(realpath "$1")
mb=${2:-150}
rounds=3
for tool in gpg gpgv sq /usr/bin/time; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "$0: missing tool: $tool (scripts/test-deps.sh installs it)" >&2
		exit 1
	fi
done

tmp=$(mktemp -d /tmp/rtool-bench.XXXXXX)
export GNUPGHOME=$tmp/gnupg
# No trust database chatter: the test key's trust is not what is measured.
gpg() { command gpg --batch --quiet --trust-model always "$@"; }
mkdir -m 700 "$GNUPGHOME"
cleanup() {
	gpgconf --kill gpg-agent >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

file=$tmp/big-1.0-1-x86_64.pkg.tar.zst
head -c "${mb}M" /dev/urandom >"$file"
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
	--quick-gen-key 'Bench Packager <bench@rtool.test>' ed25519 sign never 2>/dev/null
fpr=$(gpg --batch --with-colons --list-keys bench@rtool.test | awk -F: '/^fpr:/ { print $10; exit }')
gpg --batch --quiet -u "$fpr" --digest-algo SHA256 --detach-sign -o "$file.sig" "$file" 2>/dev/null

# rtool: an Arch-style keyring in which the test key is a main key.
mkdir "$tmp/keyring"
gpg --batch --armor --export "$fpr" >"$tmp/keyring/archlinux.gpg"
echo "$fpr:4:" >"$tmp/keyring/archlinux-trusted"
: >"$tmp/keyring/archlinux-revoked"
# gpgv and sq: the certificate, binary.
gpg --batch --export "$fpr" >"$tmp/cert.gpg"

# The commands are used through namerefs (declare -n) below.
# shellcheck disable=SC2034
# sq changed its CLI: 0.27 (Debian 12) has --signer-cert/--detached, 1.x has
# --signer-file/--signature-file.
if sq verify --help 2>&1 | grep -q -- '--signer-file'; then
	sq_cmd=(sq verify --signer-file "$tmp/cert.gpg" --signature-file "$file.sig" "$file")
else
	sq_cmd=(sq verify --signer-cert "$tmp/cert.gpg" --detached "$file.sig" "$file")
fi
# shellcheck disable=SC2034
rtool_cmd=("$bin" verify --keyring "$tmp/keyring" "$file")
# shellcheck disable=SC2034
gpgv_cmd=(gpgv --keyring "$tmp/cert.gpg" "$file.sig" "$file")

# Every tool must accept the signature, or the timing means nothing.
for name in rtool gpgv sq; do
	declare -n cmd="${name}_cmd"
	if ! "${cmd[@]}" >"$tmp/$name.out" 2>&1; then
		echo "$0: $name rejected the signature:" >&2
		cat "$tmp/$name.out" >&2
		exit 1
	fi
done

cat "$file" >/dev/null # into the page cache: compare hashing, not the disk

# run NAME: prints "median_seconds max_rss_kb" over the rounds. Wall time from bash's
# microsecond clock (/usr/bin/time's %e has 10 ms steps), peak memory from /usr/bin/time.
run() {
	declare -n cmd="${1}_cmd"
	local times=() rss=0 i start end m
	for ((i = 0; i < rounds; i++)); do
		start=$EPOCHREALTIME
		/usr/bin/time -f '%M' -o "$tmp/time" "${cmd[@]}" >/dev/null 2>&1
		end=$EPOCHREALTIME
		read -r m <"$tmp/time"
		times+=("$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')")
		((m > rss)) && rss=$m
	done
	printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((rounds + 1) / 2))p" | tr '\n' ' '
	echo "$rss"
}

echo "verify ${mb} MB, ed25519/SHA-256, $rounds rounds, median wall time; peak RSS"
declare -A secs
for name in rtool gpgv sq; do
	read -r s r < <(run "$name")
	secs[$name]=$s
	printf '  %-6s %7.3f s  %7d KB\n' "$name" "$s" "$r"
done
for name in gpgv sq; do
	awk -v a="${secs[$name]}" -v b="${secs[rtool]}" -v n="$name" \
		'BEGIN { if (b > 0) printf "ratio %s/rtool %.1fx\n", n, a / b; else print "ratio " n "/rtool: rtool took 0 s" }'
done
