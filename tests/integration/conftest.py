"""Integration fixtures: a private berthd per session, and ways to drive it.

Each session starts its own berthd (the sanitizer build by default, from
BERTH_BUILD) with a temp data root, exec root, pidfile and socket, so it never
touches a system install or another test run. Tests drive it with the berth
CLI, the real docker CLI and docker-py, and check the host side. At the end
the daemon must exit cleanly on SIGTERM and its log must hold no sanitizer
report.
"""

import gzip
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import http.client

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BERTH_BUILD", os.path.join(ROOT, "build-asan"))
BERTHD = os.path.join(BUILD, "berthd")
BERTH = os.path.join(BUILD, "berth")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
DOCKER_CLIS = [p for p in ("/usr/bin/docker", "/usr/local/bin/docker") if os.access(p, os.X_OK)]


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


class Daemon:
    """A private berthd. Use .api() for raw HTTP, .berth()/.docker() for CLIs."""

    def __init__(self, base, name="d"):
        self.base = base
        self.data_root = os.path.join(base, name, "data")
        self.exec_root = os.path.join(base, name, "exec")
        self.sock = os.path.join(base, name, "berth.sock")
        self.pidfile = os.path.join(base, name, "berthd.pid")
        self.log_path = os.path.join(base, name, "berthd.log")
        self.host = "unix://" + self.sock
        self.env = {}                  # extra environment for the daemon process
        self.proc = None
        os.makedirs(os.path.join(base, name), exist_ok=True)

    def argv(self, *extra):
        return [BERTHD, "-H", self.host, "--data-root", self.data_root, "--exec-root",
                self.exec_root, "--pidfile", self.pidfile, "--log-level", "debug", *extra]

    def start(self, *extra):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        env.update(self.env)
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(*extra), stdout=self.logf, stderr=self.logf,
                                     env=env)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("berthd exited at start:\n" + self.log())
            try:
                if self.api("GET", "/_ping")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("berthd did not answer:\n" + self.log())

    def stop(self, timeout=20):
        """SIGTERM and wait; returns the exit code."""
        if not self.proc:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.logf.close()
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.logf.close()

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def sanitizer_reports(self):
        return [line for line in self.log().splitlines() if any(m in line for m in SANITIZER_MARKS)]

    # -- raw HTTP --
    def api(self, method, path, body=None, headers=None, timeout=60):
        """Returns (status, headers dict, body bytes)."""
        c = UnixHTTPConnection(self.sock, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = dict(headers or {}, **{"Content-Type": "application/json"})
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def api_json(self, method, path, body=None, expect=200):
        st, _, data = self.api(method, path, body)
        assert st == expect, f"{method} {path}: {st} {data[:500]!r}"
        return json.loads(data) if data.strip() else None

    # -- CLIs --
    def berth(self, *args, input=None, check=True, timeout=120):
        return run([BERTH, "-H", self.host, *args], input=input, check=check, timeout=timeout)

    def docker(self, *args, cli=None, input=None, check=True, timeout=120):
        cli = cli or DOCKER_CLIS[0]
        return run([cli, "-H", self.host, *args], input=input, check=check, timeout=timeout)

    def client(self):
        import docker
        return docker.DockerClient(base_url=self.host, version="auto", timeout=60)


def run(argv, input=None, check=True, timeout=120):
    if isinstance(input, str):
        input = input.encode()
    p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    p.out = p.stdout.decode(errors="replace")
    p.err = p.stderr.decode(errors="replace")
    if check and p.returncode != 0:
        raise AssertionError(f"{argv} exited {p.returncode}\nstdout: {p.out}\nstderr: {p.err}")
    return p


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="berth-it-")
    yield d
    if os.environ.get("BERTH_TEST_KEEP"):      # keep logs and roots for a post-mortem
        print(f"\nkept {d}")
        return
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def daemon(workdir):
    d = Daemon(workdir).start()
    yield d
    rc = d.stop()
    reports = d.sanitizer_reports()
    assert rc == 0, f"berthd exited {rc} on SIGTERM\n{d.log()[-4000:]}"
    assert not reports, "sanitizer reports in berthd log:\n" + "\n".join(reports)


@pytest.fixture(scope="session")
def rootfs_tar(workdir):
    """An uncompressed tar of a busybox root filesystem (bytes)."""
    root = os.path.join(workdir, "rootfs")
    subprocess.run(["sh", os.path.join(ROOT, "scripts", "mkrootfs-busybox.sh"), root], check=True)
    out = subprocess.run(["tar", "--numeric-owner", "-C", root, "-c", "."], check=True,
                         stdout=subprocess.PIPE).stdout
    return out


@pytest.fixture(scope="session")
def busybox(daemon, rootfs_tar):
    """busybox:latest imported into the session daemon; returns its ID."""
    p = daemon.berth("import", "-c", 'CMD ["sh"]', "-", "busybox:latest", input=rootfs_tar)
    return p.out.strip()


def make_tar(entries):
    """entries: list of (name, kind, data_or_target). kind: file, dir, symlink, hardlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if kind == "file":
                data = data.encode() if isinstance(data, str) else data
                ti.size = len(data)
                ti.mode = 0o644
                t.addfile(ti, io.BytesIO(data))
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                t.addfile(ti)
            elif kind == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = data
                t.addfile(ti)
            elif kind == "hardlink":
                ti.type = tarfile.LNKTYPE
                ti.linkname = data
                t.addfile(ti)
    return buf.getvalue()


def gz(data):
    return gzip.compress(data)


# ---------------------------------------------------------------------------
# Helpers shared by the test modules (added for the issue 2 tests). Module
# level functions are importable with `from conftest import ...`.
# ---------------------------------------------------------------------------

import hashlib
import re
import urllib.parse
import uuid

HEX64 = re.compile(r"^[0-9a-f]{64}$")
ID_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
STORE_DIRS = ("blobs", "layers", "images", "tmp")


def uniq(prefix="t"):
    """A fresh lowercase name, valid as a repository component."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def zst(data):
    """zstd-compress bytes with the zstd command."""
    return subprocess.run(["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE,
                          check=True).stdout


def small_tar(marker=None):
    """A small, valid rootfs tar; a distinct marker gives a distinct layer."""
    marker = marker or uuid.uuid4().hex
    return make_tar([("etc", "dir", None), ("etc/marker", "file", marker + "\n"),
                     ("hello.txt", "file", "hello\n"), ("bin", "dir", None),
                     ("bin/link", "symlink", "../hello.txt")])


def qs(params):
    """Query string from a list of (key, value) pairs; dict values are JSON."""
    out = []
    for k, v in params:
        if isinstance(v, (dict, list)):
            v = json.dumps(v)
        out.append((k, str(v)))
    return urllib.parse.urlencode(out)


def json_lines(data):
    """Parses a stream of JSON messages (newline or CRLF separated)."""
    out = []
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    dec = json.JSONDecoder()
    i = 0
    while i < len(text):
        while i < len(text) and text[i] in " \r\n\t":
            i += 1
        if i >= len(text):
            break
        obj, i = dec.raw_decode(text, i)
        out.append(obj)
    return out


def err_message(body):
    """The "message" of a JSON error body (asserts it is one)."""
    try:
        j = json.loads(body)
    except ValueError:
        raise AssertionError(f"error body is not JSON: {body[:300]!r}")
    assert isinstance(j, dict) and isinstance(j.get("message"), str) and j["message"], \
        f"error body has no message: {body[:300]!r}"
    return j["message"]


def api_import(d, data, repo=None, tag=None, changes=(), message=None, timeout=120):
    """POST /images/create?fromSrc=- ; returns (status, body bytes)."""
    params = [("fromSrc", "-")]
    if repo:
        params.append(("repo", repo))
    if tag:
        params.append(("tag", tag))
    for c in changes:
        params.append(("changes", c))
    if message:
        params.append(("message", message))
    st, _, body = d.api("POST", "/images/create?" + qs(params), body=data,
                        headers={"Content-Type": "application/tar"}, timeout=timeout)
    return st, body


def import_image(d, data, repo=None, tag=None, changes=(), message=None):
    """Imports through the API and returns the new image ID (sha256:...)."""
    st, body = api_import(d, data, repo, tag, changes, message)
    assert st == 200, f"import: {st} {body[:500]!r}"
    msgs = json_lines(body)
    errs = [m for m in msgs if "error" in m or "errorDetail" in m]
    assert not errs, f"import reported errors: {errs}"
    ids = [m["status"] for m in msgs if ID_RE.match(str(m.get("status", "")))]
    assert ids, f"import response holds no image ID: {body[:500]!r}"
    return ids[-1]


def inspect_image(d, name):
    return d.api_json("GET", "/images/" + urllib.parse.quote(name, safe="/:@") + "/json")


def image_exists(d, name):
    st, _, _ = d.api("GET", "/images/" + urllib.parse.quote(name, safe="/:@") + "/json")
    return st == 200


def force_rmi(d, *names):
    """Best-effort forced removal (cleanup); ignores unknown images."""
    for n in names:
        if n:
            try:
                d.api("DELETE", "/images/" + urllib.parse.quote(n, safe="/:@") + "?force=1")
            except OSError:
                pass


def api_events(d, since, until, filters=None, timeout=30):
    """GET /events bounded by since/until; returns the list of event dicts."""
    params = [("since", since), ("until", until)]
    if filters:
        params.append(("filters", filters))
    st, _, body = d.api("GET", "/events?" + qs(params), timeout=timeout)
    assert st == 200, f"events: {st} {body[:300]!r}"
    return json_lines(body)


def ts(t):
    """A time as the API's since/until take it: seconds.nanoseconds."""
    return "%.9f" % t


def store_listing(data_root, dirs=STORE_DIRS):
    """Every path under the store's directories (relative), for before/after checks."""
    out = set()
    for sub in dirs:
        base = os.path.join(data_root, sub)
        for dp, dns, fns in os.walk(base):
            for n in dns + fns:
                out.add(os.path.relpath(os.path.join(dp, n), data_root))
    return out


def read_key(path, key, default=None):
    """The integer of "key value" line key in a flat-keyed file (cgroup.events,
    pids.events); default when the key is not there."""
    with open(path) as f:
        for line in f:
            k, v = line.split()
            if k == key:
                return int(v)
    return default


def wait_for(pred, timeout=10, interval=0.05):
    """Polls pred() until true or timeout; returns its last value."""
    deadline = time.time() + timeout
    v = pred()
    while not v and time.time() < deadline:
        time.sleep(interval)
        v = pred()
    return v


def saved_archive(data):
    """Opens a tar (bytes) and returns {name: bytes or None for dirs/links}."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as t:
        for m in t.getmembers():
            name = m.name[2:] if m.name.startswith("./") else m.name
            name = name.rstrip("/")
            out[name] = t.extractfile(m).read() if m.isfile() else None
    return out


@pytest.fixture
def cleanup(daemon):
    """A list of image names/IDs that the test made; all are force-removed afterwards."""
    made = []
    yield made
    force_rmi(daemon, *reversed(made))


@pytest.fixture
def own_daemons(workdir):
    """Factory for extra daemons with private roots, stopped (or killed) at teardown."""
    made = []

    def make(name=None):
        d = Daemon(workdir, name=name or uniq("d"))
        made.append(d)
        return d

    yield make
    reports = []
    for d in made:
        if d.proc:
            d.stop()
        reports += d.sanitizer_reports()
    assert not reports, "sanitizer reports in an extra berthd's log:\n" + "\n".join(reports)


ALL_CLIS = ["berth"] + DOCKER_CLIS


def cli(d, which, *args, **kw):
    """Runs a command with the berth CLI ("berth") or a docker CLI (its path) against d."""
    if which == "berth":
        return d.berth(*args, **kw)
    return d.docker(*args, cli=which, **kw)


def layer_size(data):
    """The size dockerd reports for a layer tar: bytes of regular files plus the
    target lengths of symlinks; whiteout entries count nothing."""
    n = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as t:
        for m in t.getmembers():
            if os.path.basename(m.name).startswith(".wh."):
                continue
            if m.isfile():
                n += m.size
            elif m.issym():
                n += len(m.linkname)
    return n


@pytest.fixture(autouse=True)
def _session_daemon_alive(request):
    """After each test that used the session daemon: if berthd died during the
    test, fail that test with the log tail and restart berthd on the same roots,
    so one crash is reported where it happened instead of failing every later
    test. The sanitizer report stays in the log, so the session teardown still
    fails on it."""
    yield
    if "daemon" not in request.fixturenames:
        return
    d = request.getfixturevalue("daemon")
    if d.proc is None or d.proc.poll() is None:
        return
    rc = d.proc.returncode
    tail = d.log()[-6000:]
    d.proc = None
    d.logf.close()
    d.start()
    pytest.fail(f"berthd died (exit status {rc}) during this test; restarted it.\n"
                f"log tail:\n{tail}", pytrace=False)


# ---- containers made by a test, removed after it (even if berthd died) ----

@pytest.fixture
def ctrs(daemon):
    """Names/IDs of containers the test made; all are force-removed afterwards."""
    made = []
    yield made
    died = _revive_if_dead(daemon)
    for c in reversed(made):
        try:
            daemon.api("DELETE", f"/containers/{c}?force=1&v=1", timeout=60)
        except OSError:
            pass
    if died:
        pytest.fail(died, pytrace=False)


def _revive_if_dead(daemon):
    """If berthd died during the test, restart it on the same roots (so the test's
    containers can still be removed) and return a message for the failure, else None.
    The autouse fixture of conftest would restart it too, but only after this
    fixture's teardown, too late to clean up."""
    if daemon.proc is None or daemon.proc.poll() is None:
        return None
    rc = daemon.proc.returncode
    tail = daemon.log()[-6000:]
    daemon.proc = None
    daemon.logf.close()
    daemon.start()
    return f"berthd died (exit status {rc}) during this test; restarted it.\nlog tail:\n{tail}"
