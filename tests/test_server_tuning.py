"""REST compute-aware search: POST /indexes/{name}/tune keeps the frontier (surviving a restart), and
search accepts target_recall or budget_mflops, never together with explicit knobs (422)."""

from __future__ import annotations

import numpy as np

import adanns

from _server import Server


def rows(rng, n, d):
    scale = np.linspace(2.0, 0.2, d)
    return (rng.standard_normal((n, d)) * scale).astype(np.float32)


def test_tune_then_search_by_target_or_budget_matches_the_python_api_and_survives_restart(tmp_path, rng):
    x, q = rows(rng, 600, 16), rows(rng, 60, 16)
    params = {"nlist": 8, "cluster_dim": 16, "seed": 1, "train_size": 300}
    with Server(tmp_path / "data") as s, s.client() as c:
        assert c.put("/indexes/t", json={"dim": 16, "kind": "ivf", "params": params}).status_code == 201
        c.post("/indexes/t/vectors", json={"ids": list(range(600)), "vectors": x.tolist()})
        untuned = c.post("/indexes/t/search", json={"vectors": q.tolist(), "k": 5, "target_recall": 0.9})
        assert untuned.status_code == 422 and "not tuned" in untuned.json()["detail"]
        r = c.post("/indexes/t/tune", json={"vectors": q.tolist(), "k": 5})
        assert r.status_code == 200, r.text
        points = r.json()["points"]
        assert r.json()["queries"] == 60 and points and {"params", "recall", "recall_lcb", "mflops"} <= set(points[0])
        by_target = c.post("/indexes/t/search", json={"vectors": q.tolist(), "k": 5, "target_recall": 0.9}).json()
        by_budget = c.post("/indexes/t/search", json={"vectors": q.tolist(), "k": 5, "budget_mflops": 0.01}).json()
    ref = adanns.IVFIndex(16, nlist=8, cluster_dim=16, seed=1)
    ref.train(x)  # the buffer held all 600 rows when it reached train_size
    ref.add(x)
    ref.tune(q, k=5)
    assert [h["ids"] for h in by_target["results"]] == ref.search(q, k=5, target_recall=0.9).ids.tolist()
    assert [h["ids"] for h in by_budget["results"]] == ref.search(q, k=5, budget_mflops=0.01).ids.tolist()
    with Server(tmp_path / "data") as s, s.client() as c:  # the tune snapshot keeps the frontier
        again = c.post("/indexes/t/search", json={"vectors": q.tolist(), "k": 5, "target_recall": 0.9}).json()
    assert again == by_target


def test_target_and_budget_are_exclusive_with_knobs_and_validated(tmp_path):
    with Server(tmp_path / "data") as s, s.client() as c:
        c.put("/indexes/f", json={"dim": 4, "kind": "flat"})
        c.post("/indexes/f/vectors", json={"ids": [1, 2], "vectors": [[1, 0, 0, 0], [0, 1, 0, 0]]})
        for body, message in [({"target_recall": 0.9, "nprobe": 2}, "do not also give ['nprobe']"),
                              ({"budget_mflops": 1.0, "search_dim": 2}, "do not also give ['search_dim']"),
                              ({"target_recall": 0.9, "budget_mflops": 1.0}, "not both"),
                              ({"target_recall": 1.5}, "target_recall"),
                              ({"budget_mflops": 0}, "budget_mflops"),
                              ({"target_recall": "high"}, "target_recall")]:
            r = c.post("/indexes/f/search", json={"vector": [1, 0, 0, 0], "k": 1, **body})
            assert r.status_code == 422 and message in r.json()["detail"], (body, r.text)
        r = c.post("/indexes/f/tune", json={"vectors": [[1, 0, 0, 0]], "k": 5})
        assert r.status_code == 422 and "fewer than k" in r.json()["detail"]


def test_an_ivfopq_index_tunes_over_rest_and_searches_by_target_like_the_python_api(tmp_path, rng):
    x, q = rows(rng, 800, 16), rows(rng, 80, 16)
    params = {"nlist": 8, "cluster_dim": 16, "m": 8, "seed": 2, "train_size": 400}
    with Server(tmp_path / "data") as s, s.client() as c:
        assert c.put("/indexes/p", json={"dim": 16, "kind": "ivfopq", "params": params}).status_code == 201
        c.post("/indexes/p/vectors", json={"ids": list(range(800)), "vectors": x.tolist()}).raise_for_status()
        untuned = c.post("/indexes/p/search", json={"vectors": q.tolist(), "k": 5, "target_recall": 0.9})
        assert untuned.status_code == 422 and "not tuned" in untuned.json()["detail"]
        r = c.post("/indexes/p/tune", json={"vectors": q.tolist(), "k": 5})
        assert r.status_code == 200, r.text
        assert {"nprobe"} <= set(r.json()["points"][-1]["params"]) and r.json()["points"][-1]["recall"] >= 0.9
        by_target = c.post("/indexes/p/search", json={"vectors": q.tolist(), "k": 5, "target_recall": 0.9}).json()
        by_budget = c.post("/indexes/p/search", json={"vectors": q.tolist(), "k": 5, "budget_mflops": 0.01}).json()
    ref = adanns.IVFOPQIndex(16, nlist=8, cluster_dim=16, m=8, seed=2)
    ref.train(x)  # the buffer held all 800 rows when it reached train_size
    ref.add(x)
    ref.tune(q, k=5)
    assert [h["ids"] for h in by_target["results"]] == ref.search(q, k=5, target_recall=0.9).ids.tolist()
    np.testing.assert_allclose(by_target["mflops"], ref.search(q, k=5, target_recall=0.9).mflops, rtol=1e-9)
    assert [h["ids"] for h in by_budget["results"]] == ref.search(q, k=5, budget_mflops=0.01).ids.tolist()
    with Server(tmp_path / "data") as s, s.client() as c:  # the tune snapshot keeps the frontier
        again = c.post("/indexes/p/search", json={"vectors": q.tolist(), "k": 5, "target_recall": 0.9}).json()
    assert again == by_target


def test_ivfopq_tuning_rejects_bad_input_with_422s_that_say_why(tmp_path, rng):
    x, q = rows(rng, 500, 16), rows(rng, 20, 16)
    params = {"nlist": 4, "m": 8, "store_vectors": False, "train_size": 300}
    with Server(tmp_path / "data") as s, s.client() as c:
        assert c.put("/indexes/n", json={"dim": 16, "kind": "ivfopq", "params": params}).status_code == 201
        c.post("/indexes/n/vectors", json={"ids": list(range(500)), "vectors": x.tolist()}).raise_for_status()
        r = c.post("/indexes/n/tune", json={"vectors": q.tolist(), "k": 5})  # no stored vectors: no ground truth
        assert r.status_code == 422 and "store_vectors=False" in r.json()["detail"], r.text
        for body, message in [({"target_recall": 0.9, "nprobe": 2}, "do not also give ['nprobe']"),
                              ({"budget_mflops": 1.0, "rerank_k": 20}, "do not also give ['rerank_k']"),
                              ({"target_recall": 0.9, "search_dim": 8}, "search_dim"),
                              ({"target_recall": 0.0}, "target_recall"),
                              ({"budget_mflops": -1}, "budget_mflops"),
                              ({"target_recall": 0.9}, "not tuned")]:
            r = c.post("/indexes/n/search", json={"vectors": q.tolist(), "k": 5, **body})
            assert r.status_code == 422 and message in r.json()["detail"], (body, r.text)
        r = c.post("/indexes/n/tune", json={"vectors": [[1.0] * 17], "k": 5})  # longer than the index
        assert r.status_code == 422 and "17" in r.json()["detail"], r.text
