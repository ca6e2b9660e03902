"""berthd as a process: one daemon per data root, socket mode, clean shutdown
on SIGTERM/SIGINT, side-by-side daemons, crash safety (kill -9 then restart
keeps images and tags), daemon.json. Each test runs its own daemons.
"""

import grp
import json
import os
import signal
import stat
import subprocess
import threading
import time

import pytest

from conftest import (BERTH, BERTHD, Daemon, api_import, err_message, gz, image_exists,
                      import_image, inspect_image, make_tar, small_tar, uniq, wait_for)


class Finished:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_berthd(argv, timeout=20):
    """Runs a berthd that is expected to exit by itself. If it is still running
    after timeout (it started although it should not have), it is stopped and
    returncode is "still running"."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = p.communicate(timeout=timeout)
        return Finished(p.returncode, out, err)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        try:
            out, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        return Finished("still running", out, err)


def assert_refused(p):
    assert p.returncode != "still running", "berthd started and served; it should have refused"
    assert p.returncode != 0, "berthd exited 0; it should have failed"


def test_second_daemon_on_same_root_refuses(own_daemons):
    d1 = own_daemons().start()
    iid = import_image(d1, small_tar(), repo="first")
    d2 = own_daemons()
    d2.data_root = d1.data_root                       # same data root, own socket and pidfile
    p = run_berthd(d2.argv())
    assert_refused(p)
    err = p.stderr.decode()
    assert d1.data_root in err and ("in use" in err or "another" in err), err
    assert not os.path.exists(d2.sock)
    assert not os.path.exists(d2.pidfile)
    # the first keeps serving, its pidfile and socket untouched
    assert d1.api("GET", "/_ping")[2] == b"OK"
    assert open(d1.pidfile).read().strip() == str(d1.proc.pid)
    assert inspect_image(d1, "first")["Id"] == iid
    assert d1.stop() == 0


def test_second_daemon_on_same_socket_refuses(own_daemons):
    d1 = own_daemons().start()
    d2 = own_daemons()
    d2.sock, d2.host = d1.sock, d1.host             # own data root, same socket
    p = run_berthd(d2.argv())
    assert_refused(p)
    assert d1.sock in p.stderr.decode() or "another daemon" in p.stderr.decode(), p.stderr
    # the first daemon's socket still exists and answers
    assert os.path.exists(d1.sock)
    assert d1.api("GET", "/_ping")[2] == b"OK"
    assert d1.stop() == 0


def test_socket_mode_and_group(own_daemons):
    d = own_daemons().start()
    st = os.stat(d.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    try:
        gid = grp.getgrnam("berth").gr_gid
    except KeyError:
        gid = 0
    assert st.st_gid == gid
    assert d.stop() == 0


def test_pidfile_holds_pid(own_daemons):
    """As with dockerd, the pidfile exists by the time the API answers (dockerd
    writes it before it starts serving). Several starts, to catch a race."""
    d = own_daemons()
    extra = []
    for i in range(3):                 # more listeners widen any start-up window
        extra += ["-H", "unix://" + os.path.join(os.path.dirname(d.sock), f"extra{i}.sock")]
    for _ in range(5):
        d.start(*extra)                # returns at the first /_ping that answers 200
        present = os.path.exists(d.pidfile)
        assert present, "the API answered before the pidfile was written"
        assert open(d.pidfile).read().strip() == str(d.proc.pid)
        assert d.stop() == 0
        assert not os.path.exists(d.pidfile)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_clean_shutdown(own_daemons, sig):
    d = own_daemons().start()
    import_image(d, small_tar(), repo="x")
    d.proc.send_signal(sig)
    rc = d.proc.wait(20)
    d.proc = None
    d.logf.close()
    assert rc == 0, d.log()[-2000:]
    assert not os.path.exists(d.sock), "socket left behind"
    assert not os.path.exists(d.pidfile), "pidfile left behind"
    assert not d.sanitizer_reports()


def test_shutdown_with_open_event_stream(own_daemons):
    """A client holding an events stream does not keep the daemon from exiting."""
    d = own_daemons().start()
    import socket as sk
    s = sk.socket(sk.AF_UNIX, sk.SOCK_STREAM)
    s.settimeout(30)
    s.connect(d.sock)
    s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head
    t = time.time()
    rc = d.stop(timeout=20)
    s.close()
    assert rc == 0
    assert time.time() - t < 15


def test_two_daemons_side_by_side(own_daemons):
    a = own_daemons().start()
    b = own_daemons().start()
    ia = a.api_json("GET", "/info")
    ib = b.api_json("GET", "/info")
    assert ia["DockerRootDir"] == a.data_root and ib["DockerRootDir"] == b.data_root
    assert ia["ID"] != ib["ID"]
    x = import_image(a, small_tar(), repo="only-in-a")
    assert image_exists(a, "only-in-a")
    assert not image_exists(b, "only-in-a")
    assert not image_exists(b, x)
    assert b.api_json("GET", "/images/json") == []
    assert a.stop() == 0
    # b is unaffected by a's shutdown
    assert b.api("GET", "/_ping")[2] == b"OK"
    assert b.stop() == 0


def state(d):
    imgs = d.api_json("GET", "/images/json?all=1")
    return sorted((i["Id"], tuple(sorted(i["RepoTags"] or []))) for i in imgs)


def test_kill9_restart_keeps_images_and_tags(own_daemons):
    d = own_daemons().start()
    info_id = d.api_json("GET", "/info")["ID"]
    a = import_image(d, small_tar(), repo="keep", tag="1", changes=['CMD ["sh"]'])
    b = import_image(d, small_tar(), repo="keep", tag="2")
    assert d.api("POST", f"/images/{a}/tag?repo=other&tag=x")[0] == 201
    gone = import_image(d, small_tar(), repo="gone")
    assert d.api("DELETE", "/images/gone")[0] == 200
    assert d.api("DELETE", "/images/keep:2")[0] == 200      # b deleted too (last name)
    want = state(d)
    cfg_a = inspect_image(d, a)
    d.kill9()
    assert os.path.exists(d.sock)                             # a stale socket is left...
    d.start()                                                 # ...and replaced on restart
    assert state(d) == want
    assert [x[0] for x in want] == [a]
    assert inspect_image(d, a) == cfg_a
    assert not image_exists(d, gone) and not image_exists(d, b)
    assert d.api_json("GET", "/info")["ID"] == info_id
    assert open(d.pidfile).read().strip() == str(d.proc.pid)
    assert os.listdir(os.path.join(d.data_root, "tmp")) == []
    assert d.stop() == 0


def test_kill9_during_import_leaves_consistent_store(own_daemons):
    d = own_daemons().start()
    keep = import_image(d, small_tar(), repo="keep")
    big = make_tar([(f"f{i}", "file", os.urandom(1 << 20)) for i in range(48)])
    box = {}

    def imp():
        try:
            box["r"] = api_import(d, big, repo="big", timeout=60)
        except Exception as e:  # the connection dies with the daemon
            box["r"] = e

    th = threading.Thread(target=imp)
    th.start()
    # kill while the body is being received or unpacked
    wait_for(lambda: os.listdir(os.path.join(d.data_root, "tmp")) or not th.is_alive(), 10,
             0.005)
    time.sleep(0.05)
    d.kill9()
    th.join(30)
    d.start()
    assert d.api("GET", "/_ping")[2] == b"OK"
    assert inspect_image(d, "keep")["Id"] == keep
    # either the import completed fully or it left nothing with its name
    if image_exists(d, "big"):
        j = inspect_image(d, "big")
        assert len(j["RootFS"]["Layers"]) == 1
    assert os.listdir(os.path.join(d.data_root, "tmp")) == []
    for i in d.api_json("GET", "/images/json?all=1"):
        assert d.api("GET", f"/images/{i['Id']}/json")[0] == 200
        assert d.api("GET", f"/images/{i['Id']}/get")[0] == 200
    # and the same import now works from scratch
    st, body = api_import(d, big, repo="big2")
    assert st == 200, body
    assert len(inspect_image(d, "big2")["RootFS"]["Layers"]) == 1
    assert d.stop() == 0


def test_restart_after_clean_stop_keeps_state(own_daemons):
    d = own_daemons().start()
    a = import_image(d, small_tar(), repo="persist", tag="1")
    want = state(d)
    assert d.stop() == 0
    d.start()
    assert state(d) == want
    assert inspect_image(d, "persist:1")["Id"] == a
    assert d.stop() == 0


def test_daemon_json_honoured(workdir):
    base = os.path.join(workdir, uniq("cfg"))
    os.makedirs(base)
    cfg = {
        "data-root": os.path.join(base, "data"),
        "exec-root": os.path.join(base, "exec"),
        "pidfile": os.path.join(base, "p.pid"),
        "hosts": ["unix://" + os.path.join(base, "s.sock")],
        "log-level": "debug",
    }
    path = os.path.join(base, "daemon.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    d = Daemon(base, name="viajson")
    d.data_root, d.exec_root, d.pidfile = cfg["data-root"], cfg["exec-root"], cfg["pidfile"]
    d.sock = os.path.join(base, "s.sock")
    d.host = "unix://" + d.sock
    d.argv = lambda *extra: [BERTHD, "--config-file", path, *extra]
    d.start()
    try:
        i = d.api_json("GET", "/info")
        assert i["DockerRootDir"] == cfg["data-root"]
        assert i["Debug"] is True
        wait_for(lambda: os.path.exists(cfg["pidfile"]), 5)    # (the race: test_pidfile_holds_pid)
        assert open(cfg["pidfile"]).read().strip() == str(d.proc.pid)
        assert os.path.isdir(cfg["exec-root"])
        import_image(d, small_tar(), repo="cfg")
        assert os.path.isdir(os.path.join(cfg["data-root"], "blobs"))
    finally:
        assert d.stop() == 0
    assert not os.path.exists(d.sock) and not os.path.exists(cfg["pidfile"])


def test_daemon_json_malformed_refused(workdir):
    base = os.path.join(workdir, uniq("bad"))
    os.makedirs(base)
    path = os.path.join(base, "daemon.json")
    with open(path, "w") as f:
        f.write('{"data-root": ')
    p = run_berthd([BERTHD, "--config-file", path, "-H", "unix://" + base + "/s.sock",
                    "--exec-root", base + "/e", "--pidfile", base + "/p"])
    assert_refused(p)
    assert path in p.stderr.decode(), p.stderr
    assert not os.path.exists(base + "/s.sock")


def test_daemon_json_missing_file_refused(workdir):
    base = os.path.join(workdir, uniq("miss"))
    os.makedirs(base)
    p = run_berthd([BERTHD, "--config-file", base + "/nope.json", "-H",
                    "unix://" + base + "/s.sock", "--data-root", base + "/d", "--exec-root",
                    base + "/e", "--pidfile", base + "/p"])
    assert_refused(p)
    assert "nope.json" in p.stderr.decode(), p.stderr


def test_daemon_json_conflict_with_flag_refused(workdir):
    """dockerd: "the following directives are specified both as a flag and in the
    configuration file: data-root: (from flag: X, from file: Y)"."""
    base = os.path.join(workdir, uniq("cfl"))
    os.makedirs(base)
    path = os.path.join(base, "daemon.json")
    with open(path, "w") as f:
        json.dump({"data-root": base + "/from-file"}, f)
    p = run_berthd([BERTHD, "--config-file", path, "--data-root", base + "/from-flag",
                    "-H", "unix://" + base + "/s.sock", "--exec-root", base + "/e",
                    "--pidfile", base + "/p"], timeout=10)
    assert p.returncode != "still running", \
        "berthd started with data-root given both as a flag and in daemon.json"
    assert_refused(p)
    err = p.stderr.decode()
    assert "data-root" in err and "flag" in err, err


def test_bad_flags(workdir):
    p = run_berthd([BERTHD, "--no-such-flag"])
    assert_refused(p)
    assert "no-such-flag" in p.stderr.decode() or "Usage" in p.stderr.decode()
    p = run_berthd([BERTHD, "--version"])
    assert p.returncode == 0 and p.stdout.strip()
    p = run_berthd([BERTHD, "--log-level", "loud", "--data-root", workdir + "/ll",
                    "--exec-root", workdir + "/ll-exec", "--pidfile", workdir + "/ll.pid",
                    "-H", "unix://" + workdir + "/ll.sock"])
    assert_refused(p)
    assert "loud" in p.stderr.decode()


# ---- libarchive is loaded on first use; a load failure is a 500, not a crash ----

def broken_libarchive(dirpath, kind):
    """A directory with a libarchive.so.13 that cannot serve: an empty file
    (dlopen fails) or a shared object without libarchive's symbols."""
    os.makedirs(dirpath, exist_ok=True)
    lib = os.path.join(dirpath, "libarchive.so.13")
    if kind == "empty":
        open(lib, "wb").close()
    else:
        subprocess.run(["cc", "-shared", "-fPIC", "-o", lib, "-x", "c", "/dev/null"], check=True)
    return dirpath


@pytest.mark.parametrize("kind", ["empty", "nosyms"])
def test_tar_endpoints_without_libarchive(own_daemons, workdir, kind):
    d = own_daemons().start()
    iid = import_image(d, small_tar(), repo="la", changes=['CMD ["sh"]'])
    cid = d.api_json("POST", "/containers/create", {"Image": iid}, expect=201)["Id"]
    assert d.stop() == 0
    libdir = broken_libarchive(os.path.join(workdir, uniq("lib")), kind)
    d.env = {"LD_LIBRARY_PATH": libdir}
    d.start()
    before = d.api_json("GET", "/images/json")

    def refused(method, path, body=None, headers=None):
        st, _, data = d.api(method, path, body=body, headers=headers)
        assert st == 500, f"{method} {path}: {st} {data[:300]!r}"
        msg = err_message(data)
        assert "libarchive.so.13" in msg, msg
        return msg

    refused("POST", "/images/create?fromSrc=-&repo=x", small_tar(),
            {"Content-Type": "application/tar"})
    refused("POST", "/images/create?fromSrc=-&repo=y", gz(small_tar()),
            {"Content-Type": "application/tar"})
    refused("POST", "/images/load", small_tar(), {"Content-Type": "application/x-tar"})
    refused("GET", f"/images/{iid}/get")
    refused("GET", f"/containers/{cid}/export")
    refused("GET", f"/containers/{cid}/archive?path=/hello.txt")
    refused("PUT", f"/containers/{cid}/archive?path=/", small_tar(),
            {"Content-Type": "application/x-tar"})
    refused("POST", f"/commit?container={cid}&repo=z")
    # what needs no libarchive still works, and nothing was left behind
    st, hdrs, _ = d.api("HEAD", f"/containers/{cid}/archive?path=/hello.txt")
    assert st == 200 and "x-docker-container-path-stat" in hdrs
    assert d.api_json("GET", "/images/json") == before
    assert d.api("GET", "/_ping")[2] == b"OK"
    # the CLI loads it on its own: a clear error there too
    env = dict(os.environ, LD_LIBRARY_PATH=libdir)
    p = subprocess.run([BERTH, "-H", d.host, "cp",
                        f"{cid}:/hello.txt", os.path.join(workdir, uniq("out"))],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode != 0 and b"libarchive.so.13" in p.stderr, p.stderr
    assert d.stop() == 0


# ---- the socket's group comes from /etc/group (no NSS); tcp:// numeric addresses ----

def etc_group_entry():
    """(name, gid) of a non-root group listed in /etc/group."""
    with open("/etc/group") as f:
        for line in f:
            parts = line.strip().split(":")
            if len(parts) >= 3 and parts[2].isdigit() and int(parts[2]) != 0:
                return parts[0], int(parts[2])
    pytest.skip("no non-root group in /etc/group")


@pytest.mark.parametrize("how", ["name", "number", "missing"])
def test_socket_group_flag(own_daemons, how):
    name, gid = etc_group_entry()
    arg, want = {"name": (name, gid), "number": ("4242", 4242),
                 "missing": (uniq("nogroup"), 0)}[how]
    d = own_daemons().start("-G", arg)
    assert os.stat(d.sock).st_gid == want
    if how == "missing":
        assert "not found" in d.log()
    assert d.stop() == 0


def free_port(family):
    import socket as sk
    s = sk.socket(family, sk.SOCK_STREAM)
    s.bind(("::1" if family == sk.AF_INET6 else "127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "localhost"])
def test_tcp_listener(own_daemons, host):
    import http.client
    import socket as sk
    family = sk.AF_INET6 if host.startswith("[") else sk.AF_INET
    try:
        port = free_port(family)
    except OSError:
        pytest.skip("no IPv6 loopback")
    d = own_daemons().start("-H", f"tcp://{host}:{port}")
    c = http.client.HTTPConnection(host.strip("[]"), port, timeout=30)
    try:
        c.request("GET", "/_ping")
        r = c.getresponse()
        assert (r.status, r.read()) == (200, b"OK")
    finally:
        c.close()
    assert d.stop() == 0


def test_libarchive_unloaded_when_no_request_uses_it(daemon, rootfs_tar):
    """A tar operation loads libarchive; once no request holds it, berthd
    unloads it again (an idle daemon does not keep its dependency tree)."""
    def mapped():
        with open(f"/proc/{daemon.proc.pid}/maps") as f:
            return "libarchive.so" in f.read()
    daemon.berth("import", "-", "unloadcheck:1", input=rootfs_tar)
    assert wait_for(lambda: not mapped(), timeout=10)
    out = daemon.berth("save", "unloadcheck:1", timeout=60)
    assert out.returncode == 0
    assert wait_for(lambda: not mapped(), timeout=10)
    daemon.berth("rmi", "unloadcheck:1")
