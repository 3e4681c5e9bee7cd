"""The hot path decodes searches with msgspec (search_body.py) while /docs documents the pydantic model
(schemas.SearchRequest): both must accept and refuse the same bodies. And the x-npy batch search answers
exactly what the JSON search answers."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from adanns.server.errors import Invalid
from adanns.server.schemas import SearchRequest
from adanns.server.search_body import decode_json, decode_query_string

from _server import Server

values = st.one_of(st.none(), st.booleans(), st.dictionaries(st.sampled_from(["must", "key"]), st.integers(0, 3), max_size=2), st.integers(-3, 20_000), st.integers(2**62, 2**64),
                   st.floats(allow_nan=False, allow_infinity=False, width=32), st.text(max_size=3),
                   st.lists(st.floats(-2, 2, width=32), max_size=3),
                   st.lists(st.lists(st.one_of(st.floats(-2, 2, width=32), st.integers(-2, 2)), max_size=3), max_size=3))
fields = st.sampled_from(["vector", "vectors", "k", "search_dim", "nprobe", "rerank_dim", "rerank_k", "target_recall",
                          "budget_mflops", "filter", "with_payload", "extra"])


def verdicts(body: dict) -> tuple[bool, bool]:
    raw = json.dumps(body).encode()
    try:
        SearchRequest.model_validate_json(raw)
        pyd = True
    except ValidationError:
        pyd = False
    try:
        decode_json(raw)
        fast = True
    except Invalid:
        fast = False
    return pyd, fast


@given(st.dictionaries(fields, values, max_size=4))
def test_both_decoders_agree_on_random_bodies(body):
    pyd, fast = verdicts(body)
    assert pyd == fast, body


@pytest.mark.parametrize("body", [
    {"vector": [1, 2.5]}, {"vectors": [[1.0], [2.0]], "k": 3}, {"vector": [1.0], "k": 0}, {"vector": [1.0], "k": 10001},
    {"vector": [1.0], "k": 5.0}, {"vector": [1.0], "k": True}, {"vector": ["1"]}, {"vector": []}, {"vectors": []},
    {"vector": [1.0], "vectors": [[1.0]]}, {}, {"vector": [1.0], "target_recall": 0.9, "nprobe": 3},
    {"vector": [1.0], "target_recall": 0.9, "budget_mflops": 1.0}, {"vector": [1.0], "target_recall": 1.5},
    {"vector": [1.0], "budget_mflops": 0}, {"vector": [1.0], "rerank_k": 1_000_001}, {"vector": [1.0], "nprobe": 0},
    {"vector": [1.0], "x": 1}, {"vector": [True]},
    {"vector": [1.0], "filter": {}}, {"vector": [1.0], "filter": {"must": [{"key": "a", "match": {"value": 1}}]}},
    {"vector": [1.0], "filter": None}, {"vector": [1.0], "filter": []}, {"vector": [1.0], "filter": "{}"},
    {"vector": [1.0], "with_payload": True}, {"vector": [1.0], "with_payload": 1}, {"vector": [1.0], "with_payload": None},
    {"vector": [1.0], "with_payload": "true"},
])
def test_both_decoders_agree_on_edge_cases(body):
    pyd, fast = verdicts(body)
    assert pyd == fast, body


def test_query_string_knobs():
    knobs = decode_query_string(b"k=7&nprobe=3&search_dim=16")
    assert (knobs.k, knobs.nprobe, knobs.search_dim) == (7, 3, 16)
    assert (knobs.filter, knobs.with_payload) == (None, False)
    knobs = decode_query_string(b"filter=%7B%22must%22%3A%5B%5D%7D&with_payload=true")
    assert (knobs.filter, knobs.with_payload) == ({"must": []}, True)
    for bad, words in [(b"k=0", "k"), (b"k=x", "k"), (b"unknown=1", "unknown"), (b"k=1&k=2", "twice"),
                       (b"target_recall=0.9&nprobe=2", "do not also give"),
                       (b"filter=%7Bnot", "filter is not JSON"), (b"filter=5", "filter")]:
        with pytest.raises(Invalid, match=words):
            decode_query_string(bad)


def test_npy_batch_search_answers_what_the_json_search_answers(tmp_path, rng):
    x = rng.standard_normal((300, 16)).astype(np.float32)
    q = rng.standard_normal((12, 16)).astype(np.float32)
    with Server(tmp_path / "d") as server, server.client() as c:
        c.put("/indexes/n", json={"dim": 16, "kind": "ivf", "metric": "l2", "params": {"nlist": 4, "train_size": 100}})
        c.post("/indexes/n/vectors", json={"ids": list(range(300)), "vectors": x.tolist()})
        want = c.post("/indexes/n/search", json={"vectors": q[:, :8].tolist(), "k": 5, "nprobe": 2}).json()
        buf = io.BytesIO()
        np.save(buf, q[:, :8])
        npy = {"content-type": "application/x-npy"}
        r = c.post("/indexes/n/search?k=5&nprobe=2", content=buf.getvalue(), headers=npy)
        assert r.status_code == 200, r.text
        assert r.json() == want
        r = c.post("/indexes/n/search?k=5&nprobe=2", content=buf.getvalue(),
                   headers={**npy, "accept": "application/x-npz"})
        assert r.headers["content-type"] == "application/x-npz"
        arrays = np.load(io.BytesIO(r.content))
        assert arrays["ids"].tolist() == [h["ids"] for h in want["results"]]
        np.testing.assert_allclose(arrays["scores"], [h["scores"] for h in want["results"]], rtol=1e-6)
        np.testing.assert_allclose(arrays["mflops"], want["mflops"])
        # Bad batches: clear 4xx.
        for path, content, words in [("/indexes/n/search?k=0", buf.getvalue(), "k"),
                                     ("/indexes/n/search?bogus=1", buf.getvalue(), "bogus"),
                                     ("/indexes/n/search", buf.getvalue()[:-8], "declares shape"),
                                     ("/indexes/n/search", buf.getvalue() + b"xx", "bytes follow")]:
            r = c.post(path, content=content, headers=npy)
            assert r.status_code == 422 and words in r.json()["detail"], (path, r.text)
        one = io.BytesIO()
        np.save(one, q[0])
        r = c.post("/indexes/n/search", content=one.getvalue(), headers=npy)
        assert r.status_code == 422 and "2-D" in r.json()["detail"]


def test_a_batch_too_large_to_merge_answers_the_exact_neighbours(tmp_path, rng):
    # A batch above the merge size skips the (single) search thread for the worker pool.
    x = rng.standard_normal((500, 16)).astype(np.float32)
    q = rng.standard_normal((40, 16)).astype(np.float32)
    with Server(tmp_path / "d", env={"ADANNS_SEARCH_WORKERS": "1"}) as server, server.client() as c:
        c.put("/indexes/b", json={"dim": 16, "kind": "ivf", "metric": "l2", "params": {"nlist": 4, "train_size": 100}})
        c.post("/indexes/b/vectors", json={"ids": list(range(500)), "vectors": x.tolist()})
        buf = io.BytesIO()
        np.save(buf, q)
        r = c.post("/indexes/b/search?k=7&nprobe=4", content=buf.getvalue(),  # every list: exact
                   headers={"content-type": "application/x-npy", "accept": "application/x-npz"})
        assert r.status_code == 200, r.text
        got = np.load(io.BytesIO(r.content))
    d = ((q.astype(np.float64)[:, None, :] - x.astype(np.float64)[None, :, :]) ** 2).sum(axis=2)
    want = np.argsort(d, axis=1)[:, :7]
    np.testing.assert_array_equal(got["ids"], want)
    np.testing.assert_allclose(got["scores"], np.take_along_axis(d, want, axis=1), rtol=1e-4, atol=1e-4)
