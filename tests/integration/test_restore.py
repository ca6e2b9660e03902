"""Live restore and restart policies.

Live restore: a private berthd (never the session one) runs a container, is killed
with SIGKILL, and the container must keep running under its shim; a new berthd on
the same roots finds it (ps, inspect, logs that kept growing, exec, stop, wait), and
an exit that happened while no daemon ran is recorded with its code.

Restart policies: no, on-failure[:N], always, unless-stopped, on the session daemon,
and `always` honoured when berthd starts again.

Each test removes its containers; a private daemon is restarted if needed to clean
up, and any container process still alive at the end is killed by its PID.
"""

import json
import os
import signal
import time

import pytest

from conftest import uniq, wait_for

TICKER = "i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.2; done"


def pid_alive(pid):
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def state(d, n):
    return d.api_json("GET", f"/containers/{n}/json")["State"]


def inspect(d, n):
    return d.api_json("GET", f"/containers/{n}/json")


def ticks(text):
    return [int(w[4:]) for w in text.split() if w.startswith("tick") and w[4:].isdigit()]


@pytest.fixture
def rd(own_daemons, rootfs_tar):
    """A private berthd with busybox imported; cleaned up (restarted if need be)."""
    d = own_daemons(uniq("restore")).start()
    d.berth("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=rootfs_tar)
    d.pids = []
    yield d
    if d.proc is None:
        try:
            d.start()
        except RuntimeError:
            pass
    if d.proc is not None:
        try:
            for c in d.api_json("GET", "/containers/json?all=1") or []:
                d.api("DELETE", f"/containers/{c['Id']}?force=1", timeout=60)
        except (OSError, AssertionError):
            pass
    for pid in d.pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)




def run_d(d, *args):
    n = uniq("rs")
    cid = d.docker("run", "-d", "--name", n, *args).out.strip()
    pid = state(d, n)["Pid"]
    if hasattr(d, "pids"):
        d.pids.append(pid)
    return n, cid, pid


# ---------------------------------------------------------------------------
# live restore


def test_container_survives_kill9_and_is_restored(rd):
    n, cid, pid = run_d(rd, "busybox", "sh", "-c", TICKER)
    assert wait_for(lambda: len(ticks(rd.docker("logs", n).out)) >= 3, timeout=10)
    rd.kill9()
    # the container keeps running without a daemon
    time.sleep(1.5)
    assert pid_alive(pid), "the container died with berthd"
    rd.start()
    # found again: ps, inspect
    assert rd.docker("ps", "-q", "--no-trunc", "--filter", f"name={n}").out.split() == [cid]
    st = state(rd, n)
    assert st["Status"] == "running" and st["Running"] is True and st["Pid"] == pid
    # the log kept growing while berthd was down (no gap) and still grows
    t1 = ticks(rd.docker("logs", n).out)
    assert t1 == list(range(1, len(t1) + 1)), t1[:5] + ["..."] + t1[-5:]
    assert len(t1) >= 10, t1           # >= 1.5 s of down time at 5 lines a second
    assert wait_for(lambda: len(ticks(rd.docker("logs", n).out)) > len(t1) + 2, timeout=10)
    # exec and top work through the restored shim
    assert rd.docker("exec", n, "echo", "restored").out == "restored\n"
    p = rd.docker("exec", n, "sh", "-c", "exit 5", check=False)
    assert p.returncode == 5, (p.out, p.err)
    assert str(pid) in rd.docker("top", n).out
    # stop works, and wait sees the exit
    t0 = time.time()
    rd.docker("stop", "-t", "2", n, timeout=60)
    assert time.time() - t0 < 15
    assert wait_for(lambda: not pid_alive(pid), timeout=10)
    st = state(rd, n)
    assert st["Status"] == "exited" and st["ExitCode"] == 137
    assert rd.docker("wait", n, timeout=30).out.strip() == "137"
    rd.docker("rm", n)


def test_logs_follow_and_attach_after_restore(rd):
    n, cid, pid = run_d(rd, "-i", "busybox", "sh", "-c",
                        'read x; echo "got $x"; exit 6')
    rd.kill9()
    rd.start()
    assert state(rd, n)["Running"] is True
    p = rd.docker("attach", n, input="after-restore\n", timeout=30, check=False)
    assert p.returncode == 6, (p.out, p.err)
    assert p.out == "got after-restore\n"
    st = state(rd, n)
    assert st["Status"] == "exited" and st["ExitCode"] == 6
    assert rd.docker("logs", n).out == "got after-restore\n"


def test_exit_while_daemon_down_is_recorded(rd):
    n, cid, pid = run_d(rd, "busybox", "sh", "-c", "sleep 2; echo bye; exit 7")
    rd.kill9()
    assert wait_for(lambda: not pid_alive(pid), timeout=15), "the container did not end"
    time.sleep(0.5)
    t_down_end = time.time()
    rd.start()
    st = state(rd, n)
    assert st["Status"] == "exited" and st["Running"] is False, st
    assert st["ExitCode"] == 7 and st["Pid"] == 0, st
    fin = st["FinishedAt"]
    assert fin != "0001-01-01T00:00:00Z"
    assert rd.docker("wait", n, timeout=30).out.strip() == "7"
    assert rd.docker("logs", n).out == "bye\n"
    assert rd.docker("ps", "-a", "--filter", f"name={n}", "--format", "{{.Status}}").out \
        .startswith("Exited (7)")
    assert t_down_end > 0
    # and it starts again normally
    rd.docker("start", n)
    assert rd.docker("wait", n, timeout=30).out.strip() == "7"


def test_rm_container_across_kill9(rd):
    # a --rm container's start is never written: one still running is
    # adopted, one that ended while berthd was down is removed at restart
    a, _, pa = run_d(rd, "--rm", "busybox", "sh", "-c", "sleep 2; exit 3")
    b, _, pb = run_d(rd, "--rm", "busybox", "sh", "-c", "sleep 60")
    rd.kill9()
    assert wait_for(lambda: not pid_alive(pa), timeout=15), "the container did not end"
    rd.start()

    def names():
        return rd.docker("ps", "-a", "--format", "{{.Names}}").out.split()
    assert wait_for(lambda: a not in names(), timeout=15), names()
    assert b in names()
    st = state(rd, b)
    assert st["Running"] is True and st["Pid"] == pb, st
    assert st["StartedAt"] != "0001-01-01T00:00:00Z"
    rd.docker("kill", b)
    assert wait_for(lambda: b not in names(), timeout=15)


def test_kill9_twice_and_sigterm_restart(rd):
    n, cid, pid = run_d(rd, "busybox", "sleep", "300")
    for _ in range(2):
        rd.kill9()
        assert pid_alive(pid)
        rd.start()
        assert state(rd, n)["Pid"] == pid
    assert rd.docker("exec", n, "true", check=False).returncode == 0
    rd.docker("rm", "-f", n)
    assert wait_for(lambda: not pid_alive(pid), timeout=10)


def test_nothing_left_after_rm_of_restored(rd):
    n, cid, pid = run_d(rd, "busybox", "sleep", "300")
    rd.kill9()
    rd.start()
    rd.docker("rm", "-f", n)
    assert wait_for(lambda: not pid_alive(pid), timeout=10)
    import glob
    import subprocess
    assert wait_for(lambda: not [p for p in glob.glob(f"/sys/fs/cgroup/*/berth/{cid}") +
                                 glob.glob(f"/sys/fs/cgroup/berth/{cid}") if os.path.isdir(p)],
                    timeout=10)
    with open("/proc/self/mountinfo") as f:
        assert cid not in f.read()
    out = subprocess.run(["pgrep", "-f", cid], stdout=subprocess.PIPE, text=True).stdout.split()
    assert [x for x in out if x != str(os.getpid())] == []


# ---------------------------------------------------------------------------
# restart policies


def test_on_failure_max_retries(daemon, busybox, ctrs):
    n = uniq("rp")
    ctrs.append(n)
    daemon.docker("run", "-d", "--name", n, "--restart", "on-failure:2", "busybox",
                  "sh", "-c", "exit 1")
    ok = wait_for(lambda: inspect(daemon, n)["RestartCount"] == 2 and
                  state(daemon, n)["Status"] == "exited", timeout=30, interval=0.2)
    info = inspect(daemon, n)
    assert ok, (info["RestartCount"], info["State"])
    time.sleep(2)                         # and no more attempts
    info = inspect(daemon, n)
    assert info["RestartCount"] == 2
    st = info["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 1 and st["Restarting"] is False
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}


def test_on_failure_not_on_success(daemon, busybox, ctrs):
    n = uniq("rp")
    ctrs.append(n)
    daemon.docker("run", "-d", "--name", n, "--restart", "on-failure", "busybox", "true")
    time.sleep(2)
    info = inspect(daemon, n)
    assert info["RestartCount"] == 0 and info["State"]["Status"] == "exited"


def test_always_restarts_and_stop_ends_it(daemon, busybox, ctrs):
    n = uniq("rp")
    ctrs.append(n)
    daemon.docker("run", "-d", "--name", n, "--restart", "always", "busybox",
                  "sh", "-c", "sleep 0.3; exit 0")
    assert wait_for(lambda: inspect(daemon, n)["RestartCount"] >= 2, timeout=30, interval=0.2), \
        inspect(daemon, n)["State"]
    daemon.docker("stop", "-t", "1", n, timeout=60)
    # stopped between two runs it may still show "restarting" for a moment
    assert wait_for(lambda: state(daemon, n)["Status"] == "exited", timeout=5, interval=0.1), \
        state(daemon, n)
    assert state(daemon, n)["Running"] is False
    count = inspect(daemon, n)["RestartCount"]
    time.sleep(2)
    assert state(daemon, n)["Status"] == "exited"
    assert inspect(daemon, n)["RestartCount"] == count


def test_always_restarts_after_kill_from_inside(daemon, busybox, ctrs):
    n = uniq("rp")
    ctrs.append(n)
    daemon.docker("run", "-d", "--name", n, "--restart", "always", "busybox", "sleep", "300")
    pid = state(daemon, n)["Pid"]
    os.kill(pid, signal.SIGKILL)          # the process dies: not a user stop
    assert wait_for(lambda: state(daemon, n)["Pid"] not in (0, pid) and
                    state(daemon, n)["Running"], timeout=20, interval=0.2), state(daemon, n)
    assert inspect(daemon, n)["RestartCount"] >= 1


def test_unless_stopped(daemon, busybox, ctrs):
    n = uniq("rp")
    ctrs.append(n)
    daemon.docker("run", "-d", "--name", n, "--restart", "unless-stopped", "busybox",
                  "sh", "-c", "sleep 0.3; exit 3")
    assert wait_for(lambda: inspect(daemon, n)["RestartCount"] >= 1, timeout=20, interval=0.2)
    n2 = uniq("rp")
    ctrs.append(n2)
    daemon.docker("run", "-d", "--name", n2, "--restart", "unless-stopped", "busybox",
                  "sleep", "300")
    daemon.docker("stop", "-t", "1", n2, timeout=60)
    time.sleep(2)
    info = inspect(daemon, n2)
    assert info["State"]["Status"] == "exited" and info["RestartCount"] == 0


def test_no_policy_stays_exited(daemon, busybox, ctrs):
    n = uniq("rp")
    ctrs.append(n)
    daemon.docker("run", "-d", "--name", n, "busybox", "sh", "-c", "exit 1")
    time.sleep(1.5)
    info = inspect(daemon, n)
    assert info["RestartCount"] == 0 and info["State"]["Status"] == "exited"
    assert info["HostConfig"]["RestartPolicy"]["Name"] in ("no", "")


def test_bad_restart_policy(daemon, busybox, ctrs):
    n = uniq("rp")
    ctrs.append(n)
    st, _, body = daemon.api("POST", f"/containers/create?name={n}",
                             {"Image": "busybox", "HostConfig": {"RestartPolicy":
                                                                 {"Name": "sometimes"}}})
    assert st == 400, body
    assert daemon.api("GET", f"/containers/{n}/json")[0] == 404
    p = daemon.docker("run", "--name", n, "--restart", "sometimes", "busybox", "true",
                      check=False)
    assert p.returncode == 125, (p.out, p.err)
    # --rm and a restart policy together are refused
    p = daemon.docker("run", "--name", n, "--rm", "--restart", "always", "busybox", "true",
                      check=False)
    assert p.returncode == 125, (p.out, p.err)
    assert daemon.api("GET", f"/containers/{n}/json")[0] == 404


def test_always_started_when_daemon_starts(rd):
    a, aid, apid = run_d(rd, "--restart", "always", "busybox", "sleep", "300")
    u, uid, upid = run_d(rd, "--restart", "unless-stopped", "busybox", "sleep", "300")
    rd.docker("stop", "-t", "1", u, timeout=60)
    rc = rd.stop()                         # SIGTERM while containers run
    assert rc == 0, rd.log()[-3000:]
    rd.start()
    assert wait_for(lambda: state(rd, a)["Running"], timeout=20, interval=0.2), state(rd, a)
    pid = state(rd, a)["Pid"]
    rd.pids.append(pid)
    assert pid_alive(pid)
    assert rd.docker("exec", a, "echo", "up").out == "up\n"
    time.sleep(1)
    assert state(rd, u)["Status"] == "exited"      # stopped by the user: stays stopped


def test_always_restarted_when_it_died_while_daemon_down(rd):
    a, aid, apid = run_d(rd, "--restart", "always", "busybox", "sleep", "300")
    rd.kill9()
    os.kill(apid, signal.SIGKILL)
    assert wait_for(lambda: not pid_alive(apid), timeout=10)
    rd.start()
    assert wait_for(lambda: state(rd, a)["Running"] and state(rd, a)["Pid"] != apid,
                    timeout=20, interval=0.2), state(rd, a)
    rd.pids.append(state(rd, a)["Pid"])
    assert inspect(rd, a)["RestartCount"] >= 1


# ---------------------------------------------------------------------------
# the shim zygote

def zygote_pids(d):
    """berth-shim --zygote processes whose parent is this daemon."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
            ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if len(cmd) > 1 and cmd[1] == b"--zygote" and d.proc and ppid == d.proc.pid:
            out.append(int(p))
    return out


def shim_of(d, cid):
    with open(os.path.join(d.exec_root, "containers", cid, "shim.pid")) as f:
        return int(f.read())


def test_shims_fork_from_the_zygote(rd):
    """Shims are the zygote's children and show their own argv (ps, pgrep -f)."""
    zs = zygote_pids(rd)
    assert len(zs) == 1
    n, cid, pid = run_d(rd, "busybox", "sleep", "60")
    spid = shim_of(rd, cid)
    stat = open(f"/proc/{spid}/stat").read().rsplit(")", 1)[1].split()
    assert int(stat[1]) == zs[0]
    cmd = open(f"/proc/{spid}/cmdline", "rb").read().split(b"\0")
    assert cmd[:3] == [b"berth-shim", b"--id", cid.encode()]
    rd.docker("rm", "-f", n)
    assert wait_for(lambda: not pid_alive(spid), timeout=10)
    # the ended shim was reaped by the zygote: no zombie left
    assert not os.path.exists(f"/proc/{spid}")


def test_zygote_gone_falls_back_to_spawning(rd):
    """Without the zygote, berthd spawns shims itself; containers still run."""
    (z,) = zygote_pids(rd)
    os.kill(z, signal.SIGKILL)
    assert wait_for(lambda: not zygote_pids(rd), timeout=10)  # gone (a zombie has no cmdline)
    r = rd.docker("run", "--rm", "busybox", "echo", "spawned")
    assert r.out.strip() == "spawned"
    n, cid, pid = run_d(rd, "busybox", "sleep", "60")
    assert pid_alive(pid)
    rd.docker("rm", "-f", n)
    assert "shims are spawned directly" in rd.log()


def test_zygote_ends_with_berthd_and_shims_survive(rd):
    """kill -9 of berthd: the zygote exits (its socket closed), shims run on."""
    n, cid, pid = run_d(rd, "busybox", "sleep", "60")
    (z,) = zygote_pids(rd)
    spid = shim_of(rd, cid)
    rd.kill9()
    assert wait_for(lambda: not pid_alive(z), timeout=10)
    assert pid_alive(spid) and pid_alive(pid)
    rd.start()
    assert state(rd, n)["Running"] is True
    assert len(zygote_pids(rd)) == 1
    rd.docker("rm", "-f", n)


# ---------------------------------------------------------------------------
# pooled network namespaces

def netns_mounts(d):
    with open("/proc/self/mountinfo") as f:
        return sorted(l.split()[4] for l in f if os.path.join(d.exec_root, "netns") + "/" in l)


def test_netns_pool_loopback_and_release(rd):
    """--network none gets a namespace from the pool, loopback up, released at exit."""
    assert wait_for(lambda: len(netns_mounts(rd)) == 2, timeout=10)  # the pool is full
    out = rd.docker("run", "--rm", "busybox", "sh", "-c",
                    "ip addr show lo; ping -c1 -W2 127.0.0.1 >/dev/null && echo ping-ok").out
    assert "UP" in out and "127.0.0.1/8" in out and "ping-ok" in out
    n, cid, pid = run_d(rd, "busybox", "sleep", "60")
    key = inspect(rd, n)["NetworkSettings"]["SandboxKey"]
    assert key.startswith(os.path.join(rd.exec_root, "netns") + "/")
    st = os.stat(key)
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == st.st_ino
    rd.docker("stop", "-t", "1", n)
    assert inspect(rd, n)["NetworkSettings"]["SandboxKey"] == ""
    assert wait_for(lambda: key not in netns_mounts(rd), timeout=10)
    assert not os.path.exists(key)
    rd.docker("rm", n)
    assert wait_for(lambda: len(netns_mounts(rd)) == 2, timeout=10)


def test_netns_kept_for_running_containers_across_kill9(rd):
    """After kill -9, a restarted berthd keeps running containers' namespaces and
    releases only the unused pool entries."""
    assert wait_for(lambda: len(netns_mounts(rd)) == 2, timeout=10)
    n, cid, pid = run_d(rd, "busybox", "sleep", "60")
    key = inspect(rd, n)["NetworkSettings"]["SandboxKey"]
    assert wait_for(lambda: len(netns_mounts(rd)) == 3, timeout=10)
    before = netns_mounts(rd)
    rd.kill9()
    rd.start()
    assert key in netns_mounts(rd)
    assert wait_for(lambda: len(netns_mounts(rd)) == 3, timeout=10)
    assert [m for m in before if m != key and m in netns_mounts(rd)] == []  # old spares released
    assert rd.docker("exec", n, "ping", "-c1", "-W2", "127.0.0.1").returncode == 0
    rd.docker("rm", "-f", n)
    assert wait_for(lambda: key not in netns_mounts(rd), timeout=10)


def test_network_host_has_no_sandbox(rd):
    n, cid, pid = run_d(rd, "--network", "host", "busybox", "sleep", "60")
    assert inspect(rd, n)["NetworkSettings"]["SandboxKey"] == ""
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino
    rd.docker("rm", "-f", n)


def test_netns_pool_drained_by_concurrent_starts(rd):
    """More concurrent starts than the pool holds: each waits for its namespace
    (loopback up in all of them), none falls back to a runtime-made one."""
    import concurrent.futures
    def one(_):
        return rd.docker("run", "--rm", "busybox", "sh", "-c",
                         "ip addr show lo | grep -q 'UP' && echo up").out.strip()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        outs = list(ex.map(one, range(8)))
    assert outs == ["up"] * 8
    assert wait_for(lambda: len(netns_mounts(rd)) == 2, timeout=15)


def test_run_adopted_when_its_start_was_not_written(rd):
    """The start's record is written after the 204 (by the waiter); a berthd
    killed before that finds the shim alive and records the run."""
    import json as _json
    n, cid, pid = run_d(rd, "busybox", "sleep", "60")
    rd.kill9()
    path = os.path.join(rd.data_root, "containers", cid, "config.v2.json")
    rec = _json.load(open(path))
    rec["State"].update({"Status": "created", "Running": False, "Pid": 0,
                         "StartedAt": "0001-01-01T00:00:00Z"})
    with open(path, "w") as f:
        _json.dump(rec, f)
    rd.start()
    st = state(rd, n)
    assert st["Running"] is True and st["Status"] == "running"
    assert st["Pid"] == pid and st["StartedAt"] != "0001-01-01T00:00:00Z"
    assert "running under its shim, recorded now" in rd.log()
    rd.docker("stop", "-t", "1", n)
    assert state(rd, n)["Running"] is False and not pid_alive(pid)
    rd.docker("rm", n)


def test_start_failing_after_the_shim_began_leaves_nothing(rd):
    """The shim is forked before the bundle is ready; when preparing it fails
    (here the root cannot be mounted), the waiting shim is let go and exits."""
    cid = rd.docker("create", "busybox", "true").out.strip()
    upper = os.path.join(rd.data_root, "containers", cid, "upper")
    os.makedirs(os.path.dirname(upper), exist_ok=True)
    if os.path.isdir(upper):      # made ahead with the container's directory
        os.rmdir(upper)
    with open(upper, "w") as f:   # a file where the overlay needs a directory
        f.write("x")
    st, _, body = rd.api("POST", f"/containers/{cid}/start")
    assert st == 500, body
    def shims():
        out = []
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    if cid.encode() in open(f"/proc/{p}/cmdline", "rb").read():
                        out.append(p)
                except OSError:
                    pass
        return out
    assert wait_for(lambda: not shims(), timeout=5)
    assert not os.path.exists(os.path.join(rd.exec_root, "containers", cid, "shim.sock"))
    os.unlink(upper)
    assert rd.docker("start", "-a", cid).returncode == 0
    rd.docker("rm", cid)


# ---------------------------------------------------------------------------
# directories made ahead

def premade_cgroups(names):
    """The .pool-NAME cgroup directories of these pool entries (other daemons
    of the test session have their own)."""
    out = []
    for h in os.listdir("/sys/fs/cgroup"):
        d = os.path.join("/sys/fs/cgroup", h, "berth")
        out += [os.path.join(d, f".pool-{n}") for n in names
                if os.path.isdir(os.path.join(d, f".pool-{n}"))]
    return out


def test_directories_made_ahead_are_used_and_cleaned(rd):
    """Container directories (upper, work) and their v1 cgroup directories are
    made ahead; a start takes them; a stopped berthd leaves none behind."""
    pool = os.path.join(rd.data_root, "containers", ".pool")
    assert wait_for(lambda: len(os.listdir(pool)) == 2, timeout=10)
    v1 = [h for h in os.listdir("/sys/fs/cgroup")
          if os.path.isdir(os.path.join("/sys/fs/cgroup", h, "berth")) and h != "unified"
          and not os.path.exists(os.path.join("/sys/fs/cgroup", h, "cgroup.controllers"))]
    seen = set(os.listdir(pool))
    if v1:
        assert wait_for(lambda: len(premade_cgroups(os.listdir(pool))) == 2 * len(v1), timeout=10)
    n, cid, pid = run_d(rd, "busybox", "sleep", "60")
    cdir = os.path.join(rd.data_root, "containers", cid)
    assert sorted(os.listdir(os.path.join(cdir, "upper"))) == []
    for h in v1:
        assert os.path.isdir(os.path.join("/sys/fs/cgroup", h, "berth", cid))
    rd.docker("rm", "-f", n)
    for h in v1:
        assert not os.path.exists(os.path.join("/sys/fs/cgroup", h, "berth", cid))
    assert wait_for(lambda: len(os.listdir(pool)) == 2, timeout=10)
    seen |= set(os.listdir(pool))
    rd.stop()
    assert not os.path.exists(pool)
    assert premade_cgroups(seen) == []


def test_directories_made_at_daemon_start_keep_their_modes(own_daemons, rootfs_tar):
    """The directories the pool makes while berthd starts (its socket is
    bound meanwhile) have their modes: the first container's / is 755, as
    every later one's, and a non-root user can use it. (A umask changed
    around the socket's bind, process-wide, sometimes gave them 0640; that
    race is rare here, so this guards the modes more than it can catch it.)"""
    for i in range(3):
        d = own_daemons(uniq("modes")).start()
        pool = os.path.join(d.data_root, "containers", ".pool")
        assert wait_for(lambda: len(os.listdir(pool)) == 2, timeout=10)
        for e in os.listdir(pool):
            assert oct(os.stat(os.path.join(pool, e, "upper")).st_mode & 0o7777) == "0o755"
            assert oct(os.stat(os.path.join(pool, e, "work")).st_mode & 0o7777) == "0o700"
        d.berth("import", "-", "busybox:latest", input=rootfs_tar)
        out = d.berth("run", "--rm", "-u", "65534", "busybox", "sh", "-c", "stat -c %a / && ls /bin/sh")
        assert out.out.split() == ["755", "/bin/sh"], out.out
        d.stop()


def cgroup_view(d, n):
    """What container n sees of its cgroups: /sys/fs/cgroup's mounts (their
    ids dropped), its entries, /proc/self/cgroup, and what a write gives."""
    return d.docker("exec", n, "sh", "-c",
                    "grep ' /sys/fs/cgroup' /proc/self/mountinfo | cut -d' ' -f4- | sort; "
                    "for f in /sys/fs/cgroup/*; do stat -c '%n %a %F' $f; done; "
                    "cat /proc/self/cgroup; touch /sys/fs/cgroup/x /sys/fs/cgroup/pids/x 2>&1; "
                    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes", check=False).out


def dev_view(d, n):
    """What container n sees of /dev: its entries (times dropped) and mounts."""
    return d.docker("exec", n, "sh", "-c",
                    "ls -la /dev /dev/pts /dev/shm | sed 's/ [A-Z][a-z][a-z] [ 0-9]* [0-9:]* / /'; "
                    "grep ' /dev' /proc/self/mountinfo | cut -d' ' -f4- | sort; "
                    "echo x > /dev/shm/f && cat /dev/shm/f; head -c 3 /dev/zero | wc -c; "
                    "df -k /dev /dev/shm | tail -2 | tr -s ' ' | cut -d' ' -f2",
                    check=False).out


def host_devices_list(cid):
    with open(f"/sys/fs/cgroup/devices/berth/{cid}/devices.list") as f:
        return f.read()


def spec_annotations(d, cid):
    with open(os.path.join(d.exec_root, "containers", cid, "config.json")) as f:
        return json.load(f).get("annotations", {})


@pytest.mark.parametrize("extra", [[], ["--device-cgroup-rule", "c 7:* rw"], ["--shm-size", "32m"]])
def test_premade_cgroups_look_like_ones_made_at_start(rd, extra):
    """A first start takes cgroup directories made ahead, with the default
    device rules written in and its /sys/fs/cgroup tree built (cgroup v1 and
    hybrid hosts), and a /dev made ahead; a restart makes all of it at the
    start. The container sees the same either way, and its devices cgroup
    holds the same rules (a rule of its own: the premade rules are not taken
    as its; a /dev of other options: the premade one is not used)."""
    if not os.path.isdir("/sys/fs/cgroup/devices/berth"):
        pytest.skip("no cgroup v1 devices hierarchy")
    pool = os.path.join(rd.data_root, "containers", ".pool")
    assert wait_for(lambda: len(premade_cgroups(os.listdir(pool))) > 0, timeout=10)
    n, cid, pid = run_d(rd, "-m", "64m", *extra, "busybox", "sleep", "60")
    ann = spec_annotations(rd, cid)
    assert ann.get("org.berth.cgroup-made") == "true", ann
    rule = "--device-cgroup-rule" in extra
    assert ann.get("org.berth.cgroup-devices-made") == (None if rule else "true"), ann
    assert ann.get("org.berth.dev-made") == (None if "--shm-size" in extra else "true"), ann
    first, rules, dev = cgroup_view(rd, n), host_devices_list(cid), dev_view(rd, n)
    assert "crw-rw-rw-" in dev and "ptmx -> pts/ptmx" in dev and "\nx\n3\n" in dev, dev
    assert ("32768" if "--shm-size" in extra else "65536") in dev.split()[-1:], dev
    assert "Read-only file system" in first and "67108864" in first, first
    assert first.count(" - cgroup") >= 2, first
    rd.docker("restart", "-t", "0", n)
    ann = spec_annotations(rd, cid)
    assert not [k for k in ann if k.startswith("org.berth.") and k.endswith("-made")], ann
    assert cgroup_view(rd, n) == first
    assert host_devices_list(cid) == rules
    assert dev_view(rd, n) == dev
    assert ("c 7:* rw" in rules.split("\n")) == rule, rules
    rd.docker("rm", "-f", n)


# ---------------------------------------------------------------------------
# --rm roots kept for the next --rm container (src/daemon/warm.h)

def warm_entries(d):
    p = os.path.join(d.data_root, "containers", ".warm")
    return sorted(os.listdir(p)) if os.path.isdir(p) else []


def run_rm(d, script, image="busybox"):
    """A --rm container's output; its first line is its root's device number
    (one per overlay mount: the same number, the same mounted root)."""
    out = d.docker("run", "--rm", image, "sh", "-c", "stat -c %d /; " + script).out.split("\n")
    return out[0], out[1:]


def test_rm_root_kept_only_when_nothing_was_written(rd):
    """A --rm root left as it was is taken by the next --rm container of the
    image; one whose root was changed (an entry made, the mode of / set) is
    not, and the next sees none of it."""
    dev1, _ = run_rm(rd, "true")
    assert wait_for(lambda: len(warm_entries(rd)) == 1, timeout=10)
    with open("/proc/self/mountinfo") as f:
        assert "upperdir=upper" not in f.read()  # a kept root is detached
    dev2, _ = run_rm(rd, "chmod 711 /")
    assert dev2 == dev1
    time.sleep(0.5)  # its end: not kept
    assert wait_for(lambda: warm_entries(rd) == [], timeout=10)
    dev3, out = run_rm(rd, "stat -c %a /; touch /written")
    assert out[0] == "755"  # (a device number may be used again: not compared)
    time.sleep(0.5)
    assert wait_for(lambda: warm_entries(rd) == [], timeout=10)
    dev4, out = run_rm(rd, "ls /written 2>/dev/null || echo absent")
    assert out[0] == "absent"
    assert wait_for(lambda: len(warm_entries(rd)) == 1, timeout=10)
    # a container that is not --rm never takes one, and keeps its own root
    n, cid, pid = run_d(rd, "busybox", "sleep", "60")
    assert len(warm_entries(rd)) == 1
    rd.docker("rm", "-f", n)


def test_kept_roots_go_with_berthd_and_with_their_image(rd):
    """Kept roots and their cgroup directories are gone after a stop, after a
    kill -9 (at the next start), and when their image's layers are removed."""
    run_rm(rd, "true")
    assert wait_for(lambda: len(warm_entries(rd)) == 1, timeout=10)
    names = warm_entries(rd)
    rd.stop()
    assert warm_entries(rd) == [] and premade_cgroups(names) == []
    rd.start()
    run_rm(rd, "true")
    assert wait_for(lambda: len(warm_entries(rd)) == 1, timeout=10)
    names = warm_entries(rd)
    rd.kill9()
    rd.start()
    assert not set(names) & set(warm_entries(rd))
    assert wait_for(lambda: premade_cgroups(names) == [], timeout=10)
    # an image of its own layer: its kept root goes with it
    n = uniq("wm")
    rd.docker("run", "--name", n, "busybox", "touch", "/marker")
    rd.docker("commit", n, "warmimg:1")
    rd.docker("rm", n)
    run_rm(rd, "true", image="warmimg:1")
    assert wait_for(lambda: len(warm_entries(rd)) == 1, timeout=10)
    rd.docker("rmi", "warmimg:1")
    assert warm_entries(rd) == []
    dev, out = run_rm(rd, "ls /marker 2>/dev/null || echo absent")
    assert out[0] == "absent"
