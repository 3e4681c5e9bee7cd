"""Compute-aware search: the tuner's choice on a synthetic frontier, tune() on a real index, persistence in
the index file, and precise errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import adanns
from adanns import tuning
from adanns.tuning import Frontier, Point


def synthetic() -> Frontier:
    # (mflops, mean recall, lower bound): the bound lags the mean by 0.01
    pts = [Point({"nprobe": n}, r, r - 0.01, c) for n, r, c in
           [(1, 0.70, 0.1), (2, 0.85, 0.2), (4, 0.92, 0.4), (8, 0.955, 0.8), (16, 0.97, 1.6), (32, 0.99, 3.2)]]
    return Frontier(k=10, query_dim=8, nq=500, points=pts)


@pytest.mark.parametrize("target, expected", [(0.5, 1), (0.90, 4), (0.91, 4), (0.911, 8), (0.945, 8), (0.95, 16),
                                              (0.96, 16), (0.98, 32)])
def test_target_recall_picks_the_cheapest_point_whose_lower_bound_reaches_it(target, expected):
    assert synthetic().choose(target_recall=target).params == {"nprobe": expected}


@pytest.mark.parametrize("budget, expected", [(0.1, 1), (0.39, 2), (0.4, 4), (1.0, 8), (100.0, 32)])
def test_budget_picks_the_most_accurate_point_within_it(budget, expected):
    assert synthetic().choose(budget_mflops=budget).params == {"nprobe": expected}


def test_out_of_reach_requests_warn_and_fall_back_to_the_best_or_cheapest_point():
    f = synthetic()
    with pytest.warns(RuntimeWarning, match="no tuned setting reaches"):
        assert f.choose(target_recall=0.999).params == {"nprobe": 32}
    with pytest.warns(RuntimeWarning, match="no tuned setting fits"):
        assert f.choose(budget_mflops=0.01).params == {"nprobe": 1}


def test_lower_bound_is_mean_minus_z_standard_errors():
    r = np.array([1.0, 0.8, 0.9, 0.7, 1.0])
    expected = r.mean() - 1.645 * r.std(ddof=1) / math.sqrt(5)
    assert tuning.lower_bound(r, z=1.645) == pytest.approx(expected)
    assert tuning.lower_bound(r) == pytest.approx(r.mean() - tuning.Z_LCB * r.std(ddof=1) / math.sqrt(5))
    assert tuning.lower_bound(np.ones(10)) == 1.0


def test_frontier_keeps_undominated_points_by_mean_or_by_bound():
    pts = [Point({"a": 1}, 0.9, 0.80, 1.0), Point({"a": 2}, 0.85, 0.84, 1.5),  # better bound, worse mean
           Point({"a": 3}, 0.8, 0.70, 2.0), Point({"a": 4}, 0.95, 0.90, 3.0)]
    kept = [p.params["a"] for p in tuning.frontier_points(pts)]
    assert kept == [1, 2, 4]


def data(rng, n=3000, d=32, nq=300):
    scale = np.linspace(2.0, 0.2, d).astype(np.float32)  # Matryoshka-like: leading coordinates matter most
    return ((rng.standard_normal((n, d)) * scale).astype(np.float32),
            (rng.standard_normal((nq, d)) * scale).astype(np.float32))


@pytest.fixture
def tuned(rng):
    x, q = data(rng)
    index = adanns.IVFIndex(32, nlist=32, metric="ip", seed=0)
    index.train(x)
    index.add(x)
    frontier = index.tune(q[:150], k=10)
    return index, x, q, frontier


def exact(x, q, k):
    return np.argsort(-(q.astype(np.float64) @ x.T.astype(np.float64)), axis=1, kind="stable")[:, :k]


def test_tune_measures_recall_against_exact_neighbours_and_keeps_a_monotone_frontier(tuned):
    index, x, q, f = tuned
    assert f.k == 10 and f.query_dim == 32 and f.nq == 150 and len(f.points) >= 3
    costs = [p.mflops for p in f.points]
    assert costs == sorted(costs)
    gt = exact(x, q[:150], 10)
    for p in f.points[:: max(1, len(f.points) // 4)]:  # the recorded recall is the measured one
        res = index.search(q[:150], k=10, **p.params)
        assert p.recall == pytest.approx(tuning.per_query_recall(res.ids, gt, 10).mean())
        assert p.mflops == pytest.approx(float(res.mflops.mean()))


def test_target_recall_on_held_out_queries_meets_the_target_and_budget_caps_cost(tuned):
    index, x, q, _ = tuned
    held, gt = q[150:], exact(x, q[150:], 10)
    for target in (0.9, 0.95):
        res = index.search(held, k=10, target_recall=target)
        assert tuning.per_query_recall(res.ids, gt, 10).mean() >= target - 0.03
    res = index.search(held, k=10, budget_mflops=0.05)
    assert res.mflops.mean() <= 0.05 * 1.1  # measured on other queries: list sizes vary a little


def test_frontier_is_saved_with_the_index_and_restored_by_load(tuned, tmp_path):
    index, _, q, f = tuned
    path = tmp_path / "t.adanns"
    index.save(path)
    for loaded in (adanns.load(path), adanns.load(path, mmap=True)):
        assert loaded.frontiers()[10].as_dict() == f.as_dict()
        a = loaded.search(q[150:], k=10, target_recall=0.9)
        b = index.search(q[150:], k=10, target_recall=0.9)
        np.testing.assert_array_equal(a.ids, b.ids)
    meta = json.loads(index._impl.user_meta())
    assert meta["frontier"]["format"] == "adanns.frontier" and meta["frontier"]["version"] == 1


def test_tune_on_a_flat_index_with_given_ground_truth_and_a_custom_grid(rng):
    x, q = data(rng, n=1000, nq=60)
    index = adanns.FlatIndex(32, metric="ip")
    index.add(x)
    grid = [{"search_dim": s} for s in (4, 8, 16, 32)] + [{"search_dim": 8, "rerank_dim": 32, "rerank_k": 40}]
    f = index.tune(q, k=5, gt=exact(x, q, 5), grid=grid)
    assert f.points[-1].params == {"search_dim": 32} and f.points[-1].recall == 1.0
    assert index.search(q, k=5, target_recall=1.0).mflops.mean() == pytest.approx(1000 * 32 / 1e6)


def test_tune_samples_queries_with_a_seed(rng):
    x, q = data(rng, n=1000, nq=100)
    index = adanns.FlatIndex(32, metric="ip")
    index.add(x)
    grid = [{"search_dim": s} for s in (8, 32)]
    a = index.tune(q, k=5, grid=grid, sample=40, seed=3)
    b = index.tune(q, k=5, grid=grid, sample=40, seed=3)
    assert a.nq == 40 and a.as_dict() == b.as_dict()


def test_search_with_target_refuses_explicit_knobs_untuned_indexes_and_other_k(tuned, rng):
    index, x, q, _ = tuned
    with pytest.raises(ValueError, match="do not also give"):
        index.search(q, k=10, target_recall=0.9, nprobe=4)
    with pytest.raises(ValueError, match="not both"):
        index.search(q, k=10, target_recall=0.9, budget_mflops=1.0)
    with pytest.raises(ValueError, match="tuned for k in"):
        index.search(q, k=5, target_recall=0.9)
    with pytest.raises(ValueError, match="32-dim queries"):
        index.search(q[:, :16], k=10, target_recall=0.9)
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="target_recall"):
            index.search(q, k=10, target_recall=bad)
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="budget_mflops"):
            index.search(q, k=10, budget_mflops=bad)
    with pytest.raises(TypeError, match="target_recall"):
        index.search(q, k=10, target_recall="high")
    fresh = adanns.FlatIndex(32, metric="ip")
    fresh.add(x)
    with pytest.raises(RuntimeError, match="not tuned"):
        fresh.search(q, k=10, target_recall=0.9)


def test_tune_rejects_bad_grids_and_ground_truth(rng):
    x, q = data(rng, n=500, nq=20)
    index = adanns.FlatIndex(32, metric="ip")
    index.add(x)
    with pytest.raises(ValueError, match="may not set"):
        index.tune(q, k=5, grid=[{"search_dim": 8, "k": 3}])
    with pytest.raises(TypeError, match="dicts"):
        index.tune(q, k=5, grid=[8])
    with pytest.raises(ValueError, match="gt must be"):
        index.tune(q, k=5, gt=np.zeros((20, 3), np.int64))
    with pytest.raises(ValueError, match="rerank_k"):  # an invalid setting is reported, not skipped
        index.tune(q, k=5, grid=[{"search_dim": 8, "rerank_k": 2}])


def test_foreign_or_newer_metadata_is_never_overwritten_or_misread(rng):
    x, q = data(rng, n=500, nq=20)
    index = adanns.FlatIndex(32, metric="ip")
    index.add(x)
    index._impl.set_user_meta(b"\x00binary")
    with pytest.raises(ValueError, match="not JSON"):
        index.tune(q, k=5, grid=[{"search_dim": 8}])
    assert index._impl.user_meta() == b"\x00binary"
    index._impl.set_user_meta(json.dumps({"other": 1}).encode())
    index.tune(q, k=5, grid=[{"search_dim": 8}])
    assert json.loads(index._impl.user_meta())["other"] == 1  # other keys are kept
    index._impl.set_user_meta(json.dumps({"frontier": {"format": "adanns.frontier", "version": 99}}).encode())
    with pytest.raises(ValueError, match="version 99"):
        index.search(q, k=5, target_recall=0.9)
