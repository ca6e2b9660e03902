"""Image endpoints: import (plain, gzip, zstd, with changes), list and its
filters, inspect, history, tag, rmi, prune, through raw HTTP, the berth CLI,
both docker CLIs and docker-py, and the store seen from the host.

Expected values were taken from dockerd 20.10 (API v1.41): an imported
layer's diff ID is the sha256 of the uncompressed tar, the image ID is the
sha256 of the config blob, Size is the bytes of regular files plus symlink
target lengths, rmi of a name untags, rmi of an ID that several repositories
reference is a 409 unless forced, prune removes only dangling images unless
dangling=false.
"""

import io
import json
import os
import re
import tarfile
import time

import pytest

from conftest import (ALL_CLIS, ID_RE, api_import, cli, err_message, gz, image_exists,
                      import_image, inspect_image, json_lines, qs, sha256_hex, small_tar,
                      store_listing, uniq, wait_for, zst)

FULL_CHANGES = [
    'CMD ["sh", "-c", "echo hi"]',
    'ENTRYPOINT ["/bin/env"]',
    "ENV A=1 B=two",
    "ENV C three",
    "WORKDIR /srv/app",
    "EXPOSE 80/tcp 53/udp 8080",
    'LABEL a=b "c d"="e f"',
    "USER nobody:nogroup",
    'VOLUME ["/data", "/logs"]',
]

FULL_CONFIG = {
    "Cmd": ["sh", "-c", "echo hi"],
    "Entrypoint": ["/bin/env"],
    "Env": ["A=1", "B=two", "C=three"],
    "WorkingDir": "/srv/app",
    "ExposedPorts": {"80/tcp": {}, "53/udp": {}, "8080/tcp": {}},
    "Labels": {"a": "b", "c d": "e f"},
    "User": "nobody:nogroup",
    "Volumes": {"/data": {}, "/logs": {}},
}


def tar_size(data):
    n = 0
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t.getmembers():
            if m.isfile():
                n += m.size
            elif m.issym():
                n += len(m.linkname)
    return n


def blob_path(daemon, digest):
    return os.path.join(daemon.data_root, "blobs", "sha256", digest.split(":", 1)[1])


def list_ids(daemon, filters=None, all_=False):
    params = []
    if filters is not None:
        params.append(("filters", filters))
    if all_:
        params.append(("all", "1"))
    return daemon.api_json("GET", "/images/json?" + qs(params))


# ---------------------------------------------------------------- import

@pytest.mark.parametrize("compression", ["plain", "gzip", "zstd"])
def test_import_compressions_with_changes(daemon, cleanup, compression):
    plain = small_tar()
    body = {"plain": plain, "gzip": gz(plain), "zstd": zst(plain)}[compression]
    name = uniq("imp")
    iid = import_image(daemon, body, repo=name, tag="v1", changes=FULL_CHANGES)
    cleanup.append(iid)
    assert ID_RE.match(iid)
    j = inspect_image(daemon, f"{name}:v1")
    assert j["Id"] == iid
    assert j["RepoTags"] == [f"{name}:v1"]
    assert j["RootFS"] == {"Type": "layers", "Layers": ["sha256:" + sha256_hex(plain)]}
    for k, v in FULL_CONFIG.items():
        assert j["Config"][k] == v, k
    assert j["Comment"] == "Imported from -"
    assert j["Parent"] == ""
    assert j["Os"] == "linux"
    assert j["Architecture"] == {"x86_64": "amd64", "aarch64": "arm64"}.get(
        os.uname().machine, os.uname().machine)
    assert j["Size"] == tar_size(plain)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", j["Created"]), j["Created"]


def test_import_host_side_content_store(daemon, cleanup):
    """The image ID is the sha256 of the config blob, stored verified under blobs/."""
    plain = small_tar()
    iid = import_image(daemon, gz(plain), repo=uniq("cs"), changes=['CMD ["sh"]'])
    cleanup.append(iid)
    p = blob_path(daemon, iid)
    assert os.path.isfile(p), p
    cfg_bytes = open(p, "rb").read()
    assert "sha256:" + sha256_hex(cfg_bytes) == iid
    cfg = json.loads(cfg_bytes)
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + sha256_hex(plain)]}
    assert cfg["config"]["Cmd"] == ["sh"]
    assert cfg["os"] == "linux"
    assert len(cfg["history"]) == 1 and cfg["history"][0].get("comment") == "Imported from -"
    # no temp file of the import is left behind
    assert wait_for(lambda: os.listdir(os.path.join(daemon.data_root, "tmp")) == [], 5), \
        os.listdir(os.path.join(daemon.data_root, "tmp"))


def test_import_same_layer_stored_once(daemon, cleanup):
    plain = small_tar()
    a = import_image(daemon, plain, repo=uniq("once"))
    cleanup.append(a)
    before = store_listing(daemon.data_root, ("layers", "blobs"))
    b = import_image(daemon, gz(plain), repo=uniq("once"), changes=['CMD ["x"]'])
    cleanup.append(b)
    assert a != b
    after = store_listing(daemon.data_root, ("layers", "blobs"))
    added = after - before
    # only the new config blob: no second copy of the layer
    assert added == {os.path.join("blobs", "sha256", b.split(":")[1])}, added


def test_import_message_and_history(daemon, cleanup):
    plain = small_tar()
    name = uniq("msg")
    iid = import_image(daemon, plain, repo=name, message="my message")
    cleanup.append(iid)
    assert inspect_image(daemon, name)["Comment"] == "my message"
    h = daemon.api_json("GET", f"/images/{name}/history")
    assert len(h) == 1
    e = h[0]
    assert e["Id"] == iid
    assert e["Comment"] == "my message"
    assert e["CreatedBy"] == ""
    assert e["Size"] == tar_size(plain)
    assert e["Tags"] == [f"{name}:latest"]
    assert abs(e["Created"] - time.time()) < 120


@pytest.mark.parametrize("change,key,value", [
    ("CMD echo hi", "Cmd", ["/bin/sh", "-c", "echo hi"]),
    ("ENTRYPOINT /bin/x", "Entrypoint", ["/bin/sh", "-c", "/bin/x"]),
    ("WORKDIR rel", "WorkingDir", "/rel"),
    ("ENV X=1", "Env", ["X=1"]),
    ("EXPOSE 8080", "ExposedPorts", {"8080/tcp": {}}),
    ("VOLUME /v", "Volumes", {"/v": {}}),
    ("USER 1000", "User", "1000"),
    ("LABEL k=v", "Labels", {"k": "v"}),
])
def test_import_change_forms(daemon, cleanup, change, key, value):
    name = uniq("chg")
    iid = import_image(daemon, small_tar(), repo=name, changes=[change])
    cleanup.append(iid)
    assert inspect_image(daemon, iid)["Config"][key] == value


@pytest.mark.parametrize("change", ["BOGUS x", "RUN echo hi", "FROM busybox"])
def test_import_invalid_change_400(daemon, change):
    name = uniq("bad")
    st, body = api_import(daemon, small_tar(), repo=name, changes=[change])
    assert st == 400, body
    assert "not a valid change command" in err_message(body)
    assert not image_exists(daemon, name)


def test_import_repo_and_tag_params(daemon, cleanup):
    n = uniq("rt")
    a = import_image(daemon, small_tar(), repo=f"{n}:one")
    b = import_image(daemon, small_tar(), repo=f"{n}:x", tag="two")   # tag overrides
    c = import_image(daemon, small_tar(), repo=n)                      # default latest
    d = import_image(daemon, small_tar())                              # no name: dangling
    cleanup.extend([a, b, c, d])
    assert inspect_image(daemon, a)["RepoTags"] == [f"{n}:one"]
    assert inspect_image(daemon, b)["RepoTags"] == [f"{n}:two"]
    assert not image_exists(daemon, f"{n}:x")
    assert inspect_image(daemon, c)["RepoTags"] == [f"{n}:latest"]
    jd = inspect_image(daemon, d)
    assert jd["RepoTags"] == [] and jd["RepoDigests"] == []


@pytest.mark.parametrize("which", ALL_CLIS)
def test_import_cli(daemon, cleanup, workdir, which):
    plain = small_tar()
    name = uniq("cli")
    path = os.path.join(workdir, name + ".tar.gz")
    with open(path, "wb") as f:
        f.write(gz(plain))
    p = cli(daemon, which, "import", "-c", 'CMD ["sh"]', "-c", "ENV A=1", "-m", "via cli",
            path, f"{name}:file")
    iid = p.out.strip()
    cleanup.append(iid)
    assert ID_RE.match(iid), p.out
    j = inspect_image(daemon, f"{name}:file")
    assert j["Id"] == iid
    assert j["Config"]["Cmd"] == ["sh"] and j["Config"]["Env"] == ["A=1"]
    assert j["Comment"] == "via cli"
    assert j["RootFS"]["Layers"] == ["sha256:" + sha256_hex(plain)]
    # from stdin, zstd
    p = cli(daemon, which, "import", "-", f"{name}:stdin", input=zst(plain))
    iid2 = p.out.strip()
    cleanup.append(iid2)
    assert ID_RE.match(iid2), p.out
    assert inspect_image(daemon, f"{name}:stdin")["RootFS"]["Layers"] == j["RootFS"]["Layers"]


def test_import_docker_py(daemon, cleanup):
    plain = small_tar()
    name = uniq("py")
    c = daemon.client()
    try:
        r = c.api.import_image_from_data(gz(plain), repository=name, tag="t",
                                         changes=["ENV A=1", 'CMD ["sh"]'])
        msgs = json_lines(r) if isinstance(r, (str, bytes)) else [r]
        iid = [m["status"] for m in msgs if ID_RE.match(str(m.get("status", "")))][-1]
        cleanup.append(iid)
        img = c.images.get(f"{name}:t")
        assert img.id == iid
        assert img.tags == [f"{name}:t"]
        assert img.attrs["Config"]["Env"] == ["A=1"]
    finally:
        c.close()


# ---------------------------------------------------------------- list

def test_list_entry_fields(daemon, cleanup):
    data = small_tar()
    name = uniq("lst")
    iid = import_image(daemon, data, repo=name, tag="a", changes=["LABEL l1=v1"])
    cleanup.append(iid)
    lst = [i for i in list_ids(daemon) if i["Id"] == iid]
    assert len(lst) == 1
    e = lst[0]
    assert e["RepoTags"] == [f"{name}:a"]
    assert e["ParentId"] == ""
    assert e["Size"] == tar_size(data) and e["VirtualSize"] == e["Size"]
    assert e["Labels"] == {"l1": "v1"}
    assert e["SharedSize"] == -1 and e["Containers"] == -1
    assert abs(e["Created"] - time.time()) < 120
    assert e["Created"] == int(e["Created"])


def test_list_filter_reference(daemon, cleanup):
    n = uniq("ref")
    a = import_image(daemon, small_tar(), repo=n, tag="1.0")
    b = import_image(daemon, small_tar(), repo=f"{n}x", tag="2.0")
    cleanup.extend([a, b])
    st, _, body = daemon.api("POST", f"/images/{a}/tag?repo={n}&tag=1.1")
    assert st == 201, body

    def ref(pat):
        return {i["Id"]: sorted(i["RepoTags"]) for i in list_ids(daemon, {"reference": [pat]})}

    assert ref(n) == {a: [f"{n}:1.0", f"{n}:1.1"]}
    assert ref(f"{n}:1.0") == {a: [f"{n}:1.0"]}         # only the matching tag is listed
    assert ref(f"{n}*") == {a: [f"{n}:1.0", f"{n}:1.1"], b: [f"{n}x:2.0"]}
    assert ref(f"{n}:1.*") == {a: [f"{n}:1.0", f"{n}:1.1"]}
    assert ref(f"{n}*:2*") == {b: [f"{n}x:2.0"]}
    assert ref(f"*{n[3:]}") == {a: [f"{n}:1.0", f"{n}:1.1"]}
    assert ref("nosuchrepo-zz*") == {}
    # two references: union
    both = list_ids(daemon, {"reference": [f"{n}:1.0", f"{n}x"]})
    assert {i["Id"] for i in both} == {a, b}


def test_list_filter_dangling(daemon, cleanup):
    n = uniq("dng")
    old = import_image(daemon, small_tar(), repo=n)
    new = import_image(daemon, small_tar(), repo=n)   # takes the tag: old is dangling
    cleanup.extend([old, new])
    dang = {i["Id"]: i for i in list_ids(daemon, {"dangling": ["true"]})}
    assert old in dang and new not in dang
    assert dang[old]["RepoTags"] == ["<none>:<none>"]
    assert dang[old]["RepoDigests"] == ["<none>@<none>"]
    notdang = {i["Id"] for i in list_ids(daemon, {"dangling": ["false"]})}
    assert new in notdang and old not in notdang
    assert inspect_image(daemon, old)["RepoTags"] == []
    st, _, body = daemon.api("GET", "/images/json?" + qs([("filters", {"dangling": ["maybe"]})]))
    assert st == 400, body
    assert "dangling" in err_message(body)


def test_list_filter_label(daemon, cleanup):
    n = uniq("lbl")
    a = import_image(daemon, small_tar(), repo=n, tag="a", changes=[f"LABEL {n}=x other=1"])
    b = import_image(daemon, small_tar(), repo=n, tag="b", changes=[f"LABEL {n}=y"])
    c = import_image(daemon, small_tar(), repo=n, tag="c")
    cleanup.extend([a, b, c])

    def lab(*f):
        return {i["Id"] for i in list_ids(daemon, {"label": list(f)})}

    assert lab(n) == {a, b}
    assert lab(f"{n}=x") == {a}
    assert lab(f"{n}=y") == {b}
    assert lab(f"{n}=z") == set()
    assert lab(f"{n}", "other=1") == {a}          # several labels: all must match


def test_list_filter_before_since(daemon, cleanup):
    n = uniq("bs")
    ids = []
    for t in ("1", "2", "3"):
        ids.append(import_image(daemon, small_tar(), repo=n, tag=t))
        time.sleep(0.02)
    cleanup.extend(ids)
    a, b, c = ids
    mine = set(ids)

    def f(**kw):
        return {i["Id"] for i in list_ids(daemon, {k: [v] for k, v in kw.items()})} & mine

    assert f(before=f"{n}:3") == {a, b}
    assert f(before=f"{n}:2") == {a}
    assert f(since=f"{n}:1") == {b, c}
    assert f(since=f"{n}:2") == {c}
    assert f(since=f"{n}:1", before=f"{n}:3") == {b}
    assert f(before=c) == {a, b}                  # by ID too
    st, _, body = daemon.api("GET", "/images/json?" + qs([("filters", {"before": ["nosuch-x:1"]})]))
    assert st == 404, body
    assert "nosuch-x" in err_message(body)


def test_list_all_and_unknown_filter(daemon, busybox):
    st, _, body = daemon.api("GET", "/images/json?" + qs([("filters", {"nosuch": ["x"]})]))
    assert st == 400, body
    assert "nosuch" in err_message(body)
    assert {i["Id"] for i in list_ids(daemon)} <= {i["Id"] for i in list_ids(daemon, all_=True)}


def _mk_listing_set(daemon, cleanup):
    n = uniq("fmt")
    a = import_image(daemon, small_tar(), repo=n, tag="a")
    b = import_image(daemon, small_tar(), repo=n, tag="b")
    cleanup.extend([a, b])
    return n, a, b


@pytest.mark.parametrize("which", ALL_CLIS)
def test_images_cli_formats(daemon, cleanup, which):
    n, a, b = _mk_listing_set(daemon, cleanup)
    size_a = inspect_image(daemon, a)["Size"]
    # default table
    p = cli(daemon, which, "images", n)
    lines = p.out.splitlines()
    assert re.match(r"^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$", lines[0]), p.out
    rows = sorted(re.split(r"\s{2,}", l.strip()) for l in lines[1:])
    assert [r[:3] for r in rows] == [[n, "a", a[7:19]], [n, "b", b[7:19]]], p.out
    assert all(r[3].endswith("ago") for r in rows), rows
    assert rows[0][4] == f"{size_a}B", rows          # a few bytes: docker prints e.g. "51B"
    # -q
    p = cli(daemon, which, "images", "-q", n)
    assert sorted(p.out.split()) == sorted([a[7:19], b[7:19]])
    # -q --no-trunc
    p = cli(daemon, which, "images", "-q", "--no-trunc", n)
    assert sorted(p.out.split()) == sorted([a, b])
    # --no-trunc table shows full IDs
    p = cli(daemon, which, "images", "--no-trunc", n)
    assert a in p.out and b in p.out
    # --format
    p = cli(daemon, which, "images", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}", n)
    assert sorted(p.out.splitlines()) == sorted([f"{a[7:19]} {n}:a", f"{b[7:19]} {n}:b"])
    # filter flag
    p = cli(daemon, which, "images", "-f", f"reference={n}:a", "--format", "{{.ID}}")
    assert p.out.split() == [a[7:19]]
    p = cli(daemon, which, "images", "-f", f"reference={n}*", "--format", "{{.Tag}}")
    assert sorted(p.out.split()) == ["a", "b"]


@pytest.mark.parametrize("which", ALL_CLIS)
def test_images_cli_json_format(daemon, cleanup, which):
    n, a, b = _mk_listing_set(daemon, cleanup)
    p = cli(daemon, which, "images", "--format", "{{json .}}", f"{n}:a")
    lines = p.out.splitlines()
    assert len(lines) == 1, p.out
    j = json.loads(lines[0])
    assert set(j) >= {"Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository",
                      "SharedSize", "Size", "Tag", "UniqueSize", "VirtualSize"}, j
    assert j["ID"] == a[7:19]
    assert j["Repository"] == n and j["Tag"] == "a"
    assert j["Digest"] == "<none>"
    assert j["Containers"] == "N/A"
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \S+$", j["CreatedAt"]), j


def test_images_cli_same_output_as_docker(daemon, cleanup):
    """berth and the docker CLI print the same rows for the same daemon."""
    n, a, b = _mk_listing_set(daemon, cleanup)
    fmt = "{{.ID}}|{{.Repository}}|{{.Tag}}|{{.Size}}|{{.Digest}}|{{.CreatedAt}}"
    want = daemon.docker("images", "--format", fmt, n).out
    got = daemon.berth("images", "--format", fmt, n).out
    assert sorted(got.splitlines()) == sorted(want.splitlines())
    want = daemon.docker("images", "--no-trunc", "-q", n).out
    got = daemon.berth("images", "--no-trunc", "-q", n).out
    assert sorted(got.split()) == sorted(want.split())


def test_images_dangling_cli(daemon, cleanup):
    n = uniq("dcl")
    old = import_image(daemon, small_tar(), repo=n)
    new = import_image(daemon, small_tar(), repo=n)
    cleanup.extend([old, new])
    for which in ALL_CLIS:
        p = cli(daemon, which, "images", "-f", "dangling=true", "--no-trunc", "--format",
                "{{.ID}} {{.Repository}} {{.Tag}}")
        assert f"{old} <none> <none>" in p.out.splitlines(), (which, p.out)
        assert new not in p.out


def test_images_docker_py_list(daemon, cleanup):
    n, a, b = _mk_listing_set(daemon, cleanup)
    c = daemon.client()
    try:
        imgs = c.images.list(name=n)
        assert sorted((i.id, tuple(i.tags)) for i in imgs) == sorted(
            [(a, (f"{n}:a",)), (b, (f"{n}:b",))])
        imgs = c.images.list(filters={"reference": f"{n}:b"})
        assert [i.id for i in imgs] == [b]
    finally:
        c.close()


# ---------------------------------------------------------------- inspect

def test_inspect_by_every_name_form(daemon, cleanup):
    n = uniq("ins")
    iid = import_image(daemon, small_tar(), repo=n, changes=['CMD ["sh"]'])
    cleanup.append(iid)
    hexid = iid[7:]
    for name in (n, f"{n}:latest", iid, hexid, hexid[:12], "sha256:" + hexid[:12],
                 f"docker.io/library/{n}:latest", f"library/{n}"):
        st, _, body = daemon.api("GET", f"/images/{name}/json")
        assert st == 200, (name, body)
        assert json.loads(body)["Id"] == iid, name


def test_inspect_unknown_404(daemon):
    for name in ("nosuch-image-zz", "nosuch-image-zz:tag", "0123456789ab", "sha256:" + "0" * 64):
        st, _, body = daemon.api("GET", f"/images/{name}/json")
        assert st == 404, (name, body)
        assert "no such image" in err_message(body).lower()


@pytest.mark.parametrize("which", ALL_CLIS)
def test_inspect_cli(daemon, busybox, which):
    p = cli(daemon, which, "image", "inspect", "busybox")
    j = json.loads(p.out)
    assert isinstance(j, list) and len(j) == 1 and j[0]["Id"] == busybox
    assert cli(daemon, which, "image", "inspect", "--format", "{{.Config.Cmd}}",
               "busybox").out.strip() == "[sh]"
    assert cli(daemon, which, "inspect", "--format", "{{json .Config.Cmd}} {{.Id}}",
               "busybox:latest").out.strip() == f'["sh"] {busybox}'
    assert cli(daemon, which, "image", "inspect", "-f", "{{.Id}}", "busybox",
               busybox[7:19]).out.split() == [busybox, busybox]
    p = cli(daemon, which, "image", "inspect", "nosuch-image-zz", check=False)
    assert p.returncode == 1
    assert "no such" in p.err.lower() and "nosuch-image-zz" in p.err
    # one known and one unknown: the known one is printed, exit status 1
    p = cli(daemon, which, "image", "inspect", "-f", "{{.Id}}", "busybox", "nosuch-image-zz",
            check=False)
    assert p.returncode == 1 and p.out.split() == [busybox]


def test_inspect_docker_py(daemon, busybox):
    import docker
    c = daemon.client()
    try:
        img = c.images.get("busybox")
        assert img.id == busybox and "busybox:latest" in img.tags
        assert img.attrs["Config"]["Cmd"] == ["sh"]
        with pytest.raises(docker.errors.ImageNotFound):
            c.images.get("nosuch-image-zz")
    finally:
        c.close()


# ---------------------------------------------------------------- history

@pytest.mark.parametrize("which", ALL_CLIS)
def test_history_cli(daemon, cleanup, which):
    n = uniq("his")
    iid = import_image(daemon, small_tar(), repo=n, message="hello history")
    cleanup.append(iid)
    p = cli(daemon, which, "history", n)
    lines = p.out.splitlines()
    assert re.match(r"^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$", lines[0]), p.out
    assert len(lines) == 2
    assert lines[1].startswith(iid[7:19] + " ")
    assert lines[1].rstrip().endswith("hello history")
    p = cli(daemon, which, "history", "--no-trunc", "-q", n)
    assert p.out.split() == [iid]
    p = cli(daemon, which, "history", "--format", "{{.ID}}|{{.Comment}}|{{.CreatedBy}}", n)
    assert p.out.strip() == f"{iid[7:19]}|hello history|"
    p = cli(daemon, which, "history", "nosuch-image-zz", check=False)
    assert p.returncode == 1 and "no such image" in p.err.lower()


def test_history_docker_py(daemon, busybox):
    c = daemon.client()
    try:
        h = c.images.get("busybox").history()
        assert len(h) == 1 and h[0]["Id"] == busybox and h[0]["Tags"] == ["busybox:latest"]
    finally:
        c.close()


# ---------------------------------------------------------------- tag

def test_tag_api(daemon, cleanup):
    n = uniq("tag")
    iid = import_image(daemon, small_tar(), repo=n, tag="orig")
    cleanup.append(iid)
    st, _, body = daemon.api("POST", f"/images/{n}:orig/tag?repo={n}-2&tag=x")
    assert st == 201, body
    st, _, body = daemon.api("POST", f"/images/{iid[7:19]}/tag?repo=localhost:5000/{n}/sub")
    assert st == 201, body
    j = inspect_image(daemon, iid)
    assert sorted(j["RepoTags"]) == sorted([f"{n}:orig", f"{n}-2:x",
                                            f"localhost:5000/{n}/sub:latest"])
    assert inspect_image(daemon, f"localhost:5000/{n}/sub")["Id"] == iid
    # re-tagging the same name is fine and changes nothing
    st, _, body = daemon.api("POST", f"/images/{iid}/tag?repo={n}-2&tag=x")
    assert st == 201, body
    assert len(inspect_image(daemon, iid)["RepoTags"]) == 3


def test_tag_moves_name_to_new_image(daemon, cleanup):
    n = uniq("mv")
    a = import_image(daemon, small_tar(), repo=n, tag="1")
    b = import_image(daemon, small_tar(), repo=n, tag="2")
    cleanup.extend([a, b])
    st, _, body = daemon.api("POST", f"/images/{n}:2/tag?repo={n}&tag=1")
    assert st == 201, body
    assert inspect_image(daemon, f"{n}:1")["Id"] == b
    assert inspect_image(daemon, a)["RepoTags"] == []       # a became dangling


def test_tag_unknown_404(daemon):
    st, _, body = daemon.api("POST", "/images/nosuch-image-zz/tag?repo=x&tag=y")
    assert st == 404, body
    assert "no such image" in err_message(body).lower()


@pytest.mark.parametrize("which", ALL_CLIS)
def test_tag_cli(daemon, cleanup, busybox, which):
    n = uniq("tcl")
    cleanup.append(f"{n}:t")
    p = cli(daemon, which, "tag", "busybox", f"{n}:t")
    assert p.out == ""
    assert inspect_image(daemon, f"{n}:t")["Id"] == busybox
    p = cli(daemon, which, "tag", "nosuch-image-zz", f"{n}:u", check=False)
    assert p.returncode == 1
    assert "no such image" in p.err.lower()
    assert not image_exists(daemon, f"{n}:u")
    p = cli(daemon, which, "rmi", f"{n}:t")
    assert p.out.strip() == f"Untagged: {n}:t"
    assert image_exists(daemon, "busybox")


def test_tag_docker_py(daemon, cleanup, busybox):
    n = uniq("tpy")
    cleanup.append(f"{n}:x")
    c = daemon.client()
    try:
        img = c.images.get("busybox")
        assert img.tag(n, "x") is True
        assert f"{n}:x" in c.images.get(busybox).tags
        c.images.remove(f"{n}:x")
        assert f"{n}:x" not in c.images.get(busybox).tags
    finally:
        c.close()


# ---------------------------------------------------------------- rmi

def test_rmi_untag_keeps_image(daemon, cleanup):
    n = uniq("rmu")
    iid = import_image(daemon, small_tar(), repo=n, tag="a")
    cleanup.append(iid)
    st, _, body = daemon.api("POST", f"/images/{iid}/tag?repo={n}&tag=b")
    assert st == 201
    st, _, body = daemon.api("DELETE", f"/images/{n}:a")
    assert st == 200, body
    assert json.loads(body) == [{"Untagged": f"{n}:a"}]
    assert inspect_image(daemon, iid)["RepoTags"] == [f"{n}:b"]
    # the last name deletes the image
    st, _, body = daemon.api("DELETE", f"/images/{n}:b")
    assert st == 200, body
    r = json.loads(body)
    assert r[0] == {"Untagged": f"{n}:b"}
    assert {"Deleted": iid} in r
    assert not image_exists(daemon, iid)


def test_rmi_by_id_with_several_names_needs_force(daemon, cleanup):
    n = uniq("rmf")
    iid = import_image(daemon, small_tar(), repo=n, tag="a")
    cleanup.append(iid)
    st, _, _ = daemon.api("POST", f"/images/{iid}/tag?repo={n}-other&tag=b")
    assert st == 201
    for name in (iid, iid[7:19]):
        st, _, body = daemon.api("DELETE", f"/images/{name}")
        assert st == 409, body
        msg = err_message(body)
        assert "must be forced" in msg and "multiple repositories" in msg, msg
    assert sorted(inspect_image(daemon, iid)["RepoTags"]) == sorted([f"{n}:a", f"{n}-other:b"])
    st, _, body = daemon.api("DELETE", f"/images/{iid}?force=1")
    assert st == 200, body
    r = json.loads(body)
    assert sorted(x["Untagged"] for x in r if "Untagged" in x) == sorted([f"{n}:a",
                                                                          f"{n}-other:b"])
    assert {"Deleted": iid} in r
    assert not image_exists(daemon, iid)


def test_rmi_by_id_two_tags_same_repo_needs_force(daemon, cleanup):
    """dockerd 20.10: two tags of one repository also make a by-ID delete a 409."""
    n = uniq("rms")
    iid = import_image(daemon, small_tar(), repo=n, tag="a")
    cleanup.append(iid)
    st, _, _ = daemon.api("POST", f"/images/{iid}/tag?repo={n}&tag=b")
    assert st == 201
    st, _, body = daemon.api("DELETE", f"/images/{iid}")
    assert st == 409, body
    assert "must be forced" in err_message(body)
    assert sorted(inspect_image(daemon, iid)["RepoTags"]) == [f"{n}:a", f"{n}:b"]


def test_rmi_by_id_single_name_deletes(daemon, cleanup):
    n = uniq("rm1")
    iid = import_image(daemon, small_tar(), repo=n, tag="a")
    cleanup.append(iid)
    st, _, body = daemon.api("DELETE", f"/images/{iid[7:19]}")
    assert st == 200, body
    assert json.loads(body)[:2] == [{"Untagged": f"{n}:a"}, {"Deleted": iid}]
    assert not image_exists(daemon, iid)


def test_rmi_frees_store_on_host(daemon, busybox):
    """Deleting the only image of a layer removes its config blob, layer and metadata."""
    before = store_listing(daemon.data_root)
    n = uniq("rmh")
    iid = import_image(daemon, small_tar(), repo=n)
    mid = store_listing(daemon.data_root)
    assert os.path.join("blobs", "sha256", iid[7:]) in mid
    assert len(mid - before) >= 2
    st, _, body = daemon.api("DELETE", f"/images/{n}")
    assert st == 200, body
    assert wait_for(lambda: store_listing(daemon.data_root) == before, 5), \
        sorted(store_listing(daemon.data_root) ^ before)


def test_rmi_shared_layer_kept_while_used(daemon, cleanup):
    data = small_tar()
    a = import_image(daemon, data, repo=uniq("sha"))
    cleanup.append(a)
    with_a = store_listing(daemon.data_root, ("layers",))
    b = import_image(daemon, data, repo=uniq("shb"), changes=['CMD ["x"]'])
    st, _, body = daemon.api("DELETE", f"/images/{b}")
    assert st == 200, body
    assert store_listing(daemon.data_root, ("layers",)) == with_a
    assert inspect_image(daemon, a)["RootFS"]["Layers"] == ["sha256:" + sha256_hex(data)]


def test_rmi_unknown_404(daemon):
    st, _, body = daemon.api("DELETE", "/images/nosuch-image-zz")
    assert st == 404, body
    assert "no such image" in err_message(body).lower()


@pytest.mark.parametrize("which", ALL_CLIS)
def test_rmi_cli(daemon, cleanup, which):
    n = uniq("rmc")
    iid = import_image(daemon, small_tar(), repo=n, tag="a")
    cleanup.append(iid)
    cli(daemon, which, "tag", iid, f"{n}-o:b")
    p = cli(daemon, which, "rmi", iid, check=False)
    assert p.returncode == 1
    assert "must be forced" in p.err, p.err
    p = cli(daemon, which, "rmi", "-f", iid)
    lines = p.out.splitlines()
    assert sorted(l for l in lines if l.startswith("Untagged: ")) == sorted(
        [f"Untagged: {n}:a", f"Untagged: {n}-o:b"])
    assert f"Deleted: {iid}" in lines
    # several names, one unknown: the others are removed, exit status 1
    x = import_image(daemon, small_tar(), repo=n, tag="x")
    cleanup.append(x)
    p = cli(daemon, which, "rmi", f"{n}:x", "nosuch-image-zz", check=False)
    assert p.returncode == 1
    assert f"Untagged: {n}:x" in p.out and f"Deleted: {x}" in p.out
    assert "nosuch-image-zz" in p.err
    assert not image_exists(daemon, x)


def test_rmi_docker_py_conflict(daemon, cleanup):
    import docker
    n = uniq("rpy")
    iid = import_image(daemon, small_tar(), repo=n, tag="a")
    cleanup.append(iid)
    daemon.api("POST", f"/images/{iid}/tag?repo={n}-o&tag=b")
    c = daemon.client()
    try:
        with pytest.raises(docker.errors.APIError) as ei:
            c.images.remove(iid)
        assert ei.value.status_code == 409
        c.images.remove(iid, force=True)
        with pytest.raises(docker.errors.ImageNotFound):
            c.images.get(iid)
    finally:
        c.close()


# ---------------------------------------------------------------- prune

def test_prune_dangling_only(daemon, cleanup):
    n = uniq("prn")
    old = import_image(daemon, small_tar(), repo=n)
    new = import_image(daemon, small_tar(), repo=n)
    untagged = import_image(daemon, small_tar())
    unused = import_image(daemon, small_tar(), repo=f"{n}-unused")
    cleanup.extend([old, new, untagged, unused])
    st, _, body = daemon.api("POST", "/images/prune")
    assert st == 200, body
    r = json.loads(body)
    deleted = {x["Deleted"] for x in r["ImagesDeleted"] or [] if "Deleted" in x}
    assert {old, untagged} <= deleted
    assert new not in deleted and unused not in deleted
    assert isinstance(r["SpaceReclaimed"], int) and r["SpaceReclaimed"] >= 0
    assert not image_exists(daemon, old) and not image_exists(daemon, untagged)
    assert image_exists(daemon, new) and image_exists(daemon, unused)
    # nothing left to prune
    r = daemon.api_json("POST", "/images/prune")
    assert not r["ImagesDeleted"]
    assert r["SpaceReclaimed"] == 0


@pytest.mark.parametrize("which", ALL_CLIS)
def test_prune_cli(daemon, cleanup, which):
    n = uniq("pcl")
    old = import_image(daemon, small_tar(), repo=n)
    new = import_image(daemon, small_tar(), repo=n)
    cleanup.extend([old, new])
    p = cli(daemon, which, "image", "prune", "-f")
    assert "Deleted Images:" in p.out, p.out
    assert f"deleted: {old}" in p.out.splitlines()
    assert re.search(r"^Total reclaimed space: \d+(\.\d+)?[kMG]?B$", p.out, re.M), p.out
    assert image_exists(daemon, new)


def test_prune_all_and_label_own_daemon(own_daemons):
    """prune -a removes every unused image; a label filter limits it. Own daemon:
    prune -a would empty the shared one."""
    d = own_daemons().start()
    keep = import_image(d, small_tar(), repo="keep", changes=["LABEL keep=yes"])
    other = import_image(d, small_tar(), repo="other")
    dang_old = import_image(d, small_tar(), repo="dng")
    dang_new = import_image(d, small_tar(), repo="dng")
    # -a with a label: only the labelled image goes
    p = d.berth("image", "prune", "-a", "-f", "--filter", "label=keep=yes")
    assert "untagged: keep:latest" in p.out.splitlines(), p.out
    assert f"deleted: {keep}" in p.out.splitlines()
    assert not image_exists(d, keep)
    assert image_exists(d, other) and image_exists(d, dang_old)
    # label!=: everything without the label
    r = d.api_json("POST", "/images/prune?" + qs([("filters", {"dangling": ["false"],
                                                              "label!": ["nosuchlabel"]})]))
    deleted = {x["Deleted"] for x in r["ImagesDeleted"] if "Deleted" in x}
    # dockerd lists the images and then their freed layers (chain IDs)
    assert {other, dang_old, dang_new} <= deleted
    assert r["SpaceReclaimed"] > 0
    assert d.api_json("GET", "/images/json?all=1") == []
    assert d.api_json("GET", "/info")["Images"] == 0
    # the store on disk is empty again
    assert wait_for(lambda: store_listing(d.data_root, ("layers", "images")) == set(), 5), \
        store_listing(d.data_root, ("layers", "images"))
    assert os.listdir(os.path.join(d.data_root, "blobs", "sha256")) == []
    assert d.stop() == 0


def test_prune_docker_py(daemon, cleanup):
    n = uniq("ppy")
    old = import_image(daemon, small_tar(), repo=n)
    new = import_image(daemon, small_tar(), repo=n)
    cleanup.extend([old, new])
    c = daemon.client()
    try:
        r = c.images.prune()
        assert {"Deleted": old} in r["ImagesDeleted"]
        assert image_exists(daemon, new)
    finally:
        c.close()


# ---------------------------------------------------------------- CLI output vs docker

def test_cli_tables_match_docker_cli(daemon, cleanup):
    """Images with fixed creation times and sizes print exactly as docker 20.10's
    CLI prints them against the same daemon: columns, human sizes, ages, order."""
    import imgbuild
    from conftest import DOCKER_CLIS, make_tar
    n = uniq("tbl")
    big = make_tar([("blob", "file", b"\0" * 1234567), ("small", "file", "x" * 2500)])
    images = []
    for tag, created, layers in (
            ("old", "2023-05-06T07:08:09Z", [small_tar()]),
            ("new", "2024-01-02T03:04:05.123456789Z", [small_tar(), big])):
        cfg = imgbuild.image_config(layers, created=created)
        images.append((cfg, layers, [f"{n}:{tag}"]))
        cleanup.append(imgbuild.sha(cfg))
    st, _, body = daemon.api("POST", "/images/load", body=imgbuild.docker_archive(images))
    assert st == 200, body
    docker = DOCKER_CLIS[0]
    for args in (["images", n], ["images", "--no-trunc", n], ["image", "ls", "-a", n],
                 ["images", "--digests", n], ["history", f"{n}:new"],
                 ["history", "--no-trunc", f"{n}:new"], ["history", "-H=false", f"{n}:old"],
                 ["images", "--format", "table {{.Repository}}\t{{.Size}}\t{{.CreatedSince}}",
                  n], ["system", "df"]):
        want = daemon.docker(*args, cli=docker).out
        got = daemon.berth(*args).out
        assert got == want, f"berth {' '.join(args)}:\n{got}\ndocker:\n{want}"


def test_prune_until_filter(daemon, cleanup):
    """until: only dangling images created before the time are pruned."""
    n = uniq("unt")
    old = import_image(daemon, small_tar(), repo=n)
    new = import_image(daemon, small_tar(), repo=n)
    cleanup.extend([old, new])
    for until in ("1h", str(int(time.time()) - 3600)):
        r = daemon.api_json("POST", "/images/prune?" + qs([("filters", {"until": [until]})]))
        assert old not in {x.get("Deleted") for x in r["ImagesDeleted"] or []}, until
        assert image_exists(daemon, old)
    r = daemon.api_json("POST", "/images/prune?" + qs([("filters", {"until": [
        str(int(time.time()) + 5)]})]))
    assert {"Deleted": old} in (r["ImagesDeleted"] or [])
    assert not image_exists(daemon, old) and image_exists(daemon, new)


def test_rmi_noprune_param(daemon, cleanup):
    n = uniq("npr")
    iid = import_image(daemon, small_tar(), repo=n)
    cleanup.append(iid)
    st, _, body = daemon.api("DELETE", f"/images/{n}?noprune=1")
    assert st == 200, body
    r = json.loads(body)
    assert r[0] == {"Untagged": f"{n}:latest"} and {"Deleted": iid} in r
    assert not image_exists(daemon, iid)
