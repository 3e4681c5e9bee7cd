"""Benchmark metrics against hand-computed cases; exact ground truth and Pareto frontiers against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from adanns.bench import groundtruth, metrics, pareto


def test_recall_counts_the_overlap_with_the_true_top_k_per_query():
    gt = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 9, 1, 2], [8, -1, -1, 5]])
    # query 0 finds 3 of its 4 true neighbours, query 1 finds 2 (padding -1 never counts)
    assert metrics.recall_at(found, gt, 4) == pytest.approx((3 / 4 + 2 / 4) / 2)
    # recall@1 compares the first columns only: 4 vs 1, 8 vs 5
    assert metrics.recall_at(found, gt, 1) == 0.0
    assert metrics.recall_at(gt, gt, 4) == 1.0


def test_recall_ignores_order_within_the_top_k_and_rejects_short_inputs():
    gt = np.array([[1, 2, 3]])
    assert metrics.recall_at(np.array([[3, 1, 2]]), gt, 3) == 1.0
    assert metrics.recall_at(np.array([[3, 1, 7]]), gt, 2) == 0.5  # top-2 {3, 1} vs {1, 2}
    with pytest.raises(ValueError, match="recall@4"):
        metrics.recall_at(np.array([[1, 2, 3]]), gt, 4)


def test_top1_accuracy_is_the_share_of_queries_whose_nearest_row_has_their_label():
    labels_base = np.array([0, 0, 1, 1, 2])
    ids = np.array([[0, 2], [4, 1], [2, 3], [-1, -1]])
    labels_q = np.array([0, 1, 1, 2])
    # 0 -> row 0 (label 0) yes; 1 -> row 4 (label 2) no; 1 -> row 2 (label 1) yes; padding no
    assert metrics.top1_accuracy(ids, labels_base, labels_q) == 0.5


def test_map_at_k_matches_a_hand_computed_average_precision():
    labels_base = np.array([0, 0, 0, 1, 1, 1, 2])   # label 0: 3 rows, 1: 3 rows, 2: 1 row
    ids = np.array([[0, 3, 1],     # query label 0: rel 1,0,1 -> (1/1 + 2/3) / min(3, 3) = 5/9
                    [3, 4, 5],     # query label 1: all relevant -> 1
                    [6, 0, 1],     # query label 2: only one relevant row exists -> (1/1) / min(3, 1) = 1
                    [0, 1, -1]])   # query label 1: nothing relevant -> 0
    labels_q = np.array([0, 1, 2, 1])
    expected = (5 / 9 + 1 + 1 + 0) / 4
    assert metrics.map_at(ids, labels_base, labels_q, k=3) == pytest.approx(expected)
    # a label no base row carries scores 0, not a division by zero
    assert metrics.map_at(np.array([[0, 1, 2]]), labels_base, np.array([9]), k=3) == 0.0


def test_label_metrics_reject_ids_without_a_label():
    with pytest.raises(ValueError, match="no label"):
        metrics.top1_accuracy(np.array([[5]]), np.array([0, 1]), np.array([0]))


def test_exact_topk_equals_brute_force_across_blocks_with_ties_to_the_smaller_id(rng):
    base = rng.integers(-2, 3, size=(300, 6)).astype(np.float32)  # small integers: many exact ties
    queries = rng.integers(-2, 3, size=(23, 6)).astype(np.float32)
    got = groundtruth.exact_topk(base, queries, k=17, query_block=5, base_block=64)
    scores = queries.astype(np.float64) @ base.T.astype(np.float64)
    for i in range(len(queries)):
        order = sorted(range(len(base)), key=lambda j: (-scores[i, j], j))[:17]
        np.testing.assert_array_equal(got[i], order)


def test_ground_truth_cache_is_reused_and_invalidated_when_the_data_change(tmp_path, rng):
    base = rng.standard_normal((200, 8)).astype(np.float32)
    queries = rng.standard_normal((10, 8)).astype(np.float32)
    gt, cached = groundtruth.cached_ground_truth(tmp_path, base, queries, k=5)
    assert not cached
    again, cached = groundtruth.cached_ground_truth(tmp_path, base, queries, k=5)
    assert cached and np.array_equal(gt, again)
    base[0] += 1.0
    _, cached = groundtruth.cached_ground_truth(tmp_path, base, queries, k=5)
    assert not cached


def test_pareto_frontier_and_layers_on_a_hand_made_set():
    rows = [{"c": 1, "v": 0.5}, {"c": 2, "v": 0.4}, {"c": 2, "v": 0.7}, {"c": 3, "v": 0.7}, {"c": 4, "v": 0.9},
            {"c": 5, "v": None}]
    front = pareto.frontier(rows, "c", "v")
    assert [(r["c"], r["v"]) for r in front] == [(1, 0.5), (2, 0.7), (4, 0.9)]
    second = pareto.layers(rows, "c", "v", 2)
    assert {(r["c"], r["v"]) for r in second} == {(1, 0.5), (2, 0.7), (4, 0.9), (2, 0.4), (3, 0.7)}
    qps = pareto.frontier([{"q": 100, "v": 0.9}, {"q": 50, "v": 0.95}, {"q": 40, "v": 0.93}], "q", "v",
                          lower_cost_better=False)
    assert [r["q"] for r in qps] == [50, 100]
