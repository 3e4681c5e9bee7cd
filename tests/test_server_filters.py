"""Attributes (payloads) and filtered search through the REST service: filtered results equal the Python
API's and an independent reference (a plain evaluator of the grammar + float64 brute force); payloads
round-trip (JSON columns, per-vector payloads, x-npy bodies, upserts); acknowledged attributes survive
kill -9 and restarts, in the exact buffer and after training; bad filters and bad attributes are 422s
that change nothing."""

from __future__ import annotations

import io
import json
import urllib.parse

import numpy as np
import pytest

import adanns
from adanns.server.wal import LogCorrupt, Op, Record, encode, read

from _server import Server

DIM = 16
LANGS = ["en", "fr", "de", "es", "it", "nl", "pt", "sv"]


# ---------------------------------------------------------------------------------------- references
def random_payloads(rng, n: int) -> list[dict]:
    """Realistic rows: a Zipf-like keyword (sometimes several values), a uniform year, a float price, a
    bool, and missing values."""
    zipf = 1 / np.arange(1, len(LANGS) + 1)
    rows = []
    for _ in range(n):
        row = {}
        if rng.random() < 0.95:
            k = 1 + int(rng.random() < 0.2)
            row["lang"] = [str(s) for s in rng.choice(LANGS, size=k, replace=False, p=zipf / zipf.sum())]
        if rng.random() < 0.9:
            row["year"] = int(rng.integers(1990, 2025))
        if rng.random() < 0.9:
            row["price"] = float(np.round(rng.uniform(0, 100), 2))
        row["stock"] = bool(rng.random() < 0.5)
        rows.append(row)
    return rows


def columns(rows: list[dict], fields=("lang", "year", "price", "stock")) -> dict:
    return {f: [r.get(f) for r in rows] for f in fields}


def matches(expr: dict, id_: int, row: dict) -> bool:
    """The filter grammar evaluated on one row, written independently of adanns.filters."""
    groups = [g for g in ("must", "should", "must_not") if g in expr]
    if groups:
        ok = all(matches(c, id_, row) for c in expr.get("must", []))
        if expr.get("should"):
            ok = ok and any(matches(c, id_, row) for c in expr["should"])
        return ok and not any(matches(c, id_, row) for c in expr.get("must_not", []))
    if not expr:
        return True
    if "has_id" in expr:
        return id_ in expr["has_id"]
    value = row.get(expr["key"])
    if value is None:
        return False
    if "match" in expr:
        wanted = [expr["match"]["value"]] if "value" in expr["match"] else expr["match"]["any"]
        have = value if isinstance(value, list) else [value]
        return any(w == h and type(w) is type(h) for w in wanted for h in have)
    r = expr["range"]
    return (("gt" not in r or value > r["gt"]) and ("gte" not in r or value >= r["gte"])
            and ("lt" not in r or value < r["lt"]) and ("lte" not in r or value <= r["lte"]))


def random_filter(rng, n: int, depth: int = 0) -> dict:
    """A random expression: leaves of every kind, groups nested up to two levels."""
    def leaf():
        kind = rng.integers(0, 6)
        if kind == 0:
            return {"key": "lang", "match": {"value": str(rng.choice(LANGS))}}
        if kind == 1:
            return {"key": "lang", "match": {"any": [str(s) for s in rng.choice(LANGS, size=2, replace=False)]}}
        if kind == 2:
            lo = int(rng.integers(1990, 2025))
            return {"key": "year", "range": {"gte": lo, "lt": lo + int(rng.integers(1, 12))}}
        if kind == 3:
            return {"key": "price", "range": {"lte": float(rng.uniform(0, 100))}}
        if kind == 4:
            return {"key": "stock", "match": {"value": bool(rng.random() < 0.5)}}
        return {"has_id": [int(i) for i in rng.choice(n, size=int(rng.integers(1, 40)), replace=False)]}

    def cond():
        return random_filter(rng, n, depth + 1) if depth < 2 and rng.random() < 0.3 else leaf()

    expr = {}
    for group in ("must", "should", "must_not"):
        if rng.random() < (0.8 if group == "must" else 0.35):
            expr[group] = [cond() for _ in range(int(rng.integers(1, 3)))]
    return expr


def assert_exact_top_k(x: np.ndarray, q: np.ndarray, allowed: np.ndarray, got: list[list[int]], k: int) -> None:
    """``got`` holds, per query, the exact cosine top-k among the allowed ids (float64 brute force; equal
    scores within float32 rounding may come in either order), then -1 padding."""
    xn = x.astype(np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q.astype(np.float64) / np.linalg.norm(q, axis=1, keepdims=True)
    for row, ids in zip(qn, got):
        m = min(k, len(allowed))
        assert ids[m:] == [-1] * (k - m) and -1 not in ids[:m] and len(set(ids[:m])) == m
        assert set(ids[:m]) <= set(allowed.tolist())
        want = np.sort(xn[allowed] @ row)[::-1][:m]
        np.testing.assert_allclose(xn[ids[:m]] @ row, want, atol=1e-5)


def search(c, name: str, q: np.ndarray, k: int, **body) -> dict:
    r = c.post(f"/indexes/{name}/search", json={"vectors": q.tolist(), "k": k, **body})
    assert r.status_code == 200, r.text
    return r.json()


# ---------------------------------------------------------------------------------------- results
@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_filtered_rest_results_equal_the_python_api_and_brute_force(tmp_path, rng, kind):
    n, train, k, nlist = 600, 200, 10, 8
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    q = rng.standard_normal((6, DIM)).astype(np.float32)
    rows = random_payloads(rng, n)
    params = {"nlist": nlist, "train_size": train, "seed": 3} if kind == "ivf" else {}
    if kind == "ivf":
        api = adanns.IVFIndex(DIM, nlist=nlist, metric="cosine", seed=3)
        api.train(x[:train])  # the service trains on its buffer: the first `train` vectors
    else:
        api = adanns.FlatIndex(DIM, metric="cosine")
    api.declare("price", "float")
    with Server(tmp_path / "d") as server, server.client() as c:
        assert c.put("/indexes/f", json={"dim": DIM, "kind": kind, "params": params,
                                         "attributes": {"price": "float"}}).status_code == 201
        for a, b in [(0, train), (train, n)]:  # columns first, then per-vector payloads
            body = {"ids": list(range(a, b)), "vectors": x[a:b].tolist()}
            body.update({"attributes": columns(rows[a:b])} if a == 0 else {"payload": rows[a:b]})
            assert c.post("/indexes/f/vectors", json=body).status_code == 200
            api.add(x[a:b], np.arange(a, b), attributes=columns(rows[a:b]))
        assert c.get("/indexes/f").json()["attributes"] == {"lang": "keyword", "year": "int", "price": "float",
                                                            "stock": "bool"}
        knobs = {"nprobe": nlist} if kind == "ivf" else {}  # every list: exact, comparable with brute force
        shown = 0
        for trial in range(12):
            expr = random_filter(rng, n) if trial else {}
            allowed = np.array([i for i in range(n) if matches(expr, i, rows[i])], np.int64)
            got = search(c, "f", q, k, filter=expr, **knobs)
            want = api.search(q, k=k, filter=expr, **knobs)
            ids = [h["ids"] for h in got["results"]]
            assert ids == want.ids.tolist(), expr
            np.testing.assert_allclose([[s if s is not None else -np.inf for s in h["scores"]]
                                        for h in got["results"]], want.scores, rtol=1e-6)
            assert_exact_top_k(x, q, allowed, ids, k)
            shown += len(allowed) < n
        assert shown >= 6  # most random filters really filtered
        if kind == "ivf":  # the scan plan with fewer probes: the same as the Python API's, k results when k match
            expr = {"must": [{"key": "stock", "match": {"value": True}}]}
            got = search(c, "f", q, k, filter=expr, nprobe=2)
            assert [h["ids"] for h in got["results"]] == api.search(q, k=k, filter=expr, nprobe=2).ids.tolist()
            assert all(-1 not in h["ids"] for h in got["results"])


def test_filtered_search_before_training_is_exact(tmp_path, rng):
    n, k = 150, 7
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    q = rng.standard_normal((4, DIM)).astype(np.float32)
    rows = random_payloads(rng, n)
    with Server(tmp_path / "d") as server, server.client() as c:
        c.put("/indexes/b", json={"dim": DIM, "kind": "ivf", "params": {"nlist": 16, "train_size": 1000}})
        c.post("/indexes/b/vectors", json={"ids": list(range(n)), "vectors": x.tolist(), "payload": rows})
        assert c.get("/indexes/b").json()["trained"] is False
        for _ in range(8):
            expr = random_filter(rng, n)
            allowed = np.array([i for i in range(n) if matches(expr, i, rows[i])], np.int64)
            got = search(c, "b", q, k, filter=expr, with_payload=True)
            assert_exact_top_k(x, q, allowed, [h["ids"] for h in got["results"]], k)
            for hits in got["results"]:
                assert hits["payloads"] == [rows[i] if i >= 0 else None for i in hits["ids"]]


# ---------------------------------------------------------------------------------------- payloads
def test_payloads_round_trip_and_upserts_replace_them(tmp_path, rng):
    n = 60
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    rows = random_payloads(rng, n)
    with Server(tmp_path / "d") as server, server.client() as c:
        c.put("/indexes/p", json={"dim": DIM, "kind": "flat"})
        c.post("/indexes/p/vectors", json={"ids": list(range(40)), "vectors": x[:40].tolist(), "payload": rows[:40]})
        # x-npy: vectors, ids, then the attributes as a JSON object
        buf = io.BytesIO()
        np.save(buf, x[40:])
        np.save(buf, np.arange(40, n))
        extra = json.dumps({"attributes": columns(rows[40:])}).encode()
        r = c.post("/indexes/p/vectors", content=buf.getvalue() + extra, headers={"content-type": "application/x-npy"})
        assert r.status_code == 200, r.text
        for bad in (np.float32(1.0), x[0]):  # 0-d and 1-d vectors, with attributes after them
            buf = io.BytesIO()
            np.save(buf, bad)
            r = c.post("/indexes/p/vectors", content=buf.getvalue() + b'{"payload": [{}]}',
                       headers={"content-type": "application/x-npy"})
            assert r.status_code == 422 and "2-D" in r.json()["detail"], r.text
        for i in rng.choice(n, 15, replace=False).tolist():
            assert c.get(f"/indexes/p/vectors/{i}").json() == {"id": i, "payload": rows[i]}
        got = search(c, "p", x[:5], n, with_payload=True)
        for hits in got["results"]:
            assert hits["payloads"] == [rows[i] for i in hits["ids"]]
        # an upsert replaces the payload of its ids (and of none other); without attributes they have none
        c.post("/indexes/p/vectors", json={"ids": [3, 4], "vectors": x[3:5].tolist(),
                                           "payload": [{"lang": "zz", "year": 1}, None]})
        assert c.get("/indexes/p/vectors/3").json()["payload"] == {"lang": ["zz"], "year": 1}
        assert c.get("/indexes/p/vectors/4").json()["payload"] == {}
        c.post("/indexes/p/vectors", json={"ids": [5], "vectors": x[5:6].tolist()})
        assert c.get("/indexes/p/vectors/5").json()["payload"] == {}
        assert c.get("/indexes/p/vectors/6").json()["payload"] == rows[6]
        hit = search(c, "p", x[3:4], 5, filter={"must": [{"key": "lang", "match": {"value": "zz"}}]})
        assert hit["results"][0]["ids"] == [3, -1, -1, -1, -1]
        # default ids get their payloads too; removal drops them
        r = c.post("/indexes/p/vectors", json={"vectors": x[:2].tolist(), "payload": [{"year": 7}, {"year": 8}]})
        assert r.json()["ids"] == [n, n + 1]
        assert c.get(f"/indexes/p/vectors/{n + 1}").json()["payload"] == {"year": 8}
        c.request("DELETE", "/indexes/p/vectors", json={"ids": [n]})
        assert c.get(f"/indexes/p/vectors/{n}").status_code == 404
        # x-npy search: the filter as JSON in the query string
        buf = io.BytesIO()
        np.save(buf, x[:2])
        expr = {"must": [{"key": "year", "range": {"gte": 2000}}]}
        qs = urllib.parse.urlencode({"k": 4, "filter": json.dumps(expr)})
        r = c.post(f"/indexes/p/search?{qs}", content=buf.getvalue(), headers={"content-type": "application/x-npy"})
        assert r.status_code == 200, r.text
        assert r.json()["results"] == search(c, "p", x[:2], 4, filter=expr)["results"]


# ---------------------------------------------------------------------------------------- durability
def test_acknowledged_attributes_survive_kill_9_and_restarts(tmp_path, rng):
    """Writes with attributes, snapshots every 4 writes, training at 100 vectors; kill -9, restart, compare
    every payload and filtered results with what was acknowledged; then a clean restart keeps them."""
    n, batch = 260, 20
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    rows = random_payloads(rng, n)
    data = tmp_path / "data"
    held = {}
    server = Server(data, extra_args=["--snapshot-every", "4"]).start()
    with server.client() as c:
        c.put("/indexes/t", json={"dim": DIM, "kind": "ivf", "params": {"nlist": 4, "train_size": 100}})
        c.put("/indexes/u", json={"dim": DIM, "kind": "ivf", "params": {"nlist": 4, "train_size": 10_000},
                                  "attributes": {"year": "float"}})  # stays in its exact buffer
        for a in range(0, n, batch):
            ids = list(range(a, a + batch))
            for name in ("t", "u"):
                r = c.post(f"/indexes/{name}/vectors", json={"ids": ids, "vectors": x[ids].tolist(),
                                                             "payload": rows[a:a + batch]})
                assert r.status_code == 200, r.text
            held.update(zip(ids, rows[a:a + batch]))
        # 13 writes so far, snapshots after the 4th, 8th and 12th: the log alone holds the 13th to the 15th
        for i in (5, 150):
            rows[i] = {"lang": ["xx"], "year": 2030}
            for name in ("t", "u"):
                c.post(f"/indexes/{name}/vectors", json={"ids": [i], "vectors": x[i:i + 1].tolist(),
                                                         "attributes": columns([rows[i]], ("lang", "year"))})
        assert c.get("/indexes/t").json()["trained"] is True
    server.kill()
    assert any(p.name == "attributes.json" for p in (data / "u").glob("snapshot-*/*"))
    assert all(len(read(data / name / "wal.log")) == 3 for name in ("t", "u"))

    def check(c):
        for name in ("t", "u"):
            info = c.get(f"/indexes/{name}").json()
            assert info["count"] == n and info["attributes"]["year"] == ("int" if name == "t" else "float")
            got = search(c, name, x[:n], 1, with_payload=True, nprobe=4 if name == "t" else None)
            assert [h["ids"][0] for h in got["results"]] == list(range(n))
            for i, hits in enumerate(got["results"]):
                want = dict(rows[i])
                if name == "u" and "year" in want:
                    want["year"] = float(want["year"])
                assert hits["payloads"][0] == want, (name, i)
            expr = {"must": [{"key": "lang", "match": {"value": "xx"}}]}
            assert sorted(search(c, name, x[:1], 5, filter=expr)["results"][0]["ids"]) == [-1, -1, -1, 5, 150]

    for _ in range(2):  # after the crash (snapshot + log replay), then after a clean shutdown (fresh snapshot)
        with Server(data) as again, again.client() as c:
            check(c)


# ---------------------------------------------------------------------------------------- refusals
def test_bad_filters_and_bad_attributes_are_422s_that_change_nothing(tmp_path, rng):
    n = 50
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    rows = random_payloads(rng, n)
    data = tmp_path / "d"
    with Server(data) as server, server.client() as c:
        c.put("/indexes/z", json={"dim": DIM, "kind": "ivf", "params": {"nlist": 2, "train_size": 20}})
        c.post("/indexes/z/vectors", json={"ids": list(range(n)), "vectors": x.tolist(), "payload": rows})
        before = search(c, "z", x[:3], 5, with_payload=True)
        log_size = (data / "z" / "wal.log").stat().st_size
        q = x[0].tolist()
        for expr, words in [
            ({"must": [{"key": "yeer", "range": {"gte": 1}}]}, "filter.must[0]: unknown field 'yeer'"),
            ({"must": [{"key": "year", "match": {"value": "2020"}}]}, "field 'year' is int"),
            ({"must": [{"key": "lang", "range": {"gte": 1}}]}, "range needs an int or float field"),
            ({"must": {"key": "lang"}}, "filter.must must be a list"),
            ({"should": [{"key": "lang", "match": {"valeu": "en"}}]}, "filter.should[0]: match must be"),
            ({"must": [{"key": "year", "range": {"gte": 10 ** 400}}]}, "range.gte"),
            ({"must": [{"has_id": ["7"]}]}, "has_id must be a list of integer ids"),
            ({"must": [{"must": [{"must": []}]}] * 2}, None),  # fine: nested and empty
        ]:
            r = c.post("/indexes/z/search", json={"vector": q, "k": 3, "filter": expr})
            if words is None:
                assert r.status_code == 200, r.text
                continue
            assert r.status_code == 422, (expr, r.text)
            assert words in r.json()["detail"], r.json()
        deep = {}
        for _ in range(100):
            deep = {"must": [deep]}
        r = c.post("/indexes/z/search", json={"vector": q, "k": 3, "filter": deep})
        assert r.status_code == 422 and "levels deep" in r.json()["detail"]
        for body, words in [
            ({"payload": [{"year": "old"}]}, "attributes: attribute 'year' row 0: int field takes numbers"),
            ({"payload": [{"lang": 5}]}, "keyword values must be a string or a list of strings"),
            ({"payload": [{"price": 10 ** 400}]}, "attributes"),
            ({"attributes": {"year": [1, 2]}}, "has 2 values for 1 vectors"),
            ({"attributes": {"new": [None]}}, "cannot infer a field type"),
            ({"attributes": {"year": [1]}, "payload": [{}]}, "not both"),
            ({"payload": [{}, {}]}, "payload has 2 entries for 1 vectors"),
            ({"payload": [{"price": float("inf")}]}, ""),
        ]:
            r = c.post("/indexes/z/vectors", content=json.dumps({"ids": [0], "vectors": [x[1].tolist()], **body}),
                       headers={"content-type": "application/json"})
            assert r.status_code == 422, (body, r.text)
            assert words in r.json()["detail"], r.json()
        assert (data / "z" / "wal.log").stat().st_size == log_size  # nothing was logged
        assert search(c, "z", x[:3], 5, with_payload=True) == before
        assert c.get("/indexes/z").json()["count"] == n
        r = c.post("/indexes/z/search", json={"vector": q, "k": 3, "with_payload": True},
                   headers={"accept": "application/x-npz"})
        assert r.status_code == 422 and "with_payload answers JSON" in r.json()["detail"]
        # the graph kind takes attributes and filters too (every servable kind does)
        assert c.put("/indexes/g", json={"dim": DIM, "kind": "graph", "attributes": {"a": "int"}}).status_code == 201
        r = c.post("/indexes/g/vectors", json={"ids": [0, 1], "vectors": [q, q], "payload": [{"a": 1}, {"a": 2}]})
        assert r.status_code == 200, r.text
        r = c.post("/indexes/g/search", json={"vector": q, "k": 2, "filter": {"must": [{"key": "a", "match":
                                                                                            {"value": 2}}]},
                                              "with_payload": True})
        assert r.status_code == 200, r.text
        hit = r.json()["results"][0]
        assert [i for i in hit["ids"] if i >= 0] == [1] and hit["payloads"][0] == {"a": 2}
        assert c.get("/indexes/g/vectors/0").json() == {"id": 0, "payload": {"a": 1}}
        r = c.put("/indexes/d", json={"dim": DIM, "kind": "flat", "attributes": {"a": "text"}})
        assert r.status_code == 422


def test_redeclaring_at_creation_is_idempotent_and_a_different_declaration_conflicts(tmp_path):
    with Server(tmp_path / "d") as server, server.client() as c:
        spec = {"dim": DIM, "kind": "flat", "attributes": {"lang": "keyword"}}
        assert c.put("/indexes/r", json=spec).status_code == 201
        assert c.put("/indexes/r", json=spec).status_code == 200
        assert c.put("/indexes/r", json={**spec, "attributes": {"lang": "int"}}).status_code == 409
        r = c.post("/indexes/r/vectors", json={"ids": [0], "vectors": [[1.0] * DIM], "payload": [{"lang": 3}]})
        assert r.status_code == 422  # declared keyword, not inferred from the 3


def test_openapi_documents_filters_and_payloads(tmp_path):
    with Server(tmp_path / "d") as server, server.client() as c:
        schema = c.get("/openapi.json").json()
    search_body = schema["paths"]["/indexes/{name}/search"]["post"]["requestBody"]["content"]["application/json"]
    props = search_body["schema"]["properties"]
    assert "filter" in props and "must_not" in props["filter"]["description"] and "with_payload" in props
    assert "/indexes/{name}/vectors/{id}" in schema["paths"]
    upsert = schema["paths"]["/indexes/{name}/vectors"]["post"]["requestBody"]["content"]["application/json"]
    assert {"attributes", "payload"} <= set(upsert["schema"]["properties"])


# ---------------------------------------------------------------------------------------- the log
def test_log_records_carry_attributes_and_old_records_read_unchanged(tmp_path):
    ids = np.array([4, 9], np.int64)
    vectors = np.ones((2, 3), np.float32)
    attrs = {"types": {"lang": "keyword"}, "columns": {"lang": [["en"], None]}}
    path = tmp_path / "wal.log"
    path.write_bytes(encode(Record(Op.UPSERT, 1, ids, vectors)) + encode(Record(Op.UPSERT, 2, ids, vectors,
                                                                                 attributes=attrs)))
    first, second = read(path)
    assert first.attributes is None and second.attributes == attrs and second.op == Op.UPSERT
    assert np.array_equal(second.ids, ids) and np.array_equal(second.vectors, vectors)
    # damage before an intact record with attributes is corruption (found by the resync scan), not a torn tail
    frames = [encode(Record(Op.UPSERT, s, ids, vectors, attributes=attrs)) for s in (1, 2)]
    broken = bytearray(frames[0])
    broken[-3] ^= 0xFF
    path.write_bytes(bytes(broken) + frames[1])
    with pytest.raises(LogCorrupt, match="intact records follow"):
        read(path)


def test_repair_and_replay_keep_the_attributes_of_intact_records(tmp_path, rng):
    """In process: a flat collection with a snapshot and four logged upserts with attributes; a flipped
    byte in the second record fails the index, repair salvages the others with their attributes; a
    logged record whose attribute types clash with the index's cannot be applied: the index is failed."""
    from adanns.server.collection import Config
    from adanns.server.repair import repair
    from adanns.server.store import Store
    from adanns.server.wal import scan

    x = rng.standard_normal((50, DIM)).astype(np.float32)
    store = Store(tmp_path, snapshot_every=1000)
    c, _ = store.create("r", Config.resolve(DIM, "ip", "flat", {}, {"year": "int"}))
    c.upsert(np.arange(10), x[:10], {"year": list(range(10))})
    c._snapshot()
    for b in range(1, 5):
        ids = np.arange(10 * b, 10 * b + 10)
        c.upsert(ids, x[ids], {"year": ids.tolist(), "tag": [f"t{b}"] * 10})
    c._wal.close()  # no close(): it would snapshot and empty the log
    log = tmp_path / "r" / "wal.log"
    data = bytearray(log.read_bytes())
    second = scan(bytes(data))[0][1]
    data[second.offset + 30] ^= 0xFF
    log.write_bytes(bytes(data))
    assert Store(tmp_path).get("r").state == "failed"
    assert any("skipped wal.log bytes" in line for line in repair(tmp_path / "r"))
    store = Store(tmp_path)
    c = store.get("r")
    kept = [i for i in range(50) if not 20 <= i < 30]
    assert sorted(c._ids) == kept
    for i in kept:
        assert c.payload(i) == ({"year": i} if i < 10 else {"year": i, "tag": [f"t{i // 10}"]})
    res = c.search(x[:1], k=50, threads=1, filter={"must": [{"key": "tag", "match": {"any": ["t2", "t4"]}}]})
    assert sorted(i for i in res.ids[0].tolist() if i >= 0) == list(range(40, 50))
    store.close()  # snapshots; the log is now empty

    # A record whose types clash with the index's (declared year int) is damage, not a silent conversion.
    clash = Record(Op.UPSERT, c._seq + 1, np.array([99], np.int64), x[:1],
                   attributes={"types": {"year": "keyword"}, "columns": {"year": [["a"]]}})
    with open(log, "ab") as f:
        f.write(encode(clash))
    failed = Store(tmp_path).get("r")
    assert failed.state == "failed" and "attribute types" in failed.reason, failed.reason


def test_declared_attributes_in_meta_json_are_checked(tmp_path):
    """meta.json carries the declarations; one of an unknown type (with a valid CRC) is damage, not a 500."""
    from adanns.server.collection import Config, _meta_crc
    from adanns.server.store import Store

    store = Store(tmp_path)
    store.create("m", Config.resolve(DIM, "ip", "flat", {}, {"lang": "keyword"}))
    store.close()
    path = tmp_path / "m" / "meta.json"
    meta = json.loads(path.read_text())
    assert meta["config"]["attributes"] == {"lang": "keyword"}
    meta["config"]["attributes"] = {"lang": "text"}
    body = {k: v for k, v in meta.items() if k != "crc32"}
    path.write_text(json.dumps({**body, "crc32": _meta_crc(body)}))
    c = Store(tmp_path).get("m")
    assert c.state == "failed" and "meta.json is malformed" in c.reason and "'text'" in c.reason, c.reason
