"""Bad input: invalid references, unknown images, malformed filters, and
hostile or broken tarballs for import and load. Each gets the right status and
a clear message; nothing is written outside the data root; nothing half-made
stays in the store (blobs, layers, images, tmp are as before); the daemon keeps
serving.

dockerd 20.10 answers some of these with 500 (invalid tag reference, bad
filters JSON, broken tarballs); the Engine API spec and issue 2 ask for 400
for bad parameters, which newer dockerd also gives; these tests hold berthd to
the 4xx.
"""

import gzip
import json
import os
import uuid

import pytest

import imgbuild
from conftest import (ALL_CLIS, api_import, cli, err_message, force_rmi, gz, image_exists,
                      make_tar, qs, small_tar, store_listing, uniq, wait_for, zst)


@pytest.fixture(autouse=True)
def warm_store(daemon, busybox):
    """The store has been used once, so its directories exist before any check."""
    yield


def assert_store_unchanged(daemon, before):
    ok = wait_for(lambda: store_listing(daemon.data_root) == before, 5)
    after = store_listing(daemon.data_root)
    assert ok, "store changed: added %s, removed %s" % (sorted(after - before)[:20],
                                                         sorted(before - after)[:20])


def assert_serving(daemon):
    st, _, body = daemon.api("GET", "/_ping", timeout=10)
    assert (st, body) == (200, b"OK")


def find_named(root, names):
    hits = []
    for dp, dns, fns in os.walk(root):
        for n in dns + fns:
            if n in names:
                hits.append(os.path.join(dp, n))
    return hits


# ---------------------------------------------------------------- references

@pytest.mark.parametrize("query,word", [
    ("repo=UPPER/Case", "invalid reference format"),
    ("repo=a//b", "invalid reference format"),
    ("repo=a/b/", "invalid reference format"),
    ("repo=-leading", "invalid reference format"),
    ("repo=ok&tag=bad:tag", "invalid tag format"),
    ("repo=ok&tag=-x", "invalid tag format"),
    ("repo=ok&tag=" + "t" * 129, "invalid tag format"),
    ("repo=" + "a" * 300, "255"),
    ("repo=" + "0123456789abcdef" * 4, "64-byte hexadecimal"),
    ("repo=", None),
])
def test_tag_invalid_reference_400(daemon, busybox, query, word):
    st, _, body = daemon.api("POST", f"/images/busybox/tag?{query}")
    assert st == 400, (query, st, body)
    msg = err_message(body)
    assert word is None or word in msg, msg
    assert_serving(daemon)


def test_tag_invalid_reference_does_not_tag(daemon, busybox):
    before = sorted(daemon.api_json("GET", "/images/busybox/json")["RepoTags"])
    for q in ("repo=UPPER/Case", "repo=a//b", "repo=ok&tag=bad:tag"):
        daemon.api("POST", f"/images/busybox/tag?{q}")
    assert sorted(daemon.api_json("GET", "/images/busybox/json")["RepoTags"]) == before
    assert not image_exists(daemon, "ok:latest")


@pytest.mark.parametrize("which", ALL_CLIS)
@pytest.mark.parametrize("ref", ["UPPER/Case", "a//b"])
def test_tag_invalid_reference_cli(daemon, busybox, which, ref):
    p = cli(daemon, which, "tag", "busybox", ref, check=False)
    assert p.returncode != 0
    assert "invalid reference format" in p.err, p.err


@pytest.mark.parametrize("repo", ["UPPER/Case", "a//b"])
def test_import_invalid_reference_400(daemon, repo):
    before = store_listing(daemon.data_root)
    st, body = api_import(daemon, small_tar(), repo=repo)
    assert st == 400, body
    assert "invalid reference format" in err_message(body)
    assert_store_unchanged(daemon, before)


@pytest.mark.parametrize("name", ["UPPER", "Upper:tag", "a:b:c"])
def test_inspect_invalid_reference_400(daemon, name):
    # (a//b is no test here: dockerd's router answers 301 to a path with "//")
    st, _, body = daemon.api("GET", f"/images/{name}/json")
    assert st == 400, body
    assert "invalid reference format" in err_message(body)


# ---------------------------------------------------------------- unknown image

UNKNOWN = "nosuch-image-zz"


@pytest.mark.parametrize("method,path", [
    ("GET", f"/images/{UNKNOWN}/json"),
    ("GET", f"/images/{UNKNOWN}:v9/json"),
    ("GET", f"/images/{UNKNOWN}/history"),
    ("POST", f"/images/{UNKNOWN}/tag?repo=x&tag=y"),
    ("DELETE", f"/images/{UNKNOWN}"),
    ("DELETE", f"/images/{UNKNOWN}?force=1"),
    ("GET", f"/images/{UNKNOWN}/get"),
    ("GET", f"/images/get?names={UNKNOWN}"),
    ("GET", "/images/sha256:" + "ab" * 32 + "/json"),
    ("GET", "/images/abcdef012345/history"),
])
def test_unknown_image_404(daemon, method, path):
    st, h, body = daemon.api(method, path)
    assert st == 404, (method, path, st, body[:200])
    assert h.get("content-type", "").startswith("application/json")
    msg = err_message(body)
    assert "no such image" in msg.lower(), msg
    assert not image_exists(daemon, "x:y")


@pytest.mark.parametrize("which", ALL_CLIS)
@pytest.mark.parametrize("args", [
    ["image", "inspect", UNKNOWN], ["history", UNKNOWN], ["tag", UNKNOWN, "x:y"],
    ["rmi", UNKNOWN], ["save", "-o", "{out}", UNKNOWN],
])
def test_unknown_image_cli(daemon, workdir, which, args):
    out = os.path.join(workdir, uniq("save") + ".tar")
    p = cli(daemon, which, *[a.replace("{out}", out) for a in args], check=False)
    assert p.returncode == 1, (p.out, p.err)
    assert "no such image" in p.err.lower() and UNKNOWN in p.err, p.err


# ---------------------------------------------------------------- filters

@pytest.mark.parametrize("path", ["/images/json", "/images/prune", "/events"])
@pytest.mark.parametrize("filters", ["{not json", "[1,2]", '{"reference": 5}', '"str"'])
def test_malformed_filters_400(daemon, busybox, path, filters):
    method = "POST" if path.endswith("prune") else "GET"
    params = [("filters", filters)]
    if path == "/events":
        params += [("since", "1"), ("until", "2")]
    before = daemon.api_json("GET", "/images/json?all=1")
    st, _, body = daemon.api(method, path + "?" + qs(params), timeout=10)
    assert st == 400, (path, filters, st, body[:200])
    assert err_message(body)
    # a failed prune removed nothing
    assert daemon.api_json("GET", "/images/json?all=1") == before
    assert_serving(daemon)


@pytest.mark.parametrize("which", ALL_CLIS)
def test_bad_filter_cli(daemon, which):
    p = cli(daemon, which, "images", "-f", "nosuchfilter=1", check=False)
    assert p.returncode != 0
    assert "invalid filter 'nosuchfilter'" in p.err.lower(), p.err


# ---------------------------------------------------------------- broken tarballs

def broken_bodies(plain):
    g = gzip.compress(plain)
    z = zst(plain)
    return {
        "garbage": b"this is not a tarball at all\n" * 200,
        "truncated-gzip": g[: len(g) // 2],
        "truncated-zstd": z[: len(z) // 2],
        "truncated-tar": plain[: 512 + 100],              # header plus part of the data
        "gzip-of-garbage": gzip.compress(os.urandom(4096)),
        "bad-tar-checksum": b"x" * 100 + plain[100:1024],
    }


# a clear message says what was wrong with the body
BROKEN_WORD = {"garbage": "tar", "truncated-gzip": "gzip", "truncated-zstd": "zstd",
               "truncated-tar": "tar", "gzip-of-garbage": "tar", "bad-tar-checksum": "tar"}


@pytest.mark.parametrize("kind", ["garbage", "truncated-gzip", "truncated-zstd",
                                  "truncated-tar", "gzip-of-garbage", "bad-tar-checksum"])
def test_import_broken_tarball(daemon, kind):
    plain = make_tar([("big", "file", os.urandom(64 * 1024)), ("small", "file", "x")])
    body = broken_bodies(plain)[kind]
    name = uniq("brk")
    before = store_listing(daemon.data_root)
    st, resp = api_import(daemon, body, repo=name)
    assert 400 <= st < 500, (kind, st, resp[:300])
    msg = err_message(resp).lower()
    assert BROKEN_WORD[kind] in msg or "archive" in msg, msg
    assert not image_exists(daemon, name)
    assert_store_unchanged(daemon, before)
    assert_serving(daemon)


@pytest.mark.parametrize("kind", ["garbage", "truncated-gzip", "truncated-tar",
                                  "gzip-of-garbage"])
def test_load_broken_archive(daemon, kind):
    layer = small_tar()
    good = imgbuild.docker_archive([(imgbuild.image_config([layer]), [layer], [])])
    body = broken_bodies(good)[kind]
    before = store_listing(daemon.data_root)
    st, _, resp = daemon.api("POST", "/images/load", body=body)
    assert 400 <= st < 500, (kind, st, resp[:300])
    assert len(err_message(resp)) > 5
    assert_store_unchanged(daemon, before)
    assert_serving(daemon)


@pytest.mark.parametrize("which", ALL_CLIS)
def test_import_and_load_garbage_cli(daemon, workdir, which):
    path = os.path.join(workdir, uniq("garbage"))
    with open(path, "wb") as f:
        f.write(b"not a tar\n" * 500)
    before = store_listing(daemon.data_root)
    p = cli(daemon, which, "import", path, "garbage-img", check=False)
    assert p.returncode != 0 and p.err.strip(), (p.out, p.err)
    p = cli(daemon, which, "load", "-i", path, check=False)
    assert p.returncode != 0 and p.err.strip(), (p.out, p.err)
    assert not image_exists(daemon, "garbage-img")
    assert_store_unchanged(daemon, before)
    os.unlink(path)


# ---------------------------------------------------------------- escapes

@pytest.fixture
def target(workdir):
    """A host directory outside the data root that hostile entries aim at."""
    d = os.path.join(workdir, "outside-" + uuid.uuid4().hex[:8])
    os.makedirs(d)
    yield d
    # nothing may have been written there
    assert os.listdir(d) == [], f"files written outside the data root: {os.listdir(d)}"


def up(n=40):
    return "../" * n


def hostile_layers(target):
    rel = target.lstrip("/")
    return {
        "dotdot": [("ok", "file", "fine"), ("../escape", "file", "x")],
        "dotdot-deep": [("ok", "file", "fine"), (up() + rel + "/escape", "file", "x")],
        "dotdot-in-middle": [("a", "dir", None), ("a/../../escape", "file", "x")],
        "symlink-abs": [("evil", "symlink", target), ("evil/pwned", "file", "x")],
        "symlink-rel": [("evil2", "symlink", up() + rel), ("evil2/pwned2", "file", "x")],
        "symlink-dir-chain": [("d", "dir", None), ("d/l", "symlink", "../../../../../../../.."),
                              ("d/l/" + rel + "/pwned3", "file", "x")],
        "hardlink-out": [("hl", "hardlink", up() + "etc/passwd")],
        "hardlink-abs": [("hl2", "hardlink", "/etc/passwd")],
    }


# the entry a clear message names, per hostile layer
HOSTILE_ENTRY = {"dotdot": "escape", "dotdot-deep": "escape", "dotdot-in-middle": "escape",
                 "symlink-abs": "evil", "symlink-rel": "evil2", "symlink-dir-chain": "d/l",
                 "hardlink-out": "hl", "hardlink-abs": "hl2"}
HOSTILE = ["dotdot", "dotdot-deep", "dotdot-in-middle", "symlink-abs", "symlink-rel",
           "symlink-dir-chain", "hardlink-out", "hardlink-abs"]
# Symlinks are resolved inside the layer root (as dockerd's chrooted extraction
# does), so writing through one either fails (its target does not exist in the
# layer) or lands inside the layer: both are fine as long as nothing is
# written outside. Everything else must be refused.
CONTAINED = {"symlink-dir-chain"}
BAD_NAMES = {"escape", "pwned", "pwned2", "pwned3"}


@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("comp", ["plain", "gzip"])
def test_import_hostile_tar(daemon, target, kind, comp, cleanup):
    passwd_links = os.stat("/etc/passwd").st_nlink
    layer = make_tar(hostile_layers(target)[kind])
    body = gz(layer) if comp == "gzip" else layer
    name = uniq("hst")
    before = store_listing(daemon.data_root)
    st, resp = api_import(daemon, body, repo=name)
    if kind in CONTAINED and st == 200:
        cleanup.append(name)
        parent = os.path.dirname(daemon.data_root)
        inside = [p for p in find_named(parent, BAD_NAMES) if p.startswith(daemon.data_root)]
        assert inside, "the file written through the symlink must land inside the layer"
        assert find_named(parent, BAD_NAMES) == inside
        assert_serving(daemon)
        return
    assert 400 <= st < 500, (kind, st, resp[:300])
    msg = err_message(resp)
    assert HOSTILE_ENTRY[kind] in msg, msg
    assert not image_exists(daemon, name)
    assert_store_unchanged(daemon, before)
    # nothing landed where the entries aimed, nor next to the data root
    parent = os.path.dirname(daemon.data_root)
    assert not find_named(parent, BAD_NAMES), find_named(parent, BAD_NAMES)
    assert os.stat("/etc/passwd").st_nlink == passwd_links
    assert_serving(daemon)


@pytest.mark.parametrize("kind", HOSTILE)
def test_load_hostile_layer(daemon, target, kind, cleanup):
    """The same hostile layers inside a docker-save archive, with a matching config."""
    passwd_links = os.stat("/etc/passwd").st_nlink
    layer = make_tar(hostile_layers(target)[kind])
    cfg = imgbuild.image_config([layer])
    name = uniq("hld")
    before = store_listing(daemon.data_root)
    st, _, resp = daemon.api("POST", "/images/load",
                             body=imgbuild.docker_archive([(cfg, [layer], [f"{name}:1"])]))
    if kind in CONTAINED and st == 200:
        cleanup.append(f"{name}:1")
        parent = os.path.dirname(daemon.data_root)
        inside = [p for p in find_named(parent, BAD_NAMES) if p.startswith(daemon.data_root)]
        assert inside and find_named(parent, BAD_NAMES) == inside
        assert_serving(daemon)
        return
    assert 400 <= st < 500, (kind, st, resp[:300])
    assert HOSTILE_ENTRY[kind] in err_message(resp), err_message(resp)
    assert not image_exists(daemon, f"{name}:1")
    assert not image_exists(daemon, imgbuild.sha(cfg))
    assert_store_unchanged(daemon, before)
    parent = os.path.dirname(daemon.data_root)
    assert not find_named(parent, BAD_NAMES), find_named(parent, BAD_NAMES)
    assert os.stat("/etc/passwd").st_nlink == passwd_links
    assert_serving(daemon)


def test_import_hostile_cli(daemon, target, workdir):
    path = os.path.join(workdir, uniq("hostile") + ".tar")
    with open(path, "wb") as f:
        f.write(make_tar(hostile_layers(target)["symlink-abs"]))
    before = store_listing(daemon.data_root)
    p = daemon.berth("import", path, "hostile-cli", check=False)
    assert p.returncode != 0 and p.err.strip()
    assert not image_exists(daemon, "hostile-cli")
    assert_store_unchanged(daemon, before)
    os.unlink(path)


def test_symlink_inside_root_is_fine(daemon, cleanup):
    """Not everything with a symlink is hostile: links that stay inside the root,
    and absolute links that are never written through, import fine."""
    layer = make_tar([("etc", "dir", None), ("etc/real", "file", "r"),
                      ("link", "symlink", "etc"), ("abs", "symlink", "/etc/passwd"),
                      ("up", "symlink", "../../.."), ("etc/rel", "symlink", "../etc/real")])
    name = uniq("okl")
    st, resp = api_import(daemon, layer, repo=name)
    assert st == 200, resp
    cleanup.append(name)
    assert image_exists(daemon, name)


# ---------------------------------------------------------------- bad archives

def _layer():
    return small_tar()


def bad_archives(outside):
    """outside: a host directory outside the data root; a valid layer.tar is put there
    so that a loader following a path out of the archive would succeed visibly."""
    l = _layer()
    with open(os.path.join(outside, "layer.tar"), "wb") as fh:
        fh.write(l)
    cfg = imgbuild.image_config([l])
    good = imgbuild.docker_archive([(cfg, [l], ["badarch:1"])])
    files = {}
    import io
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(good)) as t:
        for m in t.getmembers():
            files[m.name] = t.extractfile(m).read() if m.isfile() else None
    man = json.loads(files["manifest.json"])

    def rebuild(mod_files):
        entries = []
        for n, data in mod_files.items():
            entries.append((n, "dir", None) if data is None else (n, "file", data))
        return make_tar(entries)

    out = {}
    f = dict(files)
    f["manifest.json"] = b"{not json"
    out["manifest-not-json"] = rebuild(f)
    f = dict(files)
    del f["manifest.json"]
    out["no-manifest"] = rebuild(f)
    f = dict(files)
    m2 = json.loads(json.dumps(man))
    m2[0]["Layers"] = [up(20) + outside.lstrip("/") + "/layer.tar"]
    f["manifest.json"] = json.dumps(m2).encode()
    out["layer-path-escape"] = rebuild(f)
    f = dict(files)
    m2 = json.loads(json.dumps(man))
    with open(os.path.join(outside, "config.json"), "wb") as fh:
        fh.write(cfg)
    m2[0]["Config"] = up(20) + outside.lstrip("/") + "/config.json"
    f["manifest.json"] = json.dumps(m2).encode()
    out["config-path-escape"] = rebuild(f)
    f = dict(files)
    m2 = json.loads(json.dumps(man))
    m2[0]["Layers"] = ["missing/layer.tar"]
    f["manifest.json"] = json.dumps(m2).encode()
    out["missing-layer"] = rebuild(f)
    # a layer whose content does not match the config's diff_ids
    other = _layer()
    out["diffid-mismatch"] = imgbuild.docker_archive([(cfg, [other], ["badarch:1"])])
    # config declares two layers, manifest lists one
    cfg2 = imgbuild.image_config([l, _layer()])
    out["layer-count-mismatch"] = imgbuild.docker_archive([(cfg2, [l], ["badarch:1"])])
    # OCI: corrupted layer blob (digest mismatch)
    out["oci-bad-digest"], _ = imgbuild.oci_archive(cfg, [l], name="badarch:1",
                                                    bad_layer_digest=True)
    # OCI: index.json not JSON
    files_oci = {}
    good_oci, _ = imgbuild.oci_archive(cfg, [l], name="badarch:1")
    with tarfile.open(fileobj=io.BytesIO(good_oci)) as t:
        for m in t.getmembers():
            files_oci[m.name] = t.extractfile(m).read() if m.isfile() else None
    files_oci["index.json"] = b"[[["
    out["oci-index-not-json"] = rebuild(files_oci)
    # the manifest names a repo tag that is not a valid reference
    f = dict(files)
    m2 = json.loads(json.dumps(man))
    m2[0]["RepoTags"] = ["UPPER/Case:1"]
    f["manifest.json"] = json.dumps(m2).encode()
    out["invalid-repotag"] = rebuild(f)
    return out, imgbuild.sha(cfg)


BAD_ARCHIVES = ["manifest-not-json", "no-manifest", "layer-path-escape", "config-path-escape",
                "missing-layer", "diffid-mismatch", "layer-count-mismatch", "oci-bad-digest",
                "oci-index-not-json", "invalid-repotag"]


@pytest.mark.parametrize("kind", BAD_ARCHIVES)
def test_load_bad_archive(daemon, workdir, target, kind):
    outside = os.path.join(workdir, uniq("outside-layer"))
    os.makedirs(outside)
    archives, iid = bad_archives(outside)
    before = store_listing(daemon.data_root)
    st, _, resp = daemon.api("POST", "/images/load", body=archives[kind])
    assert 400 <= st < 500, (kind, st, resp[:300])
    assert len(err_message(resp)) > 5
    assert not image_exists(daemon, "badarch:1")
    assert not image_exists(daemon, iid)
    assert_store_unchanged(daemon, before)
    assert_serving(daemon)


def test_daemon_still_healthy_after_bad_input(daemon, busybox):
    """After all of the above, the normal paths still work."""
    assert_serving(daemon)
    assert daemon.api_json("GET", "/images/busybox/json")["Id"] == busybox
    n = uniq("after")
    st, body = api_import(daemon, small_tar(), repo=n)
    assert st == 200, body
    force_rmi(daemon, n)
    assert os.listdir(os.path.join(daemon.data_root, "tmp")) == []
