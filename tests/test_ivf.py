"""IVFIndex: exhaustive probing is exact; partial probing is consistent; ids, remove, mflops."""

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
    larger_is_better,
    pad_score,
    ref_scores,
    score_tol,
)


def _ivf(x, nlist, metric, ids=None, cluster_dim=None, seed=0, train=None):
    index = adanns.IVFIndex(x.shape[1], nlist, metric=metric, cluster_dim=cluster_dim, seed=seed)
    index.train(x if train is None else train)
    index.add(x, ids=ids)
    return index


def _exact(index, x, q, k, metric, s=None, row_ids=None, **kw):
    """Exhaustive probe must equal the brute force on the searched prefix."""
    res = index.search(q, k=k, nprobe=index.nlist, **({} if s is None else {"search_dim": s}), **kw)
    s = q.shape[1] if s is None else s
    row_ids = np.arange(len(x)) if row_ids is None else row_ids
    assert_topk_matches(res, ref_scores(q, x, s, metric), row_ids, k, metric, score_tol(q, x, s, metric))
    return res


# --------------------------------------------------------------------------- state


@pytest.mark.parametrize("metric", METRICS)
def test_new_index_is_untrained_with_given_parameters(metric):
    index = adanns.IVFIndex(32, 8, metric=metric)
    assert index.is_trained is False
    assert len(index) == 0
    assert index.dim == 32
    assert index.nlist == 8
    assert index.metric == metric
    assert index.cluster_dim == 32


def test_cluster_dim_is_kept(rng):
    index = adanns.IVFIndex(32, 4, cluster_dim=8)
    assert index.cluster_dim == 8
    index.train(gaussian(rng, 200, 32))
    c = np.asarray(index.centroids)
    assert c.shape == (4, 8) and c.dtype == np.float32


def test_train_sets_centroids_and_adds_no_rows(rng):
    index = adanns.IVFIndex(16, 10)
    index.train(gaussian(rng, 500, 16))
    assert index.is_trained is True
    assert len(index) == 0
    c = np.asarray(index.centroids)
    assert c.shape == (10, 16) and c.dtype == np.float32 and np.all(np.isfinite(c))
    sizes = np.asarray(index.list_sizes())
    assert sizes.shape == (10,) and sizes.dtype == np.int64
    assert sizes.sum() == 0


@pytest.mark.parametrize("metric", METRICS)
def test_list_sizes_sum_to_len(metric, rng):
    x = gaussian(rng, 900, 16)
    index = _ivf(x, 12, metric)
    sizes = np.asarray(index.list_sizes())
    assert np.all(sizes >= 0)
    assert sizes.sum() == 900 == len(index)
    index.remove(np.arange(0, 900, 3, dtype=np.int64))
    assert np.asarray(index.list_sizes()).sum() == 600 == len(index)


def test_rows_go_to_their_nearest_centroid_for_l2(rng):
    x = gaussian(rng, 600, 8)
    index = _ivf(x, 6, "l2")
    c = np.asarray(index.centroids).astype(np.float64)
    d = ((x[:, None, :].astype(np.float64) - c[None]) ** 2).sum(-1)
    srt = np.sort(d, axis=1)
    clear = srt[:, 1] - srt[:, 0] > 1e-3 * srt[:, 1]  # skip near ties between two centroids
    counts = np.bincount(d.argmin(1)[clear], minlength=6)
    sizes = np.asarray(index.list_sizes())
    assert np.all(sizes >= counts)
    assert np.all(sizes <= counts + (~clear).sum())


# --------------------------------------------------------------------------- training determinism


def test_same_seed_gives_identical_centroids(rng):
    x = gaussian(rng, 1000, 16)
    seed = int(rng.integers(0, 2**31))
    a = adanns.IVFIndex(16, 8, seed=seed)
    b = adanns.IVFIndex(16, 8, seed=seed)
    a.train(x, threads=1)
    b.train(x, threads=2)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    a.add(x)
    b.add(x)
    np.testing.assert_array_equal(a.list_sizes(), b.list_sizes())


def test_different_seeds_give_different_centroids(rng):
    x = gaussian(rng, 1000, 16)
    seed = int(rng.integers(0, 2**31))
    a = adanns.IVFIndex(16, 8, seed=seed)
    b = adanns.IVFIndex(16, 8, seed=seed + 1)
    a.train(x)
    b.train(x)
    assert not np.array_equal(a.centroids, b.centroids)


# --------------------------------------------------------------------------- exhaustive probing is exact


@pytest.mark.parametrize("metric", METRICS)
def test_exhaustive_probe_matches_brute_force(metric, rng):
    x = gaussian(rng, 2000, 32)
    q = gaussian(rng, 20, 32)
    _exact(_ivf(x, 16, metric), x, q, 10, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_exhaustive_probe_matches_brute_force_at_every_simd_level(each_simd_level, metric, rng):
    x = gaussian(rng, 700, 33)
    q = gaussian(rng, 9, 33)
    _exact(_ivf(x, 7, metric), x, q, 8, metric)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("s", [1, 6, 31])
def test_exhaustive_probe_with_search_dim_prefix(metric, s, rng):
    x = gaussian(rng, 1000, 32)
    q = gaussian(rng, 10, 32)
    _exact(_ivf(x, 8, metric), x, q, 10, metric, s=s)


@pytest.mark.parametrize("metric", METRICS)
def test_exhaustive_probe_with_short_query(metric, rng):
    x = gaussian(rng, 1000, 32)
    q = gaussian(rng, 10, 12)
    _exact(_ivf(x, 8, metric, cluster_dim=8), x, q, 10, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_exhaustive_probe_with_cluster_dim_prefix(metric, rng):
    x = gaussian(rng, 1000, 32)
    q = gaussian(rng, 10, 32)
    _exact(_ivf(x, 8, metric, cluster_dim=4), x, q, 10, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_rerank_over_all_rows_equals_full_dim_brute_force(metric, rng):
    x = gaussian(rng, 600, 40)
    q = gaussian(rng, 8, 40)
    index = _ivf(x, 6, metric)
    res = index.search(q, k=10, nprobe=6, search_dim=4, rerank_dim=40, rerank_k=len(x))
    assert_topk_matches(res, ref_scores(q, x, 40, metric), np.arange(len(x)), 10, metric, score_tol(q, x, 40, metric))


@pytest.mark.parametrize("metric", METRICS)
def test_rerank_with_exhaustive_probe_is_two_stage_reference(metric, rng):
    x = gaussian(rng, 800, 40)
    q = gaussian(rng, 8, 40)
    res = _ivf(x, 8, metric).search(q, k=10, nprobe=8, search_dim=8, rerank_dim=40, rerank_k=40)
    assert_rerank_matches(
        res, ref_scores(q, x, 8, metric), ref_scores(q, x, 40, metric), np.arange(len(x)), 10, 40, metric,
        score_tol(q, x, 8, metric), score_tol(q, x, 40, metric),
    )


# --------------------------------------------------------------------------- partial probing


@pytest.mark.parametrize("metric", METRICS)
def test_partial_probe_returns_true_scores_of_returned_ids(metric, rng):
    x = gaussian(rng, 1500, 24)
    q = gaussian(rng, 15, 24)
    index = _ivf(x, 16, metric)
    res = index.search(q, k=10, nprobe=3)
    scores, ids = check_result_shape(res, 15, 10)
    ref = ref_scores(q, x, 24, metric)
    tol = score_tol(q, x, 24, metric)
    sign = 1.0 if larger_is_better(metric) else -1.0
    for qi in range(len(q)):
        ok = ids[qi] >= 0
        assert np.all(ids[qi, ok.sum():] == -1), "padding must be at the end"
        assert np.all(scores[qi, ~ok] == pad_score(metric))
        got = scores[qi, ok].astype(np.float64)
        assert len(set(ids[qi, ok].tolist())) == ok.sum()
        np.testing.assert_allclose(got, ref[qi, ids[qi, ok]], rtol=0, atol=tol[qi])
        assert np.all(sign * np.diff(got) <= 0)


@pytest.mark.parametrize("metric", METRICS)
def test_more_probes_never_give_worse_results(metric, rng):
    x = gaussian(rng, 1500, 16)
    q = gaussian(rng, 20, 16)
    index = _ivf(x, 12, metric)
    tol = score_tol(q, x, 16, metric)[:, None]
    sign = 1.0 if larger_is_better(metric) else -1.0
    prev = None
    for nprobe in (1, 2, 4, 8, 12):
        cur = sign * np.asarray(index.search(q, k=10, nprobe=nprobe).scores, dtype=np.float64)
        if prev is not None:
            assert np.all(cur >= prev - tol), f"nprobe={nprobe} is worse than fewer probes"
        prev = cur


def test_partial_probe_finds_own_vector_on_separated_clusters(rng):
    # every row's own cluster is the nearest one, so nprobe=1 finds an exact duplicate query
    centers = rng.standard_normal((8, 16)) * 50
    x = (np.repeat(centers, 100, axis=0) + rng.standard_normal((800, 16))).astype(np.float32)
    index = _ivf(x, 8, "l2")
    res = index.search(x[::37], k=1, nprobe=1)
    np.testing.assert_array_equal(np.asarray(res.ids)[:, 0], np.arange(800)[::37])


# --------------------------------------------------------------------------- padding, ids, remove


@pytest.mark.parametrize("metric", METRICS)
def test_k_larger_than_len_pads_with_minus_one_and_infinite_scores(metric, rng):
    x = gaussian(rng, 6, 8)
    q = gaussian(rng, 3, 8)
    index = _ivf(x, 2, metric)
    res = _exact(index, x, q, 10, metric)
    assert np.all(np.asarray(res.ids)[:, 6:] == -1)
    assert np.all(np.asarray(res.scores)[:, 6:] == (np.inf if metric == "l2" else -np.inf))


def test_search_on_trained_empty_index_returns_only_padding(rng):
    for metric in METRICS:
        index = adanns.IVFIndex(8, 3, metric=metric)
        index.train(gaussian(rng, 30, 8))
        scores, ids = check_result_shape(index.search(gaussian(rng, 2, 8), k=4, nprobe=3), 2, 4)
        assert np.all(ids == -1)
        assert np.all(scores == pad_score(metric))


@pytest.mark.parametrize("metric", METRICS)
def test_explicit_ids_are_returned(metric, rng):
    x = gaussian(rng, 400, 16)
    q = gaussian(rng, 7, 16)
    ids = rng.choice(10**6, size=400, replace=False).astype(np.int64) * 10**6 + 10**12
    _exact(_ivf(x, 5, metric, ids=ids), x, q, 10, metric, row_ids=ids)


def test_default_ids_continue_after_the_largest_id(rng):
    x = gaussian(rng, 100, 8)
    index = adanns.IVFIndex(8, 4, metric="l2")
    index.train(x)
    index.add(x[:3])  # 0, 1, 2
    index.add(x[3:5], ids=np.array([10**12, 17], dtype=np.int64))
    index.add(x[5:9])
    res = index.search(x[:9], k=1, nprobe=4)
    np.testing.assert_array_equal(
        np.asarray(res.ids)[:, 0], [0, 1, 2, 10**12, 17, 10**12 + 1, 10**12 + 2, 10**12 + 3, 10**12 + 4]
    )


@pytest.mark.parametrize("metric", METRICS)
def test_removed_ids_are_never_returned(metric, rng):
    x = gaussian(rng, 600, 16)
    index = _ivf(x, 6, metric)
    gone = rng.choice(600, size=250, replace=False).astype(np.int64)
    assert index.remove(gone) == 250
    assert len(index) == 350
    keep = np.setdiff1d(np.arange(600), gone)
    q = np.concatenate([x[gone[:5]], gaussian(rng, 5, 16)])
    res = index.search(q, k=15, nprobe=6)
    assert not np.isin(np.asarray(res.ids), gone).any()
    assert_topk_matches(res, ref_scores(q, x[keep], 16, metric), keep, 15, metric, score_tol(q, x[keep], 16, metric))


def test_remove_unknown_id_raises_key_error_and_changes_nothing(rng):
    x = gaussian(rng, 60, 8)
    index = _ivf(x, 3, "l2")
    before = index.search(x, k=5, nprobe=3)
    sizes = np.asarray(index.list_sizes()).copy()
    with pytest.raises(KeyError):
        index.remove(np.array([0, 5, 10**9], dtype=np.int64))
    assert len(index) == 60
    np.testing.assert_array_equal(index.list_sizes(), sizes)
    after = index.search(x, k=5, nprobe=3)
    np.testing.assert_array_equal(before.ids, after.ids)
    np.testing.assert_array_equal(before.scores, after.scores)


def test_removed_id_can_be_added_again(rng):
    x = gaussian(rng, 40, 8)
    index = _ivf(x, 4, "l2")
    index.remove(np.array([7], dtype=np.int64))
    y = gaussian(rng, 1, 8)
    index.add(y, ids=np.array([7], dtype=np.int64))
    assert len(index) == 40
    assert int(np.asarray(index.search(y, k=1, nprobe=4).ids)[0, 0]) == 7


# --------------------------------------------------------------------------- threads, results


@pytest.mark.parametrize("metric", METRICS)
def test_thread_count_does_not_change_results(metric, rng):
    x = gaussian(rng, 2000, 24)
    q = gaussian(rng, 33, 24)
    index = _ivf(x, 10, metric)
    for nprobe in (1, 4, 10):
        a = index.search(q, k=10, nprobe=nprobe, threads=1)
        for t in (2, 3):
            b = index.search(q, k=10, nprobe=nprobe, threads=t)
            np.testing.assert_array_equal(a.ids, b.ids)
            np.testing.assert_array_equal(a.scores, b.scores)
            np.testing.assert_array_equal(a.mflops, b.mflops)


def test_result_unpacks_to_scores_and_ids(rng):
    x = gaussian(rng, 50, 8)
    res = _ivf(x, 2, "ip").search(x[:4], k=3, nprobe=2)
    scores, ids = res
    np.testing.assert_array_equal(scores, res.scores)
    np.testing.assert_array_equal(ids, res.ids)


# --------------------------------------------------------------------------- mflops


@pytest.mark.parametrize("cluster_dim", [None, 6])
def test_mflops_with_exhaustive_probe_equals_formula_and_estimate(cluster_dim, rng):
    x = gaussian(rng, 1200, 24)
    q = gaussian(rng, 4, 24)
    index = _ivf(x, 10, "ip", cluster_dim=cluster_dim)
    cd = index.cluster_dim
    for s in (24, 8):
        res = index.search(q, k=5, nprobe=10, search_dim=s)
        want = (10 * cd + 1200 * s) / 1e6
        mf = np.asarray(res.mflops)
        assert mf.shape == (4,) and mf.dtype == np.float64
        np.testing.assert_allclose(mf, want, rtol=1e-9)
        assert index.estimate_mflops(k=5, nprobe=10, search_dim=s) == pytest.approx(want, rel=1e-9)
    res = index.search(q, k=5, nprobe=10, search_dim=8, rerank_dim=24, rerank_k=30)
    want = (10 * cd + 1200 * 8 + 30 * 24) / 1e6
    np.testing.assert_allclose(res.mflops, want, rtol=1e-9)
    assert index.estimate_mflops(k=5, nprobe=10, search_dim=8, rerank_dim=24, rerank_k=30) == pytest.approx(
        want, rel=1e-9
    )


@pytest.mark.parametrize("metric", METRICS)
def test_mflops_with_partial_probe_counts_the_probed_lists(metric, rng):
    x = gaussian(rng, 1500, 16)
    q = gaussian(rng, 12, 16)
    index = _ivf(x, 12, metric)
    sizes = np.sort(np.asarray(index.list_sizes()))
    for nprobe in (1, 3, 7):
        mf = np.asarray(index.search(q, k=5, nprobe=nprobe).mflops)
        rows = (mf * 1e6 - 12 * 16) / 16  # rows_scanned per query
        np.testing.assert_allclose(rows, np.round(rows), atol=1e-6)
        assert np.all(rows >= sizes[:nprobe].sum() - 1e-6), (nprobe, rows, sizes)
        assert np.all(rows <= sizes[-nprobe:].sum() + 1e-6), (nprobe, rows, sizes)
        est = index.estimate_mflops(k=5, nprobe=nprobe)
        assert (12 * 16 + sizes[:nprobe].sum() * 16) / 1e6 - 1e-12 <= est <= (12 * 16 + sizes[-nprobe:].sum() * 16) / 1e6 + 1e-12


def test_mflops_with_partial_probe_l2_matches_nearest_centroids(rng):
    x = gaussian(rng, 1500, 16)
    q = gaussian(rng, 12, 16)
    index = _ivf(x, 12, "l2")
    sizes = np.asarray(index.list_sizes())
    c = np.asarray(index.centroids).astype(np.float64)
    d = ((q[:, None, :].astype(np.float64) - c[None]) ** 2).sum(-1)
    for nprobe in (1, 4):
        mf = np.asarray(index.search(q, k=5, nprobe=nprobe).mflops)
        order = np.argsort(d, axis=1)
        for qi in range(len(q)):
            gap = d[qi, order[qi, nprobe]] - d[qi, order[qi, nprobe - 1]]
            if gap < 1e-4 * d[qi, order[qi, nprobe]]:
                continue  # near tie decides which list is probed
            rows = sizes[order[qi, :nprobe]].sum()
            assert mf[qi] == pytest.approx((12 * 16 + rows * 16) / 1e6, rel=1e-9), (qi, nprobe)


def test_mflops_rerank_term_counts_only_the_candidates_found(rng):
    x = gaussian(rng, 1200, 16)
    q = gaussian(rng, 10, 16)
    index = _ivf(x, 12, "ip")
    for nprobe, rerank_k in [(1, 10**4), (2, 50), (12, 300)]:
        plain = np.asarray(index.search(q, k=5, nprobe=nprobe, search_dim=4).mflops)
        rows = np.round((plain * 1e6 - 12 * 16) / 4)
        res = index.search(q, k=5, nprobe=nprobe, search_dim=4, rerank_dim=16, rerank_k=rerank_k)
        np.testing.assert_allclose(res.mflops, plain + np.minimum(rerank_k, rows) * 16 / 1e6, rtol=1e-9)


# --------------------------------------------------------------------------- property


@given(
    n=st.integers(1, 300),
    d=st.integers(1, 40),
    k=st.integers(1, 25),
    metric=st.sampled_from(METRICS),
    rerank=st.booleans(),
    data=st.data(),
)
def test_exhaustive_probe_equals_brute_force_property(n, d, k, metric, rerank, data):
    nlist = data.draw(st.integers(1, min(n, 16)), label="nlist")
    cluster_dim = data.draw(st.one_of(st.none(), st.integers(1, d)), label="cluster_dim")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    x = gaussian(rng, n, d)
    q = gaussian(rng, 4, d)
    index = _ivf(x, nlist, metric, cluster_dim=cluster_dim, seed=seed % 1000)
    kw = {"search_dim": d, "rerank_dim": d} if rerank else {}
    res = index.search(q, k=k, nprobe=nlist, **kw)
    assert_topk_matches(res, ref_scores(q, x, d, metric), np.arange(n), k, metric, score_tol(q, x, d, metric))


@given(
    n=st.integers(2, 300),
    d=st.integers(1, 24),
    k=st.integers(1, 15),
    metric=st.sampled_from(METRICS),
    data=st.data(),
)
def test_more_probes_never_worse_property(n, d, k, metric, data):
    nlist = data.draw(st.integers(2, min(n, 12)), label="nlist")
    a = data.draw(st.integers(1, nlist - 1), label="nprobe_small")
    b = data.draw(st.integers(a + 1, nlist), label="nprobe_large")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    x = gaussian(rng, n, d)
    q = gaussian(rng, 4, d)
    index = _ivf(x, nlist, metric, seed=seed % 1000)
    sign = 1.0 if larger_is_better(metric) else -1.0
    few = sign * np.asarray(index.search(q, k=k, nprobe=a).scores, dtype=np.float64)
    many = sign * np.asarray(index.search(q, k=k, nprobe=b).scores, dtype=np.float64)
    tol = score_tol(q, x, d, metric)[:, None]
    assert np.all(many >= few - tol)


def test_concurrent_searches_from_python_threads_match_serial(rng):
    from concurrent.futures import ThreadPoolExecutor

    x = gaussian(rng, 3000, 32)
    index = _ivf(x, 16, "l2")
    qs = [gaussian(rng, 17, 32) for _ in range(8)]
    serial = [index.search(q, k=10, nprobe=4, threads=2) for q in qs]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda q: index.search(q, k=10, nprobe=4, threads=2), qs))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.scores, b.scores)
