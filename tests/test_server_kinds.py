"""The OPQ, IVF-OPQ and binary kinds over REST: same answers as the Python API built the same way,
before and after a restart; knobs and params a kind does not take are 422s."""

from __future__ import annotations

import numpy as np
import pytest

import adanns

from _server import Server

SPECS = {
    "opq": {"m": 4, "pq_dim": 16, "nbits": 4, "train_size": 300, "seed": 2},
    "ivfopq": {"nlist": 8, "cluster_dim": 8, "m": 4, "pq_dim": 16, "nbits": 4, "train_size": 300, "seed": 1},
    "binary": {"bits": 24, "train_size": 300},
}


def python_twin(kind, x):
    """The index the service should hold after one batch of x (training on all of it, as the service does)."""
    p = SPECS[kind]
    if kind == "opq":
        index = adanns.OPQIndex(32, m=4, pq_dim=16, nbits=4, seed=2)
    elif kind == "ivfopq":
        index = adanns.IVFOPQIndex(32, nlist=8, cluster_dim=8, m=4, pq_dim=16, nbits=4, seed=1)
    else:
        index = adanns.BinarizedIndex(32, bits=p["bits"])
    index.train(x)
    index.add(x, ids=np.arange(len(x)) + 100)
    return index


@pytest.mark.parametrize("kind", list(SPECS))
def test_kind_matches_the_python_api_and_survives_a_restart(tmp_path, rng, kind):
    x = rng.standard_normal((400, 32)).astype(np.float32)
    q = rng.standard_normal((4, 32)).astype(np.float32)
    knobs = {"nprobe": 3} if kind == "ivfopq" else {}
    knobs.update(rerank_k=20, rerank_dim=24)
    twin = python_twin(kind, x).search(q, k=5, **knobs)
    server = Server(tmp_path / "data").start()
    try:
        with server.client() as http:
            r = http.put(f"/indexes/{kind}", json={"dim": 32, "metric": "ip", "kind": kind, "params": SPECS[kind]})
            assert r.status_code == 201, r.text
            assert r.json()["trained"] is False
            # Before training: exact answers from the buffer.
            r = http.post(f"/indexes/{kind}/vectors", json={"ids": [1, 2], "vectors": x[:2].tolist()})
            assert r.status_code == 200, r.text
            r = http.post(f"/indexes/{kind}/search", json={"vector": x[1].tolist(), "k": 1})
            assert r.json()["results"][0]["ids"] == [2]
            http.request("DELETE", f"/indexes/{kind}/vectors", json={"ids": [1, 2]}).raise_for_status()
            r = http.post(f"/indexes/{kind}/vectors",
                          json={"ids": (np.arange(400) + 100).tolist(), "vectors": x.tolist()})
            assert r.status_code == 200, r.text
            info = http.get(f"/indexes/{kind}").json()
            assert info["trained"] is True and info["count"] == 400
            body = {"vectors": q.tolist(), "k": 5, **knobs}
            got = http.post(f"/indexes/{kind}/search", json=body).json()
            assert [h["ids"] for h in got["results"]] == twin.ids.tolist()
            np.testing.assert_allclose([h["scores"] for h in got["results"]], twin.scores, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(got["mflops"], twin.mflops, rtol=1e-9)
            # search_dim belongs to flat/ivf; PQ and binary kinds name what they take.
            r = http.post(f"/indexes/{kind}/search", json={**body, "search_dim": 16})
            assert r.status_code == 422 and "search_dim" in r.json()["detail"]
            # Every kind has a tuner: its frontier picks the kind's own knobs.
            r = http.post(f"/indexes/{kind}/tune", json={"vectors": q.tolist(), "k": 5})
            assert r.status_code == 200, r.text
            assert set(r.json()["points"][-1]["params"]) <= {"nprobe", "rerank_dim", "rerank_k"}
            r = http.post(f"/indexes/{kind}/search", json={"vectors": q.tolist(), "k": 5, "target_recall": 0.9})
            assert r.status_code == 200, r.text
            if kind != "ivfopq":
                r = http.post(f"/indexes/{kind}/search", json={**body, "nprobe": 2})
                assert r.status_code == 422 and "nprobe" in r.json()["detail"]
        server.stop()
        server.start()
        with server.client() as http:
            again = http.post(f"/indexes/{kind}/search", json=body).json()
            assert again["results"] == got["results"]
    finally:
        server.stop()


@pytest.mark.parametrize("kind, params, metric, fragment", [
    ("opq", {"m": 5, "pq_dim": 16}, "ip", "multiple of m"),
    ("opq", {}, "cosine", "metrics 'ip' and 'l2'"),
    ("opq", {"nbits": 6}, "ip", "nbits"),
    ("opq", {"store_vectors": 1}, "ip", "params.store_vectors must be a boolean"),
    ("ivfopq", {"nlist": 8, "cluster_dim": 40}, "ip", "cluster_dim"),
    ("ivfopq", {"nlist": 8, "train_size": 4}, "ip", "train_size must be >= 256"),
    ("binary", {"bits": 12}, "ip", "multiple of 8"),
    ("binary", {"rotation": "pca"}, "ip", "params.rotation"),
    ("binary", {}, "l2", "metric must be 'ip'"),
    ("binary", {"nlist": 4}, "ip", "unknown params"),
])
def test_bad_params_are_422_and_create_nothing(tmp_path, kind, params, metric, fragment):
    with Server(tmp_path / "data") as server, server.client() as http:
        r = http.put("/indexes/bad", json={"dim": 32, "metric": metric, "kind": kind, "params": params})
        assert r.status_code == 422, r.text
        assert fragment in r.json()["detail"]
        assert http.get("/indexes/bad").status_code == 404
