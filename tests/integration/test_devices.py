"""--device and --device-cgroup-rule (HostConfig.Devices, DeviceCgroupRules):
the node made in the container, the rule in its devices cgroup, the errors at
create (400) and at start (dockerd's "error gathering device information"),
and --privileged, driven by the berth CLI, the docker CLI and raw HTTP.

The devices cgroup is read on the host (cgroup v1: devices.list), and the
rules are checked from inside as well: an open of a node the cgroup does not
allow fails with EPERM ("Operation not permitted"), whatever the driver says
after. /dev/fuse (10:229, not in the default rules) is the device.

Every test names its containers and removes them at teardown (`ctrs`).
"""

import glob
import json
import os
import stat
import subprocess

import pytest

from conftest import DOCKER_CLIS, err_message, uniq

CG = "/sys/fs/cgroup"
FUSE = "/dev/fuse"
EPERM = "Operation not permitted"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(FUSE) or not stat.S_ISCHR(os.stat(FUSE).st_mode),
    reason="needs root and the host's /dev/fuse")


def name(ctrs):
    n = uniq("dev")
    ctrs.append(n)
    return n


def devices_list(cid):
    p = os.path.join(CG, "devices", "berth", cid, "devices.list")
    if not os.path.exists(p):
        pytest.skip("no cgroup v1 devices hierarchy")
    with open(p) as f:
        return f.read().split("\n")


def cid_of(d, n):
    return d.api_json("GET", f"/containers/{n}/json")["Id"]


def run_bg(d, ctrs, *args):
    """berth run -d ARGS busybox sleep 300; returns (name, id)."""
    n = name(ctrs)
    d.berth("run", "-d", "--name", n, *args, "busybox", "sleep", "300")
    return n, cid_of(d, n)


def sh(d, n, script, check=True):
    return d.berth("exec", n, "sh", "-c", script, check=check)


def opens(d, n, path, redir="<"):
    """Whether the container opens path (< read, > write); the error if not."""
    p = sh(d, n, f"exec 3{redir}{path} && echo OPENED", check=False)
    return "OPENED" in p.out, p.err


def spec_of(d, cid):
    """The runtime spec berthd wrote for a running container."""
    with open(os.path.join(d.exec_root, "containers", cid, "config.json")) as f:
        return json.load(f)


def fuse_rules(spec):
    return [r for r in spec["linux"]["resources"]["devices"]
            if r.get("major") == 10 and r.get("minor") == 229]


def leftovers(cid):
    """Mounts, shims and cgroups the host still holds for cid."""
    with open("/proc/self/mountinfo") as f:
        mounts = [l for l in f if cid in l]
    shims = subprocess.run(["pgrep", "-f", cid], stdout=subprocess.PIPE, text=True).stdout.split()
    cgs = [p for p in glob.glob(os.path.join(CG, "*", "berth", cid)) +
           glob.glob(os.path.join(CG, "berth", cid)) if os.path.isdir(p)]
    return mounts + shims + cgs


def test_device_node_and_rule(daemon, busybox, ctrs):
    fuse = os.stat(FUSE)
    n, cid = run_bg(daemon, ctrs, "--device", FUSE)
    p = sh(daemon, n, f"stat -c '%t:%T %F %a' {FUSE}")
    assert p.out.split() == [f"{os.major(fuse.st_rdev):x}:{os.minor(fuse.st_rdev):x}",
                             "character", "special", "file",
                             f"{stat.S_IMODE(fuse.st_mode):o}"], p.out
    assert "c 10:229 rwm" in devices_list(cid)
    assert opens(daemon, n, FUSE, "<")[0]
    assert opens(daemon, n, FUSE, ">")[0]
    hc = daemon.api_json("GET", f"/containers/{n}/json")["HostConfig"]
    assert hc["Devices"] == [{"PathOnHost": FUSE, "PathInContainer": FUSE,
                              "CgroupPermissions": "rwm"}]
    # without it, the same node made by hand is refused by the cgroup
    n, cid = run_bg(daemon, ctrs)
    assert sh(daemon, n, f"test -e {FUSE}", check=False).returncode != 0
    sh(daemon, n, "mknod /tmp/fuse c 10 229")
    ok, err = opens(daemon, n, "/tmp/fuse")
    assert not ok and EPERM in err, err
    assert not any(l.startswith("c 10:229") for l in devices_list(cid))


def test_device_renamed_with_read_access(daemon, busybox, ctrs):
    n, cid = run_bg(daemon, ctrs, "--device", f"{FUSE}:/dev/myfuse:r")
    assert sh(daemon, n, "stat -c '%t:%T' /dev/myfuse").out.strip() == "a:e5"
    assert sh(daemon, n, f"test -e {FUSE}", check=False).returncode != 0
    assert fuse_rules(spec_of(daemon, cid)) == [{"allow": True, "type": "c", "major": 10,
                                                 "minor": 229, "access": "r"}]
    assert opens(daemon, n, "/dev/myfuse", "<")[0]


def test_device_read_access_is_enforced(daemon, busybox, ctrs):
    n, cid = run_bg(daemon, ctrs, "--device", f"{FUSE}:/dev/myfuse:r")
    rules = devices_list(cid)
    assert "c 10:229 r" in rules and "c 10:229 rwm" not in rules, rules
    ok, err = opens(daemon, n, "/dev/myfuse", ">")
    assert not ok and EPERM in err, err


def test_device_directory(daemon, busybox, ctrs, tmp_path):
    # every node under it, recursively, at the same place; links not followed
    os.makedirs(tmp_path / "sub")
    os.mknod(tmp_path / "fuse", 0o600 | stat.S_IFCHR, os.makedev(10, 229))
    os.mknod(tmp_path / "sub" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(tmp_path / "sub" / "null", 0o666)  # past the umask: the host's mode is kept
    os.symlink(FUSE, tmp_path / "link")
    (tmp_path / "plain").write_text("x")
    n, cid = run_bg(daemon, ctrs, "--device", f"{tmp_path}:/dev/custom:rw")
    p = sh(daemon, n, "cd /dev/custom && find . | sort && stat -c '%n %t:%T %a' fuse sub/null")
    assert p.out.split("\n") == [".", "./fuse", "./sub", "./sub/null", "fuse a:e5 600",
                                  "sub/null 1:3 666", ""], p.out
    spec = spec_of(daemon, cid)
    assert [d["path"] for d in spec["linux"]["devices"]] == ["/dev/custom/fuse",
                                                             "/dev/custom/sub/null"]
    assert fuse_rules(spec) == [{"allow": True, "type": "c", "major": 10, "minor": 229,
                                 "access": "rw"}]
    assert "c 10:229 rw" in devices_list(cid) or "c 10:229 rwm" in devices_list(cid)


@pytest.mark.parametrize("cli", ["berth"] + DOCKER_CLIS[:1])
def test_missing_device_fails_the_start(daemon, busybox, ctrs, cli):
    n = name(ctrs)
    missing = "/dev/" + uniq("nodev")
    argv = ("run", "--name", n, "--device", missing, "busybox", "true")
    p = daemon.berth(*argv, check=False) if cli == "berth" else daemon.docker(*argv, check=False)
    msg = f'error gathering device information while adding custom device "{missing}": ' \
          "no such file or directory"
    assert msg in p.err, p.err
    # docker run: 127 when the start's error says "no such file or directory"
    assert p.returncode == 127, (p.returncode, p.err)
    st = daemon.api_json("GET", f"/containers/{n}/json")["State"]
    assert st["Status"] == "created" and not st["Running"] and st["Pid"] == 0, st
    assert msg in st["Error"] and st["ExitCode"] == 128, st
    assert leftovers(cid_of(daemon, n)) == []
    # a start of it fails the same way, with dockerd's status
    code, _, body = daemon.api("POST", f"/containers/{n}/start")
    assert code == 500 and err_message(body) == msg, (code, body)
    assert leftovers(cid_of(daemon, n)) == []


def test_not_a_device_fails_the_start(daemon, busybox, ctrs, tmp_path):
    n = name(ctrs)
    p = daemon.berth("run", "--rm", "--name", n, "--device", str(tmp_path), "busybox", "true",
                     check=False)
    assert p.returncode == 125, (p.returncode, p.err)
    assert (f'error gathering device information while adding custom device "{tmp_path}": '
            "not a device node") in p.err, p.err
    assert daemon.api("GET", f"/containers/{n}/json")[0] == 404  # --rm: removed


def test_device_cgroup_rule(daemon, busybox, ctrs):
    n, cid = run_bg(daemon, ctrs, "--device-cgroup-rule", "c 42:* rmw",
                    "--device-cgroup-rule", "b 8:3 r")
    rules = devices_list(cid)
    assert "c 42:* rwm" in rules and "b 8:3 r" in rules, rules
    # allowed by the cgroup, an open of a node of it reaches the (absent) driver
    sh(daemon, n, "mknod /tmp/x c 42 1 && mknod /tmp/y c 43 1")
    ok, err = opens(daemon, n, "/tmp/x")
    assert not ok and EPERM not in err and "No such device" in err, err
    ok, err = opens(daemon, n, "/tmp/y")
    assert not ok and EPERM in err, err
    hc = daemon.api_json("GET", f"/containers/{n}/json")["HostConfig"]
    assert hc["DeviceCgroupRules"] == ["c 42:* rmw", "b 8:3 r"]


def create_refused(daemon, ctrs, host_config, msg):
    """A create with host_config is a 400 with msg, and makes no container."""
    n = name(ctrs)
    code, _, body = daemon.api("POST", f"/containers/create?name={n}",
                               {"Image": "busybox", "Cmd": ["true"], "HostConfig": host_config})
    assert code == 400 and err_message(body) == msg, (code, body)
    assert daemon.api("GET", f"/containers/{n}/json")[0] == 404


@pytest.mark.parametrize("rule,msg", [
    ("c 1:3", "invalid device cgroup rule format: 'c 1:3'"),
    ("x 1:3 rwm", "invalid device cgroup rule format: 'x 1:3 rwm'"),
    ("c 1:3 rwx", "invalid device cgroup rule format: 'c 1:3 rwx'"),
    ("c 1:3 rwmr", "invalid device cgroup rule format: 'c 1:3 rwmr'"),
    ("c -1:3 rwm", "invalid device cgroup rule format: 'c -1:3 rwm'"),
    ("c 13 rwm", "invalid device cgroup rule format: 'c 13 rwm'"),
    ("c  1:3 rwm", "invalid device cgroup rule format: 'c  1:3 rwm'"),
    ("c 1:3 rwm ", "invalid device cgroup rule format: 'c 1:3 rwm '"),
    ("a", "invalid device cgroup rule format: 'a'"),
    ("", "invalid device cgroup rule format: ''"),
    ("c 4096:1 rwm", "invalid major value in device cgroup rule format: 'c 4096:1 rwm'"),
    ("c 1:1048576 rwm", "invalid minor value in device cgroup rule format: 'c 1:1048576 rwm'"),
])
def test_malformed_rule_is_a_400(daemon, busybox, ctrs, rule, msg):
    create_refused(daemon, ctrs, {"DeviceCgroupRules": [rule]}, msg)


def test_malformed_rule_from_the_cli(daemon, busybox, ctrs):
    n = name(ctrs)
    p = daemon.berth("run", "--name", n, "--device-cgroup-rule", "c 1:3 rwx", "busybox", "true",
                     check=False)
    assert p.returncode == 125 and "invalid device cgroup rule format: 'c 1:3 rwx'" in p.err, \
        (p.returncode, p.err)
    assert daemon.api("GET", f"/containers/{n}/json")[0] == 404


@pytest.mark.parametrize("rule,want", [
    ("c 1:3 rwm", {"type": "c", "major": 1, "minor": 3, "access": "rwm"}),
    ("b 8:* r", {"type": "b", "major": 8, "access": "r"}),
    ("a *:* rwm", {"type": "a", "access": "rwm"}),
    ("c *:* m", {"type": "c", "access": "m"}),
    ("c 2047:524287 w", {"type": "c", "major": 2047, "minor": 524287, "access": "w"}),
])
def test_wellformed_rules_are_taken(daemon, busybox, ctrs, rule, want):
    # after the default rules and the devices', "*" as no major/minor
    n = name(ctrs)
    daemon.api_json("POST", f"/containers/create?name={n}",
                    {"Image": "busybox", "Cmd": ["sleep", "300"],
                     "HostConfig": {"DeviceCgroupRules": [rule],
                                    "Devices": [{"PathOnHost": FUSE}]}}, expect=201)
    daemon.api_json("POST", f"/containers/{n}/start", expect=204)
    rules = spec_of(daemon, cid_of(daemon, n))["linux"]["resources"]["devices"]
    assert rules[-2:] == [{"allow": True, "type": "c", "major": 10, "minor": 229,
                           "access": "rwm"}, dict(want, allow=True)], rules


@pytest.mark.parametrize("device,msg", [
    ({"PathOnHost": FUSE, "PathInContainer": FUSE, "CgroupPermissions": "rwx"},
     "invalid device mode: rwx"),
    ({"PathOnHost": FUSE, "PathInContainer": FUSE, "CgroupPermissions": "rr"},
     "invalid device mode: rr"),
    ({"PathOnHost": FUSE, "PathInContainer": "dev/fuse", "CgroupPermissions": "rwm"},
     "dev/fuse is not an absolute path"),
    ({"PathOnHost": 3}, "json: cannot unmarshal number into Go struct field "
                        "DeviceMapping.HostConfig.Devices.PathOnHost of type string"),
])
def test_bad_device_is_a_400(daemon, busybox, ctrs, device, msg):
    create_refused(daemon, ctrs, {"Devices": [device]}, msg)


def test_device_defaults(daemon, busybox, ctrs):
    # PathInContainer and CgroupPermissions left out: the host's path, rwm
    n = name(ctrs)
    daemon.api_json("POST", f"/containers/create?name={n}",
                    {"Image": "busybox", "Cmd": ["sleep", "300"],
                     "HostConfig": {"Devices": [{"PathOnHost": FUSE}]}}, expect=201)
    daemon.api_json("POST", f"/containers/{n}/start", expect=204)
    assert sh(daemon, n, f"stat -c '%t:%T' {FUSE}").out.strip() == "a:e5"
    assert "c 10:229 rwm" in devices_list(cid_of(daemon, n))


def test_privileged_adds_the_node_and_allows_all(daemon, busybox, ctrs):
    n, cid = run_bg(daemon, ctrs, "--privileged", "--device", f"{FUSE}:/dev/myfuse:r",
                    "--device-cgroup-rule", "c 42:* r")
    assert sh(daemon, n, "stat -c '%t:%T' /dev/myfuse").out.strip() == "a:e5"
    assert devices_list(cid) == ["a *:* rwm", ""]
    assert opens(daemon, n, "/dev/myfuse", ">")[0]
