"""GET /events: image events (import, tag, untag, delete, load, save), since and
until, filters, through raw HTTP, the berth CLI, both docker CLIs and
docker-py. Every request is bounded by until or a timeout.

Event shape as dockerd 20.10 sends it:
{"status":"tag","id":"sha256:...","Type":"image","Action":"tag",
 "Actor":{"ID":"sha256:...","Attributes":{"name":"ev:1"}},"scope":"local",
 "time":1795846793,"timeNano":1795846793887135912}
"""

import json
import re
import threading
import time

import pytest

from conftest import (ALL_CLIS, api_events, cli, err_message, import_image, qs, small_tar, ts,
                      uniq)


def make_history(daemon):
    """import, tag, untag, delete, save, load of one fresh image; returns what happened."""
    n = uniq("ev")
    t0 = time.time()
    iid = import_image(daemon, small_tar(), repo=n, tag="1")
    st, _, _ = daemon.api("POST", f"/images/{iid}/tag?repo={n}&tag=2")
    assert st == 201
    st, _, _ = daemon.api("DELETE", f"/images/{n}:2")             # untag
    assert st == 200
    st, _, data = daemon.api("GET", f"/images/get?names={n}:1")    # save
    assert st == 200
    st, _, _ = daemon.api("DELETE", f"/images/{n}:1")             # untag + delete
    assert st == 200
    st, _, body = daemon.api("POST", "/images/load", body=data)  # load
    assert st == 200, body
    t1 = time.time()
    return n, iid, t0, t1


def mine(events, iid):
    return [e for e in events if e.get("Actor", {}).get("ID") == iid or e.get("id") == iid]


def test_each_action_has_its_event(daemon, cleanup):
    n, iid, t0, t1 = make_history(daemon)
    cleanup.append(iid)
    evs = mine(api_events(daemon, ts(t0), ts(t1 + 0.001)), iid)
    actions = [e["Action"] for e in evs]
    for a in ("import", "tag", "untag", "delete", "save", "load"):
        assert a in actions, (a, actions)
    # in the order they happened
    order = [a for a in actions if a in ("import", "save", "delete", "load")]
    assert order == ["import", "save", "delete", "load"], actions
    assert actions.count("untag") == 2, actions
    tags = [e["Actor"]["Attributes"].get("name") for e in evs if e["Action"] == "tag"]
    assert f"{n}:1" in tags and f"{n}:2" in tags, evs
    for e in evs:
        assert e["Type"] == "image"
        assert e["status"] == e["Action"]
        assert e["id"] == e["Actor"]["ID"] == iid
        assert e["scope"] == "local"
        assert t0 - 1 <= e["timeNano"] / 1e9 <= t1 + 1
        assert e["time"] == e["timeNano"] // 1_000_000_000
    nanos = [e["timeNano"] for e in evs]
    assert nanos == sorted(nanos)


def test_since_until_window(daemon, cleanup):
    n = uniq("win")
    a = import_image(daemon, small_tar(), repo=n, tag="a")
    cleanup.append(a)
    t_before = time.time()
    time.sleep(0.05)
    daemon.api("POST", f"/images/{a}/tag?repo={n}&tag=first")
    time.sleep(0.05)
    t_mid = time.time()
    time.sleep(0.05)
    daemon.api("POST", f"/images/{a}/tag?repo={n}&tag=second")
    time.sleep(0.05)
    t_after = time.time()

    def names(since, until):
        return [e["Actor"]["Attributes"]["name"] for e in
                api_events(daemon, since, until, {"event": ["tag"], "image": [a]})]

    assert names(ts(t_before), ts(t_after)) == [f"{n}:first", f"{n}:second"]
    assert names(ts(t_mid), ts(t_after)) == [f"{n}:second"]
    assert names(ts(t_before), ts(t_mid)) == [f"{n}:first"]
    # whole seconds are accepted too
    assert f"{n}:second" in names(str(int(t_before)), str(int(t_after) + 1))


def test_until_in_past_returns_at_once(daemon):
    start = time.time()
    evs = api_events(daemon, ts(start - 3600), ts(start - 3500), timeout=10)
    assert evs == []
    assert time.time() - start < 5


def test_live_stream_until_future(daemon, cleanup):
    """A stream with until in the future delivers a live event, then ends at until."""
    n = uniq("live")
    a = import_image(daemon, small_tar(), repo=n)
    cleanup.append(a)
    start = time.time()
    box = {}

    def reader():
        box["evs"] = api_events(daemon, ts(start), ts(start + 3), {"image": [a]}, timeout=20)
        box["end"] = time.time()

    th = threading.Thread(target=reader)
    th.start()
    time.sleep(1)
    daemon.api("POST", f"/images/{a}/tag?repo={n}&tag=live")
    th.join(25)
    assert not th.is_alive(), "events stream did not end at until"
    assert [e["Action"] for e in box["evs"]] == ["tag"]
    assert box["evs"][0]["Actor"]["Attributes"]["name"] == f"{n}:live"
    assert 2.5 <= box["end"] - start < 10


@pytest.fixture
def history(daemon, cleanup):
    """One image's full event history plus another image's import, and the window."""
    n, iid, t0, _ = make_history(daemon)
    cleanup.append(iid)
    other = import_image(daemon, small_tar(), repo=uniq("oth"))
    cleanup.append(other)
    t1 = time.time()
    s, u = ts(t0), ts(t1 + 0.001)

    def acts(f):
        return [(e["Action"], e["Actor"]["ID"]) for e in api_events(daemon, s, u, f)]

    return n, iid, other, acts


def test_filter_event(history):
    n, iid, other, acts = history
    tags = acts({"event": ["tag"]})
    assert tags and all(a == "tag" for a, _ in tags), tags
    assert {i for _, i in tags} >= {iid, other}
    both = acts({"event": ["save", "load"], "image": [iid]})      # two values of a key: OR
    assert sorted(a for a, _ in both) == ["load", "save"], both
    anded = acts({"type": ["image"], "event": ["tag"], "image": [iid]})   # keys: AND
    assert anded and all(x == ("tag", iid) for x in anded), anded


def test_filter_image_by_id(history):
    n, iid, other, acts = history
    by_id = acts({"image": [iid]})
    assert {a for a, _ in by_id} >= {"import", "tag", "untag", "delete", "save", "load"}
    assert all(i == iid for _, i in by_id)


def test_filter_image_by_repository(history):
    """image=<repo> matches the tag events of repo:<any tag> (dockerd strips the
    tag of the name attribute before comparing)."""
    n, iid, other, acts = history
    by_name = acts({"image": [n]})
    assert ("tag", iid) in by_name, by_name
    assert all(i == iid for _, i in by_name)
    assert ("tag", iid) in acts({"image": [f"{n}:2"]})


def test_filter_type(history):
    n, iid, other, acts = history
    assert acts({"type": ["container"]}) == []
    assert acts({"type": ["network"], "image": [iid]}) == []
    assert {i for _, i in acts({"type": ["image"]})} >= {iid, other}


def test_bad_parameters(daemon):
    now = time.time()
    st, _, body = daemon.api("GET", "/events?" + qs([("since", "yesterday-ish"),
                                                     ("until", ts(now))]), timeout=10)
    assert st == 400, body
    assert err_message(body)
    st, _, body = daemon.api("GET", "/events?" + qs([("since", ts(now)),
                                                     ("until", ts(now - 100))]), timeout=10)
    assert st == 400, body
    assert "since" in err_message(body) and "until" in err_message(body)
    st, _, body = daemon.api("GET", "/events?" + qs([("until", ts(now)),
                                                     ("filters", "{not json")]), timeout=10)
    assert st == 400, body
    st, _, body = daemon.api("GET", "/events?" + qs([("until", ts(now)),
                                                     ("filters", {"bogus": ["x"]})]), timeout=10)
    assert st == 400, body
    assert "bogus" in err_message(body)


@pytest.mark.parametrize("which", ALL_CLIS)
def test_events_cli(daemon, cleanup, which):
    n, iid, t0, t1 = make_history(daemon)
    cleanup.append(iid)
    since, until = ts(t0), ts(t1 + 0.001)
    p = cli(daemon, which, "events", "--since", since, "--until", until, "--filter",
            f"image={iid}", timeout=30)
    lines = p.out.splitlines()
    pat = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}[Z+-][\d:]*) image (\w+) "
                     r"(sha256:[0-9a-f]{64}) \((.*)\)$")
    parsed = []
    for l in lines:
        m = pat.match(l)
        assert m, f"unexpected events line: {l!r}\n{p.out}"
        parsed.append(m.groups())
    assert [x[1] for x in parsed if x[1] in ("import", "save", "delete", "load")] == \
        ["import", "save", "delete", "load"]
    assert all(x[2] == iid for x in parsed)
    assert f"name={n}:2" in [x[3] for x in parsed if x[1] == "tag"]
    # JSON format and an event filter
    p = cli(daemon, which, "events", "--since", since, "--until", until, "--filter",
            f"image={iid}", "--filter", "event=tag", "--format", "{{json .}}", timeout=30)
    evs = [json.loads(l) for l in p.out.splitlines()]
    assert evs and all(e["Action"] == "tag" and e["Actor"]["ID"] == iid for e in evs)
    # template fields
    p = cli(daemon, which, "events", "--since", since, "--until", until, "--filter",
            f"image={iid}", "--filter", "event=delete", "--format",
            "{{.Type}} {{.Action}} {{.Actor.ID}}", timeout=30)
    assert p.out.strip() == f"image delete {iid}"


@pytest.mark.parametrize("which", ALL_CLIS)
def test_events_cli_rfc3339_and_relative(daemon, cleanup, which):
    n = uniq("rfc")
    a = import_image(daemon, small_tar(), repo=n)
    cleanup.append(a)
    daemon.api("POST", f"/images/{a}/tag?repo={n}&tag=z")
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    p = cli(daemon, which, "events", "--since", "30s", "--until", end, "--filter",
            f"image={a}", "--filter", "event=tag", "--format", "{{.Actor.Attributes.name}}",
            timeout=30)
    assert f"{n}:z" in p.out.split()


def test_events_docker_py(daemon, cleanup):
    n, iid, t0, t1 = make_history(daemon)
    cleanup.append(iid)
    c = daemon.client()
    try:
        evs = list(c.events(since=t0, until=t1 + 1, filters={"image": iid}, decode=True))
        acts = [e["Action"] for e in evs]
        assert {"import", "tag", "untag", "delete", "save", "load"} <= set(acts), acts
    finally:
        c.close()
