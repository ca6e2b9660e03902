"""Containers through the Docker Engine API: lifecycle, inspect, logs, attach, exec,
top, stats, update, prune, events and the error paths, driven by the real docker
CLIs, docker-py and raw HTTP against the session berthd, and checked from the host
side (processes, cgroup files, mounts, shims).

Every test names its containers and removes them at teardown (the `ctrs` fixture),
even when it fails. Loops are bounded in count and time; no traffic leaves the host
(an image that does not exist is looked up at 127.0.0.1:1, never at a registry).
"""

import datetime
import glob
import json
import os
import re
import select
import subprocess
import time

import pytest

from conftest import (DOCKER_CLIS, api_events, err_message, qs, ts, uniq, wait_for)

CG = "/sys/fs/cgroup"
CG_V2 = os.path.exists(os.path.join(CG, "cgroup.controllers"))
HEX64 = re.compile(r"^[0-9a-f]{64}$")
ZERO_TIME = "0001-01-01T00:00:00Z"
OLD = DOCKER_CLIS[0]           # /usr/bin/docker (20.10)
NEW = DOCKER_CLIS[-1]          # /usr/local/bin/docker (newer)


# ---------------------------------------------------------------------------
# helpers




def name(ctrs, prefix="c"):
    n = uniq(prefix)
    ctrs.append(n)
    return n


def inspect(d, c):
    return d.api_json("GET", f"/containers/{c}/json")


def state(d, c):
    return inspect(d, c)["State"]


def exists(d, c):
    return d.api("GET", f"/containers/{c}/json")[0] == 200


def parse_time(s):
    """Docker's RFC 3339 time with nanoseconds -> aware datetime."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", s)
    assert m, f"not an RFC 3339 time: {s!r}"
    frac = (m.group(2) or ".0")[1:7].ljust(6, "0")
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.datetime.fromisoformat(f"{m.group(1)}.{frac}{tz}")


def epoch(s):
    return parse_time(s).timestamp()


def wait_status(d, c, status, timeout=15):
    ok = wait_for(lambda: state(d, c)["Status"] == status, timeout=timeout, interval=0.1)
    assert ok, f"{c} did not reach {status}: {state(d, c)}"


def cgroup_file(controller, cid, fname):
    if CG_V2:
        return os.path.join(CG, "berth", cid, fname)
    return os.path.join(CG, controller, "berth", cid, fname)


def read(path):
    with open(path) as f:
        return f.read().strip()


def cgroup_dirs(cid):
    return [p for p in glob.glob(os.path.join(CG, "*", "berth", cid)) +
            glob.glob(os.path.join(CG, "berth", cid)) if os.path.isdir(p)]


def mounts_with(cid):
    with open("/proc/self/mountinfo") as f:
        return [l for l in f if cid in l]


def shims_with(cid):
    p = subprocess.run(["pgrep", "-f", cid], stdout=subprocess.PIPE, text=True)
    mine = str(os.getpid())
    return [x for x in p.stdout.split() if x != mine]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); count it as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def run_d(d, ctrs, *args, cli=None, prefix="c"):
    """docker run -d --name N ARGS; returns (name, id)."""
    n = name(ctrs, prefix)
    p = d.docker("run", "-d", "--name", n, *args, cli=cli)
    cid = p.out.strip()
    assert HEX64.match(cid), p.out
    return n, cid


def read_lines_until(proc, pred, timeout):
    """Reads proc.stdout (bytes) until pred(text) or timeout; returns the text."""
    buf = b""
    deadline = time.time() + timeout
    fd = proc.stdout.fileno()
    while time.time() < deadline and not pred(buf.decode(errors="replace")):
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
    return buf.decode(errors="replace")


def stop_proc(p):
    if p.poll() is None:
        p.kill()
    try:
        p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        pass


# ---------------------------------------------------------------------------
# run


@pytest.mark.parametrize("which", DOCKER_CLIS)
def test_run_foreground_output_and_rm(daemon, busybox, ctrs, which):
    n = name(ctrs)
    p = daemon.docker("run", "--rm", "--name", n, "busybox", "echo", "hello world", cli=which)
    assert p.out == "hello world\n"
    assert p.returncode == 0
    # --rm: gone once run returns (allow the daemon a moment to finish the removal)
    assert wait_for(lambda: not exists(daemon, n), timeout=10), "--rm left the container"


@pytest.mark.parametrize("which", DOCKER_CLIS)
def test_run_exit_code_propagates(daemon, busybox, ctrs, which):
    n = name(ctrs)
    p = daemon.docker("run", "--name", n, "busybox", "sh", "-c", "echo out; exit 3",
                      cli=which, check=False)
    assert p.returncode == 3, p.err
    assert p.out == "out\n"
    st = state(daemon, n)
    assert st["Status"] == "exited" and st["ExitCode"] == 3 and st["Running"] is False


def test_run_stderr_goes_to_stderr(daemon, busybox, ctrs):
    n = name(ctrs)
    p = daemon.docker("run", "--name", n, "busybox", "sh", "-c", "echo O; echo E >&2")
    assert p.out == "O\n"
    assert p.err == "E\n"


def test_run_detached_prints_id(daemon, busybox, ctrs):
    n, cid = run_d(daemon, ctrs, "busybox", "sleep", "300")
    info = inspect(daemon, n)
    assert info["Id"] == cid
    assert info["Name"] == "/" + n
    assert info["State"]["Running"] is True
    pid = info["State"]["Pid"]
    assert pid > 0 and pid_alive(pid)
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sleep", b"300"]
    # short ID and full ID both resolve
    assert inspect(daemon, cid[:12])["Id"] == cid


def test_run_env_workdir_user_entrypoint(daemon, busybox, ctrs):
    n = name(ctrs)
    p = daemon.docker("run", "--rm", "--name", n, "-e", "FOO=bar baz", "-w", "/made/here",
                      "-u", "65534:65534", "--entrypoint", "sh", "busybox",
                      "-c", 'echo "$FOO|$(pwd)|$(id -u):$(id -g)|$HOSTNAME"')
    foo, cwd, ids, host = p.out.strip().split("|")
    assert (foo, cwd, ids) == ("bar baz", "/made/here", "65534:65534")
    assert re.match(r"^[0-9a-f]{12}$", host), host


# ---------------------------------------------------------------------------
# create / start / stop / restart / kill / pause / wait / rm / rename


def test_create_start_stop(daemon, busybox, ctrs):
    n = name(ctrs)
    cid = daemon.docker("create", "--name", n, "busybox", "sleep", "300").out.strip()
    assert HEX64.match(cid)
    st = state(daemon, n)
    assert st["Status"] == "created" and st["Running"] is False and st["Pid"] == 0
    assert st["StartedAt"] == ZERO_TIME and st["FinishedAt"] == ZERO_TIME
    assert daemon.docker("start", n).out.strip() == n
    st = state(daemon, n)
    assert st["Status"] == "running" and st["Pid"] > 0
    pid = st["Pid"]
    # sleep as PID 1 has no TERM handler: stop waits -t seconds, then SIGKILL
    t0 = time.time()
    assert daemon.docker("stop", "-t", "1", n).out.strip() == n
    el = time.time() - t0
    assert 0.9 <= el < 10, el
    st = state(daemon, n)
    assert st["Status"] == "exited" and st["ExitCode"] == 137 and st["Pid"] == 0
    assert not pid_alive(pid)
    assert epoch(st["FinishedAt"]) >= epoch(st["StartedAt"])


def test_stop_with_term_handler_is_quick(daemon, busybox, ctrs):
    n, _ = run_d(daemon, ctrs, "busybox", "sh", "-c",
                 'trap "exit 7" TERM; while true; do sleep 0.1; done')
    t0 = time.time()
    daemon.docker("stop", "-t", "10", n)
    assert time.time() - t0 < 5
    assert state(daemon, n)["ExitCode"] == 7


def test_stop_signal_option(daemon, busybox, ctrs):
    n, _ = run_d(daemon, ctrs, "--stop-signal", "USR1", "busybox", "sh", "-c",
                 'trap "exit 11" USR1; while true; do sleep 0.1; done')
    assert inspect(daemon, n)["Config"]["StopSignal"] == "USR1"
    t0 = time.time()
    daemon.docker("stop", "-t", "10", n)
    assert time.time() - t0 < 5
    assert state(daemon, n)["ExitCode"] == 11


def test_restart(daemon, busybox, ctrs):
    n, _ = run_d(daemon, ctrs, "busybox", "sh", "-c",
                 'trap "exit 0" TERM; while true; do sleep 0.1; done')
    before = state(daemon, n)
    time.sleep(0.05)
    assert daemon.docker("restart", "-t", "5", n).out.strip() == n
    after = state(daemon, n)
    assert after["Status"] == "running" and after["Running"] is True
    assert after["Pid"] > 0 and after["Pid"] != before["Pid"]
    assert not pid_alive(before["Pid"])
    assert epoch(after["StartedAt"]) > epoch(before["StartedAt"])
    assert inspect(daemon, n)["RestartCount"] == 0        # a manual restart is not counted


def test_kill_default_and_signal(daemon, busybox, ctrs):
    n, _ = run_d(daemon, ctrs, "busybox", "sleep", "300")
    assert daemon.docker("kill", n).out.strip() == n
    wait_status(daemon, n, "exited")
    assert state(daemon, n)["ExitCode"] == 137

    n2, _ = run_d(daemon, ctrs, "busybox", "sh", "-c",
                  'trap "exit 9" USR1; while true; do sleep 0.1; done')
    daemon.docker("kill", "-s", "USR1", n2)
    wait_status(daemon, n2, "exited")
    assert state(daemon, n2)["ExitCode"] == 9

    n3, _ = run_d(daemon, ctrs, "busybox", "sh", "-c",
                  'trap "exit 12" HUP; while true; do sleep 0.1; done')
    daemon.docker("kill", "-s", "SIGHUP", n3)
    wait_status(daemon, n3, "exited")
    assert state(daemon, n3)["ExitCode"] == 12


def test_pause_unpause(daemon, busybox, ctrs):
    n, cid = run_d(daemon, ctrs, "busybox", "sh", "-c",
                   "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done")
    daemon.docker("pause", n)
    st = state(daemon, n)
    assert st["Status"] == "paused" and st["Paused"] is True and st["Running"] is True
    if CG_V2:
        assert read(cgroup_file(None, cid, "cgroup.freeze")) == "1"
    else:
        assert read(cgroup_file("freezer", cid, "freezer.state")) == "FROZEN"
    # the process is frozen: no output while paused
    time.sleep(0.3)
    l1 = daemon.docker("logs", n).out
    time.sleep(0.6)
    assert daemon.docker("logs", n).out == l1
    assert "paused" in daemon.docker("ps", "--filter", f"name={n}", "--format",
                                     "{{.Status}}").out.lower()
    # exec in a paused container is refused with 409
    st_, _, body = daemon.api("POST", f"/containers/{n}/exec", {"Cmd": ["true"]})
    assert st_ == 409, body
    assert "paused" in err_message(body).lower()
    daemon.docker("unpause", n)
    st = state(daemon, n)
    assert st["Status"] == "running" and st["Paused"] is False
    if not CG_V2:
        assert read(cgroup_file("freezer", cid, "freezer.state")) == "THAWED"
    assert wait_for(lambda: daemon.docker("logs", n).out != l1, timeout=5)
    # pause twice / unpause a running one: 409
    assert daemon.api("POST", f"/containers/{n}/unpause")[0] == 409


def test_wait_prints_exit_code(daemon, busybox, ctrs):
    n, _ = run_d(daemon, ctrs, "busybox", "sh", "-c", "sleep 1; exit 5")
    p = daemon.docker("wait", n, timeout=30)
    assert p.out.strip() == "5"
    # waiting on an exited container returns at once
    t0 = time.time()
    assert daemon.docker("wait", n, timeout=30).out.strip() == "5"
    assert time.time() - t0 < 5


def test_wait_api_conditions(daemon, busybox, ctrs):
    n = name(ctrs)
    daemon.docker("create", "--name", n, "busybox", "sh", "-c", "exit 4")
    # not-running on a created container returns at once
    st, _, body = daemon.api("POST", f"/containers/{n}/wait?condition=not-running", timeout=10)
    assert st == 200 and json.loads(body)["StatusCode"] == 0
    daemon.docker("start", n)
    st, _, body = daemon.api("POST", f"/containers/{n}/wait", timeout=30)
    assert st == 200, body
    assert json.loads(body)["StatusCode"] == 4
    st, _, body = daemon.api("POST", f"/containers/{n}/wait?condition=bogus", timeout=10)
    assert st == 400, body


def test_rm_running_needs_force(daemon, busybox, ctrs):
    n, cid = run_d(daemon, ctrs, "busybox", "sleep", "300")
    p = daemon.docker("rm", n, check=False)
    assert p.returncode == 1
    assert "stop the container" in p.err.lower() or "running" in p.err.lower(), p.err
    assert state(daemon, n)["Running"] is True
    st, _, body = daemon.api("DELETE", f"/containers/{n}")
    assert st == 409, body
    assert daemon.docker("rm", "-f", n).out.strip() == n
    assert not exists(daemon, n)
    assert not exists(daemon, cid)


def test_rm_unknown_is_404(daemon):
    p = daemon.docker("rm", "nosuchcontainer" + uniq(), check=False)
    assert p.returncode == 1 and "no such container" in p.err.lower(), p.err
    st, _, body = daemon.api("DELETE", "/containers/nosuch" + uniq())
    assert st == 404 and "no such container" in err_message(body).lower()


def test_rename(daemon, busybox, ctrs):
    n, cid = run_d(daemon, ctrs, "busybox", "sleep", "300")
    new = name(ctrs, "ren")
    daemon.docker("rename", n, new)
    assert inspect(daemon, new)["Id"] == cid
    assert inspect(daemon, new)["Name"] == "/" + new
    assert not exists(daemon, n)
    # the old name is free again
    n2 = n
    daemon.docker("create", "--name", n2, "busybox", "true")
    # renaming onto a name in use: 409 Conflict
    st, _, body = daemon.api("POST", f"/containers/{new}/rename?name={n2}")
    assert st == 409, body
    assert inspect(daemon, new)["Id"] == cid


# ---------------------------------------------------------------------------
# ps


def test_ps_filters(daemon, busybox, ctrs):
    tag = uniq("ps")
    lab = f"berth.test={tag}"
    a = name(ctrs, "psa")
    daemon.docker("run", "--name", a, "-l", lab, "busybox", "true")
    b, bid = run_d(daemon, ctrs, "-l", lab, "-l", "role=server", "busybox", "sleep", "300")
    c = name(ctrs, "psc")
    cidc = daemon.docker("create", "--name", c, "-l", lab, "busybox", "true").out.strip()
    aid = inspect(daemon, a)["Id"]

    def ps(*args):
        out = daemon.docker("ps", "--filter", f"label={lab}", *args).out
        return sorted(out.split())

    assert ps("-a", "-q") == sorted(x[:12] for x in (aid, bid, cidc))
    assert ps("-q") == [bid[:12]]                              # running only
    assert ps("-a", "-q", "--no-trunc") == sorted((aid, bid, cidc))
    assert ps("-a", "-q", "--filter", "status=exited") == [aid[:12]]
    assert ps("-a", "-q", "--filter", "status=created") == [cidc[:12]]
    assert ps("-a", "-q", "--filter", "status=running") == [bid[:12]]
    assert ps("-a", "-q", "--filter", f"name={a}") == [aid[:12]]
    assert ps("-a", "-q", "--filter", "label=role=server") == [bid[:12]]
    assert ps("-a", "-q", "--filter", "label=role") == [bid[:12]]
    assert ps("-a", "-q", "--filter", "ancestor=busybox") == sorted(
        x[:12] for x in (aid, bid, cidc))
    assert ps("-a", "-q", "--filter", "ancestor=busybox:latest") == sorted(
        x[:12] for x in (aid, bid, cidc))
    assert ps("-a", "-q", "--filter", "exited=0") == [aid[:12]]
    assert ps("-a", "-q", "--filter", f"id={bid[:12]}") == [bid[:12]]
    assert ps("-a", "--format", "{{.Names}}") == sorted((a, b, c))
    # default table: header and one row per container
    out = daemon.docker("ps", "-a", "--filter", f"label={lab}").out.splitlines()
    assert out[0].split()[:3] == ["CONTAINER", "ID", "IMAGE"]
    assert len(out) == 4
    row = [l for l in out if b in l][0]
    assert row.startswith(bid[:12]) and "busybox" in row and "Up " in row
    row = [l for l in out if a in l][0]
    assert "Exited (0)" in row
    # the API filter map
    lst = daemon.api_json("GET", "/containers/json?" + qs(
        [("all", 1), ("filters", {"label": [lab], "status": ["exited", "created"]})]))
    assert sorted(x["Id"] for x in lst) == sorted((aid, cidc))
    for x in lst:
        assert x["Labels"][("berth.test")] == tag
        assert x["Image"] == "busybox"
        assert x["State"] in ("exited", "created")
        assert x["Names"] in (["/" + a], ["/" + c])


def test_ps_bad_filter_is_400(daemon):
    st, _, body = daemon.api("GET", "/containers/json?" + qs(
        [("filters", {"status": ["sleepy"]})]))
    assert st == 400, body
    st, _, body = daemon.api("GET", "/containers/json?" + qs([("filters", {"nosuchkey": ["x"]})]))
    assert st == 400, body
    p = daemon.docker("ps", "--filter", "status=sleepy", check=False)
    assert p.returncode == 1 and "status" in p.err.lower(), p.err


# ---------------------------------------------------------------------------
# inspect


def test_inspect_state_fields(daemon, busybox, ctrs):
    t0 = time.time()
    n, cid = run_d(daemon, ctrs, "busybox", "sleep", "300")
    info = inspect(daemon, n)
    st = info["State"]
    assert st["Status"] == "running"
    assert (st["Running"], st["Paused"], st["Restarting"], st["OOMKilled"], st["Dead"]) == \
        (True, False, False, False, False)
    assert st["Pid"] > 0 and st["ExitCode"] == 0 and st["Error"] == ""
    assert abs(epoch(st["StartedAt"]) - t0) < 30
    assert st["FinishedAt"] == ZERO_TIME
    assert info["RestartCount"] == 0
    assert info["Path"] == "sleep" and info["Args"] == ["300"]
    assert info["Config"]["Image"] == "busybox"
    assert info["Image"].startswith("sha256:")
    assert info["Config"]["Hostname"] == cid[:12]
    assert info["HostConfig"]["NetworkMode"] in ("none", "default")
    assert abs(epoch(info["Created"]) - t0) < 30
    daemon.docker("kill", n)
    wait_status(daemon, n, "exited")
    st = state(daemon, n)
    assert (st["Running"], st["Paused"], st["Pid"], st["ExitCode"]) == (False, False, 0, 137)
    assert epoch(st["FinishedAt"]) >= epoch(st["StartedAt"])
    assert abs(epoch(st["FinishedAt"]) - time.time()) < 30
    # --format through the CLI
    out = daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", n).out
    assert out.strip() == "exited 137"


def test_inspect_unknown(daemon):
    p = daemon.docker("inspect", "--type", "container", "nosuch" + uniq(), check=False)
    assert p.returncode == 1 and "no such" in p.err.lower(), p.err


# ---------------------------------------------------------------------------
# logs


def test_logs_streams_tail_timestamps(daemon, busybox, ctrs):
    n = name(ctrs)
    daemon.docker("run", "--name", n, "busybox", "sh", "-c",
                  "echo out1; sleep 0.1; echo err1 >&2; sleep 0.1; echo out2; sleep 0.1; "
                  "echo err2 >&2; sleep 0.1; echo out3")
    p = daemon.docker("logs", n)
    assert p.out == "out1\nout2\nout3\n"
    assert p.err == "err1\nerr2\n"
    p = daemon.docker("logs", "--tail", "1", n)
    assert p.out + p.err in ("out3\n",)
    p = daemon.docker("logs", "--tail", "2", n)
    assert p.out == "out3\n" and p.err == "err2\n"
    p = daemon.docker("logs", "--tail", "0", n)
    assert p.out == "" and p.err == ""
    p = daemon.docker("logs", "-t", n)
    lines = p.out.splitlines()
    assert len(lines) == 3
    for l, want in zip(lines, ("out1", "out2", "out3")):
        stamp, text = l.split(" ", 1)
        assert text == want
        assert abs(epoch(stamp) - time.time()) < 60
    # API: stdout only / stderr only, raw frames
    st, _, body = daemon.api("GET", f"/containers/{n}/logs?stdout=1")
    assert st == 200
    assert demux(body) == {1: b"out1\nout2\nout3\n"}
    st, _, body = daemon.api("GET", f"/containers/{n}/logs?stderr=1")
    assert demux(body) == {2: b"err1\nerr2\n"}


def demux(body):
    out = {}
    i = 0
    while i + 8 <= len(body):
        kind = body[i]
        size = int.from_bytes(body[i + 4:i + 8], "big")
        out[kind] = out.get(kind, b"") + body[i + 8:i + 8 + size]
        i += 8 + size
    assert i == len(body), f"trailing bytes in a multiplexed stream: {body[i:]!r}"
    return out


def test_logs_since(daemon, busybox, ctrs):
    n, _ = run_d(daemon, ctrs, "busybox", "sh", "-c", "echo a; sleep 2; echo b; sleep 300")
    assert wait_for(lambda: "a" in daemon.docker("logs", n).out, timeout=10)
    mid = time.time()
    assert wait_for(lambda: "b" in daemon.docker("logs", n).out, timeout=10)
    assert daemon.docker("logs", n).out == "a\nb\n"
    assert daemon.docker("logs", "--since", "%.3f" % mid, n).out == "b\n"
    assert daemon.docker("logs", "--since", "%d" % (time.time() + 60), n).out == ""
    assert daemon.docker("logs", "--since", "1h", n).out == "a\nb\n"
    # until (API) bounds the other end
    st, _, body = daemon.api("GET", f"/containers/{n}/logs?stdout=1&until={mid:.3f}")
    assert st == 200 and demux(body) == {1: b"a\n"}


def test_logs_follow_ends_with_container(daemon, busybox, ctrs):
    n, _ = run_d(daemon, ctrs, "busybox", "sh", "-c",
                 "for i in 1 2 3 4 5; do echo line$i; sleep 0.2; done")
    t0 = time.time()
    p = daemon.docker("logs", "-f", n, timeout=30)
    assert p.out == "".join(f"line{i}\n" for i in range(1, 6))
    assert time.time() - t0 < 20


def test_logs_follow_running_bounded(daemon, busybox, ctrs):
    n, _ = run_d(daemon, ctrs, "busybox", "sh", "-c",
                 "i=0; while true; do i=$((i+1)); echo n$i; sleep 0.2; done")
    p = subprocess.Popen([OLD, "-H", daemon.host, "logs", "-f", "--tail", "0", n],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        text = read_lines_until(p, lambda t: t.count("\n") >= 3, timeout=15)
        nums = [int(x[1:]) for x in text.split()]
        assert len(nums) >= 3, text
        assert nums == list(range(nums[0], nums[0] + len(nums))), text   # no gaps, in order
    finally:
        stop_proc(p)


# ---------------------------------------------------------------------------
# attach


def test_attach_to_running_stdin_and_exit_code(daemon, busybox, ctrs):
    n, _ = run_d(daemon, ctrs, "-i", "busybox", "sh", "-c",
                 'read x; echo "got $x"; echo to-err >&2; exit 4')
    p = daemon.docker("attach", n, input="hello\n", timeout=30, check=False)
    assert p.returncode == 4, (p.out, p.err)
    assert p.out == "got hello\n"
    assert p.err == "to-err\n"
    assert state(daemon, n)["ExitCode"] == 4


def test_attach_sees_output_of_running(daemon, busybox, ctrs):
    n, _ = run_d(daemon, ctrs, "busybox", "sh", "-c",
                 "i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.2; done")
    p = subprocess.Popen([OLD, "-H", daemon.host, "attach", "--no-stdin", n],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        text = read_lines_until(p, lambda t: t.count("tick") >= 3, timeout=15)
        assert text.count("tick") >= 3, text
    finally:
        stop_proc(p)
    # detaching the client leaves the container running
    assert state(daemon, n)["Running"] is True


def test_attach_docker_py(daemon, busybox, ctrs):
    n = name(ctrs)
    client = daemon.client()
    try:
        c = client.containers.create("busybox", ["sh", "-c", "sleep 0.5; echo via-py"], name=n)
        sock = c.attach(stream=True, stdout=True, stderr=True, logs=True)
        c.start()
        data = b""
        deadline = time.time() + 20
        for chunk in sock:
            data += chunk
            if b"via-py" in data or time.time() > deadline:
                break
        assert b"via-py\n" in data
        assert c.wait(timeout=30)["StatusCode"] == 0
    finally:
        client.close()


# ---------------------------------------------------------------------------
# exec


def test_exec_output_code_env_workdir_user(daemon, busybox, ctrs):
    n, _ = run_d(daemon, ctrs, "busybox", "sleep", "300")
    assert daemon.docker("exec", n, "echo", "hi").out == "hi\n"
    p = daemon.docker("exec", n, "sh", "-c", "echo e >&2; exit 6", check=False)
    assert p.returncode == 6 and p.err == "e\n"
    assert daemon.docker("exec", "-e", "FOO=bar", n, "sh", "-c", "echo $FOO").out == "bar\n"
    assert daemon.docker("exec", "-w", "/etc", n, "pwd").out == "/etc\n"
    assert daemon.docker("exec", "-u", "65534:65534", n, "id", "-u").out == "65534\n"
    assert daemon.docker("exec", "-u", "nobody", n, "id", "-un").out == "nobody\n"
    assert daemon.docker("exec", "-i", n, "cat", input="piped\n").out == "piped\n"
    p = daemon.docker("exec", n, "nosuchcmd", check=False)
    assert p.returncode == 127, (p.out, p.err)
    # exec -d leaves a process behind in the container
    daemon.docker("exec", "-d", n, "sh", "-c", "echo done > /tmp/flag")
    assert wait_for(lambda: daemon.docker("exec", n, "cat", "/tmp/flag",
                                          check=False).out == "done\n", timeout=10)
    # the exec shares the container's PID namespace
    assert "sleep 300" in daemon.docker("exec", n, "ps").out


def test_exec_api_inspect(daemon, busybox, ctrs):
    n, cid = run_d(daemon, ctrs, "busybox", "sleep", "300")
    j = daemon.api_json("POST", f"/containers/{n}/exec",
                        {"Cmd": ["sh", "-c", "exit 9"], "AttachStdout": True}, expect=201)
    eid = j["Id"]
    ins = daemon.api_json("GET", f"/exec/{eid}/json")
    assert ins["Running"] is False and ins["ExitCode"] is None and ins["ContainerID"] == cid
    st, _, body = daemon.api("POST", f"/exec/{eid}/start", {"Detach": False, "Tty": False},
                             timeout=30)
    assert st == 200, body
    ins = daemon.api_json("GET", f"/exec/{eid}/json")
    assert ins["ExitCode"] == 9 and ins["Running"] is False
    assert ins["ProcessConfig"]["entrypoint"] == "sh"
    st, _, body = daemon.api("GET", "/exec/nosuchexec/json")
    assert st == 404, body


def test_exec_docker_py(daemon, busybox, ctrs):
    n = name(ctrs)
    client = daemon.client()
    try:
        c = client.containers.run("busybox", "sleep 300", name=n, detach=True)
        r = c.exec_run(["sh", "-c", "echo py; exit 2"])
        assert r.exit_code == 2 and r.output == b"py\n"
        r = c.exec_run("id -u", user="65534")
        assert r.exit_code == 0 and r.output == b"65534\n"
        r = c.exec_run("sh -c 'echo $X'", environment={"X": "y"}, workdir="/tmp")
        assert r.output == b"y\n"
    finally:
        client.close()


# ---------------------------------------------------------------------------
# top / stats / update


def test_top(daemon, busybox, ctrs):
    n, _ = run_d(daemon, ctrs, "busybox", "sleep", "300")
    pid = state(daemon, n)["Pid"]
    out = daemon.docker("top", n).out.splitlines()
    hdr = out[0].split()
    assert "PID" in hdr and "CMD" in hdr, out
    rows = [l for l in out[1:] if l.strip()]
    assert len(rows) == 1, out
    assert "sleep 300" in rows[0]
    assert str(pid) in rows[0].split()
    j = daemon.api_json("GET", f"/containers/{n}/top?ps_args=-o+pid,comm")
    assert j["Titles"] == ["PID", "COMMAND"]
    assert j["Processes"] == [[str(pid), "sleep"]]
    # a stopped container has no processes: 409
    daemon.docker("kill", n)
    wait_status(daemon, n, "exited")
    st, _, body = daemon.api("GET", f"/containers/{n}/top")
    assert st == 409, body


def test_stats_no_stream(daemon, busybox, ctrs):
    n, cid = run_d(daemon, ctrs, "-m", "64m", "busybox", "sh", "-c",
                   "x=$(head -c 4000000 /dev/zero | tr '\\0' a); sleep 300")
    time.sleep(1)
    j = daemon.api_json("GET", f"/containers/{n}/stats?stream=false")
    assert j["id"] == cid and j["name"] == "/" + n
    assert j["memory_stats"]["limit"] == 64 * 1024 * 1024
    assert j["memory_stats"]["usage"] > 0
    assert j["pids_stats"]["current"] >= 1
    assert j["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert "precpu_stats" in j and parse_time(j["read"])
    p = daemon.docker("stats", "--no-stream", n, timeout=60)
    lines = p.out.splitlines()
    assert lines[0].split()[:2] == ["CONTAINER", "ID"]
    assert len(lines) == 2 and lines[1].startswith(cid[:12]) and n in lines[1], p.out
    assert "64MiB" in lines[1], lines[1]
    p = daemon.docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", n, timeout=60)
    nm, pids = p.out.split()
    assert nm == n and int(pids) >= 1


def test_update_memory_live(daemon, busybox, ctrs):
    n, cid = run_d(daemon, ctrs, "-m", "64m", "--memory-swap", "256m",
                   "busybox", "sleep", "300")
    f = cgroup_file("memory", cid, "memory.max" if CG_V2 else "memory.limit_in_bytes")
    assert int(read(f)) == 64 * 1024 * 1024
    assert daemon.docker("update", "-m", "128m", n).out.strip() == n
    assert int(read(f)) == 128 * 1024 * 1024
    assert inspect(daemon, n)["HostConfig"]["Memory"] == 128 * 1024 * 1024
    daemon.docker("update", "--cpu-shares", "512", "--pids-limit", "50", n)
    if CG_V2:
        assert read(cgroup_file("pids", cid, "pids.max")) == "50"
    else:
        assert read(cgroup_file("cpu", cid, "cpu.shares")) == "512"
        assert read(cgroup_file("pids", cid, "pids.max")) == "50"
    hc = inspect(daemon, n)["HostConfig"]
    assert hc["CpuShares"] == 512 and hc["PidsLimit"] == 50
    # still running, and the limit survives a restart of the container
    daemon.docker("restart", "-t", "0", n)
    assert int(read(f)) == 128 * 1024 * 1024


def test_update_unknown_and_bad(daemon, busybox, ctrs):
    p = daemon.docker("update", "-m", "64m", "nosuch" + uniq(), check=False)
    assert p.returncode == 1 and "no such container" in p.err.lower(), p.err
    n, _ = run_d(daemon, ctrs, "-m", "64m", "busybox", "sleep", "300")
    st, _, body = daemon.api("POST", f"/containers/{n}/update", b"{nope",
                             headers={"Content-Type": "application/json"})
    assert st == 400, body


# ---------------------------------------------------------------------------
# prune


def test_container_prune(daemon, busybox, ctrs):
    lab = "berth.prune=" + uniq()
    a = name(ctrs, "pra")
    daemon.docker("run", "--name", a, "-l", lab, "busybox", "true")
    b = name(ctrs, "prb")
    daemon.docker("create", "--name", b, "-l", lab, "busybox", "true")
    r, _ = run_d(daemon, ctrs, "-l", lab, "busybox", "sleep", "300")
    other = name(ctrs, "pro")
    daemon.docker("run", "--name", other, "busybox", "true")
    aid, bid = inspect(daemon, a)["Id"], inspect(daemon, b)["Id"]
    p = daemon.docker("container", "prune", "-f", "--filter", f"label={lab}")
    assert aid in p.out and bid in p.out, p.out
    assert "Total reclaimed space" in p.out
    assert not exists(daemon, a) and not exists(daemon, b)
    assert state(daemon, r)["Running"] is True          # running: kept
    assert exists(daemon, other)                         # not matching the filter: kept
    # API shape
    j = daemon.api_json("POST", "/containers/prune?" + qs([("filters", {"label": [lab]})]))
    assert j["ContainersDeleted"] in (None, []) and j["SpaceReclaimed"] == 0


# ---------------------------------------------------------------------------
# events


def test_container_events(daemon, busybox, ctrs):
    n = name(ctrs, "ev")
    t0 = time.time()
    daemon.docker("run", "--name", n, "-l", "k=v", "busybox", "sh", "-c", "exit 2",
                  check=False)
    cid = inspect(daemon, n)["Id"]
    daemon.docker("rm", n)
    t1 = time.time() + 0.5
    evs = api_events(daemon, ts(t0 - 0.5), ts(t1), filters={"container": [n]})
    evs = [e for e in evs if e.get("Type") == "container"]
    actions = [e["Action"] for e in evs]
    for a in ("create", "start", "die", "destroy"):
        assert a in actions, actions
    idx = [actions.index(a) for a in ("create", "start", "die", "destroy")]
    assert idx == sorted(idx), actions
    for e in evs:
        assert e["Actor"]["ID"] == cid and e["id"] == cid
        assert e["Actor"]["Attributes"]["name"] == n
        assert e["Actor"]["Attributes"]["image"] == "busybox"
        assert e["Actor"]["Attributes"]["k"] == "v"
        assert e["from"] == "busybox" and e["status"] == e["Action"]
        assert t0 - 1 <= e["time"] <= t1 + 1
    die = evs[actions.index("die")]
    assert die["Actor"]["Attributes"]["exitCode"] == "2"
    # since/until bound the window: nothing from this container after t1
    assert [e for e in api_events(daemon, ts(t1), ts(t1 + 0.2), {"container": [cid]})] == []
    # filter by event
    only = api_events(daemon, ts(t0 - 0.5), ts(t1), {"container": [cid], "event": ["die"]})
    assert [e["Action"] for e in only] == ["die"]


def test_events_cli_kill_pause(daemon, busybox, ctrs):
    n, cid = run_d(daemon, ctrs, "busybox", "sleep", "300")
    t0 = time.time()
    daemon.docker("pause", n)
    daemon.docker("unpause", n)
    daemon.docker("kill", "-s", "KILL", n)
    wait_status(daemon, n, "exited")
    t1 = time.time() + 0.5
    p = daemon.docker("events", "--since", "%.3f" % t0, "--until", "%.3f" % t1,
                      "--filter", f"container={cid}", "--format", "{{.Action}}", timeout=30)
    acts = p.out.split()
    assert acts[:2] == ["pause", "unpause"], acts
    assert "kill" in acts and "die" in acts, acts
    assert acts.index("kill") < acts.index("die")


# ---------------------------------------------------------------------------
# docker-py lifecycle


def test_docker_py_lifecycle(daemon, busybox, ctrs):
    import docker
    client = daemon.client()
    n1, n2, n3 = name(ctrs), name(ctrs), name(ctrs)
    try:
        assert client.containers.run("busybox", "echo hi", name=n1, remove=True) == b"hi\n"
        assert wait_for(lambda: not exists(daemon, n1), timeout=10)
        with pytest.raises(docker.errors.ContainerError) as ei:
            client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 3"], name=n2)
        assert ei.value.exit_status == 3
        c = client.containers.run("busybox", "sleep 300", name=n3, detach=True,
                                  labels={"a": "b"})
        c.reload()
        assert c.status == "running" and c.name == n3 and c.labels == {"a": "b"}
        assert [x.id for x in client.containers.list(filters={"name": n3})] == [c.id]
        c.pause()
        c.reload()
        assert c.status == "paused"
        c.unpause()
        c.stop(timeout=1)
        c.reload()
        assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 137
        c.start()
        c.reload()
        assert c.status == "running"
        c.kill()
        assert c.wait(timeout=30)["StatusCode"] == 137
        c.remove()
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(n3)
    finally:
        client.close()


# ---------------------------------------------------------------------------
# exit codes and bad input


@pytest.mark.parametrize("which", DOCKER_CLIS)
def test_command_not_found_127(daemon, busybox, ctrs, which):
    n = name(ctrs)
    p = daemon.docker("run", "--name", n, "busybox", "nosuchcmd", cli=which, check=False)
    assert p.returncode == 127, (p.out, p.err)
    assert "executable file not found" in p.err, p.err
    st = state(daemon, n)
    assert st["Running"] is False and st["ExitCode"] == 127
    assert "executable file not found" in st["Error"]


def test_not_executable_126(daemon, busybox, ctrs):
    n = name(ctrs)
    p = daemon.docker("run", "--name", n, "busybox", "/etc/passwd", check=False)
    assert p.returncode == 126, (p.out, p.err)
    assert "permission denied" in p.err.lower(), p.err
    assert state(daemon, n)["ExitCode"] == 126


def all_ids(d):
    return {x["Id"] for x in d.api_json("GET", "/containers/json?all=1")}


@pytest.mark.parametrize("which", DOCKER_CLIS)
def test_unknown_image_125_and_nothing_created(daemon, busybox, ctrs, which):
    n = name(ctrs)
    before = all_ids(daemon)
    # a registry address on loopback where nothing listens: the pull fails locally
    p = daemon.docker("run", "--name", n, "127.0.0.1:1/nosuch/image:latest", "true",
                      cli=which, check=False, timeout=120)
    assert p.returncode == 125, (p.out, p.err)
    assert "unable to find image" in p.err.lower() or "no such image" in p.err.lower(), p.err
    assert all_ids(daemon) == before
    assert not exists(daemon, n)


def test_unknown_image_api_404(daemon):
    st, _, body = daemon.api("POST", "/containers/create", {"Image": "nosuchimage" + uniq()})
    assert st == 404, body
    assert "no such image" in err_message(body).lower()


def test_pull_never_unknown_image(daemon):
    p = daemon.docker("run", "--pull", "never", "nosuchimage" + uniq(), "true", cli=NEW,
                      check=False)
    assert p.returncode == 125 and "no such image" in p.err.lower(), p.err


def test_bad_memory_value_cli_125(daemon, busybox, ctrs):
    n = name(ctrs)
    before = all_ids(daemon)
    p = daemon.docker("run", "--name", n, "-m", "12x", "busybox", "true", check=False)
    assert p.returncode == 125, (p.out, p.err)
    assert "12x" in p.err or "invalid" in p.err.lower(), p.err
    assert all_ids(daemon) == before


def test_bad_memory_value_api_400(daemon, busybox, ctrs):
    n = name(ctrs)
    st, _, body = daemon.api("POST", f"/containers/create?name={n}",
                             {"Image": "busybox", "HostConfig": {"Memory": 1024}})
    assert st == 400, body
    assert "memory" in err_message(body).lower()
    assert not exists(daemon, n)
    st, _, body = daemon.api("POST", f"/containers/create?name={n}",
                             {"Image": "busybox", "HostConfig": {"Memory": "lots"}})
    assert st == 400, body
    assert not exists(daemon, n)


@pytest.mark.parametrize("which", DOCKER_CLIS)
def test_name_in_use_125_conflict(daemon, busybox, ctrs, which):
    n = name(ctrs)
    cid = daemon.docker("create", "--name", n, "busybox", "true").out.strip()
    before = all_ids(daemon)
    p = daemon.docker("run", "--name", n, "busybox", "true", cli=which, check=False)
    assert p.returncode == 125, (p.out, p.err)
    assert "Conflict" in p.err and n in p.err, p.err
    assert all_ids(daemon) == before
    st, _, body = daemon.api("POST", f"/containers/create?name={n}", {"Image": "busybox"})
    assert st == 409, body
    msg = err_message(body)
    assert "Conflict" in msg and cid in msg, msg


def test_bad_name_400(daemon, busybox):
    st, _, body = daemon.api("POST", "/containers/create?name=bad%2Fname!", {"Image": "busybox"})
    assert st == 400, body
    assert "invalid container name" in err_message(body).lower()


def test_start_removed_404(daemon, busybox, ctrs):
    n = name(ctrs)
    cid = daemon.docker("create", "--name", n, "busybox", "true").out.strip()
    daemon.docker("rm", n)
    st, _, body = daemon.api("POST", f"/containers/{cid}/start")
    assert st == 404, body
    assert "no such container" in err_message(body).lower()
    p = daemon.docker("start", cid, check=False)
    assert p.returncode == 1 and "no such container" in p.err.lower(), p.err


def test_exec_in_stopped_409(daemon, busybox, ctrs):
    n = name(ctrs)
    daemon.docker("run", "--name", n, "busybox", "true")
    st, _, body = daemon.api("POST", f"/containers/{n}/exec", {"Cmd": ["true"]})
    assert st == 409, body
    assert "not running" in err_message(body).lower()
    p = daemon.docker("exec", n, "true", check=False)
    assert p.returncode != 0 and "not running" in p.err.lower(), p.err


def test_kill_stopped_409_and_bad_signal_400(daemon, busybox, ctrs):
    n = name(ctrs)
    daemon.docker("run", "--name", n, "busybox", "true")
    st, _, body = daemon.api("POST", f"/containers/{n}/kill")
    assert st == 409, body
    assert "not running" in err_message(body).lower()
    p = daemon.docker("kill", n, check=False)
    assert p.returncode == 1 and "not running" in p.err.lower(), p.err
    r, _ = run_d(daemon, ctrs, "busybox", "sleep", "300")
    st, _, body = daemon.api("POST", f"/containers/{r}/kill?signal=NOSUCHSIG")
    assert st == 400, body
    assert "signal" in err_message(body).lower()
    assert state(daemon, r)["Running"] is True


@pytest.mark.parametrize("body", [b"{not json", b"[1,2]", b'{"Image": 5}', b""])
def test_malformed_create_body_400(daemon, body):
    before = all_ids(daemon)
    st, _, resp = daemon.api("POST", "/containers/create", body,
                             headers={"Content-Type": "application/json"})
    assert st == 400, resp
    err_message(resp)
    assert all_ids(daemon) == before


def test_unmakeable_workdir(daemon, busybox, ctrs):
    n = name(ctrs)
    p = daemon.docker("run", "--name", n, "-w", "/proc/berthnope/dir", "busybox", "true",
                      check=False)
    assert p.returncode in (125, 126, 127), (p.returncode, p.out, p.err)
    assert "/proc/berthnope" in p.err or "working directory" in p.err.lower() \
        or "cwd" in p.err.lower(), p.err
    cid = inspect(daemon, n)["Id"]
    st = state(daemon, n)
    assert st["Running"] is False and st["Pid"] == 0
    assert mounts_with(cid) == []
    assert shims_with(cid) == []
    assert cgroup_dirs(cid) == []
    # the daemon is unaffected
    assert daemon.docker("run", "--rm", "busybox", "echo", "ok").out == "ok\n"


# ---------------------------------------------------------------------------
# cleanup after rm


def test_rm_f_leaves_nothing(daemon, busybox, ctrs):
    n, cid = run_d(daemon, ctrs, "-m", "64m", "busybox", "sh", "-c",
                   "sleep 300 & sleep 300 & wait")
    pid = state(daemon, n)["Pid"]
    kids = subprocess.run(["pgrep", "-P", str(pid)], stdout=subprocess.PIPE,
                          text=True).stdout.split()
    assert len(kids) == 2
    assert mounts_with(cid), "a running container should have its root mounted"
    assert cgroup_dirs(cid), "a running container should have cgroups"
    assert shims_with(cid), "a running container should have its shim"
    daemon.docker("rm", "-f", n)
    assert not exists(daemon, n)
    assert wait_for(lambda: not pid_alive(pid), timeout=10)
    for k in kids:
        assert wait_for(lambda: not pid_alive(int(k)), timeout=10), k
    assert wait_for(lambda: mounts_with(cid) == [], timeout=10), mounts_with(cid)
    assert wait_for(lambda: cgroup_dirs(cid) == [], timeout=10), cgroup_dirs(cid)
    assert wait_for(lambda: shims_with(cid) == [], timeout=10), shims_with(cid)
    for root in (daemon.data_root, daemon.exec_root):
        left = [os.path.join(dp, x) for dp, dns, fns in os.walk(root) for x in dns + fns
                if cid in x]
        assert left == [], left


def test_rm_of_exited_leaves_nothing(daemon, busybox, ctrs):
    n = name(ctrs)
    daemon.docker("run", "--name", n, "busybox", "true")
    cid = inspect(daemon, n)["Id"]
    daemon.docker("rm", n)
    assert wait_for(lambda: mounts_with(cid) == [], timeout=10), mounts_with(cid)
    assert wait_for(lambda: cgroup_dirs(cid) == [], timeout=10), cgroup_dirs(cid)
    assert wait_for(lambda: shims_with(cid) == [], timeout=10), shims_with(cid)


def test_start_attach_exited_container(daemon, busybox, ctrs):
    """`docker start -a` of an exited container attaches before it starts again."""
    n = name(ctrs)
    daemon.docker("run", "--name", n, "busybox", "sh", "-c", "echo again; exit 3", check=False)
    time.sleep(0.5)
    p = daemon.docker("start", "-a", n, check=False, timeout=30)
    assert p.returncode == 3, (p.out, p.err)
    assert p.out == "again\n"


def test_start_right_after_stop(daemon, busybox, ctrs):
    """A container started again at once after it stopped finds its root filesystem."""
    for i in range(3):
        n, _ = run_d(daemon, ctrs, "busybox", "sleep", "300")
        daemon.docker("kill", n)
        wait_status(daemon, n, "exited")
        p = daemon.docker("start", n, check=False)
        assert p.returncode == 0, (i, p.err)
        assert state(daemon, n)["Running"] is True


def test_run_output_never_lost(daemon, busybox, ctrs):
    """Short-lived foreground containers: every run prints its whole output."""
    lost = []
    for i in range(30):
        n = name(ctrs, "out")
        p = daemon.docker("run", "--rm", "--name", n, "busybox", "echo", f"line{i}", check=False)
        if p.returncode != 0 or p.out != f"line{i}\n":
            lost.append((i, p.returncode, p.out, p.err))
    assert lost == [], f"{len(lost)}/30 runs lost output: {lost[:5]}"
