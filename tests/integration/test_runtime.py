"""berth-runtime: the OCI runtime command line over the runtime library.

Each test builds a busybox bundle whose config.json is what dockerd would
generate for `docker run` (Docker's default capabilities, seccomp profile
converted to the spec form, masked and read-only paths, cgroup limits), runs
it with berth-runtime under a private --root, and checks from inside the
container and from the host. Every test removes its container, cgroups and
state directory; the host must hold none of them afterwards.
"""

import json
import os
import platform
import shutil
import signal
import socket
import array
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import read_key

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BERTH_BUILD", os.path.join(ROOT, "build-asan"))
RUNTIME = os.path.join(BUILD, "berth-runtime")
SECCOMP_DEFAULT = ("/tmp/moby/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/"
                   "default.json")
DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
               "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
               "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
CG = "/sys/fs/cgroup"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.access(RUNTIME, os.X_OK),
                                reason="needs root and " + RUNTIME)


def kernel_at_least(v):
    cur = [int(x) for x in platform.release().split("-")[0].split(".")[:2]]
    want = [int(x) for x in v.split(".")[:2]]
    return cur >= want


def seccomp_from_docker(profile, caps):
    """Docker's profile format -> the runtime-spec form, as dockerd converts it."""
    arches = []
    for a in profile.get("archMap") or []:
        if a["architecture"] == "SCMP_ARCH_X86_64":
            arches = [a["architecture"]] + a.get("subArchitectures", [])
    out = []
    for r in profile["syscalls"]:
        inc, exc = r.get("includes") or {}, r.get("excludes") or {}
        if inc.get("arches") and "amd64" not in inc["arches"]:
            continue
        if "amd64" in (exc.get("arches") or []):
            continue
        if any(c not in caps for c in inc.get("caps") or []):
            continue
        if any(c in caps for c in exc.get("caps") or []):
            continue
        if inc.get("minKernel") and not kernel_at_least(inc["minKernel"]):
            continue
        rule = {"names": r["names"], "action": r["action"], "args": r.get("args") or []}
        if "errnoRet" in r:
            rule["errnoRet"] = r["errnoRet"]
        out.append(rule)
    sc = {"defaultAction": profile["defaultAction"], "architectures": arches, "syscalls": out}
    if "defaultErrnoRet" in profile:
        sc["defaultErrnoRet"] = profile["defaultErrnoRet"]
    return sc


def docker_spec(rootfs, args, cid, memory=None, pids=None, cpu_quota=None, seccomp=True,
                terminal=False, env=None, cwd="/", readonly=False, extra_mounts=()):
    caps = list(DOCKER_CAPS)
    spec = {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": terminal, "user": {"uid": 0, "gid": 0}, "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "HOSTNAME=" + cid[:12]] + (env or []),
            "cwd": cwd,
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "oomScoreAdj": 0,
        },
        "root": {"path": rootfs, "readonly": readonly},
        "hostname": cid[:12],
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["ro", "nosuid", "noexec", "nodev"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]},
        ] + list(extra_mounts),
        "linux": {
            "resources": {
                "devices": [{"allow": False, "access": "rwm"}],
                "memory": {}, "cpu": {"shares": 0}, "pids": {}, "blockIO": {},
            },
            "cgroupsPath": "/berth-test/" + cid,
            "namespaces": [{"type": t} for t in
                           ("mount", "network", "uts", "pid", "ipc", "cgroup")],
            "maskedPaths": ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }
    res = spec["linux"]["resources"]
    if memory:
        res["memory"] = {"limit": memory, "swap": memory}
    if pids:
        res["pids"] = {"limit": pids}
    if cpu_quota:
        res["cpu"] = {"quota": cpu_quota, "period": 100000}
    if seccomp and os.path.exists(SECCOMP_DEFAULT):
        with open(SECCOMP_DEFAULT) as f:
            spec["linux"]["seccomp"] = seccomp_from_docker(json.load(f), caps)
    return spec


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory):
    d = tmp_path_factory.mktemp("rt-rootfs") / "rootfs"
    subprocess.run(["sh", os.path.join(ROOT, "scripts/mkrootfs-busybox.sh"), str(d)], check=True)
    yield str(d)
    # the runtime removes each container's cgroup; the shared parent is ours
    for ctrl in os.listdir(CG):
        try:
            os.rmdir(os.path.join(CG, ctrl, "berth-test"))
        except OSError:
            pass


def cgroup_dirs(cid):
    found = []
    for ctrl in os.listdir(CG):
        p = os.path.join(CG, ctrl, "berth-test", cid)
        if os.path.exists(p):
            found.append(p)
    return found


def host_procs_in(root):
    """Host pids whose root directory is inside the bundle's rootfs."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.readlink("/proc/%s/root" % p).startswith(root):
                    out.append(int(p))
            except OSError:
                pass
    return out


class Bundle:
    def __init__(self, base, rootfs, **kw):
        self.id = "rt-" + uuid.uuid4().hex[:10]
        self.dir = os.path.join(base, self.id)
        self.state = os.path.join(base, "state")
        os.makedirs(self.dir)
        self.rootfs = rootfs
        self.write(**kw)

    def argv(self):
        """The berth-runtime command with this bundle's --root (a subclass may wrap it)."""
        return [RUNTIME, "--root", self.state]

    def cgroup_dirs(self):
        """The container's cgroup directories that exist, seen from the host."""
        return cgroup_dirs(self.id)

    def write(self, args=("true",), **kw):
        spec = docker_spec(self.rootfs, list(args), self.id, **kw)
        with open(os.path.join(self.dir, "config.json"), "w") as f:
            json.dump(spec, f)

    def rt(self, *args, timeout=60, check=False, files=False, **kw):
        """Runs berth-runtime. files=True for create/run -d: the container inherits
        stdio, and a pipe would stay open as long as it runs."""
        if files:
            with tempfile.TemporaryFile("w+") as o, tempfile.TemporaryFile("w+") as e:
                p = subprocess.run([*self.argv(), *args], stdout=o, stderr=e,
                                   stdin=subprocess.DEVNULL, timeout=timeout, **kw)
                o.seek(0), e.seek(0)
                p.stdout, p.stderr = o.read(), e.read()
        else:
            p = subprocess.run([*self.argv(), *args], capture_output=True,
                               text=True, timeout=timeout, **kw)
        for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            assert mark not in p.stderr, p.stderr
        if check and p.returncode != 0:
            raise AssertionError("%s failed: %s %s" % (args, p.stdout, p.stderr))
        return p

    def detach(self):
        """run -d with stdio on files: a pipe would stay open in the container."""
        out = os.path.join(self.dir, "detach.log")
        with open(out, "w") as f:
            p = subprocess.run([*self.argv(), "run", "-d", "--bundle", self.dir, self.id],
                               stdin=subprocess.DEVNULL, stdout=f, stderr=f, timeout=60)
        assert p.returncode == 0, open(out).read()

    def run(self, *cmd, timeout=60, **kw):
        self.write(args=cmd, **kw)
        return self.rt("run", "--bundle", self.dir, self.id, timeout=timeout)

    def cleanup(self):
        self.rt("delete", "--force", self.id)
        assert not os.path.exists(os.path.join(self.state, self.id))
        assert self.cgroup_dirs() == []
        assert host_procs_in(self.rootfs) == []


@pytest.fixture
def bundle(tmp_path, rootfs):
    b = Bundle(str(tmp_path), rootfs)
    yield b
    b.cleanup()


# ---- isolation, from inside ----

def test_pid1_hostname_and_host_processes(bundle):
    p = bundle.run("sh", "-c", "echo pid=$$; hostname; ps -o pid,comm | wc -l; "
                   "tr '\\0' ' ' < /proc/1/cmdline; echo")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split("\n")
    assert lines[0] == "pid=1"
    assert lines[1] == bundle.id[:12]
    assert int(lines[2]) <= 4  # header, sh, ps, wc: the host's processes are invisible
    assert lines[3].startswith("sh")


def test_mount_and_proc_sys_fail(bundle):
    p = bundle.run("sh", "-c", "mount -t tmpfs t /mnt && echo MOUNTED; "
                   "echo 1 > /proc/sys/kernel/ostype && echo WROTE; "
                   "echo 1 > /proc/sysrq-trigger && echo SYSRQ; "
                   "touch /sys/x && echo SYS; echo done")
    assert p.returncode == 0, p.stderr
    assert "MOUNTED" not in p.stdout and "WROTE" not in p.stdout
    assert "SYSRQ" not in p.stdout and "SYS\n" not in p.stdout
    assert p.stdout.strip().endswith("done")


def test_caps_and_seccomp(bundle):
    p = bundle.run("sh", "-c", "grep -E '^(CapEff|CapBnd|CapPrm|Seccomp|NoNewPrivs):' /proc/self/status")
    assert p.returncode == 0, p.stderr
    st = dict(line.split(":\t") for line in p.stdout.strip().split("\n"))
    assert st["CapEff"] == "00000000a80425fb"
    assert st["CapBnd"] == "00000000a80425fb"
    if os.path.exists(SECCOMP_DEFAULT):
        assert st["Seccomp"] == "2"


def test_seccomp_blocks_syscalls(bundle):
    # unshare is refused by Docker's profile without CAP_SYS_ADMIN (EPERM)
    p = bundle.run("sh", "-c", "unshare -U true; echo rc=$?")
    assert "rc=0" not in p.stdout


def test_masked_and_readonly_paths(bundle):
    p = bundle.run("sh", "-c", "for f in /proc/kcore /proc/keys /proc/timer_list; do "
                   "[ -e $f ] && echo $f=$(wc -c < $f); done; "
                   "for d in /proc/acpi /proc/scsi /sys/firmware; do "
                   "[ -e $d ] && echo $d=$(ls $d | wc -l); done; grep ' /proc/sys ' /proc/mounts")
    assert p.returncode == 0, p.stderr
    vals = dict(line.split("=", 1) for line in p.stdout.split("\n") if line.startswith("/"))
    assert vals and all(v.strip() == "0" for v in vals.values()), vals
    assert " ro," in p.stdout


def test_dev_nodes_and_shm(bundle):
    p = bundle.run("sh", "-c", "ls -l /dev; grep /dev/shm /proc/mounts; "
                   "head -c 4 /dev/urandom | wc -c; readlink /dev/ptmx; readlink /dev/fd")
    assert p.returncode == 0, p.stderr
    for n in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue"):
        assert " " + n in p.stdout
    assert "size=65536k" in p.stdout
    assert "pts/ptmx" in p.stdout and "/proc/self/fd" in p.stdout


def test_readonly_root_and_cwd_created(bundle):
    p = bundle.run("sh", "-c", "pwd; touch /x 2>/dev/null && echo WROTE; echo ok", readonly=True,
                   cwd="/work/deep")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[0] == "/work/deep"
    assert "WROTE" not in p.stdout
    shutil.rmtree(os.path.join(bundle.rootfs, "work"), ignore_errors=True)


def test_bind_mount(bundle, tmp_path):
    src = tmp_path / "vol"
    src.mkdir()
    (src / "f").write_text("hello")
    m = {"destination": "/data", "type": "bind", "source": str(src), "options": ["rbind", "ro"]}
    p = bundle.run("sh", "-c", "cat /data/f; touch /data/g 2>/dev/null && echo WROTE; echo",
                   extra_mounts=[m])
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("hello") and "WROTE" not in p.stdout


# ---- exit codes and bad input ----

def test_exit_status_and_missing_command(bundle):
    assert bundle.run("sh", "-c", "exit 7").returncode == 7
    p = bundle.run("nonexistent-cmd")
    assert p.returncode != 0
    assert "executable file not found in $PATH" in p.stderr
    p = bundle.run("/etc/passwd")
    assert p.returncode != 0 and "permission denied" in p.stderr


def test_bad_cwd_and_bad_sysctl(bundle):
    bundle.write(args=["true"])
    spec = json.load(open(os.path.join(bundle.dir, "config.json")))
    spec["linux"]["sysctl"] = {"kernel.panic": "1"}
    json.dump(spec, open(os.path.join(bundle.dir, "config.json"), "w"))
    p = bundle.rt("run", "--bundle", bundle.dir, bundle.id)
    assert p.returncode != 0 and "not namespaced" in p.stderr
    spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000000"}
    json.dump(spec, open(os.path.join(bundle.dir, "config.json"), "w"))
    p = bundle.rt("run", "--bundle", bundle.dir, bundle.id)
    assert p.returncode == 0, p.stderr


def test_rlimit_above_hard_limit_refused(bundle):
    bundle.write(args=["sh", "-c", "ulimit -n"])
    spec = json.load(open(os.path.join(bundle.dir, "config.json")))
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512}]
    json.dump(spec, open(os.path.join(bundle.dir, "config.json"), "w"))
    p = bundle.rt("run", "--bundle", bundle.dir, bundle.id)
    assert p.returncode == 0 and p.stdout.strip() == "512", p.stderr
    if hard != resource.RLIM_INFINITY:
        spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": hard + 1}]
        json.dump(spec, open(os.path.join(bundle.dir, "config.json"), "w"))
        p = bundle.rt("run", "--bundle", bundle.dir, bundle.id)
        # either refused clearly (no CAP_SYS_RESOURCE) or applied
        assert p.returncode == 0 or "hard limit" in p.stderr


# ---- limits ----

def test_memory_hog_is_oom_killed(bundle):
    p = bundle.run("sh", "-c", "x=a; while true; do x=$x$x; done", memory=16 * 1024 * 1024,
                   timeout=60)
    assert p.returncode == 137, (p.returncode, p.stderr)


def test_oom_kill_is_detected_and_update_is_live(bundle):
    # a child is OOM-killed, init survives: the count comes from the cgroup
    bundle.write(args=["sh", "-c", "sh -c 'x=a; while true; do x=$x$x; done'; sleep 30"],
                 memory=16 * 1024 * 1024)
    bundle.detach()
    ev = {}
    deadline = time.time() + 30
    while time.time() < deadline:
        ev = json.loads(bundle.rt("events", "--stats", bundle.id, check=True).stdout)
        if ev["data"]["memory"]["oom_kill"] > 0:
            break
        time.sleep(0.1)
    assert ev["data"]["memory"]["oom_kill"] >= 1
    assert ev["data"]["memory"]["usage"]["limit"] == 16 * 1024 * 1024
    bundle.rt("update", "--memory", "32m", "--memory-swap", "32m", "--pids-limit", "50", bundle.id,
              check=True)
    ev = json.loads(bundle.rt("events", "--stats", bundle.id, check=True).stdout)
    assert ev["data"]["memory"]["usage"]["limit"] == 32 * 1024 * 1024
    assert ev["data"]["pids"]["limit"] == 50


def test_fork_bomb_stops_at_pids_limit(bundle):
    bundle.write(args=["sh", "-c", "i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done "
                       "2>/dev/null; sleep 30"], pids=10)
    bundle.detach()
    cg = os.path.join(CG, "pids", "berth-test", bundle.id)
    deadline = time.time() + 10
    while time.time() < deadline and read_key(os.path.join(cg, "pids.events"), "max", 0) == 0:
        time.sleep(0.05)
    assert int(open(os.path.join(cg, "pids.current")).read()) <= 10
    assert read_key(os.path.join(cg, "pids.events"), "max", 0) > 0  # forks were refused


def test_cpu_quota_in_cgroup(bundle):
    bundle.write(args=["sleep", "30"], cpu_quota=50000)
    bundle.detach()
    with open(os.path.join(CG, "cpu", "berth-test", bundle.id, "cpu.cfs_quota_us")) as f:
        assert f.read().strip() == "50000"
    # and from inside, through the cgroup namespace
    p = bundle.rt("exec", bundle.id, "cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    assert p.stdout.strip() == "50000", p.stderr


# ---- lifecycle ----

def test_create_start_state_kill_delete(bundle):
    bundle.write(args=["sleep", "30"])
    pidfile = os.path.join(bundle.dir, "pid")
    bundle.rt("create", "--bundle", bundle.dir, "--pid-file", pidfile, bundle.id, check=True,
              files=True)
    st = json.loads(bundle.rt("state", bundle.id, check=True).stdout)
    assert st["status"] == "created" and st["id"] == bundle.id
    assert st["pid"] == int(open(pidfile).read())
    assert st["bundle"] == bundle.dir and st["ociVersion"]
    bundle.rt("start", bundle.id, check=True)
    st = json.loads(bundle.rt("state", bundle.id).stdout)
    assert st["status"] == "running"
    assert bundle.rt("start", bundle.id).returncode != 0
    assert bundle.rt("delete", bundle.id).returncode != 0  # running: needs --force
    bundle.rt("pause", bundle.id, check=True)
    assert json.loads(bundle.rt("state", bundle.id).stdout)["status"] == "paused"
    bundle.rt("resume", bundle.id, check=True)
    bundle.rt("kill", bundle.id, "KILL", check=True)
    for _ in range(100):
        if json.loads(bundle.rt("state", bundle.id).stdout)["status"] == "stopped":
            break
        time.sleep(0.05)
    assert json.loads(bundle.rt("state", bundle.id).stdout)["status"] == "stopped"
    bundle.rt("delete", bundle.id, check=True)
    assert bundle.rt("state", bundle.id).returncode != 0


def test_exec(bundle):
    bundle.write(args=["sleep", "30"])
    bundle.detach()
    p = bundle.rt("exec", bundle.id, "sh", "-c",
                  "echo $$; hostname; grep -E '^(CapEff|Seccomp):' /proc/self/status")
    assert p.returncode == 0, p.stderr
    out = p.stdout.split("\n")
    assert int(out[0]) > 1 and out[1] == bundle.id[:12]
    assert "a80425fb" in out[2]
    assert bundle.rt("exec", bundle.id, "sh", "-c", "exit 3").returncode == 3
    p = bundle.rt("exec", bundle.id, "nope")
    assert p.returncode != 0 and "executable file not found" in p.stderr
    p = bundle.rt("exec", "--user", "65534:65534", bundle.id, "id")
    assert "uid=65534" in p.stdout


def test_console_socket(bundle, tmp_path):
    sock_path = str(tmp_path / "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(1)
    bundle.write(args=["sh", "-c", "tty; echo hi"], terminal=True)
    p = subprocess.Popen([RUNTIME, "--root", bundle.state, "create", "--bundle", bundle.dir,
                          "--console-socket", sock_path, bundle.id])
    conn, _ = srv.accept()
    fds = array.array("i")
    msg, anc, _, _ = conn.recvmsg(1024, socket.CMSG_LEN(4))
    for level, typ, data in anc:
        fds.frombytes(data[:4])
    assert p.wait(30) == 0
    assert msg.startswith(b"/dev/pts/")
    master = fds[0]
    bundle.rt("start", bundle.id, check=True)
    out = b""
    deadline = time.time() + 10
    while time.time() < deadline and b"hi" not in out:
        try:
            out += os.read(master, 1024)
        except OSError:
            break
    os.close(master)
    conn.close()
    srv.close()
    assert b"/dev/pts/0" in out and b"hi" in out


def test_nothing_left_after_delete(bundle):
    bundle.write(args=["sh", "-c", "sleep 30 & sleep 30"])
    bundle.detach()
    st = json.loads(bundle.rt("state", bundle.id).stdout)
    assert cgroup_dirs(bundle.id)
    bundle.rt("delete", "--force", bundle.id, check=True)
    assert not os.path.exists("/proc/%d" % st["pid"]) or \
        open("/proc/%d/stat" % st["pid"]).read().split()[2] == "Z"
    assert cgroup_dirs(bundle.id) == []
    with open("/proc/self/mountinfo") as f:
        assert bundle.rootfs not in f.read()
