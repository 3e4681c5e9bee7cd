"""Bad input over HTTP: a JSON 4xx naming the problem, never a 500, and the index unchanged afterwards."""

from __future__ import annotations

import io

import numpy as np
import pytest

from _server import Server

DIM = 8
IDS = list(range(10))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # A small body limit so the 413 cases stay cheap.
    with Server(tmp_path_factory.mktemp("data"), api_key="key", extra_args=["--max-body-mb", "0.05"]) as s:
        with s.client() as c:
            x = np.random.default_rng(0).standard_normal((10, DIM)).astype(np.float32)
            assert c.put("/indexes/good", json={"dim": DIM, "kind": "flat"}).status_code == 201
            assert c.post("/indexes/good/vectors", json={"ids": IDS, "vectors": x.tolist()}).status_code == 200
        yield s


def npy(*arrays) -> bytes:
    buf = io.BytesIO()
    for a in arrays:
        np.save(buf, a)
    return buf.getvalue()


def snapshot_of(c):
    """What must not change: the description and the answer to a fixed search."""
    info = c.get("/indexes/good").json()
    hits = c.post("/indexes/good/search", json={"vector": [1.0] * DIM, "k": 10}).json()
    return info, hits, c.get("/indexes").json()


V = [0.5] * DIM
NPY = {"content-type": "application/x-npy"}
BIG = {"ids": list(range(2000)), "vectors": [V] * 2000}

# (case, method, path, kwargs, status, words the error must contain)
CASES = [
    ("unknown index: search", "POST", "/indexes/nope/search", dict(json={"vector": V}), 404, "nope"),
    ("unknown index: describe", "GET", "/indexes/nope", {}, 404, "nope"),
    ("unknown index: add", "POST", "/indexes/nope/vectors", dict(json={"ids": [1], "vectors": [V]}), 404, "nope"),
    ("unknown index: delete", "DELETE", "/indexes/nope", {}, 404, "nope"),
    ("unknown id: remove", "DELETE", "/indexes/good/vectors", dict(json={"ids": [3, 999]}), 404, "999"),
    ("add: dim mismatch", "POST", "/indexes/good/vectors", dict(json={"ids": [50], "vectors": [V[:5]]}), 422,
     "dimension 8"),
    ("add: ragged rows", "POST", "/indexes/good/vectors", dict(json={"ids": [50, 51], "vectors": [V, V[:7]]}), 422,
     "same length"),
    ("add: NaN", "POST", "/indexes/good/vectors",
     dict(content=b'{"ids": [50], "vectors": [[NaN, 1, 1, 1, 1, 1, 1, 1]]}', headers={"content-type": "application/json"}),
     422, "NaN"),
    ("add: infinity", "POST", "/indexes/good/vectors",
     dict(content=b'{"ids": [50], "vectors": [[Infinity, 1, 1, 1, 1, 1, 1, 1]]}'), 422, "infinity"),
    ("add: overflows float32", "POST", "/indexes/good/vectors", dict(json={"ids": [50], "vectors": [[1e39] * DIM]}),
     422, "float32"),
    ("add: string value", "POST", "/indexes/good/vectors", dict(json={"ids": [50], "vectors": [["a"] * DIM]}), 422,
     "vectors"),
    ("add: string id", "POST", "/indexes/good/vectors", dict(json={"ids": ["50"], "vectors": [V]}), 422, "ids"),
    ("add: negative id", "POST", "/indexes/good/vectors", dict(json={"ids": [-1], "vectors": [V]}), 422, "ids"),
    ("add: id beyond int64", "POST", "/indexes/good/vectors", dict(json={"ids": [2**63], "vectors": [V]}), 422, "ids"),
    ("add: duplicate ids", "POST", "/indexes/good/vectors", dict(json={"ids": [50, 50], "vectors": [V, V]}), 422,
     "unique"),
    ("add: ids/vectors count", "POST", "/indexes/good/vectors", dict(json={"ids": [50, 51], "vectors": [V]}), 422,
     "2 ids for 1 vectors"),
    ("add: empty batch", "POST", "/indexes/good/vectors", dict(json={"ids": [], "vectors": []}), 422, "ids"),
    ("add: missing field", "POST", "/indexes/good/vectors", dict(json={"ids": [50]}), 422, "vectors"),
    ("add: unknown field", "POST", "/indexes/good/vectors", dict(json={"ids": [1], "vectors": [V], "x": 1}), 422, "x"),
    ("add: invalid JSON", "POST", "/indexes/good/vectors", dict(content=b"{not json"), 422, "JSON"),
    ("add: npy of ints", "POST", "/indexes/good/vectors", dict(content=npy(np.ones((1, DIM), np.int32), np.array([50])),
                                                                headers=NPY), 422, "floating"),
    ("add: npy ids twice", "POST", "/indexes/good/vectors?ids=50",
     dict(content=npy(np.ones((1, DIM)), np.array([50])), headers=NPY), 422, "not both"),
    ("add: npy garbage", "POST", "/indexes/good/vectors", dict(content=b"\x93NUMPY garbage", headers=NPY), 422, ".npy"),
    ("add: npy NaN", "POST", "/indexes/good/vectors?ids=50", dict(content=npy(np.full((1, DIM), np.nan)), headers=NPY),
     422, "NaN"),
    ("add: npy bad ids param", "POST", "/indexes/good/vectors?ids=5x", dict(content=npy(np.ones((1, DIM))), headers=NPY),
     422, "ids"),
    ("add: unsupported type", "POST", "/indexes/good/vectors", dict(content=b"x", headers={"content-type": "text/csv"}),
     415, "content type"),
    ("search: unsupported type", "POST", "/indexes/good/search", dict(content=b"x", headers={"content-type": "text/csv"}),
     415, "content type"),
    ("add: body too large", "POST", "/indexes/good/vectors", dict(json=BIG), 413, "limit"),
    ("remove: empty", "DELETE", "/indexes/good/vectors", dict(json={"ids": []}), 422, "ids"),
    ("remove: wrong type", "DELETE", "/indexes/good/vectors", dict(json={"ids": "3"}), 422, "ids"),
    ("search: dim too long", "POST", "/indexes/good/search", dict(json={"vector": V + [1.0]}), 422, "exceeds"),
    ("search: NaN", "POST", "/indexes/good/search", 
     dict(content=b'{"vector": [NaN, 1]}', headers={"content-type": "application/json"}), 422, "NaN"),
    ("search: empty vector", "POST", "/indexes/good/search", dict(json={"vector": []}), 422, "vector"),
    ("search: empty batch", "POST", "/indexes/good/search", dict(json={"vectors": []}), 422, "vectors"),
    ("search: both vector and vectors", "POST", "/indexes/good/search", dict(json={"vector": V, "vectors": [V]}), 422,
     "exactly one"),
    ("search: neither", "POST", "/indexes/good/search", dict(json={"k": 3}), 422, "exactly one"),
    ("search: k = 0", "POST", "/indexes/good/search", dict(json={"vector": V, "k": 0}), 422, "k"),
    ("search: k > 10000", "POST", "/indexes/good/search", dict(json={"vector": V, "k": 10001}), 422, "k"),
    ("search: k as string", "POST", "/indexes/good/search", dict(json={"vector": V, "k": "5"}), 422, "k"),
    ("search: search_dim > query", "POST", "/indexes/good/search", dict(json={"vector": V[:4], "search_dim": 6}),
     422, "search_dim"),
    ("search: rerank_k < k", "POST", "/indexes/good/search", dict(json={"vector": V, "k": 5, "rerank_k": 2}), 422,
     "rerank_k"),
    ("search: nprobe on flat", "POST", "/indexes/good/search", dict(json={"vector": V, "nprobe": 2}), 422, "nprobe"),
    ("search: body too large", "POST", "/indexes/good/search", dict(json={"vectors": [V] * 2000}), 413, "limit"),
    ("create: bad name", "PUT", "/indexes/a.b", dict(json={"dim": 4}), 422, "name"),
    ("create: name too long", "PUT", "/indexes/" + "a" * 65, dict(json={"dim": 4}), 422, "name"),
    # An encoded '/' makes the path match no route at all; dots alone are refused by the name rule.
    ("create: traversal", "PUT", "/indexes/..%2Fescape", dict(json={"dim": 4}), 404, "not found"),
    ("create: dots", "PUT", "/indexes/...", dict(json={"dim": 4}), 422, "name"),
    ("create: dim 0", "PUT", "/indexes/new", dict(json={"dim": 0}), 422, "dim"),
    ("create: bad metric", "PUT", "/indexes/new", dict(json={"dim": 4, "metric": "hamming"}), 422, "metric"),
    ("create: bad kind", "PUT", "/indexes/new", dict(json={"dim": 4, "kind": "hnsw"}), 422, "kind"),
    ("create: unknown param", "PUT", "/indexes/new", dict(json={"dim": 4, "params": {"m": 1}}), 422, "m"),
    ("create: params on flat", "PUT", "/indexes/new", dict(json={"dim": 4, "kind": "flat", "params": {"nlist": 4}}),
     422, "flat"),
    ("create: cluster_dim > dim", "PUT", "/indexes/new", dict(json={"dim": 4, "params": {"cluster_dim": 8}}), 422,
     "cluster_dim"),
    ("create: train_size < nlist", "PUT", "/indexes/new",
     dict(json={"dim": 4, "params": {"nlist": 8, "train_size": 2}}), 422, "train_size"),
    ("create: conflicting config", "PUT", "/indexes/good", dict(json={"dim": 4, "kind": "flat"}), 409, "different"),
    ("train: flat", "POST", "/indexes/good/train", {}, 422, "flat"),
]


@pytest.mark.parametrize("case,method,path,kwargs,status,words", CASES, ids=[c[0] for c in CASES])
def test_bad_request_is_a_json_4xx_and_changes_nothing(server, case, method, path, kwargs, status, words):
    with server.client() as c:
        before = snapshot_of(c)
        r = c.request(method, path, **kwargs)
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/json")
        detail = r.json()["detail"]
        assert isinstance(detail, str) and words.lower() in detail.lower(), detail
        assert snapshot_of(c) == before


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "key"}],
                         ids=["missing", "wrong", "no scheme"])
def test_missing_or_wrong_api_key_is_401_and_changes_nothing(server, headers):
    import httpx

    with server.client() as c:
        before = snapshot_of(c)
    with httpx.Client(base_url=server.url, headers=headers) as anon:
        r = anon.post("/indexes/good/vectors", json={"ids": [77], "vectors": [V]})
        assert r.status_code == 401 and "API key" in r.json()["detail"]
        r = anon.delete("/indexes/good")
        assert r.status_code == 401
    with server.client() as c:
        assert snapshot_of(c) == before


def test_a_streamed_body_without_length_over_the_limit_is_413(server):
    def chunks():
        for _ in range(100):
            yield b"x" * 4096

    with server.client() as c:
        before = snapshot_of(c)
        r = c.post("/indexes/good/vectors", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        assert snapshot_of(c) == before


def test_no_500_in_the_metrics_after_the_matrix(server):
    with server.client() as c:
        text = c.get("/metrics").text
    assert 'status="500"' not in text
