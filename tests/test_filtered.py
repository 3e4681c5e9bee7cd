"""Filtered search: attributes, filter expressions and the core's filter-aware scans, against an
independent reference (a per-row evaluation of the expression and a float64 brute force)."""

import numpy as np
import pytest

import adanns

LANGS = ["en", "fr", "de", "es", "it", "nl", "pl", "sv"]


def make_attributes(rng, n):
    return {
        "lang": [LANGS[i] for i in np.minimum(rng.zipf(1.5, n) - 1, len(LANGS) - 1)],
        "tags": [list(rng.choice(["a", "b", "c", "d"], rng.integers(0, 3), replace=False)) for _ in range(n)],
        "year": rng.integers(1950, 2025, n),
        "price": rng.random(n) * 100,
        "stock": rng.random(n) < 0.3,
    }


def row_matches(expr, row, id_):
    """The reference: evaluates an expression on one row's attribute dict."""
    if any(g in expr for g in ("must", "should", "must_not")):
        ok = all(row_matches(c, row, id_) for c in expr.get("must", []))
        if expr.get("should"):
            ok = ok and any(row_matches(c, row, id_) for c in expr["should"])
        return ok and not any(row_matches(c, row, id_) for c in expr.get("must_not", []))
    if not expr:
        return True
    if "has_id" in expr:
        return id_ in expr["has_id"]
    value = row.get(expr["key"])
    if value is None:
        return False
    values = value if isinstance(value, list) else [value]
    if "match" in expr:
        wanted = [expr["match"]["value"]] if "value" in expr["match"] else expr["match"]["any"]
        return any(v == w for v in values for w in wanted)
    r = expr["range"]
    return all(op_ok(value, op, x) for op, x in r.items())


def op_ok(value, op, x):
    return {"gt": value > x, "gte": value >= x, "lt": value < x, "lte": value <= x}[op]


def random_leaf(rng, ids):
    kind = rng.integers(0, 6)
    if kind == 0:
        return {"key": "lang", "match": {"value": str(rng.choice(LANGS))}}
    if kind == 1:
        return {"key": "tags", "match": {"any": [str(t) for t in rng.choice(["a", "b", "c", "d", "z"], 2)]}}
    if kind == 2:
        lo = int(rng.integers(1950, 2025))
        return {"key": "year", "range": {"gte": lo, "lt": lo + int(rng.integers(1, 40))}}
    if kind == 3:
        return {"key": "price", "range": {"gt": float(rng.random() * 100)}}
    if kind == 4:
        return {"key": "stock", "match": {"value": bool(rng.random() < 0.5)}}
    return {"has_id": [int(i) for i in rng.choice(ids, int(rng.integers(1, 50)))]}


def random_filter(rng, ids, depth=0):
    if depth >= 2 or rng.random() < 0.3:
        return random_leaf(rng, ids)
    expr = {}
    for group in ("must", "should", "must_not"):
        if rng.random() < 0.5:
            expr[group] = [random_filter(rng, ids, depth + 1) for _ in range(int(rng.integers(1, 3)))]
    return expr or random_leaf(rng, ids)


def reference_ids(index, expr, ids):
    rows = index.attributes(ids)
    return np.array([i for i, row in zip(ids, rows) if row_matches(expr, row, int(i))], dtype=np.int64)


def brute_force(x, ids, q, k, metric):
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if metric == "l2":
        d = ((q64[:, None, :] - x64[None]) ** 2).sum(-1)
    else:
        d = -(q64 @ x64.T)
        if metric == "cosine":
            d = d / np.linalg.norm(x64, axis=1)[None] / np.linalg.norm(q64, axis=1)[:, None]
    top = np.argsort(d, axis=1, kind="stable")[:, :k]
    return ids[top]


def clustered(rng, n, d, centers=40):
    c = rng.standard_normal((centers, d)) * 3
    return (c[rng.integers(0, centers, n)] + rng.standard_normal((n, d))).astype(np.float32)


@pytest.mark.parametrize("metric", ["ip", "l2", "cosine"])
def test_flat_filtered_equals_brute_force_over_matching_rows(metric):
    rng = np.random.default_rng(np.random.SeedSequence().entropy % 2**32)
    n, d, k = 10000, 16, 10
    x = rng.standard_normal((n, d)).astype(np.float32)
    index = adanns.FlatIndex(d, metric)
    index.add(x, attributes=make_attributes(rng, n))
    ids = index.ids()
    q = rng.standard_normal((5, d)).astype(np.float32)
    # Exact selectivities 0.01% .. 100% through has_id, then random attribute expressions.
    filters = [{"has_id": [int(i) for i in rng.choice(ids, max(1, int(s * n)), replace=False)]}
               for s in (0.0001, 0.001, 0.01, 0.1, 0.5, 1.0)]
    filters += [random_filter(rng, ids) for _ in range(12)]
    for expr in filters:
        allowed = reference_ids(index, expr, ids)
        np.testing.assert_array_equal(index.compile_filter(expr), np.sort(allowed), err_msg=str(expr))
        for threshold in (0.0, 1.0):  # both plans are exact
            _, got, _ = index._impl.search(q, k, d, 0, 0, 1, [], np.sort(allowed), threshold)
            m = min(k, len(allowed))
            assert (got[:, m:] == -1).all()
            if m:
                want = brute_force(x[allowed], allowed, q, m, metric)
                np.testing.assert_array_equal(got[:, :m], want, err_msg=f"{expr} plan threshold {threshold}")
        mask = np.zeros(n, bool)
        mask[allowed] = True
        bits = np.packbits(mask, bitorder="little")
        scan, direct = (index._impl.search(q, k, d, 0, 0, 1, [], bits, t)[1] for t in (0.0, 1.0))
        res = index.search(q, k, filter=expr)  # ids 0..n-1: a broad filter goes in as the packed bitset
        for ids_ in (scan, direct, res.ids):
            assert (ids_[:, m:] == -1).all()
            if m:
                np.testing.assert_array_equal(ids_[:, :m], want, err_msg=str(expr))


def test_ivf_returns_k_whenever_k_rows_match_and_reaches_recall():
    rng = np.random.default_rng(np.random.SeedSequence().entropy % 2**32)
    n, d, k = 20000, 16, 10
    x = clustered(rng, n, d)
    index = adanns.IVFIndex(d, 64, "l2", seed=1)
    index.train(x)
    index.add(x, attributes=make_attributes(rng, n))
    ids = index.ids()
    q = clustered(rng, 40, d)
    recalls = {1: [], 4: []}
    for s in (0.0001, 0.001, 0.005, 0.02, 0.1, 0.5, 1.0):
        allowed = np.sort(rng.choice(ids, max(1, int(s * n)), replace=False))
        expr = {"has_id": allowed.tolist()}
        for nprobe in (1, 4):
            res = index.search(q, k, nprobe=nprobe, filter=expr)
            m = min(k, len(allowed))
            assert ((res.ids >= 0).sum(axis=1) == m).all(), (s, nprobe)
            assert np.isin(res.ids[res.ids >= 0], allowed).all()
            want = brute_force(x[allowed], allowed, q, m, "l2")
            recall = np.mean([len(set(a[:m]) & set(b)) / m for a, b in zip(res.ids, want)])
            recalls[nprobe].append(recall)
            if s <= 0.01:  # the direct plan is exact
                assert recall == 1.0
        # re-ranking: the scan keeps rerank_k allowed candidates, then k come back
        res = index.search(q, k, nprobe=1, rerank_k=3 * k, filter=expr)
        assert ((res.ids >= 0).sum(axis=1) == min(k, len(allowed))).all()
    assert min(recalls[4]) >= 0.8 and np.mean(recalls[4]) >= 0.9 and np.mean(recalls[1]) >= 0.75, recalls


def test_filtered_mflops_count_only_scored_rows():
    rng = np.random.default_rng(3)
    n, d = 4000, 8
    x = rng.standard_normal((n, d)).astype(np.float32)
    index = adanns.FlatIndex(d, "l2")
    index.add(x)
    allowed = np.arange(0, n, 4, dtype=np.int64)
    _, _, mflops = index._impl.search(x[:2], 5, d, 0, 0, 1, [], allowed, 0.0)  # bitset scan
    np.testing.assert_allclose(mflops, len(allowed) * d * 1e-6)
    _, _, mflops = index._impl.search(x[:2], 5, d, 0, 0, 1, [], allowed, 1.0)  # direct
    np.testing.assert_allclose(mflops, len(allowed) * d * 1e-6)


def test_threads_do_not_change_filtered_results():
    rng = np.random.default_rng(np.random.SeedSequence().entropy % 2**32)
    n, d = 8000, 16
    x = clustered(rng, n, d)
    for index in (adanns.FlatIndex(d, "cosine"), adanns.IVFIndex(d, 32, "ip", seed=2)):
        if isinstance(index, adanns.IVFIndex):
            index.train(x)
        index.add(x, attributes=make_attributes(rng, n))
        q = clustered(rng, 37, d)
        for expr in ({"key": "year", "range": {"gte": 1990}}, {"key": "lang", "match": {"value": "de"}},
                     {"must_not": [{"key": "stock", "match": {"value": True}}]}):
            a = index.search(q, 10, threads=1, filter=expr)
            b = index.search(q, 10, threads=2, filter=expr)
            np.testing.assert_array_equal(a.ids, b.ids)
            np.testing.assert_array_equal(a.scores, b.scores)


def test_removed_ids_never_returned_and_upsert_replaces_attributes():
    rng = np.random.default_rng(5)
    n, d = 3000, 8
    x = rng.standard_normal((n, d)).astype(np.float32)
    index = adanns.FlatIndex(d, "l2")
    index.add(x, attributes={"year": np.arange(n) % 50})
    gone = np.arange(0, n, 3)
    index.remove(gone)
    res = index.search(x[:20], 10, filter={"key": "year", "range": {"lt": 25}})
    assert not np.isin(res.ids, gone).any()
    assert np.isin(gone, index.compile_filter({})).sum() == 0
    index.upsert(x[1:3] + 1, [1, 2], attributes={"year": [999, 998], "lang": ["xx", ["yy", "zz"]]})
    assert index.attributes([1, 2]) == [{"year": 999, "lang": ["xx"]}, {"year": 998, "lang": ["yy", "zz"]}]
    assert set(index.compile_filter({"key": "year", "range": {"gt": 900}})) == {1, 2}
    assert index.compile_filter({"key": "lang", "match": {"value": "zz"}}).tolist() == [2]
    assert len(index) == n - len(gone)
    index.add(x[:2], attributes=None)  # default ids, rows without attributes
    assert index.attributes(index.ids()[-2:]) == [{}, {}]


def test_attributes_survive_save_load_with_the_tuned_frontier(tmp_path):
    rng = np.random.default_rng(7)
    n, d = 2000, 8
    x = rng.standard_normal((n, d)).astype(np.float32)
    index = adanns.IVFIndex(d, 16, "l2", seed=0)
    index.train(x)
    index.declare("score", "float")
    index.add(x, attributes={"lang": ["en" if i % 3 else "fr" for i in range(n)], "score": rng.random(n)})
    index.tune(x[:50], k=5, grid=[{"nprobe": 1}, {"nprobe": 16}])
    index.remove([0, 1, 2])
    path = tmp_path / "ivf.adn"
    index.save(path)
    loaded = adanns.load(path)
    assert loaded.attribute_types() == {"score": "float", "lang": "keyword"}
    assert loaded.attributes([3, 10]) == index.attributes([3, 10])
    expr = {"must": [{"key": "lang", "match": {"value": "fr"}}], "must_not": [{"key": "score", "range": {"lt": 0.5}}]}
    np.testing.assert_array_equal(loaded.compile_filter(expr), index.compile_filter(expr))
    np.testing.assert_array_equal(loaded.search(x[:5], 5, nprobe=4, filter=expr).ids,
                                  index.search(x[:5], 5, nprobe=4, filter=expr).ids)
    assert 5 in loaded.frontiers()
    loaded.search(x[:5], 5, target_recall=0.9, filter=expr)

    assert b"attributes" not in loaded._impl.user_meta()  # in memory the metadata stays small
    loaded.save(tmp_path / "again.adn")
    assert adanns.load(tmp_path / "again.adn").attributes([3]) == index.attributes([3])

    # Attribute metadata that does not match the index is refused at load.
    raw = adanns.load(path, mmap=True)  # noqa: F841 (loads fine)
    import json
    meta = json.loads(loaded._impl.user_meta() or b"{}")
    meta["attributes"] = {**index._attrs.as_dict(), "ids": [4] + index._attrs.as_dict()["ids"][1:]}
    loaded._impl.set_user_meta(json.dumps(meta).encode())
    loaded._impl.save(str(tmp_path / "bad.adn"))
    with pytest.raises(ValueError, match="attribute metadata"):
        adanns.load(tmp_path / "bad.adn")


BAD_FILTERS = [
    ({"key": "nope", "match": {"value": "x"}}, "unknown field 'nope'"),
    ({"key": "year", "match": {"value": "1999"}}, "is int"),
    ({"key": "lang", "range": {"gt": 3}}, "range needs an int or float"),
    ({"key": "price", "match": {"value": 3}}, "match it with a range"),
    ({"key": "year", "range": {"between": 3}}, "range must be"),
    ({"key": "year", "range": {"gt": float("nan")}}, "finite"),
    ({"must": {"key": "year"}}, "must be a list"),
    ({"must": [], "filter": []}, "unexpected keys"),
    ({"key": "lang"}, "exactly one of match or range"),
    ({"has_id": [1.5]}, "integer ids"),
    ({"has_id": [2 ** 64]}, "integer ids"),
    ({"lang": "en"}, "a condition needs"),
    ("lang = en", "must be an object"),
    ({"should": [{"key": "stock", "match": {"value": 1}}]}, "is bool"),
]


@pytest.mark.parametrize("expr,message", BAD_FILTERS)
def test_bad_filters_raise_before_anything_runs(expr, message):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((200, 8)).astype(np.float32)
    index = adanns.FlatIndex(8, "l2")
    index.add(x, attributes=make_attributes(rng, 200))
    before = (index.ids().copy(), index.attributes(index.ids()))
    with pytest.raises(ValueError, match=message):
        index.search(x[:2], 5, filter=expr)
    assert np.array_equal(index.ids(), before[0]) and index.attributes(index.ids()) == before[1]


@pytest.mark.parametrize("attributes,error", [
    ({"year": [1, 2]}, ValueError),                   # wrong length
    ({"year": [1, "x", 3]}, TypeError),               # inferred int, then a string
    ({"lang": [1.5, "a", "b"]}, TypeError),           # inferred float, then strings
    ({"price": [1.0, float("nan"), 2.0]}, ValueError),
    ({"tags": [["a"], [1], ["b"]]}, TypeError),
    ("year", TypeError),
])
def test_bad_attributes_change_nothing(attributes, error):
    index = adanns.FlatIndex(4, "l2")
    index.add(np.ones((2, 4), np.float32), attributes={"year": [1, 2], "lang": ["a", "b"]})
    with pytest.raises(error):
        index.add(np.zeros((3, 4), np.float32), attributes=attributes)
    assert len(index) == 2 and index.attribute_types() == {"year": "int", "lang": "keyword"}
    assert index.attributes([0, 1]) == [{"year": 1, "lang": ["a"]}, {"year": 2, "lang": ["b"]}]


def test_compiled_filters_match_the_reference_on_many_random_expressions():
    """Compilation alone (cheap), on many random nested expressions: a lone `should` nested in `must` once
    raised KeyError, found by the random filters of the test above."""
    rng = np.random.default_rng(np.random.SeedSequence().entropy % 2**32)
    n = 2000
    index = adanns.FlatIndex(4, "ip")
    index.add(rng.standard_normal((n, 4)).astype(np.float32), attributes=make_attributes(rng, n))
    ids = index.ids()
    leaf = random_leaf(rng, ids)
    exprs = [{"must": [{"should": [leaf, random_leaf(rng, ids)]}]}, {"must": [{"should": []}]},
             {"must": [{"should": [leaf]}], "must_not": [random_leaf(rng, ids)]}]
    exprs += [random_filter(rng, ids) for _ in range(200)]
    for expr in exprs:
        np.testing.assert_array_equal(index.compile_filter(expr), np.sort(reference_ids(index, expr, ids)),
                                      err_msg=str(expr))
