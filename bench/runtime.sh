#!/bin/sh
# bench/runtime.sh [BUILD_DIR]: container start+exit+cleanup with
# `berth-runtime run` against `runc run` on the same busybox bundle, timed
# with hyperfine in the same run; prints medians and the ratio runc/berth.
# Two bundles: `runc spec` as is (no seccomp) and a Docker-like config
# (Docker's default seccomp profile, caps, masked paths, cgroup limits,
# cgroup namespace), which is what the daemon will hand to the runtime.
# Then the seccomp program's load alone (bench/seccomp_load.c): libseccomp's
# against Berth's generator, for Berth's and Docker's default profiles.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
rt=$build/berth-runtime
[ -x "$rt" ] || { echo "bench/runtime: $rt missing (ninja -C $build berth-runtime)" >&2; exit 1; }
[ -x "$build/seccomp_load" ] || { echo "bench/runtime: $build/seccomp_load missing (ninja -C $build)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "bench/runtime: hyperfine missing" >&2; exit 1; }
command -v runc >/dev/null || { echo "bench/runtime: runc missing" >&2; exit 1; }
work=$(mktemp -d /tmp/berth-bench-rt.XXXXXX)
trap 'runc --root $work/runc delete -f b-runc >/dev/null 2>&1 || true; "$rt" --root $work/berth delete -f b-berth >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
sh "$here/scripts/mkrootfs-busybox.sh" "$work/rootfs" >/dev/null
mkdir -p "$work/plain" "$work/docker"
(cd "$work/plain" && runc spec)
/usr/bin/python3 - "$work" "$here" <<'PY'
import json, os, sys
work, here = sys.argv[1], sys.argv[2]
c = json.load(open(work + "/plain/config.json"))
c["root"]["path"] = work + "/rootfs"
c["process"].update(terminal=False, args=["true"])
json.dump(c, open(work + "/plain/config.json", "w"))
sys.path.insert(0, here + "/tests/integration")
from test_runtime import docker_spec
json.dump(docker_spec(work + "/rootfs", ["true"], "benchcontainer"), open(work + "/docker/config.json", "w"))
PY
for b in plain docker; do
    echo "== bundle: $b"
    hyperfine -N --warmup 5 --runs ${RUNS:-100} --export-json "$work/$b.json" \
        -n berth-runtime "$rt --root $work/berth run --bundle $work/$b b-berth" \
        -n runc "runc --root $work/runc run --bundle $work/$b b-runc" >/dev/null 2>&1
    /usr/bin/python3 - "$work/$b.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
b, c = r["berth-runtime"]["median"], r["runc"]["median"]
print("  berth-runtime run: median %.2f ms" % (b * 1e3))
print("  runc run:          median %.2f ms" % (c * 1e3))
print("  runc / berth-runtime = %.1fx" % (c / b))
PY
done
echo "== seccomp load (libseccomp's program vs bpfgen's)"
docker_profile=/tmp/moby/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json
"$build/seccomp_load" -n "${LOADS:-200}"
[ ! -f "$docker_profile" ] || "$build/seccomp_load" -n "${LOADS:-200}" "$docker_profile"
