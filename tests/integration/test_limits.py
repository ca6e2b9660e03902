"""Resource limits through the Docker API, checked in the container's cgroup on the
host (/sys/fs/cgroup/<controller>/berth/<id> on v1 and hybrid hosts,
/sys/fs/cgroup/berth/<id> on a pure v2 host) and by their effect: a memory hog is
OOM-killed (137, State.OOMKilled), a process spawner stops at the pids limit.

The spawner is bounded in count (never a real fork bomb: a broken limit must not
take the shared host down) and in time; every container is force-removed at teardown.
"""

import os
import time

import pytest

from conftest import uniq, wait_for

CG = "/sys/fs/cgroup"
CG_V2 = os.path.exists(os.path.join(CG, "cgroup.controllers"))




def run_d(daemon, ctrs, *args):
    n = uniq("lim")
    ctrs.append(n)
    cid = daemon.docker("run", "-d", "--name", n, *args).out.strip()
    return n, cid


def cgf(controller, cid, fname):
    if CG_V2:
        return os.path.join(CG, "berth", cid, fname)
    return os.path.join(CG, controller, "berth", cid, fname)


def read(path):
    with open(path) as f:
        return f.read().strip()


def state(daemon, n):
    return daemon.api_json("GET", f"/containers/{n}/json")["State"]


def hostcfg(daemon, n):
    return daemon.api_json("GET", f"/containers/{n}/json")["HostConfig"]


# ---------------------------------------------------------------------------
# memory


@pytest.mark.parametrize("hog", [
    "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
    "tail /dev/zero",
])
def test_memory_hog_is_oom_killed(daemon, busybox, ctrs, hog):
    n = uniq("oom")
    ctrs.append(n)
    t0 = time.time()
    p = daemon.docker("run", "--name", n, "-m", "32m", "busybox", "sh", "-c", hog,
                      check=False, timeout=120)
    assert p.returncode == 137, (p.returncode, p.out, p.err)
    assert "survived" not in p.out
    assert time.time() - t0 < 100
    st = state(daemon, n)
    assert st["OOMKilled"] is True, st
    assert st["ExitCode"] == 137 and st["Status"] == "exited"
    assert hostcfg(daemon, n)["Memory"] == 32 * 1024 * 1024


def test_no_oom_flag_without_oom(daemon, busybox, ctrs):
    n = uniq("oom")
    ctrs.append(n)
    daemon.docker("run", "-d", "--name", n, "-m", "32m", "busybox", "sh", "-c",
                  "x=$(head -c 1000000 /dev/zero | tr '\\0' a); sleep 300")
    time.sleep(0.5)
    daemon.docker("kill", n)
    assert wait_for(lambda: state(daemon, n)["Running"] is False, timeout=15)
    st = state(daemon, n)
    assert st["ExitCode"] == 137 and st["OOMKilled"] is False, st


def test_memory_and_swap_in_cgroup(daemon, busybox, ctrs):
    n, cid = run_d(daemon, ctrs, "-m", "32m", "busybox", "sleep", "300")
    if CG_V2:
        assert read(cgf("memory", cid, "memory.max")) == str(32 << 20)
        swap = cgf("memory", cid, "memory.swap.max")
        if os.path.exists(swap):
            assert read(swap) == str(32 << 20)       # -m alone: swap = memory
    else:
        assert read(cgf("memory", cid, "memory.limit_in_bytes")) == str(32 << 20)
        memsw = cgf("memory", cid, "memory.memsw.limit_in_bytes")
        if os.path.exists(memsw):
            assert read(memsw) == str(64 << 20)      # -m alone: memory+swap = 2 x memory
    hc = hostcfg(daemon, n)
    assert hc["Memory"] == 32 << 20 and hc["MemorySwap"] == 64 << 20

    n2, cid2 = run_d(daemon, ctrs, "-m", "32m", "--memory-swap", "96m", "busybox", "sleep", "300")
    assert hostcfg(daemon, n2)["MemorySwap"] == 96 << 20
    if CG_V2:
        swap = cgf("memory", cid2, "memory.swap.max")
        if not os.path.exists(swap):
            pytest.skip("no memory.swap.max in this cgroup (swap accounting off)")
        assert read(swap) == str(64 << 20)
    else:
        memsw = cgf("memory", cid2, "memory.memsw.limit_in_bytes")
        if not os.path.exists(memsw):
            pytest.skip("no memory.memsw.limit_in_bytes (swap accounting off)")
        assert read(memsw) == str(96 << 20)


def test_memory_swap_smaller_than_memory_is_rejected(daemon, busybox, ctrs):
    n = uniq("lim")
    ctrs.append(n)
    p = daemon.docker("run", "--name", n, "-m", "64m", "--memory-swap", "32m", "busybox", "true",
                      check=False)
    assert p.returncode == 125, (p.out, p.err)
    assert "memoryswap" in p.err.lower().replace(" ", "") or "swap" in p.err.lower(), p.err
    assert daemon.api("GET", f"/containers/{n}/json")[0] == 404


# ---------------------------------------------------------------------------
# pids


def test_spawner_stops_at_pids_limit(daemon, busybox, ctrs):
    # up to 100 background sleeps, one by one: the limit (20) must stop it well before
    # (ash exits when a fork fails, so the spawner is an inner shell)
    spawner = ("sh -c 'i=0; while [ $i -lt 100 ]; do i=$((i+1)); sleep 60 & done'; "
               "echo inner=$?; exec sleep 60")
    n, cid = run_d(daemon, ctrs, "--pids-limit", "20", "busybox", "sh", "-c", spawner)
    pmax = cgf("pids", cid, "pids.max")
    assert read(pmax) == "20"
    cur = cgf("pids", cid, "pids.current")
    seen = []
    deadline = time.time() + 20
    while time.time() < deadline:
        seen.append(int(read(cur)))
        if "inner=" in daemon.docker("logs", n).out:
            break
        time.sleep(0.1)
    assert max(seen) <= 20, seen
    p = daemon.docker("logs", n)
    assert "inner=2" in p.out, (p.out, p.err)
    assert "can't fork" in p.err, p.err
    procs = read(cgf("pids", cid, "cgroup.procs")).split()
    assert 15 <= len(procs) <= 20, procs
    st = state(daemon, n)
    assert st["Running"] is True                     # the container itself survives
    assert hostcfg(daemon, n)["PidsLimit"] == 20
    pids = list(map(int, procs))
    daemon.docker("rm", "-f", n)
    for pid in pids:
        assert wait_for(lambda: not os.path.exists(f"/proc/{pid}/cgroup") or
                        cid not in read(f"/proc/{pid}/cgroup"), timeout=10), pid


def test_fork_bomb_bounded(daemon, busybox, ctrs):
    """A real (self-replicating) fork bomb, armed only once the pids limit is confirmed
    in the container's cgroup (holding PID 1); killed after a few seconds."""
    n, cid = run_d(daemon, ctrs, "--pids-limit", "20", "busybox", "sh", "-c",
                   "while [ ! -e /tmp/go ]; do sleep 0.1; done; b(){ b | b & }; b; sleep 30")
    pid1 = state(daemon, n)["Pid"]
    assert read(cgf("pids", cid, "pids.max")) == "20"
    assert str(pid1) in read(cgf("pids", cid, "cgroup.procs")).split()
    try:
        daemon.docker("exec", n, "touch", "/tmp/go")
        cur = cgf("pids", cid, "pids.current")
        seen = []
        deadline = time.time() + 4
        while time.time() < deadline:
            seen.append(int(read(cur)))
            time.sleep(0.05)
        assert max(seen) <= 20, seen
        assert max(seen) >= 10, seen           # the bomb did go off
        assert state(daemon, n)["Running"] is True
    finally:
        t0 = time.time()
        daemon.docker("kill", n, timeout=60, check=False)
    assert wait_for(lambda: state(daemon, n)["Running"] is False, timeout=15)
    assert time.time() - t0 < 20
    assert wait_for(lambda: not os.path.exists(cgf("pids", cid, "pids.current")) or
                    read(cgf("pids", cid, "pids.current")) == "0", timeout=15)


# ---------------------------------------------------------------------------
# cpu, cpuset, blkio


def test_cpus_quota(daemon, busybox, ctrs):
    n, cid = run_d(daemon, ctrs, "--cpus", "0.5", "busybox", "sleep", "300")
    if CG_V2:
        assert read(cgf("cpu", cid, "cpu.max")) == "50000 100000"
    else:
        assert read(cgf("cpu", cid, "cpu.cfs_quota_us")) == "50000"
        assert read(cgf("cpu", cid, "cpu.cfs_period_us")) == "100000"
    assert hostcfg(daemon, n)["NanoCpus"] == 500000000


def test_cpu_quota_and_period(daemon, busybox, ctrs):
    n, cid = run_d(daemon, ctrs, "--cpu-quota", "30000", "--cpu-period", "60000",
                   "busybox", "sleep", "300")
    if CG_V2:
        assert read(cgf("cpu", cid, "cpu.max")) == "30000 60000"
    else:
        assert read(cgf("cpu", cid, "cpu.cfs_quota_us")) == "30000"
        assert read(cgf("cpu", cid, "cpu.cfs_period_us")) == "60000"


def test_cpu_shares(daemon, busybox, ctrs):
    n, cid = run_d(daemon, ctrs, "--cpu-shares", "512", "busybox", "sleep", "300")
    if CG_V2:
        # runc's conversion: weight = 1 + ((shares - 2) * 9999) / 262142
        assert read(cgf("cpu", cid, "cpu.weight")) == str(1 + ((512 - 2) * 9999) // 262142)
    else:
        assert read(cgf("cpu", cid, "cpu.shares")) == "512"
    assert hostcfg(daemon, n)["CpuShares"] == 512


def test_cpuset(daemon, busybox, ctrs):
    n, cid = run_d(daemon, ctrs, "--cpuset-cpus", "0", "busybox", "sleep", "300")
    assert read(cgf("cpuset", cid, "cpuset.cpus" if not CG_V2 else "cpuset.cpus")) == "0"
    assert daemon.docker("exec", n, "grep", "Cpus_allowed_list", "/proc/self/status").out.split()[
        -1] == "0"
    assert hostcfg(daemon, n)["CpusetCpus"] == "0"


def test_cpuset_out_of_range_rejected(daemon, busybox, ctrs):
    n = uniq("lim")
    ctrs.append(n)
    p = daemon.docker("run", "--name", n, "--cpuset-cpus", "4095", "busybox", "true",
                      check=False)
    assert p.returncode != 0, (p.out, p.err)
    assert "cpuset" in p.err.lower() or "4095" in p.err, p.err


def test_blkio_weight(daemon, busybox, ctrs):
    if CG_V2:
        cands = ["io.bfq.weight", "io.weight"]
        base = os.path.join(CG, "berth")
    else:
        cands = ["blkio.weight", "blkio.bfq.weight"]
        base = os.path.join(CG, "blkio")
    if not any(os.path.exists(os.path.join(base, c)) for c in cands):
        pytest.skip(f"the blkio/io controller here has no weight file ({', '.join(cands)}): "
                    "no I/O scheduler with weights")
    n, cid = run_d(daemon, ctrs, "--blkio-weight", "300", "busybox", "sleep", "300")
    f = [cgf("blkio", cid, c) for c in cands if os.path.exists(cgf("blkio", cid, c))]
    assert f, "no weight file in the container's cgroup"
    assert "300" in read(f[0])
    assert hostcfg(daemon, n)["BlkioWeight"] == 300


def test_stats_report_limits(daemon, busybox, ctrs):
    n, cid = run_d(daemon, ctrs, "-m", "48m", "--pids-limit", "33", "busybox", "sleep", "300")
    j = daemon.api_json("GET", f"/containers/{n}/stats?stream=false")
    assert j["memory_stats"]["limit"] == 48 << 20
    assert j["pids_stats"]["limit"] == 33
    assert j["pids_stats"]["current"] == 1
