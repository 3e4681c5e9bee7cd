"""Attributes, filtered search and payloads on `adanns cluster serve`: the same requests to three shards and to
`adanns serve` get the same answers (sharded flat == single node exactly, checked against brute force over a
plain evaluator of the grammar too), payloads come from the shard that owns each id, a field whose values all
live on one shard filters on every shard, bad filters and attributes are the same 422s, and the attributes
survive a redeploy (each shard recovers them from its own log)."""

from __future__ import annotations

import io
import json
import urllib.parse

import numpy as np
import pytest

from _cluster import ClusterServer
from _server import Server
from test_server_filters import DIM, assert_exact_top_k, columns, matches, random_filter, random_payloads

pytestmark = pytest.mark.cluster
SHARDS = 3


def _both(single, cluster, method: str, url: str, **kw) -> tuple:
    """(status, JSON body) from the single node and from the cluster."""
    a, b = single.request(method, url, **kw), cluster.request(method, url, **kw)
    return (a.status_code, a.json()), (b.status_code, b.json())


def _same(single, cluster, method: str, url: str, **kw):
    """The same status and body, except that a cluster's MFLOPs are a sum over shards: equal up to rounding."""
    want, got = _both(single, cluster, method, url, **kw)
    if isinstance(got[1], dict) and isinstance(want[1], dict) and "mflops" in got[1] and "mflops" in want[1]:
        np.testing.assert_allclose(got[1]["mflops"], want[1]["mflops"], rtol=0.02)  # as in the loop below
        got_rest = {key: v for key, v in got[1].items() if key != "mflops"}
        want_rest = {key: v for key, v in want[1].items() if key != "mflops"}
        assert (got[0], got_rest) == (want[0], want_rest), (url, kw.get("json"), got, want)
    else:
        assert got == want, (url, kw.get("json"), got, want)
    return got


def _write_everything(c, x: np.ndarray, rows: list[dict]) -> None:
    """The three ways of writing attributes: JSON columns, per-vector payloads, x-npy followed by JSON."""
    n = len(x)
    a, b = n // 3, 2 * n // 3
    assert c.put("/indexes/f", json={"dim": DIM, "metric": "cosine", "kind": "flat",
                                     "attributes": {"price": "float"}}).status_code == 201
    r = c.post("/indexes/f/vectors", json={"ids": list(range(a)), "vectors": x[:a].tolist(),
                                           "attributes": columns(rows[:a])})
    assert r.status_code == 200, r.text
    r = c.post("/indexes/f/vectors", json={"ids": list(range(a, b)), "vectors": x[a:b].tolist(),
                                           "payload": rows[a:b]})
    assert r.status_code == 200, r.text
    buf = io.BytesIO()
    np.save(buf, x[b:])
    np.save(buf, np.arange(b, n))
    r = c.post("/indexes/f/vectors", content=buf.getvalue() + json.dumps({"payload": rows[b:]}).encode(),
               headers={"content-type": "application/x-npy"})
    assert r.status_code == 200, r.text


def test_filtered_searches_and_payloads_on_shards_equal_one_node_and_survive_a_redeploy(ray_cluster, tmp_path, rng):
    from adanns.cluster.sharding import shard_of

    n, k = 450, 10
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    q = rng.standard_normal((5, DIM)).astype(np.float32)
    rows = random_payloads(rng, n)
    data = tmp_path / "cluster"
    cluster = ClusterServer(data, shards=SHARDS)
    with Server(tmp_path / "single") as single, single.client() as s, cluster.client() as c:
        for client in (s, c):
            _write_everything(client, x, rows)
        # A field whose only value lives on one shard: the other shards filter on it too (no "unknown field").
        solo = 10 + int(np.flatnonzero(shard_of(np.arange(10, n), SHARDS) == 2)[0])  # not one rewritten below
        rows[solo] = {**rows[solo], "solo": 7}
        body = {"ids": [solo], "vectors": [x[solo].tolist()], "payload": [rows[solo]]}
        _same(s, c, "POST", "/indexes/f/vectors", json=body)
        want, got = _both(s, c, "GET", "/indexes/f")
        assert got[1]["attributes"] == want[1]["attributes"] == {"lang": "keyword", "year": "int", "price": "float",
                                                                 "stock": "bool", "solo": "int"}
        assert {**got[1], "bytes": 0} == {**want[1], "bytes": 0}  # per-shard bookkeeping differs
        filters = [{}, {"must": [{"key": "solo", "range": {"gte": 7}}]}] + [random_filter(rng, n) for _ in range(10)]
        answers = []
        for i, expr in enumerate(filters):
            want, got = _both(s, c, "POST", "/indexes/f/search",
                              json={"vectors": q.tolist(), "k": k, "filter": expr, "with_payload": i % 2 == 0})
            assert got[0] == want[0] == 200, (got, want)
            ids = [h["ids"] for h in got[1]["results"]]
            assert ids == [h["ids"] for h in want[1]["results"]], expr
            np.testing.assert_allclose([[np.nan if v is None else v for v in h["scores"]] for h in got[1]["results"]],
                                       [[np.nan if v is None else v for v in h["scores"]] for h in want[1]["results"]],
                                       rtol=1e-6)
            np.testing.assert_allclose(got[1]["mflops"], want[1]["mflops"], rtol=0.02)
            allowed = np.array([j for j in range(n) if matches(expr, j, rows[j])], np.int64)
            assert_exact_top_k(x, q, allowed, ids, k)
            if i % 2 == 0:
                for hits, want_hits in zip(got[1]["results"], want[1]["results"]):
                    assert hits["payloads"] == want_hits["payloads"] == [
                        rows[j] if j >= 0 else None for j in hits["ids"]]
            answers.append(got)
        assert answers[1][1]["results"][0]["ids"][:2] == [solo, -1]
        # x-npy queries with the filter in the query string
        buf = io.BytesIO()
        np.save(buf, q[:2])
        qs = urllib.parse.urlencode({"k": 4, "filter": json.dumps(filters[2])})
        _same(s, c, "POST", f"/indexes/f/search?{qs}", content=buf.getvalue(),
              headers={"content-type": "application/x-npy"})
        # payloads by id, from the owning shard; an upsert without attributes clears them; removal drops them
        for j in [*rng.choice(n, 12, replace=False).tolist(), solo]:
            assert _same(s, c, "GET", f"/indexes/f/vectors/{j}") == (200, {"id": j, "payload": rows[j]})
        _same(s, c, "GET", f"/indexes/f/vectors/{n + 5}")  # 404
        _same(s, c, "POST", "/indexes/f/vectors", json={"ids": [1, 2], "vectors": x[1:3].tolist(),
                                                         "payload": [None, {"year": 1}]})
        rows[1], rows[2] = {}, {"year": 1}
        _same(s, c, "POST", "/indexes/f/vectors", json={"vectors": x[:2].tolist(), "payload": [{"year": 5}, None]})
        _same(s, c, "DELETE", "/indexes/f/vectors", json={"ids": [n + 1]})
        for j in (1, 2, n, n + 1):
            _same(s, c, "GET", f"/indexes/f/vectors/{j}")
        expr = {"must": [{"key": "year", "range": {"lte": 5}}]}
        before = _same(s, c, "POST", "/indexes/f/search", json={"vectors": q.tolist(), "k": k, "filter": expr,
                                                                "with_payload": True})
        described = c.get("/indexes/f").json()
    # Each shard recovers its rows' attributes from its own log; the field of one shard still filters everywhere.
    cluster = ClusterServer(data, shards=SHARDS)
    with cluster.client() as c:
        assert c.get("/indexes/f").json() == described
        r = c.post("/indexes/f/search", json={"vectors": q.tolist(), "k": k, "filter": expr, "with_payload": True})
        assert (r.status_code, r.json()) == before
        r = c.post("/indexes/f/search", json={"vectors": q.tolist(), "k": k, "filter": filters[1]})
        assert [h["ids"] for h in r.json()["results"]] == [h["ids"] for h in answers[1][1]["results"]]
        assert c.get(f"/indexes/f/vectors/{solo}").json() == {"id": solo, "payload": rows[solo]}


def test_bad_filters_and_attributes_are_the_same_422s_on_the_cluster_and_change_nothing(ray_cluster, tmp_path,
                                                                                         rng):
    n = 40
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    rows = random_payloads(rng, n)
    cluster = ClusterServer(tmp_path / "cluster", shards=SHARDS)
    with Server(tmp_path / "single") as single, single.client() as s, cluster.client() as c:
        spec = {"dim": DIM, "kind": "flat", "attributes": {"lang": "keyword"}}
        assert _same(s, c, "PUT", "/indexes/z", json=spec)[0] == 201
        assert _same(s, c, "PUT", "/indexes/z", json=spec)[0] == 200
        assert _same(s, c, "PUT", "/indexes/z", json={**spec, "attributes": {"lang": "int"}})[0] == 409
        _same(s, c, "POST", "/indexes/z/vectors", json={"ids": list(range(n)), "vectors": x.tolist(), "payload": rows})
        before = _same(s, c, "POST", "/indexes/z/search", json={"vectors": x[:3].tolist(), "k": 5,
                                                                "with_payload": True})
        for expr in [{"must": [{"key": "yeer", "range": {"gte": 1}}]},
                     {"must": [{"key": "year", "match": {"value": "2020"}}]},
                     {"must": {"key": "lang"}}, {"must": [{"has_id": ["7"]}]}]:
            assert _same(s, c, "POST", "/indexes/z/search", json={"vector": x[0].tolist(), "filter": expr})[0] == 422
        # Every row of a write is checked before any shard is written (the ids span the shards).
        for body in [{"payload": [{"year": 1}, {"year": "old"}, {}]}, {"payload": [{"lang": 5}, {}, {}]},
                     {"attributes": {"new": [None, None, None]}}, {"attributes": {"year": [1, 2]}},
                     {"payload": [{"price": 1}, {"price": "x"}, {}]}]:
            r = _same(s, c, "POST", "/indexes/z/vectors", json={"ids": [0, 1, 2], "vectors": x[5:8].tolist(), **body})
            assert r[0] == 422, r
        r = c.post("/indexes/z/search", json={"vector": x[0].tolist(), "with_payload": True},
                   headers={"accept": "application/x-npz"})
        assert r.status_code == 422 and "with_payload answers JSON" in r.json()["detail"]
        assert _same(s, c, "POST", "/indexes/z/search", json={"vectors": x[:3].tolist(), "k": 5,
                                                              "with_payload": True}) == before
        assert _same(s, c, "GET", "/indexes/z")[1]["count"] == n
        # A graph refuses to search while empty, and most of these shards are: they add no hits, not a 422.
        _same(s, c, "PUT", "/indexes/g", json={"dim": DIM, "kind": "graph"})
        assert _same(s, c, "POST", "/indexes/g/search", json={"vector": x[0].tolist()})[0] == 422
        _same(s, c, "POST", "/indexes/g/vectors", json={"ids": [0], "vectors": [x[0].tolist()],
                                                         "payload": [{"year": 3}]})
        for body in [{}, {"with_payload": True}, {"filter": {"must": [{"key": "year", "range": {"gte": 3}}]}},
                     {"filter": {"must": [{"key": "yeer", "range": {"gte": 3}}]}}]:
            _same(s, c, "POST", "/indexes/g/search", json={"vector": x[0].tolist(), **body})
        _same(s, c, "GET", "/indexes/g/vectors/0")
