"""System endpoints: /_ping, API versions, unknown paths, /version, /info and
/system/df, through raw HTTP, the berth CLI, both docker CLIs and docker-py.

Expectations come from dockerd 20.10 (API v1.41) as observed on a private
dockerd: /_ping answers "OK" with API-Version and no-cache headers (HEAD: no
body), /v1.99/... is a 400 "client version 1.99 is too new. Maximum supported
API version is 1.41", unknown paths are 404 {"message":"page not found"}.
"""

import json
import os
import re
import socket

import pytest

from conftest import BERTH, DOCKER_CLIS, err_message, import_image, run, small_tar, uniq


def all_images(daemon):
    return daemon.api_json("GET", "/images/json?all=1")


# ---- /_ping ----

@pytest.mark.parametrize("path", ["/_ping", "/v1.41/_ping", "/v1.24/_ping"])
def test_ping_get(daemon, path):
    st, h, body = daemon.api("GET", path)
    assert st == 200
    assert body == b"OK"
    assert h.get("api-version") == "1.41"
    assert h.get("cache-control") == "no-cache, no-store, must-revalidate"
    assert h.get("pragma") == "no-cache"
    assert h.get("content-type", "").startswith("text/plain")


def test_ping_head(daemon):
    st, h, body = daemon.api("HEAD", "/_ping")
    assert st == 200
    assert body == b""
    assert h.get("api-version") == "1.41"
    assert h.get("cache-control") == "no-cache, no-store, must-revalidate"
    st, h, body = daemon.api("HEAD", "/v1.41/_ping")
    assert (st, body, h.get("api-version")) == (200, b"", "1.41")


def test_ping_docker_py(daemon):
    c = daemon.client()
    try:
        assert c.ping() is True
        # version="auto" negotiated through /_ping's API-Version header
        assert c.api.api_version == "1.41"
    finally:
        c.close()


# ---- API versions and unknown paths ----

@pytest.mark.parametrize("ver", ["1.99", "1.42"])
def test_version_too_new(daemon, ver):
    st, h, body = daemon.api("GET", f"/v{ver}/version")
    assert st == 400, body
    msg = err_message(body)
    assert f"client version {ver} is too new" in msg
    assert "1.41" in msg


def test_version_too_old(daemon):
    v = daemon.api_json("GET", "/version")
    major, minor = (int(x) for x in v["MinAPIVersion"].split("."))
    assert (major, minor) <= (1, 41)
    old = f"{major}.{minor - 1}"
    st, _, body = daemon.api("GET", f"/v{old}/version")
    assert st == 400, body
    text = body.decode(errors="replace")
    assert f"client version {old} is too old" in text
    # the minimum itself is served
    st, _, body = daemon.api("GET", f"/v{v['MinAPIVersion']}/version")
    assert st == 200, body


@pytest.mark.parametrize("method,path", [
    ("GET", "/nosuch"),
    ("GET", "/v1.41/nosuch"),
    ("GET", "/v1.41/images/json/extra/parts/that/do/not/exist/x/json/y"),
    ("POST", "/_ping"),
    ("PUT", "/version"),
    ("GET", "/info/deeper"),
])
def test_unknown_path_404_json(daemon, method, path):
    st, h, body = daemon.api(method, path)
    assert st == 404, (method, path, st, body)
    assert h.get("content-type", "").startswith("application/json")
    assert err_message(body) == "page not found"


def test_versioned_and_unversioned_same(daemon):
    a = daemon.api_json("GET", "/version")
    b = daemon.api_json("GET", "/v1.41/version")
    assert a == b
    i1 = daemon.api_json("GET", "/info")
    i2 = daemon.api_json("GET", "/v1.41/info")
    assert i1["ID"] == i2["ID"] and i1["Images"] == i2["Images"]
    assert daemon.api_json("GET", "/images/json") == daemon.api_json("GET", "/v1.41/images/json")


# ---- /version ----

def test_version_fields(daemon):
    v = daemon.api_json("GET", "/version")
    assert v["ApiVersion"] == "1.41"
    assert re.match(r"^1\.\d+$", v["MinAPIVersion"])
    assert v["Os"] == "linux"
    assert v["Arch"] == {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine,
                                                                     os.uname().machine)
    assert v["KernelVersion"] == os.uname().release
    assert isinstance(v["Version"], str) and v["Version"]
    eng = [c for c in v["Components"] if c["Name"] == "Engine"]
    assert len(eng) == 1 and eng[0]["Version"] == v["Version"]
    assert eng[0]["Details"]["ApiVersion"] == "1.41"


@pytest.mark.parametrize("cli", DOCKER_CLIS)
def test_docker_cli_version(daemon, cli):
    v = daemon.api_json("GET", "/version")
    p = daemon.docker("version", "--format", "{{.Server.APIVersion}}|{{.Server.Version}}|"
                      "{{.Server.Os}}|{{.Server.Arch}}", cli=cli)
    assert p.out.strip() == f"1.41|{v['Version']}|linux|{v['Arch']}"
    p = daemon.docker("version", cli=cli)
    server = p.out.split("Server:", 1)[1]
    assert re.search(r"API version:\s+1\.41", server), p.out


def test_berth_version(daemon):
    v = daemon.api_json("GET", "/version")
    p = daemon.berth("version")
    assert "Client:" in p.out and "Server:" in p.out, p.out
    server = p.out.split("Server:", 1)[1]
    assert re.search(r"API version:\s+1\.41", server), p.out
    assert v["Version"] in server
    p = daemon.berth("version", "--format", "{{.Server.APIVersion}} {{.Server.Version}}")
    assert p.out.strip() == f"1.41 {v['Version']}"


def test_docker_py_version(daemon):
    c = daemon.client()
    try:
        v = c.version()
        assert v["ApiVersion"] == "1.41"
        assert v["Os"] == "linux"
        assert v["KernelVersion"] == os.uname().release
    finally:
        c.close()


# ---- /info ----

def test_info_fields(daemon, busybox):
    i = daemon.api_json("GET", "/info")
    assert re.match(r"^\S+$", i["ID"])
    assert i["Images"] == len(all_images(daemon))
    assert i["Containers"] == 0
    assert i["DockerRootDir"] == daemon.data_root
    assert i["OSType"] == "linux"
    assert i["KernelVersion"] == os.uname().release
    assert i["Name"] == socket.gethostname()
    assert i["NCPU"] >= 1 and i["MemTotal"] > 0
    assert i["Driver"] == "overlay2"
    assert i["ServerVersion"] == daemon.api_json("GET", "/version")["Version"]
    # the daemon ID is stable across calls
    assert daemon.api_json("GET", "/info")["ID"] == i["ID"]


def test_info_images_count_follows_store(daemon, cleanup):
    before = daemon.api_json("GET", "/info")["Images"]
    name = uniq("cnt")
    iid = import_image(daemon, small_tar(), repo=name, tag="a")
    cleanup.append(iid)
    assert daemon.api_json("GET", "/info")["Images"] == before + 1
    # a second name for the same image is not a second image
    st, _, body = daemon.api("POST", f"/images/{iid}/tag?repo={name}&tag=b")
    assert st == 201, body
    assert daemon.api_json("GET", "/info")["Images"] == before + 1
    st, _, body = daemon.api("DELETE", f"/images/{iid}?force=1")
    assert st == 200, body
    assert daemon.api_json("GET", "/info")["Images"] == before


@pytest.mark.parametrize("cli", DOCKER_CLIS)
def test_docker_cli_info(daemon, busybox, cli):
    n = len(all_images(daemon))
    p = daemon.docker("info", "--format", "{{.Images}}|{{.DockerRootDir}}|{{.OSType}}", cli=cli)
    assert p.out.strip() == f"{n}|{daemon.data_root}|linux"
    p = daemon.docker("info", cli=cli)
    assert re.search(rf"^\s*Images: {n}$", p.out, re.M), p.out
    assert re.search(rf"^\s*Docker Root Dir: {re.escape(daemon.data_root)}$", p.out, re.M), p.out


def test_berth_info(daemon, busybox):
    n = len(all_images(daemon))
    p = daemon.berth("info")
    assert re.search(rf"^\s*Images: {n}$", p.out, re.M), p.out
    assert re.search(rf"^\s*Docker Root Dir: {re.escape(daemon.data_root)}$", p.out, re.M), p.out
    p = daemon.berth("info", "--format", "{{.Images}} {{json .DockerRootDir}}")
    assert p.out.strip() == f"{n} {json.dumps(daemon.data_root)}"


def test_docker_py_info(daemon, busybox):
    c = daemon.client()
    try:
        i = c.info()
        assert i["Images"] == len(all_images(daemon))
        assert i["DockerRootDir"] == daemon.data_root
    finally:
        c.close()


def test_cli_host_from_environment(daemon):
    """DOCKER_HOST and BERTH_HOST select the daemon when -H is absent."""
    from conftest import BERTH
    import subprocess
    for var in ("DOCKER_HOST", "BERTH_HOST"):
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "BERTH_HOST")}
        env[var] = daemon.host
        p = subprocess.run([BERTH, "info", "--format", "{{.DockerRootDir}}"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert p.returncode == 0, (var, p.stderr)
        assert p.stdout.decode().strip() == daemon.data_root, var


def test_cli_unreachable_daemon_fails(workdir):
    from conftest import BERTH, run
    p = run([BERTH, "-H", "unix://" + os.path.join(workdir, "no-such.sock"), "version"],
            check=False, timeout=60)
    assert p.returncode != 0
    assert "no-such.sock" in p.err or "connect" in p.err.lower(), p.err


# ---- /system/df ----

def tar_size(data):
    """The size Docker reports for a layer: regular file bytes plus symlink target lengths."""
    import io
    import tarfile
    n = 0
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t.getmembers():
            if m.isfile():
                n += m.size
            elif m.issym():
                n += len(m.linkname)
    return n


def test_system_df_api_shared_layers(daemon, cleanup):
    data = small_tar()
    size = tar_size(data)
    df0 = daemon.api_json("GET", "/system/df")
    a = import_image(daemon, data, repo=uniq("dfa"))
    cleanup.append(a)
    df1 = daemon.api_json("GET", "/system/df")
    assert df1["LayersSize"] - df0["LayersSize"] == size
    b = import_image(daemon, data, repo=uniq("dfb"), changes=['CMD ["x"]'])
    cleanup.append(b)
    assert a != b
    df2 = daemon.api_json("GET", "/system/df")
    # the layer is stored once
    assert df2["LayersSize"] == df1["LayersSize"]
    by_id = {i["Id"]: i for i in df2["Images"]}
    for iid in (a, b):
        e = by_id[iid]
        assert e["Size"] == size
        assert e["SharedSize"] == size
        assert e["Containers"] == 0
    assert len(df2["Images"]) == len(df0["Images"]) + 2
    assert df2["Containers"] == [] and df2["Volumes"] == []


@pytest.mark.parametrize("which", ["berth"] + DOCKER_CLIS)
def test_system_df_cli(daemon, busybox, which):
    n = len(daemon.api_json("GET", "/system/df")["Images"])
    p = daemon.berth("system", "df") if which == "berth" else daemon.docker("system", "df",
                                                                              cli=which)
    lines = p.out.splitlines()
    assert re.match(r"^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE$", lines[0]), p.out
    row = [l for l in lines if l.startswith("Images ")]
    assert len(row) == 1, p.out
    cols = re.split(r"\s{2,}", row[0].strip())
    assert cols[0] == "Images" and cols[1] == str(n) and cols[2] == "0", cols
    assert re.match(r"^\d+(\.\d+)?[kMG]?B$", cols[3]), cols
    p2 = daemon.berth("system", "df", "-v") if which == "berth" else daemon.docker(
        "system", "df", "-v", cli=which)
    assert "Images space usage:" in p2.out
    assert busybox.split(":")[1][:12] in p2.out


def test_system_df_docker_py(daemon, busybox):
    c = daemon.client()
    try:
        df = c.df()
        ids = {i["Id"] for i in df["Images"]}
        assert busybox in ids
        assert df["LayersSize"] >= min(i["Size"] for i in df["Images"])
    finally:
        c.close()


# ---- the CLI's version negotiation ----

def _old_daemon(sock_path, max_api):
    """A stand-in for a daemon whose API ends at max_api: it refuses newer
    versions as dockerd does and records every request line."""
    import http.server
    import socketserver
    import threading

    seen = []

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def address_string(self):
            return "unix"

        def log_message(self, *a):
            pass

        def do_GET(self):
            seen.append(self.path)
            ver = self.path[2:].split("/", 1)[0] if self.path.startswith("/v") else None
            if ver and tuple(map(int, ver.split("."))) > tuple(map(int, max_api.split("."))):
                body = json.dumps({"message": f"client version {ver} is too new. Maximum "
                                   f"supported API version is {max_api}"}).encode()
                st = 400
            else:
                body, st = (b"OK" if self.path == "/_ping" else b"[]"), 200
            self.send_response(st)
            self.send_header("Api-Version", max_api)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class S(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    srv = S(sock_path, H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, seen


@pytest.mark.parametrize("max_api,sent", [
    ("1.41", ["/v1.41/containers/json"]),                            # no /_ping first
    ("1.40", ["/v1.41/containers/json", "/v1.40/containers/json"]),  # refused, sent again
])
def test_cli_version_without_ping(workdir, max_api, sent):
    sock = os.path.join(workdir, f"{uniq('api')}.sock")
    srv, seen = _old_daemon(sock, max_api)
    try:
        p = run([BERTH, "-H", f"unix://{sock}", "ps", "-q"])
        assert p.out == ""
        assert [s.split("?")[0] for s in seen] == sent, seen
    finally:
        srv.shutdown()
        srv.server_close()
