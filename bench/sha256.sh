#!/bin/sh
# bench/sha256.sh [BUILD_DIR] [SIZE_MB]: SHA-256 throughput of Berth's own
# code (portable and SHA-NI, build/sha256-bench) against `openssl dgst
# -sha256` and `sha256sum`, on one file of SIZE_MB (default 1024) random
# bytes, read from the page cache. Prints MB/s for each and checks that
# all digests agree.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
mb=${2:-1024}
bench=$build/sha256-bench
[ -x "$bench" ] || { echo "bench/sha256: $bench missing (ninja -C $build sha256-bench)" >&2; exit 1; }
f=$(mktemp /tmp/berth-bench-sha.XXXXXX)
trap 'rm -f "$f"' EXIT
head -c "${mb}M" /dev/urandom >"$f"
cat "$f" >/dev/null # into the page cache
bytes=$(stat -c %s "$f")
timed() { # label, command...: prints the digest and MB/s
    label=$1
    shift
    t0=$(date +%s.%N)
    d=$("$@" | grep -o '[0-9a-f]\{64\}' | head -1)
    t1=$(date +%s.%N)
    echo "$label $d $(awk "BEGIN { printf \"%.2f s  %.0f MB/s\", $t1 - $t0, $bytes / ($t1 - $t0) / 1e6 }")"
}
"$bench" "$f"
timed "openssl  " openssl dgst -sha256 "$f"
timed "sha256sum" sha256sum "$f"
n=$( ("$bench" "$f"; openssl dgst -sha256 "$f"; sha256sum "$f") | grep -o '[0-9a-f]\{64\}' | sort -u | wc -l)
[ "$n" = 1 ] && echo "all digests agree" || { echo "DIGESTS DIFFER" >&2; exit 1; }
