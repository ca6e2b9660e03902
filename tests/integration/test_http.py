"""berthd's own HTTP/1.1 server on the wire, with raw sockets: keep-alive and
pipelining, HTTP/1.0, chunked request bodies, Expect: 100-continue, HEAD,
percent-encoded paths and queries, malformed and oversized heads, streams
without chunking, and hijacked connections (attach, exec start) with and
without "Upgrade: tcp", including stdin bytes sent right behind the request.
After each error the daemon must still serve.
"""

import io
import json
import socket
import tarfile
import time
import urllib.parse

import pytest

from conftest import err_message, force_rmi, qs, small_tar, uniq


class Raw:
    """One client connection to the daemon's socket, read by hand."""

    def __init__(self, d, timeout=30):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(d.sock)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def request(self, method, path, body=None, headers=(), version="1.1"):
        h = [f"{method} {path} HTTP/{version}", "Host: docker"]
        if body is not None:
            h.append(f"Content-Length: {len(body)}")
        h += list(headers)
        self.send(("\r\n".join(h) + "\r\n\r\n").encode() + (body or b""))

    def _fill(self):
        data = self.s.recv(65536)
        if not data:
            raise EOFError("connection closed; buffered: %r" % self.buf[:200])
        self.buf += data

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        version, status, reason = lines[0].split(" ", 2)
        hdrs = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        return version, int(status), reason, hdrs

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_to_eof(self):
        try:
            while True:
                self._fill()
        except EOFError:
            pass
        data, self.buf = self.buf, b""
        return data

    def response(self, method="GET"):
        """(status, headers, body) of the next response."""
        _, status, _, h = self.read_head()
        if method == "HEAD" or status in (204, 304) or status < 200:
            return status, h, b""
        if h.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.read_line().split(b";")[0], 16)
                if size == 0:
                    while self.read_line():
                        pass
                    return status, h, body
                body += self.read_exact(size)
                assert self.read_exact(2) == b"\r\n"
        if "content-length" in h:
            return status, h, self.read_exact(int(h["content-length"]))
        return status, h, self.read_to_eof()

    def closed(self, timeout=10):
        """True when the server closes the connection (EOF) within timeout."""
        self.s.settimeout(timeout)
        try:
            while True:
                data = self.s.recv(65536)
                if not data:
                    return True
                self.buf += data
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


def serving(d):
    st, _, body = d.api("GET", "/_ping", timeout=10)
    return (st, body) == (200, b"OK")


def demux(data):
    """Docker's multiplexed stream: {1: stdout bytes, 2: stderr bytes}."""
    out = {1: b"", 2: b""}
    while len(data) >= 8:
        size = int.from_bytes(data[4:8], "big")
        if len(data) < 8 + size:
            break
        out[data[0]] = out.get(data[0], b"") + data[8:8 + size]
        data = data[8 + size:]
    return out


def read_frames_until(c, pred, timeout=20):
    """Reads a multiplexed stream from c until pred(demuxed) or timeout."""
    deadline = time.time() + timeout
    while not pred(demux(c.buf)) and time.time() < deadline:
        c._fill()
    return demux(c.buf)


def create(d, ctrs, cmd, **cfg):
    n = uniq("h")
    ctrs.append(n)
    body = dict({"Image": "busybox", "Cmd": cmd}, **cfg)
    st, _, data = d.api("POST", "/containers/create?name=" + n, body=body)
    assert st == 201, data
    return n


# ---------------------------------------------------------------- keep-alive

def test_keep_alive_several_requests_one_connection(daemon, busybox, ctrs):
    c = Raw(daemon)
    try:
        c.request("GET", "/_ping")
        st, h, body = c.response()
        assert (st, body) == (200, b"OK")
        assert h["api-version"] == "1.41" and h["ostype"] == "linux"
        assert h["server"].startswith("Berth/") and "date" in h
        assert "connection" not in h
        c.request("GET", "/v1.41/version")
        st, h, body = c.response()
        assert st == 200 and h["content-type"] == "application/json"
        assert json.loads(body)["ApiVersion"] == "1.41"
        n = uniq("h")
        ctrs.append(n)
        c.request("POST", "/containers/create?name=" + n,
                  body=json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode(),
                  headers=["Content-Type: application/json"])
        st, _, body = c.response()
        assert st == 201, body
        cid = json.loads(body)["Id"]
        c.request("GET", f"/containers/{n}/json")
        st, _, body = c.response()
        assert st == 200 and json.loads(body)["Id"] == cid
        c.request("DELETE", f"/containers/{n}")
        st, _, body = c.response()
        assert (st, body) == (204, b"")
        c.request("GET", "/nope")
        st, _, body = c.response()
        assert st == 404 and err_message(body) == "page not found"
        # a 404 keeps the connection too
        c.request("GET", "/_ping")
        assert c.response()[2] == b"OK"
    finally:
        c.close()


def test_pipelined_requests(daemon):
    c = Raw(daemon)
    try:
        c.send(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"
               b"\r\n"  # a stray empty line between requests is ignored
               b"GET /v1.40/version HTTP/1.1\r\nHost: x\r\n\r\n"
               b"HEAD /_ping HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert c.response()[2] == b"OK"
        st, _, body = c.response()
        assert st == 200 and json.loads(body)["ApiVersion"] == "1.41"
        st, h, body = c.response("HEAD")
        assert (st, h["content-length"], body) == (200, "2", b"")
        st, h, body = c.response()
        assert (st, body, h["connection"]) == (200, b"OK", "close")
        assert c.closed()
    finally:
        c.close()


def test_http10_closes_unless_keep_alive(daemon):
    c = Raw(daemon)
    try:
        c.request("GET", "/_ping", version="1.0")
        st, h, body = c.response()
        assert (st, body, h.get("connection")) == (200, b"OK", "close")
        assert c.closed()
    finally:
        c.close()
    c = Raw(daemon)
    try:
        c.request("GET", "/_ping", version="1.0", headers=["Connection: keep-alive"])
        st, h, body = c.response()
        assert (st, body, h.get("connection")) == (200, b"OK", "keep-alive")
        c.request("GET", "/_ping", version="1.0")
        assert c.response()[2] == b"OK"
        assert c.closed()
    finally:
        c.close()


def test_head_sends_headers_only(daemon):
    c = Raw(daemon)
    try:
        c.request("HEAD", "/_ping")
        st, h, body = c.response("HEAD")
        assert (st, h["content-length"], body) == (200, "2", b"")
        c.request("HEAD", "/version")
        st, h, _ = c.response("HEAD")
        assert st == 200 and int(h["content-length"]) > 100
        # no body bytes were sent after either head: the next response parses
        c.request("GET", "/_ping")
        assert c.response()[:3:2] == (200, b"OK")
    finally:
        c.close()


# ---------------------------------------------------------------- bodies

def chunked(data, sizes=(1, 7, 300, 4096, 65536)):
    out, i, k = b"", 0, 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        part = data[i:i + n]
        ext = b";x=y" if k % 3 == 1 else b""
        out += b"%x%s\r\n%s\r\n" % (len(part), ext, part)
        i += n
        k += 1
    return out + b"0\r\nX-Trailer: t\r\n\r\n"


def test_chunked_import_with_query_encoding(daemon, cleanup):
    repo = uniq("chunk")
    cleanup.append(repo + ":v1")
    q = "fromSrc=-&repo=" + repo + "&tag=v1&message=a+b%26c%2Bd" \
        "&changes=ENV+A%3D1&changes=ENV%20B%3D2"
    c = Raw(daemon, timeout=120)
    try:
        c.request("POST", "/images/create?" + q,
                  headers=["Transfer-Encoding: chunked", "Content-Type: application/x-tar"])
        c.send(chunked(small_tar()))
        st, _, body = c.response()
        assert st == 200, body
        assert b"error" not in body, body
        # the connection serves the next request
        c.request("GET", "/images/" + repo + ":v1/json")
        st, _, body = c.response()
        assert st == 200, body
        img = json.loads(body)
        assert img["Comment"] == "a b&c+d"
        assert "A=1" in img["Config"]["Env"] and "B=2" in img["Config"]["Env"]
    finally:
        c.close()


def test_chunked_json_body(daemon, busybox, ctrs):
    n = uniq("h")
    ctrs.append(n)
    body = json.dumps({"Image": "busybox", "Cmd": ["true"], "Labels": {"k": "v" * 5000}}).encode()
    c = Raw(daemon)
    try:
        c.request("POST", "/containers/create?name=" + n,
                  headers=["Transfer-Encoding: chunked", "Content-Type: application/json"])
        c.send(chunked(body, sizes=(3, 1000)))
        st, _, data = c.response()
        assert st == 201, data
    finally:
        c.close()
    assert daemon.api_json("GET", f"/containers/{n}/json")["Config"]["Labels"]["k"] == "v" * 5000


def test_malformed_chunked_body_400(daemon):
    c = Raw(daemon)
    try:
        c.request("POST", "/containers/create",
                  headers=["Transfer-Encoding: chunked", "Content-Type: application/json"])
        c.send(b"2\r\n{}\r\nzz\r\n")
        st, _, body = c.response()
        assert st == 400 and "chunked" in err_message(body)
        assert c.closed()
    finally:
        c.close()
    assert serving(daemon)


def test_expect_100_continue(daemon, busybox, ctrs):
    n = uniq("h")
    ctrs.append(n)
    body = json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode()
    c = Raw(daemon)
    try:
        c.request("POST", "/containers/create?name=" + n,
                  headers=[f"Content-Length: {len(body)}", "Content-Type: application/json",
                           "Expect: 100-continue"])
        assert c.read_exact(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
        c.send(body)
        st, _, data = c.response()
        assert st == 201, data
        # chunked, with 100-continue
        c.request("POST", "/images/create?fromSrc=-&repo=" + n,
                  headers=["Transfer-Encoding: chunked", "Expect: 100-Continue"])
        assert c.read_exact(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
        c.send(chunked(small_tar()))
        st, _, data = c.response()
        assert st == 200 and b"error" not in data, data
    finally:
        c.close()
        force_rmi(daemon, n)
    # an answer before the body (unknown path): no 100, and the connection closes
    c = Raw(daemon)
    try:
        c.request("POST", "/nope", headers=["Content-Length: 10", "Expect: 100-continue"])
        st, _, data = c.response()
        assert st == 404 and err_message(data) == "page not found"
        assert c.closed()
        c2 = Raw(daemon)
        c2.request("POST", "/_ping", headers=["Content-Length: 1", "Expect: something-else"])
        assert c2.response()[0] == 417
        c2.close()
    finally:
        c.close()
    assert serving(daemon)


def test_body_too_large_413(daemon):
    c = Raw(daemon)
    try:
        c.request("POST", "/containers/create",
                  headers=["Content-Length: 40000000", "Content-Type: application/json"])
        st, _, body = c.response()
        assert st == 413 and "too large" in err_message(body)
    finally:
        c.close()
    assert serving(daemon)


# ---------------------------------------------------------------- bad heads

@pytest.mark.parametrize("raw,status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /_ping\r\n\r\n", 400),
    (b"GET  /_ping HTTP/1.1\r\n\r\n", 400),
    (b"GET /_ping HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
    (b"GET /_ping HTTP/1.1\r\nNoColon\r\n\r\n", 400),
    (b"GET /_ping HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400),
    (b"GET /_ping HTTP/2.0\r\n\r\n", 505),
    (b"GET _ping HTTP/1.1\r\n\r\n", 400),
    (b"GET /containers/a%00b/json HTTP/1.1\r\n\r\n", 400),
    (b"POST /_ping HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"POST /_ping HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
    (b"POST /_ping HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST /_ping HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"\x00\x01\x02\x03\r\n\r\n", 400),
])
def test_malformed_request_400_and_still_serving(daemon, raw, status):
    c = Raw(daemon)
    try:
        c.send(raw)
        st, h, body = c.response()
        assert st == status, (raw, st, body)
        assert err_message(body)
        assert h["connection"] == "close"
        assert c.closed()
    finally:
        c.close()
    assert serving(daemon)


def test_oversized_head_431(daemon):
    for raw in (b"GET /_ping HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
                b"GET /_ping HTTP/1.1\r\n" + b"X-H: v\r\n" * 150 + b"\r\n",
                b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"):
        c = Raw(daemon)
        try:
            c.send(raw)
            st, _, body = c.response()
            assert st == 431, body
            assert c.closed()
        finally:
            c.close()
    assert serving(daemon)


def test_head_in_pieces_and_client_gone_mid_head(daemon):
    c = Raw(daemon)
    try:
        for b in b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n":
            c.send(bytes([b]))
        assert c.response()[2] == b"OK"
    finally:
        c.close()
    c = Raw(daemon)
    c.send(b"GET /_ping HTTP/1.1\r\nHo")
    c.close()
    c = Raw(daemon)
    c.send(b"POST /containers/create HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
    c.close()
    assert serving(daemon)


# ---------------------------------------------------------------- encodings

def test_percent_encoded_path_and_query(daemon, busybox, cleanup):
    repo = uniq("pct") + "/sub"
    cleanup.append(repo + ":t1")
    st, _, body = daemon.api("POST", "/images/busybox/tag?repo=" + urllib.parse.quote(repo, safe="")
                             + "&tag=t1")
    assert st == 201, body
    c = Raw(daemon)
    try:
        # %2F and %3A in the path are decoded before routing; {name*} spans the slash
        c.request("GET", "/v1.41/images/" + urllib.parse.quote(repo + ":t1", safe="") + "/json")
        st, _, body = c.response()
        assert st == 200, body
        assert repo + ":t1" in json.loads(body)["RepoTags"]
        c.request("GET", "/images/" + repo + "%3at1/json")
        assert c.response()[0] == 200
        # filters as percent-encoded JSON ('+' as a space in queries: see the import test)
        f = urllib.parse.quote(json.dumps({"reference": [repo + ":t1"]}))
        c.request("GET", "/images/json?filters=" + f)
        st, _, body = c.response()
        assert st == 200 and [repo + ":t1"] == [t for i in json.loads(body)
                                                for t in i["RepoTags"] if t.startswith(repo)]
        c.request("GET", "/images/" + repo + "+x/json")  # "+" stays "+" in a path
        st, _, body = c.response()
        assert st == 400 and err_message(body) == "invalid reference format", body
        c.request("GET", "/images/" + repo + "%2bx/json")
        assert c.response()[0] == 400
        # a bare key is present with an empty value: the default
        c.request("GET", "/containers/json?all&limit")
        assert c.response()[0] == 200
    finally:
        c.close()


# ---------------------------------------------------------------- streams

def test_http10_stream_is_raw_until_close(daemon, busybox):
    c = Raw(daemon, timeout=120)
    try:
        c.request("GET", "/images/get?names=busybox", version="1.0")
        st, h, body = c.response()
        assert st == 200 and "transfer-encoding" not in h and h["connection"] == "close"
        with tarfile.open(fileobj=io.BytesIO(body)) as t:
            assert "manifest.json" in t.getnames()
    finally:
        c.close()


def test_stream_chunked_and_connection_reused(daemon, busybox):
    c = Raw(daemon, timeout=120)
    try:
        c.request("GET", "/images/busybox/get")
        st, h, body = c.response()
        assert st == 200 and h["transfer-encoding"] == "chunked"
        with tarfile.open(fileobj=io.BytesIO(body)) as t:
            assert "manifest.json" in t.getnames()
        c.request("GET", "/_ping")
        assert c.response()[2] == b"OK"
    finally:
        c.close()


# ---------------------------------------------------------------- hijack

ATTACH_UPGRADE = ["Connection: Upgrade", "Upgrade: tcp", "Content-Type: text/plain"]


def test_attach_upgrade_with_early_stdin(daemon, busybox, ctrs):
    n = create(daemon, ctrs, ["cat"], OpenStdin=True, AttachStdin=True)
    assert daemon.api("POST", f"/containers/{n}/start")[0] == 204
    c = Raw(daemon)
    try:
        # the request and the first stdin bytes in one write: nothing may be lost
        c.send(f"POST /containers/{n}/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n"
               "Host: docker\r\nContent-Length: 0\r\n".encode()
               + ("\r\n".join(ATTACH_UPGRADE) + "\r\n\r\n").encode() + b"early\n")
        version, st, reason, h = c.read_head()
        assert (st, reason) == (101, "UPGRADED")
        assert h["upgrade"] == "tcp" and h["connection"] == "Upgrade"
        assert h["content-type"] == "application/vnd.docker.raw-stream"
        out = read_frames_until(c, lambda o: b"early\n" in o[1])
        assert out[1] == b"early\n"
        c.send(b"later\n")
        out = read_frames_until(c, lambda o: b"later\n" in o[1])
        assert out[1] == b"early\nlater\n"
    finally:
        c.close()


def test_attach_upgrade_then_stdin(daemon, busybox, ctrs):
    n = create(daemon, ctrs, ["sh", "-c", "read x; echo got-$x; echo err >&2"], OpenStdin=True,
               AttachStdin=True, StdinOnce=True)
    assert daemon.api("POST", f"/containers/{n}/start")[0] == 204
    c = Raw(daemon)
    try:
        c.request("POST", f"/v1.41/containers/{n}/attach?stream=1&stdin=1&stdout=1&stderr=1",
                  headers=ATTACH_UPGRADE)
        assert c.read_head()[1] == 101
        c.send(b"hi\n")
        c.s.shutdown(socket.SHUT_WR)
        data = c.read_to_eof()  # the connection closes when the container is done
        out = demux(data)
        assert (out[1], out[2]) == (b"got-hi\n", b"err\n")
    finally:
        c.close()
    assert daemon.api_json("POST", f"/containers/{n}/wait")["StatusCode"] == 0


def test_attach_without_upgrade_close_delimited(daemon, busybox, ctrs):
    n = create(daemon, ctrs, ["sh", "-c", "sleep 0.5; echo late; echo err >&2"])
    c = Raw(daemon)
    try:
        c.request("POST", f"/containers/{n}/attach?stream=1&stdout=1&stderr=1")
        _, st, _, h = c.read_head()
        assert st == 200 and h["connection"] == "close" and "content-length" not in h
        assert "transfer-encoding" not in h
        assert h["content-type"] == "application/vnd.docker.raw-stream"
        assert daemon.api("POST", f"/containers/{n}/start")[0] == 204
        out = demux(c.read_to_eof())
        assert (out[1], out[2]) == (b"late\n", b"err\n")
    finally:
        c.close()
    # logs of the exited container, the same way
    c = Raw(daemon)
    try:
        c.request("POST", f"/containers/{n}/attach?logs=1&stdout=1")
        _, st, _, h = c.read_head()
        assert st == 200
        assert demux(c.read_to_eof())[1] == b"late\n"
    finally:
        c.close()


def test_exec_start_upgrade_with_body_and_early_stdin(daemon, busybox, ctrs):
    n = create(daemon, ctrs, ["sleep", "1000"])
    assert daemon.api("POST", f"/containers/{n}/start")[0] == 204
    ex = daemon.api_json("POST", f"/containers/{n}/exec",
                         {"Cmd": ["sh", "-c", "echo exec-out; cat"], "AttachStdin": True,
                          "AttachStdout": True, "AttachStderr": True}, expect=201)
    body = json.dumps({"Detach": False, "Tty": False}).encode()
    c = Raw(daemon)
    try:
        c.send(f"POST /v1.41/exec/{ex['Id']}/start HTTP/1.1\r\nHost: docker\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
               "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode() + body + b"in-early\n")
        _, st, _, h = c.read_head()
        assert st == 101 and h["content-type"] == "application/vnd.docker.multiplexed-stream"
        out = read_frames_until(c, lambda o: b"in-early\n" in o[1])
        assert out[1] == b"exec-out\nin-early\n"
        c.s.shutdown(socket.SHUT_WR)  # cat ends; so do the exec and the connection
        out = demux(c.read_to_eof())
        assert out[1] == b"exec-out\nin-early\n"
    finally:
        c.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        j = daemon.api_json("GET", f"/exec/{ex['Id']}/json")
        if not j["Running"]:
            break
        time.sleep(0.1)
    assert (j["Running"], j["ExitCode"]) == (False, 0)


# ---------------------------------------------------------------- shutdown

def test_sigterm_with_idle_and_half_open_connections(own_daemons):
    d = own_daemons().start()
    idle = Raw(d)
    idle.request("GET", "/_ping")
    assert idle.response()[2] == b"OK"
    half = Raw(d)
    half.send(b"GET /_ping HTTP/1.1\r\nHost")
    body = Raw(d)
    body.send(b"POST /images/load HTTP/1.1\r\nContent-Length: 1000000\r\n\r\nxx")
    time.sleep(0.2)
    t = time.time()
    assert d.stop(timeout=20) == 0
    assert time.time() - t < 10
    for c in (idle, half, body):
        assert c.closed()
        c.close()
