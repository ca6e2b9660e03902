"""Builds image archives by hand for the tests: `docker save` archives
(manifest.json, repositories, <config>.json, <layer>/layer.tar) and OCI image
layout archives (oci-layout, index.json, blobs/sha256/...). Configs are
serialized once and their bytes kept, so the image ID (the sha256 of the
config bytes) is known before any daemon sees the archive."""

import gzip
import hashlib
import io
import json
import tarfile
import uuid

from conftest import make_tar


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain_ids(diff_ids):
    out = []
    for d in diff_ids:
        out.append(d if not out else sha(f"{out[-1]} {d}".encode()))
    return out


def two_layer_image(marker=None, cmd=("sh",)):
    """A two-layer image whose upper layer holds a whiteout and an opaque dir.

    layer 1: etc/a, d/b, d/c, keep ; layer 2: deletes etc/a, makes d opaque
    with d/new, adds added. Returns (config_bytes, [layer1, layer2])."""
    marker = marker or uuid.uuid4().hex
    l1 = make_tar([("etc", "dir", None), ("etc/a", "file", "A\n"), ("d", "dir", None),
                   ("d/b", "file", "B\n"), ("d/c", "file", "C\n"),
                   ("keep", "file", marker + "\n")])
    l2 = make_tar([("etc", "dir", None), ("etc/.wh.a", "file", ""), ("d", "dir", None),
                   ("d/.wh..wh..opq", "file", ""), ("d/new", "file", "N\n"),
                   ("added", "file", "X\n")])
    return image_config([l1, l2], cmd=list(cmd)), [l1, l2]


def image_config(layers, cmd=("sh",), created="2024-01-02T03:04:05.123456789Z", labels=None):
    diff_ids = [sha(l) for l in layers]
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {"Cmd": list(cmd), "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                              "/usr/bin:/sbin:/bin"],
                   "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": f"/bin/sh -c #(nop) layer {i}"}
                    for i in range(len(layers))],
    }
    return json.dumps(cfg, separators=(",", ":")).encode()


def _add(t, name, data=None, dir_=False):
    ti = tarfile.TarInfo(name)
    ti.mtime = 1700000000
    if dir_:
        ti.type = tarfile.DIRTYPE
        ti.mode = 0o755
        t.addfile(ti)
    else:
        ti.size = len(data)
        ti.mode = 0o644
        t.addfile(ti, io.BytesIO(data))


def docker_archive(images):
    """images: list of (config_bytes, [layer tars], [repo tags]) -> docker save tar bytes."""
    buf = io.BytesIO()
    manifest, repos, seen = [], {}, set()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for cfg, layers, tags in images:
            cfg_name = sha(cfg)[7:] + ".json"
            if cfg_name not in seen:
                _add(t, cfg_name, cfg)
                seen.add(cfg_name)
            paths = []
            for cid in chain_ids([sha(l) for l in layers]):
                # the directory name is the v1 layer ID; any unique hex works
                paths.append(cid[7:] + "/layer.tar")
            for p, l in zip(paths, layers):
                d = p.split("/")[0]
                if d not in seen:
                    _add(t, d, dir_=True)
                    _add(t, d + "/VERSION", b"1.0")
                    _add(t, d + "/layer.tar", l)
                    seen.add(d)
            manifest.append({"Config": cfg_name, "RepoTags": list(tags) or None,
                             "Layers": paths})
            for tag in tags:
                repo, _, tg = tag.rpartition(":")
                repos.setdefault(repo, {})[tg] = paths[-1].split("/")[0]
        _add(t, "manifest.json", json.dumps(manifest).encode())
        if repos:
            _add(t, "repositories", json.dumps(repos).encode())
    return buf.getvalue()


def oci_archive(cfg, layers, name=None, compress=True, bad_layer_digest=False):
    """An OCI image layout archive of one image. name: "repo:tag" annotations
    (io.containerd.image.name with the full name, org.opencontainers.image.ref.name
    with the tag, as containerd and docker 25+ write them)."""
    blobs = {}

    def put(data):
        d = sha(data)
        blobs[d] = data
        return d

    layer_descs = []
    for l in layers:
        data = gzip.compress(l, mtime=0) if compress else l
        d = put(data)
        if bad_layer_digest:
            blobs[d] = data[:-8] + b"\0" * 8
        layer_descs.append({
            "mediaType": "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else ""),
            "digest": d, "size": len(data)})
    man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                      "digest": put(cfg), "size": len(cfg)},
           "layers": layer_descs}
    man_bytes = json.dumps(man).encode()
    md = put(man_bytes)
    desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
            "size": len(man_bytes)}
    if name:
        repo, _, tag = name.rpartition(":")
        full = repo if "/" in repo else "docker.io/library/" + repo
        desc["annotations"] = {"io.containerd.image.name": f"{full}:{tag}",
                               "org.opencontainers.image.ref.name": tag}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [desc]}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        _add(t, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add(t, "index.json", json.dumps(index).encode())
        _add(t, "blobs", dir_=True)
        _add(t, "blobs/sha256", dir_=True)
        for d, data in blobs.items():
            _add(t, "blobs/sha256/" + d[7:], data)
    return buf.getvalue(), md
