"""End to end: a real uvicorn server on a loopback port, driven with httpx."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest

import adanns

from _server import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("data")) as s:
        yield s


@pytest.fixture
def http(server):
    with server.client() as c:
        yield c


def unit_rows(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def npy_body(*arrays) -> bytes:
    buf = io.BytesIO()
    for a in arrays:
        np.save(buf, a)
    return buf.getvalue()


def create(http, name, **spec):
    r = http.put(f"/indexes/{name}", json=spec)
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_index_lifecycle_create_list_describe_delete(http):
    info = create(http, "life", dim=16, metric="cosine", kind="flat")
    assert info == {"name": "life", "state": "ready", "reason": None, "dim": 16, "metric": "cosine",
                    "kind": "flat", "params": {}, "count": 0, "trained": True, "bytes": info["bytes"],
                    "attributes": {}}
    assert http.put("/indexes/life", json={"dim": 16, "metric": "cosine", "kind": "flat"}).status_code == 200
    assert http.put("/indexes/life", json={"dim": 8, "kind": "flat"}).status_code == 409
    assert "life" in http.get("/indexes").json()["indexes"]
    assert http.get("/indexes").json()["states"]["life"] == {"state": "ready", "reason": None}
    assert http.delete("/indexes/life").status_code == 204
    assert http.get("/indexes/life").status_code == 404
    assert "life" not in http.get("/indexes").json()["indexes"]


def test_search_matches_the_python_api_for_full_and_prefix_queries(http, rng):
    x, q = unit_rows(rng, 300, 32), unit_rows(rng, 5, 32)
    create(http, "exact", dim=32, metric="ip", kind="flat")
    r = http.post("/indexes/exact/vectors", json={"ids": list(range(1000, 1300)), "vectors": x.tolist()})
    assert r.status_code == 200 and r.json() == {"count": 300, "total": 300}
    ref = adanns.FlatIndex(32, metric="ip")
    ref.add(x, np.arange(1000, 1300))
    for width in (32, 8):  # 8: a Matryoshka prefix
        want = ref.search(q[:, :width], k=7)
        r = http.post("/indexes/exact/search", json={"vectors": q[:, :width].tolist(), "k": 7})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [h["ids"] for h in body["results"]] == want.ids.tolist()
        np.testing.assert_allclose([h["scores"] for h in body["results"]], want.scores, rtol=1e-5)
        np.testing.assert_allclose(body["mflops"], want.mflops)
    one = http.post("/indexes/exact/search", json={"vector": q[0].tolist(), "k": 3, "search_dim": 16,
                                                     "rerank_dim": 32, "rerank_k": 20}).json()
    assert one["results"][0]["ids"] == ref.search(q[:1], k=3, search_dim=16, rerank_dim=32, rerank_k=20).ids[0].tolist()


def test_padding_slots_come_back_as_id_minus_one_and_null_score(http, rng):
    create(http, "tiny", dim=4, kind="flat")
    http.post("/indexes/tiny/vectors", json={"ids": [5, 6], "vectors": unit_rows(rng, 2, 4).tolist()})
    hits = http.post("/indexes/tiny/search", json={"vector": [1, 0, 0, 0], "k": 4}).json()["results"][0]
    assert hits["ids"][2:] == [-1, -1] and hits["scores"][2:] == [None, None]
    assert all(isinstance(s, float) for s in hits["scores"][:2])


def test_upsert_replaces_existing_ids_and_accepts_npy_bodies(http, rng):
    create(http, "up", dim=8, kind="flat")
    x = unit_rows(rng, 10, 8)
    r = http.post("/indexes/up/vectors", content=npy_body(x, np.arange(10)),
                  headers={"content-type": "application/x-npy"})
    assert r.json() == {"count": 10, "total": 10}
    # Replace id 3 with -x[3]: searching x[3] must no longer find it first; the count stays 10.
    r = http.post("/indexes/up/vectors?ids=3", content=npy_body(-x[3:4]), headers={"content-type": "application/x-npy"})
    assert r.json() == {"count": 1, "total": 10}
    hits = http.post("/indexes/up/search", json={"vector": x[3].tolist(), "k": 10}).json()["results"][0]
    assert hits["ids"][-1] == 3 and hits["ids"][0] != 3
    r = http.request("DELETE", "/indexes/up/vectors", json={"ids": [3, 4]})
    assert r.json() == {"count": 2, "total": 8}


def test_ivf_buffers_until_train_size_then_trains_and_matches_the_python_api(http, rng):
    x, q = unit_rows(rng, 400, 16), unit_rows(rng, 8, 16)
    params = {"nlist": 8, "cluster_dim": 8, "seed": 3, "train_size": 200}
    create(http, "ivf", dim=16, kind="ivf", params=params)
    http.post("/indexes/ivf/vectors", json={"ids": list(range(150)), "vectors": x[:150].tolist()})
    info = http.get("/indexes/ivf").json()
    assert info["trained"] is False and info["count"] == 150
    # Before training, searches are exact over what was added.
    exact = adanns.FlatIndex(16)
    exact.add(x[:150])
    got = http.post("/indexes/ivf/search", json={"vectors": q.tolist(), "k": 5}).json()
    assert [h["ids"] for h in got["results"]] == exact.search(q, k=5).ids.tolist()
    http.post("/indexes/ivf/vectors", json={"ids": list(range(150, 400)), "vectors": x[150:].tolist()})
    info = http.get("/indexes/ivf").json()
    assert info["trained"] is True and info["count"] == 400
    ref = adanns.IVFIndex(16, nlist=8, cluster_dim=8, seed=3)
    ref.train(x)
    ref.add(x)
    want = ref.search(q, k=5, nprobe=3)
    got = http.post("/indexes/ivf/search", json={"vectors": q.tolist(), "k": 5, "nprobe": 3}).json()
    assert [h["ids"] for h in got["results"]] == want.ids.tolist()


def test_train_endpoint_forces_training(http, rng):
    create(http, "forced", dim=8, kind="ivf", params={"nlist": 4, "train_size": 1000})
    assert http.post("/indexes/forced/train").status_code == 422  # fewer than nlist vectors
    http.post("/indexes/forced/vectors", json={"ids": list(range(20)), "vectors": unit_rows(rng, 20, 8).tolist()})
    r = http.post("/indexes/forced/train")
    assert r.status_code == 200 and r.json()["trained"] is True and r.json()["count"] == 20


def test_metrics_report_requests_latency_and_index_sizes(http, rng):
    create(http, "metered", dim=4, kind="flat")
    http.post("/indexes/metered/vectors", json={"ids": [1, 2, 3], "vectors": unit_rows(rng, 3, 4).tolist()})
    http.post("/indexes/metered/search", json={"vector": [1, 0, 0, 0]})
    text = http.get("/metrics").text
    assert 'adanns_index_vectors{index="metered"} 3.0' in text
    assert 'adanns_index_bytes{index="metered"}' in text
    assert 'adanns_requests_total{method="POST",route="/indexes/{name}/search",status="200"}' in text
    assert 'adanns_request_seconds_bucket{le="0.005",method="POST",route="/indexes/{name}/search"}' in text
    counters = {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.startswith("adanns_search_")}
    assert 1 <= counters["adanns_search_calls_total"] <= counters["adanns_search_merged_requests_total"]


def test_openapi_docs_are_served(http):
    assert http.get("/docs").status_code == 200
    paths = http.get("/openapi.json").json()["paths"]
    assert {"/indexes/{name}/search", "/indexes/{name}/vectors", "/indexes/{name}"} <= set(paths)


def test_a_search_never_sees_half_of_a_batch(http):
    # Batch b holds 32 copies of e0 * (b + 1): the top 32 of a search for e0 must all come from one batch.
    dim, size, batches = 4, 32, 40
    create(http, "atomic", dim=dim, metric="ip", kind="flat")  # ip: the batches differ only in length
    seen, errors = [], []

    def write():
        for b in range(batches):
            v = np.zeros((size, dim), np.float32)
            v[:, 0] = b + 1
            http.post("/indexes/atomic/vectors", json={"ids": list(range(b * size, (b + 1) * size)),
                                                         "vectors": v.tolist()})

    def read():
        for _ in range(150):
            r = http.post("/indexes/atomic/search", json={"vector": [1.0, 0, 0, 0], "k": size})
            if r.status_code != 200:
                errors.append(r.text)
                continue
            ids = [i for i in r.json()["results"][0]["ids"] if i >= 0]
            seen.append({i // size for i in ids})

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(len(batch) <= 1 for batch in seen), [s for s in seen if len(s) > 1][:3]
    assert len({min(s) for s in seen if s}) > 1  # the readers really ran during the writes


def test_state_survives_a_graceful_restart_with_a_snapshot(tmp_path, rng):
    x = unit_rows(rng, 120, 8)
    with Server(tmp_path / "data", extra_args=["--snapshot-every", "2"]) as s, s.client() as c:
        create(c, "kept", dim=8, kind="ivf", params={"nlist": 4, "train_size": 50})
        for a in range(0, 120, 30):
            c.post("/indexes/kept/vectors", json={"ids": list(range(a, a + 30)), "vectors": x[a:a + 30].tolist()})
        c.request("DELETE", "/indexes/kept/vectors", json={"ids": [7]})
        before = c.post("/indexes/kept/search", json={"vectors": x[:5].tolist(), "k": 4, "nprobe": 2}).json()
    assert list((tmp_path / "data" / "kept").glob("snapshot-*/index.adanns"))
    with Server(tmp_path / "data") as s, s.client() as c:
        assert c.get("/indexes/kept").json()["count"] == 119
        after = c.post("/indexes/kept/search", json={"vectors": x[:5].tolist(), "k": 4, "nprobe": 2}).json()
    assert after == before


def test_api_key_guards_every_route_but_healthz(tmp_path):
    with Server(tmp_path / "data", api_key="s3cret") as s:
        import httpx

        with httpx.Client(base_url=s.url) as anon:
            assert anon.get("/healthz").status_code == 200
            for method, path in [("GET", "/indexes"), ("GET", "/metrics"), ("PUT", "/indexes/a"),
                                 ("POST", "/indexes/a/search"), ("POST", "/indexes/a/vectors")]:
                r = anon.request(method, path, json={"dim": 4})
                assert r.status_code == 401 and "API key" in r.json()["detail"], (method, path)
            r = anon.get("/indexes", headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 401
        with s.client() as c:
            assert c.get("/indexes").status_code == 200


def test_upserts_without_ids_get_consecutive_ids_that_survive_a_restart(tmp_path, rng):
    x = unit_rows(rng, 6, 8)
    with Server(tmp_path / "d") as server, server.client() as c:
        c.put("/indexes/auto", json={"dim": 8, "kind": "flat"})
        assert c.post("/indexes/auto/vectors", json={"ids": [41], "vectors": x[:1].tolist()}).json()["count"] == 1
        r = c.post("/indexes/auto/vectors", json={"vectors": x[1:4].tolist()})
        assert r.status_code == 200 and r.json() == {"count": 3, "total": 4, "ids": [42, 43, 44]}
        buf = io.BytesIO()
        np.save(buf, x[4:])
        r = c.post("/indexes/auto/vectors", content=buf.getvalue(), headers={"content-type": "application/x-npy"})
        assert r.json()["ids"] == [45, 46]
        server.kill()
    with Server(tmp_path / "d") as again, again.client() as c:
        r = c.post("/indexes/auto/search", json={"vectors": x.tolist(), "k": 1})
        assert [h["ids"][0] for h in r.json()["results"]] == [41, 42, 43, 44, 45, 46]


def test_docs_work_offline_and_are_labelled_in_the_metrics(http):
    page = http.get("/docs").text
    assert "cdn.jsdelivr.net" not in page and "unpkg.com" not in page
    assets = [a for a in __import__("re").findall(r'(?:src|href)="([^"]+)"', page) if a.startswith("/")]
    assert assets and all(http.get(a).status_code == 200 for a in assets)
    assert http.get("/openapi.json").status_code == 200
    metrics = http.get("/metrics").text
    assert 'route="/docs"' in metrics and 'route="/openapi.json"' in metrics


def test_an_untuned_index_names_the_rest_route_that_tunes_it(http, rng):
    create(http, "untuned", dim=8, kind="ivf", params={"nlist": 2, "train_size": 20})
    http.post("/indexes/untuned/vectors", json={"ids": list(range(30)), "vectors": unit_rows(rng, 30, 8).tolist()})
    r = http.post("/indexes/untuned/search", json={"vector": unit_rows(rng, 1, 8)[0].tolist(), "target_recall": 0.9})
    assert r.status_code == 422 and "POST /indexes/untuned/tune" in r.json()["detail"], r.text
