"""Isolation seen from inside containers started through the Docker API (docker CLI):
namespaces, capabilities, seccomp, masked and read-only paths, /dev, users and
groups, ulimits, sysctls, tmpfs, network none/host, generated /etc files, --init.

Each test names its containers and force-removes them at teardown.
"""

import json
import os
import re
import time

import pytest

from conftest import DOCKER_CLIS, uniq

DEFAULT_CAPS = "00000000a80425fb"
CAP_NET_RAW = 13
CAP_SYS_ADMIN = 21




def sh(daemon, ctrs, script, *opts, check=True, cli=None):
    """docker run --rm [opts] busybox sh -c SCRIPT; returns the CompletedProcess."""
    n = uniq("iso")
    ctrs.append(n)
    return daemon.docker("run", "--rm", "--name", n, *opts, "busybox", "sh", "-c", script,
                         check=check, cli=cli)


def status_field(text, field):
    m = re.search(rf"^{field}:\s*(\S+)", text, re.M)
    assert m, f"{field} not in:\n{text}"
    return m.group(1)


def caps_of(daemon, ctrs, *opts):
    out = sh(daemon, ctrs, "cat /proc/self/status", *opts).out
    return out


def proc_mounts(daemon, ctrs, *opts):
    out = sh(daemon, ctrs, "cat /proc/mounts", *opts).out
    return {l.split()[1]: l.split() for l in out.splitlines()}


# ---------------------------------------------------------------------------
# namespaces


@pytest.mark.parametrize("which", DOCKER_CLIS)
def test_pid1_is_the_command(daemon, busybox, ctrs, which):
    assert sh(daemon, ctrs, "echo $$", cli=which).out == "1\n"


def test_only_container_processes_visible(daemon, busybox, ctrs):
    out = sh(daemon, ctrs, "sleep 30 & sleep 0.3; ps -o pid,comm; ls -d /proc/[0-9]* | wc -l; "
             "kill %1").out
    lines = out.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"]
    procs = [l.split() for l in lines[1:-1]]
    assert sorted(c for _, c in procs) == ["ps", "sh", "sleep"], out
    assert ["1", "sh"] in procs
    assert int(lines[-1]) <= 4          # sh, sleep, ls (and a transient one)
    # and the host's own processes are not there
    out = sh(daemon, ctrs, f"test -e /proc/{os.getpid()}/cmdline && echo seen || echo unseen").out
    if os.getpid() > 10:
        assert out == "unseen\n"


def test_hostname_is_short_id_and_h_sets_it(daemon, busybox, ctrs):
    n = uniq("iso")
    ctrs.append(n)
    cid = daemon.docker("run", "-d", "--name", n, "busybox", "sleep", "300").out.strip()
    assert daemon.docker("exec", n, "hostname").out == cid[:12] + "\n"
    assert daemon.docker("exec", n, "cat", "/etc/hostname").out == cid[:12] + "\n"
    hosts = daemon.docker("exec", n, "cat", "/etc/hosts").out
    assert re.search(rf"^\S+\s+{cid[:12]}\s*$", hosts, re.M), hosts
    out = sh(daemon, ctrs, "hostname; cat /etc/hostname; grep -c berthbox /etc/hosts",
             "-h", "berthbox").out
    assert out.split() == ["berthbox", "berthbox", "1"]
    assert os.uname().nodename != "berthbox"


def test_ipc_and_uts_namespaces_differ(daemon, busybox, ctrs):
    n = uniq("iso")
    ctrs.append(n)
    daemon.docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    pid = daemon.api_json("GET", f"/containers/{n}/json")["State"]["Pid"]
    for ns in ("mnt", "pid", "uts", "ipc", "net", "cgroup"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns


# ---------------------------------------------------------------------------
# privileges


def test_mount_fails(daemon, busybox, ctrs):
    p = sh(daemon, ctrs, "mkdir -p /mnt; mount -t tmpfs none /mnt; echo rc=$?")
    assert p.out.strip() == "rc=1", (p.out, p.err)
    assert "permission denied" in p.err.lower(), p.err


def test_proc_sys_writes_fail(daemon, busybox, ctrs):
    script = ("for f in /proc/sys/kernel/hostname /proc/sys/vm/drop_caches "
              "/proc/sys/kernel/domainname /proc/sysrq-trigger; do "
              "if echo x > $f 2>/dev/null; then echo $f=written; else echo $f=refused; fi; done")
    out = sh(daemon, ctrs, script).out.split()
    assert out == ["/proc/sys/kernel/hostname=refused", "/proc/sys/vm/drop_caches=refused",
                   "/proc/sys/kernel/domainname=refused", "/proc/sysrq-trigger=refused"], out
    mounts = proc_mounts(daemon, ctrs)
    assert "ro" in mounts["/proc/sys"][3].split(","), mounts.get("/proc/sys")


def test_default_caps_and_seccomp(daemon, busybox, ctrs):
    st = caps_of(daemon, ctrs)
    assert status_field(st, "CapEff") == DEFAULT_CAPS
    assert status_field(st, "CapPrm") == DEFAULT_CAPS
    assert status_field(st, "CapBnd") == DEFAULT_CAPS
    assert status_field(st, "CapInh") == "0000000000000000"
    assert status_field(st, "Seccomp") == "2"
    assert status_field(st, "NoNewPrivs") == "0"


def test_masked_paths_read_empty(daemon, busybox, ctrs):
    files = [f for f in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                         "/proc/latency_stats") if os.path.exists(f)]
    assert files, "the host has none of the masked files"
    script = "; ".join(f"echo {f}=$(cat {f} | wc -c)" for f in files)
    out = sh(daemon, ctrs, script).out.split()
    assert out == [f"{f}=0" for f in files], out
    dirs = [d for d in ("/proc/acpi", "/proc/scsi", "/sys/firmware") if os.path.isdir(d)]
    if dirs:
        script = "; ".join(f"echo {d}=$(ls -A {d} | wc -l)" for d in dirs)
        assert sh(daemon, ctrs, script).out.split() == [f"{d}=0" for d in dirs]


def test_sys_is_read_only(daemon, busybox, ctrs):
    p = sh(daemon, ctrs, "touch /sys/berth-x; echo rc=$?; grep ' /sys ' /proc/mounts")
    assert "rc=1" in p.out
    assert "read-only file system" in p.err.lower(), p.err
    line = [l for l in p.out.splitlines() if " /sys " in l][0]
    assert line.split()[3].split(",")[0] == "ro", line


def test_dev_nodes(daemon, busybox, ctrs):
    out = sh(daemon, ctrs, "ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom "
             "/dev/tty; ls -d /dev/pts /dev/shm /dev/mqueue; grep -E ' /dev(/pts|/shm|/mqueue)? ' "
             "/proc/mounts").out
    want = {"null": "1, 3", "zero": "1, 5", "full": "1, 7", "random": "1, 8",
            "urandom": "1, 9", "tty": "5, 0"}
    for node, majmin in want.items():
        line = [l for l in out.splitlines() if l.endswith("/dev/" + node)]
        assert line and line[0].startswith("c"), (node, out)
        pat = r"\b" + majmin.replace(" ", r"\s+") + r"\b"
        assert re.search(pat, line[0]), (node, line)
    for d in ("/dev/pts", "/dev/shm", "/dev/mqueue"):
        assert d in out.split(), out
    fstypes = {l.split()[1]: l.split()[2] for l in out.splitlines() if l.count(" ") >= 5}
    assert fstypes.get("/dev/pts") == "devpts"
    assert fstypes.get("/dev/shm") == "tmpfs"
    assert fstypes.get("/dev/mqueue") == "mqueue"
    p = sh(daemon, ctrs, "head -c 16 /dev/urandom | wc -c; head -c 3 /dev/zero | od -An -c | "
           "tr -d ' \\n'; echo; echo x > /dev/full; echo full=$?; echo x > /dev/null; echo null=$?")
    lines = p.out.splitlines()
    assert lines[0].strip() == "16"
    assert lines[1] == "\\0\\0\\0"
    assert "full=1" in lines and "null=0" in lines
    assert "no space left" in p.err.lower()
    # no host devices leak in
    out = sh(daemon, ctrs, "ls /dev").out.split()
    for dev in ("kmsg", "loop0", "kvm", "mem", "sda", "vda"):
        assert dev not in out, out


def test_shm_size(daemon, busybox, ctrs):
    m = proc_mounts(daemon, ctrs)
    assert "size=65536k" in m["/dev/shm"][3], m["/dev/shm"]
    m = proc_mounts(daemon, ctrs, "--shm-size", "128m")
    assert "size=131072k" in m["/dev/shm"][3], m["/dev/shm"]
    out = sh(daemon, ctrs, "df -k /dev/shm | tail -1", "--shm-size", "16m").out.split()
    assert out[1] == "16384", out


def test_privileged(daemon, busybox, ctrs):
    with open(f"/proc/{daemon.proc.pid}/status") as f:
        bnd = status_field(f.read(), "CapBnd")
    st = caps_of(daemon, ctrs, "--privileged")
    assert status_field(st, "CapEff") == bnd
    assert status_field(st, "CapBnd") == bnd
    assert status_field(st, "Seccomp") == "0"
    m = proc_mounts(daemon, ctrs, "--privileged")
    assert m["/sys"][3].split(",")[0] == "rw", m["/sys"]
    # host devices are there
    out = sh(daemon, ctrs, "ls /dev", "--privileged").out.split()
    for dev in ("kmsg", "loop0", "full"):
        if os.path.exists("/dev/" + dev):
            assert dev in out, (dev, out)
    # and mount works
    assert sh(daemon, ctrs, "mkdir -p /mnt && mount -t tmpfs none /mnt && "
              "grep -c ' /mnt ' /proc/mounts",
              "--privileged").out == "1\n"


def test_cap_drop_and_add(daemon, busybox, ctrs):
    default = int(DEFAULT_CAPS, 16)
    st = caps_of(daemon, ctrs, "--cap-drop", "NET_RAW")
    assert int(status_field(st, "CapEff"), 16) == default & ~(1 << CAP_NET_RAW)
    st = caps_of(daemon, ctrs, "--cap-add", "SYS_ADMIN")
    assert int(status_field(st, "CapEff"), 16) == default | (1 << CAP_SYS_ADMIN)
    st = caps_of(daemon, ctrs, "--cap-add", "CAP_SYS_ADMIN", "--cap-drop", "CHOWN")
    assert int(status_field(st, "CapEff"), 16) == (default | (1 << CAP_SYS_ADMIN)) & ~1
    st = caps_of(daemon, ctrs, "--cap-drop", "ALL")
    assert status_field(st, "CapEff") == "0000000000000000"
    st = caps_of(daemon, ctrs, "--cap-drop", "ALL", "--cap-add", "NET_RAW")
    assert int(status_field(st, "CapEff"), 16) == 1 << CAP_NET_RAW
    # the capability really is gone: chown needs CAP_CHOWN
    p = sh(daemon, ctrs, "touch /tmp/f; chown 65534 /tmp/f; echo rc=$?", "--cap-drop", "CHOWN")
    assert "rc=1" in p.out, (p.out, p.err)
    # SYS_ADMIN allows mount (under the default seccomp profile, which allows it then)
    p = sh(daemon, ctrs, "mkdir -p /mnt; mount -t tmpfs none /mnt; echo rc=$?",
           "--cap-add", "SYS_ADMIN",
           "--security-opt", "apparmor=unconfined")
    assert "rc=0" in p.out, (p.out, p.err)


def test_unknown_capability_is_rejected(daemon, busybox, ctrs):
    n = uniq("iso")
    ctrs.append(n)
    p = daemon.docker("run", "--name", n, "--cap-add", "NOSUCHCAP", "busybox", "true",
                      check=False)
    assert p.returncode == 125, (p.out, p.err)
    assert "NOSUCHCAP" in p.err, p.err


def test_seccomp_unconfined(daemon, busybox, ctrs):
    st = caps_of(daemon, ctrs, "--security-opt", "seccomp=unconfined")
    assert status_field(st, "Seccomp") == "0"
    assert status_field(st, "CapEff") == DEFAULT_CAPS


def test_seccomp_profile_file(daemon, busybox, ctrs, tmp_path):
    prof = tmp_path / "p.json"
    prof.write_text('{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],'
                    '"action":"SCMP_ACT_ERRNO"}]}')
    p = sh(daemon, ctrs, "mkdir /tmp/d; echo rc=$?; grep Seccomp: /proc/self/status",
           "--security-opt", f"seccomp={prof}")
    assert "rc=1" in p.out and re.search(r"Seccomp:\s+2", p.out), (p.out, p.err)
    assert "operation not permitted" in p.err.lower(), p.err


def test_no_new_privileges(daemon, busybox, ctrs):
    st = caps_of(daemon, ctrs, "--security-opt", "no-new-privileges")
    assert status_field(st, "NoNewPrivs") == "1"
    st = caps_of(daemon, ctrs, "--security-opt", "no-new-privileges:true")
    assert status_field(st, "NoNewPrivs") == "1"


def test_read_only_root(daemon, busybox, ctrs):
    p = sh(daemon, ctrs, "touch /x; echo root=$?; touch /dev/shm/x; echo shm=$?; "
           "grep ' / ' /proc/mounts", "--read-only")
    assert "root=1" in p.out and "shm=0" in p.out, (p.out, p.err)
    assert "read-only file system" in p.err.lower()
    root = [l for l in p.out.splitlines() if " / " in l][0]
    assert root.split()[3].split(",")[0] == "ro", root
    # without --read-only the root is writable
    assert "root=0" in sh(daemon, ctrs, "touch /x; echo root=$?").out


# ---------------------------------------------------------------------------
# users, groups, limits, sysctls, tmpfs


def test_user_uid_gid(daemon, busybox, ctrs):
    out = sh(daemon, ctrs, "id -u; id -g; grep CapEff /proc/self/status",
             "--user", "65534:65534").out.split()
    assert out[:2] == ["65534", "65534"]
    assert out[3] == "0000000000000000"      # a non-root user has no effective caps
    out = sh(daemon, ctrs, "id -u; id -g", "--user", "1234").out.split()
    assert out == ["1234", "0"]


def test_user_by_name(daemon, busybox, ctrs):
    out = sh(daemon, ctrs, "id -un; id -u; id -g", "--user", "nobody").out.split()
    assert out[:2] == ["nobody", "65534"]
    assert out[2] == "65534", out
    n = uniq("iso")
    ctrs.append(n)
    p = daemon.docker("run", "--name", n, "--user", "nosuchuser", "busybox", "true",
                      check=False)
    assert p.returncode != 0
    assert "nosuchuser" in p.err, p.err


def test_group_add(daemon, busybox, ctrs):
    out = sh(daemon, ctrs, "id -G", "--group-add", "123", "--group-add", "456").out.split()
    assert "123" in out and "456" in out and out[0] == "0", out
    out = sh(daemon, ctrs, "id -G", "--user", "65534:65534", "--group-add", "777").out.split()
    assert out[0] == "65534" and "777" in out, out


def test_ulimit(daemon, busybox, ctrs):
    out = sh(daemon, ctrs, "ulimit -n; ulimit -Hn", "--ulimit", "nofile=1024:2048").out.split()
    assert out == ["1024", "2048"]
    out = sh(daemon, ctrs, "ulimit -u", "--ulimit", "nproc=77").out.split()
    assert out == ["77"]


def test_sysctl(daemon, busybox, ctrs):
    out = sh(daemon, ctrs, "cat /proc/sys/kernel/shmmax", "--sysctl",
             "kernel.shmmax=123456789").out
    assert out == "123456789\n"
    with open("/proc/sys/kernel/shmmax") as f:
        assert f.read().strip() != "123456789"          # namespaced: the host is unchanged
    n = uniq("iso")
    ctrs.append(n)
    # not namespaced: refused
    p = daemon.docker("run", "--name", n, "--sysctl", "kernel.panic=1", "busybox", "true",
                      check=False)
    assert p.returncode != 0, (p.out, p.err)
    assert "kernel.panic" in p.err, p.err


def test_tmpfs(daemon, busybox, ctrs):
    p = sh(daemon, ctrs, "grep ' /scratch ' /proc/mounts; echo hi > /scratch/f && cat /scratch/f",
           "--tmpfs", "/scratch")
    line, data = p.out.splitlines()
    assert line.split()[:3] == ["tmpfs", "/scratch", "tmpfs"], line
    assert data == "hi"
    p = sh(daemon, ctrs, "grep ' /scratch ' /proc/mounts", "--tmpfs", "/scratch:size=1m,ro")
    opts = p.out.split()[3].split(",")
    assert "ro" in opts and "size=1024k" in opts, p.out


def test_network_none_has_only_lo(daemon, busybox, ctrs):
    for opts in ((), ("--network", "none")):
        out = sh(daemon, ctrs, "awk -F: 'NR>2{print $1}' /proc/net/dev", *opts).out.split()
        assert out == ["lo"], out


def test_network_host_sees_host_interfaces(daemon, busybox, ctrs):
    with open("/proc/net/dev") as f:
        host = sorted(l.split(":")[0].strip() for l in f.readlines()[2:])
    out = sh(daemon, ctrs, "awk -F: 'NR>2{print $1}' /proc/net/dev; hostname",
             "--network", "host").out.split()
    assert sorted(out[:-1]) == host
    assert out[-1] == os.uname().nodename


def test_etc_files(daemon, busybox, ctrs):
    out = sh(daemon, ctrs, "for f in hosts hostname resolv.conf; do "
             "grep \" /etc/$f \" /proc/mounts | wc -l; test -s /etc/$f && echo ok-$f; done").out
    assert out.split() == ["1", "ok-hosts", "1", "ok-hostname", "1", "ok-resolv.conf"], out
    hosts = sh(daemon, ctrs, "cat /etc/hosts").out
    assert re.search(r"^127\.0\.0\.1\s+localhost", hosts, re.M), hosts
    resolv = sh(daemon, ctrs, "cat /etc/resolv.conf").out
    assert "nameserver" in resolv
    # --dns (written to resolv.conf), --add-host (to hosts)
    out = sh(daemon, ctrs, "cat /etc/resolv.conf /etc/hosts", "--dns", "127.0.0.53",
             "--add-host", "berth.test:127.0.0.9").out
    assert re.search(r"^nameserver 127\.0\.0\.53$", out, re.M), out
    assert re.search(r"^127\.0\.0\.9\s+berth\.test$", out, re.M), out


# ---------------------------------------------------------------------------
# --init


def test_init_is_pid1(daemon, busybox, ctrs):
    out = sh(daemon, ctrs, "echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo", "--init").out
    pid, cmd1 = out.splitlines()[:2]
    assert int(pid) > 1
    assert "docker-init" in cmd1.split()[0], cmd1


def test_init_stop_is_quick(daemon, busybox, ctrs):
    n = uniq("iso")
    ctrs.append(n)
    daemon.docker("run", "-d", "--init", "--name", n, "busybox", "sleep", "300")
    t0 = time.time()
    daemon.docker("stop", n, timeout=30)
    assert time.time() - t0 < 3
    st = daemon.api_json("GET", f"/containers/{n}/json")["State"]
    assert st["ExitCode"] == 143, st


def test_init_reaps_zombies(daemon, busybox, ctrs):
    n = uniq("iso")
    ctrs.append(n)
    # the sh parent exits leaving an orphan that dies: init must reap it
    daemon.docker("run", "-d", "--init", "--name", n, "busybox", "sh", "-c",
                  "(sh -c 'sleep 0.2' &) ; sleep 300")
    time.sleep(1.5)
    out = daemon.docker("exec", n, "ps", "-o", "stat,comm").out
    assert not [l for l in out.splitlines()[1:] if l.strip().startswith("Z")], out


def test_seccomp_profile_archmap_as_dockerd(daemon, busybox, ctrs, tmp_path):
    """A Docker-format profile's archMap gives the native arch and its
    sub-architectures (x86-64: x86 and x32), as dockerd converts it, not
    every arch the map lists."""
    prof = tmp_path / "p.json"
    prof.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                     "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    n = uniq("arch")
    ctrs.append(n)
    daemon.docker("run", "-d", "--name", n, "--security-opt", f"seccomp={prof}",
                  "busybox", "sleep", "30")
    cid = daemon.api_json("GET", f"/containers/{n}/json")["Id"]
    with open(os.path.join(daemon.exec_root, "containers", cid, "config.json")) as f:
        sc = json.load(f)["linux"]["seccomp"]
    assert sc["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    p = daemon.docker("exec", n, "sh", "-c", "mkdir /tmp/d; echo rc=$?", check=False)
    assert "rc=1" in p.out
