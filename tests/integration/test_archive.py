"""docker save / docker load: archive format, round trips through berth, the
docker CLIs and docker-py, OCI image layout archives, and interop with a real
dockerd (Debian's docker.io, started privately in the tests that need it):
its saved archives load into berthd with the same image IDs, and berthd's
load into it with the same IDs.
"""

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

import imgbuild
from conftest import (ALL_CLIS, DOCKER_CLIS, UnixHTTPConnection, cli, err_message, force_rmi,
                      image_exists, import_image, inspect_image, json_lines, layer_size, qs, run,
                      saved_archive, sha256_hex, small_tar, store_listing, uniq, wait_for)

DOCKERD = "/usr/sbin/dockerd"


def api_save(daemon, names):
    st, h, body = daemon.api("GET", "/images/get?" + qs([("names", n) for n in names]))
    assert st == 200, (st, body[:300])
    return body


def api_load(daemon, data, quiet=False):
    st, _, body = daemon.api("POST", "/images/load" + ("?quiet=1" if quiet else ""), body=data,
                             headers={"Content-Type": "application/x-tar"})
    return st, body


def loaded_lines(body):
    msgs = json_lines(body)
    errs = [m for m in msgs if "error" in m or "errorDetail" in m]
    assert not errs, errs
    return [m["stream"].strip() for m in msgs if "stream" in m and m["stream"].strip()]


def snapshot(daemon, name):
    j = inspect_image(daemon, name)
    return {k: j[k] for k in ("Id", "RootFS", "Config", "Created", "Os", "Architecture",
                              "Comment", "Size")}


# ---------------------------------------------------------------- format

def test_save_archive_layout(daemon, cleanup):
    plain = small_tar()
    n = uniq("sv")
    iid = import_image(daemon, plain, repo=n, tag="a", changes=['CMD ["sh"]'])
    cleanup.append(iid)
    daemon.api("POST", f"/images/{iid}/tag?repo={n}&tag=b")
    files = saved_archive(api_save(daemon, [f"{n}:a", f"{n}:b"]))
    # docker-save part
    man = json.loads(files["manifest.json"])
    assert len(man) == 1
    m = man[0]
    assert sorted(m["RepoTags"]) == [f"{n}:a", f"{n}:b"]
    assert "sha256:" + sha256_hex(files[m["Config"]]) == iid
    assert len(m["Layers"]) == 1
    assert "sha256:" + sha256_hex(files[m["Layers"][0]]) == "sha256:" + sha256_hex(plain)
    assert files[m["Layers"][0]] == plain          # the layer goes out as it came in
    repos = json.loads(files["repositories"])
    assert set(repos) == {n} and set(repos[n]) == {"a", "b"}
    # OCI part
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2
    descs = index["manifests"]
    assert len(descs) >= 1
    for desc in descs:
        blob = files["blobs/sha256/" + desc["digest"][7:]]
        assert "sha256:" + sha256_hex(blob) == desc["digest"]
        assert len(blob) == desc["size"]
        om = json.loads(blob)
        assert om["config"]["digest"] == iid
        assert files["blobs/sha256/" + iid[7:]] == files[m["Config"]]
        assert len(om["layers"]) == 1
        ld = om["layers"][0]
        lb = files["blobs/sha256/" + ld["digest"][7:]]
        assert "sha256:" + sha256_hex(lb) == ld["digest"] and len(lb) == ld["size"]
    names = {d.get("annotations", {}).get("io.containerd.image.name") for d in descs}
    assert {f"docker.io/library/{n}:a", f"docker.io/library/{n}:b"} <= names, descs


def test_save_by_id_has_no_tags(daemon, cleanup):
    n = uniq("sid")
    iid = import_image(daemon, small_tar(), repo=n)
    cleanup.append(iid)
    files = saved_archive(api_save(daemon, [iid]))
    man = json.loads(files["manifest.json"])
    assert len(man) == 1 and not man[0]["RepoTags"]
    st, _, data = daemon.api("GET", f"/images/{iid}/get")
    assert st == 200
    assert not json.loads(saved_archive(data)["manifest.json"])[0]["RepoTags"]
    # loading it back into a store that has lost the image reports the ID
    st, _, _ = daemon.api("DELETE", f"/images/{iid}?force=1")
    assert st == 200
    st, body = api_load(daemon, data)
    assert st == 200, body
    assert loaded_lines(body) == [f"Loaded image ID: {iid}"]
    assert inspect_image(daemon, iid)["RepoTags"] == []


def test_save_unknown_404(daemon, busybox):
    for path in ("/images/nosuch-image-zz/get", "/images/get?names=nosuch-image-zz",
                 "/images/get?names=busybox&names=nosuch-image-zz"):
        st, h, body = daemon.api("GET", path)
        assert st == 404, (path, body[:200])
        assert "nosuch-image-zz" in err_message(body)


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("which", ALL_CLIS)
def test_save_load_roundtrip_cli(daemon, cleanup, workdir, which):
    n = uniq("rt")
    a = import_image(daemon, small_tar(), repo=n, tag="a", changes=['CMD ["sh"]', "ENV X=1"])
    b = import_image(daemon, small_tar(), repo=f"{n}-b", message="second")
    cleanup.extend([a, b])
    cli(daemon, which, "tag", a, f"{n}:a2")
    want = {x: snapshot(daemon, x) for x in (f"{n}:a", f"{n}-b:latest")}
    path = os.path.join(workdir, n + ".tar")
    p = cli(daemon, which, "save", "-o", path, f"{n}:a", f"{n}:a2", f"{n}-b")
    assert p.out == ""
    assert os.path.getsize(path) > 0
    force_rmi(daemon, a, b)
    assert not image_exists(daemon, a) and not image_exists(daemon, b)
    p = cli(daemon, which, "load", "-i", path)
    assert sorted(p.out.splitlines()) == sorted([f"Loaded image: {n}:a", f"Loaded image: {n}:a2",
                                                 f"Loaded image: {n}-b:latest"])
    for x, snap in want.items():
        assert snapshot(daemon, x) == snap, x
    assert sorted(inspect_image(daemon, a)["RepoTags"]) == sorted([f"{n}:a", f"{n}:a2"])
    # quiet: no progress, the same "Loaded image" lines (as dockerd does)
    p = cli(daemon, which, "load", "-q", "-i", path)
    assert sorted(p.out.splitlines()) == sorted([f"Loaded image: {n}:a", f"Loaded image: {n}:a2",
                                                 f"Loaded image: {n}-b:latest"])
    os.unlink(path)


def test_save_repository_name_takes_all_its_tags(daemon, cleanup):
    """`docker save repo` (no tag) saves every tag of the repository."""
    n = uniq("all")
    a = import_image(daemon, small_tar(), repo=n, tag="1")
    b = import_image(daemon, small_tar(), repo=n, tag="2")
    cleanup.extend([a, b])
    daemon.api("POST", f"/images/{a}/tag?repo={n}&tag=3")
    man = json.loads(saved_archive(api_save(daemon, [n]))["manifest.json"])
    got = {re.search(r"[0-9a-f]{64}", m["Config"]).group(0): sorted(m["RepoTags"]) for m in man}
    assert got == {a[7:]: [f"{n}:1", f"{n}:3"], b[7:]: [f"{n}:2"]}


@pytest.mark.parametrize("which", ALL_CLIS)
def test_save_stdout_load_stdin(daemon, cleanup, which):
    n = uniq("pipe")
    a = import_image(daemon, small_tar(), repo=n)
    cleanup.append(a)
    data = cli(daemon, which, "save", n).stdout
    assert json.loads(saved_archive(data)["manifest.json"])[0]["RepoTags"] == [f"{n}:latest"]
    force_rmi(daemon, a)
    p = cli(daemon, which, "load", input=data)
    assert p.out.strip() == f"Loaded image: {n}:latest"
    assert inspect_image(daemon, n)["Id"] == a


def test_load_gzip_compressed_archive(daemon, cleanup):
    n = uniq("lgz")
    a = import_image(daemon, small_tar(), repo=n)
    cleanup.append(a)
    data = gzip.compress(api_save(daemon, [n]))
    force_rmi(daemon, a)
    st, body = api_load(daemon, data)
    assert st == 200, body
    assert loaded_lines(body) == [f"Loaded image: {n}:latest"]
    assert inspect_image(daemon, n)["Id"] == a


def test_load_existing_image_is_idempotent(daemon, cleanup):
    n = uniq("idem")
    a = import_image(daemon, small_tar(), repo=n)
    cleanup.append(a)
    data = api_save(daemon, [n])
    before = store_listing(daemon.data_root, ("blobs", "layers", "images"))
    for _ in range(2):
        st, body = api_load(daemon, data)
        assert st == 200, body
        assert loaded_lines(body) == [f"Loaded image: {n}:latest"]
    assert store_listing(daemon.data_root, ("blobs", "layers", "images")) == before


def test_docker_py_save_load(daemon, cleanup):
    n = uniq("dpy")
    a = import_image(daemon, small_tar(), repo=n, tag="x")
    cleanup.append(a)
    c = daemon.client()
    try:
        data = b"".join(c.images.get(f"{n}:x").save(named=True))
        force_rmi(daemon, a)
        imgs = c.images.load(data)
        assert [i.id for i in imgs] == [a]
        assert imgs[0].tags == [f"{n}:x"]
    finally:
        c.close()


def test_load_multilayer_whiteouts(daemon, cleanup):
    """A hand-made two-layer docker-save archive: same ID, history, sizes; the
    whiteout and opaque dir become overlay whiteouts on disk; saved back
    byte-identical."""
    cfg, layers = imgbuild.two_layer_image()
    iid = imgbuild.sha(cfg)
    n = uniq("ml")
    cleanup.append(iid)
    st, body = api_load(daemon, imgbuild.docker_archive([(cfg, layers, [f"{n}:1"])]))
    assert st == 200, body
    assert loaded_lines(body) == [f"Loaded image: {n}:1"]
    j = inspect_image(daemon, f"{n}:1")
    assert j["Id"] == iid
    diff_ids = [imgbuild.sha(l) for l in layers]
    assert j["RootFS"]["Layers"] == diff_ids
    assert j["Config"]["Cmd"] == ["sh"]
    assert j["Created"] == "2024-01-02T03:04:05.123456789Z"
    s0, s1 = layer_size(layers[0]), layer_size(layers[1])
    assert s1 == 4
    assert j["Size"] == s0 + s1        # whiteouts count nothing, as dockerd counts
    h = daemon.api_json("GET", f"/images/{n}:1/history")
    assert [(e["Id"], e["CreatedBy"], e["Size"], e["Tags"]) for e in h] == [
        (iid, "/bin/sh -c #(nop) layer 1", s1, [f"{n}:1"]),
        ("<missing>", "/bin/sh -c #(nop) layer 0", s0, None)]
    # host side: the upper layer's whiteouts in overlay form
    chain = imgbuild.chain_ids(diff_ids)
    upper = os.path.join(daemon.data_root, "layers", chain[1][7:], "diff")
    lower = os.path.join(daemon.data_root, "layers", chain[0][7:], "diff")
    assert os.path.isfile(os.path.join(lower, "etc", "a"))
    st_a = os.lstat(os.path.join(upper, "etc", "a"))
    import stat
    assert stat.S_ISCHR(st_a.st_mode) and st_a.st_rdev == 0, "etc/a is not an overlay whiteout"
    assert not os.path.exists(os.path.join(upper, "etc", ".wh.a"))
    assert os.getxattr(os.path.join(upper, "d"), "trusted.overlay.opaque") == b"y"
    assert not os.path.exists(os.path.join(upper, "d", ".wh..wh..opq"))
    assert open(os.path.join(upper, "d", "new")).read() == "N\n"
    # saved back: config and layer tars byte for byte
    files = saved_archive(api_save(daemon, [f"{n}:1"]))
    m = json.loads(files["manifest.json"])[0]
    assert files[m["Config"]] == cfg
    assert [imgbuild.sha(files[p]) for p in m["Layers"]] == diff_ids


def test_load_oci_layout_archive(daemon, cleanup):
    cfg, layers = imgbuild.two_layer_image()
    iid = imgbuild.sha(cfg)
    n = uniq("oci")
    cleanup.append(iid)
    data, _ = imgbuild.oci_archive(cfg, layers, name=f"{n}:v2")
    st, body = api_load(daemon, data)
    assert st == 200, body
    assert f"Loaded image: {n}:v2" in loaded_lines(body)
    j = inspect_image(daemon, f"{n}:v2")
    assert j["Id"] == iid
    assert j["RootFS"]["Layers"] == [imgbuild.sha(l) for l in layers]


def test_load_oci_layout_uncompressed_untagged(daemon, cleanup):
    cfg, layers = imgbuild.two_layer_image()
    iid = imgbuild.sha(cfg)
    cleanup.append(iid)
    data, _ = imgbuild.oci_archive(cfg, layers, name=None, compress=False)
    st, body = api_load(daemon, data)
    assert st == 200, body
    assert loaded_lines(body) == [f"Loaded image ID: {iid}"]
    assert inspect_image(daemon, iid)["RepoTags"] == []


def test_save_then_load_into_fresh_daemon(own_daemons, daemon, cleanup):
    """A second berthd with an empty root loads what the first saved: same IDs."""
    cfg, layers = imgbuild.two_layer_image()
    iid = imgbuild.sha(cfg)
    n = uniq("fr")
    cleanup.append(iid)
    st, body = api_load(daemon, imgbuild.docker_archive([(cfg, layers, [f"{n}:1"])]))
    assert st == 200, body
    imp = import_image(daemon, small_tar(), repo=n, tag="imp")
    cleanup.append(imp)
    data = api_save(daemon, [f"{n}:1", f"{n}:imp"])
    d2 = own_daemons().start()
    st, body = api_load(d2, data)
    assert st == 200, body
    assert sorted(loaded_lines(body)) == [f"Loaded image: {n}:1", f"Loaded image: {n}:imp"]
    assert snapshot(d2, f"{n}:1") == snapshot(daemon, f"{n}:1")
    assert snapshot(d2, f"{n}:imp") == snapshot(daemon, f"{n}:imp")
    assert d2.stop() == 0


# ---------------------------------------------------------------- real dockerd

class RealDockerd:
    """A private dockerd (Debian docker.io) with its own roots and socket."""

    def __init__(self, base):
        self.base = base
        self.root = os.path.join(base, "root")
        self.exec_root = os.path.join(base, "exec")
        self.sock = os.path.join(base, "d.sock")
        self.pidfile = os.path.join(base, "d.pid")
        self.log_path = os.path.join(base, "dockerd.log")
        self.host = "unix://" + self.sock
        self.proc = None

    def start(self):
        os.makedirs(self.base, exist_ok=True)
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [DOCKERD, "--data-root", self.root, "--exec-root", self.exec_root, "-H", self.host,
             "--pidfile", self.pidfile, "--bridge", "none", "--iptables=false",
             "--ip6tables=false"], stdout=self.logf, stderr=self.logf)
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dockerd exited:\n" + self.log()[-3000:])
            try:
                c = UnixHTTPConnection(self.sock, timeout=5)
                c.request("GET", "/_ping")
                if c.getresponse().status == 200:
                    c.close()
                    return self
                c.close()
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("dockerd did not answer:\n" + self.log()[-3000:])

    def log(self):
        try:
            return open(self.log_path, errors="replace").read()
        except OSError:
            return ""

    def docker(self, *args, input=None, check=True, cli=None):
        return run([cli or DOCKER_CLIS[0], "-H", self.host, *args], input=input, check=check,
                   timeout=180)

    def _pids_under_base(self):
        out = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                cmd = open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace")
            except OSError:
                continue
            if self.base in cmd and int(p) != os.getpid():
                out.append(int(p))
        return out

    def stop(self):
        if self.proc:
            pid = self.proc.pid
            os.kill(pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self.proc.wait(10)
            self.proc = None
            self.logf.close()
        # its containerd, if it outlived dockerd: only processes running from our base
        for pid in self._pids_under_base():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        wait_for(lambda: not self._pids_under_base(), 20)
        for pid in self._pids_under_base():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # unmount anything under its dirs, deepest first
        mounts = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].replace("\\040", " ")
                if mp == self.base or mp.startswith(self.base + "/"):
                    mounts.append(mp)
        for mp in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def real_dockerd(workdir):
    if not os.access(DOCKERD, os.X_OK):
        pytest.skip(f"{DOCKERD} is not installed (Debian docker.io); interop tests need it")
    d = RealDockerd(os.path.join(workdir, uniq("rd")))
    try:
        d.start()
    except Exception:
        d.stop()
        raise
    yield d
    d.stop()


@pytest.fixture(scope="module")
def real_busybox(real_dockerd, rootfs_tar):
    p = real_dockerd.docker("import", "-c", 'CMD ["sh"]', "-", "busybox:real", input=rootfs_tar)
    return p.out.strip()


def test_real_docker_save_loads_into_berth(daemon, cleanup, real_dockerd, real_busybox, workdir):
    path = os.path.join(workdir, "real-busybox.tar")
    real_dockerd.docker("save", "-o", path, "busybox:real")
    cleanup.append(real_busybox)
    p = daemon.berth("load", "-i", path)
    assert p.out.strip() == "Loaded image: busybox:real"
    real = json.loads(real_dockerd.docker("image", "inspect", "busybox:real").out)[0]
    mine = inspect_image(daemon, "busybox:real")
    assert mine["Id"] == real["Id"] == real_busybox
    for k in ("RootFS", "Config", "Created", "Size", "Comment", "Os", "Architecture"):
        assert mine[k] == real[k], k
    os.unlink(path)


def test_berth_save_loads_into_real_docker(daemon, cleanup, real_dockerd, workdir):
    n = uniq("tord")
    a = import_image(daemon, small_tar(), repo=n, tag="1",
                     changes=['CMD ["sh"]', "ENV A=1", "EXPOSE 80", "LABEL x=y"])
    cleanup.append(a)
    path = os.path.join(workdir, n + ".tar")
    daemon.berth("save", "-o", path, f"{n}:1")
    try:
        p = real_dockerd.docker("load", "-i", path)
        assert p.out.strip() == f"Loaded image: {n}:1"
        real = json.loads(real_dockerd.docker("image", "inspect", f"{n}:1").out)[0]
        mine = inspect_image(daemon, f"{n}:1")
        assert real["Id"] == a
        for k in ("RootFS", "Config", "Created", "Size", "Comment"):
            assert real[k] == mine[k], k
    finally:
        real_dockerd.docker("rmi", "-f", a, check=False)
        os.unlink(path)


def test_full_cycle_multilayer(daemon, cleanup, real_dockerd, workdir):
    """docker load -> docker save -> berth load -> berth save -> docker load: same ID."""
    cfg, layers = imgbuild.two_layer_image()
    iid = imgbuild.sha(cfg)
    n = uniq("cyc")
    cleanup.append(iid)
    p = real_dockerd.docker("load", input=imgbuild.docker_archive([(cfg, layers, [f"{n}:1"])]))
    try:
        assert p.out.strip() == f"Loaded image: {n}:1"
        data = real_dockerd.docker("save", f"{n}:1").stdout
        st, body = api_load(daemon, data)
        assert st == 200, body
        assert inspect_image(daemon, f"{n}:1")["Id"] == iid
        back = daemon.berth("save", f"{n}:1").stdout
        real_dockerd.docker("rmi", f"{n}:1")
        p = real_dockerd.docker("load", input=back)
        assert p.out.strip() == f"Loaded image: {n}:1"
        real = json.loads(real_dockerd.docker("image", "inspect", f"{n}:1").out)[0]
        assert real["Id"] == iid
        assert real["RootFS"]["Layers"] == [imgbuild.sha(l) for l in layers]
        rh = real_dockerd.docker("history", "--no-trunc", "--format",
                                 "{{.ID}}|{{.CreatedBy}}|{{.Size}}", f"{n}:1").out
        bh = daemon.berth("history", "--no-trunc", "--format",
                          "{{.ID}}|{{.CreatedBy}}|{{.Size}}", f"{n}:1").out
        assert bh == rh
    finally:
        real_dockerd.docker("rmi", "-f", iid, check=False)


def test_docker_cli_save_from_berth_loads_into_real_docker(daemon, busybox, real_dockerd,
                                                           workdir):
    """`docker save` run against berthd, loaded into the real dockerd."""
    path = os.path.join(workdir, "bb-from-berth.tar")
    daemon.docker("save", "-o", path, "busybox:latest")
    try:
        p = real_dockerd.docker("load", "-i", path)
        assert p.out.strip() == "Loaded image: busybox:latest"
        assert json.loads(real_dockerd.docker("image", "inspect", "busybox:latest").out)[0][
            "Id"] == busybox
    finally:
        real_dockerd.docker("rmi", "-f", busybox, check=False)
        os.unlink(path)


def test_berth_cli_drives_real_dockerd(real_dockerd, real_busybox):
    """berth speaks only HTTP: it lists, inspects, tags and removes on a real dockerd."""
    from conftest import BERTH
    H = ["-H", real_dockerd.host]
    fmt = "{{.ID}}|{{.Repository}}|{{.Tag}}|{{.Size}}|{{.CreatedAt}}"
    want = real_dockerd.docker("images", "--format", fmt).out
    got = run([BERTH, *H, "images", "--format", fmt]).out
    assert sorted(got.splitlines()) == sorted(want.splitlines())
    p = run([BERTH, *H, "version", "--format", "{{.Server.Version}}"])
    real_v = real_dockerd.docker("version", "--format", "{{.Server.Version}}").out.strip()
    assert p.out.strip() == real_v
    assert run([BERTH, *H, "image", "inspect", "-f", "{{.Id}}", "busybox:real"]).out.strip() \
        == real_busybox
    run([BERTH, *H, "tag", "busybox:real", "viaberth:1"])
    assert real_dockerd.docker("image", "inspect", "-f", "{{.Id}}",
                               "viaberth:1").out.strip() == real_busybox
    p = run([BERTH, *H, "rmi", "viaberth:1"])
    assert p.out.strip() == "Untagged: viaberth:1"
    p = run([BERTH, *H, "history", "-q", "--no-trunc", "busybox:real"])
    assert p.out.split() == [real_busybox]
