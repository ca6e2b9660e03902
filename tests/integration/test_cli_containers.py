"""The berth CLI's container commands against a private berthd: run, create,
start, attach, stop, kill, restart, pause, unpause, wait, rm, ps, logs, exec,
top, stats, inspect, rename, update, cp, diff, export, commit, container
prune and the `container <cmd>` aliases.

Expected outputs and exit codes were taken from the docker 20.10 CLI
(/usr/bin/docker) driving dockerd 20.10: 125 for errors before the container
runs (flag values, unknown image, name conflicts), 126/127 when the start
error says the command cannot be invoked / was not found, otherwise the
container's own status; ps shortens the command to 20 columns and quotes it;
multi-container commands print each name that worked and the errors after.
Terminal sessions (raw mode, window size, detach keys) run under a pty.
"""

import errno
import fcntl
import io
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import tarfile
import termios
import time

import pytest

from conftest import BERTH, uniq, wait_for

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def rm_f(daemon, *names):
    for n in names:
        daemon.berth("rm", "-f", n, check=False)


@pytest.fixture
def names(daemon):
    """Fresh container names; every one is force-removed afterwards."""
    made = []

    def new(prefix="c"):
        n = uniq(prefix)
        made.append(n)
        return n
    yield new
    rm_f(daemon, *made)


def state(daemon, name):
    st, _, body = daemon.api("GET", f"/containers/{name}/json")
    return json.loads(body)["State"] if st == 200 else None


def running(daemon, name):
    s = state(daemon, name)
    return bool(s and s["Running"])


# ---------------------------------------------------------------------------
# flag values and errors found before any request (no container needed)
# ---------------------------------------------------------------------------

BAD_FLAGS = [
    (["-m", "12x"], 'invalid argument "12x" for "-m, --memory" flag: invalid size: \'12x\''),
    (["--memory-swap", "1q"], 'invalid argument "1q" for "--memory-swap" flag: invalid size: \'1q\''),
    (["--cpus", "abc"], 'invalid argument "abc" for "--cpus" flag: failed to parse abc as a '
                        'rational number'),
    (["--cpus", "0.0000000001"], 'invalid argument "0.0000000001" for "--cpus" flag: value is '
                                 'too precise'),
    (["-e", "=x"], 'invalid argument "=x" for "-e, --env" flag: invalid environment variable: =x'),
    (["-a", "foo"], 'invalid argument "foo" for "-a, --attach" flag: valid streams are STDIN, '
                    'STDOUT and STDERR'),
    (["--health-interval", "5"], 'invalid argument "5" for "--health-interval" flag: time: '
                                 'missing unit in duration "5"'),
    (["--ulimit", "nofile"], 'invalid argument "nofile" for "--ulimit" flag: invalid ulimit '
                             'argument: nofile'),
    (["--ulimit", "foo=1"], 'invalid argument "foo=1" for "--ulimit" flag: invalid ulimit type: '
                            'foo'),
    (["--sysctl", "a=b"], 'invalid argument "a=b" for "--sysctl" flag: sysctl \'a=b\' is not '
                          'whitelisted'),
    (["--blkio-weight", "70000"], 'invalid argument "70000" for "--blkio-weight" flag: '
                                  'strconv.ParseUint: parsing "70000": value out of range'),
    (["--stop-timeout", "x"], 'invalid argument "x" for "--stop-timeout" flag: '
                              'strconv.ParseInt: parsing "x": invalid syntax'),
    (["--pids-limit", "x"], 'invalid argument "x" for "--pids-limit" flag: strconv.ParseInt: '
                            'parsing "x": invalid syntax'),
    (["--nosuchflag"], "unknown flag: --nosuchflag"),
]


@pytest.mark.parametrize("args,msg", BAD_FLAGS)
def test_run_bad_flag_values_exit_125(daemon, args, msg):
    for cmd in (["run"], ["create"], ["container", "run"]):
        p = daemon.berth(*cmd, *args, "busybox", check=False)
        assert p.returncode == 125, p.err
        lines = p.err.splitlines()
        assert lines[0] == msg
        assert lines[1] == f"See 'berth {' '.join(cmd)} --help'."
        assert p.out == ""


PARSE_ERRORS = [
    (["--restart", "on-failure:x"], "maximum retry count must be an integer"),
    (["--restart", "a:b:c"], "invalid restart policy format"),
    (["--rm", "--restart", "always"], "Conflicting options: --restart and --rm"),
    (["--memory-swappiness", "200"], "invalid value: 200. Valid memory swappiness range is 0-100"),
    (["--no-healthcheck", "--health-cmd", "x"], "--no-healthcheck conflicts with --health-* "
                                                "options"),
    (["--pid", "foo"], "--pid: invalid PID mode"),
    (["--security-opt", "foo"], 'Invalid --security-opt: "foo"'),
    (["--log-driver", "none", "--log-opt", "a=b"], "invalid logging opts for driver none"),
    (["--expose", "1:2"], "invalid port format for --expose: 1:2"),
    (["--env-file", "/nonexistent/env"], "open /nonexistent/env: no such file or directory"),
]


@pytest.mark.parametrize("args,msg", PARSE_ERRORS)
def test_run_option_errors_exit_125(daemon, args, msg):
    p = daemon.berth("run", *args, "busybox", check=False)
    assert p.returncode == 125
    assert p.err == f"berth: {msg}.\nSee 'berth run --help'.\n"
    p = daemon.berth("create", *args, "busybox", check=False)
    assert p.returncode == 125
    assert p.err == f"berth: {msg}.\nSee 'berth create --help'.\n"


def test_run_argument_errors(daemon):
    p = daemon.berth("run", check=False)
    assert p.returncode == 1
    assert p.err.startswith('"berth run" requires at least 1 argument.\n'
                            "See 'berth run --help'.\n")
    p = daemon.berth("run", "UPPER", check=False)
    assert p.returncode == 125
    assert p.err == ("berth: invalid reference format: repository name must be lowercase.\n"
                     "See 'berth run --help'.\n")
    p = daemon.berth("run", "-d", "-a", "stdout", "busybox", check=False)
    assert (p.returncode, p.err) == (1, "Conflicting options: -a and -d\n")
    # -t with -i needs a terminal on stdin
    p = daemon.berth("run", "-it", "busybox", input="", check=False)
    assert (p.returncode, p.err) == (1, "the input device is not a TTY\n")


def test_run_unknown_image(daemon):
    p = daemon.berth("run", "nosuchimage", check=False)
    assert p.returncode == 125
    lines = p.err.splitlines()
    assert lines[0] == "Unable to find image 'nosuchimage:latest' locally"
    assert lines[1].startswith("berth: Error response from daemon: ")
    assert lines[-1] == "See 'berth run --help'."
    p = daemon.berth("run", "--pull", "never", "nosuchimage:v2", check=False)
    assert p.returncode == 125
    assert "Unable to find image" not in p.err
    assert "nosuchimage" in p.err


def test_flags_stop_at_the_image(daemon, busybox, names):
    """Flags after the image belong to the command (run is not interspersed)."""
    p = daemon.berth("run", "--rm", "busybox", "echo", "-n", "--rm", "x")
    assert p.out == "--rm x"


# ---------------------------------------------------------------------------
# run: output, status, stdin
# ---------------------------------------------------------------------------

def test_run_output_and_status(daemon, busybox):
    p = daemon.berth("run", "--rm", "busybox", "echo", "hello")
    assert (p.returncode, p.out, p.err) == (0, "hello\n", "")
    p = daemon.berth("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3",
                     check=False)
    assert (p.returncode, p.out, p.err) == (3, "out\n", "err\n")


def test_run_stdin(daemon, busybox):
    p = daemon.berth("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done",
                     input="line1\nline2\n")
    assert p.out == "line1\nline2\ndone\n"
    big = os.urandom(300000).hex()
    p = daemon.berth("run", "--rm", "-i", "busybox", "wc", "-c", input=big)
    assert p.out.strip() == str(len(big))
    # without -i stdin is not sent: cat sees EOF at once
    p = daemon.berth("run", "--rm", "busybox", "cat", input="ignored\n")
    assert p.out == ""


def test_run_options_reach_the_container(daemon, busybox):
    p = daemon.berth("run", "--rm", "-e", "FOO=bar", "-u", "nobody", "-w", "/tmp",
                     "busybox", "sh", "-c", "echo $FOO; id -u; pwd")
    assert p.out == "bar\n65534\n/tmp\n"
    p = daemon.berth("run", "--rm", "--entrypoint", "echo", "busybox", "a", "b")
    assert p.out == "a b\n"


def test_run_hostname(daemon, busybox):
    p = daemon.berth("run", "--rm", "-h", "myhost", "busybox", "hostname")
    assert p.out == "myhost\n"


def test_run_env_file(daemon, busybox, tmp_path):
    f = tmp_path / "env"
    f.write_text("# comment\n\nA=1\n  B=two words\n")
    p = daemon.berth("run", "--rm", "--env-file", str(f), "-e", "C=3", "busybox", "sh", "-c",
                     'echo "$A|$B|$C"')
    assert p.out == "1|two words|3\n"


def test_run_command_not_found_127_not_executable_126(daemon, busybox):
    p = daemon.berth("run", "--rm", "busybox", "nosuchcmd", check=False)
    assert p.returncode == 127, p.err
    assert p.err.startswith("berth: Error response from daemon: ")
    assert "See 'berth run --help'" not in p.err
    p = daemon.berth("run", "--rm", "busybox", "/etc/passwd", check=False)
    assert p.returncode == 126, p.err


def test_run_name_conflict(daemon, busybox, names):
    n = names()
    daemon.berth("create", "--name", n, "busybox", "true")
    p = daemon.berth("run", "--name", n, "busybox", "true", check=False)
    assert p.returncode == 125
    assert p.err.startswith("berth: Error response from daemon: ")
    assert "already in use" in p.err
    assert p.err.endswith("See 'berth run --help'.\n")
    p = daemon.berth("create", "--name", n, "busybox", "true", check=False)
    assert p.returncode == 1
    assert p.err.startswith("Error response from daemon: ") and "already in use" in p.err


def test_run_detached_prints_full_id(daemon, busybox, names):
    n = names()
    p = daemon.berth("run", "-d", "--name", n, "busybox", "sh", "-c", "echo bg; exit 4")
    cid = p.out.strip()
    assert HEX64.match(cid), p.out
    assert daemon.berth("wait", n).out == "4\n"
    assert daemon.berth("logs", cid).out == "bg\n"


def test_run_rm_removes(daemon, busybox, names):
    n = names()
    daemon.berth("run", "--rm", "--name", n, "busybox", "true")
    assert wait_for(lambda: state(daemon, n) is None, timeout=10)


def test_run_cidfile(daemon, busybox, names, tmp_path):
    f = tmp_path / "cid"
    p = daemon.berth("run", "--rm", "--cidfile", str(f), "busybox", "true")
    assert HEX64.match(f.read_text())
    p = daemon.berth("run", "--rm", "--cidfile", str(f), "busybox", "true", check=False)
    assert p.returncode == 125
    assert "Container ID file found" in p.err


def test_run_create_body_fields(daemon, busybox, names):
    """What the flags put in Config and HostConfig."""
    n = names()
    daemon.berth("create", "--name", n, "-l", "a=b", "-l", "flag", "-m", "64m", "--cpus", "1.5",
                 "--pids-limit", "50", "--restart", "on-failure:3", "--init",
                 "--stop-signal", "SIGUSR1", "--stop-timeout", "7", "--cap-add", "NET_ADMIN",
                 "--cap-drop", "CHOWN", "--read-only", "--shm-size", "1g", "--ulimit",
                 "nofile=100:200", "--sysctl", "net.ipv4.ip_forward=1", "--tmpfs", "/run:size=1m",
                 "--health-cmd", "true", "--health-interval", "1m30s", "--group-add", "10",
                 "--network", "none", "busybox", "true")
    j = daemon.api_json("GET", f"/containers/{n}/json")
    cfg, hc = j["Config"], j["HostConfig"]
    assert cfg["Labels"] == {"a": "b", "flag": ""}
    assert cfg["StopSignal"] == "SIGUSR1" and cfg["StopTimeout"] == 7
    assert cfg["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
    assert cfg["Healthcheck"]["Interval"] == 90 * 10**9
    assert hc["Memory"] == 64 << 20 and hc["NanoCpus"] == 1500000000
    assert hc["PidsLimit"] == 50
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert hc["Init"] is True and hc["ReadonlyRootfs"] is True
    assert hc["CapAdd"] == ["NET_ADMIN"] and hc["CapDrop"] == ["CHOWN"]
    assert hc["ShmSize"] == 1 << 30
    assert hc["Ulimits"] == [{"Name": "nofile", "Hard": 200, "Soft": 100}]
    assert hc["Sysctls"] == {"net.ipv4.ip_forward": "1"}
    assert hc["Tmpfs"] == {"/run": "size=1m"}
    assert hc["GroupAdd"] == ["10"]


def test_run_volume_bind(daemon, busybox, tmp_path):
    (tmp_path / "f").write_text("from host\n")
    p = daemon.berth("run", "--rm", "-v", f"{tmp_path}:/mnt:ro", "busybox", "sh", "-c",
                     "cat /mnt/f; touch /mnt/x", check=False)
    assert p.out == "from host\n"
    assert p.returncode != 0 and not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------
# create / start / attach / wait / lifecycle
# ---------------------------------------------------------------------------

def test_create_then_start_attached(daemon, busybox, names):
    n = names()
    p = daemon.berth("create", "--name", n, "busybox", "sh", "-c", "echo started; exit 2")
    assert HEX64.match(p.out.strip())
    p = daemon.berth("start", "-a", n, check=False)
    assert (p.returncode, p.out) == (2, "started\n")


def test_start_interactive(daemon, busybox, names):
    n = names()
    daemon.berth("create", "-i", "--name", n, "busybox", "cat")
    p = daemon.berth("container", "start", "-ai", n, input="via stdin\n")
    assert p.out == "via stdin\n"


def test_start_errors(daemon, busybox, names):
    n = names()
    daemon.berth("create", "--name", n, "busybox", "true")
    p = daemon.berth("start", n, "nosuchctr", check=False)
    assert p.returncode == 1
    assert p.out == f"{n}\n"
    assert p.err.splitlines() == ["Error response from daemon: No such container: nosuchctr",
                                  "Error: failed to start containers: nosuchctr"]
    p = daemon.berth("start", "-a", n, "other", check=False)
    assert (p.returncode, p.err) == (1, "you cannot start and attach multiple containers at "
                                        "once\n")


def test_stop_kill_restart_pause(daemon, busybox, names):
    a, b = names(), names()
    for n in (a, b):
        daemon.berth("run", "-d", "--name", n, "busybox", "sleep", "1000")
    p = daemon.berth("pause", a)
    assert p.out == f"{a}\n"
    assert state(daemon, a)["Paused"]
    assert daemon.berth("unpause", a).out == f"{a}\n"
    p = daemon.berth("stop", "-t", "1", a, "nosuchctr", b, check=False)
    assert p.returncode == 1
    assert p.out == f"{a}\n{b}\n"
    assert p.err == "Error response from daemon: No such container: nosuchctr\n"
    assert not running(daemon, a) and not running(daemon, b)
    assert daemon.berth("restart", "-t", "1", a).out == f"{a}\n"
    assert running(daemon, a)
    p = daemon.berth("kill", "-s", "FOO", a, check=False)
    assert p.returncode == 1 and p.err.startswith("Error response from daemon: ")
    assert daemon.berth("kill", a).out == f"{a}\n"
    assert daemon.berth("wait", a).out == "137\n"


def test_wait_prints_codes_and_errors_last(daemon, busybox, names):
    a = names()
    daemon.berth("run", "--name", a, "busybox", "sh", "-c", "exit 9", check=False)
    p = daemon.berth("wait", "nosuchctr", a, check=False)
    assert p.returncode == 1
    assert p.out == "9\n"
    assert p.err == "Error response from daemon: No such container: nosuchctr\n"


def test_rm(daemon, busybox, names):
    a, b = names(), names()
    daemon.berth("create", "--name", a, "busybox", "true")
    daemon.berth("run", "-d", "--name", b, "busybox", "sleep", "1000")
    p = daemon.berth("rm", a, "nosuchctr", b, check=False)
    assert p.returncode == 1
    assert p.out == f"{a}\n"
    err = p.err.splitlines()
    assert err[0] == "Error: No such container: nosuchctr"
    assert "running" in err[1] or "stop" in err[1], err
    assert daemon.berth("container", "rm", "-f", "/" + b).out == f"/{b}\n"
    assert state(daemon, a) is None and state(daemon, b) is None
    p = daemon.berth("rm", "", check=False)
    assert (p.returncode, p.err) == (1, "Container name cannot be empty\n")


def test_rename(daemon, busybox, names):
    a, b = names(), names()
    daemon.berth("create", "--name", a, "busybox", "true")
    daemon.berth("rename", a, b)
    assert state(daemon, b) is not None and state(daemon, a) is None
    p = daemon.berth("rename", "nosuchctr", "x", check=False)
    assert p.returncode == 1
    assert p.err == ("Error response from daemon: No such container: nosuchctr\n"
                     "Error: failed to rename container named nosuchctr\n")
    p = daemon.berth("rename", b, "", check=False)
    assert (p.returncode, p.err) == (1, "Error: Neither old nor new names may be empty\n")


def test_update(daemon, busybox, names):
    n = names()
    daemon.berth("create", "--name", n, "busybox", "true")
    p = daemon.berth("update", n, check=False)
    assert (p.returncode, p.err) == (1, "you must provide one or more flags when using this "
                                        "command\n")
    p = daemon.berth("update", "-m", "12x", n, check=False)
    assert p.returncode == 125
    p = daemon.berth("update", "--restart", "always", "-m", "32m", "--memory-swap", "64m", n)
    assert p.out == f"{n}\n"
    hc = daemon.api_json("GET", f"/containers/{n}/json")["HostConfig"]
    assert hc["RestartPolicy"]["Name"] == "always"
    assert hc["Memory"] == 32 << 20
    p = daemon.berth("update", "--cpus", "1", "nosuchctr", check=False)
    assert (p.returncode, p.err) == (1, "Error response from daemon: No such container: "
                                        "nosuchctr\n")


def test_container_prune(daemon, busybox, names):
    a, b = names(), names()
    daemon.berth("create", "--name", a, "-l", "prune=me", "busybox", "true")
    daemon.berth("run", "-d", "--name", b, "-l", "prune=me", "busybox", "sleep", "1000")
    p = daemon.berth("container", "prune", "-f", "--filter", "label=prune=me")
    lines = p.out.splitlines()
    assert lines[0] == "Deleted Containers:"
    assert len(lines) == 4 and HEX64.match(lines[1]) and lines[2] == ""
    assert lines[3].startswith("Total reclaimed space: ")
    assert state(daemon, a) is None and running(daemon, b)


# ---------------------------------------------------------------------------
# ps
# ---------------------------------------------------------------------------

def test_ps_table_and_fields(daemon, busybox, names):
    n = names()
    daemon.berth("run", "-d", "--name", n, "-l", "k=v", "busybox", "sh", "-c",
                 "echo a long command line; sleep 1000")
    p = daemon.berth("ps")
    head, *rows = p.out.splitlines()
    assert re.match(r"^CONTAINER ID +IMAGE +COMMAND +CREATED +STATUS +PORTS +NAMES$", head)
    row = [r for r in rows if r.endswith(" " + n)]
    assert len(row) == 1
    assert '"sh -c \'echo a long…"' in row[0] or '"sh -c echo a long c…"' in row[0], row[0]
    assert " Up " in row[0]
    cid = daemon.api_json("GET", f"/containers/{n}/json")["Id"]
    assert row[0].startswith(cid[:12] + "   busybox   ")
    p = daemon.berth("ps", "--no-trunc", "--filter", f"name={n}", "--format",
                     "{{.ID}}|{{.Names}}|{{.Labels}}|{{.State}}|{{.Image}}|{{.Command}}")
    assert p.out.split("|")[:5] == [cid, n, "k=v", "running", "busybox"]
    assert p.out.split("|")[5].startswith('"sh -c ') and "sleep 1000" in p.out
    p = daemon.berth("ps", "-q", "--no-trunc", "--filter", f"name={n}")
    assert p.out == cid + "\n"
    j = json.loads(daemon.berth("ps", "--filter", f"name={n}", "--format", "{{json .}}").out)
    assert sorted(j) == ["Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes",
                         "Mounts", "Names", "Networks", "Ports", "RunningFor", "Size", "State",
                         "Status"]


def test_ps_all_last_latest_size(daemon, busybox, names):
    a, b = names(), names()
    daemon.berth("create", "--name", a, "busybox", "true")
    daemon.berth("create", "--name", b, "busybox", "true")
    assert a not in daemon.berth("ps").out
    out = daemon.berth("ps", "-a", "--format", "{{.Names}}").out.split()
    assert a in out and b in out
    assert daemon.berth("ps", "-l", "--format", "{{.Names}}").out == f"{b}\n"
    assert daemon.berth("container", "ls", "-n", "2", "--format", "{{.Names}}").out == \
        f"{b}\n{a}\n"
    head = daemon.berth("ps", "-a", "-s", "-n", "1").out.splitlines()[0]
    assert re.search(r" NAMES +SIZE$", head), head
    # docker checks a --format before listing: errors show with no container too
    p = daemon.berth("ps", "--filter", "name=nomatch", "--format", "{{.Nope}}", check=False)
    assert (p.returncode, p.err) == (1, 'failed to execute template: template: :1:2: executing '
                                        '"" at <.Nope>: can\'t evaluate field Nope in type '
                                        '*formatter.ContainerContext\n')
    p = daemon.berth("ps", "--format", "{{.Nope}", check=False)
    assert p.returncode == 1 and p.err.startswith("failed to parse template: ")
    p = daemon.berth("ps", "-a", "--filter", f"name={a}", "--format",
                     'table {{.Names}}\t{{.Label "com.x.my-label"}}')
    assert p.out.split("\n")[0].split("   ")[-1].strip() == "my label"


# ---------------------------------------------------------------------------
# logs
# ---------------------------------------------------------------------------

def test_logs(daemon, busybox, names):
    n = names()
    daemon.berth("run", "--name", n, "busybox", "sh", "-c",
                 "echo one; echo two >&2; echo three")
    p = daemon.berth("logs", n)
    assert (p.out, p.err) == ("one\nthree\n", "two\n")
    m = names()
    daemon.berth("run", "--name", m, "busybox", "sh", "-c", "echo one; echo two; echo three")
    assert daemon.berth("logs", "--tail", "2", m).out == "two\nthree\n"
    assert daemon.berth("container", "logs", "-n", "0", n).out == ""
    p = daemon.berth("logs", "-t", n)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z one\n", p.out), p.out
    assert daemon.berth("logs", "--until", "1", n).out == ""
    p = daemon.berth("logs", "--since", "abc", n, check=False)
    assert (p.returncode, p.err) == (1, 'invalid value for "since": failed to parse value as '
                                        'time or duration: "abc"\n')
    p = daemon.berth("logs", "nosuchctr", check=False)
    assert (p.returncode, p.err) == (1, "Error: No such container: nosuchctr\n")


def test_logs_follow_and_tty(daemon, busybox, names):
    n, t = names(), names()
    daemon.berth("run", "-d", "--name", n, "busybox", "sh", "-c",
                 "for i in 1 2 3; do echo $i; sleep 0.2; done")
    p = daemon.berth("logs", "-f", n, timeout=30)
    assert p.out == "1\n2\n3\n"
    daemon.berth("run", "-d", "-t", "--name", t, "busybox", "sh", "-c", "echo tty; echo e >&2")
    daemon.berth("wait", t)
    p = daemon.berth("logs", t)
    assert p.out == "tty\r\ne\r\n" and p.err == ""


# ---------------------------------------------------------------------------
# exec, top, stats, inspect
# ---------------------------------------------------------------------------

def test_exec(daemon, busybox, names):
    n = names()
    daemon.berth("run", "-d", "--name", n, "busybox", "sleep", "1000")
    assert daemon.berth("exec", n, "echo", "-n", "hi").out == "hi"
    p = daemon.berth("exec", n, "sh", "-c", "echo out; echo err >&2; exit 5", check=False)
    assert (p.returncode, p.out, p.err) == (5, "out\n", "err\n")
    p = daemon.berth("exec", "-e", "A=1", "-w", "/tmp", "-u", "nobody", n, "sh", "-c",
                     "echo $A; pwd; id -u")
    assert p.out == "1\n/tmp\n65534\n"
    p = daemon.berth("exec", "-i", n, "cat", input="piped\n")
    assert p.out == "piped\n"
    p = daemon.berth("exec", "-d", n, "sh", "-c", "echo x > /tmp/detached")
    assert p.out == ""
    assert wait_for(lambda: daemon.berth("exec", n, "cat", "/tmp/detached",
                                         check=False).out == "x\n")
    p = daemon.berth("exec", n, "nosuchcmd", check=False)
    assert p.returncode in (126, 127), (p.returncode, p.err)
    p = daemon.berth("exec", "nosuchctr", "true", check=False)
    assert (p.returncode, p.err) == (1, "Error: No such container: nosuchctr\n")
    daemon.berth("kill", n)
    daemon.berth("wait", n)
    p = daemon.berth("exec", n, "true", check=False)
    assert p.returncode == 1 and "is not running" in p.err


def test_top(daemon, busybox, names):
    n = names()
    daemon.berth("run", "-d", "--name", n, "busybox", "sleep", "1000")
    lines = daemon.berth("top", n).out.splitlines()
    assert re.match(r"^UID +PID +PPID +C +STIME +TTY +TIME +CMD$", lines[0]), lines
    assert lines[1].endswith("sleep 1000")
    lines = daemon.berth("top", n, "-o", "pid,comm").out.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"] and lines[1].split()[1] == "sleep"
    p = daemon.berth("top", "nosuchctr", check=False)
    assert (p.returncode, p.err) == (1, "Error response from daemon: No such container: "
                                        "nosuchctr\n")


def test_stats_no_stream(daemon, busybox, names):
    n = names()
    daemon.berth("run", "-d", "--name", n, "busybox", "sleep", "1000")
    p = daemon.berth("stats", "--no-stream", n, timeout=30)
    head, row = p.out.splitlines()
    assert re.match(r"^CONTAINER ID +NAME +CPU % +MEM USAGE / LIMIT +MEM % +NET I/O +"
                    r"BLOCK I/O +PIDS$", head)
    assert re.match(r"^[0-9a-f]{12} +" + n + r" +\d+\.\d\d% +[\d.]+[KMG]?i?B / [\d.]+[KMGT]?i?B"
                    r" +\d+\.\d\d% +.* +1$", row), row
    p = daemon.berth("stats", "--no-stream", "--format", "{{.Name}}:{{.PIDs}}:{{.Container}}",
                     n, timeout=30)
    assert p.out == f"{n}:1:{n}\n"
    out = daemon.berth("stats", "--no-stream", "--format", "{{.Name}}", timeout=30).out
    assert n in out.split()
    p = daemon.berth("stats", "--no-stream", "nosuchctr", timeout=30, check=False)
    assert (p.returncode, p.err) == (1, "Error response from daemon: No such container: "
                                        "nosuchctr\n")


def test_inspect_container_first(daemon, busybox, names):
    n = names()
    daemon.berth("create", "--name", n, "-e", "X=1", "busybox", "true")
    p = daemon.berth("inspect", "-f", "{{.Name}} {{.Config.Env}} {{.HostConfig.Binds}}", n)
    assert p.out.startswith(f"/{n} [")
    assert "X=1" in p.out and p.out.endswith(" []\n")
    arr = json.loads(daemon.berth("container", "inspect", n).out)
    assert len(arr) == 1 and arr[0]["Name"] == "/" + n
    # inspect tries containers before images: a container named like an image wins
    c2 = names()
    daemon.berth("create", "--name", c2, "busybox", "true")
    daemon.berth("tag", "busybox", c2)
    try:
        assert daemon.berth("inspect", "-f", "{{.Name}}", c2).out == f"/{c2}\n"
        assert daemon.berth("image", "inspect", "-f", "{{.Os}}", c2).out == "linux\n"
    finally:
        daemon.berth("rmi", c2, check=False)
    p = daemon.berth("container", "inspect", "-s", "-f", "{{.SizeRw}}", n)
    assert p.out.strip().isdigit()
    p = daemon.berth("container", "inspect", "nosuchctr", check=False)
    assert (p.returncode, p.out, p.err) == (1, "[]\n", "Error: No such container: nosuchctr\n")
    p = daemon.berth("inspect", "nosuchctr", check=False)
    assert (p.returncode, p.err) == (1, "Error: No such object: nosuchctr\n")


# ---------------------------------------------------------------------------
# filesystem: cp, diff, export, commit
# ---------------------------------------------------------------------------

def test_cp_both_ways(daemon, busybox, names, tmp_path):
    n = names()
    daemon.berth("run", "-d", "--name", n, "busybox", "sleep", "1000")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_text("A\n")
    (src / "sub" / "b").write_text("B\n")
    daemon.berth("cp", str(src), f"{n}:/tmp/")
    daemon.berth("cp", str(src / "a"), f"{n}:/tmp/renamed")
    daemon.berth("cp", str(src), f"{n}:/tmp/newdir")
    p = daemon.berth("exec", n, "sh", "-c",
                     "cat /tmp/src/a /tmp/src/sub/b /tmp/renamed /tmp/newdir/sub/b")
    assert p.out == "A\nB\nA\nB\n"
    out = tmp_path / "out"
    out.mkdir()
    daemon.berth("cp", f"{n}:/etc/passwd", str(out))
    daemon.berth("cp", f"{n}:/etc/passwd", str(out / "pw"))
    daemon.berth("cp", f"{n}:/tmp/src", str(out / "copy"))
    assert (out / "passwd").read_text().startswith("root:")
    assert (out / "pw").read_text() == (out / "passwd").read_text()
    assert (out / "copy" / "sub" / "b").read_text() == "B\n"
    # tar on stdout / stdin
    p = subprocess.run([BERTH, "-H", daemon.host, "cp", f"{n}:/etc/passwd", "-"],
                       stdout=subprocess.PIPE, check=True)
    with tarfile.open(fileobj=io.BytesIO(p.stdout)) as t:
        assert t.getnames() == ["passwd"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b"from stdin\n"
        ti = tarfile.TarInfo("stdin.txt")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    daemon.berth("cp", "-", f"{n}:/tmp", input=buf.getvalue())
    assert daemon.berth("exec", n, "cat", "/tmp/stdin.txt").out == "from stdin\n"


def test_cp_errors(daemon, busybox, names, tmp_path):
    n = names()
    daemon.berth("run", "-d", "--name", n, "busybox", "sleep", "1000")
    os.chdir(tmp_path)
    cases = [
        (["cp", f"{n}:/nonexist", "."], f"Error: No such container:path: {n}:/nonexist\n"),
        (["cp", "nosuchctr:/etc", "."], "Error: No such container:path: nosuchctr:/etc\n"),
        (["cp", f"{n}:/etc/passwd", "/nonexist/x"],
         'invalid output path: directory "/nonexist" does not exist\n'),
        (["cp", f"{n}:/etc/passwd", "nodir/"], "no such directory\n"),
        (["cp", "nofile", f"{n}:/tmp"], f"lstat {tmp_path}/nofile: no such file or directory\n"),
        (["cp", "-", f"{n}:/etc/passwd"], f'destination "{n}:/etc/passwd" must be a directory\n'),
        (["cp", "a", "b"], "must specify at least one container source\n"),
        (["cp", f"{n}:/a", f"{n}:/b"], "copying between containers is not supported\n"),
    ]
    for args, err in cases:
        p = daemon.berth(*args, check=False)
        assert (p.returncode, p.err) == (1, err), args


def test_diff_export_commit(daemon, busybox, names, tmp_path, cleanup):
    n = names()
    daemon.berth("run", "--name", n, "busybox", "sh", "-c",
                 "mkdir /newdir; echo x > /newdir/f; rm /etc/group")
    lines = daemon.berth("diff", n).out.splitlines()
    assert "A /newdir" in lines and "A /newdir/f" in lines
    assert "C /etc" in lines and "D /etc/group" in lines
    out = tmp_path / "exp.tar"
    daemon.berth("export", "-o", str(out), n)
    with tarfile.open(out) as t:
        names_in = {m.name.lstrip("./") for m in t.getmembers()}
    assert "newdir/f" in names_in and "etc/group" not in names_in
    repo = uniq("commit")
    cleanup.append(repo + ":v1")
    p = daemon.berth("commit", "-m", "msg", "-a", "me", "-c", 'CMD ["cat", "/newdir/f"]', n,
                     repo + ":v1")
    assert re.match(r"^sha256:[0-9a-f]{64}\n$", p.out)
    assert daemon.berth("run", "--rm", repo + ":v1").out == "x\n"
    p = daemon.berth("diff", "nosuchctr", check=False)
    assert (p.returncode, p.err) == (1, "Error response from daemon: No such container: "
                                        "nosuchctr\n")


# ---------------------------------------------------------------------------
# terminals: raw mode, window size, detach keys, signals
# ---------------------------------------------------------------------------

class Pty:
    """A berth process on a pseudo-terminal of a given size."""

    def __init__(self, daemon, *args, rows=24, cols=80):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(BERTH, [BERTH, "-H", daemon.host, *args])
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.buf = b""

    def resize(self, rows, cols):
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.kill(self.pid, signal.SIGWINCH)

    def read_until(self, pattern, timeout=10):
        deadline = time.time() + timeout
        while not re.search(pattern, self.buf):
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"timeout waiting for {pattern!r}; got {self.buf!r}")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    data = os.read(self.fd, 4096)
                except OSError as e:
                    if e.errno == errno.EIO:
                        break
                    raise
                if not data:
                    break
                self.buf += data
        return self.buf

    def write(self, data):
        os.write(self.fd, data)

    def drain(self):
        try:
            while select.select([self.fd], [], [], 0.1)[0]:
                data = os.read(self.fd, 4096)
                if not data:
                    break
                self.buf += data
        except OSError:
            pass

    def wait(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.drain()
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            try:
                if select.select([self.fd], [], [], 0.1)[0]:
                    self.buf += os.read(self.fd, 4096)
            except OSError:
                time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("berth did not exit; output: %r" % self.buf)


# The containers read lines with `read` rather than running an interactive
# shell: busybox's line editor queries the cursor position (ESC [6n) and
# waits for the terminal's answer, which a bare pty never sends.
LOOP = 'while read l; do echo "got:$l"; [ "$l" = quit ] && exit 6; done'


def test_tty_size_raw_mode_and_status(daemon, busybox):
    t = Pty(daemon, "run", "-it", "--rm", "busybox", "sh", "-c",
            "sleep 0.5; stty size; tty; read x; stty size; exit 4", rows=33, cols=101)
    t.read_until(rb"33 101\r\n/dev/pts/\d+\r\n")
    t.resize(20, 70)
    time.sleep(0.5)
    t.write(b"go\r")
    t.read_until(rb"20 70")
    assert t.wait() == 4


def test_detach_keys_and_attach(daemon, busybox, names):
    n = names()
    t = Pty(daemon, "run", "-it", "--name", n, "busybox", "sh", "-c", LOOP)
    t.write(b"one\r")
    t.read_until(rb"got:one")
    t.write(b"\x10\x11")                # ctrl-p ctrl-q
    assert t.wait() == 0
    assert running(daemon, n)
    t = Pty(daemon, "attach", "--detach-keys", "ctrl-x,x", n)
    time.sleep(0.5)
    t.write(b"two\r")
    t.read_until(rb"got:two")
    t.write(b"\x18x")                   # ctrl-x x
    assert t.wait() == 1
    assert b"read escape sequence" in t.buf
    assert running(daemon, n)
    t = Pty(daemon, "attach", n)
    time.sleep(0.5)
    t.write(b"quit\r")
    assert t.wait() == 6
    assert not running(daemon, n)


def test_exec_tty(daemon, busybox, names):
    n = names()
    daemon.berth("run", "-d", "--name", n, "busybox", "sleep", "1000")
    t = Pty(daemon, "exec", "-it", n, "sh", "-c", "stty size; exit 3", rows=40, cols=90)
    t.read_until(rb"40 90")
    assert t.wait() == 3


def test_sig_proxy_forwards_signals(daemon, busybox, names):
    n = names()
    p = subprocess.Popen([BERTH, "-H", daemon.host, "run", "--name", n, "busybox", "sh", "-c",
                          'trap "echo got INT; exit 9" INT; echo ready; '
                          'while :; do sleep 0.1; done'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline() == b"ready\n"
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=20)
    assert out == b"got INT\n"
    assert p.returncode == 9


def test_no_sig_proxy(daemon, busybox, names):
    n = names()
    p = subprocess.Popen([BERTH, "-H", daemon.host, "run", "--sig-proxy=false", "--name", n,
                          "busybox", "sh", "-c", "echo ready; sleep 1000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline() == b"ready\n"
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)
    assert p.returncode == -signal.SIGTERM
    assert running(daemon, n)


# ---------------------------------------------------------------------------
# aliases and help
# ---------------------------------------------------------------------------

def test_container_group(daemon, busybox, names):
    p = daemon.berth("container")
    assert p.returncode == 0
    p = daemon.berth("container", "--help")
    for cmd in ("attach", "commit", "cp", "create", "diff", "exec", "export", "inspect", "kill",
                "logs", "ls", "pause", "port", "prune", "rename", "restart", "rm", "run",
                "start", "stats", "stop", "top", "unpause", "update", "wait"):
        assert re.search(rf"^  {cmd} ", p.out, re.M), cmd
    n = names()
    daemon.berth("container", "create", "--name", n, "busybox", "true")
    for alias in ("ls", "list", "ps"):
        out = daemon.berth("container", alias, "-a", "--format", "{{.Names}}").out.split()
        assert n in out
    assert daemon.berth("container", "remove", n).out == f"{n}\n"
    p = daemon.berth("run", "--help")
    assert p.out.startswith("\nUsage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\n")
    assert "  -h, --hostname string" in p.out
