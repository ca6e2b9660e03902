"""A container's files through the API: changes (docker diff), export,
archive GET/HEAD/PUT (docker cp) and commit, driven by the docker CLI,
docker-py and raw HTTP against a private berthd.

Containers are created (not started) and changed by writing into their
overlay upper dir directly (whiteouts as overlayfs char devices 0:0), or
with PUT archive. Every test removes the containers and images it made.
"""

import base64
import io
import json
import os
import stat
import subprocess
import tarfile
import urllib.parse

import pytest

from conftest import DOCKER_CLIS, ID_RE, err_message, force_rmi, make_tar, uniq

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (overlay mounts)")

GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27


class Ctr:
    """A created container and the host path of its upper dir."""

    def __init__(self, d, image="busybox:latest", cmd=("sh",)):
        self.d = d
        body = {"Image": image, "Cmd": list(cmd)}
        self.id = d.api_json("POST", "/containers/create", body, expect=201)["Id"]
        self.upper = os.path.join(d.data_root, "containers", self.id, "upper")
        os.makedirs(self.upper, exist_ok=True)

    def write(self, rel, data="x\n"):
        p = os.path.join(self.upper, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(data)

    def whiteout(self, rel):
        p = os.path.join(self.upper, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(0, 0))

    def changes(self):
        return self.d.api_json("GET", f"/containers/{self.id}/changes")

    def rm(self):
        self.d.api("DELETE", f"/containers/{self.id}?force=1")


@pytest.fixture
def ctrs(daemon, busybox):
    made = []

    def new(**kw):
        c = Ctr(daemon, **kw)
        made.append(c)
        return c

    yield new
    for c in made:
        c.rm()


@pytest.fixture
def images(daemon):
    made = []
    yield made
    force_rmi(daemon, *reversed(made))


def tar_members(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
        return {m.name.rstrip("/"): (m, t.extractfile(m).read() if m.isfile() else None)
                for m in t.getmembers()}


def archive_get(d, cid, path, method="GET"):
    q = urllib.parse.urlencode({"path": path})
    return d.api(method, f"/containers/{cid}/archive?{q}")


def archive_put(d, cid, path, data, **params):
    q = urllib.parse.urlencode(dict(path=path, **params))
    return d.api("PUT", f"/containers/{cid}/archive?{q}", body=data,
                 headers={"Content-Type": "application/x-tar"})


def path_stat(headers):
    return json.loads(base64.b64decode(headers["x-docker-container-path-stat"]))


def commit(d, cid, body=None, **params):
    q = urllib.parse.urlencode(dict(container=cid, **params), doseq=True)
    st, _, data = d.api("POST", "/commit?" + q, body=body)
    return st, data


def mounts_of(cid):
    with open("/proc/self/mounts") as f:
        return [line for line in f if cid in line]


# ---- changes ----

def test_changes_kinds_sorted_and_parents(daemon, ctrs):
    c = ctrs()
    assert c.changes() is None
    c.write("tmp/new.txt")
    c.write("etc/group", "changed\n")
    c.whiteout("etc/passwd")
    c.write("newdir/sub/f")
    got = c.changes()
    assert got == [
        {"Path": "/etc", "Kind": 0},
        {"Path": "/etc/group", "Kind": 0},
        {"Path": "/etc/passwd", "Kind": 2},
        {"Path": "/newdir", "Kind": 1},
        {"Path": "/newdir/sub", "Kind": 1},
        {"Path": "/newdir/sub/f", "Kind": 1},
        {"Path": "/tmp", "Kind": 0},
        {"Path": "/tmp/new.txt", "Kind": 1},
    ]
    out = daemon.docker("diff", c.id).out.split("\n")
    assert "C /etc" in out and "D /etc/passwd" in out and "A /tmp/new.txt" in out
    assert not mounts_of(c.id), "the root stays mounted after diff"


def test_changes_opaque_dir_lists_hidden_entries(daemon, ctrs):
    c = ctrs()
    c.write("etc/only")
    os.setxattr(os.path.join(c.upper, "etc"), "trusted.overlay.opaque", b"y")
    got = {ch["Path"]: ch["Kind"] for ch in c.changes()}
    assert got["/etc"] == 0 and got["/etc/only"] == 1
    assert got["/etc/passwd"] == 2 and got["/etc/group"] == 2


def test_changes_unknown_container(daemon):
    st, _, body = daemon.api("GET", "/containers/nosuchctr/changes")
    assert st == 404 and "nosuchctr" in err_message(body)


# ---- archive (docker cp) ----

def test_archive_head_and_get(daemon, ctrs):
    c = ctrs()
    c.write("data/hello.txt", "hello\n")
    st, h, body = archive_get(daemon, c.id, "/data/hello.txt", "HEAD")
    assert st == 200 and body == b""
    s = path_stat(h)
    assert s["name"] == "hello.txt" and s["size"] == 6 and s["mode"] == 0o644
    assert s["linkTarget"] == "" and s["mtime"].endswith("Z")
    st, h, body = archive_get(daemon, c.id, "/bin/sh")
    s = path_stat(h)
    assert s["mode"] & GO_SYMLINK and s["linkTarget"] == "/bin/busybox"
    assert list(tar_members(body)) == ["sh"]
    st, h, body = archive_get(daemon, c.id, "/data")
    assert st == 200 and h["content-type"] == "application/x-tar"
    assert path_stat(h)["mode"] & GO_DIR
    m = tar_members(body)
    assert set(m) == {"data", "data/hello.txt"} and m["data/hello.txt"][1] == b"hello\n"
    st, _, body = archive_get(daemon, c.id, "/nope")
    assert st == 404 and err_message(body) == f"Could not find the file /nope in container {c.id}"
    assert not mounts_of(c.id)


def test_archive_put_and_errors(daemon, ctrs):
    c = ctrs()
    tar = make_tar([("d", "dir", None), ("d/a.txt", "file", "A\n"), ("l", "symlink", "d/a.txt")])
    st, _, body = archive_put(daemon, c.id, "/tmp", tar)
    assert st == 200, body
    assert open(os.path.join(c.upper, "tmp/d/a.txt")).read() == "A\n"
    assert os.readlink(os.path.join(c.upper, "tmp/l")) == "d/a.txt"
    st, _, body = archive_put(daemon, c.id, "/missing", tar)
    assert st == 404 and "Could not find the file /missing" in err_message(body)
    st, _, body = archive_put(daemon, c.id, "/etc/passwd", tar)
    assert st == 400 and "not a directory" in err_message(body)
    st, _, body = archive_put(daemon, c.id, "/", make_tar([("tmp", "file", "x")]),
                              noOverwriteDirNonDir="true")
    assert st == 400 and "cannot overwrite directory" in err_message(body)
    st, _, body = archive_put(daemon, c.id, "/tmp", b"not a tar at all")
    assert st == 400
    st, _, _ = daemon.api("PUT", "/containers/nosuch/archive?path=/", body=tar)
    assert st == 404
    assert not mounts_of(c.id)


def test_archive_never_escapes_the_root(daemon, ctrs, workdir):
    c = ctrs()
    outside = os.path.join(workdir, "outside-" + uniq())
    os.makedirs(outside)
    rel_out = os.path.relpath(outside, "/")
    # a link in the container pointing far up, and one with an absolute target
    os.symlink("../../../../../../../../", os.path.join(c.upper, "up"))
    os.symlink("/" + rel_out, os.path.join(c.upper, "abs"))
    with open(os.path.join(outside, "secret"), "w") as f:
        f.write("host secret\n")
    st, _, _ = archive_get(daemon, c.id, f"/up/{rel_out}/secret")
    assert st == 404
    st, _, _ = archive_get(daemon, c.id, "/abs/secret")
    assert st == 404
    for path, tar in [
        ("/", make_tar([("../../escape", "file", "x")])),
        ("/", make_tar([("esc", "symlink", "../../../../../" + rel_out), ("esc/f", "file", "x")])),
        ("/up", make_tar([(rel_out + "/f2", "file", "x")])),
        ("/abs", make_tar([("f3", "file", "x")])),
        ("/", make_tar([("l", "symlink", "/" + rel_out), ("l/f4", "file", "x")])),
    ]:
        st, _, body = archive_put(daemon, c.id, path, tar)
        assert st in (200, 400), body
    assert os.listdir(outside) == ["secret"]
    # what landed, landed inside the container
    assert os.path.exists(os.path.join(c.upper, rel_out, "f2"))
    assert os.path.exists(os.path.join(c.upper, rel_out, "f3"))


@pytest.mark.skipif(not DOCKER_CLIS, reason="no docker CLI")
def test_docker_cp_both_ways(daemon, ctrs, tmp_path):
    c = ctrs()
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f.txt").write_text("payload\n")
    os.symlink("sub/f.txt", src / "link")
    daemon.docker("cp", str(src), f"{c.id}:/tmp/")
    daemon.docker("cp", str(src / "sub" / "f.txt"), f"{c.id}:/root/renamed.txt")
    assert open(os.path.join(c.upper, "root/renamed.txt")).read() == "payload\n"
    daemon.docker("cp", f"{c.id}:/tmp/src", str(tmp_path / "back"))
    assert (tmp_path / "back" / "sub" / "f.txt").read_text() == "payload\n"
    assert os.readlink(tmp_path / "back" / "link") == "sub/f.txt"
    daemon.docker("cp", "-L", f"{c.id}:/bin/sh", str(tmp_path / "sh"))
    assert os.path.getsize(tmp_path / "sh") > 100000  # the busybox binary, not a link
    p = daemon.docker("cp", f"{c.id}:/nope", str(tmp_path / "x"), check=False)
    assert p.returncode != 0 and "No such container:path" in p.err  # the CLI's words for a 404


def test_docker_py_archive_and_diff(daemon, ctrs):
    c = ctrs()
    cl = daemon.client()
    try:
        ctr = cl.containers.get(c.id)
        assert ctr.put_archive("/tmp", make_tar([("py.txt", "file", "from py\n")]))
        chunks, st = ctr.get_archive("/tmp/py.txt")
        assert st["name"] == "py.txt" and st["size"] == 8
        assert tar_members(b"".join(chunks))["py.txt"][1] == b"from py\n"
        assert {"Path": "/tmp/py.txt", "Kind": 1} in ctr.diff()
    finally:
        cl.close()


# ---- export ----

def test_export_is_the_merged_root(daemon, ctrs):
    c = ctrs()
    c.write("added.txt", "added\n")
    c.whiteout("etc/passwd")
    st, h, body = daemon.api("GET", f"/containers/{c.id}/export")
    assert st == 200 and h["content-type"] == "application/x-tar"
    m = tar_members(body)
    assert m["added.txt"][1] == b"added\n"
    assert m["bin/busybox"][0].isfile() and m["bin/sh"][0].issym()
    assert "etc/passwd" not in m and "etc/group" in m
    assert not any(".wh." in n for n in m)
    assert not mounts_of(c.id)
    st, _, _ = daemon.api("GET", "/containers/nosuch/export")
    assert st == 404


# ---- commit ----

def test_commit_layer_whiteouts_and_config(daemon, busybox, ctrs, images):
    c = ctrs()
    c.write("tmp/new.txt", "new\n")
    c.whiteout("etc/passwd")
    repo = uniq("commit")
    st, body = commit(daemon, c.id, repo=repo, tag="v1", comment="a comment", author="me <me@x>",
                      changes=["ENV FOO=bar", 'CMD ["echo", "hi"]', "LABEL k=v"])
    assert st == 201, body
    iid = json.loads(body)["Id"]
    images.append(iid)
    assert ID_RE.match(iid)
    img = daemon.api_json("GET", f"/images/{repo}:v1/json")
    parent = daemon.api_json("GET", f"/images/{busybox}/json")
    assert img["Id"] == iid and img["Parent"] == parent["Id"]
    assert img["Container"] == c.id and img["Author"] == "me <me@x>"
    assert img["Comment"] == "a comment"
    assert img["Config"]["Cmd"] == ["echo", "hi"] and "FOO=bar" in img["Config"]["Env"]
    assert img["Config"]["Labels"] == {"k": "v"}
    assert img["ContainerConfig"]["Cmd"] == ["sh"]
    layers = img["RootFS"]["Layers"]
    assert layers[:-1] == parent["RootFS"]["Layers"] and len(layers) == len(parent["RootFS"]["Layers"]) + 1
    hist = daemon.api_json("GET", f"/images/{iid}/history")
    assert hist[0]["CreatedBy"] == "sh" and hist[0]["Comment"] == "a comment"
    # the layer blob carries an OCI whiteout
    blob = os.path.join(daemon.data_root, "blobs", "sha256", layers[-1].split(":")[1])
    with open(blob, "rb") as f:
        names = set(tar_members(f.read()))
    assert {"etc/.wh.passwd", "tmp/new.txt"} <= names
    # a container of the new image sees the change and not the deleted file
    c2 = ctrs(image=iid)
    m = tar_members(daemon.api("GET", f"/containers/{c2.id}/export")[2])
    assert m["tmp/new.txt"][1] == b"new\n" and "etc/passwd" not in m
    assert c2.changes() is None


def test_commit_without_changes_adds_no_layer(daemon, busybox, ctrs, images):
    c = ctrs()
    st, body = commit(daemon, c.id)
    assert st == 201, body
    iid = json.loads(body)["Id"]
    images.append(iid)
    img = daemon.api_json("GET", f"/images/{iid}/json")
    parent = daemon.api_json("GET", f"/images/{busybox}/json")
    assert img["RootFS"]["Layers"] == parent["RootFS"]["Layers"]
    assert img["RepoTags"] == []


def test_commit_body_config_and_opaque_dir(daemon, ctrs, images):
    c = ctrs()
    c.write("etc/only", "o\n")
    os.setxattr(os.path.join(c.upper, "etc"), "trusted.overlay.opaque", b"y")
    st, body = commit(daemon, c.id, body={"Cmd": ["cat", "/etc/only"], "WorkingDir": "/etc"})
    assert st == 201, body
    iid = json.loads(body)["Id"]
    images.append(iid)
    cfg = daemon.api_json("GET", f"/images/{iid}/json")["Config"]
    assert cfg["Cmd"] == ["cat", "/etc/only"] and cfg["WorkingDir"] == "/etc"
    c2 = ctrs(image=iid)
    m = tar_members(daemon.api("GET", f"/containers/{c2.id}/export")[2])
    # the opaque /etc hides the image's files; the init layer's mount points
    # (as Docker's init layer) are there, empty
    assert sorted(n for n in m if n.startswith("etc/")) == [
        "etc/hostname", "etc/hosts", "etc/only", "etc/resolv.conf"]
    assert all(m[f"etc/{f}"][1] == b"" for f in ("hostname", "hosts", "resolv.conf"))


def test_commit_errors(daemon, ctrs):
    c = ctrs()
    st, body = commit(daemon, "nosuchctr")
    assert st == 404
    st, body = commit(daemon, c.id, repo="Bad:Repo:x")
    assert st == 400, body
    st, body = commit(daemon, c.id, changes=["FROB x"])
    assert st == 400 and "not a valid change command" in err_message(body)
    st, _, body = daemon.api("POST", "/commit?container=" + c.id, body=b"[1",
                             headers={"Content-Type": "application/json"})
    assert st == 400


@pytest.mark.skipif(not DOCKER_CLIS, reason="no docker CLI")
def test_docker_cli_commit_and_run(daemon, ctrs, images):
    c = ctrs()
    c.write("hello.txt", "hi there\n")
    name = uniq("cli") + ":t"
    iid = daemon.docker("commit", "-c", "CMD cat /hello.txt", c.id, name).out.strip()
    images.append(iid)
    assert ID_RE.match(iid)
    p = daemon.docker("run", "--rm", name, check=False, timeout=60)
    if p.returncode != 0 and ("shim" in p.err or "start" in p.err):
        pytest.skip("containers do not start here: " + p.err[:200])
    assert p.out == "hi there\n"


@pytest.mark.skipif(not DOCKER_CLIS, reason="no docker CLI")
def test_running_container_diff_cp_commit(daemon, busybox, images):
    name = uniq("run")
    p = daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "60", check=False)
    if p.returncode != 0:
        pytest.skip("containers do not start here: " + p.err[:200])
    try:
        # the runtime's mount points (/etc/hosts...) are no change
        assert daemon.api_json("GET", f"/containers/{name}/changes") is None
        st, _, body = archive_put(daemon, name, "/tmp", make_tar([("live.txt", "file", "live\n")]))
        assert st == 200, body
        assert daemon.docker("diff", name).out.split("\n")[:2] == ["C /tmp", "A /tmp/live.txt"]
        st, _, body = archive_get(daemon, name, "/tmp/live.txt")
        assert st == 200 and tar_members(body)["live.txt"][1] == b"live\n"
        iid = daemon.docker("commit", name).out.strip()
        images.append(iid)
        state = daemon.api_json("GET", f"/containers/{name}/json")["State"]
        assert state["Running"] and not state["Paused"]
        layer = daemon.api_json("GET", f"/images/{iid}/json")["RootFS"]["Layers"][-1]
        with open(os.path.join(daemon.data_root, "blobs", "sha256", layer[7:]), "rb") as f:
            assert "tmp/live.txt" in tar_members(f.read())
    finally:
        daemon.docker("rm", "-f", name, check=False)


def test_init_layer_made_once_and_collected_with_its_layer(daemon):
    """The mount points of /etc/hostname, hosts and resolv.conf live in an init
    layer per image top layer (made at the first root mount of one of its
    containers), not in the containers' upper layers; it goes with its layer."""
    from conftest import api_import, small_tar
    tag = uniq("initl") + ":1"
    st, body = api_import(daemon, small_tar(), repo=tag)
    assert st == 200, body
    chain = daemon.api_json("GET", f"/images/{tag}/json")["RootFS"]["Layers"][-1]
    init = os.path.join(daemon.data_root, "init", chain.split(":")[1])
    ids = []
    try:
        for _ in range(2):
            st, _, body = daemon.api("POST", "/containers/create",
                                     {"Image": tag, "Cmd": ["/hello.txt"]})
            assert st == 201, body
            ids.append(json.loads(body)["Id"])
            st, _, tarball = daemon.api("GET", f"/containers/{ids[-1]}/export")
            assert st == 200
            m = tar_members(tarball)
            assert m["etc/hosts"][1] == b"" and m["etc/marker"][1] != b""
            assert daemon.api_json("GET", f"/containers/{ids[-1]}/changes") is None
        assert sorted(os.listdir(os.path.join(init, "etc"))) == ["hostname", "hosts", "resolv.conf"]
        st_etc = os.stat(os.path.join(init, "etc"))
        assert stat.S_IMODE(st_etc.st_mode) == 0o755 and st_etc.st_uid == 0
    finally:
        for cid in ids:
            daemon.api("DELETE", f"/containers/{cid}?force=1")
        daemon.api("DELETE", f"/images/{tag}")
    assert not os.path.exists(init)
