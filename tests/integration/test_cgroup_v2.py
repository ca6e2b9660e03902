"""berth-runtime and berthd on a cgroup v2 host.

This machine is hybrid: v1 controllers under /sys/fs/cgroup/<ctrl> and an
empty cgroup2 hierarchy at /sys/fs/cgroup/unified. The tests make a pure-v2
host without touching the host's mounts: every berth-runtime (and the berthd of
the daemon test) runs in a private mount namespace (`unshare --mount
--propagation private`) in which that same cgroup2 hierarchy is mounted on
/sys/fs/cgroup. There the runtime sees a v2 host (cgroup2 magic on
/sys/fs/cgroup; the v1 mounts are covered), while the test reads the same
cgroups from the host under /sys/fs/cgroup/unified. On a real v2 host the
commands run as they are.

The hierarchy has none of the controllers the runtime uses (they are bound to
v1 here; hugetlb may be there), so what is checked is what v2 gives without
them: creation and CLONE_INTO_CGROUP, cgroup.procs, cgroup.freeze,
cgroup.events, cgroup.kill, cgroup.stat, the eBPF device program, removal;
and that a memory/pids/cpu/cpuset limit is refused naming the missing
controller (docs/runtime.md). Containers go under /berth-v2test-<uuid>, removed
at the end; every test leaves no state, no cgroup and no process behind.
"""

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import Daemon, read_key, wait_for
from test_runtime import ROOT, RUNTIME, Bundle, host_procs_in

# mounts only in the namespace unshare makes; the command is exec'd in it
NS_WRAP = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
           'mount -t cgroup2 none /sys/fs/cgroup && exec "$@"', "berth-v2"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.access(RUNTIME, os.X_OK),
                                reason="needs root and " + RUNTIME)


def fs_type(path):
    p = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else ""


class V2Env:
    """Where the v2 hierarchy is seen from the host (host), the command prefix
    that gives a pure-v2 view (wrap), its controllers, and our parent cgroup."""

    def __init__(self, host, wrap):
        self.host, self.wrap = host, wrap
        self.parent = "/berth-v2test-" + uuid.uuid4().hex[:12]
        with open(os.path.join(host, "cgroup.controllers")) as f:
            self.controllers = set(f.read().split())

    def path(self, cg):
        """Host path of cgroup cg (a path from the hierarchy root)."""
        return os.path.join(self.host, cg.lstrip("/"))

    def run(self, *argv, **kw):
        return subprocess.run([*self.wrap, *argv], capture_output=True, text=True, timeout=60,
                              **kw)


@pytest.fixture(scope="session")
def v2():
    if fs_type("/sys/fs/cgroup") == "cgroup2fs":
        env = V2Env("/sys/fs/cgroup", [])
    elif fs_type("/sys/fs/cgroup/unified") == "cgroup2fs" and shutil.which("unshare"):
        env = V2Env("/sys/fs/cgroup/unified", NS_WRAP)
        p = env.run("stat", "-f", "-c", "%T", "/sys/fs/cgroup")
        if p.stdout.strip() != "cgroup2fs":
            pytest.skip("cannot mount cgroup2 in a private mount namespace: " + p.stderr)
    else:
        pytest.skip("no cgroup2 hierarchy on this host")
    yield env
    try:  # the runtime removes each container's cgroup; the parent is ours
        os.rmdir(env.path(env.parent))
    except FileNotFoundError:
        pass


@pytest.fixture(scope="session")
def v2_rootfs(tmp_path_factory):
    d = tmp_path_factory.mktemp("v2-rootfs") / "rootfs"
    subprocess.run(["sh", os.path.join(ROOT, "scripts", "mkrootfs-busybox.sh"), str(d)],
                   check=True)
    return str(d)


class V2Bundle(Bundle):
    """A test_runtime Bundle whose berth-runtime runs on the v2 view, with
    its cgroup under the session's parent."""

    def __init__(self, base, rootfs, env, **kw):
        self.env = env
        super().__init__(base, rootfs, **kw)
        self.cg = env.parent + "/" + self.id
        self.cgdir = env.path(self.cg)

    def argv(self):
        return [*self.env.wrap, *super().argv()]

    def cgroup_dirs(self):
        return [self.cgdir] if os.path.exists(self.cgdir) else []

    def write(self, cgroupns=True, cgroup_rw=False, pidns=True, **kw):
        super().write(**kw)
        path = os.path.join(self.dir, "config.json")
        with open(path) as f:
            spec = json.load(f)
        spec["linux"]["cgroupsPath"] = self.env.parent + "/" + self.id
        spec["linux"]["namespaces"] = [
            n for n in spec["linux"]["namespaces"]
            if (cgroupns or n["type"] != "cgroup") and (pidns or n["type"] != "pid")]
        if cgroup_rw:
            for m in spec["mounts"]:
                if m["type"] == "cgroup":
                    m["options"] = [o for o in m["options"] if o != "ro"]
        with open(path, "w") as f:
            json.dump(spec, f)

    def st(self):
        return json.loads(self.rt("state", self.id, check=True).stdout)

    def events(self, key):
        return read_key(os.path.join(self.cgdir, "cgroup.events"), key)

    def procs(self):
        with open(os.path.join(self.cgdir, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]


def v2_cgroup_of(pid):
    """The v2 line of /proc/PID/cgroup, as the host sees it."""
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            if line.startswith("0::"):
                return line.strip()[3:]
    return None


@pytest.fixture
def vb(tmp_path, v2, v2_rootfs):
    b = V2Bundle(str(tmp_path), v2_rootfs, v2)
    yield b
    b.cleanup()


def test_the_namespace_is_a_pure_v2_host(v2):
    # what the tests need works there: a cgroup, frozen and thawed, with cgroup.kill
    probe = "/sys/fs/cgroup" + v2.parent + "-probe"
    p = v2.run("sh", "-c", "stat -f -c %%T /sys/fs/cgroup; cat /sys/fs/cgroup/cgroup.controllers; "
               "mkdir %s && echo 1 > %s/cgroup.freeze && grep frozen %s/cgroup.events && "
               "echo 0 > %s/cgroup.freeze && ls %s/cgroup.kill; rmdir %s"
               % ((probe,) * 6))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split("\n")
    assert lines[0] == "cgroup2fs"
    assert set(lines[1].split()) == v2.controllers  # the same hierarchy as the host's
    assert lines[2] == "frozen 1" and lines[3].endswith("/cgroup.kill")
    assert not os.path.exists(v2.path(v2.parent + "-probe"))
    if v2.wrap:  # and the host's mounts are as they were: no cgroup2 on /sys/fs/cgroup
        with open("/proc/self/mountinfo") as f:
            mounts = [(ln.split()[4], ln.split(" - ")[1].split()[0]) for ln in f]
        assert ("/sys/fs/cgroup/unified", "cgroup2") in mounts
        assert ("/sys/fs/cgroup", "cgroup2") not in mounts


def test_init_is_born_in_its_v2_cgroup(vb):
    vb.write(args=["sleep", "30"])
    vb.detach()
    pid = vb.st()["pid"]
    assert v2_cgroup_of(pid) == vb.cg
    assert vb.procs() == [pid]
    if vb.env.wrap:  # pure v2: no directory in the v1 hierarchies under the view
        for ctrl in os.listdir("/sys/fs/cgroup"):
            if ctrl != "unified":
                assert not os.path.exists(os.path.join("/sys/fs/cgroup", ctrl,
                                                       vb.env.parent.lstrip("/")))
    # inside, through the cgroup namespace: its own cgroup is the root, mounted read-only
    p = vb.rt("exec", vb.id, "sh", "-c", "cat /proc/self/cgroup; grep ' /sys/fs/cgroup ' "
              "/proc/mounts; echo 1 > /sys/fs/cgroup/cgroup.freeze && echo WROTE; "
              "grep -qx 1 /sys/fs/cgroup/cgroup.procs && echo INIT-IN")
    assert p.returncode == 0, p.stderr
    assert "0::/\n" in p.stdout
    assert " /sys/fs/cgroup cgroup2 ro," in p.stdout, p.stdout
    assert "WROTE" not in p.stdout
    assert "INIT-IN" in p.stdout  # pid 1 of its pid namespace, in its cgroup
    assert vb.events("frozen") == 0


def test_cgroup_mount_without_cgroupns_is_read_only(vb):
    vb.write(args=["sleep", "30"], cgroupns=False)
    vb.detach()
    p = vb.rt("exec", vb.id, "sh", "-c", "grep ' /sys/fs/cgroup ' /proc/mounts; "
              "echo 1 > /sys/fs/cgroup/cgroup.freeze && echo WROTE; ls /sys/fs/cgroup")
    assert p.returncode == 0, p.stderr
    assert "WROTE" not in p.stdout
    assert " ro," in p.stdout.split("\n")[0], p.stdout
    assert "cgroup.freeze" in p.stdout  # the container's own cgroup
    assert vb.events("frozen") == 0


def counter(vb):
    try:
        with open(os.path.join(vb.rootfs, "tmp", vb.id)) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def test_pause_resume_use_cgroup_freeze(vb):
    vb.write(args=["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/%s; usleep 20000; "
                   "done" % vb.id])
    vb.detach()
    assert wait_for(lambda: counter(vb) > 2)
    vb.rt("pause", vb.id, check=True)
    assert vb.st()["status"] == "paused"
    assert vb.events("frozen") == 1
    with open(os.path.join(vb.cgdir, "cgroup.freeze")) as f:
        assert f.read().strip() == "1"
    before = counter(vb)
    time.sleep(0.5)
    assert counter(vb) == before  # frozen: no progress
    p = vb.rt("pause", vb.id)
    assert p.returncode != 0 and "not running" in p.stderr
    p = vb.rt("exec", vb.id, "true")
    assert p.returncode != 0 and "not running" in p.stderr
    vb.rt("resume", vb.id, check=True)
    assert vb.st()["status"] == "running"
    assert vb.events("frozen") == 0
    assert wait_for(lambda: counter(vb) > before + 2)
    p = vb.rt("resume", vb.id)
    assert p.returncode != 0 and "not paused" in p.stderr
    # delete --force of a paused container: nothing left (cleanup checks)
    vb.rt("pause", vb.id, check=True)
    vb.rt("delete", "--force", vb.id, check=True)
    os.unlink(os.path.join(vb.rootfs, "tmp", vb.id))


def test_exec_joins_the_container_cgroup(vb):
    vb.write(args=["sleep", "30"])
    vb.detach()
    pidfile = os.path.join(vb.dir, "exec.pid")
    vb.rt("exec", "-d", "--pid-file", pidfile, vb.id, "sleep", "30", check=True, files=True)
    pid = int(open(pidfile).read())
    assert v2_cgroup_of(pid) == vb.cg
    assert pid in vb.procs() and len(vb.procs()) == 2
    p = vb.rt("exec", vb.id, "cat", "/proc/self/cgroup")
    assert p.returncode == 0 and p.stdout.strip().split("\n")[-1] == "0::/", p.stdout


def test_kill_then_delete_leaves_nothing(vb):
    vb.write(args=["sleep", "30"])
    vb.detach()
    pid = vb.st()["pid"]
    vb.rt("kill", vb.id, "KILL", check=True)
    assert wait_for(lambda: vb.st()["status"] == "stopped")
    vb.rt("delete", vb.id, check=True)
    assert vb.cgroup_dirs() == [] and host_procs_in(vb.rootfs) == []
    assert not os.path.exists("/proc/%d" % pid) or \
        open("/proc/%d/stat" % pid).read().split()[2] == "Z"


def test_delete_force_kills_every_process(vb):
    # no pid namespace: the children outlive init unless the cgroup is emptied
    vb.write(args=["sh", "-c", "sleep 30 & sleep 30 & exec sleep 30"], pidns=False)
    vb.detach()
    assert wait_for(lambda: len(vb.procs()) == 3)
    kids = vb.procs()
    vb.rt("delete", "--force", vb.id, check=True)
    assert vb.cgroup_dirs() == [] and host_procs_in(vb.rootfs) == []
    for k in kids:
        assert not os.path.exists("/proc/%d" % k) or \
            open("/proc/%d/stat" % k).read().split()[2] == "Z"


def test_kill_all(vb):
    vb.write(args=["sh", "-c", "sleep 30 & sleep 30 & exec sleep 30"], pidns=False)
    vb.detach()
    assert wait_for(lambda: len(vb.procs()) == 3)
    vb.rt("kill", "--all", vb.id, "KILL", check=True)
    assert wait_for(lambda: vb.procs() == [])
    assert wait_for(lambda: vb.st()["status"] == "stopped")
    vb.rt("delete", vb.id, check=True)


def test_delete_force_removes_nested_cgroups(vb):
    # the container (cgroup namespace, cgroup mount read-write) makes a child
    # cgroup and moves a process into it: delete must kill and remove both
    vb.write(args=["sh", "-c", "mkdir /sys/fs/cgroup/sub && sh -c 'echo 0 > "
                   "/sys/fs/cgroup/sub/cgroup.procs; exec sleep 30' & exec sleep 30"],
             cgroup_rw=True)
    vb.detach()
    sub = os.path.join(vb.cgdir, "sub")
    assert wait_for(lambda: os.path.exists(sub) and read_key(os.path.join(sub, "cgroup.events"),
                                                              "populated") == 1)
    vb.rt("pause", vb.id, check=True)  # freezing is recursive
    assert read_key(os.path.join(sub, "cgroup.events"), "frozen") == 1
    vb.rt("resume", vb.id, check=True)
    vb.rt("delete", "--force", vb.id, check=True)
    assert vb.cgroup_dirs() == [] and host_procs_in(vb.rootfs) == []


def test_events_stats_without_controllers(vb):
    vb.write(args=["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; "
                   "exec sleep 30"])
    vb.detach()
    assert wait_for(lambda: open("/proc/%d/comm" % vb.st()["pid"]).read() == "sleep\n")
    ev = json.loads(vb.rt("events", "--stats", vb.id, check=True).stdout)
    assert ev["type"] == "stats" and ev["id"] == vb.id
    cpu = ev["data"]["cpu"]
    assert cpu["usage"]["total"] > 0  # cpu.stat usage_usec: there without the cpu controller
    assert cpu["usage"]["user"] + cpu["usage"]["kernel"] > 0
    assert ev["data"]["pids"]["current"] == 1  # from cgroup.procs: no pids controller
    assert ev["data"]["pids"]["limit"] == 0
    mem = ev["data"]["memory"]
    if "memory" not in vb.env.controllers:
        assert mem["usage"]["usage"] == 0 and mem["usage"]["limit"] == 0
    vb.rt("exec", "-d", vb.id, "sleep", "30", check=True, files=True)
    ev = json.loads(vb.rt("events", "--stats", vb.id, check=True).stdout)
    assert ev["data"]["pids"]["current"] == 2


LIMITS = {
    "memory": dict(memory=64 * 1024 * 1024),
    "pids": dict(pids=50),
    "cpu": dict(cpu_quota=50000),
}


@pytest.mark.parametrize("ctrl", sorted(LIMITS))
def test_limit_without_its_controller_is_refused(vb, ctrl):
    vb.write(args=["true"], **LIMITS[ctrl])
    p = vb.rt("run", "--bundle", vb.dir, vb.id)
    if ctrl in vb.env.controllers:  # a real v2 host: applied
        assert p.returncode == 0, p.stderr
        return
    assert p.returncode != 0
    assert "the %s cgroup controller is not available" % ctrl in p.stderr, p.stderr
    assert vb.cgroup_dirs() == []
    assert vb.rt("state", vb.id).returncode != 0


def test_cpuset_without_its_controller_is_refused(vb):
    vb.write(args=["true"])
    path = os.path.join(vb.dir, "config.json")
    spec = json.load(open(path))
    spec["linux"]["resources"]["cpu"] = {"cpus": "0"}
    json.dump(spec, open(path, "w"))
    p = vb.rt("run", "--bundle", vb.dir, vb.id)
    if "cpuset" in vb.env.controllers:
        assert p.returncode == 0, p.stderr
        return
    assert p.returncode != 0 and "the cpuset cgroup controller is not available" in p.stderr


def test_update_without_controllers_is_refused(vb):
    vb.write(args=["sleep", "30"])
    vb.detach()
    for flags, ctrl in ((["--memory", "32m"], "memory"), (["--pids-limit", "50"], "pids"),
                        (["--cpu-quota", "50000"], "cpu")):
        p = vb.rt("update", *flags, vb.id)
        if ctrl in vb.env.controllers:
            assert p.returncode == 0, p.stderr
        else:
            assert p.returncode != 0, flags
            assert "the %s cgroup controller is not available" % ctrl in p.stderr, p.stderr
    assert vb.st()["status"] == "running"


def test_device_rules_as_ebpf(vb):
    # Docker's rules: deny all, then the standard nodes; a block device made
    # with mknod (allowed) cannot be opened
    p = vb.run("sh", "-c", "echo x > /dev/null && echo NULL; head -c 1 /dev/zero | wc -c; "
               "mknod /tmp/blk-%s b 7 0 && head -c 1 /tmp/blk-%s; echo rc=$?; rm -f /tmp/blk-%s"
               % ((vb.id,) * 3))
    assert p.returncode == 0, p.stderr
    assert "NULL" in p.stdout and "\n1\n" in "\n" + p.stdout
    assert "rc=1" in p.stdout and "Operation not permitted" in p.stderr + p.stdout


# ---- berthd on the v2 view ----

class V2Daemon(Daemon):
    def __init__(self, base, env):
        super().__init__(base, name="v2d")
        self.v2 = env  # (Daemon.env is the daemon's extra environment)

    def argv(self, *extra):
        return [*self.v2.wrap, *super().argv(*extra)]


@pytest.fixture(scope="module")
def v2_daemon(workdir, v2, rootfs_tar):
    """A private berthd on the v2 view, with busybox:v2test imported."""
    d = V2Daemon(workdir, v2).start()
    d.berth("import", "-c", 'CMD ["sh"]', "-", "busybox:v2test", input=rootfs_tar)
    yield d
    d.berth("rmi", "busybox:v2test", check=False)
    rc = d.stop()
    assert rc == 0, d.log()[-4000:]
    assert not d.sanitizer_reports(), "\n".join(d.sanitizer_reports())


def test_daemon_on_v2(v2_daemon, v2):
    d = v2_daemon
    info = d.api_json("GET", "/info")
    assert info["CgroupVersion"] == "2"
    cid = d.berth("run", "-d", "busybox:v2test", "sleep", "300").out.strip()
    cg = "/berth/" + cid
    try:
        ins = d.api_json("GET", "/containers/%s/json" % cid)
        pid = ins["State"]["Pid"]
        assert v2_cgroup_of(pid) == cg
        d.berth("pause", cid)
        ins = d.api_json("GET", "/containers/%s/json" % cid)
        assert ins["State"]["Status"] == "paused" and ins["State"]["Paused"]
        assert read_key(os.path.join(v2.path(cg), "cgroup.events"), "frozen") == 1
        d.berth("unpause", cid)
        assert read_key(os.path.join(v2.path(cg), "cgroup.events"), "frozen") == 0
        assert d.api_json("GET", "/containers/%s/json" % cid)["State"]["Status"] == "running"
        st = d.api_json("GET", "/containers/%s/stats?stream=0&one-shot=1" % cid)
        assert st["cpu_stats"]["cpu_usage"]["total_usage"] > 0
        assert st["pids_stats"]["current"] == 1
        assert st["memory_stats"]["limit"] > 0
        top = d.api_json("GET", "/containers/%s/top" % cid)
        assert len(top["Processes"]) == 1
        p = d.berth("exec", cid, "cat", "/proc/self/cgroup")
        assert p.out.strip().split("\n")[-1] == "0::/"
    finally:
        d.berth("rm", "-f", cid, check=False)
    assert not os.path.exists(v2.path(cg))
    assert not os.path.exists("/proc/%d" % pid) or \
        open("/proc/%d/stat" % pid).read().split()[2] == "Z"


MEM_WARNING = ("Your kernel does not support memory limit capabilities or the cgroup is not "
               "mounted. Limitation discarded.")
PIDS_WARNING = ("Your kernel does not support PIDs limit capabilities or the cgroup is not "
                "mounted. PIDs limit discarded.")


def test_daemon_discards_limits_without_controllers_as_dockerd(v2_daemon, v2):
    d = v2_daemon
    if {"memory", "pids", "cpu"} & v2.controllers:
        pytest.skip("the v2 hierarchy has the controllers: limits apply")
    info = d.api_json("GET", "/info")
    assert not info["MemoryLimit"] and not info["PidsLimit"] and not info["CpuCfsQuota"]
    assert "WARNING: No memory limit support" in info["Warnings"]
    assert "WARNING: No pids limit support" in info["Warnings"]
    body = {"Image": "busybox:v2test", "Cmd": ["sleep", "300"],
            "HostConfig": {"Memory": 64 * 1024 * 1024, "PidsLimit": 50, "CpuShares": 512,
                           "CpuQuota": 50000, "CpuPeriod": 100000, "CpusetCpus": "0"}}
    r = d.api_json("POST", "/containers/create", body, expect=201)
    cid = r["Id"]
    try:
        assert MEM_WARNING in r["Warnings"] and PIDS_WARNING in r["Warnings"]
        assert any("CPU shares" in w for w in r["Warnings"])
        assert any("CPU period/quota discarded" in w for w in r["Warnings"])
        assert any("Cpuset discarded" in w for w in r["Warnings"])
        hc = d.api_json("GET", "/containers/%s/json" % cid)["HostConfig"]
        assert hc["Memory"] == 0 and hc["PidsLimit"] in (0, None) and hc["CpuQuota"] == 0
        assert hc["CpusetCpus"] == ""
        st, _, data = d.api("POST", "/containers/%s/start" % cid)
        assert st == 204, data
        r = d.api_json("POST", "/containers/%s/update" % cid, {"Memory": 32 * 1024 * 1024})
        assert MEM_WARNING in r["Warnings"]
        # the berth CLI prints the warnings as docker does
        p = d.berth("create", "-m", "64m", "busybox:v2test", "true")
        assert "WARNING: " + MEM_WARNING in p.err
        d.berth("rm", p.out.strip())
        # NanoCpus cannot be discarded: refused, as dockerd does
        st, _, data = d.api("POST", "/containers/create",
                            {"Image": "busybox:v2test", "HostConfig": {"NanoCpus": 500000000}})
        assert st == 400 and b"NanoCPUs can not be set" in data, data
    finally:
        d.berth("rm", "-f", cid, check=False)
    assert not os.path.exists(v2.path("/berth/" + cid))
