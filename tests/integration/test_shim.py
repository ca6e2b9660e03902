"""berth-shim on its own: launch a busybox bundle through the shim, read the
json-file log, attach, exec, kill, wait, resize, rotation, errors, detaching,
memory and launch time. The shim is driven by the `shimctl` test driver
(src/shim/shimctl.c, one call of src/shim/shim.h per subcommand) and, for the
protocol tests, by talking to shim.sock directly. No berthd is involved.

Every test cleans up: shim and container killed, cgroups, runtime state and
temp dirs removed. Each container gets its own id, state dir and runtime root.
"""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BERTH_BUILD", os.path.join(ROOT, "build-asan"))
SHIM = os.path.join(BUILD, "berth-shim")
SHIMCTL = os.path.join(BUILD, "shimctl")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.access(SHIM, os.X_OK) or not os.access(SHIMCTL, os.X_OK),
    reason="needs root and berth-shim + shimctl in BERTH_BUILD")


def sanitized():
    out = subprocess.run(["ldd", SHIM], capture_output=True, text=True).stdout
    return "libasan" in out or "libubsan" in out


# ---- fixtures ----

@pytest.fixture(scope="module")
def rootfs():
    d = tempfile.mkdtemp(prefix="berth-shim-rootfs-")
    subprocess.run(["sh", os.path.join(ROOT, "scripts", "mkrootfs-busybox.sh"), os.path.join(d, "rootfs")],
                   check=True, timeout=60)
    yield os.path.join(d, "rootfs")
    shutil.rmtree(d, ignore_errors=True)


def oci_config(rootfs, args, tty=False, env=None):
    """A config.json as `runc spec` writes it, for args in rootfs."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": tty, "user": {"uid": 0, "gid": 0}, "args": args,
            "env": env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": rootfs, "readonly": True},
        "hostname": "shimtest",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def remove_cgroups(cid):
    """rmdir every cgroup directory named after the container (bounded)."""
    for top in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if not os.path.isdir(top):
            continue
        for dirpath, dirnames, _ in os.walk(top, topdown=False):
            if dirpath.count("/") > 8:
                continue
            if os.path.basename(dirpath) == cid or cid in dirpath:
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass


def cgroup_dirs(cid):
    found = []
    for ctrl in ("memory", "pids", "cpu", "devices", "freezer", "systemd", "unified"):
        base = os.path.join("/sys/fs/cgroup", ctrl)
        if os.path.isdir(base):
            for dirpath, _, _ in os.walk(base):
                if cid in dirpath:
                    found.append(dirpath)
    return found


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


class Ctr:
    """One container run by one shim, with its own dirs."""

    def __init__(self, rootfs, args, tty=False, env=None):
        self.id = "shimtest-" + uuid.uuid4().hex[:12]
        self.base = tempfile.mkdtemp(prefix="berth-shim-")
        self.bundle = os.path.join(self.base, "bundle")
        self.state = os.path.join(self.base, "state")
        self.root = os.path.join(self.base, "rt")
        self.log = os.path.join(self.base, "ctr-json.log")
        self.shim_stderr = os.path.join(self.base, "shim.stderr")
        for d in (self.bundle, self.state, self.root):
            os.makedirs(d)
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump(oci_config(rootfs, args, tty, env), f)
        self.pid = None
        self.shim_pid = None
        self.launcher = None

    def env(self):
        e = dict(os.environ, SHIMCTL_SHIM_LOG=self.shim_stderr)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        return e

    def launch_argv(self, *opts, log=True):
        argv = [SHIMCTL, "launch", SHIM, self.id, self.bundle, self.state, self.root]
        if log:
            argv += ["--log", self.log]
        return argv + list(opts)

    def launch(self, *opts, log=True, expect_ok=True):
        p = subprocess.run(self.launch_argv(*opts, log=log), capture_output=True, timeout=30, env=self.env())
        res = json.loads(p.stderr.decode().strip().splitlines()[-1])
        if expect_ok:
            assert p.returncode == 0, res
            self.pid = res["pid"]
            self.shim_pid = self.read_shim_pid()
        return res

    def read_shim_pid(self):
        """None when a short-lived container's shim is already gone."""
        try:
            return int(open(os.path.join(self.state, "shim.pid")).read())
        except (OSError, ValueError):
            return None

    def ctl(self, *args, input=None, timeout=30, check=True):
        """Runs shimctl CMD STATE ARGS...; (last JSON line of stderr, stdout bytes)."""
        p = subprocess.run([SHIMCTL, args[0], self.state, *map(str, args[1:])], input=input, capture_output=True,
                           timeout=timeout, env=self.env())
        lines = [l for l in p.stderr.decode().splitlines() if l.startswith("{")]
        res = json.loads(lines[-1]) if lines else {}
        if check:
            assert p.returncode == 0, (res, p.stderr)
        return res, p.stdout

    def wait(self, timeout_ms=20000):
        res, _ = self.ctl("wait", timeout_ms, timeout=timeout_ms / 1000 + 10)
        return res

    def log_entries(self, path=None):
        with open(path or self.log) as f:
            return [json.loads(l) for l in f.read().splitlines()]

    def wait_gone(self, timeout_ms=10000):
        self.ctl("wait-gone", timeout_ms, timeout=timeout_ms / 1000 + 10)

    def sock(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect(os.path.join(self.state, "shim.sock"))
        return s

    def cleanup(self):
        if self.launcher and self.launcher.poll() is None:
            self.launcher.kill()
            self.launcher.wait(timeout=10)
        for pid in (self.shim_pid, self.pid):
            if pid and pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        deadline = time.time() + 10
        while time.time() < deadline and any(p and pid_alive(p) for p in (self.shim_pid, self.pid)):
            time.sleep(0.02)
        remove_cgroups(self.id)
        shutil.rmtree(self.base, ignore_errors=True)

    def sanitizer_reports(self):
        try:
            text = open(self.shim_stderr, errors="replace").read()
        except OSError:
            return ""
        return text if any(m in text for m in SANITIZER_MARKS) else ""


@pytest.fixture
def ctr(rootfs):
    made = []

    def make(args, tty=False, env=None):
        c = Ctr(rootfs, args, tty, env)
        made.append(c)
        return c

    yield make
    reports = []
    for c in made:
        if os.path.exists(os.path.join(c.state, "exit.json")):
            # the shim is exiting: let it finish (LeakSanitizer runs at its exit)
            poll_until(lambda: not os.path.exists(os.path.join(c.state, "shim.pid")) and not (
                c.shim_pid and pid_alive(c.shim_pid)), timeout=10)
            if sanitized():
                time.sleep(0.3)
        reports.append(c.sanitizer_reports())
        c.cleanup()
    assert not any(reports), "\n".join(reports)


def frames(data):
    """Docker's multiplexed stream: [(stream, payload)]."""
    out, i = [], 0
    while i < len(data):
        assert i + 8 <= len(data), "truncated frame header"
        stream, length = data[i], struct.unpack(">I", data[i + 4:i + 8])[0]
        assert data[i + 1:i + 4] == b"\0\0\0"
        out.append((stream, data[i + 8:i + 8 + length]))
        i += 8 + length
    return out


def joined(fr, stream):
    return b"".join(p for s, p in fr if s == stream)


def wait_attached(proc, timeout=10):
    """shimctl attach prints {"attached":true} on stderr once connected."""
    import select
    r, _, _ = select.select([proc.stderr], [], [], timeout)
    assert r, "attach did not connect"
    assert b"attached" in proc.stderr.readline()


def request(c, msg, timeout=20):
    """One raw request on shim.sock; (reply dict, socket)."""
    s = c.sock()
    s.settimeout(timeout)
    s.sendall((json.dumps(msg) + "\n").encode())
    buf = b""
    while b"\n" not in buf:
        chunk = s.recv(1)
        if not chunk:
            break
        buf += chunk
    return json.loads(buf), s


def poll_until(cond, timeout=10, step=0.02):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


# ---- launch, log, exit ----

def test_launch_writes_docker_json_file_log(ctr):
    c = ctr(["sh", "-c", "echo hello; echo oops >&2; echo; printf partial"])
    res = c.launch()
    assert res["pid"] > 0
    assert c.wait() == {"exit_code": 0, "timed_out": False}
    entries = c.log_entries()
    got = [(e["stream"], e["log"]) for e in entries]
    assert sorted(got) == sorted([("stdout", "hello\n"), ("stderr", "oops\n"), ("stdout", "\n"),
                                  ("stdout", "partial")])
    stdout = [e["log"] for e in entries if e["stream"] == "stdout"]
    assert stdout == ["hello\n", "\n", "partial"]
    for e in entries:
        assert list(e) == ["log", "stream", "time"]
        assert TIME_RE.match(e["time"]), e["time"]
    raw = open(c.log).read().splitlines()[0]
    assert re.match(r'^\{"log":"hello\\n","stream":"stdout","time":"[^"]+"\}$', raw), raw
    ex = json.load(open(os.path.join(c.state, "exit.json")))
    assert ex["ExitCode"] == 0 and ex["OOMKilled"] is False and ex["Error"] == ""
    assert TIME_RE.match(ex["FinishedAt"])
    assert open(os.path.join(c.state, "init.pid")).read().strip() == str(res["pid"])
    c.wait_gone()
    assert not os.path.exists(os.path.join(c.state, "shim.sock"))
    assert not os.path.exists(os.path.join(c.state, "shim.pid"))
    assert not cgroup_dirs(c.id), "cgroups left behind"
    assert not os.path.exists(os.path.join(c.root, c.id)), "runtime state left behind"


def test_log_escaping_matches_go(ctr):
    # <, >, & and control bytes as \u00XX, invalid UTF-8 as \ufffd, U+2028 escaped, other UTF-8 as is
    c = ctr(["printf", 'a<b>&"q\\\\\\t\\001\\r\\n\\377z \\342\\200\\250 \\303\\251\\n'])
    c.launch()
    assert c.wait()["exit_code"] == 0
    line = open(c.log, "rb").read().split(b"\n")[0]
    assert line.startswith(
        b'{"log":"a\\u003cb\\u003e\\u0026\\"q\\\\\\u0009\\u0001\\r\\n","stream":"stdout"'), line
    second = open(c.log, "rb").read().split(b"\n")[1]
    assert second.startswith('{"log":"\\ufffdz \\u2028 \u00e9\\n"'.encode()), second


def test_exit_code_and_signal_137(ctr):
    c = ctr(["sleep", "1000"])
    c.launch()
    waiter = subprocess.Popen([SHIMCTL, "wait", c.state, "-1"], stderr=subprocess.PIPE, env=c.env())
    time.sleep(0.1)
    assert c.ctl("state")[0] == {"pid": c.pid, "running": True}
    assert c.ctl("wait", 100)[0] == {"exit_code": 0, "timed_out": True}
    c.ctl("kill", 9)
    out = waiter.communicate(timeout=20)[1].decode()
    assert json.loads(out.strip().splitlines()[-1]) == {"exit_code": 137, "timed_out": False}
    assert c.wait()["exit_code"] == 137  # from exit.json once the shim is gone
    c.wait_gone()
    assert c.ctl("read-exit")[0]["exit_code"] == 137
    res, _ = c.ctl("kill", 9, check=False)
    assert res["status"] == 503  # no shim any more
    assert not cgroup_dirs(c.id)


def test_exit_code_of_command_and_relaunch(ctr):
    c = ctr(["sh", "-c", "exit 42"])
    c.launch()
    assert c.wait()["exit_code"] == 42
    c.wait_gone()
    # the same state dir again (docker start after an exit): the old exit.json must not answer
    cfg_path = os.path.join(c.bundle, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["process"]["args"] = ["sh", "-c", "sleep 0.3; exit 7"]
    json.dump(cfg, open(cfg_path, "w"))
    c.launch()
    assert c.ctl("read-exit", check=False)[0] == {"none": True}
    assert c.wait()["exit_code"] == 7


def test_oom_killed(ctr):
    c = ctr(["sh", "-c", "echo start; tail /dev/zero"])
    cfg_path = os.path.join(c.bundle, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["linux"]["resources"]["memory"] = {"limit": 16 << 20, "swap": 16 << 20}
    json.dump(cfg, open(cfg_path, "w"))
    c.launch()
    assert c.wait(30000)["exit_code"] == 137
    res = c.ctl("read-exit")[0]
    assert res["exit_code"] == 137 and res["oom_killed"] is True


def test_command_not_found_is_404(ctr):
    c = ctr(["no-such-command-xyz"])
    res = c.launch(expect_ok=False)
    assert res["status"] == 404
    assert "executable file not found" in res["error"]
    assert not os.path.exists(os.path.join(c.state, "exit.json"))
    assert not os.path.exists(os.path.join(c.state, "shim.sock"))
    assert poll_until(lambda: not cgroup_dirs(c.id)), "cgroups left behind"


def test_not_executable_is_403(ctr):
    c = ctr(["/etc/passwd"])
    res = c.launch(expect_ok=False)
    assert res["status"] == 403, res


# ---- attach ----

def test_attach_frames_stdin_and_stdin_once(ctr):
    c = ctr(["sh", "-c", 'while read l; do echo "out $l"; echo "err $l" >&2; done; echo bye'])
    c.launch("--open-stdin", "--stdin-once")
    res, out = c.ctl("attach", "ioe", input=b"one\ntwo\n", timeout=20)
    fr = frames(out)
    assert joined(fr, 1) == b"out one\nout two\nbye\n"
    assert joined(fr, 2) == b"err one\nerr two\n"
    assert c.wait()["exit_code"] == 0  # stdin closed at the end of the attach: read ended


def test_attach_without_stdin_once_keeps_stdin(ctr):
    c = ctr(["sh", "-c", 'while read l; do echo "got $l"; done; echo eof'])
    c.launch("--open-stdin")
    proc = subprocess.Popen([SHIMCTL, "attach", c.state, "io"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=c.env())
    proc.stdin.write(b"a\n")
    proc.stdin.close()  # our stdin ends; the container's must not
    proc.stdin = None
    wait_attached(proc)
    time.sleep(0.3)
    assert c.ctl("state")[0]["running"] is True
    c.ctl("kill", 9)  # sh as PID 1 ignores SIGTERM
    stdout = proc.communicate(timeout=20)[0]
    assert joined(frames(stdout), 1) == b"got a\n"
    assert c.wait()["exit_code"] == 137


def test_launch_attached_sees_all_output(ctr):
    c = ctr(["sh", "-c", "echo first; echo second >&2; echo third"])
    p = subprocess.run(c.launch_argv("--attach", "oe"), capture_output=True, timeout=30, env=c.env())
    assert p.returncode == 0, p.stderr
    c.shim_pid = None
    fr = frames(p.stdout)
    assert joined(fr, 1) == b"first\nthird\n"
    assert joined(fr, 2) == b"second\n"


def test_several_clients_at_once(ctr):
    c = ctr(["sh", "-c", "read x; for i in 1 2 3; do echo line$i; done"])
    c.launch("--open-stdin")
    procs = [subprocess.Popen([SHIMCTL, "attach", c.state, "o"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=c.env()) for _ in range(3)]
    for p in procs:
        wait_attached(p)
    states = [c.ctl("state")[0] for _ in range(5)]
    assert all(s["running"] for s in states)
    r, s = request(c, {"op": "attach", "stdin": True, "stdout": False, "stderr": False})
    assert r["ok"] and r["tty"] is False
    s.sendall(b"go\n")
    s.close()
    outs = [p.communicate(timeout=20)[0] for p in procs]
    for out in outs:
        assert joined(frames(out), 1) == b"line1\nline2\nline3\n"


def test_slow_client_never_blocks_container_or_log(ctr):
    c = ctr(["sh", "-c", "read x; seq 1 300000; echo done"])
    c.launch("--open-stdin")
    # a client that attaches and never reads
    r, lazy = request(c, {"op": "attach", "stdin": True, "stdout": True, "stderr": True})
    assert r["ok"]
    lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    lazy.sendall(b"go\n")
    t0 = time.time()
    assert c.wait(30000)["exit_code"] == 0
    assert time.time() - t0 < 25
    entries = c.log_entries()
    assert len(entries) == 300001 and entries[-1]["log"] == "done\n"
    assert entries[0]["log"] == "1\n" and entries[-2]["log"] == "300000\n"
    lazy.close()


# ---- exec ----

EXEC_ENV = ["PATH=/bin:/usr/bin", "HOME=/root"]


def exec_process(args, terminal=False):
    return json.dumps({"args": args, "env": EXEC_ENV, "cwd": "/", "user": {"uid": 0, "gid": 0},
                       "terminal": terminal})


def test_exec_output_and_exit_code(ctr):
    c = ctr(["sleep", "1000"])
    c.launch()
    res, out = c.ctl("exec", "e" * 64, exec_process(["sh", "-c", "echo out; echo err >&2; exit 3"]), timeout=30)
    assert res == {"exit_code": 3, "running": False}
    fr = frames(out)
    assert joined(fr, 1) == b"out\n" and joined(fr, 2) == b"err\n"
    assert c.ctl("exec-wait", "e" * 64, 0)[0] == {"exit_code": 3, "running": False}
    assert c.log_entries() == []  # exec output is not logged
    c.ctl("kill", 9)
    assert c.wait()["exit_code"] == 137
    c.wait_gone()
    assert c.ctl("exec-wait", "e" * 64, 0)[0]["exit_code"] == 3  # from the file, shim gone


def test_exec_stdin_and_running_state(ctr):
    c = ctr(["sleep", "1000"])
    c.launch()
    res, out = c.ctl("exec", "x1", exec_process(["cat"]), "stdin", input=b"piped input\n", timeout=30)
    assert res["exit_code"] == 0
    assert joined(frames(out), 1) == b"piped input\n"
    proc = subprocess.Popen([SHIMCTL, "exec", c.state, "x2", exec_process(["sleep", "30"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=c.env())
    assert poll_until(lambda: c.ctl("exec-wait", "x2", 0, check=False)[0].get("running") is True)
    c.ctl("kill", 9)
    proc.communicate(timeout=20)
    assert c.wait()["exit_code"] == 137
    res, _ = c.ctl("exec-wait", "nope", 0, check=False)
    assert res["status"] in (404, 503)


def test_exec_not_found_is_404(ctr):
    c = ctr(["sleep", "1000"])
    c.launch()
    res, _ = c.ctl("exec", "bad1", exec_process(["no-such-cmd"]), check=False, timeout=30)
    assert res["status"] == 404 and "executable file not found" in res["error"]
    assert c.ctl("state")[0]["running"] is True
    c.ctl("kill", 9)


def test_exec_tty_and_resize(ctr):
    c = ctr(["sleep", "1000"])
    c.launch()
    proc = subprocess.Popen([SHIMCTL, "exec", c.state, "t1",
                             exec_process(["sh", "-c", "read x; stty size; exit 7"], terminal=True), "stdin"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=c.env())
    assert poll_until(lambda: c.ctl("exec-wait", "t1", 0, check=False)[0].get("running") is True)
    c.ctl("resize", 24, 91, "t1")
    proc.stdin.write(b"go\r")
    proc.stdin.flush()
    out, err = proc.communicate(timeout=20)
    assert b"24 91" in out and not out.startswith(b"\x01\0\0\0")  # raw stream, no frames
    assert json.loads(err.decode().strip().splitlines()[-1])["exit_code"] == 7
    c.ctl("kill", 9)


# ---- tty ----

def test_tty_container_raw_stream_and_resize(ctr):
    c = ctr(["sh", "-c", "read x; stty size; echo got $x; exit 5"], tty=True)
    launcher = subprocess.Popen(c.launch_argv("--open-stdin", "--attach", "ioe"), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=c.env())
    c.launcher = launcher
    assert poll_until(lambda: os.path.exists(os.path.join(c.state, "init.pid")))
    c.shim_pid = c.read_shim_pid()
    c.ctl("resize", 33, 99)
    launcher.stdin.write(b"hello\r")
    launcher.stdin.flush()
    out = launcher.communicate(timeout=20)[0]
    assert b"33 99\r\n" in out and b"got hello\r\n" in out
    assert c.wait()["exit_code"] == 5
    logs = "".join(e["log"] for e in c.log_entries())
    assert "got hello\r\n" in logs
    assert {e["stream"] for e in c.log_entries()} == {"stdout"}


def test_resize_without_tty_is_409(ctr):
    c = ctr(["sleep", "1000"])
    c.launch()
    res, _ = c.ctl("resize", 10, 10, check=False)
    assert res["status"] == 409
    c.ctl("kill", 9)


# ---- rotation ----

def test_log_rotation(ctr):
    c = ctr(["sh", "-c", "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done"])
    c.launch("--max-size", "4000", "--max-file", "3")
    assert c.wait()["exit_code"] == 0
    assert os.path.exists(c.log + ".1") and os.path.exists(c.log + ".2")
    assert not os.path.exists(c.log + ".3")
    for p in (c.log, c.log + ".1", c.log + ".2"):
        assert os.path.getsize(p) <= 4000
        c.log_entries(p)  # every line is JSON
    last = [e["log"] for e in c.log_entries(c.log + ".1") + c.log_entries(c.log)]
    assert last[-1] == "line-399\n"
    nums = [int(l.strip().split("-")[1]) for l in last]
    assert nums == list(range(nums[0], 400))  # contiguous across the rotation


def test_log_rotation_max_file_1_truncates(ctr):
    c = ctr(["sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done"])
    c.launch("--max-size", "2000", "--max-file", "1")
    assert c.wait()["exit_code"] == 0
    assert not os.path.exists(c.log + ".1")
    assert os.path.getsize(c.log) <= 2000
    assert c.log_entries()[-1]["log"] == "line-199\n"


def test_long_line_split_at_16k(ctr):
    c = ctr(["sh", "-c", "head -c 40000 /dev/zero | tr '\\0' x; echo"])
    c.launch()
    assert c.wait()["exit_code"] == 0
    logs = [e["log"] for e in c.log_entries()]
    assert [len(l) for l in logs] == [16384, 16384, 40000 - 32768 + 1]
    assert "".join(logs) == "x" * 40000 + "\n"


def test_long_line_split_when_its_end_comes_in_a_later_read(ctr):
    """10000 bytes without a newline, then 10000 more with it in one write: the
    line is still cut at 16 KiB, whatever the reads brought."""
    c = ctr(["sh", "-c", "head -c 10000 /dev/zero | tr '\\0' x; sleep 0.3; "
             "head -c 10000 /dev/zero | tr '\\0' y > /dev/shm/l; echo >> /dev/shm/l; "
             "dd if=/dev/shm/l bs=10001 count=1 2>/dev/null"])
    c.launch()
    rc = c.wait()["exit_code"]
    logs = [e["log"] for e in c.log_entries()]
    assert rc == 0, [l[:200] for l in logs]
    assert [len(l) for l in logs] == [16384, 20001 - 16384]
    assert "".join(logs) == "x" * 10000 + "y" * 10000 + "\n"


# ---- detaching and protocol ----

def test_shim_survives_sigkill_of_launcher(ctr):
    c = ctr(["sleep", "1000"])
    launcher = subprocess.Popen(c.launch_argv("--attach", "oe"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=c.env())
    c.launcher = launcher
    assert poll_until(lambda: os.path.exists(os.path.join(c.state, "init.pid")))
    c.shim_pid = int(open(os.path.join(c.state, "shim.pid")).read())
    c.pid = int(open(os.path.join(c.state, "init.pid")).read())
    launcher.send_signal(signal.SIGKILL)
    launcher.wait(timeout=10)
    time.sleep(0.2)
    assert pid_alive(c.shim_pid) and pid_alive(c.pid)
    stat = open("/proc/%d/stat" % c.shim_pid).read().rsplit(")", 1)[1].split()
    ppid, sid = int(stat[1]), int(stat[3])
    assert ppid != launcher.pid and sid == c.shim_pid  # reparented, own session
    assert c.ctl("alive")[0] == {"alive": True}
    st = c.ctl("state")[0]
    assert st == {"pid": c.pid, "running": True}
    c.ctl("kill", 9)
    assert c.wait()["exit_code"] == 137


def test_protocol_errors(ctr):
    c = ctr(["sleep", "1000"])
    c.launch()
    for msg, status in ((b"not json\n", 400), (b'{"op":"frobnicate"}\n', 400),
                        (b'{"op":"kill","signal":0}\n', 400), (b'{"op":"kill","signal":999}\n', 400),
                        (b'{"op":"exec","exec_id":"../x","process":{}}\n', 400),
                        (b'{"op":"exec-wait","exec_id":"nosuch"}\n', 404),
                        (b'{"op":"resize","height":5,"width":5,"exec_id":"nosuch"}\n', 404)):
        s = c.sock()
        s.sendall(msg)
        reply = json.loads(s.makefile("rb").readline())
        s.close()
        assert reply["ok"] is False and reply["status"] == status, (msg, reply)
    # a client that connects and says nothing does not hold anything up
    idle = c.sock()
    assert c.ctl("state")[0]["running"] is True
    idle.close()
    c.ctl("kill", 9)
    assert c.wait()["exit_code"] == 137


def test_sha256_matches_reference():
    import hashlib
    for n in (0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 100000):
        data = bytes((i * 31 + n) % 256 for i in range(n))
        out = subprocess.run([SHIM, "--sha256"], input=data, capture_output=True, timeout=30).stdout.decode().strip()
        assert out == "sha256:" + hashlib.sha256(data).hexdigest(), n


# ---- cost ----

def smaps_rollup(pid):
    vals = {}
    for line in open("/proc/%d/smaps_rollup" % pid):
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
            vals[parts[0][:-1]] = int(parts[1])
    for line in open("/proc/%d/status" % pid):
        if line.startswith(("VmRSS", "RssAnon", "RssFile")):
            vals[line.split(":")[0]] = int(line.split()[1])
    return vals


def test_shim_memory_and_launch_time(ctr, capsys):
    times = []
    for i in range(5):
        c = ctr(["sleep", "1000"])
        times.append(c.launch()["ms"])
        if i < 4:
            c.ctl("kill", 9)
            c.wait()
    time.sleep(0.3)
    m = smaps_rollup(c.shim_pid)
    private = m["Private_Dirty"] + m["Private_Clean"]
    times.sort()
    with capsys.disabled():
        print("\nberth-shim: VmRSS %d kB (RssAnon %d, RssFile %d), Pss %d kB, private %d kB (dirty %d);"
              " launch median %.1f ms (min %.1f, max %.1f)%s"
              % (m["VmRSS"], m["RssAnon"], m["RssFile"], m["Pss"], private, m["Private_Dirty"], times[2],
                 times[0], times[-1], " [sanitizer build]" if sanitized() else ""))
    libs = subprocess.run(["ldd", SHIM], capture_output=True, text=True).stdout
    for lib in ("libmicrohttpd", "libcurl", "libarchive", "libcrypto"):
        assert lib not in libs
    if not sanitized():
        # RssAnon: what this shim alone costs (its file pages are shared by all shims)
        assert m["RssAnon"] <= 512, m
        assert m["Pss"] <= 1024, m
    c.ctl("kill", 9)
    c.wait()
