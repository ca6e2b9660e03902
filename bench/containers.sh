#!/usr/bin/env bash
# bench/containers.sh: container start speed and memory, Berth against Docker
# and bare runc, measured in the same run on the same machine.
#
#   bench/containers.sh [BUILD_DIR]      (default: build, the release build)
#
# It starts a private berthd and (when installed) a private dockerd, each with
# its own temp roots and socket, imports the same busybox rootfs into both,
# prepares an equivalent runc bundle, and prints with hyperfine:
#   - `berth run --rm busybox true` vs `docker run --rm` vs `runc run`
#   - 100 sequential runs, and 50 concurrent run clients (failures counted)
#   - berthd idle RSS, and the RSS each running container costs
#     (berth-shim vs containerd-shim)
# Numbers on shared machines are noisy: read the ratios, not absolute times.
# Everything it starts is stopped and removed at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
BERTH="$build/berth"
T=$(mktemp -d /tmp/berth-bench-XXXXXX)
BSOCK="$T/berth.sock"
DSOCK="$T/docker.sock"
B="$BERTH -H unix://$BSOCK"
D="docker -H unix://$DSOCK"
have_docker=0
command -v dockerd >/dev/null && command -v docker >/dev/null && have_docker=1
have_runc=0
command -v runc >/dev/null && have_runc=1
command -v hyperfine >/dev/null || { echo "bench: hyperfine missing (apt-get install hyperfine)"; exit 1; }

cleanup() {
    set +e
    $B ps -aq 2>/dev/null | xargs -r $B rm -f >/dev/null 2>&1
    [ -f "$T/berthd.pid" ] && kill "$(cat "$T/berthd.pid")" 2>/dev/null
    if [ $have_docker = 1 ] && [ -f "$T/docker.pid" ]; then
        $D ps -aq 2>/dev/null | xargs -r $D rm -f >/dev/null 2>&1
        kill "$(cat "$T/docker.pid")" 2>/dev/null
    fi
    sleep 2
    grep -o " $T[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

wait_sock() { for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done; return 1; }

echo "== setup"
"$build/berthd" -H "unix://$BSOCK" --data-root "$T/berth" --exec-root "$T/berth-exec" \
    --pidfile "$T/berthd.pid" --log-level error >"$T/berthd.log" 2>&1 &
wait_sock "$BSOCK"
sh "$here/scripts/mkrootfs-busybox.sh" "$T/rootfs"
tar --numeric-owner -C "$T/rootfs" -c . > "$T/rootfs.tar"
$B import "$T/rootfs.tar" busybox:latest >/dev/null
if [ $have_docker = 1 ]; then
    dockerd --data-root "$T/docker" --exec-root "$T/docker-exec" -H "unix://$DSOCK" \
        --pidfile "$T/docker.pid" --bridge none --iptables=false --ip6tables=false \
        >"$T/dockerd.log" 2>&1 &
    wait_sock "$DSOCK" && sleep 1
    $D import "$T/rootfs.tar" busybox:latest >/dev/null
fi
if [ $have_runc = 1 ]; then
    mkdir -p "$T/bundle" && cp -a "$T/rootfs" "$T/bundle/rootfs"
    (cd "$T/bundle" && runc spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"true"/' config.json)
fi

# dockerd and containerd go on working for seconds after their start and the
# import (measured: berth's median 13.0 ms right after, 11.8 ms 15 s later,
# same minutes): each engine is measured on a settled machine
sleep 10
bpid=$(cat "$T/berthd.pid")
idle0=$(awk '/VmRSS/ {print $2}' "/proc/$bpid/status")
idle0a=$(awk '/RssAnon/ {print $2}' "/proc/$bpid/status")

echo "== run --rm true (median of 30 after 3 warm-ups)"
cmds=(-n berth "$B run --rm busybox true")
[ $have_docker = 1 ] && cmds+=(-n docker "$D run --rm --network none busybox true")
[ $have_runc = 1 ] && cmds+=(-n runc "runc --root $T/runc run -b $T/bundle bench-run") # runc run deletes it at exit
hyperfine -N -w 3 -r 30 --export-json "$T/run.json" "${cmds[@]}" 2>/dev/null | grep -v "^ *$" || \
    hyperfine -w 3 -r 30 --export-json "$T/run.json" "${cmds[@]}"
python3 - "$T/run.json" <<'EOF'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
b = r.get("berth")
print(f"median berth run --rm true: {b*1000:.1f} ms")
for k in ("docker", "runc"):
    if k in r:
        print(f"  {k}: {r[k]*1000:.1f} ms   -> berth is {r[k]/b:.1f}x faster than {k}")
EOF

echo "== 100 sequential runs"
s=$(date +%s.%N)
for i in $(seq 100); do $B run --rm busybox true; done
e=$(date +%s.%N)
python3 -c "print(f'100 sequential berth runs: {($e-$s):.2f} s ({($e-$s)*10:.1f} ms each)')"

echo "== 50 concurrent run clients"
fails=$(seq 50 | xargs -P 50 -I{} sh -c "$B run --rm busybox true >/dev/null 2>&1 || echo fail" | wc -l)
echo "50 concurrent berth runs: $fails failed"

echo "== memory"
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
anon() { awk '/RssAnon/ {print $2}' "/proc/$1/status"; }
# PSS: each shared page divided among the processes mapping it, so N shims
# of one binary add up to what they really cost together.
pss() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
b0=$(rss "$bpid")
echo "berthd idle RSS after start and an import: $idle0 kB (private: $idle0a kB; the rest is shared library pages)"
echo "berthd idle RSS after the runs above: $b0 kB (private: $(anon "$bpid") kB)"
z=$(pgrep -f "^berth-shim --zygote" -P "$bpid" || true)
[ -n "$z" ] && echo "shim zygote (one per berthd): RSS $(rss "$z") kB, PSS $(pss "$z") kB"
N=10
for i in $(seq $N); do $B run -d --name "m$i" busybox sleep 300 >/dev/null; done
sleep 1
tot=0; priv=0; ps_=0; n=0
for p in $(pgrep -f "berth-shim --id [0-9a-f]* --bundle $T" || true); do
    tot=$((tot + $(rss "$p"))); priv=$((priv + $(anon "$p"))); ps_=$((ps_ + $(pss "$p"))); n=$((n + 1))
done
n1=$((n > 0 ? n : 1))
b1=$(rss "$bpid")
echo "berth-shim: RSS $((tot / n1)) kB, PSS $((ps_ / n1)) kB, private anon $((priv / n1)) kB each over $n shims"
echo "berthd grew $((b1 - b0)) kB for $N containers"
echo "per running container (shim PSS + berthd growth / N): $(((ps_ + b1 - b0) / n1)) kB"
if [ $have_docker = 1 ]; then
    for i in $(seq 3); do $D run -d --network none busybox sleep 300 >/dev/null; done
    sleep 1
    tot=0; ps_=0; n=0
    for p in $(pgrep -f "containerd-shim.*$T" || true); do
        tot=$((tot + $(rss "$p"))); ps_=$((ps_ + $(pss "$p"))); n=$((n + 1))
    done
    [ $n -gt 0 ] && echo "containerd-shim: RSS $((tot / n)) kB, PSS $((ps_ / n)) kB each over $n shims"
fi
