"""Filtered search on the code and graph kinds (IVFOPQ, OPQ, BinarizedIndex, GraphIndex), against brute force over the
matching rows: only matching ids, k of them whenever k rows match, exact when the direct plan applies
to stored vectors, recall bounds otherwise; a filter matching every row changes nothing."""

import numpy as np
import pytest

import adanns

from test_filtered import brute_force, clustered

SELECTIVITIES = (0.0001, 0.001, 0.01, 0.05, 0.2, 1.0)
N, D, K = 8000, 16, 10

KINDS = {
    "ivfopq8-l2": (lambda: adanns.IVFOPQIndex(D, 32, m=8, metric="l2", seed=1), {"nprobe": 8, "rerank_k": 50}),
    "ivfopq4-ip": (lambda: adanns.IVFOPQIndex(D, 32, m=8, nbits=4, metric="ip", seed=1), {"nprobe": 8, "rerank_k": 50}),
    "ivfopq8-l2-codes-only": (lambda: adanns.IVFOPQIndex(D, 32, m=8, metric="l2", store_vectors=False, seed=1),
                              {"nprobe": 8}),
    "opq8-ip": (lambda: adanns.OPQIndex(D, m=8, metric="ip", seed=1), {"rerank_k": 50}),
    "binarized": (lambda: adanns.BinarizedIndex(D, seed=1), {"rerank_k": 50}),
    "graph-l2": (lambda: adanns.GraphIndex(D, M=16, ef_construction=100, metric="l2", seed=1), {"ef": 64}),
    "graph-sq8-cosine": (lambda: adanns.GraphIndex(D, M=16, ef_construction=100, metric="cosine", seed=1,
                                                   storage="sq8"), {"ef": 64}),
}


def build(name, rng):
    make, knobs = KINDS[name]
    x = clustered(rng, N, D, centers=200)
    index = make()
    if hasattr(index, "train"):
        index.train(x)
    index.add(x, attributes={"g": rng.integers(0, 100000, N), "even": (np.arange(N) % 2 == 0)})
    return index, x, knobs


def recall(got, want, m):
    return float(np.mean([len(set(a[:m]) & set(b[:m])) / m for a, b in zip(got, want)]))


@pytest.mark.parametrize("name", list(KINDS))
def test_filtered_results_against_brute_force_over_matching_rows(name):
    rng = np.random.default_rng(np.random.SeedSequence().entropy % 2**32)
    index, x, knobs = build(name, rng)
    q = clustered(rng, 30, D, centers=200)
    metric = index.metric
    unfiltered = index.search(q, K, **knobs).ids
    recalls = []
    for s in SELECTIVITIES:
        for expr in ({"key": "g", "range": {"lt": int(s * 100000)}},
                     {"has_id": [int(i) for i in rng.choice(N, max(1, int(s * N)), replace=False)]}):
            allowed = index.compile_filter(expr)
            res = index.search(q, K, filter=expr, **knobs)
            m = min(K, len(allowed))
            assert ((res.ids >= 0).sum(axis=1) == m).all(), (s, expr.keys())  # k whenever k rows match
            assert np.isin(res.ids[res.ids >= 0], allowed).all()
            assert all(len(set(r[r >= 0])) == m for r in res.ids)
            if m == 0:
                continue
            r = recall(res.ids, brute_force(x[allowed], allowed, q, m, metric), m)
            # The direct plan (<= 2% of the rows) scores stored vectors exactly; without them, codes.
            if len(allowed) <= 0.02 * N and "codes-only" not in name:
                assert r == 1.0, (s, r)
            recalls.append(r)
    base = recall(unfiltered, brute_force(x, np.arange(N), q, K, metric), K)
    # A selective filter's nearest matching rows lie farther out (more lists, longer walks): a looser
    # bound for the worst case than for the mean, both against the unfiltered recall.
    assert min(recalls) >= min(0.7, base - 0.2) and np.mean(recalls) >= min(0.85, base - 0.05), (recalls, base)
    np.testing.assert_array_equal(index.search(q, K, filter={}, **knobs).ids, unfiltered)


@pytest.mark.parametrize("name", ["ivfopq8-l2", "graph-l2", "binarized"])
def test_upsert_and_remove_keep_filters_and_attributes(name):
    rng = np.random.default_rng(np.random.SeedSequence().entropy % 2**32)
    index, x, knobs = build(name, rng)
    gone = np.arange(1, N, 2)  # every odd id: "even" then matches all that is left
    index.remove(gone)
    res = index.search(x[:20], K, filter={"key": "even", "match": {"value": True}}, **knobs)
    assert not np.isin(res.ids, gone).any() and (res.ids >= 0).all()
    index.upsert(x[[4, 6]] + 0.01, [4, 6], attributes={"g": [-1, -2], "even": [False, False]})
    assert index.attributes([4, 6]) == [{"g": -1, "even": False}, {"g": -2, "even": False}]
    res = index.search(x[[4, 6]], K, filter={"key": "g", "range": {"lt": 0}}, **knobs)
    assert sorted(res.ids[:, :2].ravel().tolist()) == [4, 4, 6, 6] and (res.ids[:, 2:] == -1).all()
    assert len(index) == N - len(gone)


@pytest.mark.parametrize("name", ["flat", "ivf", "opq8-ip", "graph-l2", "binarized"])
def test_a_list_of_filters_applies_one_per_query(name):
    rng = np.random.default_rng(np.random.SeedSequence().entropy % 2**32)
    if name in ("flat", "ivf"):
        x = clustered(rng, 3000, D, centers=50)
        index = adanns.FlatIndex(D, "l2") if name == "flat" else adanns.IVFIndex(D, 16, "l2", seed=1)
        if name == "ivf":
            index.train(x)
        index.add(x, attributes={"g": rng.integers(0, 100, 3000)})
        knobs = {"nprobe": 4} if name == "ivf" else {}
    else:
        index, x, knobs = build(name, rng)
        knobs = dict(knobs)
    q = x[rng.choice(len(x), 9, replace=False)] + 0.01
    pool = [{"key": "g", "range": {"lt": 5}}, None, {"key": "g", "range": {"gte": 50}}, {"has_id": [1, 2, 3]}]
    filters = [pool[int(i)] for i in rng.integers(0, len(pool), len(q))]
    res = index.search(q, K, filter=filters, **knobs)
    for i, f in enumerate(filters):
        one = index.search(q[i:i + 1], K, filter=f, **knobs)
        np.testing.assert_array_equal(res.ids[i], one.ids[0])
        np.testing.assert_allclose(res.scores[i], one.scores[0], rtol=1e-5)
    with pytest.raises(ValueError, match="one per query"):
        index.search(q, K, filter=filters[:-1], **knobs)
    with pytest.raises(ValueError, match=r"filter\[0\] must be an object"):
        index.search(q[:1], K, filter=["g < 5"], **knobs)


@pytest.mark.parametrize("name", ["binarized", "ivfopq8-l2", "graph-l2"])
def test_attributes_survive_save_and_load(name, tmp_path):
    rng = np.random.default_rng(np.random.SeedSequence().entropy % 2**32)
    index, x, knobs = build(name, rng)
    index.remove([0, 5])
    path = tmp_path / "index.adn"
    index.save(path)
    loaded = adanns.load(path)
    assert type(loaded) is type(index)
    assert loaded.attribute_types() == index.attribute_types()
    assert loaded.attributes([1, 7]) == index.attributes([1, 7])
    expr = {"must": [{"key": "g", "range": {"lt": 20000}}], "must_not": [{"key": "even", "match": {"value": True}}]}
    np.testing.assert_array_equal(loaded.compile_filter(expr), index.compile_filter(expr))
    np.testing.assert_array_equal(loaded.search(x[:5], K, filter=expr, **knobs).ids,
                                  index.search(x[:5], K, filter=expr, **knobs).ids)
    loaded.save(tmp_path / "again.adn")  # the attributes were not left in the in-memory metadata
    assert adanns.load(tmp_path / "again.adn").attributes([9]) == index.attributes([9])
