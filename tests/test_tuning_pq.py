"""Compute-aware search on the code kinds (OPQIndex, IVFOPQIndex, BinarizedIndex): the tuner's choice
against recall measured with float64 brute force on clustered data, persistence of the frontier, the
same choice on 1 and 2 threads, and precise errors."""

from __future__ import annotations

import numpy as np
import pytest

import adanns
from adanns import tuning

D = 32


def clustered(rng, n=4000, nq=300, clusters=40):
    """Gaussian clusters, Matryoshka-like (leading coordinates carry most of the spread)."""
    scale = np.linspace(2.0, 0.3, D)
    centres = rng.standard_normal((clusters, D)) * scale
    pick = lambda m: centres[rng.integers(0, clusters, m)] + 0.6 * rng.standard_normal((m, D)) * scale  # noqa: E731
    return pick(n).astype(np.float32), pick(nq).astype(np.float32)


def exact(x, q, k):
    return np.argsort(-(q.astype(np.float64) @ x.T.astype(np.float64)), axis=1, kind="stable")[:, :k]


def build(kind, x, **kw):
    if kind == "opq":
        index = adanns.OPQIndex(D, m=8, **kw)
        index.train(x, opq_niter=4)
    elif kind == "ivfopq":
        index = adanns.IVFOPQIndex(D, nlist=32, m=8, **kw)
        index.train(x, opq_niter=4)
    else:
        index = adanns.BinarizedIndex(D)
        index.train(x)
    index.add(x)
    return index


KINDS = ("opq", "ivfopq", "binary")


@pytest.fixture(params=KINDS)
def tuned(request, rng):
    x, q = clustered(rng)
    index = build(request.param, x)
    frontier = index.tune(q[:150], k=10)
    return request.param, index, x, q, frontier


def test_the_frontier_records_recall_measured_against_float64_brute_force(tuned):
    kind, index, x, q, f = tuned
    assert f.k == 10 and f.query_dim == D and f.nq == 150 and len(f.points) >= 2
    assert [p.mflops for p in f.points] == sorted(p.mflops for p in f.points)
    gt = exact(x, q[:150], 10)
    for p in f.points:
        res = index.search(q[:150], k=10, **p.params)
        # The tuner's own exact search and float64 may order exact ties differently: allow one in 1000.
        assert p.recall == pytest.approx(tuning.per_query_recall(res.ids, gt, 10).mean(), abs=1e-3)
        assert p.mflops == pytest.approx(float(res.mflops.mean()))


def test_target_recall_on_held_out_queries_meets_the_target_and_a_budget_caps_the_cost(tuned):
    kind, index, x, q, f = tuned
    held, gt = q[150:], exact(x, q[150:], 10)
    best = max(p.recall_lcb for p in f.points)
    for target in (0.8, 0.9, 0.95):
        if target > best:
            continue  # out of reach of this grid: covered by the warning test
        res = index.search(held, k=10, target_recall=target)
        assert tuning.per_query_recall(res.ids, gt, 10).mean() >= target - 0.03, (kind, target)
    budget = f.points[len(f.points) // 2].mflops
    res = index.search(held, k=10, budget_mflops=budget)
    assert res.mflops.mean() <= budget * 1.1  # other queries probe lists of other sizes


def test_the_grid_reaches_high_recall_with_re_ranking(tuned):
    kind, index, x, q, f = tuned
    assert f.points[-1].recall >= 0.95, kind
    assert any(p.params.get("rerank_k") for p in f.points)


def test_frontier_survives_save_and_load(tuned, tmp_path):
    kind, index, x, q, f = tuned
    path = tmp_path / f"{kind}.adanns"
    index.save(path)
    loaded = adanns.load(path)
    assert type(loaded) is type(index)
    assert loaded.frontiers()[10].as_dict() == f.as_dict()
    a = loaded.search(q[150:], k=10, target_recall=0.9)
    b = index.search(q[150:], k=10, target_recall=0.9)
    np.testing.assert_array_equal(a.ids, b.ids)
    if kind == "binary":  # the binarizer shares the metadata with the frontier
        assert loaded.rotation == index.rotation and loaded.is_trained


def test_one_and_two_threads_measure_the_same_frontier_and_choose_the_same_setting(rng):
    x, q = clustered(rng, n=3000, nq=120)
    for kind in KINDS:
        index = build(kind, x)
        one = index.tune(q, k=10, threads=1)
        two = index.tune(q, k=10, threads=2)
        assert one.as_dict() == two.as_dict(), kind
        for target in (0.8, 0.9, 0.95):
            if target <= one.points[-1].recall_lcb:
                assert one.choose(target_recall=target) == two.choose(target_recall=target)


@pytest.mark.parametrize("kind", KINDS)
def test_untuned_and_invalid_requests_raise_precise_errors(kind, rng):
    x, q = clustered(rng, n=1500, nq=40)
    index = build(kind, x)
    with pytest.raises(RuntimeError, match="not tuned"):
        index.search(q, k=10, target_recall=0.9)
    index.tune(q, k=10)
    with pytest.raises(ValueError, match=r"do not also give \['rerank_k'\]"):
        index.search(q, k=10, target_recall=0.9, rerank_k=50)
    if kind == "ivfopq":
        with pytest.raises(ValueError, match=r"do not also give \['nprobe'\]"):
            index.search(q, k=10, budget_mflops=1.0, nprobe=4)
    with pytest.raises(ValueError, match="not both"):
        index.search(q, k=10, target_recall=0.9, budget_mflops=1.0)
    with pytest.raises(ValueError, match="tuned for k in"):
        index.search(q, k=5, target_recall=0.9)
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="target_recall"):
            index.search(q, k=10, target_recall=bad)
    for bad in (0.0, -2.0, float("inf")):
        with pytest.raises(ValueError, match="budget_mflops"):
            index.search(q, k=10, budget_mflops=bad)
    with pytest.raises(ValueError, match="grid entries may not set"):
        index.tune(q, k=10, grid=[{"target_recall": 0.9}])


@pytest.mark.parametrize("kind", ("opq", "ivfopq"))
def test_an_index_without_vectors_needs_the_ground_truth_and_tunes_its_codes_only(kind, rng):
    x, q = clustered(rng, n=2000, nq=60)
    index = build(kind, x, store_vectors=False)
    with pytest.raises(ValueError, match="store_vectors=False.*gt="):
        index.tune(q, k=10)
    f = index.tune(q, k=10, gt=exact(x, q, 10))
    assert all("rerank_k" not in p.params for p in f.points)
    assert index.search(q, k=10, budget_mflops=f.points[-1].mflops * 2).ids.shape == (60, 10)


def test_the_default_grids_stay_small_enough_to_tune_in_seconds():
    ivfopq = adanns.IVFOPQIndex(384, nlist=1024, cluster_dim=64, m=32, pq_dim=128)
    assert len(ivfopq.default_grid(10, 384)) <= 70
    assert len(adanns.OPQIndex(384, m=32, pq_dim=128).default_grid(10, 384)) <= 6
    assert len(adanns.BinarizedIndex(384).default_grid(10, 384)) <= 10
