"""FlatIndex: exact search against a float64 numpy brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import adanns
from _reference import (
    METRICS,
    assert_rerank_matches,
    assert_topk_matches,
    check_result_shape,
    gaussian,
    pad_score,
    ref_scores,
    score_tol,
)


def _flat(x, metric, ids=None):
    index = adanns.FlatIndex(x.shape[1], metric=metric)
    index.add(x, ids=ids)
    return index


def _check(index, x, q, k, metric, s=None, row_ids=None):
    """Search (with search_dim=s when given) and compare with the brute force on the prefix."""
    res = index.search(q, k=k) if s is None else index.search(q, k=k, search_dim=s)
    s = q.shape[1] if s is None else s
    row_ids = np.arange(len(x)) if row_ids is None else row_ids
    assert_topk_matches(res, ref_scores(q, x, s, metric), row_ids, k, metric, score_tol(q, x, s, metric))
    return res


# --------------------------------------------------------------------------- basics


@pytest.mark.parametrize("metric", METRICS)
def test_new_index_is_empty_and_trained(metric):
    index = adanns.FlatIndex(24, metric=metric)
    assert len(index) == 0
    assert index.dim == 24
    assert index.metric == metric
    assert index.is_trained is True


def test_add_grows_len(rng):
    index = adanns.FlatIndex(8)
    index.add(gaussian(rng, 10, 8))
    index.add(gaussian(rng, 5, 8))
    assert len(index) == 15


def test_search_on_empty_index_returns_only_padding(rng):
    for metric in METRICS:
        index = adanns.FlatIndex(8, metric=metric)
        scores, ids = check_result_shape(index.search(gaussian(rng, 3, 8), k=4), 3, 4)
        assert np.all(ids == -1)
        assert np.all(scores == pad_score(metric))


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("metric", METRICS)
def test_search_matches_brute_force(metric, rng):
    x = gaussian(rng, 1500, 32)
    q = gaussian(rng, 20, 32)
    _check(_flat(x, metric), x, q, 10, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_search_matches_brute_force_with_offset_data(metric, rng):
    # a common offset makes l2 by norm expansion lose digits; scores must still be right
    x = gaussian(rng, 800, 24, offset=5.0)
    q = gaussian(rng, 10, 24, offset=5.0)
    _check(_flat(x, metric), x, q, 7, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_search_matches_brute_force_at_every_simd_level(each_simd_level, metric, rng):
    x = gaussian(rng, 700, 33)
    q = gaussian(rng, 9, 33)
    _check(_flat(x, metric), x, q, 8, metric)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("s", [1, 5, 16, 31])
def test_search_dim_prefix_matches_brute_force_on_prefix(metric, s, rng):
    x = gaussian(rng, 1000, 32)
    q = gaussian(rng, 12, 32)
    _check(_flat(x, metric), x, q, 10, metric, s=s)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("m", [1, 8, 20])
def test_short_query_searches_the_matryoshka_prefix(metric, m, rng):
    x = gaussian(rng, 1000, 32)
    q = gaussian(rng, 12, m)
    index = _flat(x, metric)
    res = index.search(q, k=10)  # search_dim defaults to the query length
    assert_topk_matches(res, ref_scores(q, x, m, metric), np.arange(len(x)), 10, metric, score_tol(q, x, m, metric))


@pytest.mark.parametrize("metric", METRICS)
def test_short_query_equals_full_query_with_search_dim(metric, rng):
    x = gaussian(rng, 600, 32)
    q = gaussian(rng, 6, 32)
    index = _flat(x, metric)
    a = index.search(np.ascontiguousarray(q[:, :12]), k=9)
    b = index.search(q, k=9, search_dim=12)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)


@pytest.mark.parametrize("metric", METRICS)
def test_short_query_with_smaller_search_dim(metric, rng):
    x = gaussian(rng, 600, 32)
    q = gaussian(rng, 6, 20)
    _check(_flat(x, metric), x, q, 9, metric, s=7)


# --------------------------------------------------------------------------- re-ranking


@pytest.mark.parametrize("metric", METRICS)
def test_rerank_over_all_rows_equals_full_dim_brute_force(metric, rng):
    x = gaussian(rng, 500, 48)
    q = gaussian(rng, 8, 48)
    index = _flat(x, metric)
    res = index.search(q, k=10, search_dim=4, rerank_dim=48, rerank_k=len(x))
    assert_topk_matches(res, ref_scores(q, x, 48, metric), np.arange(len(x)), 10, metric, score_tol(q, x, 48, metric))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("s,r,rk", [(4, 48, 30), (8, 24, 10), (16, 48, 100)])
def test_rerank_is_top_k_of_rerank_scores_among_search_candidates(metric, s, r, rk, rng):
    x = gaussian(rng, 800, 48)
    q = gaussian(rng, 8, 48)
    res = _flat(x, metric).search(q, k=10, search_dim=s, rerank_dim=r, rerank_k=rk)
    assert_rerank_matches(
        res, ref_scores(q, x, s, metric), ref_scores(q, x, r, metric), np.arange(len(x)), 10, rk, metric,
        score_tol(q, x, s, metric), score_tol(q, x, r, metric),
    )


@pytest.mark.parametrize("metric", METRICS)
def test_rerank_k_defaults_to_k(metric, rng):
    x = gaussian(rng, 400, 32)
    q = gaussian(rng, 5, 32)
    index = _flat(x, metric)
    a = index.search(q, k=6, search_dim=8, rerank_dim=32)
    b = index.search(q, k=6, search_dim=8, rerank_dim=32, rerank_k=6)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)


@pytest.mark.parametrize("metric", METRICS)
def test_rerank_dim_defaults_to_query_length(metric, rng):
    x = gaussian(rng, 400, 32)
    q = gaussian(rng, 5, 24)
    index = _flat(x, metric)
    a = index.search(q, k=6, search_dim=8, rerank_k=50)
    b = index.search(q, k=6, search_dim=8, rerank_dim=24, rerank_k=50)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert_rerank_matches(
        a, ref_scores(q, x, 8, metric), ref_scores(q, x, 24, metric), np.arange(len(x)), 6, 50, metric,
        score_tol(q, x, 8, metric), score_tol(q, x, 24, metric),
    )


# --------------------------------------------------------------------------- padding, ids, ties


@pytest.mark.parametrize("metric", METRICS)
def test_k_larger_than_len_pads_with_minus_one_and_infinite_scores(metric, rng):
    x = gaussian(rng, 5, 8)
    q = gaussian(rng, 3, 8)
    res = _check(_flat(x, metric), x, q, 9, metric)
    assert np.all(np.asarray(res.ids)[:, 5:] == -1)
    expected_pad = np.inf if metric == "l2" else -np.inf
    assert np.all(np.asarray(res.scores)[:, 5:] == expected_pad)


def test_default_ids_are_row_numbers_on_empty_index(rng):
    x = gaussian(rng, 50, 8)
    index = _flat(x, "l2")
    res = index.search(x, k=1)
    np.testing.assert_array_equal(np.asarray(res.ids)[:, 0], np.arange(50))


def test_default_ids_continue_after_the_largest_id(rng):
    index = adanns.FlatIndex(8, metric="l2")
    index.add(gaussian(rng, 3, 8), ids=np.array([7, 10**12, 3], dtype=np.int64))
    y = gaussian(rng, 4, 8)
    index.add(y)
    res = index.search(y, k=1)
    np.testing.assert_array_equal(np.asarray(res.ids)[:, 0], 10**12 + 1 + np.arange(4))
    z = gaussian(rng, 2, 8)
    index.add(z)
    np.testing.assert_array_equal(np.asarray(index.search(z, k=1).ids)[:, 0], 10**12 + 5 + np.arange(2))


@pytest.mark.parametrize("metric", METRICS)
def test_explicit_ids_are_returned(metric, rng):
    x = gaussian(rng, 300, 16)
    q = gaussian(rng, 7, 16)
    ids = rng.choice(10**6, size=300, replace=False).astype(np.int64) * 10**6 + 10**12
    index = _flat(x, metric, ids=ids)
    _check(index, x, q, 10, metric, row_ids=ids)


def test_explicit_ids_accept_python_list(rng):
    x = gaussian(rng, 3, 4)
    index = adanns.FlatIndex(4, metric="l2")
    index.add(x, ids=[5, 2**40, 9])
    np.testing.assert_array_equal(np.asarray(index.search(x, k=1).ids)[:, 0], [5, 2**40, 9])


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_equal_scores_are_ordered_by_smaller_id(metric, rng):
    # small integers: every summation order gives the same float, so the ties are exact
    base = rng.integers(-3, 4, size=(4, 8)).astype(np.float32)
    x = np.repeat(base, 5, axis=0)  # 5 identical copies of each row
    ids = rng.permutation(np.arange(100, 120)).astype(np.int64)
    index = _flat(x, metric, ids=ids)
    q = rng.integers(-3, 4, size=(3, 8)).astype(np.float32)
    res = index.search(q, k=20)
    ref = ref_scores(q, x, 8, metric)
    scores, got_ids = np.asarray(res.scores), np.asarray(res.ids)
    for qi in range(len(q)):
        order = sorted(range(20), key=lambda j: ((-ref[qi, j]) if metric == "ip" else ref[qi, j], ids[j]))
        np.testing.assert_array_equal(got_ids[qi], ids[order])
        np.testing.assert_array_equal(scores[qi], ref[qi, order].astype(np.float32))


# --------------------------------------------------------------------------- remove


@pytest.mark.parametrize("metric", METRICS)
def test_removed_ids_are_never_returned(metric, rng):
    x = gaussian(rng, 400, 16)
    index = _flat(x, metric)
    gone = rng.choice(400, size=150, replace=False).astype(np.int64)
    assert index.remove(gone) == 150
    assert len(index) == 250
    keep = np.setdiff1d(np.arange(400), gone)
    q = np.concatenate([x[gone[:5]], gaussian(rng, 5, 16)])
    res = index.search(q, k=20)
    assert not np.isin(np.asarray(res.ids), gone).any()
    assert_topk_matches(res, ref_scores(q, x[keep], 16, metric), keep, 20, metric, score_tol(q, x[keep], 16, metric))


def test_remove_everything_leaves_an_empty_index(rng):
    x = gaussian(rng, 20, 8)
    index = _flat(x, "ip")
    assert index.remove(np.arange(20, dtype=np.int64)) == 20
    assert len(index) == 0
    assert np.all(np.asarray(index.search(x[:2], k=3).ids) == -1)


def test_remove_unknown_id_raises_key_error_and_changes_nothing(rng):
    x = gaussian(rng, 30, 8)
    index = _flat(x, "l2")
    before = index.search(x, k=5)
    with pytest.raises(KeyError):
        index.remove(np.array([1, 2, 999], dtype=np.int64))
    assert len(index) == 30
    after = index.search(x, k=5)
    np.testing.assert_array_equal(before.ids, after.ids)
    np.testing.assert_array_equal(before.scores, after.scores)
    assert index.remove(np.array([1, 2], dtype=np.int64)) == 2


def test_removed_id_can_be_added_again(rng):
    x = gaussian(rng, 10, 8)
    index = _flat(x, "l2")
    index.remove(np.array([4], dtype=np.int64))
    y = gaussian(rng, 1, 8)
    index.add(y, ids=np.array([4], dtype=np.int64))
    assert len(index) == 10
    assert int(np.asarray(index.search(y, k=1).ids)[0, 0]) == 4


# --------------------------------------------------------------------------- threads, results, mflops


@pytest.mark.parametrize("metric", METRICS)
def test_thread_count_does_not_change_results(metric, rng):
    x = gaussian(rng, 2000, 24)
    q = gaussian(rng, 33, 24)
    index = _flat(x, metric)
    a = index.search(q, k=10, threads=1)
    for t in (2, 3):
        b = index.search(q, k=10, threads=t)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.scores, b.scores)


def test_result_unpacks_to_scores_and_ids(rng):
    x = gaussian(rng, 50, 8)
    res = _flat(x, "ip").search(x[:4], k=3)
    scores, ids = res
    np.testing.assert_array_equal(scores, res.scores)
    np.testing.assert_array_equal(ids, res.ids)


def test_one_dimensional_query_is_a_single_query(rng):
    x = gaussian(rng, 100, 12)
    q = gaussian(rng, 1, 12)
    index = _flat(x, "cosine")
    a = index.search(q[0], k=5)
    b = index.search(q, k=5)
    np.testing.assert_array_equal(np.asarray(a.ids).reshape(1, 5), b.ids)
    np.testing.assert_array_equal(np.asarray(a.scores).reshape(1, 5), b.scores)


def test_mflops_is_rows_times_search_dim(rng):
    x = gaussian(rng, 1234, 32)
    q = gaussian(rng, 3, 32)
    index = _flat(x, "ip")
    for s in (32, 8):
        res = index.search(q, k=5, search_dim=s)
        mf = np.asarray(res.mflops)
        assert mf.shape == (3,) and mf.dtype == np.float64
        np.testing.assert_allclose(mf, 1234 * s / 1e6, rtol=1e-9)
        assert index.estimate_mflops(k=5, search_dim=s) == pytest.approx(1234 * s / 1e6, rel=1e-9)


def test_mflops_adds_the_rerank_term(rng):
    x = gaussian(rng, 1000, 32)
    q = gaussian(rng, 2, 32)
    index = _flat(x, "l2")
    res = index.search(q, k=5, search_dim=8, rerank_dim=32, rerank_k=40)
    want = (1000 * 8 + 40 * 32) / 1e6
    np.testing.assert_allclose(res.mflops, want, rtol=1e-9)
    assert index.estimate_mflops(k=5, search_dim=8, rerank_dim=32, rerank_k=40) == pytest.approx(want, rel=1e-9)
    # rerank_k beyond len reranks every row once
    res = index.search(q, k=5, search_dim=8, rerank_dim=32, rerank_k=5000)
    np.testing.assert_allclose(res.mflops, (1000 * 8 + 1000 * 32) / 1e6, rtol=1e-9)


def test_mflops_of_a_short_query_uses_its_length(rng):
    x = gaussian(rng, 500, 32)
    res = _flat(x, "cosine").search(gaussian(rng, 2, 12), k=3)
    np.testing.assert_allclose(res.mflops, 500 * 12 / 1e6, rtol=1e-9)


# --------------------------------------------------------------------------- property


@given(
    n=st.integers(1, 300),
    d=st.integers(1, 40),
    k=st.integers(1, 25),
    metric=st.sampled_from(METRICS),
    data=st.data(),
)
def test_flat_search_equals_brute_force_property(n, d, k, metric, data):
    s = data.draw(st.integers(1, d), label="search_dim")
    m = data.draw(st.integers(s, d), label="query_len")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    x = gaussian(rng, n, d)
    q = gaussian(rng, 4, m)
    res = _flat(x, metric).search(q, k=k, search_dim=s)
    assert_topk_matches(res, ref_scores(q, x, s, metric), np.arange(n), k, metric, score_tol(q, x, s, metric))


@given(
    n=st.integers(1, 200),
    d=st.integers(2, 40),
    k=st.integers(1, 15),
    metric=st.sampled_from(METRICS),
    data=st.data(),
)
def test_flat_rerank_equals_two_stage_reference_property(n, d, k, metric, data):
    m = data.draw(st.integers(2, d), label="query_len")
    r = data.draw(st.integers(2, m), label="rerank_dim")
    s = data.draw(st.integers(1, r - 1), label="search_dim")
    rk = data.draw(st.integers(k, max(k, n) + 5), label="rerank_k")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    x = gaussian(rng, n, d)
    q = gaussian(rng, 3, m)
    res = _flat(x, metric).search(q, k=k, search_dim=s, rerank_dim=r, rerank_k=rk)
    assert_rerank_matches(
        res, ref_scores(q, x, s, metric), ref_scores(q, x, r, metric), np.arange(n), k, rk, metric,
        score_tol(q, x, s, metric), score_tol(q, x, r, metric),
    )


def test_concurrent_searches_from_python_threads_match_serial(rng):
    from concurrent.futures import ThreadPoolExecutor

    x = gaussian(rng, 3000, 32)
    qs = [gaussian(rng, 17, 32) for _ in range(8)]
    index = _flat(x, "cosine")
    serial = [index.search(q, k=10, search_dim=16, threads=2) for q in qs]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda q: index.search(q, k=10, search_dim=16, threads=2), qs))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.scores, b.scores)
